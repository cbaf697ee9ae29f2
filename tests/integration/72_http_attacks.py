#!/usr/bin/python3
"""HTTP requests built to hold the service: transfer codings it cannot decode, query strings with
hundreds of parameters, hundreds of headers, a 2 MiB body a client sends whole before reading the
413. Each request is
answered at once (a 2 s client timeout) with a JSON error, and the service keeps serving. And user
ids built to share one FNV-1a hash, put online by the thousand: GET /users lists them all about as
soon as the same number of ordinary ids."""

import http.client
import json
import os
import socket
import sys
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

TIMEOUT = 2.0  # no request here may take the client longer than this to get its answer


class RawReply:
    """A reply read off a raw socket: status (int, 0 when none), headers (lowercase names),
    body (bytes), json, and outcome: "answered", "timeout", or the name of the socket error."""

    def __init__(self, data, outcome):
        self.outcome = outcome
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        self.json = h.Response(self.status, {}, self.body).json

    def __repr__(self):
        return "<%s %d %r>" % (self.outcome, self.status, self.body[:200])


def raw_request(port, data, timeout=TIMEOUT):
    """Send data whole on a new connection, then read until the server closes (or timeout)."""
    got = b""
    outcome = "answered"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                head, sep, body = got.partition(b"\r\n\r\n")
                length = [line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if sep and length and len(body) >= int(length[0]):
                    break  # a whole reply, even if the connection stays open
        except socket.timeout:
            outcome = "timeout"
        except OSError as e:
            outcome = type(e).__name__
    return RawReply(got, outcome)


def expect_json_error_at_once(port, data, status, code, what):
    t0 = time.monotonic()
    r = raw_request(port, data)
    dt = time.monotonic() - t0
    print("    %s: %s after %.2fs" % (what, r, dt))
    check(r.outcome == "answered" and r.status, "%s: no answer (%s after %.2fs; the client waits %.0fs)" % (
        what, "connection closed" if r.outcome == "answered" else r.outcome, dt, TIMEOUT))
    check(r.status == status and isinstance(r.json, dict) and r.json.get("error") == code
          and isinstance(r.json.get("message"), str) and r.json["message"],
          "%s: expected %d %s as JSON, got %r" % (what, status, code, r))
    check(r.headers.get("content-type", "").startswith("application/json"),
          "%s: Content-Type %r" % (what, r.headers.get("content-type")))
    return r


def token_request(query):
    return b"GET /token?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n"


def post_with_coding(coding):
    return (b"POST /calls/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: " + coding + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")


# ---- the raw client works: a legitimate request is answered at once the same way ---------------

def test_raw_client_reads_a_normal_answer(env):
    r = expect_json_error_at_once(env.service.port, token_request(b"room=x"), 400, "MISSING_FIELD",
                                  "GET /token?room=x")
    eq(r.json["message"], "room and id are required", "message")
    r = expect_json_error_at_once(env.service.port, post_with_coding(b"chunked"), 400, "BAD_JSON",
                                  "chunked body 'hello'")


# ---- transfer codings the server cannot decode: 501 at once ------------------------------------

def test_transfer_encoding_gzip_chunked_is_501_at_once(env):
    expect_json_error_at_once(env.service.port, post_with_coding(b"gzip, chunked"), 501,
                              "UNSUPPORTED_TRANSFER_ENCODING", "Transfer-Encoding: gzip, chunked")


def test_transfer_encoding_xchunked_is_501_at_once(env):
    expect_json_error_at_once(env.service.port, post_with_coding(b"xchunked"), 501,
                              "UNSUPPORTED_TRANSFER_ENCODING", "Transfer-Encoding: xchunked")


def test_transfer_encoding_chunked_in_capitals_is_decoded(env):
    a, b = env.user("a"), env.user("b")
    body = b'{"callerId": "%s", "receiverId": "%s"}' % (a.user_id.encode(), b.user_id.encode())
    r = raw_request(env.service.port, b"POST /calls/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: Chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    eq(r.status, 200, "start with Transfer-Encoding: Chunked (%r)" % r)
    b.expect_event("INCOMING_CALL")


# ---- query strings with hundreds of parameters: 414 at once -----------------------------------

def test_32_query_parameters_are_served(env):
    r = raw_request(env.service.port, b"GET /health?" + b"&".join([b"a=1"] * 32) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    eq(r.status, 200, "GET /health with 32 query parameters (%r)" % r)


def test_600_empty_query_parameters_are_414_at_once(env):
    expect_json_error_at_once(env.service.port, token_request(b"room=x" + b"&" * 600), 414, "URI_TOO_LONG",
                              "/token?room=x + 600 '&'")


def test_2000_empty_query_parameters_are_414_at_once(env):
    expect_json_error_at_once(env.service.port, token_request(b"room=x" + b"&" * 2000), 414, "URI_TOO_LONG",
                              "/token?room=x + 2000 '&'")


def test_600_a_equals_1_parameters_are_414_at_once(env):
    expect_json_error_at_once(env.service.port, token_request(b"&".join([b"a=1"] * 600)), 414, "URI_TOO_LONG",
                              "/token with 600 a=1")


def test_uri_over_8_kib_is_414_at_once(env):
    expect_json_error_at_once(env.service.port, token_request(b"room=" + b"r" * 9000 + b"&id=x"), 414,
                              "URI_TOO_LONG", "/token with a 9000-byte room")


def headers_request(n, value=b"1"):
    """GET /health with n headers in all (Host and n - 1 others)."""
    return (b"GET /health HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, value) for i in range(n - 1)) + b"\r\n")


def test_100_headers_are_served(env):
    r = raw_request(env.service.port, headers_request(100))
    eq(r.status, 200, "GET /health with 100 headers (%r)" % r)


def test_442_headers_are_431_at_once(env):
    # 442 small headers (443 too) fit libmicrohttpd's 32 KiB connection buffer but leave no room
    # for the response's headers: it used to close the connection without an answer. From 444 on
    # the library refuses the head itself (an HTML 431).
    expect_json_error_at_once(env.service.port, headers_request(442), 431, "HEADERS_TOO_LARGE",
                              "GET /health with 442 headers")


def test_head_over_16_kib_is_431_at_once(env):
    expect_json_error_at_once(env.service.port, headers_request(2, b"v" * 17000), 431, "HEADERS_TOO_LARGE",
                              "GET /health with a 17000-byte header")


def test_service_serves_after_the_refusals(env):
    eq(env.get("/health").status, 200, "GET /health")
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])


# ---- a 2 MiB body: the client reads its 413 ---------------------------------------------------

BIG = 2 * 1024 * 1024


def big_body():
    return b'{"callerId": "a", "receiverId": "b", "pad": "' + b"x" * (BIG - 48) + b'"}'


def test_2_mib_body_413_is_read_by_every_client(env):
    body = big_body()
    http_client = {}
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", env.service.port, timeout=TIMEOUT)
        try:
            conn.request("POST", "/calls/start", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            payload = r.read()
            outcome = "413 read" if r.status == 413 and b"BODY_TOO_LARGE" in payload else "status %d" % r.status
        except (OSError, http.client.HTTPException) as e:
            outcome = type(e).__name__
        finally:
            conn.close()
        http_client[outcome] = http_client.get(outcome, 0) + 1
    raw = {}
    head = (b"POST /calls/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    for _ in range(20):
        r = raw_request(env.service.port, head + body)
        outcome = "413 read" if r.status == 413 and r.json and r.json.get("error") == "BODY_TOO_LARGE" \
            else "%s %d" % (r.outcome, r.status)
        raw[outcome] = raw.get(outcome, 0) + 1
    print("    http.client: %s" % http_client)
    print("    raw socket:  %s" % raw)
    eq(http_client.get("413 read", 0), 20, "http.client tries that read the 413 (of 20; %s)" % http_client)
    eq(raw.get("413 read", 0), 20, "raw-socket tries that read the 413 (of 20; %s)" % raw)


def test_oversized_body_with_expect_100_continue_is_413_at_once(env):
    expect_json_error_at_once(env.service.port,
                              b"POST /calls/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % BIG,
                              413, "BODY_TOO_LARGE", "2 MiB announced, Expect: 100-continue")


def test_draining_stops_past_4_mib(env):
    # A chunked body never announces its size: the service drains it until 4 MiB, then closes.
    sent = 0
    outcome = "all sent"
    with socket.create_connection(("127.0.0.1", env.service.port), timeout=TIMEOUT) as s:
        try:
            s.sendall(b"POST /calls/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            piece = b"x" * 65536
            while sent < 64 * 1024 * 1024:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except socket.timeout:
            outcome = "timeout"
        except OSError as e:
            outcome = type(e).__name__
    print("    chunked body: %s after %.1f MiB sent" % (outcome, sent / 1048576))
    check(outcome not in ("all sent", "timeout"), "the service read a 64 MiB body (%s)" % outcome)
    check(sent < 32 * 1024 * 1024, "the service read %.1f MiB before closing" % (sent / 1048576))


def test_draining_stops_after_10_s(env):
    # An oversized body sent slowly (1 KiB each 0.5 s) is drained for 10 s at most, then closed.
    t0 = time.monotonic()
    outcome = "still open"
    sent = 0
    with socket.create_connection(("127.0.0.1", env.service.port), timeout=0.5) as s:
        s.sendall(b"POST /calls/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        while time.monotonic() - t0 < 25 and sent < 100000:
            try:
                s.sendall(b"x" * 1024)
                sent += 1024
                data = s.recv(4096)
                outcome = "closed" if not data else "answered %r" % data[:12]
                break
            except socket.timeout:
                continue
            except OSError as e:
                outcome = type(e).__name__
                break
    dt = time.monotonic() - t0
    print("    slow body: %s after %.1fs, %d KiB sent" % (outcome, dt, sent // 1024))
    check(sent >= 4 * 1024, "the connection was closed before the body was drained for a while (%s)" % outcome)
    check(outcome != "still open", "the service still drained a slow body after %.0fs" % dt)


def test_service_serves_after_the_big_bodies(env):
    expect_error(env.post("/calls/start", {}), 400, "MISSING_FIELD")



# ---- user ids that all share one FNV-1a hash ---------------------------------------------------

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
PAIRS = 14  # 2^14 = 16384 colliding ids of 84 characters


def fnv1a(data, h=2166136261):
    for c in data:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def fnv1a_colliding_ids(pairs=PAIRS):
    """2^pairs distinct ids with one 32-bit FNV-1a hash (a Joux multicollision): a birthday search
    finds two random 6-character blocks taking FNV-1a from one state to the same next state; one
    block of each of the pairs, chosen by the bits of a counter, makes an id."""
    rng = 0x9E3779B97F4A7C15
    state = 2166136261
    found = []
    for _ in range(pairs):
        seen = {}
        while True:
            rng ^= (rng << 13) & 0xFFFFFFFFFFFFFFFF
            rng ^= rng >> 7
            rng ^= (rng << 17) & 0xFFFFFFFFFFFFFFFF
            block = "".join(ALPHABET[(rng >> (8 * i)) % 62] for i in range(6)).encode()
            v = fnv1a(block, state)
            if v in seen and seen[v] != block:
                found.append((seen[v], block))
                state = v
                break
            seen[v] = block
    return ["".join(found[p][(k >> p) & 1].decode() for p in range(pairs)) for k in range(1 << pairs)]


BATCH = 500  # below Mosquitto's default max_queued_messages (1000) per subscriber


def put_online(env, ids, online_before):
    """Publish a retained presence for every id from one MQTT client, in batches: each batch is
    published once the service lists the previous one, so the broker never holds more for the
    service than its queue limit (a sanitized service reads slower than a client publishes, and
    Mosquitto drops what is over the limit)."""
    c = mqtt.Client(client_id="bulk-" + env.uid(), clean_session=True)
    c.max_inflight_messages_set(BATCH)
    c.connect("127.0.0.1", env.broker.port)
    c.loop_start()
    try:
        for start in range(0, len(ids), BATCH):
            batch = ids[start:start + BATCH]
            infos = [c.publish("users/%s/presence/d" % uid,
                               json.dumps({"id": uid, "name": "n", "location": ""}), qos=1, retain=True)
                     for uid in batch]
            for info in infos:
                info.wait_for_publish(30)
                check(info.is_published(), "the broker did not acknowledge a presence within 30 s")
            want = online_before + start + len(batch)
            h.wait_until(lambda: env.get("/health").json.get("users", 0) >= want, timeout=60, interval=0.02,
                         what="%d users online" % want)
    finally:
        c.disconnect()
        c.loop_stop()


def service_cpu_seconds(env):
    """User + system CPU time the service process has used so far."""
    with open("/proc/%d/stat" % env.service.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_until_listed(env, ids, online_before):
    """Put ids online; (wall seconds, service CPU seconds) until GET /users lists every one."""
    t0, cpu0 = time.monotonic(), service_cpu_seconds(env)
    put_online(env, ids, online_before)
    listed = set(env.user_ids())
    missing = [uid for uid in ids if uid not in listed]
    check(not missing, "GET /users misses %d of the ids, e.g. %r" % (len(missing), missing[:3]))
    return time.monotonic() - t0, service_cpu_seconds(env) - cpu0


@h.options(instances=1)  # one service's presence set and CPU, whatever the engine
def test_ids_colliding_in_fnv1a_do_not_slow_users(env):
    colliding = fnv1a_colliding_ids()
    eq(len({fnv1a(uid.encode()) for uid in colliding}), 1, "distinct FNV-1a hashes of the crafted ids")
    eq(len(set(colliding)), len(colliding), "distinct crafted ids")
    normal = ["n%05d-%s" % (i, env.uid()) for i in range(len(colliding))]
    wall_n, cpu_n = time_until_listed(env, normal, 0)
    wall_c, cpu_c = time_until_listed(env, colliding, len(normal))
    print("    %d ordinary ids listed in %.2fs (service CPU %.2fs); %d ids with one FNV-1a hash in %.2fs "
          "(service CPU %.2fs)" % (len(normal), wall_n, cpu_n, len(colliding), wall_c, cpu_c))
    check(wall_c < 5 * wall_n + 2, "colliding ids took %.2fs, ordinary ones %.2fs" % (wall_c, wall_n))
    check(cpu_c < 3 * cpu_n + 1, "colliding ids cost the service %.2fs of CPU, ordinary ones %.2fs" % (cpu_c, cpu_n))


if __name__ == "__main__":
    h.main()

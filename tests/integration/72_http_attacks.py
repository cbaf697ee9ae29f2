#!/usr/bin/python3
"""HTTP requests built to hold the service: transfer codings it cannot decode, query strings with
hundreds of parameters, a 2 MiB body a client sends whole before reading the 413. Each request is
answered at once (a 2 s client timeout) with a JSON error, and the service keeps serving."""

import http.client
import os
import socket
import sys
import time

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
    check(r.outcome == "answered" and r.status, "%s: no answer within %.0fs (%s)" % (what, TIMEOUT, r))
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


def test_service_serves_after_the_big_bodies(env):
    expect_error(env.post("/calls/start", {}), 400, "MISSING_FIELD")


if __name__ == "__main__":
    h.main()

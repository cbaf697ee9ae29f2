#!/usr/bin/python3
"""HTTP surface: /health, /config, CORS (preflight and headers on every response), routing (404,
405 with Allow), and bad input of every kind (malformed JSON, non-UTF-8, wrong types, non-object
bodies, 413, 415, form bodies, invalid ids); after all of it the service still serves a call."""

import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

LIMIT = 16 * 1024


def acao(r):
    return r.headers.get("Access-Control-Allow-Origin")


# ---- /health, /config -------------------------------------------------------------------------

def test_health_reports_ok_and_counts(env):
    r = env.get("/health")
    eq(r.status, 200, "status")
    check(r.headers.get("Content-Type", "").startswith("application/json"), "Content-Type")
    eq(r.json.get("status"), "ok", "status field")
    eq(r.json.get("broker"), "connected", "broker field")
    for key in ("users", "calls"):
        check(isinstance(r.json.get(key), int) and not isinstance(r.json.get(key), bool)
              and r.json[key] >= 0, "%s is not a count: %r" % (key, r.json))


def test_config_defaults(env):
    r = env.get("/config")
    eq(r.status, 200, "status")
    eq(r.json, {"mqttWsUrl": None, "livekitUrl": None, "authMode": "open", "presenceRefreshS": 60}, "config")


@h.options(service_env={"MQTT_WS_URL": "ws://127.0.0.1:19001", "LIVEKIT_URL": "wss://lk.example.test",
                        "PRESENCE_REFRESH_S": "2.5"})
def test_config_reports_urls_and_the_presence_refresh(env):
    r = env.get("/config")
    eq(r.status, 200, "status")
    eq(r.json, {"mqttWsUrl": "ws://127.0.0.1:19001", "livekitUrl": "wss://lk.example.test",
                "authMode": "open", "presenceRefreshS": 2.5}, "config")


# ---- CORS -------------------------------------------------------------------------------------

def test_cors_preflight(env):
    for path in ("/calls/start", "/users", "/token", "/nowhere"):
        r = env.http("OPTIONS", path, headers={"Origin": "http://app.test",
                                               "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "content-type"})
        eq(r.status, 204, "preflight status of " + path)
        eq(acao(r), "*", "Access-Control-Allow-Origin")
        eq(r.headers.get("Access-Control-Allow-Methods"), "GET, POST, OPTIONS", "Allow-Methods")
        eq(r.headers.get("Access-Control-Allow-Headers"), "Content-Type, Authorization", "Allow-Headers")
        eq(r.headers.get("Access-Control-Max-Age"), "600", "Max-Age")
        eq(r.body, b"", "preflight body")


def test_every_response_carries_allow_origin(env):
    a, b = env.user("a"), env.user("b")
    responses = {
        "200 users": env.get("/users"),
        "200 health": env.get("/health"),
        "200 start": env.post("/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}),
        "400": env.post("/calls/start", {}),
        "404 offline": env.post("/calls/start", {"callerId": env.uid(), "receiverId": b.user_id}),
        "404 route": env.get("/nope"),
        "405": env.get("/calls/start"),
        "413": env.post("/calls/start", body=b"{" + b" " * (LIMIT + 10) + b"}",
                        content_type="application/json"),
        "415": env.post("/calls/start", body=b"x", content_type="text/plain"),
        "400 bad json": env.post("/calls/start", body=b"{", content_type="application/json"),
    }
    missing = [k for k, r in responses.items() if acao(r) != "*"]
    check(not missing, "responses without Access-Control-Allow-Origin: *: %s" % missing)


@h.options(service_env={"CORS_ORIGIN": "https://app.example.test"})
def test_cors_origin_is_configurable(env):
    eq(acao(env.get("/health")), "https://app.example.test", "ACAO on GET")
    eq(acao(env.http("OPTIONS", "/calls/end")), "https://app.example.test", "ACAO on OPTIONS")
    eq(acao(env.get("/missing")), "https://app.example.test", "ACAO on 404")


# ---- routing ----------------------------------------------------------------------------------

def test_unknown_route_is_404(env):
    expect_error(env.get("/x"), 404, "NOT_FOUND", "No route GET /x")
    expect_error(env.post("/calls/nope", {}), 404, "NOT_FOUND", "No route POST /calls/nope")


def test_root_without_web_root_is_404(env):
    expect_error(env.get("/"), 404, "NOT_FOUND")


def test_query_string_does_not_change_the_route(env):
    eq(env.get("/health?verbose=1").status, 200, "GET /health?verbose=1")
    eq(env.get("/users?x=y").status, 200, "GET /users?x=y")


def test_wrong_method_is_405_with_allow(env):
    for method, path, allowed in [("GET", "/calls/start", "POST"), ("GET", "/calls/answer", "POST"),
                                  ("PUT", "/calls/end", "POST"), ("POST", "/users", "GET"),
                                  ("DELETE", "/health", "GET"), ("POST", "/token", "GET"),
                                  ("POST", "/config", "GET")]:
        r = env.http(method, path)
        expect_error(r, 405, "METHOD_NOT_ALLOWED")
        allow = r.headers.get("Allow") or ""
        check(allowed in [m.strip() for m in allow.split(",")],
              "%s %s: Allow header %r lacks %s" % (method, path, allow, allowed))


def make_web_root(env):
    root = os.path.join(env.tmp, "www")
    os.makedirs(os.path.join(root, "js"))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html><title>calls</title>")
    with open(os.path.join(root, "js", "app.js"), "w") as f:
        f.write("console.log('app');")
    with open(os.path.join(env.tmp, "secret.txt"), "w") as f:
        f.write("outside the web root")
    return root


@h.options(start_service=False)
def test_static_files_under_web_root(env):
    s = env.spawn_service(env={"WEB_ROOT": make_web_root(env)})
    r = h.http_request(s.port, "GET", "/")
    eq(r.status, 200, "GET /")
    eq(r.body, b"<!doctype html><title>calls</title>", "GET / serves index.html")
    check(r.headers.get("Content-Type", "").startswith("text/html"), "Content-Type of / %r" %
          r.headers.get("Content-Type"))
    check(r.headers.get("Access-Control-Allow-Origin"), "static file without Access-Control-Allow-Origin")
    r = h.http_request(s.port, "GET", "/js/app.js")
    eq(r.status, 200, "GET /js/app.js")
    eq(r.body, b"console.log('app');", "body of /js/app.js")
    check("javascript" in r.headers.get("Content-Type", ""), "Content-Type of app.js %r" %
          r.headers.get("Content-Type"))
    expect_error(h.http_request(s.port, "GET", "/missing.js"), 404, "NOT_FOUND")
    # the API routes still win over files
    eq(h.http_request(s.port, "GET", "/health").status, 200, "GET /health with a web root")


@h.options(start_service=False)
def test_static_files_never_leave_the_web_root(env):
    s = env.spawn_service(env={"WEB_ROOT": make_web_root(env)})
    for path in ("/../secret.txt", "/js/../../secret.txt", "/%2e%2e/secret.txt", "/js/%2e%2e/%2e%2e/secret.txt",
                 "/..%2fsecret.txt", "/../mosquitto.conf"):
        r = h.http_request(s.port, "GET", path)
        check(b"outside the web root" not in r.body and b"listener" not in r.body,
              "GET %s leaked a file outside WEB_ROOT" % path)
        check(r.status in (400, 403, 404), "GET %s: %d" % (path, r.status))


# ---- bad bodies -------------------------------------------------------------------------------

def test_malformed_json_is_bad_json(env):
    for body in (b"{", b"{\"callerId\": }", b"not json", b"{'callerId': 'a'}", b"{\"a\":1}}",
                 b"{\"a\":1,}", b"\x00"):
        expect_error(env.post("/calls/start", body=body, content_type="application/json"), 400, "BAD_JSON")


def test_non_utf8_body_is_bad_json(env):
    a, b = env.user("a"), env.user("b")
    body = b'{"callerId": "' + a.user_id.encode() + b'\xff\xfe", "receiverId": "' + b.user_id.encode() + b'"}'
    expect_error(env.post("/calls/start", body=body, content_type="application/json"), 400, "BAD_JSON")
    latin1 = '{"callerId": "caf\u00e9", "receiverId": "x"}'.encode("latin-1")
    expect_error(env.post("/calls/start", body=latin1, content_type="application/json"), 400, "BAD_JSON")


def test_body_that_is_not_an_object_is_bad_json(env):
    for body in (b"[]", b"[{\"callerId\": \"a\", \"receiverId\": \"b\"}]", b"\"text\"", b"42", b"null", b"true"):
        for path in ("/calls/start", "/calls/answer", "/calls/end"):
            expect_error(env.post(path, body=body, content_type="application/json"), 400, "BAD_JSON")


def test_missing_content_type_is_tried_as_json(env):
    a, b = env.user("a"), env.user("b")
    body = json.dumps({"callerId": a.user_id, "receiverId": b.user_id})
    r = env.post("/calls/start", body=body, content_type="")
    eq(r.status, 200, "start without Content-Type")
    b.expect_event("INCOMING_CALL", call_id=r.json["id"])


def test_json_with_charset_parameter_is_accepted(env):
    a, b = env.user("a"), env.user("b")
    body = json.dumps({"callerId": a.user_id, "receiverId": b.user_id})
    r = env.post("/calls/start", body=body, content_type="application/json; charset=utf-8")
    eq(r.status, 200, "start with application/json; charset=utf-8")


def test_unsupported_content_type_is_415(env):
    for ctype in ("text/plain", "application/xml", "multipart/form-data; boundary=x", "image/png"):
        expect_error(env.post("/calls/start", body=b'{"callerId":"a","receiverId":"b"}', content_type=ctype),
                     415, "UNSUPPORTED_MEDIA_TYPE")


def test_body_over_16_kib_is_413(env):
    body = b'{"callerId": "a", "receiverId": "b", "pad": "' + b"x" * LIMIT + b'"}'
    expect_error(env.post("/calls/start", body=body, content_type="application/json"), 413, "BODY_TOO_LARGE")


def test_body_of_exactly_16_kib_is_accepted(env):
    a, b = env.user("a"), env.user("b")
    head = json.dumps({"callerId": a.user_id, "receiverId": b.user_id})[:-1] + ', "pad": "'
    body = (head + "x" * (LIMIT - len(head) - 2) + '"}').encode()
    eq(len(body), LIMIT, "body length")
    r = env.post("/calls/start", body=body, content_type="application/json")
    eq(r.status, 200, "status of a 16384-byte body (%s)" % r.body[:200])


def raw_exchange(port, head, chunks=()):
    """Send a raw request (head, then body chunks; the server may answer and close early, so send
    errors are ignored) and return the status line of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(head)
            for c in chunks:
                s.sendall(c)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    return data.split(b"\r\n", 1)[0]


def test_chunked_body_over_16_kib_is_413(env):
    chunks = []
    for piece in [b'{"callerId": "a", "pad": "'] + [b"y" * 4096] * 5 + [b'"}']:
        chunks.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    chunks.append(b"0\r\n\r\n")
    status = raw_exchange(env.service.port, b"POST /calls/start HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", chunks)
    check(status.split(b" ")[1:2] == [b"413"], "reply to a chunked 20 KiB body: %r" % status)


def test_huge_declared_content_length_is_413(env):
    status = raw_exchange(env.service.port, b"POST /calls/start HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
                          [b'{"callerId":'])
    check(status.split(b" ")[1:2] == [b"413"], "reply to a 1 GB Content-Length: %r" % status)


def test_form_urlencoded_start_answer_end(env):
    a, b = env.user("a"), env.user("b")
    r = env.post("/calls/start", form={"callerId": a.user_id, "receiverId": b.user_id})
    eq(r.status, 200, "form start")
    call_id = r.json["id"]
    r = env.post("/calls/answer", form={"callId": call_id, "answer": "ACCEPT"})
    eq(r.status, 200, "form answer")
    r = env.post("/calls/end", form={"callId": call_id, "userId": b.user_id})
    eq(r.status, 200, "form end")
    eq(r.json["status"], "ENDED", "status")


def test_form_urlencoded_missing_field(env):
    expect_error(env.post("/calls/start", form={"callerId": "someone"}), 400, "MISSING_FIELD",
                 "callerId and receiverId are required")


def test_form_urlencoded_decodes_percent_escapes(env):
    a = env.user("a", name="A")
    uid = env.uid("sp") + " x&y=z\u00e9"
    b = env.client(uid)
    env.wait_online(uid)
    r = env.post("/calls/start", form={"callerId": a.user_id, "receiverId": uid})
    eq(r.status, 200, "start with an escaped receiver id (%s)" % r.body[:200])
    eq(r.json["receiver"]["id"], uid, "decoded receiver id")
    b.expect_event("INCOMING_CALL")


def test_form_urlencoded_non_utf8_is_refused(env):
    r = env.post("/calls/start", body=b"callerId=%FF%FE&receiverId=b",
                 content_type="application/x-www-form-urlencoded")
    check(r.status == 400 and r.json and r.json.get("error") in ("BAD_JSON", "INVALID_ID"),
          "non-UTF-8 form value: %d %s" % (r.status, r.body[:200]))


# ---- ids --------------------------------------------------------------------------------------

BAD_IDS = {
    "slash": "a/b", "plus": "a+b", "hash": "a#b", "only plus": "+", "only hash": "#",
    "NUL": "a\x00b", "newline": "a\nb", "tab": "a\tb", "escape": "a\x1bb", "DEL": "a\x7fb",
    "129 bytes": "i" * 129, "129 bytes multibyte": "\u20ac" * 43,
}


def refused_ids(env, field, other, form=False, labels=None):
    """Post start with each bad id in field; return the descriptions of the wrong replies."""
    wrong = []
    for label in labels or BAD_IDS:
        body = {field: BAD_IDS[label], other[0]: other[1]}
        r = env.post("/calls/start", form=body) if form else env.post("/calls/start", body)
        if not (r.status == 400 and r.json and r.json.get("error") == "INVALID_ID"
                and r.json.get("message") == "%s is not a valid id" % field):
            wrong.append("%s: %d %s" % (label, r.status, r.body[:160]))
    return wrong


def test_invalid_caller_ids_are_400_invalid_id(env):
    b = env.user("b")
    wrong = refused_ids(env, "callerId", ("receiverId", b.user_id))
    check(not wrong, "callerId not refused with 400 INVALID_ID 'callerId is not a valid id':\n  " +
          "\n  ".join(wrong))
    b.expect_no_event(0.2)


def test_invalid_receiver_ids_are_400_invalid_id(env):
    a = env.user("a")
    wrong = refused_ids(env, "receiverId", ("callerId", a.user_id))
    check(not wrong, "receiverId not refused with 400 INVALID_ID 'receiverId is not a valid id':\n  " +
          "\n  ".join(wrong))


def test_invalid_ids_in_form_bodies_are_400_invalid_id(env):
    b = env.user("b")
    wrong = refused_ids(env, "callerId", ("receiverId", b.user_id), form=True,
                        labels=("slash", "plus", "hash", "NUL", "newline", "DEL", "129 bytes"))
    check(not wrong, "form callerId not refused with 400 INVALID_ID 'callerId is not a valid id':\n  " +
          "\n  ".join(wrong))


def test_longest_valid_ids_pass_validation(env):
    b = env.user("b")
    for uid in ("v" * 128, "\u20ac" * 42 + "vv"):
        eq(len(uid.encode()), 128, "test id length")
        expect_error(env.post("/calls/start", {"callerId": uid, "receiverId": b.user_id}), 404,
                     "CALLER_OFFLINE", "Caller is offline")


def test_invalid_id_in_end_is_refused(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    for bad in ("a/b", "x" * 129, "a\x01"):
        r = env.end(call["id"], bad)
        check(r.status in (400, 403) and r.json and r.json.get("error") in ("INVALID_ID", "NOT_A_PARTY"),
              "end with userId %r: %d %s" % (bad, r.status, r.body[:200]))
    eq(env.answer(call["id"], "ACCEPT").json["status"], "ONGOING", "call untouched")


def test_garbage_call_ids_are_not_found_or_invalid(env):
    for bad in ("not-a-uuid", "../../etc/passwd", "a" * 500, "\u00e9\u00e9"):
        r = env.answer(bad, "ACCEPT")
        check(r.status == 400 and r.json and r.json.get("error") in ("CALL_NOT_FOUND", "INVALID_ID"),
              "answer callId %r: %d %s" % (bad[:20], r.status, r.body[:200]))


def test_path_traversal_and_odd_paths_are_404(env):
    # (GET /calls and /calls/ are the call history now: 57_history.py.)
    for path in ("/../etc/passwd", "/users/../../x", "/%00", "/callsx", "/calls/x/y"):
        r = env.get(path)
        check(r.status in (404, 405) and r.json and r.json.get("error") in ("NOT_FOUND", "METHOD_NOT_ALLOWED"),
              "GET %s: %d %s" % (path, r.status, r.body[:200]))


def test_garbage_request_line_does_not_kill_the_service(env):
    for raw in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, b"GARBAGE\r\n\r\n",
                b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                b"POST /calls/start HTTP/1.1\r\n" + b"X-Long: " + b"h" * 20000 + b"\r\n\r\n"):
        try:
            with socket.create_connection(("127.0.0.1", env.service.port), timeout=3) as s:
                s.sendall(raw)
                s.shutdown(socket.SHUT_WR)
                s.recv(4096)
        except OSError:
            pass
    eq(env.get("/health").status, 200, "health after garbage connections")


def test_still_serves_a_full_call_after_all_the_bad_input(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    a.expect_event("ACCEPT_CALL")
    r = env.end(call["id"], b)
    eq(r.status, 200, "end")
    a.expect_event("END_CALL")
    b.expect_event("ACCEPT_CALL")
    b.expect_event("END_CALL")


if __name__ == "__main__":
    h.main()

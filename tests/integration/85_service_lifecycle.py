#!/usr/bin/python3
"""Service lifecycle: presence rebuilt after a service restart from the broker's retained replay,
graceful exit 0 on SIGTERM and SIGINT (also with clients and calls live), the "listening on" line
and the log line format."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) +\S")


@h.options()
def test_presence_rebuilt_after_service_restart(env):
    a = env.user("a", name="Ann", location="Paris")
    uid = env.uid("multi")
    phone = env.client(uid, client_id="phone-" + uid)
    env.client(uid, client_id="web-" + uid, transport="websockets")
    gone = env.user("gone")
    gone.drop()
    env.wait_offline(gone.user_id)
    env.service.restart()
    env.wait_online(a.user_id)
    env.wait_online(uid)
    users = {u["id"]: u for u in env.users()}
    eq(users[a.user_id], {"id": a.user_id, "name": "Ann", "location": "Paris"}, "replayed user")
    check(gone.user_id not in users, "user who left before the restart is listed")
    # both devices were replayed: losing one keeps the user online
    phone.drop()
    env.sync()
    check(uid in env.user_ids(), "user with a remaining device went offline after the restart")


@h.options()
def test_calls_work_after_service_restart(env):
    a, b = env.user("a"), env.user("b")
    env.service.restart()
    env.wait_online(a.user_id)
    env.wait_online(b.user_id)
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])


@h.options()
def test_sigterm_with_live_clients_and_calls_exits_0(env):
    a, b, c, d = env.user("a"), env.user("b"), env.user("c"), env.user("d")
    env.start_call(a, b)
    call = env.start_call(c, d)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    env.service.stop(signal.SIGTERM, expect_code=0)


@h.options()
def test_sigint_exits_0(env):
    env.service.stop(signal.SIGINT, expect_code=0)


@h.options()
def test_sigterm_while_broker_is_down_exits_0(env):
    env.broker.stop()
    h.wait_until(lambda: env.get("/ready").status == 503, 5, what="ready 503")
    env.service.stop(signal.SIGTERM, expect_code=0, timeout=10)


@h.options()
def test_service_logs_listening_line_and_well_formed_lines(env):
    text = env.service.stderr()
    check("listening on http://127.0.0.1:%d" % env.service.port in text,
          "no 'listening on http://127.0.0.1:%d' in the log" % env.service.port)
    env.get("/nope")
    env.user("a").drop()
    env.service.stop()
    bad = [line for line in env.service.stderr().splitlines() if line and not LOG_LINE.match(line)]
    check(not bad, "log lines not in the 'ISO-time LEVEL message' format: %r" % bad[:5])


@h.options(service_env={"LOG_LEVEL": "warn"})
def test_log_level_warn_hides_info(env):
    env.user("a")
    env.get("/users")
    env.service.stop()
    info = [line for line in env.service.stderr().splitlines() if " INFO " in line or " DEBUG " in line]
    check(not info, "INFO/DEBUG lines with LOG_LEVEL=warn: %r" % info[:3])


@h.options()
def test_bad_presence_is_logged_at_warn(env):
    env.raw_publish("users/%s/presence/dev" % env.uid(), b"not json")
    env.sync()
    check(any(" WARN " in line for line in env.service.stderr().splitlines()),
          "no WARN line for a non-JSON presence payload")


@h.options(instances=1)  # counts the broker connections of one service
def test_service_uses_random_callsignal_client_id_and_qos1_subscription(env):
    second = env.spawn_service()
    log = h.read_text(env.broker.log_path)
    ids = set(re.findall(r"New client connected from \S+ as (callsignal-\S+) \(p\d, c1,", log))
    eq(len(ids), 2, "distinct clean-session callsignal-<random> client ids in the broker log (%s)" % ids)
    check(re.search(r"callsignal-\S+ 1 users/\+/presence/\+", log),
          "no QoS 1 subscription to users/+/presence/+ in the broker log")
    a, b = env.user("a"), env.user("b")
    h.wait_until(lambda: len(h.http_request(second.port, "GET", "/users").json) >= 2, 5,
                 what="second service sees the users")
    r = h.http_request(second.port, "POST", "/calls/start", json_body={"callerId": a.user_id,
                                                                       "receiverId": b.user_id})
    eq(r.status, 200, "start on the second service")
    b.expect_event("INCOMING_CALL", call_id=r.json["id"])


if __name__ == "__main__":
    h.main(shared=False)

#!/usr/bin/python3
"""POST /calls/start: the DIALLING Call, INCOMING_CALL to every device of the receiver (MQTT/TCP and
WebSocket clients), and every error of the spec with its exact status, code and message."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402


def start(env, caller, receiver):
    return env.post("/calls/start", {"callerId": getattr(caller, "user_id", caller),
                                     "receiverId": getattr(receiver, "user_id", receiver)})


def test_start_returns_dialling_call_with_both_users(env):
    a = env.user("caller", name="Ann", location="Oslo")
    b = env.user("callee", name="Bob", location="Rome")
    t0 = time.time()
    r = start(env, a, b)
    eq(r.status, 200, "status")
    check(r.headers.get("Content-Type", "").startswith("application/json"), "Content-Type")
    call = h.check_call(r.json, "DIALLING", a, b)
    check("answeredAt" not in call and "endedAt" not in call, "dialling call with answeredAt/endedAt")
    check("errMsg" not in call, "dialling call with errMsg")
    created = time.mktime(time.strptime(call["createdAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    check(abs(created - t0) < 5, "createdAt %s is not now" % call["createdAt"])


def test_receiver_gets_incoming_call_over_tcp(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    ev = b.expect_event("INCOMING_CALL", call_id=call["id"])
    eq(ev["call"], call, "call in the INCOMING_CALL event")
    b.expect_no_event(0.3)


def test_receiver_gets_incoming_call_over_websocket(env):
    a = env.user("a")
    b = env.user("wsb", transport="websockets")
    call = env.start_call(a, b)
    ev = b.expect_event("INCOMING_CALL", call_id=call["id"])
    eq(ev["call"], call, "call in the INCOMING_CALL event")


def test_websocket_caller_can_call_tcp_receiver(env):
    a = env.user("wsa", transport="websockets")
    b = env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])


def test_every_device_of_the_receiver_gets_incoming_call(env):
    a = env.user("a")
    uid = env.uid("rcv")
    devices = [env.client(uid, client_id="phone-" + uid),
               env.client(uid, client_id="web-" + uid, transport="websockets"),
               env.client(uid, client_id="tv-" + uid)]
    env.wait_online(uid)
    call = env.start_call(a, uid)
    for d in devices:
        d.expect_event("INCOMING_CALL", call_id=call["id"])
        d.expect_no_event(0.2)


def test_caller_gets_no_event_on_start(env):
    a, b = env.user("a"), env.user("b")
    env.start_call(a, b)
    a.expect_no_event(0.5)


def test_listener_without_presence_on_receiver_topic_gets_the_event(env):
    b = env.user("b")
    watcher = env.client(b.user_id, presence=False)
    a = env.user("a")
    call = env.start_call(a, b)
    watcher.expect_event("INCOMING_CALL", call_id=call["id"])


def test_call_ids_are_distinct_uuid_v4(env):
    ids = set()
    for _ in range(5):
        a, b = env.user("a"), env.user("b")
        ids.add(env.start_call(a, b)["id"])
    eq(len(ids), 5, "distinct call ids")


def test_call_users_are_snapshots_taken_at_start(env):
    a = env.user("snap", name="Before")
    b = env.user("b")
    call = env.start_call(a, b)
    a.publish_presence({"id": a.user_id, "name": "After", "location": "Elsewhere"})
    h.wait_until(lambda: any(u["id"] == a.user_id and u["name"] == "After" for u in env.users()),
                 what="renamed presence")
    r = env.end(call["id"], a)
    eq(r.status, 200, "end status")
    eq(r.json["caller"], {"id": a.user_id, "name": "Before", "location": ""}, "caller snapshot")


def test_missing_both_fields(env):
    expect_error(env.post("/calls/start", {}), 400, "MISSING_FIELD", "callerId and receiverId are required")


def test_missing_receiver_id(env):
    a = env.user("a")
    expect_error(env.post("/calls/start", {"callerId": a.user_id}), 400, "MISSING_FIELD",
                 "callerId and receiverId are required")


def test_missing_caller_id(env):
    b = env.user("b")
    expect_error(env.post("/calls/start", {"receiverId": b.user_id}), 400, "MISSING_FIELD",
                 "callerId and receiverId are required")


def test_caller_id_number_is_invalid_field(env):
    b = env.user("b")
    expect_error(env.post("/calls/start", {"callerId": 42, "receiverId": b.user_id}), 400,
                 "INVALID_FIELD", "callerId must be a string")


def test_receiver_id_of_wrong_types_is_invalid_field(env):
    a = env.user("a")
    for bad in (7, 1.5, True, [], {"id": "x"}):
        expect_error(env.post("/calls/start", {"callerId": a.user_id, "receiverId": bad}), 400,
                     "INVALID_FIELD", "receiverId must be a string")


def test_invalid_caller_id(env):
    b = env.user("b")
    expect_error(env.post("/calls/start", {"callerId": "a/b", "receiverId": b.user_id}), 400,
                 "INVALID_ID", "callerId is not a valid id")


def test_invalid_receiver_id(env):
    a = env.user("a")
    expect_error(env.post("/calls/start", {"callerId": a.user_id, "receiverId": "x#y"}), 400,
                 "INVALID_ID", "receiverId is not a valid id")


def test_self_call(env):
    a = env.user("self")
    expect_error(start(env, a, a), 400, "SELF_CALL", "Cannot call yourself")
    a.expect_no_event(0.3)


def test_caller_offline(env):
    b = env.user("b")
    expect_error(start(env, env.uid("nobody"), b), 404, "CALLER_OFFLINE", "Caller is offline")
    b.expect_no_event(0.3)


def test_receiver_offline(env):
    a = env.user("a")
    expect_error(start(env, a, env.uid("nobody")), 404, "RECEIVER_OFFLINE", "Receiver is offline")


def test_receiver_who_went_offline_cannot_be_called(env):
    a, b = env.user("a"), env.user("b")
    b.drop()
    env.wait_offline(b.user_id)
    expect_error(start(env, a, b), 404, "RECEIVER_OFFLINE", "Receiver is offline")


def test_caller_busy_while_own_call_is_ringing(env):
    a, b, c = env.user("a"), env.user("b"), env.user("c")
    env.start_call(a, b)
    expect_error(start(env, a, c), 400, "CALLER_BUSY", "Caller busy")
    c.expect_no_event(0.3)


def test_receiver_busy_while_ringing(env):
    a, b, c = env.user("a"), env.user("b"), env.user("c")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL")
    expect_error(start(env, c, b), 400, "RECEIVER_BUSY", "Receiver busy")
    # the busy receiver learns of the attempt (a missed-call record); the ringing call goes on
    missed = b.expect_event("END_CALL")["call"]
    eq((missed["status"], missed.get("endReason")), ("MISSED", "BUSY"), "status and reason of the record")
    eq((missed["caller"]["id"], missed["receiver"]["id"]), (c.user_id, b.user_id), "parties of the record")
    check(missed["id"] != call["id"], "the record has an id of its own")
    b.expect_no_event(0.3)
    eq(env.get("/users/%s/call" % b.user_id).json.get("id"), call["id"], "b's live call after the record")


def test_callee_of_a_ringing_call_is_busy_as_caller(env):
    a, b, c = env.user("a"), env.user("b"), env.user("c")
    env.start_call(a, b)
    expect_error(start(env, b, c), 400, "CALLER_BUSY", "Caller busy")


def test_caller_of_a_ringing_call_is_busy_as_receiver(env):
    a, b, c = env.user("a"), env.user("b"), env.user("c")
    env.start_call(a, b)
    expect_error(start(env, c, a), 400, "RECEIVER_BUSY", "Receiver busy")


def test_both_busy_in_an_ongoing_call(env):
    a, b, c = env.user("a"), env.user("b"), env.user("c")
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept status")
    expect_error(start(env, a, c), 400, "CALLER_BUSY", "Caller busy")
    expect_error(start(env, c, b), 400, "RECEIVER_BUSY", "Receiver busy")


def test_calling_back_the_caller_of_a_ringing_call_accepts_it(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    r = start(env, b, a)
    eq(r.status, 200, "reverse call while ringing: %s" % r.body[:200])
    eq((r.json["id"], r.json["status"]), (call["id"], "ONGOING"), "the ringing call, accepted")
    eq(r.json.get("answeredBy"), {"userId": b.user_id}, "answeredBy of a merged call")
    a.expect_event("ACCEPT_CALL", call_id=call["id"])
    b.expect_event("ACCEPT_CALL", call_id=call["id"])


def test_parties_are_free_again_after_the_call_ends(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    eq(env.end(call["id"], a).status, 200, "end status")
    second = env.start_call(b, a)
    check(second["id"] != call["id"], "same call id reused")


def test_offline_checked_caller_first(env):
    expect_error(start(env, env.uid("ghost1"), env.uid("ghost2")), 404, "CALLER_OFFLINE", "Caller is offline")


def test_form_urlencoded_start(env):
    a, b = env.user("a"), env.user("b")
    r = env.post("/calls/start", form={"callerId": a.user_id, "receiverId": b.user_id})
    eq(r.status, 200, "status of a form-encoded start")
    h.check_call(r.json, "DIALLING", a, b)
    b.expect_event("INCOMING_CALL", call_id=r.json["id"])


def test_events_are_not_retained(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    topic, payload, retained = [m for m in list(b.messages.queue) if m[0] == b.events_topic][0]
    check(not retained, "INCOMING_CALL delivered as retained")
    late = env.client(b.user_id, presence=False)  # subscribes after the event
    late.expect_no_event(0.5)


def test_event_payload_is_id_type_and_call(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    ev = b.expect_event("INCOMING_CALL", call_id=call["id"])
    eq(sorted(ev), ["call", "id", "type"], "keys of the event payload")
    eq(ev["id"], "%s:1" % call["id"], "event id: the call id and the revision it produced")


@h.options(service_env={"START_RATE_PER_MIN": "3"})
def test_start_rate_limit_gives_429_with_retry_after(env):
    a = env.user("a")
    for i in range(3):  # attempts that pass validation count, whatever their outcome
        expect_error(start(env, a, env.uid("offline")), 404, "RECEIVER_OFFLINE")
    b = env.user("b")
    r = start(env, a, b)
    expect_error(r, 429, "RATE_LIMITED")
    retry = r.headers.get("Retry-After", "")
    check(retry.isdigit() and 1 <= int(retry) <= 60, "Retry-After %r" % retry)
    b.expect_no_event(0.3)
    c = env.user("c")
    env.start_call(b, c)  # the limit is per user


@h.options(service_env={"START_RATE_PER_MIN": "0"})
def test_start_rate_limit_zero_is_off(env):
    a = env.user("a")
    for i in range(70):
        r = start(env, a, env.uid("offline"))
        eq(r.status, 404, "attempt %d with START_RATE_PER_MIN=0" % (i + 1))


if __name__ == "__main__":
    h.main()

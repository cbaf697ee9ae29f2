#!/usr/bin/python3
"""POST /calls/answer: ACCEPT -> ONGOING with ACCEPT_CALL to both parties (every device), DECLINE ->
DECLINED with DECLINE_CALL to both; 409 on a call that is not ringing; every validation error."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

UNKNOWN_CALL = "7d3c9a4e-1b2f-4c3d-8e9f-0a1b2c3d4e5f"


def test_accept_makes_call_ongoing_and_notifies_both(env):
    a, b, call = env.ringing_call()
    r = env.answer(call["id"], "ACCEPT")
    eq(r.status, 200, "status")
    ongoing = h.check_call(r.json, "ONGOING", a, b)
    eq(ongoing["id"], call["id"], "call id")
    eq(ongoing["createdAt"], call["createdAt"], "createdAt")
    check("answeredAt" in ongoing, "ONGOING call without answeredAt")
    check(ongoing["answeredAt"] >= ongoing["createdAt"], "answeredAt before createdAt")
    check("endedAt" not in ongoing, "ONGOING call with endedAt")
    for party in (a, b):
        ev = party.expect_event("ACCEPT_CALL", call_id=call["id"])
        eq(ev["call"], ongoing, "call in %s's ACCEPT_CALL" % party.user_id)
        party.expect_no_event(0.2)


def test_decline_makes_call_declined_and_notifies_both(env):
    a, b, call = env.ringing_call()
    r = env.answer(call["id"], "DECLINE")
    eq(r.status, 200, "status")
    declined = h.check_call(r.json, "DECLINED", a, b)
    eq(declined["id"], call["id"], "call id")
    for party in (a, b):
        ev = party.expect_event("DECLINE_CALL", call_id=call["id"])
        eq(ev["call"], declined, "call in %s's DECLINE_CALL" % party.user_id)
        party.expect_no_event(0.2)


def test_accept_reaches_every_device_of_both_parties(env):
    a, b = env.uid("a"), env.uid("b")
    devs = [env.client(a, client_id="a1-" + a), env.client(a, client_id="a2-" + a, transport="websockets"),
            env.client(b, client_id="b1-" + b), env.client(b, client_id="b2-" + b, transport="websockets")]
    env.wait_online(a)
    env.wait_online(b)
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept status")
    for d in devs[2:]:
        d.expect_event("INCOMING_CALL", call_id=call["id"])
    for d in devs:
        d.expect_event("ACCEPT_CALL", call_id=call["id"])


def test_decline_stops_ringing_on_every_receiver_device(env):
    a = env.user("a")
    b = env.uid("b")
    devs = [env.client(b, client_id="b%d-%s" % (i, b)) for i in range(3)]
    env.wait_online(b)
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "DECLINE").status, 200, "decline status")
    for d in devs:
        d.expect_event("INCOMING_CALL", call_id=call["id"])
        d.expect_event("DECLINE_CALL", call_id=call["id"])


def test_second_accept_is_409_not_ringing_with_the_call(env):
    a, b, call = env.ringing_call()
    first = env.answer(call["id"], "ACCEPT")
    eq(first.status, 200, "first accept")
    body = expect_error(env.answer(call["id"], "ACCEPT"), 409, "CALL_NOT_RINGING",
                        "Call is not ringing (status ONGOING)")
    eq(body.get("call"), first.json, "call in the 409 body")
    for party in (a, b):
        party.expect_event("ACCEPT_CALL", call_id=call["id"])
        party.expect_no_event(0.3)


def test_decline_after_accept_is_409(env):
    a, b, call = env.ringing_call()
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    expect_error(env.answer(call["id"], "DECLINE"), 409, "CALL_NOT_RINGING", "Call is not ringing (status ONGOING)")


def test_accept_after_decline_is_409(env):
    a, b, call = env.ringing_call()
    eq(env.answer(call["id"], "DECLINE").status, 200, "decline")
    body = expect_error(env.answer(call["id"], "ACCEPT"), 409, "CALL_NOT_RINGING",
                        "Call is not ringing (status DECLINED)")
    eq(body["call"]["status"], "DECLINED", "status of the call in the 409 body")


def test_accept_after_cancel_is_409(env):
    a, b, call = env.ringing_call()
    eq(env.end(call["id"], a).status, 200, "cancel")
    expect_error(env.answer(call["id"], "ACCEPT"), 409, "CALL_NOT_RINGING", "Call is not ringing (status ENDED)")


def test_unknown_call_is_not_found(env):
    expect_error(env.answer(UNKNOWN_CALL, "ACCEPT"), 400, "CALL_NOT_FOUND", "Call not found")


def test_bad_answer_value(env):
    a, b, call = env.ringing_call()
    for bad in ("accept", "YES", "ACCEPT ", "DECLINED"):
        expect_error(env.answer(call["id"], bad), 400, "INVALID_ANSWER", "answer must be ACCEPT or DECLINE")
    b.expect_no_event(0.2)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "the call still rings after bad answers")


def test_answer_of_wrong_type_is_invalid_field(env):
    a, b, call = env.ringing_call()
    for bad in (1, True, ["ACCEPT"], {"a": 1}):
        expect_error(env.answer(call["id"], bad), 400, "INVALID_FIELD")


def test_call_id_of_wrong_type_is_invalid_field(env):
    for bad in (12, False, [UNKNOWN_CALL]):
        expect_error(env.post("/calls/answer", {"callId": bad, "answer": "ACCEPT"}), 400, "INVALID_FIELD")


def test_missing_fields(env):
    a, b, call = env.ringing_call()
    expect_error(env.post("/calls/answer", {}), 400, "MISSING_FIELD")
    expect_error(env.post("/calls/answer", {"callId": call["id"]}), 400, "MISSING_FIELD")
    expect_error(env.post("/calls/answer", {"answer": "ACCEPT"}), 400, "MISSING_FIELD")


def test_form_urlencoded_answer(env):
    a, b, call = env.ringing_call()
    r = env.post("/calls/answer", form={"callId": call["id"], "answer": "ACCEPT"})
    eq(r.status, 200, "status")
    h.check_call(r.json, "ONGOING")
    a.expect_event("ACCEPT_CALL", call_id=call["id"])


def test_websocket_parties_get_answer_events(env):
    a, b, call = env.ringing_call(transport="websockets")
    eq(env.answer(call["id"], "DECLINE").status, 200, "decline")
    a.expect_event("DECLINE_CALL", call_id=call["id"])
    b.expect_event("DECLINE_CALL", call_id=call["id"])


if __name__ == "__main__":
    h.main()

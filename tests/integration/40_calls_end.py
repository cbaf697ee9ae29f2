#!/usr/bin/python3
"""POST /calls/end: cancelling a DIALLING call (either party), ending an ONGOING call, END_CALL to
both parties on every device, idempotent repeats (same Call, no second event), 403 for non-parties
and the validation errors."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

UNKNOWN_CALL = "0f8e2d4c-6b5a-4978-9a1b-2c3d4e5f6a7b"


def test_caller_cancels_dialling_call(env):
    a, b, call = env.ringing_call()
    r = env.end(call["id"], a)
    eq(r.status, 200, "status")
    ended = h.check_call(r.json, "ENDED", a, b)
    eq(ended["id"], call["id"], "call id")
    check("endedAt" in ended, "ENDED call without endedAt")
    check(ended["endedAt"] >= ended["createdAt"], "endedAt before createdAt")
    for party in (a, b):
        ev = party.expect_event("END_CALL", call_id=call["id"])
        eq(ev["call"], ended, "call in %s's END_CALL" % party.user_id)
        party.expect_no_event(0.2)


def test_receiver_rejecting_by_end_while_dialling_ends_the_call(env):
    a, b, call = env.ringing_call()
    r = env.end(call["id"], b)
    eq(r.status, 200, "status")
    h.check_call(r.json, "ENDED")
    a.expect_event("END_CALL", call_id=call["id"])
    b.expect_event("END_CALL", call_id=call["id"])


def test_cancel_stops_ringing_on_every_receiver_device(env):
    a = env.user("a")
    b = env.uid("b")
    devs = [env.client(b, client_id="phone-" + b),
            env.client(b, client_id="web-" + b, transport="websockets"),
            env.client(b, client_id="tablet-" + b)]
    env.wait_online(b)
    call = env.start_call(a, b)
    eq(env.end(call["id"], a).status, 200, "cancel status")
    for d in devs:
        d.expect_event("INCOMING_CALL", call_id=call["id"])
        ev = d.expect_event("END_CALL", call_id=call["id"])
        eq(ev["call"]["status"], "ENDED", "status in END_CALL on " + d.client_id)
        d.expect_no_event(0.2)
    a.expect_event("END_CALL", call_id=call["id"])


def test_end_ongoing_call_by_either_party(env):
    for ender in ("caller", "receiver"):
        a, b, call = env.ongoing_call()
        r = env.end(call["id"], a if ender == "caller" else b)
        eq(r.status, 200, "end by %s" % ender)
        ended = h.check_call(r.json, "ENDED", a, b)
        check("answeredAt" in ended and "endedAt" in ended, "ended call lacks answeredAt/endedAt")
        check(ended["endedAt"] >= ended["answeredAt"], "endedAt before answeredAt")
        for party in (a, b):
            ev = party.expect_event("END_CALL", call_id=call["id"])
            eq(ev["call"], ended, "call in END_CALL")


def test_repeated_end_returns_same_call_and_no_second_event(env):
    a, b, call = env.ongoing_call()
    first = env.end(call["id"], a)
    eq(first.status, 200, "first end")
    a.expect_event("END_CALL", call_id=call["id"])
    b.expect_event("END_CALL", call_id=call["id"])
    for who in (a, b, a):
        again = env.end(call["id"], who)
        eq(again.status, 200, "repeated end status")
        eq(again.json, first.json, "call returned by a repeated end")
    a.expect_no_event(0.5)
    b.expect_no_event(0.1)


def test_end_of_declined_call_returns_it_unchanged_without_event(env):
    a, b, call = env.ringing_call()
    declined = env.answer(call["id"], "DECLINE")
    eq(declined.status, 200, "decline")
    a.expect_event("DECLINE_CALL")
    b.expect_event("DECLINE_CALL")
    r = env.end(call["id"], b)
    eq(r.status, 200, "end of a declined call")
    eq(r.json, declined.json, "call returned")
    a.expect_no_event(0.4)
    b.expect_no_event(0.1)


def test_non_party_gets_403(env):
    a, b, call = env.ongoing_call()
    c = env.user("intruder")
    expect_error(env.end(call["id"], c), 403, "NOT_A_PARTY", "User is not a party of this call")
    expect_error(env.end(call["id"], env.uid("offline")), 403, "NOT_A_PARTY", "User is not a party of this call")
    a.expect_no_event(0.3)
    # the call is untouched
    eq(env.end(call["id"], a).json["status"], "ENDED", "call ended by its party afterwards")


def test_non_party_gets_403_on_a_finished_call_too(env):
    a, b, call = env.ringing_call()
    eq(env.end(call["id"], a).status, 200, "cancel")
    expect_error(env.end(call["id"], env.uid("x")), 403, "NOT_A_PARTY", "User is not a party of this call")


def test_non_party_cannot_cancel_a_dialling_call(env):
    a, b, call = env.ringing_call()
    expect_error(env.end(call["id"], env.user("c")), 403, "NOT_A_PARTY", "User is not a party of this call")
    eq(env.answer(call["id"], "ACCEPT").status, 200, "call still rings after the refused end")


def test_unknown_call_is_not_found(env):
    a = env.user("a")
    expect_error(env.end(UNKNOWN_CALL, a), 400, "CALL_NOT_FOUND", "Call not found")


def test_missing_fields(env):
    a, b, call = env.ringing_call()
    expect_error(env.post("/calls/end", {}), 400, "MISSING_FIELD")
    expect_error(env.post("/calls/end", {"callId": call["id"]}), 400, "MISSING_FIELD")
    expect_error(env.post("/calls/end", {"userId": a.user_id}), 400, "MISSING_FIELD")


def test_wrong_types_are_invalid_field(env):
    a, b, call = env.ringing_call()
    expect_error(env.post("/calls/end", {"callId": call["id"], "userId": 5}), 400, "INVALID_FIELD")
    expect_error(env.post("/calls/end", {"callId": 5, "userId": a.user_id}), 400, "INVALID_FIELD")
    expect_error(env.post("/calls/end", {"callId": call["id"], "userId": [a.user_id]}), 400, "INVALID_FIELD")


def test_parties_can_call_again_after_end(env):
    a, b, call = env.ongoing_call()
    eq(env.end(call["id"], b).status, 200, "end")
    again = env.start_call(a, b)
    check(again["id"] != call["id"], "new call reuses the id")


def test_form_urlencoded_end(env):
    a, b, call = env.ringing_call()
    r = env.post("/calls/end", form={"callId": call["id"], "userId": a.user_id})
    eq(r.status, 200, "status")
    h.check_call(r.json, "ENDED")


if __name__ == "__main__":
    h.main()

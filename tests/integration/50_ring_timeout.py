#!/usr/bin/python3
"""Ring timeout (RING_TIMEOUT_S=1 here): a call left DIALLING becomes MISSED with END_CALL to both
parties (every receiver device); answering it afterwards is refused; answered calls are unaffected."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

SHARED = {"service_env": {"RING_TIMEOUT_S": "1", "CALL_RETENTION_S": "600"}}


def test_unanswered_call_becomes_missed_with_end_call_to_both(env):
    a = env.user("a")
    b = env.uid("b")
    devs = [env.client(b, client_id="b1-" + b), env.client(b, client_id="b2-" + b, transport="websockets")]
    env.wait_online(b)
    t0 = time.monotonic()
    call = env.start_call(a, b)
    for d in devs:
        d.expect_event("INCOMING_CALL", call_id=call["id"])
    ev = a.expect_event("END_CALL", timeout=4, call_id=call["id"])
    waited = time.monotonic() - t0
    check(0.8 <= waited <= 3.0, "MISSED after %.2fs with RING_TIMEOUT_S=1" % waited)
    missed = h.check_call(ev["call"], "MISSED", a)
    check("endedAt" in missed, "MISSED call without endedAt")
    check("answeredAt" not in missed, "MISSED call with answeredAt")
    for d in devs:
        ev_b = d.expect_event("END_CALL", timeout=2, call_id=call["id"])
        eq(ev_b["call"], missed, "call in the receiver's END_CALL")
    a.expect_no_event(0.3)


def test_call_keeps_ringing_before_the_timeout(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    a.expect_no_event(0.6)
    r = env.answer(call["id"], "ACCEPT")
    eq(r.status, 200, "accept within the ring timeout")
    eq(r.json["status"], "ONGOING", "status")


def test_answer_after_ring_timeout_is_refused(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    a.expect_event("END_CALL", timeout=4, call_id=call["id"])
    body = expect_error(env.answer(call["id"], "ACCEPT"), 409, "CALL_NOT_RINGING",
                        "Call is not ringing (status MISSED)")
    eq(body["call"]["status"], "MISSED", "call in the 409 body")


def test_end_after_ring_timeout_returns_missed_call_without_event(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    ev = a.expect_event("END_CALL", timeout=4, call_id=call["id"])
    b.expect_event("INCOMING_CALL")
    b.expect_event("END_CALL")
    r = env.end(call["id"], a)
    eq(r.status, 200, "end of a missed call")
    eq(r.json, ev["call"], "call returned")
    a.expect_no_event(0.3)
    b.expect_no_event(0.1)


def test_answered_call_is_not_ended_by_the_ring_timer(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    a.expect_event("ACCEPT_CALL")
    a.expect_no_event(1.6)
    eq(env.end(call["id"], a).json["status"], "ENDED", "status when ended after the ring timeout")


def test_cancelled_call_gets_no_missed_event_later(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    eq(env.end(call["id"], a).status, 200, "cancel")
    a.expect_event("END_CALL", call_id=call["id"])
    a.expect_no_event(1.6)


def test_parties_are_free_after_a_missed_call(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    a.expect_event("END_CALL", timeout=4, call_id=call["id"])
    env.start_call(b, a)


@h.options(service_env={"RING_TIMEOUT_S": "0.4"})
def test_decimal_ring_timeout_is_honoured(env):
    a, b = env.user("a"), env.user("b")
    t0 = time.monotonic()
    call = env.start_call(a, b)
    ev = a.expect_event("END_CALL", timeout=3, call_id=call["id"])
    waited = time.monotonic() - t0
    eq(ev["call"]["status"], "MISSED", "status")
    check(0.3 <= waited <= 1.5, "MISSED after %.2fs with RING_TIMEOUT_S=0.4" % waited)


if __name__ == "__main__":
    h.main(**SHARED)

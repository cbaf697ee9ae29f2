#!/usr/bin/python3
"""Offline grace (OFFLINE_GRACE_S=1 here): a party of a live call whose last device goes offline
ends the call with status ERROR and errMsg "<name> went offline" unless it comes back in time;
END_CALL goes to both parties (a presence-less listener watches the absent party's topic)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

SHARED = {"service_env": {"OFFLINE_GRACE_S": "1", "RING_TIMEOUT_S": "30", "CALL_RETENTION_S": "600"}}


def live_call(env, accept=True, a_name=None, b_name=None):
    a = env.user("a", name=a_name)
    b = env.user("b", name=b_name)
    b_watch = env.client(b.user_id, presence=False)  # sees b's events while b is offline
    a_watch = env.client(a.user_id, presence=False)
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    b_watch.expect_event("INCOMING_CALL", call_id=call["id"])
    if accept:
        eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
        for c in (a, b, a_watch, b_watch):
            c.expect_event("ACCEPT_CALL", call_id=call["id"])
    return a, b, a_watch, b_watch, call


def test_receiver_dropping_ends_ongoing_call_with_error(env):
    a, b, a_watch, b_watch, call = live_call(env, b_name="Zo\u00eb \u00c5lvarez")
    t0 = time.monotonic()
    b.drop()
    ev = a.expect_event("END_CALL", timeout=5, call_id=call["id"])
    waited = time.monotonic() - t0
    check(0.8 <= waited <= 4.0, "ended %.2fs after the drop with OFFLINE_GRACE_S=1" % waited)
    err = h.check_call(ev["call"], "ERROR", a)
    eq(err.get("errMsg"), "Zo\u00eb \u00c5lvarez went offline", "errMsg")
    check("endedAt" in err, "ERROR call without endedAt")
    ev_b = b_watch.expect_event("END_CALL", timeout=2, call_id=call["id"])
    eq(ev_b["call"], err, "call in the offline party's END_CALL")
    r = env.end(call["id"], a)
    eq(r.status, 200, "end after ERROR")
    eq(r.json, err, "end returns the ERROR call unchanged")
    a.expect_no_event(0.2)


def test_caller_going_offline_during_dialling_ends_call_with_error(env):
    a, b, a_watch, b_watch, call = live_call(env, accept=False, a_name="Caller Carla")
    a.disconnect()  # clean: clears its presence itself
    ev = b.expect_event("END_CALL", timeout=5, call_id=call["id"])
    eq(ev["call"]["status"], "ERROR", "status")
    eq(ev["call"].get("errMsg"), "Caller Carla went offline", "errMsg")
    a_watch.expect_event("END_CALL", timeout=2, call_id=call["id"])


def test_caller_dropping_from_ongoing_call_names_the_caller(env):
    a, b, a_watch, b_watch, call = live_call(env, a_name="Ann")
    a.drop()
    ev = b.expect_event("END_CALL", timeout=5, call_id=call["id"])
    eq(ev["call"].get("errMsg"), "Ann went offline", "errMsg")


def test_coming_back_within_grace_keeps_the_call(env):
    a, b, a_watch, b_watch, call = live_call(env)
    b.drop()
    env.wait_offline(b.user_id)
    b.connect()  # back well within 1 s
    env.wait_online(b.user_id)
    a.expect_no_event(1.8)
    b_watch.expect_no_event(0.1)
    r = env.end(call["id"], a)
    eq(r.status, 200, "end")
    eq(r.json["status"], "ENDED", "the call survived the short absence")


def test_coming_back_on_another_device_within_grace_keeps_the_call(env):
    a, b, a_watch, b_watch, call = live_call(env)
    b.drop()
    env.wait_offline(b.user_id)
    env.client(b.user_id, client_id="other-" + b.user_id, transport="websockets")
    a.expect_no_event(1.8)
    eq(env.end(call["id"], b).json["status"], "ENDED", "status")


def test_losing_one_of_two_devices_does_not_start_the_grace(env):
    a, b, a_watch, b_watch, call = live_call(env)
    env.client(b.user_id, client_id="second-" + b.user_id)
    env.sync()
    b.drop()
    a.expect_no_event(1.8)
    eq(env.end(call["id"], a).json["status"], "ENDED", "status")


def test_offline_after_call_finished_changes_nothing(env):
    a, b, a_watch, b_watch, call = live_call(env)
    ended = env.end(call["id"], a)
    eq(ended.status, 200, "end")
    a.expect_event("END_CALL")
    b.drop()
    a.expect_no_event(1.6)
    eq(env.end(call["id"], a).json, ended.json, "call after the party left")


def test_grace_expiry_frees_the_remaining_party(env):
    a, b, a_watch, b_watch, call = live_call(env)
    b.drop()
    a.expect_event("END_CALL", timeout=5, call_id=call["id"])
    c = env.user("c")
    env.start_call(a, c)


if __name__ == "__main__":
    h.main(**SHARED)

#!/usr/bin/python3
"""Retention (CALL_RETENTION_S=1 here): a finished call is still answered for while retained, then
forgotten: end/answer give 400 CALL_NOT_FOUND and /token refuses the room. Beyond
CALL_RETENTION_MAX finished calls the oldest are forgotten first."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import eq, expect_error  # noqa: E402

SHARED = {"service_env": {"CALL_RETENTION_S": "1", "RING_TIMEOUT_S": "0.5",
                          "LIVEKIT_API_KEY": "retention-key",
                          "LIVEKIT_API_SECRET": "retention-secret-0123456789abcdef0123456789"}}


def test_ended_call_is_kept_then_forgotten(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    first = env.end(call["id"], a)
    eq(first.status, 200, "end")
    eq(env.end(call["id"], b).json, first.json, "repeat within retention")
    time.sleep(2.0)
    expect_error(env.end(call["id"], a), 400, "CALL_NOT_FOUND", "Call not found")
    expect_error(env.answer(call["id"], "ACCEPT"), 400, "CALL_NOT_FOUND", "Call not found")


def test_declined_call_is_forgotten_after_retention(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "DECLINE").status, 200, "decline")
    time.sleep(2.0)
    expect_error(env.end(call["id"], b), 400, "CALL_NOT_FOUND", "Call not found")


def test_missed_call_is_forgotten_after_retention(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    a.expect_event("END_CALL", timeout=3, call_id=call["id"])
    eq(env.end(call["id"], a).json["status"], "MISSED", "status within retention")
    time.sleep(2.0)
    expect_error(env.end(call["id"], a), 400, "CALL_NOT_FOUND", "Call not found")


def test_ongoing_call_is_not_subject_to_retention(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    time.sleep(2.0)
    r = env.get("/token?room=%s&id=%s" % (call["id"], a.user_id))
    eq(r.status, 200, "token of an ongoing call after the retention time")
    r = env.end(call["id"], a)
    eq(r.status, 200, "end of an ongoing call after the retention time")
    eq(r.json["status"], "ENDED", "status")


def test_token_refused_for_forgotten_call(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    eq(env.end(call["id"], a).status, 200, "end")
    time.sleep(2.0)
    expect_error(env.get("/token?room=%s&id=%s" % (call["id"], a.user_id)), 403, "NOT_IN_CALL")


@h.options(service_env={"CALL_RETENTION_S": "600", "CALL_RETENTION_MAX": "2"})
def test_oldest_finished_calls_are_forgotten_beyond_the_cap(env):
    a, b = env.user("a"), env.user("b")
    calls = []
    for _ in range(3):
        call = env.start_call(a, b)
        eq(env.end(call["id"], a).status, 200, "end")
        calls.append(call["id"])
    # Three finished, two kept: the oldest goes at once, long before CALL_RETENTION_S.
    h.wait_until(lambda: env.end(calls[0], a).status == 400, timeout=3, what="oldest call forgotten")
    expect_error(env.end(calls[0], a), 400, "CALL_NOT_FOUND", "Call not found")
    for call_id in calls[1:]:
        eq(env.end(call_id, b).json["status"], "ENDED", "a newer call is still remembered")


if __name__ == "__main__":
    h.main(**SHARED)

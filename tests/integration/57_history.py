#!/usr/bin/python3
"""Call history, GET /calls?userId=&limit=&before=: a user's finished calls, newest first, kept per
user up to CALL_HISTORY_MAX (3 here) beyond the retention of finished calls; paging with before=<id
of the last call of the previous page>; bad parameters refused. (Ownership in jwt mode:
tests/security/45_rest_call_reads_jwt.py.)"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

SHARED = {"service_env": {"CALL_HISTORY_MAX": "3", "CALL_RETENTION_S": "0.2", "START_RATE_PER_MIN": "0"}}


def history(env, user_id, **params):
    q = "&".join("%s=%s" % kv for kv in [("userId", user_id)] + sorted(params.items()))
    r = env.get("/calls?" + q)
    eq(r.status, 200, "GET /calls?%s: %r" % (q, r.body[:200]))
    check(isinstance(r.json, list), "history is an array")
    return r.json


def finished_calls(env, a, b, n):
    """n finished calls between a and b (ended, declined, ended...), oldest first; their ids."""
    ids = []
    for i in range(n):
        c = env.start_call(a, b)
        if i % 2:
            eq(env.answer(c["id"], "DECLINE").status, 200, "decline")
        else:
            eq(env.end(c["id"], a).status, 200, "end")
        ids.append(c["id"])
    return ids


def test_finished_calls_are_listed_newest_first_live_ones_not(env):
    a, b = env.user("a"), env.user("b")
    ids = finished_calls(env, a, b, 2)
    live = env.start_call(a, b)
    got = history(env, a.user_id)
    eq([c["id"] for c in got], ids[::-1], "a's history, newest first")
    eq([c["status"] for c in got], ["DECLINED", "ENDED"], "statuses")
    check(all("endedAt" in c for c in got), "finished calls carry endedAt")
    eq([c["id"] for c in history(env, b.user_id)], ids[::-1], "b's history: the same calls")
    check(live["id"] not in [c["id"] for c in got], "a live call is not history")
    env.end(live["id"], a)
    eq(history(env, a.user_id)[0]["id"], live["id"], "once ended, it heads the history")
    eq(history(env, env.uid("nobody")), [], "a user without calls")


def test_limit_and_paging_with_before(env):
    a, b = env.user("a"), env.user("b")
    ids = finished_calls(env, a, b, 3)[::-1]  # newest first
    eq([c["id"] for c in history(env, a.user_id, limit=2)], ids[:2], "first page")
    eq([c["id"] for c in history(env, a.user_id, limit=2, before=ids[1])], ids[2:], "second page")
    eq(history(env, a.user_id, limit=2, before=ids[2]), [], "past the last page")


def test_history_keeps_the_newest_up_to_the_cap_beyond_retention(env):
    a, b = env.user("a"), env.user("b")
    ids = finished_calls(env, a, b, 5)
    h.wait_until(lambda: env.get("/calls/" + ids[0]).status == 404, 5, what="retention forgets the call")
    eq([c["id"] for c in history(env, a.user_id)], ids[::-1][:3], "the 3 newest (CALL_HISTORY_MAX=3)")


def test_bad_parameters_are_refused(env):
    a = env.user("a")
    eq(env.get("/calls?userId=" + a.user_id).status, 200, "a good request")
    expect_error(env.get("/calls"), 400, "MISSING_FIELD", "userId is required")
    expect_error(env.get("/calls?userId=a%2Fb"), 400, "INVALID_ID")
    for bad in ("0", "101", "x", "-1"):
        expect_error(env.get("/calls?userId=%s&limit=%s" % (a.user_id, bad)), 400, "INVALID_FIELD")
    expect_error(env.get("/calls?userId=%s&before=a%%2Bb" % a.user_id), 400, "INVALID_FIELD")


if __name__ == "__main__":
    h.main(**SHARED)

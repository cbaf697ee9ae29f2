#!/usr/bin/python3
"""Abuse: call starts are limited per user (START_RATE_PER_MIN per rolling minute). Flooding
/calls/start from one user gets 429 RATE_LIMITED with Retry-After, while another user still gets
through; other routes are not limited.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import h  # noqa: E402

LIMIT = 5


def test_flooding_call_starts_is_limited_per_user(sc):
    st = s.JwtStack(sc, service_env={"START_RATE_PER_MIN": str(LIMIT)})
    alice, bob = st.user("alice"), st.user("bob")
    carol, dave = st.user("carol"), st.user("dave")
    first = h.expect_ok(st.start(alice, bob))
    for attempt in range(2, LIMIT + 1):
        # CALLER_BUSY from now on: attempts count, not successes.
        r = st.start(alice, bob)
        h.check(r.status != 429, "start attempt %d of %d was already limited: %r" % (attempt, LIMIT, r))
    for attempt in (LIMIT + 1, LIMIT + 2):
        r = st.start(alice, bob)
        h.expect_error(r, 429, "RATE_LIMITED")
        retry = r.headers.get("Retry-After", "")
        h.check(retry.isdigit() and 1 <= int(retry) <= 60,
                "attempt %d: Retry-After %r is not 1..60 seconds" % (attempt, retry))
    # Another user is not affected.
    call = h.expect_ok(st.start(carol, dave))
    dave.expect_event("INCOMING_CALL", call_id=call["id"])
    # Nor are alice's other routes: she can still cancel her ringing call.
    r = h.expect_ok(st.request("POST", "/calls/end", st.token(alice.user_id),
                               json_body={"callId": first["id"], "userId": alice.user_id}))
    h.eq(r["status"], "ENDED", "status of alice's cancelled call")
    h.eq(st.request("GET", "/users", st.token(alice.user_id)).status, 200, "GET /users while limited")


def test_limit_zero_means_no_limit(sc):
    st = s.JwtStack(sc, service_env={"START_RATE_PER_MIN": "0"})
    alice, bob = st.user("alice"), st.user("bob")
    for i in range(3 * LIMIT):
        r = st.start(alice, bob)
        h.check(r.status != 429, "attempt %d limited although START_RATE_PER_MIN=0" % (i + 1))


if __name__ == "__main__":
    s.run()

#!/usr/bin/python3
"""The call reads in jwt mode: GET /calls/{id} answers the call's parties only, GET /users/{id}/call
the user themself only, and so does GET /calls?userId= (the history); each refusal sits next to the same read succeeding with the right token.

Runs the real service (AUTH_MODE=jwt) behind the real jwt-mode broker, users online through token
logins. (Which MQTT client may read users/{id}/call is the broker plugin's rule, tested with it.)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import h  # noqa: E402


def test_a_call_is_readable_by_its_parties_only(sc):
    st = s.JwtStack(sc)
    alice, bob, carol = st.user("alice"), st.user("bob"), st.user("carol")
    r = st.start(alice, bob)
    h.eq(r.status, 200, "start")
    call_id = r.json["id"]
    for who in (alice, bob):
        got = st.request("GET", "/calls/" + call_id, st.token(who.user_id))
        h.eq((got.status, got.json.get("id")), (200, call_id), "GET /calls/{id} by party %s" % who.user_id)
    h.expect_error(st.request("GET", "/calls/" + call_id, st.token(carol.user_id)), 403, "NOT_A_PARTY")
    r = st.request("GET", "/calls/" + call_id)
    h.eq(r.status, 401, "GET /calls/{id} without a token")


def test_a_users_live_call_is_readable_by_that_user_only(sc):
    st = s.JwtStack(sc)
    alice, bob, carol = st.user("alice"), st.user("bob"), st.user("carol")
    call_id = st.start(alice, bob).json["id"]
    got = st.request("GET", "/users/%s/call" % bob.user_id, st.token(bob.user_id))
    h.eq((got.status, got.json.get("id")), (200, call_id), "GET /users/{own id}/call")
    h.expect_error(st.request("GET", "/users/%s/call" % bob.user_id, st.token(alice.user_id)), 403, "FORBIDDEN")
    h.expect_error(st.request("GET", "/users/%s/call" % bob.user_id, st.token(carol.user_id)), 403, "FORBIDDEN")
    h.expect_error(st.request("GET", "/users/%s/call" % carol.user_id, st.token(carol.user_id)), 404,
                   "NO_LIVE_CALL")
    h.eq(st.request("GET", "/users/%s/call" % bob.user_id).status, 401, "GET /users/{id}/call without a token")
    st.check_stopped_cleanly()


def test_a_users_call_history_is_readable_by_that_user_only(sc):
    st = s.JwtStack(sc)
    alice, bob, carol = st.user("alice"), st.user("bob"), st.user("carol")
    call_id = st.start(alice, bob).json["id"]
    r = st.request("POST", "/calls/end", st.token(bob.user_id), json_body={"callId": call_id, "userId": bob.user_id})
    h.eq(r.status, 200, "end")
    for who in (alice, bob):
        got = st.request("GET", "/calls?userId=" + who.user_id, st.token(who.user_id))
        h.eq((got.status, [c.get("id") for c in got.json or []]), (200, [call_id]),
             "GET /calls?userId= of %s with their own token" % who.user_id)
    h.expect_error(st.request("GET", "/calls?userId=" + alice.user_id, st.token(bob.user_id)), 403, "FORBIDDEN")
    h.expect_error(st.request("GET", "/calls?userId=" + bob.user_id, st.token(carol.user_id)), 403, "FORBIDDEN")
    h.eq(st.request("GET", "/calls?userId=" + alice.user_id).status, 401, "GET /calls without a token")
    st.check_stopped_cleanly()


if __name__ == "__main__":
    s.run()

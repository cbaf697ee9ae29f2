#!/usr/bin/python3
"""The service's REST API in jwt mode: every protected route refuses a request without a valid user
token (401) and a token of a user other than the acting one (403); refused requests change nothing.

Runs the real service (AUTH_MODE=jwt) behind the real jwt-mode broker, with users online through
token logins. Each refusal sits next to the same request succeeding with the right token.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
import lk_sign  # noqa: E402  (LiveKit's webhook signature, as in integration/56_livekit_webhook.py)
from security_support import claims, h, jwt_hs256  # noqa: E402


def protected_requests(st, call_id="00000000-0000-4000-8000-000000000000", uid="alice"):
    """(method, path, json body) of every route that needs a token."""
    return [
        ("GET", "/users", None),
        ("POST", "/calls/start", {"callerId": uid, "receiverId": "bob"}),
        ("POST", "/calls/answer", {"callId": call_id, "answer": "ACCEPT"}),
        ("POST", "/calls/end", {"callId": call_id, "userId": uid}),
        ("GET", "/token?room=%s&id=%s" % (call_id, uid), None),
    ]


def expect_unauthorized(r, what):
    h.check(r.status == 401, "%s: expected 401, got %d %r" % (what, r.status, r.body[:200]))
    h.expect_error(r, 401, "UNAUTHORIZED")
    challenge = r.headers.get("WWW-Authenticate", "")
    h.check(challenge.startswith("Bearer"), "%s: WWW-Authenticate %r" % (what, challenge))


def test_public_routes_need_no_token(sc):
    st = s.JwtStack(sc)
    h.eq(st.request("GET", "/health").status, 200, "GET /health status")
    r = st.request("GET", "/config")
    h.eq(r.status, 200, "GET /config status")
    h.eq(r.json.get("authMode"), "jwt", "GET /config authMode")
    h.eq(st.request("OPTIONS", "/calls/start").status, 204, "OPTIONS /calls/start status")


def test_protected_routes_refuse_requests_without_a_token(sc):
    st = s.JwtStack(sc)
    for method, path, body in protected_requests(st):
        what = "%s %s" % (method, path)
        expect_unauthorized(st.request(method, path, json_body=body), what + " without Authorization")
        for header in ("Basic YWxpY2U6cHc=", "Bearer", "Bearer ", "bearer", "Token abc"):
            r = st.request(method, path, json_body=body, headers={"Authorization": header})
            expect_unauthorized(r, "%s with Authorization %r" % (what, header))


def bad_tokens(st, uid):
    now = int(time.time())
    import hashlib
    import hmac
    head = s.b64url(b'{"alg":"HS512","typ":"JWT"}')
    body = s.b64url(s.json.dumps(claims(uid)).encode())
    hs512 = "%s.%s.%s" % (head, body, s.b64url(hmac.new(st.secret.encode(), ("%s.%s" % (head, body)).encode(),
                                                       hashlib.sha512).digest()))
    good = st.token(uid).split(".")
    return {
        "garbage": "not-a-jwt",
        "expired": st.token(uid, ttl=-3600),
        "expired beyond the leeway": st.token(uid, ttl=-120),
        "not yet valid (nbf)": st.token(uid, nbf=now + 3600),
        "alg none": s.jwt_none(claims(uid)),
        "alg none with a valid signature": "%s.%s.%s" % (s.jwt_none(claims(uid)).split(".")[0],
                                                        s.b64url(s.json.dumps(claims(uid)).encode()), good[2]),
        "wrong secret": jwt_hs256(claims(uid), s.random_secret()),
        "LiveKit secret": jwt_hs256(claims(uid), st.livekit_secret),
        "HS512 with the right secret": hs512,
        "no exp": jwt_hs256({"sub": uid}, st.secret),
        "exp as a string": jwt_hs256({"sub": uid, "exp": str(now + 600)}, st.secret),
        "exp as a real": jwt_hs256({"sub": uid, "exp": now + 600.5}, st.secret),
        "nbf ahead, as a string": jwt_hs256({"sub": uid, "exp": now + 600, "nbf": str(now + 3600)}, st.secret),
        "sub as a number": jwt_hs256({"sub": 42, "exp": now + 600}, st.secret),
        "sub not a valid id": jwt_hs256({"sub": uid + "/x", "exp": now + 600}, st.secret),
        "no sub": jwt_hs256({"exp": now + 600}, st.secret),
        "tampered claims": "%s.%s.%s" % (good[0], s.b64url(s.json.dumps(claims(uid, ttl=99999)).encode()), good[2]),
    }


def test_protected_routes_refuse_bad_tokens(sc):
    st = s.JwtStack(sc)
    alice = st.user("alice")
    bob = st.user("bob")
    tokens = bad_tokens(st, alice.user_id)
    for name, token in tokens.items():
        for method, path, body in protected_requests(st, uid=alice.user_id):
            if body and "receiverId" in body:
                body = dict(body, receiverId=bob.user_id)
            r = st.request(method, path, token, json_body=body)
            expect_unauthorized(r, "%s %s with a token: %s" % (method, path, name))
    bob.expect_no_event(timeout=0.3)
    # Control: the good token passes the same door.
    h.eq(st.request("GET", "/users", st.token(alice.user_id)).status, 200, "GET /users with a good token")


def test_extreme_claim_values_do_not_break_the_service(sc):
    st = s.JwtStack(sc)
    now = int(time.time())
    for what, c in (("exp at the int64 maximum", {"sub": "alice", "exp": 2**63 - 1}),
                    ("exp at the int64 minimum", {"sub": "alice", "exp": -2**63}),
                    ("nbf at the int64 maximum", {"sub": "alice", "exp": now + 600, "nbf": 2**63 - 1}),
                    ("nbf at the int64 minimum", {"sub": "alice", "exp": now + 600, "nbf": -2**63}),
                    ("exp beyond int64", {"sub": "alice", "exp": 2**70})):
        r = st.request("GET", "/users", jwt_hs256(c, st.secret))
        h.check(r.status in (200, 401), "%s: status %d" % (what, r.status))
        st.service.check_alive()
    expect_unauthorized(st.request("GET", "/users", jwt_hs256({"sub": "alice", "exp": -2**63}, st.secret)),
                        "exp at the int64 minimum")
    expect_unauthorized(st.request("GET", "/users", jwt_hs256({"sub": "alice", "exp": now + 600, "nbf": 2**63 - 1},
                                                              st.secret)), "nbf at the int64 maximum")
    st.check_stopped_cleanly()


def test_a_livekit_room_token_is_not_a_user_token(sc):
    st = s.JwtStack(sc)
    alice, bob = st.user("alice"), st.user("bob")
    call = h.expect_ok(st.start(alice, bob))
    bob.expect_event("INCOMING_CALL", call_id=call["id"])
    h.expect_ok(st.request("POST", "/calls/answer", st.token(bob.user_id),
                           json_body={"callId": call["id"], "answer": "ACCEPT"}))
    r = st.request("GET", "/token?room=%s&id=%s" % (call["id"], alice.user_id), st.token(alice.user_id))
    room_token = h.expect_ok(r)["token"]
    expect_unauthorized(st.request("GET", "/users", room_token), "GET /users with a LiveKit room token")
    s.expect_refused(st.broker.port, alice.user_id, room_token, "broker login with a LiveKit room token")


def test_starting_a_call_as_someone_else_is_forbidden(sc):
    st = s.JwtStack(sc)
    alice, bob, carol = st.user("alice"), st.user("bob"), st.user("carol")
    r = st.start(bob, carol, token=st.token(alice.user_id))
    h.expect_error(r, 403, "FORBIDDEN")
    carol.expect_no_event(timeout=0.5)
    # Nothing was started: bob is not busy.
    call = h.expect_ok(st.start(bob, carol))
    carol.expect_event("INCOMING_CALL", call_id=call["id"])


def test_answering_a_call_not_ringing_you_is_forbidden(sc):
    st = s.JwtStack(sc)
    alice, bob, carol = st.user("alice"), st.user("bob"), st.user("carol")
    call = h.expect_ok(st.start(alice, bob))
    bob.expect_event("INCOMING_CALL", call_id=call["id"])
    for who in (alice, carol):  # the caller accepting her own call; a stranger
        for answer in ("ACCEPT", "DECLINE"):
            r = st.request("POST", "/calls/answer", st.token(who.user_id),
                           json_body={"callId": call["id"], "answer": answer})
            h.expect_error(r, 403, "FORBIDDEN")
    bob.expect_no_event(timeout=0.3)
    r = h.expect_ok(st.request("POST", "/calls/answer", st.token(bob.user_id),
                               json_body={"callId": call["id"], "answer": "ACCEPT"}))
    h.eq(r["status"], "ONGOING", "status after the receiver's answer")


def test_ending_a_call_you_are_not_party_to_is_forbidden(sc):
    st = s.JwtStack(sc)
    alice, bob, carol = st.user("alice"), st.user("bob"), st.user("carol")
    call = h.expect_ok(st.start(alice, bob))
    bob.expect_event("INCOMING_CALL", call_id=call["id"])
    end = "/calls/end"
    # A stranger naming a party; a party naming the other party; a stranger naming herself.
    h.expect_error(st.request("POST", end, st.token(carol.user_id),
                              json_body={"callId": call["id"], "userId": alice.user_id}), 403, "FORBIDDEN")
    h.expect_error(st.request("POST", end, st.token(bob.user_id),
                              json_body={"callId": call["id"], "userId": alice.user_id}), 403, "FORBIDDEN")
    r = st.request("POST", end, st.token(carol.user_id), json_body={"callId": call["id"], "userId": carol.user_id})
    h.check(r.status == 403 and isinstance(r.json, dict) and r.json.get("error") in ("FORBIDDEN", "NOT_A_PARTY"),
            "stranger ending as herself: expected 403 FORBIDDEN or NOT_A_PARTY, got %d %r" % (r.status, r.body[:200]))
    bob.expect_no_event(timeout=0.3)
    r = h.expect_ok(st.request("POST", end, st.token(alice.user_id),
                               json_body={"callId": call["id"], "userId": alice.user_id}))
    h.eq(r["status"], "ENDED", "status after the caller ends")


def test_device_ids_must_be_the_acting_users_own(sc):
    st = s.JwtStack(sc)
    alice, bob = st.user("alice"), st.user("bob")
    call = h.expect_ok(st.start(alice, bob))
    bob.expect_event("INCOMING_CALL", call_id=call["id"])
    answer = {"callId": call["id"], "answer": "ACCEPT"}
    for device in (alice.client_id, alice.user_id + ".phone", bob.user_id, "nobody.phone"):
        r = st.request("POST", "/calls/answer", st.token(bob.user_id), json_body=dict(answer, deviceId=device))
        h.expect_error(r, 400, "INVALID_ID", "deviceId is not a client id of this user")
    bob.expect_no_event(timeout=0.3)
    r = h.expect_ok(st.request("POST", "/calls/answer", st.token(bob.user_id),
                               json_body=dict(answer, deviceId=bob.client_id)))
    h.eq(r.get("answeredBy"), {"userId": bob.user_id, "deviceId": bob.client_id}, "answeredBy")
    end = {"callId": call["id"], "userId": alice.user_id}
    r = st.request("POST", "/calls/end", st.token(alice.user_id), json_body=dict(end, deviceId=bob.client_id))
    h.expect_error(r, 400, "INVALID_ID", "deviceId is not a client id of this user")
    r = h.expect_ok(st.request("POST", "/calls/end", st.token(alice.user_id),
                               json_body=dict(end, deviceId=alice.client_id)))
    h.eq((r.get("endReason"), r.get("endedBy")), ("HANGUP", {"userId": alice.user_id, "deviceId": alice.client_id}),
         "endReason and endedBy")


def test_livekit_webhook_needs_livekits_signature_not_a_user_token(sc):
    st = s.JwtStack(sc)
    alice, bob = st.user("alice"), st.user("bob")
    call = h.expect_ok(st.start(alice, bob))
    h.expect_ok(st.request("POST", "/calls/answer", st.token(bob.user_id),
                           json_body={"callId": call["id"], "answer": "ACCEPT"}))
    alice.expect_event("ACCEPT_CALL", call_id=call["id"])
    body = lk_sign.event("room_finished", call["id"])
    # a user token (even a party's) is no LiveKit signature
    r = st.request("POST", "/livekit/webhook", body=body, headers={"Authorization": "Bearer " + st.token(bob.user_id)},
                   content_type="application/webhook+json")
    h.expect_error(r, 401, "UNAUTHORIZED")
    alice.expect_no_event(timeout=0.3)
    r = st.request("POST", "/livekit/webhook", body=body, content_type="application/webhook+json",
                   headers={"Authorization": lk_sign.token(s.LIVEKIT_KEY, st.livekit_secret, body)})
    h.eq((r.status, r.json), (200, {"result": "applied"}), "a LiveKit-signed room_finished")
    ev = alice.expect_event("END_CALL", call_id=call["id"])
    h.eq(ev["call"].get("endReason"), "MEDIA_ENDED", "endReason")


def test_room_token_for_someone_else_is_forbidden(sc):
    st = s.JwtStack(sc)
    alice, bob, carol = st.user("alice"), st.user("bob"), st.user("carol")
    call = h.expect_ok(st.start(alice, bob))
    h.expect_ok(st.request("POST", "/calls/answer", st.token(bob.user_id),
                           json_body={"callId": call["id"], "answer": "ACCEPT"}))
    path = "/token?room=%s&id=%s"
    h.expect_error(st.request("GET", path % (call["id"], bob.user_id), st.token(alice.user_id)), 403, "FORBIDDEN")
    h.expect_error(st.request("GET", path % (call["id"], alice.user_id), st.token(carol.user_id)), 403, "FORBIDDEN")
    h.expect_error(st.request("GET", path % (call["id"], carol.user_id), st.token(carol.user_id)), 403, "NOT_IN_CALL")
    r = h.expect_ok(st.request("GET", path % (call["id"], alice.user_id), st.token(alice.user_id)))
    h.check(isinstance(r.get("token"), str) and r["token"].count(".") == 2, "room token: %r" % r)


def test_previous_secret_is_accepted_during_a_rotation(sc):
    previous = s.random_secret()
    st = s.JwtStack(sc, service_env={"AUTH_JWT_SECRET_PREVIOUS": previous})
    alice = st.user("alice")
    h.expect_ok(st.request("GET", "/users", st.token(alice.user_id)))
    h.expect_ok(st.request("GET", "/users", jwt_hs256(claims(alice.user_id), previous)))
    expect_unauthorized(st.request("GET", "/users", jwt_hs256(claims(alice.user_id), s.random_secret())),
                        "token of neither the current nor the previous secret")
    expect_unauthorized(st.request("GET", "/users", s.jwt_none(claims(alice.user_id))), "alg none during a rotation")


def test_previous_rs256_key_is_accepted_during_a_rotation(sc):
    old_priv, old_pub = s.rsa_keypair(sc.tmp, "old")
    st = s.JwtStack(sc, rsa=True, service_env={"AUTH_JWT_PUBLIC_KEY_PREVIOUS_FILE": old_pub})
    alice = st.user("alice")
    h.expect_ok(st.request("GET", "/users", s.jwt_rs256(claims(alice.user_id), old_priv)))
    other_priv, _ = s.rsa_keypair(sc.tmp, "other")
    expect_unauthorized(st.request("GET", "/users", s.jwt_rs256(claims(alice.user_id), other_priv)),
                        "RS256 token of a third key")


def test_rs256_user_tokens(sc):
    st = s.JwtStack(sc, rsa=True)
    alice = st.user("alice")  # logs in to the broker and the REST API with RS256 tokens
    with open(st.public_key, "rb") as f:
        pem = f.read()
    expect_unauthorized(st.request("GET", "/users", jwt_hs256(claims(alice.user_id), pem)),
                        "HS256 token signed with the RSA public key")
    expect_unauthorized(st.request("GET", "/users", s.jwt_none(claims(alice.user_id))), "alg none in RS256 mode")
    other_priv, _ = s.rsa_keypair(sc.tmp, "other")
    expect_unauthorized(st.request("GET", "/users", s.jwt_rs256(claims(alice.user_id), other_priv)),
                        "RS256 token of another key")
    expect_unauthorized(st.request("GET", "/users", st.token(alice.user_id, ttl=-3600)), "expired RS256 token")
    h.eq(st.request("GET", "/users", st.token(alice.user_id)).status, 200, "GET /users with an RS256 token")


def test_service_runs_clean_in_jwt_mode(sc):
    st = s.JwtStack(sc)
    alice = st.user("alice")
    h.eq(st.request("GET", "/users", st.token(alice.user_id)).status, 200, "GET /users")
    st.check_stopped_cleanly()
    text = st.service.stderr()
    for secret in (st.secret, st.broker.service_password, st.livekit_secret):
        h.check(secret not in text, "a secret appears in the service log")


if __name__ == "__main__":
    s.run()

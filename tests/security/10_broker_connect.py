#!/usr/bin/python3
"""Broker authentication in jwt mode: only a valid user token for the very username it names opens
an MQTT connection; the service gets in with its own credential only.

A real Mosquitto runs broker-config/mosquitto-jwt.conf with the callsignal_auth plugin. Every
refusal is checked next to an acceptance on the same broker, so a broker that refuses everyone
fails the suite too.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import claims, expect_accepted, expect_refused, jwt_hs256  # noqa: E402


def test_valid_token_connects_over_tcp_and_websockets(sc):
    b = sc.broker(secret=s.random_secret())
    expect_accepted(b.port, "alice", b.token("alice"), "valid token over TCP")
    expect_accepted(b.wsport, "alice", b.token("alice"), "valid token over WebSocket", transport="websockets")


def test_missing_or_garbage_credentials_are_refused(sc):
    b = sc.broker(secret=s.random_secret())
    expect_refused(b.port, None, None, "no username, no password")
    expect_refused(b.port, "alice", None, "username without password")
    expect_refused(b.port, "alice", "", "empty password")
    expect_refused(b.port, "alice", "not-a-jwt", "garbage password")
    expect_refused(b.port, "alice", "a.b.c", "three garbage segments")
    expect_refused(b.wsport, "alice", "not-a-jwt", "garbage password over WebSocket", transport="websockets")
    expect_accepted(b.port, "alice", b.token("alice"), "control: valid token")


def test_expired_token_is_refused(sc):
    b = sc.broker(secret=s.random_secret())
    expect_refused(b.port, "alice", b.token("alice", ttl=-3600), "token expired an hour ago")
    expect_refused(b.port, "alice", b.token("alice", ttl=-120), "token expired beyond the 60 s leeway")
    expect_accepted(b.port, "alice", b.token("alice", ttl=-10), "token expired within the leeway")


def test_token_without_integer_exp_or_nbf_is_refused(sc):
    b = sc.broker(secret=s.random_secret())
    expect_refused(b.port, "alice", jwt_hs256({"sub": "alice"}, b.secret), "no exp")
    now = int(time.time())
    expect_refused(b.port, "alice", jwt_hs256({"sub": "alice", "exp": str(now + 600)}, b.secret), "exp as a string")
    expect_refused(b.port, "alice", jwt_hs256({"sub": "alice", "exp": now + 600.5}, b.secret), "exp as a real")
    expect_refused(b.port, "alice", jwt_hs256({"sub": "alice", "exp": now + 600, "nbf": str(now + 3600)}, b.secret),
                   "nbf ahead, as a string")
    expect_accepted(b.port, "alice", jwt_hs256({"sub": "alice", "exp": now + 600}, b.secret), "control: integer exp")


def test_extreme_claim_values_do_not_break_the_broker(sc):
    b = sc.broker(secret=s.random_secret())
    for what, extra in (("exp at the int64 maximum", {"exp": 2**63 - 1}),
                        ("exp at the int64 minimum", {"exp": -2**63}),
                        ("nbf at the int64 maximum", {"exp": int(time.time()) + 600, "nbf": 2**63 - 1}),
                        ("nbf at the int64 minimum", {"exp": int(time.time()) + 600, "nbf": -2**63}),
                        ("exp beyond int64", {"exp": 2**70})):
        token = jwt_hs256(dict({"sub": "alice"}, **extra), b.secret)
        rc = s.connect_rc(b.port, "alice", token)
        s.h.check(rc in (0,) + s.CONNACK_REFUSED, "%s: CONNACK rc=%s" % (what, rc))
    expect_refused(b.port, "alice", jwt_hs256({"sub": "alice", "exp": -2**63}, b.secret), "exp at the int64 minimum")
    expect_refused(b.port, "alice", jwt_hs256({"sub": "alice", "exp": int(time.time()) + 600, "nbf": 2**63 - 1},
                                              b.secret), "nbf at the int64 maximum")
    s.h.check(b.running, "the broker died")
    expect_accepted(b.port, "alice", b.token("alice"), "control: a normal token afterwards")


def test_token_not_yet_valid_is_refused(sc):
    b = sc.broker(secret=s.random_secret())
    expect_refused(b.port, "alice", b.token("alice", nbf=int(time.time()) + 3600), "nbf an hour ahead")
    expect_accepted(b.port, "alice", b.token("alice", nbf=int(time.time()) - 5), "control: nbf in the past")


def test_token_signed_with_another_secret_is_refused(sc):
    b = sc.broker(secret=s.random_secret())
    forged = jwt_hs256(claims("alice"), s.random_secret())
    expect_refused(b.port, "alice", forged, "token signed with another secret")
    # A signature of the right secret over other claims does not carry over.
    good = b.token("alice").split(".")
    other = jwt_hs256(claims("alice", ttl=7200), s.random_secret()).split(".")
    expect_refused(b.port, "alice", "%s.%s.%s" % (other[0], other[1], good[2]), "claims spliced onto a signature")


def test_token_signed_with_the_livekit_secret_is_refused(sc):
    # The LiveKit secret signs room tokens (sub = user id): they must not open the broker.
    livekit_secret = s.random_secret()
    b = sc.broker(secret=s.random_secret())
    room_token = jwt_hs256(claims("alice", iss="APIkey", video={"room": "r", "roomJoin": True}), livekit_secret)
    expect_refused(b.port, "alice", room_token, "LiveKit-signed token")


def test_alg_none_token_is_refused(sc):
    b = sc.broker(secret=s.random_secret())
    expect_refused(b.port, "alice", s.jwt_none(claims("alice")), "alg none, empty signature")
    # alg none with a valid HS256 signature attached is still alg none.
    good = b.token("alice").split(".")
    none = s.jwt_none(claims("alice")).split(".")
    expect_refused(b.port, "alice", "%s.%s.%s" % (none[0], none[1], good[2]), "alg none with a signature")


def test_other_hmac_algorithms_are_refused(sc):
    b = sc.broker(secret=s.random_secret())
    import hashlib
    import hmac
    head = s.b64url(b'{"alg":"HS512","typ":"JWT"}')
    body = s.b64url(s.json.dumps(claims("alice")).encode())
    sig = hmac.new(b.secret.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha512).digest()
    expect_refused(b.port, "alice", "%s.%s.%s" % (head, body, s.b64url(sig)), "HS512 with the right secret")


def test_token_of_another_user_is_refused(sc):
    b = sc.broker(secret=s.random_secret())
    expect_refused(b.port, "alice", b.token("bob"), "bob's token as alice")
    expect_refused(b.port, "bob", b.token("alice"), "alice's token as bob")
    expect_refused(b.port, "alice/x", b.token("alice/x"), "sub that is not a valid id")
    expect_refused(b.port, "alice", jwt_hs256({"exp": int(time.time()) + 600}, b.secret), "no sub")
    expect_accepted(b.port, "bob", b.token("bob"), "control: bob's token as bob")


def test_user_token_cannot_log_in_as_the_service(sc):
    b = sc.broker(secret=s.random_secret())
    expect_refused(b.port, s.SERVICE_USERNAME, b.token(s.SERVICE_USERNAME), "a user token naming the service")


def test_service_credential_is_required_exactly(sc):
    b = sc.broker(secret=s.random_secret())
    expect_accepted(b.port, s.SERVICE_USERNAME, b.service_password, "service credential")
    expect_refused(b.port, s.SERVICE_USERNAME, b.service_password + "x", "service password plus a byte")
    expect_refused(b.port, s.SERVICE_USERNAME, b.service_password[:-1], "service password minus a byte")
    expect_refused(b.port, s.SERVICE_USERNAME, "", "empty service password")
    expect_refused(b.port, "alice", b.service_password, "service password as a user's password")


def test_previous_secret_is_accepted_during_rotation(sc):
    old, new = s.random_secret(), s.random_secret()
    b = sc.broker(secret=new, previous=old)
    expect_accepted(b.port, "alice", jwt_hs256(claims("alice"), new), "token of the new secret")
    expect_accepted(b.port, "alice", jwt_hs256(claims("alice"), old), "token of the previous secret")
    expect_refused(b.port, "alice", jwt_hs256(claims("alice"), s.random_secret()), "token of a third secret")
    expect_refused(b.port, "alice", s.jwt_none(claims("alice")), "alg none while rotating")


def test_rs256_token_connects_and_hs256_confusion_is_refused(sc):
    priv, pub = s.rsa_keypair(sc.tmp)
    other_priv, _ = s.rsa_keypair(sc.tmp, "other")
    b = sc.broker(public_key_file=pub)
    expect_accepted(b.port, "alice", s.jwt_rs256(claims("alice"), priv), "RS256 token")
    expect_refused(b.port, "alice", s.jwt_rs256(claims("alice"), other_priv), "RS256 token of another key")
    expect_refused(b.port, "alice", s.jwt_rs256(claims("alice", ttl=-3600), priv), "expired RS256 token")
    with open(pub, "rb") as f:
        pem = f.read()
    # The classic confusion: HS256 "signed" with the public key as the HMAC secret.
    expect_refused(b.port, "alice", jwt_hs256(claims("alice"), pem), "HS256 signed with the public key")
    expect_refused(b.port, "alice", jwt_hs256(claims("alice"), pem.strip()), "HS256 signed with the trimmed public key")
    expect_refused(b.port, "alice", s.jwt_none(claims("alice")), "alg none in RS256 mode")


def expect_start_failure(broker, what, log_words):
    try:
        broker.start(timeout=3)
    except s.h.HarnessError:
        pass
    else:
        broker.stop()
        raise AssertionError("broker started although %s" % what)
    log = broker.log(20)
    s.h.check(log_words in log, "%s: broker log does not say %r:\n%s" % (what, log_words, log))


def test_broker_refuses_to_start_without_key_or_service_password(sc):
    b = s.JwtBroker(sc.tmp, secret=s.random_secret())
    os.remove(os.path.join(sc.tmp, "secrets", "jwt_secret"))
    expect_start_failure(b, "secrets/jwt_secret is missing", "cannot open jwt_secret_file")
    with open(os.path.join(sc.tmp, "secrets", "jwt_secret"), "w") as f:
        f.write(s.random_secret() + "\n")
    os.remove(os.path.join(sc.tmp, "secrets", "service_password"))
    expect_start_failure(b, "secrets/service_password is missing", "cannot open service_password_file")
    with open(os.path.join(sc.tmp, "secrets", "service_password"), "w") as f:
        f.write("\n")
    expect_start_failure(b, "secrets/service_password is empty", "service_password is empty")


if __name__ == "__main__":
    s.run()

#!/usr/bin/python3
"""GET /token?room=&id=: LiveKit access tokens for the parties of an ONGOING call.

Claims are checked by decoding the JWT here (iss, sub, name, nbf, exp - nbf = TOKEN_TTL_S, video
grant) and the HS256 signature with hmac; the token is also verified with LiveKit's own server SDK
(verify_token.mjs, run with node). Errors: 400 MISSING_FIELD, 403 NOT_IN_CALL, 500
TOKEN_NOT_CONFIGURED."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "APItestkey42"
SECRET = "test-secret-5d1c0e2b9a8f7e6d5c4b3a2f1e0d9c8b7a6f"
TTL = 120
LK_URL = "wss://livekit.example.test"
SHARED = {"service_env": {"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET, "LIVEKIT_URL": LK_URL,
                          "TOKEN_TTL_S": str(TTL)}}


def b64decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode(token):
    """(header, claims, signing input, signature) of a compact JWS."""
    parts = token.split(".")
    eq(len(parts), 3, "JWT parts")
    return (json.loads(b64decode(parts[0])), json.loads(b64decode(parts[1])),
            (parts[0] + "." + parts[1]).encode(), b64decode(parts[2]))


def token_url(room, user_id):
    return "/token?" + urllib.parse.urlencode({"room": room, "id": user_id})


def ongoing(env, a_name=None, b_name=None):
    a, b = env.user("a", name=a_name), env.user("b", name=b_name)
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    return a, b, call


def node_verify(key, secret, token):
    node = os.environ.get("NODE_BIN") or shutil.which("node")
    check(node, "node not found (needed to verify tokens with livekit-server-sdk)")
    r = subprocess.run([node, os.path.join(HERE, "verify_token.mjs"), key, secret, token],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode in (0, 1), "verify_token.mjs failed to run (%d): %s" % (r.returncode, r.stderr))
    return r


def test_party_gets_token_with_livekit_claims(env):
    a, b, call = ongoing(env, a_name="Alice Liddell")
    t0 = int(time.time())
    r = env.get(token_url(call["id"], a.user_id))
    eq(r.status, 200, "status")
    check(isinstance(r.json.get("token"), str), "no token in %r" % r.json)
    eq(r.json.get("url"), LK_URL, "url")
    header, claims, _, _ = decode(r.json["token"])
    eq(header.get("alg"), "HS256", "alg")
    eq(claims.get("iss"), KEY, "iss")
    eq(claims.get("sub"), a.user_id, "sub")
    eq(claims.get("name"), "Alice Liddell", "name")
    check(isinstance(claims.get("nbf"), int) and abs(claims["nbf"] - t0) <= 5,
          "nbf %r is not about now (%d)" % (claims.get("nbf"), t0))
    check(isinstance(claims.get("exp"), int), "exp %r" % claims.get("exp"))
    eq(claims["exp"] - claims["nbf"], TTL, "exp - nbf (TOKEN_TTL_S)")
    video = claims.get("video")
    check(isinstance(video, dict), "no video grant: %r" % claims)
    eq({k: video.get(k) for k in ("room", "roomJoin", "canPublish", "canSubscribe")},
       {"room": call["id"], "roomJoin": True, "canPublish": True, "canSubscribe": True}, "video grant")


def test_receiver_gets_token_too(env):
    a, b, call = ongoing(env, b_name="Bob Builder")
    r = env.get(token_url(call["id"], b.user_id))
    eq(r.status, 200, "status")
    _, claims, _, _ = decode(r.json["token"])
    eq(claims.get("sub"), b.user_id, "sub")
    eq(claims.get("name"), "Bob Builder", "name")
    eq(claims["video"]["room"], call["id"], "room")


def test_token_signature_is_hs256_with_the_api_secret(env):
    a, b, call = ongoing(env)
    token = env.get(token_url(call["id"], a.user_id)).json["token"]
    _, _, signing_input, sig = decode(token)
    good = hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest()
    check(hmac.compare_digest(sig, good), "signature is not HMAC-SHA256 with LIVEKIT_API_SECRET")
    bad = hmac.new(b"another secret", signing_input, hashlib.sha256).digest()
    check(not hmac.compare_digest(sig, bad), "signature check cannot fail")


def test_token_verifies_with_livekit_server_sdk(env):
    a, b, call = ongoing(env, a_name="SDK User")
    token = env.get(token_url(call["id"], a.user_id)).json["token"]
    r = node_verify(KEY, SECRET, token)
    eq(r.returncode, 0, "livekit-server-sdk TokenVerifier exit (stderr: %s)" % r.stderr.strip())
    claims = json.loads(r.stdout)
    eq(claims.get("iss"), KEY, "iss seen by the SDK")
    eq(claims.get("sub"), a.user_id, "sub seen by the SDK")
    eq(claims.get("name"), "SDK User", "name seen by the SDK")
    eq(claims.get("video", {}).get("room"), call["id"], "room seen by the SDK")
    eq(claims["video"].get("roomJoin"), True, "roomJoin seen by the SDK")


def test_livekit_server_sdk_rejects_token_with_wrong_secret_or_key(env):
    a, b, call = ongoing(env)
    token = env.get(token_url(call["id"], a.user_id)).json["token"]
    eq(node_verify(KEY, SECRET + "x", token).returncode, 1, "SDK verdict with a wrong secret")
    eq(node_verify("otherkey", SECRET, token).returncode, 1, "SDK verdict with a wrong key (iss)")


def test_missing_room_or_id(env):
    a, b, call = ongoing(env)
    for path in ("/token", "/token?room=" + call["id"], "/token?id=" + a.user_id,
                 "/token?room=&id=" + a.user_id, "/token?room=%s&id=" % call["id"]):
        expect_error(env.get(path), 400, "MISSING_FIELD", "room and id are required")


def test_non_party_is_refused(env):
    a, b, call = ongoing(env)
    c = env.user("c")
    expect_error(env.get(token_url(call["id"], c.user_id)), 403, "NOT_IN_CALL",
                 "Not a party of an ongoing call in this room")


def test_unknown_room_is_refused(env):
    a = env.user("a")
    expect_error(env.get(token_url("1a2b3c4d-0000-4000-8000-000000000000", a.user_id)), 403,
                 "NOT_IN_CALL", "Not a party of an ongoing call in this room")


def test_dialling_call_is_refused(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    expect_error(env.get(token_url(call["id"], a.user_id)), 403, "NOT_IN_CALL")
    expect_error(env.get(token_url(call["id"], b.user_id)), 403, "NOT_IN_CALL")


def test_finished_call_is_refused(env):
    a, b, call = ongoing(env)
    eq(env.end(call["id"], a).status, 200, "end")
    expect_error(env.get(token_url(call["id"], a.user_id)), 403, "NOT_IN_CALL")


def test_declined_call_is_refused(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "DECLINE").status, 200, "decline")
    expect_error(env.get(token_url(call["id"], b.user_id)), 403, "NOT_IN_CALL")


def test_post_token_is_method_not_allowed(env):
    r = env.post("/token", {"room": "x", "id": "y"})
    expect_error(r, 405, "METHOD_NOT_ALLOWED")


@h.options()
def test_not_configured_is_500(env):
    a, b, call = ongoing(env)
    expect_error(env.get(token_url(call["id"], a.user_id)), 500, "TOKEN_NOT_CONFIGURED",
                 "LiveKit key/secret not configured")


@h.options(service_env={"LIVEKIT_API_KEY": KEY})
def test_key_without_secret_is_500(env):
    a, b, call = ongoing(env)
    expect_error(env.get(token_url(call["id"], a.user_id)), 500, "TOKEN_NOT_CONFIGURED",
                 "LiveKit key/secret not configured")


@h.options(service_env={"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET})
def test_without_livekit_url_the_reply_has_only_the_token(env):
    a, b, call = ongoing(env)
    r = env.get(token_url(call["id"], a.user_id))
    eq(r.status, 200, "status")
    check("url" not in r.json, "url in the reply without LIVEKIT_URL: %r" % r.json)
    _, claims, _, _ = decode(r.json["token"])
    eq(claims["exp"] - claims["nbf"], 3600, "default TOKEN_TTL_S")


def test_secret_never_appears_in_the_logs(env):
    a, b, call = ongoing(env)
    eq(env.get(token_url(call["id"], a.user_id)).status, 200, "token")
    check(SECRET not in env.service.stderr(), "LIVEKIT_API_SECRET appears in the service log")


if __name__ == "__main__":
    h.main(**SHARED)

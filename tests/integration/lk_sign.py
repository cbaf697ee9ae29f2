"""Signs LiveKit webhook requests in Python exactly as LiveKit does (an HS256 JWT whose iss is the API
key and whose sha256 claim is the padded base64 SHA-256 of the body), for the tests that drive calls
with webhooks; 56_livekit_webhook.py checks that LiveKit's own SDK accepts what this makes. Imported
by 55_end_reasons.py and 56_livekit_webhook.py."""

import base64
import hashlib
import hmac
import json
import secrets
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token(key, secret, body, ttl_s=300, alg="HS256", now=None, extra=None):
    """The Authorization value for body (bytes): a bare JWT, as LiveKit sends it."""
    now = int(time.time()) if now is None else now
    claims = {"iss": key, "nbf": now, "exp": now + ttl_s,
              "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")}
    claims.update(extra or {})
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    if alg == "none":
        return "%s.%s." % (head, payload)
    sig = hmac.new(secret.encode(), ("%s.%s" % (head, payload)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, payload, b64url(sig))


def event(kind, room=None, identity=None, event_id=None, **extra):
    """A webhook body (bytes) in LiveKit's protobuf JSON: lowerCamelCase, int64 as strings, zero
    values omitted."""
    ev = {"event": kind, "id": event_id or "EV_" + secrets.token_hex(6), "createdAt": str(int(time.time()))}
    if room is not None:
        ev["room"] = {"sid": "RM_" + secrets.token_hex(6), "name": room, "emptyTimeout": 300,
                      "creationTime": str(int(time.time()))}
    if identity is not None:
        ev["participant"] = {"sid": "PA_" + secrets.token_hex(6), "identity": identity, "state": "ACTIVE",
                             "joinedAt": str(int(time.time()))}
    ev.update(extra)
    return json.dumps(ev, separators=(",", ":")).encode()


def post(env, body, auth):
    """POSTs body to /livekit/webhook with the Authorization value auth (None: no header)."""
    headers = {} if auth is None else {"Authorization": auth}
    return env.http("POST", "/livekit/webhook", body=body, headers=headers,
                    content_type="application/webhook+json")

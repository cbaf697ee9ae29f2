#!/usr/bin/python3
"""POST /livekit/webhook: LiveKit's signed webhooks, checked as LiveKit's own Node SDK checks them
(livekit_webhook.mjs runs its AccessToken and WebhookReceiver), and what each event does to a live
call with a real broker and the real binary (OFFLINE_GRACE_S=1 here): participant_joined records
mediaJoinedAt, participant_left / participant_connection_aborted start the grace after which the call
ends MEDIA_ENDED unless the party rejoined, room_finished ends it at once; rooms that are no live call,
ringing calls and repeated event ids have no effect."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import lk_sign  # noqa: E402
from harness import check, eq  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KEY, SECRET = "APIwebhookkey", "webhook-secret-0123456789abcdefghijklmnop"
SHARED = {"service_env": {"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET, "OFFLINE_GRACE_S": "1",
                          "RING_TIMEOUT_S": "30"}}


def node(mode, key, secret, arg, body):
    exe = os.environ.get("NODE_BIN") or shutil.which("node")
    check(exe, "node not found (needed to run livekit-server-sdk)")
    r = subprocess.run([exe, os.path.join(HERE, "livekit_webhook.mjs"), mode, key, secret, arg], input=body,
                       capture_output=True, timeout=30)
    check(r.returncode in (0, 1), "livekit_webhook.mjs %s failed: %s" % (mode, r.stderr.decode()[-300:]))
    return r


def sdk_sign(body, key=KEY, secret=SECRET, ttl="5m"):
    r = node("sign", key, secret, ttl, body)
    eq(r.returncode, 0, "SDK signing")
    return r.stdout.decode()


def sdk_accepts(body, auth):
    return node("receive", KEY, SECRET, "" if auth is None else auth, body).returncode == 0


def live_call(env, accept=True):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    if accept:
        eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
        a.expect_event("ACCEPT_CALL", call_id=call["id"])
        b.expect_event("ACCEPT_CALL", call_id=call["id"])
    return a, b, call


def hook(env, kind, room=None, identity=None, event_id=None, result="applied"):
    body = lk_sign.event(kind, room, identity, event_id)
    r = lk_sign.post(env, body, lk_sign.token(KEY, SECRET, body))
    eq(r.status, 200, "webhook %s status (%s)" % (kind, r.body[:200]))
    eq(r.json, {"result": result}, "webhook %s result" % kind)
    return r


# -- signatures ---------------------------------------------------------------------------------

def test_service_and_livekit_sdk_agree_on_every_signature_case(env):
    body = lk_sign.event("room_started", "not-a-call-" + env.uid())
    good = sdk_sign(body)
    tampered = body.replace(b'"room_started"', b'"room_startee"')
    check(tampered != body and len(tampered) == len(body), "one byte changed")
    cases = [  # (name, body sent, Authorization, accepted?)
        ("SDK AccessToken with the sha256 claim", body, good, True),
        ("the test's own signer (used below)", body, lk_sign.token(KEY, SECRET, body), True),
        ("one body byte changed", tampered, good, False),
        ("wrong secret", body, sdk_sign(body, secret=SECRET + "x"), False),
        ("wrong issuer", body, sdk_sign(body, key="APIotherkey"), False),
        ("expired token", body, sdk_sign(body, ttl="2 hours ago"), False),
        ("alg none", body, lk_sign.token(KEY, SECRET, body, alg="none"), False),
        ("Bearer prefix", body, "Bearer " + good, False),
        ("missing header", body, None, False),
    ]
    for name, sent, auth, accepted in cases:
        r = lk_sign.post(env, sent, auth)
        sdk = sdk_accepts(sent, auth)
        print("  %-40s service %d, SDK %s" % (name, r.status, "accepts" if sdk else "rejects"))
        eq(sdk, accepted, "SDK verdict on: %s" % name)
        eq(r.status, 200 if accepted else 401, "service status on: %s (%s)" % (name, r.body[:200]))
        if not accepted:
            eq(r.json.get("error"), "UNAUTHORIZED", "error code on: %s" % name)
            check(r.json.get("message", "").startswith("Webhook not signed by LiveKit"), "message: %r" % r.json)


def test_bodies_up_to_64_kib_are_accepted_on_this_route_only(env):
    room = "not-a-call-" + env.uid()
    big = lk_sign.event("room_started", room, padding="x" * (60 * 1024))
    check(len(big) > 16 * 1024, "the body is over the other routes' limit")
    r = lk_sign.post(env, big, lk_sign.token(KEY, SECRET, big))
    eq((r.status, r.json), (200, {"result": "ignored"}), "a signed 60 KiB event")
    huge = lk_sign.event("room_started", room, padding="x" * (65 * 1024))
    r = lk_sign.post(env, huge, lk_sign.token(KEY, SECRET, huge))
    eq(r.status, 413, "a 65 KiB event")
    eq(r.json.get("message"), "Request body over 65536 bytes", "413 message")
    r = env.http("POST", "/calls/end", body=big, content_type="application/json")
    eq(r.status, 413, "the same 60 KiB body on another route")


# -- effects on calls ---------------------------------------------------------------------------

def test_participant_joined_records_when_each_party_joined(env):
    a, b, call = live_call(env)
    hook(env, "participant_joined", call["id"], a.user_id)
    got = env.get("/calls/" + call["id"]).json
    check(set(got.get("mediaJoinedAt", {})) == {"caller"}, "mediaJoinedAt after the caller joined: %r" % got)
    hook(env, "participant_joined", call["id"], b.user_id)
    got = env.get("/calls/" + call["id"]).json
    check(set(got.get("mediaJoinedAt", {})) == {"caller", "receiver"}, "mediaJoinedAt: %r" % got)
    eq(got["status"], "ONGOING", "status after the joins")
    a.expect_no_event(0.2)


def test_party_left_past_the_grace_ends_the_call_for_both(env):
    a, b, call = live_call(env)
    hook(env, "participant_joined", call["id"], b.user_id)
    hook(env, "participant_left", call["id"], b.user_id)
    for c in (a, b):  # b's MQTT connection lives on: only its media left
        ev = c.expect_event("END_CALL", timeout=5, call_id=call["id"])
        eq((ev["call"]["status"], ev["call"].get("endReason")), ("ENDED", "MEDIA_ENDED"), "ended call")
        eq(ev["call"].get("endedBy"), {"userId": b.user_id}, "endedBy: the party who left")
    eq(env.get("/users/%s/call" % a.user_id).status, 404, "a's live call after the end")


def test_connection_aborted_counts_as_leaving(env):
    a, b, call = live_call(env)
    hook(env, "participant_connection_aborted", call["id"], a.user_id)
    ev = b.expect_event("END_CALL", timeout=5, call_id=call["id"])
    eq(ev["call"].get("endReason"), "MEDIA_ENDED", "endReason")


def test_party_rejoining_within_the_grace_keeps_the_call(env):
    a, b, call = live_call(env)
    hook(env, "participant_left", call["id"], b.user_id)
    hook(env, "participant_joined", call["id"], b.user_id)
    a.expect_no_event(2.0)  # twice the grace
    eq(env.get("/calls/" + call["id"]).json["status"], "ONGOING", "status after a rejoin")
    eq(env.end(call["id"], a).status, 200, "hang up")
    ev = b.expect_event("END_CALL", call_id=call["id"])
    eq(ev["call"].get("endReason"), "HANGUP", "the call went on until hung up")


def test_room_finished_ends_an_ongoing_call_at_once(env):
    a, b, call = live_call(env)
    hook(env, "room_finished", call["id"])
    for c in (a, b):
        ev = c.expect_event("END_CALL", timeout=2, call_id=call["id"])
        eq((ev["call"]["status"], ev["call"].get("endReason")), ("ENDED", "MEDIA_ENDED"), "ended call")
    hook(env, "room_finished", call["id"], result="ignored")  # finished already


def test_duplicate_event_id_has_no_second_effect(env):
    a, b, call = live_call(env)
    left_id = "EV_left_" + env.uid()
    hook(env, "participant_left", call["id"], b.user_id, event_id=left_id)
    hook(env, "participant_joined", call["id"], b.user_id)
    # LiveKit retries the first delivery: the same id must not start the grace again
    hook(env, "participant_left", call["id"], b.user_id, event_id=left_id, result="duplicate")
    a.expect_no_event(2.0)
    eq(env.get("/calls/" + call["id"]).json["status"], "ONGOING", "status after the duplicate")
    # the same event with a fresh id does act: the duplicate was dropped for its id alone
    hook(env, "participant_left", call["id"], b.user_id)
    ev = a.expect_event("END_CALL", timeout=5, call_id=call["id"])
    eq(ev["call"].get("endReason"), "MEDIA_ENDED", "endReason")


@h.options(redis=True, instances=2, **SHARED)
def test_a_retry_reaching_another_instance_is_a_duplicate_there_too(env):
    """LiveKit retries to whichever instance the balancer picks: the event id is remembered in
    Redis, so the retry's result is the same on any instance."""
    one, two = env.instances
    a, b, call = live_call(env)
    body = lk_sign.event("participant_left", call["id"], b.user_id, "EV_left_" + env.uid())
    auth = lk_sign.token(KEY, SECRET, body)
    results = []
    for service in (one, two, one):
        r = h.http_request(service.port, "POST", "/livekit/webhook", body=body,
                           headers={"Authorization": auth}, content_type="application/webhook+json")
        eq(r.status, 200, "webhook status")
        results.append(r.json["result"])
    print("    one participant_left delivered to instance 1, 2, 1: %s" % ", ".join(results))
    eq(results, ["applied", "duplicate", "duplicate"], "results on the two instances")


def test_events_of_ringing_calls_unknown_rooms_and_strangers_are_ignored(env):
    a, b, call = live_call(env, accept=False)
    for kind in ("participant_joined", "participant_left", "participant_connection_aborted", "room_finished"):
        hook(env, kind, call["id"], b.user_id, result="ignored")
    eq(env.answer(call["id"], "ACCEPT").status, 200, "the ringing call can still be answered")
    a.expect_event("ACCEPT_CALL", call_id=call["id"])
    hook(env, "participant_left", call["id"], "stranger-" + env.uid(), result="ignored")
    hook(env, "room_finished", "00000000-0000-4000-8000-000000000000", result="ignored")
    hook(env, "track_published", call["id"], b.user_id, result="ignored")
    a.expect_no_event(2.0)
    eq(env.get("/calls/" + call["id"]).json["status"], "ONGOING", "status after ignored events")


def test_signed_garbage_is_a_bad_request(env):
    for body in (b"[1,2]", b'{"room":{"name":"x"}}', b'{"event":"room_finished","room":"x"}'):
        r = lk_sign.post(env, body, lk_sign.token(KEY, SECRET, body))
        eq((r.status, r.json.get("error")), (400, "BAD_JSON"), "signed %r" % body)


@h.options()
def test_without_livekit_key_and_secret_the_route_is_500(env):
    body = lk_sign.event("room_finished", "x")
    r = lk_sign.post(env, body, lk_sign.token(KEY, SECRET, body))
    eq((r.status, r.json.get("error")), (500, "TOKEN_NOT_CONFIGURED"), "unconfigured")


if __name__ == "__main__":
    h.main(**SHARED)

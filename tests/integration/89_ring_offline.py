#!/usr/bin/python3
"""Ringing a user whose app sleeps (RING_OFFLINE_S, with webhooks): POST /calls/start to a receiver
with no online device answers 200 DIALLING and a call.ringing_offline webhook asks the app's
backend to push; the woken device finds the call on its retained users/{id}/call topic, rings
until the full ring timeout and accepts; if no device comes online within RING_OFFLINE_S the call
is MISSED, with call.ended sent. A device that woke while the service was down is found online
by its restart, and the call rings on. Without RING_OFFLINE_S an offline receiver is still refused.

A real HTTP receiver takes the webhooks (webhook_receiver.py); the service with webhooks is spawned
beside the Env's plain one, on the same broker."""

import json
import os
import queue
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402
from webhook_receiver import Receiver, call, events_of, seen_by  # noqa: E402

RING_OFFLINE_S = 5


def hooked(env, receiver, **extra):
    conf = {"WEBHOOK_URLS": receiver.url, "WEBHOOK_SECRET": secrets.token_hex(16),
            "RING_OFFLINE_S": str(RING_OFFLINE_S), "RING_TIMEOUT_S": "30"}
    conf.update({k: str(v) for k, v in extra.items()})
    return env.spawn_service(env=conf, name="hooked")


def ring_asleep(env, rec, **extra):
    """A service with webhooks (hooked), an online caller, a receiver with no device online and
    the call started to him: (service, caller, receiver id, the call, when it was started)."""
    svc = hooked(env, rec, **extra)
    (a,), b = seen_by(svc, env.user("a")), env.uid("b")
    check(b not in env.user_ids(), "the receiver has no online device")
    t0 = time.monotonic()
    r = call(svc, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": b})
    eq(r.status, 200, "start to a user with no online device")
    return svc, a, b, h.check_call(r.json, "DIALLING"), t0


def retained_call(dev, user_id, call_id, timeout=5.0):
    """Subscribes dev to users/{user_id}/call and returns the retained call with this id."""
    topic = "users/%s/call" % user_id
    dev.mqtt.subscribe(topic, qos=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            t, payload, retain = dev.messages.get(timeout=0.2)
        except queue.Empty:
            continue
        if t == topic and payload:
            got = json.loads(payload)
            if got.get("id") == call_id:
                check(retain, "the call reached the woken device as a retained message")
                return got
    raise AssertionError("no retained call %s on %s within %.0fs" % (call_id, topic, timeout))


@h.options()
def test_a_sleeping_receiver_is_woken_by_a_push_finds_the_call_and_accepts(env):
    rec = Receiver().start()
    try:
        svc, a, b, c, t0 = ring_asleep(env, rec)
        eq(c["receiver"]["id"], b, "receiver id")
        got = rec.wait_for(lambda d: events_of(d, c["id"]) == ["call.started", "call.ringing_offline"],
                           what="call.started then call.ringing_offline")
        push = [e for e in got if e["event"] == "call.ringing_offline"][0]
        eq(push["call"]["receiver"]["id"], b, "whom the backend is asked to wake")
        time.sleep(max(0, t0 + 2 - time.monotonic()))
        dev = env.client(b)  # the push woke the app: it connects, announces itself, reads its call topic
        seen = retained_call(dev, b, c["id"])
        eq(seen["status"], "DIALLING", "status on the woken device's retained topic")
        h.wait_until(lambda: call(svc, "GET", "/calls/" + c["id"]).json["receiver"]["name"] == dev.name, 5,
                     what="the call names the receiver as their device does once it is online")
        # Woken in time, it rings until the full ring timeout: still ringing past RING_OFFLINE_S.
        h.wait_until(lambda: call(svc, "GET", "/calls/" + c["id"]).json.get("revision") == 2, 5,
                     what="the ring deadline moved on when the device came online")
        time.sleep(max(0, t0 + RING_OFFLINE_S + 1 - time.monotonic()))
        eq(call(svc, "GET", "/calls/" + c["id"]).json["status"], "DIALLING", "status past RING_OFFLINE_S")
        r = call(svc, "POST", "/calls/answer", {"callId": c["id"], "answer": "ACCEPT"})
        eq((r.status, r.json.get("status")), (200, "ONGOING"), "the woken device accepts")
        a.expect_event("ACCEPT_CALL", call_id=c["id"])
        rec.wait_for(lambda d: events_of(d, c["id"]) == ["call.started", "call.ringing_offline", "call.accepted"],
                     what="call.accepted")
    finally:
        rec.stop()


@h.options()
def test_a_receiver_who_woke_while_the_service_was_down_rings_on_after_its_restart(env):
    # The service's restart reads the woken device's presence in the broker's replay and the call
    # on the retained topics (or in Redis): the call rings until the full ring timeout, not
    # RING_OFFLINE_S, and the device can accept it.
    rec = Receiver().start()
    try:
        svc, a, b, c, t0 = ring_asleep(env, rec)
        svc.stop()
        dev = env.client(b)  # the push woke the app while the service was down
        eq(retained_call(dev, b, c["id"])["status"], "DIALLING", "status on the woken device's retained topic")
        svc.start()
        got = call(svc, "GET", "/calls/" + c["id"]).json
        eq((got["status"], got["revision"], got["receiver"]["name"]), ("DIALLING", 2, dev.name),
           "status, revision and receiver of the call once the restarted service is ready")
        time.sleep(max(0, t0 + RING_OFFLINE_S + 1 - time.monotonic()))
        eq(call(svc, "GET", "/calls/" + c["id"]).json["status"], "DIALLING", "status past RING_OFFLINE_S")
        r = call(svc, "POST", "/calls/answer", {"callId": c["id"], "answer": "ACCEPT"})
        eq((r.status, r.json.get("status")), (200, "ONGOING"), "the woken device accepts")
        a.expect_event("ACCEPT_CALL", call_id=c["id"])
    finally:
        rec.stop()


@h.options()
def test_a_broker_restart_leaves_a_call_ringing_a_sleeping_receiver_ringing(env):
    # After the reconnect the receiver is not in the replay: he never was online, so no grace
    # period (4 s here) ends the call in ERROR; it rings until RING_OFFLINE_S and is MISSED. (The
    # caller's grace, started by his Last Will when the broker stopped, ends when he is back.)
    rec = Receiver().start()
    try:
        svc, a, b, c, t0 = ring_asleep(env, rec, OFFLINE_GRACE_S=4, RING_OFFLINE_S=14)
        env.broker.stop()
        h.wait_until(lambda: call(svc, "GET", "/ready").status == 503, 5, what="the service sees the broker gone")
        env.broker.start()
        a.connect()
        h.wait_until(lambda: call(svc, "GET", "/ready").status == 200, 20, what="the service back on the broker")
        back = time.monotonic() - t0
        time.sleep(5)  # past the grace period of a party who was online
        eq(call(svc, "GET", "/calls/" + c["id"]).json["status"], "DIALLING", "status 5 s after the reconnect")
        ev = a.expect_event("END_CALL", timeout=14 + 5, call_id=c["id"])
        print("    broker back %.1fs after the start; the call ended %s after %.1fs (RING_OFFLINE_S=14)" % (
            back, ev["call"]["status"], time.monotonic() - t0))
        eq(ev["call"]["status"], "MISSED", "status at the end")
    finally:
        rec.stop()


@h.options()
def test_nobody_wakes_and_the_call_is_missed_after_ring_offline_s(env):
    rec = Receiver().start()
    try:
        svc, a, b, c, t0 = ring_asleep(env, rec)
        ev = a.expect_event("END_CALL", timeout=RING_OFFLINE_S + 5, call_id=c["id"])
        waited = time.monotonic() - t0
        print("    MISSED after %.2fs (RING_OFFLINE_S=%d, RING_TIMEOUT_S=30)" % (waited, RING_OFFLINE_S))
        eq(ev["call"]["status"], "MISSED", "status")
        check(RING_OFFLINE_S - 1 <= waited <= RING_OFFLINE_S + 4, "MISSED after %.2fs" % waited)
        got = rec.wait_for(lambda d: events_of(d, c["id"]) ==
                           ["call.started", "call.ringing_offline", "call.ended"], what="the three webhooks")
        ended = [e for e in got if e["event"] == "call.ended"][0]
        eq(ended["call"]["status"], "MISSED", "status in call.ended")
    finally:
        rec.stop()


@h.options()
def test_without_ring_offline_s_an_offline_receiver_is_still_refused(env):
    rec = Receiver().start()
    try:
        svc = hooked(env, rec, RING_OFFLINE_S=0)
        a, b = seen_by(svc, env.user("a"), env.user("b"))
        for target in (env.service, svc):
            r = call(target, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
            eq(r.status, 200, "start to an online receiver")
            call(target, "POST", "/calls/end", {"callId": r.json["id"], "userId": a.user_id})
            expect_error(call(target, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": env.uid("z")}),
                         404, "RECEIVER_OFFLINE", "Receiver is offline")
        check(not any(e["event"] == "call.ringing_offline" for e in rec.delivered()), "no push asked for")
    finally:
        rec.stop()


if __name__ == "__main__":
    h.main()

#!/usr/bin/python3
"""Why each call ended and who did it, as both parties and every device see it: endReason for every
way a call can end (HANGUP, CANCELLED, DECLINED, TIMEOUT, BUSY, PARTY_OFFLINE, MEDIA_ENDED),
answeredBy / endedBy with the device that acted (seen by the callee's other device), the missed-call
event of a busy callee, and crossed calls (two users calling each other at the same moment, 200
times from two threads) merging into one accepted call. RING_TIMEOUT_S=1, OFFLINE_GRACE_S=1 here."""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import lk_sign  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

KEY, SECRET = "APIreasonkey", "reason-secret-0123456789abcdefghijklmnop"
SHARED = {"service_env": {"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET, "OFFLINE_GRACE_S": "1",
                          "RING_TIMEOUT_S": "1", "START_RATE_PER_MIN": "100000"}}
CROSSED_ROUNDS = 200


def ended_for_both(a, b, call, event, status, reason, timeout=5.0):
    """Both parties get the event; its call has this status and endReason. Returns the call."""
    got = []
    for c in (a, b):
        ev = c.expect_event(event, timeout=timeout, call_id=call["id"])
        eq((ev["call"]["status"], ev["call"].get("endReason")), (status, reason), "%s's %s" % (c.user_id, event))
        got.append(ev["call"])
    eq(got[0], got[1], "both parties see the same call")
    return got[0]


def test_hangup(env):
    a, b, call = env.ongoing_call()
    r = env.post("/calls/end", {"callId": call["id"], "userId": b.user_id, "deviceId": b.client_id})
    eq(r.status, 200, "end")
    got = ended_for_both(a, b, call, "END_CALL", "ENDED", "HANGUP")
    eq(got.get("endedBy"), {"userId": b.user_id, "deviceId": b.client_id}, "endedBy")
    eq(r.json, got, "the reply is the call of the events")


def test_caller_cancelling_a_ringing_call(env):
    a, b, call = env.ringing_call()
    eq(env.end(call["id"], a).status, 200, "end")
    got = ended_for_both(a, b, call, "END_CALL", "ENDED", "CANCELLED")
    eq(got.get("endedBy"), {"userId": a.user_id}, "endedBy without a deviceId")


def test_receiver_declining(env):
    a, b, call = env.ringing_call()
    r = env.post("/calls/answer", {"callId": call["id"], "answer": "DECLINE", "deviceId": b.client_id})
    eq(r.status, 200, "decline")
    got = ended_for_both(a, b, call, "DECLINE_CALL", "DECLINED", "DECLINED")
    eq(got.get("endedBy"), {"userId": b.user_id, "deviceId": b.client_id}, "endedBy")


def test_receiver_ending_a_ringing_call_declines_it(env):
    a, b, call = env.ringing_call()
    eq(env.end(call["id"], b).status, 200, "end")
    ended_for_both(a, b, call, "END_CALL", "ENDED", "DECLINED")


def test_ring_timeout(env):
    a, b, call = env.ringing_call()
    got = ended_for_both(a, b, call, "END_CALL", "MISSED", "TIMEOUT")
    check("endedBy" not in got and "answeredBy" not in got, "a missed call names nobody: %r" % got)


def test_party_offline(env):
    a, b, call = env.ongoing_call()
    a_watch = env.client(a.user_id, presence=False)  # a's events while a is gone
    a.drop()
    ev = b.expect_event("END_CALL", timeout=5, call_id=call["id"])
    eq((ev["call"]["status"], ev["call"].get("endReason")), ("ERROR", "PARTY_OFFLINE"), "ended call")
    a_watch.expect_event("END_CALL", timeout=2, call_id=call["id"])


def test_media_ended(env):
    a, b, call = env.ongoing_call()
    body = lk_sign.event("room_finished", call["id"])
    eq(lk_sign.post(env, body, lk_sign.token(KEY, SECRET, body)).json, {"result": "applied"}, "webhook")
    ended_for_both(a, b, call, "END_CALL", "ENDED", "MEDIA_ENDED")


def test_busy(env):
    a, b, call = env.ongoing_call()
    c = env.user("c")
    r = env.post("/calls/start", {"callerId": c.user_id, "receiverId": b.user_id})
    expect_error(r, 400, "RECEIVER_BUSY", "Receiver busy")
    ev = b.expect_event("END_CALL")
    missed = ev["call"]
    eq((missed["status"], missed.get("endReason"), missed["revision"]), ("MISSED", "BUSY", 1), "the record")
    eq((missed["caller"]["id"], missed["receiver"]["id"]), (c.user_id, b.user_id), "its parties")
    eq(ev["id"], missed["id"] + ":1", "event id")
    eq(env.get("/calls/" + missed["id"]).json, missed, "the record is readable")
    c.expect_no_event(0.3)  # the caller has its 400; a, in the call, hears nothing
    a.expect_no_event(0.1)
    eq(env.get("/users/%s/call" % b.user_id).json["id"], call["id"], "b's live call is untouched")
    eq(env.end(call["id"], a).status, 200, "the live call goes on until hung up")
    b.expect_event("END_CALL", call_id=call["id"])


def test_answered_on_one_device_is_seen_on_the_other(env):
    a = env.user("a")
    bid = env.uid("b")
    phone = env.client(bid, client_id=bid + ".phone")
    env.wait_online(bid)
    tab = env.client(bid, client_id=bid + ".tab")
    call = env.start_call(a, bid)
    for dev in (phone, tab):
        dev.expect_event("INCOMING_CALL", call_id=call["id"])
    r = env.post("/calls/answer", {"callId": call["id"], "answer": "ACCEPT", "deviceId": phone.client_id})
    eq(r.status, 200, "accept on the phone")
    for dev in (a, phone, tab):
        ev = dev.expect_event("ACCEPT_CALL", call_id=call["id"])
        eq(ev["call"].get("answeredBy"), {"userId": bid, "deviceId": phone.client_id},
           "answeredBy as %s sees it" % dev.client_id)
    eq(env.end(call["id"], a).status, 200, "end")
    ev = tab.expect_event("END_CALL", call_id=call["id"])
    eq(ev["call"].get("answeredBy", {}).get("deviceId"), phone.client_id, "answeredBy kept after the end")


def test_invalid_device_id_is_refused(env):
    a, b, call = env.ringing_call()
    r = env.post("/calls/answer", {"callId": call["id"], "answer": "ACCEPT", "deviceId": "a/b"})
    expect_error(r, 400, "INVALID_ID", "deviceId is not a valid id")
    r = env.post("/calls/end", {"callId": call["id"], "userId": a.user_id, "deviceId": 7})
    eq((r.status, r.json.get("error")), (400, "INVALID_FIELD"), "a deviceId that is no string")
    eq(env.get("/calls/" + call["id"]).json["status"], "DIALLING", "the call is untouched")


def test_crossed_calls_merge_into_one_accepted_call(env):
    a, b = env.user("a"), env.user("b")
    barrier = threading.Barrier(2)
    merged = busy = 0
    a_starts = 0

    def start(x, y, out, i):
        barrier.wait(timeout=10)
        out[i] = env.post("/calls/start", {"callerId": x.user_id, "receiverId": y.user_id})

    for n in range(CROSSED_ROUNDS):
        out = [None, None]
        threads = [threading.Thread(target=start, args=(a, b, out, 0)),
                   threading.Thread(target=start, args=(b, a, out, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        busy += sum(1 for r in out if r is not None and r.status == 400)
        check(all(r is not None and r.status == 200 for r in out),
              "round %d: %s" % (n, [(r.status, r.body[:120]) if r else None for r in out]))
        eq(out[0].json["id"], out[1].json["id"], "round %d: one call" % n)
        eq(sorted(r.json["status"] for r in out), ["DIALLING", "ONGOING"], "round %d: statuses" % n)
        call = env.get("/calls/" + out[0].json["id"]).json
        eq(call["status"], "ONGOING", "round %d: the call" % n)
        a_starts += call["caller"]["id"] == a.user_id
        merged += 1
        eq(env.end(call["id"], a).status, 200, "round %d: end" % n)

    def count(c):
        types = {}
        while True:
            try:
                ev = c.events.get(timeout=1.0)
            except Exception:
                return types
            types[ev["type"]] = types.get(ev["type"], 0) + 1

    got_a, got_b = count(a), count(b)
    print("  %d crossed rounds: %d merged, %d busy errors; the call rang first from a %d times, from b %d"
          % (CROSSED_ROUNDS, merged, busy, a_starts, CROSSED_ROUNDS - a_starts))
    print("  events: a %r, b %r" % (got_a, got_b))
    eq(busy, 0, "busy errors")
    for who, got in (("a", got_a), ("b", got_b)):
        eq(got.get("ACCEPT_CALL"), CROSSED_ROUNDS, "%s's ACCEPT_CALL events" % who)
        eq(got.get("END_CALL"), CROSSED_ROUNDS, "%s's END_CALL events" % who)
    eq(got_a.get("INCOMING_CALL", 0) + got_b.get("INCOMING_CALL", 0), CROSSED_ROUNDS, "INCOMING_CALL events")


if __name__ == "__main__":
    h.main(**SHARED)

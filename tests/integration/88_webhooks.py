#!/usr/bin/python3
"""Signed webhooks out (WEBHOOK_URLS, WEBHOOK_SECRET): a real HTTP receiver in the test gets every
call and presence event, signed (checked by hand and by livekit-server-sdk's WebhookReceiver), in
order per call; a receiver answering 500 three times still gets the event, once; a receiver that
hangs does not slow POST /calls/start (p99 against a service without webhooks, same broker); a
receiver down past WEBHOOK_RETRY_S loses only the events of that window, and /health counts them.

Each test runs the plain service of its Env (no webhooks) and spawns a second one with webhooks on
the same broker."""

import os
import re
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402
from webhook_receiver import Receiver, plain_check, sdk_check  # noqa: E402

OWN = {"service_env": {"START_RATE_PER_MIN": "0"}}


def hooked(env, receiver, **extra):
    """A second service posting webhooks to receiver; returns (service, secret)."""
    secret = secrets.token_hex(16)
    conf = {"WEBHOOK_URLS": receiver.url, "WEBHOOK_SECRET": secret, "START_RATE_PER_MIN": "0",
            "WEBHOOK_RETRY_S": "30"}
    conf.update({k: str(v) for k, v in extra.items()})
    return env.spawn_service(env=conf, name="hooked"), secret


def call(svc, method, path, body=None):
    return h.http_request(svc.port, method, path, json_body=body)


def seen_by(svc, *clients):
    """Waits until the spawned service lists these users online too (Env.user waits for its own)."""
    for c in clients:
        h.wait_until(lambda: c.user_id in [u.get("id") for u in call(svc, "GET", "/users").json or []], 5,
                     what="%s online at the service with webhooks" % c.user_id)
    return clients


def events_of(delivered, call_id):
    return [e["event"] for e in delivered if e.get("call", {}).get("id") == call_id]


def health_webhooks(svc):
    r = call(svc, "GET", "/health")
    eq(r.status, 200, "GET /health")
    check("webhooks" in r.json, "/health without webhook counters: %r" % r.json)
    return r.json["webhooks"]


@h.options(**OWN)
def test_every_event_arrives_signed_and_in_order_per_call(env):
    rec = Receiver().start()
    try:
        svc, secret = hooked(env, rec)
        a, b = seen_by(svc, env.user("a"), env.user("b"))
        rec.wait_for(lambda d: {(e["event"], e["user"]["id"]) for e in d if e["event"] == "presence.online"}
                     >= {("presence.online", a.user_id), ("presence.online", b.user_id)},
                     what="presence.online of both")
        c1 = call(svc, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}).json
        eq(call(svc, "POST", "/calls/answer", {"callId": c1["id"], "answer": "ACCEPT"}).status, 200, "accept")
        time.sleep(0.05)
        eq(call(svc, "POST", "/calls/end", {"callId": c1["id"], "userId": a.user_id}).status, 200, "end")
        c2 = call(svc, "POST", "/calls/start", {"callerId": b.user_id, "receiverId": a.user_id}).json
        eq(call(svc, "POST", "/calls/answer", {"callId": c2["id"], "answer": "DECLINE"}).status, 200, "decline")
        c3 = call(svc, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}).json
        eq(call(svc, "POST", "/calls/end", {"callId": c3["id"], "userId": a.user_id}).status, 200, "cancel")
        b.disconnect()
        want = {c1["id"]: ["call.started", "call.accepted", "call.ended"],
                c2["id"]: ["call.started", "call.declined", "call.ended"],
                c3["id"]: ["call.started", "call.ended"]}
        got = rec.wait_for(lambda d: all(events_of(d, cid) == ev for cid, ev in want.items())
                           and any(e["event"] == "presence.offline" and e["user"]["id"] == b.user_id
                                   for e in d), what="the events of three calls and b going offline")
        for cid, ev in want.items():
            eq(events_of(got, cid), ev, "webhooks of call %s in order" % cid)
        ids = [e["id"] for e in got]
        eq(len(ids), len(set(ids)), "unique webhook ids")
        for e in got:
            check(isinstance(e.get("createdAt"), int) and abs(e["createdAt"] - time.time()) < 120,
                  "createdAt of %r" % e)
        ended = {e["call"]["id"]: e for e in got if e["event"] == "call.ended"}
        eq(ended[c1["id"]]["call"]["status"], "ENDED", "status in call.ended")
        check("answeredAt" in ended[c1["id"]]["call"] and "endedAt" in ended[c1["id"]]["call"],
              "timestamps in call.ended: %r" % ended[c1["id"]])
        check(ended[c1["id"]]["duration"] > 0, "duration of an answered call: %r" % ended[c1["id"]])
        eq(ended[c2["id"]]["call"]["status"], "DECLINED", "status of the declined call")
        eq(ended[c2["id"]]["duration"], 0, "duration of an unanswered call")
        with rec.lock:
            records = list(rec.records)
        bad = [(r["json"].get("event"), plain_check(r["body"], r["auth"], secret)) for r in records]
        bad = [b_ for b_ in bad if b_[1]]
        eq(bad, [], "webhooks failing the plain signature check")
        sdk = sdk_check(records, secret)
        eq(len(sdk), len(records), "webhooks checked by livekit-server-sdk")
        eq([x for x in sdk if not x[0]], [], "webhooks refused by livekit-server-sdk's WebhookReceiver")
        eq([x[1] for x in sdk], [r["json"]["event"] for r in records], "event names seen by the SDK")
        # The same check refuses a webhook signed with another secret, and a body changed after signing.
        other = sdk_check(records[:1], secret + "x") + sdk_check(
            [{"body": records[0]["body"].replace("}", ' }', 1), "auth": records[0]["auth"]}], secret)
        eq([x[0] for x in other], [False, False], "SDK check of a forged or altered webhook")
        check(plain_check(records[0]["body"] + " ", records[0]["auth"], secret), "altered body passes")
        print("    %d webhooks received, all signed; duplicated %d" % (len(records), len(ids) - len(set(ids))))
    finally:
        rec.stop()


@h.options(**OWN)
def test_a_receiver_failing_three_times_still_gets_the_event_once(env):
    rec = Receiver(fail_first=3).start()
    try:
        svc, _ = hooked(env, rec)
        a, b = seen_by(svc, env.user("a"), env.user("b"))
        c = call(svc, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}).json
        eq(call(svc, "POST", "/calls/end", {"callId": c["id"], "userId": a.user_id}).status, 200, "end")
        got = rec.wait_for(lambda d: events_of(d, c["id"]) == ["call.started", "call.ended"], timeout=20,
                           what="call.started and call.ended after three 500s each")
        with rec.lock:
            tries = [r["status"] for r in rec.records if r["json"]["id"] == c["id"] + ":1:call.started"]
        eq(tries, [500, 500, 500, 200], "answers to the tries of call.started")
        started = [e for e in got if e["event"] == "call.started" and e["call"]["id"] == c["id"]]
        eq(len(started), 1, "call.started delivered")
        wh = health_webhooks(svc)
        print("    tries %s; delivered %d, failed %d, duplicated %d" % (
            tries, wh["delivered"], wh["failed"], len(started) - 1))
        eq(wh["failed"], 0, "webhooks dropped")
    finally:
        rec.stop()


def p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@h.options(**OWN)
def test_a_hanging_receiver_does_not_slow_call_starts(env):
    rec = Receiver(hang=True).start()
    try:
        svc, _ = hooked(env, rec, WEBHOOK_TIMEOUT_S=30)
        pairs = [seen_by(svc, env.user("a"), env.user("b")) for _ in range(4)]
        h.wait_until(lambda: len(rec.records) >= 1, 10, what="the hanging receiver to get a first webhook")
        # A round: n starts on each service, interleaved, so both see the same machine. The p99 of a
        # round on a shared 2-core machine can catch a scheduling hiccup of either side, so up to three
        # rounds are run and one within the bound passes; a start that waited for the receiver (which
        # never answers) would miss it in every round by seconds.
        n, rounds, verdicts = 300, [], []
        for _ in range(3):
            plain, hooked_ms = [], []
            for i in range(n):
                a, b = pairs[i % len(pairs)]
                for target, out in ((env.service, plain), (svc, hooked_ms)):
                    t0 = time.monotonic()
                    r = call(target, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
                    out.append((time.monotonic() - t0) * 1000)
                    eq(r.status, 200, "start %d" % i)
                    eq(call(target, "POST", "/calls/end", {"callId": r.json["id"], "userId": a.user_id}).status,
                       200, "end %d" % i)
            rounds.append((p(plain, .5), p(plain, .99), p(hooked_ms, .5), p(hooked_ms, .99)))
            # 2x, with 2 ms of room for scheduling noise at sub-millisecond figures.
            verdicts.append(p(hooked_ms, .99) <= max(2 * p(plain, .99), p(plain, .99) + 2.0))
            if verdicts[-1]:
                break
        wh = health_webhooks(svc)
        for k, (pp50, pp99, hp50, hp99) in enumerate(rounds):
            print("    round %d, POST /calls/start over %d calls: without webhooks p50 %.2f ms p99 %.2f ms; "
                  "hanging receiver p50 %.2f ms p99 %.2f ms" % (k + 1, n, pp50, pp99, hp50, hp99))
        print("    webhooks queued behind the hanging receiver: %d" % wh["queued"])
        check(wh["queued"] >= n, "the receiver hung, so webhooks wait: %r" % wh)
        check(verdicts[-1], "p99 of start with a hanging receiver above 2x the one without webhooks in "
              "every round: %r" % rounds)
        # Nor does it hold the stop: the attempt in flight (30 s timeout) is cut short, well within
        # the harness's 10 s, and what was queued is counted and logged.
        eq(svc.stop(expect_code=None), 0, "exit code with a webhook in flight")
        check("event(s) not delivered at stop" in h.read_text(svc.stderr_path), "the loss at stop is logged")
    finally:
        rec.stop()


@h.options(**OWN)
def test_a_full_queue_drops_the_newest_webhooks_and_counts_them(env):
    rec = Receiver(hang=True).start()
    try:
        svc, _ = hooked(env, rec, WEBHOOK_QUEUE_MAX=3, WEBHOOK_TIMEOUT_S=30, WEBHOOK_CONCURRENCY=1)
        a, b = seen_by(svc, env.user("a"), env.user("b"))
        h.wait_until(lambda: len(rec.records) >= 1, 10, what="the first webhook at the hanging receiver")
        for _ in range(3):
            c = call(svc, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}).json
            eq(call(svc, "POST", "/calls/end", {"callId": c["id"], "userId": a.user_id}).status, 200, "end")
        wh = health_webhooks(svc)
        print("    queue of 3, 8 webhooks raised (2 presence, 6 call): queued %d, overflowed %d" % (
            wh["queued"], wh["overflowed"]))
        eq((wh["queued"], wh["overflowed"]), (3, 5), "(queued, overflowed)")
        check("is full" in h.read_text(svc.stderr_path), "the overflow is logged")
        eq(len(rec.records), 1, "webhooks at the receiver (the first one hangs)")
    finally:
        rec.stop()


@h.options(**OWN)
def test_a_receiver_down_past_the_retry_bound_loses_only_that_window(env):
    rec = Receiver().start()
    try:
        svc, _ = hooked(env, rec, WEBHOOK_RETRY_S=1.5, WEBHOOK_TIMEOUT_S=1)
        a, b = seen_by(svc, env.user("a"), env.user("b"))

        def one_call():
            c = call(svc, "POST", "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}).json
            eq(call(svc, "POST", "/calls/end", {"callId": c["id"], "userId": b.user_id}).status, 200, "end")
            return c["id"]

        before = one_call()
        rec.wait_for(lambda d: events_of(d, before) == ["call.started", "call.ended"], what="before the outage")
        rec.stop()
        t_down = time.monotonic()
        during = [one_call(), one_call()]
        h.wait_until(lambda: health_webhooks(svc)["failed"] >= 4, 10, what="the window's webhooks dropped")
        down_for = time.monotonic() - t_down
        rec.start()
        after = one_call()
        got = rec.wait_for(lambda d: events_of(d, after) == ["call.started", "call.ended"], what="after the outage")
        # The receiver records a webhook before it answers: the service may not have read the answer yet.
        try:
            h.wait_until(lambda: health_webhooks(svc)["queued"] == 0, 5, what="the queues drained")
        except AssertionError:
            pass  # reported as stranded below
        wh = health_webhooks(svc)
        lost = sum(1 for cid in during for _ in ("call.started", "call.ended")) - sum(
            len(events_of(got, cid)) for cid in during)
        ids = [e["id"] for e in got]
        print("    receiver down %.1fs (WEBHOOK_RETRY_S=1.5): lost %d, counted failed %d, duplicated %d, "
              "stranded (queued) %d" % (down_for, lost, wh["failed"], len(ids) - len(set(ids)), wh["queued"]))
        eq(events_of(got, before), ["call.started", "call.ended"], "before the window")
        eq(events_of(got, after), ["call.started", "call.ended"], "after the window")
        eq(lost, 4, "webhooks lost in the window")
        eq(wh["failed"], lost, "the failed counter")
        # The operator's line for each dropped webhook: where to, how often tried, why (docs/metrics.md).
        log = h.read_text(svc.stderr_path)
        dropped = [l for l in log.splitlines() if "ERROR" in l and "webhook to '" in l and "dropped after" in l]
        eq(len(dropped), lost, "log lines of dropped webhooks")
        check(all(re.search(r"dropped after \d+ tries in [\d.]+ s \(.+\)", l) for l in dropped),
              "a dropped webhook's line says the tries and the cause: %r" % dropped[:1])
        eq(len(ids), len(set(ids)), "no duplicates")
        eq(wh["queued"], 0, "stranded")
    finally:
        rec.stop()


def test_ring_offline_needs_webhooks_and_webhooks_need_a_secret(env):
    bad = [({"RING_OFFLINE_S": "5"}, "RING_OFFLINE_S needs WEBHOOK_URLS"),
           ({"WEBHOOK_URLS": "http://127.0.0.1:9/x"}, "WEBHOOK_URLS needs WEBHOOK_SECRET"),
           ({"WEBHOOK_URLS": "ftp://127.0.0.1/x", "WEBHOOK_SECRET": "s"}, "not an http:// or https:// URL")]
    for conf, words in bad:
        s = h.Service(env.tmp, env.broker.url, env=conf, name="bad-%s" % secrets.token_hex(2))
        try:
            s.start(wait="health", timeout=5)
            raise AssertionError("the service started with %r" % conf)
        except h.HarnessError as e:
            check(words in str(e), "start with %r failed, but not saying %r: %s" % (conf, words, e))
    # The same settings with what they need start.
    ok = h.Service(env.tmp, env.broker.url, env={"RING_OFFLINE_S": "5", "WEBHOOK_URLS": "http://127.0.0.1:9/x",
                                                 "WEBHOOK_SECRET": "s"}, name="good")
    ok.start(wait="health")
    eq(ok.stop(expect_code=None), 0, "exit code")


if __name__ == "__main__":
    h.main()

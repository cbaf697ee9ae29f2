#!/usr/bin/python3
"""Concurrent requests: parallel starts, two callers racing for one receiver, racing answers and
ends on one call, persistent HTTP connections. Exactly one request may win each race, and the
events must tell the same story as the replies."""

import http.client
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402


def parallel(*requests):
    """Run the callables at the same moment; return their results in order."""
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def run(i, fn):
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def drain(client, timeout=0.5):
    events = []
    while True:
        try:
            events.append(client.events.get(timeout=timeout))
        except Exception:
            return [e.get("type") for e in events]


def test_parallel_starts_between_distinct_pairs_all_succeed(env):
    pairs = [(env.user("a"), env.user("b")) for _ in range(15)]
    replies = parallel(*[lambda a=a, b=b: env.post("/calls/start", {"callerId": a.user_id,
                                                                     "receiverId": b.user_id})
                         for a, b in pairs])
    bad = [r for r in replies if r.status != 200]
    check(not bad, "parallel starts failed: %r" % bad[:3])
    eq(len({r.json["id"] for r in replies}), len(pairs), "distinct call ids")
    for (a, b), r in zip(pairs, replies):
        b.expect_event("INCOMING_CALL", call_id=r.json["id"])
    for a, b in pairs:
        b.expect_no_event(0.05)


def test_two_callers_racing_for_one_receiver_only_one_wins(env):
    for _ in range(5):
        c1, c2, b = env.user("c1"), env.user("c2"), env.user("b")
        r1, r2 = parallel(lambda: env.post("/calls/start", {"callerId": c1.user_id, "receiverId": b.user_id}),
                          lambda: env.post("/calls/start", {"callerId": c2.user_id, "receiverId": b.user_id}))
        statuses = sorted([r1.status, r2.status])
        eq(statuses, [200, 400], "statuses of two racing starts")
        loser = r1 if r1.status == 400 else r2
        eq(loser.json.get("error"), "RECEIVER_BUSY", "error of the losing start")
        # the winner's call rings; the loser's attempt reaches b as a missed-call record (BUSY)
        eq(drain(b, 0.3), ["INCOMING_CALL", "END_CALL"], "events of the receiver")


def test_racing_accept_and_decline_one_wins(env):
    for _ in range(5):
        a, b = env.user("a"), env.user("b")
        call = env.start_call(a, b)
        acc, dec = parallel(lambda: env.answer(call["id"], "ACCEPT"), lambda: env.answer(call["id"], "DECLINE"))
        eq(sorted([acc.status, dec.status]), [200, 409], "statuses of racing ACCEPT and DECLINE")
        winner = "ACCEPT_CALL" if acc.status == 200 else "DECLINE_CALL"
        final = (acc if acc.status == 200 else dec).json["status"]
        loser = dec if acc.status == 200 else acc
        eq(loser.json.get("call", {}).get("status"), final, "call in the 409 body")
        eq(drain(a, 0.3), [winner], "caller's events")


def test_racing_cancel_and_accept_stay_consistent(env):
    for _ in range(5):
        a, b = env.user("a"), env.user("b")
        call = env.start_call(a, b)
        end, acc = parallel(lambda: env.end(call["id"], a), lambda: env.answer(call["id"], "ACCEPT"))
        eq(end.status, 200, "end status")
        eq(end.json["status"], "ENDED", "status after end")
        if acc.status == 200:
            eq(acc.json["status"], "ONGOING", "accepted call")
            eq(drain(a, 0.3), ["ACCEPT_CALL", "END_CALL"], "caller's events (accept won)")
        else:
            eq(acc.status, 409, "accept after the cancel")
            eq(drain(a, 0.3), ["END_CALL"], "caller's events (cancel won)")


def test_parallel_ends_send_one_end_call(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    replies = parallel(*[lambda who=who: env.end(call["id"], who) for who in (a, b, a, b, a, b)])
    check(all(r.status == 200 for r in replies), "statuses %r" % [r.status for r in replies])
    check(all(r.json == replies[0].json for r in replies), "parallel ends returned different calls")
    eq(drain(a, 0.4), ["ACCEPT_CALL", "END_CALL"], "caller's events")
    eq(drain(b, 0.1), ["INCOMING_CALL", "ACCEPT_CALL", "END_CALL"], "receiver's events")


def test_keep_alive_connection_serves_many_requests(env):
    a, b = env.user("a"), env.user("b")
    conn = http.client.HTTPConnection("127.0.0.1", env.service.port, timeout=10)
    try:
        for i in range(30):
            if i % 3 == 0:
                conn.request("GET", "/users")
            elif i % 3 == 1:
                conn.request("POST", "/calls/start", body=b"{bad", headers={"Content-Type": "application/json"})
            else:
                conn.request("GET", "/nope")
            r = conn.getresponse()
            r.read()
            eq(r.status, (200, 400, 404)[i % 3], "reply %d on one connection" % i)
        conn.request("POST", "/calls/start", body=json.dumps({"callerId": a.user_id, "receiverId": b.user_id}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        eq(r.status, 200, "start on a reused connection")
        b.expect_event("INCOMING_CALL", call_id=json.loads(r.read())["id"])
    finally:
        conn.close()


def test_many_devices_coming_and_going_while_calls_run(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    uid = env.uid("flappy")
    stop = threading.Event()

    def flap():
        while not stop.is_set():
            c = h.Client(env.broker, uid)
            c.drop()

    t = threading.Thread(target=flap)
    t.start()
    try:
        for _ in range(20):
            eq(env.get("/users").status, 200, "users while devices flap")
        eq(env.answer(call["id"], "ACCEPT").status, 200, "accept while devices flap")
    finally:
        stop.set()
        t.join(10)
    env.wait_offline(uid)
    eq(env.end(call["id"], b).json["status"], "ENDED", "status")


if __name__ == "__main__":
    h.main()

#!/usr/bin/python3
"""Several service instances on one Redis (STATE_ENGINE=redis): any instance serves any request,
busy lines are global, deadlines fire exactly once, and the calls of an instance killed with
SIGKILL go on through the others. Printed counts: races won and refused, events per party after
dropping duplicates by event id, calls stranded. Real redis-server, Mosquitto and binaries."""

import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

NO_LIMIT = {"START_RATE_PER_MIN": "0", "CALL_RETENTION_S": "600"}


def post(service, path, body):
    return h.http_request(service.port, "POST", path, json_body=body)


def events_of(client, timeout=0.3):
    """Every event the client has received until none arrives for timeout, duplicates (same event
    id) dropped; returns (events, duplicates)."""
    seen, out, dups = set(), [], 0
    while True:
        try:
            ev = client.events.get(timeout=timeout)
        except Exception:  # queue.Empty
            return out, dups
        if ev.get("id") in seen:
            dups += 1
            continue
        seen.add(ev.get("id"))
        out.append(ev)


def collect(client, n, timeout):
    """The first n distinct events (by event id) within timeout, then any that follow within
    0.3 s; returns (events, duplicates)."""
    seen, out, dups = set(), [], 0
    deadline = time.monotonic() + timeout
    while True:
        wait = deadline - time.monotonic() if len(out) < n else 0.3
        try:
            ev = client.events.get(timeout=max(wait, 0.01))
        except Exception:  # queue.Empty
            return out, dups
        if ev.get("id") in seen:
            dups += 1
        else:
            seen.add(ev.get("id"))
            out.append(ev)


@h.options(redis=True, instances=2, service_env=NO_LIMIT)
def test_a_call_started_on_one_instance_is_answered_and_ended_on_the_other(env):
    one, two = env.instances
    a, b = env.user("a"), env.user("b")
    r = post(one, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
    eq(r.status, 200, "start on instance 1")
    call_id = r.json["id"]
    b.expect_event("INCOMING_CALL", call_id=call_id)
    r = h.http_request(two.port, "GET", "/calls/" + call_id)
    eq((r.status, r.json.get("status")), (200, "DIALLING"), "instance 2 reads the call")
    r = post(two, "/calls/answer", {"callId": call_id, "answer": "ACCEPT"})
    eq((r.status, r.json.get("status")), (200, "ONGOING"), "answer on instance 2")
    for c in (a, b):
        c.expect_event("ACCEPT_CALL", call_id=call_id)
    expect_error(post(two, "/calls/start", {"callerId": b.user_id, "receiverId": a.user_id}), 400,
                 "CALLER_BUSY")
    r = post(one, "/calls/end", {"callId": call_id, "userId": a.user_id})
    eq((r.status, r.json.get("status"), r.json.get("revision")), (200, "ENDED", 3), "end on instance 1")
    for c in (a, b):
        c.expect_event("END_CALL", call_id=call_id)
        c.expect_no_event(0.5)
    for s in env.instances:
        expect_error(h.http_request(s.port, "GET", "/users/%s/call" % a.user_id), 404, "NO_LIVE_CALL")


def transaction_round_trips(env):
    """Round trips of the instances' transitions so far, from Redis's INFO commandstats: each
    round trip of reads carries one WATCH (the reads of a transition are pipelined with it),
    each round trip of writes one EXEC (the writes go in one MULTI/EXEC)."""
    info = env.redis.command("INFO", "commandstats")
    calls = dict((m.group(1), int(m.group(2)))
                 for m in re.finditer(r"^cmdstat_(\w+):calls=(\d+)", info, re.M))
    return calls.get("watch", 0) + calls.get("exec", 0)


@h.options(redis=True, instances=2, service_env=NO_LIMIT)
def test_a_call_cycle_takes_few_round_trips_to_redis(env):
    """Start, answer and end (each on the other instance) make 2 round trips each: the reads
    of a transition pipelined with their WATCH, the writes in one MULTI/EXEC."""
    one, two = env.instances
    a, b = env.user("a"), env.user("b")
    # The instances' timers commit a look at the deadlines a few times a second: that rate, idle.
    r0, t0 = transaction_round_trips(env), time.monotonic()
    time.sleep(2.0)
    idle_rate = (transaction_round_trips(env) - r0) / (time.monotonic() - t0)
    cycles = 30
    r0, t0 = transaction_round_trips(env), time.monotonic()
    for i in range(cycles):
        r = post((one, two)[i % 2], "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
        eq(r.status, 200, "start")
        eq(post((two, one)[i % 2], "/calls/answer", {"callId": r.json["id"], "answer": "ACCEPT"}).status,
           200, "answer")
        eq(post((one, two)[i % 2], "/calls/end", {"callId": r.json["id"], "userId": a.user_id}).status,
           200, "end")
    elapsed = time.monotonic() - t0
    trips = transaction_round_trips(env) - r0
    per_cycle = (trips - idle_rate * elapsed) / cycles
    rung = [e for e in events_of(b, timeout=1.0)[0] if e.get("type") == "INCOMING_CALL"]
    eq(len(rung), cycles, "INCOMING_CALL events at the receiver")
    print("    %d call cycles: %d round trips of transitions (WATCH, EXEC) in %.2f s, %.1f a second "
          "while idle: %.1f per cycle" % (cycles, trips, elapsed, idle_rate, per_cycle))
    check(trips >= 3 * cycles, "each transition went to Redis (%d round trips)" % trips)
    check(per_cycle <= 7, "%.1f round trips per call cycle, more than 2 + 2 + 2 (and one spare)" % per_cycle)


@h.options(redis=True, instances=2, service_env=NO_LIMIT)
def test_reads_while_redis_stalls_answer_503_and_hold_up_no_presence_read(env):
    """Redis stops answering (SIGSTOP: connections stay open, nothing comes back). A read of a
    call waits for it on a handle of its own, outside the instance's lock, and answers 503
    STORE_UNAVAILABLE, not 404: the call is not known to be gone. Meanwhile GET /users, which
    needs only the instance's presence, answers at once."""
    one, _ = env.instances
    a, b = env.user("a"), env.user("b")
    call_id = env.start_call(a, b)["id"]
    eq(h.http_request(one.port, "GET", "/calls/" + call_id).status, 200, "the call, Redis answering")
    reads = [("GET", "/calls/" + call_id), ("GET", "/users/%s/call" % a.user_id),
             ("GET", "/calls?userId=%s" % a.user_id)]
    done = {}

    def read(i, method, path):
        r = h.http_request(one.port, method, path, timeout=15)
        done[i] = (r.status, r.json.get("error") if isinstance(r.json, dict) else None, time.monotonic())

    env.redis.proc.send_signal(signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=read, args=(i,) + rd) for i, rd in enumerate(reads)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # the reads are waiting for Redis (up to 2 s)
        r = h.http_request(one.port, "GET", "/users")
        users_at = time.monotonic()
        for t in threads:
            t.join(15)
    finally:
        env.redis.proc.send_signal(signal.SIGCONT)
    eq(r.status, 200, "GET /users while Redis stalls")
    check(a.user_id in [u["id"] for u in r.json], "GET /users lists the online caller")
    eq(sorted(done), list(range(len(reads))), "reads answered")
    print("    Redis stalled: GET /users answered %.2f s before the first read of Redis came back; "
          "the reads: %s" % (min(at for _, _, at in done.values()) - users_at,
                             ", ".join("%d %s" % (st, err) for st, err, _ in done.values())))
    check(all(users_at < at for _, _, at in done.values()), "GET /users answered while the reads waited")
    eq([(st, err) for st, err, _ in (done[i] for i in range(len(reads)))],
       [(503, "STORE_UNAVAILABLE")] * len(reads), "the reads while Redis stalls")
    h.wait_until(lambda: h.http_request(one.port, "GET", "/calls/" + call_id).status == 200, 10,
                 what="the call read again once Redis answers")


@h.options(redis=True, instances=2, service_env=NO_LIMIT)
def test_two_instances_starting_calls_to_one_receiver_at_once_ring_it_once_each_time(env):
    one, two = env.instances
    rounds = int(os.environ.get("RACE_ROUNDS", "1000"))
    x, y, z = env.user("x"), env.user("y"), env.user("z")
    won = refused = both = neither = 0
    t_end = time.monotonic() + 240  # bounded in time as well as in count
    done = 0
    for i in range(rounds):
        if time.monotonic() > t_end:
            break
        results = [None, None]
        go = threading.Barrier(2)

        def start(k, service, caller):
            go.wait()
            results[k] = post(service, "/calls/start", {"callerId": caller, "receiverId": z.user_id})

        threads = [threading.Thread(target=start, args=(0, one, x.user_id)),
                   threading.Thread(target=start, args=(1, two, y.user_id))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        ok = [r for r in results if r is not None and r.status == 200]
        busy = [r for r in results if r is not None and r.status == 400 and
                (r.json or {}).get("error") == "RECEIVER_BUSY"]
        won += len(ok)
        refused += len(busy)
        both += len(ok) == 2
        neither += len(ok) == 0
        for r in ok:
            caller = r.json["caller"]["id"]
            end = post(two if i % 2 else one, "/calls/end", {"callId": r.json["id"], "userId": caller})
            eq(end.status, 200, "end of the winning call")
        done += 1
    incoming, dups = events_of(z, timeout=1.0)
    rung = [e for e in incoming if e.get("type") == "INCOMING_CALL"]
    print("    race: %d rounds, %d started, %d refused RECEIVER_BUSY, %d rounds both rang, "
          "%d rounds none rang; receiver saw %d INCOMING_CALL (%d duplicates dropped)" % (
              done, won, refused, both, neither, len(rung), dups))
    check(done >= min(rounds, 100), "only %d rounds ran within the time bound" % done)
    eq((both, neither), (0, 0), "rounds where both or none of the two starts rang")
    eq((won, refused), (done, done), "one start and one RECEIVER_BUSY per round")
    eq(len(rung), done, "INCOMING_CALL events at the receiver")


@h.options(redis=True, instances=2, service_env={"START_RATE_PER_MIN": "3"})
def test_the_start_rate_limit_counts_the_starts_of_every_instance(env):
    one, two = env.instances
    a, b = env.user("a"), env.user("b")
    allowed = 0
    for i in range(3):
        s = (one, two)[i % 2]
        r = post(s, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
        eq(r.status, 200, "start %d (of 3 allowed) on instance %d" % (i + 1, i % 2 + 1))
        allowed += 1
        eq(post(s, "/calls/end", {"callId": r.json["id"], "userId": a.user_id}).status, 200, "end")
    refused = 0
    for s in (two, one):
        r = post(s, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
        expect_error(r, 429, "RATE_LIMITED")
        check(int(r.headers.get("retry-after", "0")) >= 1, "Retry-After: %r" % r.headers)
        refused += 1
    print("    rate limit 3/min over two instances: %d allowed, %d refused" % (allowed, refused))


@h.options(redis=True, instances=2, service_env=dict(NO_LIMIT, RING_TIMEOUT_S="1"))
def test_a_ring_timeout_is_missed_once_although_both_instances_watch_it(env):
    pairs = [(env.user("a"), env.user("b")) for _ in range(5)]
    calls = [env.start_call(a, b)["id"] for a, b in pairs]
    for (a, b), call_id in zip(pairs, calls):
        b.expect_event("INCOMING_CALL", call_id=call_id)
    missed = 0
    for (a, b), call_id in zip(pairs, calls):
        for c in (a, b):
            ev = c.expect_event("END_CALL", timeout=5, call_id=call_id)
            eq(ev["call"]["status"], "MISSED", "status")
            missed += 1
    time.sleep(1.0)  # both instances' timers have looked at the deadlines again meanwhile
    extra = 0
    for a, b in pairs:
        for c in (a, b):
            evs, _ = events_of(c, timeout=0.1)
            extra += len(evs)
    print("    ring timeouts: %d END_CALL MISSED received, %d further events" % (missed, extra))
    eq(extra, 0, "events after the one END_CALL")


@h.options(redis=True, instances=3, service_env=dict(NO_LIMIT, RING_TIMEOUT_S="4"))
def test_calls_of_an_instance_killed_with_sigkill_go_on_through_the_others(env):
    one, two, three = env.instances
    ringing = [(env.user("r"), env.user("s")) for _ in range(10)]
    talking = [(env.user("t"), env.user("u")) for _ in range(10)]
    rung, live = [], []
    for a, b in ringing:
        r = post(one, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
        eq(r.status, 200, "start on instance 1")
        rung.append(r.json["id"])
    for a, b in talking:
        r = post(one, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
        eq(r.status, 200, "start on instance 1")
        call_id = r.json["id"]
        r = post(two, "/calls/answer", {"callId": call_id, "answer": "ACCEPT"})
        eq(r.status, 200, "answer on instance 2")
        live.append(call_id)
    t_kill = time.monotonic()
    one.proc.send_signal(signal.SIGKILL)
    one.proc.wait(10)
    one.proc = None
    # Every ringing call gets exactly one MISSED, from another instance.
    stranded = dups = 0
    for (a, b), call_id in zip(ringing, rung):
        for c, expected in ((a, ["END_CALL"]), (b, ["INCOMING_CALL", "END_CALL"])):
            evs, d = collect(c, len(expected), timeout=15)
            dups += d
            got = [(e["type"], e["call"]["status"]) for e in evs if e["call"]["id"] == call_id]
            stranded += ("END_CALL", "MISSED") not in got
            eq([t for t, _ in got], expected, "events of %s for the ringing %s" % (c.user_id, call_id))
    waited = time.monotonic() - t_kill
    ended = 0
    for (a, b), call_id in zip(talking, live):
        r = post(three, "/calls/end", {"callId": call_id, "userId": a.user_id})
        eq((r.status, r.json.get("status")), (200, "ENDED"), "end on instance 3")
        ended += 1
    seq_ok = 0
    for (a, b), call_id in zip(talking, live):
        for c, expected in ((a, ["ACCEPT_CALL", "END_CALL"]),
                            (b, ["INCOMING_CALL", "ACCEPT_CALL", "END_CALL"])):
            evs, d = collect(c, len(expected), timeout=5)
            dups += d
            got = [e["type"] for e in evs if e["call"]["id"] == call_id]
            eq(got, expected, "events of %s for %s" % (c.user_id, call_id))
            seq_ok += 1
    busy = sum(h.http_request(three.port, "GET", "/users/%s/call" % c.user_id).status != 404
               for pair in ringing + talking for c in pair)
    live_left = env.redis.command("SCARD", "callsignal:live")
    left = outbox_left(env)
    check(waited < 15, "the MISSED events came %.1fs after the kill" % waited)
    print("    SIGKILL of instance 1: %d ringing calls MISSED within %.1fs (%d stranded), %d calls "
          "in progress ended through instance 3, %d parties saw exactly their sequence (%d "
          "duplicates dropped), %d busy lines, %d live calls and %d outbox entries left" % (
              len(rung), waited, stranded, ended, seq_ok, dups, busy, live_left, left))
    eq((stranded, busy, live_left, left), (0, 0, 0, 0),
       "stranded calls, busy lines, live calls, outbox entries left")


def outbox_left(env, timeout=10.0):
    """Entries left in Redis's outbox once the broker has acknowledged everything (polled: the
    leader removes them within milliseconds of the PUBACK)."""
    deadline = time.monotonic() + timeout
    while True:
        n = env.redis.command("XLEN", "callsignal:outbox")
        if n == 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


@h.options(redis=True, instances=2, service_env=dict(NO_LIMIT, RING_TIMEOUT_S="60"))
def test_events_of_an_instance_killed_before_the_broker_had_them_still_arrive(env):
    """Instance 1 reaches the broker through a relay that stops passing its bytes on: its
    transitions succeed, but nothing it sends reaches the broker. Then it is killed. The events
    of its transitions are in Redis's outbox, and the other instance publishes them."""
    one, two = env.instances
    relay = h.Relay(env.broker.port)
    try:
        one.stop()
        one.env["MQTT_URL"] = relay.url
        one.start(wait="ready")
        pairs = [(env.user("a"), env.user("b")) for _ in range(10)]
        # A call through instance 1 while the relay passes: the legitimate path works.
        a0, b0 = pairs[0]
        r = post(one, "/calls/start", {"callerId": a0.user_id, "receiverId": b0.user_id})
        eq(r.status, 200, "start on instance 1")
        b0.expect_event("INCOMING_CALL", call_id=r.json["id"])
        eq(post(two, "/calls/end", {"callId": r.json["id"], "userId": a0.user_id}).status, 200,
           "end on instance 2")
        a0.expect_event("END_CALL", call_id=r.json["id"])
        b0.expect_event("END_CALL", call_id=r.json["id"])
        relay.hold()
        calls = []
        for a, b in pairs:
            r = post(one, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
            eq(r.status, 200, "start on instance 1 (relay holding)")
            call_id = r.json["id"]
            eq(post(one, "/calls/answer", {"callId": call_id, "answer": "ACCEPT"}).status, 200,
               "answer on instance 1 (relay holding)")
            calls.append(call_id)
        t_kill = time.monotonic()
        one.proc.send_signal(signal.SIGKILL)
        one.proc.wait(10)
        one.proc = None
        relay.cut()
        lost = dups = seq_ok = 0
        for (a, b), call_id in zip(pairs, calls):
            for c, expected in ((a, ["ACCEPT_CALL"]), (b, ["INCOMING_CALL", "ACCEPT_CALL"])):
                evs, d = collect(c, len(expected), timeout=15)
                dups += d
                got = [e["type"] for e in evs if e["call"]["id"] == call_id]
                lost += len([t for t in expected if t not in got])
                seq_ok += got == expected
        waited = time.monotonic() - t_kill
        topics = {t: json.loads(p) for t, p in env.retained_call_topics().items()}
        shown = sum(topics.get("users/%s/call" % b.user_id, {}).get("id") == call_id and
                    topics["users/%s/call" % b.user_id].get("status") == "ONGOING"
                    for (a, b), call_id in zip(pairs, calls))
        for (a, b), call_id in zip(pairs, calls):
            eq(post(two, "/calls/end", {"callId": call_id, "userId": a.user_id}).status, 200,
               "end on instance 2")
            a.expect_event("END_CALL", call_id=call_id)
        left = outbox_left(env)
        print("    SIGKILL of instance 1 with its broker link holding: %d calls started and answered "
              "there; %d events lost, %d duplicates dropped, %d parties saw exactly their sequence "
              "(within %.1fs), %d receivers' call topics ONGOING, %d outbox entries left" % (
                  len(calls), lost, dups, seq_ok, waited, shown, left))
        eq((lost, seq_ok, shown, left), (0, 2 * len(calls), len(calls), 0),
           "lost events, parties with their sequence, call topics, outbox entries left")
    finally:
        relay.close()


def scrape_gauge(service, name):
    r = h.http_request(service.port, "GET", "/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@h.options(redis=True, instances=2, service_env=dict(NO_LIMIT, RING_TIMEOUT_S="60"))
def test_a_leader_cut_off_sends_nothing_stale_when_it_comes_back(env):
    """The outbox's leader loses Redis and the broker at once (relays that swallow what it
    sends) while its broker connection holds a call's INCOMING_CALL and retained topics. The
    other instance takes the lease, sends them, and the call ends. When the cut-off instance
    comes back, what its bus held must not reach the broker after the newer state."""
    one, two = env.instances
    to_broker, to_redis = h.Relay(env.broker.port), h.Relay(env.redis.port)
    try:
        two.stop()
        one.stop()
        one.env.update({"MQTT_URL": to_broker.url, "REDIS_URL": "redis://127.0.0.1:%d" % to_redis.port})
        one.start(wait="ready")
        h.wait_until(lambda: scrape_gauge(one, "callsignal_events_publisher") == 1.0, 10,
                     what="instance 1 leading the outbox")
        two.start(wait="ready")
        a, b, c, d = (env.user(p) for p in "abcd")
        r = post(two, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
        eq(r.status, 200, "a call through instance 2, published by instance 1")
        b.expect_event("INCOMING_CALL", call_id=r.json["id"])
        to_broker.hold()
        r = post(two, "/calls/start", {"callerId": c.user_id, "receiverId": d.user_id})
        eq(r.status, 200, "start on instance 2 while instance 1's broker link swallows")
        call_id = r.json["id"]
        time.sleep(0.5)  # instance 1 has read it from Redis and handed it to its held link
        to_redis.hold()
        t_cut = time.monotonic()
        d.expect_event("INCOMING_CALL", call_id=call_id, timeout=15)  # instance 2 leads now
        taken = time.monotonic() - t_cut
        eq(post(two, "/calls/end", {"callId": call_id, "userId": c.user_id}).status, 200, "end")
        d.expect_event("END_CALL", call_id=call_id)
        h.wait_until(lambda: "no longer publishes the shared outbox" in one.stderr(), 15,
                     what="instance 1 no longer leading (its log)")
        to_broker.release()
        to_redis.release()
        to_broker.cut()  # instance 1 reconnects to both and sends what its bus still holds
        to_redis.cut()
        h.wait_until(lambda: h.http_request(one.port, "GET", "/ready").status == 200, 20,
                     what="instance 1 back")
        time.sleep(1.5)
        topics = env.retained_call_topics()
        stale = sorted(t for t in topics if t in ("users/%s/call" % c.user_id, "users/%s/call" % d.user_id))
        d.expect_no_event(1.0)
        print("    leader cut off from Redis and the broker: instance 2 sent the held INCOMING_CALL "
              "%.1fs later; after instance 1 came back, %d stale call topics, repeats dropped %d" % (
                  taken, len(stale), d.duplicates))
        eq(stale, [], "call topics of the ended call shown again")
    finally:
        to_broker.close()
        to_redis.close()


@h.options(redis=True, instances=2, redis_opts={"appendonly": True},
           service_env=dict(NO_LIMIT, RING_TIMEOUT_S="3"))
def test_calls_outlive_a_redis_killed_and_restarted_from_its_append_only_file(env):
    one, two = env.instances
    ringing = [(env.user("r"), env.user("s")) for _ in range(5)]
    talking = [(env.user("t"), env.user("u")) for _ in range(5)]
    rung = [env.start_call(a, b)["id"] for a, b in ringing]
    live = []
    for a, b in talking:
        call_id = env.start_call(a, b)["id"]
        eq(env.answer(call_id, "ACCEPT").status, 200, "accept")
        live.append(call_id)
    env.redis.stop(signal.SIGKILL)
    # Meanwhile call control answers 503 and changes nothing.
    a, b = talking[0]
    expect_error(post(one, "/calls/end", {"callId": live[0], "userId": a.user_id}), 503,
                 "STORE_UNAVAILABLE")
    env.redis.start()
    missed = 0
    for (a, b), call_id in zip(ringing, rung):
        for c, expected in ((a, ["END_CALL"]), (b, ["INCOMING_CALL", "END_CALL"])):
            evs, _ = collect(c, len(expected), timeout=15)
            got = [(e["type"], e["call"]["status"]) for e in evs if e["call"]["id"] == call_id]
            eq([t for t, _ in got], expected, "events of %s for the ringing %s" % (c.user_id, call_id))
            missed += got[-1] == ("END_CALL", "MISSED")
    ended = 0
    for (a, b), call_id in zip(talking, live):
        r = post(two, "/calls/end", {"callId": call_id, "userId": b.user_id})
        eq((r.status, r.json.get("status"), r.json.get("revision")), (200, "ENDED", 3), "end after the restart")
        ended += 1
    ends = 0
    for (a, b), call_id in zip(talking, live):
        evs, _ = collect(a, 2, timeout=10)  # ACCEPT_CALL, END_CALL
        ends += ("END_CALL", call_id) in [(e["type"], e["call"]["id"]) for e in evs]
    eq(ends, len(live), "END_CALL events after the restart")
    left = env.redis.command("SCARD", "callsignal:live")
    pending = outbox_left(env)
    print("    Redis kill -9 and restart: %d of %d ringing parties got MISSED, %d calls in progress ended "
          "afterwards, %d live calls and %d outbox entries left" % (missed, 2 * len(rung), ended, left,
                                                                   pending))
    eq((missed, left, pending), (2 * len(rung), 0, 0), "MISSED events, live calls, outbox entries left")


@h.options(redis=True, instances=2, service_env=dict(NO_LIMIT, CALL_HISTORY_MAX="3"))
def test_the_history_is_shared_capped_and_outlives_every_instance(env):
    one, two = env.instances
    a, b = env.user("a"), env.user("b")
    done = []
    for i in range(4):  # started on one instance, finished on the other
        start, finish = (one, two) if i % 2 == 0 else (two, one)
        r = post(start, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})
        eq(r.status, 200, "start %d" % i)
        call_id = r.json["id"]
        if i % 2 == 0:
            r = post(finish, "/calls/answer", {"callId": call_id, "answer": "ACCEPT", "deviceId": "phone"})
            eq(r.status, 200, "accept %d" % i)
            r = post(finish, "/calls/end", {"callId": call_id, "userId": b.user_id})
        else:
            r = post(finish, "/calls/answer", {"callId": call_id, "answer": "DECLINE"})
        eq(r.status, 200, "finish %d" % i)
        done.append((call_id, r.json["status"], r.json.get("endReason")))
    want = done[::-1][:3]  # newest first, CALL_HISTORY_MAX=3

    def history(service, user_id):
        r = h.http_request(service.port, "GET", "/calls?userId=" + user_id)
        eq(r.status, 200, "GET /calls on port %d" % service.port)
        return [(c["id"], c["status"], c.get("endReason")) for c in r.json]

    eq(history(one, a.user_id), want, "a's history on instance 1")
    eq(history(two, b.user_id), want, "b's history on instance 2")
    eq(want[0][1:], ("DECLINED", "DECLINED"), "the newest: declined")
    eq(want[1][1:], ("ENDED", "HANGUP"), "the one before: hung up")
    r = h.http_request(one.port, "GET", "/calls?userId=%s&before=%s" % (a.user_id, want[0][0]))
    eq([c["id"] for c in r.json], [c for c, _, _ in want[1:]], "paging with before")
    answered = [c for c in h.http_request(two.port, "GET", "/calls?userId=" + a.user_id).json
                if c["status"] == "ENDED"]
    eq([(c.get("answeredBy") or {}).get("deviceId") for c in answered], ["phone"],
       "the device that answered, kept in the history")
    for s in env.instances:
        s.stop()
    for s in env.instances:
        s.start()
    eq(history(two, a.user_id), want, "a's history after both instances restarted")
    print("    history of %d calls (cap 3) read on both instances, and after restarting both: %d kept"
          % (len(done), len(history(one, b.user_id))))


if __name__ == "__main__":
    h.main(shared=False)

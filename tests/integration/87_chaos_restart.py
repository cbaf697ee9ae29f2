#!/usr/bin/python3
"""Chaos: 16 pairs cycle calls (start, answer, talk briefly, end) while the service is killed with
kill -9 three times and restarted at once. Every call that was live at a kill must end with exactly
one END_CALL (one distinct event id) to each party, or complete normally afterwards; nothing may be
left stranded (no busy line, no users/{id}/call topic set); no event of a transition made while the
service was up may be lost. Prints the counts: cycles, calls live at a kill, lost, duplicated,
redelivered with the same id (dropped by readers), stranded, starts that never reached the broker.

A pair that does not see the event it expects asks GET /calls/{id}, as a real app woken by its call
topic would, and acts on the answer (repeats the end of a call that is still live)."""

import os
import queue
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

PAIRS = 16
KILLS = 3
RUN_S = 14.0          # the whole run is bounded in time ...
MAX_CYCLES = 300      # ... and in cycles per pair
EVENT_WAIT_S = 3.0    # generous: an event normally arrives within milliseconds
KILL_AT_S = (3.0, 6.5, 10.0)


class Chaos:
    def __init__(self, env):
        self.env = env
        self.lock = threading.Lock()
        self.windows = []  # (killed at, ready again at), monotonic
        self.down = threading.Event()
        self.stop = threading.Event()
        self.lost = []        # expected events not received, outside any kill window
        self.vanished = []    # starts answered 200 whose writes never reached the broker
        self.calls = {}       # call id -> (caller id, receiver id)
        self.live_at_kill = set()
        self.live = {}        # pair index -> call id currently live as the pair sees it
        self.cycles = 0

    def in_window(self, t0, t1):
        with self.lock:
            windows = list(self.windows)
        if self.down.is_set():
            return True
        return any(k - 0.05 <= t1 and t0 <= r + 0.05 for k, r in windows)

    def http(self, method, path, body=None):
        """Retries while the service is down or restoring (connection refused, 503)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                r = h.http_request(self.env.service.port, method, path, json_body=body, timeout=5.0)
                if r.status != 503:
                    return r
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("%s %s: no answer for 30 s" % (method, path))


class Party:
    """One device's events, logged by call id as they arrive."""

    def __init__(self, client):
        self.c = client
        self.log = {}  # call id -> [(type, event id)]

    def drain(self, timeout=0.0):
        try:
            ev = self.c.events.get(timeout=timeout)
        except queue.Empty:
            return None
        cid = ev.get("call", {}).get("id")
        self.log.setdefault(cid, []).append((ev.get("type"), ev.get("id")))
        return ev

    def wait(self, call_id, type_, timeout=EVENT_WAIT_S):
        if any(t == type_ for t, _ in self.log.get(call_id, [])):
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.drain(timeout=max(0.0, deadline - time.monotonic()))
            if ev and ev.get("type") == type_ and ev.get("call", {}).get("id") == call_id:
                return True
        return False


def expect(chaos, party, call_id, type_, t0):
    """Waits for the event; a miss outside every kill window counts as lost."""
    if party.wait(call_id, type_):
        return True
    if not chaos.in_window(t0, time.monotonic()):
        chaos.lost.append((party.c.user_id, call_id, type_))
    return False


def finish(chaos, a, b, call_id, pair):
    """Ends the call and sees END_CALL at both; repeats the end while the service says it is live."""
    for _attempt in range(5):
        t0 = time.monotonic()
        r = chaos.http("POST", "/calls/end", {"callId": call_id, "userId": a.c.user_id})
        if r.status == 400 and r.json.get("error") == "CALL_NOT_FOUND":
            break
        got_a = expect(chaos, a, call_id, "END_CALL", t0)
        got_b = expect(chaos, b, call_id, "END_CALL", t0)
        if got_a and got_b:
            break
        state = chaos.http("GET", "/calls/" + call_id)
        if state.status != 200 or state.json["status"] not in ("DIALLING", "ONGOING"):
            break
    with chaos.lock:
        chaos.live.pop(pair, None)


def cycle(chaos, pair, a, b):
    r = chaos.http("POST", "/calls/start", {"callerId": a.c.user_id, "receiverId": b.c.user_id})
    if r.status != 200:
        # A call of this pair outlived a kill unseen: end it first.
        for u in (a, b):
            left = chaos.http("GET", "/users/%s/call" % u.c.user_id)
            if left.status == 200:
                finish(chaos, a, b, left.json["id"], pair)
        return
    call_id = r.json["id"]
    t0 = time.monotonic()
    with chaos.lock:
        chaos.calls[call_id] = (a.c.user_id, b.c.user_id)
        chaos.live[pair] = call_id
    if not expect(chaos, b, call_id, "INCOMING_CALL", t0):
        state = chaos.http("GET", "/calls/" + call_id)
        if state.status == 404:
            with chaos.lock:
                chaos.vanished.append(call_id)
                chaos.live.pop(pair, None)
            return
    t0 = time.monotonic()
    r = chaos.http("POST", "/calls/answer", {"callId": call_id, "answer": "ACCEPT"})
    if r.status == 200:
        expect(chaos, a, call_id, "ACCEPT_CALL", t0)
        expect(chaos, b, call_id, "ACCEPT_CALL", t0)
        time.sleep(random.uniform(0.0, 0.15))
    finish(chaos, a, b, call_id, pair)
    with chaos.lock:
        chaos.cycles += 1


def pair_loop(chaos, pair, a, b, errors):
    try:
        n = 0
        while not chaos.stop.is_set() and n < MAX_CYCLES:
            cycle(chaos, pair, a, b)
            n += 1
    except BaseException as e:  # reported by the main thread
        errors.append("pair %d: %r" % (pair, e))


@h.options(service_env={"RING_TIMEOUT_S": "20", "OFFLINE_GRACE_S": "20", "START_RATE_PER_MIN": "0"})
def test_sixteen_pairs_through_three_kill_9s_lose_and_strand_nothing(env):
    chaos = Chaos(env)
    pairs = []
    for i in range(PAIRS):
        pairs.append((Party(env.user("ca%d-" % i)), Party(env.user("cb%d-" % i))))
    errors = []
    threads = [threading.Thread(target=pair_loop, args=(chaos, i, a, b, errors), daemon=True)
               for i, (a, b) in enumerate(pairs)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    for at in KILL_AT_S[:KILLS]:
        time.sleep(max(0.0, t_start + at - time.monotonic()))
        chaos.down.set()
        killed = time.monotonic()
        with chaos.lock:
            chaos.live_at_kill.update(chaos.live.values())
        env.service.stop(sig=signal.SIGKILL, expect_code=-signal.SIGKILL)
        env.service.start()  # launched at once; start() returns when /ready is 200 (rebuilt)
        ready = time.monotonic()
        with chaos.lock:
            chaos.windows.append((killed, ready))
        chaos.down.clear()
        print("    kill -9 at %.1f s, back and rebuilt %.0f ms later" % (killed - t_start,
                                                                          (ready - killed) * 1000))
    time.sleep(max(0.0, t_start + RUN_S - time.monotonic()))
    chaos.stop.set()
    for t in threads:
        t.join(60)
    check(not errors, "pair loops failed: %s" % errors[:3])
    check(not any(t.is_alive() for t in threads), "a pair loop did not finish")
    time.sleep(0.5)
    for a, b in pairs:
        while a.drain() or b.drain():
            pass

    # Every call that reached the broker ended with exactly one END_CALL id per party.
    lost_end, duplicated, redelivered = [], [], 0
    for call_id, (ca, cb) in chaos.calls.items():
        if call_id in chaos.vanished:
            continue
        for party in [p for pair in pairs for p in pair if p.c.user_id in (ca, cb)]:
            ends = [eid for t, eid in party.log.get(call_id, []) if t == "END_CALL"]
            if not ends:
                lost_end.append((party.c.user_id, call_id))
            elif len(set(ends)) > 1:
                duplicated.append((party.c.user_id, call_id, ends))
            redelivered += len(ends) - len(set(ends))
    stranded = []
    for a, b in pairs:
        for p in (a, b):
            if env.get("/users/%s/call" % p.c.user_id).status != 404:
                stranded.append(p.c.user_id)
    topics_left = env.retained_call_topics()
    live_at_kill = len(chaos.live_at_kill)
    print("    cycles %d, calls %d, live at a kill %d; lost %d (END_CALL missing %d), duplicated %d, "
          "redelivered with the same id %d, stranded %d (busy lines %d, call topics %d), "
          "starts that never reached the broker %d"
          % (chaos.cycles, len(chaos.calls), live_at_kill, len(chaos.lost) + len(lost_end), len(lost_end),
             len(duplicated), redelivered, len(stranded) + len(topics_left), len(stranded),
             len(topics_left), len(chaos.vanished)))
    check(live_at_kill > 0, "no call was live at a kill: the test proved nothing")
    check(chaos.cycles >= PAIRS, "only %d cycles completed" % chaos.cycles)
    eq(chaos.lost[:5], [], "events lost while the service was up (first 5)")
    eq(lost_end[:5], [], "parties of a call that never got its END_CALL (first 5)")
    eq(duplicated[:5], [], "parties that got two different END_CALL ids for one call (first 5)")
    eq(stranded, [], "users left busy")
    eq(topics_left, {}, "users/{id}/call topics left set")


if __name__ == "__main__":
    h.main(shared=False)

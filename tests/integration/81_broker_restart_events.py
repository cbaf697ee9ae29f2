#!/usr/bin/python3
"""Events survive a broker restart: under 8 pairs of call load, every event whose REST request
answered 200 reaches its party once the broker is back, over (a) a quick restart and (b) a 10 s
outage. Prints lost, duplicated, stranded (a started call that a party never saw end) and out of
order (a party got a call's events first in another order than they were caused) counts; requires
0 lost, 0 stranded, 0 out of order. Duplicates are allowed (QoS 1 is at least once).

The parties' own losses are kept out of the count: each party is a persistent session
(clean_session=False, QoS 1) on a broker with persistence on, so the broker keeps their
subscriptions and the events queued for them across its restart, and they reconnect as soon as it
is back, before the service (whose first retry is 1 s after the loss). They do not retry while it is
away: a connect to a loopback port nobody listens on can pick that very port as its own and connect
to itself, and the broker could then not listen there again.
Presence is retained without a Last Will, so it survives the restart too and no call ends by the
offline grace. Each test has its own broker and service."""

import collections
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

PAIRS = 8
LOAD_BEFORE_S = 2.0  # cycles before the broker goes away
LOAD_AFTER_S = 2.0  # cycles after the service is back
RECOVERY_S = 25  # the service retries at +1, +3, +7, +15 s after the loss
SETTLE_S = 20  # for the last events to arrive
REQUEST_DEADLINE_S = 40  # a request still answering 503 this long after the load stopped fails
SERVICE_ENV = {"START_RATE_PER_MIN": "0", "RING_TIMEOUT_S": "300", "OFFLINE_GRACE_S": "300"}


class Party:
    """One user on a persistent session: subscribed to its events topic at QoS 1, presence
    retained (no Will), both renewed on every (re)connect. Counts the events per (call id, type)."""

    def __init__(self, broker, user_id):
        self.user_id = user_id
        self.received = collections.Counter()
        self.first = {}  # (call id, type) -> position of its first arrival
        self.lock = threading.Lock()
        self.connects = 0
        self.ready = threading.Event()
        c = mqtt.Client(client_id="party-" + user_id, clean_session=False)
        c.reconnect_delay_set(min_delay=0.5, max_delay=0.5)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda _c, _u, _mid, _granted: self.ready.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", broker.port, keepalive=30)
        c.loop_start()
        self.mqtt = c
        check(self.ready.wait(5), "%s: not subscribed within 5 s" % user_id)

    def _on_connect(self, c, _u, _flags, rc):
        if rc != 0:
            return
        self.connects += 1
        c.subscribe("users/%s/events" % self.user_id, qos=1)
        user = {"id": self.user_id, "name": "Name of " + self.user_id, "location": ""}
        c.publish("users/%s/presence/dev" % self.user_id, json.dumps(user), qos=1, retain=True)

    def _on_message(self, _c, _u, msg):
        try:
            ev = json.loads(msg.payload.decode("utf-8"))
            key = (ev["call"]["id"], ev["type"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            key = ("<unparseable>", msg.payload[:80])
        with self.lock:
            self.received[key] += 1
            self.first.setdefault(key, len(self.first))

    def count(self, call_id, type_):
        with self.lock:
            return self.received[(call_id, type_)]

    def out_of_order(self, call_id):
        """1 when this call's events first arrived in another order than they were caused."""
        with self.lock:
            seen = [self.first[(call_id, ty)] for ty in ("INCOMING_CALL", "ACCEPT_CALL", "END_CALL")
                    if (call_id, ty) in self.first]
        return int(seen != sorted(seen))

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.received)

    def stop_reconnecting(self):
        """Asks the network thread to end (see pause); does not wait."""
        self.mqtt._thread_terminate = True  # what loop_stop sets before it joins the thread

    def pause(self):
        """Ends the network thread, and so its reconnect attempts."""
        self.mqtt.loop_stop()

    def resume(self):
        # The broker accepts on its port already; a refused connect here is a listener not yet
        # back (a restart that had to retry its bind), so try again for a few seconds.
        deadline = time.monotonic() + 5
        while True:
            try:
                self.mqtt.reconnect()
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.mqtt.loop_start()

    def close(self):
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


class Ledger:
    """What the REST answers promise: (party, call id, event type) for every request that answered
    200, the calls started, and the answers seen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.expected = set()
        self.calls = []  # (call id, caller Party, receiver Party)
        self.status = collections.Counter()  # (route, status)

    def promise(self, party, call_id, type_):
        with self.lock:
            self.expected.add((party, call_id, type_))

    def started(self, call_id, caller, receiver):
        with self.lock:
            self.calls.append((call_id, caller, receiver))

    def answered(self, route, status):
        with self.lock:
            self.status[(route, status)] += 1


def request(env, route, body, give_up, ledger, retry=(503,)):
    """POST until the answer is not one of `retry` (the broker is away) or give_up() says so.
    Returns (status, json, lost_answer): status None when no attempt got an answer; lost_answer
    when an attempt got none (the retry may then see the effect of that attempt)."""
    lost_answer = False
    while True:
        try:
            r = env.post(route, body, timeout=10)
            ledger.answered(route, r.status)
            if r.status not in retry or give_up():
                return r.status, r.json, lost_answer
        except OSError:
            lost_answer = True
            if give_up():
                return None, None, lost_answer
        time.sleep(0.05)


def run_pair(env, caller, receiver, stop, ledger, errors):
    """Cycles start -> answer ACCEPT -> end until `stop` is set; every call it starts it ends."""
    try:
        while not stop.is_set():
            # 404: the replay after the service's reconnect has not brought the receiver back yet
            status, call, lost = request(env, "/calls/start",
                                         {"callerId": caller.user_id, "receiverId": receiver.user_id},
                                         stop.is_set, ledger, retry=(503, 404))
            if status != 200 and stop.is_set():
                return
            check(not lost, "a start request got no answer: its call may be held without us knowing")
            check(status == 200, "start %s -> %s answered %s" % (caller.user_id, receiver.user_id, status))
            cid = call["id"]
            ledger.started(cid, caller, receiver)
            ledger.promise(receiver, cid, "INCOMING_CALL")
            deadline = time.monotonic() + REQUEST_DEADLINE_S + RECOVERY_S

            def give_up():
                return time.monotonic() > deadline
            status, _, lost = request(env, "/calls/answer", {"callId": cid, "answer": "ACCEPT"}, give_up, ledger)
            # only this thread answers and no timer fires within RING_TIMEOUT_S: a 409 after an
            # unanswered attempt means that attempt accepted the call
            check(status == 200 or (lost and status == 409), "answer %s answered %s" % (cid, status))
            ledger.promise(caller, cid, "ACCEPT_CALL")
            ledger.promise(receiver, cid, "ACCEPT_CALL")
            status, _, _ = request(env, "/calls/end", {"callId": cid, "userId": caller.user_id}, give_up, ledger)
            check(status == 200, "end %s answered %s" % (cid, status))
            ledger.promise(caller, cid, "END_CALL")
            ledger.promise(receiver, cid, "END_CALL")
    except BaseException as e:  # noqa: B902 - reported by the main thread
        errors.append("%s -> %s: %s" % (caller.user_id, receiver.user_id, e))
        stop.set()


def health(env):
    try:
        return env.get("/ready", timeout=3).status
    except OSError:
        return None


def restart_under_load(env, outage_s):
    parties = [Party(env.broker, env.uid(p)) for _ in range(PAIRS) for p in ("a", "b")]
    try:
        for p in parties:
            env.wait_online(p.user_id)
        ledger, stop, errors = Ledger(), threading.Event(), []
        threads = [threading.Thread(target=run_pair, args=(env, parties[2 * i], parties[2 * i + 1], stop,
                                                          ledger, errors), daemon=True)
                   for i in range(PAIRS)]
        for t in threads:
            t.start()
        time.sleep(LOAD_BEFORE_S)
        # the parties' subscriptions work: events promised so far have started to arrive
        h.wait_until(lambda: any(p.count(cid, "INCOMING_CALL") for cid, _, p in list(ledger.calls)), 5,
                     what="a first INCOMING_CALL")
        promised_before = len(ledger.expected)
        env.broker.stop()
        t_down = time.monotonic()
        for p in parties:
            p.stop_reconnecting()
        for p in parties:
            p.pause()
        h.wait_until(lambda: health(env) == 503, 5, interval=0.05, what="GET /ready == 503")
        time.sleep(max(0.0, outage_s - (time.monotonic() - t_down)))
        env.broker.start()
        t_up = time.monotonic()
        for p in parties:
            p.resume()
        h.wait_until(lambda: health(env) == 200, RECOVERY_S, interval=0.1, what="GET /ready == 200")
        print("    broker away %.1f s; service back %.1f s after the broker" % (
            t_up - t_down, time.monotonic() - t_up))
        time.sleep(LOAD_AFTER_S)
        stop.set()
        for t in threads:
            t.join(REQUEST_DEADLINE_S + RECOVERY_S + 15)
            check(not t.is_alive(), "a pair did not stop")
        check(not errors, "pairs failed: %s" % "; ".join(errors))

        def missing():
            return [(p, cid, ty) for p, cid, ty in ledger.expected if p.count(cid, ty) == 0]

        try:
            h.wait_until(lambda: not missing(), SETTLE_S, interval=0.2, what="every promised event")
        except AssertionError:
            pass  # counted below
        lost = missing()
        received = {p: p.snapshot() for p in parties}
        duplicated = sum(n - 1 for p in parties for n in received[p].values() if n > 1)
        unexpected = sum(n for p in parties for (cid, ty), n in received[p].items()
                         if (p, cid, ty) not in ledger.expected)
        out_of_order = sum(a.out_of_order(cid) + b.out_of_order(cid) for cid, a, b in ledger.calls)
        stranded = [cid for cid, a, b in ledger.calls
                    if received[a][(cid, "END_CALL")] == 0 or received[b][(cid, "END_CALL")] == 0]
        print("    %d calls, %d events promised (%d before the broker stopped), 503 answers: %d; "
              "party reconnects: %d" % (
                  len(ledger.calls), len(ledger.expected), promised_before,
                  sum(n for (_, s), n in ledger.status.items() if s == 503),
                  sum(p.connects - 1 for p in parties)))
        print("    lost %d, duplicated %d, stranded %d, out of order %d, unexpected %d" % (
            len(lost), duplicated, len(stranded), out_of_order, unexpected))
        for p, cid, ty in sorted(lost, key=lambda x: (x[1], x[2]))[:10]:
            print("      lost: %s to %s (call %s)" % (ty, p.user_id, cid))
        # the load went on across the restart: calls started after the service was back
        check(len(ledger.expected) > promised_before, "no event promised after the restart")
        check(ledger.status[("/calls/start", 503)] + ledger.status[("/calls/answer", 503)] +
              ledger.status[("/calls/end", 503)] > 0, "no request saw the broker away")
        check(not lost, "%d events whose request answered 200 never arrived" % len(lost))
        check(not stranded, "%d calls never ended for a party" % len(stranded))
        check(out_of_order == 0, "%d parties got a call's events in another order" % out_of_order)
        check(unexpected == 0, "%d events nobody asked for" % unexpected)
    finally:
        for p in parties:
            p.close()


@h.options(broker_opts={"persistence": True}, service_env=SERVICE_ENV)
def test_no_event_lost_over_a_quick_broker_restart(env):
    restart_under_load(env, 0)


@h.options(broker_opts={"persistence": True}, service_env=SERVICE_ENV)
def test_no_event_lost_over_a_10_s_broker_outage(env):
    restart_under_load(env, 10)


if __name__ == "__main__":
    h.main(shared=False)

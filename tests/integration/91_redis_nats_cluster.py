#!/usr/bin/python3
"""No single point of failure, the two tiers together: three service instances on Redis
(STATE_ENGINE=redis), each with MQTT_URL listing the three nodes of a nats-server 2.9 cluster on
loopback (JetStream, stream_replicas 3) from a node of its own on, and devices spread over the
nodes, each refreshing its presence (the lease) and reconnecting to its node when the node closes
its connection, as an app does. Calls are started on instance 1 and answered on instance 2. Then
the node of instance 3 and of a third of the devices is killed with SIGKILL. Printed as counts:
calls completed before and after the kill (and cycles that failed while the cluster elected its
JetStream leaders again), the seconds until the dead node's devices were offline on each instance
(their Last Will died with the node; the presence lease ends them), events delivered twice and
dropped by id, busy lines and live calls left in Redis. Checked: calling works again on the
surviving nodes (the last round of every pair completes), instance 3 moves to another node and
ends calls there, the dead node's devices go offline everywhere and their retained presence is gone
from the cluster while the others' is kept, and Redis holds no busy line or live call at the end.
Also what NATS does with '.' in client ids and in topics (docs/scaling.md)."""

import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

# PRESENCE_REFRESH_S: a lease of 5 s. While JetStream elects again the leaders the dead node held
# (5 to 30 s), refreshes published on the other nodes wait too, so their devices may drop offline
# meanwhile: a start refused with 404 *_OFFLINE is retried, and counted.
REFRESH_S = 2.0
LIVE_PAIRS = 3  # caller and receiver on the two nodes that stay, one on each
DEAD_PAIRS = 1  # both on the node that dies
ROUNDS_AFTER = 3  # rounds of calls of every live pair after the kill, the last must all complete
EVENT_TIMEOUT = 20
RECOVERY_S = 75  # bound on the rounds after the kill
INSTANCE3_S = 90  # bound on instance 3's move to another node, from the kill


class Party:
    """A device on one node: refreshes its presence every REFRESH_S / 2 and reconnects (clean
    session, events subscription, presence) when its node closed the connection; drops events
    whose id it already has (delivered again after a failover)."""

    def __init__(self, nats, node, user_id):
        self.node = node
        self.client = h.Client(nats.node(node), user_id, client_id="dev-" + user_id, timeout=15)
        self.user_id = user_id
        self.seen = set()
        self.dups = 0
        self.reconnects = 0
        self.gone = threading.Event()  # its node is dead: no more refreshes or reconnects

    def keep(self, stop):
        pending = None  # (MQTTMessageInfo, monotonic) of the oldest refresh not acknowledged
        while not stop.wait(REFRESH_S / 2) and not self.gone.is_set():
            c = self.client.mqtt
            try:
                if pending and pending[0].is_published():
                    pending = None
                if c is not None and c.is_connected() and pending and time.monotonic() - pending[1] > 5:
                    # A node that dropped a PUBLISH while electing never acknowledges it, and the
                    # client's window of unacknowledged messages fills: start afresh.
                    self.client.close()
                    pending = None
                elif c is not None and c.is_connected():
                    # No wait for the PUBACK: a stalled node must not hold the next refresh.
                    info = c.publish(self.client.presence_topic, self.client._encode(self.client.payload),
                                     qos=1, retain=True)
                    pending = pending or (info, time.monotonic())
                else:
                    self.client.connect()
                    self.reconnects += 1
                    if 128 in getattr(self.client, "granted", ()):
                        # The node refused the events subscription while electing: again later.
                        self.client.close()
            except (OSError, RuntimeError, AssertionError):
                pass  # the node is busy electing: again at the next refresh

    def expect(self, type_, call_id, timeout=EVENT_TIMEOUT):
        """The next new event of call_id (events of other calls are skipped); None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ev = self.client.events.get(timeout=left)
            except queue.Empty:
                return None
            if ev.get("id") in self.seen:
                self.dups += 1
                continue
            self.seen.add(ev.get("id"))
            if ev.get("call", {}).get("id") != call_id:
                continue  # a late event of an earlier call of this pair
            eq(ev.get("type"), type_, "%s: event of call %s" % (self.user_id, call_id))
            return ev


COUNTS = {"503": 0, "offline": 0}  # requests retried: answered 503, or a start refused for a party offline


def post(service, path, body, until):
    """POST to one instance; a 503 (its broker connection or Redis not there) or a start refused
    because a party is offline (its refreshes held up by the cluster's election) is retried until
    `until` (monotonic) and counted. Returns the last Response."""
    while True:
        r = h.http_request(service.port, "POST", path, json_body=body, timeout=10)
        offline = r.status == 404 and (r.json or {}).get("error") in ("CALLER_OFFLINE", "RECEIVER_OFFLINE")
        if (r.status != 503 and not offline) or time.monotonic() > until:
            return r
        COUNTS["503" if r.status == 503 else "offline"] += 1
        time.sleep(0.5)


def cycle(env, a, b, end_on):
    """One call a -> b: started on instance 1, answered on instance 2, ended on end_on, every party
    seeing its events. True when all of it happened in time; otherwise the call is ended (so no
    busy line stays) and False."""
    one, two = env.instances[0], env.instances[1]
    until = time.monotonic() + EVENT_TIMEOUT
    r = post(one, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}, until)
    if r.status != 200:
        return False
    call_id = r.json["id"]
    ok = b.expect("INCOMING_CALL", call_id) is not None
    if ok:
        ok = post(two, "/calls/answer", {"callId": call_id, "answer": "ACCEPT"}, until).status == 200
    ok = ok and all(p.expect("ACCEPT_CALL", call_id) is not None for p in (a, b))
    r = post(end_on if ok else one, "/calls/end", {"callId": call_id, "userId": a.user_id},
             time.monotonic() + EVENT_TIMEOUT)
    check(r.status == 200, "end of call %s: %d %s" % (call_id, r.status, r.body[:200]))
    return ok and all(p.expect("END_CALL", call_id) is not None for p in (a, b))


def connected_node(service, nats):
    lines = [ln for ln in service.stderr().splitlines() if "connected to the broker at" in ln]
    return next((i for i in range(3) if lines and lines[-1].endswith(nats.url(i))), None)


def retained_presence_users(nats, node, expected, timeout=30.0):
    """The user ids whose retained presence a new subscriber on `node` gets: collected until every
    id of `expected` came, then for one more second. A subscription the node refuses (SUBACK 0x80,
    while it still elects) is tried again on a new connection until timeout."""
    deadline = time.monotonic() + timeout
    while True:
        w = h.Client(nats.node(node), "watcher", client_id="watch-%d-%d" % (node, time.monotonic_ns()),
                     presence=False, subscribe=False, will=False, timeout=15)
        try:
            w.granted = None
            w.mqtt.subscribe("users/+/presence/+", qos=1)
            h.wait_until(lambda: w.granted is not None, 15, what="SUBACK of users/+/presence/+")
            if 128 in w.granted:
                check(time.monotonic() < deadline, "node %d refuses users/+/presence/+ still" % node)
                time.sleep(1)
                continue
            got, until = set(), deadline
            while time.monotonic() < until:
                try:
                    topic, payload, retain = w.messages.get(timeout=0.1)
                except queue.Empty:
                    continue
                if retain and payload:
                    got.add(topic.split("/")[1])
                if set(expected) <= got:
                    until = min(until, time.monotonic() + 1.0)
            return got
        finally:
            w.close()


def patient_client(node, user_id, **kw):
    """A Client of a node, tried three times 15 s each: right after the cluster formed, NATS may
    be slow to answer a CONNECT while JetStream makes the session's stream (seen under load)."""
    for attempt in range(3):
        try:
            return h.Client(node, user_id, timeout=15, **kw)
        except h.HarnessError:
            if attempt == 2:
                raise
    return None


def dots_in_ids_and_topics(env, nats):
    """What docs/scaling.md says NATS 2.9 requires: a client id holding '.' connects (as jwt mode's
    "{userId}.{device}" would), but a presence topic holding it is refused and the publisher's
    connection closed, while a presence without '.' is delivered (first)."""
    node = nats.node(0)
    watcher = patient_client(node, "w", client_id="watch-dots", presence=False, subscribe=False,
                             will=False)
    dotted = patient_client(node, "bob", client_id="bob.phone", presence=False, will=False)
    plain = None
    try:
        for _ in range(10):  # a node refuses QoS 1 subscriptions (SUBACK 0x80) while JetStream is busy
            watcher.granted = None
            watcher.mqtt.subscribe("users/+/presence/+", qos=1)
            h.wait_until(lambda: watcher.granted is not None, 15, what="SUBACK of users/+/presence/+")
            if 128 not in watcher.granted:
                break
            time.sleep(1)
        check(128 not in watcher.granted, "node 0 refuses users/+/presence/+ still")
        time.sleep(0.5)
        check(dotted.mqtt.is_connected(), "a client id with '.' refused")
        closed = threading.Event()
        dotted.mqtt.on_disconnect = lambda _c, _u, _rc: closed.set()
        plain = h.Client(node, "ann", client_id="ann-phone", will=False, timeout=15)  # publishes presence
        topic, _, _ = watcher.messages.get(timeout=10)
        eq(topic, plain.presence_topic, "the presence on a topic without '.'")
        plain.clear_presence()
        eq(watcher.messages.get(timeout=10)[:2], (plain.presence_topic, b""), "its clearing")
        dotted.mqtt.publish("users/bob/presence/bob.phone", b'{"id":"bob","name":"B","location":""}', qos=1,
                            retain=True)
        check(closed.wait(10), "NATS kept the client that published to a topic with '.' connected")
        try:
            got = watcher.messages.get(timeout=1.0)
        except queue.Empty:
            got = None
        eq(got, None, "a message on a topic with '.'")
    finally:
        for c in (watcher, dotted, plain):
            if c is not None:
                c.close()


@h.options(start_service=False, start_broker=False, redis=True, instances=3)
def test_calls_go_on_across_instances_when_a_nats_node_dies(env):
    nats = h.NatsCluster(env.tmp)
    nats.start()
    nats.wait_ready()
    dots_in_ids_and_topics(env, nats)
    stop = threading.Event()
    keepers = []
    try:
        for i, s in enumerate(env.instances):
            # Ports picked again now that the nodes hold theirs and their route connections.
            s.port = h.free_port()
            s.env["PORT"] = str(s.port)
            # Instance i starts from node i; the others are its failover list.
            s.env.update({"MQTT_URL": ",".join(nats.url((i + k) % 3) for k in range(3)),
                          "PRESENCE_REFRESH_S": str(REFRESH_S), "RING_TIMEOUT_S": "90",
                          "OFFLINE_GRACE_S": "90", "START_RATE_PER_MIN": "0"})  # starts are retried
            s.start(timeout=40)
        for i, s in enumerate(env.instances):
            h.wait_until(lambda s=s, i=i: connected_node(s, nats) == i, 10,
                         what="instance %d on node %d" % (i + 1, i))
        dead = 2

        def party(prefix, node):
            p = Party(nats, node, env.uid(prefix))
            env.clients.append(p.client)
            return p

        live = [(party("a", k % 2), party("b", (k + 1) % 2)) for k in range(LIVE_PAIRS)]
        doomed = [(party("x", dead), party("y", dead)) for _ in range(DEAD_PAIRS)]
        everyone = [p for pair in live + doomed for p in pair]
        doomed_ids = [p.user_id for pair in doomed for p in pair]
        for p in everyone:
            env.wait_online(p.user_id, timeout=20)
            p.client.publish_presence()  # a first refresh, acknowledged: every device holds a lease
        for p in everyone:
            keepers.append(threading.Thread(target=p.keep, args=(stop,), daemon=True))
            keepers[-1].start()

        before = 0
        for a, b in live + doomed:
            check(cycle(env, a, b, env.instances[2]), "a call before the kill failed")
            before += 1

        t_kill = time.monotonic()
        for p in everyone:
            if p.node == dead:
                p.gone.set()
        nats.kill(dead)
        for p in everyone:
            if p.node == dead:
                p.client.drop()  # its sockets died with the node

        cleared_at = {}

        def watch_clear():
            # When the dead node's devices are gone from GET /users of instances 1 and 2.
            while len(cleared_at) < 2 and time.monotonic() - t_kill < RECOVERY_S:
                for i in (0, 1):
                    try:
                        ids = env._ids_at(env.instances[i])
                    except (OSError, AssertionError):
                        return  # the instance stopped: the test ended
                    if i not in cleared_at and not any(u in ids for u in doomed_ids):
                        cleared_at[i] = time.monotonic() - t_kill
                time.sleep(0.05)

        watcher = threading.Thread(target=watch_clear, daemon=True)
        watcher.start()

        # The pairs on the other nodes keep calling, through instances 1 and 2.
        after, failed, first_after, last_round_ok = 0, 0, None, False
        for _ in range(ROUNDS_AFTER):
            if time.monotonic() - t_kill > RECOVERY_S:
                break
            last_round_ok = True
            for a, b in live:
                if cycle(env, a, b, env.instances[0]):
                    after += 1
                    if first_after is None:
                        first_after = time.monotonic() - t_kill
                else:
                    failed += 1
                    last_round_ok = False
        while not last_round_ok and time.monotonic() - t_kill < RECOVERY_S:
            results = [cycle(env, a, b, env.instances[0]) for a, b in live]
            after += sum(results)
            failed += len(results) - sum(results)
            last_round_ok = all(results)
            if first_after is None and any(results):
                first_after = time.monotonic() - t_kill
        t_calls = time.monotonic() - t_kill
        check(last_round_ok, "calls on the surviving nodes did not recover within %d s: %d completed, "
              "%d failed after the kill" % (RECOVERY_S, after, failed))

        # Instance 3 moved to a node that lives, and ends calls there. Seen: 7 to 56 s, while the
        # surviving nodes refused its subscription (SUBACK 0x80) and its reconnects backed off.
        h.wait_until(lambda: connected_node(env.instances[2], nats) in (0, 1)
                     and h.http_request(env.instances[2].port, "GET", "/ready").status == 200,
                     max(5, INSTANCE3_S - (time.monotonic() - t_kill)), interval=0.1,
                     what="instance 3 ready on another node")
        moved = time.monotonic() - t_kill
        via_three = sum(cycle(env, a, b, env.instances[2]) for a, b in live)
        eq(via_three, LIVE_PAIRS, "calls ended through instance 3 after its failover")

        watcher.join(RECOVERY_S)
        check(len(cleared_at) == 2, "the dead node's devices still online on instance(s) %s" % [
            i + 1 for i in (0, 1) if i not in cleared_at])
        # Their last refresh came before the kill: the lease ends them by then on the instances
        # that stayed connected (10 s spare for a loaded machine).
        bound = REFRESH_S * 2.5 + 10
        check(max(cleared_at.values()) <= bound, "the dead node's devices offline only after %.1fs "
              "(lease %.1fs)" % (max(cleared_at.values()), REFRESH_S * 2.5))
        h.wait_until(lambda: not any(u in env._ids_at(env.instances[2]) for u in doomed_ids), 20,
                     what="the dead node's devices offline on instance 3")
        cleared_3 = time.monotonic() - t_kill
        # Gone from the cluster too: a new subscriber gets every live device's retained presence
        # and none of the dead node's.
        live_ids = [p.user_id for pair in live for p in pair]
        retained = retained_presence_users(nats, 0, live_ids)
        missing = [u for u in live_ids if u not in retained]
        eq(missing, [], "live devices whose retained presence a new subscriber missed (got %r)" % sorted(retained))
        eq([u for u in doomed_ids if u in retained], [], "retained presence of the dead node's devices")
        stop.set()
        for t in keepers:
            t.join(20)

        busy = env.redis.command("KEYS", "callsignal:busy:*")
        live_left = env.redis.command("SCARD", "callsignal:live")
        print("    redis + 3 nats nodes + 3 instances, node of instance 3 and of %d devices killed: "
              "%d calls completed before, %d after (first %.1fs after the kill, %d rounds of %d pairs "
              "by %.1fs; %d failed while JetStream elected again); instance 3 ready on another node "
              "after %.1fs, %d calls ended through it; dead node's devices offline on instances 1, 2, "
              "3 after %.1fs, %.1fs, %.1fs (lease %.1fs), retained presence cleared; device "
              "reconnects %d; events dropped as repeated %d; requests retried: %d on 503, %d starts "
              "with a party offline; busy lines left %d, live calls left %d; nats took client id "
              "'bob.phone' and closed it for publishing to users/bob/presence/bob.phone" % (
                  len(doomed_ids), before, after, first_after or -1, ROUNDS_AFTER, LIVE_PAIRS,
                  t_calls, failed, moved, via_three, cleared_at[0], cleared_at[1], cleared_3,
                  REFRESH_S * 2.5, sum(p.reconnects for p in everyone), sum(p.dups for p in everyone),
                  COUNTS["503"], COUNTS["offline"], len(busy), live_left))
        eq((len(busy), live_left), (0, 0), "busy lines and live calls left in Redis")
        env.close_clients()
        for s in env.instances:
            s.stop()  # exit 0 on SIGTERM, no sanitizer report
    finally:
        stop.set()
        for t in keepers:
            t.join(20)
        env.close_clients()
        for s in env.instances:
            s.stop(expect_code=None)
        nats.stop()




if __name__ == "__main__":
    h.main(shared=False)

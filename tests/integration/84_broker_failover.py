#!/usr/bin/python3
"""MQTT_URL with several brokers: the service connects to the first that answers and, when it is
lost, fails over to the next, rebuilding presence from that broker's retained messages; calls go on
there. First with two independent Mosquittos (the shipped config), then on a real broker cluster:
Debian's nats-server as three nodes on loopback (JetStream, MQTT with stream_replicas 3), one node
killed with SIGKILL: clients on the other nodes keep calling, and the presence of a client of the
dead node (whose Last Will dies with it) is cleared by the presence lease."""

import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402


@h.options(start_service=False)
def test_the_service_fails_over_to_the_next_broker_and_rebuilds_presence(env):
    other_dir = os.path.join(env.tmp, "second")
    os.makedirs(other_dir)
    second = h.Broker(other_dir)
    second.start()
    try:
        env.service.env["MQTT_URL"] = "%s, %s" % (env.broker.url, second.url)
        env.service.start()
        a = env.user("a")  # on the first broker
        h.wait_until(lambda: "connected to the broker at %s" % env.broker.url in env.service.stderr(),
                     5, what="connected to the first broker")
        b = env.uid("b")
        c = env.uid("c")
        on_second = [h.Client(second, b), h.Client(second, c)]
        env.broker.stop()
        h.wait_until(lambda: "connected to the broker at %s" % second.url in env.service.stderr(),
                     15, what="connected to the second broker")
        env.wait_online(b, timeout=10)
        env.wait_online(c)
        env.wait_offline(a.user_id)
        call = env.start_call(b, c)
        on_second[1].expect_event("INCOMING_CALL", call_id=call["id"])
        eq(env.answer(call["id"], "ACCEPT").status, 200, "accept on the second broker")
        on_second[0].expect_event("ACCEPT_CALL", call_id=call["id"])
        print("    failover: users on the second broker %s, call %s" % (
            sorted(u for u in env.user_ids() if u in (b, c)), call["id"][:8]))
        for cl in on_second:
            cl.close()
    finally:
        second.stop()


@h.options(start_service=False)
def test_on_a_nats_cluster_calls_go_on_when_a_node_dies_and_its_clients_are_cleared(env):
    nats = h.NatsCluster(env.tmp)
    nats.start()
    try:
        # A start-up retry: the JetStream cluster elects its leaders after the ports open.
        env.service.env.update({"MQTT_URL": ",".join(nats.url(i) for i in range(3)),
                                "PRESENCE_REFRESH_S": "0.4", "RING_TIMEOUT_S": "90",
                                "OFFLINE_GRACE_S": "90"})
        env.service.start(timeout=30)

        def connected_node():
            lines = [ln for ln in env.service.stderr().splitlines() if "connected to the broker at" in ln]
            return next((i for i in range(3) if lines and lines[-1].endswith(nats.url(i))), None)

        h.wait_until(lambda: connected_node() is not None, 10, what="connected to a node")
        dead = connected_node()
        live = [i for i in range(3) if i != dead]

        def client(prefix, i):
            c = h.Client(nats.node(i), env.uid(prefix), timeout=15)
            env.clients.append(c)
            env.wait_online(c.user_id, timeout=15)
            return c

        gone = client("x", dead)  # on the node that dies (the service's), refreshing until then
        stop_refresh = threading.Event()

        def refresh():
            while not stop_refresh.wait(0.2):
                gone.publish_presence()

        refresher = threading.Thread(target=refresh)
        refresher.start()
        try:
            a, b = client("a", live[0]), client("b", live[1])
            check(gone.user_id in env.user_ids(), "the refreshing client went offline")
        finally:
            stop_refresh.set()
            refresher.join()
        first = env.start_call(a, b)
        seen = {a.user_id: set(), b.user_id: set()}
        dups = [0]

        def expect_new(c, type_, call_id):
            """The next event whose id the client has not seen: an event the dead node had not
            acknowledged is sent again after the failover (at least once), and a client drops
            the id it already has (docs/mqtt.md). While JetStream elects again NATS holds QoS 1
            publishes for seconds (up to 8 s seen, more under load): 30 s."""
            deadline = time.monotonic() + 30
            while True:
                left = deadline - time.monotonic()
                check(left > 0, "%s: no new %s event within 30 s" % (c.user_id, type_))
                try:
                    ev = c.events.get(timeout=left)
                except queue.Empty:
                    continue
                if ev.get("id") in seen[c.user_id]:
                    dups[0] += 1
                    continue
                seen[c.user_id].add(ev.get("id"))
                check(ev.get("type") == type_ and ev.get("call", {}).get("id") == call_id,
                      "%s: expected %s of %s, got %r" % (c.user_id, type_, call_id, ev))
                return ev

        expect_new(b, "INCOMING_CALL", first["id"])
        t_kill = time.monotonic()
        nats.kill(dead)
        h.wait_until(lambda: connected_node() in live, 30, what="the service on another node")
        # Subscribed there: the presence kept from before the kill is gone by now (cleared on
        # connect), so the waits below see the other node's replay, and the answer finds the bus up.
        h.wait_until(lambda: h.http_request(env.service.port, "GET", "/ready").status == 200, 40,
                     what="the service ready on the other node")
        env.wait_online(a.user_id, timeout=40)  # the other node's replay
        env.wait_online(b.user_id, timeout=40)
        env.wait_offline(gone.user_id, timeout=40)
        cleared = time.monotonic() - t_kill
        # While JetStream elects again NATS may close the service's connection once more (a
        # publish it held too long): call control then answers 503, which changed nothing and is
        # retried, as a client does (docs/api.md); the retries are counted.
        refused = []

        def answered():
            r = env.answer(first["id"], "ACCEPT")
            if r.status == 503:
                refused.append(r.json.get("error"))
                time.sleep(0.5)
                return None
            return r
        r = h.wait_until(answered, 60, what="an answer that is not 503")
        eq(r.status, 200, "answer of the call that rang before the kill")
        for c in (a, b):
            expect_new(c, "ACCEPT_CALL", first["id"])
        second = env.end(first["id"], a.user_id)
        eq(second.status, 200, "end")
        for c in (a, b):
            expect_new(c, "END_CALL", first["id"])
        again = env.start_call(b, a)
        expect_new(a, "INCOMING_CALL", again["id"])
        print("    nats node killed: service moved on, the dead node's client offline after %.1fs "
              "(lease 1 s), a call answered and ended and a new one rung on the other nodes; "
              "events delivered again and dropped by id: %d; answers refused 503 while NATS "
              "elected again: %d %s" % (cleared, dups[0], len(refused), sorted(set(refused))))
    finally:
        env.close_clients()
        env.service.stop()
        nats.stop()


if __name__ == "__main__":
    h.main(shared=False)

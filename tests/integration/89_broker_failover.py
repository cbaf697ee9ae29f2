#!/usr/bin/python3
"""MQTT_URL with several brokers: the service connects to the first that answers and, when it is
lost, fails over to the next, rebuilding presence from that broker's retained messages; calls go on
there. Two independent Mosquittos (the shipped config) stand for two nodes; what a broker cluster
shares between its nodes is not tested here (docs/scaling.md)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import eq  # noqa: E402


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


if __name__ == "__main__":
    h.main(shared=False)

#!/usr/bin/python3
"""Presence in bulk through the shipped broker config (broker-config/mosquitto.conf): 20,000
retained presences all listed again after a service restart, and a user whose 20,000 devices all
cleared their presence listed offline. Guards the broker's queue limits: with Mosquitto's
defaults (20 QoS 1 messages in flight and 1,000 queued per client) the broker drops the rest of a
burst to the service, so a restart listed only about 1,020 users and a cleared user stayed online.

Each test has its own broker and service and prints its counts (published, listed, lost). Run by
CTest as integration.presence_bulk.
"""

import os
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

BULK = 20000
PUBLISHERS = 4  # connections sharing the publishing
PUBLISH_BOUND_S = 60.0  # the publishing loop gives up after this long


def publish_all(env, messages):
    """Publishes (topic, payload) pairs retained at QoS 1 over PUBLISHERS connections; returns
    once the broker acknowledged every one (AssertionError after PUBLISH_BOUND_S)."""
    deadline = time.monotonic() + PUBLISH_BOUND_S
    shares = [messages[i::PUBLISHERS] for i in range(PUBLISHERS)]
    errors = []

    def run(share):
        acked = threading.Semaphore(0)
        c = mqtt.Client(client_id="bulk-" + secrets.token_hex(4), reconnect_on_failure=False)
        c.max_inflight_messages_set(500)
        c.max_queued_messages_set(0)
        c.on_publish = lambda _c, _u, _mid: acked.release()
        try:
            c.connect("127.0.0.1", env.broker.port, keepalive=30)
            c.loop_start()
            for topic, payload in share:
                rc = c.publish(topic, payload, qos=1, retain=True).rc
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    raise AssertionError("publish to %s refused: %s" % (topic, mqtt.error_string(rc)))
            for _ in range(len(share)):
                if not acked.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    errors.append("publisher: not every PUBACK within %.0fs" % PUBLISH_BOUND_S)
                    break
            c.disconnect()
        except Exception as e:  # noqa: B902 - reported below
            errors.append("publisher: %r" % e)
        finally:
            c.loop_stop()

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PUBLISH_BOUND_S + 5)
    check(not errors, "; ".join(errors))
    print("    published %d retained presences in %.1fs" % (len(messages), time.monotonic() - t0))


def user_payload(uid):
    return ('{"id":"%s","name":"Name of %s","location":""}' % (uid, uid)).encode()


def listed(env, prefix):
    return sum(1 for u in env.users() if str(u.get("id", "")).startswith(prefix))


def barrier(env, bound_s=20.0):
    """Publishes a marker presence after everything published so far and waits until the service
    lists it: the broker delivers in order, so every earlier message has then been processed (or
    dropped by the broker). Returns False when the marker itself never arrived (dropped too)."""
    marker = h.Client(env.broker, env.uid("barrier"), client_id="barrier-" + secrets.token_hex(4),
                      subscribe=False, will=False)
    try:
        try:
            env.wait_online(marker.user_id, timeout=bound_s)
            seen = True
        except AssertionError:
            seen = False
        marker.clear_presence()
        return seen
    finally:
        marker.close()


def settle(env, prefix, want):
    """The number of listed users with this prefix after a barrier (see barrier()) and once it
    stopped changing for 2 s, or reached want; plus whether the barrier was seen."""
    seen = barrier(env)
    deadline = time.monotonic() + 30.0
    last, since = -1, time.monotonic()
    while True:
        n = listed(env, prefix)
        if n == want:
            return n, seen
        if n != last:
            last, since = n, time.monotonic()
        if time.monotonic() - since > 2.0 or time.monotonic() > deadline:
            return n, seen
        time.sleep(0.1)


def test_20000_retained_presences_all_listed_after_a_service_restart(env):
    prefix = "bulk-%s-" % secrets.token_hex(3)
    uids = ["%s%d" % (prefix, i) for i in range(BULK)]
    publish_all(env, [("users/%s/presence/d0" % uid, user_payload(uid)) for uid in uids])
    before, seen_before = settle(env, prefix, BULK)
    t0 = time.monotonic()
    env.service.restart()
    after, seen_after = settle(env, prefix, BULK)
    print("    listed %d while publishing (lost %d), %d after the restart (lost %d, %.1fs)%s" % (
        before, BULK - before, after, BULK - after, time.monotonic() - t0,
        "" if seen_before and seen_after else "; a barrier message was lost too"))
    eq(before, BULK, "users listed while publishing")
    eq(after, BULK, "users listed after the service restart")


def test_user_offline_after_clearing_20000_devices(env):
    uid = env.uid("many")
    topics = ["users/%s/presence/dev%d" % (uid, i) for i in range(BULK)]
    t0 = time.monotonic()
    publish_all(env, [(t, user_payload(uid)) for t in topics])
    check(barrier(env), "the barrier message published after the presences never reached the service")
    print("    %d devices online after %.1fs" % (BULK, time.monotonic() - t0))
    check(uid in env.user_ids(), "user with %d devices not listed" % BULK)
    t0 = time.monotonic()
    publish_all(env, [(t, b"") for t in topics])
    seen = barrier(env)  # every clear was published before the marker
    still = uid in env.user_ids()
    print("    %d devices cleared after %.1fs; user still listed after the barrier: %s%s" % (
        BULK, time.monotonic() - t0, still, "" if seen else " (the barrier message was lost too)"))
    check(seen, "the barrier message published after the clears never reached the service")
    check(not still, "user listed online after all %d devices cleared their presence" % BULK)


if __name__ == "__main__":
    # A broker and service per test: the second must not render the first one's 20,000 users on
    # every GET /users it polls.
    h.main(shared=False, service_env={"LOG_LEVEL": "info"})

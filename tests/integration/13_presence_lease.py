#!/usr/bin/python3
"""The presence lease (PRESENCE_REFRESH_S=0.4 here, so 1 s of silence ends a lease): a device that
refreshes its retained presence and then falls silent without its Last Will (what a clustered broker
does when the device's node dies) goes offline and its retained presence is cleared; one that keeps
refreshing stays; one that never refreshed keeps the Last Will as its only end."""

import os
import queue
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

SHARED = {"service_env": {"PRESENCE_REFRESH_S": "0.4"}}


def retained_presence(env, user_id, wait=1.0):
    """The retained presence payloads a new subscriber gets for the user's devices."""
    w = h.Client(env.broker, "watcher", client_id="w-" + user_id, presence=False, subscribe=False,
                 will=False)
    try:
        w.mqtt.subscribe("users/%s/presence/+" % user_id, qos=1)
        got, deadline = [], time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                topic, payload, retain = w.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            if retain:
                got.append(payload)
        return got
    finally:
        w.close()


def test_a_refreshing_device_that_falls_silent_goes_offline_and_is_cleared(env):
    dev = env.user("a")
    dev.publish_presence()  # a refresh: the device holds a lease from now on
    t0 = time.monotonic()
    eq(len(retained_presence(env, dev.user_id, wait=0.5)), 1, "retained presence while refreshing")
    env.wait_offline(dev.user_id, timeout=6)  # silent, still connected: no Last Will
    waited = time.monotonic() - t0
    check(waited >= 0.8, "offline after only %.2fs of silence (lease 1 s)" % waited)
    eq(retained_presence(env, dev.user_id), [], "retained presence after the lease ran out")
    print("    lease: silent device offline after %.1fs, its retained presence cleared" % waited)


def test_a_device_that_keeps_refreshing_stays_online(env):
    dev = env.user("b")
    t_end = time.monotonic() + 3.0  # three lease periods
    while time.monotonic() < t_end:
        dev.publish_presence()
        time.sleep(0.3)
        check(dev.user_id in env.user_ids(), "refreshing device dropped")
    env.wait_offline(dev.user_id, timeout=6)  # then silence ends it


def test_a_device_that_never_refreshes_is_ended_by_its_last_will_only(env):
    dev = env.user("c")
    time.sleep(2.5)  # more than two lease bounds
    check(dev.user_id in env.user_ids(), "a device without a lease went offline")
    dev.drop()  # the Last Will
    env.wait_offline(dev.user_id)


def test_a_silent_party_of_a_live_call_starts_its_grace_period(env):
    a, b = env.user("p"), env.user("q")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    eq(env.answer(call["id"], "ACCEPT").status, 200, "accept")
    a.expect_event("ACCEPT_CALL", call_id=call["id"])
    b.expect_event("ACCEPT_CALL", call_id=call["id"])
    b.publish_presence()  # b refreshes once, then falls silent; a keeps refreshing
    for _ in range(10):
        a.publish_presence()
        time.sleep(0.3)
    env.wait_offline(b.user_id, timeout=6)
    check(a.user_id in env.user_ids(), "the refreshing party went offline too")
    r = env.get("/calls/" + call["id"])
    eq((r.status, r.json.get("status")), (200, "ONGOING"), "call within the grace period")


if __name__ == "__main__":
    h.main(**SHARED)

#!/usr/bin/python3
"""The presence lease in jwt mode (PRESENCE_REFRESH_S=0.4 here, so 1 s of silence ends a lease): a
device that refreshed its presence once and then fell silent without its Last Will (its connection
kept open, as when a clustered broker's node dies with it) goes offline, and the service's clearing
of its retained presence passes the broker plugin, so a fresh subscriber no longer gets it; another
user's retained presence is still delivered to that subscriber first.

Runs the real service (AUTH_MODE=jwt) behind the real jwt-mode broker. Which writes the plugin lets
the service make on presence topics (an empty retained message only) is checked through a raw
service login in 20_broker_acl.py and in tests/unit/test_plugin_rules.c.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import h  # noqa: E402

REFRESH_S = 0.4  # the lease is 2.5 refresh periods: 1 s


def retained_presence(sc, st, watcher_id):
    """Every (topic, payload) a new user subscriber gets as retained on users/+/presence/+ within 1 s."""
    w = sc.probe(st.broker.port, watcher_id, st.token(watcher_id), client_id=watcher_id + ".watch")
    h.eq(w.subscribe("users/+/presence/+"), 1, "SUBACK users/+/presence/+")
    got, deadline = [], time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            topic, payload, retain = w.messages.get(timeout=0.1)
        except Exception:
            continue
        if retain:
            got.append((topic, payload))
    w.close()
    return got


def test_a_silent_device_goes_offline_and_its_retained_presence_is_cleared(sc):
    st = s.JwtStack(sc, service_env={"PRESENCE_REFRESH_S": str(REFRESH_S)})
    steady = st.user("steady")  # never refreshes: no lease, online while connected
    silent = st.user("silent")
    silent.publish_presence()  # one refresh: a lease from now on; then silence, connection open
    t0 = time.monotonic()
    h.wait_until(lambda: silent.user_id not in [u.get("id") for u in st.request(
        "GET", "/users", st.token(steady.user_id)).json], timeout=8, interval=0.1,
        what="the silent device offline in GET /users")
    waited = time.monotonic() - t0
    h.check(waited >= 0.8, "offline after only %.2fs of silence (lease 1 s)" % waited)
    # The clear is published when the lease ends; give the broker a moment to apply it.
    time.sleep(0.3)
    got = retained_presence(sc, st, "watcher-" + os.urandom(3).hex())
    topics = [t for t, _ in got]
    h.check(steady.presence_topic in topics,
            "the steady device's retained presence is delivered to a new subscriber: %r" % topics)
    h.check(silent.presence_topic not in topics,
            "the silent device's retained presence outlived its lease: %r" % topics)
    h.check(silent.mqtt is not None and silent.mqtt.is_connected(), "the silent device stayed connected")
    print("    lease: silent device offline after %.1fs, its retained presence cleared; %d retained "
          "presence(s) left" % (waited, len(got)))


if __name__ == "__main__":
    s.run()

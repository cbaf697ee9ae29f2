#!/usr/bin/python3
"""Broker access control in jwt mode: a user reads only its own events, its own call topic and
everyone's presence, writes only its own device's presence (and its Last Will there); the service
reads presence, writes events, reads and writes the call topics, and empties (never writes) a
device's retained presence when its presence lease runs out; nothing else, $SYS included.

Each "yields nothing" check runs next to a permitted subscriber of the same message receiving it,
so a broker that delivers nothing at all fails the suite too.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import h  # noqa: E402

EVENT = b'{"type":"INCOMING_CALL","call":{}}'


def presence(uid):
    return ('{"id":"%s","name":"N","location":""}' % uid).encode()


def setup(sc, **kw):
    b = sc.broker(secret=s.random_secret(), **kw)
    service = sc.probe(b.port, s.SERVICE_USERNAME, b.service_password, client_id="svc")
    return b, service


def user(sc, b, uid, client_id=None, **kw):
    return sc.probe(b.port, uid, b.token(uid), client_id=client_id or uid + ".dev", **kw)


def test_wildcard_sys_and_foreign_event_subscriptions_yield_nothing(sc):
    b, service = setup(sc, extra_conf=["sys_interval 1"])
    bob = user(sc, b, "bob")
    h.eq(bob.subscribe("users/bob/events"), 1, "bob's SUBACK for his own events")
    spies = {}
    for topic in ("#", "$SYS/#", "users/bob/events", "users/+/events", "users/#", "+/+/+",
                  "users/bob/#", "$SYS/broker/version", "$share/g/users/bob/events"):
        spy = user(sc, b, "mallory", client_id="mallory.spy%d" % len(spies))
        spy.subscribe(topic)
        spies[topic] = spy
    bob.publish("users/bob/presence/bob.dev", presence("bob"), retain=True)
    service.publish("users/bob/events", EVENT)
    bob.expect_message("users/bob/events", EVENT)
    # $SYS is published every second (sys_interval 1) and mostly retained: give it time.
    time.sleep(1.2)
    for topic, spy in spies.items():
        spy.expect_nothing(timeout=0.01, what="via %r" % topic)


def test_service_cannot_read_sys_or_events(sc):
    b, service = setup(sc, extra_conf=["sys_interval 1"])
    bob = user(sc, b, "bob")
    bob.subscribe("users/bob/events")
    service.subscribe("$SYS/#")
    service.subscribe("users/+/events")
    service.publish("users/bob/events", EVENT)
    bob.expect_message("users/bob/events", EVENT)
    service.expect_nothing(timeout=1.2, what="$SYS or events")


def test_user_reads_own_events_and_everyones_presence(sc):
    b, service = setup(sc)
    alice = user(sc, b, "alice")
    bob = user(sc, b, "bob")
    h.eq(alice.subscribe("users/alice/events"), 1, "SUBACK users/alice/events")
    h.eq(alice.subscribe("users/+/presence/+"), 1, "SUBACK users/+/presence/+")
    bob.publish("users/bob/presence/bob.dev", presence("bob"), retain=True)
    alice.expect_message("users/bob/presence/bob.dev", presence("bob"))
    service.publish("users/alice/events", EVENT)
    alice.expect_message("users/alice/events", EVENT)


def test_publishing_another_users_presence_is_dropped(sc):
    b, service = setup(sc)
    service.subscribe("users/+/presence/+")
    mallory = user(sc, b, "mallory")
    mallory.publish("users/bob/presence/bob.dev", presence("bob"), retain=True)
    mallory.publish("users/bob/presence/mallory.dev", presence("bob"), retain=True)
    mallory.publish("users/mallory/presence/mallory.other", presence("mallory"), retain=True)
    mallory.publish("users/mallory/presence/mallory.dev/x", presence("mallory"), retain=True)
    mallory.publish("users/mallory/presence/mallory.dev", presence("mallory"), retain=True)
    # Only the last one is mallory's own device topic; it must arrive, and first.
    topic, payload, _ = service.messages.get(timeout=3)
    h.eq(topic, "users/mallory/presence/mallory.dev", "first presence the service sees")
    service.expect_nothing(timeout=0.3, what="forged presence")
    # Nor was any forged one retained: a fresh subscriber gets only the real one.
    late = sc.probe(b.port, s.SERVICE_USERNAME, b.service_password, client_id="svc-late")
    late.subscribe("users/+/presence/+")
    h.eq(late.messages.get(timeout=3)[0], "users/mallory/presence/mallory.dev", "retained presence")
    late.expect_nothing(timeout=0.3, what="a retained forged presence")


def test_users_cannot_publish_events(sc):
    b, service = setup(sc)
    bob = user(sc, b, "bob")
    bob.subscribe("users/bob/events")
    mallory = user(sc, b, "mallory")
    mallory.subscribe("users/mallory/events")
    mallory.publish("users/bob/events", EVENT)
    mallory.publish("users/mallory/events", EVENT)
    bob.publish("users/bob/events", EVENT)
    bob.expect_nothing(timeout=0.5, what="an event published by a user")
    mallory.expect_nothing(timeout=0.1, what="an event published by a user")
    service.publish("users/bob/events", EVENT)
    bob.expect_message("users/bob/events", EVENT)


def test_users_cannot_publish_anywhere_else(sc):
    b, service = setup(sc)
    service.subscribe("users/+/presence/+")
    watcher = user(sc, b, "watcher")
    for topic in ("users/watcher/events", "users/+/presence/+"):
        watcher.subscribe(topic)
    mallory = user(sc, b, "mallory")
    for topic in ("other", "users/mallory", "users/mallory/presence", "$SYS/broker/x", "users/watcher/x"):
        mallory.publish(topic, b"x")
    watcher.expect_nothing(timeout=0.3)
    service.expect_nothing(timeout=0.1)


def test_last_will_clears_own_presence(sc):
    b, service = setup(sc)
    service.subscribe("users/+/presence/+")
    alice = user(sc, b, "alice", will=("users/alice/presence/alice.dev", b"", True))
    alice.publish("users/alice/presence/alice.dev", presence("alice"), retain=True)
    service.expect_message("users/alice/presence/alice.dev", presence("alice"))
    alice.drop()
    payload, _ = service.expect_message("users/alice/presence/alice.dev", timeout=5)
    h.eq(payload, b"", "Last Will payload")


def test_last_will_on_another_users_presence_is_dropped(sc):
    b, service = setup(sc)
    service.subscribe("users/+/presence/+")
    bob = user(sc, b, "bob")
    bob.publish("users/bob/presence/bob.dev", presence("bob"), retain=True)
    service.expect_message("users/bob/presence/bob.dev", presence("bob"))
    try:
        mallory = user(sc, b, "mallory", will=("users/bob/presence/bob.dev", b"", True))
    except AssertionError:
        mallory = None  # refusing the CONNECT outright is fine too
    if mallory is not None:
        mallory.drop()
    service.expect_nothing(timeout=1.0, what="mallory's Will on bob's presence")
    late = sc.probe(b.port, s.SERVICE_USERNAME, b.service_password, client_id="svc-late")
    late.subscribe("users/bob/presence/+")
    h.eq(late.expect_message("users/bob/presence/bob.dev")[0], presence("bob"), "bob's retained presence")


def test_service_publishes_events_and_reads_presence_only(sc):
    b, service = setup(sc)
    h.eq(service.subscribe("users/+/presence/+"), 1, "service SUBACK users/+/presence/+")
    alice = user(sc, b, "alice")
    alice.subscribe("users/alice/events")
    alice.subscribe("users/+/presence/+")
    alice.publish("users/alice/presence/alice.dev", presence("alice"), retain=True)
    service.expect_message("users/alice/presence/alice.dev", presence("alice"))
    alice.expect_message("users/alice/presence/alice.dev", presence("alice"))
    service.publish("users/alice/events", EVENT)
    alice.expect_message("users/alice/events", EVENT)
    # The service cannot fake presence either: no payload, retained or not, and no empty message
    # that is not retained. It may only clear a retained presence (the presence lease), and that
    # clear, published last, must be the first presence alice gets.
    service.publish("users/alice/presence/svc", presence("alice"), retain=True)
    service.publish("users/alice/presence/alice.dev", presence("alice"), retain=True)
    service.publish("users/alice/presence/alice.dev", presence("alice"))
    service.publish("users/alice/presence/alice.dev", b"")
    service.publish("users/alice/presence/alice.dev", b"", retain=True)
    topic, payload, _ = alice.messages.get(timeout=3)
    h.eq((topic, payload), ("users/alice/presence/alice.dev", b""), "the service's clear, and only it")
    alice.expect_nothing(timeout=0.5, what="presence published by the service")
    bob = user(sc, b, "bob")
    bob.publish("users/bob/presence/bob.dev", presence("bob"), retain=True)
    service.expect_message("users/bob/presence/bob.dev", presence("bob"))
    late = user(sc, b, "late")
    late.subscribe("users/+/presence/+")
    first = late.messages.get(timeout=3)  # retained messages come in any order: one, then none
    h.eq(first, ("users/bob/presence/bob.dev", presence("bob"), True), "the one retained presence left")
    late.expect_nothing(timeout=0.5, what="a retained presence after the service's clear")


def test_oversized_presence_is_refused(sc):
    b, service = setup(sc)
    service.subscribe("users/+/presence/+")
    alice = user(sc, b, "alice")
    big = b'{"id":"alice","name":"' + b"x" * 100000 + b'"}'
    alice.mqtt.publish("users/alice/presence/alice.dev", big, qos=1, retain=True)
    h.check(alice.disconnected.wait(3), "a 100 kB presence message did not end the connection")
    service.expect_nothing(timeout=0.3, what="an oversized presence")
    ok = user(sc, b, "alice", client_id="alice.2")
    ok.publish("users/alice/presence/alice.2", b'{"id":"alice","name":"' + b"x" * 4000 + b'"}', retain=True)
    service.expect_message("users/alice/presence/alice.2")


def test_websocket_clients_get_the_same_rules(sc):
    b, service = setup(sc)
    bob = sc.probe(b.wsport, "bob", b.token("bob"), client_id="bob.ws", transport="websockets")
    bob.subscribe("users/bob/events")
    spy = sc.probe(b.wsport, "mallory", b.token("mallory"), client_id="mallory.ws", transport="websockets")
    spy.subscribe("#")
    spy.subscribe("users/bob/events")
    service.publish("users/bob/events", EVENT)
    bob.expect_message("users/bob/events", EVENT)
    spy.expect_nothing(timeout=0.3)


def call(uid, revision):
    return ('{"id":"c-%s","status":"DIALLING","revision":%d}' % (uid, revision)).encode()


def test_a_user_reads_only_their_own_call_topic(sc):
    b, service = setup(sc)
    alice = user(sc, b, "alice")
    h.eq(alice.subscribe("users/alice/call"), 1, "alice's SUBACK for her own call topic")
    spy = user(sc, b, "mallory")
    for topic in ("users/+/call", "users/alice/call", "users/+/+", "users/alice/#"):
        h.check(spy.subscribe(topic) >= 0x80, "mallory's SUBACK for %r: expected a failure code" % topic)
    h.eq(spy.subscribe("users/mallory/call"), 1, "mallory's SUBACK for her own call topic")
    # Alice's call is published first: had it leaked, it would reach mallory before her own.
    service.publish("users/alice/call", call("alice", 1), retain=True)
    service.publish("users/mallory/call", call("mallory", 1), retain=True)
    alice.expect_message("users/alice/call", call("alice", 1))
    topic, payload, _ = spy.messages.get(timeout=3)
    h.eq((topic, payload), ("users/mallory/call", call("mallory", 1)), "mallory's first message")
    spy.expect_nothing(timeout=0.3, what="another user's call")
    # The retained replay follows the same rule: the forbidden filters first, her own last.
    late = user(sc, b, "mallory", client_id="mallory.late")
    for topic in ("users/+/call", "users/alice/call"):
        late.subscribe(topic)
    late.subscribe("users/mallory/call")
    topic, payload, retain = late.messages.get(timeout=3)
    h.eq((topic, payload, retain), ("users/mallory/call", call("mallory", 1), 1), "mallory's retained replay")
    late.expect_nothing(timeout=0.3, what="another user's retained call")


def test_users_cannot_publish_call_topics(sc):
    b, service = setup(sc)
    alice = user(sc, b, "alice")
    alice.subscribe("users/alice/call")
    mallory = user(sc, b, "mallory")
    mallory.subscribe("users/mallory/call")
    forged = b'{"id":"forged","status":"ONGOING","revision":99}'
    mallory.publish("users/alice/call", forged, retain=True)
    mallory.publish("users/mallory/call", forged, retain=True)
    mallory.publish("users/bob/call", forged, retain=True)
    alice.publish("users/alice/call", forged, retain=True)
    service.publish("users/alice/call", call("alice", 1), retain=True)
    service.publish("users/mallory/call", call("mallory", 1), retain=True)
    h.eq(alice.messages.get(timeout=3)[:2], ("users/alice/call", call("alice", 1)), "alice's first call message")
    h.eq(mallory.messages.get(timeout=3)[:2], ("users/mallory/call", call("mallory", 1)),
         "mallory's first call message")
    alice.expect_nothing(timeout=0.3, what="a call published by a user")
    mallory.expect_nothing(timeout=0.1, what="a call published by a user")
    # Nor was a forged one retained where the service wrote nothing: bob subscribes, then the
    # service's own message is the first he gets.
    bob = user(sc, b, "bob")
    bob.subscribe("users/bob/call")
    service.publish("users/bob/call", call("bob", 1), retain=True)
    h.eq(bob.messages.get(timeout=3)[:2], ("users/bob/call", call("bob", 1)), "bob's first call message")
    bob.expect_nothing(timeout=0.3, what="a forged retained call")


def test_service_reads_and_writes_call_topics(sc):
    b, service = setup(sc)
    h.eq(service.subscribe("users/+/call"), 1, "service SUBACK users/+/call")
    service.publish("users/alice/call", call("alice", 2), retain=True)
    payload, _ = service.expect_message("users/alice/call")
    h.eq(payload, call("alice", 2), "the call the service reads back")
    # Its end-of-replay marker: callsignal/sync/{its own client id}, nobody else's.
    h.eq(service.subscribe("callsignal/sync/svc"), 1, "service SUBACK for its sync topic")
    h.check(service.subscribe("callsignal/sync/+") >= 0x80, "service SUBACK for every sync topic")
    spy = user(sc, b, "mallory")
    h.check(spy.subscribe("callsignal/sync/svc") >= 0x80, "mallory's SUBACK for the service's sync topic")
    service.publish("callsignal/sync/svc", b"sync")
    service.expect_message("callsignal/sync/svc", b"sync")
    spy.expect_nothing(timeout=0.1, what="the service's sync marker")
    service.publish("users/alice/call", b"", retain=True)  # cleared: no live call
    late = sc.probe(b.port, s.SERVICE_USERNAME, b.service_password, client_id="svc-late")
    late.subscribe("users/+/call")
    service.publish("users/carol/call", call("carol", 1), retain=True)
    h.eq(late.messages.get(timeout=3)[:2], ("users/carol/call", call("carol", 1)), "first call after the clear")
    late.expect_nothing(timeout=0.3, what="a cleared call")


if __name__ == "__main__":
    s.run()

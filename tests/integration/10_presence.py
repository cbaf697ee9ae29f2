#!/usr/bin/python3
"""Presence: retained users/{id}/presence/{clientId} messages and Last Wills -> GET /users.

Covers: several devices per user, the Will clearing one device, a user staying online while another
device remains, clean disconnects, the latest payload winning, and every kind of bad presence
message being ignored (bad ids in the topic, bad JSON, payload id != topic user).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402


def find(env, user_id):
    found = [u for u in env.users() if u.get("id") == user_id]
    check(len(found) <= 1, "user %s listed %d times" % (user_id, len(found)))
    return found[0] if found else None


def test_users_lists_online_user_with_its_presence_payload(env):
    a = env.user("alice", name="Alice A.", location="Lisbon")
    eq(find(env, a.user_id), {"id": a.user_id, "name": "Alice A.", "location": "Lisbon"}, "listed user")


def test_users_response_is_json_array_of_users(env):
    env.user()
    r = env.get("/users")
    eq(r.status, 200, "status")
    check(r.headers.get("Content-Type", "").startswith("application/json"), "Content-Type %r" %
          r.headers.get("Content-Type"))
    check(isinstance(r.json, list) and r.json, "not a non-empty array: %r" % r.body[:200])
    for u in r.json:
        eq(sorted(u), ["id", "location", "name"], "keys of a listed User")


def test_location_defaults_to_empty_string(env):
    uid = env.uid("noloc")
    env.client(uid, user={"id": uid, "name": "No Location"})
    env.wait_online(uid)
    eq(find(env, uid), {"id": uid, "name": "No Location", "location": ""}, "listed user")


def test_extra_payload_fields_are_ignored(env):
    uid = env.uid("extra")
    env.client(uid, user={"id": uid, "name": "Ext", "location": "X", "avatar": "a.png", "n": 5})
    env.wait_online(uid)
    eq(find(env, uid), {"id": uid, "name": "Ext", "location": "X"}, "listed user")


def test_websocket_client_presence_is_listed(env):
    c = env.client(env.uid("ws"), transport="websockets")
    env.wait_online(c.user_id)


def test_user_with_several_devices_is_listed_once(env):
    uid = env.uid("multi")
    env.client(uid, client_id="phone-" + uid)
    env.client(uid, client_id="laptop-" + uid, transport="websockets")
    env.client(uid, client_id="tv-" + uid)
    env.wait_online(uid)
    env.sync()
    eq(env.user_ids().count(uid), 1, "times listed")


def test_latest_presence_payload_of_any_device_wins(env):
    uid = env.uid("latest")
    d1 = env.client(uid, name="First")
    env.wait_online(uid)
    env.client(uid, name="Second")
    h.wait_until(lambda: (find(env, uid) or {}).get("name") == "Second", what="name Second")
    d1.publish_presence({"id": uid, "name": "Third", "location": "Moon"})
    h.wait_until(lambda: find(env, uid) == {"id": uid, "name": "Third", "location": "Moon"},
                 what="payload of the latest message")


def test_last_will_clears_the_only_device(env):
    c = env.user("will")
    c.drop()
    env.wait_offline(c.user_id)


def test_last_will_over_websocket_clears_the_device(env):
    c = env.user("wswill", transport="websockets")
    c.drop()
    env.wait_offline(c.user_id)


def test_clean_disconnect_clears_presence(env):
    c = env.user("clean")
    c.disconnect()
    env.wait_offline(c.user_id)


def test_user_stays_online_while_another_device_remains(env):
    uid = env.uid("stay")
    phone = env.client(uid, client_id="phone-" + uid)
    laptop = env.client(uid, client_id="laptop-" + uid)
    env.wait_online(uid)
    phone.drop()  # its Will clears one device
    env.sync()
    check(uid in env.user_ids(), "user went offline although a device remains")
    laptop.disconnect()
    env.wait_offline(uid)


def test_user_offline_only_after_last_of_three_devices_goes(env):
    uid = env.uid("three")
    devs = [env.client(uid, client_id="d%d-%s" % (i, uid)) for i in range(3)]
    env.wait_online(uid)
    devs[0].drop()
    devs[1].disconnect()
    env.sync()
    check(uid in env.user_ids(), "offline with one device left")
    devs[2].drop()
    env.wait_offline(uid)


def test_device_coming_back_makes_user_online_again(env):
    c = env.user("back")
    c.drop()
    env.wait_offline(c.user_id)
    c.connect()
    env.wait_online(c.user_id)


def test_empty_retained_for_unknown_device_is_harmless(env):
    uid = env.uid("ghost")
    env.raw_publish("users/%s/presence/nobody" % uid, b"")
    a = env.user("after")
    check(uid not in env.user_ids(), "ghost user listed")
    env.wait_online(a.user_id)


def test_payload_id_different_from_topic_user_is_ignored(env):
    topic_user, payload_user = env.uid("topic"), env.uid("payload")
    env.raw_publish("users/%s/presence/dev1" % topic_user,
                    {"id": payload_user, "name": "Impostor", "location": ""})
    env.sync()
    ids = env.user_ids()
    check(topic_user not in ids, "topic user listed from a payload naming someone else")
    check(payload_user not in ids, "payload user listed from someone else's topic")


def test_impostor_payload_does_not_replace_a_real_presence(env):
    victim = env.user("victim", name="Real Name")
    env.raw_publish("users/%s/presence/other-dev" % victim.user_id,
                    {"id": env.uid("mallory"), "name": "Mallory", "location": ""})
    env.sync()
    eq(find(env, victim.user_id)["name"], "Real Name", "victim's listed name")


def test_too_long_user_id_in_topic_is_ignored(env):
    long_id = "x" * 129
    env.raw_publish("users/%s/presence/dev" % long_id, {"id": long_id, "name": "Long", "location": ""})
    env.sync()
    check(long_id not in env.user_ids(), "129-byte user id listed")


def test_user_id_of_exactly_128_bytes_is_accepted(env):
    uid = ("m%s-" % env.uid()).ljust(128, "m")
    eq(len(uid.encode()), 128, "test id length")
    env.client(uid)
    env.wait_online(uid)


def test_multibyte_user_id_over_128_bytes_is_ignored(env):
    long_id = "\u20ac" * 43  # 129 bytes of UTF-8
    env.raw_publish("users/%s/presence/dev" % long_id, {"id": long_id, "name": "Euro", "location": ""})
    env.sync()
    check(long_id not in env.user_ids(), "129-byte multibyte user id listed")


def test_too_long_client_id_in_topic_is_ignored(env):
    uid = env.uid("longdev")
    env.raw_publish("users/%s/presence/%s" % (uid, "d" * 129), {"id": uid, "name": "L", "location": ""})
    env.sync()
    check(uid not in env.user_ids(), "user listed from a device with a 129-byte client id")


def test_empty_ids_in_topic_are_ignored(env):
    uid = env.uid("emptydev")
    env.raw_publish("users//presence/dev", {"id": "", "name": "Empty", "location": ""})
    env.raw_publish("users/%s/presence/" % uid, {"id": uid, "name": "E", "location": ""})
    env.sync()
    ids = env.user_ids()
    check("" not in ids, "empty user id listed")
    check(uid not in ids, "user listed from an empty client id")


def test_non_json_presence_is_ignored(env):
    uid = env.uid("garbage")
    env.raw_publish("users/%s/presence/dev" % uid, b"hello, not json")
    env.sync()
    check(uid not in env.user_ids(), "user listed from non-JSON presence")


def test_invalid_presence_payloads_are_ignored(env):
    bad = {}
    for label, make in [
        ("array", lambda u: [u, "x"]),
        ("string", lambda u: '"%s"' % u),
        ("number", lambda u: "42"),
        ("null", lambda u: "null"),
        ("missing name", lambda u: {"id": u, "location": ""}),
        ("missing id", lambda u: {"name": "N", "location": ""}),
        ("name not a string", lambda u: {"id": u, "name": 5, "location": ""}),
        ("id not a string", lambda u: {"id": 7, "name": "N", "location": ""}),
        ("location not a string", lambda u: {"id": u, "name": "N", "location": {"x": 1}}),
        ("name over 256 bytes", lambda u: {"id": u, "name": "n" * 257, "location": ""}),
        ("location over 256 bytes", lambda u: {"id": u, "name": "N", "location": "l" * 257}),
        ("truncated JSON", lambda u: '{"id": "%s", "name": "N"' % u),
        ("not UTF-8", lambda u: b'{"id": "' + u.encode() + b'", "name": "\xff\xfe", "location": ""}'),
    ]:
        uid = env.uid("bad")
        bad[uid] = label
        env.raw_publish("users/%s/presence/dev" % uid, make(uid))
    env.sync()
    listed = set(env.user_ids())
    wrong = [label for uid, label in bad.items() if uid in listed]
    check(not wrong, "users listed from invalid presence payloads: %s" % ", ".join(wrong))


def test_name_and_location_of_exactly_256_bytes_are_accepted(env):
    uid = env.uid("max")
    env.client(uid, user={"id": uid, "name": "n" * 256, "location": "\u00e9" * 128})
    env.wait_online(uid)
    eq(find(env, uid), {"id": uid, "name": "n" * 256, "location": "\u00e9" * 128}, "listed user")


def test_bad_payload_on_an_online_device_keeps_the_previous_presence(env):
    c = env.user("keep", name="Kept")
    c.publish(c.presence_topic, b"{broken", retain=True)
    env.sync()
    eq(find(env, c.user_id), h.user_of(c), "listed user after a bad payload")


def test_unicode_names_round_trip(env):
    uid = env.uid("uni")
    env.client(uid, name="Zo\u00eb \u00c5lvarez \U0001F600", location="K\u00f8benhavn")
    env.wait_online(uid)
    eq(find(env, uid), {"id": uid, "name": "Zo\u00eb \u00c5lvarez \U0001F600",
                        "location": "K\u00f8benhavn"}, "listed user")


def test_health_counts_online_users(env):
    before = env.get("/health").json["users"]
    env.user("count1")
    env.user("count2")
    after = env.get("/health").json["users"]
    check(after >= before + 2, "health users went from %s to %s after 2 users came online" % (before, after))


def test_presence_and_events_flow_after_the_bus_was_quiet(env):
    # The service polls its broker connection less often once it has been
    # quiet for a second; a device coming online then must still be seen,
    # and a call to it must still ring.
    a = env.user("quiet1")
    time.sleep(1.5)
    b = env.user("quiet2")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])


def test_service_still_serves_after_bad_presence(env):
    a, b = env.user("good1"), env.user("good2")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])


if __name__ == "__main__":
    h.main()

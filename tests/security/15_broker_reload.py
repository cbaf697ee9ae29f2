#!/usr/bin/python3
"""Broker plugin reloads (SIGHUP): keys rotate without a restart, a revoked user is disconnected at
once (its Last Will clears its presence) and refused from then on, and a broken reload keeps the
running configuration.

Tokens are checked when a client connects. Mosquitto 2.0 also authenticates every connected client
again after a reload, with the token it connected with: so a SIGHUP disconnects the clients whose
token has expired meanwhile or whose key was retired, and otherwise they stay until they disconnect.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import claims, expect_accepted, expect_refused, h, jwt_hs256  # noqa: E402


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_revoked_user_is_kicked_on_reload_and_refused_until_unrevoked(sc):
    b = sc.broker(secret=s.random_secret())
    service = sc.probe(b.port, s.SERVICE_USERNAME, b.service_password, client_id="svc")
    service.subscribe("users/+/presence/+")
    mallory = sc.probe(b.port, "mallory", b.token("mallory"), client_id="mallory.dev",
                       will=("users/mallory/presence/mallory.dev", b"", True))
    alice = sc.probe(b.port, "alice", b.token("alice"), client_id="alice.dev")
    mallory.publish("users/mallory/presence/mallory.dev", b'{"id":"mallory","name":"M"}', retain=True)
    service.expect_message("users/mallory/presence/mallory.dev")

    write(b.path("revoked_users"), "# banned\n\nmallory\n")
    log = b.reload()
    h.check("1 revoked user" in log, "reload summary: %r" % log)
    payload, _ = service.expect_message("users/mallory/presence/mallory.dev", timeout=3)
    h.eq(payload, b"", "mallory's presence after the kick (her Will)")
    h.check(mallory.disconnected.wait(3), "mallory's connection is still open")
    expect_refused(b.port, "mallory", b.token("mallory"), "revoked user with a fresh token")
    h.check(not alice.disconnected.is_set(), "alice was disconnected too")
    expect_accepted(b.port, "alice", b.token("alice"), "another user")

    write(b.path("revoked_users"), "")
    b.reload()
    expect_accepted(b.port, "mallory", b.token("mallory"), "mallory after un-revoking")


def test_secret_rotation_on_reload(sc):
    old, new = s.random_secret(), s.random_secret()
    b = sc.broker(secret=old)
    connected = sc.probe(b.port, "alice", jwt_hs256(claims("alice"), old), client_id="alice.old")
    # Step 1: new secret, old one kept as previous.
    write(b.path("secrets", "jwt_secret_previous"), old + "\n")
    write(b.path("secrets", "jwt_secret"), new + "\n")
    h.check("2 key(s)" in b.reload(), "two keys after step 1")
    expect_accepted(b.port, "bob", jwt_hs256(claims("bob"), new), "token of the new secret")
    expect_accepted(b.port, "bob", jwt_hs256(claims("bob"), old), "token of the previous secret")
    # Step 2: the previous secret retired.
    os.remove(b.path("secrets", "jwt_secret_previous"))
    h.check("1 key(s)" in b.reload(), "one key after step 2")
    expect_accepted(b.port, "bob", jwt_hs256(claims("bob"), new), "token of the new secret")
    expect_refused(b.port, "bob", jwt_hs256(claims("bob"), old), "token of the retired secret")
    # The reload authenticated the open connections again: the one of the retired secret is closed.
    h.check(connected.disconnected.wait(3), "a connection of the retired secret is still open after the reload")


def test_service_password_rotation_on_reload(sc):
    b = sc.broker(secret=s.random_secret())
    write(b.path("secrets", "service_password"), "a-new-service-password-of-some-length\n")
    b.reload()
    expect_accepted(b.port, s.SERVICE_USERNAME, "a-new-service-password-of-some-length", "new service password")
    expect_refused(b.port, s.SERVICE_USERNAME, b.service_password, "old service password")


def test_broken_reload_keeps_the_running_configuration(sc):
    b = sc.broker(secret=s.random_secret())
    os.remove(b.path("secrets", "jwt_secret"))
    write(b.path("revoked_users"), "alice\n")
    log = b.reload()
    h.check("reload failed" in log, "no 'reload failed' in the log: %r" % log)
    h.check(b.running, "the broker stopped after a broken reload")
    expect_accepted(b.port, "alice", b.token("alice"), "token of the running configuration")
    write(b.path("secrets", "jwt_secret"), b.secret + "\n")
    write(b.path("revoked_users"), "not/a valid id\n")
    h.check("reload failed" in b.reload(), "a revoked-users file with a bad line was accepted")
    expect_accepted(b.port, "alice", b.token("alice"), "token after the second broken reload")


def test_expired_token_stays_connected_until_a_reload(sc):
    b = sc.broker(secret=s.random_secret())
    service = sc.probe(b.port, s.SERVICE_USERNAME, b.service_password, client_id="svc")
    service.subscribe("users/+/presence/+")
    # Expires 2 s from now counting the 60 s leeway: the CONNECT succeeds...
    short = b.token("alice", ttl=-58)
    alice = sc.probe(b.port, "alice", short, client_id="alice.dev",
                     will=("users/alice/presence/alice.dev", b"", True))
    alice.subscribe("users/alice/events")
    alice.publish("users/alice/presence/alice.dev", b'{"id":"alice","name":"A"}', retain=True)
    service.expect_message("users/alice/presence/alice.dev")
    bob = sc.probe(b.port, "bob", b.token("bob"), client_id="bob.dev")
    time.sleep(2.5)
    # ...once it has expired a new CONNECT is refused, while the open connection keeps working...
    expect_refused(b.port, "alice", short, "the same token after its expiry")
    service.publish("users/alice/events", b'{"type":"END_CALL","call":{}}')
    alice.expect_message("users/alice/events")
    h.check(not alice.disconnected.is_set(), "alice's connection closed before any reload")
    # ...until a reload authenticates it again: closed, and its Will clears the presence.
    b.reload()
    h.check(alice.disconnected.wait(3), "alice's expired connection is still open after the reload")
    payload, _ = service.expect_message("users/alice/presence/alice.dev", timeout=3)
    h.eq(payload, b"", "alice's presence after the reload (her Will)")
    h.check(not bob.disconnected.is_set(), "bob, whose token is valid, was disconnected by the reload")


def test_reload_tracks_exactly_the_connected_user_clients(sc):
    b = sc.broker(secret=s.random_secret())
    sc.probe(b.port, s.SERVICE_USERNAME, b.service_password)  # the service is not a user client
    stay = [sc.probe(b.port, "u%d" % i, b.token("u%d" % i), client_id="u%d.c" % i) for i in range(3)]
    leave = [sc.probe(b.port, "v%d" % i, b.token("v%d" % i), client_id="v%d.d" % i) for i in range(4)]
    leave[0].close()   # clean DISCONNECT
    leave[1].drop()    # connection lost
    # Session takeover: a second connection with a client id in use replaces the first one.
    again = sc.probe(b.port, "v2", b.token("v2"), client_id="v2.d")
    h.check(leave[2].disconnected.wait(3), "the taken-over connection is still open")
    expect_refused(b.port, "v3", "bad", "a refused CONNECT (not a session)")
    h.wait_until(lambda: "Client v1.d " in h.read_text(b.log_path), 3, what="the broker to notice v1.d is gone")
    log = b.reload()
    h.check("5 user client(s) connected after the reload" in log,
            "expected 5 tracked user clients (u0.c-u2.c, v2.d again, v3.d): %r" % log)
    _ = (stay, again)


if __name__ == "__main__":
    s.run()

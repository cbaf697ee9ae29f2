#!/usr/bin/python3
"""TLS listeners (broker-config/mosquitto-tls.conf) with certificates made by scripts/make-local-ca:
a client that trusts the local CA connects over MQTT/TLS and WebSocket/TLS; one that does not is
refused during the handshake; the user-token login applies on TLS listeners too.
"""

import os
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import h  # noqa: E402


def make_certs(sc):
    certs = os.path.join(sc.tmp, "certs")
    subprocess.run([os.path.join(s.REPO, "scripts", "make-local-ca"), certs], check=True,
                   stdout=subprocess.DEVNULL)
    for name in ("ca.crt", "ca.key", "server.crt", "server.key"):
        h.check(os.path.getsize(os.path.join(certs, name)) > 0, "make-local-ca did not write " + name)
    return certs


def tls_broker(sc):
    certs = make_certs(sc)
    b = sc.broker(secret=s.random_secret(), conf_name="mosquitto-tls.conf", certs_dir=certs)
    return b, os.path.join(certs, "ca.crt")


def test_client_trusting_the_local_ca_connects_over_mqtt_tls(sc):
    b, ca = tls_broker(sc)
    s.expect_accepted(b.tlsport, "alice", b.token("alice"), "MQTT/TLS with the CA", tls_ca=ca)
    s.expect_refused(b.tlsport, "alice", "not-a-jwt", "MQTT/TLS with a bad token", tls_ca=ca)


def test_client_trusting_the_local_ca_connects_over_websocket_tls(sc):
    b, ca = tls_broker(sc)
    s.expect_accepted(b.wssport, "alice", b.token("alice"), "WebSocket/TLS with the CA", tls_ca=ca,
                      transport="websockets")


def test_messages_flow_over_tls(sc):
    b, ca = tls_broker(sc)
    service = sc.probe(b.port, s.SERVICE_USERNAME, b.service_password)  # plain, on loopback
    alice = sc.probe(b.tlsport, "alice", b.token("alice"), tls_ca=ca)
    alice.subscribe("users/alice/events")
    service.publish("users/alice/events", b'{"type":"END_CALL","call":{}}')
    alice.expect_message("users/alice/events")


def expect_handshake_failure(port, what, **kw):
    try:
        rc = s.connect_rc(port, "alice", "irrelevant", timeout=3, **kw)
    except (ssl.SSLError, OSError) as e:
        h.check("CERTIFICATE_VERIFY_FAILED" in str(e) or isinstance(e, ssl.SSLError),
                "%s: unexpected error %r" % (what, e))
        return
    raise AssertionError("%s: TLS handshake succeeded (CONNACK rc=%s)" % (what, rc))


def test_client_without_the_ca_is_refused(sc):
    b, ca = tls_broker(sc)
    # The system trust store does not hold the local CA.
    expect_handshake_failure(b.tlsport, "MQTT/TLS without the CA", tls_ca="system")
    # Another local CA (e.g. of another installation) is not trusted either.
    other = os.path.join(sc.tmp, "other-ca")
    subprocess.run([os.path.join(s.REPO, "scripts", "make-local-ca"), other], check=True,
                   stdout=subprocess.DEVNULL)
    expect_handshake_failure(b.tlsport, "MQTT/TLS with another CA", tls_ca=os.path.join(other, "ca.crt"))
    expect_handshake_failure(b.wssport, "WebSocket/TLS with another CA", tls_ca=os.path.join(other, "ca.crt"),
                             transport="websockets")
    s.expect_accepted(b.tlsport, "alice", b.token("alice"), "control: with the CA", tls_ca=ca)


def test_plain_mqtt_is_not_offered_on_the_tls_port(sc):
    b, ca = tls_broker(sc)
    try:
        rc = s.connect_rc(b.tlsport, "alice", b.token("alice"), timeout=1)
    except (AssertionError, OSError):
        return
    raise AssertionError("plain MQTT on the TLS port got a CONNACK rc=%s" % rc)


def test_make_local_ca_keeps_the_ca_and_renews_the_server_certificate(sc):
    certs = make_certs(sc)
    with open(os.path.join(certs, "ca.crt")) as f:
        ca_before = f.read()
    with open(os.path.join(certs, "server.crt")) as f:
        server_before = f.read()
    subprocess.run([os.path.join(s.REPO, "scripts", "make-local-ca"), certs, "calls.example.org", "10.0.0.7"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(certs, "ca.crt")) as f:
        h.eq(f.read(), ca_before, "CA certificate after a second run")
    with open(os.path.join(certs, "server.crt")) as f:
        h.check(f.read() != server_before, "server certificate not renewed")
    text = subprocess.run(["openssl", "x509", "-in", os.path.join(certs, "server.crt"), "-noout", "-text"],
                          check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    for san in ("DNS:localhost", "IP Address:127.0.0.1", "DNS:calls.example.org", "IP Address:10.0.0.7"):
        h.check(san in text, "server certificate lacks %s" % san)
    subprocess.run(["openssl", "verify", "-CAfile", os.path.join(certs, "ca.crt"),
                    os.path.join(certs, "server.crt")], check=True, stdout=subprocess.DEVNULL)
    h.eq(oct(os.stat(os.path.join(certs, "server.key")).st_mode & 0o777), "0o600", "server.key mode")
    h.eq(oct(os.stat(os.path.join(certs, "ca.key")).st_mode & 0o777), "0o600", "ca.key mode")


if __name__ == "__main__":
    s.run()

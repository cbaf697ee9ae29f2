#!/usr/bin/python3
"""The service's broker connection over TLS: MQTT_URL ssl:// (and mqtts://) with MQTT_CA_FILE
naming the CA that signed Mosquitto's certificate (made here with openssl). Presence and events
flow over it; a CA that did not sign the broker's certificate keeps the service disconnected."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
            "-subj", "/CN=" + name)
    return key, crt


def make_certs(env):
    d = os.path.join(env.tmp, "certs")
    os.makedirs(d)
    ca_key, ca_crt = make_ca(d, "test-ca")
    _, other_ca = make_ca(d, "other-ca")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
            "-days", "2", "-extfile", ext)
    return ca_crt, other_ca, crt, key


def tls_env(env):
    """Restart the environment's broker with an extra TLS listener; returns (tls port, CA, other CA)."""
    ca, other_ca, crt, key = make_certs(env)
    port = h.free_port()
    env.broker.stop()
    with open(env.broker.conf_path, "a") as f:
        f.write("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n" % (port, ca, crt, key))
    env.broker.start()
    h.wait_until(lambda: h.port_accepts(port), 5, what="TLS listener")
    return port, ca, other_ca


@h.options(start_service=False)
def test_service_connects_over_tls_with_mqtt_ca_file(env):
    port, ca, _ = tls_env(env)
    s = env.spawn_service(env={"MQTT_URL": "ssl://127.0.0.1:%d" % port, "MQTT_CA_FILE": ca})
    eq(h.http_request(s.port, "GET", "/health").json.get("broker"), "connected", "broker state")
    a, b = env.client(env.uid("a")), env.client(env.uid("b"), transport="websockets")
    h.wait_until(lambda: {a.user_id, b.user_id} <= {u["id"] for u in h.http_request(s.port, "GET", "/users").json},
                 5, what="presence over the TLS connection")
    r = h.http_request(s.port, "POST", "/calls/start", json_body={"callerId": a.user_id, "receiverId": b.user_id})
    eq(r.status, 200, "start")
    b.expect_event("INCOMING_CALL", call_id=r.json["id"])


@h.options(start_service=False)
def test_mqtts_scheme_is_accepted(env):
    port, ca, _ = tls_env(env)
    s = env.spawn_service(env={"MQTT_URL": "mqtts://127.0.0.1:%d" % port, "MQTT_CA_FILE": ca})
    eq(h.http_request(s.port, "GET", "/ready").status, 200, "ready over mqtts://")


@h.options(start_service=False)
def test_untrusted_broker_certificate_keeps_service_disconnected(env):
    port, _, other_ca = tls_env(env)
    s = env.spawn_service(env={"MQTT_URL": "ssl://127.0.0.1:%d" % port, "MQTT_CA_FILE": other_ca},
                          wait="listening")
    time.sleep(1.5)
    expect_error(h.http_request(s.port, "GET", "/ready"), 503, "BROKER_UNAVAILABLE")
    lines = [line for line in s.stderr().splitlines() if (" WARN " in line or " ERROR " in line)
             and "ssl://127.0.0.1:%d" % port in line]
    check(lines, "no WARN/ERROR line naming the broker URL whose connection failed")
    check(any("TLS handshake failed: certificate verify failed" in line for line in lines),
          "no line saying the TLS verification failed: %r" % lines[:2])

if __name__ == "__main__":
    h.main(shared=False)

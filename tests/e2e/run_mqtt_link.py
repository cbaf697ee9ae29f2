"""Launcher of tests/e2e/mqtt_link.mjs (CTest e2e.mqtt_link): the web client's MQTT session code
(web/lib/mqtt_link.js) against a real nats-server and a real Mosquitto, both over WebSocket on
loopback, with the period of the presence refresh read from a real service's GET /config.

It starts, on free loopback ports in one temporary directory:
- Debian's nats-server (2.9) as one node with JetStream (which NATS MQTT requires), MQTT over TCP
  and over WebSocket (`no_tls: true`, path /mqtt); it speaks MQTT 3.1.1 only and refuses '.' and
  spaces in topics, so the link must fall back to 3.1.1 and to a client id without '.';
- the shipped broker-config/mosquitto.conf (tests/integration's Broker: ports swapped), where the
  link must keep MQTT 5 and the "{userId}.web-<hex>" client id;
- the service on that Mosquitto with PRESENCE_REFRESH_S=1, whose GET /config gives the period.

Exit codes: 0 pass, 1 fail, 77 skip (no nats-server, or no MQTT.js in web/node_modules).
Environment: CALLSIGNAL_BIN, MOSQUITTO_BIN (as for tests/integration), NATS_BIN (default:
nats-server on PATH, else /usr/sbin/nats-server), NODE_BIN, KEEP_TMP=1, VERBOSE=1.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402  (needs the path above)

NODE_TIMEOUT_S = 150
REFRESH_S = "1"


def nats_binary():
    return os.environ.get("NATS_BIN") or shutil.which("nats-server") or "/usr/sbin/nats-server"


class Nats:
    """One nats-server node: JetStream, MQTT over TCP and WebSocket, all on loopback."""

    def __init__(self, tmpdir, binary):
        self.bin = binary
        self.dir = tmpdir
        self.mqtt_port = self.port = harness.free_port()
        self.ws_port = self.wsport = harness.free_port()
        self.conf = os.path.join(tmpdir, "nats.conf")
        self.log_path = os.path.join(tmpdir, "nats.log")
        with open(self.conf, "w") as f:
            f.write("server_name: web1\nlisten: 127.0.0.1:%d\n" % harness.free_port() +
                    "jetstream { store_dir: %s }\n" % os.path.join(tmpdir, "js") +
                    "mqtt { listen: 127.0.0.1:%d }\n" % self.mqtt_port +
                    "websocket { listen: 127.0.0.1:%d\n no_tls: true }\n" % self.ws_port)
        self.proc = None

    @property
    def url(self):
        """The service's MQTT URL (TCP)."""
        return "tcp://127.0.0.1:%d" % self.mqtt_port

    @property
    def ws_url(self):
        """The page's MQTT URL (WebSocket, path /mqtt)."""
        return "ws://127.0.0.1:%d/mqtt" % self.ws_port

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.bin, "-c", self.conf], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        for p in (self.mqtt_port, self.ws_port):
            harness.wait_until(lambda p=p: harness.port_accepts(p), 15, what="nats port %d" % p)

    def stop(self):
        harness.terminate(self.proc)
        self.proc = None

    def log(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def main():
    nats_bin = nats_binary()
    if not os.path.exists(nats_bin):
        print("SKIP: no nats-server (Debian package nats-server)")
        return 77
    if not os.path.exists(os.path.join(REPO, "web", "node_modules", "mqtt", "package.json")):
        print("SKIP: web/node_modules/mqtt is missing: run scripts/bootstrap")
        return 77
    node = os.environ.get("NODE_BIN") or shutil.which("node")
    if not node:
        print("FAIL: node is not installed")
        return 1

    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="callsignal-mqtt-link-")
    nats = Nats(tmp, nats_bin)
    broker = harness.Broker(tmp)
    service = harness.Service(tmp, broker.url, env={"PRESENCE_REFRESH_S": REFRESH_S})
    ok = False
    try:
        nats.start()
        broker.start()
        service.start(wait="health")
        brokers = [
            {"name": "nats-server 2.9 (MQTT 3.1.1 only, no '.' in topics)",
             "url": nats.ws_url, "protocol": 4, "idForm": "plain"},
            {"name": "Mosquitto (broker-config/mosquitto.conf)",
             "url": "ws://127.0.0.1:%d" % broker.wsport, "protocol": 5, "idForm": "dotted"},
        ]
        env = dict(os.environ)
        env.update({"BROKERS": json.dumps(brokers), "SERVICE_URL": "http://127.0.0.1:%d" % service.port})
        print("mqtt_link: nats ws :%d, mosquitto ws :%d, service :%d (%.1fs to start)" % (
            nats.ws_port, broker.wsport, service.port, time.monotonic() - t0), flush=True)
        try:
            rc = subprocess.run([node, os.path.join(HERE, "mqtt_link.mjs")], env=env,
                                timeout=NODE_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            print("FAIL: mqtt_link.mjs did not finish within %d s" % NODE_TIMEOUT_S)
            rc = 1
        ok = rc == 0
        try:
            service.stop(expect_code=0)
        except AssertionError as e:
            print("FAIL: %s" % e)
            ok = False
    except Exception as e:  # noqa: B902 - any failure of the environment fails the test
        print("FAIL: %s" % e)
        ok = False
    finally:
        if not ok or os.environ.get("VERBOSE"):
            print("---- nats-server log (tail) ----\n" + nats.log())
            print("---- mosquitto log (tail) ----\n" + broker.log(30))
        if service.proc is not None:
            service.proc.kill()
            service.proc.wait()
        broker.stop()
        nats.stop()
        if os.environ.get("KEEP_TMP"):
            print("(kept %s)" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("mqtt_link: %s (%.1fs)" % ("PASS" if ok else "FAIL", time.monotonic() - t0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

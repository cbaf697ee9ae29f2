"""End-to-end launcher: a real Mosquitto (with its WebSocket listener) and the real callsignal
serving web/, then a browser test against them: `node tests/e2e/two_tabs.mjs` (the default), or
the one named by --script (render_bench.mjs: the online list's render benchmark).

The service gets RING_TIMEOUT_S=8 (the missed-call step waits for it; shorter is flaky when
Chromium shares a loaded machine, as the accept must land while it rings, and the step that
takes a picture of the "click to enable sound" switch and clicks it took more than 5 s once), a LiveKit key and secret
(so GET /token answers 200) and a LIVEKIT_URL pointing at a free, closed loopback port, so that
joining the media room fails fast and the page must say that no LiveKit server is reachable.

Usage: run_e2e.py [--auth open|jwt] [--broker mosquitto|nats] [--script two_tabs.mjs|render_bench.mjs].
With --broker nats (open mode only) the broker is Debian's nats-server 2.9 as one node with
JetStream, MQTT over TCP for the service and over WebSocket for the pages (run_mqtt_link.py's
Nats): MQTT 3.1.1 only, no '.' in topics, so the pages must fall back (docs/web-client.md). The broker runs the shipped broker-config/mosquitto.conf
(tests/integration's Broker: ports, persistence and logging swapped); with --auth jwt it runs the
shipped broker-config/mosquitto-jwt.conf with the callsignal_auth plugin (tests/security's JwtBroker),
the service runs with AUTH_MODE=jwt, and each person signs in with a user token minted here.

Exit codes: 0 pass, 1 fail, 77 skip (only when the Chromium binary is absent; CTest's
SKIP_RETURN_CODE). Environment: CALLSIGNAL_BIN, MOSQUITTO_BIN (as for tests/integration),
CALLSIGNAL_AUTH_PLUGIN (jwt only), CHROMIUM_BIN (default /usr/bin/chromium), NODE_BIN (default:
node on PATH), KEEP_TMP=1, VERBOSE=1 (print the service and broker logs even when passing).
"""

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests", "security"))

import harness  # noqa: E402  (needs the path above)

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
WEB = os.path.join(REPO, "web")
NODE_TIMEOUT_S = 150
LIVEKIT_KEY = "e2e-key"
RING_TIMEOUT_S = "8"


def missing_prerequisite():
    """A description of what is missing to run the browser test, or None."""
    if not os.path.exists(os.path.join(WEB, "node_modules", "playwright-core", "package.json")):
        return "web/node_modules/playwright-core is missing: run scripts/bootstrap"
    for lib in ("mqtt.min.js", "livekit-client.umd.js"):
        if not os.path.exists(os.path.join(WEB, "vendor", lib)):
            return "web/vendor/%s is missing: run scripts/bootstrap" % lib
    return None


class Stack:
    """Broker + service in one temporary directory, open or jwt mode."""

    def __init__(self, auth, broker="mosquitto"):
        self.tmp = tempfile.mkdtemp(prefix="callsignal-e2e-%s-" % auth)
        self.auth = auth
        self.closed_port = harness.free_port()  # bound once and released: nothing listens there
        env = {
            "WEB_ROOT": WEB,
            "RING_TIMEOUT_S": RING_TIMEOUT_S,
            "LIVEKIT_API_KEY": LIVEKIT_KEY,
            "LIVEKIT_API_SECRET": secrets.token_urlsafe(32),
            "LIVEKIT_URL": "ws://127.0.0.1:%d" % self.closed_port,
            "LOG_LEVEL": "debug",
        }
        if auth == "jwt":
            import security_support as ss  # only here: it needs CALLSIGNAL_AUTH_PLUGIN

            self.jwt_secret = ss.random_secret()
            self.broker = ss.JwtBroker(self.tmp, secret=self.jwt_secret)
            env.update({"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": self.jwt_secret,
                        "MQTT_USERNAME": ss.SERVICE_USERNAME, "MQTT_PASSWORD": self.broker.service_password})
            self.mint = lambda sub: ss.jwt_hs256(ss.claims(sub, 900), self.jwt_secret)
        elif broker == "nats":
            from run_mqtt_link import Nats, nats_binary  # this directory

            self.broker = Nats(self.tmp, nats_binary())
            self.mint = None
        else:
            self.broker = harness.Broker(self.tmp)
            self.mint = None
        if broker == "nats":
            env["MQTT_WS_URL"] = self.broker.ws_url
        else:
            env["MQTT_WS_URL"] = "ws://127.0.0.1:%d" % self.broker.wsport
        self.service = harness.Service(self.tmp, self.broker.url, env=env)

    def start(self):
        self.broker.start()
        self.service.start(wait="health")

    def stop(self):
        """Stops both; returns a list of problems (service exit code, sanitizer reports)."""
        problems = []
        try:
            self.service.stop(expect_code=0)
        except AssertionError as e:
            problems.append(str(e))
        self.broker.stop()
        return problems

    def logs(self):
        return "\n".join(["---- callsignal stderr (tail) ----", self.service.log(80),
                          "---- mosquitto log (tail) ----", self.broker.log(40)])

    def remove(self):
        if os.environ.get("KEEP_TMP"):
            print("(kept %s)" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--auth", choices=("open", "jwt"), default="open")
    ap.add_argument("--script", choices=("two_tabs.mjs", "render_bench.mjs"), default="two_tabs.mjs")
    ap.add_argument("--broker", choices=("mosquitto", "nats"), default="mosquitto")
    args = ap.parse_args()
    auth = args.auth
    if args.broker == "nats" and auth != "open":
        ap.error("--broker nats runs in open mode only (jwt mode needs Mosquitto's plugin)")

    if not os.path.exists(CHROMIUM):
        print("SKIP: no Chromium at %s (scripts/bootstrap installs it)" % CHROMIUM)
        return 77
    problem = missing_prerequisite()
    node = os.environ.get("NODE_BIN") or shutil.which("node")
    if not node:
        problem = problem or "node is not installed: run scripts/bootstrap"
    if problem:
        print("FAIL: " + problem)
        return 1

    t0 = time.monotonic()
    stack = None
    ok = False
    try:
        if args.broker == "nats":
            from run_mqtt_link import nats_binary  # this directory

            if not os.path.exists(nats_binary()):
                print("SKIP: no nats-server (Debian package nats-server)")
                return 77
        stack = Stack(auth, args.broker)
        stack.start()
        tag = secrets.token_hex(3)
        node_env = dict(os.environ)
        node_env.update({
            "E2E_BASE_URL": "http://127.0.0.1:%d" % stack.service.port,
            "E2E_MQTT_URL": "mqtt://127.0.0.1:%d" % stack.broker.port,
            "E2E_LIVEKIT_URL": "ws://127.0.0.1:%d" % stack.closed_port,
            "E2E_RING_TIMEOUT_S": RING_TIMEOUT_S,
            "E2E_AUTH_MODE": auth,
            "E2E_ALICE_ID": "alice-" + tag,
            "E2E_BOB_ID": "bob-" + tag,
            "E2E_CAROL_ID": "carol-" + tag,
            "E2E_DAVE_ID": "dave-" + tag,
            "CHROMIUM_BIN": CHROMIUM,
        })
        if stack.mint:
            node_env["E2E_ALICE_TOKEN"] = stack.mint(node_env["E2E_ALICE_ID"])
            node_env["E2E_BOB_TOKEN"] = stack.mint(node_env["E2E_BOB_ID"])
            node_env["E2E_CAROL_TOKEN"] = stack.mint(node_env["E2E_CAROL_ID"])
            node_env["E2E_DAVE_TOKEN"] = stack.mint(node_env["E2E_DAVE_ID"])
        print("e2e (%s mode): broker ws :%d, service http://127.0.0.1:%d (%.1fs to start)" % (
            auth, stack.broker.wsport, stack.service.port, time.monotonic() - t0), flush=True)
        try:
            rc = subprocess.run([node, os.path.join(HERE, args.script)], env=node_env,
                                timeout=NODE_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            print("FAIL: the browser test did not finish within %d s" % NODE_TIMEOUT_S)
            rc = 1
        ok = rc == 0
        problems = stack.stop()
        if problems:
            print("FAIL: " + "; ".join(problems))
            ok = False
    except Exception as e:  # noqa: B902 - any failure of the environment fails the test
        print("FAIL: %s" % e)
        ok = False
    finally:
        if stack is not None:
            if not ok or os.environ.get("VERBOSE"):
                print(stack.logs())
            stack.stop()
            stack.remove()
    print("e2e (%s mode): %s (%.1fs)" % (auth, "PASS" if ok else "FAIL", time.monotonic() - t0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

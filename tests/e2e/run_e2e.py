"""End-to-end launcher: a real Mosquitto (with its WebSocket listener) and the real callsignal
serving web/, then the browser test `node tests/e2e/two_tabs.mjs` against them.

The service gets RING_TIMEOUT_S=3 (the missed-call step waits for it), a LiveKit key and secret
(so GET /token answers 200) and a LIVEKIT_URL pointing at a free, closed loopback port, so that
joining the media room fails fast and the page must say that no LiveKit server is reachable.

Exit codes: 0 pass, 1 fail, 77 skip (only when the Chromium binary is absent; CTest's
SKIP_RETURN_CODE). Environment: CALLSIGNAL_BIN, MOSQUITTO_BIN (as for tests/integration),
CHROMIUM_BIN (default /usr/bin/chromium), NODE_BIN (default: node on PATH), KEEP_TMP=1,
VERBOSE=1 (print the service and broker logs even when passing).
"""

import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402  (needs the path above)

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
WEB = os.path.join(REPO, "web")
NODE_TIMEOUT_S = 150


def missing_prerequisite():
    """A description of what is missing to run the browser test, or None."""
    if not (os.path.exists(os.path.join(WEB, "node_modules", "playwright-core", "package.json"))):
        return "web/node_modules/playwright-core is missing: run scripts/bootstrap"
    for lib in ("mqtt.min.js", "livekit-client.umd.js"):
        if not os.path.exists(os.path.join(WEB, "vendor", lib)):
            return "web/vendor/%s is missing: run scripts/bootstrap" % lib
    return None


def main():
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
    env = harness.Env(name="e2e-two-tabs", start_service=False)
    ok = False
    try:
        closed_port = harness.free_port()  # bound once and released: nothing listens there
        env.service.env.update({
            "WEB_ROOT": WEB,
            "MQTT_WS_URL": "ws://127.0.0.1:%d" % env.broker.wsport,
            "RING_TIMEOUT_S": "3",
            "LIVEKIT_API_KEY": "e2e-key",
            "LIVEKIT_API_SECRET": "e2e-secret-that-is-long-enough-for-hs256-0123456789",
            "LIVEKIT_URL": "ws://127.0.0.1:%d" % closed_port,
            "LOG_LEVEL": "debug",
        })
        env.service.start()
        node_env = dict(os.environ)
        node_env.update({
            "E2E_BASE_URL": "http://127.0.0.1:%d" % env.service.port,
            "E2E_MQTT_WS_URL": "ws://127.0.0.1:%d" % env.broker.wsport,
            "E2E_LIVEKIT_URL": "ws://127.0.0.1:%d" % closed_port,
            "E2E_LIVEKIT_API_KEY": "e2e-key",
            "E2E_RING_TIMEOUT_S": "3",
            "CHROMIUM_BIN": CHROMIUM,
        })
        print("e2e: broker ws :%d, service http://127.0.0.1:%d (%.1fs to start)" % (
            env.broker.wsport, env.service.port, time.monotonic() - t0), flush=True)
        try:
            rc = subprocess.run([node, os.path.join(HERE, "two_tabs.mjs")], env=node_env,
                                timeout=NODE_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            print("FAIL: the browser test did not finish within %d s" % NODE_TIMEOUT_S)
            rc = 1
        ok = rc == 0
        problems = env.close(check_exit=True)
        if problems:
            print("FAIL: " + "; ".join(problems))
            ok = False
    except Exception as e:  # noqa: B902 - any failure of the environment fails the test
        print("FAIL: %s" % e)
        ok = False
    finally:
        if not ok or os.environ.get("VERBOSE"):
            print(env.logs())
        env.close(check_exit=False)
        env.remove()
    print("e2e.two_tabs: %s (%.1fs)" % ("PASS" if ok else "FAIL", time.monotonic() - t0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

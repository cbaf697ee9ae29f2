#!/usr/bin/python3
"""Command line and configuration: --help lists every env var and flag of the spec and exits 0; bad
values exit 2 with a message; flags win over env (both --flag value and --flag=value); the open-mode
guard against non-loopback HTTP_HOST and its --insecure-public override."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

NO_SERVICE = {"start_broker": False, "start_service": False}


def flag_of(var):
    return "--" + var.lower().replace("_", "-")


def run(env_vars=None, args=(), timeout=5):
    """Run the binary to completion with a scrubbed environment; (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in h.CONFIG_ENV_VARS}
    env.update({"PORT": str(h.free_port()), "MQTT_URL": "tcp://127.0.0.1:%d" % h.free_port()})
    env.update(env_vars or {})
    try:
        p = subprocess.run([os.environ["CALLSIGNAL_BIN"]] + list(args), env=env, capture_output=True,
                           text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError("callsignal %s with %s kept running (expected it to exit)" % (
            " ".join(args), env_vars))
    for marker in h.SANITIZER_MARKERS:
        check(marker not in p.stderr, "sanitizer report:\n" + p.stderr[-3000:])
    return p.returncode, p.stdout, p.stderr


@h.options(**NO_SERVICE)
def test_help_lists_every_env_var_and_flag_and_exits_0(env):
    code, out, err = run(args=["--help"])
    eq(code, 0, "exit code of --help")
    text = out + err
    missing = [v for v in h.CONFIG_ENV_VARS if v not in text]
    missing += [flag_of(v) for v in h.CONFIG_ENV_VARS if flag_of(v) not in text]
    if "--insecure-public" not in text:
        missing.append("--insecure-public")
    check(not missing, "--help does not mention: %s" % ", ".join(missing))


@h.options(**NO_SERVICE)
def test_bad_values_exit_2_with_a_message(env):
    cases = [
        ({"PORT": "70000"}, []), ({"PORT": "http"}, []), ({}, ["--port", "-1"]),
        ({"RING_TIMEOUT_S": "soon"}, []), ({"RING_TIMEOUT_S": "-1"}, []),
        ({"OFFLINE_GRACE_S": "1x"}, []), ({"CALL_RETENTION_S": "abc"}, []),
        ({"TOKEN_TTL_S": "ten"}, []), ({"LOG_LEVEL": "chatty"}, []), ({"AUTH_MODE": "magic"}, []),
        ({"START_RATE_PER_MIN": "-3"}, []), ({}, ["--no-such-flag"]), ({}, ["--port"]),
        ({}, ["--ring-timeout-s=never"]),
    ]
    wrong = []
    for env_vars, args in cases:
        code, out, err = run(env_vars, args)
        if code != 2 or not err.strip():
            wrong.append("%s %s -> exit %s, stderr %r" % (env_vars, args, code, err.strip()[-120:]))
    check(not wrong, "bad configuration not refused with exit 2 and a message:\n  " + "\n  ".join(wrong))


@h.options(**NO_SERVICE)
def test_non_loopback_http_host_refused_in_open_mode(env):
    code, out, err = run({"HTTP_HOST": "0.0.0.0"})
    eq(code, 2, "exit code for HTTP_HOST=0.0.0.0 in open mode")
    check("insecure-public" in err or "loopback" in err, "message does not explain: %r" % err[-300:])


@h.options(service_env={"HTTP_HOST": "0.0.0.0"}, service_args=["--insecure-public"])
def test_insecure_public_allows_it_with_a_warning(env):
    eq(env.get("/health").status, 200, "health")
    check(any(" WARN " in line for line in env.service.stderr().splitlines()),
          "no WARN line when binding a public address with --insecure-public")


@h.options(service_env={"HTTP_HOST": "localhost"})
def test_localhost_http_host_is_loopback(env):
    eq(env.get("/health").status, 200, "health")


@h.options(start_service=False)
def test_flags_win_over_env_both_syntaxes(env):
    for style in ("separate", "equals"):
        port = h.free_port()
        args = ["--port", str(port)] if style == "separate" else ["--port=%d" % port]
        s = env.spawn_service(env={"RING_TIMEOUT_S": "30"}, wait=None,
                              args=args + ["--ring-timeout-s=0.3"] if style == "equals"
                              else args + ["--ring-timeout-s", "0.3"])
        h.wait_until(lambda: _health(port) == 200, 10, what="ready on the --port port (%s)" % style)
        check(_health(s.port) is None, "service also answers on the PORT env port (%s)" % style)
        a, b = env.client(env.uid("a")), env.client(env.uid("b"))
        h.wait_until(lambda: _has_users(port, a.user_id, b.user_id), 5, what="users online")
        t0 = time.monotonic()
        r = h.http_request(port, "POST", "/calls/start", json_body={"callerId": a.user_id,
                                                                     "receiverId": b.user_id})
        eq(r.status, 200, "start")
        a.expect_event("END_CALL", timeout=3, call_id=r.json["id"])
        check(time.monotonic() - t0 < 2, "--ring-timeout-s did not override RING_TIMEOUT_S (%s)" % style)
        s.stop()


def _health(port):
    """GET /ready: connected to the broker and open for calls (/health only says it serves)."""
    try:
        return h.http_request(port, "GET", "/ready", timeout=1).status
    except OSError:
        return None


def _has_users(port, *ids):
    r = h.http_request(port, "GET", "/users")
    listed = {u["id"] for u in r.json}
    return all(i in listed for i in ids)


@h.options(service_env={"MQTT_URL": "tcp://127.0.0.1:1"}, start_service=False)
def test_mqtt_url_flag_wins_over_env(env):
    s = env.spawn_service(env={"MQTT_URL": "tcp://127.0.0.1:1"}, args=["--mqtt-url", env.broker.url])
    eq(h.http_request(s.port, "GET", "/ready").status, 200, "ready with --mqtt-url")


MQTT_PW = "mqtt-pw-7f3a9c1e5b"
JWT_SECRET = "jwt-secret-4e8d2a6c0b9f1357"
LK_SECRET = "lk-secret-a1b2c3d4e5f60718293a4b5c"


@h.options(service_env={"MQTT_USERNAME": "callsignal-svc", "MQTT_PASSWORD": MQTT_PW, "AUTH_MODE": "jwt",
                        "AUTH_JWT_SECRET": JWT_SECRET, "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": LK_SECRET,
                        "LOG_LEVEL": "debug"})
def test_secrets_never_appear_in_the_log(env):
    eq(env.get("/config").json.get("authMode"), "jwt", "authMode")
    env.get("/users")  # 401 without a token
    env.get("/token?room=x&id=y")
    env.broker.restart()  # reconnect path logs the broker URL again
    h.wait_until(lambda: env.get("/ready").status == 200, 12, interval=0.1, what="reconnect")
    env.service.stop()
    text = env.service.stderr()
    leaked = [name for name, secret in (("MQTT_PASSWORD", MQTT_PW), ("AUTH_JWT_SECRET", JWT_SECRET),
                                         ("LIVEKIT_API_SECRET", LK_SECRET)) if secret in text]
    check(not leaked, "secrets in the service log: %s" % ", ".join(leaked))


if __name__ == "__main__":
    h.main(shared=False)

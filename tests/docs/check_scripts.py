#!/usr/bin/python3
"""Checks the helper scripts' command lines: what a new user sees before anything is set up.

scripts/user-token: --help prints its usage and exits 0; no argument prints the usage and exits 2;
with no jwt-mode runtime directory it says that jwt mode was never started and how to start it
(exit 1, no Python traceback or bare `cat` error); with a runtime directory it prints a token that
verifies with that directory's secret. scripts/bootstrap: --help prints its usage and exits 0
without installing anything; an unknown argument exits 2. scripts/start-cluster: --help names
every environment variable it reads and exits 0, a bad instance count exits 2 (neither starts
anything; integration.start_cluster runs the script). Called by CTest (docs.scripts).

Usage: check_scripts.py REPO_ROOT
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time

failures = []


def expect(cond, msg):
    print(("ok:   " if cond else "FAIL: ") + msg)
    if not cond:
        failures.append(msg)


def run(cmd, env=None, timeout=30):
    full = dict(os.environ)
    full.update(env or {})
    r = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    token_script = os.path.join(root, "scripts", "user-token")
    bootstrap = os.path.join(root, "scripts", "bootstrap")

    code, out, err = run([token_script, "--help"])
    expect(code == 0 and out.startswith("usage: scripts/user-token USER_ID"),
           f"user-token --help: usage on stdout, exit 0 (got {code}, {out!r}{err!r})")
    code, out, err = run([token_script])
    expect(code == 2 and "usage: scripts/user-token" in err,
           f"user-token without USER_ID: usage on stderr, exit 2 (got {code}, {err!r})")

    with tempfile.TemporaryDirectory(prefix="callsignal-run-") as run_dir:
        code, out, err = run([token_script, "alice"], env={"CALLSIGNAL_RUN_DIR": run_dir})
        expect(code == 1 and "jwt mode was never started" in err and "AUTH_MODE=jwt scripts/start" in err
               and out == "", f"user-token before jwt mode ran: a clear message, exit 1 (got {code}, {err!r})")
        os.makedirs(os.path.join(run_dir, "secrets"))
        secret = "a-test-secret-of-this-run"
        with open(os.path.join(run_dir, "secrets", "jwt_secret"), "w") as f:
            f.write(secret)
        code, out, err = run([token_script, "alice", "120"], env={"CALLSIGNAL_RUN_DIR": run_dir})
        parts = out.strip().split(".")
        ok = code == 0 and len(parts) == 3
        if ok:
            sig = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
            body = json.loads(b64url_decode(parts[1]))
            ok = (sig == b64url_decode(parts[2]) and body.get("sub") == "alice"
                  and 0 < body.get("exp", 0) - time.time() <= 121)
        expect(ok, f"user-token alice 120 with a runtime directory: a token signed with its secret "
                   f"(got {code}, {out!r}{err!r})")

    code, out, err = run([bootstrap, "--help"], timeout=10)
    expect(code == 0 and out.startswith("usage: scripts/bootstrap") and "installing" not in out + err,
           f"bootstrap --help: usage, exit 0, nothing installed (got {code}, {out!r}{err!r})")
    code, out, err = run([bootstrap, "--bogus"], timeout=10)
    expect(code == 2 and "usage: scripts/bootstrap" in err,
           f"bootstrap with an unknown argument: usage on stderr, exit 2 (got {code}, {err!r})")

    cluster = os.path.join(root, "scripts", "start-cluster")
    code, out, err = run([cluster, "--help"], timeout=10)
    names = ("REDIS_PORT", "MQTT_PORT", "MQTT_WS_PORT", "HTTP_PORT", "CLUSTER_DIR", "CALLSIGNAL_BIN")
    expect(code == 0 and out.startswith("usage: scripts/start-cluster") and all(n in out for n in names),
           f"start-cluster --help: usage with {', '.join(names)}, exit 0 (got {code}, {out!r}{err!r})")
    code, out, err = run([cluster, "x"], timeout=10)
    expect(code == 2 and "see --help" in err, f"start-cluster x: exit 2 (got {code}, {err!r})")

    print("scripts ok" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Validates docker-compose.yml with the compose client, without an engine.

Runs `docker compose config -q` (or `docker-compose config -q`), then checks
in the resolved configuration that the service's HTTP port is published on
loopback only (the service runs with --insecure-public inside compose).
No image is pulled or built. Exits 77 (CTest skip) when no compose client
is installed.

Usage: check_compose.py REPO_ROOT
"""
import os
import re
import shutil
import subprocess
import sys

SKIP = 77


def compose_command():
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        try:
            r = subprocess.run(cmd + ["version"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return cmd
    return None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    cmd = compose_command()
    if cmd is None:
        print("skipped: neither `docker compose` nor `docker-compose` is installed")
        return SKIP
    env = dict(os.environ)
    env.pop("COMPOSE_FILE", None)
    env.pop("COMPOSE_PROJECT_NAME", None)
    base = cmd + ["-f", os.path.join(root, "docker-compose.yml")]
    r = subprocess.run(base + ["config", "-q"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=40)
    if r.returncode != 0:
        print(f"FAIL: {' '.join(cmd)} config -q exited {r.returncode}\n{r.stdout}{r.stderr}")
        return 1
    r = subprocess.run(base + ["config"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=40)
    out = r.stdout
    # compose v1 prints "127.0.0.1:4002:4002/tcp"; v2 the long form with host_ip.
    loopback = re.search(r"127\.0\.0\.1:4002:4002", out) or re.search(
        r"host_ip: 127\.0\.0\.1\s*\n\s*target: 4002", out) or re.search(
        r"target: 4002[^\n]*\n(?:\s+\w+:.*\n)*?\s+host_ip: 127\.0\.0\.1", out)
    if r.returncode != 0 or not loopback:
        print("FAIL: service port 4002 is not published on 127.0.0.1 only\n" + out + r.stderr)
        return 1
    if re.search(r"(?<![\d.])0\.0\.0\.0:4002", out):
        print("FAIL: port 4002 published on all interfaces\n" + out)
        return 1
    print(f"ok: {' '.join(cmd)} config accepted docker-compose.yml; 4002 on loopback")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Validates docker-compose.yml with the compose client, without an engine.

Runs `docker compose config -q` (or `docker-compose config -q`) for each
profile (open, jwt, redis), then checks in the resolved configuration that the
service's HTTP port is published on loopback only (the open-mode service
runs with --insecure-public inside compose), that the jwt profile runs
the service in jwt mode against the plugin broker image, and that the redis
profile runs two instances on Redis (both on loopback ports) with Redis's
append-only file synced on every write. No container engine runs where the
suite runs: the profiles are only read, never started. Also reads the
Dockerfiles: multi-stage builds that need nothing from the host but the
sources (the web client's libraries fetched by npm in a stage of their
own), and a HEALTHCHECK. No image is pulled or built: there is no image
registry in CI. Exits 77 (CTest skip) when no compose client is installed,
after the Dockerfile checks passed.

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


PROFILES = ["open", "jwt", "redis"]


def check_dockerfiles(root):
    """Failures of the static checks on service/Dockerfile and the jwt broker's Dockerfile."""
    failures = []

    def read(*parts):
        try:
            return open(os.path.join(root, *parts)).read()
        except OSError as e:
            failures.append(f"{'/'.join(parts)}: {e.strerror}")
            return ""

    service = read("service", "Dockerfile")
    broker = read("packaging", "docker", "broker-jwt.Dockerfile")
    if len(re.findall(r"(?m)^FROM ", service)) < 3:
        failures.append("service/Dockerfile: expected a web stage, a build stage and a runtime stage")
    if not re.search(r"(?m)^RUN .*npm ci", service) or "COPY --from=web" not in service:
        failures.append("service/Dockerfile: the web client's libraries are not fetched by npm ci in a stage")
    if re.search(r"(?m)^COPY web/ ", service) or re.search(r"(?m)^COPY (?!--from).*web/vendor", service):
        failures.append("service/Dockerfile: copies web/ from the host (needs npm there first)")
    if not re.search(r"(?m)^HEALTHCHECK .*\\?$", service) or "/ready" not in service:
        failures.append("service/Dockerfile: no HEALTHCHECK on /ready")
    runtime = re.split(r"(?m)^FROM ", broker)[-1]
    if not runtime.startswith("debian:") or not re.search(r"apt-get install[^&]*\bmosquitto\b", runtime):
        failures.append("broker-jwt.Dockerfile: not a Debian image with Debian's mosquitto")
    if "libcallsignal_auth.so" not in broker:
        failures.append("broker-jwt.Dockerfile: the plugin is not in the image")
    return failures


def check_profile(base, profile, root, env):
    """Failures of `config` with one profile active."""
    cmd = base[:-2] + ["--profile", profile] + base[-2:]
    r = subprocess.run(cmd + ["config", "-q"], cwd=root, env=env, capture_output=True, text=True, timeout=40)
    if r.returncode != 0:
        return [f"profile {profile}: config -q exited {r.returncode}\n{r.stdout}{r.stderr}"]
    r = subprocess.run(cmd + ["config"], cwd=root, env=env, capture_output=True, text=True, timeout=40)
    out = r.stdout
    failures = []
    # compose v1 prints "127.0.0.1:4002:4002/tcp"; v2 the long form with host_ip.
    loopback = re.search(r"127\.0\.0\.1:4002:4002", out) or re.search(
        r"host_ip: 127\.0\.0\.1\s*\n\s*target: 4002", out) or re.search(
        r"target: 4002[^\n]*\n(?:\s+\w+:.*\n)*?\s+host_ip: 127\.0\.0\.1", out)
    if r.returncode != 0 or not loopback:
        failures.append(f"profile {profile}: service port 4002 is not published on 127.0.0.1\n" + out + r.stderr)
    if re.search(r"(?<![\d.])0\.0\.0\.0:\d+:", out):
        failures.append(f"profile {profile}: a port is published on all interfaces\n" + out)
    if profile == "jwt" and not (re.search(r"AUTH_MODE[=:] ?'?jwt", out) and "broker-jwt.Dockerfile" in out):
        failures.append("profile jwt: the service is not in jwt mode with the plugin broker image\n" + out)
    if profile == "redis":
        failures += check_redis_profile(out)
    return failures


def check_redis_profile(out):
    """The redis profile, as resolved: two instances on Redis, the second one's port on loopback
    too, Redis writing every change to its append-only file before acknowledging it. Only read
    here: no container engine runs where the suite runs, so the profile is never started."""
    failures = []
    if len(re.findall(r"STATE_ENGINE[=:] ?'?redis", out)) != 2 or len(re.findall(r"REDIS_URL[=:] ?'?redis://", out)) != 2:
        failures.append("profile redis: not two instances with STATE_ENGINE=redis and a REDIS_URL\n" + out)
    if not (re.search(r"127\.0\.0\.1:4003:4002", out) or re.search(r"host_ip: 127\.0\.0\.1\s*\n(?:\s+\w+:.*\n)*?\s+published: \"?4003", out)):
        failures.append("profile redis: the second instance is not published on 127.0.0.1:4003\n" + out)
    flat = re.sub(r"\s+-\s+", " ", out).replace('"', "")
    if not re.search(r"--appendonly yes --appendfsync always", flat):
        failures.append("profile redis: Redis runs without appendonly yes and appendfsync always\n" + out)
    return failures


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    failures = check_dockerfiles(root)
    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print("ok: Dockerfiles are multi-stage, fetch the web libraries themselves, have a HEALTHCHECK")
    cmd = compose_command()
    if cmd is None:
        print("skipped: neither `docker compose` nor `docker-compose` is installed")
        return SKIP
    env = dict(os.environ)
    env.pop("COMPOSE_FILE", None)
    env.pop("COMPOSE_PROJECT_NAME", None)
    env.pop("COMPOSE_PROFILES", None)
    base = cmd + ["-f", os.path.join(root, "docker-compose.yml")]
    failures = []
    for profile in PROFILES:
        failures += check_profile(base, profile, root, env)
    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print(f"ok: {' '.join(cmd)} config accepted docker-compose.yml with profiles {', '.join(PROFILES)};"
          " 4002 on loopback; images not built or run (no image registry here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

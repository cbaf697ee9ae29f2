#!/usr/bin/python3
"""Checks `cmake --install`: files land where packaging/systemd and docs say, and the units verify.

Installs BUILD_DIR into a fresh temporary prefix and checks that the binary (which then answers
--help), the broker plugin, the three broker configs, the web client, the docs and both systemd
units are there, with the units naming the installed paths. With --units it runs
`systemd-analyze verify` on the installed units instead (exit 77, CTest skip, with the reason
printed, where systemd-analyze is missing); any warning it prints about our units is a failure.
Called by CTest (tests/docs/CMakeLists.txt: docs.install, docs.systemd_units).

Usage: check_install.py REPO_ROOT BUILD_DIR [--units]
"""
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77

EXPECTED = [
    "bin/callsignal",
    "lib/callsignal/libcallsignal_auth.so",
    "share/callsignal/broker-config/mosquitto.conf",
    "share/callsignal/broker-config/mosquitto-jwt.conf",
    "share/callsignal/broker-config/mosquitto-tls.conf",
    "share/callsignal/web/index.html",
    "share/callsignal/web/app.js",
    "share/callsignal/web/style.css",
    "share/doc/callsignal/README.md",
    "share/doc/callsignal/docs/api.md",
    "lib/systemd/system/callsignal.service",
    "lib/systemd/system/callsignal-broker.service",
]
NOT_INSTALLED = ["share/callsignal/web/node_modules", "share/callsignal/web/package.json", "share/callsignal/web/test"]
UNITS = ["callsignal.service", "callsignal-broker.service"]


def install(build, prefix):
    r = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: cmake --install exited {r.returncode}\n{r.stdout}{r.stderr}")


def check_files(prefix):
    failures = []
    for rel in EXPECTED:
        if not os.path.isfile(os.path.join(prefix, rel)):
            failures.append(f"{rel}: not installed")
    for rel in NOT_INSTALLED:
        if os.path.lexists(os.path.join(prefix, rel)):
            failures.append(f"{rel}: installed, but is a development file")
    binary = os.path.join(prefix, "bin/callsignal")
    if os.path.isfile(binary):
        r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
        if r.returncode != 0 or "--mqtt-url" not in r.stdout + r.stderr:
            failures.append(f"installed bin/callsignal --help exited {r.returncode}")
    unit_dir = os.path.join(prefix, "lib/systemd/system")
    wanted = {
        "callsignal.service": [f"ExecStart={prefix}/bin/callsignal",
                               f"WEB_ROOT={prefix}/share/callsignal/web"],
        "callsignal-broker.service": [f"-c {prefix}/share/callsignal/broker-config/mosquitto.conf"],
    }
    for unit, needles in wanted.items():
        path = os.path.join(unit_dir, unit)
        text = open(path).read() if os.path.isfile(path) else ""
        for needle in needles:
            if needle not in text:
                failures.append(f"{unit}: does not contain {needle!r}")
        if "@" in "".join(l for l in text.splitlines() if not l.startswith("#")):
            failures.append(f"{unit}: an @VARIABLE@ was left unfilled")
    return failures


def check_units(prefix):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        print("skipped: systemd-analyze is not installed (Debian package systemd)")
        return None
    paths = [os.path.join(prefix, "lib/systemd/system", u) for u in UNITS]
    r = subprocess.run([tool, "verify"] + paths, capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    print(f"systemd-analyze verify exited {r.returncode}" + (f":\n{out}" if out else ", no remarks"))
    failures = []
    if r.returncode != 0:
        failures.append(f"systemd-analyze verify exited {r.returncode}")
    # Unknown keys and bad values are only warnings; any remark about our units is a defect.
    for line in out.splitlines():
        if any(u in line for u in UNITS):
            failures.append(f"systemd-analyze: {line}")
    return failures


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    build = sys.argv[2]
    units = "--units" in sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix="callsignal-install-") as prefix:
        install(build, prefix)
        failures = check_units(prefix) if units else check_files(prefix)
        if failures is None:
            return SKIP
        if not units:
            print(f"installed into a temporary prefix: {len(EXPECTED)} files checked")
    for f in failures:
        print("FAIL:", f)
    print("ok" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

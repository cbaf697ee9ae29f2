#!/usr/bin/env python3
"""run_with_redis.py - runs a unit test binary against a real Redis.

Starts Debian's redis-server on a free loopback port, with no persistence
and a directory of its own, passes its URL to the test as
CALLSIGNAL_TEST_REDIS_URL, stops it, and exits with the test's status.
CTest calls it for unit.store_redis (tests/unit/CMakeLists.txt).

usage: run_with_redis.py TEST_BINARY [ARGS...]
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    # one rule for picking ports, the test harness's: below the kernel's ephemeral range
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
    from ports import free_port as pick
    return pick()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    server = shutil.which("redis-server")
    if not server:
        sys.exit("run_with_redis: redis-server not found (scripts/bootstrap installs it)")
    workdir = tempfile.mkdtemp(prefix="callsignal-redis-")
    port = free_port()
    redis = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--daemonize", "no", "--logfile", os.path.join(workdir, "redis.log")],
        stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if redis.poll() is not None or time.monotonic() > deadline:
                sys.exit("run_with_redis: redis-server did not start")
            time.sleep(0.05)
        env = dict(os.environ, CALLSIGNAL_TEST_REDIS_URL=f"redis://127.0.0.1:{port}")
        rc = subprocess.call(sys.argv[1:], env=env)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()

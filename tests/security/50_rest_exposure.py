#!/usr/bin/python3
"""Exposure: the open (unauthenticated) mode refuses to serve on a non-loopback address unless
--insecure-public is given (and then warns); jwt mode may bind any address.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import h  # noqa: E402


def open_broker(sc):
    b = h.Broker(sc.tmp)
    sc.add(b, b.stop)
    b.start()
    return b


def service(sc, broker, env, args=(), name="callsignal"):
    svc = h.Service(sc.tmp, broker.url, env=env, args=args, name=name)
    sc.add(svc, lambda: svc.stop(expect_code=None))
    return svc


def expect_refusal(svc, what):
    svc.start(wait=None)
    try:
        code = svc.proc.wait(5)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s: the service is still running after 5 s" % what)
    svc.proc = None
    h.check(code != 0, "%s: exit code 0" % what)
    h.eq(code, 2, "%s: exit code (bad configuration)" % what)
    err = svc.stderr()
    h.check("insecure-public" in err, "%s: the message does not mention --insecure-public:\n%s" % (what, err[-500:]))


def test_open_mode_refuses_a_public_address(sc):
    b = open_broker(sc)
    expect_refusal(service(sc, b, {"HTTP_HOST": "0.0.0.0"}, name="env"), "HTTP_HOST=0.0.0.0")
    expect_refusal(service(sc, b, {}, args=["--http-host", "0.0.0.0"], name="flag"), "--http-host 0.0.0.0")
    expect_refusal(service(sc, b, {}, args=["--http-host=::"], name="ipv6"), "--http-host=::")
    expect_refusal(service(sc, b, {"HTTP_HOST": "0.0.0.0", "AUTH_MODE": "open"}, name="explicit"),
                   "AUTH_MODE=open HTTP_HOST=0.0.0.0")


def test_open_mode_serves_a_public_address_with_insecure_public(sc):
    b = open_broker(sc)
    svc = service(sc, b, {"HTTP_HOST": "0.0.0.0"}, args=["--insecure-public"])
    svc.start(wait="health")  # 0.0.0.0 includes loopback, where the harness asks
    h.eq(h.http_request(svc.port, "GET", "/users").status, 200, "GET /users")
    warns = [line for line in svc.stderr().splitlines() if " WARN " in line]
    h.check(warns, "no WARN line about serving the open mode publicly:\n" + svc.stderr()[-800:])
    h.eq(svc.stop(), 0, "exit code on SIGTERM")


def test_open_mode_on_loopback_starts(sc):
    b = open_broker(sc)
    svc = service(sc, b, {"HTTP_HOST": "127.0.0.1"})
    svc.start(wait="health")
    h.eq(svc.stop(), 0, "exit code on SIGTERM")


def test_jwt_mode_may_bind_a_public_address(sc):
    b = open_broker(sc)
    svc = service(sc, b, {"HTTP_HOST": "0.0.0.0", "AUTH_MODE": "jwt", "AUTH_JWT_SECRET": s.random_secret()})
    svc.start(wait="health")
    r = h.http_request(svc.port, "GET", "/users")
    h.eq(r.status, 401, "GET /users without a token")
    h.eq(svc.stop(), 0, "exit code on SIGTERM")


if __name__ == "__main__":
    s.run()

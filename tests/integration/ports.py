"""Loopback ports for the tests and the benchmark: one rule for picking them.

Owns free_port(); harness.py re-exports it, bench/run and tests/unit/run_with_redis.py import it.
Needs nothing outside the standard library."""

import random
import socket


_given_ports = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A currently free loopback TCP port, below the kernel's ephemeral range.

    A port the kernel hands out for port 0 is one it also hands to outgoing connections:
    between our release and the server's bind, any client of any test running alongside
    may take it (seen: a service that could not listen). So pick at random from the ports
    under the ephemeral range, never twice in this process, and check that it binds now."""
    low, _ = _ephemeral_range()
    top = min(low - 1, 32767) if low > 12000 else 32767
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(10000, top)
        if port in _given_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given_ports.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

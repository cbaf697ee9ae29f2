#!/usr/bin/python3
"""Where the shipped broker configs listen. Each test starts Mosquitto from one of them
(broker-config/mosquitto.conf, mosquitto-jwt.conf, mosquitto-tls.conf; ports swapped) and checks
it two ways:

- the socket table (`ss -ltnp`) lists the broker's listening sockets: those meant for this machine
  only are on a loopback address, none on a wildcard or another address;
- from a network namespace this test creates (a veth pair with a private /30), connecting to the
  host side's address on each port: the loopback-only ones must not answer. A positive control in
  the same namespace, a socket listening on every interface of the host, must answer, so the path
  is proven to work (and mosquitto-tls.conf's TLS listeners, public by design, answer too).

Without CAP_NET_ADMIN (no `ip netns`), the namespace part is skipped with a printed reason; the
socket table check still runs. Run by CTest as security.05_broker_listeners.
"""

import os
import random
import secrets
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import security_support as s  # noqa: E402
from security_support import h  # noqa: E402

LOOPBACK = ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]")

# ---------------------------------------------------------------------------------------------
# the socket table


def listening(pid):
    """{port: [local address, ...]} of the TCP sockets process pid listens on (ss -ltnp)."""
    out = subprocess.run(["ss", "-ltnpH"], check=True, stdout=subprocess.PIPE, text=True).stdout
    found = {}
    for line in out.splitlines():
        if "pid=%d," % pid not in line:
            continue
        local = line.split()[3]
        addr, port = local.rsplit(":", 1)
        found.setdefault(int(port), []).append(addr)
    return found


def check_socket_table(broker, loopback_ports, public_ports=()):
    """The problems found in the broker's listening sockets (a list of strings)."""
    table = listening(broker.proc.pid)
    print("    ss -ltnp, the broker's sockets: %s" % ", ".join(
        "%s:%d" % (a, p) for p in sorted(table) for a in table[p]))
    problems = []
    for port in list(loopback_ports) + list(public_ports):
        if port not in table:
            problems.append("no listening socket on port %d in the socket table" % port)
    for port in loopback_ports:
        wrong = [a for a in table.get(port, []) if a not in LOOPBACK]
        if wrong:
            problems.append("port %d listens on %s, not on loopback only" % (port, ", ".join(wrong)))
    extra = set(table) - set(loopback_ports) - set(public_ports)
    if extra:
        problems.append("unexpected listening ports %s" % sorted(extra))
    return problems


# ---------------------------------------------------------------------------------------------
# a network namespace


def run_ip(*args):
    subprocess.run(["ip"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Netns:
    """A network namespace joined to this one by a veth pair with addresses in a private /30:
    .host_addr (this side) and .ns_addr (inside). close() deletes both."""

    PROBE = ("import socket, sys\n"
             "s = socket.socket()\n"
             "s.settimeout(2.0)\n"
             "try:\n"
             "    s.connect((sys.argv[1], int(sys.argv[2])))\n"
             "    print('open')\n"
             "except ConnectionRefusedError:\n"
             "    print('refused')\n"
             "except OSError as e:\n"
             "    print('no answer (%s)' % e)\n")

    def __init__(self):
        tag = secrets.token_hex(3)
        self.name = "callsignal-" + tag
        self.host_if, self.ns_if = "csh" + tag, "csn" + tag
        base = "10.%d.%d.%d" % (random.randint(200, 250), random.randint(0, 255), 4 * random.randint(0, 63))
        prefix = base.rsplit(".", 1)[0]
        last = int(base.rsplit(".", 1)[1])
        self.host_addr, self.ns_addr = "%s.%d" % (prefix, last + 1), "%s.%d" % (prefix, last + 2)
        self.created = False
        try:
            run_ip("netns", "add", self.name)
            self.created = True
            run_ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            run_ip("link", "set", self.ns_if, "netns", self.name)
            run_ip("addr", "add", self.host_addr + "/30", "dev", self.host_if)
            run_ip("link", "set", self.host_if, "up")
            run_ip("-n", self.name, "addr", "add", self.ns_addr + "/30", "dev", self.ns_if)
            run_ip("-n", self.name, "link", "set", self.ns_if, "up")
            run_ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def connect(self, port):
        """'open', 'refused' or 'no answer (...)' for a TCP connect from inside to host_addr:port."""
        r = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", self.PROBE,
                            self.host_addr, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=20)
        h.check(r.returncode == 0, "probe in the namespace failed: %s" % r.stderr.strip())
        return r.stdout.strip()

    def close(self):
        subprocess.run(["ip", "link", "del", self.host_if], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.created = False


def netns_or_skip(sc):
    """A Netns closed with the scratch, or None (reason printed) when one cannot be made here."""
    try:
        ns = Netns()
    except (OSError, subprocess.CalledProcessError) as e:
        reason = getattr(e, "stderr", None) or str(e)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        print("    skipped the network-namespace check: cannot create one (%s)" % reason.strip())
        return None
    return sc.add(ns, ns.close)


def check_from_netns(sc, closed_ports, open_ports=()):
    """From a new namespace: the positive control (a socket listening on every interface here)
    and open_ports must answer on the host side's veth address, closed_ports must not. Returns
    the problems found (the control failing is an error at once: the check would prove nothing)."""
    ns = netns_or_skip(sc)
    if ns is None:
        return []
    control = socket.socket()
    sc.add(control, control.close)
    control.bind(("0.0.0.0", 0))
    control.listen(4)
    port = control.getsockname()[1]
    got = ns.connect(port)
    print("    from namespace %s to %s: control port %d (all interfaces): %s" % (
        ns.ns_addr, ns.host_addr, port, got))
    h.eq(got, "open", "positive control: a listener on all interfaces, reached from the namespace")
    problems = []
    for p in open_ports:
        got = ns.connect(p)
        print("    from the namespace, public port %d: %s" % (p, got))
        if got != "open":
            problems.append("public listener %d not reached from the namespace: %s" % (p, got))
    for p in closed_ports:
        got = ns.connect(p)
        print("    from the namespace, loopback-only port %d: %s" % (p, got))
        if got == "open":
            problems.append("port %d is reachable from another network namespace" % p)
    return problems


def expect_no_problems(*problem_lists):
    problems = [p for lst in problem_lists for p in lst]
    h.check(not problems, "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# the three shipped configs


def test_open_mode_listeners_are_loopback_only(sc):
    b = h.Broker(sc.tmp)
    sc.add(b, b.stop)
    b.start()
    expect_no_problems(check_socket_table(b, [b.port, b.wsport]), check_from_netns(sc, [b.port, b.wsport]))


def test_jwt_mode_listeners_are_loopback_only(sc):
    b = sc.broker(secret=s.random_secret())
    expect_no_problems(check_socket_table(b, [b.port, b.wsport]), check_from_netns(sc, [b.port, b.wsport]))


def test_tls_mode_plain_listener_is_loopback_only_tls_ones_listen_everywhere(sc):
    certs = os.path.join(sc.tmp, "certs")
    subprocess.run([os.path.join(s.REPO, "scripts", "make-local-ca"), certs], check=True,
                   stdout=subprocess.DEVNULL)
    b = sc.broker(secret=s.random_secret(), conf_name="mosquitto-tls.conf", certs_dir=certs)
    expect_no_problems(check_socket_table(b, [b.port], public_ports=[b.tlsport, b.wssport]),
                       check_from_netns(sc, [b.port], open_ports=[b.tlsport, b.wssport]))


if __name__ == "__main__":
    s.run()

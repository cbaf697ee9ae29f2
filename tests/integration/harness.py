"""Integration-test harness of the call-signalling service (in the spirit of Mosquitto's mosq_test.py).

Every test runs against a real Mosquitto and the real `callsignal` binary, both started here on
free loopback ports in a temporary directory; Mosquitto runs the shipped broker-config/mosquitto.conf
with only its ports, persistence and logging changed (default_broker_conf). A test file is a list of `test_*` functions taking one
argument, the `Env`; it ends with `harness.main()`, which runs them in order, prints one line per
test and exits non-zero when any failed. Tests of one file share one broker+service by default
(use unique user ids via `env.uid()`); a test decorated with `@harness.options(...)` gets its own.

Environment: CALLSIGNAL_BIN (the service binary, passed by CTest), MOSQUITTO_BIN (default
/usr/sbin/mosquitto), KEEP_TMP=1 keeps the temporary directories, VERBOSE=1 prints logs always.
CALLSIGNAL_TEST_STATE_ENGINE=redis runs every Env that does not choose otherwise on a real
redis-server (class Redis) with two service instances, env.http() spreading the requests over them
(Env(redis=True, instances=N) asks for that in one test).
When the service is built with sanitizers, any "ERROR: AddressSanitizer" / "runtime error:" in its
stderr fails the test that was running.

Only the Python standard library and paho-mqtt 1.6 are used (Debian's /usr/bin/python3).
"""

import http.client
import inspect
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

import paho.mqtt.client as mqtt

from ports import free_port  # noqa: F401 (the tests call h.free_port)

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


class HarnessError(AssertionError):
    """A failure of the environment (broker/service did not start, crashed, ...)."""


# ---------------------------------------------------------------------------------------------
# small utilities

def wait_until(predicate, timeout=5.0, interval=0.02, what="condition"):
    """Poll predicate() until it returns a truthy value (returned); AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def terminate(proc, timeout=10.0):
    """SIGTERM a process (None: nothing) and wait for it; SIGKILL after timeout."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def port_accepts(port, host="127.0.0.1"):
    """Whether something listens on the port. A connect to a free loopback port in the ephemeral
    range can connect to itself (TCP simultaneous open, when the kernel picks that very port as the
    source): that is no listener, and it holds the port the broker is about to bind."""
    try:
        with socket.create_connection((host, port), timeout=0.2) as s:
            return s.getsockname() != s.getpeername()
    except OSError:
        return False


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no %s)" % path
    return "\n".join(data.splitlines()[-lines:])


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# assertions

def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(actual, expected, what="value"):
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what, expected, actual))


def expect_error(resp, status, code, message=None):
    """Assert an error response: HTTP status, JSON {"error": code, "message": message}."""
    check(resp.status == status and isinstance(resp.json, dict) and resp.json.get("error") == code
          and (message is None or resp.json.get("message") == message),
          "expected %d %s%s, got %d %s" % (status, code, "" if message is None else " %r" % message,
                                           resp.status, resp.body[:300]))
    check(isinstance(resp.json.get("message"), str) and resp.json["message"],
          "error body without a message: %r" % resp.json)
    ctype = resp.headers.get("Content-Type", "")
    check(ctype.startswith("application/json"), "error Content-Type %r" % ctype)
    return resp.json


UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
STATUSES = ("DIALLING", "ONGOING", "ENDED", "DECLINED", "MISSED", "ERROR")


def user_of(client):
    """The User a Client announces (what the service should report for it)."""
    return {"id": client.user_id, "name": client.name, "location": client.location}


def check_call(call, status=None, caller=None, receiver=None):
    """Assert the shape of a Call (UUID v4 id, Users, status, ISO-8601 ms timestamps); optionally
    its status and parties (Clients or User dicts). Returns the call."""
    check(isinstance(call, dict), "not a Call object: %r" % (call,))
    check(isinstance(call.get("id"), str) and UUID4_RE.match(call["id"]),
          "call id is not a lowercase UUID v4: %r" % call.get("id"))
    check(call.get("status") in STATUSES, "bad call status %r" % call.get("status"))
    for key in ("caller", "receiver"):
        u = call.get(key)
        check(isinstance(u, dict) and all(isinstance(u.get(k), str) for k in ("id", "name", "location")),
              "call.%s is not a User: %r" % (key, u))
    check(isinstance(call.get("createdAt"), str) and ISO_RE.match(call["createdAt"]),
          "createdAt not ISO-8601 UTC with ms: %r" % call.get("createdAt"))
    for key in ("answeredAt", "endedAt"):
        if key in call:
            check(isinstance(call[key], str) and ISO_RE.match(call[key]),
                  "%s not ISO-8601 UTC with ms: %r" % (key, call[key]))
    if status is not None:
        eq(call["status"], status, "call status")
    for key, who in (("caller", caller), ("receiver", receiver)):
        if who is not None:
            want = who if isinstance(who, dict) else user_of(who)
            eq({k: call[key].get(k) for k in ("id", "name", "location")}, want, "call." + key)
    return call


def expect_ok(resp, status=200):
    check(resp.status == status, "expected %d, got %d %s" % (status, resp.status, resp.body[:300]))
    return resp.json


# ---------------------------------------------------------------------------------------------
# HTTP

class Response:
    """status (int), headers (case-insensitive http.client.HTTPMessage), body (bytes), json."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            self.json = None

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


def http_request(port, method, path, json_body=None, form=None, body=None, headers=None,
                 host="127.0.0.1", timeout=10.0, content_type=None):
    """One HTTP/1.1 request. json_body -> JSON; form (dict) -> urlencoded; body -> raw bytes/str.
    content_type overrides the Content-Type header (None = the natural one, "" = send none)."""
    hdrs = dict(headers or {})
    data = None
    natural_type = None
    if json_body is not None:
        data = json.dumps(json_body).encode("utf-8")
        natural_type = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode("utf-8")
        natural_type = "application/x-www-form-urlencoded"
    elif body is not None:
        data = body.encode("utf-8") if isinstance(body, str) else body
    ctype = natural_type if content_type is None else content_type
    if ctype:
        hdrs.setdefault("Content-Type", ctype)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.headers, r.read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Mosquitto

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROKER_CONFIG_DIR = os.path.join(REPO, "broker-config")


def swap_line(text, old, new):
    """text with its one line equal to old (ignoring surrounding blanks) replaced by new; a
    HarnessError when there is not exactly one such line (the shipped config changed)."""
    lines = text.split("\n")
    hits = [i for i, line in enumerate(lines) if line.strip() == old]
    if len(hits) != 1:
        raise HarnessError("shipped broker config: expected one line %r, found %d" % (old, len(hits)))
    lines[hits[0]] = new
    return "\n".join(lines)


def shipped_broker_conf(name="mosquitto.conf"):
    """broker-config/<name> as a Broker conf template: its text with braces escaped, so that
    str.format leaves it as it is; swap_line() then puts fields ({port}, ...) where wanted."""
    with open(os.path.join(BROKER_CONFIG_DIR, name)) as f:
        return f.read().replace("{", "{{").replace("}", "}}")


def default_broker_conf():
    """The open-mode config the product ships (broker-config/mosquitto.conf) with only what a test
    needs changed: the two listener ports, persistence (Broker's persistence=, kept in the test
    dir), and logging (everything, to mosquitto.log in the test dir, with connection messages)."""
    text = shipped_broker_conf("mosquitto.conf")
    text = swap_line(text, "listener 1883 127.0.0.1", "listener {port} 127.0.0.1")
    text = swap_line(text, "listener 9001 lo", "listener {wsport} lo")
    text = swap_line(text, "persistence false", "persistence {persistence}\npersistence_location {dir}/")
    text = swap_line(text, "log_dest stderr", "log_dest file {dir}/mosquitto.log")
    text = swap_line(text, "connection_messages false", "connection_messages true")
    return text + "log_type all\nlog_timestamp_format %H:%M:%S\n"


class Broker:
    """A Mosquitto on free loopback ports: .port (MQTT/TCP) and .wsport (WebSockets), started from
    broker-config/mosquitto.conf (see default_broker_conf()).

    conf: replacement config text (str.format fields: port, wsport, dir, persistence, plus any in
    conf_vars); extra_conf: lines appended (e.g. a plugin, TLS listeners on env ports)."""

    def __init__(self, tmpdir, extra_conf=(), conf=None, persistence=False, conf_vars=None):
        self.dir = tmpdir
        self.port = free_port()
        self.wsport = free_port()
        self.conf_path = os.path.join(tmpdir, "mosquitto.conf")
        self.log_path = os.path.join(tmpdir, "mosquitto.log")
        self.stderr_path = os.path.join(tmpdir, "mosquitto.stderr")
        self.bin = os.environ.get("MOSQUITTO_BIN") or "/usr/sbin/mosquitto"
        text = (conf if conf is not None else default_broker_conf()).format(
            port=self.port, wsport=self.wsport, dir=tmpdir,
            persistence="true" if persistence else "false", **(conf_vars or {}))
        if os.geteuid() == 0 and "\nuser " not in "\n" + text:
            text = "user root\n" + text  # else Mosquitto drops to user "mosquitto" and can't log here
        text += "".join(line + "\n" for line in extra_conf)
        with open(self.conf_path, "w") as f:
            f.write(text)
        self.proc = None

    @property
    def url(self):
        return "tcp://127.0.0.1:%d" % self.port

    def start(self, timeout=5.0):
        check(self.proc is None, "broker already running")
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([self.bin, "-c", self.conf_path], stdout=err, stderr=err,
                                     stdin=subprocess.DEVNULL)
        err.close()
        deadline = time.monotonic() + timeout
        while not (port_accepts(self.port) and port_accepts(self.wsport)):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise HarnessError("mosquitto exited with %s at start:\n%s\n%s" % (
                    code, tail(self.stderr_path), tail(self.log_path)))
            if time.monotonic() > deadline:
                raise HarnessError("mosquitto did not accept on %d/%d" % (self.port, self.wsport))
            time.sleep(0.02)

    def stop(self):
        terminate(self.proc, 5)
        self.proc = None
        # Mosquitto has closed its sockets once it exited; nothing else to wait for.

    def restart(self):
        self.stop()
        self.start()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self, lines=40):
        return tail(self.log_path, lines) + "\n" + tail(self.stderr_path, 10)


class Redis:
    """Debian's redis-server on a free loopback port: .url for REDIS_URL. appendonly: keep an
    append-only file (fsync always) in tmpdir, so a restart brings the data back."""

    def __init__(self, tmpdir, appendonly=False):
        self.dir = tmpdir
        self.port = free_port()
        self.bin = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.log_path = os.path.join(tmpdir, "redis.log")
        self.args = [self.bin, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", tmpdir,
                     "--save", "", "--daemonize", "no", "--logfile", self.log_path,
                     "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always"]
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, timeout=10.0):
        check(self.proc is None, "redis already running")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: self.ping(), timeout, what="redis-server answering PING")

    def ping(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False
        except HarnessError as e:
            if "LOADING" in str(e):  # restarted, still reading its append-only file
                return False
            raise

    def command(self, *words):
        """One command over RESP; returns an int, a str, a list, or None."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            req = "*%d\r\n" % len(words) + "".join(
                "$%d\r\n%s\r\n" % (len(str(w).encode()), w) for w in words)
            sock.sendall(req.encode())
            f = sock.makefile("rb")
            return self._read(f)

    def _read(self, f):
        line = f.readline().decode().rstrip("\r\n")
        kind, rest = line[:1], line[1:]
        if kind == "+":
            return rest
        if kind == "-":
            raise HarnessError("redis: " + rest)
        if kind == ":":
            return int(rest)
        if kind == "$":
            if int(rest) < 0:
                return None
            data = f.read(int(rest) + 2)
            return data[:-2].decode()
        if kind == "*":
            return None if int(rest) < 0 else [self._read(f) for _ in range(int(rest))]
        raise HarnessError("redis: unexpected reply %r" % line)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        self.start()

    def log(self, lines=20):
        return tail(self.log_path, lines)


class RedisSentinel:
    """A Redis master, one replica (replicaof) and three sentinels watching them (quorum 2,
    down after down_after_ms, failover_timeout_ms), all on free loopback ports, each server in its
    own directory under tmpdir. .url is the redis-sentinel:// URL for REDIS_URL; .master() the
    Redis the sentinels name as master now. Used by Env(redis="sentinel")."""

    NAME = "cs-master"

    def __init__(self, tmpdir, sentinels=3, down_after_ms=2500, failover_timeout_ms=3000):
        self.dir = tmpdir
        self.servers = []
        for name in ("redis-a", "redis-b"):
            os.makedirs(os.path.join(tmpdir, name), exist_ok=True)
            self.servers.append(Redis(os.path.join(tmpdir, name)))
        self.servers[1].args += ["--replicaof", "127.0.0.1", str(self.servers[0].port)]
        self.sentinels = [
            self.sentinel(os.path.join(tmpdir, "sentinel-%d" % (i + 1)), self.servers[0].port, 2,
                          down_after_ms, failover_timeout_ms)
            for i in range(sentinels)]

    @classmethod
    def sentinel(cls, d, master_port, quorum=2, down_after_ms=2500, failover_timeout_ms=3000):
        """A sentinel (not started) in directory d watching the master 127.0.0.1:master_port
        under the name NAME: a Redis whose .command() speaks to the sentinel."""
        os.makedirs(d, exist_ok=True)
        s = Redis(d)
        conf = os.path.join(d, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"
                    "sentinel monitor %s 127.0.0.1 %d %d\n"
                    "sentinel down-after-milliseconds %s %d\n"
                    "sentinel failover-timeout %s %d\n" % (
                        s.port, d, s.log_path, cls.NAME, master_port, quorum,
                        cls.NAME, down_after_ms, cls.NAME, failover_timeout_ms))
        s.args = [s.bin, conf, "--sentinel"]
        return s

    @property
    def url(self):
        return "redis-sentinel://%s/%s" % (
            ",".join("127.0.0.1:%d" % s.port for s in self.sentinels), self.NAME)

    def start(self, timeout=30.0):
        """Master, then replica (in sync), then the sentinels; returns once every sentinel knows
        the replica and the other sentinels, so that a failover can happen."""
        for r in self.servers:
            r.start()
        wait_until(lambda: "master_link_status:up" in self.servers[1].command("INFO", "replication"),
                   timeout, what="the replica in sync with the master")
        for s in self.sentinels:
            s.start()

        def ready(s):
            info = s.command("SENTINEL", "MASTER", self.NAME)
            fields = dict(zip(info[::2], info[1::2]))
            return (fields.get("num-slaves") == "1" and
                    fields.get("num-other-sentinels") == str(len(self.sentinels) - 1))
        wait_until(lambda: all(ready(s) for s in self.sentinels), timeout,
                   what="the sentinels knowing the replica and each other")

    def master_addr(self, sentinel=0):
        """(host, port) of the master as the sentinel names it now."""
        host, port = self.sentinels[sentinel].command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.NAME)
        return host, int(port)

    def master(self):
        port = self.master_addr()[1]
        return next(r for r in self.servers if r.port == port)

    def stop(self, sig=signal.SIGTERM):
        for p in self.sentinels + self.servers:
            p.stop(sig)

    def log(self, lines=20):
        return "\n".join("-- %s --\n%s" % (os.path.basename(p.dir), p.log(lines))
                         for p in self.servers + self.sentinels)


class Relay:
    """A loopback TCP relay in front of a port (a real socket pair per connection, bytes copied
    both ways), for faults the network makes: hold() stops passing bytes towards the target, so
    what a client sends after it is never delivered though its connection stays open; cut()
    closes every connection without passing on what was held. .url is a tcp:// URL."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.held = threading.Event()
        self.socks = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "tcp://127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            try:
                t = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks += [c, t]
            threading.Thread(target=self._pipe, args=(c, t, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(t, c, False), daemon=True).start()

    def _pipe(self, src, dst, towards_target):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if towards_target and self.held.is_set():
                    continue  # swallowed: never delivered
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def hold(self):
        self.held.set()

    def release(self):
        """Pass bytes again (what was swallowed meanwhile stays lost)."""
        self.held.clear()

    def cut(self):
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()


class NatsCluster:
    """Debian's nats-server as a cluster of `nodes` on free loopback ports: cluster routes,
    JetStream (store in tmpdir), an MQTT listener per node with stream_replicas 3. .url(i) for
    MQTT_URL; .node(i) for Client(broker=..., port=...). NATS speaks MQTT 3.1.1 only and refuses
    topics holding '.' or ' ' (docs/scaling.md): pick client ids without them."""

    def __init__(self, tmpdir, nodes=3):
        self.bin = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.dir = tmpdir
        self.cluster_ports = [free_port() for _ in range(nodes)]
        self.mqtt_ports = [free_port() for _ in range(nodes)]
        self.procs = [None] * nodes
        routes = ", ".join("nats-route://127.0.0.1:%d" % p for p in self.cluster_ports)
        self.confs = []
        for i in range(nodes):
            conf = os.path.join(tmpdir, "nats%d.conf" % i)
            with open(conf, "w") as f:
                f.write("server_name: n%d\nlisten: 127.0.0.1:%d\n" % (i, free_port()) +
                        "jetstream { store_dir: %s }\n" % os.path.join(tmpdir, "js%d" % i) +
                        "cluster { name: c1\n listen: 127.0.0.1:%d\n routes: [%s] }\n" % (
                            self.cluster_ports[i], routes) +
                        "mqtt { listen: 127.0.0.1:%d\n stream_replicas: 3 }\n" % self.mqtt_ports[i])
            self.confs.append(conf)

    def url(self, i):
        return "tcp://127.0.0.1:%d" % self.mqtt_ports[i]

    def node(self, i):
        """What Client needs of a broker: .port (MQTT/TCP of node i; no WebSocket listener)."""
        return type("NatsNode", (), {"port": self.mqtt_ports[i], "wsport": 0, "url": self.url(i)})()

    def start(self):
        for i, conf in enumerate(self.confs):
            log = open(os.path.join(self.dir, "nats%d.log" % i), "ab")
            self.procs[i] = subprocess.Popen([self.bin, "-c", conf], stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL)
            log.close()
        for p in self.mqtt_ports:
            wait_until(lambda p=p: port_accepts(p), 15, what="nats MQTT port %d" % p)

    def wait_ready(self, timeout=60.0):
        """Until every node takes a QoS 1 subscription and a retained QoS 1 message and delivers
        it (JetStream has elected the leaders of the MQTT streams): a client started earlier may be
        refused by a node and move on to another."""
        deadline = time.monotonic() + timeout
        for i in range(len(self.procs)):
            while not self._round_trip(i):
                if time.monotonic() > deadline:
                    raise HarnessError("nats node %d not ready after %.0fs:\n%s" % (i, timeout, self.log(i)))
                time.sleep(0.5)

    def _round_trip(self, i):
        got = queue.Queue()
        topic = "harness/ready/%d" % i
        c = mqtt.Client(client_id="ready-%d-%s" % (i, secrets.token_hex(4)), clean_session=True)
        c.on_message = lambda _c, _u, m: got.put(m.payload)
        try:
            c.connect("127.0.0.1", self.mqtt_ports[i], keepalive=10)
            c.loop_start()
            _, mid = c.subscribe(topic, qos=1)
            info = c.publish(topic, b"1", qos=1, retain=True)
            info.wait_for_publish(5)
            ok = got.get(timeout=5) == b"1"
            c.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
            return ok
        except (OSError, RuntimeError, ValueError, queue.Empty):
            return False
        finally:
            try:
                c.disconnect()
            except Exception:
                pass
            c.loop_stop()

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(10)
        self.procs[i] = None

    def stop(self):
        for i, p in enumerate(self.procs):
            if p is not None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                self.procs[i] = None

    def log(self, i, lines=20):
        return tail(os.path.join(self.dir, "nats%d.log" % i), lines)


# ---------------------------------------------------------------------------------------------
# the service

class Service:
    """The callsignal binary: .port (HTTP). env: extra environment; args: extra argv.

    wait: "ready" (GET /ready == 200: broker connected and live calls rebuilt; "health" is the
    older name of the same wait), "listening" (any HTTP answer on GET /health), or None (don't
    wait)."""

    def __init__(self, tmpdir, broker_url, env=None, args=(), binary=None, name="callsignal"):
        self.bin = binary or os.environ.get("CALLSIGNAL_BIN")
        if not self.bin:
            raise HarnessError("CALLSIGNAL_BIN is not set (path of the callsignal binary)")
        self.port = free_port()
        self.env = {"PORT": str(self.port), "MQTT_URL": broker_url, "LOG_LEVEL": "debug"}
        self.env.update({k: str(v) for k, v in (env or {}).items()})
        self.args = list(args)
        self.stderr_path = os.path.join(tmpdir, name + ".stderr")
        self.proc = None
        self.exit_codes = []

    def start(self, wait="health", timeout=10.0):
        check(self.proc is None, "service already running")
        env = dict(os.environ)
        # Inherited settings must not leak into the test (e.g. a developer's LIVEKIT_* exports).
        for key in list(env):
            if key in CONFIG_ENV_VARS:
                del env[key]
        env.update(self.env)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([self.bin] + self.args, env=env, stdout=err, stderr=err,
                                     stdin=subprocess.DEVNULL)
        err.close()
        if wait is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                self.exit_codes.append(code)
                raise HarnessError("callsignal exited with %s at start:\n%s" % (
                    code, tail(self.stderr_path)))
            try:
                r = http_request(self.port, "GET", "/health" if wait == "listening" else "/ready",
                                 timeout=1.0)
                if wait == "listening" or r.status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError("callsignal not ready (%s) after %.0fs:\n%s" % (
                    wait, timeout, tail(self.stderr_path)))
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, expect_code=0, timeout=10.0):
        """Signal the service and wait; assert its exit code (None = don't check). Returns it."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError("callsignal did not exit within %.0fs of signal %d" % (timeout, sig))
        self.proc = None
        self.exit_codes.append(code)
        if expect_code is not None:
            check(code == expect_code, "callsignal exited with %s after signal %d, expected %s" % (
                code, sig, expect_code))
        self.check_sanitizers()
        return code

    def restart(self, wait="health"):
        self.stop()
        self.start(wait=wait)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            self.proc = None
            self.exit_codes.append(code)
            raise AssertionError("callsignal died unexpectedly with exit code %s" % code)

    def stderr(self):
        return read_text(self.stderr_path)

    def check_sanitizers(self):
        text = self.stderr()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                i = text.index(marker)
                raise AssertionError("sanitizer report in callsignal stderr:\n" + text[max(0, i - 200):i + 3000])

    def log(self, lines=40):
        """The last lines of stderr, a run of lines that differ only in their time stamp (a
        test polling GET /ready) folded into one, so that the tail still shows why."""
        folded = []
        for line in read_text(self.stderr_path).splitlines():
            body = line.split(" ", 1)[-1]
            if folded and folded[-1][1] == body:
                folded[-1][2] += 1
            else:
                folded.append([line, body, 1])
        return "\n".join(ln if n == 1 else "%s   (and %d more like it)" % (ln, n - 1)
                         for ln, _, n in folded[-lines:])


# Every configuration env var of the spec (also used to scrub the inherited environment).
CONFIG_ENV_VARS = [
    "PORT", "HTTP_HOST", "MQTT_URL", "MQTT_USERNAME", "MQTT_PASSWORD", "MQTT_CA_FILE", "MQTT_WS_URL",
    "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_URL", "TOKEN_TTL_S", "RING_TIMEOUT_S",
    "OFFLINE_GRACE_S", "CALL_RETENTION_S", "WEB_ROOT", "CORS_ORIGIN", "LOG_LEVEL", "AUTH_MODE",
    "AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY_FILE", "START_RATE_PER_MIN", "STATE_ENGINE", "REDIS_URL",
    "LOG_FORMAT", "METRICS_TOKEN", "WEBHOOK_URLS", "WEBHOOK_SECRET", "WEBHOOK_TIMEOUT_S", "WEBHOOK_RETRY_S",
    "WEBHOOK_QUEUE_MAX", "RING_OFFLINE_S", "CALL_HISTORY_MAX",
]


# ---------------------------------------------------------------------------------------------
# MQTT client (a device of a user)

class Client:
    """One device: connects with a Last Will (empty retained on its presence topic), publishes its
    presence (retained User JSON), subscribes to users/{id}/events and queues the events received.

    transport: "tcp" or "websockets". user: the presence payload (dict or raw str/bytes) instead of
    {"id", "name", "location"}. presence=False: connect without publishing presence."""

    def __init__(self, broker, user_id, name=None, location="", client_id=None, transport="tcp",
                 user=None, presence=True, subscribe=True, will=True, username=None,
                 password=None, port=None, tls_ca=None, connect=True, timeout=5.0):
        self.broker = broker
        self.user_id = user_id
        self.client_id = client_id or "dev-" + secrets.token_hex(4)
        self.name = name if name is not None else "Name of " + user_id
        self.location = location
        self.transport = transport
        self.payload = user if user is not None else {
            "id": user_id, "name": self.name, "location": location}
        self.want_presence = presence
        self.want_subscribe = subscribe
        self.will = will
        self.username = username
        self.password = password
        self.port = port
        self.tls_ca = tls_ca
        self.timeout = timeout
        self.events = queue.Queue()
        self.seen_event_ids = set()
        self.duplicates = 0
        self.messages = queue.Queue()  # (topic, payload bytes, retain) of every message received
        self.mqtt = None
        self.connect_rc = None
        if connect:
            self.connect()

    @property
    def presence_topic(self):
        return "users/%s/presence/%s" % (self.user_id, self.client_id)

    @property
    def events_topic(self):
        return "users/%s/events" % self.user_id

    def _encode(self, payload):
        if isinstance(payload, (dict, list)):
            return json.dumps(payload).encode("utf-8")
        return payload.encode("utf-8") if isinstance(payload, str) else payload

    def connect(self):
        """(Re)connect, subscribe to the events topic, publish presence (as configured)."""
        if self.mqtt is not None:
            self._shutdown_loop()
        connected = threading.Event()
        subscribed = threading.Event()
        c = mqtt.Client(client_id=self.client_id, clean_session=True, transport=self.transport,
                        reconnect_on_failure=False)
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
        if self.tls_ca:
            c.tls_set(ca_certs=self.tls_ca)
        if self.will:
            c.will_set(self.presence_topic, b"", qos=1, retain=True)

        def on_connect(_c, _u, _flags, rc):
            self.connect_rc = rc
            connected.set()

        def on_subscribe(_c, _u, _mid, granted):
            self.granted = granted
            subscribed.set()

        def on_message(_c, _u, msg):
            self.messages.put((msg.topic, msg.payload, msg.retain))
            if msg.topic == self.events_topic:
                try:
                    self.events.put(json.loads(msg.payload.decode("utf-8")))
                except (ValueError, UnicodeDecodeError):
                    self.events.put({"type": "<unparseable>", "raw": msg.payload})

        c.on_connect = on_connect
        c.on_subscribe = on_subscribe
        c.on_message = on_message
        self.connect_rc = None
        port = self.port or (self.broker.wsport if self.transport == "websockets" else self.broker.port)
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        self.mqtt = c
        if not connected.wait(self.timeout):
            raise HarnessError("MQTT client %s: no CONNACK" % self.client_id)
        if self.connect_rc != 0:
            raise HarnessError("MQTT client %s: connection refused rc=%s" % (self.client_id, self.connect_rc))
        if self.want_subscribe:
            c.subscribe(self.events_topic, qos=1)
            if not subscribed.wait(self.timeout):
                raise HarnessError("MQTT client %s: no SUBACK" % self.client_id)
        if self.want_presence:
            self.publish_presence()
        return self

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.mqtt.publish(topic, self._encode(payload), qos=qos, retain=retain)
        info.wait_for_publish(self.timeout)
        check(info.is_published(), "publish to %s not acknowledged" % topic)

    def publish_presence(self, payload=None):
        """Publish (retained) the presence payload (default: this device's User)."""
        if payload is not None:
            self.payload = payload
        self.publish(self.presence_topic, self.payload, retain=True)

    def clear_presence(self):
        self.publish(self.presence_topic, b"", retain=True)

    def disconnect(self):
        """Clean disconnect: clear the presence first, then DISCONNECT (the Will is discarded)."""
        if self.mqtt is None:
            return
        try:
            if self.want_presence:
                self.clear_presence()
            self.mqtt.disconnect()
        finally:
            self._shutdown_loop()

    def drop(self):
        """Abrupt disconnect: close the socket without DISCONNECT, so the broker fires the Will."""
        if self.mqtt is None:
            return
        c = self.mqtt
        c._thread_terminate = True  # the network thread ends instead of handling the loss
        sock = c.socket()
        if sock is not None:
            try:
                raw = getattr(sock, "_socket", sock)  # paho's WebsocketWrapper keeps the TCP socket
                raw.shutdown(socket.SHUT_RDWR)  # wakes the thread's select at once; no DISCONNECT sent
            except OSError:
                pass
        c.loop_stop()
        if sock is not None:
            sock.close()
        self.mqtt = None

    def _shutdown_loop(self):
        c, self.mqtt = self.mqtt, None
        if c is None:
            return
        try:
            c.disconnect()
        except Exception:
            pass
        c.loop_stop()

    close = _shutdown_loop

    # events -----------------------------------------------------------------------------------

    def _next_event(self, timeout):
        """The next event whose id was not seen before, as a client drops a repeated event id
        (delivery is at least once: a broker or service restart may send one again); repeats
        are counted in .duplicates. Raises queue.Empty after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.events.get(timeout=max(deadline - time.monotonic(), 0.001))
            eid = ev.get("id") if isinstance(ev, dict) else None
            if eid is None or eid not in self.seen_event_ids:
                if eid is not None:
                    self.seen_event_ids.add(eid)
                return ev
            self.duplicates += 1

    def expect_event(self, type_, timeout=5.0, call_id=None):
        """The next event received (within timeout) must be of this type (and this call id);
        a repeat of an event already seen (same id) is skipped, as clients do."""
        try:
            ev = self._next_event(timeout)
        except queue.Empty:
            raise AssertionError("%s (%s): no %s event within %.1fs" % (
                self.user_id, self.client_id, type_, timeout))
        check(isinstance(ev, dict) and ev.get("type") == type_,
              "%s (%s): expected %s event, got %r" % (self.user_id, self.client_id, type_, ev))
        check(isinstance(ev.get("call"), dict), "event without a call object: %r" % ev)
        if call_id is not None:
            eq(ev["call"].get("id"), call_id, "%s event call id" % type_)
        return ev

    def expect_no_event(self, timeout=0.5):
        """No new event (a repeat of one already seen does not count) within timeout."""
        try:
            ev = self._next_event(timeout)
        except queue.Empty:
            return
        raise AssertionError("%s (%s): unexpected event %r" % (self.user_id, self.client_id, ev))


# ---------------------------------------------------------------------------------------------
# one test environment: a temp dir, a broker and a service

class Env:
    """broker_opts: kwargs of Broker; service_env/service_args: the service's; start_service=False
    for tests that start binaries themselves; wait: see Service.start.

    redis: run STATE_ENGINE=redis on a real Redis (.redis; redis_opts: kwargs of Redis) with
    `instances` service processes (.instances; .service is the first), env.http() taking them in
    turn; redis="sentinel": on a master, a replica and three sentinels (.redis a RedisSentinel,
    redis_opts its kwargs). Unset, CALLSIGNAL_TEST_STATE_ENGINE=redis turns it on with two
    instances."""

    def __init__(self, name="env", service_env=None, service_args=(), broker_opts=None,
                 start_broker=True, start_service=True, wait="health", redis=None, instances=None,
                 redis_opts=None):
        self.tmp = tempfile.mkdtemp(prefix="callsignal-it-%s-" % name[:40])
        self.clients = []
        self._uid = 0
        if redis is None:
            redis = os.environ.get("CALLSIGNAL_TEST_STATE_ENGINE") == "redis"
        if instances is None:
            instances = 2 if redis else 1
        redis_class = RedisSentinel if redis == "sentinel" else Redis
        self.redis = redis_class(self.tmp, **(redis_opts or {})) if redis else None
        self.broker = Broker(self.tmp, **(broker_opts or {}))
        service_env = dict(service_env or {})
        if self.redis:
            service_env.update({"STATE_ENGINE": "redis", "REDIS_URL": self.redis.url})
        self.service = Service(self.tmp, self.broker.url, env=service_env, args=service_args)
        self.extra_services = []
        self.instances = [self.service]
        self._turn = 0
        try:
            if self.redis:
                self.redis.start()
            if start_broker:
                self.broker.start()
            if start_service:
                self.service.start(wait=wait)
            for i in range(1, instances):
                s = Service(self.tmp, self.broker.url, env=service_env, args=service_args,
                            name="callsignal-i%d" % (i + 1))
                self.extra_services.append(s)
                self.instances.append(s)
                if start_service:
                    s.start(wait=wait)
        except BaseException:
            self.close(check_exit=False)
            raise

    # ids, clients, requests --------------------------------------------------------------------

    def uid(self, prefix="u"):
        """A user id unique within this environment."""
        self._uid += 1
        return "%s%d-%s" % (prefix, self._uid, secrets.token_hex(3))

    def client(self, user_id=None, **kw):
        """A connected device (see Client); closed with the environment."""
        c = Client(self.broker, user_id or self.uid(), **kw)
        self.clients.append(c)
        return c

    def user(self, prefix="u", **kw):
        """A new online user (one device); waits until GET /users lists it."""
        c = self.client(self.uid(prefix), **kw)
        if kw.get("presence", True) and self.service.running:
            self.wait_online(c.user_id)
        return c

    def http(self, method, path, **kw):
        """A request to the service; with several instances, to each in turn."""
        live = [s for s in self.instances if s.running] or [self.service]
        self._turn += 1
        return http_request(live[self._turn % len(live)].port, method, path, **kw)

    def get(self, path, **kw):
        return self.http("GET", path, **kw)

    def post(self, path, json_body=None, **kw):
        return self.http("POST", path, json_body=json_body, **kw)

    def users(self):
        r = self.get("/users")
        eq(r.status, 200, "GET /users status")
        check(isinstance(r.json, list), "GET /users is not an array: %r" % r.body[:200])
        return r.json

    def user_ids(self):
        return sorted(u.get("id") for u in self.users())

    def _every_instance(self, predicate):
        live = [s for s in self.instances if s.running] or [self.service]
        return all(predicate(s) for s in live)

    def _ids_at(self, service):
        r = http_request(service.port, "GET", "/users")
        eq(r.status, 200, "GET /users status")
        return [u.get("id") for u in r.json]

    def wait_online(self, user_id, timeout=5.0):
        """Until every running instance lists the user."""
        return wait_until(lambda: self._every_instance(lambda s: user_id in self._ids_at(s)), timeout,
                          what="%s online" % user_id)

    def wait_offline(self, user_id, timeout=5.0):
        return wait_until(lambda: self._every_instance(lambda s: user_id not in self._ids_at(s)),
                          timeout, what="%s offline" % user_id)

    def start_call(self, caller, receiver):
        """POST /calls/start between two Clients (or ids); asserts 200 DIALLING; returns the Call."""
        a = getattr(caller, "user_id", caller)
        b = getattr(receiver, "user_id", receiver)
        r = self.post("/calls/start", {"callerId": a, "receiverId": b})
        check(r.status == 200, "start %s -> %s: %d %s" % (a, b, r.status, r.body[:300]))
        eq(r.json.get("status"), "DIALLING", "started call status")
        return r.json

    def ringing_call(self, **kw):
        """Two new users a and b online (Client options kw), a rings b and b's device got the
        INCOMING_CALL; returns (a, b, call)."""
        a, b = self.user("a", **kw), self.user("b", **kw)
        call = self.start_call(a, b)
        b.expect_event("INCOMING_CALL", call_id=call["id"])
        return a, b, call

    def ongoing_call(self, **kw):
        """As ringing_call, then b accepted and both devices got the ACCEPT_CALL."""
        a, b, call = self.ringing_call(**kw)
        eq(self.answer(call["id"], "ACCEPT").status, 200, "accept")
        a.expect_event("ACCEPT_CALL", call_id=call["id"])
        b.expect_event("ACCEPT_CALL", call_id=call["id"])
        return a, b, call

    def answer(self, call_id, answer):
        return self.post("/calls/answer", {"callId": call_id, "answer": answer})

    def end(self, call_id, user_id):
        return self.post("/calls/end", {"callId": call_id, "userId": getattr(user_id, "user_id", user_id)})

    def retained_call_topics(self, wait=1.0):
        """The non-empty retained users/+/call topics a fresh subscriber gets: topic -> payload
        (str), read for `wait` seconds."""
        c = self.client("reader", client_id="reader-" + secrets.token_hex(4), presence=False,
                        subscribe=False, will=False)
        c.mqtt.subscribe("users/+/call", qos=1)
        time.sleep(wait)
        out = {}
        while not c.messages.empty():
            topic, payload, _ = c.messages.get()
            if topic.endswith("/call"):
                out[topic] = payload
        return {t: p for t, p in out.items() if p}

    def raw_publish(self, topic, payload, retain=True, qos=1):
        """Publish one message from a throwaway client without presence/will."""
        c = Client(self.broker, "publisher", client_id="pub-" + secrets.token_hex(4), presence=False,
                   subscribe=False, will=False)
        try:
            c.publish(topic, payload, qos=qos, retain=retain)
        finally:
            c.close()

    def sync(self):
        """Barrier: a marker user published after earlier presence messages is seen by the service,
        so those earlier messages have been processed too (one subscription, in-order delivery)."""
        marker = Client(self.broker, self.uid("sync"), client_id="sync-" + secrets.token_hex(4),
                        subscribe=False, will=False)
        try:
            self.wait_online(marker.user_id)
            marker.clear_presence()
            self.wait_offline(marker.user_id)
        finally:
            marker.close()

    def spawn_service(self, env=None, args=(), wait="health", name=None):
        """A further service process (own port, same broker), stopped with the environment."""
        s = Service(self.tmp, self.broker.url, env=env, args=args,
                    name=name or "callsignal-%d" % (len(self.extra_services) + 2))
        self.extra_services.append(s)
        s.start(wait=wait)
        return s

    # lifecycle ---------------------------------------------------------------------------------

    def check_health(self):
        """Between tests of a shared environment: the services must still run and be clean."""
        for s in self.instances:
            s.check_alive()
            s.check_sanitizers()

    def close_clients(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        self.clients = []

    def close(self, check_exit=True):
        """Stop everything; with check_exit, the service must exit 0 on SIGTERM and be clean."""
        errors = []
        self.close_clients()
        for s in self.extra_services + [self.service]:
            try:
                s.stop(expect_code=0 if check_exit else None)
            except AssertionError as e:
                errors.append(str(e))
        self.broker.stop()
        if self.redis:
            self.redis.stop()
        if check_exit:
            for s in self.extra_services + [self.service]:
                try:
                    s.check_sanitizers()
                except AssertionError as e:
                    errors.append(str(e))
        return errors

    def remove(self):
        if os.environ.get("KEEP_TMP"):
            print("    (kept %s)" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self):
        out = ["---- callsignal stderr (tail) ----", self.service.log(60)]
        for s in self.extra_services:
            out += ["---- %s stderr (tail) ----" % os.path.basename(s.stderr_path), s.log(30)]
        out += ["---- mosquitto log (tail) ----", self.broker.log(30)]
        if self.redis:
            out += ["---- redis log (tail) ----", self.redis.log(20)]
        return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# the runner

def options(**opts):
    """Decorator: this test gets its own Env(**opts) instead of the file's shared one."""
    def deco(fn):
        fn.harness_options = opts
        return fn
    return deco


def _pretty(name):
    return name[len("test_"):].replace("_", " ") if name.startswith("test_") else name


def main(shared=True, **shared_opts):
    """Run the caller module's test_* functions in definition order; exit 1 when any failed.

    shared: tests without @options share one Env(**shared_opts). argv: optional substrings to select
    tests by name."""
    module = sys.modules["__main__"]
    tests = [fn for name, fn in vars(module).items()
             if name.startswith("test_") and inspect.isfunction(fn)]
    tests.sort(key=lambda fn: fn.__code__.co_firstlineno)
    wanted = sys.argv[1:]
    if wanted:
        tests = [fn for fn in tests if any(w in fn.__name__ for w in wanted)]
    file_name = os.path.basename(module.__file__)
    shared_env = None
    failed = []
    t_file = time.monotonic()
    print("== %s: %d tests" % (file_name, len(tests)), flush=True)

    for fn in tests:
        own = hasattr(fn, "harness_options") or not shared
        env = None
        t0 = time.monotonic()
        err = None
        try:
            if own:
                env = Env(name=fn.__name__, **getattr(fn, "harness_options", shared_opts))
            else:
                if shared_env is None:
                    shared_env = Env(name=file_name.split(".")[0], **shared_opts)
                env = shared_env
            fn(env)
            if own:
                problems = env.close(check_exit=True)
                if problems:
                    raise AssertionError("; ".join(problems))
            else:
                env.close_clients()
                env.check_health()
        except BaseException as e:  # noqa: B902 - a test may fail in any way; report it
            if isinstance(e, KeyboardInterrupt):
                raise
            err = e
        dt = time.monotonic() - t0
        if err is None:
            print("PASS %-70s %.2fs" % (_pretty(fn.__name__), dt), flush=True)
            if env is not None and os.environ.get("VERBOSE"):
                print(env.logs())
        else:
            failed.append(fn.__name__)
            print("FAIL %-70s %.2fs" % (_pretty(fn.__name__), dt), flush=True)
            print("".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip())
            if env is not None:
                print(env.logs(), flush=True)
        if own and env is not None:
            env.close(check_exit=False)
            env.remove()
        elif err is not None and shared_env is not None:
            # A failure may leave the shared environment in any state: start a fresh one.
            shared_env.close(check_exit=False)
            shared_env.remove()
            shared_env = None

    if shared_env is not None:
        problems = shared_env.close(check_exit=True)
        if problems:
            failed.append("shutdown of the shared service")
            print("FAIL shutdown of the shared service: " + "; ".join(problems))
            print(shared_env.logs())
        shared_env.remove()

    print("== %s: %d passed, %d failed (%.1fs)%s" % (
        file_name, len(tests) - len(failed), len(failed), time.monotonic() - t_file,
        "" if not failed else ": " + ", ".join(failed)), flush=True)
    sys.exit(1 if failed else 0)

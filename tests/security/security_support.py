"""Shared helpers of the security tests (tests/security/*.py): user tokens, a Mosquitto started
from the shipped jwt-mode configs with the callsignal_auth plugin, raw MQTT probes, a tiny runner.

Builds on tests/integration/harness.py (Broker, Service, Client, HTTP helpers) without changing it.
The broker configs under test are the real ones (broker-config/mosquitto-jwt.conf and
mosquitto-tls.conf): only their fixed listener ports are replaced by free ones and logging is
added. Mosquitto runs with its working directory set to a runtime directory laid out as those
configs document (callsignal_auth.so, secrets/, certs/).

Environment: CALLSIGNAL_AUTH_PLUGIN (path of libcallsignal_auth.so, passed by CTest),
CALLSIGNAL_BIN (the service, REST tests only), MOSQUITTO_BIN.
"""

import base64
import hashlib
import hmac
import inspect
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness as h  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

SERVICE_USERNAME = "callsignal-service"  # as in broker-config/mosquitto-jwt.conf


def default_client_id(username):
    """A fresh client id of the form jwt mode requires: "{userId}.{device}" for a user, one that
    names no user (no '.') for the service or an anonymous probe."""
    if username is None or username == SERVICE_USERNAME:
        return "probe-" + secrets.token_hex(4)
    return "%s.probe-%s" % (username, secrets.token_hex(4))
CONNACK_REFUSED = (4, 5)  # bad username or password / not authorised (MQTT 3.1.1)

# ---------------------------------------------------------------------------------------------
# tokens


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_hs256(claims, secret, header=None):
    """A JWT signed with HMAC-SHA256 over secret (str or bytes)."""
    head = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64url(sig))


def jwt_none(claims):
    """An unsigned JWT ("alg": "none", empty signature)."""
    head = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return "%s.%s." % (head, b64url(json.dumps(claims).encode()))


def jwt_rs256(claims, private_key_path):
    """A JWT signed with RSASSA-PKCS1-v1_5 SHA-256 by the openssl CLI."""
    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing_input = ("%s.%s" % (head, body)).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", private_key_path],
                         input=signing_input, stdout=subprocess.PIPE, check=True).stdout
    return "%s.%s.%s" % (head, body, b64url(sig))


def rsa_keypair(directory, name="jwt"):
    """Generates an RSA key pair; returns (private PEM path, public PEM path)."""
    priv = os.path.join(directory, name + "_private.pem")
    pub = os.path.join(directory, name + "_public.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", priv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return priv, pub


def claims(sub, ttl=600, **extra):
    now = int(time.time())
    c = {"sub": sub, "iat": now, "exp": now + ttl}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def random_secret():
    return secrets.token_urlsafe(32)


# ---------------------------------------------------------------------------------------------
# a jwt-mode broker from the shipped config


def plugin_path():
    p = os.environ.get("CALLSIGNAL_AUTH_PLUGIN")
    if not p or not os.path.exists(p):
        raise h.HarnessError("CALLSIGNAL_AUTH_PLUGIN is not set to the built libcallsignal_auth.so (%r)" % p)
    return p


def _write_secret(path, value):
    with open(path, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)


class JwtBroker(h.Broker):
    """harness.Broker running broker-config/<conf_name> with the callsignal_auth plugin.

    secret (HS256) or public_key_file (RS256, copied into secrets/); previous: the previous HS256
    secret (secrets/jwt_secret_previous, named by the shipped config). For mosquitto-tls.conf, .tlsport and .wssport
    are the TLS listeners and certs_dir must hold ca.crt, server.crt, server.key."""

    def __init__(self, tmpdir, secret=None, public_key_file=None, previous=None,
                 conf_name="mosquitto-jwt.conf", certs_dir=None, extra_conf=()):
        self.service_password = random_secret()
        self.secret = secret
        self.tlsport = h.free_port()
        self.wssport = h.free_port()
        os.makedirs(os.path.join(tmpdir, "secrets"), exist_ok=True)
        link = os.path.join(tmpdir, "callsignal_auth.so")
        if not os.path.lexists(link):
            os.symlink(plugin_path(), link)
        _write_secret(os.path.join(tmpdir, "secrets", "service_password"), self.service_password)
        with open(os.path.join(REPO, "broker-config", conf_name)) as f:
            text = f.read()
        text = text.replace("{", "{{").replace("}", "}}")
        text = self._swap(text, "listener 1883 127.0.0.1", "listener {port} 127.0.0.1")
        tls = conf_name == "mosquitto-tls.conf"
        if tls:
            text = self._swap(text, "listener 8883", "listener {tlsport}")
            text = self._swap(text, "listener 9443", "listener {wssport}")
        else:
            text = self._swap(text, "listener 9001 lo", "listener {wsport} lo")
        if tls:
            if certs_dir and os.path.abspath(certs_dir) != os.path.join(tmpdir, "certs"):
                os.symlink(os.path.abspath(certs_dir), os.path.join(tmpdir, "certs"))
        if public_key_file is not None:
            # The documented RS256 variant: one line replaced.
            text = self._swap(text, "plugin_opt_jwt_secret_file secrets/jwt_secret",
                              "plugin_opt_jwt_public_key_file secrets/jwt_public_key.pem")
            shutil.copy(public_key_file, os.path.join(tmpdir, "secrets", "jwt_public_key.pem"))
        else:
            _write_secret(os.path.join(tmpdir, "secrets", "jwt_secret"), secret)
        extra = list(extra_conf)
        if previous is not None:
            # The shipped config names this file; it is optional.
            _write_secret(os.path.join(tmpdir, "secrets", "jwt_secret_previous"), previous)
        text += "\nlog_dest file {dir}/mosquitto.log\nlog_type all\n"
        super().__init__(tmpdir, conf=text, extra_conf=extra,
                         conf_vars={"tlsport": self.tlsport, "wssport": self.wssport})
        if tls:
            self.wsport = self.wssport  # what Broker.start() waits for

    @staticmethod
    def _swap(text, old, new):
        lines = text.split("\n")
        hits = [i for i, line in enumerate(lines) if line.strip() == old]
        if len(hits) != 1:
            raise h.HarnessError("shipped broker config: expected one line %r, found %d" % (old, len(hits)))
        lines[hits[0]] = new
        return "\n".join(lines)

    def start(self, timeout=5.0):
        # The shipped config's relative paths are resolved against the working directory.
        cwd = os.getcwd()
        saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "ASAN_OPTIONS")}
        preload = os.environ.get("BROKER_LD_PRELOAD")
        if preload:
            # A sanitized plugin needs the sanitizer runtimes loaded before Mosquitto itself.
            os.environ["LD_PRELOAD"] = preload
            os.environ["ASAN_OPTIONS"] = "detect_leaks=0"
        os.chdir(self.dir)
        try:
            super().start(timeout)
        finally:
            os.chdir(cwd)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def check_sanitizers(self):
        """Fails when a sanitizer reported an error inside the broker (i.e. in the plugin)."""
        text = h.read_text(self.stderr_path)
        for marker in h.SANITIZER_MARKERS:
            if marker in text:
                i = text.index(marker)
                raise AssertionError("sanitizer report in mosquitto stderr:\n" + text[max(0, i - 200):i + 3000])

    def token(self, sub, ttl=600, **extra):
        return jwt_hs256(claims(sub, ttl, **extra), self.secret)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def reload(self, timeout=5.0):
        """SIGHUP, then waits until the plugin logged the outcome; returns the new log lines."""
        before = len(h.read_text(self.log_path))
        self.proc.send_signal(signal.SIGHUP)

        def outcome():
            text = h.read_text(self.log_path)[before:]
            return text if ("connected after the reload" in text or "reload failed" in text) else None
        return h.wait_until(outcome, timeout, what="the plugin to log its reload")


# ---------------------------------------------------------------------------------------------
# raw MQTT probes


def connect_rc(port, username, password, client_id=None, transport="tcp", tls_ca=None, timeout=5.0):
    """CONNECTs and returns the CONNACK return code (0 = accepted); raises when there is none.
    tls_ca: None = plain, a CA file path, or "system" (TLS with the system's trust store)."""
    got = queue.Queue()
    c = mqtt.Client(client_id=default_client_id(username) if client_id is None else client_id, transport=transport,
                    reconnect_on_failure=False)
    if username is not None:
        c.username_pw_set(username, password)
    if tls_ca == "system":
        c.tls_set()  # the system's trust store
    elif tls_ca is not None:
        c.tls_set(ca_certs=tls_ca)
    c.on_connect = lambda _c, _u, _f, rc: got.put(rc)
    try:
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        try:
            return got.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no CONNACK from port %d within %.1fs" % (port, timeout))
    finally:
        c.disconnect()
        c.loop_stop()


def expect_refused(port, username, password, what, **kw):
    rc = connect_rc(port, username, password, **kw)
    h.check(rc in CONNACK_REFUSED, "%s: expected CONNECT refused (rc 4 or 5), got rc=%s" % (what, rc))


def expect_accepted(port, username, password, what, **kw):
    rc = connect_rc(port, username, password, **kw)
    h.eq(rc, 0, "%s: CONNACK return code" % what)


class Probe:
    """A connected MQTT client recording every message: .messages (queue of (topic, payload,
    retain)), .granted (list of SUBACK codes per subscribe call), .disconnected (an Event set when
    the connection ends)."""

    def __init__(self, port, username, password, client_id=None, will=None, transport="tcp",
                 tls_ca=None, timeout=5.0):
        self.client_id = default_client_id(username) if client_id is None else client_id
        self.messages = queue.Queue()
        self.timeout = timeout
        self._acks = queue.Queue()
        self._connack = queue.Queue()
        self.granted = []
        c = mqtt.Client(client_id=self.client_id, transport=transport, reconnect_on_failure=False)
        c.username_pw_set(username, password)
        if tls_ca is not None:
            c.tls_set(ca_certs=tls_ca)
        if will is not None:
            c.will_set(will[0], will[1], qos=1, retain=will[2] if len(will) > 2 else True)
        c.on_connect = lambda _c, _u, _f, rc: self._connack.put(rc)
        c.on_subscribe = lambda _c, _u, mid, granted: self._acks.put(list(granted))
        c.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload, m.retain))
        self.disconnected = threading.Event()
        c.on_disconnect = lambda _c, _u, _rc: self.disconnected.set()
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        self.mqtt = c
        try:
            rc = self._connack.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise AssertionError("probe %s: no CONNACK" % self.client_id)
        self.connack_rc = rc
        if rc != 0:
            self.close()
            raise AssertionError("probe %s: CONNECT refused rc=%s" % (self.client_id, rc))

    def subscribe(self, topic, qos=1):
        self.mqtt.subscribe(topic, qos=qos)
        try:
            granted = self._acks.get(timeout=self.timeout)
        except queue.Empty:
            raise AssertionError("probe %s: no SUBACK for %r" % (self.client_id, topic))
        self.granted.append(granted)
        return granted[0]

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.mqtt.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(self.timeout)
        h.check(info.is_published(), "publish to %s not acknowledged" % topic)

    def expect_message(self, topic, payload=None, timeout=3.0):
        """Waits for a message on topic (other messages are skipped); returns (payload, retain)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("probe %s: no message on %s within %.1fs" % (self.client_id, topic, timeout))
            try:
                t, p, r = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if t == topic and (payload is None or p == payload):
                return p, r

    def expect_nothing(self, timeout=1.0, what="anything"):
        try:
            t, p, _ = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("probe %s received %s it must not: %s %r" % (self.client_id, what, t, p[:100]))

    def drop(self):
        """Closes the socket without DISCONNECT, so the broker sends the Will."""
        c = self.mqtt
        c.loop_stop()
        sock = c.socket()
        if sock is not None:
            try:
                sock.shutdown(2)
            except OSError:
                pass
            sock.close()
        self.mqtt = None

    def close(self):
        if self.mqtt is None:
            return
        try:
            self.mqtt.disconnect()
        except Exception:
            pass
        self.mqtt.loop_stop()
        self.mqtt = None


# ---------------------------------------------------------------------------------------------
# runner


class Scratch:
    """Per-test context: a temp dir and everything to stop at the end (brokers, services, probes)."""

    def __init__(self, name):
        self.tmp = tempfile.mkdtemp(prefix="callsignal-sec-%s-" % name[:40])
        self._closers = []
        self.brokers = []

    def add(self, obj, closer):
        self._closers.append(closer)
        return obj

    def broker(self, **kw):
        b = JwtBroker(self.tmp, **kw)
        self.add(b, b.stop)
        self.brokers.append(b)
        b.start()
        return b

    def probe(self, *args, **kw):
        p = Probe(*args, **kw)
        return self.add(p, p.close)

    def close(self):
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                pass
        self._closers = []

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.tmp)):
            if name.endswith((".log", ".stderr")):
                out += ["---- %s (tail) ----" % name, h.tail(os.path.join(self.tmp, name), 30)]
        return "\n".join(out)

    def remove(self):
        if os.environ.get("KEEP_TMP"):
            print("    (kept %s)" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def run():
    """Runs the calling module's test_*(scratch) functions in order; exit 1 when any failed."""
    module = sys.modules["__main__"]
    tests = sorted((fn for name, fn in vars(module).items()
                    if name.startswith("test_") and inspect.isfunction(fn)),
                   key=lambda fn: fn.__code__.co_firstlineno)
    if sys.argv[1:]:
        tests = [fn for fn in tests if any(w in fn.__name__ for w in sys.argv[1:])]
    file_name = os.path.basename(module.__file__)
    print("== %s: %d tests" % (file_name, len(tests)), flush=True)
    failed = []
    t_file = time.monotonic()
    for fn in tests:
        s = Scratch(fn.__name__)
        t0 = time.monotonic()
        err = None
        try:
            fn(s)
        except BaseException as e:  # noqa: B902 - a test may fail in any way; report it
            if isinstance(e, KeyboardInterrupt):
                raise
            err = e
        s.close()
        for b in s.brokers:
            try:
                b.check_sanitizers()
            except AssertionError as e:
                err = err or e
        pretty = fn.__name__[len("test_"):].replace("_", " ")
        if err is None:
            print("PASS %-70s %.2fs" % (pretty, time.monotonic() - t0), flush=True)
            if os.environ.get("VERBOSE"):
                print(s.logs())
        else:
            failed.append(fn.__name__)
            print("FAIL %-70s %.2fs" % (pretty, time.monotonic() - t0), flush=True)
            print("".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip())
            print(s.logs(), flush=True)
        s.remove()
    print("== %s: %d passed, %d failed (%.1fs)%s" % (
        file_name, len(tests) - len(failed), len(failed), time.monotonic() - t_file,
        "" if not failed else ": " + ", ".join(failed)), flush=True)
    sys.exit(1 if failed else 0)




# ---------------------------------------------------------------------------------------------
# the service in jwt mode, behind a jwt-mode broker

LIVEKIT_KEY = "APIsecuritytests"


class JwtStack:
    """A jwt-mode broker (plugin loaded) and the service in AUTH_MODE=jwt logged in with its own
    credential. HS256 with .secret, or RS256 when rsa=True (.private_key signs tokens)."""

    def __init__(self, sc, rsa=False, service_env=None):
        self.sc = sc
        self.livekit_secret = random_secret()
        env = {"AUTH_MODE": "jwt", "MQTT_USERNAME": SERVICE_USERNAME,
               "LIVEKIT_API_KEY": LIVEKIT_KEY, "LIVEKIT_API_SECRET": self.livekit_secret,
               "RING_TIMEOUT_S": "20", "OFFLINE_GRACE_S": "20"}
        if rsa:
            self.secret = None
            self.private_key, self.public_key = rsa_keypair(sc.tmp)
            self.broker = sc.broker(public_key_file=self.public_key)
            env["AUTH_JWT_PUBLIC_KEY_FILE"] = self.public_key
        else:
            self.secret = random_secret()
            self.broker = sc.broker(secret=self.secret)
            env["AUTH_JWT_SECRET"] = self.secret
        env["MQTT_PASSWORD"] = self.broker.service_password
        env.update(service_env or {})
        self.service = h.Service(sc.tmp, self.broker.url, env=env)
        sc.add(self.service, lambda: self.service.stop(expect_code=None))
        self.service.start(wait="health")

    def token(self, sub, ttl=600, **extra):
        c = claims(sub, ttl, **extra)
        return jwt_rs256(c, self.private_key) if self.secret is None else jwt_hs256(c, self.secret)

    def request(self, method, path, token=None, **kw):
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        return h.http_request(self.service.port, method, path, headers=headers, **kw)

    def user(self, prefix):
        """A user online with one device (token login, presence, events subscription)."""
        uid = "%s-%s" % (prefix, secrets.token_hex(3))
        c = h.Client(self.broker, uid, username=uid, password=self.token(uid), client_id=uid + ".dev")
        self.sc.add(c, c.close)
        h.wait_until(lambda: uid in [u.get("id") for u in (self.request("GET", "/users", self.token(uid)).json
                                                            or []) if isinstance(u, dict)],
                     what="%s listed by GET /users" % uid)
        return c

    def start(self, caller, receiver, token=None):
        return self.request("POST", "/calls/start", token or self.token(caller.user_id),
                            json_body={"callerId": caller.user_id, "receiverId": receiver.user_id})

    def check_stopped_cleanly(self):
        code = self.service.stop(expect_code=None)
        h.eq(code, 0, "service exit code on SIGTERM")

"""A real HTTP receiver of the service's webhooks, as an app's backend runs one, for the tests
(88_webhooks.py, 89_ring_offline.py): python3's http.server in a thread on loopback, recording every
POST it gets; a plain check of the signature (HS256 JWT in Authorization, sha256 claim = base64
SHA-256 of the body, iss "callsignal"); and LiveKit's own check, livekit-server-sdk's WebhookReceiver,
through verify_webhooks.mjs."""

import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Receiver:
    """Listens on 127.0.0.1:port (0: any free port) once started. fail_first: answer 500 to the
    first N tries of each webhook id; hang: never answer (until stop). .records: every POST as a
    dict {"body": str, "auth": str, "status": int, "json": parsed body, "at": monotonic time}."""

    def __init__(self, port=0, fail_first=0, hang=False):
        self.port = port
        self.fail_first = fail_first
        self.hang = hang
        self.records = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = None
        self.thread = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/hooks" % self.port

    def start(self):
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                wid = parsed.get("id") if isinstance(parsed, dict) else None
                with rec.lock:
                    tries = sum(1 for r in rec.records if r["json"] and r["json"].get("id") == wid)
                    status = 500 if tries < rec.fail_first else 200
                    if rec.hang:
                        status = 0
                    rec.records.append({"body": body, "auth": self.headers.get("Authorization", ""),
                                        "status": status, "json": parsed, "at": time.monotonic()})
                if rec.hang:
                    rec.stopping.wait(60)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.stopping.clear()
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stops listening (connections are refused from now on); start() listens again on the same port."""
        if self.server is None:
            return
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.server = None

    def delivered(self):
        """The webhooks answered 200, parsed, in the order they arrived."""
        with self.lock:
            return [r["json"] for r in self.records if r["status"] == 200]

    def wait_for(self, predicate, timeout=10.0, what="webhooks"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered()
            if predicate(got):
                return got
            time.sleep(0.05)
        raise AssertionError("%s not received within %.0fs; got %r" % (
            what, timeout, [(e.get("event"), e.get("id")) for e in self.delivered()]))


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def plain_check(body, auth, secret, now=None):
    """The signature check an app's backend can write by hand. Returns None when valid, else why."""
    parts = auth.split(".")
    if len(parts) != 3:
        return "Authorization is not a JWT: %r" % auth[:40]
    header = json.loads(b64url_decode(parts[0]))
    if header.get("alg") != "HS256":
        return "alg %r" % header.get("alg")
    mac = hmac.new(secret.encode(), (parts[0] + "." + parts[1]).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, b64url_decode(parts[2])):
        return "bad signature"
    claims = json.loads(b64url_decode(parts[1]))
    now = now or time.time()
    if claims.get("iss") != "callsignal":
        return "iss %r" % claims.get("iss")
    if not isinstance(claims.get("exp"), int) or claims["exp"] < now - 60:
        return "exp %r" % claims.get("exp")
    if claims.get("sha256") != base64.b64encode(hashlib.sha256(body.encode()).digest()).decode():
        return "sha256 claim does not match the body"
    return None


def sdk_check(records, secret):
    """livekit-server-sdk's WebhookReceiver on each record: a list of (ok, event or error)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([{"body": r["body"], "auth": r["auth"]} for r in records], f)
        path = f.name
    try:
        out = subprocess.run(["node", os.path.join(HERE, "verify_webhooks.mjs"), secret, path],
                             capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        raise AssertionError("verify_webhooks.mjs exited %d: %s" % (out.returncode, out.stderr))
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [(x["ok"], x.get("event") if x["ok"] else x.get("error")) for x in lines]

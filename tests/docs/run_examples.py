#!/usr/bin/python3
"""Runs the shell examples of README.md and docs/*.md and compares them with their documented output.

Every ```sh (or bash, shell, console) block must carry a marker on the line before its fence:

  <!-- run -->              run it, in order with the file's other blocks, in one bash session per
                            file (variables carry over), against a real Mosquitto started with the
                            shipped broker-config/mosquitto.conf and the real service started as
                            scripts/start starts it (LiveKit devkey/secret, WEB_ROOT=web), both
                            fresh for each file
  <!-- run: service -->     each command starts the service itself in the foreground (only the
                            broker is provided): it passes when the service answers GET /ready
                            with 200 and then stops cleanly on SIGTERM
  <!-- run: jwt -->         the same as run, against the jwt-mode pair of `AUTH_MODE=jwt scripts/start`
                            (scripts/jwt-runtime-dir, broker-config/mosquitto-jwt.conf); switching
                            mode restarts broker and service, so earlier state is gone
  <!-- norun: REASON -->    not run; the reason is printed
  <!-- output -->           (before any fence) the expected stdout of the last command of the
                            preceding run block, line by line

An unmarked shell block fails the test, so nobody forgets to decide. Inside a run block, a comment
line `# STATUS ...` right after a command is that command's documented result: STATUS is the HTTP
status (of the last curl of the command), then optionally `, header Name: value, ...` (needs
`curl -i`), then the body; continuation lines are comments indented by two or more spaces.
A `# STATUS` comment that follows a prose comment (`# broker down:`) describes a state the
examples do not set up: it is listed, not checked. Every command must exit 0.

Placeholders in documented output: "..." any string, {...} any object, `...` any run of text,
`....` after a literal a dot and then anything; a UUID stands for any UUID and a UTC timestamp
(2026-11-25T03:26:41.123Z) for any. Text after the body in parentheses is commentary.

The blocks see the defaults the docs promise (127.0.0.1:1883, :9001, :4002): the test runs in a
network namespace of its own (`unshare -n`, or through user namespaces when not root), so those ports are free
and nothing leaves it. The working directory is a scratch checkout (symlinks to the repository's
files, build/ holding the binaries under test), so files the examples write stay out of the tree.
Exits 77 (CTest skip) when no network namespace can be made.

Usage: run_examples.py REPO_ROOT CALLSIGNAL_BIN AUTH_PLUGIN [FILE.md ...]
Environment: MOSQUITTO_BIN, BROKER_LD_PRELOAD (sanitizer runtimes for a sanitized plugin).
Called by CTest (tests/docs/CMakeLists.txt, docs.run_examples).
"""
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
SHELL_INFOS = {"sh", "bash", "shell", "console", "zsh"}
NETNS_FLAG = "CALLSIGNAL_DOCS_NETNS"
STEP_TIMEOUT_S = 60
# Settings the service reads; a developer's exports must not leak into the examples.
CONFIG_ENV = ["PORT", "HTTP_HOST", "MQTT_URL", "MQTT_USERNAME", "MQTT_PASSWORD", "MQTT_CA_FILE",
              "MQTT_WS_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_URL", "TOKEN_TTL_S",
              "RING_TIMEOUT_S", "OFFLINE_GRACE_S", "CALL_RETENTION_S", "CALL_RETENTION_MAX",
              "WEB_ROOT", "CORS_ORIGIN", "LOG_LEVEL", "AUTH_MODE", "AUTH_JWT_SECRET",
              "AUTH_JWT_PUBLIC_KEY_FILE", "AUTH_JWT_SECRET_PREVIOUS",
              "AUTH_JWT_PUBLIC_KEY_PREVIOUS_FILE", "START_RATE_PER_MIN", "CALLSIGNAL_RUN_DIR",
              "LOG_FORMAT", "METRICS_TOKEN"]

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

failures = []


def fail(where, msg):
    failures.append(f"{where}: {msg}")
    print(f"FAIL {where}: {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# markdown


class Block:
    def __init__(self, path, line, info, marker, text):
        self.path, self.line, self.info, self.marker, self.text = path, line, info, marker, text

    @property
    def where(self):
        return f"{self.path}:{self.line}"


MARKER_RE = re.compile(r"^<!--\s*(run(?::\s*(\w+))?|norun:\s*(.+?)|output)\s*-->$")


def parse_blocks(path, rel):
    """The fenced blocks of one markdown file, each with the marker on the line before its fence."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^(```+)\s*([\w-]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m.group(1), m.group(2).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        prev = lines[start - 1].strip() if start > 0 else ""
        mm = MARKER_RE.match(prev)
        marker = None
        if mm:
            if mm.group(1).startswith("run"):
                marker = ("run", mm.group(2) or "open")
            elif mm.group(1) == "output":
                marker = ("output", None)
            else:
                marker = ("norun", mm.group(3))
        blocks.append(Block(rel, start + 1, info, marker, "\n".join(lines[start + 1:j])))
        i = j + 1
    return blocks


# ---------------------------------------------------------------------------------------------
# documented output


class Expect:
    def __init__(self, line, status, headers, body, prose):
        self.line, self.status, self.headers, self.body, self.prose = line, status, headers, body, prose


HEADER_START = re.compile(r"^([A-Z][A-Za-z0-9-]*): ")


def parse_expect(line_no, text):
    """`STATUS[, header N: v, ...][,] BODY-or-prose` -> Expect."""
    m = re.match(r"^(\d{3})\b,?\s*(.*)$", text)
    status, rest = m.group(1), m.group(2).strip()
    rest = re.sub(r"^headers?\s+", "", rest)
    headers = []
    while HEADER_START.match(rest):
        name = HEADER_START.match(rest).group(1)
        rest = rest[len(name) + 2:]
        end = re.search(r",\s*(?=[A-Z][A-Za-z0-9-]*: |[{\[])", rest)
        value = rest[:end.start()] if end else rest
        headers.append((name, value.strip().rstrip(",")))
        rest = rest[end.end():] if end else ""
    body = prose = None
    if rest[:1] in ("{", "["):
        closing = max(rest.rfind("}"), rest.rfind("]"))
        body, tail = rest[:closing + 1], rest[closing + 1:].strip()
        if tail and not (tail.startswith("(") and tail.endswith(")")):
            prose = tail
    elif rest:
        prose = rest
    return Expect(line_no, status, headers, body, prose)


def pattern(expected):
    """A regex matching the documented text with its placeholders."""
    tokens = re.split(r"(\.\.\.\.|\"\.\.\.\"|\{\.\.\.\}|\.\.\.|" + UUID_RE + "|" + TIME_RE + ")", expected)
    out = []
    for t in tokens:
        if t == "....":
            out.append(r"\..*?")
        elif t == '"..."':
            out.append(r'"(?:[^"\\]|\\.)*"')
        elif t == "{...}":
            out.append(r"\{.*?\}")
        elif t == "...":
            out.append(r".*?")
        elif re.fullmatch(UUID_RE, t or "-"):
            out.append(UUID_RE)
        elif re.fullmatch(TIME_RE, t or "-"):
            out.append(TIME_RE)
        else:
            out.append(re.escape(t))
    return re.compile("".join(out), re.S)


def matches(expected, actual):
    """Whether actual is the documented text; a JSON array without placeholders (GET /users)
    matches in any order, as the API promises no order."""
    try:
        want, got = json.loads(expected), json.loads(actual)
        if isinstance(want, list) and isinstance(got, list):
            key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
            return sorted(map(key, want)) == sorted(map(key, got))
    except ValueError:
        pass
    return pattern(expected).fullmatch(actual) is not None


class Step:
    def __init__(self, line, commands, expect=None, described=None, started=False):
        self.line, self.commands, self.expect, self.described = line, commands, expect, described
        self.started = started  # a `run: service` command: the service it starts is the check


def split_steps(block):
    """A run block as steps: the commands up to each documented result."""
    steps, pending, first, last_kind = [], [], None, None
    lines = block.text.split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        line_no = block.line + 1 + i
        s = raw.strip()
        m = re.match(r"^#\s(\d{3}\b.*)$", s)
        if m:
            text = m.group(1)
            while i + 1 < len(lines) and re.match(r"^#\s{2,}\S", lines[i + 1].strip()):
                i += 1
                text += lines[i].strip()[1:].strip()
            exp = parse_expect(line_no, text)
            if last_kind == "command":
                steps.append(Step(first, pending, expect=exp))
            else:
                steps.append(Step(first, pending, described=exp))
            pending, first, last_kind = [], None, "result"
        else:
            pending.append(raw)
            if s and not s.startswith("#"):
                last_kind = "command"
                first = first or line_no
            elif s.startswith("#"):
                last_kind = "prose"
        i += 1
    if any(l.strip() and not l.strip().startswith("#") for l in pending):
        steps.append(Step(first, pending))
    return steps


def service_steps(block):
    """A `run: service` block as steps, each command (with its continuation lines) run in the
    background until the service it starts answers /ready, then stopped with SIGTERM."""
    steps, command, first = [], [], None
    for i, raw in enumerate(block.text.split("\n")):
        s = raw.strip()
        if not command and (not s or s.startswith("#")):
            continue
        first = first or block.line + 1 + i
        command.append(raw)
        if not s.endswith("\\"):
            steps.append(Step(first, [
                "( " + "\n".join(command) + "\n) & __svc=$!",
                "__ok=1; for __i in $(seq 200); do",
                "  command curl -fs -o /dev/null http://127.0.0.1:4002/ready && { __ok=0; break; }",
                "  kill -0 $__svc 2>/dev/null || break; sleep 0.1",
                "done",
                "kill -TERM $__svc 2>/dev/null; wait $__svc; __code=$?",
                "[ $__ok -eq 0 ] || echo 'the service did not answer GET /ready with 200' >&2",
                "if command curl -s -o /dev/null http://127.0.0.1:4002/health; then",
                "  echo 'a service still answers on 4002 after SIGTERM' >&2; __ok=1; fi",
                "[ $__ok -eq 0 ] && [ $__code -eq 0 ]"], started=True))
            command, first = [], None
    return steps


# ---------------------------------------------------------------------------------------------
# processes


def port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(pred, timeout, what, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: exited with {proc.returncode}\n{read_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout} s\n{read_tail(log)}")
        time.sleep(0.05)


def read_tail(path, n=30):
    try:
        return "\n".join(open(path, errors="replace").read().splitlines()[-n:])
    except (OSError, TypeError):
        return ""


def health_ok():
    """The service is ready: connected to the broker, live calls rebuilt (GET /ready)."""
    try:
        with socket.create_connection(("127.0.0.1", 4002), timeout=1) as s:
            s.sendall(b"GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return re.match(rb"HTTP/1\.[01] 200 ", s.recv(64)) is not None
    except OSError:
        return False


class Stack:
    """The broker and the service as scripts/start runs them, in one mode (open or jwt)."""

    def __init__(self, mode, checkout, tmp, env):
        self.mode, self.checkout, self.tmp, self.env = mode, checkout, tmp, env
        self.procs = []
        self.session_env = {}

    def start(self):
        mosquitto = os.environ.get("MOSQUITTO_BIN") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        benv = dict(self.env)
        service_env = dict(self.env)
        service_env.update({"LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret",
                            "LIVEKIT_URL": "ws://localhost:7880",
                            "WEB_ROOT": os.path.join(self.checkout, "web")})
        service_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if self.mode == "jwt":
            r = subprocess.run(["scripts/jwt-runtime-dir", os.path.join(self.checkout, "build")],
                               cwd=self.checkout, env=self.env, capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError(f"scripts/jwt-runtime-dir exited {r.returncode}: {r.stderr}")
            run_dir = r.stdout.strip()
            if os.environ.get("BROKER_LD_PRELOAD"):
                benv["LD_PRELOAD"] = os.environ["BROKER_LD_PRELOAD"]
                benv["ASAN_OPTIONS"] = "detect_leaks=0"
            cmd, cwd = [mosquitto, "-c", os.path.join(self.checkout, "broker-config/mosquitto-jwt.conf")], run_dir
            service_env.update({
                "AUTH_MODE": "jwt", "MQTT_USERNAME": "callsignal-service",
                "AUTH_JWT_SECRET": open(os.path.join(run_dir, "secrets/jwt_secret")).read().strip(),
                "MQTT_PASSWORD": open(os.path.join(run_dir, "secrets/service_password")).read().strip()})
        else:
            cmd, cwd = [mosquitto, "-c", "broker-config/mosquitto.conf"], self.checkout
        blog = os.path.join(self.tmp, f"mosquitto-{self.mode}.log")
        broker = subprocess.Popen(cmd, cwd=cwd, env=benv, stdin=subprocess.DEVNULL,
                                  stdout=open(blog, "ab"), stderr=subprocess.STDOUT)
        self.procs.append(broker)
        wait_for(lambda: port_accepts(1883) and port_accepts(9001), 10, "mosquitto", broker, blog)
        if self.mode == "service":
            print("-- broker only: mosquitto on 127.0.0.1:1883/9001; the examples start callsignal", flush=True)
            return
        slog = os.path.join(self.tmp, f"callsignal-{self.mode}.log")
        self.service_log = slog
        service = subprocess.Popen(["build/service/callsignal"], cwd=self.checkout, env=service_env,
                                   stdin=subprocess.DEVNULL, stdout=open(slog, "ab"), stderr=subprocess.STDOUT)
        self.procs.append(service)
        wait_for(health_ok, 20, "callsignal", service, slog)
        print(f"-- {self.mode} mode: mosquitto on 127.0.0.1:1883/9001, callsignal on 127.0.0.1:4002", flush=True)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
        wait_for(lambda: not port_accepts(4002) and not port_accepts(1883), 10, "ports released")
        log = read_tail(getattr(self, "service_log", None), 400)
        if any(k in log for k in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")):
            fail(f"callsignal ({self.mode} mode)", "sanitizer report:\n" + log)


class Session:
    """One bash process; steps are sent with an end marker and their stdout/stderr read back."""

    MARK = "@@CALLSIGNAL-DOCS-END@@"

    def __init__(self, cwd, env):
        # curl's status goes to stderr, out of the way of what the example prints; a -w of the
        # example itself comes later on the command line and wins.
        prelude = ("curl() { command curl -w '%{stderr}@@HTTP %{http_code}@@\\n' \"$@\"; }\n"
                   "set +m\n")
        self.proc = subprocess.Popen(["bash", "--norc", "--noprofile"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, errors="replace", bufsize=1, start_new_session=True)
        self.out, self.err = queue.Queue(), queue.Queue()
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()
        self.proc.stdin.write(prelude)
        self.proc.stdin.flush()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line)
        q.put(None)

    def _collect(self, q, deadline):
        lines = []
        while True:
            try:
                line = q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("no end marker")
            if line is None:
                raise TimeoutError("bash exited")
            if line.rstrip("\n").endswith(self.MARK):
                head = line.rstrip("\n")[:-len(self.MARK)]
                if head:
                    lines.append(head)
                return "".join(lines), (head if head else None)
            lines.append(line)

    def run(self, commands):
        """(exit code, stdout, stderr) of the commands."""
        # stdin is the script itself: a command must not read the steps after it
        script = "{\n" + "\n".join(commands) + "\n} </dev/null\n__rc=$?\nprintf '\\n%s %d%s\\n' '' \"$__rc\" '" + self.MARK + \
            "'\nprintf '\\n" + self.MARK + "\\n' >&2\n"
        self.proc.stdin.write(script)
        self.proc.stdin.flush()
        deadline = time.monotonic() + STEP_TIMEOUT_S
        out, _ = self._collect(self.out, deadline)
        err, _ = self._collect(self.err, deadline)
        m = re.search(r"\n (\d+)$", out)
        rc = int(m.group(1)) if m else -1
        out = out[:m.start()] if m else out
        return rc, out, err.rstrip("\n")

    def end_block(self):
        """Stops the background jobs a block left (a watcher started with &)."""
        self.run(["kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; true"])

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


# ---------------------------------------------------------------------------------------------
# checking


def split_http(out):
    """(headers dict, body) of `curl -i` output, else ({}, out)."""
    if not out.startswith("HTTP/"):
        return None, out
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    headers = {}
    for line in head.split("\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


def check_step(block, step, rc, out, err):
    where = f"{block.path}:{step.line}"
    statuses = re.findall(r"@@HTTP (\d{3})@@", err)
    stderr_rest = re.sub(r"@@HTTP \d{3}@@\n?", "", err).strip()
    if rc != 0:
        fail(where, f"exited {rc}\n  commands: {' / '.join(c.strip() for c in step.commands if c.strip())}"
                    f"\n  stdout: {out!r}\n  stderr: {stderr_rest!r}")
        return False
    exp = step.expect
    if exp is None:
        return True
    headers, body = split_http(out.strip("\n"))
    status = statuses[-1] if statuses else None
    if status is None and headers is None and re.match(r"^\d{3}\b", out.strip()):
        status = out.strip()[:3]  # the example prints its own status (curl -w '%{http_code}')
    if headers is not None:
        status = out.split(" ", 2)[1]
    problems = []
    if status != exp.status:
        problems.append(f"status {status}, documented {exp.status}")
    if exp.headers and headers is None:
        problems.append("headers documented, but the command does not show them (curl -i)")
    for name, value in exp.headers:
        got = (headers or {}).get(name.lower())
        if got is None or not matches(value, got):
            problems.append(f"header {name}: {got!r}, documented {value!r}")
    if exp.body is not None and not matches(exp.body, body.strip()):
        problems.append(f"body\n    got:        {body.strip()}\n    documented: {exp.body}")
    if problems:
        fail(f"{block.path}:{exp.line}", "; ".join(problems))
        return False
    return True


def check_output(block, out_block, out):
    expected = [l for l in out_block.text.split("\n") if l.strip()]
    got = [l for l in out.split("\n") if l.strip()]
    if len(expected) != len(got) or not all(matches(e, g) for e, g in zip(expected, got)):
        fail(out_block.where, "output differs\n    got:\n      " + "\n      ".join(got) +
             "\n    documented:\n      " + "\n      ".join(expected))
        return False
    return True


# ---------------------------------------------------------------------------------------------
# main


def make_checkout(repo, tmp, binary, plugin):
    checkout = os.path.join(tmp, "checkout")
    os.makedirs(os.path.join(checkout, "build", "service"))
    os.makedirs(os.path.join(checkout, "build", "broker-config", "plugin"))
    for name in os.listdir(repo):
        if name == ".git" or name.startswith("build"):
            continue
        os.symlink(os.path.join(repo, name), os.path.join(checkout, name))
    os.symlink(os.path.abspath(binary), os.path.join(checkout, "build", "service", "callsignal"))
    os.symlink(os.path.abspath(plugin),
               os.path.join(checkout, "build", "broker-config", "plugin", "libcallsignal_auth.so"))
    return checkout


def enter_netns():
    """Re-runs this script in a network namespace of its own, with loopback up; returns its exit
    code, or None if already inside one. As root: `unshare -n`. Otherwise a user namespace is
    needed to make one (`unshare -rn`), and a nested one maps the caller's own uid back, so
    Mosquitto and the scripts behave as they do for that user (no privilege drop, no chown)."""
    if os.environ.get(NETNS_FLAG) == "1":
        return None
    unshare = shutil.which("unshare")
    if not unshare:
        print("skipped: `unshare` (util-linux) is missing: cannot make a network namespace")
        return SKIP
    env = dict(os.environ, **{NETNS_FLAG: "1"})
    uid, gid = os.getuid(), os.getgid()
    inner = [sys.executable] + sys.argv
    if uid == 0:
        outer = [unshare, "-n"]
    else:
        outer = [unshare, "-rn"]
        inner = [unshare, "-U", f"--map-user={uid}", f"--map-group={gid}"] + inner
    lo_up = ["sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    probe = subprocess.run(outer + lo_up + inner[:-len(sys.argv) - 1] + ["true"], capture_output=True)
    if probe.returncode != 0:
        print(f"skipped: cannot create a network namespace here ({' '.join(outer)} refused): "
              + probe.stderr.decode(errors="replace").strip())
        return SKIP
    return subprocess.run(outer + lo_up + inner, env=env).returncode


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    code = enter_netns()
    if code is not None:
        return code
    repo, binary, plugin = (os.path.abspath(p) for p in sys.argv[1:4])
    for port in (1883, 9001, 4002):
        if port_accepts(port):
            print(f"FAIL: port {port} is taken inside the fresh network namespace")
            return 1
    files = sys.argv[4:] or (["README.md"] + sorted("docs/" + f for f in os.listdir(os.path.join(repo, "docs"))
                                                    if f.endswith(".md")))
    tmp = tempfile.mkdtemp(prefix="callsignal-docs-")
    os.chmod(tmp, 0o755)  # a jwt-mode broker drops to its own user before loading the plugin
    checkout = make_checkout(repo, tmp, binary, plugin)
    # A developer's settings must not reach the examples: the service's, and the clients' own
    # config files (~/.config/mosquitto_pub, ~/.curlrc; HOME is a fresh directory).
    env = {k: v for k, v in os.environ.items()
           if k not in CONFIG_ENV and k not in (NETNS_FLAG, "XDG_CONFIG_HOME", "CURL_HOME")}
    env["XDG_RUNTIME_DIR"] = os.path.join(tmp, "xdg")
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    env["HOME"] = os.path.join(tmp, "home")
    os.makedirs(env["HOME"])
    counts = {"blocks run": 0, "results checked": 0, "outputs checked": 0, "services started": 0,
              "described only": 0, "norun": 0}
    stack = None
    try:
        for rel in files:
            blocks = parse_blocks(os.path.join(repo, rel), rel)
            session, last = None, None
            if stack is not None:  # each file starts from an empty broker and a fresh service
                stack.stop()
                stack = None
            for bi, block in enumerate(blocks):
                kind = block.marker[0] if block.marker else None
                if kind == "output":
                    if last is None or last[1] is None:
                        fail(block.where, "<!-- output --> does not follow a run block")
                    else:
                        counts["outputs checked"] += 1
                        if check_output(last[0], block, last[1]):
                            print(f"ok   {block.where}: output of {last[0].where}")
                    continue
                last = None
                if block.info not in SHELL_INFOS:
                    continue
                if kind is None:
                    fail(block.where, "shell block without <!-- run --> or <!-- norun: reason --> before it")
                    continue
                if kind == "norun":
                    counts["norun"] += 1
                    print(f"--   {block.where}: not run ({block.marker[1]})")
                    continue
                mode = block.marker[1]
                if mode not in ("open", "jwt", "service"):
                    fail(block.where, f"unknown run mode {mode!r}")
                    continue
                if stack is None or stack.mode != mode:
                    if stack is not None:
                        stack.stop()
                    stack = Stack(mode, checkout, tmp, env)
                    stack.start()
                if session is None:
                    session = Session(checkout, env)
                counts["blocks run"] += 1
                last_out = None
                steps = split_steps(block) if mode != "service" else service_steps(block)
                for step in steps:
                    if step.described is not None:
                        counts["described only"] += 1
                        print(f"--   {block.path}:{step.described.line}: {step.described.status} described, "
                              "not set up by the examples")
                    if not any(c.strip() and not c.strip().startswith("#") for c in step.commands):
                        continue
                    try:
                        rc, out, err = session.run(step.commands)
                    except TimeoutError as e:
                        fail(f"{block.path}:{step.line}", f"did not finish within {STEP_TIMEOUT_S} s ({e})")
                        session.close()
                        session = Session(checkout, env)
                        break
                    if os.environ.get("VERBOSE"):
                        print(f"     {block.path}:{step.line} rc={rc} out={out!r} err={err!r}")
                    ok = check_step(block, step, rc, out, err)
                    if step.started:
                        counts["services started"] += 1
                        if ok:
                            print(f"ok   {block.path}:{step.line}: the service started, answered /ready, stopped")
                    if step.expect is not None:
                        counts["results checked"] += 1
                        if ok:
                            print(f"ok   {block.path}:{step.expect.line}: {step.expect.status}")
                    last_out = out if step.expect is None else None
                session.end_block()
                last = (block, last_out)
            if session is not None:
                session.close()
    except RuntimeError as e:
        fail("environment", str(e))
    finally:
        if stack is not None:
            stack.stop()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    if counts["results checked"] + counts["outputs checked"] + counts["services started"] == 0:
        fail("docs", "no documented result was checked")
    print("docs examples run as documented" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

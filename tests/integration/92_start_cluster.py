#!/usr/bin/python3
"""scripts/start-cluster end to end: the real script, on ports of its own (REDIS_PORT, MQTT_PORT,
MQTT_WS_PORT, HTTP_PORT, CLUSTER_DIR) and with this build's binary (CALLSIGNAL_BIN: nothing
installed or built), starts Redis, the shipped broker config with only its two listener ports
changed, and two instances; a call started on instance 1 is answered and ended on instance 2 and
both devices get every event; then Ctrl-C (SIGINT to the script's process group, as a terminal
sends it, or to the script alone) stops every process the script started and frees its ports."""

import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

SCRIPT = os.path.join(h.REPO, "scripts", "start-cluster")


def two_free_ports():
    """A free port p with p + 1 free too (the second instance's)."""
    for _ in range(50):
        p = h.free_port()
        if p < 65535 and not h.port_accepts(p + 1):
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue
    raise h.HarnessError("no two consecutive free ports")


def session_processes(sid):
    """{pid: command name} of the live (not zombie) processes of session sid."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            out[int(name)] = comm
    return out


class Cluster:
    """The script running in a session of its own, on free ports, in tmpdir."""

    def __init__(self, tmpdir):
        self.dir = tmpdir
        self.redis_port, self.mqtt_port, self.ws_port = h.free_port(), h.free_port(), h.free_port()
        self.http_port = two_free_ports()
        env = {k: v for k, v in os.environ.items() if k not in h.CONFIG_ENV_VARS}
        env.update({"REDIS_PORT": str(self.redis_port), "MQTT_PORT": str(self.mqtt_port),
                    "MQTT_WS_PORT": str(self.ws_port), "HTTP_PORT": str(self.http_port),
                    "CLUSTER_DIR": os.path.join(tmpdir, "cluster"),
                    "CALLSIGNAL_BIN": os.path.abspath(os.environ["CALLSIGNAL_BIN"])})
        self.log_path = os.path.join(tmpdir, "start-cluster.log")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SCRIPT, "2"], env=env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.ports = [self.http_port, self.http_port + 1]

    def wait_ready(self):
        def ready():
            check(self.proc.poll() is None, "start-cluster exited with %s:\n%s" % (
                self.proc.returncode, h.tail(self.log_path)))
            try:
                return all(h.http_request(p, "GET", "/ready", timeout=1).status == 200 for p in self.ports)
            except OSError:
                return False
        h.wait_until(ready, 30, interval=0.1, what="both instances ready")

    def log(self):
        return h.tail(self.log_path, 60)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in session_processes(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def broker_at(port):
    return type("ClusterBroker", (), {"port": port, "wsport": 0})()


def call_across_instances(cluster):
    one, two = cluster.ports
    a = h.Client(broker_at(cluster.mqtt_port), "alice-%d" % os.getpid(), client_id="alice-dev")
    b = h.Client(broker_at(cluster.mqtt_port), "bob-%d" % os.getpid(), client_id="bob-dev")
    try:
        for port in cluster.ports:
            h.wait_until(lambda port=port: {a.user_id, b.user_id} <= {
                u.get("id") for u in h.http_request(port, "GET", "/users").json}, 10,
                what="both users online on the instance at %d" % port)
        r = h.http_request(one, "POST", "/calls/start", json_body={"callerId": a.user_id,
                                                                    "receiverId": b.user_id})
        eq(r.status, 200, "start on instance 1")
        call_id = r.json["id"]
        b.expect_event("INCOMING_CALL", call_id=call_id)
        r = h.http_request(two, "POST", "/calls/answer", json_body={"callId": call_id, "answer": "ACCEPT"})
        eq(r.status, 200, "answer on instance 2")
        for c in (a, b):
            c.expect_event("ACCEPT_CALL", call_id=call_id)
        r = h.http_request(one, "GET", "/calls/" + call_id)
        eq((r.status, r.json.get("status")), (200, "ONGOING"), "the call as instance 1 reads it")
        r = h.http_request(two, "POST", "/calls/end", json_body={"callId": call_id, "userId": b.user_id})
        eq(r.status, 200, "end on instance 2")
        for c in (a, b):
            c.expect_event("END_CALL", call_id=call_id)
        return call_id
    finally:
        a.close()
        b.close()


def stops_everything(cluster, send_sigint):
    started = session_processes(cluster.proc.pid)
    names = sorted(started.values())
    check(names.count("callsignal") == 2 and "redis-server" in names and "mosquitto" in names,
          "processes of the cluster: %r" % names)
    send_sigint()
    try:
        code = cluster.proc.wait(20)
    except subprocess.TimeoutExpired:
        raise AssertionError("start-cluster still running 20 s after SIGINT:\n%s" % cluster.log())
    eq(code, 130, "start-cluster's exit code after Ctrl-C")
    h.wait_until(lambda: not any(os.path.exists("/proc/%d" % p) and p in session_processes(cluster.proc.pid)
                                 for p in started), 10, what="every process of the cluster gone")
    left = session_processes(cluster.proc.pid)
    eq(left, {}, "processes left in the script's session")
    busy = [p for p in (cluster.redis_port, cluster.mqtt_port, cluster.ws_port) + tuple(cluster.ports)
            if h.port_accepts(p)]
    eq(busy, [], "ports still accepting after Ctrl-C")
    return names


def run_cluster(env, how):
    cluster = Cluster(env.tmp)
    try:
        cluster.wait_ready()
        # The broker runs the shipped config with only its two listener lines changed.
        with open(os.path.join(h.BROKER_CONFIG_DIR, "mosquitto.conf")) as f:
            shipped = f.read().split("\n")
        with open(os.path.join(env.tmp, "cluster", "mosquitto.conf")) as f:
            used = f.read().split("\n")
        eq(len(used), len(shipped), "lines of the broker config used")
        changed = [(s, u) for s, u in zip(shipped, used) if s != u]
        eq(changed, [("listener 1883 127.0.0.1", "listener %d 127.0.0.1" % cluster.mqtt_port),
                     ("listener 9001 lo", "listener %d lo" % cluster.ws_port)], "broker config changes")
        call_id = call_across_instances(cluster)
        if how == "group":
            names = stops_everything(cluster, lambda: os.killpg(cluster.proc.pid, signal.SIGINT))
        else:
            names = stops_everything(cluster, lambda: cluster.proc.send_signal(signal.SIGINT))
        print("    start-cluster: call %s started on :%d, answered and ended on :%d; SIGINT to %s "
              "stopped all of %s" % (call_id[:8], cluster.ports[0], cluster.ports[1],
                                     "the process group" if how == "group" else "the script", names))
    except BaseException:
        print(cluster.log())
        raise
    finally:
        cluster.kill()


@h.options(start_service=False, start_broker=False)
def test_a_call_across_two_instances_then_ctrl_c_stops_every_process(env):
    run_cluster(env, "group")


@h.options(start_service=False, start_broker=False)
def test_sigint_to_the_script_alone_stops_every_process_too(env):
    run_cluster(env, "script")


if __name__ == "__main__":
    h.main(shared=False)

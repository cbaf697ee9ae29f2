#!/usr/bin/python3
"""Live calls outlive the service: the retained users/{id}/call topic follows every transition,
GET /calls/{id} and GET /users/{id}/call read it back, and after a restart (SIGTERM or kill -9)
or a broker restart every live call is where it was: answerable, endable, its token available,
its ring deadline kept, the offline grace started for parties who did not come back. Torn
retained states (one party's topic written, the other's not) are rebuilt by the rule of
docs/mqtt.md."""

import json
import os
import queue
import secrets
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

LIVEKIT = {"LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret-of-at-least-32-characters!!"}


def call_topic(user_id):
    return "users/%s/call" % user_id


def reader(env, user_id):
    """A device of user_id that only reads its call topic (no presence): the broker replays the
    retained value on subscribe. Returns the Client; read with next_call()."""
    c = env.client(user_id, client_id="reader-" + secrets.token_hex(4), presence=False,
                   subscribe=False, will=False)
    c.mqtt.subscribe(call_topic(user_id), qos=1)
    return c


def next_call(client, timeout=5.0):
    """The next message on the client's call topic: the Call as a dict, or None for an empty
    (cleared) payload. Messages on other topics are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("%s: nothing on %s within %.1fs" % (
                client.user_id, call_topic(client.user_id), timeout))
        try:
            topic, payload, _retain = client.messages.get(timeout=left)
        except queue.Empty:
            continue
        if topic == call_topic(client.user_id):
            return json.loads(payload) if payload else None


def wait_call_topic(client, pred, what, timeout=5.0):
    """Reads the call topic until pred(value) holds; returns that value."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            value = next_call(client, timeout=max(0.05, deadline - time.monotonic()))
        except AssertionError:
            break
        seen.append(value)
        if pred(value):
            return value
    raise AssertionError("%s: call topic never showed %s (saw %r)" % (client.user_id, what, seen))


def kill9_and_restart(env):
    env.service.stop(sig=signal.SIGKILL, expect_code=-signal.SIGKILL)
    env.service.start()


def user_call(env, user_id):
    return env.get("/users/%s/call" % user_id)


# --- the retained topic and the reads ----------------------------------------------------------


@h.options()
def test_call_topic_follows_every_transition_for_both_parties(env):
    a, b = env.user("a"), env.user("b")
    ra, rb = reader(env, a.user_id), reader(env, b.user_id)
    call = env.start_call(a, b)
    for r in (ra, rb):
        got = wait_call_topic(r, lambda v: v is not None, "the ringing call")
        eq((got["id"], got["status"], got["revision"]), (call["id"], "DIALLING", 1), "ringing call topic")
        eq(got["ringDeadline"], call["ringDeadline"], "ringDeadline on the topic")
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    h.expect_ok(env.answer(call["id"], "ACCEPT"))
    for r in (ra, rb):
        got = next_call(r)
        eq((got["status"], got["revision"]), ("ONGOING", 2), "accepted call topic")
        check("ringDeadline" not in got, "an ONGOING call carries no ringDeadline")
    h.expect_ok(env.end(call["id"], a))
    for r in (ra, rb):
        eq(next_call(r), None, "call topic cleared when the call ends")
    eq(a.expect_event("ACCEPT_CALL", call_id=call["id"])["id"], "%s:2" % call["id"], "ACCEPT_CALL id")
    eq(a.expect_event("END_CALL", call_id=call["id"])["id"], "%s:3" % call["id"], "END_CALL id")


@h.options()
def test_device_connecting_mid_ring_gets_the_call_from_its_retained_topic(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    phone = reader(env, b.user_id)  # bob's phone wakes up while it rings
    got = next_call(phone)
    eq((got["id"], got["status"]), (call["id"], "DIALLING"), "retained call of a device connecting mid-ring")
    check(iso_ms(got["ringDeadline"]) > time.time() * 1000, "ringDeadline of a live ring is in the future")
    h.expect_ok(env.end(call["id"], b))
    eq(next_call(phone), None, "cleared after the cancel")
    late = reader(env, b.user_id)  # a device connecting now finds no call
    late_a = reader(env, a.user_id)
    ongoing = env.start_call(a, env.user("c"))
    eq(next_call(late_a)["id"], ongoing["id"], "a's next call reaches a's topic")
    check(late.messages.empty(), "a cleared retained topic replays nothing, and b has no new call")


@h.options()
def test_rest_reads_of_a_call_and_of_a_users_live_call(env):
    a, b, c = env.user("a"), env.user("b"), env.user("c")
    expect_error(user_call(env, a.user_id), 404, "NO_LIVE_CALL")
    call = env.start_call(a, b)
    r = user_call(env, b.user_id)
    eq((r.status, r.json["id"], r.json["status"], r.json["revision"]), (200, call["id"], "DIALLING", 1),
       "GET /users/{receiver}/call")
    eq(r.json["ringDeadline"], call["ringDeadline"], "ringDeadline read back")
    r = env.get("/calls/" + call["id"])
    eq((r.status, r.json), (200, call), "GET /calls/{id} is the Call of the start reply")
    expect_error(user_call(env, c.user_id), 404, "NO_LIVE_CALL")
    h.expect_ok(env.end(call["id"], a))
    r = env.get("/calls/" + call["id"])
    eq((r.status, r.json["status"], r.json["revision"]), (200, "ENDED", 2), "a finished call stays readable")
    expect_error(user_call(env, a.user_id), 404, "NO_LIVE_CALL")
    expect_error(env.get("/calls/" + str(uuid.uuid4())), 404, "NOT_FOUND", "Call not found")
    expect_error(env.post("/calls/" + call["id"], {}), 404, "NOT_FOUND")


# --- restart of the service ----------------------------------------------------------------------


@h.options(service_env=dict(LIVEKIT))
def test_ongoing_call_survives_a_service_restart(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    h.expect_ok(env.answer(call["id"], "ACCEPT"))
    a.expect_event("ACCEPT_CALL", call_id=call["id"])
    env.service.restart()
    r = env.get("/token?room=%s&id=%s" % (call["id"], b.user_id))
    eq(r.status, 200, "GET /token after the restart (%s)" % r.body[:200])
    eq(env.get("/calls/" + call["id"]).json["status"], "ONGOING", "call after the restart")
    r = env.end(call["id"], b)
    eq((r.status, r.json["status"]), (200, "ENDED"), "end after the restart")
    a.expect_event("END_CALL", call_id=call["id"])
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    b.expect_event("ACCEPT_CALL", call_id=call["id"])
    b.expect_event("END_CALL", call_id=call["id"])
    a.expect_no_event(0.5)
    b.expect_no_event(0.1)


@h.options(service_env=dict(LIVEKIT))
def test_ongoing_call_survives_kill_9(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    h.expect_ok(env.answer(call["id"], "ACCEPT"))
    a.expect_event("ACCEPT_CALL", call_id=call["id"])
    b.expect_event("INCOMING_CALL")
    b.expect_event("ACCEPT_CALL")
    kill9_and_restart(env)
    eq(env.get("/token?room=%s&id=%s" % (call["id"], a.user_id)).status, 200, "GET /token after kill -9")
    r = env.end(call["id"], a)
    eq((r.status, r.json["status"]), (200, "ENDED"), "end after kill -9")
    ea = a.expect_event("END_CALL", call_id=call["id"])
    eb = b.expect_event("END_CALL", call_id=call["id"])
    eq(ea["id"], eb["id"], "one END_CALL id for both parties")
    a.expect_no_event(0.5)
    b.expect_no_event(0.1)
    expect_error(user_call(env, a.user_id), 404, "NO_LIVE_CALL")


@h.options()
def test_ringing_call_survives_kill_9_and_can_be_answered(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    kill9_and_restart(env)
    r = env.answer(call["id"], "ACCEPT")
    eq((r.status, r.json["status"], r.json["revision"]), (200, "ONGOING", 2), "answer after kill -9")
    a.expect_event("ACCEPT_CALL", call_id=call["id"])
    b.expect_event("ACCEPT_CALL", call_id=call["id"])
    h.expect_ok(env.end(call["id"], b))
    a.expect_event("END_CALL", call_id=call["id"])


@h.options(service_env={"RING_TIMEOUT_S": "8"})
def test_ring_deadline_is_kept_across_a_restart(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    time.sleep(2.0)
    kill9_and_restart(env)
    eq(user_call(env, b.user_id).json["ringDeadline"], call["ringDeadline"], "ringDeadline after kill -9")
    ev = a.expect_event("END_CALL", call_id=call["id"], timeout=15)
    eq(ev["call"]["status"], "MISSED", "status at the ring deadline")
    late_ms = iso_ms(ev["call"]["endedAt"]) - iso_ms(call["ringDeadline"])
    print("    MISSED %d ms after the original deadline (a fresh ring timeout would be ~6000 ms later)"
          % late_ms)
    check(-100 <= late_ms < 4000, "MISSED at %d ms from the original deadline, not at it" % late_ms)
    b.expect_event("END_CALL", call_id=call["id"])


@h.options(service_env={"OFFLINE_GRACE_S": "2"})
def test_party_who_does_not_come_back_gets_the_grace_period_after_a_restart(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    h.expect_ok(env.answer(call["id"], "ACCEPT"))
    a.expect_event("ACCEPT_CALL", call_id=call["id"])
    env.service.stop(sig=signal.SIGKILL, expect_code=-signal.SIGKILL)
    b.drop()  # bob's device dies while the service is down: the will clears his presence
    time.sleep(0.3)
    env.service.start()
    eq(env.get("/calls/" + call["id"]).json["status"], "ONGOING", "call right after the restart")
    ev = a.expect_event("END_CALL", call_id=call["id"], timeout=10)
    eq((ev["call"]["status"], ev["call"].get("errMsg")), ("ERROR", b.name + " went offline"),
       "call ended by the grace period")


# --- the gate while restoring ------------------------------------------------------------------------

# The service may read its replay marker topic but not write it: the marker never comes back, so the
# service stays in its restoring state until the bus stops waiting for it (10 s).
MARKER_EATING_ACL = "topic readwrite users/#\ntopic read callsignal/sync/#\n"


@h.options(start_broker=False, start_service=False,
           broker_opts={"conf": h.default_broker_conf() + "acl_file {dir}/acl\n"})
def test_call_control_answers_503_not_ready_until_the_replay_is_complete(env):
    with open(os.path.join(env.tmp, "acl"), "w") as f:
        f.write(MARKER_EATING_ACL)
    env.broker.start()
    a, b = env.client(env.uid("a")), env.client(env.uid("b"))
    env.service.start(wait="listening")
    h.wait_until(lambda: env.get("/ready").json.get("error") == "NOT_READY", 5, what="connected, restoring")
    expect_error(env.get("/ready"), 503, "NOT_READY")
    eq((env.get("/health").status, env.get("/health").json.get("status")), (200, "restoring"),
       "liveness while restoring")
    expect_error(env.post("/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}), 503, "NOT_READY")
    expect_error(env.get("/users/%s/call" % a.user_id), 503, "NOT_READY")
    expect_error(env.get("/calls/" + str(uuid.uuid4())), 503, "NOT_READY")
    expect_error(env.get("/calls?userId=" + a.user_id), 503, "NOT_READY")
    b.expect_no_event(0.2)
    h.wait_until(lambda: env.get("/ready").status == 200, 20, what="the service opening call control")
    check("did not come back" in env.service.stderr(), "no warning about the lost replay marker")
    call = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=call["id"])
    eq(env.get("/calls?userId=" + a.user_id).status, 200, "the history once open")


# --- torn retained states --------------------------------------------------------------------------


def retained_call(env, caller, receiver, status, revision, created_ms=None, ring_s=30):
    now = created_ms or int(time.time() * 1000)
    call = {"id": str(uuid.uuid4()),
            "caller": {"id": caller.user_id, "name": caller.name, "location": ""},
            "receiver": {"id": receiver.user_id, "name": receiver.name, "location": ""},
            "status": status, "createdAt": iso(now), "revision": revision}
    if status == "DIALLING":
        call["ringDeadline"] = iso(now + ring_s * 1000)
    else:
        call["answeredAt"] = iso(now + 1000)
    return call


# The three tests below plant retained call topics and check the rebuild from them: that is the
# memory engine's (STATE_ENGINE=memory); with Redis the store is the truth and the topics follow it.
@h.options(start_service=False, redis=False)
def test_torn_accept_is_completed_from_the_receivers_newer_topic(env):
    a, b = env.client(env.uid("a")), env.client(env.uid("b"))
    rung = retained_call(env, a, b, "DIALLING", 1)
    accepted = dict(retained_call(env, a, b, "ONGOING", 2), id=rung["id"], createdAt=rung["createdAt"])
    env.raw_publish(call_topic(b.user_id), json.dumps(accepted))  # the receiver's topic went first
    env.raw_publish(call_topic(a.user_id), json.dumps(rung))
    env.service.start()
    r = env.get("/calls/" + rung["id"])
    eq((r.status, r.json["status"], r.json["revision"]), (200, "ONGOING", 2), "higher revision wins")
    for c in (a, b):  # the ACCEPT_CALL of the cut-short transition goes out now
        eq(c.expect_event("ACCEPT_CALL", call_id=rung["id"])["id"], rung["id"] + ":2", "event id")
    eq(next_call(reader(env, a.user_id))["revision"], 2, "caller's topic repaired")


@h.options(start_service=False, redis=False)
def test_torn_start_rings_the_receiver_and_torn_end_is_cleared(env):
    a, b, c, d = (env.client(env.uid(p)) for p in "abcd")
    started = retained_call(env, a, b, "DIALLING", 1)
    env.raw_publish(call_topic(b.user_id), json.dumps(started))  # receiver written, caller not yet
    ended = retained_call(env, c, d, "ONGOING", 2)
    env.raw_publish(call_topic(c.user_id), json.dumps(ended))  # receiver cleared, caller not yet
    env.service.start()
    b.expect_event("INCOMING_CALL", call_id=started["id"])
    eq(user_call(env, a.user_id).json["id"], started["id"], "the started call is the caller's again")
    expect_error(env.get("/calls/" + ended["id"]), 404, "NOT_FOUND")
    expect_error(user_call(env, c.user_id), 404, "NO_LIVE_CALL")
    rc = reader(env, c.user_id)
    rb = reader(env, b.user_id)
    eq(next_call(rb)["id"], started["id"], "the receiver's topic still shows the ringing call")
    check(rc.messages.empty(), "the caller-only topic of an ended call was cleared: %r"
          % (None if rc.messages.empty() else rc.messages.queue[0],))
    c.expect_no_event(0.3)


@h.options(start_service=False, redis=False, service_env={"RING_TIMEOUT_S": "30"})
def test_ring_deadline_passed_while_the_service_was_down_is_missed_at_once(env):
    a, b = env.client(env.uid("a")), env.client(env.uid("b"))
    stale = retained_call(env, a, b, "DIALLING", 1, created_ms=int(time.time() * 1000) - 60000)
    for u in (b, a):
        env.raw_publish(call_topic(u.user_id), json.dumps(stale))
    env.service.start()
    ev = a.expect_event("END_CALL", call_id=stale["id"])
    eq((ev["call"]["status"], ev["id"]), ("MISSED", stale["id"] + ":2"), "stale ring ends as MISSED")
    b.expect_event("END_CALL", call_id=stale["id"])


# --- many live calls, with the shipped broker config ------------------------------------------------

MANY = 1500  # 3,000 retained topics: three times Mosquitto's default queue of 1,000 per client

SHIPPED_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "broker-config",
                            "mosquitto.conf")


def shipped_conf():
    with open(SHIPPED_CONF) as f:
        text = f.read()
    text = text.replace("listener 1883 ", "listener {port} ").replace("listener 9001 ", "listener {wsport} ")
    return text + "log_dest file {dir}/mosquitto.log\n"


@h.options(start_broker=False, start_service=False, service_env={"OFFLINE_GRACE_S": "600"})
def test_restart_rebuilds_every_live_call_beyond_the_brokers_default_queue(env):
    env.broker = h.Broker(env.tmp, conf=shipped_conf())
    env.service = h.Service(env.tmp, env.broker.url, env={"OFFLINE_GRACE_S": "600"})
    env.broker.start()
    pub = env.client("publisher", client_id="pub-" + secrets.token_hex(4), presence=False, subscribe=False,
                     will=False)
    now = int(time.time() * 1000)
    pending = []
    for i in range(MANY):
        call = {"id": str(uuid.uuid4()), "caller": {"id": "ma%d" % i, "name": "A", "location": ""},
                "receiver": {"id": "mb%d" % i, "name": "B", "location": ""}, "status": "ONGOING",
                "createdAt": iso(now), "answeredAt": iso(now + 1), "revision": 2}
        payload = json.dumps(call).encode()
        for user in ("mb%d" % i, "ma%d" % i):
            pending.append(pub.mqtt.publish(call_topic(user), payload, qos=1, retain=True))
    for info in pending:
        info.wait_for_publish(30)
    check(all(info.is_published() for info in pending), "not every retained call was acknowledged")
    env.service.start(timeout=60)
    health = env.get("/health").json
    eq(health["liveCalls"], MANY, "live calls rebuilt from %d retained topics" % (2 * MANY))
    eq(user_call(env, "ma%d" % (MANY - 1)).status, 200, "the last call written is live")


# --- broker restart ----------------------------------------------------------------------------------


@h.options()
def test_broker_restart_loses_no_live_call(env):
    a, b = env.user("a"), env.user("b")
    call = env.start_call(a, b)
    h.expect_ok(env.answer(call["id"], "ACCEPT"))
    env.close_clients()
    env.broker.restart()  # persistence false: every retained message is gone
    h.wait_until(lambda: env.get("/ready").status == 200, 40, what="service reconnected")
    ra = reader(env, a.user_id)
    got = next_call(ra, timeout=10)
    eq((got["id"], got["status"]), (call["id"], "ONGOING"), "call topic written again after the broker restart")
    eq(env.get("/calls/" + call["id"]).json["status"], "ONGOING", "call kept by the service")


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def iso_ms(text):
    import calendar
    secs = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000 + int(text[20:23])


if __name__ == "__main__":
    h.main(shared=False)

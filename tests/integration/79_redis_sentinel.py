#!/usr/bin/python3
"""STATE_ENGINE=redis with REDIS_URL=redis-sentinel://...: the instances ask the sentinels where the
master is, and follow a failover. Real processes on loopback: a Redis master, its replica, three
sentinels (quorum 2, down after 1 s), Mosquitto and two service instances. The master is killed
with SIGKILL; printed: how long until the sentinels name the replica and until call control works
again, the calls from before the failover found and ended after it, calls lost and stranded. Also:
the old master back as a replica takes over at a second failover; a sentinel that names a
replica (ROLE says slave) is passed over for the next one; an unusable
REDIS_URL exits 2 with a message, before anything starts."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

NO_LIMIT = {"START_RATE_PER_MIN": "0", "CALL_RETENTION_S": "600", "RING_TIMEOUT_S": "120"}


def post(service, path, body):
    return h.http_request(service.port, "POST", path, json_body=body)


def start(service, a, b):
    return post(service, "/calls/start", {"callerId": a.user_id, "receiverId": b.user_id})


def until_stored(request, timeout=5.0):
    """request() again while it answers 503 STORE_UNAVAILABLE (an instance tries Redis again
    every 0.5 s after losing it), at most timeout; the last response."""
    deadline = time.monotonic() + timeout
    while True:
        r = request()
        if r.status != 503 or time.monotonic() > deadline:
            return r
        h.expect_error(r, 503, "STORE_UNAVAILABLE")
        time.sleep(0.05)


@h.options(redis="sentinel", instances=2, service_env=NO_LIMIT)
def test_instances_follow_the_master_the_sentinels_name_after_it_is_killed(env):
    one, two = env.instances
    sentinels = env.redis
    old = sentinels.master()
    ringing = [(env.user("r"), env.user("s")) for _ in range(5)]
    talking = [(env.user("t"), env.user("u")) for _ in range(5)]
    probes = [(env.user("p"), env.user("q")) for _ in range(2)]
    rung, live = [], []
    for a, b in ringing:
        r = start(one, a, b)
        eq(r.status, 200, "start on instance 1")
        rung.append(r.json["id"])
        b.expect_event("INCOMING_CALL", call_id=r.json["id"])
    for a, b in talking:
        r = start(one, a, b)
        eq(r.status, 200, "start on instance 1")
        call_id = r.json["id"]
        eq(post(two, "/calls/answer", {"callId": call_id, "answer": "ACCEPT"}).status, 200, "answer on 2")
        a.expect_event("ACCEPT_CALL", call_id=call_id)
        b.expect_event("INCOMING_CALL", call_id=call_id)
        b.expect_event("ACCEPT_CALL", call_id=call_id)
        live.append(call_id)
    # Replication is asynchronous: a write the master acknowledged but had not sent to the
    # replica is lost with it. Here the calls above are on the replica before the kill.
    eq(old.command("WAIT", "1", "5000"), 1, "replicas that have the calls before the kill")

    t_kill = time.monotonic()
    old.stop(signal.SIGKILL)
    named = started = None
    refused = 0
    p, q = probes[0]
    turn = 0
    while started is None and time.monotonic() - t_kill < 60:
        if named is None and any(sentinels.master_addr(i)[1] != old.port
                                 for i in range(len(sentinels.sentinels))):
            named = time.monotonic() - t_kill  # by the first sentinel that knows
        turn += 1
        s = (one, two)[turn % 2]
        r = start(s, p, q)
        if r.status == 200:
            started = time.monotonic() - t_kill
            eq(post(s, "/calls/end", {"callId": r.json["id"], "userId": p.user_id}).status, 200,
               "end of the first call after the failover")
            break
        h.expect_error(r, 503, "STORE_UNAVAILABLE")
        refused += 1
        time.sleep(0.1)
    check(started is not None, "no call could start within 60 s of the master's SIGKILL")
    if named is None:
        named = started
    both = None
    # The sentinels learn of the failover from its leader within a moment of each other.
    h.wait_until(lambda: sentinels.master_addr()[1] != old.port, 10, what="the first sentinel naming the replica")
    new = sentinels.master()
    # Both instances (and each one's outbox connection) moved to the new master.
    a, b = probes[1]
    for s in (one, two):
        r = until_stored(lambda: start(s, a, b))
        eq(r.status, 200, "start on instance %d after the failover" % (1 + (s is two)))
        b.expect_event("INCOMING_CALL", call_id=r.json["id"])
        eq(post(s, "/calls/end", {"callId": r.json["id"], "userId": a.user_id}).status, 200, "end")
        b.expect_event("END_CALL", call_id=r.json["id"])
    both = time.monotonic() - t_kill

    found = ended = lost = 0
    for (a, b), call_id, status in [(pr, c, "DIALLING") for pr, c in zip(ringing, rung)] + \
                                   [(pr, c, "ONGOING") for pr, c in zip(talking, live)]:
        r = h.http_request(two.port, "GET", "/calls/" + call_id)
        if r.status != 200 or r.json.get("status") != status:
            lost += 1
            continue
        found += 1
        r = post((one, two)[found % 2], "/calls/end", {"callId": call_id, "userId": a.user_id})
        eq((r.status, r.json.get("status")), (200, "ENDED"),
           "end of %s call %s after the failover" % (status, call_id))
        for c in (a, b):
            c.expect_event("END_CALL", call_id=call_id, timeout=10)
        ended += 1
    parties = [c for pair in ringing + talking + probes for c in pair]
    busy = sum(h.http_request(one.port, "GET", "/users/%s/call" % c.user_id).status != 404 for c in parties)
    live_left = new.command("SCARD", "callsignal:live")
    deadline = time.monotonic() + 10
    while new.command("XLEN", "callsignal:outbox") and time.monotonic() < deadline:
        time.sleep(0.05)
    outbox_left = new.command("XLEN", "callsignal:outbox")
    print("    SIGKILL of the master 127.0.0.1:%d: the sentinels named 127.0.0.1:%d after %.1fs; the "
          "first call started after %.1fs (%d starts refused 503 meanwhile), on both instances "
          "within %.1fs; %d calls from before "
          "the failover: %d found, %d ended after it (%d lost); %d busy lines, %d live calls, %d "
          "outbox entries left" % (old.port, new.port, named, started, refused, both, len(rung + live),
                                   found, ended, lost, busy, live_left, outbox_left))
    eq((lost, busy, live_left, outbox_left), (0, 0, 0, 0),
       "calls lost, busy lines, live calls and outbox entries left")
    back = "Redis master '%s' at '127.0.0.1:%d' answers again" % (sentinels.NAME, new.port)
    for i, s in enumerate(env.instances):
        check(back in s.stderr(), "instance %d's log says %r:\n%s" % (i + 1, back, s.log(20)))


def in_sync(server):
    """server is a replica whose link to its master is up. The sentinels' REPLICAOF closes the
    connections a server has, the one asking included: that answers False, to be asked again."""
    try:
        return "master_link_status:up" in server.command("INFO", "replication")
    except OSError:
        return False


@h.options(redis="sentinel", instances=2, service_env=NO_LIMIT)
def test_the_old_master_back_as_a_replica_takes_over_at_the_next_failover(env):
    """The killed master is started again (empty, as a master): the sentinels make it a replica
    of the new master, and the instances keep using the new one. Then the new master is killed
    too: the old one, now a replica in sync, is promoted, and a call rung before goes on."""
    one, two = env.instances
    sentinels = env.redis
    first = sentinels.master()
    first.stop(signal.SIGKILL)
    h.wait_until(lambda: sentinels.master_addr()[1] != first.port, 30, what="the first failover")
    second = sentinels.master()
    a, b = env.user("a"), env.user("b")
    r = until_stored(lambda: start(one, a, b), timeout=10)
    eq(r.status, 200, "start after the first failover")
    call_id = r.json["id"]
    b.expect_event("INCOMING_CALL", call_id=call_id)
    first.start()  # empty, and a master until the sentinels reconfigure it
    h.wait_until(lambda: in_sync(first), 60,
                 what="the old master made a replica of the new one, in sync")
    r = h.http_request(two.port, "GET", "/calls/" + call_id)
    eq((r.status, r.json.get("status")), (200, "DIALLING"), "the call read from the new master")
    eq(second.command("WAIT", "1", "5000"), 1, "the old master has the call before the second kill")
    t_kill = time.monotonic()
    second.stop(signal.SIGKILL)
    h.wait_until(lambda: sentinels.master_addr()[1] == first.port, 60, what="the second failover")
    r = until_stored(lambda: post(two, "/calls/answer", {"callId": call_id, "answer": "ACCEPT"}), 10)
    eq((r.status, r.json.get("status")), (200, "ONGOING"), "answer after the second failover")
    answered = time.monotonic() - t_kill
    for c in (a, b):
        c.expect_event("ACCEPT_CALL", call_id=call_id, timeout=10)
    r = until_stored(lambda: post(one, "/calls/end", {"callId": call_id, "userId": b.user_id}), 10)
    eq((r.status, r.json.get("status")), (200, "ENDED"), "end on the other instance")
    for c in (a, b):
        c.expect_event("END_CALL", call_id=call_id, timeout=10)
    print("    old master 127.0.0.1:%d back as a replica, promoted again when 127.0.0.1:%d was "
          "killed: the call rung before was answered %.1fs after the kill and ended" % (
              first.port, second.port, answered))


@h.options(redis="sentinel", instances=1, service_env=NO_LIMIT)
def test_a_sentinel_naming_a_replica_is_passed_over_for_the_next(env):
    """The URL's first sentinel watches the replica as if it were the master, as a sentinel that
    has not seen a failover names an old master come back as a replica: ROLE says slave there, so
    the instance asks the next sentinel, and calls start and end on the true master."""
    master, replica = env.redis.master(), env.redis.servers[1]
    stale = h.RedisSentinel.sentinel(os.path.join(env.tmp, "sentinel-stale"), replica.port, quorum=1,
                                     down_after_ms=60000)
    stale.start()
    try:
        eq(stale.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", h.RedisSentinel.NAME),
           ["127.0.0.1", str(replica.port)], "the first sentinel's answer: the replica")
        url = "redis-sentinel://127.0.0.1:%d,%s" % (stale.port, env.redis.url[len("redis-sentinel://"):])
        s = env.spawn_service(env=dict(NO_LIMIT, STATE_ENGINE="redis", REDIS_URL=url), name="callsignal-stale")
        a, b = env.user("a"), env.user("b")
        r = start(s, a, b)
        eq(r.status, 200, "start through the instance whose first sentinel names the replica")
        b.expect_event("INCOMING_CALL", call_id=r.json["id"])
        eq(post(s, "/calls/end", {"callId": r.json["id"], "userId": a.user_id}).status, 200, "end")
        b.expect_event("END_CALL", call_id=r.json["id"])
        line = "Redis master '%s' at '127.0.0.1:%d' answers" % (h.RedisSentinel.NAME, master.port)
        check(line in s.stderr(), "its log says %r:\n%s" % (line, s.log(20)))
        check("127.0.0.1:%d' answers" % replica.port not in s.stderr(), "it used the replica")
        print("    first sentinel named the replica 127.0.0.1:%d; the instance used the master "
              "127.0.0.1:%d and a call started and ended" % (replica.port, master.port))
    finally:
        stale.stop()


@h.options(start_broker=False, start_service=False)
def test_an_unusable_redis_url_exits_2_with_a_message(env):
    cases = ["redis-sentinel://127.0.0.1:26379", "redis-sentinel://a,,b/m", "redis://a,b",
             "redis://:secret@h:99999", "redis://user:pw@h", "rediss://h"]
    wrong = []
    for url in cases:
        e = {k: v for k, v in os.environ.items() if k not in h.CONFIG_ENV_VARS}
        e.update({"PORT": str(h.free_port()), "MQTT_URL": "tcp://127.0.0.1:%d" % h.free_port(),
                  "STATE_ENGINE": "redis", "REDIS_URL": url})
        p = subprocess.run([os.environ["CALLSIGNAL_BIN"]], env=e, capture_output=True, text=True,
                           errors="replace", timeout=10, stdin=subprocess.DEVNULL)
        if p.returncode != 2 or "REDIS_URL" not in p.stderr or "secret" in p.stderr:
            wrong.append("%s: exit %d, %r" % (url, p.returncode, p.stderr.strip()[-200:]))
    print("    %d unusable REDIS_URLs, %d not refused with exit 2 and a message" % (len(cases), len(wrong)))
    check(not wrong, "; ".join(wrong))


if __name__ == "__main__":
    h.main()

#!/usr/bin/python3
"""GET /metrics (Prometheus text format, parsed by Debian's python3-prometheus-client parser) and
the readiness split: the counters and histograms move as the test drives calls (started by result,
finished by status and reason, ring-to-answer, request latency, online users and devices, rate
limit, broker connection and reconnects, auth failures), /metrics behind METRICS_TOKEN, and
/health (liveness) vs /ready. The shared service rings 1 s and grants 1 s of offline grace."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, eq, expect_error  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

SHARED = {"service_env": {"RING_TIMEOUT_S": "1", "OFFLINE_GRACE_S": "1", "START_RATE_PER_MIN": "0"}}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Scrape:
    """One GET /metrics, parsed: types by family name, sample values by (name, labels). Without
    a port, every running instance is scraped, as an operator does: counters are summed over
    them (each counts and times what it did), gauges are the first instance's (each sees the
    same presence)."""

    def __init__(self, env, port=None, headers=None):
        ports = [port] if port else [s.port for s in env.instances if s.running]
        self.types, self.samples = {}, {}
        for i, p in enumerate(ports):
            r = h.http_request(p, "GET", "/metrics", headers=headers)
            eq(r.status, 200, "GET /metrics status")
            eq(r.headers.get("Content-Type"), CONTENT_TYPE, "GET /metrics Content-Type")
            for family in text_string_to_metric_families(r.body.decode("utf-8")):
                self.types[family.name] = family.type
                for s in family.samples:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    if i == 0:
                        self.samples[key] = s.value
                    elif family.type in ("counter", "histogram"):
                        self.samples[key] = self.samples.get(key, 0) + s.value

    def get(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        check(key in self.samples, "no sample %s%s in /metrics" % (name, labels or ""))
        return self.samples[key]


def delta(before, after, name, **labels):
    return after.get(name, **labels) - before.get(name, **labels)


def test_every_metric_parses_with_its_type(env):
    m = Scrape(env)
    expected = {
        "callsignal_calls_started": "counter", "callsignal_calls_finished": "counter",
        "callsignal_calls_live": "gauge", "callsignal_ring_to_answer_seconds": "histogram",
        "callsignal_http_request_duration_seconds": "histogram", "callsignal_users_online": "gauge",
        "callsignal_devices_online": "gauge", "callsignal_outbox_messages": "gauge",
        "callsignal_outbox_oldest_age_seconds": "gauge", "callsignal_broker_connected": "gauge",
        "callsignal_broker_reconnects": "counter", "callsignal_rate_limited": "counter",
        "callsignal_auth_failures": "counter", "callsignal_ready": "gauge",
        "callsignal_events_publisher": "gauge",
        "callsignal_broker_connect_failures": "counter",
    }
    for name, kind in expected.items():
        eq(m.types.get(name), kind, "type of %s" % name)
    eq(m.get("callsignal_broker_connected"), 1.0, "broker connected")
    eq(m.get("callsignal_ready"), 1.0, "ready")
    for result in ("ok", "RECEIVER_BUSY", "CALLER_OFFLINE", "RATE_LIMITED"):
        m.get("callsignal_calls_started_total", result=result)  # present at 0 before it happens


def test_call_counters_move_as_calls_start_and_finish(env):
    a, b = env.user("a"), env.user("b")
    m0 = Scrape(env)
    declined = env.start_call(a, b)
    b.expect_event("INCOMING_CALL", call_id=declined["id"])
    m1 = Scrape(env)
    eq(delta(m0, m1, "callsignal_calls_started_total", result="ok"), 1.0, "started ok after one start")
    eq(delta(m0, m1, "callsignal_calls_live"), 1.0, "live calls while ringing")
    h.expect_ok(env.answer(declined["id"], "DECLINE"))
    accepted = env.start_call(a, b)
    h.expect_ok(env.answer(accepted["id"], "ACCEPT"))
    expect_error(env.post("/calls/start", {"callerId": a.user_id, "receiverId": b.user_id}), 400, "CALLER_BUSY")
    expect_error(env.post("/calls/start", {"callerId": b.user_id, "receiverId": a.user_id}), 400, "CALLER_BUSY")
    h.expect_ok(env.end(accepted["id"], a))
    cancelled = env.start_call(a, b)
    h.expect_ok(env.end(cancelled["id"], a))
    expect_error(env.post("/calls/start", {"callerId": a.user_id, "receiverId": env.uid("nobody")}), 404,
                 "RECEIVER_OFFLINE")
    expect_error(env.post("/calls/start", {"callerId": a.user_id}), 400, "MISSING_FIELD")
    m2 = Scrape(env)
    got = {
        "ok": delta(m0, m2, "callsignal_calls_started_total", result="ok"),
        "CALLER_BUSY": delta(m0, m2, "callsignal_calls_started_total", result="CALLER_BUSY"),
        "RECEIVER_OFFLINE": delta(m0, m2, "callsignal_calls_started_total", result="RECEIVER_OFFLINE"),
        "MISSING_FIELD": m2.get("callsignal_calls_started_total", result="MISSING_FIELD"),
        "DECLINED": delta(m0, m2, "callsignal_calls_finished_total", status="DECLINED", reason="declined"),
        "hangup": delta(m0, m2, "callsignal_calls_finished_total", status="ENDED", reason="hangup"),
        "cancelled": delta(m0, m2, "callsignal_calls_finished_total", status="ENDED", reason="cancelled"),
        "answered": delta(m0, m2, "callsignal_ring_to_answer_seconds_count"),
        "live": delta(m0, m2, "callsignal_calls_live"),
    }
    eq(got, {"ok": 3.0, "CALLER_BUSY": 2.0, "RECEIVER_OFFLINE": 1.0, "MISSING_FIELD": 1.0, "DECLINED": 1.0,
             "hangup": 1.0, "cancelled": 1.0, "answered": 2.0, "live": 0.0}, "moves of the call counters")
    check(m2.get("callsignal_ring_to_answer_seconds_bucket", le="+Inf") >= 2.0, "ring-to-answer +Inf bucket")
    starts = delta(m0, m2, "callsignal_http_request_duration_seconds_count", route="/calls/start")
    eq(starts, 7.0, "POST /calls/start requests observed by the latency histogram")
    check(delta(m0, m2, "callsignal_http_request_duration_seconds_sum", route="/calls/start") > 0,
          "latency sum of /calls/start did not grow")


def test_missed_and_error_calls_are_counted_by_reason(env):
    a, b = env.user("a"), env.user("b")
    m0 = Scrape(env)
    missed = env.start_call(a, b)
    a.expect_event("END_CALL", timeout=5, call_id=missed["id"])
    live = env.start_call(a, b)
    h.expect_ok(env.answer(live["id"], "ACCEPT"))
    a.expect_event("ACCEPT_CALL", call_id=live["id"])
    b.drop()
    ev = a.expect_event("END_CALL", timeout=5, call_id=live["id"])
    eq(ev["call"]["status"], "ERROR", "status after the receiver dropped")
    m1 = Scrape(env)
    eq(delta(m0, m1, "callsignal_calls_finished_total", status="MISSED", reason="ring_timeout"), 1.0, "missed")
    eq(delta(m0, m1, "callsignal_calls_finished_total", status="ERROR", reason="party_offline"), 1.0, "error")


def test_online_users_and_devices(env):
    m0 = Scrape(env)
    a = env.user("a")
    env.client(a.user_id, client_id=a.user_id + ".phone")
    b = env.user("b")
    h.wait_until(lambda: delta(m0, Scrape(env), "callsignal_devices_online") == 3.0, 5,
                 what="3 more devices online")
    eq(delta(m0, Scrape(env), "callsignal_users_online"), 2.0, "2 more users online")
    b.disconnect()
    env.wait_offline(b.user_id)
    m2 = Scrape(env)
    eq((delta(m0, m2, "callsignal_users_online"), delta(m0, m2, "callsignal_devices_online")), (1.0, 2.0),
       "users and devices after one user left")


@h.options(service_env={"START_RATE_PER_MIN": "1"})
def test_rate_limit_refusals_are_counted(env):
    a, b, c = env.user("a"), env.user("b"), env.user("c")
    m0 = Scrape(env)
    call = env.start_call(a, b)
    h.expect_ok(env.end(call["id"], a))
    expect_error(env.post("/calls/start", {"callerId": a.user_id, "receiverId": c.user_id}), 429, "RATE_LIMITED")
    m1 = Scrape(env)
    eq((delta(m0, m1, "callsignal_rate_limited_total"),
        delta(m0, m1, "callsignal_calls_started_total", result="RATE_LIMITED")), (1.0, 1.0), "rate-limit counters")


@h.options(instances=1, service_env={"RING_TIMEOUT_S": "1"})  # one service's broker connection
def test_broker_outage_moves_the_broker_metrics_and_health_stays_200(env):
    a, b = env.user("a"), env.user("b")
    env.start_call(a, b)
    # With Redis the call's messages wait in the shared outbox until an instance leads it; this
    # one does once it has been connected for a moment (the metric says so).
    h.wait_until(lambda: Scrape(env).get("callsignal_events_publisher") == 1.0, 5,
                 what="this instance publishing the events")
    m0 = Scrape(env)
    eq(m0.get("callsignal_broker_reconnects_total"), 0.0, "reconnects before any outage")
    env.broker.stop()
    h.wait_until(lambda: env.get("/ready").status == 503, 5, what="GET /ready == 503")
    health = env.get("/health")
    eq((health.status, health.json.get("broker")), (200, "disconnected"), "liveness during the outage")
    eq(health.json["calls"], 1, "health counters during the outage")
    m1 = Scrape(env)
    eq((m1.get("callsignal_broker_connected"), m1.get("callsignal_ready")), (0.0, 1.0), "connected, ready")
    eq(delta(m0, m1, "callsignal_broker_connection_lost_total"), 1.0, "connections lost")
    lost = [line for line in env.service.stderr().splitlines() if "lost the broker connection" in line]
    check(lost and "the broker closed it or the network failed" in lost[0] and "Failure" not in lost[0],
          "connection-lost line: %r" % lost[:1])
    # the call rings out during the outage: its END_CALL and call topics wait in the outbox
    h.wait_until(lambda: Scrape(env).get("callsignal_outbox_messages") >= 1, 5, what="messages waiting")
    time.sleep(0.3)
    m_wait = Scrape(env)
    check(m_wait.get("callsignal_outbox_oldest_age_seconds") >= 0.3, "oldest waiting message age %r" %
          m_wait.get("callsignal_outbox_oldest_age_seconds"))
    h.wait_until(lambda: Scrape(env).get("callsignal_broker_connect_failures_total", cause="connection_refused")
                 >= 1, 5, what="a refused reconnect attempt counted")
    env.broker.start()
    h.wait_until(lambda: env.get("/ready").status == 200, 15, what="GET /ready == 200 again")
    m2 = Scrape(env)
    eq((m2.get("callsignal_broker_connected"), delta(m0, m2, "callsignal_broker_reconnects_total")), (1.0, 1.0),
       "connected again, one reconnect")
    h.wait_until(lambda: Scrape(env).get("callsignal_outbox_messages") == 0, 5, what="the outbox emptied")
    eq(Scrape(env).get("callsignal_outbox_oldest_age_seconds"), 0.0, "oldest age with an empty outbox")


@h.options(service_env={"METRICS_TOKEN": "scrape-me-0123456789"})
def test_metrics_token_guards_metrics(env):
    r = env.get("/metrics")
    expect_error(r, 401, "UNAUTHORIZED")
    expect_error(env.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401, "UNAUTHORIZED")
    m = Scrape(env, headers={"Authorization": "Bearer scrape-me-0123456789"})
    eq(m.get("callsignal_auth_failures_total", kind="metrics_token"), 2.0, "metrics-token refusals")
    eq(env.get("/health").status, 200, "/health needs no token")
    check("scrape-me-0123456789" not in env.service.stderr(), "the metrics token is in the log")


if __name__ == "__main__":
    h.main(**SHARED)

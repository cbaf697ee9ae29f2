/*
 * metrics.h - the service's Prometheus metrics: counters and histograms
 * kept in process-wide atomics, and the writer of the text exposition
 * format (version 0.0.4) that GET /metrics serves.
 *
 * Any thread may count (relaxed atomics: no lock, no I/O, safe under
 * core's lock and on the bus thread). Gauges are not kept here: whoever
 * serves /metrics reads them at scrape time into struct metrics_gauges.
 * Debian packages no C client library for Prometheus (prometheus-cpp is
 * C++), so the writer is this one file.
 *
 * Adding a counter is one line: append an X(...) to METRICS_COUNTERS
 * below, then call metrics_inc(M_<ID>) where the thing happens. The
 * arguments are the enum id, the metric name (ending in _total), its
 * labels as exposition text (or "" for none) and its help line. Samples of
 * one metric (same name, other labels) must be adjacent lines; the help of
 * the first one is printed. docs/metrics.md lists every metric.
 */
#ifndef CALLSIGNAL_METRICS_H
#define CALLSIGNAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "model.h"

#define METRICS_COUNTERS(X)                                                                                  \
	X(AUTH_MISSING_TOKEN, "callsignal_auth_failures_total", "kind=\"missing_token\"",                    \
	  "REST requests refused for their credentials (401) or their rights (403), by kind")                \
	X(AUTH_INVALID_TOKEN, "callsignal_auth_failures_total", "kind=\"invalid_token\"", "")                \
	X(AUTH_EXPIRED_TOKEN, "callsignal_auth_failures_total", "kind=\"expired_token\"", "")                \
	X(AUTH_FORBIDDEN, "callsignal_auth_failures_total", "kind=\"forbidden\"", "")                        \
	X(AUTH_NOT_A_PARTY, "callsignal_auth_failures_total", "kind=\"not_a_party\"", "")                    \
	X(AUTH_METRICS_TOKEN, "callsignal_auth_failures_total", "kind=\"metrics_token\"", "")                \
	X(RATE_LIMITED, "callsignal_rate_limited_total", "",                                                 \
	  "Call starts refused with 429 by the per-user rate limit")                                         \
	X(BROKER_CONNECTS, "callsignal_broker_connects_total", "",                                           \
	  "Successful connections to the broker (the first one included)")                                   \
	X(BROKER_RECONNECTS, "callsignal_broker_reconnects_total", "",                                       \
	  "Successful connections to the broker after the first one")                                        \
	X(BROKER_LOST, "callsignal_broker_connection_lost_total", "", "Broker connections lost")             \
	X(BROKER_FAIL_REFUSED, "callsignal_broker_connect_failures_total", "cause=\"connection_refused\"",   \
	  "Failed attempts to connect to the broker, by cause")                                              \
	X(BROKER_FAIL_UNKNOWN_HOST, "callsignal_broker_connect_failures_total", "cause=\"unknown_host\"",    \
	  "")                                                                                                \
	X(BROKER_FAIL_TIMEOUT, "callsignal_broker_connect_failures_total", "cause=\"timeout\"", "")          \
	X(BROKER_FAIL_TLS, "callsignal_broker_connect_failures_total", "cause=\"tls\"", "")                  \
	X(BROKER_FAIL_CREDENTIALS, "callsignal_broker_connect_failures_total", "cause=\"bad_credentials\"",  \
	  "")                                                                                                \
	X(BROKER_FAIL_NOT_AUTHORIZED, "callsignal_broker_connect_failures_total",                            \
	  "cause=\"not_authorized\"", "")                                                                    \
	X(BROKER_FAIL_OTHER, "callsignal_broker_connect_failures_total", "cause=\"other\"", "")

#define METRICS_ENUM(id, name, labels, help) M_##id,
enum metrics_counter { METRICS_COUNTERS(METRICS_ENUM) M__COUNT };
#undef METRICS_ENUM

/* Adds one to a counter of the list above. */
void metrics_inc(enum metrics_counter m);

/* POST /calls/start answered with e (ERR_OK: a call started), whatever refused it. */
void metrics_call_start(enum err e);
/* A call reached a final status (call borrowed for the call): counted by status and reason. */
void metrics_call_finished(const struct call *call);
/* A ringing call was answered (ACCEPT or DECLINE) after ring_ms of ringing. */
void metrics_ring_to_answer(int64_t ring_ms);

/* The route names of request latency (static strings, at most METRICS_MAX_ROUTES), set once
 * before serving; a request of no route is observed as route index n, named "other". */
#define METRICS_MAX_ROUTES 23
void metrics_set_routes(const char *const *names, size_t n);
/* A request of route index `route` took `us` microseconds to handle. */
void metrics_http_request(size_t route, int64_t us);

/* What the scrape reads from the rest of the service at that moment. */
struct metrics_gauges {
	int broker_up;         /* connected and subscribed */
	int ready;             /* the live calls are rebuilt: call control is open */
	int publisher;         /* this instance publishes the calls' events (always, unless a shared
				* store's outbox is led by another instance) */
	size_t users;          /* online users */
	size_t devices;        /* online devices (MQTT clients with presence) */
	size_t calls;          /* calls held, live and finished */
	size_t live_calls;     /* DIALLING or ONGOING */
	size_t outbox;         /* messages queued or unacknowledged */
	int64_t outbox_age_ms; /* age of the oldest of them; 0 when none */
	uint64_t published;    /* messages handed to the MQTT client */
	uint64_t dropped;      /* messages dropped (refused, or beyond the outbox cap) */
};

/* The exposition text of every metric; a new string (caller frees), its length in *len. */
char *metrics_render(const struct metrics_gauges *g, size_t *len);

#endif

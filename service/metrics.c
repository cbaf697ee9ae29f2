/*
 * metrics.c - see metrics.h. Counts with relaxed atomics (a scrape may see
 * one counter a step ahead of another; each is exact on its own) and
 * writes the Prometheus text format with the naming of LiveKit's,
 * Centrifugo's and EMQX's endpoints: snake_case, a `callsignal_` prefix,
 * `_total` counters, histograms in seconds with cumulative `le` buckets.
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

#define ADD(p, n) __atomic_fetch_add((p), (n), __ATOMIC_RELAXED)
#define GET(p)    __atomic_load_n((p), __ATOMIC_RELAXED)

static const struct {
	const char *name, *labels, *help;
} counter_info[M__COUNT] = {
#define METRICS_INFO(id, n, l, h) [M_##id] = { n, l, h },
	METRICS_COUNTERS(METRICS_INFO)
#undef METRICS_INFO
};

static uint64_t counters[M__COUNT];
static uint64_t starts[ERR__COUNT];

/* A call's final status and why it got there (the call's own end reason).
 * Series are shown for the usual pairs always, for any other pair once it
 * has counted (a call declined by ending it is ENDED/declined). */
#define NSTATUS 4 /* ENDED, DECLINED, MISSED, ERROR */
#define NREASON (END_MEDIA_ENDED + 1)
static const char *const finish_status[NSTATUS] = { "ENDED", "DECLINED", "MISSED", "ERROR" };
static const char *const finish_reason[NREASON] = {
	[END_NONE] = "unknown",
	[END_HANGUP] = "hangup",
	[END_CANCELLED] = "cancelled",
	[END_DECLINED] = "declined",
	[END_TIMEOUT] = "ring_timeout",
	[END_BUSY] = "busy",
	[END_PARTY_OFFLINE] = "party_offline",
	[END_MEDIA_ENDED] = "media_ended",
};
static const unsigned char finish_usual[NSTATUS][NREASON] = {
	[0] = { [END_HANGUP] = 1, [END_CANCELLED] = 1, [END_MEDIA_ENDED] = 1 },
	[1] = { [END_DECLINED] = 1 },
	[2] = { [END_TIMEOUT] = 1, [END_BUSY] = 1 },
	[3] = { [END_PARTY_OFFLINE] = 1 },
};
static uint64_t finished[NSTATUS][NREASON];

/* A histogram with fixed bucket bounds in microseconds; sum in microseconds. */
#define MAX_BUCKETS 16
struct histogram {
	uint64_t count[MAX_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
	uint64_t sum_us;
};

static const int64_t ring_bounds_us[] = { 1000000,  2000000,  5000000,  10000000, 15000000,
					  20000000, 30000000, 45000000, 60000000, 120000000 };
#define RING_NB (sizeof(ring_bounds_us) / sizeof(ring_bounds_us[0]))
static struct histogram ring_hist;

static const int64_t req_bounds_us[] = { 100,   250,   500,    1000,   2500,   5000,   10000,
					 25000, 50000, 100000, 250000, 500000, 1000000 };
#define REQ_NB (sizeof(req_bounds_us) / sizeof(req_bounds_us[0]))
static struct histogram req_hist[METRICS_MAX_ROUTES + 1];
static const char *route_names[METRICS_MAX_ROUTES + 1];
static size_t nroutes;

static void observe(struct histogram *h, const int64_t *bounds, size_t nb, int64_t us)
{
	if (us < 0)
		us = 0;
	size_t i = 0;
	while (i < nb && us > bounds[i])
		i++;
	ADD(&h->count[i], 1);
	ADD(&h->sum_us, (uint64_t)us);
}

void metrics_inc(enum metrics_counter m)
{
	if ((unsigned)m < M__COUNT)
		ADD(&counters[m], 1);
}

void metrics_call_start(enum err e)
{
	if ((unsigned)e < ERR__COUNT)
		ADD(&starts[e], 1);
}

void metrics_call_finished(const struct call *call)
{
	int st;
	switch (call->status) {
	case CALL_ENDED:
		st = 0;
		break;
	case CALL_DECLINED:
		st = 1;
		break;
	case CALL_MISSED:
		st = 2;
		break;
	case CALL_ERROR:
		st = 3;
		break;
	default:
		return; /* still live */
	}
	unsigned r = (unsigned)call->end_reason < NREASON ? (unsigned)call->end_reason : END_NONE;
	ADD(&finished[st][r], 1);
}

void metrics_ring_to_answer(int64_t ring_ms)
{
	observe(&ring_hist, ring_bounds_us, RING_NB, ring_ms * 1000);
}

void metrics_set_routes(const char *const *names, size_t n)
{
	nroutes = n > METRICS_MAX_ROUTES ? METRICS_MAX_ROUTES : n;
	for (size_t i = 0; i < nroutes; i++)
		route_names[i] = names[i];
	route_names[nroutes] = "other";
}

void metrics_http_request(size_t route, int64_t us)
{
	observe(&req_hist[route > nroutes ? nroutes : route], req_bounds_us, REQ_NB, us);
}

static void head(struct sbuf *sb, const char *name, const char *type, const char *help)
{
	sbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct sbuf *sb, const char *name, const char *help, double v)
{
	head(sb, name, "gauge", help);
	sbuf_addf(sb, "%s %.17g\n", name, v);
}

/* The samples of one histogram; labels is "" or `name="value"` pairs without braces. */
static void histogram_samples(struct sbuf *sb, const char *name, const char *labels,
			      const struct histogram *h, const int64_t *bounds, size_t nb)
{
	uint64_t cum = 0;
	const char *sep = *labels ? "," : "";
	for (size_t i = 0; i <= nb; i++) {
		cum += GET(&h->count[i]);
		if (i < nb)
			sbuf_addf(sb, "%s_bucket{%s%sle=\"%.17g\"} %llu\n", name, labels, sep,
				  (double)bounds[i] / 1e6, (unsigned long long)cum);
		else
			sbuf_addf(sb, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
				  (unsigned long long)cum);
	}
	const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
	sbuf_addf(sb, "%s_sum%s%s%s %.17g\n", name, open, labels, close, (double)GET(&h->sum_us) / 1e6);
	sbuf_addf(sb, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)cum);
}

/* The refusals core can give a call start: shown at 0 before they first happen. */
static const enum err start_results[] = {
	ERR_OK,          ERR_SELF_CALL,     ERR_CALLER_OFFLINE, ERR_RECEIVER_OFFLINE,
	ERR_CALLER_BUSY, ERR_RECEIVER_BUSY, ERR_RATE_LIMITED,   ERR_BROKER_UNAVAILABLE,
	ERR_NOT_READY
};

static int always_shown(enum err e)
{
	for (size_t i = 0; i < sizeof(start_results) / sizeof(start_results[0]); i++)
		if (start_results[i] == e)
			return 1;
	return 0;
}

char *metrics_render(const struct metrics_gauges *g, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 8192);

	head(&sb, "callsignal_calls_started_total", "counter",
	     "POST /calls/start requests by result: ok, or the error code that refused them");
	for (int e = 0; e < ERR__COUNT; e++) {
		uint64_t n = GET(&starts[e]);
		if (n || always_shown((enum err)e))
			sbuf_addf(&sb, "callsignal_calls_started_total{result=\"%s\"} %llu\n",
				  e == ERR_OK ? "ok" : err_code((enum err)e), (unsigned long long)n);
	}
	head(&sb, "callsignal_calls_finished_total", "counter",
	     "Calls that reached a final status, by status and reason");
	for (int st = 0; st < NSTATUS; st++) {
		for (int r = 0; r < NREASON; r++) {
			uint64_t n = GET(&finished[st][r]);
			if (n || finish_usual[st][r])
				sbuf_addf(
				    &sb,
				    "callsignal_calls_finished_total{status=\"%s\",reason=\"%s\"} %llu\n",
				    finish_status[st], finish_reason[r], (unsigned long long)n);
		}
	}

	gauge(&sb, "callsignal_calls_live", "Calls DIALLING or ONGOING", (double)g->live_calls);
	gauge(&sb, "callsignal_calls_held", "Calls held: live, and finished ones still retained",
	      (double)g->calls);
	head(&sb, "callsignal_ring_to_answer_seconds", "histogram",
	     "Time a call rang before its receiver accepted or declined it");
	histogram_samples(&sb, "callsignal_ring_to_answer_seconds", "", &ring_hist, ring_bounds_us, RING_NB);

	head(&sb, "callsignal_http_request_duration_seconds", "histogram",
	     "Time the service took to handle a REST request, by route");
	for (size_t r = 0; r <= nroutes; r++) {
		char labels[96];
		snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r] ? route_names[r] : "other");
		histogram_samples(&sb, "callsignal_http_request_duration_seconds", labels, &req_hist[r],
				  req_bounds_us, REQ_NB);
	}

	gauge(&sb, "callsignal_users_online", "Users with at least one device online", (double)g->users);
	gauge(&sb, "callsignal_devices_online", "Devices (MQTT clients) with a retained presence",
	      (double)g->devices);
	gauge(&sb, "callsignal_outbox_messages", "Messages to the broker queued or not yet acknowledged",
	      (double)g->outbox);
	gauge(&sb, "callsignal_outbox_oldest_age_seconds",
	      "Age of the oldest message in the outbox (0: empty)", (double)g->outbox_age_ms / 1000.0);
	head(&sb, "callsignal_broker_messages_published_total", "counter",
	     "Messages handed to the MQTT client, resends included");
	sbuf_addf(&sb, "callsignal_broker_messages_published_total %llu\n", (unsigned long long)g->published);
	head(&sb, "callsignal_broker_messages_dropped_total", "counter",
	     "Messages dropped: refused by the MQTT client or beyond the outbox cap");
	sbuf_addf(&sb, "callsignal_broker_messages_dropped_total %llu\n", (unsigned long long)g->dropped);
	gauge(&sb, "callsignal_broker_connected", "1 while connected and subscribed to the broker",
	      g->broker_up ? 1 : 0);
	gauge(&sb, "callsignal_ready", "1 once the live calls are rebuilt and call control is open",
	      g->ready ? 1 : 0);
	gauge(&sb, "callsignal_events_publisher",
	      "1 while this instance publishes the calls' events (with Redis: holds the outbox lease)",
	      g->publisher ? 1 : 0);

	const char *last = NULL;
	for (int m = 0; m < M__COUNT; m++) {
		const char *name = counter_info[m].name;
		if (!last || strcmp(last, name) != 0)
			head(&sb, name, "counter", counter_info[m].help);
		last = name;
		const char *labels = counter_info[m].labels;
		sbuf_addf(&sb, "%s%s%s%s %llu\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
			  (unsigned long long)GET(&counters[m]));
	}
	head(&sb, "callsignal_build_info", "gauge", "The running version");
	sbuf_addf(&sb, "callsignal_build_info{version=\"%s\"} 1\n", CALLSIGNAL_VERSION);
	return sbuf_detach(&sb, len);
}

/* The held-calls phase; see held_calls.h. */
#include "held_calls.h"
#include "http_client.h"
#include "presence_load.h"
#include "stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum held_op { OP_START, OP_END, OP_CHECK_GONE };

struct held_job {
	const struct held_opts *o;
	char (*call_ids)[40]; /* call_ids[0] is call number `base` */
	long base, from, to;
	enum held_op op;
	int quiet;
	long errors, ok;
};

static void *held_thread(void *arg)
{
	struct held_job *j = arg;
	struct http_conn c = { .fd = -1, .port = j->o->svc->port };
	char body[256];
	for (long k = j->from; k < j->to; k++) {
		long i = j->base + k;
		char *call_id = j->call_ids[k];
		int st;
		switch (j->op) {
		case OP_START:
			snprintf(body, sizeof body, "{\"callerId\":\"holda%ld\",\"receiverId\":\"holdb%ld\"}",
				 i, i);
			st = http_conn_request(&c, "POST", "/calls/start", body, 10000);
			if (st != 200 ||
			    json_find_string(c.body, c.body_len, "id", call_id, 40, json_value_is_uuid) != 36)
				goto fail;
			snprintf(body, sizeof body, "{\"callId\":\"%s\",\"answer\":\"ACCEPT\"}", call_id);
			st = http_conn_request(&c, "POST", "/calls/answer", body, 10000);
			if (st != 200)
				goto fail;
			break;
		case OP_END:
			snprintf(body, sizeof body, "{\"callId\":\"%s\",\"userId\":\"holda%ld\"}", call_id,
				 i);
			st = http_conn_request(&c, "POST", "/calls/end", body, 10000);
			if (st != 200)
				goto fail;
			break;
		case OP_CHECK_GONE: {
			/* Forgotten calls are CALL_NOT_FOUND (spec: 400). */
			snprintf(body, sizeof body, "{\"callId\":\"%s\",\"userId\":\"holda%ld\"}", call_id,
				 i);
			st = http_conn_request(&c, "POST", "/calls/end", body, 10000);
			char code[64] = "";
			if (st >= 0)
				json_find_string(c.body, c.body_len, "error", code, sizeof code, NULL);
			if (strcmp(code, "CALL_NOT_FOUND") != 0)
				goto fail;
			break;
		}
		}
		j->ok++;
		continue;
	fail:
		if (j->errors++ < 3 && !j->quiet)
			fprintf(stderr, "loadgen: held calls: request %d for call %ld answered %d %.*s\n",
				(int)j->op, i, st, st >= 0 ? (int)(c.body_len < 200 ? c.body_len : 200) : 0,
				st >= 0 ? c.body : "");
	}
	http_conn_close(&c);
	return NULL;
}

/* Runs op on the n calls in call_ids (numbered from base) over the
 * configured connections; returns the number that failed. */
static long held_parallel_base(const struct held_opts *o, char (*call_ids)[40], long base, long n,
			       enum held_op op, int quiet)
{
	int k = o->http_conns < 1 ? 1 : o->http_conns;
	struct held_job *jobs = xcalloc((size_t)k, sizeof *jobs);
	pthread_t *th = xcalloc((size_t)k, sizeof *th);
	for (int t = 0; t < k; t++) {
		jobs[t] = (struct held_job){ .o = o,
					     .call_ids = call_ids,
					     .op = op,
					     .base = base,
					     .quiet = quiet,
					     .from = n * t / k,
					     .to = n * (t + 1) / k };
		pthread_create(&th[t], NULL, held_thread, &jobs[t]);
	}
	long errors = 0;
	for (int t = 0; t < k; t++) {
		pthread_join(th[t], NULL);
		errors += jobs[t].errors;
	}
	free(jobs);
	free(th);
	return errors;
}

static long held_parallel(const struct held_opts *o, char (*call_ids)[40], long n, enum held_op op)
{
	return held_parallel_base(o, call_ids, 0, n, op, 0);
}

/* One call, number `index`, without complaining: for polling. */
static long held_parallel_quiet(const struct held_opts *o, char (*call_id)[40], long index, enum held_op op)
{
	return held_parallel_base(o, call_id, index, 1, op, 1);
}

int held_run(const struct held_opts *o, struct held_result *r)
{
	memset(r, 0, sizeof *r);
	long n = o->calls;
	r->calls = n;
	char **ids = xcalloc((size_t)(2 * n), sizeof *ids);
	char buf[64];
	for (long i = 0; i < 2 * n; i++) {
		snprintf(buf, sizeof buf, "hold%c%ld", i % 2 ? 'b' : 'a', i / 2);
		ids[i] = xstrdup(buf);
	}
	char(*call_ids)[40] = xcalloc((size_t)n, sizeof *call_ids);

	uint64_t t0 = now_ns();
	if (presence_publish(o->broker_url, ids, (int)(2 * n), 1, 4, NULL) != 0 ||
	    service_wait_counts(o->svc, 2 * n, 0, t0, 60, 5) < 0) {
		r->errors++;
		goto out;
	}
	sleep_s(0.2);
	r->rss_base_kb = proc_rss_kb(o->svc->pid);

	uint64_t t1 = now_ns();
	r->errors += held_parallel(o, call_ids, n, OP_START);
	r->setup_s = (double)(now_ns() - t1) / 1e9;
	if (service_wait_counts(o->svc, 2 * n, n, t1, 10, 5) < 0)
		r->errors++;
	r->rss_live_kb = proc_rss_kb(o->svc->pid);
	r->bytes_per_call = (double)(r->rss_live_kb - r->rss_base_kb) * 1024.0 / (double)n;

	r->errors += held_parallel(o, call_ids, n, OP_END);
	uint64_t t_end = now_ns();
	r->rss_ended_kb = proc_rss_kb(o->svc->pid);
	/* Past the retention period (plus the service's timer granularity) the
	 * finished calls must be forgotten: poll the last one ended. */
	sleep_s(o->retention_s);
	r->forgotten_s = -1;
	struct held_opts one = *o;
	one.http_conns = 1;
	while (now_ns() - t_end < (uint64_t)((o->retention_s + 5) * 1e9)) {
		if (held_parallel_quiet(&one, call_ids + n - 1, n - 1, OP_CHECK_GONE) == 0) {
			r->forgotten_s = (double)(now_ns() - t_end) / 1e9;
			break;
		}
		sleep_s(0.02);
	}
	if (r->forgotten_s < 0) {
		fprintf(stderr, "loadgen: held calls: ended calls still known %.0f s after the retention\n",
			5.0);
		r->errors++;
	}
	r->rss_after_kb = proc_rss_kb(o->svc->pid);
	long sample = n < 100 ? n : 100;
	long gone_errors = held_parallel(o, call_ids, sample, OP_CHECK_GONE);
	r->forgotten_checked = sample - gone_errors;
	r->errors += gone_errors;

out:
	presence_publish(o->broker_url, ids, (int)(2 * n), 0, 4, NULL);
	service_wait_counts(o->svc, 0, -1, now_ns(), 30, 5);
	for (long i = 0; i < 2 * n; i++)
		free(ids[i]);
	free(ids);
	free(call_ids);
	return r->errors ? -1 : 0;
}

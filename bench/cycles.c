/* The call-cycle engine; see cycles.h for the protocol and the threads. */
#include "cycles.h"
#include "http_client.h"
#include "mqtt_clients.h"
#include "presence_load.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

enum role { CALLER, RECEIVER };
enum ev_type { EV_INCOMING, EV_ACCEPT, EV_DECLINE, EV_END, EV_UNKNOWN };
enum step { IDLE, STARTING, ANSWERING, ENDING, DEAD };

#define EV_BIT(role, type) (1u << ((role)*4 + (type)))

struct pair {
	int idx;
	struct http_conn http[CYCLES_MAX_INSTANCES]; /* one per instance */
	int cur;                                     /* the instance of the request in flight */
	enum step step;
	unsigned expect, got; /* EV_BIT sets for the current step */
	int resp_done;
	char call_id[40];
	int have_call_id;
	uint64_t t_sent, deadline;
};

struct engine {
	const struct cycle_opts *o;
	struct cycle_result *r;
	pthread_mutex_t mu;
	struct pair *pairs;
	int *free_stack, n_free; /* open loop: idle pairs */
	long pending_starts;     /* open loop: scheduled but no pair was free */
	int active;              /* pairs inside a cycle */
	long started;
	int stopping;
	uint64_t t_measure, t_stop;
	long window_cycles;
	int reported_errors;
};

static const char *step_name[] = { "IDLE", "STARTING", "ANSWERING", "ENDING", "DEAD" };

static void report_error(struct engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_error(struct engine *e, const char *fmt, ...)
{
	/* The first few problems are worth reading; a flood is not. */
	if (e->reported_errors++ < 10) {
		va_list ap;
		va_start(ap, fmt);
		fprintf(stderr, "loadgen: cycles: ");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
}

static int in_measure(const struct engine *e, uint64_t t)
{
	return t >= e->t_measure && t < e->t_stop;
}

static void pair_kill(struct engine *e, struct pair *p)
{
	if (p->step != IDLE && p->step != DEAD)
		e->active--;
	p->step = DEAD;
	e->r->dead_pairs++;
}

static void send_step(struct engine *e, struct pair *p, enum step step, const char *path, const char *body,
		      uint64_t now)
{
	p->step = step;
	p->got = 0;
	p->resp_done = 0;
	p->t_sent = now;
	p->deadline = now + (uint64_t)(e->o->step_timeout_s * 1e9);
	p->cur = (p->idx + (step == STARTING ? 0 : step == ANSWERING ? 1 : 2)) % e->o->n_svcs;
	if (http_conn_send(&p->http[p->cur], "POST", path, body) != 0) {
		e->r->http_errors++;
		report_error(e, "sending %s failed: %s", path, strerror(errno));
		pair_kill(e, p);
	}
}

static void start_cycle(struct engine *e, struct pair *p, uint64_t now)
{
	char body[256];
	snprintf(body, sizeof body, "{\"callerId\":\"%sa%d\",\"receiverId\":\"%sb%d\"}", e->o->prefix, p->idx,
		 e->o->prefix, p->idx);
	p->have_call_id = 0;
	p->expect = EV_BIT(RECEIVER, EV_INCOMING);
	e->active++;
	e->started++;
	send_step(e, p, STARTING, "/calls/start", body, now);
}

static int may_start(struct engine *e)
{
	return !e->stopping && (e->o->max_cycles <= 0 || e->started < e->o->max_cycles);
}

static void cycle_done(struct engine *e, struct pair *p, uint64_t now)
{
	e->active--;
	p->step = IDLE;
	e->r->cycles_total++;
	if (in_measure(e, now)) {
		e->r->cycles++;
		e->window_cycles++;
	}
	if (!may_start(e))
		return;
	if (e->o->rate <= 0) {
		start_cycle(e, p, now);
	} else if (e->pending_starts > 0) {
		e->pending_starts--;
		start_cycle(e, p, now);
	} else {
		e->free_stack[e->n_free++] = p->idx;
	}
}

/* Called when both the response and every expected event of the step are in. */
static void step_complete(struct engine *e, struct pair *p, uint64_t now)
{
	char body[256];
	switch (p->step) {
	case STARTING:
		snprintf(body, sizeof body, "{\"callId\":\"%s\",\"answer\":\"ACCEPT\"}", p->call_id);
		p->expect = EV_BIT(CALLER, EV_ACCEPT) | EV_BIT(RECEIVER, EV_ACCEPT);
		send_step(e, p, ANSWERING, "/calls/answer", body, now);
		break;
	case ANSWERING:
		snprintf(body, sizeof body, "{\"callId\":\"%s\",\"userId\":\"%sa%d\"}", p->call_id,
			 e->o->prefix, p->idx);
		p->expect = EV_BIT(CALLER, EV_END) | EV_BIT(RECEIVER, EV_END);
		send_step(e, p, ENDING, "/calls/end", body, now);
		break;
	case ENDING:
		cycle_done(e, p, now);
		break;
	default:
		break;
	}
}

static int leg_of(enum step s)
{
	return s == STARTING ? LEG_START : s == ANSWERING ? LEG_ANSWER : LEG_END;
}

static int set_call_id(struct engine *e, struct pair *p, const char *id)
{
	if (!p->have_call_id) {
		snprintf(p->call_id, sizeof p->call_id, "%s", id);
		p->have_call_id = 1;
		return 0;
	}
	if (strcmp(p->call_id, id) != 0) {
		report_error(e, "call id mismatch: %s vs %s", p->call_id, id);
		return -1;
	}
	return 0;
}

static void on_event(void *ctx, const char *topic, const char *payload, size_t len)
{
	struct engine *e = ctx;
	uint64_t now = now_ns();
	const struct cycle_opts *o = e->o;
	size_t pl = strlen(o->prefix);
	/* users/<prefix><a|b><index>/events */
	if (strncmp(topic, "users/", 6) != 0 || strncmp(topic + 6, o->prefix, pl) != 0)
		goto foreign;
	const char *q = topic + 6 + pl;
	enum role role = *q == 'a' ? CALLER : RECEIVER;
	if (*q != 'a' && *q != 'b')
		goto foreign;
	char *end;
	long idx = strtol(q + 1, &end, 10);
	if (idx < 0 || idx >= o->pairs || strcmp(end, "/events") != 0)
		goto foreign;

	char type_s[32], id[40];
	enum ev_type type = EV_UNKNOWN;
	if (json_find_string(payload, len, "type", type_s, sizeof type_s, NULL) > 0) {
		type = strcmp(type_s, "INCOMING_CALL") == 0  ? EV_INCOMING
		       : strcmp(type_s, "ACCEPT_CALL") == 0  ? EV_ACCEPT
		       : strcmp(type_s, "DECLINE_CALL") == 0 ? EV_DECLINE
		       : strcmp(type_s, "END_CALL") == 0     ? EV_END
							     : EV_UNKNOWN;
	}
	int have_id = json_find_string(payload, len, "id", id, sizeof id, json_value_is_uuid) == 36;

	pthread_mutex_lock(&e->mu);
	struct pair *p = &e->pairs[idx];
	e->r->events++;
	unsigned bit = type == EV_UNKNOWN ? 0 : EV_BIT(role, type);
	if (p->step == DEAD) {
		/* Its losses were counted when it timed out. */
	} else if (!bit || !have_id || p->step == IDLE || !(p->expect & bit) || (p->got & bit)) {
		e->r->out_of_order++;
		report_error(e, "unexpected event %s in step %s", type_s, step_name[p->step]);
	} else if (set_call_id(e, p, id) != 0) {
		e->r->out_of_order++;
	} else {
		p->got |= bit;
		int leg = leg_of(p->step);
		int leg_done = leg == LEG_START    ? bit == EV_BIT(RECEIVER, EV_INCOMING)
			       : leg == LEG_ANSWER ? bit == EV_BIT(CALLER, EV_ACCEPT)
						   : p->got == p->expect;
		if (leg_done && in_measure(e, p->t_sent))
			samples_add(&e->r->leg[leg], now - p->t_sent);
		if (p->resp_done && p->got == p->expect)
			step_complete(e, p, now);
	}
	pthread_mutex_unlock(&e->mu);
	return;
foreign:
	pthread_mutex_lock(&e->mu);
	e->r->out_of_order++;
	report_error(e, "event on a foreign topic %s", topic);
	pthread_mutex_unlock(&e->mu);
}

static void on_response(struct engine *e, struct pair *p, int inst, uint64_t now)
{
	struct http_conn *c = &p->http[inst];
	int r = http_conn_read(c);
	if (r == 0)
		return;
	pthread_mutex_lock(&e->mu);
	if (r < 0) {
		if (p->step != DEAD) {
			e->r->http_errors++;
			report_error(e, "HTTP connection broke in step %s", step_name[p->step]);
			pair_kill(e, p);
		}
		http_conn_close(c);
		goto out;
	}
	if (p->step == DEAD)
		goto consume;
	if (p->step == IDLE || p->resp_done || inst != p->cur) {
		e->r->http_errors++;
		report_error(e, "response without a request");
		goto consume;
	}
	if (in_measure(e, p->t_sent))
		samples_add(&e->r->http[leg_of(p->step)], now - p->t_sent);
	if (c->status != 200) {
		char body[200];
		snprintf(body, sizeof body, "%.*s", (int)(c->body_len < 199 ? c->body_len : 199), c->body);
		e->r->http_errors++;
		report_error(e, "HTTP error in step %s: %s", step_name[p->step], body);
		pair_kill(e, p);
		goto consume;
	}
	if (p->step == STARTING) {
		char id[40];
		if (json_find_string(c->body, c->body_len, "id", id, sizeof id, json_value_is_uuid) != 36 ||
		    set_call_id(e, p, id) != 0) {
			e->r->http_errors++;
			report_error(e, "start reply without the call id");
			pair_kill(e, p);
			goto consume;
		}
	}
	p->resp_done = 1;
	http_conn_consume(c);
	if (p->got == p->expect)
		step_complete(e, p, now);
	goto out;
consume:
	http_conn_consume(c);
out:
	pthread_mutex_unlock(&e->mu);
}

/* Steps past their deadline lose whatever events they still wait for. */
static void sweep_timeouts(struct engine *e, uint64_t now)
{
	for (int i = 0; i < e->o->pairs; i++) {
		struct pair *p = &e->pairs[i];
		if (p->step == IDLE || p->step == DEAD || now < p->deadline)
			continue;
		unsigned missing = p->expect & ~p->got;
		e->r->lost += __builtin_popcount(missing);
		if (!p->resp_done)
			e->r->http_errors++;
		char what[64];
		snprintf(what, sizeof what, "missing events 0x%x, response %s", missing,
			 p->resp_done ? "in" : "missing");
		report_error(e, "step %s timed out: %s", step_name[p->step], what);
		pair_kill(e, p);
	}
}

static long services_rss_kb(const struct cycle_opts *o)
{
	long sum = 0;
	for (int k = 0; k < o->n_svcs; k++)
		sum += proc_rss_kb(o->svcs[k].pid);
	return sum;
}

/* CPU seconds of all instances, or -1 when one is unknown. */
static double services_cpu_s(const struct cycle_opts *o)
{
	double sum = 0;
	for (int k = 0; k < o->n_svcs; k++) {
		double s = o->svcs[k].pid > 0 ? proc_cpu_s(o->svcs[k].pid) : -1;
		if (s < 0)
			return -1;
		sum += s;
	}
	return sum;
}

static void arm_timer(int tfd, uint64_t at_ns)
{
	struct itimerspec its = { 0 };
	its.it_value.tv_sec = (time_t)(at_ns / 1000000000u);
	its.it_value.tv_nsec = (long)(at_ns % 1000000000u);
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void run_loop(struct engine *e)
{
	const struct cycle_opts *o = e->o;
	struct cycle_result *r = e->r;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	const int ns = o->n_svcs;
	for (int i = 0; i < o->pairs; i++) {
		for (int k = 0; k < ns; k++) {
			ev.data.u32 = (uint32_t)(i * ns + k);
			epoll_ctl(ep, EPOLL_CTL_ADD, e->pairs[i].http[k].fd, &ev);
		}
	}

	const uint64_t HOUSEKEEPING = 20000000u; /* 20 ms */
	uint64_t t0 = now_ns();
	e->t_measure = t0 + (uint64_t)(o->warmup_s * 1e9);
	e->t_stop = o->duration_s > 0 ? e->t_measure + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
	uint64_t interval = o->rate > 0 ? (uint64_t)(1e9 / o->rate) : 0;
	uint64_t next_sched = t0, next_house = t0 + HOUSEKEEPING;
	uint64_t window_ns = o->window_s > 0 ? (uint64_t)(o->window_s * 1e9) : 0;
	uint64_t next_window = window_ns ? e->t_measure + window_ns : UINT64_MAX;
	int window_cap = 0;
	r->rss_start_kb = services_rss_kb(o);

	pthread_mutex_lock(&e->mu);
	if (o->rate <= 0)
		for (int i = 0; i < o->pairs && may_start(e); i++)
			start_cycle(e, &e->pairs[i], now_ns());
	pthread_mutex_unlock(&e->mu);

	struct epoll_event evs[256];
	uint64_t armed = 0;
	int measuring = 0;
	double cpu0[4] = { 0 }, cpu1[4] = { 0 };
	double steal0 = -1, steal1 = -1;
	pid_t pids[4] = { 0, o->broker_pid, getpid(), o->redis_pid };
	for (;;) {
		uint64_t wake = next_house;
		if (interval && next_sched < wake)
			wake = next_sched;
		if (wake != armed) {
			arm_timer(tfd, wake);
			armed = wake;
		}
		int n = epoll_wait(ep, evs, 256, 100);
		uint64_t now = now_ns();
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u32 == UINT32_MAX) {
				uint64_t x;
				if (read(tfd, &x, sizeof x) < 0) {
					/* Spurious wake-up; the checks below use the clock. */
				}
				armed = 0;
				continue;
			}
			struct pair *p = &e->pairs[evs[i].data.u32 / (uint32_t)ns];
			int k = (int)(evs[i].data.u32 % (uint32_t)ns);
			struct http_conn *c = &p->http[k];
			if (c->fd < 0)
				continue; /* closed after an error; epoll forgot it */
			unsigned opens = c->opens;
			on_response(e, p, k, now);
			if (c->fd >= 0 && c->opens != opens) {
				/* Reopened after "Connection: close". */
				ev.data.u32 = evs[i].data.u32;
				epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
			}
		}
		pthread_mutex_lock(&e->mu);
		/* Open loop: start every cycle that is due. */
		while (interval && next_sched <= now) {
			if (!may_start(e)) {
				interval = 0;
				break;
			}
			if (e->n_free > 0) {
				start_cycle(e, &e->pairs[e->free_stack[--e->n_free]], now);
			} else {
				r->late_starts++;
				e->pending_starts++;
			}
			next_sched += interval;
		}
		if (now >= next_house) {
			sweep_timeouts(e, now);
			next_house = now + HOUSEKEEPING;
		}
		if (now >= next_window) {
			if (r->n_windows == window_cap) {
				window_cap = window_cap ? window_cap * 2 : 64;
				r->windows = xrealloc(r->windows, (size_t)window_cap * sizeof *r->windows);
			}
			struct cycle_window *w = &r->windows[r->n_windows++];
			w->t_s = (double)(next_window - e->t_measure) / 1e9;
			w->cps = (double)e->window_cycles / o->window_s;
			w->rss_kb = services_rss_kb(o);
			fprintf(stderr, "loadgen:   t=%5.0fs  %8.0f cycles/s  service RSS %ld KiB\n", w->t_s,
				w->cps, w->rss_kb);
			e->window_cycles = 0;
			next_window += window_ns;
		}
		if (!measuring && now >= e->t_measure) {
			measuring = 1;
			steal0 = machine_steal_s();
			cpu0[0] = services_cpu_s(o);
			for (int i = 1; i < 4; i++)
				cpu0[i] = pids[i] > 0 ? proc_cpu_s(pids[i]) : -1;
		}
		if (measuring == 1 &&
		    (now >= e->t_stop || (o->max_cycles > 0 && e->started >= o->max_cycles))) {
			measuring = 2;
			steal1 = machine_steal_s();
			cpu1[0] = services_cpu_s(o);
			for (int i = 1; i < 4; i++)
				cpu1[i] = pids[i] > 0 ? proc_cpu_s(pids[i]) : -1;
		}
		if (now >= e->t_stop || (o->max_cycles > 0 && e->started >= o->max_cycles)) {
			e->stopping = 1;
			e->pending_starts = 0;
		}
		int done = e->stopping && e->active == 0;
		pthread_mutex_unlock(&e->mu);
		if (done)
			break;
	}
	uint64_t end = now_ns();
	uint64_t stop = e->t_stop < end ? e->t_stop : end;
	r->measured_s = stop > e->t_measure ? (double)(stop - e->t_measure) / 1e9 : 0;
	r->cps = r->measured_s > 0 ? (double)r->cycles / r->measured_s : 0;
	r->rss_end_kb = services_rss_kb(o);
	double *cpu_out[4] = { &r->cpu_service_s, &r->cpu_broker_s, &r->cpu_loadgen_s, &r->cpu_redis_s };
	for (int i = 0; i < 4; i++)
		*cpu_out[i] = cpu0[i] >= 0 && cpu1[i] >= 0 && measuring == 2 ? cpu1[i] - cpu0[i] : -1;
	r->steal_s = steal0 >= 0 && steal1 >= 0 && measuring == 2 ? steal1 - steal0 : -1;
	close(tfd);
	close(ep);
}

int cycles_run(const struct cycle_opts *o, struct cycle_result *r)
{
	memset(r, 0, sizeof *r);
	struct engine e = { .o = o, .r = r };
	pthread_mutex_init(&e.mu, NULL);
	int n_users = 2 * o->pairs, rc = -1;
	char **ids = xcalloc((size_t)n_users, sizeof *ids);
	char **topics = xcalloc((size_t)n_users, sizeof *topics);
	char buf[256];
	for (int i = 0; i < n_users; i++) {
		snprintf(buf, sizeof buf, "%s%c%d", o->prefix, i % 2 ? 'b' : 'a', i / 2);
		ids[i] = xstrdup(buf);
		snprintf(buf, sizeof buf, "users/%s/events", ids[i]);
		topics[i] = xstrdup(buf);
	}
	e.pairs = xcalloc((size_t)o->pairs, sizeof *e.pairs);
	e.free_stack = xcalloc((size_t)o->pairs, sizeof *e.free_stack);
	for (int i = 0; i < o->pairs; i++) {
		e.pairs[i].idx = i;
		for (int k = 0; k < CYCLES_MAX_INSTANCES; k++)
			e.pairs[i].http[k].fd = -1;
		e.free_stack[e.n_free++] = o->pairs - 1 - i;
	}

	/* Subscribers: the users' topics dealt round-robin over a few connections. */
	int nc = o->mqtt_conns < 1 ? 1 : o->mqtt_conns;
	struct mqtt_client **subs = xcalloc((size_t)nc, sizeof *subs);
	for (int c = 0; c < nc; c++) {
		snprintf(buf, sizeof buf, "bench-%d-%s-sub%d", (int)getpid(), o->prefix, c);
		subs[c] = mqtt_client_start(o->broker_url, buf, NULL, on_event, &e);
	}
	/* Started with the subscribers: see presence_load.c on Paho connects. */
	struct presence_pub *pp = presence_pub_start(o->broker_url, 2);
	if (presence_pub_wait(pp, 10) != 0) {
		fprintf(stderr, "loadgen: cycles: the presence publishers could not connect\n");
		goto out;
	}
	for (int c = 0; c < nc; c++) {
		if (!subs[c] || mqtt_client_wait_connected(subs[c], 10) != 0) {
			fprintf(stderr, "loadgen: cycles: subscriber %d could not connect\n", c);
			goto out;
		}
		int cnt = 0;
		char **mine = xcalloc((size_t)n_users, sizeof *mine);
		for (int i = c; i < n_users; i += nc)
			mine[cnt++] = topics[i];
		int s = mqtt_client_subscribe(subs[c], mine, cnt, o->qos, 30);
		free(mine);
		if (s != 0) {
			fprintf(stderr, "loadgen: cycles: subscribing failed\n");
			goto out;
		}
	}
	uint64_t t_pub = now_ns();
	if (presence_pub_send(pp, ids, n_users, 1, NULL) != 0)
		goto out;
	/* Each instance keeps its own online list from the broker: all must see them. */
	for (int k = 0; k < o->n_svcs; k++) {
		if (service_wait_counts(&o->svcs[k], n_users, -1, t_pub, 60, 5) < 0) {
			fprintf(stderr, "loadgen: cycles: instance %d never saw all %d users online\n", k + 1,
				n_users);
			goto out;
		}
	}
	for (int i = 0; i < o->pairs; i++) {
		for (int k = 0; k < o->n_svcs; k++) {
			if (http_conn_open(&e.pairs[i].http[k], o->svcs[k].port) != 0) {
				fprintf(stderr, "loadgen: cycles: cannot connect to the service: %s\n",
					strerror(errno));
				goto out;
			}
		}
	}

	run_loop(&e);
	rc = 0;

out:
	for (int c = 0; c < nc; c++)
		if (subs[c])
			mqtt_client_disconnect(subs[c]);
	for (int c = 0; c < nc; c++)
		mqtt_client_free(subs[c]);
	free(subs);
	for (int i = 0; i < o->pairs; i++)
		for (int k = 0; k < CYCLES_MAX_INSTANCES; k++)
			http_conn_close(&e.pairs[i].http[k]);
	/* Offline again, so the next phase starts from an empty online list. */
	presence_pub_send(pp, ids, n_users, 0, NULL);
	presence_pub_free(pp);
	for (int i = 0; i < n_users; i++) {
		free(ids[i]);
		free(topics[i]);
	}
	free(ids);
	free(topics);
	free(e.pairs);
	free(e.free_stack);
	pthread_mutex_destroy(&e.mu);
	return rc;
}

void cycle_result_release(struct cycle_result *r)
{
	for (int i = 0; i < LEG_COUNT; i++) {
		samples_release(&r->leg[i]);
		samples_release(&r->http[i]);
	}
	free(r->windows);
	r->windows = NULL;
}

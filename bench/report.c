/* Table and JSON output of the benchmark; see report.h. */
#include "report.h"
#include "stats.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

struct report {
	json_t *root;    /* owned */
	json_t *targets; /* borrowed from root */
	char *table;     /* owned, grows */
	size_t len, cap;
	int errors;
	int missed;
};

static void line(struct report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(struct report *rep, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	if (rep->len + (size_t)n + 2 > rep->cap) {
		rep->cap = (rep->cap + (size_t)n + 2) * 2;
		rep->table = xrealloc(rep->table, rep->cap);
	}
	memcpy(rep->table + rep->len, buf, (size_t)n);
	rep->len += (size_t)n;
	rep->table[rep->len++] = '\n';
	rep->table[rep->len] = '\0';
}

/* A figure with a target: a table row, a JSON entry under "targets". */
static void target(struct report *rep, const char *name, double value, const char *unit, const char *cmp,
		   double limit)
{
	int ok = strcmp(cmp, ">=") == 0 ? value >= limit : value < limit;
	if (!ok)
		rep->missed++;
	line(rep, "  target  %-44s %12.2f %-8s (%s %g) %s", name, value, unit, cmp, limit,
	     ok ? "met" : "MISSED");
	json_array_append_new(rep->targets,
			      json_pack("{s:s, s:f, s:s, s:s, s:f, s:b}", "name", name, "value", value,
					"unit", unit, "cmp", cmp, "limit", limit, "met", ok));
}

struct report *report_new(void)
{
	struct report *rep = xcalloc(1, sizeof *rep);
	rep->root = json_object();
	rep->targets = json_array();
	json_object_set_new(rep->root, "targets", rep->targets);
	char ts[32];
	time_t t = time(NULL);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	json_object_set_new(rep->root, "date", json_string(ts));
	return rep;
}

static void cpu_model(char *buf, size_t n)
{
	snprintf(buf, n, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char l[512];
	while (fgets(l, sizeof l, f)) {
		if (strncmp(l, "model name", 10) == 0) {
			char *v = strchr(l, ':');
			if (v) {
				v++;
				while (*v == ' ')
					v++;
				v[strcspn(v, "\n")] = '\0';
				snprintf(buf, n, "%s", v);
			}
			break;
		}
	}
	fclose(f);
}

void report_machine(struct report *rep, const char *mosquitto, const char *service, const char *paho,
		    const char *mhd)
{
	char model[256];
	cpu_model(model, sizeof model);
	struct utsname u;
	uname(&u);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	double mem_gib =
	    (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024 * 1024);
	json_object_set_new(rep->root, "machine",
			    json_pack("{s:i, s:s, s:s, s:f}", "cores", (int)cores, "cpu", model, "kernel",
				      u.release, "memory_gib", mem_gib));
	json_object_set_new(rep->root, "versions",
			    json_pack("{s:s, s:s, s:s, s:s}", "mosquitto", mosquitto, "service", service,
				      "paho", paho, "libmicrohttpd", mhd));
	line(rep, "machine   %ld cores, %s, Linux %s, %.1f GiB", cores, model, u.release, mem_gib);
	line(rep, "versions  %s; service %s; %s; libmicrohttpd %s", mosquitto, service, paho, mhd);
	double load[3] = { 0 };
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = load[1] = load[2] = -1;
		fclose(f);
	}
	json_object_set_new(json_object_get(rep->root, "machine"), "loadavg_at_start",
			    json_pack("[f, f, f]", load[0], load[1], load[2]));
	line(rep,
	     "          broker, service and load generator share the machine; load average at start %.2f "
	     "%.2f %.2f",
	     load[0], load[1], load[2]);
}

void report_engine(struct report *rep, const char *engine, int instances)
{
	json_object_set_new(rep->root, "engine",
			    json_pack("{s:s, s:i}", "state_engine", engine, "instances", instances));
	line(rep, "engine    STATE_ENGINE=%s, %d instance%s in the call-cycle phases", engine, instances,
	     instances == 1 ? "" : "s (requests spread, see cycles.h)");
}

void report_command(struct report *rep, int argc, char **argv)
{
	json_t *a = json_array();
	for (int i = 1; i < argc; i++)
		json_array_append_new(a, json_string(argv[i]));
	json_object_set_new(rep->root, "arguments", a);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static json_t *latency_json(struct samples *s)
{
	return json_pack("{s:I, s:f, s:f, s:f}", "n", (json_int_t)s->n, "p50_ms",
			 ms(samples_quantile(s, 0.5)), "p99_ms", ms(samples_quantile(s, 0.99)), "max_ms",
			 ms(samples_max(s)));
}

static const char *leg_names[LEG_COUNT] = { "start -> INCOMING_CALL", "answer -> ACCEPT_CALL",
					    "end -> END_CALL (both)" };
static const char *leg_keys[LEG_COUNT] = { "start_to_incoming", "answer_to_accept", "end_to_end_call" };
static const char *http_names[LEG_COUNT] = { "POST /calls/start", "POST /calls/answer", "POST /calls/end" };

static int cycle_errors(const struct cycle_result *r)
{
	return r->lost || r->out_of_order || r->http_errors || r->dead_pairs;
}

static void cycles_common(struct report *rep, json_t *o, const struct cycle_opts *opt, struct cycle_result *r)
{
	json_object_set_new(o, "pairs", json_integer(opt->pairs));
	json_object_set_new(o, "mqtt_connections", json_integer(opt->mqtt_conns));
	json_object_set_new(o, "qos", json_integer(opt->qos));
	json_object_set_new(o, "measured_s", json_real(r->measured_s));
	json_object_set_new(o, "cycles", json_integer(r->cycles));
	json_object_set_new(o, "cycles_total", json_integer(r->cycles_total));
	json_object_set_new(o, "cycles_per_s", json_real(r->cps));
	json_object_set_new(o, "events", json_integer(r->events));
	json_object_set_new(o, "lost_events", json_integer(r->lost));
	json_object_set_new(o, "out_of_order_events", json_integer(r->out_of_order));
	json_object_set_new(o, "http_errors", json_integer(r->http_errors));
	json_object_set_new(o, "late_starts", json_integer(r->late_starts));
	json_object_set_new(o, "service_rss_kib_start", json_integer(r->rss_start_kb));
	json_object_set_new(o, "service_rss_kib_end", json_integer(r->rss_end_kb));
	json_object_set_new(o, "instances", json_integer(opt->n_svcs));
	json_object_set_new(o, "cpu_s",
			    json_pack("{s:f, s:f, s:f, s:f}", "service", r->cpu_service_s, "broker",
				      r->cpu_broker_s, "loadgen", r->cpu_loadgen_s, "redis", r->cpu_redis_s));
	json_object_set_new(o, "steal_s", json_real(r->steal_s));
	json_t *legs = json_object(), *http = json_object();
	for (int i = 0; i < LEG_COUNT; i++) {
		json_object_set_new(legs, leg_keys[i], latency_json(&r->leg[i]));
		json_object_set_new(http, leg_keys[i], latency_json(&r->http[i]));
	}
	json_object_set_new(o, "event_latency", legs);
	json_object_set_new(o, "http_latency", http);

	line(rep,
	     "  %ld cycles in %.1f s = %.0f cycles/s; %ld events; lost %ld, out of order %ld, HTTP errors "
	     "%ld%s",
	     r->cycles, r->measured_s, r->cps, r->events, r->lost, r->out_of_order, r->http_errors,
	     cycle_errors(r) ? "  <-- ERRORS" : "");
	if (r->cycles > 0 && r->measured_s > 0) {
		char parts[4][64];
		const char *names[4] = { opt->n_svcs > 1 ? "service (all instances)" : "service", "broker",
					 "load generator", "Redis" };
		double cpu[4] = { r->cpu_service_s, r->cpu_broker_s, r->cpu_loadgen_s, r->cpu_redis_s };
		int n = opt->redis_pid > 0 ? 4 : 3;
		for (int i = 0; i < n; i++) {
			if (cpu[i] < 0)
				snprintf(parts[i], sizeof parts[i], "%s n/a", names[i]);
			else
				snprintf(parts[i], sizeof parts[i], "%s %.0f%% (%.0f us/cycle)", names[i],
					 100 * cpu[i] / r->measured_s, 1e6 * cpu[i] / (double)r->cycles);
		}
		line(rep, "  CPU of one core while measuring: %s, %s, %s%s%s", parts[0], parts[1], parts[2],
		     n > 3 ? ", " : "", n > 3 ? parts[3] : "");
		if (r->steal_s >= 0)
			line(rep, "  CPU stolen by the hypervisor meanwhile (all cores): %.0f ms",
			     1e3 * r->steal_s);
	}
	line(rep, "  %-34s %9s %9s %9s", "latency (request sent -> ...)", "p50 ms", "p99 ms", "max ms");
	for (int i = 0; i < LEG_COUNT; i++)
		line(rep, "  %-34s %9.3f %9.3f %9.3f", leg_names[i], ms(samples_quantile(&r->leg[i], 0.5)),
		     ms(samples_quantile(&r->leg[i], 0.99)), ms(samples_max(&r->leg[i])));
	for (int i = 0; i < LEG_COUNT; i++)
		line(rep, "  %-34s %9.3f %9.3f %9.3f", http_names[i], ms(samples_quantile(&r->http[i], 0.5)),
		     ms(samples_quantile(&r->http[i], 0.99)), ms(samples_max(&r->http[i])));
	if (cycle_errors(r))
		rep->errors++;
}

void report_cycles(struct report *rep, const char *key, const char *title, const struct cycle_opts *opt,
		   struct cycle_result *r)
{
	json_t *o = json_object();
	if (opt->rate > 0) {
		line(rep, "\n%s: open loop, %.0f cycles/s offered over %d pairs", title, opt->rate,
		     opt->pairs);
		json_object_set_new(o, "offered_cycles_per_s", json_real(opt->rate));
	} else {
		line(rep, "\n%s: closed loop, %d pairs", title, opt->pairs);
	}
	cycles_common(rep, o, opt, r);
	if (opt->rate > 0 && r->late_starts)
		line(rep, "  %ld cycles started late (no free pair at the scheduled time)", r->late_starts);
	if (opt->max_cycles > 0)
		json_object_set_new(o, "smoke", json_true());
	if (opt->rate > 0) {
		json_object_set_new(rep->root, key, o);
		if (opt->max_cycles == 0) /* smoke sizes: no targets */
			target(rep, "start -> INCOMING_CALL p99 at 1000 cycles/s",
			       ms(samples_quantile(&r->leg[LEG_START], 0.99)), "ms", "<", 5);
		return;
	}
	/* Closed loop: one run of the sweep; report_saturation sums them up. */
	json_t *runs = json_object_get(rep->root, key);
	if (!runs) {
		runs = json_array();
		json_object_set_new(rep->root, key, runs);
	}
	json_object_set_new(o, "errors", json_boolean(cycle_errors(r)));
	json_array_append_new(runs, o);
}

void report_saturation(struct report *rep)
{
	json_t *runs = json_object_get(rep->root, "saturation");
	size_t i;
	json_t *run, *best = NULL;
	int smoke = 0;
	char curve[256] = "";
	size_t used = 0;
	json_array_foreach(runs, i, run)
	{
		double cps = json_real_value(json_object_get(run, "cycles_per_s"));
		int n = snprintf(curve + used, sizeof curve - used, "%s%lld: %.0f", i ? ", " : "",
				 (long long)json_integer_value(json_object_get(run, "pairs")), cps);
		if (n > 0 && (size_t)n < sizeof curve - used)
			used += (size_t)n;
		smoke |= json_is_true(json_object_get(run, "smoke"));
		if (json_is_true(json_object_get(run, "errors")))
			continue; /* a run that lost events does not count */
		if (!best || cps > json_real_value(json_object_get(best, "cycles_per_s")))
			best = run;
	}
	if (!runs || json_array_size(runs) == 0)
		return;
	line(rep, "\nsaturation: cycles/s by closed-loop pairs: %s", curve);
	double best_cps = best ? json_real_value(json_object_get(best, "cycles_per_s")) : 0;
	int best_pairs = best ? (int)json_integer_value(json_object_get(best, "pairs")) : 0;
	line(rep, "  best: %.0f cycles/s with %d pairs (runs with lost events, errors excluded)", best_cps,
	     best_pairs);
	json_object_set_new(rep->root, "saturation_best",
			    json_pack("{s:f, s:i}", "cycles_per_s", best_cps, "pairs", best_pairs));
	if (!smoke)
		target(rep, "call cycles/s at saturation", best_cps, "cycles/s", ">=", 5000);
}

void report_endurance(struct report *rep, const struct cycle_opts *opt, struct cycle_result *r)
{
	json_t *o = json_object();
	line(rep, "\nendurance: closed loop, %d pairs, %.0f s, %.0f s windows", opt->pairs, opt->duration_s,
	     opt->window_s);
	cycles_common(rep, o, opt, r);
	json_t *ws = json_array();
	for (int i = 0; i < r->n_windows; i++)
		json_array_append_new(ws, json_pack("{s:f, s:f, s:I}", "t_s", r->windows[i].t_s,
						    "cycles_per_s", r->windows[i].cps, "service_rss_kib",
						    (json_int_t)r->windows[i].rss_kb));
	json_object_set_new(o, "windows", ws);
	/* Drift: the last minute against the first (or the last third against
	 * the first third on runs shorter than three minutes). */
	int n = r->n_windows;
	int span = (int)(60.0 / opt->window_s);
	if (span * 3 > n)
		span = n / 3 > 0 ? n / 3 : 1;
	double first = 0, last = 0, rss_first = 0, rss_last = 0;
	if (n > 0) {
		for (int i = 0; i < span && i < n; i++) {
			first += r->windows[i].cps;
			rss_first += (double)r->windows[i].rss_kb;
		}
		for (int i = n - span; i < n; i++) {
			if (i < 0)
				continue;
			last += r->windows[i].cps;
			rss_last += (double)r->windows[i].rss_kb;
		}
	}
	double drift = first > 0 ? (last - first) / first * 100.0 : 0;
	double rss_drift = rss_first > 0 ? (rss_last - rss_first) / rss_first * 100.0 : 0;
	json_object_set_new(o, "drift_window_s", json_real(span * opt->window_s));
	json_object_set_new(o, "cycles_per_s_drift_pct", json_real(drift));
	json_object_set_new(o, "service_rss_drift_pct", json_real(rss_drift));
	line(rep, "  %-8s %12s %16s", "t (s)", "cycles/s", "service RSS KiB");
	for (int i = 0; i < n; i++)
		line(rep, "  %-8.0f %12.0f %16ld", r->windows[i].t_s, r->windows[i].cps,
		     r->windows[i].rss_kb);
	line(rep, "  drift (last %.0f s vs first %.0f s): cycles/s %+.1f %%, service RSS %+.1f %%",
	     span * opt->window_s, span * opt->window_s, drift, rss_drift);
	json_object_set_new(rep->root, "endurance", o);
}

void report_presence(struct report *rep, const struct presence_opts *o, const struct presence_result *r)
{
	json_t *arr = json_object_get(rep->root, "presence");
	if (!arr) {
		arr = json_array();
		json_object_set_new(rep->root, "presence", arr);
		line(rep,
		     "\npresence: one user per device; real = connections with a Last Will, the rest "
		     "published retained by %d connections",
		     o->publishers);
		line(
		    rep,
		    "  online: first presence published -> /health counts all; publish: -> broker acked all");
		line(
		    rep,
		    "  /users: %d requests once all are online, the first one separately; rebuild: restarted "
		    "service -> all online again",
		    o->users_requests);
		line(rep, "  B/device: service RSS growth / devices (rb: after the rebuild)");
		line(rep, "  %8s %5s %9s %8s %9s %9s %9s %9s %9s %9s %8s %8s", "devices", "real", "publish s",
		     "online s", "/users KB", "1st ms", "p50 ms", "max ms", "rebuild s", "offline s",
		     "B/device", "B/dev rb");
	}
	json_array_append_new(
	    arr, json_pack("{s:I, s:i, s:f, s:f, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, "
			   "s:f, s:f, s:i}",
			   "devices", (json_int_t)r->devices, "real_devices", r->real_devices, "publish_s",
			   r->publish_s, "online_s", r->online_s, "users_listed", (json_int_t)r->users_listed,
			   "users_bytes", (json_int_t)r->users_bytes, "users_first_ms", r->users_first_ms,
			   "users_p50_ms", r->users_p50_ms, "users_p99_ms", r->users_p99_ms, "users_max_ms",
			   r->users_max_ms, "stop_s", r->stop_s, "rebuild_s", r->rebuild_s, "offline_s",
			   r->offline_s, "rss_base_kib", (json_int_t)r->rss_base_kb, "rss_online_kib",
			   (json_int_t)r->rss_online_kb, "rss_rebuilt_kib", (json_int_t)r->rss_rebuilt_kb,
			   "bytes_per_device", r->bytes_per_device, "bytes_per_device_rebuilt",
			   r->bytes_per_device_rebuilt, "errors", r->errors));
	line(rep, "  %8ld %5d %9.3f %8.3f %9.0f %9.2f %9.2f %9.2f %9.3f %9.3f %8.0f %8.0f%s", r->devices,
	     r->real_devices, r->publish_s, r->online_s, (double)r->users_bytes / 1024.0, r->users_first_ms,
	     r->users_p50_ms, r->users_max_ms, r->rebuild_s, r->offline_s, r->bytes_per_device,
	     r->bytes_per_device_rebuilt, r->errors ? "  <-- ERRORS" : "");
	if (r->errors)
		rep->errors++;
	if (r->devices == 100000) {
		target(rep, "100k devices: online list rebuilt after restart", r->rebuild_s, "s", "<", 2);
		target(rep, "100k devices: GET /users (max, first included)", r->users_max_ms, "ms", "<", 50);
		target(rep, "100k devices: service RSS per device", r->bytes_per_device, "bytes", "<", 500);
	}
}

void report_held(struct report *rep, const struct held_opts *o, const struct held_result *r)
{
	json_object_set_new(rep->root, "held_calls",
			    json_pack("{s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I}", "calls",
				      (json_int_t)r->calls, "call_retention_s", o->retention_s, "setup_s",
				      r->setup_s, "rss_base_kib", (json_int_t)r->rss_base_kb, "rss_live_kib",
				      (json_int_t)r->rss_live_kb, "rss_ended_kib",
				      (json_int_t)r->rss_ended_kb, "rss_after_retention_kib",
				      (json_int_t)r->rss_after_kb, "bytes_per_live_call", r->bytes_per_call,
				      "forgotten_after_s", r->forgotten_s, "forgotten_checked",
				      (json_int_t)r->forgotten_checked, "errors", (json_int_t)r->errors));
	line(rep, "\nheld calls: %ld ONGOING at once (set up in %.2f s = %.0f calls/s), CALL_RETENTION_S=%g",
	     r->calls, r->setup_s, r->setup_s > 0 ? (double)r->calls / r->setup_s : 0, o->retention_s);
	line(rep,
	     "  service RSS KiB: %ld with their %ld users online, %ld with the calls live, %ld just ended, "
	     "%ld after retention",
	     r->rss_base_kb, 2 * r->calls, r->rss_live_kb, r->rss_ended_kb, r->rss_after_kb);
	line(rep,
	     "  %.0f bytes per live call; ended calls forgotten %.2f s after the last end (%ld sampled); "
	     "then %+ld KiB vs no calls%s",
	     r->bytes_per_call, r->forgotten_s, r->forgotten_checked, r->rss_after_kb - r->rss_base_kb,
	     r->errors ? "  <-- ERRORS" : "");
	if (r->errors)
		rep->errors++;
	if (r->calls >= 10000)
		target(rep, "service RSS per live call", r->bytes_per_call, "bytes", "<", 2048);
}

void report_failure(struct report *rep, const char *key, const char *what)
{
	rep->errors++;
	line(rep, "\n%s: FAILED: %s", key, what);
	json_object_set_new(rep->root, key, json_pack("{s:s}", "failed", what));
}

int report_finish(struct report *rep, const char *json_path)
{
	line(rep, "\n%s; %d target%s missed", rep->errors ? "ERRORS (see above)" : "no errors", rep->missed,
	     rep->missed == 1 ? "" : "s");
	json_object_set_new(rep->root, "errors", json_integer(rep->errors));
	json_object_set_new(rep->root, "targets_missed", json_integer(rep->missed));
	fputs(rep->table, stdout);
	fflush(stdout);
	if (json_path && json_dump_file(rep->root, json_path, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0)
		fprintf(stderr, "loadgen: cannot write %s\n", json_path);
	int rc = rep->errors ? 1 : 0;
	json_decref(rep->root);
	free(rep->table);
	free(rep);
	return rc;
}

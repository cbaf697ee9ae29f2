/* The presence phase and the presence publisher; see presence_load.h. */
#include "presence_load.h"
#include "http_client.h"
#include "mqtt_clients.h"
#include "stats.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int PUBLISH_WINDOW = 50;

/* Paho connects a new client slowly (about 2 s) while the process has other
 * idle connections: its receive thread sees the new socket only when its
 * poll() times out. So every phase starts all its clients at once, before
 * any of them sits idle, and keeps them. */
struct presence_pub {
	struct mqtt_client **cs;
	int n;
};

struct pub_job {
	struct mqtt_client *c;
	char **ids;
	int from, to, online;
	int failed;
};

struct presence_pub *presence_pub_start(const char *broker_url, int conns)
{
	struct presence_pub *pp = xcalloc(1, sizeof *pp);
	pp->n = conns < 1 ? 1 : conns;
	pp->cs = xcalloc((size_t)pp->n, sizeof *pp->cs);
	char cid[96];
	for (int k = 0; k < pp->n; k++) {
		snprintf(cid, sizeof cid, "bench-%d-pub-%d-%p", (int)getpid(), k, (void *)pp);
		pp->cs[k] = mqtt_client_start(broker_url, cid, NULL, NULL, NULL);
	}
	return pp;
}

int presence_pub_wait(struct presence_pub *pp, double timeout_s)
{
	for (int k = 0; k < pp->n; k++)
		if (!pp->cs[k] || mqtt_client_wait_connected(pp->cs[k], timeout_s) != 0)
			return -1;
	return 0;
}

void presence_pub_free(struct presence_pub *pp)
{
	if (!pp)
		return;
	for (int k = 0; k < pp->n; k++)
		if (pp->cs[k])
			mqtt_client_disconnect(pp->cs[k]);
	for (int k = 0; k < pp->n; k++)
		mqtt_client_free(pp->cs[k]);
	free(pp->cs);
	free(pp);
}

static void presence_topic(char *buf, size_t n, const char *id)
{
	snprintf(buf, n, "users/%s/presence/%s-d", id, id);
}

static int presence_payload(char *buf, size_t n, const char *id)
{
	return snprintf(buf, n, "{\"id\":\"%s\",\"name\":\"User %s\",\"location\":\"bench\"}", id, id);
}

static void *pub_thread(void *arg)
{
	struct pub_job *j = arg;
	char topic[256], payload[512];
	for (int i = j->from; i < j->to && !j->failed; i++) {
		presence_topic(topic, sizeof topic, j->ids[i]);
		int len = j->online ? presence_payload(payload, sizeof payload, j->ids[i]) : 0;
		if (mqtt_client_publish(j->c, topic, payload, (size_t)len, 1, 1, PUBLISH_WINDOW) != 0)
			j->failed = 1;
	}
	if (mqtt_client_flush(j->c, 120) != 0)
		j->failed = 1;
	return NULL;
}

int presence_pub_send(struct presence_pub *pp, char **ids, int n, int online, double *took_s)
{
	uint64_t t0 = now_ns();
	int k_n = pp->n;
	struct pub_job *jobs = xcalloc((size_t)k_n, sizeof *jobs);
	pthread_t *th = xcalloc((size_t)k_n, sizeof *th);
	for (int k = 0; k < k_n; k++) {
		jobs[k] = (struct pub_job){ .c = pp->cs[k],
					    .ids = ids,
					    .online = online,
					    .from = (int)((long)n * k / k_n),
					    .to = (int)((long)n * (k + 1) / k_n) };
		if (!jobs[k].c)
			jobs[k].failed = 1;
		else
			pthread_create(&th[k], NULL, pub_thread, &jobs[k]);
	}
	int failed = 0;
	for (int k = 0; k < k_n; k++) {
		if (jobs[k].c)
			pthread_join(th[k], NULL);
		failed |= jobs[k].failed;
	}
	free(jobs);
	free(th);
	if (took_s)
		*took_s = (double)(now_ns() - t0) / 1e9;
	if (failed)
		fprintf(stderr, "loadgen: publishing presence failed\n");
	return failed ? -1 : 0;
}

int presence_publish(const char *broker_url, char **ids, int n, int online, int conns, double *took_s)
{
	struct presence_pub *pp = presence_pub_start(broker_url, conns);
	int rc = presence_pub_wait(pp, 10) == 0 ? presence_pub_send(pp, ids, n, online, took_s) : -1;
	presence_pub_free(pp);
	return rc;
}

/* Real devices: each its own connection with a Last Will (started all at
 * once, see above); devices_announce() then publishes each one's retained
 * presence, what the web client does once connected. */
static struct mqtt_client **devices_start(const char *url, char **ids, int n)
{
	struct mqtt_client **cs = xcalloc((size_t)(n > 0 ? n : 1), sizeof *cs);
	char topic[256], cid[160];
	for (int i = 0; i < n; i++) {
		presence_topic(topic, sizeof topic, ids[i]);
		snprintf(cid, sizeof cid, "%s-d", ids[i]);
		cs[i] = mqtt_client_start(url, cid, topic, NULL, NULL);
	}
	return cs;
}

static int devices_wait(struct mqtt_client **cs, int n)
{
	int failed = 0;
	for (int i = 0; i < n; i++)
		if (!cs[i] || mqtt_client_wait_connected(cs[i], 30) != 0)
			failed++;
	if (failed)
		fprintf(stderr, "loadgen: presence: %d of %d device connections failed\n", failed, n);
	return failed;
}

/* Queues every device's presence; devices_flush() waits for the acks. */
static int devices_announce(struct mqtt_client **cs, char **ids, int n)
{
	char topic[256], payload[512];
	int failed = 0;
	for (int i = 0; i < n; i++) {
		presence_topic(topic, sizeof topic, ids[i]);
		int len = presence_payload(payload, sizeof payload, ids[i]);
		if (!cs[i] || mqtt_client_publish(cs[i], topic, payload, (size_t)len, 1, 1, 0) != 0)
			failed++;
	}
	return failed;
}

static int devices_flush(struct mqtt_client **cs, int n)
{
	int failed = 0;
	for (int i = 0; i < n; i++)
		if (cs[i] && mqtt_client_flush(cs[i], 30) != 0)
			failed++;
	return failed;
}

/* A clean goodbye, part one: the empty retained message of every device,
 * acknowledged. Returns the number that failed. */
static int devices_clear(struct mqtt_client **cs, char **ids, int n)
{
	char topic[256];
	int failed = 0;
	for (int i = 0; i < n; i++) {
		presence_topic(topic, sizeof topic, ids[i]);
		if (!cs[i] || mqtt_client_publish(cs[i], topic, "", 0, 1, 1, 0) != 0)
			failed++;
	}
	for (int i = 0; i < n; i++)
		if (cs[i] && mqtt_client_flush(cs[i], 10) != 0)
			failed++;
	return failed;
}

/* Part two: DISCONNECT (so no will is sent) and free. */
static void devices_disconnect(struct mqtt_client **cs, int n)
{
	for (int i = 0; i < n; i++)
		if (cs[i])
			mqtt_client_disconnect(cs[i]);
	for (int i = 0; i < n; i++)
		mqtt_client_free(cs[i]);
	free(cs);
}

/* The real devices live in a child process (this program again, see
 * presence_devices_main()): Paho's one receive thread polls every socket
 * of the process for each packet it reads, so thousands of idle device
 * sockets would slow the bulk publishers down to a crawl and the figures
 * would measure Paho instead of the service. The parent drives the child
 * line by line: it answers "connected", then "announced" after "announce",
 * then "cleared" after "clear" (all offline again; it then disconnects and
 * exits). */
struct device_child {
	pid_t pid;
	FILE *to, *from;
};

static int child_say(FILE *f, const char *word)
{
	return fprintf(f, "%s\n", word) > 0 && fflush(f) == 0 ? 0 : -1;
}

static int child_expect(FILE *f, const char *word)
{
	char line[128];
	if (!fgets(line, sizeof line, f))
		return -1;
	line[strcspn(line, "\n")] = '\0';
	return strcmp(line, word) == 0 ? 0 : -1;
}

static int device_child_start(struct device_child *dc, const char *url, int n)
{
	int down[2], up[2];
	if (pipe2(down, O_CLOEXEC) != 0 || pipe2(up, O_CLOEXEC) != 0)
		return -1;
	char count[32];
	snprintf(count, sizeof count, "%d", n);
	dc->pid = fork();
	if (dc->pid < 0)
		return -1;
	if (dc->pid == 0) {
		dup2(down[0], 0);
		dup2(up[1], 1);
		char *argv[] = { "callsignal-loadgen", "--devices-child", (char *)url, count, NULL };
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(down[0]);
	close(up[1]);
	dc->to = fdopen(down[1], "w");
	dc->from = fdopen(up[0], "r");
	return child_expect(dc->from, "connected");
}

static int device_child_finish(struct device_child *dc)
{
	int rc = child_say(dc->to, "clear") == 0 && child_expect(dc->from, "cleared") == 0 ? 0 : -1;
	fclose(dc->to);
	fclose(dc->from);
	int st;
	waitpid(dc->pid, &st, 0);
	return rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int presence_devices_main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	const char *url = argv[2];
	int n = atoi(argv[3]);
	char **ids = xcalloc((size_t)(n > 0 ? n : 1), sizeof *ids);
	char buf[64];
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "dev%d", i);
		ids[i] = xstrdup(buf);
	}
	struct mqtt_client **devs = devices_start(url, ids, n);
	int failed = devices_wait(devs, n);
	child_say(stdout, failed ? "failed" : "connected");
	if (child_expect(stdin, "announce") != 0)
		return 1;
	failed += devices_announce(devs, ids, n);
	failed += devices_flush(devs, n);
	child_say(stdout, failed ? "failed" : "announced");
	if (child_expect(stdin, "clear") != 0)
		return 1;
	failed += devices_clear(devs, ids, n);
	child_say(stdout, failed ? "failed" : "cleared");
	devices_disconnect(devs, n);
	for (int i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return failed ? 1 : 0;
}

static void time_users(const struct presence_opts *o, struct presence_result *r)
{
	struct http_conn c = { .fd = -1, .port = o->svc->port };
	struct samples s = { 0 };
	for (int i = 0; i < o->users_requests; i++) {
		uint64_t t = now_ns();
		int st = http_conn_request(&c, "GET", "/users", NULL, 10000);
		uint64_t d = now_ns() - t;
		if (st != 200) {
			r->errors++;
			fprintf(stderr, "loadgen: presence: GET /users answered %d\n", st);
			break;
		}
		samples_add(&s, d);
		if (i == 0) {
			r->users_first_ms = (double)d / 1e6;
			r->users_bytes = c.body_len;
			r->users_listed = (long)count_occurrences(c.body, c.body_len, "\"id\"");
		}
	}
	r->users_p50_ms = (double)samples_quantile(&s, 0.50) / 1e6;
	r->users_p99_ms = (double)samples_quantile(&s, 0.99) / 1e6;
	r->users_max_ms = (double)samples_max(&s) / 1e6;
	samples_release(&s);
	http_conn_close(&c);
}

int presence_run(const struct presence_opts *o, struct presence_result *r)
{
	memset(r, 0, sizeof *r);
	long n = o->devices;
	int real = o->real_devices < n ? o->real_devices : (int)n;
	r->devices = n;
	r->real_devices = real;
	char **ids = xcalloc((size_t)n, sizeof *ids);
	char buf[64];
	for (long i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "dev%ld", i);
		ids[i] = xstrdup(buf);
	}
	/* A moment for the fresh process to settle before the baseline. */
	sleep_s(0.2);
	r->rss_base_kb = proc_rss_kb(o->svc->pid);

	struct presence_pub *pp = presence_pub_start(o->broker_url, o->publishers);
	struct device_child dc = { 0 };
	int have_child = real > 0;
	if (have_child && device_child_start(&dc, o->broker_url, real) != 0) {
		fprintf(stderr, "loadgen: presence: the device connections failed\n");
		r->errors++;
	}
	if (presence_pub_wait(pp, 30) != 0)
		r->errors++;

	/* From the first presence message to the service listing them all. */
	uint64_t t0 = now_ns();
	if (have_child && child_say(dc.to, "announce") != 0)
		r->errors++;
	if (presence_pub_send(pp, ids + real, (int)(n - real), 1, NULL) != 0)
		r->errors++;
	if (have_child && child_expect(dc.from, "announced") != 0)
		r->errors++;
	r->publish_s = (double)(now_ns() - t0) / 1e9;
	r->online_s = service_wait_counts(o->svc, n, -1, t0, o->timeout_s, 2);
	if (r->online_s < 0)
		r->errors++;
	r->rss_online_kb = proc_rss_kb(o->svc->pid);
	time_users(o, r);
	if (r->users_listed != n) {
		fprintf(stderr, "loadgen: presence: GET /users listed %ld users, %ld online\n",
			r->users_listed, n);
		r->errors++;
	}

	/* Restart: the online list must come back from the broker's replay. */
	uint64_t t1 = now_ns();
	if (service_stop(o->svc, 10) != 0) {
		fprintf(stderr, "loadgen: presence: the service did not exit cleanly on SIGTERM\n");
		r->errors++;
	}
	r->stop_s = (double)(now_ns() - t1) / 1e9;
	uint64_t t2 = now_ns();
	if (service_start(o->svc, 30) != 0) {
		r->errors++;
		r->rebuild_s = -1;
	} else {
		r->rebuild_s = service_wait_counts(o->svc, n, -1, t2, o->timeout_s, 2);
		if (r->rebuild_s < 0)
			r->errors++;
		sleep_s(0.2);
		r->rss_rebuilt_kb = proc_rss_kb(o->svc->pid);
	}

	uint64_t t3 = now_ns();
	if (have_child && device_child_finish(&dc) != 0)
		r->errors++;
	presence_pub_send(pp, ids + real, (int)(n - real), 0, NULL);
	presence_pub_free(pp);
	if (o->svc->pid) {
		r->offline_s = service_wait_counts(o->svc, 0, -1, t3, o->timeout_s, 2);
		if (r->offline_s < 0)
			r->errors++;
	}
	r->bytes_per_device = (double)(r->rss_online_kb - r->rss_base_kb) * 1024.0 / (double)n;
	r->bytes_per_device_rebuilt = (double)(r->rss_rebuilt_kb - r->rss_base_kb) * 1024.0 / (double)n;
	for (long i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return r->errors ? -1 : 0;
}

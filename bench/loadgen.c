/* callsignal-loadgen: the benchmark's load generator. Runs the phases in
 * order against a broker that is already up (bench/run starts it) and a
 * service it spawns itself for each phase (so it can restart it and read
 * its memory):
 *   saturation  closed-loop call cycles        (cycles.c)
 *   latency     open-loop call cycles at a fixed rate
 *   presence    1k / 10k / 100k devices        (presence_load.c)
 *   held        many ONGOING calls             (held_calls.c)
 *   endurance   closed-loop cycles for long, per-window rate and RSS
 * and prints one table plus a JSON file (report.c). With --redis-url the
 * services run STATE_ENGINE=redis on that (already running) Redis, emptied
 * before each service start, and --instances N runs the cycle phases on N
 * instances at once (cycles.h says how the requests are spread). Exit
 * status 1 when any phase saw lost or out-of-order events or errors, 2 on
 * bad usage. */
#include "cycles.h"
#include "held_calls.h"
#include "mqtt_clients.h"
#include "presence_load.h"
#include "report.h"
#include "service_proc.h"
#include "stats.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef BENCH_MHD_VERSION
#define BENCH_MHD_VERSION "unknown"
#endif

struct options {
	const char *broker_url, *service_bin, *mosquitto_bin, *json_path, *log_dir, *log_level;
	const char *call_retention; /* for the cycle phases; NULL = service default */
	const char *redis_url;      /* NULL: the memory engine */
	int smoke;
	int broker_pid, redis_pid;
	int instances;         /* service instances of the cycle phases */
	int pairs[8], n_pairs; /* the saturation sweep */
	int endurance_pairs, latency_pairs, mqtt_conns, qos, real_devices, publishers;
	double rate, duration, warmup, endurance, window;
	long held;
	long devices[8];
	int n_devices;
	char phases[128];
};

static void usage(FILE *f)
{
	fputs(
	    "usage: callsignal-loadgen --broker-url URL --service-bin PATH [options]\n"
	    "  --mosquitto-bin PATH   only for its version line\n"
	    "  --json PATH            write the figures as JSON\n"
	    "  --log-dir DIR          the service's stderr goes to DIR/service-<phase>.log\n"
	    "  --phases LIST          saturation,latency,presence,held,endurance (default all)\n"
	    "  --smoke                tiny sizes, a few seconds: a check, not a measurement\n"
	    "  --pairs K[,K...]       closed-loop pairs of the saturation sweep (default 32,64,128,256)\n"
	    "  --endurance-pairs K    closed-loop pairs of the endurance phase (default 32)\n"
	    "  --rate R               open-loop offered cycles/s (default 1000)\n"
	    "  --latency-pairs N      pairs the open loop draws from (default 64)\n"
	    "  --duration S           measured seconds per cycle phase (default 10)\n"
	    "  --warmup S             unmeasured seconds first (default 1)\n"
	    "  --endurance S          endurance length (default 30; 600 for the 10-minute run)\n"
	    "  --window S             endurance window (default 10)\n"
	    "  --devices N[,N...]     presence sizes (default 1000,10000,100000)\n"
	    "  --real-devices N       of which real connections with a Last Will (default 2000)\n"
	    "  --publishers N         connections publishing the other devices (default 4)\n"
	    "  --held N               calls held ONGOING at once (default 10000)\n"
	    "  --mqtt-conns N         subscriber connections for the cycle users (default 4)\n"
	    "  --qos N                their subscription QoS (default 1)\n"
	    "  --call-retention-s S   CALL_RETENTION_S for the cycle phases (default: service's)\n"
	    "  --service-log-level L  LOG_LEVEL of the service (default warn)\n"
	    "  --broker-pid PID       the broker's process, to report its CPU time\n"
	    "  --redis-url URL        STATE_ENGINE=redis on redis://127.0.0.1:PORT (emptied before each "
	    "start)\n"
	    "  --redis-pid PID        Redis's process, to report its CPU time\n"
	    "  --instances N          service instances of the cycle phases (default 1; N > 1 needs Redis)\n",
	    f);
}

/* "N[,N...]" of positive numbers into out; returns how many. */
static int parse_list(const char *arg, int *out, int max, const char *what)
{
	int n = 0;
	for (const char *p = arg; *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > 10000000 || n == max || (*end && *end != ','))
			die("bad %s list", what);
		out[n++] = (int)v;
		p = *end ? end + 1 : end;
	}
	if (n == 0)
		die("bad %s list", what);
	return n;
}

static void parse(struct options *o, int argc, char **argv)
{
	*o = (struct options){ .pairs = { 32, 64, 128, 256 },
			       .n_pairs = 4,
			       .endurance_pairs = 32,
			       .latency_pairs = 64,
			       .mqtt_conns = 4,
			       .qos = 1,
			       .real_devices = 2000,
			       .publishers = 4,
			       .rate = 1000,
			       .duration = 10,
			       .warmup = 1,
			       .endurance = 30,
			       .window = 10,
			       .held = 10000,
			       .devices = { 1000, 10000, 100000 },
			       .n_devices = 3,
			       .instances = 1,
			       .log_level = "warn" };
	snprintf(o->phases, sizeof o->phases, "saturation,latency,presence,held,endurance");
	enum {
		O_BROKER = 256,
		O_BIN,
		O_MOSQ,
		O_JSON,
		O_LOGDIR,
		O_PHASES,
		O_SMOKE,
		O_PAIRS,
		O_EPAIRS,
		O_RATE,
		O_LPAIRS,
		O_DURATION,
		O_WARMUP,
		O_ENDURANCE,
		O_WINDOW,
		O_DEVICES,
		O_REAL,
		O_PUBS,
		O_HELD,
		O_MQTTC,
		O_QOS,
		O_RETENTION,
		O_LEVEL,
		O_BPID,
		O_REDIS,
		O_RPID,
		O_INSTANCES,
		O_HELP
	};
	static const struct option longopts[] = { { "broker-url", 1, 0, O_BROKER },
						  { "service-bin", 1, 0, O_BIN },
						  { "mosquitto-bin", 1, 0, O_MOSQ },
						  { "json", 1, 0, O_JSON },
						  { "log-dir", 1, 0, O_LOGDIR },
						  { "phases", 1, 0, O_PHASES },
						  { "smoke", 0, 0, O_SMOKE },
						  { "pairs", 1, 0, O_PAIRS },
						  { "endurance-pairs", 1, 0, O_EPAIRS },
						  { "rate", 1, 0, O_RATE },
						  { "latency-pairs", 1, 0, O_LPAIRS },
						  { "duration", 1, 0, O_DURATION },
						  { "warmup", 1, 0, O_WARMUP },
						  { "endurance", 1, 0, O_ENDURANCE },
						  { "window", 1, 0, O_WINDOW },
						  { "devices", 1, 0, O_DEVICES },
						  { "real-devices", 1, 0, O_REAL },
						  { "publishers", 1, 0, O_PUBS },
						  { "held", 1, 0, O_HELD },
						  { "mqtt-conns", 1, 0, O_MQTTC },
						  { "qos", 1, 0, O_QOS },
						  { "call-retention-s", 1, 0, O_RETENTION },
						  { "service-log-level", 1, 0, O_LEVEL },
						  { "broker-pid", 1, 0, O_BPID },
						  { "redis-url", 1, 0, O_REDIS },
						  { "redis-pid", 1, 0, O_RPID },
						  { "instances", 1, 0, O_INSTANCES },
						  { "help", 0, 0, O_HELP },
						  { 0, 0, 0, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_BROKER:
			o->broker_url = optarg;
			break;
		case O_BIN:
			o->service_bin = optarg;
			break;
		case O_MOSQ:
			o->mosquitto_bin = optarg;
			break;
		case O_JSON:
			o->json_path = optarg;
			break;
		case O_LOGDIR:
			o->log_dir = optarg;
			break;
		case O_PHASES:
			snprintf(o->phases, sizeof o->phases, "%s", optarg);
			break;
		case O_SMOKE:
			o->smoke = 1;
			break;
		case O_PAIRS:
			o->n_pairs = parse_list(optarg, o->pairs, 8, "--pairs");
			break;
		case O_EPAIRS:
			o->endurance_pairs = atoi(optarg);
			break;
		case O_RATE:
			o->rate = atof(optarg);
			break;
		case O_LPAIRS:
			o->latency_pairs = atoi(optarg);
			break;
		case O_DURATION:
			o->duration = atof(optarg);
			break;
		case O_WARMUP:
			o->warmup = atof(optarg);
			break;
		case O_ENDURANCE:
			o->endurance = atof(optarg);
			break;
		case O_WINDOW:
			o->window = atof(optarg);
			break;
		case O_DEVICES: {
			int d[8];
			o->n_devices = parse_list(optarg, d, 8, "--devices");
			for (int i = 0; i < o->n_devices; i++)
				o->devices[i] = d[i];
			break;
		}
		case O_REAL:
			o->real_devices = atoi(optarg);
			break;
		case O_PUBS:
			o->publishers = atoi(optarg);
			break;
		case O_HELD:
			o->held = atol(optarg);
			break;
		case O_MQTTC:
			o->mqtt_conns = atoi(optarg);
			break;
		case O_QOS:
			o->qos = atoi(optarg);
			break;
		case O_RETENTION:
			o->call_retention = optarg;
			break;
		case O_LEVEL:
			o->log_level = optarg;
			break;
		case O_BPID:
			o->broker_pid = atoi(optarg);
			break;
		case O_REDIS:
			o->redis_url = optarg;
			break;
		case O_RPID:
			o->redis_pid = atoi(optarg);
			break;
		case O_INSTANCES:
			o->instances = atoi(optarg);
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (!o->broker_url || !o->service_bin || optind != argc) {
		usage(stderr);
		exit(2);
	}
	if (o->endurance_pairs < 1 || o->latency_pairs < 1 || o->qos < 0 || o->qos > 2 || o->window <= 0)
		die("bad option value");
	if (o->instances < 1 || o->instances > CYCLES_MAX_INSTANCES || (o->instances > 1 && !o->redis_url))
		die("--instances: 1 to %d, more than 1 only with --redis-url", CYCLES_MAX_INSTANCES);
}

static int wants(const struct options *o, const char *phase)
{
	size_t n = strlen(phase);
	for (const char *p = o->phases; (p = strstr(p, phase)) != NULL; p += n)
		if ((p == o->phases || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

/* Many sockets: device connections here, their peers in the broker. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void first_line_of(const char *cmd, char *buf, size_t n)
{
	snprintf(buf, n, "unknown");
	FILE *p = popen(cmd, "r");
	if (!p)
		return;
	char l[256];
	if (fgets(l, sizeof l, p)) {
		l[strcspn(l, "\r\n")] = '\0';
		snprintf(buf, n, "%s", l);
	}
	pclose(p);
}

/*
 * Empties the Redis of --redis-url (FLUSHDB over a plain socket), so that a
 * phase starts without the calls of the last one. 0, or -1 when it did not answer +OK.
 */
static int redis_flush(const char *url)
{
	unsigned port;
	if (sscanf(url, "redis://127.0.0.1:%u", &port) != 1 || port == 0 || port > 65535)
		die("--redis-url: expected redis://127.0.0.1:PORT");
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { 5, 0 };
	char reply[16] = "";
	int ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
		 connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
		 write(fd, "*1\r\n$7\r\nFLUSHDB\r\n", 17) == 17 && read(fd, reply, sizeof reply - 1) > 0 &&
		 strncmp(reply, "+OK", 3) == 0;
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* The service of a phase (instance idx, from 0): its log, and the engine's
 * environment. Returns the first free slot of s->env. */
static int service_for(const struct options *o, struct service *s, const char *phase, int idx, char *log_path,
		       size_t n, char *url_env, size_t url_n)
{
	*s = (struct service){ .bin = o->service_bin, .mqtt_url = o->broker_url, .log_level = o->log_level };
	if (o->log_dir) {
		if (idx > 0)
			snprintf(log_path, n, "%s/service-%s-%d.log", o->log_dir, phase, idx + 1);
		else
			snprintf(log_path, n, "%s/service-%s.log", o->log_dir, phase);
		s->log_path = log_path;
	}
	int k = 0;
	if (o->redis_url) {
		snprintf(url_env, url_n, "REDIS_URL=%s", o->redis_url);
		s->env[k++] = "STATE_ENGINE=redis";
		s->env[k++] = url_env;
	}
	return k;
}

/* Before a phase's service starts: an empty Redis. 0, or -1 (reported). */
static int fresh_redis(const struct options *o, struct report *rep, const char *phase)
{
	if (!o->redis_url || redis_flush(o->redis_url) == 0)
		return 0;
	report_failure(rep, phase, "Redis did not answer FLUSHDB");
	return -1;
}

static void stop_all(struct service *svcs, int n, struct report *rep, const char *phase)
{
	for (int k = 0; k < n; k++)
		if (svcs[k].pid && service_stop(&svcs[k], 10) != 0)
			report_failure(rep, phase, "the service did not exit cleanly on SIGTERM");
}

static void run_cycles(const struct options *o, struct report *rep, const char *phase, int pairs)
{
	struct service svcs[CYCLES_MAX_INSTANCES];
	char log_path[CYCLES_MAX_INSTANCES][1024], url_env[CYCLES_MAX_INSTANCES][600], retention[64];
	int ns = o->instances;
	if (o->call_retention)
		snprintf(retention, sizeof retention, "CALL_RETENTION_S=%s", o->call_retention);
	for (int k = 0; k < ns; k++) {
		int slot = service_for(o, &svcs[k], phase, k, log_path[k], sizeof log_path[k], url_env[k],
				       sizeof url_env[k]);
		if (o->call_retention)
			svcs[k].env[slot] = retention;
	}
	struct cycle_opts co = { .broker_url = o->broker_url,
				 .svcs = svcs,
				 .n_svcs = ns,
				 .mqtt_conns = o->mqtt_conns,
				 .qos = o->qos,
				 .step_timeout_s = 5,
				 .broker_pid = o->broker_pid,
				 .redis_pid = o->redis_pid,
				 .warmup_s = o->warmup,
				 .duration_s = o->duration };
	int endurance = strcmp(phase, "endurance") == 0;
	if (strcmp(phase, "saturation") == 0) {
		co.prefix = "sat";
		co.pairs = pairs;
	} else if (strcmp(phase, "latency") == 0) {
		co.prefix = "lat";
		co.pairs = o->latency_pairs;
		co.rate = o->rate;
	} else {
		co.prefix = "end";
		co.pairs = o->endurance_pairs;
		co.duration_s = o->endurance;
		co.window_s = o->window;
		co.warmup_s = 0;
	}
	if (o->smoke) {
		co.warmup_s = 0;
		co.step_timeout_s = 10; /* a check on a busy machine: late is not lost */
		if (endurance) {
			co.duration_s = 1;
			co.window_s = 0.25;
		} else {
			co.duration_s = 60; /* bounded by max_cycles */
			co.max_cycles = 20;
		}
	}
	if (fresh_redis(o, rep, phase) != 0)
		return;
	fprintf(stderr, "loadgen: %s: starting the service%s\n", phase, ns > 1 ? " instances" : "");
	for (int k = 0; k < ns; k++) {
		if (service_start(&svcs[k], 20) != 0) {
			report_failure(rep, phase, "the service did not start");
			stop_all(svcs, k, rep, phase);
			return;
		}
	}
	fprintf(stderr, "loadgen: %s: %d pairs%s\n", phase, co.pairs,
		co.rate > 0 ? ", open loop" : ", closed loop");
	struct cycle_result r;
	if (cycles_run(&co, &r) != 0)
		report_failure(rep, phase, "setting up the users failed");
	else if (endurance)
		report_endurance(rep, &co, &r);
	else
		report_cycles(rep, phase,
			      strcmp(phase, "saturation") == 0 ? "call cycles at saturation"
							       : "call-cycle latency",
			      &co, &r);
	cycle_result_release(&r);
	stop_all(svcs, ns, rep, phase);
}

static void run_presence(const struct options *o, struct report *rep)
{
	for (int i = 0; i < o->n_devices; i++) {
		struct service svc;
		char log_path[1024], url_env[600];
		service_for(o, &svc, "presence", 0, log_path, sizeof log_path, url_env, sizeof url_env);
		if (fresh_redis(o, rep, "presence") != 0)
			return;
		if (service_start(&svc, 20) != 0) {
			report_failure(rep, "presence", "the service did not start");
			return;
		}
		struct presence_opts po = { .broker_url = o->broker_url,
					    .svc = &svc,
					    .devices = o->devices[i],
					    .real_devices = o->real_devices,
					    .publishers = o->publishers,
					    .users_requests = o->devices[i] >= 100000 ? 20 : 50,
					    .timeout_s = 120 };
		fprintf(stderr, "loadgen: presence: %ld devices (%d real)\n", po.devices,
			po.real_devices < po.devices ? po.real_devices : (int)po.devices);
		struct presence_result r;
		presence_run(&po, &r);
		report_presence(rep, &po, &r);
		if (svc.pid && service_stop(&svc, 10) != 0)
			report_failure(rep, "presence", "the service did not exit cleanly on SIGTERM");
	}
}

static void run_held(const struct options *o, struct report *rep)
{
	struct service svc;
	char log_path[1024], url_env[600];
	int slot = service_for(o, &svc, "held", 0, log_path, sizeof log_path, url_env, sizeof url_env);
	double retention = o->smoke ? 0.3 : 2;
	char ret_env[64];
	snprintf(ret_env, sizeof ret_env, "CALL_RETENTION_S=%g", retention);
	svc.env[slot] = ret_env;
	svc.env[slot + 1] = "RING_TIMEOUT_S=300";
	if (fresh_redis(o, rep, "held_calls") != 0)
		return;
	if (service_start(&svc, 20) != 0) {
		report_failure(rep, "held_calls", "the service did not start");
		return;
	}
	struct held_opts ho = { .broker_url = o->broker_url,
				.svc = &svc,
				.calls = o->held,
				.http_conns = 8,
				.retention_s = retention };
	fprintf(stderr, "loadgen: held: %ld calls\n", ho.calls);
	struct held_result r;
	held_run(&ho, &r);
	report_held(rep, &ho, &r);
	if (service_stop(&svc, 10) != 0)
		report_failure(rep, "held_calls", "the service did not exit cleanly on SIGTERM");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--devices-child") == 0)
		return presence_devices_main(argc, argv);
	struct options o;
	parse(&o, argc, argv);
	if (o.smoke) {
		o.pairs[0] = 4;
		o.n_pairs = 1;
		o.endurance_pairs = 4;
		o.latency_pairs = 4;
		o.rate = 200;
		o.devices[0] = 200;
		o.n_devices = 1;
		o.real_devices = 50;
		o.held = 50;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	struct report *rep = report_new();
	char mosq[256] = "unknown", svc_version[256], paho[128], cmd[1100];
	if (o.mosquitto_bin) {
		snprintf(cmd, sizeof cmd, "'%s' -h 2>&1", o.mosquitto_bin);
		first_line_of(cmd, mosq, sizeof mosq);
	}
	service_version(o.service_bin, svc_version, sizeof svc_version);
	mqtt_library_version(paho, sizeof paho);
	report_machine(rep, mosq, svc_version, paho, BENCH_MHD_VERSION);
	report_engine(rep, o.redis_url ? "redis" : "memory", o.instances);
	report_command(rep, argc, argv);

	if (wants(&o, "saturation")) {
		for (int i = 0; i < o.n_pairs; i++)
			run_cycles(&o, rep, "saturation", o.pairs[i]);
		report_saturation(rep);
	}
	if (wants(&o, "latency"))
		run_cycles(&o, rep, "latency", 0);
	if (wants(&o, "presence"))
		run_presence(&o, rep);
	if (wants(&o, "held"))
		run_held(&o, rep);
	if (wants(&o, "endurance") && o.endurance > 0)
		run_cycles(&o, rep, "endurance", 0);
	return report_finish(rep, o.json_path);
}

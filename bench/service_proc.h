/* Starts, watches and stops the real service process for a phase of the
 * benchmark: a fresh free HTTP port on each start, the environment the
 * phase asks for, stderr into a log file, readiness by polling GET /ready.
 * The generator owns the process so it can restart it (presence rebuild)
 * and read its memory (/proc/<pid>/status). */
#ifndef BENCH_SERVICE_PROC_H
#define BENCH_SERVICE_PROC_H

#include <stdint.h>
#include <sys/types.h>

#include "http_client.h"

struct service {
	/* Set by the caller, borrowed for the life of the struct. */
	const char *bin;
	const char *mqtt_url;
	const char *log_path;  /* stderr goes here (appended); NULL = /dev/null */
	const char *log_level; /* LOG_LEVEL for the service */
	const char *env[8];    /* extra "KEY=VALUE", NULL-terminated */
	/* Set by service_start(). */
	pid_t pid;
	uint16_t port;
	double startup_s; /* spawn -> first 200 on /ready */
};

/* Spawns the service and waits up to timeout_s for GET /ready == 200
 * (HTTP up, broker connected, live calls rebuilt). Returns 0, or -1 (the
 * process is then stopped). */
int service_start(struct service *s, double timeout_s);
/* GET /ready on conn (opened to s->port on demand): the status code, or -1. */
int service_ready(struct service *s, struct http_conn *conn);
/* SIGTERM, then waits up to timeout_s (SIGKILL after). Returns the exit
 * status, or -1 if it had to be killed or did not exit normally. */
int service_stop(struct service *s, double timeout_s);
/* GET /health on conn (opened to s->port on demand). Returns the status
 * code (or -1) and fills users/calls (either may be NULL) from the body. */
int service_health(struct service *s, struct http_conn *conn, long *users, long *calls);
/* Polls /health every poll_ms until users == want (calls when
 * want_calls >= 0 too). Returns the seconds it took from `since` (a now_ns()
 * value), or -1 on timeout. */
double service_wait_counts(struct service *s, long want_users, long want_calls, uint64_t since,
			   double timeout_s, int poll_ms);
/* A TCP port on 127.0.0.1 nobody listens on right now. */
uint16_t free_tcp_port(void);
/* The service's --version output (first line), or "unknown". */
void service_version(const char *bin, char *buf, size_t n);

#endif

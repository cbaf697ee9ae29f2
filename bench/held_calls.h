/* Calls held: many calls ONGOING at once (start + answer, never ended),
 * then all ended; measures the service's RSS per live call and what is left
 * once the finished calls outlived CALL_RETENTION_S. HTTP only: nobody
 * needs to watch the events here (the cycle phases check those). */
#ifndef BENCH_HELD_CALLS_H
#define BENCH_HELD_CALLS_H

#include "service_proc.h"

struct held_opts {
	const char *broker_url;
	struct service *svc; /* running with CALL_RETENTION_S = retention_s */
	long calls;
	int http_conns; /* parallel keep-alive connections */
	double retention_s;
};

struct held_result {
	long calls;
	double setup_s;         /* starting + answering them all */
	long rss_base_kb;       /* 2 x calls users online, no call */
	long rss_live_kb;       /* all calls ONGOING */
	long rss_ended_kb;      /* all ended, still retained */
	long rss_after_kb;      /* once the last ended call is forgotten */
	double forgotten_s;     /* last call ended -> CALL_NOT_FOUND for it */
	double bytes_per_call;  /* (live - base) / calls */
	long forgotten_checked; /* sample of ended calls that answer CALL_NOT_FOUND */
	long errors;
};

int held_run(const struct held_opts *o, struct held_result *r);

#endif

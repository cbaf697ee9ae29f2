/* The call-cycle load: pairs of simulated users, each cycle
 *   POST /calls/start  -> INCOMING_CALL at the receiver
 *   POST /calls/answer -> ACCEPT_CALL at the caller (and the receiver)
 *   POST /calls/end    -> END_CALL at both
 * driven either closed loop (every pair starts its next cycle as soon as
 * the last one finished: throughput at saturation) or open loop (cycles
 * start at a fixed offered rate on whichever pair is free: latency).
 * Every event is checked against what the pair expects next, so lost,
 * duplicated and out-of-order events are counted, never absorbed.
 *
 * With several service instances (one Redis behind them), a pair's steps go
 * to different instances: step s of pair i (start 0, answer 1, end 2) to
 * instance (i + s) mod N, so every call is started on one instance and
 * answered on the next, and the cross-instance path is what is measured.
 *
 * Threads: the caller's thread runs an epoll loop over one keep-alive HTTP
 * connection per pair and instance; Paho's thread delivers the events. Both advance a
 * pair under one mutex, so the next request leaves from whichever thread
 * completed the step. */
#ifndef BENCH_CYCLES_H
#define BENCH_CYCLES_H

#include "service_proc.h"
#include "stats.h"

struct cycle_opts {
	const char *broker_url;
	struct service *svcs; /* n_svcs running instances; borrowed */
	int n_svcs;           /* 1..CYCLES_MAX_INSTANCES */
	const char *prefix;   /* user ids are <prefix>a<i> (caller), <prefix>b<i> */
	int pairs;
	double rate;           /* offered cycles/s; 0 = closed loop */
	double warmup_s;       /* cycles run but are not counted */
	double duration_s;     /* measured period */
	long max_cycles;       /* > 0: stop starting cycles after this many */
	double window_s;       /* > 0: cycles/s and service RSS per window */
	int mqtt_conns;        /* subscriber connections sharing the users */
	int qos;               /* subscription QoS */
	double step_timeout_s; /* a step not complete after this = lost events */
	pid_t broker_pid;      /* > 0: its CPU time is reported too */
	pid_t redis_pid;       /* > 0: Redis's CPU time is reported too */
};

#define CYCLES_MAX_INSTANCES 8

struct cycle_window {
	double t_s; /* end of the window, from the start of measuring */
	double cps;
	long rss_kb;
};

enum { LEG_START, LEG_ANSWER, LEG_END, LEG_COUNT };

struct cycle_result {
	long cycles;       /* completed inside the measured period */
	long cycles_total; /* completed at all (warm-up and drain included) */
	double measured_s;
	double cps;
	/* request sent -> event received: INCOMING_CALL at the receiver;
	 * ACCEPT_CALL at the caller; END_CALL at both (the later one). */
	struct samples leg[LEG_COUNT];
	struct samples http[LEG_COUNT]; /* request sent -> response received */
	long events;                    /* events received */
	long lost;                      /* expected events that never came */
	long out_of_order;              /* events that were not the next expected one */
	long http_errors;               /* non-200 answers, timeouts, broken connections */
	long late_starts;               /* open loop: no free pair at the scheduled time */
	long dead_pairs;                /* pairs dropped after an error */
	struct cycle_window *windows;
	int n_windows;
	long rss_start_kb, rss_end_kb; /* summed over the instances */
	/* CPU seconds used during the measured period (-1 = unknown); the
	 * service's summed over its instances. */
	double cpu_service_s, cpu_broker_s, cpu_loadgen_s, cpu_redis_s;
	double steal_s; /* the machine's steal while measuring (machine_steal_s), or -1 */
};

/* Brings the users online (retained presence), subscribes their event
 * topics, runs the load, then takes the users offline again. Returns 0 when
 * the setup worked (the result then says how the load went), -1 if not. */
int cycles_run(const struct cycle_opts *o, struct cycle_result *r);
void cycle_result_release(struct cycle_result *r);

#endif

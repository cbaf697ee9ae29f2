/* Presence at scale: many devices online through retained presence
 * messages (most published by a few connections, a few thousand by real
 * device connections that carry a Last Will), and what that costs the
 * service: time until GET /users lists them all, GET /users latency, time
 * to rebuild the online list after a service restart, RSS per device.
 * Also the helper every phase uses to bring its users on- and offline. */
#ifndef BENCH_PRESENCE_LOAD_H
#define BENCH_PRESENCE_LOAD_H

#include "service_proc.h"

/* Publishes the retained presence of n users (topic
 * users/<id>/presence/<id>-d) over `conns` parallel connections, QoS 1,
 * and waits until the broker acknowledged all. online = 0 publishes the
 * empty retained message (offline). *took_s (may be NULL) gets the time.
 * Returns 0, or -1 if a connection or a publish failed. */
int presence_publish(const char *broker_url, char **ids, int n, int online, int conns, double *took_s);

/* The same in steps, for phases that must connect all their clients at
 * once (see presence_load.c): start connecting, wait, publish (any number of
 * times), free. */
struct presence_pub;
struct presence_pub *presence_pub_start(const char *broker_url, int conns);
int presence_pub_wait(struct presence_pub *pp, double timeout_s);
int presence_pub_send(struct presence_pub *pp, char **ids, int n, int online, double *took_s);
void presence_pub_free(struct presence_pub *pp);

struct presence_opts {
	const char *broker_url;
	struct service *svc; /* running, no users online; restarted here */
	long devices;        /* devices online (one user each) */
	int real_devices;    /* of which real connections with a Last Will */
	int publishers;      /* connections publishing the others */
	int users_requests;  /* GET /users requests timed */
	double timeout_s;
};

struct presence_result {
	long devices;
	int real_devices;
	double publish_s;                                /* first publish -> broker acknowledged all */
	double online_s;                                 /* first publish -> /health counts them all */
	long users_listed;                               /* users in one GET /users once all online */
	size_t users_bytes;                              /* its body size */
	double users_first_ms;                           /* the first one after the list changed */
	double users_p50_ms, users_p99_ms, users_max_ms; /* all of them */
	double stop_s;                                   /* SIGTERM -> exit */
	double rebuild_s;                                /* restart spawned -> /health counts them all */
	double offline_s;                                /* clearing them -> /health counts 0 */
	long rss_base_kb, rss_online_kb, rss_rebuilt_kb;
	double bytes_per_device;         /* (online - base) / devices */
	double bytes_per_device_rebuilt; /* (rebuilt - base) / devices */
	int errors;
};

/* The child process holding the real device connections: main() of
 * callsignal-loadgen hands over when argv[1] is "--devices-child". */
int presence_devices_main(int argc, char **argv);

/* Runs one size. Returns 0 when every step saw what it expected. */
int presence_run(const struct presence_opts *o, struct presence_result *r);

#endif

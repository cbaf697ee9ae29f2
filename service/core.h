/*
 * core.h - the service's state behind one lock: presence, calls, rate limits.
 *
 * core owns the lock, the clock, call ids and the timer thread. Each entry
 * point takes the lock, asks the pure modules (presence, calls, ratelimit),
 * renders the reply and the events, queues the events on the bus and lets
 * go. It never calls Paho or libmicrohttpd while holding the lock: the bus
 * outbox it queues on is a leaf lock that does no I/O. Queuing under the
 * lock keeps events in the order of the transitions that made them.
 *
 * Entry points are called from HTTP threads (calls, users, token), the
 * bus's thread (presence) and core's own timer thread.
 */
#ifndef CALLSIGNAL_CORE_H
#define CALLSIGNAL_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "errors.h"

struct core;
struct mqtt_bus;

/* A reply body: new JSON (caller frees). On an error, body may be NULL
 * (the default error body applies) or a ready error body. */
struct core_reply {
	char *body;
	size_t len;
	int64_t retry_after_s; /* with ERR_RATE_LIMITED */
};

/* cfg is borrowed for the life of the core. */
struct core *core_new(const struct config *cfg);
/* Starts the timer thread; events go to bus from now on (borrowed until core_stop). */
int core_start(struct core *core, struct mqtt_bus *bus);
void core_stop(struct core *core);
void core_free(struct core *core);

/* Bus callbacks (see mqtt_bus.h). */
void core_on_presence(void *core, const char *topic, size_t topic_len, const char *payload, size_t len);
void core_on_bus_connected(void *core);
void core_on_bus_lost(void *core);

/* REST operations; ids are already validated by the caller. */
enum err core_users(struct core *core, struct core_reply *r);
enum err core_call_start(struct core *core, const char *caller_id, const char *receiver_id,
			 struct core_reply *r);
/* by_user: the authenticated user in jwt mode (must be the receiver), or NULL. */
enum err core_call_answer(struct core *core, const char *call_id, int accept, const char *by_user,
			  struct core_reply *r);
enum err core_call_end(struct core *core, const char *call_id, const char *user_id, struct core_reply *r);
enum err core_token(struct core *core, const char *room, const char *user_id, struct core_reply *r);
enum err core_health(struct core *core, struct core_reply *r);

#endif

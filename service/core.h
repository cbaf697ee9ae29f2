/*
 * core.h - the service's state behind one lock: presence, calls, rate limits
 * (with a shared store, transitions also on store handles outside it).
 *
 * core owns the lock, the clock, call ids and the timer thread. Each entry
 * point takes the lock, asks the pure modules (presence, calls, ratelimit),
 * renders the events and the retained call topics, queues them on the bus,
 * copies the result and lets go; http_api renders the reply and core logs
 * after unlocking. It never calls Paho or libmicrohttpd while holding the
 * lock: the bus outbox it queues on is a leaf lock that does no I/O, and
 * so are the webhook queues (webhooks.h) it hands the same transitions and
 * presence changes to. Queuing under the lock keeps messages in the order
 * of the transitions that made them (with a shared store, see below).
 *
 * Each transition of a live call writes users/{id}/call of both parties
 * (receiver first) before its event; a finished call's END_CALL goes out
 * before both topics are cleared (receiver first). calls_restore relies on
 * that order to rebuild the live calls from the retained topics at start:
 * until the bus reports the end of the retained replay, call control
 * answers ERR_NOT_READY.
 *
 * With a shared store (Redis) a start, an answer or an end takes the lock
 * only to read presence and readiness: its transition runs on a store
 * handle of its own (store.h), one of a few that HTTP threads take in turn,
 * so that a request waiting for Redis holds up no other; the timer ticks on
 * a handle of its own as well. Redis keeps those transitions atomic as it
 * does between instances, and their messages go through the shared outbox,
 * whose order is Redis's. Their webhooks keep each call's order through a
 * lock per stripe of call ids, held from before the commit until they are
 * queued. A start that read presence before its commit checks it again
 * after, for a party who went away meanwhile. LiveKit's webhooks run on a
 * handle the same way, and so do the reads of calls (GET /calls/{id},
 * history, a user's live call, the token's check) and the gauges' counts,
 * without a stripe. A read that Redis did not answer says so
 * (ERR_STORE_UNAVAILABLE), not "not found". Presence and the rebuild run
 * under the lock; presence replayed after a connect only fills the online
 * list (but settles at once a party a live call waits for, noted at the
 * connect), and the replay's end settles the live calls' parties in one pass.
 *
 * Entry points are called from HTTP threads (calls, users, token), the
 * bus's thread (presence, call topics, connect) and core's own timer thread.
 */
#ifndef CALLSIGNAL_CORE_H
#define CALLSIGNAL_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "errors.h"

struct core;
struct mqtt_bus;

/* The result of an operation, owned by the caller (core_reply_release). */
struct core_reply {
	char *body; /* a ready JSON body (users, token, health), or NULL */
	size_t len;
	struct call *call;     /* the call concerned: the success body, or attached to an error */
	int64_t retry_after_s; /* with ERR_RATE_LIMITED */
};

void core_reply_release(struct core_reply *r);

/* cfg is borrowed for the life of the core. */
struct core *core_new(const struct config *cfg);
/* Starts the timer thread; events go to bus from now on (borrowed until core_stop). */
int core_start(struct core *core, struct mqtt_bus *bus);
void core_stop(struct core *core);
void core_free(struct core *core);

/* Bus callbacks (see mqtt_bus.h): presence and retained call topics arrive in on_message. */
void core_on_message(void *core, const char *topic, size_t topic_len, const char *payload, size_t len);
void core_on_bus_connected(void *core);
void core_on_bus_lost(void *core);
void core_on_bus_synced(void *core);

/* REST operations; ids are already validated by the caller. */
enum err core_users(struct core *core, struct core_reply *r);
enum err core_call_start(struct core *core, const char *caller_id, const char *receiver_id,
			 struct core_reply *r);
/* by_user: the authenticated user in jwt mode (must be the receiver), or NULL. */
enum err core_call_answer(struct core *core, const char *call_id, int accept, const char *by_user,
			  struct core_reply *r);
enum err core_call_end(struct core *core, const char *call_id, const char *user_id, struct core_reply *r);
/* The same from a device: device_id (the client id of its presence topic, validated; NULL: not said)
 * is recorded in the call's answeredBy / endedBy. */
enum err core_call_answer_on(struct core *core, const char *call_id, int accept, const char *by_user,
			     const char *device_id, struct core_reply *r);
enum err core_call_end_on(struct core *core, const char *call_id, const char *user_id, const char *device_id,
			  struct core_reply *r);

struct livekit_event;
/*
 * A LiveKit webhook, already verified (see calls.h for what each event
 * does). A repeated event id has no second effect. ERR_OK with r->body
 * {"result": "applied"|"ignored"|"duplicate"}; ERR_NOT_READY.
 */
enum err core_livekit_event(struct core *core, const struct livekit_event *e, struct core_reply *r);
/* GET /calls/{id}: by_user (jwt mode) must be a party, or NULL. ERR_NOT_FOUND, ERR_NOT_A_PARTY. */
enum err core_call_get(struct core *core, const char *call_id, const char *by_user, struct core_reply *r);
/* GET /users/{id}/call: the user's live call, or ERR_NO_LIVE_CALL. */
enum err core_user_call(struct core *core, const char *user_id, struct core_reply *r);
enum err core_token(struct core *core, const char *room, const char *user_id, struct core_reply *r);
/* GET /health (liveness): always ERR_OK while the process serves; the body tells the broker
 * state and the counts, broker down or not. */
enum err core_health(struct core *core, struct core_reply *r);
/* GET /ready (readiness): ERR_OK once connected to the broker and the live calls are rebuilt;
 * else ERR_BROKER_UNAVAILABLE or ERR_NOT_READY. */
enum err core_ready(struct core *core);
struct metrics_gauges;
/* The gauges of GET /metrics, read now. */
void core_gauges(struct core *core, struct metrics_gauges *g);

struct webhooks;
/* Sends the call and presence webhooks to hooks (borrowed until core_free); before core_start. */
void core_set_webhooks(struct core *core, struct webhooks *hooks);
/* GET /calls?userId=: the user's finished calls, newest first (calls_history), as a JSON array body;
 * ERR_NOT_READY. */
enum err core_call_history(struct core *core, const char *user_id, const char *before_id, size_t limit,
			   struct core_reply *r);

#endif

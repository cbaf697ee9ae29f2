/*
 * core.c - see core.h.
 */
#include "core.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calls.h"
#include "json_io.h"
#include "log.h"
#include "mqtt_bus.h"
#include "presence.h"
#include "ratelimit.h"
#include "token.h"
#include "topics.h"
#include "util.h"

#define PRUNE_EVERY_MS 60000

struct core {
	const struct config *cfg;
	struct mqtt_bus *bus;

	pthread_mutex_t mu;
	pthread_cond_t wake;
	struct presence presence;
	struct calls calls;
	struct ratelimit starts;
	char *users_json; /* cache of GET /users for users_version */
	size_t users_len;
	uint64_t users_version;

	pthread_t timer;
	int running;
	int64_t timer_due; /* monotonic ms the timer thread sleeps until */
	int64_t next_prune;
};

static struct instant now_instant(void)
{
	struct timespec wall, mono;
	clock_gettime(CLOCK_REALTIME, &wall);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	return (struct instant){ (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000,
				 (int64_t)mono.tv_sec * 1000 + mono.tv_nsec / 1000000 };
}

/* A UUID v4 from the OS's CSPRNG: 122 random bits. */
static void new_call_id(char out[CALL_ID_LEN + 1])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1) {
		log_error("the random generator failed; cannot make a call id");
		abort();
	}
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, CALL_ID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

static int64_t ms_of(double seconds)
{
	return (int64_t)(seconds * 1000.0 + 0.5);
}

struct core *core_new(const struct config *cfg)
{
	struct core *core = xcalloc(1, sizeof(*core));
	core->cfg = cfg;
	pthread_mutex_init(&core->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&core->wake, &ca);
	pthread_condattr_destroy(&ca);
	presence_init(&core->presence);
	struct calls_config cc = { ms_of(cfg->ring_timeout_s), ms_of(cfg->offline_grace_s),
				   ms_of(cfg->call_retention_s), (size_t)cfg->call_retention_max };
	calls_init(&core->calls, &cc);
	ratelimit_init(&core->starts, cfg->start_rate_per_min);
	core->users_version = (uint64_t)-1;
	return core;
}

void core_free(struct core *core)
{
	if (!core)
		return;
	presence_release(&core->presence);
	calls_release(&core->calls);
	ratelimit_release(&core->starts);
	free(core->users_json);
	pthread_mutex_destroy(&core->mu);
	pthread_cond_destroy(&core->wake);
	free(core);
}

/*
 * Renders each event once and queues it for its recipients. Called with
 * core->mu held; the calls the events point at are valid until unlock.
 * known/known_json: a call already rendered for the reply (or NULL), reused
 * for its events.
 */
static void publish_events(struct core *core, struct call_events *ev, const struct call *known,
			   const char *known_json, size_t known_len)
{
	for (size_t i = 0; i < ev->n; i++) {
		const struct call_event *e = &ev->items[i];
		size_t len;
		char *payload = e->call == known ? json_io_event_around(e->type, known_json, known_len, &len)
						 : json_io_event(e->type, e->call, &len);
		char topic[TOPIC_MAX_LEN];
		if (e->to_caller) {
			topic_events(e->call->party[PARTY_CALLER].id, topic);
			mqtt_bus_publish(core->bus, topic, payload, len);
		}
		if (e->to_receiver) {
			topic_events(e->call->party[PARTY_RECEIVER].id, topic);
			mqtt_bus_publish(core->bus, topic, payload, len);
		}
		log_debug("%s for call '%s' (%s)", event_type_name(e->type), e->call->id,
			  call_status_name(e->call->status));
		free(payload);
	}
	ev->n = 0;
}

/* Wakes the timer when a transition added a deadline earlier than its sleep. */
static void reschedule(struct core *core)
{
	if (calls_next_deadline(&core->calls) < core->timer_due)
		pthread_cond_signal(&core->wake);
}

static void *timer_thread(void *arg)
{
	struct core *core = arg;
	struct call_events ev;
	call_events_init(&ev);
	pthread_mutex_lock(&core->mu);
	while (core->running) {
		struct instant now = now_instant();
		calls_tick(&core->calls, now, &ev);
		publish_events(core, &ev, NULL, NULL, 0);
		if (now.mono_ms >= core->next_prune) {
			ratelimit_prune(&core->starts, now.mono_ms);
			core->next_prune = now.mono_ms + PRUNE_EVERY_MS;
		}
		int64_t due = calls_next_deadline(&core->calls);
		if (due > core->next_prune)
			due = core->next_prune;
		core->timer_due = due;
		struct timespec until = { (time_t)(due / 1000), (long)(due % 1000) * 1000000 };
		pthread_cond_timedwait(&core->wake, &core->mu, &until);
	}
	pthread_mutex_unlock(&core->mu);
	call_events_release(&ev);
	return NULL;
}

int core_start(struct core *core, struct mqtt_bus *bus)
{
	core->bus = bus;
	core->running = 1;
	core->next_prune = now_instant().mono_ms + PRUNE_EVERY_MS;
	if (pthread_create(&core->timer, NULL, timer_thread, core) != 0) {
		log_error("cannot start the timer thread");
		return -1;
	}
	return 0;
}

void core_stop(struct core *core)
{
	pthread_mutex_lock(&core->mu);
	core->running = 0;
	pthread_cond_signal(&core->wake);
	pthread_mutex_unlock(&core->mu);
	pthread_join(core->timer, NULL);
}

void core_on_presence(void *arg, const char *topic, size_t topic_len, const char *payload, size_t len)
{
	struct core *core = arg;
	struct presence_topic pt;
	if (topic_parse_presence(topic, topic_len, &pt) != 0) {
		log_warn("ignored presence on topic '%.*s': not users/{valid id}/presence/{valid id}",
			 (int)(topic_len > 300 ? 300 : topic_len), topic);
		return;
	}
	struct user_info u = { 0 };
	if (len > 0) {
		const char *why;
		if (json_io_parse_user(payload, len, &u, &why) != 0) {
			log_warn("ignored presence of '%s' device '%s': %s", pt.user_id, pt.client_id, why);
			return;
		}
		if (strcmp(u.id, pt.user_id) != 0) {
			log_warn("ignored presence on the topic of '%s' claiming to be '%s'", pt.user_id,
				 u.id);
			user_info_release(&u);
			return;
		}
	}

	struct instant now = now_instant();
	pthread_mutex_lock(&core->mu);
	if (len > 0) {
		if (presence_device_up(&core->presence, &u, pt.client_id) == PRESENCE_CAME_ONLINE)
			log_info("'%s' is online", pt.user_id);
		calls_party_online(&core->calls, pt.user_id);
	} else if (presence_device_down(&core->presence, pt.user_id, pt.client_id) == PRESENCE_WENT_OFFLINE) {
		log_info("'%s' went offline", pt.user_id);
		calls_party_offline(&core->calls, pt.user_id, now);
		reschedule(core);
	}
	pthread_mutex_unlock(&core->mu);
	user_info_release(&u);
}

void core_on_bus_connected(void *arg)
{
	struct core *core = arg;
	struct instant now = now_instant();
	/* The retained replay that follows the subscription rebuilds the set;
	 * parties of live calls who do not come back get the grace period. */
	pthread_mutex_lock(&core->mu);
	for (const struct presence_user *u = core->presence.head; u; u = u->next)
		calls_party_offline(&core->calls, u->info.id, now);
	presence_clear(&core->presence);
	reschedule(core);
	pthread_mutex_unlock(&core->mu);
}

void core_on_bus_lost(void *arg)
{
	(void)arg; /* presence is kept until the next connect's replay replaces it */
}

static int bus_up(struct core *core)
{
	return core->bus && mqtt_bus_is_up(core->bus);
}

/*
 * The common end of a successful transition, under core->mu: the reply is
 * the call, the events go out, the timer learns of new deadlines.
 */
static void transition_done(struct core *core, const struct call *call, struct call_events *ev,
			    struct core_reply *r)
{
	r->body = json_io_call(call, &r->len);
	publish_events(core, ev, call, r->body, r->len);
	reschedule(core);
}

enum err core_users(struct core *core, struct core_reply *r)
{
	pthread_mutex_lock(&core->mu);
	if (core->users_version != core->presence.version) {
		free(core->users_json);
		core->users_json = json_io_users(&core->presence, &core->users_len);
		core->users_version = core->presence.version;
	}
	r->body = xstrndup(core->users_json, core->users_len);
	r->len = core->users_len;
	pthread_mutex_unlock(&core->mu);
	return ERR_OK;
}

enum err core_call_start(struct core *core, const char *caller_id, const char *receiver_id,
			 struct core_reply *r)
{
	if (strcmp(caller_id, receiver_id) == 0)
		return ERR_SELF_CALL;
	if (!bus_up(core))
		return ERR_BROKER_UNAVAILABLE;
	char id[CALL_ID_LEN + 1];
	new_call_id(id);
	struct instant now = now_instant();
	struct call_events ev;
	call_events_init(&ev);
	enum err e;

	pthread_mutex_lock(&core->mu);
	int64_t retry_ms = 0;
	if (!ratelimit_take(&core->starts, caller_id, now.mono_ms, &retry_ms)) {
		r->retry_after_s = (retry_ms + 999) / 1000;
		e = ERR_RATE_LIMITED;
		goto out;
	}
	const struct presence_user *caller = presence_find(&core->presence, caller_id);
	const struct presence_user *receiver = presence_find(&core->presence, receiver_id);
	if (!caller) {
		e = ERR_CALLER_OFFLINE;
		goto out;
	}
	if (!receiver) {
		e = ERR_RECEIVER_OFFLINE;
		goto out;
	}
	const struct call *call;
	e = calls_start(&core->calls, &caller->info, &receiver->info, id, now, &ev, &call);
	if (e == ERR_OK) {
		log_info("call '%s': '%s' rings '%s'", call->id, caller_id, receiver_id);
		transition_done(core, call, &ev, r);
	}
out:
	pthread_mutex_unlock(&core->mu);
	call_events_release(&ev);
	return e;
}

enum err core_call_answer(struct core *core, const char *call_id, int accept, const char *by_user,
			  struct core_reply *r)
{
	if (!bus_up(core))
		return ERR_BROKER_UNAVAILABLE;
	struct instant now = now_instant();
	struct call_events ev;
	call_events_init(&ev);
	const struct call *call = NULL;

	pthread_mutex_lock(&core->mu);
	enum err e = calls_answer(&core->calls, call_id, accept, by_user, now, &ev, &call);
	if (e == ERR_OK) {
		log_info("call '%s' %s", call_id, accept ? "accepted" : "declined");
		transition_done(core, call, &ev, r);
	} else if (e == ERR_CALL_NOT_RINGING) {
		char msg[64];
		snprintf(msg, sizeof(msg), "Call is not ringing (status %s)", call_status_name(call->status));
		r->body = json_io_error(msg, err_code(e), call, &r->len);
	}
	pthread_mutex_unlock(&core->mu);
	call_events_release(&ev);
	return e;
}

enum err core_call_end(struct core *core, const char *call_id, const char *user_id, struct core_reply *r)
{
	if (!bus_up(core))
		return ERR_BROKER_UNAVAILABLE;
	struct instant now = now_instant();
	struct call_events ev;
	call_events_init(&ev);
	const struct call *call = NULL;

	pthread_mutex_lock(&core->mu);
	enum err e = calls_end(&core->calls, call_id, user_id, now, &ev, &call);
	if (e == ERR_OK) {
		if (ev.n)
			log_info("call '%s' ended by '%s'", call_id, user_id);
		transition_done(core, call, &ev, r);
	}
	pthread_mutex_unlock(&core->mu);
	call_events_release(&ev);
	return e;
}

enum err core_token(struct core *core, const char *room, const char *user_id, struct core_reply *r)
{
	const struct config *cfg = core->cfg;
	if (!cfg->livekit_api_key || !cfg->livekit_api_secret)
		return ERR_TOKEN_NOT_CONFIGURED;
	char *name = NULL;
	const struct call *call;
	pthread_mutex_lock(&core->mu);
	enum err e = calls_check_in_call(&core->calls, room, user_id, &call);
	if (e == ERR_OK)
		name =
		    xstrdup(call->party[strcmp(call->party[PARTY_CALLER].id, user_id) == 0 ? PARTY_CALLER
											   : PARTY_RECEIVER]
				.name);
	pthread_mutex_unlock(&core->mu);
	if (e != ERR_OK)
		return e;

	struct instant now = now_instant();
	char *token = token_livekit(cfg->livekit_api_key, cfg->livekit_api_secret, user_id, name, room,
				    now.wall_ms / 1000, (int64_t)cfg->token_ttl_s);
	free(name);
	if (!token)
		return ERR_INTERNAL;
	r->body =
	    json_io_object(&r->len, "token", token, cfg->livekit_url ? "url" : NULL, cfg->livekit_url, NULL);
	free(token);
	return ERR_OK;
}

enum err core_health(struct core *core, struct core_reply *r)
{
	if (!bus_up(core))
		return ERR_BROKER_UNAVAILABLE;
	struct mqtt_bus_stats stats;
	mqtt_bus_stats(core->bus, &stats);
	pthread_mutex_lock(&core->mu);
	r->body = json_io_health(1, presence_count(&core->presence), calls_count(&core->calls),
				 calls_live_count(&core->calls), stats.queued, &r->len);
	pthread_mutex_unlock(&core->mu);
	return ERR_OK;
}

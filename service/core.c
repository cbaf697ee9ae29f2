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
#include "dict.h"
#include "json_io.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_bus.h"
#include "outbox.h"
#include "presence.h"
#include "ratelimit.h"
#include "store.h"
#include "token.h"
#include "topics.h"
#include "util.h"
#include "webhooks.h"

#define PRUNE_EVERY_MS    60000
#define HANDLES           8    /* with a shared store: starts, answers and ends run this many at once */
#define ORDER_STRIPES     64   /* locks that keep each call's webhooks in the order of its transitions */
#define WEBHOOK_IDS_KEPT  4096 /* LiveKit retries within minutes; the last ids are remembered */
#define WEBHOOK_ID_TTL_MS (15 * 60 * 1000) /* how long a shared store remembers one */

/*
 * With a shared store, a start, answer or end runs on a handle of its own
 * (store.h's handle: its own Redis connection) without core's lock, so
 * that one waiting for Redis holds up no other; Redis keeps them atomic as
 * it does between instances.
 */
struct handle {
	struct calls calls; /* over a handle of core->calls' store */
	int busy;           /* taken by a request (under core->handles_mu) */
};

/* A retained users/{id}/call message read back before the rebuild. */
struct seen_topic {
	char user_id[ID_MAX_LEN + 1];
	struct call call;
};

struct core {
	const struct config *cfg;
	struct mqtt_bus *bus;
	struct webhooks *hooks; /* NULL: no webhooks; borrowed */
	struct outbox *outbox;  /* the shared store's drain (owned), or NULL: events go straight out */

	pthread_mutex_t mu;
	pthread_cond_t wake;
	struct presence presence;
	struct calls calls;
	struct ratelimit starts;
	struct handle *handles; /* NULL with the memory store: everything runs under mu */
	size_t nhandles;
	struct calls *ticker; /* the timer thread's own handle (it ticks without mu), or NULL */
	size_t next_handle;   /* where handle_take looks first: each handle in turn (under handles_mu) */
	pthread_mutex_t handles_mu;
	pthread_cond_t handle_free;
	/* With handles, a transition commits outside mu: its call's stripe is held from before its
	 * commit until its webhooks are queued, so that they queue in the order of the commits. */
	pthread_mutex_t order[ORDER_STRIPES];
	char *users_json; /* cache of GET /users for users_version */
	size_t users_len;
	uint64_t users_version;
	int ready;           /* the live calls have been rebuilt from the broker */
	struct dict seen;    /* before ready: user id -> struct seen_topic (owned) */
	struct dict awaited; /* during a replay: ids (owned, key and value) of parties live calls wait for */
	char *webhook_ids[WEBHOOK_IDS_KEPT]; /* the last webhook event ids (owned), a ring */
	size_t webhook_next;
	struct dict webhook_seen; /* id (borrowed from webhook_ids) -> the same string */
	int presence_settled;     /* the retained replay after the last connect is over */

	pthread_t timer;
	int running;
	int64_t timer_due;        /* wall ms the timer thread sleeps until */
	int64_t next_prune;       /* monotonic ms */
	int64_t lease_ms;         /* presence not refreshed for this long is offline; 0: no lease */
	int64_t next_lease_check; /* monotonic ms */
};

static struct instant now_instant(void)
{
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	return (struct instant){ (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 };
}

static int64_t mono_now(void)
{
	struct timespec mono;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	return (int64_t)mono.tv_sec * 1000 + mono.tv_nsec / 1000000;
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
	struct calls_config cc = { ms_of(cfg->ring_timeout_s),   ms_of(cfg->offline_grace_s),
				   ms_of(cfg->call_retention_s), (size_t)cfg->call_retention_max,
				   ms_of(cfg->ring_offline_s),   (size_t)cfg->call_history_max };
	struct store *store = strcmp(cfg->state_engine, "redis") == 0
				  ? store_redis_new(cfg->redis_url, "callsignal:")
				  : store_memory_new();
	if (!store) {
		pthread_mutex_destroy(&core->mu);
		pthread_cond_destroy(&core->wake);
		presence_release(&core->presence);
		free(core);
		return NULL;
	}
	calls_init(&core->calls, &cc, store);
	if (store->ops->handle) {
		core->nhandles = HANDLES;
		core->handles = xcalloc(HANDLES, sizeof(*core->handles));
		for (size_t i = 0; i < HANDLES; i++)
			calls_init(&core->handles[i].calls, &cc, store->ops->handle(store));
		core->ticker = xcalloc(1, sizeof(*core->ticker));
		calls_init(core->ticker, &cc, store->ops->handle(store));
	}
	pthread_mutex_init(&core->handles_mu, NULL);
	pthread_cond_init(&core->handle_free, NULL);
	for (size_t i = 0; i < ORDER_STRIPES; i++)
		pthread_mutex_init(&core->order[i], NULL);
	ratelimit_init(&core->starts, cfg->start_rate_per_min);
	core->lease_ms = ms_of(cfg->presence_refresh_s * 2.5);
	dict_init(&core->seen);
	dict_init(&core->awaited);
	dict_init(&core->webhook_seen);
	core->users_version = (uint64_t)-1;
	return core;
}

/* Called with core->mu held (or before threads start). */
static void seen_clear(struct core *core)
{
	struct dict_iter it;
	struct seen_topic *s;
	dict_iter_init(&it, &core->seen);
	while ((s = dict_iter_next(&it))) {
		call_release(&s->call);
		free(s);
	}
	dict_release(&core->seen);
	dict_init(&core->seen);
}

static void awaited_clear(struct core *core)
{
	struct dict_iter it;
	char *id;
	dict_iter_init(&it, &core->awaited);
	while ((id = dict_iter_next(&it)))
		free(id);
	dict_release(&core->awaited);
	dict_init(&core->awaited);
}

void core_free(struct core *core)
{
	if (!core)
		return;
	presence_release(&core->presence);
	for (size_t i = 0; i < core->nhandles; i++)
		calls_release(&core->handles[i].calls); /* before the store they are handles of */
	free(core->handles);
	if (core->ticker)
		calls_release(core->ticker);
	free(core->ticker);
	pthread_mutex_destroy(&core->handles_mu);
	pthread_cond_destroy(&core->handle_free);
	for (size_t i = 0; i < ORDER_STRIPES; i++)
		pthread_mutex_destroy(&core->order[i]);
	calls_release(&core->calls);
	ratelimit_release(&core->starts);
	seen_clear(core);
	dict_release(&core->seen);
	awaited_clear(core);
	dict_release(&core->awaited);
	dict_release(&core->webhook_seen);
	for (size_t i = 0; i < WEBHOOK_IDS_KEPT; i++)
		free(core->webhook_ids[i]);
	free(core->users_json);
	pthread_mutex_destroy(&core->mu);
	pthread_cond_destroy(&core->wake);
	free(core);
}

void core_reply_release(struct core_reply *r)
{
	free(r->body);
	call_free(r->call);
	r->body = NULL;
	r->call = NULL;
}

/* Called with core->mu held: sets (json != NULL) or clears the user's call topic. */
static void put_call_topic(struct core *core, const char *user_id, const char *json, size_t len)
{
	char topic[TOPIC_MAX_LEN];
	topic_call(user_id, topic);
	mqtt_bus_publish_retained(core->bus, topic, json ? json : "", json ? len : 0);
}

/* Called with core->mu held: both parties' call topics show the live call (receiver first). */
static void put_call_topics(struct core *core, const struct call *call, const char *json, size_t len)
{
	put_call_topic(core, call->party[PARTY_RECEIVER].id, json, len);
	put_call_topic(core, call->party[PARTY_CALLER].id, json, len);
}

/* Called with core->mu held: queues a webhook about call (call_json borrowed). */
static void post_call_webhook(struct core *core, const char *event, const struct call *call,
			      const char *call_json, size_t call_len)
{
	size_t len;
	char *body = json_io_webhook_call(event, now_instant().wall_ms, call, call_json, call_len, &len);
	webhooks_post(core->hooks, call->id, body, len);
	free(body);
}

/* Called with core->mu held: the webhooks of one call event, in the order of the transitions. */
static void post_event_webhooks(struct core *core, const struct call_event *e, const char *call_json,
				size_t call_len)
{
	static const char *const names[] = { [EVENT_INCOMING_CALL] = "call.started",
					     [EVENT_ACCEPT_CALL] = "call.accepted",
					     [EVENT_DECLINE_CALL] = "call.declined",
					     [EVENT_END_CALL] = "call.ended" };
	/* An event type added later without a webhook name goes out under its MQTT type name. */
	const char *name = (size_t)e->type < sizeof(names) / sizeof(names[0]) && names[e->type]
			       ? names[e->type]
			       : event_type_name(e->type);
	post_call_webhook(core, name, e->call, call_json, call_len);
	if (e->type == EVENT_DECLINE_CALL)
		post_call_webhook(core, "call.ended", e->call, call_json, call_len);
}

/* Where the messages of events go: straight to the broker, or into a shared store's outbox. */
typedef void put_fn(void *ctx, const char *topic, const char *payload, size_t len, int retained);

static void put_bus(void *ctx, const char *topic, const char *payload, size_t len, int retained)
{
	struct core *core = ctx;
	if (retained)
		mqtt_bus_publish_retained(core->bus, topic, payload, len);
	else
		mqtt_bus_publish(core->bus, topic, payload, len);
}

static void put_outbox(void *ctx, const char *topic, const char *payload, size_t len, int retained)
{
	struct store *s = ctx;
	s->ops->outbox_put(s, topic, payload, len, retained);
}

/*
 * The messages of one event, with the call topics in the order
 * calls_restore relies on (core.h): a live call's topics before the event,
 * a finished call's cleared after it.
 */
static void route_event(const struct call_event *e, put_fn *put, void *ctx)
{
	size_t call_len, len = 0;
	char *call_json = json_io_call(e->call, &call_len);
	char *payload =
	    e->topics_only ? NULL : json_io_event_around(e->type, e->call, call_json, call_len, &len);
	int live = call_status_is_live(e->call->status);
	const char *party[2] = { e->call->party[PARTY_RECEIVER].id, e->call->party[PARTY_CALLER].id };
	char topic[TOPIC_MAX_LEN];
	if (live && !e->keep_topics) {
		for (int i = 0; i < 2; i++) {
			topic_call(party[i], topic);
			put(ctx, topic, call_json, call_len, 1);
		}
	}
	if (e->to_caller) {
		topic_events(e->call->party[PARTY_CALLER].id, topic);
		put(ctx, topic, payload, len, 0);
	}
	if (e->to_receiver) {
		topic_events(e->call->party[PARTY_RECEIVER].id, topic);
		put(ctx, topic, payload, len, 0);
	}
	if (!live && !e->keep_topics) {
		for (int i = 0; i < 2; i++) {
			topic_call(party[i], topic);
			put(ctx, topic, "", 0, 1);
		}
	}
	free(payload);
	free(call_json);
}

/*
 * calls.on_events of a shared store (ctx: the store, or the handle, the
 * transition runs on): the messages of a transition's events go into the
 * store's outbox in the transition's own atomic unit; outbox.c publishes
 * them. Called by calls.c.
 */
static void events_to_outbox(void *ctx, const struct call_events *ev, size_t from)
{
	for (size_t i = from; i < ev->n; i++)
		route_event(&ev->items[i], put_outbox, ctx);
}

/* The transitions of c put their messages into the outbox of c's own store (handle). */
static void to_outbox(struct calls *c)
{
	c->on_events = events_to_outbox;
	c->on_events_ctx = c->store;
}

/* The stripe of core->order that orders call_id's webhooks (FNV-1a of the id). */
static pthread_mutex_t *order_of(struct core *core, const char *call_id)
{
	uint32_t h = 2166136261u;
	for (const char *p = call_id; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &core->order[h % ORDER_STRIPES];
}

/*
 * What follows a transition's events: their messages go to the broker
 * (unless the shared outbox took them), the finished calls are counted,
 * the webhooks queued. Called with core->mu held, or on a handle holding
 * the call's order stripe (held); the calls the events point at are valid
 * until then. Under mu with handles, each call's stripe is taken around
 * its webhooks (a handle holding one never waits for mu meanwhile).
 */
static void publish_events(struct core *core, struct call_events *ev, int held)
{
	for (size_t i = 0; i < ev->n; i++) {
		const struct call_event *e = &ev->items[i];
		if (!core->calls.on_events)
			route_event(e, put_bus, core);
		if (e->topics_only)
			continue;
		if (!call_status_is_live(e->call->status))
			metrics_call_finished(e->call);
		if (core->hooks) {
			pthread_mutex_t *order = core->nhandles && !held ? order_of(core, e->call->id) : NULL;
			size_t call_len;
			char *call_json = json_io_call(e->call, &call_len);
			if (order)
				pthread_mutex_lock(order);
			post_event_webhooks(core, e, call_json, call_len);
			if (order)
				pthread_mutex_unlock(order);
			free(call_json);
		}
	}
	ev->n = 0;
}

#define LEASE_BATCH 64

/* Devices whose presence lease ran out, as copies (the presence set frees its own). */
struct expired {
	size_t n;
	char user_id[LEASE_BATCH][ID_MAX_LEN + 1];
	char client_id[LEASE_BATCH][ID_MAX_LEN + 1];
};

/*
 * Clears the devices that refresh their presence but were not heard for
 * the lease: their retained presence is emptied on the broker (as their
 * Last Will would have) and they leave the set now. Called by the timer
 * with core->mu held; at most LEASE_BATCH a round.
 */
static void expire_presence(struct core *core, struct instant now, struct expired *x)
{
	struct presence_gone gone[LEASE_BATCH];
	x->n = presence_expired(&core->presence, now.wall_ms - core->lease_ms, gone, LEASE_BATCH);
	for (size_t i = 0; i < x->n; i++) {
		snprintf(x->user_id[i], sizeof(x->user_id[i]), "%s", gone[i].user_id);
		snprintf(x->client_id[i], sizeof(x->client_id[i]), "%s", gone[i].client_id);
	}
	for (size_t i = 0; i < x->n; i++) {
		char topic[TOPIC_MAX_LEN];
		topic_presence(x->user_id[i], x->client_id[i], topic);
		mqtt_bus_publish_retained(core->bus, topic, "", 0);
		if (presence_device_down(&core->presence, x->user_id[i], x->client_id[i]) ==
		    PRESENCE_WENT_OFFLINE)
			calls_party_offline(&core->calls, x->user_id[i], now);
	}
}

/* Wakes the timer when a transition added a deadline earlier than its sleep. Called with core->mu held. */
static void reschedule(struct core *core)
{
	if (calls_next_deadline(&core->calls) < core->timer_due)
		pthread_cond_signal(&core->wake);
}

/* A free handle of the shared store (waiting for one), or NULL when the store has none. */
static struct handle *handle_take(struct core *core)
{
	if (!core->nhandles)
		return NULL;
	pthread_mutex_lock(&core->handles_mu);
	for (;;) {
		/* Each in turn, so that none sits idle for long (Redis may close an idle connection). */
		for (size_t k = 0; k < core->nhandles; k++) {
			struct handle *h = &core->handles[(core->next_handle + k) % core->nhandles];
			if (!h->busy) {
				h->busy = 1;
				core->next_handle = (size_t)(h - core->handles) + 1;
				pthread_mutex_unlock(&core->handles_mu);
				return h;
			}
		}
		pthread_cond_wait(&core->handle_free, &core->handles_mu);
	}
}

static void handle_give(struct core *core, struct handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&core->handles_mu);
	h->busy = 0;
	pthread_cond_signal(&core->handle_free);
	pthread_mutex_unlock(&core->handles_mu);
}

/*
 * Called with core->mu held: one line per call a deadline finished, for the
 * operator (logged after unlocking): a missed call, or a call ended in ERROR
 * with the parties who are offline. Lines are appended to notes, '\n' after each.
 */
static void note_deadline_ends(struct core *core, const struct call_events *ev, struct sbuf *notes)
{
	for (size_t i = 0; i < ev->n; i++) {
		const struct call *call = ev->items[i].call;
		const char *caller = call->party[PARTY_CALLER].id, *receiver = call->party[PARTY_RECEIVER].id;
		if (call->status == CALL_MISSED) {
			sbuf_addf(notes, "call '%s' missed: '%s' rang '%s' for %.1f s without an answer\n",
				  call->id, caller, receiver,
				  (double)(call->ended_at - call->created_at) / 1000.0);
		} else if (call->status == CALL_ERROR) {
			int gone[2] = { !presence_find(&core->presence, caller),
					!presence_find(&core->presence, receiver) };
			char who[2 * ID_MAX_LEN + 16];
			if (gone[0] && gone[1])
				snprintf(who, sizeof(who), "'%s' and '%s'", caller, receiver);
			else if (gone[0] || gone[1])
				snprintf(who, sizeof(who), "'%s'", gone[0] ? caller : receiver);
			else
				snprintf(who, sizeof(who), "a party"); /* back online since the deadline */
			sbuf_addf(notes,
				  "call '%s' between '%s' and '%s' ended in ERROR: %s went offline and did "
				  "not come "
				  "back within %g s (%s)\n",
				  call->id, caller, receiver, who, core->cfg->offline_grace_s,
				  call->err_msg ? call->err_msg : "");
		}
	}
}

static void *timer_thread(void *arg)
{
	struct core *core = arg;
	struct call_events ev;
	call_events_init(&ev);
	struct sbuf notes;
	sbuf_init(&notes, 256);
	pthread_mutex_lock(&core->mu);
	while (core->running) {
		struct instant now = now_instant();
		int64_t mono = mono_now();
		int64_t next = INT64_MAX;
		if (!core->ready) {
			/* Until the first replay is over, who is online is not known: a grace
			 * period would be judged on half of it. The rebuild wakes the timer. */
		} else if (core->ticker) {
			/* On its own handle: the round trips to Redis hold up no request. A
			 * deadline added meanwhile wakes the timer (reschedule), or one the
			 * lease expiry below adds makes it go round again at once. */
			pthread_mutex_unlock(&core->mu);
			calls_tick(core->ticker, now, &ev);
			next = calls_next_deadline(core->ticker);
			pthread_mutex_lock(&core->mu);
		} else {
			calls_tick(&core->calls, now, &ev);
		}
		size_t fired = ev.n;
		note_deadline_ends(core, &ev, &notes);
		publish_events(core, &ev, 0);
		if (mono >= core->next_prune) {
			ratelimit_prune(&core->starts, mono);
			core->next_prune = mono + PRUNE_EVERY_MS;
		}
		struct expired *expired = NULL;
		if (core->lease_ms && mono >= core->next_lease_check) {
			expired = xmalloc(sizeof(*expired));
			expire_presence(core, now, expired);
			core->next_lease_check =
			    mono + (core->lease_ms / 10 > 100 ? core->lease_ms / 10 : 100);
		}
		/* Deadlines are wall-clock; the sleep is on the monotonic clock. */
		int64_t wait = !core->ready || core->ticker ? next : calls_next_deadline(&core->calls);
		wait = wait == INT64_MAX ? PRUNE_EVERY_MS : wait - now.wall_ms;
		if (wait > core->next_prune - mono)
			wait = core->next_prune - mono;
		if (core->lease_ms && wait > core->next_lease_check - mono)
			wait = core->next_lease_check - mono;
		if (wait < 0)
			wait = 0;
		core->timer_due = now.wall_ms + wait;
		int64_t due = mono + wait;
		struct timespec until = { (time_t)(due / 1000), (long)(due % 1000) * 1000000 };
		if (fired || (expired && expired->n)) {
			/* Logged unlocked; a wake-up sent meanwhile would be missed, so
			 * the deadlines are looked at again before sleeping. */
			pthread_mutex_unlock(&core->mu);
			if (fired)
				log_debug("%zu call(s) ended by a deadline", fired);
			for (char *line = notes.buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
				*nl = '\0';
				log_info("%s", line);
			}
			notes.len = 0;
			notes.buf[0] = '\0';
			for (size_t i = 0; expired && i < expired->n; i++)
				log_info("'%s' device '%s' went offline: presence not refreshed for %lld ms",
					 expired->user_id[i], expired->client_id[i],
					 (long long)core->lease_ms);
			free(expired);
			pthread_mutex_lock(&core->mu);
			continue;
		}
		free(expired);
		pthread_cond_timedwait(&core->wake, &core->mu, &until);
	}
	pthread_mutex_unlock(&core->mu);
	call_events_release(&ev);
	sbuf_release(&notes);
	return NULL;
}

int core_start(struct core *core, struct mqtt_bus *bus)
{
	/* The bus thread already delivers presence: what its callbacks read is set under the lock. */
	pthread_mutex_lock(&core->mu);
	core->bus = bus;
	if (bus && core->calls.store->ops->outbox_put) {
		char me[CALL_ID_LEN + 1], name[CALL_ID_LEN + 16];
		new_call_id(me);
		snprintf(name, sizeof(name), "instance-%s", me);
		core->outbox = outbox_start(core->calls.store, bus, name);
		if (!core->outbox) {
			pthread_mutex_unlock(&core->mu);
			return -1;
		}
		to_outbox(&core->calls);
		for (size_t i = 0; i < core->nhandles; i++)
			to_outbox(&core->handles[i].calls);
		if (core->ticker)
			to_outbox(core->ticker);
	}
	core->running = 1;
	core->next_prune = mono_now() + PRUNE_EVERY_MS;
	pthread_mutex_unlock(&core->mu);
	if (pthread_create(&core->timer, NULL, timer_thread, core) != 0) {
		log_error("cannot start the timer thread");
		outbox_stop(core->outbox); /* the bus and the store are freed next */
		core->outbox = NULL;
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
	outbox_stop(core->outbox);
	core->outbox = NULL;
}

/* With the shared outbox: the live call's topics written again through it. Called with core->mu held. */
static void show_call(struct core *core, const char *id)
{
	struct call_events ev;
	call_events_init(&ev);
	calls_show(&core->calls, id, &ev);
	publish_events(core, &ev, 0);
	call_events_release(&ev);
}

/* A party of a call came online: their grace period ends; a call that rings them asleep
 * wakes and its topics show it. Called with core->mu held. */
static void party_back(struct core *core, const struct user_info *u)
{
	const struct call *woke = calls_party_back(&core->calls, u);
	if (woke && core->calls.on_events) {
		char id[CALL_ID_LEN + 1];
		memcpy(id, woke->id, sizeof(id));
		show_call(core, id);
	} else if (woke && core->bus) {
		size_t call_len;
		char *call_json = json_io_call(woke, &call_len);
		put_call_topics(core, woke, call_json, call_len);
		free(call_json);
	}
}

static void on_presence(struct core *core, const struct presence_topic *pt, const char *payload, size_t len)
{
	struct user_info u = { 0 };
	if (len > 0) {
		const char *why;
		if (json_io_parse_user(payload, len, &u, &why) != 0) {
			log_warn("ignored presence of '%s' device '%s': %s", pt->user_id, pt->client_id, why);
			return;
		}
		if (strcmp(u.id, pt->user_id) != 0) {
			log_warn("ignored presence on the topic of '%s' claiming to be '%s'", pt->user_id,
				 u.id);
			user_info_release(&u);
			return;
		}
	}

	struct instant now = now_instant();
	enum presence_change change;
	pthread_mutex_lock(&core->mu);
	if (len > 0) {
		change = presence_device_up(&core->presence, &u, pt->client_id);
		presence_device_seen(&core->presence, pt->user_id, pt->client_id, now.wall_ms);
		/* Only a user's first device can end a grace period or wake a call that rings
		 * them asleep: a refresh or another device costs no transition (with Redis, no
		 * round trip). During the replay that follows a connect, presence only fills the
		 * set, except for the parties live calls wait for (core->awaited): its end settles
		 * the live calls' parties at once (settle_parties). */
		char *awaited;
		if (change == PRESENCE_CAME_ONLINE && core->presence_settled) {
			party_back(core, &u);
		} else if (change == PRESENCE_CAME_ONLINE && (awaited = dict_del(&core->awaited, u.id))) {
			free(awaited); /* a live call waits for them: no need to wait for the replay's end */
			party_back(core, &u);
		}
	} else {
		change = presence_device_down(&core->presence, pt->user_id, pt->client_id);
		if (change == PRESENCE_WENT_OFFLINE && core->presence_settled) {
			calls_party_offline(&core->calls, pt->user_id, now);
			reschedule(core);
		}
	}
	if (core->hooks && core->presence_settled &&
	    (change == PRESENCE_CAME_ONLINE || change == PRESENCE_WENT_OFFLINE)) {
		char id[CALL_ID_LEN + 1];
		size_t body_len;
		new_call_id(id);
		int up = change == PRESENCE_CAME_ONLINE;
		char *body = json_io_webhook_presence(id, up ? "presence.online" : "presence.offline",
						      now.wall_ms, pt->user_id, up ? &u : NULL, &body_len);
		webhooks_post(core->hooks, pt->user_id, body, body_len);
		free(body);
	}
	pthread_mutex_unlock(&core->mu);
	if (change == PRESENCE_CAME_ONLINE)
		log_info("'%s' is online", pt->user_id);
	else if (change == PRESENCE_WENT_OFFLINE)
		log_info("'%s' went offline", pt->user_id);
	user_info_release(&u);
}

/* A retained call topic: kept for the rebuild; once rebuilt, the service's own echo is ignored. */
static void on_call_topic(struct core *core, const char *user_id, const char *payload, size_t len)
{
	struct seen_topic *s = NULL;
	const char *why = NULL;
	pthread_mutex_lock(&core->mu);
	int late = core->ready;
	pthread_mutex_unlock(&core->mu);
	if (late)
		return; /* the bus drops the subscription after the first replay; a straggler */
	if (len > 0) {
		s = xcalloc(1, sizeof(*s));
		snprintf(s->user_id, sizeof(s->user_id), "%s", user_id);
		if (json_io_parse_call(payload, len, &s->call, &why) != 0) {
			free(s);
			s = NULL;
		}
	}
	pthread_mutex_lock(&core->mu);
	int ready = core->ready;
	if (!ready) {
		struct seen_topic *old = dict_del(&core->seen, user_id);
		if (old) {
			call_release(&old->call);
			free(old);
		}
		if (s)
			dict_put(&core->seen, s->user_id, s);
		s = NULL;
	}
	pthread_mutex_unlock(&core->mu);
	if (s) {
		call_release(&s->call);
		free(s);
	}
	if (why && !ready)
		log_warn("ignored the call topic of '%s' at start-up: %s", user_id, why);
}

void core_on_message(void *arg, const char *topic, size_t topic_len, const char *payload, size_t len)
{
	struct core *core = arg;
	struct presence_topic pt;
	char user_id[ID_MAX_LEN + 1];
	if (topic_parse_presence(topic, topic_len, &pt) == 0)
		on_presence(core, &pt, payload, len);
	else if (topic_parse_call(topic, topic_len, user_id) == 0)
		on_call_topic(core, user_id, payload, len);
	else
		log_warn("ignored a message on topic '%.*s': not a presence or call topic",
			 (int)(topic_len > 300 ? 300 : topic_len), topic);
}

/* Ids (owned). */
struct id_list {
	char **ids;
	size_t n, cap;
};

static void id_list_push(struct id_list *l, const char *id)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
	}
	l->ids[l->n++] = xstrdup(id);
}

/* The live calls' ids, into live, and their parties (ids copied: a shared store's calls do
 * not outlive the next transition): those the calls wait for (calls_awaits) who are online,
 * into back, and those who are not online, into gone. Without presence: every party
 * awaited, into back. */
struct parties {
	const struct calls *calls;
	const struct presence *presence;
	struct id_list live, back, gone;
};

static void id_list_release(struct id_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ids[i]);
	free(l->ids);
}

static void collect_parties(void *arg, const struct call *call)
{
	struct parties *a = arg;
	if (!call_status_is_live(call->status))
		return;
	id_list_push(&a->live, call->id);
	for (int p = 0; p < 2; p++) {
		const char *id = call->party[p].id;
		if (a->presence && !presence_find(a->presence, id))
			id_list_push(&a->gone, id);
		else if (calls_awaits(a->calls, call, (enum party)p))
			id_list_push(&a->back, id);
	}
}

void core_on_bus_connected(void *arg)
{
	struct core *core = arg;
	/* The retained replay that follows the subscription rebuilds the set; at its
	 * end, parties of live calls who did not come back get the grace period
	 * (settle_parties). */
	pthread_mutex_lock(&core->mu);
	presence_clear(&core->presence);
	core->presence_settled = 0;
	if (!core->ready)
		seen_clear(core); /* a replay cut short starts again */
	/* Who the live calls wait for (a grace period runs, or a call rings them asleep):
	 * their presence in the replay acts at once, not at its end, so that no deadline of
	 * theirs falls due meanwhile. */
	struct parties a = { &core->calls, NULL, { 0 }, { 0 }, { 0 } };
	awaited_clear(core);
	calls_each(&core->calls, collect_parties, &a);
	for (size_t i = 0; i < a.back.n; i++) {
		if (dict_get(&core->awaited, a.back.ids[i]))
			free(a.back.ids[i]); /* both parties of two calls: once is enough */
		else
			dict_put(&core->awaited, a.back.ids[i], a.back.ids[i]);
	}
	free(a.back.ids);
	id_list_release(&a.live);
	reschedule(core);
	pthread_mutex_unlock(&core->mu);
}

void core_on_bus_lost(void *arg)
{
	(void)arg; /* presence is kept until the next connect's replay replaces it */
}

struct republish {
	struct core *core;
	struct instant now;
};

static void republish_live(void *arg, const struct call *call)
{
	struct republish *rp = arg;
	if (!call_status_is_live(call->status))
		return;
	size_t len;
	char *json = json_io_call(call, &len);
	put_call_topics(rp->core, call, json, len);
	free(json);
}

/*
 * The end of a presence replay: each live call's parties as the replay left
 * them. Those online whom the call waits for end their grace period or wake
 * a call ringing them asleep; those not online get the grace period. One
 * pass over the live calls instead of transitions per replayed user (with
 * Redis, round trips under core->mu that held a restart with 20,000 users
 * for seconds). Called with core->mu held.
 */
static void settle_parties(struct core *core, struct instant now, struct id_list *live)
{
	struct parties a = { &core->calls, &core->presence, { 0 }, { 0 }, { 0 } };
	calls_each(&core->calls, collect_parties, &a);
	for (size_t i = 0; i < a.back.n; i++) {
		const struct presence_user *u = presence_find(&core->presence, a.back.ids[i]);
		if (u)
			party_back(core, &u->info);
	}
	for (size_t i = 0; i < a.gone.n; i++)
		calls_party_offline(&core->calls, a.gone.ids[i], now);
	id_list_release(&a.back);
	id_list_release(&a.gone);
	*live = a.live; /* the live calls' ids, for the caller (owned) */
	awaited_clear(core);
}

void core_on_bus_synced(void *arg)
{
	struct core *core = arg;
	struct republish rp = { core, now_instant() };
	struct call_events ev;
	call_events_init(&ev);
	size_t restored = 0, cleared = 0, repaired = 0;
	int first = 0;

	pthread_mutex_lock(&core->mu);
	if (!core->ready) {
		size_t n = core->seen.count;
		struct calls_seen *seen = xcalloc(n ? n : 1, sizeof(*seen));
		const char **clear = xcalloc(n ? n : 1, sizeof(*clear));
		struct dict_iter it;
		struct seen_topic *s;
		size_t i = 0;
		dict_iter_init(&it, &core->seen);
		while ((s = dict_iter_next(&it)))
			seen[i++] = (struct calls_seen){ s->user_id, &s->call };
		calls_restore(&core->calls, seen, n, &ev, clear, &cleared);
		for (i = 0; i < cleared; i++)
			put_call_topic(core, clear[i], NULL, 0);
		free(clear);
		free(seen);
		restored = calls_live_count(&core->calls);
		repaired = ev.n;
		core->ready = first = 1;
	}
	struct id_list live;
	settle_parties(core, rp.now, &live);
	/* After a reconnect (a broker restart loses the retained topics with
	 * persistence off) what the service holds is written again. After the
	 * rebuild the topics already show the restored calls, except the torn
	 * ones, which their re-sent events write. */
	if (core->calls.on_events) {
		/* A shared store: each live call's topics through the outbox, in
		 * order with its transitions (this instance's memory holds none). */
		for (size_t i = 0; i < live.n; i++)
			show_call(core, live.ids[i]);
	} else if (!first) {
		calls_each(&core->calls, republish_live, &rp);
	}
	id_list_release(&live);
	core->presence_settled = 1;
	publish_events(core, &ev, 0);
	if (first) {
		seen_clear(core);
		pthread_cond_signal(&core->wake);
	}
	reschedule(core);
	pthread_mutex_unlock(&core->mu);
	call_events_release(&ev);
	if (first)
		log_info(
		    "restored %zu live call(s) from the broker (%zu finished a cut-short write, %zu topic(s) "
		    "cleared); call control is open",
		    restored, repaired, cleared);
}

static int bus_up(struct core *core)
{
	return core->bus && mqtt_bus_is_up(core->bus);
}

/*
 * The common end of a successful transition: the events go out, the reply
 * gets a copy, and (under core->mu) the timer learns of new deadlines. On a
 * handle (h), with the call's order stripe held instead; after_handle
 * tells the timer.
 */
static void transition_done(struct core *core, struct handle *h, const struct call *call,
			    struct call_events *ev, struct core_reply *r)
{
	r->call = xcalloc(1, sizeof(*r->call));
	call_copy(r->call, call);
	publish_events(core, ev, h != NULL);
	if (!h)
		reschedule(core);
}

/*
 * A start on a handle read presence before its commit: a party who went
 * offline (or, ringing asleep, came online) in between was missed by
 * on_presence, which found no call yet. The same transitions now. Called
 * with core->mu held.
 */
static void recheck_parties(struct core *core, const struct call *call, int receiver_was_online,
			    struct instant now)
{
	const char *caller = call->party[PARTY_CALLER].id, *receiver = call->party[PARTY_RECEIVER].id;
	if (!presence_find(&core->presence, caller))
		calls_party_offline(&core->calls, caller, now);
	const struct presence_user *rp = presence_find(&core->presence, receiver);
	if (receiver_was_online && !rp) {
		calls_party_offline(&core->calls, receiver, now);
	} else if (!receiver_was_online && rp) {
		const struct call *woke = calls_receiver_online(&core->calls, &rp->info);
		if (woke && core->calls.on_events) {
			char id[CALL_ID_LEN + 1];
			memcpy(id, woke->id, sizeof(id));
			show_call(core, id);
		}
	}
	reschedule(core);
}

/*
 * After a successful transition on a handle, with no lock held: the timer
 * learns of new deadlines, and a start (started: its call) whose parties'
 * presence changed since it read it (presence version) is checked again.
 */
static void after_handle(struct core *core, struct handle *h, const struct call *started,
			 int receiver_was_online, uint64_t version, struct instant now)
{
	int64_t next = calls_next_deadline(&h->calls); /* deadlines are known to every handle */
	pthread_mutex_lock(&core->mu);
	if (started && core->presence.version != version)
		recheck_parties(core, started, receiver_was_online, now);
	if (next < core->timer_due)
		pthread_cond_signal(&core->wake);
	pthread_mutex_unlock(&core->mu);
}

/* A transition of an existing call (answer, end, LiveKit's), or a read, between enter_call
 * and leave_call. */
struct entered {
	struct handle *h;       /* the handle it runs on, or NULL: under core->mu */
	struct calls *calls;    /* the handle's, or core's */
	pthread_mutex_t *order; /* the call's order stripe, held on a handle */
	int ready;              /* call control was open */
};

/* On a free handle, holding the call's order stripe (none for a read: call_id NULL);
 * without handles, with core->mu held. */
static void enter_call(struct core *core, const char *call_id, struct entered *t)
{
	t->h = handle_take(core);
	t->calls = t->h ? &t->h->calls : &core->calls;
	t->order = t->h && call_id ? order_of(core, call_id) : NULL;
	pthread_mutex_lock(&core->mu);
	t->ready = core->ready;
	if (t->h) {
		pthread_mutex_unlock(&core->mu);
		if (t->order)
			pthread_mutex_lock(t->order);
	}
}

/* The other end of enter_call; committed: the transition changed the store. */
static void leave_call(struct core *core, struct entered *t, int committed, struct instant now)
{
	if (t->h) {
		if (t->order)
			pthread_mutex_unlock(t->order);
		if (committed)
			after_handle(core, t->h, NULL, 0, 0, now);
	} else {
		pthread_mutex_unlock(&core->mu);
	}
	handle_give(core, t->h);
}

/* The other end of enter_call for a read. */
static void leave_read(struct core *core, struct entered *t)
{
	leave_call(core, t, 0, (struct instant){ 0 });
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

/*
 * Takes one of the caller's starts: in the store's shared limiter when it
 * has one (every instance counts together; on the handle of calls), else
 * in this process's (with core->mu held).
 * 1 allowed, 0 refused (*retry_ms set), -1 the store is unreachable.
 */
static int take_start(struct core *core, struct calls *calls, const char *caller_id, int64_t mono,
		      int64_t *retry_ms)
{
	struct store *s = calls->store;
	if (s->ops->rate_take && core->cfg->start_rate_per_min > 0)
		return s->ops->rate_take(s, caller_id, core->cfg->start_rate_per_min, retry_ms);
	return ratelimit_take(&core->starts, caller_id, mono, retry_ms);
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
	int64_t mono = mono_now();
	struct call_events ev;
	call_events_init(&ev);
	enum err e;

	int merged = 0, asleep_ring = 0;
	struct handle *h = handle_take(core);
	struct calls *calls = h ? &h->calls : &core->calls;
	struct user_info caller = { 0 }, receiver = { 0 };
	int64_t retry_ms = 0;
	pthread_mutex_t *order = NULL;
	pthread_mutex_lock(&core->mu);
	int locked = 1;
	uint64_t version = core->presence.version;
	if (!core->ready) {
		e = ERR_NOT_READY;
		goto out;
	}
	/* Who they are, as this instance sees them now (copies: on a handle the lock goes next). */
	const struct presence_user *p = presence_find(&core->presence, caller_id);
	if (p)
		user_info_copy(&caller, &p->info);
	if ((p = presence_find(&core->presence, receiver_id)))
		user_info_copy(&receiver, &p->info);
	if (h) {
		pthread_mutex_unlock(&core->mu);
		locked = 0;
		order = order_of(core, id);
		pthread_mutex_lock(order);
	}
	int allowed = take_start(core, calls, caller_id, mono, &retry_ms);
	if (allowed < 0) {
		e = ERR_STORE_UNAVAILABLE;
		goto out;
	}
	if (!allowed) {
		r->retry_after_s = (retry_ms + 999) / 1000;
		e = ERR_RATE_LIMITED;
		goto out;
	}
	if (!caller.id) {
		e = ERR_CALLER_OFFLINE;
		goto out;
	}
	const struct call *call;
	if (receiver.id) {
		e = calls_start(calls, &caller, &receiver, id, now, &ev, &call);
	} else if (core->hooks && core->cfg->ring_offline_s > 0) {
		/* Nothing known of the sleeping receiver but the id: it names them too. */
		struct user_info asleep = { (char *)receiver_id, (char *)receiver_id, (char *)"" };
		e = calls_start_offline(calls, &caller, &asleep, id, now, &ev, &call);
		asleep_ring = e == ERR_OK;
	} else {
		e = ERR_RECEIVER_OFFLINE;
		goto out;
	}
	if (e == ERR_OK) {
		merged = call->status == CALL_ONGOING;
		transition_done(core, h, call, &ev, r);
	} else {
		publish_events(core, &ev, h != NULL); /* a busy receiver's missed-call event */
	}
	if (asleep_ring) {
		size_t call_len;
		char *call_json = json_io_call(call, &call_len);
		post_call_webhook(core, "call.ringing_offline", call, call_json, call_len);
		free(call_json);
	}
out:
	if (order)
		pthread_mutex_unlock(order);
	if (locked)
		pthread_mutex_unlock(&core->mu);
	if (h && e == ERR_OK)
		after_handle(core, h, r->call, receiver.id != NULL, version, now);
	handle_give(core, h);
	user_info_release(&caller);
	user_info_release(&receiver);
	call_events_release(&ev);
	if (e == ERR_OK && merged)
		log_info("call '%s': '%s' called back '%s' while it rang; accepted", r->call->id, caller_id,
			 receiver_id);
	else if (e == ERR_OK)
		log_info("call '%s': '%s' rings '%s'%s", id, caller_id, receiver_id,
			 asleep_ring ? " (no device online: the backend is asked to push)" : "");
	return e;
}

enum err core_call_answer(struct core *core, const char *call_id, int accept, const char *by_user,
			  struct core_reply *r)
{
	return core_call_answer_on(core, call_id, accept, by_user, NULL, r);
}

enum err core_call_answer_on(struct core *core, const char *call_id, int accept, const char *by_user,
			     const char *device_id, struct core_reply *r)
{
	if (!bus_up(core))
		return ERR_BROKER_UNAVAILABLE;
	struct instant now = now_instant();
	struct call_events ev;
	call_events_init(&ev);
	const struct call *call = NULL;
	enum err e = ERR_NOT_READY;

	struct entered t;
	enter_call(core, call_id, &t);
	if (t.ready)
		e = calls_answer_on(t.calls, call_id, accept, by_user, device_id, now, &ev, &call);
	if (e == ERR_OK) {
		metrics_ring_to_answer((accept ? call->answered_at : call->ended_at) - call->created_at);
		transition_done(core, t.h, call, &ev, r);
	} else if (e == ERR_CALL_NOT_RINGING) {
		r->call = xcalloc(1, sizeof(*r->call));
		call_copy(r->call, call);
	}
	leave_call(core, &t, e == ERR_OK, now);
	call_events_release(&ev);
	if (e == ERR_OK)
		log_info("call '%s' %s", call_id, accept ? "accepted" : "declined");
	return e;
}

enum err core_call_end(struct core *core, const char *call_id, const char *user_id, struct core_reply *r)
{
	return core_call_end_on(core, call_id, user_id, NULL, r);
}

enum err core_call_end_on(struct core *core, const char *call_id, const char *user_id, const char *device_id,
			  struct core_reply *r)
{
	if (!bus_up(core))
		return ERR_BROKER_UNAVAILABLE;
	struct instant now = now_instant();
	struct call_events ev;
	call_events_init(&ev);
	const struct call *call = NULL;
	enum err e = ERR_NOT_READY;
	int ended = 0;

	struct entered t;
	enter_call(core, call_id, &t);
	if (t.ready)
		e = calls_end_on(t.calls, call_id, user_id, device_id, now, &ev, &call);
	if (e == ERR_OK) {
		ended = ev.n > 0;
		transition_done(core, t.h, call, &ev, r);
	}
	leave_call(core, &t, e == ERR_OK, now);
	call_events_release(&ev);
	if (ended)
		log_info("call '%s' ended by '%s'", call_id, user_id);
	return e;
}

/* 1 when the webhook id was handled before, 0 the first time, -1 when the shared store does not
 * answer (LiveKit is to retry). Between enter_call and leave_call: on calls' handle, or with
 * core->mu held. */
static int webhook_seen_before(struct core *core, struct calls *calls, const char *id)
{
	struct store *s = calls->store;
	if (s->ops->seen_once) {
		/* Shared: a retry that reaches another instance is known there too. */
		int first = s->ops->seen_once(s, id, WEBHOOK_ID_TTL_MS);
		return first < 0 ? -1 : !first;
	}
	if (dict_get(&core->webhook_seen, id))
		return 1;
	char **slot = &core->webhook_ids[core->webhook_next];
	if (*slot) {
		dict_del(&core->webhook_seen, *slot);
		free(*slot);
	}
	*slot = xstrdup(id);
	dict_put(&core->webhook_seen, *slot, *slot);
	core->webhook_next = (core->webhook_next + 1) % WEBHOOK_IDS_KEPT;
	return 0;
}

enum err core_livekit_event(struct core *core, const struct livekit_event *e, struct core_reply *r)
{
	struct instant now = now_instant();
	struct call_events ev;
	call_events_init(&ev);
	const char *result = "ignored";
	enum err err = ERR_NOT_READY;
	const char *room = e->room ? e->room : "", *who = e->identity ? e->identity : "";

	int applied = 0;
	struct entered t;
	enter_call(core, room, &t); /* the room is named for the call */
	if (!t.ready)
		goto out;
	err = ERR_OK;
	int seen = e->id && *e->id ? webhook_seen_before(core, t.calls, e->id) : 0;
	if (seen < 0) {
		err = ERR_STORE_UNAVAILABLE; /* 503: LiveKit delivers it again later */
		goto out;
	}
	if (seen) {
		result = "duplicate";
		goto out;
	}
	if (strcmp(e->event, "participant_joined") == 0) {
		applied = calls_media_joined(t.calls, room, who, now);
	} else if (strcmp(e->event, "participant_left") == 0 ||
		   strcmp(e->event, "participant_connection_aborted") == 0) {
		applied = calls_media_left(t.calls, room, who, now);
		if (!t.h)
			reschedule(core);
	} else if (strcmp(e->event, "room_finished") == 0) {
		applied = calls_room_finished(t.calls, room, now, &ev);
		publish_events(core, &ev, t.h != NULL);
	}
	if (applied)
		result = "applied";
out:
	leave_call(core, &t, applied, now);
	call_events_release(&ev);
	if (err == ERR_OK) {
		r->body = json_io_object(&r->len, "result", result, NULL);
		log_info("LiveKit webhook '%.40s' (room '%.64s', participant '%.64s'): %s", e->event, room,
			 who, result);
	}
	return err;
}

enum err core_call_get(struct core *core, const char *call_id, const char *by_user, struct core_reply *r)
{
	enum err e = ERR_NOT_READY;
	struct entered t;
	enter_call(core, NULL, &t);
	if (t.ready) {
		const struct call *call = calls_find(t.calls, call_id);
		e = !call && calls_unreachable(t.calls)         ? ERR_STORE_UNAVAILABLE
		    : !call                                     ? ERR_NOT_FOUND
		    : by_user && !calls_is_party(call, by_user) ? ERR_NOT_A_PARTY
								: ERR_OK;
		if (e == ERR_OK) {
			r->call = xcalloc(1, sizeof(*r->call));
			call_copy(r->call, call);
		}
	}
	leave_read(core, &t);
	return e;
}

enum err core_user_call(struct core *core, const char *user_id, struct core_reply *r)
{
	enum err e = ERR_NOT_READY;
	struct entered t;
	enter_call(core, NULL, &t);
	if (t.ready) {
		const struct call *call = calls_live_of(t.calls, user_id);
		e = call ? ERR_OK : calls_unreachable(t.calls) ? ERR_STORE_UNAVAILABLE : ERR_NO_LIVE_CALL;
		if (call) {
			r->call = xcalloc(1, sizeof(*r->call));
			call_copy(r->call, call);
		}
	}
	leave_read(core, &t);
	return e;
}

enum err core_token(struct core *core, const char *room, const char *user_id, struct core_reply *r)
{
	const struct config *cfg = core->cfg;
	if (!cfg->livekit_api_key || !cfg->livekit_api_secret)
		return ERR_TOKEN_NOT_CONFIGURED;
	char *name = NULL;
	const struct call *call;
	enum err e = ERR_NOT_READY;
	struct entered t;
	enter_call(core, NULL, &t);
	if (t.ready)
		e = calls_check_in_call(t.calls, room, user_id, &call);
	if (e == ERR_NOT_IN_CALL && calls_unreachable(t.calls))
		e = ERR_STORE_UNAVAILABLE;
	if (e == ERR_OK)
		name =
		    xstrdup(call->party[strcmp(call->party[PARTY_CALLER].id, user_id) == 0 ? PARTY_CALLER
											   : PARTY_RECEIVER]
				.name);
	leave_read(core, &t);
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

void core_gauges(struct core *core, struct metrics_gauges *g)
{
	struct mqtt_bus_stats stats = { 0 };
	memset(g, 0, sizeof(*g));
	if (core->bus) {
		mqtt_bus_stats(core->bus, &stats);
		g->broker_up = mqtt_bus_is_up(core->bus);
	}
	g->outbox = stats.queued;
	g->outbox_age_ms = stats.oldest_age_ms;
	g->published = stats.published;
	g->dropped = stats.dropped;
	g->publisher = core->outbox ? outbox_leading(core->outbox) : 1;
	struct entered t;
	enter_call(core, NULL, &t); /* with Redis the counts are round trips: on a handle */
	g->calls = calls_count(t.calls);
	g->live_calls = calls_live_count(t.calls);
	if (t.h)
		pthread_mutex_lock(&core->mu);
	g->ready = core->ready;
	g->users = presence_count(&core->presence);
	for (const struct presence_user *u = core->presence.head; u; u = u->next)
		g->devices += u->ndevices;
	if (t.h)
		pthread_mutex_unlock(&core->mu);
	leave_read(core, &t);
}

enum err core_health(struct core *core, struct core_reply *r)
{
	struct metrics_gauges g;
	core_gauges(core, &g);
	r->body = json_io_health(g.broker_up, g.ready, g.users, g.calls, g.live_calls, g.outbox, &r->len);
	if (core->hooks) {
		struct webhooks_stats ws;
		webhooks_stats(core->hooks, &ws);
		r->body = json_io_health_webhooks(r->body, &r->len, ws.delivered, ws.failed, ws.rejected,
						  ws.overflowed, ws.queued);
	}
	return ERR_OK;
}

enum err core_ready(struct core *core)
{
	if (!bus_up(core))
		return ERR_BROKER_UNAVAILABLE;
	pthread_mutex_lock(&core->mu);
	int ready = core->ready;
	pthread_mutex_unlock(&core->mu);
	return ready ? ERR_OK : ERR_NOT_READY;
}

void core_set_webhooks(struct core *core, struct webhooks *hooks)
{
	core->hooks = hooks;
}

enum err core_call_history(struct core *core, const char *user_id, const char *before_id, size_t limit,
			   struct core_reply *r)
{
	struct call *calls = xcalloc(limit ? limit : 1, sizeof(*calls));
	struct entered t;
	enter_call(core, NULL, &t);
	int ready = t.ready;
	size_t n = ready ? calls_history(t.calls, user_id, before_id, limit, calls) : 0;
	int unreachable = ready && !n && calls_unreachable(t.calls);
	leave_read(core, &t);
	if (!ready || unreachable) {
		free(calls);
		/* like the other reads: a shared engine may hold more than memory */
		return unreachable ? ERR_STORE_UNAVAILABLE : ERR_NOT_READY;
	}
	r->body = json_io_calls(calls, n, &r->len);
	for (size_t i = 0; i < n; i++)
		call_release(&calls[i]);
	free(calls);
	return ERR_OK;
}

/*
 * outbox.c - see outbox.h.
 */
#include "outbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mqtt_bus.h"
#include "store.h"
#include "util.h"

#define LEASE_MS       3000  /* the leader's lease; a dead leader's successor starts within it */
#define RENEW_MS       1000  /* how often the leader renews it */
#define FOLLOW_POLL_MS 100   /* how often an instance that does not lead tries to */
#define READ_BATCH     512   /* messages read from Redis at a time */
#define READ_BLOCK_MS  100   /* how long a read waits for a message */
#define TRIM_EVERY_MS  20    /* how often acknowledged messages are removed from Redis */
#define BACKLOG_MAX    20000 /* no more read while the broker connection holds this many */
#define DOWN_RESIGN_MS 10000 /* a leader whose broker is away this long lets another lead */

/* A message handed to the bus: its number there and its id in the store. */
struct sent {
	uint64_t seq;
	char id[STORE_OUTBOX_ID_MAX];
};

struct outbox {
	struct store *store;  /* borrowed: core's */
	struct mqtt_bus *bus; /* borrowed */
	char me[48];          /* this instance's name in the lease */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	int running; /* under mu */
	int leading; /* under mu, for outbox_leading */

	/* The drain thread's own. */
	char cursor[STORE_OUTBOX_ID_MAX]; /* the last id handed to the bus */
	struct sent *sent;                /* a ring of what was handed and is not yet trimmed */
	size_t head, n, cap;
};

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sent_push(struct outbox *o, uint64_t seq, const char *id)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 1024;
		struct sent *ring = xcalloc(cap, sizeof(*ring));
		for (size_t i = 0; i < o->n; i++)
			ring[i] = o->sent[(o->head + i) % o->cap];
		free(o->sent);
		o->sent = ring;
		o->cap = cap;
		o->head = 0;
	}
	struct sent *s = &o->sent[(o->head + o->n++) % o->cap];
	s->seq = seq;
	snprintf(s->id, sizeof(s->id), "%s", id);
}

static void on_entry(void *ctx, const char *id, const char *topic, const char *payload, size_t len,
		     int retained)
{
	struct outbox *o = ctx;
	sent_push(o, mqtt_bus_publish_tracked(o->bus, topic, payload, len, retained), id);
}

/*
 * Removes from the store what the broker has acknowledged: the entries all
 * of whose messages are settled (an entry holds a transition's messages,
 * read together). -1 when the store did not answer.
 */
static int trim(struct outbox *o)
{
	uint64_t below = mqtt_bus_settled_below(o->bus);
	char done[STORE_OUTBOX_ID_MAX] = "", cur[STORE_OUTBOX_ID_MAX] = "";
	while (o->n > 0 && o->sent[o->head].seq < below) {
		const char *id = o->sent[o->head].id;
		if (*cur && strcmp(cur, id) != 0)
			memcpy(done, cur, sizeof(done)); /* moved past cur: all of it is settled */
		snprintf(cur, sizeof(cur), "%s", id);
		o->head = (o->head + 1) % o->cap;
		o->n--;
	}
	if (*cur && (o->n == 0 || strcmp(o->sent[o->head].id, cur) != 0))
		memcpy(done, cur, sizeof(done));
	return *done ? o->store->ops->outbox_trim(o->store, done) : 0;
}

static void set_leading(struct outbox *o, int leading)
{
	pthread_mutex_lock(&o->mu);
	int was = o->leading;
	o->leading = leading;
	pthread_mutex_unlock(&o->mu);
	if (leading && !was)
		log_info("this instance publishes the shared outbox's events now");
	else if (!leading && was)
		log_info("this instance no longer publishes the shared outbox's events");
	if (was && !leading) {
		/* Another instance publishes from the oldest message still in the store: what this
		 * one's bus still holds must not reach the broker after the newer ones it sends. */
		size_t dropped = mqtt_bus_discard_tracked(o->bus);
		if (dropped)
			log_info("left %zu message(s) of the outbox to the next leader", dropped);
	}
	if (leading != was) {
		/* A new leader starts from the oldest message not yet removed: what the
		 * last one had not seen acknowledged goes out again (clients drop
		 * repeated event ids). */
		snprintf(o->cursor, sizeof(o->cursor), "0-0");
		o->head = o->n = 0;
	}
}

/* Waits up to ms unless outbox_stop wakes it; 0 when it is time to stop. */
static int nap(struct outbox *o, int64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&o->mu);
	if (o->running)
		pthread_cond_timedwait(&o->wake, &o->mu, &until);
	int running = o->running;
	pthread_mutex_unlock(&o->mu);
	return running;
}

static int still_running(struct outbox *o)
{
	pthread_mutex_lock(&o->mu);
	int running = o->running;
	pthread_mutex_unlock(&o->mu);
	return running;
}

static void *drain_thread(void *arg)
{
	struct outbox *o = arg;
	const struct store_ops *ops = o->store->ops;
	int leading = 0;
	int64_t renewed = 0, held = 0, trimmed = 0, bus_down_since = 0;
	while (still_running(o)) {
		int64_t now = mono_ms();
		int up = mqtt_bus_is_up(o->bus);
		bus_down_since = up ? 0 : bus_down_since ? bus_down_since : now;
		if (leading && !up && now - bus_down_since >= DOWN_RESIGN_MS) {
			/* Another instance may reach the broker: let it lead (what this bus holds is
			 * dropped first, so that it is not sent after what the next leader sends). */
			log_warn("the broker has been away for %d s: giving up publishing the shared outbox",
				 DOWN_RESIGN_MS / 1000);
			set_leading(o, leading = 0);
			ops->outbox_resign(o->store, o->me);
			renewed = now;
		}
		if (!leading ? up && now - renewed >= FOLLOW_POLL_MS : now - renewed >= RENEW_MS) {
			int v = ops->outbox_lead(o->store, o->me, LEASE_MS);
			renewed = now;
			if (v < 0 && leading && now - held < LEASE_MS)
				v = 1; /* Redis is away; the lease may still hold: keep the cursor */
			else if (v > 0)
				held = now;
			set_leading(o, leading = v > 0);
		}
		if (!leading) {
			if (!nap(o, FOLLOW_POLL_MS))
				break;
			continue;
		}
		struct mqtt_bus_stats st;
		mqtt_bus_stats(o->bus, &st);
		if (st.queued < BACKLOG_MAX) {
			if (ops->outbox_read(o->store, o->cursor, READ_BATCH, READ_BLOCK_MS, on_entry, o) <
			    0) {
				/* Redis may come back as another server (a failover) whose new ids sort
				 * below the cursor: read again from the oldest entry (repeats are dropped
				 * by their event ids). */
				snprintf(o->cursor, sizeof(o->cursor), "0-0");
				o->head = o->n = 0;
				if (!nap(o, READ_BLOCK_MS))
					break;
			}
		} else if (!nap(o, 5)) {
			break;
		}
		if (mono_ms() - trimmed >= TRIM_EVERY_MS) {
			trim(o);
			trimmed = mono_ms();
		}
	}
	if (leading) {
		/* Let the broker acknowledge what was sent (mqtt_bus_stop waits up to
		 * 2 s as well), remove it, and hand the lease on at once. */
		for (int i = 0; i < 100 && o->n > 0 && mqtt_bus_is_up(o->bus); i++) {
			struct timespec ts = { 0, 20 * 1000000 };
			nanosleep(&ts, NULL);
			trim(o);
		}
		set_leading(o, 0); /* what was not acknowledged is left to the next leader */
		ops->outbox_resign(o->store, o->me);
	}
	return NULL;
}

struct outbox *outbox_start(struct store *store, struct mqtt_bus *bus, const char *me)
{
	struct outbox *o = xcalloc(1, sizeof(*o));
	o->store = store;
	o->bus = bus;
	snprintf(o->me, sizeof(o->me), "%s", me);
	snprintf(o->cursor, sizeof(o->cursor), "0-0");
	o->running = 1;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&o->mu, NULL);
	if (pthread_create(&o->thread, NULL, drain_thread, o) != 0) {
		log_error("cannot start the outbox thread");
		pthread_mutex_destroy(&o->mu);
		pthread_cond_destroy(&o->wake);
		free(o);
		return NULL;
	}
	return o;
}

int outbox_leading(struct outbox *o)
{
	pthread_mutex_lock(&o->mu);
	int v = o->leading;
	pthread_mutex_unlock(&o->mu);
	return v;
}

void outbox_stop(struct outbox *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	o->running = 0;
	pthread_cond_signal(&o->wake);
	pthread_mutex_unlock(&o->mu);
	pthread_join(o->thread, NULL);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->wake);
	free(o->sent);
	free(o);
}

/*
 * store.h - where calls, busy lines and deadlines live: the seam between
 * the call rules (calls.c) and the engine that keeps their state.
 *
 * calls.c is the only caller. Each of its entry points runs one transition
 * in the shape "load the call and the busy lines it touches, apply the
 * rule, save": find/live_of load, the rule edits the loaded call, save and
 * add write it back, together with the busy lines of its parties. core
 * serialises transitions with its lock, so the memory engine hands out its
 * own call and saving only updates the busy lines. An engine shared by
 * several processes (Redis) returns a private copy from find/live_of and
 * writes it in save, inside one atomic unit keyed by the call id and both
 * user ids (WATCH/MULTI or a script); the rules stay as they are. Such an
 * engine also hands out handles (its own connection each), so that threads
 * of one process run transitions side by side as instances do.
 *
 * Every entry point of calls.c runs between begin and commit: the engine
 * applies the writes in between all or nothing, and answers STORE_CONFLICT
 * when another instance changed what the transition read, so calls.c runs
 * the rule again on fresh state. The memory engine leaves both NULL.
 *
 * Each user's history of finished calls lives here too: the memory engine
 * keeps it in memory (lost on restart), a shared engine beside the calls.
 *
 * Deadlines are wall-clock milliseconds since the epoch, so that a ring
 * timeout set before a restart still falls due at the same moment after it.
 * A deadline entry is never removed early: the rules look the call up again
 * when it comes due and ignore the entry if the call no longer waits for it.
 */
#ifndef CALLSIGNAL_STORE_H
#define CALLSIGNAL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum deadline_kind { DEADLINE_RING, DEADLINE_GRACE, DEADLINE_RETIRE, DEADLINE_MEDIA, DEADLINE__COUNT };

struct deadline {
	int64_t at; /* wall clock, ms since the epoch */
	char id[CALL_ID_LEN + 1];
	enum party party; /* whose absence, for DEADLINE_GRACE and DEADLINE_MEDIA */
};

struct store;

/* Room for an outbox message id ("{ms}-{seq}") and its NUL. */
#define STORE_OUTBOX_ID_MAX 48

enum store_commit {
	STORE_COMMITTED, /* the writes since begin are applied */
	STORE_CONFLICT,  /* another instance changed what was read: none applied, run again */
	STORE_FAILED,    /* the engine is unreachable: none applied */
};

struct store_ops {
	/* The call with this id, or NULL; valid until the next change of the store. */
	struct call *(*find)(struct store *s, const char *id);
	/* The live call user_id is a party of, or NULL. */
	struct call *(*live_of)(struct store *s, const char *user_id);
	/* Keeps a new call (steals it); a live call makes both parties busy. */
	void (*add)(struct store *s, struct call *call);
	/* Writes back a call changed by a transition; a call no longer live frees its parties' lines. */
	void (*save)(struct store *s, struct call *call);
	/* Drops and frees a finished call. */
	void (*forget)(struct store *s, const char *id);
	void (*deadline_add)(struct store *s, enum deadline_kind kind, const struct deadline *d);
	/* Removes the earliest deadline of kind due at or before now into *out: 1, or 0 when none is due. */
	int (*deadline_pop_due)(struct store *s, enum deadline_kind kind, int64_t now, struct deadline *out);
	/* The earliest deadline of kind, or INT64_MAX. */
	int64_t (*deadline_next)(const struct store *s, enum deadline_kind kind);
	size_t (*count)(const struct store *s);
	size_t (*live_count)(const struct store *s);
	/* Calls fn on every call, in no particular order; fn must not change the store. */
	void (*each)(const struct store *s, void (*fn)(void *ctx, const struct call *call), void *ctx);
	void (*free)(struct store *s);
	/* Opens a transition; copies handed out before are freed. NULL: nothing to do. */
	void (*begin)(struct store *s);
	/* Closes it (see above). NULL: always STORE_COMMITTED. */
	enum store_commit (*commit)(struct store *s);
	/*
	 * Takes one of user_id's call starts, limit per minute, in a limiter
	 * every instance shares (the GCRA of ratelimit.h, on the engine's
	 * clock): 1 allowed; 0 refused, *retry_after_ms set; -1 unreachable.
	 * NULL: the engine shares nothing, core limits in its own memory.
	 */
	int (*rate_take)(struct store *s, const char *user_id, int limit_per_min, int64_t *retry_after_ms);
	/* Adds a copy of a finished call to both parties' histories, each kept to max calls (oldest go). */
	void (*history_add)(struct store *s, const struct call *call, size_t max);
	/* See calls_history: deep copies into out[], newest first; returns how many. */
	size_t (*history)(const struct store *s, const char *user_id, const char *before_id, size_t limit,
			  struct call *out);

	/*
	 * The shared outbox (all NULL for an engine that shares nothing: core
	 * then publishes straight to the broker). outbox_put, inside a
	 * transition, adds a message for the broker to the same atomic unit as
	 * the transition's writes, so that it exists if and only if the
	 * transition happened; messages keep the order of the transitions.
	 * The rest is for outbox.c's drain thread only, on a connection of its
	 * own, without core's lock: one instance at a time leads (outbox_lead
	 * takes or renews a lease of ttl_ms for `me`: 1 leading, 0 another
	 * leads, -1 unreachable; outbox_resign gives it up), reads the
	 * messages after *cursor in order (outbox_read: fn for each, at most
	 * max, waiting up to block_ms for one; *cursor advances; the count, or
	 * -1) and removes those the broker acknowledged (outbox_trim: every
	 * message up to and including the id).
	 */
	void (*outbox_put)(struct store *s, const char *topic, const char *payload, size_t len, int retained);
	int (*outbox_lead)(struct store *s, const char *me, int ttl_ms);
	void (*outbox_resign)(struct store *s, const char *me);
	int (*outbox_read)(struct store *s, char cursor[STORE_OUTBOX_ID_MAX], size_t max, int block_ms,
			   void (*fn)(void *ctx, const char *id, const char *topic, const char *payload,
				      size_t len, int retained),
			   void *ctx);
	int (*outbox_trim)(struct store *s, const char *through_id);
	/*
	 * In a transition, before its rule: reads ahead, together, what the rule is about to
	 * look up (find of call_id, live_of of users[0] and users[1]; any may be NULL), so that
	 * a remote engine makes one round trip where the rule would make one per lookup. Only
	 * a hint: the lookups answer the same with or without it. NULL: nothing to gain.
	 */
	void (*prefetch)(struct store *s, const char *call_id, const char *const users[2]);
	/*
	 * Notes name as seen, for ttl_ms, where every instance sees it (a LiveKit webhook's
	 * event id, so that a retry reaching another instance is known): 1 the first time,
	 * 0 when seen before within ttl_ms, -1 when the engine does not answer. NULL: the
	 * engine shares nothing, core remembers the names in its own memory.
	 */
	int (*seen_once)(struct store *s, const char *name, int64_t ttl_ms);
	/*
	 * Another handle on the same engine, for another thread: its own connection and
	 * transitions, sharing what s knows of the deadlines, so that transitions on
	 * different handles run at the same time (Redis's optimistic locking keeps them
	 * atomic, as between instances). Freed with free, before s. NULL: the engine has
	 * one handle, used under core's lock (memory).
	 */
	struct store *(*handle)(struct store *s);
	/*
	 * Outside a transition, after a lookup (find, live_of, history, count) that found
	 * nothing: 1 when that is because the engine did not answer its last command, so
	 * that a read can say "unavailable" rather than "not found". NULL: the engine always
	 * answers (memory).
	 */
	int (*unreachable)(const struct store *s);
};

struct store {
	const struct store_ops *ops;
	/* 1 when the state outlives this process and other instances share it
	 * (Redis): it is the source of truth, nothing is rebuilt from the broker. */
	int shared;
};

/* The default engine: calls in this process's memory (store_memory.c). */
struct store *store_memory_new(void);

/*
 * The shared engine: calls, busy lines and deadlines in Redis at url
 * (redis://[:password@]host[:port][/db], or the master that the sentinels of
 * redis-sentinel://... name: redis_url.h), keys under prefix (copied).
 * Several service instances on one Redis serve the same calls. NULL, after
 * logging why, when the url is bad or Redis does not answer (store_redis.c).
 */
struct store *store_redis_new(const char *url, const char *prefix);

#endif

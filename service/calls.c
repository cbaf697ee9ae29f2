/*
 * calls.c - see calls.h.
 *
 * Every kind of deadline is "event time + a fixed period", so the store
 * keeps each kind in deadline order. Entries are never removed early; when
 * one comes due the call is looked up again and the entry is ignored if the
 * call no longer waits for it (answered, party back, already forgotten).
 *
 * Each entry point runs its rule between the store's begin and commit; on a
 * conflict (another instance changed what the rule read) the rule runs
 * again on fresh state, with the events of the lost attempt dropped. The
 * rules are the same whatever the engine: one definition.
 */
#include "calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "util.h"

#define S(c)   ((c)->store)
#define OPS(c) ((c)->store->ops)

/* Conflicts in a row after which a transition gives up (ERR_STORE_UNAVAILABLE). */
#define TX_MAX_TRIES 1000

void call_events_init(struct call_events *ev)
{
	ev->items = NULL;
	ev->n = ev->cap = 0;
}

void call_events_release(struct call_events *ev)
{
	free(ev->items);
	call_events_init(ev);
}

static void emit(struct call_events *ev, enum event_type type, const struct call *call, int to_caller)
{
	if (ev->n == ev->cap) {
		ev->cap = ev->cap ? ev->cap * 2 : 4;
		ev->items = xrealloc(ev->items, ev->cap * sizeof(*ev->items));
	}
	ev->items[ev->n++] = (struct call_event){ type, call, to_caller, 1, 0, 0 };
}

void calls_init(struct calls *c, const struct calls_config *cfg, struct store *store)
{
	c->cfg = *cfg;
	c->store = store;
	c->on_events = NULL;
	c->on_events_ctx = NULL;
}

void calls_release(struct calls *c)
{
	OPS(c)->free(S(c));
	c->store = NULL;
}

static void tx_begin(struct calls *c)
{
	if (OPS(c)->begin)
		OPS(c)->begin(S(c));
}

/*
 * Commits the transition: 1 when it is over (committed, or given up with
 * *e = ERR_STORE_UNAVAILABLE), 0 when it must run again; then the events it
 * appended (from index n0 of ev, which may be NULL) are dropped.
 */
static int tx_done(struct calls *c, struct call_events *ev, size_t n0, int *tries, enum err *e)
{
	if (ev && c->on_events && ev->n > n0)
		c->on_events(c->on_events_ctx, ev, n0);
	enum store_commit r = OPS(c)->commit ? OPS(c)->commit(S(c)) : STORE_COMMITTED;
	if (r == STORE_COMMITTED)
		return 1;
	if (ev)
		ev->n = n0;
	if (r == STORE_FAILED || ++*tries >= TX_MAX_TRIES) {
		*e = ERR_STORE_UNAVAILABLE;
		return 1;
	}
	return 0;
}

static void add_deadline(struct calls *c, enum deadline_kind kind, int64_t at, const char *id,
			 enum party party)
{
	struct deadline d;
	d.at = at;
	memcpy(d.id, id, CALL_ID_LEN + 1);
	d.party = party;
	OPS(c)->deadline_add(S(c), kind, &d);
}

/* Moves a live call to a final status and saves it; the parties are free again. */
static void finish(struct calls *c, struct call *call, enum call_status status, enum end_reason reason,
		   struct instant now)
{
	call->status = status;
	call->end_reason = reason;
	call->ended_at = now.wall_ms;
	call->ring_deadline = 0;
	call->revision++;
	call->grace_deadline[0] = call->grace_deadline[1] = 0;
	call->media_deadline[0] = call->media_deadline[1] = 0;
	OPS(c)->save(S(c), call);
	add_deadline(c, DEADLINE_RETIRE, now.wall_ms + c->cfg.retention_ms, call->id, PARTY_CALLER);
	if (c->cfg.history_max)
		OPS(c)->history_add(S(c), call, c->cfg.history_max);
}

static struct call *new_call(const struct user_info *caller, const struct user_info *receiver, const char *id,
			     struct instant now)
{
	struct call *call = xcalloc(1, sizeof(*call));
	snprintf(call->id, sizeof(call->id), "%s", id);
	user_info_copy(&call->party[PARTY_CALLER], caller);
	user_info_copy(&call->party[PARTY_RECEIVER], receiver);
	call->created_at = now.wall_ms;
	call->revision = 1;
	return call;
}

/* DIALLING -> ONGOING, accepted by user_id on device_id (either may be NULL). */
static void accept_call(struct calls *c, struct call *call, const char *user_id, const char *device_id,
			struct instant now, struct call_events *ev)
{
	call->status = CALL_ONGOING;
	call->answered_at = now.wall_ms;
	call->ring_deadline = 0;
	call->revision++;
	actor_set(&call->answered_by, user_id, device_id);
	OPS(c)->save(S(c), call);
	emit(ev, EVENT_ACCEPT_CALL, call, 1);
}

static enum err start_rule(struct calls *c, const struct user_info *caller, const struct user_info *receiver,
			   const char *id, struct instant now, int64_t ring_ms, struct call_events *ev,
			   const struct call **out)
{
	if (strcmp(caller->id, receiver->id) == 0)
		return ERR_SELF_CALL;
	if (OPS(c)->prefetch) {
		const char *const users[2] = { caller->id, receiver->id };
		OPS(c)->prefetch(S(c), id, users);
	}
	struct call *mine = OPS(c)->live_of(S(c), caller->id);
	if (mine && mine->status == CALL_DIALLING &&
	    strcmp(mine->party[PARTY_CALLER].id, receiver->id) == 0 &&
	    strcmp(mine->party[PARTY_RECEIVER].id, caller->id) == 0) {
		/* Glare: both called each other; the call that rings first wins. */
		accept_call(c, mine, caller->id, NULL, now, ev);
		*out = mine;
		return ERR_OK;
	}
	if (mine)
		return ERR_CALLER_BUSY;
	if (OPS(c)->find(S(c), id))
		return ERR_INTERNAL; /* ids are random: a clash means the caller reused one */
	if (OPS(c)->live_of(S(c), receiver->id)) {
		struct call *missed = new_call(caller, receiver, id, now);
		missed->status = CALL_MISSED;
		missed->end_reason = END_BUSY;
		missed->ended_at = now.wall_ms;
		OPS(c)->add(S(c), missed);
		add_deadline(c, DEADLINE_RETIRE, now.wall_ms + c->cfg.retention_ms, missed->id, PARTY_CALLER);
		if (c->cfg.history_max) /* the callee's app lists the attempt */
			OPS(c)->history_add(S(c), missed, c->cfg.history_max);
		emit(ev, EVENT_END_CALL, missed, 0);
		ev->items[ev->n - 1].keep_topics = 1;
		return ERR_RECEIVER_BUSY;
	}

	struct call *call = new_call(caller, receiver, id, now);
	call->status = CALL_DIALLING;
	call->ring_deadline = now.wall_ms + ring_ms;
	OPS(c)->add(S(c), call);
	add_deadline(c, DEADLINE_RING, call->ring_deadline, call->id, PARTY_CALLER);
	emit(ev, EVENT_INCOMING_CALL, call, 0);
	*out = call;
	return ERR_OK;
}

/* The call rings its receiver, who had no device online: until one comes, for RING_OFFLINE_S. */
static int rings_asleep(const struct calls *c, const struct call *call)
{
	return call->status == CALL_DIALLING &&
	       call->ring_deadline < call->created_at + c->cfg.ring_timeout_ms;
}

int calls_awaits(const struct calls *c, const struct call *call, enum party p)
{
	return call_status_is_live(call->status) &&
	       (call->grace_deadline[p] || (p == PARTY_RECEIVER && rings_asleep(c, call)));
}

/* Wakes a call that rings u asleep: it names u as their device does and rings until the full
 * ring timeout, which it returns (the caller saves the call, then adds that deadline). */
static int64_t wake(const struct calls *c, struct call *call, const struct user_info *u)
{
	/* Name and location only: the id, equal anyway, keys the store's busy lines. */
	struct user_info *r = &call->party[PARTY_RECEIVER];
	free(r->name);
	free(r->location);
	r->name = xstrdup(u->name);
	r->location = xstrdup(u->location);
	call->ring_deadline = call->created_at + c->cfg.ring_timeout_ms;
	call->revision++;
	return call->ring_deadline;
}

static struct call *receiver_online_rule(struct calls *c, const struct user_info *u)
{
	struct call *call = OPS(c)->live_of(S(c), u->id);
	if (!call || strcmp(call->party[PARTY_RECEIVER].id, u->id) != 0 || !rings_asleep(c, call))
		return NULL;
	int64_t full = wake(c, call, u);
	OPS(c)->save(S(c), call);
	add_deadline(c, DEADLINE_RING, full, call->id, PARTY_CALLER);
	return call;
}

static enum err answer_rule(struct calls *c, const char *id, int accept, const char *by_user,
			    const char *device_id, struct instant now, struct call_events *ev,
			    const struct call **out)
{
	struct call *call = OPS(c)->find(S(c), id);
	if (!call)
		return ERR_CALL_NOT_FOUND;
	if (by_user && strcmp(by_user, call->party[PARTY_RECEIVER].id) != 0)
		return ERR_FORBIDDEN;
	*out = call;
	if (call->status != CALL_DIALLING)
		return ERR_CALL_NOT_RINGING;
	const char *receiver = call->party[PARTY_RECEIVER].id;
	if (accept) {
		accept_call(c, call, receiver, device_id, now, ev);
	} else {
		actor_set(&call->ended_by, receiver, device_id);
		finish(c, call, CALL_DECLINED, END_DECLINED, now);
		emit(ev, EVENT_DECLINE_CALL, call, 1);
	}
	return ERR_OK;
}

static int party_of(const struct call *call, const char *user_id)
{
	for (int p = 0; p < 2; p++)
		if (strcmp(call->party[p].id, user_id) == 0)
			return p;
	return -1;
}

int calls_is_party(const struct call *call, const char *user_id)
{
	return party_of(call, user_id) >= 0;
}

static enum err end_rule(struct calls *c, const char *id, const char *user_id, const char *device_id,
			 struct instant now, struct call_events *ev, const struct call **out)
{
	struct call *call = OPS(c)->find(S(c), id);
	if (!call)
		return ERR_CALL_NOT_FOUND;
	int p = party_of(call, user_id);
	if (p < 0)
		return ERR_NOT_A_PARTY;
	*out = call;
	if (!call_status_is_live(call->status))
		return ERR_OK;
	enum end_reason reason = call->status == CALL_ONGOING ? END_HANGUP
				 : p == PARTY_CALLER          ? END_CANCELLED
							      : END_DECLINED;
	actor_set(&call->ended_by, user_id, device_id);
	finish(c, call, CALL_ENDED, reason, now);
	emit(ev, EVENT_END_CALL, call, 1);
	return ERR_OK;
}

/* The ONGOING call id and user_id's side of it in *p, or NULL. */
static struct call *ongoing_party(struct calls *c, const char *id, const char *user_id, int *p)
{
	struct call *call = OPS(c)->find(S(c), id);
	if (!call || call->status != CALL_ONGOING || (*p = party_of(call, user_id)) < 0)
		return NULL;
	return call;
}

static int media_joined_rule(struct calls *c, const char *id, const char *user_id, struct instant now)
{
	int p;
	struct call *call = ongoing_party(c, id, user_id, &p);
	if (!call)
		return 0;
	call->media_joined_at[p] = now.wall_ms;
	call->media_deadline[p] = 0;
	OPS(c)->save(S(c), call);
	return 1;
}

static int media_left_rule(struct calls *c, const char *id, const char *user_id, struct instant now)
{
	int p;
	struct call *call = ongoing_party(c, id, user_id, &p);
	if (!call || call->media_deadline[p])
		return 0;
	call->media_deadline[p] = now.wall_ms + c->cfg.offline_grace_ms;
	OPS(c)->save(S(c), call);
	add_deadline(c, DEADLINE_MEDIA, call->media_deadline[p], call->id, (enum party)p);
	return 1;
}

static int room_finished_rule(struct calls *c, const char *id, struct instant now, struct call_events *ev)
{
	struct call *call = OPS(c)->find(S(c), id);
	if (!call || call->status != CALL_ONGOING)
		return 0;
	finish(c, call, CALL_ENDED, END_MEDIA_ENDED, now);
	emit(ev, EVENT_END_CALL, call, 1);
	return 1;
}

enum err calls_check_in_call(const struct calls *c, const char *id, const char *user_id,
			     const struct call **out)
{
	const struct call *call = OPS(c)->find(S(c), id);
	if (!call || call->status != CALL_ONGOING || party_of(call, user_id) < 0)
		return ERR_NOT_IN_CALL;
	*out = call;
	return ERR_OK;
}

static void party_offline_rule(struct calls *c, const char *user_id, struct instant now)
{
	struct call *call = OPS(c)->live_of(S(c), user_id);
	if (!call)
		return;
	int p = party_of(call, user_id);
	if (p < 0 || call->grace_deadline[p] || (p == PARTY_RECEIVER && rings_asleep(c, call)))
		return; /* a receiver rung asleep was not online: RING_OFFLINE_S bounds the ring */
	call->grace_deadline[p] = now.wall_ms + c->cfg.offline_grace_ms;
	OPS(c)->save(S(c), call);
	add_deadline(c, DEADLINE_GRACE, call->grace_deadline[p], call->id, (enum party)p);
}

static void party_online_rule(struct calls *c, const char *user_id)
{
	struct call *call = OPS(c)->live_of(S(c), user_id);
	int p;
	if (call && call->grace_deadline[p = party_of(call, user_id)]) {
		call->grace_deadline[p] = 0;
		OPS(c)->save(S(c), call);
	}
}

/* party_online_rule and receiver_online_rule in one: one lookup, one save. */
static struct call *party_back_rule(struct calls *c, const struct user_info *u)
{
	struct call *call = OPS(c)->live_of(S(c), u->id);
	int p = call ? party_of(call, u->id) : -1;
	if (p < 0 || !calls_awaits(c, call, (enum party)p))
		return NULL;
	int woke = p == PARTY_RECEIVER && rings_asleep(c, call);
	call->grace_deadline[p] = 0;
	int64_t full = woke ? wake(c, call, u) : 0;
	OPS(c)->save(S(c), call);
	if (woke)
		add_deadline(c, DEADLINE_RING, full, call->id, PARTY_CALLER);
	return woke ? call : NULL;
}

static int over_cap(const struct calls *c)
{
	return c->cfg.retention_max && calls_count(c) - calls_live_count(c) > c->cfg.retention_max;
}

static void tick_rule(struct calls *c, struct instant now, struct call_events *ev)
{
	struct deadline d;
	struct call *call;

	/* Retention first: a call finished by this tick must not be forgotten by
	 * it. Every finished call has one retire entry, so the queue's head is
	 * the oldest finished call: the cap forgets from there. */
	while (OPS(c)->deadline_pop_due(S(c), DEADLINE_RETIRE, over_cap(c) ? INT64_MAX : now.wall_ms, &d)) {
		call = OPS(c)->find(S(c), d.id);
		if (call && !call_status_is_live(call->status))
			OPS(c)->forget(S(c), d.id);
	}
	while (OPS(c)->deadline_pop_due(S(c), DEADLINE_RING, now.wall_ms, &d)) {
		call = OPS(c)->find(S(c), d.id);
		if (call && call->status == CALL_DIALLING && call->ring_deadline <= now.wall_ms) {
			finish(c, call, CALL_MISSED, END_TIMEOUT, now);
			emit(ev, EVENT_END_CALL, call, 1);
		}
	}
	while (OPS(c)->deadline_pop_due(S(c), DEADLINE_GRACE, now.wall_ms, &d)) {
		call = OPS(c)->find(S(c), d.id);
		if (!call || !call_status_is_live(call->status))
			continue;
		int64_t deadline = call->grace_deadline[d.party];
		if (!deadline || deadline > now.wall_ms)
			continue; /* came back (and maybe left again: a later entry waits) */
		struct sbuf msg;
		sbuf_init(&msg, 64);
		sbuf_addf(&msg, "%s went offline", call->party[d.party].name);
		free(call->err_msg);
		call->err_msg = sbuf_detach(&msg, NULL);
		finish(c, call, CALL_ERROR, END_PARTY_OFFLINE, now);
		emit(ev, EVENT_END_CALL, call, 1);
	}
	while (OPS(c)->deadline_pop_due(S(c), DEADLINE_MEDIA, now.wall_ms, &d)) {
		call = OPS(c)->find(S(c), d.id);
		if (!call || call->status != CALL_ONGOING)
			continue;
		int64_t deadline = call->media_deadline[d.party];
		if (!deadline || deadline > now.wall_ms)
			continue; /* joined again (and maybe left again: a later entry waits) */
		actor_set(&call->ended_by, call->party[d.party].id, NULL);
		finish(c, call, CALL_ENDED, END_MEDIA_ENDED, now);
		emit(ev, EVENT_END_CALL, call, 1);
	}
}

/* --- the entry points: each rule as one transition of the store ---------------------------------- */

enum err calls_start(struct calls *c, const struct user_info *caller, const struct user_info *receiver,
		     const char *id, struct instant now, struct call_events *ev, const struct call **out)
{
	size_t n0 = ev->n;
	int tries = 0;
	enum err e;
	do {
		tx_begin(c);
		e = start_rule(c, caller, receiver, id, now, c->cfg.ring_timeout_ms, ev, out);
	} while (!tx_done(c, ev, n0, &tries, &e));
	return e;
}

enum err calls_start_offline(struct calls *c, const struct user_info *caller,
			     const struct user_info *receiver, const char *id, struct instant now,
			     struct call_events *ev, const struct call **out)
{
	int64_t ring_ms =
	    c->cfg.ring_offline_ms < c->cfg.ring_timeout_ms ? c->cfg.ring_offline_ms : c->cfg.ring_timeout_ms;
	size_t n0 = ev->n;
	int tries = 0;
	enum err e;
	do {
		tx_begin(c);
		e = start_rule(c, caller, receiver, id, now, ring_ms, ev, out);
	} while (!tx_done(c, ev, n0, &tries, &e));
	return e;
}

const struct call *calls_receiver_online(struct calls *c, const struct user_info *u)
{
	int tries = 0;
	enum err e = ERR_OK;
	struct call *call;
	do {
		tx_begin(c);
		call = receiver_online_rule(c, u);
	} while (!tx_done(c, NULL, 0, &tries, &e));
	return e == ERR_OK ? call : NULL;
}

const struct call *calls_party_back(struct calls *c, const struct user_info *u)
{
	int tries = 0;
	enum err e = ERR_OK;
	struct call *call;
	do {
		tx_begin(c);
		call = party_back_rule(c, u);
	} while (!tx_done(c, NULL, 0, &tries, &e));
	return e == ERR_OK ? call : NULL;
}

enum err calls_answer(struct calls *c, const char *id, int accept, const char *by_user, struct instant now,
		      struct call_events *ev, const struct call **out)
{
	return calls_answer_on(c, id, accept, by_user, NULL, now, ev, out);
}

enum err calls_answer_on(struct calls *c, const char *id, int accept, const char *by_user,
			 const char *device_id, struct instant now, struct call_events *ev,
			 const struct call **out)
{
	size_t n0 = ev->n;
	int tries = 0;
	enum err e;
	do {
		tx_begin(c);
		e = answer_rule(c, id, accept, by_user, device_id, now, ev, out);
	} while (!tx_done(c, ev, n0, &tries, &e));
	return e;
}

enum err calls_end(struct calls *c, const char *id, const char *user_id, struct instant now,
		   struct call_events *ev, const struct call **out)
{
	return calls_end_on(c, id, user_id, NULL, now, ev, out);
}

enum err calls_end_on(struct calls *c, const char *id, const char *user_id, const char *device_id,
		      struct instant now, struct call_events *ev, const struct call **out)
{
	size_t n0 = ev->n;
	int tries = 0;
	enum err e;
	do {
		tx_begin(c);
		e = end_rule(c, id, user_id, device_id, now, ev, out);
	} while (!tx_done(c, ev, n0, &tries, &e));
	return e;
}

int calls_media_joined(struct calls *c, const char *id, const char *user_id, struct instant now)
{
	int tries = 0, changed;
	enum err e = ERR_OK;
	do {
		tx_begin(c);
		changed = media_joined_rule(c, id, user_id, now);
	} while (!tx_done(c, NULL, 0, &tries, &e));
	return e == ERR_OK && changed;
}

int calls_media_left(struct calls *c, const char *id, const char *user_id, struct instant now)
{
	int tries = 0, changed;
	enum err e = ERR_OK;
	do {
		tx_begin(c);
		changed = media_left_rule(c, id, user_id, now);
	} while (!tx_done(c, NULL, 0, &tries, &e));
	return e == ERR_OK && changed;
}

int calls_room_finished(struct calls *c, const char *id, struct instant now, struct call_events *ev)
{
	size_t n0 = ev->n;
	int tries = 0, changed;
	enum err e = ERR_OK;
	do {
		tx_begin(c);
		changed = room_finished_rule(c, id, now, ev);
	} while (!tx_done(c, ev, n0, &tries, &e));
	return e == ERR_OK && changed;
}

void calls_party_offline(struct calls *c, const char *user_id, struct instant now)
{
	int tries = 0;
	enum err e = ERR_OK;
	do {
		tx_begin(c);
		party_offline_rule(c, user_id, now);
	} while (!tx_done(c, NULL, 0, &tries, &e));
}

void calls_party_online(struct calls *c, const char *user_id)
{
	int tries = 0;
	enum err e = ERR_OK;
	do {
		tx_begin(c);
		party_online_rule(c, user_id);
	} while (!tx_done(c, NULL, 0, &tries, &e));
}

void calls_tick(struct calls *c, struct instant now, struct call_events *ev)
{
	size_t n0 = ev->n;
	int tries = 0;
	enum err e = ERR_OK;
	do {
		tx_begin(c);
		tick_rule(c, now, ev);
	} while (!tx_done(c, ev, n0, &tries, &e));
}

int64_t calls_next_deadline(const struct calls *c)
{
	if (over_cap(c))
		return 0;
	int64_t next = INT64_MAX;
	for (int k = 0; k < DEADLINE__COUNT; k++) {
		int64_t at = OPS(c)->deadline_next(S(c), (enum deadline_kind)k);
		if (at < next)
			next = at;
	}
	return next;
}

/* The retained views of one call during calls_restore. */
struct seen_call {
	const struct call *best; /* the highest revision seen */
	int64_t rev[2];          /* revision on each party's topic; 0: not there */
	int dropped;             /* not restored: its topics are to be cleared */
};

void calls_restore(struct calls *c, const struct calls_seen *seen, size_t n, struct call_events *ev,
		   const char **clear, size_t *n_clear)
{
	*n_clear = 0;
	if (S(c)->shared)
		return; /* the store outlived the process: it is the truth, the topics follow it */
	struct seen_call *views = xcalloc(n ? n : 1, sizeof(*views));
	size_t nviews = 0;
	struct dict by_id; /* call id (borrowed from seen) -> its view */
	dict_init(&by_id);
	*n_clear = 0;

	/* Group the topics by call id. */
	for (size_t i = 0; i < n; i++) {
		const struct call *call = seen[i].call;
		int p = party_of(call, seen[i].user_id);
		if (p < 0 || !call_status_is_live(call->status)) {
			clear[(*n_clear)++] = seen[i].user_id;
			continue;
		}
		struct seen_call *v = dict_get(&by_id, call->id);
		if (!v) {
			v = &views[nviews++];
			v->best = call;
			dict_put(&by_id, call->id, v);
		} else if (call->revision > v->best->revision) {
			v->best = call;
		}
		if (call->revision > v->rev[p])
			v->rev[p] = call->revision;
	}

	for (size_t k = 0; k < nviews; k++) {
		const struct call *best = views[k].best;
		const char *caller = best->party[PARTY_CALLER].id, *receiver = best->party[PARTY_RECEIVER].id;
		int torn = views[k].rev[PARTY_CALLER] != views[k].rev[PARTY_RECEIVER];
		if (!views[k].rev[PARTY_RECEIVER] || OPS(c)->live_of(S(c), caller) ||
		    OPS(c)->live_of(S(c), receiver) || OPS(c)->find(S(c), best->id)) {
			/* Cleared after its END_CALL went out, or in conflict with a call
			 * already restored: the topics that still show it are emptied. */
			views[k].dropped = 1;
			continue;
		}
		struct call *call = xcalloc(1, sizeof(*call));
		call_copy(call, best);
		call->grace_deadline[0] = call->grace_deadline[1] = 0;
		call->media_deadline[0] = call->media_deadline[1] = 0;
		OPS(c)->add(S(c), call);
		if (call->status == CALL_DIALLING)
			add_deadline(c, DEADLINE_RING, call->ring_deadline, call->id, PARTY_CALLER);
		if (torn)
			emit(ev, call->status == CALL_DIALLING ? EVENT_INCOMING_CALL : EVENT_ACCEPT_CALL,
			     call, call->status != CALL_DIALLING);
	}
	for (size_t i = 0; i < n; i++) {
		const struct seen_call *v = dict_get(&by_id, seen[i].call->id);
		if (v && v->dropped && call_status_is_live(seen[i].call->status) &&
		    party_of(seen[i].call, seen[i].user_id) >= 0)
			clear[(*n_clear)++] = seen[i].user_id;
	}
	dict_release(&by_id);
	free(views);
}

size_t calls_history(const struct calls *c, const char *user_id, const char *before_id, size_t limit,
		     struct call *out)
{
	return OPS(c)->history(S(c), user_id, before_id, limit, out);
}

enum err calls_show(struct calls *c, const char *id, struct call_events *ev)
{
	size_t n0 = ev->n;
	int tries = 0;
	enum err e;
	do {
		tx_begin(c);
		struct call *call = OPS(c)->find(S(c), id);
		e = ERR_CALL_NOT_FOUND;
		if (call && call_status_is_live(call->status)) {
			emit(ev, EVENT_INCOMING_CALL, call, 0);
			ev->items[ev->n - 1].to_receiver = 0;
			ev->items[ev->n - 1].topics_only = 1;
			e = ERR_OK;
		}
	} while (!tx_done(c, ev, n0, &tries, &e));
	return e;
}

const struct call *calls_find(const struct calls *c, const char *id)
{
	return OPS(c)->find(S(c), id);
}

const struct call *calls_live_of(const struct calls *c, const char *user_id)
{
	return OPS(c)->live_of(S(c), user_id);
}

int calls_unreachable(const struct calls *c)
{
	return OPS(c)->unreachable && OPS(c)->unreachable(S(c));
}

void calls_each(const struct calls *c, void (*fn)(void *ctx, const struct call *call), void *ctx)
{
	OPS(c)->each(S(c), fn, ctx);
}

size_t calls_count(const struct calls *c)
{
	return OPS(c)->count(S(c));
}

size_t calls_live_count(const struct calls *c)
{
	return OPS(c)->live_count(S(c));
}

/*
 * calls.c - see calls.h.
 *
 * Timers need no heap: every kind of deadline is "event time + a fixed
 * period", so each kind is a FIFO queue in deadline order. Entries are
 * never removed early; when one comes due the call is looked up again and
 * the entry is ignored if the call no longer waits for it (answered,
 * party back, already freed).
 */
#include "calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct deadline_item {
	int64_t deadline;
	char id[CALL_ID_LEN + 1];
	unsigned char party;
};

static void queue_init(struct deadline_queue *q)
{
	q->items = NULL;
	q->head = q->len = q->cap = 0;
}

static void queue_push(struct deadline_queue *q, int64_t deadline, const char *id, enum party party)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct deadline_item *items = xmalloc(cap * sizeof(*items));
		for (size_t i = 0; i < q->len; i++)
			items[i] = q->items[(q->head + i) % q->cap];
		free(q->items);
		q->items = items;
		q->head = 0;
		q->cap = cap;
	}
	struct deadline_item *it = &q->items[(q->head + q->len) % q->cap];
	it->deadline = deadline;
	memcpy(it->id, id, CALL_ID_LEN + 1);
	it->party = (unsigned char)party;
	q->len++;
}

/* The first item due at or before now, removed into *out; 0 when none is due. */
static int queue_pop_due(struct deadline_queue *q, int64_t now, struct deadline_item *out)
{
	if (!q->len || q->items[q->head].deadline > now)
		return 0;
	*out = q->items[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return 1;
}

static int64_t queue_next(const struct deadline_queue *q)
{
	return q->len ? q->items[q->head].deadline : INT64_MAX;
}

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
	ev->items[ev->n++] = (struct call_event){ type, call, to_caller, 1 };
}

static void call_free(struct call *call)
{
	user_info_release(&call->party[PARTY_CALLER]);
	user_info_release(&call->party[PARTY_RECEIVER]);
	free(call->err_msg);
	free(call);
}

void calls_init(struct calls *c, const struct calls_config *cfg)
{
	c->cfg = *cfg;
	dict_init(&c->by_id);
	dict_init(&c->live_by_user);
	queue_init(&c->ring);
	queue_init(&c->grace);
	queue_init(&c->retire);
}

void calls_release(struct calls *c)
{
	struct dict_iter it;
	struct call *call;
	dict_iter_init(&it, &c->by_id);
	while ((call = dict_iter_next(&it)))
		call_free(call);
	dict_release(&c->by_id);
	dict_release(&c->live_by_user);
	free(c->ring.items);
	free(c->grace.items);
	free(c->retire.items);
}

/* Moves a live call to a final status; the parties are free again. */
static void finish(struct calls *c, struct call *call, enum call_status status, struct instant now)
{
	call->status = status;
	call->ended_at = now.wall_ms;
	call->grace_deadline[0] = call->grace_deadline[1] = 0;
	for (int p = 0; p < 2; p++)
		if (dict_get(&c->live_by_user, call->party[p].id) == call)
			dict_del(&c->live_by_user, call->party[p].id);
	queue_push(&c->retire, now.mono_ms + c->cfg.retention_ms, call->id, PARTY_CALLER);
}

enum err calls_start(struct calls *c, const struct user_info *caller, const struct user_info *receiver,
		     const char *id, struct instant now, struct call_events *ev, const struct call **out)
{
	if (strcmp(caller->id, receiver->id) == 0)
		return ERR_SELF_CALL;
	if (dict_get(&c->live_by_user, caller->id))
		return ERR_CALLER_BUSY;
	if (dict_get(&c->live_by_user, receiver->id))
		return ERR_RECEIVER_BUSY;
	if (dict_get(&c->by_id, id))
		return ERR_INTERNAL; /* ids are random: a clash means the caller reused one */

	struct call *call = xcalloc(1, sizeof(*call));
	snprintf(call->id, sizeof(call->id), "%s", id);
	user_info_copy(&call->party[PARTY_CALLER], caller);
	user_info_copy(&call->party[PARTY_RECEIVER], receiver);
	call->status = CALL_DIALLING;
	call->created_at = now.wall_ms;
	dict_put(&c->by_id, call->id, call);
	dict_put(&c->live_by_user, call->party[PARTY_CALLER].id, call);
	dict_put(&c->live_by_user, call->party[PARTY_RECEIVER].id, call);
	queue_push(&c->ring, now.mono_ms + c->cfg.ring_timeout_ms, call->id, PARTY_CALLER);
	emit(ev, EVENT_INCOMING_CALL, call, 0);
	*out = call;
	return ERR_OK;
}

enum err calls_answer(struct calls *c, const char *id, int accept, const char *by_user, struct instant now,
		      struct call_events *ev, const struct call **out)
{
	struct call *call = dict_get(&c->by_id, id);
	if (!call)
		return ERR_CALL_NOT_FOUND;
	if (by_user && strcmp(by_user, call->party[PARTY_RECEIVER].id) != 0)
		return ERR_FORBIDDEN;
	*out = call;
	if (call->status != CALL_DIALLING)
		return ERR_CALL_NOT_RINGING;
	if (accept) {
		call->status = CALL_ONGOING;
		call->answered_at = now.wall_ms;
		emit(ev, EVENT_ACCEPT_CALL, call, 1);
	} else {
		finish(c, call, CALL_DECLINED, now);
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

enum err calls_end(struct calls *c, const char *id, const char *user_id, struct instant now,
		   struct call_events *ev, const struct call **out)
{
	struct call *call = dict_get(&c->by_id, id);
	if (!call)
		return ERR_CALL_NOT_FOUND;
	if (party_of(call, user_id) < 0)
		return ERR_NOT_A_PARTY;
	*out = call;
	if (!call_status_is_live(call->status))
		return ERR_OK;
	finish(c, call, CALL_ENDED, now);
	emit(ev, EVENT_END_CALL, call, 1);
	return ERR_OK;
}

enum err calls_check_in_call(const struct calls *c, const char *id, const char *user_id,
			     const struct call **out)
{
	const struct call *call = dict_get(&c->by_id, id);
	if (!call || call->status != CALL_ONGOING || party_of(call, user_id) < 0)
		return ERR_NOT_IN_CALL;
	*out = call;
	return ERR_OK;
}

void calls_party_offline(struct calls *c, const char *user_id, struct instant now)
{
	struct call *call = dict_get(&c->live_by_user, user_id);
	if (!call)
		return;
	int p = party_of(call, user_id);
	if (call->grace_deadline[p])
		return;
	call->grace_deadline[p] = now.mono_ms + c->cfg.offline_grace_ms;
	queue_push(&c->grace, call->grace_deadline[p], call->id, (enum party)p);
}

void calls_party_online(struct calls *c, const char *user_id)
{
	struct call *call = dict_get(&c->live_by_user, user_id);
	if (call)
		call->grace_deadline[party_of(call, user_id)] = 0;
}

static int over_cap(const struct calls *c)
{
	return c->cfg.retention_max && calls_count(c) - calls_live_count(c) > c->cfg.retention_max;
}

void calls_tick(struct calls *c, struct instant now, struct call_events *ev)
{
	struct deadline_item it;
	struct call *call;

	/* Retention first: a call finished by this tick must not be freed by it.
	 * Every finished call has one retire entry, so the queue's head is the
	 * oldest finished call: the cap forgets from there. */
	while (queue_pop_due(&c->retire, over_cap(c) ? INT64_MAX : now.mono_ms, &it)) {
		call = dict_get(&c->by_id, it.id);
		if (call && !call_status_is_live(call->status)) {
			dict_del(&c->by_id, call->id);
			call_free(call);
		}
	}
	while (queue_pop_due(&c->ring, now.mono_ms, &it)) {
		call = dict_get(&c->by_id, it.id);
		if (call && call->status == CALL_DIALLING) {
			finish(c, call, CALL_MISSED, now);
			emit(ev, EVENT_END_CALL, call, 1);
		}
	}
	while (queue_pop_due(&c->grace, now.mono_ms, &it)) {
		call = dict_get(&c->by_id, it.id);
		if (!call || !call_status_is_live(call->status))
			continue;
		int64_t deadline = call->grace_deadline[it.party];
		if (!deadline || deadline > now.mono_ms)
			continue; /* came back (and maybe left again: a later entry waits) */
		struct sbuf msg;
		sbuf_init(&msg, 64);
		sbuf_addf(&msg, "%s went offline", call->party[it.party].name);
		call->err_msg = sbuf_detach(&msg, NULL);
		finish(c, call, CALL_ERROR, now);
		emit(ev, EVENT_END_CALL, call, 1);
	}
}

int64_t calls_next_deadline(const struct calls *c)
{
	if (over_cap(c))
		return 0;
	int64_t next = queue_next(&c->ring);
	int64_t g = queue_next(&c->grace), r = queue_next(&c->retire);
	if (g < next)
		next = g;
	if (r < next)
		next = r;
	return next;
}

const struct call *calls_find(const struct calls *c, const char *id)
{
	return dict_get(&c->by_id, id);
}

const struct call *calls_live_of(const struct calls *c, const char *user_id)
{
	return dict_get(&c->live_by_user, user_id);
}

size_t calls_count(const struct calls *c)
{
	return c->by_id.count;
}

size_t calls_live_count(const struct calls *c)
{
	return c->live_by_user.count / 2;
}

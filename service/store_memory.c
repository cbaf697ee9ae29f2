/*
 * store_memory.c - the in-memory engine of store.h, the default: calls by
 * id, busy lines by user id, one deadline queue per kind. Used through the
 * store interface by calls.c; core serialises every use with its lock.
 *
 * Deadlines of one kind almost always arrive in order ("now + a fixed
 * period"), so each queue is a ring buffer kept sorted by inserting from
 * the tail: O(1) in the usual case, and still right for the deadlines a
 * restart brings back out of order.
 *
 * Each user's history is a ring of copies of their finished calls, oldest
 * at the head; it lives only in memory and is lost on restart.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "util.h"

struct deadline_queue {
	struct deadline *items;
	size_t head, len, cap;
};

struct history {
	char *user_id;      /* owned; the dict's key */
	struct call *items; /* ring of cap copies */
	size_t head, len, cap;
};

struct store_memory {
	struct store base;
	struct dict history;      /* user id -> struct history (owned) */
	struct dict by_id;        /* id -> struct call (owned) */
	struct dict live_by_user; /* user id -> live struct call (borrowed) */
	struct deadline_queue q[DEADLINE__COUNT];
};

#define MEM(s) ((struct store_memory *)(s))

static struct deadline *queue_at(struct deadline_queue *q, size_t i)
{
	return &q->items[(q->head + i) % q->cap];
}

static void queue_push(struct deadline_queue *q, const struct deadline *d)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct deadline *items = xmalloc(cap * sizeof(*items));
		for (size_t i = 0; i < q->len; i++)
			items[i] = *queue_at(q, i);
		free(q->items);
		q->items = items;
		q->head = 0;
		q->cap = cap;
	}
	size_t i = q->len++;
	while (i > 0 && queue_at(q, i - 1)->at > d->at) {
		*queue_at(q, i) = *queue_at(q, i - 1);
		i--;
	}
	*queue_at(q, i) = *d;
}

static struct call *mem_find(struct store *s, const char *id)
{
	return dict_get(&MEM(s)->by_id, id);
}

static struct call *mem_live_of(struct store *s, const char *user_id)
{
	return dict_get(&MEM(s)->live_by_user, user_id);
}

static void mem_save(struct store *s, struct call *call)
{
	struct store_memory *m = MEM(s);
	for (int p = 0; p < 2; p++) {
		if (call_status_is_live(call->status))
			dict_put(&m->live_by_user, call->party[p].id, call);
		else if (dict_get(&m->live_by_user, call->party[p].id) == call)
			dict_del(&m->live_by_user, call->party[p].id);
	}
}

static void mem_add(struct store *s, struct call *call)
{
	dict_put(&MEM(s)->by_id, call->id, call);
	mem_save(s, call);
}

static void mem_forget(struct store *s, const char *id)
{
	struct store_memory *m = MEM(s);
	struct call *call = dict_get(&m->by_id, id);
	if (!call)
		return;
	for (int p = 0; p < 2; p++)
		if (dict_get(&m->live_by_user, call->party[p].id) == call)
			dict_del(&m->live_by_user, call->party[p].id);
	dict_del(&m->by_id, id);
	call_free(call);
}

static void mem_deadline_add(struct store *s, enum deadline_kind kind, const struct deadline *d)
{
	queue_push(&MEM(s)->q[kind], d);
}

static int mem_deadline_pop_due(struct store *s, enum deadline_kind kind, int64_t now, struct deadline *out)
{
	struct deadline_queue *q = &MEM(s)->q[kind];
	if (!q->len || q->items[q->head].at > now)
		return 0;
	*out = q->items[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return 1;
}

static int64_t mem_deadline_next(const struct store *s, enum deadline_kind kind)
{
	const struct deadline_queue *q = &MEM(s)->q[kind];
	return q->len ? q->items[q->head].at : INT64_MAX;
}

static size_t mem_count(const struct store *s)
{
	return MEM(s)->by_id.count;
}

static size_t mem_live_count(const struct store *s)
{
	return MEM(s)->live_by_user.count / 2;
}

static void mem_each(const struct store *s, void (*fn)(void *ctx, const struct call *call), void *ctx)
{
	struct dict_iter it;
	const struct call *call;
	dict_iter_init(&it, &MEM(s)->by_id);
	while ((call = dict_iter_next(&it)))
		fn(ctx, call);
}

static void history_free(struct history *h)
{
	for (size_t i = 0; i < h->len; i++)
		call_release(&h->items[(h->head + i) % h->cap]);
	free(h->items);
	free(h->user_id);
	free(h);
}

static void mem_history_add(struct store *s, const struct call *call, size_t max)
{
	struct store_memory *m = MEM(s);
	for (int p = 0; p < 2; p++) {
		struct history *h = dict_get(&m->history, call->party[p].id);
		if (!h) {
			h = xcalloc(1, sizeof(*h));
			h->user_id = xstrdup(call->party[p].id);
			dict_put(&m->history, h->user_id, h);
		}
		if (h->cap != max) { /* first use: the ring takes its final size at once */
			struct call *items = xcalloc(max, sizeof(*items));
			size_t keep = h->len < max ? h->len : max;
			for (size_t i = 0; i < h->len; i++) {
				struct call *old = &h->items[(h->head + i) % h->cap];
				if (i >= h->len - keep)
					items[i - (h->len - keep)] = *old;
				else
					call_release(old);
			}
			free(h->items);
			h->items = items;
			h->head = 0;
			h->len = keep;
			h->cap = max;
		}
		struct call *slot;
		if (h->len == h->cap) {
			slot = &h->items[h->head];
			call_release(slot);
			h->head = (h->head + 1) % h->cap;
		} else {
			slot = &h->items[(h->head + h->len++) % h->cap];
		}
		call_copy(slot, call);
	}
}

static size_t mem_history(const struct store *s, const char *user_id, const char *before_id, size_t limit,
			  struct call *out)
{
	const struct history *h = dict_get(&MEM(s)->history, user_id);
	if (!h)
		return 0;
	size_t from = h->len; /* newest first: from index len-1 down */
	if (before_id) {
		for (from = 0; from < h->len; from++)
			if (strcmp(h->items[(h->head + from) % h->cap].id, before_id) == 0)
				break;
		if (from == h->len)
			return 0;
	}
	size_t n = 0;
	while (from > 0 && n < limit) {
		from--;
		call_copy(&out[n++], &h->items[(h->head + from) % h->cap]);
	}
	return n;
}

static void mem_free(struct store *s)
{
	struct store_memory *m = MEM(s);
	struct dict_iter it;
	struct call *call;
	struct history *h;
	dict_iter_init(&it, &m->history);
	while ((h = dict_iter_next(&it)))
		history_free(h);
	dict_release(&m->history);
	dict_iter_init(&it, &m->by_id);
	while ((call = dict_iter_next(&it)))
		call_free(call);
	dict_release(&m->by_id);
	dict_release(&m->live_by_user);
	for (int k = 0; k < DEADLINE__COUNT; k++)
		free(m->q[k].items);
	free(m);
}

static const struct store_ops memory_ops = {
	mem_find,
	mem_live_of,
	mem_add,
	mem_save,
	mem_forget,
	mem_deadline_add,
	mem_deadline_pop_due,
	mem_deadline_next,
	mem_count,
	mem_live_count,
	mem_each,
	mem_free,
	NULL, /* begin: core's lock makes every transition atomic */
	NULL, /* commit */
	NULL, /* rate_take: core's own limiter */
	mem_history_add,
	mem_history,
	NULL, /* outbox_put: nothing shared, core publishes straight to the broker */
	NULL, /* outbox_lead */
	NULL, /* outbox_resign */
	NULL, /* outbox_read */
	NULL, /* outbox_trim */
	NULL, /* prefetch: everything is at hand */
	NULL, /* seen_once: core's memory is the only one */
	NULL, /* handle: one, under core's lock */
	NULL, /* unreachable: memory always answers */
};

struct store *store_memory_new(void)
{
	struct store_memory *m = xcalloc(1, sizeof(*m));
	m->base.ops = &memory_ops;
	dict_init(&m->by_id);
	dict_init(&m->live_by_user);
	dict_init(&m->history);
	return &m->base;
}

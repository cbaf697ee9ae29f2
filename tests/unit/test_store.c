/*
 * test_store.c - the call rules against the store interface. The same
 * scenarios run on the memory engine and on a copying engine built here,
 * which hands out private copies and writes them back only in save/add,
 * as an engine shared between processes (Redis) would: the rules must
 * give the same results on both, so they neither rely on editing the
 * stored call in place nor skip a save. The memory engine's own queue
 * order (sorted insertion) is checked too.
 *
 * Given a Redis (CALLSIGNAL_TEST_REDIS_URL, set by run_with_redis.py for
 * the unit.store_redis entry) the scenarios run on the Redis engine as
 * well, and two engines on one Redis play two service instances racing on
 * the same users and deadlines; each test uses keys of its own.
 */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "calls.h"
#include "check.h"
#include "store.h"
#include "util.h"

#define RING  30000
#define GRACE 15000

/* --- the copying engine ------------------------------------------------------------------------ */

struct copy_store {
	struct store base;
	struct store *inner;
	struct call **loaned; /* copies handed out; freed with the engine */
	size_t n, cap;
	size_t saves;
};

#define CP(s) ((struct copy_store *)(s))

static struct call *loan(struct copy_store *s, const struct call *stored)
{
	if (!stored)
		return NULL;
	struct call *copy = xcalloc(1, sizeof(*copy));
	call_copy(copy, stored);
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->loaned = xrealloc(s->loaned, s->cap * sizeof(*s->loaned));
	}
	s->loaned[s->n++] = copy;
	return copy;
}

static struct call *cp_find(struct store *s, const char *id)
{
	return loan(CP(s), CP(s)->inner->ops->find(CP(s)->inner, id));
}

static struct call *cp_live_of(struct store *s, const char *user_id)
{
	return loan(CP(s), CP(s)->inner->ops->live_of(CP(s)->inner, user_id));
}

static void cp_save(struct store *s, struct call *call)
{
	struct call *stored = CP(s)->inner->ops->find(CP(s)->inner, call->id);
	CHECK(stored != NULL);
	/* Parties never change after the start; everything else is written back. */
	free(stored->err_msg);
	stored->err_msg = call->err_msg ? xstrdup(call->err_msg) : NULL;
	stored->status = call->status;
	stored->answered_at = call->answered_at;
	stored->ended_at = call->ended_at;
	stored->ring_deadline = call->ring_deadline;
	stored->revision = call->revision;
	stored->grace_deadline[0] = call->grace_deadline[0];
	stored->grace_deadline[1] = call->grace_deadline[1];
	stored->end_reason = call->end_reason;
	actor_set(&stored->answered_by, call->answered_by.user_id, call->answered_by.device_id);
	actor_set(&stored->ended_by, call->ended_by.user_id, call->ended_by.device_id);
	for (int p = 0; p < 2; p++) {
		stored->media_joined_at[p] = call->media_joined_at[p];
		stored->media_deadline[p] = call->media_deadline[p];
	}
	CP(s)->inner->ops->save(CP(s)->inner, stored);
	CP(s)->saves++;
}

static void cp_forget(struct store *s, const char *id)
{
	CP(s)->inner->ops->forget(CP(s)->inner, id);
}

static void cp_deadline_add(struct store *s, enum deadline_kind k, const struct deadline *d)
{
	CP(s)->inner->ops->deadline_add(CP(s)->inner, k, d);
}

static int cp_deadline_pop_due(struct store *s, enum deadline_kind k, int64_t now, struct deadline *out)
{
	return CP(s)->inner->ops->deadline_pop_due(CP(s)->inner, k, now, out);
}

static int64_t cp_deadline_next(const struct store *s, enum deadline_kind k)
{
	return CP(s)->inner->ops->deadline_next(CP(s)->inner, k);
}

static size_t cp_count(const struct store *s)
{
	return CP(s)->inner->ops->count(CP(s)->inner);
}

static size_t cp_live_count(const struct store *s)
{
	return CP(s)->inner->ops->live_count(CP(s)->inner);
}

static void cp_each(const struct store *s, void (*fn)(void *ctx, const struct call *call), void *ctx)
{
	CP(s)->inner->ops->each(CP(s)->inner, fn, ctx);
}

static void cp_free(struct store *s)
{
	for (size_t i = 0; i < CP(s)->n; i++)
		call_free(CP(s)->loaned[i]);
	free(CP(s)->loaned);
	CP(s)->inner->ops->free(CP(s)->inner);
	free(s);
}

/* add steals the call: the engine stores a copy and keeps the original alive for the caller. */
static void cp_add(struct store *s, struct call *call)
{
	struct call *stored = xcalloc(1, sizeof(*stored));
	call_copy(stored, call);
	CP(s)->inner->ops->add(CP(s)->inner, stored);
	struct copy_store *cs = CP(s);
	if (cs->n == cs->cap) {
		cs->cap = cs->cap ? cs->cap * 2 : 16;
		cs->loaned = xrealloc(cs->loaned, cs->cap * sizeof(*cs->loaned));
	}
	cs->loaned[cs->n++] = call;
}

static void cp_history_add(struct store *s, const struct call *call, size_t max)
{
	CP(s)->inner->ops->history_add(CP(s)->inner, call, max);
}

static size_t cp_history(const struct store *s, const char *user_id, const char *before_id, size_t limit,
			 struct call *out)
{
	return CP(s)->inner->ops->history(CP(s)->inner, user_id, before_id, limit, out);
}

static const struct store_ops copy_ops = {
	cp_find,
	cp_live_of,
	cp_add,
	cp_save,
	cp_forget,
	cp_deadline_add,
	cp_deadline_pop_due,
	cp_deadline_next,
	cp_count,
	cp_live_count,
	cp_each,
	cp_free,
	NULL,
	NULL,
	NULL,
	cp_history_add,
	cp_history,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
};

static struct store *copy_store_new(void)
{
	struct copy_store *s = xcalloc(1, sizeof(*s));
	s->base.ops = &copy_ops;
	s->inner = store_memory_new();
	return &s->base;
}

/* --- the scenarios ------------------------------------------------------------------------------ */

static struct user_info alice = { "alice", "Alice", "" };
static struct user_info bob = { "bob", "Bob", "" };
static struct user_info carol = { "carol", "Carol", "" };

static struct instant at(int64_t ms)
{
	return (struct instant){ 1700000000000 + ms };
}

/* What a scenario ends with, compared across engines. */
struct outcome {
	char statuses[64];
	int64_t revisions;
	size_t events, live, count;
	enum err errs[8];
};

static struct outcome scenario(struct store *store)
{
	struct calls c;
	struct call_events ev;
	struct calls_config cfg = { RING, GRACE, 600000, 0, 0, 10 };
	struct outcome o;
	const struct call *call;
	memset(&o, 0, sizeof(o));
	calls_init(&c, &cfg, store);
	call_events_init(&ev);

	o.errs[0] = calls_start(&c, &alice, &bob, "call-1", at(0), &ev, &call);
	o.errs[1] = calls_start(&c, &carol, &bob, "call-2", at(1), &ev, &call); /* bob busy */
	o.errs[2] = calls_answer(&c, "call-1", 1, "bob", at(2), &ev, &call);
	o.errs[3] = calls_answer(&c, "call-1", 1, "bob", at(3), &ev, &call); /* not ringing */
	calls_party_offline(&c, "alice", at(4));
	calls_party_online(&c, "alice");
	calls_party_offline(&c, "bob", at(5));
	o.errs[4] = calls_start(&c, &carol, &alice, "call-3", at(6), &ev, &call); /* alice busy */
	calls_tick(&c, at(5 + GRACE), &ev); /* bob's grace ends call-1 */
	o.errs[5] = calls_start(&c, &carol, &alice, "call-4", at(GRACE + 10), &ev, &call);
	calls_tick(&c, at(GRACE + 10 + RING), &ev); /* call-4 missed */
	o.errs[6] = calls_start(&c, &alice, &carol, "call-5", at(GRACE + RING + 20), &ev, &call);
	o.errs[7] = calls_end(&c, "call-5", "carol", at(GRACE + RING + 30), &ev, &call);

	const char *ids[] = { "call-1", "call-4", "call-5" };
	for (int i = 0; i < 3; i++) {
		const struct call *k = calls_find(&c, ids[i]);
		snprintf(o.statuses + strlen(o.statuses), sizeof(o.statuses) - strlen(o.statuses), "%s ",
			 k ? call_status_name(k->status) : "-");
		o.revisions = o.revisions * 10 + (k ? k->revision : 0);
	}
	o.events = ev.n;
	o.live = calls_live_count(&c);
	o.count = calls_count(&c);
	call_events_release(&ev);
	calls_release(&c);
	return o;
}

static void rules_give_the_same_results_on_a_copying_engine(void)
{
	struct outcome mem = scenario(store_memory_new());
	struct outcome copy = scenario(copy_store_new());
	CHECK_STR(mem.statuses, "ERROR MISSED ENDED ");
	CHECK(mem.revisions == 322);
	CHECK(mem.errs[0] == ERR_OK && mem.errs[1] == ERR_RECEIVER_BUSY && mem.errs[2] == ERR_OK);
	CHECK(mem.errs[3] == ERR_CALL_NOT_RINGING && mem.errs[4] == ERR_RECEIVER_BUSY);
	CHECK(mem.errs[5] == ERR_OK && mem.errs[6] == ERR_OK && mem.errs[7] == ERR_OK);
	CHECK(mem.live == 0 && mem.count == 5); /* and the missed-call records of call-2 and call-3 */
	CHECK_STR(copy.statuses, mem.statuses);
	CHECK(copy.revisions == mem.revisions && copy.events == mem.events);
	CHECK(copy.live == mem.live && copy.count == mem.count);
	CHECK(memcmp(copy.errs, mem.errs, sizeof(mem.errs)) == 0);
}

static void restore_works_through_a_copying_engine(void)
{
	struct calls c;
	struct call_events ev;
	struct calls_config cfg = { RING, GRACE, 600000, 0, 0, 10 };
	struct call seen_call = { 0 };
	snprintf(seen_call.id, sizeof(seen_call.id), "call-1");
	seen_call.party[PARTY_CALLER] = alice;
	seen_call.party[PARTY_RECEIVER] = bob;
	seen_call.status = CALL_ONGOING;
	seen_call.created_at = at(0).wall_ms;
	seen_call.revision = 2;
	struct calls_seen seen[] = { { "alice", &seen_call }, { "bob", &seen_call } };
	const char *clear[2];
	size_t n_clear;
	calls_init(&c, &cfg, copy_store_new());
	call_events_init(&ev);
	calls_restore(&c, seen, 2, &ev, clear, &n_clear);
	const struct call *call;
	CHECK(calls_live_count(&c) == 1 && n_clear == 0 && ev.n == 0);
	CHECK(calls_end(&c, "call-1", "bob", at(1), &ev, &call) == ERR_OK);
	CHECK(calls_find(&c, "call-1")->status == CALL_ENDED && calls_find(&c, "call-1")->revision == 3);
	CHECK(calls_live_count(&c) == 0);
	call_events_release(&ev);
	calls_release(&c);
}

static void memory_deadlines_come_out_in_time_order_whatever_the_insert_order(void)
{
	struct store *s = store_memory_new();
	int64_t order[] = { 50, 10, 40, 10, 30, 5, 60 };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		struct deadline d = { order[i], "x", PARTY_CALLER };
		s->ops->deadline_add(s, DEADLINE_RING, &d);
	}
	CHECK(s->ops->deadline_next(s, DEADLINE_RING) == 5);
	CHECK(s->ops->deadline_next(s, DEADLINE_GRACE) == INT64_MAX);
	struct deadline out;
	int64_t last = 0;
	int n = 0;
	while (s->ops->deadline_pop_due(s, DEADLINE_RING, 45, &out)) {
		CHECK(out.at >= last && out.at <= 45);
		last = out.at;
		n++;
	}
	CHECK(n == 5 && s->ops->deadline_next(s, DEADLINE_RING) == 50);
	s->ops->free(s);
}

/* What the newer rules leave behind: reasons, who acted, media grace, crossed calls, busy records. */
struct outcome2 {
	char summary[512];
	char history[1024]; /* bob's history as calls_history gives it back */
	size_t events, live, count;
};

/* Appends every field of a history entry that a store engine must keep. */
static void describe_entry(char *buf, size_t size, const struct call *k)
{
	size_t n = strlen(buf);
	snprintf(
	    buf + n, size - n, "%s:%s/%s/%s/%lld/%s>%s(%s,%s)/%s@%s/%s@%s/%lld/%lld/%lld/%lld/%lld/%lld ",
	    k->id, call_status_name(k->status), k->end_reason ? end_reason_name(k->end_reason) : "-",
	    k->err_msg ? k->err_msg : "-", (long long)k->revision, k->party[PARTY_CALLER].id,
	    k->party[PARTY_RECEIVER].id, k->party[PARTY_RECEIVER].name ? k->party[PARTY_RECEIVER].name : "-",
	    k->party[PARTY_RECEIVER].location ? k->party[PARTY_RECEIVER].location : "-",
	    k->answered_by.user_id ? k->answered_by.user_id : "-",
	    k->answered_by.device_id ? k->answered_by.device_id : "-",
	    k->ended_by.user_id ? k->ended_by.user_id : "-",
	    k->ended_by.device_id ? k->ended_by.device_id : "-", (long long)(k->created_at - at(0).wall_ms),
	    (long long)(k->answered_at ? k->answered_at - at(0).wall_ms : -1),
	    (long long)(k->ended_at - at(0).wall_ms),
	    (long long)(k->media_joined_at[0] ? k->media_joined_at[0] - at(0).wall_ms : -1),
	    (long long)(k->media_joined_at[1] ? k->media_joined_at[1] - at(0).wall_ms : -1),
	    (long long)(k->ring_deadline + k->grace_deadline[0] + k->grace_deadline[1] +
			k->media_deadline[0] + k->media_deadline[1]));
}

static void describe(struct outcome2 *o, const struct calls *c, const char *id)
{
	const struct call *k = calls_find(c, id);
	size_t n = strlen(o->summary);
	if (!k) {
		snprintf(o->summary + n, sizeof(o->summary) - n, "%s:- ", id);
		return;
	}
	snprintf(o->summary + n, sizeof(o->summary) - n, "%s:%s/%s/%lld/%s/%s/%s/%lld ", id,
		 call_status_name(k->status), k->end_reason ? end_reason_name(k->end_reason) : "-",
		 (long long)k->revision, k->answered_by.user_id ? k->answered_by.user_id : "-",
		 k->answered_by.device_id ? k->answered_by.device_id : "-",
		 k->ended_by.user_id ? k->ended_by.user_id : "-",
		 (long long)(k->media_joined_at[PARTY_RECEIVER]
				 ? k->media_joined_at[PARTY_RECEIVER] - at(0).wall_ms
				 : 0));
}

static struct outcome2 scenario2(struct store *store)
{
	struct calls c;
	struct call_events ev;
	struct calls_config cfg = { RING, GRACE, 600000, 0, 0, 10 };
	struct outcome2 o;
	const struct call *call;
	memset(&o, 0, sizeof(o));
	calls_init(&c, &cfg, store);
	call_events_init(&ev);

	calls_start(&c, &bob, &alice, "call-1", at(0), &ev, &call);
	calls_start(&c, &alice, &bob, "call-x", at(1), &ev, &call); /* crossed: accepts call-1 */
	calls_start(&c, &carol, &bob, "call-2", at(2), &ev, &call); /* bob busy: a record */
	calls_media_joined(&c, "call-1", "alice", at(3));
	calls_media_left(&c, "call-1", "alice", at(4));
	calls_media_joined(&c, "call-1", "alice", at(5)); /* back within the grace */
	calls_tick(&c, at(4 + GRACE), &ev);
	calls_media_left(&c, "call-1", "bob", at(GRACE + 10));
	calls_tick(&c, at(2 * GRACE + 10), &ev); /* bob's media gone: MEDIA_ENDED */
	calls_start(&c, &alice, &carol, "call-3", at(2 * GRACE + 20), &ev, &call);
	calls_answer_on(&c, "call-3", 1, "carol", "carol.tab", at(2 * GRACE + 21), &ev, &call);
	calls_room_finished(&c, "call-3", at(2 * GRACE + 22), &ev);
	calls_start(&c, &carol, &bob, "call-4", at(2 * GRACE + 30), &ev, &call);
	calls_end_on(&c, "call-4", "bob", "bob.phone", at(2 * GRACE + 31), &ev, &call);

	const char *ids[] = { "call-1", "call-x", "call-2", "call-3", "call-4" };
	for (int i = 0; i < 5; i++)
		describe(&o, &c, ids[i]);
	struct call hist[10] = { 0 };
	size_t nh = calls_history(&c, "bob", NULL, 10, hist);
	for (size_t i = 0; i < nh; i++) {
		describe_entry(o.history, sizeof(o.history), &hist[i]);
		call_release(&hist[i]);
	}
	o.events = ev.n;
	o.live = calls_live_count(&c);
	o.count = calls_count(&c);
	call_events_release(&ev);
	calls_release(&c);
	return o;
}

static void newer_rules_give_the_same_results_on_a_copying_engine(void)
{
	struct outcome2 mem = scenario2(store_memory_new());
	struct outcome2 copy = scenario2(copy_store_new());
	CHECK_STR(mem.summary, "call-1:ENDED/MEDIA_ENDED/3/alice/-/bob/5 call-x:- "
			       "call-2:MISSED/BUSY/1/-/-/-/0 call-3:ENDED/MEDIA_ENDED/3/carol/carol.tab/-/0 "
			       "call-4:ENDED/DECLINED/2/-/-/bob/0 ");
	CHECK(mem.events == 9 && mem.live == 0 && mem.count == 4);
	CHECK_STR(copy.summary, mem.summary);
	CHECK_STR(copy.history, mem.history);
	CHECK(copy.events == mem.events && copy.live == mem.live && copy.count == mem.count);
}

/* --- the Redis engine -------------------------------------------------------------------------- */

static const char *redis_url;
static char redis_prefix[64];

/* Starts a new set of keys: the engines made until the next call share it. */
static void redis_new_keys(void)
{
	static int seq;
	snprintf(redis_prefix, sizeof(redis_prefix), "test-%d-%d:", (int)getpid(), ++seq);
}

static struct store *redis_engine(void)
{
	struct store *s = store_redis_new(redis_url, redis_prefix);
	CHECK(s != NULL);
	if (!s)
		exit(1);
	return s;
}

static void rules_give_the_same_results_on_redis(void)
{
	redis_new_keys();
	struct outcome mem = scenario(store_memory_new());
	struct outcome red = scenario(redis_engine());
	CHECK_STR(red.statuses, mem.statuses);
	CHECK(red.revisions == mem.revisions && red.events == mem.events);
	CHECK(red.live == mem.live && red.count == mem.count);
	CHECK(memcmp(red.errs, mem.errs, sizeof(mem.errs)) == 0);
}

static void newer_rules_give_the_same_results_on_redis(void)
{
	redis_new_keys();
	struct outcome2 mem = scenario2(store_memory_new());
	struct outcome2 red = scenario2(redis_engine());
	CHECK_STR(red.summary, mem.summary);
	CHECK_STR(red.history, mem.history);
	CHECK(strstr(mem.history, "call-4:") && strstr(mem.history, "call-2:") &&
	      strstr(mem.history, "call-1:"));
	CHECK(red.events == mem.events && red.live == mem.live && red.count == mem.count);
}

static struct calls_config test_cfg = { RING, GRACE, 600000, 0, 0, 10 };

static void two_instances_starting_calls_to_one_receiver_ring_it_once(void)
{
	redis_new_keys();
	struct calls c1, c2;
	struct call_events ev;
	const struct call *call;
	calls_init(&c1, &test_cfg, redis_engine());
	calls_init(&c2, &test_cfg, redis_engine());
	call_events_init(&ev);
	struct store *s1 = c1.store;

	/* Instance 1 is half-way through its start of carol -> bob ... */
	s1->ops->begin(s1);
	CHECK(s1->ops->live_of(s1, "carol") == NULL && s1->ops->live_of(s1, "bob") == NULL);
	struct call *mine = xcalloc(1, sizeof(*mine));
	snprintf(mine->id, sizeof(mine->id), "call-c");
	user_info_copy(&mine->party[PARTY_CALLER], &carol);
	user_info_copy(&mine->party[PARTY_RECEIVER], &bob);
	mine->status = CALL_DIALLING;
	mine->revision = 1;
	s1->ops->add(s1, mine);
	/* ... when instance 2 starts alice -> bob and commits first. */
	CHECK(calls_start(&c2, &alice, &bob, "call-a", at(0), &ev, &call) == ERR_OK);
	CHECK(s1->ops->commit(s1) == STORE_CONFLICT);
	CHECK(calls_find(&c1, "call-c") == NULL);
	/* Run again through the rules, instance 1 sees bob busy. */
	CHECK(calls_start(&c1, &carol, &bob, "call-c", at(1), &ev, &call) == ERR_RECEIVER_BUSY);
	CHECK(calls_live_count(&c1) == 1 && ev.n == 2); /* one ring, and bob's missed-call record */
	CHECK(ev.items[0].type == EVENT_INCOMING_CALL && strcmp(ev.items[0].call->id, "call-a") == 0);
	CHECK(ev.items[1].type == EVENT_END_CALL && ev.items[1].call->end_reason == END_BUSY);
	CHECK_STR(calls_live_of(&c1, "bob")->id, "call-a");
	call_events_release(&ev);
	calls_release(&c1);
	calls_release(&c2);
}

static size_t count_events(const struct call_events *ev, enum event_type type)
{
	size_t n = 0;
	for (size_t i = 0; i < ev->n; i++)
		n += ev->items[i].type == type;
	return n;
}

static void a_ring_timeout_fires_once_when_two_instances_race_for_it(void)
{
	redis_new_keys();
	struct calls c1, c2;
	struct call_events ev1, ev2;
	const struct call *call;
	calls_init(&c1, &test_cfg, redis_engine());
	calls_init(&c2, &test_cfg, redis_engine());
	call_events_init(&ev1);
	call_events_init(&ev2);
	struct store *s1 = c1.store;
	CHECK(calls_start(&c1, &alice, &bob, "call-1", at(0), &ev1, &call) == ERR_OK);
	ev1.n = 0;

	/* Instance 1 takes the due deadline and loads the call ... */
	struct deadline d;
	s1->ops->begin(s1);
	CHECK(s1->ops->deadline_pop_due(s1, DEADLINE_RING, at(RING).wall_ms, &d) == 1);
	CHECK_STR(d.id, "call-1");
	struct call *loaded = s1->ops->find(s1, "call-1");
	CHECK(loaded && loaded->status == CALL_DIALLING);
	/* ... instance 2 fires it meanwhile ... */
	calls_tick(&c2, at(RING), &ev2);
	CHECK(count_events(&ev2, EVENT_END_CALL) == 1);
	/* ... so instance 1's MISSED does not commit, and its rerun finds nothing to do. */
	loaded->status = CALL_MISSED;
	loaded->revision++;
	s1->ops->save(s1, loaded);
	CHECK(s1->ops->commit(s1) == STORE_CONFLICT);
	calls_tick(&c1, at(RING + 1), &ev1);
	CHECK(ev1.n == 0);
	CHECK(calls_find(&c1, "call-1")->status == CALL_MISSED && calls_find(&c1, "call-1")->revision == 2);
	CHECK(s1->ops->deadline_next(s1, DEADLINE_RING) > at(RING + 1).wall_ms);
	call_events_release(&ev1);
	call_events_release(&ev2);
	calls_release(&c1);
	calls_release(&c2);
}

static void a_deadline_taken_by_an_instance_that_dies_fires_on_another(void)
{
	redis_new_keys();
	struct calls c2;
	struct call_events ev;
	const struct call *call;
	calls_init(&c2, &test_cfg, redis_engine());
	call_events_init(&ev);
	CHECK(calls_start(&c2, &alice, &bob, "call-1", at(0), &ev, &call) == ERR_OK);
	ev.n = 0;
	/* Instance 1 takes the deadline and dies before its commit. */
	struct store *s1 = redis_engine();
	struct deadline d;
	s1->ops->begin(s1);
	CHECK(s1->ops->deadline_pop_due(s1, DEADLINE_RING, at(RING).wall_ms, &d) == 1);
	s1->ops->free(s1);
	calls_tick(&c2, at(RING), &ev);
	CHECK(count_events(&ev, EVENT_END_CALL) == 1 && ev.n == 1);
	CHECK(calls_find(&c2, "call-1")->status == CALL_MISSED);
	call_events_release(&ev);
	calls_release(&c2);
}

/* --- the outbox (outbox.c drives these; here the engine's side) -------------------------------- */

struct read_log {
	size_t n;
	char topics[8][32];
	int retained[8];
	char last_id[STORE_OUTBOX_ID_MAX];
};

static void log_entry(void *ctx, const char *id, const char *topic, const char *payload, size_t len,
		      int retained)
{
	struct read_log *l = ctx;
	(void)payload;
	(void)len;
	if (l->n < 8) {
		snprintf(l->topics[l->n], sizeof(l->topics[0]), "%s", topic);
		l->retained[l->n] = retained;
	}
	snprintf(l->last_id, sizeof(l->last_id), "%s", id);
	l->n++;
}

static void outbox_messages_exist_only_with_their_transition_in_order(void)
{
	redis_new_keys();
	struct store *s = redis_engine(), *reader = redis_engine(), *racer = redis_engine();
	/* A transition that commits: its messages are there, in order. */
	s->ops->begin(s);
	s->ops->outbox_put(s, "users/a/call", "{}", 2, 1);
	s->ops->outbox_put(s, "users/a/events", "{\"x\":1}", 7, 0);
	CHECK(s->ops->commit(s) == STORE_COMMITTED);
	/* A transition that loses a race (its watched call changed): none of its messages. */
	s->ops->begin(s);
	CHECK(s->ops->find(s, "call-9") == NULL); /* watches call-9 */
	struct call *other = xcalloc(1, sizeof(*other));
	snprintf(other->id, sizeof(other->id), "call-9");
	user_info_copy(&other->party[PARTY_CALLER], &carol);
	user_info_copy(&other->party[PARTY_RECEIVER], &bob);
	other->status = CALL_DIALLING;
	other->revision = 1;
	racer->ops->begin(racer);
	racer->ops->add(racer, other);
	CHECK(racer->ops->commit(racer) == STORE_COMMITTED);
	s->ops->outbox_put(s, "users/lost/events", "{}", 2, 0);
	CHECK(s->ops->commit(s) == STORE_CONFLICT);
	/* The next one's follows the first. */
	s->ops->begin(s);
	s->ops->outbox_put(s, "users/b/events", "{}", 2, 0);
	CHECK(s->ops->commit(s) == STORE_COMMITTED);

	char cursor[STORE_OUTBOX_ID_MAX] = "0-0";
	struct read_log l = { 0 };
	CHECK(reader->ops->outbox_read(reader, cursor, 100, 10, log_entry, &l) == 3);
	CHECK(l.n == 3);
	CHECK_STR(l.topics[0], "users/a/call");
	CHECK_STR(l.topics[1], "users/a/events");
	CHECK_STR(l.topics[2], "users/b/events");
	CHECK(l.retained[0] == 1 && l.retained[1] == 0);
	CHECK_STR(cursor, l.last_id);
	/* Nothing more after the cursor: the read waits block_ms and returns 0. */
	CHECK(reader->ops->outbox_read(reader, cursor, 100, 10, log_entry, &l) == 0);
	/* One entry per transition: trimmed through the first, a reader from the start gets the
	 * second transition's message only. */
	char first[STORE_OUTBOX_ID_MAX];
	char from[STORE_OUTBOX_ID_MAX] = "0-0";
	struct read_log l2 = { 0 };
	CHECK(reader->ops->outbox_read(reader, from, 1, 10, log_entry, &l2) == 2);
	CHECK(l2.n == 2);
	snprintf(first, sizeof(first), "%s", l2.last_id);
	CHECK(reader->ops->outbox_trim(reader, first) == 0);
	snprintf(from, sizeof(from), "0-0");
	struct read_log l3 = { 0 };
	CHECK(reader->ops->outbox_read(reader, from, 100, 10, log_entry, &l3) == 1);
	CHECK_STR(l3.topics[0], "users/b/events");
	s->ops->free(s);
	reader->ops->free(reader);
	racer->ops->free(racer);
}

static void one_instance_at_a_time_leads_the_outbox(void)
{
	redis_new_keys();
	struct store *one = redis_engine(), *two = redis_engine();
	CHECK(one->ops->outbox_lead(one, "one", 5000) == 1);
	CHECK(two->ops->outbox_lead(two, "two", 5000) == 0); /* taken */
	CHECK(one->ops->outbox_lead(one, "one", 5000) == 1); /* renewed */
	two->ops->outbox_resign(two, "two");                 /* not two's to give up */
	CHECK(two->ops->outbox_lead(two, "two", 5000) == 0);
	one->ops->outbox_resign(one, "one");
	CHECK(two->ops->outbox_lead(two, "two", 200) == 1); /* free again */
	CHECK(one->ops->outbox_lead(one, "one", 5000) == 0);
	usleep(300 * 1000); /* two's lease runs out, as when its instance died */
	CHECK(one->ops->outbox_lead(one, "one", 5000) == 1);
	one->ops->free(one);
	two->ops->free(two);
}

static int64_t wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void a_handle_runs_transitions_beside_its_engine_and_shares_its_deadlines(void)
{
	redis_new_keys();
	struct store *s = redis_engine();
	struct store *h = s->ops->handle(s);
	CHECK(h != NULL && h->shared);
	/* The engine looks at the deadlines now (none), as the timer does; ... */
	int64_t poll = s->ops->deadline_next(s, DEADLINE_RING);
	CHECK(poll > wall_ms() && poll <= wall_ms() + 1000);
	/* ... a transition on the handle, open while the engine's own is, adds one ... */
	s->ops->begin(s);
	CHECK(s->ops->find(s, "call-h") == NULL);
	h->ops->begin(h);
	struct call *c = xcalloc(1, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "call-h");
	user_info_copy(&c->party[PARTY_CALLER], &alice);
	user_info_copy(&c->party[PARTY_RECEIVER], &bob);
	c->status = CALL_DIALLING;
	c->revision = 1;
	h->ops->add(h, c);
	struct deadline d = { wall_ms() + 50, "call-h", PARTY_CALLER };
	h->ops->deadline_add(h, DEADLINE_RING, &d);
	CHECK(h->ops->commit(h) == STORE_COMMITTED);
	/* ... which the engine knows without asking Redis, and which beat its own transition. */
	CHECK(s->ops->deadline_next(s, DEADLINE_RING) == d.at);
	CHECK(s->ops->commit(s) == STORE_CONFLICT);
	h->ops->free(h);
	s->ops->free(s);
}

static void a_handle_whose_connection_redis_closed_connects_again_before_use(void)
{
	redis_new_keys();
	struct store *s = redis_engine();
	struct store *h = s->ops->handle(s);
	h->ops->begin(h);
	CHECK(h->ops->find(h, "call-k") == NULL); /* connected */
	CHECK(h->ops->commit(h) == STORE_COMMITTED);
	/* Redis drops every connection but this one, as a restart does. */
	char host[64];
	int port = 0;
	CHECK(sscanf(redis_url, "redis://%63[^:]:%d", host, &port) == 2);
	redisContext *admin = redisConnect(host, port);
	CHECK(admin && !admin->err);
	redisReply *rep = redisCommand(admin, "CLIENT KILL TYPE normal SKIPME yes");
	CHECK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 2);
	freeReplyObject(rep);
	redisFree(admin);
	usleep(50 * 1000);
	/* The next transition on each finds its connection closed before using it, not after. */
	struct store *each[2] = { h, s };
	for (int i = 0; i < 2; i++) {
		each[i]->ops->begin(each[i]);
		CHECK(each[i]->ops->find(each[i], "call-k") == NULL);
		CHECK(each[i]->ops->commit(each[i]) == STORE_COMMITTED);
	}
	h->ops->free(h);
	s->ops->free(s);
}

static void count_each(void *ctx, const struct call *call)
{
	size_t *n = ctx;
	*n += call->status == CALL_DIALLING && call->party[PARTY_CALLER].id != NULL;
}

static void each_hands_out_every_call_beyond_one_batch(void)
{
	redis_new_keys();
	struct store *s = redis_engine();
	enum { N = 600 }; /* more than two of rd_each's pipelined batches */
	s->ops->begin(s);
	for (int i = 0; i < N; i++) {
		struct call *c = xcalloc(1, sizeof(*c));
		snprintf(c->id, sizeof(c->id), "call-e%d", i);
		char caller[32], receiver[32];
		snprintf(caller, sizeof(caller), "a%d", i);
		snprintf(receiver, sizeof(receiver), "b%d", i);
		struct user_info a = { caller, caller, "" }, b = { receiver, receiver, "" };
		user_info_copy(&c->party[PARTY_CALLER], &a);
		user_info_copy(&c->party[PARTY_RECEIVER], &b);
		c->status = CALL_DIALLING;
		c->revision = 1;
		s->ops->add(s, c);
	}
	CHECK(s->ops->commit(s) == STORE_COMMITTED);
	size_t n = 0;
	s->ops->each(s, count_each, &n);
	CHECK(n == N);
	CHECK(s->ops->count(s) == N);
	s->ops->free(s);
}

static void a_lookup_redis_did_not_answer_is_told_from_one_that_found_nothing(void)
{
	redis_new_keys();
	struct store *s = redis_engine();
	CHECK(s->ops->find(s, "call-u") == NULL);
	CHECK(s->ops->unreachable(s) == 0); /* nothing there */
	/* Redis refuses the read (a key of the wrong type), as it fails one it cannot answer. */
	char host[64], key[128];
	int port = 0;
	CHECK(sscanf(redis_url, "redis://%63[^:]:%d", host, &port) == 2);
	redisContext *admin = redisConnect(host, port);
	CHECK(admin && !admin->err);
	snprintf(key, sizeof(key), "%scall:call-u", redis_prefix);
	freeReplyObject(redisCommand(admin, "SET %s x", key));
	redisFree(admin);
	CHECK(s->ops->find(s, "call-u") == NULL);
	CHECK(s->ops->unreachable(s) == 1);
	CHECK(s->ops->live_of(s, "alice") == NULL); /* the next lookup that is answered clears it */
	CHECK(s->ops->unreachable(s) == 0);
	s->ops->free(s);
	/* Memory always answers. */
	struct store *m = store_memory_new();
	CHECK(m->ops->unreachable == NULL);
	m->ops->free(m);
}

static void a_bad_url_or_an_unreachable_redis_makes_no_engine(void)
{
	struct store *s = redis_engine();
	CHECK(s != NULL); /* the url under test works ... */
	s->ops->free(s);
	/* ... but not another scheme, nor a port where nothing listens. */
	CHECK(store_redis_new("http://127.0.0.1:6379", redis_prefix) == NULL);
	CHECK(store_redis_new("redis://127.0.0.1:1", redis_prefix) == NULL);
	CHECK(store_redis_new("redis://127.0.0.1:6379/x", redis_prefix) == NULL);
}

int main(void)
{
	RUN(rules_give_the_same_results_on_a_copying_engine);
	RUN(restore_works_through_a_copying_engine);
	RUN(newer_rules_give_the_same_results_on_a_copying_engine);
	RUN(memory_deadlines_come_out_in_time_order_whatever_the_insert_order);
	redis_url = getenv("CALLSIGNAL_TEST_REDIS_URL");
	if (redis_url) {
		RUN(rules_give_the_same_results_on_redis);
		RUN(newer_rules_give_the_same_results_on_redis);
		RUN(two_instances_starting_calls_to_one_receiver_ring_it_once);
		RUN(a_ring_timeout_fires_once_when_two_instances_race_for_it);
		RUN(a_deadline_taken_by_an_instance_that_dies_fires_on_another);
		RUN(outbox_messages_exist_only_with_their_transition_in_order);
		RUN(one_instance_at_a_time_leads_the_outbox);
		RUN(a_handle_runs_transitions_beside_its_engine_and_shares_its_deadlines);
		RUN(a_handle_whose_connection_redis_closed_connects_again_before_use);
		RUN(each_hands_out_every_call_beyond_one_batch);
		RUN(a_lookup_redis_did_not_answer_is_told_from_one_that_found_nothing);
		RUN(a_bad_url_or_an_unreachable_redis_makes_no_engine);
	}
	return check_done();
}

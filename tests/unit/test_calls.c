/*
 * test_calls.c - the call state machine on its own: every transition and
 * every refusal, with time driven by hand.
 *
 * The same cases run on the memory engine (unit.calls) and, given
 * CALLSIGNAL_TEST_REDIS_URL, on the Redis engine (unit.calls_redis, through
 * run_with_redis.py), each case on keys of its own: one table of
 * transitions for both engines. The rebuild from the broker's retained
 * topics is for the memory engine only (a shared store is its own truth).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calls.h"
#include "check.h"

#define RING         30000
#define GRACE        15000
#define RETAIN       600000
#define RING_OFFLINE 5000
#define HISTORY      3

static struct calls c;
static struct call_events ev;
static struct user_info alice = { "alice", "Alice", "Paris" };
static struct user_info bob = { "bob", "Bob", "Oslo" };
static struct user_info carol = { "carol", "Carol", "" };

static struct instant at(int64_t ms)
{
	return (struct instant){ 1700000000000 + ms };
}

static const char *redis_url; /* the Redis engine's, or NULL: the memory engine */

/* The engine of the next case: Redis keys of its own, or a fresh memory engine. */
static struct store *engine(void)
{
	if (!redis_url)
		return store_memory_new();
	static int seq;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "calls-%d-%d:", (int)getpid(), ++seq);
	struct store *s = store_redis_new(redis_url, prefix);
	if (!s) {
		fprintf(stderr, "no Redis at the test's url\n");
		exit(1);
	}
	return s;
}

static void setup(void)
{
	struct calls_config cfg = { RING, GRACE, RETAIN, 0, RING_OFFLINE, HISTORY };
	calls_init(&c, &cfg, engine());
	call_events_init(&ev);
}

/* The call as stored now (a held pointer is a copy on the Redis engine). */
static const struct call *now_of(const char *id)
{
	const struct call *call = calls_find(&c, id);
	CHECK(call != NULL);
	static const struct call none;
	return call ? call : &none;
}

/* Two views of one call: the same call (the memory engine hands out the same pointer, Redis copies). */
static int same_call(const struct call *a, const struct call *b)
{
	return a && b && strcmp(a->id, b->id) == 0;
}

static void teardown(void)
{
	calls_release(&c);
	call_events_release(&ev);
}

static const struct call *start(const struct user_info *from, const struct user_info *to, const char *id,
				int64_t ms)
{
	const struct call *call = NULL;
	CHECK(calls_start(&c, from, to, id, at(ms), &ev, &call) == ERR_OK);
	ev.n = 0;
	return call;
}

static void start_rings_only_the_receiver(void)
{
	setup();
	const struct call *call = NULL;
	CHECK(calls_start(&c, &alice, &bob, "call-1", at(5), &ev, &call) == ERR_OK);
	CHECK(call && call->status == CALL_DIALLING);
	CHECK_STR(call->party[PARTY_CALLER].name, "Alice");
	CHECK_STR(call->party[PARTY_RECEIVER].location, "Oslo");
	CHECK(call->created_at == at(5).wall_ms && call->answered_at == 0 && call->ended_at == 0);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_INCOMING_CALL);
	CHECK(ev.items[0].to_receiver && !ev.items[0].to_caller);
	CHECK(same_call(calls_live_of(&c, "alice"), call) && same_call(calls_live_of(&c, "bob"), call));
	teardown();
}

static void start_refuses_calling_oneself(void)
{
	setup();
	const struct call *call;
	CHECK(calls_start(&c, &alice, &alice, "x", at(0), &ev, &call) == ERR_SELF_CALL);
	CHECK(ev.n == 0 && calls_count(&c) == 0);
	teardown();
}

static void start_refuses_busy_caller_and_busy_receiver(void)
{
	setup();
	const struct call *call;
	start(&alice, &bob, "call-1", 0);
	CHECK(calls_start(&c, &alice, &carol, "call-2", at(1), &ev, &call) == ERR_CALLER_BUSY);
	CHECK(calls_start(&c, &carol, &bob, "call-3", at(1), &ev, &call) == ERR_RECEIVER_BUSY);
	CHECK(calls_start(&c, &carol, &alice, "call-4", at(1), &ev, &call) == ERR_RECEIVER_BUSY);
	CHECK(calls_answer(&c, "call-1", 1, NULL, at(2), &ev, &call) == ERR_OK);
	ev.n = 0;
	CHECK(calls_start(&c, &bob, &carol, "call-5", at(3), &ev, &call) == ERR_CALLER_BUSY);
	/* a busy caller leaves no trace; each busy receiver kept a missed-call record (call-3, call-4) */
	CHECK(ev.n == 0 && calls_count(&c) == 3 && calls_live_count(&c) == 1);
	teardown();
}

static void accept_makes_the_call_ongoing_and_tells_both(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	CHECK(calls_answer(&c, "call-1", 1, NULL, at(700), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_ONGOING && call->answered_at == at(700).wall_ms);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_ACCEPT_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	teardown();
}

static void decline_ends_the_call_and_frees_both_parties(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	CHECK(calls_answer(&c, "call-1", 0, NULL, at(900), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_DECLINED && call->ended_at == at(900).wall_ms);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_DECLINE_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	CHECK(!calls_live_of(&c, "alice") && !calls_live_of(&c, "bob"));
	ev.n = 0;
	start(&bob, &alice, "call-2", 1000);
	teardown();
}

static void answer_of_unknown_call_is_not_found(void)
{
	setup();
	const struct call *call = NULL;
	CHECK(calls_answer(&c, "nope", 1, NULL, at(0), &ev, &call) == ERR_CALL_NOT_FOUND);
	CHECK(ev.n == 0);
	teardown();
}

static void second_answer_is_refused_as_not_ringing_with_the_call(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call = NULL;
	CHECK(calls_answer(&c, "call-1", 1, NULL, at(1), &ev, &call) == ERR_OK);
	ev.n = 0;
	call = NULL;
	CHECK(calls_answer(&c, "call-1", 0, NULL, at(2), &ev, &call) == ERR_CALL_NOT_RINGING);
	CHECK(call && call->status == CALL_ONGOING);
	CHECK(ev.n == 0);
	teardown();
}

static void answer_by_someone_else_than_the_receiver_is_forbidden(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	CHECK(calls_answer(&c, "call-1", 1, "alice", at(1), &ev, &call) == ERR_FORBIDDEN);
	CHECK(calls_answer(&c, "call-1", 1, "carol", at(1), &ev, &call) == ERR_FORBIDDEN);
	CHECK(ev.n == 0 && calls_find(&c, "call-1")->status == CALL_DIALLING);
	CHECK(calls_answer(&c, "call-1", 1, "bob", at(1), &ev, &call) == ERR_OK);
	teardown();
}

static void answer_after_ring_timeout_is_refused(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	calls_tick(&c, at(RING), &ev);
	ev.n = 0;
	const struct call *call = NULL;
	CHECK(calls_answer(&c, "call-1", 1, NULL, at(RING + 1), &ev, &call) == ERR_CALL_NOT_RINGING);
	CHECK(call && call->status == CALL_MISSED && ev.n == 0);
	teardown();
}

static void caller_ending_a_ringing_call_cancels_it_for_both(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	CHECK(calls_end(&c, "call-1", "alice", at(3000), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_ENDED && call->ended_at == at(3000).wall_ms && call->answered_at == 0);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	CHECK(!calls_live_of(&c, "bob"));
	teardown();
}

static void receiver_ending_a_ringing_call_ends_it(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	CHECK(calls_end(&c, "call-1", "bob", at(10), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_ENDED && ev.n == 1);
	teardown();
}

static void ending_an_ongoing_call_tells_both(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	calls_answer(&c, "call-1", 1, NULL, at(1), &ev, &call);
	ev.n = 0;
	CHECK(calls_end(&c, "call-1", "bob", at(60000), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_ENDED && call->ended_at == at(60000).wall_ms);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	teardown();
}

static void repeated_end_returns_the_same_call_without_an_event(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *first, *again;
	calls_end(&c, "call-1", "alice", at(5), &ev, &first);
	ev.n = 0;
	CHECK(calls_end(&c, "call-1", "bob", at(50), &ev, &again) == ERR_OK);
	CHECK(same_call(again, now_of("call-1")) && again->status == CALL_ENDED &&
	      again->ended_at == at(5).wall_ms);
	CHECK(ev.n == 0);
	teardown();
}

static void end_by_a_stranger_is_refused(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	CHECK(calls_end(&c, "call-1", "carol", at(1), &ev, &call) == ERR_NOT_A_PARTY);
	CHECK(calls_end(&c, "nope", "alice", at(1), &ev, &call) == ERR_CALL_NOT_FOUND);
	CHECK(ev.n == 0 && calls_find(&c, "call-1")->status == CALL_DIALLING);
	teardown();
}

static void ring_timeout_makes_the_call_missed_for_both(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	CHECK(calls_next_deadline(&c) == at(RING).wall_ms);
	calls_tick(&c, at(RING - 1), &ev);
	CHECK(ev.n == 0 && now_of("call-1")->status == CALL_DIALLING);
	calls_tick(&c, at(RING), &ev);
	CHECK(now_of("call-1")->status == CALL_MISSED && now_of("call-1")->ended_at == at(RING).wall_ms);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	CHECK(!calls_live_of(&c, "alice") && !calls_live_of(&c, "bob"));
	teardown();
}

static void answered_call_is_not_missed_later(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	calls_answer(&c, "call-1", 1, NULL, at(10), &ev, &call);
	ev.n = 0;
	calls_tick(&c, at(RING * 2), &ev);
	CHECK(ev.n == 0 && now_of("call-1")->status == CALL_ONGOING);
	teardown();
}

static void party_offline_past_grace_ends_the_call_in_error(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	calls_answer(&c, "call-1", 1, NULL, at(1), &ev, &call);
	ev.n = 0;
	calls_party_offline(&c, "bob", at(100));
	calls_tick(&c, at(100 + GRACE - 1), &ev);
	CHECK(ev.n == 0 && now_of("call-1")->status == CALL_ONGOING);
	calls_tick(&c, at(100 + GRACE), &ev);
	CHECK(now_of("call-1")->status == CALL_ERROR);
	CHECK_STR(now_of("call-1")->err_msg, "Bob went offline");
	CHECK(now_of("call-1")->ended_at == at(100 + GRACE).wall_ms);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL && ev.items[0].to_caller);
	teardown();
}

static void party_back_within_grace_keeps_the_call(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	calls_answer(&c, "call-1", 1, NULL, at(1), &ev, &call);
	ev.n = 0;
	calls_party_offline(&c, "alice", at(100));
	calls_party_online(&c, "alice");
	calls_tick(&c, at(100 + GRACE * 2), &ev);
	CHECK(ev.n == 0 && now_of("call-1")->status == CALL_ONGOING && !now_of("call-1")->err_msg);
	teardown();
}

static void leaving_again_after_coming_back_starts_a_new_grace(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	calls_answer(&c, "call-1", 1, NULL, at(1), &ev, &call);
	ev.n = 0;
	calls_party_offline(&c, "bob", at(100));
	calls_party_online(&c, "bob");
	calls_party_offline(&c, "bob", at(5000));
	calls_tick(&c, at(100 + GRACE), &ev); /* the first absence's deadline */
	CHECK(ev.n == 0 && now_of("call-1")->status == CALL_ONGOING);
	calls_tick(&c, at(5000 + GRACE), &ev);
	CHECK(ev.n == 1 && now_of("call-1")->status == CALL_ERROR);
	teardown();
}

static void offline_while_ringing_ends_in_error_before_the_ring_timeout(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	calls_party_offline(&c, "alice", at(10));
	calls_tick(&c, at(10 + GRACE), &ev);
	CHECK(now_of("call-1")->status == CALL_ERROR);
	CHECK_STR(now_of("call-1")->err_msg, "Alice went offline");
	teardown();
}

static void finished_call_is_forgotten_after_retention(void)
{
	setup();
	const struct call *call = start(&alice, &bob, "call-1", 0);
	calls_end(&c, "call-1", "alice", at(1000), &ev, &call);
	ev.n = 0;
	calls_tick(&c, at(1000 + RETAIN - 1), &ev);
	CHECK(calls_find(&c, "call-1") != NULL);
	calls_tick(&c, at(1000 + RETAIN), &ev);
	CHECK(calls_find(&c, "call-1") == NULL && calls_count(&c) == 0);
	CHECK(calls_end(&c, "call-1", "alice", at(1000 + RETAIN + 1), &ev, &call) == ERR_CALL_NOT_FOUND);
	CHECK(calls_next_deadline(&c) == INT64_MAX || calls_next_deadline(&c) > 0);
	teardown();
}

static void live_calls_are_never_forgotten(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	calls_answer(&c, "call-1", 1, NULL, at(1), &ev, &call);
	calls_tick(&c, at(RETAIN * 3), &ev);
	CHECK(calls_find(&c, "call-1") && calls_live_count(&c) == 1);
	teardown();
}

static void token_needs_a_party_of_an_ongoing_call(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call = NULL;
	CHECK(calls_check_in_call(&c, "call-1", "alice", &call) == ERR_NOT_IN_CALL);
	calls_answer(&c, "call-1", 1, NULL, at(1), &ev, &call);
	CHECK(calls_check_in_call(&c, "call-1", "alice", &call) == ERR_OK);
	CHECK(calls_check_in_call(&c, "call-1", "bob", &call) == ERR_OK);
	CHECK(calls_check_in_call(&c, "call-1", "carol", &call) == ERR_NOT_IN_CALL);
	CHECK(calls_check_in_call(&c, "call-2", "alice", &call) == ERR_NOT_IN_CALL);
	calls_end(&c, "call-1", "bob", at(2), &ev, &call);
	CHECK(calls_check_in_call(&c, "call-1", "alice", &call) == ERR_NOT_IN_CALL);
	teardown();
}

static void many_calls_time_out_in_order(void)
{
	setup();
	char ids[100][16];
	struct user_info a[100], b[100];
	char names[200][16];
	for (int i = 0; i < 100; i++) {
		snprintf(names[2 * i], 16, "a%d", i);
		snprintf(names[2 * i + 1], 16, "b%d", i);
		a[i] = (struct user_info){ names[2 * i], names[2 * i], "" };
		b[i] = (struct user_info){ names[2 * i + 1], names[2 * i + 1], "" };
		snprintf(ids[i], 16, "id-%d", i);
		start(&a[i], &b[i], ids[i], i * 10);
	}
	calls_tick(&c, at(RING + 495), &ev);
	CHECK(ev.n == 50);
	CHECK(calls_live_count(&c) == 50);
	CHECK(calls_next_deadline(&c) == at(RING + 500).wall_ms);
	teardown();
}

static void oldest_finished_calls_go_first_beyond_the_cap(void)
{
	setup();
	c.cfg.retention_max = 2;
	const struct call *call;
	start(&alice, &bob, "call-1", 0);
	calls_end(&c, "call-1", "alice", at(1), &ev, &call);
	start(&alice, &bob, "call-2", 2);
	calls_end(&c, "call-2", "alice", at(3), &ev, &call);
	start(&alice, &carol, "call-3", 4);
	CHECK(calls_next_deadline(&c) > 0);
	calls_end(&c, "call-3", "carol", at(5), &ev, &call);
	CHECK(calls_next_deadline(&c) == 0); /* three finished, two allowed: due now */
	CHECK(calls_find(&c, "call-1") && call->status == CALL_ENDED); /* nothing freed before the tick */
	ev.n = 0;
	calls_tick(&c, at(6), &ev);
	CHECK(!calls_find(&c, "call-1") && calls_find(&c, "call-2") && calls_find(&c, "call-3"));
	CHECK(calls_next_deadline(&c) > 0 && ev.n == 0);
	start(&bob, &carol, "call-4", 7);
	calls_tick(&c, at(8), &ev);
	CHECK(calls_find(&c, "call-2") && calls_find(&c, "call-4")); /* live calls do not count */
	teardown();
}

/* A call as read back from a retained users/{id}/call topic. */
static struct call seen_call(const char *id, enum call_status status, int64_t revision, int64_t ring_deadline)
{
	struct call call = { 0 };
	snprintf(call.id, sizeof(call.id), "%s", id);
	call.party[PARTY_CALLER] = alice;
	call.party[PARTY_RECEIVER] = bob;
	call.status = status;
	call.created_at = at(0).wall_ms;
	call.ring_deadline = ring_deadline;
	call.answered_at = status == CALL_ONGOING ? at(10).wall_ms : 0;
	call.revision = revision;
	return call;
}

static void restore_brings_back_a_call_both_topics_agree_on_without_events(void)
{
	setup();
	struct call dialling = seen_call("call-1", CALL_DIALLING, 1, at(RING).wall_ms);
	struct calls_seen seen[] = { { "alice", &dialling }, { "bob", &dialling } };
	const char *clear[2];
	size_t n_clear = 9;
	calls_restore(&c, seen, 2, &ev, clear, &n_clear);
	CHECK(n_clear == 0 && ev.n == 0);
	const struct call *call = calls_find(&c, "call-1");
	CHECK(call && call->status == CALL_DIALLING && call->revision == 1);
	CHECK(same_call(calls_live_of(&c, "alice"), call) && same_call(calls_live_of(&c, "bob"), call));
	CHECK(calls_next_deadline(&c) == at(RING).wall_ms); /* the original deadline, not a fresh one */
	CHECK(calls_start(&c, &carol, &bob, "call-2", at(5), &ev, &call) == ERR_RECEIVER_BUSY);
	CHECK(ev.n == 1 && ev.items[0].call->end_reason == END_BUSY); /* bob's missed-call record */
	ev.n = 0;
	calls_tick(&c, at(RING), &ev);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL && ev.items[0].call->status == CALL_MISSED);
	CHECK(ev.items[0].call->revision == 2);
	teardown();
}

static void restore_of_a_torn_accept_takes_the_higher_revision_and_sends_its_event(void)
{
	setup();
	struct call rung = seen_call("call-1", CALL_DIALLING, 1, at(RING).wall_ms);
	struct call accepted = seen_call("call-1", CALL_ONGOING, 2, 0);
	struct calls_seen seen[] = { { "alice", &rung }, { "bob", &accepted } }; /* receiver went first */
	const char *clear[2];
	size_t n_clear;
	calls_restore(&c, seen, 2, &ev, clear, &n_clear);
	const struct call *call = calls_find(&c, "call-1");
	CHECK(n_clear == 0 && call && call->status == CALL_ONGOING && call->revision == 2);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_ACCEPT_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	CHECK(calls_next_deadline(&c) == INT64_MAX); /* no ring deadline for an accepted call */
	teardown();
}

static void restore_of_a_torn_start_rings_the_receiver(void)
{
	setup();
	struct call rung = seen_call("call-1", CALL_DIALLING, 1, at(RING).wall_ms);
	struct calls_seen seen[] = { { "bob", &rung } };
	const char *clear[1];
	size_t n_clear;
	calls_restore(&c, seen, 1, &ev, clear, &n_clear);
	CHECK(n_clear == 0 && calls_live_of(&c, "alice") && calls_live_of(&c, "bob"));
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_INCOMING_CALL && !ev.items[0].to_caller);
	teardown();
}

static void restore_clears_a_call_left_on_the_callers_topic_only(void)
{
	setup();
	struct call ended = seen_call("call-1", CALL_ONGOING, 2, 0);
	struct call finished = seen_call("call-2", CALL_ENDED, 3, 0);
	struct calls_seen seen[] = { { "alice", &ended }, { "carol", &finished } };
	const char *clear[2];
	size_t n_clear;
	calls_restore(&c, seen, 2, &ev, clear, &n_clear);
	CHECK(ev.n == 0 && calls_count(&c) == 0 && !calls_live_of(&c, "alice"));
	CHECK(n_clear == 2);
	CHECK(n_clear == 2 && ((strcmp(clear[0], "alice") == 0 && strcmp(clear[1], "carol") == 0) ||
			       (strcmp(clear[1], "alice") == 0 && strcmp(clear[0], "carol") == 0)));
	teardown();
}

static void restore_keeps_one_call_per_busy_line(void)
{
	setup();
	struct call first = seen_call("call-1", CALL_ONGOING, 2, 0);
	struct call other = seen_call("call-2", CALL_ONGOING, 2, 0); /* same parties: cannot both be live */
	struct calls_seen seen[] = {
		{ "alice", &first }, { "bob", &first }, { "alice", &other }, { "bob", &other }
	};
	const char *clear[4];
	size_t n_clear;
	calls_restore(&c, seen, 4, &ev, clear, &n_clear);
	CHECK(calls_live_count(&c) == 1 && n_clear == 2);
	teardown();
}

static void ring_deadline_passed_before_the_restore_is_missed_at_the_next_tick(void)
{
	setup();
	struct call stale = seen_call("call-1", CALL_DIALLING, 1, at(RING).wall_ms);
	struct calls_seen seen[] = { { "alice", &stale }, { "bob", &stale } };
	const char *clear[2];
	size_t n_clear;
	calls_restore(&c, seen, 2, &ev, clear, &n_clear);
	calls_tick(&c, at(RING * 3), &ev);
	CHECK(ev.n == 1 && ev.items[0].call->status == CALL_MISSED);
	CHECK(!calls_live_of(&c, "alice") && !calls_live_of(&c, "bob"));
	teardown();
}

static void every_transition_raises_the_revision(void)
{
	setup();
	const struct call *call = start(&alice, &bob, "call-1", 0);
	CHECK(call->revision == 1 && call->ring_deadline == at(RING).wall_ms);
	calls_answer(&c, "call-1", 1, NULL, at(1), &ev, &call);
	CHECK(call->revision == 2 && call->ring_deadline == 0);
	calls_end(&c, "call-1", "bob", at(2), &ev, &call);
	CHECK(call->revision == 3);
	calls_end(&c, "call-1", "bob", at(3), &ev, &call);
	CHECK(call->revision == 3); /* a repeated end is no transition */
	teardown();
}

static const struct call *accepted(const struct user_info *from, const struct user_info *to, const char *id,
				   int64_t ms)
{
	const struct call *call = start(from, to, id, ms);
	CHECK(calls_answer(&c, id, 1, NULL, at(ms + 1), &ev, &call) == ERR_OK);
	ev.n = 0;
	return call;
}

static void every_way_a_call_ends_names_its_reason(void)
{
	setup();
	const struct call *call;
	accepted(&alice, &bob, "c-hangup", 0);
	CHECK(calls_end_on(&c, "c-hangup", "bob", "bob.tab", at(10), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_ENDED && call->end_reason == END_HANGUP);
	CHECK_STR(call->ended_by.user_id, "bob");
	CHECK_STR(call->ended_by.device_id, "bob.tab");

	start(&alice, &bob, "c-cancel", 20);
	CHECK(calls_end(&c, "c-cancel", "alice", at(21), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_ENDED && call->end_reason == END_CANCELLED);
	CHECK_STR(call->ended_by.user_id, "alice");
	CHECK(call->ended_by.device_id == NULL);

	start(&alice, &bob, "c-reject", 30);
	CHECK(calls_end(&c, "c-reject", "bob", at(31), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_ENDED && call->end_reason == END_DECLINED);

	start(&alice, &bob, "c-decline", 40);
	CHECK(calls_answer_on(&c, "c-decline", 0, "bob", "bob.phone", at(41), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_DECLINED && call->end_reason == END_DECLINED);
	CHECK_STR(call->ended_by.device_id, "bob.phone");

	start(&alice, &bob, "c-timeout", 50);
	calls_tick(&c, at(50 + RING), &ev);
	call = calls_find(&c, "c-timeout");
	CHECK(call->status == CALL_MISSED && call->end_reason == END_TIMEOUT);

	accepted(&alice, &bob, "c-offline", RING + 100);
	calls_party_offline(&c, "alice", at(RING + 200));
	calls_tick(&c, at(RING + 200 + GRACE), &ev);
	call = calls_find(&c, "c-offline");
	CHECK(call->status == CALL_ERROR && call->end_reason == END_PARTY_OFFLINE);

	accepted(&alice, &bob, "c-room", 2 * RING);
	ev.n = 0;
	CHECK(calls_room_finished(&c, "c-room", at(2 * RING + 5), &ev) == 1);
	call = calls_find(&c, "c-room");
	CHECK(call->status == CALL_ENDED && call->end_reason == END_MEDIA_ENDED);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	CHECK(calls_live_of(&c, "alice") == NULL && calls_live_of(&c, "bob") == NULL);

	accepted(&alice, &bob, "c-line", 3 * RING);
	CHECK(calls_start(&c, &carol, &bob, "c-busy", at(3 * RING + 5), &ev, &call) == ERR_RECEIVER_BUSY);
	call = calls_find(&c, "c-busy");
	CHECK(call && call->status == CALL_MISSED && call->end_reason == END_BUSY);
	/* the record does not touch bob's live call */
	CHECK(calls_live_of(&c, "bob") && strcmp(calls_live_of(&c, "bob")->id, "c-line") == 0);
	teardown();
}

static void answer_on_a_device_is_recorded_for_the_others(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	const struct call *call;
	CHECK(calls_answer_on(&c, "call-1", 1, "bob", "bob.phone", at(5), &ev, &call) == ERR_OK);
	CHECK(call->status == CALL_ONGOING && call->end_reason == END_NONE);
	CHECK_STR(call->answered_by.user_id, "bob");
	CHECK_STR(call->answered_by.device_id, "bob.phone");
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_ACCEPT_CALL && ev.items[0].to_receiver &&
	      ev.items[0].call->answered_by.device_id);
	teardown();
}

static void busy_receiver_gets_a_missed_call_record_alone(void)
{
	setup();
	accepted(&alice, &bob, "call-1", 0);
	const struct call *call = NULL;
	CHECK(calls_start(&c, &carol, &bob, "call-2", at(10), &ev, &call) == ERR_RECEIVER_BUSY);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL);
	CHECK(ev.items[0].to_receiver && !ev.items[0].to_caller && ev.items[0].keep_topics);
	const struct call *missed = ev.items[0].call;
	CHECK_STR(missed->id, "call-2");
	CHECK(missed->status == CALL_MISSED && missed->end_reason == END_BUSY && missed->revision == 1);
	CHECK_STR(missed->party[PARTY_CALLER].id, "carol");
	CHECK_STR(missed->party[PARTY_RECEIVER].id, "bob");
	CHECK(missed->created_at == at(10).wall_ms && missed->ended_at == at(10).wall_ms);
	CHECK(calls_live_of(&c, "bob") && strcmp(calls_live_of(&c, "bob")->id, "call-1") == 0);
	CHECK(calls_live_of(&c, "carol") == NULL);
	ev.n = 0;
	CHECK(calls_start(&c, &carol, &alice, "call-3", at(11), &ev, &call) == ERR_RECEIVER_BUSY);
	CHECK(ev.n == 1 && ev.items[0].to_receiver && !ev.items[0].to_caller); /* alice's record */
	CHECK_STR(ev.items[0].call->party[PARTY_RECEIVER].id, "alice");
	CHECK(calls_live_count(&c) == 1);
	calls_tick(&c, at(11 + RETAIN), &ev);
	CHECK(calls_find(&c, "call-2") == NULL); /* forgotten like any finished call */
	teardown();
}

static void crossed_starts_accept_the_call_that_rang_first(void)
{
	setup();
	start(&bob, &alice, "call-1", 0);
	const struct call *call = NULL;
	CHECK(calls_start(&c, &alice, &bob, "call-2", at(3), &ev, &call) == ERR_OK);
	CHECK(call && strcmp(call->id, "call-1") == 0 && call->status == CALL_ONGOING &&
	      call->answered_at == at(3).wall_ms);
	CHECK_STR(call->answered_by.user_id, "alice");
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_ACCEPT_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	CHECK(calls_find(&c, "call-2") == NULL && calls_count(&c) == 1);
	ev.n = 0;
	/* once it is ONGOING, a further start is busy as before */
	CHECK(calls_start(&c, &alice, &bob, "call-3", at(4), &ev, &call) == ERR_CALLER_BUSY);
	/* a third person's ringing call is not merged */
	CHECK(calls_end(&c, "call-1", "bob", at(5), &ev, &call) == ERR_OK);
	start(&carol, &alice, "call-4", 6);
	CHECK(calls_start(&c, &alice, &bob, "call-5", at(7), &ev, &call) == ERR_CALLER_BUSY);
	teardown();
}

static void media_left_past_the_grace_ends_the_call(void)
{
	setup();
	accepted(&alice, &bob, "call-1", 0);
	CHECK(calls_media_joined(&c, "call-1", "alice", at(100)) == 1);
	CHECK(calls_media_joined(&c, "call-1", "bob", at(120)) == 1);
	const struct call *call = calls_find(&c, "call-1");
	CHECK(call->media_joined_at[PARTY_CALLER] == at(100).wall_ms &&
	      call->media_joined_at[PARTY_RECEIVER] == at(120).wall_ms);
	CHECK(calls_media_left(&c, "call-1", "bob", at(200)) == 1);
	CHECK(calls_media_left(&c, "call-1", "bob", at(300)) == 0); /* the grace already runs */
	CHECK(calls_next_deadline(&c) == at(200 + GRACE).wall_ms);
	calls_tick(&c, at(199 + GRACE), &ev);
	CHECK(ev.n == 0 && calls_find(&c, "call-1")->status == CALL_ONGOING);
	calls_tick(&c, at(200 + GRACE), &ev);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL && ev.items[0].to_caller &&
	      ev.items[0].to_receiver);
	call = calls_find(&c, "call-1");
	CHECK(call->status == CALL_ENDED && call->end_reason == END_MEDIA_ENDED);
	CHECK_STR(call->ended_by.user_id, "bob");
	teardown();
}

static void media_back_within_the_grace_keeps_the_call(void)
{
	setup();
	accepted(&alice, &bob, "call-1", 0);
	CHECK(calls_media_left(&c, "call-1", "alice", at(100)) == 1);
	CHECK(calls_media_joined(&c, "call-1", "alice", at(100 + GRACE / 2)) == 1);
	calls_tick(&c, at(100 + GRACE), &ev);
	CHECK(ev.n == 0 && calls_find(&c, "call-1")->status == CALL_ONGOING);
	/* leaving again starts a new grace */
	CHECK(calls_media_left(&c, "call-1", "alice", at(200 + GRACE)) == 1);
	calls_tick(&c, at(200 + 2 * GRACE), &ev);
	CHECK(ev.n == 1 && calls_find(&c, "call-1")->end_reason == END_MEDIA_ENDED);
	teardown();
}

static void media_events_of_ringing_or_unknown_calls_and_strangers_are_ignored(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	CHECK(calls_media_joined(&c, "call-1", "bob", at(1)) == 0);
	CHECK(calls_media_left(&c, "call-1", "bob", at(1)) == 0);
	CHECK(calls_room_finished(&c, "call-1", at(1), &ev) == 0);
	CHECK(calls_find(&c, "call-1")->status == CALL_DIALLING && ev.n == 0);
	CHECK(calls_answer(&c, "call-1", 1, NULL, at(2), &ev, &(const struct call *){ NULL }) == ERR_OK);
	ev.n = 0;
	CHECK(calls_media_left(&c, "call-1", "carol", at(3)) == 0);
	CHECK(calls_media_left(&c, "no-such-room", "bob", at(3)) == 0);
	CHECK(calls_room_finished(&c, "no-such-room", at(3), &ev) == 0);
	const struct call *k = calls_find(&c, "call-1");
	CHECK(!k->media_deadline[0] && !k->media_deadline[1] && ev.n == 0);
	CHECK(calls_end(&c, "call-1", "bob", at(4), &ev, &(const struct call *){ NULL }) == ERR_OK);
	ev.n = 0;
	CHECK(calls_room_finished(&c, "call-1", at(5), &ev) == 0 && ev.n == 0); /* already finished */
	CHECK(calls_find(&c, "call-1")->end_reason == END_HANGUP);
	teardown();
}

static void start_to_a_sleeping_receiver_rings_for_the_shorter_deadline(void)
{
	setup();
	const struct call *call = NULL;
	CHECK(calls_start_offline(&c, &alice, &bob, "call-1", at(0), &ev, &call) == ERR_OK);
	CHECK(call && call->status == CALL_DIALLING && call->ring_deadline == at(RING_OFFLINE).wall_ms);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_INCOMING_CALL);
	ev.n = 0;
	calls_tick(&c, at(RING_OFFLINE - 1), &ev);
	CHECK(ev.n == 0);
	calls_tick(&c, at(RING_OFFLINE), &ev);
	CHECK(ev.n == 1 && ev.items[0].type == EVENT_END_CALL && ev.items[0].call->status == CALL_MISSED);
	teardown();
}

static void receiver_woken_in_time_rings_until_the_ring_timeout(void)
{
	setup();
	const struct call *call = NULL;
	struct user_info asleep = { "bob", "bob", "" };
	CHECK(calls_start_offline(&c, &alice, &asleep, "call-1", at(0), &ev, &call) == ERR_OK);
	ev.n = 0;
	CHECK(calls_receiver_online(&c, &alice) == NULL); /* the caller is not woken */
	call = calls_receiver_online(&c, &bob);
	CHECK(call && call->ring_deadline == at(RING).wall_ms && call->revision == 2);
	CHECK(call && strcmp(call->party[PARTY_RECEIVER].name, "Bob") == 0 &&
	      strcmp(call->party[PARTY_RECEIVER].location, "Oslo") == 0);
	CHECK(calls_receiver_online(&c, &bob) == NULL); /* a second device changes nothing */
	calls_tick(&c, at(RING_OFFLINE), &ev);
	CHECK(ev.n == 0 && calls_find(&c, "call-1")->status == CALL_DIALLING);
	calls_tick(&c, at(RING), &ev);
	CHECK(ev.n == 1 && ev.items[0].call->status == CALL_MISSED);
	teardown();
}

static void a_receiver_rung_asleep_gets_no_grace_period_until_woken(void)
{
	setup();
	const struct call *call = NULL;
	struct user_info asleep = { "bob", "bob", "" };
	CHECK(calls_start_offline(&c, &alice, &asleep, "call-1", at(0), &ev, &call) == ERR_OK);
	call = calls_find(&c, "call-1");
	CHECK(calls_awaits(&c, call, PARTY_RECEIVER) && !calls_awaits(&c, call, PARTY_CALLER));
	/* A replay's end finds him not online: he never was, so no grace period starts. */
	calls_party_offline(&c, "bob", at(10));
	CHECK(calls_find(&c, "call-1")->grace_deadline[PARTY_RECEIVER] == 0);
	calls_party_offline(&c, "alice", at(10));
	call = calls_find(&c, "call-1");
	CHECK(call->grace_deadline[PARTY_CALLER] == at(10 + GRACE).wall_ms &&
	      calls_awaits(&c, call, PARTY_CALLER));
	calls_party_online(&c, "alice");
	CHECK(calls_receiver_online(&c, &bob) != NULL);
	call = calls_find(&c, "call-1");
	CHECK(!calls_awaits(&c, call, PARTY_CALLER) && !calls_awaits(&c, call, PARTY_RECEIVER));
	/* Woken, he is like any receiver: going away starts his grace period. */
	calls_party_offline(&c, "bob", at(20));
	CHECK(calls_find(&c, "call-1")->grace_deadline[PARTY_RECEIVER] == at(20 + GRACE).wall_ms);
	teardown();
}

static void party_back_ends_a_grace_period_or_wakes_a_call_in_one_transition(void)
{
	setup();
	struct user_info asleep = { "bob", "bob", "" };
	const struct call *call = NULL;
	CHECK(calls_start_offline(&c, &alice, &asleep, "call-1", at(0), &ev, &call) == ERR_OK);
	calls_party_offline(&c, "alice", at(10));
	CHECK(calls_find(&c, "call-1")->grace_deadline[PARTY_CALLER] == at(10 + GRACE).wall_ms);
	CHECK(calls_party_back(&c, &alice) == NULL); /* her grace ends; nothing to wake */
	call = calls_find(&c, "call-1");
	CHECK(call->grace_deadline[PARTY_CALLER] == 0 && call->revision == 1);
	call = calls_party_back(&c, &bob); /* rung asleep: woken, named as his device does */
	CHECK(call && call->ring_deadline == at(RING).wall_ms && call->revision == 2 &&
	      strcmp(call->party[PARTY_RECEIVER].name, "Bob") == 0);
	CHECK(calls_party_back(&c, &bob) == NULL); /* a second device changes nothing */
	CHECK(calls_find(&c, "call-1")->revision == 2);
	calls_tick(&c, at(RING_OFFLINE), &ev); /* the woken call rings until the full timeout */
	CHECK(calls_find(&c, "call-1")->status == CALL_DIALLING);
	teardown();
}

static void receiver_online_leaves_an_ordinary_call_alone(void)
{
	setup();
	start(&alice, &bob, "call-1", 0);
	CHECK(calls_receiver_online(&c, &bob) == NULL);
	CHECK(calls_find(&c, "call-1")->revision == 1);
	teardown();
}

static void history_lists_finished_calls_newest_first_with_limit_and_before(void)
{
	setup();
	const struct call *call;
	struct call out[4] = { 0 };
	start(&alice, &bob, "call-1", 0);
	CHECK(calls_history(&c, "alice", NULL, 4, out) == 0); /* live calls are not history */
	calls_end(&c, "call-1", "alice", at(10), &ev, &call);
	start(&bob, &alice, "call-2", 20);
	calls_answer(&c, "call-2", 0, NULL, at(30), &ev, &call);
	start(&alice, &carol, "call-3", 40);
	calls_tick(&c, at(40 + RING), &ev);
	size_t n = calls_history(&c, "alice", NULL, 4, out);
	CHECK(n == 3);
	CHECK_STR(out[0].id, "call-3");
	CHECK_STR(out[1].id, "call-2");
	CHECK_STR(out[2].id, "call-1");
	CHECK(out[0].status == CALL_MISSED && out[1].status == CALL_DECLINED && out[2].status == CALL_ENDED);
	for (size_t i = 0; i < n; i++)
		call_release(&out[i]);
	n = calls_history(&c, "alice", NULL, 2, out);
	CHECK(n == 2);
	CHECK_STR(out[1].id, "call-2");
	for (size_t i = 0; i < n; i++)
		call_release(&out[i]);
	n = calls_history(&c, "alice", "call-2", 4, out);
	CHECK(n == 1);
	CHECK_STR(out[0].id, "call-1");
	call_release(&out[0]);
	CHECK(calls_history(&c, "alice", "call-1", 4, out) == 0);
	CHECK(calls_history(&c, "alice", "no-such-call", 4, out) == 0);
	n = calls_history(&c, "bob", NULL, 4, out);
	CHECK(n == 2);
	CHECK_STR(out[0].id, "call-2");
	for (size_t i = 0; i < n; i++)
		call_release(&out[i]);
	CHECK(calls_history(&c, "carol", NULL, 4, out) == 1);
	call_release(&out[0]);
	teardown();
}

static void history_keeps_the_newest_up_to_the_cap_beyond_retention(void)
{
	setup();
	const struct call *call;
	char id[16];
	for (int i = 1; i <= HISTORY + 2; i++) {
		snprintf(id, sizeof(id), "call-%d", i);
		start(&alice, &bob, id, i * 10);
		calls_end(&c, id, "bob", at(i * 10 + 5), &ev, &call);
	}
	calls_tick(&c, at(RETAIN * 2), &ev);
	CHECK(calls_count(&c) == 0); /* retention forgot them; the history did not */
	struct call out[HISTORY + 2] = { 0 };
	size_t n = calls_history(&c, "bob", NULL, HISTORY + 2, out);
	CHECK(n == HISTORY);
	CHECK_STR(out[0].id, "call-5");
	CHECK_STR(out[HISTORY - 1].id, "call-3");
	for (size_t i = 0; i < n; i++)
		call_release(&out[i]);
	teardown();
}

int main(void)
{
	redis_url = getenv("CALLSIGNAL_TEST_REDIS_URL");
	RUN(start_rings_only_the_receiver);
	RUN(start_refuses_calling_oneself);
	RUN(start_refuses_busy_caller_and_busy_receiver);
	RUN(accept_makes_the_call_ongoing_and_tells_both);
	RUN(decline_ends_the_call_and_frees_both_parties);
	RUN(answer_of_unknown_call_is_not_found);
	RUN(second_answer_is_refused_as_not_ringing_with_the_call);
	RUN(answer_by_someone_else_than_the_receiver_is_forbidden);
	RUN(answer_after_ring_timeout_is_refused);
	RUN(caller_ending_a_ringing_call_cancels_it_for_both);
	RUN(receiver_ending_a_ringing_call_ends_it);
	RUN(ending_an_ongoing_call_tells_both);
	RUN(repeated_end_returns_the_same_call_without_an_event);
	RUN(end_by_a_stranger_is_refused);
	RUN(ring_timeout_makes_the_call_missed_for_both);
	RUN(answered_call_is_not_missed_later);
	RUN(party_offline_past_grace_ends_the_call_in_error);
	RUN(party_back_within_grace_keeps_the_call);
	RUN(leaving_again_after_coming_back_starts_a_new_grace);
	RUN(offline_while_ringing_ends_in_error_before_the_ring_timeout);
	RUN(finished_call_is_forgotten_after_retention);
	RUN(live_calls_are_never_forgotten);
	RUN(token_needs_a_party_of_an_ongoing_call);
	RUN(many_calls_time_out_in_order);
	RUN(oldest_finished_calls_go_first_beyond_the_cap);
	RUN(every_transition_raises_the_revision);
	RUN(every_way_a_call_ends_names_its_reason);
	RUN(answer_on_a_device_is_recorded_for_the_others);
	RUN(busy_receiver_gets_a_missed_call_record_alone);
	RUN(crossed_starts_accept_the_call_that_rang_first);
	RUN(media_left_past_the_grace_ends_the_call);
	RUN(media_back_within_the_grace_keeps_the_call);
	RUN(media_events_of_ringing_or_unknown_calls_and_strangers_are_ignored);
	RUN(start_to_a_sleeping_receiver_rings_for_the_shorter_deadline);
	RUN(receiver_woken_in_time_rings_until_the_ring_timeout);
	RUN(a_receiver_rung_asleep_gets_no_grace_period_until_woken);
	RUN(party_back_ends_a_grace_period_or_wakes_a_call_in_one_transition);
	RUN(receiver_online_leaves_an_ordinary_call_alone);
	RUN(history_lists_finished_calls_newest_first_with_limit_and_before);
	RUN(history_keeps_the_newest_up_to_the_cap_beyond_retention);
	if (redis_url)
		return check_done();
	RUN(restore_brings_back_a_call_both_topics_agree_on_without_events);
	RUN(restore_of_a_torn_accept_takes_the_higher_revision_and_sends_its_event);
	RUN(restore_of_a_torn_start_rings_the_receiver);
	RUN(restore_clears_a_call_left_on_the_callers_topic_only);
	RUN(restore_keeps_one_call_per_busy_line);
	RUN(ring_deadline_passed_before_the_restore_is_missed_at_the_next_tick);
	return check_done();
}

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

#define RING   30000
#define GRACE  15000
#define RETAIN 600000

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
	struct calls_config cfg = { RING, GRACE, RETAIN, 0 };
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
	CHECK(ev.n == 0 && calls_count(&c) == 1);
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

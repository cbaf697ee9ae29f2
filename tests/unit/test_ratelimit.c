/*
 * test_ratelimit.c - token buckets per user, time by hand.
 */
#include "check.h"
#include "ratelimit.h"

static void a_user_gets_the_limit_then_waits(void)
{
	struct ratelimit rl;
	ratelimit_init(&rl, 3);
	int64_t retry = 0;
	for (int i = 0; i < 3; i++)
		CHECK(ratelimit_take(&rl, "alice", 1000, &retry));
	CHECK(!ratelimit_take(&rl, "alice", 1000, &retry));
	CHECK(retry == 20000); /* 3 per minute: one token every 20 s */
	CHECK(ratelimit_take(&rl, "bob", 1000, &retry));
	CHECK(!ratelimit_take(&rl, "alice", 20999, &retry));
	CHECK(retry == 1);
	CHECK(ratelimit_take(&rl, "alice", 21000, &retry));
	ratelimit_release(&rl);
}

static void limit_zero_means_no_limit(void)
{
	struct ratelimit rl;
	ratelimit_init(&rl, 0);
	int64_t retry;
	for (int i = 0; i < 1000; i++)
		CHECK(ratelimit_take(&rl, "alice", 0, &retry));
	CHECK(rl.buckets.count == 0);
	ratelimit_release(&rl);
}

static void prune_forgets_only_refilled_buckets(void)
{
	struct ratelimit rl;
	ratelimit_init(&rl, 2);
	int64_t retry;
	ratelimit_take(&rl, "alice", 0, &retry);
	ratelimit_take(&rl, "bob", 50000, &retry);
	ratelimit_prune(&rl, 60000);
	CHECK(rl.buckets.count == 1);
	ratelimit_prune(&rl, 200000);
	CHECK(rl.buckets.count == 0);
	ratelimit_release(&rl);
}

int main(void)
{
	RUN(a_user_gets_the_limit_then_waits);
	RUN(limit_zero_means_no_limit);
	RUN(prune_forgets_only_refilled_buckets);
	return check_done();
}

/*
 * ratelimit.h - PURE per-user token buckets for call starts.
 *
 * Each user may start `limit` calls per rolling minute: a bucket of `limit`
 * tokens that refills at limit/60 s. Time is a parameter (monotonic ms).
 * limit 0 turns the limiter off.
 */
#ifndef CALLSIGNAL_RATELIMIT_H
#define CALLSIGNAL_RATELIMIT_H

#include <stdint.h>

#include "dict.h"

struct ratelimit {
	struct dict buckets; /* user id -> struct bucket (owned) */
	int limit;
};

void ratelimit_init(struct ratelimit *rl, int limit_per_minute);
void ratelimit_release(struct ratelimit *rl);
/* Takes one token for user_id. Returns 1 if allowed; else 0 and sets
 * *retry_after_ms to the wait until a token is there again. */
int ratelimit_take(struct ratelimit *rl, const char *user_id, int64_t now_ms, int64_t *retry_after_ms);
/* Forgets users whose bucket has refilled, so memory follows active users. */
void ratelimit_prune(struct ratelimit *rl, int64_t now_ms);

#endif

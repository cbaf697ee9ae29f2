/*
 * ratelimit.c - see ratelimit.h. Tokens are kept in thousandths so that the
 * refill rate (limit per 60,000 ms) stays an integer computation.
 */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define WINDOW_MS 60000

struct bucket {
	int64_t milli_tokens; /* 1000 per token */
	int64_t updated_ms;
	char user_id[];
};

void ratelimit_init(struct ratelimit *rl, int limit_per_minute)
{
	dict_init(&rl->buckets);
	rl->limit = limit_per_minute;
}

void ratelimit_release(struct ratelimit *rl)
{
	struct dict_iter it;
	struct bucket *b;
	dict_iter_init(&it, &rl->buckets);
	while ((b = dict_iter_next(&it)))
		free(b);
	dict_release(&rl->buckets);
}

static void refill(const struct ratelimit *rl, struct bucket *b, int64_t now_ms)
{
	int64_t full = (int64_t)rl->limit * 1000;
	int64_t elapsed = now_ms - b->updated_ms;
	if (elapsed > 0) {
		/* limit tokens per WINDOW_MS = limit*1000 milli-tokens per WINDOW_MS */
		int64_t gain = elapsed * rl->limit * 1000 / WINDOW_MS;
		b->milli_tokens = b->milli_tokens + gain > full ? full : b->milli_tokens + gain;
		b->updated_ms = now_ms;
	}
}

int ratelimit_take(struct ratelimit *rl, const char *user_id, int64_t now_ms, int64_t *retry_after_ms)
{
	if (rl->limit <= 0)
		return 1;
	struct bucket *b = dict_get(&rl->buckets, user_id);
	if (!b) {
		size_t n = strlen(user_id) + 1;
		b = xmalloc(sizeof(*b) + n);
		memcpy(b->user_id, user_id, n);
		b->milli_tokens = (int64_t)rl->limit * 1000;
		b->updated_ms = now_ms;
		dict_put(&rl->buckets, b->user_id, b);
	}
	refill(rl, b, now_ms);
	if (b->milli_tokens >= 1000) {
		b->milli_tokens -= 1000;
		return 1;
	}
	int64_t missing = 1000 - b->milli_tokens;
	int64_t per_ms = (int64_t)rl->limit * 1000; /* milli-tokens per WINDOW_MS */
	*retry_after_ms = (missing * WINDOW_MS + per_ms - 1) / per_ms;
	return 0;
}

void ratelimit_prune(struct ratelimit *rl, int64_t now_ms)
{
	struct dict_iter it;
	struct bucket *b;
	struct bucket **full = NULL;
	size_t n = 0, cap = 0;
	dict_iter_init(&it, &rl->buckets);
	while ((b = dict_iter_next(&it))) {
		refill(rl, b, now_ms);
		if (b->milli_tokens >= (int64_t)rl->limit * 1000) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				full = xrealloc(full, cap * sizeof(*full));
			}
			full[n++] = b;
		}
	}
	for (size_t i = 0; i < n; i++) {
		dict_del(&rl->buckets, full[i]->user_id);
		free(full[i]);
	}
	free(full);
}

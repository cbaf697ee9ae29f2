/*
 * ratelimit.c - see ratelimit.h. The bucket is kept as GCRA's "theoretical
 * arrival time" (tat): each start moves tat one interval (60 s / limit)
 * ahead; a start is refused while tat is more than a full bucket ahead of
 * now. One integer per user, exact in microseconds, no refill arithmetic.
 */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define WINDOW_US 60000000LL

struct bucket {
	int64_t tat_us;
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

int ratelimit_take(struct ratelimit *rl, const char *user_id, int64_t now_ms, int64_t *retry_after_ms)
{
	if (rl->limit <= 0)
		return 1;
	int64_t now = now_ms * 1000, interval = WINDOW_US / rl->limit;
	int64_t burst = interval * (rl->limit - 1);
	struct bucket *b = dict_get(&rl->buckets, user_id);
	if (!b) {
		size_t n = strlen(user_id) + 1;
		b = xmalloc(sizeof(*b) + n);
		memcpy(b->user_id, user_id, n);
		b->tat_us = now;
		dict_put(&rl->buckets, b->user_id, b);
	}
	int64_t tat = b->tat_us > now ? b->tat_us : now;
	if (tat - now > burst) {
		*retry_after_ms = (tat - now - burst + 999) / 1000;
		return 0;
	}
	b->tat_us = tat + interval;
	return 1;
}

void ratelimit_prune(struct ratelimit *rl, int64_t now_ms)
{
	struct dict_iter it;
	struct bucket *b;
	struct bucket **full = NULL;
	size_t n = 0, cap = 0;
	dict_iter_init(&it, &rl->buckets);
	while ((b = dict_iter_next(&it))) {
		if (b->tat_us > now_ms * 1000)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			full = xrealloc(full, cap * sizeof(*full));
		}
		full[n++] = b;
	}
	for (size_t i = 0; i < n; i++) {
		dict_del(&rl->buckets, full[i]->user_id);
		free(full[i]);
	}
	free(full);
}

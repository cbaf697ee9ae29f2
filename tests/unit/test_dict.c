/*
 * test_dict.c - the hash table: put, get, replace, delete, iterate; and
 * keys crafted to collide in FNV-1a (the unkeyed hash it once used) spread
 * over the buckets under the keyed hash.
 *
 * The colliding keys are a Joux multicollision: a birthday search finds two
 * 6-character strings that take FNV-1a from one state to the same next
 * state; k such pairs, one after another, give 2^k keys of 6k characters
 * with one 32-bit FNV-1a hash.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "dict.h"
#include "topics.h"
#include "util.h"

#define BLOCK       6  /* characters per colliding block */
#define PAIRS       10 /* 2^10 = 1024 colliding keys */
#define NKEYS       (1u << PAIRS)
#define SEARCH_BITS 19 /* birthday table: 512 Ki slots, enough for 2^32 */

static const char ALPHABET[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

static uint32_t fnv1a_from(uint32_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

/* A pseudo-random block (xorshift64: structured blocks such as a counter's
 * collide in FNV-1a far less often than random ones). */
static void random_block(uint64_t *state, char out[BLOCK])
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	for (int i = 0; i < BLOCK; i++)
		out[i] = ALPHABET[(x >> (8 * i)) % 62];
}

/*
 * Finds two different blocks taking FNV-1a from state h to the same state;
 * stores them in a and b and returns that state. A birthday search: about
 * 2^16 random blocks, the table holds 2^SEARCH_BITS.
 */
static uint32_t find_pair(uint32_t h, uint64_t *rng, char a[BLOCK], char b[BLOCK])
{
	size_t slots = (size_t)1 << SEARCH_BITS;
	uint32_t *seen_hash = xcalloc(slots, sizeof(*seen_hash));
	char(*seen_block)[BLOCK] = xcalloc(slots, BLOCK);
	unsigned char *used = xcalloc(slots, 1);
	uint32_t next = h;
	for (size_t tries = 0; tries < slots / 2; tries++) {
		char blk[BLOCK];
		random_block(rng, blk);
		uint32_t v = fnv1a_from(h, blk, BLOCK);
		size_t i = (v * 2654435761u) >> (32 - SEARCH_BITS);
		while (used[i] && seen_hash[i] != v)
			i = (i + 1) & (slots - 1);
		if (used[i] && memcmp(seen_block[i], blk, BLOCK) != 0) {
			memcpy(a, seen_block[i], BLOCK);
			memcpy(b, blk, BLOCK);
			next = v;
			break;
		}
		used[i] = 1;
		seen_hash[i] = v;
		memcpy(seen_block[i], blk, BLOCK);
	}
	CHECK(next != h); /* a pair was found */
	free(seen_hash);
	free(seen_block);
	free(used);
	return next;
}

/* Fills keys[NKEYS] (new strings: free them) that share one FNV-1a hash. */
static void make_colliding_keys(char **keys)
{
	char pair[PAIRS][2][BLOCK];
	uint32_t h = 2166136261u;
	uint64_t rng = 0x9e3779b97f4a7c15u;
	for (int p = 0; p < PAIRS; p++)
		h = find_pair(h, &rng, pair[p][0], pair[p][1]);
	for (uint32_t k = 0; k < NKEYS; k++) {
		keys[k] = xmalloc(PAIRS * BLOCK + 1);
		for (int p = 0; p < PAIRS; p++)
			memcpy(keys[k] + p * BLOCK, pair[p][(k >> p) & 1], BLOCK);
		keys[k][PAIRS * BLOCK] = '\0';
	}
}

static void free_keys(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
}

static const unsigned char KEY_A[DICT_HASH_KEY_LEN] = "0123456789abcdef";
static const unsigned char KEY_B[DICT_HASH_KEY_LEN] = { 0xde, 0xad, 0xbe, 0xef, 1, 2,  3, 4,
							5,    6,    7,    8,    9, 10, 11 };

static void put_get_replace_delete(void)
{
	dict_set_hash_key(KEY_A);
	struct dict d;
	dict_init(&d);
	int one = 1, two = 2, three = 3;
	CHECK(dict_get(&d, "alice") == NULL);
	CHECK(dict_put(&d, "alice", &one) == NULL);
	CHECK(dict_put(&d, "bob", &two) == NULL);
	CHECK(dict_get(&d, "alice") == &one);
	CHECK(dict_put(&d, "alice", &three) == &one);
	CHECK(dict_get(&d, "alice") == &three);
	CHECK(d.count == 2);
	CHECK(dict_del(&d, "alice") == &three);
	CHECK(dict_del(&d, "alice") == NULL);
	CHECK(dict_get(&d, "bob") == &two);
	CHECK(d.count == 1);
	dict_release(&d);
}

static void iteration_visits_every_value_once_across_growth(void)
{
	dict_set_hash_key(KEY_A);
	struct dict d;
	dict_init(&d);
	enum { N = 5000 };
	static char names[N][16];
	static int seen[N];
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "user-%d", i);
		dict_put(&d, names[i], names[i]);
	}
	CHECK(d.count == N);
	struct dict_iter it;
	const char *v;
	int visits = 0;
	dict_iter_init(&it, &d);
	while ((v = dict_iter_next(&it))) {
		seen[atoi(v + 5)]++;
		visits++;
	}
	CHECK(visits == N);
	int once = 1;
	for (int i = 0; i < N; i++)
		once &= seen[i] == 1;
	CHECK(once);
	dict_release(&d);
}

static void crafted_keys_collide_in_fnv1a_and_are_valid_ids(void)
{
	char *keys[NKEYS];
	make_colliding_keys(keys);
	uint32_t h0 = fnv1a_from(2166136261u, keys[0], strlen(keys[0]));
	int all_collide = 1, all_valid = 1, all_distinct = 1;
	for (uint32_t k = 0; k < NKEYS; k++) {
		all_collide &= fnv1a_from(2166136261u, keys[k], strlen(keys[k])) == h0;
		all_valid &= id_is_valid(keys[k], strlen(keys[k]));
		if (k)
			all_distinct &= strcmp(keys[k], keys[k - 1]) != 0;
	}
	CHECK(all_collide);
	CHECK(all_valid);
	CHECK(all_distinct);
	free_keys(keys, NKEYS);
}

/* Puts every crafted key in a fresh dict under key; returns its longest chain. */
static size_t longest_chain_of_crafted_keys(const unsigned char key[DICT_HASH_KEY_LEN], char **keys)
{
	dict_set_hash_key(key);
	struct dict d;
	dict_init(&d);
	for (uint32_t k = 0; k < NKEYS; k++)
		dict_put(&d, keys[k], keys[k]);
	int all_found = 1;
	for (uint32_t k = 0; k < NKEYS; k++)
		all_found &= dict_get(&d, keys[k]) == keys[k];
	CHECK(all_found);
	struct dict_stats st;
	dict_stats(&d, &st);
	CHECK(st.count == NKEYS);
	printf("  %u FNV-1a-colliding keys: %zu buckets, longest chain %zu\n", NKEYS, st.nbuckets,
	       st.longest_chain);
	dict_release(&d);
	return st.longest_chain;
}

static void fnv1a_colliding_keys_spread_over_the_buckets(void)
{
	char *keys[NKEYS];
	make_colliding_keys(keys);
	/* 1024 keys in at least 1024 buckets: a fair hash's fullest bucket
	 * holds about 6; FNV-1a put all 1024 in one chain. */
	CHECK(longest_chain_of_crafted_keys(KEY_A, keys) <= 12);
	CHECK(longest_chain_of_crafted_keys(KEY_B, keys) <= 12);
	free_keys(keys, NKEYS);
}

int main(void)
{
	RUN(put_get_replace_delete);
	RUN(iteration_visits_every_value_once_across_growth);
	RUN(crafted_keys_collide_in_fnv1a_and_are_valid_ids);
	RUN(fnv1a_colliding_keys_spread_over_the_buckets);
	return check_done();
}

/*
 * dict.h - a hash table from NUL-terminated string keys to pointers.
 *
 * The dict borrows keys: a key must stay valid and unchanged while its entry
 * exists (usually it lives inside the value). The dict never frees values;
 * their owner does. Pure data structure, not thread-safe.
 *
 * Keys are often chosen by anyone (user ids), so they are hashed with a
 * keyed hash (SipHash-2-4) under one key per process: without the key no
 * one can craft keys that share a bucket. The key comes from outside
 * (dict_set_hash_key), so the dict stays free of randomness.
 */
#ifndef CALLSIGNAL_DICT_H
#define CALLSIGNAL_DICT_H

#include <stddef.h>

struct dict_entry;

#define DICT_HASH_KEY_LEN 16

/*
 * Sets the hash key of every dict of the process: random bytes at start
 * (main), fixed ones in tests. Call it before any dict holds an entry and
 * before other threads start; until then the key is all zeros.
 */
void dict_set_hash_key(const unsigned char key[DICT_HASH_KEY_LEN]);

struct dict {
	struct dict_entry **buckets;
	size_t nbuckets; /* a power of two, or 0 before the first insert */
	size_t count;
};

void dict_init(struct dict *d);
/* Frees the table itself; values stay with their owners. */
void dict_release(struct dict *d);
void *dict_get(const struct dict *d, const char *key);
/* Inserts or replaces; returns the previous value for key, or NULL. */
void *dict_put(struct dict *d, const char *key, void *value);
/* Removes key; returns its value, or NULL when absent. */
void *dict_del(struct dict *d, const char *key);

struct dict_stats {
	size_t count;
	size_t nbuckets;
	size_t longest_chain; /* entries in the fullest bucket */
};

void dict_stats(const struct dict *d, struct dict_stats *out);

struct dict_iter {
	const struct dict *d;
	size_t bucket;
	struct dict_entry *next;
};

void dict_iter_init(struct dict_iter *it, const struct dict *d);
/* Returns the next value, or NULL at the end. The dict must not change meanwhile. */
void *dict_iter_next(struct dict_iter *it);

#endif

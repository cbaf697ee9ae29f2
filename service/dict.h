/*
 * dict.h - a hash table from NUL-terminated string keys to pointers.
 *
 * The dict borrows keys: a key must stay valid and unchanged while its entry
 * exists (usually it lives inside the value). The dict never frees values;
 * their owner does. Pure data structure, not thread-safe.
 */
#ifndef CALLSIGNAL_DICT_H
#define CALLSIGNAL_DICT_H

#include <stddef.h>

struct dict_entry;

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

struct dict_iter {
	const struct dict *d;
	size_t bucket;
	struct dict_entry *next;
};

void dict_iter_init(struct dict_iter *it, const struct dict *d);
/* Returns the next value, or NULL at the end. The dict must not change meanwhile. */
void *dict_iter_next(struct dict_iter *it);

#endif

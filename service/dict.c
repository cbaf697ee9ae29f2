/*
 * dict.c - see dict.h. Separate chaining, SipHash-2-4 hashes under the
 * process's key, doubling at load 1.
 *
 * The one includer of sodium.h (libsodium): crypto_shorthash is SipHash-2-4,
 * a pure function of its input and key, so the dict stays pure. It needs
 * no sodium_init(): that only picks CPU-specific code for other primitives
 * and seeds libsodium's random generator, neither of which it uses.
 */
#include "dict.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

_Static_assert(DICT_HASH_KEY_LEN == crypto_shorthash_KEYBYTES, "dict hash key is SipHash's");

struct dict_entry {
	struct dict_entry *next;
	const char *key;
	void *value;
	uint64_t hash;
};

static unsigned char hash_key[DICT_HASH_KEY_LEN];

void dict_set_hash_key(const unsigned char key[DICT_HASH_KEY_LEN])
{
	memcpy(hash_key, key, DICT_HASH_KEY_LEN);
}

static uint64_t hash_str(const char *s)
{
	unsigned char out[crypto_shorthash_BYTES];
	crypto_shorthash(out, (const unsigned char *)s, strlen(s), hash_key);
	uint64_t h;
	memcpy(&h, out, sizeof(h));
	return h;
}

void dict_init(struct dict *d)
{
	d->buckets = NULL;
	d->nbuckets = 0;
	d->count = 0;
}

void dict_release(struct dict *d)
{
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct dict_entry *e = d->buckets[i];
		while (e) {
			struct dict_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(d->buckets);
	dict_init(d);
}

static struct dict_entry **find_slot(const struct dict *d, const char *key, uint64_t h)
{
	if (!d->nbuckets)
		return NULL;
	struct dict_entry **slot = &d->buckets[h & (d->nbuckets - 1)];
	while (*slot && ((*slot)->hash != h || strcmp((*slot)->key, key) != 0))
		slot = &(*slot)->next;
	return slot;
}

void *dict_get(const struct dict *d, const char *key)
{
	struct dict_entry **slot = find_slot(d, key, hash_str(key));
	return slot && *slot ? (*slot)->value : NULL;
}

static void grow(struct dict *d)
{
	size_t n = d->nbuckets ? d->nbuckets * 2 : 16;
	struct dict_entry **b = xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct dict_entry *e = d->buckets[i];
		while (e) {
			struct dict_entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(d->buckets);
	d->buckets = b;
	d->nbuckets = n;
}

void *dict_put(struct dict *d, const char *key, void *value)
{
	uint64_t h = hash_str(key);
	struct dict_entry **slot = find_slot(d, key, h);
	if (slot && *slot) {
		void *old = (*slot)->value;
		(*slot)->key = key;
		(*slot)->value = value;
		return old;
	}
	if (d->count >= d->nbuckets)
		grow(d);
	struct dict_entry *e = xmalloc(sizeof(*e));
	e->key = key;
	e->value = value;
	e->hash = h;
	e->next = d->buckets[h & (d->nbuckets - 1)];
	d->buckets[h & (d->nbuckets - 1)] = e;
	d->count++;
	return NULL;
}

void *dict_del(struct dict *d, const char *key)
{
	struct dict_entry **slot = find_slot(d, key, hash_str(key));
	if (!slot || !*slot)
		return NULL;
	struct dict_entry *e = *slot;
	void *value = e->value;
	*slot = e->next;
	free(e);
	d->count--;
	return value;
}

void dict_stats(const struct dict *d, struct dict_stats *out)
{
	out->count = d->count;
	out->nbuckets = d->nbuckets;
	out->longest_chain = 0;
	for (size_t i = 0; i < d->nbuckets; i++) {
		size_t n = 0;
		for (const struct dict_entry *e = d->buckets[i]; e; e = e->next)
			n++;
		if (n > out->longest_chain)
			out->longest_chain = n;
	}
}

void dict_iter_init(struct dict_iter *it, const struct dict *d)
{
	it->d = d;
	it->bucket = 0;
	it->next = NULL;
}

void *dict_iter_next(struct dict_iter *it)
{
	while (!it->next) {
		if (it->bucket >= it->d->nbuckets)
			return NULL;
		it->next = it->d->buckets[it->bucket++];
	}
	struct dict_entry *e = it->next;
	it->next = e->next;
	return e->value;
}

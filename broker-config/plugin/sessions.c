/*
 * sessions.c - table of connected user clients and their tokens (see
 * sessions.h). An unsorted array: put and remove scan it, which costs
 * microseconds even for tens of thousands of clients and happens once per
 * connect and disconnect. Running out of memory fails the one put; it never
 * aborts (the broker runs this code).
 */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

static void session_free(struct session *s)
{
	if (s->token != NULL) {
		for (volatile char *p = s->token; *p != '\0'; p++)
			*p = '\0';
	}
	free(s->token);
	free(s->username);
	free(s->client_id);
	memset(s, 0, sizeof(*s));
}

int sessions_put(struct session_table *t, const void *client, const char *client_id, const char *username,
		 const char *token)
{
	struct session fresh = { client, strdup(client_id), strdup(username), strdup(token) };
	struct session *s = NULL;

	if (fresh.client_id == NULL || fresh.username == NULL || fresh.token == NULL)
		goto fail;
	for (size_t i = 0; i < t->count; i++) {
		if (t->items[i].client == client) {
			s = &t->items[i];
			session_free(s);
			break;
		}
	}
	if (s == NULL) {
		if (t->count == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 64;
			struct session *items = realloc(t->items, cap * sizeof(*t->items));

			if (items == NULL)
				goto fail;
			t->items = items;
			t->cap = cap;
		}
		s = &t->items[t->count++];
	}
	*s = fresh;
	return 0;
fail:
	session_free(&fresh);
	return -1;
}

void sessions_remove_at(struct session_table *t, size_t i)
{
	session_free(&t->items[i]);
	t->items[i] = t->items[--t->count];
}

void sessions_remove(struct session_table *t, const void *client)
{
	for (size_t i = 0; i < t->count; i++) {
		if (t->items[i].client == client) {
			sessions_remove_at(t, i);
			return;
		}
	}
}

void sessions_release(struct session_table *t)
{
	for (size_t i = 0; i < t->count; i++)
		session_free(&t->items[i]);
	free(t->items);
	memset(t, 0, sizeof(*t));
}

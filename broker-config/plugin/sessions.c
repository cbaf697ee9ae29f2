/*
 * sessions.c - table of connected user clients and their tokens (see
 * sessions.h). An unsorted array: put and remove scan it, which costs
 * microseconds even for tens of thousands of clients and happens once per
 * connect and disconnect.
 */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

static char *xstrdup(const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		abort();
	return copy;
}

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

void sessions_put(struct session_table *t, const void *client, const char *client_id, const char *username,
		  const char *token)
{
	struct session *s = NULL;

	for (size_t i = 0; i < t->count; i++) {
		if (t->items[i].client == client) {
			s = &t->items[i];
			session_free(s);
			break;
		}
	}
	if (s == NULL) {
		if (t->count == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 64;
			t->items = realloc(t->items, t->cap * sizeof(*t->items));
			if (t->items == NULL)
				abort();
		}
		s = &t->items[t->count++];
	}
	s->client = client;
	s->client_id = xstrdup(client_id);
	s->username = xstrdup(username);
	s->token = xstrdup(token);
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

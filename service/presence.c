/*
 * presence.c - see presence.h. Each user is one allocation for the struct
 * plus its strings; each device a small node holding its client id.
 */
#include "presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct presence_device {
	struct presence_device *next;
	int64_t seen_ms; /* wall ms it was last heard; 0 before presence_device_seen */
	int leased;      /* it refreshed its presence at least once */
	char client_id[];
};

/* A lease kept over presence_clear until the device is heard again. */
struct carried_lease {
	int64_t seen_ms;
	char key[]; /* "user/client" */
};

static void carried_free(struct dict *carried)
{
	struct dict_iter it;
	struct carried_lease *c;
	dict_iter_init(&it, carried);
	while ((c = dict_iter_next(&it)))
		free(c);
	dict_release(carried);
	dict_init(carried);
}

void presence_init(struct presence *p)
{
	dict_init(&p->carried);
	dict_init(&p->users);
	p->head = p->tail = NULL;
	p->version = 0;
}

static void user_free(struct presence_user *u)
{
	struct presence_device *d = u->devices;
	while (d) {
		struct presence_device *next = d->next;
		free(d);
		d = next;
	}
	user_info_release(&u->info);
	free(u);
}

void presence_clear(struct presence *p)
{
	carried_free(&p->carried);
	for (struct presence_user *l = p->head; l; l = l->next)
		for (struct presence_device *d = l->devices; d; d = d->next) {
			if (!d->leased)
				continue;
			size_t n = strlen(l->info.id) + 1 + strlen(d->client_id) + 1;
			struct carried_lease *c = xmalloc(sizeof(*c) + n);
			c->seen_ms = d->seen_ms;
			snprintf(c->key, n, "%s/%s", l->info.id, d->client_id);
			dict_put(&p->carried, c->key, c);
		}
	struct presence_user *u = p->head;
	while (u) {
		struct presence_user *next = u->next;
		user_free(u);
		u = next;
	}
	dict_release(&p->users);
	p->head = p->tail = NULL;
	p->version++;
}

void presence_release(struct presence *p)
{
	presence_clear(p);
	carried_free(&p->carried);
	dict_release(&p->carried);
}

static int set_text(char **dst, const char *src)
{
	if (strcmp(*dst, src) == 0)
		return 0;
	free(*dst);
	*dst = xstrdup(src);
	return 1;
}

enum presence_change presence_device_up(struct presence *p, const struct user_info *info,
					const char *client_id)
{
	struct presence_user *u = dict_get(&p->users, info->id);
	enum presence_change change = PRESENCE_UNCHANGED;
	if (!u) {
		u = xcalloc(1, sizeof(*u));
		user_info_copy(&u->info, info);
		u->prev = p->tail;
		if (p->tail)
			p->tail->next = u;
		else
			p->head = u;
		p->tail = u;
		dict_put(&p->users, u->info.id, u);
		change = PRESENCE_CAME_ONLINE;
	} else {
		int changed = set_text(&u->info.name, info->name);
		changed |= set_text(&u->info.location, info->location);
		if (changed)
			change = PRESENCE_UPDATED;
	}
	struct presence_device *d;
	for (d = u->devices; d; d = d->next)
		if (strcmp(d->client_id, client_id) == 0)
			break;
	if (!d) {
		size_t n = strlen(client_id) + 1;
		d = xmalloc(sizeof(*d) + n);
		memcpy(d->client_id, client_id, n);
		d->seen_ms = 0;
		d->leased = 0;
		d->next = u->devices;
		u->devices = d;
		u->ndevices++;
		if (change == PRESENCE_UNCHANGED)
			change = PRESENCE_UPDATED;
	}
	if (change != PRESENCE_UNCHANGED)
		p->version++;
	return change;
}

enum presence_change presence_device_down(struct presence *p, const char *user_id, const char *client_id)
{
	struct presence_user *u = dict_get(&p->users, user_id);
	if (!u)
		return PRESENCE_UNCHANGED;
	struct presence_device **slot = &u->devices;
	while (*slot && strcmp((*slot)->client_id, client_id) != 0)
		slot = &(*slot)->next;
	if (!*slot)
		return PRESENCE_UNCHANGED;
	struct presence_device *gone = *slot;
	*slot = gone->next;
	free(gone);
	if (--u->ndevices > 0)
		return PRESENCE_DEVICE_GONE;

	dict_del(&p->users, u->info.id);
	if (u->prev)
		u->prev->next = u->next;
	else
		p->head = u->next;
	if (u->next)
		u->next->prev = u->prev;
	else
		p->tail = u->prev;
	user_free(u);
	p->version++;
	return PRESENCE_WENT_OFFLINE;
}

void presence_device_seen(struct presence *p, const char *user_id, const char *client_id, int64_t now_ms)
{
	struct presence_user *u = dict_get(&p->users, user_id);
	for (struct presence_device *d = u ? u->devices : NULL; d; d = d->next)
		if (strcmp(d->client_id, client_id) == 0) {
			d->leased |= d->seen_ms != 0;
			d->seen_ms = now_ms;
			if (d->leased || !p->carried.count)
				return;
			size_t n = strlen(user_id) + 1 + strlen(client_id) + 1;
			char *key = xmalloc(n);
			snprintf(key, n, "%s/%s", user_id, client_id);
			struct carried_lease *c = dict_del(&p->carried, key);
			free(key);
			if (c) {
				d->leased = 1;
				d->seen_ms = c->seen_ms;
				free(c);
			}
			return;
		}
}

size_t presence_expired(const struct presence *p, int64_t before_ms, struct presence_gone *out, size_t max)
{
	size_t n = 0;
	for (const struct presence_user *u = p->head; u && n < max; u = u->next)
		for (const struct presence_device *d = u->devices; d && n < max; d = d->next)
			if (d->leased && d->seen_ms < before_ms)
				out[n++] = (struct presence_gone){ u->info.id, d->client_id };
	return n;
}

const struct presence_user *presence_find(const struct presence *p, const char *user_id)
{
	return dict_get(&p->users, user_id);
}

size_t presence_count(const struct presence *p)
{
	return p->users.count;
}

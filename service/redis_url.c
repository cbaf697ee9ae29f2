/*
 * redis_url.c - REDIS_URL into a struct redis_url (redis_url.h): a
 * master's address, or a list of sentinels and a master's name. Pure, no
 * I/O; called by config.c's check and by store_redis.c.
 */
#include "redis_url.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SCHEME_PLAIN    "redis://"
#define SCHEME_SENTINEL "redis-sentinel://"

/* host[:port] of len bytes at p into a; -1 with *why when it is not that. */
static int parse_addr(struct redis_addr *a, const char *p, size_t len, int default_port, const char **why)
{
	const char *colon = memchr(p, ':', len);
	size_t hostlen = colon ? (size_t)(colon - p) : len;
	if (!hostlen || hostlen > REDIS_URL_HOST_MAX) {
		*why = "a host name is missing or longer than 253 bytes";
		return -1;
	}
	a->port = default_port;
	if (colon) {
		size_t n = len - hostlen - 1;
		long port = 0;
		for (size_t i = 0; i < n; i++) {
			if (colon[1 + i] < '0' || colon[1 + i] > '9' || port > 65535) {
				port = -1;
				break;
			}
			port = port * 10 + (colon[1 + i] - '0');
		}
		if (!n || port < 1 || port > 65535) {
			*why = "a port is not a number from 1 to 65535";
			return -1;
		}
		a->port = (int)port;
	}
	a->host = xstrndup(p, hostlen);
	return 0;
}

/* "/db" at the end of the URL (or nothing, or "/"). */
static int parse_db(struct redis_url *u, const char *p, const char **why)
{
	if (!*p || !strcmp(p, "/"))
		return 0;
	char *end;
	long db = strtol(p + 1, &end, 10);
	if (*p != '/' || p[1] < '0' || p[1] > '9' || *end || db > 1000000) {
		*why = "the database is not a number (redis://host:6379/0)";
		return -1;
	}
	u->db = (int)db;
	return 0;
}

int redis_url_parse(struct redis_url *u, const char *url, const char **why)
{
	memset(u, 0, sizeof(*u));
	const char *p = url;
	if (!strncmp(p, SCHEME_SENTINEL, strlen(SCHEME_SENTINEL))) {
		u->sentinel = 1;
		p += strlen(SCHEME_SENTINEL);
	} else if (!strncmp(p, SCHEME_PLAIN, strlen(SCHEME_PLAIN))) {
		p += strlen(SCHEME_PLAIN);
	} else {
		*why = "it must start with redis:// or redis-sentinel://";
		return -1;
	}
	const char *at = strchr(p, '@');
	if (at) {
		/* The password alone, or with the user "default" (whom AUTH password is for). */
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon || (colon != p && (colon - p != 7 || strncmp(p, "default", 7) != 0))) {
			*why = "ACL user names other than default are not supported: give the password "
			       "alone, as :password@";
			return -1;
		}
		if (colon + 1 < at)
			u->password = xstrndup(colon + 1, (size_t)(at - colon - 1));
		p = at + 1;
	}
	size_t hosts = strcspn(p, "/");
	for (const char *h = p; h < p + hosts;) {
		size_t len = strcspn(h, ",/");
		if (u->naddr == REDIS_URL_HOSTS_MAX) {
			*why = "more than 16 sentinels";
			return -1;
		}
		if (parse_addr(&u->addr[u->naddr++], h, len, u->sentinel ? 26379 : 6379, why) != 0)
			return -1;
		h += len;
		if (*h == ',') {
			if (!u->sentinel) {
				*why = "several hosts need redis-sentinel://";
				return -1;
			}
			h++;
			if (h == p + hosts) {
				*why = "a host name is missing or longer than 253 bytes";
				return -1;
			}
		}
	}
	if (!u->naddr) {
		*why = "a host name is missing or longer than 253 bytes";
		return -1;
	}
	p += hosts;
	if (u->sentinel) {
		size_t len = *p == '/' ? strcspn(p + 1, "/") : 0;
		if (!len) {
			*why = "the master's name is missing (redis-sentinel://host:26379/mymaster)";
			return -1;
		}
		u->master = xstrndup(p + 1, len);
		p += 1 + len;
	}
	return parse_db(u, p, why);
}

void redis_url_release(struct redis_url *u)
{
	for (size_t i = 0; i < u->naddr; i++)
		free(u->addr[i].host);
	free(u->master);
	free(u->password);
	memset(u, 0, sizeof(*u));
}

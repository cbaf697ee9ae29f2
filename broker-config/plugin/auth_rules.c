/*
 * auth_rules.c - the broker's access rules in jwt mode (see auth_rules.h).
 *
 * Pure functions over strings. Topic filters are compared level by level
 * without allocating; the per-user patterns are built in a stack buffer,
 * which is safe because a valid id is at most AUTH_ID_MAX bytes.
 */
#include "auth_rules.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence starting at s, or 0 when it is not one. */
static size_t utf8_sequence_length(const unsigned char *s)
{
	unsigned int c = s[0];
	size_t len;
	unsigned int min;
	unsigned int cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		min = 0x80;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		min = 0x800;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		min = 0x10000;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the terminating NUL */
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool auth_id_is_valid(const char *id)
{
	const unsigned char *s = (const unsigned char *)id;
	size_t total = 0;

	if (id == NULL || id[0] == '\0')
		return false;
	while (*s != '\0') {
		size_t n;

		if (*s < 0x20 || *s == 0x7f || *s == '/' || *s == '+' || *s == '#')
			return false;
		n = utf8_sequence_length(s);
		if (n == 0)
			return false;
		s += n;
		total += n;
		if (total > AUTH_ID_MAX)
			return false;
	}
	return true;
}

bool auth_filter_within(const char *filter, const char *pattern)
{
	const char *f = filter;
	const char *p = pattern;

	if (filter == NULL || pattern == NULL)
		return false;
	for (;;) {
		size_t fl = strcspn(f, "/");
		size_t pl = strcspn(p, "/");

		if (pl == 1 && p[0] == '#')
			return true;
		if (pl == 1 && p[0] == '+') {
			/* '+' covers any single level, but not the many levels of '#'. */
			if (fl == 1 && f[0] == '#')
				return false;
		} else if (fl != pl || memcmp(f, p, fl) != 0) {
			/* A literal level only covers itself: a wildcard in the
			 * filter compares unequal to it and is refused here. */
			return false;
		}
		f += fl;
		p += pl;
		if (*f == '\0' || *p == '\0')
			return *f == '\0' && *p == '\0';
		f++;
		p++;
	}
}

static const char presence_pattern[] = "users/+/presence/+";

static bool user_allows(const char *user_id, const char *client_id, enum auth_access access,
			const char *topic)
{
	char own[AUTH_ID_MAX * 2 + 32];

	if (!auth_id_is_valid(user_id))
		return false;
	switch (access) {
	case AUTH_ACCESS_SUBSCRIBE:
	case AUTH_ACCESS_READ:
		snprintf(own, sizeof(own), "users/%s/events", user_id);
		return auth_filter_within(topic, own) || auth_filter_within(topic, presence_pattern);
	case AUTH_ACCESS_WRITE:
		/* An invalid client id could smuggle levels into the topic. */
		if (!auth_id_is_valid(client_id))
			return false;
		snprintf(own, sizeof(own), "users/%s/presence/%s", user_id, client_id);
		return strcmp(topic, own) == 0;
	case AUTH_ACCESS_UNSUBSCRIBE:
		return true;
	}
	return false;
}

static bool service_allows(enum auth_access access, const char *topic)
{
	switch (access) {
	case AUTH_ACCESS_SUBSCRIBE:
	case AUTH_ACCESS_READ:
		return auth_filter_within(topic, presence_pattern);
	case AUTH_ACCESS_WRITE:
		return auth_filter_within(topic, "users/+/events");
	case AUTH_ACCESS_UNSUBSCRIBE:
		return true;
	}
	return false;
}

bool auth_allows(enum auth_role role, const char *user_id, const char *client_id, enum auth_access access,
		 const char *topic)
{
	if (topic == NULL)
		return false;
	switch (role) {
	case AUTH_ROLE_USER:
		return user_allows(user_id, client_id, access, topic);
	case AUTH_ROLE_SERVICE:
		return service_allows(access, topic);
	}
	return false;
}

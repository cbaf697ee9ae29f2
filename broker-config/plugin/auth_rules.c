/*
 * auth_rules.c - the broker's access rules in jwt mode (see auth_rules.h).
 *
 * Pure functions over strings. Topic filters are compared level by level
 * without allocating; the per-user patterns are built in a stack buffer,
 * which is safe because a valid id is at most ID_MAX_LEN bytes (common/ids.h,
 * the service's grammar).
 */
#include "auth_rules.h"

#include <stdio.h>
#include <string.h>

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
static const char call_pattern[] = "users/+/call";

static bool user_allows(const char *user_id, const char *client_id, enum auth_access access,
			const char *topic)
{
	char own[ID_MAX_LEN * 2 + 32];

	/* Also checked at CONNECT; here it keeps any other client id from getting a right. */
	if (!client_id_names_user(client_id, user_id))
		return false;
	switch (access) {
	case AUTH_ACCESS_SUBSCRIBE:
	case AUTH_ACCESS_READ:
		if (auth_filter_within(topic, presence_pattern))
			return true;
		snprintf(own, sizeof(own), "users/%s/events", user_id);
		if (auth_filter_within(topic, own))
			return true;
		snprintf(own, sizeof(own), "users/%s/call", user_id);
		return auth_filter_within(topic, own);
	case AUTH_ACCESS_WRITE:
	case AUTH_ACCESS_CLEAR:
		snprintf(own, sizeof(own), "users/%s/presence/%s", user_id, client_id);
		return strcmp(topic, own) == 0;
	case AUTH_ACCESS_UNSUBSCRIBE:
		return true;
	}
	return false;
}

/* The service's end-of-replay marker, callsignal/sync/{its client id}: read and written by itself only. */
static bool is_own_sync_topic(const char *client_id, const char *topic)
{
	static const char prefix[] = "callsignal/sync/";

	return id_str_is_valid(client_id) && strncmp(topic, prefix, sizeof(prefix) - 1) == 0 &&
	       strcmp(topic + sizeof(prefix) - 1, client_id) == 0;
}

static bool service_allows(const char *client_id, enum auth_access access, const char *topic)
{
	switch (access) {
	case AUTH_ACCESS_SUBSCRIBE:
	case AUTH_ACCESS_READ:
		return auth_filter_within(topic, presence_pattern) ||
		       auth_filter_within(topic, call_pattern) || is_own_sync_topic(client_id, topic);
	case AUTH_ACCESS_CLEAR:
		/* The presence lease: any device's retained presence, emptied (a
		 * concrete topic: the broker refuses wildcards in a publish anyway);
		 * and what the service may write, it may also clear. */
		if (strpbrk(topic, "+#") == NULL && auth_filter_within(topic, presence_pattern))
			return true;
		/* fall through */
	case AUTH_ACCESS_WRITE:
		return auth_filter_within(topic, "users/+/events") ||
		       auth_filter_within(topic, call_pattern) || is_own_sync_topic(client_id, topic);
	case AUTH_ACCESS_UNSUBSCRIBE:
		return true;
	}
	return false;
}

bool auth_client_id_allowed(enum auth_role role, const char *user_id, const char *client_id)
{
	switch (role) {
	case AUTH_ROLE_USER:
		return client_id_names_user(client_id, user_id);
	case AUTH_ROLE_SERVICE:
		return id_str_is_valid(client_id) && !client_id_names_a_user(client_id);
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
		return service_allows(client_id, access, topic);
	}
	return false;
}

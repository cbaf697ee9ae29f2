/*
 * topics.c - see topics.h. No I/O, no state; the id grammar itself is common/ids.c.
 */
#include "topics.h"

#include <stdio.h>
#include <string.h>

const char TOPIC_PRESENCE_ALL[] = "users/+/presence/+";
const char TOPIC_CALL_ALL[] = "users/+/call";
static const char EVENTS_FORMAT[] = "users/%s/events";
static const char CALL_FORMAT[] = "users/%s/call";

static int take_id(const char *start, size_t len, char out[ID_MAX_LEN + 1])
{
	if (!id_is_valid(start, len))
		return -1;
	memcpy(out, start, len);
	out[len] = '\0';
	return 0;
}

int topic_parse_presence(const char *topic, size_t len, struct presence_topic *out)
{
	static const char prefix[] = "users/";
	static const char middle[] = "/presence/";
	if (len < sizeof(prefix) - 1 || memcmp(topic, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	const char *user = topic + sizeof(prefix) - 1;
	const char *end = topic + len;
	const char *slash = memchr(user, '/', (size_t)(end - user));
	if (!slash || (size_t)(end - slash) < sizeof(middle) - 1 ||
	    memcmp(slash, middle, sizeof(middle) - 1) != 0)
		return -1;
	const char *client = slash + sizeof(middle) - 1;
	if (take_id(user, (size_t)(slash - user), out->user_id) != 0)
		return -1;
	return take_id(client, (size_t)(end - client), out->client_id);
}

void topic_events(const char *user_id, char out[TOPIC_MAX_LEN])
{
	snprintf(out, TOPIC_MAX_LEN, EVENTS_FORMAT, user_id);
}

void topic_call(const char *user_id, char out[TOPIC_MAX_LEN])
{
	snprintf(out, TOPIC_MAX_LEN, CALL_FORMAT, user_id);
}

void topic_presence(const char *user_id, const char *client_id, char out[TOPIC_MAX_LEN])
{
	snprintf(out, TOPIC_MAX_LEN, "users/%s/presence/%s", user_id, client_id);
}

int topic_parse_call(const char *topic, size_t len, char user_id[ID_MAX_LEN + 1])
{
	static const char prefix[] = "users/";
	static const char suffix[] = "/call";
	size_t plen = sizeof(prefix) - 1, slen = sizeof(suffix) - 1;
	if (len <= plen + slen || memcmp(topic, prefix, plen) != 0 ||
	    memcmp(topic + len - slen, suffix, slen) != 0)
		return -1;
	return take_id(topic + plen, len - plen - slen, user_id);
}

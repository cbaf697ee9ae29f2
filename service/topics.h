/*
 * topics.h - PURE grammar of the service's MQTT topic names.
 *
 * User ids and client ids end up in topic names, so one rule decides what
 * an id may be, for REST and MQTT alike and for the broker plugin too: the
 * id grammar of common/ids.h (1..ID_MAX_LEN bytes of valid UTF-8 without
 * '/', '+', '#' or control characters),
 * included here so that users of topics.h see one grammar.
 */
#ifndef CALLSIGNAL_TOPICS_H
#define CALLSIGNAL_TOPICS_H

#include <stddef.h>

#include "ids.h"

/* Longest topic this module formats: "users/" id "/events" and a NUL. */
#define TOPIC_MAX_LEN (ID_MAX_LEN * 2 + 32)

extern const char TOPIC_PRESENCE_ALL[]; /* subscriptions of the service */
extern const char TOPIC_CALL_ALL[];

struct presence_topic {
	char user_id[ID_MAX_LEN + 1];
	char client_id[ID_MAX_LEN + 1];
};

/* Parses "users/{userId}/presence/{clientId}" with both ids valid.
 * Returns 0 on success, -1 otherwise (out is then unspecified). */
int topic_parse_presence(const char *topic, size_t len, struct presence_topic *out);

/* Writes "users/{userId}/events" into out (TOPIC_MAX_LEN bytes); user_id must be valid. */
void topic_events(const char *user_id, char out[TOPIC_MAX_LEN]);
/* Writes "users/{userId}/call" into out (TOPIC_MAX_LEN bytes); user_id must be valid. */
void topic_call(const char *user_id, char out[TOPIC_MAX_LEN]);
/* Writes "users/{userId}/presence/{clientId}" into out (TOPIC_MAX_LEN bytes); both ids valid. */
void topic_presence(const char *user_id, const char *client_id, char out[TOPIC_MAX_LEN]);
/* Parses "users/{userId}/call" with a valid id into user_id. Returns 0, or -1. */
int topic_parse_call(const char *topic, size_t len, char user_id[ID_MAX_LEN + 1]);

#endif

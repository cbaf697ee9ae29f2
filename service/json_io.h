/*
 * json_io.h - PURE mapping between JSON text and the service's structs.
 *
 * The only file that includes jansson.h. Parsing validates completely
 * (UTF-8, types, lengths) so nothing malformed gets past the edge.
 * Renderers return a new NUL-terminated string that the caller frees,
 * and its length in *len.
 */
#ifndef CALLSIGNAL_JSON_IO_H
#define CALLSIGNAL_JSON_IO_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "model.h"
#include "presence.h"
#include "util.h"

/* Points jansson at the aborting allocator. Call once at start-up. */
void json_io_init(void);

/*
 * Parses a presence payload into *out (strings owned by the caller, to be
 * released with user_info_release). Returns 0, or -1 with *why set to a
 * static description of what is wrong.
 */
int json_io_parse_user(const char *payload, size_t len, struct user_info *out, const char **why);

/*
 * Parses a Call as the service renders it (the retained users/{id}/call
 * payload) into *out, whose strings the caller releases with call_release.
 * Returns 0, or -1 with *why set to a static description.
 */
int json_io_parse_call(const char *payload, size_t len, struct call *out, const char **why);

/* What the service reads of a LiveKit webhook (protobuf JSON, zero values omitted). */
#define LIVEKIT_EVENT_ID_MAX                                                                                 \
	128 /* LiveKit's ids are "EV_" and a dozen characters; core keeps the last ones */
struct livekit_event {
	char *event;    /* "participant_joined", "room_finished", ... */
	char *id;       /* the event's id: a duplicate is dropped; NULL when absent */
	char *room;     /* room.name, or NULL */
	char *identity; /* participant.identity, or NULL */
};

/*
 * Parses a LiveKit webhook body into *out (new strings, released with
 * json_io_livekit_event_release). Unknown members are ignored. Returns 0,
 * or -1 with *why set to a static description when it is not a JSON object
 * with a string "event" or when a known member has the wrong type.
 */
int json_io_parse_livekit_event(const char *body, size_t len, struct livekit_event *out, const char **why);
void json_io_livekit_event_release(struct livekit_event *e);

struct req_field {
	const char *name; /* borrowed, set by the caller */
	char *value;      /* set on return: new string (caller frees), or NULL when absent */
	size_t len;       /* of value, which may hold a NUL (ids are then refused) */
};

/*
 * Parses a request body that must be a JSON object and picks the named
 * fields, each of which must be a string when present (NUL allowed: the
 * caller validates values, with their length). Returns ERR_OK,
 * ERR_BAD_JSON, or ERR_INVALID_FIELD with *bad_field naming the field.
 */
enum err json_io_parse_fields(const char *body, size_t len, struct req_field *fields, size_t n,
			      const char **bad_field);

/* Appends s as a JSON string literal (with quotes). */
void json_io_add_string(struct sbuf *sb, const char *s);

char *json_io_call(const struct call *call, size_t *len);
/* {"id": "{callId}:{revision}", "type": ..., "call": ...}: the id names the transition. */
char *json_io_event(enum event_type type, const struct call *call, size_t *len);
/* The same event around call already rendered by json_io_call (call_json borrowed). */
char *json_io_event_around(enum event_type type, const struct call *call, const char *call_json,
			   size_t call_len, size_t *len);
/* The array of online Users, in the order they came online. */
char *json_io_users(const struct presence *p, size_t *len);
/* {"message": ..., "error": ..., "call"?: ...}; call may be NULL. */
char *json_io_error(const char *message, const char *code, const struct call *call, size_t *len);
/* GET /health: status "ok", "restoring" (not ready) or "degraded" (broker down), broker state,
 * readiness and counters. */
char *json_io_health(int broker_up, int ready, size_t users, size_t calls, size_t live_calls, size_t outbox,
		     size_t *len);
/* An object of string members from NULL-terminated name/value pairs; a NULL value renders null. */
char *json_io_object(size_t *len, const char *name, const char *value, ...);

/* GET /calls: an array of the n calls. */
char *json_io_calls(const struct call *calls, size_t n, size_t *len);
/*
 * A webhook about a call: {"id", "event", "createdAt": unix seconds,
 * "call": call_json (borrowed, rendered by json_io_call), "duration":
 * seconds answered (finished calls only)}. The id is
 * "{callId}:{revision}:{event}", the same when a transition is sent again.
 */
char *json_io_webhook_call(const char *event, int64_t now_ms, const struct call *call, const char *call_json,
			   size_t call_len, size_t *len);
/* A webhook about presence: {"id", "event", "createdAt", "user": user or {"id": user_id}}; user may be NULL.
 */
char *json_io_webhook_presence(const char *id, const char *event, int64_t now_ms, const char *user_id,
			       const struct user_info *user, size_t *len);
/* Appends ,"webhooks":{...} to a JSON object body (steals body); GET /health with webhooks on. */
char *json_io_health_webhooks(char *body, size_t *len, uint64_t delivered, uint64_t failed, uint64_t rejected,
			      uint64_t overflowed, size_t queued);

#endif

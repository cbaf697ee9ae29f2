/*
 * model.h - the data of the contract: User, Call, Event.
 *
 * Plain structs shared by the pure modules (presence, calls, json_io).
 * Strings inside are owned by the struct that holds them.
 */
#ifndef CALLSIGNAL_MODEL_H
#define CALLSIGNAL_MODEL_H

#include <stdint.h>

#define CALL_ID_LEN   36  /* UUID v4 text */
#define USER_TEXT_MAX 256 /* longest name or location */

struct user_info {
	char *id;
	char *name;
	char *location;
};

/* Frees the three strings, not u itself. */
void user_info_release(struct user_info *u);
/* Deep copy; dst's old strings are not freed. */
void user_info_copy(struct user_info *dst, const struct user_info *src);

enum call_status {
	CALL_DIALLING,
	CALL_ONGOING,
	CALL_ENDED,
	CALL_DECLINED,
	CALL_MISSED,
	CALL_ERROR,
};

const char *call_status_name(enum call_status s);

static inline int call_status_is_live(enum call_status s)
{
	return s == CALL_DIALLING || s == CALL_ONGOING;
}

enum event_type { EVENT_INCOMING_CALL, EVENT_ACCEPT_CALL, EVENT_DECLINE_CALL, EVENT_END_CALL };

const char *event_type_name(enum event_type t);

enum party { PARTY_CALLER = 0, PARTY_RECEIVER = 1 };

struct call {
	char id[CALL_ID_LEN + 1];
	struct user_info party[2]; /* indexed by enum party */
	enum call_status status;
	char *err_msg;      /* NULL unless status is CALL_ERROR */
	int64_t created_at; /* wall clock, ms since the epoch; 0 = unset */
	int64_t answered_at;
	int64_t ended_at;
	int64_t ring_deadline;     /* wall clock ms while DIALLING: when it becomes MISSED; else 0 */
	int64_t revision;          /* 1 when started, +1 on every transition */
	int64_t grace_deadline[2]; /* wall clock ms; 0 = party present */
};

/* Deep copy of a call into *dst (whose old strings are not freed). */
void call_copy(struct call *dst, const struct call *src);
/* Frees the strings a call owns, not the call itself. */
void call_release(struct call *call);
/* call_release, then frees the call; NULL is a no-op. */
void call_free(struct call *call);

#endif

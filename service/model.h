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

/* Why a finished call ended; END_NONE while it is live. */
enum end_reason {
	END_NONE,
	END_HANGUP,        /* a party ended an ONGOING call */
	END_CANCELLED,     /* the caller ended it while it rang */
	END_DECLINED,      /* the receiver declined (or ended) it while it rang */
	END_TIMEOUT,       /* nobody answered before the ring timeout */
	END_BUSY,          /* the receiver was in another call (their missed-call event) */
	END_PARTY_OFFLINE, /* a party's presence stayed away past the grace period */
	END_MEDIA_ENDED,   /* LiveKit: the room finished, or a party's media stayed away past the grace */
};

/* The name of r ("HANGUP", ...), or NULL for END_NONE. */
const char *end_reason_name(enum end_reason r);

/* Who did something to a call: a user and, when known, the client id of their device. */
struct actor {
	char *user_id;   /* NULL: nobody recorded */
	char *device_id; /* NULL: device not known */
};

/* Replaces a's strings with copies of user_id and device_id (either may be NULL). */
void actor_set(struct actor *a, const char *user_id, const char *device_id);
/* Frees a's strings, not a itself. */
void actor_release(struct actor *a);

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
	enum end_reason end_reason;
	struct actor answered_by;   /* set when ONGOING: who accepted, on which device */
	struct actor ended_by;      /* who ended it (HANGUP, CANCELLED, DECLINED; MEDIA_ENDED: who left) */
	int64_t media_joined_at[2]; /* wall clock ms a party's media last joined the room; 0 = never */
	int64_t media_deadline[2];  /* wall clock ms: a party's media left, the call ends then; 0 = none */
};

/* Deep copy of a call into *dst (whose old strings are not freed). */
void call_copy(struct call *dst, const struct call *src);
/* Frees the strings a call owns, not the call itself. */
void call_release(struct call *call);
/* call_release, then frees the call; NULL is a no-op. */
void call_free(struct call *call);

#endif

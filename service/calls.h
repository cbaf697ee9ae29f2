/*
 * calls.h - PURE call state machine: (state, request, now) -> result + events.
 *
 *   DIALLING --answer ACCEPT--> ONGOING --end--> ENDED
 *   DIALLING --answer DECLINE--> DECLINED
 *   DIALLING --end (either party: cancel)--> ENDED
 *   DIALLING --ring timeout--> MISSED
 *   DIALLING/ONGOING --a party offline past the grace period--> ERROR
 *
 * A call in DIALLING or ONGOING is "live" and makes both parties busy.
 * Finished calls stay findable for the retention period, so a repeated end
 * or answer gets a consistent reply, then they are freed.
 *
 * No clock, no randomness, no I/O, no locks: callers pass the time and the
 * new call's id, and core serialises access. Deadlines use the monotonic
 * clock, timestamps in the Call the wall clock; both come in struct instant.
 *
 * Events produced by a transition are appended to a struct call_events; they
 * point at calls that stay valid until the next calls_* call.
 */
#ifndef CALLSIGNAL_CALLS_H
#define CALLSIGNAL_CALLS_H

#include <stddef.h>
#include <stdint.h>

#include "dict.h"
#include "errors.h"
#include "model.h"

struct instant {
	int64_t wall_ms; /* for createdAt/answeredAt/endedAt */
	int64_t mono_ms; /* for deadlines */
};

struct calls_config {
	int64_t ring_timeout_ms;
	int64_t offline_grace_ms;
	int64_t retention_ms;
	size_t retention_max; /* finished calls kept at most (oldest go first); 0: no cap */
};

struct call_event {
	enum event_type type;
	const struct call *call;
	int to_caller, to_receiver;
};

struct call_events {
	struct call_event *items;
	size_t n, cap;
};

void call_events_init(struct call_events *ev);
void call_events_release(struct call_events *ev);

/* A queue of (deadline, call id) in deadline order; see calls.c. */
struct deadline_queue {
	struct deadline_item *items;
	size_t head, len, cap;
};

struct calls {
	struct calls_config cfg;
	struct dict by_id;        /* id -> struct call (owned) */
	struct dict live_by_user; /* user id -> live struct call (borrowed) */
	struct deadline_queue ring, grace, retire;
};

void calls_init(struct calls *c, const struct calls_config *cfg);
void calls_release(struct calls *c);

/*
 * Starts a call from caller to receiver (both borrowed; copied) with the
 * given fresh id. Refuses ERR_SELF_CALL, ERR_CALLER_BUSY, ERR_RECEIVER_BUSY.
 * On success *out is the new call and INCOMING_CALL goes to the receiver.
 */
enum err calls_start(struct calls *c, const struct user_info *caller, const struct user_info *receiver,
		     const char *id, struct instant now, struct call_events *ev, const struct call **out);

/*
 * Answers a ringing call; by_user, when not NULL, must be its receiver.
 * ERR_CALL_NOT_FOUND; ERR_FORBIDDEN; ERR_CALL_NOT_RINGING with *out set to
 * the call as it is. ACCEPT_CALL or DECLINE_CALL go to both parties.
 */
enum err calls_answer(struct calls *c, const char *id, int accept, const char *by_user, struct instant now,
		      struct call_events *ev, const struct call **out);

/*
 * Ends (or cancels, while it rings) a call on behalf of user_id.
 * ERR_CALL_NOT_FOUND; ERR_NOT_A_PARTY. Ending a finished call returns it as
 * it is, with no event; otherwise END_CALL goes to both parties.
 */
enum err calls_end(struct calls *c, const char *id, const char *user_id, struct instant now,
		   struct call_events *ev, const struct call **out);

/* ERR_OK with *out set when user_id is a party of the ONGOING call id, else ERR_NOT_IN_CALL. */
enum err calls_check_in_call(const struct calls *c, const char *id, const char *user_id,
			     const struct call **out);

/* The user's last device went away: their live call, if any, starts its grace period. */
void calls_party_offline(struct calls *c, const char *user_id, struct instant now);
/* The user is back: their live call's grace period, if any, is over. */
void calls_party_online(struct calls *c, const char *user_id);

/* Fires every deadline that has passed: ring timeouts, grace periods,
 * retention; and forgets the oldest finished calls beyond retention_max. */
void calls_tick(struct calls *c, struct instant now, struct call_events *ev);
/* The earliest pending deadline (monotonic ms), or INT64_MAX when none;
 * 0 (due now) while more finished calls are kept than retention_max. */
int64_t calls_next_deadline(const struct calls *c);

const struct call *calls_find(const struct calls *c, const char *id);
const struct call *calls_live_of(const struct calls *c, const char *user_id);
size_t calls_count(const struct calls *c);
size_t calls_live_count(const struct calls *c);

#endif

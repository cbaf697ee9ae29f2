/*
 * calls.h - PURE call rules: (state, request, now) -> result + events.
 *
 *   DIALLING --answer ACCEPT--> ONGOING --end--> ENDED
 *   DIALLING --answer DECLINE--> DECLINED
 *   DIALLING --end (either party: cancel)--> ENDED
 *   DIALLING --ring timeout--> MISSED
 *   DIALLING/ONGOING --a party offline past the grace period--> ERROR
 *   ONGOING --LiveKit: room finished, or a party's media gone past the grace--> ENDED
 *
 * Every finished call carries an end reason (model.h): ENDED is HANGUP,
 * CANCELLED (the caller, while it rang), DECLINED (the receiver, while it
 * rang) or MEDIA_ENDED; DECLINED is DECLINED; MISSED is TIMEOUT, or BUSY for
 * the missed-call record a busy receiver gets; ERROR is PARTY_OFFLINE.
 * Accepting and ending record who did it, on which device (answered_by,
 * ended_by). A start from A to B while B's call to A still rings ("glare")
 * accepts B's call instead of refusing A as busy.
 *
 * A call that finishes is also added to both parties' histories
 * (history_max each, oldest dropped first), which outlive the retention.
 *
 * A call in DIALLING or ONGOING is "live" and makes both parties busy.
 * Finished calls stay findable for the retention period, so a repeated end
 * or answer gets a consistent reply, then they are forgotten. Every
 * transition raises the call's revision by one; an event is named by the
 * call id and the revision its transition produced.
 *
 * Where calls, busy lines and deadlines live is the store's business
 * (store.h); the rules reach them only through its interface. No clock, no
 * randomness, no I/O, no locks: callers pass the time (wall clock, ms since
 * the epoch, so deadlines survive a restart) and the new call's id, and
 * core serialises access.
 *
 * Each entry point that changes the store is one atomic transition of it
 * (store.h), run again when another instance got there first; an engine
 * that cannot be reached makes start, answer and end answer
 * ERR_STORE_UNAVAILABLE and the other changes do nothing (the timer tries
 * again). With a shared engine calls_restore does nothing: the store, not
 * the broker, holds the truth.
 *
 * Events produced by a transition are appended to a struct call_events; they
 * point at calls that stay valid until the next calls_* call.
 */
#ifndef CALLSIGNAL_CALLS_H
#define CALLSIGNAL_CALLS_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "model.h"
#include "store.h"

struct instant {
	int64_t wall_ms; /* timestamps and deadlines */
};

struct calls_config {
	int64_t ring_timeout_ms;
	int64_t offline_grace_ms;
	int64_t retention_ms;
	size_t retention_max;    /* finished calls kept at most (oldest go first); 0: no cap */
	int64_t ring_offline_ms; /* how long a call to a user with no online device rings */
	size_t history_max;      /* finished calls kept in each party's history; 0: none */
};

struct call_event {
	enum event_type type;
	const struct call *call;
	int to_caller, to_receiver;
	int keep_topics; /* the call never was live: the parties' call topics stay as they are */
	int topics_only; /* no event: the live call's topics are written again (calls_show) */
};

struct call_events {
	struct call_event *items;
	size_t n, cap;
};

void call_events_init(struct call_events *ev);
void call_events_release(struct call_events *ev);

struct calls {
	struct calls_config cfg;
	struct store *store; /* owned */
	/*
	 * Set by the owner (core) when the store is shared: called inside every
	 * transition after its rule and before the store commits, with the
	 * events the rule appended (ev->items[from..]), so that what they
	 * publish is written in the same atomic unit (store.h's outbox_put).
	 */
	void (*on_events)(void *ctx, const struct call_events *ev, size_t from);
	void *on_events_ctx;
};

/* Steals store. */
void calls_init(struct calls *c, const struct calls_config *cfg, struct store *store);
void calls_release(struct calls *c);

/*
 * Starts a call from caller to receiver (both borrowed; copied) with the
 * given fresh id. Refuses ERR_SELF_CALL, ERR_CALLER_BUSY, ERR_RECEIVER_BUSY.
 * On success *out is the new call and INCOMING_CALL goes to the receiver.
 * When the receiver's own call to the caller rings, that call is accepted
 * instead (answered_by the caller, ACCEPT_CALL to both) and is *out. On
 * ERR_RECEIVER_BUSY the receiver still learns of the attempt: a finished
 * call with the given id (MISSED, end reason BUSY) is kept and END_CALL
 * goes to the receiver alone, leaving the call topics alone.
 */
enum err calls_start(struct calls *c, const struct user_info *caller, const struct user_info *receiver,
		     const char *id, struct instant now, struct call_events *ev, const struct call **out);

/*
 * calls_start for a receiver none of whose devices is online (the app's
 * backend is told to wake one with a push): the same call and INCOMING_CALL,
 * but it rings only for the shorter of ring_offline_ms and the ring timeout
 * until a device of the receiver comes online (calls_receiver_online).
 */
enum err calls_start_offline(struct calls *c, const struct user_info *caller,
			     const struct user_info *receiver, const char *id, struct instant now,
			     struct call_events *ev, const struct call **out);

/*
 * A device of user u (borrowed; copied) came online. When u is the receiver
 * of a call that rings for an offline receiver on the shorter deadline, the
 * call now rings until the full ring timeout after its start and names its
 * receiver as u's presence does: returns that call (its revision raised, no
 * event; its topics are to be written again), else NULL.
 */
const struct call *calls_receiver_online(struct calls *c, const struct user_info *u);

/*
 * Answers a ringing call; by_user, when not NULL, must be its receiver.
 * ERR_CALL_NOT_FOUND; ERR_FORBIDDEN; ERR_CALL_NOT_RINGING with *out set to
 * the call as it is. ACCEPT_CALL or DECLINE_CALL go to both parties.
 */
enum err calls_answer(struct calls *c, const char *id, int accept, const char *by_user, struct instant now,
		      struct call_events *ev, const struct call **out);
/* calls_answer from the receiver's device device_id (borrowed; NULL: not said), kept in answered_by
 * (and in ended_by when declining). */
enum err calls_answer_on(struct calls *c, const char *id, int accept, const char *by_user,
			 const char *device_id, struct instant now, struct call_events *ev,
			 const struct call **out);

/*
 * Ends (or cancels, while it rings) a call on behalf of user_id.
 * ERR_CALL_NOT_FOUND; ERR_NOT_A_PARTY. Ending a finished call returns it as
 * it is, with no event; otherwise END_CALL goes to both parties.
 */
enum err calls_end(struct calls *c, const char *id, const char *user_id, struct instant now,
		   struct call_events *ev, const struct call **out);
/* calls_end from user_id's device device_id (borrowed; NULL: not said), kept in ended_by. */
enum err calls_end_on(struct calls *c, const char *id, const char *user_id, const char *device_id,
		      struct instant now, struct call_events *ev, const struct call **out);

/*
 * What LiveKit's webhooks say about the room of call id (a room is named by
 * its call id, a participant by the user id). Each applies only to an
 * ONGOING call and one of its parties, and returns 1 when it changed the
 * call, 0 when it was ignored (no such live call, ringing, not a party).
 *  - media_joined records the time in media_joined_at and stops a running
 *    media grace period of that party;
 *  - media_left starts the party's media grace period (offline_grace_ms):
 *    unless it joins again before it ends, the call ends MEDIA_ENDED with the
 *    party as ended_by;
 *  - room_finished ends the call at once, MEDIA_ENDED, END_CALL to both.
 */
int calls_media_joined(struct calls *c, const char *id, const char *user_id, struct instant now);
int calls_media_left(struct calls *c, const char *id, const char *user_id, struct instant now);
int calls_room_finished(struct calls *c, const char *id, struct instant now, struct call_events *ev);

/* ERR_OK with *out set when user_id is a party of the ONGOING call id, else ERR_NOT_IN_CALL. */
enum err calls_check_in_call(const struct calls *c, const char *id, const char *user_id,
			     const struct call **out);

/* 1 when user_id is the caller or the receiver of call. */
int calls_is_party(const struct call *call, const char *user_id);

/* The user's last device went away: their live call, if any, starts its grace period (not
 * for the receiver of a call that rings them asleep: they were not online). */
void calls_party_offline(struct calls *c, const char *user_id, struct instant now);
/* The user is back: their live call's grace period, if any, is over. */
void calls_party_online(struct calls *c, const char *user_id);
/* 1 when party p of call coming online would change it: a grace period of theirs runs, or
 * the call rings them, the receiver, asleep (calls_receiver_online wakes it). */
int calls_awaits(const struct calls *c, const struct call *call, enum party p);
/* calls_party_online and calls_receiver_online in one transition (with Redis, one round trip
 * of reads and one EXEC instead of two of each): the woken call, or NULL. */
const struct call *calls_party_back(struct calls *c, const struct user_info *u);

/* Fires every deadline that has passed: ring timeouts, grace periods
 * (presence and media), retention; and forgets the oldest finished calls beyond retention_max. */
void calls_tick(struct calls *c, struct instant now, struct call_events *ev);
/* The earliest pending deadline (wall ms), or INT64_MAX when none;
 * 0 (due now) while more finished calls are kept than retention_max. */
int64_t calls_next_deadline(const struct calls *c);

/* One retained users/{user}/call message found at start-up (borrowed). */
struct calls_seen {
	const char *user_id;
	const struct call *call; /* as parsed from the payload; never NULL */
};

/*
 * Rebuilds the live calls from the call topics read back from the broker,
 * before any other transition. The service writes a call's topics
 * receiver first, then caller, then the events, and clears both topics
 * (receiver first) only after the END_CALL events; a crash loses a suffix
 * of that order, so:
 *  - a call on both topics is live at the higher revision; when the caller's
 *    is older (or missing: a start cut short) its event never left, and it
 *    is emitted again;
 *  - a call on the caller's topic only was being cleared after its END_CALL
 *    went out: it is not restored, and its caller is listed in *clear;
 *  - a user whose topic holds a call that is not restored is in *clear too.
 * Ring deadlines keep their original time (a passed one makes the call
 * MISSED at the next tick). *clear receives user ids (borrowed from seen)
 * and *n_clear their count; the array holds at least n entries.
 */
void calls_restore(struct calls *c, const struct calls_seen *seen, size_t n, struct call_events *ev,
		   const char **clear, size_t *n_clear);

/*
 * The user's finished calls, newest first: at most limit, and only those
 * that finished before the call before_id when it is not NULL (none when
 * before_id is not in the history). Fills out[] with deep copies (the
 * caller releases each with call_release); returns how many.
 */
size_t calls_history(const struct calls *c, const char *user_id, const char *before_id, size_t limit,
		     struct call *out);

/*
 * Appends a topics_only event for the call id when it is live (ERR_OK),
 * in a transition of its own: a shared store's outbox then orders the
 * rewrite of its topics with the call's other messages (after a broker
 * restart lost the retained topics). ERR_CALL_NOT_FOUND when it is not live.
 */
enum err calls_show(struct calls *c, const char *id, struct call_events *ev);

const struct call *calls_find(const struct calls *c, const char *id);
const struct call *calls_live_of(const struct calls *c, const char *user_id);
/* After a lookup above, calls_check_in_call or calls_history found nothing: 1 when that is
 * because the store did not answer (see store_ops.unreachable), 0 when there is nothing. */
int calls_unreachable(const struct calls *c);
/* Calls fn on every call (see store_ops.each). */
void calls_each(const struct calls *c, void (*fn)(void *ctx, const struct call *call), void *ctx);
size_t calls_count(const struct calls *c);
size_t calls_live_count(const struct calls *c);

#endif

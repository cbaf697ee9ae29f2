/*
 * sessions.h - the user clients the plugin has let in and that are still
 * connected, with the token each one presented.
 *
 * plugin.c adds a session when BASIC_AUTH succeeds, drops it on DISCONNECT,
 * and on a reload checks every token again, to disconnect (with their Last
 * Will, which clears their presence) the clients whose token has expired,
 * whose key was retired or whose user was revoked. Mosquitto 2.0 also
 * re-authenticates clients after a reload, but disconnects the failures
 * without sending their Will, which would leave them "online" forever.
 *
 * Pure bookkeeping: no broker types (a client is an opaque pointer used as
 * identity only, never dereferenced), no I/O, no locks (the broker calls
 * plugins from its single main thread).
 */
#ifndef CALLSIGNAL_SESSIONS_H
#define CALLSIGNAL_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>

struct session {
	const void *client; /* the broker's client object: identity only */
	char *client_id;
	char *username;
	char *token;
};

struct session_table {
	struct session *items;
	size_t count;
	size_t cap;
};

/*
 * Records that client (re)authenticated with these strings, which are
 * copied; replaces the session of the same client if there is one.
 * Returns 0, or -1 when memory ran out (the table is then unchanged).
 */
int sessions_put(struct session_table *t, const void *client, const char *client_id, const char *username,
		 const char *token);

/* Forgets client's session, if any. */
void sessions_remove(struct session_table *t, const void *client);

/* Forgets the session at index i (order of the others may change). */
void sessions_remove_at(struct session_table *t, size_t i);

/* Frees every session (wiping the tokens) and the table's storage. */
void sessions_release(struct session_table *t);

#endif

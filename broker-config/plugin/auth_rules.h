/*
 * auth_rules.h - who may subscribe to, read and write which topic on the
 * broker in jwt mode.
 *
 * Pure: no I/O, no clock, no broker types, so the rules can be unit-tested
 * (tests/unit/test_plugin_rules.c) and reviewed in one place. plugin.c maps
 * Mosquitto's ACL events onto auth_allows().
 *
 * The rules (docs/security.md explains why):
 *   CONNECT:             user U only with a client id "U.{device}"
 *                        (common/ids.h), so nobody takes over another
 *                        user's session; the service only with a client id
 *                        that names no user, so no user takes over its
 *                        session either
 *   user U on client C:  subscribe/read  users/U/events, users/U/call,
 *                                        users/+/presence/+
 *                        write           users/U/presence/C   (also its Will)
 *   service on client S: subscribe/read  users/+/presence/+, users/+/call,
 *                                        callsignal/sync/S
 *                        write           users/+/events, users/+/call,
 *                                        callsignal/sync/S
 *                        clear           users/+/presence/+   (an empty
 *                                        retained message only: the presence
 *                                        lease ends a device whose Last Will
 *                                        was lost; the service never writes
 *                                        a presence of its own)
 *   anyone:              unsubscribe from anything (it only removes access)
 * Everything else ($SYS/#, '#', other users' events, ...) is denied.
 */
#ifndef CALLSIGNAL_AUTH_RULES_H
#define CALLSIGNAL_AUTH_RULES_H

#include <stdbool.h>

#include "ids.h"

enum auth_role {
	AUTH_ROLE_USER,
	AUTH_ROLE_SERVICE,
};

enum auth_access {
	AUTH_ACCESS_SUBSCRIBE,   /* topic is a subscription filter (may hold + and #) */
	AUTH_ACCESS_UNSUBSCRIBE, /* topic is a subscription filter */
	AUTH_ACCESS_READ,        /* topic is the concrete topic of a message to deliver */
	AUTH_ACCESS_WRITE,       /* topic is the concrete topic of a message received */
	AUTH_ACCESS_CLEAR,       /* as WRITE, for a message with an empty payload and the retain
				  * flag: it deletes the topic's retained message. Whoever may
				  * WRITE a topic may also CLEAR it, not the other way round. */
};

/*
 * True when a client of role may connect with client_id: for
 * AUTH_ROLE_USER, client_id must name user_id ("{user_id}.{device}"); for
 * AUTH_ROLE_SERVICE (user_id ignored), it must be a valid id that names no
 * user. Strings are borrowed for the call; NULL denies.
 */
bool auth_client_id_allowed(enum auth_role role, const char *user_id, const char *client_id);

/*
 * True when a client may perform access on topic.
 * user_id: the authenticated username (the token's subject) for
 * AUTH_ROLE_USER; ignored for AUTH_ROLE_SERVICE. client_id: the MQTT client id
 * of the connection (for a user, one that does not name user_id gets no
 * right at all; for the service, it names its sync topic). All strings are borrowed for the
 * duration of the call; a NULL string denies.
 */
bool auth_allows(enum auth_role role, const char *user_id, const char *client_id, enum auth_access access,
		 const char *topic);

/*
 * True when every topic matched by filter is also matched by pattern
 * (both MQTT subscription filters). A concrete topic is a filter that matches
 * only itself, so this also answers "does pattern match topic".
 */
bool auth_filter_within(const char *filter, const char *pattern);

#endif

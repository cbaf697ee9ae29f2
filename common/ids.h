/*
 * ids.h - PURE grammar of user ids and MQTT client ids, shared by the
 * service (service/topics.c, REST validation) and the broker plugin
 * (broker-config/plugin/), which must agree on it.
 *
 * User ids and client ids end up as levels of topic names, so one rule
 * decides what an id may be: 1..ID_MAX_LEN bytes of valid UTF-8 without
 * '/', '+', '#' or control characters (< 0x20, 0x7f).
 *
 * A user's client id names the user: "{userId}.{device}", where device is
 * at least one byte of the same grammar without '.', and the whole client
 * id, a valid id itself, at most ID_MAX_LEN bytes. The user part is
 * everything before the last '.', so a user id may itself hold dots
 * ("jo.doe.phone" belongs to "jo.doe") and no client id names two users.
 * A client id without a '.' (the service's "callsignal-xxxxxxxx") names
 * nobody. jwt mode enforces the form (docs/security.md); open mode only
 * needs a client id to be a valid topic level.
 *
 * No I/O, no allocation, no state.
 */
#ifndef CALLSIGNAL_IDS_H
#define CALLSIGNAL_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define ID_MAX_LEN 128

/* True when s[0..len) is valid UTF-8: no overlong forms, surrogates or values past U+10FFFF. */
bool utf8_is_valid(const char *s, size_t len);

/* True when s[0..len) is a valid user id (see above). */
bool id_is_valid(const char *s, size_t len);

/* id_is_valid() of a NUL-terminated string; NULL is not valid. */
bool id_str_is_valid(const char *s);

/*
 * True when the NUL-terminated client_id is "{user_id}.{device}" with a
 * valid device (the form above). Either string NULL: false.
 */
bool client_id_names_user(const char *client_id, const char *user_id);

/* True when the NUL-terminated client_id names some user (has the user form). */
bool client_id_names_a_user(const char *client_id);

#endif

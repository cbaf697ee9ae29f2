/*
 * ids.h - PURE grammar of user ids and MQTT client ids, shared by the
 * service (service/topics.c, REST validation) and the broker plugin
 * (broker-config/plugin/), which must agree on it.
 *
 * User ids and client ids end up as levels of topic names, so one rule
 * decides what an id may be: 1..ID_MAX_LEN bytes of valid UTF-8 without
 * '/', '+', '#' or control characters (< 0x20, 0x7f).
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

#endif

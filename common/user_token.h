/*
 * user_token.h - verification of the user tokens (JWTs) of jwt mode, the one
 * implementation that both the service (REST: Authorization: Bearer, via
 * service/token.c) and the broker plugin (MQTT: the CONNECT password) use.
 *
 * A token is accepted when it is signed by one of the configured keys with
 * the configured algorithm (HS256 or RS256; "none" and every other algorithm
 * are refused whatever the key), carries an integer "exp" not in the past,
 * an integer "nbf" (when present) not in the future, both with
 * USER_TOKEN_LEEWAY_S of leeway, and a "sub" that is a valid user id
 * (ids.h). docs/security.md states these rules for users.
 *
 * The only includer of jwt.h among the shared code. Never aborts: the broker
 * plugin links it, and running out of memory only fails the one call.
 */
#ifndef CALLSIGNAL_USER_TOKEN_H
#define CALLSIGNAL_USER_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "ids.h"

#define USER_TOKEN_LEEWAY_S 60
#define USER_TOKEN_MAX_KEYS 2 /* the current key and, during a rotation, the previous one */

enum user_token_alg {
	USER_TOKEN_HS256,
	USER_TOKEN_RS256,
};

/*
 * The verification keys. Zero-initialise, set alg, add keys; owns its key
 * bytes; release with user_token_verifier_release().
 */
struct user_token_verifier {
	enum user_token_alg alg;
	int key_count;
	unsigned char *keys[USER_TOKEN_MAX_KEYS];
	size_t key_lens[USER_TOKEN_MAX_KEYS];
};

enum user_token_result {
	USER_TOKEN_OK,
	USER_TOKEN_INVALID,        /* empty, malformed, bad signature, or another algorithm */
	USER_TOKEN_NO_EXPIRY,      /* "exp" missing */
	USER_TOKEN_BAD_EXPIRY,     /* "exp" not an integer */
	USER_TOKEN_EXPIRED,        /* "exp" passed, beyond the leeway */
	USER_TOKEN_BAD_NOT_BEFORE, /* "nbf" not an integer */
	USER_TOKEN_NOT_YET_VALID,  /* "nbf" ahead, beyond the leeway */
	USER_TOKEN_BAD_SUBJECT,    /* "sub" missing or not a valid user id */
	USER_TOKEN_WRONG_USER,     /* "sub" is not the expected user */
};

/*
 * Adds a key (a shared secret for HS256, a PEM public key for RS256); the
 * bytes are copied. Returns 0, or -1 when the verifier is full, key is empty
 * or too long, or memory ran out.
 */
int user_token_verifier_add_key(struct user_token_verifier *v, const unsigned char *key, size_t len);

/* Frees the key bytes (wiping them first); v can take keys again afterwards. */
void user_token_verifier_release(struct user_token_verifier *v);

/*
 * Checks token at time now_s (seconds since the epoch). expected_sub, when
 * not NULL, is the only subject accepted (the MQTT username). On
 * USER_TOKEN_OK the subject is copied into sub when sub is not NULL.
 * token and expected_sub are borrowed for the call; a NULL token is invalid.
 */
enum user_token_result user_token_verify(const struct user_token_verifier *v, const char *token,
					 const char *expected_sub, int64_t now_s, char sub[ID_MAX_LEN + 1]);

/* A short human description of r, for logs and 401 messages. Static storage. */
const char *user_token_result_describe(enum user_token_result r);

#endif

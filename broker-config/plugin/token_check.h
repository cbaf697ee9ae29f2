/*
 * token_check.h - verification of user tokens (JWTs) presented as the MQTT
 * password in jwt mode.
 *
 * The only file of the plugin that includes libjwt. A token is accepted when
 * it is signed by one of the configured keys with the configured algorithm
 * (HS256 or RS256; "none" and every other algorithm are refused whatever the
 * key), carries an integer "exp" not in the past, an integer "nbf" (when
 * present) not in the future, both with TOKEN_LEEWAY_S of leeway, and a
 * "sub" equal to the MQTT username. The same rules as the service's REST side
 * (see the "jwt mode" section of docs/security.md).
 */
#ifndef CALLSIGNAL_TOKEN_CHECK_H
#define CALLSIGNAL_TOKEN_CHECK_H

#include <stddef.h>
#include <time.h>

#define TOKEN_LEEWAY_S 60
#define TOKEN_MAX_KEYS 2 /* the current key and, during a rotation, the previous one */

enum token_alg {
	TOKEN_ALG_HS256,
	TOKEN_ALG_RS256,
};

/* The verification keys. Owns its key bytes; release with token_verifier_release(). */
struct token_verifier {
	enum token_alg alg;
	int key_count;
	unsigned char *keys[TOKEN_MAX_KEYS];
	size_t key_lens[TOKEN_MAX_KEYS];
};

enum token_result {
	TOKEN_OK,
	TOKEN_INVALID,   /* malformed, bad signature, or signed with another algorithm */
	TOKEN_NO_EXPIRY, /* "exp" missing or not an integer */
	TOKEN_EXPIRED,
	TOKEN_NOT_YET_VALID, /* "nbf" in the future, or not an integer */
	TOKEN_BAD_SUBJECT,   /* "sub" missing or not a valid id */
	TOKEN_WRONG_USER,    /* "sub" is not the username */
};

/*
 * Adds a key (a shared secret for HS256, a PEM public key for RS256); the
 * bytes are copied. Returns 0, or -1 when the verifier is full or key is empty.
 */
int token_verifier_add_key(struct token_verifier *v, const unsigned char *key, size_t len);

/* Frees the key bytes (wiping them first); v can be reused after token_verifier_add_key(). */
void token_verifier_release(struct token_verifier *v);

/*
 * Checks token for username at time now (seconds since the epoch).
 * token and username are borrowed for the call.
 */
enum token_result token_verify(const struct token_verifier *v, const char *token, const char *username,
			       time_t now);

/* A short human description of r, for logs. Static storage. */
const char *token_result_describe(enum token_result r);

#endif

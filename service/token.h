/*
 * token.h - the JWTs of the service.
 *
 * Mints LiveKit access tokens for a party of a live call, verifies the
 * signed webhooks a LiveKit server posts, and in jwt mode
 * verifies the user tokens that an app's backend issues to its users, with
 * common/user_token.c (the checks the broker plugin applies to MQTT logins).
 * token.c is the only file of service/ that includes jwt.h; the other one
 * is common/user_token.c, the shared library's edge to libjwt.
 */
#ifndef CALLSIGNAL_TOKEN_H
#define CALLSIGNAL_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "topics.h"

/*
 * A LiveKit token for user (id, name) to join room, valid from now_s for
 * ttl_s seconds. Returns a new string (caller frees), or NULL on failure.
 */
char *token_livekit(const char *api_key, const char *api_secret, const char *user_id, const char *name,
		    const char *room, int64_t now_s, int64_t ttl_s);

/*
 * The Authorization header value of a webhook, signed the way LiveKit signs
 * its own: an HS256 JWT with secret, iss "callsignal", iat/nbf now_s, exp
 * now_s + ttl_s, and sha256 = the standard base64 of the SHA-256 of body
 * (len bytes). Returns a new string (caller frees), or NULL on failure.
 */
char *token_webhook(const char *secret, const char *body, size_t len, int64_t now_s, int64_t ttl_s);

struct token_verifier;

/*
 * A verifier of user tokens: HS256 with hs256_secret, or RS256 with the PEM
 * public key in rs256_pem_file (exactly one non-NULL). previous, when not
 * NULL, is a second secret (or PEM file) still accepted during a rotation.
 * Returns NULL and logs why when a key cannot be read. Free with
 * token_verifier_free.
 */
struct token_verifier *token_verifier_new(const char *hs256_secret, const char *rs256_pem_file,
					  const char *previous);
void token_verifier_free(struct token_verifier *v);

/*
 * Checks a user token: signature with the configured algorithm (any other
 * "alg", "none" included, is refused), exp required and not passed, nbf
 * honoured, both with 60 s of leeway, sub a valid id. Returns 0 and copies
 * sub into user_id, or -1 with *why set to a static reason.
 */
int token_verify_user(const struct token_verifier *v, const char *jwt, int64_t now_s,
		      char user_id[ID_MAX_LEN + 1], const char **why);

/*
 * Checks the Authorization header of a LiveKit webhook (the whole header
 * value: a bare JWT, no "Bearer "), as LiveKit's WebhookReceiver does: an
 * HS256 signature with api_secret (any other "alg", "none" included, is
 * refused), iss equal to api_key, exp required and not passed, nbf
 * honoured (60 s of leeway on both), and a "sha256" claim equal to the
 * standard padded base64 of the SHA-256 of body[0..len), compared in
 * constant time. Returns 0, or -1 with *why set to a static reason.
 */
int token_verify_webhook(const char *api_key, const char *api_secret, const char *auth, const char *body,
			 size_t len, int64_t now_s, const char **why);

#endif

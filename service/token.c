/*
 * token.c - see token.h. libjwt 1.x signs the LiveKit tokens and our
 * webhooks and checks LiveKit's (OpenSSL hashes their bodies); user tokens
 * are checked by common/user_token.c, the code the broker plugin runs too,
 * and this file only reads their keys.
 */
#include "token.h"

#include <errno.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_io.h"
#include "log.h"
#include "user_token.h"
#include "util.h"

char *token_livekit(const char *api_key, const char *api_secret, const char *user_id, const char *name,
		    const char *room, int64_t now_s, int64_t ttl_s)
{
	jwt_t *jwt = NULL;
	char *out = NULL;
	struct sbuf video;
	sbuf_init(&video, 128);
	sbuf_adds(&video, "{\"video\":{\"room\":");
	json_io_add_string(&video, room);
	sbuf_adds(&video, ",\"roomJoin\":true,\"canPublish\":true,\"canSubscribe\":true}}");

	if (jwt_new(&jwt) != 0)
		goto out;
	if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)api_secret, (int)strlen(api_secret)) ||
	    jwt_add_grant(jwt, "iss", api_key) || jwt_add_grant(jwt, "sub", user_id) ||
	    jwt_add_grant(jwt, "name", name) || jwt_add_grant_int(jwt, "nbf", (long)now_s) ||
	    jwt_add_grant_int(jwt, "iat", (long)now_s) ||
	    jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) || jwt_add_grants_json(jwt, video.buf))
		goto out;
	out = jwt_encode_str(jwt);
out:
	if (!out)
		log_error("minting a LiveKit token for '%s' failed", user_id);
	jwt_free(jwt);
	sbuf_release(&video);
	return out;
}

char *token_webhook(const char *secret, const char *body, size_t len, int64_t now_s, int64_t ttl_s)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	char hash[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	jwt_t *jwt = NULL;
	char *out = NULL;
	if (EVP_Digest(body, len, digest, &digest_len, EVP_sha256(), NULL) != 1)
		goto out;
	EVP_EncodeBlock((unsigned char *)hash, digest, (int)digest_len);
	if (jwt_new(&jwt) != 0)
		goto out;
	if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) ||
	    jwt_add_grant(jwt, "iss", "callsignal") || jwt_add_grant(jwt, "sha256", hash) ||
	    jwt_add_grant_int(jwt, "iat", (long)now_s) || jwt_add_grant_int(jwt, "nbf", (long)now_s) ||
	    jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)))
		goto out;
	out = jwt_encode_str(jwt);
out:
	if (!out)
		log_error("signing a webhook failed");
	jwt_free(jwt);
	return out;
}

struct token_verifier {
	struct user_token_verifier v;
};

/* Adds an HS256 secret, or the PEM public key read from a file. -1 (logged) on failure. */
static int add_key(struct token_verifier *tv, const char *secret_or_path)
{
	struct sbuf key;
	int rc = -1;
	sbuf_init(&key, 1024);
	if (tv->v.alg == USER_TOKEN_HS256) {
		sbuf_adds(&key, secret_or_path);
	} else if (sbuf_read_file(&key, secret_or_path) != 0) {
		log_error("cannot read the user-token public key '%s'", secret_or_path);
		goto out;
	} else if (!strstr(key.buf, "-----BEGIN PUBLIC KEY-----")) {
		log_error("'%s' holds no PEM public key", secret_or_path);
		goto out;
	}
	if (user_token_verifier_add_key(&tv->v, (const unsigned char *)key.buf, key.len) != 0) {
		log_error("cannot use the user-token key '%s': empty or too long",
			  tv->v.alg == USER_TOKEN_HS256 ? "(secret)" : secret_or_path);
		goto out;
	}
	rc = 0;
out:
	sbuf_release(&key);
	return rc;
}

struct token_verifier *token_verifier_new(const char *hs256_secret, const char *rs256_pem_file,
					  const char *previous)
{
	struct token_verifier *tv = xcalloc(1, sizeof(*tv));
	tv->v.alg = hs256_secret ? USER_TOKEN_HS256 : USER_TOKEN_RS256;
	if (add_key(tv, hs256_secret ? hs256_secret : rs256_pem_file) != 0 ||
	    (previous && add_key(tv, previous) != 0)) {
		token_verifier_free(tv);
		return NULL;
	}
	return tv;
}

void token_verifier_free(struct token_verifier *tv)
{
	if (!tv)
		return;
	user_token_verifier_release(&tv->v);
	free(tv);
}

int token_verify_user(const struct token_verifier *tv, const char *token, int64_t now_s,
		      char user_id[ID_MAX_LEN + 1], const char **why)
{
	enum user_token_result r = user_token_verify(&tv->v, token, NULL, now_s, user_id);
	if (r == USER_TOKEN_OK)
		return 0;
	*why = user_token_result_describe(r);
	return -1;
}

#define WEBHOOK_LEEWAY_S 60

/* An integer claim: 1 with *out set, 0 when absent, -1 when not a JSON integer. */
static int int_claim(jwt_t *jwt, const char *name, long long *out)
{
	char *text = jwt_get_grants_json(jwt, name), *end;
	if (!text)
		return 0;
	errno = 0;
	*out = strtoll(text, &end, 10);
	int rc = end != text && *end == '\0' && errno == 0 &&
			 (text[0] == '-' || (text[0] >= '0' && text[0] <= '9'))
		     ? 1
		     : -1;
	free(text);
	return rc;
}

int token_verify_webhook(const char *api_key, const char *api_secret, const char *auth, const char *body,
			 size_t len, int64_t now_s, const char **why)
{
	jwt_t *jwt = NULL;
	long long exp, nbf;
	int has, rc = -1;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	char expected[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];

	if (!auth || !*auth) {
		*why = "missing Authorization header";
		return -1;
	}
	if (jwt_decode(&jwt, auth, (const unsigned char *)api_secret, (int)strlen(api_secret)) != 0 ||
	    jwt_get_alg(jwt) != JWT_ALG_HS256) {
		*why = "token malformed, wrongly signed or not HS256";
		goto out;
	}
	const char *iss = jwt_get_grant(jwt, "iss");
	if (!iss || strcmp(iss, api_key) != 0) {
		*why = "iss is not the API key";
		goto out;
	}
	has = int_claim(jwt, "exp", &exp);
	if (has <= 0 || exp <= now_s - WEBHOOK_LEEWAY_S) {
		*why = has <= 0 ? "exp missing or not an integer" : "token expired";
		goto out;
	}
	has = int_claim(jwt, "nbf", &nbf);
	if (has < 0 || (has > 0 && nbf > now_s + WEBHOOK_LEEWAY_S)) {
		*why = "token not yet valid (nbf)";
		goto out;
	}
	const char *sha = jwt_get_grant(jwt, "sha256");
	if (EVP_Digest(body, len, digest, &digest_len, EVP_sha256(), NULL) != 1) {
		*why = "cannot hash the body";
		goto out;
	}
	int n = EVP_EncodeBlock((unsigned char *)expected, digest, (int)digest_len);
	if (!sha || strlen(sha) != (size_t)n || CRYPTO_memcmp(sha, expected, (size_t)n) != 0) {
		*why = "sha256 claim does not match the body";
		goto out;
	}
	rc = 0;
out:
	jwt_free(jwt);
	return rc;
}

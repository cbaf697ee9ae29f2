/*
 * token.c - see token.h. libjwt 1.x does the signing and checking; the
 * claims are checked here, because libjwt 1.x checks none of them.
 */
#include "token.h"

#include <errno.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_io.h"
#include "log.h"
#include "util.h"

#define CLOCK_LEEWAY_S 60

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

#define MAX_KEYS 2 /* the current one and, during a rotation, the previous one */

struct token_verifier {
	jwt_alg_t alg;
	struct {
		unsigned char *bytes;
		int len;
	} keys[MAX_KEYS];
	int nkeys;
};

/* Adds an HS256 secret, or the PEM public key read from a file. -1 (logged) on failure. */
static int add_key(struct token_verifier *v, const char *secret_or_path)
{
	struct sbuf key;
	sbuf_init(&key, 1024);
	if (v->alg == JWT_ALG_HS256) {
		sbuf_adds(&key, secret_or_path);
	} else if (sbuf_read_file(&key, secret_or_path) != 0) {
		log_error("cannot read the user-token public key '%s'", secret_or_path);
		goto fail;
	} else if (!strstr(key.buf, "-----BEGIN PUBLIC KEY-----")) {
		log_error("'%s' holds no PEM public key", secret_or_path);
		goto fail;
	}
	size_t len;
	v->keys[v->nkeys].bytes = (unsigned char *)sbuf_detach(&key, &len);
	v->keys[v->nkeys].len = (int)len;
	v->nkeys++;
	return 0;
fail:
	sbuf_release(&key);
	return -1;
}

struct token_verifier *token_verifier_new(const char *hs256_secret, const char *rs256_pem_file,
					  const char *previous)
{
	struct token_verifier *v = xcalloc(1, sizeof(*v));
	v->alg = hs256_secret ? JWT_ALG_HS256 : JWT_ALG_RS256;
	if (add_key(v, hs256_secret ? hs256_secret : rs256_pem_file) != 0 ||
	    (previous && add_key(v, previous) != 0)) {
		token_verifier_free(v);
		return NULL;
	}
	return v;
}

void token_verifier_free(struct token_verifier *v)
{
	if (!v)
		return;
	for (int i = 0; i < v->nkeys; i++)
		free(v->keys[i].bytes);
	free(v);
}

/*
 * Reads an integer claim. Returns 1 with *out set, 0 when absent, -1 when
 * present but not an integer (jwt_get_grant_int would say 0 for "abc").
 */
static int claim_int(jwt_t *jwt, const char *name, long long *out)
{
	char *text = jwt_get_grants_json(jwt, name);
	if (!text)
		return 0;
	const char *p = text + (text[0] == '-');
	int rc = *p ? 1 : -1;
	for (; *p && rc > 0; p++)
		if (*p < '0' || *p > '9')
			rc = -1;
	if (rc > 0) {
		errno = 0;
		*out = strtoll(text, NULL, 10);
		if (errno == ERANGE)
			rc = -1;
	}
	free(text);
	return rc;
}

int token_verify_user(const struct token_verifier *v, const char *token, int64_t now_s,
		      char user_id[ID_MAX_LEN + 1], const char **why)
{
	jwt_t *jwt = NULL;
	int rc = -1;
	if (!*token) {
		*why = "empty token";
		return -1;
	}
	for (int i = 0; i < v->nkeys && !jwt; i++)
		if (jwt_decode(&jwt, token, v->keys[i].bytes, v->keys[i].len) != 0)
			jwt = NULL;
	if (!jwt) {
		*why = "bad signature or malformed token";
		goto out;
	}
	/* libjwt accepts whatever "alg" the token names; only ours may pass. */
	if (jwt_get_alg(jwt) != v->alg) {
		*why = "wrong algorithm";
		goto out;
	}
	long long exp, nbf;
	int has = claim_int(jwt, "exp", &exp);
	if (has <= 0) {
		*why = has < 0 ? "exp is not an integer" : "exp missing";
		goto out;
	}
	/* Written so that no claim value, however large, overflows. */
	if (exp <= now_s - CLOCK_LEEWAY_S) {
		*why = "expired";
		goto out;
	}
	has = claim_int(jwt, "nbf", &nbf);
	if (has < 0 || (has > 0 && nbf > now_s + CLOCK_LEEWAY_S)) {
		*why = has < 0 ? "nbf is not an integer" : "not yet valid";
		goto out;
	}
	const char *sub = jwt_get_grant(jwt, "sub");
	if (!sub || !id_is_valid(sub, strlen(sub))) {
		*why = "sub missing or not a valid user id";
		goto out;
	}
	memcpy(user_id, sub, strlen(sub) + 1);
	rc = 0;
out:
	jwt_free(jwt);
	return rc;
}

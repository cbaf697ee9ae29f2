/*
 * user_token.c - user-token verification with libjwt 1.x (see user_token.h).
 *
 * libjwt 1.x's jwt_decode() verifies the signature with whatever algorithm
 * the token's own header names, and skips verification entirely for "none".
 * So a decoded token means nothing until jwt_get_alg() is compared with the
 * configured algorithm: that comparison is what refuses "alg":"none" and the
 * HS256-signed-with-the-RSA-public-key confusion. jwt_decode() checks no
 * claims; expiry, not-before and subject are checked here.
 */
#include "user_token.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

int user_token_verifier_add_key(struct user_token_verifier *v, const unsigned char *key, size_t len)
{
	unsigned char *copy;

	if (v->key_count >= USER_TOKEN_MAX_KEYS || key == NULL || len == 0 || len > INT_MAX)
		return -1;
	/* One spare byte: a PEM key must be NUL-terminated for OpenSSL's parser. */
	copy = calloc(1, len + 1);
	if (copy == NULL)
		return -1;
	memcpy(copy, key, len);
	v->keys[v->key_count] = copy;
	v->key_lens[v->key_count] = len;
	v->key_count++;
	return 0;
}

void user_token_verifier_release(struct user_token_verifier *v)
{
	for (int i = 0; i < v->key_count; i++) {
		volatile unsigned char *p = v->keys[i];

		for (size_t j = 0; j < v->key_lens[i]; j++)
			p[j] = 0;
		free(v->keys[i]);
		v->keys[i] = NULL;
		v->key_lens[i] = 0;
	}
	v->key_count = 0;
}

static jwt_alg_t libjwt_alg(enum user_token_alg alg)
{
	return alg == USER_TOKEN_RS256 ? JWT_ALG_RS256 : JWT_ALG_HS256;
}

/* Decodes token with one of v's keys; returns the new jwt_t (caller frees) or NULL. */
static jwt_t *decode_with_any_key(const struct user_token_verifier *v, const char *token)
{
	for (int i = 0; i < v->key_count; i++) {
		jwt_t *jwt = NULL;

		if (jwt_decode(&jwt, token, v->keys[i], (int)v->key_lens[i]) != 0) {
			jwt_free(jwt);
			continue;
		}
		if (jwt_get_alg(jwt) == libjwt_alg(v->alg))
			return jwt;
		/* Decoded under another algorithm (or none): not our signature. */
		jwt_free(jwt);
		return NULL;
	}
	return NULL;
}

/*
 * Reads an integer claim: 1 with *out set when present and a JSON integer
 * within long long, 0 when absent, -1 otherwise. jwt_get_grant_int() cannot
 * tell a string or a real from 0, so the claim's JSON text is parsed here.
 */
static int integer_claim(jwt_t *jwt, const char *name, long long *out)
{
	char *text = jwt_get_grants_json(jwt, name);
	const char *p;
	int ret;

	if (text == NULL)
		return 0;
	p = text + (text[0] == '-');
	ret = *p != '\0' ? 1 : -1;
	for (; *p != '\0' && ret > 0; p++) {
		if (*p < '0' || *p > '9')
			ret = -1;
	}
	if (ret > 0) {
		errno = 0;
		*out = strtoll(text, NULL, 10);
		if (errno == ERANGE)
			ret = -1;
	}
	free(text);
	return ret;
}

enum user_token_result user_token_verify(const struct user_token_verifier *v, const char *token,
					 const char *expected_sub, int64_t now_s,
					 char sub_out[ID_MAX_LEN + 1])
{
	enum user_token_result result;
	const char *sub;
	jwt_t *jwt;
	long long exp;
	long long nbf;
	int has;

	if (token == NULL || token[0] == '\0' || v->key_count == 0)
		return USER_TOKEN_INVALID;
	jwt = decode_with_any_key(v, token);
	if (jwt == NULL)
		return USER_TOKEN_INVALID;
	has = integer_claim(jwt, "exp", &exp);
	if (has <= 0) {
		result = has < 0 ? USER_TOKEN_BAD_EXPIRY : USER_TOKEN_NO_EXPIRY;
		goto out;
	}
	/* Written so that no claim value, however large, overflows. */
	if (exp <= now_s - USER_TOKEN_LEEWAY_S) {
		result = USER_TOKEN_EXPIRED;
		goto out;
	}
	has = integer_claim(jwt, "nbf", &nbf);
	if (has < 0) {
		result = USER_TOKEN_BAD_NOT_BEFORE;
		goto out;
	}
	if (has > 0 && nbf > now_s + USER_TOKEN_LEEWAY_S) {
		result = USER_TOKEN_NOT_YET_VALID;
		goto out;
	}
	sub = jwt_get_grant(jwt, "sub");
	if (!id_str_is_valid(sub)) {
		result = USER_TOKEN_BAD_SUBJECT;
		goto out;
	}
	if (expected_sub != NULL && strcmp(sub, expected_sub) != 0) {
		result = USER_TOKEN_WRONG_USER;
		goto out;
	}
	if (sub_out != NULL)
		memcpy(sub_out, sub, strlen(sub) + 1);
	result = USER_TOKEN_OK;
out:
	jwt_free(jwt);
	return result;
}

const char *user_token_result_describe(enum user_token_result r)
{
	switch (r) {
	case USER_TOKEN_OK:
		return "valid";
	case USER_TOKEN_INVALID:
		return "token malformed, wrongly signed or of another algorithm";
	case USER_TOKEN_NO_EXPIRY:
		return "exp missing";
	case USER_TOKEN_BAD_EXPIRY:
		return "exp is not an integer";
	case USER_TOKEN_EXPIRED:
		return "token expired";
	case USER_TOKEN_BAD_NOT_BEFORE:
		return "nbf is not an integer";
	case USER_TOKEN_NOT_YET_VALID:
		return "token not yet valid (nbf)";
	case USER_TOKEN_BAD_SUBJECT:
		return "sub missing or not a valid user id";
	case USER_TOKEN_WRONG_USER:
		return "sub is not the username";
	}
	return "unknown";
}

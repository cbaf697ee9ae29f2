/*
 * token_check.c - user token verification with libjwt 1.x (see token_check.h).
 *
 * libjwt 1.x's jwt_decode() verifies the signature with whatever algorithm
 * the token's own header names, and skips verification entirely for "none".
 * So a decoded token means nothing until jwt_get_alg() is compared with the
 * configured algorithm: that comparison is what refuses "alg":"none" and the
 * HS256-signed-with-the-RSA-public-key confusion. jwt_decode() checks no
 * claims; expiry, not-before and subject are checked here.
 */
#include "token_check.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#include "auth_rules.h"

int token_verifier_add_key(struct token_verifier *v, const unsigned char *key, size_t len)
{
	unsigned char *copy;

	if (v->key_count >= TOKEN_MAX_KEYS || key == NULL || len == 0)
		return -1;
	/* One spare byte: a PEM key must be NUL-terminated for OpenSSL's parser. */
	copy = calloc(1, len + 1);
	if (copy == NULL)
		abort();
	memcpy(copy, key, len);
	v->keys[v->key_count] = copy;
	v->key_lens[v->key_count] = len;
	v->key_count++;
	return 0;
}

void token_verifier_release(struct token_verifier *v)
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

static jwt_alg_t libjwt_alg(enum token_alg alg)
{
	return alg == TOKEN_ALG_RS256 ? JWT_ALG_RS256 : JWT_ALG_HS256;
}

/* Decodes token with one of v's keys; returns the new jwt_t (caller frees) or NULL. */
static jwt_t *decode_with_any_key(const struct token_verifier *v, const char *token)
{
	for (int i = 0; i < v->key_count; i++) {
		jwt_t *jwt = NULL;

		if (v->key_lens[i] > (size_t)INT32_MAX)
			continue;
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
 * Reads an integer claim: 1 when present and a JSON integer, 0 when absent,
 * -1 otherwise. jwt_get_grant_int() cannot tell a string or a real from 0,
 * so the claim's JSON text is parsed here instead.
 */
static int integer_claim(jwt_t *jwt, const char *name, long long *out)
{
	char *text = jwt_get_grants_json(jwt, name);
	const char *digits;
	char *end;
	int ret = -1;

	if (text == NULL)
		return 0;
	digits = text[0] == '-' ? text + 1 : text;
	if (digits[0] >= '0' && digits[0] <= '9') {
		errno = 0;
		*out = strtoll(text, &end, 10);
		if (errno == 0 && *end == '\0')
			ret = 1;
	}
	free(text);
	return ret;
}

enum token_result token_verify(const struct token_verifier *v, const char *token, const char *username,
			       time_t now)
{
	enum token_result result;
	const char *sub;
	jwt_t *jwt;
	long long exp;
	long long nbf;
	int has;

	if (token == NULL || token[0] == '\0' || v->key_count == 0)
		return TOKEN_INVALID;
	jwt = decode_with_any_key(v, token);
	if (jwt == NULL)
		return TOKEN_INVALID;

	if (integer_claim(jwt, "exp", &exp) != 1) {
		result = TOKEN_NO_EXPIRY;
		goto out;
	}
	if (exp <= (long long)now - TOKEN_LEEWAY_S) {
		result = TOKEN_EXPIRED;
		goto out;
	}
	has = integer_claim(jwt, "nbf", &nbf);
	if (has < 0 || (has == 1 && nbf > (long long)now + TOKEN_LEEWAY_S)) {
		result = TOKEN_NOT_YET_VALID;
		goto out;
	}
	sub = jwt_get_grant(jwt, "sub");
	if (!auth_id_is_valid(sub)) {
		result = TOKEN_BAD_SUBJECT;
		goto out;
	}
	if (username == NULL || strcmp(sub, username) != 0) {
		result = TOKEN_WRONG_USER;
		goto out;
	}
	result = TOKEN_OK;
out:
	jwt_free(jwt);
	return result;
}

const char *token_result_describe(enum token_result r)
{
	switch (r) {
	case TOKEN_OK:
		return "valid";
	case TOKEN_INVALID:
		return "token malformed, wrongly signed or of another algorithm";
	case TOKEN_NO_EXPIRY:
		return "token has no integer exp";
	case TOKEN_EXPIRED:
		return "token expired";
	case TOKEN_NOT_YET_VALID:
		return "token not yet valid (nbf)";
	case TOKEN_BAD_SUBJECT:
		return "token sub missing or not a valid id";
	case TOKEN_WRONG_USER:
		return "token sub is not the username";
	}
	return "unknown";
}

/*
 * test_user_token.c - the user-token checks of jwt mode (common/user_token.c),
 * which the service's REST side and the broker plugin both run.
 *
 * Tokens are minted here with libjwt itself; tests/security checks the same
 * rules through the real service and a real Mosquitto.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#include "check.h"
#include "user_token.h"

static const char secret[] = "0123456789abcdef0123456789abcdef";
static const char other_secret[] = "fedcba9876543210fedcba9876543210";
static const int64_t now = 1800000000;

/* A new token (caller frees) for sub, signed with alg/key; exp/nbf of 0 are left out. */
static char *mint(jwt_alg_t alg, const char *key, const char *sub, long exp, long nbf)
{
	jwt_t *jwt = NULL;
	char *out;

	if (jwt_new(&jwt) != 0)
		abort();
	if (sub != NULL)
		jwt_add_grant(jwt, "sub", sub);
	if (exp != 0)
		jwt_add_grant_int(jwt, "exp", exp);
	if (nbf != 0)
		jwt_add_grant_int(jwt, "nbf", nbf);
	if (jwt_set_alg(jwt, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0) != 0)
		abort();
	out = jwt_encode_str(jwt);
	jwt_free(jwt);
	if (out == NULL)
		abort();
	return out;
}

/* A token whose claims are the JSON text given (e.g. a string "exp"). */
static char *mint_json(const char *claims_json)
{
	jwt_t *jwt = NULL;
	char *out;

	if (jwt_new(&jwt) != 0 || jwt_add_grants_json(jwt, claims_json) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) != 0)
		abort();
	out = jwt_encode_str(jwt);
	jwt_free(jwt);
	if (out == NULL)
		abort();
	return out;
}

/* Verifies and frees token. */
static enum user_token_result check(const struct user_token_verifier *v, char *token,
				    const char *expected_sub)
{
	enum user_token_result r = user_token_verify(v, token, expected_sub, now, NULL);

	free(token);
	return r;
}

static struct user_token_verifier hs256(void)
{
	struct user_token_verifier v = { .alg = USER_TOKEN_HS256 };

	CHECK(user_token_verifier_add_key(&v, (const unsigned char *)secret, strlen(secret)) == 0);
	return v;
}

static void valid_token_passes_and_yields_its_subject(void)
{
	struct user_token_verifier v = hs256();
	char sub[ID_MAX_LEN + 1] = "";
	char *t = mint(JWT_ALG_HS256, secret, "alice", now + 600, 0);

	CHECK(user_token_verify(&v, t, NULL, now, sub) == USER_TOKEN_OK);
	CHECK_STR(sub, "alice");
	CHECK(user_token_verify(&v, t, "alice", now, NULL) == USER_TOKEN_OK);
	CHECK(user_token_verify(&v, t, "bob", now, NULL) == USER_TOKEN_WRONG_USER);
	free(t);
	user_token_verifier_release(&v);
}

static void other_keys_and_algorithms_are_refused(void)
{
	struct user_token_verifier v = hs256();

	CHECK(check(&v, mint(JWT_ALG_HS256, other_secret, "alice", now + 600, 0), NULL) ==
	      USER_TOKEN_INVALID);
	CHECK(check(&v, mint(JWT_ALG_NONE, NULL, "alice", now + 600, 0), NULL) == USER_TOKEN_INVALID);
	CHECK(check(&v, mint(JWT_ALG_HS512, secret, "alice", now + 600, 0), NULL) == USER_TOKEN_INVALID);
	CHECK(user_token_verify(&v, "", NULL, now, NULL) == USER_TOKEN_INVALID);
	CHECK(user_token_verify(&v, "x.y.z", NULL, now, NULL) == USER_TOKEN_INVALID);
	CHECK(user_token_verify(&v, NULL, NULL, now, NULL) == USER_TOKEN_INVALID);
	user_token_verifier_release(&v);
}

static void expiry_is_required_and_honoured_with_leeway(void)
{
	struct user_token_verifier v = hs256();

	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "alice", 0, 0), NULL) == USER_TOKEN_NO_EXPIRY);
	CHECK(check(&v, mint_json("{\"sub\":\"alice\",\"exp\":\"1800000600\"}"), NULL) ==
	      USER_TOKEN_BAD_EXPIRY);
	CHECK(check(&v, mint_json("{\"sub\":\"alice\",\"exp\":1800000600.5}"), NULL) ==
	      USER_TOKEN_BAD_EXPIRY);
	CHECK(check(&v, mint_json("{\"sub\":\"alice\",\"exp\":null}"), NULL) == USER_TOKEN_BAD_EXPIRY);
	CHECK(check(&v, mint_json("{\"sub\":\"alice\",\"exp\":-9223372036854775808}"), NULL) ==
	      USER_TOKEN_EXPIRED);
	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "alice", now - USER_TOKEN_LEEWAY_S, 0), NULL) ==
	      USER_TOKEN_EXPIRED);
	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "alice", now - USER_TOKEN_LEEWAY_S + 1, 0), NULL) ==
	      USER_TOKEN_OK);
	user_token_verifier_release(&v);
}

static void not_before_is_honoured_with_leeway(void)
{
	struct user_token_verifier v = hs256();

	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "alice", now + 600, now + USER_TOKEN_LEEWAY_S + 1),
		    NULL) == USER_TOKEN_NOT_YET_VALID);
	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "alice", now + 600, now + USER_TOKEN_LEEWAY_S), NULL) ==
	      USER_TOKEN_OK);
	CHECK(check(&v, mint_json("{\"sub\":\"alice\",\"exp\":1800000600,\"nbf\":\"0\"}"), NULL) ==
	      USER_TOKEN_BAD_NOT_BEFORE);
	CHECK(check(&v, mint_json("{\"sub\":\"alice\",\"exp\":1800000600,\"nbf\":9223372036854775807}"),
		    NULL) == USER_TOKEN_NOT_YET_VALID);
	user_token_verifier_release(&v);
}

static void subject_must_be_a_valid_user_id(void)
{
	struct user_token_verifier v = hs256();

	CHECK(check(&v, mint(JWT_ALG_HS256, secret, NULL, now + 600, 0), NULL) == USER_TOKEN_BAD_SUBJECT);
	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "a/b", now + 600, 0), "a/b") == USER_TOKEN_BAD_SUBJECT);
	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "", now + 600, 0), NULL) == USER_TOKEN_BAD_SUBJECT);
	CHECK(check(&v, mint_json("{\"sub\":42,\"exp\":1800000600}"), NULL) == USER_TOKEN_BAD_SUBJECT);
	user_token_verifier_release(&v);
}

static void previous_key_verifies_during_a_rotation(void)
{
	struct user_token_verifier v = hs256();

	CHECK(user_token_verifier_add_key(&v, (const unsigned char *)other_secret, strlen(other_secret)) ==
	      0);
	CHECK(check(&v, mint(JWT_ALG_HS256, other_secret, "alice", now + 600, 0), NULL) == USER_TOKEN_OK);
	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "alice", now + 600, 0), NULL) == USER_TOKEN_OK);
	CHECK(check(&v, mint(JWT_ALG_HS256, "a third secret, not configured!", "alice", now + 600, 0),
		    NULL) == USER_TOKEN_INVALID);
	CHECK(user_token_verifier_add_key(&v, (const unsigned char *)secret, strlen(secret)) == -1);
	user_token_verifier_release(&v);
	CHECK(v.key_count == 0);
	CHECK(user_token_verify(&v, "x.y.z", NULL, now, NULL) == USER_TOKEN_INVALID);
	CHECK(user_token_verifier_add_key(&v, (const unsigned char *)"", 0) == -1);
}

/* Failure injection: the test links with -Wl,--wrap=calloc, so user_token.c's calls land here. */
static bool fail_next_calloc;

void *__real_calloc(size_t count, size_t n);
void *__wrap_calloc(size_t count, size_t n);

void *__wrap_calloc(size_t count, size_t n)
{
	if (fail_next_calloc) {
		fail_next_calloc = false;
		return NULL;
	}
	return __real_calloc(count, n);
}

/* The broker plugin links this code and must never abort: out of memory is an error value. */
static void adding_a_key_out_of_memory_fails_and_changes_nothing(void)
{
	struct user_token_verifier v = hs256();

	fail_next_calloc = true;
	CHECK(user_token_verifier_add_key(&v, (const unsigned char *)other_secret, strlen(other_secret)) ==
	      -1);
	CHECK(v.key_count == 1);
	CHECK(check(&v, mint(JWT_ALG_HS256, secret, "alice", now + 600, 0), NULL) == USER_TOKEN_OK);
	CHECK(check(&v, mint(JWT_ALG_HS256, other_secret, "alice", now + 600, 0), NULL) ==
	      USER_TOKEN_INVALID);
	user_token_verifier_release(&v);
}

static void every_result_has_a_description(void)
{
	for (int r = USER_TOKEN_OK; r <= USER_TOKEN_WRONG_USER; r++)
		CHECK(strcmp(user_token_result_describe((enum user_token_result)r), "unknown") != 0);
}

int main(void)
{
	RUN(valid_token_passes_and_yields_its_subject);
	RUN(other_keys_and_algorithms_are_refused);
	RUN(expiry_is_required_and_honoured_with_leeway);
	RUN(not_before_is_honoured_with_leeway);
	RUN(subject_must_be_a_valid_user_id);
	RUN(previous_key_verifies_during_a_rotation);
	RUN(adding_a_key_out_of_memory_fails_and_changes_nothing);
	RUN(every_result_has_a_description);
	return check_done();
}

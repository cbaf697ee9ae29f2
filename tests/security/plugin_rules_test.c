/*
 * plugin_rules_test.c - unit tests of the broker plugin's pure parts:
 * the topic rules (broker-config/plugin/auth_rules.c), the user-token
 * checks (token_check.c) and the table of connected clients (sessions.c),
 * without a broker.
 *
 * Tokens are minted here with libjwt itself; the integration tests
 * (10_broker_connect.py, 20_broker_acl.py) check the same rules through a
 * real Mosquitto. Exit status 0 when every case passes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>

#include "auth_rules.h"
#include "sessions.h"
#include "token_check.h"

static int failures;

#define EXPECT(cond)                                                                                         \
	do {                                                                                                 \
		if (!(cond)) {                                                                               \
			fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);                  \
			failures++;                                                                          \
		}                                                                                            \
	} while (0)

struct rule_case {
	enum auth_role role;
	enum auth_access access;
	const char *topic;
	bool allowed;
};

/* User "alice" on client "phone"; the service. */
static const struct rule_case rule_cases[] = {
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alice/events", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/+/presence/+", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/bob/presence/+", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/bob/presence/tv", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "#", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "+/#", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "$SYS/#", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/#", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/+/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/bob/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alice/#", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alice/+", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/+/presence/#", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alice/events/", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alice/events/#", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alicex/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "$share/g/users/alice/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_READ, "users/alice/events", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_READ, "users/bob/presence/tv", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_READ, "users/bob/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_READ, "users/bob/presence/tv/x", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_READ, "$SYS/broker/uptime", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/presence/phone", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/presence/laptop", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/bob/presence/phone", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/presence/phone/x", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/bob/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "anything", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_UNSUBSCRIBE, "#", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_SUBSCRIBE, "users/+/presence/+", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_SUBSCRIBE, "users/+/events", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_SUBSCRIBE, "#", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_SUBSCRIBE, "$SYS/#", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_READ, "users/bob/presence/tv", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_READ, "users/bob/events", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_WRITE, "users/bob/events", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_WRITE, "users/bob/presence/tv", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_WRITE, "users/bob/events/x", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_WRITE, "$SYS/x", false },
};

static void rules_follow_the_table(void)
{
	for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
		const struct rule_case *c = &rule_cases[i];
		bool got = auth_allows(c->role, "alice", "phone", c->access, c->topic);

		if (got != c->allowed) {
			fprintf(stderr, "rule case %zu (%s, access %d, \"%s\"): expected %s\n", i,
				c->role == AUTH_ROLE_USER ? "user alice/phone" : "service", (int)c->access,
				c->topic, c->allowed ? "allowed" : "denied");
			failures++;
		}
	}
}

static void invalid_ids_get_nothing(void)
{
	EXPECT(!auth_allows(AUTH_ROLE_USER, "a/b", "phone", AUTH_ACCESS_READ, "users/a/b/events"));
	EXPECT(!auth_allows(AUTH_ROLE_USER, "+", "phone", AUTH_ACCESS_SUBSCRIBE, "users/+/events"));
	EXPECT(!auth_allows(AUTH_ROLE_USER, "#", "phone", AUTH_ACCESS_SUBSCRIBE, "users/#/events"));
	EXPECT(!auth_allows(AUTH_ROLE_USER, "alice", "ph/one", AUTH_ACCESS_WRITE,
			    "users/alice/presence/ph/one"));
	EXPECT(!auth_allows(AUTH_ROLE_USER, "alice", "+", AUTH_ACCESS_WRITE, "users/alice/presence/+"));
	EXPECT(!auth_allows(AUTH_ROLE_USER, NULL, "phone", AUTH_ACCESS_READ, "users/alice/events"));
	EXPECT(!auth_allows(AUTH_ROLE_USER, "alice", NULL, AUTH_ACCESS_WRITE, "users/alice/presence/phone"));
	EXPECT(!auth_allows(AUTH_ROLE_USER, "alice", "phone", AUTH_ACCESS_READ, NULL));
}

static void id_grammar(void)
{
	char long_id[AUTH_ID_MAX + 2];

	EXPECT(auth_id_is_valid("alice"));
	EXPECT(auth_id_is_valid("J\xc3\xa9r\xc3\xb4me")); /* Jérôme */
	EXPECT(auth_id_is_valid("\xf0\x9f\x98\x80"));     /* an emoji */
	EXPECT(!auth_id_is_valid(""));
	EXPECT(!auth_id_is_valid(NULL));
	EXPECT(!auth_id_is_valid("a/b"));
	EXPECT(!auth_id_is_valid("a+b"));
	EXPECT(!auth_id_is_valid("a#b"));
	EXPECT(!auth_id_is_valid("a\nb"));
	EXPECT(!auth_id_is_valid("a\x7f"));
	EXPECT(!auth_id_is_valid("\xc3"));             /* truncated */
	EXPECT(!auth_id_is_valid("\xc0\xaf"));         /* overlong '/' */
	EXPECT(!auth_id_is_valid("\xed\xa0\x80"));     /* surrogate */
	EXPECT(!auth_id_is_valid("\xf4\x90\x80\x80")); /* beyond U+10FFFF */
	memset(long_id, 'x', AUTH_ID_MAX);
	long_id[AUTH_ID_MAX] = '\0';
	EXPECT(auth_id_is_valid(long_id));
	long_id[AUTH_ID_MAX] = 'x';
	long_id[AUTH_ID_MAX + 1] = '\0';
	EXPECT(!auth_id_is_valid(long_id));
}

static const char secret[] = "0123456789abcdef0123456789abcdef";
static const char other_secret[] = "fedcba9876543210fedcba9876543210";

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

static enum token_result check(const struct token_verifier *v, char *token, const char *username, time_t now)
{
	enum token_result r = token_verify(v, token, username, now);

	free(token);
	return r;
}

static void tokens_are_checked(void)
{
	struct token_verifier v = { .alg = TOKEN_ALG_HS256 };
	const time_t now = 1800000000;

	EXPECT(token_verifier_add_key(&v, (const unsigned char *)secret, strlen(secret)) == 0);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, "alice", now + 600, 0), "alice", now) == TOKEN_OK);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, "alice", now + 600, 0), "bob", now) == TOKEN_WRONG_USER);
	EXPECT(check(&v, mint(JWT_ALG_HS256, other_secret, "alice", now + 600, 0), "alice", now) ==
	       TOKEN_INVALID);
	EXPECT(check(&v, mint(JWT_ALG_NONE, NULL, "alice", now + 600, 0), "alice", now) == TOKEN_INVALID);
	EXPECT(check(&v, mint(JWT_ALG_HS512, secret, "alice", now + 600, 0), "alice", now) == TOKEN_INVALID);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, "alice", 0, 0), "alice", now) == TOKEN_NO_EXPIRY);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, "alice", now - TOKEN_LEEWAY_S, 0), "alice", now) ==
	       TOKEN_EXPIRED);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, "alice", now - TOKEN_LEEWAY_S + 1, 0), "alice", now) ==
	       TOKEN_OK);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, "alice", now + 600, now + TOKEN_LEEWAY_S + 1), "alice",
		     now) == TOKEN_NOT_YET_VALID);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, "alice", now + 600, now + TOKEN_LEEWAY_S), "alice",
		     now) == TOKEN_OK);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, NULL, now + 600, 0), "alice", now) == TOKEN_BAD_SUBJECT);
	EXPECT(check(&v, mint(JWT_ALG_HS256, secret, "a/b", now + 600, 0), "a/b", now) == TOKEN_BAD_SUBJECT);
	EXPECT(token_verify(&v, "", "alice", now) == TOKEN_INVALID);
	EXPECT(token_verify(&v, "x.y.z", "alice", now) == TOKEN_INVALID);
	EXPECT(token_verify(&v, NULL, "alice", now) == TOKEN_INVALID);

	/* Rotation: the previous secret still verifies, a third one does not. */
	EXPECT(token_verifier_add_key(&v, (const unsigned char *)other_secret, strlen(other_secret)) == 0);
	EXPECT(check(&v, mint(JWT_ALG_HS256, other_secret, "alice", now + 600, 0), "alice", now) == TOKEN_OK);
	EXPECT(check(&v, mint(JWT_ALG_HS256, "a third secret, not configured!", "alice", now + 600, 0),
		     "alice", now) == TOKEN_INVALID);
	EXPECT(token_verifier_add_key(&v, (const unsigned char *)secret, strlen(secret)) == -1);
	token_verifier_release(&v);
	EXPECT(v.key_count == 0);
	EXPECT(token_verify(&v, "x.y.z", "alice", now) == TOKEN_INVALID);
}

static void sessions_follow_connects_and_disconnects(void)
{
	struct session_table t = { 0 };
	int a = 0, b = 0, c = 0; /* stand-ins for the broker's client objects */
	char many[200];

	sessions_put(&t, &a, "a-dev", "alice", "token-a1");
	sessions_put(&t, &b, "b-dev", "bob", "token-b");
	sessions_put(&t, &a, "a-dev", "alice", "token-a2"); /* re-authenticated: replaced */
	EXPECT(t.count == 2);
	EXPECT(strcmp(t.items[0].token, "token-a2") == 0);
	sessions_remove(&t, &c); /* never authenticated: nothing happens */
	EXPECT(t.count == 2);
	sessions_remove(&t, &a);
	EXPECT(t.count == 1 && t.items[0].client == &b && strcmp(t.items[0].username, "bob") == 0);
	for (size_t i = 0; i < sizeof(many); i++)
		sessions_put(&t, &many[i], "c", "carol", "token-c");
	EXPECT(t.count == 201);
	sessions_remove_at(&t, 0);
	EXPECT(t.count == 200);
	sessions_release(&t);
	EXPECT(t.count == 0 && t.items == NULL);
}

int main(void)
{
	rules_follow_the_table();
	invalid_ids_get_nothing();
	id_grammar();
	tokens_are_checked();
	sessions_follow_connects_and_disconnects();
	if (failures != 0) {
		fprintf(stderr, "plugin_rules_test: %d failure(s)\n", failures);
		return 1;
	}
	printf("plugin_rules_test: all cases pass\n");
	return 0;
}

/*
 * test_plugin_rules.c - the broker plugin's pure parts without a broker:
 * the topic rules (broker-config/plugin/auth_rules.c) and the table of
 * connected clients (sessions.c). The id grammar and the user-token checks
 * it shares with the service are tested in test_topics.c and
 * test_user_token.c; tests/security (10_broker_connect.py,
 * 20_broker_acl.py) checks the same rules through a real Mosquitto.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "auth_rules.h"
#include "check.h"
#include "sessions.h"

struct rule_case {
	enum auth_role role;
	enum auth_access access;
	const char *topic;
	bool allowed;
};

/* User "alice" on client "alice.phone"; the service. */
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
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/presence/alice.phone", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/presence/alice.laptop", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/bob/presence/alice.phone", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/presence/alice.phone/x", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/bob/events", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "anything", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_UNSUBSCRIBE, "#", true },
	/* users/{userId}/call: a user reads only their own; only the service writes. */
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alice/call", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/bob/call", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/+/call", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/+/+", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alice/call/#", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "users/alicex/call", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_READ, "users/alice/call", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_READ, "users/bob/call", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/alice/call", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "users/bob/call", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_SUBSCRIBE, "callsignal/sync/+", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_WRITE, "callsignal/sync/alice.phone", false },
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
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_SUBSCRIBE, "users/+/call", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_READ, "users/bob/call", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_WRITE, "users/bob/call", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_WRITE, "users/bob/call/x", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_SUBSCRIBE, "users/+/+", false },
	/* Clearing (an empty retained message): the service any presence, for the lease; a user only
	 * what it may write. */
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/presence/tv", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/presence/bob.phone", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/alice/presence/alice.phone", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/presence/tv/x", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/presence", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/presence/+", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/+/presence/+", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/presence/#", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/x", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "$SYS/x", false },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/call", true },
	{ AUTH_ROLE_SERVICE, AUTH_ACCESS_CLEAR, "users/bob/events", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_CLEAR, "users/alice/presence/alice.phone", true },
	{ AUTH_ROLE_USER, AUTH_ACCESS_CLEAR, "users/alice/presence/alice.laptop", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_CLEAR, "users/bob/presence/bob.phone", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_CLEAR, "users/bob/presence/alice.phone", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_CLEAR, "users/alice/call", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_CLEAR, "users/bob/call", false },
	{ AUTH_ROLE_USER, AUTH_ACCESS_CLEAR, "callsignal/sync/alice.phone", false },
};

static void rules_follow_the_table(void)
{
	for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
		const struct rule_case *c = &rule_cases[i];
		bool got = auth_allows(c->role, "alice", "alice.phone", c->access, c->topic);

		if (got != c->allowed) {
			fprintf(stderr, "rule case %zu (%s, access %d, \"%s\"): expected %s\n", i,
				c->role == AUTH_ROLE_USER ? "user alice on alice.phone" : "service",
				(int)c->access, c->topic, c->allowed ? "allowed" : "denied");
			check_failures++;
			check_test_failed = 1;
		}
	}
}

/*
 * The presence lease: the service may empty any device's retained presence, but
 * writing one stays denied (a payload, retained or not), so it never makes a user
 * look online; a user may not clear another user's devices.
 */
static void the_service_may_clear_any_presence_and_write_none(void)
{
	CHECK(auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", AUTH_ACCESS_CLEAR,
			  "users/bob/presence/bob.tv"));
	CHECK(!auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", AUTH_ACCESS_WRITE,
			   "users/bob/presence/bob.tv"));
	CHECK(!auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", AUTH_ACCESS_CLEAR,
			   "users/bob/presence/bob.tv/x"));
	CHECK(!auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", AUTH_ACCESS_CLEAR, NULL));
	CHECK(auth_allows(AUTH_ROLE_USER, "bob", "bob.tv", AUTH_ACCESS_CLEAR, "users/bob/presence/bob.tv"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "alice", "alice.phone", AUTH_ACCESS_CLEAR,
			   "users/bob/presence/bob.tv"));
	CHECK(
	    !auth_allows(AUTH_ROLE_USER, "alice", "bob.tv", AUTH_ACCESS_CLEAR, "users/bob/presence/bob.tv"));
}

static void invalid_ids_get_nothing(void)
{
	CHECK(!auth_allows(AUTH_ROLE_USER, "a/b", "a/b.phone", AUTH_ACCESS_READ, "users/a/b/events"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "+", "+.phone", AUTH_ACCESS_SUBSCRIBE, "users/+/events"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "#", "#.phone", AUTH_ACCESS_SUBSCRIBE, "users/#/events"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "alice", "alice.ph/one", AUTH_ACCESS_WRITE,
			   "users/alice/presence/alice.ph/one"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "alice", "alice.+", AUTH_ACCESS_WRITE,
			   "users/alice/presence/alice.+"));
	CHECK(!auth_allows(AUTH_ROLE_USER, NULL, "alice.phone", AUTH_ACCESS_READ, "users/alice/events"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "alice", NULL, AUTH_ACCESS_WRITE, "users/alice/presence/phone"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "alice", "alice.phone", AUTH_ACCESS_READ, NULL));
}

/* A client id that does not name its user gets no right, even to its "own" presence topic. */
static void a_client_id_of_another_form_gets_nothing(void)
{
	CHECK(auth_allows(AUTH_ROLE_USER, "alice", "alice.phone", AUTH_ACCESS_READ, "users/alice/events"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "alice", "bob.phone", AUTH_ACCESS_READ, "users/alice/events"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "alice", "bob.phone", AUTH_ACCESS_WRITE,
			   "users/alice/presence/bob.phone"));
	CHECK(
	    !auth_allows(AUTH_ROLE_USER, "alice", "phone", AUTH_ACCESS_WRITE, "users/alice/presence/phone"));
	CHECK(!auth_allows(AUTH_ROLE_USER, "alice", "callsignal-0a1b2c3d", AUTH_ACCESS_SUBSCRIBE,
			   "users/+/presence/+"));
}

/* The service's end-of-replay marker is callsignal/sync/{its own client id}, and only that. */
static void the_service_reads_and_writes_only_its_own_sync_topic(void)
{
	static const enum auth_access rw[] = { AUTH_ACCESS_SUBSCRIBE, AUTH_ACCESS_READ, AUTH_ACCESS_WRITE };

	for (size_t i = 0; i < sizeof(rw) / sizeof(rw[0]); i++) {
		CHECK(auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", rw[i],
				  "callsignal/sync/callsignal-0a1b2c3d"));
		CHECK(!auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", rw[i],
				   "callsignal/sync/callsignal-ffffffff"));
		CHECK(
		    !auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", rw[i], "callsignal/sync/+"));
		CHECK(
		    !auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", rw[i], "callsignal/sync/#"));
		CHECK(!auth_allows(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d", rw[i],
				   "callsignal/sync/callsignal-0a1b2c3d/x"));
		CHECK(!auth_allows(AUTH_ROLE_SERVICE, NULL, NULL, rw[i], "callsignal/sync/"));
		CHECK(!auth_allows(AUTH_ROLE_USER, "alice", "alice.phone", rw[i],
				   "callsignal/sync/alice.phone"));
	}
}

static void users_connect_only_with_client_ids_that_name_them(void)
{
	CHECK(auth_client_id_allowed(AUTH_ROLE_USER, "alice", "alice.phone"));
	CHECK(auth_client_id_allowed(AUTH_ROLE_USER, "alice", "alice.web-1a2b3c"));
	CHECK(auth_client_id_allowed(AUTH_ROLE_USER, "jo.doe", "jo.doe.phone"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "jo", "jo.doe.phone")); /* jo.doe's device */
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", "bob.phone"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", "alice"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", "alice."));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", "alicex.phone"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", "phone"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", "callsignal-0a1b2c3d"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", "auto-6F2A0C8E-0000-0000-0000-000000000000"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", ""));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "alice", NULL));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, NULL, "alice.phone"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_USER, "a/b", "a/b.phone"));
}

static void the_service_connects_only_with_client_ids_that_name_no_user(void)
{
	CHECK(auth_client_id_allowed(AUTH_ROLE_SERVICE, NULL, "callsignal-0a1b2c3d"));
	CHECK(auth_client_id_allowed(AUTH_ROLE_SERVICE, NULL, "svc"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_SERVICE, NULL, "bob.phone"));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_SERVICE, NULL, ""));
	CHECK(!auth_client_id_allowed(AUTH_ROLE_SERVICE, NULL, NULL));
}

static void sessions_follow_connects_and_disconnects(void)
{
	struct session_table t = { 0 };
	int a = 0, b = 0, c = 0; /* stand-ins for the broker's client objects */
	char many[200];

	CHECK(sessions_put(&t, &a, "a-dev", "alice", "token-a1") == 0);
	CHECK(sessions_put(&t, &b, "b-dev", "bob", "token-b") == 0);
	CHECK(sessions_put(&t, &a, "a-dev", "alice", "token-a2") == 0); /* re-authenticated: replaced */
	CHECK(t.count == 2);
	CHECK(strcmp(t.items[0].token, "token-a2") == 0);
	sessions_remove(&t, &c); /* never authenticated: nothing happens */
	CHECK(t.count == 2);
	sessions_remove(&t, &a);
	CHECK(t.count == 1 && t.items[0].client == &b && strcmp(t.items[0].username, "bob") == 0);
	for (size_t i = 0; i < sizeof(many); i++)
		CHECK(sessions_put(&t, &many[i], "c", "carol", "token-c") == 0);
	CHECK(t.count == 201);
	sessions_remove_at(&t, 0);
	CHECK(t.count == 200);
	sessions_release(&t);
	CHECK(t.count == 0 && t.items == NULL);
}

/*
 * Allocation failures, injected: the test links with -Wl,--wrap=strdup,--wrap=realloc, so
 * sessions.c's calls land here. allocations_left counts the allocations that still succeed;
 * negative means all do.
 */
static int allocations_left = -1;

char *__real_strdup(const char *s);
void *__real_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_realloc(void *p, size_t n);

static bool allocation_fails(void)
{
	return allocations_left >= 0 && allocations_left-- == 0;
}

char *__wrap_strdup(const char *s)
{
	return allocation_fails() ? NULL : __real_strdup(s);
}

void *__wrap_realloc(void *p, size_t n)
{
	return allocation_fails() ? NULL : __real_realloc(p, n);
}

/* The plugin never aborts: a put that runs out of memory fails and leaves the table as it was. */
static void sessions_put_out_of_memory_fails_and_changes_nothing(void)
{
	struct session_table t = { 0 };
	int a = 0, b = 0;
	int failures_seen = 0;

	/* Into an empty table: three string copies, then the array itself. */
	for (int k = 0; k < 4; k++) {
		allocations_left = k;
		failures_seen += sessions_put(&t, &a, "alice.phone", "alice", "token-a1") == -1;
		CHECK(t.count == 0);
	}
	CHECK(failures_seen == 4);
	allocations_left = -1;
	CHECK(sessions_put(&t, &a, "alice.phone", "alice", "token-a1") == 0);
	/* Replacing a client's session: the old one stays when the copies fail. */
	for (int k = 0; k < 3; k++) {
		allocations_left = k;
		CHECK(sessions_put(&t, &a, "alice.phone", "alice", "token-a2") == -1);
		CHECK(t.count == 1 && t.items[0].client == &a && strcmp(t.items[0].token, "token-a1") == 0);
	}
	allocations_left = -1;
	CHECK(sessions_put(&t, &b, "bob.tv", "bob", "token-b") == 0);
	CHECK(sessions_put(&t, &a, "alice.phone", "alice", "token-a2") == 0);
	CHECK(t.count == 2 && strcmp(t.items[0].token, "token-a2") == 0);
	sessions_release(&t);
}

int main(void)
{
	RUN(rules_follow_the_table);
	RUN(the_service_may_clear_any_presence_and_write_none);
	RUN(invalid_ids_get_nothing);
	RUN(a_client_id_of_another_form_gets_nothing);
	RUN(the_service_reads_and_writes_only_its_own_sync_topic);
	RUN(users_connect_only_with_client_ids_that_name_them);
	RUN(the_service_connects_only_with_client_ids_that_name_no_user);
	RUN(sessions_follow_connects_and_disconnects);
	RUN(sessions_put_out_of_memory_fails_and_changes_nothing);
	return check_done();
}

/*
 * test_json_io.c - JSON in and out. Bad-input cases are data: each folder
 * of cases/presence and cases/request holds an `input` and the `expected`
 * outcome, so a new case is a new folder, not new code.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json_io.h"
#include "util.h"

static char *slurp(const char *dir, const char *name, const char *file, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, file);
	struct sbuf sb;
	sbuf_init(&sb, 256);
	if (sbuf_read_file(&sb, path) != 0) {
		sbuf_release(&sb);
		return NULL;
	}
	if (!strcmp(file, "expected") && sb.len && sb.buf[sb.len - 1] == '\n')
		sb.buf[--sb.len] = '\0';
	return sbuf_detach(&sb, len);
}

/* Runs fn on every case folder of dir; fn returns the outcome as text. */
static void run_cases(const char *dir, char *(*fn)(const char *input, size_t len))
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	if (!d)
		return;
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		size_t len;
		char *input = slurp(dir, e->d_name, "input", &len);
		char *expected = slurp(dir, e->d_name, "expected", NULL);
		CHECK(input && expected);
		if (input && expected) {
			char *got = fn(input, len);
			if (strcmp(got, expected) != 0) {
				fprintf(stderr, "  case %s/%s: got \"%s\", expected \"%s\"\n", dir, e->d_name,
					got, expected);
				check_failures++;
				check_test_failed = 1;
			}
			free(got);
		}
		free(input);
		free(expected);
		count++;
	}
	closedir(d);
	CHECK(count >= 5);
}

static char *presence_outcome(const char *input, size_t len)
{
	struct user_info u;
	const char *why;
	struct sbuf sb;
	sbuf_init(&sb, 64);
	if (json_io_parse_user(input, len, &u, &why) == 0) {
		sbuf_addf(&sb, "ok %s|%s|%s", u.id, u.name, u.location);
		user_info_release(&u);
	} else {
		sbuf_adds(&sb, why);
	}
	return sbuf_detach(&sb, NULL);
}

static char *request_outcome(const char *input, size_t len)
{
	struct req_field f[] = { { "callId", NULL, 0 }, { "userId", NULL, 0 } };
	const char *bad = NULL;
	enum err e = json_io_parse_fields(input, len, f, 2, &bad);
	struct sbuf sb;
	sbuf_init(&sb, 64);
	if (e == ERR_OK)
		sbuf_addf(&sb, "ok %s|%s", f[0].value ? f[0].value : "-", f[1].value ? f[1].value : "-");
	else if (e == ERR_INVALID_FIELD)
		sbuf_addf(&sb, "%s %s", err_code(e), bad);
	else
		sbuf_adds(&sb, err_code(e));
	free(f[0].value);
	free(f[1].value);
	return sbuf_detach(&sb, NULL);
}

static const char *cases_dir;

static void presence_payload_cases(void)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/presence", cases_dir);
	run_cases(dir, presence_outcome);
}

static void request_body_cases(void)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/request", cases_dir);
	run_cases(dir, request_outcome);
}

static struct call sample_call(void)
{
	struct call c = { 0 };
	snprintf(c.id, sizeof(c.id), "%s", "0f8fad5b-d9cb-469f-a165-70867728950e");
	c.party[PARTY_CALLER] = (struct user_info){ "alice", "Alice \"A\"\n", "Paris" };
	c.party[PARTY_RECEIVER] = (struct user_info){ "bob", "Bob", "" };
	c.status = CALL_ERROR;
	c.err_msg = "Bob went offline";
	c.created_at = 1764041201123; /* 2025-11-25T03:26:41.123Z */
	c.ended_at = 1764041261000;
	c.revision = 3;
	return c;
}

static void call_renders_as_the_contract_says(void)
{
	struct call c = sample_call();
	size_t len;
	char *s = json_io_call(&c, &len);
	CHECK_STR(s, "{\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\","
		     "\"caller\":{\"id\":\"alice\",\"name\":\"Alice \\\"A\\\"\\n\",\"location\":\"Paris\"},"
		     "\"receiver\":{\"id\":\"bob\",\"name\":\"Bob\",\"location\":\"\"},"
		     "\"status\":\"ERROR\",\"errMsg\":\"Bob went offline\","
		     "\"createdAt\":\"2025-11-25T03:26:41.123Z\",\"endedAt\":\"2025-11-25T03:27:41.000Z\","
		     "\"revision\":3}");
	CHECK(len == strlen(s));
	free(s);
}

static void ringing_call_carries_its_deadline_and_parses_back(void)
{
	struct call c = sample_call(), back;
	c.status = CALL_DIALLING;
	c.err_msg = NULL;
	c.ended_at = 0;
	c.ring_deadline = c.created_at + 30000;
	c.revision = 1;
	size_t len;
	const char *why = NULL;
	char *s = json_io_call(&c, &len);
	CHECK(strstr(s, "\"ringDeadline\":\"2025-11-25T03:27:11.123Z\",\"revision\":1}") != NULL);
	CHECK(json_io_parse_call(s, len, &back, &why) == 0);
	CHECK_STR(back.id, c.id);
	CHECK_STR(back.party[PARTY_CALLER].name, "Alice \"A\"\n");
	CHECK(back.status == CALL_DIALLING && back.revision == 1);
	CHECK(back.created_at == c.created_at && back.ring_deadline == c.ring_deadline);
	CHECK(back.answered_at == 0 && back.err_msg == NULL);
	call_release(&back);
	free(s);
}

static void retained_call_without_revision_or_deadline_is_refused(void)
{
	struct call back;
	const char *why = NULL;
	const char *no_rev =
	    "{\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"caller\":{\"id\":\"a\",\"name\":\"A\"},"
	    "\"receiver\":{\"id\":\"b\",\"name\":\"B\"},\"status\":\"ONGOING\","
	    "\"createdAt\":\"2025-11-25T03:26:41.123Z\"}";
	CHECK(json_io_parse_call(no_rev, strlen(no_rev), &back, &why) == -1 && why);
	const char *no_deadline = "{\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"caller\":{\"id\":\"a\","
				  "\"name\":\"A\"},\"receiver\":{\"id\":\"b\",\"name\":\"B\"},\"status\":"
				  "\"DIALLING\",\"createdAt\":\"2025-11-25T03:26:41.123Z\",\"revision\":1}";
	CHECK(json_io_parse_call(no_deadline, strlen(no_deadline), &back, &why) == -1);
	CHECK(json_io_parse_call("[]", 2, &back, &why) == -1);
}

static void event_wraps_the_call(void)
{
	struct call c = sample_call();
	char *s = json_io_event(EVENT_END_CALL, &c, NULL);
	CHECK(
	    strncmp(
		s,
		"{\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e:3\",\"type\":\"END_CALL\",\"call\":{\"id\":",
		78) == 0);
	free(s);
}

static void control_characters_are_escaped(void)
{
	struct sbuf sb;
	sbuf_init(&sb, 16);
	json_io_add_string(&sb, "a\x01\tb\\");
	CHECK_STR(sb.buf, "\"a\\u0001\\tb\\\\\"");
	sbuf_release(&sb);
}

static void error_and_object_bodies(void)
{
	char *s = json_io_error("Call not found", "CALL_NOT_FOUND", NULL, NULL);
	CHECK_STR(s, "{\"message\":\"Call not found\",\"error\":\"CALL_NOT_FOUND\"}");
	free(s);
	s = json_io_object(NULL, "token", "t", "url", NULL, NULL);
	CHECK_STR(s, "{\"token\":\"t\",\"url\":null}");
	free(s);
}

static void users_list_in_order(void)
{
	struct presence p;
	presence_init(&p);
	char *s = json_io_users(&p, NULL);
	CHECK_STR(s, "[]");
	free(s);
	struct user_info a = { "a", "A", "x" }, b = { "b", "B", "" };
	presence_device_up(&p, &a, "1");
	presence_device_up(&p, &b, "2");
	s = json_io_users(&p, NULL);
	CHECK_STR(s, "[{\"id\":\"a\",\"name\":\"A\",\"location\":\"x\"},{\"id\":\"b\",\"name\":\"B\","
		     "\"location\":\"\"}]");
	free(s);
	presence_release(&p);
}

static void finished_call_says_why_and_who_and_parses_back(void)
{
	struct call c = sample_call(), back;
	c.status = CALL_ENDED;
	c.err_msg = NULL;
	c.end_reason = END_HANGUP;
	c.answered_by = (struct actor){ "bob", "bob.phone" };
	c.ended_by = (struct actor){ "alice", NULL };
	c.media_joined_at[PARTY_RECEIVER] = c.created_at + 5000;
	size_t len;
	const char *why = NULL;
	char *s = json_io_call(&c, &len);
	CHECK(strstr(s, "\"revision\":3,\"endReason\":\"HANGUP\","
			"\"answeredBy\":{\"userId\":\"bob\",\"deviceId\":\"bob.phone\"},"
			"\"endedBy\":{\"userId\":\"alice\"},"
			"\"mediaJoinedAt\":{\"receiver\":\"2025-11-25T03:26:46.123Z\"}}") != NULL);
	CHECK(json_io_parse_call(s, len, &back, &why) == 0);
	CHECK(back.end_reason == END_HANGUP);
	CHECK_STR(back.answered_by.device_id, "bob.phone");
	CHECK_STR(back.ended_by.user_id, "alice");
	CHECK(back.ended_by.device_id == NULL);
	CHECK(back.media_joined_at[PARTY_RECEIVER] == c.media_joined_at[PARTY_RECEIVER] &&
	      back.media_joined_at[PARTY_CALLER] == 0);
	call_release(&back);
	free(s);

	c.answered_by = c.ended_by = (struct actor){ NULL, NULL };
	c.end_reason = END_BUSY;
	c.media_joined_at[PARTY_RECEIVER] = 0;
	s = json_io_call(&c, &len);
	CHECK(strstr(s, "\"revision\":3,\"endReason\":\"BUSY\"}") != NULL); /* nobody acted */
	free(s);
	const char *bad_reason =
	    "{\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"caller\":{\"id\":\"a\",\"name\":\"A\"},"
	    "\"receiver\":{\"id\":\"b\",\"name\":\"B\"},\"status\":\"ENDED\","
	    "\"createdAt\":\"2025-11-25T03:26:41.123Z\",\"revision\":2,\"endReason\":\"BORED\"}";
	CHECK(json_io_parse_call(bad_reason, strlen(bad_reason), &back, &why) == -1 && why);
	const char *bad_actor =
	    "{\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"caller\":{\"id\":\"a\",\"name\":\"A\"},"
	    "\"receiver\":{\"id\":\"b\",\"name\":\"B\"},\"status\":\"ONGOING\","
	    "\"createdAt\":\"2025-11-25T03:26:41.123Z\",\"revision\":2,\"answeredBy\":{\"userId\":\"a/b\"}}";
	CHECK(json_io_parse_call(bad_actor, strlen(bad_actor), &back, &why) == -1 && why);
}

static void livekit_events_parse_what_the_service_reads(void)
{
	struct livekit_event e;
	const char *why = NULL;
	const char *body = "{\"event\":\"participant_left\",\"room\":{\"sid\":\"RM_1\",\"name\":\"call-1\","
			   "\"emptyTimeout\":300},\"participant\":{\"sid\":\"PA_1\",\"identity\":\"bob\","
			   "\"joinedAt\":\"1764640000\"},\"id\":\"EV_1\",\"createdAt\":\"1764640001\"}";
	CHECK(json_io_parse_livekit_event(body, strlen(body), &e, &why) == 0);
	CHECK_STR(e.event, "participant_left");
	CHECK_STR(e.id, "EV_1");
	CHECK_STR(e.room, "call-1");
	CHECK_STR(e.identity, "bob");
	json_io_livekit_event_release(&e);
	const char *bare = "{\"event\":\"room_finished\"}"; /* zero values omitted */
	CHECK(json_io_parse_livekit_event(bare, strlen(bare), &e, &why) == 0);
	CHECK(e.id == NULL && e.room == NULL && e.identity == NULL);
	json_io_livekit_event_release(&e);
	char long_id[200];
	snprintf(long_id, sizeof(long_id), "{\"event\":\"x\",\"id\":\"%0129d\"}", 0);
	const char *bad[] = { "[]",
			      "{}",
			      "{\"event\":1}",
			      "{\"event\":\"x\",\"room\":\"r\"}",
			      "{\"event\":\"x\",\"participant\":{\"identity\":2}}",
			      "{\"event\":\"x\",\"id\":7}",
			      long_id,
			      "{\"event\":\"x\"" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CHECK(json_io_parse_livekit_event(bad[i], strlen(bad[i]), &e, &why) == -1 && why);
		CHECK(e.event == NULL && e.room == NULL);
	}
}

static void webhook_of_a_finished_call_carries_its_duration(void)
{
	struct call c = sample_call();
	c.status = CALL_ENDED;
	c.err_msg = NULL;
	c.answered_at = c.created_at + 4000;
	c.ended_at = c.answered_at + 256007;
	size_t call_len, len;
	char *call_json = json_io_call(&c, &call_len);
	char *s = json_io_webhook_call("call.ended", 1764041500999, &c, call_json, call_len, &len);
	char *want = NULL;
	CHECK(
	    asprintf(&want,
		     "{\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e:3:call.ended\",\"event\":\"call.ended\","
		     "\"createdAt\":1764041500,\"call\":%s,\"duration\":256.007}",
		     call_json) > 0);
	CHECK_STR(s, want);
	CHECK(len == strlen(s));
	free(want);
	free(s);
	c.answered_at = 0; /* never answered */
	s = json_io_webhook_call("call.ended", 1764041500999, &c, call_json, call_len, &len);
	CHECK(strstr(s, ",\"duration\":0.000}") != NULL);
	free(s);
	c.status = CALL_DIALLING; /* a live call has no duration */
	s = json_io_webhook_call("call.started", 1764041500999, &c, call_json, call_len, &len);
	CHECK(strstr(s, "duration") == NULL);
	free(s);
	free(call_json);
}

static void webhook_of_presence_names_the_user(void)
{
	struct user_info bob = { "bob", "Bob", "Lyon" };
	size_t len;
	char *s = json_io_webhook_presence("id-1", "presence.online", 1764041500999, "bob", &bob, &len);
	CHECK_STR(s, "{\"id\":\"id-1\",\"event\":\"presence.online\",\"createdAt\":1764041500,"
		     "\"user\":{\"id\":\"bob\",\"name\":\"Bob\",\"location\":\"Lyon\"}}");
	free(s);
	s = json_io_webhook_presence("id-2", "presence.offline", 1764041500999, "bob", NULL, &len);
	CHECK_STR(s, "{\"id\":\"id-2\",\"event\":\"presence.offline\",\"createdAt\":1764041500,"
		     "\"user\":{\"id\":\"bob\"}}");
	free(s);
}

static void calls_render_as_an_array(void)
{
	struct call c[2] = { sample_call(), sample_call() };
	size_t len;
	char *s = json_io_calls(c, 0, &len);
	CHECK_STR(s, "[]");
	free(s);
	s = json_io_calls(c, 2, &len);
	char *one = json_io_call(&c[0], NULL);
	char *want = NULL;
	CHECK(asprintf(&want, "[%s,%s]", one, one) > 0);
	CHECK_STR(s, want);
	free(want);
	free(one);
	free(s);
}

static void health_gains_the_webhook_counters(void)
{
	size_t len;
	char *s = json_io_health(1, 1, 2, 3, 1, 0, &len);
	s = json_io_health_webhooks(s, &len, 10, 1, 2, 3, 4);
	CHECK_STR(s,
		  "{\"status\":\"ok\",\"broker\":\"connected\",\"ready\":true,\"users\":2,\"calls\":3,\"liveCalls\":1,"
		  "\"outbox\":0,\"webhooks\":{\"delivered\":10,\"failed\":1,\"rejected\":2,\"overflowed\":3,"
		  "\"queued\":4}}");
	CHECK(len == strlen(s));
	free(s);
}

int main(int argc, char **argv)
{
	json_io_init();
	cases_dir = argc > 1 ? argv[1] : "cases";
	RUN(presence_payload_cases);
	RUN(request_body_cases);
	RUN(call_renders_as_the_contract_says);
	RUN(event_wraps_the_call);
	RUN(ringing_call_carries_its_deadline_and_parses_back);
	RUN(retained_call_without_revision_or_deadline_is_refused);
	RUN(control_characters_are_escaped);
	RUN(error_and_object_bodies);
	RUN(users_list_in_order);
	RUN(finished_call_says_why_and_who_and_parses_back);
	RUN(livekit_events_parse_what_the_service_reads);
	RUN(webhook_of_a_finished_call_carries_its_duration);
	RUN(webhook_of_presence_names_the_user);
	RUN(calls_render_as_an_array);
	RUN(health_gains_the_webhook_counters);
	return check_done();
}

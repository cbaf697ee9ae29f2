/*
 * test_topics.c - the grammar of ids (common/ids.c, which the broker plugin
 * links too), of the service's topics (service/topics.c), and of the
 * timestamps read back from call topics.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "topics.h"
#include "util.h"

static int valid(const char *s)
{
	return id_is_valid(s, strlen(s));
}

static void ids_with_topic_syntax_or_control_characters_are_refused(void)
{
	CHECK(valid("alice"));
	CHECK(valid("user-42_x.y@example.com"));
	CHECK(valid("Zoë"));
	CHECK(!valid(""));
	CHECK(!valid("a/b"));
	CHECK(!valid("a+b"));
	CHECK(!valid("a#b"));
	CHECK(!valid("a\tb"));
	CHECK(!valid("a\nb"));
	CHECK(!valid("a\x7f"));
	CHECK(!valid("\xc3"));
	CHECK(!valid("\xff\xfe"));
	CHECK(!valid("\xc0\xaf"));             /* overlong '/' */
	CHECK(!valid("\xed\xa0\x80"));         /* surrogate */
	CHECK(!valid("\xf4\x90\x80\x80"));     /* beyond U+10FFFF */
	CHECK(!valid("\xf8\x88\x80\x80\x80")); /* five-byte form */
	CHECK(valid("\xf0\x9f\x98\x80"));      /* an emoji */
	CHECK(valid("J\xc3\xa9r\xc3\xb4me"));
	char long_id[ID_MAX_LEN + 2];
	memset(long_id, 'a', sizeof(long_id));
	long_id[ID_MAX_LEN] = '\0';
	CHECK(valid(long_id));
	long_id[ID_MAX_LEN] = 'a';
	long_id[ID_MAX_LEN + 1] = '\0';
	CHECK(!valid(long_id));
	CHECK(!id_is_valid("ab\0c", 4));
	CHECK(id_str_is_valid("alice"));
	CHECK(!id_str_is_valid(""));
	CHECK(!id_str_is_valid(NULL));
	CHECK(!id_str_is_valid(long_id));
}

static void client_ids_name_their_user(void)
{
	char long_user[ID_MAX_LEN + 1];
	char cid[ID_MAX_LEN + 8];
	CHECK(client_id_names_user("alice.phone", "alice"));
	CHECK(client_id_names_user("Zo\xc3\xab.t\xc3\xa9l\xc3\xa9phone", "Zo\xc3\xab"));
	CHECK(client_id_names_user("jo.doe.phone", "jo.doe"));
	CHECK(!client_id_names_user("jo.doe.phone", "jo")); /* the device may hold no '.' */
	CHECK(!client_id_names_user("alice", "alice"));
	CHECK(!client_id_names_user("alice.", "alice"));
	CHECK(!client_id_names_user(".phone", ""));
	CHECK(!client_id_names_user("alicex.phone", "alice"));
	CHECK(!client_id_names_user("alice.ph/one", "alice"));
	CHECK(!client_id_names_user("alice.ph+", "alice"));
	CHECK(!client_id_names_user("alice.\xc3", "alice"));
	CHECK(!client_id_names_user(NULL, "alice"));
	CHECK(!client_id_names_user("alice.phone", NULL));
	/* The whole client id is an id, so at most ID_MAX_LEN bytes. */
	memset(long_user, 'u', ID_MAX_LEN - 2);
	long_user[ID_MAX_LEN - 2] = '\0';
	snprintf(cid, sizeof(cid), "%s.d", long_user);
	CHECK(client_id_names_user(cid, long_user));
	snprintf(cid, sizeof(cid), "%s.dd", long_user);
	CHECK(!client_id_names_user(cid, long_user));

	CHECK(client_id_names_a_user("alice.phone"));
	CHECK(client_id_names_a_user("jo.doe.phone"));
	CHECK(!client_id_names_a_user("callsignal-0a1b2c3d"));
	CHECK(!client_id_names_a_user("alice."));
	CHECK(!client_id_names_a_user(".phone"));
	CHECK(!client_id_names_a_user("a/b.phone"));
	CHECK(!client_id_names_a_user(NULL));
}

static int parse(const char *topic, struct presence_topic *pt)
{
	return topic_parse_presence(topic, strlen(topic), pt);
}

static void presence_topics_parse_into_user_and_client(void)
{
	struct presence_topic pt;
	CHECK(parse("users/alice/presence/phone-1", &pt) == 0);
	CHECK_STR(pt.user_id, "alice");
	CHECK_STR(pt.client_id, "phone-1");
	CHECK(parse("users/alice/presence/", &pt) != 0);
	CHECK(parse("users//presence/x", &pt) != 0);
	CHECK(parse("users/alice/presence/a/b", &pt) != 0);
	CHECK(parse("users/alice/events", &pt) != 0);
	CHECK(parse("users/alice/presencex/c", &pt) != 0);
	CHECK(parse("user/alice/presence/c", &pt) != 0);
	CHECK(parse("users/alice", &pt) != 0);
	CHECK(parse("", &pt) != 0);
}

static void events_topic_names_the_user(void)
{
	char t[TOPIC_MAX_LEN];
	topic_events("bob", t);
	CHECK_STR(t, "users/bob/events");
	CHECK_STR(TOPIC_PRESENCE_ALL, "users/+/presence/+");
}

static void call_topic_names_the_user_and_parses_back(void)
{
	char topic[TOPIC_MAX_LEN], user[ID_MAX_LEN + 1];
	topic_call("bob", topic);
	CHECK_STR(topic, "users/bob/call");
	CHECK(topic_parse_call(topic, strlen(topic), user) == 0);
	CHECK_STR(user, "bob");
	CHECK(topic_parse_call("users//call", 11, user) == -1);
	CHECK(topic_parse_call("users/a/b/call", 14, user) == -1);
	CHECK(topic_parse_call("users/bob/calls", 15, user) == -1);
	CHECK(topic_parse_call("users/bob/presence/x", 20, user) == -1);
	CHECK(topic_parse_call("users/call", 10, user) == -1);
}

static void iso_times_parse_back_to_the_millisecond(void)
{
	char text[ISO_TIME_LEN];
	int64_t ms = 0;
	iso_time_format(1764041201123, text);
	CHECK(iso_time_parse(text, &ms) == 0 && ms == 1764041201123);
	CHECK(iso_time_parse("2026-02-29T00:00:00.000Z", &ms) == 0); /* not checked against the calendar */
	CHECK(iso_time_parse("2000-03-01T00:00:00.000Z", &ms) == 0 && ms == 951868800000);
	CHECK(iso_time_parse("2025-11-25T03:26:41Z", &ms) == -1);
	CHECK(iso_time_parse("2025-13-25T03:26:41.123Z", &ms) == -1);
	CHECK(iso_time_parse("2025-11-25 03:26:41.123Z", &ms) == -1);
	CHECK(iso_time_parse("2025-11-25T03:26:41.123Z ", &ms) == -1);
}

int main(void)
{
	RUN(ids_with_topic_syntax_or_control_characters_are_refused);
	RUN(client_ids_name_their_user);
	RUN(presence_topics_parse_into_user_and_client);
	RUN(events_topic_names_the_user);
	RUN(call_topic_names_the_user_and_parses_back);
	RUN(iso_times_parse_back_to_the_millisecond);
	return check_done();
}

/*
 * test_topics.c - the grammar of ids (common/ids.c, which the broker plugin
 * links too) and of the service's topics (service/topics.c).
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "topics.h"

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

int main(void)
{
	RUN(ids_with_topic_syntax_or_control_characters_are_refused);
	RUN(client_ids_name_their_user);
	RUN(presence_topics_parse_into_user_and_client);
	RUN(events_topic_names_the_user);
	return check_done();
}

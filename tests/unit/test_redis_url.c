/*
 * test_redis_url.c - REDIS_URL's two forms (redis_url.c): a master at a
 * fixed address, and sentinels with a master's name; every bad input is
 * refused with a reason that does not repeat the password.
 */
#include "check.h"
#include "redis_url.h"

static void a_plain_url_names_one_master_with_default_port(void)
{
	struct redis_url u;
	const char *why = NULL;
	CHECK(redis_url_parse(&u, "redis://127.0.0.1", &why) == 0);
	CHECK(!u.sentinel && u.naddr == 1 && u.addr[0].port == 6379 && !u.password && u.db == 0);
	CHECK_STR(u.addr[0].host, "127.0.0.1");
	redis_url_release(&u);
	CHECK(redis_url_parse(&u, "redis://:s3cret@redis.internal:6380/2", &why) == 0);
	CHECK_STR(u.addr[0].host, "redis.internal");
	CHECK_STR(u.password, "s3cret");
	CHECK(u.addr[0].port == 6380 && u.db == 2 && !u.master);
	redis_url_release(&u);
	CHECK(redis_url_parse(&u, "redis://default:pw@h", &why) == 0);
	CHECK_STR(u.password, "pw");
	redis_url_release(&u);
	CHECK(redis_url_parse(&u, "redis://h:1/", &why) == 0);
	CHECK(u.addr[0].port == 1 && u.db == 0);
	redis_url_release(&u);
}

static void a_sentinel_url_lists_sentinels_and_names_the_master(void)
{
	struct redis_url u;
	const char *why = NULL;
	CHECK(redis_url_parse(&u, "redis-sentinel://:pw@10.0.0.1,10.0.0.2:26380,s3/mymaster/3", &why) == 0);
	CHECK(u.sentinel && u.naddr == 3 && u.db == 3);
	CHECK_STR(u.addr[0].host, "10.0.0.1");
	CHECK(u.addr[0].port == 26379);
	CHECK_STR(u.addr[1].host, "10.0.0.2");
	CHECK(u.addr[1].port == 26380);
	CHECK_STR(u.addr[2].host, "s3");
	CHECK(u.addr[2].port == 26379);
	CHECK_STR(u.master, "mymaster");
	CHECK_STR(u.password, "pw");
	redis_url_release(&u);
	CHECK(redis_url_parse(&u, "redis-sentinel://127.0.0.1:5000/m", &why) == 0);
	CHECK(u.naddr == 1 && u.addr[0].port == 5000 && u.db == 0 && !u.password);
	CHECK_STR(u.master, "m");
	redis_url_release(&u);
}

static void bad_urls_are_refused_with_a_reason(void)
{
	static const char *const bad[] = {
		"",
		"http://127.0.0.1",
		"rediss://127.0.0.1", /* TLS: hiredis 0.14 has none */
		"redis://",           /* no host */
		"redis://:6379",      /* no host */
		"redis://h:0",        /* port out of range */
		"redis://h:65536",
		"redis://h:12x",
		"redis://h:",
		"redis://h/x", /* database not a number */
		"redis://h/-1",
		"redis://h/1/2",
		"redis://user:pw@h", /* ACL user names */
		"redis://user@h",
		"redis://defaults:pw@h",
		"redis://a,b",              /* several hosts without sentinel */
		"redis-sentinel://h:26379", /* no master name */
		"redis-sentinel://h:26379/",
		"redis-sentinel://h:26379//0",
		"redis-sentinel:///m", /* no sentinel */
		"redis-sentinel://a,,b/m",
		"redis-sentinel://a,/m",
		"redis-sentinel://a:99999/m",
		"redis-sentinel://h/m/x",
		"redis-sentinel://1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17/m", /* more than 16 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct redis_url u;
		const char *why = NULL;
		int rc = redis_url_parse(&u, bad[i], &why);
		if (rc != -1 || !why)
			fprintf(stderr, "  accepted: '%s'\n", bad[i]);
		CHECK(rc == -1 && why && *why);
		redis_url_release(&u);
	}
}

static void the_reason_never_repeats_the_password(void)
{
	struct redis_url u;
	const char *why = NULL;
	CHECK(redis_url_parse(&u, "redis-sentinel://:topsecret@h:1", &why) == -1);
	CHECK(why && !strstr(why, "topsecret"));
	redis_url_release(&u);
}

int main(void)
{
	RUN(a_plain_url_names_one_master_with_default_port);
	RUN(a_sentinel_url_lists_sentinels_and_names_the_master);
	RUN(bad_urls_are_refused_with_a_reason);
	RUN(the_reason_never_repeats_the_password);
	return check_done();
}

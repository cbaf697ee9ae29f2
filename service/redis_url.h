/*
 * redis_url.h - the grammar of REDIS_URL: one Redis master at a fixed
 * address, or the sentinels that name the current master.
 *
 *   redis://[:password@]host[:port][/db]                       port 6379
 *   redis-sentinel://[:password@]host[:port][,host[:port]...]/master[/db]
 *                                                              port 26379
 *
 * The password (also as default:password@; other ACL user names are
 * refused) and the database are the master's; the sentinels are asked
 * without a password. No TLS (rediss://), no Unix sockets, no IPv6
 * literals. Pure: config.c checks the setting with it at start
 * (a bad URL exits 2), store_redis.c connects with what it parsed.
 */
#ifndef CALLSIGNAL_REDIS_URL_H
#define CALLSIGNAL_REDIS_URL_H

#include <stddef.h>

#define REDIS_URL_HOSTS_MAX 16
#define REDIS_URL_HOST_MAX  253

struct redis_addr {
	char *host;
	int port;
};

struct redis_url {
	int sentinel; /* 1: the addresses are sentinels, asked for the master named master */
	struct redis_addr addr[REDIS_URL_HOSTS_MAX]; /* the master's (one), or the sentinels' */
	size_t naddr;
	char *master;   /* sentinel only: the name the sentinels monitor the master by */
	char *password; /* the master's; NULL for none */
	int db;
};

/*
 * Parses url into u, which the caller releases with redis_url_release
 * whatever the result. 0, or -1 with *why set to a static sentence saying
 * what is wrong (it never repeats the password).
 */
int redis_url_parse(struct redis_url *u, const char *url, const char **why);
void redis_url_release(struct redis_url *u);

#endif

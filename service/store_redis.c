/*
 * store_redis.c - the shared engine of store.h: calls, busy lines and
 * deadlines in Redis, so that several service instances serve the same
 * calls. The only includer of hiredis. Used through the store interface by
 * calls.c (core creates it when STATE_ENGINE=redis). Each engine object is
 * used by one thread at a time (core's lock, or the handle a thread took:
 * rd_handle makes another object with a connection of its own, sharing the
 * url, the prefix, what is known of the deadlines and the outage flag of
 * its root); Redis's optimistic locking keeps transitions atomic between
 * handles as between processes.
 *
 * Keys, under the configured prefix:
 *   call:{id}      hash: the whole call (parties, status, times, revision, grace and media
 *                  deadlines, end reason, who answered and ended it on which device)
 *   busy:{user}    string: the id of the user's live call
 *   calls, live    sets of call ids: every call kept, the live ones
 *   dl:{kind}      sorted set of deadlines: member "{party}:{id}", score wall ms
 *   outbox         stream: the MQTT messages of the transitions, an entry per transition
 *                  (up to 16 messages, each the fields t topic, p payload, r retained "1"/"0",
 *                  in order), XADDed in the transition's EXEC; outbox.c's leader reads them
 *                  in order and trims the entries the broker acknowledged
 *   seen:{name}    string with a TTL: a LiveKit webhook's event id, handled (seen_once)
 *   outbox:leader  string: the name of the instance publishing the outbox, with a TTL (its lease)
 *   hist:{user}    list: the user's finished calls, newest first, each the fields of
 *                  call:{id} as netstrings ("5:field,3:val,..."), trimmed to the cap
 *                  (LPUSH and LTRIM in the EXEC of the transition that finished the call)
 *
 * A transition (begin .. commit) WATCHes every key it reads (the call, the
 * busy lines), buffers its writes and sends them in one MULTI/EXEC at
 * commit: Redis applies them all or, when another instance changed a
 * watched key meanwhile, none (STORE_CONFLICT, and calls.c runs the rule
 * again). So two instances starting calls to the same receiver cannot both
 * ring: the second's EXEC fails on the receiver's busy line and its rerun
 * sees it busy. A deadline is removed (ZREM) in the same EXEC as the
 * transition it fires, which watched the call: if two instances fire the
 * same ring timeout only one EXEC passes, and if an instance dies before
 * its EXEC the entry is still there for the others. Reads outside a
 * transition (GET /calls/{id}) are plain reads.
 *
 * Round trips, since the request waits while Redis answers: the reads of
 * a transition go pipelined with their WATCH (a start's three through
 * prefetch, a tick's deadline queues all at once, the set sizes the
 * retention cap asks along with the first read), the writes in the one
 * MULTI/EXEC. A busy line a finished call frees is deleted in the EXEC only
 * if it still names that call (a compare-and-delete script), so it is not
 * read first. A start, an answer and an end are two round trips each.
 *
 * The start rate limit lives here too (rate:{user}, the GCRA of
 * ratelimit.c as a Lua script on Redis's clock), so it is one limit
 * whichever instance a start reaches.
 *
 * The master is at a fixed address, or (REDIS_URL=redis-sentinel://, see
 * redis_url.h) found through Sentinel with plain commands on every
 * (re)connection of each link: the sentinels are asked in turn, ROLE must
 * say master, and a -READONLY answer closes the link so that its next use
 * asks again. What it does not do: TLS (hiredis 0.14 has none), Redis
 * Cluster, Unix sockets.
 */
#include "store.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "redis_url.h"
#include "util.h"

#define TIMEOUT_MS          2000
#define MAX_ARGS            64
#define KEY_MAX             320
#define POPS_PER_TX         64  /* deadlines of one kind fired by one transition; the rest next time */
#define POLL_MS             250 /* how soon a deadline another instance added is looked at */
#define PREFIX_MAX          64
#define RETRY_MS            500 /* between connection attempts while Redis is away */
#define OUT_PER_ENTRY       16  /* outbox messages in one stream entry */
#define SENTINEL_TIMEOUT_MS 500 /* to connect to a sentinel and get its answer */
#define WHY_MAX             512
#define PREFETCH_MAX        3
/* How long the set sizes after a transition stay good: the retention cap asks them right after it.
 * A count read by another path that soon (GET /health) may miss another instance's change
 * made within that time, which it could as well by coming a moment earlier. */
#define COUNTS_FRESH_US 1000
#define EACH_BATCH      256 /* calls read per round trip by rd_each */

/* One command's arguments; numbers are printed into the args' own storage. */
struct args {
	int n, nnum;
	const char *v[MAX_ARGS];
	size_t len[MAX_ARGS];
	char num[MAX_ARGS][24];
};

struct pending {
	char *cmd; /* a formatted command (redisFormatCommandArgv) */
	int len;
};

/* A message for the broker, kept until the transition commits (owned copies). */
struct out_msg {
	char *topic, *payload;
	size_t len;
	int retained;
};

/* One connection to Redis. */
struct link {
	redisContext *ctx; /* NULL while disconnected */
	int down;          /* an outage was logged; the next success logs the way back */
	int64_t next_try;  /* monotonic ms: no new connection attempt before (one per RETRY_MS) */
	char host[REDIS_URL_HOST_MAX + 1]; /* the master it is (or was last) connected to */
	int port;
};

struct store_redis {
	struct store base;
	/* A handle made by rd_handle borrows its url, prefix and known from root; NULL: this is the root. */
	const struct store_redis *root;
	struct redis_url *url;
	char *prefix;
	struct link main;  /* the transitions' and reads' connection (one thread at a time) */
	struct link drain; /* outbox.c's drain thread's own connection (root only) */

	int in_tx;       /* between begin and commit */
	int failed;      /* a command of this transition got no answer */
	int read_failed; /* outside a transition: the last command got no answer (rd_unreachable) */
	struct pending *pending;
	size_t npending, cap_pending;
	struct out_msg *out; /* this transition's outbox messages, added by XADD at commit */
	size_t nout, cap_out;
	size_t popped[DEADLINE__COUNT]; /* deadlines handed out by this transition, per kind */
	/* What the queued writes will change in the counts, so that a rule
	 * counting calls mid-transition (the retention cap) sees its own writes. */
	long delta_count, delta_live;
	/* The earliest deadline of each kind as far as this process knows: the
	 * earliest in Redis when a handle last looked (stale[kind] asks this one
	 * to look again), or one any handle added since. Deadlines of other instances are found by the
	 * POLL_MS look at the deadlines at the latest. */
	int64_t *known_next; /* [DEADLINE__COUNT], the root's, shared by its handles (atomics) */
	int *outage; /* the root's: an outage was logged by one of the links (atomic), see link_lost */
	int stale[DEADLINE__COUNT];
	int64_t tx_added[DEADLINE__COUNT]; /* the earliest deadline this transition added, per kind */

	struct call **loaned; /* copies handed out; freed at the next begin */
	/* loaded_live[i]: whether the live set holds loaned[i] once the writes queued so far apply
	 * (its status when read, or when last queued), so that save needs no SISMEMBER. */
	char *loaded_live;
	size_t nloaned, cap_loaned;
	/*
	 * The sizes of the sets calls and live (rd_count, rd_live_count), which calls.c asks
	 * after every transition (the retention cap). In a transition: as Redis had them,
	 * read along with its first reads (sets_known), the transition's own deltas added on
	 * use. After a committed one: those plus its deltas (after[], one use each, bits of
	 * after_mask), for COUNTS_FRESH_US and until any other command; else read anew, both
	 * in one round trip, the other one kept for its use.
	 */
	size_t sets[2];
	int sets_known;
	size_t after[2];
	int after_mask;
	int64_t after_at; /* monotonic µs */
	/* The deadline queues' heads as the transition's first pop read them (load_heads). */
	redisReply *heads[DEADLINE__COUNT];
	int heads_loaded;
	/* Replies read ahead by rd_prefetch, by key, handed to the first read of that key. */
	char pre_key[PREFETCH_MAX][KEY_MAX];
	redisReply *pre_rep[PREFETCH_MAX];
	int npre;
};

#define RS(s) ((struct store_redis *)(s))

static const char *const kind_name[DEADLINE__COUNT] = { "ring", "grace", "retire", "media" };

static void args_str(struct args *a, const char *s, size_t len)
{
	a->v[a->n] = s;
	a->len[a->n++] = len;
}

static void args_s(struct args *a, const char *s)
{
	args_str(a, s, strlen(s));
}

static void args_num(struct args *a, int64_t v)
{
	char *buf = a->num[a->nnum++];
	args_str(a, buf, (size_t)snprintf(buf, sizeof(a->num[0]), "%lld", (long long)v));
}

static void key_of(const struct store_redis *r, char out[KEY_MAX], const char *kind, const char *name)
{
	snprintf(out, KEY_MAX, "%s%s%s", r->prefix, kind, name);
}

static void link_close(struct link *l)
{
	if (l->ctx)
		redisFree(l->ctx);
	l->ctx = NULL;
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Connects to host:port; NULL with the reason in why when it cannot. */
static redisContext *connect_to(const char *host, int port, int timeout_ms, char why[WHY_MAX])
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	redisContext *ctx = redisConnectWithTimeout(host, port, tv);
	if (!ctx || ctx->err) {
		snprintf(why, WHY_MAX, "'%s:%d': %s", host, port, ctx ? ctx->errstr : "out of memory");
		if (ctx)
			redisFree(ctx);
		return NULL;
	}
	redisSetTimeout(ctx, tv);
	return ctx;
}

/* One command whose answer must be +OK-like; 0, or -1 with the reason in why. */
static int setup_command(redisContext *ctx, const char *host, int port, const char *what, char why[WHY_MAX],
			 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(ctx, fmt, ap);
	va_end(ap);
	int ok = rep && rep->type == REDIS_REPLY_STATUS;
	if (!ok)
		snprintf(why, WHY_MAX, "'%s:%d': refused %s: %s", host, port, what,
			 rep && rep->type == REDIS_REPLY_ERROR ? rep->str : ctx->errstr);
	freeReplyObject(rep);
	return ok ? 0 : -1;
}

/*
 * A connection to the master at host:port, ready for use: AUTH, then (with
 * Sentinel, where the address may be stale: a failover demotes the old
 * master to a replica) ROLE must say master, then SELECT. NULL with the
 * reason in why.
 */
static redisContext *master_connect(const struct store_redis *r, const char *host, int port,
				    char why[WHY_MAX])
{
	redisContext *ctx = connect_to(host, port, TIMEOUT_MS, why);
	if (!ctx)
		return NULL;
	if (r->url->password &&
	    setup_command(ctx, host, port, "the password", why, "AUTH %s", r->url->password))
		goto fail;
	if (r->url->sentinel) {
		redisReply *rep = redisCommand(ctx, "ROLE");
		int master = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
			     rep->element[0]->type == REDIS_REPLY_STRING &&
			     !strcmp(rep->element[0]->str, "master");
		if (!master)
			snprintf(why, WHY_MAX, "'%s:%d': not a master (ROLE says %s)", host, port,
				 !rep                             ? ctx->errstr
				 : rep->type == REDIS_REPLY_ERROR ? rep->str
				 : rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
					 rep->element[0]->type == REDIS_REPLY_STRING
				     ? rep->element[0]->str
				     : "unexpected reply");
		freeReplyObject(rep);
		if (!master)
			goto fail;
	}
	if (r->url->db && setup_command(ctx, host, port, "the database", why, "SELECT %d", r->url->db))
		goto fail;
	return ctx;
fail:
	redisFree(ctx);
	return NULL;
}

/* Asks one sentinel where the master is: 0 with host and port set, or -1 with the reason in why. */
static int sentinel_ask(const struct store_redis *r, const struct redis_addr *s,
			char host[REDIS_URL_HOST_MAX + 1], int *port, char why[WHY_MAX])
{
	char err[WHY_MAX];
	redisContext *ctx = connect_to(s->host, s->port, SENTINEL_TIMEOUT_MS, err);
	if (!ctx) {
		snprintf(why, WHY_MAX, "sentinel %.400s", err);
		return -1;
	}
	int rc = -1;
	redisReply *rep = redisCommand(ctx, "SENTINEL get-master-addr-by-name %s", r->url->master);
	/* [host, port], or nil when the sentinel does not know the name. */
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING &&
	    rep->element[0]->len <= REDIS_URL_HOST_MAX && atoi(rep->element[1]->str) > 0) {
		snprintf(host, REDIS_URL_HOST_MAX + 1, "%s", rep->element[0]->str);
		*port = atoi(rep->element[1]->str);
		rc = 0;
	} else {
		snprintf(why, WHY_MAX, "sentinel '%s:%d': no master '%s': %s", s->host, s->port,
			 r->url->master,
			 !rep                             ? ctx->errstr
			 : rep->type == REDIS_REPLY_ERROR ? rep->str
							  : "unexpected reply");
	}
	freeReplyObject(rep);
	redisFree(ctx);
	return rc;
}

/* 1 for the first link of the process to see Redis go: it logs the outage, the others do not. */
static int outage_begins(const struct store_redis *r)
{
	return __atomic_exchange_n(r->outage, 1, __ATOMIC_RELAXED) == 0;
}

/* 1 for the first link of the process to reach Redis again after an outage: it logs the way back. */
static int outage_ends(const struct store_redis *r)
{
	return __atomic_exchange_n(r->outage, 0, __ATOMIC_RELAXED) == 1;
}

/*
 * Opens l: to the one master of a redis:// URL, or (redis-sentinel://) to
 * the master the first sentinel that answers names, asking the next
 * sentinel when one does not answer or names a server that is not a
 * master. Logs one line when Redis cannot be reached and one when it
 * answers again (or, with Sentinel, when the master moved), with its address.
 */
static int link_open(const struct store_redis *r, struct link *l)
{
	/* Not again before next_try while Redis is away; but once another link of the process has
	 * reached it again (the outage flag is down), at once: a handle that tried during the
	 * outage must not fail the request it serves after the way back. */
	if (l->down && mono_ms() < l->next_try &&
	    (l == &r->drain || __atomic_load_n(r->outage, __ATOMIC_RELAXED)))
		return -1;
	l->next_try = mono_ms() + RETRY_MS;
	char why[WHY_MAX] = "no sentinel", host[REDIS_URL_HOST_MAX + 1], failed[REDIS_URL_HOST_MAX + 1] = "";
	int port = 0, failed_port = 0;
	redisContext *ctx = NULL;
	for (size_t i = 0; i < r->url->naddr && !ctx; i++) {
		if (!r->url->sentinel) {
			snprintf(host, sizeof(host), "%s", r->url->addr[i].host);
			port = r->url->addr[i].port;
		} else if (sentinel_ask(r, &r->url->addr[i], host, &port, why) != 0) {
			continue;
		}
		/* Until the failover, every sentinel names the dead master: try it once per round,
		 * since a connection to a host that is down takes up to TIMEOUT_MS. */
		if (port == failed_port && !strcmp(host, failed))
			continue;
		ctx = master_connect(r, host, port, why);
		snprintf(failed, sizeof(failed), "%s", host);
		failed_port = port;
	}
	if (!ctx) {
		if (!l->down && outage_begins(r)) {
			if (r->url->sentinel)
				log_error("cannot reach Redis master '%s' through %zu sentinel(s): %s",
					  r->url->master, r->url->naddr, why);
			else
				log_error("cannot reach Redis at %s", why);
		}
		l->down = 1;
		return -1;
	}
	/* A handle's first connection, or its way back when another link logged it, goes unsaid. */
	int moved = !r->root && (strcmp(host, l->host) != 0 || port != l->port);
	int back = l->down && (l == &r->drain || outage_ends(r)); /* the drain's link speaks for itself */
	if (r->url->sentinel && (back || moved))
		log_info("Redis master '%s' at '%s:%d' answers%s", r->url->master, host, port,
			 back ? " again" : "");
	else if (back)
		log_info("Redis at '%s:%d' answers again", host, port);
	snprintf(l->host, sizeof(l->host), "%s", host);
	l->port = port;
	l->down = 0;
	l->ctx = ctx;
	return 0;
}

/* A -READONLY answer: the server is a replica now (a failover demoted it while the connection stayed up). */
static int reply_readonly(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "READONLY", 8);
}

/* Closes l, lost for why; the first link of the process to lose Redis logs it. */
static void link_lost(const struct store_redis *r, struct link *l, const char *why)
{
	if (outage_begins(r))
		log_error("lost Redis at '%s:%d': %s", l->host, l->port, why);
	l->down = 1;
	link_close(l);
}

/* Closes l after a -READONLY answer, so that its next use asks the sentinels for the master again. */
static void link_demoted(const struct store_redis *r, struct link *l)
{
	link_lost(r, l, "it is a replica now");
}

/* The command under way got no answer (or an error): the transition fails; a lookup
 * outside one answers "none", and rd_unreachable tells why. */
static void no_answer(struct store_redis *r)
{
	r->failed = 1;
	r->read_failed = !r->in_tx;
}

static void lost(struct store_redis *r)
{
	link_lost(r, &r->main, r->main.ctx->errstr);
	no_answer(r);
}

/*
 * Before the first command of a transition, or of a use outside one: a
 * connection the server closed while it was idle (Redis restarted) is
 * readable, since no answer is ever pending between uses. It is opened
 * again now rather than failing the request that would have found it dead.
 */
static void link_check(struct store_redis *r)
{
	struct pollfd p = { r->main.ctx ? r->main.ctx->fd : -1, POLLIN, 0 };
	if (p.fd >= 0 && poll(&p, 1, 0) == 1) {
		/* Said nothing of when it opens again: the drain's link, always reading, tells of a
		 * restart; when Redis is still away, link_open says so. */
		link_close(&r->main);
		link_open(r, &r->main);
	}
}

/* Runs one command now; NULL (and the transition failed) when Redis does not answer. Caller frees. */
static redisReply *run(struct store_redis *r, struct args *a)
{
	r->after_mask = 0;
	r->read_failed = 0;
	if (!r->in_tx)
		link_check(r);
	if (!r->main.ctx && link_open(r, &r->main) != 0) {
		no_answer(r);
		return NULL;
	}
	redisReply *rep = redisCommandArgv(r->main.ctx, a->n, a->v, a->len);
	if (!rep) {
		lost(r);
		return NULL;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		log_error("Redis refused '%s': %s", a->v[0], rep->str);
		if (reply_readonly(rep))
			link_demoted(r, &r->main);
		no_answer(r);
	}
	return rep;
}

/*
 * One round trip: WATCH keys (in a transition; nkeys may be 0), the nreads reads, and
 * with sets the sizes of the sets calls and live into r->sets. The reads' replies go to
 * out[] (caller frees). -1, out[] all NULL, when Redis does not answer (the transition failed).
 */
static int read_batch(struct store_redis *r, int nkeys, const char *const keys[], int nreads,
		      struct args reads[], redisReply *out[], int sets)
{
	r->after_mask = 0;
	r->read_failed = 0;
	for (int i = 0; i < nreads; i++)
		out[i] = NULL;
	if (!r->in_tx)
		link_check(r);
	if (!r->main.ctx && link_open(r, &r->main) != 0) {
		no_answer(r);
		return -1;
	}
	int watch = r->in_tx && nkeys > 0;
	if (watch) {
		const char *w[1 + PREFETCH_MAX];
		size_t wl[1 + PREFETCH_MAX];
		w[0] = "WATCH";
		wl[0] = 5;
		for (int i = 0; i < nkeys; i++) {
			w[1 + i] = keys[i];
			wl[1 + i] = strlen(keys[i]);
		}
		redisAppendCommandArgv(r->main.ctx, 1 + nkeys, w, wl);
	}
	for (int i = 0; i < nreads; i++)
		redisAppendCommandArgv(r->main.ctx, reads[i].n, reads[i].v, reads[i].len);
	char set_key[2][KEY_MAX];
	for (int i = 0; sets && i < 2; i++) {
		key_of(r, set_key[i], i ? "live" : "calls", "");
		const char *v[] = { "SCARD", set_key[i] };
		size_t l[] = { 5, strlen(set_key[i]) };
		redisAppendCommandArgv(r->main.ctx, 2, v, l);
	}
	int n = watch + nreads + (sets ? 2 : 0), bad = 0;
	for (int i = 0; i < n; i++) {
		redisReply *rep = NULL;
		if (redisGetReply(r->main.ctx, (void **)&rep) != REDIS_OK || !rep) {
			lost(r);
			for (int k = 0; k < nreads; k++) {
				freeReplyObject(out[k]);
				out[k] = NULL;
			}
			return -1;
		}
		int k = i - watch;
		if (i < watch) {
			bad |= rep->type != REDIS_REPLY_STATUS;
			freeReplyObject(rep);
		} else if (k < nreads) {
			bad |= rep->type == REDIS_REPLY_ERROR;
			out[k] = rep;
		} else {
			bad |= rep->type != REDIS_REPLY_INTEGER;
			r->sets[k - nreads] = rep->type == REDIS_REPLY_INTEGER ? (size_t)rep->integer : 0;
			r->sets_known = rep->type == REDIS_REPLY_INTEGER;
			freeReplyObject(rep);
		}
	}
	if (bad) {
		log_error("Redis refused a read of '%s'", nreads ? reads[0].v[0] : "SCARD");
		no_answer(r);
	}
	return 0;
}

/*
 * Runs a read of key; in a transition WATCHes key first, in the same round
 * trip (WATCH and the read pipelined), or hands over what rd_prefetch read of
 * it. Like run: NULL when Redis does not answer.
 */
static redisReply *run_watched(struct store_redis *r, const char *key, struct args *a)
{
	if (!r->in_tx)
		return run(r, a);
	for (int i = 0; i < r->npre; i++) {
		if (r->pre_rep[i] && strcmp(r->pre_key[i], key) == 0) {
			redisReply *rep = r->pre_rep[i];
			r->pre_rep[i] = NULL;
			return rep;
		}
	}
	redisReply *rep;
	read_batch(r, 1, &key, 1, a, &rep, !r->sets_known);
	return rep;
}

static void drop_heads(struct store_redis *r)
{
	for (int k = 0; k < DEADLINE__COUNT; k++) {
		freeReplyObject(r->heads[k]);
		r->heads[k] = NULL;
	}
	r->heads_loaded = 0;
}

static void drop_prefetched(struct store_redis *r)
{
	for (int i = 0; i < r->npre; i++)
		freeReplyObject(r->pre_rep[i]);
	r->npre = 0;
}

static enum store_commit flush(struct store_redis *r);
static void drop_out(struct store_redis *r);
static void queue_out(struct store_redis *r);

/* Queues a write given as argv for the commit (applied at once outside a transition). */
static void queue_argv(struct store_redis *r, int argc, const char **argv, const size_t *argvlen)
{
	if (r->npending == r->cap_pending) {
		r->cap_pending = r->cap_pending ? r->cap_pending * 2 : 16;
		r->pending = xrealloc(r->pending, r->cap_pending * sizeof(*r->pending));
	}
	struct pending *p = &r->pending[r->npending];
	p->len = redisFormatCommandArgv(&p->cmd, argc, argv, argvlen);
	if (p->len < 0)
		abort(); /* out of memory */
	r->npending++;
	if (!r->in_tx)
		flush(r);
}

/* Queues a write for the commit (applied at once outside a transition). */
static void queue(struct store_redis *r, struct args *a)
{
	queue_argv(r, a->n, a->v, a->len);
}

static void drop_pending(struct store_redis *r)
{
	for (size_t i = 0; i < r->npending; i++)
		redisFreeCommand(r->pending[i].cmd);
	r->npending = 0;
}

/* Sends MULTI, the queued writes and EXEC; reads the answers. */
static enum store_commit flush(struct store_redis *r)
{
	enum store_commit result = STORE_FAILED;
	int readonly = 0;
	if (r->failed || (!r->main.ctx && link_open(r, &r->main) != 0))
		goto out;
	redisAppendCommand(r->main.ctx, "MULTI");
	for (size_t i = 0; i < r->npending; i++)
		redisAppendFormattedCommand(r->main.ctx, r->pending[i].cmd, (size_t)r->pending[i].len);
	redisAppendCommand(r->main.ctx, "EXEC");
	for (size_t i = 0; i < r->npending + 2; i++) {
		redisReply *rep = NULL;
		if (redisGetReply(r->main.ctx, (void **)&rep) != REDIS_OK || !rep) {
			link_lost(r, &r->main, r->main.ctx->errstr);
			goto out;
		}
		if (i == r->npending + 1) {
			if (rep->type == REDIS_REPLY_NIL)
				result = STORE_CONFLICT;
			else if (rep->type == REDIS_REPLY_ARRAY)
				result = STORE_COMMITTED;
			else
				log_error("Redis refused a transition: %s",
					  rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
		}
		readonly |= reply_readonly(rep);
		freeReplyObject(rep);
	}
	if (readonly)
		link_demoted(r, &r->main);
out:
	drop_pending(r);
	return result;
}

/* --- calls as hashes --------------------------------------------------------------------------- */

static void args_party(struct args *a, const char *prefix_id, const char *prefix_name, const char *prefix_loc,
		       const struct user_info *u)
{
	args_s(a, prefix_id);
	args_s(a, u->id);
	if (u->name) {
		args_s(a, prefix_name);
		args_s(a, u->name);
	}
	if (u->location) {
		args_s(a, prefix_loc);
		args_s(a, u->location);
	}
}

static void args_actor(struct args *a, const char *user_field, const char *device_field,
		       const struct actor *who)
{
	if (who->user_id) {
		args_s(a, user_field);
		args_s(a, who->user_id);
	}
	if (who->device_id) {
		args_s(a, device_field);
		args_s(a, who->device_id);
	}
}

/* Appends the call's fields as field/value pairs: the hash call:{id}, and a history entry. */
static void args_call_fields(struct args *a, const struct call *call)
{
	args_s(a, "id");
	args_s(a, call->id);
	args_party(a, "caller", "callerName", "callerLocation", &call->party[PARTY_CALLER]);
	args_party(a, "receiver", "receiverName", "receiverLocation", &call->party[PARTY_RECEIVER]);
	if (call->err_msg) {
		args_s(a, "error");
		args_s(a, call->err_msg);
	}
	args_actor(a, "answeredBy", "answeredOn", &call->answered_by);
	args_actor(a, "endedBy", "endedOn", &call->ended_by);
	const char *names[] = { "status",        "createdAt",    "answeredAt",   "endedAt",
				"ringDeadline",  "revision",     "grace0",       "grace1",
				"endReason",     "mediaJoined0", "mediaJoined1", "mediaDeadline0",
				"mediaDeadline1" };
	int64_t values[] = { call->status,
			     call->created_at,
			     call->answered_at,
			     call->ended_at,
			     call->ring_deadline,
			     call->revision,
			     call->grace_deadline[0],
			     call->grace_deadline[1],
			     call->end_reason,
			     call->media_joined_at[0],
			     call->media_joined_at[1],
			     call->media_deadline[0],
			     call->media_deadline[1] };
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		args_s(a, names[i]);
		args_num(a, values[i]);
	}
}

static void queue_call(struct store_redis *r, const struct call *call)
{
	char key[KEY_MAX];
	key_of(r, key, "call:", call->id);
	struct args a = { 0 };
	args_s(&a, "DEL");
	args_s(&a, key);
	queue(r, &a);
	memset(&a, 0, sizeof(a));
	args_s(&a, "HSET");
	args_s(&a, key);
	args_call_fields(&a, call);
	queue(r, &a);
}

/* Sets one field of a call read back (args_call_fields' names); unknown fields are ignored. */
static void call_set_field(struct call *call, const char *f, const char *v)
{
	static const struct {
		const char *name;
		size_t off;
	} nums[] = {
		{ "createdAt", offsetof(struct call, created_at) },
		{ "answeredAt", offsetof(struct call, answered_at) },
		{ "endedAt", offsetof(struct call, ended_at) },
		{ "ringDeadline", offsetof(struct call, ring_deadline) },
		{ "revision", offsetof(struct call, revision) },
		{ "grace0", offsetof(struct call, grace_deadline[0]) },
		{ "grace1", offsetof(struct call, grace_deadline[1]) },
		{ "mediaJoined0", offsetof(struct call, media_joined_at[0]) },
		{ "mediaJoined1", offsetof(struct call, media_joined_at[1]) },
		{ "mediaDeadline0", offsetof(struct call, media_deadline[0]) },
		{ "mediaDeadline1", offsetof(struct call, media_deadline[1]) },
	};
	static const struct {
		const char *name;
		size_t off;
	} strs[] = {
		{ "caller", offsetof(struct call, party[PARTY_CALLER].id) },
		{ "callerName", offsetof(struct call, party[PARTY_CALLER].name) },
		{ "callerLocation", offsetof(struct call, party[PARTY_CALLER].location) },
		{ "receiver", offsetof(struct call, party[PARTY_RECEIVER].id) },
		{ "receiverName", offsetof(struct call, party[PARTY_RECEIVER].name) },
		{ "receiverLocation", offsetof(struct call, party[PARTY_RECEIVER].location) },
		{ "error", offsetof(struct call, err_msg) },
		{ "answeredBy", offsetof(struct call, answered_by.user_id) },
		{ "answeredOn", offsetof(struct call, answered_by.device_id) },
		{ "endedBy", offsetof(struct call, ended_by.user_id) },
		{ "endedOn", offsetof(struct call, ended_by.device_id) },
	};
	int64_t n = strtoll(v, NULL, 10);
	if (!strcmp(f, "id")) {
		snprintf(call->id, sizeof(call->id), "%s", v);
	} else if (!strcmp(f, "status")) {
		call->status = (enum call_status)n;
	} else if (!strcmp(f, "endReason")) {
		call->end_reason = (enum end_reason)n;
	} else {
		for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
			if (!strcmp(f, nums[i].name))
				*(int64_t *)((char *)call + nums[i].off) = n;
		for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
			char **field = (char **)((char *)call + strs[i].off);
			if (!strcmp(f, strs[i].name) && !*field)
				*field = xstrdup(v);
		}
	}
}

/* call itself, or NULL (freed, logged) when it lacks an id or a party. */
static struct call *call_checked(struct call *call)
{
	if (!call->id[0] || !call->party[0].id || !call->party[1].id) {
		log_error("ignored the malformed call '%s' in Redis", call->id);
		call_free(call);
		return NULL;
	}
	return call;
}

/* The call in an HGETALL reply, or NULL when the hash is empty. Caller frees. */
static struct call *parse_call(const redisReply *rep)
{
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2)
		return NULL;
	struct call *call = xcalloc(1, sizeof(*call));
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const char *f = rep->element[i]->str, *v = rep->element[i + 1]->str;
		if (f && v)
			call_set_field(call, f, v);
	}
	return call_checked(call);
}

/* A history entry: the call's fields as netstrings, "{len}:{bytes}," each. Caller frees. */
static char *history_entry(const struct call *call, size_t *len)
{
	struct args a = { 0 };
	args_call_fields(&a, call);
	struct sbuf sb;
	sbuf_init(&sb, 512);
	for (int i = 0; i < a.n; i++) {
		sbuf_addf(&sb, "%zu:", a.len[i]);
		sbuf_add(&sb, a.v[i], a.len[i]);
		sbuf_addc(&sb, ',');
	}
	return sbuf_detach(&sb, len);
}

/* The next netstring of [*p, end) into a fresh string, advancing *p; NULL when malformed. */
static char *netstring_next(const char **p, const char *end)
{
	char *colon;
	unsigned long long n = strtoull(*p, &colon, 10);
	if (colon == *p || colon >= end || *colon != ':' || n >= (unsigned long long)(end - colon - 1) ||
	    colon[1 + n] != ',')
		return NULL;
	char *out = xstrndup(colon + 1, (size_t)n);
	*p = colon + 2 + n;
	return out;
}

/* The call of a history entry, or NULL when it is malformed. Caller frees. */
static struct call *parse_history_entry(const char *text, size_t len)
{
	struct call *call = xcalloc(1, sizeof(*call));
	const char *p = text, *end = text + len;
	while (p < end) {
		char *f = netstring_next(&p, end);
		char *v = f ? netstring_next(&p, end) : NULL;
		if (f && v)
			call_set_field(call, f, v);
		free(f);
		free(v);
		if (!v)
			break;
	}
	return call_checked(call);
}

static struct call *loan(struct store_redis *r, struct call *call)
{
	if (!call)
		return NULL;
	if (r->nloaned == r->cap_loaned) {
		r->cap_loaned = r->cap_loaned ? r->cap_loaned * 2 : 16;
		r->loaned = xrealloc(r->loaned, r->cap_loaned * sizeof(*r->loaned));
		r->loaded_live = xrealloc(r->loaded_live, r->cap_loaned);
	}
	r->loaded_live[r->nloaned] = (char)call_status_is_live(call->status);
	r->loaned[r->nloaned++] = call;
	return call;
}

/* The loan slot of call (a copy this engine handed out), or -1. */
static long loan_slot(const struct store_redis *r, const struct call *call)
{
	for (size_t i = r->nloaned; i-- > 0;)
		if (r->loaned[i] == call)
			return (long)i;
	return -1;
}

static void free_loans(struct store_redis *r)
{
	for (size_t i = 0; i < r->nloaned; i++)
		call_free(r->loaned[i]);
	r->nloaned = 0;
}

/* --- the store operations ---------------------------------------------------------------------- */

static struct call *rd_find(struct store *s, const char *id)
{
	struct store_redis *r = RS(s);
	char key[KEY_MAX];
	key_of(r, key, "call:", id);
	struct args a = { 0 };
	args_s(&a, "HGETALL");
	args_s(&a, key);
	redisReply *rep = run_watched(r, key, &a);
	struct call *call = parse_call(rep);
	freeReplyObject(rep);
	return loan(r, call);
}

/* The id of the live call user_id is busy with, into id; 0 when none. */
static int busy_line(struct store_redis *r, const char *user_id, char id[CALL_ID_LEN + 1])
{
	char key[KEY_MAX];
	key_of(r, key, "busy:", user_id);
	struct args a = { 0 };
	args_s(&a, "GET");
	args_s(&a, key);
	redisReply *rep = run_watched(r, key, &a);
	int found = rep && rep->type == REDIS_REPLY_STRING && rep->len <= CALL_ID_LEN;
	if (found)
		snprintf(id, CALL_ID_LEN + 1, "%s", rep->str);
	freeReplyObject(rep);
	return found;
}

static struct call *rd_live_of(struct store *s, const char *user_id)
{
	char id[CALL_ID_LEN + 1];
	if (!busy_line(RS(s), user_id, id))
		return NULL;
	struct call *call = rd_find(s, id);
	return call && call_status_is_live(call->status) ? call : NULL;
}

static void queue_set_member(struct store_redis *r, const char *cmd, const char *set, const char *id)
{
	char key[KEY_MAX];
	key_of(r, key, set, "");
	struct args a = { 0 };
	args_s(&a, cmd);
	args_s(&a, key);
	args_s(&a, id);
	queue(r, &a);
}

static int is_member(struct store_redis *r, const char *set, const char *id)
{
	char key[KEY_MAX];
	key_of(r, key, set, "");
	struct args a = { 0 };
	args_s(&a, "SISMEMBER");
	args_s(&a, key);
	args_s(&a, id);
	redisReply *rep = run(r, &a);
	int yes = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	freeReplyObject(rep);
	return yes;
}

/* Deletes KEYS[1] if it still holds ARGV[1]: a busy line freed only if it names the call. */
static const char del_if_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/* Writes a call; was_live: whether the live set holds it before this write. */
static void save_call(struct store_redis *r, struct call *call, int was_live)
{
	int live = call_status_is_live(call->status);
	r->delta_live += live - was_live;
	queue_call(r, call);
	queue_set_member(r, live ? "SADD" : "SREM", "live", call->id);
	for (int p = 0; p < 2; p++) {
		char key[KEY_MAX];
		key_of(r, key, "busy:", call->party[p].id);
		struct args a = { 0 };
		if (live) {
			args_s(&a, "SET");
		} else { /* free the line if it still names this call, in the EXEC: no read first */
			args_s(&a, "EVAL");
			args_s(&a, del_if_script);
			args_s(&a, "1");
		}
		args_s(&a, key);
		args_s(&a, call->id);
		queue(r, &a);
	}
}

static void rd_save(struct store *s, struct call *call)
{
	struct store_redis *r = RS(s);
	/* A call this engine loaded: the live set holds it exactly when its status was live (both
	 * change in one EXEC, and the WATCH on the call fails the commit if another instance
	 * changed it meanwhile). Any other call: ask. */
	long slot = loan_slot(r, call);
	save_call(r, call, slot >= 0 ? r->loaded_live[slot] : is_member(r, "live", call->id));
	if (slot >= 0)
		r->loaded_live[slot] = (char)call_status_is_live(call->status);
}

static void rd_add(struct store *s, struct call *call)
{
	struct store_redis *r = RS(s);
	queue_set_member(r, "SADD", "calls", call->id);
	r->delta_count++;
	save_call(r, call, 0);
	loan(r, call);
}

static void rd_forget(struct store *s, const char *id)
{
	struct store_redis *r = RS(s);
	char key[KEY_MAX];
	key_of(r, key, "call:", id);
	struct args a = { 0 };
	args_s(&a, "DEL");
	args_s(&a, key);
	queue(r, &a);
	queue_set_member(r, "SREM", "calls", id);
	queue_set_member(r, "SREM", "live", id);
	r->delta_count--; /* only finished calls are forgotten */
}

static void member_of(const struct deadline *d, char out[CALL_ID_LEN + 8])
{
	snprintf(out, CALL_ID_LEN + 8, "%d:%s", (int)d->party, d->id);
}

static void rd_deadline_add(struct store *s, enum deadline_kind kind, const struct deadline *d)
{
	struct store_redis *r = RS(s);
	char key[KEY_MAX], member[CALL_ID_LEN + 8];
	key_of(r, key, "dl:", kind_name[kind]);
	member_of(d, member);
	struct args a = { 0 };
	args_s(&a, "ZADD");
	args_s(&a, key);
	args_num(&a, d->at);
	args_s(&a, member);
	queue(r, &a);
	int64_t known = __atomic_load_n(&r->known_next[kind], __ATOMIC_RELAXED);
	while (d->at < known && !__atomic_compare_exchange_n(&r->known_next[kind], &known, d->at, 0,
							     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	if (d->at < r->tx_added[kind])
		r->tx_added[kind] = d->at;
}

/*
 * The first POPS_PER_TX + 1 entries of every deadline queue, earliest first, read in one
 * round trip by the first pop of a transition (with the set sizes, which the tick asks
 * first): the pops of the tick then need no round trip of their own. 0, or -1 when Redis
 * did not answer.
 */
static int load_heads(struct store_redis *r)
{
	struct args a[DEADLINE__COUNT];
	char key[DEADLINE__COUNT][KEY_MAX];
	memset(a, 0, sizeof(a));
	for (int k = 0; k < DEADLINE__COUNT; k++) {
		key_of(r, key[k], "dl:", kind_name[k]);
		args_s(&a[k], "ZRANGE");
		args_s(&a[k], key[k]);
		args_s(&a[k], "0");
		args_num(&a[k], POPS_PER_TX);
		args_s(&a[k], "WITHSCORES");
	}
	drop_heads(r);
	if (read_batch(r, 0, NULL, DEADLINE__COUNT, a, r->heads, r->in_tx && !r->sets_known) != 0)
		return -1;
	r->heads_loaded = 1;
	for (int k = 0; k < DEADLINE__COUNT; k++)
		if (!r->heads[k] || r->heads[k]->type != REDIS_REPLY_ARRAY)
			return -1;
	return 0;
}

/* The earliest deadline of kind in Redis is head: the next one, or one this transition adds. */
static void knew_next(struct store_redis *r, enum deadline_kind kind, int64_t head)
{
	__atomic_store_n(&r->known_next[kind], head < r->tx_added[kind] ? head : r->tx_added[kind],
			 __ATOMIC_RELAXED);
	r->stale[kind] = 0;
}

static int rd_deadline_pop_due(struct store *s, enum deadline_kind kind, int64_t now, struct deadline *out)
{
	struct store_redis *r = RS(s);
	if (!r->in_tx) { /* each pop applies at once: read afresh */
		drop_heads(r);
		r->popped[kind] = 0;
	}
	if (r->popped[kind] >= POPS_PER_TX)
		return 0;
	if (!r->heads_loaded && load_heads(r) != 0)
		return 0;
	const redisReply *h = r->heads[kind];
	if (!h || h->type != REDIS_REPLY_ARRAY)
		return 0;
	char key[KEY_MAX];
	key_of(r, key, "dl:", kind_name[kind]);
	for (;;) {
		size_t i = 2 * r->popped[kind];
		if (i + 1 >= h->elements || !h->element[i]->str || !h->element[i + 1]->str) {
			if (!r->popped[kind] && h->elements == 0) /* empty when read */
				knew_next(r, kind, INT64_MAX);
			return 0;
		}
		int64_t at = (int64_t)strtod(h->element[i + 1]->str, NULL);
		if (at > now) {
			if (!r->popped[kind]) /* nothing taken: the head is the next one */
				knew_next(r, kind, at);
			return 0;
		}
		const char *member = h->element[i]->str;
		const char *colon = strchr(member, ':');
		int found = colon && strlen(colon + 1) <= CALL_ID_LEN;
		if (found) {
			out->at = at;
			out->party = member[0] == '1' ? PARTY_RECEIVER : PARTY_CALLER;
			snprintf(out->id, sizeof(out->id), "%s", colon + 1);
		}
		/* Removed with the transition it fires (or skipped, if malformed); what this
		 * transition takes out, the next look at Redis will tell. */
		r->popped[kind]++;
		r->stale[kind] = 1;
		struct args z = { 0 };
		args_s(&z, "ZREM");
		args_s(&z, key);
		args_s(&z, member);
		queue(r, &z);
		if (found || r->popped[kind] >= POPS_PER_TX)
			return found;
	}
}

/* The earliest deadline of every kind this engine is unsure of, in one round trip. */
static void refresh_stale(struct store_redis *r)
{
	struct args a[DEADLINE__COUNT];
	char key[DEADLINE__COUNT][KEY_MAX];
	int kinds[DEADLINE__COUNT], n = 0;
	memset(a, 0, sizeof(a));
	for (int k = 0; k < DEADLINE__COUNT; k++) {
		if (!r->stale[k])
			continue;
		key_of(r, key[n], "dl:", kind_name[k]);
		args_s(&a[n], "ZRANGE");
		args_s(&a[n], key[n]);
		args_s(&a[n], "0");
		args_s(&a[n], "0");
		args_s(&a[n], "WITHSCORES");
		kinds[n++] = k;
	}
	redisReply *rep[DEADLINE__COUNT];
	if (!n || read_batch(r, 0, NULL, n, a, rep, 0) != 0)
		return;
	for (int i = 0; i < n; i++) {
		if (rep[i] && rep[i]->type == REDIS_REPLY_ARRAY) {
			__atomic_store_n(&r->known_next[kinds[i]],
					 rep[i]->elements == 2 && rep[i]->element[1]->str
					     ? (int64_t)strtod(rep[i]->element[1]->str, NULL)
					     : INT64_MAX,
					 __ATOMIC_RELAXED);
			r->stale[kinds[i]] = 0;
		}
		freeReplyObject(rep[i]);
	}
	r->failed = 0;
}

/* The engine's connection and what it knows are mutable state behind the const of the read-only operations.
 */
static int64_t rd_deadline_next(const struct store *cs, enum deadline_kind kind)
{
	struct store_redis *r = RS((struct store *)cs);
	if (r->stale[kind] && !r->in_tx)
		refresh_stale(r);
	/* Other instances add deadlines too: look again soon whatever this one knows. */
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	int64_t poll = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 + POLL_MS;
	int64_t next = __atomic_load_n(&r->known_next[kind], __ATOMIC_RELAXED);
	return next < poll ? next : poll;
}

static int64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static size_t with_delta(size_t n, long delta)
{
	return delta < 0 && (size_t)-delta > n ? 0 : (size_t)((long)n + delta);
}

/* The size of set which (0: calls, 1: live), this transition's own writes included; see sets. */
static size_t card(const struct store *cs, int which)
{
	struct store_redis *r = RS((struct store *)cs);
	if (r->in_tx) {
		if (!r->sets_known && !r->heads_loaded)
			load_heads(r); /* the tick asks the sizes, then pops: both in one round trip */
		if (!r->sets_known)
			read_batch(r, 0, NULL, 0, NULL, NULL, 1);
		return with_delta(r->sets[which], which ? r->delta_live : r->delta_count);
	}
	int64_t now = mono_us();
	if ((r->after_mask & (1 << which)) && now - r->after_at < COUNTS_FRESH_US) {
		r->after_mask &= ~(1 << which);
		return r->after[which];
	}
	read_batch(r, 0, NULL, 0, NULL, NULL, 1);
	r->failed = 0;
	if (!r->sets_known)
		return 0;
	r->sets_known = 0; /* outside a transition: good for this pair of uses only */
	memcpy(r->after, r->sets, sizeof(r->after));
	r->after_mask = 1 << (1 - which);
	r->after_at = now;
	return r->sets[which];
}

static size_t rd_count(const struct store *s)
{
	return card(s, 0);
}

static size_t rd_live_count(const struct store *s)
{
	return card(s, 1);
}

/*
 * Reads ahead, in one round trip, what a transition is about to ask: the call id's hash
 * and the busy lines of users (entries may be NULL), all WATCHed, with the set sizes.
 */
static void rd_prefetch(struct store *s, const char *call_id, const char *const users[2])
{
	struct store_redis *r = RS(s);
	if (!r->in_tx)
		return;
	drop_prefetched(r);
	struct args a[PREFETCH_MAX];
	memset(a, 0, sizeof(a));
	const char *keys[PREFETCH_MAX];
	int n = 0;
	if (call_id) {
		key_of(r, r->pre_key[n], "call:", call_id);
		args_s(&a[n], "HGETALL");
		args_s(&a[n], r->pre_key[n]);
		keys[n] = r->pre_key[n];
		n++;
	}
	for (int p = 0; p < 2; p++) {
		if (!users[p])
			continue;
		key_of(r, r->pre_key[n], "busy:", users[p]);
		args_s(&a[n], "GET");
		args_s(&a[n], r->pre_key[n]);
		keys[n] = r->pre_key[n];
		n++;
	}
	if (read_batch(r, n, keys, n, a, r->pre_rep, !r->sets_known) == 0)
		r->npre = n;
}

/* The calls handed to fn are loaned: they stay valid until the next begin. */
static void rd_each(const struct store *cs, void (*fn)(void *ctx, const struct call *call), void *ctx)
{
	struct store_redis *r = RS((struct store *)cs);
	char key[KEY_MAX];
	key_of(r, key, "calls", "");
	struct args a = { 0 };
	args_s(&a, "SMEMBERS");
	args_s(&a, key);
	redisReply *ids = run(r, &a);
	if (!ids || ids->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(ids);
		return;
	}
	/* The calls' hashes in pipelined batches: a round trip per EACH_BATCH calls, not per call
	 * (the end of a broker replay walks every call under core's lock). */
	for (size_t i = 0; i < ids->elements && r->main.ctx; i += EACH_BATCH) {
		size_t sent = 0;
		for (size_t k = i; k < ids->elements && k < i + EACH_BATCH; k++) {
			const redisReply *e = ids->element[k];
			if (!e->str || e->len > CALL_ID_LEN)
				continue;
			char id[CALL_ID_LEN + 1];
			snprintf(id, sizeof(id), "%s", e->str);
			key_of(r, key, "call:", id);
			const char *v[] = { "HGETALL", key };
			size_t l[] = { 7, strlen(key) };
			redisAppendCommandArgv(r->main.ctx, 2, v, l);
			sent++;
		}
		for (size_t k = 0; k < sent; k++) {
			redisReply *rep = NULL;
			if (redisGetReply(r->main.ctx, (void **)&rep) != REDIS_OK || !rep) {
				lost(r);
				break;
			}
			struct call *call = loan(r, parse_call(rep));
			freeReplyObject(rep);
			if (call)
				fn(ctx, call);
		}
	}
	freeReplyObject(ids);
}

/*
 * GCRA as in ratelimit.c: KEYS[1] holds the theoretical arrival time (µs,
 * Redis's clock); ARGV: interval and burst (µs). Returns -1 when allowed,
 * else the µs to wait. The key expires once the bucket is full again.
 */
static const char rate_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or now)\n"
    "if tat < now then tat = now end\n"
    "if tat - now > burst then return tat - now - burst end\n"
    "tat = tat + interval\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1)\n"
    "return -1\n";

static int rd_rate_take(struct store *s, const char *user_id, int limit_per_min, int64_t *retry_after_ms)
{
	struct store_redis *r = RS(s);
	char key[KEY_MAX];
	key_of(r, key, "rate:", user_id);
	int64_t interval = 60000000LL / limit_per_min;
	struct args a = { 0 };
	args_s(&a, "EVAL");
	args_s(&a, rate_script);
	args_s(&a, "1");
	args_s(&a, key);
	args_num(&a, interval);
	args_num(&a, interval * (limit_per_min - 1));
	r->failed = 0;
	redisReply *rep = run(r, &a);
	int result = -1;
	if (rep && rep->type == REDIS_REPLY_INTEGER) {
		result = rep->integer < 0;
		if (!result)
			*retry_after_ms = (rep->integer + 999) / 1000;
	}
	freeReplyObject(rep);
	r->failed = 0;
	return result;
}

static void rd_history_add(struct store *s, const struct call *call, size_t max)
{
	struct store_redis *r = RS(s);
	size_t len;
	char *entry = history_entry(call, &len);
	for (int p = 0; p < 2; p++) {
		char key[KEY_MAX];
		key_of(r, key, "hist:", call->party[p].id);
		struct args a = { 0 };
		args_s(&a, "LPUSH");
		args_s(&a, key);
		args_str(&a, entry, len);
		queue(r, &a);
		memset(&a, 0, sizeof(a));
		args_s(&a, "LTRIM");
		args_s(&a, key);
		args_s(&a, "0");
		args_num(&a, (int64_t)max - 1);
		queue(r, &a);
	}
	free(entry);
}

static size_t rd_history(const struct store *cs, const char *user_id, const char *before_id, size_t limit,
			 struct call *out)
{
	struct store_redis *r = RS((struct store *)cs);
	char key[KEY_MAX];
	key_of(r, key, "hist:", user_id);
	struct args a = { 0 };
	args_s(&a, "LRANGE");
	args_s(&a, key);
	args_s(&a, "0");
	args_s(&a, "-1");
	redisReply *rep = run(r, &a);
	size_t n = 0;
	if (rep && rep->type == REDIS_REPLY_ARRAY) {
		int taking = !before_id;
		for (size_t i = 0; i < rep->elements && n < limit; i++) {
			const redisReply *e = rep->element[i];
			if (e->type != REDIS_REPLY_STRING)
				continue;
			struct call *call = parse_history_entry(e->str, e->len);
			if (!call)
				continue;
			if (taking) {
				out[n++] = *call; /* the strings move into out[n] */
				free(call);
				continue;
			}
			taking = strcmp(call->id, before_id) == 0;
			call_free(call);
		}
	}
	freeReplyObject(rep);
	if (!r->in_tx)
		r->failed = 0;
	return n;
}

static void rd_begin(struct store *s)
{
	struct store_redis *r = RS(s);
	free_loans(r);
	drop_pending(r);
	drop_prefetched(r);
	drop_heads(r);
	r->after_mask = 0;
	r->sets_known = 0;
	drop_out(r);
	link_check(r);
	r->in_tx = 1;
	r->failed = 0;
	r->delta_count = r->delta_live = 0;
	memset(r->popped, 0, sizeof(r->popped));
	for (int k = 0; k < DEADLINE__COUNT; k++)
		r->tx_added[k] = INT64_MAX;
}

static enum store_commit rd_commit(struct store *s)
{
	struct store_redis *r = RS(s);
	if (r->nout)
		queue_out(r);
	/* Even a transition that wrote nothing commits: EXEC fails if what it read changed. */
	enum store_commit result = flush(r);
	if (result == STORE_FAILED && r->main.ctx) {
		struct args a = { 0 };
		args_s(&a, "UNWATCH");
		freeReplyObject(run(r, &a));
	}
	drop_prefetched(r);
	drop_heads(r);
	if (result == STORE_COMMITTED && r->sets_known) { /* the set sizes now, for the cap asked next */
		r->after[0] = with_delta(r->sets[0], r->delta_count);
		r->after[1] = with_delta(r->sets[1], r->delta_live);
		r->after_mask = 3;
		r->after_at = mono_us();
	}
	r->sets_known = 0;
	r->in_tx = 0;
	r->failed = 0;
	r->delta_count = r->delta_live = 0;
	return result;
}

static void rd_free(struct store *s)
{
	struct store_redis *r = RS(s);
	free_loans(r);
	drop_pending(r);
	drop_prefetched(r);
	drop_heads(r);
	free(r->loaned);
	free(r->loaded_live);
	free(r->pending);
	drop_out(r);
	free(r->out);
	link_close(&r->main);
	link_close(&r->drain);
	if (!r->root) {
		if (r->url)
			redis_url_release(r->url);
		free(r->url);
		free(r->prefix);
		free(r->known_next);
		free(r->outage);
	}
	free(r);
}

/* --- the outbox: a stream, drained by the instance holding the lease ------------------------------ */

static void rd_outbox_put(struct store *s, const char *topic, const char *payload, size_t len, int retained)
{
	struct store_redis *r = RS(s);
	if (r->nout == r->cap_out) {
		r->cap_out = r->cap_out ? r->cap_out * 2 : 8;
		r->out = xrealloc(r->out, r->cap_out * sizeof(*r->out));
	}
	struct out_msg *m = &r->out[r->nout++];
	m->topic = xstrdup(topic);
	m->payload = xmalloc(len ? len : 1);
	memcpy(m->payload, payload, len);
	m->len = len;
	m->retained = retained;
}

static void drop_out(struct store_redis *r)
{
	for (size_t i = 0; i < r->nout; i++) {
		free(r->out[i].topic);
		free(r->out[i].payload);
	}
	r->nout = 0;
}

/*
 * The transition's messages as stream entries of up to OUT_PER_ENTRY
 * messages each (fields t, p, r repeated in order), queued for its EXEC:
 * one entry for most transitions instead of one per message.
 */
static void queue_out(struct store_redis *r)
{
	char key[KEY_MAX];
	key_of(r, key, "outbox", "");
	const char *argv[3 + 6 * OUT_PER_ENTRY];
	size_t lens[3 + 6 * OUT_PER_ENTRY];
	for (size_t i = 0; i < r->nout; i += OUT_PER_ENTRY) {
		int n = 0;
		argv[n] = "XADD", lens[n++] = 4;
		argv[n] = key, lens[n++] = strlen(key);
		argv[n] = "*", lens[n++] = 1;
		for (size_t k = i; k < r->nout && k < i + OUT_PER_ENTRY; k++) {
			const struct out_msg *m = &r->out[k];
			argv[n] = "t", lens[n++] = 1;
			argv[n] = m->topic, lens[n++] = strlen(m->topic);
			argv[n] = "p", lens[n++] = 1;
			argv[n] = m->payload, lens[n++] = m->len;
			argv[n] = "r", lens[n++] = 1;
			argv[n] = m->retained ? "1" : "0", lens[n++] = 1;
		}
		queue_argv(r, n, argv, lens);
	}
	drop_out(r);
}

/* Runs one command on the drain thread's connection; NULL when Redis does not answer. Caller frees. */
static redisReply *drain_run(struct store_redis *r, struct args *a)
{
	if (!r->drain.ctx && link_open(r, &r->drain) != 0)
		return NULL;
	redisReply *rep = redisCommandArgv(r->drain.ctx, a->n, a->v, a->len);
	if (!rep) {
		log_error("lost Redis at '%s:%d' (outbox): %s", r->drain.host, r->drain.port,
			  r->drain.ctx->errstr);
		r->drain.down = 1;
		link_close(&r->drain);
		return NULL;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		log_error("Redis refused '%s' (outbox): %s", a->v[0], rep->str);
		if (reply_readonly(rep))
			link_demoted(r, &r->drain);
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

/* Takes the lease when it is free, renews it when it is ours: 1 ours, 0 another's. */
static const char lead_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
    "return 0";

static const char resign_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
				    "return redis.call('DEL', KEYS[1]) end return 0";

static int lease_call(struct store_redis *r, const char *script, const char *me, int ttl_ms)
{
	char key[KEY_MAX];
	key_of(r, key, "outbox:leader", "");
	struct args a = { 0 };
	args_s(&a, "EVAL");
	args_s(&a, script);
	args_s(&a, "1");
	args_s(&a, key);
	args_s(&a, me);
	args_num(&a, ttl_ms);
	redisReply *rep = drain_run(r, &a);
	int result = rep && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
	freeReplyObject(rep);
	return result;
}

static int rd_outbox_lead(struct store *s, const char *me, int ttl_ms)
{
	int v = lease_call(RS(s), lead_script, me, ttl_ms);
	return v < 0 ? -1 : v > 0;
}

static void rd_outbox_resign(struct store *s, const char *me)
{
	lease_call(RS(s), resign_script, me, 0);
}

static int rd_outbox_read(struct store *s, char cursor[STORE_OUTBOX_ID_MAX], size_t max, int block_ms,
			  void (*fn)(void *ctx, const char *id, const char *topic, const char *payload,
				     size_t len, int retained),
			  void *ctx)
{
	struct store_redis *r = RS(s);
	char key[KEY_MAX];
	key_of(r, key, "outbox", "");
	struct args a = { 0 };
	args_s(&a, "XREAD");
	args_s(&a, "COUNT");
	args_num(&a, (int64_t)max);
	args_s(&a, "BLOCK");
	args_num(&a, block_ms);
	args_s(&a, "STREAMS");
	args_s(&a, key);
	args_s(&a, cursor);
	redisReply *rep = drain_run(r, &a);
	if (!rep)
		return -1;
	int n = 0;
	/* [[key, [[id, [field, value, ...]], ...]]], or nil when nothing came within block_ms. */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
	    rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
		const redisReply *entries = rep->element[0]->element[1];
		for (size_t i = 0; i < entries->elements; i++) {
			const redisReply *e = entries->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
			    e->element[0]->type != REDIS_REPLY_STRING ||
			    e->element[1]->type != REDIS_REPLY_ARRAY)
				continue;
			snprintf(cursor, STORE_OUTBOX_ID_MAX, "%s", e->element[0]->str);
			/* Messages in order, each the fields t, p, r. */
			const redisReply *f = e->element[1];
			for (size_t k = 0; k + 5 < f->elements; k += 6) {
				const redisReply *t = f->element[k + 1], *p = f->element[k + 3],
						 *ret = f->element[k + 5];
				if (t->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING ||
				    ret->type != REDIS_REPLY_STRING) {
					log_error("skipped a malformed message of outbox entry '%s'", cursor);
					continue;
				}
				fn(ctx, cursor, t->str, p->str, p->len, !strcmp(ret->str, "1"));
				n++;
			}
		}
	}
	freeReplyObject(rep);
	return n;
}

static int rd_outbox_trim(struct store *s, const char *through_id)
{
	struct store_redis *r = RS(s);
	/* XTRIM MINID keeps the ids from its argument on: the next id after through_id. */
	unsigned long long ms = 0, seq = 0;
	if (sscanf(through_id, "%llu-%llu", &ms, &seq) != 2)
		return -1;
	char key[KEY_MAX], minid[STORE_OUTBOX_ID_MAX];
	key_of(r, key, "outbox", "");
	snprintf(minid, sizeof(minid), "%llu-%llu", ms, seq + 1);
	struct args a = { 0 };
	args_s(&a, "XTRIM");
	args_s(&a, key);
	args_s(&a, "MINID");
	args_s(&a, minid);
	redisReply *rep = drain_run(r, &a);
	int ok = rep != NULL;
	freeReplyObject(rep);
	return ok ? 0 : -1;
}

/* SET seen:{name} NX PX ttl: only the first SET of a name within its ttl succeeds. */
static int rd_seen_once(struct store *s, const char *name, int64_t ttl_ms)
{
	struct store_redis *r = RS(s);
	char key[KEY_MAX];
	key_of(r, key, "seen:", name);
	struct args a = { 0 };
	args_s(&a, "SET");
	args_s(&a, key);
	args_s(&a, "1");
	args_s(&a, "NX");
	args_s(&a, "PX");
	args_num(&a, ttl_ms);
	int failed = r->failed;
	redisReply *rep = run(r, &a);
	int v = !rep || rep->type == REDIS_REPLY_ERROR ? -1 : rep->type == REDIS_REPLY_STATUS;
	freeReplyObject(rep);
	r->failed = failed; /* outside a transition: nothing of one to fail */
	return v;
}

static struct store *rd_handle(struct store *s);

static int rd_unreachable(const struct store *s)
{
	return RS((struct store *)s)->read_failed;
}

static const struct store_ops redis_ops = {
	rd_find,
	rd_live_of,
	rd_add,
	rd_save,
	rd_forget,
	rd_deadline_add,
	rd_deadline_pop_due,
	rd_deadline_next,
	rd_count,
	rd_live_count,
	rd_each,
	rd_free,
	rd_begin,
	rd_commit,
	rd_rate_take,
	rd_history_add,
	rd_history,
	rd_outbox_put,
	rd_outbox_lead,
	rd_outbox_resign,
	rd_outbox_read,
	rd_outbox_trim,
	rd_prefetch,
	rd_seen_once,
	rd_handle,
	rd_unreachable,
};

static struct store_redis *rd_alloc(void)
{
	struct store_redis *r = xcalloc(1, sizeof(*r));
	r->base.ops = &redis_ops;
	r->base.shared = 1;
	for (int k = 0; k < DEADLINE__COUNT; k++) {
		r->tx_added[k] = INT64_MAX;
		r->stale[k] = 1;
	}
	return r;
}

/* A handle connects on its first use: a Redis away now is met as by the root's link. */
static struct store *rd_handle(struct store *s)
{
	struct store_redis *root = RS(s), *r = rd_alloc();
	while (root->root)
		root = (struct store_redis *)root->root;
	r->root = root;
	r->url = root->url;
	r->prefix = root->prefix;
	r->known_next = root->known_next;
	r->outage = root->outage;
	return &r->base;
}

struct store *store_redis_new(const char *url, const char *prefix)
{
	struct store_redis *r = rd_alloc();
	r->known_next = xmalloc(DEADLINE__COUNT * sizeof(*r->known_next));
	r->outage = xcalloc(1, sizeof(*r->outage));
	for (int k = 0; k < DEADLINE__COUNT; k++)
		r->known_next[k] = INT64_MAX;
	r->prefix = xstrndup(prefix, strlen(prefix) > PREFIX_MAX ? PREFIX_MAX : strlen(prefix));
	r->url = xcalloc(1, sizeof(*r->url));
	const char *why;
	if (redis_url_parse(r->url, url, &why) != 0) {
		log_error("bad REDIS_URL: %s", why);
		goto fail;
	}
	if (link_open(r, &r->main) != 0)
		goto fail;
	return &r->base;
fail:
	rd_free(&r->base);
	return NULL;
}

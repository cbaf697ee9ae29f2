/*
 * mqtt_bus.c - see mqtt_bus.h.
 *
 * Built on Paho's MQTTClient API in its single-threaded mode (no callbacks
 * are set, so Paho starts no thread of its own): the bus thread is the only
 * caller of Paho. It publishes what the outbox holds, then reads what the
 * broker sent (PUBACKs, presence) with zero-timeout receives, and sleeps on
 * a condition variable that the next queued event signals. Measured against
 * Paho's threaded mode, this saves the wake-up of a second thread and the
 * lock hand-offs between the two for every event (docs/performance.md).
 *
 * Delivery: an event stays the bus's until the broker has acknowledged it.
 * Published, it moves from the outbox to the in-flight list with its
 * delivery token; it is freed once Paho no longer lists that token as
 * pending, that is once its PUBACK arrived. When the connection is lost
 * (including a publish that Paho reports as done on a socket that has just
 * died), Paho forgets its in-flight messages (clean session), so the bus
 * puts its in-flight list back at the head of the outbox, in order, and
 * sends it first after the next connect: at least once, never lost while
 * the process lives. The broker may then see an event twice, when only its
 * PUBACK was lost.
 *
 * Failover: cfg.url may list several brokers, comma-separated; every
 * connect tries them in that order (Paho's serverURIs) and keeps the first
 * that answers, so a lost broker is replaced by the next one, whose
 * retained replay rebuilds presence as after any reconnect.
 *
 * States: DOWN (waiting for the next attempt, or connecting) -> UP
 * (connected and subscribed). The mutex guards state and outbox and is
 * never held across a Paho call or a callback; the in-flight list belongs
 * to the bus thread alone.
 */
#include "mqtt_bus.h"

#include <MQTTClient.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define BACKOFF_MIN_MS 1000
#define REFUSED_MAX_MS 2000   /* after a refused subscription (a NATS cluster electing) */
#define BACKOFF_MAX_MS 5000   /* a broker back after an outage is used within 5 s */
#define OUTBOX_MAX     200000 /* beyond this the oldest waiting event is dropped */
#define SEND_BATCH     256
#define RECEIVE_BATCH  1024 /* packets read before the outbox is looked at again */
#define ACTIVE_POLL_MS 4    /* socket poll while acknowledgements are due, */
#define QUIET_POLL_MS  10   /* for a second after the last traffic, */
#define IDLE_POLL_MS   100  /* and after that: the delay presence may see */
#define QUIET_MS       1000
#define MAX_INFLIGHT   65535 /* QoS 1 events awaiting their PUBACK */
#define TOKEN_SPACE    65536 /* MQTT packet ids are 1..65535 */
#define SYNC_WAIT_MS   10000 /* a marker not back by then is taken as lost */
#define PROBE_WAIT_MS  2000  /* the TCP probe that explains a failed connect */

enum bus_state { BUS_DOWN, BUS_UP };

struct msg {
	struct msg *next;
	size_t topic_len, payload_len;
	int token;         /* Paho's delivery token while in flight */
	int retained;      /* publish with the retain flag */
	int tracked;       /* queued by mqtt_bus_publish_tracked */
	uint64_t seq;      /* order of queueing, from 1 */
	int64_t queued_ms; /* monotonic: when it was queued */
	char data[];       /* topic, NUL, payload */
};

/* A list of messages in sending order. */
struct msg_list {
	struct msg *head, *tail;
	size_t n;
};

struct mqtt_bus {
	struct mqtt_bus_config cfg;
	struct mqtt_bus_callbacks cb;
	MQTTClient client;
	pthread_t thread;

	pthread_mutex_t mu;
	pthread_cond_t wake;
	enum bus_state state;
	int running;
	int64_t next_attempt_ms;
	int64_t backoff_ms;
	struct msg_list outbox;
	size_t unacked;           /* bus->inflight.n as of the bus thread's last round, for stats */
	int64_t unacked_since_ms; /* queued_ms of the oldest of those, for stats */
	int connected_once;       /* a connection succeeded before (bus thread only) */
	char tls_error[256];      /* what OpenSSL reported during the last connect (bus thread only) */
	uint64_t published, dropped;
	uint64_t next_seq;      /* the seq of the next message queued */
	uint64_t settled_below; /* every message with a lower seq is acknowledged or dropped */
	uint64_t discard_below; /* tracked messages with a lower seq are not sent (again) */

	/* The bus thread's own, no lock: sent, awaiting their PUBACK. */
	struct msg_list inflight;
	unsigned char pending[TOKEN_SPACE / 8]; /* scratch bitmap of Paho's pending tokens */
	char sync_topic[64];                    /* callsignal/sync/{clientId}: the end-of-replay marker */
	int second_done;     /* subscription2 was replayed once and dropped (bus thread only) */
	int64_t sync_due_ms; /* while the marker is awaited: when to stop waiting; else 0 (bus thread only) */
	char *uri_text;      /* cfg.url split into uris (owned) */
	char **uris;
	int nuris;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void list_append(struct msg_list *l, struct msg *m)
{
	m->next = NULL;
	if (l->tail)
		l->tail->next = m;
	else
		l->head = m;
	l->tail = m;
	l->n++;
}

/* Detaches and returns the first message; the list must not be empty. */
static struct msg *list_pop(struct msg_list *l)
{
	struct msg *m = l->head;
	l->head = m->next;
	if (!l->head)
		l->tail = NULL;
	l->n--;
	m->next = NULL;
	return m;
}

/* Moves all of `front` before the messages of `l`, in order; `front` ends empty. */
static void list_prepend(struct msg_list *l, struct msg_list *front)
{
	if (!front->head)
		return;
	front->tail->next = l->head;
	l->head = front->head;
	if (!l->tail)
		l->tail = front->tail;
	l->n += front->n;
	*front = (struct msg_list){ 0 };
}

static void list_free(struct msg_list *l)
{
	while (l->head)
		free(list_pop(l));
}

/* Called with bus->mu held: drops the oldest waiting events until `room`
 * more fit under the cap. */
static void enforce_cap(struct mqtt_bus *bus, size_t room)
{
	while (bus->outbox.head && bus->outbox.n + room > OUTBOX_MAX) {
		free(list_pop(&bus->outbox));
		if (++bus->dropped % 1000 == 1)
			log_error("outbox full (%d events waiting for the broker): dropped the oldest",
				  OUTBOX_MAX);
	}
}

/* Called with bus->mu held, on the bus thread (which owns inflight): the
 * messages in flight precede the waiting ones, each list in seq order. */
static void update_settled(struct mqtt_bus *bus)
{
	bus->settled_below = bus->inflight.head ? bus->inflight.head->seq
			     : bus->outbox.head ? bus->outbox.head->seq
						: bus->next_seq;
}

/* Called with bus->mu held. */
static void schedule_retry(struct mqtt_bus *bus)
{
	bus->state = BUS_DOWN;
	bus->next_attempt_ms = mono_ms() + bus->backoff_ms;
	bus->backoff_ms = bus->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : bus->backoff_ms * 2;
	pthread_cond_signal(&bus->wake);
}

/*
 * Called on the bus thread, without the mutex, once a Paho call has shown
 * that the connection is gone. The events still unacknowledged go back to
 * the head of the outbox, ahead of those never sent, to be sent first on
 * the next connection: the broker may or may not have them.
 */
static void connection_lost(struct mqtt_bus *bus, const char *what, int rc)
{
	size_t unacked = bus->inflight.n;
	metrics_inc(M_BROKER_LOST);
	/* Paho reports a closed or broken socket only as "Failure" or "Disconnected". */
	int closed = rc == MQTTCLIENT_FAILURE || rc == MQTTCLIENT_DISCONNECTED;
	log_warn("lost the broker connection to %s while %s: %s", bus->cfg.url,
		 strcmp(what, "publish") == 0 ? "publishing" : "reading",
		 closed ? "the broker closed it or the network failed; reconnecting"
			: MQTTClient_strerror(rc));
	if (MQTTClient_isConnected(bus->client))
		MQTTClient_disconnect(bus->client, 0);
	pthread_mutex_lock(&bus->mu);
	list_prepend(&bus->outbox, &bus->inflight);
	enforce_cap(bus, 0);
	update_settled(bus);
	bus->unacked = 0;
	bus->unacked_since_ms = 0;
	bus->backoff_ms = BACKOFF_MIN_MS;
	schedule_retry(bus);
	pthread_mutex_unlock(&bus->mu);
	if (unacked > 0)
		log_info("%zu events the broker had not acknowledged will be sent again first", unacked);
	bus->cb.on_lost(bus->cb.ctx);
}

static void token_mark(unsigned char *bits, int token)
{
	unsigned t = (unsigned)token & (TOKEN_SPACE - 1);
	bits[t >> 3] |= (unsigned char)(1u << (t & 7));
}

static void token_clear(unsigned char *bits, int token)
{
	bits[((unsigned)token & (TOKEN_SPACE - 1)) >> 3] = 0; /* its neighbours are cleared too */
}

static int token_marked(const unsigned char *bits, int token)
{
	unsigned t = (unsigned)token & (TOKEN_SPACE - 1);
	return bits[t >> 3] >> (t & 7) & 1;
}

/*
 * Frees the in-flight events the broker has acknowledged: those whose token
 * Paho no longer lists as pending. Paho's list is only trusted while it is
 * connected, as losing the connection empties it. Returns the number of
 * events still in flight, or -1 when the connection is gone.
 */
static int settle_acked(struct mqtt_bus *bus)
{
	if (!bus->inflight.head)
		return 0;
	MQTTClient_deliveryToken *tokens = NULL;
	if (MQTTClient_getPendingDeliveryTokens(bus->client, &tokens) != MQTTCLIENT_SUCCESS)
		return (int)bus->inflight.n; /* none settled this time */
	size_t n = 0;
	while (tokens && tokens[n] != -1)
		n++;
	if (n < bus->inflight.n) {
		if (!MQTTClient_isConnected(bus->client)) {
			MQTTClient_free(tokens);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			token_mark(bus->pending, tokens[i]);
		/* The broker acknowledges in order, so the walk usually ends
		 * after the acknowledged ones at the head. */
		size_t acked = bus->inflight.n - n;
		struct msg **link = &bus->inflight.head, *last = NULL;
		while (acked > 0 && *link) {
			struct msg *m = *link;
			if (token_marked(bus->pending, m->token)) {
				last = m;
				link = &m->next;
			} else {
				*link = m->next;
				bus->inflight.n--;
				acked--;
				free(m);
			}
		}
		if (!*link)
			bus->inflight.tail = last;
		for (size_t i = 0; i < n; i++)
			token_clear(bus->pending, tokens[i]);
	}
	MQTTClient_free(tokens);
	return (int)bus->inflight.n;
}

/*
 * The replay is complete. subscription2 is only needed for that first
 * replay (the service's own writes would otherwise come back to it), so it
 * is dropped and not taken again after a reconnect.
 */
static void synced(struct mqtt_bus *bus)
{
	bus->sync_due_ms = 0;
	if (bus->cfg.subscription2 && !bus->second_done) {
		int rc = MQTTClient_unsubscribe(bus->client, bus->cfg.subscription2);
		if (rc != MQTTCLIENT_SUCCESS)
			log_warn("unsubscribing from '%s' failed (%s)", bus->cfg.subscription2,
				 MQTTClient_strerror(rc));
		bus->second_done = 1;
	}
	bus->cb.on_synced(bus->cb.ctx);
}

/*
 * Reads what the broker has sent, without waiting: PUBACKs, PINGRESPs and
 * presence messages (handed to on_message). One Paho call reads at most one
 * packet, so this goes on while calls make progress. Returns the number of
 * packets handled, or -1 when the connection is gone; *left is the number
 * of events still unacknowledged.
 */
static int pump_incoming(struct mqtt_bus *bus, int *left)
{
	int handled = 0;
	int pending = settle_acked(bus);
	*left = 0;
	for (int i = 0; pending >= 0 && i < RECEIVE_BATCH; i++) {
		char *topic = NULL;
		int topic_len = 0;
		MQTTClient_message *m = NULL;
		int rc = MQTTClient_receive(bus->client, &topic, &topic_len, &m, 0);
		if (rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED) {
			connection_lost(bus, "receive", rc);
			return -1;
		}
		if (m) {
			size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
			if (strcmp(topic, bus->sync_topic) == 0)
				synced(bus);
			else
				bus->cb.on_message(bus->cb.ctx, topic, tlen, m->payload,
						   (size_t)m->payloadlen);
			MQTTClient_freeMessage(&m);
			MQTTClient_free(topic);
			handled++;
			continue;
		}
		int now_pending = pending > 0 ? settle_acked(bus) : 0;
		if (now_pending >= pending)
			break; /* nothing was ready */
		if (now_pending >= 0)
			handled += pending - now_pending;
		pending = now_pending;
	}
	if (pending < 0) {
		connection_lost(bus, "receive", MQTTCLIENT_DISCONNECTED);
		return -1;
	}
	*left = pending;
	return handled;
}

static int is_tls_url(const char *url)
{
	return strncmp(url, "ssl://", 6) == 0 || strncmp(url, "mqtts://", 8) == 0 ||
	       strncmp(url, "wss://", 6) == 0;
}

/* Splits cfg.url at commas (spaces around them dropped) into bus->uris; 0, or -1 with an empty entry. */
static int split_urls(struct mqtt_bus *bus)
{
	bus->uri_text = xstrdup(bus->cfg.url);
	size_t n = 1;
	for (const char *p = bus->uri_text; *p; p++)
		n += *p == ',';
	bus->uris = xcalloc(n, sizeof(*bus->uris));
	char *save = NULL;
	char *text = bus->uri_text;
	for (size_t i = 0; i < n; i++) {
		char *tok = i == 0 ? strtok_r(text, ",", &save) : strtok_r(NULL, ",", &save);
		while (tok && *tok == ' ')
			tok++;
		size_t len = tok ? strlen(tok) : 0;
		while (len && tok[len - 1] == ' ')
			tok[--len] = '\0';
		if (!len)
			return -1;
		bus->uris[bus->nuris++] = tok;
	}
	return 0;
}

/*
 * Paho hands OpenSSL's error lines here during a TLS connect (bus thread).
 * A line reads "<thread>:error:<code>:<library>:<function>:<reason>:<file>:<line>:";
 * the reasons ("certificate verify failed") are kept, each once.
 */
static int on_tls_error(const char *str, size_t len, void *arg)
{
	struct mqtt_bus *bus = arg;
	const char *field = str, *end = str + len;
	for (int i = 0; i < 5 && field < end; i++) {
		const char *colon = memchr(field, ':', (size_t)(end - field));
		field = colon ? colon + 1 : end;
	}
	const char *stop = field < end ? memchr(field, ':', (size_t)(end - field)) : NULL;
	if (field >= end || !stop || stop == field)
		return 0;
	char reason[128];
	snprintf(reason, sizeof(reason), "%.*s", (int)(stop - field), field);
	size_t have = strlen(bus->tls_error);
	if (!strstr(bus->tls_error, reason))
		snprintf(bus->tls_error + have, sizeof(bus->tls_error) - have, "%s%s", have ? "; " : "",
			 reason);
	return 0;
}

/* Splits a broker URL into host and port (the scheme's default port when none is given). */
static int url_host_port(const char *url, char *host, size_t host_len, char *port, size_t port_len)
{
	const char *p = strstr(url, "://");
	if (!p)
		return -1;
	const char *def = strncmp(url, "ssl", 3) == 0 || strncmp(url, "mqtts", 5) == 0 ? "8883"
			  : strncmp(url, "wss", 3) == 0                                ? "443"
			  : strncmp(url, "ws", 2) == 0                                 ? "80"
										       : "1883";
	p += 3;
	const char *end = p + strcspn(p, "/?");
	const char *colon = NULL;
	if (*p == '[') { /* [IPv6]:port */
		const char *close = memchr(p, ']', (size_t)(end - p));
		if (!close)
			return -1;
		snprintf(host, host_len, "%.*s", (int)(close - p - 1), p + 1);
		colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		snprintf(host, host_len, "%.*s", (int)((colon ? colon : end) - p), p);
	}
	snprintf(port, port_len, "%.*s", colon ? (int)(end - colon - 1) : (int)strlen(def),
		 colon ? colon + 1 : def);
	return 0;
}

/*
 * Explains a connect that Paho reports only as "Failure": resolves the
 * host and tries a TCP connection (PROBE_WAIT_MS at most), or reports what
 * OpenSSL said. Writes the cause into why; returns the counter to count.
 */
static enum metrics_counter diagnose_failure(struct mqtt_bus *bus, char *why, size_t n)
{
	char host[256], port[16];
	if (bus->tls_error[0]) {
		snprintf(why, n, "TLS handshake failed: %s", bus->tls_error);
		return M_BROKER_FAIL_TLS;
	}
	/* With several brokers listed, the first one stands for them all. */
	if (url_host_port(bus->uris[0], host, sizeof(host), port, sizeof(port)) != 0) {
		snprintf(why, n, "the URL names no host");
		return M_BROKER_FAIL_OTHER;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int gai = getaddrinfo(host, port, &hints, &ai);
	if (gai != 0) {
		snprintf(why, n, "unknown host '%s' (%s)", host, gai_strerror(gai));
		return M_BROKER_FAIL_UNKNOWN_HOST;
	}
	enum metrics_counter cause = M_BROKER_FAIL_OTHER;
	int err = 0;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
	} else if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		err = errno;
	} else {
		struct pollfd pfd = { fd, POLLOUT, 0 };
		socklen_t len = sizeof(err);
		if (poll(&pfd, 1, PROBE_WAIT_MS) <= 0)
			err = ETIMEDOUT;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
	}
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	if (err == ECONNREFUSED) {
		snprintf(why, n, "connection refused by %s port %s (no broker listening there)", host, port);
		cause = M_BROKER_FAIL_REFUSED;
	} else if (err == ETIMEDOUT) {
		snprintf(why, n, "no answer from %s port %s within %d ms", host, port, PROBE_WAIT_MS);
		cause = M_BROKER_FAIL_TIMEOUT;
	} else if (err) {
		snprintf(why, n, "cannot reach %s port %s (%s)", host, port, strerror(err));
	} else if (is_tls_url(bus->uris[0])) {
		snprintf(why, n, "TLS handshake with %s port %s failed", host, port);
		cause = M_BROKER_FAIL_TLS;
	} else {
		snprintf(why, n, "%s port %s accepted the TCP connection but gave no MQTT answer", host,
			 port);
	}
	return cause;
}

/* What a refused or failed MQTTClient_connect means, in words; returns the counter to count. */
static enum metrics_counter connect_failure(struct mqtt_bus *bus, int rc, char *why, size_t n)
{
	switch (rc) {
	case 1:
		snprintf(why, n, "the broker refused the MQTT protocol version");
		return M_BROKER_FAIL_OTHER;
	case 2:
		snprintf(why, n, "the broker refused the client id");
		return M_BROKER_FAIL_OTHER;
	case 3:
		snprintf(why, n, "the broker is unavailable (CONNACK 3)");
		return M_BROKER_FAIL_OTHER;
	case 4:
		snprintf(why, n, "bad credentials: the broker refused user name '%s' or its password",
			 bus->cfg.username ? bus->cfg.username : "");
		return M_BROKER_FAIL_CREDENTIALS;
	case 5:
		snprintf(why, n,
			 "not authorised: the broker refused the login%s%s%s (bad credentials, or one not "
			 "allowed to connect)",
			 bus->cfg.username ? " '" : " without a user name",
			 bus->cfg.username ? bus->cfg.username : "", bus->cfg.username ? "'" : "");
		return M_BROKER_FAIL_NOT_AUTHORIZED;
	case MQTTCLIENT_FAILURE:
	case MQTTCLIENT_DISCONNECTED:
	case MQTTCLIENT_SSL_NOT_SUPPORTED:
		return diagnose_failure(bus, why, n);
	default:
		snprintf(why, n, "%s", MQTTClient_strerror(rc));
		return M_BROKER_FAIL_OTHER;
	}
}

/* Connects and subscribes, on the bus thread without the mutex. 0 on success,
 * -1 when the connection failed, 1 when the broker refused the subscription
 * (a NATS cluster electing again after a node died does for seconds). */
static int connect_and_subscribe(struct mqtt_bus *bus)
{
	MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
	MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
	opts.keepAliveInterval = 20;
	opts.cleansession = 1;
	opts.reliable = 0;
	opts.maxInflightMessages = MAX_INFLIGHT;
	opts.connectTimeout = 5;
	opts.username = bus->cfg.username;
	opts.password = bus->cfg.password;
	if (bus->nuris > 1) {
		opts.serverURIs = bus->uris;
		opts.serverURIcount = bus->nuris;
	}
	int tls = 0;
	for (int i = 0; i < bus->nuris; i++)
		tls |= is_tls_url(bus->uris[i]);
	if (tls) {
		ssl.trustStore = bus->cfg.ca_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		ssl.ssl_error_cb = on_tls_error;
		ssl.ssl_error_context = bus;
		opts.ssl = &ssl;
	}
	bus->tls_error[0] = '\0';
	int rc = MQTTClient_connect(bus->client, &opts);
	if (rc != MQTTCLIENT_SUCCESS) {
		char why[512];
		metrics_inc(connect_failure(bus, rc, why, sizeof(why)));
		log_warn("connecting to the broker at %s failed: %s; retrying in %lld ms", bus->cfg.url, why,
			 (long long)bus->backoff_ms);
		return -1;
	}
	/* Paho names the broker it reached without the scheme: log the URL as configured. */
	const char *reached = bus->uris[0];
	for (int i = 0; opts.returned.serverURI && i < bus->nuris; i++)
		if (strstr(bus->uris[i], opts.returned.serverURI))
			reached = bus->uris[i];
	log_info("connected to the broker at %s", reached);
	metrics_inc(M_BROKER_CONNECTS);
	if (bus->connected_once)
		metrics_inc(M_BROKER_RECONNECTS);
	bus->connected_once = 1;
	/* The retained replay that the subscription starts must find a clean set. */
	bus->cb.on_connected(bus->cb.ctx);
	rc = MQTTClient_subscribe(bus->client, bus->cfg.subscription, 1);
	if (rc != MQTTCLIENT_SUCCESS) {
		log_error("subscribing to '%s' failed (%s); reconnecting", bus->cfg.subscription,
			  MQTTClient_strerror(rc));
		MQTTClient_disconnect(bus->client, 0);
		return 1;
	}
	log_info("subscribed to '%s' on %s", bus->cfg.subscription, bus->cfg.url);
	if (bus->cfg.subscription2 && !bus->second_done) {
		rc = MQTTClient_subscribe(bus->client, bus->cfg.subscription2, 1);
		if (rc != MQTTCLIENT_SUCCESS)
			log_error("subscribing to '%s' failed (%s); going on without it",
				  bus->cfg.subscription2, MQTTClient_strerror(rc));
	}
	/* The marker comes back after the retained replay of the subscriptions
	 * above; a broker that refuses it leaves no way to tell, so the replay
	 * is taken as complete at once. */
	MQTTClient_deliveryToken token;
	if (MQTTClient_subscribe(bus->client, bus->sync_topic, 1) != MQTTCLIENT_SUCCESS ||
	    MQTTClient_publish(bus->client, bus->sync_topic, 4, "sync", 1, 0, &token) != MQTTCLIENT_SUCCESS) {
		log_warn("the broker refused the replay marker on '%s'; taking the replay as complete",
			 bus->sync_topic);
		synced(bus);
	} else {
		bus->sync_due_ms = mono_ms() + SYNC_WAIT_MS;
	}
	return 0;
}

/*
 * Publishes a batch in order; each event sent moves to the in-flight list.
 * 0 when it all went out, 1 when the in-flight window filled (the rest
 * waits at the head of the outbox for PUBACKs), -1 when the connection is
 * gone (the rest waits for the next connection). A message that Paho
 * refuses on a working connection would be refused forever: it is dropped,
 * so that it cannot hold up the ones behind it.
 */
static int send_batch(struct mqtt_bus *bus, struct msg_list *batch)
{
	size_t sent = 0, refused = 0;
	int rc = MQTTCLIENT_SUCCESS;
	while (batch->head) {
		struct msg *m = batch->head;
		MQTTClient_deliveryToken token = 0;
		rc = MQTTClient_publish(bus->client, m->data, (int)m->payload_len, m->data + m->topic_len + 1,
					1, m->retained, &token);
		if (rc == MQTTCLIENT_SUCCESS) {
			m->token = token;
			list_append(&bus->inflight, list_pop(batch));
			sent++;
		} else if (rc == MQTTCLIENT_MAX_MESSAGES_INFLIGHT || !MQTTClient_isConnected(bus->client)) {
			break;
		} else {
			log_error("dropped an event to '%s' that the MQTT client refused (%s)", m->data,
				  MQTTClient_strerror(rc));
			free(list_pop(batch));
			refused++;
			rc = MQTTCLIENT_SUCCESS;
		}
	}
	/* Paho reports a QoS 1 publish as done when the socket died under it. */
	if (rc == MQTTCLIENT_SUCCESS && sent > 0 && !MQTTClient_isConnected(bus->client))
		rc = MQTTCLIENT_DISCONNECTED;
	pthread_mutex_lock(&bus->mu);
	list_prepend(&bus->outbox, batch);
	bus->published += sent;
	bus->dropped += refused;
	pthread_mutex_unlock(&bus->mu);
	if (rc == MQTTCLIENT_SUCCESS)
		return 0;
	if (rc == MQTTCLIENT_MAX_MESSAGES_INFLIGHT)
		return 1;
	connection_lost(bus, "publish", rc);
	return -1;
}

/* Called with bus->mu held; moves up to SEND_BATCH messages off the outbox. */
static struct msg_list take_batch(struct mqtt_bus *bus)
{
	struct msg_list batch = { 0 };
	while (batch.n < SEND_BATCH && bus->outbox.head) {
		struct msg *m = list_pop(&bus->outbox);
		if (m->tracked && m->seq < bus->discard_below)
			free(m); /* discarded while in flight, back after a lost connection */
		else
			list_append(&batch, m);
	}
	return batch;
}

static void wait_until(struct mqtt_bus *bus, int64_t wait_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&bus->wake, &bus->mu, &until);
}

/*
 * The one thread that calls Paho. While up it alternates: send what the
 * outbox holds, read what the broker sent, and when neither had work,
 * sleep until an event is queued or the next poll of the socket is due.
 */
static void *bus_thread(void *arg)
{
	struct mqtt_bus *bus = arg;
	int64_t last_traffic_ms = 0; /* when a round last sent or read anything */
	pthread_mutex_lock(&bus->mu);
	while (bus->running || (bus->state == BUS_UP && bus->outbox.head)) {
		int64_t now = mono_ms();
		if (bus->state == BUS_DOWN) {
			if (!bus->running)
				break;
			if (now >= bus->next_attempt_ms) {
				pthread_mutex_unlock(&bus->mu);
				int rc = connect_and_subscribe(bus);
				pthread_mutex_lock(&bus->mu);
				if (rc == 0) {
					bus->state = BUS_UP;
					bus->backoff_ms = BACKOFF_MIN_MS;
				} else {
					if (rc > 0 && bus->backoff_ms > REFUSED_MAX_MS)
						bus->backoff_ms = REFUSED_MAX_MS; /* it answers: soon */
					schedule_retry(bus);
				}
				continue;
			}
			int64_t wait_ms = bus->next_attempt_ms - now;
			wait_until(bus, wait_ms < 1 ? 1 : wait_ms > 1000 ? 1000 : wait_ms);
			continue;
		}
		struct msg_list batch = take_batch(bus);
		int had_batch = batch.head != NULL;
		pthread_mutex_unlock(&bus->mu);
		int sent = had_batch ? send_batch(bus, &batch) : 0, unacknowledged = 0;
		int handled = sent < 0 ? -1 : pump_incoming(bus, &unacknowledged);
		if (handled >= 0 && bus->sync_due_ms && mono_ms() >= bus->sync_due_ms) {
			/* A broker that accepts the marker but never delivers it (an ACL
			 * that lets the service read the topic but not write it) must not
			 * keep call control closed for good. */
			log_warn(
			    "the replay marker on '%s' did not come back within %d ms; taking the replay as "
			    "complete",
			    bus->sync_topic, SYNC_WAIT_MS);
			synced(bus);
		}
		if (had_batch || handled > 0)
			last_traffic_ms = now;
		pthread_mutex_lock(&bus->mu);
		if (handled >= 0) {
			bus->unacked = bus->inflight.n;
			bus->unacked_since_ms = bus->inflight.head ? bus->inflight.head->queued_ms : 0;
		}
		update_settled(bus);
		if (handled != 0 || (bus->outbox.head && sent == 0))
			continue; /* more to read or to send; a full window waits below */
		if (!bus->running)
			break; /* mqtt_bus_stop has waited for the in-flight events */
		/* Acknowledgements are due soon after a burst; when all is quiet the
		 * socket is still read often enough for presence to stay fresh,
		 * and an idle service wakes 10 times a second. */
		wait_until(bus, unacknowledged > 0                 ? ACTIVE_POLL_MS
				: now - last_traffic_ms < QUIET_MS ? QUIET_POLL_MS
								   : IDLE_POLL_MS);
	}
	pthread_mutex_unlock(&bus->mu);
	return NULL;
}

struct mqtt_bus *mqtt_bus_start(const struct mqtt_bus_config *cfg, const struct mqtt_bus_callbacks *cb)
{
	struct mqtt_bus *bus = xcalloc(1, sizeof(*bus));
	bus->cfg = *cfg;
	bus->cb = *cb;
	bus->backoff_ms = BACKOFF_MIN_MS;
	bus->running = 1;
	bus->next_seq = bus->settled_below = 1;

	unsigned char rnd[4];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	char client_id[32];
	snprintf(client_id, sizeof(client_id), "callsignal-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	snprintf(bus->sync_topic, sizeof(bus->sync_topic), "callsignal/sync/%s", client_id);

	int rc = split_urls(bus) == 0 ? MQTTClient_create(&bus->client, bus->uris[0], client_id,
							  MQTTCLIENT_PERSISTENCE_NONE, NULL)
				      : MQTTCLIENT_BAD_STRUCTURE;
	if (rc != MQTTCLIENT_SUCCESS) {
		log_error("cannot use the broker URL '%s' (code %d)", cfg->url, rc);
		free(bus->uris);
		free(bus->uri_text);
		free(bus);
		return NULL;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&bus->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&bus->mu, NULL);
	if (pthread_create(&bus->thread, NULL, bus_thread, bus) != 0) {
		log_error("cannot start the broker thread");
		MQTTClient_destroy(&bus->client);
		free(bus->uris);
		free(bus->uri_text);
		free(bus);
		return NULL;
	}
	return bus;
}

void mqtt_bus_stop(struct mqtt_bus *bus)
{
	if (!bus)
		return;
	/* Give the outbox up to 2 s to be sent and acknowledged, then stop the thread. */
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&bus->mu);
		int pending = (bus->outbox.head || bus->unacked > 0) && bus->state == BUS_UP;
		pthread_mutex_unlock(&bus->mu);
		if (!pending)
			break;
		struct timespec ts = { 0, 10 * 1000000 };
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&bus->mu);
	bus->running = 0;
	pthread_cond_signal(&bus->wake);
	pthread_mutex_unlock(&bus->mu);
	pthread_join(bus->thread, NULL);

	settle_acked(bus);
	if (bus->outbox.n + bus->inflight.n > 0)
		log_warn("stopping with %zu events the broker has not acknowledged (%zu never sent)",
			 bus->outbox.n + bus->inflight.n, bus->outbox.n);
	if (MQTTClient_isConnected(bus->client))
		MQTTClient_disconnect(bus->client, 1000); /* a last second for the in-flight ones */
	MQTTClient_destroy(&bus->client);
	list_free(&bus->outbox);
	list_free(&bus->inflight);
	pthread_mutex_destroy(&bus->mu);
	pthread_cond_destroy(&bus->wake);
	free(bus->uris);
	free(bus->uri_text);
	free(bus);
}

/* Queues one event; the bus thread sends it after those queued before. Returns its seq. */
static uint64_t enqueue(struct mqtt_bus *bus, const char *topic, const char *payload, size_t len,
			int retained, int tracked)
{
	size_t tlen = strlen(topic);
	struct msg *m = xmalloc(sizeof(*m) + tlen + 1 + len);
	m->topic_len = tlen;
	m->payload_len = len;
	m->token = 0;
	m->retained = retained;
	m->tracked = tracked;
	m->queued_ms = mono_ms();
	memcpy(m->data, topic, tlen + 1);
	memcpy(m->data + tlen + 1, payload, len);

	pthread_mutex_lock(&bus->mu);
	enforce_cap(bus, 1);
	uint64_t seq = m->seq = bus->next_seq++;
	list_append(&bus->outbox, m);
	/* The bus thread drains the whole outbox before it sleeps again, so
	 * only the first message of a burst needs to wake it. */
	if (bus->outbox.n == 1)
		pthread_cond_signal(&bus->wake);
	pthread_mutex_unlock(&bus->mu);
	return seq; /* m may be sent and freed by now */
}

void mqtt_bus_publish(struct mqtt_bus *bus, const char *topic, const char *payload, size_t len)
{
	enqueue(bus, topic, payload, len, 0, 0);
}

void mqtt_bus_publish_retained(struct mqtt_bus *bus, const char *topic, const char *payload, size_t len)
{
	enqueue(bus, topic, payload, len, 1, 0);
}

uint64_t mqtt_bus_publish_tracked(struct mqtt_bus *bus, const char *topic, const char *payload, size_t len,
				  int retained)
{
	return enqueue(bus, topic, payload, len, retained, 1);
}

uint64_t mqtt_bus_settled_below(struct mqtt_bus *bus)
{
	pthread_mutex_lock(&bus->mu);
	uint64_t v = bus->settled_below;
	pthread_mutex_unlock(&bus->mu);
	return v;
}

size_t mqtt_bus_discard_tracked(struct mqtt_bus *bus)
{
	size_t n = 0;
	pthread_mutex_lock(&bus->mu);
	/* Those in flight now are the bus thread's: should their connection drop, they come back
	 * to the outbox and take_batch drops them then. */
	bus->discard_below = bus->next_seq;
	struct msg_list keep = { 0 };
	while (bus->outbox.head) {
		struct msg *m = list_pop(&bus->outbox);
		if (m->tracked) {
			free(m);
			n++;
		} else {
			list_append(&keep, m);
		}
	}
	bus->outbox = keep;
	bus->dropped += n;
	pthread_mutex_unlock(&bus->mu);
	return n;
}

int mqtt_bus_is_up(struct mqtt_bus *bus)
{
	pthread_mutex_lock(&bus->mu);
	int up = bus->state == BUS_UP;
	pthread_mutex_unlock(&bus->mu);
	return up;
}

void mqtt_bus_stats(struct mqtt_bus *bus, struct mqtt_bus_stats *out)
{
	pthread_mutex_lock(&bus->mu);
	out->published = bus->published;
	out->dropped = bus->dropped;
	out->queued = bus->outbox.n + bus->unacked;
	int64_t oldest = bus->unacked       ? bus->unacked_since_ms
			 : bus->outbox.head ? bus->outbox.head->queued_ms
					    : 0;
	out->oldest_age_ms = oldest ? mono_ms() - oldest : 0;
	pthread_mutex_unlock(&bus->mu);
}

/*
 * webhooks.c - see webhooks.h. One struct target per URL and lane: its
 * queue (a singly linked FIFO), its counters and its thread, which sleeps
 * on the target's condition variable between attempts so that a stop cuts
 * a backoff short. targets[u * lanes + l] is lane l of URL u.
 */
#include "webhooks.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "token.h"
#include "util.h"

#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS   30000
#define SIGNATURE_TTL_S  300

struct pending {
	struct pending *next;
	int64_t raised; /* monotonic ms */
	size_t len;
	char body[]; /* NUL-terminated */
};

struct target {
	struct webhooks *w;
	char *url;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	struct pending *head, *tail;
	size_t len;
	int stopping;
	uint64_t delivered, failed, rejected, overflowed;
};

struct webhooks {
	struct webhooks_config cfg;
	struct target *targets;
	size_t n;        /* URLs x lanes */
	size_t lane_max; /* queue_max split over the lanes */
};

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	(void)ptr;
	(void)ctx;
	return size * nmemb;
}

/* Ends an attempt in flight once webhooks_stop was called, so a hanging receiver cannot hold the stop. */
static int abort_on_stop(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	struct target *t = ctx;
	return __atomic_load_n(&t->stopping, __ATOMIC_RELAXED);
}

/* One POST of p to t. Returns the HTTP status, or 0 on a connection error or timeout (*why set). */
static long attempt(struct target *t, CURL *curl, const struct pending *p, char *why, size_t why_len)
{
	const struct webhooks_config *cfg = &t->w->cfg;
	char *jwt = token_webhook(cfg->secret, p->body, p->len, (int64_t)time(NULL), SIGNATURE_TTL_S);
	if (!jwt) {
		snprintf(why, why_len, "cannot sign the body");
		return 0;
	}
	struct sbuf auth;
	sbuf_init(&auth, strlen(jwt) + 32);
	sbuf_addf(&auth, "Authorization: %s", jwt);
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/webhook+json");
	headers = curl_slist_append(headers, auth.buf);
	curl_easy_setopt(curl, CURLOPT_URL, t->url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	const char *data = p->body; /* a pointer, for curl's type checks */
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)p->len);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout_s * 1000.0));
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(cfg->timeout_s * 1000.0));
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "callsignal-webhooks");
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, t);
	long status = 0;
	CURLcode rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(why, why_len, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(headers);
	sbuf_release(&auth);
	free(jwt);
	return status;
}

/* Sleeps until the monotonic time due or a stop. Called with t->mu held. Returns 1 when stopping. */
static int sleep_until(struct target *t, int64_t due)
{
	struct timespec until = { (time_t)(due / 1000), (long)(due % 1000) * 1000000 };
	while (!t->stopping && mono_ms() < due)
		pthread_cond_timedwait(&t->wake, &t->mu, &until);
	return t->stopping;
}

static void *deliver_thread(void *arg)
{
	struct target *t = arg;
	const struct webhooks_config *cfg = &t->w->cfg;
	CURL *curl = curl_easy_init();
	if (!curl) {
		log_error("webhooks to '%s' cannot start: curl_easy_init failed", t->url);
		return NULL;
	}
	pthread_mutex_lock(&t->mu);
	for (;;) {
		while (!t->head && !t->stopping)
			pthread_cond_wait(&t->wake, &t->mu);
		if (t->stopping)
			break;
		struct pending *p = t->head; /* stays at the head, so a post cannot reorder it */
		int64_t give_up = p->raised + (int64_t)(cfg->retry_s * 1000.0);
		int64_t backoff = BACKOFF_FIRST_MS;
		int tries = 0;
		long status;
		char why[CURL_ERROR_SIZE + 32];
		for (;;) {
			pthread_mutex_unlock(&t->mu);
			why[0] = '\0';
			status = attempt(t, curl, p, why, sizeof(why));
			tries++;
			if (status >= 500)
				snprintf(why, sizeof(why), "HTTP %ld", status);
			pthread_mutex_lock(&t->mu);
			if ((status >= 200 && status < 500) || t->stopping)
				break;
			int64_t now = mono_ms();
			if (now >= give_up)
				break;
			if (sleep_until(t, now + backoff < give_up ? now + backoff : give_up))
				break;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
		if (t->stopping && !(status >= 200 && status < 500))
			break; /* still at the head: counted with the rest below */
		t->head = p->next;
		if (!t->head)
			t->tail = NULL;
		t->len--;
		if (status >= 200 && status < 300) {
			t->delivered++;
		} else if (status >= 300 && status < 500) {
			t->rejected++;
			log_warn("webhook to '%s' refused with HTTP %ld; not sent again: %.120s", t->url,
				 status, p->body);
		} else {
			t->failed++;
			log_error(
			    "webhook to '%s' dropped after %d tries in %.1f s (%s); %llu dropped so far: "
			    "%.120s",
			    t->url, tries, (double)(mono_ms() - p->raised) / 1000.0, why,
			    (unsigned long long)t->failed, p->body);
		}
		free(p);
	}
	size_t left = t->len;
	while (t->head) {
		struct pending *p = t->head;
		t->head = p->next;
		free(p);
	}
	t->tail = NULL;
	t->len = 0;
	t->failed += left;
	pthread_mutex_unlock(&t->mu);
	if (left)
		log_error("webhooks to '%s': %zu event(s) not delivered at stop", t->url, left);
	curl_easy_cleanup(curl);
	return NULL;
}

static int url_is_http(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

struct webhooks *webhooks_start(const struct webhooks_config *cfg)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("webhooks cannot start: curl_global_init failed");
		return NULL;
	}
	struct webhooks *w = xcalloc(1, sizeof(*w));
	w->cfg = *cfg;
	if (!w->cfg.lanes)
		w->cfg.lanes = 1;
	w->lane_max = (cfg->queue_max + w->cfg.lanes - 1) / w->cfg.lanes;
	char *list = xstrdup(cfg->urls), *save = NULL;
	size_t cap = 0;
	for (char *url = strtok_r(list, ", \t", &save); url; url = strtok_r(NULL, ", \t", &save)) {
		if (!url_is_http(url)) {
			log_error("cannot post webhooks to '%s': not an http:// or https:// URL", url);
			goto fail;
		}
		for (size_t lane = 0; lane < w->cfg.lanes; lane++) {
			if (w->n == cap) {
				cap = cap ? cap * 2 : 2 * w->cfg.lanes;
				w->targets = xrealloc(w->targets, cap * sizeof(*w->targets));
			}
			struct target *t = &w->targets[w->n++];
			memset(t, 0, sizeof(*t));
			t->w = w;
			t->url = xstrdup(url);
			pthread_mutex_init(&t->mu, NULL);
			pthread_condattr_t ca;
			pthread_condattr_init(&ca);
			pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
			pthread_cond_init(&t->wake, &ca);
			pthread_condattr_destroy(&ca);
		}
	}
	if (!w->n) {
		log_error("WEBHOOK_URLS names no URL");
		goto fail;
	}
	for (size_t i = 0; i < w->n; i++) {
		if (pthread_create(&w->targets[i].thread, NULL, deliver_thread, &w->targets[i]) != 0) {
			log_error("cannot start the webhook thread of '%s'", w->targets[i].url);
			goto fail;
		}
		w->targets[i].started = 1;
	}
	free(list);
	return w;
fail:
	free(list);
	webhooks_stop(w);
	return NULL;
}

/* FNV-1a: spreads keys over the lanes; not a hash table, so no seed is needed. */
static size_t lane_of(const char *key, size_t lanes)
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h % lanes);
}

void webhooks_post(struct webhooks *w, const char *key, const char *body, size_t len)
{
	int64_t now = mono_ms();
	for (size_t i = lane_of(key, w->cfg.lanes); i < w->n; i += w->cfg.lanes) {
		struct target *t = &w->targets[i];
		pthread_mutex_lock(&t->mu);
		int full = t->len >= w->lane_max;
		uint64_t overflowed = full ? ++t->overflowed : 0;
		if (!full) {
			struct pending *p = xmalloc(sizeof(*p) + len + 1);
			p->next = NULL;
			p->raised = now;
			p->len = len;
			memcpy(p->body, body, len);
			p->body[len] = '\0';
			if (t->tail)
				t->tail->next = p;
			else
				t->head = p;
			t->tail = p;
			t->len++;
			pthread_cond_signal(&t->wake);
		}
		pthread_mutex_unlock(&t->mu);
		/* One line per power of two, so a dead receiver cannot flood the log. */
		if (full && (overflowed & (overflowed - 1)) == 0)
			log_error("a webhook queue of '%s' is full (%zu events): %llu event(s) dropped there "
				  "so far",
				  t->url, w->lane_max, (unsigned long long)overflowed);
	}
}

void webhooks_stats(struct webhooks *w, struct webhooks_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < w->n; i++) {
		struct target *t = &w->targets[i];
		pthread_mutex_lock(&t->mu);
		out->delivered += t->delivered;
		out->failed += t->failed;
		out->rejected += t->rejected;
		out->overflowed += t->overflowed;
		out->queued += t->len;
		pthread_mutex_unlock(&t->mu);
	}
}

void webhooks_stop(struct webhooks *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++) {
		struct target *t = &w->targets[i];
		pthread_mutex_lock(&t->mu);
		__atomic_store_n(&t->stopping, 1, __ATOMIC_RELAXED); /* read unlocked by abort_on_stop */
		pthread_cond_signal(&t->wake);
		pthread_mutex_unlock(&t->mu);
	}
	for (size_t i = 0; i < w->n; i++) {
		struct target *t = &w->targets[i];
		if (t->started)
			pthread_join(t->thread, NULL);
		while (t->head) {
			struct pending *p = t->head;
			t->head = p->next;
			free(p);
		}
		pthread_mutex_destroy(&t->mu);
		pthread_cond_destroy(&t->wake);
		free(t->url);
	}
	free(w->targets);
	free(w);
	curl_global_cleanup();
}

/* Paho MQTTAsync glue of the load generator; see mqtt_clients.h. */
#include "mqtt_clients.h"
#include "stats.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SUBSCRIBE_BATCH = 500 };

struct mqtt_client {
	MQTTAsync h;
	mqtt_msg_fn on_msg;
	void *ctx;
	char *will_topic;
	MQTTAsync_willOptions will;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int connect_done, connected, lost;
	long inflight; /* QoS 1 publishes not yet acknowledged */
	long publish_failed;
	int sub_pending, sub_failed;
	int disconnect_started, disconnect_done;
	long received;
};

static void deadline_after(struct timespec *ts, double s)
{
	clock_gettime(CLOCK_REALTIME, ts);
	long ns = ts->tv_nsec + (long)((s - (double)(long)s) * 1e9);
	ts->tv_sec += (time_t)s + ns / 1000000000L;
	ts->tv_nsec = ns % 1000000000L;
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *d)
{
	(void)d;
	struct mqtt_client *c = ctx;
	pthread_mutex_lock(&c->mu);
	c->connect_done = c->connected = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *d)
{
	struct mqtt_client *c = ctx;
	fprintf(stderr, "loadgen: MQTT connect failed: %d %s\n", d ? d->code : -1,
		d && d->message ? d->message : "");
	pthread_mutex_lock(&c->mu);
	c->connect_done = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void on_connection_lost(void *ctx, char *cause)
{
	struct mqtt_client *c = ctx;
	fprintf(stderr, "loadgen: MQTT connection lost: %s\n", cause ? cause : "?");
	pthread_mutex_lock(&c->mu);
	c->lost = 1;
	c->connected = 0;
	/* Nothing in flight will be acknowledged any more. */
	c->publish_failed += c->inflight;
	c->inflight = 0;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct mqtt_client *c = ctx;
	(void)topic_len; /* Paho NUL-terminates the topic unless it holds a NUL. */
	__atomic_add_fetch(&c->received, 1, __ATOMIC_RELAXED);
	if (c->on_msg)
		c->on_msg(c->ctx, topic, m->payload, (size_t)m->payloadlen);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_publish_ok(void *ctx, MQTTAsync_successData *d)
{
	(void)d;
	struct mqtt_client *c = ctx;
	pthread_mutex_lock(&c->mu);
	if (c->inflight > 0)
		c->inflight--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void on_publish_fail(void *ctx, MQTTAsync_failureData *d)
{
	(void)d;
	struct mqtt_client *c = ctx;
	pthread_mutex_lock(&c->mu);
	if (c->inflight > 0)
		c->inflight--;
	c->publish_failed++;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void on_subscribe_ok(void *ctx, MQTTAsync_successData *d)
{
	(void)d; /* Mosquitto without an ACL grants every subscription asked. */
	struct mqtt_client *c = ctx;
	pthread_mutex_lock(&c->mu);
	c->sub_pending--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void on_disconnected(void *ctx, MQTTAsync_successData *d)
{
	(void)d;
	struct mqtt_client *c = ctx;
	pthread_mutex_lock(&c->mu);
	c->disconnect_done = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void on_disconnect_fail(void *ctx, MQTTAsync_failureData *d)
{
	on_disconnected(ctx, (MQTTAsync_successData *)d);
}

static void on_subscribe_fail(void *ctx, MQTTAsync_failureData *d)
{
	(void)d;
	struct mqtt_client *c = ctx;
	pthread_mutex_lock(&c->mu);
	c->sub_failed++;
	c->sub_pending--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

struct mqtt_client *mqtt_client_start(const char *url, const char *client_id, const char *will_topic,
				      mqtt_msg_fn on_msg, void *ctx)
{
	struct mqtt_client *c = xcalloc(1, sizeof *c);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->on_msg = on_msg;
	c->ctx = ctx;
	if (MQTTAsync_create(&c->h, url, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS) {
		free(c);
		return NULL;
	}
	MQTTAsync_setCallbacks(c->h, c, on_connection_lost, on_message, NULL);
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	o.keepAliveInterval = 60;
	o.cleansession = 1;
	o.maxInflight = 65535;
	o.connectTimeout = 30;
	o.onSuccess = on_connect_ok;
	o.onFailure = on_connect_fail;
	o.context = c;
	if (will_topic) {
		MQTTAsync_willOptions w = MQTTAsync_willOptions_initializer;
		c->will = w;
		c->will_topic = xstrdup(will_topic);
		c->will.topicName = c->will_topic;
		c->will.message = "";
		c->will.retained = 1;
		c->will.qos = 1;
		o.will = &c->will;
	}
	if (MQTTAsync_connect(c->h, &o) != MQTTASYNC_SUCCESS) {
		pthread_mutex_lock(&c->mu);
		c->connect_done = 1;
		pthread_mutex_unlock(&c->mu);
	}
	return c;
}

int mqtt_client_wait_connected(struct mqtt_client *c, double timeout_s)
{
	struct timespec dl;
	deadline_after(&dl, timeout_s);
	pthread_mutex_lock(&c->mu);
	while (!c->connect_done && pthread_cond_timedwait(&c->cv, &c->mu, &dl) == 0) {
	}
	int ok = c->connected;
	pthread_mutex_unlock(&c->mu);
	return ok ? 0 : -1;
}

int mqtt_client_subscribe(struct mqtt_client *c, char *const *topics, int n, int qos, double timeout_s)
{
	int *qoss = xmalloc((size_t)SUBSCRIBE_BATCH * sizeof *qoss);
	for (int i = 0; i < SUBSCRIBE_BATCH; i++)
		qoss[i] = qos;
	int rc = 0;
	for (int off = 0; off < n && rc == 0; off += SUBSCRIBE_BATCH) {
		int cnt = n - off < SUBSCRIBE_BATCH ? n - off : SUBSCRIBE_BATCH;
		MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
		r.onSuccess = on_subscribe_ok;
		r.onFailure = on_subscribe_fail;
		r.context = c;
		pthread_mutex_lock(&c->mu);
		c->sub_pending++;
		pthread_mutex_unlock(&c->mu);
		if (MQTTAsync_subscribeMany(c->h, cnt, (char *const *)topics + off, qoss, &r) !=
		    MQTTASYNC_SUCCESS) {
			pthread_mutex_lock(&c->mu);
			c->sub_pending--;
			pthread_mutex_unlock(&c->mu);
			rc = -1;
		}
	}
	struct timespec dl;
	deadline_after(&dl, timeout_s);
	pthread_mutex_lock(&c->mu);
	while (c->sub_pending > 0 && pthread_cond_timedwait(&c->cv, &c->mu, &dl) == 0) {
	}
	if (c->sub_pending > 0 || c->sub_failed)
		rc = -1;
	pthread_mutex_unlock(&c->mu);
	free(qoss);
	return rc;
}

int mqtt_client_publish(struct mqtt_client *c, const char *topic, const void *payload, size_t len, int qos,
			int retained, int window)
{
	pthread_mutex_lock(&c->mu);
	while (window > 0 && qos > 0 && c->inflight >= window && c->connected)
		pthread_cond_wait(&c->cv, &c->mu);
	if (!c->connected) {
		pthread_mutex_unlock(&c->mu);
		return -1;
	}
	if (qos > 0)
		c->inflight++;
	pthread_mutex_unlock(&c->mu);

	MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
	if (qos > 0) {
		r.onSuccess = on_publish_ok;
		r.onFailure = on_publish_fail;
		r.context = c;
	}
	int rc = MQTTAsync_send(c->h, topic, (int)len, payload, qos, retained, &r);
	if (rc != MQTTASYNC_SUCCESS) {
		pthread_mutex_lock(&c->mu);
		if (qos > 0)
			c->inflight--;
		c->publish_failed++;
		pthread_mutex_unlock(&c->mu);
		return -1;
	}
	return 0;
}

long mqtt_client_flush(struct mqtt_client *c, double timeout_s)
{
	struct timespec dl;
	deadline_after(&dl, timeout_s);
	pthread_mutex_lock(&c->mu);
	while (c->inflight > 0 && pthread_cond_timedwait(&c->cv, &c->mu, &dl) == 0) {
	}
	long r = c->inflight > 0 ? -1 : c->publish_failed;
	pthread_mutex_unlock(&c->mu);
	return r;
}

long mqtt_client_received(struct mqtt_client *c)
{
	return __atomic_load_n(&c->received, __ATOMIC_RELAXED);
}

int mqtt_client_lost(struct mqtt_client *c)
{
	pthread_mutex_lock(&c->mu);
	int l = c->lost;
	pthread_mutex_unlock(&c->mu);
	return l;
}

void mqtt_client_disconnect(struct mqtt_client *c)
{
	if (c->disconnect_started)
		return;
	c->disconnect_started = 1;
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = 1000;
	d.onSuccess = on_disconnected;
	d.onFailure = on_disconnect_fail;
	d.context = c;
	if (!MQTTAsync_isConnected(c->h) || MQTTAsync_disconnect(c->h, &d) != MQTTASYNC_SUCCESS) {
		pthread_mutex_lock(&c->mu);
		c->disconnect_done = 1;
		pthread_mutex_unlock(&c->mu);
	}
}

void mqtt_client_free(struct mqtt_client *c)
{
	if (!c)
		return;
	mqtt_client_disconnect(c);
	struct timespec dl;
	deadline_after(&dl, 2.0);
	pthread_mutex_lock(&c->mu);
	while (!c->disconnect_done && pthread_cond_timedwait(&c->cv, &c->mu, &dl) == 0) {
	}
	pthread_mutex_unlock(&c->mu);
	MQTTAsync_destroy(&c->h);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->will_topic);
	free(c);
}

void mqtt_library_version(char *buf, size_t n)
{
	const char *v = "?";
	for (MQTTAsync_nameValue *nv = MQTTAsync_getVersionInfo(); nv && nv->name; nv++)
		if (strcmp(nv->name, "Version") == 0)
			v = nv->value;
	snprintf(buf, n, "Eclipse Paho C %s", v);
}

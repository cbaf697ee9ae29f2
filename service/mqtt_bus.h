/*
 * mqtt_bus.h - the service's one connection to the broker (the only
 * includer of MQTTClient.h).
 *
 * Connects, reconnects with backoff (1 s doubling to 5 s; at most 2 s after
 * a refused subscription), subscribes to the presence topics after every
 * connect, and publishes events as QoS 1.
 * After subscribing it publishes a marker to a topic of its own
 * (callsignal/sync/{clientId}); the broker delivers it after the retained
 * replay, so its arrival tells that the replay is complete (on_synced). A
 * refused marker, or one not back within 10 s, counts as arrived.
 * Publishing never blocks and never calls Paho: mqtt_bus_publish copies the
 * message into an outbox (under a leaf mutex, so it may be called while the
 * caller holds its own lock) and the bus thread sends it in order. A
 * message is kept until the broker has acknowledged it: it waits while the
 * broker is away, and one sent but unacknowledged when the connection
 * drops is sent again first after the reconnect (at least once, in order;
 * the broker may see it twice). Only the outbox cap (200,000 messages
 * waiting, the oldest dropped and counted first), a message the MQTT client
 * refuses (dropped and counted) or the end of the process loses one.
 *
 * The callbacks run on the bus thread, the only thread that calls Paho;
 * none of them may call back into the bus, except to queue messages with
 * mqtt_bus_publish and mqtt_bus_publish_retained (the outbox lock is not
 * held while a callback runs). Presence messages are read
 * within 10 ms of their arrival while there is traffic, within 100 ms when
 * the bus has been quiet for a second.
 */
#ifndef CALLSIGNAL_MQTT_BUS_H
#define CALLSIGNAL_MQTT_BUS_H

#include <stddef.h>
#include <stdint.h>

struct mqtt_bus;

struct mqtt_bus_config {
	const char *url;      /* borrowed for the life of the bus, like the others */
	const char *username; /* NULL: anonymous */
	const char *password;
	const char *ca_file;       /* for ssl:// and mqtts:// URLs */
	const char *subscription;  /* topic filter subscribed after every connect */
	const char *subscription2; /* a second one, or NULL, for the first replay only: dropped once
				    * on_synced has been called; a refusal is logged, not retried */
};

struct mqtt_bus_callbacks {
	void *ctx;
	/* A message arrived on the subscription. All pointers borrowed for the call. */
	void (*on_message)(void *ctx, const char *topic, size_t topic_len, const char *payload, size_t len);
	/* Connected, before subscribing: the retained replay follows. */
	void (*on_connected)(void *ctx);
	/* The connection is gone. */
	void (*on_lost)(void *ctx);
	/* The retained replay of this connection's subscriptions is complete. */
	void (*on_synced)(void *ctx);
};

/* Starts connecting in the background. Returns NULL when the URL is unusable. */
struct mqtt_bus *mqtt_bus_start(const struct mqtt_bus_config *cfg, const struct mqtt_bus_callbacks *cb);
/* Sends what the outbox holds (for up to 2 s), disconnects and frees the bus. */
void mqtt_bus_stop(struct mqtt_bus *bus);

/* Queues a QoS 1, non-retained message; topic and payload are copied. */
void mqtt_bus_publish(struct mqtt_bus *bus, const char *topic, const char *payload, size_t len);
/* Queues a QoS 1 retained message in the same order as mqtt_bus_publish; len 0 clears the topic. */
void mqtt_bus_publish_retained(struct mqtt_bus *bus, const char *topic, const char *payload, size_t len);
/*
 * For the shared outbox (outbox.c): queues like the two above and returns
 * the message's sequence number (increasing in queueing order, from 1).
 * mqtt_bus_settled_below: every message with a lower number is
 * acknowledged by the broker, or dropped (beyond the cap, refused by the
 * client, or discarded: the outbox then trims it from the shared store all
 * the same). mqtt_bus_discard_tracked drops every tracked message not yet
 * sent, and those in flight should they have to be sent again, for an
 * instance that no longer leads the outbox; returns how many it dropped now.
 */
uint64_t mqtt_bus_publish_tracked(struct mqtt_bus *bus, const char *topic, const char *payload, size_t len,
				  int retained);
uint64_t mqtt_bus_settled_below(struct mqtt_bus *bus);
size_t mqtt_bus_discard_tracked(struct mqtt_bus *bus);

/* 1 while connected and subscribed. */
int mqtt_bus_is_up(struct mqtt_bus *bus);

struct mqtt_bus_stats {
	uint64_t published; /* handed to Paho, resends included */
	uint64_t dropped;   /* refused by Paho or beyond the outbox cap */
	size_t queued;      /* waiting to be sent or for their PUBACK */
	/* How long the oldest of those has waited, ms; 0 when none. */
	int64_t oldest_age_ms;
};
void mqtt_bus_stats(struct mqtt_bus *bus, struct mqtt_bus_stats *out);

#endif

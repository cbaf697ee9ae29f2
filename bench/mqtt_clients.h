/* Real MQTT clients for the load generator, on Paho's asynchronous C API
 * (MQTTAsync): connect (optionally with a Last Will), subscribe to many
 * topics, publish with a bounded number of QoS 1 messages in flight, and
 * hand every received message to a callback. The only file of the bench
 * that includes MQTTAsync.h.
 *
 * Threads: Paho runs the callbacks on its own receive thread (one for all
 * clients of the process); everything else is called from the generator's
 * threads and blocks where the comment says so. */
#ifndef BENCH_MQTT_CLIENTS_H
#define BENCH_MQTT_CLIENTS_H

#include <stddef.h>

/* Called on Paho's thread for each message; topic and payload are borrowed
 * for the duration of the call (payload is not NUL-terminated). */
typedef void (*mqtt_msg_fn)(void *ctx, const char *topic, const char *payload, size_t len);

struct mqtt_client;

/* Creates a client and starts connecting (clean session, keep-alive 60 s).
 * will_topic may be NULL; otherwise the will is an empty retained QoS 1
 * message on that topic (a device's "offline"). on_msg may be NULL.
 * Returns NULL when Paho refuses to create the client. */
struct mqtt_client *mqtt_client_start(const char *url, const char *client_id, const char *will_topic,
				      mqtt_msg_fn on_msg, void *ctx);
/* Waits until the connection attempt finished. Returns 0 when connected. */
int mqtt_client_wait_connected(struct mqtt_client *c, double timeout_s);
/* Subscribes to n topics at qos in batches and waits for every SUBACK.
 * Returns 0 when all were granted. */
int mqtt_client_subscribe(struct mqtt_client *c, char *const *topics, int n, int qos, double timeout_s);
/* Queues one publish; blocks while `window` QoS 1 messages of this client
 * are unacknowledged (window 0 = no bound). Returns 0 when queued. */
int mqtt_client_publish(struct mqtt_client *c, const char *topic, const void *payload, size_t len, int qos,
			int retained, int window);
/* Waits until every queued publish was acknowledged (or failed). Returns
 * the number of failed publishes so far, or -1 on timeout. */
long mqtt_client_flush(struct mqtt_client *c, double timeout_s);
/* Messages received by this client so far. */
long mqtt_client_received(struct mqtt_client *c);
/* Whether the connection was lost after it was made. */
int mqtt_client_lost(struct mqtt_client *c);
/* Starts a clean DISCONNECT (so the will is not sent) without waiting;
 * lets a caller disconnect thousands of clients in parallel. */
void mqtt_client_disconnect(struct mqtt_client *c);
/* Disconnects (if not yet), waits for it (at most 2 s) and frees. */
void mqtt_client_free(struct mqtt_client *c);

/* "Eclipse Paho C <version>" into buf. */
void mqtt_library_version(char *buf, size_t n);

#endif

/*
 * outbox.h - drains the shared outbox of a shared store (Redis) to the
 * broker, in order, one instance at a time. core starts it when the store
 * is shared; nothing else calls it.
 *
 * A transition writes the MQTT messages it causes into the store in the
 * same atomic unit as its state (store.h's outbox_put), so they exist if and
 * only if the transition happened. Every instance runs this thread; the one
 * holding the store's lease (3 s, renewed every second) reads the messages
 * in order, hands them to its broker connection, and removes them from the
 * store once the broker has acknowledged them. When that instance dies, or
 * its broker has been away for 10 s, another takes the lease within about
 * 3 s and starts from the oldest message still in the store: every message
 * reaches the broker at least once, in the order of the transitions (the
 * event ids let clients drop a repeat), and the retained call topics end on
 * the newest state. What one instance publishes directly (presence it
 * clears) does not go through here.
 */
#ifndef CALLSIGNAL_OUTBOX_H
#define CALLSIGNAL_OUTBOX_H

struct store;
struct mqtt_bus;
struct outbox;

/* Starts the drain thread; store, bus and me (this instance's name, copied) are borrowed. NULL on failure. */
struct outbox *outbox_start(struct store *store, struct mqtt_bus *bus, const char *me);
/* 1 while this instance leads (publishes) the outbox. */
int outbox_leading(struct outbox *o);
/* Lets the broker acknowledge what was sent (briefly), gives the lease up and stops. NULL: nothing. */
void outbox_stop(struct outbox *o);

#endif

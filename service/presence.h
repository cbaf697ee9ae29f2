/*
 * presence.h - PURE set of online users and their devices.
 *
 * A user is online while at least one device (MQTT client id) holds a
 * retained User on users/{userId}/presence/{clientId}. The User shown for
 * a user is the one its devices published last. Users are kept in the order
 * they came online, which is the order of GET /users.
 *
 * Not thread-safe: core holds its lock around every call. Pointers returned
 * are borrowed until the next call that changes the set.
 */
#ifndef CALLSIGNAL_PRESENCE_H
#define CALLSIGNAL_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#include "dict.h"
#include "model.h"

struct presence_device;

struct presence_user {
	struct user_info info;
	struct presence_device *devices;
	size_t ndevices;
	struct presence_user *prev, *next; /* order of coming online */
};

struct presence {
	struct dict users; /* id -> struct presence_user, key borrowed from info.id */
	struct presence_user *head, *tail;
	uint64_t version;    /* changes whenever the list of GET /users would */
	struct dict carried; /* "user/client" -> struct carried_lease: leases kept over a clear */
};

enum presence_change {
	PRESENCE_UNCHANGED,
	PRESENCE_CAME_ONLINE,  /* the user's first device */
	PRESENCE_UPDATED,      /* another device, or new name/location */
	PRESENCE_DEVICE_GONE,  /* a device left, the user is still online */
	PRESENCE_WENT_OFFLINE, /* the user's last device left */
};

void presence_init(struct presence *p);
void presence_release(struct presence *p);

/* A device announced user u (borrowed; copied as needed). */
enum presence_change presence_device_up(struct presence *p, const struct user_info *u, const char *client_id);
/* A device's presence was cleared (Last Will or clean disconnect). */
enum presence_change presence_device_down(struct presence *p, const char *user_id, const char *client_id);
/* Forgets everybody (the broker connection restarted; its replay rebuilds the set). */
void presence_clear(struct presence *p);

/*
 * The presence lease, for brokers that lose a device's Last Will (a
 * clustered broker whose node died). A device that publishes its presence
 * again while listed is taken as refreshing it and holds a lease:
 * presence_device_seen (after presence_device_up, with the wall time in
 * ms) records when it was last heard. presence_expired writes into out (up
 * to max) the leased devices last heard before before_ms, ids borrowed
 * until the next change, and returns their count; core clears them.
 * Devices that never refresh hold no lease: their Last Will ends them.
 * presence_clear keeps the leases: a device the replay brings back holds
 * its lease again with the time it was last heard before, so a device
 * whose broker node died together with the service's does not come back
 * as fresh.
 */
struct presence_gone {
	const char *user_id, *client_id;
};
void presence_device_seen(struct presence *p, const char *user_id, const char *client_id, int64_t now_ms);
size_t presence_expired(const struct presence *p, int64_t before_ms, struct presence_gone *out, size_t max);

const struct presence_user *presence_find(const struct presence *p, const char *user_id);
size_t presence_count(const struct presence *p);

#endif

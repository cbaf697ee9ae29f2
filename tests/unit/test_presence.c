/*
 * test_presence.c - the online set: devices, users, order, version.
 */
#include "check.h"
#include "presence.h"

static struct user_info alice = { "alice", "Alice", "Paris" };
static struct user_info alice_moved = { "alice", "Alice", "Rome" };
static struct user_info bob = { "bob", "Bob", "" };

static void first_device_brings_a_user_online(void)
{
	struct presence p;
	presence_init(&p);
	uint64_t v = p.version;
	CHECK(presence_device_up(&p, &alice, "phone") == PRESENCE_CAME_ONLINE);
	CHECK(p.version != v);
	const struct presence_user *u = presence_find(&p, "alice");
	CHECK(u && u->ndevices == 1);
	CHECK_STR(u->info.location, "Paris");
	CHECK(presence_count(&p) == 1);
	presence_release(&p);
}

static void user_stays_online_while_another_device_remains(void)
{
	struct presence p;
	presence_init(&p);
	presence_device_up(&p, &alice, "phone");
	CHECK(presence_device_up(&p, &alice, "laptop") == PRESENCE_UPDATED);
	CHECK(presence_device_up(&p, &alice, "laptop") == PRESENCE_UNCHANGED);
	CHECK(presence_device_down(&p, "alice", "phone") == PRESENCE_DEVICE_GONE);
	CHECK(presence_find(&p, "alice") != NULL);
	CHECK(presence_device_down(&p, "alice", "phone") == PRESENCE_UNCHANGED);
	CHECK(presence_device_down(&p, "alice", "laptop") == PRESENCE_WENT_OFFLINE);
	CHECK(presence_find(&p, "alice") == NULL && presence_count(&p) == 0);
	CHECK(presence_device_down(&p, "nobody", "x") == PRESENCE_UNCHANGED);
	presence_release(&p);
}

static void latest_profile_is_shown(void)
{
	struct presence p;
	presence_init(&p);
	presence_device_up(&p, &alice, "phone");
	uint64_t v = p.version;
	CHECK(presence_device_up(&p, &alice_moved, "laptop") == PRESENCE_UPDATED);
	CHECK(p.version != v);
	CHECK_STR(presence_find(&p, "alice")->info.location, "Rome");
	presence_release(&p);
}

static void users_are_listed_in_the_order_they_came_online(void)
{
	struct presence p;
	presence_init(&p);
	presence_device_up(&p, &bob, "b1");
	presence_device_up(&p, &alice, "a1");
	CHECK_STR(p.head->info.id, "bob");
	CHECK_STR(p.head->next->info.id, "alice");
	presence_device_down(&p, "bob", "b1");
	CHECK_STR(p.head->info.id, "alice");
	CHECK(p.head == p.tail && !p.head->next && !p.head->prev);
	presence_device_up(&p, &bob, "b2");
	CHECK_STR(p.tail->info.id, "bob");
	presence_release(&p);
}

static void clear_forgets_everyone(void)
{
	struct presence p;
	presence_init(&p);
	presence_device_up(&p, &bob, "b1");
	presence_device_up(&p, &alice, "a1");
	presence_clear(&p);
	CHECK(presence_count(&p) == 0 && !p.head && !p.tail && !presence_find(&p, "bob"));
	CHECK(presence_device_up(&p, &bob, "b1") == PRESENCE_CAME_ONLINE);
	presence_release(&p);
}

static void only_devices_that_refreshed_expire_when_silent(void)
{
	struct presence p;
	struct presence_gone gone[4];
	presence_init(&p);
	presence_device_up(&p, &bob, "b1");
	presence_device_seen(&p, "bob", "b1", 1000); /* first heard: no lease yet */
	presence_device_up(&p, &alice, "a1");
	presence_device_seen(&p, "alice", "a1", 1000);
	presence_device_up(&p, &alice, "a1");
	presence_device_seen(&p, "alice", "a1", 2000);   /* refreshed: a lease */
	CHECK(presence_expired(&p, 2000, gone, 4) == 0); /* heard at 2000, not before */
	CHECK(presence_expired(&p, 9000, gone, 4) == 1);
	CHECK_STR(gone[0].user_id, "alice");
	CHECK_STR(gone[0].client_id, "a1");
	presence_device_seen(&p, "alice", "a1", 9500);
	CHECK(presence_expired(&p, 9000, gone, 4) == 0);
	CHECK(presence_expired(&p, 99000, gone, 0) == 0); /* room for none */
	presence_device_seen(&p, "nobody", "x", 1);       /* unknown devices are ignored */
	presence_release(&p);
}

static void a_lease_outlives_a_clear_with_its_last_time_heard(void)
{
	struct presence p;
	struct presence_gone gone[4];
	presence_init(&p);
	presence_device_up(&p, &alice, "a1");
	presence_device_seen(&p, "alice", "a1", 1000);
	presence_device_seen(&p, "alice", "a1", 2000); /* leased, last heard at 2000 */
	presence_device_up(&p, &bob, "b1");
	presence_device_seen(&p, "bob", "b1", 2000); /* no lease */
	presence_clear(&p);                          /* the broker connection restarted */
	presence_device_up(&p, &alice, "a1");        /* the replay */
	presence_device_seen(&p, "alice", "a1", 50000);
	presence_device_up(&p, &bob, "b1");
	presence_device_seen(&p, "bob", "b1", 50000);
	CHECK(presence_expired(&p, 40000, gone, 4) == 1);
	CHECK_STR(gone[0].user_id, "alice");
	presence_device_seen(&p, "alice", "a1", 60000); /* heard again: fresh */
	CHECK(presence_expired(&p, 40000, gone, 4) == 0);
	presence_release(&p);
}

int main(void)
{
	RUN(first_device_brings_a_user_online);
	RUN(user_stays_online_while_another_device_remains);
	RUN(latest_profile_is_shown);
	RUN(users_are_listed_in_the_order_they_came_online);
	RUN(clear_forgets_everyone);
	RUN(only_devices_that_refreshed_expire_when_silent);
	RUN(a_lease_outlives_a_clear_with_its_last_time_heard);
	return check_done();
}

/*
 * webhooks.h - signed webhooks out to the app's backend (libcurl).
 *
 * core hands over each rendered event with webhooks_post, which copies it
 * into a bounded FIFO queue per receiver URL and returns at once: call
 * control never waits for a receiver. Each URL has `lanes` queues, each
 * with its thread and connection; an event goes to the lane its key (the
 * call id, or the user id of a presence change) hashes to. A lane's thread
 * POSTs its queue's head, signed (token_webhook: "Authorization: <HS256
 * JWT>" whose sha256 claim is the body's hash, as LiveKit signs its
 * webhooks), and moves on only when it is delivered or given up, so the
 * events of one key reach a receiver in the order they were raised, while
 * a slow answer holds up only its lane.
 *
 * A delivery fails on a connection error, a timeout or a 5xx answer; it is
 * tried again after 0.25 s, 0.5 s, 1 s, ... (at most 30 s apart) until
 * retry_s have passed since the event was raised, then dropped with an
 * error log and counted in failed. Any other answer (2xx, 4xx) ends the
 * delivery: a 4xx means the receiver refuses the event, so it is counted
 * in rejected and not tried again. queue_max is split evenly over a URL's
 * lanes; when a lane's queue is full, a new event is dropped for that URL
 * and counted in overflowed (the waiting ones keep their order). At stop, what is still queued is dropped,
 * counted in failed, and logged.
 *
 * webhooks.c is the only includer of curl.h. Called by main (start, stop)
 * and core (post, under core's lock or a call's order stripe: the queue's
 * lock is a leaf that does no I/O).
 */
#ifndef CALLSIGNAL_WEBHOOKS_H
#define CALLSIGNAL_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

struct webhooks_config {
	const char *urls;   /* one or more http(s) URLs, separated by commas or spaces; borrowed */
	const char *secret; /* HS256 signing secret; borrowed for the life of the webhooks */
	double timeout_s;   /* of one delivery attempt */
	double retry_s;     /* how long after an event was raised it is still tried */
	size_t queue_max;   /* events waiting per URL */
	size_t lanes;       /* concurrent deliveries per URL (0 counts as 1) */
};

struct webhooks_stats {
	uint64_t delivered;  /* answered 2xx */
	uint64_t failed;     /* given up after retry_s, or left at stop */
	uint64_t rejected;   /* answered 4xx */
	uint64_t overflowed; /* dropped because the queue was full */
	size_t queued;       /* waiting now, all URLs */
};

struct webhooks;

/* Starts the delivery threads, lanes per URL. NULL (logged) when a URL is not http(s) or a thread cannot
 * start. */
struct webhooks *webhooks_start(const struct webhooks_config *cfg);
/* Queues a copy of the JSON body (len bytes) for every URL, in the lane of key (borrowed); never blocks on
 * I/O. */
void webhooks_post(struct webhooks *w, const char *key, const char *body, size_t len);
/* Counters summed over the URLs. */
void webhooks_stats(struct webhooks *w, struct webhooks_stats *out);
/* Stops the threads (an attempt in flight is cut short) and frees w; NULL is a no-op. */
void webhooks_stop(struct webhooks *w);

#endif

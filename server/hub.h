/* The hub: the last modify index of every topic, and the blocking queries
 * waiting on topics. A topic is a string naming what a write touched
 * ("svc:web", "node:n1", "kv:app/"). The store publishes the topics of each
 * committed write; a waiter wakes when one of its topics moves past the index
 * it was given, or when its deadline passes, and never for other writes. */
#ifndef WEFT_HUB_H
#define WEFT_HUB_H

#include <stddef.h>
#include <stdint.h>

/* Topics one waiter may watch (a proxy's snapshot watches a few per
 * upstream). Links are allocated when a waiter is armed. */
#define HUB_MAX_TOPICS 4096

struct hub;
struct hub_waiter;

typedef void (*hub_wake_fn)(struct hub_waiter *w, int timed_out);

/* Embedded in its owner; the fields after "wake" are the hub's own. */
struct hub_waiter {
	hub_wake_fn wake;
	void *owner;
	/* private */
	struct hub_link {
		struct hub_topic *_topic;
		struct hub_waiter *_waiter;
		struct hub_link *_prev, *_next;
	} *_links;
	size_t _nlinks;
	int64_t _deadline;
	size_t _heap_pos;
	int _armed;
};

/* base_index: the store's index at start, the answer for unknown topics. */
struct hub *hub_new(uint64_t base_index);
void hub_free(struct hub *h);

uint64_t hub_index(struct hub *h, const char *topic);
/* Records that the write with this index touched the topic and wakes its
 * waiters. Called by the store's writer after the commit is durable. */
void hub_publish(struct hub *h, const char *const *topics, const uint64_t *indexes, size_t n);

/* Arms w on the topics (at most HUB_MAX_TOPICS; more are ignored) until one
 * passes min_index or deadline (monotonic ms) comes. Returns 1 without
 * arming when a topic is already past min_index (or memory ran out), 0 once
 * armed. w->wake runs on a hub or store thread, exactly once. */
int hub_wait(struct hub *h, struct hub_waiter *w, const char *const *topics, size_t n,
	     uint64_t min_index, int64_t deadline);
/* Disarms w if still armed; returns 1 if it was (wake will not run). */
int hub_cancel(struct hub *h, struct hub_waiter *w);
/* Wakes every waiter (as timed out) and refuses new ones: for shutdown. */
void hub_wake_all(struct hub *h);
size_t hub_waiting(struct hub *h);
size_t hub_topic_count(struct hub *h);

#endif

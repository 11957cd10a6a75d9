/* snapcache: values computed from the store, kept for as long as none of
 * the hub topics they were computed from has moved (proxy snapshots and
 * their parts: server/proxysnap.h).
 *
 * An entry is put with its topics and an index: the highest of the hub
 * indexes of those topics as read BEFORE the read transaction that
 * produced the value (the hub publishes after a commit is durable, so that
 * read holds at least every write up to that index). snapcache_get hands
 * the entry out only while every one of its topics is still at or below
 * that index; one that moved is dropped. A value is therefore never older
 * than its topics' indexes say, whoever computed it and on which thread.
 *
 * Entries are immutable once put and reference-counted: a reader keeps
 * its entry until snapcache_release, whatever is put or evicted meanwhile.
 * Memory is bounded: past max_bytes (keys, topics, text and the caller's
 * estimate of the value) the least recently used entries are dropped.
 * Thread-safe; the cache's lock is taken before the hub's, never after. */
#ifndef WEFT_SNAPCACHE_H
#define WEFT_SNAPCACHE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct hub;
struct snapcache;

/* Read-only for callers. */
struct snapcache_entry {
	const char *key;
	uint64_t index;            /* the state it reflects (see above) */
	size_t ntopics;
	char **topics;
	json_t *value;             /* shared: read it or copy it, never change it */
	const char *text;          /* optional bytes (NUL-terminated), or NULL */
	size_t text_len;
	/* private */
	atomic_uint _refs;
	size_t _bytes;
	uint64_t _hash;
	struct snapcache_entry *_next_in_bucket, *_lru_prev, *_lru_next;
};

struct snapcache *snapcache_new(struct hub *hub, size_t max_bytes);
void snapcache_free(struct snapcache *c);

/* The entry for key while it is current (a reference: give it back with
 * snapcache_release), else NULL. NULL c: always NULL. */
const struct snapcache_entry *snapcache_get(struct snapcache *c, const char *key);
/* As snapcache_get, but a stale entry is handed out too (its topics say
 * what to watch before computing it again), with *current 0; it is no
 * longer in the cache. */
const struct snapcache_entry *snapcache_lookup(struct snapcache *c, const char *key, int *current);
void snapcache_release(struct snapcache *c, const struct snapcache_entry *e);

/* Puts value (stolen; may be NULL) and a copy of text (may be NULL) under
 * key, depending on the keys of topics (a JSON object; copied) at index.
 * value_bytes: an estimate of the value's memory. An entry already there
 * at a higher index stays; one at the same or a lower index is replaced. */
void snapcache_put(struct snapcache *c, const char *key, json_t *topics, uint64_t index,
		   json_t *value, size_t value_bytes, const char *text, size_t text_len);

struct snapcache_stats {
	uint64_t hits, misses, stale, evictions;
	size_t entries, bytes, max_bytes;
};
void snapcache_stats(struct snapcache *c, struct snapcache_stats *out);

#endif

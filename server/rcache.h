/* The reply cache: rendered bodies of hot reads (a service's instances),
 * keyed by what was asked and the modify index of what the answer depends
 * on. A read that finds its key at exactly the index its watched topics
 * have now gets the cached bytes instead of querying and rendering again;
 * any write to those topics moves the index, so a stale entry is never
 * served. Bounded in entries and bytes; thread-safe. */
#ifndef WEFT_RCACHE_H
#define WEFT_RCACHE_H

#include <stddef.h>
#include <stdint.h>

struct rcache;

/* max_bytes bounds the cached bodies together; bodies over max_entry
 * bytes are never cached. */
struct rcache *rcache_new(size_t max_bytes, size_t max_entry);
void rcache_free(struct rcache *c);

/* A new malloc'd copy (NUL-terminated) of the body cached for key at
 * exactly index, its length in *len; NULL when there is none or c is NULL. */
char *rcache_get(struct rcache *c, const char *key, uint64_t index, size_t *len);
/* Caches data for key at index, unless an entry at a higher index is there. */
void rcache_put(struct rcache *c, const char *key, uint64_t index, const char *data, size_t len);

struct rcache_stats {
	uint64_t hits, misses;
	size_t entries, bytes;
};
void rcache_stats(struct rcache *c, struct rcache_stats *out);

#endif

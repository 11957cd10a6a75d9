#include "rcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Direct-mapped: a key has one slot, and a colliding key replaces it. */
#define RC_SLOTS 2048

struct rc_entry {
	char *key;
	uint64_t index;
	char *data;
	size_t len;
};

struct rcache {
	pthread_mutex_t lock;
	size_t max_bytes, max_entry, bytes, entries;
	uint64_t hits, misses;
	struct rc_entry slots[RC_SLOTS];
};

static size_t slot_of(const char *key)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 1099511628211ULL;
	}
	return (size_t)(h & (RC_SLOTS - 1));
}

static void entry_clear(struct rcache *c, struct rc_entry *e)
{
	if (e->key == NULL)
		return;
	c->bytes -= e->len;
	c->entries--;
	free(e->key);
	free(e->data);
	memset(e, 0, sizeof(*e));
}

struct rcache *rcache_new(size_t max_bytes, size_t max_entry)
{
	struct rcache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->max_bytes = max_bytes;
	c->max_entry = max_entry < max_bytes ? max_entry : max_bytes;
	return c;
}

void rcache_free(struct rcache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < RC_SLOTS; i++)
		entry_clear(c, &c->slots[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

char *rcache_get(struct rcache *c, const char *key, uint64_t index, size_t *len)
{
	struct rc_entry *e;
	char *copy = NULL;

	if (c == NULL)
		return NULL;
	e = &c->slots[slot_of(key)];
	pthread_mutex_lock(&c->lock);
	if (e->key && e->index == index && strcmp(e->key, key) == 0) {
		copy = malloc(e->len + 1);
		if (copy) {
			memcpy(copy, e->data, e->len);
			copy[e->len] = '\0';
			*len = e->len;
		}
	}
	if (copy)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->lock);
	return copy;
}

void rcache_put(struct rcache *c, const char *key, uint64_t index, const char *data, size_t len)
{
	struct rc_entry *e, fresh = { 0 };

	if (c == NULL || len > c->max_entry)
		return;
	fresh.key = strdup(key);
	fresh.data = malloc(len ? len : 1);
	if (fresh.key == NULL || fresh.data == NULL) {
		free(fresh.key);
		free(fresh.data);
		return;
	}
	memcpy(fresh.data, data, len);
	fresh.len = len;
	fresh.index = index;
	e = &c->slots[slot_of(key)];
	pthread_mutex_lock(&c->lock);
	if (e->key && e->index > index && strcmp(e->key, key) == 0) {
		/* A newer answer is already there: keep it. */
		pthread_mutex_unlock(&c->lock);
		free(fresh.key);
		free(fresh.data);
		return;
	}
	entry_clear(c, e);
	if (c->bytes + len > c->max_bytes) {
		/* Full of answers that may never be asked for again: start over. */
		for (size_t i = 0; i < RC_SLOTS; i++)
			entry_clear(c, &c->slots[i]);
	}
	*e = fresh;
	c->bytes += len;
	c->entries++;
	pthread_mutex_unlock(&c->lock);
}

void rcache_stats(struct rcache *c, struct rcache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	out->hits = c->hits;
	out->misses = c->misses;
	out->entries = c->entries;
	out->bytes = c->bytes;
	pthread_mutex_unlock(&c->lock);
}

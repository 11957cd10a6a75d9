/* snapcache: topic-validated, size-bounded LRU cache (snapcache.h). */
#include "snapcache.h"
#include "hub.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MIN 1024
#define ENTRY_OVERHEAD 160   /* the struct, the allocator's headers */

struct snapcache {
	pthread_mutex_t lock;
	struct hub *hub;
	size_t max_bytes, bytes, entries;
	struct snapcache_entry **buckets;
	size_t nbuckets;
	struct snapcache_entry *lru_head, *lru_tail;   /* head: most recently used */
	uint64_t hits, misses, stale, evictions;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void entry_free(struct snapcache_entry *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->ntopics; i++)
		free(e->topics[i]);
	free(e->topics);
	free((char *)e->key);
	free((char *)e->text);
	json_decref(e->value);
	free(e);
}

static void entry_unref(struct snapcache_entry *e)
{
	if (e && atomic_fetch_sub(&e->_refs, 1) == 1)
		entry_free(e);
}

struct snapcache *snapcache_new(struct hub *hub, size_t max_bytes)
{
	struct snapcache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->nbuckets = BUCKETS_MIN;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->hub = hub;
	c->max_bytes = max_bytes;
	return c;
}

void snapcache_free(struct snapcache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct snapcache_entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			next = e->_next_in_bucket;
			entry_unref(e);
		}
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- the table and the LRU list; lock held ---- */

static void lru_unlink(struct snapcache *c, struct snapcache_entry *e)
{
	if (e->_lru_prev)
		e->_lru_prev->_lru_next = e->_lru_next;
	else
		c->lru_head = e->_lru_next;
	if (e->_lru_next)
		e->_lru_next->_lru_prev = e->_lru_prev;
	else
		c->lru_tail = e->_lru_prev;
	e->_lru_prev = e->_lru_next = NULL;
}

static void lru_push_front(struct snapcache *c, struct snapcache_entry *e)
{
	e->_lru_prev = NULL;
	e->_lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->_lru_prev = e;
	c->lru_head = e;
	if (c->lru_tail == NULL)
		c->lru_tail = e;
}

static struct snapcache_entry **slot_of(struct snapcache *c, const char *key, uint64_t h)
{
	struct snapcache_entry **pp = &c->buckets[h & (c->nbuckets - 1)];

	while (*pp && ((*pp)->_hash != h || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->_next_in_bucket;
	return pp;
}

/* Takes *pp out of the table (the table's reference is dropped). */
static void remove_at(struct snapcache *c, struct snapcache_entry **pp)
{
	struct snapcache_entry *e = *pp;

	*pp = e->_next_in_bucket;
	e->_next_in_bucket = NULL;
	lru_unlink(c, e);
	c->bytes -= e->_bytes;
	c->entries--;
	entry_unref(e);
}

static void grow(struct snapcache *c)
{
	size_t nb = c->nbuckets * 2;
	struct snapcache_entry **nbk = calloc(nb, sizeof(*nbk));

	if (nbk == NULL)
		return;   /* longer chains, still correct */
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct snapcache_entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			next = e->_next_in_bucket;
			e->_next_in_bucket = nbk[e->_hash & (nb - 1)];
			nbk[e->_hash & (nb - 1)] = e;
		}
	}
	free(c->buckets);
	c->buckets = nbk;
	c->nbuckets = nb;
}

/* ---- API ---- */

const struct snapcache_entry *snapcache_get(struct snapcache *c, const char *key)
{
	int current = 0;
	const struct snapcache_entry *e = snapcache_lookup(c, key, &current);

	if (e && !current) {
		snapcache_release(c, e);
		return NULL;
	}
	return e;
}

const struct snapcache_entry *snapcache_lookup(struct snapcache *c, const char *key, int *current)
{
	struct snapcache_entry **pp, *e;
	uint64_t h;

	*current = 0;
	if (c == NULL)
		return NULL;
	h = hash_str(key);
	pthread_mutex_lock(&c->lock);
	pp = slot_of(c, key, h);
	if ((e = *pp) == NULL) {
		c->misses++;
		pthread_mutex_unlock(&c->lock);
		return NULL;
	}
	for (size_t i = 0; i < e->ntopics; i++) {
		if (hub_index(c->hub, e->topics[i]) > e->index) {
			/* Something it was computed from moved: never again. */
			atomic_fetch_add(&e->_refs, 1);
			remove_at(c, pp);
			c->stale++;
			c->misses++;
			pthread_mutex_unlock(&c->lock);
			return e;
		}
	}
	lru_unlink(c, e);
	lru_push_front(c, e);
	atomic_fetch_add(&e->_refs, 1);
	*current = 1;
	c->hits++;
	pthread_mutex_unlock(&c->lock);
	return e;
}

void snapcache_release(struct snapcache *c, const struct snapcache_entry *e)
{
	(void)c;
	entry_unref((struct snapcache_entry *)e);
}

void snapcache_put(struct snapcache *c, const char *key, json_t *topics, uint64_t index,
		   json_t *value, size_t value_bytes, const char *text, size_t text_len)
{
	struct snapcache_entry *e = NULL, **pp;
	const char *t;
	json_t *v;
	size_t i = 0;

	if (c == NULL)
		goto drop;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		goto drop;
	atomic_init(&e->_refs, 1);
	e->key = strdup(key);
	e->index = index;
	e->topics = calloc(json_object_size(topics) + 1, sizeof(*e->topics));
	e->_bytes = ENTRY_OVERHEAD + strlen(key) + value_bytes;
	if (e->key == NULL || e->topics == NULL)
		goto drop;
	json_object_foreach(topics, t, v) {
		if ((e->topics[i] = strdup(t)) == NULL)
			goto drop;
		e->ntopics = ++i;
		e->_bytes += strlen(t) + 1 + sizeof(char *);
	}
	if (text) {
		char *copy = malloc(text_len + 1);

		if (copy == NULL)
			goto drop;
		memcpy(copy, text, text_len);
		copy[text_len] = '\0';
		e->text = copy;
		e->text_len = text_len;
		e->_bytes += text_len + 1;
	}
	e->value = value;
	value = NULL;
	e->_hash = hash_str(key);
	if (e->_bytes > c->max_bytes / 4)
		goto drop;   /* one entry never takes a big share of the cache */
	pthread_mutex_lock(&c->lock);
	pp = slot_of(c, key, e->_hash);
	if (*pp && (*pp)->index > index) {
		/* A newer answer is already there: keep it. */
		pthread_mutex_unlock(&c->lock);
		goto drop;
	}
	if (*pp)
		remove_at(c, pp);
	while (c->bytes + e->_bytes > c->max_bytes && c->lru_tail) {
		struct snapcache_entry *old = c->lru_tail;

		remove_at(c, slot_of(c, old->key, old->_hash));
		c->evictions++;
	}
	if (c->entries + 1 > c->nbuckets)
		grow(c);
	pp = &c->buckets[e->_hash & (c->nbuckets - 1)];
	e->_next_in_bucket = *pp;
	*pp = e;
	lru_push_front(c, e);
	c->bytes += e->_bytes;
	c->entries++;
	pthread_mutex_unlock(&c->lock);
	return;
drop:
	json_decref(value);
	entry_free(e);
}

void snapcache_stats(struct snapcache *c, struct snapcache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	out->hits = c->hits;
	out->misses = c->misses;
	out->stale = c->stale;
	out->evictions = c->evictions;
	out->entries = c->entries;
	out->bytes = c->bytes;
	out->max_bytes = c->max_bytes;
	pthread_mutex_unlock(&c->lock);
}

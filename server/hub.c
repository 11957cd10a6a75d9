#include "hub.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hub_topic {
	struct hub_topic *next_in_bucket;
	uint64_t index;
	struct hub_link *waiters;  /* doubly linked list of links */
	char name[];
};

/* Topics nobody waits on are forgotten past this many (KV writes publish a
 * topic per key prefix); their indexes fold into base_index, so a client
 * that held an older index gets one early answer, never a missed change. */
#define HUB_IDLE_TOPICS_MAX 65536

struct hub {
	pthread_mutex_t lock;
	pthread_cond_t timer_cond;
	pthread_t timer_thread;
	int stopping;
	int refuse;
	uint64_t base_index;
	struct hub_topic **buckets;
	size_t nbuckets, ntopics;
	struct hub_waiter **heap;   /* min-heap on _deadline */
	size_t heap_len, heap_cap;
	size_t nwaiting;
	size_t nlinks;              /* links of all armed waiters */
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

static struct hub_topic *topic_find(struct hub *h, const char *name, int create)
{
	uint64_t hv = hash_str(name);
	struct hub_topic *t;
	size_t len;

	for (t = h->buckets[hv & (h->nbuckets - 1)]; t; t = t->next_in_bucket)
		if (strcmp(t->name, name) == 0)
			return t;
	if (!create)
		return NULL;
	if (h->ntopics + 1 > h->nbuckets) {   /* grow: load factor 1 */
		size_t nb = h->nbuckets * 2;
		struct hub_topic **nbk = calloc(nb, sizeof(*nbk));
		if (nbk) {
			for (size_t i = 0; i < h->nbuckets; i++) {
				struct hub_topic *cur = h->buckets[i], *next;
				for (; cur; cur = next) {
					next = cur->next_in_bucket;
					size_t b = hash_str(cur->name) & (nb - 1);
					cur->next_in_bucket = nbk[b];
					nbk[b] = cur;
				}
			}
			free(h->buckets);
			h->buckets = nbk;
			h->nbuckets = nb;
		}
	}
	len = strlen(name);
	t = calloc(1, sizeof(*t) + len + 1);
	if (t == NULL)
		return NULL;
	memcpy(t->name, name, len + 1);
	t->index = h->base_index;
	t->next_in_bucket = h->buckets[hv & (h->nbuckets - 1)];
	h->buckets[hv & (h->nbuckets - 1)] = t;
	h->ntopics++;
	return t;
}

/* Heap helpers: keep _heap_pos in sync. */
static void heap_swap(struct hub *h, size_t a, size_t b)
{
	struct hub_waiter *t = h->heap[a];

	h->heap[a] = h->heap[b];
	h->heap[b] = t;
	h->heap[a]->_heap_pos = a;
	h->heap[b]->_heap_pos = b;
}

static void heap_up(struct hub *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h->heap[p]->_deadline <= h->heap[i]->_deadline)
			break;
		heap_swap(h, p, i);
		i = p;
	}
}

static void heap_down(struct hub *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->heap_len && h->heap[l]->_deadline < h->heap[m]->_deadline)
			m = l;
		if (r < h->heap_len && h->heap[r]->_deadline < h->heap[m]->_deadline)
			m = r;
		if (m == i)
			break;
		heap_swap(h, m, i);
		i = m;
	}
}

static void heap_remove(struct hub *h, struct hub_waiter *w)
{
	size_t i = w->_heap_pos;

	h->heap_len--;
	if (i != h->heap_len) {
		heap_swap(h, i, h->heap_len);
		heap_down(h, i);
		heap_up(h, i);
	}
}

/* Unlinks w from its topics and the heap. Lock held. */
static void waiter_disarm(struct hub *h, struct hub_waiter *w)
{
	for (size_t i = 0; i < w->_nlinks; i++) {
		struct hub_link *l = &w->_links[i];
		if (l->_prev)
			l->_prev->_next = l->_next;
		else
			l->_topic->waiters = l->_next;
		if (l->_next)
			l->_next->_prev = l->_prev;
	}
	h->nlinks -= w->_nlinks;
	w->_nlinks = 0;
	free(w->_links);
	w->_links = NULL;
	heap_remove(h, w);
	w->_armed = 0;
	h->nwaiting--;
}

static void *timer_main(void *arg)
{
	struct hub *h = arg;

	pthread_mutex_lock(&h->lock);
	while (!h->stopping) {
		int64_t now = now_mono_ms();

		while (h->heap_len > 0 && h->heap[0]->_deadline <= now) {
			struct hub_waiter *w = h->heap[0];
			waiter_disarm(h, w);
			w->wake(w, 1);
		}
		if (h->heap_len == 0) {
			pthread_cond_wait(&h->timer_cond, &h->lock);
		} else {
			int64_t dl = h->heap[0]->_deadline;
			struct timespec ts = { .tv_sec = dl / 1000, .tv_nsec = (dl % 1000) * 1000000L };
			pthread_cond_timedwait(&h->timer_cond, &h->lock, &ts);
		}
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

struct hub *hub_new(uint64_t base_index)
{
	struct hub *h = calloc(1, sizeof(*h));
	pthread_condattr_t ca;

	if (h == NULL)
		return NULL;
	h->base_index = base_index;
	h->nbuckets = 1024;
	h->buckets = calloc(h->nbuckets, sizeof(*h->buckets));
	if (h->buckets == NULL) {
		free(h);
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->timer_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&h->timer_thread, NULL, timer_main, h) != 0) {
		free(h->buckets);
		free(h);
		return NULL;
	}
	return h;
}

void hub_free(struct hub *h)
{
	if (h == NULL)
		return;
	hub_wake_all(h);
	pthread_mutex_lock(&h->lock);
	h->stopping = 1;
	pthread_cond_signal(&h->timer_cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->timer_thread, NULL);
	for (size_t i = 0; i < h->nbuckets; i++) {
		struct hub_topic *t = h->buckets[i], *next;
		for (; t; t = next) {
			next = t->next_in_bucket;
			free(t);
		}
	}
	free(h->buckets);
	free(h->heap);
	pthread_cond_destroy(&h->timer_cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

uint64_t hub_index(struct hub *h, const char *topic)
{
	struct hub_topic *t;
	uint64_t idx;

	pthread_mutex_lock(&h->lock);
	t = topic_find(h, topic, 0);
	idx = t ? t->index : h->base_index;
	pthread_mutex_unlock(&h->lock);
	return idx;
}

/* Drops every topic without waiters; lock held. */
static void topics_sweep(struct hub *h)
{
	for (size_t i = 0; i < h->nbuckets; i++) {
		struct hub_topic **pp = &h->buckets[i];
		while (*pp) {
			struct hub_topic *t = *pp;
			if (t->waiters) {
				pp = &t->next_in_bucket;
				continue;
			}
			if (t->index > h->base_index)
				h->base_index = t->index;
			*pp = t->next_in_bucket;
			free(t);
			h->ntopics--;
		}
	}
}

void hub_publish(struct hub *h, const char *const *topics, const uint64_t *indexes, size_t n)
{
	pthread_mutex_lock(&h->lock);
	if (h->ntopics + n > HUB_IDLE_TOPICS_MAX + h->nlinks)
		topics_sweep(h);
	for (size_t i = 0; i < n; i++) {
		struct hub_topic *t = topic_find(h, topics[i], 1);
		if (t == NULL)
			continue;
		if (indexes[i] > t->index)
			t->index = indexes[i];
		while (t->waiters) {
			struct hub_waiter *w = t->waiters->_waiter;
			waiter_disarm(h, w);
			w->wake(w, 0);
		}
	}
	pthread_mutex_unlock(&h->lock);
}

int hub_wait(struct hub *h, struct hub_waiter *w, const char *const *topics, size_t n,
	     uint64_t min_index, int64_t deadline)
{
	struct hub_topic **ts;
	struct hub_link *links;
	int rc = 0;

	if (n > HUB_MAX_TOPICS)
		n = HUB_MAX_TOPICS;
	/* Allocated before the lock; a failure answers at once (the caller
	 * looks again), as for a topic already past min_index. */
	ts = calloc(n ? n : 1, sizeof(*ts));
	links = calloc(n ? n : 1, sizeof(*links));
	if (ts == NULL || links == NULL) {
		free(ts);
		free(links);
		return 1;
	}
	pthread_mutex_lock(&h->lock);
	if (h->refuse) {
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ts[i] = topic_find(h, topics[i], 1);
		if (ts[i] == NULL || ts[i]->index > min_index) {
			rc = 1;
			goto out;
		}
	}
	if (h->heap_len == h->heap_cap) {
		size_t nc = h->heap_cap ? h->heap_cap * 2 : 256;
		struct hub_waiter **nh = realloc(h->heap, nc * sizeof(*nh));
		if (nh == NULL) {
			rc = 1;
			goto out;
		}
		h->heap = nh;
		h->heap_cap = nc;
	}
	w->_links = links;
	links = NULL;
	w->_nlinks = n;
	h->nlinks += n;
	for (size_t i = 0; i < n; i++) {
		struct hub_link *l = &w->_links[i];
		l->_topic = ts[i];
		l->_waiter = w;
		l->_prev = NULL;
		l->_next = ts[i]->waiters;
		if (l->_next)
			l->_next->_prev = l;
		ts[i]->waiters = l;
	}
	w->_deadline = deadline;
	w->_heap_pos = h->heap_len;
	h->heap[h->heap_len++] = w;
	heap_up(h, w->_heap_pos);
	w->_armed = 1;
	h->nwaiting++;
	if (h->heap[0] == w)
		pthread_cond_signal(&h->timer_cond);
out:
	pthread_mutex_unlock(&h->lock);
	free(ts);
	free(links);
	return rc;
}

int hub_cancel(struct hub *h, struct hub_waiter *w)
{
	int was;

	pthread_mutex_lock(&h->lock);
	was = w->_armed;
	if (was)
		waiter_disarm(h, w);
	pthread_mutex_unlock(&h->lock);
	return was;
}

void hub_wake_all(struct hub *h)
{
	pthread_mutex_lock(&h->lock);
	h->refuse = 1;
	while (h->heap_len > 0) {
		struct hub_waiter *w = h->heap[0];
		waiter_disarm(h, w);
		w->wake(w, 1);
	}
	pthread_mutex_unlock(&h->lock);
}

size_t hub_waiting(struct hub *h)
{
	size_t n;

	pthread_mutex_lock(&h->lock);
	n = h->nwaiting;
	pthread_mutex_unlock(&h->lock);
	return n;
}

size_t hub_topic_count(struct hub *h)
{
	size_t n;

	pthread_mutex_lock(&h->lock);
	n = h->ntopics;
	pthread_mutex_unlock(&h->lock);
	return n;
}

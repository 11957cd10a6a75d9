/* px_cluster: one upstream's endpoints as one worker sees them: weighted
 * balancing, passive health and the retry budget (px_cluster.h; the
 * algorithms are described in docs/proxy-config.md, "Balancing and
 * passive health"). Single-threaded by design: no locks, no atomics. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "px_cluster.h"

#define RING_VNODES_PER_EP 128   /* virtual nodes of an endpoint of average weight */
#define RING_MAX 65536           /* virtual nodes in all (plus at most one per endpoint) */
#define EJECTION_CAP_MS 300000   /* an ejection lasts at most this, or BaseEjectionTime if longer */

struct px_ep {
	unsigned refs;
	struct px_cluster *cluster;   /* NULL once removed */
	bool removed;
	bool claimed;                 /* during an update: matched by a new endpoint */
	struct sockaddr_in addr;
	uint64_t key;                 /* address << 16 | port: the identity across updates */
	char name[INET_ADDRSTRLEN + 6];
	char *ids;                    /* the SPIFFE ID, then the SNI, in one allocation */
	const char *sni;
	uint32_t weight;
	enum px_health health;
	int64_t current;              /* smooth weighted round robin */
	uint32_t active;              /* requests in flight */
	uint32_t failures;            /* consecutive */
	uint32_t ejections;           /* times ejected (decays: see eject()) */
	bool ejected;
	uint64_t ejected_until;       /* when ejected */
	uint64_t returned_at;         /* when it last came back */
	void *slot;
};

struct ring_node {
	uint64_t hash;
	struct px_ep *ep;
};

struct px_cluster {
	char *name;
	enum px_lb_policy policy;
	char *hash_header;            /* ring_hash only */
	struct px_timeouts timeouts;
	struct px_retries retries;
	struct px_passive_health ph;
	struct px_ep **eps;
	size_t n;
	struct ring_node *ring;       /* ring_hash only, sorted by hash */
	size_t ring_n;
	uint64_t rng;
	uint64_t active;              /* requests in flight on current endpoints */
	uint32_t retries_active;
	void (*on_remove)(struct px_ep *ep, void *ud);
	void *on_remove_ud;
};

/* ---- hashing and randomness ---- */

/* MurmurHash3's 64-bit finalizer. */
static uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* FNV-1a 64, then fmix64 so that every input bit reaches the high bits
 * (the ring compares whole 64-bit values). */
uint64_t px_cluster_hash(const char *data, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)data[i];
		h *= 0x100000001b3ull;
	}
	return fmix64(h);
}

/* A Weyl sequence through fmix64 (splitmix64's construction). */
static uint64_t rnd(struct px_cluster *c)
{
	return fmix64(c->rng += 0x9e3779b97f4a7c15ull);
}

void px_cluster_seed(struct px_cluster *c, uint64_t seed)
{
	c->rng = seed;
}

/* ---- endpoints ---- */

struct px_ep *px_ep_ref(struct px_ep *ep)
{
	if (ep != NULL)
		ep->refs++;
	return ep;
}

void px_ep_unref(struct px_ep *ep)
{
	if (ep == NULL || --ep->refs > 0)
		return;
	free(ep->ids);
	free(ep);
}

const struct sockaddr_in *px_ep_addr(const struct px_ep *ep)
{
	return &ep->addr;
}

const char *px_ep_name(const struct px_ep *ep)
{
	return ep->name;
}

const char *px_ep_spiffe_id(const struct px_ep *ep)
{
	return ep->ids;
}

const char *px_ep_sni(const struct px_ep *ep)
{
	return ep->sni;
}

void **px_ep_slot(struct px_ep *ep)
{
	return &ep->slot;
}

bool px_ep_removed(const struct px_ep *ep)
{
	return ep->removed;
}

void px_ep_request_begin(struct px_ep *ep)
{
	ep->active++;
	if (ep->cluster != NULL)
		ep->cluster->active++;
}

void px_ep_request_end(struct px_ep *ep)
{
	if (ep->active == 0)
		return;
	ep->active--;
	if (ep->cluster != NULL && ep->cluster->active > 0)
		ep->cluster->active--;
}

/* "SPIFFE ID\0SNI\0": the SNI as weft-proxy's derive_sni makes it,
 * SERVICE.MESH.ZONE.TRUSTDOMAIN, or "" when the ID is not a service's. */
static char *ids_new(const char *spiffe_id)
{
	struct px_spiffe sp;
	size_t len = strlen(spiffe_id), cap;
	char *b;

	if (spiffe_id[0] == '\0' || px_spiffe_parse(spiffe_id, &sp, NULL) != WEFT_OK)
		memset(&sp, 0, sizeof(sp));
	cap = len + 1 + strlen(sp.service) + strlen(sp.mesh) + strlen(sp.zone) + strlen(sp.trust_domain) + 4;
	if ((b = malloc(cap)) == NULL)
		return NULL;
	memcpy(b, spiffe_id, len + 1);
	if (sp.service[0] == '\0')
		b[len + 1] = '\0';
	else
		snprintf(b + len + 1, cap - len - 1, "%s.%s.%s.%s", sp.service, sp.mesh, sp.zone,
			 sp.trust_domain);
	return b;
}

/* Drops ep from c: never picked again, its requests no longer count. */
static void ep_remove(struct px_cluster *c, struct px_ep *ep)
{
	ep->removed = true;
	ep->cluster = NULL;
	c->active = c->active >= ep->active ? c->active - ep->active : 0;
	if (c->on_remove != NULL)
		c->on_remove(ep, c->on_remove_ud);
	px_ep_unref(ep);
}

/* An ejection that is over ends when next looked at. */
static void ep_expire(struct px_ep *ep, uint64_t now_ms)
{
	if (ep->ejected && now_ms >= ep->ejected_until) {
		ep->ejected = false;
		ep->returned_at = ep->ejected_until;
		ep->failures = 0;
	}
}

/* ---- the cluster ---- */

int px_cluster_new(struct px_cluster **out, const char *name, char **err)
{
	struct px_cluster *c = calloc(1, sizeof(*c));
	struct timespec ts;

	*out = NULL;
	if (c == NULL || (c->name = strdup(name)) == NULL) {
		free(c);
		return weft_errf(err, WEFT_ENOMEM, "upstream %s: out of memory", name);
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	c->rng = fmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)c);
	*out = c;
	return WEFT_OK;
}

void px_cluster_free(struct px_cluster *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		ep_remove(c, c->eps[i]);
	free(c->eps);
	free(c->ring);
	free(c->hash_header);
	free(c->name);
	free(c);
}

void px_cluster_set_on_remove(struct px_cluster *c, void (*fn)(struct px_ep *ep, void *ud), void *ud)
{
	c->on_remove = fn;
	c->on_remove_ud = ud;
}

static int cmp_key(const void *a, const void *b)
{
	uint64_t x = (*(struct px_ep *const *)a)->key, y = (*(struct px_ep *const *)b)->key;

	return x < y ? -1 : x > y;
}

/* The first unclaimed endpoint with key in sorted (n entries), or NULL. */
static struct px_ep *find_unclaimed(struct px_ep **sorted, size_t n, uint64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sorted[mid]->key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && sorted[lo]->key == key; lo++)
		if (!sorted[lo]->claimed)
			return sorted[lo];
	return NULL;
}

static int cmp_ring(const void *a, const void *b)
{
	const struct ring_node *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->ep->key < y->ep->key ? -1 : x->ep->key > y->ep->key;
}

/* The ring of eps (weights from e): each endpoint gets virtual nodes in
 * proportion to its weight, RING_VNODES_PER_EP for an average one, fewer
 * when the ring would exceed RING_MAX, and at least one. A virtual node's
 * position is px_cluster_hash("ADDRESS:PORT_i"): the ring depends on the
 * endpoints and weights only, not on their order, so every worker and
 * every proxy maps a hash to the same endpoint. */
static int ring_build(struct px_ep **eps, const struct px_endpoint *e, size_t n,
		      struct ring_node **out, size_t *out_n)
{
	uint64_t total_w = 0, size, count = 0;
	struct ring_node *ring;
	char buf[sizeof(eps[0]->name) + 16];

	*out = NULL;
	*out_n = 0;
	if (n == 0)
		return WEFT_OK;
	for (size_t i = 0; i < n; i++)
		total_w += e[i].weight ? e[i].weight : 1;
	size = (uint64_t)RING_VNODES_PER_EP * n;
	if (size > RING_MAX)
		size = RING_MAX;
	for (size_t i = 0; i < n; i++) {
		uint64_t v = (e[i].weight ? e[i].weight : 1) * size / total_w;

		count += v ? v : 1;
	}
	if ((ring = malloc(count * sizeof(*ring))) == NULL)
		return WEFT_ENOMEM;
	count = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t v = (e[i].weight ? e[i].weight : 1) * size / total_w;

		for (uint64_t j = 0; j < (v ? v : 1); j++) {
			int len = snprintf(buf, sizeof(buf), "%s_%llu", eps[i]->name, (unsigned long long)j);

			ring[count].hash = px_cluster_hash(buf, (size_t)len);
			ring[count++].ep = eps[i];
		}
	}
	qsort(ring, count, sizeof(*ring), cmp_ring);
	*out = ring;
	*out_n = count;
	return WEFT_OK;
}

int px_cluster_update(struct px_cluster *c, const struct px_upstream *u, char **err)
{
	size_t n = u->n_endpoints;
	struct px_ep **neweps = NULL, **old = NULL;
	char **ids = NULL, *hh = NULL;
	struct ring_node *ring = NULL;
	size_t ring_n = 0;
	int rc = WEFT_OK;

	if (n > PX_CONFIG_ENDPOINTS_MAX) {
		rc = weft_errf(err, WEFT_ETOOBIG, "upstream %s: Endpoints: more than %d", c->name,
			       PX_CONFIG_ENDPOINTS_MAX);
		goto out;
	}
	neweps = calloc(n ? n : 1, sizeof(*neweps));
	ids = calloc(n ? n : 1, sizeof(*ids));
	old = malloc((c->n ? c->n : 1) * sizeof(*old));
	if (neweps == NULL || ids == NULL || old == NULL)
		goto nomem;
	if (c->n > 0)
		memcpy(old, c->eps, c->n * sizeof(*old));
	qsort(old, c->n, sizeof(*old), cmp_key);
	for (size_t i = 0; i < c->n; i++)
		old[i]->claimed = false;

	/* Everything that may fail, before anything changes. */
	for (size_t i = 0; i < n; i++) {
		const struct px_endpoint *e = &u->endpoints[i];
		struct in_addr a;
		struct px_ep *ep;
		uint64_t key;

		if (inet_pton(AF_INET, e->address, &a) != 1) {
			rc = weft_errf(err, WEFT_EINVAL, "upstream %s: Endpoints[%zu].Address: \"%s\" is "
				       "not an IPv4 address", c->name, i, e->address);
			goto out;
		}
		if ((ids[i] = ids_new(e->spiffe_id ? e->spiffe_id : "")) == NULL)
			goto nomem;
		key = (uint64_t)ntohl(a.s_addr) << 16 | e->port;
		if ((ep = find_unclaimed(old, c->n, key)) != NULL) {
			ep->claimed = true;
			neweps[i] = ep;
			continue;
		}
		if ((ep = calloc(1, sizeof(*ep))) == NULL)
			goto nomem;
		ep->refs = 1;
		ep->key = key;
		ep->addr.sin_family = AF_INET;
		ep->addr.sin_addr = a;
		ep->addr.sin_port = htons(e->port);
		inet_ntop(AF_INET, &a, ep->name, sizeof(ep->name));
		snprintf(ep->name + strlen(ep->name), sizeof(ep->name) - strlen(ep->name), ":%u", e->port);
		neweps[i] = ep;
	}
	if (u->lb_policy == PX_LB_RING_HASH) {
		if (ring_build(neweps, u->endpoints, n, &ring, &ring_n) != WEFT_OK)
			goto nomem;
		if (u->hash_header != NULL && (hh = strdup(u->hash_header)) == NULL)
			goto nomem;
	}

	/* Commit: nothing below fails. */
	for (size_t i = 0; i < n; i++) {
		struct px_ep *ep = neweps[i];

		free(ep->ids);
		ep->ids = ids[i];
		ep->sni = ids[i] + strlen(ids[i]) + 1;
		ids[i] = NULL;
		ep->weight = u->endpoints[i].weight ? u->endpoints[i].weight : 1;
		ep->health = u->endpoints[i].health;
		ep->cluster = c;
	}
	for (size_t i = 0; i < c->n; i++)
		if (!c->eps[i]->claimed)
			ep_remove(c, c->eps[i]);
	free(c->eps);
	c->eps = neweps;
	c->n = n;
	neweps = NULL;
	free(c->ring);
	c->ring = ring;
	c->ring_n = ring_n;
	ring = NULL;
	free(c->hash_header);
	c->hash_header = hh;
	hh = NULL;
	c->policy = u->lb_policy;
	c->timeouts = u->timeouts;
	c->retries = u->retries;
	c->ph = u->passive_health;
	goto out;
nomem:
	rc = weft_errf(err, WEFT_ENOMEM, "upstream %s: out of memory", c->name);
out:
	if (neweps != NULL) {
		for (size_t i = 0; i < n; i++)
			if (neweps[i] != NULL && neweps[i]->cluster == NULL)   /* made here */
				px_ep_unref(neweps[i]);
	}
	if (ids != NULL)
		for (size_t i = 0; i < n; i++)
			free(ids[i]);
	free(ids);
	free(neweps);
	free(old);
	free(ring);
	free(hh);
	return rc;
}

/* ---- picking ---- */

/* Which endpoints a pick may choose. */
struct filter {
	bool ignore_ejection;          /* panic */
	const struct px_ep *avoid;
};

static bool usable(const struct px_ep *ep, const struct filter *f)
{
	return ep->health != PX_HEALTH_CRITICAL && (f->ignore_ejection || !ep->ejected) && ep != f->avoid;
}

/* Smooth weighted round robin (nginx): each usable endpoint's current
 * weight grows by its weight; the largest is picked and set back by the
 * total. Weights 5, 1, 1 give a a b a c a a. */
static struct px_ep *pick_rr(struct px_cluster *c, const struct filter *f)
{
	struct px_ep *best = NULL;
	int64_t total = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct px_ep *ep = c->eps[i];

		if (!usable(ep, f))
			continue;
		ep->current += ep->weight;
		total += ep->weight;
		if (best == NULL || ep->current > best->current)
			best = ep;
	}
	if (best != NULL)
		best->current -= total;
	return best;
}

/* A usable endpoint other than skip, with probability weight / total. */
static struct px_ep *pick_weighted(struct px_cluster *c, const struct filter *f, const struct px_ep *skip)
{
	uint64_t sum = 0, r;

	for (size_t i = 0; i < c->n; i++)
		if (c->eps[i] != skip && usable(c->eps[i], f))
			sum += c->eps[i]->weight;
	if (sum == 0)
		return NULL;
	r = rnd(c) % sum;
	for (size_t i = 0; i < c->n; i++) {
		struct px_ep *ep = c->eps[i];

		if (ep == skip || !usable(ep, f))
			continue;
		if (r < ep->weight)
			return ep;
		r -= ep->weight;
	}
	return NULL;
}

/* Power of two choices: two distinct endpoints drawn by weight, the one
 * with fewer requests in flight per unit of weight wins (the first drawn
 * on a tie, so an idle cluster is balanced as random). */
static struct px_ep *pick_least(struct px_cluster *c, const struct filter *f)
{
	struct px_ep *a = pick_weighted(c, f, NULL), *b;

	if (a == NULL || (b = pick_weighted(c, f, a)) == NULL)
		return a;
	return (uint64_t)b->active * a->weight < (uint64_t)a->active * b->weight ? b : a;
}

/* The first usable endpoint clockwise from hash. */
static struct px_ep *pick_ring(struct px_cluster *c, const struct filter *f, uint64_t hash)
{
	size_t lo = 0, hi = c->ring_n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->ring[mid].hash < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = 0; k < c->ring_n; k++) {
		struct px_ep *ep = c->ring[(lo + k) % c->ring_n].ep;

		if (usable(ep, f))
			return ep;
	}
	return NULL;
}

struct px_ep *px_cluster_pick(struct px_cluster *c, uint64_t hash, bool has_hash,
			      const struct px_ep *avoid, uint64_t now_ms)
{
	size_t alive = 0, healthy = 0;
	bool avoid_alive = false, avoid_healthy = false;
	struct filter f = { .avoid = avoid };
	struct px_ep *ep = NULL;

	for (size_t i = 0; i < c->n; i++) {
		struct px_ep *e = c->eps[i];

		ep_expire(e, now_ms);
		if (e->health == PX_HEALTH_CRITICAL)
			continue;
		alive++;
		avoid_alive |= e == avoid;
		if (!e->ejected) {
			healthy++;
			avoid_healthy |= e == avoid;
		}
	}
	if (alive == 0)
		return NULL;
	f.ignore_ejection = healthy == 0;
	/* avoid only when another one is there */
	if ((f.ignore_ejection ? alive - avoid_alive : healthy - avoid_healthy) == 0)
		f.avoid = NULL;
	switch (c->policy) {
	case PX_LB_ROUND_ROBIN:
		ep = pick_rr(c, &f);
		break;
	case PX_LB_LEAST_REQUEST:
		ep = pick_least(c, &f);
		break;
	case PX_LB_RING_HASH:
		ep = has_hash ? pick_ring(c, &f, hash) : pick_weighted(c, &f, NULL);
		break;
	case PX_LB_RANDOM:
	default:
		ep = pick_weighted(c, &f, NULL);
		break;
	}
	return px_ep_ref(ep);
}

/* ---- passive health ---- */

size_t px_cluster_ejected(const struct px_cluster *c, uint64_t now_ms)
{
	size_t k = 0;

	for (size_t i = 0; i < c->n; i++)
		k += c->eps[i]->ejected && now_ms < c->eps[i]->ejected_until;
	return k;
}

/* Whether one more endpoint may be ejected: never the only endpoint;
 * otherwise when at most MaxEjectionPercent of the endpoints would be out,
 * or when none is out yet (so a small upstream can eject its one bad
 * endpoint: Envoy's documented "at least one host regardless", its
 * always_eject_one_host). MaxEjectionPercent 0 ejects nothing. */
static bool may_eject(const struct px_cluster *c, uint64_t now_ms)
{
	size_t out = px_cluster_ejected(c, now_ms);

	if (c->ph.max_ejection_percent == 0 || c->n < 2)
		return false;
	return out == 0 || (uint64_t)(out + 1) * 100 <= (uint64_t)c->ph.max_ejection_percent * c->n;
}

bool px_cluster_report(struct px_cluster *c, struct px_ep *ep, enum px_outcome o, uint64_t now_ms)
{
	uint64_t cap, ms;

	if (c == NULL || ep == NULL || ep->cluster != c)
		return false;
	if (o == PX_OUTCOME_SUCCESS) {
		ep->failures = 0;
		return false;
	}
	ep_expire(ep, now_ms);
	if (ep->failures < UINT32_MAX)
		ep->failures++;
	if (c->ph.consecutive_failures == 0 || ep->failures < c->ph.consecutive_failures || ep->ejected ||
	    !may_eject(c, now_ms))
		return false;
	/* The n-th ejection lasts n * BaseEjectionTime, at most the cap; an
	 * endpoint that stayed in for the cap since it came back starts again
	 * at 1. */
	cap = c->ph.base_ejection_ms > EJECTION_CAP_MS ? c->ph.base_ejection_ms : EJECTION_CAP_MS;
	if (ep->ejections > 0 && now_ms - ep->returned_at >= cap)
		ep->ejections = 0;
	if (ep->ejections < UINT32_MAX)
		ep->ejections++;
	ms = (uint64_t)ep->ejections * c->ph.base_ejection_ms;
	ep->ejected = true;
	ep->ejected_until = now_ms + (ms < cap ? ms : cap);
	ep->failures = 0;
	return true;
}

/* ---- retries ---- */

bool px_cluster_retry_begin(struct px_cluster *c, enum px_outcome o)
{
	unsigned bit = o == PX_OUTCOME_CONNECT_FAILURE ? PX_RETRY_CONNECT_FAILURE :
		       o == PX_OUTCOME_5XX ? PX_RETRY_5XX : 0;
	uint64_t budget;

	if (bit == 0 || (c->retries.on & bit) == 0 || c->retries.attempts == 0)
		return false;
	budget = c->active * c->retries.budget_percent / 100;
	if (budget < c->retries.min_retry_concurrency)
		budget = c->retries.min_retry_concurrency;
	if (c->retries_active >= budget)
		return false;
	c->retries_active++;
	return true;
}

void px_cluster_retry_end(struct px_cluster *c)
{
	if (c->retries_active > 0)
		c->retries_active--;
}

/* ---- accessors ---- */

uint32_t px_cluster_attempts(const struct px_cluster *c)
{
	return c->retries.attempts;
}

const struct px_timeouts *px_cluster_timeouts(const struct px_cluster *c)
{
	return &c->timeouts;
}

const char *px_cluster_hash_header(const struct px_cluster *c)
{
	return c->policy == PX_LB_RING_HASH ? c->hash_header : NULL;
}

const char *px_cluster_name(const struct px_cluster *c)
{
	return c->name;
}

size_t px_cluster_size(const struct px_cluster *c)
{
	return c->n;
}

/* px_tproxy: the transparent outbound listener (px_tproxy.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "err.h"
#include "log.h"
#include "px_config.h"
#include "px_proxy.h"
#include "px_splice.h"
#include "px_stats.h"
#include "px_tproxy.h"

/* The local ports of this process's passthrough connections, one bit per
 * port, shared by the workers: a connection of ours that comes back
 * through the listener (the proxy not running as the user the rules
 * exclude) is refused instead of relayed again, forever. */
static uint64_t own_ports[65536 / 64];

static void own_port_set(uint16_t port, bool on)
{
	uint64_t bit = UINT64_C(1) << (port % 64);

	if (on)
		__atomic_fetch_or(&own_ports[port / 64], bit, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&own_ports[port / 64], ~bit, __ATOMIC_RELAXED);
}

static bool own_port(uint16_t port)
{
	return (__atomic_load_n(&own_ports[port / 64], __ATOMIC_RELAXED) >> (port % 64)) & 1;
}

/* The routing table: (IPv4 address, port) -> target index, open
 * addressing, rebuilt from the slot when its generation moves. */
struct route {
	uint32_t addr;                  /* network order; 0: empty slot */
	uint16_t port;
	int target;                     /* index into targets, -1: no listener for it */
	const char *upstream;           /* the snapshot's name (valid with cfg) */
};

struct target {
	const char *upstream;           /* upstream_cluster */
	struct px_listener *l;
};

/* A passthrough connection: connecting, then a tunnel. */
struct pconn {
	struct px_tproxy *t;
	struct pconn *prev, *next;
	int cfd, ufd;                   /* owned until the tunnel takes them */
	uint16_t own;                   /* our local port (own_ports), 0: none */
	struct event *ev;               /* the connect's writability or timeout */
	struct px_splice *sp;
	char dst[INET_ADDRSTRLEN + 8];
};

struct px_tproxy {
	struct px_tproxy_cfg cfg;
	struct event_base *base;
	struct evconnlistener *ev;
	int sid;
	struct target *targets;
	size_t ntargets;
	struct route *routes;
	size_t cap;                     /* a power of two, or 0 */
	uint64_t gen;
	struct px_config *snap;         /* the snapshot the table was built from */
	struct pconn *conns;
	size_t nconns;
	/* at most one "connection closed" line a second per reason */
	time_t last_log[PX_STATS_TP_ERROR + 1];
	unsigned quiet[PX_STATS_TP_ERROR + 1];  /* lines left out since */
};

static uint32_t hash(uint32_t addr, uint16_t port)
{
	uint64_t h = ((uint64_t)addr << 16 | port) * UINT64_C(0x9e3779b97f4a7c15);

	return (uint32_t)(h >> 32);
}

static struct route *route_find(const struct px_tproxy *t, uint32_t addr, uint16_t port)
{
	if (t->cap == 0)
		return NULL;
	for (size_t i = hash(addr, port) & (t->cap - 1), n = 0; n < t->cap;
	     i = (i + 1) & (t->cap - 1), n++) {
		struct route *r = &t->routes[i];

		if (r->addr == 0)
			return NULL;
		if (r->addr == addr && r->port == port)
			return r;
	}
	return NULL;
}

static int target_of(const struct px_tproxy *t, const char *upstream)
{
	for (size_t i = 0; i < t->ntargets; i++)
		if (strcmp(t->targets[i].upstream, upstream) == 0)
			return (int)i;
	return -1;
}

/* Rebuilds the table from the slot's current snapshot (IPv4 destinations
 * only: the proxy and the rules are IPv4). On no memory the old table
 * stays (and the next connection tries again). */
static void follow(struct px_tproxy *t)
{
	uint64_t gen = px_config_slot_generation(t->cfg.slot);
	struct px_config *c;
	struct route *routes;
	size_t n = 0, cap = 16;

	if (gen == t->gen)
		return;
	c = px_config_slot_get(t->cfg.slot);
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_upstreams; i++)
		n += c->upstreams[i].n_destinations;
	while (cap < 2 * n)
		cap *= 2;
	routes = calloc(cap, sizeof(*routes));
	if (routes == NULL) {
		px_config_unref(c);
		return;
	}
	free(t->routes);
	t->routes = routes;
	t->cap = cap;
	px_config_unref(t->snap);
	t->snap = c;
	t->gen = gen;
	for (size_t i = 0; i < c->n_upstreams; i++) {
		const struct px_upstream *u = &c->upstreams[i];
		int target = target_of(t, u->name);

		if (target < 0 && u->n_destinations > 0)
			log_warnx("proxy", "transparent: upstream %s has no listener yet (added after "
				  "start: restart the proxy); connections to its destinations are "
				  "closed", u->name);
		for (size_t j = 0; j < u->n_destinations; j++) {
			struct in_addr a;
			uint16_t port = u->destinations[j].port;
			size_t k;

			if (inet_pton(AF_INET, u->destinations[j].address, &a) != 1 || a.s_addr == 0)
				continue;
			for (k = hash(a.s_addr, port) & (cap - 1); routes[k].addr != 0; k = (k + 1) & (cap - 1))
				;
			routes[k] = (struct route){ .addr = a.s_addr, .port = port, .target = target,
						    .upstream = u->name };
		}
	}
}

/* ---- passthrough ---- */

static void pconn_free(struct pconn *p)
{
	struct px_tproxy *t = p->t;

	if (p->prev)
		p->prev->next = p->next;
	else
		t->conns = p->next;
	if (p->next)
		p->next->prev = p->prev;
	t->nconns--;
	if (p->ev)
		event_free(p->ev);
	if (p->sp)
		px_splice_free(p->sp);     /* closes both sockets */
	if (p->cfd >= 0)
		close(p->cfd);
	if (p->ufd >= 0)
		close(p->ufd);
	if (p->own)
		own_port_set(p->own, false);
	free(p);
}

static void tunnel_done(void *ud, const struct px_splice_result *r)
{
	struct pconn *p = ud;

	log_debug("proxy", "transparent passthrough closed: dst=%s out=%llu in=%llu%s", p->dst,
		  (unsigned long long)r->a_to_b, (unsigned long long)r->b_to_a,
		  r->idle_timeout ? " (idle)" : "");
	pconn_free(p);
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *p = arg;
	struct px_tproxy *t = p->t;
	socklen_t len = sizeof(int);
	char *err = NULL;
	int e = 0;

	if (what & EV_TIMEOUT)
		e = ETIMEDOUT;
	else if (getsockopt(p->ufd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
		e = errno;
	if (e != 0) {
		log_warnx("proxy", "transparent passthrough: cannot connect to %s: %s", p->dst,
			  strerror(e));
		px_stats_tproxy(t->cfg.stats, t->sid, PX_STATS_TP_ERROR);
		pconn_free(p);
		return;
	}
	event_free(p->ev);
	p->ev = NULL;
	if (px_splice_new(&p->sp, t->base, p->cfd, p->ufd, NULL, 0,
			  t->cfg.idle_ms ? t->cfg.idle_ms : PX_TPROXY_IDLE_MS, tunnel_done, p,
			  &err) != WEFT_OK) {
		/* px_splice closed both sockets */
		p->cfd = p->ufd = -1;
		log_warnx("proxy", "transparent passthrough: %s: %s", p->dst, err ? err : "?");
		free(err);
		px_stats_tproxy(t->cfg.stats, t->sid, PX_STATS_TP_ERROR);
		pconn_free(p);
		return;
	}
	p->cfd = p->ufd = -1;
	px_stats_tproxy(t->cfg.stats, t->sid, PX_STATS_TP_PASSTHROUGH);
}

static void passthrough(struct px_tproxy *t, int fd, const struct sockaddr_in *dst)
{
	uint32_t ms = t->cfg.connect_timeout_ms ? t->cfg.connect_timeout_ms
						: PX_TPROXY_CONNECT_TIMEOUT_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct sockaddr_in self;
	socklen_t slen = sizeof(self);
	struct pconn *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		close(fd);
		px_stats_tproxy(t->cfg.stats, t->sid, PX_STATS_TP_ERROR);
		return;
	}
	p->t = t;
	p->cfd = fd;
	p->next = t->conns;
	if (t->conns)
		t->conns->prev = p;
	t->conns = p;
	t->nconns++;
	inet_ntop(AF_INET, &dst->sin_addr, p->dst, INET_ADDRSTRLEN);
	snprintf(p->dst + strlen(p->dst), sizeof(p->dst) - strlen(p->dst), ":%u",
		 (unsigned)ntohs(dst->sin_port));
	/* the local port is taken (bind) and marked ours before the SYN
	 * leaves: another worker may accept the connection coming back
	 * before connect() has even returned here */
	memset(&self, 0, sizeof(self));
	self.sin_family = AF_INET;
	p->ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->ufd < 0 || bind(p->ufd, (const struct sockaddr *)&self, sizeof(self)) != 0 ||
	    getsockname(p->ufd, (struct sockaddr *)&self, &slen) != 0) {
		log_warnx("proxy", "transparent passthrough: no socket for %s: %s", p->dst,
			  strerror(errno));
		px_stats_tproxy(t->cfg.stats, t->sid, PX_STATS_TP_ERROR);
		pconn_free(p);
		return;
	}
	p->own = ntohs(self.sin_port);
	own_port_set(p->own, true);
	if (connect(p->ufd, (const struct sockaddr *)dst, sizeof(*dst)) != 0 && errno != EINPROGRESS) {
		log_warnx("proxy", "transparent passthrough: cannot connect to %s: %s", p->dst,
			  strerror(errno));
		px_stats_tproxy(t->cfg.stats, t->sid, PX_STATS_TP_ERROR);
		pconn_free(p);
		return;
	}
	p->ev = event_new(t->base, p->ufd, EV_WRITE, on_connected, p);
	if (p->ev == NULL || event_add(p->ev, &tv) != 0) {
		px_stats_tproxy(t->cfg.stats, t->sid, PX_STATS_TP_ERROR);
		pconn_free(p);
	}
}

/* ---- accept ---- */

static void refuse(struct px_tproxy *t, int fd, enum px_stats_tproxy_result r, const char *peer,
		   const char *dst, const char *why)
{
	time_t now = time(NULL);

	close(fd);
	px_stats_tproxy(t->cfg.stats, t->sid, r);
	if (now == t->last_log[r]) {
		t->quiet[r]++;
		return;
	}
	log_info("proxy", "transparent: connection closed: peer=%s dst=%s reason=%s%s", peer, dst,
		 why, t->quiet[r] ? " (and more lines like it left out)" : "");
	t->last_log[r] = now;
	t->quiet[r] = 0;
}

static bool is_self(const struct px_tproxy *t, const struct sockaddr_in *dst)
{
	return dst->sin_port == t->cfg.listen.sin_port &&
	       (dst->sin_addr.s_addr == t->cfg.listen.sin_addr.s_addr ||
		t->cfg.listen.sin_addr.s_addr == INADDR_ANY ||
		(ntohl(dst->sin_addr.s_addr) >> 24) == 127);
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct px_tproxy *t = arg;
	struct sockaddr_in dst, peer;
	socklen_t dlen = sizeof(dst);
	char ps[INET_ADDRSTRLEN + 8], ds[INET_ADDRSTRLEN + 8];
	struct route *r;

	memset(&peer, 0, sizeof(peer));
	if (sa != NULL && len >= (int)sizeof(peer))
		memcpy(&peer, sa, sizeof(peer));
	inet_ntop(AF_INET, &peer.sin_addr, ps, INET_ADDRSTRLEN);
	snprintf(ps + strlen(ps), sizeof(ps) - strlen(ps), ":%u", (unsigned)ntohs(peer.sin_port));
	if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen) != 0 || dst.sin_family != AF_INET ||
	    is_self(t, &dst)) {
		refuse(t, fd, PX_STATS_TP_NOT_REDIRECTED, ps, "-", "not-redirected");
		return;
	}
	inet_ntop(AF_INET, &dst.sin_addr, ds, INET_ADDRSTRLEN);
	snprintf(ds + strlen(ds), sizeof(ds) - strlen(ds), ":%u", (unsigned)ntohs(dst.sin_port));
	if (own_port(ntohs(peer.sin_port))) {
		refuse(t, fd, PX_STATS_TP_ERROR, ps, ds,
		       "loop (the proxy's own connection was redirected: run weft-proxy as the user "
		       "given to weftctl install transparent-proxy --proxy-uid)");
		return;
	}
	follow(t);
	r = route_find(t, dst.sin_addr.s_addr, ntohs(dst.sin_port));
	if (r != NULL && r->target >= 0) {
		log_debug("proxy", "transparent: peer=%s dst=%s upstream=%s", ps, ds, r->upstream);
		px_stats_tproxy(t->cfg.stats, t->sid, PX_STATS_TP_UPSTREAM);
		px_listener_adopt(t->targets[r->target].l, fd, &peer);
		return;
	}
	if (r == NULL && t->snap != NULL && t->snap->transparent.passthrough &&
	    (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
		passthrough(t, fd, &dst);
		return;
	}
	refuse(t, fd, PX_STATS_TP_NO_UPSTREAM, ps, ds,
	       r != NULL ? "upstream-without-listener" : "no-upstream");
}

int px_tproxy_new(struct px_tproxy **out, struct event_base *base, const struct px_tproxy_cfg *cfg,
		  struct px_listener *const *listeners, const struct px_listener_cfg *lcfg, size_t n,
		  char **err)
{
	struct px_tproxy *t = calloc(1, sizeof(*t));
	int rc = WEFT_OK;

	*out = NULL;
	if (t == NULL || (t->targets = calloc(n ? n : 1, sizeof(*t->targets))) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "transparent listener: out of memory");
		goto out;
	}
	t->cfg = *cfg;
	t->base = base;
	t->gen = UINT64_MAX;
	if (t->cfg.name == NULL)
		t->cfg.name = "transparent";
	t->sid = px_stats_listener(cfg->stats, t->cfg.name);
	for (size_t i = 0; i < n; i++)
		if (lcfg[i].slot != NULL && lcfg[i].upstream_cluster != NULL)
			t->targets[t->ntargets++] = (struct target){ lcfg[i].upstream_cluster,
								     listeners[i] };
	t->ev = evconnlistener_new_bind(base, on_accept, t, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
					LEV_OPT_CLOSE_ON_EXEC |
					(cfg->reuse_port ? LEV_OPT_REUSEABLE_PORT : 0), 512,
					(const struct sockaddr *)&cfg->listen, sizeof(cfg->listen));
	if (t->ev == NULL) {
		rc = weft_errf(err, WEFT_EIO, "%s listener: bind: %s", t->cfg.name, strerror(errno));
		goto out;
	}
	*out = t;
	t = NULL;
out:
	px_tproxy_free(t);
	return rc;
}

void px_tproxy_drain(struct px_tproxy *t)
{
	if (t == NULL || t->ev == NULL)
		return;
	evconnlistener_free(t->ev);
	t->ev = NULL;
	for (struct pconn *p = t->conns, *next; p != NULL; p = next) {
		next = p->next;
		if (p->sp == NULL)
			pconn_free(p);      /* still connecting */
	}
}

size_t px_tproxy_conns(const struct px_tproxy *t)
{
	return t ? t->nconns : 0;
}

void px_tproxy_free(struct px_tproxy *t)
{
	if (t == NULL)
		return;
	while (t->conns != NULL)
		pconn_free(t->conns);
	if (t->ev)
		evconnlistener_free(t->ev);
	px_config_unref(t->snap);
	free(t->routes);
	free(t->targets);
	free(t);
}

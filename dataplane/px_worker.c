/* px_worker: worker threads, one event loop each (px_worker.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "err.h"
#include "log.h"
#include "px_accesslog.h"
#include "px_enforce.h"
#include "px_stats.h"
#include "px_worker.h"

#define REPORT_MS 20            /* while draining: how often a worker reports */
#define DRAIN_ACK_WAIT_S 1      /* px_worker_drain() waits this long at most */

struct worker {
	struct px_worker *pool;
	unsigned id;
	struct event_base *base;
	struct px_stats *stats;
	struct px_accesslog *alog;
	struct px_enforce *enf;
	struct px_listener **l;         /* pool->nl of them */
	struct px_sni_listener *pt;     /* the passthrough listener, or NULL */
	struct px_tproxy *tp;           /* the transparent listener, or NULL */
	struct event *stop_ev;          /* activated from the main thread */
	struct event *drain_ev;         /* likewise */
	struct event *report;           /* while draining: publishes conns */
	pthread_t th;
	bool started;
	/* written by the worker, read by the main thread: atomics */
	size_t conns;                   /* open connections, as last reported */
	int drained;                    /* its listeners are closed */
};

struct px_worker {
	unsigned n;
	size_t nl;
	struct worker *w;
	struct px_stats **stats;        /* w[k].stats, for px_stats_render() */
	pthread_mutex_t lock;           /* guards acks, signalled through cond */
	pthread_cond_t cond;
	unsigned acks;                  /* workers done with px_worker_drain() */
	bool drain_asked, stopped;      /* main thread only */
};

/* ---- in the worker's thread ---- */

static void report(struct worker *w)
{
	size_t n = 0;

	for (size_t i = 0; i < w->pool->nl; i++)
		n += px_listener_conns(w->l[i]);
	if (w->pt != NULL)
		n += px_sni_listener_conns(w->pt);
	n += px_tproxy_conns(w->tp);
	__atomic_store_n(&w->conns, n, __ATOMIC_RELAXED);
}

static void on_report(evutil_socket_t fd, short what, void *arg)
{
	report(arg);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval tv = {0, REPORT_MS * 1000};

	for (size_t i = 0; i < w->pool->nl; i++)
		px_listener_drain(w->l[i]);
	if (w->pt != NULL)
		px_sni_listener_drain(w->pt);
	px_tproxy_drain(w->tp);
	report(w);
	__atomic_store_n(&w->drained, 1, __ATOMIC_RELEASE);
	event_add(w->report, &tv);
	pthread_mutex_lock(&w->pool->lock);
	w->pool->acks++;
	pthread_cond_broadcast(&w->pool->cond);
	pthread_mutex_unlock(&w->pool->lock);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	event_base_loopbreak(w->base);
}

static void *run(void *arg)
{
	struct worker *w = arg;

	log_info("proxy", "worker %u started: listeners=%zu", w->id, w->pool->nl);
	if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
		log_warnx("proxy", "worker %u: event loop failed", w->id);
	/* A few more turns: libevent's TLS bufferevent schedules its write
	 * callback deferred, holding a reference that only running it drops;
	 * one left pending at the break would keep the bufferevent (and its
	 * SSL) from ever being freed. */
	for (int i = 0; i < 3; i++)
		event_base_loop(w->base, EVLOOP_NONBLOCK);
	return NULL;
}

/* ---- in the main thread ---- */

static bool enforced(const struct px_listener_cfg *c)
{
	return c->authorize == px_enforce_authorize && c->authorize_ud == NULL;
}

/* Worker k: its loop, stats, access log, enforcement, listeners. */
static int worker_init(struct px_worker *p, unsigned k, const struct px_worker_cfg *cfg,
		       char **err)
{
	struct worker *w = &p->w[k];
	bool enforce = false;
	int rc;

	w->pool = p;
	w->id = k;
	{
		/* epoll changes are batched and those that cancel out within
		 * one loop turn never reach the kernel (a TLS write adds and
		 * removes EPOLLOUT in the same turn). Nothing here dup()s a
		 * descriptor that an event watches, which the changelist would
		 * not survive (px_proxy hands sockets to px_splice unduplicated). */
		struct event_config *ec = event_config_new();

		if (ec != NULL)
			event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		w->base = ec != NULL ? event_base_new_with_config(ec) : NULL;
		if (ec != NULL)
			event_config_free(ec);
	}
	w->stats = px_stats_new();
	w->l = calloc(p->nl ? p->nl : 1, sizeof(*w->l));
	if (w->base == NULL || w->stats == NULL || w->l == NULL)
		return weft_errf(err, WEFT_ENOMEM, "worker %u: out of memory (event loop)", k);
	w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
	w->drain_ev = event_new(w->base, -1, 0, on_drain, w);
	w->report = event_new(w->base, -1, EV_PERSIST, on_report, w);
	if (w->stop_ev == NULL || w->drain_ev == NULL || w->report == NULL)
		return weft_errf(err, WEFT_ENOMEM, "worker %u: out of memory (events)", k);
	if (cfg->access_log != NULL) {
		rc = px_accesslog_open(&w->alog, w->base, cfg->access_log, 0, w->stats, err);
		if (rc != WEFT_OK)
			return rc;
	}
	for (size_t i = 0; i < p->nl; i++)
		enforce = enforce || enforced(&cfg->listeners[i]);
	if (enforce) {
		if (cfg->enforce_slot == NULL)
			return weft_errf(err, WEFT_EINVAL, "worker %u: a listener enforces intentions "
					 "but no config slot was given", k);
		rc = px_enforce_new(&w->enf, cfg->enforce_slot, cfg->enforce_http, err);
		if (rc != WEFT_OK)
			return rc;
		px_enforce_set_stats(w->enf, w->stats);
	}
	for (size_t i = 0; i < p->nl; i++) {
		struct px_listener_cfg lc = cfg->listeners[i];

		lc.stats = w->stats;
		lc.access_log = w->alog;
		lc.reuse_port = lc.reuse_port || p->n > 1;
		if (enforced(&lc))
			lc.authorize_ud = w->enf;
		rc = px_listener_new(&w->l[i], w->base, &lc, err);
		if (rc != WEFT_OK)
			return rc;
	}
	if (cfg->passthrough != NULL) {
		struct px_sni_cfg sc = *cfg->passthrough;

		sc.stats = w->stats;
		sc.reuse_port = sc.reuse_port || p->n > 1;
		rc = px_sni_listener_new(&w->pt, w->base, &sc, err);
		if (rc != WEFT_OK)
			return rc;
	}
	if (cfg->transparent != NULL) {
		struct px_tproxy_cfg tc = *cfg->transparent;

		tc.stats = w->stats;
		tc.reuse_port = tc.reuse_port || p->n > 1;
		rc = px_tproxy_new(&w->tp, w->base, &tc, w->l, cfg->listeners, p->nl, err);
		if (rc != WEFT_OK)
			return rc;
	}
	return WEFT_OK;
}

int px_worker_new(struct px_worker **out, const struct px_worker_cfg *cfg, char **err)
{
	struct px_worker *p = NULL;
	pthread_condattr_t ca;
	int rc = WEFT_OK;

	*out = NULL;
	if (cfg->n < 1 || cfg->n > PX_WORKERS_MAX)
		return weft_errf(err, WEFT_EINVAL, "workers: want 1..%d, got %u", PX_WORKERS_MAX, cfg->n);
	/* drain and stop reach the loops from the main thread: their bases
	 * need locks and a wake-up channel (before any of them is made) */
	if (evthread_use_pthreads() != 0)
		return weft_errf(err, WEFT_EINVAL, "workers: libevent threading is unavailable");
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return weft_errf(err, WEFT_ENOMEM, "workers: out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->n = cfg->n;
	p->nl = cfg->nlisteners;
	p->w = calloc(p->n, sizeof(*p->w));
	p->stats = calloc(p->n, sizeof(*p->stats));
	if (p->w == NULL || p->stats == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "workers: out of memory");
		goto out;
	}
	for (unsigned k = 0; k < p->n; k++) {
		rc = worker_init(p, k, cfg, err);
		if (rc != WEFT_OK)
			goto out;
		p->stats[k] = p->w[k].stats;
	}
	*out = p;
	p = NULL;
out:
	px_worker_free(p);
	return rc;
}

int px_worker_start(struct px_worker *p, char **err)
{
	sigset_t all, old;
	int rc = WEFT_OK, e;

	/* the threads inherit this mask: signals go to the main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned k = 0; k < p->n; k++) {
		if (p->w[k].started)
			continue;
		e = pthread_create(&p->w[k].th, NULL, run, &p->w[k]);
		if (e != 0) {
			rc = weft_errf(err, WEFT_EIO, "worker %u: cannot start its thread: %s", k,
				       strerror(e));
			break;
		}
		p->w[k].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

struct px_stats *const *px_worker_stats(const struct px_worker *p, size_t *n)
{
	*n = p->n;
	return p->stats;
}

void px_worker_drain(struct px_worker *p)
{
	struct timespec until;
	int e = 0;

	if (p->drain_asked || p->stopped)
		return;
	p->drain_asked = true;
	for (unsigned k = 0; k < p->n; k++)
		event_active(p->w[k].drain_ev, EV_TIMEOUT, 0);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += DRAIN_ACK_WAIT_S;
	pthread_mutex_lock(&p->lock);
	while (p->acks < p->n && e != ETIMEDOUT)
		e = pthread_cond_timedwait(&p->cond, &p->lock, &until);
	if (p->acks < p->n)
		log_warnx("proxy", "drain: %u of %u workers have not closed their listeners yet",
			  p->n - p->acks, p->n);
	pthread_mutex_unlock(&p->lock);
}

size_t px_worker_conns(const struct px_worker *p)
{
	size_t n = 0;

	for (unsigned k = 0; k < p->n; k++)
		n += __atomic_load_n(&p->w[k].drained, __ATOMIC_ACQUIRE) ?
		     __atomic_load_n(&p->w[k].conns, __ATOMIC_RELAXED) : 1;
	return n;
}

void px_worker_stop(struct px_worker *p)
{
	if (p == NULL || p->stopped)
		return;
	p->stopped = true;
	/* event_active, not event_base_loopbreak: a loop that has not started
	 * yet would forget a break, it runs an active event */
	for (unsigned k = 0; k < p->n; k++)
		if (p->w[k].started)
			event_active(p->w[k].stop_ev, EV_TIMEOUT, 0);
	for (unsigned k = 0; k < p->n; k++)
		if (p->w[k].started) {
			pthread_join(p->w[k].th, NULL);
			p->w[k].started = false;
		}
}

void px_worker_free(struct px_worker *p)
{
	if (p == NULL)
		return;
	px_worker_stop(p);
	for (unsigned k = 0; p->w != NULL && k < p->n; k++) {
		struct worker *w = &p->w[k];

		/* the connections first: they write to the log and the stats */
		px_tproxy_free(w->tp);
		for (size_t i = 0; w->l != NULL && i < p->nl; i++)
			px_listener_free(w->l[i]);
		free(w->l);
		px_sni_listener_free(w->pt);
		px_accesslog_free(w->alog);
		px_enforce_free(w->enf);
		if (w->stop_ev)
			event_free(w->stop_ev);
		if (w->drain_ev)
			event_free(w->drain_ev);
		if (w->report)
			event_free(w->report);
		if (w->base)
			event_base_free(w->base);
		px_stats_free(w->stats);
	}
	free(p->w);
	free(p->stats);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

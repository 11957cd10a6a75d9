/* px_stats: counters and histograms, one instance per event loop
 * (px_stats.h).
 *
 * One writer per instance (its worker thread), readers on the admin's
 * thread. Every counter is a uint64_t that the writer bumps with a
 * relaxed atomic load and store (INC: a plain load, add and store on
 * x86-64 and arm64, no locked instruction: nothing else writes it) and
 * readers load relaxed: a scrape may be a moment stale, never torn. A
 * denial slot is filled and then published by a release store of its
 * source pointer; readers acquire that pointer before reading the rest. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "px_stats.h"

const double px_stats_bucket_le[PX_STATS_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

/* the reasons px_tls_failure() gives, then "other" */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ADD(x, v) __atomic_store_n(&(x), LOAD(x) + (v), __ATOMIC_RELAXED)
#define INC(x) ADD(x, 1)

static const char *const TLS_REASONS[] = {
	"foreign-ca", "expired", "not-yet-valid", "no-client-cert", "wrong-spiffe-id",
	"bad-spiffe-id", "not-tls", "handshake", "other",
};
#define N_REASONS (sizeof(TLS_REASONS) / sizeof(TLS_REASONS[0]))
/* px_sni's refusals */
static const char *const SNI_REASONS[] = { "no-route", "no-sni", "not-tls", "timeout" };
#define N_SNI_REASONS (sizeof(SNI_REASONS) / sizeof(SNI_REASONS[0]))
/* px_tproxy's outcomes (enum px_stats_tproxy_result) */
static const char *const TP_RESULTS[] = { "upstream", "passthrough", "no-upstream",
					  "not-redirected", "error" };
#define N_TP_RESULTS (sizeof(TP_RESULTS) / sizeof(TP_RESULTS[0]))

struct lstats {
	char name[32];
	uint64_t conn_opened, conn_closed;
	uint64_t req[6];                        /* 1xx..5xx, then other */
	uint64_t hist[PX_STATS_BUCKETS + 1];    /* per bucket (not cumulative), then +Inf */
	uint64_t dur_us_sum;
	uint64_t bytes_in, bytes_out;
	uint64_t tls_ok[2];
	uint64_t tls_fail[2][N_REASONS];
	uint64_t up_connect_fail;
	uint64_t up_event[PX_STATS_N_UPSTREAM_EVENTS];
	uint64_t sni_refused[N_SNI_REASONS];
	uint64_t tproxy[N_TP_RESULTS];
};

struct denial {
	char *source, *destination, *intention;   /* NULL: empty slot */
	uint64_t n;
};

struct px_stats {
	struct lstats l[PX_STATS_MAX_LISTENERS];
	int nl;
	struct denial d[PX_STATS_MAX_DENIALS];  /* open addressing on the triple's hash */
	unsigned nd;
	uint64_t d_other;
	uint64_t alog_dropped;
};

struct px_stats *px_stats_new(void)
{
	return calloc(1, sizeof(struct px_stats));
}

void px_stats_free(struct px_stats *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < PX_STATS_MAX_DENIALS; i++) {
		free(s->d[i].source);
		free(s->d[i].destination);
		free(s->d[i].intention);
	}
	free(s);
}

int px_stats_listener(struct px_stats *s, const char *name)
{
	if (s == NULL || s->nl == PX_STATS_MAX_LISTENERS)
		return -1;
	snprintf(s->l[s->nl].name, sizeof(s->l[s->nl].name), "%s", name);
	return s->nl++;
}

static struct lstats *L(struct px_stats *s, int li)
{
	return s != NULL && li >= 0 && li < s->nl ? &s->l[li] : NULL;
}

void px_stats_conn_open(struct px_stats *s, int li)
{
	struct lstats *l = L(s, li);

	if (l)
		INC(l->conn_opened);
}

void px_stats_conn_close(struct px_stats *s, int li)
{
	struct lstats *l = L(s, li);

	if (l)
		INC(l->conn_closed);
}

void px_stats_request(struct px_stats *s, int li, int status, uint64_t duration_us)
{
	struct lstats *l = L(s, li);
	size_t b = 0;

	if (l == NULL)
		return;
	INC(l->req[status >= 100 && status <= 599 ? status / 100 - 1 : 5]);
	while (b < PX_STATS_BUCKETS && (double)duration_us > px_stats_bucket_le[b] * 1e6)
		b++;
	INC(l->hist[b]);
	ADD(l->dur_us_sum, duration_us);
}

void px_stats_bytes(struct px_stats *s, int li, uint64_t in, uint64_t out)
{
	struct lstats *l = L(s, li);

	if (l) {
		ADD(l->bytes_in, in);
		ADD(l->bytes_out, out);
	}
}

void px_stats_tls(struct px_stats *s, int li, enum px_stats_side side, const char *reason)
{
	struct lstats *l = L(s, li);
	size_t r = 0;

	if (l == NULL || (side != PX_STATS_CLIENT && side != PX_STATS_UPSTREAM))
		return;
	if (reason == NULL) {
		INC(l->tls_ok[side]);
		return;
	}
	while (r < N_REASONS - 1 && strcmp(TLS_REASONS[r], reason) != 0)
		r++;
	INC(l->tls_fail[side][r]);
}

void px_stats_upstream_connect_failure(struct px_stats *s, int li)
{
	struct lstats *l = L(s, li);

	if (l)
		INC(l->up_connect_fail);
}

void px_stats_upstream_event(struct px_stats *s, int li, enum px_stats_upstream_event e)
{
	struct lstats *l = L(s, li);

	if (l && e < PX_STATS_N_UPSTREAM_EVENTS)
		l->up_event[e]++;
}

void px_stats_sni_refused(struct px_stats *s, int li, const char *reason)
{
	struct lstats *l = L(s, li);

	for (size_t r = 0; l != NULL && reason != NULL && r < N_SNI_REASONS; r++)
		if (strcmp(SNI_REASONS[r], reason) == 0)
			l->sni_refused[r]++;
}

void px_stats_tproxy(struct px_stats *s, int li, enum px_stats_tproxy_result r)
{
	struct lstats *l = L(s, li);

	if (l != NULL && (size_t)r < N_TP_RESULTS)
		INC(l->tproxy[r]);
}

static uint64_t fnv(uint64_t h, const char *p)
{
	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return (h ^ 0xff) * 1099511628211ull;
}

static char *dup255(const char *p)
{
	return strndup(p ? p : "", 255);
}

void px_stats_denial(struct px_stats *s, const char *source, const char *destination,
		     const char *intention)
{
	char src[256], dst[256], ixn[256];
	uint64_t h;

	if (s == NULL)
		return;
	/* compare on what is kept: the first 255 bytes */
	snprintf(src, sizeof(src), "%s", source ? source : "");
	snprintf(dst, sizeof(dst), "%s", destination ? destination : "");
	snprintf(ixn, sizeof(ixn), "%s", intention ? intention : "");
	h = fnv(fnv(fnv(14695981039346656037ull, src), dst), ixn);
	for (size_t i = 0; i < PX_STATS_MAX_DENIALS; i++) {
		struct denial *d = &s->d[(h + i) % PX_STATS_MAX_DENIALS];

		if (d->source == NULL) {
			char *pub;

			if (s->nd >= PX_STATS_MAX_DENIALS * 3 / 4)
				break;  /* keep probes short: the rest go to _other */
			pub = dup255(src);
			d->destination = dup255(dst);
			d->intention = dup255(ixn);
			if (pub == NULL || d->destination == NULL || d->intention == NULL) {
				free(pub);
				free(d->destination);
				free(d->intention);
				d->destination = d->intention = NULL;
				break;
			}
			s->nd++;
			__atomic_store_n(&d->n, 1, __ATOMIC_RELAXED);
			/* publish: a reader that sees source sees the rest */
			__atomic_store_n(&d->source, pub, __ATOMIC_RELEASE);
			return;
		}
		if (strcmp(d->source, src) == 0 && strcmp(d->destination, dst) == 0 &&
		    strcmp(d->intention, ixn) == 0) {
			INC(d->n);
			return;
		}
	}
	INC(s->d_other);
}

void px_stats_accesslog_dropped(struct px_stats *s, uint64_t n)
{
	if (s)
		ADD(s->alog_dropped, n);
}

/* ---- rendering ---- */

/* A label value: backslash, double quote and newline escaped. */
static int label(struct buf *b, const char *v)
{
	int rc = 0;

	for (; *v && rc == 0; v++) {
		if (*v == '\\')
			rc = buf_append(b, "\\\\", 2);
		else if (*v == '"')
			rc = buf_append(b, "\\\"", 2);
		else if (*v == '\n')
			rc = buf_append(b, "\\n", 2);
		else
			rc = buf_append(b, v, 1);
	}
	return rc;
}

static int head(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP weft_proxy_%s %s\n# TYPE weft_proxy_%s %s\n", name, help, name, type);
}

/* name{listener="L"<extra>} value */
static int sample(struct buf *b, const char *name, const char *listener, const char *extra,
		  uint64_t v)
{
	int rc = buf_printf(b, "weft_proxy_%s{listener=\"", name);

	rc = rc ? rc : label(b, listener);
	return rc ? rc : buf_printf(b, "\"%s} %llu\n", extra ? extra : "", (unsigned long long)v);
}

/* The sum over the n instances of the counter at the same place as
 * s[0]->field. */
static uint64_t sum_at(struct px_stats *const *s, size_t n, size_t off)
{
	uint64_t t = 0;

	for (size_t k = 0; k < n; k++)
		t += __atomic_load_n((const uint64_t *)(const void *)((const char *)s[k] + off),
				     __ATOMIC_RELAXED);
	return t;
}
#define SUM(field) sum_at(s, n, (size_t)((const char *)&s[0]->field - (const char *)s[0]))

/* A published denial slot, as read for one scrape. */
struct dsnap {
	const struct denial *d;
	uint64_t n;
};

static int dsnap_cmp(const void *a, const void *b)
{
	const struct denial *x = ((const struct dsnap *)a)->d, *y = ((const struct dsnap *)b)->d;
	int c = strcmp(__atomic_load_n(&x->source, __ATOMIC_RELAXED),
		       __atomic_load_n(&y->source, __ATOMIC_RELAXED));

	if (c == 0)
		c = strcmp(x->destination, y->destination);
	return c ? c : strcmp(x->intention, y->intention);
}

/* The denial series: the slots published in every instance, sorted by
 * triple, one sample per triple with the sum of its slots. */
static int render_denials(struct px_stats *const *s, size_t n, struct buf *out)
{
	struct dsnap *v = NULL;
	size_t nv = 0;
	int rc = 0;

	if (n > 0 && (v = malloc(n * PX_STATS_MAX_DENIALS * sizeof(*v))) == NULL)
		return WEFT_ENOMEM;
	for (size_t k = 0; k < n; k++)
		for (size_t j = 0; j < PX_STATS_MAX_DENIALS; j++) {
			const struct denial *d = &s[k]->d[j];

			if (__atomic_load_n(&d->source, __ATOMIC_ACQUIRE) != NULL)
				v[nv++] = (struct dsnap){d, __atomic_load_n(&d->n, __ATOMIC_RELAXED)};
		}
	if (nv > 1)
		qsort(v, nv, sizeof(*v), dsnap_cmp);
	for (size_t i = 0, first; i < nv && rc == 0; ) {
		const struct denial *d = v[i].d;
		uint64_t total = 0;

		for (first = i; i < nv && dsnap_cmp(&v[i], &v[first]) == 0; i++)
			total += v[i].n;
		rc = buf_printf(out, "weft_proxy_intention_denials_total{source=\"");
		rc = rc ? rc : label(out, __atomic_load_n(&d->source, __ATOMIC_RELAXED));
		rc = rc ? rc : buf_printf(out, "\",destination=\"");
		rc = rc ? rc : label(out, d->destination);
		rc = rc ? rc : buf_printf(out, "\",intention=\"");
		rc = rc ? rc : label(out, d->intention);
		rc = rc ? rc : buf_printf(out, "\"} %llu\n", (unsigned long long)total);
	}
	free(v);
	return rc;
}

int px_stats_render(struct px_stats *const *s, size_t n, int draining, struct buf *out)
{
	static const char *const side_names[2] = {"client", "upstream"};
	static const char *const cls[6] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
	int nl = n > 0 ? s[0]->nl : 0;
	char extra[128];
	int rc = 0;

#define R(x) do { if (rc == 0) rc = (x); } while (0)
	R(head(out, "connections_opened_total", "counter", "Client connections accepted."));
	for (int i = 0; i < nl; i++)
		R(sample(out, "connections_opened_total", s[0]->l[i].name, "", SUM(l[i].conn_opened)));
	R(head(out, "connections_active", "gauge", "Client connections open now."));
	for (int i = 0; i < nl; i++)
		R(sample(out, "connections_active", s[0]->l[i].name, "",
			 SUM(l[i].conn_opened) - SUM(l[i].conn_closed)));
	R(head(out, "requests_total", "counter", "HTTP responses sent to clients, by status class."));
	for (int i = 0; i < nl; i++)
		for (int c = 0; c < 6; c++) {
			snprintf(extra, sizeof(extra), ",code=\"%s\"", cls[c]);
			R(sample(out, "requests_total", s[0]->l[i].name, extra, SUM(l[i].req[c])));
		}
	R(head(out, "request_duration_seconds", "histogram",
	       "Time from a request's head to the end of its response."));
	for (int i = 0; i < nl; i++) {
		uint64_t cum = 0;

		for (int k = 0; k <= PX_STATS_BUCKETS; k++) {
			cum += SUM(l[i].hist[k]);
			if (k < PX_STATS_BUCKETS)
				snprintf(extra, sizeof(extra), ",le=\"%g\"", px_stats_bucket_le[k]);
			else
				snprintf(extra, sizeof(extra), ",le=\"+Inf\"");
			R(sample(out, "request_duration_seconds_bucket", s[0]->l[i].name, extra, cum));
		}
		R(buf_printf(out, "weft_proxy_request_duration_seconds_sum{listener=\""));
		R(label(out, s[0]->l[i].name));
		R(buf_printf(out, "\"} %.6f\n", (double)SUM(l[i].dur_us_sum) / 1e6));
		R(sample(out, "request_duration_seconds_count", s[0]->l[i].name, "", cum));
	}
	R(head(out, "received_bytes_total", "counter", "Bytes received from clients (after TLS)."));
	for (int i = 0; i < nl; i++)
		R(sample(out, "received_bytes_total", s[0]->l[i].name, "", SUM(l[i].bytes_in)));
	R(head(out, "sent_bytes_total", "counter", "Bytes sent to clients (before TLS)."));
	for (int i = 0; i < nl; i++)
		R(sample(out, "sent_bytes_total", s[0]->l[i].name, "", SUM(l[i].bytes_out)));
	R(head(out, "tls_handshakes_total", "counter", "Completed TLS handshakes, by side."));
	for (int i = 0; i < nl; i++)
		for (int d = 0; d < 2; d++) {
			snprintf(extra, sizeof(extra), ",side=\"%s\"", side_names[d]);
			R(sample(out, "tls_handshakes_total", s[0]->l[i].name, extra, SUM(l[i].tls_ok[d])));
		}
	R(head(out, "tls_handshake_failures_total", "counter",
	       "Failed or refused TLS handshakes, by side and reason."));
	for (int i = 0; i < nl; i++)
		for (int d = 0; d < 2; d++)
			for (size_t r = 0; r < N_REASONS; r++) {
				snprintf(extra, sizeof(extra), ",side=\"%s\",reason=\"%s\"", side_names[d],
					 TLS_REASONS[r]);
				R(sample(out, "tls_handshake_failures_total", s[0]->l[i].name, extra,
					 SUM(l[i].tls_fail[d][r])));
			}
	R(head(out, "upstream_connect_failures_total", "counter",
	       "Upstream connections that could not be opened (TCP)."));
	for (int i = 0; i < nl; i++)
		R(sample(out, "upstream_connect_failures_total", s[0]->l[i].name, "",
			 SUM(l[i].up_connect_fail)));
	{
		static const char *const ev_name[PX_STATS_N_UPSTREAM_EVENTS] = {
			"upstream_retries_total", "upstream_ejections_total",
			"upstream_timeouts_total", "upstream_no_endpoint_total",
			"upstream_pool_reuses_total", "upstream_overflows_total",
		};
		static const char *const ev_help[PX_STATS_N_UPSTREAM_EVENTS] = {
			"Retries started (connect failures and 5xx), within the retry budget.",
			"Endpoints ejected by passive health (consecutive failures).",
			"Requests that hit the request timeout, and connects that hit the connect timeout.",
			"Connections or requests refused because no endpoint was available.",
			"Requests sent on a pooled keep-alive upstream connection.",
			"Requests or connections refused at Limits.MaxPendingRequests in flight.",
		};

		for (int e = 0; e < PX_STATS_N_UPSTREAM_EVENTS; e++) {
			R(head(out, ev_name[e], "counter", ev_help[e]));
			for (int i = 0; i < nl; i++)
				R(sample(out, ev_name[e], s[0]->l[i].name, "", SUM(l[i].up_event[e])));
		}
	}
	R(head(out, "sni_refused_total", "counter",
	       "Passthrough connections closed unrouted, by reason (no-route, no-sni, not-tls, timeout)."));
	for (int i = 0; i < nl; i++)
		for (size_t r = 0; r < N_SNI_REASONS; r++) {
			snprintf(extra, sizeof(extra), ",reason=\"%s\"", SNI_REASONS[r]);
			R(sample(out, "sni_refused_total", s[0]->l[i].name, extra, SUM(l[i].sni_refused[r])));
		}
	for (int i = 0; i < nl; i++) {
		if (strcmp(s[0]->l[i].name, "transparent") != 0)
			continue;
		R(head(out, "transparent_connections_total", "counter",
		       "Connections taken by the transparent outbound listener, by what became of "
		       "them (upstream, passthrough, no-upstream, not-redirected, error)."));
		for (size_t r = 0; r < N_TP_RESULTS; r++) {
			snprintf(extra, sizeof(extra), ",result=\"%s\"", TP_RESULTS[r]);
			R(sample(out, "transparent_connections_total", s[0]->l[i].name, extra,
				 SUM(l[i].tproxy[r])));
		}
		break;          /* one transparent listener per proxy */
	}
	R(head(out, "intention_denials_total", "counter",
	       "Calls denied by intentions, by source, destination and deciding intention."));
	R(render_denials(s, n, out));
	if (SUM(d_other) > 0)
		R(buf_printf(out, "weft_proxy_intention_denials_total{source=\"_other\","
			     "destination=\"_other\",intention=\"_other\"} %llu\n",
			     (unsigned long long)SUM(d_other)));
	R(head(out, "access_log_dropped_total", "counter",
	       "Access log lines dropped because the sink could not keep up."));
	R(buf_printf(out, "weft_proxy_access_log_dropped_total %llu\n",
		     (unsigned long long)SUM(alog_dropped)));
	R(head(out, "workers", "gauge", "Worker threads (event loops) serving the listeners."));
	R(buf_printf(out, "weft_proxy_workers %zu\n", n));
	R(head(out, "worker_connections_opened_total", "counter",
	       "Client connections accepted by each worker, all listeners together."));
	for (size_t k = 0; k < n; k++) {
		uint64_t t = 0;

		for (int i = 0; i < nl; i++)
			t += LOAD(s[k]->l[i].conn_opened);
		R(buf_printf(out, "weft_proxy_worker_connections_opened_total{worker=\"%zu\"} %llu\n", k,
			     (unsigned long long)t));
	}
	R(head(out, "draining", "gauge", "1 once a drain has started."));
	R(buf_printf(out, "weft_proxy_draining %d\n", draining ? 1 : 0));
#undef R
	return rc;
}

int px_stats_render_certificate(const long long *not_after_s, size_t n, long long now_s,
				struct buf *out)
{
	long long first = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (not_after_s[i] != 0 && (first == 0 || not_after_s[i] < first))
			first = not_after_s[i];
	if (first == 0)
		return 0;
	rc = head(out, "certificate_expiry_seconds", "gauge",
		  "Seconds until the proxy's leaf certificate in use expires (negative once expired).");
	return rc ? rc : buf_printf(out, "weft_proxy_certificate_expiry_seconds %lld\n", first - now_s);
}

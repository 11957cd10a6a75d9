/* The health-check runner (checks.h): one thread, one libevent loop, HTTP,
 * TCP and gRPC through libcurl's multi socket interface, UDP on a socket of
 * the loop (names through evdns), scripts through
 * posix_spawn and a pidfd (or, where pidfd_open is missing, a poll of
 * waitpid every CHK_WAIT_POLL_MS). Semantics follow Consul's agent/checks.
 * The definitions are checked and prepared by checkdef.c. */
#include "config.h"
#include "checks.h"
#include "checkdef.h"
#include "grpc_health.h"
#include "h2ping.h"
#include "udpcheck.h"
#include "buf.h"
#include "duration.h"
#include "err.h"
#include "httpmsg.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/dns.h>
#include <event2/event.h>

extern char **environ;

#define SUBSYS "checks"

/* Reads of a script's pipe per wake-up, and after it exited. */
#define CHK_PIPE_READS 16
#define CHK_DRAIN_READS 64
/* Without a pidfd, how often an exit is looked for. */
#define CHK_WAIT_POLL_MS 20
/* How long chk_runner_free waits for a killed script to be reapable. */
#define CHK_KILL_WAIT_MS 2000

/* ---- status names ---- */

const char *chk_status_name(enum chk_status s)
{
	switch (s) {
	case CHK_PASSING:
		return "passing";
	case CHK_WARNING:
		return "warning";
	case CHK_CRITICAL:
		return "critical";
	}
	return "critical";
}

int chk_status_parse(const char *s, enum chk_status *out)
{
	if (s == NULL)
		return WEFT_EINVAL;
	if (strcmp(s, "passing") == 0)
		*out = CHK_PASSING;
	else if (strcmp(s, "warning") == 0)
		*out = CHK_WARNING;
	else if (strcmp(s, "critical") == 0)
		*out = CHK_CRITICAL;
	else
		return WEFT_EINVAL;
	return WEFT_OK;
}

/* ---- output: the last CHK_OUTPUT_MAX bytes (Consul's circbuf) ---- */

struct ring {
	char data[CHK_OUTPUT_MAX];
	uint64_t total;       /* bytes written in all */
};

static void ring_add(struct ring *g, const char *p, size_t n)
{
	if (n > CHK_OUTPUT_MAX) {
		g->total += n - CHK_OUTPUT_MAX;
		p += n - CHK_OUTPUT_MAX;
		n = CHK_OUTPUT_MAX;
	}
	while (n > 0) {
		size_t pos = (size_t)(g->total % CHK_OUTPUT_MAX);
		size_t k = CHK_OUTPUT_MAX - pos < n ? CHK_OUTPUT_MAX - pos : n;

		memcpy(g->data + pos, p, k);
		g->total += k;
		p += k;
		n -= k;
	}
}

/* Appends the kept bytes, oldest first, to b. */
static int ring_append_to(const struct ring *g, struct buf *b)
{
	size_t pos = (size_t)(g->total % CHK_OUTPUT_MAX);

	if (g->total <= CHK_OUTPUT_MAX)
		return buf_append(b, g->data, (size_t)g->total);
	if (buf_append(b, g->data + pos, CHK_OUTPUT_MAX - pos) != 0)
		return WEFT_ENOMEM;
	return buf_append(b, g->data, pos);
}

static size_t ring_len(const struct ring *g)
{
	return g->total < CHK_OUTPUT_MAX ? (size_t)g->total : CHK_OUTPUT_MAX;
}

/* Output goes into JSON later: invalid UTF-8 (a cut character, a binary
 * body) and NUL bytes become U+FFFD, as Go's JSON encoder shows them. */
static char *utf8_clean(const char *s, size_t n)
{
	static const char repl[] = "\xEF\xBF\xBD";
	char *o = malloc(n * 3 + 1);
	size_t i = 0, j = 0;

	if (o == NULL)
		return NULL;
	while (i < n) {
		unsigned char b = (unsigned char)s[i];
		size_t len = 0;
		uint32_t cp = 0, min = 0;
		int ok = 1;

		if (b != 0 && b < 0x80) {
			o[j++] = (char)b;
			i++;
			continue;
		}
		if ((b & 0xE0) == 0xC0) {
			len = 2, cp = b & 0x1F, min = 0x80;
		} else if ((b & 0xF0) == 0xE0) {
			len = 3, cp = b & 0x0F, min = 0x800;
		} else if ((b & 0xF8) == 0xF0) {
			len = 4, cp = b & 0x07, min = 0x10000;
		} else {
			ok = 0;
		}
		if (ok && i + len > n)
			ok = 0;
		for (size_t k = 1; ok && k < len; k++) {
			unsigned char c = (unsigned char)s[i + k];

			if ((c & 0xC0) != 0x80)
				ok = 0;
			else
				cp = (cp << 6) | (c & 0x3F);
		}
		if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
			ok = 0;
		if (!ok) {
			memcpy(o + j, repl, 3);
			j += 3;
			i++;
			continue;
		}
		memcpy(o + j, s + i, len);
		j += len;
		i += len;
	}
	o[j] = '\0';
	return o;
}

/* ---- the runner ---- */

struct chk {
	struct chk_runner *r;
	struct chk *next;
	uint64_t seq;                /* unique per check instance */
	struct cdef *d;
	enum chk_status status;
	char *output;
	char *ttl_last;              /* a TTL check's last output, for "TTL expired" */
	struct event *tick;          /* next run; a TTL check's deadline */
	struct event *reap_ev;       /* deregister_after since it became critical */
	int running;
	struct ring out;             /* an HTTP body, a script's stdout+stderr */
	int successes, failures;     /* in a row, for the thresholds */
	/* HTTP, TCP, gRPC */
	CURL *easy;
	char reason[64];             /* the status line's reason phrase */
	char errbuf[CURL_ERROR_SIZE];
	long grpc_status;            /* a grpc-status header or trailer; -1: none */
	char grpc_message[160];
	/* UDP, H2PING: the run in progress (a udpcheck or an h2ping, by type) */
	void *probe;
	/* script */
	pid_t pid;
	int pidfd, outfd;
	struct event *pid_ev, *out_ev, *kill_ev;
	int timed_out;
};

/* A killed script no longer tied to a check, waited for so it is reaped. */
struct orphan {
	struct orphan *next;
	struct chk_runner *r;
	pid_t pid;
	int pidfd;
	struct event *ev;
};

enum note_kind { NOTE_REPORT, NOTE_REAP };

struct note {
	struct note *next;
	enum note_kind kind;
	uint64_t seq;
	enum chk_status status;
	char *output;
};

enum cmd_kind { CMD_SET, CMD_TTL, CMD_STOP };

struct cmd {
	struct cmd *next;
	enum cmd_kind kind;
	struct cdef **defs;           /* CMD_SET: taken by the loop */
	size_t n;
	const char *id;               /* CMD_TTL */
	enum chk_status status;
	char *output;                 /* CMD_TTL: cut and cleaned */
	int rc;
	char *err;
	int done;
};

struct chk_runner {
	struct chk_runner_opts o;
	struct event_base *base;
	CURLM *multi;
	struct event *curl_timer;
	struct event *wake;           /* the eventfd: commands from other threads */
	struct event *deliver;        /* notes to the callbacks */
	int deliver_armed;
	int efd;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cmd *cmds, **cmds_tail;
	struct chk *checks;
	struct orphan *orphans;
	struct note *notes, **notes_tail;
	uint64_t next_seq;
	uint64_t rng;
	int curl_inited;
	struct evdns_base *dns;       /* UDP and H2PING checks' names; made on first use */
	SSL_CTX *h2_tls[2];           /* H2PING over TLS: [1] checks certificates, [0] not */
};

static uint64_t rng_next(struct chk_runner *r)
{
	uint64_t x = r->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	r->rng = x;
	return x;
}

static void ms_to_tv(int64_t ms, struct timeval *tv)
{
	if (ms < 0)
		ms = 0;
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static void timer_arm(struct event *ev, int64_t ms)
{
	struct timeval tv;

	ms_to_tv(ms, &tv);
	evtimer_add(ev, &tv);
}

static struct chk *find_seq(struct chk_runner *r, uint64_t seq)
{
	for (struct chk *c = r->checks; c != NULL; c = c->next)
		if (c->seq == seq)
			return c;
	return NULL;
}

static struct chk *find_id(struct chk_runner *r, const char *id)
{
	for (struct chk *c = r->checks; c != NULL; c = c->next)
		if (strcmp(c->d->id, id) == 0)
			return c;
	return NULL;
}

static void deliver_arm(struct chk_runner *r)
{
	if (!r->deliver_armed) {
		r->deliver_armed = 1;
		event_active(r->deliver, EV_TIMEOUT, 0);
	}
}

static void note_add(struct chk_runner *r, struct chk *c, enum note_kind kind)
{
	struct note *n = calloc(1, sizeof(*n));

	if (n == NULL || (kind == NOTE_REPORT && (n->output = strdup(c->output)) == NULL)) {
		free(n);
		log_errorx(SUBSYS, "check \"%s\": out of memory, result not reported", c->d->id);
		return;
	}
	n->kind = kind;
	n->seq = c->seq;
	n->status = c->status;
	*r->notes_tail = n;
	r->notes_tail = &n->next;
	deliver_arm(r);
}

/* Calls the callbacks for the notes queued now (not those they queue). A
 * note whose check is gone (removed or redefined) is dropped. */
static void deliver_now(struct chk_runner *r)
{
	size_t count = 0;

	for (struct note *n = r->notes; n != NULL; n = n->next)
		count++;
	while (count-- > 0 && r->notes != NULL) {
		struct note *n = r->notes;
		struct chk *c;

		r->notes = n->next;
		if (r->notes == NULL)
			r->notes_tail = &r->notes;
		c = find_seq(r, n->seq);
		if (c != NULL) {
			/* The callbacks may replace the set: copy what they get. */
			char *id = strdup(c->d->id), *svc = strdup(c->d->service_id);

			if (id != NULL && svc != NULL) {
				if (n->kind == NOTE_REPORT && r->o.report != NULL)
					r->o.report(r->o.arg, id, n->status, n->output);
				else if (n->kind == NOTE_REAP && r->o.reap != NULL &&
					 c->status == CHK_CRITICAL)
					r->o.reap(r->o.arg, svc, id);
			}
			free(id);
			free(svc);
		}
		free(n->output);
		free(n);
	}
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chk_runner *r = arg;

	r->deliver_armed = 0;
	deliver_now(r);
	if (r->notes != NULL)
		deliver_arm(r);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chk *c = arg;
	char d[32];

	duration_format(c->d->reap_after_ms, d, sizeof(d));
	log_warnx(SUBSYS, "check \"%s\": critical for more than %s, deregistering service \"%s\"",
		  c->d->id, d, c->d->service_id);
	note_add(c->r, c, NOTE_REAP);
}

/* Reaping applies to a service's check with deregister_after set, from the
 * moment it becomes critical, as long as it stays critical. */
static void reap_track(struct chk *c, enum chk_status old, enum chk_status now)
{
	if (c->d->reap_after_ms <= 0 || c->d->service_id[0] == '\0')
		return;
	if (now == CHK_CRITICAL && old != CHK_CRITICAL)
		timer_arm(c->reap_ev, c->d->reap_after_ms);
	else if (now != CHK_CRITICAL)
		evtimer_del(c->reap_ev);
}

/* Consul's StatusHandler: whether a result changes the check (status may
 * become warning), given the successes or failures in a row before it.
 * The counts start at the thresholds, so that the first result counts. */
static int threshold(struct chk *c, enum chk_status *status)
{
	const struct cdef *d = c->d;

	if (*status != CHK_CRITICAL) {
		if (c->successes < INT_MAX)
			c->successes++;
		c->failures = 0;
		if (c->successes >= d->success_before_passing)
			return 1;
		log_info(SUBSYS, "check \"%s\": %s, %d of %d in a row before it counts", d->id,
			 chk_status_name(*status), c->successes, d->success_before_passing);
		return 0;
	}
	if (c->failures < INT_MAX)
		c->failures++;
	c->successes = 0;
	if (c->failures >= d->failures_before_critical)
		return 1;
	if (c->failures >= d->failures_before_warning) {
		*status = CHK_WARNING;
		return 1;
	}
	log_info(SUBSYS, "check \"%s\": failed, %d of %d in a row before it counts", d->id,
		 c->failures, d->failures_before_warning);
	return 0;
}

/* A result: len raw bytes of output (cleaned here). */
static void result_n(struct chk *c, enum chk_status status, const char *raw, size_t len)
{
	char *clean = utf8_clean(raw != NULL ? raw : "", raw != NULL ? len : 0);
	enum chk_status old = c->status;

	if (clean == NULL) {
		log_errorx(SUBSYS, "check \"%s\": out of memory", c->d->id);
		return;
	}
	log_debug(SUBSYS, "check \"%s\": %s", c->d->id, chk_status_name(status));
	if (c->d->type != CHK_TTL && !threshold(c, &status)) {
		free(clean);
		return;
	}
	if (status == c->status && strcmp(clean, c->output) == 0) {
		free(clean);
		return;
	}
	if (status != old && status != CHK_PASSING)
		log_warnx(SUBSYS, "check \"%s\" is now %s", c->d->id, chk_status_name(status));
	free(c->output);
	c->output = clean;
	c->status = status;
	reap_track(c, old, status);
	note_add(c->r, c, NOTE_REPORT);
}

/* The same with a string that is taken (NULL: out of memory, reported as
 * an empty output). */
static void result(struct chk *c, enum chk_status status, char *output)
{
	result_n(c, status, output, output != NULL ? strlen(output) : 0);
	free(output);
}

static void schedule_next(struct chk *c)
{
	c->running = 0;
	timer_arm(c->tick, c->d->run_interval_ms);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* ---- HTTP and TCP, through libcurl's multi socket interface ---- */

static size_t body_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct chk *c = arg;

	ring_add(&c->out, p, size * nmemb);
	return size * nmemb;
}

/* gRPC: grpc-status and grpc-message, from the headers or the trailers
 * (libcurl hands both to the header callback). */
static void grpc_header(struct chk *c, const char *p, size_t n)
{
	size_t end = n;

	while (end > 0 && (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' '))
		end--;
	if (end > 12 && strncasecmp(p, "grpc-status:", 12) == 0) {
		long v = 0;
		size_t i = 12;

		while (i < end && p[i] == ' ')
			i++;
		if (i == end)
			return;
		for (; i < end && isdigit((unsigned char)p[i]) && v < 1000; i++)
			v = v * 10 + (p[i] - '0');
		c->grpc_status = i == end ? v : 2;   /* not a number: Unknown */
	} else if (end > 13 && strncasecmp(p, "grpc-message:", 13) == 0) {
		size_t i = 13, len;

		while (i < end && p[i] == ' ')
			i++;
		len = end - i < sizeof(c->grpc_message) - 1 ? end - i : sizeof(c->grpc_message) - 1;
		memcpy(c->grpc_message, p + i, len);
		c->grpc_message[len] = '\0';
	}
}

/* Keeps the reason phrase of the last status line (the final response
 * after redirects): "HTTP/1.1 200 OK". HTTP/2 has none. */
static size_t header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct chk *c = arg;
	size_t n = size * nmemb, i = 0, start, end;

	if (c->d->type == CHK_GRPC) {
		grpc_header(c, p, n);
		return n;
	}
	if (n < 5 || memcmp(p, "HTTP/", 5) != 0)
		return n;
	while (i < n && p[i] != ' ')
		i++;
	while (i < n && p[i] == ' ')
		i++;
	while (i < n && isdigit((unsigned char)p[i]))
		i++;
	while (i < n && p[i] == ' ')
		i++;
	start = i;
	end = n;
	while (end > start && (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' '))
		end--;
	if (end - start >= sizeof(c->reason))
		end = start + sizeof(c->reason) - 1;
	memcpy(c->reason, p + start, end - start);
	c->reason[end - start] = '\0';
	return n;
}

static void net_stop(struct chk *c)
{
	if (c->easy != NULL) {
		curl_multi_remove_handle(c->r->multi, c->easy);
		curl_easy_cleanup(c->easy);
		c->easy = NULL;
	}
}

/* What a gRPC health call answered: SERVING passes, anything else is
 * critical, as in Consul. The message is made readable (gRPC's
 * grpc-message is percent-encoded: shown as it came, cut). */
static enum chk_status grpc_result(struct chk *c, CURLcode res, const char *msg, long code,
				   char **out)
{
	const struct cdef *d = c->d;
	struct buf body;
	unsigned long long serving;
	const char *why = NULL;
	char name[32];
	enum chk_status st = CHK_CRITICAL;

	if (res != CURLE_OK) {
		*out = fmt("gRPC check %s: %s", d->grpc, msg);
		return st;
	}
	if (c->grpc_status > 0) {
		*out = fmt("gRPC check %s: rpc error: code = %s desc = %s", d->grpc,
			   grpc_code_name(c->grpc_status), c->grpc_message);
		return st;
	}
	if (code != 200) {
		*out = fmt("gRPC check %s: HTTP status %ld (not a gRPC server?)", d->grpc, code);
		return st;
	}
	buf_init(&body, CHK_OUTPUT_MAX);
	if (ring_append_to(&c->out, &body) != 0 || c->out.total > CHK_OUTPUT_MAX)
		why = "the response is larger than a HealthCheckResponse";
	else if (c->grpc_status < 0)
		why = "the response has no grpc-status";
	else
		grpc_health_response((const unsigned char *)body.data, body.len, &serving, &why);
	buf_free(&body);
	if (why != NULL)
		*out = fmt("gRPC check %s: %s", d->grpc, why);
	else if (serving == GRPC_STATUS_SERVING)
		st = CHK_PASSING, *out = fmt("gRPC check %s: success", d->grpc);
	else
		*out = fmt("gRPC check %s: health status %s", d->grpc,
			   grpc_serving_name(serving, name, sizeof(name)));
	return st;
}

static void net_finish(struct chk *c, CURLcode res)
{
	const struct cdef *d = c->d;
	char *out = NULL;
	enum chk_status st = CHK_CRITICAL;
	long code = 0, oserr = 0;
	const char *msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(res);

	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &oserr);
	if (d->type == CHK_TCP) {
		if (res == CURLE_OK)
			st = CHK_PASSING, out = fmt("TCP connect %s: Success", d->tcp);
		else if (res == CURLE_COULDNT_RESOLVE_HOST)
			out = fmt("dial tcp %s: lookup: %s", d->tcp, msg);
		else if (res == CURLE_OPERATION_TIMEDOUT)
			out = fmt("dial tcp %s: i/o timeout", d->tcp);
		else if (oserr != 0)
			out = fmt("dial tcp %s: connect: %s", d->tcp, strerror((int)oserr));
		else
			out = fmt("dial tcp %s: %s", d->tcp, msg);
	} else if (d->type == CHK_GRPC) {
		st = grpc_result(c, res, msg, code, &out);
	} else if (res != CURLE_OK) {
		out = fmt("HTTP %s %s: %s", d->method, d->http, msg);
	} else {
		struct buf b;

		if (code >= 200 && code <= 299)
			st = CHK_PASSING;
		else if (code == 429)
			st = CHK_WARNING;
		buf_init(&b, CHK_OUTPUT_MAX + CHK_URL_MAX + 256);
		if (buf_printf(&b, "HTTP %s %s: %ld %s Output: ", d->method, d->http, code,
			       c->reason[0] ? c->reason : http_reason(code)) == 0)
			ring_append_to(&c->out, &b);
		net_stop(c);
		result_n(c, st, b.data, b.len);
		buf_free(&b);
		schedule_next(c);
		return;
	}
	net_stop(c);
	result(c, st, out);
	schedule_next(c);
}

static void net_drain(struct chk_runner *r)
{
	CURLMsg *m;
	int left;

	/* Bounded by the handles in the multi: each finishes once. */
	while ((m = curl_multi_info_read(r->multi, &left)) != NULL) {
		if (m->msg == CURLMSG_DONE) {
			CURL *e = m->easy_handle;
			CURLcode res = m->data.result;
			char *priv = NULL;
			struct chk *c;

			curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
			c = (struct chk *)priv;
			if (c != NULL && c->easy == e)
				net_finish(c, res);
		}
	}
}

static void curl_sock_ev(evutil_socket_t fd, short what, void *arg)
{
	struct chk_runner *r = arg;
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
		     ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0), running;

	curl_multi_socket_action(r->multi, fd, action, &running);
	net_drain(r);
}

static void curl_timer_ev(evutil_socket_t fd, short what, void *arg)
{
	struct chk_runner *r = arg;
	int running;

	curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	net_drain(r);
}

static int curl_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct chk_runner *r = userp;
	struct event *ev = socketp;
	short fl;

	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL) {
			event_free(ev);
			curl_multi_assign(r->multi, s, NULL);
		}
		return 0;
	}
	fl = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	     ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (ev != NULL) {
		event_del(ev);
		event_assign(ev, r->base, s, fl, curl_sock_ev, r);
	} else {
		ev = event_new(r->base, s, fl, curl_sock_ev, r);
		if (ev == NULL)
			return -1;
		curl_multi_assign(r->multi, s, ev);
	}
	event_add(ev, NULL);
	return 0;
}

static int curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct chk_runner *r = userp;

	if (timeout_ms < 0)
		evtimer_del(r->curl_timer);
	else
		timer_arm(r->curl_timer, timeout_ms);
	return 0;
}

static void net_start(struct chk *c)
{
	const struct cdef *d = c->d;
	CURL *e = curl_easy_init();
	int ok = e != NULL;

	memset(&c->out, 0, sizeof(c->out));
	c->reason[0] = '\0';
	c->errbuf[0] = '\0';
	c->grpc_status = -1;
	c->grpc_message[0] = '\0';
#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
	SET(CURLOPT_PRIVATE, (void *)c);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, c->errbuf);
	SET(CURLOPT_TIMEOUT_MS, (long)d->run_timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)d->run_timeout_ms);
	SET(CURLOPT_FORBID_REUSE, 1L);
	SET(CURLOPT_FRESH_CONNECT, 1L);
	SET(CURLOPT_PROXY, "");   /* never through a proxy from the environment */
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (d->type == CHK_TCP) {
		SET(CURLOPT_URL, d->tcp_url);
		SET(CURLOPT_CONNECT_ONLY, 1L);
	} else if (d->type == CHK_GRPC) {
		/* HTTP/2 from the start (h2c), or negotiated by ALPN over TLS */
		SET(CURLOPT_URL, d->grpc_url);
		SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
		SET(CURLOPT_HTTPHEADER, d->headers);
		SET(CURLOPT_POSTFIELDS, (const char *)d->grpc_req);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->grpc_req_len);
		SET(CURLOPT_WRITEFUNCTION, body_cb);
		SET(CURLOPT_WRITEDATA, (void *)c);
		SET(CURLOPT_HEADERFUNCTION, header_cb);
		SET(CURLOPT_HEADERDATA, (void *)c);
		if (d->tls_skip_verify) {
			SET(CURLOPT_SSL_VERIFYPEER, 0L);
			SET(CURLOPT_SSL_VERIFYHOST, 0L);
		}
	} else {
		SET(CURLOPT_URL, d->http);
		SET(CURLOPT_HTTPHEADER, d->headers);
		SET(CURLOPT_WRITEFUNCTION, body_cb);
		SET(CURLOPT_WRITEDATA, (void *)c);
		SET(CURLOPT_HEADERFUNCTION, header_cb);
		SET(CURLOPT_HEADERDATA, (void *)c);
		SET(CURLOPT_FOLLOWLOCATION, 1L);   /* as Go's client: up to 10 */
		SET(CURLOPT_MAXREDIRS, 10L);
		if (d->tls_skip_verify) {
			SET(CURLOPT_SSL_VERIFYPEER, 0L);
			SET(CURLOPT_SSL_VERIFYHOST, 0L);
		}
		if (strcmp(d->method, "HEAD") == 0) {
			SET(CURLOPT_NOBODY, 1L);
		} else {
			if (d->body != NULL) {
				SET(CURLOPT_POSTFIELDS, d->body);
				SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(d->body));
			}
			if (d->body != NULL || strcmp(d->method, "GET") != 0)
				SET(CURLOPT_CUSTOMREQUEST, d->method);
		}
	}
#undef SET
	if (ok && curl_multi_add_handle(c->r->multi, e) == CURLM_OK) {
		c->easy = e;
		c->running = 1;
		return;
	}
	if (e != NULL)
		curl_easy_cleanup(e);
	result(c, CHK_CRITICAL, fmt("%s check: could not set up the request (libcurl)",
				     cdef_type_name(d->type)));
	schedule_next(c);
}

/* ---- UDP (udpcheck.c) ---- */

/* The end of a UDP or H2PING run (the module frees its run after this). */
static void probe_done(void *arg, int ok, const char *msg)
{
	struct chk *c = arg;

	c->probe = NULL;
	result(c, ok ? CHK_PASSING : CHK_CRITICAL, strdup(msg));
	schedule_next(c);
}

static void probe_cancel(struct chk *c)
{
	if (c->probe == NULL)
		return;
	if (c->d->type == CHK_UDP)
		udpcheck_cancel(c->probe);
	else
		h2ping_cancel(c->probe);
	c->probe = NULL;
}

static struct evdns_base *runner_dns(struct chk_runner *r)
{
	if (r->dns == NULL)
		r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	return r->dns;
}

static void udp_start(struct chk *c)
{
	const struct cdef *d = c->d;
	struct udpcheck_req req = {
		.base = c->r->base, .dns = runner_dns(c->r), .host = d->udp_host, .port = d->udp_port,
		.target = d->udp, .timeout_ms = d->run_timeout_ms, .done = probe_done, .arg = c,
	};

	c->running = 1;
	if (req.dns == NULL || (c->probe = udpcheck_start(&req)) == NULL) {
		result(c, CHK_CRITICAL, fmt("dial udp %s: %s", d->udp,
					    req.dns == NULL ? "no resolver (/etc/resolv.conf)"
							    : "out of memory"));
		schedule_next(c);
	}
}

/* ---- H2PING (h2ping.c) ---- */

/* The TLS context of H2PING checks: ALPN h2 only, the system's CAs. */
static SSL_CTX *h2_tls_ctx(struct chk_runner *r, int verify)
{
	static const unsigned char alpn[] = { 2, 'h', '2' };
	SSL_CTX *ctx = r->h2_tls[verify];

	if (ctx != NULL)
		return ctx;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0 ||
	    (verify && SSL_CTX_set_default_verify_paths(ctx) != 1)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	r->h2_tls[verify] = ctx;
	return ctx;
}

static void h2_start(struct chk *c)
{
	struct chk_runner *r = c->r;
	const struct cdef *d = c->d;
	struct h2ping_req req = {
		.base = r->base, .verify = !d->tls_skip_verify, .host = d->udp_host,
		.port = d->udp_port, .target = d->h2ping, .timeout_ms = d->run_timeout_ms,
		.done = probe_done, .arg = c,
	};

	c->running = 1;
	req.dns = runner_dns(r);
	if (d->h2ping_use_tls)
		req.tls = h2_tls_ctx(r, req.verify);
	if (req.dns == NULL || (d->h2ping_use_tls && req.tls == NULL) ||
	    (c->probe = h2ping_start(&req)) == NULL) {
		result(c, CHK_CRITICAL, fmt("Failed to dial to %s: %s", d->h2ping,
					    req.dns == NULL ? "no resolver (/etc/resolv.conf)"
							    : "cannot set up the connection"));
		schedule_next(c);
	}
}

/* ---- scripts ---- */

/* Reaps pid if it has exited: 1 (and *si) when it has, 0 when it runs
 * on, -1 on an error (errno; ECHILD: someone else reaped it). */
static int child_wait(pid_t pid, int pidfd, siginfo_t *si)
{
	int rc;

	memset(si, 0, sizeof(*si));
	do {
		if (pidfd >= 0)
			rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, si, WEXITED | WNOHANG);
		else
			rc = waitid(P_PID, (id_t)pid, si, WEXITED | WNOHANG);
	} while (rc != 0 && errno == EINTR);
	if (rc != 0)
		return -1;
	return si->si_pid != 0;
}

/* An event that fires when the child may have exited: its pidfd readable,
 * or without one a timer every CHK_WAIT_POLL_MS. Added; NULL on failure. */
static struct event *child_watch(struct chk_runner *r, int pidfd, event_callback_fn cb,
				 void *arg)
{
	struct event *ev = event_new(r->base, pidfd, pidfd >= 0 ? EV_READ | EV_PERSIST : EV_PERSIST,
				     cb, arg);
	struct timeval tv;

	ms_to_tv(CHK_WAIT_POLL_MS, &tv);
	if (ev != NULL && event_add(ev, pidfd >= 0 ? NULL : &tv) != 0) {
		event_free(ev);
		ev = NULL;
	}
	return ev;
}

static void orphan_free(struct orphan *o)
{
	if (o->ev != NULL)
		event_free(o->ev);
	if (o->pidfd >= 0)
		close(o->pidfd);
	free(o);
}

static void orphan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct orphan *o = arg;
	struct chk_runner *r = o->r;
	siginfo_t si;

	if (child_wait(o->pid, o->pidfd, &si) == 0)
		return;   /* not yet: wait for the next wake-up */
	for (struct orphan **pp = &r->orphans; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	}
	orphan_free(o);
}

/* Kills a running script's process group and hands the leader to the
 * orphan list, which reaps it when it is gone (or, at free, waits). */
static void script_abandon(struct chk *c)
{
	struct chk_runner *r = c->r;
	struct orphan *o;

	if (c->out_ev != NULL) {
		event_free(c->out_ev);
		c->out_ev = NULL;
	}
	if (c->outfd >= 0) {
		close(c->outfd);
		c->outfd = -1;
	}
	if (c->kill_ev != NULL)
		evtimer_del(c->kill_ev);
	if (c->pid_ev != NULL) {
		event_free(c->pid_ev);
		c->pid_ev = NULL;
	}
	if (c->pid <= 0)
		return;
	kill(-c->pid, SIGKILL);
	o = calloc(1, sizeof(*o));
	if (o != NULL) {
		o->r = r;
		o->pid = c->pid;
		o->pidfd = c->pidfd;
		o->ev = child_watch(r, c->pidfd, orphan_cb, o);
		if (o->ev != NULL) {
			o->next = r->orphans;
			r->orphans = o;
			c->pid = 0;
			c->pidfd = -1;
			return;
		}
		if (o->ev != NULL)
			event_free(o->ev);
		free(o);
	}
	/* No memory to wait without blocking: the group is killed, so the
	 * leader goes at once; wait for it here rather than leave a zombie. */
	waitpid(c->pid, NULL, 0);
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pid = 0;
	c->pidfd = -1;
}

static void script_read(struct chk *c, int reads)
{
	char chunk[4096];

	for (int i = 0; i < reads && c->outfd >= 0; i++) {
		ssize_t n = read(c->outfd, chunk, sizeof(chunk));

		if (n > 0) {
			ring_add(&c->out, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* EOF or an error: nothing more to read. */
		event_free(c->out_ev);
		c->out_ev = NULL;
		close(c->outfd);
		c->outfd = -1;
	}
}

static void script_out_cb(evutil_socket_t fd, short what, void *arg)
{
	script_read(arg, CHK_PIPE_READS);
}

/* The kept output, after Consul's note when some was dropped. */
static void script_output(const struct chk *c, struct buf *b)
{
	if (c->out.total > CHK_OUTPUT_MAX)
		buf_printf(b, "Captured %zu of %llu bytes\n...\n", ring_len(&c->out),
			   (unsigned long long)c->out.total);
	ring_append_to(&c->out, b);
}

/* The leader exited: its output is in the pipe already (what children it
 * left behind write later is not read). Reaps it and reports. */
static void script_pid_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chk *c = arg;
	siginfo_t si;
	enum chk_status st = CHK_CRITICAL;
	char *msg = NULL, d[32];
	struct buf b;

	switch (child_wait(c->pid, c->pidfd, &si)) {
	case 0:
		return;   /* not yet */
	case -1:
		msg = fmt("waiting for the script: %s", strerror(errno));
		break;
	}
	script_read(c, CHK_DRAIN_READS);
	if (c->out_ev != NULL) {
		event_free(c->out_ev);
		c->out_ev = NULL;
	}
	if (c->outfd >= 0) {
		close(c->outfd);
		c->outfd = -1;
	}
	event_free(c->pid_ev);
	c->pid_ev = NULL;
	evtimer_del(c->kill_ev);
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pidfd = -1;
	c->pid = 0;

	buf_init(&b, 2 * CHK_OUTPUT_MAX);
	if (c->timed_out) {
		duration_format(c->d->run_timeout_ms, d, sizeof(d));
		buf_printf(&b, "Timed out (%s) running check", d);
		if (c->out.total > 0)
			buf_printf(&b, "\n\n");
		script_output(c, &b);
	} else if (msg != NULL) {
		buf_printf(&b, "%s", msg);
	} else {
		script_output(c, &b);
		if (si.si_code == CLD_EXITED && si.si_status == 0)
			st = CHK_PASSING;
		else if (si.si_code == CLD_EXITED && si.si_status == 1)
			st = CHK_WARNING;
	}
	free(msg);
	result_n(c, st, b.data, b.len);
	buf_free(&b);
	schedule_next(c);
}

static void script_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chk *c = arg;
	char d[32];

	duration_format(c->d->run_timeout_ms, d, sizeof(d));
	log_warnx(SUBSYS, "check \"%s\": timed out (%s), killing process group %d", c->d->id, d,
		  (int)c->pid);
	c->timed_out = 1;
	/* The leader is not reaped before this, so its group id is still ours. */
	kill(-c->pid, SIGKILL);
}

static void script_start(struct chk *c)
{
	struct chk_runner *r = c->r;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	int p[2] = {-1, -1}, e, fa_ok = 0, at_ok = 0;
	static const int defsigs[] = {SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1,
				      SIGUSR2, SIGCHLD, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU};
	pid_t pid = 0;
	char *why = NULL;

	memset(&c->out, 0, sizeof(c->out));
	c->timed_out = 0;
	if (pipe2(p, O_CLOEXEC) != 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) != 0) {
		why = fmt("pipe: %s", strerror(errno));
		goto out;
	}
	if ((e = posix_spawn_file_actions_init(&fa)) != 0) {
		why = fmt("spawn: %s", strerror(e));
		goto out;
	}
	fa_ok = 1;
	if ((e = posix_spawnattr_init(&at)) != 0) {
		why = fmt("spawn: %s", strerror(e));
		goto out;
	}
	at_ok = 1;
	sigemptyset(&none);
	sigemptyset(&def);
	for (size_t i = 0; i < sizeof(defsigs) / sizeof(defsigs[0]); i++)
		sigaddset(&def, defsigs[i]);
	if ((e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, p[1], 1)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, p[1], 2)) != 0 ||
	    (e = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0 ||
	    (e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					       POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (e = posix_spawnattr_setpgroup(&at, 0)) != 0 ||
	    (e = posix_spawnattr_setsigmask(&at, &none)) != 0 ||
	    (e = posix_spawnattr_setsigdefault(&at, &def)) != 0) {
		why = fmt("spawn: %s", strerror(e));
		goto out;
	}
	e = posix_spawnp(&pid, c->d->args[0], &fa, &at, c->d->args, environ);
	if (e != 0) {
		pid = 0;
		why = fmt("fork/exec %s: %s", c->d->args[0], strerror(e));
		goto out;
	}
	close(p[1]);
	p[1] = -1;
	c->pid = pid;
	c->outfd = p[0];
	p[0] = -1;
	c->pidfd = pidfd_open(pid, 0);
	if (c->pidfd < 0 && errno != ENOSYS) {
		why = fmt("pidfd_open: %s", strerror(errno));
		goto out;
	}
	c->out_ev = event_new(r->base, c->outfd, EV_READ | EV_PERSIST, script_out_cb, c);
	c->pid_ev = child_watch(r, c->pidfd, script_pid_cb, c);
	if (c->out_ev == NULL || c->pid_ev == NULL || event_add(c->out_ev, NULL) != 0) {
		why = fmt("out of memory watching the script");
		goto out;
	}
	timer_arm(c->kill_ev, c->d->run_timeout_ms);
	c->running = 1;
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (at_ok)
		posix_spawnattr_destroy(&at);
	if (c->running)
		return;
	if (c->pid > 0) {
		/* Started but cannot be watched: kill it and wait (it goes at once). */
		kill(-c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		c->pid = 0;
	}
	if (c->out_ev != NULL) {
		event_free(c->out_ev);
		c->out_ev = NULL;
	}
	if (c->pid_ev != NULL) {
		event_free(c->pid_ev);
		c->pid_ev = NULL;
	}
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pidfd = -1;
	if (c->outfd >= 0)
		close(c->outfd);
	c->outfd = -1;
	log_warnx(SUBSYS, "check \"%s\": %s", c->d->id, why ? why : "out of memory");
	result(c, CHK_CRITICAL, why);
	schedule_next(c);
}

/* ---- checks ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chk *c = arg;
	char *out;

	switch (c->d->type) {
	case CHK_TTL:
		log_warnx(SUBSYS, "check \"%s\" missed its TTL, is now critical", c->d->id);
		if (c->ttl_last != NULL && c->ttl_last[0] != '\0')
			out = fmt("TTL expired (last output before timeout follows): %s", c->ttl_last);
		else
			out = strdup("TTL expired");
		result(c, CHK_CRITICAL, out);
		break;
	case CHK_HTTP:
	case CHK_TCP:
	case CHK_GRPC:
		net_start(c);
		break;
	case CHK_UDP:
		udp_start(c);
		break;
	case CHK_H2PING:
		h2_start(c);
		break;
	case CHK_SCRIPT:
		script_start(c);
		break;
	}
}

static void chk_free(struct chk *c)
{
	if (c == NULL)
		return;
	net_stop(c);
	probe_cancel(c);
	script_abandon(c);
	if (c->tick != NULL)
		event_free(c->tick);
	if (c->reap_ev != NULL)
		event_free(c->reap_ev);
	if (c->kill_ev != NULL)
		event_free(c->kill_ev);
	cdef_free(c->d);
	free(c->output);
	free(c->ttl_last);
	free(c);
}

/* Allocates a check for d (taken on success); nothing runs yet. */
static struct chk *chk_new(struct chk_runner *r, struct cdef *d)
{
	struct chk *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->r = r;
	c->pidfd = c->outfd = -1;
	c->seq = ++r->next_seq;
	c->status = d->initial;
	c->successes = d->success_before_passing;
	c->failures = d->failures_before_critical;
	c->output = strdup("");
	c->tick = evtimer_new(r->base, tick_cb, c);
	c->reap_ev = evtimer_new(r->base, reap_cb, c);
	c->kill_ev = evtimer_new(r->base, script_kill_cb, c);
	if (c->output == NULL || c->tick == NULL || c->reap_ev == NULL || c->kill_ev == NULL) {
		chk_free(c);
		return NULL;
	}
	c->d = d;
	return c;
}

static void chk_start(struct chk *c)
{
	const struct cdef *d = c->d;
	char a[32], b[32];

	/* Consul raises both with a warning: logged once, when the check starts. */
	if (d->floor_interval_ms > 0) {
		duration_format(d->interval_ms, a, sizeof(a));
		duration_format(d->floor_interval_ms, b, sizeof(b));
		log_warnx(SUBSYS, "check \"%s\": interval %s is below the minimum, using %s", d->id,
			  a, b);
	}
	if (d->floor_reap_ms > 0) {
		duration_format(d->deregister_after_ms, a, sizeof(a));
		duration_format(d->floor_reap_ms, b, sizeof(b));
		log_warnx(SUBSYS, "check \"%s\": deregister_critical_service_after %s is below the "
			  "minimum, using %s", d->id, a, b);
	}
	if (c->d->type == CHK_TTL)
		timer_arm(c->tick, c->d->ttl_ms);
	else   /* a random stagger in [0, interval), as Consul's RandomStagger */
		timer_arm(c->tick, (int64_t)(rng_next(c->r) % (uint64_t)c->d->run_interval_ms));
	reap_track(c, CHK_PASSING, c->status);
}

/* On the loop's thread: swaps in the new set (defs are taken). */
static int apply_set(struct chk_runner *r, struct cdef **defs, size_t n, char **err)
{
	struct chk **fresh = NULL, *keep = NULL, **keep_tail = &keep;
	struct chk *old = r->checks;
	int rc = WEFT_OK;

	fresh = calloc(n + 1, sizeof(*fresh));
	if (fresh == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "checks: out of memory");
		goto out;
	}
	/* First everything that can fail, so a failure changes nothing. */
	for (size_t i = 0; i < n; i++) {
		struct chk *c = find_id(r, defs[i]->id);

		if (c != NULL && cdef_equal(c->d, defs[i]))
			continue;
		fresh[i] = chk_new(r, defs[i]);
		if (fresh[i] == NULL) {
			rc = weft_errf(err, WEFT_ENOMEM, "check \"%s\": out of memory", defs[i]->id);
			for (size_t j = 0; j < i; j++) {
				if (fresh[j] != NULL) {
					fresh[j]->d = NULL;
					chk_free(fresh[j]);
				}
			}
			goto out;
		}
	}
	/* Then the swap: unchanged checks move to the new list as they are. */
	r->checks = NULL;
	for (size_t i = 0; i < n; i++) {
		struct chk *c;

		if (fresh[i] != NULL) {
			c = fresh[i];
			defs[i] = NULL;
			log_info(SUBSYS, "check \"%s\" (%s) started", c->d->id, cdef_type_name(c->d->type));
			chk_start(c);
		} else {
			struct chk **pp = &old;

			while (*pp != NULL && strcmp((*pp)->d->id, defs[i]->id) != 0)
				pp = &(*pp)->next;
			c = *pp;
			*pp = c->next;
		}
		c->next = NULL;
		*keep_tail = c;
		keep_tail = &c->next;
	}
	r->checks = keep;
	while (old != NULL) {
		struct chk *c = old;

		old = c->next;
		log_info(SUBSYS, "check \"%s\" stopped", c->d->id);
		chk_free(c);
	}
out:
	for (size_t i = 0; i < n; i++)
		cdef_free(defs[i]);
	free(defs);
	free(fresh);
	return rc;
}

static int apply_ttl(struct chk_runner *r, const char *id, enum chk_status s, char *output,
		     char **err)
{
	struct chk *c = find_id(r, id);

	if (c == NULL || c->d->type != CHK_TTL) {
		free(output);
		return weft_errf(err, WEFT_ENOENT, "check \"%s\": %s", id,
				 c == NULL ? "no such check" : "not a TTL check");
	}
	free(c->ttl_last);
	c->ttl_last = strdup(output);
	result(c, s, output);
	timer_arm(c->tick, c->d->ttl_ms);
	return WEFT_OK;
}

static void run_cmd(struct chk_runner *r, struct cmd *m)
{
	switch (m->kind) {
	case CMD_SET:
		m->rc = apply_set(r, m->defs, m->n, &m->err);
		m->defs = NULL;
		break;
	case CMD_TTL:
		m->rc = apply_ttl(r, m->id, m->status, m->output, &m->err);
		m->output = NULL;
		break;
	case CMD_STOP:
		event_base_loopbreak(r->base);
		m->rc = WEFT_OK;
		break;
	}
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chk_runner *r = arg;
	struct cmd *list, *m;
	uint64_t v;

	while (read(r->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&r->mu);
	list = r->cmds;
	r->cmds = NULL;
	r->cmds_tail = &r->cmds;
	pthread_mutex_unlock(&r->mu);
	while ((m = list) != NULL) {
		list = m->next;
		run_cmd(r, m);
		/* A TTL update's report reaches the callback before the caller
		 * returns (it reads its own write). */
		deliver_now(r);
		pthread_mutex_lock(&r->mu);
		m->done = 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
}

/* Runs m on the loop's thread: at once when called there (a callback),
 * else queued and waited for. */
static int post(struct chk_runner *r, struct cmd *m, char **err)
{
	uint64_t one = 1;

	if (r->thread_started && pthread_equal(pthread_self(), r->thread)) {
		run_cmd(r, m);
	} else {
		pthread_mutex_lock(&r->mu);
		m->next = NULL;
		*r->cmds_tail = m;
		r->cmds_tail = &m->next;
		pthread_mutex_unlock(&r->mu);
		while (write(r->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		/* An eventfd write fails only when its counter is full, in
		 * which case the loop has a wake-up pending anyway. */
		pthread_mutex_lock(&r->mu);
		while (!m->done)
			pthread_cond_wait(&r->cv, &r->mu);
		pthread_mutex_unlock(&r->mu);
	}
	if (m->err != NULL) {
		if (err != NULL)
			*err = m->err;
		else
			free(m->err);
		m->err = NULL;
	}
	return m->rc;
}

static void *loop_main(void *arg)
{
	struct chk_runner *r = arg;

	event_base_loop(r->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int chk_runner_new(struct chk_runner **out, const struct chk_runner_opts *o, char **err)
{
	struct chk_runner *r;
	sigset_t all, old;
	int rc = WEFT_OK, e;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return weft_errf(err, WEFT_ENOMEM, "checks: out of memory");
	r->o = *o;
	r->efd = -1;
	r->cmds_tail = &r->cmds;
	r->notes_tail = &r->notes;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (getrandom(&r->rng, sizeof(r->rng), GRND_NONBLOCK) != (ssize_t)sizeof(r->rng))
		r->rng = (uint64_t)now_mono_ms() ^ ((uint64_t)getpid() << 32);
	r->rng |= 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = weft_errf(err, WEFT_EIO, "checks: libcurl: global initialisation failed");
		goto out;
	}
	r->curl_inited = 1;
	r->base = event_base_new();
	r->multi = curl_multi_init();
	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->base == NULL || r->multi == NULL || r->efd < 0) {
		rc = weft_errf(err, WEFT_EIO, "checks: event loop set-up failed: %s", strerror(errno));
		goto out;
	}
	r->curl_timer = evtimer_new(r->base, curl_timer_ev, r);
	r->wake = event_new(r->base, r->efd, EV_READ | EV_PERSIST, wake_cb, r);
	r->deliver = event_new(r->base, -1, 0, deliver_cb, r);
	if (r->curl_timer == NULL || r->wake == NULL || r->deliver == NULL ||
	    event_add(r->wake, NULL) != 0) {
		rc = weft_errf(err, WEFT_ENOMEM, "checks: out of memory");
		goto out;
	}
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
	/* The loop's thread takes no signals: the program handles them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&r->thread, NULL, loop_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		rc = weft_errf(err, WEFT_EIO, "checks: thread: %s", strerror(e));
		goto out;
	}
	r->thread_started = 1;
out:
	if (rc != WEFT_OK) {
		chk_runner_free(r);
		return rc;
	}
	*out = r;
	return WEFT_OK;
}

int chk_runner_set(struct chk_runner *r, const struct chk_def *defs, size_t n, char **err)
{
	struct cdef **copy = NULL;
	struct cmd m;
	int rc;

	if (n > CHK_MAX_CHECKS)
		return weft_errf(err, WEFT_EINVAL, "checks: more than %d checks", CHK_MAX_CHECKS);
	copy = calloc(n + 1, sizeof(*copy));
	if (copy == NULL)
		return weft_errf(err, WEFT_ENOMEM, "checks: out of memory");
	/* Validation and copies here, on the caller's thread. */
	for (size_t i = 0; i < n; i++) {
		if ((rc = cdef_make(&defs[i], i, &r->o, &copy[i], err)) != 0)
			goto out;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(copy[j]->id, copy[i]->id) == 0) {
				rc = weft_errf(err, WEFT_EINVAL, "check \"%s\": ID: given twice",
					       copy[i]->id);
				goto out;
			}
		}
	}
	memset(&m, 0, sizeof(m));
	m.kind = CMD_SET;
	m.defs = copy;   /* the loop takes them */
	m.n = n;
	copy = NULL;
	rc = post(r, &m, err);
out:
	if (copy != NULL) {
		for (size_t i = 0; i < n; i++)
			cdef_free(copy[i]);
		free(copy);
	}
	return rc;
}

int chk_runner_ttl(struct chk_runner *r, const char *id, enum chk_status s,
		   const char *output, char **err)
{
	struct cmd m;
	size_t total;
	char *cut = NULL;

	if (id == NULL)
		return weft_errf(err, WEFT_ENOENT, "check: no ID");
	if (s != CHK_PASSING && s != CHK_WARNING && s != CHK_CRITICAL)
		return weft_errf(err, WEFT_EINVAL, "check \"%s\": Status: not passing, warning or critical",
				 id);
	if (output == NULL)
		output = "";
	total = strlen(output);
	/* As Consul: the first CHK_OUTPUT_MAX bytes and a note of the cut. */
	if (total > CHK_OUTPUT_MAX)
		cut = fmt("%.*s ... (captured %d of %zu bytes)", CHK_OUTPUT_MAX, output,
			  CHK_OUTPUT_MAX, total);
	else
		cut = strdup(output);
	if (cut == NULL)
		return weft_errf(err, WEFT_ENOMEM, "check \"%s\": out of memory", id);
	memset(&m, 0, sizeof(m));
	m.kind = CMD_TTL;
	m.id = id;
	m.status = s;
	m.output = cut;
	return post(r, &m, err);
}

void chk_runner_free(struct chk_runner *r)
{
	struct cmd m;

	if (r == NULL)
		return;
	if (r->thread_started) {
		memset(&m, 0, sizeof(m));
		m.kind = CMD_STOP;
		post(r, &m, NULL);
		pthread_join(r->thread, NULL);
		r->thread_started = 0;
	}
	/* The loop is stopped: this thread owns everything now. */
	while (r->checks != NULL) {
		struct chk *c = r->checks;

		r->checks = c->next;
		chk_free(c);
	}
	while (r->orphans != NULL) {
		struct orphan *o = r->orphans;
		struct pollfd pfd = {.fd = o->pidfd, .events = POLLIN};
		siginfo_t si;
		int done = 0;

		r->orphans = o->next;
		kill(-o->pid, SIGKILL);
		/* Bounded: CHK_KILL_WAIT_MS in all. */
		if (o->pidfd >= 0) {
			if (poll(&pfd, 1, CHK_KILL_WAIT_MS) > 0)
				done = child_wait(o->pid, o->pidfd, &si) != 0;
		} else {
			for (int i = 0; i < CHK_KILL_WAIT_MS / 5 && !done; i++) {
				done = child_wait(o->pid, -1, &si) != 0;
				if (!done)
					usleep(5000);
			}
		}
		if (!done)
			log_errorx(SUBSYS, "script process %d did not die after SIGKILL", (int)o->pid);
		orphan_free(o);
	}
	while (r->notes != NULL) {
		struct note *n = r->notes;

		r->notes = n->next;
		free(n->output);
		free(n);
	}
	if (r->dns != NULL) {
		/* the lookups still out (UDP and H2PING checks that went) fail,
		 * and their callbacks, deferred to the loop, free their probes */
		evdns_base_free(r->dns, 1);
		event_base_loop(r->base, EVLOOP_NONBLOCK);
	}
	SSL_CTX_free(r->h2_tls[0]);
	SSL_CTX_free(r->h2_tls[1]);
	if (r->curl_timer != NULL)
		event_free(r->curl_timer);
	if (r->wake != NULL)
		event_free(r->wake);
	if (r->deliver != NULL)
		event_free(r->deliver);
	if (r->multi != NULL)
		curl_multi_cleanup(r->multi);
	if (r->base != NULL)
		event_base_free(r->base);
	if (r->efd >= 0)
		close(r->efd);
	if (r->curl_inited)
		curl_global_cleanup();
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

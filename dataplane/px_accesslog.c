/* px_accesslog: JSON lines through a ring drained by a timer with
 * non-blocking writes (px_accesslog.h).
 *
 * Several instances (one per worker) append to the same file: each
 * write() carries whole lines only, so lines never interleave. An
 * O_APPEND write to a regular file is atomic against other writers on
 * Linux; to a pipe, socket or terminal only up to PIPE_BUF bytes, so the
 * writes there are at most PIPE_BUF (a line is shorter: LINE_MAX_BYTES). */
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "err.h"
#include "log.h"
#include "px_accesslog.h"
#include "px_stats.h"

#define LINE_MAX_BYTES 4096
#define FLUSH_US 20000          /* the timer: 20 ms */
#define FILE_CHUNK (64u << 10)  /* one write to a regular file at most */

_Static_assert(LINE_MAX_BYTES <= PIPE_BUF, "a line must fit one atomic pipe write");

struct px_accesslog {
	struct event_base *base;
	struct event *timer;
	struct px_stats *stats;
	int fd;
	bool own_fd, armed;
	char *ring;
	size_t cap, head, len;          /* bytes [head, head+len) mod cap are queued */
	size_t chunk;                   /* one write at most: whole lines up to this */
	uint64_t dropped;
	bool warned;
};

static void on_flush(evutil_socket_t fd, short what, void *arg);

int px_accesslog_open(struct px_accesslog **out, struct event_base *base, const char *path,
		      size_t ring_bytes, struct px_stats *stats, char **err)
{
	struct px_accesslog *a = calloc(1, sizeof(*a));
	char msg[512];
	int rc = WEFT_ENOMEM, fl;

	*out = NULL;
	if (a == NULL)
		goto out;
	a->base = base;
	a->stats = stats;
	a->cap = ring_bytes ? ring_bytes : PX_ACCESSLOG_DEFAULT_RING;
	a->fd = -1;
	a->ring = malloc(a->cap);
	a->timer = evtimer_new(base, on_flush, a);
	if (a->ring == NULL || a->timer == NULL)
		goto out;
	if (strcmp(path, "-") == 0) {
		a->fd = STDOUT_FILENO;
	} else {
		a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
		a->own_fd = true;
		if (a->fd < 0) {
			snprintf(msg, sizeof(msg), "--access-log %s: %s", path, strerror(errno));
			rc = WEFT_EIO;
			goto out;
		}
	}
	{
		struct stat st;

		a->chunk = fstat(a->fd, &st) == 0 && S_ISREG(st.st_mode) ? FILE_CHUNK : PIPE_BUF;
	}
	fl = fcntl(a->fd, F_GETFL);
	if (fl < 0 || fcntl(a->fd, F_SETFL, fl | O_NONBLOCK) != 0) {
		snprintf(msg, sizeof(msg), "--access-log %s: cannot make it non-blocking: %s", path,
			 strerror(errno));
		rc = WEFT_EIO;
		goto out;
	}
	*out = a;
	a = NULL;
	rc = WEFT_OK;
out:
	if (rc == WEFT_ENOMEM)
		snprintf(msg, sizeof(msg), "--access-log: out of memory");
	if (rc != WEFT_OK && err)
		*err = strdup(msg);
	px_accesslog_free(a);
	return rc;
}

/* How many bytes from head make whole lines, at most max of them (all
 * of the first max bytes when no newline is among them: not expected,
 * a line is shorter than any chunk). */
static size_t whole_lines(const struct px_accesslog *a, size_t max)
{
	size_t lim = a->len < max ? a->len : max;
	size_t first = a->cap - a->head < lim ? a->cap - a->head : lim;
	const char *nl;

	if (lim > first && (nl = memrchr(a->ring, '\n', lim - first)) != NULL)
		return first + (size_t)(nl - a->ring) + 1;
	nl = memrchr(a->ring + a->head, '\n', first);
	return nl ? (size_t)(nl - (a->ring + a->head)) + 1 : lim;
}

/* Writes what it can without blocking, whole lines per write(); true
 * when the ring is empty. */
static bool flush(struct px_accesslog *a)
{
	while (a->len > 0) {
		struct iovec v[2];
		size_t want = whole_lines(a, a->chunk);
		size_t first = a->cap - a->head < want ? a->cap - a->head : want;
		int nv = 1;
		ssize_t w;
		uint64_t lost = 0;

		v[0] = (struct iovec){a->ring + a->head, first};
		if (first < want) {
			v[1] = (struct iovec){a->ring, want - first};
			nv = 2;
		}
		w = writev(a->fd, v, nv);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* a broken sink: drop what is queued, say it once */
				if (!a->warned)
					log_warn("proxy", "access log: write failed; lines are dropped");
				a->warned = true;
				for (size_t i = 0; i < a->len; i++)
					lost += a->ring[(a->head + i) % a->cap] == '\n';
				a->dropped += lost;
				px_stats_accesslog_dropped(a->stats, lost);
				a->head = a->len = 0;
				return true;
			}
			return false;
		}
		a->head = (a->head + (size_t)w) % a->cap;
		a->len -= (size_t)w;
	}
	a->head = 0;
	return true;
}

static void arm(struct px_accesslog *a)
{
	struct timeval tv = {0, FLUSH_US};

	if (!a->armed) {
		a->armed = true;
		evtimer_add(a->timer, &tv);
	}
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct px_accesslog *a = arg;

	a->armed = false;
	if (!flush(a))
		arm(a);
}

/* At the end the loop is gone: the sink gets a bounded wait (the serving
 * path never waits) before what is left is counted as dropped. */
#define LAST_FLUSH_MS 2000

void px_accesslog_free(struct px_accesslog *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0 && a->ring != NULL) {
		struct pollfd pfd = {.fd = a->fd, .events = POLLOUT};
		int waited = 0;

		while (!flush(a) && waited < LAST_FLUSH_MS) {
			if (poll(&pfd, 1, 50) < 0 && errno != EINTR)
				break;
			waited += 50;
		}
		if (a->len > 0) {
			uint64_t lost = 0;

			for (size_t i = 0; i < a->len; i++)
				lost += a->ring[(a->head + i) % a->cap] == '\n';
			a->dropped += lost;
			px_stats_accesslog_dropped(a->stats, lost);
			log_warnx("proxy", "access log: %llu lines dropped at exit (the sink did not "
				 "take them within %d ms)", (unsigned long long)lost, LAST_FLUSH_MS);
		}
	}
	if (a->timer)
		event_free(a->timer);
	if (a->own_fd && a->fd >= 0)
		close(a->fd);
	free(a->ring);
	free(a);
}

/* JSON string contents: quote, backslash and control characters escaped,
 * bytes past ASCII as \u00XX (the line stays valid JSON whatever came in). */
static size_t jstr(char *o, size_t room, const char *s, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char tmp[8];
		size_t k;

		if (ch == '"' || ch == '\\')
			k = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			k = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", ch);
		else
			k = (size_t)snprintf(tmp, sizeof(tmp), "%c", ch);
		if (w + k >= room)
			return (size_t)-1;
		memcpy(o + w, tmp, k);
		w += k;
	}
	return w;
}

/* The line being built: appends fail (and stay failed) when out of room. */
struct out {
	char *p;
	size_t size, w;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->w, o->size - o->w, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->size - o->w)
		o->full = true;
	else
		o->w += (size_t)n;
}

static void str(struct out *o, const char *s, size_t n)
{
	size_t k;

	if (o->full)
		return;
	k = jstr(o->p + o->w, o->size - o->w, s ? s : "", s ? n : 0);
	if (k == (size_t)-1)
		o->full = true;
	else
		o->w += k;
}

size_t px_accesslog_format(const struct px_accesslog_entry *e, uint64_t now_us, char *out,
			   size_t size)
{
	const char *line = e->line && e->line_len ? e->line : "-";
	size_t line_len = e->line && e->line_len ? e->line_len : 1;
	const char *sp = memchr(line, ' ', line_len);
	size_t mlen = sp ? (size_t)(sp - line) : line_len;
	time_t secs = (time_t)(now_us / 1000000);
	struct out o = {out, size, 0, false};
	struct tm tm;
	char ts[40];

	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	put(&o, "{\"time\":\"%s.%03uZ\",\"listener\":\"", ts, (unsigned)(now_us / 1000 % 1000));
	str(&o, e->listener, e->listener ? strlen(e->listener) : 0);
	put(&o, "\",\"source\":\"");
	str(&o, e->source, e->source ? strlen(e->source) : 0);
	put(&o, "\",\"method\":\"");
	str(&o, line, mlen);
	put(&o, "\",\"path\":\"");
	if (sp)
		str(&o, sp + 1, line_len - mlen - 1 > 2048 ? 2048 : line_len - mlen - 1);
	put(&o, "\",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f,"
	    "\"upstream\":\"", e->status, (unsigned long long)e->bytes_in,
	    (unsigned long long)e->bytes_out, (double)e->duration_us / 1000.0);
	str(&o, e->upstream, e->upstream ? strlen(e->upstream) : 0);
	put(&o, "\"}\n");
	return o.full ? 0 : o.w;
}

void px_accesslog_write(struct px_accesslog *a, const struct px_accesslog_entry *e)
{
	char line[LINE_MAX_BYTES];
	struct timeval tv;
	size_t n, tail;

	if (a == NULL)
		return;
	gettimeofday(&tv, NULL);
	n = px_accesslog_format(e, (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec, line,
				sizeof(line));
	if (n == 0 || n > a->cap - a->len) {
		a->dropped++;
		px_stats_accesslog_dropped(a->stats, 1);
		return;
	}
	tail = (a->head + a->len) % a->cap;
	if (tail + n <= a->cap) {
		memcpy(a->ring + tail, line, n);
	} else {
		memcpy(a->ring + tail, line, a->cap - tail);
		memcpy(a->ring, line + (a->cap - tail), n - (a->cap - tail));
	}
	a->len += n;
	arm(a);
}

uint64_t px_accesslog_dropped(const struct px_accesslog *a)
{
	return a ? a->dropped : 0;
}

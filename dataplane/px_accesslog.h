/* px_accesslog: one JSON line per request (docs/proxy-admin.md), written
 * without ever blocking the event loop.
 *
 * Lines go into an in-memory ring (bounded); a libevent timer drains it
 * with non-blocking writes (the sink's file description is set
 * O_NONBLOCK). When the ring has no room for a line, the line is dropped
 * and counted (px_accesslog_dropped(), and weft_proxy_access_log_dropped_total
 * through px_stats). One instance per event loop; the instances of several
 * worker threads may append to the same path: each write() carries whole
 * lines (at most PIPE_BUF bytes to a pipe), so lines never interleave.
 * Across instances lines are in the order of their flushes (each instance
 * flushes every 20 ms), not strictly in the order of their requests. */
#ifndef WEFT_PX_ACCESSLOG_H
#define WEFT_PX_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct px_stats;
struct px_accesslog;

#define PX_ACCESSLOG_DEFAULT_RING (1u << 20)

struct px_accesslog_entry {
	const char *listener;
	const char *source;        /* the caller's SPIFFE ID, else its address */
	const char *line;          /* "METHOD target" (NULL or empty: "-") */
	size_t line_len;
	int status;
	uint64_t bytes_in, bytes_out;   /* body bytes of the request and the response */
	uint64_t duration_us;
	const char *upstream;      /* "host:port" */
};

/* path "-" is standard output; anything else is opened for appending
 * (created 0640). ring_bytes 0: the default. stats (may be NULL) gets the
 * dropped lines. */
int px_accesslog_open(struct px_accesslog **out, struct event_base *base, const char *path,
		      size_t ring_bytes, struct px_stats *stats, char **err);
/* One last non-blocking flush, then closes (never standard output). */
void px_accesslog_free(struct px_accesslog *a);

void px_accesslog_write(struct px_accesslog *a, const struct px_accesslog_entry *e);
uint64_t px_accesslog_dropped(const struct px_accesslog *a);

/* The JSON line for e (with its newline) into out; its length, or 0 when
 * it does not fit. now_us: microseconds since the epoch. */
size_t px_accesslog_format(const struct px_accesslog_entry *e, uint64_t now_us, char *out,
			   size_t size);

#endif

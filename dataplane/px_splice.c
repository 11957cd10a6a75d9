/* px_splice: the kernel-side byte tunnel (px_splice.h). */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "err.h"
#include "px_splice.h"

#define CHUNK (64u << 10)          /* asked of each splice() into a pipe */

struct dir {
	struct px_splice *s;
	int from, to;
	int pipe_r, pipe_w;
	size_t in_pipe;                 /* bytes read into the pipe, not yet written out */
	char *prefix;                   /* a -> b: bytes to write before the pipe's */
	size_t prefix_len, prefix_off;
	uint64_t bytes;
	bool eof, ended;
	struct event *rd, *wr;
};

struct px_splice {
	struct dir d[2];                /* 0: a -> b, 1: b -> a */
	int fd_a, fd_b;
	struct event *idle;
	uint32_t idle_ms;
	uint64_t last_ms;
	px_splice_done_fn done;
	void *ud;
	bool finished;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Ends the tunnel and tells the owner: the last thing a callback does. */
static void finish(struct px_splice *s, int error, int idle)
{
	struct px_splice_result r = {s->d[0].bytes, s->d[1].bytes, error, idle};

	if (s->finished)
		return;
	s->finished = true;
	for (int i = 0; i < 2; i++) {
		event_del(s->d[i].rd);
		event_del(s->d[i].wr);
	}
	if (s->idle)
		event_del(s->idle);
	s->done(s->ud, &r);
}

/* Moves what it can in one direction; 0 when it waits (events armed) or
 * has ended, else an errno. */
static int pump(struct dir *d)
{
	ssize_t n;

	for (;;) {
		if (d->prefix_off < d->prefix_len) {
			n = write(d->to, d->prefix + d->prefix_off, d->prefix_len - d->prefix_off);
			if (n < 0 && errno == EAGAIN) {
				event_add(d->wr, NULL);
				return 0;
			}
			if (n < 0)
				return errno;
			d->prefix_off += (size_t)n;
			d->bytes += (uint64_t)n;
			d->s->last_ms = now_ms();
			continue;
		}
		if (d->in_pipe > 0) {
			n = splice(d->pipe_r, NULL, d->to, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0 && errno == EAGAIN) {
				event_add(d->wr, NULL);
				/* the pipe may still have room: keep reading too */
				if (!d->eof && d->in_pipe < CHUNK) {
					n = splice(d->from, NULL, d->pipe_w, NULL, CHUNK - d->in_pipe,
						   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
					if (n > 0) {
						d->in_pipe += (size_t)n;
						d->s->last_ms = now_ms();
					} else if (n == 0) {
						d->eof = true;
					} else if (errno != EAGAIN) {
						return errno;
					} else {
						event_add(d->rd, NULL);
					}
				}
				return 0;
			}
			if (n < 0)
				return errno;
			d->in_pipe -= (size_t)n;
			d->bytes += (uint64_t)n;
			d->s->last_ms = now_ms();
			continue;
		}
		if (d->eof) {
			if (!d->ended) {
				d->ended = true;
				shutdown(d->to, SHUT_WR);
			}
			return 0;
		}
		n = splice(d->from, NULL, d->pipe_w, NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EAGAIN) {
			event_add(d->rd, NULL);
			return 0;
		}
		if (n < 0)
			return errno;
		if (n == 0) {
			d->eof = true;
			continue;
		}
		d->in_pipe += (size_t)n;
		d->s->last_ms = now_ms();
	}
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct dir *d = arg;
	struct px_splice *s = d->s;
	int e = pump(d);

	if (e != 0)
		finish(s, e, 0);
	else if (s->d[0].ended && s->d[1].ended)
		finish(s, 0, 0);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct px_splice *s = arg;
	uint64_t now = now_ms();

	if (now - s->last_ms >= s->idle_ms) {
		finish(s, 0, 1);
		return;
	}
	{
		uint64_t left = s->idle_ms - (now - s->last_ms);
		struct timeval tv = {(time_t)(left / 1000u), (suseconds_t)(left % 1000u) * 1000};

		event_add(s->idle, &tv);
	}
}

static int dir_init(struct px_splice *s, struct dir *d, struct event_base *base, int from, int to)
{
	int p[2];

	d->s = s;
	d->from = from;
	d->to = to;
	d->pipe_r = d->pipe_w = -1;
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
		return errno;
	d->pipe_r = p[0];
	d->pipe_w = p[1];
	d->rd = event_new(base, from, EV_READ, on_io, d);
	d->wr = event_new(base, to, EV_WRITE, on_io, d);
	return d->rd && d->wr ? 0 : ENOMEM;
}

void px_splice_free(struct px_splice *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		struct dir *d = &s->d[i];

		if (d->rd)
			event_free(d->rd);
		if (d->wr)
			event_free(d->wr);
		if (d->pipe_r >= 0)
			close(d->pipe_r);
		if (d->pipe_w >= 0)
			close(d->pipe_w);
		free(d->prefix);
	}
	if (s->idle)
		event_free(s->idle);
	if (s->fd_a >= 0)
		close(s->fd_a);
	if (s->fd_b >= 0)
		close(s->fd_b);
	free(s);
}

int px_splice_new(struct px_splice **out, struct event_base *base, int fd_a, int fd_b,
		  const void *prefix, size_t prefix_len, uint32_t idle_ms, px_splice_done_fn done,
		  void *ud, char **err)
{
	struct px_splice *s = calloc(1, sizeof(*s));
	int e;

	*out = NULL;
	if (s == NULL) {
		close(fd_a);
		close(fd_b);
		return weft_errf(err, WEFT_ENOMEM, "splice: out of memory");
	}
	s->fd_a = fd_a;
	s->fd_b = fd_b;
	s->d[0].pipe_r = s->d[0].pipe_w = s->d[1].pipe_r = s->d[1].pipe_w = -1;
	s->done = done;
	s->ud = ud;
	s->idle_ms = idle_ms;
	s->last_ms = now_ms();
	fcntl(fd_a, F_SETFL, fcntl(fd_a, F_GETFL) | O_NONBLOCK);
	fcntl(fd_b, F_SETFL, fcntl(fd_b, F_GETFL) | O_NONBLOCK);
	if ((e = dir_init(s, &s->d[0], base, fd_a, fd_b)) != 0 ||
	    (e = dir_init(s, &s->d[1], base, fd_b, fd_a)) != 0) {
		px_splice_free(s);
		return weft_errf(err, e == ENOMEM ? WEFT_ENOMEM : WEFT_EIO, "splice: pipe: %s",
				 strerror(e));
	}
	if (prefix_len > 0) {
		s->d[0].prefix = malloc(prefix_len);
		if (s->d[0].prefix == NULL) {
			px_splice_free(s);
			return weft_errf(err, WEFT_ENOMEM, "splice: out of memory");
		}
		memcpy(s->d[0].prefix, prefix, prefix_len);
		s->d[0].prefix_len = prefix_len;
	}
	if (idle_ms > 0) {
		struct timeval tv = {(time_t)(idle_ms / 1000u), (suseconds_t)(idle_ms % 1000u) * 1000};

		s->idle = event_new(base, -1, 0, on_idle, s);
		if (s->idle == NULL) {
			px_splice_free(s);
			return weft_errf(err, WEFT_ENOMEM, "splice: out of memory");
		}
		event_add(s->idle, &tv);
	}
	/* start from the loop: done() never runs inside px_splice_new */
	event_active(s->d[0].wr, EV_WRITE, 1);
	event_active(s->d[1].wr, EV_WRITE, 1);
	*out = s;
	return WEFT_OK;
}

void px_splice_bytes(const struct px_splice *s, uint64_t *a_to_b, uint64_t *b_to_a)
{
	*a_to_b = s->d[0].bytes;
	*b_to_a = s->d[1].bytes;
}

/* px_splice: a byte tunnel between two connected sockets that moves the
 * bytes in the kernel, splice(2) through one pipe per direction, for the
 * TCP relays where neither side is TLS (the plaintext TCP listener, the
 * SNI passthrough listener). No byte is copied to user space.
 *
 * Half-close passes through: when one side ends its stream (EOF) and
 * every byte from it has been written to the other side, the other side
 * gets shutdown(SHUT_WR) and the other direction goes on. The tunnel ends
 * when both directions have ended, on an error of either socket, or after
 * idle_ms without a byte either way; then done() is called once, from the
 * event loop, and the owner frees the tunnel (which closes both sockets).
 *
 * Each direction reads only while its pipe has room, so a slow reader
 * slows its writer (the pipe is the only buffer: 64 KiB by default). */
#ifndef WEFT_PX_SPLICE_H
#define WEFT_PX_SPLICE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct px_splice;

struct px_splice_result {
	uint64_t a_to_b, b_to_a;    /* bytes moved (the prefix included) */
	int error;                  /* 0, or the errno that ended the tunnel */
	int idle_timeout;           /* 1: ended by idle_ms */
};

typedef void (*px_splice_done_fn)(void *ud, const struct px_splice_result *r);

/* Takes ownership of fd_a and fd_b (connected, either blocking mode; they
 * are made non-blocking) and starts relaying on base. prefix (may be
 * NULL): bytes already read from a, written to b before anything else
 * (copied). idle_ms 0: no idle limit. On failure (pipes, memory) the
 * sockets are closed, *out is NULL and WEFT_EIO/WEFT_ENOMEM is returned
 * with *err saying why. */
int px_splice_new(struct px_splice **out, struct event_base *base, int fd_a, int fd_b,
		  const void *prefix, size_t prefix_len, uint32_t idle_ms, px_splice_done_fn done,
		  void *ud, char **err);
/* Stops relaying and closes both sockets; safe inside done(). */
void px_splice_free(struct px_splice *s);
/* Bytes moved so far each way. */
void px_splice_bytes(const struct px_splice *s, uint64_t *a_to_b, uint64_t *b_to_a);

#endif

/* A growable byte buffer with a size cap (like curl's dynbuf "toobig"). */
#ifndef WEFT_BUF_H
#define WEFT_BUF_H

#include <stddef.h>

struct buf {
	char *data;     /* always NUL-terminated when not NULL */
	size_t len;
	size_t cap;
	size_t limit;   /* appends past this fail with WEFT_ETOOBIG */
};

void buf_init(struct buf *b, size_t limit);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Hands the data to the caller (who frees it) and empties the buffer. */
char *buf_steal(struct buf *b);

#endif

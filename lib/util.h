/* Small helpers: time, identifiers, encodings. */
#ifndef WEFT_UTIL_H
#define WEFT_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds on the monotonic clock (for timers). */
int64_t now_mono_ms(void);
/* Milliseconds since the epoch (for stored expiry times). */
int64_t now_wall_ms(void);
/* RFC 3339 UTC time with nanosecond digits, as Go prints it. */
void time_format_rfc3339(int64_t wall_ms, char *out, size_t size);

/* A uniformly random integer in [0, n) (0 when n is 0), for jitter. */
uint32_t random_below(uint32_t n);

/* A random UUID (version 4) in its 36-character form. */
void uuid_generate(char out[37]);
int uuid_valid(const char *s);

/* Standard base64 (with padding), as Consul encodes KV values. Caller frees. */
char *base64_encode(const void *data, size_t len);
/* Returns 0 and an allocated buffer, or -1 for invalid input. */
int base64_decode(const char *text, unsigned char **out, size_t *out_len);

/* Returns 1 when s is a valid DNS-ish name: letters, digits, '-', '_', '.'. */
int name_valid(const char *s, size_t maxlen);

/* Go's strconv.ParseBool (Consul's ?enable=, ?replace-existing-checks=):
 * 1, t, T, TRUE, true, True and their false forms. 0, or -1 for others. */
int parse_bool(const char *s, int *out);

/* Writes the whole buffer or fails; creates the file with the given mode. */
int file_write_all(const char *path, const void *data, size_t len, unsigned mode);
/* Reads a whole (small) file; caller frees. */
char *file_read_all(const char *path, size_t limit, size_t *len_out);

#endif

/* Go-style durations ("300ms", "1.5h", "2h45m", "10s"), as Consul takes them. */
#ifndef WEFT_DURATION_H
#define WEFT_DURATION_H

/* Returns 0 and the value in milliseconds, or -1 for a malformed string.
 * "0" alone is accepted without a unit, as Go does. */
int duration_parse_ms(const char *s, long long *out_ms);
/* Formats like Go's Duration.String() for whole milliseconds ("15s", "1m30s"). */
void duration_format(long long ms, char *out, unsigned size);

#endif

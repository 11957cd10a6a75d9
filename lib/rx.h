/* Regular expressions from untrusted patterns, bounded.
 *
 * Patterns use the RE2 syntax that Go (and so Consul) users write, as far
 * as POSIX ERE can follow it: \d \D, \d \w \s and escaped punctuation
 * inside [ ], a leading (?i), (?:...) groups; \w \s \b are GNU extensions.
 * Refused before glibc's regcomp sees them: back-references (exponential
 * matching), repetitions stacked on one another (a**, a{2}+), counts above
 * 1000, and patterns whose repetitions multiply past RX_MAX_COST (glibc
 * copies the repeated part for each count and each "+": ((x+)+)+... and
 * ((a{100}){100}){100} would take gigabytes). RX_MAX_COST bounds a whole
 * document too (an intention, a filter expression): its patterns share one
 * budget, or a few hundred patterns just under the limit would take
 * gigabytes and seconds to compile between them. */
#ifndef WEFT_RX_H
#define WEFT_RX_H

#include <regex.h>
#include <stddef.h>

#define RX_MAX_LEN 1024       /* bytes of pattern */
#define RX_MAX_COST 10000     /* atoms after repetitions are expanded (~40 B each) */

/* Compiles pattern[0..len) (it may hold any bytes) for yes/no matching.
 * budget: the atoms left to the document the pattern is part of, start it
 * at RX_MAX_COST; what the pattern costs is taken off it. NULL: the
 * pattern alone. Returns WEFT_OK, or WEFT_EINVAL with *err saying what is
 * wrong (without the pattern: the caller names it). regfree() what
 * compiled. */
int rx_compile(regex_t *re, const char *pattern, size_t len, long *budget, char **err);
/* 1 when s[0..len) matches, NUL bytes included; unanchored. */
int rx_match(const regex_t *re, const char *s, size_t len);

#endif

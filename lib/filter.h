/* Filter expressions over JSON objects, the subset of Consul's ?filter=
 * language (go-bexpr) that clients use:
 *   Selector == "value"   !=   "value" in Selector   not in
 *   Selector contains "value"   not contains   matches "re"   not matches
 *   Selector is empty   is not empty   and   or   not   ( )
 * Selectors are dotted paths (ServiceMeta.version, Service.Tags); a list met
 * before the selector's end applies the rest to each element (Checks.Status).
 * docs/api.md, "Filtering", is the reference. */
#ifndef WEFT_FILTER_H
#define WEFT_FILTER_H

#include <jansson.h>

struct filter;

/* Bounds for untrusted expressions. */
#define FILTER_MAX_LEN 8192     /* bytes */

/* Returns WEFT_OK, or WEFT_EINVAL with *err saying where the expression broke. */
int filter_compile(const char *expr, struct filter **out, char **err);
/* 1 when the object matches. */
int filter_match(const struct filter *f, json_t *obj);
/* Removes from items (an array, or an object of objects as Consul's
 * agent lists are) every element that does not match. */
void filter_keep(const struct filter *f, json_t *items);
void filter_free(struct filter *f);

#endif

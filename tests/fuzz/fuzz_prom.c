/* libFuzzer target: bytes -> prom_parse (a proxy's /stats, read by the
 * agent from whatever answers on the admin port) -> tele_proxy_json ->
 * the server's decoder. Invariants for any input:
 *  - the parse fails with a message, or gives stats within the bounds
 *    (listeners, buckets; le increasing, counts cumulative);
 *  - the sample the agent builds from it, first alone (a new start) and
 *    then as the delta from the first half of the input's stats, always
 *    decodes on the server (telemetry_decode): the agent never sends what
 *    the server refuses;
 *  - a sample from the same stats twice (no traffic) counts nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/telemetry.h"
#include "../../server/telemetry.h"
#include "err.h"
#include "prom.h"

static void check_bounds(const struct prom_stats *s)
{
	if (s->n > PROM_MAX_LISTENERS)
		abort();
	for (size_t i = 0; i < s->n; i++) {
		const struct prom_listener *l = &s->l[i];

		if (l->nbuckets > PROM_MAX_BUCKETS || strlen(l->name) > PROM_NAME_MAX)
			abort();
		for (size_t k = 1; k < l->nbuckets; k++)
			if (!(l->le[k] > l->le[k - 1]) || l->cum[k] < l->cum[k - 1])
				abort();
	}
}

/* The server decodes the sample made of this proxy entry. */
static void check_server_takes(json_t *proxy)
{
	json_t *body = json_pack("{s:s, s:[O]}", "Interval", "10s", "Proxies", proxy);
	struct tm_sample s;
	char *err = NULL;

	if (telemetry_decode(body, &s, &err) != WEFT_OK) {
		fprintf(stderr, "the server refuses what the agent sends: %s\n", err);
		abort();
	}
	telemetry_sample_clear(&s);
	json_decref(body);
}

static void check_nothing_counted(json_t *proxy)
{
	json_t *in = json_object_get(proxy, "Inbound"), *u;
	size_t i;

	if (in && (json_integer_value(json_object_get(in, "Requests")) != 0 ||
		   json_integer_value(json_object_get(in, "Denied")) != 0))
		abort();
	json_array_foreach(json_object_get(proxy, "Upstreams"), i, u)
		if (json_integer_value(json_object_get(u, "Requests")) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prom_stats a = { 0 }, b = { 0 };
	const char *text = (const char *)data;
	size_t half = size / 2;
	char *err = NULL;
	json_t *o;

	if (prom_parse(text, size, &a, &err) != WEFT_OK) {
		if (err == NULL)
			abort();
		free(err);
		goto out;
	}
	check_bounds(&a);
	o = tele_proxy_json("web-sidecar-proxy", "web", "default", NULL, &a, NULL);
	check_server_takes(o);
	json_decref(o);
	o = tele_proxy_json("web-sidecar-proxy", "web", "default", &a, &a, NULL);
	check_nothing_counted(o);
	check_server_takes(o);
	json_decref(o);
	/* the first half as the previous scrape */
	if (prom_parse(text, half, &b, &err) == WEFT_OK) {
		o = tele_proxy_json("web-sidecar-proxy", "web", "default", &b, &a, NULL);
		check_server_takes(o);
		json_decref(o);
	}
	free(err);
out:
	prom_stats_clear(&a);
	prom_stats_clear(&b);
	return 0;
}

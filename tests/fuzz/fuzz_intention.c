/* libFuzzer target: bytes -> JSON -> intention decoding -> a set -> decisions,
 * matches and the analysis. Checks what must hold for any input: a decoded
 * intention re-encodes to JSON that decodes to the same JSON; a decision by
 * an intention names one that matches the call; the analysis never fails on
 * a valid set. Input: an intention object, an array of them, or
 * {"Intentions": [...], "Calls": [{"SourceNS", "SourceName", ...,
 * "Method", "Path", "Headers": {"k": "v"}}]}. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "intention.h"
#include "jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CALLS 16
#define MAX_HEADERS 8

static void check_roundtrip(json_t *obj)
{
	struct intention *ix = NULL, *ix2 = NULL;
	json_t *o = NULL, *o2 = NULL;
	char *err = NULL;

	if (intention_from_json(obj, NULL, &ix, &err) != WEFT_OK)
		goto out;
	o = intention_to_json(ix);
	if (intention_from_json(o, NULL, &ix2, &err) != WEFT_OK)
		abort(); /* what we encode must decode */
	o2 = intention_to_json(ix2);
	if (!json_equal(o, o2))
		abort();
	if (intention_precedence(ix) != intention_compute_precedence(
		    intention_source_ns(ix), intention_source_name(ix),
		    intention_destination_ns(ix), intention_destination_name(ix)))
		abort();
out:
	free(err);
	json_decref(o);
	json_decref(o2);
	intention_free(ix);
	intention_free(ix2);
}

static int side_matches(const char *pns, const char *pn, const char *ns, const char *n)
{
	return (!strcmp(pns, "*") || !strcmp(pns, ns)) && (!strcmp(pn, "*") || !strcmp(pn, n));
}

static void decide_one(const struct intention_set *set, const struct intention_call *c)
{
	struct intention_decision d;
	json_t *j;

	intention_set_decide(set, c, INTENTION_DENY, &d);
	if (d.intention) {
		const char *sns = c->source_ns ? c->source_ns : "default";
		const char *dns = c->destination_ns ? c->destination_ns : "default";

		if (!side_matches(intention_source_ns(d.intention),
				  intention_source_name(d.intention), sns, c->source_name) ||
		    !side_matches(intention_destination_ns(d.intention),
				  intention_destination_name(d.intention), dns,
				  c->destination_name))
			abort();
	}
	if ((d.permission >= 0) != (d.reason == INTENTION_BY_PERMISSION))
		abort();
	j = intention_decision_to_json(&d);
	json_decref(j);
}

static void exercise(const struct intention_set *set, json_t *calls)
{
	static const char *const U[] = { "default" };
	struct intention_universe u = { U, 1 };
	struct intention_report *r = NULL;
	const struct intention **m = NULL;
	struct intention_header hs[MAX_HEADERS];
	size_t i, n = 0;
	json_t *c;
	char *err = NULL;

	/* Calls between the services the set names. */
	for (i = 0; i < intention_set_count(set) && i < MAX_CALLS; i++) {
		const struct intention *a = intention_set_get(set, i);
		const struct intention *b = intention_set_get(set, intention_set_count(set) - 1 - i);
		struct intention_call call = { intention_source_ns(a), intention_source_name(a),
					       intention_destination_ns(b),
					       intention_destination_name(b), (int)(i & 1), "GET",
					       "/a/b?c", NULL, 0 };

		decide_one(set, &call);
		if (intention_set_match(set, INTENTION_MATCH_DESTINATION,
					intention_destination_ns(a), intention_destination_name(a),
					&m, &n, &err) == WEFT_OK)
			free(m);
	}
	json_array_foreach(calls, i, c) {
		struct intention_call call;
		json_t *h = json_object_get(c, "Headers"), *v;
		const char *k;
		size_t nh = 0;

		if (i >= MAX_CALLS)
			break;
		memset(&call, 0, sizeof(call));
		call.source_ns = json_string_value(json_object_get(c, "SourceNS"));
		call.source_name = json_string_value(json_object_get(c, "SourceName"));
		call.destination_ns = json_string_value(json_object_get(c, "DestinationNS"));
		call.destination_name = json_string_value(json_object_get(c, "DestinationName"));
		call.method = json_string_value(json_object_get(c, "Method"));
		call.path = json_string_value(json_object_get(c, "Path"));
		call.http = call.method != NULL || call.path != NULL;
		json_object_foreach(h, k, v) {
			if (nh == MAX_HEADERS)
				break;
			hs[nh].name = k;
			hs[nh++].value = json_string_value(v);
		}
		call.headers = hs;
		call.n_headers = nh;
		decide_one(set, &call);
	}
	if (intention_set_analyze(set, NULL, &r, &err) != WEFT_OK)
		abort();
	json_decref(intention_report_to_json(r));
	intention_report_free(r);
	if (intention_set_analyze(set, &u, &r, &err) != WEFT_OK)
		abort();
	intention_report_free(r);
	if (intention_set_count(set) > 0) {
		if (intention_set_analyze_new(set, intention_set_get(set, 0), &u, &r, &err) != WEFT_OK)
			abort();
		intention_report_free(r);
	}
	free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = NULL, *ixs, *e;
	struct intention_set *set = NULL;
	char *err = NULL;
	size_t i;

	if (size > 65536)
		return 0;
	doc = jx_parse((const char *)data, size, &err);
	if (doc == NULL)
		goto out;
	ixs = json_is_object(doc) && json_object_get(doc, "Intentions")
		      ? json_object_get(doc, "Intentions") : doc;
	if (json_is_object(ixs)) {
		check_roundtrip(ixs);
		e = json_array();
		json_array_append(e, ixs);
		if (intention_set_from_json(e, &set, &err) == WEFT_OK)
			exercise(set, NULL);
		json_decref(e);
	} else if (json_is_array(ixs) && json_array_size(ixs) <= 256) {
		json_array_foreach(ixs, i, e)
			check_roundtrip(e);
		if (intention_set_from_json(ixs, &set, &err) == WEFT_OK)
			exercise(set, json_object_get(doc, "Calls"));
	}
out:
	intention_set_free(set);
	json_decref(doc);
	free(err);
	return 0;
}

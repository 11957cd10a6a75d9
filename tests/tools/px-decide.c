/* px-decide: decides calls the way weft-proxy does, for
 * tests/integration/test_px_agreement.py.
 *
 *   px-decide FILE
 *
 * FILE is JSON: {"Cases": [{"Snapshot": {...snapshot...}, "Calls": [
 *   {"Source": "<caller's SPIFFE ID>", "HTTP": false | true,
 *    "Method": "GET", "Path": "/x", "Headers": [["Name", "value"], ...]}]}]}
 * Each snapshot is decoded with px_config_decode (as the proxy does) and
 * each call decided with px_config_authorize. One line per call on
 * standard output, in order:
 *   allow|deny <TAB> the deciding intention as "SourceNS/SourceName>
 *   DestinationNS/DestinationName" or "-" <TAB> its ID or "-" (intentions
 *   written as config entries have none) <TAB> reason kind <TAB>
 *   permission index or -1
 * where the reason kind is intention_reason_kind() or, when the caller was
 * refused before the intentions, px_authz_reason_string().
 * Exit 0; 1 with a message on standard error if a snapshot is refused or
 * the input is malformed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jsonx.h"
#include "px_config.h"

#define HEADERS_MAX 32

static int decide_call(const struct px_config *cfg, json_t *call, size_t ci, size_t k)
{
	struct intention_header hs[HEADERS_MAX];
	struct intention_call http = { 0 };
	const char *source = json_string_value(json_object_get(call, "Source"));
	json_t *hdrs = json_object_get(call, "Headers"), *h;
	const struct intention *ix;
	char key[4 * INTENTION_NAME_MAX + 8];
	struct px_authz a;
	size_t i;

	if (source == NULL) {
		fprintf(stderr, "px-decide: Cases[%zu].Calls[%zu].Source: required\n", ci, k);
		return -1;
	}
	if (json_is_true(json_object_get(call, "HTTP"))) {
		http.http = 1;
		http.method = json_string_value(json_object_get(call, "Method"));
		http.path = json_string_value(json_object_get(call, "Path"));
		if (json_array_size(hdrs) > HEADERS_MAX) {
			fprintf(stderr, "px-decide: Cases[%zu].Calls[%zu].Headers: more than %d\n", ci,
				k, HEADERS_MAX);
			return -1;
		}
		json_array_foreach(hdrs, i, h) {
			hs[i].name = json_string_value(json_array_get(h, 0));
			hs[i].value = json_string_value(json_array_get(h, 1));
		}
		http.headers = hs;
		http.n_headers = json_array_size(hdrs);
	}
	px_config_authorize(cfg, source, http.http ? &http : NULL, &a);
	ix = a.decision.intention;
	if (ix)
		snprintf(key, sizeof(key), "%s/%s>%s/%s", intention_source_ns(ix),
			 intention_source_name(ix), intention_destination_ns(ix),
			 intention_destination_name(ix));
	else
		snprintf(key, sizeof(key), "-");
	printf("%s\t%s\t%s\t%s\t%d\n", a.action == INTENTION_ALLOW ? "allow" : "deny", key,
	       ix && intention_id(ix)[0] ? intention_id(ix) : "-",
	       a.reason == PX_AUTHZ_INTENTIONS ? intention_reason_kind(a.decision.reason)
					       : px_authz_reason_string(a.reason),
	       a.decision.permission);
	return 0;
}

int main(int argc, char **argv)
{
	json_t *root = NULL, *cases, *c;
	json_error_t je;
	int status = 1;
	size_t ci;

	if (argc != 2) {
		fprintf(stderr, "usage: px-decide FILE\n");
		return 2;
	}
	if ((root = json_load_file(argv[1], 0, &je)) == NULL) {
		fprintf(stderr, "px-decide: %s: line %d: %s\n", argv[1], je.line, je.text);
		goto out;
	}
	cases = json_object_get(root, "Cases");
	json_array_foreach(cases, ci, c) {
		struct px_config *cfg = NULL;
		json_t *calls = json_object_get(c, "Calls"), *call;
		char *text = jx_dump(json_object_get(c, "Snapshot")), *err = NULL;
		size_t k;
		int rc;

		rc = text ? px_config_decode(text, strlen(text), &cfg, &err) : WEFT_ENOMEM;
		free(text);
		if (rc != WEFT_OK) {
			fprintf(stderr, "px-decide: Cases[%zu].Snapshot: %s\n", ci, err ? err : "no memory");
			free(err);
			goto out;
		}
		json_array_foreach(calls, k, call) {
			if (decide_call(cfg, call, ci, k) != 0) {
				px_config_unref(cfg);
				goto out;
			}
		}
		px_config_unref(cfg);
	}
	status = fflush(stdout) == 0 ? 0 : 1;
out:
	json_decref(root);
	return status;
}

/* libFuzzer target: a weft-agent config file (YAML or JSON, as yamlx reads
 * both) -> svcdef_decode_file, then sidecar port assignment; and the same
 * bytes as a local API body -> svcdef_decode_service and _decode_check. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "jsonx.h"
#include "svcdef.h"
#include "yamlx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yamlx_doc *doc = NULL;
	json_t *services, *checks, *body, *check = NULL;
	char *err = NULL;

	if (size > 256 * 1024)
		return 0;
	if (yamlx_parse((const char *)data, size, "fuzz.yaml", &doc, &err) == 0) {
		for (size_t i = 0; i < yamlx_count(doc); i++) {
			services = json_array();
			checks = json_array();
			if (svcdef_decode_file(yamlx_root(doc, i), services, checks, &err) == 0) {
				if (svcdef_assign_ports(services, NULL, "127.0.0.1", &err) != 0) {
					free(err);
					err = NULL;
				}
			} else {
				char *msg = yamlx_error(doc, i, err);
				free(msg);
				free(err);
				err = NULL;
			}
			json_decref(services);
			json_decref(checks);
		}
		yamlx_free(doc);
	} else {
		free(err);
		err = NULL;
	}
	body = jx_parse((const char *)data, size, &err);
	free(err);
	err = NULL;
	if (body) {
		services = json_array();
		if (svcdef_decode_service(body, NULL, services, &err) != 0)
			free(err);
		err = NULL;
		json_decref(services);
		if (svcdef_decode_check(body, NULL, "", 0, &check, &err) != 0)
			free(err);
		json_decref(check);
		json_decref(body);
	}
	return 0;
}

/* libFuzzer target: PUT /v1/agent/service/register and check/register bodies. */
#include <stdint.h>
#include <stdlib.h>

#include "agent.h"
#include "err.h"
#include "jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_service_reg *svc = NULL;
	struct agent_check_reg *chk = NULL;
	char *err = NULL;
	json_t *doc = jx_parse((const char *)data, size, &err);

	if (doc) {
		if (agent_decode_service(doc, "server-1", "127.0.0.1", &svc, &err) == WEFT_OK)
			agent_service_reg_free(svc);
		free(err);
		err = NULL;
		if (agent_decode_check(doc, "server-1", &chk, &err) == WEFT_OK)
			agent_check_reg_free(chk);
		json_decref(doc);
	}
	free(err);
	return 0;
}

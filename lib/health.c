/* Aggregated health (health.h). */
#include "health.h"

#include <string.h>

int health_is_maintenance(const char *id)
{
	return id != NULL && (strcmp(id, HEALTH_NODE_MAINT_ID) == 0 ||
			      strncmp(id, HEALTH_SERVICE_MAINT_PREFIX,
				      strlen(HEALTH_SERVICE_MAINT_PREFIX)) == 0);
}

const char *health_aggregate(json_t *checks)
{
	const char *worst = "passing";
	json_t *c;
	size_t i;

	json_array_foreach(checks, i, c) {
		const char *st = json_string_value(json_object_get(c, "Status"));

		if (health_is_maintenance(json_string_value(json_object_get(c, "CheckID"))))
			return "maintenance";
		if (st == NULL || (strcmp(st, "passing") != 0 && strcmp(st, "warning") != 0))
			worst = "critical";
		else if (strcmp(st, "warning") == 0 && strcmp(worst, "passing") == 0)
			worst = "warning";
	}
	return worst;
}

int health_http_status(const char *agg)
{
	if (strcmp(agg, "passing") == 0)
		return 200;
	if (strcmp(agg, "warning") == 0)
		return 429;
	return 503;
}

/* Filter expressions: compile arbitrary bytes; when they compile, match
 * them against Consul-shaped objects (catalog entry, health entry, node). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const OBJECTS[] = {
	"{\"ID\":\"4c1d\",\"Node\":\"node-1\",\"Address\":\"10.0.0.1\",\"Datacenter\":\"dc1\","
	"\"TaggedAddresses\":{\"lan\":\"10.0.0.1\"},\"NodeMeta\":{\"rack\":\"r1\"},"
	"\"ServiceKind\":\"\",\"ServiceID\":\"web-1\",\"ServiceName\":\"web\","
	"\"ServiceTags\":[\"primary\",\"v2\"],\"ServiceAddress\":\"\","
	"\"ServiceWeights\":{\"Passing\":1,\"Warning\":1},\"ServiceMeta\":{\"version\":\"1.2.3\"},"
	"\"ServicePort\":8080,\"ServiceEnableTagOverride\":false,\"ServiceProxy\":{},"
	"\"Ratio\":0.5,\"Nothing\":null,\"Nested\":[[1,\"a\"],[{\"x\":[]}]],\"CreateIndex\":3}",
	"{\"Node\":{\"Node\":\"node-2\",\"Meta\":{\"rack\":\"r2\"}},"
	"\"Service\":{\"ID\":\"web-2\",\"Service\":\"web\",\"Tags\":[],\"Port\":8081,"
	"\"Meta\":{},\"EnableTagOverride\":true},"
	"\"Checks\":[{\"CheckID\":\"serfHealth\",\"Status\":\"passing\",\"ServiceTags\":[]},"
	"{\"CheckID\":\"web\",\"Status\":\"critical\",\"ServiceTags\":[\"x\"]}]}",
	"[]",
	"\"text\"",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *objs[sizeof(OBJECTS) / sizeof(OBJECTS[0])];
	struct filter *f = NULL;
	char *expr, *err = NULL;

	if (objs[0] == NULL)
		for (size_t i = 0; i < sizeof(OBJECTS) / sizeof(OBJECTS[0]); i++)
			objs[i] = json_loads(OBJECTS[i], JSON_DECODE_ANY, NULL);
	/* The API hands the filter a NUL-terminated query value. */
	expr = malloc(size + 1);
	if (expr == NULL)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	if (filter_compile(expr, &f, &err) == 0) {
		for (size_t i = 0; i < sizeof(OBJECTS) / sizeof(OBJECTS[0]); i++)
			(void)filter_match(f, objs[i]);
		if (err != NULL)
			abort();   /* success leaves no message */
	} else if (f != NULL || err == NULL) {
		abort();   /* failure always says why, and leaves nothing */
	}
	filter_free(f);
	free(err);
	free(expr);
	return 0;
}

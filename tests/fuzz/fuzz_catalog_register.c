/* Catalog request decoding: arbitrary bytes through jx_parse, then the
 * register, deregister, service and check decoders. */
#include <stdint.h>
#include <stdlib.h>

#include "catalog.h"
#include "jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cat_register *reg;
	struct cat_deregister *d;
	struct cat_service svc;
	struct cat_check chk;
	json_t *doc, *sub;
	char *err = NULL;

	doc = jx_parse((const char *)data, size, &err);
	if (doc == NULL) {
		if (err == NULL)
			abort();   /* a parse failure says where */
		free(err);
		return 0;
	}
	reg = calloc(1, sizeof(*reg));
	if (reg) {
		(void)catalog_decode_register(doc, "dc1", reg, &err);
		free(err);
		err = NULL;
		catalog_register_free(reg);
	}
	d = calloc(1, sizeof(*d));
	if (d) {
		(void)catalog_decode_deregister(doc, d, &err);
		free(err);
		err = NULL;
		catalog_deregister_free(d);
	}
	/* The service and check decoders on the document itself and on what
	 * a registration would hand them. */
	(void)catalog_decode_service(doc, "Service", &svc, &err);
	free(err);
	err = NULL;
	(void)catalog_decode_check(doc, "Check", &chk, &err);
	free(err);
	err = NULL;
	sub = jx_field(doc, "Service");
	if (sub) {
		(void)catalog_decode_service(sub, "Service", &svc, &err);
		free(err);
		err = NULL;
	}
	sub = jx_field(doc, "Check");
	if (sub) {
		(void)catalog_decode_check(sub, "Check", &chk, &err);
		free(err);
		err = NULL;
	}
	json_decref(doc);
	return 0;
}

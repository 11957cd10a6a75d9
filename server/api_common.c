#include "api.h"
#include "err.h"
#include "filter.h"
#include "http.h"
#include "mesh.h"
#include "server.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

int api_check_dc(struct req *r)
{
	const char *dc = req_query(r, "dc");

	if (dc == NULL || dc[0] == '\0' || strcmp(dc, req_server(r)->datacenter) == 0)
		return 0;
	req_error(r, 400, "dc: unknown datacenter \"%s\" (this server serves \"%s\")", dc,
		  req_server(r)->datacenter);
	return -1;
}

json_t *api_filter(struct req *r, json_t *items)
{
	const char *expr = req_query(r, "filter");
	struct filter *f = NULL;
	char *err = NULL;

	if (expr == NULL || expr[0] == '\0')
		return items;
	if (filter_compile(expr, &f, &err) != WEFT_OK) {
		req_error(r, 400, "filter: %s", err ? err : "invalid expression");
		free(err);
		json_decref(items);
		return NULL;
	}
	filter_keep(f, items);
	filter_free(f);
	return items;
}

struct db *api_read_begin(struct req *r)
{
	struct db *db = store_read_begin(req_server(r)->store);

	if (db == NULL)
		req_error(r, 500, "store: cannot open a read connection");
	return db;
}

int api_bad(struct req *r, int code, char *err)
{
	int status = req_errcode(r, code, err);

	free(err);
	return status;
}

const char *api_mesh_param(struct req *r)
{
	const char *m = req_query(r, "mesh");

	if (m == NULL || m[0] == '\0')
		return MESH_DEFAULT;
	if (!mesh_name_valid(m)) {
		req_error(r, 400, "mesh: \"%s\" is not a valid mesh name", m);
		return NULL;
	}
	return m;
}

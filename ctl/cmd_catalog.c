/* weftctl services, catalog services|nodes|register|deregister:
 * /v1/catalog/... */
#include "buf.h"
#include "ctl.h"
#include "err.h"
#include "input.h"

#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int list_services(struct ctl *g, int with_tags)
{
	const char **names = NULL;
	struct table *t = NULL;
	struct buf tags;
	size_t n = 0, i, j;
	const char *k;
	json_t *doc, *v, *e;
	int st;

	doc = ctl_call(g, "GET", "/v1/catalog/services", NULL, NULL, &st);
	if (doc == NULL)
		return st;
	if (g->json) {
		ctl_print_json(doc);
		goto out;
	}
	if (!json_is_object(doc)) {
		st = ctl_fail("unexpected reply to /v1/catalog/services: not an object");
		goto out;
	}
	names = calloc(json_object_size(doc) + 1, sizeof(*names));
	t = table_new(2);
	if (names == NULL || t == NULL) {
		st = ctl_fail("out of memory");
		goto out;
	}
	json_object_foreach(doc, k, v)
		names[n++] = k;
	qsort(names, n, sizeof(*names), cmp_str);
	buf_init(&tags, 1 << 20);
	for (i = 0; i < n; i++) {
		const char *row[2] = { names[i], "" };
		v = json_object_get(doc, names[i]);
		buf_reset(&tags);
		json_array_foreach(v, j, e) {
			if (json_is_string(e))
				buf_printf(&tags, "%s%s", tags.len ? "," : "", json_string_value(e));
		}
		row[1] = tags.data;
		if (with_tags)
			table_add(t, row);
		else
			puts(names[i]);
	}
	buf_free(&tags);
	table_print(t, stdout);
out:
	table_free(t);
	free(names);
	json_decref(doc);
	return st;
}

static int run_services(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc;

	rc = ctl_parse_flags(g, cmd, NULL, argc, argv);
	if (rc != CTL_CONTINUE)
		return rc;
	return list_services(g, 1);
}

static int run_catalog_services(struct ctl *g, const struct ctl_command *cmd, int argc,
				char **argv)
{
	int tags = 0, rc;
	const struct arg_opt opts[] = {
		{ "tags", ARG_BOOL, &tags, NULL, "show each service's tags", 0, 0 },
		{ 0 },
	};

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		return rc;
	return list_services(g, tags);
}

static int run_catalog_nodes(struct ctl *g, const struct ctl_command *cmd, int argc,
			     char **argv)
{
	int detailed = 0, rc, st;
	const struct arg_opt opts[] = {
		{ "detailed", ARG_BOOL, &detailed, NULL,
		  "show the full node ID, tagged addresses and metadata", 0, 0 },
		{ 0 },
	};
	struct table *t = NULL;
	struct buf b;
	json_t *doc, *n;
	size_t i;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		return rc;
	doc = ctl_call(g, "GET", "/v1/catalog/nodes", NULL, NULL, &st);
	if (doc == NULL)
		return st;
	if (g->json) {
		ctl_print_json(doc);
		goto out;
	}
	t = table_new(detailed ? 6 : 4);
	buf_init(&b, 1 << 20);
	if (detailed) {
		const char *hdr[] = { "Node", "ID", "Address", "DC", "TaggedAddresses", "Meta" };
		table_add(t, hdr);
	} else {
		const char *hdr[] = { "Node", "ID", "Address", "DC" };
		table_add(t, hdr);
	}
	json_array_foreach(doc, i, n) {
		char id[9];
		const char *key;
		json_t *v;
		char *tagged, *meta;

		snprintf(id, sizeof(id), "%s", ctl_str(n, "ID"));
		if (!detailed) {
			const char *row[] = { ctl_str(n, "Node"), id, ctl_str(n, "Address"),
					      ctl_str(n, "Datacenter") };
			table_add(t, row);
			continue;
		}
		buf_reset(&b);
		json_object_foreach(json_object_get(n, "TaggedAddresses"), key, v)
			buf_printf(&b, "%s%s=%s", b.len ? "," : "", key,
				   json_is_string(v) ? json_string_value(v) : "");
		tagged = strdup(b.data ? b.data : "");
		buf_reset(&b);
		json_object_foreach(json_object_get(n, "Meta"), key, v)
			buf_printf(&b, "%s%s=%s", b.len ? "," : "", key,
				   json_is_string(v) ? json_string_value(v) : "");
		meta = strdup(b.data ? b.data : "");
		{
			const char *row[] = { ctl_str(n, "Node"), ctl_str(n, "ID"),
					      ctl_str(n, "Address"), ctl_str(n, "Datacenter"),
					      tagged, meta };
			table_add(t, row);
		}
		free(tagged);
		free(meta);
	}
	buf_free(&b);
	table_print(t, stdout);
out:
	table_free(t);
	json_decref(doc);
	return st;
}

static int run_catalog_register(struct ctl *g, const struct ctl_command *cmd, int argc,
				char **argv)
{
	struct reg_flags f = { .port = -1 };
	const char *file = NULL, *node, *svc;
	const struct arg_opt opts[] = {
		{ "file", ARG_STR, &file, "FILE", "a JSON registration body, as for PUT /v1/catalog/register (- reads stdin)", 0, 0 },
		{ "node", ARG_STR, &f.node, "NAME", "the node to register (without -file)", 0, 0 },
		{ "address", ARG_STR, &f.address, "ADDR", "the node's address", 0, 0 },
		{ "service", ARG_STR, &f.service, "NAME", "a service on the node", 0, 0 },
		{ "service-id", ARG_STR, &f.service_id, "ID", "the service's ID (default: its name)", 0, 0 },
		{ "service-address", ARG_STR, &f.service_address, "ADDR", "the service's address (default: the node's)", 0, 0 },
		{ "port", ARG_INT, &f.port, "PORT", "the service's port", 0, 65535 },
		{ "tag", ARG_LIST, &f.tags, "TAG", "a service tag (repeat for more)", 0, 0 },
		{ "meta", ARG_LIST, &f.meta, "KEY=VALUE", "service metadata (repeat for more)", 0, 0 },
		{ 0 },
	};
	json_t *doc = NULL, *reply = NULL;
	char *err = NULL;
	int rc;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		goto out;
	if (file && (f.node || f.address || f.service || f.service_id || f.service_address ||
		     f.port >= 0 || f.tags.n || f.meta.n)) {
		rc = ctl_usage(cmd, "give either -file or -node/-address/-service flags, not both");
		goto out;
	}
	if (file) {
		doc = input_registration_file(file, &err);
		if (doc == NULL) {
			rc = ctl_fail("%s", err);
			goto out;
		}
	} else {
		doc = input_registration_flags(&f, &err);
		if (doc == NULL) {
			rc = ctl_usage(cmd, "%s", err);
			goto out;
		}
	}
	reply = ctl_call(g, "PUT", "/v1/catalog/register", doc, NULL, &rc);
	if (reply == NULL)
		goto out;
	if (g->json) {
		ctl_print_json(reply);
		goto out;
	}
	node = ctl_str(doc, "Node");
	svc = ctl_str(json_object_get(doc, "Service"), "Service");
	if (svc[0])
		printf("Registered service %s on node %s\n", svc, node);
	else
		printf("Registered node %s\n", node);
out:
	free(err);
	args_list_free(&f.tags);
	args_list_free(&f.meta);
	json_decref(doc);
	json_decref(reply);
	return rc;
}

static int run_catalog_deregister(struct ctl *g, const struct ctl_command *cmd, int argc,
				  char **argv)
{
	const char *node = NULL, *service_id = NULL, *check_id = NULL;
	const struct arg_opt opts[] = {
		{ "node", ARG_STR, &node, "NAME", "the node (required); alone, removes the node and all it has", 0, 0 },
		{ "service-id", ARG_STR, &service_id, "ID", "remove only this service of the node", 0, 0 },
		{ "check-id", ARG_STR, &check_id, "ID", "remove only this check of the node", 0, 0 },
		{ 0 },
	};
	json_t *doc = NULL, *reply = NULL;
	int rc;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		goto out;
	if (node == NULL || node[0] == '\0') {
		rc = ctl_usage(cmd, "-node is required");
		goto out;
	}
	doc = json_pack("{s:s}", "Node", node);
	if (service_id)
		json_object_set_new(doc, "ServiceID", json_string(service_id));
	if (check_id)
		json_object_set_new(doc, "CheckID", json_string(check_id));
	reply = ctl_call(g, "PUT", "/v1/catalog/deregister", doc, NULL, &rc);
	if (reply == NULL)
		goto out;
	if (g->json)
		ctl_print_json(reply);
	else if (service_id)
		printf("Deregistered service %s from node %s\n", service_id, node);
	else if (check_id)
		printf("Deregistered check %s from node %s\n", check_id, node);
	else
		printf("Deregistered node %s\n", node);
out:
	json_decref(doc);
	json_decref(reply);
	return rc;
}

const struct ctl_command ctl_cmds_catalog[] = {
	{ "services", "[flags]", "List the services in the catalog with their tags",
	  "The same as \"weftctl catalog services -tags\": one line per service,\n"
	  "its name and its tags (comma-separated), sorted by name.",
	  run_services },
	{ "catalog services", "[flags]", "List the services in the catalog",
	  "One service name per line, sorted; -tags adds a column with the tags.",
	  run_catalog_services },
	{ "catalog nodes", "[flags]", "List the nodes in the catalog",
	  "A table: Node, ID (first 8 characters), Address, DC.",
	  run_catalog_nodes },
	{ "catalog register", "-file FILE | -node NAME -address ADDR [-service NAME ...]",
	  "Register a node, and optionally a service on it",
	  "With -file, FILE holds the JSON body of PUT /v1/catalog/register (Consul's\n"
	  "format: Node, Address, optional Service, Check, Checks, NodeMeta, ...).\n"
	  "Errors in the file are reported with its name, line and column, or the\n"
	  "missing field. Without -file, the flags build the same body.\n\n"
	  "Here -address is the node's address: give the server's before the\n"
	  "command (weftctl --address HOST:PORT catalog register ...), as\n"
	  "-http-addr, or in $WEFT_HTTP_ADDR.\n\n"
	  "Example:\n"
	  "  weftctl catalog register -node web-1 -address 10.0.0.5 \\\n"
	  "      -service web -port 8080 -tag v1 -tag primary",
	  run_catalog_register },
	{ "catalog deregister", "-node NAME [-service-id ID | -check-id ID]",
	  "Remove a node, or a service or check of it, from the catalog",
	  "PUT /v1/catalog/deregister. Without -service-id or -check-id the node is\n"
	  "removed with every service and check it has.",
	  run_catalog_deregister },
	{ 0 },
};

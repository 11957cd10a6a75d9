/* weftctl members (/v1/agent/members), maint (an agent's maintenance
 * mode, /v1/agent/maintenance and /v1/agent/service/maintenance/ID) and
 * services register/deregister (an agent's /v1/agent/service/...). */
#include "ctl.h"
#include "buf.h"
#include "err.h"
#include "health.h"
#include "httpc.h"
#include "input.h"
#include "yamlx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Serf's member states, as Consul reports them in Status. */
static const char *member_status(json_t *m)
{
	static const char *const names[] = { "none", "alive", "leaving", "left", "failed" };
	json_t *s = json_object_get(m, "Status");

	if (json_is_string(s))
		return json_string_value(s);
	if (json_is_integer(s) && json_integer_value(s) >= 0 && json_integer_value(s) <= 4)
		return names[json_integer_value(s)];
	return "unknown";
}

static int run_members(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	struct table *t;
	json_t *doc, *m, *port;
	char addr[300];
	size_t i;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	free(pos);
	if (rc != CTL_CONTINUE)
		return rc;
	if (npos > 0)
		return ctl_usage(cmd, "unexpected argument");
	doc = ctl_call(g, "GET", "/v1/agent/members", NULL, NULL, &rc);
	if (doc == NULL)
		return rc;
	if (g->json) {
		ctl_print_json(doc);
		json_decref(doc);
		return rc;
	}
	t = table_new(3);
	{
		const char *hdr[] = { "Node", "Address", "Status" };
		table_add(t, hdr);
	}
	json_array_foreach(doc, i, m) {
		port = json_object_get(m, "Port");
		if (json_is_integer(port) && json_integer_value(port) > 0)
			snprintf(addr, sizeof(addr), "%s:%lld", ctl_str(m, "Addr"),
				 (long long)json_integer_value(port));
		else
			snprintf(addr, sizeof(addr), "%s", ctl_str(m, "Addr"));
		const char *row[] = { ctl_str(m, "Name"), addr, member_status(m) };
		table_add(t, row);
	}
	table_print(t, stdout);
	table_free(t);
	json_decref(doc);
	return rc;
}

/* Without -enable or -disable: what is in maintenance, from the checks. */
static int list_maintenance(struct ctl *g)
{
	json_t *doc, *c;
	const char *id;
	struct table *t;
	int rc;

	doc = ctl_call(g, "GET", "/v1/agent/checks", NULL, NULL, &rc);
	if (doc == NULL)
		return rc;
	t = table_new(3);
	{
		const char *hdr[] = { "In maintenance", "ID", "Reason" };
		table_add(t, hdr);
	}
	json_object_foreach(doc, id, c) {
		if (!health_is_maintenance(id))
			continue;
		const char *row[] = { ctl_str(c, "ServiceID")[0] ? "service" : "node",
				      ctl_str(c, "ServiceID")[0] ? ctl_str(c, "ServiceID")
							       : ctl_str(c, "Node"),
				      ctl_str(c, "Notes") };
		table_add(t, row);
	}
	if (g->json)
		ctl_print_json(doc);
	else
		table_print(t, stdout);
	table_free(t);
	json_decref(doc);
	return rc;
}

static int run_maint(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int enable = 0, disable = 0, rc;
	const char *service = NULL, *reason = NULL;
	const struct arg_opt opts[] = {
		{ "enable", ARG_BOOL, &enable, NULL, "enter maintenance mode", 0, 0 },
		{ "disable", ARG_BOOL, &disable, NULL, "leave maintenance mode", 0, 0 },
		{ "service", ARG_STR, &service, "ID", "a service instance, not the whole node", 0, 0 },
		{ "reason", ARG_STR, &reason, "TEXT", "with -enable: why (shown in the check's Notes)", 0, 0 },
		{ 0 },
	};
	struct buf path;
	json_t *doc;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		return rc;
	if (enable && disable)
		return ctl_usage(cmd, "give -enable or -disable, not both");
	if (reason && !enable)
		return ctl_usage(cmd, "-reason goes with -enable");
	if (!enable && !disable) {
		if (service)
			return ctl_usage(cmd, "-service goes with -enable or -disable");
		return list_maintenance(g);
	}
	if (service && (service[0] == '\0' || strchr(service, '/') || strchr(service, '?')))
		return ctl_usage(cmd, "-service: \"%s\" is not a service ID", service);
	buf_init(&path, 4096);
	if ((service ? buf_printf(&path, "/v1/agent/service/maintenance/%s", service)
		     : buf_printf(&path, "/v1/agent/maintenance")) != 0 ||
	    ctl_query_add(&path, "enable", enable ? "true" : "false") != 0 ||
	    (reason && ctl_query_add(&path, "reason", reason) != 0)) {
		buf_free(&path);
		return ctl_fail("out of memory");
	}
	doc = ctl_call(g, "PUT", path.data, NULL, NULL, &rc);
	buf_free(&path);
	if (doc == NULL)
		return rc;
	json_decref(doc);
	if (service)
		printf("Service %s %s maintenance mode\n", service, enable ? "entered" : "left");
	else
		printf("Node %s maintenance mode\n", enable ? "entered" : "left");
	return rc;
}

/* ---- services register / deregister (an agent's, as `consul services`) ---- */

/* The services of a definition file (the agent's config format: "service"
 * or "services"), each with its path in the file ("service",
 * "services[1]"). */
static int file_services(const struct yamlx_doc *doc, size_t i, json_t *out, char **err)
{
	json_t *root = yamlx_root(doc, i), *v, *e;
	const char *k;
	size_t n;
	char path[64];

	if (json_is_null(root))
		return WEFT_OK;
	if (!json_is_object(root))
		return weft_errf(err, WEFT_EINVAL, "%s: a service definition file is an object "
				 "with \"service\" or \"services\"", yamlx_file(doc));
	json_object_foreach(root, k, v) {
		if (strcasecmp(k, "service") == 0) {
			json_array_append_new(out, json_pack("{sO ss}", "def", v, "path", k));
		} else if (strcasecmp(k, "services") == 0 && json_is_array(v)) {
			json_array_foreach(v, n, e) {
				snprintf(path, sizeof(path), "%s[%zu]", k, n);
				json_array_append_new(out, json_pack("{sO ss}", "def", e, "path", path));
			}
		} else {
			return weft_errf(err, WEFT_EINVAL, "%s: \"%s\": only \"service\" or \"services\" "
					 "(a list) may be registered here", yamlx_file(doc), k);
		}
	}
	return WEFT_OK;
}

/* PUT one definition; an error that names a field is shown at its line. */
static int register_one(struct ctl *g, const struct yamlx_doc *doc, size_t i, json_t *item)
{
	struct httpc *c = ctl_http(g);
	struct httpc_resp resp = { 0 };
	json_t *def = json_object_get(item, "def");
	const char *path = json_string_value(json_object_get(item, "path"));
	char *err = NULL, *msg = NULL, *located = NULL;
	int rc;

	if (c == NULL)
		return CTL_ERR;
	if (httpc_json(c, "PUT", "/v1/agent/service/register", def, 0, NULL, &resp, &err) == WEFT_OK) {
		const char *id = json_string_value(json_object_get(def, "id"));

		if (id == NULL)
			id = json_string_value(json_object_get(def, "ID"));
		if (id == NULL)
			id = json_string_value(json_object_get(def, "name"));
		if (id == NULL)
			id = json_string_value(json_object_get(def, "Name"));
		printf("Registered service: %s\n", id ? id : "?");
		rc = CTL_OK;
	} else {
		if (resp.status == 400 && (msg = httpc_error_message(&resp)) != NULL) {
			char *at = NULL;

			/* "Checks[0].Interval: ..." is the agent's path inside the
			 * definition: located under its place in the file */
			if (asprintf(&at, "%s.%s", path, msg) > 0)
				located = yamlx_error(doc, i, at);
			free(at);
		}
		rc = ctl_fail("%s", located ? located : err ? err : "request failed");
	}
	free(err);
	free(msg);
	free(located);
	httpc_resp_free(&resp);
	return rc;
}

/* -name, -id, -port, -address, -tag..., -meta K=V...: one service, as
 * `consul services register -name=web -port=80` builds it. */
static int register_flags(struct ctl *g, const char *name, const char *id, long long port,
			  const char *address, const struct arg_list *tags,
			  const struct arg_list *meta)
{
	json_t *def = json_pack("{ss}", "Name", name), *t = json_array(), *m = json_object(), *reply;
	int rc;

	if (id)
		json_object_set_new(def, "ID", json_string(id));
	if (port >= 0)
		json_object_set_new(def, "Port", json_integer(port));
	if (address)
		json_object_set_new(def, "Address", json_string(address));
	for (size_t i = 0; i < tags->n; i++)
		json_array_append_new(t, json_string(tags->v[i]));
	for (size_t i = 0; i < meta->n; i++) {
		const char *eq = strchr(meta->v[i], '=');
		char key[256];

		if (eq == NULL || eq == meta->v[i] || (size_t)(eq - meta->v[i]) >= sizeof(key)) {
			json_decref(def);
			json_decref(t);
			json_decref(m);
			return ctl_fail("-meta: \"%s\" is not KEY=VALUE", meta->v[i]);
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - meta->v[i]), meta->v[i]);
		json_object_set_new(m, key, json_string(eq + 1));
	}
	json_object_set_new(def, "Tags", t);
	json_object_set_new(def, "Meta", m);
	reply = ctl_call(g, "PUT", "/v1/agent/service/register", def, NULL, &rc);
	if (reply != NULL)
		printf("Registered service: %s\n", id ? id : name);
	json_decref(reply);
	json_decref(def);
	return rc;
}

static int run_services_register(struct ctl *g, const struct ctl_command *cmd, int argc,
				 char **argv)
{
	const char **pos = NULL, *name = NULL, *id = NULL, *address = NULL;
	long long port = -1;
	struct arg_list tags = { 0 }, meta = { 0 };
	const struct arg_opt opts[] = {
		{ "name", ARG_STR, &name, "NAME", "the service's name (instead of files)", 0, 0 },
		{ "id", ARG_STR, &id, "ID", "with -name: the instance's ID (default: the name)", 0, 0 },
		{ "port", ARG_INT, &port, "N", "with -name: its port", 0, 65535 },
		{ "address", ARG_STR, &address, "ADDR", "with -name: its address (default: the node's)", 0, 0 },
		{ "tag", ARG_LIST, &tags, "TAG", "with -name: a tag (repeatable)", 0, 0 },
		{ "meta", ARG_LIST, &meta, "KEY=VALUE", "with -name: metadata (repeatable)", 0, 0 },
		{ 0 },
	};
	int npos = 0, rc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (name != NULL) {
		rc = npos > 0 ? ctl_usage(cmd, "give -name or files, not both")
			      : register_flags(g, name, id, port, address, &tags, &meta);
		goto out;
	}
	if (id || port >= 0 || address || tags.n || meta.n) {
		rc = ctl_usage(cmd, "-id, -port, -address, -tag and -meta go with -name");
		goto out;
	}
	if (npos == 0) {
		rc = ctl_usage(cmd, "give a service definition file (JSON or YAML), or -name");
		goto out;
	}
	for (int f = 0; f < npos && rc != CTL_ERR; f++) {
		struct yamlx_doc *doc = NULL;
		json_t *items = json_array(), *item;
		char *data = NULL, *err = NULL;
		size_t len, d, k;

		rc = CTL_OK;
		if (input_file(pos[f], &data, &len, &err) != WEFT_OK ||
		    yamlx_parse(data, len, pos[f], &doc, &err) != WEFT_OK) {
			rc = ctl_fail("%s", err ? err : pos[f]);
		} else {
			for (d = 0; d < yamlx_count(doc) && rc == CTL_OK; d++) {
				json_array_clear(items);
				if (file_services(doc, d, items, &err) != WEFT_OK) {
					rc = ctl_fail("%s", err);
					break;
				}
				json_array_foreach(items, k, item)
					if ((rc = register_one(g, doc, d, item)) != CTL_OK)
						break;
			}
		}
		free(err);
		free(data);
		json_decref(items);
		yamlx_free(doc);
	}
out:
	free(pos);
	args_list_free(&tags);
	args_list_free(&meta);
	return rc;
}

static int run_services_deregister(struct ctl *g, const struct ctl_command *cmd, int argc,
				   char **argv)
{
	const char *id = NULL;
	const struct arg_opt opts[] = {
		{ "id", ARG_STR, &id, "ID", "the service instance to remove", 0, 0 },
		{ 0 },
	};
	struct buf path;
	json_t *doc;
	char *esc;
	int rc;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		return rc;
	if (id == NULL || id[0] == '\0')
		return ctl_usage(cmd, "-id is required");
	esc = httpc_escape(id, 0);
	buf_init(&path, 4096);
	if (esc == NULL || buf_printf(&path, "/v1/agent/service/deregister/%s", esc) != 0) {
		free(esc);
		buf_free(&path);
		return ctl_fail("out of memory");
	}
	free(esc);
	doc = ctl_call(g, "PUT", path.data, NULL, NULL, &rc);
	buf_free(&path);
	if (doc == NULL)
		return rc;
	json_decref(doc);
	printf("Deregistered service: %s\n", id);
	return rc;
}

const struct ctl_command ctl_cmds_agent[] = {
	{ "members", "", "List the cluster's members (servers and agents)",
	  "A table of Node, Address (IP:port) and Status (alive, leaving, left,\n"
	  "failed), from GET /v1/agent/members.",
	  run_members },
	{ "maint", "[-enable [-reason TEXT] | -disable] [-service ID]",
	  "Put a node or a service instance in maintenance mode, or list what is",
	  "Talks to a weft-agent's local API (-http-addr 127.0.0.1:8500, or the\n"
	  "agent's --http-addr), as Consul's `consul maint`. -enable adds a critical\n"
	  "check of type maintenance (_node_maintenance, or _service_maintenance:ID\n"
	  "with -service) that takes the node's services, or the one instance, out\n"
	  "of the passing ones until -disable. Without -enable or -disable, lists\n"
	  "what is in maintenance and why.",
	  run_maint },
	{ "services register", "FILE... | -name NAME [-id ID] [-port N] [-address A] [-tag T]... [-meta K=V]...",
	  "Register services with a weft-agent, from definition files or flags",
	  "As Consul's `consul services register`: each FILE (JSON or YAML) holds\n"
	  "a \"service\" or a list of \"services\" in the agent's definition format\n"
	  "(docs/agent.md), sent to the agent at -http-addr (PUT\n"
	  "/v1/agent/service/register). The agent keeps them across restarts. An\n"
	  "error names the file, line and column of the field. With -name, the\n"
	  "flags make one service instead.",
	  run_services_register },
	{ "services deregister", "-id ID",
	  "Remove a service instance from a weft-agent",
	  "PUT /v1/agent/service/deregister/ID on the agent at -http-addr: the\n"
	  "service, its checks and its sidecar go, here and in the catalog.",
	  run_services_deregister },
	{ 0 },
};

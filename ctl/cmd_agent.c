/* weftctl members (/v1/agent/members) and maint (an agent's maintenance
 * mode, /v1/agent/maintenance and /v1/agent/service/maintenance/ID). */
#include "ctl.h"
#include "buf.h"
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	{ 0 },
};

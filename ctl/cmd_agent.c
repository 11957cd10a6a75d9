/* weftctl members: /v1/agent/members. */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>

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

const struct ctl_command ctl_cmds_agent[] = {
	{ "members", "", "List the cluster's members (servers and agents)",
	  "A table of Node, Address (IP:port) and Status (alive, leaving, left,\n"
	  "failed), from GET /v1/agent/members.",
	  run_members },
	{ 0 },
};

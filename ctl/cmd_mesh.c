/* weftctl mesh list|get|create|delete: /v1/meshes (Weft's own). */
#include "ctl.h"
#include "err.h"
#include "policy.h"

#include <stdlib.h>
#include <string.h>

static char *mesh_path(const char *name)
{
	char *esc = httpc_escape(name, 0), *path = NULL;

	if (esc == NULL || asprintf(&path, "/v1/meshes/%s", esc) < 0)
		path = NULL;
	free(esc);
	if (path == NULL)
		ctl_fail("out of memory");
	return path;
}

static void print_mesh(json_t *m)
{
	const char *k;
	json_t *v;

	printf("%-18s%s\n", "Name:", ctl_str(m, "Name"));
	printf("%-18s%s\n", "mTLS Mode:", ctl_str(m, "MTLSMode"));
	printf("%-18s%s\n", "Trust Domain:", ctl_str(m, "TrustDomain"));
	printf("%-18s%s\n", "Default Action:", ctl_str(m, "DefaultIntentionAction"));
	json_object_foreach(json_object_get(m, "Meta"), k, v) {
		char label[160];

		snprintf(label, sizeof(label), "Meta[%s]:", k);
		printf("%-18s%s\n", label, json_is_string(v) ? json_string_value(v) : "");
	}
	if (json_is_integer(json_object_get(m, "CreateIndex")))
		printf("%-18s%lld\n", "Create Index:",
		       (long long)json_integer_value(json_object_get(m, "CreateIndex")));
	if (json_is_integer(json_object_get(m, "ModifyIndex")))
		printf("%-18s%lld\n", "Modify Index:",
		       (long long)json_integer_value(json_object_get(m, "ModifyIndex")));
}

static int one_name(const struct ctl_command *cmd, int npos, const char **pos)
{
	if (npos != 1)
		return ctl_usage(cmd, npos ? "one NAME only" : "NAME is required");
	return CTL_CONTINUE;
}

static int run_list(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	struct table *t = NULL;
	json_t *list = NULL, *m;
	size_t i;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos > 0) {
		rc = ctl_usage(cmd, "unexpected argument \"%s\"", pos[0]);
		goto out;
	}
	if ((list = ctl_call(g, "GET", "/v1/meshes", NULL, NULL, &rc)) == NULL)
		goto out;
	if (g->json) {
		ctl_print_json(list);
		goto out;
	}
	t = table_new(4);
	{
		const char *hdr[] = { "Name", "mTLS", "DefaultAction", "TrustDomain" };
		table_add(t, hdr);
	}
	json_array_foreach(list, i, m) {
		const char *row[] = { ctl_str(m, "Name"), ctl_str(m, "MTLSMode"),
				      ctl_str(m, "DefaultIntentionAction"), ctl_str(m, "TrustDomain") };
		table_add(t, row);
	}
	table_print(t, stdout);
out:
	table_free(t);
	json_decref(list);
	free(pos);
	return rc;
}

static int run_get(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	char *path = NULL;
	json_t *m = NULL;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE || (rc = one_name(cmd, npos, pos)) != CTL_CONTINUE)
		goto out;
	rc = CTL_ERR;
	if ((path = mesh_path(pos[0])) == NULL)
		goto out;
	if ((m = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (g->json)
		ctl_print_json(m);
	else
		print_mesh(m);
out:
	json_decref(m);
	free(path);
	free(pos);
	return rc;
}

static int run_create(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *mtls = NULL, *trust = NULL, *action = NULL;
	struct arg_list meta_flags = { 0 };
	const struct arg_opt opts[] = {
		{ "mtls", ARG_STR, &mtls, "strict|permissive",
		  "strict: mTLS only; permissive: plain text accepted too", 0, 0 },
		{ "trust-domain", ARG_STR, &trust, "DOMAIN", "the SPIFFE trust domain", 0, 0 },
		{ "default-action", ARG_STR, &action, "allow|deny",
		  "what decides a call no intention matches", 0, 0 },
		{ "meta", ARG_LIST, &meta_flags, "KEY=VALUE", "metadata (repeatable)", 0, 0 },
		{ 0 },
	};
	const char **pos = NULL;
	char *path = NULL;
	json_t *body = json_object(), *reply = NULL, *meta = NULL, *old = NULL;
	char *err = NULL;
	int npos, rc, wrc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE || (rc = one_name(cmd, npos, pos)) != CTL_CONTINUE)
		goto out;
	if (mtls && strcmp(mtls, "strict") != 0 && strcmp(mtls, "permissive") != 0) {
		rc = ctl_usage(cmd, "flag -mtls: \"%s\" is not strict or permissive", mtls);
		goto out;
	}
	if (action && strcmp(action, "allow") != 0 && strcmp(action, "deny") != 0) {
		rc = ctl_usage(cmd, "flag -default-action: \"%s\" is not allow or deny", action);
		goto out;
	}
	if (policy_meta(&meta_flags, &meta, &err) != WEFT_OK) {
		rc = ctl_usage(cmd, "%s", err);
		goto out;
	}
	rc = CTL_ERR;
	if ((path = mesh_path(pos[0])) == NULL || ctl_http(g) == NULL)
		goto out;
	/* Settings not given keep their value: start from the mesh as it is. */
	wrc = httpc_json(g->http, "GET", path, NULL, 0, &old, NULL, &err);
	if (wrc == WEFT_OK && json_is_object(old)) {
		const char *keep[] = { "MTLSMode", "TrustDomain", "DefaultIntentionAction", "Meta" };

		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
			if (json_object_get(old, keep[i]))
				json_object_set(body, keep[i], json_object_get(old, keep[i]));
	} else if (wrc != WEFT_ENOENT) {
		rc = ctl_fail("%s", err ? err : "cannot read the mesh");
		goto out;
	}
	json_object_set_new(body, "Name", json_string(pos[0]));
	if (mtls)
		json_object_set_new(body, "MTLSMode", json_string(mtls));
	if (trust)
		json_object_set_new(body, "TrustDomain", json_string(trust));
	if (action)
		json_object_set_new(body, "DefaultIntentionAction", json_string(action));
	if (meta)
		json_object_set(body, "Meta", meta);
	if ((reply = ctl_call(g, "PUT", path, body, NULL, &rc)) == NULL)
		goto out;
	if (json_is_false(reply)) {
		rc = ctl_fail("the server did not write mesh %s", pos[0]);
		goto out;
	}
	if (g->json)
		ctl_print_json(reply);
	else
		printf("Mesh written: %s\n", pos[0]);
out:
	args_list_free(&meta_flags);
	json_decref(body);
	json_decref(reply);
	json_decref(meta);
	json_decref(old);
	free(err);
	free(path);
	free(pos);
	return rc;
}

static int run_delete(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	char *path = NULL;
	json_t *reply = NULL;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE || (rc = one_name(cmd, npos, pos)) != CTL_CONTINUE)
		goto out;
	rc = CTL_ERR;
	if ((path = mesh_path(pos[0])) == NULL)
		goto out;
	if ((reply = ctl_call(g, "DELETE", path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (json_is_false(reply))
		rc = ctl_fail("the server did not delete mesh %s", pos[0]);
	else if (g->json)
		ctl_print_json(reply);
	else
		printf("Mesh deleted: %s\n", pos[0]);
out:
	json_decref(reply);
	free(path);
	free(pos);
	return rc;
}

const struct ctl_command ctl_cmds_mesh[] = {
	{ "mesh list", "", "List the meshes", "", run_list },
	{ "mesh get", "NAME", "Show a mesh", "", run_get },
	{ "mesh create", "[-mtls strict|permissive] [-trust-domain D] [-default-action allow|deny] "
	  "[-meta K=V] NAME",
	  "Create a mesh, or update the settings given",
	  "A mesh holds its own intentions and config entries (weftctl --mesh NAME ...).\n"
	  "Settings not given keep their value, or the server's default for a new mesh.",
	  run_create },
	{ "mesh delete", "NAME", "Delete a mesh", "", run_delete },
	{ 0 },
};

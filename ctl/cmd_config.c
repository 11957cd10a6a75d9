/* weftctl config write|read|list|delete: /v1/config..., with consul
 * config's flags and output. */
#include "buf.h"
#include "config_entry.h"
#include "ctl.h"
#include "err.h"
#include "policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* /v1/config[/kind[/name]]?mesh=[&cas=N]; NULL after printing why. */
static char *config_path(struct ctl *g, const char *kind, const char *name, int cas,
			 long long index)
{
	struct buf b;
	char *k = kind ? httpc_escape(kind, 0) : NULL, *n = name ? httpc_escape(name, 0) : NULL;
	char num[32];
	int rc;

	buf_init(&b, 1 << 16);
	rc = buf_printf(&b, "/v1/config");
	if (rc == WEFT_OK && k)
		rc = buf_printf(&b, "/%s", k);
	if (rc == WEFT_OK && n)
		rc = buf_printf(&b, "/%s", n);
	if (rc == WEFT_OK)
		rc = ctl_query_add(&b, "mesh", g->mesh ? g->mesh : "default");
	if (rc == WEFT_OK && cas) {
		snprintf(num, sizeof(num), "%lld", index);
		rc = ctl_query_add(&b, "cas", num);
	}
	free(k);
	free(n);
	if ((kind && k == NULL) || (name && n == NULL) || rc != WEFT_OK) {
		buf_free(&b);
		ctl_fail("out of memory");
		return NULL;
	}
	return buf_steal(&b);
}

static int run_write(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int cas = 0, npos, rc;
	long long index = -1;
	const struct arg_opt opts[] = {
		{ "cas", ARG_BOOL, &cas, NULL,
		  "check-and-set: write only if the entry's ModifyIndex is -modify-index "
		  "(0: only if it does not exist)", 0, 0 },
		{ "modify-index", ARG_INT, &index, "N", "the ModifyIndex for -cas", 0, INT64_MAX },
		{ 0 },
	};
	const char **pos = NULL;
	json_t *entries = NULL, *e, *reply, *results = json_array();
	char *err = NULL, *path = NULL;
	size_t i;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos != 1) {
		rc = ctl_usage(cmd, npos ? "one FILE only" : "FILE is required (\"-\" for stdin)");
		goto out;
	}
	if (index >= 0 && !cas) {
		rc = ctl_usage(cmd, "-modify-index is only meaningful with -cas");
		goto out;
	}
	/* The whole file is validated, with the server's rules, before anything
	 * is sent. */
	if (policy_config_file(pos[0], &entries, &err) != WEFT_OK) {
		rc = ctl_fail("%s", err);
		goto out;
	}
	if (cas && json_array_size(entries) != 1) {
		rc = ctl_usage(cmd, "-cas writes one entry; %s holds %zu", pos[0],
			       json_array_size(entries));
		goto out;
	}
	json_array_foreach(entries, i, e) {
		const char *kind = config_entry_kind(e), *name = config_entry_name(e);

		free(path);
		if ((path = config_path(g, NULL, NULL, cas, index < 0 ? 0 : index)) == NULL) {
			rc = CTL_ERR;
			goto out;
		}
		if ((reply = ctl_call(g, "PUT", path, e, NULL, &rc)) == NULL) {
			fprintf(stderr, "weftctl: config entry %s/%s was not written\n", kind, name);
			goto out;
		}
		json_array_append_new(results, json_pack("{s:s, s:s, s:b}", "Kind", kind, "Name",
							 name, "Written", !json_is_false(reply)));
		if (json_is_false(reply)) {
			json_decref(reply);
			rc = ctl_fail("config entry not updated: %s/%s (its ModifyIndex is not %lld)",
				      kind, name, index < 0 ? 0 : index);
			goto out;
		}
		json_decref(reply);
		if (!g->json)
			printf("Config entry written: %s/%s\n", kind, name);
	}
	rc = CTL_OK;
out:
	if (g->json && json_array_size(results))
		ctl_print_json(results);
	free(pos);
	free(err);
	free(path);
	json_decref(entries);
	json_decref(results);
	return rc;
}

/* -kind (and -name) flags shared by read, list and delete. */
static int need(const struct ctl_command *cmd, const char *kind, const char *name, int want_name)
{
	if (kind == NULL || kind[0] == '\0')
		return ctl_usage(cmd, "-kind is required");
	if (!config_entry_kind_valid(kind))
		return ctl_usage(cmd, "-kind \"%s\": not a config entry kind (service-defaults, "
				 "proxy-defaults, service-router, service-splitter, "
				 "service-resolver, service-intentions, mesh)", kind);
	if (want_name && (name == NULL || name[0] == '\0'))
		return ctl_usage(cmd, "-name is required");
	return CTL_CONTINUE;
}

static int run_read(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *kind = NULL, *name = NULL;
	const struct arg_opt opts[] = {
		{ "kind", ARG_STR, &kind, "KIND", "the entry's kind", 0, 0 },
		{ "name", ARG_STR, &name, "NAME", "the entry's name", 0, 0 },
		{ 0 },
	};
	char *path = NULL;
	json_t *e = NULL;
	int rc;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		goto out;
	if ((rc = need(cmd, kind, name, 1)) != CTL_CONTINUE)
		goto out;
	rc = CTL_ERR;
	if ((path = config_path(g, kind, name, 0, 0)) == NULL)
		goto out;
	if ((e = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	/* consul config read prints the entry as JSON in either case. */
	ctl_print_json(e);
out:
	json_decref(e);
	free(path);
	return rc;
}

static int run_list(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *kind = NULL;
	const struct arg_opt opts[] = {
		{ "kind", ARG_STR, &kind, "KIND", "the kind to list", 0, 0 },
		{ 0 },
	};
	char *path = NULL;
	json_t *list = NULL, *e;
	size_t i;
	int rc;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		goto out;
	if ((rc = need(cmd, kind, NULL, 0)) != CTL_CONTINUE)
		goto out;
	rc = CTL_ERR;
	if ((path = config_path(g, kind, NULL, 0, 0)) == NULL)
		goto out;
	if ((list = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (g->json)
		ctl_print_json(list);
	else
		json_array_foreach(list, i, e)
			puts(ctl_str(e, "Name"));
out:
	json_decref(list);
	free(path);
	return rc;
}

static int run_delete(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *kind = NULL, *name = NULL;
	int cas = 0, rc;
	long long index = -1;
	const struct arg_opt opts[] = {
		{ "kind", ARG_STR, &kind, "KIND", "the entry's kind", 0, 0 },
		{ "name", ARG_STR, &name, "NAME", "the entry's name", 0, 0 },
		{ "cas", ARG_BOOL, &cas, NULL,
		  "check-and-set: delete only if the entry's ModifyIndex is -modify-index", 0, 0 },
		{ "modify-index", ARG_INT, &index, "N", "the ModifyIndex for -cas", 0, INT64_MAX },
		{ 0 },
	};
	char *path = NULL;
	json_t *reply = NULL, *deleted;
	int ok;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		goto out;
	if ((rc = need(cmd, kind, name, 1)) != CTL_CONTINUE)
		goto out;
	if (cas && index < 0) {
		rc = ctl_usage(cmd, "-cas needs -modify-index N");
		goto out;
	}
	if (index >= 0 && !cas) {
		rc = ctl_usage(cmd, "-modify-index is only meaningful with -cas");
		goto out;
	}
	rc = CTL_ERR;
	if ((path = config_path(g, kind, name, cas, index)) == NULL)
		goto out;
	if ((reply = ctl_call(g, "DELETE", path, NULL, NULL, &rc)) == NULL)
		goto out;
	/* `true`/`false`, or Consul's {"Deleted": bool}. */
	deleted = json_is_object(reply) ? json_object_get(reply, "Deleted") : reply;
	ok = !json_is_false(deleted);
	if (g->json) {
		json_t *r = json_pack("{s:s, s:s, s:b}", "Kind", kind, "Name", name, "Deleted", ok);

		ctl_print_json(r);
		json_decref(r);
	}
	if (!ok)
		rc = ctl_fail("config entry not deleted: %s/%s (its ModifyIndex is not %lld)", kind,
			      name, index);
	else if (!g->json)
		printf("Config entry deleted: %s/%s\n", kind, name);
out:
	json_decref(reply);
	free(path);
	return rc;
}

const struct ctl_command ctl_cmds_config[] = {
	{ "config write", "[-cas -modify-index N] FILE",
	  "Create or update config entries from a JSON or YAML file",
	  "FILE (\"-\" is stdin) holds one config entry, or several YAML documents\n"
	  "separated by \"---\". Each is validated as the server validates it before\n"
	  "anything is sent; an error names the file, line, column and field.",
	  run_write },
	{ "config read", "-kind KIND -name NAME", "Show a config entry (JSON)", "", run_read },
	{ "config list", "-kind KIND", "List the names of the config entries of a kind", "",
	  run_list },
	{ "config delete", "-kind KIND -name NAME [-cas -modify-index N]",
	  "Delete a config entry", "", run_delete },
	{ 0 },
};

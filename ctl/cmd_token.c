/* weftctl token create|list|read|revoke|self: /v1/acl/token... */
#include "buf.h"
#include "ctl.h"
#include "err.h"
#include "input.h"

#include <stdlib.h>
#include <string.h>

/* The service or node a token is bound to: Consul's identities, or Weft's
 * Service / Node fields. */
static void token_scope(json_t *t, struct buf *out)
{
	json_t *e;
	size_t i;

	buf_reset(out);
	json_array_foreach(json_object_get(t, "ServiceIdentities"), i, e)
		buf_printf(out, "%sservice:%s", out->len ? "," : "", ctl_str(e, "ServiceName"));
	json_array_foreach(json_object_get(t, "NodeIdentities"), i, e)
		buf_printf(out, "%snode:%s", out->len ? "," : "", ctl_str(e, "NodeName"));
	if (out->len == 0 && ctl_str(t, "Service")[0])
		buf_printf(out, "service:%s", ctl_str(t, "Service"));
	if (out->len == 0 && ctl_str(t, "Node")[0])
		buf_printf(out, "node:%s", ctl_str(t, "Node"));
}

/* consul acl token read's layout: "Label:" padded to 18 columns. */
static void print_token(json_t *t)
{
	struct buf scope;

	buf_init(&scope, 1 << 16);
	token_scope(t, &scope);
	printf("%-18s%s\n", "AccessorID:", ctl_str(t, "AccessorID"));
	printf("%-18s%s\n", "SecretID:", ctl_str(t, "SecretID")[0] ? ctl_str(t, "SecretID") : "<hidden>");
	printf("%-18s%s\n", "Description:", ctl_str(t, "Description"));
	if (ctl_str(t, "Kind")[0])
		printf("%-18s%s\n", "Kind:", ctl_str(t, "Kind"));
	if (scope.len)
		printf("%-18s%s\n", "Scope:", scope.data);
	if (ctl_str(t, "CreateTime")[0])
		printf("%-18s%s\n", "Create Time:", ctl_str(t, "CreateTime"));
	if (ctl_str(t, "ExpirationTime")[0])
		printf("%-18s%s\n", "Expiration Time:", ctl_str(t, "ExpirationTime"));
	buf_free(&scope);
}

static int show(struct ctl *g, const char *method, const char *path, json_t *body)
{
	json_t *t;
	int st;

	t = ctl_call(g, method, path, body, NULL, &st);
	if (t == NULL)
		return st;
	if (g->json)
		ctl_print_json(t);
	else if (!json_is_object(t))
		st = ctl_fail("unexpected reply to %s %s: not an object", method, path);
	else
		print_token(t);
	json_decref(t);
	return st;
}

static int run_token_create(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *kind = NULL, *service = NULL, *node = NULL, *description = NULL;
	long long ttl_ms = 0;
	const struct arg_opt opts[] = {
		{ "kind", ARG_STR, &kind, "KIND", "admin, operator, agent, service or read-only", 0, 0 },
		{ "service", ARG_STR, &service, "NAME", "the service a service token acts for", 0, 0 },
		{ "node", ARG_STR, &node, "NAME", "the node an agent token acts for", 0, 0 },
		{ "description", ARG_STR, &description, "TEXT", "a note for people", 0, 0 },
		{ "ttl", ARG_DURATION, &ttl_ms, "DURATION", "expire after this long (1h, 30m); default never", 0, 0 },
		{ 0 },
	};
	json_t *body = NULL;
	char *err = NULL;
	int rc;

	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		goto out;
	body = input_token_body(kind, service, node, description, ttl_ms, &err);
	if (body == NULL) {
		rc = ctl_usage(cmd, "%s", err);
		goto out;
	}
	rc = show(g, "PUT", "/v1/acl/token", body);
out:
	free(err);
	json_decref(body);
	return rc;
}

/* The commands that take one ACCESSOR argument. */
static int one_accessor(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv,
			char **path)
{
	const char **pos = NULL;
	char *esc = NULL;
	int npos, rc;

	*path = NULL;
	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos != 1) {
		rc = ctl_usage(cmd, npos ? "one ACCESSOR only" : "ACCESSOR is required");
		goto out;
	}
	esc = httpc_escape(pos[0], 0);
	if (esc == NULL || asprintf(path, "/v1/acl/token/%s", esc) < 0) {
		*path = NULL;
		rc = ctl_fail("out of memory");
	}
out:
	free(esc);
	free(pos);
	return rc;
}

static int run_token_read(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	char *path;
	int rc = one_accessor(g, cmd, argc, argv, &path);

	if (rc == CTL_CONTINUE)
		rc = show(g, "GET", path, NULL);
	free(path);
	return rc;
}

static int run_token_revoke(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	char *path;
	json_t *reply;
	int rc = one_accessor(g, cmd, argc, argv, &path);

	if (rc == CTL_CONTINUE) {
		reply = ctl_call(g, "DELETE", path, NULL, NULL, &rc);
		if (reply && json_is_false(reply))
			rc = ctl_fail("the server did not revoke token %s", path + strlen("/v1/acl/token/"));
		else if (reply && g->json)
			ctl_print_json(reply);
		else if (reply)
			printf("Token %s revoked\n", path + strlen("/v1/acl/token/"));
		json_decref(reply);
	}
	free(path);
	return rc;
}

static int run_token_self(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	free(pos);
	if (rc != CTL_CONTINUE)
		return rc;
	if (npos > 0)
		return ctl_usage(cmd, "unexpected argument");
	return show(g, "GET", "/v1/acl/token/self", NULL);
}

static int run_token_list(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	struct table *t = NULL;
	struct buf scope;
	json_t *doc, *e;
	size_t i;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	free(pos);
	if (rc != CTL_CONTINUE)
		return rc;
	if (npos > 0)
		return ctl_usage(cmd, "unexpected argument");
	doc = ctl_call(g, "GET", "/v1/acl/tokens", NULL, NULL, &rc);
	if (doc == NULL)
		return rc;
	if (g->json) {
		ctl_print_json(doc);
		goto out;
	}
	buf_init(&scope, 1 << 16);
	t = table_new(5);
	{
		const char *hdr[] = { "AccessorID", "Kind", "Scope", "Expires", "Description" };
		table_add(t, hdr);
	}
	json_array_foreach(doc, i, e) {
		token_scope(e, &scope);
		const char *row[] = { ctl_str(e, "AccessorID"), ctl_str(e, "Kind"),
				      scope.len ? scope.data : "-",
				      ctl_str(e, "ExpirationTime")[0] ? ctl_str(e, "ExpirationTime") : "never",
				      ctl_str(e, "Description") };
		table_add(t, row);
	}
	table_print(t, stdout);
	buf_free(&scope);
out:
	table_free(t);
	json_decref(doc);
	return rc;
}

const struct ctl_command ctl_cmds_token[] = {
	{ "token create", "-kind KIND [-service NAME | -node NAME] [-description TEXT] [-ttl DURATION]",
	  "Create a token and print its AccessorID and SecretID",
	  "Kinds: admin (everything), operator (read everything, write policy),\n"
	  "agent (a node and its services; needs -node), service (one service;\n"
	  "needs -service), read-only. The SecretID is shown once: keep it.",
	  run_token_create },
	{ "token list", "", "List the tokens (without their secrets)", "", run_token_list },
	{ "token read", "ACCESSOR", "Show a token", "", run_token_read },
	{ "token revoke", "ACCESSOR", "Revoke a token",
	  "A revoked token is refused from then on.", run_token_revoke },
	{ "token self", "", "Show the token weftctl is using (--token / $WEFT_HTTP_TOKEN)", "",
	  run_token_self },
	{ 0 },
};

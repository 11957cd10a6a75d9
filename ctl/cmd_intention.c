/* weftctl intention create|get|list|delete|check|match|analyze|explain:
 * /v1/connect/intentions..., with consul intention's flags and output. */
#include "buf.h"
#include "ctl.h"
#include "err.h"
#include "policy.h"

#include <stdlib.h>
#include <string.h>

/* -method, -path and -header: an HTTP request for check and explain. */
struct l7_flags {
	const char *method, *path;
	struct arg_list headers;
};

#define L7_OPTS(f)                                                                          \
	{ "method", ARG_STR, &(f).method, "METHOD", "an HTTP request with this method (L7)", 0, 0 }, \
	{ "path", ARG_STR, &(f).path, "PATH", "an HTTP request for this path (L7)", 0, 0 },         \
	{ "header", ARG_LIST, &(f).headers, "NAME=VALUE",                                          \
	  "an HTTP request with this header (L7; repeatable)", 0, 0 }

static int l7_given(const struct l7_flags *f)
{
	return f->method || f->path || f->headers.n > 0;
}

/* Usage error for a -header without NAME=VALUE. */
static int l7_check(const struct ctl_command *cmd, const struct l7_flags *f)
{
	char *name = NULL, *value = NULL, *err = NULL;
	int rc = CTL_CONTINUE;

	for (size_t i = 0; i < f->headers.n && rc == CTL_CONTINUE; i++) {
		if (policy_header(f->headers.v[i], &name, &value, &err) != WEFT_OK)
			rc = ctl_usage(cmd, "%s", err);
		free(name);
		free(value);
		free(err);
		name = value = err = NULL;
	}
	return rc;
}

/* /v1/connect/intentions/<what>?source=&destination=&mesh= (+ the L7
 * request); NULL after printing why. */
static char *pair_path(struct ctl *g, const char *what, const char *src, const char *dst,
		       const struct l7_flags *l7)
{
	struct buf b;
	char *name = NULL, *value = NULL, *err = NULL, *hv = NULL, *out = NULL;
	int rc = WEFT_OK;

	buf_init(&b, 1 << 20);
	if (buf_printf(&b, "/v1/connect/intentions/%s", what) != WEFT_OK ||
	    ctl_query_add(&b, "source", src) != WEFT_OK ||
	    ctl_query_add(&b, "destination", dst) != WEFT_OK)
		rc = WEFT_ENOMEM;
	if (rc == WEFT_OK && l7 && l7->method)
		rc = ctl_query_add(&b, "method", l7->method);
	if (rc == WEFT_OK && l7 && l7->path)
		rc = ctl_query_add(&b, "path", l7->path);
	for (size_t i = 0; rc == WEFT_OK && l7 && i < l7->headers.n; i++) {
		if (policy_header(l7->headers.v[i], &name, &value, &err) != WEFT_OK) {
			ctl_fail("%s", err);
			goto out;
		}
		if (asprintf(&hv, "%s:%s", name, value) < 0) {
			hv = NULL;
			rc = WEFT_ENOMEM;
		} else {
			rc = ctl_query_add(&b, "header", hv);
		}
		free(name);
		free(value);
		free(hv);
		name = value = hv = NULL;
	}
	if (rc == WEFT_OK)
		rc = ctl_query_add(&b, "mesh", g->mesh ? g->mesh : "default");
	if (rc != WEFT_OK) {
		ctl_fail("out of memory");
		goto out;
	}
	out = buf_steal(&b);
out:
	buf_free(&b);
	free(err);
	return out;
}

/* The source or destination as the server's query takes it: "name", or
 * "ns/name" outside the default namespace. */
static char *side(json_t *ix, const char *ns_field, const char *name_field)
{
	const char *ns = ctl_str(ix, ns_field), *name = ctl_str(ix, name_field);
	char *s = NULL;

	if (ns[0] && strcmp(ns, INTENTION_DEFAULT_NS) != 0) {
		if (asprintf(&s, "%s/%s", ns, name) < 0)
			s = NULL;
	} else {
		s = strdup(name);
	}
	return s;
}

static void print_warnings(json_t *reply)
{
	json_t *w;
	size_t i;

	json_array_foreach(json_object_get(reply, "Warnings"), i, w)
		if (json_is_string(w))
			fprintf(stderr, "WARNING: %s\n", json_string_value(w));
}

/* Checks the SRC DST arguments (and that they form a valid intention). */
static int check_pair(const struct ctl_command *cmd, const char *src, const char *dst)
{
	char *ns = NULL, *name = NULL, *err = NULL;
	int rc = CTL_CONTINUE;

	if (policy_target(src, "source", &ns, &name, &err) != WEFT_OK ||
	    (free(ns), free(name), policy_target(dst, "destination", &ns, &name, &err)) != WEFT_OK)
		rc = ctl_usage(cmd, "%s", err);
	free(ns);
	free(name);
	free(err);
	return rc;
}

/* Builds the intention of "create SRC DST" and validates it with the
 * engine's decoder. */
static json_t *intention_from_args(const char *src, const char *dst, int deny,
				   const char *description, json_t *meta, int *rc)
{
	char *sns = NULL, *sname = NULL, *dns = NULL, *dname = NULL, *err = NULL;
	struct intention *ix = NULL;
	json_t *o = json_object();

	*rc = CTL_OK;
	if (o == NULL || policy_target(src, "source", &sns, &sname, &err) != WEFT_OK ||
	    policy_target(dst, "destination", &dns, &dname, &err) != WEFT_OK) {
		*rc = ctl_fail("%s", err ? err : "out of memory");
		goto out;
	}
	if (sns)
		json_object_set_new(o, "SourceNS", json_string(sns));
	json_object_set_new(o, "SourceName", json_string(sname));
	if (dns)
		json_object_set_new(o, "DestinationNS", json_string(dns));
	json_object_set_new(o, "DestinationName", json_string(dname));
	json_object_set_new(o, "SourceType", json_string("consul"));
	json_object_set_new(o, "Action", json_string(deny ? "deny" : "allow"));
	if (description)
		json_object_set_new(o, "Description", json_string(description));
	if (meta)
		json_object_set(o, "Meta", meta);
	if (intention_from_json(o, NULL, &ix, &err) != WEFT_OK)
		*rc = ctl_fail("%s => %s: %s", src, dst, err);
out:
	intention_free(ix);
	free(sns);
	free(sname);
	free(dns);
	free(dname);
	free(err);
	if (*rc != CTL_OK) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* Creates (or with replace, creates or replaces) one intention. Appends
 * what happened to results. */
static int create_one(struct ctl *g, json_t *ix, int replace, json_t *results)
{
	char *src = side(ix, "SourceNS", "SourceName");
	char *dst = side(ix, "DestinationNS", "DestinationName");
	char *line = policy_intention_line(ix), *path = NULL, *err = NULL;
	const char *done = "created";
	json_t *reply = NULL, *old = NULL, *r;
	int rc = CTL_ERR, exists = 0, wrc;

	if (src == NULL || dst == NULL || line == NULL) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	if (replace) {
		/* consul intention create -replace: look the pair up first. */
		if ((path = pair_path(g, "exact", src, dst, NULL)) == NULL)
			goto out;
		if (ctl_http(g) == NULL)
			goto out;
		wrc = httpc_json(g->http, "GET", path, NULL, 0, &old, NULL, &err);
		if (wrc == WEFT_OK) {
			exists = 1;
		} else if (wrc != WEFT_ENOENT) {
			rc = ctl_fail("looking up intention %s: %s", line, err);
			goto out;
		}
	}
	if (exists) {
		reply = ctl_call(g, "PUT", path, ix, NULL, &rc);
		done = "replaced";
	} else {
		free(path);
		if ((path = ctl_mesh_path(g, "/v1/connect/intentions")) == NULL)
			goto out;
		reply = ctl_call(g, "POST", path, ix, NULL, &rc);
	}
	if (reply == NULL) {
		fprintf(stderr, "weftctl: intention %s was not %s\n", line, done);
		goto out;
	}
	print_warnings(reply);
	if (!g->json)
		printf("%s: %s\n", exists ? "Replaced" : "Created", line);
	r = json_pack("{s:s, s:O}", "Result", done, "Intention", ix);
	if (r && json_is_string(json_object_get(reply, "ID")))
		json_object_set(r, "ID", json_object_get(reply, "ID"));
	else if (r && json_is_string(json_object_get(old, "ID")))
		json_object_set(r, "ID", json_object_get(old, "ID"));
	if (r && json_is_array(json_object_get(reply, "Warnings")))
		json_object_set(r, "Warnings", json_object_get(reply, "Warnings"));
	json_array_append_new(results, r);
out:
	free(src);
	free(dst);
	free(line);
	free(path);
	free(err);
	json_decref(reply);
	json_decref(old);
	return rc;
}

static int run_create(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int allow = 0, deny = 0, replace = 0, file = 0, npos, rc;
	const char *description = NULL;
	struct arg_list meta_flags = { 0 };
	const struct arg_opt opts[] = {
		{ "allow", ARG_BOOL, &allow, NULL, "an intention that allows (the default)", 0, 0 },
		{ "deny", ARG_BOOL, &deny, NULL, "an intention that denies", 0, 0 },
		{ "replace", ARG_BOOL, &replace, NULL,
		  "replace the intention with the same source and destination", 0, 0 },
		{ "file", ARG_BOOL, &file, NULL,
		  "read the intentions from the FILE arguments (JSON or YAML)", 0, 0 },
		{ "meta", ARG_LIST, &meta_flags, "KEY=VALUE", "metadata (repeatable)", 0, 0 },
		{ "description", ARG_STR, &description, "TEXT", "a note for people", 0, 0 },
		{ 0 },
	};
	const char **pos = NULL;
	json_t *ixs = json_array(), *meta = NULL, *results = json_array(), *one;
	char *err = NULL;
	size_t i;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (allow && deny) {
		rc = ctl_usage(cmd, "only one of -allow or -deny may be given");
		goto out;
	}
	if (policy_meta(&meta_flags, &meta, &err) != WEFT_OK) {
		rc = ctl_usage(cmd, "%s", err);
		goto out;
	}
	if (file) {
		if (npos == 0) {
			rc = ctl_usage(cmd, "-file needs at least one FILE");
			goto out;
		}
		if (allow || deny || meta || description) {
			rc = ctl_usage(cmd, "with -file the intentions come from the files: "
				       "-allow, -deny, -meta and -description cannot be given");
			goto out;
		}
		/* Every file is read and validated before anything is sent. */
		for (i = 0; i < (size_t)npos; i++)
			if (policy_intentions_file(pos[i], ixs, &err) != WEFT_OK) {
				rc = ctl_fail("%s", err);
				goto out;
			}
	} else {
		if (npos != 2) {
			rc = ctl_usage(cmd, "SRC and DST are required (or -file FILE...)");
			goto out;
		}
		if ((rc = check_pair(cmd, pos[0], pos[1])) != CTL_CONTINUE)
			goto out;
		one = intention_from_args(pos[0], pos[1], deny, description, meta, &rc);
		if (one == NULL)
			goto out;
		json_array_append_new(ixs, one);
	}
	rc = CTL_OK;
	for (i = 0; i < json_array_size(ixs) && rc == CTL_OK; i++)
		rc = create_one(g, json_array_get(ixs, i), replace, results);
	if (g->json)
		ctl_print_json(results);
out:
	args_list_free(&meta_flags);
	free(pos);
	free(err);
	json_decref(ixs);
	json_decref(meta);
	json_decref(results);
	return rc;
}

/* The intention named by SRC DST, or by its ID (looked up in the list, as
 * consul's finder does). */
static json_t *lookup(struct ctl *g, const struct ctl_command *cmd, int npos, const char **pos,
		      int *rc)
{
	json_t *list = NULL, *e, *found = NULL;
	char *path = NULL;
	size_t i;

	if (npos == 2) {
		if ((*rc = check_pair(cmd, pos[0], pos[1])) != CTL_CONTINUE)
			return NULL;
		if ((path = pair_path(g, "exact", pos[0], pos[1], NULL)) == NULL) {
			*rc = CTL_ERR;
			return NULL;
		}
		found = ctl_call(g, "GET", path, NULL, NULL, rc);
		free(path);
		if (found && !json_is_object(found)) {
			json_decref(found);
			found = NULL;
			*rc = ctl_fail("unexpected reply from the server: not an intention");
		}
		return found;
	}
	if (npos != 1) {
		*rc = ctl_usage(cmd, "SRC DST, or an intention ID, is required");
		return NULL;
	}
	if ((path = ctl_mesh_path(g, "/v1/connect/intentions")) == NULL) {
		*rc = CTL_ERR;
		return NULL;
	}
	list = ctl_call(g, "GET", path, NULL, NULL, rc);
	free(path);
	json_array_foreach(list, i, e)
		if (strcmp(ctl_str(e, "ID"), pos[0]) == 0)
			found = json_incref(e);
	if (list && found == NULL)
		*rc = ctl_fail("no intention with ID \"%s\"", pos[0]);
	json_decref(list);
	return found;
}

static void print_intention(json_t *ix)
{
	const char *k;
	json_t *v;
	char *s;

	s = side(ix, "SourceNS", "SourceName");
	printf("%-14s%s\n", "Source:", s ? s : "");
	free(s);
	s = side(ix, "DestinationNS", "DestinationName");
	printf("%-14s%s\n", "Destination:", s ? s : "");
	free(s);
	if (ctl_str(ix, "Action")[0])
		printf("%-14s%s\n", "Action:", ctl_str(ix, "Action"));
	if (ctl_str(ix, "ID")[0])
		printf("%-14s%s\n", "ID:", ctl_str(ix, "ID"));
	if (ctl_str(ix, "Description")[0])
		printf("%-14s%s\n", "Description:", ctl_str(ix, "Description"));
	/* jansson keeps insertion order; print the keys sorted as consul does. */
	{
		const char **keys = NULL;
		size_t n = 0, i, j;
		json_t *meta = json_object_get(ix, "Meta");

		if (json_object_size(meta) && (keys = calloc(json_object_size(meta), sizeof(*keys)))) {
			json_object_foreach(meta, k, v)
				keys[n++] = k;
			for (i = 1; i < n; i++)
				for (j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
					const char *t = keys[j];
					keys[j] = keys[j - 1];
					keys[j - 1] = t;
				}
			for (i = 0; i < n; i++) {
				char label[160];

				snprintf(label, sizeof(label), "Meta[%s]:", keys[i]);
				v = json_object_get(meta, keys[i]);
				printf("%-14s%s\n", label, json_is_string(v) ? json_string_value(v) : "");
			}
			free(keys);
		}
	}
	if (json_is_integer(json_object_get(ix, "Precedence")))
		printf("%-14s%lld\n", "Precedence:",
		       (long long)json_integer_value(json_object_get(ix, "Precedence")));
	if (json_is_integer(json_object_get(ix, "CreateIndex")))
		printf("%-14s%lld\n", "Create Index:",
		       (long long)json_integer_value(json_object_get(ix, "CreateIndex")));
	if (json_is_integer(json_object_get(ix, "ModifyIndex")))
		printf("%-14s%lld\n", "Modify Index:",
		       (long long)json_integer_value(json_object_get(ix, "ModifyIndex")));
	if (json_array_size(json_object_get(ix, "Permissions"))) {
		puts("Permissions:");
		json_dumpf(json_object_get(ix, "Permissions"), stdout, JSON_INDENT(2));
		putchar('\n');
	}
}

static int run_get(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	json_t *ix;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	ix = lookup(g, cmd, npos, pos, &rc);
	if (ix == NULL)
		goto out;
	if (g->json)
		ctl_print_json(ix);
	else
		print_intention(ix);
	json_decref(ix);
	rc = CTL_OK;
out:
	free(pos);
	return rc;
}

static int run_delete(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	char *src = NULL, *dst = NULL, *path = NULL;
	json_t *ix = NULL, *reply = NULL;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos == 2) {
		if ((rc = check_pair(cmd, pos[0], pos[1])) != CTL_CONTINUE)
			goto out;
		src = strdup(pos[0]);
		dst = strdup(pos[1]);
	} else {
		/* By ID: find its source and destination. */
		if ((ix = lookup(g, cmd, npos, pos, &rc)) == NULL)
			goto out;
		src = side(ix, "SourceNS", "SourceName");
		dst = side(ix, "DestinationNS", "DestinationName");
	}
	rc = CTL_ERR;
	if (src == NULL || dst == NULL) {
		ctl_fail("out of memory");
		goto out;
	}
	if ((path = pair_path(g, "exact", src, dst, NULL)) == NULL)
		goto out;
	reply = ctl_call(g, "DELETE", path, NULL, NULL, &rc);
	if (reply == NULL)
		goto out;
	if (json_is_false(reply))
		rc = ctl_fail("the server did not delete the intention %s => %s", src, dst);
	else if (g->json)
		ctl_print_json(reply);
	else
		puts("Intention deleted.");
out:
	free(pos);
	free(src);
	free(dst);
	free(path);
	json_decref(ix);
	json_decref(reply);
	return rc;
}

static int run_list(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	struct table *t = NULL;
	json_t *list = NULL, *e;
	char *path = NULL;
	size_t i;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos > 0) {
		rc = ctl_usage(cmd, "unexpected argument \"%s\"", pos[0]);
		goto out;
	}
	rc = CTL_ERR;
	if ((path = ctl_mesh_path(g, "/v1/connect/intentions")) == NULL)
		goto out;
	if ((list = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (g->json) {
		ctl_print_json(list);
		goto out;
	}
	if (json_array_size(list) == 0) {
		puts("There are no intentions.");
		goto out;
	}
	t = table_new(5);
	{
		const char *hdr[] = { "ID", "Source", "Action", "Destination", "Precedence" };
		table_add(t, hdr);
	}
	json_array_foreach(list, i, e) {
		char prec[32], act[64], *s = side(e, "SourceNS", "SourceName"),
			*d = side(e, "DestinationNS", "DestinationName");
		size_t np = json_array_size(json_object_get(e, "Permissions"));

		snprintf(prec, sizeof(prec), "%lld",
			 (long long)json_integer_value(json_object_get(e, "Precedence")));
		if (np)
			snprintf(act, sizeof(act), "%zu permission%s", np, np == 1 ? "" : "s");
		else
			snprintf(act, sizeof(act), "%s", ctl_str(e, "Action"));
		const char *row[] = { ctl_str(e, "ID"), s, act, d, prec };
		table_add(t, row);
		free(s);
		free(d);
	}
	table_print(t, stdout);
out:
	table_free(t);
	json_decref(list);
	free(path);
	free(pos);
	return rc;
}

/* "intention web => db (allow), precedence 9", or "the default action". */
static void print_decided_by(json_t *answer)
{
	json_t *ix = json_object_get(answer, "Intention");
	char *line;

	if (json_is_object(ix)) {
		line = policy_intention_line(ix);
		printf("Decided by: intention %s", line ? line : "");
		if (json_is_integer(json_object_get(ix, "Precedence")))
			printf(", precedence %lld",
			       (long long)json_integer_value(json_object_get(ix, "Precedence")));
		if (json_is_integer(json_object_get(answer, "Permission")))
			printf(", Permissions[%lld]",
			       (long long)json_integer_value(json_object_get(answer, "Permission")));
		putchar('\n');
		free(line);
	} else if (strcmp(ctl_str(answer, "DecidedBy"), "default") == 0) {
		puts("Decided by: the default action");
	}
	if (ctl_str(answer, "Reason")[0])
		printf("Reason: %s\n", ctl_str(answer, "Reason"));
}

/* consul intention check: 0 allowed, 1 denied, 2 for anything else. */
static int run_check(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	struct l7_flags l7 = { 0 };
	const struct arg_opt opts[] = { L7_OPTS(l7), { 0 } };
	const char **pos = NULL;
	json_t *answer = NULL;
	char *path = NULL;
	int npos, rc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos != 2) {
		rc = ctl_usage(cmd, "SRC and DST are required");
		goto out;
	}
	if ((rc = check_pair(cmd, pos[0], pos[1])) != CTL_CONTINUE ||
	    (rc = l7_check(cmd, &l7)) != CTL_CONTINUE)
		goto out;
	rc = CTL_USAGE;
	if ((path = pair_path(g, "check", pos[0], pos[1], &l7)) == NULL)
		goto out;
	if ((answer = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL) {
		rc = CTL_USAGE;
		goto out;
	}
	if (!json_is_boolean(json_object_get(answer, "Allowed"))) {
		ctl_fail("unexpected reply from the server: no Allowed");
		rc = CTL_USAGE;
		goto out;
	}
	rc = json_is_true(json_object_get(answer, "Allowed")) ? 0 : 1;
	if (g->json) {
		ctl_print_json(answer);
		goto out;
	}
	puts(rc == 0 ? "Allowed" : "Denied");
	print_decided_by(answer);
out:
	args_list_free(&l7.headers);
	json_decref(answer);
	free(path);
	free(pos);
	return rc;
}

static int run_match(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int source = 0, destination = 0, npos, rc;
	const struct arg_opt opts[] = {
		{ "source", ARG_BOOL, &source, NULL, "match intentions by their source", 0, 0 },
		{ "destination", ARG_BOOL, &destination, NULL,
		  "match intentions by their destination (the default)", 0, 0 },
		{ 0 },
	};
	const char **pos = NULL;
	json_t *reply = NULL, *list, *e;
	struct buf b;
	char *line;
	size_t i;

	buf_init(&b, 1 << 16);
	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (source && destination) {
		rc = ctl_usage(cmd, "only one of -source or -destination may be given");
		goto out;
	}
	if (npos != 1) {
		rc = ctl_usage(cmd, "one NAME is required");
		goto out;
	}
	rc = CTL_ERR;
	if (buf_printf(&b, "/v1/connect/intentions/match") != WEFT_OK ||
	    ctl_query_add(&b, "by", source ? "source" : "destination") != WEFT_OK ||
	    ctl_query_add(&b, "name", pos[0]) != WEFT_OK ||
	    ctl_query_add(&b, "mesh", g->mesh ? g->mesh : "default") != WEFT_OK) {
		ctl_fail("out of memory");
		goto out;
	}
	if ((reply = ctl_call(g, "GET", b.data, NULL, NULL, &rc)) == NULL)
		goto out;
	list = json_object_get(reply, pos[0]);
	if (g->json) {
		ctl_print_json(list ? list : json_array());
		goto out;
	}
	json_array_foreach(list, i, e) {
		line = policy_intention_line(e);
		puts(line ? line : "");
		free(line);
	}
out:
	buf_free(&b);
	json_decref(reply);
	free(pos);
	return rc;
}

static void print_finding(json_t *f)
{
	struct buf b;
	json_t *by, *e;
	size_t i;

	buf_init(&b, 1 << 16);
	if (ctl_str(f, "SourceName")[0]) {
		char *s = side(f, "SourceNS", "SourceName"), *d = side(f, "DestinationNS", "DestinationName");

		buf_printf(&b, "%s => %s", s ? s : "", d ? d : "");
		free(s);
		free(d);
	}
	if (json_is_integer(json_object_get(f, "Permission")))
		buf_printf(&b, "%sPermissions[%lld]", b.len ? " " : "",
			   (long long)json_integer_value(json_object_get(f, "Permission")));
	if (ctl_str(f, "ID")[0])
		buf_printf(&b, "%s(ID %s)", b.len ? " " : "", ctl_str(f, "ID"));
	printf("%s: %s\n", ctl_str(f, "Kind"), b.data ? b.data : "");
	if (ctl_str(f, "Message")[0])
		printf("  %s\n", ctl_str(f, "Message"));
	by = json_object_get(f, "By");
	if (json_array_size(by)) {
		buf_reset(&b);
		json_array_foreach(by, i, e)
			buf_printf(&b, "%s%s", i ? ", " : "", json_is_string(e) ? json_string_value(e) : "?");
		printf("  covered by: %s\n", b.data);
	}
	buf_free(&b);
}

static int run_analyze(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **pos = NULL;
	json_t *reply = NULL, *findings, *f;
	char *path = NULL;
	size_t i;
	int npos, rc;

	rc = ctl_parse(g, cmd, NULL, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos > 0) {
		rc = ctl_usage(cmd, "unexpected argument \"%s\"", pos[0]);
		goto out;
	}
	rc = CTL_ERR;
	if ((path = ctl_mesh_path(g, "/v1/connect/intentions/analysis")) == NULL)
		goto out;
	if ((reply = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (g->json) {
		ctl_print_json(reply);
		goto out;
	}
	findings = json_is_array(reply) ? reply : json_object_get(reply, "Findings");
	if (!json_is_array(findings)) {
		rc = ctl_fail("unexpected reply from the server: no findings");
		goto out;
	}
	if (json_array_size(findings) == 0) {
		puts("No findings: every intention can decide some call.");
		goto out;
	}
	json_array_foreach(findings, i, f) {
		if (i)
			putchar('\n');
		print_finding(f);
	}
out:
	json_decref(reply);
	free(path);
	free(pos);
	return rc;
}

static int run_explain(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	struct l7_flags l7 = { 0 };
	const struct arg_opt opts[] = { L7_OPTS(l7), { 0 } };
	const char **pos = NULL;
	struct intention_header *hdrs = NULL;
	struct intention_set *set = NULL;
	struct intention_call call = { 0 };
	enum intention_action def;
	json_t *list = NULL, *mesh = NULL, *answer = NULL, *out = NULL;
	char *path = NULL, *err = NULL, *sns = NULL, *sname = NULL, *dns = NULL, *dname = NULL;
	const char *mesh_name = g->mesh ? g->mesh : "default", *action;
	size_t i, nh = 0;
	int npos, rc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	mesh_name = g->mesh ? g->mesh : "default";
	if (npos != 2) {
		rc = ctl_usage(cmd, "SRC and DST are required");
		goto out;
	}
	if ((rc = check_pair(cmd, pos[0], pos[1])) != CTL_CONTINUE)
		goto out;
	if (l7.headers.n && (hdrs = calloc(l7.headers.n, sizeof(*hdrs))) == NULL) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	for (nh = 0; nh < l7.headers.n; nh++) {
		char *n, *v;

		if (policy_header(l7.headers.v[nh], &n, &v, &err) != WEFT_OK) {
			rc = ctl_usage(cmd, "%s", err);
			goto out;
		}
		hdrs[nh].name = n;
		hdrs[nh].value = v;
	}
	rc = CTL_ERR;
	if (policy_target(pos[0], "source", &sns, &sname, &err) != WEFT_OK ||
	    policy_target(pos[1], "destination", &dns, &dname, &err) != WEFT_OK) {
		ctl_fail("%s", err);
		goto out;
	}
	call = (struct intention_call){ .source_ns = sns, .source_name = sname,
		.destination_ns = dns, .destination_name = dname, .http = l7_given(&l7),
		.method = l7.method, .path = l7.path, .headers = hdrs, .n_headers = nh };

	/* The intentions and the mesh's default action, from the server. */
	if ((path = ctl_mesh_path(g, "/v1/connect/intentions")) == NULL ||
	    (list = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (intention_set_from_json(list, &set, &err) != WEFT_OK) {
		rc = ctl_fail("the server's intentions: %s", err);
		goto out;
	}
	free(path);
	{
		char *esc = httpc_escape(mesh_name, 0);

		if (esc == NULL || asprintf(&path, "/v1/meshes/%s", esc) < 0)
			path = NULL;
		free(esc);
	}
	if (path == NULL) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	if ((mesh = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	action = ctl_str(mesh, "DefaultIntentionAction");
	if (strcmp(action, "allow") == 0) {
		def = INTENTION_ALLOW;
	} else if (strcmp(action, "deny") == 0) {
		def = INTENTION_DENY;
	} else {
		rc = ctl_fail("mesh %s: DefaultIntentionAction \"%s\" is neither allow nor deny",
			      mesh_name, action);
		goto out;
	}
	/* And the server's own decision, to compare. */
	free(path);
	if ((path = pair_path(g, "check", pos[0], pos[1], &l7)) == NULL ||
	    (answer = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (g->json) {
		/* The text goes nowhere; the JSON is printed. */
		char *text = NULL;
		size_t tlen = 0;
		FILE *sink = open_memstream(&text, &tlen);

		if (sink == NULL) {
			rc = ctl_fail("out of memory");
			goto out;
		}
		rc = policy_explain(sink, set, &call, def, answer, &out) ? CTL_OK : CTL_ERR;
		fclose(sink);
		free(text);
		ctl_print_json(out);
	} else {
		rc = policy_explain(stdout, set, &call, def, answer, NULL) ? CTL_OK : CTL_ERR;
	}
	if (rc != CTL_OK)
		fprintf(stderr, "weftctl: the server's check and the local engine disagree\n");
out:
	for (i = 0; i < nh; i++) {
		free((char *)hdrs[i].name);
		free((char *)hdrs[i].value);
	}
	free(hdrs);
	args_list_free(&l7.headers);
	intention_set_free(set);
	json_decref(list);
	json_decref(mesh);
	json_decref(answer);
	json_decref(out);
	free(path);
	free(err);
	free(sns);
	free(sname);
	free(dns);
	free(dname);
	free(pos);
	return rc;
}

const struct ctl_command ctl_cmds_intention[] = {
	{ "intention create", "[-allow|-deny] [-replace] [-meta K=V] [-description D] SRC DST | -file FILE...",
	  "Create intentions (who may call whom)",
	  "SRC and DST are service names, \"*\" for any, or NAMESPACE/NAME. With -file,\n"
	  "each FILE (JSON or YAML; \"-\" is stdin) holds one intention in Consul's\n"
	  "format or a list of them; every file is validated before anything is sent,\n"
	  "and an error names the file, line, column and field. An intention that\n"
	  "exists already is an error unless -replace is given.",
	  run_create },
	{ "intention get", "SRC DST | ID", "Show an intention", "", run_get },
	{ "intention list", "", "List the intentions in evaluation order", "", run_list },
	{ "intention delete", "SRC DST | ID", "Delete an intention", "", run_delete },
	{ "intention check", "[-method M] [-path P] [-header NAME=VALUE]... SRC DST",
	  "Check whether SRC may call DST (exit 0 allowed, 1 denied, 2 error)",
	  "Without -method, -path or -header the call is a connection (L4), as\n"
	  "consul intention check asks; with them, an HTTP request (L7). Prints\n"
	  "Allowed or Denied, then which intention (or the default) decided and why.",
	  run_check },
	{ "intention match", "[-source|-destination] NAME",
	  "List the intentions that apply to a source or destination, in evaluation order", "",
	  run_match },
	{ "intention analyze", "",
	  "Report intentions and permissions that can never decide a call",
	  "A shadowed intention is covered by higher-precedence ones for every call\n"
	  "it matches; a preempted permission by earlier permissions of its intention.",
	  run_analyze },
	{ "intention explain", "[-method M] [-path P] [-header NAME=VALUE]... SRC DST",
	  "Decide a call with the intention engine and explain the decision",
	  "Reads the mesh's intentions and default action from the server, decides the\n"
	  "call locally with the same engine the server uses, prints the intention\n"
	  "(or the default) that decided and why, the intentions tried in order, and\n"
	  "the server's own /v1/connect/intentions/check answer. Exits 1 if the two\n"
	  "disagree.",
	  run_explain },
	{ 0 },
};

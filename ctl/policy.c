#include "policy.h"
#include "buf.h"
#include "config_entry.h"
#include "err.h"
#include "input.h"
#include "yamlx.h"

#include <stdlib.h>
#include <string.h>

/* The form the server takes: the decoded intention without what it
 * computes or assigns. */
static json_t *intention_body(const struct intention *ix)
{
	json_t *o = intention_to_json(ix);

	if (o == NULL)
		return NULL;
	json_object_del(o, "ID");
	json_object_del(o, "Precedence");
	json_object_del(o, "CreateIndex");
	json_object_del(o, "ModifyIndex");
	if (json_string_length(json_object_get(o, "Description")) == 0)
		json_object_del(o, "Description");
	return o;
}

/* Validates v (document doc_i of doc) and appends it to out; ctx is the
 * field prefix for a list item ("[2]") or NULL. */
static int add_intention(const struct yamlx_doc *doc, size_t doc_i, json_t *v, const char *ctx,
			 json_t *out, char **err)
{
	struct intention *ix = NULL;
	char *msg = NULL, *located;
	json_t *body;
	int rc;

	rc = intention_from_json(v, ctx, &ix, &msg);
	if (rc != WEFT_OK) {
		located = yamlx_error(doc, doc_i, msg ? msg : "invalid intention");
		weft_errf(err, rc, "%s", located ? located : msg);
		free(located);
		goto out;
	}
	body = intention_body(ix);
	if (body == NULL || json_array_append_new(out, body) != 0) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
out:
	free(msg);
	intention_free(ix);
	return rc;
}

int policy_intentions_decode(const char *data, size_t len, const char *file, json_t *out,
			     char **err)
{
	struct yamlx_doc *doc = NULL;
	size_t i, k, before = json_array_size(out);
	char ctx[32];
	json_t *root, *e;
	int rc;

	if ((rc = yamlx_parse(data, len, file, &doc, err)) != WEFT_OK)
		return rc;
	for (i = 0; i < yamlx_count(doc); i++) {
		root = yamlx_root(doc, i);
		if (json_is_null(root))
			continue;
		if (!json_is_array(root)) {
			if ((rc = add_intention(doc, i, root, NULL, out, err)) != WEFT_OK)
				goto out;
			continue;
		}
		json_array_foreach(root, k, e) {
			snprintf(ctx, sizeof(ctx), "[%zu]", k);
			if ((rc = add_intention(doc, i, e, ctx, out, err)) != WEFT_OK)
				goto out;
		}
	}
	if (json_array_size(out) == before)
		rc = weft_errf(err, WEFT_EINVAL, "%s: no intention in the file", yamlx_file(doc));
out:
	yamlx_free(doc);
	return rc;
}

int policy_intentions_file(const char *path, json_t *out, char **err)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	if ((rc = input_file(path, &data, &len, err)) != WEFT_OK)
		return rc;
	rc = policy_intentions_decode(data, len, strcmp(path, "-") == 0 ? "<stdin>" : path, out,
				      err);
	free(data);
	return rc;
}

int policy_config_file(const char *path, json_t **out, char **err)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if ((rc = input_file(path, &data, &len, err)) != WEFT_OK)
		return rc;
	rc = config_entry_decode_file(data, len, strcmp(path, "-") == 0 ? "<stdin>" : path, out,
				      err);
	free(data);
	return rc;
}

int policy_meta(const struct arg_list *flags, json_t **out, char **err)
{
	json_t *meta = NULL;
	const char *eq;
	char *key = NULL;
	size_t i;
	int rc = WEFT_OK;

	*out = NULL;
	for (i = 0; flags && i < flags->n; i++) {
		eq = strchr(flags->v[i], '=');
		if (eq == NULL) {
			rc = weft_errf(err, WEFT_EINVAL, "-meta \"%s\": missing '=' (KEY=VALUE)",
				       flags->v[i]);
			goto out;
		}
		if (eq == flags->v[i]) {
			rc = weft_errf(err, WEFT_EINVAL, "-meta \"%s\": the key is empty", flags->v[i]);
			goto out;
		}
		if ((meta == NULL && (meta = json_object()) == NULL) ||
		    (key = strndup(flags->v[i], (size_t)(eq - flags->v[i]))) == NULL ||
		    json_object_set_new(meta, key, json_string(eq + 1)) != 0) {
			rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
			goto out;
		}
		free(key);
		key = NULL;
	}
	*out = meta;
	meta = NULL;
out:
	free(key);
	json_decref(meta);
	return rc;
}

int policy_header(const char *arg, char **name, char **value, char **err)
{
	size_t n = strcspn(arg, "=:");

	*name = *value = NULL;
	if (arg[n] == '\0')
		return weft_errf(err, WEFT_EINVAL, "-header \"%s\": missing '=' (NAME=VALUE)", arg);
	if (n == 0)
		return weft_errf(err, WEFT_EINVAL, "-header \"%s\": the name is empty", arg);
	*name = strndup(arg, n);
	*value = strdup(arg + n + 1);
	if (*name == NULL || *value == NULL) {
		free(*name);
		free(*value);
		*name = *value = NULL;
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	}
	return WEFT_OK;
}

int policy_target(const char *arg, const char *what, char **ns, char **name, char **err)
{
	const char *slash = strchr(arg, '/');

	*ns = *name = NULL;
	if (arg[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "%s: the name is empty", what);
	if (slash && strchr(slash + 1, '/'))
		return weft_errf(err, WEFT_EINVAL, "%s \"%s\": at most one '/' (NAMESPACE/NAME)",
				 what, arg);
	if (slash && (slash == arg || slash[1] == '\0'))
		return weft_errf(err, WEFT_EINVAL, "%s \"%s\": NAMESPACE/NAME with an empty part",
				 what, arg);
	if (slash) {
		*ns = strndup(arg, (size_t)(slash - arg));
		*name = strdup(slash + 1);
	} else {
		*name = strdup(arg);
	}
	if (*name == NULL || (slash && *ns == NULL)) {
		free(*ns);
		free(*name);
		*ns = *name = NULL;
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	}
	return WEFT_OK;
}

static const char *str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : "";
}

static const char *ns_of(json_t *o, const char *k)
{
	const char *s = str(o, k);

	return s[0] ? s : INTENTION_DEFAULT_NS;
}

/* "name", or "ns/name" outside the default namespace. */
static void target(struct buf *b, const char *ns, const char *name)
{
	if (ns && ns[0] && strcmp(ns, INTENTION_DEFAULT_NS) != 0)
		buf_printf(b, "%s/%s", ns, name);
	else
		buf_printf(b, "%s", name);
}

char *policy_intention_line(json_t *ix)
{
	size_t np = json_array_size(json_object_get(ix, "Permissions"));
	struct buf b;

	buf_init(&b, 1 << 16);
	target(&b, str(ix, "SourceNS"), str(ix, "SourceName"));
	buf_printf(&b, " => ");
	target(&b, str(ix, "DestinationNS"), str(ix, "DestinationName"));
	/* A decision's summary of an L7 intention has neither. */
	if (np == 0 && str(ix, "Action")[0])
		buf_printf(&b, " (%s)", str(ix, "Action"));
	else if (np > 0)
		buf_printf(&b, " (%zu permission%s)", np, np == 1 ? "" : "s");
	return buf_steal(&b);
}

static int same_target(json_t *a, json_t *b)
{
	return strcmp(ns_of(a, "SourceNS"), ns_of(b, "SourceNS")) == 0 &&
	       strcmp(str(a, "SourceName"), str(b, "SourceName")) == 0 &&
	       strcmp(ns_of(a, "DestinationNS"), ns_of(b, "DestinationNS")) == 0 &&
	       strcmp(str(a, "DestinationName"), str(b, "DestinationName")) == 0;
}

int policy_decisions_agree(json_t *local, json_t *server, char **why)
{
	json_t *sa = json_object_get(server, "Allowed"), *li, *si, *sp, *lp;
	const char *la = json_is_true(json_object_get(local, "Allowed")) ? "allowed" : "denied";

	*why = NULL;
	if (!json_is_boolean(sa)) {
		weft_errf(why, WEFT_EINVAL, "the server's answer has no Allowed");
		return 0;
	}
	if (json_is_true(sa) != json_is_true(json_object_get(local, "Allowed"))) {
		weft_errf(why, WEFT_EINVAL, "the server says %s, the local engine %s",
			  json_is_true(sa) ? "allowed" : "denied", la);
		return 0;
	}
	if (str(server, "DecidedBy")[0] &&
	    strcmp(str(server, "DecidedBy"), str(local, "DecidedBy")) != 0) {
		weft_errf(why, WEFT_EINVAL, "the server says decided by %s, the local engine by %s",
			  str(server, "DecidedBy"), str(local, "DecidedBy"));
		return 0;
	}
	if (str(server, "ReasonKind")[0] &&
	    strcmp(str(server, "ReasonKind"), str(local, "ReasonKind")) != 0) {
		weft_errf(why, WEFT_EINVAL, "the server's reason is %s, the local engine's %s",
			  str(server, "ReasonKind"), str(local, "ReasonKind"));
		return 0;
	}
	si = json_object_get(server, "Intention");
	li = json_object_get(local, "Intention");
	if (json_is_object(si) && json_is_object(li) && !same_target(si, li)) {
		char *s = policy_intention_line(si), *l = policy_intention_line(li);

		weft_errf(why, WEFT_EINVAL, "the server's deciding intention is %s, the local "
			  "engine's %s", s ? s : "?", l ? l : "?");
		free(s);
		free(l);
		return 0;
	}
	sp = json_object_get(server, "Permission");
	lp = json_object_get(local, "Permission");
	if (json_is_integer(sp) && !json_equal(sp, lp)) {
		weft_errf(why, WEFT_EINVAL, "the server's deciding permission is Permissions[%lld], "
			  "the local engine's %s", (long long)json_integer_value(sp),
			  json_is_integer(lp) ? "another" : "none");
		return 0;
	}
	return 1;
}

static int pattern_matches(const char *pattern, const char *value)
{
	return strcmp(pattern, INTENTION_WILDCARD) == 0 || strcmp(pattern, value) == 0;
}

/* Whether ix's source and destination patterns cover the call's. */
static int covers(const struct intention *ix, const struct intention_call *c)
{
	const char *sns = c->source_ns ? c->source_ns : INTENTION_DEFAULT_NS;
	const char *dns = c->destination_ns ? c->destination_ns : INTENTION_DEFAULT_NS;

	return pattern_matches(intention_source_ns(ix), sns) &&
	       pattern_matches(intention_source_name(ix), c->source_name) &&
	       pattern_matches(intention_destination_ns(ix), dns) &&
	       pattern_matches(intention_destination_name(ix), c->destination_name);
}

static json_t *call_json(const struct intention_call *c)
{
	json_t *o = json_object(), *h;

	json_object_set_new(o, "SourceNS", json_string(c->source_ns ? c->source_ns : INTENTION_DEFAULT_NS));
	json_object_set_new(o, "SourceName", json_string(c->source_name));
	json_object_set_new(o, "DestinationNS",
			    json_string(c->destination_ns ? c->destination_ns : INTENTION_DEFAULT_NS));
	json_object_set_new(o, "DestinationName", json_string(c->destination_name));
	json_object_set_new(o, "HTTP", json_boolean(c->http));
	if (c->http) {
		if (c->method)
			json_object_set_new(o, "Method", json_string(c->method));
		if (c->path)
			json_object_set_new(o, "Path", json_string(c->path));
		h = json_array();
		for (size_t i = 0; i < c->n_headers; i++) {
			json_t *one = json_object();

			json_object_set_new(one, "Name", json_string(c->headers[i].name));
			json_object_set_new(one, "Value", json_string(c->headers[i].value));
			json_array_append_new(h, one);
		}
		json_object_set_new(o, "Header", h);
	}
	return o;
}

static const char *action_word(enum intention_action a)
{
	return a == INTENTION_ALLOW ? "allow" : "deny";
}

int policy_explain(FILE *out, const struct intention_set *set,
		   const struct intention_call *call, enum intention_action default_action,
		   json_t *server, json_t **json)
{
	struct intention_decision d;
	json_t *local, *cands, *ixj = NULL, *perm;
	struct buf b;
	char *line = NULL, *why = NULL, *ptxt = NULL;
	size_t i, shown = 0;
	int agree = 1;

	intention_set_decide(set, call, default_action, &d);
	local = intention_decision_to_json(&d);
	cands = json_array();
	buf_init(&b, 1 << 20);

	/* The call. */
	target(&b, call->source_ns, call->source_name);
	buf_printf(&b, " => ");
	target(&b, call->destination_ns, call->destination_name);
	if (call->http) {
		buf_printf(&b, ", HTTP %s %s", call->method && call->method[0] ? call->method : "(any method)",
			   call->path && call->path[0] ? call->path : "/");
		for (i = 0; i < call->n_headers; i++)
			buf_printf(&b, ", header %s: %s", call->headers[i].name, call->headers[i].value);
	} else {
		buf_printf(&b, " (a connection: no HTTP request)");
	}
	fprintf(out, "%-12s%s\n", "Call:", b.data);
	fprintf(out, "%-12s%s\n", "Decision:", d.action == INTENTION_ALLOW ? "ALLOWED" : "DENIED");

	/* What decided and why. */
	if (d.intention) {
		ixj = intention_to_json(d.intention);
		line = policy_intention_line(ixj);
		fprintf(out, "%-12sintention %s, precedence %d%s%s\n", "Decided by:", line ? line : "",
			intention_precedence(d.intention), intention_id(d.intention)[0] ? ", ID " : "",
			intention_id(d.intention));
		if (d.permission >= 0) {
			perm = json_array_get(json_object_get(ixj, "Permissions"), (size_t)d.permission);
			ptxt = json_dumps(json_object_get(perm, "HTTP"), JSON_COMPACT | JSON_SORT_KEYS);
			fprintf(out, "%-12sPermissions[%d]: %s %s\n", "", d.permission,
				action_word(intention_permission_action(d.intention, (size_t)d.permission)),
				ptxt ? ptxt : "{}");
		}
	} else {
		fprintf(out, "%-12sthe default action (%s)\n", "Decided by:", action_word(default_action));
	}
	fprintf(out, "%-12s%s\n", "Reason:", intention_reason_string(d.reason));
	fprintf(out, "%-12s%s\n", "Default:", action_word(default_action));

	/* The intentions that could decide, in the order they are tried. */
	for (i = 0; i < intention_set_count(set); i++) {
		const struct intention *ix = intention_set_get(set, i);
		json_t *j;
		char *l;

		if (!covers(ix, call))
			continue;
		j = intention_to_json(ix);
		l = policy_intention_line(j);
		if (shown++ == 0)
			fputs("\nIntentions for this source and destination, in evaluation order:\n", out);
		fprintf(out, "  precedence %d  %s%s\n", intention_precedence(ix), l ? l : "",
			ix == d.intention ? "  <- decides" : "  (not reached)");
		json_object_set_new(j, "Decides", json_boolean(ix == d.intention));
		json_array_append_new(cands, j);
		free(l);
	}
	if (shown == 0)
		fputs("\nNo intention matches this source and destination.\n", out);

	/* The server's own answer. */
	if (server) {
		agree = policy_decisions_agree(local, server, &why);
		fputc('\n', out);
		fprintf(out, "%-12s/v1/connect/intentions/check answers %s", "Server:",
			json_is_true(json_object_get(server, "Allowed")) ? "allowed" : "denied");
		if (json_is_object(json_object_get(server, "Intention"))) {
			char *sl = policy_intention_line(json_object_get(server, "Intention"));

			fprintf(out, " by intention %s", sl ? sl : "");
			free(sl);
		} else if (strcmp(str(server, "DecidedBy"), "default") == 0) {
			fprintf(out, " by the default action");
		}
		if (agree)
			fputs(": agrees\n", out);
		else
			fprintf(out, ": DISAGREES with the local engine (%s)\n", why ? why : "");
	}

	if (json) {
		*json = json_object();
		json_object_set_new(*json, "Call", call_json(call));
		json_object_set(*json, "Decision", local);
		json_object_set_new(*json, "DefaultAction", json_string(action_word(default_action)));
		json_object_set(*json, "Candidates", cands);
		if (server) {
			json_object_set(*json, "Server", server);
			json_object_set_new(*json, "Agree", json_boolean(agree));
			if (!agree && why)
				json_object_set_new(*json, "Disagreement", json_string(why));
		}
	}
	buf_free(&b);
	free(line);
	free(ptxt);
	free(why);
	json_decref(ixj);
	json_decref(local);
	json_decref(cands);
	return agree;
}

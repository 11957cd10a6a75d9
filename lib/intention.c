/* Intentions: decoding, precedence, the compiled set, decisions, analysis.
 * See intention.h for the semantics and where they come from. */
#include "intention.h"
#include "rx.h"
#include "err.h"
#include "jsonx.h"

#include <ctype.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum hdr_kind { HDR_PRESENT, HDR_EXACT, HDR_PREFIX, HDR_SUFFIX, HDR_REGEX };
enum path_kind { PATH_NONE, PATH_EXACT, PATH_PREFIX, PATH_REGEX };

struct ix_header {
	char *name;
	enum hdr_kind kind;
	char *value;   /* NULL for HDR_PRESENT */
	regex_t re;    /* HDR_REGEX */
	int invert;
};

struct ix_perm {
	enum intention_action action;
	enum path_kind path_kind;
	char *path;
	regex_t path_re;
	char **methods;
	size_t n_methods;
	struct ix_header *headers;
	size_t n_headers;
};

struct intention {
	char *id, *description;
	char *src_ns, *src_name, *dst_ns, *dst_name;
	enum intention_action action;
	struct ix_perm *perms;
	size_t n_perms;
	int l7;
	json_t *meta;            /* object of strings, owned */
	int precedence;
	long long create_index, modify_index;
};

static const char *const http_methods[] = {
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
};
#define N_HTTP_METHODS (sizeof(http_methods) / sizeof(http_methods[0]))

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int starts_with(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int ends_with(const char *s, const char *x)
{
	size_t ls = strlen(s), lx = strlen(x);

	return ls >= lx && memcmp(s + ls - lx, x, lx) == 0;
}

static int re_full_match(const regex_t *re, const char *s)
{
	return regexec(re, s, 0, NULL, 0) == 0;
}

/* ---- Freeing ------------------------------------------------------------- */

static void perm_clear(struct ix_perm *p)
{
	size_t i;

	free(p->path);
	if (p->path_kind == PATH_REGEX)
		regfree(&p->path_re);
	for (i = 0; i < p->n_methods; i++)
		free(p->methods[i]);
	free(p->methods);
	for (i = 0; i < p->n_headers; i++) {
		free(p->headers[i].name);
		free(p->headers[i].value);
		if (p->headers[i].kind == HDR_REGEX)
			regfree(&p->headers[i].re);
	}
	free(p->headers);
}

void intention_free(struct intention *ix)
{
	size_t i;

	if (ix == NULL)
		return;
	free(ix->id);
	free(ix->description);
	free(ix->src_ns);
	free(ix->src_name);
	free(ix->dst_ns);
	free(ix->dst_name);
	for (i = 0; i < ix->n_perms; i++)
		perm_clear(&ix->perms[i]);
	free(ix->perms);
	json_decref(ix->meta);
	free(ix);
}

/* ---- Precedence ---------------------------------------------------------- */

static int count_exact(const char *ns, const char *name)
{
	if (strcmp(ns, INTENTION_WILDCARD) == 0)
		return 0;
	if (strcmp(name, INTENTION_WILDCARD) == 0)
		return 1;
	return 2;
}

int intention_compute_precedence(const char *src_ns, const char *src_name,
				 const char *dst_ns, const char *dst_name)
{
	int d = count_exact(dst_ns ? dst_ns : INTENTION_DEFAULT_NS, dst_name);
	int s = count_exact(src_ns ? src_ns : INTENTION_DEFAULT_NS, src_name);

	return 3 * d + s + 1;
}

/* ---- Decoding ------------------------------------------------------------ */

/* "ctx." or "" */
#define CTXP(ctx) ((ctx) ? (ctx) : ""), ((ctx) ? "." : "")

static int check_name(const char *ctx, const char *field, const char *ns_field,
		      const char *ns, const char *name, char **err)
{
	if (strcmp(ns, INTENTION_WILDCARD) != 0 && strchr(ns, '*'))
		return weft_errf(err, WEFT_EINVAL,
				 "%s%s%s: \"%s\": wildcard '*' must be the whole namespace",
				 CTXP(ctx), ns_field, ns);
	if (strcmp(name, INTENTION_WILDCARD) != 0) {
		if (strchr(name, '*'))
			return weft_errf(err, WEFT_EINVAL,
					 "%s%s%s: \"%s\": wildcard '*' must be the whole name",
					 CTXP(ctx), field, name);
		if (strcmp(ns, INTENTION_WILDCARD) == 0)
			return weft_errf(err, WEFT_EINVAL,
					 "%s%s%s: \"%s\": an exact name cannot follow the wildcard namespace (use \"*\")",
					 CTXP(ctx), field, name);
	}
	return WEFT_OK;
}

/* Compiles with lib/rx (RE2 syntax as far as POSIX ERE follows it, bounded
 * cost: untrusted patterns), anchored at both ends (whole-value match). */
static int compile_regex(const char *ctx, const char *field, const char *src, regex_t *re,
			 long *rx_budget, char **err)
{
	char *anchored = NULL, *why = NULL;
	int rc;

	if (strlen(src) > INTENTION_REGEX_MAX)
		return weft_errf(err, WEFT_EINVAL, "%s%s%s: longer than %d bytes", CTXP(ctx),
				 field, INTENTION_REGEX_MAX);
	if (asprintf(&anchored, "^(%s)$", src) < 0)
		return weft_errf(err, WEFT_ENOMEM, "%s%s%s: out of memory", CTXP(ctx), field);
	rc = rx_compile(re, anchored, strlen(anchored), rx_budget, &why);
	free(anchored);
	if (rc != WEFT_OK) {
		weft_errf(err, WEFT_EINVAL, "%s%s%s: invalid regex \"%s\": %s", CTXP(ctx), field,
			  src, why ? why : "cannot compile");
		free(why);
		return WEFT_EINVAL;
	}
	return WEFT_OK;
}

static int decode_header(json_t *h, const char *ctx, struct ix_header *out, long *rx_budget,
			 char **err)
{
	const char *name = NULL, *exact = NULL, *prefix = NULL, *suffix = NULL, *regex = NULL;
	int present = 0, invert = 0, parts = 0, rc;
	enum hdr_kind kind = HDR_PRESENT;
	const char *val = NULL;

	/* out->kind stays HDR_PRESENT (nothing to regfree) until a regex compiled. */
	if (!json_is_object(h))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx);
	if ((rc = jx_req_str(h, ctx, "Name", &name, INTENTION_NAME_MAX, err)) ||
	    (rc = jx_bool(h, ctx, "Present", &present, err)) ||
	    (rc = jx_str(h, ctx, "Exact", &exact, INTENTION_MATCH_MAX, err)) ||
	    (rc = jx_str(h, ctx, "Prefix", &prefix, INTENTION_MATCH_MAX, err)) ||
	    (rc = jx_str(h, ctx, "Suffix", &suffix, INTENTION_MATCH_MAX, err)) ||
	    (rc = jx_str(h, ctx, "Regex", &regex, INTENTION_REGEX_MAX, err)) ||
	    (rc = jx_bool(h, ctx, "Invert", &invert, err)))
		return rc;
	/* Empty strings count as unset, as in Consul (Go zero values). */
	if (present)
		parts++, kind = HDR_PRESENT;
	if (exact && *exact)
		parts++, kind = HDR_EXACT, val = exact;
	if (prefix && *prefix)
		parts++, kind = HDR_PREFIX, val = prefix;
	if (suffix && *suffix)
		parts++, kind = HDR_SUFFIX, val = suffix;
	if (regex && *regex)
		parts++, kind = HDR_REGEX, val = regex;
	if (parts != 1)
		return weft_errf(err, WEFT_EINVAL,
				 "%s: needs exactly one of Present, Exact, Prefix, Suffix or Regex (has %d)",
				 ctx, parts);
	out->invert = invert;
	out->name = strdup(name);
	out->value = xstrdup(val);
	if (out->name == NULL || (val && out->value == NULL))
		return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", ctx);
	if (kind == HDR_REGEX && (rc = compile_regex(ctx, "Regex", val, &out->re, rx_budget, err)) != WEFT_OK)
		return rc;
	out->kind = kind;
	return WEFT_OK;
}

static int decode_action(json_t *obj, const char *ctx, const char *field,
			 enum intention_action *out, int *given, char **err)
{
	const char *s = NULL;
	int rc = jx_str(obj, ctx, field, &s, 16, err);

	if (rc != WEFT_OK)
		return rc;
	*given = s != NULL && *s;
	if (!*given)
		return WEFT_OK;
	if (strcmp(s, "allow") == 0)
		*out = INTENTION_ALLOW;
	else if (strcmp(s, "deny") == 0)
		*out = INTENTION_DENY;
	else
		return weft_errf(err, WEFT_EINVAL, "%s%s%s: \"%s\": must be \"allow\" or \"deny\"",
				 CTXP(ctx), field, s);
	return WEFT_OK;
}

static int decode_perm(json_t *pj, const char *ctx, struct ix_perm *p, long *rx_budget,
		       char **err)
{
	json_t *http = NULL, *methods = NULL, *headers = NULL, *e;
	const char *pe = NULL, *pp = NULL, *pr = NULL;
	char hctx[160], ectx[200];
	int given = 0, rc, parts;
	size_t i, j;

	if (!json_is_object(pj))
		return weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx);
	if ((rc = decode_action(pj, ctx, "Action", &p->action, &given, err)))
		return rc;
	if (!given)
		return weft_errf(err, WEFT_EINVAL, "%s.Action: is required (\"allow\" or \"deny\")",
				 ctx);
	if ((rc = jx_object(pj, ctx, "HTTP", &http, err)))
		return rc;
	if (http == NULL)
		return weft_errf(err, WEFT_EINVAL, "%s.HTTP: is required", ctx);
	snprintf(hctx, sizeof(hctx), "%s.HTTP", ctx);
	if ((rc = jx_str(http, hctx, "PathExact", &pe, INTENTION_MATCH_MAX, err)) ||
	    (rc = jx_str(http, hctx, "PathPrefix", &pp, INTENTION_MATCH_MAX, err)) ||
	    (rc = jx_str(http, hctx, "PathRegex", &pr, INTENTION_REGEX_MAX, err)) ||
	    (rc = jx_str_array(http, hctx, "Methods", &methods, 16, err)) ||
	    (rc = jx_array(http, hctx, "Header", &headers, err)))
		return rc;
	parts = (pe && *pe) + (pp && *pp) + (pr && *pr);
	if (parts > 1)
		return weft_errf(err, WEFT_EINVAL,
				 "%s: at most one of PathExact, PathPrefix or PathRegex may be set", hctx);
	if (pe && *pe) {
		if (pe[0] != '/')
			return weft_errf(err, WEFT_EINVAL, "%s.PathExact: \"%s\" must start with '/'",
					 hctx, pe);
		p->path_kind = PATH_EXACT;
		p->path = strdup(pe);
	} else if (pp && *pp) {
		if (pp[0] != '/')
			return weft_errf(err, WEFT_EINVAL, "%s.PathPrefix: \"%s\" must start with '/'",
					 hctx, pp);
		p->path_kind = PATH_PREFIX;
		p->path = strdup(pp);
	} else if (pr && *pr) {
		rc = compile_regex(hctx, "PathRegex", pr, &p->path_re, rx_budget, err);
		if (rc != WEFT_OK)
			return rc;
		p->path_kind = PATH_REGEX;
		p->path = strdup(pr);
	}
	if (p->path_kind != PATH_NONE && p->path == NULL)
		return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", hctx);

	if (methods && json_array_size(methods) > 0) {
		if (json_array_size(methods) > N_HTTP_METHODS)
			return weft_errf(err, WEFT_EINVAL, "%s.Methods: more than %zu methods", hctx,
					 N_HTTP_METHODS);
		p->methods = calloc(json_array_size(methods), sizeof(*p->methods));
		if (p->methods == NULL)
			return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", hctx);
		json_array_foreach(methods, i, e) {
			char up[17];
			const char *m = json_string_value(e);
			size_t k, n = strlen(m);
			int ok = 0;

			/* Consul uppercases the methods before validating them. */
			for (k = 0; k < n && k < 16; k++)
				up[k] = (char)toupper((unsigned char)m[k]);
			up[k] = '\0';
			for (k = 0; k < N_HTTP_METHODS; k++)
				ok |= strcmp(up, http_methods[k]) == 0;
			if (!ok)
				return weft_errf(err, WEFT_EINVAL,
						 "%s.Methods[%zu]: \"%s\" is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS, TRACE)",
						 hctx, i, m);
			for (k = 0; k < p->n_methods; k++)
				if (strcmp(p->methods[k], up) == 0)
					return weft_errf(err, WEFT_EINVAL,
							 "%s.Methods[%zu]: \"%s\" is listed more than once",
							 hctx, i, up);
			if ((p->methods[p->n_methods] = strdup(up)) == NULL)
				return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", hctx);
			p->n_methods++;
		}
	}
	if (headers && json_array_size(headers) > 0) {
		if (json_array_size(headers) > INTENTION_HEADERS_MAX)
			return weft_errf(err, WEFT_EINVAL, "%s.Header: more than %d rules", hctx,
					 INTENTION_HEADERS_MAX);
		p->headers = calloc(json_array_size(headers), sizeof(*p->headers));
		if (p->headers == NULL)
			return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", hctx);
		json_array_foreach(headers, j, e) {
			snprintf(ectx, sizeof(ectx), "%s.Header[%zu]", hctx, j);
			rc = decode_header(e, ectx, &p->headers[j], rx_budget, err);
			p->n_headers = j + 1; /* so that perm_clear frees what was set */
			if (rc != WEFT_OK)
				return rc;
		}
	}
	if (p->path_kind == PATH_NONE && p->n_methods == 0 && p->n_headers == 0)
		return weft_errf(err, WEFT_EINVAL,
				 "%s: must match on at least one of a path, Methods or Header", hctx);
	return WEFT_OK;
}

static int decode_meta(json_t *obj, const char *ctx, json_t **out, char **err)
{
	json_t *meta = NULL, *v;
	const char *k;
	int rc = jx_str_map(obj, ctx, "Meta", &meta, INTENTION_META_VALUE_MAX, err);

	if (rc != WEFT_OK)
		return rc;
	if (meta == NULL) {
		*out = json_object();
		return WEFT_OK;
	}
	if (json_object_size(meta) > INTENTION_META_PAIRS_MAX)
		return weft_errf(err, WEFT_EINVAL, "%s%sMeta: more than %d pairs", CTXP(ctx),
				 INTENTION_META_PAIRS_MAX);
	json_object_foreach(meta, k, v) {
		if (strlen(k) > INTENTION_META_KEY_MAX)
			return weft_errf(err, WEFT_EINVAL,
					 "%s%sMeta: key \"%.32s...\" is longer than %d bytes", CTXP(ctx),
					 k, INTENTION_META_KEY_MAX);
		if (k[0] == '\0')
			return weft_errf(err, WEFT_EINVAL, "%s%sMeta: a key is empty", CTXP(ctx));
	}
	*out = json_deep_copy(meta);
	return *out ? WEFT_OK : weft_errf(err, WEFT_ENOMEM, "out of memory");
}

int intention_from_json(json_t *obj, const char *ctx, struct intention **out, char **err)
{
	long rx_budget = RX_MAX_COST;

	return intention_from_json_budget(obj, ctx, &rx_budget, out, err);
}

int intention_from_json_budget(json_t *obj, const char *ctx, long *rx_budget,
			       struct intention **out, char **err)
{
	struct intention *ix = NULL;
	const char *id = NULL, *desc = NULL, *sns = NULL, *sname = NULL, *dns = NULL,
		   *dname = NULL, *stype = NULL, *ignored = NULL;
	json_t *perms = NULL, *e;
	long long ci = 0, mi = 0, prec = 0;
	int given = 0, rc;
	size_t i;
	char pctx[128];

	*out = NULL;
	if (!json_is_object(obj)) {
		rc = weft_errf(err, WEFT_EINVAL, "%s: must be an object", ctx ? ctx : "intention");
		goto out;
	}
	ix = calloc(1, sizeof(*ix));
	if (ix == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = jx_str(obj, ctx, "ID", &id, 64, err)) ||
	    (rc = jx_str(obj, ctx, "Description", &desc, INTENTION_DESCRIPTION_MAX, err)) ||
	    (rc = jx_str(obj, ctx, "SourceNS", &sns, INTENTION_NAME_MAX, err)) ||
	    (rc = jx_req_str(obj, ctx, "SourceName", &sname, INTENTION_NAME_MAX, err)) ||
	    (rc = jx_str(obj, ctx, "DestinationNS", &dns, INTENTION_NAME_MAX, err)) ||
	    (rc = jx_req_str(obj, ctx, "DestinationName", &dname, INTENTION_NAME_MAX, err)) ||
	    (rc = jx_str(obj, ctx, "SourceType", &stype, 32, err)) ||
	    (rc = jx_str(obj, ctx, "SourcePartition", &ignored, INTENTION_NAME_MAX, err)) ||
	    (rc = jx_str(obj, ctx, "DestinationPartition", &ignored, INTENTION_NAME_MAX, err)) ||
	    (rc = jx_str(obj, ctx, "SourcePeer", &ignored, INTENTION_NAME_MAX, err)) ||
	    (rc = jx_int(obj, ctx, "Precedence", &prec, -1000000, 1000000, err)) ||
	    (rc = jx_int(obj, ctx, "CreateIndex", &ci, 0, INT64_MAX, err)) ||
	    (rc = jx_int(obj, ctx, "ModifyIndex", &mi, 0, INT64_MAX, err)) ||
	    (rc = jx_array(obj, ctx, "Permissions", &perms, err)))
		goto out;
	if (sns == NULL || *sns == '\0')
		sns = INTENTION_DEFAULT_NS;
	if (dns == NULL || *dns == '\0')
		dns = INTENTION_DEFAULT_NS;
	if ((rc = check_name(ctx, "SourceName", "SourceNS", sns, sname, err)) ||
	    (rc = check_name(ctx, "DestinationName", "DestinationNS", dns, dname, err)))
		goto out;
	if (stype && *stype && strcmp(stype, "consul") != 0) {
		rc = weft_errf(err, WEFT_EINVAL, "%s%sSourceType: \"%s\": must be \"consul\"",
			       CTXP(ctx), stype);
		goto out;
	}
	if ((rc = decode_action(obj, ctx, "Action", &ix->action, &given, err)))
		goto out;
	if (perms && json_array_size(perms) > 0) {
		if (given) {
			rc = weft_errf(err, WEFT_EINVAL,
				       "%s%sAction: must be omitted when Permissions are given",
				       CTXP(ctx));
			goto out;
		}
		if (strcmp(dname, INTENTION_WILDCARD) == 0 || strcmp(dns, INTENTION_WILDCARD) == 0) {
			rc = weft_errf(err, WEFT_EINVAL,
				       "%s%sPermissions: cannot be given for a wildcard destination",
				       CTXP(ctx));
			goto out;
		}
		if (json_array_size(perms) > INTENTION_PERMISSIONS_MAX) {
			rc = weft_errf(err, WEFT_EINVAL, "%s%sPermissions: more than %d permissions",
				       CTXP(ctx), INTENTION_PERMISSIONS_MAX);
			goto out;
		}
		ix->perms = calloc(json_array_size(perms), sizeof(*ix->perms));
		if (ix->perms == NULL) {
			rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
			goto out;
		}
		ix->l7 = 1;
		json_array_foreach(perms, i, e) {
			snprintf(pctx, sizeof(pctx), "%s%sPermissions[%zu]", CTXP(ctx), i);
			rc = decode_perm(e, pctx, &ix->perms[i], rx_budget, err);
			ix->n_perms = i + 1;
			if (rc != WEFT_OK)
				goto out;
		}
	} else if (!given) {
		rc = weft_errf(err, WEFT_EINVAL,
			       "%s%sAction: is required (\"allow\" or \"deny\") unless Permissions are given",
			       CTXP(ctx));
		goto out;
	}
	if ((rc = decode_meta(obj, ctx, &ix->meta, err)))
		goto out;
	ix->id = strdup(id ? id : "");
	ix->description = strdup(desc ? desc : "");
	ix->src_ns = strdup(sns);
	ix->src_name = strdup(sname);
	ix->dst_ns = strdup(dns);
	ix->dst_name = strdup(dname);
	if (!ix->id || !ix->description || !ix->src_ns || !ix->src_name || !ix->dst_ns ||
	    !ix->dst_name) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	ix->precedence = intention_compute_precedence(sns, sname, dns, dname);
	ix->create_index = ci;
	ix->modify_index = mi;
	*out = ix;
	ix = NULL;
	rc = WEFT_OK;
out:
	intention_free(ix);
	return rc;
}

static const char *action_str(enum intention_action a)
{
	return a == INTENTION_ALLOW ? "allow" : "deny";
}

static const char *hdr_field(enum hdr_kind k)
{
	switch (k) {
	case HDR_PRESENT: return "Present";
	case HDR_EXACT: return "Exact";
	case HDR_PREFIX: return "Prefix";
	case HDR_SUFFIX: return "Suffix";
	default: return "Regex";
	}
}

json_t *intention_to_json(const struct intention *ix)
{
	json_t *o = json_object(), *perms, *p, *http, *arr, *h;
	size_t i, j;

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "ID", json_string(ix->id));
	json_object_set_new(o, "Description", json_string(ix->description));
	json_object_set_new(o, "SourceNS", json_string(ix->src_ns));
	json_object_set_new(o, "SourceName", json_string(ix->src_name));
	json_object_set_new(o, "DestinationNS", json_string(ix->dst_ns));
	json_object_set_new(o, "DestinationName", json_string(ix->dst_name));
	json_object_set_new(o, "SourceType", json_string("consul"));
	if (!ix->l7) {
		json_object_set_new(o, "Action", json_string(action_str(ix->action)));
	} else {
		perms = json_array();
		for (i = 0; i < ix->n_perms; i++) {
			const struct ix_perm *pm = &ix->perms[i];

			p = json_object();
			http = json_object();
			json_object_set_new(p, "Action", json_string(action_str(pm->action)));
			if (pm->path_kind == PATH_EXACT)
				json_object_set_new(http, "PathExact", json_string(pm->path));
			else if (pm->path_kind == PATH_PREFIX)
				json_object_set_new(http, "PathPrefix", json_string(pm->path));
			else if (pm->path_kind == PATH_REGEX)
				json_object_set_new(http, "PathRegex", json_string(pm->path));
			if (pm->n_methods) {
				arr = json_array();
				for (j = 0; j < pm->n_methods; j++)
					json_array_append_new(arr, json_string(pm->methods[j]));
				json_object_set_new(http, "Methods", arr);
			}
			if (pm->n_headers) {
				arr = json_array();
				for (j = 0; j < pm->n_headers; j++) {
					const struct ix_header *hd = &pm->headers[j];

					h = json_object();
					json_object_set_new(h, "Name", json_string(hd->name));
					if (hd->kind == HDR_PRESENT)
						json_object_set_new(h, "Present", json_true());
					else
						json_object_set_new(h, hdr_field(hd->kind),
								    json_string(hd->value));
					if (hd->invert)
						json_object_set_new(h, "Invert", json_true());
					json_array_append_new(arr, h);
				}
				json_object_set_new(http, "Header", arr);
			}
			json_object_set_new(p, "HTTP", http);
			json_array_append_new(perms, p);
		}
		json_object_set_new(o, "Permissions", perms);
	}
	json_object_set(o, "Meta", ix->meta);
	json_object_set_new(o, "Precedence", json_integer(ix->precedence));
	json_object_set_new(o, "CreateIndex", json_integer(ix->create_index));
	json_object_set_new(o, "ModifyIndex", json_integer(ix->modify_index));
	return o;
}

const char *intention_id(const struct intention *ix) { return ix->id; }
const char *intention_source_ns(const struct intention *ix) { return ix->src_ns; }
const char *intention_source_name(const struct intention *ix) { return ix->src_name; }
const char *intention_destination_ns(const struct intention *ix) { return ix->dst_ns; }
const char *intention_destination_name(const struct intention *ix) { return ix->dst_name; }
const char *intention_description(const struct intention *ix) { return ix->description; }
int intention_precedence(const struct intention *ix) { return ix->precedence; }
int intention_is_l7(const struct intention *ix) { return ix->l7; }
enum intention_action intention_action(const struct intention *ix) { return ix->action; }
size_t intention_permission_count(const struct intention *ix) { return ix->n_perms; }
long long intention_create_index(const struct intention *ix) { return ix->create_index; }
long long intention_modify_index(const struct intention *ix) { return ix->modify_index; }

enum intention_action intention_permission_action(const struct intention *ix, size_t i)
{
	return i < ix->n_perms ? ix->perms[i].action : INTENTION_DENY;
}

int intention_set_id(struct intention *ix, const char *id, char **err)
{
	char *c = strdup(id ? id : "");

	if (c == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	free(ix->id);
	ix->id = c;
	return WEFT_OK;
}

void intention_set_raft_indexes(struct intention *ix, long long create, long long modify)
{
	ix->create_index = create;
	ix->modify_index = modify;
}

/* ---- The set ------------------------------------------------------------- */

/* Open-addressing tables of intention positions (+1; 0 = empty). quad: key
 * (sns, sname, dns, dname), one intention each. by_src / by_dst: key (ns,
 * name) of one side, a list of positions in evaluation order. */
struct pos_list {
	size_t *v;
	size_t n, cap;
};

struct intention_set {
	struct intention **v; /* evaluation order */
	size_t n;
	size_t *quad;         /* cap slots */
	struct pos_list *src, *dst; /* cap slots; list empty = free slot */
	size_t cap;
};

static uint64_t hash_str(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= 0xff; /* separator */
	return h * 1099511628211ULL;
}

static uint64_t hash2(const char *a, const char *b)
{
	return hash_str(hash_str(14695981039346656037ULL, a), b);
}

static uint64_t hash4(const char *a, const char *b, const char *c, const char *d)
{
	return hash_str(hash_str(hash2(a, b), c), d);
}

static int sorter_cmp(const void *pa, const void *pb)
{
	const struct intention *a = *(struct intention *const *)pa;
	const struct intention *b = *(struct intention *const *)pb;
	int c;

	if (a->precedence != b->precedence)
		return a->precedence > b->precedence ? -1 : 1;
	if ((c = strcmp(a->src_ns, b->src_ns)))
		return c;
	if ((c = strcmp(a->src_name, b->src_name)))
		return c;
	if ((c = strcmp(a->dst_ns, b->dst_ns)))
		return c;
	return strcmp(a->dst_name, b->dst_name);
}

static size_t quad_lookup(const struct intention_set *s, const char *sns, const char *sname,
			  const char *dns, const char *dname)
{
	size_t mask = s->cap - 1, i;
	uint64_t h;

	if (s->cap == 0)
		return 0;
	h = hash4(sns, sname, dns, dname);
	for (i = (size_t)h & mask;; i = (i + 1) & mask) {
		size_t p = s->quad[i];
		const struct intention *ix;

		if (p == 0)
			return 0;
		ix = s->v[p - 1];
		if (strcmp(ix->src_name, sname) == 0 && strcmp(ix->dst_name, dname) == 0 &&
		    strcmp(ix->src_ns, sns) == 0 && strcmp(ix->dst_ns, dns) == 0)
			return p;
	}
}

static struct pos_list *side_slot(struct pos_list *tab, size_t cap,
				  const struct intention *const *v, int src, const char *ns,
				  const char *name)
{
	size_t mask = cap - 1, i;

	for (i = (size_t)hash2(ns, name) & mask;; i = (i + 1) & mask) {
		const struct intention *ix;

		if (tab[i].n == 0)
			return &tab[i];
		ix = v[tab[i].v[0]];
		if (src ? (strcmp(ix->src_ns, ns) == 0 && strcmp(ix->src_name, name) == 0)
			: (strcmp(ix->dst_ns, ns) == 0 && strcmp(ix->dst_name, name) == 0))
			return &tab[i];
	}
}

static int list_push(struct pos_list *l, size_t pos)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 4;
		size_t *nv = realloc(l->v, nc * sizeof(*nv));

		if (nv == NULL)
			return -1;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = pos;
	return 0;
}

void intention_set_free(struct intention_set *set)
{
	size_t i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n; i++)
		intention_free(set->v[i]);
	for (i = 0; i < set->cap; i++) {
		free(set->src[i].v);
		free(set->dst[i].v);
	}
	free(set->v);
	free(set->quad);
	free(set->src);
	free(set->dst);
	free(set);
}

int intention_set_new(struct intention **ixs, size_t n, struct intention_set **out, char **err)
{
	struct intention_set *s = NULL;
	size_t i, taken = 0;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL || (n && (s->v = calloc(n, sizeof(*s->v))) == NULL)) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (ixs[i] == NULL) {
			rc = weft_errf(err, WEFT_EINVAL, "intentions[%zu]: missing", i);
			goto out;
		}
		s->v[i] = ixs[i];
	}
	s->n = n;
	taken = 1;
	if (n)
		qsort(s->v, n, sizeof(*s->v), sorter_cmp);
	for (s->cap = 16; s->cap < 2 * n + 2; s->cap *= 2)
		;
	s->quad = calloc(s->cap, sizeof(*s->quad));
	s->src = calloc(s->cap, sizeof(*s->src));
	s->dst = calloc(s->cap, sizeof(*s->dst));
	if (!s->quad || !s->src || !s->dst) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct intention *ix = s->v[i];
		size_t p = quad_lookup(s, ix->src_ns, ix->src_name, ix->dst_ns, ix->dst_name), k;

		if (p) {
			const char *a = s->v[p - 1]->id, *b = ix->id;

			if (*a && *b)
				rc = weft_errf(err, WEFT_EEXIST,
					       "intentions: \"%s\" and \"%s\" both go from %s/%s to %s/%s",
					       a, b, ix->src_ns, ix->src_name, ix->dst_ns, ix->dst_name);
			else
				rc = weft_errf(err, WEFT_EEXIST,
					       "intentions: two intentions go from %s/%s to %s/%s",
					       ix->src_ns, ix->src_name, ix->dst_ns, ix->dst_name);
			goto out;
		}
		for (k = (size_t)hash4(ix->src_ns, ix->src_name, ix->dst_ns, ix->dst_name) &
			 (s->cap - 1);
		     s->quad[k]; k = (k + 1) & (s->cap - 1))
			;
		s->quad[k] = i + 1;
		if (list_push(side_slot(s->src, s->cap, (const struct intention *const *)s->v, 1,
					ix->src_ns, ix->src_name), i) ||
		    list_push(side_slot(s->dst, s->cap, (const struct intention *const *)s->v, 0,
					ix->dst_ns, ix->dst_name), i)) {
			rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
			goto out;
		}
	}
	*out = s;
	s = NULL;
	rc = WEFT_OK;
out:
	if (!taken) {
		for (i = 0; i < n; i++)
			intention_free(ixs[i]);
		if (s)
			s->n = 0;
	}
	intention_set_free(s);
	return rc;
}

int intention_set_from_json(json_t *array, struct intention_set **out, char **err)
{
	struct intention **v = NULL;
	size_t i, n = 0;
	char ctx[32];
	json_t *e;
	int rc;

	*out = NULL;
	if (!json_is_array(array))
		return weft_errf(err, WEFT_EINVAL, "intentions: must be an array");
	if (json_array_size(array) && (v = calloc(json_array_size(array), sizeof(*v))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	json_array_foreach(array, i, e) {
		snprintf(ctx, sizeof(ctx), "[%zu]", i);
		rc = intention_from_json(e, ctx, &v[n], err);
		if (rc != WEFT_OK)
			goto out;
		n++;
	}
	rc = intention_set_new(v, n, out, err);
	n = 0;
out:
	for (i = 0; i < n; i++)
		intention_free(v[i]);
	free(v);
	return rc;
}

size_t intention_set_count(const struct intention_set *set) { return set->n; }

const struct intention *intention_set_get(const struct intention_set *set, size_t i)
{
	return i < set->n ? set->v[i] : NULL;
}

const struct intention *intention_set_find(const struct intention_set *set,
					   const char *src_ns, const char *src_name,
					   const char *dst_ns, const char *dst_name)
{
	size_t p;

	if (src_name == NULL || dst_name == NULL)
		return NULL;
	p = quad_lookup(set, src_ns ? src_ns : INTENTION_DEFAULT_NS, src_name,
			dst_ns ? dst_ns : INTENTION_DEFAULT_NS, dst_name);
	return p ? set->v[p - 1] : NULL;
}

const struct intention *intention_set_find_id(const struct intention_set *set, const char *id)
{
	size_t i;

	if (id == NULL || *id == '\0')
		return NULL;
	for (i = 0; i < set->n; i++)
		if (strcmp(set->v[i]->id, id) == 0)
			return set->v[i];
	return NULL;
}

/* ---- Deciding ------------------------------------------------------------ */

/* The pattern of the given exactness for a concrete ns/name. */
static void pattern(int exact, const char *ns, const char *name, const char **pns,
		    const char **pname)
{
	*pns = exact == 0 ? INTENTION_WILDCARD : ns;
	*pname = exact == 2 ? name : INTENTION_WILDCARD;
}

/* The header's value as Envoy sees it: every value joined with ",".
 * Returns NULL when absent; *tofree is set when the value was built. */
static const char *header_value(const struct intention_call *c, const char *name, char **tofree)
{
	const char *first = NULL;
	size_t i, count = 0, len = 0;
	char *buf, *w;

	*tofree = NULL;
	for (i = 0; i < c->n_headers; i++) {
		if (c->headers[i].name && strcasecmp(c->headers[i].name, name) == 0) {
			const char *v = c->headers[i].value ? c->headers[i].value : "";

			if (count++ == 0)
				first = v;
			len += strlen(v) + 1;
		}
	}
	if (count <= 1)
		return first;
	buf = malloc(len);
	if (buf == NULL)
		return first; /* out of memory: the first value only */
	w = buf;
	count = 0;
	for (i = 0; i < c->n_headers; i++) {
		if (c->headers[i].name && strcasecmp(c->headers[i].name, name) == 0) {
			const char *v = c->headers[i].value ? c->headers[i].value : "";
			size_t l = strlen(v);

			if (count++)
				*w++ = ',';
			memcpy(w, v, l);
			w += l;
		}
	}
	*w = '\0';
	*tofree = buf;
	return buf;
}

static int header_matches(const struct ix_header *h, const struct intention_call *c)
{
	char *tofree;
	const char *v = header_value(c, h->name, &tofree);
	int m;

	if (v == NULL)
		return h->kind == HDR_PRESENT && h->invert;
	switch (h->kind) {
	case HDR_PRESENT: m = 1; break;
	case HDR_EXACT: m = strcmp(v, h->value) == 0; break;
	case HDR_PREFIX: m = starts_with(v, h->value); break;
	case HDR_SUFFIX: m = ends_with(v, h->value); break;
	default: m = re_full_match(&h->re, v); break;
	}
	free(tofree);
	return m != h->invert;
}

static int path_matches(const struct ix_perm *p, const char *path)
{
	char small[256], *big = NULL;
	const char *s = path ? path : "";
	size_t n = strcspn(s, "?#");
	int m;

	if (p->path_kind == PATH_NONE)
		return 1;
	if (s[n] != '\0') { /* cut the query or fragment */
		char *b = n < sizeof(small) ? small : (big = malloc(n + 1));

		if (b == NULL)
			return 0;
		memcpy(b, s, n);
		b[n] = '\0';
		s = b;
	}
	switch (p->path_kind) {
	case PATH_EXACT: m = strcmp(s, p->path) == 0; break;
	case PATH_PREFIX: m = starts_with(s, p->path); break;
	default: m = re_full_match(&p->path_re, s); break;
	}
	free(big);
	return m;
}

static int perm_matches(const struct ix_perm *p, const struct intention_call *c)
{
	size_t i;

	if (p->n_methods) {
		int ok = 0;

		for (i = 0; i < p->n_methods && !ok; i++)
			ok = c->method && strcmp(c->method, p->methods[i]) == 0;
		if (!ok)
			return 0;
	}
	if (!path_matches(p, c->path))
		return 0;
	for (i = 0; i < p->n_headers; i++)
		if (!header_matches(&p->headers[i], c))
			return 0;
	return 1;
}

void intention_set_decide(const struct intention_set *set, const struct intention_call *call,
			  enum intention_action default_action,
			  struct intention_decision *out)
{
	const char *sns = call->source_ns ? call->source_ns : INTENTION_DEFAULT_NS;
	const char *dns = call->destination_ns ? call->destination_ns : INTENTION_DEFAULT_NS;
	const struct intention *ix = NULL;
	int prec;
	size_t i;

	out->action = default_action;
	out->reason = INTENTION_BY_DEFAULT;
	out->intention = NULL;
	out->permission = -1;
	if (call->source_name == NULL || call->destination_name == NULL ||
	    !*call->source_name || !*call->destination_name || strchr(sns, '*') ||
	    strchr(dns, '*') || strchr(call->source_name, '*') ||
	    strchr(call->destination_name, '*'))
		return;
	/* One probe per precedence, highest first: precedence p fixes the
	 * exactness of both sides, so at most one intention can match. */
	for (prec = 9; prec >= 1 && ix == NULL; prec--) {
		const char *a, *b, *c, *d;
		size_t p;

		pattern((prec - 1) % 3, sns, call->source_name, &a, &b);
		pattern((prec - 1) / 3, dns, call->destination_name, &c, &d);
		p = quad_lookup(set, a, b, c, d);
		if (p)
			ix = set->v[p - 1];
	}
	if (ix == NULL)
		return;
	out->intention = ix;
	if (!ix->l7) {
		out->action = ix->action;
		out->reason = INTENTION_BY_ACTION;
		return;
	}
	if (!call->http) {
		out->action = INTENTION_DENY;
		out->reason = INTENTION_BY_L7_NOT_HTTP;
		return;
	}
	for (i = 0; i < ix->n_perms; i++) {
		if (perm_matches(&ix->perms[i], call)) {
			out->action = ix->perms[i].action;
			out->reason = INTENTION_BY_PERMISSION;
			out->permission = (int)i;
			return;
		}
	}
	out->action = default_action;
	out->reason = INTENTION_BY_NO_PERMISSION;
}

const char *intention_reason_string(enum intention_reason r)
{
	switch (r) {
	case INTENTION_BY_DEFAULT: return "no intention matches: the default action applies";
	case INTENTION_BY_ACTION: return "the intention's Action applies";
	case INTENTION_BY_PERMISSION: return "the first matching permission's Action applies";
	case INTENTION_BY_NO_PERMISSION:
		return "the intention has Permissions and none matches the request: the default action applies";
	case INTENTION_BY_L7_NOT_HTTP:
		return "the intention has Permissions, which only an HTTP request can satisfy: deny";
	}
	return "unknown";
}

const char *intention_reason_kind(enum intention_reason r)
{
	switch (r) {
	case INTENTION_BY_DEFAULT: return "default";
	case INTENTION_BY_ACTION: return "action";
	case INTENTION_BY_PERMISSION: return "permission";
	case INTENTION_BY_NO_PERMISSION: return "no-permission";
	case INTENTION_BY_L7_NOT_HTTP: return "l7-not-http";
	}
	return "unknown";
}

json_t *intention_decision_to_json(const struct intention_decision *d)
{
	json_t *o = json_object(), *ix;

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "Allowed", json_boolean(d->action == INTENTION_ALLOW));
	json_object_set_new(o, "DecidedBy", json_string(d->intention ? "intention" : "default"));
	json_object_set_new(o, "ReasonKind", json_string(intention_reason_kind(d->reason)));
	json_object_set_new(o, "Reason", json_string(intention_reason_string(d->reason)));
	if (d->intention) {
		const struct intention *i = d->intention;

		ix = json_object();
		json_object_set_new(ix, "ID", json_string(i->id));
		json_object_set_new(ix, "SourceNS", json_string(i->src_ns));
		json_object_set_new(ix, "SourceName", json_string(i->src_name));
		json_object_set_new(ix, "DestinationNS", json_string(i->dst_ns));
		json_object_set_new(ix, "DestinationName", json_string(i->dst_name));
		json_object_set_new(ix, "Precedence", json_integer(i->precedence));
		if (!i->l7)
			json_object_set_new(ix, "Action", json_string(action_str(i->action)));
		json_object_set_new(o, "Intention", ix);
	}
	if (d->permission >= 0)
		json_object_set_new(o, "Permission", json_integer(d->permission));
	return o;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

int intention_set_match(const struct intention_set *set, enum intention_match_by by,
			const char *ns, const char *name,
			const struct intention ***out, size_t *n, char **err)
{
	const char *pns[3], *pname[3];
	size_t *pos = NULL, total = 0, k, i, np = 0;
	const struct intention **res = NULL;
	struct pos_list *tab = by == INTENTION_MATCH_SOURCE ? set->src : set->dst;
	const struct pos_list *lists[3];
	int rc;

	*out = NULL;
	*n = 0;
	if (name == NULL || *name == '\0')
		return weft_errf(err, WEFT_EINVAL, "name: is required");
	ns = ns && *ns ? ns : INTENTION_DEFAULT_NS;
	/* The patterns that match ns/name: itself, ns/ *, * / *. */
	pns[0] = ns, pname[0] = name;
	pns[1] = ns, pname[1] = INTENTION_WILDCARD;
	pns[2] = INTENTION_WILDCARD, pname[2] = INTENTION_WILDCARD;
	for (k = 0; k < 3; k++) {
		int dup = 0;

		for (i = 0; i < k; i++)
			dup |= strcmp(pns[i], pns[k]) == 0 && strcmp(pname[i], pname[k]) == 0;
		lists[k] = NULL;
		if (dup || set->cap == 0)
			continue;
		lists[k] = side_slot(tab, set->cap, (const struct intention *const *)set->v,
				     by == INTENTION_MATCH_SOURCE, pns[k], pname[k]);
		total += lists[k]->n;
	}
	if (total) {
		pos = malloc(total * sizeof(*pos));
		res = malloc(total * sizeof(*res));
		if (pos == NULL || res == NULL) {
			rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
			goto out;
		}
		for (k = 0; k < 3; k++)
			for (i = 0; lists[k] && i < lists[k]->n; i++)
				pos[np++] = lists[k]->v[i];
		qsort(pos, np, sizeof(*pos), cmp_size);
		for (i = 0; i < np; i++)
			res[i] = set->v[pos[i]];
	}
	*out = res;
	*n = np;
	res = NULL;
	rc = WEFT_OK;
out:
	free(pos);
	free(res);
	return rc;
}

/* ---- Analysis ------------------------------------------------------------ */

struct intention_report {
	struct intention_finding *v;
	size_t n, cap;
};

void intention_report_free(struct intention_report *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		free((void *)r->v[i].by);
		free((void *)r->v[i].by_permissions);
		free((void *)r->v[i].message);
	}
	free(r->v);
	free(r);
}

size_t intention_report_count(const struct intention_report *r) { return r->n; }

const struct intention_finding *intention_report_get(const struct intention_report *r, size_t i)
{
	return i < r->n ? &r->v[i] : NULL;
}

const char *intention_finding_kind_string(enum intention_finding_kind k)
{
	switch (k) {
	case INTENTION_SHADOWED: return "shadowed";
	case INTENTION_NEVER_MATCHES: return "never-matches";
	case INTENTION_PERMISSION_PREEMPTED: return "permission-preempted";
	case INTENTION_PERMISSION_NEVER_MATCHES: return "permission-never-matches";
	}
	return "unknown";
}

static struct intention_finding *report_add(struct intention_report *r,
					    enum intention_finding_kind kind,
					    const struct intention *ix, int perm)
{
	struct intention_finding *f;

	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 8;
		struct intention_finding *nv = realloc(r->v, nc * sizeof(*nv));

		if (nv == NULL)
			return NULL;
		r->v = nv;
		r->cap = nc;
	}
	f = &r->v[r->n++];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->intention = ix;
	f->permission = perm;
	return f;
}

static void describe(const struct intention *ix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s -> %s/%s%s%s%s", ix->src_ns, ix->src_name, ix->dst_ns,
		 ix->dst_name, *ix->id ? " (ID " : "", ix->id, *ix->id ? ")" : "");
}

/* Namespaces a side pattern covers: all candidates for "*", else itself if
 * it exists. Candidates: the universe, or when open every namespace named in
 * the set plus NULL standing for all the others (which every pattern treats
 * alike). */
struct ns_list {
	const char **v;
	size_t n;
};

static int ns_add(struct ns_list *l, const char *ns)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if ((l->v[i] == NULL) == (ns == NULL) && (ns == NULL || strcmp(l->v[i], ns) == 0))
			return 0;
	l->v[l->n++] = ns;
	return 0;
}

/* The intention at a position above `limit` whose patterns contain the
 * restriction of J to source namespace a, destination namespace b; or 0. */
static size_t covering(const struct intention_set *s, size_t limit, const struct intention *j,
		       const char *a, const char *b)
{
	const char *sn[3][2], *dn[3][2];
	size_t ns = 0, nd = 0, x, y, p, best = 0;

	/* Candidate source patterns containing (a, j->src_name). */
	if (a && strcmp(j->src_name, INTENTION_WILDCARD) != 0)
		sn[ns][0] = a, sn[ns++][1] = j->src_name;
	if (a)
		sn[ns][0] = a, sn[ns++][1] = INTENTION_WILDCARD;
	sn[ns][0] = INTENTION_WILDCARD, sn[ns++][1] = INTENTION_WILDCARD;
	if (b && strcmp(j->dst_name, INTENTION_WILDCARD) != 0)
		dn[nd][0] = b, dn[nd++][1] = j->dst_name;
	if (b)
		dn[nd][0] = b, dn[nd++][1] = INTENTION_WILDCARD;
	dn[nd][0] = INTENTION_WILDCARD, dn[nd++][1] = INTENTION_WILDCARD;
	for (x = 0; x < ns; x++) {
		for (y = 0; y < nd; y++) {
			p = quad_lookup(s, sn[x][0], sn[x][1], dn[y][0], dn[y][1]);
			if (p && p - 1 < limit && (best == 0 || p < best))
				best = p;
		}
	}
	return best;
}

/* pos(a) ⊆ pos(b) over header values, for string matchers (not Present). */
static int pos_subset(const struct ix_header *a, const struct ix_header *b)
{
	if (a->kind == HDR_PRESENT)
		return b->kind == HDR_PRESENT;
	if (b->kind == HDR_PRESENT)
		return 1;
	switch (a->kind) {
	case HDR_EXACT:
		switch (b->kind) {
		case HDR_EXACT: return strcmp(a->value, b->value) == 0;
		case HDR_PREFIX: return starts_with(a->value, b->value);
		case HDR_SUFFIX: return ends_with(a->value, b->value);
		case HDR_REGEX: return re_full_match(&b->re, a->value);
		default: return 0;
		}
	case HDR_PREFIX:
		return b->kind == HDR_PREFIX && starts_with(a->value, b->value);
	case HDR_SUFFIX:
		return b->kind == HDR_SUFFIX && ends_with(a->value, b->value);
	case HDR_REGEX:
		return b->kind == HDR_REGEX && strcmp(a->value, b->value) == 0;
	default:
		return 0;
	}
}

/* pos(a) ∩ pos(b) = ∅ (proved), for string matchers. */
static int pos_disjoint(const struct ix_header *a, const struct ix_header *b)
{
	if (a->kind == HDR_PRESENT || b->kind == HDR_PRESENT)
		return 0;
	if (b->kind == HDR_EXACT && a->kind != HDR_EXACT) {
		const struct ix_header *t = a;

		a = b;
		b = t;
	}
	if (a->kind == HDR_EXACT)
		return !pos_subset(a, b);
	if (a->kind == HDR_PREFIX && b->kind == HDR_PREFIX)
		return !starts_with(a->value, b->value) && !starts_with(b->value, a->value);
	if (a->kind == HDR_SUFFIX && b->kind == HDR_SUFFIX)
		return !ends_with(a->value, b->value) && !ends_with(b->value, a->value);
	return 0;
}

/* The set of header states a rule accepts, M(h), over {absent} ∪ strings:
 * Present: strings; Present+Invert: {absent}; X: pos(X); X+Invert:
 * strings \ pos(X). Proves M(j) ⊆ M(i). */
static int hdr_implies(const struct ix_header *j, const struct ix_header *i)
{
	int jabs = j->kind == HDR_PRESENT && j->invert;
	int iabs = i->kind == HDR_PRESENT && i->invert;

	if (iabs || jabs)
		return iabs && jabs;
	if (i->kind == HDR_PRESENT)
		return 1; /* every other rule accepts only present values */
	if (j->kind == HDR_PRESENT)
		return 0; /* all strings ⊆ a restricted set: not provable */
	if (!j->invert && !i->invert)
		return pos_subset(j, i);
	if (!j->invert && i->invert)
		return pos_disjoint(j, i);
	if (j->invert && i->invert)
		return pos_subset(i, j);
	return 0;
}

/* Proves M(a) ∩ M(b) = ∅. */
static int hdr_disjoint(const struct ix_header *a, const struct ix_header *b)
{
	int aabs = a->kind == HDR_PRESENT && a->invert;
	int babs = b->kind == HDR_PRESENT && b->invert;

	if (aabs || babs)
		return aabs != babs;
	if (a->kind == HDR_PRESENT || b->kind == HDR_PRESENT)
		return 0;
	if (!a->invert && !b->invert)
		return pos_disjoint(a, b);
	if (!a->invert && b->invert)
		return pos_subset(a, b);
	if (a->invert && !b->invert)
		return pos_subset(b, a);
	return 0;
}

/* Proves that permission p matches no request; *why says how. */
static int perm_never(const struct ix_perm *p, char *why, size_t len)
{
	size_t a, b;

	if ((p->path_kind == PATH_EXACT || p->path_kind == PATH_PREFIX) &&
	    p->path[strcspn(p->path, "?#")] != '\0') {
		snprintf(why, len, "%s \"%s\" contains '?' or '#', but the matched path stops before the query",
			 p->path_kind == PATH_EXACT ? "PathExact" : "PathPrefix", p->path);
		return 1;
	}
	for (a = 0; a < p->n_headers; a++) {
		for (b = a + 1; b < p->n_headers; b++) {
			if (strcasecmp(p->headers[a].name, p->headers[b].name) == 0 &&
			    hdr_disjoint(&p->headers[a], &p->headers[b])) {
				snprintf(why, len, "Header[%zu] and Header[%zu] on \"%s\" contradict each other",
					 a, b, p->headers[a].name);
				return 1;
			}
		}
	}
	return 0;
}

static int path_contains(const struct ix_perm *i, const struct ix_perm *j)
{
	if (i->path_kind == PATH_NONE)
		return 1;
	switch (j->path_kind) {
	case PATH_EXACT:
		if (j->path[strcspn(j->path, "?#")] != '\0')
			return 0; /* unreachable anyway; keep the proof simple */
		switch (i->path_kind) {
		case PATH_EXACT: return strcmp(i->path, j->path) == 0;
		case PATH_PREFIX: return starts_with(j->path, i->path);
		default: return re_full_match(&i->path_re, j->path);
		}
	case PATH_PREFIX:
		return i->path_kind == PATH_PREFIX && starts_with(j->path, i->path);
	case PATH_REGEX:
		return i->path_kind == PATH_REGEX && strcmp(i->path, j->path) == 0;
	default:
		return 0;
	}
}

static int has_method(const struct ix_perm *p, const char *m)
{
	size_t k;

	if (p->n_methods == 0)
		return 1;
	if (m == NULL)
		return 0;
	for (k = 0; k < p->n_methods; k++)
		if (strcmp(p->methods[k], m) == 0)
			return 1;
	return 0;
}

/* Proves M(i) ⊇ M(j) ∩ {method = m} (m NULL: a method outside the list). */
static int perm_contains(const struct ix_perm *i, const struct ix_perm *j, const char *m)
{
	size_t a, b;

	if (!has_method(i, m) || !path_contains(i, j))
		return 0;
	for (a = 0; a < i->n_headers; a++) {
		int implied = 0;

		for (b = 0; b < j->n_headers && !implied; b++)
			implied = strcasecmp(i->headers[a].name, j->headers[b].name) == 0 &&
				  hdr_implies(&j->headers[b], &i->headers[a]);
		if (!implied)
			return 0;
	}
	return 1;
}

static int analyze_perms(struct intention_report *r, const struct intention *ix,
			 char **err)
{
	size_t j, i, k, nm, nby, q;
	int by[INTENTION_PERMISSIONS_MAX];
	char why[256], desc[700], msg[2048], list[400];
	struct intention_finding *f;

	describe(ix, desc, sizeof(desc));
	for (j = 0; j < ix->n_perms; j++) {
		const struct ix_perm *pj = &ix->perms[j];

		if (perm_never(pj, why, sizeof(why))) {
			if ((f = report_add(r, INTENTION_PERMISSION_NEVER_MATCHES, ix, (int)j)) == NULL)
				return weft_errf(err, WEFT_ENOMEM, "out of memory");
			snprintf(msg, sizeof(msg), "%s: Permissions[%zu] can never match: %s", desc, j,
				 why);
			f->message = strdup(msg);
			continue;
		}
		/* Each method of j (or each method at all, and any other) must be
		 * claimed by some earlier permission containing j for it. */
		nm = pj->n_methods ? pj->n_methods : N_HTTP_METHODS + 1;
		nby = 0;
		for (k = 0; k < nm; k++) {
			const char *m = pj->n_methods ? pj->methods[k]
				      : k < N_HTTP_METHODS ? http_methods[k] : NULL;
			size_t found = SIZE_MAX;

			for (i = 0; i < j && found == SIZE_MAX; i++) {
				char w2[8];

				if (perm_never(&ix->perms[i], w2, sizeof(w2)))
					continue;
				if (perm_contains(&ix->perms[i], pj, m))
					found = i;
			}
			if (found == SIZE_MAX)
				break;
			for (q = 0; q < nby && by[q] != (int)found; q++)
				;
			if (q == nby)
				by[nby++] = (int)found;
		}
		if (k < nm)
			continue;
		if ((f = report_add(r, INTENTION_PERMISSION_PREEMPTED, ix, (int)j)) == NULL)
			return weft_errf(err, WEFT_ENOMEM, "out of memory");
		f->n_by = nby;
		f->by_permissions = malloc(nby * sizeof(int));
		if (f->by_permissions)
			memcpy((void *)f->by_permissions, by, nby * sizeof(int));
		list[0] = '\0';
		for (q = 0; q < nby; q++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d",
				 q ? ", " : "", by[q]);
		snprintf(msg, sizeof(msg),
			 "%s: Permissions[%zu] (%s) never applies: every request it matches is decided first by Permissions[%s]",
			 desc, j, action_str(pj->action), list);
		f->message = strdup(msg);
	}
	return WEFT_OK;
}

static int analyze_into(const struct intention_set *s, const struct intention_universe *u,
			struct intention_report *r, char **err)
{
	struct ns_list cand = { NULL, 0 }, sl = { NULL, 0 }, dl = { NULL, 0 };
	size_t j, a, b, k, maxn;
	size_t *by = NULL;
	int rc = WEFT_OK, open = u == NULL || u->n_namespaces == 0;
	char desc[700], msg[4096];
	struct intention_finding *f;

	maxn = open ? 2 * s->n + 1 : u->n_namespaces;
	cand.v = calloc(maxn + 1, sizeof(*cand.v));
	sl.v = calloc(maxn + 1, sizeof(*sl.v));
	dl.v = calloc(maxn + 1, sizeof(*dl.v));
	by = calloc(s->n + 1, sizeof(*by)); /* shadowers are distinct positions */
	if (!cand.v || !sl.v || !dl.v || !by) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	if (open) {
		for (j = 0; j < s->n; j++) {
			if (strcmp(s->v[j]->src_ns, INTENTION_WILDCARD))
				ns_add(&cand, s->v[j]->src_ns);
			if (strcmp(s->v[j]->dst_ns, INTENTION_WILDCARD))
				ns_add(&cand, s->v[j]->dst_ns);
		}
		ns_add(&cand, NULL);
	} else {
		for (k = 0; k < u->n_namespaces; k++)
			ns_add(&cand, u->namespaces[k]);
	}
	for (j = 0; j < s->n; j++) {
		const struct intention *ix = s->v[j];
		size_t nby = 0, q;
		int reached = 0;

		describe(ix, desc, sizeof(desc));
		sl.n = dl.n = 0;
		for (k = 0; k < cand.n; k++) {
			const char *c = cand.v[k];

			if (strcmp(ix->src_ns, INTENTION_WILDCARD) == 0 ||
			    (c && strcmp(ix->src_ns, c) == 0))
				sl.v[sl.n++] = c;
			if (strcmp(ix->dst_ns, INTENTION_WILDCARD) == 0 ||
			    (c && strcmp(ix->dst_ns, c) == 0))
				dl.v[dl.n++] = c;
		}
		if (sl.n == 0 || dl.n == 0) {
			if ((f = report_add(r, INTENTION_NEVER_MATCHES, ix, -1)) == NULL) {
				rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
				goto out;
			}
			snprintf(msg, sizeof(msg), "%s can never match: namespace \"%s\" does not exist",
				 desc, sl.n == 0 ? ix->src_ns : ix->dst_ns);
			f->message = strdup(msg);
		} else {
			for (a = 0; a < sl.n && !reached; a++) {
				for (b = 0; b < dl.n && !reached; b++) {
					size_t p = covering(s, j, ix, sl.v[a], dl.v[b]);

					if (p == 0) {
						reached = 1;
						break;
					}
					for (q = 0; q < nby && by[q] != p - 1; q++)
						;
					if (q == nby)
						by[nby++] = p - 1;
				}
			}
			if (!reached) {
				const struct intention **v;

				if ((f = report_add(r, INTENTION_SHADOWED, ix, -1)) == NULL ||
				    (v = malloc(nby * sizeof(*v))) == NULL) {
					rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
					goto out;
				}
				qsort(by, nby, sizeof(*by), cmp_size);
				snprintf(msg, sizeof(msg),
					 "%s never decides a call: every call it matches is decided first by ",
					 desc);
				for (q = 0; q < nby; q++) {
					char d2[700];

					v[q] = s->v[by[q]];
					describe(v[q], d2, sizeof(d2));
					snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s%s",
						 q ? ", " : "", d2);
				}
				f->n_by = nby;
				f->by = v;
				f->message = strdup(msg);
			}
		}
		if (ix->l7 && (rc = analyze_perms(r, ix, err)) != WEFT_OK)
			goto out;
	}
out:
	free(cand.v);
	free(sl.v);
	free(dl.v);
	free(by);
	return rc;
}

int intention_set_analyze(const struct intention_set *set,
			  const struct intention_universe *universe,
			  struct intention_report **out, char **err)
{
	struct intention_report *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (r == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	rc = analyze_into(set, universe, r, err);
	if (rc != WEFT_OK) {
		intention_report_free(r);
		return rc;
	}
	*out = r;
	return WEFT_OK;
}

static int same_finding(const struct intention_finding *a, const struct intention_finding *b)
{
	size_t i;

	if (a->kind != b->kind || a->permission != b->permission || a->intention != b->intention ||
	    a->n_by != b->n_by)
		return 0;
	for (i = 0; i < a->n_by; i++)
		if ((a->by && a->by[i] != b->by[i]) ||
		    (a->by_permissions && a->by_permissions[i] != b->by_permissions[i]))
			return 0;
	return 1;
}

/* A view of the set with ix added (replacing its same-pair intention): the
 * intentions are borrowed, so the view's array is freed by hand. */
int intention_set_analyze_new(const struct intention_set *set, const struct intention *ix,
			      const struct intention_universe *universe,
			      struct intention_report **out, char **err)
{
	struct intention_set *view = NULL;
	struct intention **v = NULL;
	struct intention_report *before = NULL, *after = NULL, *r = NULL;
	size_t i, n = 0, k;
	int rc;

	*out = NULL;
	v = calloc(set->n + 1, sizeof(*v));
	r = calloc(1, sizeof(*r));
	if (v == NULL || r == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < set->n; i++) {
		const struct intention *o = set->v[i];

		if (strcmp(o->src_ns, ix->src_ns) == 0 && strcmp(o->src_name, ix->src_name) == 0 &&
		    strcmp(o->dst_ns, ix->dst_ns) == 0 && strcmp(o->dst_name, ix->dst_name) == 0)
			continue;
		v[n++] = set->v[i];
	}
	v[n++] = (struct intention *)ix;
	/* intention_set_new takes ownership: build the view by hand instead. */
	rc = intention_set_new(NULL, 0, &view, err);
	if (rc != WEFT_OK)
		goto out;
	free(view->v);
	free(view->quad);
	free(view->src);
	free(view->dst);
	view->v = v;
	view->n = n;
	v = NULL;
	qsort(view->v, n, sizeof(*view->v), sorter_cmp);
	for (view->cap = 16; view->cap < 2 * n + 2; view->cap *= 2)
		;
	view->quad = calloc(view->cap, sizeof(*view->quad));
	view->src = calloc(view->cap, sizeof(*view->src));
	view->dst = calloc(view->cap, sizeof(*view->dst));
	if (!view->quad || !view->src || !view->dst) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct intention *x = view->v[i];

		for (k = (size_t)hash4(x->src_ns, x->src_name, x->dst_ns, x->dst_name) &
			 (view->cap - 1);
		     view->quad[k]; k = (k + 1) & (view->cap - 1))
			;
		view->quad[k] = i + 1;
	}
	if ((rc = intention_set_analyze(set, universe, &before, err)) != WEFT_OK ||
	    (rc = intention_set_analyze(view, universe, &after, err)) != WEFT_OK)
		goto out;
	for (i = 0; i < after->n; i++) {
		struct intention_finding *f = &after->v[i], *g;
		int old = 0;

		for (k = 0; k < before->n && !old; k++)
			old = same_finding(f, &before->v[k]);
		if (old)
			continue;
		if ((g = report_add(r, f->kind, f->intention, f->permission)) == NULL) {
			rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
			goto out;
		}
		*g = *f; /* move the allocations */
		f->by = NULL;
		f->by_permissions = NULL;
		f->message = NULL;
	}
	*out = r;
	r = NULL;
	rc = WEFT_OK;
out:
	if (view) {
		view->n = 0; /* borrowed intentions */
		intention_set_free(view);
	}
	free(v);
	intention_report_free(before);
	intention_report_free(after);
	intention_report_free(r);
	return rc;
}

json_t *intention_report_to_json(const struct intention_report *r)
{
	json_t *arr = json_array(), *o, *by;
	size_t i, k;

	if (arr == NULL)
		return NULL;
	for (i = 0; i < r->n; i++) {
		const struct intention_finding *f = &r->v[i];

		o = json_object();
		json_object_set_new(o, "Kind", json_string(intention_finding_kind_string(f->kind)));
		json_object_set_new(o, "ID", json_string(f->intention->id));
		json_object_set_new(o, "SourceNS", json_string(f->intention->src_ns));
		json_object_set_new(o, "SourceName", json_string(f->intention->src_name));
		json_object_set_new(o, "DestinationNS", json_string(f->intention->dst_ns));
		json_object_set_new(o, "DestinationName", json_string(f->intention->dst_name));
		if (f->permission >= 0)
			json_object_set_new(o, "Permission", json_integer(f->permission));
		if (f->by) {
			by = json_array();
			for (k = 0; k < f->n_by; k++)
				json_array_append_new(by, json_string(f->by[k]->id));
			json_object_set_new(o, "By", by);
		}
		if (f->by_permissions) {
			by = json_array();
			for (k = 0; k < f->n_by; k++)
				json_array_append_new(by, json_integer(f->by_permissions[k]));
			json_object_set_new(o, "ByPermissions", by);
		}
		json_object_set_new(o, "Message", json_string(f->message ? f->message : ""));
		json_array_append_new(arr, o);
	}
	return arr;
}

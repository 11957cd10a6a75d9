/* Property test: 10,000 random intention sets and calls. The engine's
 * decisions and matches must equal a straightforward reference written here
 * independently (its own model, precedence, order and matchers; a linear
 * scan in precedence order), and the analysis must be exact for intentions
 * (shadowed <=> no call reaches it, checked over every class of call) and
 * sound for permissions (never reported when a request reaches one).
 * WEFT_PROP_SEED=n reproduces a run; failures print the seed and set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "intention.h"

#define SETS 10000
#define CALLS 30

/* ---- PRNG (xorshift64*) -------------------------------------------------- */

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 2685821657736338717ULL) >> 33) % n;
}

#define PICK(a) ((a)[rnd(sizeof(a) / sizeof((a)[0]))])

/* ---- The reference model ------------------------------------------------- */

enum { P_NONE, P_EXACT, P_PREFIX, P_REGEX };
enum { H_PRESENT, H_EXACT, H_PREFIX, H_SUFFIX, H_REGEX };

struct rhdr {
	const char *name;
	int kind, invert;
	const char *value;
	regex_t re;
};

struct rperm {
	int allow;
	int path_kind;
	const char *path;
	regex_t path_re;
	const char *methods[3];
	int n_methods;
	struct rhdr h[2];
	int n_h;
};

struct rix {
	char id[16];
	const char *sns, *sn, *dns, *dn;
	int allow, l7, prec;
	struct rperm p[4];
	int n_p;
};

static const char *const NS_POOL[] = { "default", "ns1", "*" };
static const char *const NAME_POOL[] = { "web", "api", "*" };
static const char *const EXACT_PATHS[] = { "/a", "/a/b", "/b", "/a?x" };
static const char *const PREFIX_PATHS[] = { "/a", "/", "/a/" };
static const char *const PATH_REGEXES[] = { "/a/[0-9]+", "/a.*", "/(a|b)" };
static const char *const METHODS[] = { "GET", "POST", "PUT" };
static const char *const H_NAMES[] = { "x-a", "X-A", "x-b" };
static const char *const H_VALUES[] = { "1", "10", "a1", "a" };
static const char *const H_REGEXES[] = { "[0-9]+", "a.*" };

/* Reference precedence: Consul's documented table, by which sides are
 * wildcards (not the library's formula). */
static int ref_precedence(const struct rix *x)
{
	static const int table[3][3] = {
		/* src: exact, ns/ *, * / *   for dst: */
		{ 9, 8, 7 },     /* exact */
		{ 6, 5, 4 },     /* ns / * */
		{ 3, 2, 1 },     /* * / * */
	};
	int s = strcmp(x->sns, "*") == 0 ? 2 : strcmp(x->sn, "*") == 0 ? 1 : 0;
	int d = strcmp(x->dns, "*") == 0 ? 2 : strcmp(x->dn, "*") == 0 ? 1 : 0;

	return table[d][s];
}

static int ref_order(const void *pa, const void *pb)
{
	const struct rix *a = pa, *b = pb;
	int c;

	if (a->prec != b->prec)
		return b->prec - a->prec;
	if ((c = strcmp(a->sns, b->sns)) || (c = strcmp(a->sn, b->sn)) ||
	    (c = strcmp(a->dns, b->dns)))
		return c;
	return strcmp(a->dn, b->dn);
}

static void compile(regex_t *re, const char *src)
{
	char buf[300];

	snprintf(buf, sizeof(buf), "^(%s)$", src);
	if (regcomp(re, buf, REG_EXTENDED | REG_NOSUB) != 0)
		fail_msg("reference regcomp %s", src);
}

static void gen_perm(struct rperm *p)
{
	int i;

	memset(p, 0, sizeof(*p));
	p->allow = (int)rnd(2);
	p->path_kind = (int)rnd(4);
	switch (p->path_kind) {
	case P_EXACT: p->path = PICK(EXACT_PATHS); break;
	case P_PREFIX: p->path = PICK(PREFIX_PATHS); break;
	case P_REGEX: p->path = PICK(PATH_REGEXES); compile(&p->path_re, p->path); break;
	}
	for (i = 0; i < 3; i++)
		if (rnd(3) == 0)
			p->methods[p->n_methods++] = METHODS[i];
	p->n_h = (int)rnd(3);
	for (i = 0; i < p->n_h; i++) {
		struct rhdr *h = &p->h[i];

		h->name = PICK(H_NAMES);
		h->kind = (int)rnd(5);
		h->invert = rnd(3) == 0;
		if (h->kind == H_REGEX) {
			h->value = PICK(H_REGEXES);
			compile(&h->re, h->value);
		} else if (h->kind != H_PRESENT) {
			h->value = PICK(H_VALUES);
		}
	}
	if (p->path_kind == P_NONE && p->n_methods == 0 && p->n_h == 0)
		p->methods[p->n_methods++] = "GET";
}

static void free_rix(struct rix *x)
{
	int i, k;

	for (i = 0; i < x->n_p; i++) {
		if (x->p[i].path_kind == P_REGEX)
			regfree(&x->p[i].path_re);
		for (k = 0; k < x->p[i].n_h; k++)
			if (x->p[i].h[k].kind == H_REGEX)
				regfree(&x->p[i].h[k].re);
	}
}

static json_t *rix_json(const struct rix *x)
{
	static const char *const hk[] = { "Present", "Exact", "Prefix", "Suffix", "Regex" };
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "ID", x->id, "SourceNS", x->sns,
			      "SourceName", x->sn, "DestinationNS", x->dns, "DestinationName",
			      x->dn);
	json_t *perms, *p, *http, *arr, *h;
	int i, k;

	if (!x->l7) {
		json_object_set_new(o, "Action", json_string(x->allow ? "allow" : "deny"));
		return o;
	}
	perms = json_array();
	for (i = 0; i < x->n_p; i++) {
		const struct rperm *rp = &x->p[i];

		http = json_object();
		if (rp->path_kind != P_NONE)
			json_object_set_new(http, rp->path_kind == P_EXACT ? "PathExact"
						  : rp->path_kind == P_PREFIX ? "PathPrefix"
						  : "PathRegex", json_string(rp->path));
		if (rp->n_methods) {
			arr = json_array();
			for (k = 0; k < rp->n_methods; k++)
				json_array_append_new(arr, json_string(rp->methods[k]));
			json_object_set_new(http, "Methods", arr);
		}
		if (rp->n_h) {
			arr = json_array();
			for (k = 0; k < rp->n_h; k++) {
				h = json_pack("{s:s, s:b}", "Name", rp->h[k].name, "Invert",
					      rp->h[k].invert);
				if (rp->h[k].kind == H_PRESENT)
					json_object_set_new(h, "Present", json_true());
				else
					json_object_set_new(h, hk[rp->h[k].kind],
							    json_string(rp->h[k].value));
				json_array_append_new(arr, h);
			}
			json_object_set_new(http, "Header", arr);
		}
		p = json_pack("{s:s, s:o}", "Action", rp->allow ? "allow" : "deny", "HTTP", http);
		json_array_append_new(perms, p);
	}
	json_object_set_new(o, "Permissions", perms);
	return o;
}

/* A random valid set of n intentions with distinct pairs. */
static int gen_set(struct rix *v, int max)
{
	int n = 0, tries, i;

	for (tries = 0; tries < max * 2 && n < max; tries++) {
		struct rix *x = &v[n];
		int dup = 0;

		memset(x, 0, sizeof(*x));
		x->sns = PICK(NS_POOL);
		x->sn = strcmp(x->sns, "*") == 0 ? "*" : PICK(NAME_POOL);
		x->dns = PICK(NS_POOL);
		x->dn = strcmp(x->dns, "*") == 0 ? "*" : PICK(NAME_POOL);
		for (i = 0; i < n && !dup; i++)
			dup = !strcmp(v[i].sns, x->sns) && !strcmp(v[i].sn, x->sn) &&
			      !strcmp(v[i].dns, x->dns) && !strcmp(v[i].dn, x->dn);
		if (dup)
			continue;
		snprintf(x->id, sizeof(x->id), "i%d", n);
		x->allow = (int)rnd(2);
		x->l7 = strcmp(x->dn, "*") != 0 && rnd(3) == 0;
		if (x->l7) {
			x->n_p = 1 + (int)rnd(4);
			for (i = 0; i < x->n_p; i++)
				gen_perm(&x->p[i]);
		}
		x->prec = ref_precedence(x);
		n++;
	}
	return n;
}

/* ---- Reference evaluation ------------------------------------------------ */

struct rcall {
	const char *sns, *sn, *dns, *dn;
	int http;
	const char *method;
	const char *path;
	struct intention_header h[3];
	int n_h;
};

static int side_match(const char *pns, const char *pn, const char *ns, const char *n)
{
	return (strcmp(pns, "*") == 0 || strcmp(pns, ns) == 0) &&
	       (strcmp(pn, "*") == 0 || strcmp(pn, n) == 0);
}

static int ref_header(const struct rhdr *h, const struct rcall *c)
{
	char joined[64] = "";
	int found = 0, k, m;

	for (k = 0; k < c->n_h; k++) {
		if (strcasecmp(c->h[k].name, h->name) == 0) {
			if (found++)
				strcat(joined, ",");
			strcat(joined, c->h[k].value);
		}
	}
	if (!found)
		return h->kind == H_PRESENT && h->invert;
	switch (h->kind) {
	case H_PRESENT: m = 1; break;
	case H_EXACT: m = strcmp(joined, h->value) == 0; break;
	case H_PREFIX: m = strncmp(joined, h->value, strlen(h->value)) == 0; break;
	case H_SUFFIX:
		m = strlen(joined) >= strlen(h->value) &&
		    strcmp(joined + strlen(joined) - strlen(h->value), h->value) == 0;
		break;
	default: m = regexec(&h->re, joined, 0, NULL, 0) == 0; break;
	}
	return h->invert ? !m : m;
}

static int ref_perm(const struct rperm *p, const struct rcall *c)
{
	char path[64];
	int k, ok;

	snprintf(path, sizeof(path), "%s", c->path);
	path[strcspn(path, "?#")] = '\0';
	if (p->n_methods) {
		for (ok = 0, k = 0; k < p->n_methods; k++)
			ok |= strcmp(p->methods[k], c->method) == 0;
		if (!ok)
			return 0;
	}
	if (p->path_kind == P_EXACT && strcmp(path, p->path) != 0)
		return 0;
	if (p->path_kind == P_PREFIX && strncmp(path, p->path, strlen(p->path)) != 0)
		return 0;
	if (p->path_kind == P_REGEX && regexec(&p->path_re, path, 0, NULL, 0) != 0)
		return 0;
	for (k = 0; k < p->n_h; k++)
		if (!ref_header(&p->h[k], c))
			return 0;
	return 1;
}

struct rdec {
	int allow, reason, ix, perm;
};

/* v sorted by ref_order. */
static struct rdec ref_decide(const struct rix *v, int n, const struct rcall *c, int def_allow)
{
	struct rdec d = { def_allow, INTENTION_BY_DEFAULT, -1, -1 };
	int i, k;

	for (i = 0; i < n; i++) {
		if (!side_match(v[i].sns, v[i].sn, c->sns, c->sn) ||
		    !side_match(v[i].dns, v[i].dn, c->dns, c->dn))
			continue;
		d.ix = i;
		if (!v[i].l7) {
			d.allow = v[i].allow;
			d.reason = INTENTION_BY_ACTION;
			return d;
		}
		if (!c->http) {
			d.allow = 0;
			d.reason = INTENTION_BY_L7_NOT_HTTP;
			return d;
		}
		for (k = 0; k < v[i].n_p; k++) {
			if (ref_perm(&v[i].p[k], c)) {
				d.allow = v[i].p[k].allow;
				d.reason = INTENTION_BY_PERMISSION;
				d.perm = k;
				return d;
			}
		}
		d.reason = INTENTION_BY_NO_PERMISSION;
		return d;
	}
	return d;
}

/* ---- The property -------------------------------------------------------- */

static const char *const CALL_NS[] = { "default", "ns1", "ns2" };    /* ns2: fresh */
static const char *const CALL_NAMES[] = { "web", "api", "zz" };     /* zz: fresh */
static const char *const CALL_METHODS[] = { "GET", "POST", "PUT", "DELETE", "PROPFIND" };
static const char *const CALL_PATHS[] = { "/a", "/a/b", "/a/12", "/b", "/a?x", "/ab", "/",
					  "/a/?q=1" };
static const char *const CALL_HNAMES[] = { "x-a", "X-A", "x-b", "x-c" };
static const char *const CALL_HVALUES[] = { "1", "10", "a1", "a", "" };

static void random_call(struct rcall *c, const struct rix *v, int n)
{
	int k;

	memset(c, 0, sizeof(*c));
	c->sns = PICK(CALL_NS);
	c->sn = PICK(CALL_NAMES);
	c->dns = PICK(CALL_NS);
	c->dn = PICK(CALL_NAMES);
	if (n && rnd(2)) { /* aim at an intention's exact sides */
		const struct rix *x = &v[rnd((uint32_t)n)];

		if (strcmp(x->sns, "*"))
			c->sns = x->sns;
		if (strcmp(x->sn, "*"))
			c->sn = x->sn;
		if (strcmp(x->dns, "*"))
			c->dns = x->dns;
		if (strcmp(x->dn, "*"))
			c->dn = x->dn;
	}
	c->http = rnd(5) != 0;
	c->method = PICK(CALL_METHODS);
	c->path = PICK(CALL_PATHS);
	c->n_h = (int)rnd(4);
	for (k = 0; k < c->n_h; k++) {
		c->h[k].name = PICK(CALL_HNAMES);
		c->h[k].value = PICK(CALL_HVALUES);
	}
}

static uint64_t seed;
static int set_no;
static long grid_checks;

/* A grid of requests with the witnesses a wrong containment or
 * contradiction proof would need (for the pools above). */
static const char *const GRID_METHODS[] = { "GET", "POST", "PUT", "PROPFIND" };
static const char *const GRID_PATHS[] = { "/", "/a", "/a/", "/a/1", "/a/b", "/ab", "/b", "/a?x" };
static const char *const GRID_VALUES[] = { NULL, "", "1", "10", "a", "a1", "b1", "ba" };

#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		if (!(cond)) {                                                            \
			print_message("seed %llu, set %d: ", (unsigned long long)seed, set_no); \
			fail_msg(__VA_ARGS__);                                             \
		}                                                                         \
	} while (0)

static void check_unreachable(const struct rix *x, int perm, const char *msg);

static void check_set(void)
{
	struct rix v[10];
	struct intention *ixs[10];
	struct intention_set *set = NULL;
	struct intention_report *rep = NULL;
	static const char *const U1[] = { "default" }, *const U2[] = { "default", "ns1" };
	struct intention_universe u;
	int n = gen_set(v, (int)rnd(11)), i, k, a, b, c2, d;
	int reached[10] = { 0 }, shadowed[10] = { 0 }, never[10] = { 0 };
	int dead_perm[10][4] = { { 0 } };
	char *err = NULL;
	const char *const *uni_ns;
	size_t nu, f;

	for (i = 0; i < n; i++) {
		json_t *j = rix_json(&v[i]);

		CHECK(intention_from_json(j, NULL, &ixs[i], &err) == WEFT_OK, "decode: %s", err);
		CHECK(intention_precedence(ixs[i]) == v[i].prec, "precedence of %s", v[i].id);
		json_decref(j);
	}
	CHECK(intention_set_new(ixs, (size_t)n, &set, &err) == WEFT_OK, "set: %s", err);
	qsort(v, (size_t)n, sizeof(v[0]), ref_order);
	for (i = 0; i < n; i++)
		CHECK(strcmp(intention_id(intention_set_get(set, (size_t)i)), v[i].id) == 0,
		      "order at %d: %s, want %s", i, intention_id(intention_set_get(set, (size_t)i)),
		      v[i].id);

	/* Decisions. */
	for (k = 0; k < CALLS; k++) {
		struct rcall rc;
		struct intention_call ec;
		struct intention_decision ed;
		struct rdec rd;
		int def = (int)rnd(2);

		random_call(&rc, v, n);
		ec = (struct intention_call){ rc.sns, rc.sn, rc.dns, rc.dn, rc.http, rc.method,
					      rc.path, rc.h, (size_t)rc.n_h };
		intention_set_decide(set, &ec, def ? INTENTION_ALLOW : INTENTION_DENY, &ed);
		rd = ref_decide(v, n, &rc, def);
		if (ed.intention && ((int)ed.reason != rd.reason || ed.permission != rd.perm)) {
			json_t *dump = intention_to_json(ed.intention);
			char *text = json_dumps(dump, JSON_COMPACT);
			int q;

			print_message("deciding intention: %s\nheaders:", text);
			for (q = 0; q < rc.n_h; q++)
				print_message(" %s=\"%s\"", rc.h[q].name, rc.h[q].value);
			print_message("\n");
			free(text);
			json_decref(dump);
		}
		CHECK((int)ed.action == rd.allow && (int)ed.reason == rd.reason &&
		      ed.permission == rd.perm &&
		      (rd.ix < 0 ? ed.intention == NULL
				 : ed.intention && !strcmp(intention_id(ed.intention), v[rd.ix].id)),
		      "%s/%s -> %s/%s http=%d %s %s: engine %d/%d/%s/%d, reference %d/%d/%s/%d",
		      rc.sns, rc.sn, rc.dns, rc.dn, rc.http, rc.method, rc.path, ed.action,
		      ed.reason, ed.intention ? intention_id(ed.intention) : "-", ed.permission,
		      rd.allow, rd.reason, rd.ix >= 0 ? v[rd.ix].id : "-", rd.perm);
		if (rd.reason == INTENTION_BY_PERMISSION)
			dead_perm[rd.ix][rd.perm] = -1; /* reached: must not be reported */
	}

	/* Match, against a filter of the sorted reference. */
	for (k = 0; k < 2; k++) {
		const struct intention **m = NULL;
		size_t nm = 0, j = 0;
		const char *ns = PICK(CALL_NS), *name = PICK(CALL_NAMES);
		int by_src = (int)rnd(2);

		CHECK(intention_set_match(set, by_src ? INTENTION_MATCH_SOURCE
						      : INTENTION_MATCH_DESTINATION,
					  ns, name, &m, &nm, &err) == WEFT_OK, "match: %s", err);
		for (i = 0; i < n; i++) {
			if (!(by_src ? side_match(v[i].sns, v[i].sn, ns, name)
				     : side_match(v[i].dns, v[i].dn, ns, name)))
				continue;
			CHECK(j < nm && !strcmp(intention_id(m[j]), v[i].id),
			      "match %s %s/%s: position %zu", by_src ? "source" : "destination", ns,
			      name, j);
			j++;
		}
		CHECK(j == nm, "match %s/%s: %zu extra", ns, name, nm - j);
		free(m);
	}

	/* Analysis: a universe, then every class of L4 call in it. */
	switch (rnd(3)) {
	case 0: uni_ns = NULL; nu = 0; break;
	case 1: uni_ns = U1; nu = 1; break;
	default: uni_ns = U2; nu = 2; break;
	}
	u = (struct intention_universe){ uni_ns, nu };
	CHECK(intention_set_analyze(set, &u, &rep, &err) == WEFT_OK, "analyze: %s", err);
	for (f = 0; f < intention_report_count(rep); f++) {
		const struct intention_finding *fi = intention_report_get(rep, f);

		for (i = 0; i < n && strcmp(v[i].id, intention_id(fi->intention)); i++)
			;
		CHECK(i < n, "finding about an unknown intention");
		if (fi->kind == INTENTION_SHADOWED)
			shadowed[i] = 1;
		else if (fi->kind == INTENTION_NEVER_MATCHES)
			never[i] = 1;
		else {
			CHECK(dead_perm[i][fi->permission] == 0,
			      "%s Permissions[%d] reported %s but a request reaches it: %s", v[i].id,
			      fi->permission, intention_finding_kind_string(fi->kind), fi->message);
			check_unreachable(&v[i], fi->permission, fi->message);
		}
	}
	for (a = 0; a < (nu ? (int)nu : 3); a++) {
		for (b = 0; b < 3; b++) {
			for (c2 = 0; c2 < (nu ? (int)nu : 3); c2++) {
				for (d = 0; d < 3; d++) {
					struct rcall rc;
					struct rdec rd;

					memset(&rc, 0, sizeof(rc));
					rc.sns = nu ? uni_ns[a] : CALL_NS[a];
					rc.sn = CALL_NAMES[b];
					rc.dns = nu ? uni_ns[c2] : CALL_NS[c2];
					rc.dn = CALL_NAMES[d];
					rd = ref_decide(v, n, &rc, 0);
					if (rd.ix >= 0)
						reached[rd.ix] = 1;
				}
			}
		}
	}
	for (i = 0; i < n; i++) {
		CHECK(!(reached[i] && (shadowed[i] || never[i])),
		      "%s is reported %s but decides some call", v[i].id,
		      shadowed[i] ? "shadowed" : "never-matches");
		CHECK(reached[i] || shadowed[i] || never[i],
		      "%s decides no call but is not reported", v[i].id);
	}
	/* Writing one of them last: analyze_new must report, about it, what
	 * the full analysis reports. */
	if (n > 0) {
		struct intention *rest[10], *x = NULL;
		struct intention_set *before = NULL;
		struct intention_report *nrep = NULL;
		char want[256] = "", got[256] = "";
		int w = (int)rnd((uint32_t)n), q = 0;

		for (i = 0; i < n; i++) {
			json_t *j = rix_json(&v[i]);

			CHECK(intention_from_json(j, NULL, i == w ? &x : &rest[q], &err) == WEFT_OK,
			      "decode: %s", err);
			q += i != w;
			json_decref(j);
		}
		CHECK(intention_set_new(rest, (size_t)q, &before, &err) == WEFT_OK, "set: %s", err);
		CHECK(intention_set_analyze_new(before, x, &u, &nrep, &err) == WEFT_OK,
		      "analyze_new: %s", err);
		for (f = 0; f < intention_report_count(rep); f++) {
			const struct intention_finding *fi = intention_report_get(rep, f);

			if (!strcmp(intention_id(fi->intention), v[w].id))
				snprintf(want + strlen(want), sizeof(want) - strlen(want), "%d.%d ",
					 (int)fi->kind, fi->permission);
		}
		for (f = 0; f < intention_report_count(nrep); f++) {
			const struct intention_finding *fi = intention_report_get(nrep, f);

			if (fi->intention == x)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%d.%d ",
					 (int)fi->kind, fi->permission);
		}
		CHECK(!strcmp(want, got), "analyze_new about %s: \"%s\", full analysis \"%s\"",
		      v[w].id, got, want);
		intention_report_free(nrep);
		intention_set_free(before);
		intention_free(x);
	}
	intention_report_free(rep);
	intention_set_free(set);
	for (i = 0; i < n; i++)
		free_rix(&v[i]);
}

/* No request of the grid is decided by Permissions[perm] of x. */
static void check_unreachable(const struct rix *x, int perm, const char *msg)
{
	size_t m, p, a, b;
	int k;

	for (m = 0; m < sizeof(GRID_METHODS) / sizeof(GRID_METHODS[0]); m++)
	for (p = 0; p < sizeof(GRID_PATHS) / sizeof(GRID_PATHS[0]); p++)
	for (a = 0; a < sizeof(GRID_VALUES) / sizeof(GRID_VALUES[0]); a++)
	for (b = 0; b < sizeof(GRID_VALUES) / sizeof(GRID_VALUES[0]); b++) {
		struct rcall c;

		memset(&c, 0, sizeof(c));
		c.http = 1;
		c.method = GRID_METHODS[m];
		c.path = GRID_PATHS[p];
		if (GRID_VALUES[a])
			c.h[c.n_h].name = "x-a", c.h[c.n_h++].value = GRID_VALUES[a];
		if (GRID_VALUES[b])
			c.h[c.n_h].name = "x-b", c.h[c.n_h++].value = GRID_VALUES[b];
		grid_checks++;
		if (!ref_perm(&x->p[perm], &c))
			continue;
		for (k = 0; k < perm && !ref_perm(&x->p[k], &c); k++)
			;
		CHECK(k < perm,
		      "%s Permissions[%d] is reported (%s) but %s %s x-a=%s x-b=%s reaches it",
		      x->id, perm, msg, c.method, c.path, GRID_VALUES[a] ? GRID_VALUES[a] : "-",
		      GRID_VALUES[b] ? GRID_VALUES[b] : "-");
	}
}

static void test_random_sets(void **state)
{
	const char *env = getenv("WEFT_PROP_SEED");

	(void)state;
	seed = env ? strtoull(env, NULL, 10) : 20261126ULL;
	for (set_no = 0; set_no < SETS; set_no++) {
		rng = (seed + (uint64_t)set_no) * 0x9E3779B97F4A7C15ULL + 1;
		rnd(2);
		check_set();
	}
	print_message("%d sets, %ld grid requests against reported permissions\n", SETS,
		      grid_checks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_sets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

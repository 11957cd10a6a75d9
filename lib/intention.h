/* Intentions: Consul-compatible service-to-service authorization rules and
 * the one engine that evaluates them. weft-server's check/match/analysis
 * endpoints, `weftctl intention explain`, the UI and the proxy all decide
 * calls through intention_set_decide(), so they cannot disagree.
 *
 * Model (Consul's intention JSON, field names matched case-insensitively):
 *   ID, Description, SourceNS, SourceName, DestinationNS, DestinationName,
 *   SourceType ("consul"), Action ("allow" | "deny"; omitted when Permissions
 *   are given), Permissions [{Action, HTTP: {PathExact | PathPrefix |
 *   PathRegex, Methods [..], Header [{Name, Present | Exact | Prefix | Suffix
 *   | Regex, Invert}]}}], Meta, Precedence (computed; input ignored),
 *   CreateIndex, ModifyIndex. SourcePartition, DestinationPartition,
 *   SourcePeer are accepted and ignored. SourceNS/DestinationNS default to
 *   "default". A name is "*" (any) or contains no '*'; an exact name cannot
 *   follow a "*" namespace. Permissions make an intention L7 and are refused
 *   on a wildcard destination (as Consul's service-intentions validation).
 *
 * Regexes (PathRegex, Header Regex) are RE2 syntax as far as POSIX ERE can
 * follow it, compiled by lib/rx.h (\d, \w, (?i), (?:...) translated;
 * back-references and patterns whose expansion would cost too much are
 * refused), matched against the WHOLE value as Envoy matches RE2
 * safe_regex. At most 256 bytes.
 *
 * Precedence (Consul agent/structs UpdatePrecedence): with exactness counts
 * c(ns,name) = 0 for "*"/"*", 1 for ns/"*", 2 for ns/name,
 *   Precedence = 3 * c(destination) + c(source) + 1      (9 .. 1)
 * Evaluation order (also list/match order): Precedence descending, then
 * SourceNS, SourceName, DestinationNS, DestinationName ascending (bytewise),
 * Consul's IntentionPrecedenceSorter. A set holds at most one intention per
 * (SourceNS, SourceName, DestinationNS, DestinationName), so for any call at
 * most one intention of each precedence matches and the order among equal
 * precedences never changes a decision.
 *
 * Decision (intention_set_decide), with sources of truth in Consul:
 *   - The intention that decides is the FIRST one, in evaluation order, whose
 *     source and destination patterns match the call (Consul's
 *     IntentionDecision, /v1/connect/intentions/check). No intention matches:
 *     the default action decides.
 *   - L4 intention: its Action.
 *   - L7 intention, L4 call (no HTTP request; this is what
 *     /v1/connect/intentions/check and /v1/agent/connect/authorize answer):
 *     DENY. Consul's IntentionDecision is called with allowPermissions=false
 *     for these, and xds/rbac.go turns L7 intentions into deny rules on TCP
 *     listeners. (Consul's service topology view passes allowPermissions=
 *     true: a caller asking "may some request get through" should read
 *     INTENTION_BY_L7_NOT_HTTP as "depends on the request", not as deny.)
 *   - L7 intention, HTTP request: the permissions are tried in order and the
 *     first that matches decides with its Action. If none matches, the
 *     DEFAULT ACTION decides: evaluation does NOT fall through to
 *     lower-precedence intentions (xds/rbac.go: a lower intention with a
 *     broader source excludes the L7 intention's source; permissions whose
 *     action equals the default are dropped, "handled by the default
 *     catch-all";
 *     service-intentions docs: traffic that matches no permission "will be
 *     subject to the default intention behavior").
 *   - A permission matches when all its parts match: the path (PathExact:
 *     equal; PathPrefix: starts with; PathRegex: whole path matches) compared
 *     with the request path up to the first '?' or '#' (Envoy url_path);
 *     Methods: the request method equals one of them (case-sensitive; the
 *     permission's are uppercased when decoded); each Header rule. A header's
 *     value is all its values (name compared case-insensitively) joined with
 *     ",". Absent header: the rule matches only if it is Present with Invert.
 *     Present header: match(value) XOR Invert, where Present matches any
 *     value (Envoy HeaderUtility::matchHeaders).
 *   Known divergence: Consul's Envoy RBAC translation only excludes a
 *   higher-precedence source from a lower intention when the higher source
 *   is more specific (ixnSourceMatches), so e.g. "any source to db: deny"
 *   (precedence 7) over "default/web to any service in default: allow" (6)
 *   lets web reach db through Envoy while Consul's check says deny. Weft
 *   decides by precedence everywhere.
 *
 * A set is immutable once built: decide, match, find and analyze may run on
 * it from several threads at once (glibc's regexec locks a shared regex_t).
 * Cost: building O(n log n); a decision at most 9 hash probes plus the
 * deciding intention's permissions; analysis O(n) probes for a fixed set
 * of namespaces.
 *
 * Every string an intention hands out lives as long as the intention; an
 * intention in a set lives as long as the set. Functions returning int use
 * enum weft_err codes and set *err (caller frees) on failure. */
#ifndef WEFT_INTENTION_H
#define WEFT_INTENTION_H

#include <jansson.h>
#include <stddef.h>

#define INTENTION_WILDCARD "*"
#define INTENTION_DEFAULT_NS "default"

/* Limits (Consul's for Description and Meta; Weft's own for the rest). */
#define INTENTION_NAME_MAX 256
#define INTENTION_DESCRIPTION_MAX 512
#define INTENTION_META_PAIRS_MAX 64
#define INTENTION_META_KEY_MAX 128
#define INTENTION_META_VALUE_MAX 512
#define INTENTION_PERMISSIONS_MAX 64
#define INTENTION_HEADERS_MAX 32
#define INTENTION_MATCH_MAX 1024 /* a path or header value to match */
#define INTENTION_REGEX_MAX 256

enum intention_action {
	INTENTION_DENY = 0,
	INTENTION_ALLOW = 1,
};

struct intention;

/* ---- One intention ------------------------------------------------------ */

/* Decodes and validates one intention; ctx prefixes field names in errors
 * ("Sources[2]") or is NULL. Errors name the field:
 * "Permissions[1].HTTP.PathRegex: ...". Precedence is computed. */
int intention_from_json(json_t *obj, const char *ctx, struct intention **out, char **err);
/* The same, with the regex budget (lib/rx.h) shared by several intentions
 * that come in one document, the sources of a service-intentions entry:
 * start *rx_budget at RX_MAX_COST; what this one's regexes cost is taken
 * off it. intention_from_json gives each intention a budget of its own. */
int intention_from_json_budget(json_t *obj, const char *ctx, long *rx_budget,
			       struct intention **out, char **err);
/* Consul's JSON form (Action omitted for L7, Precedence included). */
json_t *intention_to_json(const struct intention *ix);
void intention_free(struct intention *ix);

const char *intention_id(const struct intention *ix);           /* "" if unset */
const char *intention_source_ns(const struct intention *ix);
const char *intention_source_name(const struct intention *ix);
const char *intention_destination_ns(const struct intention *ix);
const char *intention_destination_name(const struct intention *ix);
const char *intention_description(const struct intention *ix);  /* "" if unset */
int intention_precedence(const struct intention *ix);
int intention_is_l7(const struct intention *ix);
/* The L4 Action; meaningless for an L7 intention. */
enum intention_action intention_action(const struct intention *ix);
size_t intention_permission_count(const struct intention *ix);
enum intention_action intention_permission_action(const struct intention *ix, size_t i);
long long intention_create_index(const struct intention *ix);
long long intention_modify_index(const struct intention *ix);

/* For the server, before the intention goes into a set. */
int intention_set_id(struct intention *ix, const char *id, char **err);
void intention_set_raft_indexes(struct intention *ix, long long create, long long modify);

/* Consul's precedence for these four (ns NULL = "default"). */
int intention_compute_precedence(const char *src_ns, const char *src_name,
				 const char *dst_ns, const char *dst_name);

/* ---- A set (one mesh's intentions), compiled for lookups ----------------- */

struct intention_set;

/* Takes ownership of the n intentions in every case (they are freed on
 * failure). Fails if two intentions have the same source and destination
 * (the error names both). n may be 0. */
int intention_set_new(struct intention **ixs, size_t n, struct intention_set **out,
		      char **err);
/* The same from a JSON array of intentions; errors name "[i].Field". */
int intention_set_from_json(json_t *array, struct intention_set **out, char **err);
void intention_set_free(struct intention_set *set);

/* The intentions in evaluation order. */
size_t intention_set_count(const struct intention_set *set);
const struct intention *intention_set_get(const struct intention_set *set, size_t i);
/* The intention with exactly these source and destination (ns NULL =
 * "default"), or NULL. */
const struct intention *intention_set_find(const struct intention_set *set,
					   const char *src_ns, const char *src_name,
					   const char *dst_ns, const char *dst_name);
const struct intention *intention_set_find_id(const struct intention_set *set,
					      const char *id);

/* ---- Deciding a call ------------------------------------------------------ */

struct intention_header {
	const char *name;
	const char *value;
};

/* Caller-filled. ns NULL = "default". http = 0: a connection (L4; what
 * Consul's check answers); http = 1: an HTTP request described by method,
 * path (with or without query) and headers (NULLs mean empty/absent). */
struct intention_call {
	const char *source_ns;
	const char *source_name;
	const char *destination_ns;
	const char *destination_name;
	int http;
	const char *method;
	const char *path;
	const struct intention_header *headers;
	size_t n_headers;
};

enum intention_reason {
	INTENTION_BY_DEFAULT = 0,       /* no intention matches the call */
	INTENTION_BY_ACTION,            /* an L4 intention's Action */
	INTENTION_BY_PERMISSION,        /* Permissions[permission] of an L7 intention */
	INTENTION_BY_NO_PERMISSION,     /* L7 intention, no permission matched: default */
	INTENTION_BY_L7_NOT_HTTP,       /* L7 intention, L4 call: deny */
};

struct intention_decision {
	enum intention_action action;
	enum intention_reason reason;
	const struct intention *intention; /* the deciding intention, NULL by default */
	int permission;                    /* index for INTENTION_BY_PERMISSION, else -1 */
};

/* Always succeeds. A call names concrete services: one with a NULL or empty
 * name, or a '*' in a name or namespace, matches no intention (the default
 * decides). */
void intention_set_decide(const struct intention_set *set, const struct intention_call *call,
			  enum intention_action default_action,
			  struct intention_decision *out);
/* {"Allowed": bool, "DecidedBy": "intention"|"default", "ReasonKind":
 *  intention_reason_kind(), "Reason": intention_reason_string(),
 *  "Intention": {ID, SourceNS, SourceName, DestinationNS, DestinationName,
 *  Precedence, Action?} or absent, "Permission": i or absent}. */
json_t *intention_decision_to_json(const struct intention_decision *d);
/* "default", "action", "permission", "no-permission", "l7-not-http". */
const char *intention_reason_kind(enum intention_reason r);
/* A sentence for people. */
const char *intention_reason_string(enum intention_reason r);

enum intention_match_by {
	INTENTION_MATCH_SOURCE,
	INTENTION_MATCH_DESTINATION,
};

/* Consul's /v1/connect/intentions/match: the intentions whose source (or
 * destination) pattern matches ns/name (ns NULL = "default"), in evaluation
 * order. *out is an allocated array (free() it) of *n borrowed pointers. */
int intention_set_match(const struct intention_set *set, enum intention_match_by by,
			const char *ns, const char *name,
			const struct intention ***out, size_t *n, char **err);

/* ---- Analysis --------------------------------------------------------------
 * Exact for intentions, sound for permissions:
 *  - "shadowed": the intention decides no call at all, because for every call
 *    it matches a higher-precedence intention matches too. Decided exactly
 *    (reported iff no such call exists): service names range over all
 *    strings, and namespaces over the universe given (all strings when
 *    n_namespaces is 0). With all namespaces possible no intention can be
 *    shadowed (a higher precedence is always more exact on one side), so this
 *    appears when the namespaces are known (Weft: {"default"}).
 *  - "never-matches": the intention matches no call (a namespace outside the
 *    universe).
 *  - "permission-preempted": for every request that Permissions[i] matches,
 *    an earlier permission of the same intention matches (so decides) first.
 *    Sound (never reported when some request reaches the permission);
 *    complete for exact/prefix/suffix/present matchers and methods, while
 *    regexes are compared only by identical text or by testing an exact
 *    value against them.
 *  - "permission-never-matches": Permissions[i] matches no request (two
 *    contradictory rules on one header; a PathExact or PathPrefix containing
 *    '?' or '#', which the matched path never contains). Sound, same limits.
 * Findings point into the set's intentions: a report must not outlive it. */

struct intention_universe {
	const char *const *namespaces; /* the namespaces that exist */
	size_t n_namespaces;           /* 0: any namespace may exist */
};

enum intention_finding_kind {
	INTENTION_SHADOWED,
	INTENTION_NEVER_MATCHES,
	INTENTION_PERMISSION_PREEMPTED,
	INTENTION_PERMISSION_NEVER_MATCHES,
};

struct intention_finding {
	enum intention_finding_kind kind;
	const struct intention *intention;
	int permission;                     /* index, or -1 for intention findings */
	size_t n_by;
	const struct intention *const *by;  /* SHADOWED: the intentions that cover it */
	const int *by_permissions;          /* PERMISSION_PREEMPTED: earlier indexes */
	const char *message;                /* human-readable, names the rules */
};

struct intention_report;

/* universe may be NULL (any namespace). */
int intention_set_analyze(const struct intention_set *set,
			  const struct intention_universe *universe,
			  struct intention_report **out, char **err);
/* The findings that writing ix would create: those about ix itself and any
 * other intention that ix would newly shadow. ix replaces the intention with
 * the same source and destination if there is one. ix is not consumed; the
 * report borrows it and the set (keep both alive while using it). */
int intention_set_analyze_new(const struct intention_set *set, const struct intention *ix,
			      const struct intention_universe *universe,
			      struct intention_report **out, char **err);
size_t intention_report_count(const struct intention_report *r);
const struct intention_finding *intention_report_get(const struct intention_report *r,
						     size_t i);
const char *intention_finding_kind_string(enum intention_finding_kind k);
/* [{"Kind", "ID", "SourceNS", "SourceName", "DestinationNS", "DestinationName",
 *   "Permission"?, "By": [IDs]?, "ByPermissions": [i]?, "Message"}] */
json_t *intention_report_to_json(const struct intention_report *r);
void intention_report_free(struct intention_report *r);

#endif

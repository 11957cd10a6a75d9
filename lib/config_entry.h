/* Consul-compatible config entries: decoding, field-by-field validation,
 * normalisation, and the cross-entry checks Consul makes when an entry is
 * written or deleted (its discovery-chain compilation).
 *
 * Kinds: service-defaults, proxy-defaults, service-router, service-splitter,
 * service-resolver, service-intentions, mesh. Field names match as Consul's
 * decoder matches them: ignoring case, and in their snake_case form
 * ("mesh_gateway" for MeshGateway); unknown fields are refused. Errors are
 * WEFT_EINVAL with *err starting with the field path:
 *   "Routes[2].Destination.ServiceSubset: ..." */
#ifndef WEFT_CONFIG_ENTRY_H
#define WEFT_CONFIG_ENTRY_H

#include <jansson.h>

#define CONFIG_ENTRY_NAME_MAX 256

/* Returns 1 for the kinds above. */
int config_entry_kind_valid(const char *kind);

/* Decodes and validates one entry (a JSON object as a client sends it to
 * PUT /v1/config, or a document of a YAML file). On success *out is a new
 * canonical object in Consul's field casing: Kind and Name first, only the
 * fields that were given (Consul's omitempty), durations as Go strings
 * ("15s"), HTTP methods upper case, protocols lower case, split weights
 * rounded to 0.01; CreateIndex/ModifyIndex and Precedence (read-only) are
 * dropped. This is what the server stores and serves. */
int config_entry_decode(json_t *in, json_t **out, char **err);

/* Decodes every document of a YAML or JSON file, as weftctl config write
 * reads one (empty documents are skipped). On success *out is a new array of
 * canonical entries; on error *err is "FILE:LINE:COL: Field.Path: message"
 * (or libyaml's syntax error at its position). */
int config_entry_decode_file(const char *data, size_t len, const char *file, json_t **out,
			     char **err);

/* Kind and Name of a canonical entry (borrowed). */
const char *config_entry_kind(const json_t *entry);
const char *config_entry_name(const json_t *entry);

/* The Sources array of a canonical service-intentions entry (borrowed),
 * for conversion into intentions. NULL for other kinds. */
json_t *config_entry_intention_sources(const json_t *entry);

/* Access to the stored entries for the cross-entry checks. get returns a new
 * reference to the canonical entry of (kind, name), or NULL. list returns a
 * new reference to an array of every canonical entry of a kind; it may be
 * NULL, in which case only the chains of the written entry's own service and
 * of the services it names are checked (with list, every chain that the
 * change affects is, as Consul does). */
struct config_entry_lookup {
	json_t *(*get)(void *arg, const char *kind, const char *name);
	json_t *(*list)(void *arg, const char *kind);
	void *arg;
};

/* Checks that writing the canonical entry (kind, name) keeps every affected
 * discovery chain valid: split weights (again), router destinations naming a
 * ServiceSubset that the target's resolver defines, no circular resolver
 * redirects or splitters, one protocol along a chain, and routers, splitters
 * and resolver hash policies on header/cookie/query only for services whose
 * protocol (service-defaults Protocol, else proxy-defaults Config.protocol,
 * else tcp) is http, http2 or grpc. Also refuses a service-defaults or
 * proxy-defaults whose protocol would break an existing router or splitter.
 * *err starts with the field of the written entry at fault. */
int config_entry_check_write(const char *kind, const char *name, json_t *entry,
			     const struct config_entry_lookup *lookup, char **err);

/* The same checks with (kind, name) removed: deleting a resolver whose
 * subsets a router or splitter uses is refused, as Consul refuses it. */
int config_entry_check_delete(const char *kind, const char *name,
			      const struct config_entry_lookup *lookup, char **err);

#endif

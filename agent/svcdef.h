/* Consul's service definitions, as weft-agent reads them from the files of
 * its config directory (JSON or YAML) and from PUT /v1/agent/service/register:
 * a service with its checks and, with connect.sidecar_service, the sidecar
 * proxy registered beside it.
 *
 * Field names match ignoring case and '_' ("sidecar_service" and
 * "SidecarService", "local_bind_port" and "LocalBindPort"), as Consul's
 * decoder does. Unknown fields are refused (a typo in a file must not be
 * silently ignored), except inside Meta, Header and Config maps. Errors name
 * the field path: "service.checks[1].interval: required for an http check".
 *
 * Every decoded service is one canonical JSON object, the form the agent
 * keeps, persists, shows on its API and sends to the server:
 *   {"ID", "Service", "Tags", "Address", "Port", "Meta", "Weights",
 *    "EnableTagOverride", "Kind", "Proxy", "Mesh",
 *    "Checks": [{"CheckID", "Name", "Notes", "ServiceID", "Type", "Status",
 *                "HTTP", "Method", "Header", "Body", "TLSSkipVerify",
 *                "TCP", "TTL", "Args", "Interval", "Timeout",
 *                "DeregisterCriticalServiceAfter", "AliasService"}],
 *    "SidecarFor": parent service ID (sidecars only)}
 * with durations as Go duration strings, absent fields left out. */
#ifndef WEFT_SVCDEF_H
#define WEFT_SVCDEF_H

#include <jansson.h>

/* Where sidecar ports are picked when a definition gives none (Consul's). */
#define SVCDEF_SIDECAR_PORT_MIN 21000
#define SVCDEF_SIDECAR_PORT_MAX 21255

/* Decodes one service definition object (the value of a file's "service"
 * key, or an API body) into canonical services appended to out (a JSON
 * array): the service, then its sidecar if it has one. ctx names the object
 * in errors ("service", "services[2]", or NULL for an API body). A sidecar
 * without a port gets port 0 here: svcdef_assign_ports picks it. */
int svcdef_decode_service(json_t *def, const char *ctx, json_t *out, char **err);

/* Decodes one check definition (a file's "check"/"checks", or PUT
 * /v1/agent/check/register's body) into a canonical check. service_id is
 * the owning service's ID ("" for a node check); index numbers a service's
 * checks as Consul does ("service:<id>" alone, "service:<id>:<n>" when it
 * has several, n from 1; index 0 means "the only one"). */
int svcdef_decode_check(json_t *def, const char *ctx, const char *service_id, int index,
			json_t **out, char **err);

/* Decodes a config file's document: {"service": {...}}, {"services": [...]},
 * {"check": {...}}, {"checks": [...]} (any of them). Services are appended to
 * services, node checks to checks. */
int svcdef_decode_file(json_t *doc, json_t *services, json_t *checks, char **err);

/* Reads every *.json, *.yaml and *.yml file of dir (sorted by name) into
 * services and node-level checks. Errors say FILE:LINE:COL where the field is.
 * IDs must be unique across files. A missing directory is empty. */
int svcdef_load_dir(const char *dir, json_t **services, json_t **checks, char **err);

/* Gives every sidecar with port 0 a port in the sidecar range that no other
 * service of services (nor of keep, the services already known, whose
 * ports are kept for the same IDs) uses, and a sidecar defined without
 * checks Consul's default ones (its port listening, at its address or else
 * node_address; an alias of the service it fronts). */
int svcdef_assign_ports(json_t *services, const json_t *keep, const char *node_address,
			char **err);

#endif

/* What weftctl reads besides flags: JSON files, values for kv put, and
 * catalog registrations built from a file or from flags. Every error names
 * the file and, for syntax errors, the line and column:
 *   reg.json:3:14: string or '}' expected near ','
 *   reg.json: Service.Service: is required */
#ifndef WEFT_CTL_INPUT_H
#define WEFT_CTL_INPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "args.h"

#define INPUT_MAX_FILE ((size_t)16 << 20)

/* Reads a whole file ("-": stdin), at most INPUT_MAX_FILE bytes; *data is
 * allocated and NUL-terminated. */
int input_file(const char *path, char **data, size_t *len, char **err);

/* Reads and parses a JSON file; "-" reads stdin. NULL with *err on failure. */
json_t *input_json_file(const char *path, char **err);

/* A value for kv put: "-" reads in, "@FILE" reads FILE, anything else is
 * the value itself. *data is allocated (NUL-terminated), *len its length. */
int input_value(const char *arg, FILE *in, char **data, size_t *len, char **err);

/* Checks a catalog registration (Consul's /v1/catalog/register body):
 * an object with Node and Address, and a Service with a Service name and a
 * Port in range when there is one. where prefixes the message ("reg.json"). */
int input_check_registration(json_t *doc, const char *where, char **err);
/* Reads and checks a registration file. */
json_t *input_registration_file(const char *path, char **err);

struct reg_flags {
	const char *node, *address;
	const char *service, *service_id, *service_address;
	long long port;            /* -1: not given */
	struct arg_list tags;
	struct arg_list meta;      /* KEY=VALUE service metadata */
};
/* Builds a registration from flags; err names the flag that is missing or
 * wrong ("-node is required"). */
json_t *input_registration_flags(const struct reg_flags *f, char **err);

/* The body of PUT /v1/acl/token for weftctl token create: Consul's fields
 * (Description, ExpirationTTL, ServiceIdentities, NodeIdentities) and
 * Weft's Kind. The kind decides the scope: service tokens need a service,
 * agent tokens a node, the others neither. ttl_ms 0: no expiry. */
json_t *input_token_body(const char *kind, const char *service, const char *node,
			 const char *description, long long ttl_ms, char **err);

#endif

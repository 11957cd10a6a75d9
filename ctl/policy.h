/* What weftctl's intention, config and mesh commands do without a server:
 * reading and validating policy files with the library the server uses
 * (lib/intention.h, lib/config_entry.h), parsing -meta and -header flags,
 * and explaining a decision of the intention engine.
 *
 * File errors name the file, the line, the column and the field:
 *   web.yaml:4:9: Action: "permit": must be "allow" or "deny" */
#ifndef WEFT_CTL_POLICY_H
#define WEFT_CTL_POLICY_H

#include <jansson.h>
#include <stdio.h>

#include "args.h"
#include "intention.h"

/* Decodes the intentions of a YAML or JSON stream: every document is one
 * intention (an object) or a list of them. Each is validated with
 * intention_from_json() and appended to out in the form POST
 * /v1/connect/intentions takes (Consul's fields; no ID, Precedence or
 * indexes). file names the stream in errors. Fails on a stream without
 * any intention. */
int policy_intentions_decode(const char *data, size_t len, const char *file, json_t *out,
			     char **err);
/* The same for a file ("-": stdin). */
int policy_intentions_file(const char *path, json_t *out, char **err);

/* Reads a config-entry file ("-": stdin) with config_entry_decode_file():
 * *out is an array of canonical entries. */
int policy_config_file(const char *path, json_t **out, char **err);

/* -meta KEY=VALUE flags into a Meta object (NULL when there are none). The
 * value may contain '='; the key may not be empty; a key given twice keeps
 * the last value. Errors name the flag: -meta "x": missing '=' */
int policy_meta(const struct arg_list *flags, json_t **out, char **err);

/* -header NAME=VALUE (or NAME:VALUE) into *name and *value (allocated). */
int policy_header(const char *arg, char **name, char **value, char **err);

/* Splits "ns/name" or "name" (ns NULL then). The strings are allocated. */
int policy_target(const char *arg, const char *what, char **ns, char **name, char **err);

/* Consul's one-line form of an intention: "web => db (allow)",
 * "web => api (2 permissions)"; a namespace other than default shows as
 * "ns/name". Allocated. */
char *policy_intention_line(json_t *ix);

/* Whether the server's answer to /v1/connect/intentions/check (server) says
 * what the local engine decided (local, from intention_decision_to_json):
 * the same Allowed, and when the server says them, the same DecidedBy, the
 * same deciding intention (by source and destination) and permission.
 * Returns 1 if they agree; otherwise 0 and *why says how they differ. */
int policy_decisions_agree(json_t *local, json_t *server, char **why);

/* weftctl intention explain: decides call with the engine and writes the
 * explanation to out: the call, the decision, what decided it and why, the
 * intentions that match the call's source and destination in evaluation
 * order (with the one that decided marked), and, when server is not NULL,
 * the server's answer and whether it agrees. Returns 1 if the server agrees
 * or was not asked, 0 if it disagrees. When json is not NULL, *json receives
 * the same as an object {Call, Decision, Candidates, Server?, Agree?}. */
int policy_explain(FILE *out, const struct intention_set *set,
		   const struct intention_call *call, enum intention_action default_action,
		   json_t *server, json_t **json);

#endif

/* weftctl: what the command modules share.
 *
 * Each cmd_*.c exports a table of commands; main.c parses the global flags,
 * finds the command (one or two words: "members", "kv get") and runs it
 * with the remaining arguments. A command parses its own flags with
 * ctl_parse() (which adds the global flags, so they work anywhere), talks
 * to the server through ctl_http(), and returns the exit status:
 * 0 success, 1 error, 2 usage. */
#ifndef WEFT_CTL_H
#define WEFT_CTL_H

#include <jansson.h>
#include <stdio.h>

#include "args.h"
#include "httpc.h"

enum { CTL_OK = 0, CTL_ERR = 1, CTL_USAGE = 2, CTL_CONTINUE = -1 };

#define CTL_DEFAULT_ADDR "127.0.0.1:8500"

struct ctl {
	const char *address;   /* --address, else $WEFT_HTTP_ADDR, else 127.0.0.1:8500 */
	const char *token;     /* --token, else $WEFT_HTTP_TOKEN */
	const char *ca_file;   /* --ca-file */
	const char *output;    /* --output json|table */
	int json;              /* --output json */
	const char *mesh;      /* --mesh, for intentions and config entries; NULL: default */
	struct arg_opt gopts[7];
	struct httpc *http;
	/* Set before the first ctl_http() to make requests abortable (lock). */
	int (*abort_fn)(void *arg);
	void *abort_arg;
};

struct ctl_command;
typedef int (*ctl_run_fn)(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv);

struct ctl_command {
	const char *name;      /* "kv get"; NULL ends a table */
	const char *args;      /* "[flags] KEY" */
	const char *summary;   /* one line for the command list */
	const char *help;      /* paragraphs for "weftctl CMD -h" */
	ctl_run_fn run;
};

extern const struct ctl_command ctl_cmds_catalog[];
extern const struct ctl_command ctl_cmds_kv[];
extern const struct ctl_command ctl_cmds_lock[];
extern const struct ctl_command ctl_cmds_token[];
extern const struct ctl_command ctl_cmds_agent[];
extern const struct ctl_command ctl_cmds_intention[];
extern const struct ctl_command ctl_cmds_config[];
extern const struct ctl_command ctl_cmds_mesh[];
extern const struct ctl_command ctl_cmds_ca[];
extern const struct ctl_command ctl_cmds_tproxy[];

void ctl_init(struct ctl *g);
void ctl_cleanup(struct ctl *g);

/* Parses a command's flags (and the global ones). Returns CTL_CONTINUE, or
 * the exit status after printing help (0) or a usage error (2). */
int ctl_parse(struct ctl *g, const struct ctl_command *cmd, const struct arg_opt *opts,
	      int argc, char **argv, int stop_at_positional, const char ***pos, int *npos);
/* ctl_parse for commands that take flags only: a positional argument is a
 * usage error. */
int ctl_parse_flags(struct ctl *g, const struct ctl_command *cmd, const struct arg_opt *opts,
		    int argc, char **argv);
void ctl_help(FILE *out, struct ctl *g, const struct ctl_command *cmd,
	      const struct arg_opt *opts);

/* The client for the server, made on first use; NULL after printing why. */
struct httpc *ctl_http(struct ctl *g);
/* A JSON call; on failure prints "weftctl: <message>" and returns NULL with
 * *status CTL_ERR. On success returns the reply (json null for an empty
 * body) and *status CTL_OK. resp may be NULL. */
json_t *ctl_call(struct ctl *g, const char *method, const char *path, json_t *body,
		 struct httpc_resp *resp, int *status);

/* path with ?mesh=NAME (or &mesh=NAME) for the --mesh flag appended,
 * escaped; allocated, NULL after printing why. */
char *ctl_mesh_path(struct ctl *g, const char *path);
/* Appends "?key=value" or "&key=value" to b, the value escaped. */
struct buf;
int ctl_query_add(struct buf *b, const char *key, const char *value);

/* Prints "weftctl: ..." on stderr; returns CTL_ERR. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "weftctl: CMD: ..." and the usage line; returns CTL_USAGE. */
int ctl_usage(const struct ctl_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- output ---- */
/* Pretty JSON on stdout. */
void ctl_print_json(json_t *v);

struct table;
struct table *table_new(unsigned ncols);
/* Adds a row of ncols cells (copied; NULL prints as ""). */
void table_add(struct table *t, const char *const *cells);
/* Aligned columns separated by two spaces; the last column is not padded. */
void table_print(struct table *t, FILE *out);
void table_free(struct table *t);

/* A string member, or "" when absent or not a string. */
const char *ctl_str(json_t *obj, const char *name);

#endif

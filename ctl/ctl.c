#include "ctl.h"
#include "buf.h"
#include "err.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void ctl_init(struct ctl *g)
{
	memset(g, 0, sizeof(*g));
	g->gopts[0] = (struct arg_opt){ "address", ARG_STR, &g->address, "HOST:PORT",
		"weft-server's HTTP API, or http(s)://HOST:PORT ($WEFT_HTTP_ADDR; default "
		CTL_DEFAULT_ADDR ")", 0, 0 };
	g->gopts[1] = (struct arg_opt){ "token", ARG_STR, &g->token, "SECRET",
		"the token sent as X-Consul-Token ($WEFT_HTTP_TOKEN)", 0, 0 };
	g->gopts[2] = (struct arg_opt){ "ca-file", ARG_STR, &g->ca_file, "FILE",
		"PEM CA bundle that signed the https server's certificate", 0, 0 };
	g->gopts[3] = (struct arg_opt){ "output", ARG_STR, &g->output, "json|table",
		"print the server's JSON instead of a table", 0, 0 };
	/* Consul's spelling, and the only one inside "catalog register",
	 * whose -address is the node's. */
	g->gopts[4] = (struct arg_opt){ "http-addr", ARG_STR, &g->address, "HOST:PORT",
		"the same as -address", 0, 0 };
	g->gopts[5] = (struct arg_opt){ "mesh", ARG_STR, &g->mesh, "NAME",
		"the mesh whose intentions and config entries to use (default: default)", 0, 0 };
	g->gopts[6] = (struct arg_opt){ 0 };
}

void ctl_cleanup(struct ctl *g)
{
	httpc_free(g->http);
	g->http = NULL;
}

int ctl_fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("weftctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_ERR;
}

int ctl_usage(const struct ctl_command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "weftctl: %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUsage: weftctl %s %s  (weftctl %s -h for help)\n", cmd->name,
		cmd->args, cmd->name);
	return CTL_USAGE;
}

void ctl_help(FILE *out, struct ctl *g, const struct ctl_command *cmd,
	      const struct arg_opt *opts)
{
	fprintf(out, "Usage: weftctl %s %s\n\n%s\n", cmd->name, cmd->args, cmd->summary);
	if (cmd->help && cmd->help[0])
		fprintf(out, "\n%s\n", cmd->help);
	if (opts && opts->name) {
		fputs("\nFlags:\n", out);
		args_print_help(out, opts);
	}
	fputs("\nGlobal flags (anywhere on the line; -flag and --flag both work):\n", out);
	args_print_help(out, g->gopts);
}

int ctl_parse(struct ctl *g, const struct ctl_command *cmd, const struct arg_opt *opts,
	      int argc, char **argv, int stop_at_positional, const char ***pos, int *npos)
{
	static const struct arg_opt none[] = { { 0 } };
	const struct arg_opt *tables[] = { opts ? opts : none, g->gopts, NULL };
	char *err = NULL;
	int rc;

	rc = args_parse(tables, argc, argv, stop_at_positional, pos, npos, &err);
	if (rc == ARGS_HELP) {
		ctl_help(stdout, g, cmd, opts);
		return CTL_OK;
	}
	if (rc != WEFT_OK) {
		rc = ctl_usage(cmd, "%s", err ? err : "bad arguments");
		free(err);
		return rc;
	}
	if (g->output && strcmp(g->output, "json") != 0 && strcmp(g->output, "table") != 0) {
		free(*pos);
		*pos = NULL;
		return ctl_usage(cmd, "flag -output: \"%s\" is not json or table", g->output);
	}
	g->json = g->output && strcmp(g->output, "json") == 0;
	return CTL_CONTINUE;
}

int ctl_parse_flags(struct ctl *g, const struct ctl_command *cmd, const struct arg_opt *opts,
		    int argc, char **argv)
{
	const char **pos = NULL;
	int npos = 0, rc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc == CTL_CONTINUE && npos > 0)
		rc = ctl_usage(cmd, "unexpected argument \"%s\"", pos[0]);
	free(pos);
	return rc;
}

struct httpc *ctl_http(struct ctl *g)
{
	struct httpc_opts o = { 0 };
	const char *env;
	char *err = NULL;

	if (g->http)
		return g->http;
	o.address = g->address;
	if (o.address == NULL && (env = getenv("WEFT_HTTP_ADDR")) && env[0])
		o.address = env;
	if (o.address == NULL)
		o.address = CTL_DEFAULT_ADDR;
	o.token = g->token;
	if (o.token == NULL && (env = getenv("WEFT_HTTP_TOKEN")) && env[0])
		o.token = env;
	o.ca_file = g->ca_file;
	o.abort_fn = g->abort_fn;
	o.abort_arg = g->abort_arg;
	if (httpc_new(&g->http, &o, &err) != WEFT_OK) {
		ctl_fail("%s", err ? err : "cannot set up the HTTP client");
		free(err);
		return NULL;
	}
	return g->http;
}

json_t *ctl_call(struct ctl *g, const char *method, const char *path, json_t *body,
		 struct httpc_resp *resp, int *status)
{
	struct httpc *c = ctl_http(g);
	json_t *out = NULL;
	char *err = NULL;

	*status = CTL_ERR;
	if (c == NULL)
		return NULL;
	if (httpc_json(c, method, path, body, 0, &out, resp, &err) != WEFT_OK) {
		ctl_fail("%s", err ? err : "request failed");
		free(err);
		return NULL;
	}
	*status = CTL_OK;
	return out ? out : json_null();
}

int ctl_query_add(struct buf *b, const char *key, const char *value)
{
	char *esc = httpc_escape(value, 0);
	int rc;

	if (esc == NULL)
		return WEFT_ENOMEM;
	rc = buf_printf(b, "%c%s=%s", b->data && strchr(b->data, '?') ? '&' : '?', key, esc);
	free(esc);
	return rc;
}

char *ctl_mesh_path(struct ctl *g, const char *path)
{
	struct buf b;

	buf_init(&b, 1 << 16);
	if (buf_printf(&b, "%s", path) != WEFT_OK ||
	    ctl_query_add(&b, "mesh", g->mesh ? g->mesh : "default") != WEFT_OK) {
		buf_free(&b);
		ctl_fail("out of memory");
		return NULL;
	}
	return buf_steal(&b);
}

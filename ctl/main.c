/* weftctl: the command-line client of weft-server. */
#include "config.h"
#include "ctl.h"
#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct ctl_command *const groups[] = {
	ctl_cmds_catalog, ctl_cmds_kv, ctl_cmds_lock, ctl_cmds_token, ctl_cmds_agent,
	ctl_cmds_intention, ctl_cmds_config, ctl_cmds_mesh, ctl_cmds_ca, ctl_cmds_tproxy, NULL,
};

static void print_commands(FILE *out, const char *prefix)
{
	size_t plen = prefix ? strlen(prefix) : 0;

	for (size_t i = 0; groups[i]; i++)
		for (const struct ctl_command *c = groups[i]; c->name; c++)
			if (plen == 0 || (strncmp(c->name, prefix, plen) == 0 &&
					  (c->name[plen] == ' ' || c->name[plen] == '\0')))
				fprintf(out, "  %-20s %s\n", c->name, c->summary);
}

static void usage(FILE *out, struct ctl *g)
{
	fputs("Usage: weftctl [global flags] COMMAND [flags] [args]\n\n"
	      "The command-line client of weft-server (Consul-compatible API).\n\n"
	      "Commands:\n", out);
	print_commands(out, NULL);
	fputs("  help [COMMAND]       this text, or a command's help (also: weftctl COMMAND -h)\n"
	      "  version              print weftctl's version\n"
	      "\nGlobal flags (anywhere on the line; -flag and --flag both work):\n", out);
	args_print_help(out, g->gopts);
	fputs("\nExit status: 0 success, 1 error, 2 usage error (lock: the command's status).\n",
	      out);
}

/* The command named by one or two words; *used says how many. */
static const struct ctl_command *find_command(int argc, char **argv, int *used)
{
	char two[128];

	if (argc >= 2 && snprintf(two, sizeof(two), "%s %s", argv[0], argv[1]) < (int)sizeof(two)) {
		for (size_t i = 0; groups[i]; i++)
			for (const struct ctl_command *c = groups[i]; c->name; c++)
				if (strcmp(c->name, two) == 0) {
					*used = 2;
					return c;
				}
	}
	for (size_t i = 0; groups[i]; i++)
		for (const struct ctl_command *c = groups[i]; c->name; c++)
			if (strcmp(c->name, argv[0]) == 0) {
				*used = 1;
				return c;
			}
	return NULL;
}

/* 1 when word starts some two-word command ("kv", "catalog"). */
static int is_group(const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; groups[i]; i++)
		for (const struct ctl_command *c = groups[i]; c->name; c++)
			if (strncmp(c->name, word, n) == 0 && c->name[n] == ' ')
				return 1;
	return 0;
}

static int unknown(struct ctl *g, int argc, char **argv)
{
	if (is_group(argv[0])) {
		if (argc >= 2)
			fprintf(stderr, "weftctl: unknown command \"%s %s\"\n", argv[0], argv[1]);
		else
			fprintf(stderr, "weftctl: %s needs a subcommand\n", argv[0]);
		fprintf(stderr, "\n%s commands:\n", argv[0]);
		print_commands(stderr, argv[0]);
		return CTL_USAGE;
	}
	fprintf(stderr, "weftctl: unknown command \"%s\" (weftctl help lists them)\n", argv[0]);
	return CTL_USAGE;
}

static int help(struct ctl *g, int argc, char **argv)
{
	const struct ctl_command *cmd;
	char *h[] = { "-h", NULL };
	int used = 0;

	if (argc == 0) {
		usage(stdout, g);
		return CTL_OK;
	}
	cmd = find_command(argc, argv, &used);
	if (cmd == NULL || used != argc) {
		if (argc == 1 && is_group(argv[0])) {
			printf("%s commands:\n", argv[0]);
			print_commands(stdout, argv[0]);
			return CTL_OK;
		}
		return unknown(g, argc, argv);
	}
	return cmd->run(g, cmd, 1, h);
}

int main(int argc, char **argv)
{
	const struct arg_opt *tables[2];
	const struct ctl_command *cmd;
	const char **pos = NULL;
	char **rest;
	char *err = NULL;
	int npos = 0, rc, used = 0, nrest;
	struct ctl g;

	ctl_init(&g);
	tables[0] = g.gopts;
	tables[1] = NULL;
	/* Global flags before the command. */
	rc = args_parse(tables, argc - 1, argv + 1, 1, &pos, &npos, &err);
	if (rc == ARGS_HELP) {
		usage(stdout, &g);
		return CTL_OK;
	}
	if (rc != WEFT_OK) {
		fprintf(stderr, "weftctl: %s (weftctl help)\n", err ? err : "bad arguments");
		free(err);
		return CTL_USAGE;
	}
	if (npos == 0) {
		free(pos);
		usage(stderr, &g);
		return CTL_USAGE;
	}
	/* pos points into argv; the command's arguments are what follows. */
	rest = argv + argc - npos;
	nrest = npos;
	free(pos);
	if (strcmp(rest[0], "help") == 0)
		return help(&g, nrest - 1, rest + 1);
	if (strcmp(rest[0], "version") == 0 || strcmp(rest[0], "--version") == 0) {
		printf("weftctl %s\n", PACKAGE_VERSION);
		return CTL_OK;
	}
	cmd = find_command(nrest, rest, &used);
	if (cmd == NULL)
		return unknown(&g, nrest, rest);
	if (httpc_global_init(&err) != WEFT_OK) {
		rc = ctl_fail("%s", err);
		free(err);
		return rc;
	}
	rc = cmd->run(&g, cmd, nrest - used, rest + used);
	ctl_cleanup(&g);
	if (fflush(stdout) != 0 && rc == CTL_OK)
		rc = ctl_fail("cannot write the output: %s", strerror(errno));
	return rc;
}

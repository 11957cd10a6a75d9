/* Command-line flags for weftctl: a table per command, Go-flag spelling.
 *
 * "-name value", "-name=value", "--name value" and "--name=value" are all
 * accepted; booleans take no separate value ("-recurse", "-shell=false").
 * Flags may come before, between or after the positional arguments unless
 * the caller asks to stop at the first positional one (weftctl lock, whose
 * command line after the prefix belongs to the child). "--" ends the flags;
 * a lone "-" is a positional argument (stdin). */
#ifndef WEFT_CTL_ARGS_H
#define WEFT_CTL_ARGS_H

#include <stddef.h>
#include <stdio.h>

enum arg_type {
	ARG_BOOL,      /* int *: 0 or 1 */
	ARG_STR,       /* const char **: borrows argv */
	ARG_INT,       /* long long *, within [min, max] */
	ARG_LIST,      /* struct arg_list *: repeatable, in order */
	ARG_DURATION,  /* long long * milliseconds, from "10s", "1h30m" */
};

struct arg_list {
	const char **v;
	size_t n;
};

struct arg_opt {
	const char *name;   /* without dashes; NULL ends a table */
	enum arg_type type;
	void *dst;
	const char *meta;   /* the value's placeholder in help: "N", "FILE" */
	const char *help;
	long long min, max; /* ARG_INT bounds */
};

#define ARGS_HELP 1   /* -h, -help or --help was given */

/* Parses argv[0..argc-1] (argv[0] is the first argument, not the program)
 * against the NULL-terminated list of tables. On WEFT_OK, *pos holds the
 * positional arguments (borrowed from argv; free the array) and *npos
 * their number. Returns ARGS_HELP for -h, or WEFT_EINVAL with *err naming
 * the flag ("flag -port: \"x\" is not an integer"). */
int args_parse(const struct arg_opt *const *tables, int argc, char **argv,
	       int stop_at_positional, const char ***pos, int *npos, char **err);
void args_list_free(struct arg_list *l);
/* One line per flag: "  -port N    the service's port". */
void args_print_help(FILE *out, const struct arg_opt *opts);

#endif

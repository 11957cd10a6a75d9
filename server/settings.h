/* weft-server's settings: one table gives each setting's flag, config-file
 * key, type, bounds and default. The config file holds "key = value" lines
 * (# comments); flags given on the command line win over the file. */
#ifndef WEFT_SETTINGS_H
#define WEFT_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

#include "log.h"

struct settings {
	char *data_dir;
	char *http_addr;
	char *https_addr;
	char *tls_cert;
	char *tls_key;
	char *datacenter;
	char *node_name;
	char *advertise_addr;
	char *config_file;
	char *log_level_name;
	enum log_level log_level;
	long long max_body;
	long long http_threads;
	long long max_connections;
	long long snapshot_cache_mb;
	long long agent_timeout_s;
	int dev;
	int check_only;
	int show_help;
	int show_version;
};

#define SETTINGS_MAX_FILE (1 << 20)
#define SETTINGS_MAX_LINE 4096

/* Errors name the flag, or the file and line. */
int settings_parse(struct settings *s, int argc, char **argv, char **err);
/* Applies config-file text (len bytes) to s, as --config does; name is the
 * file named in errors. Used by the parser's fuzz target. */
int settings_parse_text(struct settings *s, const char *name, const char *text, size_t len,
			char **err);
void settings_usage(FILE *out);
void settings_free(struct settings *s);
/* Reads DIR/node-id, creating it with a new UUID the first time. */
int settings_node_id(const char *dir, char out[37]);

#endif

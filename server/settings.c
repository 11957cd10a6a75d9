#include "settings.h"
#include "err.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum set_type { T_STR, T_INT, T_BOOL };

struct setting {
	const char *name;       /* flag without "--", and config key with '-' as '_' */
	enum set_type type;
	size_t offset;
	const char *dflt;
	long long min, max;
	const char *help;
};

#define OFF(f) offsetof(struct settings, f)

static const struct setting table[] = {
	{ "data-dir", T_STR, OFF(data_dir), "/var/lib/weft", 0, 0, "where the store, keys and admin token live" },
	{ "http-addr", T_STR, OFF(http_addr), "127.0.0.1:8500", 0, 0, "HOST:PORT of the HTTP API" },
	{ "https-addr", T_STR, OFF(https_addr), NULL, 0, 0, "HOST:PORT of the HTTPS API (needs --tls-cert and --tls-key)" },
	{ "tls-cert", T_STR, OFF(tls_cert), NULL, 0, 0, "PEM certificate (chain) for HTTPS" },
	{ "tls-key", T_STR, OFF(tls_key), NULL, 0, 0, "PEM private key for HTTPS" },
	{ "datacenter", T_STR, OFF(datacenter), "dc1", 0, 0, "this zone's name, reported as Consul's datacenter" },
	{ "node-name", T_STR, OFF(node_name), NULL, 0, 0, "the server's node in the catalog (default: host name)" },
	{ "advertise-addr", T_STR, OFF(advertise_addr), "127.0.0.1", 0, 0, "the server node's address in the catalog" },
	{ "log-level", T_STR, OFF(log_level_name), "info", 0, 0, "error, warn, info or debug" },
	{ "max-body", T_INT, OFF(max_body), "1048576", 1024, 64LL << 20, "largest request body in bytes (413 above)" },
	{ "http-threads", T_INT, OFF(http_threads), "2", 1, 64, "HTTP worker threads" },
	{ "max-connections", T_INT, OFF(max_connections), "20000", 16, 1000000, "open HTTP connections at most" },
	{ "snapshot-cache-mb", T_INT, OFF(snapshot_cache_mb), "64", 0, 65536, "memory for cached proxy snapshots and their parts, in MiB (0: no cache)" },
	{ "agent-timeout", T_INT, OFF(agent_timeout_s), "30", 0, 86400, "seconds without a heartbeat from a node's weft-agent before its weft-agent check turns critical (0: never)" },
	{ "dev", T_BOOL, OFF(dev), "false", 0, 0, "development mode: NO AUTHENTICATION" },
};

#define NSETTINGS (sizeof(table) / sizeof(table[0]))

static int set_value(struct settings *s, const struct setting *st, const char *val,
		     const char *where, char **err)
{
	char *p = (char *)s + st->offset, *end;
	long long n;

	switch (st->type) {
	case T_STR:
		free(*(char **)p);
		*(char **)p = val ? strdup(val) : NULL;
		return WEFT_OK;
	case T_INT:
		n = strtoll(val, &end, 10);
		if (val[0] == '\0' || *end != '\0')
			return weft_errf(err, WEFT_EINVAL, "%s%s: \"%s\" is not a number", where,
					 st->name, val);
		if (n < st->min || n > st->max)
			return weft_errf(err, WEFT_EINVAL, "%s%s: %lld is outside [%lld, %lld]", where,
					 st->name, n, st->min, st->max);
		*(long long *)p = n;
		return WEFT_OK;
	case T_BOOL:
		if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0 || strcmp(val, "yes") == 0)
			*(int *)p = 1;
		else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0 || strcmp(val, "no") == 0)
			*(int *)p = 0;
		else
			return weft_errf(err, WEFT_EINVAL, "%s%s: \"%s\" is not true or false", where,
					 st->name, val);
		return WEFT_OK;
	}
	return WEFT_EINVAL;
}

static const struct setting *find(const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		const char *a = table[i].name, *b = name;
		while (*a && (*a == *b || (*a == '-' && *b == '_'))) {
			a++;
			b++;
		}
		if (*a == '\0' && *b == '\0')
			return &table[i];
	}
	return NULL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* "key = value" lines from text (len bytes, any content); name is the file
 * named in errors. Settings marked in from_flags keep their flag value. */
static int parse_text(struct settings *s, const char *name, const char *text, size_t len,
		      const unsigned char *from_flags, char **err)
{
	char *line = NULL, where[4200];
	size_t off = 0;
	int lineno = 0, rc = WEFT_OK;

	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		char *l, *eq, *key, *val;
		const struct setting *st;

		lineno++;
		snprintf(where, sizeof(where), "%s:%d: ", name, lineno);
		if (n > SETTINGS_MAX_LINE) {
			rc = weft_errf(err, WEFT_EINVAL, "%sline longer than %d bytes", where,
				       SETTINGS_MAX_LINE);
			break;
		}
		if (memchr(text + off, '\0', n)) {
			rc = weft_errf(err, WEFT_EINVAL, "%sNUL byte in line", where);
			break;
		}
		free(line);
		line = strndup(text + off, n);
		off += n + (nl ? 1 : 0);
		if (line == NULL) {
			rc = weft_errf(err, WEFT_ENOMEM, "%sout of memory", where);
			break;
		}
		l = trim(line);
		if (l[0] == '\0' || l[0] == '#')
			continue;
		eq = strchr(l, '=');
		if (eq == NULL) {
			rc = weft_errf(err, WEFT_EINVAL, "%sexpected \"key = value\"", where);
			break;
		}
		*eq = '\0';
		key = trim(l);
		val = trim(eq + 1);
		if (val[0] == '"' && strlen(val) >= 2 && val[strlen(val) - 1] == '"') {
			val[strlen(val) - 1] = '\0';
			val++;
		}
		st = find(key);
		if (st == NULL) {
			rc = weft_errf(err, WEFT_EINVAL, "%sunknown setting \"%s\"", where, key);
			break;
		}
		if (from_flags && from_flags[st - table])
			continue;
		rc = set_value(s, st, val, where, err);
		if (rc != WEFT_OK)
			break;
	}
	free(line);
	return rc;
}

int settings_parse_text(struct settings *s, const char *name, const char *text, size_t len,
			char **err)
{
	return parse_text(s, name, text, len, NULL, err);
}

static int parse_file(struct settings *s, const char *path, const unsigned char *from_flags,
		      char **err)
{
	size_t len = 0;
	char *text = file_read_all(path, SETTINGS_MAX_FILE, &len);
	int rc;

	if (text == NULL)
		return weft_errf(err, WEFT_EINVAL, "--config: cannot read %s (missing, unreadable or over %d bytes)",
				 path, SETTINGS_MAX_FILE);
	rc = parse_text(s, path, text, len, from_flags, err);
	free(text);
	return rc;
}

int settings_parse(struct settings *s, int argc, char **argv, char **err)
{
	unsigned char from_flags[NSETTINGS] = { 0 };
	char host[256];
	int rc;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < NSETTINGS; i++)
		if (table[i].dflt && (rc = set_value(s, &table[i], table[i].dflt, "", err)) != WEFT_OK)
			return rc;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL, *eq;
		char name[64];
		const struct setting *st;

		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			s->show_help = 1;
			return WEFT_OK;
		}
		if (strcmp(arg, "--version") == 0) {
			s->show_version = 1;
			return WEFT_OK;
		}
		if (strcmp(arg, "--check") == 0) {
			s->check_only = 1;
			continue;
		}
		if (strncmp(arg, "--", 2) != 0)
			return weft_errf(err, WEFT_EINVAL, "unexpected argument \"%s\" (see --help)", arg);
		arg += 2;
		eq = strchr(arg, '=');
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
		if (strcmp(name, "config") == 0) {
			val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (val == NULL)
				return weft_errf(err, WEFT_EINVAL, "--config: needs a file");
			free(s->config_file);
			s->config_file = strdup(val);
			continue;
		}
		st = find(name);
		if (st == NULL)
			return weft_errf(err, WEFT_EINVAL, "--%s: unknown flag (see --help)", name);
		if (eq)
			val = eq + 1;
		else if (st->type == T_BOOL)
			val = "true";
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return weft_errf(err, WEFT_EINVAL, "--%s: needs a value", name);
		rc = set_value(s, st, val, "--", err);
		if (rc != WEFT_OK)
			return rc;
		from_flags[st - table] = 1;
	}
	if (s->config_file && (rc = parse_file(s, s->config_file, from_flags, err)) != WEFT_OK)
		return rc;
	if (log_parse_level(s->log_level_name, &s->log_level) != 0)
		return weft_errf(err, WEFT_EINVAL, "log-level: \"%s\" is not error, warn, info or debug",
				 s->log_level_name);
	if (s->https_addr && (s->tls_cert == NULL || s->tls_key == NULL))
		return weft_errf(err, WEFT_EINVAL, "https-addr: needs tls-cert and tls-key");
	if (!name_valid(s->datacenter, 64))
		return weft_errf(err, WEFT_EINVAL, "datacenter: \"%s\" is not a valid name", s->datacenter);
	if (s->node_name == NULL) {
		if (gethostname(host, sizeof(host)) != 0 || !name_valid(host, 255))
			snprintf(host, sizeof(host), "weft-server");
		s->node_name = strdup(host);
	}
	if (!name_valid(s->node_name, 255))
		return weft_errf(err, WEFT_EINVAL, "node-name: \"%s\" is not a valid name", s->node_name);
	return WEFT_OK;
}

void settings_usage(FILE *out)
{
	fprintf(out, "usage: weft-server [--config FILE] [--check] [flags]\n\n");
	for (size_t i = 0; i < NSETTINGS; i++)
		fprintf(out, "  --%-18s %s%s%s%s\n", table[i].name, table[i].help,
			table[i].dflt ? " (default " : "", table[i].dflt ? table[i].dflt : "",
			table[i].dflt ? ")" : "");
	fprintf(out, "  --%-18s %s\n", "config FILE", "read settings from FILE (key = value lines)");
	fprintf(out, "  --%-18s %s\n", "check", "validate the settings and exit");
}

void settings_free(struct settings *s)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (table[i].type == T_STR) {
			free(*(char **)((char *)s + table[i].offset));
			*(char **)((char *)s + table[i].offset) = NULL;
		}
	free(s->config_file);
}

int settings_node_id(const char *dir, char out[37])
{
	char path[4096], *text;

	snprintf(path, sizeof(path), "%s/node-id", dir);
	text = file_read_all(path, 64, NULL);
	if (text) {
		text[strcspn(text, "\r\n")] = '\0';
		if (uuid_valid(text)) {
			memcpy(out, text, 37);
			free(text);
			return 0;
		}
		free(text);
	}
	uuid_generate(out);
	return file_write_all(path, out, 36, 0644);
}

/* Runs agent/certs against a real weft-server for
 * tests/integration/test_agent_certs.py (built by make check, not a test).
 *
 *   certs-driver --dir DIR --server HOST:PORT [--token-file F] [--mesh M]
 *                [SERVICE...]
 *
 * Starts the module with the services given, then reads commands on
 * standard input, one per line, and answers each with one line:
 *
 *   set [SERVICE...]   ok | error MESSAGE
 *   paths SERVICE      paths CERT KEY BUNDLE | enoent
 *   leaf SERVICE       leaf JSON | enoent MESSAGE
 *   roots              roots JSON | enoent MESSAGE
 *   ready              ready 0|1
 *   quit               bye (after certs_free), then exits 0
 *
 * The changed callback prints "event changed SERVICE" or
 * "event changed-bundle" at any time. The module's log goes to stderr. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs.h"
#include "err.h"
#include "httpc.h"
#include "log.h"
#include "util.h"

#define MAX_SERVICES 64

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static void on_changed(void *arg, const char *service)
{
	if (service)
		say("event changed %s", service);
	else
		say("event changed-bundle");
}

static void say_json(const char *tag, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);

	say("%s %s", tag, s ? s : "null");
	free(s);
}

static size_t split(char *line, char **words, size_t max)
{
	size_t n = 0;

	for (char *w = strtok(line, " \t\r\n"); w && n < max; w = strtok(NULL, " \t\r\n"))
		words[n++] = w;
	return n;
}

int main(int argc, char **argv)
{
	struct certs_opts o = { .changed = on_changed };
	const char *services[MAX_SERVICES];
	char *token = NULL, *err = NULL, line[4096];
	struct certs *c = NULL;
	size_t ns = 0;

	log_setup(LOG_LVL_DEBUG, stderr);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			o.dir = argv[++i];
		} else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
			o.server.address = argv[++i];
		} else if (strcmp(argv[i], "--mesh") == 0 && i + 1 < argc) {
			o.mesh = argv[++i];
		} else if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc) {
			size_t len;

			if ((token = file_read_all(argv[++i], 4096, &len)) == NULL) {
				fprintf(stderr, "certs-driver: cannot read %s\n", argv[i]);
				return 2;
			}
			token[strcspn(token, "\r\n")] = '\0';
			o.server.token = token;
		} else if (argv[i][0] != '-' && ns < MAX_SERVICES) {
			services[ns++] = argv[i];
		} else {
			fprintf(stderr, "usage: certs-driver --dir DIR --server HOST:PORT "
				"[--token-file F] [--mesh M] [SERVICE...]\n");
			return 2;
		}
	}
	o.server.connect_timeout_ms = 1000;
	if (httpc_global_init(&err) != WEFT_OK || certs_new(&c, &o, &err) != WEFT_OK ||
	    certs_set(c, services, ns, &err) != WEFT_OK) {
		fprintf(stderr, "certs-driver: %s\n", err);
		return 1;
	}
	say("started");
	while (fgets(line, sizeof(line), stdin) != NULL) {
		char *w[MAX_SERVICES + 1];
		size_t n = split(line, w, MAX_SERVICES + 1);
		json_t *v = NULL;
		int rc;

		if (n == 0)
			continue;
		if (strcmp(w[0], "set") == 0) {
			if (certs_set(c, (const char *const *)w + 1, n - 1, &err) == WEFT_OK)
				say("ok");
			else
				say("error %s", err);
		} else if (strcmp(w[0], "paths") == 0 && n == 2) {
			char *cert, *key, *bundle;

			if (certs_paths(c, w[1], &cert, &key, &bundle) == WEFT_OK)
				say("paths %s %s %s", cert, key, bundle);
			else
				say("enoent");
			free(cert);
			free(key);
			free(bundle);
		} else if (strcmp(w[0], "leaf") == 0 && n == 2) {
			rc = certs_leaf_json(c, w[1], &v, &err);
			if (rc == WEFT_OK)
				say_json("leaf", v);
			else
				say("%s %s", rc == WEFT_ENOENT ? "enoent" : "error", err);
		} else if (strcmp(w[0], "roots") == 0) {
			rc = certs_roots_json(c, &v, &err);
			if (rc == WEFT_OK)
				say_json("roots", v);
			else
				say("%s %s", rc == WEFT_ENOENT ? "enoent" : "error", err);
		} else if (strcmp(w[0], "ready") == 0) {
			say("ready %d", certs_ready(c));
		} else if (strcmp(w[0], "quit") == 0) {
			break;
		} else {
			say("error unknown command %s", w[0]);
		}
		json_decref(v);
		free(err);
		err = NULL;
	}
	certs_free(c);
	say("bye");
	free(token);
	return 0;
}

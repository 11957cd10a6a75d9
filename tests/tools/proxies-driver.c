/* Drives agent/proxies for tests/integration/test_agent_proxies.py (not a
 * test itself): runs proxies_new/proxies_set until SIGTERM.
 *
 *   proxies-driver --proxy-bin PATH --dir DIR --server ADDR --node NODE
 *                  [--token-file FILE] [--drain-ms MS] [--status-file FILE]
 *                  (--specs FILE | --spec ID,SERVICE,CERT,KEY,BUNDLE,ADMINPORT[,ACCESSLOG]...)
 *
 * --specs FILE: a JSON array of {"ID", "Service", "CertFile", "KeyFile",
 * "BundleFile", "AdminPort", "AccessLog"}, read again on SIGHUP (the set is
 * replaced). SIGUSR1: proxies_tls_changed(NULL). SIGTERM or SIGINT:
 * proxies_free, then exit 0. Every 200 ms the status
 * {"Ready": 0|1, "Proxies": proxies_status_json} is written (atomically)
 * to --status-file, and printed to stdout when it changed. Logs go to
 * stderr. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "httpc.h"
#include "jsonx.h"
#include "log.h"
#include "proxies.h"
#include "util.h"

#define SPECS_MAX 64

struct specs {
	struct proxy_spec v[SPECS_MAX];
	size_t n;
	json_t *doc;       /* owns the strings (file form) */
	char *cli[SPECS_MAX];
};

static void usage(void)
{
	fprintf(stderr, "usage: proxies-driver --proxy-bin PATH --dir DIR --server ADDR --node NODE\n"
		"         [--token-file FILE] [--drain-ms MS] [--status-file FILE]\n"
		"         (--specs FILE | --spec ID,SERVICE,CERT,KEY,BUNDLE,ADMINPORT[,ACCESSLOG]...)\n");
	exit(2);
}

static int load_specs_file(const char *path, struct specs *s, char **err)
{
	json_error_t je;
	json_t *doc = json_load_file(path, 0, &je), *o;
	size_t i;

	if (!json_is_array(doc) || json_array_size(doc) > SPECS_MAX) {
		json_decref(doc);
		return weft_errf(err, WEFT_EINVAL, "%s: want a JSON array of at most %d specs%s%s", path,
				 SPECS_MAX, doc ? "" : ": ", doc ? "" : je.text);
	}
	json_decref(s->doc);
	s->doc = doc;
	s->n = 0;
	json_array_foreach(doc, i, o) {
		s->v[i] = (struct proxy_spec){
			.id = json_string_value(jx_field(o, "ID")),
			.service = json_string_value(jx_field(o, "Service")),
			.cert_file = json_string_value(jx_field(o, "CertFile")),
			.key_file = json_string_value(jx_field(o, "KeyFile")),
			.bundle_file = json_string_value(jx_field(o, "BundleFile")),
			.admin_port = (int)json_integer_value(jx_field(o, "AdminPort")),
			.access_log = json_string_value(jx_field(o, "AccessLog")),
		};
		s->n++;
	}
	return WEFT_OK;
}

static void add_cli_spec(struct specs *s, const char *arg)
{
	char *f[7] = {0}, *copy, *save = NULL;
	int k = 0;

	if (s->n == SPECS_MAX || (copy = strdup(arg)) == NULL)
		fatalx("driver", "--spec: too many, or out of memory");
	s->cli[s->n] = copy;
	for (char *t = strtok_r(copy, ",", &save); t && k < 7; t = strtok_r(NULL, ",", &save))
		f[k++] = t;
	if (k < 6)
		fatalx("driver", "--spec: want ID,SERVICE,CERT,KEY,BUNDLE,ADMINPORT[,ACCESSLOG], got \"%s\"",
		       arg);
	s->v[s->n++] = (struct proxy_spec){.id = f[0], .service = f[1], .cert_file = f[2],
					   .key_file = f[3], .bundle_file = f[4],
					   .admin_port = atoi(f[5]), .access_log = f[6]};
}

static char *status_text(struct proxies *p)
{
	json_t *st = NULL, *o;
	char *text;

	if (proxies_status_json(p, &st) != WEFT_OK)
		return NULL;
	o = json_pack("{s:i,s:o}", "Ready", proxies_ready(p), "Proxies", st);
	text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	return text;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"proxy-bin", required_argument, NULL, 'b'}, {"dir", required_argument, NULL, 'd'},
		{"server", required_argument, NULL, 's'}, {"node", required_argument, NULL, 'n'},
		{"token-file", required_argument, NULL, 't'}, {"drain-ms", required_argument, NULL, 'D'},
		{"status-file", required_argument, NULL, 'S'}, {"specs", required_argument, NULL, 'f'},
		{"spec", required_argument, NULL, 'p'}, {NULL, 0, NULL, 0},
	};
	struct proxies_opts po = {0};
	struct specs specs = {0};
	struct proxies *p = NULL;
	const char *token_file = NULL, *status_file = NULL, *specs_file = NULL;
	char *token = NULL, *err = NULL, *last = NULL;
	sigset_t set;
	int o;

	log_setup(LOG_LVL_INFO, stderr);
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'b': po.proxy_bin = optarg; break;
		case 'd': po.dir = optarg; break;
		case 's': po.server.address = optarg; break;
		case 'n': po.node = optarg; break;
		case 't': token_file = optarg; break;
		case 'D': po.drain_ms = strtoll(optarg, NULL, 10); break;
		case 'S': status_file = optarg; break;
		case 'f': specs_file = optarg; break;
		case 'p': add_cli_spec(&specs, optarg); break;
		default: usage();
		}
	}
	if (optind != argc || (specs_file != NULL && specs.n > 0))
		usage();
	if (token_file) {
		size_t len = 0;

		if ((token = file_read_all(token_file, 4096, &len)) == NULL)
			fatalx("driver", "--token-file: %s: %s", token_file, strerror(errno));
		token[strcspn(token, "\r\n")] = '\0';
		po.server.token = token;
	}
	if (specs_file && load_specs_file(specs_file, &specs, &err) != WEFT_OK)
		fatalx("driver", "%s", err);
	/* the signals are taken by sigtimedwait below: blocked before any
	 * thread starts, so that every thread inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (httpc_global_init(&err) != WEFT_OK)
		fatalx("driver", "%s", err);
	if (proxies_new(&p, &po, &err) != WEFT_OK || proxies_set(p, specs.v, specs.n, &err) != WEFT_OK)
		fatalx("driver", "%s", err);
	printf("started\n");
	fflush(stdout);
	for (;;) {
		struct timespec ts = {0, 200 * 1000000L};
		int sig = sigtimedwait(&set, NULL, &ts);
		char *text;

		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP && specs_file) {
			if (load_specs_file(specs_file, &specs, &err) != WEFT_OK ||
			    proxies_set(p, specs.v, specs.n, &err) != WEFT_OK) {
				printf("set failed: %s\n", err);
				free(err);
				err = NULL;
			} else {
				printf("set: %zu\n", specs.n);
			}
		}
		if (sig == SIGUSR1) {
			proxies_tls_changed(p, NULL);
			printf("tls changed\n");
		}
		if ((text = status_text(p)) == NULL)
			continue;
		if (status_file && file_write_all(status_file, text, strlen(text), 0644) != 0)
			log_warn("driver", "%s", status_file);
		if (last == NULL || strcmp(last, text) != 0)
			printf("%s\n", text);
		fflush(stdout);
		free(last);
		last = text;
	}
	proxies_free(p);
	printf("stopped\n");
	fflush(stdout);
	free(last);
	free(token);
	json_decref(specs.doc);
	for (size_t i = 0; i < SPECS_MAX; i++)
		free(specs.cli[i]);
	return 0;
}

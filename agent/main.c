/* weft-agent: the mesh on a VM (docs/agent.md).
 *
 *   weft-agent --server https://HOST:8501 --server-ca CA.pem --token-file F
 *              --node NAME --address IP [--datacenter DC]
 *              [--config-dir DIR] [--data-dir DIR] [--http-addr 127.0.0.1:8500]
 *              [--proxy-bin PATH] [--enable-script-checks] [--sync-interval S]
 *              [--dev] [--log-level LEVEL]
 *   weft-agent --config-dir DIR --check     validate the definitions, exit 0 or 1
 *
 * The main thread owns the signals (SIGHUP reloads the config directory,
 * SIGTERM/SIGINT leave: the node is deregistered and the proxies drained)
 * and wires the modules together: the local state (state.h) feeds the local
 * API (api.h), the catalog sync (sync.h), the check runner (checks.h), the
 * certificates (certs.h) and the proxies (proxies.h); each runs its own
 * thread. It tells systemd it is ready (notify.h) once its API serves and
 * every sidecar proxy answers /ready. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "err.h"
#include "httpc.h"
#include "log.h"
#include "notify.h"
#include "state.h"
#include "svcdef.h"
#include "sync.h"
#include "util.h"

struct agent_cfg {
	const char *server, *server_ca, *token_file, *node, *address, *datacenter;
	const char *config_dir, *data_dir, *http_addr, *proxy_bin, *log_level;
	int enable_scripts, dev, check_only;
	long sync_interval_s;
};

struct agent {
	struct agent_cfg cfg;
	char *token;
	char node[HOST_NAME_MAX + 1];
	struct agent_state *st;
	struct agent_sync *sync;
	struct agent_api *api;
	struct httpc_opts server;
	int ready;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: weft-agent --server URL --token-file FILE [--server-ca PEM] [--node NAME]\n"
		"                  --address IP [--datacenter DC] [--config-dir DIR] [--data-dir DIR]\n"
		"                  [--http-addr 127.0.0.1:8500] [--proxy-bin PATH]\n"
		"                  [--enable-script-checks] [--sync-interval S] [--dev]\n"
		"                  [--log-level error|warn|info|debug]\n"
		"       weft-agent --config-dir DIR --check\n");
	exit(2);
}

static void parse_args(int argc, char **argv, struct agent_cfg *c)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' }, { "server-ca", required_argument, NULL, 'C' },
		{ "token-file", required_argument, NULL, 't' }, { "node", required_argument, NULL, 'n' },
		{ "address", required_argument, NULL, 'a' }, { "datacenter", required_argument, NULL, 'd' },
		{ "config-dir", required_argument, NULL, 'c' }, { "data-dir", required_argument, NULL, 'D' },
		{ "http-addr", required_argument, NULL, 'h' }, { "proxy-bin", required_argument, NULL, 'p' },
		{ "enable-script-checks", no_argument, NULL, 'S' }, { "dev", no_argument, NULL, 'v' },
		{ "sync-interval", required_argument, NULL, 'i' }, { "log-level", required_argument, NULL, 'l' },
		{ "check", no_argument, NULL, 'k' }, { "help", no_argument, NULL, '?' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int ch;

	memset(c, 0, sizeof(*c));
	c->data_dir = "/var/lib/weft-agent";
	c->config_dir = "/etc/weft/agent.d";
	c->http_addr = "127.0.0.1:8500";
	c->log_level = "info";
	c->sync_interval_s = 60;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's': c->server = optarg; break;
		case 'C': c->server_ca = optarg; break;
		case 't': c->token_file = optarg; break;
		case 'n': c->node = optarg; break;
		case 'a': c->address = optarg; break;
		case 'd': c->datacenter = optarg; break;
		case 'c': c->config_dir = optarg; break;
		case 'D': c->data_dir = optarg; break;
		case 'h': c->http_addr = optarg; break;
		case 'p': c->proxy_bin = optarg; break;
		case 'S': c->enable_scripts = 1; break;
		case 'v': c->dev = 1; break;
		case 'k': c->check_only = 1; break;
		case 'l': c->log_level = optarg; break;
		case 'i':
			c->sync_interval_s = strtol(optarg, &end, 10);
			if (*end || c->sync_interval_s < 1 || c->sync_interval_s > 86400)
				fatalx("agent", "--sync-interval: want 1..86400 seconds, got \"%s\"", optarg);
			break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
}

static int has_script_check(json_t *services, json_t *checks)
{
	json_t *s, *c;
	size_t i, j;

	json_array_foreach(checks, i, c)
		if (strcmp(json_string_value(json_object_get(c, "Type")), "script") == 0)
			return 1;
	json_array_foreach(services, i, s)
		json_array_foreach(json_object_get(s, "Checks"), j, c)
			if (strcmp(json_string_value(json_object_get(c, "Type")), "script") == 0)
				return 1;
	return 0;
}

/* Reads the config directory into the state; on error the old definitions
 * stay (a reload with a typo must not take services away). */
static int load_config(struct agent *a, char **err)
{
	json_t *services = NULL, *checks = NULL;
	int rc;

	if ((rc = svcdef_load_dir(a->cfg.config_dir, &services, &checks, err)) != WEFT_OK)
		return rc;
	if (has_script_check(services, checks) && !a->cfg.enable_scripts) {
		rc = weft_errf(err, WEFT_EINVAL, "%s: a script check (Args) is defined but script checks "
				   "are disabled (weft-agent --enable-script-checks)", a->cfg.config_dir);
		goto out;
	}
	if (a->st)
		rc = state_set_file_defs(a->st, services, checks, err);
out:
	json_decref(services);
	json_decref(checks);
	return rc;
}

static json_t *status_json(void *arg)
{
	struct agent *a = arg;
	json_t *o = json_object();

	json_object_set_new(o, "Sync", sync_status(a->sync));
	json_object_set_new(o, "Ready", json_boolean(a->ready));
	return o;
}

static char *read_token(const char *path)
{
	char *t = file_read_all(path, 4096, NULL);
	size_t n;

	if (t == NULL)
		return NULL;
	n = strlen(t);
	while (n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
		t[--n] = '\0';
	return t;
}

static int ready_now(struct agent *a)
{
	return a->api != NULL;
}

int main(int argc, char **argv)
{
	struct agent a;
	struct sync_opts so;
	struct api_opts ao;
	enum log_level lvl;
	sigset_t set;
	char *err = NULL;
	int rc = 1;

	memset(&a, 0, sizeof(a));
	parse_args(argc, argv, &a.cfg);
	if (log_parse_level(a.cfg.log_level, &lvl) != 0)
		fatalx("agent", "--log-level: \"%s\" is not one of error, warn, info, debug", a.cfg.log_level);
	log_setup(lvl, stderr);
	if (a.cfg.check_only) {
		if (load_config(&a, &err) != WEFT_OK) {
			fprintf(stderr, "%s\n", err);
			free(err);
			return 1;
		}
		printf("%s: configuration valid\n", a.cfg.config_dir);
		return 0;
	}
	if (a.cfg.server == NULL)
		fatalx("agent", "--server is required (the weft-server to join, https://HOST:PORT)");
	if (a.cfg.address == NULL)
		fatalx("agent", "--address is required (this node's IP address, as other nodes reach it)");
	if (a.cfg.node)
		snprintf(a.node, sizeof(a.node), "%s", a.cfg.node);
	else if (gethostname(a.node, sizeof(a.node)) != 0)
		fatalx("agent", "--node: not given and gethostname failed: %s", strerror(errno));
	if (!name_valid(a.node, 128))
		fatalx("agent", "--node: \"%s\" is not a valid node name (letters, digits, '-', '_', '.')", a.node);
	if (a.cfg.token_file) {
		a.token = read_token(a.cfg.token_file);
		if (a.token == NULL || a.token[0] == '\0')
			fatalx("agent", "--token-file %s: cannot read a token: %s", a.cfg.token_file, strerror(errno));
	} else if (!a.cfg.dev) {
		fatalx("agent", "--token-file is required (an agent token for node %s), or --dev", a.node);
	}
	if (mkdir(a.cfg.data_dir, 0700) != 0 && errno != EEXIST)
		fatalx("agent", "--data-dir %s: cannot create: %s", a.cfg.data_dir, strerror(errno));
	if (httpc_global_init(&err) != WEFT_OK)
		fatalx("agent", "%s", err);

	/* Signals are taken by this thread only (sigtimedwait below). */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (state_new(&a.st, a.cfg.data_dir, a.cfg.address, &err) != WEFT_OK)
		fatalx("agent", "%s", err);
	if (load_config(&a, &err) != WEFT_OK)
		fatalx("agent", "%s", err);

	memset(&a.server, 0, sizeof(a.server));
	a.server.address = a.cfg.server;
	a.server.token = a.token;
	a.server.ca_file = a.cfg.server_ca;
	a.server.timeout_ms = 30000;

	memset(&so, 0, sizeof(so));
	so.server = a.server;
	so.node = a.node;
	so.address = a.cfg.address;
	so.datacenter = a.cfg.datacenter;
	so.interval_ms = a.cfg.sync_interval_s * 1000;
	if (sync_start(&a.sync, a.st, &so, &err) != WEFT_OK)
		fatalx("agent", "%s", err);

	memset(&ao, 0, sizeof(ao));
	ao.bind = a.cfg.http_addr;
	ao.node = a.node;
	ao.datacenter = a.cfg.datacenter;
	ao.own_token = a.token;
	ao.auth = !a.cfg.dev;
	ao.server = a.server;
	ao.enable_scripts = a.cfg.enable_scripts;
	ao.hooks.status_json = status_json;
	ao.hooks.arg = &a;
	if (api_start(&a.api, a.st, &ao, &err) != WEFT_OK)
		fatalx("agent", "%s", err);
	log_info("agent", "weft-agent %s: node %s (%s), server %s, local API http://127.0.0.1:%d, config %s",
		 PACKAGE_VERSION, a.node, a.cfg.address, a.cfg.server, api_port(a.api), a.cfg.config_dir);

	for (;;) {
		struct timespec ts = { 0, 250 * 1000000 };
		int sig = sigtimedwait(&set, NULL, &ts);

		if (sig == SIGHUP) {
			if (load_config(&a, &err) != WEFT_OK) {
				log_warnx("agent", "reload refused, the previous definitions stay: %s", err);
				free(err);
				err = NULL;
			} else {
				log_info("agent", "reloaded %s", a.cfg.config_dir);
			}
		} else if (sig == SIGTERM || sig == SIGINT) {
			break;
		}
		if (!a.ready && ready_now(&a)) {
			a.ready = 1;
			if (notify_systemd("READY=1\nSTATUS=serving", &err) != WEFT_OK) {
				log_warnx("agent", "%s", err);
				free(err);
				err = NULL;
			}
			log_info("agent", "ready");
		}
	}
	log_info("agent", "stopping: deregistering node %s", a.node);
	notify_systemd("STOPPING=1", NULL);
	sync_stop(a.sync);
	a.sync = NULL;
	if (sync_leave(&a.server, a.node, 3000, &err) != WEFT_OK) {
		log_warnx("agent", "could not deregister node %s: %s", a.node, err);
		free(err);
		err = NULL;
	} else {
		log_info("agent", "node %s deregistered", a.node);
	}
	rc = 0;
	api_stop(a.api);
	state_free(a.st);
	free(a.token);
	return rc;
}

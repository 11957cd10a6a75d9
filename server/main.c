/* weft-server: the control plane. */
#include "auth.h"
#include "castore.h"
#include "catalog.h"
#include "config.h"
#include "err.h"
#include "http.h"
#include "hub.h"
#include "telemetry.h"
#include "intentions.h"
#include "liveness.h"
#include "log.h"
#include "notify.h"
#include "rcache.h"
#include "snapcache.h"
#include "server.h"
#include "session.h"
#include "settings.h"
#include "store.h"
#include "ttl.h"
#include "tlsfiles.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void publish_to_hub(void *ctx, const char *const *topics, const uint64_t *idx, size_t n)
{
	hub_publish(ctx, topics, idx, n);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The server's own node, with Consul's serfHealth check, so that agent
 * endpoints and tools that look for the server find it in the catalog. */
static int register_self(struct server *srv, char **err)
{
	struct cat_register *reg = calloc(1, sizeof(*reg));
	json_t *doc = json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s, s:s}}",
				"Node", srv->node_name, "ID", srv->node_id,
				"Address", srv->advertise_addr,
				"NodeMeta", "weft-role", "server",
				"Check", "CheckID", "serfHealth", "Name", "Serf Health Status",
				"Status", "passing", "Output", "weft-server is alive");
	struct store_write w = { .apply = catalog_apply_register };
	int rc;

	if (reg == NULL || doc == NULL) {
		free(reg);
		json_decref(doc);
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	}
	rc = catalog_decode_register(doc, srv->datacenter, reg, err);
	json_decref(doc);
	if (rc == WEFT_OK) {
		w.arg = reg;
		rc = store_write_sync(srv->store, &w);
		if (rc != WEFT_OK) {
			weft_errf(err, rc, "registering node %s: %s", srv->node_name, w.err);
			free(w.err);
		}
		json_decref(w.result);
	}
	catalog_register_free(reg);
	return rc;
}

/* Runs the server until SIGTERM or SIGINT; returns the exit code. */
static int serve(const struct settings *cfg)
{
	struct server srv = { 0 };
	struct http *http = NULL, *https = NULL;
	struct session_reaper *reaper = NULL;
	struct http_opts hopts = { 0 };
	struct store_opts sopts = { 0 };
	sigset_t sigs;
	char *err = NULL, dbpath[PATH_MAX], node_id[37];
	int sig, exit_code = 1;

	log_setup(cfg->log_level, stderr);
	if (sodium_init() < 0)
		fatalx("main", "libsodium failed to initialise");
	raise_fd_limit();

	/* Signals go to sigwait() below, not to whichever thread runs. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST)
		fatalx("main", "cannot create data dir path=%s error=\"%s\"", cfg->data_dir, strerror(errno));
	snprintf(dbpath, sizeof(dbpath), "%s/weft.db", cfg->data_dir);

	srv.data_dir = cfg->data_dir;
	srv.datacenter = cfg->datacenter;
	srv.node_name = cfg->node_name;
	srv.advertise_addr = cfg->advertise_addr;
	srv.http_addr = cfg->http_addr;
	srv.version = PACKAGE_VERSION;
	srv.dev = cfg->dev;
	srv.max_body = cfg->max_body;
	srv.started_ms = now_wall_ms();

	sopts.path = dbpath;
	if (store_open(&srv.store, &sopts, &err) != WEFT_OK)
		fatalx("main", "store open failed error=\"%s\"", err);
	srv.hub = hub_new(store_last_index(srv.store));
	if (srv.hub == NULL)
		fatalx("main", "cannot start the watch hub");
	store_set_publisher(srv.store, publish_to_hub, srv.hub);
	srv.replies = rcache_new(32 << 20, 1 << 20);
	if (cfg->snapshot_cache_mb > 0 &&
	    (srv.snapshots = snapcache_new(srv.hub, (size_t)cfg->snapshot_cache_mb << 20)) == NULL)
		fatalx("main", "cannot make the snapshot cache");
	if (intentions_new(&srv.intentions, srv.store, srv.hub, srv.dev) != WEFT_OK)
		fatalx("main", "cannot start the intentions cache");
	if (telemetry_new(&srv.telemetry, NULL, &err) != WEFT_OK)
		fatalx("main", "%s", err);

	if (cfg->dev) {
		log_warnx("main", "DEV MODE: authentication is OFF, every request is allowed; never use --dev outside a laptop");
	} else if (auth_open(&srv.auth, cfg->data_dir, srv.store, &err) != WEFT_OK) {
		fatalx("main", "auth setup failed error=\"%s\"", err);
	}
	if (settings_node_id(cfg->data_dir, node_id) != 0)
		fatalx("main", "cannot read or create %s/node-id", cfg->data_dir);
	srv.node_id = node_id;
	if (register_self(&srv, &err) != WEFT_OK)
		fatalx("main", "self registration failed error=\"%s\"", err);
	/* Session TTLs restart from now, as on a Consul leader election. */
	if (session_reaper_start(&reaper, srv.store, 250, &err) != WEFT_OK)
		fatalx("main", "session reaper failed error=\"%s\"", err);
	if (liveness_start(&srv.liveness, srv.store, cfg->agent_timeout_s * 1000, &err) != WEFT_OK)
		fatalx("main", "liveness start failed error=\"%s\"", err);
	if (ttl_start(&srv.ttl, srv.store, &err) != WEFT_OK)
		fatalx("main", "ttl start failed error=\"%s\"", err);
	if (castore_open(&srv.ca, srv.store, cfg->data_dir, srv.datacenter, &err) != WEFT_OK)
		fatalx("main", "CA setup failed error=\"%s\"", err);

	hopts.addr = cfg->http_addr;
	hopts.threads = cfg->http_threads;
	hopts.max_connections = cfg->max_connections;
	if (http_start(&http, &srv, &hopts, &err) != WEFT_OK) {
		log_errorx("main", "http start failed error=\"%s\"", err);
		goto out;
	}
	srv.http = http;
	if (cfg->https_addr) {
		hopts.addr = cfg->https_addr;
		hopts.tls_cert = cfg->tls_cert;
		hopts.tls_key = cfg->tls_key;
		if (http_start(&https, &srv, &hopts, &err) != WEFT_OK) {
			log_errorx("main", "https start failed error=\"%s\"", err);
			goto out;
		}
	}
	log_info("main", "ready version=%s node=%s datacenter=%s data_dir=%s http=%s%s%s",
		 PACKAGE_VERSION, srv.node_name, srv.datacenter, cfg->data_dir, cfg->http_addr,
		 cfg->https_addr ? " https=" : "", cfg->https_addr ? cfg->https_addr : "");
	/* systemd's Type=notify: ready once every listener serves */
	if (notify_systemd("READY=1\nSTATUS=serving", &err) != WEFT_OK) {
		log_warnx("main", "%s", err);
		free(err);
		err = NULL;
	}
	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("main", "SIGHUP ignored (no reloadable settings yet)");
			continue;
		}
		break;
	}
	log_info("main", "stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
	notify_systemd("STOPPING=1", NULL);
	exit_code = 0;
out:
	/* Stop taking requests, answer parked ones, finish writes, close. */
	hub_wake_all(srv.hub);
	telemetry_wake_all(srv.telemetry);
	http_stop(https);
	http_stop(http);
	session_reaper_stop(reaper);
	ttl_stop(srv.ttl);
	liveness_stop(srv.liveness);
	castore_close(srv.ca);
	auth_close(srv.auth);
	store_close(srv.store);
	intentions_free(srv.intentions);
	hub_free(srv.hub);
	telemetry_free(srv.telemetry);
	rcache_free(srv.replies);
	snapcache_free(srv.snapshots);
	free(err);
	log_info("main", "stopped");
	return exit_code;
}

int main(int argc, char **argv)
{
	struct settings cfg;
	char *err = NULL;
	int rc, exit_code = 1;

	rc = settings_parse(&cfg, argc, argv, &err);
	if (rc != WEFT_OK) {
		fprintf(stderr, "weft-server: %s\n", err);
		exit_code = 2;
		goto out;
	}
	if (cfg.show_help || cfg.show_version) {
		if (cfg.show_help)
			settings_usage(stdout);
		else
			printf("weft-server %s\n", PACKAGE_VERSION);
		exit_code = 0;
		goto out;
	}
	if (cfg.check_only) {
		if (cfg.https_addr && tlsfiles_check(cfg.tls_cert, cfg.tls_key, &err) != WEFT_OK) {
			fprintf(stderr, "weft-server: %s\n", err);
			exit_code = 2;
			goto out;
		}
		printf("weft-server: configuration is valid\n");
		exit_code = 0;
		goto out;
	}
	exit_code = serve(&cfg);
out:
	free(err);
	settings_free(&cfg);
	return exit_code;
}

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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "duration.h"
#include "certs.h"
#include "checks.h"
#include "err.h"
#include "httpc.h"
#include "log.h"
#include "notify.h"
#include "proxies.h"
#include "state.h"
#include "svcdef.h"
#include "sync.h"
#include "telemetry.h"
#include "util.h"

struct agent_cfg {
	const char *server, *server_ca, *token_file, *node, *address, *datacenter;
	const char *config_dir, *data_dir, *http_addr, *proxy_bin, *log_level;
	int enable_scripts, dev, check_only;
	long sync_interval_s, admin_base, telemetry_interval_s, heartbeat_s;
};

struct agent {
	struct agent_cfg cfg;
	char *token;
	char node[HOST_NAME_MAX + 1];
	struct agent_state *st;
	struct agent_sync *sync;
	struct agent_api *api;
	struct chk_runner *checks;
	struct certs *certs;      /* the default mesh's leaves and bundle */
	/* other meshes' (a sidecar's Mesh), made when a sidecar needs one */
	struct mesh_certs {
		char *mesh;
		struct certs *c;
	} other_certs[16];
	size_t n_other_certs;
	pthread_mutex_t certs_mu; /* other_certs: made by apply_defs, read by the API */
	struct proxies *proxies;
	struct tele *telemetry;   /* NULL with --telemetry-interval 0 */
	struct httpc_opts server;
	json_t *admin_ports;      /* sidecar ID -> its proxy's admin port, kept while it lives */
	pthread_mutex_t apply_mu; /* apply_defs runs from main and from the API */
	uint64_t applied_defs;    /* the definitions the modules were last given */
	int applied_once;
	int ready;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: weft-agent --server URL --token-file FILE [--server-ca PEM] [--node NAME]\n"
		"                  --address IP [--datacenter DC] [--config-dir DIR] [--data-dir DIR]\n"
		"                  [--http-addr 127.0.0.1:8500] [--proxy-bin PATH]\n"
		"                  [--enable-script-checks] [--sync-interval S] [--dev]\n"
		"                  [--proxy-admin-base PORT] [--telemetry-interval S]\n"
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
		{ "proxy-admin-base", required_argument, NULL, 'A' },
		{ "heartbeat-interval", required_argument, NULL, 'H' },
		{ "telemetry-interval", required_argument, NULL, 'T' },
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
	c->admin_base = 19000;
	c->heartbeat_s = 10;
	c->telemetry_interval_s = 10;
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
		case 'H':
			c->heartbeat_s = strtol(optarg, &end, 10);
			if (*end || !*optarg || c->heartbeat_s < 0 || c->heartbeat_s > 3600)
				fatalx("agent", "--heartbeat-interval: want 0 (none) or 1..3600 seconds, got \"%s\"",
				       optarg);
			break;
		case 'A':
			c->admin_base = strtol(optarg, &end, 10);
			if (*end || (c->admin_base != 0 && (c->admin_base < 1024 || c->admin_base > 65535 - 256)))
				fatalx("agent", "--proxy-admin-base: want 1024..65279, or 0 for any free port, "
				       "got \"%s\"", optarg);
			break;
		case 'T':
			c->telemetry_interval_s = strtol(optarg, &end, 10);
			if (*end || !*optarg || c->telemetry_interval_s < 0 || c->telemetry_interval_s > 3600)
				fatalx("agent", "--telemetry-interval: want 0 (off) or 1..3600 seconds, got \"%s\"", optarg);
			break;
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
	json_t *o = json_object(), *px = NULL;

	json_object_set_new(o, "Sync", sync_status(a->sync));
	json_object_set_new(o, "Ready", json_boolean(a->ready));
	{
		int ready = certs_ready(a->certs);
		pthread_mutex_lock(&a->certs_mu);
		for (size_t i = 0; i < a->n_other_certs; i++)
			ready = ready && certs_ready(a->other_certs[i].c);
		pthread_mutex_unlock(&a->certs_mu);
		json_object_set_new(o, "CertificatesReady", json_boolean(ready));
	}
	if (proxies_status_json(a->proxies, &px) == WEFT_OK)
		json_object_set_new(o, "Proxies", px);
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

/* weft-proxy next to this program (as make builds and installs them),
 * else from $PATH. */
static void default_proxy_bin(char *out, size_t size)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	snprintf(out, size, "weft-proxy");
	if (n <= 0)
		return;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return;
	*slash = '\0';
	/* the build tree: agent/weft-agent and dataplane/weft-proxy */
	if (strlen(self) > 6 && strcmp(self + strlen(self) - 6, "/agent") == 0) {
		size_t dir_len = strlen(self) - 6;
		snprintf(out, size, "%.*s/dataplane/weft-proxy", (int)(dir_len > 4000 ? 4000 : dir_len),
			 self);
		if (access(out, X_OK) == 0)
			return;
	}
	snprintf(out, size, "%.4000s/weft-proxy", self);
	if (access(out, X_OK) != 0)
		snprintf(out, size, "weft-proxy");
}

/* ---- the modules' callbacks ---- */

static void on_check_result(void *arg, const char *id, enum chk_status st, const char *output)
{
	struct agent *a = arg;

	state_check_result(a->st, id, chk_status_name(st), output);
}

static void on_check_reap(void *arg, const char *service_id, const char *check_id)
{
	struct agent *a = arg;
	char *err = NULL;

	if (service_id == NULL || service_id[0] == '\0')
		return;
	if (state_remove_service(a->st, service_id, &err) != WEFT_OK) {
		log_warnx("agent", "check %s: cannot deregister service %s: %s", check_id, service_id, err);
		free(err);
	}
}

static void on_certs_changed(void *arg, const char *service)
{
	struct agent *a = arg;

	if (a->proxies)
		proxies_tls_changed(a->proxies, service);
}

static struct certs *mesh_certs(struct agent *a, const char *mesh, int create, char **err);
static const char *sget(json_t *o, const char *k);

/* The leaf of a local service, from the certificates of its mesh. */
static int hook_leaf(void *arg, const char *service, json_t **out, char **err)
{
	struct agent *a = arg;
	json_t *list = state_services(a->st), *s;
	const char *mesh = "default";
	struct certs *c;
	size_t i;
	int rc;

	json_array_foreach(list, i, s) {
		if (strcmp(sget(s, "Service"), service) == 0 && sget(s, "Mesh")[0]) {
			mesh = sget(s, "Mesh");
			break;
		}
	}
	c = mesh_certs(a, mesh, 0, err);
	rc = c ? certs_leaf_json(c, service, out, err)
	       : weft_errf(err, WEFT_ENOENT, "no leaf for %s: no sidecar in mesh %s", service, mesh);
	json_decref(list);
	return rc;
}

static int hook_roots(void *arg, json_t **out, char **err)
{
	return certs_roots_json(((struct agent *)arg)->certs, out, err);
}

static int hook_ttl(void *arg, const char *id, const char *status, const char *output, char **err)
{
	enum chk_status st;

	if (chk_status_parse(status, &st) != WEFT_OK)
		return weft_errf(err, WEFT_EINVAL, "Status: \"%s\" is not passing, warning or critical", status);
	return chk_runner_ttl(((struct agent *)arg)->checks, id, st, output, err);
}

/* ---- giving the modules the current definitions ---- */

static const char *sget(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "";
}

static int64_t dur_ms(json_t *c, const char *k)
{
	long long ms = 0;

	if (json_object_get(c, k) && duration_parse_ms(sget(c, k), &ms) != 0)
		ms = 0;
	return ms;
}

/* The checks the runner runs: every check but the alias ones (the state
 * computes those). */
static int apply_checks(struct agent *a, json_t *services, json_t *node_checks, char **err)
{
	json_t *all = json_array(), *s, *c, *argv_keep = json_array();
	struct chk_def *defs = NULL;
	size_t i, j, n;
	int rc;

	json_array_foreach(services, i, s)
		json_array_foreach(json_object_get(s, "Checks"), j, c)
			json_array_append(all, c);
	json_array_foreach(node_checks, i, c)
		json_array_append(all, c);
	defs = calloc(json_array_size(all) + 1, sizeof(*defs));
	n = 0;
	json_array_foreach(all, i, c) {
		const char *type = sget(c, "Type");
		struct chk_def *d = &defs[n];
		if (strcmp(type, "alias") == 0 || strcmp(type, "weft-agent") == 0 ||
		    strcmp(type, "maintenance") == 0)
			continue;   /* the state computes aliases; the server the agent's own;
				     * maintenance is critical until turned off */
		d->id = sget(c, "CheckID");
		d->service_id = sget(c, "ServiceID");
		d->type = strcmp(type, "http") == 0 ? CHK_HTTP : strcmp(type, "tcp") == 0 ? CHK_TCP
			: strcmp(type, "udp") == 0 ? CHK_UDP : strcmp(type, "grpc") == 0 ? CHK_GRPC
			: strcmp(type, "h2ping") == 0 ? CHK_H2PING
			: strcmp(type, "ttl") == 0 ? CHK_TTL : CHK_SCRIPT;
		d->http = json_string_value(json_object_get(c, "HTTP"));
		d->method = json_string_value(json_object_get(c, "Method"));
		d->header = json_object_get(c, "Header");
		d->body = json_string_value(json_object_get(c, "Body"));
		d->tls_skip_verify = json_is_true(json_object_get(c, "TLSSkipVerify"));
		d->tcp = json_string_value(json_object_get(c, "TCP"));
		d->udp = json_string_value(json_object_get(c, "UDP"));
		d->grpc = json_string_value(json_object_get(c, "GRPC"));
		d->grpc_use_tls = json_is_true(json_object_get(c, "GRPCUseTLS"));
		d->h2ping = json_string_value(json_object_get(c, "H2PING"));
		d->h2ping_use_tls = !json_is_false(json_object_get(c, "H2PingUseTLS"));
		d->success_before_passing = (int)json_integer_value(json_object_get(c, "SuccessBeforePassing"));
		d->failures_before_warning = (int)json_integer_value(json_object_get(c, "FailuresBeforeWarning"));
		d->failures_before_critical = (int)json_integer_value(json_object_get(c, "FailuresBeforeCritical"));
		if (d->type == CHK_SCRIPT) {
			json_t *args = json_object_get(c, "Args");
			const char **argv = calloc(json_array_size(args) + 1, sizeof(*argv));
			json_array_foreach(args, j, s)
				argv[j] = json_string_value(s);
			d->args = argv;
			d->nargs = json_array_size(args);
			json_array_append_new(argv_keep, json_integer((json_int_t)(intptr_t)argv));
		}
		d->interval_ms = dur_ms(c, "Interval");
		d->timeout_ms = dur_ms(c, "Timeout");
		d->ttl_ms = dur_ms(c, "TTL");
		d->deregister_after_ms = dur_ms(c, "DeregisterCriticalServiceAfter");
		/* the last status before a restart, so that checks do not flap
		 * critical until their first run (stable: the runner restarts a
		 * check whose definition, initial status included, changes) */
		if (chk_status_parse(state_restored_status(a->st, d->id) ? state_restored_status(a->st, d->id)
									: sget(c, "Status"), &d->initial) != WEFT_OK)
			d->initial = CHK_CRITICAL;
		n++;
	}
	rc = chk_runner_set(a->checks, defs, n, err);
	json_array_foreach(argv_keep, i, c)
		free((void *)(intptr_t)json_integer_value(c));
	json_decref(argv_keep);
	free(defs);
	json_decref(all);
	return rc;
}

/* Binds 127.0.0.1:port for a moment: the port bound (the kernel's pick for
 * port 0), or 0 when it is taken (another program, or another agent's
 * proxy on this machine). */
static long port_probe(long port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	long got = 0;

	if (fd < 0)
		return port;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		got = ntohs(sin.sin_port);
	close(fd);
	return got;
}

static void on_certs_changed(void *arg, const char *service);

/* The certificates of mesh: the default mesh's, or another's, made at its
 * first use when create is set (in DATA_DIR/certs-<mesh>). NULL when there
 * are none (or, with *err, past 16 other meshes). */
static struct certs *mesh_certs(struct agent *a, const char *mesh, int create, char **err)
{
	struct certs_opts o;
	struct certs *c = NULL;
	char dir[4096];

	if (mesh == NULL || mesh[0] == '\0' || strcmp(mesh, "default") == 0)
		return a->certs;
	pthread_mutex_lock(&a->certs_mu);
	for (size_t i = 0; i < a->n_other_certs; i++)
		if (strcmp(a->other_certs[i].mesh, mesh) == 0) {
			c = a->other_certs[i].c;
			goto out;
		}
	if (!create)
		goto out;
	if (a->n_other_certs == sizeof(a->other_certs) / sizeof(a->other_certs[0])) {
		weft_errf(err, WEFT_EINVAL, "mesh %s: sidecars in more than 17 meshes on one agent", mesh);
		goto out;
	}
	memset(&o, 0, sizeof(o));
	snprintf(dir, sizeof(dir), "%s/certs-%s", a->cfg.data_dir, mesh);
	o.dir = dir;
	o.server = a->server;
	o.mesh = mesh;
	o.changed = on_certs_changed;
	o.arg = a;
	if (certs_new(&c, &o, err) != WEFT_OK) {
		c = NULL;
		goto out;
	}
	a->other_certs[a->n_other_certs].mesh = strdup(mesh);
	a->other_certs[a->n_other_certs++].c = c;
out:
	pthread_mutex_unlock(&a->certs_mu);
	return c;
}

/* certs_set on every mesh's certificates: the services of names (sidecar
 * destinations) whose mesh (meshes, in parallel) is that one. */
static int set_leaves(struct agent *a, json_t *names, json_t *meshes, char **err)
{
	const char **svc = calloc(json_array_size(names) + 1, sizeof(*svc));
	json_t *v;
	size_t i, k, n;
	int rc = WEFT_OK;

	json_array_foreach(meshes, i, v)   /* make the certificates of every mesh in use */
		if (mesh_certs(a, json_string_value(v), 1, err) == NULL) {
			rc = WEFT_EINVAL;
			goto out;
		}
	/* only this thread (under apply_mu) adds meshes: the count is stable */
	for (k = 0; k <= a->n_other_certs && rc == WEFT_OK; k++) {
		const char *mesh = k == 0 ? "default" : a->other_certs[k - 1].mesh;
		struct certs *c = k == 0 ? a->certs : a->other_certs[k - 1].c;
		n = 0;
		json_array_foreach(names, i, v)
			if (strcmp(json_string_value(json_array_get(meshes, i)), mesh) == 0)
				svc[n++] = json_string_value(v);
		rc = certs_set(c, svc, n, err);
	}
out:
	free(svc);
	return rc;
}

/* Leaves for every service fronted by a sidecar, and the sidecars' proxies. */
static int apply_proxies(struct agent *a, json_t *services, char **err)
{
	json_t *sidecars = json_array(), *names = json_array(), *s, *keep_ports = json_object();
	json_t *meshes = json_array();
	struct proxy_spec *specs = NULL;
	char **paths = NULL;
	size_t i, n = 0;
	int rc = WEFT_OK;

	json_array_foreach(services, i, s) {
		if (strcmp(sget(s, "Kind"), "connect-proxy") != 0)
			continue;
		json_array_append(sidecars, s);
		json_array_append_new(names, json_string(sget(json_object_get(s, "Proxy"),
							      "DestinationServiceName")));
		json_array_append_new(meshes, json_string(sget(s, "Mesh")[0] ? sget(s, "Mesh") : "default"));
	}
	if ((rc = set_leaves(a, names, meshes, err)) != WEFT_OK)
		goto out;
	specs = calloc(json_array_size(sidecars) + 1, sizeof(*specs));
	paths = calloc(3 * json_array_size(sidecars) + 1, sizeof(*paths));
	json_array_foreach(sidecars, i, s) {
		const char *id = sget(s, "ID");
		json_t *port = json_object_get(a->admin_ports, id);
		struct proxy_spec *sp = &specs[n];
		if (port == NULL && a->cfg.admin_base == 0) {
			long p = port_probe(0);   /* --proxy-admin-base 0: any free port */
			if (p > 0) {
				port = json_integer(p);
				json_object_set_new(a->admin_ports, id, port);
			}
		}
		if (port == NULL) {
			for (long p = a->cfg.admin_base; a->cfg.admin_base && p < a->cfg.admin_base + 256; p++) {
				const char *k;
				json_t *v;
				int used = 0;
				json_object_foreach(a->admin_ports, k, v)
					used |= json_integer_value(v) == p;
				if (!used && port_probe(p) == p) {
					port = json_integer(p);
					json_object_set_new(a->admin_ports, id, port);
					break;
				}
			}
			if (port == NULL) {
				rc = weft_errf(err, WEFT_EINVAL, "%s: no admin port left from %ld", id,
					       a->cfg.admin_base);
				goto out;
			}
		}
		json_object_set(keep_ports, id, port);
		sp->id = id;
		sp->service = json_string_value(json_array_get(names, i));
		struct certs *mc = mesh_certs(a, json_string_value(json_array_get(meshes, i)), 0, err);
		if (mc == NULL || certs_paths(mc, sp->service, &paths[3 * n], &paths[3 * n + 1],
					      &paths[3 * n + 2]) != WEFT_OK) {
			rc = weft_errf(err, WEFT_ENOENT, "%s: no certificate paths for %s", id, sp->service);
			goto out;
		}
		sp->cert_file = paths[3 * n];
		sp->key_file = paths[3 * n + 1];
		sp->bundle_file = paths[3 * n + 2];
		sp->admin_port = (int)json_integer_value(port);
		n++;
	}
	json_decref(a->admin_ports);
	a->admin_ports = json_incref(keep_ports);
	rc = proxies_set(a->proxies, specs, n, err);
out:
	for (i = 0; paths && i < 3 * json_array_size(sidecars); i++)
		free(paths[i]);
	free(paths);
	free(specs);
	json_decref(meshes);
	json_decref(sidecars);
	json_decref(names);
	json_decref(keep_ports);
	return rc;
}

/* Hands the current definitions to the check runner, certificates and
 * proxies, when they changed since the last time. */
static void apply_defs(struct agent *a)
{
	struct state_gen g;
	json_t *services, *node_checks;
	char *err = NULL;

	pthread_mutex_lock(&a->apply_mu);
	g = state_generation(a->st);
	if (a->applied_once && g.defs == a->applied_defs) {
		pthread_mutex_unlock(&a->apply_mu);
		return;
	}
	services = state_services(a->st);
	node_checks = state_node_checks(a->st);
	if (apply_checks(a, services, node_checks, &err) != WEFT_OK) {
		log_warnx("agent", "health checks not updated: %s", err);
		free(err);
		err = NULL;
	}
	if (apply_proxies(a, services, &err) != WEFT_OK) {
		log_warnx("agent", "proxies not updated: %s", err);
		free(err);
		err = NULL;
	}
	json_decref(services);
	json_decref(node_checks);
	a->applied_defs = g.defs;
	a->applied_once = 1;
	pthread_mutex_unlock(&a->apply_mu);
}

static void hook_defs_changed(void *arg)
{
	apply_defs(arg);
}

static int ready_now(struct agent *a)
{
	return a->api != NULL && proxies_ready(a->proxies);
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
	pthread_mutex_init(&a.apply_mu, NULL);
	pthread_mutex_init(&a.certs_mu, NULL);
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
	{
		unsigned char ip[16];
		if (inet_pton(AF_INET, a.cfg.address, ip) != 1 && inet_pton(AF_INET6, a.cfg.address, ip) != 1)
			fatalx("agent", "--address: \"%s\" is not an IP address", a.cfg.address);
	}
	if (a.cfg.token_file) {
		struct stat sb;
		if (stat(a.cfg.token_file, &sb) == 0 && (sb.st_mode & 077))
			fatalx("agent", "--token-file %s: group or others may read it (mode %03o); "
			       "chmod 600 it", a.cfg.token_file, (unsigned)(sb.st_mode & 0777));
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
	so.heartbeat_ms = a.cfg.heartbeat_s > 0 ? a.cfg.heartbeat_s * 1000 : -1;
	if (sync_start(&a.sync, a.st, &so, &err) != WEFT_OK)
		fatalx("agent", "%s", err);
	{
		struct chk_runner_opts co;
		struct certs_opts cto;
		struct proxies_opts po;
		char dir[4096], proxy_bin[4096];

		memset(&co, 0, sizeof(co));
		co.report = on_check_result;
		co.reap = on_check_reap;
		co.arg = &a;
		co.enable_scripts = a.cfg.enable_scripts;
		if (chk_runner_new(&a.checks, &co, &err) != WEFT_OK)
			fatalx("agent", "%s", err);
		memset(&cto, 0, sizeof(cto));
		snprintf(dir, sizeof(dir), "%s/certs", a.cfg.data_dir);
		cto.dir = dir;
		cto.server = a.server;
		cto.changed = on_certs_changed;
		cto.arg = &a;
		if (certs_new(&a.certs, &cto, &err) != WEFT_OK)
			fatalx("agent", "%s", err);
		memset(&po, 0, sizeof(po));
		snprintf(dir, sizeof(dir), "%s/proxies", a.cfg.data_dir);
		if (a.cfg.proxy_bin)
			snprintf(proxy_bin, sizeof(proxy_bin), "%s", a.cfg.proxy_bin);
		else
			default_proxy_bin(proxy_bin, sizeof(proxy_bin));
		po.proxy_bin = proxy_bin;
		po.dir = dir;
		po.server = a.server;
		po.node = a.node;
		if (proxies_new(&a.proxies, &po, &err) != WEFT_OK)
			fatalx("agent", "%s", err);
		if (a.cfg.telemetry_interval_s > 0) {
			struct tele_opts to = { .server = a.server, .node = a.node, .proxies = a.proxies,
						.interval_ms = a.cfg.telemetry_interval_s * 1000 };
			if (tele_start(&a.telemetry, &to, &err) != WEFT_OK)
				fatalx("agent", "%s", err);
		}
		a.admin_ports = json_object();
		apply_defs(&a);
	}

	memset(&ao, 0, sizeof(ao));
	ao.bind = a.cfg.http_addr;
	ao.node = a.node;
	ao.datacenter = a.cfg.datacenter;
	ao.own_token = a.token;
	ao.auth = !a.cfg.dev;
	ao.server = a.server;
	ao.enable_scripts = a.cfg.enable_scripts;
	ao.hooks.status_json = status_json;
	ao.hooks.leaf_json = hook_leaf;
	ao.hooks.roots_json = hook_roots;
	ao.hooks.ttl_update = hook_ttl;
	ao.hooks.defs_changed = hook_defs_changed;
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
		apply_defs(&a);
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
	chk_runner_free(a.checks);
	if (sync_leave(&a.server, a.node, 3000, &err) != WEFT_OK) {
		log_warnx("agent", "could not deregister node %s: %s", a.node, err);
		free(err);
		err = NULL;
	} else {
		log_info("agent", "node %s deregistered", a.node);
	}
	/* after the node left the catalog, so that no caller is sent here */
	certs_free(a.certs);        /* first: its threads call into the proxies */
	a.certs = NULL;
	for (size_t i = 0; i < a.n_other_certs; i++) {
		certs_free(a.other_certs[i].c);
		free(a.other_certs[i].mesh);
	}
	tele_stop(a.telemetry);
	proxies_free(a.proxies);
	a.proxies = NULL;
	rc = 0;
	api_stop(a.api);
	json_decref(a.admin_ports);
	state_free(a.st);
	free(a.token);
	return rc;
}

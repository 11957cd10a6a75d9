/* weft-proxy: the sidecar data plane (docs/proxy-http.md, docs/proxy-mtls.md).
 * Flags and main loop; the relay is px_proxy, mTLS is px_tls.
 *
 *   weft-proxy --listen 127.0.0.1:PORT --upstream IP:PORT     plaintext
 *              [--via NAME] [--by-id SPIFFE-ID] [--peer-id SPIFFE-ID]
 *   weft-proxy --inbound IP:PORT --app 127.0.0.1:PORT          mTLS in
 *   weft-proxy --outbound 127.0.0.1:PORT --upstream IP:PORT    mTLS out
 *              --upstream-id SPIFFE-ID [--sni NAME]
 *   with --cert PEM --key PEM --trust-bundle PEM [--trust-domain TD]
 *        [--mode http|tcp] [--reload-interval SECONDS] [--log-level LEVEL]
 *   and [--admin 127.0.0.1:PORT] [--access-log PATH|-] [--drain-timeout MS]
 *   (docs/proxy-admin.md) and [--workers N] (px_worker.h)
 *   weft-proxy --config SNAPSHOT.json [--reload-interval SECONDS] [--log-level LEVEL]
 *   weft-proxy --config SNAPSHOT.json --check     validate, print, exit 0 or 1
 *   weft-proxy --passthrough IP:PORT --route NAME=IP:PORT[,IP:PORT...] ...
 *              TLS routed by SNI, not decrypted (docs/proxy-passthrough.md);
 *              alone or with the others; with --config, the snapshot's
 *              Passthrough section instead
 *   weft-proxy --server URL --proxy-id ID [--token-file FILE | --token TOKEN]
 *              [--server-ca PEM] [--server-timeout S] [--cert PEM --key PEM]
 *              [--trust-bundle PEM]   the snapshot from weft-server (px_fetch.h)
 *
 * --inbound and --outbound may be given together (one sidecar). SIGHUP
 * (and, with --reload-interval, a change of the files) reloads the
 * certificates and trust bundle for new handshakes.
 *
 * --config (docs/proxy-config.md): the listeners come from the snapshot
 * (Inbound, and one outbound per upstream, balancing over its endpoints
 * as its policy says and following endpoint changes on reload), and the
 * inbound enforces its intentions (px_enforce). SIGHUP (or a change of the
 * file, with --reload-interval) reloads the snapshot through a
 * px_config_slot: a bad one is refused with one log line and the old one
 * stays in force; new connections and requests are decided by the new one.
 * Listener addresses are read at start only; endpoints, balancing,
 * retries, passive health and timeouts of upstreams follow each reload.
 *
 * --workers N (default: one per online core, at most 64): N threads, each
 * with its own event loop and its own instance of every listener
 * (px_worker). The main thread keeps the signals, the reload timer and
 * the admin listener. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "err.h"
#include "log.h"
#include "px_accesslog.h"
#include "px_admin.h"
#include "px_config.h"
#include "px_enforce.h"
#include "px_fetch.h"
#include "px_proxy.h"
#include "px_sni.h"
#include "px_stats.h"
#include "px_tls.h"
#include "px_tproxy.h"
#include "px_worker.h"

struct main_state {
	struct px_tls *tls[2];          /* server, client */
	const char *names[2];
	const char *config_path;        /* --config, or NULL */
	struct px_config_slot slot;
	const struct px_config *boot;   /* the snapshot the listeners were built from */
	struct stat config_st;          /* as of the last (attempted) load */
};

/* "A.B.C.D:PORT" (an IPv4 literal); loopback: only 127.0.0.1, for what
 * carries plaintext from or to the local app. */
static int parse_addr(const char *s, struct sockaddr_in *sa, bool loopback)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	char host[32];
	char *end;
	long port;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (loopback && strcmp(host, "127.0.0.1") != 0)
		return -1;
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* SNI for spiffe://TD/ns/MESH/dc/ZONE/svc/SERVICE: SERVICE.MESH.ZONE.TD. */
static int derive_sni(const char *id, char *out, size_t size)
{
	char td[256], mesh[64], zone[64], svc[64];

	if (sscanf(id, "spiffe://%255[^/]/ns/%63[^/]/dc/%63[^/]/svc/%63[^/]", td, mesh, zone, svc) != 4)
		return -1;
	return snprintf(out, size, "%s.%s.%s.%s", svc, mesh, zone, td) < (int)size ? 0 : -1;
}

static int read_file(const char *path, char **data, size_t *len, char **err)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t n;
	int rc = WEFT_OK;

	*data = NULL;
	if (f == NULL)
		return weft_errf(err, WEFT_EIO, "%s: %s", path, strerror(errno));
	b = malloc(PX_CONFIG_MAX_BYTES + 1);
	if (b == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	n = fread(b, 1, PX_CONFIG_MAX_BYTES + 1, f);
	if (ferror(f)) {
		rc = weft_errf(err, WEFT_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (n > PX_CONFIG_MAX_BYTES) {
		rc = weft_errf(err, WEFT_ETOOBIG, "%s: larger than %u bytes", path, PX_CONFIG_MAX_BYTES);
		goto out;
	}
	*data = b;
	*len = n;
	b = NULL;
out:
	free(b);
	fclose(f);
	return rc;
}

static bool config_changed(struct main_state *m)
{
	struct stat st;

	if (stat(m->config_path, &st) != 0)
		return false;
	return st.st_mtim.tv_sec != m->config_st.st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != m->config_st.st_mtim.tv_nsec ||
	       st.st_size != m->config_st.st_size || st.st_ino != m->config_st.st_ino;
}

/* Loads --config into the slot: 0, or -1 with *err naming the field. */
static int load_config(struct main_state *m, char **err)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	if (stat(m->config_path, &m->config_st) != 0)
		memset(&m->config_st, 0, sizeof(m->config_st));
	rc = read_file(m->config_path, &data, &len, err);
	if (rc == WEFT_OK)
		rc = px_config_slot_load(&m->slot, data, len, err);
	free(data);
	return rc == WEFT_OK ? 0 : -1;
}

/* Whether the listeners of b differ from those of a (built at start). */
static bool listeners_differ(const struct px_config *a, const struct px_config *b)
{
	if (strcmp(a->inbound.bind_address, b->inbound.bind_address) != 0 ||
	    a->inbound.bind_port != b->inbound.bind_port ||
	    strcmp(a->inbound.app_address, b->inbound.app_address) != 0 ||
	    a->inbound.app_port != b->inbound.app_port || a->inbound.protocol != b->inbound.protocol ||
	    a->n_upstreams != b->n_upstreams ||
	    a->transparent.configured != b->transparent.configured ||
	    (a->transparent.configured &&
	     (strcmp(a->transparent.bind_address, b->transparent.bind_address) != 0 ||
	      a->transparent.bind_port != b->transparent.bind_port)))
		return true;
	for (size_t i = 0; i < a->n_upstreams; i++) {
		const struct px_upstream *x = &a->upstreams[i], *y = &b->upstreams[i];

		/* (endpoints and policies follow the slot: px_cluster) */
		if (strcmp(x->name, y->name) != 0 || strcmp(x->bind_address, y->bind_address) != 0 ||
		    x->bind_port != y->bind_port || x->protocol != y->protocol)
			return true;
	}
	return false;
}

static void reload_config(struct main_state *m, bool only_if_changed)
{
	struct px_config *cfg;
	char *err = NULL;

	if (m->config_path == NULL || (only_if_changed && !config_changed(m)))
		return;
	if (load_config(m, &err) != 0) {
		log_warnx("proxy", "config reload refused: file=%s error=\"%s\" (the previous snapshot "
			  "stays in force)", m->config_path, err ? err : "?");
		free(err);
		return;
	}
	cfg = px_config_slot_get(&m->slot);
	log_info("proxy", "config reloaded: file=%s index=%llu intentions=%zu default=%s",
		 m->config_path, (unsigned long long)cfg->index, intention_set_count(cfg->intentions),
		 cfg->default_action == INTENTION_ALLOW ? "allow" : "deny");
	if (listeners_differ(m->boot, cfg))
		log_warnx("proxy", "config: Inbound or Upstreams listeners changed: they take effect "
			  "on restart (the intentions are in force now)");
	px_config_unref(cfg);
}

static void reload(struct main_state *m, bool only_if_changed)
{
	reload_config(m, only_if_changed);
	for (int i = 0; i < 2; i++) {
		char *err = NULL;

		if (m->tls[i] == NULL || (only_if_changed && !px_tls_changed(m->tls[i])))
			continue;
		if (px_tls_reload(m->tls[i], &err) != 0)
			log_warnx("proxy", "tls reload failed: listener=%s error=\"%s\" (the previous "
				  "certificates stay in use)", m->names[i], err ? err : "?");
		else
			log_info("proxy", "tls reloaded: listener=%s id=%s expires_in_s=%lld", m->names[i],
				 px_tls_self_id(m->tls[i]),
				 px_tls_not_after(m->tls[i]) - (long long)time(NULL));
		free(err);
	}
}

/* px_admin's /stats: the snapshot's refusals and versions */
static void slot_stats(void *slot, struct buf *out)
{
	px_config_slot_stats(slot, out);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	reload(arg, false);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	reload(arg, true);
}

/* px_admin's /drain with the listeners on the workers' loops */
static void workers_drain(void *w)
{
	px_worker_drain(w);
}

static size_t workers_conns(void *w)
{
	return px_worker_conns(w);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Per outbound listener built from the snapshot: its strings. */
struct up_names {
	char name[PX_CONFIG_NAME_MAX + 16];
	char sni[300];
};

static const char *pem_file(const struct px_pem_ref *r, const char *field)
{
	if (r->file == NULL && r->pem == NULL)
		fatalx("proxy", "config: TLS.%s: absent (a snapshot with only the trust bundle is the "
		       "server's: run weft-proxy --server with --cert and --key)", field);
	if (r->file == NULL)
		fatalx("proxy", "config: TLS.%s: weft-proxy --config takes File, not inline PEM", field);
	return r->file;
}

static void addr_port(const char *addr, uint16_t port, struct sockaddr_in *sa, const char *field)
{
	char s[PX_CONFIG_ADDR_MAX + 8];

	snprintf(s, sizeof(s), "%s:%u", addr, port);
	if (parse_addr(s, sa, false) != 0)
		fatalx("proxy", "config: %s: \"%s\": this proxy listens and connects on IPv4 only",
		       field, addr);
}

/* The listeners of the snapshot c into cfg[*n..]: the inbound (with
 * intentions enforced by enf; NULL: by each worker's own, px_worker.h)
 * and one outbound per upstream with an
 * endpoint (its first one). */
static void from_config(struct main_state *m, const struct px_config *c, const char *via,
			struct px_enforce *enf, struct up_names *names, struct px_listener_cfg *cfg,
			int *n)
{
	struct px_tls_files files = {0};

	if (c->tls.configured) {
		files.cert = pem_file(&c->tls.certificate, "Certificate");
		files.key = pem_file(&c->tls.private_key, "PrivateKey");
		files.bundle = pem_file(&c->tls.trust_bundle, "TrustBundle");
		files.trust_domain = c->identity.trust_domain;
	}
	cfg[*n] = (struct px_listener_cfg){
		.name = "inbound", .via = via, .authorize = px_enforce_authorize, .authorize_ud = enf,
		.mode = c->inbound.protocol == PX_PROTO_HTTP ? PX_MODE_HTTP : PX_MODE_TCP,
	};
	if (c->tls.configured) {
		char *err = NULL;

		if (px_tls_new(&m->tls[0], PX_TLS_SERVER, &files, &err) != 0)
			fatalx("proxy", "config: TLS: %s", err);
		cfg[*n].tls_in = m->tls[0];
	}
	addr_port(c->inbound.bind_address, c->inbound.bind_port, &cfg[*n].listen, "Inbound.BindAddress");
	addr_port(c->inbound.app_address, c->inbound.app_port, &cfg[*n].upstream, "Inbound.AppAddress");
	snprintf(cfg[*n].upstream_name, sizeof(cfg[*n].upstream_name), "%s:%u", c->inbound.app_address,
		 c->inbound.app_port);
	cfg[*n].timeouts = &c->inbound.timeouts;
	cfg[*n].max_connections = c->inbound.limits.max_connections;
	cfg[*n].max_pending_requests = c->inbound.limits.max_pending_requests;
	cfg[*n].max_body_bytes = c->inbound.limits.max_body_bytes;
	cfg[*n].max_header_bytes = c->inbound.limits.max_header_bytes;
	(*n)++;
	for (size_t i = 0; i < c->n_upstreams; i++) {
		const struct px_upstream *u = &c->upstreams[i];
		struct px_listener_cfg *lc = &cfg[*n];
		char field[64];

		if (!c->tls.configured)
			fatalx("proxy", "config: TLS: required for Upstreams[%zu] (%s)", i, u->name);
		if (m->tls[1] == NULL) {
			char *err = NULL;

			if (px_tls_new(&m->tls[1], PX_TLS_CLIENT, &files, &err) != 0)
				fatalx("proxy", "config: TLS: %s", err);
		}
		snprintf(names[i].name, sizeof(names[i].name), "outbound:%s", u->name);
		/* the endpoints, their SPIFFE IDs and server names come from
		 * the slot, followed as it changes (px_cluster) */
		*lc = (struct px_listener_cfg){
			.name = names[i].name, .via = via, .tls_out = m->tls[1],
			.mode = u->protocol == PX_PROTO_HTTP ? PX_MODE_HTTP : PX_MODE_TCP,
			.slot = &m->slot, .upstream_cluster = u->name,
			.max_connections = u->limits.max_connections,
			.max_pending_requests = u->limits.max_pending_requests,
			.max_body_bytes = u->limits.max_body_bytes,
			.max_header_bytes = u->limits.max_header_bytes,
		};
		snprintf(field, sizeof(field), "Upstreams[%zu].BindAddress", i);
		addr_port(u->bind_address, u->bind_port, &lc->listen, field);
		snprintf(lc->upstream_name, sizeof(lc->upstream_name), "%s", u->name);
		(*n)++;
	}
}

/* --server: a new snapshot from the fetch thread. A new trust bundle
 * is written to its file; SIGHUP makes the loop reload the TLS contexts. */
static void on_server_snapshot(void *arg, const struct px_config *cfg, int bundle_changed)
{
	struct main_state *m = arg;

	if (listeners_differ(m->boot, cfg))
		log_warnx("proxy", "config: Inbound or Upstreams listeners changed: they take effect "
			  "on restart (the intentions are in force now)");
	if (bundle_changed)
		kill(getpid(), SIGHUP);
}

/* The passthrough listener's address and routes (px_sni), once for every
 * event loop: from --passthrough and --route, or from the snapshot's
 * Passthrough section. Returns false when there is no such listener. */
static bool passthrough_setup(const char *listen_s, struct px_sni_routes *routes,
			      const struct px_config *boot, struct px_sni_cfg *sc)
{
	char *err = NULL;

	*sc = (struct px_sni_cfg){.name = "passthrough", .routes = routes};
	if (boot != NULL && boot->passthrough.configured) {
		if (px_sni_routes_add_config(routes, &boot->passthrough, &err) != 0)
			fatalx("proxy", "config: %s", err);
		addr_port(boot->passthrough.bind_address, boot->passthrough.bind_port, &sc->listen,
			  "Passthrough.BindAddress");
		return true;
	}
	if (listen_s == NULL)
		return false;
	if (parse_addr(listen_s, &sc->listen, false) != 0)
		fatalx("proxy", "--passthrough: want IP:PORT, got \"%s\"", listen_s);
	return true;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: weft-proxy --listen 127.0.0.1:PORT --upstream IP:PORT [--via NAME] [--by-id ID] [--peer-id ID]\n"
		"       weft-proxy [--inbound IP:PORT --app 127.0.0.1:PORT] [--outbound 127.0.0.1:PORT\n"
		"                  --upstream IP:PORT --upstream-id ID [--sni NAME]] --cert PEM --key PEM\n"
		"                  --trust-bundle PEM [--trust-domain TD] [--mode http|tcp] [--reload-interval S]\n"
		"                  [--log-level error|warn|info|debug]\n"
		"       with [--admin 127.0.0.1:PORT] [--access-log PATH|-] [--drain-timeout MS]\n"
		"            [--workers N]\n"
		"       weft-proxy --config SNAPSHOT.json [--reload-interval S] [--log-level LEVEL]\n"
		"       weft-proxy --config SNAPSHOT.json --check\n"
		"       weft-proxy --passthrough IP:PORT --route NAME=IP:PORT[,IP:PORT...] [--route ...]\n"
		"       weft-proxy --server URL --proxy-id ID [--token-file FILE | --token TOKEN]\n"
		"                  [--server-ca PEM] [--server-timeout S] [--cert PEM --key PEM]\n"
		"                  [--trust-bundle PEM] [--reload-interval S] [--log-level LEVEL]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'}, {"upstream", required_argument, NULL, 'u'},
		{"via", required_argument, NULL, 'v'}, {"by-id", required_argument, NULL, 'b'},
		{"peer-id", required_argument, NULL, 'p'}, {"inbound", required_argument, NULL, 'i'},
		{"app", required_argument, NULL, 'a'}, {"outbound", required_argument, NULL, 'o'},
		{"upstream-id", required_argument, NULL, 'U'}, {"sni", required_argument, NULL, 's'},
		{"cert", required_argument, NULL, 'c'}, {"key", required_argument, NULL, 'k'},
		{"trust-bundle", required_argument, NULL, 't'}, {"trust-domain", required_argument, NULL, 'T'},
		{"mode", required_argument, NULL, 'm'}, {"reload-interval", required_argument, NULL, 'r'},
		{"log-level", required_argument, NULL, 'L'}, {"config", required_argument, NULL, 'C'},
		{"check", no_argument, NULL, 'K'},
		{"admin", required_argument, NULL, 'A'}, {"access-log", required_argument, NULL, 'g'},
		{"drain-timeout", required_argument, NULL, 'D'},
		{"passthrough", required_argument, NULL, 'P'}, {"route", required_argument, NULL, 'R'},
		{"workers", required_argument, NULL, 'W'},
		{"server", required_argument, NULL, 'S'}, {"token", required_argument, NULL, 'X'},
		{"token-file", required_argument, NULL, 'F'}, {"proxy-id", required_argument, NULL, 'I'},
		{"server-ca", required_argument, NULL, 'Y'}, {"server-timeout", required_argument, NULL, 'Z'},
		{NULL, 0, NULL, 0},
	};
	const char *listen_s = NULL, *up_s = NULL, *in_s = NULL, *app_s = NULL, *out_s = NULL;
	const char *via = "weft-proxy", *by_id = NULL, *peer_id = NULL, *up_id = NULL, *sni = NULL;
	struct px_tls_files files = {0};
	enum px_mode mode = PX_MODE_HTTP;
	long interval = 0;
	struct px_listener_cfg *cfg;
	struct px_config *boot = NULL;
	struct up_names *up_names = NULL;
	struct main_state m = {.names = {"inbound", "outbound"}};
	struct event_base *base;
	struct event *sigint, *sigterm, *sighup, *tick = NULL;
	char sni_buf[300], admin_buf[PX_CONFIG_ADDR_MAX + 8], *err = NULL, *end;
	enum log_level lvl = LOG_LVL_INFO;
	bool check = false;
	int o, n = 0;
	/* admin, stats, access log (px_admin.h) */
	const char *admin_s = NULL, *alog_s = NULL;
	long drain_ms = 30000;
	struct px_admin *admin = NULL;
	struct px_admin_cfg acfg = {0};
	/* passthrough (px_sni) */
	const char *pt_s = NULL;
	struct px_sni_routes *routes = NULL;
	struct px_sni_cfg pt_cfg;
	bool has_routes = false, pt_on;
	/* the transparent outbound listener (px_tproxy) */
	struct px_tproxy_cfg tp_cfg;
	/* worker threads (px_worker.h) */
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	struct px_worker_cfg wcfg = {
		.n = online < 1 ? 1 : online > PX_WORKERS_MAX ? PX_WORKERS_MAX : (unsigned)online,
	};
	struct px_worker *workers = NULL;
	/* the snapshot from weft-server (px_fetch.h) */
	struct px_fetch_opts fo = {0};
	struct px_fetch *fetch = NULL;
	const char *token_file = NULL;
	char *token = NULL;
	long server_timeout = 30;

	log_setup(LOG_LVL_INFO, stderr);
	if (px_sni_routes_new(&routes) != 0)
		fatalx("proxy", "out of memory");
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'l': listen_s = optarg; break;
		case 'u': up_s = optarg; break;
		case 'v': via = optarg; break;
		case 'b': by_id = optarg; break;
		case 'p': peer_id = optarg; break;
		case 'i': in_s = optarg; break;
		case 'a': app_s = optarg; break;
		case 'o': out_s = optarg; break;
		case 'U': up_id = optarg; break;
		case 's': sni = optarg; break;
		case 'C': m.config_path = optarg; break;
		case 'K': check = true; break;
		case 'c': files.cert = optarg; break;
		case 'k': files.key = optarg; break;
		case 't': files.bundle = optarg; break;
		case 'T': files.trust_domain = optarg; break;
		case 'm':
			if (strcmp(optarg, "http") == 0)
				mode = PX_MODE_HTTP;
			else if (strcmp(optarg, "tcp") == 0)
				mode = PX_MODE_TCP;
			else
				fatalx("proxy", "--mode: want http or tcp, got \"%s\"", optarg);
			break;
		case 'r':
			interval = strtol(optarg, &end, 10);
			if (*end != '\0' || interval < 0 || interval > 86400)
				fatalx("proxy", "--reload-interval: want 0..86400 seconds, got \"%s\"", optarg);
			break;
		case 'L':
			if (log_parse_level(optarg, &lvl) != 0)
				fatalx("proxy", "--log-level: want error, warn, info or debug, got \"%s\"", optarg);
			log_setup(lvl, stderr);
			break;
		case 'A': admin_s = optarg; break;
		case 'g': alog_s = optarg; break;
		case 'D':
			drain_ms = strtol(optarg, &end, 10);
			if (*end != '\0' || drain_ms < 0 || drain_ms > 3600000)
				fatalx("proxy", "--drain-timeout: want 0..3600000 ms, got \"%s\"", optarg);
			break;
		case 'P': pt_s = optarg; break;
		case 'R':
			if (px_sni_routes_add_spec(routes, optarg, &err) != 0)
				fatalx("proxy", "--route: %s", err);
			has_routes = true;
			break;
		case 'W': {
			long v = strtol(optarg, &end, 10);

			if (end == optarg || *end != '\0' || v < 1 || v > PX_WORKERS_MAX)
				fatalx("proxy", "--workers: want 1..%d threads, got \"%s\"", PX_WORKERS_MAX,
				       optarg);
			wcfg.n = (unsigned)v;
			break;
		}
		case 'S': fo.server = optarg; break;
		case 'X': fo.token = optarg; break;
		case 'F': token_file = optarg; break;
		case 'I': fo.proxy_id = optarg; break;
		case 'Y': fo.ca_file = optarg; break;
		case 'Z':
			server_timeout = strtol(optarg, &end, 10);
			if (*end != '\0' || server_timeout < 1 || server_timeout > 86400)
				fatalx("proxy", "--server-timeout: want 1..86400 seconds, got \"%s\"", optarg);
			break;
		default:
			usage();
		}
	}
	if (fo.server != NULL) {
		if (m.config_path || listen_s || in_s || out_s || up_s || app_s || up_id || sni ||
		    files.trust_domain || check)
			fatalx("proxy", "--server: the snapshot gives the listeners; give only --proxy-id, "
			       "--token-file or --token, --server-ca, --server-timeout, --cert, --key, "
			       "--trust-bundle, --admin, --access-log, --reload-interval, --log-level");
		if (fo.token && token_file)
			fatalx("proxy", "--token and --token-file: give one");
		if (token_file && px_fetch_read_token(token_file, &token, &err) != WEFT_OK)
			fatalx("proxy", "%s", err);
		if (token)
			fo.token = token;
		fo.cert_file = files.cert;
		fo.key_file = files.key;
		fo.bundle_file = files.bundle;
		fo.slot = &m.slot;
		fo.on_load = on_server_snapshot;
		fo.arg = &m;
		files = (struct px_tls_files){0};
	} else if (fo.proxy_id || fo.token || token_file || fo.ca_file) {
		fatalx("proxy", "--proxy-id, --token, --token-file, --server-ca: give --server too");
	}
	if (optind != argc || (listen_s == NULL && in_s == NULL && out_s == NULL && m.config_path == NULL &&
			       fo.server == NULL && pt_s == NULL))
		usage();
	if (has_routes && pt_s == NULL)
		fatalx("proxy", "--route: give --passthrough IP:PORT too");
	if (listen_s != NULL && (in_s != NULL || out_s != NULL))
		fatalx("proxy", "--listen (plaintext) cannot be combined with --inbound or --outbound");
	if (admin_s != NULL && parse_addr(admin_s, &acfg.listen, true) != 0)
		fatalx("proxy", "--admin: want 127.0.0.1:PORT (the admin listener is loopback only), "
		       "got \"%s\"", admin_s);
	if (m.config_path != NULL && (listen_s || in_s || out_s || up_s || app_s || up_id || sni || pt_s ||
				      files.cert || files.key || files.bundle || files.trust_domain))
		fatalx("proxy", "--config: the snapshot gives the listeners and certificates; "
		       "give only --reload-interval and --log-level with it");
	if (check && m.config_path == NULL)
		fatalx("proxy", "--check: give --config FILE");
	px_config_slot_init(&m.slot);
	if (check) {
		int rc = load_config(&m, &err);

		if (rc == 0) {
			/* what only the proxy checks: IPv4 endpoints */
			struct px_config *c = px_config_slot_get(&m.slot);

			rc = px_sni_routes_add_config(routes, &c->passthrough, &err);
			px_config_unref(c);
		}
		if (rc != 0)
			fprintf(stderr, "%s: %s\n", m.config_path, err);
		else
			printf("%s: ok\n", m.config_path);
		free(err);
		px_config_slot_destroy(&m.slot);
		px_sni_routes_free(routes);
		return rc == 0 ? 0 : 1;
	}
	if (fo.server != NULL) {
		if (px_fetch_new(&fetch, &fo, &err) != WEFT_OK ||
		    px_fetch_first(fetch, server_timeout * 1000, &err) != WEFT_OK)
			fatalx("proxy", "--server: %s", err);
	}
	if (m.config_path != NULL || fetch != NULL) {
		if (fetch == NULL && load_config(&m, &err) != 0)
			fatalx("proxy", "config: %s", err);
		boot = px_config_slot_get(&m.slot);
		m.boot = boot;
		/* each worker enforces with its own px_enforce (px_worker.h) */
		wcfg.enforce_slot = &m.slot;
		wcfg.enforce_http = boot->inbound.protocol == PX_PROTO_HTTP;
		log_info("proxy", "config loaded: file=%s index=%llu service=%s intentions=%zu default=%s",
			 m.config_path ? m.config_path : fo.server, (unsigned long long)boot->index, boot->identity.service,
			 intention_set_count(boot->intentions),
			 boot->default_action == INTENTION_ALLOW ? "allow" : "deny");
	}
	if (boot != NULL && admin_s == NULL && boot->admin.bind_port != 0) {
		/* the snapshot's Admin and AccessLog, unless the flags say */
		snprintf(admin_buf, sizeof(admin_buf), "%s:%u", boot->admin.bind_address,
			 (unsigned)boot->admin.bind_port);
		admin_s = admin_buf;
		if (parse_addr(admin_s, &acfg.listen, true) != 0)
			fatalx("proxy", "config: Admin.BindAddress: want 127.0.0.1 (the admin listener is "
			       "loopback only), got \"%s\"", boot->admin.bind_address);
	}
	if (boot != NULL && alog_s == NULL && boot->access_log.enabled)
		alog_s = boot->access_log.path;
	cfg = calloc(3 + (boot ? boot->n_upstreams : 0), sizeof(*cfg));
	up_names = calloc(boot ? boot->n_upstreams + 1 : 1, sizeof(*up_names));
	if (cfg == NULL || up_names == NULL)
		fatalx("proxy", "out of memory");
	if (boot != NULL)
		from_config(&m, boot, via, NULL, up_names, cfg, &n);
	if (listen_s != NULL) {
		cfg[n] = (struct px_listener_cfg){.name = "listen", .mode = mode, .via = via,
						  .by_id = by_id, .peer_id = peer_id};
		if (parse_addr(listen_s, &cfg[n].listen, true) != 0)
			fatalx("proxy", "--listen: want 127.0.0.1:PORT, got \"%s\"", listen_s);
		if (parse_addr(up_s, &cfg[n].upstream, true) != 0)
			fatalx("proxy", "--upstream: want 127.0.0.1:PORT, got \"%s\"", up_s ? up_s : "");
		snprintf(cfg[n].upstream_name, sizeof(cfg[n].upstream_name), "%s", up_s);
		n++;
	}
	if (in_s != NULL) {
		if (px_tls_new(&m.tls[0], PX_TLS_SERVER, &files, &err) != 0)
			fatalx("proxy", "inbound: %s", err);
		cfg[n] = (struct px_listener_cfg){.name = "inbound", .mode = mode, .via = via,
						  .tls_in = m.tls[0]};
		if (parse_addr(in_s, &cfg[n].listen, false) != 0)
			fatalx("proxy", "--inbound: want IP:PORT, got \"%s\"", in_s);
		if (parse_addr(app_s, &cfg[n].upstream, true) != 0)
			fatalx("proxy", "--app: want 127.0.0.1:PORT, got \"%s\"", app_s ? app_s : "");
		snprintf(cfg[n].upstream_name, sizeof(cfg[n].upstream_name), "%s", app_s);
		n++;
	}
	if (out_s != NULL) {
		if (up_id == NULL || strncmp(up_id, "spiffe://", 9) != 0)
			fatalx("proxy", "--upstream-id: want the upstream's spiffe:// ID, got \"%s\"",
			       up_id ? up_id : "");
		if (sni == NULL) {
			if (derive_sni(up_id, sni_buf, sizeof(sni_buf)) != 0)
				fatalx("proxy", "--sni: cannot derive one from \"%s\"; give --sni", up_id);
			sni = sni_buf;
		}
		if (px_tls_new(&m.tls[1], PX_TLS_CLIENT, &files, &err) != 0)
			fatalx("proxy", "outbound: %s", err);
		cfg[n] = (struct px_listener_cfg){.name = "outbound", .mode = mode, .via = via,
						  .tls_out = m.tls[1], .upstream_id = up_id, .sni = sni};
		if (parse_addr(out_s, &cfg[n].listen, true) != 0)
			fatalx("proxy", "--outbound: want 127.0.0.1:PORT, got \"%s\"", out_s);
		if (parse_addr(up_s, &cfg[n].upstream, false) != 0)
			fatalx("proxy", "--upstream: want IP:PORT, got \"%s\"", up_s ? up_s : "");
		snprintf(cfg[n].upstream_name, sizeof(cfg[n].upstream_name), "%s", up_s);
		n++;
	}
	pt_on = passthrough_setup(pt_s, routes, boot, &pt_cfg);
	if (boot != NULL && boot->transparent.configured) {
		tp_cfg = (struct px_tproxy_cfg){.name = "transparent", .slot = &m.slot};
		addr_port(boot->transparent.bind_address, boot->transparent.bind_port, &tp_cfg.listen,
			  "Transparent.BindAddress");
		wcfg.transparent = &tp_cfg;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL)
		fatalx("proxy", "event_base_new failed");
	wcfg.listeners = cfg;
	wcfg.nlisteners = (size_t)n;
	wcfg.access_log = alog_s;
	wcfg.passthrough = pt_on ? &pt_cfg : NULL;
	if (px_worker_new(&workers, &wcfg, &err) != 0)
		fatalx("proxy", "%s", err);
	for (int i = 0; i < n; i++)
		log_info("proxy", "listening: listener=%s mode=%s upstream=%s%s%s workers=%u", cfg[i].name,
			 cfg[i].mode == PX_MODE_TCP ? "tcp" : "http", cfg[i].upstream_name,
			 cfg[i].upstream_id ? " upstream-id=" : "", cfg[i].upstream_id ? cfg[i].upstream_id : "",
			 wcfg.n);
	if (pt_on)
		log_info("proxy", "listening: listener=passthrough mode=sni routes=%zu workers=%u",
			 px_sni_routes_count(routes), wcfg.n);
	if (wcfg.transparent != NULL)
		log_info("proxy", "listening: listener=transparent address=%s:%u passthrough=%s "
			 "workers=%u", boot->transparent.bind_address, boot->transparent.bind_port,
			 boot->transparent.passthrough ? "on" : "off", wcfg.n);
	if (admin_s != NULL) {
		acfg.stats = px_worker_stats(workers, &acfg.nstats);
		acfg.lcfg = cfg;
		acfg.nlisteners = (size_t)n;
		acfg.tls = m.tls[0] || m.tls[1] ? &files : NULL;
		acfg.certs = m.tls;
		acfg.ncerts = 2;
		acfg.access_log = alog_s;
		acfg.drain_timeout_ms = (unsigned)drain_ms;
		acfg.drain = workers_drain;
		acfg.open_conns = workers_conns;
		acfg.ud = workers;
		acfg.workers = wcfg.n;
		acfg.more_stats = slot_stats;
		acfg.more_stats_arg = &m.slot;
		if (px_admin_new(&admin, base, &acfg, &err) != 0)
			fatalx("proxy", "%s", err);
	}
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sighup = evsignal_new(base, SIGHUP, on_hup, &m);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	event_add(sighup, NULL);
	if (interval > 0) {
		struct timeval tv = {interval, 0};

		tick = event_new(base, -1, EV_PERSIST, on_tick, &m);
		event_add(tick, &tv);
	}
	if (fetch != NULL && px_fetch_start(fetch, &err) != WEFT_OK)
		fatalx("proxy", "--server: %s", err);
	/* the signals have their handlers: the threads may start (with every
	 * signal blocked), and we say we are up */
	if (px_worker_start(workers, &err) != 0)
		fatalx("proxy", "%s", err);
	if (admin_s != NULL)
		log_info("proxy", "admin listening: %s", admin_s);
	event_base_dispatch(base);
	px_worker_stop(workers);
	px_fetch_free(fetch);
	free(token);
	px_admin_free(admin);
	px_worker_free(workers);
	px_sni_routes_free(routes);
	if (tick)
		event_free(tick);
	event_free(sigint);
	event_free(sigterm);
	event_free(sighup);
	event_base_free(base);
	px_tls_free(m.tls[0]);
	px_tls_free(m.tls[1]);
	px_config_unref(boot);
	px_config_slot_destroy(&m.slot);
	free(cfg);
	free(up_names);
	return 0;
}

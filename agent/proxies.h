/* proxies: weft-agent runs the sidecars of its VM (docs/agent.md "Proxies").
 *
 * For each sidecar (a connect-proxy service instance registered by the
 * agent) two threads of its own:
 * - a watcher long-polls GET /v1/weft/proxy/<id>/snapshot?node=<node>
 *   (lib/httpc, the agent's token) and, for each new snapshot, adds what
 *   only the VM knows (the leaf, key and bundle files, the admin listener,
 *   the access log: proxies_localize), validates it with the proxy's own
 *   decoder (px_config), writes it atomically (0600) to
 *   <dir>/<id>/snapshot.json and has the proxy reload it (SIGHUP), or
 *   restarts the proxy when its listeners changed. A snapshot that does not
 *   validate is logged and not handed over. Server unreachable: jittered
 *   backoff, 1 s doubling to 30 s; the proxy keeps running on its file.
 * - a supervisor runs `weft-proxy --config <dir>/<id>/snapshot.json
 *   --workers 1 --drain-timeout <drain_ms>` once the snapshot and the
 *   certificate files exist (files left from before are enough: the server
 *   may be down), restarts it when it exits (100 ms doubling to 30 s, reset
 *   after 60 s of uptime), copies its output to <dir>/<id>/proxy.log
 *   (rotated to proxy.log.1 at 4 MiB), and stops it by POST /drain on its
 *   admin listener (SIGTERM when that fails), SIGKILL after the drain time.
 *   The proxy gets PR_SET_PDEATHSIG(SIGKILL): it dies with the agent.
 *
 * Call httpc_global_init() once before proxies_new(). Every function is
 * safe to call from any thread. The proxies are waited for by pid (each
 * through a pidfd): the rest of the agent must not set SIGCHLD to SIG_IGN
 * nor reap with waitpid(-1, ...) (wait for its own children by pid). */
#ifndef WEFT_AGENT_PROXIES_H
#define WEFT_AGENT_PROXIES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "httpc.h"

struct proxy_spec {
	const char *id;          /* the sidecar's service ID */
	const char *service;     /* its destination service */
	const char *cert_file, *key_file, *bundle_file;  /* the leaf and bundle files */
	int admin_port;          /* 127.0.0.1:<port> */
	const char *access_log;  /* NULL: none; "-" (proxy.log) or an absolute path */
};

struct proxies_opts {
	const char *proxy_bin;   /* weft-proxy's path */
	const char *dir;         /* <dir>/<id>/snapshot.json */
	struct httpc_opts server;
	const char *node;        /* this agent's node name */
	int64_t drain_ms;        /* default (0) 5000 */
};

struct proxies;

/* Copies the options (strings included). No thread starts before the
 * first proxies_set(). */
int proxies_new(struct proxies **out, const struct proxies_opts *o, char **err);

/* Replaces the set: starts new ones, stops removed ones, keeps the rest
 * (a spec whose fields changed is restarted). The specs are validated
 * first (ids unique and usable as a directory name, absolute paths, admin
 * ports in 1..65535 and distinct); on an error nothing changes and *err
 * names the spec and field ("specs[1].AdminPort: ..."). A sidecar that
 * cannot be set up (its directory, a thread) is an error too, after the
 * others were applied. Returns after the removed proxies have stopped (up
 * to the drain time). */
int proxies_set(struct proxies *p, const struct proxy_spec *specs, size_t n, char **err);

/* The certificate files of `service` changed (NULL: the bundle, all
 * proxies): SIGHUP the proxies using them (weft-proxy reloads its
 * certificate, key and bundle files on SIGHUP). A proxy waiting for its
 * files looks again. */
void proxies_tls_changed(struct proxies *p, const char *service);

/* 1 when every proxy of the set runs and its admin /ready answers 200
 * (asked now, 500 ms at most each); 1 for an empty set. */
int proxies_ready(struct proxies *p);

/* For the agent's view and tests: a JSON array, one object per proxy:
 * ID, Service, Pid (0: not running), Restarts, SnapshotIndex (of the file
 * handed over, 0: none yet), Ready (its /ready answered 200 since it
 * started), AdminPort, Snapshot (the file), Waiting (what it waits for
 * before it can start, or null), LastError (the watcher's, or null). */
int proxies_status_json(struct proxies *p, json_t **out);

/* Stops every proxy as proxies_set does for a removed one; NULL is fine. */
void proxies_free(struct proxies *p);

/* The snapshot body the server sent, as the proxy of spec gets it:
 * TLS.Certificate/PrivateKey/TrustBundle set to the spec's files (when the
 * snapshot has TLS), Admin to 127.0.0.1:admin_port, AccessLog from the
 * spec; then decoded by px_config_decode(). Refused (WEFT_EINVAL, *err
 * naming the field) when it is not for spec->service or does not decode.
 * *out is the JSON text (caller frees); *index its Index. */
int proxies_localize(const struct proxy_spec *spec, const char *body, size_t len, char **out,
		     uint64_t *index, char **err);

#endif

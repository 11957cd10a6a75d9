/* px_fetch: weft-proxy's snapshot from the control plane
 * (docs/proxy-config.md "From the control plane").
 *
 * GET /v1/weft/proxy/<proxy-id>/snapshot on weft-server, long-polled
 * (blocking queries: ?index= the last X-Consul-Index, ?wait=) by one thread
 * of its own, with the token as X-Consul-Token and https verified against
 * --server-ca. Each new snapshot goes through px_config_slot_load: a bad
 * one is refused with one log line and the current one stays. When the
 * server cannot be reached (or answers an error), the thread retries with
 * jittered exponential backoff (250 ms doubling to 30 s) and the proxy
 * keeps serving on its current snapshot.
 *
 * The server never sends a key: before loading, the snapshot's TLS gets
 * Certificate and PrivateKey as the files given (--cert, --key), and an
 * inline TrustBundle PEM is written (atomically, when it changed) to
 * bundle_file and referenced as a File, so that px_tls loads and reloads
 * all three from files. */
#ifndef WEFT_PX_FETCH_H
#define WEFT_PX_FETCH_H

#include "px_config.h"

#define PX_FETCH_WAIT_S 300            /* the blocking query's ?wait= */
#define PX_FETCH_BACKOFF_MIN_MS 250
#define PX_FETCH_BACKOFF_MAX_MS 30000

struct px_fetch_opts {
	const char *server;        /* URL or HOST:PORT (px_httpget.h) */
	const char *token;         /* X-Consul-Token, or NULL */
	const char *ca_file;       /* PEM bundle to verify an https server, or NULL */
	const char *proxy_id;      /* the proxy's catalog service ID */
	const char *cert_file;     /* the leaf (and chain) where the proxy runs, or NULL */
	const char *key_file;      /* its key, or NULL; both or neither */
	const char *bundle_file;   /* where an inline trust bundle is written; NULL: a
				    * private temporary file, removed by px_fetch_free */
	long wait_s;               /* 0: PX_FETCH_WAIT_S */
	struct px_config_slot *slot;
	/* Called by the fetch thread after a new snapshot became current;
	 * bundle_changed when the trust bundle file was rewritten. */
	void (*on_load)(void *arg, const struct px_config *cfg, int bundle_changed);
	void *arg;
};

struct px_fetch;

/* Validates the options and makes the HTTP client (no request yet). The
 * strings must outlive the struct. A private bundle directory is also
 * removed at exit(). */
int px_fetch_new(struct px_fetch **out, const struct px_fetch_opts *o, char **err);

/* Fetches and loads the first snapshot, retrying until timeout_ms passes
 * when the server is unreachable or does not know the proxy yet (404).
 * Fails at once when the server refuses the token (401, 403), the
 * request (400), or the snapshot (px_config_decode's error), and when the
 * snapshot asks for TLS without --cert and --key. *err names the server
 * and what went wrong. */
int px_fetch_first(struct px_fetch *f, long timeout_ms, char **err);

/* Starts the long-polling thread (after px_fetch_first). */
int px_fetch_start(struct px_fetch *f, char **err);

/* Stops the thread (a long poll in progress is interrupted at once; a
 * name lookup too), removes a temporary bundle
 * file, frees. NULL is fine. */
void px_fetch_free(struct px_fetch *f);

/* Reads a token file: its first line, trimmed. Refuses an empty file and
 * warns when the file is readable by group or others. */
int px_fetch_read_token(const char *path, char **token, char **err);

#endif

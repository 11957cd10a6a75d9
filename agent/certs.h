/* certs: the leaf certificates of a VM's services and the mesh's trust
 * bundle, kept on disk for the proxies (docs/agent.md "Certificates").
 *
 * For each service of the set (certs_set) the module makes an EC P-256
 * key on this machine (lib/ca.h ca_csr_create; it never leaves the VM),
 * has it signed by weft-server (POST /v1/connect/ca/sign with the
 * agent's token) and keeps both in <dir>/<service>.key (0600) and
 * <dir>/<service>.crt (the leaf, then its chain). A leaf is renewed with a
 * new key at 40-60 % of its lifetime (random), as soon as the mesh's
 * active root changes (within min(30 s, a quarter of what is left), also
 * random), and, while the server is unreachable or refuses (403/404
 * until the service is registered on this node), again after 1 s
 * doubling to 60 s, each wait between half and all of that.
 *
 * The trust bundle (every root of the mesh and its intermediates, as
 * GET /v1/connect/ca/roots?pem=true has it) is followed with a blocking
 * query and kept in <dir>/roots.pem, the server's JSON answer in
 * <dir>/roots.json.
 *
 * Every file is replaced atomically (a temporary file in the directory,
 * fsync, rename, fsync of the directory): a reader sees the old file or
 * the new one, never a part. A key is written before its certificate, so
 * a reader that finds the new certificate also finds its key.
 *
 * Static stability: at certs_new the bundle on disk is loaded, and at
 * certs_set the leaf of a service new to the set is loaded from disk when
 * its key matches it and it has not expired: paths, certs_leaf_json and
 * certs_ready work while the server is down. A leaf from disk is renewed
 * at once when past its renewal point.
 *
 * Threads: certs_new starts two (leaves, roots), each with its own
 * lib/httpc client (the program calls httpc_global_init first). Every
 * function may be called from any thread; `changed` runs on the module's
 * threads with no lock held (it may call the other functions, never
 * certs_free). */
#ifndef WEFT_CERTS_H
#define WEFT_CERTS_H

#include <jansson.h>
#include <stddef.h>

#include "httpc.h"

struct certs;

struct certs_opts {
	const char *dir;               /* <dir>/<service>.crt, .key (0600), roots.pem */
	struct httpc_opts server;      /* weft-server: address, token, ca_file (copied) */
	const char *mesh;              /* "default" unless set */
	/* After a service's files were replaced (a new leaf), or with
	 * service NULL after the bundle's. Not called for what certs_set
	 * loads from disk, nor for files it deletes. */
	void (*changed)(void *arg, const char *service);
	void *arg;
};

/* Checks the options, makes dir (0700) if missing, loads the bundle on
 * disk and starts the threads. */
int certs_new(struct certs **out, const struct certs_opts *o, char **err);
/* The services needing a leaf (replaces the set; leaves of removed ones
 * are deleted, from memory and disk). WEFT_EINVAL naming a bad service
 * name; duplicates count once. */
int certs_set(struct certs *c, const char *const *services, size_t n, char **err);
/* Paths (allocated) of a service's files; WEFT_ENOENT if not in the set.
 * Any of cert, key, bundle may be NULL. */
int certs_paths(struct certs *c, const char *service, char **cert, char **key, char **bundle);
/* For the local API's GET /v1/agent/connect/ca/leaf/:service: Consul's
 * answer (SerialNumber, CertPEM (the leaf, then its chain), PrivateKeyPEM,
 * Service, ServiceURI, ValidAfter, ValidBefore, CreateIndex, ModifyIndex:
 * the server's, which are the signing root's); WEFT_ENOENT when no leaf
 * yet (or not in the set). And GET /v1/agent/connect/ca/roots: the
 * server's answer, cached (WEFT_ENOENT before the first). *out is new. */
int certs_leaf_json(struct certs *c, const char *service, json_t **out, char **err);
int certs_roots_json(struct certs *c, json_t **out, char **err);
/* 1 when every service in the set has an unexpired leaf and there is a
 * bundle. */
int certs_ready(struct certs *c);
/* Stops the threads (within about a second: an ongoing request is
 * abandoned) and frees; the files stay. NULL is fine. */
void certs_free(struct certs *c);

#endif

/* px_config: weft-proxy's configuration snapshot (docs/proxy-config.md).
 *
 * px_config_decode() parses and fully validates one snapshot (JSON, from a
 * file or the server) into an immutable, reference-counted struct px_config;
 * errors name the field path ("Upstreams[1].Endpoints[0].Port: ...").
 * The inbound intentions are compiled with lib/intention into a set, and
 * px_config_authorize() decides a caller with intention_set_decide(), the
 * engine weft-server's /v1/connect/intentions/check uses.
 *
 * A snapshot is swapped in through a struct px_config_slot: a bad snapshot
 * is refused and the slot keeps the old one. Readers take a reference
 * (px_config_slot_get) and drop it when done (px_config_unref), so a swap
 * never frees a config in use.
 *
 * Every struct below is read-only for callers; strings live as long as the
 * config. Functions returning int use enum weft_err codes and set *err
 * (caller frees) on failure. */
#ifndef WEFT_PX_CONFIG_H
#define WEFT_PX_CONFIG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "intention.h"

#define PX_CONFIG_VERSION 1               /* the format version this proxy speaks */
#define PX_CONFIG_MAX_BYTES (8u << 20)    /* a snapshot's size on the wire */
#define PX_CONFIG_UPSTREAMS_MAX 1024
#define PX_CONFIG_ENDPOINTS_MAX 4096      /* per upstream */
#define PX_CONFIG_INTENTIONS_MAX 4096
#define PX_CONFIG_PEM_MAX (256u << 10)    /* a certificate chain or trust bundle */
#define PX_CONFIG_PATH_MAX 4096
#define PX_CONFIG_NAME_MAX 63             /* service, mesh, zone: as lib/ca */
#define PX_CONFIG_TRUST_DOMAIN_MAX 253
#define PX_CONFIG_SPIFFE_MAX 512
#define PX_CONFIG_ADDR_MAX 64             /* an IPv4 or IPv6 literal */

enum px_protocol {
	PX_PROTO_TCP = 0,
	PX_PROTO_HTTP = 1,
};

enum px_lb_policy {
	PX_LB_ROUND_ROBIN = 0,
	PX_LB_LEAST_REQUEST,
	PX_LB_RANDOM,
	PX_LB_RING_HASH,
};

enum px_health {
	PX_HEALTH_PASSING = 0,
	PX_HEALTH_WARNING,
	PX_HEALTH_CRITICAL,
};

/* Retry conditions (bits of px_retries.on). */
#define PX_RETRY_CONNECT_FAILURE 0x1
#define PX_RETRY_5XX 0x2

/* A PEM given inline or as a file read where the proxy runs. */
struct px_pem_ref {
	const char *pem;   /* NULL when file is set */
	const char *file;  /* NULL when pem is set */
};

struct px_identity {
	const char *service;
	const char *id;            /* the proxy's instance ID */
	const char *spiffe_id;
	const char *trust_domain;  /* from spiffe_id */
	const char *mesh;
	const char *zone;
};

struct px_timeouts {
	uint32_t connect_ms;
	uint32_t idle_ms;
	uint32_t request_ms;       /* 0: none */
};

struct px_limits {
	uint32_t max_connections;
	uint32_t max_pending_requests;
	uint32_t max_header_bytes;
	uint64_t max_body_bytes;   /* 0: unlimited */
};

struct px_inbound {
	const char *bind_address;
	uint16_t bind_port;
	const char *app_address;
	uint16_t app_port;
	enum px_protocol protocol;
	struct px_limits limits;
	struct px_timeouts timeouts;
};

struct px_retries {
	uint32_t attempts;         /* retries after the first try */
	unsigned on;               /* PX_RETRY_* */
	uint32_t budget_percent;   /* active retries as % of active requests */
	uint32_t min_retry_concurrency;
};

struct px_passive_health {
	uint32_t consecutive_failures;  /* 0: off */
	uint32_t base_ejection_ms;
	uint32_t max_ejection_percent;
};

struct px_endpoint {
	const char *address;
	uint16_t port;
	uint32_t weight;
	const char *zone;          /* "" when unknown */
	const char *spiffe_id;     /* what the endpoint must present */
	enum px_health health;
};

struct px_hostport {
	const char *address;
	uint16_t port;
};

struct px_upstream {
	const char *name;          /* unique in the snapshot */
	const char *service;
	const char *bind_address;
	uint16_t bind_port;
	enum px_protocol protocol;
	enum px_lb_policy lb_policy;
	const char *hash_header;   /* ring_hash only, else NULL */
	struct px_timeouts timeouts;
	struct px_retries retries;
	struct px_passive_health passive_health;
	struct px_limits limits;
	size_t n_endpoints;
	const struct px_endpoint *endpoints;
	/* Transparent mode: the addresses the application dials to reach
	 * this service (its instances' address:port), the keys of the
	 * transparent listener's routing (docs/transparent-proxy.md). */
	size_t n_destinations;
	const struct px_hostport *destinations;
};

struct px_tls_cfg {
	/* Both set, or both {NULL, NULL}: a snapshot from the server carries
	 * only the trust bundle, the proxy's leaf and key are its own files. */
	struct px_pem_ref certificate;   /* leaf, then intermediates */
	struct px_pem_ref private_key;   /* file only: never from the server */
	struct px_pem_ref trust_bundle;
	int configured;                  /* 0: no TLS section */
};

struct px_admin {
	const char *bind_address;        /* loopback only */
	uint16_t bind_port;              /* 0: no admin listener */
};

struct px_access_log {
	int enabled;
	const char *path;                /* "-": stdout */
};

/* Passthrough (px_sni, docs/proxy-passthrough.md): TLS routed by SNI. */
#define PX_CONFIG_ROUTES_MAX 4096
#define PX_CONFIG_ROUTE_ENDPOINTS_MAX 256

struct px_passthrough_route {
	const char *sni;                 /* a server name, or "*." and one */
	size_t n_endpoints;              /* at least 1 */
	const struct px_hostport *endpoints;
};

struct px_passthrough {
	int configured;                  /* 0: no Passthrough section */
	const char *bind_address;
	uint16_t bind_port;
	size_t n_routes;
	const struct px_passthrough_route *routes;
};

/* Transparent (docs/transparent-proxy.md): the outbound listener that
 * iptables' REDIRECT sends the application's connections to; each is
 * routed by its original destination to the upstream whose Destinations
 * hold it, or, when none does, relayed to that destination as it is
 * (passthrough) or closed. */
#define PX_CONFIG_DESTINATIONS_MAX 4096   /* per upstream */
struct px_transparent_cfg {
	int configured;                  /* 0: no Transparent section */
	const char *bind_address;
	uint16_t bind_port;
	bool passthrough;                /* unknown destinations: relay (true) or close */
};

struct px_config {
	uint64_t version;
	uint64_t index;
	struct px_identity identity;
	struct px_inbound inbound;
	size_t n_upstreams;
	const struct px_upstream *upstreams;
	enum intention_action default_action;
	const struct intention_set *intentions;  /* those whose destination is us or "*" */
	struct px_tls_cfg tls;
	struct px_admin admin;
	struct px_access_log access_log;
	struct px_passthrough passthrough;
	struct px_transparent_cfg transparent;
	/* private */
	atomic_uint _refs;
	void *_json;
};

/* Decodes data (at most PX_CONFIG_MAX_BYTES) into *out with one reference. */
int px_config_decode(const char *data, size_t len, struct px_config **out, char **err);
struct px_config *px_config_ref(struct px_config *cfg);
void px_config_unref(struct px_config *cfg);
/* The upstream with this name, or NULL. */
const struct px_upstream *px_config_upstream(const struct px_config *cfg, const char *name);
/* The snapshot as JSON without inline PEM material ("<redacted>"), for
 * the admin /config page. */
json_t *px_config_to_json_redacted(const struct px_config *cfg);

/* ---- SPIFFE IDs ---- */

struct px_spiffe {
	char trust_domain[PX_CONFIG_TRUST_DOMAIN_MAX + 1];
	char mesh[PX_CONFIG_NAME_MAX + 1];
	char zone[PX_CONFIG_NAME_MAX + 1];
	char service[PX_CONFIG_NAME_MAX + 1];
};

/* Parses "spiffe://<trust domain>/ns/<mesh>/dc/<zone>/svc/<service>" (the
 * form lib/ca issues) strictly: lowercase scheme and trust domain, no
 * port, user, query, fragment, percent-encoding or empty segment; names as
 * lib/ca's (letters, digits, '-', '_', '.', at most 63 bytes).
 * WEFT_EINVAL names what is wrong. */
int px_spiffe_parse(const char *uri, struct px_spiffe *out, char **err);

/* ---- Authorization ---- */

enum px_authz_reason {
	PX_AUTHZ_INTENTIONS = 0,         /* decided by the intention engine */
	PX_AUTHZ_BAD_IDENTITY,           /* the caller's ID is not a service SPIFFE ID */
	PX_AUTHZ_FOREIGN_TRUST_DOMAIN,   /* another trust domain: deny */
	PX_AUTHZ_FOREIGN_MESH,           /* another mesh: deny */
};

struct px_authz {
	enum intention_action action;
	enum px_authz_reason reason;
	struct intention_decision decision; /* for PX_AUTHZ_INTENTIONS */
	struct px_spiffe source;            /* the parsed caller (when it parsed) */
};

/* Decides whether the caller (its certificate's SPIFFE ID) may reach this
 * proxy's service: at L4 when http is NULL, else for that HTTP request
 * (http->method, path, headers; its source and destination fields are
 * ignored and filled from the caller and the config). A caller outside
 * this proxy's trust domain and mesh is denied. Always succeeds; returns
 * out->action. */
enum intention_action px_config_authorize(const struct px_config *cfg, const char *caller_spiffe_id,
					  const struct intention_call *http, struct px_authz *out);
/* "intentions", "bad-identity", "foreign-trust-domain", "foreign-mesh". */
const char *px_authz_reason_string(enum px_authz_reason r);

/* ---- The current config, swapped atomically ---- */

/* Why loads were refused, in this order (px_config_slot_refusals). */
enum {
	PX_CONFIG_REFUSED_NEWER_VERSION = 0,   /* Version newer than PX_CONFIG_VERSION */
	PX_CONFIG_REFUSED_UNKNOWN_FIELD,       /* a field this version does not have */
	PX_CONFIG_REFUSED_INVALID,             /* any other decoding error */
	PX_CONFIG_REFUSED_OLDER_INDEX,
	PX_CONFIG_REFUSED_OTHER_SERVICE,
	PX_CONFIG_REFUSAL_REASONS
};
#define PX_CONFIG_SECTIONS_MAX 16
#define PX_CONFIG_SECTION_LEN 32

struct px_config_slot {
	pthread_mutex_t _lock;
	struct px_config *_cur;
	atomic_uint_fast64_t _gen;
	bool _any_index;                /* px_config_slot_forget_index() */
	uint64_t _refused[PX_CONFIG_REFUSAL_REASONS];
	size_t _nsections;              /* sections of unknown fields seen */
	char _section[PX_CONFIG_SECTIONS_MAX][PX_CONFIG_SECTION_LEN];
	uint64_t _section_count[PX_CONFIG_SECTIONS_MAX];
};

void px_config_slot_init(struct px_config_slot *slot);
void px_config_slot_destroy(struct px_config_slot *slot);
/* A new reference to the current config (NULL before the first), which
 * the caller drops with px_config_unref. */
struct px_config *px_config_slot_get(struct px_config_slot *slot);
/* The next load may carry any Index, also an older one: the source
 * started over (a server whose data was reset answers with indexes from
 * 1 again; refusing them would freeze the proxy on its last snapshot). */
void px_config_slot_forget_index(struct px_config_slot *slot);
/* Counts the configs made current: a worker compares it with the one it
 * last applied (one atomic load) to learn that it must look again. */
uint64_t px_config_slot_generation(struct px_config_slot *slot);
/* Decodes data and, if it is valid and its Index is not older than the
 * current one's, makes it current. On any failure the current config
 * stays and *err says why. */
int px_config_slot_load(struct px_config_slot *slot, const char *data, size_t len, char **err);
/* The refusals so far, by PX_CONFIG_REFUSED_* reason. */
void px_config_slot_refusals(struct px_config_slot *slot, uint64_t out[PX_CONFIG_REFUSAL_REASONS]);
/* Prometheus text for /stats: weft_proxy_config_refused_total{reason},
 * weft_proxy_config_unenforceable_fields_total{section} (the top-level
 * section of each field a refused snapshot had that this proxy does not
 * know: what a newer server asked it to enforce), the versions spoken and
 * in force, the Index in force. */
struct buf;
void px_config_slot_stats(struct px_config_slot *slot, struct buf *out);

#endif

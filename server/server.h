/* The server's shared context, handed to every API handler. */
#ifndef WEFT_SERVER_H
#define WEFT_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct hub;
struct auth;
struct http;
struct ttl;
struct rcache;
struct intentions;
struct castore;
struct liveness;
struct snapcache;
struct telemetry;

struct server {
	struct store *store;
	struct hub *hub;
	struct auth *auth;          /* NULL in --dev mode: no authentication */
	struct http *http;
	struct ttl *ttl;            /* expires TTL checks (ttl.h) */
	struct rcache *replies;     /* hot read replies (rcache.h); may be NULL */
	struct intentions *intentions; /* compiled intentions per mesh (intentions.h) */
	struct castore *ca;         /* the mesh CAs (castore.h) */
	struct liveness *liveness;  /* weft-agents' heartbeats (liveness.h) */
	struct snapcache *snapshots; /* proxy snapshots and their parts (proxysnap.h); may be NULL */
	struct telemetry *telemetry; /* the proxies' traffic, in memory (telemetry.h) */
	const char *data_dir;
	const char *datacenter;     /* Consul's "datacenter": the zone name */
	const char *node_name;      /* the server's own node in the catalog */
	const char *node_id;
	const char *advertise_addr;
	const char *http_addr;      /* host:port as configured */
	const char *version;
	int dev;
	size_t max_body;            /* bytes; larger bodies get 413 */
	int64_t started_ms;
};

#endif

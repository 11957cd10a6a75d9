/* telemetry: weft-agent reports its proxies' traffic to the server
 * (docs/api.md "Proxy telemetry", docs/agent.md "Telemetry").
 *
 * A thread of its own: every interval (on the wall clock's multiples of
 * it, so that samples of every agent fall in the same points), for each
 * running local proxy (proxies_status_json), GET
 * http://127.0.0.1:<AdminPort>/stats, parse it (prom.h), take the
 * difference with the previous scrape of that process and PUT them all to
 * /v1/weft/telemetry/node/<node>. The first scrape of a proxy process
 * counts from its start (the agent's proxies die with it, so a new agent
 * sees new processes); a restart (another pid, or a counter that went
 * down) is a new start, never a negative delta; a scrape that follows a
 * missed one only sets the new baseline. The upstream listener
 * "outbound:<Name>" is reported under its destination service, read from
 * the proxy's snapshot file (Upstreams[].Service; without the file, the
 * Name), the mesh from the snapshot's Proxy.Mesh (else "default").
 *
 * Telemetry is best effort: a proxy whose /stats fails or does not parse is
 * left out of that interval; when the server is unreachable or refuses,
 * the sample is dropped and that is logged once (and once when it works
 * again). */
#ifndef WEFT_AGENT_TELEMETRY_H
#define WEFT_AGENT_TELEMETRY_H

#include <jansson.h>
#include <stdint.h>

#include "httpc.h"
#include "prom.h"

struct proxies;
struct tele;

struct tele_opts {
	struct httpc_opts server;
	const char *node;
	struct proxies *proxies;
	int64_t interval_ms;     /* 0: 10 s */
};

/* Copies the options; starts the thread. */
int tele_start(struct tele **out, const struct tele_opts *o, char **err);
/* Stops the thread (a request in flight is aborted); NULL is fine. */
void tele_stop(struct tele *t);

/* One proxy's entry of the PUT body: the counts of cur minus prev (prev
 * NULL, or any counter of cur below prev's, or bucket bounds that differ:
 * cur counts from a new start). upstreams maps an upstream's Name to its
 * destination service (NULL, or a name missing: the Name itself). */
json_t *tele_proxy_json(const char *proxy_id, const char *service, const char *mesh,
			const struct prom_stats *prev, const struct prom_stats *cur,
			json_t *upstreams);

#endif

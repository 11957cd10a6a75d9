/* libFuzzer target: bytes -> px_config_decode (the proxy's snapshot, which
 * may come from a compromised or newer server) and px_spiffe_parse (the
 * caller's certificate URI). Invariants for any input:
 *  - decode either fails with an error message and no config, or gives a
 *    config whose fields keep their documented bounds (ports, ring hash
 *    header iff ring_hash, endpoint counts, DefaultAction set);
 *  - the slot keeps its old config when a decode fails;
 *  - the redacted JSON shows no inline PEM of TLS;
 *  - an authorization always ends in allow or deny, and a decision by an
 *    intention names one whose destination is the proxy's service or "*";
 *  - a SPIFFE ID that parses prints back to exactly the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jsonx.h"
#include "px_config.h"

/* Every inline PEM of TLS reads "<redacted>". */
static void check_redacted(json_t *red, const struct px_config *c)
{
	static const char *const parts[] = { "Certificate", "PrivateKey", "TrustBundle" };
	const struct px_pem_ref *refs[] = { &c->tls.certificate, &c->tls.private_key,
					    &c->tls.trust_bundle };

	for (size_t i = 0; i < 3; i++) {
		json_t *pem = jx_field(jx_field(jx_field(red, "TLS"), parts[i]), "PEM");

		if (refs[i]->pem && strcmp(json_string_value(pem) ? json_string_value(pem) : "",
					   "<redacted>") != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const base =
	"{\"Version\": 1, \"Index\": 5, \"Proxy\": {\"Service\": \"web\","
	" \"SpiffeID\": \"spiffe://t/ns/default/dc/dc1/svc/web\"},"
	" \"Inbound\": {\"BindPort\": 1, \"AppPort\": 2}, \"Intentions\": {\"DefaultAction\": \"deny\"}}";

static void check_spiffe(const uint8_t *data, size_t size)
{
	char in[PX_CONFIG_SPIFFE_MAX + 2], back[PX_CONFIG_SPIFFE_MAX * 2];
	struct px_spiffe sp;
	char *err = NULL;
	size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1;

	memcpy(in, data, n);
	in[n] = '\0';
	if (px_spiffe_parse(in, &sp, &err) == WEFT_OK) {
		snprintf(back, sizeof(back), "spiffe://%s/ns/%s/dc/%s/svc/%s", sp.trust_domain,
			 sp.mesh, sp.zone, sp.service);
		if (strcmp(back, in) != 0 || err != NULL)
			abort();
	} else if (err == NULL) {
		abort();
	}
	free(err);
}

static void check_bounds(const struct px_config *c)
{
	if (c->version != PX_CONFIG_VERSION || c->index < 1 || c->inbound.bind_port == 0 ||
	    c->inbound.app_port == 0 || c->identity.service[0] == '\0' ||
	    c->identity.trust_domain == NULL || c->intentions == NULL)
		abort();
	if (c->default_action != INTENTION_ALLOW && c->default_action != INTENTION_DENY)
		abort();
	if (c->n_upstreams > PX_CONFIG_UPSTREAMS_MAX)
		abort();
	for (size_t i = 0; i < c->n_upstreams; i++) {
		const struct px_upstream *u = &c->upstreams[i];

		if (u->bind_port == 0 || u->n_endpoints > PX_CONFIG_ENDPOINTS_MAX ||
		    (u->lb_policy == PX_LB_RING_HASH) != (u->hash_header != NULL) ||
		    u->retries.attempts > 10 || u->retries.budget_percent > 100 ||
		    u->passive_health.max_ejection_percent > 100 ||
		    px_config_upstream(c, u->name) != u)
			abort();
		for (size_t j = 0; j < u->n_endpoints; j++) {
			if (u->endpoints[j].port == 0 || u->endpoints[j].weight == 0 ||
			    u->endpoints[j].spiffe_id == NULL)
				abort();
		}
	}
	/* the key is never inline; the leaf and the key come together, or
	 * neither (a snapshot from the server: the trust bundle only) */
	if (c->tls.configured &&
	    (c->tls.private_key.pem != NULL ||
	     (c->tls.private_key.file != NULL) !=
		     (c->tls.certificate.file != NULL || c->tls.certificate.pem != NULL)))
		abort();
}

static void check_authorize(const struct px_config *c)
{
	char caller[PX_CONFIG_SPIFFE_MAX + 64];
	struct intention_call http = { .http = 1, .method = "GET", .path = "/admin?x" };
	size_t n = intention_set_count(c->intentions);

	for (size_t i = 0; i <= n && i < 8; i++) {
		const char *name = i < n ? intention_source_name(intention_set_get(c->intentions, i))
					 : "stranger";
		struct px_authz a;

		snprintf(caller, sizeof(caller), "spiffe://%s/ns/%s/dc/z/svc/%s",
			 c->identity.trust_domain, c->identity.mesh, name);
		for (int l7 = 0; l7 < 2; l7++) {
			enum intention_action act = px_config_authorize(c, caller, l7 ? &http : NULL, &a);
			const struct intention *ix = a.decision.intention;

			if (act != a.action || (act != INTENTION_ALLOW && act != INTENTION_DENY))
				abort();
			if (ix && strcmp(intention_destination_name(ix), c->identity.service) != 0 &&
			    strcmp(intention_destination_name(ix), "*") != 0)
				abort();
			if (a.reason != PX_AUTHZ_INTENTIONS && act != INTENTION_DENY)
				abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct px_config_slot slot;
	struct px_config *c = NULL, *before, *after;
	char *err = NULL;
	json_t *red;
	int rc;

	check_spiffe(data, size);
	rc = px_config_decode((const char *)data, size, &c, &err);
	if (rc != WEFT_OK) {
		if (c != NULL || err == NULL || err[0] == '\0')
			abort();
		free(err);
		err = NULL;
	} else {
		char *s;

		check_bounds(c);
		check_authorize(c);
		red = px_config_to_json_redacted(c);
		s = jx_dump(red);
		if (s == NULL)
			abort();
		check_redacted(red, c);
		free(s);
		json_decref(red);
		px_config_unref(c);
	}
	/* The swap contract, with a valid config in place. */
	px_config_slot_init(&slot);
	if (px_config_slot_load(&slot, base, strlen(base), NULL) != WEFT_OK)
		abort();
	before = px_config_slot_get(&slot);
	rc = px_config_slot_load(&slot, (const char *)data, size, &err);
	after = px_config_slot_get(&slot);
	if (rc != WEFT_OK && (after != before || err == NULL))
		abort();
	if (rc == WEFT_OK && (after == before || err != NULL))
		abort();
	free(err);
	px_config_unref(before);
	px_config_unref(after);
	px_config_slot_destroy(&slot);
	return 0;
}

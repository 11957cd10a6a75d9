/* tproxy_rules: the iptables rules of weftctl install transparent-proxy
 * (docs/transparent-proxy.md), as iptables-restore input.
 *
 * Everything goes in the nat table, in chains of Weft's own, reached by
 * one jump from PREROUTING (inbound) and one from OUTPUT (outbound):
 *
 *   WEFT_INBOUND      excluded inbound ports RETURN, the rest of TCP
 *                     jumps to WEFT_IN_REDIRECT
 *   WEFT_IN_REDIRECT  REDIRECT to the sidecar's inbound (public) port
 *   WEFT_OUTPUT       loopback, the proxy's user, excluded users, ports
 *                     and CIDRs RETURN, the rest of TCP jumps to
 *                     WEFT_REDIRECT
 *   WEFT_REDIRECT     REDIRECT to the proxy's transparent outbound port
 *
 * A text made here installs atomically (one iptables-restore --noflush
 * transaction) and replaces what an earlier install left: it deletes the
 * jumps found in the current rules (tproxy_rules_cleanup reads
 * iptables-save's output) before adding its own, and declaring a chain
 * flushes it. Pure functions: weftctl runs the programs (cmd_tproxy.c). */
#ifndef WEFT_CTL_TPROXY_RULES_H
#define WEFT_CTL_TPROXY_RULES_H

#include <stddef.h>

struct buf;

#define TPROXY_OUTBOUND_PORT_DEFAULT 15001
#define TPROXY_EXCLUDES_MAX 256          /* per list */

struct tproxy_opts {
	const char *proxy_uid;               /* a uid (digits): the proxy's traffic is left alone */
	long long inbound_port;              /* 1..65535: the sidecar's public port */
	long long outbound_port;             /* 1..65535: its transparent outbound listener */
	const char *const *exclude_inbound_ports;   /* "PORT" or "FIRST:LAST" */
	size_t n_exclude_inbound_ports;
	const char *const *exclude_outbound_ports;
	size_t n_exclude_outbound_ports;
	const char *const *exclude_outbound_cidrs;  /* IPv4 "A.B.C.D" or "A.B.C.D/N" */
	size_t n_exclude_outbound_cidrs;
	const char *const *exclude_uids;            /* "UID" or "FIRST-LAST" */
	size_t n_exclude_uids;
};

/* The chains, in the order they are declared. */
extern const char *const tproxy_chains[];

/* Checks every option (*err names the flag: "flag -exclude-inbound-port:
 * \"x\" is not a port or FIRST:LAST range") and appends the rules: the
 * chain declarations and -A lines, without "*nat" and "COMMIT". */
int tproxy_rules_build(const struct tproxy_opts *o, struct buf *out, char **err);

/* From iptables-save's text (any tables; only *nat is read): appends a -D
 * line for each rule of a built-in chain that jumps to one of our chains,
 * then, when drop_chains is set, -F and -X lines for each of our chains
 * that exists. Returns the number of our chains found, or a negative
 * WEFT_ code when out is full. */
int tproxy_rules_cleanup(const char *saved, int drop_chains, struct buf *out);

#endif

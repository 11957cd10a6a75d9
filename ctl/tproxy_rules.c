/* tproxy_rules: iptables-restore input for transparent proxying
 * (tproxy_rules.h). */
#include "tproxy_rules.h"
#include "buf.h"
#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *const tproxy_chains[] = {
	"WEFT_INBOUND", "WEFT_IN_REDIRECT", "WEFT_OUTPUT", "WEFT_REDIRECT", NULL,
};

/* A decimal number of at most 10 digits within [lo, hi], the whole of
 * s[0..len). */
static int number(const char *s, size_t len, long long lo, long long hi, long long *out)
{
	long long v = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* "N" or "FIRST<sep>LAST" with FIRST <= LAST, each in [lo, hi]. */
static int range(const char *s, char sep, long long lo, long long hi)
{
	const char *m = strchr(s, sep);
	long long a, b;

	if (m == NULL)
		return number(s, strlen(s), lo, hi, &a);
	if (number(s, (size_t)(m - s), lo, hi, &a) != 0 ||
	    number(m + 1, strlen(m + 1), lo, hi, &b) != 0 || a > b)
		return -1;
	return 0;
}

/* An IPv4 address, optionally "/N" (0..32). */
static int cidr4(const char *s)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	struct in_addr a;
	long long bits;

	if (len >= sizeof(addr))
		return -1;
	memcpy(addr, s, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, &a) != 1)
		return -1;
	return slash ? number(slash + 1, strlen(slash + 1), 0, 32, &bits) : 0;
}

static int check_list(const char *const *v, size_t n, const char *flag, int (*ok)(const char *),
		      const char *what, char **err)
{
	if (n > TPROXY_EXCLUDES_MAX)
		return weft_errf(err, WEFT_EINVAL, "flag -%s: more than %d values", flag,
				 TPROXY_EXCLUDES_MAX);
	for (size_t i = 0; i < n; i++)
		if (v[i] == NULL || !ok(v[i]))
			return weft_errf(err, WEFT_EINVAL, "flag -%s: \"%s\" is not %s", flag,
					 v[i] ? v[i] : "", what);
	return WEFT_OK;
}

static int ok_port(const char *s)
{
	return range(s, ':', 1, 65535) == 0;
}

static int ok_uid(const char *s)
{
	return range(s, '-', 0, 4294967294LL) == 0;
}

static int ok_cidr(const char *s)
{
	return cidr4(s) == 0;
}

#define P(...) do { if ((rc = buf_printf(out, __VA_ARGS__)) != WEFT_OK) goto out; } while (0)

int tproxy_rules_build(const struct tproxy_opts *o, struct buf *out, char **err)
{
	int rc;

	if (o->proxy_uid == NULL || !ok_uid(o->proxy_uid) || strchr(o->proxy_uid, '-'))
		return weft_errf(err, WEFT_EINVAL, "flag -proxy-uid: \"%s\" is not a user ID or name",
				 o->proxy_uid ? o->proxy_uid : "");
	if (o->inbound_port < 1 || o->inbound_port > 65535)
		return weft_errf(err, WEFT_EINVAL, "flag -inbound-port: %lld is out of range [1, 65535]",
				 o->inbound_port);
	if (o->outbound_port < 1 || o->outbound_port > 65535)
		return weft_errf(err, WEFT_EINVAL, "flag -outbound-port: %lld is out of range [1, 65535]",
				 o->outbound_port);
	if (o->outbound_port == o->inbound_port)
		return weft_errf(err, WEFT_EINVAL, "flag -outbound-port: %lld is also the inbound port",
				 o->outbound_port);
	if ((rc = check_list(o->exclude_inbound_ports, o->n_exclude_inbound_ports,
			     "exclude-inbound-port", ok_port, "a port or FIRST:LAST range", err)) ||
	    (rc = check_list(o->exclude_outbound_ports, o->n_exclude_outbound_ports,
			     "exclude-outbound-port", ok_port, "a port or FIRST:LAST range", err)) ||
	    (rc = check_list(o->exclude_outbound_cidrs, o->n_exclude_outbound_cidrs,
			     "exclude-outbound-cidr", ok_cidr, "an IPv4 address or CIDR", err)) ||
	    (rc = check_list(o->exclude_uids, o->n_exclude_uids, "exclude-uid", ok_uid,
			     "a user ID or FIRST-LAST range", err)))
		return rc;
	for (size_t i = 0; tproxy_chains[i]; i++)
		P(":%s - [0:0]\n", tproxy_chains[i]);
	/* inbound: what arrives from the network, to the sidecar's public port */
	P("-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports %lld\n", o->inbound_port);
	P("-A WEFT_INBOUND -p tcp --dport %lld -j RETURN\n", o->inbound_port);
	for (size_t i = 0; i < o->n_exclude_inbound_ports; i++)
		P("-A WEFT_INBOUND -p tcp --dport %s -j RETURN\n", o->exclude_inbound_ports[i]);
	P("-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT\n");
	P("-A PREROUTING -p tcp -j WEFT_INBOUND\n");
	/* outbound: what local users other than the proxy's dial */
	P("-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports %lld\n", o->outbound_port);
	P("-A WEFT_OUTPUT -o lo -j RETURN\n");
	P("-A WEFT_OUTPUT -d 127.0.0.0/8 -j RETURN\n");
	P("-A WEFT_OUTPUT -m owner --uid-owner %s -j RETURN\n", o->proxy_uid);
	for (size_t i = 0; i < o->n_exclude_uids; i++)
		P("-A WEFT_OUTPUT -m owner --uid-owner %s -j RETURN\n", o->exclude_uids[i]);
	for (size_t i = 0; i < o->n_exclude_outbound_ports; i++)
		P("-A WEFT_OUTPUT -p tcp --dport %s -j RETURN\n", o->exclude_outbound_ports[i]);
	for (size_t i = 0; i < o->n_exclude_outbound_cidrs; i++)
		P("-A WEFT_OUTPUT -d %s -j RETURN\n", o->exclude_outbound_cidrs[i]);
	P("-A WEFT_OUTPUT -p tcp -j WEFT_REDIRECT\n");
	P("-A OUTPUT -p tcp -j WEFT_OUTPUT\n");
out:
	return rc;
}

static int ours(const char *name, size_t len)
{
	for (size_t i = 0; tproxy_chains[i]; i++)
		if (strlen(tproxy_chains[i]) == len && strncmp(tproxy_chains[i], name, len) == 0)
			return 1;
	return 0;
}

static int builtin(const char *name, size_t len)
{
	static const char *const b[] = { "PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", NULL };

	for (size_t i = 0; b[i]; i++)
		if (strlen(b[i]) == len && strncmp(b[i], name, len) == 0)
			return 1;
	return 0;
}

/* Whether the rule text (line, len bytes) jumps to one of our chains:
 * a " -j NAME" or " -g NAME" token. */
static int jumps_to_ours(const char *line, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++) {
		if (line[i] == ' ' && line[i + 1] == '-' && (line[i + 2] == 'j' || line[i + 2] == 'g') &&
		    line[i + 3] == ' ') {
			const char *t = line + i + 4;
			size_t n = 0;

			while (t + n < line + len && t[n] != ' ')
				n++;
			if (ours(t, n))
				return 1;
		}
	}
	return 0;
}

int tproxy_rules_cleanup(const char *saved, int drop_chains, struct buf *out)
{
	int in_nat = 0, found = 0, rc = WEFT_OK;
	unsigned present = 0;
	const char *p = saved ? saved : "";

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (p[0] == '*')
			in_nat = len == 4 && strncmp(p, "*nat", 4) == 0;
		else if (len == 6 && strncmp(p, "COMMIT", 6) == 0)
			in_nat = 0;
		else if (in_nat && p[0] == ':') {
			size_t n = 1;

			while (n < len && p[n] != ' ')
				n++;
			for (size_t i = 0; tproxy_chains[i]; i++)
				if (strlen(tproxy_chains[i]) == n - 1 &&
				    strncmp(tproxy_chains[i], p + 1, n - 1) == 0 && !(present & (1u << i))) {
					present |= 1u << i;
					found++;
				}
		} else if (in_nat && len > 3 && strncmp(p, "-A ", 3) == 0) {
			size_t n = 3;

			while (n < len && p[n] != ' ')
				n++;
			if (builtin(p + 3, n - 3) && jumps_to_ours(p, len))
				P("-D %.*s\n", (int)(len - 3), p + 3);
		}
		p = nl ? nl + 1 : p + len;
	}
	if (drop_chains) {
		for (size_t i = 0; tproxy_chains[i]; i++)
			if (present & (1u << i))
				P("-F %s\n", tproxy_chains[i]);
		for (size_t i = 0; tproxy_chains[i]; i++)
			if (present & (1u << i))
				P("-X %s\n", tproxy_chains[i]);
	}
out:
	return rc != WEFT_OK ? rc : found;
}

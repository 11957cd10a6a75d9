/* weftctl install transparent-proxy: the iptables-restore text
 * (ctl/tproxy_rules.c): the exact rules and their order (a RETURN placed
 * after the jump would exclude nothing), every flag's validation, and the
 * cleanup read from iptables-save's output that makes a second install
 * replace the first and uninstall remove everything of ours and nothing
 * else. tests/integration/test_tproxy.py applies them in a namespace. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "tproxy_rules.h"

static char *build(const struct tproxy_opts *o, int *rc, char **err)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	*rc = tproxy_rules_build(o, &b, err);
	if (*rc != WEFT_OK) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static void test_rules_exact(void **state)
{
	const char *xin[] = { "22", "8000:8100" }, *xout[] = { "53" },
		   *xcidr[] = { "169.254.169.254", "10.0.0.0/8" }, *xuid[] = { "1000-1002" };
	struct tproxy_opts o = {
		.proxy_uid = "995", .inbound_port = 21000, .outbound_port = 15001,
		.exclude_inbound_ports = xin, .n_exclude_inbound_ports = 2,
		.exclude_outbound_ports = xout, .n_exclude_outbound_ports = 1,
		.exclude_outbound_cidrs = xcidr, .n_exclude_outbound_cidrs = 2,
		.exclude_uids = xuid, .n_exclude_uids = 1,
	};
	char *err = NULL, *text;
	int rc;

	(void)state;
	text = build(&o, &rc, &err);
	assert_int_equal(rc, WEFT_OK);
	assert_string_equal(text,
		":WEFT_INBOUND - [0:0]\n"
		":WEFT_IN_REDIRECT - [0:0]\n"
		":WEFT_OUTPUT - [0:0]\n"
		":WEFT_REDIRECT - [0:0]\n"
		"-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 21000\n"
		"-A WEFT_INBOUND -p tcp --dport 21000 -j RETURN\n"
		"-A WEFT_INBOUND -p tcp --dport 22 -j RETURN\n"
		"-A WEFT_INBOUND -p tcp --dport 8000:8100 -j RETURN\n"
		"-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT\n"
		"-A PREROUTING -p tcp -j WEFT_INBOUND\n"
		"-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
		"-A WEFT_OUTPUT -o lo -j RETURN\n"
		"-A WEFT_OUTPUT -d 127.0.0.0/8 -j RETURN\n"
		"-A WEFT_OUTPUT -m owner --uid-owner 995 -j RETURN\n"
		"-A WEFT_OUTPUT -m owner --uid-owner 1000-1002 -j RETURN\n"
		"-A WEFT_OUTPUT -p tcp --dport 53 -j RETURN\n"
		"-A WEFT_OUTPUT -d 169.254.169.254 -j RETURN\n"
		"-A WEFT_OUTPUT -d 10.0.0.0/8 -j RETURN\n"
		"-A WEFT_OUTPUT -p tcp -j WEFT_REDIRECT\n"
		"-A OUTPUT -p tcp -j WEFT_OUTPUT\n");
	free(text);
}

struct bad {
	const char *field, *value, *error;
};

static void test_rules_bad(void **state)
{
	static const struct bad cases[] = {
		{ "uid", "", "flag -proxy-uid: \"\" is not a user ID or name" },
		{ "uid", "12a", "flag -proxy-uid: \"12a\" is not a user ID or name" },
		{ "uid", "1-5", "flag -proxy-uid: \"1-5\" is not a user ID or name" },
		{ "uid", "4294967295", "flag -proxy-uid: \"4294967295\" is not a user ID or name" },
		{ "in", "0", "flag -exclude-inbound-port: \"0\" is not a port or FIRST:LAST range" },
		{ "in", "65536", "flag -exclude-inbound-port: \"65536\" is not a port" },
		{ "in", "90:80", "flag -exclude-inbound-port: \"90:80\" is not a port" },
		{ "in", "80:", "flag -exclude-inbound-port: \"80:\" is not a port" },
		{ "in", "22 -j ACCEPT", "flag -exclude-inbound-port: \"22 -j ACCEPT\" is not a port" },
		{ "out", "-1", "flag -exclude-outbound-port: \"-1\" is not a port" },
		{ "cidr", "10.0.0.0/33", "flag -exclude-outbound-cidr: \"10.0.0.0/33\" is not an IPv4 address or CIDR" },
		{ "cidr", "fd00::/8", "flag -exclude-outbound-cidr: \"fd00::/8\" is not an IPv4" },
		{ "cidr", "10.0.0.0/8\n-A OUTPUT", "flag -exclude-outbound-cidr: " },
		{ "cidr", "example.com", "flag -exclude-outbound-cidr: \"example.com\" is not" },
		{ "xuid", "1000:1002", "flag -exclude-uid: \"1000:1002\" is not a user ID or FIRST-LAST range" },
		{ "xuid", "5-1", "flag -exclude-uid: \"5-1\" is not a user ID" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *v[] = { cases[i].value };
		struct tproxy_opts o = { .proxy_uid = "0", .inbound_port = 21000,
					 .outbound_port = 15001 };
		char *err = NULL, *text;
		int rc;

		if (strcmp(cases[i].field, "uid") == 0)
			o.proxy_uid = cases[i].value;
		else if (strcmp(cases[i].field, "in") == 0)
			o.exclude_inbound_ports = v, o.n_exclude_inbound_ports = 1;
		else if (strcmp(cases[i].field, "out") == 0)
			o.exclude_outbound_ports = v, o.n_exclude_outbound_ports = 1;
		else if (strcmp(cases[i].field, "cidr") == 0)
			o.exclude_outbound_cidrs = v, o.n_exclude_outbound_cidrs = 1;
		else
			o.exclude_uids = v, o.n_exclude_uids = 1;
		text = build(&o, &rc, &err);
		if (rc == WEFT_OK)
			fail_msg("case %zu (%s): accepted", i, cases[i].value);
		assert_null(text);
		if (err == NULL || strncmp(err, cases[i].error, strlen(cases[i].error)) != 0)
			fail_msg("case %zu:\n got  \"%s\"\n want \"%s...\"", i, err ? err : "(null)",
				 cases[i].error);
		free(err);
	}
}

static void test_ports(void **state)
{
	struct tproxy_opts o = { .proxy_uid = "0", .inbound_port = 21000, .outbound_port = 21000 };
	char *err = NULL, *text;
	int rc;

	(void)state;
	text = build(&o, &rc, &err);
	assert_int_equal(rc, WEFT_EINVAL);
	assert_null(text);
	assert_string_equal(err, "flag -outbound-port: 21000 is also the inbound port");
	free(err);
	err = NULL;
	o.outbound_port = 0;
	text = build(&o, &rc, &err);
	assert_int_equal(rc, WEFT_EINVAL);
	assert_string_equal(err, "flag -outbound-port: 0 is out of range [1, 65535]");
	free(err);
	err = NULL;
	o.outbound_port = 15001;
	o.inbound_port = 70000;
	text = build(&o, &rc, &err);
	assert_int_equal(rc, WEFT_EINVAL);
	assert_string_equal(err, "flag -inbound-port: 70000 is out of range [1, 65535]");
	free(err);
}

/* What iptables-save prints after an install, with rules of others
 * around ours (Docker's, a user's). */
static const char *saved =
	"# Generated by iptables-save v1.8.9 (nf_tables)\n"
	"*filter\n"
	":INPUT ACCEPT [0:0]\n"
	"-A INPUT -j WEFT_OUTPUT\n"          /* not nat: not ours to touch */
	"COMMIT\n"
	"*nat\n"
	":PREROUTING ACCEPT [0:0]\n"
	":INPUT ACCEPT [0:0]\n"
	":OUTPUT ACCEPT [0:0]\n"
	":POSTROUTING ACCEPT [0:0]\n"
	":DOCKER - [0:0]\n"
	":WEFT_INBOUND - [0:0]\n"
	":WEFT_IN_REDIRECT - [0:0]\n"
	":WEFT_OUTPUT - [0:0]\n"
	":WEFT_REDIRECT - [0:0]\n"
	":WEFT_OUTPUT_EXTRA - [0:0]\n"
	"-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
	"-A PREROUTING -p tcp -j WEFT_INBOUND\n"
	"-A OUTPUT -p tcp -j WEFT_OUTPUT\r\n"
	"-A OUTPUT -p tcp -j WEFT_OUTPUT_EXTRA\n"
	"-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n"
	"-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT\n"
	"-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 21000\n"
	"COMMIT\n"
	"# Completed\n";

static void test_cleanup(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1 << 20);
	/* install: only the jumps from built-in chains go (declaring our
	 * chains again flushes them) */
	assert_int_equal(tproxy_rules_cleanup(saved, 0, &b), 4);
	assert_string_equal(b.data,
		"-D PREROUTING -p tcp -j WEFT_INBOUND\n"
		"-D OUTPUT -p tcp -j WEFT_OUTPUT\n");
	buf_free(&b);
	/* uninstall: and our chains, flushed before any is deleted */
	buf_init(&b, 1 << 20);
	assert_int_equal(tproxy_rules_cleanup(saved, 1, &b), 4);
	assert_string_equal(b.data,
		"-D PREROUTING -p tcp -j WEFT_INBOUND\n"
		"-D OUTPUT -p tcp -j WEFT_OUTPUT\n"
		"-F WEFT_INBOUND\n-F WEFT_IN_REDIRECT\n-F WEFT_OUTPUT\n-F WEFT_REDIRECT\n"
		"-X WEFT_INBOUND\n-X WEFT_IN_REDIRECT\n-X WEFT_OUTPUT\n-X WEFT_REDIRECT\n");
	buf_free(&b);
	/* nothing of ours */
	buf_init(&b, 1 << 20);
	assert_int_equal(tproxy_rules_cleanup("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", 1, &b), 0);
	assert_null(b.data);
	assert_int_equal(tproxy_rules_cleanup("", 1, &b), 0);
	assert_int_equal(tproxy_rules_cleanup(NULL, 1, &b), 0);
	buf_free(&b);
	/* a full buffer is an error, not a silent half */
	buf_init(&b, 10);
	assert_true(tproxy_rules_cleanup(saved, 1, &b) < 0);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_exact),
		cmocka_unit_test(test_rules_bad),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_cleanup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

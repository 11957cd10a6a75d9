/* weftctl install transparent-proxy, weftctl uninstall transparent-proxy:
 * iptables rules that send a VM's (or a network namespace's) TCP traffic
 * through its sidecar (docs/transparent-proxy.md). The rules are made by
 * tproxy_rules.c and applied in one iptables-restore --noflush
 * transaction; nothing here talks to weft-server. */
#include "ctl.h"
#include "buf.h"
#include "err.h"
#include "tproxy_rules.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RULES_MAX (1u << 20)          /* iptables-save output read, at most */
#define PROGRAM_TIMEOUT_MS 30000      /* iptables-save or -restore, each */

/* The flags both commands take. */
struct common {
	const char *netns;
	const char *restore;
	const char *save;
	int dry_run;
};

static void common_opts(struct arg_opt *o, struct common *c)
{
	o[0] = (struct arg_opt){ "netns", ARG_STR, &c->netns, "NAME",
		"apply the rules in network namespace NAME (/run/netns/NAME, as ip netns "
		"names them) or the namespace file at a path", 0, 0 };
	o[1] = (struct arg_opt){ "dry-run", ARG_BOOL, &c->dry_run, NULL,
		"print the iptables-restore input instead of applying it", 0, 0 };
	o[2] = (struct arg_opt){ "iptables-restore", ARG_STR, &c->restore, "PROGRAM",
		"the iptables-restore to run (default: iptables-restore from PATH)", 0, 0 };
	o[3] = (struct arg_opt){ "iptables-save", ARG_STR, &c->save, "PROGRAM",
		"the iptables-save to run (default: iptables-save from PATH)", 0, 0 };
}

/* Joins the network namespace: a name under /run/netns, or a path. */
static int enter_netns(const char *netns)
{
	char path[512];
	int fd;

	if (netns == NULL)
		return CTL_OK;
	if (netns[0] == '\0' || (strchr(netns, '/') == NULL && (strcmp(netns, ".") == 0 ||
								 strcmp(netns, "..") == 0)))
		return ctl_fail("-netns: \"%s\" is not a namespace name", netns);
	if (strchr(netns, '/') != NULL)
		snprintf(path, sizeof(path), "%s", netns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ctl_fail("-netns: cannot open %s: %s%s", path, strerror(errno),
				errno == ENOENT ? " (ip netns list shows the names)" : "");
	if (setns(fd, CLONE_NEWNET) != 0) {
		int e = errno;

		close(fd);
		return ctl_fail("-netns: cannot enter %s: %s%s", path, strerror(e),
				e == EPERM ? " (it needs root or CAP_SYS_ADMIN)" : "");
	}
	close(fd);
	return CTL_OK;
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs prog with args, writing input (may be NULL) to its stdin and
 * reading its stdout into out (may be NULL: inherited); its stderr is
 * ours. Bounded: PROGRAM_TIMEOUT_MS, then it is killed. CTL_OK when it
 * exits 0; otherwise prints why and returns CTL_ERR. */
static int run(const char *prog, char *const argv[], const char *input, struct buf *out)
{
	int in[2] = { -1, -1 }, op[2] = { -1, -1 }, st = 0, rc = CTL_ERR;
	size_t off = 0, ilen = input ? strlen(input) : 0;
	long long deadline = ms_now() + PROGRAM_TIMEOUT_MS;
	pid_t pid;

	if ((input && pipe2(in, O_CLOEXEC) != 0) || (out && pipe2(op, O_CLOEXEC) != 0)) {
		ctl_fail("%s: cannot make a pipe: %s", prog, strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		ctl_fail("%s: cannot fork: %s", prog, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		if ((input && dup2(in[0], 0) < 0) || (out && dup2(op[1], 1) < 0))
			_exit(126);
		execvp(prog, argv);
		fprintf(stderr, "weftctl: cannot run %s: %s%s\n", prog, strerror(errno),
			errno == ENOENT ? " (install Debian's iptables package)" : "");
		_exit(127);
	}
	if (input) {
		close(in[0]);
		in[0] = -1;
		fcntl(in[1], F_SETFL, O_NONBLOCK);
	}
	if (out) {
		close(op[1]);
		op[1] = -1;
	}
	signal(SIGPIPE, SIG_IGN);
	while (in[1] >= 0 || op[0] >= 0) {
		struct pollfd p[2];
		int n = 0, wait = (int)(deadline - ms_now());

		if (wait <= 0) {
			kill(pid, SIGKILL);
			ctl_fail("%s: no answer in %d s: killed", prog, PROGRAM_TIMEOUT_MS / 1000);
			break;
		}
		if (in[1] >= 0)
			p[n++] = (struct pollfd){ .fd = in[1], .events = POLLOUT };
		if (op[0] >= 0)
			p[n++] = (struct pollfd){ .fd = op[0], .events = POLLIN };
		if (poll(p, (nfds_t)n, wait) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			if (p[i].revents == 0)
				continue;
			if (p[i].fd == in[1]) {
				ssize_t w = write(in[1], input + off, ilen - off);

				if (w > 0)
					off += (size_t)w;
				if ((w < 0 && errno != EAGAIN) || off == ilen) {
					close(in[1]);
					in[1] = -1;
				}
			} else {
				char b[4096];
				ssize_t r = read(op[0], b, sizeof(b));

				if (r > 0 && buf_append(out, b, (size_t)r) != WEFT_OK) {
					kill(pid, SIGKILL);
					ctl_fail("%s: more than %u bytes of output", prog, RULES_MAX);
					r = 0;
				}
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
					close(op[0]);
					op[0] = -1;
				}
			}
		}
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		rc = (in[1] < 0 && op[0] < 0) ? CTL_OK : CTL_ERR;
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		rc = CTL_ERR;   /* the child said why */
	else if (WIFEXITED(st))
		ctl_fail("%s failed (exit status %d)", prog, WEXITSTATUS(st));
	else
		ctl_fail("%s ended by signal %d", prog, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (op[i] >= 0)
			close(op[i]);
	}
	return rc;
}

/* The nat table's current rules (iptables-save -t nat). */
static int save_nat(const struct common *c, struct buf *saved)
{
	const char *prog = c->save ? c->save : "iptables-save";
	char *argv[] = { (char *)prog, "-t", "nat", NULL };

	return run(prog, argv, NULL, saved);
}

static int restore(const struct common *c, const char *input)
{
	const char *prog = c->restore ? c->restore : "iptables-restore";
	char *argv[] = { (char *)prog, "--noflush", NULL };

	return run(prog, argv, input, NULL);
}

/* --proxy-id: the ports from the proxy's snapshot as weft-server
 * computes it (GET /v1/weft/proxy/:id/snapshot, the token needing
 * service:write on the proxied service): Inbound.BindPort, and
 * Transparent.BindPort, which is there only when the registration asks
 * for transparent mode. A port given as a flag wins. */
static int ports_from_server(struct ctl *g, const char *id, long long *in_port,
			     long long *out_port, int out_given)
{
	char *esc = httpc_escape(id, 0), path[600];
	json_t *doc, *in, *tp;
	int rc;

	if (esc == NULL)
		return ctl_fail("out of memory");
	snprintf(path, sizeof(path), "/v1/weft/proxy/%s/snapshot", esc);
	free(esc);
	if ((doc = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		return rc;
	in = json_object_get(json_object_get(doc, "Inbound"), "BindPort");
	tp = json_object_get(json_object_get(doc, "Transparent"), "BindPort");
	if (!json_is_integer(in)) {
		json_decref(doc);
		return ctl_fail("-proxy-id %s: the server's snapshot has no Inbound.BindPort", id);
	}
	if (!json_is_integer(tp)) {
		json_decref(doc);
		return ctl_fail("-proxy-id %s: the proxy is not in transparent mode (register it "
				"with \"Proxy\": {\"Mode\": \"transparent\"}: docs/transparent-proxy.md)",
				id);
	}
	if (*in_port == 0)
		*in_port = json_integer_value(in);
	if (!out_given)
		*out_port = json_integer_value(tp);
	json_decref(doc);
	return CTL_OK;
}

/* "1234" as is; a user name as its uid. */
static int resolve_uid(const char *s, char *out, size_t size)
{
	struct passwd *pw;

	if (s == NULL)
		return -1;
	if (s[0] >= '0' && s[0] <= '9') {
		snprintf(out, size, "%s", s);
		return 0;
	}
	pw = getpwnam(s);
	if (pw == NULL)
		return -1;
	snprintf(out, size, "%u", (unsigned)pw->pw_uid);
	return 0;
}

static int run_install(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	struct common c = { 0 };
	struct arg_list xin = { 0 }, xout = { 0 }, xcidr = { 0 }, xuid = { 0 };
	long long in_port = 0, out_port = 0;
	const char *uid_s = NULL, *proxy_id = NULL;
	char uid[32];
	struct arg_opt opts[17] = {
		{ "proxy-uid", ARG_STR, &uid_s, "UID",
		  "the user the proxy runs as (ID or name): its traffic is not redirected "
		  "(required)", 0, 0 },
		{ "inbound-port", ARG_INT, &in_port, "PORT",
		  "the sidecar's public port: incoming TCP goes there (required)", 1, 65535 },
		{ "outbound-port", ARG_INT, &out_port, "PORT",
		  "the proxy's transparent outbound listener (default 15001)", 1, 65535 },
		{ "exclude-inbound-port", ARG_LIST, &xin, "PORT",
		  "an incoming port (or FIRST:LAST) not redirected, e.g. 22; repeatable", 0, 0 },
		{ "exclude-outbound-port", ARG_LIST, &xout, "PORT",
		  "a destination port (or FIRST:LAST) not redirected; repeatable", 0, 0 },
		{ "exclude-outbound-cidr", ARG_LIST, &xcidr, "CIDR",
		  "a destination IPv4 address or CIDR not redirected; repeatable", 0, 0 },
		{ "exclude-uid", ARG_LIST, &xuid, "UID",
		  "another user (ID or FIRST-LAST) whose traffic is not redirected; repeatable",
		  0, 0 },
		{ "proxy-id", ARG_STR, &proxy_id, "ID",
		  "take the ports from this proxy's snapshot on weft-server (its Inbound and "
		  "Transparent listeners; needs -address and a -token with service:write)", 0, 0 },
		/* consul connect redirect-traffic's spellings */
		{ "proxy-inbound-port", ARG_INT, &in_port, "PORT", "the same as -inbound-port",
		  1, 65535 },
		{ "proxy-outbound-port", ARG_INT, &out_port, "PORT", "the same as -outbound-port",
		  1, 65535 },
	};
	struct tproxy_opts o = { 0 };
	struct buf rules, saved;
	char *err = NULL;
	int rc;

	common_opts(&opts[10], &c);
	buf_init(&rules, RULES_MAX);
	buf_init(&saved, RULES_MAX);
	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		goto out;
	if (uid_s == NULL) {
		rc = ctl_usage(cmd, "flag -proxy-uid is required");
		goto out;
	}
	if (resolve_uid(uid_s, uid, sizeof(uid)) != 0) {
		rc = ctl_usage(cmd, "flag -proxy-uid: \"%s\" is not a user ID or a known user", uid_s);
		goto out;
	}
	if (proxy_id != NULL &&
	    (rc = ports_from_server(g, proxy_id, &in_port, &out_port, out_port != 0)) != CTL_OK)
		goto out;
	if (in_port == 0) {
		rc = ctl_usage(cmd, "flag -inbound-port (or -proxy-id) is required");
		goto out;
	}
	if (out_port == 0)
		out_port = TPROXY_OUTBOUND_PORT_DEFAULT;
	o = (struct tproxy_opts){
		.proxy_uid = uid, .inbound_port = in_port, .outbound_port = out_port,
		.exclude_inbound_ports = xin.v, .n_exclude_inbound_ports = xin.n,
		.exclude_outbound_ports = xout.v, .n_exclude_outbound_ports = xout.n,
		.exclude_outbound_cidrs = xcidr.v, .n_exclude_outbound_cidrs = xcidr.n,
		.exclude_uids = xuid.v, .n_exclude_uids = xuid.n,
	};
	/* the rules first: a bad flag is a usage error, before any change */
	if (buf_printf(&rules, "*nat\n") != WEFT_OK || tproxy_rules_build(&o, &rules, &err) != WEFT_OK) {
		rc = err ? ctl_usage(cmd, "%s", err) : ctl_fail("out of memory");
		goto out;
	}
	if (c.dry_run) {
		fputs(rules.data, stdout);
		fputs("COMMIT\n", stdout);
		rc = CTL_OK;
		goto out;
	}
	if ((rc = enter_netns(c.netns)) != CTL_OK || (rc = save_nat(&c, &saved)) != CTL_OK)
		goto out;
	{
		/* declarations, then the old jumps out, then the new rules */
		struct buf all;
		const char *body = strchr(rules.data, '\n') + 1;
		const char *first_rule = strstr(body, "\n-A ") + 1;

		buf_init(&all, RULES_MAX);
		if (buf_printf(&all, "*nat\n%.*s", (int)(first_rule - body), body) != WEFT_OK ||
		    tproxy_rules_cleanup(saved.data, 0, &all) < 0 ||
		    buf_printf(&all, "%sCOMMIT\n", first_rule) != WEFT_OK) {
			buf_free(&all);
			rc = ctl_fail("out of memory");
			goto out;
		}
		rc = restore(&c, all.data);
		buf_free(&all);
	}
	if (rc == CTL_OK)
		printf("transparent proxy rules installed%s%s: inbound TCP -> port %lld, outbound TCP "
		       "-> port %lld, uid %s not redirected\n", c.netns ? " in netns " : "",
		       c.netns ? c.netns : "", in_port, out_port, uid);
out:
	free(err);
	buf_free(&rules);
	buf_free(&saved);
	args_list_free(&xin);
	args_list_free(&xout);
	args_list_free(&xcidr);
	args_list_free(&xuid);
	return rc;
}

static int run_uninstall(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	struct common c = { 0 };
	struct arg_opt opts[5] = { { 0 } };
	struct buf saved, rules;
	int rc, found;

	common_opts(opts, &c);
	buf_init(&saved, RULES_MAX);
	buf_init(&rules, RULES_MAX);
	rc = ctl_parse_flags(g, cmd, opts, argc, argv);
	if (rc != CTL_CONTINUE)
		goto out;
	if ((rc = enter_netns(c.netns)) != CTL_OK || (rc = save_nat(&c, &saved)) != CTL_OK)
		goto out;
	if (buf_printf(&rules, "*nat\n") != WEFT_OK ||
	    (found = tproxy_rules_cleanup(saved.data, 1, &rules)) < 0 ||
	    buf_printf(&rules, "COMMIT\n") != WEFT_OK) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	if (c.dry_run) {
		fputs(rules.data, stdout);
		rc = CTL_OK;
		goto out;
	}
	if (found == 0 && strstr(rules.data, "\n-D ") == NULL) {
		printf("no transparent proxy rules to remove%s%s\n", c.netns ? " in netns " : "",
		       c.netns ? c.netns : "");
		rc = CTL_OK;
		goto out;
	}
	rc = restore(&c, rules.data);
	if (rc == CTL_OK)
		printf("transparent proxy rules removed%s%s\n", c.netns ? " in netns " : "",
		       c.netns ? c.netns : "");
out:
	buf_free(&saved);
	buf_free(&rules);
	return rc;
}

const struct ctl_command ctl_cmds_tproxy[] = {
	{ "install transparent-proxy", "-proxy-uid UID (-inbound-port PORT | -proxy-id ID) [flags]",
	  "Redirect this machine's TCP traffic through its sidecar (iptables)",
	  "Writes iptables nat rules (Debian's iptables package, run as root) in\n"
	  "chains of Weft's own: TCP arriving from the network goes to the sidecar's\n"
	  "public port (-inbound-port), except the excluded ports; TCP that local\n"
	  "users other than the proxy's (-proxy-uid) and the excluded ones open to\n"
	  "non-loopback destinations goes to the proxy's transparent outbound\n"
	  "listener (-outbound-port, the snapshot's Transparent.BindPort), which\n"
	  "sends it to the upstream the destination belongs to. One\n"
	  "iptables-restore transaction: all or nothing; running it again replaces\n"
	  "the rules. Exclude the ports you reach the machine on (-exclude-inbound-port\n"
	  "22). With -proxy-id, the ports are those of the proxy's snapshot on\n"
	  "weft-server (asked before entering -netns). IPv4 only.\n"
	  "docs/transparent-proxy.md",
	  run_install },
	{ "uninstall transparent-proxy", "[flags]",
	  "Remove the rules of install transparent-proxy",
	  "Deletes the jumps to Weft's chains and the chains (WEFT_INBOUND,\n"
	  "WEFT_IN_REDIRECT, WEFT_OUTPUT, WEFT_REDIRECT) from the nat table, in one\n"
	  "transaction; other rules stay. Nothing to remove is not an error.",
	  run_uninstall },
	{ 0 },
};

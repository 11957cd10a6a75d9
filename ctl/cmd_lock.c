/* weftctl lock PREFIX COMMAND...: run a command while holding a lock, as
 * consul lock does with -n=1.
 *
 * The lock is the key PREFIX/.lock held by a session (Consul's
 * api.Lock: flags 0x2ddccbc058a50c18, empty value). weftctl creates the
 * session (TTL 15s, renewed every 7.5s), waits for the key with blocking
 * queries, acquires it, runs the command and watches the key while the
 * command runs: if the key is taken away or the session cannot be renewed
 * the command gets SIGTERM, then SIGKILL after 5s. Afterwards, or on
 * SIGINT/SIGTERM/SIGHUP (which are passed on to the command), the lock is
 * released, the session destroyed and the key deleted if nobody holds it. */
#include "buf.h"
#include "ctl.h"
#include "err.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOCK_FLAG       UINT64_C(0x2ddccbc058a50c18)
#define LOCK_TTL_MS     15000
#define LOCK_WAIT_MS    15000   /* longest blocking query */
#define LOCK_RETRY_MS   5000    /* wait after a refused acquire (lock-delay) */
#define KILL_GRACE_MS   5000
#define MONITOR_RETRIES 3
#define CLEANUP_TIMEOUT_MS 10000

/* Process-wide because signal handlers set them. */
static volatile sig_atomic_t got_signal;
static volatile sig_atomic_t child_done;
static volatile sig_atomic_t child_pid;
static volatile sig_atomic_t child_group;   /* signal the child's process group */

struct lock {
	struct ctl *g;
	char *key;          /* PREFIX/.lock */
	char *kv;           /* /v1/kv/<escaped key> */
	char session[64];
	int64_t next_renew;
	uint64_t index;
	int cleanup;        /* requests must finish even after a signal */
	int verbose;
};

static void on_signal(int sig)
{
	int saved = errno;

	got_signal = sig;
	if (child_pid > 0)
		kill(child_group ? -(pid_t)child_pid : (pid_t)child_pid, sig);
	errno = saved;
}

static void on_child(int sig)
{
	child_done = 1;
}

static int aborted(void *arg)
{
	struct lock *l = arg;

	return !l->cleanup && (got_signal || child_done);
}

static void install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;   /* no SA_RESTART: waits return early */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
}

static void note(struct lock *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct lock *l, const char *fmt, ...)
{
	va_list ap;

	if (!l->verbose)
		return;
	fputs("weftctl: lock: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Sleeps up to ms, less when a signal or the child's exit comes. */
static void nap(struct lock *l, long ms)
{
	int64_t end = now_mono_ms() + ms;
	struct timespec ts;
	int64_t left;

	while (!aborted(l) && (left = end - now_mono_ms()) > 0) {
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
}

/* GET the key, as a blocking query when index > 0. *pair is the entry or
 * NULL when the key does not exist. */
static int read_key(struct lock *l, uint64_t index, long wait_ms, json_t **pair, char **err)
{
	struct httpc_resp resp = { 0 };
	char path[4200];
	json_t *doc = NULL;
	long timeout;
	int rc;

	*pair = NULL;
	if (index > 0 && wait_ms > 0) {
		snprintf(path, sizeof(path), "%s?index=%" PRIu64 "&wait=%ldms", l->kv, index, wait_ms);
		timeout = wait_ms + wait_ms / 16 + 5000;
	} else {
		snprintf(path, sizeof(path), "%s", l->kv);
		timeout = l->cleanup ? CLEANUP_TIMEOUT_MS : 0;
	}
	rc = httpc_json(l->g->http, "GET", path, NULL, timeout, &doc, &resp, err);
	if (resp.has_index)
		l->index = resp.index;
	if (rc == WEFT_ENOENT && httpc_missing_object(&resp))
		rc = WEFT_OK;
	else if (rc == WEFT_OK && json_is_array(doc) && json_array_size(doc) > 0)
		*pair = json_incref(json_array_get(doc, 0));
	json_decref(doc);
	httpc_resp_free(&resp);
	return rc;
}

static uint64_t pair_flags(json_t *pair)
{
	json_t *f = json_object_get(pair, "Flags");

	return json_is_integer(f) ? (uint64_t)json_integer_value(f) : 0;
}

static int not_a_lock(struct lock *l, json_t *pair, char **err)
{
	return weft_errf(err, WEFT_ECONFLICT,
			 "%s is not a lock: its flags are %" PRIu64 ", a lock's are %" PRIu64
			 " (is another tool using this key?)", l->key, pair_flags(pair), LOCK_FLAG);
}

static int create_session(struct lock *l, const char *name, char **err)
{
	json_t *body = json_pack("{s:s, s:s}", "Name", name, "TTL", "15s"), *reply = NULL;
	int rc;

	rc = httpc_json(l->g->http, "PUT", "/v1/session/create", body, 0, &reply, NULL, err);
	json_decref(body);
	if (rc != WEFT_OK)
		goto out;
	if (!json_is_object(reply) || ctl_str(reply, "ID")[0] == '\0' ||
	    strlen(ctl_str(reply, "ID")) >= sizeof(l->session)) {
		rc = weft_errf(err, WEFT_EIO, "the reply to PUT /v1/session/create has no ID");
		goto out;
	}
	snprintf(l->session, sizeof(l->session), "%s", ctl_str(reply, "ID"));
	l->next_renew = now_mono_ms() + LOCK_TTL_MS / 2;
	note(l, "created session %s", l->session);
out:
	json_decref(reply);
	return rc;
}

/* Renews the session when it is due. WEFT_ENOENT: the session is gone. */
static int renew_if_due(struct lock *l, char **err)
{
	char path[128];
	int rc;

	if (now_mono_ms() < l->next_renew)
		return WEFT_OK;
	snprintf(path, sizeof(path), "/v1/session/renew/%s", l->session);
	rc = httpc_json(l->g->http, "PUT", path, NULL, 0, NULL, NULL, err);
	if (rc == WEFT_OK)
		l->next_renew = now_mono_ms() + LOCK_TTL_MS / 2;
	else if (rc != WEFT_ENOENT)   /* try again soon */
		l->next_renew = now_mono_ms() + 1000;
	return rc;
}

/* PUT ?acquire= or ?release=; *ok is the server's true/false. */
static int kv_lock_op(struct lock *l, const char *op, int *ok, char **err)
{
	char path[4200];
	json_t *reply = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s?%s=%s&flags=%" PRIu64, l->kv, op, l->session, LOCK_FLAG);
	rc = httpc_json(l->g->http, "PUT", path, NULL, l->cleanup ? CLEANUP_TIMEOUT_MS : 0, &reply,
			NULL, err);
	*ok = json_is_true(reply);
	json_decref(reply);
	return rc;
}

static long until(int64_t when)
{
	int64_t left = when - now_mono_ms();

	return left > 0 ? (long)left : 0;
}

/* Waits for and takes the lock. WEFT_ECONFLICT with a message for a
 * timeout or a key that is not a lock; WEFT_ESHUTDOWN on a signal. */
static int acquire(struct lock *l, int64_t deadline, char **err)
{
	uint64_t idx = 0;
	json_t *pair = NULL;
	long wait;
	int rc, ok;

	for (;;) {
		json_decref(pair);
		pair = NULL;
		if (got_signal)
			return weft_errf(err, WEFT_ESHUTDOWN, "interrupted while waiting for the lock on %s",
					 l->key);
		if (deadline && now_mono_ms() >= deadline)
			return weft_errf(err, WEFT_ECONFLICT, "timed out waiting for the lock on %s",
					 l->key);
		rc = renew_if_due(l, err);
		if (rc == WEFT_ENOENT)
			return weft_errf(err, WEFT_EIO, "the lock's session expired while waiting");
		wait = LOCK_WAIT_MS;
		if (until(l->next_renew) < wait)
			wait = until(l->next_renew);
		if (deadline && until(deadline) < wait)
			wait = until(deadline);
		rc = read_key(l, idx, wait, &pair, err);
		if (rc != WEFT_OK)
			return rc;
		if (pair && pair_flags(pair) != LOCK_FLAG) {
			rc = not_a_lock(l, pair, err);
			break;
		}
		if (pair && strcmp(ctl_str(pair, "Session"), l->session) == 0)
			break;
		if (pair && ctl_str(pair, "Session")[0]) {
			note(l, "held by session %s; waiting", ctl_str(pair, "Session"));
			idx = l->index ? l->index : 1;
			continue;
		}
		rc = kv_lock_op(l, "acquire", &ok, err);
		if (rc != WEFT_OK)
			return rc;
		if (ok)
			break;
		/* Refused: someone was quicker, or a lock-delay is running. */
		json_decref(pair);
		pair = NULL;
		rc = read_key(l, 0, 0, &pair, err);
		if (rc != WEFT_OK)
			return rc;
		if (pair && ctl_str(pair, "Session")[0]) {
			idx = l->index ? l->index : 1;
			continue;
		}
		idx = 0;
		nap(l, deadline && until(deadline) < LOCK_RETRY_MS ? until(deadline) : LOCK_RETRY_MS);
	}
	json_decref(pair);
	if (rc == WEFT_OK)
		note(l, "acquired %s", l->key);
	return rc;
}

static pid_t start_child(const char **cmdv, int cmdc, int shell, int pass_stdin, char **err)
{
	sigset_t block, old;
	struct buf script;
	pid_t pid;
	int fd, i;

	buf_init(&script, 1 << 20);
	for (i = 0; i < cmdc; i++)
		buf_printf(&script, "%s%s", i ? " " : "", cmdv[i]);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	child_group = !pass_stdin;
	pid = fork();
	if (pid == 0) {
		const char *sh = getenv("SHELL");
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		/* Its own process group so that a signal reaches the shell's
		 * children too; with -pass-stdin it stays in ours to keep the
		 * terminal. */
		if (!pass_stdin) {
			setpgid(0, 0);
			fd = open("/dev/null", O_RDONLY);
			if (fd >= 0) {
				dup2(fd, 0);
				if (fd != 0)
					close(fd);
			}
		}
		setenv("CONSUL_LOCK_HELD", "true", 1);
		setenv("WEFT_LOCK_HELD", "true", 1);
		if (shell) {
			if (sh == NULL || sh[0] == '\0')
				sh = "/bin/sh";
			execl(sh, sh, "-c", script.data ? script.data : "", (char *)NULL);
			fprintf(stderr, "weftctl: lock: cannot run %s: %s\n", sh, strerror(errno));
		} else {
			execvp(cmdv[0], (char *const *)cmdv);
			fprintf(stderr, "weftctl: lock: cannot run %s: %s\n", cmdv[0], strerror(errno));
		}
		_exit(127);
	}
	if (pid > 0) {
		if (!pass_stdin)
			setpgid(pid, pid);
		child_pid = pid;
	} else {
		weft_errf(err, WEFT_EIO, "cannot start the command: %s", strerror(errno));
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	buf_free(&script);
	return pid;
}

/* Waits up to ms for the child; 1 when it has been reaped. */
static int reap(pid_t pid, long ms, int *status)
{
	int64_t end = now_mono_ms() + ms;
	struct timespec ts = { 0, 20 * 1000000L };

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return 1;
		if (now_mono_ms() >= end)
			return 0;
		nanosleep(&ts, NULL);
	}
}

static void signal_child(pid_t pid, int sig)
{
	kill(child_group ? -pid : pid, sig);
}

static int stop_child(struct lock *l, pid_t pid, int sig_sent, int *status)
{
	if (!sig_sent)
		signal_child(pid, SIGTERM);
	if (reap(pid, KILL_GRACE_MS, status))
		return 1;
	note(l, "the command did not stop within %s; killing it", "5s");
	signal_child(pid, SIGKILL);
	return reap(pid, KILL_GRACE_MS, status);
}

/* Watches the lock while the command runs. Returns 1 when the lock was
 * lost, 0 when the command ended (or a signal asks weftctl to stop). */
static int monitor(struct lock *l, char **err)
{
	uint64_t idx = l->index;
	json_t *pair = NULL;
	int errors = 0, rc;

	while (!child_done && !got_signal) {
		rc = renew_if_due(l, err);
		if (rc == WEFT_ENOENT) {
			weft_errf(err, WEFT_EIO, "the lock's session %s is gone", l->session);
			return 1;
		}
		if (rc == WEFT_ESHUTDOWN)
			continue;
		rc = read_key(l, idx ? idx : 1, until(l->next_renew) ? until(l->next_renew) : 1,
			      &pair, err);
		if (rc == WEFT_ESHUTDOWN)
			continue;
		if (rc != WEFT_OK) {
			if (++errors > MONITOR_RETRIES)
				return 1;
			nap(l, 1000);
			continue;
		}
		errors = 0;
		if (pair == NULL || strcmp(ctl_str(pair, "Session"), l->session) != 0) {
			weft_errf(err, WEFT_EIO, "%s is no longer held by this session", l->key);
			json_decref(pair);
			return 1;
		}
		json_decref(pair);
		pair = NULL;
		if (l->index < idx)
			idx = 0;    /* the index went backwards: start over */
		else
			idx = l->index;
	}
	return 0;
}

/* Release, destroy the session, delete the key if nobody holds it. */
static int release(struct lock *l, int held)
{
	char path[4200], *err = NULL;
	json_t *pair = NULL, *mi;
	int rc = CTL_OK, ok = 0;

	l->cleanup = 1;
	if (held && kv_lock_op(l, "release", &ok, &err) != WEFT_OK) {
		rc = ctl_fail("cannot release the lock on %s: %s", l->key, err);
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/session/destroy/%s", l->session);
	if (httpc_json(l->g->http, "PUT", path, NULL, CLEANUP_TIMEOUT_MS, NULL, NULL, &err)
	    != WEFT_OK && rc == CTL_OK) {
		rc = ctl_fail("cannot destroy session %s: %s", l->session, err);
		goto out;
	}
	note(l, "released %s", l->key);
	/* Like api.Lock.Destroy: delete the key when it is a free lock. */
	if (read_key(l, 0, 0, &pair, &err) != WEFT_OK || pair == NULL ||
	    pair_flags(pair) != LOCK_FLAG || ctl_str(pair, "Session")[0])
		goto out;
	mi = json_object_get(pair, "ModifyIndex");
	snprintf(path, sizeof(path), "%s?cas=%" JSON_INTEGER_FORMAT, l->kv,
		 json_is_integer(mi) ? json_integer_value(mi) : (json_int_t)0);
	httpc_json(l->g->http, "DELETE", path, NULL, CLEANUP_TIMEOUT_MS, NULL, NULL, &err);
out:
	json_decref(pair);
	free(err);
	return rc;
}

static int run_lock(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *name = NULL;
	long long timeout_ms = 0;
	int shell = 1, pass_stdin = 0, verbose = 0, npos, rc, status = 0, lost = 0, held = 0;
	const struct arg_opt opts[] = {
		{ "timeout", ARG_DURATION, &timeout_ms, "DURATION", "give up when the lock is not acquired within this time (default: wait for ever)", 0, 0 },
		{ "name", ARG_STR, &name, "NAME", "the session's name (default: from the command and prefix)", 0, 0 },
		{ "shell", ARG_BOOL, &shell, NULL, "run COMMAND with $SHELL -c (default true; -shell=false execs it directly)", 0, 0 },
		{ "pass-stdin", ARG_BOOL, &pass_stdin, NULL, "give the command weftctl's stdin (default: /dev/null)", 0, 0 },
		{ "verbose", ARG_BOOL, &verbose, NULL, "report each step on stderr", 0, 0 },
		{ 0 },
	};
	struct lock l = { .g = g };
	const char **pos = NULL, **cmdv = NULL;
	char *err = NULL, *esc = NULL, *gen_name = NULL;
	const char *prefix;
	int64_t deadline = 0;
	size_t plen;
	pid_t pid;

	rc = ctl_parse(g, cmd, opts, argc, argv, 1, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos < 2) {
		rc = ctl_usage(cmd, npos ? "COMMAND is required" : "PREFIX and COMMAND are required");
		goto out;
	}
	l.verbose = verbose;
	prefix = pos[0];
	while (*prefix == '/')
		prefix++;
	plen = strlen(prefix);
	while (plen > 0 && prefix[plen - 1] == '/')
		plen--;
	if (asprintf(&l.key, "%.*s%s.lock", (int)plen, prefix, plen ? "/" : "") < 0) {
		l.key = NULL;
		rc = ctl_fail("out of memory");
		goto out;
	}
	esc = httpc_escape(l.key, 1);
	if (esc == NULL || asprintf(&l.kv, "/v1/kv/%s", esc) < 0) {
		l.kv = NULL;
		rc = ctl_fail("out of memory");
		goto out;
	}
	cmdv = calloc((size_t)npos, sizeof(*cmdv));
	if (cmdv == NULL) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	memcpy(cmdv, pos + 1, (size_t)(npos - 1) * sizeof(*cmdv));
	if (name == NULL) {
		struct buf b;
		buf_init(&b, 4096);
		buf_printf(&b, "weftctl lock for '");
		for (int i = 1; i < npos; i++)
			buf_printf(&b, "%s%s", i > 1 ? " " : "", pos[i]);
		buf_printf(&b, "' at '%.*s'", (int)plen, prefix);
		name = gen_name = buf_steal(&b);
	}
	if (timeout_ms > 0)
		deadline = now_mono_ms() + timeout_ms;

	got_signal = child_done = 0;
	child_pid = 0;
	install_handlers();
	g->abort_fn = aborted;
	g->abort_arg = &l;
	if (ctl_http(g) == NULL) {
		rc = CTL_ERR;
		goto out;
	}
	if (create_session(&l, name, &err) != WEFT_OK) {
		rc = ctl_fail("cannot create a session for the lock: %s", err);
		goto out;
	}
	rc = acquire(&l, deadline, &err);
	if (rc != WEFT_OK) {
		if (rc == WEFT_ESHUTDOWN)
			ctl_fail("interrupted while waiting for the lock on %s", l.key);
		else
			ctl_fail("%s", err);
		release(&l, 0);
		rc = CTL_ERR;
		goto out;
	}
	held = 1;
	if (got_signal) {
		release(&l, held);
		rc = ctl_fail("interrupted after acquiring the lock on %s; released it", l.key);
		goto out;
	}
	pid = start_child(cmdv, npos - 1, shell, pass_stdin, &err);
	if (pid < 0) {
		ctl_fail("%s", err);
		release(&l, held);
		rc = CTL_ERR;
		goto out;
	}
	lost = monitor(&l, &err);
	if (lost) {
		ctl_fail("lost the lock on %s (%s); stopping the command", l.key,
			 err ? err : "no contact with weft-server");
		stop_child(&l, pid, 0, &status);
		held = 0;
	} else if (got_signal && !child_done) {
		note(&l, "got a signal; waiting for the command to stop (%s)", "5s grace");
		stop_child(&l, pid, 1, &status);
	} else {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	child_pid = 0;
	rc = release(&l, held);
	if (rc == CTL_OK && !lost) {
		if (WIFEXITED(status))
			rc = WEXITSTATUS(status);
		else if (WIFSIGNALED(status))
			rc = 128 + WTERMSIG(status);
	} else if (lost) {
		rc = CTL_ERR;
	}
out:
	g->abort_fn = NULL;
	free(pos);
	free(cmdv);
	free(err);
	free(esc);
	free(gen_name);
	free(l.key);
	free(l.kv);
	return rc;
}

const struct ctl_command ctl_cmds_lock[] = {
	{ "lock", "[flags] PREFIX COMMAND [ARGS...]",
	  "Run a command while holding a lock (like consul lock)",
	  "Creates a session, waits (with blocking queries) until it holds the key\n"
	  "PREFIX/.lock, then runs COMMAND with CONSUL_LOCK_HELD=true and\n"
	  "WEFT_LOCK_HELD=true in its environment. The session is renewed while the\n"
	  "command runs; if the lock is lost the command gets SIGTERM (SIGKILL 5s\n"
	  "later) and weftctl exits 1. SIGINT, SIGTERM and SIGHUP are passed on to\n"
	  "the command. When it ends, the lock is released, the session destroyed\n"
	  "and the key deleted if no one else holds it.\n\n"
	  "COMMAND and its arguments are joined with spaces and run by $SHELL -c\n"
	  "(/bin/sh); -shell=false runs them directly. Flags for weftctl come before\n"
	  "PREFIX. The exit status is the command's (128+N if killed by signal N);\n"
	  "1 if the lock could not be taken (see -timeout) or was lost.",
	  run_lock },
	{ 0 },
};

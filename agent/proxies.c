/* weft-agent's sidecars: snapshot watchers and proxy supervisors (proxies.h). */
#include "proxies.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "err.h"
#include "jsonx.h"
#include "log.h"
#include "px_config.h"
#include "util.h"

#define WAIT_S 300                    /* the blocking query's ?wait= (5m) */
#define WATCH_BACKOFF_MIN_MS 1000
#define WATCH_BACKOFF_MAX_MS 30000
#define RESTART_BACKOFF_MIN_MS 100
#define RESTART_BACKOFF_MAX_MS 30000
#define RESTART_RESET_UPTIME_MS 60000 /* a proxy up this long starts again at the minimum */
#define DRAIN_GRACE_MS 1000           /* past the proxy's own --drain-timeout */
#define KILL_WAIT_MS 5000
#define LOG_ROTATE_BYTES (4L << 20)
#define ADMIN_TIMEOUT_MS 500
#define ID_MAX 128

struct proxies;

struct proxy {
	struct proxies *owner;
	struct proxy *next;
	/* the spec, copied */
	char *id, *service, *cert_file, *key_file, *bundle_file, *access_log;
	int admin_port;
	char *dir, *snap_path, *log_path, *pid_path;
	pthread_t watch_thread, sup_thread;
	int watch_started, sup_started;
	int wake[2];                 /* the supervisor's wake-up pipe */
	atomic_int stopping;
	/* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;         /* the watcher's naps */
	bool reload_pending, restart_pending;
	pid_t pid;
	bool ready;
	unsigned restarts;
	uint64_t snap_index;
	char *last_error;
	const char *waiting;         /* static text, or NULL */
	/* the supervisor's own */
	int pidfd, out_fd, log_fd;   /* -1 when none */
	long log_size;
	int64_t started_ms;
	/* the watcher's own */
	char *last_body;             /* the last body received */
	char *written;               /* what snapshot.json holds */
	uint64_t rng;
};

struct proxies {
	char *proxy_bin, *dir, *node, *address, *token, *ca_file;
	struct httpc_opts server;
	int64_t drain_ms;
	pthread_mutex_t set_lock;    /* one proxies_set at a time */
	pthread_mutex_t lock;        /* the list */
	struct proxy *list;
};

/* ---------------------------------------------------------------- helpers */

static uint64_t rnd(struct proxy *x)
{
	x->rng ^= x->rng << 13;
	x->rng ^= x->rng >> 7;
	x->rng ^= x->rng << 17;
	return x->rng;
}

/* The next backoff: *d jittered to [d/2, d]; *d doubles up to max. */
static long backoff_next(struct proxy *x, long *d, long max)
{
	long cur = *d;

	*d = cur * 2 > max ? max : cur * 2;
	return cur / 2 + (long)(rnd(x) % (uint64_t)(cur / 2 + 1));
}

static void set_error(struct proxy *x, const char *msg)
{
	pthread_mutex_lock(&x->lock);
	free(x->last_error);
	x->last_error = msg ? strdup(msg) : NULL;
	pthread_mutex_unlock(&x->lock);
}

static void wake(struct proxy *x)
{
	char c = 1;

	if (write(x->wake[1], &c, 1) < 0 && errno != EAGAIN)
		log_warn("proxies", "wake: proxy=%s", x->id);
}

/* Sleeps ms on the watcher's condition, or less when stopping. */
static void nap(struct proxy *x, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&x->lock);
	while (!atomic_load(&x->stopping) && pthread_cond_timedwait(&x->cond, &x->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&x->lock);
}

/* One request to the proxy's admin listener: the HTTP status, or -1. */
static int admin_http(int port, const char *method, const char *path, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	char req[256], buf[64];
	size_t got = 0;
	int fd, status = -1, len;
	unsigned st;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	len = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n"
		       "Connection: close\r\n\r\n", method, path, port);
	if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
		goto out;
	while (got < 12) {
		ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (r <= 0)
			goto out;
		got += (size_t)r;
	}
	buf[got] = '\0';
	if (sscanf(buf, "HTTP/1.%*1[01] %3u", &st) == 1)
		status = (int)st;
out:
	close(fd);
	return status;
}

/* ------------------------------------------------------- the snapshot */

/* Sets obj[name] = v (stolen), replacing a field of that name in any case. */
static void set_field(json_t *obj, const char *name, json_t *v)
{
	const char *k;
	json_t *val;
	void *tmp;

	json_object_foreach_safe(obj, tmp, k, val) {
		if (strcasecmp(k, name) == 0)
			json_object_del(obj, k);
	}
	json_object_set_new(obj, name, v);
}

static json_t *file_ref(const char *path)
{
	return json_pack("{s:s}", "File", path);
}

int proxies_localize(const struct proxy_spec *spec, const char *body, size_t len, char **out,
		     uint64_t *index, char **err)
{
	json_t *doc = NULL, *tls, *ident;
	struct px_config *cfg = NULL;
	const char *svc;
	char *text = NULL, *e = NULL;
	int rc = WEFT_EINVAL;

	*out = NULL;
	*index = 0;
	if ((doc = jx_parse(body, len, &e)) == NULL || !json_is_object(doc)) {
		weft_errf(err, WEFT_EINVAL, "snapshot: not a JSON object%s%s", e ? ": " : "", e ? e : "");
		goto out;
	}
	ident = jx_field(doc, "Proxy");
	svc = json_string_value(jx_field(ident, "Service"));
	if (svc != NULL && strcmp(svc, spec->service) != 0) {
		weft_errf(err, WEFT_EINVAL, "Proxy.Service: \"%s\" is not this sidecar's destination "
			  "service \"%s\"", svc, spec->service);
		goto out;
	}
	tls = jx_field(doc, "TLS");
	if (json_is_object(tls)) {
		set_field(tls, "Certificate", file_ref(spec->cert_file));
		set_field(tls, "PrivateKey", file_ref(spec->key_file));
		set_field(tls, "TrustBundle", file_ref(spec->bundle_file));
	}
	set_field(doc, "Admin", json_pack("{s:s,s:i}", "BindAddress", "127.0.0.1", "BindPort",
					  spec->admin_port));
	if (spec->access_log)
		set_field(doc, "AccessLog", json_pack("{s:b,s:s}", "Enabled", 1, "Path", spec->access_log));
	else
		set_field(doc, "AccessLog", json_null());
	if ((text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	if (px_config_decode(text, strlen(text), &cfg, &e) != WEFT_OK) {
		weft_errf(err, WEFT_EINVAL, "%s", e ? e : "does not decode");
		goto out;
	}
	*index = cfg->index;
	*out = text;
	text = NULL;
	rc = WEFT_OK;
out:
	px_config_unref(cfg);
	free(text);
	free(e);
	json_decref(doc);
	return rc;
}

/* Whether the proxy must restart to apply b after a: weft-proxy takes its
 * listeners (inbound, upstreams, admin, access log, passthrough) at start
 * only. NULL a (nothing decodable before): no. */
static bool needs_restart(const char *old_text, const struct px_config *b)
{
	struct px_config *a = NULL;
	bool differ = false;

	if (old_text == NULL || px_config_decode(old_text, strlen(old_text), &a, NULL) != WEFT_OK)
		return false;
	if (strcmp(a->inbound.bind_address, b->inbound.bind_address) != 0 ||
	    a->inbound.bind_port != b->inbound.bind_port ||
	    strcmp(a->inbound.app_address, b->inbound.app_address) != 0 ||
	    a->inbound.app_port != b->inbound.app_port || a->inbound.protocol != b->inbound.protocol ||
	    a->n_upstreams != b->n_upstreams || a->tls.configured != b->tls.configured ||
	    a->passthrough.configured != b->passthrough.configured || b->index < a->index)
		differ = true;
	for (size_t i = 0; !differ && i < a->n_upstreams; i++) {
		const struct px_upstream *x = &a->upstreams[i], *y = &b->upstreams[i];

		differ = strcmp(x->name, y->name) != 0 || strcmp(x->bind_address, y->bind_address) != 0 ||
			 x->bind_port != y->bind_port || x->protocol != y->protocol;
	}
	px_config_unref(a);
	return differ;
}

static void spec_of(const struct proxy *x, struct proxy_spec *s)
{
	*s = (struct proxy_spec){.id = x->id, .service = x->service, .cert_file = x->cert_file,
				 .key_file = x->key_file, .bundle_file = x->bundle_file,
				 .admin_port = x->admin_port, .access_log = x->access_log};
}

/* A snapshot body from the server: validated, written, handed over. */
static void handle_snapshot(struct proxy *x, const char *body, size_t len)
{
	struct proxy_spec s;
	struct px_config *cfg = NULL;
	uint64_t index;
	char *text = NULL, *e = NULL;
	bool restart;

	if (x->last_body && strlen(x->last_body) == len && memcmp(x->last_body, body, len) == 0)
		return;
	free(x->last_body);
	x->last_body = strndup(body, len);
	spec_of(x, &s);
	if (proxies_localize(&s, body, len, &text, &index, &e) != WEFT_OK) {
		log_warnx("proxies", "snapshot refused: proxy=%s error=\"%s\" (not handed to the proxy; "
			  "it keeps its current one)", x->id, e ? e : "?");
		set_error(x, e);
		goto out;
	}
	if (x->written && strcmp(x->written, text) == 0) {
		pthread_mutex_lock(&x->lock);
		x->snap_index = index;
		pthread_mutex_unlock(&x->lock);
		goto out;
	}
	if (px_config_decode(text, strlen(text), &cfg, NULL) != WEFT_OK)
		goto out;   /* (proxies_localize decoded it) */
	restart = needs_restart(x->written, cfg);
	if (atomic_load(&x->stopping))
		goto out;
	if (file_write_all(x->snap_path, text, strlen(text), 0600) != 0) {
		char *m = NULL;

		weft_errf(&m, WEFT_EIO, "cannot write %s: %s", x->snap_path, strerror(errno));
		log_warnx("proxies", "snapshot not handed over: proxy=%s error=\"%s\"", x->id, m ? m : "");
		set_error(x, m);
		free(m);
		goto out;
	}
	free(x->written);
	x->written = text;
	text = NULL;
	pthread_mutex_lock(&x->lock);
	x->snap_index = index;
	if (restart)
		x->restart_pending = true;
	else
		x->reload_pending = true;
	free(x->last_error);
	x->last_error = NULL;
	pthread_mutex_unlock(&x->lock);
	log_info("proxies", "snapshot written: proxy=%s index=%llu file=%s upstreams=%zu "
		 "intentions=%zu default=%s then=%s", x->id, (unsigned long long)index, x->snap_path,
		 cfg->n_upstreams, intention_set_count(cfg->intentions),
		 cfg->default_action == INTENTION_ALLOW ? "allow" : "deny", restart ? "restart" : "reload");
	wake(x);
out:
	px_config_unref(cfg);
	free(text);
	free(e);
}

static int watch_abort(void *arg)
{
	struct proxy *x = arg;

	return atomic_load(&x->stopping);
}

static void *watch_main(void *arg)
{
	struct proxy *x = arg;
	struct proxies *p = x->owner;
	struct httpc_opts ho = p->server;
	struct httpc *c = NULL;
	char *eid = NULL, *enode = NULL, *base = NULL, *last = NULL, *e = NULL;
	uint64_t index = 0;
	long delay = WATCH_BACKOFF_MIN_MS;
	bool failing = false;

	ho.abort_fn = watch_abort;
	ho.abort_arg = x;
	ho.max_body = PX_CONFIG_MAX_BYTES;
	if (httpc_new(&c, &ho, &e) != WEFT_OK) {
		log_warnx("proxies", "watch: proxy=%s error=\"%s\" (no snapshot will come; the proxy "
			  "runs on its file)", x->id, e ? e : "?");
		set_error(x, e);
		goto out;
	}
	eid = httpc_escape(x->id, 0);
	enode = httpc_escape(p->node, 0);
	if (eid == NULL || enode == NULL ||
	    asprintf(&base, "/v1/weft/proxy/%s/snapshot?node=%s&version=%d", eid, enode,
		     PX_CONFIG_VERSION) < 0) {
		base = NULL;
		log_warnx("proxies", "watch: proxy=%s: out of memory", x->id);
		goto out;
	}
	while (!atomic_load(&x->stopping)) {
		struct httpc_resp resp = {0};
		char path[1024], *msg = NULL;
		int rc;

		snprintf(path, sizeof(path), "%s&index=%llu&wait=%ds", base, (unsigned long long)index,
			 WAIT_S);
		rc = httpc_request(c, "GET", path, NULL, 0, NULL, (WAIT_S + 60) * 1000L, &resp, &e);
		if (atomic_load(&x->stopping)) {
			httpc_resp_free(&resp);
			break;
		}
		if (rc == WEFT_OK && resp.status == 200) {
			if (failing)
				log_info("proxies", "server reachable again: proxy=%s server=%s", x->id,
					 httpc_display(c));
			failing = false;
			free(last);
			last = NULL;
			delay = WATCH_BACKOFF_MIN_MS;
			if (resp.has_index && resp.index < index)
				log_warnx("proxies", "snapshot index went back: proxy=%s from=%llu to=%llu "
					  "(a server whose data was reset: followed)", x->id,
					  (unsigned long long)index, (unsigned long long)resp.index);
			handle_snapshot(x, resp.body ? resp.body : "", resp.len);
			if (!resp.has_index || resp.index == 0 || resp.index == index)
				nap(x, 500);   /* no progress to block on: do not spin */
			index = resp.has_index ? resp.index : 0;
			httpc_resp_free(&resp);
			continue;
		}
		if (rc == WEFT_OK && resp.status == 404 && resp.has_index && resp.index > 0) {
			/* not registered (yet): the server's blocking query waits
			 * for the services to change, no backoff needed */
			uint64_t ri = resp.index;
			bool moved = ri != index;

			if (last == NULL || strstr(last, "answered 404") == NULL) {
				char *m = httpc_error_message(&resp);

				free(last);
				if (asprintf(&last, "%s answered 404: %s", httpc_display(c), m ? m : "") < 0)
					last = NULL;
				free(m);
				log_warnx("proxies", "snapshot: proxy=%s error=\"%s\" (waiting for its "
					  "registration)", x->id, last ? last : "404");
				set_error(x, last);
			}
			httpc_resp_free(&resp);
			index = ri;
			failing = true;
			if (!moved)
				nap(x, backoff_next(x, &delay, WATCH_BACKOFF_MAX_MS));
			continue;
		}
		if (rc == WEFT_OK) {
			char *m = httpc_error_message(&resp);

			if (asprintf(&msg, "%s answered %ld: %s", httpc_display(c), resp.status,
				     m ? m : "") < 0)
				msg = NULL;
			free(m);
		} else {
			msg = e;
			e = NULL;
		}
		httpc_resp_free(&resp);
		free(e);
		e = NULL;
		if (msg && (last == NULL || strcmp(last, msg) != 0))
			log_warnx("proxies", "snapshot: proxy=%s error=\"%s\" (the proxy keeps its "
				  "current snapshot; retrying)", x->id, msg);
		set_error(x, msg);
		free(last);
		last = msg;
		failing = true;
		nap(x, backoff_next(x, &delay, WATCH_BACKOFF_MAX_MS));
	}
out:
	httpc_free(c);
	free(eid);
	free(enode);
	free(base);
	free(last);
	free(e);
	return NULL;
}

/* ------------------------------------------------------ the supervisor */

static void log_open(struct proxy *x)
{
	struct stat st;

	if (x->log_fd >= 0)
		return;
	if (stat(x->log_path, &st) == 0 && st.st_size >= LOG_ROTATE_BYTES) {
		char old[PATH_MAX];

		snprintf(old, sizeof(old), "%s.1", x->log_path);
		if (rename(x->log_path, old) != 0)
			log_warn("proxies", "log rotation: %s", x->log_path);
	}
	x->log_fd = open(x->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (x->log_fd < 0) {
		log_warn("proxies", "proxy=%s: cannot open %s (its output is dropped)", x->id, x->log_path);
		return;
	}
	x->log_size = fstat(x->log_fd, &st) == 0 ? (long)st.st_size : 0;
}

/* Copies what the proxy wrote to proxy.log; false at its end (EOF). */
static bool pump_output(struct proxy *x)
{
	char buf[65536];
	ssize_t r;

	while ((r = read(x->out_fd, buf, sizeof(buf))) > 0) {
		if (x->log_fd < 0)
			log_open(x);
		if (x->log_fd >= 0) {
			if (write(x->log_fd, buf, (size_t)r) != r)
				log_warn("proxies", "proxy=%s: writing %s", x->id, x->log_path);
			x->log_size += (long)r;
			if (x->log_size >= LOG_ROTATE_BYTES) {
				close(x->log_fd);
				x->log_fd = -1;
				log_open(x);
			}
		}
	}
	return !(r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR));
}

#define EV_EXITED 1

/* Waits up to timeout_ms for a wake-up or the proxy's exit, copying its
 * output meanwhile. EV_EXITED when it exited. */
static int wait_events(struct proxy *x, long timeout_ms)
{
	int64_t deadline = now_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);

	for (;;) {
		struct pollfd fds[3];
		nfds_t n = 0;
		int64_t left = deadline - now_mono_ms();
		int r, pi = -1, oi = -1;
		char drain[64];

		fds[n++] = (struct pollfd){.fd = x->wake[0], .events = POLLIN};
		if (x->pidfd >= 0) {
			pi = (int)n;
			fds[n++] = (struct pollfd){.fd = x->pidfd, .events = POLLIN};
		}
		if (x->out_fd >= 0) {
			oi = (int)n;
			fds[n++] = (struct pollfd){.fd = x->out_fd, .events = POLLIN};
		}
		r = poll(fds, n, left < 0 ? 0 : (int)left);
		if (r < 0 && errno != EINTR)
			return 0;
		if (r > 0) {
			if (oi >= 0 && (fds[oi].revents & (POLLIN | POLLHUP | POLLERR)) && !pump_output(x)) {
				close(x->out_fd);
				x->out_fd = -1;
			}
			if (pi >= 0 && (fds[pi].revents & POLLIN))
				return EV_EXITED;
			if (fds[0].revents & POLLIN) {
				while (read(x->wake[0], drain, sizeof(drain)) > 0)
					;
				return 0;
			}
		}
		if (now_mono_ms() >= deadline)
			return 0;
	}
}

/* The proxy exited (its pidfd is readable, or it was SIGKILLed): reaps it. */
static int reap(struct proxy *x, char *how, size_t size)
{
	int status = 0;
	pid_t r;

	do
		r = waitpid(x->pid, &status, 0);
	while (r < 0 && errno == EINTR);
	if (x->out_fd >= 0) {
		pump_output(x);
		close(x->out_fd);
		x->out_fd = -1;
	}
	if (x->log_fd >= 0) {
		close(x->log_fd);
		x->log_fd = -1;
	}
	if (x->pidfd >= 0)
		close(x->pidfd);
	x->pidfd = -1;
	unlink(x->pid_path);
	if (r < 0)
		snprintf(how, size, "unknown (%s)", strerror(errno));
	else if (WIFEXITED(status))
		snprintf(how, size, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, size, "signal %d", WTERMSIG(status));
	else
		snprintf(how, size, "status %d", status);
	pthread_mutex_lock(&x->lock);
	x->pid = 0;
	x->ready = false;
	pthread_mutex_unlock(&x->lock);
	return status;
}

/* What the proxy still waits for before it can start, or NULL. */
static const char *missing_file(struct proxy *x)
{
	if (access(x->snap_path, R_OK) != 0)
		return "snapshot";
	if (access(x->cert_file, R_OK) != 0)
		return "certificate file";
	if (access(x->key_file, R_OK) != 0)
		return "key file";
	if (access(x->bundle_file, R_OK) != 0)
		return "trust bundle file";
	return NULL;
}

/* A weft-proxy left by an agent that died without taking it along (its pid
 * file, a process running this proxy's snapshot): killed, so that two do
 * not share a port. */
static void kill_stale(struct proxy *x)
{
	char path[64], cmd[8192], *pidtext;
	size_t len = 0;
	long pid;
	int fd;
	ssize_t n;

	if ((pidtext = file_read_all(x->pid_path, 64, &len)) == NULL)
		return;
	pid = strtol(pidtext, NULL, 10);
	free(pidtext);
	unlink(x->pid_path);
	if (pid <= 1 || pid == getpid())
		return;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return;
	cmd[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	if (strstr(cmd, "weft-proxy") == NULL || strstr(cmd, x->snap_path) == NULL)
		return;
	log_warnx("proxies", "a proxy from before is still running: proxy=%s pid=%ld: killed", x->id,
		  pid);
	kill((pid_t)pid, SIGKILL);
	for (int i = 0; i < 100 && kill((pid_t)pid, 0) == 0; i++) {
		char st[512];
		char *rp;

		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			break;
		n = read(fd, st, sizeof(st) - 1);
		close(fd);
		st[n > 0 ? n : 0] = '\0';
		if ((rp = strrchr(st, ')')) != NULL && rp[1] == ' ' && rp[2] == 'Z')
			break;   /* dead, its parent (init) reaps it */
		usleep(20000);
	}
}

/* Forks and execs weft-proxy; false with a log line when it could not. */
static bool spawn(struct proxy *x)
{
	struct proxies *p = x->owner;
	char drain[32], pidtext[32];
	char *argv[] = {p->proxy_bin, "--config", x->snap_path, "--workers", "1", "--drain-timeout",
			drain, NULL};
	int out[2] = {-1, -1}, devnull = -1;
	pid_t parent = getpid(), pid;

	snprintf(drain, sizeof(drain), "%lld", (long long)p->drain_ms);
	if (pipe2(out, O_CLOEXEC) != 0 || (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		log_warn("proxies", "proxy=%s: cannot start it: pipe", x->id);
		goto fail;
	}
	fcntl(out[0], F_SETPIPE_SZ, 256 * 1024);
	log_open(x);
	/* the new process reads the file as it is after this point: a
	 * snapshot written later sets the flags again (and gets a SIGHUP) */
	pthread_mutex_lock(&x->lock);
	x->reload_pending = false;
	x->restart_pending = false;
	pthread_mutex_unlock(&x->lock);
	pid = fork();
	if (pid < 0) {
		log_warn("proxies", "proxy=%s: cannot start it: fork", x->id);
		goto fail;
	}
	if (pid == 0) {
		/* the child: async-signal-safe calls only */
		struct sigaction sa;
		sigset_t none;

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(127);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				sigaction(sig, &sa, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		execv(argv[0], argv);
		{
			static const char msg[] = "weft-agent: cannot execute weft-proxy\n";

			if (write(2, msg, sizeof(msg) - 1) < 0)
				_exit(127);
		}
		_exit(127);
	}
	close(out[1]);
	close(devnull);
	x->out_fd = out[0];
	fcntl(x->out_fd, F_SETFL, O_NONBLOCK);
	x->pidfd = pidfd_open(pid, 0);
	if (x->pidfd < 0)
		log_warn("proxies", "proxy=%s: pidfd_open", x->id);   /* (then polled, below) */
	x->started_ms = now_mono_ms();
	pthread_mutex_lock(&x->lock);
	x->pid = pid;
	x->ready = false;
	x->waiting = NULL;
	pthread_mutex_unlock(&x->lock);
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)pid);
	if (file_write_all(x->pid_path, pidtext, strlen(pidtext), 0600) != 0)
		log_warn("proxies", "proxy=%s: cannot write %s", x->id, x->pid_path);
	log_info("proxies", "proxy started: proxy=%s pid=%d config=%s admin=127.0.0.1:%d log=%s", x->id,
		 (int)pid, x->snap_path, x->admin_port, x->log_path);
	return true;
fail:
	if (out[0] >= 0)
		close(out[0]);
	if (out[1] >= 0)
		close(out[1]);
	if (devnull >= 0)
		close(devnull);
	return false;
}

/* Whether the proxy exited within timeout_ms (copying its output). */
static bool wait_exit(struct proxy *x, long timeout_ms)
{
	int64_t deadline = now_mono_ms() + timeout_ms;

	for (;;) {
		int64_t left = deadline - now_mono_ms();

		if (x->pidfd >= 0) {
			if (wait_events(x, left < 100 ? left : 100) == EV_EXITED)
				return true;
		} else {
			siginfo_t si = {0};

			if (waitid(P_PID, (id_t)x->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			    si.si_pid == x->pid)
				return true;
			wait_events(x, left < 50 ? left : 50);
		}
		if (now_mono_ms() >= deadline)
			return false;
	}
}

/* Stops the running proxy: /drain (SIGTERM when that fails), up to the
 * drain time, then SIGKILL. */
static void stop_child(struct proxy *x, const char *why)
{
	struct proxies *p = x->owner;
	int64_t t0 = now_mono_ms();
	const char *how;
	char status[64];
	pid_t pid = x->pid;

	if (pid == 0)
		return;
	if (admin_http(x->admin_port, "POST", "/drain", ADMIN_TIMEOUT_MS) == 202) {
		how = "drained";
	} else {
		how = "terminated";
		kill(pid, SIGTERM);
	}
	if (!wait_exit(x, (long)p->drain_ms + DRAIN_GRACE_MS)) {
		how = "killed";
		log_warnx("proxies", "proxy did not stop within %lld ms: proxy=%s pid=%d: SIGKILL",
			  (long long)p->drain_ms + DRAIN_GRACE_MS, x->id, (int)pid);
		kill(pid, SIGKILL);
		wait_exit(x, KILL_WAIT_MS);
	}
	reap(x, status, sizeof(status));
	log_info("proxies", "proxy stopped: proxy=%s pid=%d why=%s how=%s status=\"%s\" took_ms=%lld",
		 x->id, (int)pid, why, how, status, (long long)(now_mono_ms() - t0));
}

static void *sup_main(void *arg)
{
	struct proxy *x = arg;
	long backoff = RESTART_BACKOFF_MIN_MS;
	int64_t next_start = 0;
	const char *logged_missing = NULL;

	kill_stale(x);
	while (!atomic_load(&x->stopping)) {
		bool reload, restart, ready;

		if (x->pid == 0) {
			int64_t now = now_mono_ms();
			const char *missing = missing_file(x);

			pthread_mutex_lock(&x->lock);
			x->waiting = missing;
			pthread_mutex_unlock(&x->lock);
			if (missing && missing != logged_missing)
				log_info("proxies", "proxy waits for its %s: proxy=%s", missing, x->id);
			logged_missing = missing;
			if (missing == NULL && now >= next_start) {
				if (!spawn(x)) {
					next_start = now + backoff_next(x, &backoff, RESTART_BACKOFF_MAX_MS);
					continue;
				}
				logged_missing = NULL;
				continue;
			}
			wait_events(x, missing ? 500 : next_start - now);
			continue;
		}
		pthread_mutex_lock(&x->lock);
		ready = x->ready;
		pthread_mutex_unlock(&x->lock);
		if (wait_events(x, ready ? 1000 : 50) == EV_EXITED ||
		    (x->pidfd < 0 && wait_exit(x, 0))) {
			char how[64];
			int64_t up = now_mono_ms() - x->started_ms;
			pid_t pid = x->pid;
			long d;

			reap(x, how, sizeof(how));
			if (up >= RESTART_RESET_UPTIME_MS)
				backoff = RESTART_BACKOFF_MIN_MS;
			d = backoff;
			backoff = backoff * 2 > RESTART_BACKOFF_MAX_MS ? RESTART_BACKOFF_MAX_MS : backoff * 2;
			next_start = now_mono_ms() + d;
			pthread_mutex_lock(&x->lock);
			x->restarts++;
			pthread_mutex_unlock(&x->lock);
			log_warnx("proxies", "proxy exited: proxy=%s pid=%d status=\"%s\" uptime_ms=%lld "
				  "(restarting in %ld ms)", x->id, (int)pid, how, (long long)up, d);
			continue;
		}
		if (!ready && admin_http(x->admin_port, "GET", "/ready", ADMIN_TIMEOUT_MS) == 200) {
			ready = true;
			pthread_mutex_lock(&x->lock);
			x->ready = true;
			pthread_mutex_unlock(&x->lock);
			log_info("proxies", "proxy ready: proxy=%s pid=%d took_ms=%lld", x->id, (int)x->pid,
				 (long long)(now_mono_ms() - x->started_ms));
		}
		pthread_mutex_lock(&x->lock);
		restart = x->restart_pending;
		reload = x->reload_pending && ready;   /* before it is ready, a SIGHUP could kill it */
		if (reload)
			x->reload_pending = false;
		pthread_mutex_unlock(&x->lock);
		if (restart) {
			stop_child(x, "new-listeners");
			next_start = 0;
			continue;
		}
		if (reload) {
			kill(x->pid, SIGHUP);
			log_info("proxies", "proxy reloads: proxy=%s pid=%d", x->id, (int)x->pid);
		}
	}
	stop_child(x, "removed");
	return NULL;
}

/* ------------------------------------------------------------ the set */

static void proxy_free(struct proxy *x)
{
	if (x == NULL)
		return;
	free(x->id);
	free(x->service);
	free(x->cert_file);
	free(x->key_file);
	free(x->bundle_file);
	free(x->access_log);
	free(x->dir);
	free(x->snap_path);
	free(x->log_path);
	free(x->pid_path);
	free(x->last_error);
	free(x->last_body);
	free(x->written);
	if (x->wake[0] >= 0)
		close(x->wake[0]);
	if (x->wake[1] >= 0)
		close(x->wake[1]);
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->cond);
	free(x);
}

/* Asks both threads to end (the supervisor then stops the proxy). */
static void proxy_signal_stop(struct proxy *x)
{
	pthread_mutex_lock(&x->lock);
	atomic_store(&x->stopping, 1);
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	wake(x);
}

static void proxy_join(struct proxy *x)
{
	if (x->watch_started)
		pthread_join(x->watch_thread, NULL);
	if (x->sup_started)
		pthread_join(x->sup_thread, NULL);
	proxy_free(x);
}

static char *dupnull(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, path, len + 1);
	for (char *s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return mkdir(buf, mode) != 0 && errno != EEXIST ? -1 : 0;
}

static int proxy_start(struct proxies *p, const struct proxy_spec *s, struct proxy **out, char **err)
{
	struct proxy *x = calloc(1, sizeof(*x));
	pthread_condattr_t ca;
	int rc = WEFT_ENOMEM;

	*out = NULL;
	if (x == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	x->owner = p;
	x->wake[0] = x->wake[1] = x->pidfd = x->out_fd = x->log_fd = -1;
	pthread_mutex_init(&x->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&x->cond, &ca);
	pthread_condattr_destroy(&ca);
	x->rng = (uint64_t)now_mono_ms() * 2654435761u ^ (uint64_t)(uintptr_t)x ^ 0x9e3779b97f4a7c15ULL;
	x->id = strdup(s->id);
	x->service = strdup(s->service);
	x->cert_file = strdup(s->cert_file);
	x->key_file = strdup(s->key_file);
	x->bundle_file = strdup(s->bundle_file);
	x->access_log = dupnull(s->access_log);
	x->admin_port = s->admin_port;
	if (!x->id || !x->service || !x->cert_file || !x->key_file || !x->bundle_file ||
	    (s->access_log && !x->access_log) || asprintf(&x->dir, "%s/%s", p->dir, s->id) < 0 ||
	    asprintf(&x->snap_path, "%s/snapshot.json", x->dir) < 0 ||
	    asprintf(&x->log_path, "%s/proxy.log", x->dir) < 0 ||
	    asprintf(&x->pid_path, "%s/proxy.pid", x->dir) < 0) {
		weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto fail;
	}
	if (mkdir_p(x->dir, 0700) != 0) {
		rc = weft_errf(err, WEFT_EIO, "proxies: %s: %s", x->dir, strerror(errno));
		goto fail;
	}
	/* what an earlier run left: the proxy starts from it, and a snapshot
	 * equal to it is not handed over again */
	x->written = file_read_all(x->snap_path, PX_CONFIG_MAX_BYTES, NULL);
	if (pipe2(x->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		rc = weft_errf(err, WEFT_EIO, "proxies: pipe: %s", strerror(errno));
		goto fail;
	}
	if (pthread_create(&x->sup_thread, NULL, sup_main, x) != 0) {
		rc = weft_errf(err, WEFT_EIO, "proxies: %s: cannot start a thread", s->id);
		goto fail;
	}
	x->sup_started = 1;
	if (pthread_create(&x->watch_thread, NULL, watch_main, x) != 0) {
		rc = weft_errf(err, WEFT_EIO, "proxies: %s: cannot start a thread", s->id);
		proxy_signal_stop(x);
		proxy_join(x);
		return rc;
	}
	x->watch_started = 1;
	*out = x;
	return WEFT_OK;
fail:
	proxy_free(x);
	return rc;
}

static bool streq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool same_spec(const struct proxy *x, const struct proxy_spec *s)
{
	return streq(x->id, s->id) && streq(x->service, s->service) &&
	       streq(x->cert_file, s->cert_file) && streq(x->key_file, s->key_file) &&
	       streq(x->bundle_file, s->bundle_file) && streq(x->access_log, s->access_log) &&
	       x->admin_port == s->admin_port;
}

static int check_path(const char *v, size_t i, const char *field, char **err)
{
	if (v == NULL || v[0] != '/')
		return weft_errf(err, WEFT_EINVAL, "specs[%zu].%s: want an absolute path, got \"%s\"", i,
				 field, v ? v : "");
	if (strlen(v) > PX_CONFIG_PATH_MAX)
		return weft_errf(err, WEFT_EINVAL, "specs[%zu].%s: longer than %d bytes", i, field,
				 PX_CONFIG_PATH_MAX);
	return WEFT_OK;
}

static int check_specs(const struct proxy_spec *specs, size_t n, char **err)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		const struct proxy_spec *s = &specs[i];

		if (s->id == NULL || s->id[0] == '\0' || strlen(s->id) > ID_MAX ||
		    strcmp(s->id, ".") == 0 || strcmp(s->id, "..") == 0 || strchr(s->id, '/'))
			return weft_errf(err, WEFT_EINVAL, "specs[%zu].ID: \"%s\" is not a usable proxy "
					 "ID (1 to %d bytes, no '/', not . or ..)", i,
					 s->id ? s->id : "", ID_MAX);
		if (s->service == NULL || !name_valid(s->service, PX_CONFIG_NAME_MAX))
			return weft_errf(err, WEFT_EINVAL, "specs[%zu].Service: \"%s\" is not a service "
					 "name", i, s->service ? s->service : "");
		if ((rc = check_path(s->cert_file, i, "CertFile", err)) != WEFT_OK ||
		    (rc = check_path(s->key_file, i, "KeyFile", err)) != WEFT_OK ||
		    (rc = check_path(s->bundle_file, i, "BundleFile", err)) != WEFT_OK)
			return rc;
		if (s->access_log && strcmp(s->access_log, "-") != 0 &&
		    (rc = check_path(s->access_log, i, "AccessLog", err)) != WEFT_OK)
			return rc;
		if (s->admin_port < 1 || s->admin_port > 65535)
			return weft_errf(err, WEFT_EINVAL, "specs[%zu].AdminPort: %d is out of range "
					 "[1, 65535]", i, s->admin_port);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(specs[j].id, s->id) == 0)
				return weft_errf(err, WEFT_EINVAL, "specs[%zu].ID: \"%s\" is also "
						 "specs[%zu]'s", i, s->id, j);
			if (specs[j].admin_port == s->admin_port)
				return weft_errf(err, WEFT_EINVAL, "specs[%zu].AdminPort: %d is also "
						 "specs[%zu]'s", i, s->admin_port, j);
		}
	}
	return WEFT_OK;
}

int proxies_new(struct proxies **out, const struct proxies_opts *o, char **err)
{
	struct proxies *p;

	*out = NULL;
	if (o->proxy_bin == NULL || o->proxy_bin[0] != '/')
		return weft_errf(err, WEFT_EINVAL, "proxies: proxy_bin: want weft-proxy's absolute path, "
				 "got \"%s\"", o->proxy_bin ? o->proxy_bin : "");
	if (access(o->proxy_bin, X_OK) != 0)
		return weft_errf(err, WEFT_EINVAL, "proxies: proxy_bin: %s: %s", o->proxy_bin,
				 strerror(errno));
	if (o->dir == NULL || o->dir[0] != '/')
		return weft_errf(err, WEFT_EINVAL, "proxies: dir: want an absolute path, got \"%s\"",
				 o->dir ? o->dir : "");
	if (o->node == NULL || o->node[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "proxies: node: empty");
	if (o->server.address == NULL)
		return weft_errf(err, WEFT_EINVAL, "proxies: server.address: empty");
	if (o->drain_ms < 0 || o->drain_ms > 3600000)
		return weft_errf(err, WEFT_EINVAL, "proxies: drain_ms: %lld is out of range [0, 3600000]",
				 (long long)o->drain_ms);
	if (mkdir_p(o->dir, 0700) != 0)
		return weft_errf(err, WEFT_EIO, "proxies: %s: %s", o->dir, strerror(errno));
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	p->proxy_bin = strdup(o->proxy_bin);
	p->dir = strdup(o->dir);
	p->node = strdup(o->node);
	p->address = strdup(o->server.address);
	p->token = dupnull(o->server.token);
	p->ca_file = dupnull(o->server.ca_file);
	p->server = o->server;
	p->server.address = p->address;
	p->server.token = p->token;
	p->server.ca_file = p->ca_file;
	p->drain_ms = o->drain_ms ? o->drain_ms : 5000;
	pthread_mutex_init(&p->set_lock, NULL);
	pthread_mutex_init(&p->lock, NULL);
	if (!p->proxy_bin || !p->dir || !p->node || !p->address || (o->server.token && !p->token) ||
	    (o->server.ca_file && !p->ca_file)) {
		proxies_free(p);
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	}
	*out = p;
	return WEFT_OK;
}

int proxies_set(struct proxies *p, const struct proxy_spec *specs, size_t n, char **err)
{
	struct proxy *gone = NULL, **pp, *x;
	int rc;

	if ((rc = check_specs(specs, n, err)) != WEFT_OK)
		return rc;
	pthread_mutex_lock(&p->set_lock);
	/* removed and changed ones leave the list, and stop (in parallel)
	 * before any new one starts: a changed one keeps its port */
	pthread_mutex_lock(&p->lock);
	for (pp = &p->list; (x = *pp) != NULL;) {
		bool keep = false;

		for (size_t i = 0; i < n && !keep; i++)
			keep = same_spec(x, &specs[i]);
		if (keep) {
			pp = &x->next;
			continue;
		}
		*pp = x->next;
		x->next = gone;
		gone = x;
	}
	pthread_mutex_unlock(&p->lock);
	for (x = gone; x; x = x->next)
		proxy_signal_stop(x);
	while ((x = gone) != NULL) {
		gone = x->next;
		proxy_join(x);
	}
	rc = WEFT_OK;
	for (size_t i = 0; i < n; i++) {
		struct proxy *y, *have = NULL;

		pthread_mutex_lock(&p->lock);
		for (y = p->list; y && !have; y = y->next)
			if (strcmp(y->id, specs[i].id) == 0)
				have = y;
		pthread_mutex_unlock(&p->lock);
		if (have)
			continue;
		if ((rc = proxy_start(p, &specs[i], &y, err)) != WEFT_OK)
			break;
		log_info("proxies", "sidecar added: proxy=%s service=%s admin=127.0.0.1:%d dir=%s",
			 y->id, y->service, y->admin_port, y->dir);
		pthread_mutex_lock(&p->lock);
		y->next = p->list;
		p->list = y;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&p->set_lock);
	return rc;
}

void proxies_tls_changed(struct proxies *p, const char *service)
{
	pthread_mutex_lock(&p->lock);
	for (struct proxy *x = p->list; x; x = x->next) {
		if (service && strcmp(service, x->service) != 0)
			continue;
		pthread_mutex_lock(&x->lock);
		x->reload_pending = true;
		pthread_mutex_unlock(&x->lock);
		wake(x);
	}
	pthread_mutex_unlock(&p->lock);
}

int proxies_ready(struct proxies *p)
{
	int *ports = NULL, ok = 1;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&p->lock);
	for (struct proxy *x = p->list; x; x = x->next)
		cap++;
	if (cap > 0 && (ports = calloc(cap, sizeof(*ports))) == NULL)
		ok = 0;
	for (struct proxy *x = p->list; x && ok; x = x->next) {
		pthread_mutex_lock(&x->lock);
		if (x->pid == 0)
			ok = 0;
		pthread_mutex_unlock(&x->lock);
		ports[n++] = x->admin_port;
	}
	pthread_mutex_unlock(&p->lock);
	/* asked outside the lock: a slow proxy does not hold proxies_set up */
	for (size_t i = 0; i < n && ok; i++)
		ok = admin_http(ports[i], "GET", "/ready", ADMIN_TIMEOUT_MS) == 200;
	free(ports);
	return ok;
}

int proxies_status_json(struct proxies *p, json_t **out)
{
	json_t *a = json_array();

	*out = NULL;
	if (a == NULL)
		return WEFT_ENOMEM;
	pthread_mutex_lock(&p->lock);
	for (struct proxy *x = p->list; x; x = x->next) {
		json_t *o;

		pthread_mutex_lock(&x->lock);
		o = json_pack("{s:s,s:s,s:i,s:i,s:I,s:b,s:i,s:s,s:o,s:o}", "ID", x->id, "Service",
			      x->service, "Pid", (int)x->pid, "Restarts", (int)x->restarts,
			      "SnapshotIndex", (json_int_t)x->snap_index, "Ready", x->ready, "AdminPort",
			      x->admin_port, "Snapshot", x->snap_path, "Waiting", jx_str_or_null(x->waiting),
			      "LastError", jx_str_or_null(x->last_error));
		pthread_mutex_unlock(&x->lock);
		if (o == NULL || json_array_append_new(a, o) != 0) {
			pthread_mutex_unlock(&p->lock);
			json_decref(a);
			return WEFT_ENOMEM;
		}
	}
	pthread_mutex_unlock(&p->lock);
	*out = a;
	return WEFT_OK;
}

void proxies_free(struct proxies *p)
{
	if (p == NULL)
		return;
	proxies_set(p, NULL, 0, NULL);
	pthread_mutex_destroy(&p->set_lock);
	pthread_mutex_destroy(&p->lock);
	free(p->proxy_bin);
	free(p->dir);
	free(p->node);
	free(p->address);
	free(p->token);
	free(p->ca_file);
	free(p);
}

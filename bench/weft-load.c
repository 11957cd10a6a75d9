/* weft-load: a small HTTP/1.1 load generator for weft-server and, as the
 * named peer, etcd's v3 JSON gateway.
 *
 * One thread, non-blocking sockets on epoll, keep-alive, one request in
 * flight per connection. Modes:
 *   setup     registers the 10 instances of "web" (etcd: 10 keys under /web/)
 *   register  durable writes: each request registers a new service instance
 *             (etcd: puts a new key)
 *   read      reads the 10-instance service (etcd: a range over /web/)
 *   watch     opens W blocking queries on one service (etcd: W watch
 *             streams on one key), makes one write to it and measures the
 *             time until every watcher has its answer
 *   sign      POST /v1/connect/ca/sign with the JSON bodies of -f FILE (one
 *             per line, {"Service", "CSR"} made beforehand) in turn
 * Prints one line of key=value pairs. Only talks to 127.0.0.1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DURATION_S 120
#define MAX_CONNS 19000
#define MAX_LAT 8000000
#define IN_MAX (4 << 20)

enum target { T_WEFT, T_ETCD };
enum mode { M_SETUP, M_REGISTER, M_READ, M_WATCH, M_SIGN };
enum cstate { C_CONNECTING, C_SENDING, C_READING, C_PARKED, C_DONE };

struct conn {
	int fd;
	int id;
	enum cstate state;
	char *out;
	size_t outlen, outoff;
	char *in;
	size_t inlen, incap;
	size_t scan_from;       /* etcd watch: where to look for the event next */
	int created;            /* etcd watch: the stream reported "created" */
	double sent_at;
	double answered_at;     /* watch: when its answer came */
};

struct opts {
	struct sockaddr_in addr;
	enum target target;
	enum mode mode;
	int conns;
	double duration;
	long long max_requests;
	int watchers;
	const char *service;
	const char *tag;
	const char *path;       /* read: GET this path instead */
	int serializable;
	const char *token;      /* -T: sent as X-Consul-Token */
	char **bodies;          /* sign: the lines of -f FILE */
	size_t nbodies;
};

static struct opts o;
static int epfd;
static double t_start;
static long long sent, done, errors, reconnects, next_seq;
static uint32_t *lat_us;
static size_t nlat;
static const char *watch_key;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "weft-load: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL)
		die("out of memory (%zu bytes)", n);
	return p;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static size_t b64(const char *src, size_t n, char *dst)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)src;
	size_t i, j = 0;

	for (i = 0; i + 2 < n; i += 3) {
		dst[j++] = tab[s[i] >> 2];
		dst[j++] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		dst[j++] = tab[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		dst[j++] = tab[s[i + 2] & 63];
	}
	if (i < n) {
		dst[j++] = tab[s[i] >> 2];
		if (i + 1 < n) {
			dst[j++] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
			dst[j++] = tab[(s[i + 1] & 15) << 2];
		} else {
			dst[j++] = tab[(s[i] & 3) << 4];
			dst[j++] = '=';
		}
		dst[j++] = '=';
	}
	dst[j] = '\0';
	return j;
}

/* ---- requests ---- */

static void set_request(struct conn *c, const char *method, const char *path, const char *body)
{
	size_t blen = body ? strlen(body) : 0;
	int n;

	free(c->out);
	n = asprintf(&c->out, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s%s%s%zu\r\n\r\n%s",
		     method, path, o.token ? "X-Consul-Token: " : "", o.token ? o.token : "",
		     o.token ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "",
		     "Content-Length: ", blen, body ? body : "");
	if (n < 0)
		die("out of memory");
	c->outlen = (size_t)n;
	c->outoff = 0;
}

/* A Consul-shaped service instance, as JSON, about the size of what a
 * catalog entry holds; the etcd runs store the same text as the value. */
static void instance_json(char *out, size_t len, long long seq, const char *svc)
{
	long long node = seq % 1000;

	/* 1,000 nodes that do not change; each request adds an instance. */
	snprintf(out, len,
		 "{\"Node\":\"%s-node-%lld\",\"Address\":\"10.0.%lld.%lld\","
		 "\"Service\":{\"ID\":\"%s-%s-%lld\",\"Service\":\"%s\",\"Tags\":[\"v1\",\"bench\"],"
		 "\"Address\":\"10.%lld.%lld.%lld\",\"Port\":%lld,\"Meta\":{\"version\":\"1.0.%lld\"}}}",
		 svc, node, node / 256, node % 256, svc, o.tag, seq, svc,
		 (seq / 65536) % 256, (seq / 256) % 256, seq % 256, 1024 + seq % 60000, seq % 100);
}

static void etcd_put(struct conn *c, const char *key, const char *value)
{
	char kb[512], *vb = xmalloc(strlen(value) * 2 + 8), *body;

	b64(key, strlen(key), kb);
	b64(value, strlen(value), vb);
	if (asprintf(&body, "{\"key\":\"%s\",\"value\":\"%s\"}", kb, vb) < 0)
		die("out of memory");
	set_request(c, "POST", "/v3/kv/put", body);
	free(body);
	free(vb);
}

static void next_request(struct conn *c)
{
	char js[1024], path[600], key[300];
	long long seq = next_seq++;

	switch (o.mode) {
	case M_SETUP:
		instance_json(js, sizeof(js), seq, o.service);
		if (o.target == T_WEFT) {
			set_request(c, "PUT", "/v1/catalog/register", js);
		} else {
			snprintf(key, sizeof(key), "/%s/%lld", o.service, seq);
			etcd_put(c, key, js);
		}
		break;
	case M_REGISTER:
		instance_json(js, sizeof(js), seq, o.service);
		if (o.target == T_WEFT) {
			set_request(c, "PUT", "/v1/catalog/register", js);
		} else {
			snprintf(key, sizeof(key), "/%s/%s-%lld", o.service, o.tag, seq);
			etcd_put(c, key, js);
		}
		break;
	case M_READ:
		if (o.path) {
			set_request(c, "GET", o.path, NULL);
		} else if (o.target == T_WEFT) {
			snprintf(path, sizeof(path), "/v1/catalog/service/%s", o.service);
			set_request(c, "GET", path, NULL);
		} else {
			char from[300], to[300], fb[420], tb[420], body[1000];
			snprintf(from, sizeof(from), "/%s/", o.service);
			snprintf(to, sizeof(to), "/%s0", o.service);   /* '/' + 1 */
			b64(from, strlen(from), fb);
			b64(to, strlen(to), tb);
			snprintf(body, sizeof(body), "{\"key\":\"%s\",\"range_end\":\"%s\"%s}", fb, tb,
				 o.serializable ? ",\"serializable\":true" : "");
			set_request(c, "POST", "/v3/kv/range", body);
		}
		break;
	case M_SIGN:
		set_request(c, "POST", "/v1/connect/ca/sign", o.bodies[seq % (long long)o.nbodies]);
		break;
	case M_WATCH:
		break;
	}
}

/* sign: one request body per line of path, at most 100,000 lines. */
static void load_bodies(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (f == NULL)
		die("-f %s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, f)) > 0 && o.nbodies < 100000) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		o.bodies = realloc(o.bodies, (o.nbodies + 1) * sizeof(*o.bodies));
		if (o.bodies == NULL || (o.bodies[o.nbodies] = strdup(line)) == NULL)
			die("out of memory");
		o.nbodies++;
	}
	free(line);
	fclose(f);
	if (o.nbodies == 0)
		die("-f %s: no request bodies", path);
}

/* ---- connections ---- */

static void conn_watch_events(struct conn *c, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

static int conn_open(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s (raise ulimit -n?)", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&o.addr, sizeof(o.addr)) != 0 && errno != EINPROGRESS)
		die("connect: %s", strerror(errno));
	c->state = C_CONNECTING;
	c->inlen = 0;
	c->scan_from = 0;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
}

static int conn_send(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			return -1;
		}
		c->outoff += (size_t)n;
	}
	if (c->outoff < c->outlen) {
		if (c->state != C_SENDING)
			conn_watch_events(c, EPOLLOUT);
		c->state = C_SENDING;
	} else {
		if (c->state != C_READING)
			conn_watch_events(c, EPOLLIN);
		c->state = C_READING;
	}
	return 0;
}

static void conn_start_request(struct conn *c)
{
	c->sent_at = now_s();
	c->inlen = 0;
	sent++;
	if (conn_send(c) != 0) {
		errors++;
		c->state = C_DONE;
	}
}

/* ---- responses ---- */

static const char *memmem_ci_header(const char *hdrs, size_t len, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i + nl < len; i++)
		if ((i == 0 || hdrs[i - 1] == '\n') && strncasecmp(hdrs + i, name, nl) == 0)
			return hdrs + i + nl;
	return NULL;
}

/* 1 when c->in holds a whole response (status in *status), 0 if not yet,
 * -1 if malformed. */
static int resp_complete(struct conn *c, int *status)
{
	char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
	const char *v;
	size_t hlen, pos;

	if (end == NULL)
		return 0;
	hlen = (size_t)(end - c->in) + 4;
	if (c->inlen < 12 || strncmp(c->in, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(c->in + 9);
	if ((v = memmem_ci_header(c->in, hlen, "Content-Length:")) != NULL)
		return c->inlen >= hlen + strtoull(v, NULL, 10) ? 1 : 0;
	if ((v = memmem_ci_header(c->in, hlen, "Transfer-Encoding:")) != NULL) {
		pos = hlen;
		for (;;) {
			char *nl = memmem(c->in + pos, c->inlen - pos, "\r\n", 2);
			unsigned long long sz;
			if (nl == NULL)
				return 0;
			sz = strtoull(c->in + pos, NULL, 16);
			pos = (size_t)(nl - c->in) + 2;
			if (sz == 0)
				return c->inlen >= pos + 2 ? 1 : 0;
			if (c->inlen < pos + sz + 2)
				return 0;
			pos += sz + 2;
		}
	}
	return 1;   /* no body */
}

static void record_latency(double secs)
{
	if (nlat < MAX_LAT)
		lat_us[nlat++] = (uint32_t)(secs * 1e6);
}

static int in_grow(struct conn *c)
{
	if (c->inlen + 65536 > c->incap) {
		size_t nc = c->incap ? c->incap * 2 : 65536 * 2;
		if (nc > IN_MAX)
			return -1;
		c->in = realloc(c->in, nc);
		if (c->in == NULL)
			die("out of memory");
		c->incap = nc;
	}
	return 0;
}

/* Reads what is there; returns -1 on EOF or error. */
static int conn_read(struct conn *c)
{
	for (;;) {
		ssize_t n;
		if (in_grow(c) != 0)
			return -1;
		n = read(c->fd, c->in + c->inlen, c->incap - c->inlen - 1);
		if (n > 0) {
			c->inlen += (size_t)n;
			c->in[c->inlen] = '\0';
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return 0;
		return -1;
	}
}

static int work_left(double t)
{
	if (o.max_requests > 0 && sent >= o.max_requests)
		return 0;
	return t - t_start < o.duration;
}

static void on_event(struct conn *c, unsigned events)
{
	int status = 0, rc;

	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0)
			die("connect to 127.0.0.1:%d: %s", ntohs(o.addr.sin_port), strerror(err));
		c->state = C_SENDING;
		if (o.mode == M_WATCH) {
			if (conn_send(c) != 0)
				die("watch %d: cannot send", c->id);
			return;
		}
		next_request(c);
		conn_start_request(c);
		return;
	}
	if (c->state == C_SENDING) {
		if (conn_send(c) != 0) {
			errors++;
			c->state = C_DONE;
		}
		return;
	}
	if (c->state != C_READING && c->state != C_PARKED)
		return;
	rc = conn_read(c);
	if (o.mode == M_WATCH) {
		/* etcd streams: the first message says "created", the next one
		 * carries the event. weft answers the blocking query whole. */
		if (o.target == T_ETCD) {
			if (!c->created && strstr(c->in, "\"created\":true"))
				c->created = 1;
			if (strstr(c->in + c->scan_from, "\"events\"")) {
				c->answered_at = now_s();
				c->state = C_DONE;
				done++;
			} else if (c->inlen > 16) {
				c->scan_from = c->inlen - 16;
			}
		} else if (resp_complete(c, &status) == 1) {
			c->answered_at = now_s();
			c->state = C_DONE;
			if (status != 200)
				errors++;
			done++;
		}
		if (rc < 0 && c->state != C_DONE) {
			errors++;
			c->state = C_DONE;
			done++;
		}
		return;
	}
	rc = rc < 0 ? -1 : resp_complete(c, &status);
	if (rc == 0)
		return;
	if (rc < 0) {
		/* The server closed the connection: count it, open another. */
		errors++;
		reconnects++;
		conn_close(c);
		if (work_left(now_s()))
			conn_open(c);
		else
			c->state = C_DONE;
		return;
	}
	done++;
	if (status != 200) {
		errors++;
		if (errors <= 3)
			fprintf(stderr, "weft-load: status %d: %.300s\n", status, c->in);
	}
	record_latency(now_s() - c->sent_at);
	if (!work_left(now_s())) {
		c->state = C_DONE;
		return;
	}
	next_request(c);
	conn_start_request(c);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1));
	return v[i] / 1000.0;
}

static void run_requests(void)
{
	struct conn *cs = calloc((size_t)o.conns, sizeof(*cs));
	struct epoll_event evs[256];
	double t_end;
	int active;

	if (cs == NULL)
		die("out of memory");
	lat_us = xmalloc(sizeof(*lat_us) * MAX_LAT);
	t_start = now_s();
	for (int i = 0; i < o.conns; i++) {
		cs[i].id = i;
		conn_open(&cs[i]);
	}
	for (;;) {
		int n = epoll_wait(epfd, evs, 256, 1000);
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		active = 0;
		for (int i = 0; i < o.conns; i++)
			if (cs[i].state != C_DONE)
				active++;
		if (active == 0)
			break;
		if (now_s() - t_start > o.duration + 30)
			die("requests still unanswered 30 s after the run should have ended");
	}
	t_end = now_s();
	qsort(lat_us, nlat, sizeof(*lat_us), cmp_u32);
	printf("mode=%s target=%s conns=%d requests=%lld errors=%lld reconnects=%lld secs=%.3f "
	       "rps=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
	       o.mode == M_REGISTER ? "register" : o.mode == M_READ ? "read" :
	       o.mode == M_SIGN ? "sign" : "setup",
	       o.target == T_WEFT ? "weft" : "etcd", o.conns, done, errors, reconnects,
	       t_end - t_start, (double)done / (t_end - t_start), pct(lat_us, nlat, 0.5),
	       pct(lat_us, nlat, 0.99), nlat ? lat_us[nlat - 1] / 1000.0 : 0.0);
	for (int i = 0; i < o.conns; i++) {
		conn_close(&cs[i]);
		free(cs[i].out);
		free(cs[i].in);
	}
	free(cs);
	free(lat_us);
}

/* ---- watch ---- */

/* One request on a fresh connection, answered whole; returns the status
 * and copies X-Consul-Index into *index when there is one. */
static int simple_request(const char *method, const char *path, const char *body,
			  uint64_t *index)
{
	struct conn c = { .fd = -1 };
	double deadline = now_s() + 20;
	int status = 0, rc = 0;
	const char *v;

	conn_open(&c);
	if (body && o.target == T_ETCD && strcmp(path, "/v3/kv/put") == 0) {
		etcd_put(&c, watch_key, body);
	} else {
		set_request(&c, method, path, body);
	}
	while (rc == 0 && now_s() < deadline) {
		struct epoll_event evs[256];
		int n = epoll_wait(epfd, evs, 256, 100), mine = 0;
		/* Watchers share the epoll set: answer them as they come, so that
		 * their times are not held back by this request. */
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &c)
				mine = 1;
			else
				on_event(evs[i].data.ptr, evs[i].events);
		}
		if (!mine)
			continue;
		if (c.state == C_CONNECTING) {
			c.state = C_SENDING;
			if (conn_send(&c) != 0)
				die("%s %s: cannot send", method, path);
			continue;
		}
		if (c.state == C_SENDING) {
			conn_send(&c);
			continue;
		}
		if (conn_read(&c) < 0)
			die("%s %s: connection closed", method, path);
		rc = resp_complete(&c, &status);
	}
	if (rc != 1)
		die("%s %s: no answer", method, path);
	if (index && (v = memmem_ci_header(c.in, c.inlen, "X-Consul-Index:")) != NULL)
		*index = strtoull(v, NULL, 10);
	if (status != 200)
		fprintf(stderr, "weft-load: %s %s: status %d: %.300s\n", method, path, status, c.in);
	conn_close(&c);
	free(c.out);
	free(c.in);
	return status;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void run_watch(void)
{
	struct conn *cs = calloc((size_t)o.watchers, sizeof(*cs));
	double *lat = xmalloc(sizeof(double) * (size_t)o.watchers), t_write, t_acked, settle;
	char path[600], key[300], kb[420], body[1000], js[1024];
	uint64_t index = 0;
	int opened = 0, early = 0, answered = 0, pending_max = 200;
	struct epoll_event evs[256];

	if (cs == NULL)
		die("out of memory");
	snprintf(key, sizeof(key), "/watch/%s", o.service);
	watch_key = key;
	if (o.target == T_WEFT) {
		snprintf(path, sizeof(path), "/v1/catalog/service/%s", o.service);
		if (simple_request("GET", path, NULL, &index) != 200)
			die("cannot read %s", path);
		snprintf(path, sizeof(path), "/v1/catalog/service/%s?index=%llu&wait=60s", o.service,
			 (unsigned long long)index);
	} else {
		b64(key, strlen(key), kb);
		snprintf(body, sizeof(body), "{\"create_request\":{\"key\":\"%s\"}}", kb);
	}
	/* Open the watchers, a few hundred connects at a time so that the
	 * listen backlog never overflows. */
	t_start = now_s();
	for (;;) {
		int connecting = 0, ready = 0;
		for (int i = 0; i < opened; i++) {
			if (cs[i].state == C_CONNECTING || cs[i].state == C_SENDING)
				connecting++;
			if (o.target == T_ETCD ? cs[i].created : cs[i].state == C_READING)
				ready++;
		}
		while (opened < o.watchers && connecting < pending_max) {
			struct conn *c = &cs[opened];
			c->id = opened++;
			conn_open(c);
			if (o.target == T_WEFT)
				set_request(c, "GET", path, NULL);
			else
				set_request(c, "POST", "/v3/watch", body);
			connecting++;
		}
		if (opened == o.watchers && ready == o.watchers)
			break;
		if (now_s() - t_start > 60)
			die("watch: only %d of %d watchers ready after 60 s", ready, o.watchers);
		int n = epoll_wait(epfd, evs, 256, 50);
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
	}
	/* The requests are sent (etcd: every stream is created); give weft the
	 * time to read them all and park them. */
	settle = 0.5 + o.watchers / 5000.0;
	for (double until = now_s() + settle; now_s() < until;) {
		int n = epoll_wait(epfd, evs, 256, 50);
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
	}
	for (int i = 0; i < o.watchers; i++)
		if (cs[i].state == C_DONE)
			early++;
	if (early)
		die("watch: %d watchers were answered before the write", early);
	done = 0;
	/* One write to the watched service. */
	/* A new instance, so that the write changes what the watchers see. */
	instance_json(js, sizeof(js), (long long)(now_s() * 1000) % 100000000, o.service);
	t_write = now_s();
	if (o.target == T_WEFT) {
		if (simple_request("PUT", "/v1/catalog/register", js, NULL) != 200)
			die("watch: the write failed");
	} else if (simple_request("POST", "/v3/kv/put", js, NULL) != 200) {
		die("watch: the write failed");
	}
	t_acked = now_s();
	while (done < o.watchers) {
		int n = epoll_wait(epfd, evs, 256, 1000);
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		if (now_s() - t_write > 30)
			break;
	}
	for (int i = 0; i < o.watchers; i++) {
		if (cs[i].state == C_DONE && cs[i].answered_at > 0)
			lat[answered++] = cs[i].answered_at - t_write;
		conn_close(&cs[i]);
		free(cs[i].out);
		free(cs[i].in);
	}
	qsort(lat, (size_t)answered, sizeof(*lat), cmp_double);
	printf("mode=watch target=%s watchers=%d answered=%d errors=%lld setup_secs=%.3f "
	       "write_ack_ms=%.3f p50_ms=%.3f p99_ms=%.3f all_ms=%.3f\n",
	       o.target == T_WEFT ? "weft" : "etcd", o.watchers, answered, errors,
	       t_write - t_start, (t_acked - t_write) * 1e3,
	       answered ? lat[answered / 2] * 1e3 : 0.0,
	       answered ? lat[(size_t)((answered - 1) * 0.99)] * 1e3 : 0.0,
	       answered ? lat[answered - 1] * 1e3 : 0.0);
	free(cs);
	free(lat);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: weft-load [-a 127.0.0.1:PORT] [-t weft|etcd] [-c CONNS] [-d SECS] [-n REQUESTS]\n"
		"                 [-w WATCHERS] [-s SERVICE] [-g TAG] [-p PATH] [-S] [-T TOKEN] [-f FILE]\n"
		"                 setup|register|read|watch|sign\n"
		"  -T  send TOKEN as X-Consul-Token\n"
		"  -f  sign: request bodies, one JSON per line\n"
		"  -p  read: GET PATH instead of the service (to measure the HTTP layer alone)\n"
		"  -S  etcd reads are serializable (local) instead of linearizable\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1:8500", *colon;
	const char *bodies = NULL;
	int opt;

	o.target = T_WEFT;
	o.conns = 64;
	o.duration = 5;
	o.watchers = 1000;
	o.service = NULL;
	o.tag = "b";
	while ((opt = getopt(argc, argv, "a:t:c:d:n:w:s:g:p:ST:f:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 't':
			if (strcmp(optarg, "weft") == 0)
				o.target = T_WEFT;
			else if (strcmp(optarg, "etcd") == 0)
				o.target = T_ETCD;
			else
				usage();
			break;
		case 'c': o.conns = atoi(optarg); break;
		case 'd': o.duration = atof(optarg); break;
		case 'n': o.max_requests = atoll(optarg); break;
		case 'w': o.watchers = atoi(optarg); break;
		case 's': o.service = optarg; break;
		case 'g': o.tag = optarg; break;
		case 'p': o.path = optarg; break;
		case 'S': o.serializable = 1; break;
		case 'T': o.token = optarg; break;
		case 'f': bodies = optarg; break;
		default: usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	if (strcmp(argv[optind], "setup") == 0) {
		o.mode = M_SETUP;
		o.conns = 1;
		o.max_requests = 10;
		o.duration = MAX_DURATION_S;
	} else if (strcmp(argv[optind], "register") == 0) {
		o.mode = M_REGISTER;
	} else if (strcmp(argv[optind], "read") == 0) {
		o.mode = M_READ;
	} else if (strcmp(argv[optind], "watch") == 0) {
		o.mode = M_WATCH;
	} else if (strcmp(argv[optind], "sign") == 0 && o.target == T_WEFT) {
		o.mode = M_SIGN;
		if (bodies == NULL)
			die("sign: -f FILE with the request bodies is required");
		load_bodies(bodies);
	} else {
		usage();
	}
	if (o.service == NULL)
		o.service = o.mode == M_REGISTER ? "reg" : o.mode == M_WATCH ? "watched" : "web";
	if (o.conns < 1 || o.conns > MAX_CONNS || o.watchers < 1 || o.watchers > MAX_CONNS)
		die("-c and -w: between 1 and %d", MAX_CONNS);
	if (o.duration <= 0 || o.duration > MAX_DURATION_S)
		die("-d: between 0 and %d seconds", MAX_DURATION_S);
	/* Loopback only: this is a benchmark, not a load test of other hosts. */
	colon = strrchr(addr, ':');
	if (colon == NULL || strncmp(addr, "127.0.0.1:", 10) != 0)
		die("-a: must be 127.0.0.1:PORT");
	o.addr.sin_family = AF_INET;
	o.addr.sin_port = htons((uint16_t)atoi(colon + 1));
	inet_pton(AF_INET, "127.0.0.1", &o.addr.sin_addr);
	raise_nofile();
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	if (o.mode == M_WATCH)
		run_watch();
	else
		run_requests();
	return 0;
}

/* propagation: config propagation latency of weft-server's proxy snapshots
 * (bench/README.md "Config propagation", issue 7).
 *
 * One process, one thread, non-blocking sockets on epoll:
 *   1. registers N connect-proxy instances (sidecars) for N/10 services
 *      "svc-K", each with one upstream (the next service), on N/50 nodes,
 *      64 registrations in flight;
 *   2. opens N watcher connections, each reads its proxy's snapshot, then
 *      holds a blocking query on it (?index=<its index>&wait=10m), and waits
 *      until the server counts N parked queries (weft_blocking_queries);
 *   3. for each write (a specific intention "bench-src -> svc-0", one
 *      "* -> *", then a new instance of svc-0's sidecar): reads the
 *      server's CPU time, makes the write, and
 *      measures for each watcher the time from sending the write to its
 *      whole new snapshot (which must carry the new intention; the write's
 *      own reply may come after the snapshots, as the same HTTP threads
 *      compute them: after_ack counts those answered after it); then the
 *      server's CPU time and RSS again, and how many snapshots and
 *      endpoint lists it built. The specific write must wake the 10
 *      proxies of svc-0 and no other (checked for 1 s after the last);
 *      "* -> *" must wake all N; the new instance the 10 proxies calling
 *      svc-0 (with it as an endpoint) and the 10 of svc-0 (whose
 *      registration's service moved). Woken watchers park again before
 *      the next write.
 * Prints one key=value line per phase. Loopback only; every wait bounded. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
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

#define MAX_WATCHERS 15000
#define SETUP_CONNS 64
#define OPEN_AT_ONCE 256
#define IN_MAX (8u << 20)
#define PROXIES_PER_SERVICE 10
#define PROXIES_PER_NODE 50

enum cstate { C_IDLE, C_CONNECTING, C_SENDING, C_READING, C_DONE };

struct conn {
	int fd;
	enum cstate state;
	char *out;
	size_t outlen, outoff;
	char *in;
	size_t inlen, incap;
	int status;
	uint64_t index;          /* X-Consul-Index of the last answer */
	const char *body;        /* into in, after the last answer's headers */
	double sent_at, answered_at;
};

static struct sockaddr_in addr;
static int epfd, n_proxies, server_pid;
static double wait_answers_s = 60;

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

	fprintf(stderr, "propagation: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* ---- connections ---- */

static void watch_events(struct conn *c, unsigned events, int op)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (epoll_ctl(epfd, op, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void conn_open(struct conn *c)
{
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s (raise ulimit -n)", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 && errno != EINPROGRESS)
		die("connect: %s", strerror(errno));
	c->state = C_CONNECTING;
	watch_events(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->state = C_IDLE;
}

static void conn_send(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);

		if (n < 0) {
			if (errno == EAGAIN)
				break;
			die("write: %s", strerror(errno));
		}
		c->outoff += (size_t)n;
	}
	if (c->outoff < c->outlen) {
		if (c->state != C_SENDING)
			watch_events(c, EPOLLOUT, EPOLL_CTL_MOD);
		c->state = C_SENDING;
	} else {
		if (c->state != C_READING)
			watch_events(c, EPOLLIN, EPOLL_CTL_MOD);
		c->state = C_READING;
	}
}

/* Queues one request; sent now if the connection is up. */
static void request(struct conn *c, const char *method, const char *path, const char *body)
{
	size_t blen = body ? strlen(body) : 0;
	int n;

	free(c->out);
	n = asprintf(&c->out, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n%s",
		     method, path, body ? "Content-Type: application/json\r\n" : "", blen,
		     body ? body : "");
	if (n < 0)
		die("out of memory");
	c->outlen = (size_t)n;
	c->outoff = 0;
	c->inlen = 0;
	c->body = NULL;
	c->answered_at = 0;
	c->sent_at = now_s();
	if (c->fd < 0) {
		conn_open(c);
		return;
	}
	c->state = C_SENDING;
	watch_events(c, EPOLLOUT, EPOLL_CTL_MOD);
	conn_send(c);
}

static const char *header(const char *h, size_t len, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i + nl < len; i++)
		if ((i == 0 || h[i - 1] == '\n') && strncasecmp(h + i, name, nl) == 0)
			return h + i + nl;
	return NULL;
}

/* 1 when c->in holds a whole answer (Content-Length bodies only: what
 * weft-server sends). */
static int answer_complete(struct conn *c)
{
	char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
	const char *v;
	size_t hlen;

	if (end == NULL)
		return 0;
	hlen = (size_t)(end - c->in) + 4;
	if (strncmp(c->in, "HTTP/1.", 7) != 0)
		die("not an HTTP answer: %.80s", c->in);
	v = header(c->in, hlen, "Content-Length:");
	if (v && c->inlen < hlen + strtoull(v, NULL, 10))
		return 0;
	c->status = atoi(c->in + 9);
	v = header(c->in, hlen, "X-Consul-Index:");
	if (v)
		c->index = strtoull(v, NULL, 10);
	c->body = c->in + hlen;
	return 1;
}

static void on_event(struct conn *c)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0)
			die("connect to 127.0.0.1:%d: %s", ntohs(addr.sin_port), strerror(err));
		c->state = C_SENDING;
		conn_send(c);
		return;
	}
	if (c->state == C_SENDING) {
		conn_send(c);
		return;
	}
	if (c->state != C_READING)
		return;
	for (;;) {
		ssize_t n;

		if (c->inlen + 65536 > c->incap) {
			size_t nc = c->incap ? c->incap * 2 : 131072;

			if (nc > IN_MAX)
				die("an answer larger than %u bytes", IN_MAX);
			if ((c->in = realloc(c->in, nc)) == NULL)
				die("out of memory");
			c->incap = nc;
		}
		n = read(c->fd, c->in + c->inlen, c->incap - c->inlen - 1);
		if (n > 0) {
			c->inlen += (size_t)n;
			c->in[c->inlen] = '\0';
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			break;
		die("the server closed a connection (%s)", n < 0 ? strerror(errno) : "EOF");
	}
	if (answer_complete(c)) {
		c->answered_at = now_s();
		c->state = C_DONE;
	}
}

static void poll_once(int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(epfd, evs, 512, timeout_ms);

	for (int i = 0; i < n; i++)
		on_event(evs[i].data.ptr);
}

/* One request on its own connection, run to its answer while the others
 * are served as their events come. */
static int control(const char *method, const char *path, const char *body, struct conn *c)
{
	double deadline = now_s() + 60;

	request(c, method, path, body);
	while (c->state != C_DONE) {
		if (now_s() > deadline)
			die("%s %s: no answer in 60 s", method, path);
		poll_once(50);
	}
	return c->status;
}

/* ---- the server's process ---- */

static double cpu_seconds(void)
{
	char path[64], buf[2048], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", server_pid);
	if ((f = fopen(path, "r")) == NULL || fgets(buf, sizeof(buf), f) == NULL)
		die("%s: cannot read it", path);
	fclose(f);
	/* after "(comm)": state is field 3; utime 14, stime 15 */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&ut, &st) != 2)
		die("%s: unexpected format", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long status_kb(const char *field)
{
	char path[64], line[256];
	size_t fl = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", server_pid);
	if ((f = fopen(path, "r")) == NULL)
		die("%s: cannot read it", path);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':')
			kb = atol(line + fl + 1);
	fclose(f);
	return kb;
}

/* ---- the mesh ---- */

static int service_of(int i)
{
	return i / PROXIES_PER_SERVICE;
}

static int n_services(void)
{
	return (n_proxies + PROXIES_PER_SERVICE - 1) / PROXIES_PER_SERVICE;
}

static void proxy_id(int i, char *out, size_t len)
{
	snprintf(out, len, "svc-%d-sidecar-%d", service_of(i), i % PROXIES_PER_SERVICE);
}

static char *register_body(int i)
{
	int node = i / PROXIES_PER_NODE, svc = service_of(i);
	char id[64], *b;

	proxy_id(i, id, sizeof(id));
	if (asprintf(&b, "{\"Node\":\"node-%d\",\"Address\":\"10.1.%d.%d\",\"Service\":{\"ID\":\"%s\","
		     "\"Service\":\"svc-%d-sidecar\",\"Kind\":\"connect-proxy\",\"Port\":%d,"
		     "\"Proxy\":{\"DestinationServiceName\":\"svc-%d\",\"LocalServicePort\":8080,"
		     "\"Upstreams\":[{\"DestinationName\":\"svc-%d\",\"LocalBindPort\":9191}]}}}",
		     node, node / 250, node % 250 + 1, id, svc, 20000 + i % PROXIES_PER_NODE, svc,
		     (svc + 1) % n_services()) < 0)
		die("out of memory");
	return b;
}

static void register_all(void)
{
	struct conn cs[SETUP_CONNS];
	int next = 0, done = 0;
	double t0 = now_s();

	memset(cs, 0, sizeof(cs));
	for (int i = 0; i < SETUP_CONNS; i++)
		cs[i].fd = -1;
	while (done < n_proxies) {
		for (int i = 0; i < SETUP_CONNS; i++) {
			struct conn *c = &cs[i];

			if (c->state == C_DONE) {
				if (c->status != 200)
					die("register: status %d: %.300s", c->status, c->body);
				done++;
				c->state = C_IDLE;   /* kept open for the next one */
			}
			if (c->state == C_IDLE && next < n_proxies) {
				char *b = register_body(next++);

				request(c, "PUT", "/v1/catalog/register", b);
				free(b);
			}
		}
		if (now_s() - t0 > 300)
			die("register: %d of %d after 300 s", done, n_proxies);
		poll_once(20);
	}
	for (int i = 0; i < SETUP_CONNS; i++) {
		conn_close(&cs[i]);
		free(cs[i].out);
		free(cs[i].in);
	}
	printf("phase=register proxies=%d services=%d nodes=%d secs=%.2f\n", n_proxies, n_services(),
	       (n_proxies + PROXIES_PER_NODE - 1) / PROXIES_PER_NODE, now_s() - t0);
	fflush(stdout);
}

/* A metric of the server's (a line "NAME VALUE"), -1 when absent. */
static double metric(struct conn *ctl, const char *name)
{
	char key[200];
	const char *v;

	if (control("GET", "/v1/agent/metrics?format=prometheus", NULL, ctl) != 200)
		die("metrics: status %d", ctl->status);
	snprintf(key, sizeof(key), "\n%s ", name);
	v = strstr(ctl->body, key);
	return v ? atof(v + strlen(key)) : -1;
}

/* The server's count of parked blocking queries. */
static long parked(struct conn *ctl)
{
	return (long)metric(ctl, "weft_blocking_queries");
}

static void park(struct conn *w, int i)
{
	char id[64], path[200];

	proxy_id(i, id, sizeof(id));
	snprintf(path, sizeof(path), "/v1/weft/proxy/%s/snapshot?index=%llu&wait=10m", id,
		 (unsigned long long)w->index);
	request(w, "GET", path, NULL);
}

static void wait_parked(struct conn *ctl, long want)
{
	double t0 = now_s();
	long n;

	while ((n = parked(ctl)) < want) {
		if (now_s() - t0 > 120)
			die("only %ld of %ld blocking queries parked after 120 s", n, want);
		for (double until = now_s() + 0.2; now_s() < until;)
			poll_once(20);
	}
}

/* Every watcher reads its snapshot, then parks on it. */
static void open_watchers(struct conn *ws, struct conn *ctl)
{
	int opened = 0, fetched = 0;
	double t0 = now_s(), cpu0 = cpu_seconds();
	char id[64], path[200];

	while (fetched < n_proxies) {
		int inflight = opened - fetched;

		while (opened < n_proxies && inflight < OPEN_AT_ONCE) {
			proxy_id(opened, id, sizeof(id));
			snprintf(path, sizeof(path), "/v1/weft/proxy/%s/snapshot", id);
			request(&ws[opened++], "GET", path, NULL);
			inflight++;
		}
		poll_once(20);
		for (int i = fetched; i < opened && ws[i].state == C_DONE; i++) {
			if (ws[i].status != 200)
				die("snapshot of proxy %d: status %d: %.300s", i, ws[i].status, ws[i].body);
			park(&ws[i], i);
			fetched++;
		}
		if (now_s() - t0 > 300)
			die("snapshots: %d of %d after 300 s", fetched, n_proxies);
	}
	printf("phase=first-snapshots proxies=%d secs=%.2f server_cpu_s=%.2f\n", n_proxies,
	       now_s() - t0, cpu_seconds() - cpu0);
	fflush(stdout);
	wait_parked(ctl, n_proxies);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One write; measures the watchers it must wake. expected(i): watcher i
 * must wake, and (when 2) its snapshot must hold marker. */
static void measure(struct conn *ws, struct conn *ctl, const char *label, const char *method,
		    const char *path, const char *body, int (*expected)(int i), const char *marker)
{
	double *lat = calloc((size_t)n_proxies, sizeof(double)), t_sent, t_reply, cpu0, cpu1;
	double builds0, scans0, builds1, scans1;
	int want = 0, got = 0, unexpected = 0, woken, after_reply = 0;

	if (lat == NULL)
		die("out of memory");
	for (int i = 0; i < n_proxies; i++) {
		if (ws[i].state == C_DONE)
			die("watcher %d was answered before the write", i);
		want += expected(i) != 0;
	}
	builds0 = metric(ctl, "weft_proxy_snapshot_builds_total");
	scans0 = metric(ctl, "weft_proxy_snapshot_endpoint_scans_total");
	cpu0 = cpu_seconds();
	t_sent = now_s();
	if (control(method, path, body, ctl) != 200)
		die("%s: the write failed: %d %.300s", label, ctl->status, ctl->body);
	t_reply = now_s();
	for (;;) {
		woken = 0;
		for (int i = 0; i < n_proxies; i++)
			woken += expected(i) != 0 && ws[i].state == C_DONE;
		if (woken == want)
			break;
		if (now_s() - t_reply > wait_answers_s)
			die("%s: %d of %d watchers answered after %.0f s", label, woken, want,
			    wait_answers_s);
		poll_once(50);
	}
	cpu1 = cpu_seconds();
	/* for 1 s more: nobody else may wake */
	for (double until = now_s() + 1; now_s() < until;)
		poll_once(50);
	for (int i = 0; i < n_proxies; i++) {
		struct conn *w = &ws[i];

		if (w->state != C_DONE)
			continue;
		if (!expected(i)) {
			unexpected++;
			continue;
		}
		if (w->status != 200 || (expected(i) == 2 && strstr(w->body, marker) == NULL))
			die("%s: watcher %d: status %d without %s: %.300s", label, i, w->status, marker,
			    w->body);
		lat[got++] = w->answered_at - t_sent;
		if (w->answered_at > t_reply)
			after_reply++;
	}
	builds1 = metric(ctl, "weft_proxy_snapshot_builds_total");
	scans1 = metric(ctl, "weft_proxy_snapshot_endpoint_scans_total");
	qsort(lat, (size_t)got, sizeof(*lat), cmp_double);
	printf("phase=%s proxies=%d expected=%d woken=%d unexpected=%d write_ack_ms=%.1f "
	       "after_ack=%d first_ms=%.1f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f server_cpu_s=%.2f "
	       "server_rss_mb=%.1f server_hwm_mb=%.1f builds=%.0f endpoint_scans=%.0f\n", label,
	       n_proxies, want, got, unexpected,
	       (t_reply - t_sent) * 1e3, after_reply, got ? lat[0] * 1e3 : 0,
	       got ? lat[got / 2] * 1e3 : 0,
	       got ? lat[(size_t)((got - 1) * 0.99)] * 1e3 : 0, got ? lat[got - 1] * 1e3 : 0,
	       cpu1 - cpu0, status_kb("VmRSS") / 1024.0, status_kb("VmHWM") / 1024.0,
	       builds1 - builds0, scans1 - scans0);
	fflush(stdout);
	if (unexpected)
		die("%s: %d watchers woke that the write does not concern", label, unexpected);
	/* the woken ones park again */
	for (int i = 0; i < n_proxies; i++)
		if (ws[i].state == C_DONE)
			park(&ws[i], i);
	wait_parked(ctl, n_proxies);
	free(lat);
}

static int of_svc0(int i)
{
	return service_of(i) == 0 ? 2 : 0;
}

static int all(int i)
{
	(void)i;
	return 2;
}

/* A new instance of svc-0's sidecar: the proxies calling svc-0 get it as
 * an endpoint; svc-0's own proxies wake too (their registration's service,
 * svc:svc-0-sidecar, moved) with nothing new in their snapshot. */
static int endpoint_of_svc0(int i)
{
	return service_of(i) == n_services() - 1 ? 2 : service_of(i) == 0 ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: propagation -a 127.0.0.1:PORT -p SERVER_PID -n PROXIES [-t SECS]\n"
			"  -t  how long to wait for the woken watchers (60 s)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *a = NULL;
	struct conn *ws, ctl = { .fd = -1 };
	struct rlimit rl;
	int opt;

	while ((opt = getopt(argc, argv, "a:p:n:t:")) != -1) {
		switch (opt) {
		case 'a': a = optarg; break;
		case 'p': server_pid = atoi(optarg); break;
		case 'n': n_proxies = atoi(optarg); break;
		case 't': wait_answers_s = atof(optarg); break;
		default: usage();
		}
	}
	if (a == NULL || strncmp(a, "127.0.0.1:", 10) != 0 || server_pid <= 0 ||
	    n_proxies < PROXIES_PER_SERVICE || n_proxies > MAX_WATCHERS || wait_answers_s <= 0 ||
	    wait_answers_s > 600)
		usage();
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(a + 10));
	inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n_proxies + 200)
		die("RLIMIT_NOFILE %llu is too low for %d watchers", (unsigned long long)rl.rlim_cur,
		    n_proxies);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	if ((ws = calloc((size_t)n_proxies, sizeof(*ws))) == NULL)
		die("out of memory");
	for (int i = 0; i < n_proxies; i++)
		ws[i].fd = -1;
	register_all();
	open_watchers(ws, &ctl);
	measure(ws, &ctl, "specific", "PUT", "/v1/connect/intentions/exact?source=bench-src"
		"&destination=svc-0", "{\"Action\":\"allow\"}", of_svc0,
		"\"SourceName\":\"bench-src\"");
	measure(ws, &ctl, "wildcard", "PUT", "/v1/connect/intentions/exact?source=*&destination=*",
		"{\"Action\":\"allow\"}", all, "\"DestinationName\":\"*\"");
	measure(ws, &ctl, "endpoint", "PUT", "/v1/catalog/register",
		"{\"Node\":\"node-new\",\"Address\":\"10.9.9.9\",\"Service\":{\"ID\":"
		"\"svc-0-sidecar-new\",\"Service\":\"svc-0-sidecar\",\"Kind\":\"connect-proxy\","
		"\"Port\":20000,\"Proxy\":{\"DestinationServiceName\":\"svc-0\","
		"\"LocalServicePort\":8080}}}", endpoint_of_svc0, "\"Address\":\"10.9.9.9\"");
	for (int i = 0; i < n_proxies; i++) {
		conn_close(&ws[i]);
		free(ws[i].out);
		free(ws[i].in);
	}
	conn_close(&ctl);
	free(ctl.out);
	free(ctl.in);
	free(ws);
	return 0;
}

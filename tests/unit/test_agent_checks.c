/* The health-check runner (agent/checks.c) against real things: HTTP and
 * HTTPS servers in a thread on 127.0.0.1 (one that never answers), TCP
 * ports open and closed, real child processes for scripts (exit codes,
 * output cap, a timeout that kills the process group), TTL expiry and
 * updates, set() keeping and replacing checks, deregister_after reaping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "checks.h"
#include "err.h"
#include "util.h"

/* ---- what the callbacks saw ---- */

#define MAX_EVENTS 1024

struct event_rec {
	int reap;
	char id[128];
	char svc[128];
	enum chk_status status;
	char *output;
	int64_t at_ms;
};

struct rec {
	pthread_mutex_t mu;
	struct event_rec ev[MAX_EVENTS];
	int n;
	/* reap: replace the set with these (as the agent removes the service) */
	struct chk_runner *runner;
	const char *reap_svc;
	const struct chk_def *after_reap;
	size_t n_after_reap;
	int set_rc;
};

static struct rec *rec_new(void)
{
	struct rec *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	pthread_mutex_init(&r->mu, NULL);
	r->set_rc = 1;
	return r;
}

static void rec_free(struct rec *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->ev[i].output);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static void on_report(void *arg, const char *id, enum chk_status s, const char *output)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	if (r->n < MAX_EVENTS) {
		struct event_rec *e = &r->ev[r->n++];

		snprintf(e->id, sizeof(e->id), "%s", id);
		e->status = s;
		e->output = strdup(output);
		e->at_ms = now_mono_ms();
	}
	pthread_mutex_unlock(&r->mu);
}

static void on_reap(void *arg, const char *svc, const char *id)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	if (r->n < MAX_EVENTS) {
		struct event_rec *e = &r->ev[r->n++];

		e->reap = 1;
		snprintf(e->id, sizeof(e->id), "%s", id);
		snprintf(e->svc, sizeof(e->svc), "%s", svc);
		e->at_ms = now_mono_ms();
	}
	pthread_mutex_unlock(&r->mu);
	/* From the callback, on the runner's thread, as the agent will. */
	if (r->runner != NULL && r->after_reap != NULL && strcmp(svc, r->reap_svc) == 0) {
		char *err = NULL;

		int rc = chk_runner_set(r->runner, r->after_reap, r->n_after_reap, &err);

		free(err);
		pthread_mutex_lock(&r->mu);
		r->set_rc = rc;
		pthread_mutex_unlock(&r->mu);
	}
}

static int rec_count(struct rec *r, const char *id, int reap)
{
	int n = 0;

	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->ev[i].id, id) == 0 && r->ev[i].reap == reap)
			n++;
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* Waits up to ms for a report on id with status st among the events from
 * index *from on; gives its output (a copy) and moves *from past it. */
static char *rec_wait(struct rec *r, const char *id, enum chk_status st, int *from, int ms)
{
	int64_t end = now_mono_ms() + ms;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		for (int i = *from; i < r->n; i++) {
			if (!r->ev[i].reap && strcmp(r->ev[i].id, id) == 0 && r->ev[i].status == st) {
				char *out = strdup(r->ev[i].output);

				*from = i + 1;
				pthread_mutex_unlock(&r->mu);
				return out;
			}
		}
		pthread_mutex_unlock(&r->mu);
		if (now_mono_ms() >= end)
			return NULL;
		usleep(5000);
	}
}

static int rec_n(struct rec *r)
{
	int n;

	pthread_mutex_lock(&r->mu);
	n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static struct chk_runner *runner(struct rec *rec, int scripts)
{
	struct chk_runner_opts o = {
		.report = on_report, .reap = on_reap, .arg = rec, .enable_scripts = scripts,
		.min_interval_ms = 1, .min_deregister_ms = 1,
	};
	struct chk_runner *r = NULL;
	char *err = NULL;

	assert_int_equal(chk_runner_new(&r, &o, &err), WEFT_OK);
	assert_null(err);
	rec->runner = r;
	return r;
}

static void set_ok(struct chk_runner *r, const struct chk_def *defs, size_t n)
{
	char *err = NULL;
	int rc = chk_runner_set(r, defs, n, &err);

	if (rc != WEFT_OK)
		fail_msg("chk_runner_set: %s", err ? err : "?");
}

/* ---- an HTTP(S) server in a thread ---- */

struct srv {
	int lfd;
	unsigned port;
	pthread_t thread;
	atomic_int stop;
	SSL_CTX *tls;
	pthread_mutex_t mu;
	int status;
	char reason[64];
	char body[8192];
	int hang;
	int requests;
	char last[8192];
	int hung[32];
	int nhung;
};

static int listen_backlog(unsigned *port, int backlog);

static int listen_any(unsigned *port)
{
	return listen_backlog(port, 64);
}

static int listen_backlog(unsigned *port, int backlog)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static ssize_t conn_read(int fd, SSL *ssl, char *b, size_t n)
{
	if (ssl != NULL) {
		int k = SSL_read(ssl, b, (int)n);

		return k > 0 ? k : -1;
	}
	return read(fd, b, n);
}

static void conn_write(int fd, SSL *ssl, const char *b, size_t n)
{
	if (ssl != NULL)
		SSL_write(ssl, b, (int)n);
	else if (write(fd, b, n) < 0)
		return;
}

static void serve_one(struct srv *s, int fd)
{
	char req[8192], head[512];
	size_t len = 0;
	SSL *ssl = NULL;
	struct timeval tv = {.tv_sec = 2};
	char *end = NULL;
	int keep = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (s->tls != NULL) {
		ssl = SSL_new(s->tls);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1)   /* a client that refused our certificate */
			goto out;
	}
	/* The head, then a body of Content-Length bytes. */
	while (len < sizeof(req) - 1) {
		ssize_t k = conn_read(fd, ssl, req + len, sizeof(req) - 1 - len);

		if (k <= 0)
			goto out;
		len += (size_t)k;
		req[len] = '\0';
		end = strstr(req, "\r\n\r\n");
		if (end != NULL) {
			const char *cl = strcasestr(req, "\r\nContent-Length:");
			size_t want = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;

			if (len >= (size_t)(end + 4 - req) + want)
				break;
		}
	}
	pthread_mutex_lock(&s->mu);
	s->requests++;
	snprintf(s->last, sizeof(s->last), "%s", req);
	if (s->hang && s->nhung < 32 && ssl == NULL) {
		s->hung[s->nhung++] = fd;
		keep = 1;
	} else {
		snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 s->status, s->reason, strlen(s->body));
		conn_write(fd, ssl, head, strlen(head));
		conn_write(fd, ssl, s->body, strlen(s->body));
	}
	pthread_mutex_unlock(&s->mu);
out:
	if (ssl != NULL) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	if (!keep)
		close(fd);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;

	while (!atomic_load(&s->stop)) {
		struct pollfd p = {.fd = s->lfd, .events = POLLIN};
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			serve_one(s, fd);
	}
	return NULL;
}

static SSL_CTX *self_signed_ctx(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *nm;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(k);
	assert_non_null(x);
	assert_non_null(ctx);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
				   -1, 0);
	X509_set_issuer_name(x, nm);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, k), 1);
	X509_free(x);
	EVP_PKEY_free(k);
	return ctx;
}

static struct srv *srv_start(int tls)
{
	struct srv *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	pthread_mutex_init(&s->mu, NULL);
	s->status = 200;
	snprintf(s->reason, sizeof(s->reason), "OK");
	snprintf(s->body, sizeof(s->body), "all good");
	s->lfd = listen_any(&s->port);
	if (tls)
		s->tls = self_signed_ctx();
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
	return s;
}

static void srv_reply(struct srv *s, int status, const char *reason, const char *body)
{
	pthread_mutex_lock(&s->mu);
	s->status = status;
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
	snprintf(s->body, sizeof(s->body), "%s", body);
	pthread_mutex_unlock(&s->mu);
}

static int srv_requests(struct srv *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->requests;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void srv_stop(struct srv *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	for (int i = 0; i < s->nhung; i++)
		close(s->hung[i]);
	close(s->lfd);
	if (s->tls != NULL)
		SSL_CTX_free(s->tls);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static int wait_requests(struct srv *s, int n, int ms)
{
	int64_t end = now_mono_ms() + ms;

	while (srv_requests(s) < n) {
		if (now_mono_ms() >= end)
			return 0;
		usleep(5000);
	}
	return 1;
}

/* ---- processes ---- */

/* 1 while pid runs (a zombie counts as gone). */
static int pid_alive(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	int alive = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL)
		alive = p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	fclose(f);
	return alive;
}

static int wait_dead(pid_t pid, int ms)
{
	int64_t end = now_mono_ms() + ms;

	while (pid_alive(pid)) {
		if (now_mono_ms() >= end)
			return 0;
		usleep(5000);
	}
	return 1;
}

/* Our children that exited and nobody waited for. */
static int zombie_children(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], buf[512], *p;
		FILE *f;
		char state;
		int ppid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 1, " %c %d", &state, &ppid) == 2 && ppid == (int)getpid() &&
		    state == 'Z')
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static pid_t read_pid(const char *path, int ms)
{
	int64_t end = now_mono_ms() + ms;

	for (;;) {
		FILE *f = fopen(path, "r");
		int pid = 0;

		if (f != NULL) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0)
			return (pid_t)pid;
		if (now_mono_ms() >= end)
			return 0;
		usleep(5000);
	}
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static char tmpdir[64];

static int setup_all(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/weft-checks-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int teardown_all(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_status_names(void **state)
{
	enum chk_status s = CHK_PASSING;

	assert_string_equal(chk_status_name(CHK_PASSING), "passing");
	assert_string_equal(chk_status_name(CHK_WARNING), "warning");
	assert_string_equal(chk_status_name(CHK_CRITICAL), "critical");
	assert_int_equal(chk_status_parse("warning", &s), WEFT_OK);
	assert_int_equal(s, CHK_WARNING);
	assert_int_equal(chk_status_parse("critical", &s), WEFT_OK);
	assert_int_equal(s, CHK_CRITICAL);
	assert_int_equal(chk_status_parse("Passing", &s), WEFT_EINVAL);
	assert_int_equal(chk_status_parse("", &s), WEFT_EINVAL);
	assert_int_equal(chk_status_parse(NULL, &s), WEFT_EINVAL);
}

static void test_http_status_classes(void **state)
{
	struct srv *s = srv_start(0);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	char url[128], want[256], *out;
	int from = 0;
	struct chk_def d = {.id = "web", .service_id = "web", .type = CHK_HTTP, .http = url,
			    .interval_ms = 40, .initial = CHK_CRITICAL};

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/health", s->port);
	set_ok(r, &d, 1);
	out = rec_wait(rec, "web", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "HTTP GET %s: 200 OK Output: all good", url);
	assert_string_equal(out, want);
	free(out);

	srv_reply(s, 429, "Too Many Requests", "slow down");
	out = rec_wait(rec, "web", CHK_WARNING, &from, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "HTTP GET %s: 429 Too Many Requests Output: slow down", url);
	assert_string_equal(out, want);
	free(out);

	srv_reply(s, 500, "Internal Server Error", "boom");
	out = rec_wait(rec, "web", CHK_CRITICAL, &from, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "HTTP GET %s: 500 Internal Server Error Output: boom", url);
	assert_string_equal(out, want);
	free(out);

	/* Any 2xx passes; the server's reason phrase is shown as sent. */
	srv_reply(s, 204, "Nothing Here", "");
	out = rec_wait(rec, "web", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "HTTP GET %s: 204 Nothing Here Output: ", url);
	assert_string_equal(out, want);
	free(out);

	/* A long body: its last 4 KiB are kept; bytes that are not UTF-8
	 * show as U+FFFD. */
	{
		char body[6001];

		memset(body, 'b', 6000);
		body[0] = '\xff';
		memcpy(body + 6000 - 8, "\xff TAIL!", 8);
		body[6000] = '\0';
		srv_reply(s, 503, "Service Unavailable", body);
	}
	out = rec_wait(rec, "web", CHK_CRITICAL, &from, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "HTTP GET %s: 503 Service Unavailable Output: ", url);
	assert_true(strncmp(out, want, strlen(want)) == 0);
	assert_int_equal(strlen(out), strlen(want) + 4096 - 1 + 3);   /* one byte is now 3 */
	assert_string_equal(out + strlen(out) - 9, "\xEF\xBF\xBD TAIL!");
	assert_int_equal(out[strlen(want)], 'b');
	free(out);

	chk_runner_free(r);
	srv_stop(s);
	rec_free(rec);
}

static void test_http_request(void **state)
{
	struct srv *s = srv_start(0);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	char url[128], *out, last[8192];
	int from = 0;
	json_t *hdr = json_pack("{s:[s,s], s:[s]}", "X-Test", "a", "b", "Host", "app.internal");
	struct chk_def d = {.id = "post", .type = CHK_HTTP, .http = url, .method = "POST",
			    .header = hdr, .body = "hello=1", .interval_ms = 300,
			    .initial = CHK_CRITICAL};

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/check?x=1", s->port);
	set_ok(r, &d, 1);
	out = rec_wait(rec, "post", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	assert_non_null(strstr(out, "HTTP POST http://"));
	free(out);
	pthread_mutex_lock(&s->mu);
	snprintf(last, sizeof(last), "%s", s->last);
	pthread_mutex_unlock(&s->mu);
	assert_true(strncmp(last, "POST /check?x=1 HTTP/1.1\r\n", 26) == 0);
	assert_non_null(strstr(last, "\r\nX-Test: a\r\n"));
	assert_non_null(strstr(last, "\r\nX-Test: b\r\n"));
	assert_non_null(strstr(last, "\r\nHost: app.internal\r\n"));
	assert_non_null(strstr(last, "\r\nUser-Agent: Weft Health Check\r\n"));
	assert_non_null(strstr(last, "\r\nAccept: text/plain, text/*, */*\r\n"));
	assert_null(strcasestr(last, "Content-Type:"));
	assert_non_null(strstr(last, "\r\n\r\nhello=1"));

	chk_runner_free(r);
	json_decref(hdr);
	srv_stop(s);
	rec_free(rec);
}

static void test_http_timeout(void **state)
{
	int fds = count_fds();
	struct srv *s = srv_start(0);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	char url[128], *out;
	int from = 0;
	int64_t t0;
	struct chk_def d = {.id = "hung", .type = CHK_HTTP, .http = url, .interval_ms = 400,
			    .timeout_ms = 300, .initial = CHK_PASSING};

	pthread_mutex_lock(&s->mu);
	s->hang = 1;
	pthread_mutex_unlock(&s->mu);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port);
	set_ok(r, &d, 1);
	assert_true(wait_requests(s, 1, 3000));
	t0 = now_mono_ms();
	out = rec_wait(rec, "hung", CHK_CRITICAL, &from, 3000);
	assert_non_null(out);
	/* Reported at the timeout, not when the server gives up. */
	assert_true(now_mono_ms() - t0 < 1000);
	assert_true(strncmp(out, "HTTP GET http://127.0.0.1:", 26) == 0);
	print_message("timeout output: %s\n", out);
	assert_non_null(strcasestr(out, "timed out"));
	free(out);
	chk_runner_free(r);
	srv_stop(s);
	rec_free(rec);
	assert_int_equal(count_fds(), fds);
}

static void test_https_self_signed(void **state)
{
	struct srv *s = srv_start(1);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	char url[128], *out;
	int from = 0, from2 = 0;
	struct chk_def d[2] = {
		{.id = "skip", .type = CHK_HTTP, .http = url, .tls_skip_verify = 1,
		 .interval_ms = 60, .initial = CHK_CRITICAL},
		{.id = "verify", .type = CHK_HTTP, .http = url, .interval_ms = 60,
		 .initial = CHK_PASSING},
	};

	snprintf(url, sizeof(url), "https://127.0.0.1:%u/ready", s->port);
	set_ok(r, d, 2);
	out = rec_wait(rec, "skip", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	assert_non_null(strstr(out, ": 200 OK Output: all good"));
	free(out);
	/* Without tls_skip_verify the self-signed certificate is refused. */
	out = rec_wait(rec, "verify", CHK_CRITICAL, &from2, 3000);
	assert_non_null(out);
	print_message("verify output: %s\n", out);
	assert_non_null(strcasestr(out, "certificate"));
	free(out);
	chk_runner_free(r);
	srv_stop(s);
	rec_free(rec);
}

static void test_tcp(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	unsigned open_port, closed_port;
	int lfd = listen_any(&open_port), cfd = listen_any(&closed_port);
	char open_addr[64], closed_addr[64], want[128], *out;
	int from = 0, from2 = 0;
	unsigned full_port;
	int ffd = listen_backlog(&full_port, 0), filler = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in fa = {.sin_family = AF_INET};
	char name_addr[64], full_addr[64];
	int from3 = 0, from4 = 0;
	int64_t t0;
	struct chk_def d[4] = {
		{.id = "open", .type = CHK_TCP, .tcp = open_addr, .interval_ms = 50,
		 .initial = CHK_CRITICAL},
		{.id = "closed", .type = CHK_TCP, .tcp = closed_addr, .interval_ms = 50,
		 .initial = CHK_PASSING},
		/* a name, resolved off the loop (/etc/hosts: 127.0.0.1) */
		{.id = "name", .type = CHK_TCP, .tcp = name_addr, .interval_ms = 50,
		 .initial = CHK_CRITICAL},
		/* a listener whose queue is full: the SYN goes unanswered */
		{.id = "full", .type = CHK_TCP, .tcp = full_addr, .interval_ms = 50,
		 .timeout_ms = 200, .initial = CHK_PASSING},
	};

	close(cfd);   /* nobody listens there any more */
	fa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fa.sin_port = htons((uint16_t)full_port);
	assert_int_equal(connect(filler, (struct sockaddr *)&fa, sizeof(fa)), 0);
	snprintf(open_addr, sizeof(open_addr), "127.0.0.1:%u", open_port);
	snprintf(closed_addr, sizeof(closed_addr), "127.0.0.1:%u", closed_port);
	snprintf(name_addr, sizeof(name_addr), "localhost:%u", open_port);
	snprintf(full_addr, sizeof(full_addr), "127.0.0.1:%u", full_port);
	t0 = now_mono_ms();
	set_ok(r, d, 4);
	out = rec_wait(rec, "open", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "TCP connect %s: Success", open_addr);
	assert_string_equal(out, want);
	free(out);
	out = rec_wait(rec, "closed", CHK_CRITICAL, &from2, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "dial tcp %s: connect: Connection refused", closed_addr);
	assert_string_equal(out, want);
	free(out);
	out = rec_wait(rec, "name", CHK_PASSING, &from3, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "TCP connect %s: Success", name_addr);
	assert_string_equal(out, want);
	free(out);
	out = rec_wait(rec, "full", CHK_CRITICAL, &from4, 3000);
	assert_non_null(out);
	assert_true(now_mono_ms() - t0 >= 200);
	snprintf(want, sizeof(want), "dial tcp %s: i/o timeout", full_addr);
	assert_string_equal(out, want);
	free(out);
	chk_runner_free(r);
	close(filler);
	close(ffd);
	close(lfd);
	rec_free(rec);
}

/* A UDP socket on 127.0.0.1; answering: a thread sends back each datagram
 * (and keeps the last one) until stopped. */
struct udp_srv {
	int fd;
	unsigned port;
	pthread_t thread;
	atomic_int stop, got;
	char last[128];
};

static void *udp_echo(void *arg)
{
	struct udp_srv *u = arg;

	while (!atomic_load(&u->stop)) {
		struct pollfd p = {.fd = u->fd, .events = POLLIN};
		struct sockaddr_storage from;
		socklen_t len = sizeof(from);
		char b[128];
		ssize_t n;

		if (poll(&p, 1, 20) <= 0)
			continue;
		n = recvfrom(u->fd, b, sizeof(b) - 1, 0, (struct sockaddr *)&from, &len);
		if (n < 0)
			continue;
		b[n] = '\0';
		memcpy(u->last, b, (size_t)n + 1);
		atomic_fetch_add(&u->got, 1);
		sendto(u->fd, b, (size_t)n, 0, (struct sockaddr *)&from, len);
	}
	return NULL;
}

/* A UDP socket on the loopback address of family (127.0.0.1 or ::1). */
static struct udp_srv *udp_open_at(int family, int answer)
{
	struct udp_srv *u = calloc(1, sizeof(*u));
	struct sockaddr_storage a;
	socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	assert_non_null(u);
	memset(&a, 0, sizeof(a));
	a.ss_family = (sa_family_t)family;
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&a)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u->fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(u->fd >= 0);
	assert_int_equal(bind(u->fd, (struct sockaddr *)&a, len), 0);
	assert_int_equal(getsockname(u->fd, (struct sockaddr *)&a, &len), 0);
	u->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
					   : ((struct sockaddr_in *)&a)->sin_port);
	if (answer)
		assert_int_equal(pthread_create(&u->thread, NULL, udp_echo, u), 0);
	else
		u->thread = 0;
	return u;
}

static struct udp_srv *udp_open(int answer)
{
	return udp_open_at(AF_INET, answer);
}

static void first_family(int rc, struct evutil_addrinfo *ai, void *arg)
{
	*(int *)arg = rc == 0 && ai != NULL ? ai->ai_family : AF_INET;
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
}

/* The family of the first address the runner's resolver (evdns: the hosts
 * file, in its order) gives for localhost: where the "name" case listens,
 * whatever order this machine's /etc/hosts has. */
static int localhost_family(void)
{
	struct event_base *b = event_base_new();
	struct evdns_base *d = evdns_base_new(b, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	struct evutil_addrinfo h;
	int fam = 0;

	assert_non_null(d);
	memset(&h, 0, sizeof(h));
	h.ai_family = AF_UNSPEC;
	h.ai_socktype = SOCK_DGRAM;
	h.ai_protocol = IPPROTO_UDP;
	evdns_getaddrinfo(d, "localhost", "9", &h, first_family, &fam);
	while (fam == 0 && event_base_loop(b, EVLOOP_ONCE) == 0)
		;
	evdns_base_free(d, 0);
	event_base_free(b);
	return fam ? fam : AF_INET;
}

static void udp_close(struct udp_srv *u)
{
	atomic_store(&u->stop, 1);
	if (u->thread)
		pthread_join(u->thread, NULL);
	close(u->fd);
	free(u);
}

/* Consul's UDP check: an answer or silence until the timeout passes, an
 * ICMP port unreachable (ECONNREFUSED) is critical; names are resolved off
 * the loop. */
static void test_udp(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	struct udp_srv *echo = udp_open(1), *silent = udp_open(0), *gone = udp_open(0);
	struct udp_srv *named = udp_open_at(localhost_family(), 1);
	char echo_addr[64], silent_addr[64], closed_addr[64], name_addr[64], want[128], *out;
	int f1 = 0, f2 = 0, f3 = 0, f4 = 0;
	int64_t t0;
	struct chk_def d[4] = {
		{.id = "echo", .type = CHK_UDP, .udp = echo_addr, .interval_ms = 50,
		 .timeout_ms = 5000, .initial = CHK_CRITICAL},
		{.id = "silent", .type = CHK_UDP, .udp = silent_addr, .interval_ms = 50,
		 .timeout_ms = 300, .initial = CHK_CRITICAL},
		{.id = "closed", .type = CHK_UDP, .udp = closed_addr, .interval_ms = 50,
		 .timeout_ms = 5000, .initial = CHK_PASSING},
		/* a name (/etc/hosts), through the resolver */
		{.id = "name", .type = CHK_UDP, .udp = name_addr, .interval_ms = 50,
		 .timeout_ms = 5000, .initial = CHK_CRITICAL},
	};

	snprintf(echo_addr, sizeof(echo_addr), "127.0.0.1:%u", echo->port);
	snprintf(silent_addr, sizeof(silent_addr), "127.0.0.1:%u", silent->port);
	snprintf(closed_addr, sizeof(closed_addr), "127.0.0.1:%u", gone->port);
	snprintf(name_addr, sizeof(name_addr), "localhost:%u", named->port);
	udp_close(gone);   /* nothing listens there any more */
	t0 = now_mono_ms();
	set_ok(r, d, 4);
	out = rec_wait(rec, "echo", CHK_PASSING, &f1, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "UDP connect %s: Success", echo_addr);
	assert_string_equal(out, want);
	free(out);
	/* the answer ended the run, not the 5 s timeout */
	assert_true(now_mono_ms() - t0 < 3000);
	assert_true(atomic_load(&echo->got) >= 1);
	assert_string_equal(echo->last, "weft-agent health check");
	out = rec_wait(rec, "silent", CHK_PASSING, &f2, 3000);
	assert_non_null(out);
	assert_true(now_mono_ms() - t0 >= 300);
	free(out);
	out = rec_wait(rec, "closed", CHK_CRITICAL, &f3, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "read udp %s: Connection refused", closed_addr);
	assert_string_equal(out, want);
	free(out);
	out = rec_wait(rec, "name", CHK_PASSING, &f4, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "UDP connect %s: Success", name_addr);
	assert_string_equal(out, want);
	free(out);
	/* an unknown name is critical, saying so */
	{
		struct chk_def bad = {.id = "nxname", .type = CHK_UDP, .udp = "no-such-host.invalid:53",
				      .interval_ms = 50, .timeout_ms = 3000, .initial = CHK_PASSING};
		int f5 = 0;

		set_ok(r, &bad, 1);
		out = rec_wait(rec, "nxname", CHK_CRITICAL, &f5, 8000);
		assert_non_null(out);
		if (strncmp(out, "dial udp no-such-host.invalid:53: lookup no-such-host.invalid: ", 63) != 0)
			fail_msg("output: %s", out);
		free(out);
	}
	/* freed with runs in flight: nothing leaks (ASan) */
	set_ok(r, d, 4);
	usleep(20000);
	chk_runner_free(r);
	udp_close(echo);
	udp_close(silent);
	udp_close(named);
	rec_free(rec);
}

/* H2PING's failures (its success is in test_agent_check_kinds.py, against
 * grpcio's HTTP/2 server): a refused connection, a TLS server that does not
 * offer h2, one whose certificate does not verify. */
static void test_h2ping_failures(void **state)
{
	struct srv *tls = srv_start(1);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	unsigned closed_port;
	int cfd = listen_any(&closed_port), f1 = 0, f2 = 0, f3 = 0;
	char closed_addr[64], tls_addr[64], want[200], *out;
	struct chk_def d[3] = {
		{.id = "refused", .type = CHK_H2PING, .h2ping = closed_addr, .interval_ms = 50,
		 .timeout_ms = 3000, .initial = CHK_PASSING},
		{.id = "no-h2", .type = CHK_H2PING, .h2ping = tls_addr, .h2ping_use_tls = 1,
		 .tls_skip_verify = 1, .interval_ms = 50, .timeout_ms = 3000, .initial = CHK_PASSING},
		{.id = "verify", .type = CHK_H2PING, .h2ping = tls_addr, .h2ping_use_tls = 1,
		 .interval_ms = 50, .timeout_ms = 3000, .initial = CHK_PASSING},
	};

	close(cfd);
	snprintf(closed_addr, sizeof(closed_addr), "127.0.0.1:%u", closed_port);
	snprintf(tls_addr, sizeof(tls_addr), "127.0.0.1:%u", tls->port);
	set_ok(r, d, 3);
	out = rec_wait(rec, "refused", CHK_CRITICAL, &f1, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "Failed to dial to %s: Connection refused", closed_addr);
	assert_string_equal(out, want);
	free(out);
	out = rec_wait(rec, "no-h2", CHK_CRITICAL, &f2, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "Failed to dial to %s: the server did not agree to HTTP/2 (ALPN h2)",
		 tls_addr);
	assert_string_equal(out, want);
	free(out);
	out = rec_wait(rec, "verify", CHK_CRITICAL, &f3, 3000);
	assert_non_null(out);
	snprintf(want, sizeof(want), "Failed to dial to %s: tls: ", tls_addr);
	if (strncmp(out, want, strlen(want)) != 0)
		fail_msg("output: %s", out);
	free(out);
	/* freed with runs in flight: nothing leaks (ASan) */
	set_ok(r, d, 3);
	usleep(20000);
	chk_runner_free(r);
	srv_stop(tls);
	rec_free(rec);
}

/* The statuses reported for id, in order. */
static int rec_statuses(struct rec *r, const char *id, enum chk_status *out, int max)
{
	int n = 0;

	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->n && n < max; i++)
		if (!r->ev[i].reap && strcmp(r->ev[i].id, id) == 0)
			out[n++] = r->ev[i].status;
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* SuccessBeforePassing, FailuresBeforeWarning, FailuresBeforeCritical as
 * Consul's StatusHandler: the first result counts at once, then a status
 * changes only after that many results in a row. */
static void test_thresholds(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	unsigned port;
	int lfd = listen_any(&port), from = 0, n;
	char addr[64], *out;
	enum chk_status seen[16];
	struct chk_def d = {.id = "th", .type = CHK_TCP, .tcp = addr, .interval_ms = 40,
			    .initial = CHK_CRITICAL, .success_before_passing = 3,
			    .failures_before_warning = 2, .failures_before_critical = 4};
	struct sockaddr_in a = {.sin_family = AF_INET};
	int one = 1;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	set_ok(r, &d, 1);
	out = rec_wait(rec, "th", CHK_PASSING, &from, 3000);   /* the first counts */
	assert_non_null(out);
	free(out);
	close(lfd);
	out = rec_wait(rec, "th", CHK_WARNING, &from, 3000);
	assert_non_null(out);
	free(out);
	out = rec_wait(rec, "th", CHK_CRITICAL, &from, 3000);
	assert_non_null(out);
	free(out);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 64), 0);
	out = rec_wait(rec, "th", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	free(out);
	/* nothing in between: no warning before the second failure, no
	 * passing before the third success */
	n = rec_statuses(rec, "th", seen, 16);
	assert_int_equal(n, 4);
	assert_int_equal(seen[0], CHK_PASSING);
	assert_int_equal(seen[1], CHK_WARNING);
	assert_int_equal(seen[2], CHK_CRITICAL);
	assert_int_equal(seen[3], CHK_PASSING);
	chk_runner_free(r);
	close(lfd);
	rec_free(rec);
}

static void test_script_exit_codes(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 1);
	const char *a0[] = {"sh", "-c", "echo fine"};
	const char *a1[] = {"sh", "-c", "echo meh >&2; exit 1"};
	const char *a2[] = {"/bin/sh", "-c", "echo bad; exit 2"};
	const char *a3[] = {"/nonexistent/probe"};
	/* What the program inherits (seen by itself, not through a shell that
	 * blocks signals around its forks): no blocked signal, SIGPIPE not
	 * ignored (this test ignores it); stdio only (3 is the directory ls
	 * reads); stdin empty. */
	const char *a4[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"};
	const char *a5[] = {"ls", "/proc/self/fd"};
	const char *a6[] = {"wc", "-c"};
	struct chk_def d[7] = {
		{.id = "s0", .type = CHK_SCRIPT, .args = a0, .nargs = 3, .interval_ms = 200,
		 .initial = CHK_CRITICAL},
		{.id = "s1", .type = CHK_SCRIPT, .args = a1, .nargs = 3, .interval_ms = 200,
		 .initial = CHK_CRITICAL},
		{.id = "s2", .type = CHK_SCRIPT, .args = a2, .nargs = 3, .interval_ms = 200,
		 .initial = CHK_PASSING},
		{.id = "s3", .type = CHK_SCRIPT, .args = a3, .nargs = 1, .interval_ms = 200,
		 .initial = CHK_PASSING},
		{.id = "s4", .type = CHK_SCRIPT, .args = a4, .nargs = 4, .interval_ms = 200,
		 .initial = CHK_CRITICAL},
		{.id = "s5", .type = CHK_SCRIPT, .args = a5, .nargs = 2, .interval_ms = 200,
		 .initial = CHK_CRITICAL},
		{.id = "s6", .type = CHK_SCRIPT, .args = a6, .nargs = 2, .interval_ms = 200,
		 .initial = CHK_CRITICAL},
	};
	int f0 = 0, f1 = 0, f2 = 0, f3 = 0, f4 = 0, f5 = 0, f6 = 0;
	unsigned long long ign = 0;
	char *p;
	char *out;

	set_ok(r, d, 7);
	out = rec_wait(rec, "s0", CHK_PASSING, &f0, 3000);
	assert_non_null(out);
	assert_string_equal(out, "fine\n");
	free(out);
	out = rec_wait(rec, "s1", CHK_WARNING, &f1, 3000);
	assert_non_null(out);
	assert_string_equal(out, "meh\n");   /* stderr is captured too */
	free(out);
	out = rec_wait(rec, "s2", CHK_CRITICAL, &f2, 3000);
	assert_non_null(out);
	assert_string_equal(out, "bad\n");
	free(out);
	out = rec_wait(rec, "s3", CHK_CRITICAL, &f3, 3000);
	assert_non_null(out);
	assert_string_equal(out, "fork/exec /nonexistent/probe: No such file or directory");
	free(out);
	out = rec_wait(rec, "s4", CHK_PASSING, &f4, 3000);
	assert_non_null(out);
	assert_true(strncmp(out, "SigBlk:\t0000000000000000\nSigIgn:\t", 33) == 0);
	ign = strtoull(out + 33, &p, 16);
	assert_int_equal(*p, '\n');
	assert_int_equal(ign & (1ULL << (SIGPIPE - 1)), 0);
	free(out);
	out = rec_wait(rec, "s5", CHK_PASSING, &f5, 3000);
	assert_non_null(out);
	assert_string_equal(out, "0\n1\n2\n3\n");
	free(out);
	out = rec_wait(rec, "s6", CHK_PASSING, &f6, 3000);
	assert_non_null(out);
	assert_string_equal(out, "0\n");
	free(out);
	chk_runner_free(r);
	assert_int_equal(zombie_children(), 0);
	rec_free(rec);
}

static void test_script_output_cap(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 1);
	/* 9996 'a' then "END\n": 10000 bytes. */
	const char *a[] = {"sh", "-c", "head -c 9996 /dev/zero | tr '\\0' a; echo END"};
	struct chk_def d = {.id = "big", .type = CHK_SCRIPT, .args = a, .nargs = 3,
			    .interval_ms = 200, .initial = CHK_CRITICAL};
	const char *prefix = "Captured 4096 of 10000 bytes\n...\n";
	int from = 0;
	char *out;

	set_ok(r, &d, 1);
	out = rec_wait(rec, "big", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	assert_int_equal(strlen(out), strlen(prefix) + CHK_OUTPUT_MAX);
	assert_true(strncmp(out, prefix, strlen(prefix)) == 0);
	/* The tail is kept, as Consul's circular buffer keeps it. */
	assert_string_equal(out + strlen(out) - 5, "aEND\n");
	free(out);
	chk_runner_free(r);
	rec_free(rec);
}

static void test_script_timeout_kills_group(void **state)
{
	int fds = count_fds();
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 1);
	char pidfile[128], script[256];
	const char *a[] = {"sh", "-c", script};
	struct chk_def d = {.id = "slow", .type = CHK_SCRIPT, .args = a, .nargs = 3,
			    .interval_ms = 100, .timeout_ms = 300, .initial = CHK_PASSING};
	int from = 0;
	pid_t bg;
	int64_t t0;
	char *out;

	snprintf(pidfile, sizeof(pidfile), "%s/bg.pid", tmpdir);
	/* A child in the background (same process group) and a foreground wait. */
	snprintf(script, sizeof(script), "echo started; sleep 30 & echo $! > %s; sleep 30", pidfile);
	set_ok(r, &d, 1);
	bg = read_pid(pidfile, 3000);
	assert_true(bg > 0);
	t0 = now_mono_ms();
	out = rec_wait(rec, "slow", CHK_CRITICAL, &from, 3000);
	assert_non_null(out);
	assert_true(now_mono_ms() - t0 < 1500);
	assert_string_equal(out, "Timed out (300ms) running check\n\nstarted\n");
	free(out);
	/* The whole group is gone, not only the shell. */
	assert_true(wait_dead(bg, 2000));
	assert_int_equal(zombie_children(), 0);
	/* Freed with a run under way: killed, reaped, nothing left open. */
	usleep(150 * 1000);
	chk_runner_free(r);
	assert_int_equal(zombie_children(), 0);
	assert_int_equal(count_fds(), fds);
	rec_free(rec);
}

static void test_scripts_disabled(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	const char *a[] = {"true"};
	struct chk_def d = {.id = "probe", .type = CHK_SCRIPT, .args = a, .nargs = 1,
			    .interval_ms = 1000};
	char *err = NULL;

	assert_int_equal(chk_runner_set(r, &d, 1, &err), WEFT_EINVAL);
	assert_non_null(err);
	assert_non_null(strstr(err, "check \"probe\": Args:"));
	assert_non_null(strstr(err, "disabled"));
	free(err);
	chk_runner_free(r);
	rec_free(rec);
}

static void test_ttl(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	unsigned port;
	int lfd = listen_any(&port);
	char addr[64], big[5001], *err = NULL, *out;
	struct chk_def d[2] = {
		/* updates come every 100 ms below: 600 ms leaves room for a loaded machine */
		{.id = "beat", .service_id = "job", .type = CHK_TTL, .ttl_ms = 600,
		 .initial = CHK_CRITICAL},
		{.id = "port", .type = CHK_TCP, .tcp = addr, .interval_ms = 1000},
	};
	int from = 0;
	int64_t t0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	set_ok(r, d, 2);
	/* The update's report is delivered before chk_runner_ttl returns. */
	assert_int_equal(chk_runner_ttl(r, "beat", CHK_PASSING, "alive", &err), WEFT_OK);
	t0 = now_mono_ms();
	assert_int_equal(rec_count(rec, "beat", 0), 1);
	out = rec_wait(rec, "beat", CHK_PASSING, &from, 0);
	assert_non_null(out);
	assert_string_equal(out, "alive");
	free(out);
	/* Missed: critical after the TTL, keeping the last output. */
	out = rec_wait(rec, "beat", CHK_CRITICAL, &from, 5000);
	assert_non_null(out);
	assert_true(now_mono_ms() - t0 >= 550);
	assert_string_equal(out, "TTL expired (last output before timeout follows): alive");
	free(out);
	/* Each update pushes the deadline back. */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(chk_runner_ttl(r, "beat", CHK_WARNING, "busy", &err), WEFT_OK);
		usleep(100 * 1000);
	}
	assert_int_equal(rec_count(rec, "beat", 0), 3);   /* passing, critical, warning */
	/* Output is cut at 4 KiB, with Consul's note. */
	memset(big, 'x', 5000);
	big[5000] = '\0';
	assert_int_equal(chk_runner_ttl(r, "beat", CHK_PASSING, big, &err), WEFT_OK);
	out = rec_wait(rec, "beat", CHK_PASSING, &from, 0);
	assert_non_null(out);
	assert_int_equal(strlen(out), 4096 + strlen(" ... (captured 4096 of 5000 bytes)"));
	assert_string_equal(out + 4096, " ... (captured 4096 of 5000 bytes)");
	free(out);

	assert_int_equal(chk_runner_ttl(r, "nope", CHK_PASSING, "", &err), WEFT_ENOENT);
	assert_non_null(strstr(err, "nope"));
	free(err);
	err = NULL;
	assert_int_equal(chk_runner_ttl(r, "port", CHK_PASSING, "", &err), WEFT_ENOENT);
	assert_non_null(strstr(err, "not a TTL check"));
	free(err);
	chk_runner_free(r);
	close(lfd);
	rec_free(rec);
}

static void test_set_keeps_unchanged(void **state)
{
	struct srv *s = srv_start(0);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	char url[128], *out, *err = NULL;
	json_t *hdr = json_pack("{s:[s]}", "X-Probe", "1");
	unsigned port;
	int lfd = listen_any(&port);
	char addr[64];
	struct chk_def d[3] = {
		{.id = "web", .type = CHK_HTTP, .http = url, .interval_ms = 30,
		 .initial = CHK_CRITICAL},
		{.id = "beat", .type = CHK_TTL, .ttl_ms = 5000, .initial = CHK_CRITICAL},
		{.id = "port", .type = CHK_TCP, .tcp = addr, .interval_ms = 30,
		 .initial = CHK_CRITICAL},
	};
	int from = 0, n;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	set_ok(r, d, 2);
	out = rec_wait(rec, "web", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	free(out);
	assert_int_equal(chk_runner_ttl(r, "beat", CHK_PASSING, "ok", &err), WEFT_OK);
	n = rec_n(rec);

	/* Same two, one more: the two keep their state, no new report. */
	set_ok(r, d, 3);
	out = rec_wait(rec, "port", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	free(out);
	assert_true(wait_requests(s, srv_requests(s) + 5, 3000));
	assert_int_equal(rec_count(rec, "web", 0), 1);
	assert_int_equal(rec_count(rec, "beat", 0), 1);
	/* The TTL check is still passing "ok": the same update reports nothing. */
	assert_int_equal(chk_runner_ttl(r, "beat", CHK_PASSING, "ok", &err), WEFT_OK);
	assert_int_equal(rec_count(rec, "beat", 0), 1);
	assert_int_equal(rec_n(rec), n + 1);   /* only "port" */

	/* A changed definition starts again from its initial status. */
	d[0].header = hdr;
	set_ok(r, d, 3);
	out = rec_wait(rec, "web", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	free(out);
	assert_int_equal(rec_count(rec, "web", 0), 2);
	pthread_mutex_lock(&s->mu);
	assert_non_null(strstr(s->last, "X-Probe: 1"));
	pthread_mutex_unlock(&s->mu);

	chk_runner_free(r);
	json_decref(hdr);
	close(lfd);
	srv_stop(s);
	rec_free(rec);
}

static void test_no_report_when_unchanged(void **state)
{
	struct srv *s = srv_start(0);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 1);
	char url[128];
	const char *a[] = {"echo", "same"};
	struct chk_def d[2] = {
		{.id = "web", .type = CHK_HTTP, .http = url, .interval_ms = 20,
		 .initial = CHK_CRITICAL},
		{.id = "echo", .type = CHK_SCRIPT, .args = a, .nargs = 2, .interval_ms = 20,
		 .initial = CHK_CRITICAL},
	};
	int from = 0;
	char *out;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port);
	set_ok(r, d, 2);
	assert_true(wait_requests(s, 10, 3000));
	out = rec_wait(rec, "echo", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	free(out);
	usleep(150 * 1000);   /* several more runs of each */
	assert_int_equal(rec_count(rec, "web", 0), 1);
	assert_int_equal(rec_count(rec, "echo", 0), 1);
	/* The output alone changing is reported (the agent decides what to sync). */
	srv_reply(s, 200, "OK", "other body");
	from = 0;
	out = rec_wait(rec, "web", CHK_PASSING, &from, 3000);
	free(out);
	out = rec_wait(rec, "web", CHK_PASSING, &from, 3000);
	assert_non_null(out);
	assert_non_null(strstr(out, "Output: other body"));
	free(out);
	chk_runner_free(r);
	srv_stop(s);
	rec_free(rec);
}

static void test_remove_stops(void **state)
{
	int fds = count_fds();
	struct srv *s = srv_start(0);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 1);
	char url[128], pidfile[128], script[256];
	const char *a[] = {"sh", "-c", script};
	struct chk_def d[2] = {
		{.id = "web", .type = CHK_HTTP, .http = url, .interval_ms = 20},
		{.id = "long", .type = CHK_SCRIPT, .args = a, .nargs = 3, .interval_ms = 20,
		 .timeout_ms = 20000},
	};
	pid_t pid;
	int n;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port);
	snprintf(pidfile, sizeof(pidfile), "%s/long.pid", tmpdir);
	snprintf(script, sizeof(script), "echo $$ > %s; exec sleep 30", pidfile);
	set_ok(r, d, 2);
	assert_true(wait_requests(s, 3, 3000));
	pid = read_pid(pidfile, 3000);
	assert_true(pid > 0);
	assert_true(pid_alive(pid));

	set_ok(r, NULL, 0);
	n = srv_requests(s);
	/* The running script is killed at once, and reaped. */
	assert_true(wait_dead(pid, 2000));
	usleep(200 * 1000);
	assert_true(srv_requests(s) <= n + 1);   /* one may have been on the wire */
	assert_int_equal(zombie_children(), 0);
	chk_runner_free(r);
	srv_stop(s);
	rec_free(rec);
	assert_int_equal(count_fds(), fds);   /* no socket, pipe or pidfd left */
}

static void test_reap(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	char *err = NULL;
	struct chk_def d[4] = {
		/* stops being updated: critical at 100 ms, reaped 150 ms later */
		{.id = "svc-ttl", .service_id = "svc", .type = CHK_TTL, .ttl_ms = 100,
		 .deregister_after_ms = 150, .initial = CHK_PASSING},
		/* a node-level check is never reaped */
		{.id = "node-ttl", .type = CHK_TTL, .ttl_ms = 100, .deregister_after_ms = 150,
		 .initial = CHK_PASSING},
		/* critical from the start, but recovers in time */
		{.id = "back", .service_id = "other", .type = CHK_TTL, .ttl_ms = 5000,
		 .deregister_after_ms = 300, .initial = CHK_CRITICAL},
		/* critical from the start and stays so */
		{.id = "dead", .service_id = "gone", .type = CHK_TTL, .ttl_ms = 5000,
		 .deregister_after_ms = 200, .initial = CHK_CRITICAL},
	};
	int64_t t0 = now_mono_ms();

	/* When "svc" is reaped the agent drops its check (from the callback). */
	rec->reap_svc = "svc";
	rec->after_reap = d + 1;
	rec->n_after_reap = 3;
	set_ok(r, d, 4);
	usleep(100 * 1000);
	assert_int_equal(chk_runner_ttl(r, "back", CHK_PASSING, "", &err), WEFT_OK);
	for (int i = 0; i < 200 && (rec_count(rec, "svc-ttl", 1) == 0 ||
				    rec_count(rec, "dead", 1) == 0); i++)
		usleep(5000);
	assert_int_equal(rec_count(rec, "svc-ttl", 1), 1);
	assert_int_equal(rec_count(rec, "dead", 1), 1);
	assert_true(now_mono_ms() - t0 >= 200);
	pthread_mutex_lock(&rec->mu);
	for (int i = 0; i < rec->n; i++) {
		if (rec->ev[i].reap && strcmp(rec->ev[i].id, "svc-ttl") == 0)
			assert_string_equal(rec->ev[i].svc, "svc");
		if (rec->ev[i].reap && strcmp(rec->ev[i].id, "dead") == 0)
			assert_string_equal(rec->ev[i].svc, "gone");
	}
	pthread_mutex_unlock(&rec->mu);
	usleep(300 * 1000);
	assert_int_equal(rec_count(rec, "node-ttl", 1), 0);
	assert_int_equal(rec_count(rec, "back", 1), 0);
	assert_int_equal(rec_count(rec, "dead", 1), 1);   /* once per critical spell */
	/* The set replaced from the callback took effect. */
	pthread_mutex_lock(&rec->mu);
	assert_int_equal(rec->set_rc, WEFT_OK);
	pthread_mutex_unlock(&rec->mu);
	assert_int_equal(chk_runner_ttl(r, "svc-ttl", CHK_PASSING, "", &err), WEFT_ENOENT);
	free(err);
	chk_runner_free(r);
	rec_free(rec);
}

static void test_bad_definitions(void **state)
{
	struct srv *s = srv_start(0);
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	char url[128], *err = NULL;
	json_t *bad_hdr = json_pack("{s:[s]}", "X-Evil", "a\r\nInjected: 1");
	struct chk_def good = {.id = "web", .type = CHK_HTTP, .http = url, .interval_ms = 20};
	struct {
		struct chk_def d;
		const char *want;
	} cases[] = {
		{{.id = "u", .type = CHK_HTTP, .http = "ftp://x/", .interval_ms = 10},
		 "check \"u\": HTTP:"},
		{{.id = "u2", .type = CHK_HTTP, .http = "not a url", .interval_ms = 10},
		 "check \"u2\": HTTP:"},
		{{.id = "i", .type = CHK_HTTP, .http = "http://127.0.0.1:1/"},
		 "check \"i\": Interval:"},
		{{.id = "m", .type = CHK_HTTP, .http = "http://127.0.0.1:1/", .method = "GE T",
		  .interval_ms = 10}, "check \"m\": Method:"},
		{{.id = "h", .type = CHK_HTTP, .http = "http://127.0.0.1:1/", .header = bad_hdr,
		  .interval_ms = 10}, "check \"h\": Header.X-Evil[0]:"},
		{{.id = "t", .type = CHK_TCP, .tcp = "127.0.0.1", .interval_ms = 10},
		 "check \"t\": TCP:"},
		{{.id = "t6", .type = CHK_TCP, .tcp = "::1:80", .interval_ms = 10},
		 "check \"t6\": TCP:"},
		{{.id = "p", .type = CHK_TCP, .tcp = "127.0.0.1:70000", .interval_ms = 10},
		 "check \"p\": TCP:"},
		{{.id = "ttl", .type = CHK_TTL}, "check \"ttl\": TTL:"},
		{{.id = "", .type = CHK_TTL, .ttl_ms = 10}, "check[1]: ID:"},
		{{.id = "web", .type = CHK_TTL, .ttl_ms = 10}, "check \"web\": ID: given twice"},
		{{.id = "neg", .type = CHK_TTL, .ttl_ms = 10, .deregister_after_ms = -1},
		 "check \"neg\": DeregisterCriticalServiceAfter:"},
		{{.id = "udp", .type = CHK_UDP, .udp = "127.0.0.1", .interval_ms = 10},
		 "check \"udp\": UDP: \"127.0.0.1\": must be HOST:PORT"},
		{{.id = "g", .type = CHK_GRPC, .grpc = "127.0.0.1/svc", .interval_ms = 10},
		 "check \"g\": GRPC: \"127.0.0.1/svc\": must be HOST:PORT (HOST:PORT or HOST:PORT/SERVICE)"},
		{{.id = "gs", .type = CHK_GRPC, .grpc = "127.0.0.1:9/a b", .interval_ms = 10},
		 "check \"gs\": GRPC: service \"a b\": must not contain white space"},
		{{.id = "ge", .type = CHK_GRPC, .grpc = "", .interval_ms = 10},
		 "check \"ge\": GRPC: empty"},
		{{.id = "h2", .type = CHK_H2PING, .h2ping = "[::1]", .interval_ms = 10},
		 "check \"h2\": H2PING: \"[::1]\": an IPv6 address must be in brackets followed by :PORT"},
		{{.id = "sb", .type = CHK_TCP, .tcp = "127.0.0.1:9", .interval_ms = 10,
		  .success_before_passing = -1},
		 "check \"sb\": SuccessBeforePassing: -1 is out of range [0, 1000]"},
		{{.id = "fc", .type = CHK_TCP, .tcp = "127.0.0.1:9", .interval_ms = 10,
		  .failures_before_critical = 1001},
		 "check \"fc\": FailuresBeforeCritical: 1001 is out of range [0, 1000]"},
	};
	int n;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port);
	set_ok(r, &good, 1);
	assert_true(wait_requests(s, 2, 3000));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct chk_def two[2] = {good, cases[i].d};

		err = NULL;
		assert_int_equal(chk_runner_set(r, two, 2, &err), WEFT_EINVAL);
		assert_non_null(err);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].want);
		free(err);
	}
	/* Nothing changed: the good check runs on. */
	n = srv_requests(s);
	assert_true(wait_requests(s, n + 2, 3000));
	assert_int_equal(rec_count(rec, "web", 0), 1);
	/* An IPv6 literal in brackets and a host name are fine. */
	{
		struct chk_def ok[2] = {
			{.id = "v6", .type = CHK_TCP, .tcp = "[::1]:9", .interval_ms = 3600000},
			{.id = "name", .type = CHK_TCP, .tcp = "localhost:9", .interval_ms = 3600000},
		};
		set_ok(r, ok, 2);
	}
	chk_runner_free(r);
	json_decref(bad_hdr);
	srv_stop(s);
	rec_free(rec);
}

/* The first run comes at a random point of the first interval, so checks
 * added together do not all fire at once; each runs within its interval. */
static void test_stagger(void **state)
{
	struct rec *rec = rec_new();
	struct chk_runner *r = runner(rec, 0);
	unsigned port;
	int lfd = listen_any(&port);
	char addr[64], ids[6][16];
	struct chk_def d[6];
	int64_t t0, first = 0, last = 0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	for (int i = 0; i < 6; i++) {
		snprintf(ids[i], sizeof(ids[i]), "c%d", i);
		d[i] = (struct chk_def){.id = ids[i], .type = CHK_TCP, .tcp = addr,
					.interval_ms = 400, .initial = CHK_CRITICAL};
	}
	t0 = now_mono_ms();
	set_ok(r, d, 6);
	for (int i = 0; i < 6; i++) {
		int from = 0;
		char *out = rec_wait(rec, ids[i], CHK_PASSING, &from, 2000);

		assert_non_null(out);
		free(out);
	}
	pthread_mutex_lock(&rec->mu);
	for (int i = 0; i < rec->n; i++) {
		int64_t t = rec->ev[i].at_ms - t0;

		if (i == 0 || t < first)
			first = t;
		if (i == 0 || t > last)
			last = t;
	}
	pthread_mutex_unlock(&rec->mu);
	assert_true(last < 400 + 150);
	assert_true(last - first > 30);
	chk_runner_free(r);
	close(lfd);
	rec_free(rec);
}

/* An interval under the runner's minimum is raised to it (as Consul's 1 s). */
static void test_interval_floor(void **state)
{
	struct srv *s = srv_start(0);
	struct rec *rec = rec_new();
	struct chk_runner_opts o = {.report = on_report, .arg = rec, .min_interval_ms = 200};
	struct chk_runner *r = NULL;
	char url[128], *err = NULL;
	struct chk_def d = {.id = "fast", .type = CHK_HTTP, .http = url, .interval_ms = 5};

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port);
	assert_int_equal(chk_runner_new(&r, &o, &err), WEFT_OK);
	set_ok(r, &d, 1);
	usleep(700 * 1000);
	/* At 5 ms there would be ~100; at 200 ms, at most 4 (stagger + 3). */
	assert_true(srv_requests(s) >= 2);
	assert_true(srv_requests(s) <= 4);
	chk_runner_free(r);
	srv_stop(s);
	rec_free(rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_http_status_classes),
		cmocka_unit_test(test_http_request),
		cmocka_unit_test(test_http_timeout),
		cmocka_unit_test(test_https_self_signed),
		cmocka_unit_test(test_tcp),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_h2ping_failures),
		cmocka_unit_test(test_script_exit_codes),
		cmocka_unit_test(test_script_output_cap),
		cmocka_unit_test(test_script_timeout_kills_group),
		cmocka_unit_test(test_scripts_disabled),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_set_keeps_unchanged),
		cmocka_unit_test(test_no_report_when_unchanged),
		cmocka_unit_test(test_remove_stops),
		cmocka_unit_test(test_reap),
		cmocka_unit_test(test_bad_definitions),
		cmocka_unit_test(test_stagger),
		cmocka_unit_test(test_interval_floor),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}

/* Load for bench/intentions.sh: HTTP/1.1 keep-alive clients against one
 * weft-server on 127.0.0.1. Not part of the build; intentions.sh compiles it.
 *
 *   intentions-load PORT load SOURCES DESTS CONNS    PUT /exact for every pair
 *   intentions-load PORT check SOURCES DESTS CONNS SECS
 *       GET /check for random pairs (a tenth of them unknown sources, so the
 *       default decides); prints answers per second.
 * The token, if any, comes from $WEFT_TOKEN. Every loop is bounded. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port, nsrc, ndst, conns, secs, mode_check;
static const char *token;
static long long done_total, bad_total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int next_pair;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Sends req, reads one response; returns its status, or -1. */
static int roundtrip(int fd, const char *req, size_t len)
{
	static __thread char buf[1 << 16];
	size_t have = 0;
	char *end, *cl;
	long body;
	ssize_t n;

	if (write(fd, req, len) != (ssize_t)len)
		return -1;
	for (;;) {
		if (have == sizeof(buf) - 1)
			return -1;
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) == NULL)
			continue;
		cl = strcasestr(buf, "\r\nContent-Length:");
		body = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
		while (have < (size_t)(end + 4 - buf) + (size_t)body) {
			if (have == sizeof(buf) - 1)
				return -1;
			n = read(fd, buf + have, sizeof(buf) - 1 - have);
			if (n <= 0)
				return -1;
			have += (size_t)n;
		}
		return atoi(buf + 9);
	}
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
	char req[1024], auth[600] = "";
	int fd = dial();
	long long ok = 0, bad = 0;
	double stop = now() + secs;

	if (token)
		snprintf(auth, sizeof(auth), "X-Consul-Token: %s\r\n", token);
	for (;;) {
		int n, st;
		if (mode_check) {
			if ((ok & 63) == 0 && now() > stop)
				break;
			int s = (int)(rand_r(&seed) % (unsigned)(nsrc + nsrc / 10));
			int d = (int)(rand_r(&seed) % (unsigned)ndst);
			n = snprintf(req, sizeof(req),
				     "GET /v1/connect/intentions/check?source=s%d&destination=d%d HTTP/1.1\r\n"
				     "Host: 127.0.0.1\r\n%s\r\n", s, d, auth);
		} else {
			pthread_mutex_lock(&lock);
			int i = next_pair < nsrc * ndst ? next_pair++ : -1;
			pthread_mutex_unlock(&lock);
			if (i < 0)
				break;
			const char *body = i % 3 ? "{\"Action\":\"allow\"}" : "{\"Action\":\"deny\"}";
			n = snprintf(req, sizeof(req),
				     "PUT /v1/connect/intentions/exact?source=s%d&destination=d%d HTTP/1.1\r\n"
				     "Host: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n%s", i % nsrc, i / nsrc,
				     auth, strlen(body), body);
		}
		st = roundtrip(fd, req, (size_t)n);
		if (st == 200) {
			ok++;
		} else {
			bad++;
			if (st < 0) {
				close(fd);
				fd = dial();
			}
			if (bad > 1000)
				break;
		}
	}
	close(fd);
	pthread_mutex_lock(&lock);
	done_total += ok;
	bad_total += bad;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[256];
	double t0, el;

	if (argc < 6) {
		fprintf(stderr, "usage: %s PORT load|check SOURCES DESTS CONNS [SECS]\n", argv[0]);
		return 2;
	}
	port = atoi(argv[1]);
	mode_check = strcmp(argv[2], "check") == 0;
	nsrc = atoi(argv[3]);
	ndst = atoi(argv[4]);
	conns = atoi(argv[5]);
	secs = argc > 6 ? atoi(argv[6]) : 5;
	token = getenv("WEFT_TOKEN");
	if (conns < 1 || conns > 256 || secs < 1 || secs > 120 || nsrc < 1 || ndst < 1) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	t0 = now();
	for (int i = 0; i < conns; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
	for (int i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	el = now() - t0;
	printf("%s: %lld answers 200, %lld others, %.1f s, %.0f per second\n",
	       mode_check ? "check" : "load", done_total, bad_total, el, (double)done_total / el);
	return bad_total ? 1 : 0;
}

/* Leaf signatures per second of lib/ca, CSR check included: each signature
 * parses a CSR PEM, checks its key type and self-signature, builds the leaf
 * and signs it with the root's P-256 key, then PEM-encodes it (everything
 * POST /v1/connect/ca/sign will do but HTTP, JSON and the token).
 *
 *   ca-sign [-t THREADS] [-d SECONDS] [-k ec-p256|ec-p384|rsa-2048]
 *
 * THREADS (2) sign in parallel with the same CA; 64 distinct CSRs of key
 * type -k (ec-p256) are made first and used in turn. Prints one line:
 * signatures/s over all threads, and per thread. Bounded: -d at most 60. */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "err.h"

#define NCSR 64
#define MAX_THREADS 64

static struct ca *root;
static char *csrs[NCSR];
static size_t csr_len[NCSR];
static double duration = 5;
static const char *uri = "spiffe://bench.example/ns/default/dc/dc1/svc/web";

struct worker {
	pthread_t th;
	unsigned long count, errors;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	double end = now() + duration;
	unsigned long i = 0;

	while ((i & 15) != 0 || now() < end) {
		struct ca_leaf leaf;

		if (ca_sign_leaf(root, csrs[i % NCSR], csr_len[i % NCSR], "web", uri, 0, 0, &leaf,
				 NULL) == WEFT_OK)
			w->count++;
		else
			w->errors++;
		ca_leaf_clear(&leaf);
		i++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker workers[MAX_THREADS];
	const char *type = "ec-p256";
	unsigned long total = 0, errors = 0;
	int threads = 2, c;
	char *err = NULL;
	double t0, el;

	while ((c = getopt(argc, argv, "t:d:k:")) != -1) {
		switch (c) {
		case 't': threads = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'k': type = optarg; break;
		default:
			fprintf(stderr, "usage: ca-sign [-t THREADS] [-d SECONDS] [-k KEYTYPE]\n");
			return 2;
		}
	}
	if (threads < 1 || threads > MAX_THREADS || duration <= 0 || duration > 60) {
		fprintf(stderr, "ca-sign: -t 1..%d, -d 0..60\n", MAX_THREADS);
		return 2;
	}
	if (sodium_init() < 0 || ca_root_create(&root, "bench.example", NULL, 0, &err) != WEFT_OK) {
		fprintf(stderr, "ca-sign: %s\n", err ? err : "sodium_init failed");
		return 1;
	}
	for (int i = 0; i < NCSR; i++) {
		char *key = NULL;

		if (ca_csr_create(type, "web", NULL, &key, &csrs[i], &err) != WEFT_OK) {
			fprintf(stderr, "ca-sign: %s\n", err);
			return 1;
		}
		csr_len[i] = strlen(csrs[i]);
		ca_secret_free(key);
	}
	t0 = now();
	for (int i = 0; i < threads; i++) {
		memset(&workers[i], 0, sizeof(workers[i]));
		pthread_create(&workers[i].th, NULL, work, &workers[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(workers[i].th, NULL);
		total += workers[i].count;
		errors += workers[i].errors;
	}
	el = now() - t0;
	printf("ca-sign: csr=%s threads=%d seconds=%.2f signed=%lu errors=%lu "
	       "signatures_per_s=%.0f per_thread=%.0f\n", type, threads, el, total, errors,
	       (double)total / el, (double)total / el / threads);
	for (int i = 0; i < NCSR; i++)
		free(csrs[i]);
	ca_free(root);
	return errors ? 1 : 0;
}

/* certs: leaf certificates and the trust bundle on a VM (certs.h). */
#include "config.h"
#include "certs.h"
#include "buf.h"
#include "ca.h"
#include "err.h"
#include "httpc.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define ROTATE_WINDOW_MS 30000      /* renewal after a root change: within this */
#define RENEW_MIN_MS 1000           /* never renew sooner than this after a leaf */
#define ROOTS_WAIT_S 300            /* blocking query's wait */
#define WAIT_SLICE_MS 5000          /* longest sleep before looking at the clock again */
#define ROOTS_MIN_GAP_MS 50         /* between two roots queries */
#define BUNDLE_FILE "roots.pem"
#define ROOTS_JSON_FILE "roots.json"
#define SUBSYS "certs"

struct leaf {
	char *service;
	/* the current leaf; cert_pem NULL until there is one */
	char *cert_pem;                 /* the leaf, then its chain: the .crt file */
	char *key_pem;                  /* secret: ca_secret_free */
	char *serial, *uri, *akid;
	char valid_after[40], valid_before[40];
	int64_t not_before, not_after;  /* seconds since the epoch */
	long long create_index, modify_index;
	/* the schedule */
	int64_t due_ms;                 /* wall clock: sign at or after this */
	int64_t backoff_ms;             /* last wait after a failure, 0 after a success */
};

struct certs {
	char *dir, *mesh, *mesh_q, *bundle_path, *roots_json_path;
	void (*changed)(void *arg, const char *service);
	void *arg;
	int (*user_abort)(void *arg);
	void *user_abort_arg;
	struct httpc *hc_leaf, *hc_roots;

	pthread_mutex_t lock;
	pthread_cond_t cond;            /* CLOCK_MONOTONIC: set changes, roots, stop */
	struct leaf **leaves;           /* the set */
	size_t n;
	char *bundle_pem;               /* what roots.pem holds */
	json_t *roots;                  /* the server's answer, NULL before any */
	char *active_skid;              /* the active root's SigningKeyID */
	atomic_int stop;
	pthread_t t_leaf, t_roots;
	int leaf_started, roots_started;
};

/* ---- small helpers ---- */

static double rand_unit(void)
{
	uint32_t u = 0;

	if (getrandom(&u, sizeof(u), 0) != (ssize_t)sizeof(u))
		u = (uint32_t)now_mono_ms() * 2654435761u;
	return (double)u / 4294967296.0;
}

/* The next backoff: 1 s doubling to 60 s; the wait is between half and
 * all of it. */
static int64_t backoff_next(int64_t b, int64_t *wait_ms)
{
	b = b <= 0 ? BACKOFF_MIN_MS : b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
	*wait_ms = b / 2 + (int64_t)(rand_unit() * (double)(b / 2));
	return b;
}

static void colon_hex(const unsigned char *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		*out++ = hex[b[i] >> 4];
		*out++ = hex[b[i] & 15];
		if (i + 1 < n)
			*out++ = ':';
	}
	*out = '\0';
}

static char *hex_of(const ASN1_STRING *s)
{
	size_t n = s ? (size_t)ASN1_STRING_length(s) : 0;
	char *t = malloc(n * 3 + 1);

	if (t != NULL)
		colon_hex(s ? ASN1_STRING_get0_data(s) : NULL, n, t);
	return t;
}

static char *path_join(const char *dir, const char *name, const char *ext)
{
	char *p;

	if (asprintf(&p, "%s/%s%s", dir, name, ext ? ext : "") < 0)
		return NULL;
	return p;
}

/* Replaces path with data atomically: a new temporary file in the same
 * directory (mode), fsync, rename over path, fsync of the directory. */
static int write_atomic(const char *dir, const char *path, const char *data, size_t len,
			mode_t mode, char **err)
{
	char *tmp = NULL;
	const char *p = data;
	int fd = -1, dfd, rc = WEFT_EIO;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		weft_errf(err, rc, "%s: cannot create a temporary file: %s", path, strerror(errno));
		free(tmp);
		return rc;
	}
	if (fchmod(fd, mode) != 0) {
		weft_errf(err, rc, "%s: chmod: %s", tmp, strerror(errno));
		goto out;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			weft_errf(err, rc, "%s: write: %s", tmp, strerror(errno));
			goto out;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0) {
		weft_errf(err, rc, "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		weft_errf(err, rc, "%s: close: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		weft_errf(err, rc, "%s: rename to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	rc = WEFT_OK;
out:
	if (fd >= 0)
		close(fd);
	if (rc != WEFT_OK)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int64_t asn1_time_s(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

static void rfc3339(int64_t s, char *out, size_t size)
{
	time_t t = (time_t)s;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The only spiffe:// URI SAN of x, allocated; NULL if none or several. */
static char *spiffe_uri(X509 *x)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	char *found = NULL;
	int count = 0;

	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const unsigned char *u;
		int len;

		if (g->type != GEN_URI)
			continue;
		u = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (len < 9 || strncmp((const char *)u, "spiffe://", 9) != 0 ||
		    memchr(u, '\0', (size_t)len) != NULL)
			continue;
		if (++count == 1)
			found = strndup((const char *)u, (size_t)len);
	}
	GENERAL_NAMES_free(names);
	if (count != 1) {
		free(found);
		return NULL;
	}
	return found;
}

/* A leaf's fields from its PEM (the leaf first, then its chain) and key:
 * the key must match, the only SPIFFE URI SAN must name service. Fills
 * what the leaf JSON shows; the caller sets the indexes. */
static int leaf_parse(struct leaf *l, const char *service, const char *cert_pem,
		      const char *key_pem, char **err)
{
	BIO *bio = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	char *uri = NULL, *tail = NULL;
	const ASN1_OCTET_STRING *akid;
	int rc = WEFT_EINVAL;

	ERR_clear_error();
	if ((bio = BIO_new_mem_buf(cert_pem, -1)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		weft_errf(err, rc, "service %s: the certificate does not parse", service);
		goto out;
	}
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(key_pem, -1)) == NULL ||
	    (k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		weft_errf(err, rc, "service %s: the key does not parse", service);
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		weft_errf(err, rc, "service %s: the key does not match the certificate", service);
		goto out;
	}
	if ((uri = spiffe_uri(x)) == NULL) {
		weft_errf(err, rc, "service %s: the certificate has no single spiffe:// URI SAN",
			  service);
		goto out;
	}
	if (asprintf(&tail, "/svc/%s", service) < 0) {
		tail = NULL;
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	if (strlen(uri) <= strlen(tail) || strcmp(uri + strlen(uri) - strlen(tail), tail) != 0) {
		weft_errf(err, rc, "service %s: the certificate is for %s", service, uri);
		goto out;
	}
	l->not_before = asn1_time_s(X509_get0_notBefore(x));
	l->not_after = asn1_time_s(X509_get0_notAfter(x));
	rfc3339(l->not_before, l->valid_after, sizeof(l->valid_after));
	rfc3339(l->not_after, l->valid_before, sizeof(l->valid_before));
	akid = X509_get0_authority_key_id(x);
	free(l->serial);
	free(l->akid);
	free(l->uri);
	l->serial = hex_of(X509_get0_serialNumber(x));
	l->akid = hex_of(akid);
	l->uri = uri;
	uri = NULL;
	if (l->serial == NULL || l->akid == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	rc = WEFT_OK;
out:
	ERR_clear_error();
	BIO_free(bio);
	X509_free(x);
	EVP_PKEY_free(k);
	free(uri);
	free(tail);
	return rc;
}

static void leaf_clear(struct leaf *l)
{
	free(l->cert_pem);
	ca_secret_free(l->key_pem);
	free(l->serial);
	free(l->uri);
	free(l->akid);
	l->cert_pem = l->key_pem = l->serial = l->uri = l->akid = NULL;
	l->not_before = l->not_after = 0;
	l->valid_after[0] = l->valid_before[0] = '\0';
	l->create_index = l->modify_index = 0;
}

static void leaf_free(struct leaf *l)
{
	if (l == NULL)
		return;
	leaf_clear(l);
	free(l->service);
	free(l);
}

/* When to renew a leaf that became ours at start_ms (wall clock): at
 * 40-60 % of what was left of it then, and not sooner than RENEW_MIN_MS
 * from now. */
static int64_t renew_due(int64_t start_ms, int64_t not_after_s)
{
	int64_t span = not_after_s * 1000 - start_ms;
	int64_t due = start_ms + (int64_t)((double)(span > 0 ? span : 0) * (0.4 + 0.2 * rand_unit()));
	int64_t floor = now_wall_ms() + RENEW_MIN_MS;

	return due > floor ? due : floor;
}

/* The create/modify index of the root whose SigningKeyID is akid (the
 * server answers a signature with the signing root's). Under lock. */
static void indexes_from_roots(struct certs *c, struct leaf *l)
{
	json_t *roots = c->roots ? json_object_get(c->roots, "Roots") : NULL, *r;
	size_t i;

	json_array_foreach(roots, i, r) {
		const char *skid = json_string_value(json_object_get(r, "SigningKeyID"));

		if (skid && l->akid && strcmp(skid, l->akid) == 0) {
			l->create_index = json_integer_value(json_object_get(r, "CreateIndex"));
			l->modify_index = json_integer_value(json_object_get(r, "ModifyIndex"));
			return;
		}
	}
}

/* Under lock, after the active root changed: a leaf not issued by it is
 * renewed soon, within min(ROTATE_WINDOW_MS, a quarter of what it has
 * left), at random so that the agents of a mesh do not all sign at once. */
static void check_rotation(struct certs *c, struct leaf *l)
{
	int64_t now = now_wall_ms(), left, window, due;

	if (l->cert_pem == NULL || c->active_skid == NULL ||
	    (l->akid && strcmp(l->akid, c->active_skid) == 0))
		return;
	left = l->not_after * 1000 - now;
	window = left / 4 < ROTATE_WINDOW_MS ? left / 4 : ROTATE_WINDOW_MS;
	due = now + (window > 0 ? (int64_t)(rand_unit() * (double)window) : 0);
	if (due < l->due_ms) {
		l->due_ms = due;
		log_info(SUBSYS, "root changed: service=%s renewal_in_ms=%lld", l->service,
			 (long long)(due - now));
	}
}

static struct leaf *find(struct certs *c, const char *service)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->leaves[i]->service, service) == 0)
			return c->leaves[i];
	return NULL;
}

/* ---- loading from disk ---- */

/* A service new to the set: its leaf from disk if it is still usable. */
static void leaf_load(struct certs *c, struct leaf *l)
{
	char *cp = path_join(c->dir, l->service, ".crt"), *kp = path_join(c->dir, l->service, ".key");
	char *cert = NULL, *key = NULL, *err = NULL;
	struct stat st;
	int64_t now = now_wall_ms() / 1000;

	l->due_ms = 0;
	if (cp == NULL || kp == NULL || access(cp, F_OK) != 0 || stat(kp, &st) != 0)
		goto out;
	if ((st.st_mode & 077) != 0) {
		log_warnx(SUBSYS, "leaf on disk not used: service=%s error=\"%s: mode %04o, group "
			  "or others may read it\" (a new key is made)", l->service, kp,
			  (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((cert = file_read_all(cp, CA_PEM_MAX, NULL)) == NULL ||
	    (key = file_read_all(kp, CA_PEM_MAX, NULL)) == NULL) {
		log_warnx(SUBSYS, "leaf on disk not used: service=%s error=\"cannot read %s or %s\"",
			  l->service, cp, kp);
		goto out;
	}
	if (leaf_parse(l, l->service, cert, key, &err) != WEFT_OK) {
		log_warnx(SUBSYS, "leaf on disk not used: service=%s error=\"%s\"", l->service, err);
		leaf_clear(l);
		goto out;
	}
	if (l->not_after <= now) {
		log_info(SUBSYS, "leaf on disk expired: service=%s valid_before=%s", l->service,
			 l->valid_before);
		leaf_clear(l);
		goto out;
	}
	l->cert_pem = cert;
	l->key_pem = key;
	cert = key = NULL;
	indexes_from_roots(c, l);
	/* the server backdates a leaf by CA_BACKDATE: it was made about then */
	l->due_ms = renew_due(1000 * (l->not_before + CA_BACKDATE < l->not_after ?
				      l->not_before + CA_BACKDATE : l->not_before), l->not_after);
	log_info(SUBSYS, "leaf loaded from disk: service=%s serial=%s valid_before=%s "
		 "renewal_in_s=%lld", l->service, l->serial, l->valid_before,
		 (long long)((l->due_ms - now_wall_ms()) / 1000));
out:
	free(err);
	free(cert);
	ca_secret_free(key);
	free(cp);
	free(kp);
}

/* ---- signing ---- */

/* A new key, its CSR signed by the server: fills *l (service set). */
static int sign(struct certs *c, const char *service, struct leaf *l, char **err)
{
	char *key = NULL, *csr = NULL, *path = NULL;
	const char *cert, *chain;
	json_t *body = NULL, *out = NULL;
	struct buf b;
	int rc;

	buf_init(&b, 2 * CA_PEM_MAX);
	rc = ca_csr_create("ec-p256", service, NULL, &key, &csr, err);
	if (rc != WEFT_OK)
		goto out;
	rc = WEFT_ENOMEM;
	if ((body = json_pack("{s:s, s:s}", "Service", service, "CSR", csr)) == NULL ||
	    asprintf(&path, "/v1/connect/ca/sign?mesh=%s", c->mesh_q) < 0) {
		path = NULL;
		weft_errf(err, rc, "out of memory");
		goto out;
	}
	rc = httpc_json(c->hc_leaf, "POST", path, body, 0, &out, NULL, err);
	if (rc != WEFT_OK)
		goto out;
	cert = json_string_value(json_object_get(out, "CertPEM"));
	chain = json_string_value(json_object_get(out, "ChainPEM"));
	if (cert == NULL || cert[0] == '\0') {
		rc = weft_errf(err, WEFT_EIO, "weft-server at %s answered the signature of %s "
			       "without CertPEM", httpc_display(c->hc_leaf), service);
		goto out;
	}
	if (buf_printf(&b, "%s%s", cert, cert[strlen(cert) - 1] == '\n' ? "" : "\n") != WEFT_OK ||
	    (chain && chain[0] &&
	     buf_printf(&b, "%s%s", chain, chain[strlen(chain) - 1] == '\n' ? "" : "\n") != WEFT_OK)) {
		rc = weft_errf(err, WEFT_ETOOBIG, "service %s: the certificate and chain are too large",
			       service);
		goto out;
	}
	rc = leaf_parse(l, service, b.data, key, err);
	if (rc != WEFT_OK) {
		rc = WEFT_EIO;
		goto out;
	}
	if (l->not_after * 1000 <= now_wall_ms()) {
		rc = weft_errf(err, WEFT_EIO, "service %s: weft-server sent a leaf valid before %s, "
			       "in the past (is this machine's clock right?)", service, l->valid_before);
		goto out;
	}
	l->cert_pem = buf_steal(&b);
	l->key_pem = key;
	key = NULL;
	l->create_index = json_integer_value(json_object_get(out, "CreateIndex"));
	l->modify_index = json_integer_value(json_object_get(out, "ModifyIndex"));
	rc = WEFT_OK;
out:
	buf_free(&b);
	ca_secret_free(key);
	free(csr);
	free(path);
	json_decref(body);
	json_decref(out);
	return rc;
}

/* Under lock: writes the key, then the certificate. */
static int leaf_write(struct certs *c, const struct leaf *nl, char **err)
{
	char *cp = path_join(c->dir, nl->service, ".crt"), *kp = path_join(c->dir, nl->service, ".key");
	int rc = WEFT_ENOMEM;

	if (cp == NULL || kp == NULL) {
		weft_errf(err, rc, "out of memory");
		goto out;
	}
	rc = write_atomic(c->dir, kp, nl->key_pem, strlen(nl->key_pem), 0600, err);
	if (rc == WEFT_OK)
		rc = write_atomic(c->dir, cp, nl->cert_pem, strlen(nl->cert_pem), 0644, err);
out:
	free(cp);
	free(kp);
	return rc;
}

static void leaf_delete_files(struct certs *c, const char *service)
{
	const char *ext[] = { ".crt", ".key" };

	for (size_t i = 0; i < 2; i++) {
		char *p = path_join(c->dir, service, ext[i]);

		if (p && unlink(p) != 0 && errno != ENOENT)
			log_warn(SUBSYS, "cannot delete %s", p);
		free(p);
	}
}

/* Sleeps on the condition until deadline_mono_ms (or a signal, or stop). */
static void wait_until(struct certs *c, int64_t delay_ms)
{
	struct timespec ts;

	if (delay_ms > WAIT_SLICE_MS)
		delay_ms = WAIT_SLICE_MS;
	if (delay_ms < 1)
		delay_ms = 1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += delay_ms / 1000;
	ts.tv_nsec += (delay_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

static void *leaf_thread(void *arg)
{
	struct certs *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->stop)) {
		struct leaf *l = NULL, nl = { 0 };
		int64_t now = now_wall_ms(), wait_ms;
		char *service, *err = NULL;
		int rc;

		for (size_t i = 0; i < c->n; i++)
			if (l == NULL || c->leaves[i]->due_ms < l->due_ms)
				l = c->leaves[i];
		if (l == NULL || l->due_ms > now) {
			wait_until(c, l ? l->due_ms - now : WAIT_SLICE_MS);
			continue;
		}
		if ((service = strdup(l->service)) == NULL) {
			wait_until(c, BACKOFF_MIN_MS);
			continue;
		}
		pthread_mutex_unlock(&c->lock);
		rc = sign(c, service, &nl, &err);
		pthread_mutex_lock(&c->lock);
		if (rc == WEFT_ESHUTDOWN || atomic_load(&c->stop)) {
			leaf_clear(&nl);
			free(err);
			free(service);
			break;
		}
		l = find(c, service);
		if (l != NULL && rc == WEFT_OK) {
			nl.service = service;
			rc = leaf_write(c, &nl, &err);
			nl.service = NULL;
		}
		if (l == NULL) {
			/* left the set while we signed */
		} else if (rc == WEFT_OK) {
			leaf_clear(l);
			l->cert_pem = nl.cert_pem;
			l->key_pem = nl.key_pem;
			l->serial = nl.serial;
			l->uri = nl.uri;
			l->akid = nl.akid;
			memcpy(l->valid_after, nl.valid_after, sizeof(l->valid_after));
			memcpy(l->valid_before, nl.valid_before, sizeof(l->valid_before));
			l->not_before = nl.not_before;
			l->not_after = nl.not_after;
			l->create_index = nl.create_index;
			l->modify_index = nl.modify_index;
			memset(&nl, 0, sizeof(nl));
			l->backoff_ms = 0;
			l->due_ms = renew_due(now_wall_ms(), l->not_after);
			log_info(SUBSYS, "leaf signed: service=%s serial=%s uri=%s valid_before=%s "
				 "renewal_in_s=%lld", l->service, l->serial, l->uri, l->valid_before,
				 (long long)((l->due_ms - now_wall_ms()) / 1000));
			if (c->changed) {
				pthread_mutex_unlock(&c->lock);
				c->changed(c->arg, service);
				pthread_mutex_lock(&c->lock);
			}
		} else {
			l->backoff_ms = backoff_next(l->backoff_ms, &wait_ms);
			l->due_ms = now_wall_ms() + wait_ms;
			log_warnx(SUBSYS, "leaf not signed: service=%s error=\"%s\" retry_in_ms=%lld%s",
				  service, err ? err : weft_strerror(rc), (long long)wait_ms,
				  l->cert_pem ? "" : " (no leaf yet)");
		}
		leaf_clear(&nl);
		free(err);
		free(service);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- roots ---- */

/* The bundle from the server's roots answer (every RootCert, then its
 * IntermediateCerts, in the answer's order, as ?pem=true has it) and the
 * active root's SigningKeyID. */
static int roots_pem(json_t *doc, char **pem, char **active_skid, char **err)
{
	json_t *roots = json_object_get(doc, "Roots"), *r, *v;
	struct buf b;
	size_t i, j;
	int rc = WEFT_EIO;

	*pem = *active_skid = NULL;
	buf_init(&b, 64u * CA_PEM_MAX);
	if (!json_is_array(roots) || json_array_size(roots) == 0) {
		weft_errf(err, rc, "roots: the answer has no Roots");
		goto out;
	}
	json_array_foreach(roots, i, r) {
		const char *cert = json_string_value(json_object_get(r, "RootCert"));
		json_t *inter = json_object_get(r, "IntermediateCerts");

		if (cert == NULL || strstr(cert, "-----BEGIN CERTIFICATE-----") == NULL) {
			weft_errf(err, rc, "roots: Roots[%zu].RootCert: not a PEM certificate", i);
			goto out;
		}
		if (buf_printf(&b, "%s%s", cert, cert[strlen(cert) - 1] == '\n' ? "" : "\n") != 0)
			goto big;
		json_array_foreach(inter, j, v) {
			const char *s = json_string_value(v);

			if (s && s[0] && buf_printf(&b, "%s%s", s, s[strlen(s) - 1] == '\n' ? "" : "\n") != 0)
				goto big;
		}
		if (json_is_true(json_object_get(r, "Active"))) {
			const char *skid = json_string_value(json_object_get(r, "SigningKeyID"));

			free(*active_skid);
			*active_skid = skid ? strdup(skid) : NULL;
		}
	}
	*pem = buf_steal(&b);
	rc = *pem ? WEFT_OK : weft_errf(err, WEFT_ENOMEM, "out of memory");
	goto out;
big:
	rc = weft_errf(err, WEFT_ETOOBIG, "roots: the bundle is larger than %u bytes", 64u * CA_PEM_MAX);
out:
	if (rc != WEFT_OK) {
		free(*active_skid);
		*active_skid = NULL;
	}
	buf_free(&b);
	return rc;
}

/* A roots answer: the files, the cache, the leaves to renew. 1 when the
 * bundle changed. */
static int roots_apply(struct certs *c, json_t *doc, char **err)
{
	char *pem = NULL, *skid = NULL, *text = NULL, *old_text = NULL;
	int rc, changed = 0, rotated;

	rc = roots_pem(doc, &pem, &skid, err);
	if (rc != WEFT_OK)
		return rc;
	if ((text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	if (c->bundle_pem == NULL || strcmp(c->bundle_pem, pem) != 0) {
		rc = write_atomic(c->dir, c->bundle_path, pem, strlen(pem), 0644, err);
		if (rc != WEFT_OK) {
			pthread_mutex_unlock(&c->lock);
			goto out;
		}
		free(c->bundle_pem);
		c->bundle_pem = pem;
		pem = NULL;
		changed = 1;
	}
	if (c->roots)
		old_text = json_dumps(c->roots, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (old_text == NULL || strcmp(old_text, text) != 0) {
		char *werr = NULL;

		/* the cache for the local API after a restart; not a reason to stop */
		if (write_atomic(c->dir, c->roots_json_path, text, strlen(text), 0644, &werr) != WEFT_OK)
			log_warnx(SUBSYS, "roots: %s", werr);
		free(werr);
	}
	/* a copy of our own: no reference shared with the caller's thread */
	json_decref(c->roots);
	c->roots = json_deep_copy(doc);
	/* a rotation: from one active root to another (not the first answer,
	 * whose leaves are being signed by the active root now) */
	rotated = c->active_skid != NULL && (skid == NULL || strcmp(c->active_skid, skid) != 0);
	free(c->active_skid);
	c->active_skid = skid;
	skid = NULL;
	for (size_t i = 0; i < c->n; i++) {
		struct leaf *l = c->leaves[i];

		if (l->cert_pem != NULL && l->create_index == 0)
			indexes_from_roots(c, l);
		if (rotated)
			check_rotation(c, l);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	rc = changed;
out:
	free(pem);
	free(skid);
	free(text);
	free(old_text);
	return rc;
}

/* Sleeps delay_ms, unless stopping. */
static void sleep_ms(struct certs *c, int64_t delay_ms)
{
	int64_t until = now_mono_ms() + delay_ms;

	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->stop) && now_mono_ms() < until)
		wait_until(c, until - now_mono_ms());
	pthread_mutex_unlock(&c->lock);
}

static void *roots_thread(void *arg)
{
	struct certs *c = arg;
	uint64_t index = 0;
	int64_t backoff = 0;
	int failing = 0;

	while (!atomic_load(&c->stop)) {
		struct httpc_resp resp = { 0 };
		char *path = NULL, *err = NULL;
		json_t *doc = NULL;
		int64_t t0 = now_mono_ms(), wait_ms;
		int rc;

		if (asprintf(&path, "/v1/connect/ca/roots?mesh=%s&index=%llu&wait=%ds", c->mesh_q,
			     (unsigned long long)index, ROOTS_WAIT_S) < 0) {
			sleep_ms(c, BACKOFF_MIN_MS);
			continue;
		}
		rc = httpc_json(c->hc_roots, "GET", path, NULL, (ROOTS_WAIT_S + 30) * 1000L, &doc,
				&resp, &err);
		free(path);
		if (rc == WEFT_ESHUTDOWN || atomic_load(&c->stop)) {
			httpc_resp_free(&resp);
			json_decref(doc);
			free(err);
			break;
		}
		if (rc == WEFT_OK && (doc == NULL || !json_is_object(doc)))
			rc = weft_errf(&err, WEFT_EIO, "roots: the answer is not a JSON object");
		if (rc == WEFT_OK && (rc = roots_apply(c, doc, &err)) >= 0) {
			if (failing)
				log_info(SUBSYS, "roots: weft-server at %s answers again",
					 httpc_display(c->hc_roots));
			failing = 0;
			backoff = 0;
			if (rc == 1) {
				log_info(SUBSYS, "trust bundle written: file=%s roots=%zu index=%llu",
					 c->bundle_path, json_array_size(json_object_get(doc, "Roots")),
					 (unsigned long long)resp.index);
				if (c->changed)
					c->changed(c->arg, NULL);
			}
			/* Consul's rule: an index that went back starts over */
			index = resp.index < index ? 0 : resp.index;
			if (!resp.has_index)    /* not a blocking answer: poll */
				sleep_ms(c, BACKOFF_MIN_MS);
			else if (now_mono_ms() - t0 < ROOTS_MIN_GAP_MS)
				sleep_ms(c, ROOTS_MIN_GAP_MS);
		} else {
			backoff = backoff_next(backoff, &wait_ms);
			log_warnx(SUBSYS, "roots not fetched: error=\"%s\" retry_in_ms=%lld",
				  err ? err : weft_strerror(rc), (long long)wait_ms);
			failing = 1;
			index = 0;
			sleep_ms(c, wait_ms);
		}
		httpc_resp_free(&resp);
		json_decref(doc);
		free(err);
	}
	return NULL;
}

/* ---- the API ---- */

static int aborted(void *arg)
{
	struct certs *c = arg;

	return atomic_load(&c->stop) || (c->user_abort && c->user_abort(c->user_abort_arg));
}

int certs_new(struct certs **out, const struct certs_opts *o, char **err)
{
	struct certs *c = calloc(1, sizeof(*c));
	struct httpc_opts ho;
	pthread_condattr_t ca;
	json_error_t jerr;
	struct stat st;
	char *pem;
	int rc = WEFT_ENOMEM;

	*out = NULL;
	if (c == NULL)
		return weft_errf(err, rc, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&c->stop, 0);
	if (o->dir == NULL || o->dir[0] == '\0') {
		rc = weft_errf(err, WEFT_EINVAL, "certs: dir: empty");
		goto out;
	}
	if (o->mesh && !name_valid(o->mesh, CA_NAME_MAX + 1)) {
		rc = weft_errf(err, WEFT_EINVAL, "certs: mesh: \"%s\" is not a valid mesh name", o->mesh);
		goto out;
	}
	if ((c->dir = strdup(o->dir)) == NULL || (c->mesh = strdup(o->mesh ? o->mesh : "default")) == NULL ||
	    (c->mesh_q = httpc_escape(c->mesh, 0)) == NULL ||
	    (c->bundle_path = path_join(c->dir, BUNDLE_FILE, NULL)) == NULL ||
	    (c->roots_json_path = path_join(c->dir, ROOTS_JSON_FILE, NULL)) == NULL) {
		weft_errf(err, rc, "out of memory");
		goto out;
	}
	if (mkdir(c->dir, 0700) != 0 && errno != EEXIST) {
		rc = weft_errf(err, WEFT_EIO, "certs: cannot make %s: %s", c->dir, strerror(errno));
		goto out;
	}
	if (stat(c->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		rc = weft_errf(err, WEFT_EIO, "certs: %s is not a directory", c->dir);
		goto out;
	}
	c->changed = o->changed;
	c->arg = o->arg;
	c->user_abort = o->server.abort_fn;
	c->user_abort_arg = o->server.abort_arg;
	ho = o->server;
	ho.abort_fn = aborted;
	ho.abort_arg = c;
	if ((rc = httpc_new(&c->hc_leaf, &ho, err)) != WEFT_OK ||
	    (rc = httpc_new(&c->hc_roots, &ho, err)) != WEFT_OK)
		goto out;
	/* static stability: the last bundle and roots answer */
	if ((pem = file_read_all(c->bundle_path, 64u * CA_PEM_MAX, NULL)) != NULL) {
		if (strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL) {
			c->bundle_pem = pem;
			log_info(SUBSYS, "trust bundle loaded from disk: file=%s", c->bundle_path);
		} else {
			free(pem);
		}
	}
	if (c->bundle_pem != NULL &&
	    (c->roots = json_load_file(c->roots_json_path, 0, &jerr)) != NULL) {
		char *p2 = NULL, *skid = NULL, *e2 = NULL;

		if (!json_is_object(c->roots) || roots_pem(c->roots, &p2, &skid, &e2) != WEFT_OK ||
		    strcmp(p2, c->bundle_pem) != 0) {
			/* not the answer the bundle came from: wait for the server's */
			json_decref(c->roots);
			c->roots = NULL;
			free(skid);
			skid = NULL;
		}
		c->active_skid = skid;
		free(p2);
		free(e2);
	}
	if (pthread_create(&c->t_leaf, NULL, leaf_thread, c) != 0) {
		rc = weft_errf(err, WEFT_EIO, "certs: cannot start a thread");
		goto out;
	}
	c->leaf_started = 1;
	if (pthread_create(&c->t_roots, NULL, roots_thread, c) != 0) {
		rc = weft_errf(err, WEFT_EIO, "certs: cannot start a thread");
		goto out;
	}
	c->roots_started = 1;
	*out = c;
	c = NULL;
	rc = WEFT_OK;
out:
	certs_free(c);
	return rc;
}

void certs_free(struct certs *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->stop, 1);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->leaf_started)
		pthread_join(c->t_leaf, NULL);
	if (c->roots_started)
		pthread_join(c->t_roots, NULL);
	httpc_free(c->hc_leaf);
	httpc_free(c->hc_roots);
	for (size_t i = 0; i < c->n; i++)
		leaf_free(c->leaves[i]);
	free(c->leaves);
	free(c->bundle_pem);
	json_decref(c->roots);
	free(c->active_skid);
	free(c->dir);
	free(c->mesh);
	free(c->mesh_q);
	free(c->bundle_path);
	free(c->roots_json_path);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int certs_set(struct certs *c, const char *const *services, size_t n, char **err)
{
	struct leaf **next = NULL, **fresh = NULL;
	size_t m = 0;
	int rc = WEFT_ENOMEM;

	for (size_t i = 0; i < n; i++)
		if (services[i] == NULL || !name_valid(services[i], CA_NAME_MAX + 1))
			return weft_errf(err, WEFT_EINVAL, "certs: service \"%s\": not a valid service name",
					 services[i] ? services[i] : "(null)");
	/* everything allocated before the lock: nothing fails under it */
	if (n > 0 && ((next = calloc(n, sizeof(*next))) == NULL ||
		      (fresh = calloc(n, sizeof(*fresh))) == NULL))
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((fresh[i] = calloc(1, sizeof(**fresh))) == NULL ||
		    (fresh[i]->service = strdup(services[i])) == NULL)
			goto out;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		struct leaf *l = NULL;
		size_t j;

		for (j = 0; j < m && strcmp(next[j]->service, services[i]) != 0; j++)
			;
		if (j < m)
			continue;       /* a duplicate */
		for (j = 0; j < c->n && l == NULL; j++) {
			if (c->leaves[j] && strcmp(c->leaves[j]->service, services[i]) == 0) {
				l = c->leaves[j];
				c->leaves[j] = NULL;
			}
		}
		if (l == NULL) {
			l = fresh[i];
			fresh[i] = NULL;
			leaf_load(c, l);
		}
		next[m++] = l;
	}
	for (size_t j = 0; j < c->n; j++) {
		if (c->leaves[j] == NULL)
			continue;
		log_info(SUBSYS, "leaf removed: service=%s", c->leaves[j]->service);
		leaf_delete_files(c, c->leaves[j]->service);
		leaf_free(c->leaves[j]);
	}
	free(c->leaves);
	c->leaves = next;
	c->n = m;
	next = NULL;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	rc = WEFT_OK;
out:
	if (rc != WEFT_OK)
		weft_errf(err, rc, "out of memory");
	for (size_t i = 0; fresh && i < n; i++)
		leaf_free(fresh[i]);
	free(fresh);
	free(next);
	return rc;
}

int certs_paths(struct certs *c, const char *service, char **cert, char **key, char **bundle)
{
	int rc = WEFT_OK, in;

	if (cert)
		*cert = NULL;
	if (key)
		*key = NULL;
	if (bundle)
		*bundle = NULL;
	pthread_mutex_lock(&c->lock);
	in = service != NULL && find(c, service) != NULL;
	pthread_mutex_unlock(&c->lock);
	if (!in)
		return WEFT_ENOENT;
	if ((cert && (*cert = path_join(c->dir, service, ".crt")) == NULL) ||
	    (key && (*key = path_join(c->dir, service, ".key")) == NULL) ||
	    (bundle && (*bundle = path_join(c->dir, BUNDLE_FILE, NULL)) == NULL)) {
		rc = WEFT_ENOMEM;
		if (cert) {
			free(*cert);
			*cert = NULL;
		}
		if (key) {
			free(*key);
			*key = NULL;
		}
	}
	return rc;
}

int certs_leaf_json(struct certs *c, const char *service, json_t **out, char **err)
{
	struct leaf *l;
	int rc = WEFT_OK;

	*out = NULL;
	pthread_mutex_lock(&c->lock);
	l = service ? find(c, service) : NULL;
	if (l == NULL || l->cert_pem == NULL) {
		rc = weft_errf(err, WEFT_ENOENT, "certs: service %s: %s", service ? service : "(null)",
			       l ? "no leaf certificate yet" : "not a service of this agent");
	} else {
		*out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}",
				 "SerialNumber", l->serial, "CertPEM", l->cert_pem,
				 "PrivateKeyPEM", l->key_pem, "Service", l->service,
				 "ServiceURI", l->uri, "ValidAfter", l->valid_after,
				 "ValidBefore", l->valid_before,
				 "CreateIndex", (json_int_t)l->create_index,
				 "ModifyIndex", (json_int_t)l->modify_index);
		if (*out == NULL)
			rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int certs_roots_json(struct certs *c, json_t **out, char **err)
{
	int rc = WEFT_OK;

	pthread_mutex_lock(&c->lock);
	*out = c->roots ? json_deep_copy(c->roots) : NULL;
	if (c->roots == NULL)
		rc = weft_errf(err, WEFT_ENOENT, "certs: no CA roots from weft-server yet");
	else if (*out == NULL)
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int certs_ready(struct certs *c)
{
	int64_t now = now_wall_ms() / 1000;
	int ready;

	pthread_mutex_lock(&c->lock);
	ready = c->bundle_pem != NULL;
	for (size_t i = 0; ready && i < c->n; i++)
		ready = c->leaves[i]->cert_pem != NULL && c->leaves[i]->not_after > now;
	pthread_mutex_unlock(&c->lock);
	return ready;
}

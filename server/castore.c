#include "castore.h"
#include "ca.h"
#include "duration.h"
#include "err.h"
#include "jsonx.h"
#include "log.h"
#include "mesh.h"
#include "sealed.h"
#include "util.h"

#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_LEAF_TTL_MS (CA_LEAF_TTL_DEFAULT * 1000)
#define DEFAULT_ROTATION_MS (2160LL * 3600 * 1000)      /* Consul's 90 days */
#define DEFAULT_INTERMEDIATE_TTL_MS (8760LL * 3600 * 1000)
#define CROSS_TTL_MIN_S (7 * 86400LL)
#define PRUNE_BATCH 64

/* A loaded signing CA. Entries are never freed before castore_close, so a
 * signer may keep using one after a rotation replaced it. */
struct ca_entry {
	char mesh[MESH_NAME_MAX + 1];
	char id[CA_ID_LEN + 1];
	uint64_t modify_index;
	struct ca *ca;
	struct ca_entry *next_all;
};

struct mesh_stats {
	char mesh[MESH_NAME_MAX + 1];
	uint64_t signed_n, errors;
};

struct castore {
	struct store *store;
	struct sealed_key *sk;
	char zone[CA_NAME_MAX + 1];
	pthread_mutex_t lock;          /* the fields below */
	struct ca_entry *all;
	struct ca_entry *current[CASTORE_MESHES_MAX];
	size_t ncurrent;
	struct mesh_stats stats[CASTORE_MESHES_MAX];
	size_t nstats;
	uint64_t errors_other;         /* signing errors of meshes past CASTORE_MESHES_MAX */
	pthread_t thread;
	int started;
	pthread_cond_t cond;
	int stopping;
};

/* ---- certificate facts the library does not expose ---- */

struct cert_facts {
	char name[128];          /* subject CN (Consul's Name) */
	int64_t serial;          /* Consul's uint64 SerialNumber, low 63 bits */
	char key_type[8];        /* "ec" or "rsa" */
	int key_bits;
	int64_t not_after;       /* seconds since the epoch */
};

static int cert_facts(const char *pem, struct cert_facts *f)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIGNUM *bn = NULL;
	EVP_PKEY *pk;
	struct tm tm;
	int rc = -1;

	memset(f, 0, sizeof(*f));
	if (x == NULL)
		goto out;
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, f->name,
				      sizeof(f->name)) < 0)
		f->name[0] = '\0';
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) == NULL)
		goto out;
	if (BN_num_bits(bn) > 63)
		BN_mask_bits(bn, 63);
	f->serial = (int64_t)BN_get_word(bn);
	if ((pk = X509_get0_pubkey(x)) == NULL)
		goto out;
	snprintf(f->key_type, sizeof(f->key_type), "%s",
		 EVP_PKEY_base_id(pk) == EVP_PKEY_RSA ? "rsa" : "ec");
	f->key_bits = EVP_PKEY_bits(pk);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		goto out;
	f->not_after = (int64_t)timegm(&tm);
	rc = 0;
out:
	BN_free(bn);
	X509_free(x);
	BIO_free(bio);
	return rc;
}

/* ---- a new root, made outside the writer ---- */

struct new_root {
	int made;
	char id[CA_ID_LEN + 1];
	char skid[CA_ID_LEN + 1];
	char td[CA_TRUST_DOMAIN_MAX + 1];
	char *cert_pem;
	char *sealed_key;
	char *intermediates;     /* JSON array of PEMs */
	int64_t not_before, not_after, chain_not_after;
	struct cert_facts facts;
};

static void new_root_clear(struct new_root *nr)
{
	free(nr->cert_pem);
	free(nr->sealed_key);
	free(nr->intermediates);
	memset(nr, 0, sizeof(*nr));
}

/* A generated root (cert_pem NULL) or the operator's own; cross-signed by
 * old when it is given. */
static int new_root_make(struct castore *cs, const char *td, const char *cert_pem,
			 const char *key_pem, int64_t root_ttl_s, const struct ca *old,
			 int64_t cross_ttl_s, struct new_root *nr, char **err)
{
	struct ca *ca = NULL;
	char *xc = NULL, *e = NULL;
	json_t *inter = json_array();
	struct cert_facts xf;
	int rc;

	memset(nr, 0, sizeof(*nr));
	if (cert_pem) {
		rc = ca_load(&ca, td, cert_pem, key_pem, NULL, 0, &e);
		if (rc != WEFT_OK) {
			rc = weft_errf(err, rc, "Config.%s", e ? e : "RootCert: cannot be loaded");
			goto out;
		}
		if (!ca_is_root(ca)) {
			rc = weft_errf(err, WEFT_EINVAL, "Config.RootCert: must be a self-signed root CA");
			goto out;
		}
	} else if ((rc = ca_root_create(&ca, td, NULL, root_ttl_s, err)) != WEFT_OK) {
		goto out;
	}
	if ((rc = ca_key_seal(ca, cs->sk, &nr->sealed_key, err)) != WEFT_OK)
		goto out;
	if (old) {
		if ((rc = ca_cross_sign(old, ca, cross_ttl_s, &xc, err)) != WEFT_OK)
			goto out;
		json_array_append_new(inter, json_string(xc));
		if (cert_facts(xc, &xf) == 0)
			nr->chain_not_after = xf.not_after;
	}
	if ((nr->cert_pem = strdup(ca_cert_pem(ca))) == NULL ||
	    (nr->intermediates = jx_dump(inter)) == NULL || cert_facts(nr->cert_pem, &nr->facts) != 0) {
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto out;
	}
	snprintf(nr->id, sizeof(nr->id), "%s", ca_id(ca));
	snprintf(nr->skid, sizeof(nr->skid), "%s", ca_signing_key_id(ca));
	snprintf(nr->td, sizeof(nr->td), "%s", td);
	nr->not_before = ca_not_before(ca);
	nr->not_after = ca_not_after(ca);
	nr->made = 1;
	rc = WEFT_OK;
out:
	if (rc != WEFT_OK)
		new_root_clear(nr);
	free(e);
	free(xc);
	json_decref(inter);
	ca_free(ca);
	return rc;
}

/* ---- configuration writes ---- */

struct castore_put {
	json_t *doc;
	char mesh[MESH_NAME_MAX + 1];
	int create_only;               /* make the CA if the mesh has none, else nothing */
	/* decoded (NULL / -1: keep) */
	const char *provider;
	long long leaf_ms, rotation_ms, inter_ms;
	long long root_ttl_ms;         /* a generated root's lifetime, this PUT only */
	const char *root_cert, *private_key;
	int fwc, fwc_set, rotate;
	/* prepared */
	char expect_active[CA_ID_LEN + 1];   /* "" when the mesh has no root */
	char prov[16];
	long long r_leaf, r_rotation, r_inter;
	int r_fwc;
	int rotating;
	int64_t remove_after_ms;
	struct new_root nr;
};

void castore_put_free(void *arg)
{
	struct castore_put *p = arg;

	if (p == NULL)
		return;
	if (p->private_key)
		sodium_memzero((char *)p->private_key, strlen(p->private_key));
	json_decref(p->doc);
	new_root_clear(&p->nr);
	free(p);
}

static int config_duration(json_t *cfg, const char *name, long long *out, long long min,
			   long long max, char **err)
{
	char ctx[64], lo[32], hi[32];
	int rc;

	*out = -1;
	if ((rc = jx_duration_ms(cfg, "Config", name, out, err)) != WEFT_OK)
		return rc;
	if (*out != -1 && (*out < min || *out > max)) {
		duration_format(min, lo, sizeof(lo));
		duration_format(max, hi, sizeof(hi));
		snprintf(ctx, sizeof(ctx), "Config.%s", name);
		return weft_errf(err, WEFT_EINVAL, "%s: must be between %s and %s", ctx, lo, hi);
	}
	return WEFT_OK;
}

int castore_put_decode(json_t *doc, const char *mesh, struct castore_put **out, char **err)
{
	static const char *const known[] = {
		"LeafCertTTL", "RotationPeriod", "IntermediateCertTTL", "RootCert", "PrivateKey",
		"PrivateKeyType", "PrivateKeyBits", "CSRMaxPerSecond", "CSRMaxConcurrent",
		"RootCertTTL", "SkipValidate", NULL,
	};
	struct castore_put *p = calloc(1, sizeof(*p));
	json_t *cfg = NULL, *v;
	const char *k;
	int rc;

	*out = p;
	if (p == NULL)
		return weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
	p->doc = json_incref(doc);
	p->leaf_ms = p->rotation_ms = p->inter_ms = p->root_ttl_ms = -1;
	snprintf(p->mesh, sizeof(p->mesh), "%s", mesh);
	if (!json_is_object(doc))
		return weft_errf(err, WEFT_EINVAL, "body: must be a JSON object");
	if ((rc = jx_str(doc, NULL, "Provider", &p->provider, 32, err)) != WEFT_OK ||
	    (rc = jx_object(doc, NULL, "Config", &cfg, err)) != WEFT_OK ||
	    (rc = jx_bool(doc, NULL, "RotateRoot", &p->rotate, err)) != WEFT_OK)
		return rc;
	p->fwc = -1;
	if ((rc = jx_bool(doc, NULL, "ForceWithoutCrossSigning", &p->fwc, err)) != WEFT_OK)
		return rc;
	p->fwc_set = p->fwc != -1;
	if (!p->fwc_set)
		p->fwc = 0;
	if (p->provider && strcmp(p->provider, "consul") == 0)
		p->provider = "weft";   /* Consul's built-in CA is Weft's */
	if (p->provider && strcmp(p->provider, "weft") && strcmp(p->provider, "provided"))
		return weft_errf(err, WEFT_EINVAL, "Provider: \"%s\" is not one of weft (or consul), "
				 "provided", p->provider);
	if (cfg == NULL)
		return WEFT_OK;
	json_object_foreach(cfg, k, v) {
		size_t i;
		for (i = 0; known[i] && strcasecmp(known[i], k) != 0; i++)
			;
		if (known[i] == NULL)
			return weft_errf(err, WEFT_EINVAL, "Config.%.64s: unknown field", k);
	}
	if ((rc = config_duration(cfg, "LeafCertTTL", &p->leaf_ms, CASTORE_LEAF_TTL_MIN_MS,
				  CASTORE_LEAF_TTL_MAX_MS, err)) != WEFT_OK ||
	    (rc = config_duration(cfg, "RotationPeriod", &p->rotation_ms, 3600LL * 1000,
				  10LL * 365 * 86400 * 1000, err)) != WEFT_OK ||
	    (rc = config_duration(cfg, "IntermediateCertTTL", &p->inter_ms, 3600LL * 1000,
				  10LL * 365 * 86400 * 1000, err)) != WEFT_OK ||
	    (rc = jx_str(cfg, "Config", "RootCert", &p->root_cert, CA_PEM_MAX, err)) != WEFT_OK ||
	    (rc = jx_str(cfg, "Config", "PrivateKey", &p->private_key, CA_PEM_MAX, err)) != WEFT_OK)
		return rc;
	if (p->root_cert && p->root_cert[0] == '\0')
		p->root_cert = NULL;
	if (p->private_key && p->private_key[0] == '\0')
		p->private_key = NULL;
	if ((rc = config_duration(cfg, "RootCertTTL", &p->root_ttl_ms, 86400LL * 1000,
				  CA_ROOT_TTL_DEFAULT * 1000, err)) != WEFT_OK)
		return rc;
	/* The key of a generated root is EC P-256; a provided root's is its own
	 * (a GET shows it, so a GET-then-PUT with RootCert passes). */
	if (p->root_cert == NULL) {
		if ((v = jx_field(cfg, "PrivateKeyType")) && !json_is_null(v) &&
		    !(json_is_string(v) && strcmp(json_string_value(v), "ec") == 0))
			return weft_errf(err, WEFT_EINVAL,
					 "Config.PrivateKeyType: generated roots are \"ec\"");
		if ((v = jx_field(cfg, "PrivateKeyBits")) && !json_is_null(v) &&
		    !(json_is_integer(v) && json_integer_value(v) == 256))
			return weft_errf(err, WEFT_EINVAL,
					 "Config.PrivateKeyBits: generated roots are 256");
	}
	return WEFT_OK;
}

/* The stored configuration and active root of a mesh; 0 when it has none. */
struct ca_state {
	char provider[16];
	long long leaf_ms, rotation_ms, inter_ms;
	int fwc;
	char active[CA_ID_LEN + 1];
	char mesh_td[CA_TRUST_DOMAIN_MAX + 1];
	int has_mesh, has_ca;
};

static int read_state(struct db *db, const char *mesh, struct ca_state *s)
{
	struct db_stmt *st;
	int rc;

	memset(s, 0, sizeof(*s));
	if ((st = db_prep(db, "SELECT trust_domain FROM meshes WHERE name = ?")) == NULL)
		return -1;
	db_bind_text(st, 1, mesh);
	if ((rc = db_step(st)) == DB_ROW) {
		s->has_mesh = 1;
		snprintf(s->mesh_td, sizeof(s->mesh_td), "%s", db_col_text(st, 0));
	}
	db_done(st);
	if (rc < 0)
		return -1;
	st = db_prep(db, "SELECT c.provider, c.leaf_ttl_ms, c.rotation_ms, c.intermediate_ttl_ms,"
			 " c.force_without_cross_signing, r.id FROM ca_config c"
			 " JOIN ca_roots r ON r.mesh = c.mesh AND r.active = 1 WHERE c.mesh = ?");
	if (st == NULL)
		return -1;
	db_bind_text(st, 1, mesh);
	if ((rc = db_step(st)) == DB_ROW) {
		s->has_ca = 1;
		snprintf(s->provider, sizeof(s->provider), "%s", db_col_text(st, 0));
		s->leaf_ms = db_col_int(st, 1);
		s->rotation_ms = db_col_int(st, 2);
		s->inter_ms = db_col_int(st, 3);
		s->fwc = (int)db_col_int(st, 4);
		snprintf(s->active, sizeof(s->active), "%s", db_col_text(st, 5));
	}
	db_done(st);
	return rc < 0 ? -1 : 0;
}

static int insert_root(struct db *db, uint64_t index, const char *mesh, const struct new_root *nr)
{
	struct db_stmt *st = db_prep(db,
		"INSERT INTO ca_roots (mesh, id, name, serial, signing_key_id, trust_domain,"
		" not_before, not_after, chain_not_after, cert_pem, intermediates, sealed_key,"
		" key_type, key_bits, active, remove_after_ms, create_index, modify_index)"
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?)"
		" ON CONFLICT (mesh, id) DO UPDATE SET active = 1, remove_after_ms = 0,"
		" intermediates = excluded.intermediates, chain_not_after = excluded.chain_not_after,"
		" sealed_key = excluded.sealed_key, modify_index = excluded.modify_index");
	int rc;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, mesh);
	db_bind_text(st, 2, nr->id);
	db_bind_text(st, 3, nr->facts.name);
	db_bind_int(st, 4, nr->facts.serial);
	db_bind_text(st, 5, nr->skid);
	db_bind_text(st, 6, nr->td);
	db_bind_int(st, 7, nr->not_before);
	db_bind_int(st, 8, nr->not_after);
	db_bind_int(st, 9, nr->chain_not_after);
	db_bind_text(st, 10, nr->cert_pem);
	db_bind_text(st, 11, nr->intermediates);
	db_bind_text(st, 12, nr->sealed_key);
	db_bind_text(st, 13, nr->facts.key_type);
	db_bind_int(st, 14, nr->facts.key_bits);
	db_bind_int(st, 15, (int64_t)index);
	db_bind_int(st, 16, (int64_t)index);
	rc = db_step(st);
	db_done(st);
	return rc == DB_DONE ? 0 : -1;
}

int castore_apply_put(struct db *db, uint64_t index, struct store_write *w,
		      struct store_changes *ch)
{
	struct castore_put *p = w->arg;
	struct ca_state s;
	struct db_stmt *st;
	int rc;

	if (read_state(db, p->mesh, &s) != 0)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	if (!s.has_mesh)
		return weft_errf(&w->err, WEFT_ENOENT, "mesh \"%s\" does not exist", p->mesh);
	if (p->create_only && s.has_ca)
		return WEFT_OK;   /* made by a concurrent request */
	if (!p->create_only && strcmp(s.active, p->expect_active) != 0)
		return weft_errf(&w->err, WEFT_ECONFLICT, "ca: the active root of mesh \"%s\" changed"
				 " during this request; retry", p->mesh);
	st = db_prep(db, "INSERT INTO ca_config (mesh, provider, leaf_ttl_ms, rotation_ms,"
			 " intermediate_ttl_ms, force_without_cross_signing, create_index, modify_index)"
			 " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mesh) DO UPDATE SET"
			 " provider = excluded.provider, leaf_ttl_ms = excluded.leaf_ttl_ms,"
			 " rotation_ms = excluded.rotation_ms,"
			 " intermediate_ttl_ms = excluded.intermediate_ttl_ms,"
			 " force_without_cross_signing = excluded.force_without_cross_signing,"
			 " modify_index = excluded.modify_index");
	if (st == NULL)
		return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
	db_bind_text(st, 1, p->mesh);
	db_bind_text(st, 2, p->prov);
	db_bind_int(st, 3, p->r_leaf);
	db_bind_int(st, 4, p->r_rotation);
	db_bind_int(st, 5, p->r_inter);
	db_bind_int(st, 6, p->r_fwc);
	db_bind_int(st, 7, (int64_t)index);
	db_bind_int(st, 8, (int64_t)index);
	rc = db_step(st);
	db_done(st);
	if (rc != DB_DONE)
		return weft_errf(&w->err, WEFT_EIO, "store: cannot write the CA configuration of "
				 "mesh %s: %s", p->mesh, db_errmsg(db));
	if (p->rotating) {
		if (s.has_ca) {
			st = db_prep(db, "UPDATE ca_roots SET active = 0, remove_after_ms = ?,"
					 " modify_index = ? WHERE mesh = ? AND id = ?");
			if (st == NULL)
				return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
			db_bind_int(st, 1, p->remove_after_ms);
			db_bind_int(st, 2, (int64_t)index);
			db_bind_text(st, 3, p->mesh);
			db_bind_text(st, 4, s.active);
			rc = db_step(st);
			db_done(st);
			if (rc != DB_DONE)
				return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		}
		if (insert_root(db, index, p->mesh, &p->nr) != 0)
			return weft_errf(&w->err, WEFT_EIO, "store: cannot write the root of mesh %s: %s",
					 p->mesh, db_errmsg(db));
		log_info("ca", "root active mesh=%s id=%s previous=%s remove_previous_at_ms=%lld",
			 p->mesh, p->nr.id, s.has_ca ? s.active : "none",
			 (long long)(s.has_ca ? p->remove_after_ms : 0));
	}
	changes_add(ch, "ca:%s", p->mesh);
	return WEFT_OK;
}

/* ---- the signing cache ---- */

static struct ca_entry *cache_find(struct castore *cs, const char *mesh, size_t *slot)
{
	for (size_t i = 0; i < cs->ncurrent; i++) {
		if (strcmp(cs->current[i]->mesh, mesh) == 0) {
			*slot = i;
			return cs->current[i];
		}
	}
	*slot = cs->ncurrent;
	return NULL;
}

struct signer {
	struct ca_entry *e;
	int owned;               /* e is not cached (too many meshes): free it after use */
	char td[CA_TRUST_DOMAIN_MAX + 1];
	long long leaf_ms;
	uint64_t modify_index;
};

/* The active root of mesh, loaded (and cached) for signing; its CA made on
 * first use. */
static int get_signer(struct castore *cs, const char *mesh, struct signer *out, char **err)
{
	struct db *db = NULL;
	struct db_stmt *st;
	struct ca_entry *e = NULL, *fresh = NULL;
	struct ca *ca = NULL;
	char id[CA_ID_LEN + 1];
	json_t *inter = NULL, *v;
	size_t slot, i;
	int rc, tries;

	for (tries = 0; tries < 2; tries++) {
		if ((db = store_read_begin(cs->store)) == NULL)
			return weft_errf(err, WEFT_EIO, "store: cannot open a read connection");
		st = db_prep(db, "SELECT r.id, r.modify_index, r.trust_domain, c.leaf_ttl_ms"
				 " FROM ca_roots r JOIN ca_config c ON c.mesh = r.mesh"
				 " WHERE r.mesh = ? AND r.active = 1");
		if (st == NULL) {
			rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
			goto out;
		}
		db_bind_text(st, 1, mesh);
		rc = db_step(st);
		if (rc == DB_ROW) {
			snprintf(id, sizeof(id), "%s", db_col_text(st, 0));
			out->modify_index = (uint64_t)db_col_int(st, 1);
			snprintf(out->td, sizeof(out->td), "%s", db_col_text(st, 2));
			out->leaf_ms = db_col_int(st, 3);
		}
		db_done(st);
		if (rc == DB_ROW)
			break;
		store_read_end(db);
		db = NULL;
		if (rc < 0)
			return weft_errf(err, WEFT_EIO, "store: cannot read the CA of mesh %s", mesh);
		if (tries == 0 && (rc = castore_ensure(cs, mesh, err)) != WEFT_OK)
			return rc;
	}
	if (db == NULL)
		return weft_errf(err, WEFT_EIO, "ca: mesh %s has no active root", mesh);
	pthread_mutex_lock(&cs->lock);
	e = cache_find(cs, mesh, &slot);
	if (e && (strcmp(e->id, id) != 0 || e->modify_index != out->modify_index))
		e = NULL;
	pthread_mutex_unlock(&cs->lock);
	if (e) {
		out->e = e;
		rc = WEFT_OK;
		goto out;
	}
	st = db_prep(db, "SELECT cert_pem, sealed_key, intermediates FROM ca_roots"
			 " WHERE mesh = ? AND id = ?");
	if (st == NULL) {
		rc = weft_errf(err, WEFT_EIO, "store: %s", db_errmsg(db));
		goto out;
	}
	db_bind_text(st, 1, mesh);
	db_bind_text(st, 2, id);
	if (db_step(st) != DB_ROW) {
		db_done(st);
		rc = weft_errf(err, WEFT_EIO, "store: the root %s of mesh %s is gone", id, mesh);
		goto out;
	}
	{
		char *why = NULL;

		rc = ca_load_sealed(&ca, out->td, db_col_text(st, 0), db_col_text(st, 1), NULL, cs->sk,
				    0, &why);
		if (rc != WEFT_OK) {
			/* A server fault (another ca-seal.key?), not the client's. */
			rc = weft_errf(err, WEFT_EIO, "ca: cannot open the key of root %s of mesh %s "
				       "(is %s the one it was sealed with?): %s", id, mesh,
				       CASTORE_KEY_FILE, why ? why : "?");
			log_warnx("ca", "%s", *err);
		}
		free(why);
	}
	inter = jx_load_or(db_col_text(st, 2), JSON_ARRAY);
	db_done(st);
	if (rc != WEFT_OK)
		goto out;
	json_array_foreach(inter, i, v) {
		if (json_is_string(v) && (rc = ca_chain_append(ca, json_string_value(v), err)) != WEFT_OK)
			goto out;
	}
	if ((fresh = calloc(1, sizeof(*fresh))) == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
		goto out;
	}
	snprintf(fresh->mesh, sizeof(fresh->mesh), "%s", mesh);
	snprintf(fresh->id, sizeof(fresh->id), "%s", id);
	fresh->modify_index = out->modify_index;
	fresh->ca = ca;
	ca = NULL;
	pthread_mutex_lock(&cs->lock);
	e = cache_find(cs, mesh, &slot);
	if (slot < CASTORE_MESHES_MAX) {
		fresh->next_all = cs->all;
		cs->all = fresh;
		cs->current[slot] = fresh;
		if (slot == cs->ncurrent)
			cs->ncurrent++;
	} else {
		out->owned = 1;
	}
	pthread_mutex_unlock(&cs->lock);
	out->e = fresh;
	rc = WEFT_OK;
out:
	ca_free(ca);
	json_decref(inter);
	if (db)
		store_read_end(db);
	return rc;
}

/* ---- making a mesh's CA ---- */

int castore_ensure(struct castore *cs, const char *mesh, char **err)
{
	struct store_write w = { .apply = castore_apply_put };
	struct castore_put *p = NULL;
	struct ca_state s;
	struct db *db;
	int rc;

	if ((db = store_read_begin(cs->store)) == NULL)
		return weft_errf(err, WEFT_EIO, "store: cannot open a read connection");
	rc = read_state(db, mesh, &s);
	store_read_end(db);
	if (rc != 0)
		return weft_errf(err, WEFT_EIO, "store: cannot read the CA of mesh %s", mesh);
	if (!s.has_mesh)
		return weft_errf(err, WEFT_ENOENT, "mesh \"%s\" does not exist", mesh);
	if (s.has_ca)
		return WEFT_OK;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
	snprintf(p->mesh, sizeof(p->mesh), "%s", mesh);
	p->create_only = 1;
	p->rotating = 1;
	snprintf(p->prov, sizeof(p->prov), "weft");
	p->r_leaf = DEFAULT_LEAF_TTL_MS;
	p->r_rotation = DEFAULT_ROTATION_MS;
	p->r_inter = DEFAULT_INTERMEDIATE_TTL_MS;
	if ((rc = new_root_make(cs, s.mesh_td, NULL, NULL, 0, NULL, 0, &p->nr, err)) != WEFT_OK)
		goto out;
	w.arg = p;
	rc = store_write_sync(cs->store, &w);
	if (rc != WEFT_OK) {
		weft_errf(err, rc, "%s", w.err ? w.err : "ca: cannot store the root");
		free(w.err);
	}
	json_decref(w.result);
out:
	castore_put_free(p);
	return rc;
}

int castore_put_prepare(struct castore *cs, struct castore_put *p, char **err)
{
	struct signer sg = { 0 };
	struct ca_state s;
	struct db *db;
	char id[CA_ID_LEN + 1];
	long long longest;
	int rc;

	if ((rc = castore_ensure(cs, p->mesh, err)) != WEFT_OK)
		return rc;
	if ((db = store_read_begin(cs->store)) == NULL)
		return weft_errf(err, WEFT_EIO, "store: cannot open a read connection");
	rc = read_state(db, p->mesh, &s);
	store_read_end(db);
	if (rc != 0 || !s.has_ca)
		return weft_errf(err, WEFT_EIO, "store: cannot read the CA of mesh %s", p->mesh);
	snprintf(p->expect_active, sizeof(p->expect_active), "%s", s.active);
	snprintf(p->prov, sizeof(p->prov), "%s", p->provider ? p->provider : s.provider);
	p->r_leaf = p->leaf_ms >= 0 ? p->leaf_ms : s.leaf_ms;
	p->r_rotation = p->rotation_ms >= 0 ? p->rotation_ms : s.rotation_ms;
	p->r_inter = p->inter_ms >= 0 ? p->inter_ms : s.inter_ms;
	p->r_fwc = p->fwc_set ? p->fwc : s.fwc;
	p->rotating = strcmp(p->prov, s.provider) != 0;
	if (strcmp(p->prov, "provided") == 0) {
		/* The active root again without its key (what a GET shows): unchanged. */
		if (p->root_cert && p->private_key == NULL &&
		    ca_cert_id(p->root_cert, id, NULL) == WEFT_OK && strcmp(id, s.active) == 0)
			p->root_cert = NULL;
		if (p->root_cert && p->private_key == NULL)
			return weft_errf(err, WEFT_EINVAL, "Config.PrivateKey: required with a new "
					 "Config.RootCert");
		if (p->private_key && p->root_cert == NULL)
			return weft_errf(err, WEFT_EINVAL, "Config.RootCert: required with Config.PrivateKey");
		if (p->root_cert) {
			if (ca_cert_id(p->root_cert, id, NULL) != WEFT_OK)
				return weft_errf(err, WEFT_EINVAL, "Config.RootCert: not a PEM certificate");
			if (strcmp(id, s.active) != 0)
				p->rotating = 1;
		} else if (p->rotating) {
			return weft_errf(err, WEFT_EINVAL, "Config.RootCert: required to switch to the "
					 "provided provider (with Config.PrivateKey)");
		}
		if (p->rotate && p->root_cert == NULL)
			return weft_errf(err, WEFT_EINVAL, "RotateRoot: a provided CA rotates to a new "
					 "Config.RootCert and Config.PrivateKey");
	} else {
		if (p->root_cert || p->private_key)
			return weft_errf(err, WEFT_EINVAL, "Config.RootCert: only with Provider \"provided\"");
		if (p->rotate)
			p->rotating = 1;
	}
	if (!p->rotating)
		return WEFT_OK;
	/* The old root (and leaves chaining to it) stays trusted for the longest
	 * leaf TTL; the cross-signed certificate lives at least as long. */
	longest = s.leaf_ms > p->r_leaf ? s.leaf_ms : p->r_leaf;
	p->remove_after_ms = store_now_ms(cs->store) + longest;
	if ((rc = get_signer(cs, p->mesh, &sg, err)) != WEFT_OK)
		return rc;
	if (strcmp(sg.e->id, s.active) != 0) {
		rc = weft_errf(err, WEFT_ECONFLICT, "ca: the active root of mesh \"%s\" changed "
			       "during this request; retry", p->mesh);
	} else {
		int64_t cross_s = 2 * longest / 1000 > CROSS_TTL_MIN_S ? 2 * longest / 1000
									: CROSS_TTL_MIN_S;
		rc = new_root_make(cs, s.mesh_td, p->root_cert, p->private_key,
				   p->root_ttl_ms > 0 ? p->root_ttl_ms / 1000 : 0, p->r_fwc ? NULL : sg.e->ca, cross_s, &p->nr, err);
	}
	if (sg.owned) {
		ca_free(sg.e->ca);
		free(sg.e);
	}
	return rc;
}

/* ---- reads ---- */

static json_t *rfc3339_json(int64_t s)
{
	char t[48];

	time_format_rfc3339(s * 1000, t, sizeof(t));
	return json_string(t);
}

json_t *castore_roots_json(struct db *db, const char *mesh, uint64_t *index)
{
	struct db_stmt *st = db_prep(db,
		"SELECT id, name, serial, signing_key_id, not_before, not_after, cert_pem,"
		" intermediates, active, create_index, modify_index, trust_domain, key_type, key_bits"
		" FROM ca_roots WHERE mesh = ? ORDER BY create_index, id");
	json_t *roots, *out;
	const char *active = NULL, *td = NULL;
	char *active_c = NULL, *td_c = NULL;

	*index = 0;
	if (st == NULL)
		return NULL;
	roots = json_array();
	db_bind_text(st, 1, mesh);
	while (db_step(st) == DB_ROW) {
		int is_active = (int)db_col_int(st, 8);
		uint64_t mi = (uint64_t)db_col_int(st, 10);

		if (mi > *index)
			*index = mi;
		if (is_active && active_c == NULL) {
			active_c = strdup(db_col_text(st, 0));
			td_c = strdup(db_col_text(st, 11));
		}
		json_array_append_new(roots, json_pack(
			"{s:s, s:s, s:I, s:s, s:s, s:o, s:o, s:s, s:o, s:b, s:s, s:i, s:I, s:I}",
			"ID", db_col_text(st, 0), "Name", db_col_text(st, 1),
			"SerialNumber", (json_int_t)db_col_int(st, 2),
			"SigningKeyID", db_col_text(st, 3), "ExternalTrustDomain", db_col_text(st, 11),
			"NotBefore", rfc3339_json(db_col_int(st, 4)),
			"NotAfter", rfc3339_json(db_col_int(st, 5)),
			"RootCert", db_col_text(st, 6),
			"IntermediateCerts", jx_load_or(db_col_text(st, 7), JSON_ARRAY),
			"Active", is_active, "PrivateKeyType", db_col_text(st, 12),
			"PrivateKeyBits", (int)db_col_int(st, 13),
			"CreateIndex", (json_int_t)db_col_int(st, 9), "ModifyIndex", (json_int_t)mi));
	}
	db_done(st);
	if (active_c == NULL) {
		json_decref(roots);
		free(td_c);
		return NULL;
	}
	active = active_c;
	td = td_c;
	out = json_pack("{s:s, s:s, s:o}", "ActiveRootID", active, "TrustDomain", td ? td : "",
			"Roots", roots);
	free(active_c);
	free(td_c);
	return out;
}

char *castore_roots_pem(struct db *db, const char *mesh)
{
	struct db_stmt *st = db_prep(db, "SELECT cert_pem, intermediates FROM ca_roots WHERE mesh = ?"
				     " ORDER BY create_index, id");
	struct buf b;
	json_t *inter, *v;
	size_t i;

	if (st == NULL)
		return NULL;
	buf_init(&b, 8u * CA_PEM_MAX);
	db_bind_text(st, 1, mesh);
	while (db_step(st) == DB_ROW) {
		const char *pem = db_col_text(st, 0);
		buf_printf(&b, "%s%s", pem, pem[0] && pem[strlen(pem) - 1] != '\n' ? "\n" : "");
		inter = jx_load_or(db_col_text(st, 1), JSON_ARRAY);
		json_array_foreach(inter, i, v) {
			const char *s = json_string_value(v);
			if (s)
				buf_printf(&b, "%s%s", s, s[0] && s[strlen(s) - 1] != '\n' ? "\n" : "");
		}
		json_decref(inter);
	}
	db_done(st);
	buf_append(&b, "", 1);
	return buf_steal(&b);
}

json_t *castore_config_json(struct db *db, const char *mesh)
{
	struct db_stmt *st = db_prep(db,
		"SELECT c.provider, c.leaf_ttl_ms, c.rotation_ms, c.intermediate_ttl_ms,"
		" c.force_without_cross_signing, c.create_index, c.modify_index, r.cert_pem,"
		" r.key_type, r.key_bits FROM ca_config c"
		" LEFT JOIN ca_roots r ON r.mesh = c.mesh AND r.active = 1 WHERE c.mesh = ?");
	char leaf[32], rot[32], inter[32];
	json_t *out = NULL, *cfg;

	if (st == NULL)
		return NULL;
	db_bind_text(st, 1, mesh);
	if (db_step(st) == DB_ROW) {
		const char *prov = db_col_text(st, 0);
		duration_format(db_col_int(st, 1), leaf, sizeof(leaf));
		duration_format(db_col_int(st, 2), rot, sizeof(rot));
		duration_format(db_col_int(st, 3), inter, sizeof(inter));
		cfg = json_pack("{s:s, s:s, s:s, s:s, s:i}", "LeafCertTTL", leaf, "RotationPeriod", rot,
				"IntermediateCertTTL", inter,
				"PrivateKeyType", db_col_text(st, 8) ? db_col_text(st, 8) : "ec",
				"PrivateKeyBits", (int)db_col_int(st, 9));
		/* The provided root's certificate, never its key. */
		if (strcmp(prov, "provided") == 0 && db_col_text(st, 7))
			json_object_set_new(cfg, "RootCert", json_string(db_col_text(st, 7)));
		out = json_pack("{s:s, s:o, s:b, s:I, s:I}", "Provider", prov, "Config", cfg,
				"ForceWithoutCrossSigning", (int)db_col_int(st, 4),
				"CreateIndex", (json_int_t)db_col_int(st, 5),
				"ModifyIndex", (json_int_t)db_col_int(st, 6));
	}
	db_done(st);
	return out;
}

/* ---- signing ---- */

static void count(struct castore *cs, const char *mesh, int ok)
{
	size_t i;

	pthread_mutex_lock(&cs->lock);
	for (i = 0; i < cs->nstats && strcmp(cs->stats[i].mesh, mesh) != 0; i++)
		;
	if (i == cs->nstats && i < CASTORE_MESHES_MAX && mesh_name_valid(mesh)) {
		snprintf(cs->stats[i].mesh, sizeof(cs->stats[i].mesh), "%s", mesh);
		cs->nstats++;
	}
	if (i < cs->nstats) {
		if (ok)
			cs->stats[i].signed_n++;
		else
			cs->stats[i].errors++;
	} else if (!ok) {
		cs->errors_other++;
	}
	pthread_mutex_unlock(&cs->lock);
}

int castore_sign(struct castore *cs, const char *mesh, const char *service, const char *csr,
		 size_t csr_len, json_t **out, char **err)
{
	struct signer sg = { 0 };
	struct ca_leaf leaf = { 0 };
	char *uri = NULL;
	int rc;

	*out = NULL;
	if ((rc = get_signer(cs, mesh, &sg, err)) != WEFT_OK)
		goto out;
	if ((rc = ca_spiffe_service_uri(sg.td, mesh, cs->zone, service, &uri, err)) != WEFT_OK)
		goto out;
	rc = ca_sign_leaf(sg.e->ca, csr, csr_len, service, uri,
			  sg.leaf_ms / 1000 > 0 ? sg.leaf_ms / 1000 : 1, 0, &leaf, err);
	if (rc != WEFT_OK)
		goto out;
	*out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}",
			 "SerialNumber", leaf.serial, "CertPEM", leaf.cert_pem,
			 "ChainPEM", leaf.chain_pem, "Service", service, "ServiceURI", leaf.service_uri,
			 "ValidAfter", leaf.valid_after, "ValidBefore", leaf.valid_before,
			 "CreateIndex", (json_int_t)sg.modify_index,
			 "ModifyIndex", (json_int_t)sg.modify_index);
	if (*out == NULL)
		rc = weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
out:
	if (rc != WEFT_ENOENT)
		count(cs, mesh, rc == WEFT_OK);
	if (sg.owned) {
		ca_free(sg.e->ca);
		free(sg.e);
	}
	ca_leaf_clear(&leaf);
	free(uri);
	return rc;
}

/* ---- removal of rotated-out roots ---- */

struct prune {
	int64_t now_ms;
	size_t n;
	char mesh[PRUNE_BATCH][MESH_NAME_MAX + 1];
	char id[PRUNE_BATCH][CA_ID_LEN + 1];
	size_t removed;
};

static int apply_prune(struct db *db, uint64_t index, struct store_write *w,
		       struct store_changes *ch)
{
	struct prune *p = w->arg;
	struct db_stmt *st;

	(void)index;
	p->removed = 0;
	for (size_t i = 0; i < p->n; i++) {
		st = db_prep(db, "DELETE FROM ca_roots WHERE mesh = ? AND id = ? AND active = 0"
				 " AND remove_after_ms > 0 AND remove_after_ms <= ?");
		if (st == NULL)
			return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		db_bind_text(st, 1, p->mesh[i]);
		db_bind_text(st, 2, p->id[i]);
		db_bind_int(st, 3, p->now_ms);
		if (db_step(st) != DB_DONE) {
			db_done(st);
			return weft_errf(&w->err, WEFT_EIO, "store: %s", db_errmsg(db));
		}
		db_done(st);
		if (db_changes(db) > 0) {
			p->removed++;
			changes_add(ch, "ca:%s", p->mesh[i]);
			log_info("ca", "rotated-out root removed mesh=%s id=%s", p->mesh[i], p->id[i]);
		}
	}
	return WEFT_OK;
}

int castore_prune(struct castore *cs, int64_t now_ms)
{
	struct store_write w = { .apply = apply_prune };
	struct prune *p = calloc(1, sizeof(*p));
	struct db_stmt *st;
	struct db *db;
	int rc = 0;

	if (p == NULL || (db = store_read_begin(cs->store)) == NULL) {
		free(p);
		return -1;
	}
	p->now_ms = now_ms;
	st = db_prep(db, "SELECT mesh, id FROM ca_roots WHERE active = 0 AND remove_after_ms > 0"
			 " AND remove_after_ms <= ? LIMIT 64");
	if (st) {
		db_bind_int(st, 1, now_ms);
		while (p->n < PRUNE_BATCH && db_step(st) == DB_ROW) {
			snprintf(p->mesh[p->n], sizeof(p->mesh[0]), "%s", db_col_text(st, 0));
			snprintf(p->id[p->n], sizeof(p->id[0]), "%s", db_col_text(st, 1));
			p->n++;
		}
		db_done(st);
	}
	store_read_end(db);
	if (p->n > 0) {
		w.arg = p;
		if (store_write_sync(cs->store, &w) == WEFT_OK) {
			rc = (int)p->removed;
		} else {
			log_warnx("ca", "cannot remove rotated-out roots error=\"%s\"", w.err ? w.err : "?");
			rc = -1;
		}
		free(w.err);
		json_decref(w.result);
	}
	free(p);
	return rc;
}

static void *prune_thread(void *arg)
{
	struct castore *cs = arg;
	struct timespec ts;

	pthread_mutex_lock(&cs->lock);
	while (!cs->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)CASTORE_PRUNE_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&cs->cond, &cs->lock, &ts);
		if (cs->stopping)
			break;
		pthread_mutex_unlock(&cs->lock);
		castore_prune(cs, store_now_ms(cs->store));
		pthread_mutex_lock(&cs->lock);
	}
	pthread_mutex_unlock(&cs->lock);
	return NULL;
}

/* ---- life cycle ---- */

int castore_open(struct castore **out, struct store *store, const char *data_dir,
		 const char *zone, char **err)
{
	struct castore *cs = calloc(1, sizeof(*cs));
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	if (cs == NULL)
		return weft_errf(err, WEFT_ENOMEM, "ca: out of memory");
	cs->store = store;
	snprintf(cs->zone, sizeof(cs->zone), "%s", zone);
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->cond, NULL);
	snprintf(path, sizeof(path), "%s/%s", data_dir, CASTORE_KEY_FILE);
	if ((rc = sealed_key_open_or_create(&cs->sk, path, err)) != WEFT_OK)
		goto fail;
	if ((rc = castore_ensure(cs, MESH_DEFAULT, err)) != WEFT_OK)
		goto fail;
	if (pthread_create(&cs->thread, NULL, prune_thread, cs) != 0) {
		rc = weft_errf(err, WEFT_EIO, "ca: cannot start the root removal thread");
		goto fail;
	}
	cs->started = 1;
	*out = cs;
	return WEFT_OK;
fail:
	castore_close(cs);
	return rc;
}

void castore_close(struct castore *cs)
{
	struct ca_entry *e, *next;

	if (cs == NULL)
		return;
	if (cs->started) {
		pthread_mutex_lock(&cs->lock);
		cs->stopping = 1;
		pthread_cond_signal(&cs->cond);
		pthread_mutex_unlock(&cs->lock);
		pthread_join(cs->thread, NULL);
	}
	for (e = cs->all; e; e = next) {
		next = e->next_all;
		ca_free(e->ca);
		free(e);
	}
	sealed_key_free(cs->sk);
	pthread_cond_destroy(&cs->cond);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}

/* ---- metrics ---- */

void castore_metrics(struct castore *cs, struct buf *out)
{
	struct db *db;
	struct db_stmt *st;
	int64_t now_s;

	if (cs == NULL)
		return;
	buf_printf(out, "# HELP weft_ca_leaves_signed_total Leaf certificates signed, by mesh.\n"
			"# TYPE weft_ca_leaves_signed_total counter\n");
	pthread_mutex_lock(&cs->lock);
	for (size_t i = 0; i < cs->nstats; i++)
		buf_printf(out, "weft_ca_leaves_signed_total{mesh=\"%s\"} %llu\n", cs->stats[i].mesh,
			   (unsigned long long)cs->stats[i].signed_n);
	buf_printf(out, "# HELP weft_ca_sign_errors_total Refused or failed leaf signatures, by mesh.\n"
			"# TYPE weft_ca_sign_errors_total counter\n");
	for (size_t i = 0; i < cs->nstats; i++)
		buf_printf(out, "weft_ca_sign_errors_total{mesh=\"%s\"} %llu\n", cs->stats[i].mesh,
			   (unsigned long long)cs->stats[i].errors);
	if (cs->errors_other)
		buf_printf(out, "weft_ca_sign_errors_total{mesh=\"\"} %llu\n",
			   (unsigned long long)cs->errors_other);
	pthread_mutex_unlock(&cs->lock);
	if ((db = store_read_begin(cs->store)) == NULL)
		return;
	now_s = store_now_ms(cs->store) / 1000;
	st = db_prep(db, "SELECT mesh, not_after, chain_not_after FROM ca_roots WHERE active = 1"
			 " ORDER BY mesh");
	if (st) {
		struct buf inter;

		buf_init(&inter, 1 << 20);
		buf_printf(out, "# HELP weft_ca_root_expiry_seconds Seconds until the active root "
				"expires, by mesh.\n# TYPE weft_ca_root_expiry_seconds gauge\n");
		buf_printf(&inter, "# HELP weft_ca_intermediate_expiry_seconds Seconds until the "
				   "earliest certificate of the chain given with leaves expires, by mesh.\n"
				   "# TYPE weft_ca_intermediate_expiry_seconds gauge\n");
		while (db_step(st) == DB_ROW) {
			buf_printf(out, "weft_ca_root_expiry_seconds{mesh=\"%s\"} %lld\n",
				   db_col_text(st, 0), (long long)(db_col_int(st, 1) - now_s));
			if (db_col_int(st, 2) > 0)
				buf_printf(&inter, "weft_ca_intermediate_expiry_seconds{mesh=\"%s\"} %lld\n",
					   db_col_text(st, 0), (long long)(db_col_int(st, 2) - now_s));
		}
		db_done(st);
		buf_append(out, inter.data, inter.len);
		buf_free(&inter);
	}
	store_read_end(db);
}

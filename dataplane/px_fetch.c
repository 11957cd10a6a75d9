/* The snapshot from weft-server, long-polled by a thread (px_fetch.h). */
#include "px_fetch.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "jsonx.h"
#include "log.h"
#include "px_httpget.h"
#include "util.h"

#define TOKEN_FILE_MAX 4096
#define FIRST_TRY_TIMEOUT_MS 10000

struct px_fetch {
	struct px_fetch_opts o;
	struct px_httpget *http;
	char *path;                 /* /v1/weft/proxy/<escaped id>/snapshot */
	char *first_path;           /* the same, ?version=<the one this proxy speaks> */
	char *tmp_dir;              /* when bundle_file was not given */
	char *bundle_path;
	char *bundle_pem;           /* what bundle_path holds */
	char *last_body;            /* the last snapshot as received */
	uint64_t index;
	uint64_t rng;
	pthread_t thread;
	int started;
	atomic_int stopping;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/* The private bundle directory, removed at exit too (fatalx exits without
 * px_fetch_free). One proxy has one px_fetch. */
static char exit_dir[PATH_MAX];

static void remove_exit_dir(void)
{
	char path[PATH_MAX + 32];

	if (exit_dir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/trust-bundle.pem", exit_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/trust-bundle.pem.tmp", exit_dir);
	unlink(path);
	rmdir(exit_dir);
	exit_dir[0] = '\0';
}

static uint64_t rnd(struct px_fetch *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return f->rng;
}

/* The next backoff: d (doubled each time, capped), jittered to [d/2, d]. */
static long backoff_next(struct px_fetch *f, long *d)
{
	long cur = *d, j;

	*d = cur * 2 > PX_FETCH_BACKOFF_MAX_MS ? PX_FETCH_BACKOFF_MAX_MS : cur * 2;
	j = cur / 2 + (long)(rnd(f) % (uint64_t)(cur / 2 + 1));
	return j;
}

/* Sleeps ms, or less when stopping. */
static void nap(struct px_fetch *f, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->lock);
	while (!atomic_load(&f->stopping) &&
	       pthread_cond_timedwait(&f->cond, &f->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&f->lock);
}

int px_fetch_read_token(const char *path, char **token, char **err)
{
	struct stat st;
	size_t len = 0;
	char *t, *s, *e;

	*token = NULL;
	if (stat(path, &st) != 0)
		return weft_errf(err, WEFT_EIO, "--token-file: %s: %s", path, strerror(errno));
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_warnx("proxy", "--token-file: %s is readable by others (mode %03o): chmod 600 it",
			  path, (unsigned)(st.st_mode & 0777));
	if ((t = file_read_all(path, TOKEN_FILE_MAX, &len)) == NULL)
		return weft_errf(err, WEFT_EIO, "--token-file: %s: cannot read it (or larger than %d "
				 "bytes)", path, TOKEN_FILE_MAX);
	for (s = t; *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'; s++)
		;
	for (e = s; *e && *e != '\n' && *e != '\r'; e++)
		;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = '\0';
	if (*s == '\0') {
		free(t);
		return weft_errf(err, WEFT_EINVAL, "--token-file: %s is empty", path);
	}
	*token = strdup(s);
	free(t);
	return *token ? WEFT_OK : weft_errf(err, WEFT_ENOMEM, "out of memory");
}

int px_fetch_new(struct px_fetch **out, const struct px_fetch_opts *o, char **err)
{
	struct px_httpget_opts ho = { 0 };
	struct px_fetch *f;
	char *id = NULL;
	int rc;

	*out = NULL;
	if (o->server == NULL || o->proxy_id == NULL || o->proxy_id[0] == '\0' || o->slot == NULL)
		return weft_errf(err, WEFT_EINVAL, "--server: give --proxy-id too");
	if ((o->cert_file == NULL) != (o->key_file == NULL))
		return weft_errf(err, WEFT_EINVAL, "--cert and --key: give both or neither");
	if ((o->cert_file && o->cert_file[0] != '/') || (o->key_file && o->key_file[0] != '/') ||
	    (o->bundle_file && o->bundle_file[0] != '/'))
		return weft_errf(err, WEFT_EINVAL, "--cert, --key, --trust-bundle: give absolute paths "
				 "(the snapshot refers to them)");
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	f->o = *o;
	if (f->o.wait_s <= 0)
		f->o.wait_s = PX_FETCH_WAIT_S;
	f->rng = (uint64_t)now_mono_ms() * 2654435761u ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ULL;
	pthread_mutex_init(&f->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&f->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	ho.address = o->server;
	ho.token = o->token;
	ho.ca_file = o->ca_file;
	ho.max_body = PX_CONFIG_MAX_BYTES;
	if ((rc = px_httpget_new(&f->http, &ho, err)) != WEFT_OK)
		goto fail;
	id = px_httpget_escape(o->proxy_id);
	if (id == NULL || asprintf(&f->path, "/v1/weft/proxy/%s/snapshot", id) < 0) {
		f->path = NULL;
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto fail;
	}
	free(id);
	id = NULL;
	/* Every request says which format version this proxy speaks: the
	 * server answers in it (docs/proxy-config.md "Versions"). */
	if (asprintf(&f->first_path, "%s?version=%d", f->path, PX_CONFIG_VERSION) < 0) {
		f->first_path = NULL;
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto fail;
	}
	if (o->bundle_file) {
		f->bundle_path = strdup(o->bundle_file);
	} else {
		const char *tmp = getenv("TMPDIR");
		char tmpl[PATH_MAX];

		snprintf(tmpl, sizeof(tmpl), "%s/weft-proxy-XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
		if (mkdtemp(tmpl) == NULL) {
			rc = weft_errf(err, WEFT_EIO, "trust bundle: cannot make a directory %s: %s", tmpl,
				       strerror(errno));
			goto fail;
		}
		f->tmp_dir = strdup(tmpl);
		if (f->tmp_dir && asprintf(&f->bundle_path, "%s/trust-bundle.pem", tmpl) < 0)
			f->bundle_path = NULL;
		if (exit_dir[0] == '\0') {
			static int registered;

			snprintf(exit_dir, sizeof(exit_dir), "%s", tmpl);
			if (!registered && atexit(remove_exit_dir) == 0)
				registered = 1;
		}
	}
	if (f->bundle_path == NULL) {
		rc = weft_errf(err, WEFT_ENOMEM, "out of memory");
		goto fail;
	}
	*out = f;
	return WEFT_OK;
fail:
	free(id);
	px_fetch_free(f);
	return rc;
}

/* Makes the snapshot the proxy loads from what the server sent: the leaf
 * and key files, the trust bundle as a file. *bundle_changed when it was
 * rewritten. NULL with *err when the body is not a JSON object or the
 * bundle cannot be written. */
static char *localize(struct px_fetch *f, const char *body, size_t len, int *bundle_changed,
		      char **err)
{
	json_error_t je;
	json_t *doc = json_loadb(body, len, 0, &je), *tls, *tb;
	const char *pem;
	char *out = NULL;

	*bundle_changed = 0;
	if (!json_is_object(doc)) {
		weft_errf(err, WEFT_EINVAL, "snapshot: not a JSON object: %s", doc ? "" : je.text);
		goto out;
	}
	tls = jx_field(doc, "TLS");
	if (tls == NULL || json_is_null(tls)) {
		out = jx_dump(doc);
		goto out;
	}
	if (!json_is_object(tls)) {
		out = jx_dump(doc);   /* the decoder says what is wrong */
		goto out;
	}
	if (f->o.cert_file && jx_field(tls, "Certificate") == NULL && jx_field(tls, "PrivateKey") == NULL) {
		json_object_set_new(tls, "Certificate", json_pack("{s:s}", "File", f->o.cert_file));
		json_object_set_new(tls, "PrivateKey", json_pack("{s:s}", "File", f->o.key_file));
	}
	tb = jx_field(tls, "TrustBundle");
	pem = json_string_value(jx_field(tb, "PEM"));
	if (pem && pem[0] && json_object_size(tb) == 1 && strlen(pem) <= PX_CONFIG_PEM_MAX &&
	    strstr(pem, "-----BEGIN CERTIFICATE-----") && !strstr(pem, "PRIVATE KEY-----")) {
		if (f->bundle_pem == NULL || strcmp(f->bundle_pem, pem) != 0) {
			if (file_write_all(f->bundle_path, pem, strlen(pem), 0644) != 0) {
				weft_errf(err, WEFT_EIO, "trust bundle: cannot write %s: %s", f->bundle_path,
					  strerror(errno));
				goto out;
			}
			free(f->bundle_pem);
			f->bundle_pem = strdup(pem);
			*bundle_changed = 1;
		}
		json_object_set_new(tb, "File", json_string(f->bundle_path));
		json_object_del(tb, "PEM");
	}
	out = jx_dump(doc);
out:
	json_decref(doc);
	return out;
}

/* Loads a snapshot body; 0 when it became current (or was the same as the
 * last one received), -1 with *err naming the field otherwise. */
static int load(struct px_fetch *f, const char *body, size_t len, int *changed, int *bundle_changed,
		char **err)
{
	char *local;
	int rc;

	*changed = 0;
	*bundle_changed = 0;
	if (f->last_body && strlen(f->last_body) == len && memcmp(f->last_body, body, len) == 0)
		return 0;
	/* Remembered whatever the outcome: the same body again (a server
	 * answering a blocking query as it stops) is neither reloaded nor
	 * refused a second time. */
	free(f->last_body);
	f->last_body = strndup(body, len);
	if ((local = localize(f, body, len, bundle_changed, err)) == NULL)
		return -1;
	rc = px_config_slot_load(f->o.slot, local, strlen(local), err);
	free(local);
	if (rc != WEFT_OK)
		return -1;
	*changed = 1;
	return 0;
}

static void log_loaded(struct px_fetch *f, const char *what)
{
	struct px_config *c = px_config_slot_get(f->o.slot);

	if (c == NULL)
		return;
	log_info("proxy", "%s: server=%s proxy-id=%s index=%llu upstreams=%zu intentions=%zu "
		 "default=%s", what, px_httpget_display(f->http), f->o.proxy_id,
		 (unsigned long long)c->index, c->n_upstreams, intention_set_count(c->intentions),
		 c->default_action == INTENTION_ALLOW ? "allow" : "deny");
	px_config_unref(c);
}

int px_fetch_first(struct px_fetch *f, long timeout_ms, char **err)
{
	int64_t deadline = now_mono_ms() + timeout_ms;
	long delay = PX_FETCH_BACKOFF_MIN_MS;
	char *last = NULL;
	int rc = WEFT_EIO;

	for (;;) {
		struct px_httpget_resp resp = { 0 };
		char *e = NULL;
		int64_t left = deadline - now_mono_ms();
		int changed, bchanged;

		rc = px_httpget_get(f->http, f->first_path,
				   left < FIRST_TRY_TIMEOUT_MS ? (left > 100 ? (long)left : 100)
							       : FIRST_TRY_TIMEOUT_MS,
				   &resp, &e);
		if (rc == WEFT_OK && resp.status == 200) {
			if (load(f, resp.body ? resp.body : "", resp.len, &changed, &bchanged, &e) != 0) {
				rc = weft_errf(err, WEFT_EINVAL, "snapshot from %s refused: %s",
					       px_httpget_display(f->http), e ? e : "?");
				free(e);
				px_httpget_resp_free(&resp);
				break;
			}
			f->index = resp.index;
			px_httpget_resp_free(&resp);
			rc = WEFT_OK;
			break;
		}
		if (rc == WEFT_OK) {
			char *msg = px_httpget_error_message(&resp);
			long st = resp.status;

			px_httpget_resp_free(&resp);
			free(last);
			if (asprintf(&last, "%s answered %ld: %s", px_httpget_display(f->http), st,
				     msg ? msg : "") < 0)
				last = NULL;
			free(msg);
			if (st == 400 || st == 401 || st == 403) {
				rc = weft_errf(err, st == 400 ? WEFT_EINVAL : WEFT_EPERM,
					       "snapshot of proxy %s: %s%s", f->o.proxy_id,
					       last ? last : "refused",
					       st == 400 ? "" : " (check --token or --token-file)");
				break;
			}
			rc = WEFT_EIO;
		} else {
			px_httpget_resp_free(&resp);
			if (rc == WEFT_ESHUTDOWN) {
				free(e);
				rc = weft_errf(err, WEFT_ESHUTDOWN, "stopped before the first snapshot");
				break;
			}
			free(last);
			last = e;
			e = NULL;
		}
		free(e);
		left = deadline - now_mono_ms();
		if (left <= 0) {
			rc = weft_errf(err, WEFT_EIO, "no snapshot for proxy %s within %ld ms: %s",
				       f->o.proxy_id, timeout_ms, last ? last : "no answer");
			break;
		}
		{
			long d = backoff_next(f, &delay);

			nap(f, d < left ? d : (long)left);
		}
	}
	free(last);
	if (rc == WEFT_OK) {
		struct px_config *c = px_config_slot_get(f->o.slot);
		int leafless = c && c->tls.configured && c->tls.certificate.pem == NULL &&
			       c->tls.certificate.file == NULL;

		px_config_unref(c);
		if (leafless)
			return weft_errf(err, WEFT_EINVAL, "snapshot of proxy %s: TLS: the mesh uses mTLS "
					 "and the server sends no key: give --cert and --key",
					 f->o.proxy_id);
		log_loaded(f, "config from server");
	}
	return rc;
}

static void *fetch_main(void *arg)
{
	struct px_fetch *f = arg;
	long delay = PX_FETCH_BACKOFF_MIN_MS;
	int failing = 0;
	char *path = NULL, *last_err = NULL;

	while (!atomic_load(&f->stopping)) {
		struct px_httpget_resp resp = { 0 };
		char *e = NULL;
		int rc, changed = 0, bchanged = 0;

		free(path);
		if (asprintf(&path, "%s?index=%llu&wait=%lds&version=%d", f->path,
			     (unsigned long long)f->index, f->o.wait_s, PX_CONFIG_VERSION) < 0) {
			path = NULL;
			nap(f, backoff_next(f, &delay));
			continue;
		}
		rc = px_httpget_get(f->http, path,
				   (f->o.wait_s + f->o.wait_s / 16 + 30) * 1000L, &resp, &e);
		if (atomic_load(&f->stopping) || rc == WEFT_ESHUTDOWN) {
			px_httpget_resp_free(&resp);
			free(e);
			break;
		}
		if (rc == WEFT_OK && resp.status == 200) {
			if (failing)
				log_info("proxy", "server reachable again: %s", px_httpget_display(f->http));
			failing = 0;
			free(last_err);
			last_err = NULL;
			delay = PX_FETCH_BACKOFF_MIN_MS;
			/* An index that went backwards (a server with other data):
			 * start over, as Consul's clients do, and take its
			 * snapshot although its Index is older than ours. */
			if (resp.index < f->index) {
				log_warnx("proxy", "config from server: its index went back from %llu to "
					  "%llu (its data was reset?): following it",
					  (unsigned long long)f->index, (unsigned long long)resp.index);
				px_config_slot_forget_index(f->o.slot);
			}
			f->index = resp.index;
			if (load(f, resp.body ? resp.body : "", resp.len, &changed, &bchanged, &e) != 0) {
				log_warnx("proxy", "config from server refused: server=%s error=\"%s\" (the "
					  "previous snapshot stays in force)", px_httpget_display(f->http),
					  e ? e : "?");
			} else if (changed) {
				struct px_config *c = px_config_slot_get(f->o.slot);

				log_loaded(f, "config from server");
				if (f->o.on_load && c)
					f->o.on_load(f->o.arg, c, bchanged);
				px_config_unref(c);
			}
			px_httpget_resp_free(&resp);
			free(e);
			continue;
		}
		if (rc == WEFT_OK) {
			char *msg = px_httpget_error_message(&resp), *line = NULL;

			/* One line per distinct answer, not one per retry. */
			if (asprintf(&line, "%s answered %ld: %s", px_httpget_display(f->http), resp.status,
				     msg ? msg : "") < 0)
				line = NULL;
			if (line && (last_err == NULL || strcmp(line, last_err) != 0)) {
				log_warnx("proxy", "config from server: %s (keeping the current snapshot; "
					  "retrying)", line);
				free(last_err);
				last_err = line;
				line = NULL;
			}
			free(line);
			free(msg);
			f->index = 0;
		} else if (!failing) {
			log_warnx("proxy", "config from server: %s (keeping the current snapshot; "
				  "retrying)", e ? e : "transport error");
		}
		failing = 1;
		px_httpget_resp_free(&resp);
		free(e);
		nap(f, backoff_next(f, &delay));
	}
	free(path);
	free(last_err);
	return NULL;
}

int px_fetch_start(struct px_fetch *f, char **err)
{
	if (pthread_create(&f->thread, NULL, fetch_main, f) != 0)
		return weft_errf(err, WEFT_EIO, "cannot start the snapshot thread: %s", strerror(errno));
	f->started = 1;
	return WEFT_OK;
}

void px_fetch_free(struct px_fetch *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	atomic_store(&f->stopping, 1);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	px_httpget_interrupt(f->http);   /* a long poll in progress ends at once */
	if (f->started)
		pthread_join(f->thread, NULL);
	if (f->tmp_dir) {
		if (f->bundle_path)
			unlink(f->bundle_path);
		rmdir(f->tmp_dir);
		if (strcmp(exit_dir, f->tmp_dir) == 0)
			exit_dir[0] = '\0';
	}
	px_httpget_free(f->http);
	free(f->path);
	free(f->first_path);
	free(f->tmp_dir);
	free(f->bundle_path);
	free(f->bundle_pem);
	free(f->last_body);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

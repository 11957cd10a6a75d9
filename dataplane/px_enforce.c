/* px_enforce: inbound intentions enforcement (px_enforce.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "intention.h"
#include "log.h"
#include "px_enforce.h"
#include "px_stats.h"

#define LOG_VALUE_MAX 256   /* bytes of a peer-sent value in a log line */
#define LABEL_KEEP (PX_ENFORCE_LABEL_MAX - 1)  /* what a counter label keeps */

struct px_enforce {
	struct px_config_slot *slot;
	struct px_stats *stats;       /* /stats counts denials too; may be NULL */
	int http;
	pthread_mutex_t lock;
	struct px_denial_count *c;
	size_t n, cap;
};

static void label(const struct px_authz *a, const struct intention *ix, char *out, size_t size)
{
	if (a->reason != PX_AUTHZ_INTENTIONS)
		snprintf(out, size, "%s", px_authz_reason_string(a->reason));
	else if (ix == NULL)
		snprintf(out, size, "default");
	else if (intention_id(ix)[0] != '\0')
		snprintf(out, size, "%s", intention_id(ix));
	else
		snprintf(out, size, "%s/%s > %s/%s", intention_source_ns(ix), intention_source_name(ix),
			 intention_destination_ns(ix), intention_destination_name(ix));
}

void px_enforce_label(const struct px_authz *a, char *out, size_t size)
{
	const struct intention *ix = a->decision.intention;

	label(a, ix, out, size);
	/* IDs and names come from the snapshot: keep the header and log line
	 * safe whatever they hold */
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\')
			*p = '?';
}

int px_enforce_new(struct px_enforce **out, struct px_config_slot *slot, int http, char **err)
{
	struct px_enforce *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return weft_errf(err, WEFT_ENOMEM, "px_enforce: out of memory");
	e->slot = slot;
	e->http = http;
	pthread_mutex_init(&e->lock, NULL);
	*out = e;
	return WEFT_OK;
}

void px_enforce_free(struct px_enforce *e)
{
	if (e == NULL)
		return;
	pthread_mutex_destroy(&e->lock);
	free(e->c);
	free(e);
}

/* A peer-sent value for a log line: printable ASCII but '"' and '\',
 * others as \xNN, at most LOG_VALUE_MAX input bytes. */
static void log_safe(const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0;

	if (len > LOG_VALUE_MAX)
		len = LOG_VALUE_MAX;
	for (size_t i = 0; i < len && o + 5 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", ch);
	}
	out[o] = '\0';
}

static void copy_label(char *dst, size_t size, const char *src)
{
	size_t len = strnlen(src, size - 1);

	memcpy(dst, src, len);
	dst[len] = '\0';
}

static struct px_denial_count *find(struct px_enforce *e, const char *src, const char *dst,
				     const char *ix)
{
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->c[i].source, src, LABEL_KEEP) == 0 &&
		    strncmp(e->c[i].destination, dst, LABEL_KEEP) == 0 &&
		    strncmp(e->c[i].intention, ix, LABEL_KEEP) == 0)
			return &e->c[i];
	return NULL;
}

static void count(struct px_enforce *e, const char *src, const char *dst, const char *ix)
{
	struct px_denial_count *d = NULL;

	if (e->stats)
		px_stats_denial(e->stats, src, dst, strcmp(ix, "default") == 0 ? "" : ix);

	pthread_mutex_lock(&e->lock);
	d = find(e, src, dst, ix);
	if (d == NULL && e->n >= PX_ENFORCE_COUNTERS_MAX) {
		/* the table is full: new label sets share one row */
		src = dst = ix = "_other";
		d = find(e, src, dst, ix);
	}
	if (d == NULL) {
		if (e->n == e->cap) {
			size_t cap = e->cap ? e->cap * 2 : 16;
			struct px_denial_count *c;

			if (cap > PX_ENFORCE_COUNTERS_MAX + 1)
				cap = PX_ENFORCE_COUNTERS_MAX + 1;
			c = realloc(e->c, cap * sizeof(*c));
			if (c == NULL)
				goto out;
			e->c = c;
			e->cap = cap;
		}
		d = &e->c[e->n++];
		memset(d, 0, sizeof(*d));
		copy_label(d->source, sizeof(d->source), src);
		copy_label(d->destination, sizeof(d->destination), dst);
		copy_label(d->intention, sizeof(d->intention), ix);
	}
	if (d != NULL)
		d->count++;
out:
	pthread_mutex_unlock(&e->lock);
}

/* The path of a request-target: origin-form as is, absolute-form from the
 * '/' after the authority ("/" if none), asterisk-form "*". */
static const char *target_path(const char *t)
{
	const char *p;

	if (t[0] == '/' || strcmp(t, "*") == 0)
		return t;
	p = strstr(t, "://");
	if (p == NULL)
		return t;      /* authority-form (CONNECT): matches no path rule */
	p = strchr(p + 3, '/');
	return p ? p : "/";
}

int px_enforce_authorize(void *ud, const char *peer_id, const struct px_request_info *req,
			 char *denied_by, size_t denied_by_size)
{
	struct px_enforce *e = ud;
	struct px_config *cfg;
	struct intention_header *hs = NULL;
	struct intention_call call = {0};
	struct px_authz a;
	char *line = NULL, *names = NULL, *sp;
	char label[PX_ENFORCE_LABEL_MAX], src[LOG_VALUE_MAX * 4 + 1], what[1200];
	const char *reason;
	bool oom = false;
	int rc = -1;

	if (req == NULL && e->http)
		return 0;  /* decided per request */
	cfg = px_config_slot_get(e->slot);
	if (cfg == NULL) {
		/* no snapshot yet: nothing is allowed */
		log_safe(peer_id ? peer_id : "", peer_id ? strlen(peer_id) : 0, src, sizeof(src));
		log_warnx("proxy", "denied: source=\"%s\" destination=\"\" intention=\"no-config\" "
			  "reason=\"no-config\" layer=%d", src, req ? 7 : 4);
		count(e, src, "", "no-config");
		snprintf(denied_by, denied_by_size, "no-config");
		return -1;
	}
	what[0] = '\0';
	if (req != NULL) {
		size_t total = 0;
		char *p;

		line = strndup(req->line, req->line_len);
		for (size_t i = 0; i < req->n_headers; i++)
			total += req->headers[i].name_len + req->headers[i].value_len + 2;
		names = malloc(total + 1);
		hs = calloc(req->n_headers + 1, sizeof(*hs));
		if (line == NULL || names == NULL || hs == NULL) {
			oom = true;     /* deny */
			goto decided;
		}
		p = names;
		for (size_t i = 0; i < req->n_headers; i++) {
			hs[i].name = p;
			memcpy(p, req->headers[i].name, req->headers[i].name_len);
			p += req->headers[i].name_len;
			*p++ = '\0';
			hs[i].value = p;
			memcpy(p, req->headers[i].value, req->headers[i].value_len);
			p += req->headers[i].value_len;
			*p++ = '\0';
		}
		sp = strchr(line, ' ');
		if (sp != NULL)
			*sp++ = '\0';
		call.http = 1;
		call.method = line;
		call.path = target_path(sp ? sp : "");
		call.headers = hs;
		call.n_headers = req->n_headers;
	}
	px_config_authorize(cfg, peer_id ? peer_id : "", req ? &call : NULL, &a);
	if (a.action == INTENTION_ALLOW)
		rc = 0;
decided:
	if (rc != 0) {
		if (oom) {
			snprintf(label, sizeof(label), "out-of-memory");
			reason = "out-of-memory";
		} else {
			px_enforce_label(&a, label, sizeof(label));
			reason = a.reason == PX_AUTHZ_INTENTIONS ? intention_reason_kind(a.decision.reason) :
				 px_authz_reason_string(a.reason);
		}
		if (req != NULL && !oom) {
			char m[64], path[LOG_VALUE_MAX * 4 + 1];

			log_safe(call.method, strlen(call.method), m, sizeof(m));
			log_safe(call.path, strlen(call.path), path, sizeof(path));
			snprintf(what, sizeof(what), " method=%s path=\"%s\"", m, path);
		}
		log_safe(peer_id ? peer_id : "", peer_id ? strlen(peer_id) : 0, src, sizeof(src));
		log_warnx("proxy", "denied: source=\"%s\" destination=\"%s\" intention=\"%s\" "
			  "reason=\"%s\" layer=%d%s", src, cfg->identity.service, label, reason,
			  req ? 7 : 4, what);
		count(e, src, cfg->identity.service, label);
		snprintf(denied_by, denied_by_size, "%s", label);
	}
	free(hs);
	free(names);
	free(line);
	px_config_unref(cfg);
	return rc;
}

int px_enforce_counters(struct px_enforce *e, struct px_denial_count **out, size_t *n, char **err)
{
	int rc = WEFT_OK;

	pthread_mutex_lock(&e->lock);
	*out = NULL;
	*n = 0;
	if (e->n > 0) {
		*out = malloc(e->n * sizeof(**out));
		if (*out == NULL) {
			rc = weft_errf(err, WEFT_ENOMEM, "px_enforce: counters: out of memory");
			goto out;
		}
		memcpy(*out, e->c, e->n * sizeof(**out));
		*n = e->n;
	}
out:
	pthread_mutex_unlock(&e->lock);
	return rc;
}

void px_enforce_set_stats(struct px_enforce *e, struct px_stats *stats)
{
	e->stats = stats;
}

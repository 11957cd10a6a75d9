/* Health-check definitions (checkdef.h). */
#include "config.h"
#include "checkdef.h"
#include "err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cdef_type_name(enum chk_type t)
{
	switch (t) {
	case CHK_HTTP:
		return "HTTP";
	case CHK_TCP:
		return "TCP";
	case CHK_TTL:
		return "TTL";
	case CHK_SCRIPT:
		return "script";
	case CHK_GRPC:
		return "gRPC";
	case CHK_UDP:
		return "UDP";
	case CHK_H2PING:
		return "H2PING";
	}
	return "?";
}

/* ---- definitions ---- */


void cdef_free(struct cdef *d)
{
	if (d == NULL)
		return;
	free(d->id);
	free(d->service_id);
	free(d->http);
	free(d->method);
	json_decref(d->header);
	free(d->body);
	free(d->tcp);
	free(d->udp);
	free(d->grpc);
	free(d->h2ping);
	free(d->grpc_url);
	free(d->udp_host);
	free(d->udp_port);
	for (size_t i = 0; i < d->nargs; i++)
		free(d->args[i]);
	free(d->args);
	free(d->tcp_url);
	curl_slist_free_all(d->headers);
	free(d);
}

static int str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The definitions as given (the derived fields follow from them). */
int cdef_equal(const struct cdef *a, const struct cdef *b)
{
	if (!str_eq(a->id, b->id) || !str_eq(a->service_id, b->service_id) || a->type != b->type ||
	    !str_eq(a->http, b->http) || !str_eq(a->method, b->method) ||
	    !str_eq(a->body, b->body) || a->tls_skip_verify != b->tls_skip_verify ||
	    !str_eq(a->tcp, b->tcp) || a->nargs != b->nargs || a->interval_ms != b->interval_ms ||
	    a->timeout_ms != b->timeout_ms || a->ttl_ms != b->ttl_ms ||
	    a->deregister_after_ms != b->deregister_after_ms || a->initial != b->initial ||
	    !str_eq(a->udp, b->udp) || !str_eq(a->grpc, b->grpc) ||
	    a->grpc_use_tls != b->grpc_use_tls || !str_eq(a->h2ping, b->h2ping) ||
	    a->h2ping_use_tls != b->h2ping_use_tls ||
	    a->success_before_passing != b->success_before_passing ||
	    a->failures_before_warning != b->failures_before_warning ||
	    a->failures_before_critical != b->failures_before_critical)
		return 0;
	if ((a->header == NULL) != (b->header == NULL))
		return 0;
	if (a->header != NULL && !json_equal(a->header, b->header))
		return 0;
	for (size_t i = 0; i < a->nargs; i++)
		if (strcmp(a->args[i], b->args[i]) != 0)
			return 0;
	return 1;
}

static int is_tchar(int c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return 0;
	return 1;
}

/* HOST:PORT as Go's net.Dial takes it: an IPv6 literal in brackets. Gives
 * the URL libcurl connects to. Host names: letters, digits, '-', '.', '_'. */
static int parse_hostport(const char *s, char **url, const char **why)
{
	const char *host, *hend, *port;
	size_t hlen, plen;
	unsigned long pv = 0;

	*why = "must be HOST:PORT";
	if (s[0] == '[') {
		host = s + 1;
		hend = strchr(host, ']');
		if (hend == NULL || hend[1] != ':') {
			*why = "an IPv6 address must be in brackets followed by :PORT";
			return -1;
		}
		for (const char *p = host; p < hend; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.') {
				*why = "bad IPv6 address";
				return -1;
			}
		port = hend + 2;
	} else {
		hend = strrchr(s, ':');
		if (hend == NULL)
			return -1;
		host = s;
		if (memchr(host, ':', (size_t)(hend - host)) != NULL) {
			*why = "an IPv6 address must be in brackets: [ADDR]:PORT";
			return -1;
		}
		for (const char *p = host; p < hend; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_') {
				*why = "bad host name";
				return -1;
			}
		port = hend + 1;
	}
	hlen = (size_t)(hend - host);
	plen = strlen(port);
	if (hlen == 0 || hlen > 253) {
		*why = "bad host name";
		return -1;
	}
	if (plen == 0 || plen > 5) {
		*why = "bad port";
		return -1;
	}
	for (size_t i = 0; i < plen; i++) {
		if (!isdigit((unsigned char)port[i])) {
			*why = "bad port";
			return -1;
		}
		pv = pv * 10 + (unsigned long)(port[i] - '0');
	}
	if (pv == 0 || pv > 65535) {
		*why = "port out of range";
		return -1;
	}
	if (asprintf(url, "http://%s%.*s%s:%lu/", s[0] == '[' ? "[" : "", (int)hlen, host,
		     s[0] == '[' ? "]" : "", pv) < 0) {
		*url = NULL;
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* HOST and PORT of a HOST:PORT that parse_hostport accepted. */
static int split_hostport(const char *s, char **host, char **port)
{
	const char *colon = strrchr(s, ':');
	size_t at = s[0] == '[' ? 1 : 0, end = (size_t)(colon - s) - (s[0] == '[' ? 1 : 0);

	*host = strndup(s + at, end - at);
	*port = strdup(colon + 1);
	return *host != NULL && *port != NULL ? 0 : -1;
}

/* A UDP or H2PING check's HOST:PORT (field): kept as given (*copy) and
 * split into the host and port its runs resolve (d->udp_host, udp_port). */
static int resolved_target(struct cdef *d, const char *field, const char *value, char **copy,
			   const char *ctx, char **err)
{
	const char *why;
	char *url = NULL;

	if (value == NULL || value[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "%s: %s: empty", ctx, field);
	if (parse_hostport(value, &url, &why) != 0)
		return weft_errf(err, WEFT_EINVAL, "%s: %s: \"%.300s\": %s", ctx, field, value, why);
	free(url);
	if ((*copy = strdup(value)) == NULL ||
	    split_hostport(value, &d->udp_host, &d->udp_port) != 0)
		return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", ctx);
	return WEFT_OK;
}

/* A gRPC check's target, HOST:PORT[/SERVICE]: the URL of the health method
 * and the framed request for SERVICE. */
static int grpc_target(struct cdef *d, const char *target, const char *ctx, char **err)
{
	const char *slash = strchr(target, '/'), *service = slash ? slash + 1 : "", *why;
	char *hostport = strndup(target, slash ? (size_t)(slash - target) : strlen(target));
	char *url = NULL;
	int rc = WEFT_OK;

	if (hostport == NULL)
		return weft_errf(err, WEFT_ENOMEM, "%s: out of memory", ctx);
	if (parse_hostport(hostport, &url, &why) != 0) {
		rc = weft_errf(err, WEFT_EINVAL, "%s: GRPC: \"%.300s\": %s (HOST:PORT or HOST:PORT/SERVICE)",
			       ctx, target, why);
		goto out;
	}
	if (strlen(service) > GRPC_SERVICE_MAX || strpbrk(service, " \t\r\n") != NULL) {
		rc = weft_errf(err, WEFT_EINVAL, "%s: GRPC: service \"%.300s\": %s", ctx, service,
			       strlen(service) > GRPC_SERVICE_MAX ? "longer than 255 bytes"
								  : "must not contain white space");
		goto out;
	}
	d->grpc_req_len = grpc_health_request(service, d->grpc_req, sizeof(d->grpc_req));
	/* url is http://HOST:PORT/ */
	if (asprintf(&d->grpc_url, "%s%.*s%s", d->grpc_use_tls ? "https://" : "http://",
		     (int)(strlen(url) - 8), url + 7, GRPC_HEALTH_PATH) < 0) {
		d->grpc_url = NULL;
		rc = weft_errf(err, WEFT_ENOMEM, "%s: out of memory", ctx);
		goto out;
	}
	if ((d->headers = curl_slist_append(NULL, "Content-Type: application/grpc")) == NULL ||
	    curl_slist_append(d->headers, "TE: trailers") == NULL ||
	    curl_slist_append(d->headers, "User-Agent: " CHK_USER_AGENT) == NULL ||
	    curl_slist_append(d->headers, "Accept:") == NULL ||
	    curl_slist_append(d->headers, "Expect:") == NULL)
		rc = weft_errf(err, WEFT_ENOMEM, "%s: out of memory", ctx);
out:
	free(hostport);
	free(url);
	return rc;
}

static int has_header(const json_t *header, const char *name)
{
	const char *k;
	json_t *v;

	if (header == NULL)
		return 0;
	json_object_foreach((json_t *)header, k, v)
		if (strcasecmp(k, name) == 0)
			return 1;
	return 0;
}

static int build_headers(struct cdef *d, const char *ctx, char **err)
{
	const char *k;
	json_t *v;
	size_t count = 0;
	char line[CHK_HEADER_LINE_MAX + 300];
	struct curl_slist *l;

	if (d->header != NULL) {
		if (!json_is_object(d->header))
			return weft_errf(err, WEFT_EINVAL, "%s: Header: must be an object of string arrays",
					 ctx);
		json_object_foreach(d->header, k, v) {
			size_t i;
			json_t *e;

			if (!is_token(k, 256))
				return weft_errf(err, WEFT_EINVAL, "%s: Header: \"%.64s\" is not a header name",
						 ctx, k);
			if (!json_is_array(v))
				return weft_errf(err, WEFT_EINVAL, "%s: Header.%s: must be an array of strings",
						 ctx, k);
			json_array_foreach(v, i, e) {
				const char *s = json_string_value(e);

				if (s == NULL)
					return weft_errf(err, WEFT_EINVAL,
							 "%s: Header.%s[%zu]: must be a string", ctx, k, i);
				if (strlen(s) > CHK_HEADER_LINE_MAX || strpbrk(s, "\r\n") != NULL)
					return weft_errf(err, WEFT_EINVAL,
							 "%s: Header.%s[%zu]: no line breaks, at most %d bytes",
							 ctx, k, i, CHK_HEADER_LINE_MAX);
				if (++count > CHK_HEADER_VALUES_MAX)
					return weft_errf(err, WEFT_EINVAL, "%s: Header: more than %d values",
							 ctx, CHK_HEADER_VALUES_MAX);
				/* "Name;" is libcurl's way of sending an empty value. */
				if (s[0] == '\0')
					snprintf(line, sizeof(line), "%s;", k);
				else
					snprintf(line, sizeof(line), "%s: %s", k, s);
				l = curl_slist_append(d->headers, line);
				if (l == NULL)
					return weft_errf(err, WEFT_ENOMEM, "%s: Header: out of memory", ctx);
				d->headers = l;
			}
		}
	}
	/* Consul's defaults, and what libcurl would add that Go does not. */
	static const char *const defaults[][2] = {
		{"User-Agent", "User-Agent: " CHK_USER_AGENT},
		{"Accept", "Accept: text/plain, text/*, */*"},
		{"Expect", "Expect:"},
		{"Content-Type", "Content-Type:"},
	};
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		if (has_header(d->header, defaults[i][0]))
			continue;
		l = curl_slist_append(d->headers, defaults[i][1]);
		if (l == NULL)
			return weft_errf(err, WEFT_ENOMEM, "%s: Header: out of memory", ctx);
		d->headers = l;
	}
	return WEFT_OK;
}

static int check_url(const char *url, const char *ctx, char **err)
{
	CURLU *u;
	char *host = NULL, *scheme = NULL;
	int rc = WEFT_OK;

	if (strlen(url) > CHK_URL_MAX)
		return weft_errf(err, WEFT_EINVAL, "%s: HTTP: longer than %d bytes", ctx, CHK_URL_MAX);
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return weft_errf(err, WEFT_EINVAL, "%s: HTTP: spaces or control characters in the URL",
					 ctx);
	u = curl_url();
	if (u == NULL)
		return weft_errf(err, WEFT_ENOMEM, "%s: HTTP: out of memory", ctx);
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		rc = weft_errf(err, WEFT_EINVAL, "%s: HTTP: \"%.200s\" is not a URL", ctx, url);
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
		rc = weft_errf(err, WEFT_EINVAL, "%s: HTTP: \"%.200s\" is not an http:// or https:// URL",
			       ctx, url);
out:
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

static int check_duration(int64_t v, const char *ctx, const char *field, char **err)
{
	if (v < 0 || v > CHK_DURATION_MAX)
		return weft_errf(err, WEFT_EINVAL, "%s: %s: must be between 0 and a year", ctx, field);
	return WEFT_OK;
}

/* Validates one definition and makes the runner's copy of it. */
int cdef_make(const struct chk_def *in, size_t index, const struct chk_runner_opts *o,
	      struct cdef **out, char **err)
{
	struct cdef *d = NULL;
	char ctx[CHK_ID_MAX + 32];
	const char *why;
	int rc;

	*out = NULL;
	if (in->id == NULL || in->id[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "check[%zu]: ID: empty", index);
	if (strlen(in->id) > CHK_ID_MAX)
		return weft_errf(err, WEFT_EINVAL, "check[%zu]: ID: longer than %d bytes", index,
				 CHK_ID_MAX);
	snprintf(ctx, sizeof(ctx), "check \"%s\"", in->id);
	if (in->service_id != NULL && strlen(in->service_id) > CHK_ID_MAX)
		return weft_errf(err, WEFT_EINVAL, "%s: ServiceID: longer than %d bytes", ctx,
				 CHK_ID_MAX);
	if (in->initial != CHK_PASSING && in->initial != CHK_WARNING && in->initial != CHK_CRITICAL)
		return weft_errf(err, WEFT_EINVAL, "%s: Status: not passing, warning or critical", ctx);
	if ((rc = check_duration(in->interval_ms, ctx, "Interval", err)) != 0 ||
	    (rc = check_duration(in->timeout_ms, ctx, "Timeout", err)) != 0 ||
	    (rc = check_duration(in->ttl_ms, ctx, "TTL", err)) != 0 ||
	    (rc = check_duration(in->deregister_after_ms, ctx, "DeregisterCriticalServiceAfter",
				 err)) != 0)
		return rc;

#define NOMEM() do { \
		rc = weft_errf(err, WEFT_ENOMEM, "%s: out of memory", ctx); \
		goto out; \
	} while (0)
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		NOMEM();
	d->type = in->type;
	d->tls_skip_verify = in->tls_skip_verify != 0;
	d->interval_ms = in->interval_ms;
	d->timeout_ms = in->timeout_ms;
	d->ttl_ms = in->ttl_ms;
	d->deregister_after_ms = in->deregister_after_ms;
	d->initial = in->initial;
	d->grpc_use_tls = in->grpc_use_tls != 0;
	d->h2ping_use_tls = in->h2ping_use_tls != 0;
	if (in->type != CHK_TTL) {
		static const char *const names[] = { "SuccessBeforePassing", "FailuresBeforeWarning",
						     "FailuresBeforeCritical" };
		const int v[] = { in->success_before_passing, in->failures_before_warning,
				  in->failures_before_critical };

		for (size_t i = 0; i < 3; i++)
			if (v[i] < 0 || v[i] > CHK_THRESHOLD_MAX) {
				rc = weft_errf(err, WEFT_EINVAL, "%s: %s: %d is out of range [0, %d]", ctx,
					       names[i], v[i], CHK_THRESHOLD_MAX);
				goto out;
			}
		d->success_before_passing = in->success_before_passing;
		d->failures_before_critical = in->failures_before_critical;
		/* Consul: the warning threshold defaults to the critical one */
		d->failures_before_warning = in->failures_before_warning > 0
			? in->failures_before_warning : in->failures_before_critical;
	}
	d->id = strdup(in->id);
	d->service_id = strdup(in->service_id != NULL ? in->service_id : "");
	if (d->id == NULL || d->service_id == NULL)
		NOMEM();

	switch (in->type) {
	case CHK_HTTP:
		if (in->http == NULL || in->http[0] == '\0') {
			rc = weft_errf(err, WEFT_EINVAL, "%s: HTTP: empty", ctx);
			goto out;
		}
		if ((rc = check_url(in->http, ctx, err)) != 0)
			goto out;
		if (in->method != NULL && !is_token(in->method, CHK_METHOD_MAX)) {
			rc = weft_errf(err, WEFT_EINVAL, "%s: Method: \"%.40s\" is not an HTTP method",
				       ctx, in->method);
			goto out;
		}
		if (in->body != NULL && strlen(in->body) > CHK_BODY_MAX) {
			rc = weft_errf(err, WEFT_EINVAL, "%s: Body: longer than %d bytes", ctx,
				       CHK_BODY_MAX);
			goto out;
		}
		d->http = strdup(in->http);
		d->method = strdup(in->method != NULL ? in->method : "GET");
		/* An empty body is none, as Go's client sends it. */
		d->body = in->body != NULL && in->body[0] != '\0' ? strdup(in->body) : NULL;
		if (d->http == NULL || d->method == NULL || (d->body == NULL && in->body != NULL &&
							    in->body[0] != '\0'))
			NOMEM();
		if (in->header != NULL) {
			d->header = json_deep_copy(in->header);
			if (d->header == NULL)
				NOMEM();
		}
		if ((rc = build_headers(d, ctx, err)) != 0)
			goto out;
		break;
	case CHK_TCP:
		if (in->tcp == NULL || in->tcp[0] == '\0') {
			rc = weft_errf(err, WEFT_EINVAL, "%s: TCP: empty", ctx);
			goto out;
		}
		if (parse_hostport(in->tcp, &d->tcp_url, &why) != 0) {
			rc = weft_errf(err, WEFT_EINVAL, "%s: TCP: \"%.300s\": %s", ctx, in->tcp, why);
			goto out;
		}
		d->tcp = strdup(in->tcp);
		if (d->tcp == NULL)
			NOMEM();
		break;
	case CHK_UDP:
		if ((rc = resolved_target(d, "UDP", in->udp, &d->udp, ctx, err)) != WEFT_OK)
			goto out;
		break;
	case CHK_H2PING:
		if ((rc = resolved_target(d, "H2PING", in->h2ping, &d->h2ping, ctx, err)) != WEFT_OK)
			goto out;
		break;
	case CHK_GRPC:
		if (in->grpc == NULL || in->grpc[0] == '\0') {
			rc = weft_errf(err, WEFT_EINVAL, "%s: GRPC: empty", ctx);
			goto out;
		}
		if ((d->grpc = strdup(in->grpc)) == NULL)
			NOMEM();
		if ((rc = grpc_target(d, in->grpc, ctx, err)) != WEFT_OK)
			goto out;
		break;
	case CHK_TTL:
		if (in->ttl_ms <= 0) {
			rc = weft_errf(err, WEFT_EINVAL, "%s: TTL: must be greater than 0", ctx);
			goto out;
		}
		break;
	case CHK_SCRIPT:
		if (!o->enable_scripts) {
			rc = weft_errf(err, WEFT_EINVAL,
				       "%s: Args: script checks are disabled on this agent "
				       "(enable_script_checks)", ctx);
			goto out;
		}
		if (in->nargs == 0 || in->args == NULL || in->args[0] == NULL ||
		    in->args[0][0] == '\0') {
			rc = weft_errf(err, WEFT_EINVAL, "%s: Args: empty (give the program and its arguments)",
				       ctx);
			goto out;
		}
		if (in->nargs > CHK_ARGS_MAX) {
			rc = weft_errf(err, WEFT_EINVAL, "%s: Args: more than %d", ctx, CHK_ARGS_MAX);
			goto out;
		}
		d->args = calloc(in->nargs + 1, sizeof(char *));
		if (d->args == NULL)
			NOMEM();
		for (size_t i = 0; i < in->nargs; i++) {
			if (in->args[i] == NULL || strlen(in->args[i]) > CHK_ARG_MAX) {
				rc = weft_errf(err, WEFT_EINVAL, "%s: Args[%zu]: %s", ctx, i,
					       in->args[i] == NULL ? "missing" : "too long");
				goto out;
			}
			d->args[i] = strdup(in->args[i]);
			if (d->args[i] == NULL)
				NOMEM();
			d->nargs = i + 1;
		}
		break;
	default:
		rc = weft_errf(err, WEFT_EINVAL, "%s: Type: unknown check type %d", ctx, (int)in->type);
		goto out;
	}

	if (in->type != CHK_TTL) {
		int64_t floor = o->min_interval_ms > 0 ? o->min_interval_ms : CHK_DEFAULT_MIN_INTERVAL_MS;

		if (in->interval_ms <= 0) {
			rc = weft_errf(err, WEFT_EINVAL, "%s: Interval: required for %s checks (> 0)", ctx,
				       cdef_type_name(in->type));
			goto out;
		}
		d->run_interval_ms = in->interval_ms;
		if (d->run_interval_ms < floor)
			d->run_interval_ms = d->floor_interval_ms = floor;
		d->run_timeout_ms = in->timeout_ms > 0 ? in->timeout_ms
			: in->type == CHK_SCRIPT ? CHK_DEFAULT_SCRIPT_TIMEOUT_MS : CHK_DEFAULT_TIMEOUT_MS;
	}
	if (in->deregister_after_ms > 0) {
		int64_t floor = o->min_deregister_ms > 0 ? o->min_deregister_ms
			: CHK_DEFAULT_MIN_DEREGISTER_MS;

		d->reap_after_ms = in->deregister_after_ms;
		if (d->reap_after_ms < floor)
			d->reap_after_ms = d->floor_reap_ms = floor;
	}
	rc = WEFT_OK;
out:
	if (rc != WEFT_OK) {
		cdef_free(d);
		return rc;
	}
	*out = d;
	return WEFT_OK;
#undef NOMEM
}


#include "config.h"
#include "httpc.h"
#include "httpmsg.h"
#include "buf.h"
#include "err.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct httpc {
	CURL *curl;
	char *base;      /* http://host:port, no trailing slash */
	char *display;
	char *token;
	char *ca_file;
	long connect_timeout_ms;
	long timeout_ms;
	size_t max_body;
	int (*abort_fn)(void *arg);
	void *abort_arg;
};

int httpc_global_init(char **err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return weft_errf(err, WEFT_EIO, "libcurl: global initialisation failed");
	return WEFT_OK;
}

static int parse_port(const char *s, size_t n, unsigned *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = v;
	return 0;
}

int httpc_parse_address(const char *address, char **base_url, char **display, char **err)
{
	const char *scheme = "http", *p = address, *host, *colon = NULL, *end;
	unsigned port = HTTPC_DEFAULT_PORT;
	size_t hlen, len;
	int https = 0, rc = WEFT_EINVAL;

	*base_url = *display = NULL;
	if (address == NULL || address[0] == '\0')
		return weft_errf(err, WEFT_EINVAL, "address: empty (use HOST:PORT)");
	if (strncasecmp(p, "http://", 7) == 0) {
		p += 7;
		port = 80;
	} else if (strncasecmp(p, "https://", 8) == 0) {
		p += 8;
		scheme = "https";
		https = 1;
		port = 443;
	} else if (strstr(p, "://")) {
		return weft_errf(err, WEFT_EINVAL,
				 "address \"%s\": only http:// and https:// are supported", address);
	}
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		len--;
	end = p + len;
	if (memchr(p, '/', len) || memchr(p, '?', len) || memchr(p, '@', len))
		return weft_errf(err, WEFT_EINVAL,
				 "address \"%s\": expected HOST:PORT without a path", address);
	host = p;
	if (*p == '[') {
		const char *rb = memchr(p, ']', len);
		if (rb == NULL)
			return weft_errf(err, WEFT_EINVAL, "address \"%s\": missing ']'", address);
		hlen = (size_t)(rb + 1 - p);
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return weft_errf(err, WEFT_EINVAL,
						 "address \"%s\": expected ':' after ']'", address);
			colon = rb + 1;
		}
	} else {
		colon = memchr(p, ':', len);
		if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
			return weft_errf(err, WEFT_EINVAL,
					 "address \"%s\": write an IPv6 address in brackets: [::1]:8500",
					 address);
		hlen = colon ? (size_t)(colon - p) : len;
	}
	if (hlen == 0)
		return weft_errf(err, WEFT_EINVAL, "address \"%s\": no host", address);
	if (colon && parse_port(colon + 1, (size_t)(end - colon - 1), &port) != 0)
		return weft_errf(err, WEFT_EINVAL,
				 "address \"%s\": the port must be a number from 1 to 65535", address);
	if (asprintf(base_url, "%s://%.*s:%u", scheme, (int)hlen, host, port) < 0) {
		*base_url = NULL;
		rc = WEFT_ENOMEM;
		goto out;
	}
	if ((https ? asprintf(display, "https://%.*s:%u", (int)hlen, host, port)
		   : asprintf(display, "%.*s:%u", (int)hlen, host, port)) < 0) {
		*display = NULL;
		rc = WEFT_ENOMEM;
		goto out;
	}
	rc = WEFT_OK;
out:
	if (rc != WEFT_OK) {
		free(*base_url);
		*base_url = NULL;
		weft_errf(err, rc, "out of memory");
	}
	return rc;
}

int httpc_new(struct httpc **out, const struct httpc_opts *opts, char **err)
{
	struct httpc *c = calloc(1, sizeof(*c));
	int rc = WEFT_ENOMEM;

	*out = NULL;
	if (c == NULL)
		return weft_errf(err, rc, "out of memory");
	rc = httpc_parse_address(opts->address, &c->base, &c->display, err);
	if (rc != WEFT_OK)
		goto out;
	rc = WEFT_ENOMEM;
	if ((opts->token && (c->token = strdup(opts->token)) == NULL) ||
	    (opts->ca_file && (c->ca_file = strdup(opts->ca_file)) == NULL)) {
		weft_errf(err, rc, "out of memory");
		goto out;
	}
	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		weft_errf(err, WEFT_EIO, "libcurl: cannot create a handle");
		rc = WEFT_EIO;
		goto out;
	}
	c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 60000;
	c->max_body = opts->max_body > 0 ? opts->max_body : (size_t)64 << 20;
	c->abort_fn = opts->abort_fn;
	c->abort_arg = opts->abort_arg;
	*out = c;
	c = NULL;
	rc = WEFT_OK;
out:
	httpc_free(c);
	return rc;
}

void httpc_free(struct httpc *c)
{
	if (c == NULL)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->base);
	free(c->display);
	if (c->token)
		memset(c->token, 0, strlen(c->token));
	free(c->token);
	free(c->ca_file);
	free(c);
}

const char *httpc_display(const struct httpc *c)
{
	return c->display;
}

void httpc_resp_free(struct httpc_resp *r)
{
	if (r == NULL)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

struct xfer {
	struct httpc *c;
	struct buf body;
	struct httpc_resp *resp;
	int too_big;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;

	if (buf_append(&x->body, data, size * n) != WEFT_OK) {
		x->too_big = 1;
		return 0;
	}
	return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	static const char name[] = "X-Consul-Index:";
	char num[32];
	size_t i = sizeof(name) - 1, j = 0;

	if (len > i && strncasecmp(data, name, i) == 0) {
		while (i < len && (data[i] == ' ' || data[i] == '\t'))
			i++;
		while (i < len && j < sizeof(num) - 1 && isdigit((unsigned char)data[i]))
			num[j++] = data[i++];
		num[j] = '\0';
		if (j > 0) {
			x->resp->index = strtoull(num, NULL, 10);
			x->resp->has_index = 1;
		}
	}
	return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct xfer *x = arg;

	return x->c->abort_fn && x->c->abort_fn(x->c->abort_arg) ? 1 : 0;
}

/* The message for a failed transfer: what failed, and where. */
static int transfer_error(struct httpc *c, CURLcode cc, const char *errbuf, long timeout_ms,
			  struct xfer *x, char **err)
{
	long os_errno = 0;
	const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_ABORTED_BY_CALLBACK:
		return weft_errf(err, WEFT_ESHUTDOWN, "interrupted");
	case CURLE_WRITE_ERROR:
		if (x->too_big)
			return weft_errf(err, WEFT_ETOOBIG,
					 "the reply from weft-server at %s is larger than %zu bytes",
					 c->display, c->max_body);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		return weft_errf(err, WEFT_EIO, "weft-server at %s did not answer within %ld ms",
				 c->display, timeout_ms);
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
		if (os_errno)
			why = strerror((int)os_errno);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		why = "unknown host";
		break;
	default:
		break;
	}
	return weft_errf(err, WEFT_EIO, "cannot reach weft-server at %s: %s", c->display, why);
}

int httpc_request(struct httpc *c, const char *method, const char *path,
		  const void *body, size_t body_len, const char *content_type,
		  long timeout_ms, struct httpc_resp *resp, char **err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL, *h;
	struct xfer x = { .c = c, .resp = resp };
	char *url = NULL, *line = NULL;
	CURLcode cc;
	int rc = WEFT_ENOMEM;

	memset(resp, 0, sizeof(*resp));
	buf_init(&x.body, c->max_body);
	if (timeout_ms <= 0)
		timeout_ms = c->timeout_ms;
	if (asprintf(&url, "%s%s", c->base, path) < 0) {
		url = NULL;
		goto nomem;
	}
	if (c->token && c->token[0]) {
		if (asprintf(&line, "X-Consul-Token: %s", c->token) < 0) {
			line = NULL;
			goto nomem;
		}
		if ((h = curl_slist_append(hdrs, line)) == NULL)
			goto nomem;
		hdrs = h;
	}
	if (body) {
		free(line);
		if (asprintf(&line, "Content-Type: %s",
			     content_type ? content_type : "application/octet-stream") < 0) {
			line = NULL;
			goto nomem;
		}
		if ((h = curl_slist_append(hdrs, line)) == NULL)
			goto nomem;
		hdrs = h;
	}
	/* No "Expect: 100-continue" round trip for larger bodies. */
	if ((h = curl_slist_append(hdrs, "Expect:")) == NULL)
		goto nomem;
	hdrs = h;

	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "weft-httpc/" PACKAGE_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, c->abort_fn ? 0L : 1L);
	if (c->ca_file)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	}
	if (body || strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
		/* PUT and POST always carry a Content-Length, even of 0. */
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body ? body_len : 0));
	}
	cc = curl_easy_perform(c->curl);
	if (cc != CURLE_OK) {
		rc = transfer_error(c, cc, errbuf, timeout_ms, &x, err);
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	resp->len = x.body.len;
	resp->body = x.body.len ? buf_steal(&x.body) : NULL;
	rc = WEFT_OK;
	goto out;
nomem:
	weft_errf(err, rc, "out of memory");
out:
	if (rc != WEFT_OK) {
		long status = resp->status;
		httpc_resp_free(resp);
		resp->status = status;
	}
	buf_free(&x.body);
	curl_slist_free_all(hdrs);
	if (line)
		memset(line, 0, strlen(line));
	free(line);
	free(url);
	return rc;
}

char *httpc_error_message(const struct httpc_resp *r)
{
	return http_error_message(r->status, r->body, r->len);
}

int httpc_missing_object(const struct httpc_resp *r)
{
	char *msg;
	int missing;

	if (r->status != 404)
		return 0;
	msg = httpc_error_message(r);
	missing = msg == NULL || strncmp(msg, "no such endpoint", 16) != 0;
	free(msg);
	return missing;
}

static int status_code(long status)
{
	switch (status) {
	case 400: return WEFT_EINVAL;
	case 401: return WEFT_EAUTH;
	case 403: return WEFT_EPERM;
	case 404: return WEFT_ENOENT;
	case 409: return WEFT_ECONFLICT;
	case 413: return WEFT_ETOOBIG;
	default: return WEFT_EIO;
	}
}

int httpc_json(struct httpc *c, const char *method, const char *path, json_t *body,
	       long timeout_ms, json_t **out, struct httpc_resp *resp, char **err)
{
	struct httpc_resp local = { 0 };
	struct httpc_resp *rp = resp ? resp : &local;
	json_error_t jerr;
	char *text = NULL, *msg;
	int rc;

	if (out)
		*out = NULL;
	if (body && (text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		return weft_errf(err, WEFT_ENOMEM, "out of memory");
	rc = httpc_request(c, method, path, text, text ? strlen(text) : 0, "application/json",
			   timeout_ms, rp, err);
	if (rc != WEFT_OK)
		goto out;
	if (rp->status < 200 || rp->status > 299) {
		msg = httpc_error_message(rp);
		rc = weft_errf(err, status_code(rp->status), "%s (HTTP %ld)",
			       msg ? msg : "error", rp->status);
		free(msg);
		goto out;
	}
	if (out && rp->body && rp->len) {
		*out = json_loadb(rp->body, rp->len, JSON_DECODE_ANY, &jerr);
		if (*out == NULL)
			rc = weft_errf(err, WEFT_EIO,
				       "weft-server at %s sent invalid JSON for %s %s: %s",
				       c->display, method, path, jerr.text);
	}
out:
	free(text);
	httpc_resp_free(&local);
	return rc;
}

char *httpc_escape(const char *s, int keep_slash)
{
	return http_escape(s, keep_slash);
}

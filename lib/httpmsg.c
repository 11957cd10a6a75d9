/* The curl-free HTTP helpers (httpmsg.h). */
#include "config.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "httpmsg.h"

char *http_error_message(long status, const char *body, size_t len)
{
	json_t *doc = NULL, *e;
	char *msg = NULL;
	size_t start = 0, end = len;

	if (body && len) {
		doc = json_loadb(body, len, JSON_DECODE_ANY, NULL);
		e = json_is_object(doc) ? json_object_get(doc, "error") : NULL;
		if (json_is_string(e) && json_string_length(e) > 0) {
			msg = strdup(json_string_value(e));
			goto out;
		}
		while (start < end && isspace((unsigned char)body[start]))
			start++;
		while (end > start && isspace((unsigned char)body[end - 1]))
			end--;
		if (end > start) {
			msg = strndup(body + start, end - start > 2000 ? 2000 : end - start);
			goto out;
		}
	}
	if (asprintf(&msg, "the server answered HTTP %ld without a message", status) < 0)
		msg = NULL;
out:
	json_decref(doc);
	return msg;
}

char *http_escape(const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' ||
		    (keep_slash && ch == '/')) {
			*p++ = (char)ch;
		} else {
			*p++ = '%';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return out;
}

const char *http_reason(long status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "";
}

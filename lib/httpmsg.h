/* The curl-free pieces of talking to weft-server's HTTP API, shared by
 * lib/httpc (libcurl: weftctl, the agent) and dataplane/px_httpget
 * (libevent: weft-proxy, which must not load libcurl). */
#ifndef WEFT_HTTPMSG_H
#define WEFT_HTTPMSG_H

#include <stddef.h>

/* The error a reply carries: the JSON {"error": ...} field, else the
 * trimmed body (at most 2000 bytes), else a sentence naming the status.
 * Allocated (NULL only when out of memory). */
char *http_error_message(long status, const char *body, size_t len);

/* s percent-encoded for a URL path segment or query value (unreserved
 * characters kept; '/' kept too when keep_slash). Allocated. */
char *http_escape(const char *s, int keep_slash);

/* The reason phrase of an HTTP status (RFC 9110), "" for one it does not
 * know. Shared by the proxy's own answers and the health checks' output. */
const char *http_reason(long status);

#endif

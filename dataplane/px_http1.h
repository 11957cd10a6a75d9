/* px_http1: the proxy's HTTP/1.1 message parser and framing rules
 * (RFC 9110, RFC 9112), and the header rewrite for forwarded requests.
 *
 * Incremental and zero-copy: px_http1_feed() takes any chunk of the stream
 * (one byte at a time works) and reports what it saw through callbacks
 * whose spans point into the chunk just fed. A span cut by a chunk end
 * arrives in several pieces (concatenate them); the only bytes the parser
 * keeps are a few of its own (header names it interprets, whitespace that
 * may turn out to be trailing). Bodies are never buffered.
 *
 * The parser stops at the end of each message: px_http1_feed() returns
 * PX_HTTP1_DONE and how many bytes it consumed, and the next message
 * (a pipelined request) starts at the first byte not consumed.
 * Design notes and the list of what is refused: docs/proxy-http.md. */
#ifndef WEFT_PX_HTTP1_H
#define WEFT_PX_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

enum px_http1_type { PX_HTTP1_REQUEST, PX_HTTP1_RESPONSE };

/* Results of px_http1_feed(): 0 (all consumed, message not finished),
 * PX_HTTP1_DONE, or one of the negative codes. */
enum px_http1_err {
	PX_HTTP1_OK = 0,
	PX_HTTP1_DONE = 1,              /* a message ended */
	PX_HTTP1_EMETHOD = -1,          /* method is not a token */
	PX_HTTP1_ETARGET = -2,          /* bad character in the request-target */
	PX_HTTP1_EVERSION = -3,         /* malformed HTTP-version */
	PX_HTTP1_EVERSION_UNSUPPORTED = -4, /* HTTP/0.x, HTTP/2 and up in HTTP/1 framing */
	PX_HTTP1_ESTATUS = -5,          /* malformed status line */
	PX_HTTP1_ELINE_TOO_LONG = -6,   /* request line over limits.max_line */
	PX_HTTP1_EHEADER_NAME = -7,     /* not a token, or whitespace before the colon */
	PX_HTTP1_EHEADER_VALUE = -8,    /* control character in a field value */
	PX_HTTP1_EOBS_FOLD = -9,        /* line folding (obs-fold) */
	PX_HTTP1_EBARE_LF = -10,        /* LF without CR, or CR without LF */
	PX_HTTP1_ECONTENT_LENGTH = -11, /* Content-Length not 1*DIGIT, or too large */
	PX_HTTP1_ECL_CONFLICT = -12,    /* two Content-Length values that differ */
	PX_HTTP1_ECL_AND_TE = -13,      /* Content-Length and Transfer-Encoding */
	PX_HTTP1_ETE_UNKNOWN = -14,     /* a transfer coding we do not implement */
	PX_HTTP1_ETE_CHUNKED = -15,     /* request: chunked not last, or twice */
	PX_HTTP1_ECHUNK = -16,          /* malformed chunk size line, data or CRLF */
	PX_HTTP1_ECHUNK_SIZE = -17,     /* chunk size overflows */
	PX_HTTP1_ETOO_MANY_HEADERS = -18, /* over limits.max_headers */
	PX_HTTP1_EHEADERS_TOO_BIG = -19,  /* over limits.max_header_bytes */
	PX_HTTP1_EHOST = -20,           /* HTTP/1.1 request without one Host */
	PX_HTTP1_EEXPECT = -21,         /* an expectation other than 100-continue */
	PX_HTTP1_ECALLBACK = -22,       /* a callback returned non-zero */
	PX_HTTP1_EEOF = -23,            /* the stream ended inside a message */
	PX_HTTP1_EPASSTHROUGH = -24,    /* fed after an upgrade/CONNECT message */
	PX_HTTP1_ENOMEM = -25,
};

/* Methods the framing rules depend on; any other token is OTHER. */
enum px_http1_method {
	PX_HTTP1_M_OTHER = 0, PX_HTTP1_M_GET, PX_HTTP1_M_HEAD, PX_HTTP1_M_POST,
	PX_HTTP1_M_PUT, PX_HTTP1_M_DELETE, PX_HTTP1_M_CONNECT, PX_HTTP1_M_OPTIONS,
	PX_HTTP1_M_TRACE, PX_HTTP1_M_PATCH,
};

enum px_http1_body {
	PX_HTTP1_BODY_NONE,       /* no body (or Content-Length: 0) */
	PX_HTTP1_BODY_LENGTH,     /* content_length bytes */
	PX_HTTP1_BODY_CHUNKED,    /* chunked, then trailers */
	PX_HTTP1_BODY_CLOSE,      /* response: until the connection closes */
};

/* Connection options seen (flags of px_http1_msg.connection). */
#define PX_HTTP1_CONN_CLOSE      0x1u
#define PX_HTTP1_CONN_KEEP_ALIVE 0x2u
#define PX_HTTP1_CONN_UPGRADE    0x4u
#define PX_HTTP1_CONN_OTHER      0x8u  /* other options: hop-by-hop field names */

/* What the head said; valid from on_headers_complete until the next
 * message starts (px_http1_msg() returns it). */
struct px_http1_msg {
	enum px_http1_type type;
	enum px_http1_method method;  /* request; for a response, the one set by px_http1_expect() */
	int version_minor;            /* HTTP/1.<minor>: 0 or 1 (1.2 and up count as 1) */
	int status;                   /* response */
	enum px_http1_body body;
	uint64_t content_length;      /* BODY_LENGTH */
	unsigned connection;          /* PX_HTTP1_CONN_* */
	unsigned headers;             /* number of header fields */
	bool has_content_length, has_transfer_encoding;
	bool keep_alive;              /* the connection may carry another message */
	bool expect_continue;         /* request: Expect: 100-continue */
	bool upgrade;                 /* request: Upgrade + Connection: upgrade; response: 101 */
	bool tunnel;                  /* after this message the stream is not HTTP (if accepted) */
	uint64_t body_bytes;          /* body bytes so far (chunk data, not framing) */
};

/* Callbacks: return 0 to go on; anything else stops the parser with
 * PX_HTTP1_ECALLBACK. Any may be NULL. Spans arrive in pieces when a chunk
 * ends inside them. A header field is name pieces then value pieces (at
 * least one, maybe empty); trailers come the same way after
 * on_headers_complete. Value pieces exclude leading and trailing OWS. */
struct px_http1_callbacks {
	int (*on_method)(void *ud, const char *at, size_t len);
	int (*on_target)(void *ud, const char *at, size_t len);
	int (*on_reason)(void *ud, const char *at, size_t len);
	int (*on_header_name)(void *ud, const char *at, size_t len);
	int (*on_header_value)(void *ud, const char *at, size_t len);
	int (*on_headers_complete)(void *ud, const struct px_http1_msg *m);
	int (*on_body)(void *ud, const char *at, size_t len);
	int (*on_message_complete)(void *ud, const struct px_http1_msg *m);
};

/* Limits: 0 means the default. Each has its own error code. */
struct px_http1_limits {
	size_t max_line;          /* request/status line bytes, CRLF excluded */
	size_t max_headers;       /* header fields (and, separately, trailer fields) */
	size_t max_header_bytes;  /* header section bytes (and trailer section) */
};
#define PX_HTTP1_DEFAULT_MAX_LINE 8192
#define PX_HTTP1_DEFAULT_MAX_HEADERS 100
#define PX_HTTP1_DEFAULT_MAX_HEADER_BYTES 65536

struct px_http1;

/* limits may be NULL (defaults). Returns NULL when out of memory. */
struct px_http1 *px_http1_new(enum px_http1_type type, const struct px_http1_limits *limits,
			      const struct px_http1_callbacks *cb, void *ud);
void px_http1_free(struct px_http1 *p);

/* Parses len bytes; *consumed gets how many were used (all of them unless
 * the result is DONE or an error). After an error every call returns the
 * same error and consumes nothing. After DONE the next call starts a new
 * message, except after a message with tunnel set: then it returns
 * PX_HTTP1_EPASSTHROUGH until px_http1_reset(). */
int px_http1_feed(struct px_http1 *p, const char *data, size_t len, size_t *consumed);

/* The peer closed its side: DONE if that ends a body read until close,
 * 0 between messages, PX_HTTP1_EEOF inside one. */
int px_http1_finish(struct px_http1 *p);

/* Response parser: the method of the request this response answers
 * (HEAD has no body, a 2xx to CONNECT is a tunnel). Stays until changed. */
void px_http1_expect(struct px_http1 *p, enum px_http1_method request_method);

/* Back to "between messages", clearing any error or passthrough state. */
void px_http1_reset(struct px_http1 *p);

const struct px_http1_msg *px_http1_msg(const struct px_http1 *p);
/* Bytes into the message where the error was found (for log lines). */
uint64_t px_http1_error_offset(const struct px_http1 *p);

const char *px_http1_strerror(int code);
/* The status a proxy answers for an error: 400, 414, 417, 431, 501, 505
 * for request errors; 502 for any response error. */
int px_http1_status(enum px_http1_type type, int code);

/* --- Forwarding: the header block sent on --------------------------- */

struct px_http1_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct px_http1_forward {
	const char *client_addr;  /* X-Forwarded-For element (an IP), NULL: none added */
	bool xff_append;          /* keep the received X-Forwarded-For and append (else replace) */
	const char *proto;        /* X-Forwarded-Proto value ("http"/"https"); NULL: left as received */
	const char *via;          /* Via pseudonym ("weft-proxy"); NULL: no Via added */
	const char *by_id;        /* our SPIFFE ID: XFCC "By=" (may be NULL) */
	const char *peer_id;      /* the caller's SPIFFE ID: XFCC "URI="; NULL: no XFCC */
	const char *host;         /* Host added if the request has none (HTTP/1.0 sent on as 1.1) */
};

/* Writes the forwarded header section of message m (header lines and the
 * final empty line) into out: hop-by-hop fields removed (RFC 9110 §7.6.1),
 * Via, X-Forwarded-For and X-Forwarded-Proto handled, any received
 * X-Forwarded-Client-Cert dropped and ours set from f. Returns 0, or a
 * WEFT_E* code with *err saying why. */
int px_http1_forward_headers(const struct px_http1_msg *m, const struct px_http1_header *h,
			     size_t n, const struct px_http1_forward *f, struct buf *out, char **err);

#endif

/* gRPC health-checking messages (grpc_health.h). Protocol Buffers wire
 * format, only what HealthCheckRequest and HealthCheckResponse need: field
 * 1, a string in the request and an enum (varint) in the response; other
 * fields of the response are skipped by their wire type. */
#include "grpc_health.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FRAME_HEADER 5   /* compressed flag, 4-byte big-endian length */

size_t grpc_health_request(const char *service, unsigned char *out, size_t size)
{
	size_t n = service != NULL ? strlen(service) : 0, msg, at = 0;

	if (n > GRPC_SERVICE_MAX)
		return 0;
	/* field 1 (string): key 0x0a, a varint length (two bytes past 127) */
	msg = n == 0 ? 0 : 1 + (n > 127 ? 2 : 1) + n;
	if (size < FRAME_HEADER + msg)
		return 0;
	out[at++] = 0;
	out[at++] = (unsigned char)(msg >> 24);
	out[at++] = (unsigned char)(msg >> 16);
	out[at++] = (unsigned char)(msg >> 8);
	out[at++] = (unsigned char)msg;
	if (n > 0) {
		out[at++] = 0x0a;
		if (n > 127) {
			out[at++] = (unsigned char)(0x80 | (n & 0x7f));
			out[at++] = (unsigned char)(n >> 7);
		} else {
			out[at++] = (unsigned char)n;
		}
		memcpy(out + at, service, n);
		at += n;
	}
	return at;
}

/* A varint at p[*at..n): 0, or -1 when cut short or longer than 10 bytes. */
static int varint(const unsigned char *p, size_t n, size_t *at, unsigned long long *v)
{
	unsigned long long x = 0;
	unsigned shift = 0;

	while (*at < n && shift < 70) {
		unsigned char b = p[(*at)++];

		x |= (unsigned long long)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v = x;
			return 0;
		}
		shift += 7;
	}
	return -1;
}

int grpc_health_response(const unsigned char *p, size_t n, unsigned long long *status,
			 const char **why)
{
	size_t len, at, end;

	*status = GRPC_STATUS_UNKNOWN;
	if (n < FRAME_HEADER) {
		*why = n == 0 ? "the response has no message" : "the response's message is cut short";
		return -1;
	}
	if (p[0] != 0) {
		*why = "the response's message is compressed (none was accepted)";
		return -1;
	}
	len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | (size_t)p[4];
	if (len > n - FRAME_HEADER) {
		*why = "the response's message is cut short";
		return -1;
	}
	at = FRAME_HEADER;
	end = FRAME_HEADER + len;
	while (at < end) {
		unsigned long long key, v;
		size_t skip;

		if (varint(p, end, &at, &key) != 0)
			goto bad;
		switch (key & 7) {
		case 0:
			if (varint(p, end, &at, &v) != 0)
				goto bad;
			if (key >> 3 == 1)
				*status = v;
			continue;
		case 1:
			skip = 8;
			break;
		case 2:
			if (varint(p, end, &at, &v) != 0 || v > end - at)
				goto bad;
			skip = (size_t)v;
			break;
		case 5:
			skip = 4;
			break;
		default:
			goto bad;
		}
		if (skip > end - at)
			goto bad;
		at += skip;
	}
	return 0;
bad:
	*why = "the response's message is not a HealthCheckResponse";
	return -1;
}

const char *grpc_serving_name(unsigned long long status, char *buf, size_t size)
{
	static const char *const names[] = { "UNKNOWN", "SERVING", "NOT_SERVING",
					     "SERVICE_UNKNOWN" };

	if (status < sizeof(names) / sizeof(names[0]))
		return names[status];
	snprintf(buf, size, "status %llu", status);
	return buf;
}

const char *grpc_code_name(long code)
{
	static const char *const names[] = {
		"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
		"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
		"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
		"Unauthenticated",
	};

	if (code >= 0 && (size_t)code < sizeof(names) / sizeof(names[0]))
		return names[code];
	return "Code";
}

/* The gRPC health-checking protocol (grpc.health.v1.Health/Check) as bytes,
 * for the agent's gRPC checks: the request message framed as gRPC frames it,
 * and the serving status read from a framed response. The HTTP/2 exchange
 * itself is libcurl's (agent/checks.c). The response comes from the
 * checked application: untrusted, bounded, never read past its length. */
#ifndef WEFT_GRPC_HEALTH_H
#define WEFT_GRPC_HEALTH_H

#include <stddef.h>

#define GRPC_HEALTH_PATH "/grpc.health.v1.Health/Check"
#define GRPC_SERVICE_MAX 255   /* bytes of a service name in a check */

/* HealthCheckResponse.ServingStatus */
enum grpc_serving {
	GRPC_STATUS_UNKNOWN = 0,
	GRPC_STATUS_SERVING = 1,
	GRPC_STATUS_NOT_SERVING = 2,
	GRPC_STATUS_SERVICE_UNKNOWN = 3,
};

/* The framed HealthCheckRequest for service ("" or NULL: the server as a
 * whole) into out[size]; its length, or 0 when the name is too long. */
size_t grpc_health_request(const char *service, unsigned char *out, size_t size);

/* Reads the first framed message of a response body p[0..n): 0 with
 * *status (what the server sent, any number; an absent field is UNKNOWN,
 * as proto3 says), or -1 with *why. */
int grpc_health_response(const unsigned char *p, size_t n, unsigned long long *status,
			 const char **why);

/* "SERVING", "NOT_SERVING", ...; "status N" style for others (buf). */
const char *grpc_serving_name(unsigned long long status, char *buf, size_t size);

/* The name of a grpc-status code as Go's grpc prints it ("NotFound"). */
const char *grpc_code_name(long code);

#endif

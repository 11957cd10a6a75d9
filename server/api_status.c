/* /v1/status/...: one server, always its own leader. */
#include "http.h"
#include "server.h"

#include <stdio.h>
#include <string.h>

static int h_leader(struct req *r)
{
	if (!req_authorize(r, AUTH_READ, NULL))
		return 403;
	return req_reply_json(r, 200, json_string(req_server(r)->http_addr));
}

static int h_peers(struct req *r)
{
	if (!req_authorize(r, AUTH_READ, NULL))
		return 403;
	return req_reply_json(r, 200, json_pack("[s]", req_server(r)->http_addr));
}

const struct route api_status_routes[] = {
	{ M_GET, "/v1/status/leader", 0, h_leader },
	{ M_GET, "/v1/status/peers", 0, h_peers },
	{ 0, NULL, 0, NULL },
};

/* /ui/: the web UI (gui/, embedded at build time by gui/embed), and / and
 * /ui redirecting to it. The files are static and public: they need no
 * token; every API call the UI makes carries the user's.
 *
 * Replies carry an ETag (a hash of the file) and "Cache-Control: no-cache",
 * so a browser revalidates each time and gets 304 while the binary is the
 * same, plus a Content-Security-Policy that allows no inline script or
 * style and no other origin. */
#include "http.h"
#include "server.h"

#include "../gui/assets.h"

#include <stdlib.h>
#include <string.h>

static const char ui_csp[] =
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

static void ui_security_headers(struct req *r)
{
	req_add_header(r, "Content-Security-Policy", ui_csp);
	req_add_header(r, "X-Content-Type-Options", "nosniff");
	req_add_header(r, "Referrer-Policy", "no-referrer");
	req_add_header(r, "X-Frame-Options", "DENY");
}

static const struct gui_asset *ui_find(const char *path)
{
	if (path[0] == '\0')
		path = "index.html";
	for (const struct gui_asset *a = gui_assets; a->path; a++)
		if (strcmp(a->path, path) == 0)
			return a;
	return NULL;
}

/* Whether If-None-Match names the ETag (or is "*"); weak forms count. */
static int ui_not_modified(struct req *r, const char *etag)
{
	const char *inm = req_header(r, "If-None-Match");

	if (inm == NULL)
		return 0;
	return strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL;
}

static int ui_redirect(struct req *r)
{
	static const char body[] = "the web UI is at /ui/\n";

	req_add_header(r, "Location", "/ui/");
	return req_reply_raw(r, 302, "text/plain; charset=utf-8", strdup(body), sizeof(body) - 1);
}

static int h_asset(struct req *r)
{
	const struct gui_asset *a = ui_find(req_tail(r));
	char *copy;

	if (a == NULL)
		return req_error(r, 404, "no such file in the web UI: %s", req_path(r));
	ui_security_headers(r);
	req_add_header(r, "ETag", a->etag);
	req_add_header(r, "Cache-Control", "no-cache");
	if (ui_not_modified(r, a->etag))
		return req_reply_raw(r, 304, a->content_type, NULL, 0);
	copy = malloc(a->len ? a->len : 1);
	if (copy == NULL)
		return req_error(r, 500, "ui: out of memory for %s", a->path);
	memcpy(copy, a->data, a->len);
	return req_reply_raw(r, 200, a->content_type, copy, a->len);
}

const struct route api_ui_routes[] = {
	{ M_GET | M_HEAD, "/", 0, ui_redirect },
	{ M_GET | M_HEAD, "/ui", 0, ui_redirect },
	{ M_GET | M_HEAD, "/ui/", ROUTE_PREFIX, h_asset },
	{ 0, NULL, 0, NULL },
};

/* The web UI's files, embedded into weft-server at build time: gui/embed
 * turns each file of GUI_ASSETS (gui/Makefile.inc) into a row of
 * gui_assets[], which server/api_ui.c serves under /ui/. */
#ifndef WEFT_GUI_ASSETS_H
#define WEFT_GUI_ASSETS_H

#include <stddef.h>

struct gui_asset {
	const char *path;          /* relative to gui/: "index.html", "js/app.js" */
	const char *content_type;
	const char *etag;          /* quoted: "\"5f1c...\"" (a hash of the content) */
	const unsigned char *data;
	size_t len;
};

/* Terminated by a row whose path is NULL. */
extern const struct gui_asset gui_assets[];

#endif

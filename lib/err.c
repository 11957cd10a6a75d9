#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *weft_strerror(int code)
{
	switch (code) {
	case WEFT_OK: return "success";
	case WEFT_EINVAL: return "invalid argument";
	case WEFT_ENOENT: return "not found";
	case WEFT_EEXIST: return "already exists";
	case WEFT_ECONFLICT: return "conflict";
	case WEFT_EPERM: return "permission denied";
	case WEFT_ENOMEM: return "out of memory";
	case WEFT_EIO: return "input/output error";
	case WEFT_ETOOBIG: return "too big";
	case WEFT_ESHUTDOWN: return "shutting down";
	case WEFT_EAUTH: return "authentication required";
	default: return "unknown error";
	}
}

int weft_errf(char **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	free(*err);
	*err = NULL;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL;
	va_end(ap);
	return code;
}

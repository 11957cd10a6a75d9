/* Error codes shared by every module: negative values, 0 is success.
 * Details travel beside them as an allocated "char *err" message. */
#ifndef WEFT_ERR_H
#define WEFT_ERR_H

enum weft_err {
	WEFT_OK = 0,
	WEFT_EINVAL = -1,     /* bad input: the message names the field */
	WEFT_ENOENT = -2,     /* no such object */
	WEFT_EEXIST = -3,     /* already exists */
	WEFT_ECONFLICT = -4,  /* check-and-set or state conflict */
	WEFT_EPERM = -5,      /* permission denied */
	WEFT_ENOMEM = -6,
	WEFT_EIO = -7,        /* storage or system failure */
	WEFT_ETOOBIG = -8,    /* over a size limit */
	WEFT_ESHUTDOWN = -9,  /* the process is stopping */
	WEFT_EAUTH = -10,     /* missing or invalid credentials */
};

const char *weft_strerror(int code);

/* Formats an error message into *err (if err is not NULL) and returns code. */
int weft_errf(char **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* The one piece of process-wide state: written by main() before threads
 * start, only read afterwards. */
static enum log_level log_level_cur = LOG_LVL_INFO;
static FILE *log_out;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_setup(enum log_level level, FILE *out)
{
	log_level_cur = level;
	log_out = out;
}

int log_parse_level(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_enabled(enum log_level level)
{
	return level <= log_level_cur;
}

static void log_vemit(enum log_level level, const char *subsys, int saved_errno,
		      int with_errno, const char *fmt, va_list ap)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	FILE *out = log_out ? log_out : stderr;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s sub=%s ",
			      (long)(tv.tv_usec / 1000), level_names[level], subsys);
	if (n < sizeof(line)) {
		int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (w > 0)
			n += (size_t)w;
	}
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	if (with_errno)
		snprintf(line + n, sizeof(line) - n, " error=\"%s\"", strerror(saved_errno));
	/* One fputs per line so that lines from threads do not interleave. */
	n = strlen(line);
	if (n + 1 < sizeof(line)) {
		line[n] = '\n';
		line[n + 1] = '\0';
	}
	fputs(line, out);
	fflush(out);
}

void log_emit(enum log_level level, const char *subsys, int with_errno, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(level, subsys, saved, with_errno, fmt, ap);
	va_end(ap);
	errno = saved;
}

void fatalx(const char *subsys, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, subsys, 0, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

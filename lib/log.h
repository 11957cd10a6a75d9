/* Logging: one line per event, "ts level subsystem: event key=value ...".
 * log_warn appends strerror(errno); log_warnx does not (OpenBSD style).
 * The level is checked before the arguments are evaluated. */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

#include <stdio.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Set once by main() before any thread starts; read-only afterwards. */
void log_setup(enum log_level level, FILE *out);
int log_parse_level(const char *name, enum log_level *out);
int log_enabled(enum log_level level);
void log_emit(enum log_level level, const char *subsys, int with_errno,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define WEFT_LOG_(lvl, e, sub, ...) \
	do { if (log_enabled(lvl)) log_emit(lvl, sub, e, __VA_ARGS__); } while (0)
#define log_error(sub, ...)  WEFT_LOG_(LOG_LVL_ERROR, 1, sub, __VA_ARGS__)
#define log_errorx(sub, ...) WEFT_LOG_(LOG_LVL_ERROR, 0, sub, __VA_ARGS__)
#define log_warn(sub, ...)   WEFT_LOG_(LOG_LVL_WARN, 1, sub, __VA_ARGS__)
#define log_warnx(sub, ...)  WEFT_LOG_(LOG_LVL_WARN, 0, sub, __VA_ARGS__)
#define log_info(sub, ...)   WEFT_LOG_(LOG_LVL_INFO, 0, sub, __VA_ARGS__)
#define log_debug(sub, ...)  WEFT_LOG_(LOG_LVL_DEBUG, 0, sub, __VA_ARGS__)

/* Logs and exits(1). */
void fatalx(const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif

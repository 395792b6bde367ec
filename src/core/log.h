/*
 * log.h: leveled logging to stderr (or a callback, for libhearth which must
 * not write to a host's stderr unasked). Lines look like
 *   2026-11-21T10:00:00.123Z level=info msg="..." 
 * logfmt, so they grep and parse. Thread-safe: one write(2) per line.
 */
#ifndef HEARTH_CORE_LOG_H
#define HEARTH_CORE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/* Messages below level are dropped. Default LOG_INFO, or $HEARTH_LOG_LEVEL. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns -1 if unknown. */
int log_level_parse(const char *s);
/* Redirect output: fn receives the formatted line (no newline). NULL restores stderr. */
void log_set_sink(void (*fn)(enum log_level, const char *line));

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif

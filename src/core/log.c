/*
 * log.c: see log.h. The level is read once from $HEARTH_LOG_LEVEL on first use.
 */
#include "core/common.h"
#include "core/log.h"

#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/* Atomic: the first use may come from two threads at once (libhearth's collector and its host's). */
static _Atomic int cur_level = -1;
static void (*sink)(enum log_level, const char *);
static const char *const names[] = {"debug", "info", "warn", "error", "off"};

int log_level_parse(const char *s)
{
    for (int i = 0; i < (int)ARRAY_SIZE(names); i++)
        if (s && !strcasecmp(s, names[i])) return i;
    if (s && !strcasecmp(s, "warning")) return LOG_WARN;
    return -1;
}

enum log_level log_get_level(void)
{
    int l = atomic_load_explicit(&cur_level, memory_order_relaxed);
    if (l < 0) {
        /* both threads compute the same value from the environment; a set level wins over it */
        int parsed = log_level_parse(getenv("HEARTH_LOG_LEVEL")), unset = -1;
        l = parsed < 0 ? LOG_INFO : parsed;
        if (!atomic_compare_exchange_strong(&cur_level, &unset, l)) l = unset;
    }
    return (enum log_level)l;
}

void log_set_level(enum log_level level) { atomic_store(&cur_level, (int)level); }
void log_set_sink(void (*fn)(enum log_level, const char *)) { sink = fn; }

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if ((int)level < (int)log_get_level() || level >= LOG_OFF) return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    {
        /* The message is a logfmt quoted value: escape quotes, backslashes
         * and control characters so one event stays one parseable line. */
        char msg[1536];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        for (const char *c = msg; *c && n < (int)sizeof line - 8; c++) {
            unsigned char ch = (unsigned char)*c;
            if (ch == '"' || ch == '\\') { line[n++] = '\\'; line[n++] = (char)ch; }
            else if (ch == '\n') { line[n++] = '\\'; line[n++] = 'n'; }
            else if (ch < 0x20 || ch == 0x7f) n += snprintf(line + n, 5, "\\x%02x", ch);
            else line[n++] = (char)ch;
        }
    }
    line[n++] = '"';
    line[n] = 0;
    if (sink) { sink(level, line); return; }
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) { /* nothing useful to do */ }
}

/*
 * units.c: see units.h.
 */
#include "core/common.h"
#include "core/err.h"
#include "core/units.h"

#include <ctype.h>
#include <time.h>

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const struct { const char *name; int64_t ns; } dur_units[] = {
    {"ns", 1}, {"us", 1000}, {"\xc2\xb5s", 1000}, {"ms", 1000000}, {"s", 1000000000LL},
    {"m", 60000000000LL}, {"h", 3600000000000LL}, {"d", 86400000000000LL},
    {"w", 604800000000000LL}, {"y", 31536000000000000LL},
};

int parse_duration_ns(const char *s, int64_t *out)
{
    double total = 0;
    int any = 0;
    if (!s || !*s) return HE_FORMAT;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        size_t best = 0, k;
        int64_t mul = 1000000000LL;
        if (end == s || v < 0) return HE_FORMAT;
        s = end;
        for (k = 0; k < ARRAY_SIZE(dur_units); k++) {
            size_t len = strlen(dur_units[k].name);
            if (!strncmp(s, dur_units[k].name, len) && len > best &&
                !(len == 1 && s[0] == 'm' && s[1] == 's')) {
                best = len;
                mul = dur_units[k].ns;
            }
        }
        if (!best && *s) return HE_FORMAT;
        if (!best && any) return HE_FORMAT;  /* "1h30" is ambiguous */
        s += best;
        total += v * (double)mul;
        any = 1;
    }
    if (total > 9.2e18) return HE_FORMAT;
    *out = (int64_t)total;
    return 0;
}

int parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v;
    double mul = 1;
    if (!s || !*s) return HE_FORMAT;
    v = strtod(s, &end);
    if (end == s || v < 0) return HE_FORMAT;
    while (*end == ' ') end++;
    switch (tolower((unsigned char)*end)) {
    case 0: break;
    case 'b': mul = 1; end++; break;
    case 'k': mul = 1024.0; end++; break;
    case 'm': mul = 1024.0 * 1024; end++; break;
    case 'g': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: return HE_FORMAT;
    }
    if (mul > 1) {
        /* KB and KiB both mean 1024 here: nobody sets a body limit in powers of ten. */
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'b' || *end == 'B') end++;
    }
    if (*end || v * mul > 1.8e19) return HE_FORMAT;
    *out = (uint64_t)(v * mul);
    return 0;
}

int64_t unix_any_to_ns(int64_t v)
{
    /* Pyroscope's rule: < 1e10 seconds, < 1e13 ms, < 1e16 µs, else ns.
     * Negative input (before 1970) saturates instead of overflowing. */
    int64_t mul = v < 10000000000LL ? 1000000000LL : v < 10000000000000LL ? 1000000LL
                : v < 10000000000000000LL ? 1000LL : 1;
    int64_t r;
    if (__builtin_mul_overflow(v, mul, &r)) return v < 0 ? INT64_MIN : INT64_MAX;
    return r;
}

int parse_time_ns(const char *s, int64_t now, int64_t *out)
{
    if (!s || !*s) return HE_FORMAT;
    while (isspace((unsigned char)*s)) s++;
    if (!strncmp(s, "now", 3)) {
        int64_t d = 0;
        if (!s[3]) { *out = now; return 0; }
        if ((s[3] != '-' && s[3] != '+') || parse_duration_ns(s + 4, &d)) return HE_FORMAT;
        if (s[3] == '-' ? __builtin_sub_overflow(now, d, out) : __builtin_add_overflow(now, d, out)) return HE_FORMAT;
        return 0;
    }
    if (isdigit((unsigned char)*s) || *s == '-') {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (*end == 0) {
            if (errno == ERANGE || v < 0) return HE_FORMAT;  /* no timestamps before 1970 */
            *out = unix_any_to_ns(v);
            return 0;
        }
        if (*end == '-' && end - s == 4) {  /* RFC 3339 */
            struct tm tm;
            memset(&tm, 0, sizeof tm);
            const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
            int64_t frac = 0, off = 0;
            if (!rest) rest = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
            if (!rest) return HE_FORMAT;
            if (*rest == '.') {
                int64_t scale = 100000000;
                for (rest++; isdigit((unsigned char)*rest); rest++, scale /= 10) frac += (*rest - '0') * scale;
            }
            if (*rest == 'Z' || *rest == 'z') rest++;
            else if (*rest == '+' || *rest == '-') {
                int hh, mm;
                if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2) return HE_FORMAT;
                off = (hh * 3600 + mm * 60) * (*rest == '+' ? 1 : -1);
                rest += 6;
            }
            if (*rest) return HE_FORMAT;
            *out = ((int64_t)timegm(&tm) - off) * 1000000000LL + frac;
            return 0;
        }
    }
    return HE_FORMAT;
}

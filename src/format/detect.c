/*
 * detect.c: format detection from bytes, and decoding any known format.
 *
 * Detection looks at a bounded prefix (64 KiB), in this order:
 *   1. gzip or zstd magic          -> pprof (the usual compressed profile;
 *                                     prof_decode_any looks inside instead)
 *   2. UTF-16 byte order mark      -> folded (speedscope's UTF-16 samples)
 *   3. first non-space byte '{'    -> speedscope JSON
 *   4. perf script header + frame  -> perf script
 *   5. a line "stack COUNT"        -> folded (comments and junk may precede)
 *   6. control bytes or invalid    -> pprof (protobuf is binary)
 *      UTF-8 (checked before 4 and 5 for control bytes, after for UTF-8,
 *      so a folded file with a bad name gets the folded parser's error)
 * Anything else is PF_UNKNOWN: text we do not recognize.
 */
#include "core/common.h"
#include "core/compress.h"
#include "core/json.h"
#include "format/detect.h"
#include "format/folded.h"
#include "format/perfscript.h"
#include "format/pprof.h"
#include "format/speedscope.h"

#define SNIFF_MAX ((size_t)64 * 1024)
#define DEFAULT_MAX_DECOMPRESSED ((size_t)512 << 20)

const char *prof_format_name(enum prof_format f)
{
    switch (f) {
    case PF_AUTO: return "auto";
    case PF_PPROF: return "pprof";
    case PF_FOLDED: return "folded";
    case PF_PERFSCRIPT: return "perf-script";
    case PF_SPEEDSCOPE: return "speedscope";
    default: return "unknown";
    }
}

enum prof_format prof_format_parse(const char *name)
{
    static const struct { const char *name; enum prof_format f; } names[] = {
        {"auto", PF_AUTO}, {"pprof", PF_PPROF}, {"folded", PF_FOLDED}, {"collapsed", PF_FOLDED},
        {"perf-script", PF_PERFSCRIPT}, {"perfscript", PF_PERFSCRIPT}, {"perf", PF_PERFSCRIPT},
        {"speedscope", PF_SPEEDSCOPE},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) if (!strcmp(name, names[i].name)) return names[i].f;
    return PF_UNKNOWN;
}

/* A line "something COUNT" among the first lines (comments and junk allowed before). */
static int folded_sniff(const char *s, size_t n)
{
    const char *end = s + n;
    int lines = 0;
    while (s < end && lines++ < 200) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = (size_t)((nl ? nl : end) - s), i;
        if (len && s[len - 1] == '\r') len--;
        if (!nl && end - s == (ptrdiff_t)SNIFF_MAX) break;  /* a cut line proves nothing */
        i = len;
        while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9') i--;
        if (i < len && i >= 2 && s[i - 1] == ' ' && s[0] != '#') {
            size_t k = 0;
            while (k < len && ((unsigned char)s[k] >= 0x20 || s[k] == '\t')) k++;
            if (k == len) return 1;  /* text (not necessarily UTF-8: the parser says where it is not) */
        }
        if (!nl) break;
        s = nl + 1;
    }
    return 0;
}

/* Control bytes other than line breaks and tabs: protobuf, not text. */
static int looks_binary(const unsigned char *s, size_t n)
{
    size_t m = MIN(n, (size_t)4096);
    for (size_t i = 0; i < m; i++)
        if ((s[i] < 0x20 && s[i] != '\n' && s[i] != '\r' && s[i] != '\t' && s[i] != '\f' && s[i] != '\v') || s[i] == 0x7f)
            return 1;
    return 0;
}

enum prof_format prof_format_detect(const void *data, size_t n)
{
    const unsigned char *u = data;
    const char *s = data;
    size_t m = MIN(n, SNIFF_MAX), i = 0;
    if (n == 0) return PF_UNKNOWN;
    if (is_gzip(data, n) || is_zstd(data, n)) return PF_PPROF;
    if (n >= 2 && ((u[0] == 0xff && u[1] == 0xfe) || (u[0] == 0xfe && u[1] == 0xff))) return PF_FOLDED;
    if (m >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) { s += 3; m -= 3; n -= 3; u += 3; }
    while (i < m && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    if (i < m && s[i] == '{') return PF_SPEEDSCOPE;
    if (looks_binary(u, m)) return PF_PPROF;
    if (perfscript_sniff(s, m)) return PF_PERFSCRIPT;
    if (folded_sniff(s, m)) return PF_FOLDED;
    /* One line longer than the prefix (a very deep stack): judge by the last line. */
    if (!memchr(s, '\n', m) && n > m) {
        size_t tail = MIN(n, SNIFF_MAX - 1), start = n - tail;
        const char *t = s + start, *nl;
        while (tail && (t[tail - 1] == '\n' || t[tail - 1] == '\r')) tail--;
        nl = memrchr(t, '\n', tail);
        if (nl) { tail -= (size_t)(nl + 1 - t); t = nl + 1; }
        if (folded_sniff(t, tail)) return PF_FOLDED;
    }
    /* not UTF-8 and no text format fits: let the pprof decoder judge it */
    if (utf8_first_invalid(s, m) + 4 < m) return PF_PPROF;
    return PF_UNKNOWN;
}

int prof_decode_any(profile *p, const void *data, size_t n, enum prof_format f, size_t max_decompressed, herr *e)
{
    buf plain = BUF_INIT;
    int rc;
    if (!max_decompressed) max_decompressed = DEFAULT_MAX_DECOMPRESSED;
    if (is_gzip(data, n) || is_zstd(data, n)) {
        buf_init(&plain, max_decompressed);
        rc = is_gzip(data, n) ? gz_decompress(data, n, &plain, e) : zstd_decompress(data, n, &plain, e);
        if (rc) {
            if (rc == HE_TOOBIG)
                herr_set(e, rc, "decompressed input is larger than the cap of %zu bytes (a compression bomb?)", max_decompressed);
            buf_release(&plain);
            return rc;
        }
        data = plain.data ? plain.data : "";
        n = plain.len;
    }
    if (f == PF_AUTO) {
        f = prof_format_detect(data, n);
        if (f == PF_UNKNOWN) {
            buf_release(&plain);
            if (n == 0) return herr_set(e, HE_FORMAT, "input is empty");
            return herr_set(e, HE_FORMAT, "not a known profile format (pprof, folded, perf script or speedscope)");
        }
    }
    switch (f) {
    case PF_PPROF: rc = pprof_decode(p, data, n, max_decompressed, e); break;
    case PF_FOLDED: rc = folded_parse(p, data, n, e); break;
    case PF_PERFSCRIPT: rc = perfscript_parse(p, data, n, e); break;
    case PF_SPEEDSCOPE: rc = speedscope_parse(p, data, n, e); break;
    default: rc = herr_set(e, HE_USAGE, "unknown input format"); break;
    }
    buf_release(&plain);
    return rc;
}

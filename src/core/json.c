/*
 * json.c: see json.h.
 */
#include "core/common.h"
#include "core/json.h"

#include <math.h>

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xc2 || c > 0xf4) return 0;
    if (c < 0xe0) return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c < 0xf0) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && s[1] < 0xa0) return 0;   /* overlong */
        if (c == 0xed && s[1] >= 0xa0) return 0;  /* surrogate */
        return 3;
    }
    if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) return 0;
    if (c == 0xf0 && s[1] < 0x90) return 0;
    if (c == 0xf4 && s[1] >= 0x90) return 0;
    return 4;
}

size_t utf8_first_invalid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t k = utf8_seq(s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

int utf8_valid(const char *s, size_t n) { return utf8_first_invalid(s, n) == n; }

int json_str(buf *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;
    int rc = buf_reserve(b, n + 2);
    if (rc) return rc;
    b->data[b->len++] = '"';
    while (i < n) {
        unsigned c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) { i++; run++; continue; }
        if (run && (rc = buf_append(b, s + i - run, run))) return rc;
        run = 0;
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, n - i);
            if (k) { rc = buf_append(b, s + i, k); i += k; }
            else { rc = buf_append(b, "\xef\xbf\xbd", 3); i++; }
        } else if (c == '"') { rc = buf_append(b, "\\\"", 2); i++; }
        else if (c == '\\') { rc = buf_append(b, "\\\\", 2); i++; }
        else if (c == '\n') { rc = buf_append(b, "\\n", 2); i++; }
        else if (c == '\t') { rc = buf_append(b, "\\t", 2); i++; }
        else if (c == '\r') { rc = buf_append(b, "\\r", 2); i++; }
        else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, esc, 6);
            i++;
        }
        if (rc) return rc;
    }
    if (run && (rc = buf_append(b, s + i - run, run))) return rc;
    return buf_putc(b, '"');
}

void jw_init(jw *w, buf *b) { w->b = b; w->depth = 0; w->need_comma = 0; w->err = 0; }

static void sep(jw *w)
{
    uint64_t bit = (uint64_t)1 << (w->depth & 63);
    if (w->need_comma & bit) { if (!w->err) w->err = buf_putc(w->b, ','); }
    w->need_comma |= bit;
}
static void put(jw *w, const char *s, size_t n) { if (!w->err) w->err = buf_append(w->b, s, n); }

static void open_(jw *w, char c) { sep(w); put(w, &c, 1); w->depth++; w->need_comma &= ~((uint64_t)1 << (w->depth & 63)); }
static void close_(jw *w, char c) { w->depth--; put(w, &c, 1); }

void jw_obj(jw *w) { open_(w, '{'); }
void jw_obj_end(jw *w) { close_(w, '}'); }
void jw_arr(jw *w) { open_(w, '['); }
void jw_arr_end(jw *w) { close_(w, ']'); }

void jw_key(jw *w, const char *key)
{
    sep(w);
    if (!w->err) w->err = json_cstr(w->b, key);
    put(w, ":", 1);
    /* the value that follows must not add a comma */
    w->need_comma &= ~((uint64_t)1 << (w->depth & 63));
}

/* After a value at this depth, the next item needs a comma. */
static void done(jw *w) { w->need_comma |= (uint64_t)1 << (w->depth & 63); }

void jw_string(jw *w, const char *s, size_t n) { sep(w); if (!w->err) w->err = json_str(w->b, s, n); done(w); }
void jw_cstring(jw *w, const char *s) { jw_string(w, s, strlen(s)); }
void jw_int(jw *w, int64_t v) { sep(w); if (!w->err) w->err = buf_put_i64(w->b, v); done(w); }
void jw_uint(jw *w, uint64_t v) { sep(w); if (!w->err) w->err = buf_put_u64(w->b, v); done(w); }
void jw_double(jw *w, double v)
{
    sep(w);
    if (!isfinite(v)) put(w, "null", 4);
    else if (!w->err) w->err = buf_printf(w->b, "%.17g", v);
    done(w);
}
void jw_bool(jw *w, int v) { sep(w); put(w, v ? "true" : "false", v ? 4 : 5); done(w); }
void jw_null(jw *w) { sep(w); put(w, "null", 4); done(w); }
void jw_raw(jw *w, const char *json, size_t n) { sep(w); put(w, json, n); done(w); }

/*
 * json.h: a small JSON writer over buf, and UTF-8 checks.
 *
 * Output is always valid JSON and valid UTF-8: json_str() escapes control
 * characters, quotes and backslashes, and replaces each invalid UTF-8 byte
 * with U+FFFD (profiles in the wild carry Latin-1 and binary names).
 * Parsing JSON input is done with json-c where needed (server, speedscope).
 *
 * The writer tracks nothing: callers place commas themselves, or use the
 * jw_* helpers, which keep a "need comma" flag per nesting level.
 */
#ifndef HEARTH_CORE_JSON_H
#define HEARTH_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Appends s[0..n) as a quoted JSON string. 0, -ENOMEM or HE_TOOBIG. */
int json_str(buf *b, const char *s, size_t n);
static inline int json_cstr(buf *b, const char *s) { return json_str(b, s, strlen(s)); }

/* 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int utf8_valid(const char *s, size_t n);
/* Offset of the first invalid byte, or n if all valid. */
size_t utf8_first_invalid(const char *s, size_t n);

/* Nesting-aware writer: jw_begin_obj / jw_key / values / jw_end_obj. */
typedef struct jw {
    buf *b;
    int depth;
    uint64_t need_comma;  /* bit per depth */
    int err;              /* first error, sticky */
} jw;

void jw_init(jw *w, buf *b);
void jw_obj(jw *w);
void jw_obj_end(jw *w);
void jw_arr(jw *w);
void jw_arr_end(jw *w);
void jw_key(jw *w, const char *key);
void jw_string(jw *w, const char *s, size_t n);
void jw_cstring(jw *w, const char *s);
void jw_int(jw *w, int64_t v);
void jw_uint(jw *w, uint64_t v);
void jw_double(jw *w, double v);
void jw_bool(jw *w, int v);
void jw_null(jw *w);
/* Appends already-encoded JSON text as one value. */
void jw_raw(jw *w, const char *json, size_t n);

#endif

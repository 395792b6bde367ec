/*
 * buf.h: a growable byte buffer with a hard cap (curl's dynbuf idea).
 *
 * Every buffer built from input gets its cap when it is created; appends that
 * would pass it fail with HE_TOOBIG and leave the buffer as it was. data is
 * always NUL-terminated (the NUL is not counted in len), so text can be used
 * as a C string. The buffer owns data until buf_release() or buf_detach().
 */
#ifndef HEARTH_CORE_BUF_H
#define HEARTH_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data;  /* NULL until the first append; then NUL-terminated */
    size_t len;
    size_t cap;  /* allocated, including room for the NUL */
    size_t max;  /* cap on len; 0 means SIZE_MAX/2 */
} buf;

#define BUF_INIT {NULL, 0, 0, 0}

void buf_init(buf *b, size_t max);
void buf_release(buf *b);
/* Returns data (caller owns, free()) and resets b; never NULL ("" if empty). */
char *buf_detach(buf *b, size_t *len);
void buf_reset(buf *b); /* len = 0, keeps memory */

/* All return 0, -ENOMEM or HE_TOOBIG. */
int buf_reserve(buf *b, size_t extra);
int buf_append(buf *b, const void *p, size_t n);
int buf_puts(buf *b, const char *s);
int buf_putc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap);
/* Decimal integers, without printf's overhead (hot in encoders). */
int buf_put_i64(buf *b, int64_t v);
int buf_put_u64(buf *b, uint64_t v);

/* Reads a whole file (or stdin for "-") into b, failing with HE_TOOBIG past b->max. */
int buf_read_file(buf *b, const char *path);
/* Writes len bytes to path atomically (temp, fsync, rename, fsync dir); "-" is stdout. */
int buf_write_file(const buf *b, const char *path);

#endif

/*
 * compress.h: gzip (zlib) and zstd, one-shot, with decompressed-size caps.
 *
 * Decompression writes into a buf whose max is the cap: a gzip bomb stops at
 * the cap with HE_TOOBIG instead of filling memory. Concatenated gzip members
 * (what `cat a.gz b.gz` makes) are decoded as one stream, like gunzip does.
 */
#ifndef HEARTH_CORE_COMPRESS_H
#define HEARTH_CORE_COMPRESS_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

static inline int is_gzip(const void *p, size_t n)
{
    const unsigned char *c = p;
    return n >= 2 && c[0] == 0x1f && c[1] == 0x8b;
}
static inline int is_zstd(const void *p, size_t n)
{
    const unsigned char *c = p;
    return n >= 4 && c[0] == 0x28 && c[1] == 0xb5 && c[2] == 0x2f && c[3] == 0xfd;
}

/* Appends the gunzipped bytes to out (cap = out->max). 0, HE_GZIP, HE_TOOBIG, -ENOMEM. */
int gz_decompress(const void *in, size_t n, buf *out, herr *e);
/* Appends a gzip stream of in; level 1..9 (6 is gzip's default). */
int gz_compress(const void *in, size_t n, int level, buf *out);
/* Appends the zstd-decompressed bytes to out (cap = out->max). 0, HE_ZSTD, HE_TOOBIG. */
int zstd_decompress(const void *in, size_t n, buf *out, herr *e);
/* Appends one zstd frame of in at the given level (3 is zstd's default). */
int zstd_compress(const void *in, size_t n, int level, buf *out);

#endif

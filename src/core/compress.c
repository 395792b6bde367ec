/*
 * compress.c: see compress.h. Streaming loops so the cap is checked as the
 * output grows, never after the fact.
 *
 * gunzip fast path: a single-member gzip whose trailer states a size within
 * the cap is inflated in one call by libdeflate (2-3x faster than zlib's
 * inflate) into a buffer of exactly that size. The trailer is only a claim:
 * libdeflate fails if the real output differs, and then zlib's streaming
 * loop below decides (it enforces the cap as it goes and reports
 * truncation and corruption precisely).
 *
 * Contexts: creating a zstd context costs more than decompressing a 16 KiB
 * sample chunk (~45 us of ~70 us, mostly allocating its window), and a
 * query decompresses thousands of chunks, so each thread keeps one zstd
 * decompression context, one compression context and one libdeflate
 * decompressor, created on first use and freed when the thread exits.
 */
#include "core/common.h"
#include "core/compress.h"

#include <libdeflate.h>
#include <pthread.h>
#include <zlib.h>
#include <zstd.h>

typedef struct codec_cache {
    ZSTD_DCtx *zd;
    ZSTD_CCtx *zc;
    struct libdeflate_decompressor *gd;
} codec_cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_ok;
static __thread codec_cache tls_cache;

static void cache_free(void *p)
{
    codec_cache *c = p;
    ZSTD_freeDCtx(c->zd);
    ZSTD_freeCCtx(c->zc);
    if (c->gd) libdeflate_free_decompressor(c->gd);
    memset(c, 0, sizeof *c);
}

static void cache_key_init(void)
{
    cache_key_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

/* This thread's cache, registered for freeing at thread exit; NULL when no
 * destructor could be registered (callers then use a context per call). */
static codec_cache *cache_get(void)
{
    pthread_once(&cache_once, cache_key_init);
    if (!cache_key_ok) return NULL;
    if (!pthread_getspecific(cache_key) && pthread_setspecific(cache_key, &tls_cache) != 0) return NULL;
    return &tls_cache;
}

/* 0 when libdeflate produced exactly the output the trailer announced. */
static int gz_fast(const void *in, size_t n, buf *out, size_t cap)
{
    const unsigned char *c = in;
    uint32_t isize;
    size_t in_used = 0, out_len = 0;
    struct libdeflate_decompressor *d;
    enum libdeflate_result r;
    if (n < 18) return -1;
    memcpy(&isize, c + n - 4, 4);
    if (isize == 0 || isize > cap - out->len || buf_reserve(out, isize)) return -1;
    codec_cache *cc = cache_get();
    if (cc && !cc->gd) cc->gd = libdeflate_alloc_decompressor();
    d = cc && cc->gd ? cc->gd : libdeflate_alloc_decompressor();
    if (!d) return -1;
    r = libdeflate_gzip_decompress_ex(d, in, n, out->data + out->len, isize, &in_used, &out_len);
    if (!cc || d != cc->gd) libdeflate_free_decompressor(d);
    /* Another member after this one: let zlib handle the concatenation. */
    if (r != LIBDEFLATE_SUCCESS || out_len != isize || in_used != n) return -1;
    out->len += out_len;
    out->data[out->len] = 0;
    return 0;
}

int gz_decompress(const void *in, size_t n, buf *out, herr *e)
{
    size_t cap = out->max ? out->max : SIZE_MAX / 2, start = out->len;
    z_stream zs;
    int rc = 0;

    if (n > UINT_MAX) return herr_set(e, HE_TOOBIG, "compressed input of %zu bytes is too large", n);
    if (gz_fast(in, n, out, cap) == 0) return 0;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) return -ENOMEM;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    /* Profiles compress 2-5x: reserving 4x up front avoids most regrowth. */
    if ((rc = buf_reserve(out, MIN(n * 4 + 4096, cap - out->len))) != 0) goto done;
    for (;;) {
        unsigned char probe;
        size_t room;
        int zrc;
        if (out->cap - out->len - 1 < 4096 && out->len < cap &&
            (rc = buf_reserve(out, MIN(out->cap, cap - out->len))) != 0)
            goto done;
        room = MIN(out->cap - out->len - 1, cap - out->len);
        /* At the cap, inflate into a 1-byte probe: any output means too big. */
        zs.next_out = room ? (Bytef *)out->data + out->len : &probe;
        zs.avail_out = room ? (uInt)MIN(room, (size_t)UINT_MAX) : 1;
        uInt before = zs.avail_out;
        zrc = inflate(&zs, Z_NO_FLUSH);
        if (!room && zs.avail_out == 0) {
            rc = herr_set(e, HE_TOOBIG, "decompressed size exceeds the limit of %zu bytes (gzip bomb?)", cap);
            goto done;
        }
        if (room) out->len += before - zs.avail_out;
        if (zrc == Z_STREAM_END) {
            /* Concatenated members decode as one stream; other trailing bytes
             * are ignored, as gunzip does. */
            if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
                inflateReset(&zs);
                continue;
            }
            break;
        }
        if (zrc == Z_BUF_ERROR && zs.avail_in == 0) {
            rc = herr_set(e, HE_GZIP, "gzip stream is truncated (ends after %zu compressed bytes)", n);
            goto done;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = herr_set(e, HE_GZIP, "corrupt gzip data: %s", zs.msg ? zs.msg : "inflate failed");
            goto done;
        }
    }
done:
    inflateEnd(&zs);
    if (rc) out->len = start;
    if (out->data) out->data[out->len] = 0;
    return rc;
}

int gz_compress(const void *in, size_t n, int level, buf *out)
{
    z_stream zs;
    int rc = 0, zrc;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -ENOMEM;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    if ((rc = buf_reserve(out, deflateBound(&zs, (uLong)n))) != 0) { deflateEnd(&zs); return rc; }
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)(out->cap - out->len - 1);
    uInt before = zs.avail_out;
    zrc = deflate(&zs, Z_FINISH);
    out->len += before - zs.avail_out;
    out->data[out->len] = 0;
    deflateEnd(&zs);
    return zrc == Z_STREAM_END ? 0 : -EIO;
}

int zstd_decompress(const void *in, size_t n, buf *out, herr *e)
{
    size_t cap = out->max ? out->max : SIZE_MAX / 2, start = out->len, zr = 1;
    codec_cache *cc = cache_get();
    ZSTD_DCtx *ds;
    ZSTD_inBuffer ib = {in, n, 0};
    int rc = 0;
    if (cc && !cc->zd) cc->zd = ZSTD_createDCtx();
    ds = cc && cc->zd ? cc->zd : ZSTD_createDCtx();
    if (!ds) return -ENOMEM;
    ZSTD_DCtx_reset(ds, ZSTD_reset_session_only);
    while (zr != 0) {
        unsigned char probe;
        size_t space = out->cap ? out->cap - out->len - 1 : 0, room;
        if (space < 65536 && out->len < cap &&
            (rc = buf_reserve(out, MIN(MAX(out->cap, (size_t)65536), cap - out->len))) != 0)
            break;
        room = MIN(out->cap - out->len - 1, cap - out->len);
        ZSTD_outBuffer ob = {room ? (void *)(out->data + out->len) : (void *)&probe, room ? room : 1, 0};
        size_t in_before = ib.pos;
        zr = ZSTD_decompressStream(ds, &ob, &ib);
        if (ZSTD_isError(zr)) { rc = herr_set(e, HE_ZSTD, "corrupt zstd data: %s", ZSTD_getErrorName(zr)); break; }
        if (!room && ob.pos) {
            rc = herr_set(e, HE_TOOBIG, "decompressed size exceeds the limit of %zu bytes", cap);
            break;
        }
        out->len += room ? ob.pos : 0;
        if (zr != 0 && ib.pos == ib.size && ob.pos < ob.size && ib.pos == in_before) {
            rc = herr_set(e, HE_ZSTD, "zstd frame is truncated");
            break;
        }
        if (zr == 0 && ib.pos < ib.size) zr = 1;  /* another frame follows */
    }
    if (!cc || ds != cc->zd) ZSTD_freeDCtx(ds);
    if (rc) out->len = start;
    if (out->data) out->data[out->len] = 0;
    return rc;
}

int zstd_compress(const void *in, size_t n, int level, buf *out)
{
    size_t bound = ZSTD_compressBound(n), zr;
    int rc = buf_reserve(out, bound);
    if (rc) return rc;
    codec_cache *cc = cache_get();
    if (cc && !cc->zc) cc->zc = ZSTD_createCCtx();
    zr = cc && cc->zc ? ZSTD_compressCCtx(cc->zc, out->data + out->len, bound, in, n, level)
                      : ZSTD_compress(out->data + out->len, bound, in, n, level);
    if (ZSTD_isError(zr)) return -EIO;
    out->len += zr;
    out->data[out->len] = 0;
    return 0;
}

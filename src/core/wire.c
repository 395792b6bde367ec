/*
 * wire.c: see wire.h.
 */
#include "core/common.h"
#include "core/wire.h"

int wire_varint_slow(wire_rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        uint8_t c;
        if (r->p >= r->end) return HE_TRUNCATED;
        c = *r->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) { *v = x; return 0; }
    }
    return HE_FORMAT;
}

int wire_tag(wire_rd *r, uint32_t *field, int *wt)
{
    uint64_t t;
    int rc = wire_varint(r, &t);
    if (rc) return rc;
    *wt = (int)(t & 7);
    t >>= 3;
    if (t == 0 || t > 0x1fffffff || *wt == 6 || *wt == 7) return HE_FORMAT;
    *field = (uint32_t)t;
    return 0;
}

int wire_bytes(wire_rd *r, const uint8_t **p, size_t *n)
{
    uint64_t len;
    int rc = wire_varint(r, &len);
    if (rc) return rc;
    if (len > (uint64_t)(r->end - r->p)) return HE_TRUNCATED;
    *p = r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

int wire_fixed64(wire_rd *r, uint64_t *v)
{
    if (r->end - r->p < 8) return HE_TRUNCATED;
    memcpy(v, r->p, 8);  /* little-endian hosts only (x86-64, arm64) */
    r->p += 8;
    return 0;
}

int wire_fixed32(wire_rd *r, uint32_t *v)
{
    if (r->end - r->p < 4) return HE_TRUNCATED;
    memcpy(v, r->p, 4);
    r->p += 4;
    return 0;
}

static int skip_depth(wire_rd *r, int wt, int depth)
{
    uint64_t v;
    const uint8_t *p;
    size_t n;
    switch (wt) {
    case WT_VARINT: return wire_varint(r, &v);
    case WT_I64: if (r->end - r->p < 8) return HE_TRUNCATED; r->p += 8; return 0;
    case WT_I32: if (r->end - r->p < 4) return HE_TRUNCATED; r->p += 4; return 0;
    case WT_LEN: return wire_bytes(r, &p, &n);
    case WT_SGROUP:
        if (depth > 32) return HE_FORMAT;
        for (;;) {
            uint32_t f;
            int w, rc = wire_tag(r, &f, &w);
            if (rc) return rc;
            if (w == WT_EGROUP) return 0;
            if ((rc = skip_depth(r, w, depth + 1)) != 0) return rc;
        }
    default: return HE_WIRETYPE;
    }
}

int wire_skip(wire_rd *r, int wt) { return skip_depth(r, wt, 0); }

int wire_expect_varint(wire_rd *r, int wt, uint64_t *v)
{
    if (wt != WT_VARINT) return HE_WIRETYPE;
    return wire_varint(r, v);
}

int wire_scalar_begin(wire_scalar_iter *it, wire_rd *r, int wt)
{
    it->err = 0;
    if (wt == WT_LEN) {
        const uint8_t *p;
        size_t n;
        int rc = wire_bytes(r, &p, &n);
        if (rc) return rc;
        wire_rd_init(&it->sub, p, n);
        it->single = 0;
        return 0;
    }
    if (wt == WT_VARINT) {
        it->single = 1;
        return wire_varint(r, &it->value);
    }
    return HE_WIRETYPE;
}

int wire_scalar_next(wire_scalar_iter *it, uint64_t *v)
{
    if (it->single == 1) { it->single = 2; *v = it->value; return 1; }
    if (it->single == 2 || wire_eof(&it->sub)) return 0;
    int rc = wire_varint(&it->sub, v);
    return rc ? rc : 1;
}

int wire_put_varint(buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) { tmp[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    tmp[n++] = (uint8_t)v;
    return buf_append(b, tmp, n);
}

int wire_put_tag(buf *b, uint32_t field, int wt) { return wire_put_varint(b, ((uint64_t)field << 3) | (uint64_t)wt); }

int wire_put_uint(buf *b, uint32_t field, uint64_t v)
{
    int rc = wire_put_tag(b, field, WT_VARINT);
    return rc ? rc : wire_put_varint(b, v);
}

int wire_put_fixed64(buf *b, uint32_t field, uint64_t v)
{
    int rc = wire_put_tag(b, field, WT_I64);
    return rc ? rc : buf_append(b, &v, 8);
}

int wire_put_bytes(buf *b, uint32_t field, const void *p, size_t n)
{
    int rc = wire_put_tag(b, field, WT_LEN);
    if (!rc) rc = wire_put_varint(b, n);
    return rc ? rc : buf_append(b, p, n);
}

int wire_put_packed_u64(buf *b, uint32_t field, const uint64_t *v, size_t n)
{
    size_t size = 0;
    int rc;
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) size += wire_varint_size(v[i]);
    if ((rc = wire_put_tag(b, field, WT_LEN)) || (rc = wire_put_varint(b, size))) return rc;
    if ((rc = buf_reserve(b, size))) return rc;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = v[i];
        while (x >= 0x80) { b->data[b->len++] = (char)(x | 0x80); x >>= 7; }
        b->data[b->len++] = (char)x;
    }
    b->data[b->len] = 0;
    return 0;
}

int wire_put_packed_i64(buf *b, uint32_t field, const int64_t *v, size_t n)
{
    return wire_put_packed_u64(b, field, (const uint64_t *)v, n);
}

long wire_begin(buf *b, uint32_t field)
{
    int rc = wire_put_tag(b, field, WT_LEN);
    if (!rc) rc = buf_putc(b, 0);
    return rc ? rc : (long)b->len;
}

int wire_end(buf *b, long mark)
{
    size_t len = b->len - (size_t)mark, extra = wire_varint_size(len) - 1;
    uint8_t *start;
    int rc;
    if (extra) {
        if ((rc = buf_reserve(b, extra))) return rc;
        memmove(b->data + mark + extra, b->data + mark, len);
        b->len += extra;
        b->data[b->len] = 0;
    }
    start = (uint8_t *)b->data + mark - 1;
    while (len >= 0x80) { *start++ = (uint8_t)(len | 0x80); len >>= 7; }
    *start = (uint8_t)len;
    return 0;
}

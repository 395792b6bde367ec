/*
 * wire.h: protobuf wire format reader and writer (no schema, no generated
 * code). Encoding reference: https://protobuf.dev/programming-guides/encoding/
 *
 *   tag      = varint(field_number << 3 | wire_type)
 *   VARINT 0 = base-128 varint, at most 10 bytes
 *   I64    1 = 8 bytes little-endian
 *   LEN    2 = varint length, then that many bytes (strings, messages, packed)
 *   SGROUP 3 / EGROUP 4 = deprecated groups (skipped, nesting capped)
 *   I32    5 = 4 bytes little-endian
 *
 * The reader never reads past `end` and reports HE_TRUNCATED, HE_WIRETYPE or
 * HE_FORMAT; callers match field numbers in any order and wire_skip() the
 * fields they do not know. Repeated scalars may arrive packed (one LEN field)
 * or unpacked (one field per value): wire_scalar_iter handles both.
 *
 * The writer appends to a buf (so output has a cap like any buffer). Nested
 * messages use wire_begin()/wire_end(), which patch in the length afterwards.
 */
#ifndef HEARTH_CORE_WIRE_H
#define HEARTH_CORE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum wire_type { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

typedef struct wire_rd {
    const uint8_t *p, *end;
} wire_rd;

static inline void wire_rd_init(wire_rd *r, const void *data, size_t n)
{
    r->p = (const uint8_t *)data;
    r->end = r->p + n;
}
static inline int wire_eof(const wire_rd *r) { return r->p >= r->end; }

int wire_varint_slow(wire_rd *r, uint64_t *v);
/* Reads a varint. 0, HE_TRUNCATED, or HE_FORMAT (longer than 10 bytes). */
static inline int wire_varint(wire_rd *r, uint64_t *v)
{
    if (r->p < r->end && *r->p < 0x80) { *v = *r->p++; return 0; }
    return wire_varint_slow(r, v);
}
/* Reads a tag. HE_FORMAT on field number 0 or wire type 6/7. */
int wire_tag(wire_rd *r, uint32_t *field, int *wt);
/* Reads a LEN payload; *p points into the input. */
int wire_bytes(wire_rd *r, const uint8_t **p, size_t *n);
int wire_fixed64(wire_rd *r, uint64_t *v);
int wire_fixed32(wire_rd *r, uint32_t *v);
/* Skips one value of wire type wt (after its tag). */
int wire_skip(wire_rd *r, int wt);
/* Reads a value of a scalar (varint) field, checking the wire type is VARINT. */
int wire_expect_varint(wire_rd *r, int wt, uint64_t *v);

/*
 * Iterates a repeated varint field given its wire type: packed (WT_LEN) or a
 * single unpacked value (WT_VARINT). Usage:
 *   wire_scalar_iter it; wire_scalar_begin(&it, r, wt);
 *   while ((rc = wire_scalar_next(&it, &v)) == 1) use(v);
 *   if (rc < 0) fail;
 */
typedef struct wire_scalar_iter {
    wire_rd sub;
    int single;  /* 1: one unpacked value pending in `value`, 2: done */
    uint64_t value;
    int err;
} wire_scalar_iter;
int wire_scalar_begin(wire_scalar_iter *it, wire_rd *r, int wt);
/* 1 with *v set, 0 at the end, or a negative error. */
int wire_scalar_next(wire_scalar_iter *it, uint64_t *v);

/* Writer. All return 0, -ENOMEM or HE_TOOBIG (the buf's cap). */
int wire_put_varint(buf *b, uint64_t v);
int wire_put_tag(buf *b, uint32_t field, int wt);
int wire_put_uint(buf *b, uint32_t field, uint64_t v);              /* uint64/int64/bool/enum */
static inline int wire_put_int(buf *b, uint32_t field, int64_t v) { return wire_put_uint(b, field, (uint64_t)v); }
int wire_put_fixed64(buf *b, uint32_t field, uint64_t v);
int wire_put_bytes(buf *b, uint32_t field, const void *p, size_t n); /* string/bytes */
int wire_put_packed_u64(buf *b, uint32_t field, const uint64_t *v, size_t n);
int wire_put_packed_i64(buf *b, uint32_t field, const int64_t *v, size_t n);
/* Skip fields equal to zero: proto3 defaults are not written. */
static inline int wire_put_uint_nz(buf *b, uint32_t field, uint64_t v) { return v ? wire_put_uint(b, field, v) : 0; }
/*
 * Starts a nested message (tag + length placeholder). Returns the offset to
 * pass to wire_end, or a negative error. wire_end fixes the length.
 */
long wire_begin(buf *b, uint32_t field);
int wire_end(buf *b, long mark);

/* Size of v as a varint (1..10). */
static inline size_t wire_varint_size(uint64_t v) { size_t n = 1; while (v >= 0x80) { v >>= 7; n++; } return n; }

#endif

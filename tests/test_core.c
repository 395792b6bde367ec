/*
 * test_core.c: buffers, arena, hash tables, interning, wire codec, gzip/zstd
 * caps, JSON escaping and UTF-8, unit parsing.
 */
#include "t.h"

#include "core/common.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/compress.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "core/units.h"
#include "core/wire.h"

TEST(buf_cap_is_enforced)
{
    buf b;
    buf_init(&b, 8);
    ASSERT_OK(buf_append(&b, "12345678", 8));
    ASSERT_EQ(buf_putc(&b, 'x'), HE_TOOBIG);
    ASSERT_EQ(b.len, 8);
    ASSERT_STR(b.data, "12345678");
    buf_release(&b);
}

TEST(buf_numbers)
{
    buf b = BUF_INIT;
    ASSERT_OK(buf_put_i64(&b, INT64_MIN));
    ASSERT_OK(buf_putc(&b, ' '));
    ASSERT_OK(buf_put_u64(&b, UINT64_MAX));
    ASSERT_STR(b.data, "-9223372036854775808 18446744073709551615");
    buf_release(&b);
}

TEST(arena_keeps_pointers)
{
    arena a;
    arena_init(&a);
    char *first = arena_strndup(&a, "hello", 5);
    for (int i = 0; i < 100000; i++) ASSERT(arena_alloc(&a, 24));
    char *big = arena_alloc(&a, 1 << 20);
    ASSERT(big);
    ASSERT_STR(first, "hello");
    arena_release(&a);
}

TEST(hmap64_many_keys)
{
    hmap64 m;
    hmap64_init(&m);
    for (uint32_t i = 0; i < 100000; i++) ASSERT_OK(hmap64_put(&m, (uint64_t)i * 7919, i));
    for (uint32_t i = 0; i < 100000; i++) ASSERT_EQ(hmap64_get(&m, (uint64_t)i * 7919), i);
    ASSERT_EQ(hmap64_get(&m, 3), HMAP_EMPTY);
    ASSERT_EQ(hmap64_get_or_put(&m, 7919, 5), 1);
    ASSERT_EQ(hmap64_get_or_put(&m, 5, 42), 42);
    hmap64_release(&m);
}

/* x * m^-1 mod 2^64 for odd m (Newton's iteration doubles the correct bits each step). */
static uint64_t mul_inverse(uint64_t m)
{
    uint64_t x = m;
    for (int i = 0; i < 6; i++) x *= 2 - m * x;
    return x;
}

/* The key k with hash_u64(k) == h: hash_u64 is invertible, which is why the tables need a seed. */
static uint64_t unhash_u64(uint64_t h)
{
    h ^= h >> 33;
    h *= mul_inverse(0xc4ceb9fe1a85ec53ULL);
    h ^= h >> 33;
    h *= mul_inverse(0xff51afd7ed558ccdULL);
    h ^= h >> 33;
    return h;
}

/*
 * 4096 keys chosen so that their unseeded hashes all end in 20 zero bits:
 * without a seed they would all start probing at slot 0 of any table under
 * a million slots (every insert a scan). With the process's seed they
 * spread like any keys, and every one is still found.
 */
TEST(hmap64_keys_chosen_to_collide_do_not)
{
    enum { N = 4096, SLOTS = 8192 };
    static uint8_t seen[SLOTS];
    hmap64 m;
    size_t homes = 0;
    hmap64_init(&m);
    ASSERT(m.seed != 0);
    ASSERT_OK(hmap64_reserve(&m, N));
    ASSERT_EQ(m.mask + 1, SLOTS);
    for (uint32_t i = 0; i < N; i++) {
        uint64_t key = unhash_u64((uint64_t)(i + 1) << 20);
        ASSERT_EQ(hash_u64(key) & 0xfffff, 0);
        size_t home = hmap64_home(&m, key);
        if (!seen[home]++) homes++;
        ASSERT_OK(hmap64_put(&m, key, i));
    }
    printf("%zu distinct first slots for %d keys in %d slots\n", homes, N, SLOTS);
    ASSERT(homes > N / 2);  /* random keys: ~3200 */
    ASSERT_EQ(m.mask + 1, SLOTS);
    for (uint32_t i = 0; i < N; i++) ASSERT_EQ(hmap64_get(&m, unhash_u64((uint64_t)(i + 1) << 20)), i);
    hmap64_release(&m);
}

TEST(strtab_interns)
{
    strtab t;
    strtab_init(&t);
    ASSERT_EQ(strtab_intern(&t, "", 0), 0);
    ASSERT_EQ(strtab_intern_cstr(&t, "main"), 1);
    ASSERT_EQ(strtab_intern(&t, "a\0b", 3), 2);
    ASSERT_EQ(strtab_intern(&t, "a", 1), 3);
    for (int i = 0; i < 5000; i++) {
        char s[32];
        snprintf(s, sizeof s, "fn%d", i);
        ASSERT_EQ(strtab_intern_cstr(&t, s), 4 + i);
    }
    ASSERT_EQ(strtab_intern_cstr(&t, "main"), 1);
    ASSERT_EQ(strtab_find(&t, "fn4999", 6), 5003);
    ASSERT_EQ(strtab_find(&t, "nope", 4), -1);
    ASSERT_EQ(strtab_len(&t, 2), 3);
    strtab_release(&t);
}

TEST(wire_roundtrip_and_packed_or_not)
{
    buf b = BUF_INIT;
    uint64_t vals[] = {1, 300, UINT64_MAX};
    ASSERT_OK(wire_put_uint(&b, 1, 150));
    ASSERT_OK(wire_put_packed_u64(&b, 2, vals, 3));
    ASSERT_OK(wire_put_uint(&b, 2, 7));  /* unpacked element of the same field */
    long m = wire_begin(&b, 3);
    ASSERT(m > 0);
    for (int i = 0; i < 100; i++) ASSERT_OK(wire_put_bytes(&b, 1, "abc", 3));  /* > 127 bytes: length moves */
    ASSERT_OK(wire_end(&b, m));
    ASSERT_OK(wire_put_fixed64(&b, 99, 42));

    wire_rd r;
    wire_rd_init(&r, b.data, b.len);
    uint64_t got[8];
    int n_got = 0, n_sub = 0;
    while (!wire_eof(&r)) {
        uint32_t f;
        int wt;
        uint64_t v;
        ASSERT_OK(wire_tag(&r, &f, &wt));
        if (f == 1) { ASSERT_OK(wire_expect_varint(&r, wt, &v)); ASSERT_EQ(v, 150); }
        else if (f == 2) {
            wire_scalar_iter it;
            int rc;
            ASSERT_OK(wire_scalar_begin(&it, &r, wt));
            while ((rc = wire_scalar_next(&it, &v)) == 1) got[n_got++] = v;
            ASSERT_EQ(rc, 0);
        } else if (f == 3) {
            const uint8_t *p; size_t len;
            ASSERT_OK(wire_bytes(&r, &p, &len));
            ASSERT_EQ(len, 500);
            wire_rd sub; wire_rd_init(&sub, p, len);
            while (!wire_eof(&sub)) { ASSERT_OK(wire_tag(&sub, &f, &wt)); ASSERT_OK(wire_skip(&sub, wt)); n_sub++; }
        } else ASSERT_OK(wire_skip(&r, wt));
    }
    ASSERT_EQ(n_got, 4);
    ASSERT(got[2] == UINT64_MAX);
    ASSERT_EQ(got[3], 7);
    ASSERT_EQ(n_sub, 100);
    buf_release(&b);
}

TEST(wire_rejects_truncation_and_bad_types)
{
    const uint8_t trunc[] = {0x0a, 0x05, 'a', 'b'};  /* LEN 5 with 2 bytes */
    const uint8_t longvar[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    const uint8_t badwt[] = {0x0f};
    wire_rd r; uint32_t f; int wt; const uint8_t *p; size_t n; uint64_t v;
    wire_rd_init(&r, trunc, sizeof trunc);
    ASSERT_OK(wire_tag(&r, &f, &wt));
    ASSERT_EQ(wire_bytes(&r, &p, &n), HE_TRUNCATED);
    wire_rd_init(&r, longvar, sizeof longvar);
    ASSERT_OK(wire_tag(&r, &f, &wt));
    ASSERT_EQ(wire_varint(&r, &v), HE_FORMAT);
    wire_rd_init(&r, badwt, sizeof badwt);
    ASSERT_EQ(wire_tag(&r, &f, &wt), HE_FORMAT);
}

TEST(gzip_roundtrip_cap_and_corruption)
{
    buf raw = BUF_INIT, gz = BUF_INIT, out;
    herr e;
    for (int i = 0; i < 100000; i++) ASSERT_OK(buf_puts(&raw, "main;work;leaf 1\n"));
    ASSERT_OK(gz_compress(raw.data, raw.len, 6, &gz));
    ASSERT(is_gzip(gz.data, gz.len));
    buf_init(&out, 0);
    ASSERT_OK(gz_decompress(gz.data, gz.len, &out, NULL));
    ASSERT_EQ(out.len, raw.len);
    ASSERT(!memcmp(out.data, raw.data, raw.len));
    buf_release(&out);

    buf_init(&out, raw.len - 1);  /* a bomb, relative to this cap */
    herr_clear(&e);
    ASSERT_EQ(gz_decompress(gz.data, gz.len, &out, &e), HE_TOOBIG);
    ASSERT_CONTAINS(e.msg, "limit");
    ASSERT_EQ(out.len, 0);
    buf_release(&out);

    buf_init(&out, raw.len);  /* exactly at the cap is fine */
    ASSERT_OK(gz_decompress(gz.data, gz.len, &out, NULL));
    buf_release(&out);

    buf_init(&out, 0);
    herr_clear(&e);
    ASSERT_EQ(gz_decompress(gz.data, gz.len / 2, &out, &e), HE_GZIP);
    ASSERT_CONTAINS(e.msg, "truncated");
    gz.data[20] ^= 0x55;
    herr_clear(&e);
    ASSERT(gz_decompress(gz.data, gz.len, &out, &e) != 0);
    buf_release(&out);
    buf_release(&gz);
    buf_release(&raw);
}

TEST(zstd_roundtrip_and_cap)
{
    buf raw = BUF_INIT, z = BUF_INIT, out;
    for (int i = 0; i < 50000; i++) ASSERT_OK(buf_puts(&raw, "abcdefgh"));
    ASSERT_OK(zstd_compress(raw.data, raw.len, 3, &z));
    ASSERT(is_zstd(z.data, z.len));
    buf_init(&out, 0);
    ASSERT_OK(zstd_decompress(z.data, z.len, &out, NULL));
    ASSERT_EQ(out.len, raw.len);
    buf_release(&out);
    buf_init(&out, 1000);
    ASSERT_EQ(zstd_decompress(z.data, z.len, &out, NULL), HE_TOOBIG);
    buf_release(&out);
    buf_init(&out, 0);
    ASSERT(zstd_decompress(z.data, z.len - 3, &out, NULL) != 0);
    buf_release(&out);
    buf_release(&z);
    buf_release(&raw);
}

TEST(json_escapes_and_replaces_invalid_utf8)
{
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_key(&w, "s");
    jw_string(&w, "a\"b\\c\n\x01\xff\xc3\xa9", 10);
    jw_key(&w, "a");
    jw_arr(&w);
    jw_int(&w, -1);
    jw_uint(&w, 2);
    jw_obj(&w);
    jw_obj_end(&w);
    jw_arr_end(&w);
    jw_obj_end(&w);
    ASSERT_OK(w.err);
    ASSERT_STR(b.data, "{\"s\":\"a\\\"b\\\\c\\n\\u0001\xef\xbf\xbd\xc3\xa9\",\"a\":[-1,2,{}]}");
    ASSERT(utf8_valid(b.data, b.len));
    ASSERT(!utf8_valid("\xed\xa0\x80", 3));  /* surrogate */
    ASSERT(!utf8_valid("\xc0\xaf", 2));      /* overlong */
    ASSERT(utf8_valid("\xf0\x9f\x94\xa5", 4));
    buf_release(&b);
}

TEST(units_parse)
{
    int64_t ns;
    uint64_t sz;
    ASSERT_OK(parse_duration_ns("10s", &ns)); ASSERT_EQ(ns, 10000000000LL);
    ASSERT_OK(parse_duration_ns("1h30m", &ns)); ASSERT_EQ(ns, 5400000000000LL);
    ASSERT_OK(parse_duration_ns("500ms", &ns)); ASSERT_EQ(ns, 500000000LL);
    ASSERT_OK(parse_duration_ns("30d", &ns)); ASSERT_EQ(ns, 2592000000000000LL);
    ASSERT_EQ(parse_duration_ns("ten", &ns), HE_FORMAT);
    ASSERT_EQ(parse_duration_ns("", &ns), HE_FORMAT);
    ASSERT_OK(parse_size("32MiB", &sz)); ASSERT_EQ(sz, 32u << 20);
    ASSERT_OK(parse_size("1024", &sz)); ASSERT_EQ(sz, 1024);
    ASSERT_OK(parse_size("4k", &sz)); ASSERT_EQ(sz, 4096);
    ASSERT_EQ(parse_size("12 apples", &sz), HE_FORMAT);
    int64_t now = 1700000000LL * 1000000000LL;
    ASSERT_OK(parse_time_ns("now-1h", now, &ns)); ASSERT_EQ(ns, now - 3600000000000LL);
    ASSERT_OK(parse_time_ns("now", now, &ns)); ASSERT_EQ(ns, now);
    ASSERT_OK(parse_time_ns("1700000000", now, &ns)); ASSERT_EQ(ns, now);
    ASSERT_OK(parse_time_ns("1700000000000", now, &ns)); ASSERT_EQ(ns, now);
    ASSERT_OK(parse_time_ns("1700000000000000", now, &ns)); ASSERT_EQ(ns, now);
    ASSERT_OK(parse_time_ns("1700000000000000000", now, &ns)); ASSERT_EQ(ns, now);
    ASSERT_OK(parse_time_ns("2023-11-14T22:13:20Z", now, &ns)); ASSERT_EQ(ns, now);
    ASSERT_EQ(parse_time_ns("yesterday", now, &ns), HE_FORMAT);
    ASSERT_EQ(parse_time_ns("-9000000000", now, &ns), HE_FORMAT);
    ASSERT_EQ(parse_time_ns("99999999999999999999", now, &ns), HE_FORMAT);
    ASSERT_EQ(parse_time_ns("now-200y", now, &ns), 0);
    ASSERT(unix_any_to_ns(-9000000000000000000LL) == INT64_MIN);
}

static char sunk[2048];
static void sink_fn(enum log_level l, const char *line) { (void)l; snprintf(sunk, sizeof sunk, "%s", line); }

TEST(log_lines_are_logfmt_with_escaped_message)
{
    log_set_sink(sink_fn);
    log_set_level(LOG_INFO);
    log_info("file \"%s\" bad\nline", "a\\b");
    log_debug("dropped");
    log_set_sink(NULL);
    ASSERT_CONTAINS(sunk, "level=info msg=\"file \\\"a\\\\b\\\" bad\\nline\"");
    ASSERT(!strchr(sunk, '\n'));
}

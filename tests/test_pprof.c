/*
 * test_pprof.c: the pprof codec against every real profile in
 * ../shared/testdata/pprof (totals and stacks checked against an independent
 * reader written here with only the wire primitives), encode->decode round
 * trips, and hand-built broken inputs that must each fail with the right code
 * and a message naming what is wrong (never crash).
 */
#include "t.h"

#include "core/common.h"
#include "core/buf.h"
#include "core/compress.h"
#include "core/hash.h"
#include "core/mem.h"
#include "core/wire.h"
#include "format/pprof.h"
#include "profile/profile.h"

/* Every file of testdata/pprof/. All decode: none is malformed at the level
 * we check (no_addr_no_line has locations with neither address nor line,
 * which is odd but refers to nothing missing; invalid_utf8 has non-UTF-8
 * strings, which are kept as bytes; dotnet-pprof-3 gives no function any id
 * and refers to functions by position, which we accept as Pyroscope's
 * ingest does). */
static const char *const files[] = {
    "cpu-exemplars.pb.gz", "cpu-js.pb.gz", "cpu.pb.gz", "dotnet-pprof-3.pb.gz", "go-large.cpu.pb.gz",
    "go-sample.cpu.pb.gz", "go.cpu.labels.pprof", "go.nomappings.crash.pb.gz", "heap-js.pprof", "heap.pb.gz",
    "heap_go_truncated_4.pb.gz", "invalid_utf8.pb.gz", "no_addr_no_line.pb.gz", "nodejs-heap.pb.gz",
    "nodejs-wall.pb.gz", "profile_java", "profile_nodejs", "profile_python", "profile_ruby", "profile_rust",
    "pyspy-1.pb.gz", "single_group_with_optional_span_id.pb.gz",
};

static char *read_testdata(const char *name, size_t *n)
{
    char rel[256];
    snprintf(rel, sizeof rel, "pprof/%s", name);
    return t_read_file(t_testdata(rel), n);
}

/* Plain protobuf bytes of a file (gunzipped when it is gzip). */
static void plain_bytes(const char *data, size_t n, buf *out)
{
    buf_init(out, 0);
    if (is_gzip(data, n)) {
        herr e;
        herr_clear(&e);
        if (gz_decompress(data, n, out, &e) != 0) t_fail(__FILE__, __LINE__, "gunzip: %s", e.msg);
    } else {
        ASSERT_OK(buf_append(out, data, n));
    }
}

/* ---- an independent reader: only wire.h, no pprof.c ------------------- */

typedef struct ref_loc {
    uint64_t address;
    uint32_t n_lines;
    int64_t first_line;
} ref_loc;

typedef struct ref_profile {
    int64_t totals[16];
    size_t n_types, n_samples;
    /* location ids per sample, concatenated */
    uint64_t *stack_ids;
    size_t n_stack_ids, cap_stack_ids;
    size_t *stack_start;  /* n_samples + 1 */
    size_t cap_stack_start;
    hmap64 loc_index;     /* id -> index into locs */
    ref_loc *locs;
    size_t n_locs, cap_locs;
} ref_profile;

static void ref_read_loc(ref_profile *r, const uint8_t *p, size_t n)
{
    wire_rd rd;
    uint64_t id = 0, v;
    ref_loc l = {0, 0, 0};
    wire_rd_init(&rd, p, n);
    while (!wire_eof(&rd)) {
        uint32_t f;
        int wt;
        ASSERT_OK(wire_tag(&rd, &f, &wt));
        if (f == 1) ASSERT_OK(wire_expect_varint(&rd, wt, &id));
        else if (f == 3) ASSERT_OK(wire_expect_varint(&rd, wt, &l.address));
        else if (f == 4) {
            const uint8_t *lp;
            size_t ln;
            ASSERT_OK(wire_bytes(&rd, &lp, &ln));
            if (l.n_lines++ == 0) {
                wire_rd lr;
                wire_rd_init(&lr, lp, ln);
                while (!wire_eof(&lr)) {
                    uint32_t lf;
                    int lwt;
                    ASSERT_OK(wire_tag(&lr, &lf, &lwt));
                    if (lf == 2) { ASSERT_OK(wire_expect_varint(&lr, lwt, &v)); l.first_line = (int64_t)v; }
                    else ASSERT_OK(wire_skip(&lr, lwt));
                }
            }
        } else ASSERT_OK(wire_skip(&rd, wt));
    }
    ASSERT_OK(HGROW(r->locs, r->cap_locs, r->n_locs + 1));
    r->locs[r->n_locs] = l;
    ASSERT_OK(hmap64_put(&r->loc_index, id, (uint32_t)r->n_locs));
    r->n_locs++;
}

static void ref_read_sample(ref_profile *r, const uint8_t *p, size_t n)
{
    wire_rd rd;
    size_t k = 0;
    wire_rd_init(&rd, p, n);
    while (!wire_eof(&rd)) {
        uint32_t f;
        int wt;
        ASSERT_OK(wire_tag(&rd, &f, &wt));
        if (f == 1 || f == 2) {
            wire_scalar_iter it;
            uint64_t v;
            int rc;
            ASSERT_OK(wire_scalar_begin(&it, &rd, wt));
            while ((rc = wire_scalar_next(&it, &v)) == 1) {
                if (f == 2) {
                    ASSERT(k < 16);
                    r->totals[k++] += (int64_t)v;
                } else {
                    ASSERT_OK(HGROW(r->stack_ids, r->cap_stack_ids, r->n_stack_ids + 1));
                    r->stack_ids[r->n_stack_ids++] = v;
                }
            }
            ASSERT_OK(rc);
        } else {
            ASSERT_OK(wire_skip(&rd, wt));
        }
    }
    r->n_samples++;
    ASSERT_OK(HGROW(r->stack_start, r->cap_stack_start, r->n_samples + 1));
    r->stack_start[r->n_samples] = r->n_stack_ids;
}

static void ref_read(ref_profile *r, const void *data, size_t n)
{
    wire_rd rd;
    memset(r, 0, sizeof *r);
    hmap64_init(&r->loc_index);
    ASSERT_OK(HGROW(r->stack_start, r->cap_stack_start, 1));
    r->stack_start[0] = 0;
    wire_rd_init(&rd, data, n);
    while (!wire_eof(&rd)) {
        uint32_t f;
        int wt;
        const uint8_t *p;
        size_t len;
        ASSERT_OK(wire_tag(&rd, &f, &wt));
        if (f == 1 || f == 2 || f == 4) {
            ASSERT_OK(wire_bytes(&rd, &p, &len));
            if (f == 1) r->n_types++;
            else if (f == 2) ref_read_sample(r, p, len);
            else ref_read_loc(r, p, len);
        } else {
            ASSERT_OK(wire_skip(&rd, wt));
        }
    }
}

static void ref_release(ref_profile *r)
{
    free(r->stack_ids);
    free(r->stack_start);
    free(r->locs);
    hmap64_release(&r->loc_index);
}

/* ---- helpers ----------------------------------------------------------- */

static int decode_buf(profile *p, const void *data, size_t n, herr *e)
{
    herr_clear(e);
    return pprof_decode(p, data, n, 0, e);
}

/* Decodes name and checks it against the independent reader. */
static void check_file(const char *name)
{
    size_t n;
    char *data = read_testdata(name, &n);
    buf plain;
    ref_profile ref;
    profile p;
    herr e;
    int rc;
    uint32_t *locs = NULL;
    size_t cap = 0;

    plain_bytes(data, n, &plain);
    ref_read(&ref, plain.data, plain.len);
    ASSERT_OK(prof_init(&p));
    rc = decode_buf(&p, data, n, &e);
    if (rc) t_fail(__FILE__, __LINE__, "%s: decode failed (%d): %s", name, rc, e.msg);
    ASSERT_OK(prof_validate(&p, &e));
    /* no two nodes are equal: looking each one up finds itself, adds nothing */
    {
        uint32_t n_nodes = p.n_nodes;
        for (uint32_t i = 1; i < n_nodes; i++)
            ASSERT_EQ(prof_node_get(&p, p.nodes[i].parent, p.nodes[i].location), i);
        ASSERT_EQ(p.n_nodes, n_nodes);
    }
    ASSERT_EQ(p.n_types, ref.n_types);
    ASSERT_EQ(p.n_samples, ref.n_samples);
    for (uint32_t t = 0; t < p.n_types && t < 16; t++)
        if (prof_total(&p, (int)t) != ref.totals[t])
            t_fail(__FILE__, __LINE__, "%s: type %u total %lld != %lld", name, t, (long long)prof_total(&p, (int)t),
                   (long long)ref.totals[t]);
    /* Every stack, frame by frame (the model may truncate past max depth). */
    for (size_t i = 0; i < p.n_samples; i++) {
        size_t want = ref.stack_start[i + 1] - ref.stack_start[i], depth;
        ASSERT_OK(HGROW(locs, cap, want + 1));
        depth = prof_stack_locations(&p, p.samples[i].stack, locs, cap);
        ASSERT_EQ(depth, MIN(want, (size_t)p.limits.max_stack_depth));
        for (size_t k = 0; k < depth; k++) {
            uint32_t ri = hmap64_get(&ref.loc_index, ref.stack_ids[ref.stack_start[i] + k]);
            const prof_location *l = &p.locations[locs[k]];
            ASSERT(ri != HMAP_EMPTY);
            if (l->address != ref.locs[ri].address || l->n_lines != ref.locs[ri].n_lines ||
                (l->n_lines && p.lines[l->first_line].line != ref.locs[ri].first_line))
                t_fail(__FILE__, __LINE__, "%s: sample %zu frame %zu differs", name, i, k);
        }
    }
    free(locs);
    prof_release(&p);
    ref_release(&ref);
    buf_release(&plain);
    free(data);
}

/* Deep equality of two decoded profiles (the round trip keeps string ids and table indices). */
static void assert_same(const profile *a, const profile *b)
{
    uint32_t la[2048], lb[2048];
    ASSERT_EQ(a->strings.count, b->strings.count);
    for (uint32_t i = 0; i < a->strings.count; i++) {
        ASSERT_EQ(strtab_len(&a->strings, i), strtab_len(&b->strings, i));
        ASSERT(!memcmp(prof_s(a, i), prof_s(b, i), strtab_len(&a->strings, i)));
    }
    ASSERT_EQ(a->n_mappings, b->n_mappings);
    ASSERT(!memcmp(a->mappings + 1, b->mappings + 1, (a->n_mappings - 1) * sizeof *a->mappings));
    ASSERT_EQ(a->n_functions, b->n_functions);
    for (uint32_t i = 1; i < a->n_functions; i++) {
        ASSERT_EQ(a->functions[i].name, b->functions[i].name);
        ASSERT_EQ(a->functions[i].system_name, b->functions[i].system_name);
        ASSERT_EQ(a->functions[i].filename, b->functions[i].filename);
        ASSERT_EQ(a->functions[i].start_line, b->functions[i].start_line);
    }
    ASSERT_EQ(a->n_locations, b->n_locations);
    for (uint32_t i = 1; i < a->n_locations; i++) {
        const prof_location *x = &a->locations[i], *y = &b->locations[i];
        ASSERT_EQ(x->address, y->address);
        ASSERT_EQ(x->mapping, y->mapping);
        ASSERT_EQ(x->n_lines, y->n_lines);
        ASSERT_EQ(x->is_folded, y->is_folded);
        for (uint32_t k = 0; k < x->n_lines; k++) {
            ASSERT_EQ(a->lines[x->first_line + k].function, b->lines[y->first_line + k].function);
            ASSERT_EQ(a->lines[x->first_line + k].line, b->lines[y->first_line + k].line);
            ASSERT_EQ(a->lines[x->first_line + k].column, b->lines[y->first_line + k].column);
        }
    }
    ASSERT_EQ(a->n_types, b->n_types);
    if (a->n_types) ASSERT(!memcmp(a->sample_types, b->sample_types, a->n_types * sizeof *a->sample_types));
    ASSERT_EQ(a->n_samples, b->n_samples);
    for (size_t i = 0; i < a->n_samples; i++) {
        size_t da = prof_stack_locations(a, a->samples[i].stack, la, 2048);
        size_t db = prof_stack_locations(b, b->samples[i].stack, lb, 2048);
        ASSERT_EQ(da, db);
        ASSERT(da <= 2048);
        ASSERT(!memcmp(la, lb, da * sizeof *la));
        if (a->n_types) ASSERT(!memcmp(prof_values(a, i), prof_values(b, i), a->n_types * sizeof(int64_t)));
        ASSERT_EQ(a->samples[i].n_labels, b->samples[i].n_labels);
        for (uint32_t k = 0; k < a->samples[i].n_labels; k++) {
            const prof_label *x = &a->labels[a->samples[i].first_label + k];
            const prof_label *y = &b->labels[b->samples[i].first_label + k];
            ASSERT_EQ(x->key, y->key);
            ASSERT_EQ(x->str, y->str);
            ASSERT_EQ(x->num, y->num);
            ASSERT_EQ(x->num_unit, y->num_unit);
        }
    }
    ASSERT_EQ(a->period_type.type, b->period_type.type);
    ASSERT_EQ(a->period_type.unit, b->period_type.unit);
    ASSERT_EQ(a->period, b->period);
    ASSERT_EQ(a->time_nanos, b->time_nanos);
    ASSERT_EQ(a->duration_nanos, b->duration_nanos);
    ASSERT_EQ(a->default_sample_type, b->default_sample_type);
    ASSERT_EQ(a->drop_frames, b->drop_frames);
    ASSERT_EQ(a->keep_frames, b->keep_frames);
    ASSERT_EQ(a->n_comments, b->n_comments);
    for (uint32_t i = 0; i < a->n_comments; i++) ASSERT_EQ(a->comments[i], b->comments[i]);
}

static void roundtrip_file(const char *name, int gzip)
{
    size_t n;
    char *data = read_testdata(name, &n);
    profile a, b;
    buf out = BUF_INIT;
    herr e;

    ASSERT_OK(prof_init(&a));
    ASSERT_OK(prof_init(&b));
    if (decode_buf(&a, data, n, &e)) t_fail(__FILE__, __LINE__, "%s: %s", name, e.msg);
    ASSERT_OK(pprof_encode(&a, &out, gzip, &e));
    ASSERT_EQ(is_gzip(out.data, out.len), gzip != 0);
    if (decode_buf(&b, out.data, out.len, &e)) t_fail(__FILE__, __LINE__, "%s re-decode: %s", name, e.msg);
    assert_same(&a, &b);
    for (uint32_t t = 0; t < a.n_types; t++) ASSERT_EQ(prof_total(&a, (int)t), prof_total(&b, (int)t));
    /* a fixed point: encoding the re-decoded profile gives the same bytes */
    {
        buf x = BUF_INIT, y = BUF_INIT;
        ASSERT_OK(pprof_encode(&a, &x, 0, &e));
        ASSERT_OK(pprof_encode(&b, &y, 0, &e));
        ASSERT_EQ(x.len, y.len);
        ASSERT(!memcmp(x.data, y.data, x.len));
        buf_release(&x);
        buf_release(&y);
    }
    buf_release(&out);
    prof_release(&a);
    prof_release(&b);
    free(data);
}

/* ---- real profiles ------------------------------------------------------ */

TEST(every_testdata_profile_decodes_with_exact_totals_and_stacks)
{
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) check_file(files[i]);
}

TEST(every_testdata_profile_round_trips_gzip_and_raw)
{
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        roundtrip_file(files[i], 1);
        roundtrip_file(files[i], 0);
    }
}

TEST(go_sample_has_unpacked_values_and_known_header)
{
    size_t n;
    char *data = read_testdata("go-sample.cpu.pb.gz", &n);
    profile p;
    herr e;
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, data, n, &e));
    ASSERT_EQ(p.n_types, 2);
    ASSERT_STR(prof_s(&p, p.sample_types[0].type), "samples");
    ASSERT_STR(prof_s(&p, p.sample_types[1].type), "cpu");
    ASSERT_STR(prof_s(&p, p.sample_types[1].unit), "nanoseconds");
    ASSERT_STR(prof_s(&p, p.period_type.type), "cpu");
    ASSERT(p.n_samples > 0);
    ASSERT(p.period > 0);
    prof_release(&p);
    free(data);
}

TEST(labels_are_kept)
{
    size_t n;
    char *data = read_testdata("single_group_with_optional_span_id.pb.gz", &n);
    profile p;
    herr e;
    size_t with_span = 0;
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, data, n, &e));
    ASSERT_EQ(p.n_samples, 63);
    for (size_t i = 0; i < p.n_samples; i++) with_span += prof_sample_label(&p, i, "span_id") != NULL;
    ASSERT_EQ(with_span, 33);
    prof_release(&p);
    free(data);

    data = read_testdata("go.cpu.labels.pprof", &n);
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, data, n, &e));
    with_span = 0;
    for (size_t i = 0; i < p.n_samples; i++) with_span += prof_sample_label(&p, i, "profile_id") != NULL;
    ASSERT(with_span > 0);
    prof_release(&p);
    free(data);
}

TEST(invalid_utf8_file_is_kept_as_bytes)
{
    size_t n;
    char *data = read_testdata("invalid_utf8.pb.gz", &n);
    profile p;
    herr e;
    int bad = 0;
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, data, n, &e));
    for (uint32_t i = 0; i < p.strings.count; i++) {
        const unsigned char *s = (const unsigned char *)prof_s(&p, i);
        for (uint32_t k = 0; k < strtab_len(&p.strings, i); k++) bad += s[k] >= 0xf8 || s[k] == 0xc0 || s[k] == 0xc1;
    }
    ASSERT(bad > 0);  /* the bytes that make it invalid are still there */
    prof_release(&p);
    free(data);
}

/* ---- hand-built inputs --------------------------------------------------- */

/*
 * A small valid profile with knobs that break one thing each. Strings:
 * 0 "", 1 "main", 2 "a.out", 3 "samples", 4 "count", 5 "k", 6 "v".
 */
typedef struct knobs {
    uint64_t fn_id, fn_name, map_id, map_file, loc_id, loc_map, line_fn, sample_loc, label_key, label_str;
    uint64_t default_st, period_type, drop_frames;
    int n_values, wt_value, extra_string, utf8;
    uint64_t comment;
} knobs;

static knobs good(void)
{
    knobs k = {1, 1, 1, 2, 1, 1, 1, 1, 5, 6, 3, 3, 0, 1, WT_LEN, 0, 0, 0};
    return k;
}

static void build(const knobs *k, buf *b)
{
    static const char *strs[] = {"", "main", "a.out", "samples", "count", "k", "v"};
    long m, m2;
    buf_init(b, 0);
    m = wire_begin(b, 1);
    wire_put_uint(b, 1, 3);
    wire_put_uint(b, 2, 4);
    wire_end(b, m);
    m = wire_begin(b, 2);  /* sample */
    uint64_t locs[2] = {k->sample_loc, k->sample_loc};
    wire_put_packed_u64(b, 1, locs, 2);
    if (k->wt_value == WT_LEN) {
        int64_t vals[3] = {7, 7, 7};
        wire_put_packed_i64(b, 2, vals, (size_t)k->n_values);
    } else if (k->wt_value == WT_I32) {
        wire_put_tag(b, 2, WT_I32);
        buf_append(b, "\7\0\0\0", 4);
    }
    m2 = wire_begin(b, 3);
    wire_put_uint(b, 1, k->label_key);
    wire_put_uint(b, 2, k->label_str);
    wire_end(b, m2);
    wire_end(b, m);
    m = wire_begin(b, 3);  /* mapping */
    wire_put_uint(b, 1, k->map_id);
    wire_put_uint(b, 5, k->map_file);
    wire_end(b, m);
    m = wire_begin(b, 4);  /* location */
    wire_put_uint(b, 1, k->loc_id);
    wire_put_uint(b, 2, k->loc_map);
    wire_put_uint(b, 3, 0x1234);
    m2 = wire_begin(b, 4);
    wire_put_uint(b, 1, k->line_fn);
    wire_put_uint(b, 2, 42);
    wire_end(b, m2);
    wire_end(b, m);
    m = wire_begin(b, 5);  /* function */
    wire_put_uint(b, 1, k->fn_id);
    wire_put_uint(b, 2, k->fn_name);
    wire_end(b, m);
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        if (i == 1 && k->utf8) wire_put_bytes(b, 6, "m\xff\xfe" "ain\xc3", 7);
        else wire_put_bytes(b, 6, strs[i], strlen(strs[i]));
    }
    if (k->extra_string) wire_put_bytes(b, 6, "x", 1);
    wire_put_uint_nz(b, 7, k->drop_frames);
    m = wire_begin(b, 11);
    wire_put_uint(b, 1, k->period_type);
    wire_end(b, m);
    wire_put_uint(b, 12, 10);
    if (k->comment) wire_put_uint(b, 13, k->comment);
    wire_put_uint(b, 14, k->default_st);
}

/* Decodes the knobs' profile; returns the code, message in e. */
static int try_knobs(const knobs *k, herr *e)
{
    buf b;
    profile p;
    int rc;
    build(k, &b);
    ASSERT_OK(prof_init(&p));
    rc = decode_buf(&p, b.data, b.len, e);
    prof_release(&p);
    buf_release(&b);
    return rc;
}

#define EXPECT_FAIL(k, code, text)                                                      \
    do {                                                                                \
        herr _e;                                                                        \
        int _rc = try_knobs(&(k), &_e);                                                 \
        ASSERT_EQ(_rc, code);                                                           \
        ASSERT_CONTAINS(_e.msg, text);                                                  \
    } while (0)

TEST(small_profile_decodes)
{
    knobs k = good();
    buf b;
    profile p;
    herr e;
    char name[64];
    build(&k, &b);
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    ASSERT_EQ(p.n_samples, 1);
    ASSERT_EQ(prof_total(&p, 0), 7);
    ASSERT_EQ(prof_stack_locations(&p, p.samples[0].stack, NULL, 0), 2);
    ASSERT_STR(prof_frame_name(&p, p.nodes[p.samples[0].stack].location, 0, name, sizeof name), "main");
    ASSERT_STR(prof_sample_label(&p, 0, "k"), "v");
    ASSERT_STR(prof_s(&p, p.mappings[1].filename), "a.out");
    ASSERT_EQ(p.lines[p.locations[1].first_line].line, 42);
    ASSERT_STR(prof_s(&p, p.default_sample_type), "samples");
    ASSERT_EQ(p.period, 10);
    ASSERT_OK(prof_validate(&p, &e));
    prof_release(&p);
    buf_release(&b);
}

TEST(out_of_range_references_are_named)
{
    knobs k;
    k = good(); k.sample_loc = 99;
    EXPECT_FAIL(k, HE_BADREF, "sample 0 refers to location id 99 which does not exist");
    k = good(); k.fn_name = 57;
    EXPECT_FAIL(k, HE_BADREF, "function 0 name refers to string index 57");
    k = good(); k.map_file = 7;
    EXPECT_FAIL(k, HE_BADREF, "mapping 0 filename refers to string index 7");
    k = good(); k.loc_map = 5;
    EXPECT_FAIL(k, HE_BADREF, "location 0 (id 1) refers to mapping id 5 which does not exist");
    k = good(); k.line_fn = 8;
    EXPECT_FAIL(k, HE_BADREF, "location 0 (id 1) refers to function id 8 which does not exist");
    k = good(); k.label_key = 1000;
    EXPECT_FAIL(k, HE_BADREF, "sample 0 label key refers to string index 1000");
    k = good(); k.label_str = 1001;
    EXPECT_FAIL(k, HE_BADREF, "sample 0 label str refers to string index 1001");
    k = good(); k.default_st = 70;
    EXPECT_FAIL(k, HE_BADREF, "default_sample_type refers to string index 70");
    k = good(); k.period_type = 71;
    EXPECT_FAIL(k, HE_BADREF, "period_type type refers to string index 71");
    k = good(); k.drop_frames = 72;
    EXPECT_FAIL(k, HE_BADREF, "drop_frames refers to string index 72");
    k = good(); k.comment = 73;
    EXPECT_FAIL(k, HE_BADREF, "comment 0 refers to string index 73");
}

TEST(structural_errors_are_named)
{
    knobs k;
    k = good(); k.n_values = 2;
    EXPECT_FAIL(k, HE_FORMAT, "sample 0 has 2 values but the profile has 1 sample types");
    k = good(); k.n_values = 0;
    EXPECT_FAIL(k, HE_FORMAT, "sample 0 has 0 values");
    k = good(); k.wt_value = WT_I32;
    EXPECT_FAIL(k, HE_WIRETYPE, "sample 0 field 2 (value) has wire type fixed32");
    k = good(); k.loc_id = 0;
    EXPECT_FAIL(k, HE_FORMAT, "location 0 has id 0");
    k = good(); k.map_id = 0;
    EXPECT_FAIL(k, HE_FORMAT, "mapping 0 has id 0");
}

TEST(string_table_must_start_empty_and_wire_types_are_checked)
{
    buf b = BUF_INIT;
    profile p;
    herr e;
    wire_put_bytes(&b, 6, "x", 1);
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "string_table[0] must be the empty string");
    prof_release(&p);

    buf_reset(&b);
    wire_put_bytes(&b, 6, "\x1b[31m\xff", 6);  /* no raw control bytes in messages */
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "but is \"?[31m?\"");
    prof_release(&p);

    buf_reset(&b);
    wire_put_uint(&b, 6, 5);  /* string_table as a varint */
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_WIRETYPE);
    ASSERT_CONTAINS(e.msg, "field 6 (string_table) has wire type varint");
    prof_release(&p);

    buf_reset(&b);
    wire_put_bytes(&b, 9, "xx", 2);  /* time_nanos as bytes */
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_WIRETYPE);
    ASSERT_CONTAINS(e.msg, "time_nanos");
    prof_release(&p);

    buf_reset(&b);
    wire_put_uint(&b, 2, 1);  /* sample as a varint */
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_WIRETYPE);
    ASSERT_CONTAINS(e.msg, "(sample) has wire type varint");
    prof_release(&p);

    buf_reset(&b);
    buf_append(&b, "\x0f", 1);  /* wire type 7 */
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "malformed protobuf tag");
    prof_release(&p);
    buf_release(&b);
}

TEST(duplicate_ids_are_rejected)
{
    knobs k = good();
    buf b;
    profile p;
    herr e;
    long m;
    build(&k, &b);
    m = wire_begin(&b, 4);  /* a second location with id 1 */
    wire_put_uint(&b, 1, 1);
    wire_end(&b, m);
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "location 1 has id 1 which an earlier location already has");
    prof_release(&p);
    buf_release(&b);
}

TEST(invalid_utf8_strings_are_kept)
{
    knobs k = good();
    buf b;
    profile p;
    herr e;
    k.utf8 = 1;
    build(&k, &b);
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    ASSERT_EQ(strtab_len(&p.strings, p.functions[1].name), 7);
    ASSERT(!memcmp(prof_s(&p, p.functions[1].name), "m\xff\xfe" "ain\xc3", 7));
    prof_release(&p);
    buf_release(&b);
}

TEST(every_truncation_of_a_small_profile_fails_cleanly)
{
    size_t n;
    char *data = read_testdata("cpu.pb.gz", &n);
    buf plain;
    profile p;
    herr e;
    size_t failed = 0;
    plain_bytes(data, n, &plain);
    for (size_t len = 0; len < plain.len; len++) {
        ASSERT_OK(prof_init(&p));
        int rc = decode_buf(&p, plain.data, len, &e);
        if (rc) {
            failed++;
            ASSERT(rc < 0);
            ASSERT(e.msg[0] != 0);
        } else {
            ASSERT_OK(prof_validate(&p, &e));
        }
        prof_release(&p);
    }
    /* A cut inside the string table leaves references dangling: all of those fail. */
    ASSERT(failed > plain.len / 2);
    for (size_t len = 0; len < n; len++) {
        ASSERT_OK(prof_init(&p));
        int rc = decode_buf(&p, data, len, &e);
        ASSERT(rc != 0);
        ASSERT(e.msg[0] != 0 || len == 0);
        prof_release(&p);
    }
    buf_release(&plain);
    free(data);
}

TEST(random_bytes_fail_cleanly)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    unsigned char bytes[512];
    size_t failed = 0;
    for (int round = 0; round < 2000; round++) {
        profile p;
        herr e;
        size_t len = 1 + (size_t)(x % sizeof bytes);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            bytes[i] = (unsigned char)x;
        }
        ASSERT_OK(prof_init(&p));
        int rc = decode_buf(&p, bytes, len, &e);
        if (rc) {
            failed++;
            ASSERT(e.msg[0] != 0);
        } else {
            ASSERT_OK(prof_validate(&p, &e));
        }
        prof_release(&p);
    }
    ASSERT(failed > 1900);
}

TEST(bad_gzip_and_gzip_bomb)
{
    static const unsigned char bad[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3};
    profile p;
    herr e;
    buf bomb = BUF_INIT;
    char *zeros;
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, bad, sizeof bad, &e), HE_GZIP);
    ASSERT(e.msg[0] != 0);
    prof_release(&p);

    /* 32 MiB of zeros compress to ~32 KiB; with a 1 MiB cap it must stop at the cap. */
    zeros = xcalloc(32 << 20, 1);
    ASSERT_OK(gz_compress(zeros, 32 << 20, 6, &bomb));
    free(zeros);
    ASSERT(bomb.len < (1 << 20));
    ASSERT_OK(prof_init(&p));
    herr_clear(&e);
    ASSERT_EQ(pprof_decode(&p, bomb.data, bomb.len, 1 << 20, &e), HE_TOOBIG);
    ASSERT_CONTAINS(e.msg, "limit");
    prof_release(&p);
    buf_release(&bomb);
}

TEST(empty_input_is_an_error)
{
    profile p;
    herr e;
    buf gz = BUF_INIT;
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, "", 0, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "empty");
    ASSERT_OK(gz_compress("", 0, 6, &gz));
    ASSERT_EQ(decode_buf(&p, gz.data, gz.len, &e), HE_FORMAT);
    prof_release(&p);
    buf_release(&gz);
}

TEST(sparse_ids_and_mixed_packing)
{
    /* ids far apart (hash path), location ids half packed, half unpacked, values unpacked */
    static const uint64_t ids[3] = {1000000007ULL, 5, UINT64_MAX};
    buf b = BUF_INIT;
    profile p;
    herr e;
    long m, m2;
    uint32_t locs[8];
    char name[32];
    m = wire_begin(&b, 1); wire_put_uint(&b, 1, 1); wire_end(&b, m);
    m = wire_begin(&b, 1); wire_put_uint(&b, 1, 2); wire_end(&b, m);
    m = wire_begin(&b, 2);
    wire_put_uint(&b, 1, ids[0]);
    wire_put_uint(&b, 2, 3);
    wire_put_packed_u64(&b, 1, ids + 1, 2);
    wire_put_uint(&b, 2, 4);
    wire_end(&b, m);
    for (int i = 0; i < 3; i++) {
        m = wire_begin(&b, 4);
        wire_put_uint(&b, 1, ids[i]);
        m2 = wire_begin(&b, 4); wire_put_uint(&b, 1, ids[2 - i]); wire_end(&b, m2);
        wire_end(&b, m);
        m = wire_begin(&b, 5);
        wire_put_uint(&b, 1, ids[i]);
        wire_put_uint(&b, 2, (uint64_t)(3 + i));
        wire_end(&b, m);
    }
    wire_put_bytes(&b, 6, "", 0);
    wire_put_bytes(&b, 6, "a", 1);
    wire_put_bytes(&b, 6, "b", 1);
    wire_put_bytes(&b, 6, "f0", 2);
    wire_put_bytes(&b, 6, "f1", 2);
    wire_put_bytes(&b, 6, "f2", 2);
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    ASSERT_EQ(p.n_samples, 1);
    ASSERT_EQ(prof_values(&p, 0)[0], 3);
    ASSERT_EQ(prof_values(&p, 0)[1], 4);
    ASSERT_EQ(prof_stack_locations(&p, p.samples[0].stack, locs, 8), 3);
    /* location ids[i] has the function with id ids[2 - i], named f(2 - i); leaf first */
    ASSERT_STR(prof_frame_name(&p, locs[0], 0, name, sizeof name), "f2");
    ASSERT_STR(prof_frame_name(&p, locs[1], 0, name, sizeof name), "f1");
    ASSERT_STR(prof_frame_name(&p, locs[2], 0, name, sizeof name), "f0");
    prof_release(&p);
    buf_release(&b);
}

/*
 * The decoder keeps no id map while ids are 1..n in file order (each id is
 * its model index) and builds one at the first other id. Locations 1, 2, 4,
 * 3 and functions 2, 1, 3, 4: the map must be right after a fallback at
 * the third id and at the first; a duplicate right after the fallback is
 * still caught.
 */
static void build_ids(buf *b, const uint64_t *loc_ids, size_t n_locs)
{
    static const uint64_t fn_ids[4] = {2, 1, 3, 4};
    static const uint64_t sample[4] = {3, 4, 1, 2};
    long m, m2;
    buf_init(b, 0);
    m = wire_begin(b, 1); wire_put_uint(b, 1, 1); wire_put_uint(b, 2, 2); wire_end(b, m);
    m = wire_begin(b, 2); wire_put_packed_u64(b, 1, sample, 4); wire_put_uint(b, 2, 9); wire_end(b, m);
    for (size_t i = 0; i < n_locs; i++) {
        m = wire_begin(b, 4);
        wire_put_uint(b, 1, loc_ids[i]);
        m2 = wire_begin(b, 4); wire_put_uint(b, 1, loc_ids[i] <= 4 ? loc_ids[i] : 1); wire_end(b, m2);
        wire_end(b, m);
    }
    for (int i = 0; i < 4; i++) {
        m = wire_begin(b, 5);
        wire_put_uint(b, 1, fn_ids[i]);
        wire_put_uint(b, 2, 2 + fn_ids[i]);  /* function id f is named "f<f>" */
        wire_end(b, m);
    }
    static const char *strs[] = {"", "samples", "f0", "f1", "f2", "f3", "f4"};
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) wire_put_bytes(b, 6, strs[i], strlen(strs[i]));
}

TEST(ids_out_of_order_and_after_the_first_other_id)
{
    static const uint64_t locs_ok[4] = {1, 2, 4, 3}, locs_dup[5] = {1, 2, 4, 3, 2};
    buf b;
    profile p;
    herr e;
    uint32_t locs[8];
    char name[32];
    build_ids(&b, locs_ok, 4);
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    ASSERT_EQ(prof_stack_locations(&p, p.samples[0].stack, locs, 8), 4);
    /* location id L's line calls function id L, named "fL"; the sample is 3, 4, 1, 2, leaf first */
    ASSERT_STR(prof_frame_name(&p, locs[0], 0, name, sizeof name), "f3");
    ASSERT_STR(prof_frame_name(&p, locs[1], 0, name, sizeof name), "f4");
    ASSERT_STR(prof_frame_name(&p, locs[2], 0, name, sizeof name), "f1");
    ASSERT_STR(prof_frame_name(&p, locs[3], 0, name, sizeof name), "f2");
    prof_release(&p);
    buf_release(&b);
    build_ids(&b, locs_dup, 5);
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "location 4 has id 2 which an earlier location already has");
    prof_release(&p);
    buf_release(&b);
}

/* An unpacked value's tag as the last byte of its sample: truncated, not a sample without it. */
TEST(a_tag_without_its_value_is_truncation)
{
    static const uint8_t fields[2] = {(1 << 3) | WT_VARINT, (2 << 3) | WT_VARINT};
    for (int f = 0; f < 2; f++) {
        buf b = BUF_INIT;
        profile p;
        herr e;
        long m = wire_begin(&b, 1); wire_put_uint(&b, 1, 1); wire_end(&b, m);
        m = wire_begin(&b, 2);
        wire_put_uint(&b, 2, 5);
        buf_append(&b, &fields[f], 1);
        wire_end(&b, m);
        wire_put_bytes(&b, 6, "", 0);
        wire_put_bytes(&b, 6, "x", 1);
        ASSERT_OK(prof_init(&p));
        ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_TRUNCATED);
        ASSERT_CONTAINS(e.msg, "sample 0");
        prof_release(&p);
        buf_release(&b);
    }
}

TEST(deep_stacks_are_truncated_at_the_root_end_and_limits_hold)
{
    buf b = BUF_INIT;
    profile p;
    herr e;
    long m;
    uint64_t stack[10];
    uint32_t locs[16];
    m = wire_begin(&b, 1); wire_put_uint(&b, 1, 0); wire_end(&b, m);
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 10; i++) stack[i] = (uint64_t)(i + 1 + s);  /* leaf first */
        m = wire_begin(&b, 2);
        wire_put_packed_u64(&b, 1, stack, 10);
        wire_put_uint(&b, 2, 1);
        wire_end(&b, m);
    }
    for (int i = 1; i <= 12; i++) {
        m = wire_begin(&b, 4);
        wire_put_uint(&b, 1, (uint64_t)i);
        wire_put_uint(&b, 3, (uint64_t)(0x1000 * i));
        wire_end(&b, m);
    }
    ASSERT_OK(prof_init(&p));
    p.limits.max_stack_depth = 4;
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    for (int s = 0; s < 3; s++) {
        ASSERT_EQ(prof_stack_locations(&p, p.samples[s].stack, locs, 16), 4);
        for (int i = 0; i < 4; i++) ASSERT_EQ(p.locations[locs[i]].address, 0x1000 * (uint64_t)(i + 1 + s));
    }
    prof_release(&p);

    ASSERT_OK(prof_init(&p));
    p.limits.max_samples = 2;
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_TOOBIG);
    ASSERT_CONTAINS(e.msg, "more than 2 samples (the limit)");
    prof_release(&p);

    ASSERT_OK(prof_init(&p));
    p.limits.max_locations = 11;
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_TOOBIG);
    ASSERT_CONTAINS(e.msg, "more than 11 locations (the limit)");
    prof_release(&p);
    buf_release(&b);
}

TEST(stacks_sharing_prefixes_get_the_same_nodes)
{
    /* Samples a<-b<-c, a<-b<-d, a<-b<-c (root a): node ids must be shared. */
    static const uint64_t s1[] = {3, 2, 1}, s2[] = {4, 2, 1};
    buf b = BUF_INIT;
    profile p;
    herr e;
    long m;
    m = wire_begin(&b, 1); wire_put_uint(&b, 1, 0); wire_end(&b, m);
    const uint64_t *ss[] = {s1, s2, s1, s2};
    for (int s = 0; s < 4; s++) {
        m = wire_begin(&b, 2);
        wire_put_packed_u64(&b, 1, ss[s], 3);
        wire_put_uint(&b, 2, 1);
        wire_end(&b, m);
    }
    for (int i = 1; i <= 4; i++) {
        m = wire_begin(&b, 4); wire_put_uint(&b, 1, (uint64_t)i); wire_end(&b, m);
    }
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    ASSERT_EQ(p.samples[0].stack, p.samples[2].stack);
    ASSERT_EQ(p.samples[1].stack, p.samples[3].stack);
    ASSERT_NE(p.samples[0].stack, p.samples[1].stack);
    ASSERT_EQ(p.nodes[p.samples[0].stack].parent, p.nodes[p.samples[1].stack].parent);
    ASSERT_EQ(p.n_nodes, 5);  /* root, a, b, c, d */
    ASSERT_EQ(prof_stack_leaf_first(&p, (const uint32_t[]){3, 2, 1}, 3), (int32_t)p.samples[0].stack);
    prof_release(&p);
    buf_release(&b);
}

TEST(encode_output_is_valid_pprof)
{
    /* string_table[0] == "", ids 1..n unique and nonzero, checked with the independent reader */
    size_t n;
    char *data = read_testdata("heap.pb.gz", &n);
    profile p;
    herr e;
    buf out = BUF_INIT;
    wire_rd rd;
    int first_string = 1;
    uint64_t next_loc = 1;
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, data, n, &e));
    ASSERT_OK(pprof_encode(&p, &out, 0, &e));
    wire_rd_init(&rd, out.data, out.len);
    while (!wire_eof(&rd)) {
        uint32_t f;
        int wt;
        const uint8_t *s;
        size_t len;
        ASSERT_OK(wire_tag(&rd, &f, &wt));
        if (f == 6) {
            ASSERT_OK(wire_bytes(&rd, &s, &len));
            if (first_string) ASSERT_EQ(len, 0);
            first_string = 0;
        } else if (f == 4) {
            wire_rd sub;
            uint64_t id = 0;
            ASSERT_OK(wire_bytes(&rd, &s, &len));
            wire_rd_init(&sub, s, len);
            ASSERT_OK(wire_tag(&sub, &f, &wt));
            ASSERT_EQ(f, 1);
            ASSERT_OK(wire_expect_varint(&sub, wt, &id));
            ASSERT_EQ(id, next_loc);
            next_loc++;
        } else {
            ASSERT_OK(wire_skip(&rd, wt));
        }
    }
    ASSERT(!first_string);
    ASSERT_EQ(next_loc, p.n_locations);

    /* the cap on the output buffer holds, and leaves it as it was */
    buf small;
    buf_init(&small, 100);
    ASSERT_EQ(pprof_encode(&p, &small, 1, &e), HE_TOOBIG);
    ASSERT_EQ(small.len, 0);
    buf_release(&small);
    buf_release(&out);
    prof_release(&p);
    free(data);
}

TEST(dotnet_functions_without_ids_are_taken_by_position)
{
    size_t n;
    char *data = read_testdata("dotnet-pprof-3.pb.gz", &n);
    profile p;
    herr e;
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, data, n, &e));
    ASSERT_EQ(p.n_functions, 42);
    for (uint32_t i = 1; i < p.n_locations; i++) {
        const prof_location *l = &p.locations[i];
        ASSERT_EQ(l->n_lines, 1);
        ASSERT(p.lines[l->first_line].function != 0);
        ASSERT(strtab_len(&p.strings, p.functions[p.lines[l->first_line].function].name) > 0);
    }
    prof_release(&p);
    free(data);
}

TEST(samples_without_sample_types_round_trip)
{
    /* found by the fuzzer: a sample with no values in a profile with no sample types */
    static const uint8_t in[] = {0x12, 0x04, 0xf8, 0x00, 0xff, 0x49};
    profile a, b;
    herr e;
    buf out = BUF_INIT;
    ASSERT_OK(prof_init(&a));
    ASSERT_OK(prof_init(&b));
    ASSERT_OK(decode_buf(&a, in, sizeof in, &e));
    ASSERT_EQ(a.n_samples, 1);
    ASSERT_EQ(a.n_types, 0);
    ASSERT_OK(pprof_encode(&a, &out, 0, &e));
    ASSERT_OK(decode_buf(&b, out.data, out.len, &e));
    assert_same(&a, &b);
    buf_release(&out);
    prof_release(&a);
    prof_release(&b);
}

TEST(nodes_with_many_children_deduplicate)
{
    /* root gets 40 children (past the trie's list limit), visited three times in different orders */
    buf b = BUF_INIT;
    profile p;
    herr e;
    long m;
    uint32_t first_round[40];
    m = wire_begin(&b, 1); wire_put_uint(&b, 1, 0); wire_end(&b, m);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 40; i++) {
            uint64_t stack[2] = {(uint64_t)(r == 1 ? 40 - i : i + 1), 41};  /* leaf, then root 41 */
            m = wire_begin(&b, 2);
            wire_put_packed_u64(&b, 1, stack, r == 2 ? 1 : 2);
            wire_put_uint(&b, 2, 1);
            wire_end(&b, m);
        }
    for (int i = 1; i <= 41; i++) {
        m = wire_begin(&b, 4); wire_put_uint(&b, 1, (uint64_t)i); wire_end(&b, m);
    }
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    ASSERT_EQ(p.n_samples, 120);
    /* root 41 + its 40 children, then 40 one-frame stacks directly under the root */
    ASSERT_EQ(p.n_nodes, 1 + 1 + 40 + 40);
    for (int i = 0; i < 40; i++) first_round[i] = p.samples[i].stack;
    for (int i = 0; i < 40; i++) ASSERT_EQ(p.samples[40 + i].stack, first_round[39 - i]);
    for (int i = 0; i < 40; i++) ASSERT_EQ(p.nodes[p.samples[80 + i].stack].parent, 0);
    /* and the model finds them: no new node is made */
    ASSERT_EQ(prof_node_get(&p, p.nodes[first_round[7]].parent, p.nodes[first_round[7]].location),
              (int32_t)first_round[7]);
    ASSERT_EQ(p.n_nodes, 82);
    prof_release(&p);
    buf_release(&b);
}

/*
 * Random stacks over 6 locations, 1..10 deep, often extending, cutting or
 * branching off the previous one: every way a stack can meet the nodes made
 * before it (the previous leaf's chain child, a second child, a revisit long
 * after). Each stack must come back frame for frame, and no node twice.
 */
TEST(random_stacks_come_back_exactly_with_no_duplicate_nodes)
{
    enum { N_SAMPLES = 3000, N_LOCS = 6, MAX_DEPTH = 10 };
    static uint64_t stacks[N_SAMPLES][MAX_DEPTH];
    static size_t depth[N_SAMPLES];
    uint64_t rng = 0x9e3779b97f4a7c15u;
    buf b = BUF_INIT;
    profile p;
    herr e;
    long m;
    uint32_t locs[MAX_DEPTH];

    m = wire_begin(&b, 1); wire_put_uint(&b, 1, 0); wire_end(&b, m);
    for (size_t s = 0; s < N_SAMPLES; s++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        uint32_t r = (uint32_t)(rng >> 33);
        /* leaf first: the root end is stacks[s][depth - 1] */
        if (s && r % 3 == 0) {
            /* the previous stack, one frame deeper at the leaf (or cut if full) */
            depth[s] = depth[s - 1] < MAX_DEPTH ? depth[s - 1] + 1 : depth[s - 1] - 1;
            for (size_t k = 0; k < depth[s]; k++)
                stacks[s][k] = k + depth[s - 1] >= depth[s] ? stacks[s - 1][k + depth[s - 1] - depth[s]]
                                                           : 1 + (r >> 8) % N_LOCS;
        } else {
            depth[s] = 1 + (r >> 4) % MAX_DEPTH;
            for (size_t k = 0; k < depth[s]; k++) {
                rng = rng * 6364136223846793005u + 1442695040888963407u;
                stacks[s][k] = 1 + (rng >> 40) % N_LOCS;
            }
        }
        m = wire_begin(&b, 2);
        wire_put_packed_u64(&b, 1, stacks[s], depth[s]);
        wire_put_uint(&b, 2, 1);
        wire_end(&b, m);
    }
    for (int i = 1; i <= N_LOCS; i++) {
        m = wire_begin(&b, 4); wire_put_uint(&b, 1, (uint64_t)i); wire_end(&b, m);
    }
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    ASSERT_EQ(p.n_samples, N_SAMPLES);
    for (size_t s = 0; s < N_SAMPLES; s++) {
        ASSERT_EQ(prof_stack_locations(&p, p.samples[s].stack, locs, MAX_DEPTH), depth[s]);
        for (size_t k = 0; k < depth[s]; k++) ASSERT_EQ(locs[k], stacks[s][k]);  /* ids 1..6 are indices 1..6 */
    }
    {
        uint32_t n_nodes = p.n_nodes;
        for (uint32_t i = 1; i < n_nodes; i++)
            ASSERT_EQ(prof_node_get(&p, p.nodes[i].parent, p.nodes[i].location), i);
        ASSERT_EQ(p.n_nodes, n_nodes);
    }
    prof_release(&p);
    buf_release(&b);
}

TEST(decode_needs_an_empty_profile)
{
    knobs k = good();
    buf b;
    profile p;
    herr e;
    build(&k, &b);
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_USAGE);
    ASSERT_CONTAINS(e.msg, "empty profile");
    ASSERT_OK(prof_reset(&p));
    ASSERT_OK(decode_buf(&p, b.data, b.len, &e));
    prof_release(&p);
    buf_release(&b);
}

TEST(zstd_input_and_numeric_labels)
{
    size_t n;
    char *data = read_testdata("cpu.pb.gz", &n);
    buf plain, z = BUF_INIT;
    profile a, b;
    herr e;
    plain_bytes(data, n, &plain);
    ASSERT_OK(zstd_compress(plain.data, plain.len, 3, &z));
    ASSERT_OK(prof_init(&a));
    ASSERT_OK(prof_init(&b));
    ASSERT_OK(decode_buf(&a, data, n, &e));
    ASSERT_OK(decode_buf(&b, z.data, z.len, &e));
    assert_same(&a, &b);
    prof_release(&a);
    prof_release(&b);
    buf_release(&plain);
    buf_release(&z);
    free(data);

    /* a numeric label with a unit survives decode and a round trip */
    buf in = BUF_INIT, out = BUF_INIT;
    long m, m2;
    m = wire_begin(&in, 1); wire_put_uint(&in, 1, 1); wire_end(&in, m);
    m = wire_begin(&in, 2);
    wire_put_uint(&in, 2, 5);
    m2 = wire_begin(&in, 3);
    wire_put_uint(&in, 1, 2);
    wire_put_int(&in, 3, -4096);
    wire_put_uint(&in, 4, 3);
    wire_end(&in, m2);
    wire_end(&in, m);
    wire_put_bytes(&in, 6, "", 0);
    wire_put_bytes(&in, 6, "alloc", 5);
    wire_put_bytes(&in, 6, "bytes_freed", 11);
    wire_put_bytes(&in, 6, "bytes", 5);
    ASSERT_OK(prof_init(&a));
    ASSERT_OK(prof_init(&b));
    ASSERT_OK(decode_buf(&a, in.data, in.len, &e));
    ASSERT_EQ(a.n_labels, 1);
    ASSERT_STR(prof_s(&a, a.labels[0].key), "bytes_freed");
    ASSERT_EQ(a.labels[0].str, 0);
    ASSERT_EQ(a.labels[0].num, -4096);
    ASSERT_STR(prof_s(&a, a.labels[0].num_unit), "bytes");
    ASSERT_OK(pprof_encode(&a, &out, 1, &e));
    ASSERT_OK(decode_buf(&b, out.data, out.len, &e));
    assert_same(&a, &b);
    prof_release(&a);
    prof_release(&b);
    buf_release(&in);
    buf_release(&out);
}

TEST(label_string_and_size_limits)
{
    knobs k = good();
    buf b;
    profile p;
    herr e;
    build(&k, &b);

    ASSERT_OK(prof_init(&p));
    p.limits.max_labels = 0;  /* the sample has one label */
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_TOOBIG);
    ASSERT_CONTAINS(e.msg, "sample 0 has more than 0 labels");
    prof_release(&p);

    ASSERT_OK(prof_init(&p));
    p.limits.max_string_len = 5;  /* "a.out" fits, "samples" (string_table[3]) does not */
    ASSERT_EQ(decode_buf(&p, b.data, b.len, &e), HE_TOOBIG);
    ASSERT_CONTAINS(e.msg, "string_table[3] is 7 bytes long, more than the limit of 5 bytes");
    prof_release(&p);

    ASSERT_OK(prof_init(&p));
    herr_clear(&e);
    ASSERT_EQ(pprof_decode(&p, b.data, b.len, b.len - 1, &e), HE_TOOBIG);  /* raw input over the cap */
    ASSERT_CONTAINS(e.msg, "more than the limit");
    prof_release(&p);
    ASSERT_OK(prof_init(&p));
    herr_clear(&e);
    ASSERT_OK(pprof_decode(&p, b.data, b.len, b.len, &e));
    prof_release(&p);
    buf_release(&b);
}

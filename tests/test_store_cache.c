/*
 * test_store_cache.c: the head's ingest caches (location and stack
 * fingerprints, src/store/head.c) never merge symbols or stacks that
 * differ, and always merge ones that are equal by content whatever their
 * ids in the incoming profile.
 *
 * Each profile holds one sample whose stack differs from a base stack in
 * exactly one field (line, address, mapping build id or file name,
 * function name, system name, file name or start line, an extra inline
 * line, frame order, depth); a copy of the base with shuffled ids must fold
 * into the base. The merged profile read back from the store (head, then
 * flushed block, then after a restart that replays nothing) must have one
 * stack per variant with that variant's value, compared as full text.
 */
#include "t.h"

#include <unistd.h>

#include "core/common.h"
#include "core/mem.h"
#include "core/units.h"
#include "store/selector.h"
#include "store/store.h"

#define HOUR 3600000000000LL
#define CPU_TYPE "process_cpu:cpu:nanoseconds:cpu:nanoseconds"

/* One frame of a variant: everything a location is made of. */
typedef struct frame {
    uint64_t address;
    const char *map_file, *build_id;
    const char *fn, *sys, *file;
    int64_t start_line, line, column;
    const char *inl_fn; /* non-NULL: a second (caller) line of the same location */
} frame;

enum { MAX_FRAMES = 4 };
typedef struct variant {
    frame f[MAX_FRAMES]; /* root first */
    int depth;
} variant;

/* Columns stay 0: blocks do not keep line columns (block.c), so a flushed store could not tell them apart. */
static const frame BASE_A = {0x1000, "app", "b1", "main", "main_sys", "main.c", 1, 10, 0, NULL};
static const frame BASE_B = {0x2000, "app", "b1", "work", "work_sys", "work.c", 20, 30, 0, NULL};

/* Builds a profile holding the variant's stack once, with value v. `noise` adds unrelated symbols first so ids differ. */
static void build(const variant *va, int64_t v, int noise, profile *p)
{
    ASSERT_OK(prof_init(p));
    ASSERT(prof_add_type(p, "cpu", "nanoseconds") >= 0);
    p->period_type.type = (uint32_t)prof_cstr(p, "cpu");
    p->period_type.unit = (uint32_t)prof_cstr(p, "nanoseconds");
    p->period = 10000000;
    for (int k = 0; k < noise; k++) {
        char name[32];
        snprintf(name, sizeof(name), "noise%d", k);
        prof_mapping m = {0x9000, 0xa000, 0, (uint32_t)prof_cstr(p, name), 0, 1, 1, 1, 0};
        ASSERT(prof_mapping_add(p, &m) > 0);
        prof_function fn = {(uint32_t)prof_cstr(p, name), 0, 0, 0};
        int32_t f = prof_function_add(p, &fn);
        prof_line ln = {(uint32_t)f, 1, 0};
        ASSERT(prof_location_add(p, 0x9000 + (uint64_t)k, 0, &ln, 1) > 0);
    }
    uint32_t locs[MAX_FRAMES];
    for (int k = 0; k < va->depth; k++) {
        const frame *fr = &va->f[k];
        prof_mapping m = {0x1000, 0x100000, 0, (uint32_t)prof_cstr(p, fr->map_file), (uint32_t)prof_cstr(p, fr->build_id), 1, 1, 1, 0};
        int32_t mi = prof_mapping_intern(p, &m);
        prof_function fn = {(uint32_t)prof_cstr(p, fr->fn), (uint32_t)prof_cstr(p, fr->sys), (uint32_t)prof_cstr(p, fr->file),
                            fr->start_line};
        prof_line lines[2];
        uint32_t n = 0;
        lines[n++] = (prof_line){(uint32_t)prof_function_intern(p, &fn), fr->line, fr->column};
        if (fr->inl_fn) {
            prof_function g = {(uint32_t)prof_cstr(p, fr->inl_fn), 0, (uint32_t)prof_cstr(p, fr->file), 0};
            lines[n++] = (prof_line){(uint32_t)prof_function_intern(p, &g), fr->line + 1, 0};
        }
        int32_t l = prof_location_intern(p, fr->address, (uint32_t)mi, lines, n);
        ASSERT(l > 0);
        locs[k] = (uint32_t)l;
    }
    int32_t st = prof_stack_root_first(p, locs, (size_t)va->depth);
    ASSERT(st > 0);
    ASSERT(prof_sample_add(p, (uint32_t)st, &v, NULL, 0) >= 0);
}

/* The stack of sample i as text: every field of every frame, root first. */
static void stack_text(const profile *p, size_t i, char *out, size_t size)
{
    uint32_t locs[64];
    size_t depth = prof_stack_locations(p, p->samples[i].stack, locs, 64), len = 0;
    out[0] = 0;
    for (size_t k = depth; k-- > 0;) {
        const prof_location *l = &p->locations[locs[k]];
        const prof_mapping *m = &p->mappings[l->mapping];
        len += (size_t)snprintf(out + len, size - len, "[%" PRIx64 " %s %s", l->address, prof_s(p, m->filename),
                                prof_s(p, m->build_id));
        for (uint32_t j = 0; j < l->n_lines; j++) {
            const prof_line *ln = &p->lines[l->first_line + j];
            const prof_function *f = &p->functions[ln->function];
            len += (size_t)snprintf(out + len, size - len, " %s/%s/%s/%" PRId64 ":%" PRId64 ":%" PRId64, prof_s(p, f->name),
                                    prof_s(p, f->system_name), prof_s(p, f->filename), f->start_line, ln->line, ln->column);
        }
        len += (size_t)snprintf(out + len, size - len, "]");
        ASSERT(len < size);
    }
}

typedef struct expect {
    variant va;
    int64_t value;  /* the sum the store must report for this stack */
    char text[1024];
    int64_t got;
} expect;

static void check(store *s, int64_t t0, expect *ex, size_t n_ex, const char *phase)
{
    selector sel;
    herr e;
    herr_clear(&e);
    const char *q = "{service_name=\"svc\"}";
    ASSERT_OK(selector_parse(&sel, q, strlen(q), &e));
    store_query sq;
    memset(&sq, 0, sizeof(sq));
    sq.tenant = "anonymous";
    sq.profile_type = CPU_TYPE;
    sq.sel = &sel;
    sq.start_ns = t0 - HOUR;
    sq.end_ns = t0 + HOUR;
    profile p;
    ASSERT_OK(prof_init(&p));
    int rc = store_select_merge_profile(s, &sq, &p, &e);
    if (rc)
        t_fail(__FILE__, __LINE__, "%s: merge failed: %s", phase, herr_msg(&e, rc));
    for (size_t j = 0; j < n_ex; j++)
        ex[j].got = 0;
    for (size_t i = 0; i < p.n_samples; i++) {
        char text[1024];
        stack_text(&p, i, text, sizeof(text));
        size_t j;
        for (j = 0; j < n_ex; j++)
            if (!strcmp(ex[j].text, text))
                break;
        if (j == n_ex)
            t_fail(__FILE__, __LINE__, "%s: unexpected stack %s (value %" PRId64 ")", phase, text, prof_values(&p, i)[0]);
        else
            ex[j].got += prof_values(&p, i)[0];
    }
    for (size_t j = 0; j < n_ex; j++)
        if (ex[j].got != ex[j].value)
            t_fail(__FILE__, __LINE__, "%s: stack %s: got %" PRId64 ", want %" PRId64, phase, ex[j].text, ex[j].got,
                   ex[j].value);
    prof_release(&p);
    selector_release(&sel);
}

TEST(caches_keep_distinct_content_apart_and_fold_equal_content)
{
    const char *dir = t_tmpdir();
    store_opts o;
    store_opts_default(&o);
    o.fsync = STORE_FSYNC_NEVER;
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    int64_t t0 = (now_ns() / HOUR - 1) * HOUR + HOUR / 2;

    variant base = {{BASE_A, BASE_B}, 2};
    variant vs[32];
    size_t n = 0;
    vs[n++] = base;
#define VARY(field, value) do { vs[n] = base; vs[n].f[1].field = (value); n++; } while (0)
    VARY(line, 31);
    VARY(address, 0x2001);
    VARY(build_id, "b2");
    VARY(map_file, "lib");
    VARY(fn, "work2");
    VARY(sys, "work_sys2");
    VARY(file, "work2.c");
    VARY(start_line, 21);
    VARY(inl_fn, "inlined");
#undef VARY
    vs[n] = base; vs[n].f[0] = BASE_B; vs[n].f[1] = BASE_A; n++;        /* frames swapped */
    vs[n] = base; vs[n].depth = 1; n++;                                   /* a prefix of the base */
    vs[n] = base; vs[n].f[2] = BASE_A; vs[n].depth = 3; n++;              /* the base extended */
    vs[n] = base; vs[n].f[0].line = 11; n++;                              /* differs at the root only */

    expect *ex = xcalloc(n, sizeof(expect));
    for (size_t i = 0; i < n; i++) {
        ex[i].va = vs[i];
        ex[i].value = (int64_t)1 << i;
    }
    store_label l[2] = {{"service_name", "svc"}, {"__name__", "process_cpu"}};
    /* Each variant twice, in two rounds, each time with different ids (noise symbols first). */
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) {
            profile p;
            build(&vs[i], ex[i].value, (int)(i + (size_t)round * 3) % 5, &p);
            if (round == 0 && i == 0) {
                char text[1024];
                for (size_t j = 0; j < n; j++) {
                    profile q;
                    build(&vs[j], 1, 0, &q);
                    stack_text(&q, 0, text, sizeof(text));
                    memcpy(ex[j].text, text, sizeof(text));
                    prof_release(&q);
                }
            }
            int rc = store_ingest(s, "anonymous", l, 2, &p, t0 + (int64_t)(round * n + i) * 1000000000LL, 0, &e);
            if (rc)
                t_fail(__FILE__, __LINE__, "ingest: %s", herr_msg(&e, rc));
            prof_release(&p);
        }
    }
    for (size_t i = 0; i < n; i++)
        ex[i].value *= 2;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (!strcmp(ex[i].text, ex[j].text))
                t_fail(__FILE__, __LINE__, "variants %zu and %zu print the same: %s", i, j, ex[i].text);
    check(s, t0, ex, n, "head");
    ASSERT_OK(store_flush(s, &e));
    check(s, t0, ex, n, "flushed");
    store_close(s);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    check(s, t0, ex, n, "reopened");
    store_close(s);
    free(ex);
}

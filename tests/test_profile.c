/*
 * test_profile.c: the profile model (interning, stack tree, samples, merge,
 * compaction, validation) and the flame tree (aggregation, inline expansion,
 * span filter, truncation into "other", levels encoding, diff 7-tuples).
 */
#include "t.h"

#include "core/common.h"
#include "profile/flame.h"
#include "profile/profile.h"

/* Builds a one-type profile from folded-like lines "a;b;c" with values. */
static void add_stack(profile *p, const char *folded, int64_t v, const char *span)
{
    uint32_t locs[64];
    size_t n = 0;
    const char *s = folded;
    while (*s) {
        const char *e = strchr(s, ';');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int32_t loc = prof_location_for_name(p, s, len);
        ASSERT(loc > 0);
        locs[n++] = (uint32_t)loc;
        s += len + (e ? 1 : 0);
    }
    int32_t stack = prof_stack_root_first(p, locs, n);
    ASSERT(stack > 0);
    prof_label l = {0};
    if (span) {
        l.key = (uint32_t)prof_cstr(p, "span_id");
        l.str = (uint32_t)prof_cstr(p, span);
    }
    ASSERT(prof_sample_add(p, (uint32_t)stack, &v, &l, span ? 1 : 0) >= 0);
}

static profile *mk(void)
{
    static profile ps[8];
    static int i;
    profile *p = &ps[i++ % 8];
    ASSERT_OK(prof_init(p));
    ASSERT(prof_add_type(p, "samples", "count") == 0);
    return p;
}

TEST(model_basics)
{
    profile *p = mk();
    ASSERT_STR(prof_s(p, 0), "");
    add_stack(p, "main;work;leaf", 5, NULL);
    add_stack(p, "main;work;leaf", 3, NULL);
    add_stack(p, "main;other", 2, "abc");
    ASSERT_EQ(p->n_samples, 3);
    ASSERT_EQ(p->samples[0].stack, p->samples[1].stack);
    ASSERT_EQ(p->n_nodes, 5);  /* root, main, work, leaf, other */
    ASSERT_EQ(prof_total(p, 0), 10);
    ASSERT_STR(prof_sample_label(p, 2, "span_id"), "abc");
    ASSERT(prof_sample_label(p, 0, "span_id") == NULL);
    uint32_t locs[8];
    ASSERT_EQ(prof_stack_locations(p, p->samples[0].stack, locs, 8), 3);
    char name[64];
    ASSERT_STR(prof_frame_name(p, locs[0], 0, name, sizeof name), "leaf");
    ASSERT_STR(prof_frame_name(p, locs[2], 0, name, sizeof name), "main");
    ASSERT_OK(prof_validate(p, NULL));
    ASSERT_OK(prof_compact_samples(p));
    ASSERT_EQ(p->n_samples, 2);
    ASSERT_EQ(prof_values(p, 0)[0], 8);
    ASSERT_EQ(prof_total(p, 0), 10);
    prof_release(p);
}

TEST(frame_name_falls_back_to_module_offset)
{
    profile *p = mk();
    prof_mapping m = {0};
    m.memory_start = 0x400000; m.memory_limit = 0x500000; m.file_offset = 0x1000;
    m.filename = (uint32_t)prof_cstr(p, "/usr/bin/app");
    int32_t mi = prof_mapping_add(p, &m);
    int32_t li = prof_location_add(p, 0x400123, (uint32_t)mi, NULL, 0);
    int32_t l2 = prof_location_add(p, 0x99, 0, NULL, 0);
    char name[64];
    ASSERT_STR(prof_frame_name(p, (uint32_t)li, 0, name, sizeof name), "app+0x1123");
    ASSERT_STR(prof_frame_name(p, (uint32_t)l2, 0, name, sizeof name), "0x99");
    prof_release(p);
}

TEST(depth_cap_keeps_leaf_end)
{
    profile *p = mk();
    p->limits.max_stack_depth = 3;
    uint32_t locs[5];
    for (int i = 0; i < 5; i++) {
        char n[8];
        snprintf(n, sizeof n, "f%d", i);
        locs[i] = (uint32_t)prof_location_for_name(p, n, strlen(n));
    }
    int32_t s = prof_stack_leaf_first(p, locs, 5);
    uint32_t out[8];
    ASSERT_EQ(prof_stack_locations(p, (uint32_t)s, out, 8), 3);
    ASSERT_EQ(out[0], locs[0]);
    ASSERT_EQ(out[2], locs[2]);
    prof_release(p);
}

TEST(validate_catches_bad_refs)
{
    profile *p = mk();
    add_stack(p, "a;b", 1, NULL);
    p->functions[1].name = 999;
    herr e;
    herr_clear(&e);
    ASSERT_EQ(prof_validate(p, &e), HE_BADREF);
    ASSERT_CONTAINS(e.msg, "function 1");
    prof_release(p);
}

TEST(merge_remaps_and_combines)
{
    profile *a = mk(), *b = mk(), *dst = mk();
    add_stack(a, "main;x", 1, NULL);
    add_stack(a, "main;y", 2, NULL);
    /* b interns strings in a different order */
    add_stack(b, "other;z", 7, NULL);
    add_stack(b, "main;y", 4, NULL);
    add_stack(b, "main;y", 1, "s1");
    ASSERT_OK(prof_merge(dst, a, -1, 1, NULL));
    ASSERT_OK(prof_merge(dst, b, -1, 1, NULL));
    ASSERT_EQ(prof_total(dst, 0), 15);
    ASSERT_EQ(dst->n_samples, 4);  /* main;x  main;y(6)  other;z  main;y{s1} */
    int found = 0;
    for (size_t i = 0; i < dst->n_samples; i++) {
        uint32_t locs[4];
        char n0[32], n1[32];
        ASSERT_EQ(prof_stack_locations(dst, dst->samples[i].stack, locs, 4), 2);
        prof_frame_name(dst, locs[0], 0, n0, sizeof n0);
        prof_frame_name(dst, locs[1], 0, n1, sizeof n1);
        if (!strcmp(n0, "y") && !strcmp(n1, "main") && !dst->samples[i].n_labels) {
            ASSERT_EQ(prof_values(dst, i)[0], 6);
            found++;
        }
    }
    ASSERT_EQ(found, 1);
    /* one function per distinct name after interning */
    ASSERT_EQ(dst->n_functions, 1 + 5);
    ASSERT_OK(prof_validate(dst, NULL));

    /* mismatched types are refused with a message */
    profile *c = mk();
    ASSERT(prof_add_type(c, "cpu", "nanoseconds") == 1);
    herr e;
    herr_clear(&e);
    ASSERT_EQ(prof_merge(dst, c, -1, 1, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "cannot merge");
    prof_release(a); prof_release(b); prof_release(c); prof_release(dst);
}

TEST(pick_type)
{
    profile *p = mk();
    ASSERT(prof_add_type(p, "cpu", "nanoseconds") == 1);
    ASSERT_EQ(prof_pick_type(p, NULL, NULL), 1);
    p->default_sample_type = (uint32_t)prof_cstr(p, "samples");
    ASSERT_EQ(prof_pick_type(p, NULL, NULL), 0);
    ASSERT_EQ(prof_pick_type(p, "cpu", NULL), 1);
    herr e;
    herr_clear(&e);
    ASSERT_EQ(prof_pick_type(p, "alloc_space", &e), -1);
    ASSERT_CONTAINS(e.msg, "samples, cpu");
    prof_release(p);
}

static uint32_t child_named(const flame_tree *t, uint32_t parent, const char *name)
{
    for (uint32_t c = t->nodes[parent].first_child; c; c = t->nodes[c].next_sibling)
        if (!strcmp(strtab_get(&t->names, t->nodes[c].name), name)) return c;
    return 0;
}

TEST(flame_tree_aggregates_and_filters_spans)
{
    profile *p = mk();
    add_stack(p, "main;work;leaf", 5, "s1");
    add_stack(p, "main;work", 3, NULL);
    add_stack(p, "main;idle", 2, "s2");
    flame_tree t;
    ASSERT_OK(flame_init(&t));
    ASSERT_OK(flame_add_profile(&t, p, 0, NULL, 0));
    ASSERT_EQ(flame_total(&t, 0), 10);
    uint32_t m = child_named(&t, 0, "main"), w = child_named(&t, m, "work");
    ASSERT(m && w);
    ASSERT_EQ(t.nodes[w].total, 8);
    ASSERT_EQ(t.nodes[w].self, 3);
    ASSERT_EQ(t.max_depth, 3);
    flame_release(&t);

    const char *spans[] = {"s1", "s2"};
    flame_filter f = {spans, 1};
    ASSERT_OK(flame_init(&t));
    ASSERT_OK(flame_add_profile(&t, p, 0, &f, 0));
    ASSERT_EQ(flame_total(&t, 0), 5);
    f.n_span_ids = 2;
    ASSERT_OK(flame_add_profile(&t, p, 0, &f, 0));
    ASSERT_EQ(flame_total(&t, 0), 12);
    flame_release(&t);
    prof_release(p);
}

TEST(flame_inlined_frames_expand_outermost_first)
{
    profile *p = mk();
    prof_function f = {0};
    f.name = (uint32_t)prof_cstr(p, "inner");
    f.filename = (uint32_t)prof_cstr(p, "x.c");
    int32_t fi = prof_function_add(p, &f);
    f.name = (uint32_t)prof_cstr(p, "outer");
    int32_t fo = prof_function_add(p, &f);
    prof_line lines[2] = {{(uint32_t)fi, 10, 0}, {(uint32_t)fo, 20, 0}};
    int32_t loc = prof_location_add(p, 0x10, 0, lines, 2);
    uint32_t l = (uint32_t)loc;
    int32_t s = prof_stack_leaf_first(p, &l, 1);
    int64_t v = 4;
    ASSERT(prof_sample_add(p, (uint32_t)s, &v, NULL, 0) >= 0);
    flame_tree t;
    ASSERT_OK(flame_init(&t));
    ASSERT_OK(flame_add_profile(&t, p, 0, NULL, 0));
    uint32_t o = child_named(&t, 0, "outer"), i = child_named(&t, o, "inner");
    ASSERT(o && i);
    ASSERT_EQ(t.nodes[i].self, 4);
    ASSERT_EQ(t.nodes[i].line, 10);
    ASSERT_STR(strtab_get(&t.files, t.nodes[i].file), "x.c");
    /* files never appear among the frame names (encodings list every name) */
    ASSERT_EQ(strtab_find(&t.names, "x.c", 3), -1);
    flame_release(&t);
    prof_release(p);
}

TEST(flame_truncate_into_other)
{
    flame_tree t, out;
    ASSERT_OK(flame_init(&t));
    uint32_t a = (uint32_t)strtab_intern_cstr(&t.names, "a");
    uint32_t b = (uint32_t)strtab_intern_cstr(&t.names, "b");
    uint32_t c = (uint32_t)strtab_intern_cstr(&t.names, "c");
    uint32_t d = (uint32_t)strtab_intern_cstr(&t.names, "d");
    uint32_t s1[] = {a, b}, s2[] = {a, c}, s3[] = {a, d}, s4[] = {b};
    ASSERT(flame_add_names(&t, s1, 2, 50, 0) > 0);
    ASSERT(flame_add_names(&t, s2, 2, 3, 0) > 0);
    ASSERT(flame_add_names(&t, s3, 2, 2, 0) > 0);
    ASSERT(flame_add_names(&t, s4, 1, 1, 0) > 0);
    /* nodes: total(56) a(55) b(50) c(3) d(2) b'(1): keep 3 -> threshold 50 */
    ASSERT_OK(flame_truncate(&t, 3, &out));
    ASSERT_EQ(flame_total(&out, 0), 56);
    uint32_t oa = child_named(&out, 0, "a");
    ASSERT(oa);
    ASSERT(child_named(&out, oa, "b"));
    ASSERT_EQ(child_named(&out, oa, "c"), 0);
    uint32_t other = child_named(&out, oa, "other");
    ASSERT(other);
    ASSERT_EQ(out.nodes[other].total, 5);
    ASSERT_EQ(out.nodes[other].self, 5);
    uint32_t rother = child_named(&out, 0, "other");
    ASSERT(rother);
    ASSERT_EQ(out.nodes[rother].total, 1);
    flame_release(&out);
    flame_release(&t);
}

TEST(flame_levels_encoding)
{
    /* total(10) -> a(6: self 1) -> {b(3), c(2)}; d(4). Children sorted by name. */
    flame_tree t;
    flame_levels_out lv;
    ASSERT_OK(flame_init(&t));
    uint32_t a = (uint32_t)strtab_intern_cstr(&t.names, "a");
    uint32_t b = (uint32_t)strtab_intern_cstr(&t.names, "b");
    uint32_t c = (uint32_t)strtab_intern_cstr(&t.names, "c");
    uint32_t d = (uint32_t)strtab_intern_cstr(&t.names, "d");
    uint32_t s1[] = {d}, s2[] = {a, c}, s3[] = {a, b}, s4[] = {a};
    flame_add_names(&t, s1, 1, 4, 0);
    flame_add_names(&t, s2, 2, 2, 0);
    flame_add_names(&t, s3, 2, 3, 0);
    flame_add_names(&t, s4, 1, 1, 0);
    ASSERT_OK(flame_levels(&t, &lv));
    ASSERT_EQ(lv.n_levels, 3);
    ASSERT_EQ(lv.n_level[0], 4);
    int64_t l0[] = {0, 10, 0, 0};
    int64_t l1[] = {0, 6, 1, (int64_t)a, 0, 4, 4, (int64_t)d};
    int64_t l2[] = {0, 3, 3, (int64_t)b, 0, 2, 2, (int64_t)c};
    ASSERT(!memcmp(lv.levels[0], l0, sizeof l0));
    ASSERT_EQ(lv.n_level[1], 8);
    ASSERT(!memcmp(lv.levels[1], l1, sizeof l1));
    ASSERT_EQ(lv.n_level[2], 8);
    ASSERT(!memcmp(lv.levels[2], l2, sizeof l2));
    ASSERT_EQ(lv.max_self, 4);
    flame_levels_release(&lv);
    flame_release(&t);
}

TEST(flame_diff_levels_are_7_tuples)
{
    flame_tree t;
    flame_levels_out lv;
    ASSERT_OK(flame_init(&t));
    uint32_t a = (uint32_t)strtab_intern_cstr(&t.names, "a");
    uint32_t b = (uint32_t)strtab_intern_cstr(&t.names, "b");
    uint32_t sa[] = {a}, sb[] = {b};
    flame_add_names(&t, sa, 1, 5, 0);
    flame_add_names(&t, sb, 1, 5, 0);
    flame_add_names(&t, sa, 1, 1, 1);
    flame_add_names(&t, sb, 1, 9, 1);
    ASSERT(t.is_diff);
    ASSERT_OK(flame_levels(&t, &lv));
    ASSERT_EQ(lv.n_level[0], 7);
    int64_t l1[] = {0, 5, 5, 0, 1, 1, (int64_t)a, 0, 5, 5, 0, 9, 9, (int64_t)b};
    ASSERT_EQ(lv.n_level[1], 14);
    ASSERT(!memcmp(lv.levels[1], l1, sizeof l1));
    flame_levels_release(&lv);
    flame_release(&t);
}

TEST(flame_truncate_never_exceeds_max_nodes_on_ties)
{
    /* 1000 leaves of one sample each under "main": the cut ties at 1. */
    flame_tree t, out;
    ASSERT_OK(flame_init(&t));
    uint32_t m = (uint32_t)strtab_intern_cstr(&t.names, "main");
    for (int i = 0; i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        uint32_t s[2] = {m, (uint32_t)strtab_intern_cstr(&t.names, name)};
        ASSERT(flame_add_names(&t, s, 2, 1, 0) > 0);
    }
    ASSERT_OK(flame_truncate(&t, 10, &out));
    /* root + main + 8 leaves + one "other" */
    ASSERT_EQ(out.n_nodes, 11);
    ASSERT_EQ(flame_total(&out, 0), 1000);
    uint32_t om = child_named(&out, 0, "main");
    ASSERT_EQ(out.nodes[child_named(&out, om, "other")].total, 992);
    flame_release(&out);
    flame_release(&t);
}

TEST(totals_saturate_instead_of_overflowing)
{
    profile *p = mk();
    add_stack(p, "a;b", INT64_C(1) << 62, NULL);
    add_stack(p, "a;c", INT64_C(1) << 62, NULL);
    add_stack(p, "a;d", INT64_C(1) << 62, NULL);
    ASSERT(prof_total(p, 0) == INT64_MAX);
    flame_tree t;
    ASSERT_OK(flame_init(&t));
    ASSERT_OK(flame_add_profile(&t, p, 0, NULL, 0));
    ASSERT(flame_total(&t, 0) == INT64_MAX);
    flame_levels_out lv;
    ASSERT_OK(flame_levels(&t, &lv));
    flame_levels_release(&lv);
    flame_release(&t);
    prof_release(p);
}

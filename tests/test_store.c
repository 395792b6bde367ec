/*
 * test_store.c: the profile store. Selector parsing; ingest and every query
 * on hand-checked data; a property test that compares random queries
 * against a naive in-memory merge before flush, after flush, after
 * compaction and after a restart; WAL torn tails; byte flips in every file
 * type (verify reports them, queries on the rest still work); tenants.
 */
#include "t.h"

#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "profile/flame.h"
#include "store/selector.h"
#include "store/store.h"

#define HOUR 3600000000000LL
#define CPU_TYPE "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
#define ALLOC_TYPE "process_cpu:alloc_space:bytes:cpu:nanoseconds"

/* ---- selectors ---- */

static const char *get_map(void *arg, const char *name)
{
    const char *const *kv = arg;
    for (; *kv; kv += 2)
        if (!strcmp(kv[0], name))
            return kv[1];
    return NULL;
}

TEST(selector_parses_and_matches)
{
    selector s;
    herr e;
    herr_clear(&e);
    const char *txt = "{service_name=\"api\", env!=\"dev\", region=~\"eu.*\", pod!~'a|b',}";
    ASSERT_OK(selector_parse(&s, txt, strlen(txt), &e));
    ASSERT_EQ(s.n, 4);
    const char *l1[] = {"service_name", "api", "env", "prod", "region", "eu-1", "pod", "c", NULL};
    ASSERT(selector_match(&s, get_map, (void *)l1));
    const char *l2[] = {"service_name", "api", "region", "xeu-1", NULL}; /* regex is anchored */
    ASSERT(!selector_match(&s, get_map, (void *)l2));
    const char *l3[] = {"service_name", "api", "region", "eu", "pod", "a", NULL};
    ASSERT(!selector_match(&s, get_map, (void *)l3));
    const char *l4[] = {"service_name", "api", "region", "eu", NULL}; /* env absent = "" != "dev" */
    ASSERT(selector_match(&s, get_map, (void *)l4));
    selector_release(&s);

    ASSERT_OK(selector_parse(&s, "", 0, &e));
    ASSERT_EQ(s.n, 0);
    selector_release(&s);
    ASSERT_OK(selector_parse(&s, " {} ", 4, &e));
    selector_release(&s);
    { const char *q = "{a=\"x\\\"y\"}"; ASSERT_OK(selector_parse(&s, q, strlen(q), &e)); }
    ASSERT_STR(s.m[0].value, "x\"y");
    selector_release(&s);
}

TEST(selector_rejects_bad_input)
{
    const char *bad[] = {"{a=}", "{a~\"x\"}", "{=\"x\"}", "{a=\"x\"", "a=\"x\"", "{a=\"x\"} junk", "{a=~\"(\"}",
                         "{a=\"x\" b=\"y\"}", "{1a=\"x\"}"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        selector s;
        herr e;
        herr_clear(&e);
        int rc = selector_parse(&s, bad[i], strlen(bad[i]), &e);
        if (rc == 0)
            t_fail(__FILE__, __LINE__, "selector %s was accepted", bad[i]);
        ASSERT(e.msg[0] != 0);
        selector_release(&s);
    }
    herr e;
    herr_clear(&e);
    selector s;
    ASSERT_EQ(selector_parse(&s, "{a!\"x\"}", 7, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "offset 2");
    selector_release(&s);
}

/* ---- a generator of random profiles and its naive model ---- */

typedef struct gsample {
    uint8_t depth;
    uint8_t frames[6]; /* root first */
    int64_t v[2];
    int span, thread;  /* 0 = none */
    int trace;         /* 0 = none */
} gsample;

typedef struct gprof {
    int tenant, service, env;
    int64_t ts;
    int n;
    gsample s[24];
} gprof;

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int rn(int n) { return (int)(rnd() % (uint64_t)n); }

static int64_t t0;

static void gen(gprof *g)
{
    memset(g, 0, sizeof(*g));
    g->tenant = rn(10) == 0;
    g->service = rn(3);
    g->env = rn(2);
    g->ts = t0 + (int64_t)rn(60) * (HOUR / 6); /* on a 10 min grid, so range ends hit profiles exactly */
    g->n = 1 + rn(24);
    for (int i = 0; i < g->n; i++) {
        gsample *s = &g->s[i];
        s->depth = (uint8_t)(1 + rn(6));
        for (int k = 0; k < s->depth; k++)
            s->frames[k] = (uint8_t)rn(k == 0 ? 3 : 12);
        s->v[0] = 1 + rn(100);
        s->v[1] = rn(4) == 0 ? 0 : rn(1000);
        s->span = rn(4) == 0 ? 1 + rn(5) : 0;
        s->thread = rn(5) == 0 ? 1 + rn(2) : 0;
        s->trace = rn(3) == 0 ? 1 + rn(4) : 0;
    }
}

static void build(const gprof *g, profile *p)
{
    ASSERT_OK(prof_init(p));
    ASSERT(prof_add_type(p, "cpu", "nanoseconds") >= 0);
    ASSERT(prof_add_type(p, "alloc_space", "bytes") >= 0);
    p->period_type.type = (uint32_t)prof_cstr(p, "cpu");
    p->period_type.unit = (uint32_t)prof_cstr(p, "nanoseconds");
    p->period = 10000000;
    for (int i = 0; i < g->n; i++) {
        const gsample *s = &g->s[i];
        uint32_t locs[8];
        char name[16];
        for (int k = 0; k < s->depth; k++) {
            snprintf(name, sizeof(name), "f%d", s->frames[k]);
            locs[k] = (uint32_t)prof_location_for_name(p, name, strlen(name));
        }
        int32_t st = prof_stack_root_first(p, locs, s->depth);
        ASSERT(st > 0);
        prof_label l[3];
        uint32_t nl = 0;
        char v[16];
        if (s->span) {
            snprintf(v, sizeof(v), "span-%d", s->span);
            l[nl++] = (prof_label){(uint32_t)prof_cstr(p, "span_id"), (uint32_t)prof_cstr(p, v), 0, 0};
        }
        if (s->thread) {
            snprintf(v, sizeof(v), "t%d", s->thread);
            l[nl++] = (prof_label){(uint32_t)prof_cstr(p, "thread"), (uint32_t)prof_cstr(p, v), 0, 0};
        }
        if (s->trace) {
            snprintf(v, sizeof(v), "trace-%d", s->trace);
            l[nl++] = (prof_label){(uint32_t)prof_cstr(p, "trace_id"), (uint32_t)prof_cstr(p, v), 0, 0};
        }
        ASSERT(prof_sample_add(p, (uint32_t)st, s->v, l, nl) >= 0);
    }
}

static const char *tenant_name(int t) { return t ? "other" : "anonymous"; }

static void ingest(store *s, const gprof *g)
{
    profile p;
    build(g, &p);
    char svc[16];
    snprintf(svc, sizeof(svc), "svc%d", g->service);
    store_label l[3] = {{"service_name", svc}, {"env", g->env ? "prod" : "dev"}, {"__name__", "process_cpu"}};
    herr e;
    herr_clear(&e);
    int rc = store_ingest(s, tenant_name(g->tenant), l, 3, &p, g->ts, 10000000000LL, &e);
    if (rc)
        t_fail(__FILE__, __LINE__, "ingest: %s", herr_msg(&e, rc));
    prof_release(&p);
}

/* A flame tree as text: one line per node, depth first, children sorted. */
typedef struct walk_buf {
    buf b;
} walk_buf;
static int walk_line(const flame_tree *t, uint32_t node, uint32_t depth, void *arg)
{
    walk_buf *w = arg;
    buf_printf(&w->b, "%u %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", depth, strtab_get(&t->names, t->nodes[node].name),
               t->nodes[node].total, t->nodes[node].self, t->nodes[node].total2, t->nodes[node].self2);
    return 0;
}
static char *tree_text(flame_tree *t)
{
    walk_buf w;
    buf_init(&w.b, 0);
    flame_sort(t);
    flame_walk(t, walk_line, &w);
    return buf_detach(&w.b, NULL);
}

/* A map from "f1;f2" (root first) to a value. */
typedef struct smap {
    strtab keys;
    int64_t *v;
    size_t cap;
} smap;

static void smap_init(smap *m)
{
    strtab_init(&m->keys);
    m->v = NULL;
    m->cap = 0;
}
static void smap_release(smap *m)
{
    strtab_release(&m->keys);
    free(m->v);
}
static void smap_add(smap *m, const char *k, int64_t v)
{
    int32_t id = strtab_intern_cstr(&m->keys, k);
    if ((size_t)id >= m->cap) {
        size_t old = m->cap;
        m->cap = (size_t)id * 2 + 16;
        m->v = xreallocarray(m->v, m->cap, sizeof(int64_t));
        memset(m->v + old, 0, (m->cap - old) * sizeof(int64_t));
    }
    m->v[id] += v;
}
static int64_t smap_get(const smap *m, const char *k)
{
    int32_t id = strtab_find(&m->keys, k, strlen(k));
    return id < 0 ? 0 : m->v[id];
}

typedef struct query {
    int tenant;
    int type;
    const char *sel;
    int64_t start, end;
    int n_spans;
    const char *spans[2];
    int n_traces;
    const char *traces[2];
} query;

static int naive_labels_match(const gprof *g, const gsample *smp, int type, const selector *sel)
{
    char svc[16], thr[16];
    snprintf(svc, sizeof(svc), "svc%d", g->service);
    snprintf(thr, sizeof(thr), "t%d", smp->thread);
    const char *kv[24];
    int n = 0;
    kv[n++] = "service_name"; kv[n++] = svc;
    kv[n++] = "env"; kv[n++] = g->env ? "prod" : "dev";
    kv[n++] = "__name__"; kv[n++] = "process_cpu";
    kv[n++] = "__type__"; kv[n++] = type ? "alloc_space" : "cpu";
    kv[n++] = "__unit__"; kv[n++] = type ? "bytes" : "nanoseconds";
    kv[n++] = "__period_type__"; kv[n++] = "cpu";
    kv[n++] = "__period_unit__"; kv[n++] = "nanoseconds";
    kv[n++] = "__profile_type__"; kv[n++] = type ? ALLOC_TYPE : CPU_TYPE;
    if (smp->thread) {
        kv[n++] = "thread";
        kv[n++] = thr;
    }
    kv[n] = NULL;
    return selector_match(sel, get_map, kv);
}

static int naive_sample_in(const gprof *g, const gsample *smp, const query *q, const selector *sel)
{
    if (g->tenant != q->tenant || g->ts < q->start || (q->end && g->ts > q->end))
        return 0;
    if (smp->v[q->type] == 0)
        return 0;
    if (q->n_spans) {
        char sp[16];
        snprintf(sp, sizeof(sp), "span-%d", smp->span);
        int ok = 0;
        for (int i = 0; i < q->n_spans; i++)
            ok |= smp->span && !strcmp(q->spans[i], sp);
        if (!ok)
            return 0;
    }
    if (q->n_traces) {
        char tr[16];
        snprintf(tr, sizeof(tr), "trace-%d", smp->trace);
        int ok = 0;
        for (int i = 0; i < q->n_traces; i++)
            ok |= smp->trace && !strcmp(q->traces[i], tr);
        if (!ok)
            return 0;
    }
    return naive_labels_match(g, smp, q->type, sel);
}

static void naive_merge(const gprof *gs, size_t n, const query *q, const selector *sel, smap *out)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < gs[i].n; k++) {
            const gsample *smp = &gs[i].s[k];
            if (!naive_sample_in(&gs[i], smp, q, sel))
                continue;
            char key[64];
            size_t kl = 0;
            for (int d = 0; d < smp->depth; d++)
                kl += (size_t)snprintf(key + kl, sizeof(key) - kl, "%sf%d", d ? ";" : "", smp->frames[d]);
            smap_add(out, key, smp->v[q->type]);
        }
}

static void profile_to_map(const profile *p, smap *out)
{
    for (size_t i = 0; i < p->n_samples; i++) {
        uint32_t locs[64];
        size_t d = prof_stack_locations(p, p->samples[i].stack, locs, 64);
        char key[512];
        size_t kl = 0;
        for (size_t k = d; k-- > 0;) {
            char name[64];
            prof_frame_name(p, locs[k], 0, name, sizeof(name));
            kl += (size_t)snprintf(key + kl, sizeof(key) - kl, "%s%s", kl ? ";" : "", name);
        }
        smap_add(out, key, prof_values(p, i)[0]);
    }
}

static void random_query(query *q)
{
    static const char *sels[] = {"", "{service_name=\"svc1\"}", "{env!=\"dev\"}", "{service_name=~\"svc[12]\"}",
                                 "{service_name!~\"svc1|svc2\"}", "{thread=\"t1\"}", "{thread=\"\"}",
                                 "{env=\"prod\", service_name=\"svc0\"}", "{thread!=\"t2\", env=~\"d.*\"}"};
    static const char *spans[] = {"span-1", "span-2", "span-3", "span-9"};
    static const char *traces[] = {"trace-1", "trace-2", "trace-4", "trace-9"};
    memset(q, 0, sizeof(*q));
    q->tenant = rn(5) == 0;
    q->type = rn(2);
    q->sel = sels[rn((int)ARRAY_SIZE(sels))];
    q->start = t0 + (int64_t)(rn(66) - 6) * (HOUR / 6);
    q->end = rn(4) == 0 ? 0 : q->start + (int64_t)rn(36) * (HOUR / 6);
    if (rn(4) == 0) {
        q->n_spans = 1 + rn(2);
        for (int i = 0; i < q->n_spans; i++)
            q->spans[i] = spans[rn(4)];
    }
    if (rn(3) == 0) {
        q->n_traces = 1 + rn(2);
        for (int i = 0; i < q->n_traces; i++)
            q->traces[i] = traces[rn(4)];
    }
}

static void check_query(store *s, const gprof *gs, size_t n, const query *q, const char *phase)
{
    selector sel;
    herr e;
    herr_clear(&e);
    ASSERT_OK(selector_parse(&sel, q->sel, strlen(q->sel), &e));
    smap want, got;
    smap_init(&want);
    smap_init(&got);
    naive_merge(gs, n, q, &sel, &want);
    store_query sq;
    memset(&sq, 0, sizeof(sq));
    sq.tenant = tenant_name(q->tenant);
    sq.profile_type = q->type ? ALLOC_TYPE : CPU_TYPE;
    sq.sel = &sel;
    sq.start_ns = q->start;
    sq.end_ns = q->end;
    sq.span_ids = q->spans;
    sq.n_span_ids = (size_t)q->n_spans;
    sq.trace_ids = q->traces;
    sq.n_trace_ids = (size_t)q->n_traces;
    profile p;
    ASSERT_OK(prof_init(&p));
    int rc = store_select_merge_profile(s, &sq, &p, &e);
    if (rc)
        t_fail(__FILE__, __LINE__, "%s: merge failed: %s", phase, herr_msg(&e, rc));
    profile_to_map(&p, &got);
    int64_t want_total = 0;
    for (uint32_t i = 0; i < want.keys.count; i++) {
        int64_t g = smap_get(&got, strtab_get(&want.keys, i));
        want_total += want.v[i];
        if (g != want.v[i])
            t_fail(__FILE__, __LINE__, "%s: tenant %d type %d sel %s range [%" PRId64 ", %" PRId64 "] spans %d traces %d: stack %s: got %" PRId64 ", want %" PRId64,
                   phase, q->tenant, q->type, q->sel, q->start - t0, q->end ? q->end - t0 : 0, q->n_spans, q->n_traces, strtab_get(&want.keys, i), g, want.v[i]);
    }
    for (uint32_t i = 0; i < got.keys.count; i++)
        if (smap_get(&want, strtab_get(&got.keys, i)) != got.v[i] && got.v[i] != 0)
            t_fail(__FILE__, __LINE__, "%s: sel %s: unexpected stack %s = %" PRId64, phase, q->sel, strtab_get(&got.keys, i), got.v[i]);
    ASSERT_OK(prof_validate(&p, &e));

    /* The flame tree of the same selection is the tree of the merged profile. */
    flame_tree t, t2;
    ASSERT_OK(flame_init(&t));
    ASSERT_OK(flame_init(&t2));
    ASSERT_OK(store_select_merge_tree(s, &sq, &t, 0, &e));
    ASSERT_EQ(flame_total(&t, 0), want_total);
    if (p.n_samples)
        ASSERT_OK(flame_add_profile(&t2, &p, 0, NULL, 0));
    char *a = tree_text(&t), *b = tree_text(&t2);
    if (strcmp(a, b))
        t_fail(__FILE__, __LINE__, "%s: flame tree differs from the merged profile's:\n%s\nvs\n%s", phase, a, b);
    free(a);
    free(b);
    flame_release(&t);
    flame_release(&t2);
    prof_release(&p);

    /* Series of totals grouped by service, summed over the buckets, per service. */
    if (q->end) {
        const char *gb[] = {"service_name"};
        store_ts_list tl;
        ASSERT_OK(store_select_series(s, &sq, HOUR, gb, 1, STORE_AGG_SUM, &tl, &e));
        int64_t per[3] = {0, 0, 0}, got_per[3] = {0, 0, 0};
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < gs[i].n; k++)
                if (naive_sample_in(&gs[i], &gs[i].s[k], q, &sel))
                    per[gs[i].service] += gs[i].s[k].v[q->type];
        for (size_t i = 0; i < tl.n; i++) {
            ASSERT_EQ(tl.v[i].labels.n, 1);
            int svc = tl.v[i].labels.labels[0].value[3] - '0';
            ASSERT(svc >= 0 && svc < 3);
            for (size_t k = 0; k < tl.v[i].n_points; k++) {
                ASSERT(tl.v[i].points[k].ts_ns >= q->start && tl.v[i].points[k].ts_ns <= q->end);
                got_per[svc] += (int64_t)tl.v[i].points[k].value;
            }
        }
        for (int k = 0; k < 3; k++)
            if (per[k] != got_per[k])
                t_fail(__FILE__, __LINE__, "%s: series sel %s svc%d: got %" PRId64 ", want %" PRId64, phase, q->sel, k, got_per[k], per[k]);
        store_ts_release(&tl);
    }

    /* Label values of service_name: the services with a matching sample (span and trace filters ignored). */
    if (!q->n_spans && !q->n_traces) {
        store_strs vals;
        ASSERT_OK(store_label_values(s, &sq, "service_name", &vals, &e));
        int want_svc[3] = {0, 0, 0};
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < gs[i].n; k++)
                if (naive_sample_in(&gs[i], &gs[i].s[k], q, &sel))
                    want_svc[gs[i].service] = 1;
        int got_svc[3] = {0, 0, 0};
        for (size_t i = 0; i < vals.n; i++)
            got_svc[vals.v[i][3] - '0'] = 1;
        for (int k = 0; k < 3; k++)
            if (want_svc[k] != got_svc[k])
                t_fail(__FILE__, __LINE__, "%s: label values sel %s: svc%d got %d want %d", phase, q->sel, k, got_svc[k], want_svc[k]);
        store_strs_release(&vals);
    }
    selector_release(&sel);
    smap_release(&want);
    smap_release(&got);
}

static void check_phase(store *s, const gprof *gs, size_t n, const char *phase)
{
    for (int i = 0; i < 60; i++) {
        query q;
        random_query(&q);
        check_query(s, gs, n, &q, phase);
    }
}

static void test_opts(store_opts *o)
{
    store_opts_default(o);
    o->fsync = STORE_FSYNC_NEVER;
    o->block_ns = HOUR;
    o->compact_ns = 24 * HOUR;
}

TEST(property_against_naive_merge)
{
    t0 = (now_ns() / (24 * HOUR) - 1) * 24 * HOUR; /* yesterday 00:00: one compaction window */
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    size_t n = 300;
    gprof *gs = xcalloc(n, sizeof(gprof));
    for (size_t i = 0; i < 150; i++) {
        gen(&gs[i]);
        ingest(s, &gs[i]);
    }
    check_phase(s, gs, 150, "head");
    ASSERT_OK(store_flush(s, &e));
    check_phase(s, gs, 150, "flushed");
    for (size_t i = 150; i < 220; i++) {
        gen(&gs[i]);
        ingest(s, &gs[i]);
    }
    ASSERT_OK(store_flush(s, &e));
    for (size_t i = 220; i < n; i++) {
        gen(&gs[i]);
        ingest(s, &gs[i]);
    }
    check_phase(s, gs, n, "blocks+head");
    store_stats st;
    store_get_stats(s, &st);
    uint64_t before = st.n_blocks;
    ASSERT_OK(store_flush(s, &e));
    ASSERT_OK(store_compact(s, &e));
    store_get_stats(s, &st);
    ASSERT(st.n_blocks < before + 20);
    ASSERT_EQ(st.n_blocks, 2); /* one per tenant: every block is in one 24 h window */
    ASSERT(st.compactions >= 1);
    check_phase(s, gs, n, "compacted");
    /* Restart with data in the WAL too. */
    gprof extra[20];
    for (int i = 0; i < 20; i++) {
        gen(&extra[i]);
        ingest(s, &extra[i]);
    }
    store_close(s);
    gs = xreallocarray(gs, n + 20, sizeof(gprof));
    memcpy(gs + n, extra, sizeof(extra));
    n += 20;
    ASSERT_OK(store_open(&s, dir, &o, &e));
    check_phase(s, gs, n, "restarted");
    store_close(s);
    buf rep;
    buf_init(&rep, 0);
    uint64_t problems = 9;
    ASSERT_OK(store_verify(dir, &rep, &problems, &e));
    if (problems)
        t_fail(__FILE__, __LINE__, "verify: %s", rep.data);
    buf_release(&rep);
    free(gs);
}

TEST(labels_types_series_and_stats)
{
    t0 = (now_ns() / HOUR - 12) * HOUR;
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    gprof g;
    gen(&g);
    g.tenant = 0;
    g.service = 2;
    g.env = 1;
    g.ts = t0 + 5;
    for (int i = 0; i < g.n; i++)
        g.s[i].thread = 0;
    g.s[0].thread = 1;
    ingest(s, &g);
    store_query q;
    memset(&q, 0, sizeof(q));
    q.tenant = "anonymous";
    store_strs l;
    ASSERT_OK(store_profile_types(s, &q, &l, &e));
    ASSERT_EQ(l.n, 2);
    ASSERT_STR(l.v[0], ALLOC_TYPE);
    ASSERT_STR(l.v[1], CPU_TYPE);
    store_strs_release(&l);
    q.profile_type = CPU_TYPE;
    ASSERT_OK(store_label_names(s, &q, &l, &e));
    const char *want[] = {"__name__", "__period_type__", "__period_unit__", "__profile_type__", "__type__", "__unit__",
                          "env", "service_name", "thread"};
    ASSERT_EQ(l.n, ARRAY_SIZE(want));
    for (size_t i = 0; i < l.n; i++)
        ASSERT_STR(l.v[i], want[i]);
    store_strs_release(&l);
    /* The thread label split the profile into two series. */
    store_series_list sl;
    ASSERT_OK(store_series(s, &q, NULL, 0, &sl, &e));
    ASSERT_EQ(sl.n, 2);
    store_series_release(&sl);
    const char *names[] = {"service_name"};
    ASSERT_OK(store_series(s, &q, names, 1, &sl, &e));
    ASSERT_EQ(sl.n, 1);
    ASSERT_EQ(sl.v[0].n, 1);
    ASSERT_STR(sl.v[0].labels[0].value, "svc2");
    store_series_release(&sl);
    store_tenant_stats ts;
    ASSERT_OK(store_profile_stats(s, "anonymous", &ts, &e));
    ASSERT_EQ(ts.has_data, 1);
    ASSERT_EQ(ts.oldest_ns, t0 + 5);
    ASSERT_OK(store_profile_stats(s, "other", &ts, &e));
    ASSERT_EQ(ts.has_data, 0);
    /* Tenants never see each other. */
    q.tenant = "other";
    q.profile_type = NULL;
    ASSERT_OK(store_profile_types(s, &q, &l, &e));
    ASSERT_EQ(l.n, 0);
    store_strs_release(&l);
    /* Bad input is refused with a message. */
    profile p;
    build(&g, &p);
    store_label bad[] = {{"service_name", "x"}, {"9bad", "y"}};
    herr_clear(&e);
    ASSERT_EQ(store_ingest(s, "anonymous", bad, 2, &p, t0, 0, &e), HE_USAGE);
    ASSERT_CONTAINS(e.msg, "9bad");
    herr_clear(&e);
    ASSERT_EQ(store_ingest(s, "../etc", bad, 1, &p, t0, 0, &e), HE_USAGE);
    herr_clear(&e);
    store_label nosvc[] = {{"env", "x"}};
    ASSERT_EQ(store_ingest(s, "anonymous", nosvc, 1, &p, t0, 0, &e), HE_USAGE);
    ASSERT_CONTAINS(e.msg, "service_name");
    prof_release(&p);
    q.tenant = "anonymous";
    q.profile_type = "nonsense";
    flame_tree t;
    flame_init(&t);
    herr_clear(&e);
    ASSERT_EQ(store_select_merge_tree(s, &q, &t, 0, &e), HE_USAGE);
    flame_release(&t);
    store_close(s);
}

TEST(diff_is_two_sides_of_one_tree)
{
    t0 = (now_ns() / HOUR - 12) * HOUR;
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    gprof a, b;
    gen(&a);
    gen(&b);
    a.tenant = b.tenant = 0;
    a.service = 0;
    b.service = 1;
    ingest(s, &a);
    ingest(s, &b);
    ASSERT_OK(store_flush(s, &e));
    selector sa, sb;
    ASSERT_OK(selector_parse(&sa, "{service_name=\"svc0\"}", 21, &e));
    ASSERT_OK(selector_parse(&sb, "{service_name=\"svc1\"}", 21, &e));
    store_query q;
    memset(&q, 0, sizeof(q));
    q.tenant = "anonymous";
    q.profile_type = CPU_TYPE;
    q.start_ns = t0 - 100 * HOUR;
    flame_tree t;
    flame_init(&t);
    q.sel = &sa;
    ASSERT_OK(store_select_merge_tree(s, &q, &t, 0, &e));
    q.sel = &sb;
    ASSERT_OK(store_select_merge_tree(s, &q, &t, 1, &e));
    int64_t ta = 0, tb = 0;
    for (int i = 0; i < a.n; i++)
        ta += a.s[i].v[0];
    for (int i = 0; i < b.n; i++)
        tb += b.s[i].v[0];
    ASSERT_EQ(flame_total(&t, 0), ta);
    ASSERT_EQ(flame_total(&t, 1), tb);
    flame_release(&t);
    selector_release(&sa);
    selector_release(&sb);
    store_close(s);
}

/* ---- damage ---- */

static void flip_byte(const char *path, long off_from_end_or_start, int from_end)
{
    int fd = open(path, O_RDWR);
    ASSERT(fd >= 0);
    struct stat st;
    fstat(fd, &st);
    off_t off = from_end ? st.st_size - off_from_end_or_start : off_from_end_or_start;
    ASSERT(off >= 0 && off < st.st_size);
    unsigned char c;
    ASSERT_EQ(pread(fd, &c, 1, off), 1);
    c ^= 0x5a;
    ASSERT_EQ(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

/* Path of the only block directory of tenant under dir. */
static void block_dir(const char *dir, const char *tenant, char *out, size_t n)
{
    char td[1024];
    snprintf(td, sizeof(td), "%s/tenants/%s", dir, tenant);
    DIR *d = opendir(td);
    ASSERT(d);
    struct dirent *de;
    out[0] = 0;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            snprintf(out, n, "%s/%s", td, de->d_name);
    closedir(d);
    ASSERT(out[0]);
}

static int64_t cpu_total(store *s, const char *tenant)
{
    store_query q;
    memset(&q, 0, sizeof(q));
    q.tenant = tenant;
    q.profile_type = CPU_TYPE;
    q.start_ns = INT64_MIN;
    flame_tree t;
    flame_init(&t);
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_select_merge_tree(s, &q, &t, 0, &e));
    int64_t v = flame_total(&t, 0);
    flame_release(&t);
    return v;
}

TEST(totals_past_int64_saturate_instead_of_overflowing)
{
    /*
     * pprof values are client-chosen int64s. Totals of hostile input clamp
     * at INT64_MAX (as prof_total does) in the head, in blocks and after
     * compaction: signed overflow is undefined behaviour, which the
     * sanitizer build of this test would trap.
     */
    t0 = (now_ns() / HOUR - 12) * HOUR;
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    gprof g;
    gen(&g);
    g.tenant = 0;
    g.ts = t0 + 5;
    g.n = 3;
    for (int i = 0; i < g.n; i++) {
        g.s[i].depth = 2;
        g.s[i].frames[0] = 1;
        g.s[i].frames[1] = (uint8_t)(2 + i % 2);  /* two samples on one stack, one on a sibling */
        g.s[i].v[0] = INT64_MAX - 1;
        g.s[i].v[1] = 1;
    }
    ingest(s, &g);
    g.ts = t0 + 6;
    ingest(s, &g);
    ASSERT_EQ(cpu_total(s, "anonymous"), INT64_MAX);
    ASSERT_OK(store_flush(s, &e));
    ASSERT_EQ(cpu_total(s, "anonymous"), INT64_MAX);
    g.ts = t0 + 7;
    ingest(s, &g);
    ASSERT_OK(store_flush(s, &e));
    ASSERT_OK(store_compact(s, &e));
    ASSERT_EQ(cpu_total(s, "anonymous"), INT64_MAX);
    {
        store_query q;
        store_ts_list l;
        memset(&q, 0, sizeof(q));
        q.tenant = "anonymous";
        q.profile_type = CPU_TYPE;
        q.start_ns = t0;
        q.end_ns = t0 + HOUR;
        ASSERT_OK(store_select_series(s, &q, HOUR, NULL, 0, STORE_AGG_SUM, &l, &e));
        ASSERT_EQ(l.n, 1);
        ASSERT(l.v[0].n_points >= 1);
        ASSERT(l.v[0].points[0].value >= 9.2e18);
        store_ts_release(&l);
    }
    store_close(s);
}

TEST(byte_flips_in_each_block_file_are_reported_and_skipped)
{
    const char *files[] = {"index", "symbols", "samples"};
    for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
        for (int where = 0; where < 2; where++) {
            t0 = (now_ns() / HOUR - 12) * HOUR;
            const char *dir = t_tmpdir();
            store_opts o;
            test_opts(&o);
            store *s;
            herr e;
            herr_clear(&e);
            ASSERT_OK(store_open(&s, dir, &o, &e));
            gprof a, b;
            gen(&a);
            gen(&b);
            a.tenant = 0;
            b.tenant = 1;
            ingest(s, &a);
            ingest(s, &b);
            ASSERT_OK(store_flush(s, &e));
            int64_t tb = cpu_total(s, "other");
            ASSERT(tb > 0);
            store_close(s);
            char bd[2048], path[2100];
            block_dir(dir, "anonymous", bd, sizeof(bd));
            snprintf(path, sizeof(path), "%s/%s", bd, files[f]);
            /* where 0: inside the header; 1: the last byte of the body */
            flip_byte(path, where ? 1 : 20, where);
            buf rep;
            buf_init(&rep, 0);
            uint64_t problems = 0;
            ASSERT_OK(store_verify(dir, &rep, &problems, &e));
            if (problems != 1)
                t_fail(__FILE__, __LINE__, "flip in %s (%s): verify found %" PRIu64 " problems: %s", files[f],
                       where ? "body" : "header", problems, rep.data);
            ASSERT_CONTAINS(rep.data, "DAMAGED");
            ASSERT_CONTAINS(rep.data, files[f]);
            buf_release(&rep);
            log_set_level(LOG_OFF);
            ASSERT_OK(store_open(&s, dir, &o, &e));
            log_set_level(LOG_INFO);
            store_stats st;
            store_get_stats(s, &st);
            ASSERT_EQ(st.n_damaged_blocks, 1);
            ASSERT_EQ(cpu_total(s, "other"), tb);      /* the rest still answers */
            ASSERT_EQ(cpu_total(s, "anonymous"), 0);   /* the damaged block is skipped */
            store_close(s);
        }
    }
}

static void wal_file(const char *dir, char *out, size_t n)
{
    char wd[1024];
    snprintf(wd, sizeof(wd), "%s/wal", dir);
    DIR *d = opendir(wd);
    ASSERT(d);
    struct dirent *de;
    out[0] = 0;
    off_t best = -1;
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".wal"))
            continue;
        char p[2100];
        snprintf(p, sizeof(p), "%s/%s", wd, de->d_name);
        struct stat st;
        stat(p, &st);
        if (st.st_size > best) {
            best = st.st_size;
            snprintf(out, n, "%s", p);
        }
    }
    closedir(d);
    ASSERT(out[0]);
}

TEST(wal_torn_tail_is_truncated_and_flips_lose_only_the_tail)
{
    for (int mode = 0; mode < 2; mode++) {
        t0 = (now_ns() / HOUR - 12) * HOUR;
        const char *dir = t_tmpdir();
        store_opts o;
        test_opts(&o);
        store *s;
        herr e;
        herr_clear(&e);
        ASSERT_OK(store_open(&s, dir, &o, &e));
        gprof a, b;
        gen(&a);
        gen(&b);
        a.tenant = b.tenant = 0;
        ingest(s, &a);
        int64_t ta = cpu_total(s, "anonymous");
        ingest(s, &b);
        store_close(s);
        char wp[2200];
        wal_file(dir, wp, sizeof(wp));
        if (mode == 0) {
            /* A torn append: half a record header of garbage at the end. */
            int fd = open(wp, O_WRONLY | O_APPEND);
            ASSERT_EQ(write(fd, "\x10\x00\x00", 3), 3);
            close(fd);
        } else {
            /* A flipped byte inside the last record: its CRC fails, it is cut. */
            flip_byte(wp, 5, 1);
        }
        log_set_level(LOG_OFF);
        ASSERT_OK(store_open(&s, dir, &o, &e));
        log_set_level(LOG_INFO);
        int64_t got = cpu_total(s, "anonymous");
        if (mode == 0)
            ASSERT(got > ta); /* both profiles */
        else
            ASSERT_EQ(got, ta); /* only the first */
        store_close(s);
        buf rep;
        buf_init(&rep, 0);
        uint64_t problems = 1;
        ASSERT_OK(store_verify(dir, &rep, &problems, &e));
        ASSERT_EQ(problems, 0);
        buf_release(&rep);
    }
}

TEST(second_open_of_a_directory_is_refused)
{
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    store *s, *s2;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    ASSERT_EQ(store_open(&s2, dir, &o, &e), -EBUSY);
    ASSERT_CONTAINS(e.msg, "in use");
    store_close(s);
}

TEST(retention_drops_old_blocks)
{
    t0 = (now_ns() / HOUR - 24 * 40) * HOUR; /* 40 days ago */
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    gprof a;
    gen(&a);
    a.tenant = 0;
    ingest(s, &a);
    ASSERT_OK(store_flush(s, &e));
    ASSERT(cpu_total(s, "anonymous") > 0);
    ASSERT_OK(store_compact(s, &e));
    ASSERT_EQ(cpu_total(s, "anonymous"), 0);
    store_stats st;
    store_get_stats(s, &st);
    ASSERT_EQ(st.n_blocks, 0);
    ASSERT_EQ(st.blocks_deleted, 1);
    store_close(s);
}

/* ---- threads ---- */

typedef struct thr_arg {
    store *s;
    int id, n;
    int64_t sum;       /* cpu values ingested by this thread */
    int *stop;
    const int *busy;   /* ingest: keep going past n (up to 50 n) while *busy */
    char err[256];     /* query: the first failure's message */
} thr_arg;

static void *ingest_thread(void *p)
{
    thr_arg *a = p;
    for (int i = 0; i < a->n || (a->busy && __atomic_load_n(a->busy, __ATOMIC_ACQUIRE) && i < 50 * a->n); i++) {
        gprof g;
        memset(&g, 0, sizeof(g));
        g.service = a->id % 3;
        g.env = 1;
        g.ts = t0 + (int64_t)(a->id * 1000 + i) * 1000000000LL;
        g.n = 5;
        for (int k = 0; k < g.n; k++) {
            g.s[k].depth = 2;
            g.s[k].frames[0] = (uint8_t)(k % 3);
            g.s[k].frames[1] = (uint8_t)(i % 12);
            g.s[k].v[0] = 1 + k;
            g.s[k].v[1] = 7;
            a->sum += g.s[k].v[0];
        }
        profile pr;
        build(&g, &pr);
        char svc[16];
        snprintf(svc, sizeof(svc), "svc%d", g.service);
        store_label l[2] = {{"service_name", svc}, {"__name__", "process_cpu"}};
        herr e;
        herr_clear(&e);
        if (store_ingest(a->s, "anonymous", l, 2, &pr, g.ts, 0, &e))
            a->sum = -1000000000;
        prof_release(&pr);
    }
    return NULL;
}

static void *query_thread(void *p)
{
    thr_arg *a = p;
    while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
        store_query q;
        memset(&q, 0, sizeof(q));
        q.tenant = "anonymous";
        q.profile_type = CPU_TYPE;
        q.start_ns = INT64_MIN;
        flame_tree t;
        flame_init(&t);
        herr e;
        herr_clear(&e);
        if (store_select_merge_tree(a->s, &q, &t, 0, &e) == 0)
            __atomic_add_fetch(&a->n, 1, __ATOMIC_RELEASE);
        else if (!a->err[0])
            snprintf(a->err, sizeof a->err, "%s", e.msg[0] ? e.msg : "query failed without a message");
        flame_release(&t);
        store_strs l;
        if (store_label_values(a->s, &q, "service_name", &l, &e) == 0)
            store_strs_release(&l);
    }
    return NULL;
}

static void *maint_thread(void *p)
{
    thr_arg *a = p;
    while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
        herr e;
        herr_clear(&e);
        store_flush(a->s, &e);
        store_compact(a->s, &e);
        __atomic_add_fetch(&a->n, 1, __ATOMIC_RELEASE);
        usleep(2000);
    }
    return NULL;
}

TEST(concurrent_ingest_queries_flush_and_compaction)
{
    t0 = (now_ns() / (24 * HOUR) - 1) * 24 * HOUR;
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    o.fsync = STORE_FSYNC_ALWAYS; /* group commit with several writers */
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    /*
     * Writers go on (up to 50x their count) until both readers and the
     * maintenance thread have completed a round while they run, so the
     * overlap does not depend on how the machine schedules threads.
     */
    int stop = 0, busy = 1;
    thr_arg ing[4], qa[2], ma;
    pthread_t ti[4], tq[2], tm;
    for (int i = 0; i < 4; i++) {
        ing[i] = (thr_arg){s, i, 60, 0, &stop, &busy, ""};
        pthread_create(&ti[i], NULL, ingest_thread, &ing[i]);
    }
    for (int i = 0; i < 2; i++) {
        qa[i] = (thr_arg){s, i, 0, 0, &stop, NULL, ""};
        pthread_create(&tq[i], NULL, query_thread, &qa[i]);
    }
    ma = (thr_arg){s, 0, 0, 0, &stop, NULL, ""};
    pthread_create(&tm, NULL, maint_thread, &ma);
    int64_t deadline = now_ns() + 120 * 1000000000LL;
    while (!(__atomic_load_n(&qa[0].n, __ATOMIC_ACQUIRE) && __atomic_load_n(&qa[1].n, __ATOMIC_ACQUIRE) &&
             __atomic_load_n(&ma.n, __ATOMIC_ACQUIRE)) && !qa[0].err[0] && !qa[1].err[0] && now_ns() < deadline)
        usleep(1000);
    __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
    int64_t want = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(ti[i], NULL);
        want += ing[i].sum;
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(tq[i], NULL);
    pthread_join(tm, NULL);
    ASSERT_STR(qa[0].err, "");
    ASSERT_STR(qa[1].err, "");
    ASSERT(qa[0].n > 0 && qa[1].n > 0 && ma.n > 0);
    ASSERT_EQ(cpu_total(s, "anonymous"), want);
    store_close(s);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    ASSERT_EQ(cpu_total(s, "anonymous"), want);
    store_close(s);
}

/* ---- damaged bytes behind a valid checksum: the structural checks must hold ---- */

#include <zlib.h>
#include "store/store_int.h"

static void rewrite_crc(uint8_t *f, size_t n)
{
    uint64_t bl = n - 32;
    memcpy(f + 16, &bl, 8);
    uint32_t c = (uint32_t)crc32(0, f + 32, (uInt)bl);
    memcpy(f + 24, &c, 4);
    c = (uint32_t)crc32(0, f, 28);
    memcpy(f + 28, &c, 4);
}

TEST(mutated_blocks_with_fixed_checksums_never_crash)
{
    t0 = (now_ns() / HOUR - 12) * HOUR;
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    for (int i = 0; i < 30; i++) {
        gprof g;
        gen(&g);
        g.tenant = 0;
        ingest(s, &g);
    }
    ASSERT_OK(store_flush(s, &e));
    store_close(s);
    char bd[2048];
    block_dir(dir, "anonymous", bd, sizeof(bd));
    const char *files[] = {"index", "symbols", "samples"};
    int opened = 0, rejected = 0;
    log_set_level(LOG_OFF);
    for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
        char path[2100];
        snprintf(path, sizeof(path), "%s/%s", bd, files[f]);
        size_t n;
        uint8_t *orig = (uint8_t *)t_read_file(path, &n);
        for (int round = 0; round < 150; round++) {
            uint8_t *m = xmalloc(n);
            memcpy(m, orig, n);
            int flips = 1 + rn(4);
            for (int k = 0; k < flips; k++)
                m[32 + (size_t)rn((int)(n - 32))] ^= (uint8_t)(1 + rn(255));
            rewrite_crc(m, n);
            FILE *fp = fopen(path, "wb");
            ASSERT(fp);
            fwrite(m, 1, n, fp);
            fclose(fp);
            free(m);
            st_block b;
            herr be;
            herr_clear(&be);
            int rc = st_block_open(&b, bd, 1, &be);
            st_block_close(&b);
            if (rc) {
                ASSERT(be.msg[0] != 0);
                rejected++;
                continue;
            }
            opened++;
            /* It passed every check: queries over it must still behave. */
            ASSERT_OK(store_open(&s, dir, &o, &e));
            cpu_total(s, "anonymous");
            store_query q;
            memset(&q, 0, sizeof(q));
            q.tenant = "anonymous";
            q.profile_type = ALLOC_TYPE;
            q.start_ns = INT64_MIN;
            profile p;
            prof_init(&p);
            store_select_merge_profile(s, &q, &p, &e);
            prof_release(&p);
            store_strs l;
            if (store_label_names(s, &q, &l, &e) == 0)
                store_strs_release(&l);
            store_close(s);
        }
        FILE *fp = fopen(path, "wb");
        fwrite(orig, 1, n, fp);
        fclose(fp);
        free(orig);
    }
    log_set_level(LOG_INFO);
    ASSERT(rejected > 0);
    printf("  %d mutated blocks rejected with a message, %d passed the checks and were queried\n", rejected, opened);
}

TEST(mutated_wal_records_never_crash)
{
    profile p;
    gprof g;
    gen(&g);
    build(&g, &p);
    buf rec;
    buf_init(&rec, 0);
    store_label l[] = {{"service_name", "x"}};
    ASSERT_OK(st_rec_encode(&rec, "anonymous", l, 1, &p, 1, 2));
    prof_release(&p);
    int ok = 0;
    for (int round = 0; round < 2000; round++) {
        uint8_t *m = xmalloc(rec.len);
        memcpy(m, rec.data, rec.len);
        size_t n = rec.len;
        if (rn(3) == 0)
            n = (size_t)rn((int)n); /* truncated */
        for (int k = 1 + rn(3); k > 0 && n > 0; k--)
            m[rn((int)n)] ^= (uint8_t)(1 + rn(255));
        st_rec r;
        herr e;
        herr_clear(&e);
        if (st_rec_decode(&r, m, n, &e) == 0)
            ok++;
        prof_release(&r.prof);
        free(m);
    }
    buf_release(&rec);
    printf("  %d of 2000 mutated WAL records still decoded (and validated)\n", ok);
}

TEST(background_thread_flushes_and_compacts)
{
    t0 = (now_ns() / HOUR - 3) * HOUR;
    const char *dir = t_tmpdir();
    store_opts o;
    test_opts(&o);
    o.background = 1;
    o.fsync = STORE_FSYNC_BATCH;
    o.fsync_batch_ns = 50000000;
    o.flush_interval_ns = 300000000;   /* 0.3 s */
    o.compact_interval_ns = 300000000;
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    int64_t want = 0;
    store_stats st;
    for (int round = 0; round < 3; round++) {
        gprof g;
        gen(&g);
        g.tenant = 0;
        g.ts = t0 + round * 60000000000LL; /* same hour: merged by the hourly compaction */
        for (int k = 0; k < g.n; k++)
            want += g.s[k].v[0];
        ingest(s, &g);
        for (int i = 0; i < 40; i++) {
            store_get_stats(s, &st);
            if (st.head_profiles == 0)
                break;
            usleep(50000);
        }
        ASSERT_EQ(st.head_profiles, 0);
    }
    for (int i = 0; i < 40; i++) {
        store_get_stats(s, &st);
        if (st.compactions > 0 && st.n_blocks == 1)
            break;
        usleep(50000);
    }
    ASSERT(st.flushes >= 3);
    ASSERT_EQ(st.n_blocks, 1);
    ASSERT_EQ(cpu_total(s, "anonymous"), want);
    store_close(s);
}

/* ---- batches: one WAL record, all or nothing ---- */

static int64_t gprof_cpu(const gprof *g)
{
    int64_t v = 0;
    for (int i = 0; i < g->n; i++)
        v += g->s[i].v[0];
    return v;
}

/* Ingests gs[0..n) as one store_ingest_batch (tenant "anonymous", service svc<i>). */
static int ingest_batch(store *s, const gprof *gs, size_t n, herr *e)
{
    profile ps[8];
    store_label l[8][3];
    char svc[8][16];
    store_item it[8];
    ASSERT(n <= 8);
    for (size_t i = 0; i < n; i++) {
        build(&gs[i], &ps[i]);
        snprintf(svc[i], sizeof(svc[i]), "svc%zu", i);
        l[i][0] = (store_label){"service_name", svc[i]};
        l[i][1] = (store_label){"env", "prod"};
        l[i][2] = (store_label){"__name__", "process_cpu"};
        it[i] = (store_item){l[i], 3, &ps[i], gs[i].ts, 10000000000LL};
    }
    int rc = store_ingest_batch(s, "anonymous", it, n, e);
    for (size_t i = 0; i < n; i++)
        prof_release(&ps[i]);
    return rc;
}

/* Distinct service_name values stored for "anonymous" (one per batch item). */
static size_t n_services(store *s)
{
    store_query q;
    memset(&q, 0, sizeof(q));
    q.tenant = "anonymous";
    q.start_ns = INT64_MIN;
    store_strs l;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_label_values(s, &q, "service_name", &l, &e));
    size_t n = l.n;
    store_strs_release(&l);
    return n;
}

TEST(batch_is_all_or_nothing_when_the_wal_write_fails)
{
    t0 = (now_ns() / HOUR - 3) * HOUR;
    gprof gs[4];
    int64_t want = 0;
    for (int i = 0; i < 4; i++) {
        gen(&gs[i]);
        gs[i].ts = t0 + i;
        gs[i].n = 24;  /* similar sizes: one record is about a quarter of the batch */
        for (int k = 0; k < 24; k++)
            gs[i].s[k].depth = 6;
        want += gprof_cpu(&gs[i]);
    }
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);

    /* The size of each profile's record alone, from a store without the hook. */
    char d1[512];
    snprintf(d1, sizeof(d1), "%s", t_tmpdir());
    ASSERT_OK(store_open(&s, d1, &o, &e));
    store_stats st;
    uint64_t rec1 = 0, prev = 16;
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(ingest_batch(s, &gs[i], 1, &e));
        ASSERT_OK(store_get_stats(s, &st));
        rec1 = MAX(rec1, st.wal_bytes - prev);
        prev = st.wal_bytes;
    }
    store_close(s);

    /* The disk fills after one and a half (largest) records' worth: any one fits, the batch of 4 must fail whole. */
    char d2[512];
    snprintf(d2, sizeof(d2), "%s", t_tmpdir());
    o.wal_fail_after_bytes = rec1 + rec1 / 2;
    ASSERT_OK(store_open(&s, d2, &o, &e));
    int rc = ingest_batch(s, gs, 4, &e);
    ASSERT_EQ(cpu_total(s, "anonymous"), 0);
    ASSERT_EQ(n_services(s), 0);
    ASSERT_EQ(rc, -ENOSPC);
    ASSERT_CONTAINS(herr_msg(&e, rc), "nothing of this batch was stored");
    ASSERT_OK(store_get_stats(s, &st));
    ASSERT_EQ(st.head_profiles, 0);
    ASSERT_EQ(st.ingested_profiles, 0);
    /* The partial record was cut: the next write that fits lands cleanly. */
    herr_clear(&e);
    ASSERT_OK(ingest_batch(s, &gs[3], 1, &e));
    ASSERT_EQ(cpu_total(s, "anonymous"), gprof_cpu(&gs[3]));
    store_close(s);
    /* After a restart nothing of the failed batch is replayed; the log verifies clean. */
    o.wal_fail_after_bytes = 0;
    ASSERT_OK(store_open(&s, d2, &o, &e));
    ASSERT_EQ(cpu_total(s, "anonymous"), gprof_cpu(&gs[3]));
    ASSERT_EQ(n_services(s), 1);
    /* A batch that fits is stored whole and replayed whole. */
    herr_clear(&e);
    ASSERT_OK(ingest_batch(s, gs, 4, &e));
    ASSERT_EQ(cpu_total(s, "anonymous"), want + gprof_cpu(&gs[3]));
    store_close(s);
    ASSERT_OK(store_open(&s, d2, &o, &e));
    ASSERT_EQ(cpu_total(s, "anonymous"), want + gprof_cpu(&gs[3]));
    ASSERT_EQ(n_services(s), 4);
    store_close(s);
    buf rep;
    buf_init(&rep, 0);
    uint64_t problems = 1;
    ASSERT_OK(store_verify(d2, &rep, &problems, &e));
    ASSERT_EQ(problems, 0);
    buf_release(&rep);
}

TEST(batch_torn_by_a_crash_is_replayed_as_none)
{
    t0 = (now_ns() / HOUR - 3) * HOUR;
    gprof gs[3];
    for (int i = 0; i < 3; i++) {
        gen(&gs[i]);
        gs[i].ts = t0 + i;
    }
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);
    char d[512];
    snprintf(d, sizeof(d), "%s", t_tmpdir());
    ASSERT_OK(store_open(&s, d, &o, &e));
    ASSERT_OK(ingest_batch(s, gs, 1, &e));
    int64_t first = cpu_total(s, "anonymous");
    ASSERT_OK(ingest_batch(s, gs, 3, &e));
    store_close(s);
    /* Cut the last record (the batch) inside its last sub-record, as a crash mid-write would. */
    char wp[2200];
    wal_file(d, wp, sizeof(wp));
    struct stat sb;
    ASSERT_OK(stat(wp, &sb));
    ASSERT_OK(truncate(wp, sb.st_size - 5));
    log_set_level(LOG_OFF);
    ASSERT_OK(store_open(&s, d, &o, &e));
    log_set_level(LOG_INFO);
    ASSERT_EQ(cpu_total(s, "anonymous"), first);
    ASSERT_EQ(n_services(s), 1);
    store_close(s);
}

/* ---- trace_id per sample; blocks and WAL of format version 1 ---- */

typedef struct tsample {
    const char *frame;   /* leaf under "main" */
    int64_t v;
    const char *span, *trace;  /* NULL = none */
} tsample;

static void build_traced(profile *p, const tsample *ts, size_t n)
{
    ASSERT_OK(prof_init(p));
    ASSERT(prof_add_type(p, "cpu", "nanoseconds") >= 0);
    for (size_t i = 0; i < n; i++) {
        uint32_t locs[2] = {(uint32_t)prof_location_for_name(p, "main", 4),
                            (uint32_t)prof_location_for_name(p, ts[i].frame, strlen(ts[i].frame))};
        prof_label l[2];
        uint32_t nl = 0;
        if (ts[i].span)
            l[nl++] = (prof_label){(uint32_t)prof_cstr(p, "span_id"), (uint32_t)prof_cstr(p, ts[i].span), 0, 0};
        if (ts[i].trace)
            l[nl++] = (prof_label){(uint32_t)prof_cstr(p, "trace_id"), (uint32_t)prof_cstr(p, ts[i].trace), 0, 0};
        ASSERT(prof_sample_add(p, (uint32_t)prof_stack_root_first(p, locs, 2), &ts[i].v, l, nl) >= 0);
    }
}

static void ingest_traced(store *s, const tsample *ts, size_t n, int64_t t)
{
    profile p;
    herr e;
    herr_clear(&e);
    build_traced(&p, ts, n);
    store_label l[2] = {{"service_name", "traced"}, {"__name__", "process_cpu"}};
    int rc = store_ingest(s, "anonymous", l, 2, &p, t, 0, &e);
    if (rc)
        t_fail(__FILE__, __LINE__, "ingest: %s", herr_msg(&e, rc));
    prof_release(&p);
}

/* Total of the samples with one of spans and one of traces (NULL = no filter), by flame tree, pprof merge and series. */
static int64_t traced_total(store *s, const char *span, const char *trace, int64_t t)
{
    const char *sp[1] = {span}, *tr[1] = {trace};
    store_query q;
    memset(&q, 0, sizeof(q));
    q.tenant = "anonymous";
    q.profile_type = CPU_TYPE;
    q.start_ns = t - HOUR;
    q.end_ns = t + HOUR;
    q.span_ids = span ? sp : NULL;
    q.n_span_ids = span ? 1 : 0;
    q.trace_ids = trace ? tr : NULL;
    q.n_trace_ids = trace ? 1 : 0;
    herr e;
    herr_clear(&e);
    flame_tree ft;
    flame_init(&ft);
    ASSERT_OK(store_select_merge_tree(s, &q, &ft, 0, &e));
    int64_t v = flame_total(&ft, 0);
    flame_release(&ft);
    profile p;
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(store_select_merge_profile(s, &q, &p, &e));
    int64_t pv = 0;
    for (size_t i = 0; i < p.n_samples; i++)
        pv += prof_values(&p, i)[0];
    prof_release(&p);
    ASSERT_EQ(pv, v);
    store_ts_list tl;
    ASSERT_OK(store_select_series(s, &q, HOUR, NULL, 0, STORE_AGG_SUM, &tl, &e));
    double sv = 0;
    for (size_t i = 0; i < tl.n; i++)
        for (size_t k = 0; k < tl.v[i].n_points; k++)
            sv += tl.v[i].points[k].value;
    store_ts_release(&tl);
    ASSERT_EQ((int64_t)sv, v);
    return v;
}

/* The checks on k copies of profile `a` of the test below. */
static void check_traced(store *s, int64_t t, int64_t k, const char *phase)
{
    int64_t got[6] = {traced_total(s, NULL, NULL, t), traced_total(s, NULL, "tr1", t), traced_total(s, NULL, "tr2", t),
                      traced_total(s, NULL, "nope", t), traced_total(s, "s1", "tr1", t), traced_total(s, "s1", NULL, t)};
    /* all; trace tr1; trace tr2; an unknown trace; span s1 and trace tr1 (each filter must match); span s1 */
    const int64_t want[6] = {310, 30, 40, 0, 10, 90};
    for (int i = 0; i < 6; i++)
        if (got[i] != k * want[i])
            t_fail(__FILE__, __LINE__, "%s: check %d: got %" PRId64 ", want %" PRId64, phase, i, got[i], k * want[i]);
}

static uint32_t file_version(const char *path)
{
    size_t n;
    char *d = t_read_file(path, &n);
    ASSERT(n >= 12);
    uint32_t v;
    memcpy(&v, d + 8, 4);
    free(d);
    return v;
}

TEST(trace_ids_kept_filtered_and_version_1_files_still_read)
{
    int64_t t = (now_ns() / HOUR - 5) * HOUR + HOUR / 2;
    const tsample a[] = {{"f1", 10, "s1", "tr1"}, {"f2", 20, "s2", "tr1"}, {"f3", 40, NULL, "tr2"}, {"f4", 80, "s1", NULL},
                         {"f5", 160, NULL, NULL}};
    const tsample b[] = {{"f1", 1, "s1", "tr1"}, {"f3", 2, NULL, "tr2"}, {"f6", 4, "s3", "tr3"}};
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", t_tmpdir());
    store_opts o;
    test_opts(&o);
    store *s;
    herr e;
    herr_clear(&e);

    /* The current format: traces through head, flush, compaction and restart. */
    ASSERT_OK(store_open(&s, dir, &o, &e));
    ingest_traced(s, a, ARRAY_SIZE(a), t);
    check_traced(s, t, 1, "head");
    ASSERT_OK(store_flush(s, &e));
    check_traced(s, t, 1, "flushed");
    ingest_traced(s, a, ARRAY_SIZE(a), t + 1);
    check_traced(s, t, 2, "block+head");
    ASSERT_OK(store_flush(s, &e));
    ASSERT_OK(store_compact(s, &e));
    store_stats st0;
    ASSERT_OK(store_get_stats(s, &st0));
    ASSERT_EQ(st0.n_blocks, 1);
    ASSERT_EQ(st0.compactions, 1);
    check_traced(s, t, 2, "compacted");
    store_close(s);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    check_traced(s, t, 2, "restarted");
    store_close(s);
    buf rep;
    buf_init(&rep, 0);
    uint64_t problems = 1;
    ASSERT_OK(store_verify(dir, &rep, &problems, &e));
    if (problems)
        t_fail(__FILE__, __LINE__, "verify: %s", rep.data);

    /* Version 1, as the previous release wrote it: blocks without a trace column, WAL segments of type-1 records. */
    snprintf(dir, sizeof(dir), "%s", t_tmpdir());
    st_block_write_version = 1;
    ASSERT_OK(store_open(&s, dir, &o, &e));
    ingest_traced(s, a, ARRAY_SIZE(a), t);
    ASSERT_OK(store_flush(s, &e));
    st_block_write_version = STORE_FORMAT_VERSION;
    ingest_traced(s, b, ARRAY_SIZE(b), t + 1);
    store_close(s);
    char bd[1024], path[1200];
    block_dir(dir, "anonymous", bd, sizeof(bd));
    const char *files[] = {"index", "symbols", "samples"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", bd, files[i]);
        ASSERT_EQ(file_version(path), 1);
    }
    char wp[2200];
    wal_file(dir, wp, sizeof(wp));
    {
        /* the segment holds single records only: with version 1 in its header it is byte for byte an old one */
        int fd = open(wp, O_WRONLY);
        uint32_t one = 1;
        ASSERT_EQ(pwrite(fd, &one, 4, 8), 4);
        close(fd);
        ASSERT_EQ(file_version(wp), 1);
    }
    problems = 1;
    buf_reset(&rep);
    ASSERT_OK(store_verify(dir, &rep, &problems, &e));
    if (problems)
        t_fail(__FILE__, __LINE__, "verify of version 1 files: %s", rep.data);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    ASSERT_EQ(traced_total(s, NULL, NULL, t), 310 + 7);
    ASSERT_EQ(traced_total(s, "s1", NULL, t), 90 + 1);
    /* the version 1 block has no traces (the old release dropped them); the replayed WAL record kept its labels */
    ASSERT_EQ(traced_total(s, NULL, "tr1", t), 1);
    ASSERT_EQ(traced_total(s, NULL, "tr3", t), 4);
    /* compaction of a version 1 and a version 2 block writes version 2 and keeps everything */
    ASSERT_OK(store_flush(s, &e));
    ASSERT_OK(store_compact(s, &e));
    store_stats st;
    ASSERT_OK(store_get_stats(s, &st));
    ASSERT_EQ(st.n_blocks, 1);
    ASSERT_EQ(traced_total(s, NULL, NULL, t), 317);
    ASSERT_EQ(traced_total(s, "s1", NULL, t), 91);
    ASSERT_EQ(traced_total(s, NULL, "tr2", t), 2);
    store_close(s);
    block_dir(dir, "anonymous", bd, sizeof(bd));
    snprintf(path, sizeof(path), "%s/samples", bd);
    ASSERT_EQ(file_version(path), STORE_FORMAT_VERSION);
    problems = 1;
    buf_reset(&rep);
    ASSERT_OK(store_verify(dir, &rep, &problems, &e));
    if (problems)
        t_fail(__FILE__, __LINE__, "verify: %s", rep.data);
    buf_release(&rep);
}

TEST(batch_series_limit_refusal_is_the_same_live_and_after_replay)
{
    int64_t t = (now_ns() / HOUR - 5) * HOUR + HOUR / 2;
    const tsample a[] = {{"f1", 10, NULL, NULL}}, b[] = {{"f2", 20, NULL, NULL}}, c[] = {{"f3", 40, NULL, NULL}};
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", t_tmpdir());
    store_opts o;
    test_opts(&o);
    o.max_series_per_tenant = 1;
    store *s;
    herr e;
    herr_clear(&e);
    ASSERT_OK(store_open(&s, dir, &o, &e));
    profile p[3];
    build_traced(&p[0], a, 1);
    build_traced(&p[1], b, 1);
    build_traced(&p[2], c, 1);
    store_label l0[2] = {{"service_name", "one"}, {"__name__", "process_cpu"}};
    store_label l1[2] = {{"service_name", "two"}, {"__name__", "process_cpu"}};
    /* series "one", then a new series "two" past the limit of 1, then "one" again */
    store_item it[3] = {{l0, 2, &p[0], t, 0}, {l1, 2, &p[1], t, 0}, {l0, 2, &p[2], t + 1, 0}};
    int rc = store_ingest_batch(s, "anonymous", it, 3, &e);
    ASSERT_EQ(rc, HE_TOOBIG);
    ASSERT_CONTAINS(herr_msg(&e, rc), "limit");
    for (int round = 0; round < 2; round++) {
        ASSERT_EQ(traced_total(s, NULL, NULL, t), 50);  /* items 0 and 2, live and after replay */
        ASSERT_EQ(n_services(s), 1);
        store_close(s);
        log_set_level(LOG_OFF);
        ASSERT_OK(store_open(&s, dir, &o, &e));
        log_set_level(LOG_INFO);
    }
    store_close(s);
    for (int i = 0; i < 3; i++)
        prof_release(&p[i]);
}

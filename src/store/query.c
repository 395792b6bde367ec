/*
 * query.c: the read side: selection of series by tenant, profile type,
 * label selector and time range over every source (heads, heads being
 * flushed, blocks), and what the API builds from it: merged profiles and
 * flame trees, time series of totals, label names/values, series lists,
 * profile types and stats.
 *
 * Every query holds the store's read lock for its duration, so the sources
 * it sees cannot be freed under it (flush and compaction swap lists under
 * the write lock).
 *
 * Merge: per source, values are summed into a dense array indexed by the
 * source's stack node id (one add per row, no hashing); then only the
 * nodes with a non-zero sum are turned into stacks of the output profile,
 * mapping just the locations, functions, mappings and strings those stacks
 * use (lazily, through per-source id maps). The span and trace columns of a
 * block are not even decoded when the query does not filter on them.
 *
 * Flame trees: from a block, through the block's skeleton (its stack tree
 * merged by frame name, built once on the first flame query and kept with
 * the block until it is closed): the query's per-stack sums are scattered
 * onto skeleton nodes, summed up in one backward pass (parent < child) and
 * only the touched nodes are copied into the caller's tree. From a head (and
 * from a block whose skeleton cannot be built), each stack is walked with a
 * memo per source node and per location/function.
 *
 * Series lookup in a block: the postings of every `=` matcher with a
 * non-empty value (and of __profile_type__) are intersected, then the full
 * selector is checked on each candidate.
 */
#include "core/common.h"

#include "core/log.h"
#include "core/mem.h"
#include "store/store_int.h"

typedef struct qsrc {
    st_head *h;      /* exactly one of h, b */
    st_block *b;
} qsrc;

static uint32_t src_n_series(const qsrc *q) { return q->h ? (uint32_t)q->h->n_series : q->b->n_series; }

static const char *src_label(const qsrc *q, uint32_t si, const char *name)
{
    return q->h ? st_head_label(q->h, &q->h->series[si], name) : st_block_label(q->b, &q->b->series[si], name);
}

static uint32_t src_n_lab(const qsrc *q, uint32_t si)
{
    return q->h ? q->h->series[si].n_lab : q->b->series[si].n_lab;
}

static void src_lab(const qsrc *q, uint32_t si, uint32_t k, const char **name, const char **value)
{
    if (q->h) {
        const st_hseries *s = &q->h->series[si];
        *name = strtab_get(&q->h->lstr, s->lab[2 * k]);
        *value = strtab_get(&q->h->lstr, s->lab[2 * k + 1]);
    } else {
        const st_bseries *s = &q->b->series[si];
        *name = strtab_get(&q->b->lstr, s->lab[2 * k]);
        *value = strtab_get(&q->b->lstr, s->lab[2 * k + 1]);
    }
}

static void src_prof(const qsrc *q, uint32_t si, uint32_t *n, const int64_t **ts, const int64_t **total)
{
    if (q->h) {
        *n = (uint32_t)q->h->series[si].n_prof;
        *ts = q->h->series[si].ts;
        *total = q->h->series[si].total;
    } else {
        *n = q->b->series[si].n_prof;
        *ts = q->b->series[si].ts;
        *total = q->b->series[si].total;
    }
}

static const char *src_tenant(const qsrc *q) { return q->h ? q->h->tenant : q->b->tenant; }

static int in_range(const store_query *q, int64_t ts)
{
    return ts >= q->start_ns && (q->end_ns == 0 || ts <= q->end_ns);
}

static int src_overlaps(const qsrc *s, const store_query *q)
{
    int64_t lo = s->h ? s->h->min_ts : s->b->min_ts, hi = s->h ? s->h->max_ts : s->b->max_ts;
    return hi >= q->start_ns && (q->end_ns == 0 || lo <= q->end_ns);
}

/* Collects the sources of q's tenant that overlap its range. Caller holds the read lock. */
static qsrc *sources(store *s, const store_query *q, size_t *n)
{
    qsrc *v = xmallocarray(s->n_heads + s->n_flushing + s->n_blocks + 1, sizeof(qsrc));
    size_t k = 0;
    for (size_t i = 0; i < s->n_heads; i++)
        v[k++] = (qsrc){s->heads[i], NULL};
    for (size_t i = 0; i < s->n_flushing; i++)
        v[k++] = (qsrc){s->flushing[i], NULL};
    for (size_t i = 0; i < s->n_blocks; i++)
        v[k++] = (qsrc){NULL, s->blocks[i]};
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (!strcmp(src_tenant(&v[i]), q->tenant) && src_overlaps(&v[i], q))
            v[m++] = v[i];
    *n = m;
    return v;
}

typedef struct lab_arg {
    const qsrc *src;
    uint32_t si;
} lab_arg;

static const char *lab_get(void *arg, const char *name)
{
    lab_arg *a = arg;
    return src_label(a->src, a->si, name);
}

static int series_in_range(const qsrc *src, uint32_t si, const store_query *q)
{
    uint32_t n;
    const int64_t *ts, *tot;
    src_prof(src, si, &n, &ts, &tot);
    for (uint32_t k = 0; k < n; k++)
        if (in_range(q, ts[k]))
            return 1;
    return 0;
}

/* Postings of name=value in block b, or NULL (none). */
static const uint32_t *postings(const st_block *b, const char *name, const char *value, uint32_t *n)
{
    int32_t ni = strtab_find(&b->lstr, name, strlen(name)), vi = strtab_find(&b->lstr, value, strlen(value));
    *n = 0;
    if (ni < 0 || vi < 0)
        return NULL;
    uint32_t lo = 0, hi = b->n_post;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t a = b->post_pair[2 * mid], c = b->post_pair[2 * mid + 1];
        if (a < (uint32_t)ni || (a == (uint32_t)ni && c < (uint32_t)vi))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < b->n_post && b->post_pair[2 * lo] == (uint32_t)ni && b->post_pair[2 * lo + 1] == (uint32_t)vi) {
        *n = b->post_off[lo + 1] - b->post_off[lo];
        return b->post_ids + b->post_off[lo];
    }
    return NULL;
}

/*
 * The series of src matched by q (profile type + selector), ascending.
 * Returns the count; *out malloc'ed.
 */
static uint32_t match_series(const qsrc *src, const store_query *q, uint32_t **out)
{
    uint32_t ns = src_n_series(src);
    uint32_t *cand = NULL, nc = 0;
    if (src->b) {
        /* Intersect the postings of the equality matchers. */
        int have = 0;
        const char *names[SELECTOR_MAX_MATCHERS + 1], *values[SELECTOR_MAX_MATCHERS + 1];
        size_t ne = 0;
        if (q->profile_type) {
            names[ne] = "__profile_type__";
            values[ne++] = q->profile_type;
        }
        for (size_t i = 0; q->sel && i < q->sel->n; i++)
            if (q->sel->m[i].op == SEL_EQ && q->sel->m[i].value[0]) {
                names[ne] = q->sel->m[i].name;
                values[ne++] = q->sel->m[i].value;
            }
        for (size_t i = 0; i < ne; i++) {
            uint32_t np;
            const uint32_t *p = postings(src->b, names[i], values[i], &np);
            if (!have) {
                cand = xmallocarray(np + 1, sizeof(uint32_t));
                if (np)
                    memcpy(cand, p, np * sizeof(uint32_t));
                nc = np;
                have = 1;
            } else {
                uint32_t a = 0, b = 0, k = 0;
                while (a < nc && b < np) {
                    if (cand[a] < p[b])
                        a++;
                    else if (cand[a] > p[b])
                        b++;
                    else {
                        cand[k++] = cand[a];
                        a++;
                        b++;
                    }
                }
                nc = k;
            }
            if (nc == 0)
                break;
        }
        if (!have) {
            cand = xmallocarray(ns + 1, sizeof(uint32_t));
            for (uint32_t i = 0; i < ns; i++)
                cand[i] = i;
            nc = ns;
        }
    } else {
        cand = xmallocarray(ns + 1, sizeof(uint32_t));
        for (uint32_t i = 0; i < ns; i++)
            cand[i] = i;
        nc = ns;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < nc; i++) {
        lab_arg a = {src, cand[i]};
        if (q->profile_type) {
            const char *pt = src_label(src, cand[i], "__profile_type__");
            if (!pt || strcmp(pt, q->profile_type))
                continue;
        }
        if (!selector_match(q->sel, lab_get, &a))
            continue;
        cand[k++] = cand[i];
    }
    *out = cand;
    return k;
}

/* ---- row scan ---- */

/*
 * The per-sample filter of a query as string ids of one source: its span ids
 * and its trace ids. A row passes when it matches each active filter.
 */
typedef struct id_filter {
    uint32_t *ids;
    size_t n;
    int active;
} id_filter;

typedef struct span_set {
    id_filter span, trace;
    int active;  /* either filter is */
} span_set;

static void id_filter_init(id_filter *f, const qsrc *src, const char *const *want, size_t n_want)
{
    f->ids = NULL;
    f->n = 0;
    f->active = n_want > 0;
    if (!f->active)
        return;
    f->ids = xmallocarray(n_want + 1, sizeof(uint32_t));
    if (src->h) {
        for (size_t i = 0; i < n_want; i++) {
            int32_t id = strtab_find(&src->h->sym.strings, want[i], strlen(want[i]));
            if (id > 0)
                f->ids[f->n++] = (uint32_t)id;
        }
    } else {
        const st_block *b = src->b;
        for (uint64_t id = 1; id < b->sec_n[SYM_STROFF]; id++) {
            const char *s = st_block_str(b, (uint32_t)id);
            for (size_t i = 0; i < n_want; i++)
                if (!strcmp(s, want[i]) && f->n < n_want) {
                    f->ids[f->n++] = (uint32_t)id;
                    break;
                }
        }
    }
}

static void span_set_init(span_set *ss, const qsrc *src, const store_query *q)
{
    id_filter_init(&ss->span, src, q->span_ids, q->n_span_ids);
    id_filter_init(&ss->trace, src, q->trace_ids, q->n_trace_ids);
    ss->active = ss->span.active || ss->trace.active;
}

static void span_set_release(span_set *ss)
{
    free(ss->span.ids);
    free(ss->trace.ids);
}

static int id_ok(const id_filter *f, uint32_t id)
{
    if (!f->active)
        return 1;
    if (id == 0)
        return 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->ids[i] == id)
            return 1;
    return 0;
}

static int row_ok(const span_set *ss, uint32_t span, uint32_t trace)
{
    return id_ok(&ss->span, span) && id_ok(&ss->trace, trace);
}

/*
 * Calls fn for every profile of series si of src in q's range with its rows
 * (span filtered). fn gets (arg, ts, stacks, values, n). Stack ids are
 * checked against the source's node count.
 */
typedef int (*rows_fn)(void *arg, int64_t ts, const uint32_t *stacks, const int64_t *values, size_t n);

typedef struct scratch {
    uint32_t *st;
    int64_t *val;
    size_t cap;
    buf raw;
} scratch;

static void scratch_need(scratch *sc, size_t n)
{
    if (n > sc->cap) {
        sc->cap = n;
        sc->st = xreallocarray(sc->st, n, sizeof(uint32_t));
        sc->val = xreallocarray(sc->val, n, sizeof(int64_t));
    }
}

/* Rows of a whole chunk summed by stack: (arg, min_ts, max_ts, n_profiles, stacks, values, n). */
typedef int (*agg_fn_t)(void *arg, int64_t min_ts, int64_t max_ts, uint32_t n_prof, const uint32_t *stacks,
                        const int64_t *values, size_t n);

/*
 * Varints of the row loops, inlined for every length (the stack deltas and
 * values are mostly 2-5 bytes, which st_getv leaves to an out-of-line
 * loop); st_getv near the end of a column, so bounds stay checked.
 */
static inline int q_getv(st_rd *r, uint64_t *v)
{
    const uint8_t *p = r->p;
    if (LIKELY(r->end - p >= 10)) {
        uint64_t x = 0;
        for (int shift = 0; shift < 70; shift += 7) {
            uint8_t c = *p++;
            x |= (uint64_t)(c & 0x7f) << shift;
            if (!(c & 0x80)) {
                r->p = p;
                *v = x;
                return 0;
            }
        }
        return HE_FORMAT;
    }
    return st_getv(r, v);
}

static inline int q_getz(st_rd *r, int64_t *v)
{
    uint64_t u;
    int rc = q_getv(r, &u);
    if (rc == 0)
        *v = st_unzz(u);
    return rc;
}

static int scan_rows(const qsrc *src, uint32_t si, const store_query *q, const span_set *ss, scratch *sc,
                     rows_fn fn, agg_fn_t agg_fn, void *arg, herr *e)
{
    int rc = 0;
    if (src->h) {
        const st_head *h = src->h;
        const st_hseries *s = &h->series[si];
        for (size_t k = 0; k < s->n_prof && !rc; k++) {
            if (!in_range(q, s->ts[k]))
                continue;
            const uint32_t *st = h->r_stack + s->row0[k];
            const int64_t *v = h->r_value + s->row0[k];
            size_t n = s->n_rows[k];
            if (!ss->active) {
                rc = fn(arg, s->ts[k], st, v, n);
                continue;
            }
            scratch_need(sc, n);
            size_t m = 0;
            for (size_t j = 0; j < n; j++)
                if (row_ok(ss, h->r_span[s->row0[k] + j], h->r_trace[s->row0[k] + j])) {
                    sc->st[m] = st[j];
                    sc->val[m++] = v[j];
                }
            rc = fn(arg, s->ts[k], sc->st, sc->val, m);
        }
        return rc;
    }
    const st_block *b = src->b;
    const st_bseries *s = &b->series[si];
    uint64_t n_nodes = b->sec_n[SYM_NODES];
    for (uint32_t ci = 0; ci < s->n_chunks && !rc; ci++) {
        const st_bchunk *c = &b->chunks[s->first_chunk + ci];
        if (c->max_ts < q->start_ns || (q->end_ns && c->min_ts > q->end_ns))
            continue;
        /* Which profiles of the chunk are in range: end = 1 + the last one in, out_end = 1 + the last one out. */
        uint32_t end = 0, out_end = 0, n_in = 0;
        int64_t in_min = INT64_MAX, in_max = INT64_MIN;
        for (uint32_t k = 0; k < c->n_prof; k++) {
            int64_t ts = s->ts[c->first_prof + k];
            if (in_range(q, ts)) {
                end = k + 1;
                n_in++;
                in_min = MIN(in_min, ts);
                in_max = MAX(in_max, ts);
            } else {
                out_end = k + 1;
            }
        }
        if (end == 0)
            continue;  /* none: the chunk is not even decompressed */
        /*
         * Without a span filter, the chunk's rollup (its rows pre-summed by
         * stack) stands for its rows: alone when every profile is in range
         * (the rows are not even decompressed), minus the rows of the
         * profiles out of range when those end sooner than the ones in range
         * (a range start inside the chunk: fewer rows to decode). Sums wrap
         * like the rollup's, so the difference is exact.
         */
        int use_rollup = agg_fn && !ss->active && (out_end == 0 || out_end + 4 < end);
        if (use_rollup) {
            st_agg_rd ar;
            if ((rc = st_block_chunk_agg(b, c, &sc->raw, e)) || (rc = st_agg_rd_init(&ar, (uint8_t *)sc->raw.data, sc->raw.len, e)))
                return rc;
            scratch_need(sc, ar.n);
            uint64_t stack = 0, d;
            for (uint32_t j = 0; j < ar.n; j++) {
                int64_t v;
                if (q_getv(&ar.stacks, &d) || q_getz(&ar.values, &v))
                    return herr_set(e, HE_FORMAT, "block \"%s\": rollup columns end early", b->id);
                stack += d;
                if (stack >= n_nodes)
                    return herr_set(e, HE_BADREF, "block \"%s\": rollup refers to stack %" PRIu64 " of %" PRIu64, b->id, stack, n_nodes);
                sc->st[j] = (uint32_t)stack;
                sc->val[j] = v;
            }
            if ((rc = agg_fn(arg, in_min, in_max, n_in, sc->st, sc->val, ar.n)) || out_end == 0)
                continue;
            end = out_end;  /* now decode the profiles out of range, to subtract them */
        }
        st_chunk_rd cr;
        if ((rc = st_block_chunk(b, c, &sc->raw, e)) || (rc = st_chunk_rd_init(&cr, b, (uint8_t *)sc->raw.data, sc->raw.len, e)))
            return rc;
        for (uint32_t k = 0; k < end && !rc; k++) {
            uint32_t pi = c->first_prof + k;
            uint64_t nr, d, sp = 0, tr = 0;
            if (st_getv(&cr.nrows, &nr) || nr != s->n_rows[pi])
                return herr_set(e, HE_FORMAT, "block \"%s\": row count disagrees with the index", b->id);
            int want = in_range(q, s->ts[pi]);
            if (use_rollup && want) {
                /* In the rollup already: skip its rows. */
                for (uint64_t j = 0; j < nr; j++)
                    if (q_getv(&cr.stacks, &d) || q_getv(&cr.values, &d))
                        return herr_set(e, HE_FORMAT, "block \"%s\": sample columns end early", b->id);
                continue;
            }
            scratch_need(sc, nr);
            uint64_t stack = 0;
            size_t m = 0;
            for (uint64_t j = 0; j < nr; j++) {
                int64_t v;
                if (q_getv(&cr.stacks, &d) || q_getz(&cr.values, &v))
                    return herr_set(e, HE_FORMAT, "block \"%s\": sample columns end early", b->id);
                stack += d;
                if (ss->active) {
                    /* each column is its own stream: read only the ones filtered on */
                    if (ss->span.active && st_getv(&cr.spans, &sp))
                        return herr_set(e, HE_FORMAT, "block \"%s\": span column ends early", b->id);
                    if (ss->trace.active && st_chunk_trace(&cr, &tr))
                        return herr_set(e, HE_FORMAT, "block \"%s\": trace column ends early", b->id);
                    if (!row_ok(ss, (uint32_t)sp, (uint32_t)tr))
                        continue;
                }
                if (stack >= n_nodes)
                    return herr_set(e, HE_BADREF, "block \"%s\": sample refers to stack %" PRIu64 " of %" PRIu64, b->id, stack, n_nodes);
                sc->st[m] = (uint32_t)stack;
                sc->val[m++] = v;
            }
            if (use_rollup) {
                for (size_t j = 0; j < m; j++)
                    sc->val[j] = (int64_t)(0 - (uint64_t)sc->val[j]);
                rc = agg_fn(arg, INT64_MAX, INT64_MIN, 0, sc->st, sc->val, m);
            } else if (want) {
                rc = fn(arg, s->ts[pi], sc->st, sc->val, m);
            }
        }
    }
    return rc;
}

/* ---- copying stacks of a source into an output profile ---- */

typedef struct copier {
    const qsrc *src;
    profile *out;
    uint32_t *str, *map, *fn, *loc, *node;
    prof_line lines[512];
} copier;

static uint32_t *unmapped(size_t n)
{
    uint32_t *a = xmallocarray(n + 1, sizeof(uint32_t));
    memset(a, 0xff, (n + 1) * sizeof(uint32_t));
    a[0] = 0;
    return a;
}

static void copier_init(copier *c, const qsrc *src, profile *out)
{
    c->src = src;
    c->out = out;
    if (src->h) {
        const profile *p = &src->h->sym;
        c->str = unmapped(p->strings.count);
        c->map = unmapped(p->n_mappings);
        c->fn = unmapped(p->n_functions);
        c->loc = unmapped(p->n_locations);
        c->node = unmapped(p->n_nodes);
    } else {
        const st_block *b = src->b;
        c->str = unmapped(b->sec_n[SYM_STROFF]);
        c->map = unmapped(b->sec_n[SYM_MAPPINGS]);
        c->fn = unmapped(b->sec_n[SYM_FUNCTIONS]);
        c->loc = unmapped(b->sec_n[SYM_LOCATIONS]);
        c->node = unmapped(b->sec_n[SYM_NODES]);
    }
}

static void copier_release(copier *c)
{
    free(c->str);
    free(c->map);
    free(c->fn);
    free(c->loc);
    free(c->node);
}

static int cp_str(copier *c, uint32_t id, uint32_t *out)
{
    if (c->str[id] == UINT32_MAX) {
        const char *s;
        size_t n;
        if (c->src->h) {
            s = prof_s(&c->src->h->sym, id);
            n = strtab_len(&c->src->h->sym.strings, id);
        } else {
            s = st_block_str(c->src->b, id);
            n = strlen(s);
        }
        int32_t r = prof_str(c->out, s, n);
        if (r < 0)
            return r;
        c->str[id] = (uint32_t)r;
    }
    *out = c->str[id];
    return 0;
}

static int cp_mapping(copier *c, uint32_t id, uint32_t *out)
{
    if (c->map[id] == UINT32_MAX) {
        prof_mapping m;
        memset(&m, 0, sizeof(m));
        uint32_t fn, bid;
        if (c->src->h) {
            m = c->src->h->sym.mappings[id];
            fn = m.filename;
            bid = m.build_id;
        } else {
            const st_block *b = c->src->b;
            const uint8_t *r = b->sym + b->sec_off[SYM_MAPPINGS] + (size_t)id * SYM_MAPPING_SIZE;
            m.memory_start = st_get64(r);
            m.memory_limit = st_get64(r + 8);
            m.file_offset = st_get64(r + 16);
            fn = st_get32(r + 24);
            bid = st_get32(r + 28);
            uint32_t f = st_get32(r + 32);
            m.has_functions = f & 1;
            m.has_filenames = (f >> 1) & 1;
            m.has_line_numbers = (f >> 2) & 1;
            m.has_inline_frames = (f >> 3) & 1;
        }
        int rc;
        if ((rc = cp_str(c, fn, &m.filename)) || (rc = cp_str(c, bid, &m.build_id)))
            return rc;
        int32_t r = prof_mapping_intern(c->out, &m);
        if (r < 0)
            return r;
        c->map[id] = (uint32_t)r;
    }
    *out = c->map[id];
    return 0;
}

static int cp_function(copier *c, uint32_t id, uint32_t *out)
{
    if (c->fn[id] == UINT32_MAX) {
        prof_function f;
        uint32_t a, b2, d;
        if (c->src->h) {
            f = c->src->h->sym.functions[id];
            a = f.name;
            b2 = f.system_name;
            d = f.filename;
        } else {
            const st_block *b = c->src->b;
            const uint8_t *r = b->sym + b->sec_off[SYM_FUNCTIONS] + (size_t)id * SYM_FUNCTION_SIZE;
            a = st_get32(r);
            b2 = st_get32(r + 4);
            d = st_get32(r + 8);
            f.start_line = (int64_t)st_get64(r + 16);
        }
        int rc;
        if ((rc = cp_str(c, a, &f.name)) || (rc = cp_str(c, b2, &f.system_name)) || (rc = cp_str(c, d, &f.filename)))
            return rc;
        int32_t r = prof_function_intern(c->out, &f);
        if (r < 0)
            return r;
        c->fn[id] = (uint32_t)r;
    }
    *out = c->fn[id];
    return 0;
}

static int cp_location(copier *c, uint32_t id, uint32_t *out)
{
    if (c->loc[id] == UINT32_MAX) {
        uint64_t addr;
        uint32_t mp, nl, folded;
        int rc;
        if (c->src->h) {
            const profile *p = &c->src->h->sym;
            const prof_location *l = &p->locations[id];
            addr = l->address;
            mp = l->mapping;
            folded = l->is_folded;
            nl = MIN(l->n_lines, (uint32_t)ARRAY_SIZE(c->lines));
            for (uint32_t k = 0; k < nl; k++) {
                c->lines[k] = p->lines[l->first_line + k];
                if ((rc = cp_function(c, c->lines[k].function, &c->lines[k].function)))
                    return rc;
            }
        } else {
            const st_block *b = c->src->b;
            const uint8_t *r = b->sym + b->sec_off[SYM_LOCATIONS] + (size_t)id * SYM_LOCATION_SIZE;
            addr = st_get64(r);
            mp = st_get32(r + 8);
            uint32_t fl = st_get32(r + 12);
            nl = MIN(st_get32(r + 16), (uint32_t)ARRAY_SIZE(c->lines));
            folded = st_get32(r + 20);
            for (uint32_t k = 0; k < nl; k++) {
                const uint8_t *lr = b->sym + b->sec_off[SYM_LINES] + (size_t)(fl + k) * SYM_LINE_SIZE;
                c->lines[k].line = (int64_t)st_get64(lr + 8);
                c->lines[k].column = 0;
                if ((rc = cp_function(c, st_get32(lr), &c->lines[k].function)))
                    return rc;
            }
        }
        if ((rc = cp_mapping(c, mp, &mp)))
            return rc;
        int32_t r = prof_location_intern(c->out, addr, mp, c->lines, nl);
        if (r < 0)
            return r;
        c->out->locations[r].is_folded = (uint8_t)(folded != 0);
        c->loc[id] = (uint32_t)r;
    }
    *out = c->loc[id];
    return 0;
}

static void src_node(const qsrc *src, uint32_t i, uint32_t *parent, uint32_t *loc)
{
    if (src->h) {
        *parent = src->h->sym.nodes[i].parent;
        *loc = src->h->sym.nodes[i].location;
    } else {
        const uint8_t *r = src->b->sym + src->b->sec_off[SYM_NODES] + (size_t)i * SYM_NODE_SIZE;
        *parent = st_get32(r);
        *loc = st_get32(r + 4);
    }
}

static int cp_node(copier *c, uint32_t id, uint32_t *out)
{
    if (c->node[id] != UINT32_MAX) {
        *out = c->node[id];
        return 0;
    }
    uint32_t chain[2048];
    size_t n = 0;
    uint32_t k = id;
    while (c->node[k] == UINT32_MAX) {
        if (n == ARRAY_SIZE(chain))
            return HE_TOOBIG;
        chain[n++] = k;
        uint32_t parent, loc;
        src_node(c->src, k, &parent, &loc);
        k = parent;
    }
    uint32_t parent = c->node[k];
    while (n > 0) {
        uint32_t x = chain[--n], p2, loc;
        src_node(c->src, x, &p2, &loc);
        int rc = cp_location(c, loc, &loc);
        if (rc)
            return rc;
        int32_t r = prof_node_get(c->out, parent, loc);
        if (r < 0)
            return r;
        c->node[x] = parent = (uint32_t)r;
    }
    *out = parent;
    return 0;
}

/* ---- merge ---- */

typedef struct merge_ctx {
    int64_t *agg;
    uint32_t n_nodes;
    int64_t min_ts, max_ts;
    size_t n_profiles;
} merge_ctx;

static int merge_rows(void *arg, int64_t ts, const uint32_t *st, const int64_t *v, size_t n)
{
    merge_ctx *m = arg;
    for (size_t i = 0; i < n; i++)
        m->agg[st[i]] = prof_sat_add(m->agg[st[i]], v[i]);
    if (ts < m->min_ts)
        m->min_ts = ts;
    if (ts > m->max_ts)
        m->max_ts = ts;
    m->n_profiles++;
    return 0;
}

static int merge_agg(void *arg, int64_t min_ts, int64_t max_ts, uint32_t n_prof, const uint32_t *st, const int64_t *v, size_t n)
{
    merge_ctx *m = arg;
    for (size_t i = 0; i < n; i++)
        m->agg[st[i]] = prof_sat_add(m->agg[st[i]], v[i]);
    if (min_ts < m->min_ts)
        m->min_ts = min_ts;
    if (max_ts > m->max_ts)
        m->max_ts = max_ts;
    m->n_profiles += n_prof;
    return 0;
}

static int parse_ptype(const char *pt, char parts[5][256])
{
    const char *p = pt;
    for (int i = 0; i < 5; i++) {
        const char *c = i < 4 ? strchr(p, ':') : p + strlen(p);
        if (!c || (size_t)(c - p) >= 256)
            return HE_USAGE;
        memcpy(parts[i], p, (size_t)(c - p));
        parts[i][c - p] = 0;
        p = c + 1;
    }
    return 0;
}

typedef int (*emit_fn)(void *arg, const qsrc *src, const int64_t *agg, uint32_t n_nodes, herr *e);

/*
 * Sums the selected rows of every source into a per-source array indexed
 * by stack node, then hands it to emit. A block that fails while being read
 * is logged and skipped, never fatal.
 */
static int select_agg(store *s, const store_query *q, emit_fn emit, void *arg, merge_ctx *m, herr *e)
{
    scratch sc;
    memset(&sc, 0, sizeof(sc));
    buf_init(&sc.raw, 0);
    m->min_ts = INT64_MAX;
    m->max_ts = INT64_MIN;
    m->n_profiles = 0;
    pthread_rwlock_rdlock(&s->lock);
    size_t ns;
    qsrc *src = sources(s, q, &ns);
    int rc = 0;
    for (size_t i = 0; i < ns && !rc; i++) {
        uint32_t *ser;
        uint32_t nser = match_series(&src[i], q, &ser);
        if (nser == 0) {
            free(ser);
            continue;
        }
        m->n_nodes = src[i].h ? src[i].h->sym.n_nodes : (uint32_t)src[i].b->sec_n[SYM_NODES];
        m->agg = xcalloc(m->n_nodes + 1, sizeof(int64_t));
        span_set ss;
        span_set_init(&ss, &src[i], q);
        for (uint32_t k = 0; k < nser && !rc; k++)
            rc = scan_rows(&src[i], ser[k], q, &ss, &sc, merge_rows, merge_agg, m, e);
        free(ser);
        span_set_release(&ss);
        if (!rc)
            rc = emit(arg, &src[i], m->agg, m->n_nodes, e);
        free(m->agg);
        m->agg = NULL;
        if (rc && src[i].b && rc != -ENOMEM) {
            log_error("query skipped block \"%s\": %s", src[i].b->dir, herr_msg(e, rc));
            herr_clear(e);
            rc = 0;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    free(src);
    free(sc.st);
    free(sc.val);
    buf_release(&sc.raw);
    return rc;
}

static int emit_profile(void *arg, const qsrc *src, const int64_t *agg, uint32_t n_nodes, herr *e)
{
    profile *out = arg;
    copier c;
    copier_init(&c, src, out);
    int rc = 0;
    for (uint32_t nd = 1; nd < n_nodes && !rc; nd++) {
        if (!agg[nd])
            continue;
        uint32_t on;
        if ((rc = cp_node(&c, nd, &on)))
            break;
        int64_t r = prof_sample_add(out, on, &agg[nd], NULL, 0);
        if (r < 0)
            rc = (int)r;
    }
    copier_release(&c);
    return rc;
}

static int check_merge_query(const store_query *q, char parts[5][256], herr *e)
{
    if (!q->profile_type || parse_ptype(q->profile_type, parts))
        return herr_set(e, HE_USAGE, "a profile type like \"process_cpu:cpu:nanoseconds:cpu:nanoseconds\" is required, got \"%s\"",
                        q->profile_type ? q->profile_type : "");
    if (!q->tenant)
        return herr_set(e, HE_USAGE, "no tenant given");
    return 0;
}

static int merge_into(store *s, const store_query *q, profile *out, herr *e)
{
    char parts[5][256];
    int rc = check_merge_query(q, parts, e);
    if (rc)
        return rc;
    if (out->n_types == 0 && (rc = prof_add_type(out, parts[1], parts[2])) < 0)
        return rc;
    int32_t pt = prof_cstr(out, parts[3]), pu = prof_cstr(out, parts[4]);
    if (pt < 0 || pu < 0)
        return -ENOMEM;
    out->period_type.type = (uint32_t)pt;
    out->period_type.unit = (uint32_t)pu;
    merge_ctx m;
    memset(&m, 0, sizeof(m));
    if ((rc = select_agg(s, q, emit_profile, out, &m, e)))
        return rc;
    if (m.n_profiles) {
        out->time_nanos = m.min_ts;
        out->duration_nanos = m.max_ts - m.min_ts;
    }
    return prof_compact_samples(out);
}

int store_select_merge_profile(store *s, const store_query *q, profile *out, herr *e)
{
    return merge_into(s, q, out, e);
}

/*
 * The flame tree straight from a source's stack tree: each source node is
 * resolved to a flame node once (memo), each location's frame names are
 * built and interned once (memo), so the cost follows the distinct nodes
 * and locations, not the samples. Names follow prof_frame_name().
 */
typedef struct tree_ctx {
    flame_tree *t;
    int side;
} tree_ctx;

typedef struct loc_names {
    int32_t *first;   /* per location: index into ids, -1 = not yet */
    uint32_t *count;
    uint32_t *ids;    /* name id, file id, line (low 32 bits) triples, outermost frame first */
    size_t n_ids, cap_ids;
    /* Blocks only, per function: tree name id and file id (UINT32_MAX = not
     * yet, FN_NONAME = no name, the frame is named by its address): most
     * locations of a function share its name, so each name is built and
     * interned once per function, not once per location. */
    uint32_t *fn_name, *fn_file;
    uint32_t n_fn;
} loc_names;

#define FN_NONAME (UINT32_MAX - 1)

/* A block frame (location loc, line k) whose function has a name: its ids from the function memo. */
static int frame_by_function(flame_tree *t, const st_block *b, loc_names *ln, uint32_t loc, uint32_t k, uint32_t *ids)
{
    const uint8_t *r = b->sym + b->sec_off[SYM_LOCATIONS] + (size_t)loc * SYM_LOCATION_SIZE;
    uint32_t fl = st_get32(r + 12), nl = st_get32(r + 16);
    if (k >= nl)
        return 0;
    const uint8_t *lr = b->sym + b->sec_off[SYM_LINES] + (size_t)(fl + k) * SYM_LINE_SIZE;
    uint32_t fn = st_get32(lr);
    if (!fn || fn >= ln->n_fn)
        return 0;
    if (ln->fn_name[fn] == UINT32_MAX) {
        const uint8_t *fr = b->sym + b->sec_off[SYM_FUNCTIONS] + (size_t)fn * SYM_FUNCTION_SIZE;
        const char *name = st_block_str(b, st_get32(fr));
        if (!*name)
            name = st_block_str(b, st_get32(fr + 4));
        const char *file = st_block_str(b, st_get32(fr + 8));
        if (!*name) {
            ln->fn_name[fn] = FN_NONAME;
        } else {
            /* Names longer than frame_name_block's buffer are cut the same way. */
            size_t len = strnlen(name, 1023);
            int32_t nid = strtab_intern(&t->names, name, len);
            int32_t fid = *file ? strtab_intern_cstr(&t->files, file) : 0;
            if (nid < 0 || fid < 0)
                return -ENOMEM;
            ln->fn_name[fn] = (uint32_t)nid;
            ln->fn_file[fn] = (uint32_t)fid;
        }
    }
    if (ln->fn_name[fn] == FN_NONAME)
        return 0;
    ids[0] = ln->fn_name[fn];
    ids[1] = ln->fn_file[fn];
    ids[2] = (uint32_t)st_get64(lr + 8);
    return 1;
}

static void frame_name_block(const st_block *b, uint32_t loc, uint32_t k, char *out, size_t n, const char **file, int64_t *line)
{
    const uint8_t *r = b->sym + b->sec_off[SYM_LOCATIONS] + (size_t)loc * SYM_LOCATION_SIZE;
    uint64_t addr = st_get64(r);
    uint32_t mp = st_get32(r + 8), fl = st_get32(r + 12), nl = st_get32(r + 16);
    *file = "";
    *line = 0;
    if (k < nl) {
        const uint8_t *lr = b->sym + b->sec_off[SYM_LINES] + (size_t)(fl + k) * SYM_LINE_SIZE;
        uint32_t fn = st_get32(lr);
        *line = (int64_t)st_get64(lr + 8);
        if (fn) {
            const uint8_t *fr = b->sym + b->sec_off[SYM_FUNCTIONS] + (size_t)fn * SYM_FUNCTION_SIZE;
            const char *name = st_block_str(b, st_get32(fr));
            if (!*name)
                name = st_block_str(b, st_get32(fr + 4));
            *file = st_block_str(b, st_get32(fr + 8));
            if (*name) {
                snprintf(out, n, "%s", name);
                return;
            }
        }
    }
    if (mp) {
        const uint8_t *mr = b->sym + b->sec_off[SYM_MAPPINGS] + (size_t)mp * SYM_MAPPING_SIZE;
        const char *f = st_block_str(b, st_get32(mr + 24)), *base = strrchr(f, '/');
        base = base ? base + 1 : f;
        if (*base) {
            uint64_t start = st_get64(mr), off = addr >= start ? addr - start + st_get64(mr + 16) : addr;
            snprintf(out, n, "%s+0x%" PRIx64, base, off);
            return;
        }
    }
    snprintf(out, n, "0x%" PRIx64, addr);
}

static int loc_frames(flame_tree *t, const qsrc *src, loc_names *ln, uint32_t loc)
{
    if (ln->first[loc] >= 0)
        return 0;
    uint32_t nl;
    if (src->h)
        nl = src->h->sym.locations[loc].n_lines;
    else
        nl = st_get32(src->b->sym + src->b->sec_off[SYM_LOCATIONS] + (size_t)loc * SYM_LOCATION_SIZE + 16);
    uint32_t frames = nl ? nl : 1;
    if (ln->n_ids + 3 * (size_t)frames > ln->cap_ids) {
        size_t c = ln->cap_ids;
        if (HGROW(ln->ids, c, ln->n_ids + 3 * (size_t)frames))
            return -ENOMEM;
        ln->cap_ids = c;
    }
    ln->first[loc] = (int32_t)ln->n_ids;
    ln->count[loc] = frames;
    char name[1024];
    for (uint32_t k = frames; k-- > 0;) {
        if (!src->h) {
            int r = frame_by_function(t, src->b, ln, loc, k, ln->ids + ln->n_ids);
            if (r < 0)
                return r;
            if (r) {
                ln->n_ids += 3;
                continue;
            }
        }
        const char *file = "";
        int64_t line = 0;
        if (src->h) {
            const profile *p = &src->h->sym;
            prof_frame_name(p, loc, k, name, sizeof(name));
            const prof_location *l = &p->locations[loc];
            if (k < l->n_lines) {
                const prof_line *pl = &p->lines[l->first_line + k];
                line = pl->line;
                if (pl->function)
                    file = prof_s(p, p->functions[pl->function].filename);
            }
        } else {
            frame_name_block(src->b, loc, k, name, sizeof(name), &file, &line);
        }
        int32_t nid = strtab_intern_cstr(&t->names, name);
        int32_t fid = *file ? strtab_intern_cstr(&t->files, file) : 0;
        if (nid < 0 || fid < 0)
            return -ENOMEM;
        ln->ids[ln->n_ids++] = (uint32_t)nid;
        ln->ids[ln->n_ids++] = (uint32_t)fid;
        ln->ids[ln->n_ids++] = (uint32_t)line;
    }
    return 0;
}

/*
 * The uncached path: walks each selected stack (memo per source node) into
 * t. With of_node, also records each source node's flame node there (the
 * skeleton build, where every node is selected).
 */
static int emit_tree_map(tree_ctx *tc, const qsrc *src, const int64_t *agg, uint32_t n_nodes, uint32_t *of_node, herr *e)
{
    flame_tree *t = tc->t;
    uint32_t n_locs = src->h ? src->h->sym.n_locations : (uint32_t)src->b->sec_n[SYM_LOCATIONS];
    int32_t *fnode = xmallocarray(n_nodes + 1, sizeof(int32_t));
    uint32_t *depth = xmallocarray(n_nodes + 1, sizeof(uint32_t));
    memset(fnode, 0xff, (n_nodes + 1) * sizeof(int32_t));
    fnode[0] = 0;
    depth[0] = 0;
    loc_names ln = {xmallocarray(n_locs + 1, sizeof(int32_t)), xmallocarray(n_locs + 1, sizeof(uint32_t)), NULL, 0, 0, NULL, NULL, 0};
    memset(ln.first, 0xff, (n_locs + 1) * sizeof(int32_t));
    if (!src->h) {
        ln.n_fn = (uint32_t)src->b->sec_n[SYM_FUNCTIONS];
        ln.fn_name = xmallocarray((size_t)ln.n_fn + 1, sizeof(uint32_t));
        ln.fn_file = xmallocarray((size_t)ln.n_fn + 1, sizeof(uint32_t));
        memset(ln.fn_name, 0xff, ((size_t)ln.n_fn + 1) * sizeof(uint32_t));
    }
    int rc = 0;
    /* Size the tree once for the source nodes in use: no regrowth while building. */
    uint8_t *used = xcalloc(n_nodes + 1, 1);
    size_t n_used = 0;
    for (uint32_t nd = 1; nd < n_nodes; nd++) {
        if (!agg[nd])
            continue;
        for (uint32_t cur = nd; cur && !used[cur];) {
            used[cur] = 1;
            n_used++;
            uint32_t parent, loc;
            src_node(src, cur, &parent, &loc);
            cur = parent;
        }
    }
    free(used);
    size_t need = (size_t)t->n_nodes + n_used + 16;
    if (need > t->cap_nodes && need < INT32_MAX) {
        t->nodes = xreallocarray(t->nodes, need, sizeof(flame_node));
        t->cap_nodes = (uint32_t)need;
    }
    if (hmap64_reserve(&t->children, need))
        rc = -ENOMEM;
    uint32_t chain[2048];
    for (uint32_t nd = 1; nd < n_nodes && !rc; nd++) {
        int64_t v = agg[nd];
        if (!v)
            continue;
        size_t nc = 0;
        uint32_t cur = nd;
        while (cur && fnode[cur] < 0 && nc < ARRAY_SIZE(chain)) {
            chain[nc++] = cur;
            uint32_t parent, loc;
            src_node(src, cur, &parent, &loc);
            cur = parent;
        }
        if (cur && fnode[cur] < 0) {
            rc = herr_set(e, HE_TOOBIG, "stack deeper than %zu frames", ARRAY_SIZE(chain));
            break;
        }
        while (nc > 0 && !rc) {
            uint32_t c = chain[--nc], parent, loc;
            src_node(src, c, &parent, &loc);
            if ((rc = loc_frames(t, src, &ln, loc)))
                break;
            int32_t node = fnode[parent];
            uint32_t d = depth[parent];
            const uint32_t *ids = ln.ids + ln.first[loc];
            for (uint32_t k = 0; k < ln.count[loc]; k++, ids += 3) {
                node = flame_child(t, (uint32_t)node, ids[0]);
                if (node < 0) {
                    rc = node;
                    break;
                }
                if (t->nodes[node].file == 0 && ids[1]) {
                    t->nodes[node].file = ids[1];
                    t->nodes[node].line = (int32_t)ids[2];
                }
                d++;
            }
            fnode[c] = node;
            depth[c] = d;
            if (d > t->max_depth)
                t->max_depth = d;
        }
        if (rc)
            break;
        uint32_t leaf = (uint32_t)fnode[nd];
        if (tc->side) {
            t->is_diff = 1;
            t->nodes[leaf].self2 = prof_sat_add(t->nodes[leaf].self2, v);
        } else {
            t->nodes[leaf].self = prof_sat_add(t->nodes[leaf].self, v);
        }
        for (uint32_t n = leaf;;) {
            if (tc->side)
                t->nodes[n].total2 = prof_sat_add(t->nodes[n].total2, v);
            else
                t->nodes[n].total = prof_sat_add(t->nodes[n].total, v);
            if (n == 0)
                break;
            n = t->nodes[n].parent;
        }
    }
    if (of_node && !rc)
        for (uint32_t nd = 0; nd < n_nodes; nd++)
            of_node[nd] = fnode[nd] < 0 ? 0 : (uint32_t)fnode[nd];
    free(fnode);
    free(depth);
    free(ln.first);
    free(ln.count);
    free(ln.ids);
    free(ln.fn_name);
    free(ln.fn_file);
    return rc;
}

/*
 * The skeleton of a block: its whole stack tree merged by frame name, built
 * once on the block's first flame query (the same walk as emit_tree over
 * every node) and kept with the block. A query then only scatters its
 * per-stack sums onto skeleton nodes, sums them up the tree in one backward
 * pass (parent < child) and copies the touched nodes into the caller's
 * tree: no stack walks, no frame names built, names interned once per
 * distinct name. A merged node's file and line are those of the first
 * source node (in block order) that has them.
 */
struct st_skel {
    uint32_t n_src;     /* source nodes covered by of_node */
    uint32_t *of_node;  /* source node -> skeleton node */
    uint32_t n;         /* skeleton nodes, 0 the root, parent < child */
    uint32_t *parent, *name, *file, *depth;
    int32_t *line;
    strtab names, files;
};

void st_skel_free(struct st_skel *k)
{
    if (!k)
        return;
    free(k->of_node);
    free(k->parent);
    free(k->name);
    free(k->file);
    free(k->depth);
    free(k->line);
    strtab_release(&k->names);
    strtab_release(&k->files);
    free(k);
}

static pthread_mutex_t skel_mu = PTHREAD_MUTEX_INITIALIZER;

/* Builds b's skeleton into *out; 0 or a negative error (e says why). */
static int skel_build(const qsrc *src, struct st_skel **out, herr *e)
{
    uint32_t n_nodes = (uint32_t)src->b->sec_n[SYM_NODES];
    int64_t *all = xmallocarray((size_t)n_nodes + 1, sizeof(int64_t));
    for (uint32_t i = 0; i <= n_nodes; i++)
        all[i] = 1;
    flame_tree ft;
    int rc = flame_init(&ft);
    if (rc) {
        free(all);
        return rc;
    }
    tree_ctx tc = {&ft, 0};
    uint32_t *of_node = xmallocarray((size_t)n_nodes + 1, sizeof(uint32_t));
    rc = emit_tree_map(&tc, src, all, n_nodes, of_node, e);
    free(all);
    if (rc) {
        free(of_node);
        flame_release(&ft);
        return rc;
    }
    struct st_skel *k = xcalloc(1, sizeof(*k));
    k->n_src = n_nodes;
    k->of_node = of_node;
    k->n = ft.n_nodes;
    k->parent = xmallocarray(k->n, sizeof(uint32_t));
    k->name = xmallocarray(k->n, sizeof(uint32_t));
    k->file = xmallocarray(k->n, sizeof(uint32_t));
    k->depth = xcalloc(k->n, sizeof(uint32_t));
    k->line = xmallocarray(k->n, sizeof(int32_t));
    for (uint32_t i = 0; i < k->n; i++) {
        const flame_node *fn = &ft.nodes[i];
        k->parent[i] = i ? fn->parent : 0;
        k->name[i] = fn->name;
        k->file[i] = fn->file;
        k->line[i] = (int32_t)fn->line;
        if (i)
            k->depth[i] = k->depth[fn->parent] + 1;
    }
    /* The names and files move over; the rest of the tree goes. */
    k->names = ft.names;
    k->files = ft.files;
    strtab_init(&ft.names);
    strtab_init(&ft.files);
    flame_release(&ft);
    *out = k;
    return 0;
}

/* b's skeleton, built on first use; NULL when it cannot be built (the caller takes the uncached path). */
static const struct st_skel *skel_get(const qsrc *src)
{
    st_block *b = (st_block *)src->b;
    pthread_mutex_lock(&skel_mu);
    if (!b->skel && !b->skel_failed) {
        herr e;
        herr_clear(&e);
        if (skel_build(src, &b->skel, &e))
            b->skel_failed = 1;
    }
    const struct st_skel *k = b->skel;
    pthread_mutex_unlock(&skel_mu);
    return k;
}

static uint32_t skel_str(strtab *to, const strtab *from, uint32_t id, uint32_t *memo)
{
    if (memo[id] == UINT32_MAX) {
        int32_t r = strtab_intern(to, strtab_get(from, id), strtab_len(from, id));
        if (r < 0)
            return UINT32_MAX;
        memo[id] = (uint32_t)r;
    }
    return memo[id];
}

/*
 * emit_tree_skel into a tree that holds only its root: the skeleton's
 * children of a node have distinct names, so every touched skeleton node is
 * a new tree node and its id is known up front (touched nodes in order).
 * Nodes are appended directly, linked as flame_child links them, and the
 * child map is filled afterwards with each insert's slot prefetched a few
 * keys ahead (the map is ~4 MB: each insert is otherwise a cache miss).
 */
static int skel_fresh(tree_ctx *tc, const struct st_skel *k, const int64_t *tot, const int64_t *self, const uint8_t *touched,
                      uint32_t *fm, uint32_t *nm, uint32_t *fl, size_t n_touched)
{
    flame_tree *t = tc->t;
    if ((size_t)t->n_nodes + n_touched > t->cap_nodes)
        return -ENOMEM;  /* the caller reserved this much */
    uint64_t *keys = xmallocarray(n_touched + 1, sizeof(uint64_t));
    size_t nk = 0;
    uint32_t next = t->n_nodes;
    for (uint32_t i = 1; i < k->n; i++) {
        if (!touched[i])
            continue;
        uint32_t name = skel_str(&t->names, &k->names, k->name[i], nm);
        uint32_t file = k->file[i] ? skel_str(&t->files, &k->files, k->file[i], fl) : 0;
        if (name == UINT32_MAX || file == UINT32_MAX) {
            free(keys);
            return -ENOMEM;
        }
        uint32_t id = next++, p = fm[k->parent[i]];
        fm[i] = id;
        flame_node *fn = &t->nodes[id];
        memset(fn, 0, sizeof(*fn));
        fn->name = name;
        fn->parent = p;
        fn->next_sibling = t->nodes[p].first_child;
        t->nodes[p].first_child = id;
        fn->file = file;
        fn->line = file ? k->line[i] : 0;
        if (tc->side) {
            fn->total2 = tot[i];
            fn->self2 = self[i];
        } else {
            fn->total = tot[i];
            fn->self = self[i];
        }
        if (k->depth[i] > t->max_depth)
            t->max_depth = k->depth[i];
        keys[nk++] = ((uint64_t)p << 32) | name;
    }
    t->n_nodes = next;
    int rc = 0;
    const size_t ahead = 8;
    for (size_t j = 0; j < nk && !rc; j++) {
        if (j + ahead < nk && t->children.slots)
            __builtin_prefetch(&t->children.slots[hmap64_home(&t->children, keys[j + ahead])], 1);
        rc = hmap64_put(&t->children, keys[j], (uint32_t)(t->n_nodes - nk + j));
    }
    free(keys);
    return rc;
}

static int emit_tree_skel(tree_ctx *tc, const struct st_skel *k, const int64_t *agg, uint32_t n_nodes)
{
    flame_tree *t = tc->t;
    int64_t *tot = xcalloc((size_t)k->n, sizeof(int64_t)), *self = xcalloc((size_t)k->n, sizeof(int64_t));
    uint8_t *touched = xcalloc((size_t)k->n, 1);
    for (uint32_t nd = 1; nd < n_nodes; nd++)
        if (agg[nd]) {
            uint32_t sk = k->of_node[nd];
            self[sk] = prof_sat_add(self[sk], agg[nd]);
            touched[sk] = 1;
        }
    size_t n_touched = 0;
    for (uint32_t i = k->n; i-- > 1;) {
        if (!touched[i])
            continue;
        n_touched++;
        tot[i] = prof_sat_add(tot[i], self[i]);
        tot[k->parent[i]] = prof_sat_add(tot[k->parent[i]], tot[i]);
        touched[k->parent[i]] = 1;
    }
    tot[0] = prof_sat_add(tot[0], self[0]);
    int rc = 0;
    size_t need = (size_t)t->n_nodes + n_touched + 16;
    if (need > t->cap_nodes && need < INT32_MAX) {
        t->nodes = xreallocarray(t->nodes, need, sizeof(flame_node));
        t->cap_nodes = (uint32_t)need;
    }
    if (hmap64_reserve(&t->children, need) || strtab_reserve(&t->names, (size_t)t->names.count + k->names.count) ||
        strtab_reserve(&t->files, (size_t)t->files.count + k->files.count))
        rc = -ENOMEM;
    uint32_t *fm = xmallocarray((size_t)k->n, sizeof(uint32_t));
    uint32_t *nm = xmallocarray((size_t)k->names.count + 1, sizeof(uint32_t));
    uint32_t *fl = xmallocarray((size_t)k->files.count + 1, sizeof(uint32_t));
    memset(nm, 0xff, ((size_t)k->names.count + 1) * sizeof(uint32_t));
    memset(fl, 0xff, ((size_t)k->files.count + 1) * sizeof(uint32_t));
    fm[0] = 0;
    flame_node *root = &t->nodes[0];
    if (tc->side)
        root->total2 = prof_sat_add(root->total2, tot[0]);
    else
        root->total = prof_sat_add(root->total, tot[0]);
    if (!rc && t->n_nodes == 1 && t->children.count == 0) {
        rc = skel_fresh(tc, k, tot, self, touched, fm, nm, fl, n_touched);
        goto done;
    }
    for (uint32_t i = 1; i < k->n && !rc; i++) {
        if (!touched[i])
            continue;
        uint32_t name = skel_str(&t->names, &k->names, k->name[i], nm);
        uint32_t file = k->file[i] ? skel_str(&t->files, &k->files, k->file[i], fl) : 0;
        if (name == UINT32_MAX || file == UINT32_MAX) {
            rc = -ENOMEM;
            break;
        }
        int32_t id = flame_child(t, fm[k->parent[i]], name);
        if (id < 0) {
            rc = id;
            break;
        }
        fm[i] = (uint32_t)id;
        flame_node *fn = &t->nodes[id];
        if (fn->file == 0 && file) {
            fn->file = file;
            fn->line = k->line[i];
        }
        if (tc->side) {
            fn->total2 = prof_sat_add(fn->total2, tot[i]);
            fn->self2 = prof_sat_add(fn->self2, self[i]);
        } else {
            fn->total = prof_sat_add(fn->total, tot[i]);
            fn->self = prof_sat_add(fn->self, self[i]);
        }
        if (k->depth[i] > t->max_depth)
            t->max_depth = k->depth[i];
    }
done:
    if (tc->side)
        t->is_diff = 1;
    free(tot);
    free(self);
    free(touched);
    free(fm);
    free(nm);
    free(fl);
    return rc;
}

static int emit_tree(void *arg, const qsrc *src, const int64_t *agg, uint32_t n_nodes, herr *e)
{
    tree_ctx *tc = arg;
    if (src->b) {
        const struct st_skel *k = skel_get(src);
        if (k && k->n_src == n_nodes)
            return emit_tree_skel(tc, k, agg, n_nodes);
    }
    return emit_tree_map(tc, src, agg, n_nodes, NULL, e);
}

int store_select_merge_tree(store *s, const store_query *q, flame_tree *t, int side, herr *e)
{
    char parts[5][256];
    int rc = check_merge_query(q, parts, e);
    if (rc)
        return rc;
    tree_ctx tc = {t, side ? 1 : 0};
    merge_ctx m;
    memset(&m, 0, sizeof(m));
    return select_agg(s, q, emit_tree, &tc, &m, e);
}

/*
 * The "sum by stack id" step of a flame query alone: the same selection,
 * chunk rollups and row decoding as store_select_merge_tree, ending with
 * one value per stack node, without names or tree (what a plain table's
 * GROUP BY stack_id computes). For benchmarks against such a peer.
 */
typedef struct sums_ctx {
    uint64_t n_stacks;
    int64_t total;
} sums_ctx;

static int emit_sums(void *arg, const qsrc *src, const int64_t *agg, uint32_t n_nodes, herr *e)
{
    sums_ctx *c = arg;
    for (uint32_t nd = 1; nd < n_nodes; nd++)
        if (agg[nd]) {
            c->n_stacks++;
            c->total = prof_sat_add(c->total, agg[nd]);
        }
    return 0;
}

int st_query_stack_sums(store *s, const store_query *q, uint64_t *n_stacks, int64_t *total, herr *e)
{
    char parts[5][256];
    int rc = check_merge_query(q, parts, e);
    if (rc)
        return rc;
    sums_ctx c = {0, 0};
    merge_ctx m;
    memset(&m, 0, sizeof(m));
    if ((rc = select_agg(s, q, emit_sums, &c, &m, e)))
        return rc;
    *n_stacks = c.n_stacks;
    *total = c.total;
    return 0;
}

/* ---- string lists ---- */

void store_strs_release(store_strs *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strs_from_tab(const strtab *t, uint32_t first, store_strs *out)
{
    out->n = t->count - first;
    out->v = xmallocarray(out->n + 1, sizeof(char *));
    for (uint32_t i = first; i < t->count; i++)
        out->v[i - first] = xstrndup(strtab_get(t, i), strtab_len(t, i));
    qsort(out->v, out->n, sizeof(char *), cmp_str);
}

typedef int (*series_fn)(void *arg, const qsrc *src, uint32_t si);

/* Calls fn for every series matched by q that has a profile in range. */
static int each_series(store *s, const store_query *q, series_fn fn, void *arg)
{
    pthread_rwlock_rdlock(&s->lock);
    size_t ns;
    qsrc *src = sources(s, q, &ns);
    int rc = 0;
    for (size_t i = 0; i < ns && !rc; i++) {
        uint32_t *ser;
        uint32_t n = match_series(&src[i], q, &ser);
        for (uint32_t k = 0; k < n && !rc; k++)
            if (series_in_range(&src[i], ser[k], q))
                rc = fn(arg, &src[i], ser[k]);
        free(ser);
    }
    pthread_rwlock_unlock(&s->lock);
    free(src);
    return rc;
}

typedef struct label_ctx {
    strtab t;
    const char *name;  /* NULL: names; else values of name */
} label_ctx;

static int collect_label(void *arg, const qsrc *src, uint32_t si)
{
    label_ctx *c = arg;
    if (c->name) {
        const char *v = src_label(src, si, c->name);
        if (v && strtab_intern_cstr(&c->t, v) < 0)
            return -ENOMEM;
        return 0;
    }
    uint32_t n = src_n_lab(src, si);
    for (uint32_t k = 0; k < n; k++) {
        const char *a, *v;
        src_lab(src, si, k, &a, &v);
        if (strtab_intern_cstr(&c->t, a) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int check_q(const store_query *q, herr *e)
{
    if (!q->tenant)
        return herr_set(e, HE_USAGE, "no tenant given");
    return 0;
}

static int labels_query(store *s, const store_query *q, const char *name, store_strs *out, herr *e)
{
    int rc = check_q(q, e);
    if (rc)
        return rc;
    label_ctx c;
    strtab_init(&c.t);
    strtab_intern(&c.t, "\x01", 1); /* placeholder id 0, skipped */
    c.name = name;
    rc = each_series(s, q, collect_label, &c);
    if (!rc)
        strs_from_tab(&c.t, 1, out);
    strtab_release(&c.t);
    return rc;
}

int store_label_names(store *s, const store_query *q, store_strs *out, herr *e)
{
    return labels_query(s, q, NULL, out, e);
}

int store_label_values(store *s, const store_query *q, const char *name, store_strs *out, herr *e)
{
    if (!name)
        return herr_set(e, HE_USAGE, "no label name given");
    return labels_query(s, q, name, out, e);
}

int store_profile_types(store *s, const store_query *q, store_strs *out, herr *e)
{
    store_query q2 = *q;
    q2.profile_type = NULL;
    return labels_query(s, &q2, "__profile_type__", out, e);
}

/* ---- series ---- */

void store_series_release(store_series_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        for (size_t k = 0; k < l->v[i].n; k++) {
            free((char *)l->v[i].labels[k].name);
            free((char *)l->v[i].labels[k].value);
        }
        free(l->v[i].labels);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

typedef struct series_ctx {
    strtab keys;   /* canonical text of each projected set; id = index + 1 */
    const char *const *names;
    size_t n_names;
} series_ctx;

static int collect_series(void *arg, const qsrc *src, uint32_t si)
{
    series_ctx *c = arg;
    buf k;
    buf_init(&k, 0);
    uint32_t n = src_n_lab(src, si);
    for (uint32_t i = 0; i < n; i++) {
        const char *a, *v;
        src_lab(src, si, i, &a, &v);
        if (c->n_names) {
            size_t j;
            for (j = 0; j < c->n_names; j++)
                if (!strcmp(c->names[j], a))
                    break;
            if (j == c->n_names)
                continue;
        }
        buf_puts(&k, a);
        buf_putc(&k, 0);
        buf_puts(&k, v);
        buf_putc(&k, 0);
    }
    int rc = strtab_intern(&c->keys, k.data ? k.data : "", k.len) < 0 ? -ENOMEM : 0;
    buf_release(&k);
    return rc;
}

static int cmp_labelset(const void *a, const void *b)
{
    const store_labelset *x = a, *y = b;
    for (size_t i = 0; i < x->n && i < y->n; i++) {
        int c = strcmp(x->labels[i].name, y->labels[i].name);
        if (c)
            return c;
        c = strcmp(x->labels[i].value, y->labels[i].value);
        if (c)
            return c;
    }
    return x->n < y->n ? -1 : x->n > y->n;
}

int store_series(store *s, const store_query *q, const char *const *names, size_t n_names,
                 store_series_list *out, herr *e)
{
    int rc = check_q(q, e);
    if (rc)
        return rc;
    series_ctx c;
    strtab_init(&c.keys);
    strtab_intern(&c.keys, "\x01", 1);
    c.names = names;
    c.n_names = n_names;
    rc = each_series(s, q, collect_series, &c);
    if (!rc) {
        out->n = c.keys.count - 1;
        out->v = xcalloc(out->n + 1, sizeof(store_labelset));
        for (uint32_t i = 1; i < c.keys.count; i++) {
            const char *p = strtab_get(&c.keys, i), *end = p + strtab_len(&c.keys, i);
            store_labelset *ls = &out->v[i - 1];
            size_t cnt = 0;
            for (const char *x = p; x < end; x += strlen(x) + 1)
                cnt++;
            ls->labels = xcalloc(cnt / 2 + 1, sizeof(store_label));
            while (p < end) {
                const char *v = p + strlen(p) + 1;
                ls->labels[ls->n].name = xstrdup(p);
                ls->labels[ls->n].value = xstrdup(v);
                ls->n++;
                p = v + strlen(v) + 1;
            }
        }
        qsort(out->v, out->n, sizeof(store_labelset), cmp_labelset);
    }
    strtab_release(&c.keys);
    return rc;
}

/* ---- time series ---- */

void store_ts_release(store_ts_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        for (size_t k = 0; k < l->v[i].labels.n; k++) {
            free((char *)l->v[i].labels.labels[k].name);
            free((char *)l->v[i].labels.labels[k].value);
        }
        free(l->v[i].labels.labels);
        free(l->v[i].points);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

typedef struct ts_group {
    double *sum;
    uint32_t *count;
} ts_group;

typedef struct ts_ctx {
    const store_query *q;
    int64_t step;
    size_t n_buckets;
    strtab keys;          /* group key -> id (index into groups) */
    ts_group *groups;
    size_t cap_groups;
    const char *const *group_by;
    size_t n_group_by;
    uint32_t cur;         /* group of the series being scanned */
} ts_ctx;

static int ts_add(ts_ctx *c, int64_t ts, int64_t total)
{
    size_t bkt = (size_t)((ts - c->q->start_ns) / c->step);
    if (bkt >= c->n_buckets)
        return 0;
    ts_group *g = &c->groups[c->cur];
    g->sum[bkt] += (double)total;
    g->count[bkt]++;
    return 0;
}

static int ts_rows(void *arg, int64_t ts, const uint32_t *st, const int64_t *v, size_t n)
{
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total = prof_sat_add(total, v[i]);
    if (n == 0)
        return 0; /* a span filter left nothing of this profile */
    return ts_add(arg, ts, total);
}

static int ts_group_of(ts_ctx *c, const qsrc *src, uint32_t si)
{
    buf k;
    buf_init(&k, 0);
    for (size_t i = 0; i < c->n_group_by; i++) {
        const char *v = src_label(src, si, c->group_by[i]);
        buf_putc(&k, v ? 1 : 0);
        buf_puts(&k, v ? v : "");
        buf_putc(&k, 0);
    }
    int32_t id = strtab_intern(&c->keys, k.data ? k.data : "", k.len);
    buf_release(&k);
    if (id < 0)
        return id;
    if ((size_t)id >= c->cap_groups) {
        size_t old = c->cap_groups;
        if (HGROW(c->groups, c->cap_groups, (size_t)id + 1))
            return -ENOMEM;
        memset(c->groups + old, 0, (c->cap_groups - old) * sizeof(ts_group));
    }
    if (!c->groups[id].sum) {
        c->groups[id].sum = xcalloc(c->n_buckets, sizeof(double));
        c->groups[id].count = xcalloc(c->n_buckets, sizeof(uint32_t));
    }
    c->cur = (uint32_t)id;
    return 0;
}

int store_select_series(store *s, const store_query *q, int64_t step_ns,
                        const char *const *group_by, size_t n_group_by, enum store_agg agg,
                        store_ts_list *out, herr *e)
{
    char parts[5][256];
    if (!q->tenant)
        return herr_set(e, HE_USAGE, "no tenant given");
    if (!q->profile_type || parse_ptype(q->profile_type, parts))
        return herr_set(e, HE_USAGE, "a profile type is required for series queries");
    if (step_ns <= 0 || q->end_ns <= 0 || q->end_ns < q->start_ns)
        return herr_set(e, HE_USAGE, "series queries need step > 0 and end >= start");
    uint64_t nb = (uint64_t)(q->end_ns - q->start_ns) / (uint64_t)step_ns + 1;
    if (nb > STORE_MAX_BUCKETS)
        return herr_set(e, HE_TOOBIG, "range / step gives %" PRIu64 " points, more than %d", nb, STORE_MAX_BUCKETS);
    ts_ctx c;
    memset(&c, 0, sizeof(c));
    c.q = q;
    c.step = step_ns;
    c.n_buckets = (size_t)nb;
    c.group_by = group_by;
    c.n_group_by = n_group_by;
    strtab_init(&c.keys);
    scratch sc;
    memset(&sc, 0, sizeof(sc));
    buf_init(&sc.raw, 0);
    int rc = 0;
    pthread_rwlock_rdlock(&s->lock);
    size_t ns;
    qsrc *src = sources(s, q, &ns);
    for (size_t i = 0; i < ns && !rc; i++) {
        uint32_t *ser;
        uint32_t n = match_series(&src[i], q, &ser);
        span_set ss;
        span_set_init(&ss, &src[i], q);
        for (uint32_t k = 0; k < n && !rc; k++) {
            if (!series_in_range(&src[i], ser[k], q))
                continue;
            if ((rc = ts_group_of(&c, &src[i], ser[k])))
                break;
            if (ss.active) {
                rc = scan_rows(&src[i], ser[k], q, &ss, &sc, ts_rows, NULL, &c, e);
            } else {
                uint32_t np;
                const int64_t *ts, *tot;
                src_prof(&src[i], ser[k], &np, &ts, &tot);
                for (uint32_t j = 0; j < np; j++)
                    if (in_range(q, ts[j]))
                        ts_add(&c, ts[j], tot[j]);
            }
        }
        span_set_release(&ss);
        free(ser);
    }
    pthread_rwlock_unlock(&s->lock);
    free(src);
    free(sc.st);
    free(sc.val);
    buf_release(&sc.raw);
    if (!rc) {
        out->n = 0;
        out->v = xcalloc(c.keys.count + 1, sizeof(store_ts));
        for (uint32_t g = 0; g < c.keys.count; g++) {
            ts_group *gr = &c.groups[g];
            store_ts *t = &out->v[out->n];
            size_t np = 0;
            for (size_t b = 0; b < c.n_buckets; b++)
                np += gr->count[b] > 0;
            if (!np)
                continue;
            out->n++;
            t->points = xmallocarray(np, sizeof(store_point));
            for (size_t b = 0; b < c.n_buckets; b++) {
                if (!gr->count[b])
                    continue;
                double v = gr->sum[b];
                if (agg == STORE_AGG_AVG)
                    v /= gr->count[b];
                t->points[t->n_points++] = (store_point){q->start_ns + (int64_t)b * step_ns, v};
            }
            const char *k = strtab_get(&c.keys, g);
            t->labels.labels = xcalloc(n_group_by + 1, sizeof(store_label));
            for (size_t i = 0; i < n_group_by; i++) {
                int present = *k++;
                if (present) {
                    t->labels.labels[t->labels.n].name = xstrdup(group_by[i]);
                    t->labels.labels[t->labels.n].value = xstrdup(k);
                    t->labels.n++;
                }
                k += strlen(k) + 1;
            }
        }
    }
    for (uint32_t g = 0; g < c.keys.count && g < c.cap_groups; g++) {
        free(c.groups[g].sum);
        free(c.groups[g].count);
    }
    free(c.groups);
    strtab_release(&c.keys);
    return rc;
}

/* ---- stats ---- */

int store_profile_stats(store *s, const char *tenant, store_tenant_stats *out, herr *e)
{
    memset(out, 0, sizeof(*out));
    if (!tenant)
        return herr_set(e, HE_USAGE, "no tenant given");
    store_query q;
    memset(&q, 0, sizeof(q));
    q.tenant = tenant;
    q.start_ns = INT64_MIN;
    pthread_rwlock_rdlock(&s->lock);
    size_t ns;
    qsrc *src = sources(s, &q, &ns);
    for (size_t i = 0; i < ns; i++) {
        int64_t lo = src[i].h ? src[i].h->min_ts : src[i].b->min_ts, hi = src[i].h ? src[i].h->max_ts : src[i].b->max_ts;
        if (src[i].h && src[i].h->n_profiles == 0)
            continue;
        if (!out->has_data || lo < out->oldest_ns)
            out->oldest_ns = lo;
        if (!out->has_data || hi > out->newest_ns)
            out->newest_ns = hi;
        out->has_data = 1;
    }
    pthread_rwlock_unlock(&s->lock);
    free(src);
    return 0;
}

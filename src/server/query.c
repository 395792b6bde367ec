/*
 * query.c: the read routes: Pyroscope's querier.v1 Connect RPCs (JSON and
 * proto, int64 as JSON strings, times in ms) and the legacy
 * /pyroscope/render, /render-diff, /label-values and /labels.
 *
 * Each handler: parse the request (connect.h tables), turn it into a
 * store_query (tenant from the HTTP layer, selector parsed here so syntax
 * errors become invalid_argument), ask the store, encode. Flame graphs are
 * truncated to max_nodes with flame_truncate() (default from the server
 * config) before encoding. Responses are built in memory under the
 * response buffer's default cap.
 */
#include "core/common.h"

#include <strings.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/units.h"
#include "core/wire.h"
#include "format/flamebearer.h"
#include "format/pprof.h"
#include "server/connect.h"
#include "server/naming.h"
#include "server/srv.h"

#define MS (1000000LL)

/* ---------------- helpers ---------------- */

static void jw_i64s(jw *w, int64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRId64, v);
    jw_cstring(w, tmp);
}

static int profile_type_valid(const char *pt)
{
    int colons = 0;
    if (!pt || !*pt) return 0;
    for (const char *c = pt; *c; c++) colons += *c == ':';
    return colons == 4;
}

/* Common query setup; returns 0 or replies with a Connect error and returns -1. */
static int make_query(http_req *rq, http_resp *rs, const creq *r, const char *selector_text, selector *sel,
                      store_query *q, int need_type)
{
    herr e = {0};
    memset(q, 0, sizeof *q);
    selector_init(sel);
    q->tenant = rq->tenant;
    q->start_ns = 0;
    q->end_ns = now_ns();
    if ((r->start > 0 && __builtin_mul_overflow(r->start, (int64_t)MS, &q->start_ns)) ||
        (r->end > 0 && __builtin_mul_overflow(r->end, (int64_t)MS, &q->end_ns))) {
        connect_error(rs, "invalid_argument", "start (%" PRId64 ") or end (%" PRId64 ") is out of range: use unix milliseconds", r->start, r->end);
        return -1;
    }
    if (q->end_ns < q->start_ns) {
        connect_error(rs, "invalid_argument", "end (%" PRId64 ") is before start (%" PRId64 ")", r->end, r->start);
        return -1;
    }
    if (need_type || (r->profile_type && *r->profile_type)) {
        if (!profile_type_valid(r->profile_type)) {
            connect_error(rs, "invalid_argument",
                          "profile_typeID \"%.100s\" is not name:type:unit:period_type:period_unit (e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds)",
                          r->profile_type ? r->profile_type : "");
            return -1;
        }
        q->profile_type = r->profile_type;
    }
    if (selector_text && *selector_text) {
        int rc = selector_parse(sel, selector_text, strlen(selector_text), &e);
        if (rc) {
            connect_error(rs, connect_code_for(rc), "invalid label selector: %s", herr_msg(&e, rc));
            return -1;
        }
    }
    q->sel = sel;
    return 0;
}

static void store_fail(http_resp *rs, int rc, const herr *e)
{
    connect_error(rs, connect_code_for(rc), "%s", herr_msg(e, rc));
}

static int want_json(http_req *rq, http_resp *rs)
{
    int json = connect_is_json(rq);
    rs->content_type = json ? "application/json" : "application/proto";
    return json;
}

/* Sorted unique union of string lists. */
static void strs_merge(store_strs *dst, store_strs *src)
{
    for (size_t i = 0; i < src->n; i++) {
        size_t k;
        for (k = 0; k < dst->n && strcmp(dst->v[k], src->v[i]); k++) {}
        if (k < dst->n) {
            free(src->v[i]);
            continue;
        }
        dst->v = xreallocarray(dst->v, dst->n + 1, sizeof *dst->v);
        dst->v[dst->n++] = src->v[i];
    }
    free(src->v);
    src->v = NULL;
    src->n = 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void write_names(http_req *rq, http_resp *rs, store_strs *l)
{
    if (want_json(rq, rs)) {
        jw w;
        jw_init(&w, &rs->body);
        jw_obj(&w);
        jw_key(&w, "names");
        jw_arr(&w);
        for (size_t i = 0; i < l->n; i++) jw_cstring(&w, l->v[i]);
        jw_arr_end(&w);
        jw_obj_end(&w);
    } else {
        for (size_t i = 0; i < l->n; i++) wire_put_bytes(&rs->body, 1, l->v[i], strlen(l->v[i]));
    }
}

/* Flame graph messages (querier.v1.FlameGraph / FlameGraphDiff). */
static int write_flamegraph(buf *out, flame_tree *t, int json, int diff)
{
    flame_levels_out lv;
    int rc = flame_levels(t, &lv);
    int64_t total = flame_total(t, 0), total2 = flame_total(t, 1);
    if (rc) return rc;
    if (json) {
        jw w;
        jw_init(&w, out);
        jw_obj(&w);
        jw_key(&w, "names");
        jw_arr(&w);
        for (uint32_t i = 0; i < t->names.count; i++) jw_string(&w, strtab_get(&t->names, i), strtab_len(&t->names, i));
        jw_arr_end(&w);
        jw_key(&w, "levels");
        jw_arr(&w);
        for (size_t d = 0; d < lv.n_levels; d++) {
            jw_obj(&w);
            jw_key(&w, "values");
            jw_arr(&w);
            for (size_t k = 0; k < lv.n_level[d]; k++) jw_i64s(&w, lv.levels[d][k]);
            jw_arr_end(&w);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
        jw_key(&w, "total");
        jw_i64s(&w, diff ? total + total2 : total);
        jw_key(&w, "maxSelf");
        jw_i64s(&w, lv.max_self);
        if (diff) {
            jw_key(&w, "leftTicks");
            jw_i64s(&w, total);
            jw_key(&w, "rightTicks");
            jw_i64s(&w, total2);
        }
        jw_obj_end(&w);
        rc = w.err;
    } else {
        for (uint32_t i = 0; i < t->names.count && !rc; i++)
            rc = wire_put_bytes(out, 1, strtab_get(&t->names, i), strtab_len(&t->names, i));
        for (size_t d = 0; d < lv.n_levels && !rc; d++) {
            long m = wire_begin(out, 2);
            if (m < 0) { rc = (int)m; break; }
            if ((rc = wire_put_packed_i64(out, 1, lv.levels[d], lv.n_level[d]))) break;
            rc = wire_end(out, m);
        }
        if (!rc) rc = wire_put_uint_nz(out, 3, (uint64_t)(diff ? total + total2 : total));
        if (!rc) rc = wire_put_uint_nz(out, 4, (uint64_t)lv.max_self);
        if (!rc && diff) rc = wire_put_uint_nz(out, 5, (uint64_t)total);
        if (!rc && diff) rc = wire_put_uint_nz(out, 6, (uint64_t)total2);
    }
    flame_levels_release(&lv);
    return rc;
}

/*
 * Pyroscope's tree bytes (PROFILE_FORMAT_TREE, pkg/model Tree.MarshalTruncate):
 * nodes in pre-order, each as varint(len(name)) name varint(self)
 * varint(n_children); the first node is a virtual root with an empty name
 * whose children are the top frames. t is already truncated ("other" nodes).
 */
static int write_tree_bytes(const flame_tree *t, buf *out)
{
    uint32_t *stack = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!t->n_nodes) return 0;
    if (HGROW(stack, cap, 1)) return -ENOMEM;
    stack[n++] = 0;
    while (n && !rc) {
        uint32_t id = stack[--n], kids = 0;
        const flame_node *nd = &t->nodes[id];
        const char *name = id ? strtab_get(&t->names, nd->name) : "";
        size_t len = id ? strtab_len(&t->names, nd->name) : 0;
        if ((rc = wire_put_varint(out, len)) || (rc = buf_append(out, name, len)) ||
            (rc = wire_put_varint(out, (uint64_t)(nd->self < 0 ? 0 : nd->self))))
            break;
        for (uint32_t c = nd->first_child; c; c = t->nodes[c].next_sibling) {
            if (HGROW(stack, cap, n + 1)) { rc = -ENOMEM; break; }
            stack[n++] = c;
            kids++;
        }
        if (!rc) rc = wire_put_varint(out, kids);
    }
    free(stack);
    return rc;
}

/*
 * stack_trace_selector: keep only the stacks that start (root first) with
 * the call site frames cs[0..n). In a flame tree that is the subtree at the
 * end of that path, with the path above it (ancestors' totals become the
 * subtree's, their self 0). out is initialized here; no match = empty tree.
 */
static int flame_focus(const flame_tree *t, char *const *cs, size_t n, flame_tree *out)
{
    uint32_t node = 0, parent = 0, *stack = NULL;
    size_t sn = 0, scap = 0;
    int rc;
    if ((rc = flame_init(out))) return rc;
    for (size_t k = 0; k < n; k++) {
        int32_t nm = strtab_find(&t->names, cs[k], strlen(cs[k]));
        uint32_t c = nm < 0 ? HMAP_EMPTY : hmap64_get(&t->children, (uint64_t)node << 32 | (uint32_t)nm);
        if (c == HMAP_EMPTY) return 0;  /* nothing under this call site */
        node = c;
    }
    if (!n || !t->n_nodes) return 0;
    /* the path */
    for (size_t k = 0; k < n; k++) {
        int32_t nm = strtab_intern(&out->names, cs[k], strlen(cs[k]));
        int32_t c;
        if (nm < 0) return nm;
        if ((c = flame_child(out, parent, (uint32_t)nm)) < 0) return c;
        out->nodes[c].total = t->nodes[node].total;
        out->nodes[c].total2 = t->nodes[node].total2;
        parent = (uint32_t)c;
    }
    out->nodes[0].total = t->nodes[node].total;
    out->nodes[0].total2 = t->nodes[node].total2;
    out->nodes[parent].self = t->nodes[node].self;
    out->nodes[parent].self2 = t->nodes[node].self2;
    out->is_diff = t->is_diff;
    /* the subtree: pairs (source node, copy) */
    if (HGROW(stack, scap, 2)) return -ENOMEM;
    stack[sn++] = node;
    stack[sn++] = parent;
    while (sn && !rc) {
        uint32_t dst = stack[--sn], src = stack[--sn];
        for (uint32_t c = t->nodes[src].first_child; c && !rc; c = t->nodes[c].next_sibling) {
            const flame_node *sc = &t->nodes[c];
            int32_t nm = strtab_intern(&out->names, strtab_get(&t->names, sc->name), strtab_len(&t->names, sc->name));
            int32_t d;
            if (nm < 0 || (d = flame_child(out, dst, (uint32_t)nm)) < 0) {
                rc = -ENOMEM;
                break;
            }
            out->nodes[d].total = sc->total;
            out->nodes[d].self = sc->self;
            out->nodes[d].total2 = sc->total2;
            out->nodes[d].self2 = sc->self2;
            out->nodes[d].line = sc->line;
            if (sc->file) {
                int32_t f = strtab_intern(&out->files, strtab_get(&t->files, sc->file), strtab_len(&t->files, sc->file));
                if (f > 0) out->nodes[d].file = (uint32_t)f;
            }
            if (HGROW(stack, scap, sn + 2)) {
                rc = -ENOMEM;
                break;
            }
            stack[sn++] = c;
            stack[sn++] = (uint32_t)d;
        }
    }
    free(stack);
    return rc;
}

/* The same selection on a profile: samples whose stack does not start with cs get dropped. */
static int profile_focus(profile *p, char *const *cs, size_t n)
{
    uint32_t locs[1024];
    char name[512];
    for (size_t i = 0; i < p->n_samples; i++) {
        size_t depth = prof_stack_locations(p, p->samples[i].stack, locs, ARRAY_SIZE(locs)), k = 0;
        int match = 1;
        if (depth > ARRAY_SIZE(locs)) depth = ARRAY_SIZE(locs);
        /* root first: locations from the end, inline lines outermost (last) first */
        for (size_t d = depth; d-- > 0 && k < n && match;) {
            const prof_location *l = &p->locations[locs[d]];
            uint32_t nl = l->n_lines ? l->n_lines : 1;
            for (uint32_t ln = nl; ln-- > 0 && k < n;) {
                prof_frame_name(p, locs[d], ln, name, sizeof name);
                if (strcmp(name, cs[k++])) {
                    match = 0;
                    break;
                }
            }
        }
        if (!match || k < n)
            for (uint32_t t = 0; t < p->n_types; t++) p->values[i * p->n_types + t] = 0;
    }
    return prof_compact_samples(p);
}

static uint32_t max_nodes_of(const server *s, const creq *r)
{
    if (r->has_max_nodes && r->max_nodes > 0) return (uint32_t)MIN(r->max_nodes, (int64_t)1 << 20);
    if (r->has_max_nodes && r->max_nodes < 0) return 0;  /* -1: no limit, as Pyroscope */
    return s->cfg.max_nodes;
}

/* ---------------- RPCs ---------------- */

void query_profile_types(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    creq r;
    herr e = {0};
    selector sel;
    store_query q;
    store_strs l = {0};
    int rc;
    if ((rc = connect_parse(rq, creq_profile_types, &r, &e))) {
        connect_error(rs, connect_code_for(rc), "%s", herr_msg(&e, rc));
        creq_release(&r);
        return;
    }
    if (make_query(rq, rs, &r, NULL, &sel, &q, 0)) goto out;
    if ((rc = store_profile_types(s->st, &q, &l, &e))) {
        store_fail(rs, rc, &e);
        goto out;
    }
    {
        int json = want_json(rq, rs);
        jw w;
        if (json) {
            jw_init(&w, &rs->body);
            jw_obj(&w);
            jw_key(&w, "profileTypes");
            jw_arr(&w);
        }
        for (size_t i = 0; i < l.n; i++) {
            char parts[5][256] = {"", "", "", "", ""};
            const char *p = l.v[i];
            for (int k = 0; k < 5; k++) {
                size_t n = strcspn(p, ":");
                snprintf(parts[k], sizeof parts[k], "%.*s", (int)MIN(n, 255), p);
                p += n;
                if (*p == ':') p++;
            }
            if (json) {
                jw_obj(&w);
                jw_key(&w, "ID"); jw_cstring(&w, l.v[i]);
                jw_key(&w, "name"); jw_cstring(&w, parts[0]);
                jw_key(&w, "sampleType"); jw_cstring(&w, parts[1]);
                jw_key(&w, "sampleUnit"); jw_cstring(&w, parts[2]);
                jw_key(&w, "periodType"); jw_cstring(&w, parts[3]);
                jw_key(&w, "periodUnit"); jw_cstring(&w, parts[4]);
                jw_obj_end(&w);
            } else {
                long m = wire_begin(&rs->body, 1);
                if (m < 0) break;
                wire_put_bytes(&rs->body, 1, l.v[i], strlen(l.v[i]));
                wire_put_bytes(&rs->body, 2, parts[0], strlen(parts[0]));
                wire_put_bytes(&rs->body, 4, parts[1], strlen(parts[1]));
                wire_put_bytes(&rs->body, 5, parts[2], strlen(parts[2]));
                wire_put_bytes(&rs->body, 6, parts[3], strlen(parts[3]));
                wire_put_bytes(&rs->body, 7, parts[4], strlen(parts[4]));
                wire_end(&rs->body, m);
            }
        }
        if (json) {
            jw_arr_end(&w);
            jw_obj_end(&w);
        }
    }
out:
    store_strs_release(&l);
    selector_release(&sel);
    creq_release(&r);
}

/* LabelNames and LabelValues: one store call per matcher, results unioned. */
static void label_query(http_req *rq, http_resp *rs, int values)
{
    server *s = rq->ctx;
    creq r;
    herr e = {0};
    store_strs all = {0};
    int rc;
    if ((rc = connect_parse(rq, values ? creq_label_values : creq_label_names, &r, &e))) {
        connect_error(rs, connect_code_for(rc), "%s", herr_msg(&e, rc));
        creq_release(&r);
        return;
    }
    if (values && (!r.name || !*r.name)) {
        connect_error(rs, "invalid_argument", "LabelValues needs a label name in \"name\"");
        goto out;
    }
    for (size_t i = 0; i < MAX(r.matchers.n, (size_t)1); i++) {
        selector sel;
        store_query q;
        store_strs l = {0};
        if (make_query(rq, rs, &r, r.matchers.n ? r.matchers.v[i] : NULL, &sel, &q, 0)) {
            selector_release(&sel);
            goto out;
        }
        rc = values ? store_label_values(s->st, &q, r.name, &l, &e) : store_label_names(s->st, &q, &l, &e);
        selector_release(&sel);
        if (rc) {
            store_fail(rs, rc, &e);
            store_strs_release(&l);
            goto out;
        }
        strs_merge(&all, &l);
    }
    if (all.n) qsort(all.v, all.n, sizeof *all.v, cmp_str);
    write_names(rq, rs, &all);
out:
    store_strs_release(&all);
    creq_release(&r);
}

void query_label_names(http_req *rq, http_resp *rs) { label_query(rq, rs, 0); }
void query_label_values(http_req *rq, http_resp *rs) { label_query(rq, rs, 1); }

static void write_labelpairs_json(jw *w, const store_labelset *ls)
{
    jw_arr(w);
    for (size_t k = 0; k < ls->n; k++) {
        jw_obj(w);
        jw_key(w, "name");
        jw_cstring(w, ls->labels[k].name);
        jw_key(w, "value");
        jw_cstring(w, ls->labels[k].value);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static void write_labelpairs_proto(buf *b, uint32_t field, const store_labelset *ls)
{
    for (size_t k = 0; k < ls->n; k++) {
        long m = wire_begin(b, field);
        if (m < 0) return;
        wire_put_bytes(b, 1, ls->labels[k].name, strlen(ls->labels[k].name));
        wire_put_bytes(b, 2, ls->labels[k].value, strlen(ls->labels[k].value));
        wire_end(b, m);
    }
}

/* Pyroscope's CompareLabelPairs: pairwise by name then value, then by count. */
static int cmp_labelset(const void *a, const void *b)
{
    const store_labelset *x = *(const store_labelset *const *)a, *y = *(const store_labelset *const *)b;
    for (size_t i = 0; i < x->n && i < y->n; i++) {
        int c = strcmp(x->labels[i].name, y->labels[i].name);
        if (!c) c = strcmp(x->labels[i].value, y->labels[i].value);
        if (c) return c;
    }
    return x->n < y->n ? -1 : x->n > y->n;
}

/*
 * Series: one store call per matcher; the label sets of all of them are
 * merged, sorted and deduplicated (a series matched by two matchers is
 * listed once), as Pyroscope does.
 */
void query_series(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    creq r;
    herr e = {0};
    int rc, json;
    jw w;
    size_t n_lists, n_all = 0;
    store_series_list *lists = NULL;
    const store_labelset **all = NULL;
    if ((rc = connect_parse(rq, creq_series, &r, &e))) {
        connect_error(rs, connect_code_for(rc), "%s", herr_msg(&e, rc));
        creq_release(&r);
        return;
    }
    n_lists = MAX(r.matchers.n, (size_t)1);
    lists = xcalloc(n_lists, sizeof *lists);
    for (size_t i = 0; i < n_lists; i++) {
        selector sel;
        store_query q;
        if (make_query(rq, rs, &r, r.matchers.n ? r.matchers.v[i] : NULL, &sel, &q, 0)) {
            selector_release(&sel);
            goto out;
        }
        rc = store_series(s->st, &q, (const char *const *)r.label_names.v, r.label_names.n, &lists[i], &e);
        selector_release(&sel);
        if (rc) {
            store_fail(rs, rc, &e);
            goto out;
        }
        n_all += lists[i].n;
    }
    all = xcalloc(n_all + 1, sizeof *all);
    n_all = 0;
    for (size_t i = 0; i < n_lists; i++)
        for (size_t k = 0; k < lists[i].n; k++) all[n_all++] = &lists[i].v[k];
    if (n_all) qsort(all, n_all, sizeof *all, cmp_labelset);
    json = want_json(rq, rs);
    if (json) {
        jw_init(&w, &rs->body);
        jw_obj(&w);
        jw_key(&w, "labelsSet");
        jw_arr(&w);
    }
    for (size_t k = 0; k < n_all; k++) {
        if (k && !cmp_labelset(&all[k - 1], &all[k])) continue;
        if (json) {
            jw_obj(&w);
            jw_key(&w, "labels");
            write_labelpairs_json(&w, all[k]);
            jw_obj_end(&w);
        } else {
            long m = wire_begin(&rs->body, 2);
            if (m < 0) break;
            write_labelpairs_proto(&rs->body, 1, all[k]);
            wire_end(&rs->body, m);
        }
    }
    if (json) {
        jw_arr_end(&w);
        jw_obj_end(&w);
    }
out:
    free(all);
    for (size_t i = 0; i < n_lists; i++) store_series_release(&lists[i]);
    free(lists);
    creq_release(&r);
}

/* SelectMergeStacktraces and SelectMergeSpanProfile. */
static void merge_stacktraces(http_req *rq, http_resp *rs, int span)
{
    server *s = rq->ctx;
    creq r;
    herr e = {0};
    selector sel;
    store_query q;
    flame_tree t, out;
    int rc, json;
    if ((rc = connect_parse(rq, span ? creq_merge_span : creq_merge_stacktraces, &r, &e))) {
        connect_error(rs, connect_code_for(rc), "%s", herr_msg(&e, rc));
        creq_release(&r);
        return;
    }
    if (make_query(rq, rs, &r, r.label_selector, &sel, &q, 1)) {
        selector_release(&sel);
        creq_release(&r);
        return;
    }
    if (span) {
        if (!r.span_selector.n) {
            connect_error(rs, "invalid_argument", "SelectMergeSpanProfile needs at least one span ID in span_selector");
            goto done;
        }
        q.span_ids = (const char *const *)r.span_selector.v;
        q.n_span_ids = r.span_selector.n;
    }
    flame_init(&t);
    rc = store_select_merge_tree(s->st, &q, &t, 0, &e);
    if (rc) {
        flame_release(&t);
        store_fail(rs, rc, &e);
        goto done;
    }
    if (r.call_site.n) {
        flame_tree focus;
        rc = flame_focus(&t, r.call_site.v, r.call_site.n, &focus);
        flame_release(&t);
        if (rc) {
            flame_release(&focus);
            connect_error(rs, "resource_exhausted", "stack trace selection failed: %s", hearth_strerror(rc));
            goto done;
        }
        t = focus;
    }
    if ((rc = flame_truncate(&t, max_nodes_of(s, &r), &out))) {
        flame_release(&t);
        connect_error(rs, connect_code_for(rc), "flame graph truncation failed: %s", hearth_strerror(rc));
        goto done;
    }
    flame_release(&t);
    json = want_json(rq, rs);
    if (r.format == 2) {
        /* PROFILE_FORMAT_TREE: the tree bytes in field 2 ("tree", base64 in JSON) */
        buf tree;
        buf_init(&tree, 0);
        rc = write_tree_bytes(&out, &tree);
        if (!rc && json) {
            buf_puts(&rs->body, "{\"tree\":\"");
            rc = b64_encode(tree.data ? tree.data : "", tree.len, &rs->body);
            buf_puts(&rs->body, "\"}");
        } else if (!rc) {
            rc = wire_put_bytes(&rs->body, 2, tree.data ? tree.data : "", tree.len);
        }
        buf_release(&tree);
    } else if (json) {
        buf_puts(&rs->body, "{\"flamegraph\":");
        rc = write_flamegraph(&rs->body, &out, 1, 0);
        buf_puts(&rs->body, "}");
    } else {
        long m = wire_begin(&rs->body, 1);
        rc = m < 0 ? (int)m : write_flamegraph(&rs->body, &out, 0, 0);
        if (!rc) rc = wire_end(&rs->body, m);
    }
    flame_release(&out);
    if (rc) connect_error(rs, "internal", "encoding the flame graph failed: %s", hearth_strerror(rc));
done:
    selector_release(&sel);
    creq_release(&r);
}

void query_merge_stacktraces(http_req *rq, http_resp *rs) { merge_stacktraces(rq, rs, 0); }
void query_merge_span(http_req *rq, http_resp *rs) { merge_stacktraces(rq, rs, 1); }

static void jw_value_type(jw *w, const char *key, const prof_value_type *vt)
{
    jw_key(w, key);
    jw_obj(w);
    jw_key(w, "type");
    jw_i64s(w, vt->type);
    jw_key(w, "unit");
    jw_i64s(w, vt->unit);
    jw_obj_end(w);
}

/*
 * google.v1.Profile in protojson (what Pyroscope answers for JSON requests):
 * the model's indices are the pprof ids (1-based tables, string 0 = "").
 */
static int profile_json(const profile *p, buf *out)
{
    jw w;
    uint32_t locs[1024];
    jw_init(&w, out);
    jw_obj(&w);
    jw_key(&w, "sampleType");
    jw_arr(&w);
    for (uint32_t t = 0; t < p->n_types; t++) {
        jw_obj(&w);
        jw_key(&w, "type"); jw_i64s(&w, p->sample_types[t].type);
        jw_key(&w, "unit"); jw_i64s(&w, p->sample_types[t].unit);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "sample");
    jw_arr(&w);
    for (size_t i = 0; i < p->n_samples && !w.err; i++) {
        size_t depth = prof_stack_locations(p, p->samples[i].stack, locs, ARRAY_SIZE(locs));
        jw_obj(&w);
        jw_key(&w, "locationId");
        jw_arr(&w);
        for (size_t k = 0; k < MIN(depth, ARRAY_SIZE(locs)); k++) jw_i64s(&w, locs[k]);
        jw_arr_end(&w);
        jw_key(&w, "value");
        jw_arr(&w);
        for (uint32_t t = 0; t < p->n_types; t++) jw_i64s(&w, prof_values(p, i)[t]);
        jw_arr_end(&w);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "mapping");
    jw_arr(&w);
    for (uint32_t m = 1; m < p->n_mappings; m++) {
        const prof_mapping *mp = &p->mappings[m];
        jw_obj(&w);
        jw_key(&w, "id"); jw_i64s(&w, m);
        jw_key(&w, "memoryStart"); jw_i64s(&w, (int64_t)mp->memory_start);
        jw_key(&w, "memoryLimit"); jw_i64s(&w, (int64_t)mp->memory_limit);
        jw_key(&w, "fileOffset"); jw_i64s(&w, (int64_t)mp->file_offset);
        jw_key(&w, "filename"); jw_i64s(&w, mp->filename);
        jw_key(&w, "buildId"); jw_i64s(&w, mp->build_id);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "location");
    jw_arr(&w);
    for (uint32_t l = 1; l < p->n_locations && !w.err; l++) {
        const prof_location *lp = &p->locations[l];
        jw_obj(&w);
        jw_key(&w, "id"); jw_i64s(&w, l);
        jw_key(&w, "mappingId"); jw_i64s(&w, lp->mapping);
        jw_key(&w, "address"); jw_i64s(&w, (int64_t)lp->address);
        jw_key(&w, "line");
        jw_arr(&w);
        for (uint32_t k = 0; k < lp->n_lines; k++) {
            const prof_line *ln = &p->lines[lp->first_line + k];
            jw_obj(&w);
            jw_key(&w, "functionId"); jw_i64s(&w, ln->function);
            jw_key(&w, "line"); jw_i64s(&w, ln->line);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "function");
    jw_arr(&w);
    for (uint32_t f = 1; f < p->n_functions; f++) {
        const prof_function *fp = &p->functions[f];
        jw_obj(&w);
        jw_key(&w, "id"); jw_i64s(&w, f);
        jw_key(&w, "name"); jw_i64s(&w, fp->name);
        jw_key(&w, "systemName"); jw_i64s(&w, fp->system_name);
        jw_key(&w, "filename"); jw_i64s(&w, fp->filename);
        jw_key(&w, "startLine"); jw_i64s(&w, fp->start_line);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "stringTable");
    jw_arr(&w);
    for (uint32_t i = 0; i < p->strings.count && !w.err; i++) jw_string(&w, strtab_get(&p->strings, i), strtab_len(&p->strings, i));
    jw_arr_end(&w);
    jw_key(&w, "timeNanos"); jw_i64s(&w, p->time_nanos);
    jw_key(&w, "durationNanos"); jw_i64s(&w, p->duration_nanos);
    jw_value_type(&w, "periodType", &p->period_type);
    jw_key(&w, "period"); jw_i64s(&w, p->period);
    jw_obj_end(&w);
    return w.err;
}

void query_merge_profile(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    creq r;
    herr e = {0};
    selector sel;
    store_query q;
    profile p;
    int rc;
    if ((rc = connect_parse(rq, creq_merge_profile, &r, &e))) {
        connect_error(rs, connect_code_for(rc), "%s", herr_msg(&e, rc));
        creq_release(&r);
        return;
    }
    if (make_query(rq, rs, &r, r.label_selector, &sel, &q, 1)) goto done;
    if (r.span_selector.n) {
        q.span_ids = (const char *const *)r.span_selector.v;
        q.n_span_ids = r.span_selector.n;
    }
    if ((rc = prof_init(&p))) {
        connect_error(rs, "resource_exhausted", "out of memory");
        goto done;
    }
    rc = store_select_merge_profile(s->st, &q, &p, &e);
    if (!rc && r.call_site.n) rc = profile_focus(&p, r.call_site.v, r.call_site.n);
    if (!rc) rc = connect_is_json(rq) ? profile_json(&p, &rs->body) : pprof_encode(&p, &rs->body, 0, &e);
    prof_release(&p);
    if (rc) {
        buf_reset(&rs->body);
        store_fail(rs, rc, &e);
        goto done;
    }
    rs->content_type = connect_is_json(rq) ? "application/json" : "application/proto";
done:
    selector_release(&sel);
    creq_release(&r);
}

static int cmp_ts_total(const void *a, const void *b)
{
    const store_ts *x = a, *y = b;
    double sx = 0, sy = 0;
    for (size_t i = 0; i < x->n_points; i++) sx += x->points[i].value;
    for (size_t i = 0; i < y->n_points; i++) sy += y->points[i].value;
    return sx < sy ? 1 : sx > sy ? -1 : 0;
}

void query_select_series(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    creq r;
    herr e = {0};
    selector sel;
    store_query q;
    store_ts_list l = {0};
    int rc, json;
    int64_t step_ns;
    size_t n_out;
    if ((rc = connect_parse(rq, creq_select_series, &r, &e))) {
        connect_error(rs, connect_code_for(rc), "%s", herr_msg(&e, rc));
        creq_release(&r);
        return;
    }
    if (make_query(rq, rs, &r, r.label_selector, &sel, &q, 1)) goto done;
    step_ns = (int64_t)(r.step * 1e9);
    if (step_ns <= 0) step_ns = MAX((q.end_ns - q.start_ns) / 1000, (int64_t)15000000000LL);
    rc = store_select_series(s->st, &q, step_ns, (const char *const *)r.group_by.v, r.group_by.n,
                             r.aggregation == 1 ? STORE_AGG_AVG : STORE_AGG_SUM, &l, &e);
    if (rc) {
        store_fail(rs, rc, &e);
        goto done;
    }
    n_out = l.n;
    if (r.limit > 0 && (size_t)r.limit < l.n) {
        qsort(l.v, l.n, sizeof *l.v, cmp_ts_total);
        n_out = (size_t)r.limit;
    }
    json = want_json(rq, rs);
    if (json) {
        jw w;
        jw_init(&w, &rs->body);
        jw_obj(&w);
        jw_key(&w, "series");
        jw_arr(&w);
        for (size_t i = 0; i < n_out; i++) {
            jw_obj(&w);
            jw_key(&w, "labels");
            write_labelpairs_json(&w, &l.v[i].labels);
            jw_key(&w, "points");
            jw_arr(&w);
            for (size_t k = 0; k < l.v[i].n_points; k++) {
                jw_obj(&w);
                jw_key(&w, "value");
                jw_double(&w, l.v[i].points[k].value);
                jw_key(&w, "timestamp");
                jw_i64s(&w, l.v[i].points[k].ts_ns / MS);
                jw_obj_end(&w);
            }
            jw_arr_end(&w);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
        jw_obj_end(&w);
    } else {
        for (size_t i = 0; i < n_out; i++) {
            long m = wire_begin(&rs->body, 1);
            if (m < 0) break;
            write_labelpairs_proto(&rs->body, 1, &l.v[i].labels);
            for (size_t k = 0; k < l.v[i].n_points; k++) {
                long pm = wire_begin(&rs->body, 2);
                uint64_t bits;
                double v = l.v[i].points[k].value;
                memcpy(&bits, &v, sizeof bits);
                if (pm < 0) break;
                if (bits) wire_put_fixed64(&rs->body, 1, bits);
                wire_put_uint_nz(&rs->body, 2, (uint64_t)(l.v[i].points[k].ts_ns / MS));
                wire_end(&rs->body, pm);
            }
            wire_end(&rs->body, m);
        }
    }
    store_ts_release(&l);
done:
    selector_release(&sel);
    creq_release(&r);
}

void query_diff(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    creq r;
    herr e = {0};
    selector sl, sr;
    store_query ql, qr;
    flame_tree t, out;
    int rc, json;
    uint32_t max_nodes;
    if ((rc = connect_parse(rq, creq_diff, &r, &e))) {
        connect_error(rs, connect_code_for(rc), "%s", herr_msg(&e, rc));
        creq_release(&r);
        return;
    }
    if (!r.left || !r.right) {
        connect_error(rs, "invalid_argument", "Diff needs both \"left\" and \"right\" selections");
        creq_release(&r);
        return;
    }
    selector_init(&sr);
    if (make_query(rq, rs, r.left, r.left->label_selector, &sl, &ql, 1) ||
        make_query(rq, rs, r.right, r.right->label_selector, &sr, &qr, 1))
        goto done;
    flame_init(&t);
    rc = store_select_merge_tree(s->st, &ql, &t, 0, &e);
    if (!rc) rc = store_select_merge_tree(s->st, &qr, &t, 1, &e);
    if (rc) {
        flame_release(&t);
        store_fail(rs, rc, &e);
        goto done;
    }
    t.is_diff = 1;
    max_nodes = max_nodes_of(s, r.left);
    if ((rc = flame_truncate(&t, max_nodes, &out))) {
        flame_release(&t);
        connect_error(rs, connect_code_for(rc), "flame graph truncation failed");
        goto done;
    }
    flame_release(&t);
    out.is_diff = 1;
    json = want_json(rq, rs);
    if (json) {
        buf_puts(&rs->body, "{\"flamegraph\":");
        rc = write_flamegraph(&rs->body, &out, 1, 1);
        buf_puts(&rs->body, "}");
    } else {
        long m = wire_begin(&rs->body, 1);
        rc = m < 0 ? (int)m : write_flamegraph(&rs->body, &out, 0, 1);
        if (!rc) rc = wire_end(&rs->body, m);
    }
    flame_release(&out);
    if (rc) connect_error(rs, "internal", "encoding the diff failed: %s", hearth_strerror(rc));
done:
    selector_release(&sl);
    selector_release(&sr);
    creq_release(&r);
}

void query_profile_stats(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    store_tenant_stats st;
    herr e = {0};
    int rc = store_profile_stats(s->st, rq->tenant, &st, &e);
    if (rc) {
        store_fail(rs, rc, &e);
        return;
    }
    if (want_json(rq, rs)) {
        jw w;
        jw_init(&w, &rs->body);
        jw_obj(&w);
        jw_key(&w, "dataIngested");
        jw_bool(&w, st.has_data);
        jw_key(&w, "oldestProfileTime");
        jw_i64s(&w, st.has_data ? st.oldest_ns / MS : 0);
        jw_key(&w, "newestProfileTime");
        jw_i64s(&w, st.has_data ? st.newest_ns / MS : 0);
        jw_obj_end(&w);
    } else {
        wire_put_uint_nz(&rs->body, 1, (uint64_t)st.has_data);
        if (st.has_data) {
            wire_put_uint_nz(&rs->body, 2, (uint64_t)(st.oldest_ns / MS));
            wire_put_uint_nz(&rs->body, 3, (uint64_t)(st.newest_ns / MS));
        }
    }
}

/* ---------------- legacy render ---------------- */

/*
 * A legacy query: `process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="x"}`,
 * the form Pyroscope's parseQuery also accepts, `{__name__="<profile type>",
 * service_name="x"}`, or the 0.x form `app.cpu{k="v"}` (mapped through the
 * ingest naming table, naming_type_id). Writes the profile type into pt and
 * the selector text (without the __name__ matcher) into seltext.
 */
static int legacy_query(const char *query, char *pt, size_t pt_size, char *seltext, size_t sel_size, herr *e)
{
    const char *brace;
    size_t n;
    if (!query || !*query) return herr_set(e, HE_FORMAT, "missing query parameter: use query=<profile type>{label=\"value\"}");
    if (query[0] == '{') {
        /* find the __name__="..." matcher (outside quoted values) and cut it out */
        const char *p = query + 1, *m = NULL, *v = NULL, *vend = NULL;
        int inq = 0;
        size_t ql = strlen(query);
        if (ql >= sel_size) return herr_set(e, HE_TOOBIG, "query is too long");
        for (; *p; p++) {
            if (inq) {
                if (*p == '\\' && p[1]) p++;
                else if (*p == '"') inq = 0;
                continue;
            }
            if (*p == '"') { inq = 1; continue; }
            if ((p[-1] == '{' || p[-1] == ',' || p[-1] == ' ') && !strncmp(p, "__name__", 8)) {
                const char *q = p + 8;
                while (*q == ' ') q++;
                if (*q != '=' || q[1] == '~' ) continue;
                q++;
                while (*q == ' ') q++;
                if (*q != '"') continue;
                m = p;
                v = q + 1;
                vend = strchr(v, '"');
                break;
            }
        }
        if (!m || !vend) return herr_set(e, HE_FORMAT, "query \"%.100s\" has no __name__=\"<profile type>\" matcher", query);
        if ((size_t)(vend - v) >= pt_size) return herr_set(e, HE_TOOBIG, "profile type in query is too long");
        memcpy(pt, v, (size_t)(vend - v));
        pt[vend - v] = 0;
        if (!profile_type_valid(pt))
            return herr_set(e, HE_FORMAT, "__name__=\"%.100s\" is not a profile type (name:type:unit:period_type:period_unit)", pt);
        {
            /* seltext = query without the matcher and one comma next to it */
            const char *after = vend + 1;
            size_t head = (size_t)(m - query);
            while (*after == ' ') after++;
            if (*after == ',') after++;
            else {
                while (head > 1 && query[head - 1] == ' ') head--;
                if (head > 1 && query[head - 1] == ',') head--;
            }
            snprintf(seltext, sel_size, "%.*s%s", (int)head, query, after);
        }
        return 0;
    }
    brace = strchr(query, '{');
    n = brace ? (size_t)(brace - query) : strlen(query);
    if (n >= pt_size) return herr_set(e, HE_TOOBIG, "profile type in query is too long");
    memcpy(pt, query, n);
    pt[n] = 0;
    snprintf(seltext, sel_size, "%s", brace ? brace : "{}");
    if (profile_type_valid(pt)) return 0;
    {
        /* app.cpu{...}: service_name=app plus the type of the suffix */
        char *dot = strrchr(pt, '.');
        char app[512];
        size_t app_len;
        const naming_type *nt = dot ? naming_suffix(pt, &app_len) : NULL;
        if (!nt) return herr_set(e, HE_FORMAT, "query \"%.100s\" does not start with a profile type (name:type:unit:period_type:period_unit) or app.cpu", query);
        *dot = 0;
        snprintf(app, sizeof app, "%s", pt);
        naming_type_id(nt, pt, pt_size);
        {
            size_t sl = strlen(seltext);
            char inner[2048];
            if (sl < 2 || seltext[sl - 1] != '}') return herr_set(e, HE_FORMAT, "selector in query must end with '}'");
            if (sl > 2000 || strlen(app) > 500) return herr_set(e, HE_TOOBIG, "query is too long");
            snprintf(inner, sizeof inner, "%.*s", (int)(sl - 2), seltext + 1);
            snprintf(seltext, sel_size, "{service_name=\"%.500s\"%s%.2000s}", app, inner[0] ? "," : "", inner);
        }
    }
    return 0;
}

static int legacy_time(http_req *rq, const char *name, int64_t dflt, int64_t *out, herr *e)
{
    const char *v = http_arg(rq, name);
    if (!v || !*v) {
        *out = dflt;
        return 0;
    }
    if (parse_time_ns(v, now_ns(), out)) return herr_set(e, HE_FORMAT, "parameter %s=\"%.40s\" is not a time", name, v);
    return 0;
}

static uint32_t legacy_max_nodes(http_req *rq, const server *s)
{
    const char *v = http_arg(rq, "max-nodes");
    if (!v) v = http_arg(rq, "maxNodes");
    if (v && *v) {
        long long n = strtoll(v, NULL, 10);
        if (n > 0) return (uint32_t)MIN(n, 1LL << 20);
    }
    return s->cfg.max_nodes;
}

/* One side: tree side `side` of t, and (optionally) its timeline. */
static int legacy_side(http_req *rq, const char *qname, const char *fname, const char *uname, flame_tree *t, int side,
                       int64_t **tl, size_t *n_tl, int64_t *tl_start, int64_t *tl_step, char *pt, size_t pt_size, herr *e)
{
    server *s = rq->ctx;
    char seltext[4096];
    selector sel;
    store_query q;
    int64_t from, until;
    int rc;
    if ((rc = legacy_query(http_arg(rq, qname), pt, pt_size, seltext, sizeof seltext, e))) return rc;
    if ((rc = legacy_time(rq, fname, now_ns() - 3600LL * 1000000000LL, &from, e))) return rc;
    if ((rc = legacy_time(rq, uname, now_ns(), &until, e))) return rc;
    if (until < from) return herr_set(e, HE_FORMAT, "until is before from");
    if ((rc = selector_parse(&sel, seltext, strlen(seltext), e))) {
        selector_release(&sel);
        return rc;
    }
    memset(&q, 0, sizeof q);
    q.tenant = rq->tenant;
    q.profile_type = pt;
    q.sel = &sel;
    q.start_ns = from;
    q.end_ns = until;
    rc = store_select_merge_tree(s->st, &q, t, side, e);
    if (!rc && tl) {
        /* timeline: totals per step, zero-filled, in seconds */
        int64_t span = until - from, step = 10LL * 1000000000LL;
        store_ts_list l = {0};
        while (span / step > 1000) step *= 2;
        rc = store_select_series(s->st, &q, step, NULL, 0, STORE_AGG_SUM, &l, e);
        if (!rc) {
            size_t n = (size_t)(span / step) + 1;
            *tl = xcalloc(n, sizeof **tl);
            *n_tl = n;
            *tl_start = from / 1000000000LL;
            *tl_step = step / 1000000000LL;
            for (size_t i = 0; i < l.n; i++)
                for (size_t k = 0; k < l.v[i].n_points; k++) {
                    int64_t idx = (l.v[i].points[k].ts_ns - from) / step;
                    double pv = l.v[i].points[k].value;
                    int64_t iv = pv >= 9.2e18 ? INT64_MAX : pv <= -9.2e18 ? INT64_MIN : (int64_t)pv;
                    if (idx >= 0 && (size_t)idx < n) (*tl)[idx] = prof_sat_add((*tl)[idx], iv);
                }
        }
        store_ts_release(&l);
    }
    selector_release(&sel);
    return rc;
}

static void render(http_req *rq, http_resp *rs, int diff)
{
    server *s = rq->ctx;
    herr e = {0};
    flame_tree t, out;
    int64_t *tl = NULL, tl_start = 0, tl_step = 10;
    size_t n_tl = 0;
    char pt[512], pt2[512];
    int rc;
    const char *format = http_arg(rq, "format");
    if (format && *format && strcmp(format, "json")) {
        http_error(rs, 400, "format=%.32s is not supported here: use format=json (or the querier API for pprof)", format);
        return;
    }
    flame_init(&t);
    if (!diff) {
        rc = legacy_side(rq, "query", "from", "until", &t, 0, &tl, &n_tl, &tl_start, &tl_step, pt, sizeof pt, &e);
    } else {
        rc = legacy_side(rq, "leftQuery", "leftFrom", "leftUntil", &t, 0, NULL, NULL, NULL, NULL, pt, sizeof pt, &e);
        if (!rc) rc = legacy_side(rq, "rightQuery", "rightFrom", "rightUntil", &t, 1, NULL, NULL, NULL, NULL, pt2, sizeof pt2, &e);
        t.is_diff = 1;
    }
    if (rc) {
        flame_release(&t);
        free(tl);
        http_error(rs, http_status_for(rc), "render: %s", herr_msg(&e, rc));
        return;
    }
    rc = flame_truncate(&t, legacy_max_nodes(rq, s), &out);
    flame_release(&t);
    if (rc) {
        free(tl);
        http_error(rs, 500, "render: flame graph truncation failed");
        return;
    }
    if (diff) out.is_diff = 1;
    {
        char parts[5][128] = {"", "", "", "", ""};
        const char *p = pt;
        flamebearer_meta meta;
        flamebearer_timeline timeline;
        for (int k = 0; k < 5; k++) {
            size_t n = strcspn(p, ":");
            snprintf(parts[k], sizeof parts[k], "%.*s", (int)MIN(n, 127), p);
            p += n;
            if (*p == ':') p++;
        }
        memset(&meta, 0, sizeof meta);
        /* as Pyroscope's ExportToFlamebearer: name is the sample type,
         * sampleRate 1e9 only for cpu (ticks are nanoseconds), else 100 */
        meta.name = parts[1];
        meta.spy_name = "unknown";
        meta.units = flamebearer_units(parts[1], parts[2]);
        meta.sample_rate = !strcmp(parts[1], "cpu") ? 1000000000 : 100;
        if (tl) {
            timeline.start_time = tl_start;
            timeline.samples = tl;
            timeline.n_samples = n_tl;
            timeline.duration_delta = tl_step;
            meta.timeline = &timeline;
        }
        rc = flamebearer_write(&out, &meta, &rs->body);
    }
    flame_release(&out);
    free(tl);
    if (rc) {
        http_error(rs, 500, "render: encoding failed: %s", hearth_strerror(rc));
        return;
    }
    rs->content_type = "application/json";
}

void query_render(http_req *rq, http_resp *rs) { render(rq, rs, 0); }
void query_render_diff(http_req *rq, http_resp *rs) { render(rq, rs, 1); }

static void legacy_labels(http_req *rq, http_resp *rs, int values)
{
    server *s = rq->ctx;
    herr e = {0};
    const char *query = http_arg(rq, "query");
    const char *label = http_arg(rq, "label");
    char pt[512] = "", seltext[4096] = "{}";
    selector sel;
    store_query q;
    store_strs l = {0};
    int64_t from, until;
    int rc;
    jw w;
    if (values && (!label || !*label)) {
        http_error(rs, 400, "label-values needs label=NAME");
        return;
    }
    if (query && *query && (rc = legacy_query(query, pt, sizeof pt, seltext, sizeof seltext, &e))) {
        /* a bare selector without a type is fine here */
        if (query[0] == '{') {
            snprintf(seltext, sizeof seltext, "%s", query);
            pt[0] = 0;
        } else {
            http_error(rs, 400, "%s", herr_msg(&e, rc));
            return;
        }
    }
    if ((rc = legacy_time(rq, "from", 0, &from, &e)) || (rc = legacy_time(rq, "until", now_ns(), &until, &e))) {
        http_error(rs, 400, "%s", herr_msg(&e, rc));
        return;
    }
    if ((rc = selector_parse(&sel, seltext, strlen(seltext), &e))) {
        selector_release(&sel);
        http_error(rs, 400, "invalid selector: %s", herr_msg(&e, rc));
        return;
    }
    memset(&q, 0, sizeof q);
    q.tenant = rq->tenant;
    q.profile_type = pt[0] ? pt : NULL;
    q.sel = &sel;
    q.start_ns = from;
    q.end_ns = until;
    /* Pyroscope answers label-values for __name__ with profile type IDs */
    if (values && !strcmp(label, "__name__")) rc = store_profile_types(s->st, &q, &l, &e);
    else rc = values ? store_label_values(s->st, &q, label, &l, &e) : store_label_names(s->st, &q, &l, &e);
    selector_release(&sel);
    if (rc) {
        http_error(rs, http_status_for(rc), "%s", herr_msg(&e, rc));
        return;
    }
    rs->content_type = "application/json";
    jw_init(&w, &rs->body);
    jw_arr(&w);
    for (size_t i = 0; i < l.n; i++) jw_cstring(&w, l.v[i]);
    jw_arr_end(&w);
    store_strs_release(&l);
}

void query_legacy_label_values(http_req *rq, http_resp *rs) { legacy_labels(rq, rs, 1); }
void query_legacy_labels(http_req *rq, http_resp *rs) { legacy_labels(rq, rs, 0); }

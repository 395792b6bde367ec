/*
 * flame.c: the flame graph tree (see flame.h).
 *
 * Totals are kept eagerly: adding a stack adds its value to every node on
 * the path. Adding a profile memoizes, per profile stack node, the flame node
 * its path ends in, so each distinct stack prefix is expanded into frame
 * names once, however many samples share it.
 *
 * Invariant: a node is created after its parent, so parent < child; the
 * encoders and truncation rely on it only through the child lists.
 */
#include "core/common.h"
#include "core/mem.h"
#include "profile/flame.h"

int flame_init(flame_tree *t)
{
    memset(t, 0, sizeof *t);
    strtab_init(&t->names);
    strtab_init(&t->files);
    hmap64_init(&t->children);
    if (strtab_intern_cstr(&t->names, "total") != 0 || strtab_intern_cstr(&t->names, "other") != 1 ||
        strtab_intern(&t->files, "", 0) != 0)
        return -ENOMEM;
    t->nodes = calloc(64, sizeof *t->nodes);
    if (!t->nodes) return -ENOMEM;
    t->cap_nodes = 64;
    t->n_nodes = 1;
    return 0;
}

void flame_release(flame_tree *t)
{
    strtab_release(&t->names);
    strtab_release(&t->files);
    hmap64_release(&t->children);
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

int32_t flame_child(flame_tree *t, uint32_t parent, uint32_t name_id)
{
    uint64_t key = ((uint64_t)parent << 32) | name_id;
    uint32_t id;
    if (t->n_nodes == t->cap_nodes) {
        size_t cap = t->cap_nodes;
        if (t->n_nodes >= INT32_MAX || HGROW(t->nodes, cap, (size_t)t->n_nodes + 1)) return -ENOMEM;
        t->cap_nodes = (uint32_t)MIN(cap, (size_t)INT32_MAX);
    }
    id = hmap64_get_or_put(&t->children, key, t->n_nodes);
    if (id == HMAP_EMPTY) return -ENOMEM;
    if (id == t->n_nodes) {
        flame_node *n = &t->nodes[id];
        memset(n, 0, sizeof *n);
        n->name = name_id;
        n->parent = parent;
        n->next_sibling = t->nodes[parent].first_child;
        t->nodes[parent].first_child = id;
        t->n_nodes++;
    }
    return (int32_t)id;
}

static void add_value(flame_tree *t, uint32_t leaf, int64_t v, int side)
{
    uint32_t n = leaf;
    /* Saturating: values come from input, and 3 x 2^62 must not wrap. */
    if (side) { t->is_diff = 1; t->nodes[leaf].self2 = prof_sat_add(t->nodes[leaf].self2, v); }
    else t->nodes[leaf].self = prof_sat_add(t->nodes[leaf].self, v);
    for (;;) {
        if (side) t->nodes[n].total2 = prof_sat_add(t->nodes[n].total2, v);
        else t->nodes[n].total = prof_sat_add(t->nodes[n].total, v);
        if (n == 0) break;
        n = t->nodes[n].parent;
    }
}

int32_t flame_add_names(flame_tree *t, const uint32_t *names, size_t n, int64_t v, int side)
{
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = flame_child(t, node, names[i]);
        if (c < 0) return c;
        node = (uint32_t)c;
    }
    if (n > t->max_depth) t->max_depth = (uint32_t)n;
    add_value(t, node, v, side);
    return (int32_t)node;
}

static int span_match(const profile *p, size_t i, const flame_filter *f)
{
    const char *span;
    if (!f || !f->n_span_ids) return 1;
    span = prof_sample_label(p, i, "span_id");
    if (!span) return 0;
    for (size_t k = 0; k < f->n_span_ids; k++)
        if (!strcmp(span, f->span_ids[k])) return 1;
    return 0;
}

/*
 * The flame node that profile stack node `pn` ends in, expanding the
 * location's frames (inlined: outermost first) under the parent's node.
 */
static int32_t node_for(flame_tree *t, const profile *p, uint32_t pn, int32_t *memo, uint32_t *depth_memo)
{
    uint32_t chain[64];
    size_t n_chain = 0;
    char name[1024];
    int32_t node;
    /* Walk up to the nearest memoized ancestor, iteratively (stacks can be deep). */
    uint32_t cur = pn;
    while (cur != 0 && memo[cur] < 0) {
        if (n_chain == ARRAY_SIZE(chain)) {
            /* Resolve the deeper part first so the chain stays bounded. */
            int32_t r = node_for(t, p, cur, memo, depth_memo);
            if (r < 0) return r;
            break;
        }
        chain[n_chain++] = cur;
        cur = p->nodes[cur].parent;
    }
    while (n_chain) {
        uint32_t c = chain[--n_chain];
        uint32_t par = p->nodes[c].parent;
        const prof_location *l = &p->locations[p->nodes[c].location];
        uint32_t depth = par ? depth_memo[par] : 0;
        node = par ? memo[par] : 0;
        uint32_t n_frames = l->n_lines ? l->n_lines : 1;
        for (uint32_t k = n_frames; k-- > 0;) {
            int32_t nid;
            prof_frame_name(p, p->nodes[c].location, k, name, sizeof name);
            nid = strtab_intern_cstr(&t->names, name);
            if (nid < 0) return nid;
            node = flame_child(t, (uint32_t)node, (uint32_t)nid);
            if (node < 0) return node;
            if (t->nodes[node].file == 0 && k < l->n_lines) {
                const prof_line *ln = &p->lines[l->first_line + k];
                if (ln->function && ln->function < p->n_functions) {
                    const char *file = prof_s(p, p->functions[ln->function].filename);
                    if (*file) {
                        int32_t fid = strtab_intern_cstr(&t->files, file);
                        if (fid < 0) return fid;
                        t->nodes[node].file = (uint32_t)fid;
                    }
                    t->nodes[node].line = ln->line;
                }
            }
            depth++;
        }
        memo[c] = node;
        depth_memo[c] = depth;
        if (depth > t->max_depth) t->max_depth = depth;
    }
    return memo[pn];
}

int flame_add_profile(flame_tree *t, const profile *p, int type, const flame_filter *f, int side)
{
    int32_t *memo;
    uint32_t *depth_memo;
    int rc = 0;
    if (type < 0 || (uint32_t)type >= p->n_types) return HE_USAGE;
    memo = hmallocarray(p->n_nodes, sizeof *memo);
    depth_memo = hmallocarray(p->n_nodes, sizeof *depth_memo);
    if (!memo || !depth_memo) { free(memo); free(depth_memo); return -ENOMEM; }
    memset(memo, 0xff, p->n_nodes * sizeof *memo);
    memo[0] = 0;
    depth_memo[0] = 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        int64_t v = p->values[i * p->n_types + (size_t)type];
        uint32_t stack = p->samples[i].stack;
        int32_t leaf;
        if (!v || stack >= p->n_nodes || !span_match(p, i, f)) continue;
        leaf = memo[stack] >= 0 ? memo[stack] : node_for(t, p, stack, memo, depth_memo);
        if (leaf < 0) { rc = leaf; break; }
        add_value(t, (uint32_t)leaf, v, side);
    }
    free(memo);
    free(depth_memo);
    return rc;
}

/* Sorting children by name (bytewise, shorter first on a common prefix). */
static int cmp_by_name(const void *a, const void *b, void *arg)
{
    const flame_tree *t = arg;
    const flame_node *x = &t->nodes[*(const uint32_t *)a], *y = &t->nodes[*(const uint32_t *)b];
    uint32_t lx = strtab_len(&t->names, x->name), ly = strtab_len(&t->names, y->name);
    int c = memcmp(strtab_get(&t->names, x->name), strtab_get(&t->names, y->name), MIN(lx, ly));
    return c ? c : (lx > ly) - (lx < ly);
}

void flame_sort(flame_tree *t)
{
    uint32_t *kids = NULL;
    size_t cap = 0;
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        size_t n = 0;
        for (uint32_t c = t->nodes[i].first_child; c; c = t->nodes[c].next_sibling) {
            if (HGROW(kids, cap, n + 1)) { free(kids); return; }
            kids[n++] = c;
        }
        if (n < 2) continue;
        qsort_r(kids, n, sizeof *kids, cmp_by_name, t);
        t->nodes[i].first_child = kids[0];
        for (size_t k = 0; k + 1 < n; k++) t->nodes[kids[k]].next_sibling = kids[k + 1];
        t->nodes[kids[n - 1]].next_sibling = 0;
    }
    free(kids);
}

int flame_walk(const flame_tree *t, int (*fn)(const flame_tree *, uint32_t, uint32_t, void *), void *arg)
{
    struct frame { uint32_t node, depth; } *stack = NULL;
    size_t cap = 0, n = 0;
    int rc = 0;
    if (!t->n_nodes) return 0;
    if (HGROW(stack, cap, 1)) return -ENOMEM;
    stack[n++] = (struct frame){0, 0};
    while (n) {
        struct frame f = stack[--n];
        size_t first = n;
        if ((rc = fn(t, f.node, f.depth, arg)) != 0) break;
        for (uint32_t c = t->nodes[f.node].first_child; c; c = t->nodes[c].next_sibling) {
            if (HGROW(stack, cap, n + 1)) { rc = -ENOMEM; goto out; }
            stack[n++] = (struct frame){c, f.depth + 1};
        }
        /* reverse so the first child is visited first */
        for (size_t a = first, b = n; a + 1 < b; a++, b--) {
            struct frame tmp = stack[a];
            stack[a] = stack[b - 1];
            stack[b - 1] = tmp;
        }
    }
out:
    free(stack);
    return rc;
}

static int64_t node_weight(const flame_node *n) { return MAX(n->total, n->total2); }

/*
 * The k-th largest of w[0..n) (k < n), by quickselect (median-of-three
 * pivot, three-way partition so long runs of equal weights, common at the
 * cut, finish in one pass): O(n) expected instead of sorting all nodes.
 * Permutes w.
 */
static int64_t kth_largest(int64_t *w, size_t n, size_t k)
{
    size_t lo = 0, hi = n;  /* the answer's rank is in [lo, hi) */
    while (hi - lo > 1) {
        int64_t a = w[lo], b = w[lo + (hi - lo) / 2], c = w[hi - 1];
        int64_t p = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        /* Partition [lo, hi) into > p, == p, < p (descending order). */
        size_t gt = lo, i = lo, lt = hi;
        while (i < lt) {
            int64_t x = w[i];
            if (x > p) { w[i] = w[gt]; w[gt++] = x; i++; }
            else if (x < p) { w[i] = w[--lt]; w[lt] = x; }
            else i++;
        }
        if (k < gt) hi = gt;
        else if (k < lt) return p;
        else lo = lt;
    }
    return w[lo];
}

int flame_truncate(const flame_tree *t, uint32_t max_nodes, flame_tree *out)
{
    int64_t threshold = INT64_MIN;
    uint64_t ties_left = UINT64_MAX;  /* nodes equal to the threshold still allowed */
    uint32_t *map = NULL, *stack = NULL;
    size_t cap = 0, n = 0;
    int rc = flame_init(out);
    if (rc) return rc;
    out->is_diff = t->is_diff;
    if (max_nodes && t->n_nodes > max_nodes) {
        int64_t *w = hmallocarray(t->n_nodes, sizeof *w);
        if (!w) return -ENOMEM;
        for (uint32_t i = 0; i < t->n_nodes; i++) w[i] = node_weight(&t->nodes[i]);
        threshold = kth_largest(w, t->n_nodes, max_nodes - 1);
        /* Many nodes often tie at the cut (one sample each): keep only as
         * many tied nodes as fit, first come in depth-first order, so the
         * result never exceeds max_nodes (plus the "other" nodes). */
        uint32_t above = 0;
        for (uint32_t i = 0; i < t->n_nodes; i++) above += node_weight(&t->nodes[i]) > threshold;
        ties_left = max_nodes - above;
        if (node_weight(&t->nodes[0]) == threshold) ties_left--;  /* the root is always kept */
        free(w);
    }
    map = hmallocarray(t->n_nodes, sizeof *map);
    if (!map) return -ENOMEM;
    map[0] = 0;
    out->nodes[0] = t->nodes[0];
    out->nodes[0].first_child = out->nodes[0].next_sibling = 0;
    /* Depth-first over t: copy kept children, sum dropped ones into "other". */
    if (HGROW(stack, cap, 1)) { free(map); return -ENOMEM; }
    stack[n++] = 0;
    while (n) {
        uint32_t src = stack[--n];
        int64_t o_total = 0, o_total2 = 0;
        int any_dropped = 0;
        for (uint32_t c = t->nodes[src].first_child; c; c = t->nodes[c].next_sibling) {
            const flame_node *cn = &t->nodes[c];
            int64_t wt = node_weight(cn);
            int keep = wt > threshold || (wt == threshold && ties_left > 0);
            if (keep && wt == threshold && ties_left != UINT64_MAX) ties_left--;
            if (!keep) {
                o_total = prof_sat_add(o_total, cn->total);
                o_total2 = prof_sat_add(o_total2, cn->total2);
                any_dropped = 1;
                continue;
            }
            int32_t name = strtab_intern(&out->names, strtab_get(&t->names, cn->name), strtab_len(&t->names, cn->name));
            if (name < 0) { rc = name; goto out; }
            int32_t id = flame_child(out, map[src], (uint32_t)name);
            if (id < 0) { rc = id; goto out; }
            flame_node *on = &out->nodes[id];
            on->total = cn->total; on->self = cn->self;
            on->total2 = cn->total2; on->self2 = cn->self2;
            on->line = cn->line;
            if (cn->file) {
                int32_t fid = strtab_intern_cstr(&out->files, strtab_get(&t->files, cn->file));
                if (fid < 0) { rc = fid; goto out; }
                on->file = (uint32_t)fid;
            }
            map[c] = (uint32_t)id;
            if (HGROW(stack, cap, n + 1)) { rc = -ENOMEM; goto out; }
            stack[n++] = c;
        }
        if (any_dropped) {
            int32_t id = flame_child(out, map[src], 1);
            if (id < 0) { rc = id; goto out; }
            flame_node *on = &out->nodes[id];
            on->total = prof_sat_add(on->total, o_total); on->self = prof_sat_add(on->self, o_total);
            on->total2 = prof_sat_add(on->total2, o_total2); on->self2 = prof_sat_add(on->self2, o_total2);
        }
    }
    out->max_depth = t->max_depth;
    flame_sort(out);
out:
    free(map);
    free(stack);
    return rc;
}

struct levels_ctx {
    flame_levels_out *out;
    size_t *cap;           /* per level capacity */
    int64_t *x_left, *x_right;  /* absolute x of each node, by node id */
    int64_t *end_left, *end_right; /* per depth: end of the last node written */
    int diff;
    int err;
};

static int push_level(struct levels_ctx *c, uint32_t depth, const int64_t *vals, size_t n)
{
    flame_levels_out *o = c->out;
    if (depth >= o->n_levels) return HE_USAGE;
    if (HGROW(o->levels[depth], c->cap[depth], o->n_level[depth] + n)) return -ENOMEM;
    memcpy(o->levels[depth] + o->n_level[depth], vals, n * sizeof *vals);
    o->n_level[depth] += n;
    return 0;
}

static inline int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int levels_visit(const flame_tree *t, uint32_t node, uint32_t depth, void *arg)
{
    struct levels_ctx *c = arg;
    const flame_node *n = &t->nodes[node];
    /* Children get x from the parent's x plus earlier siblings' totals. */
    int64_t xl = c->x_left[node], xr = c->x_right[node];
    int64_t cl = xl, cr = xr;
    for (uint32_t k = n->first_child; k; k = t->nodes[k].next_sibling) {
        c->x_left[k] = cl;
        c->x_right[k] = cr;
        cl = prof_sat_add(cl, t->nodes[k].total);
        cr = prof_sat_add(cr, t->nodes[k].total2);
    }
    if (n->self > c->out->max_self) c->out->max_self = n->self;
    if (c->diff) {
        int64_t v[7] = {sat_sub(xl, c->end_left[depth]), n->total, n->self,
                        sat_sub(xr, c->end_right[depth]), n->total2, n->self2, n->name};
        c->end_left[depth] = prof_sat_add(xl, n->total);
        c->end_right[depth] = prof_sat_add(xr, n->total2);
        return push_level(c, depth, v, 7);
    }
    int64_t v[4] = {sat_sub(xl, c->end_left[depth]), n->total, n->self, n->name};
    c->end_left[depth] = prof_sat_add(xl, n->total);
    return push_level(c, depth, v, 4);
}

static int count_depth(const flame_tree *t, uint32_t node, uint32_t depth, void *arg)
{
    uint32_t *max = arg;
    (void)t; (void)node;
    if (depth + 1 > *max) *max = depth + 1;
    return 0;
}

int flame_levels(flame_tree *t, flame_levels_out *out)
{
    struct levels_ctx c;
    uint32_t depth = 0;
    int rc;
    memset(out, 0, sizeof *out);
    memset(&c, 0, sizeof c);
    flame_sort(t);
    if ((rc = flame_walk(t, count_depth, &depth))) return rc;
    out->n_levels = depth;
    out->levels = calloc(depth ? depth : 1, sizeof *out->levels);
    out->n_level = calloc(depth ? depth : 1, sizeof *out->n_level);
    c.cap = calloc(depth ? depth : 1, sizeof *c.cap);
    c.end_left = calloc(depth ? depth : 1, sizeof *c.end_left);
    c.end_right = calloc(depth ? depth : 1, sizeof *c.end_right);
    c.x_left = calloc(t->n_nodes ? t->n_nodes : 1, sizeof *c.x_left);
    c.x_right = calloc(t->n_nodes ? t->n_nodes : 1, sizeof *c.x_right);
    c.out = out;
    c.diff = t->is_diff;
    if (!out->levels || !out->n_level || !c.cap || !c.end_left || !c.end_right || !c.x_left || !c.x_right) rc = -ENOMEM;
    else rc = flame_walk(t, levels_visit, &c);
    free(c.cap); free(c.end_left); free(c.end_right); free(c.x_left); free(c.x_right);
    if (rc) flame_levels_release(out);
    return rc;
}

void flame_levels_release(flame_levels_out *out)
{
    for (size_t i = 0; i < out->n_levels && out->levels; i++) free(out->levels[i]);
    free(out->levels);
    free(out->n_level);
    memset(out, 0, sizeof *out);
}

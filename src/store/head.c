/*
 * head.c: the in-memory head of one (tenant, time partition): recent
 * profiles before they are flushed to a block.
 *
 * Invariants: `sym` holds only symbols some row references (ingest maps
 * just the stacks of non-zero samples), deduplicated across every profile
 * of the head (interned by content), so a flush can write it as the block's
 * symbol tables unchanged. Rows live in four parallel arrays (stack, value,
 * span, trace); a profile of a series is a contiguous run of rows. A series is
 * found by its canonical label text ("name=value\x01..." sorted by name).
 *
 * Ingest maps a profile's ids into the head lazily with per-call arrays
 * (string, mapping, function, location, node -> head id), so each distinct
 * symbol of the incoming profile costs one intern and each sample one
 * array lookup.
 *
 * Stacks: interning every node of an incoming stack into the head's node
 * index costs a random probe into a table of all the head's nodes per node
 * (hundreds of thousands of them: a cache miss each). Most stacks of a
 * profile were already sent by earlier profiles of the same service, so
 * the head keeps stack_cache: a 128-bit fingerprint of the stack's content
 * (the fingerprints of its locations, root to leaf, see below) -> the
 * head's leaf node. Fingerprints of incoming nodes are computed from their
 * parent's in one forward pass over the node table (sequential, in cache),
 * so a known stack costs one probe and no symbol lookup at all; only a new
 * stack walks the node index.
 *
 * Locations: interning a location interns its mapping, its functions and
 * their strings, each a probe into a large table plus a compare against
 * cold head memory. The head keeps loc_cache: a 128-bit fingerprint of the
 * location's whole content (address, folded flag, the mapping's fields and
 * strings, every line's function fields, strings, line and column) -> the
 * head location. Fingerprints are computed from the incoming profile only
 * (each string hashed once per profile, memoized per string, function and
 * mapping), so a known location costs one probe. Two different locations
 * (or stacks) share a fingerprint with probability about 2^-128 per pair:
 * both caches are content addressing, as git's object ids are.
 */
#include "core/common.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "store/store_int.h"

int st_head_init(st_head *h, const char *tenant, int64_t window)
{
    memset(h, 0, sizeof(*h));
    int rc = prof_init(&h->sym);
    if (rc)
        return rc;
    h->sym.limits.max_locations = UINT32_MAX - 2;
    h->sym.limits.max_string_len = UINT32_MAX;
    memset(&h->stack_cache, 0, sizeof(h->stack_cache));
    memset(&h->loc_cache, 0, sizeof(h->loc_cache));
    strtab_init(&h->lstr);
    strtab_init(&h->series_keys);
    if (strtab_intern(&h->lstr, "", 0) != 0)
        return -ENOMEM;
    h->tenant = xstrdup(tenant);
    h->window = window;
    h->min_ts = INT64_MAX;
    h->max_ts = INT64_MIN;
    h->created_mono = mono_ns();
    return 0;
}

void st_head_release(st_head *h)
{
    prof_release(&h->sym);
    free(h->stack_cache.slots);
    free(h->loc_cache.slots);
    strtab_release(&h->lstr);
    strtab_release(&h->series_keys);
    for (size_t i = 0; i < h->n_series; i++) {
        st_hseries *s = &h->series[i];
        free(s->lab);
        free(s->ts);
        free(s->dur);
        free(s->total);
        free(s->row0);
        free(s->n_rows);
    }
    free(h->series);
    free(h->r_stack);
    free(h->r_value);
    free(h->r_span);
    free(h->r_trace);
    free(h->tenant);
    memset(h, 0, sizeof(*h));
}

size_t st_head_bytes(const st_head *h)
{
    return h->cap_rows * 20 + h->sym.n_nodes * 8 + h->sym.n_locations * 32 + h->sym.n_lines * 24 +
           h->sym.n_functions * 24 + h->sym.strings.mem.used_bytes + h->n_profiles * 40 +
           (h->stack_cache.slots ? (h->stack_cache.mask + 1) * sizeof(st_fpslot) : 0) +
           (h->loc_cache.slots ? (h->loc_cache.mask + 1) * sizeof(st_fpslot) : 0);
}

static int name_ok(const char *s)
{
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return 0;
    for (const char *c = s + 1; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || (*c >= '0' && *c <= '9') || *c == '.'))
            return 0;
    return strlen(s) <= 256;
}

int st_check_labels(const store_label *l, size_t n, herr *e)
{
    if (n > STORE_MAX_LABELS)
        return herr_set(e, HE_USAGE, "too many labels (%zu, at most %d)", n, STORE_MAX_LABELS);
    for (size_t i = 0; i < n; i++) {
        if (!l[i].name || !l[i].value)
            return herr_set(e, HE_USAGE, "label %zu has no name or value", i);
        if (!name_ok(l[i].name))
            return herr_set(e, HE_USAGE, "invalid label name \"%.64s\" (want [A-Za-z_][A-Za-z0-9_.]*)", l[i].name);
        if (strlen(l[i].value) > STORE_MAX_LABEL_VALUE)
            return herr_set(e, HE_USAGE, "value of label \"%s\" is longer than %d bytes", l[i].name, STORE_MAX_LABEL_VALUE);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(l[i].name, l[k].name))
                return herr_set(e, HE_USAGE, "label \"%s\" given twice", l[i].name);
    }
    return 0;
}

const char *st_head_label(const st_head *h, const st_hseries *s, const char *name)
{
    int32_t id = strtab_find(&h->lstr, name, strlen(name));
    if (id < 0)
        return NULL;
    for (uint32_t i = 0; i < s->n_lab; i++)
        if (s->lab[2 * i] == (uint32_t)id)
            return strtab_get(&h->lstr, s->lab[2 * i + 1]);
    return NULL;
}

/* ---- id mapping from an incoming profile into the head ---- */

typedef struct fp128 {
    uint64_t a, b;
} fp128;

/* ---- the location fingerprint cache ---- */

static st_fpslot *fp_find(const st_fpmap *t, fp128 k)
{
    for (size_t i = k.a & t->mask;; i = (i + 1) & t->mask) {
        st_fpslot *s = &t->slots[i];
        if (s->val == UINT32_MAX || (s->a == k.a && s->b == k.b))
            return s;
    }
}

static uint32_t fp_get(const st_fpmap *t, fp128 k)
{
    return t->slots ? fp_find(t, k)->val : UINT32_MAX;
}

static int fp_put(st_fpmap *t, fp128 k, uint32_t val)
{
    if (!t->slots || (t->count + 1) * 2 > t->mask + 1) {
        size_t n = t->slots ? (t->mask + 1) * 2 : 1024;
        st_fpmap g = {hmallocarray(n, sizeof(st_fpslot)), n - 1, 0};
        if (!g.slots)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++)
            g.slots[i].val = UINT32_MAX;
        for (size_t i = 0; t->slots && i <= t->mask; i++)
            if (t->slots[i].val != UINT32_MAX)
                *fp_find(&g, (fp128){t->slots[i].a, t->slots[i].b}) = t->slots[i];
        g.count = t->count;
        free(t->slots);
        *t = g;
    }
    st_fpslot *s = fp_find(t, k);
    if (s->val == UINT32_MAX)
        t->count++;
    s->a = k.a;
    s->b = k.b;
    s->val = val;
    return 0;
}

static inline uint64_t fp_rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t fp_mix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/*
 * 128-bit fingerprint of bytes in one pass: two lanes of the multiply-mix
 * hash_bytes uses, with different constants and seeds, each consuming every
 * byte. .b is never 0 (0 marks "not computed" in the memo arrays).
 */
static fp128 fp_bytes(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t a = 0x243f6a8885a308d3ULL ^ (n * 0xa0761d6478bd642fULL);
    uint64_t b = 0x13198a2e03707344ULL ^ (n * 0xe7037ed1a0b428dbULL);
    while (n >= 16) {
        uint64_t x = fp_rd64(p), y = fp_rd64(p + 8);
        a = fp_mix(x ^ 0xe7037ed1a0b428dbULL, y ^ a);
        b = fp_mix(y ^ 0x8ebc6af09c88c6e3ULL, x ^ b);
        p += 16;
        n -= 16;
    }
    if (n) {
        uint64_t x = 0, y = 0;
        memcpy(&x, p, n < 8 ? n : 8);
        if (n > 8)
            memcpy(&y, p + 8, n - 8);
        a = fp_mix(x ^ 0x589965cc75374cc3ULL, y ^ a ^ 0x1d8e4e27c47d124fULL);
        b = fp_mix(y ^ 0x9e3779b97f4a7c15ULL, x ^ b ^ 0xc4ceb9fe1a85ec53ULL);
    }
    fp128 f = {fp_mix(a, 0xa0761d6478bd642fULL) ^ a, (fp_mix(b, 0x8ebc6af09c88c6e3ULL) ^ b) | 1};
    return f;
}

/* Fingerprint of n 64-bit words. */
static fp128 fp_words(const uint64_t *w, size_t n)
{
    return fp_bytes(w, n * 8);
}

typedef struct mapper {
    st_head *h;
    const profile *p;
    uint32_t *str, *map, *fn, *loc, *node;
    fp128 *fp_node;        /* incoming node -> fingerprint of its stack (all computed up front) */
    fp128 *fp_str, *fp_fn, *fp_map, *fp_loc;  /* incoming id -> content fingerprint, .b == 0: not yet */
    uint64_t *scratch;     /* fingerprint input of one location */
    size_t cap_scratch;
    prof_line *lines;
    size_t cap_lines;
} mapper;

#define UNMAPPED UINT32_MAX
enum { MAX_CHAIN = 1100 }; /* deepest stack mapped (profiles cap depth at 1024 by default) */

static int map_str(mapper *m, uint32_t id, uint32_t *out)
{
    if (id == 0) {
        *out = 0;
        return 0;
    }
    if (m->str[id] == UNMAPPED) {
        int32_t r = prof_str(&m->h->sym, prof_s(m->p, id), strtab_len(&m->p->strings, id));
        if (r < 0)
            return r;
        m->str[id] = (uint32_t)r;
    }
    *out = m->str[id];
    return 0;
}

static int map_function(mapper *m, uint32_t id, uint32_t *out)
{
    if (id == 0) {
        *out = 0;
        return 0;
    }
    if (m->fn[id] == UNMAPPED) {
        prof_function f = m->p->functions[id];
        int rc;
        if ((rc = map_str(m, f.name, &f.name)) || (rc = map_str(m, f.system_name, &f.system_name)) ||
            (rc = map_str(m, f.filename, &f.filename)))
            return rc;
        int32_t r = prof_function_intern(&m->h->sym, &f);
        if (r < 0)
            return r;
        m->fn[id] = (uint32_t)r;
    }
    *out = m->fn[id];
    return 0;
}

static int map_mapping(mapper *m, uint32_t id, uint32_t *out)
{
    if (id == 0) {
        *out = 0;
        return 0;
    }
    if (m->map[id] == UNMAPPED) {
        prof_mapping x = m->p->mappings[id];
        int rc;
        if ((rc = map_str(m, x.filename, &x.filename)) || (rc = map_str(m, x.build_id, &x.build_id)))
            return rc;
        int32_t r = prof_mapping_intern(&m->h->sym, &x);
        if (r < 0)
            return r;
        m->map[id] = (uint32_t)r;
    }
    *out = m->map[id];
    return 0;
}

static fp128 str_fp(mapper *m, uint32_t id)
{
    if (id == 0)
        return (fp128){0, 0};
    if (!m->fp_str[id].b) {
        const char *s = prof_s(m->p, id);
        size_t n = strtab_len(&m->p->strings, id);
        m->fp_str[id] = fp_bytes(s, n);
    }
    return m->fp_str[id];
}

static fp128 fn_fp(mapper *m, uint32_t id)
{
    if (id == 0)
        return (fp128){0, 0};
    if (!m->fp_fn[id].b) {
        const prof_function *f = &m->p->functions[id];
        fp128 a = str_fp(m, f->name), b = str_fp(m, f->system_name), c = str_fp(m, f->filename);
        uint64_t w[7] = {a.a, a.b, b.a, b.b, c.a, c.b, (uint64_t)f->start_line};
        m->fp_fn[id] = fp_words(w, 7);
    }
    return m->fp_fn[id];
}

static fp128 map_fp(mapper *m, uint32_t id)
{
    if (id == 0)
        return (fp128){0, 0};
    if (!m->fp_map[id].b) {
        const prof_mapping *x = &m->p->mappings[id];
        fp128 a = str_fp(m, x->filename), b = str_fp(m, x->build_id);
        uint64_t w[8] = {x->memory_start, x->memory_limit, x->file_offset, a.a, a.b, b.a, b.b,
                         (uint64_t)x->has_functions | (uint64_t)x->has_filenames << 8 |
                             (uint64_t)x->has_line_numbers << 16 | (uint64_t)x->has_inline_frames << 24};
        m->fp_map[id] = fp_words(w, 8);
    }
    return m->fp_map[id];
}

/* The fingerprint of incoming location id: everything prof_location_intern compares, strings by content. */
static int loc_fp(mapper *m, uint32_t id, fp128 *out)
{
    if (m->fp_loc[id].b) {
        *out = m->fp_loc[id];
        return 0;
    }
    const prof_location *l = &m->p->locations[id];
    size_t need = 5 + (size_t)l->n_lines * 4;
    if (need > m->cap_scratch) {
        size_t c = m->cap_scratch;
        if (HGROW(m->scratch, c, need))
            return -ENOMEM;
        m->cap_scratch = c;
    }
    uint64_t *w = m->scratch;
    fp128 mp = map_fp(m, l->mapping);
    w[0] = l->address;
    w[1] = mp.a;
    w[2] = mp.b;
    w[3] = l->is_folded;
    w[4] = l->n_lines;
    for (uint32_t k = 0; k < l->n_lines; k++) {
        const prof_line *ln = &m->p->lines[l->first_line + k];
        fp128 f = fn_fp(m, ln->function);
        w[5 + 4 * k] = f.a;
        w[6 + 4 * k] = f.b;
        w[7 + 4 * k] = (uint64_t)ln->line;
        w[8 + 4 * k] = (uint64_t)ln->column;
    }
    *out = m->fp_loc[id] = fp_words(w, need);
    return 0;
}

static int map_location(mapper *m, uint32_t id, uint32_t *out)
{
    if (m->loc[id] == UNMAPPED) {
        fp128 fp;
        int rc0 = loc_fp(m, id, &fp);
        if (rc0)
            return rc0;
        uint32_t hit = fp_get(&m->h->loc_cache, fp);
        if (hit != UINT32_MAX) {
            *out = m->loc[id] = hit;
            return 0;
        }
        const prof_location *l = &m->p->locations[id];
        int rc;
        uint32_t mp;
        if ((rc = map_mapping(m, l->mapping, &mp)))
            return rc;
        if (l->n_lines > m->cap_lines) {
            size_t c = m->cap_lines;
            if (HGROW(m->lines, c, l->n_lines))
                return -ENOMEM;
            m->cap_lines = c;
        }
        for (uint32_t k = 0; k < l->n_lines; k++) {
            m->lines[k] = m->p->lines[l->first_line + k];
            if ((rc = map_function(m, m->lines[k].function, &m->lines[k].function)))
                return rc;
        }
        int32_t r = prof_location_intern(&m->h->sym, l->address, mp, m->lines, l->n_lines);
        if (r < 0)
            return r;
        m->h->sym.locations[r].is_folded = l->is_folded;
        m->loc[id] = (uint32_t)r;
        if ((rc = fp_put(&m->h->loc_cache, fp, (uint32_t)r)))
            return rc;
    }
    *out = m->loc[id];
    return 0;
}

static int map_node(mapper *m, uint32_t id, uint32_t *out)
{
    if (m->node[id] != UNMAPPED) {
        *out = m->node[id];
        return 0;
    }
    /* Walk up to the first mapped ancestor, then map back down. */
    uint32_t chain[MAX_CHAIN];
    size_t n = 0;
    uint32_t k = id;
    while (m->node[k] == UNMAPPED) {
        if (n == ARRAY_SIZE(chain))
            return HE_TOOBIG;
        chain[n++] = k;
        k = m->p->nodes[k].parent;
    }
    uint32_t parent = m->node[k];
    while (n > 0) {
        uint32_t c = chain[--n], loc;
        int rc = map_location(m, m->p->nodes[c].location, &loc);
        if (rc)
            return rc;
        int32_t r = prof_node_get(&m->h->sym, parent, loc);
        if (r < 0)
            return r;
        m->node[c] = parent = (uint32_t)r;
    }
    *out = parent;
    return 0;
}

/* The fingerprint of the stack (parent's stack, location): two 64-bit lanes, each a chain of bijective mixes. */
static inline fp128 fp_child(fp128 parent, fp128 loc)
{
    fp128 f = {hash_u64(hash_u64(parent.a) ^ loc.a), hash_u64(hash_u64(parent.b ^ 0x3c6ef372fe94f82bULL) ^ loc.b) | 1};
    return f;
}

/*
 * Fingerprints of every incoming node in one forward pass (a node's parent
 * comes before it: prof_validate checks parent < node), memoizing the
 * location fingerprints on the way.
 */
static int fp_all_nodes(mapper *m)
{
    const prof_node *in = m->p->nodes;
    int rc;
    for (uint32_t i = 1; i < m->p->n_nodes; i++) {
        fp128 lf;
        if ((rc = loc_fp(m, in[i].location, &lf)))
            return rc;
        m->fp_node[i] = fp_child(m->fp_node[in[i].parent], lf);
    }
    return 0;
}

/* The head node of incoming stack `leaf`: the stack cache first, the node index on a miss. */
static int map_stack(mapper *m, uint32_t leaf, uint32_t *out)
{
    if (m->node[leaf] != UNMAPPED) {
        *out = m->node[leaf];
        return 0;
    }
    fp128 f = m->fp_node[leaf];
    uint32_t hit = fp_get(&m->h->stack_cache, f);
    if (hit != UINT32_MAX && hit < m->h->sym.n_nodes) {
        *out = m->node[leaf] = hit;
        return 0;
    }
    int rc = map_node(m, leaf, out);
    if (rc)
        return rc;
    return fp_put(&m->h->stack_cache, f, *out);
}

static uint32_t *unmapped_array(size_t n)
{
    uint32_t *a = hmallocarray(n ? n : 1, sizeof(uint32_t));
    if (a)
        memset(a, 0xff, (n ? n : 1) * sizeof(uint32_t));
    return a;
}

/* ---- series ---- */

typedef struct lpair {
    const char *name, *value;
} lpair;

static int lpair_cmp(const void *a, const void *b)
{
    return strcmp(((const lpair *)a)->name, ((const lpair *)b)->name);
}

static int find_series(st_head *h, lpair *l, size_t n, size_t max_series, uint32_t *out, herr *e)
{
    qsort(l, n, sizeof(*l), lpair_cmp);
    char key[STORE_MAX_LABELS * 1300];
    size_t kl = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(l[i].name), b = strlen(l[i].value);
        if (kl + a + b + 2 > sizeof(key))
            return herr_set(e, HE_TOOBIG, "label set too large");
        memcpy(key + kl, l[i].name, a);
        kl += a;
        key[kl++] = '=';
        memcpy(key + kl, l[i].value, b);
        kl += b;
        key[kl++] = '\x01';
    }
    int32_t id = strtab_find(&h->series_keys, key, kl);
    if (id >= 0) {
        *out = (uint32_t)id;
        return 0;
    }
    if (h->n_series >= max_series)
        return herr_set(e, HE_TOOBIG, "tenant \"%s\" has reached the limit of %zu series", h->tenant, max_series);
    if (HGROW(h->series, h->cap_series, h->n_series + 1))
        return -ENOMEM;
    id = strtab_intern(&h->series_keys, key, kl);
    if (id < 0)
        return id;
    st_hseries *s = &h->series[h->n_series];
    memset(s, 0, sizeof(*s));
    s->key = (uint32_t)id;
    s->lab = xmallocarray(2 * (n ? n : 1), sizeof(uint32_t));
    s->n_lab = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        int32_t a = strtab_intern_cstr(&h->lstr, l[i].name), b = strtab_intern_cstr(&h->lstr, l[i].value);
        if (a < 0 || b < 0)
            return -ENOMEM;
        s->lab[2 * i] = (uint32_t)a;
        s->lab[2 * i + 1] = (uint32_t)b;
    }
    *out = (uint32_t)h->n_series++;
    return 0;
}

static int is_derived(const char *name)
{
    return !strcmp(name, "__type__") || !strcmp(name, "__unit__") || !strcmp(name, "__period_type__") ||
           !strcmp(name, "__period_unit__") || !strcmp(name, "__profile_type__");
}

static int is_span_key(const char *k)
{
    return !strcmp(k, "span_id") || !strcmp(k, "profile_id");
}

static int is_per_sample_key(const char *k)
{
    return is_span_key(k) || !strcmp(k, "trace_id");
}

int st_head_insert(st_head *h, const st_rec *rec, size_t max_series, herr *e)
{
    const profile *p = &rec->prof;
    int rc = st_check_labels(rec->labels, rec->n_labels, e);
    if (rc)
        return rc;
    if (p->n_types == 0 || p->n_samples == 0)
        return 0;
    mapper m;
    memset(&m, 0, sizeof(m));
    m.h = h;
    m.p = p;
    m.str = unmapped_array(p->strings.count);
    m.map = unmapped_array(p->n_mappings);
    m.fn = unmapped_array(p->n_functions);
    m.loc = unmapped_array(p->n_locations);
    m.node = unmapped_array(p->n_nodes);
    m.fp_node = hmallocarray(p->n_nodes ? p->n_nodes : 1, sizeof(fp128)); /* every entry written by fp_all_nodes */
    m.fp_loc = calloc(p->n_locations ? p->n_locations : 1, sizeof(fp128));
    m.fp_str = calloc(p->strings.count ? p->strings.count : 1, sizeof(fp128));
    m.fp_fn = calloc(p->n_functions ? p->n_functions : 1, sizeof(fp128));
    m.fp_map = calloc(p->n_mappings ? p->n_mappings : 1, sizeof(fp128));
    uint32_t *stacks = hmallocarray(p->n_samples, sizeof(uint32_t));
    uint32_t *spans = hmallocarray(p->n_samples, sizeof(uint32_t));
    uint32_t *traces = hmallocarray(p->n_samples, sizeof(uint32_t));
    uint32_t *sig = hmallocarray(p->n_samples, sizeof(uint32_t));
    strtab sigs;
    strtab_init(&sigs);
    if (!m.str || !m.map || !m.fn || !m.loc || !m.node || !m.fp_node || !m.fp_loc || !m.fp_str || !m.fp_fn || !m.fp_map || !stacks || !spans || !traces || !sig) {
        rc = -ENOMEM;
        goto out;
    }
    m.node[0] = 0;
    m.fp_node[0] = (fp128){0x9e3779b97f4a7c15ULL, 0xb7e151628aed2a6bULL}; /* the empty stack */
    if ((rc = fp_all_nodes(&m)))
        goto out;
    if (strtab_intern(&sigs, "", 0) != 0) {
        rc = -ENOMEM;
        goto out;
    }

    /* Map stacks and spans once for all types; group samples by their series-splitting labels. */
    for (size_t i = 0; i < p->n_samples; i++) {
        const prof_sample *s = &p->samples[i];
        if ((rc = map_stack(&m, s->stack, &stacks[i])))
            goto out;
        spans[i] = 0;
        traces[i] = 0;
        sig[i] = 0;
        if (!s->n_labels)
            continue;
        char key[4096];
        size_t kl = 0;
        for (uint32_t k = 0; k < s->n_labels; k++) {
            const prof_label *l = &p->labels[s->first_label + k];
            const char *kn = prof_s(p, l->key);
            if (!l->str)
                continue; /* numeric labels are not kept */
            if (is_span_key(kn)) {
                if ((rc = map_str(&m, l->str, &spans[i])))
                    goto out;
                continue;
            }
            if (!strcmp(kn, "trace_id")) {
                if ((rc = map_str(&m, l->str, &traces[i])))
                    goto out;
                continue;
            }
            if (is_per_sample_key(kn) || !name_ok(kn) || is_derived(kn) || !strcmp(kn, "__name__"))
                continue;
            const char *v = prof_s(p, l->str);
            size_t a = strlen(kn), b = strlen(v);
            if (kl + a + b + 2 > sizeof(key) || b > STORE_MAX_LABEL_VALUE) {
                rc = herr_set(e, HE_TOOBIG, "sample labels too large");
                goto out;
            }
            memcpy(key + kl, kn, a + 1);
            kl += a + 1;
            memcpy(key + kl, v, b + 1);
            kl += b + 1;
        }
        if (kl) {
            int32_t id = strtab_intern(&sigs, key, kl);
            if (id < 0) {
                rc = id;
                goto out;
            }
            sig[i] = (uint32_t)id;
        }
    }

    const char *name = "unknown";
    for (size_t i = 0; i < rec->n_labels; i++)
        if (!strcmp(rec->labels[i].name, "__name__"))
            name = rec->labels[i].value;

    for (uint32_t t = 0; t < p->n_types; t++) {
        const char *ty = prof_s(p, p->sample_types[t].type), *un = prof_s(p, p->sample_types[t].unit);
        const char *pty = p->period_type.type ? prof_s(p, p->period_type.type) : ty;
        const char *pun = p->period_type.unit ? prof_s(p, p->period_type.unit) : un;
        if (!*pty)
            pty = ty;
        if (!*pun)
            pun = un;
        char ptype[1200];
        snprintf(ptype, sizeof(ptype), "%s:%s:%s:%s:%s", name, ty, un, pty, pun);
        for (uint32_t g = 0; g < sigs.count; g++) {
            lpair l[2 * STORE_MAX_LABELS + 8];
            size_t n = 0;
            int has_name = 0;
            for (size_t i = 0; i < rec->n_labels; i++) {
                if (is_derived(rec->labels[i].name))
                    continue;
                has_name |= !strcmp(rec->labels[i].name, "__name__");
                l[n++] = (lpair){rec->labels[i].name, rec->labels[i].value};
            }
            if (!has_name)
                l[n++] = (lpair){"__name__", name};
            /* Sample labels of group g override the caller's. */
            const char *k = strtab_get(&sigs, g), *kend = k + strtab_len(&sigs, g);
            while (k < kend) {
                const char *v = k + strlen(k) + 1;
                size_t j;
                for (j = 0; j < n; j++)
                    if (!strcmp(l[j].name, k))
                        break;
                if (j == n) {
                    if (n >= 2 * STORE_MAX_LABELS) {
                        rc = herr_set(e, HE_TOOBIG, "too many labels");
                        goto out;
                    }
                    n++;
                }
                l[j] = (lpair){k, v};
                k = v + strlen(v) + 1;
            }
            l[n++] = (lpair){"__type__", ty};
            l[n++] = (lpair){"__unit__", un};
            l[n++] = (lpair){"__period_type__", pty};
            l[n++] = (lpair){"__period_unit__", pun};
            l[n++] = (lpair){"__profile_type__", ptype};

            /* Rows of this (type, group); skip zero values. */
            size_t first = h->n_rows;
            int64_t total = 0;
            for (size_t i = 0; i < p->n_samples; i++) {
                int64_t v = prof_values(p, i)[t];
                if (sig[i] != g || v == 0)
                    continue;
                if (h->n_rows == h->cap_rows) {
                    size_t c = h->cap_rows ? h->cap_rows * 2 : 4096;
                    uint32_t *a = hreallocarray(h->r_stack, c, sizeof(uint32_t));
                    if (a)
                        h->r_stack = a;
                    int64_t *b = hreallocarray(h->r_value, c, sizeof(int64_t));
                    if (b)
                        h->r_value = b;
                    uint32_t *d = hreallocarray(h->r_span, c, sizeof(uint32_t));
                    if (d)
                        h->r_span = d;
                    uint32_t *tr = hreallocarray(h->r_trace, c, sizeof(uint32_t));
                    if (tr)
                        h->r_trace = tr;
                    if (!a || !b || !d || !tr) {
                        rc = -ENOMEM;
                        goto out;
                    }
                    h->cap_rows = c;
                }
                h->r_stack[h->n_rows] = stacks[i];
                h->r_value[h->n_rows] = v;
                h->r_span[h->n_rows] = spans[i];
                h->r_trace[h->n_rows] = traces[i];
                h->n_rows++;
                total = prof_sat_add(total, v);
            }
            if (h->n_rows == first)
                continue;
            uint32_t si;
            if ((rc = find_series(h, l, n, max_series, &si, e))) {
                h->n_rows = first;
                goto out;
            }
            st_hseries *s = &h->series[si];
            if (s->n_prof == s->cap_prof) {
                size_t c = s->cap_prof ? s->cap_prof * 2 : 16;
                s->ts = xreallocarray(s->ts, c, sizeof(int64_t));
                s->dur = xreallocarray(s->dur, c, sizeof(int64_t));
                s->total = xreallocarray(s->total, c, sizeof(int64_t));
                s->row0 = xreallocarray(s->row0, c, sizeof(uint64_t));
                s->n_rows = xreallocarray(s->n_rows, c, sizeof(uint32_t));
                s->cap_prof = c;
            }
            s->ts[s->n_prof] = rec->time_ns;
            s->dur[s->n_prof] = rec->duration_ns;
            s->total[s->n_prof] = total;
            s->row0[s->n_prof] = first;
            s->n_rows[s->n_prof] = (uint32_t)(h->n_rows - first);
            s->n_prof++;
            h->n_profiles++;
            if (rec->time_ns < h->min_ts)
                h->min_ts = rec->time_ns;
            if (rec->time_ns > h->max_ts)
                h->max_ts = rec->time_ns;
        }
    }
    rc = 0;
out:
    free(m.str);
    free(m.map);
    free(m.fn);
    free(m.loc);
    free(m.node);
    free(m.fp_node);
    free(m.fp_loc);
    free(m.fp_str);
    free(m.fp_fn);
    free(m.fp_map);
    free(m.scratch);
    free(m.lines);
    free(stacks);
    free(spans);
    free(traces);
    free(sig);
    strtab_release(&sigs);
    return rc;
}

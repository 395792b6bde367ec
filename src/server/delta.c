/*
 * delta.c: server-side deltas of cumulative alloc_* profiles (delta.h).
 *
 * State: a table of series, each keyed by a 64-bit hash of tenant, series
 * labels (order-independent) and sample type name, holding an open-addressing
 * map stack-hash -> highest value. A stack's hash covers its frame names
 * (leaf to root, as prof_frame_name shows them) and the sample's labels, so
 * the same call path matches across profiles whatever ids the encoder chose.
 * One mutex guards the whole table: the work per profile is one pass over
 * its samples.
 *
 * Undo: delta_apply can journal what it changed (the old value of each stack
 * it moved, or the whole old map when it set a baseline) so that a request
 * whose store write failed rolls the state back. Each series has a
 * generation bumped by every change; a rollback restores only series still
 * at the generation its own change left, so it never undoes a later
 * request's update.
 */
#include "core/common.h"

#include <pthread.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/mem.h"
#include "server/delta.h"

typedef struct vmap {
    uint64_t *keys;   /* 0 = empty slot (stack hashes are forced odd) */
    int64_t *vals;
    size_t n, cap;    /* cap is a power of two, load <= 1/2 */
} vmap;

typedef struct dseries {
    uint64_t key;
    vmap m;
    uint64_t gen;     /* bumped by every change: a rollback only touches a series still at its gen */
    int fresh;        /* 1: the next profile is a baseline (a rolled back new series) */
} dseries;

/* One series' part of an undo journal. */
typedef struct undo_val {
    uint64_t stack;
    int64_t old;      /* 0 when the stack was absent: the same to the delta computation */
} undo_val;
typedef struct undo_series {
    uint64_t key, gen;   /* gen right after the change */
    int baseline;        /* 1: restore old_map and old_fresh whole */
    vmap old_map;
    int old_fresh;
    undo_val *vals;
    size_t n_vals, cap_vals;
} undo_series;
struct delta_undo {
    undo_series *v;
    size_t n, cap;
};

struct delta_state {
    pthread_mutex_t mu;
    dseries *v;       /* open addressing by key; key 0 = empty */
    size_t n, cap;
    int warned;
};

static void vmap_release(vmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int64_t *vmap_slot(vmap *m, uint64_t key, int create)
{
    size_t i;
    if (create && (m->n + 1) * 2 > m->cap) {
        vmap nm = {0};
        nm.cap = m->cap ? m->cap * 2 : 64;
        nm.keys = xcalloc(nm.cap, sizeof *nm.keys);
        nm.vals = xcalloc(nm.cap, sizeof *nm.vals);
        for (size_t k = 0; k < m->cap; k++) {
            if (!m->keys[k]) continue;
            for (i = hash_u64(m->keys[k]) & (nm.cap - 1); nm.keys[i]; i = (i + 1) & (nm.cap - 1)) {}
            nm.keys[i] = m->keys[k];
            nm.vals[i] = m->vals[k];
            nm.n++;
        }
        vmap_release(m);
        *m = nm;
    }
    if (!m->cap) return NULL;
    for (i = hash_u64(key) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == key) return &m->vals[i];
    if (!create) return NULL;
    m->keys[i] = key;
    m->vals[i] = 0;
    m->n++;
    return &m->vals[i];
}

delta_state *delta_new(void)
{
    delta_state *d = xcalloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

void delta_free(delta_state *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->cap; i++)
        if (d->v[i].key) vmap_release(&d->v[i].m);
    free(d->v);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* The series entry for key; NULL when the table is full and key is new. */
static dseries *series_get(delta_state *d, uint64_t key, int *is_new)
{
    size_t i;
    *is_new = 0;
    if ((d->n + 1) * 2 > d->cap && d->n < DELTA_MAX_SERIES) {
        size_t ncap = d->cap ? d->cap * 2 : 64;
        dseries *nv = xcalloc(ncap, sizeof *nv);
        for (size_t k = 0; k < d->cap; k++) {
            if (!d->v[k].key) continue;
            for (i = hash_u64(d->v[k].key) & (ncap - 1); nv[i].key; i = (i + 1) & (ncap - 1)) {}
            nv[i] = d->v[k];
        }
        free(d->v);
        d->v = nv;
        d->cap = ncap;
    }
    for (i = hash_u64(key) & (d->cap - 1); d->v[i].key; i = (i + 1) & (d->cap - 1))
        if (d->v[i].key == key) return &d->v[i];
    if (d->n >= DELTA_MAX_SERIES) return NULL;
    d->v[i].key = key;
    d->n++;
    *is_new = 1;
    return &d->v[i];
}

/* The series entry for key, or NULL; never creates. */
static dseries *series_find(delta_state *d, uint64_t key)
{
    if (!d->cap) return NULL;
    for (size_t i = hash_u64(key) & (d->cap - 1); d->v[i].key; i = (i + 1) & (d->cap - 1))
        if (d->v[i].key == key) return &d->v[i];
    return NULL;
}

delta_undo *delta_undo_new(void) { return xcalloc(1, sizeof(delta_undo)); }

static void undo_clear(delta_undo *u)
{
    for (size_t i = 0; i < u->n; i++) {
        vmap_release(&u->v[i].old_map);
        free(u->v[i].vals);
    }
    u->n = 0;
}

void delta_undo_free(delta_undo *u)
{
    if (!u) return;
    undo_clear(u);
    free(u->v);
    free(u);
}

static undo_series *undo_add(delta_undo *u, uint64_t key)
{
    XGROW(u->v, u->cap, u->n + 1);
    undo_series *us = &u->v[u->n++];
    memset(us, 0, sizeof *us);
    us->key = key;
    return us;
}

void delta_rollback(delta_state *d, delta_undo *u)
{
    if (!u) return;
    pthread_mutex_lock(&d->mu);
    for (size_t k = u->n; k-- > 0;) {
        undo_series *us = &u->v[k];
        dseries *ds = series_find(d, us->key);
        if (!ds || ds->gen != us->gen) continue;  /* moved on by a later request: keep its state */
        if (us->baseline) {
            vmap_release(&ds->m);
            ds->m = us->old_map;
            memset(&us->old_map, 0, sizeof us->old_map);
            ds->fresh = us->old_fresh;
        } else {
            for (size_t i = us->n_vals; i-- > 0;) *vmap_slot(&ds->m, us->vals[i].stack, 1) = us->vals[i].old;
        }
        ds->gen++;
    }
    pthread_mutex_unlock(&d->mu);
    undo_clear(u);
}

static int is_cumulative_type(const char *t) { return !strcmp(t, "alloc_objects") || !strcmp(t, "alloc_space"); }

int delta_applies(const char *const *names, const char *const *values, size_t n, const profile *p)
{
    int memory = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], "__name__")) memory = !strcmp(values[i], "memory");
    if (!memory) return 0;
    for (uint32_t t = 0; t < p->n_types; t++)
        if (is_cumulative_type(strtab_get(&p->strings, p->sample_types[t].type))) return 1;
    return 0;
}

static uint64_t hash_str(const char *s, uint64_t seed) { return hash_bytes(s, strlen(s) + 1, seed); }

/* Stack (frame names leaf to root) and labels of sample i. */
static uint64_t sample_key(const profile *p, size_t i)
{
    const prof_sample *s = &p->samples[i];
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    char name[512];
    for (uint32_t node = s->stack; node; node = p->nodes[node].parent) {
        uint32_t loc = p->nodes[node].location;
        const prof_location *l = &p->locations[loc];
        for (uint32_t k = 0; k < MAX(l->n_lines, 1u); k++) {
            h = hash_str(prof_frame_name(p, loc, k, name, sizeof name), h);
            if (k < l->n_lines) h = hash_u64(h ^ (uint64_t)p->lines[l->first_line + k].line);
        }
        h = hash_u64(h + 0x51);
    }
    for (uint32_t k = 0; k < s->n_labels; k++) {
        const prof_label *lb = &p->labels[s->first_label + k];
        h = hash_str(strtab_get(&p->strings, lb->key), h);
        h = hash_str(strtab_get(&p->strings, lb->str), h);
        h = hash_u64(h ^ (uint64_t)lb->num);
    }
    return h | 1;
}

int delta_apply(delta_state *d, const char *tenant, const char *const *names, const char *const *values, size_t n,
                profile *p, delta_undo *u)
{
    uint64_t base = hash_str(tenant, 7), *keys;
    int rc;
    if (!delta_applies(names, values, n, p)) return 0;
    if ((rc = prof_compact_samples(p))) return rc;
    /* labels: order-independent sum of pair hashes */
    {
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) sum += hash_str(values[i], hash_str(names[i], 3));
        base = hash_u64(base ^ sum);
    }
    keys = xmalloc((p->n_samples + 1) * sizeof *keys);
    for (size_t i = 0; i < p->n_samples; i++) keys[i] = sample_key(p, i);
    pthread_mutex_lock(&d->mu);
    for (uint32_t t = 0; t < p->n_types; t++) {
        const char *tn = strtab_get(&p->strings, p->sample_types[t].type);
        int is_new, reset = 0;
        dseries *ds;
        if (!is_cumulative_type(tn)) continue;
        uint64_t skey = hash_str(tn, base) | 1;
        ds = series_get(d, skey, &is_new);
        if (!ds) {
            if (!d->warned) log_warn("delta: more than %d cumulative series; later ones are stored as sent", DELTA_MAX_SERIES);
            d->warned = 1;
            continue;
        }
        if (!is_new)
            for (size_t i = 0; i < p->n_samples && !reset; i++) {
                int64_t *hv = vmap_slot(&ds->m, keys[i], 0);
                reset = hv && *hv > p->values[i * p->n_types + t];
            }
        undo_series *us = u ? undo_add(u, skey) : NULL;
        ds->gen++;
        if (is_new || ds->fresh || reset) {
            /* a baseline: remember the values, store none of them */
            if (us) {
                us->baseline = 1;
                us->old_map = ds->m;  /* moved: the rollback puts it back */
                us->old_fresh = is_new ? 1 : ds->fresh;
                memset(&ds->m, 0, sizeof ds->m);
            }
            ds->fresh = 0;
            vmap_release(&ds->m);
            for (size_t i = 0; i < p->n_samples; i++) {
                int64_t *v = &p->values[i * p->n_types + t];
                *vmap_slot(&ds->m, keys[i], 1) = *v;
                *v = 0;
            }
            if (us) us->gen = ds->gen;
            continue;
        }
        for (size_t i = 0; i < p->n_samples; i++) {
            int64_t *v = &p->values[i * p->n_types + t], *hv = vmap_slot(&ds->m, keys[i], 1);
            int64_t cur = *v;
            if (us) {
                XGROW(us->vals, us->cap_vals, us->n_vals + 1);
                us->vals[us->n_vals++] = (undo_val){keys[i], *hv};
            }
            *v = cur - *hv;
            *hv = cur;
        }
        if (us) us->gen = ds->gen;
    }
    pthread_mutex_unlock(&d->mu);
    free(keys);
    return prof_compact_samples(p);
}

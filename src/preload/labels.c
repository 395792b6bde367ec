/*
 * labels.c: the thread-local span stack and labels of the public API
 * (hearth_span_enter/exit, hearth_label_set), read by the signal handler.
 *
 * Invariants: a thread's state lives in pl_tls (static TLS), written only by
 * that thread; the signal handler reads it on the same thread, so plain
 * stores ordered with signal fences are enough (no atomics across threads).
 * Label pairs are interned once into a global append-only table (ids >= 1,
 * never freed, capped at PL_PAIRS_MAX); the thread keeps only ids, so a
 * sample copies 8 integers, not strings. Interning takes a mutex and never
 * runs in a signal handler.
 */
#include "core/common.h"

#include "preload/preload.h"

#define PL_PAIRS_MAX 4096
#define PL_PAIRS_SLOTS 8192

typedef struct pl_pair {
    char key[PL_LABEL_KEY_MAX + 1];
    char val[PL_LABEL_VAL_MAX + 1];
} pl_pair;

static pl_pair pairs[PL_PAIRS_MAX + 1];      /* [0] unused */
static uint16_t pair_slots[PL_PAIRS_SLOTS];  /* pair id, 0 = empty */
static _Atomic uint32_t n_pairs;             /* published ids are 1..n_pairs */
static pthread_mutex_t pairs_lock = PTHREAD_MUTEX_INITIALIZER;

void pl_hex(char *out, const void *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = bytes;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

static uint32_t pair_hash(const char *k, const char *v)
{
    uint32_t h = 2166136261u;
    for (; *k; k++) h = (h ^ (uint8_t)*k) * 16777619u;
    h = (h ^ '=') * 16777619u;
    for (; *v; v++) h = (h ^ (uint8_t)*v) * 16777619u;
    return h;
}

/* Returns the id of (key, value), interning it; 0 when the table is full. */
static uint32_t pair_intern(const char *key, const char *value)
{
    uint32_t id = 0;
    pl_guard_enter();
    pthread_mutex_lock(&pairs_lock);
    uint32_t h = pair_hash(key, value);
    for (uint32_t i = 0; i < PL_PAIRS_SLOTS; i++) {
        uint32_t slot = (h + i) & (PL_PAIRS_SLOTS - 1);
        uint16_t cand = pair_slots[slot];
        if (cand == 0) {
            uint32_t n = atomic_load_explicit(&n_pairs, memory_order_relaxed);
            if (n >= PL_PAIRS_MAX) break;
            id = n + 1;
            snprintf(pairs[id].key, sizeof(pairs[id].key), "%s", key);
            snprintf(pairs[id].val, sizeof(pairs[id].val), "%s", value);
            pair_slots[slot] = (uint16_t)id;
            atomic_store_explicit(&n_pairs, id, memory_order_release);
            break;
        }
        if (strcmp(pairs[cand].key, key) == 0 && strcmp(pairs[cand].val, value) == 0) {
            id = cand;
            break;
        }
    }
    pthread_mutex_unlock(&pairs_lock);
    pl_guard_exit();
    return id;
}

int pl_label_get(uint32_t id, const char **key, const char **value)
{
    if (id == 0 || id > atomic_load_explicit(&n_pairs, memory_order_acquire)) return -1;
    *key = pairs[id].key;
    *value = pairs[id].val;
    return 0;
}

void pl_labels_copy(uint32_t out[PL_MAX_LABELS])
{
    for (int i = 0; i < PL_MAX_LABELS; i++) out[i] = pl_tls.label_ids[i];
}

void pl_span_copy(pl_span *out)
{
    uint32_t d = pl_tls.span_depth;
    if (d == 0 || d > PL_MAX_SPANS) {
        if (d > PL_MAX_SPANS) *out = pl_tls.spans[PL_MAX_SPANS - 1];
        else memset(out, 0, sizeof(*out));
        return;
    }
    *out = pl_tls.spans[d - 1];
}

void hearth_span_enter(const uint8_t trace_id[16], const uint8_t span_id[8])
{
    uint32_t d = pl_tls.span_depth;
    if (d < PL_MAX_SPANS) {
        pl_span *s = &pl_tls.spans[d];
        s->has_trace = trace_id != NULL;
        s->trace_hi = trace_id ? pl_load_be64(trace_id) : 0;
        s->trace_lo = trace_id ? pl_load_be64(trace_id + 8) : 0;
        s->has_span = span_id != NULL;
        s->span = span_id ? pl_load_be64(span_id) : 0;
    }
    /* The handler must see the entry complete before the depth covers it. */
    atomic_signal_fence(memory_order_seq_cst);
    pl_tls.span_depth = d + 1;
}

void hearth_span_exit(void)
{
    if (pl_tls.span_depth > 0) pl_tls.span_depth--;
    atomic_signal_fence(memory_order_seq_cst);
}

static int label_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > PL_LABEL_KEY_MAX) return 0;
    if (strcmp(key, "span_id") == 0 || strcmp(key, "trace_id") == 0) return 0;
    /* Prometheus-style names: the server indexes them as label names. */
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

int hearth_label_set(const char *key, const char *value)
{
    if (!key || !label_key_ok(key)) return -EINVAL;
    if (value && strlen(value) > PL_LABEL_VAL_MAX) return -EINVAL;
    /* Find this key among the thread's labels. */
    int at = -1, free_at = -1;
    for (int i = 0; i < PL_MAX_LABELS; i++) {
        const char *k, *v;
        uint32_t id = pl_tls.label_ids[i];
        if (id == 0) {
            if (free_at < 0) free_at = i;
            continue;
        }
        if (pl_label_get(id, &k, &v) == 0 && strcmp(k, key) == 0) at = i;
    }
    if (!value) {
        if (at >= 0) pl_tls.label_ids[at] = 0;
        atomic_signal_fence(memory_order_seq_cst);
        return 0;
    }
    if (at < 0) at = free_at;
    if (at < 0) return -ENOSPC;
    uint32_t id = pair_intern(key, value);
    if (id == 0) return -ENOSPC;
    pl_tls.label_ids[at] = id;
    atomic_signal_fence(memory_order_seq_cst);
    return 0;
}

void hearth_labels_clear(void)
{
    for (int i = 0; i < PL_MAX_LABELS; i++) pl_tls.label_ids[i] = 0;
    atomic_signal_fence(memory_order_seq_cst);
}

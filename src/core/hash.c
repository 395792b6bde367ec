/*
 * hash.c: see hash.h. hash_bytes mixes 8 bytes at a time with a multiply and
 * a rotate (wyhash-like in spirit, not bit-compatible with anything); it only
 * needs to be fast and to spread profile strings and stacks well.
 */
#include "core/common.h"
#include "core/hash.h"

#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t hash_seed(void)
{
    static _Atomic uint64_t seed;
    uint64_t s = atomic_load_explicit(&seed, memory_order_relaxed);
    if (s) return s;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        /* no entropy yet (early boot): not secret, but not fixed either */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = hash_u64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts);
    }
    s |= 1;  /* 0 means "not drawn yet" */
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong(&seed, &expected, s)) s = expected;  /* another thread drew first */
    return s;
}

static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint64_t mix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t hash_bytes(const void *data, size_t n, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = seed ^ 0x9e3779b97f4a7c15ULL ^ (n * 0xa0761d6478bd642fULL);
    while (n >= 16) {
        h = mix(rd64(p) ^ 0xe7037ed1a0b428dbULL, rd64(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    if (n >= 8) { h = mix(rd64(p) ^ 0x8ebc6af09c88c6e3ULL, h ^ n); p += 8; n -= 8; }
    if (n) {
        uint64_t t = 0;
        memcpy(&t, p, n);
        h = mix(t ^ 0x589965cc75374cc3ULL, h ^ 0x1d8e4e27c47d124fULL);
    }
    return mix(h, 0xa0761d6478bd642fULL) ^ h;
}

void hmap64_init(hmap64 *m)
{
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
    m->seed = hash_seed();
}
void hmap64_release(hmap64 *m) { free(m->slots); hmap64_init(m); }

static int rehash(hmap64 *m, size_t n_slots)
{
    hmap64_slot *slots = malloc(n_slots * sizeof *slots);
    size_t old = m->slots ? m->mask + 1 : 0;
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < n_slots; i++) slots[i].val = HMAP_EMPTY;
    for (size_t i = 0; i < old; i++) {
        if (m->slots[i].val == HMAP_EMPTY) continue;
        size_t j = hash_u64(m->slots[i].key ^ m->seed) & (n_slots - 1);
        while (slots[j].val != HMAP_EMPTY) j = (j + 1) & (n_slots - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->mask = n_slots - 1;
    return 0;
}

int hmap64_reserve(hmap64 *m, size_t n)
{
    size_t n_slots = 16;
    while (n_slots < n * 2) n_slots *= 2;
    if (m->slots && n_slots <= m->mask + 1) return 0;
    return rehash(m, n_slots);
}

uint32_t hmap64_get(const hmap64 *m, uint64_t key)
{
    if (!m->slots) return HMAP_EMPTY;
    for (size_t i = hmap64_home(m, key);; i = (i + 1) & m->mask) {
        const hmap64_slot *s = &m->slots[i];
        if (s->val == HMAP_EMPTY) return HMAP_EMPTY;
        if (s->key == key) return s->val;
    }
}

/* The slot holding key, or the free slot where it belongs (growing first). */
static hmap64_slot *find_for_insert(hmap64 *m, uint64_t key)
{
    if (!m->slots || (m->count + 1) * 2 > m->mask + 1) {
        if (rehash(m, m->slots ? (m->mask + 1) * 2 : 16)) return NULL;
    }
    for (size_t i = hmap64_home(m, key);; i = (i + 1) & m->mask) {
        hmap64_slot *s = &m->slots[i];
        if (s->val == HMAP_EMPTY || s->key == key) return s;
    }
}

uint32_t hmap64_get_or_put(hmap64 *m, uint64_t key, uint32_t val)
{
    hmap64_slot *s = find_for_insert(m, key);
    if (!s) return HMAP_EMPTY;
    if (s->val != HMAP_EMPTY) return s->val;
    s->key = key;
    s->val = val;
    m->count++;
    return val;
}

int hmap64_put(hmap64 *m, uint64_t key, uint32_t val)
{
    hmap64_slot *s = find_for_insert(m, key);
    if (!s) return -ENOMEM;
    if (s->val == HMAP_EMPTY) m->count++;
    s->key = key;
    s->val = val;
    return 0;
}

void strtab_init(strtab *t)
{
    memset(t, 0, sizeof *t);
    t->seed = hash_seed();
    arena_init(&t->mem);
}

void strtab_release(strtab *t)
{
    free(t->strs);
    free(t->lens);
    free(t->slots);
    free(t->hashes);
    arena_release(&t->mem);
    strtab_init(t);
}

static int strtab_rehash(strtab *t, size_t slots)
{
    uint32_t *s = calloc(slots, sizeof *s), *h = malloc(slots * sizeof *h);
    if (!s || !h) { free(s); free(h); return -ENOMEM; }
    for (uint32_t id = 0; id < t->count; id++) {
        uint64_t hv = hash_bytes(t->strs[id], t->lens[id], t->seed);
        size_t i = hv & (slots - 1);
        while (s[i]) i = (i + 1) & (slots - 1);
        s[i] = id + 1;
        h[i] = (uint32_t)hv;
    }
    free(t->slots);
    free(t->hashes);
    t->slots = s;
    t->hashes = h;
    t->mask = slots - 1;
    return 0;
}

int strtab_reserve(strtab *t, size_t n)
{
    size_t slots = 64;
    if (n > INT32_MAX) return -ENOMEM;
    while (slots < n * 2 + 2) slots *= 2;
    if (!t->slots || slots > t->mask + 1) {
        if (strtab_rehash(t, slots)) return -ENOMEM;
    }
    if (n > t->cap) {
        const char **strs = realloc(t->strs, n * sizeof *strs);
        if (!strs) return -ENOMEM;
        t->strs = strs;
        uint32_t *lens = realloc(t->lens, n * sizeof *lens);
        if (!lens) return -ENOMEM;
        t->lens = lens;
        t->cap = (uint32_t)n;
    }
    return 0;
}

int32_t strtab_find(const strtab *t, const char *s, size_t n)
{
    uint64_t hv;
    if (!t->slots) return -1;
    hv = hash_bytes(s, n, t->seed);
    for (size_t i = hv & t->mask;; i = (i + 1) & t->mask) {
        uint32_t id = t->slots[i];
        if (!id) return -1;
        id--;
        if (t->hashes[i] == (uint32_t)hv && t->lens[id] == n && !memcmp(t->strs[id], s, n)) return (int32_t)id;
    }
}

int32_t strtab_intern(strtab *t, const char *s, size_t n)
{
    uint64_t hv;
    size_t i;
    char *copy;
    if (n > UINT32_MAX || t->count >= INT32_MAX) return -E2BIG;
    if (!t->slots || (t->count + 1) * 2 > t->mask + 1) {
        if (strtab_rehash(t, t->slots ? (t->mask + 1) * 2 : 64)) return -ENOMEM;
    }
    hv = hash_bytes(s, n, t->seed);
    for (i = hv & t->mask;; i = (i + 1) & t->mask) {
        uint32_t id = t->slots[i];
        if (!id) break;
        id--;
        if (t->hashes[i] == (uint32_t)hv && t->lens[id] == n && !memcmp(t->strs[id], s, n)) return (int32_t)id;
    }
    if (t->count == t->cap) {
        uint32_t ncap = t->cap ? t->cap * 2 : 64;
        const char **strs = realloc(t->strs, ncap * sizeof *strs);
        if (!strs) return -ENOMEM;
        t->strs = strs;
        uint32_t *lens = realloc(t->lens, ncap * sizeof *lens);
        if (!lens) return -ENOMEM;
        t->lens = lens;
        t->cap = ncap;
    }
    copy = arena_strndup(&t->mem, s, n);
    if (!copy) return -ENOMEM;
    t->strs[t->count] = copy;
    t->lens[t->count] = (uint32_t)n;
    t->slots[i] = t->count + 1;
    t->hashes[i] = (uint32_t)hv;
    return (int32_t)t->count++;
}

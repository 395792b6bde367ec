/*
 * hash.h: hash functions and two open-addressing tables.
 *
 * hmap64: uint64 key -> uint32 value. Linear probing, power-of-two size, load
 *   at most 1/2; a slot is empty when its value is HMAP_EMPTY. Used for stack
 *   tree edges ((parent << 32) | location -> node), id remapping, postings.
 * strtab: string interning. Each distinct byte string gets a dense id in
 *   insertion order (0, 1, 2, ...); bytes live in an arena and stay valid and
 *   NUL-terminated until strtab_release(). Strings may contain NUL bytes (the
 *   length is kept). Lookup cost is one hash and usually one memcmp.
 */
#ifndef HEARTH_CORE_HASH_H
#define HEARTH_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);
static inline uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

#define HMAP_EMPTY UINT32_MAX

typedef struct hmap64_slot {
    uint64_t key;
    uint32_t val;  /* HMAP_EMPTY when the slot is free */
    uint32_t pad;
} hmap64_slot;

typedef struct hmap64 {
    hmap64_slot *slots;  /* key and value side by side: one cache line per probe */
    size_t mask;         /* slots - 1; 0 before first insert */
    size_t count;
    uint64_t seed;       /* hash_seed(): where a key lives is not known outside the process */
} hmap64;

/*
 * A random value, the same for the whole process (getrandom at first use).
 * The tables' keys come from untrusted input (uploaded profiles): with a
 * fixed, invertible hash anyone could choose keys that all land in one
 * slot and make every insert a scan of the table.
 */
uint64_t hash_seed(void);

void hmap64_init(hmap64 *m);
/* The slot where probing for key starts (for prefetching). */
static inline size_t hmap64_home(const hmap64 *m, uint64_t key) { return hash_u64(key ^ m->seed) & m->mask; }
void hmap64_release(hmap64 *m);
/* Pre-sizes for n keys. 0 or -ENOMEM. */
int hmap64_reserve(hmap64 *m, size_t n);
/* The value for key, or HMAP_EMPTY. */
uint32_t hmap64_get(const hmap64 *m, uint64_t key);
/* Sets key -> val (val != HMAP_EMPTY). 0 or -ENOMEM. */
int hmap64_put(hmap64 *m, uint64_t key, uint32_t val);
/*
 * Returns the existing value for key, or stores val and returns val.
 * HMAP_EMPTY on out-of-memory. The common "intern" operation in one probe.
 */
uint32_t hmap64_get_or_put(hmap64 *m, uint64_t key, uint32_t val);

typedef struct strtab {
    const char **strs;   /* id -> bytes (NUL-terminated) */
    uint32_t *lens;      /* id -> length */
    uint32_t count, cap;
    uint32_t *slots;     /* id + 1, 0 = empty */
    uint32_t *hashes;    /* slot -> low 32 bits of the hash, to skip memcmp */
    size_t mask;
    uint64_t seed;       /* hash_seed(), as for hmap64 */
    arena mem;
} strtab;

void strtab_init(strtab *t);
void strtab_release(strtab *t);
/*
 * Interns s[0..n): returns its id (existing or new), or a negative error
 * (-ENOMEM). Ids fit in int32.
 */
int32_t strtab_intern(strtab *t, const char *s, size_t n);
static inline int32_t strtab_intern_cstr(strtab *t, const char *s) { return strtab_intern(t, s, strlen(s)); }
/* Pre-sizes for n strings in all (no rehash or regrowth until then). 0 or -ENOMEM. */
int strtab_reserve(strtab *t, size_t n);
/* Looks up without inserting: id or -1. */
int32_t strtab_find(const strtab *t, const char *s, size_t n);
static inline const char *strtab_get(const strtab *t, uint32_t id) { return id < t->count ? t->strs[id] : ""; }
static inline uint32_t strtab_len(const strtab *t, uint32_t id) { return id < t->count ? t->lens[id] : 0; }

#endif

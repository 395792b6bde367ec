/*
 * heap.c: malloc-family interposition with Poisson sampling by bytes, and
 * the table of sampled objects still live.
 *
 * Sampling (as tcmalloc and Go do): each thread counts down heap_until, an
 * exponentially distributed number of bytes with mean R =
 * HEARTH_HEAP_SAMPLE_RATE; the allocation that takes it to <= 0 is sampled
 * and a new gap is drawn. Every byte is thus hit with probability 1/R and an
 * allocation of n bytes is sampled with probability 1 - exp(-n/R); the
 * collector reports each sample as 1/(1 - exp(-n/R)) objects of n bytes,
 * which is unbiased. The fast path is a thread-local subtraction and a
 * branch; free() adds one load and a bit test of the block filter.
 *
 * The sample budget (HEARTH_HEAP_SAMPLES_PER_SECOND, as JFR throttles its
 * allocation samples): R is the least mean gap; the collector raises the
 * mean for new gaps (pl_g.heap_rate_now) while the process takes more
 * samples a second than the budget, and lowers it back. A thread draws each
 * gap with the mean then in force and keeps it (heap_rate) until the gap
 * ends, and an allocation lies within one gap's bytes, so it is sampled
 * with probability 1 - exp(-n/R') for that gap's mean R'; the record and
 * the live entry carry R', and weighting by it keeps every estimate
 * unbiased while the mean moves.
 *
 * Live objects: a sampled pointer goes into an open-addressing table (key
 * ptr -> size, stack hash, mean gap) under a spinlock; it starts at 4096
 * slots (128 KiB, cache-resident while few samples are live) and doubles at
 * 3/4 full. In front of it is a block
 * filter: one bit per 1 KiB block of address space, direct-mapped (bit
 * (p >> 10) mod 2^19, so the 64 KiB bitmap repeats every 512 MiB), set
 * while at least one live sampled object starts in a block that maps to it.
 * free() and realloc() of a pointer whose bit is clear (nearly all of them)
 * cost one load and a bit test and never touch the lock or the table; a set
 * bit sends them to the table, which says whether the pointer itself was
 * sampled. Indexing by address rather than by a hash keeps the filter
 * cache-friendly: frees of neighbouring heap objects read the same bitmap
 * word and one 64-byte line covers 512 KiB of heap, so the probe is an L1
 * hit, where a hashed filter costs a cache miss per free (measured: the
 * 64 KiB hashed byte filter this replaced was 4% of the cycles of the
 * malloc bench, this one 1%). A false positive (another object starting in
 * the block of a sampled one, or in a block 512 MiB away) only costs the
 * table lookup: about 1024/R of small-object frees at rate R for heaps
 * below 512 MiB (0.2% at the default), heap/(2^19 R) above. Each bit is
 * backed by a 16-bit count of the live samples in its blocks, kept under
 * the lock, so a bit clears when its last sample is freed (a count that
 * reaches 65535 stays: that bucket is slow, still right). The bitmap is
 * static (zero pages until a bit is set); the table and counts are
 * anonymous mappings, never our own malloc.
 *
 * Recursion and bootstrap: the real functions come from dlsym(RTLD_NEXT),
 * once (resolve()); while it runs, allocations on any thread (dlsym's own
 * calloc/malloc among them) are served from a static bootstrap arena
 * (never freed; free() and realloc() recognize its pointers). hearth's own
 * code (the collector, symbolizer, uploader) runs with pl_tls.guard or
 * pl_tls.internal set, so its allocations are never sampled.
 *
 * Stacks: every function of this file lives in its own text section,
 * hearth_heap_text (HEAP_TEXT), whose bounds the linker gives as
 * __start_/__stop_hearth_heap_text, in libhearth.so as in a program that
 * links libhearth's objects. The stack capture leaves out the leading
 * frames whose return address falls in that range, so a sample starts at
 * the program's function that called the allocator whatever the compiler
 * made of the wrappers: they may tail-call the real functions (the
 * unsampled path then has no frame of its own) and reallocarray() may
 * tail-call realloc().
 */
#include "core/common.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/log.h"
#include "preload/preload.h"

#define LIVE_SLOTS_MIN ((size_t)1 << 12)  /* 128 KiB: stays in cache while few samples are live */
#define LIVE_SLOTS_MAX ((size_t)1 << 17)
#define LIVE_MAX (LIVE_SLOTS_MAX / 4 * 3)
#define BLOCK_SHIFT 10   /* the filter's granule: 1 KiB */
#define FILTER_BITS 19   /* 2^19 bits = 64 KiB of bitmap, repeating every 512 MiB of address space */
#define FILTER_WORDS ((size_t)1 << (FILTER_BITS - 6))
#define COUNT_MAX 65535
#define BOOT_SIZE (256 * 1024)
#define OFF_RECHECK ((int64_t)1 << 18)

/* Every function below is placed here: the capture skips its frames by address. */
#define HEAP_TEXT __attribute__((section("hearth_heap_text")))
extern const char __start_hearth_heap_text[] __attribute__((visibility("hidden")));
extern const char __stop_hearth_heap_text[] __attribute__((visibility("hidden")));

typedef struct live_entry {
    uint64_t ptr;   /* 0 = empty */
    uint64_t size;
    uint64_t stack_hash;
    uint64_t rate;  /* the mean gap it was sampled with */
} live_entry;

/*
 * The next definitions (dlsym RTLD_NEXT), published once by resolve().
 * Until then, the four the fast paths call are the *_first functions
 * below, which run it and call on: the fast paths call through them
 * without a test (an allocator call saves a load, a test and a branch).
 * A function dlsym does not find is replaced by a *_missing one that fails
 * (free: leaks), so after resolve() no pointer is NULL. The fast paths
 * load them relaxed, which lets the jump read the pointer from memory
 * itself; on x86 a load is not reordered with later loads anyway, so a
 * thread holding a block from a published function sees every pointer
 * published before it (see resolve()). Where a weaker CPU's load misses
 * one, free_first and realloc_first take the real allocator's block
 * safely (free leaks it, realloc fails and leaves it the caller's).
 */
static void *malloc_first(size_t n);
static void free_first(void *p);
static void *calloc_first(size_t count, size_t size);
static void *realloc_first(void *old, size_t n);
static void *(*real_malloc)(size_t) = malloc_first;
static void (*real_free)(void *) = free_first;
static void *(*real_calloc)(size_t, size_t) = calloc_first;
static void *(*real_realloc)(void *, size_t) = realloc_first;
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
#define REAL(f) __atomic_load_n(&real_##f, __ATOMIC_RELAXED)

/* resolve() has not started | is running (allocations go to the arena) | has published every pointer. */
enum { RESOLVE_NONE, RESOLVE_RUNNING, RESOLVE_DONE };
static _Atomic int resolve_state;

static _Alignas(16) char boot_arena[BOOT_SIZE];
static _Atomic size_t boot_used;

static live_entry *live;
static size_t live_mask;  /* slots - 1; the table doubles (under live_lock) at 3/4 full */
static size_t live_map_len;  /* live's own mapping, or 0 while it is the first table (in the counts' mapping) */
static size_t n_live;  /* written under live_lock; read without it by pl_heap_live_count */
/* The block filter: read by every free(), written under live_lock. */
static _Atomic uint64_t filter_bits[FILTER_WORDS];
static uint16_t *filter_counts;   /* live samples per filter bit (under live_lock) */
static void *tables_map;          /* filter_counts' mapping, which also holds the first live table */
static size_t tables_map_len;
static atomic_flag live_lock = ATOMIC_FLAG_INIT;

/* ---- bootstrap ---- */

HEAP_TEXT static void *boot_alloc(size_t n, size_t align)
{
    if (n > BOOT_SIZE || align > BOOT_SIZE) {  /* never fits; and n + align must not wrap */
        errno = ENOMEM;
        return NULL;
    }
    if (align < 16) align = 16;
    size_t need = n + align;  /* room for the 16-byte size header, aligned */
    size_t at = atomic_fetch_add(&boot_used, need + 16);
    if (at + need + 16 > BOOT_SIZE) return NULL;
    uintptr_t base = (uintptr_t)boot_arena + at + 16;
    uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = n;
    return (void *)p;
}

HEAP_TEXT static inline int is_boot(const void *p)
{
    return (uintptr_t)p - (uintptr_t)boot_arena < BOOT_SIZE;
}

static void filter_mark_boot(void);

/* What a fast path calls when dlsym found no such function. */
HEAP_TEXT static void *malloc_missing(size_t n) { (void)n; errno = ENOMEM; return NULL; }
HEAP_TEXT static void *calloc_missing(size_t c, size_t n) { (void)c; (void)n; errno = ENOMEM; return NULL; }
HEAP_TEXT static void *realloc_missing(void *p, size_t n) { (void)p; (void)n; errno = ENOMEM; return NULL; }
HEAP_TEXT static void free_missing(void *p) { (void)p; }
HEAP_TEXT static int posix_memalign_missing(void **out, size_t a, size_t n) { (void)out; (void)a; (void)n; return ENOMEM; }

HEAP_TEXT static inline int resolve_running(void)
{
    return atomic_load_explicit(&resolve_state, memory_order_acquire) == RESOLVE_RUNNING;
}

/* The next definition of name, typed as the pointer it will go into, or missing. */
#define NEXT(ptr, name, missing) ({ void *f_ = dlsym(RTLD_NEXT, name); f_ ? (__typeof__(ptr))f_ : (missing); })

/*
 * Looks the real functions up, on the first thread that gets here; on any
 * other (or on this one again, from inside dlsym) it returns at once, and
 * the caller takes the arena while resolve_state says RUNNING. The boot
 * bits are set before the first dlsym call (a boot block another thread
 * takes just before that, and frees, reaches free_first or realloc_first,
 * which know it). Every dlsym call comes first, so dlsym's own
 * allocations are all boot blocks; then the pointers
 * are published in an order that lets no block reach a function that
 * cannot take it: free, then realloc, before the functions that hand out
 * the real allocator's blocks.
 */
HEAP_TEXT static void resolve(void)
{
    int expect = RESOLVE_NONE;
    if (atomic_load_explicit(&resolve_state, memory_order_acquire) != RESOLVE_NONE) return;
    if (!atomic_compare_exchange_strong(&resolve_state, &expect, RESOLVE_RUNNING)) return;
    filter_mark_boot();
    __typeof__(real_free) f = NEXT(real_free, "free", free_missing);
    __typeof__(real_realloc) r = NEXT(real_realloc, "realloc", realloc_missing);
    __typeof__(real_calloc) c = NEXT(real_calloc, "calloc", calloc_missing);
    __typeof__(real_posix_memalign) pm = NEXT(real_posix_memalign, "posix_memalign", posix_memalign_missing);
    __typeof__(real_aligned_alloc) aa = NEXT(real_aligned_alloc, "aligned_alloc", calloc_missing);
    __typeof__(real_memalign) ma = NEXT(real_memalign, "memalign", calloc_missing);
    __typeof__(real_valloc) va = NEXT(real_valloc, "valloc", malloc_missing);
    __typeof__(real_pvalloc) pv = NEXT(real_pvalloc, "pvalloc", malloc_missing);
    __typeof__(real_malloc) m = NEXT(real_malloc, "malloc", malloc_missing);
    __atomic_store_n(&real_free, f, __ATOMIC_RELEASE);
    __atomic_store_n(&real_realloc, r, __ATOMIC_RELEASE);
    __atomic_store_n(&real_calloc, c, __ATOMIC_RELEASE);
    __atomic_store_n(&real_posix_memalign, pm, __ATOMIC_RELEASE);
    __atomic_store_n(&real_aligned_alloc, aa, __ATOMIC_RELEASE);
    __atomic_store_n(&real_memalign, ma, __ATOMIC_RELEASE);
    __atomic_store_n(&real_valloc, va, __ATOMIC_RELEASE);
    __atomic_store_n(&real_pvalloc, pv, __ATOMIC_RELEASE);
    __atomic_store_n(&real_malloc, m, __ATOMIC_RELEASE);
    atomic_store_explicit(&resolve_state, RESOLVE_DONE, memory_order_release);
}

/* 1 when every real function is published (resolving now if no thread has begun), 0 while resolve() runs. */
HEAP_TEXT static inline int resolved(void)
{
    if (LIKELY(atomic_load_explicit(&resolve_state, memory_order_acquire) == RESOLVE_DONE)) return 1;
    resolve();
    return atomic_load_explicit(&resolve_state, memory_order_acquire) == RESOLVE_DONE;
}

/*
 * real_free until resolve() has published it. A block that is not a boot block
 * came from the real allocator, whose free was published before it could
 * hand one out; while resolve() runs such a block can only get here
 * through a load that missed that (not on x86): then it is leaked.
 */
HEAP_TEXT static void free_first(void *p)
{
    if (!p || is_boot(p)) return;
    if (resolve_running()) {
        void (*f)(void *) = __atomic_load_n(&real_free, __ATOMIC_ACQUIRE);
        if (f != free_first) f(p);
        return;
    }
    resolve();
    REAL(free)(p);
}

/* ---- sampling ---- */

HEAP_TEXT static uint64_t rng_next(pl_thread *t)
{
    uint64_t x = t->rng;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    t->rng = x;
    return x;
}

/* A new gap for t, drawn with the mean now in force, which t keeps as the gap's. */
HEAP_TEXT static int64_t next_gap(pl_thread *t)
{
    uint64_t rate = atomic_load_explicit(&pl_g.heap_rate_now, memory_order_relaxed);
    if (!rate) rate = pl_g.cfg.heap_rate ? pl_g.cfg.heap_rate : 524288;
    t->heap_rate = rate;
    /* u in (0, 1]: 53 random bits. */
    double u = ((double)(rng_next(t) >> 11) + 1.0) / 9007199254740992.0;
    double gap = -log(u) * (double)rate;
    if (gap < 1) gap = 1;
    if (gap > 1e15) gap = 1e15;
    return (int64_t)gap;
}

HEAP_TEXT double pl_heap_scale(uint64_t size, uint64_t rate)
{
    if (size == 0 || rate <= 1) return 1.0;
    return 1.0 / (1.0 - exp(-(double)size / (double)rate));
}

HEAP_TEXT static void live_lock_take(void)
{
    int spins = 0;
    while (atomic_flag_test_and_set_explicit(&live_lock, memory_order_acquire))
        if (++spins > 64) sched_yield();
}

HEAP_TEXT static void live_lock_drop(void) { atomic_flag_clear_explicit(&live_lock, memory_order_release); }

HEAP_TEXT static inline size_t filter_bit(uint64_t p) { return (size_t)(p >> BLOCK_SHIFT) & (((size_t)1 << FILTER_BITS) - 1); }

/* 1 when p may be a live sampled pointer (its block's bit is set): one load and a test. */
HEAP_TEXT static inline int filter_hit(uint64_t p)
{
    size_t b = filter_bit(p);
    return (atomic_load_explicit(&filter_bits[b >> 6], memory_order_acquire) >> (b & 63)) & 1;
}

/*
 * The bootstrap arena's blocks have their bits set for good, so free() of
 * a boot pointer takes the slow path, which recognizes it (it must never
 * reach the real free). filter_drop never clears them.
 */
static size_t boot_bit0, boot_bits;

HEAP_TEXT static void filter_mark_boot(void)
{
    boot_bit0 = filter_bit((uint64_t)(uintptr_t)boot_arena);
    boot_bits = (BOOT_SIZE >> BLOCK_SHIFT) + 1;
    for (size_t i = 0; i < boot_bits; i++) {
        size_t b = (boot_bit0 + i) & (((size_t)1 << FILTER_BITS) - 1);
        atomic_fetch_or_explicit(&filter_bits[b >> 6], (uint64_t)1 << (b & 63), memory_order_release);
    }
}

HEAP_TEXT static int is_boot_bit(size_t b)
{
    return ((b - boot_bit0) & (((size_t)1 << FILTER_BITS) - 1)) < boot_bits;
}

/*
 * Under live_lock: bit b set or cleared. Every writer of filter_bits holds
 * the lock (filter_mark_boot runs before any table exists, and never clears
 * a bit), so a load and a store do: free() reads the word without the lock
 * and sees it before or after, and the store, unlike a locked or/and, does
 * not hold up the sample while the word's line comes from another core.
 */
HEAP_TEXT static void filter_store(size_t b, int set)
{
    _Atomic uint64_t *w = &filter_bits[b >> 6];
    uint64_t bit = (uint64_t)1 << (b & 63), v = atomic_load_explicit(w, memory_order_relaxed);
    atomic_store_explicit(w, set ? v | bit : v & ~bit, memory_order_release);
}

/* Under live_lock: one more live sample starts at p. */
HEAP_TEXT static void filter_add(uint64_t p)
{
    size_t b = filter_bit(p);
    if (filter_counts[b] == COUNT_MAX) return;
    if (filter_counts[b]++ == 0) filter_store(b, 1);
}

/* Under live_lock: the live sample at p is gone. */
HEAP_TEXT static void filter_drop(uint64_t p)
{
    size_t b = filter_bit(p);
    if (filter_counts[b] == COUNT_MAX || filter_counts[b] == 0) return;
    if (--filter_counts[b] == 0 && !is_boot_bit(b)) filter_store(b, 0);
}

HEAP_TEXT static inline size_t live_index(uint64_t p) { return (size_t)hash_u64(p) & live_mask; }

HEAP_TEXT static size_t live_bytes(size_t slots) { return slots * sizeof(live_entry); }

/*
 * Under live_lock: the table at twice its size. The new mapping is written
 * before it is read (memset), so its pages are never the shared zero page
 * (replacing that flushes the TLB of every CPU running the process). 0, or
 * -ENOMEM with the old table kept.
 */
HEAP_TEXT static int live_grow(void)
{
    size_t old_slots = live_mask + 1, slots = old_slots * 2, old_len = live_map_len, len;
    live_entry *old = live;
    void *m = pl_map_table(live_bytes(slots), &len);
    if (!m) return -ENOMEM;
    memset(m, 0, live_bytes(slots));
    live_map_len = len;
    live_mask = slots - 1;
    __atomic_store_n(&live, (live_entry *)m, __ATOMIC_RELEASE);  /* forget_slow tests it unlocked */
    for (size_t j = 0; j < old_slots; j++) {
        if (!old[j].ptr) continue;
        size_t i = live_index(old[j].ptr);
        while (live[i].ptr) i = (i + 1) & live_mask;
        live[i] = old[j];
    }
    if (old_len) munmap(old, old_len);
    return 0;
}

/* Under live_lock. Returns 0, or -ENOSPC when the table is full. */
HEAP_TEXT static int live_insert(uint64_t p, uint64_t size, uint64_t stack_hash, uint64_t rate)
{
    /* Grown before the probe (a replaced entry would not have needed it: harmless), so one probe finds the slot. */
    int grow_failed = n_live < LIVE_MAX && n_live + 1 > (live_mask + 1) / 4 * 3 && live_grow() != 0;
    size_t i = live_index(p);
    while (live[i].ptr && live[i].ptr != p) i = (i + 1) & live_mask;
    if (live[i].ptr == p) {  /* an address we missed the free of: replace */
        live[i].size = size;
        live[i].stack_hash = stack_hash;
        live[i].rate = rate;
        return 0;
    }
    if (n_live >= LIVE_MAX || grow_failed) return -ENOSPC;
    live[i] = (live_entry){ p, size, stack_hash, rate };
    __atomic_store_n(&n_live, n_live + 1, __ATOMIC_RELAXED);
    filter_add(p);
    return 0;
}

/* Under live_lock: removes p if present (backward-shift deletion, no tombstones). */
HEAP_TEXT static int live_remove(uint64_t p)
{
    size_t i = live_index(p);
    while (live[i].ptr && live[i].ptr != p) i = (i + 1) & live_mask;
    if (!live[i].ptr) return 0;
    size_t hole = i;
    for (size_t j = (i + 1) & live_mask; live[j].ptr; j = (j + 1) & live_mask) {
        size_t home = live_index(live[j].ptr);
        /* j may move to hole when its home is not in (hole, j]. */
        int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            live[hole] = live[j];
            hole = j;
        }
    }
    live[hole].ptr = 0;
    __atomic_store_n(&n_live, n_live - 1, __ATOMIC_RELAXED);
    filter_drop(p);
    return 1;
}

/*
 * p is being freed or reallocated: drops it from the live table if it was
 * sampled. Sample bits are only set once the table exists (boot bits are
 * not: forget_slow checks for it); NULL and pointers never sampled that
 * share a bit with a sample just miss in the table.
 */
HEAP_TEXT __attribute__((noinline, cold)) static void forget_slow(void *p)
{
    /*
     * The bootstrap arena's bits are set at resolve(), before (and whether
     * or not) heap profiling creates the table: a pointer sharing one of
     * them, with no table, was never sampled.
     */
    if (!__atomic_load_n(&live, __ATOMIC_ACQUIRE)) return;
    live_lock_take();
    live_remove((uint64_t)(uintptr_t)p);
    live_lock_drop();
}

HEAP_TEXT static inline void forget(void *p)
{
    if (UNLIKELY(filter_hit((uint64_t)(uintptr_t)p))) forget_slow(p);
}

HEAP_TEXT static uint64_t stack_key(const uint64_t *frames, size_t n_frames, const pl_span *span,
                                    const uint32_t label_ids[PL_MAX_LABELS])
{
    uint64_t h = hash_bytes(frames, n_frames * sizeof(frames[0]), 0x5eed);
    h ^= hash_bytes(span, sizeof(*span), h);
    h ^= hash_bytes(label_ids, PL_MAX_LABELS * sizeof(label_ids[0]), h);
    return h ? h : 1;
}

/*
 * Called when the thread's countdown reached zero (rarely). Samples the
 * allocation p of n bytes when sampling is on; draws the next gap.
 */
HEAP_TEXT __attribute__((noinline)) static void heap_slow(void *p, size_t n)
{
    pl_thread *t = &pl_tls;
    if (!atomic_load_explicit(&pl_g.heap_on, memory_order_relaxed)) {
        t->heap_until = OFF_RECHECK;
        t->heap_rate = 0;  /* no gap in force: sampling starts afresh when it is back on */
        return;
    }
    if (t->heap_rate == 0) {
        /*
         * No gap in force (a new thread, or sampling just (re)started): one
         * is drawn now and this allocation's n bytes are its first, so the
         * allocation is sampled with probability 1 - exp(-n/R') like any
         * other, and weighted by the R' it was drawn with.
         */
        if (t->rng == 0)
            t->rng = hash_u64((uint64_t)(uintptr_t)t ^ (uint64_t)(uintptr_t)p ^ 0x2545f4914f6cdd1dull) | 1;
        t->heap_until = next_gap(t) - (int64_t)n;
        if (t->heap_until > 0) return;
    }
    uint64_t rate = t->heap_rate;  /* the mean of the gap that ends here: the sample's weight */
    t->heap_until = next_gap(t);
    if (!p || is_boot(p) || t->guard || t->internal) return;  /* a boot block is never freed: not a sample */
    if (UNLIKELY(t->tid == 0)) {
#ifdef PL_SANITIZED_HOST
        /*
         * Under ASan/TSan a new thread allocates inside the sanitizer's own
         * thread start, before its thread state exists; the sanitized code
         * we would call to record the sample would crash there. Such
         * threads are sampled once our pthread_create wrapper has
         * registered them.
         */
        return;
#else
        t->tid = (pid_t)syscall(SYS_gettid);  /* a thread we did not create: adopt it */
#endif
    }
    t->guard++;
    uint64_t ticket;
    pl_record *r = pl_ring_reserve(&ticket);
    if (!r) {
        atomic_fetch_add_explicit(&pl_g.n_heap_dropped, 1, memory_order_relaxed);
        t->guard--;
        return;
    }
    /*
     * The stack, span and labels go to this thread's stack first, and the
     * locked instructions (the live table's lock, the counters) come before
     * the record is written into the ring: the ring slot's lines were last
     * read by the collector on another core, and a locked instruction waits
     * until every earlier store has its line. Written last, the record's
     * stores drain while the program goes on.
     */
    const unsigned max_frames = pl_g.cfg.max_frames;
    uint64_t frames[max_frames];
    pl_span span;
    uint32_t label_ids[PL_MAX_LABELS];
    size_t n_frames = pl_capture_here(frames, max_frames, (uint64_t)(uintptr_t)__start_hearth_heap_text,
                                      (uint64_t)(uintptr_t)__stop_hearth_heap_text);
    pl_span_copy(&span);
    pl_labels_copy(label_ids);
    uint64_t key = stack_key(frames, n_frames, &span, label_ids);
    live_lock_take();
    int rc = live_insert((uint64_t)(uintptr_t)p, n, key, rate);
    /* Only ever written under live_lock: a plain store, not a locked add that waits for the line. */
    atomic_store_explicit(&pl_g.n_heap, atomic_load_explicit(&pl_g.n_heap, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    live_lock_drop();
    if (rc) atomic_fetch_add_explicit(&pl_g.n_heap_dropped, 1, memory_order_relaxed);
    r->kind = PL_REC_HEAP;
    r->tid = (uint32_t)t->tid;
    r->value = (int64_t)n;
    r->n_frames = (uint16_t)n_frames;
    r->truncated = n_frames == max_frames;
    r->span = span;
    memcpy(r->label_ids, label_ids, sizeof(label_ids));
    r->stack_hash = key;
    r->heap_rate = rate;
    memcpy(r->frames, frames, n_frames * sizeof(frames[0]));
    pl_ring_commit(ticket);
    t->guard--;
}

/* Counts n bytes down on this thread: 1 while the gap lasts, 0 when this allocation is to be sampled. */
HEAP_TEXT static inline int unsampled(size_t n) { return (pl_tls.heap_until -= (int64_t)n) > 0; }

HEAP_TEXT static inline void account(void *p, size_t n)
{
    if (UNLIKELY(!unsampled(n))) heap_slow(p, n);
}

/* ---- the interposed functions ---- */

/*
 * The fast paths of malloc, calloc, realloc and free only tail-call: the
 * real function when the allocation is not sampled, or one of the noinline
 * functions below when it is (or before resolve()), so they keep no frame
 * and nothing live across a call. Counting happens before the call (a
 * failed allocation's bytes count too: harmless).
 */

/* Sampled: the real call, then the sample (the capture skips this frame). */
HEAP_TEXT __attribute__((noinline)) static void *malloc_sampled(size_t n)
{
    void *p = REAL(malloc)(n);
    heap_slow(p, n);
    return p;
}

/*
 * real_malloc before resolve() has published it (malloc() has counted the
 * bytes): from the bootstrap arena while resolve() runs (dlsym allocating,
 * or another thread meanwhile), else resolving first.
 */
HEAP_TEXT __attribute__((noinline, cold)) static void *malloc_first(size_t n)
{
    if (!resolved()) return boot_alloc(n, 16);
    return REAL(malloc)(n);
}

HEAP_TEXT void *malloc(size_t n)
{
    if (LIKELY(unsampled(n))) return REAL(malloc)(n);
    return malloc_sampled(n);
}

/* A set filter bit: a sampled pointer, one sharing its block, or a boot pointer. */
HEAP_TEXT __attribute__((noinline, cold)) static void free_slow(void *p)
{
    if (is_boot(p)) return;
    forget_slow(p);
    REAL(free)(p);
}

/* An unsampled pointer costs one load and a bit test; NULL at worst takes the slow path, harmlessly. */
HEAP_TEXT void free(void *p)
{
    if (UNLIKELY(filter_hit((uint64_t)(uintptr_t)p))) {
        free_slow(p);
        return;
    }
    REAL(free)(p);
}

HEAP_TEXT __attribute__((noinline)) static void *calloc_sampled(size_t count, size_t size, size_t n)
{
    void *p = REAL(calloc)(count, size);
    heap_slow(p, n);
    return p;
}

/* real_calloc before resolve() has published it: see malloc_first. */
HEAP_TEXT __attribute__((noinline, cold)) static void *calloc_first(size_t count, size_t size)
{
    size_t n;
    if (!resolved())  /* static memory: already zero */
        return __builtin_mul_overflow(count, size, &n) ? NULL : boot_alloc(n, 16);
    return REAL(calloc)(count, size);
}

HEAP_TEXT void *calloc(size_t count, size_t size)
{
    size_t n;
    if (UNLIKELY(__builtin_mul_overflow(count, size, &n))) n = 0;  /* the real calloc fails it */
    if (LIKELY(unsampled(n))) return REAL(calloc)(count, size);
    return calloc_sampled(count, size, n);
}

HEAP_TEXT __attribute__((noinline)) static void *realloc_sampled(void *old, size_t n)
{
    void *p = REAL(realloc)(old, n);
    heap_slow(p, n);
    return p;
}

/* A boot block never reaches the real realloc: copied into a new block (it stays, unused). */
HEAP_TEXT static void *realloc_boot(void *old, size_t n)
{
    size_t old_n = ((size_t *)old)[-1];
    void *p = resolve_running() ? boot_alloc(n, 16) : malloc(n);
    if (p) memcpy(p, old, old_n < n ? old_n : n);
    return p;
}

/*
 * real_realloc before resolve() has published it: see malloc_first. A
 * boot block comes here when it was taken (on another thread) before
 * resolve() set the boot bits, which else send it to realloc_slow. A
 * block of the real allocator's while
 * resolve() runs: as in free_first, realloc was published before such a
 * block could exist; past a load that missed it, the call fails and the
 * block stays the caller's.
 */
HEAP_TEXT __attribute__((noinline, cold)) static void *realloc_first(void *old, size_t n)
{
    if (old && is_boot(old)) return realloc_boot(old, n);
    if (resolve_running()) {
        if (!old) return boot_alloc(n, 16);
        void *(*r)(void *, size_t) = __atomic_load_n(&real_realloc, __ATOMIC_ACQUIRE);
        if (r != realloc_first) return r(old, n);
        errno = ENOMEM;
        return NULL;
    }
    resolve();
    return REAL(realloc)(old, n);
}

/*
 * old's filter bit is set: a sampled pointer, one sharing its block, or a
 * boot pointer (their bits never clear).
 */
HEAP_TEXT __attribute__((noinline, cold)) static void *realloc_slow(void *old, size_t n)
{
    if (is_boot(old)) return realloc_boot(old, n);
    /* Forget first: once realloc returns, the old address may be reused. */
    forget(old);
    return unsampled(n) ? REAL(realloc)(old, n) : realloc_sampled(old, n);
}

HEAP_TEXT void *realloc(void *old, size_t n)
{
    if (UNLIKELY(filter_hit((uint64_t)(uintptr_t)old))) return realloc_slow(old, n);
    if (LIKELY(unsampled(n))) return REAL(realloc)(old, n);
    return realloc_sampled(old, n);
}

HEAP_TEXT void *reallocarray(void *old, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, n);
}

HEAP_TEXT int posix_memalign(void **out, size_t align, size_t n)
{
    if (UNLIKELY(!resolved())) {
        void *p = boot_alloc(n, align);
        if (!p) return ENOMEM;
        *out = p;
        return 0;
    }
    int rc = REAL(posix_memalign)(out, align, n);
    if (rc == 0) account(*out, n);
    return rc;
}

HEAP_TEXT void *aligned_alloc(size_t align, size_t n)
{
    if (UNLIKELY(!resolved())) return boot_alloc(n, align);
    void *p = REAL(aligned_alloc)(align, n);
    account(p, n);
    return p;
}

HEAP_TEXT void *memalign(size_t align, size_t n)
{
    if (UNLIKELY(!resolved())) return boot_alloc(n, align);
    void *p = REAL(memalign)(align, n);
    account(p, n);
    return p;
}

HEAP_TEXT void *valloc(size_t n)
{
    if (UNLIKELY(!resolved())) return boot_alloc(n, 4096);
    void *p = REAL(valloc)(n);
    account(p, n);
    return p;
}

HEAP_TEXT void *pvalloc(size_t n)
{
    if (UNLIKELY(!resolved())) return boot_alloc(n > BOOT_SIZE ? n : (n + 4095) & ~(size_t)4095, 4096);
    void *p = REAL(pvalloc)(n);
    account(p, n);
    return p;
}

/* ---- control ---- */

HEAP_TEXT int pl_heap_init(void)
{
    while (!resolved()) sched_yield();  /* another thread is in dlsym: never this one (not called from dlsym) */
    if (REAL(malloc) == malloc_missing || REAL(free) == free_missing) return -ENOSYS;
    if (live) return 0;
    /* One mapping holds the filter counts and the first live table. */
    size_t counts = ((size_t)1 << FILTER_BITS) * sizeof(uint16_t), len;
    char *m = pl_map_table(counts + live_bytes(LIVE_SLOTS_MIN), &len);
    if (!m) return -errno;
    filter_counts = (uint16_t *)(void *)m;
    tables_map = m;
    tables_map_len = len;
    live_mask = LIVE_SLOTS_MIN - 1;
    live_map_len = 0;
    m += counts;
    __atomic_store_n(&live, (live_entry *)m, __ATOMIC_RELEASE);
    return 0;
}

/*
 * Not HEAP_TEXT: runs on the collector thread, never inside an allocator
 * call. Without live_lock: populating changes no byte, only faults pages
 * in, and a sampling thread must not wait behind it (faulting in a fresh
 * mapping can take milliseconds). tables_map holds the counts and the
 * first live table; a grown table was written whole when it was made.
 */
void pl_heap_prefault(void)
{
    if (tables_map) (void)pl_populate_write(tables_map, tables_map_len);
    (void)pl_populate_write((void *)filter_bits, sizeof(filter_bits));
}

/*
 * Not HEAP_TEXT: the collector thread, after each drain. The sample budget:
 * the rate of samples taken since the window began (n_heap: those the full
 * ring dropped are left out, and the next drains catch up) sets the mean
 * for new gaps, rate_now * taken_per_second / budget, between cfg.heap_rate
 * and HEAP_RATE_MAX (64 MiB: 1000 samples a second up to 64 GB/s; a gap
 * drawn during a burst runs on after it, so the cap also bounds how long a
 * thread that then allocates slowly goes unsampled). The mean goes up at the collector's
 * first wake-up (every 100 ms, or each eighth of the ring) once the window
 * has lasted ADAPT_MIN_NS, holds 64 samples and is a quarter over budget;
 * it is set either way after a window of ADAPT_WINDOW_NS, so it comes back
 * down a second after the allocating does. Each change starts a new
 * window: the old one's samples were drawn with the old mean.
 */
#define ADAPT_MIN_NS 20000000ll
#define ADAPT_WINDOW_NS 1000000000ll
#define HEAP_RATE_MAX ((uint64_t)64 << 20)
void pl_heap_adapt(int64_t now_ns)
{
    static int64_t window_start;
    static uint64_t window_taken;
    uint64_t budget = pl_g.cfg.heap_budget;
    uint64_t taken = atomic_load(&pl_g.n_heap);
    int64_t dt = now_ns - window_start;
    if (!budget || !atomic_load(&pl_g.heap_on) || dt <= 0) {
        window_start = now_ns;
        window_taken = taken;
        return;
    }
    double per_sec = (double)(taken - window_taken) * 1e9 / (double)dt;
    if (dt < ADAPT_WINDOW_NS && (dt < ADAPT_MIN_NS || taken - window_taken < 64 || per_sec <= (double)budget * 1.25))
        return;
    uint64_t rate = atomic_load(&pl_g.heap_rate_now);
    double want = (double)rate * per_sec / (double)budget;
    uint64_t next = want < (double)pl_g.cfg.heap_rate ? pl_g.cfg.heap_rate
                    : want > (double)HEAP_RATE_MAX   ? HEAP_RATE_MAX
                                                     : (uint64_t)want;
    if (next != rate) {
        atomic_store(&pl_g.heap_rate_now, next);
        log_debug("hearth: %.0f heap samples a second (budget %u): mean gap %" PRIu64 " bytes, was %" PRIu64,
                  per_sec, pl_g.cfg.heap_budget, next, rate);
    }
    window_start = now_ns;
    window_taken = taken;
}

HEAP_TEXT void pl_heap_start(void)
{
    if (!live) return;
    atomic_store(&pl_g.heap_rate_now, pl_g.cfg.heap_rate);  /* the budget raises it again if it must */
    atomic_store(&pl_g.heap_on, 1);
    /*
     * The starting thread (main, for LD_PRELOAD) begins sampling now; other
     * threads that allocated while sampling was off notice within
     * OFF_RECHECK bytes.
     */
    pl_tls.heap_until = 0;
    pl_tls.heap_rate = 0;
}

HEAP_TEXT void pl_heap_stop(void) { atomic_store(&pl_g.heap_on, 0); }

HEAP_TEXT void pl_heap_lock(void) { live_lock_take(); }
HEAP_TEXT void pl_heap_unlock(void) { live_lock_drop(); }

HEAP_TEXT size_t pl_heap_live_snapshot(pl_live_item *out, size_t max)
{
    size_t n = 0;
    if (!live) return 0;
    live_lock_take();
    for (size_t i = 0; i <= live_mask && n < max; i++)
        if (live[i].ptr) out[n++] = (pl_live_item){ live[i].stack_hash, live[i].size, live[i].rate };
    live_lock_drop();
    return n;
}

HEAP_TEXT uint64_t pl_heap_live_count(void)
{
    return __atomic_load_n(&n_live, __ATOMIC_RELAXED);
}

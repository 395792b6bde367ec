/*
 * ring.c: the bounded ring that carries samples from producers (signal
 * handlers on any thread, the heap slow path) to the one consumer (the
 * collector thread).
 *
 * Algorithm: Dmitry Vyukov's bounded queue with one consumer, whose frees
 * are published in batches. Each slot has a sequence number; a producer
 * claims position pos (CAS on head) when pos < ring_free_until, fills the
 * slot and publishes seq = pos + 1; the consumer reads slot tail when its
 * seq == tail + 1. A stale seq (an earlier lap's pos + 1) never equals a
 * later pos + 1, so freeing a slot writes nothing to it: the consumer only
 * moves ring_free_until (tail + slots) forward, every sixteenth of the ring
 * and when it has drained everything. So a producer's only access to its
 * slot's lines is the writing of its record (Vyukov's producer first reads
 * the slot's seq, a line the consumer last touched on another core, then
 * writes it again: two transfers), and the line producers read for room
 * changes a few times per lap. No locks, no allocation after init, no
 * syscalls: safe in a signal handler, including one that interrupted
 * another producer on the same thread (they claim different slots). A full ring makes reserve return
 * NULL; the caller counts a drop instead of waiting.
 *
 * Memory: the slots are one anonymous mapping made at init (never through
 * malloc, which we interpose) and kept for the life of the process. Each
 * slot stores its sequence number minus its own index, so a fresh mapping
 * (all zero) is already the initial state (slot i at seq i): init touches
 * none of the ring's 5 MB (8192 slots at the default 64 frames, fewer and
 * larger for deeper stacks), whose pages fault in as samples first reach
 * them, on the collector's time rather than before main(): the collector
 * thread populates them for writing as it starts (pl_ring_prefault), since
 * a producer's read-then-write of a fresh page costs a TLB shootdown. A
 * fork child's reset drops the pages (MADV_DONTNEED).
 */
#include "core/common.h"

#include <sys/mman.h>
#include <unistd.h>

#include "preload/preload.h"

typedef struct pl_slot {
    _Atomic uint64_t seq;   /* the sequence number minus the slot's index */
    pl_record rec;          /* followed by its frames: slots are ring_stride bytes apart */
} pl_slot;

#define RING_BYTES ((size_t)5 << 20)
#define RING_MIN_SLOTS 1024

static char *ring_slots;
static size_t ring_mask, ring_stride;
static _Atomic uint64_t ring_head;
static uint64_t ring_tail;
static _Alignas(64) _Atomic uint64_t ring_free_until;  /* positions below it are free (tail + slots, published in batches) */

static unsigned ring_frames;

unsigned pl_ring_frames(void) { return ring_frames; }

static size_t ring_bytes(void) { return (ring_mask + 1) * ring_stride; }

static inline pl_slot *slot_at(size_t i) { return (pl_slot *)(ring_slots + i * ring_stride); }

/* Slot i's sequence number (stored relative to i, see above). */
static inline uint64_t slot_seq(size_t i)
{
    return atomic_load_explicit(&slot_at(i)->seq, memory_order_acquire) + i;
}

static inline void slot_publish(size_t i, uint64_t seq)
{
    atomic_store_explicit(&slot_at(i)->seq, seq - i, memory_order_release);
}

int pl_ring_init(unsigned max_frames)
{
    if (ring_slots) return 0;  /* kept for the life of the process, with its first depth */
    if (max_frames < 1 || max_frames > PL_FRAMES_CAP) return -EINVAL;
    size_t stride = (sizeof(pl_slot) + max_frames * sizeof(uint64_t) + 63) & ~(size_t)63;
    size_t slots = RING_MIN_SLOTS;
    while (slots * 2 * stride <= RING_BYTES) slots *= 2;
    size_t len;
    void *m = pl_map_table(slots * stride, &len);
    if (!m) return -errno;
    ring_stride = stride;
    ring_frames = max_frames;
    ring_mask = slots - 1;
    atomic_store_explicit(&ring_head, 0, memory_order_relaxed);
    ring_tail = 0;
    atomic_store_explicit(&ring_free_until, slots, memory_order_relaxed);
    ring_slots = m;  /* zero: every slot at its initial sequence */
    return 0;
}

void pl_ring_reset(void)
{
    if (!ring_slots) return;
    /* A private anonymous mapping reads as zero pages after MADV_DONTNEED; else zero the sequences one by one. */
    if (madvise(ring_slots, ring_bytes(), MADV_DONTNEED) != 0)
        for (size_t i = 0; i <= ring_mask; i++) atomic_store_explicit(&slot_at(i)->seq, 0, memory_order_relaxed);
    ring_tail = 0;
    atomic_store_explicit(&ring_free_until, ring_mask + 1, memory_order_relaxed);
    atomic_store_explicit(&ring_head, 0, memory_order_release);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  /* Linux 5.14 */
#endif

int pl_populate_write(void *p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p & ~(page - 1), hi = ((uintptr_t)p + n + page - 1) & ~(page - 1);
    if (!p || !n) return 0;
    return madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) ? -errno : 0;
}

void *pl_map_table(size_t n, size_t *len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), want = (n + page - 1) & ~(page - 1);
    void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    *len = want;
    return p;
}

void pl_ring_prefault(const _Atomic int *cancel)
{
    const size_t chunk = (size_t)2 << 20;
    for (size_t at = 0; ring_slots && at < ring_bytes(); at += chunk) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) return;
        (void)pl_populate_write(ring_slots + at, MIN(chunk, ring_bytes() - at));
    }
}

pl_record *pl_ring_reserve(uint64_t *ticket)
{
    if (!ring_slots) return NULL;
    uint64_t pos = atomic_load_explicit(&ring_head, memory_order_relaxed);
    do {
        /* acquire: the consumer's reads of the slot happened before it was counted free */
        if (pos >= atomic_load_explicit(&ring_free_until, memory_order_acquire)) return NULL;  /* full */
    } while (!atomic_compare_exchange_weak_explicit(&ring_head, &pos, pos + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    *ticket = pos;
    return &slot_at(pos & ring_mask)->rec;
}

void pl_ring_commit(uint64_t ticket)
{
    slot_publish(ticket & ring_mask, ticket + 1);
    /* Every eighth of the ring, wake the collector early (write(2): async-signal-safe). */
    if ((ticket & (ring_mask >> 3)) == (ring_mask >> 3)) pl_collector_kick();
}

/* The consumer's frees, published (release: its reads of those slots are done). */
static void publish_free(void)
{
    atomic_store_explicit(&ring_free_until, ring_tail + ring_mask + 1, memory_order_release);
}

pl_record *pl_ring_peek(void)
{
    if (!ring_slots) return NULL;
    size_t i = ring_tail & ring_mask;
    if (slot_seq(i) == ring_tail + 1) return &slot_at(i)->rec;
    /* drained: every slot freed so far is offered again */
    if (atomic_load_explicit(&ring_free_until, memory_order_relaxed) != ring_tail + ring_mask + 1) publish_free();
    return NULL;
}

void pl_ring_release(void)
{
    ring_tail++;
    if ((ring_tail & (ring_mask >> 4)) == 0) publish_free();
}

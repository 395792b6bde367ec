/*
 * ring.c: the bounded ring that carries samples from producers (signal
 * handlers on any thread, the heap slow path) to the one consumer (the
 * collector thread).
 *
 * Algorithm: Dmitry Vyukov's bounded MPMC queue used with one consumer.
 * Each slot has a sequence number; a producer claims position pos when the
 * slot's seq == pos (CAS on head), fills it and publishes seq = pos + 1; the
 * consumer reads slot tail when seq == tail + 1 and frees it with
 * seq = tail + slots. No locks, no allocation after init, no syscalls: safe
 * in a signal handler, including one that interrupted another producer on the
 * same thread (they claim different slots). A full ring makes reserve return
 * NULL; the caller counts a drop instead of waiting.
 *
 * Memory: the slots are one anonymous mapping made at init (never through
 * malloc, which we interpose) and kept for the life of the process. Each
 * slot stores its sequence number minus its own index, so a fresh mapping
 * (all zero) is already the initial state (slot i at seq i): init touches
 * none of the ring's 5 MB, whose pages fault in as samples first reach
 * them, on the collector's and the sampling threads' time rather than
 * before main(). A fork child's reset drops the pages (MADV_DONTNEED).
 */
#include "core/common.h"

#include <sys/mman.h>

#include "preload/preload.h"

typedef struct pl_slot {
    _Atomic uint64_t seq;   /* the sequence number minus the slot's index */
    pl_record rec;
} pl_slot;

static pl_slot *ring_slots;
static size_t ring_mask;
static _Atomic uint64_t ring_head;
static uint64_t ring_tail;

static size_t ring_bytes(void) { return (ring_mask + 1) * sizeof(pl_slot); }

/* Slot i's sequence number (stored relative to i, see above). */
static inline uint64_t slot_seq(size_t i)
{
    return atomic_load_explicit(&ring_slots[i].seq, memory_order_acquire) + i;
}

static inline void slot_publish(size_t i, uint64_t seq)
{
    atomic_store_explicit(&ring_slots[i].seq, seq - i, memory_order_release);
}

int pl_ring_init(size_t slots)
{
    if (ring_slots) return 0;
    if (slots < 2 || (slots & (slots - 1))) return -EINVAL;
    void *m = mmap(NULL, slots * sizeof(pl_slot), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return -errno;
    ring_mask = slots - 1;
    atomic_store_explicit(&ring_head, 0, memory_order_relaxed);
    ring_tail = 0;
    ring_slots = m;  /* zero: every slot at its initial sequence */
    return 0;
}

void pl_ring_reset(void)
{
    if (!ring_slots) return;
    /* A private anonymous mapping reads as zero pages after MADV_DONTNEED; else zero the sequences one by one. */
    if (madvise(ring_slots, ring_bytes(), MADV_DONTNEED) != 0)
        for (size_t i = 0; i <= ring_mask; i++) atomic_store_explicit(&ring_slots[i].seq, 0, memory_order_relaxed);
    atomic_store_explicit(&ring_head, 0, memory_order_release);
    ring_tail = 0;
}

pl_record *pl_ring_reserve(uint64_t *ticket)
{
    if (!ring_slots) return NULL;
    uint64_t pos = atomic_load_explicit(&ring_head, memory_order_relaxed);
    for (;;) {
        size_t i = pos & ring_mask;
        int64_t dif = (int64_t)(slot_seq(i) - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&ring_head, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                *ticket = pos;
                return &ring_slots[i].rec;
            }
        } else if (dif < 0) {
            return NULL;  /* full */
        } else {
            pos = atomic_load_explicit(&ring_head, memory_order_relaxed);
        }
    }
}

void pl_ring_commit(uint64_t ticket)
{
    slot_publish(ticket & ring_mask, ticket + 1);
    /* Every eighth of the ring, wake the collector early (write(2): async-signal-safe). */
    if ((ticket & (ring_mask >> 3)) == (ring_mask >> 3)) pl_collector_kick();
}

pl_record *pl_ring_peek(void)
{
    if (!ring_slots) return NULL;
    size_t i = ring_tail & ring_mask;
    return slot_seq(i) == ring_tail + 1 ? &ring_slots[i].rec : NULL;
}

void pl_ring_release(void)
{
    slot_publish(ring_tail & ring_mask, ring_tail + ring_mask + 1);
    ring_tail++;
}

/*
 * test_ring.c: libhearth's sample ring (src/preload/ring.c) on its own:
 * order, fullness, reuse after a drain, reset, and several producers on
 * threads against a consumer draining at the same time, over many laps.
 * The collector's wake-up is the only thing the ring calls outside
 * itself; here the consumer polls, so the wake-up does nothing.
 */
#include "t.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "core/common.h"
#include "preload/preload.h"

void pl_collector_kick(void) {}

static size_t n_slots;  /* found by filling the ring once */

/* Every wait and fill loop below gives up after this long: a broken ring fails, never hangs. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
enum { DEADLINE_S = 30 };

/* Reserves, fills with value, commits; 0 when the ring is full. */
static int push(int64_t value)
{
    uint64_t ticket;
    pl_record *r = pl_ring_reserve(&ticket);
    if (!r) return 0;
    r->kind = PL_REC_HEAP;
    r->value = value;
    r->n_frames = 1;
    r->frames[0] = (uint64_t)value * 3;
    pl_ring_commit(ticket);
    return 1;
}

/* Pushes until the ring says full, at most limit records; returns how many it took. */
static size_t fill(int64_t first, size_t limit)
{
    size_t n = 0;
    while (n < limit && push(first + (int64_t)n)) n++;
    return n;
}

/* Drains everything committed; checks values come as first, first + 1, ...; returns the count. */
static size_t drain_expect(int64_t first)
{
    size_t n = 0;
    pl_record *r;
    while ((r = pl_ring_peek())) {
        ASSERT_EQ(r->value, first + (int64_t)n);
        ASSERT_EQ(r->frames[0], (uint64_t)r->value * 3);
        pl_ring_release();
        n++;
    }
    return n;
}

TEST(ring_keeps_order_says_full_and_frees_on_drain)
{
    ASSERT_OK(pl_ring_init(8));
    pl_ring_reset();
    int64_t v = (int64_t)fill(0, (size_t)1 << 24);
    n_slots = (size_t)v;
    ASSERT(n_slots >= 1024 && (n_slots & (n_slots - 1)) == 0);  /* a power of two, all of it usable */
    ASSERT_EQ(push(-1), 0);                                      /* still full */
    ASSERT_EQ(drain_expect(0), n_slots);
    ASSERT(pl_ring_peek() == NULL);
    /* the whole ring again, over the slots just freed: a second lap */
    for (size_t i = 0; i < n_slots; i++) ASSERT(push(v + (int64_t)i));
    ASSERT_EQ(push(-1), 0);
    ASSERT_EQ(drain_expect(v), n_slots);
}

TEST(ring_frees_in_batches_while_draining)
{
    /* Half full, drain a quarter: at least part of that quarter is offered again before the drain ends. */
    pl_ring_reset();
    size_t half = n_slots / 2, quarter = n_slots / 4;
    for (size_t i = 0; i < half; i++) ASSERT(push((int64_t)i));
    for (size_t i = 0; i < quarter; i++) {
        pl_record *r = pl_ring_peek();
        ASSERT(r != NULL);
        ASSERT_EQ(r->value, (int64_t)i);
        pl_ring_release();
    }
    size_t more = fill((int64_t)half, 2 * n_slots);
    /* the other half was free all along; of the quarter drained, all but under 1/16 of the ring */
    ASSERT(more >= n_slots - half + quarter - n_slots / 16);
    ASSERT(more <= n_slots - half + quarter);
    ASSERT_EQ(drain_expect((int64_t)quarter), half - quarter + more);
    /* drained to empty: everything is free again */
    ASSERT_EQ(fill(0, 2 * n_slots), n_slots);
    ASSERT_EQ(drain_expect(0), n_slots);
}

TEST(ring_reset_empties_it)
{
    pl_ring_reset();
    for (int i = 0; i < 100; i++) ASSERT(push(i));
    pl_ring_reset();
    ASSERT(pl_ring_peek() == NULL);
    ASSERT(push(7));
    ASSERT_EQ(drain_expect(7), 1);
}

/* ---- several producers, one consumer, at the same time ---- */

enum { PRODUCERS = 3, PER_PRODUCER = 300000 };

static _Atomic int producers_done;

static void *producer(void *arg)
{
    int64_t id = (int64_t)(intptr_t)arg;
    double until = now_s() + DEADLINE_S;
    for (int64_t i = 0; i < PER_PRODUCER; i++)
        while (!push(id << 32 | i)) {  /* full: wait for the consumer */
            if (now_s() > until) {
                atomic_fetch_add(&producers_done, 1);
                return NULL;
            }
            sched_yield();
        }
    atomic_fetch_add(&producers_done, 1);
    return NULL;
}

TEST(ring_producers_on_threads_lose_and_repeat_nothing)
{
    pthread_t th[PRODUCERS];
    int64_t next[PRODUCERS] = {0};
    size_t got = 0;
    pl_ring_reset();
    atomic_store(&producers_done, 0);
    for (intptr_t i = 0; i < PRODUCERS; i++) ASSERT_EQ(pthread_create(&th[i], NULL, producer, (void *)i), 0);
    double until = now_s() + DEADLINE_S + 5;
    for (;;) {
        pl_record *r = pl_ring_peek();
        if (!r) {
            if (atomic_load(&producers_done) == PRODUCERS && !pl_ring_peek()) break;
            if (now_s() > until) break;  /* a record that never comes: the count below fails */
            sched_yield();
            continue;
        }
        int64_t id = r->value >> 32, seq = r->value & 0xffffffff;
        ASSERT(id >= 0 && id < PRODUCERS);
        if (seq != next[id]) {  /* each producer's records in its order, none lost, none twice */
            atomic_store(&producers_done, PRODUCERS);
            t_fail(__FILE__, __LINE__, "producer %lld: record %lld where %lld was due", (long long)id,
                   (long long)seq, (long long)next[id]);
        }
        ASSERT_EQ(r->frames[0], (uint64_t)r->value * 3);
        next[id]++;
        got++;
        pl_ring_release();
    }
    for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
    ASSERT(pl_ring_peek() == NULL);
    ASSERT_EQ(got, (size_t)PRODUCERS * PER_PRODUCER);
    printf("%zu records through a ring of %zu slots (%.0f laps)\n", got, n_slots, (double)got / (double)n_slots);
}

/*
 * wl_heapfree.c: the free() path of libhearth's heap profiler, exactly.
 *
 *   wl_heapfree DIR
 *
 * Allocates "unsampled" blocks before profiling starts, then starts heap
 * profiling with hearth_start() at a sampling rate of 1 byte (every
 * allocation is sampled) writing to file://DIR, and checks hearth's count
 * of live sampled objects (hearth_get_stats().heap_live) as it goes:
 *   - every allocation entry point (malloc, calloc, realloc, reallocarray,
 *     posix_memalign, aligned_alloc, memalign, valloc, pvalloc) adds one
 *     live object per block held, realloc moving a block keeps one;
 *   - freeing the unsampled blocks, many of them neighbours of sampled
 *     blocks (same 64 bytes of address space), changes nothing: an
 *     unsampled pointer is never taken for a sampled one;
 *   - freeing every block made in freed_here() brings the count back to
 *     where it was: no sampled free is missed;
 *   - many_here() holds MANY blocks at once, more than a live table's
 *     first size (4096 slots, grown at 3/4 full) several times over, and
 *     BIG blocks of 3 MiB spread over more than 100 MiB of address space
 *     (several of glibc's 64 MiB heaps, or mmap): the
 *     count follows (less what the sample ring dropped, which is never
 *     tracked), half of them freed drops it by exactly that half, the rest
 *     freed brings it back: nothing is lost or kept when the table grows;
 *   - kept_here() keeps KEPT blocks of 100 bytes until hearth_stop(), so the
 *     final profile has them in inuse and nothing of freed_here().
 * Exits 0 when every check holds; otherwise says which on stderr. Works
 * LD_PRELOADed or linked (the API is declared weak). Prints nothing on
 * stdout (stdio would allocate, and be counted).
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hearth.h"

#pragma weak hearth_start
#pragma weak hearth_stop
#pragma weak hearth_get_stats

enum { PRE = 4096, ROUNDS = 64, KINDS = 10, KEPT = 100, MANY = 20000, BIG = 48 };

/* volatile: the compiler may not drop an allocation whose pointer is never read. */
static void *volatile pre[PRE];
static void *volatile held[ROUNDS * KINDS];
static void *volatile kept[KEPT];
static void *volatile many[MANY + BIG];
static void *volatile warm;
static int failed;

static uint64_t live_now(void)
{
    hearth_stats st;
    hearth_get_stats(&st);
    return st.heap_live;
}

static void expect_live(uint64_t want, const char *when)
{
    uint64_t got = live_now();
    if (got != want) {
        fprintf(stderr, "%s: %llu live sampled objects, expected %llu\n", when, (unsigned long long)got,
                (unsigned long long)want);
        failed = 1;
    }
}

/* Allocates ROUNDS blocks through each entry point; returns how many are held. */
__attribute__((noinline)) size_t freed_here(void)
{
    size_t n = 0;
    for (int r = 0; r < ROUNDS; r++) {
        void *volatile p;
        held[n++] = malloc(32);
        held[n++] = calloc(2, 16);
        held[n++] = realloc(NULL, 40);
        p = malloc(24);
        held[n++] = realloc(p, 3000 + (size_t)r);  /* moves: the old block is no longer live */
        p = malloc(48);
        held[n++] = reallocarray(p, 2, 20);          /* may stay in place */
        p = NULL;
        void *q = NULL;
        if (posix_memalign(&q, 64, 64) != 0) q = NULL;
        p = q;
        held[n++] = p;
        held[n++] = aligned_alloc(256, 512);
        held[n++] = memalign(4096, 100);
        held[n++] = valloc(200);
        held[n++] = pvalloc(300);
    }
    return n;
}

/* In chunks a third of the sample ring, each given time to drain (the collector runs every 100 ms). */
__attribute__((noinline)) void many_here(void)
{
    for (int i = 0; i < MANY; i++) {
        many[i] = malloc(16 + (size_t)(i % 7) * 8);
        if (i % 2500 == 2499) nanosleep(&(struct timespec){ .tv_nsec = 150 * 1000 * 1000 }, NULL);
    }
    for (int i = MANY; i < MANY + BIG; i++) many[i] = malloc((size_t)3 << 20);  /* left untouched: no memory used */
}

static uint64_t dropped_now(void)
{
    hearth_stats st;
    hearth_get_stats(&st);
    return st.heap_dropped;
}

__attribute__((noinline)) void kept_here(void)
{
    for (int i = 0; i < KEPT; i++) kept[i] = malloc(100);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !hearth_start) {
        fprintf(stderr, "usage: wl_heapfree DIR (with libhearth preloaded or linked)\n");
        return 2;
    }
    char dest[1024];
    snprintf(dest, sizeof(dest), "file://%s", argv[1]);
    /* Unsampled: made before profiling starts; every other one freed so sampled blocks land between them. */
    for (int i = 0; i < PRE; i++) pre[i] = malloc(32);
    for (int i = 1; i < PRE; i += 2) {
        free(pre[i]);
        pre[i] = NULL;
    }
    hearth_options o;
    memset(&o, 0, sizeof(o));
    o.server_address = dest;
    o.application_name = "heapfree";
    o.profiles = HEARTH_PROFILE_HEAP;
    o.heap_sample_rate = 1;
    int rc = hearth_start(&o);
    if (rc != 0) { fprintf(stderr, "hearth_start: %d\n", rc); return 1; }
    warm = malloc(8);  /* the thread's first allocation starts its sampling (not itself sampled) */
    free(warm);
    uint64_t live0 = live_now();
    hearth_stats st0;
    hearth_get_stats(&st0);

    size_t n = freed_here();
    for (size_t i = 0; i < n; i++)
        if (!held[i]) { fprintf(stderr, "allocation %zu failed\n", i); return 1; }
    hearth_stats st1;
    hearth_get_stats(&st1);
    if (st1.heap_dropped != st0.heap_dropped) {
        fprintf(stderr, "samples dropped (%llu): the checks below would not hold\n",
                (unsigned long long)(st1.heap_dropped - st0.heap_dropped));
        return 1;
    }
    expect_live(live0 + n, "after allocating");

    /* Neighbours: sampled 32-byte blocks within 64 bytes of a still-held unsampled one. */
    size_t near = 0;
    for (int i = 0; i < PRE; i += 2)
        for (size_t k = 0; k < n; k += KINDS) {
            intptr_t d = (intptr_t)held[k] - (intptr_t)pre[i];
            if (d > -64 && d < 64) near++;
        }
#ifndef __SANITIZE_ADDRESS__
    /* (ASan's allocator keeps freed blocks in quarantine and pads them: no neighbours to expect there.) */
    if (near == 0) {
        fprintf(stderr, "no sampled block landed next to an unsampled one: the test proves nothing\n");
        failed = 1;
    }
#endif
    for (int i = 0; i < PRE; i += 2) free(pre[i]);
    expect_live(live0 + n, "after freeing the unsampled neighbours");

    for (size_t i = 0; i < n; i++) free(held[i]);
    expect_live(live0, "after freeing every sampled block");

    uint64_t dropped0 = dropped_now();
    many_here();
    uint64_t tracked = MANY + BIG - (dropped_now() - dropped0);
    if (tracked < 2 * 4096) {  /* past 3072 and 6144: grown twice at least */
        fprintf(stderr, "only %llu of %d blocks tracked: the live table did not have to grow\n",
                (unsigned long long)tracked, MANY + BIG);
        failed = 1;
    }
    expect_live(live0 + tracked, "after holding many");
    uint64_t before_half = live_now();
    for (int i = 0; i < MANY + BIG; i += 2) free(many[i]);
    uint64_t freed_tracked = before_half - live_now();
    for (int i = 1; i < MANY + BIG; i += 2) free(many[i]);
    expect_live(live0, "after freeing the many");
    if (freed_tracked == 0 || freed_tracked >= tracked) {
        fprintf(stderr, "freeing half of the many dropped the count by %llu of %llu\n",
                (unsigned long long)freed_tracked, (unsigned long long)tracked);
        failed = 1;
    }

    kept_here();
    expect_live(live0 + KEPT, "after keeping");
    hearth_stop();
    return failed;
}

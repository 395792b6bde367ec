/*
 * wl_cpu.c: deterministic CPU workload for libhearth tests and bench.
 *
 *   wl_cpu THREADS ROUNDS
 *
 * Every thread runs ROUNDS rounds of caller_one() then caller_two(); both
 * call the same frameless leaf, caller_one with twice the work, so the
 * expected CPU shares are caller_one 2/3 and caller_two 1/3 of the leaf's
 * time, whatever the thread count. Telling the callers apart needs a right
 * unwind through the frameless leaf (CFI), not just frame pointers.
 * Prints the CPU seconds it used on stdout.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/*
 * A cycle (caller_one then caller_two) is short (~60 us) next to the
 * sampling period (4-10 ms), and its length is random (the same n for both
 * calls keeps the 2:1 ratio exact), so samples land at every phase of the
 * cycle instead of aliasing with a fixed period; a "round" of the command
 * line is 100 cycles.
 */
#define UNIT 20000L
#define CYCLES_PER_ROUND 100

static __thread volatile uint64_t sink;  /* per thread: no data race between workers */

__attribute__((noinline)) void leaf_work(long iterations)
{
    uint64_t x = sink + 1;
    for (long i = 0; i < iterations; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    sink = x;
}

__attribute__((noinline)) void caller_one(long n) { leaf_work(2 * n); __asm__ volatile(""); }
__attribute__((noinline)) void caller_two(long n) { leaf_work(n); __asm__ volatile(""); }

static long rounds;

static void *thread_main(void *arg)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)arg;
    for (long r = 0; r < rounds * CYCLES_PER_ROUND; r++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        long n = UNIT / 2 + (long)(rng % UNIT);  /* mean UNIT */
        caller_one(n);
        caller_two(n);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 4;
    rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
    if (threads < 1 || threads > 256 || rounds < 1) {
        fprintf(stderr, "usage: wl_cpu THREADS(1..256) ROUNDS\n");
        return 2;
    }
    pthread_t t[256];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, thread_main, (void *)(uintptr_t)(i + 1)) != 0) return 1;
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    printf("%.3f\n", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 0;
}

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
 * A unit is short (~20 us) next to the sampling period (4-10 ms), so samples
 * land at every phase of the caller_one/caller_two cycle instead of aliasing
 * with it; a "round" of the command line is 100 cycles.
 */
#define UNIT 20000L
#define CYCLES_PER_ROUND 100

static volatile uint64_t sink;

__attribute__((noinline)) void leaf_work(long units)
{
    uint64_t x = sink + 1;
    for (long i = 0; i < units * UNIT; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    sink = x;
}

__attribute__((noinline)) void caller_one(long units) { leaf_work(2 * units); __asm__ volatile(""); }
__attribute__((noinline)) void caller_two(long units) { leaf_work(units); __asm__ volatile(""); }

static long rounds;

static void *thread_main(void *arg)
{
    (void)arg;
    for (long r = 0; r < rounds * CYCLES_PER_ROUND; r++) {
        caller_one(1);
        caller_two(1);
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
        if (pthread_create(&t[i], NULL, thread_main, NULL) != 0) return 1;
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    printf("%.3f\n", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 0;
}

/*
 * wl_heap.c: deterministic allocation workload for libhearth tests and bench.
 *
 *   wl_heap KEEP_MIB CHURN_MIB [mix [THREADS] | late | wide]
 *
 * keep_blocks() allocates KEEP_MIB MiB in 64 KiB blocks and keeps them to
 * the end (never freed: they are live when the final profile is taken);
 * churn() allocates CHURN_MIB MiB in 64-byte blocks, freeing each at once.
 * Expected: inuse_space ~ KEEP_MIB MiB all in keep_blocks; alloc_space ~
 * KEEP_MIB in keep_blocks and CHURN_MIB in churn.
 * "mix" runs a malloc-heavy mixed-size workload instead (for the bench):
 * CHURN_MIB MiB through malloc/realloc/free of sizes 16..4096 with a
 * window of 1024 live blocks per thread, on THREADS threads (default 2:
 * glibc's malloc takes cheaper paths while a process has a single thread,
 * which no profiler with a background thread can keep, and which no real
 * service has), and prints the CPU seconds it used.
 * "late" runs churn() first and keep_blocks() after it (the kept blocks are
 * then sampled at whatever mean the churn left: the sample budget's test).
 * "wide" spreads CHURN_MIB MiB of heap in 100 KiB blocks over one
 * contiguous range and frees them: past 512 MiB the blocks' addresses (100
 * KiB apart) fall in every 1 KiB block of libhearth's free() filter modulo
 * its 512 MiB period, the bootstrap arena's blocks included.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *volatile keep_sink;
static void **volatile kept;  /* the kept blocks stay reachable (no leak reports) */

__attribute__((noinline)) void **keep_blocks(long mib)
{
    long n = mib * 16;
    void **blocks = calloc((size_t)n + 1, sizeof(void *));
    for (long i = 0; i < n; i++) {
        blocks[i] = malloc(64 * 1024);
        memset(blocks[i], 1, 64);
    }
    return blocks;
}

__attribute__((noinline)) void churn(long mib)
{
    long n = mib * 1024 * 1024 / 64;
    for (long i = 0; i < n; i++) {
        char *p = malloc(64);
        p[0] = (char)i;
        keep_sink = p;
        free(p);
    }
}

__attribute__((noinline)) void mix(long mib)
{
    enum { WINDOW = 1024 };
    void *live[WINDOW] = { 0 };
    uint64_t x = 88172645463325252ull, total = 0, limit = (uint64_t)mib << 20;
    for (long i = 0; total < limit; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t size = 16 + (x % 4081);
        size_t slot = (x >> 20) % WINDOW;
        if ((x >> 40) % 4 == 0 && live[slot]) {
            live[slot] = realloc(live[slot], size);
        } else {
            free(live[slot]);
            live[slot] = malloc(size);
        }
        ((char *)live[slot])[0] = 1;
        total += size;
    }
    for (int i = 0; i < WINDOW; i++) free(live[i]);
}

__attribute__((noinline)) void wide(long mib)
{
    enum { BLOCK = 100 * 1024 };
    long n = mib * 1024 * 1024 / BLOCK;
    void **blocks = malloc((size_t)n * sizeof(void *));
    if (!blocks) return;
    for (long i = 0; i < n; i++) blocks[i] = malloc(BLOCK);  /* below the mmap threshold: one heap */
    for (long i = 0; i < n; i++) free(blocks[i]);
    free(blocks);
}

static long mix_mib;
static void *mix_thread(void *arg)
{
    (void)arg;
    mix(mix_mib);
    return NULL;
}

int main(int argc, char **argv)
{
    long keep = argc > 1 ? strtol(argv[1], NULL, 10) : 32;
    long churn_mib = argc > 2 ? strtol(argv[2], NULL, 10) : 256;
    if (keep < 0 || churn_mib < 0) {
        fprintf(stderr, "usage: wl_heap KEEP_MIB CHURN_MIB [mix [THREADS] | late | wide]\n");
        return 2;
    }
    if (argc > 3 && strcmp(argv[3], "mix") == 0) {
        int threads = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 2;
        if (threads < 1 || threads > 64) threads = 2;
        mix_mib = churn_mib / threads;
        pthread_t t[64];
        for (int i = 0; i < threads; i++)
            if (pthread_create(&t[i], NULL, mix_thread, NULL) != 0) return 1;
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        printf("%.3f\n", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
        return 0;
    }
    if (argc > 3 && strcmp(argv[3], "late") == 0) {
        churn(churn_mib);
        kept = keep_blocks(keep);
        return 0;
    }
    if (argc > 3 && strcmp(argv[3], "wide") == 0) {
        wide(churn_mib);
        return 0;
    }
    kept = keep_blocks(keep);
    churn(churn_mib);
    return 0;
}

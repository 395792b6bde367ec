/*
 * wl_api.c: the linked-program API of libhearth (include/hearth.h).
 *
 *   wl_api DIR
 *
 * Starts profiling with hearth_start() and options (destination file://DIR,
 * 250 Hz cpu, heap at a mean of 4 KiB within 1000 samples a second), burns
 * CPU in session_one() and churns 1 GiB of 1 KiB blocks in churn_one()
 * (which raises the heap mean well above 4 KiB), stops (flushing), checks
 * that a second start while running says -EALREADY, starts again, burns CPU
 * in session_two() and allocates exactly 4 MiB in 1 KiB blocks in
 * alloc_two() (freed at once: alloc_space 4 MiB), stops. Exits 0 when every
 * call returned what hearth.h promises. Works LD_PRELOADed or linked (the
 * API is declared weak).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth.h"

#pragma weak hearth_start
#pragma weak hearth_stop
#pragma weak hearth_get_stats

static __thread volatile uint64_t sink;

static void spin(long n)
{
    uint64_t x = sink + 1;
    for (long i = 0; i < n; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    sink = x;
}

__attribute__((noinline)) void session_one(void) { spin(300000000L); __asm__ volatile(""); }
__attribute__((noinline)) void session_two(void) { spin(300000000L); __asm__ volatile(""); }

static void *volatile keep_sink;

static void churn_blocks(long n)
{
    for (long i = 0; i < n; i++) {
        char *p = malloc(1024);
        p[0] = (char)i;
        keep_sink = p;
        free(p);
    }
}

__attribute__((noinline)) void churn_one(void) { churn_blocks(1L << 20); __asm__ volatile(""); }
__attribute__((noinline)) void alloc_two(void) { churn_blocks(4096); __asm__ volatile(""); }

int main(int argc, char **argv)
{
    if (argc < 2 || !hearth_start) {
        fprintf(stderr, "usage: wl_api DIR (with libhearth preloaded or linked)\n");
        return 2;
    }
    char dest[1024];
    snprintf(dest, sizeof(dest), "file://%s", argv[1]);
    hearth_options o;
    memset(&o, 0, sizeof(o));
    o.server_address = dest;
    o.application_name = "apitest";
    o.profiles = HEARTH_PROFILE_CPU | HEARTH_PROFILE_HEAP;
    o.cpu_hz = 250;
    o.heap_sample_rate = 4096;
    o.heap_samples_per_second = 1000;
    int rc = hearth_start(&o);
    if (rc != 0) { fprintf(stderr, "first hearth_start: %d\n", rc); return 1; }
    rc = hearth_start(&o);
    if (rc != -EALREADY) { fprintf(stderr, "second hearth_start while running: %d, not -EALREADY\n", rc); return 1; }
    session_one();
    churn_one();
    hearth_stats st;
    hearth_get_stats(&st);
    if (st.cpu_samples == 0 || st.threads == 0) {
        fprintf(stderr, "no samples (%llu) or no timers (%llu)\n", (unsigned long long)st.cpu_samples, (unsigned long long)st.threads);
        return 1;
    }
    hearth_stop();
    hearth_stop();  /* safe when not running */
    hearth_get_stats(&st);
    if (st.threads != 0) { fprintf(stderr, "%llu timers left after hearth_stop\n", (unsigned long long)st.threads); return 1; }
    rc = hearth_start(&o);
    if (rc != 0) { fprintf(stderr, "restart: %d\n", rc); return 1; }
    alloc_two();
    session_two();
    hearth_stop();
    hearth_get_stats(&st);
    printf("%llu cpu samples, %llu profiles written\n", (unsigned long long)st.cpu_samples, (unsigned long long)st.uploads);
    return 0;
}

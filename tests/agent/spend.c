/*
 * spend.c: the CPU-burning half of the agent test workloads (see shares.c).
 * burn() is a leaf that never sets up a frame when built with
 * -momit-leaf-frame-pointer or -fomit-frame-pointer, which is what frame
 * pointer unwinders get wrong: they skip burn's caller, spend().
 * Line markers (LINE_*) are looked up by the tests.
 */
#include <stdint.h>
#include <time.h>

#include "spend.h"

volatile uint64_t spend_sink;

__attribute__((noinline)) void burn(long n)
{
    for (long i = 0; i < n; i++) spend_sink += (uint64_t)i * (uint64_t)i; /* LINE_BURN */
}

double spend_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void spend(double seconds)
{
    double end = spend_cpu_now() + seconds;
    while (spend_cpu_now() < end) burn(200000); /* LINE_SPEND */
}

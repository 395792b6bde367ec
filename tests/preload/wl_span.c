/*
 * wl_span.c: span-labelled work for libhearth tests.
 *
 *   wl_span ROUNDS
 *
 * Two threads. Each round, thread A does span_a_work() inside span
 * (trace 0102..10, span a1a2a3a4a5a6a7a8) and thread B does span_b_work()
 * inside span (trace 1112..20, span b1..b8) with label request=checkout;
 * both then do unlabelled_work() outside any span. Works linked or
 * LD_PRELOADed: the API is declared weak, so without libhearth the calls
 * are skipped.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hearth.h"

#pragma weak hearth_span_enter
#pragma weak hearth_span_exit
#pragma weak hearth_label_set

#define UNIT 2000000L
static __thread volatile uint64_t sink;  /* per thread: no data race between workers */
static long rounds;

static void spin(long units)
{
    uint64_t x = sink + 1;
    for (long i = 0; i < units * UNIT; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    sink = x;
}

__attribute__((noinline)) void span_a_work(void) { spin(2); __asm__ volatile(""); }
__attribute__((noinline)) void span_b_work(void) { spin(2); __asm__ volatile(""); }
__attribute__((noinline)) void unlabelled_work(void) { spin(1); __asm__ volatile(""); }

static const uint8_t trace_a[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t span_a[8] = { 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8 };
static const uint8_t trace_b[16] = { 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t span_b[8] = { 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8 };

static void *thread_a(void *arg)
{
    (void)arg;
    for (long r = 0; r < rounds; r++) {
        if (hearth_span_enter) hearth_span_enter(trace_a, span_a);
        span_a_work();
        if (hearth_span_exit) hearth_span_exit();
        unlabelled_work();
    }
    return NULL;
}

static void *thread_b(void *arg)
{
    (void)arg;
    for (long r = 0; r < rounds; r++) {
        if (hearth_span_enter) hearth_span_enter(trace_b, span_b);
        if (hearth_label_set) hearth_label_set("request", "checkout");
        span_b_work();
        if (hearth_label_set) hearth_label_set("request", NULL);
        if (hearth_span_exit) hearth_span_exit();
        unlabelled_work();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    pthread_t a, b;
    if (pthread_create(&a, NULL, thread_a, NULL) || pthread_create(&b, NULL, thread_b, NULL)) return 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}

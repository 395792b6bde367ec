/*
 * jit.c: a workload that runs generated code, as a JIT does: a counting loop
 * copied into an anonymous executable mapping and announced in
 * /tmp/perf-PID.map as "jit_hot_loop". About 70% of its CPU time is in that
 * code, 30% in native_work() (a normal function), so the tests can check
 * that JIT frames are named from the perf map and keep their share.
 *
 *   jit [SECONDS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spend.h"

/* mov %rdi,%rcx; 1: dec %rcx; jnz 1b; ret */
static const unsigned char loop_code[] = {0x48, 0x89, 0xf9, 0x48, 0xff, 0xc9, 0x75, 0xfb, 0xc3};

typedef void (*loop_fn)(long n);

__attribute__((noinline)) static void run_jit(loop_fn fn, double seconds)
{
    double end = spend_cpu_now() + seconds;
    while (spend_cpu_now() < end) fn(2000000);
}

__attribute__((noinline)) static void native_work(double seconds)
{
    spend(seconds);
}

int main(int argc, char **argv)
{
    double total = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    char path[64];
    if (!(total > 0 && total < 600)) { fprintf(stderr, "jit: bad SECONDS\n"); return 2; }
    unsigned char *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) { perror("jit: mmap"); return 1; }
    memcpy(code, loop_code, sizeof(loop_code));
    if (mprotect(code, 4096, PROT_READ | PROT_EXEC)) { perror("jit: mprotect"); return 1; }
    snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) { perror("jit: perf map"); return 1; }
    fprintf(f, "%lx %zx jit_hot_loop\n", (unsigned long)(uintptr_t)code, sizeof(loop_code));
    fclose(f);
    for (double done = 0; done < total; done += 0.01) {
        run_jit((loop_fn)(void *)code, 0.007);
        native_work(0.003);
    }
    unlink(path);
    return 0;
}

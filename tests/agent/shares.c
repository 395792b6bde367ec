/*
 * shares.c: a deterministic workload with known CPU shares for the agent
 * tests: func_a() gets 70% of the CPU time, func_b() 30%, both through
 * spend() -> burn().
 *
 *   shares [SECONDS] [single|threads|forkexec|child-a]
 *
 * single   one thread alternates func_a/func_b in 10 ms slices.
 * threads  two threads: one runs func_a for 70% of SECONDS, the other
 *          func_b for 30%.
 * forkexec the parent runs func_b (30%) then forks and execs itself as
 *          "child-a", which runs func_a (70%); the parent waits for it.
 * syscalls func_sys() makes system calls for SECONDS of CPU: the kernel's
 *          frames (entry_SYSCALL_64 ...) show above it.
 * vdso     func_vdso() reads CLOCK_MONOTONIC in a loop: time in the vDSO.
 * fixed    a fixed amount of work (SECONDS x 100 chunks of burn(), about
 *          SECONDS of CPU on an idle machine): its run time measures the
 *          slowdown a profiler causes (bench/agent.sh).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spend.h"

__attribute__((noinline)) void func_a(double s)
{
    spend(s); /* LINE_FUNC_A */
}

__attribute__((noinline)) void func_b(double s)
{
    spend(s); /* LINE_FUNC_B */
}

__attribute__((noinline)) void func_sys(double s)
{
    double end = spend_cpu_now() + s;
    while (spend_cpu_now() < end)
        for (int i = 0; i < 1000; i++) syscall(SYS_getppid); /* LINE_FUNC_SYS */
}

__attribute__((noinline)) void func_vdso(double s)
{
    double end = spend_cpu_now() + s;
    struct timespec ts;
    while (spend_cpu_now() < end)
        for (int i = 0; i < 10000; i++) clock_gettime(CLOCK_MONOTONIC, &ts); /* LINE_FUNC_VDSO */
}

static double total = 2.0;

static void *thread_a(void *arg) { (void)arg; func_a(total * 0.7); return NULL; }
static void *thread_b(void *arg) { (void)arg; func_b(total * 0.3); return NULL; }

int main(int argc, char **argv)
{
    const char *mode = argc > 2 ? argv[2] : "single";
    if (argc > 1) total = strtod(argv[1], NULL);
    if (!(total > 0 && total < 600)) { fprintf(stderr, "shares: bad SECONDS\n"); return 2; }
    if (!strcmp(mode, "single")) {
        for (double done = 0; done < total; done += 0.01) {
            func_a(0.007);
            func_b(0.003);
        }
    } else if (!strcmp(mode, "threads")) {
        pthread_t ta, tb;
        pthread_create(&ta, NULL, thread_a, NULL);
        pthread_create(&tb, NULL, thread_b, NULL);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
    } else if (!strcmp(mode, "forkexec")) {
        char secs[32];
        func_b(total * 0.3);
        snprintf(secs, sizeof(secs), "%g", total);
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], secs, "child-a", (char *)NULL);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    } else if (!strcmp(mode, "vdso")) {
        func_vdso(total);
    } else if (!strcmp(mode, "syscalls")) {
        func_sys(total);
    } else if (!strcmp(mode, "fixed")) {
        long chunks = (long)(total * 100);
        for (long i = 0; i < chunks; i++) burn(1400000);
    } else if (!strcmp(mode, "child-a")) {
        func_a(total * 0.7);
    } else {
        fprintf(stderr, "shares: unknown mode '%s'\n", mode);
        return 2;
    }
    return 0;
}

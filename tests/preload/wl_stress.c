/*
 * wl_stress.c: a hostile host for libhearth: thread churn (joined, detached,
 * pthread_exit), realloc storms on many threads, every allocation entry
 * point, fork (children that _exit, exit, or exec), exec of itself, and the
 * program's own SIGPROF handler. Exits 0 only if everything behaved: the
 * program's handler got its signals, every child exited 0, every block
 * held its bytes.
 *
 *   wl_stress [SCALE [quiet-fork]]   (SCALE 1 = a few seconds)
 *
 * quiet-fork forks before the other threads start: sanitizer runtimes of
 * GCC 12 (LLVM 14 based) do not lock their allocator around fork, so a
 * child forked while another thread allocates can deadlock inside ASan
 * itself, profiler or not.
 *   wl_stress exec-child   (what the exec'd children run)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t own_signals;
static __thread volatile uint64_t sink;  /* per thread: no data race between workers */
static long scale = 1;
static int failures;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what)
{
    pthread_mutex_lock(&fail_lock);
    failures++;
    fprintf(stderr, "wl_stress: %s\n", what);
    pthread_mutex_unlock(&fail_lock);
}

static void *volatile keep;

/* malloc + free the compiler cannot elide. */
static void touch_alloc(size_t n)
{
    char *p = malloc(n);
    p[0] = 1;
    keep = p;
    free(p);
}

static void on_prof(int sig) { (void)sig; own_signals++; }

static void spin(long n)
{
    uint64_t x = sink + 1;
    for (long i = 0; i < n; i++) x = x * 6364136223846793005ull + 1;
    sink = x;
}

static void *realloc_storm(void *arg)
{
    uint64_t x = (uintptr_t)arg * 2654435761u + 1;
    char *p = NULL;
    size_t size = 0;
    for (long i = 0; i < 20000 * scale; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t n = 1 + x % 8192;
        char *q = realloc(p, n);
        if (!q) { fail("realloc failed"); break; }
        if (size && q[0] != (char)0x5a) { fail("realloc lost the contents"); break; }
        memset(q, 0x5a, n);
        p = q;
        size = n;
        if (i % 97 == 0) {
            void *a = NULL;
            if (posix_memalign(&a, 64, 100) || ((uintptr_t)a & 63)) fail("posix_memalign");
            void *b = aligned_alloc(128, 256);
            void *c = memalign(32, 48);
            void *d = valloc(10);
            void *e = pvalloc(10);
            void *f = calloc(10, 10);
            char *g = strdup("hearth");
            if (!b || ((uintptr_t)b & 127) || !c || ((uintptr_t)c & 31) || !d || !e || !f || ((char *)f)[9] || !g)
                fail("an allocation entry point misbehaved");
            free(a); free(b); free(c); free(d); free(e); free(f); free(g);
        }
    }
    free(p);
    return NULL;
}

static void *short_thread(void *arg)
{
    long k = (long)(intptr_t)arg;
    void *p = malloc(1000 + (size_t)k);
    spin(20000);
    free(p);
    if (k % 3 == 0) pthread_exit(NULL);
    return NULL;
}

static void thread_churn(void)
{
    for (long wave = 0; wave < 40 * scale; wave++) {
        pthread_t t[8];
        for (long i = 0; i < 8; i++)
            if (pthread_create(&t[i], NULL, short_thread, (void *)(intptr_t)(wave * 8 + i))) fail("pthread_create");
        pthread_t d;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&d, &attr, short_thread, (void *)(intptr_t)1)) fail("pthread_create detached");
        pthread_attr_destroy(&attr);
        for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    }
}

static void forks(const char *self)
{
    for (int i = 0; i < 12; i++) {
        pid_t pid = fork();
        if (pid < 0) { fail("fork"); continue; }
        if (pid == 0) {
            /* The child allocates and burns CPU while its own profiler runs. */
            for (int k = 0; k < 2000; k++) touch_alloc(4096);
            spin(2000000);
            if (i % 3 == 0) _exit(0);
            if (i % 3 == 1) exit(0);
            execl(self, self, "exec-child", (char *)NULL);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char msg[80];
            snprintf(msg, sizeof(msg), "child %d ended with status 0x%x", i, status);
            fail(msg);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0) {
        for (int k = 0; k < 1000; k++) touch_alloc(100);
        spin(1000000);
        return 0;
    }
    if (argc > 1) scale = strtol(argv[1], NULL, 10);
    if (scale < 1) scale = 1;
    int quiet_fork = argc > 2 && strcmp(argv[2], "quiet-fork") == 0;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_prof;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, NULL) != 0) fail("sigaction");
    for (int i = 0; i < 5; i++) kill(getpid(), SIGPROF);

    if (quiet_fork) forks("/proc/self/exe");
    pthread_t storm[8];
    for (long i = 0; i < 8; i++)
        if (pthread_create(&storm[i], NULL, realloc_storm, (void *)(intptr_t)(i + 1))) fail("pthread_create");
    thread_churn();
    if (!quiet_fork) forks("/proc/self/exe");
    for (int i = 0; i < 8; i++) pthread_join(storm[i], NULL);

    for (int i = 0; i < 5; i++) kill(getpid(), SIGPROF);
    if (own_signals < 10) {
        char msg[80];
        snprintf(msg, sizeof(msg), "the program's SIGPROF handler ran %d times, not 10", (int)own_signals);
        fail(msg);
    }
    if (failures) return 1;
    printf("ok\n");
    return 0;
}

/*
 * wl_exec.c: exec under libhearth keeps the interval before it.
 *
 *   wl_exec        burns CPU in before_exec(), calls execv() on a path that
 *                  does not exist (fails: profiling must resume), burns CPU
 *                  in after_failed_exec(), then execv()s itself as
 *                  "wl_exec second"
 *   wl_exec second burns CPU in after_exec() and exits
 *
 * With HEARTH_OUTPUT_DIR set, the profiles must show all three functions:
 * before_exec only if the interval was flushed before the exec replaced
 * the image, after_failed_exec only if profiling came back after the
 * failed exec. Exits 0 when the calls behaved as POSIX says.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static __thread volatile uint64_t sink;

static void spin(long n)
{
    uint64_t x = sink + 1;
    for (long i = 0; i < n; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    sink = x;
}

__attribute__((noinline)) void before_exec(void) { spin(300000000L); __asm__ volatile(""); }
__attribute__((noinline)) void after_failed_exec(void) { spin(300000000L); __asm__ volatile(""); }
__attribute__((noinline)) void after_exec(void) { spin(300000000L); __asm__ volatile(""); }

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "second") == 0) {
        after_exec();
        return 0;
    }
    before_exec();
    char *none[] = { "wl_exec_missing", NULL };
    if (execv("/nonexistent/wl_exec_missing", none) != -1 || errno != ENOENT) {
        fprintf(stderr, "exec of a missing file did not fail with ENOENT\n");
        return 1;
    }
    after_failed_exec();
    char *again[] = { argv[0], "second", NULL };
    execv("/proc/self/exe", again);
    fprintf(stderr, "exec of /proc/self/exe failed: %s\n", strerror(errno));
    return 1;
}

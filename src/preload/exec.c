/*
 * exec.c: the interposed exec family (execve, execv, execvp, execvpe,
 * execl, execle, execlp, fexecve, execveat). A successful exec replaces the
 * image and with it the collector and its unsent interval; so before the
 * real call we stop profiling and flush what was sampled so far
 * (pl_exec_prepare: the same bounded wait as at exit), and when the call
 * returns (the exec failed) profiling starts again (pl_exec_failed).
 *
 * glibc's execl/execv/execvp... call its internal execve directly, not
 * through the PLT, so each entry point is interposed on its own. The l
 * forms collect their arguments into an array on the stack and call the
 * real v form, as glibc does (at most EXEC_MAX_ARGS arguments; more fail
 * with E2BIG, where glibc would also give up at the kernel's limit).
 * posix_spawn and system() create a new process first: nothing to flush.
 * A process that has taken no sample yet (the usual child between fork and
 * exec) execs at once: there is nothing to flush and no collector to wait
 * for.
 */
#include "core/common.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <unistd.h>

#include "preload/preload.h"

#define EXEC_MAX_ARGS 65536

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);

/*
 * The real functions, looked up once at load time: a child forked from a
 * multi-threaded program should not need the loader between fork and exec.
 */
enum { R_EXECVE, R_EXECV, R_EXECVP, R_EXECVPE, R_FEXECVE, R_EXECVEAT, R_N };
static const char *const real_names[R_N] = { "execve", "execv", "execvp", "execvpe", "fexecve", "execveat" };
static void *_Atomic real_fns[R_N];

__attribute__((constructor)) static void exec_resolve(void)
{
    for (int i = 0; i < R_N; i++)
        if (!atomic_load(&real_fns[i])) atomic_store(&real_fns[i], dlsym(RTLD_NEXT, real_names[i]));
}

static void *real(int which)
{
    void *f = atomic_load(&real_fns[which]);
    if (!f) {
        f = dlsym(RTLD_NEXT, real_names[which]);
        atomic_store(&real_fns[which], f);
    }
    if (!f) errno = ENOSYS;
    return f;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    execve_fn f = (execve_fn)real(R_EXECVE);
    if (!f) return -1;
    pl_exec_prepare();
    int rc = f(path, argv, envp);
    pl_exec_failed();
    return rc;
}

int execv(const char *path, char *const argv[])
{
    execv_fn f = (execv_fn)real(R_EXECV);
    if (!f) return -1;
    pl_exec_prepare();
    int rc = f(path, argv);
    pl_exec_failed();
    return rc;
}

int execvp(const char *file, char *const argv[])
{
    execv_fn f = (execv_fn)real(R_EXECVP);
    if (!f) return -1;
    pl_exec_prepare();
    int rc = f(file, argv);
    pl_exec_failed();
    return rc;
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
    execve_fn f = (execve_fn)real(R_EXECVPE);
    if (!f) return -1;
    pl_exec_prepare();
    int rc = f(file, argv, envp);
    pl_exec_failed();
    return rc;
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
    fexecve_fn f = (fexecve_fn)real(R_FEXECVE);
    if (!f) return -1;
    pl_exec_prepare();
    int rc = f(fd, argv, envp);
    pl_exec_failed();
    return rc;
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    execveat_fn f = (execveat_fn)real(R_EXECVEAT);
    if (!f) return -1;
    pl_exec_prepare();
    int rc = f(dirfd, path, argv, envp, flags);
    pl_exec_failed();
    return rc;
}

/*
 * glibc declares arg0 nonnull, yet a program may pass NULL (an empty
 * argv): hide the pointer from the compiler so the test stays.
 */
static const char *opaque(const char *p)
{
    __asm__("" : "+r"(p));
    return p;
}

/* Counts the arguments after arg0 up to the NULL (not included); -1 past the cap. */
static long count_args(va_list ap)
{
    long n = 0;
    while (va_arg(ap, const char *)) {
        if (++n >= EXEC_MAX_ARGS) return -1;
    }
    return n;
}

static void fill_args(char **argv, const char *arg0, long n, va_list ap)
{
    argv[0] = (char *)arg0;
    for (long i = 1; i <= n; i++) argv[i] = va_arg(ap, char *);
    argv[n + 1] = NULL;
}

int execl(const char *path, const char *arg0, ...)
{
    const char *first = opaque(arg0);
    va_list ap;
    va_start(ap, arg0);
    long n = first ? count_args(ap) : 0;
    va_end(ap);
    if (n < 0) {
        errno = E2BIG;
        return -1;
    }
    char *argv[n + 2];
    va_start(ap, arg0);
    if (first) fill_args(argv, first, n, ap);
    else argv[0] = NULL;
    va_end(ap);
    return execv(path, argv);
}

int execlp(const char *file, const char *arg0, ...)
{
    const char *first = opaque(arg0);
    va_list ap;
    va_start(ap, arg0);
    long n = first ? count_args(ap) : 0;
    va_end(ap);
    if (n < 0) {
        errno = E2BIG;
        return -1;
    }
    char *argv[n + 2];
    va_start(ap, arg0);
    if (first) fill_args(argv, first, n, ap);
    else argv[0] = NULL;
    va_end(ap);
    return execvp(file, argv);
}

int execle(const char *path, const char *arg0, ...)
{
    const char *first = opaque(arg0);
    va_list ap;
    va_start(ap, arg0);
    long n = first ? count_args(ap) : 0;
    va_end(ap);
    if (n < 0) {
        errno = E2BIG;
        return -1;
    }
    char *argv[n + 2];
    char *const *envp;
    va_start(ap, arg0);
    if (first) fill_args(argv, first, n, ap);
    else argv[0] = NULL;
    if (first) (void)va_arg(ap, char *);  /* the NULL that ends the arguments */
    envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

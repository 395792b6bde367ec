/*
 * cpu.c: CPU sampling of every thread with its own CPU-time timer.
 *
 * Each thread gets a POSIX timer on its thread CPU clock that signals that
 * very thread (SIGEV_THREAD_ID), every 1/HEARTH_CPU_HZ of CPU time it uses;
 * a busy thread is sampled in proportion to the CPU it burns, however many
 * threads there are, and idle threads cost nothing. Threads created with
 * pthread_create start their own timer (hearth.c wraps the start routine);
 * threads that were there before start, or made without pthread_create, are
 * found by scanning /proc/self/task, and their timer uses the kernel's
 * per-thread clock id for that tid.
 *
 * The handler only records: it checks the signal is one of our timers
 * (SI_TIMER with our cookie; anything else goes to the program's own handler
 * for that signal, kept by our sigaction wrapper), unwinds the interrupted
 * context (unwind.c: CFI tables published by the collector, frame pointers
 * otherwise, every read bounds-checked) into a ring slot, copies the thread's
 * span and labels, and returns. No locks, no allocation, no loader calls;
 * errno is preserved.
 *
 * The registry (tid -> timer) is a fixed array under a mutex that no signal
 * handler ever takes; it lets hearth_stop() and the /proc scan delete timers
 * of threads that are gone.
 */
#include "core/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/hash.h"
#include "preload/preload.h"
#include "preload/unwind.h"

#define PL_MAX_THREADS 8192

typedef struct pl_reg {
    pid_t tid;      /* 0 = free */
    timer_t timer;
    uint8_t scanned;  /* created by the scan (not by the thread itself) */
    uint8_t seen;     /* scan mark */
} pl_reg;

static pl_reg reg[PL_MAX_THREADS];
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction chained;       /* the program's handler for our signal */
static _Atomic int chained_set;
static int handler_installed;
static char timer_cookie;              /* &timer_cookie marks our timers' signals */

__thread pl_thread pl_tls PL_TLS;

static pid_t pl_gettid(void) { return (pid_t)syscall(SYS_gettid); }

static void call_chained(int sig, siginfo_t *si, void *uc)
{
    if (!atomic_load_explicit(&chained_set, memory_order_acquire)) return;
    if (chained.sa_flags & SA_SIGINFO) {
        if (chained.sa_sigaction) chained.sa_sigaction(sig, si, uc);
    } else if (chained.sa_handler != SIG_DFL && chained.sa_handler != SIG_IGN && chained.sa_handler) {
        chained.sa_handler(sig);
    }
}

static void on_signal(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    if (!si || si->si_code != SI_TIMER || si->si_value.sival_ptr != &timer_cookie) {
        call_chained(sig, si, ucv);
        errno = saved_errno;
        return;
    }
    if (!atomic_load_explicit(&pl_g.cpu_on, memory_order_relaxed) || pl_tls.internal) {
        errno = saved_errno;
        return;
    }
    uint64_t ticket;
    pl_record *r = pl_ring_reserve(&ticket);
    if (!r) {
        atomic_fetch_add_explicit(&pl_g.n_cpu_dropped, 1, memory_order_relaxed);
        errno = saved_errno;
        return;
    }
    ucontext_t *uc = ucv;
    unw_regs regs = {
        .ip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP],
        .sp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP],
        .bp = (uint64_t)uc->uc_mcontext.gregs[REG_RBP],
    };
    r->kind = PL_REC_CPU;
    r->tid = (uint32_t)pl_tls.tid;
    /*
     * Thread CPU timers are checked on the scheduler tick: past CONFIG_HZ
     * the kernel folds expiries into si_overrun. Weighting by it keeps
     * cpu:nanoseconds right at any rate.
     */
    int overrun = si->si_overrun > 0 && si->si_overrun < 1000000 ? si->si_overrun : 0;
    r->value = (int64_t)(1000000000ull / (pl_g.cfg.cpu_hz ? pl_g.cfg.cpu_hz : 100)) * (1 + overrun);
    r->stack_hash = 0;
    r->n_frames = (uint16_t)pl_unwind_regs(&regs, r->frames, pl_g.cfg.max_frames, &r->truncated);
    pl_span_copy(&r->span);
    pl_labels_copy(r->label_ids);
    pl_ring_commit(ticket);
    atomic_fetch_add_explicit(&pl_g.n_cpu, 1, memory_order_relaxed);
    errno = saved_errno;
}

int pl_cpu_install(void)
{
    if (handler_installed) return 0;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (pl_real_sigaction(pl_g.cfg.signo, &sa, &old) != 0) return -errno;
    /* A handler the program installed before us keeps getting its signals. */
    if (old.sa_sigaction != on_signal && ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)))
        pl_cpu_set_chained(&old);
    handler_installed = 1;
    return 0;
}

void pl_cpu_set_chained(const struct sigaction *act)
{
    atomic_store_explicit(&chained_set, 0, memory_order_release);
    chained = *act;
    atomic_store_explicit(&chained_set, 1, memory_order_release);
}

void pl_cpu_get_chained(struct sigaction *old)
{
    if (atomic_load_explicit(&chained_set, memory_order_acquire)) {
        *old = chained;
    } else {
        memset(old, 0, sizeof(*old));
        old->sa_handler = SIG_DFL;
    }
}

int pl_handler_installed(void) { return handler_installed; }

/* Creates and arms a timer on clock for tid. */
static int timer_for(pid_t tid, clockid_t clock, timer_t *out)
{
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = pl_g.cfg.signo;
    sev.sigev_value.sival_ptr = &timer_cookie;
    sev._sigev_un._tid = tid;
    if (timer_create(clock, &sev, out) != 0) return -errno;
    uint64_t period = 1000000000ull / (pl_g.cfg.cpu_hz ? pl_g.cfg.cpu_hz : 100);
    /* A per-thread phase so that threads do not fire in lock-step. */
    uint64_t phase = 1 + (uint64_t)hash_u64((uint64_t)tid * 0x9e3779b97f4a7c15ull) % period;
    struct itimerspec its = {
        .it_interval = { (time_t)(period / 1000000000ull), (long)(period % 1000000000ull) },
        .it_value = { (time_t)(phase / 1000000000ull), (long)(phase % 1000000000ull) },
    };
    if (timer_settime(*out, 0, &its, NULL) != 0) {
        int err = -errno;
        timer_delete(*out);
        return err;
    }
    return 0;
}

static pl_reg *reg_find(pid_t tid)
{
    for (size_t i = 0; i < PL_MAX_THREADS; i++)
        if (reg[i].tid == tid) return &reg[i];
    return NULL;
}

/*
 * Under reg_lock. Nothing once CPU sampling is off: stop clears cpu_on
 * before pl_cpu_stop_all takes the lock, so a thread start or a /proc scan
 * (the collector's, which runs on until the collector is stopped after
 * the timers) that reaches the lock after stop_all adds no timer it would
 * leave behind.
 */
static int reg_add(pid_t tid, clockid_t clock, int scanned)
{
    if (!atomic_load(&pl_g.cpu_on)) return 0;
    pl_reg *slot = reg_find(tid);
    if (slot) return 0;
    slot = reg_find(0);
    if (!slot) return -ENOSPC;
    int rc = timer_for(tid, clock, &slot->timer);
    if (rc) return rc;
    slot->tid = tid;
    slot->scanned = (uint8_t)scanned;
    atomic_fetch_add_explicit(&pl_g.n_threads, 1, memory_order_relaxed);
    return 0;
}

static void reg_del(pl_reg *slot)
{
    timer_delete(slot->timer);
    slot->tid = 0;
    atomic_fetch_sub_explicit(&pl_g.n_threads, 1, memory_order_relaxed);
}

void pl_thread_bounds(void)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    pl_tls.tid = pl_gettid();
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        pl_tls.stack_lo = (uintptr_t)addr;
        pl_tls.stack_hi = (uintptr_t)addr + size;
        atomic_signal_fence(memory_order_seq_cst);
        pl_tls.bounds_known = 1;
    }
    pthread_attr_destroy(&attr);
}

int pl_cpu_thread_start(void)
{
    if (!(pl_g.cfg.profiles & HEARTH_PROFILE_CPU) || !atomic_load(&pl_g.running) || pl_tls.internal) return 0;
    if (!pl_tls.bounds_known || pl_tls.tid != pl_gettid()) pl_thread_bounds();
    pthread_mutex_lock(&reg_lock);
    int rc = reg_add(pl_tls.tid, CLOCK_THREAD_CPUTIME_ID, 0);
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void pl_cpu_thread_stop(void)
{
    pid_t tid = pl_gettid();
    pthread_mutex_lock(&reg_lock);
    pl_reg *slot = reg_find(tid);
    if (slot) reg_del(slot);
    pthread_mutex_unlock(&reg_lock);
}

/* The kernel's clock id for the CPU time of thread tid (CPUCLOCK_SCHED, per thread). */
static clockid_t thread_clock(pid_t tid) { return (clockid_t)((~(unsigned)tid << 3) | 6); }

int pl_cpu_scan_threads(void)
{
    if (!(pl_g.cfg.profiles & HEARTH_PROFILE_CPU) || !atomic_load(&pl_g.running)) return 0;
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -ENOMEM;
    }
    pid_t tids[1024];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < ARRAY_SIZE(tids)) {
        char *end;
        long t = strtol(de->d_name, &end, 10);
        if (*end || t <= 0) continue;
        tids[n++] = (pid_t)t;
    }
    closedir(d);
    int rc = 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < PL_MAX_THREADS; i++) reg[i].seen = 0;
    for (size_t k = 0; k < n; k++) {
        if (tids[k] == pl_tls.tid && pl_tls.internal) continue;  /* the collector itself */
        pl_reg *slot = reg_find(tids[k]);
        if (slot) {
            slot->seen = 1;
            continue;
        }
        if (pl_internal_tid(tids[k])) continue;
        int r = reg_add(tids[k], thread_clock(tids[k]), 1);
        if (r == 0) {
            slot = reg_find(tids[k]);
            if (slot) slot->seen = 1;
        } else if (r != -EINVAL && r != -ESRCH) {
            rc = r;  /* thread gone meanwhile is fine; anything else is reported */
        }
    }
    /* Timers of vanished threads that never said goodbye. */
    if (n < ARRAY_SIZE(tids))
        for (size_t i = 0; i < PL_MAX_THREADS; i++)
            if (reg[i].tid && !reg[i].seen) reg_del(&reg[i]);
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void pl_cpu_stop_all(void)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < PL_MAX_THREADS; i++)
        if (reg[i].tid) reg_del(&reg[i]);
    pthread_mutex_unlock(&reg_lock);
}

void pl_cpu_lock(void) { pthread_mutex_lock(&reg_lock); }
void pl_cpu_unlock(void) { pthread_mutex_unlock(&reg_lock); }

void pl_cpu_after_fork_child(void)
{
    /* POSIX timers are not inherited: forget the parent's without deleting. */
    pthread_mutex_init(&reg_lock, NULL);
    for (size_t i = 0; i < PL_MAX_THREADS; i++) reg[i].tid = 0;
    atomic_store(&pl_g.n_threads, 0);
    pl_tls.tid = pl_gettid();
}

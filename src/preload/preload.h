/*
 * preload.h: internals shared by the modules of libhearth.so (not public;
 * the public API is include/hearth.h).
 *
 * Modules:
 *   hearth.c     settings, hearth_start/stop, constructor/destructor, fork
 *                handlers, pthread_create and sigaction interposition.
 *   cpu.c        per-thread CPU timers, the SIGPROF handler, stack capture
 *                (frame pointers, DWARF CFI via agent/unwind.h when a module
 *                table has been published).
 *   heap.c       malloc-family interposition, Poisson sampling by bytes, the
 *                live-object table.
 *   labels.c     thread-local span stack and labels, interned label pairs.
 *   ring.c       the lock-free multi-producer ring that carries samples from
 *                signal handlers and allocators to the collector.
 *   collector.c  the background thread: drain, aggregate, symbolize, encode
 *                pprof, push to the server or write files.
 *   exec.c       the interposed exec family: flush before the image goes.
 *
 * Threading: everything a signal handler touches is either thread-local
 * (pl_tls) or preallocated and lock-free (the ring, the published module
 * table). Locks exist only on paths that never run in our signal handler
 * (heap slow path, label interning, the collector).
 */
#ifndef HEARTH_PRELOAD_PRELOAD_H
#define HEARTH_PRELOAD_PRELOAD_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "hearth.h"

#define PL_TLS __attribute__((tls_model("initial-exec")))

/* Stack depth: HEARTH_MAX_FRAMES, default 64, at most PL_FRAMES_CAP (cut at the root end beyond). */
#define PL_FRAMES_DEFAULT 64
#define PL_FRAMES_CAP 512
#define PL_MAX_SPANS 32
#define PL_MAX_LABELS 8
#define PL_LABEL_KEY_MAX 63
#define PL_LABEL_VAL_MAX 127

/* Settings after environment and defaults are applied. */
#define PL_HEAP_BUDGET_DEFAULT 1000   /* heap samples a second */
#define PL_HEAP_BUDGET_MAX 1000000

typedef struct pl_config {
    char server[512];
    char app[256];
    char tags[512];
    char auth_token[512];
    char tenant[128];
    unsigned profiles;
    unsigned cpu_hz;
    uint64_t heap_rate;       /* the mean gap between heap samples, in bytes; the least with a budget */
    uint32_t heap_budget;     /* heap samples a second above which the gap grows; 0 = a fixed gap */
    uint64_t interval_ns;
    int signo;
    unsigned max_frames;      /* 1..PL_FRAMES_CAP */
} pl_config;

/* The active span of a thread (one entry of its span stack). */
typedef struct pl_span {
    uint64_t trace_hi, trace_lo, span;
    uint8_t has_trace, has_span;
} pl_span;

/*
 * Per-thread state (static TLS, initial-exec: touching it never allocates,
 * so it is safe inside malloc and in signal handlers).
 */
typedef struct pl_thread {
    int64_t heap_until;       /* bytes until the next heap sample */
    uint64_t heap_rate;       /* the mean of the gap heap_until counts down (0 until the first gap) */
    uint64_t rng;             /* 0 = heap sampling not initialized */
    uint32_t guard;           /* > 0 while in hearth code: no sampling */
    uint8_t internal;         /* a thread of hearth itself */
    uint8_t has_timer;
    uint8_t bounds_known;
    pid_t tid;
    timer_t timer;
    uintptr_t stack_lo, stack_hi;
    uint32_t span_depth;      /* may exceed PL_MAX_SPANS (not recorded past it) */
    pl_span spans[PL_MAX_SPANS];
    uint32_t label_ids[PL_MAX_LABELS];  /* interned pairs, 0 = empty */
} pl_thread;

extern __thread pl_thread pl_tls PL_TLS;

/* One sample on its way to the collector. */
enum { PL_REC_CPU = 1, PL_REC_HEAP = 2 };
typedef struct pl_record {
    uint8_t kind;
    uint8_t truncated;
    uint16_t n_frames;
    uint32_t tid;
    int64_t value;            /* cpu: ns; heap: allocation size */
    uint64_t stack_hash;      /* heap: key the live table refers to */
    uint64_t heap_rate;       /* heap: the mean gap the sample was drawn with (its weight) */
    pl_span span;
    uint32_t label_ids[PL_MAX_LABELS];
    uint64_t frames[];        /* cfg.max_frames pcs, leaf first; [0] exact, others return addresses */
} pl_record;

/* Global state. */
typedef struct pl_state {
    pl_config cfg;
    _Atomic int running;      /* 1 between start and stop */
    _Atomic int cpu_on;       /* handler records; new timers are armed (cpu.c reg_add) */
    _Atomic int heap_on;      /* allocators sample */
    _Atomic int failed;       /* gave up after an error (logged once) */
    _Atomic uint64_t heap_rate_now;  /* the mean of new heap gaps: cfg.heap_rate, raised by the budget */
    pid_t pid;
    int64_t start_ns;
    /*
     * Counters every sampling thread adds to, on their own cache line: next
     * to cfg and the flags above, which every sample reads, each add would
     * take that line from the other cores too.
     */
    _Alignas(64) _Atomic uint64_t n_cpu, n_cpu_dropped, n_heap, n_heap_dropped, n_threads;
    char counters_end_[64];
} pl_state;

extern pl_state pl_g;

/* hearth.c */
void pl_fail(const char *what, int err);        /* logs once, stops profiling */
int pl_config_load(pl_config *c, const hearth_options *o, char *err, size_t err_size);
void pl_guard_enter(void);
void pl_guard_exit(void);
/* hearth's own threads (collector, uploader): never sampled. */
int pl_internal_tid(pid_t tid);
void pl_internal_register(void);   /* marks the calling thread internal */
/*
 * exec.c calls these around the real exec: prepare stops profiling and
 * flushes the interval so far (bounded wait; nothing in a vfork child);
 * failed restarts it with the same settings when the exec returned.
 */
void pl_exec_prepare(void);
void pl_exec_failed(void);
/* Real libc entry points (resolved lazily with dlsym(RTLD_NEXT)). */
int pl_real_sigaction(int signo, const struct sigaction *act, struct sigaction *old);

/*
 * ring.c: fixed-size MPSC ring; push is lock-free and async-signal-safe.
 * Records hold up to max_frames frames; the ring keeps about 5 MB of
 * slots (at least 1024) whatever the depth.
 */
int pl_ring_init(unsigned max_frames);
unsigned pl_ring_frames(void);   /* the depth the ring was made for (a restart cannot go deeper) */
/* A slot to fill, or NULL when full (the caller counts a drop). */
pl_record *pl_ring_reserve(uint64_t *ticket);
void pl_ring_commit(uint64_t ticket);
/* Next committed record or NULL; pl_ring_release() after reading it. */
pl_record *pl_ring_peek(void);
void pl_ring_release(void);
void pl_ring_reset(void);   /* only when no producer can run (fork child) */
/*
 * Faults the ring's pages in for writing (collector thread, at its start).
 * Left to the producers, a page's first read maps the shared zero page and
 * its first write then replaces it, which flushes the TLB of every CPU
 * running the process: thousands of IPIs, each a VM exit on a virtual
 * machine (measured +15% time on wl_heap). Safe while producers run: it
 * changes no byte. Works 2 MiB at a time and stops early once *cancel is
 * set (the program is exiting).
 */
void pl_ring_prefault(const _Atomic int *cancel);
/* madvise(MADV_POPULATE_WRITE) over the pages holding [p, p + n); 0 or -errno (Linux < 5.14: -EINVAL). */
int pl_populate_write(void *p, size_t n);
/*
 * An anonymous mapping for one of hearth's sample-path tables (the ring,
 * the heap filter counts and live table), n bytes rounded up to pages;
 * NULL on failure; *len gets the mapped length (for munmap). Plain pages,
 * never MADV_HUGEPAGE: under the usual THP defrag setting ("madvise") a
 * huge page's first touch waits for direct compaction, and a sampling
 * thread that touched one first stalled for milliseconds (heap_slow calls
 * of 4-30 ms in 2 runs of 3 of wl_heap, 15-70 M cycles per run, against no
 * measurable saving per sample from the fewer TLB misses).
 */
void *pl_map_table(size_t n, size_t *len);

/* cpu.c */
int pl_cpu_install(void);           /* signal handler; 0 or -errno */
int pl_cpu_thread_start(void);      /* timer for the calling thread */
void pl_cpu_thread_stop(void);      /* timer of the calling thread deleted */
int pl_cpu_scan_threads(void);      /* timers for threads found in /proc/self/task */
void pl_cpu_stop_all(void);         /* every timer deleted */
void pl_cpu_after_fork_child(void);
void pl_cpu_lock(void);             /* fork prepare: the registry */
void pl_cpu_unlock(void);
int pl_handler_installed(void);
void pl_thread_bounds(void);        /* stack bounds of the calling thread */
/* The chained handler for the program's own use of our signal. */
void pl_cpu_set_chained(const struct sigaction *act);
void pl_cpu_get_chained(struct sigaction *old);
/*
 * Captures the caller's stack, leaf first, leaving out the leading frames
 * whose return address lies in (skip_lo, skip_hi] (hearth's own code: the
 * heap slow path and the interposed function, however many of them a tail
 * call left), so pcs[0] is the return address into the first frame outside
 * that range.
 */
size_t pl_capture_here(uint64_t *pcs, size_t max, uint64_t skip_lo, uint64_t skip_hi);
/*
 * Rebuilds the CFI module table from /proc/self/maps (collector thread). A
 * table being built is given up (and built again at the next refresh) once
 * the flag given to pl_unwind_set_cancel is set: an exiting program does
 * not wait for libc's CFI.
 */
void pl_unwind_refresh(void);
void pl_unwind_set_cancel(const _Atomic int *cancel);
void pl_unwind_release(void);

/* heap.c */
int pl_heap_init(void);
void pl_heap_start(void);
void pl_heap_stop(void);
void pl_heap_adapt(int64_t now_ns);  /* the sample budget (collector thread, after each drain) */
void pl_heap_prefault(void);        /* the live table and filter, as pl_ring_prefault (collector thread) */
void pl_heap_lock(void);            /* fork prepare */
void pl_heap_unlock(void);
/*
 * Copies up to max live sampled objects into out (taken under the heap lock,
 * which is why it copies: the caller may not allocate or free while it is
 * held). Returns the number copied.
 */
typedef struct pl_live_item {
    uint64_t stack_hash, size, rate;  /* rate: the mean gap it was sampled with */
} pl_live_item;
#define PL_LIVE_MAX 98304
size_t pl_heap_live_snapshot(pl_live_item *out, size_t max);
uint64_t pl_heap_live_count(void);
/* Unbiased count for one sampled allocation of size bytes at mean rate. */
double pl_heap_scale(uint64_t size, uint64_t rate);

/* labels.c */
/* The key/value of an interned pair id (>0), or NULL; stays valid forever. */
int pl_label_get(uint32_t id, const char **key, const char **value);
void pl_labels_copy(uint32_t out[PL_MAX_LABELS]);
void pl_span_copy(pl_span *out);

/* collector.c */
int pl_collector_start(void);
void pl_collector_stop(int flush);
/* Wakes the collector before its tick (async-signal-safe). */
void pl_collector_kick(void);
void pl_collector_after_fork_child(void);
void pl_collector_fork_prepare(void);   /* waits for the collector to be idle */
void pl_collector_fork_parent(void);
uint64_t pl_collector_uploads(uint64_t *errors, uint64_t *dropped);

/* hex helpers shared by labels and the collector */
void pl_hex(char *out, const void *bytes, size_t n);

static inline uint64_t pl_load_be64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | b[i];
    return v;
}

#endif

/*
 * perf.h: perf_event_open sampling on every CPU, with ring buffers.
 *
 * One sampling event per online CPU (pid = -1 for the whole host, or a pid
 * with inherit so a command's threads and children are followed), or, for
 * running processes (`pids`), one per CPU per existing thread with inherit
 * for threads and children created later, all writing into one ring per CPU
 * (as `perf record -p`: the rest of the host costs nothing); software
 * cpu-clock by default (hardware cycles are often absent in VMs), each with a
 * ring buffer. Samples carry the kernel + frame-pointer user callchain, the
 * user registers (ip, sp, bp) and a copy of the top of the user stack, so the
 * caller can unwind with DWARF CFI. Side-band records (mmap2, comm, fork,
 * exit) come through the same rings, in order per CPU.
 */
#ifndef HEARTH_AGENT_PERF_H
#define HEARTH_AGENT_PERF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

typedef struct perf_opts {
    unsigned freq;          /* samples per second per CPU (e.g. 97, 997) */
    pid_t pid;              /* -1: every process on the host */
    int inherit;            /* follow threads and children created after open */
    int enable_on_exec;     /* start counting at pid's next exec (hearth record) */
    uint32_t stack_bytes;   /* user stack copied per sample (0 = callchain only); multiple of 8, <= 65528 */
    int no_kernel;          /* user frames only (also the fallback when the kernel refuses) */
    int use_hardware;       /* try PERF_COUNT_HW_CPU_CYCLES first */
    unsigned ring_pages;    /* data pages per ring (power of two); default: half a second of samples */
    const pid_t *pids;      /* running processes to follow (every thread now + inherit); pid ignored when set */
    size_t n_pids;
    size_t max_fds;         /* events for pids (threads x CPUs) before falling back to the whole host; default 4096 */
} perf_opts;

/* A decoded PERF_RECORD_SAMPLE; pointers point into the ring or a bounce buffer, valid during the callback. */
typedef struct perf_sample {
    uint32_t pid, tid, cpu;
    uint64_t time, period;
    uint64_t n_chain;
    const uint64_t *chain;  /* with PERF_CONTEXT_* markers */
    uint64_t abi;           /* 0 when no user registers (kernel thread) */
    uint64_t bp, sp, ip;    /* user registers */
    uint64_t stack_size;    /* bytes valid in stack */
    const uint8_t *stack;
} perf_sample;

typedef struct perf_mmap_ev {
    uint32_t pid, tid;
    uint64_t start, len, pgoff;
    uint32_t maj, min;
    uint64_t ino;
    uint32_t prot;
    const char *filename;
} perf_mmap_ev;

typedef struct perf_handlers {
    void (*sample)(void *ctx, const perf_sample *s);
    void (*mmap)(void *ctx, const perf_mmap_ev *m);
    void (*comm)(void *ctx, uint32_t pid, uint32_t tid, const char *comm, int is_exec);
    void (*fork)(void *ctx, uint32_t pid, uint32_t ppid, uint32_t tid);
    void (*exit)(void *ctx, uint32_t pid, uint32_t tid);
    void (*lost)(void *ctx, uint64_t n);
} perf_handlers;

typedef struct perf_sampler {
    int n_cpus;
    int *fds;          /* -1 for an offline CPU */
    void **rings;
    size_t ring_bytes; /* data area bytes */
    size_t page;
    int hardware;      /* 1 if cycles, 0 if cpu-clock */
    int has_stack;     /* samples carry user registers and a stack copy */
    uint64_t lost, samples, records;
    uint8_t *bounce;   /* for records that wrap around the ring end */
    uint64_t *heads;   /* per ring: where pass 1 of the current poll stopped */
    uint8_t *side;     /* side-band records of the current poll, copied for sorting by time */
    size_t side_len, side_cap;
    void *side_ents;
    size_t n_side, side_ents_cap;
    int *extra_fds;    /* pids mode: the other threads' events, output redirected to fds[cpu] */
    size_t n_extra;
    int host_wide;     /* 1 when every process is sampled (pids mode fell back, or pid -1) */
} perf_sampler;

/*
 * Opens the events. Falls back from hardware to software events and from
 * kernel+user to user-only stacks on its own. With pids, a process that has
 * exited is skipped (ESRCH only when none is left), and when their threads
 * need more than max_fds events it samples the whole host instead (with a
 * note in e, host_wide set: the caller filters by pid). Returns 0 or a
 * negative errno with e saying what to change (perf_event_paranoid,
 * CAP_PERFMON, no such process).
 */
int perf_open(perf_sampler *ps, const perf_opts *o, herr *e);
/* Enables every event (not needed with enable_on_exec). */
int perf_enable(perf_sampler *ps);
/*
 * Waits up to timeout_ms for data, then drains every ring, calling h for
 * each record. Returns the number of records, or a negative errno.
 */
int perf_poll(perf_sampler *ps, int timeout_ms, const perf_handlers *h, void *ctx);
void perf_close(perf_sampler *ps);

/* The message for a perf_event_open failure (errno err) that says what to change. */
const char *perf_open_hint(int err);

#endif

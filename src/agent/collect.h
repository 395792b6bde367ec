/*
 * collect.h: turns perf samples into profiles: tracks processes and their
 * executable mappings (from /proc and from perf's mmap2/comm/fork/exit
 * records), unwinds user stacks (DWARF CFI with frame-pointer fallback),
 * symbolizes every frame and aggregates samples per service.
 *
 * Used by `hearth record` (one group, one profile) and `hearth agent` (one
 * group per service, flushed every upload interval). Not thread-safe: feed
 * it from one thread (the one calling perf_poll).
 */
#ifndef HEARTH_AGENT_COLLECT_H
#define HEARTH_AGENT_COLLECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/perf.h"
#include "agent/symbolize.h"
#include "core/err.h"
#include "profile/profile.h"

typedef struct coll_opts {
    unsigned rate_hz;           /* sampling rate, for the profile's period */
    int hardware;               /* 1 when the event counts cycles (period is not ns) */
    int single_group;           /* every sample in one profile (hearth record) */
    const char *service_name;   /* forced service name (agent --service-name) */
    const pid_t *pids;          /* only these processes (NULL = all) */
    size_t n_pids;
    const char *const *comms;   /* only processes with these comm names (NULL = all) */
    size_t n_comms;
    pid_t self;                 /* a pid never profiled (the profiler itself), 0 = none */
    int no_dwarf_unwind;        /* frame pointer chains only (for comparison) */
    int comm_label;             /* put a "comm" label on every sample (agent) */
    size_t max_procs;           /* tracked processes; default 32768 */
    size_t max_maps_per_proc;   /* default 65536 */
    size_t max_files;           /* files (with CFI tables) kept when unused; default 512 */
    size_t max_table_bytes;     /* CFI tables kept when unused; default 64 MiB */
    uint32_t max_depth;         /* frames per stack; default 256 */
} coll_opts;

typedef struct coll_stats {
    uint64_t samples, skipped, dwarf_stacks, fp_stacks, kernel_frames, user_frames;
    uint64_t unknown_frames, lost, procs, files;
} coll_stats;

typedef struct collector collector;

/* A new collector (dies on OOM). o is copied (not the arrays it points to: keep them alive). */
collector *coll_new(const coll_opts *o);
void coll_free(collector *c);

/* Handlers to pass to perf_poll() with c as ctx. */
const perf_handlers *coll_handlers(void);

/* Reads /proc/PID/maps and comm now (processes that existed before perf_open). */
void coll_scan_proc(collector *c, pid_t pid);

/*
 * One aggregated profile per service group. fn receives the service name, the
 * group's series labels (host, container_id when known) and the profile (two
 * types: samples/count and cpu/nanoseconds, period cpu/nanoseconds); fn may
 * read or move data out of it but not keep the pointer. Groups are then reset
 * and processes that exited are forgotten. Returns the number of groups
 * that had samples.
 */
typedef void (*coll_flush_fn)(void *ctx, const char *service, const char *const *keys,
                              const char *const *vals, size_t n_labels, profile *p);
int coll_flush(collector *c, int64_t start_ns, int64_t end_ns, coll_flush_fn fn, void *ctx);

void coll_get_stats(const collector *c, coll_stats *st);

/*
 * Reads /proc/PID/cgroup text: the systemd service the process runs in
 * ("nginx" from .../system.slice/nginx.service; user@ managers excluded)
 * and the container id (64 hex digits: docker-ID.scope, /docker/ID,
 * cri-containerd-ID.scope, crio-ID, libpod-ID). Empty strings when absent.
 * Returns a bit set: 1 unit found, 2 container found.
 */
int coll_parse_cgroup(const char *text, char *unit, size_t unit_size, char *container, size_t container_size);

#endif

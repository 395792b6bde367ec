/*
 * hearth.h: the public API of libhearth.so, the in-process profiler.
 *
 * Two ways to use it:
 *   - unmodified programs: LD_PRELOAD=libhearth.so with HEARTH_* environment
 *     variables (see docs/preload.md); profiling starts before main().
 *   - linked programs: call hearth_start() with options (fields left 0/NULL
 *     take the HEARTH_* environment value, then the default), hearth_stop()
 *     to flush and stop.
 *
 * Trace correlation: hearth_span_enter()/hearth_span_exit() mark the calling
 * thread as working for a span; every CPU and heap sample taken meanwhile
 * carries the labels span_id and trace_id (lower-case hex, the Pyroscope
 * convention). hearth_label_set() adds free-form labels the same way.
 *
 * Every function is safe to call before hearth_start(), after hearth_stop(),
 * and from any thread; none of them ever aborts the program. The span and
 * label calls cost a few stores into thread-local memory (no locks, no
 * allocation except the first time a label key/value pair is seen).
 */
#ifndef HEARTH_H
#define HEARTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HEARTH_PROFILE_CPU  1u
#define HEARTH_PROFILE_HEAP 2u

typedef struct hearth_options {
    /* Where to push: "http://host:4040" (POST /ingest), or "file:///dir" to
       write one pprof file per profile type and interval into dir. */
    const char *server_address;     /* HEARTH_SERVER_ADDRESS */
    const char *application_name;   /* HEARTH_APPLICATION_NAME; default: program name */
    const char *tags;               /* HEARTH_TAGS, "k=v,k2=v2" */
    const char *auth_token;         /* HEARTH_AUTH_TOKEN */
    const char *tenant_id;          /* HEARTH_TENANT_ID */
    unsigned profiles;              /* HEARTH_PROFILE_* bits; HEARTH_PROFILES=cpu,heap; default both */
    unsigned cpu_hz;                /* HEARTH_CPU_HZ, default 100 */
    uint64_t heap_sample_rate;      /* HEARTH_HEAP_SAMPLE_RATE bytes, default 524288: the mean gap between
                                       heap samples (the least, while a budget applies) */
    uint64_t upload_interval_ms;    /* HEARTH_UPLOAD_INTERVAL, default 10s */
    unsigned max_frames;            /* HEARTH_MAX_FRAMES: deepest stack kept, default 64, at most 512
                                       (deeper stacks lose their root end); fixed by a process's first start */
    int heap_samples_per_second;    /* the heap sample budget: above this many samples a second the mean gap
                                       grows (estimates stay unbiased). 0: HEARTH_HEAP_SAMPLES_PER_SECOND
                                       if set (there 0 means no limit), else 1000, or no limit when a heap
                                       sample rate was given; negative: no limit */
} hearth_options;

/*
 * Starts profiling with opts (NULL: environment and defaults only). Returns
 * 0, or a negative error when the settings are invalid or profiling cannot
 * start (the reason is logged once; the program is unaffected). Calling it
 * while running returns -EALREADY.
 */
int hearth_start(const hearth_options *opts);

/*
 * Stops the timers and heap sampling, flushes the last partial interval (the
 * upload is given up to 2 s) and joins the background thread. Safe to call
 * when not running. After hearth_stop(), hearth_start() may be called again.
 */
void hearth_stop(void);

/*
 * Enters a span on the calling thread: samples get span_id = hex(span_id[8])
 * and trace_id = hex(trace_id[16]) until the matching hearth_span_exit().
 * Spans nest (up to 32 deep; deeper enters are counted, not recorded, and
 * their exits pop nothing). Either pointer may be NULL (label left out).
 */
void hearth_span_enter(const uint8_t trace_id[16], const uint8_t span_id[8]);
/* Leaves the innermost span entered on this thread (no-op if none). */
void hearth_span_exit(void);

/*
 * Sets label key=value on the calling thread's later samples (value NULL
 * removes it). At most 8 labels per thread; key at most 63 and value at
 * most 127 bytes. Returns 0, -EINVAL (bad key/value) or -ENOSPC.
 * Labels span_id/trace_id are reserved for the span API.
 */
int hearth_label_set(const char *key, const char *value);
/* Removes every label set with hearth_label_set() on this thread. */
void hearth_labels_clear(void);

/* Counters for diagnostics (and tests). */
typedef struct hearth_stats {
    uint64_t cpu_samples;       /* recorded by the signal handler */
    uint64_t cpu_dropped;       /* ring full */
    uint64_t heap_samples;      /* sampled allocations */
    uint64_t heap_live;         /* sampled objects currently live */
    uint64_t heap_dropped;      /* live table full */
    uint64_t uploads, upload_errors, upload_dropped;
    uint64_t threads;           /* threads with a CPU timer now */
} hearth_stats;
void hearth_get_stats(hearth_stats *st);

#ifdef __cplusplus
}
#endif

#endif

/*
 * store.h: the profile database (DESIGN.md §3), the narrow interface the
 * server and the CLI use. The embedded engine lives in src/store/; a
 * later ClickHouse engine implements the same calls.
 *
 * Data model as stored:
 *   tenant   -> series (a label set) -> profiles (timestamp, duration,
 *   rows of (stack, value, span_id, trace_id)). One series holds one sample
 *   type.
 *
 * Series labels, the rule (store_ingest):
 *   labels = caller labels (must include service_name; __name__ defaults to
 *            "unknown" when absent)
 *          + string labels found on the profile's samples, except span_id,
 *            trace_id and profile_id (these stay per sample; profile_id is
 *            read as span_id). Samples with different
 *            such labels go to different series. Numeric labels are dropped.
 *          + per sample type t (one series each), derived like Pyroscope:
 *              __type__        = sample type name        ("cpu")
 *              __unit__        = sample type unit        ("nanoseconds")
 *              __period_type__ = profile period type     (or __type__ if unset)
 *              __period_unit__ = profile period unit     (or __unit__ if unset)
 *              __profile_type__ = "<__name__>:<__type__>:<__unit__>:
 *                                  <__period_type__>:<__period_unit__>"
 *            e.g. "process_cpu:cpu:nanoseconds:cpu:nanoseconds".
 *   Labels given by the caller with these derived names are overwritten.
 *   Label names must match [A-Za-z_][A-Za-z0-9_.]*; values are any UTF-8
 *   up to 1 KiB; at most 64 labels per series.
 *
 * Time: every timestamp in this API is unix nanoseconds. Query ranges are
 * inclusive at both ends: start_ns <= ts <= end_ns. end_ns = 0 means "no
 * upper bound".
 *
 * Ownership: the store never keeps caller pointers past a call. Results
 * (string lists, series lists, time series) are allocated by the store and
 * owned by the caller, freed with the matching *_release(). Profiles and
 * flame trees passed in are initialized by the caller and filled in.
 *
 * Thread safety and locking: every call on an open store may run from any
 * number of threads at once (the server calls ingest and queries from its
 * pool). Inside: the WAL has a mutex and a group-commit condition variable
 * (one fdatasync covers every writer waiting); heads and the block list are
 * guarded by a writer-preferring rwlock: ingest takes it for writing just
 * for the WAL append and the head insert (the fsync wait is outside it),
 * each query takes it for reading for its whole duration, and flush,
 * compaction and retention write blocks without it and take it for writing
 * only to swap lists (they are serialized by their own mutex). So queries
 * run in parallel with each other; ingest waits for running queries. See
 * docs/store.md.
 *
 * Damaged data: a block whose checksum or cross-reference check fails at
 * open is logged, skipped by every query and listed by store_stats();
 * it never makes store_open() fail.
 */
#ifndef HEARTH_STORE_STORE_H
#define HEARTH_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "profile/flame.h"
#include "profile/profile.h"
#include "store/selector.h"

typedef struct store store;

enum store_fsync {
    STORE_FSYNC_ALWAYS = 0, /* ingest returns after fdatasync of its WAL record (group commit) */
    STORE_FSYNC_BATCH = 1,  /* a background fsync every fsync_batch_ns; ingest does not wait */
    STORE_FSYNC_NEVER = 2   /* the OS decides; for tests and benchmarks */
};

typedef struct store_opts {
    enum store_fsync fsync;        /* default ALWAYS */
    int64_t fsync_batch_ns;        /* BATCH period, default 100 ms */
    int64_t retention_ns;          /* blocks older than now - retention are deleted; default 30 d; 0 = keep */
    int64_t block_ns;              /* time partition of a flushed block, default 1 h */
    int64_t compact_ns;            /* compacted block partition, default 24 h */
    int64_t flush_interval_ns;     /* the head is flushed at least this often, default 10 min */
    int64_t compact_interval_ns;   /* background compaction + retention period, default 5 min */
    size_t head_max_bytes;         /* flush when the head grows past this, default 256 MiB */
    size_t max_series_per_tenant;  /* new series past this (per tenant and 1 h partition) are refused (HE_TOOBIG), default 100000 */
    size_t max_profile_samples;    /* refuse bigger profiles, default 1M samples */
    int background;                /* 1: start the flush/compaction thread (server); 0: CLI/tests */
    int read_only;                 /* 1: no WAL replay into a writable log, no writes (db verify/stats) */
    /* Test hook, 0 = off: a WAL write that would take the bytes written since
     * open past this fails with ENOSPC after writing part of its record, as a
     * full disk does (the partial record is cut off again). */
    uint64_t wal_fail_after_bytes;
} store_opts;

/* Fills the defaults above. */
void store_opts_default(store_opts *o);
/* Parses "always" | "batch" | "never"; -1 if unknown. */
int store_fsync_parse(const char *s);

/*
 * Opens (creating if needed) the data directory dir: loads blocks (damaged
 * ones logged and skipped), replays the WAL into the head (a torn tail is
 * truncated with a warning line). Returns 0 and *out, or a negative error
 * with e set (e.g. the directory cannot be created or is locked by another
 * process: one store per directory, enforced with flock).
 */
int store_open(store **out, const char *dir, const store_opts *o, herr *e);
/* Flushes nothing, syncs the WAL, stops background work, frees s. NULL ok. */
void store_close(store *s);

/* A label, name=value. Strings owned by whoever built the array. */
typedef struct store_label {
    const char *name;
    const char *value;
} store_label;

/* Tenant IDs: 1..150 chars of [A-Za-z0-9!_.*'()-], not "." or ".."; else HE_USAGE. */
int store_tenant_valid(const char *tenant);

/*
 * Ingests one parsed profile p (read only; not kept) for tenant with the
 * series labels labels[0..n) (see the rule at the top), at time_ns with
 * duration_ns (0 if unknown); p->time_nanos is ignored. Every sample type
 * of p becomes one series. Returns once the record is durable per the fsync
 * policy: 0, HE_USAGE (bad tenant/labels, e says which), HE_TOOBIG (a limit),
 * -EIO/-ENOSPC (the WAL could not be written; nothing was acknowledged).
 */
int store_ingest(store *s, const char *tenant, const store_label *labels, size_t n,
                 const profile *p, int64_t time_ns, int64_t duration_ns, herr *e);

/* One profile of a batch: the arguments of store_ingest. */
typedef struct store_item {
    const store_label *labels;
    size_t n_labels;
    const profile *p;
    int64_t time_ns, duration_ns;
} store_item;

/*
 * Ingests items[0..n) for tenant as one unit: every item is checked first
 * (a bad one fails the call, e names it "profile K: ...") and all of them go
 * into the WAL as one record (one write, one CRC), and into the heads only
 * after that write succeeded. So an error while writing the WAL (-EIO,
 * -ENOSPC) leaves nothing of the batch queryable, and replay after a crash
 * applies all of it or none of it. Durability as store_ingest (one group
 * commit for the batch). One exception: the per-tenant series limit is
 * checked as the heads insert, so an HE_TOOBIG for it keeps the other items
 * of the batch (replay does the same). n <= STORE_MAX_BATCH (65536).
 */
int store_ingest_batch(store *s, const char *tenant, const store_item *items, size_t n, herr *e);

/* Writes the head to blocks now (the background thread does it on its own). */
int store_flush(store *s, herr *e);
/* Runs one compaction + retention pass now. */
int store_compact(store *s, herr *e);

/* ---- queries ---- */

/* What to select. sel may be NULL (everything). profile_type NULL = any. */
typedef struct store_query {
    const char *tenant;
    const char *profile_type;        /* "process_cpu:cpu:nanoseconds:cpu:nanoseconds" */
    const selector *sel;
    int64_t start_ns, end_ns;        /* inclusive; end_ns 0 = open */
    const char *const *span_ids;     /* keep only samples with one of these span_ids (16 hex chars as sent) */
    size_t n_span_ids;               /* 0 = no span filter */
    const char *const *trace_ids;    /* keep only samples with one of these trace_ids (as sent); with span_ids too, a sample must match both */
    size_t n_trace_ids;              /* 0 = no trace filter */
} store_query;

/* A list of strings, sorted, unique. Caller owns; free with store_strs_release. */
typedef struct store_strs {
    char **v;
    size_t n;
} store_strs;
void store_strs_release(store_strs *l);

/* Profile type IDs present for the tenant in [start,end]. */
int store_profile_types(store *s, const store_query *q, store_strs *out, herr *e);
/* Label names of the series matched by q (profile_type and sel honoured). */
int store_label_names(store *s, const store_query *q, store_strs *out, herr *e);
/* Values of label `name` over the series matched by q. */
int store_label_values(store *s, const store_query *q, const char *name, store_strs *out, herr *e);

/* A label set. Caller owns labels and their strings (store_series_release). */
typedef struct store_labelset {
    store_label *labels;  /* sorted by name */
    size_t n;
} store_labelset;
typedef struct store_series_list {
    store_labelset *v;
    size_t n;
} store_series_list;
void store_series_release(store_series_list *l);
/*
 * The label sets of the series matched by q that have data in range. If
 * names is non-empty, each set keeps only those labels, and identical
 * projected sets collapse into one (as Pyroscope's Series with label_names).
 */
int store_series(store *s, const store_query *q, const char *const *names, size_t n_names,
                 store_series_list *out, herr *e);

/*
 * Merges the samples selected by q (profile_type required) into the flame
 * tree t (flame_init'ed by the caller) on side 0 or 1. The caller applies
 * max-nodes with flame_truncate(). Diff = two calls on the same tree with
 * side 0 (left selection) and side 1 (right selection), then truncate:
 * the store does not have a separate diff call.
 * 0, HE_USAGE (no profile type), or an I/O error.
 */
int store_select_merge_tree(store *s, const store_query *q, flame_tree *t, int side, herr *e);

/*
 * Merges the samples selected by q into out (prof_init'ed, empty), one
 * sample type (the profile type's), equal stacks summed, no labels; period
 * type/unit and sample type/unit taken from the profile type; time_nanos =
 * the first selected profile's, duration = span of the selection. The result
 * is valid for pprof_encode(). 0, HE_USAGE, I/O errors.
 */
int store_select_merge_profile(store *s, const store_query *q, profile *out, herr *e);

enum store_agg { STORE_AGG_SUM = 0, STORE_AGG_AVG = 1 };

typedef struct store_point {
    int64_t ts_ns;  /* start of the step bucket */
    double value;
} store_point;
typedef struct store_ts {
    store_labelset labels;  /* the group-by labels (all of them absent -> empty set) */
    store_point *points;    /* sorted by ts, only buckets with data */
    size_t n_points;
} store_ts;
typedef struct store_ts_list {
    store_ts *v;
    size_t n;
} store_ts_list;
void store_ts_release(store_ts_list *l);
/*
 * Time series of profile totals for q (profile_type required, end_ns
 * required): one series per distinct combination of the group_by labels'
 * values; bucket k covers [start + k*step, start + (k+1)*step); value = sum
 * of the totals of the profiles in the bucket, or their average per profile
 * (STORE_AGG_AVG). step_ns > 0; at most 100000 buckets (HE_TOOBIG past it).
 * Span and trace filters are honoured (then samples are read, not just totals).
 */
int store_select_series(store *s, const store_query *q, int64_t step_ns,
                        const char *const *group_by, size_t n_group_by, enum store_agg agg,
                        store_ts_list *out, herr *e);

/* GetProfileStats for a tenant. */
typedef struct store_tenant_stats {
    int has_data;
    int64_t oldest_ns, newest_ns;  /* 0 when no data */
} store_tenant_stats;
int store_profile_stats(store *s, const char *tenant, store_tenant_stats *out, herr *e);

/*
 * Upper bounds (seconds) of the WAL fsync latency histogram buckets; a
 * last, unbounded bucket follows them.
 */
#define STORE_FSYNC_BUCKETS 14
extern const double store_fsync_bounds_s[STORE_FSYNC_BUCKETS];

/* Operational figures, for /metrics and `hearth db stats`. */
typedef struct store_stats {
    uint64_t n_blocks, n_damaged_blocks, n_series, n_profiles, n_samples;
    uint64_t head_profiles, head_samples, head_bytes;
    uint64_t head_series;          /* series in the in-memory heads (one per tenant and partition it has data in) */
    uint64_t wal_bytes, bytes_index, bytes_symbols, bytes_samples;
    uint64_t ingested_profiles, ingested_samples;  /* since open */
    uint64_t flushes, compactions, blocks_deleted;
    /* Every fdatasync of the WAL since open (group commit, the batch timer,
     * segment rotation): count, total seconds, and per bucket (not
     * cumulative) the count with duration <= store_fsync_bounds_s[i] and
     * > the previous bound; [STORE_FSYNC_BUCKETS] counts the slower ones. */
    uint64_t wal_fsyncs, wal_fsync_failures;
    double wal_fsync_seconds;
    uint64_t wal_fsync_bucket[STORE_FSYNC_BUCKETS + 1];
} store_stats;
int store_get_stats(store *s, store_stats *out);

/*
 * Offline check of a data directory (`hearth db verify`): every block is
 * opened with all checksums and cross-references checked and every sample
 * chunk decompressed and its rows checked; every WAL record after the
 * checkpoint is decoded. One line per finding is appended to report
 * ("DAMAGED <path>: <why>" or "ok <path>: ..."); *n_problems counts the
 * damaged items. Does not modify the directory. 0, or an error when dir is
 * not readable.
 */
#include "core/buf.h"
int store_verify(const char *dir, buf *report, uint64_t *n_problems, herr *e);

#endif

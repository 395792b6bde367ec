/*
 * store_int.h: internals shared by the files of the embedded store (not for
 * use outside src/store and cmd_db). The on-disk structures are described
 * in docs/format.md; the design in docs/store.md.
 *
 *   codec.c   little-endian/varint helpers, the profile blob of WAL records
 *   wal.c     write-ahead log segments, group commit, replay
 *   head.c    the in-memory head: one per (tenant, time partition)
 *   block.c   immutable blocks: writer (from a head, or streaming compaction)
 *             and reader (open + verify, accessors)
 *   query.c   selection, merge, series, labels over heads and blocks
 *   store.c   the store object: open/close, ingest, flush, compaction,
 *             retention, background thread, stats
 */
#ifndef HEARTH_STORE_STORE_INT_H
#define HEARTH_STORE_STORE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/hash.h"
#include "profile/profile.h"
#include "store/store.h"

#define STORE_FORMAT_VERSION 2      /* block files written; version 1 (no trace column) is still read */
#define STORE_WAL_VERSION 2         /* WAL segments; version 1 segments (no batch records) are still read */
#define STORE_MAX_BATCH 65536       /* profiles in one store_ingest_batch */
#define STORE_CHUNK_PROFILES 128     /* profiles per compressed sample chunk */
#define STORE_MAX_LABELS 64
#define STORE_MAX_LABEL_VALUE 1024
#define STORE_MAX_BUCKETS 100000

/* ---- codec.c ---- */

static inline void st_put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void st_put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t st_get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t st_get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint64_t st_zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t st_unzz(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* Appends a varint / a zigzag varint / a length-prefixed string. 0 or buf errors. */
int st_putv(buf *b, uint64_t v);
static inline int st_putz(buf *b, int64_t v) { return st_putv(b, st_zz(v)); }
int st_puts(buf *b, const char *s, size_t n);

/* A bounded reader; every get fails with HE_TRUNCATED/HE_FORMAT instead of overrunning. */
typedef struct st_rd {
    const uint8_t *p, *end;
} st_rd;
int st_getv_slow(st_rd *r, uint64_t *v);
static inline int st_getv(st_rd *r, uint64_t *v)
{
    if (LIKELY(r->p < r->end && *r->p < 0x80)) {
        *v = *r->p++;
        return 0;
    }
    return st_getv_slow(r, v);
}
int st_getz(st_rd *r, int64_t *v);
/* A varint that must be <= max (HE_FORMAT otherwise). */
int st_getv_max(st_rd *r, uint64_t max, uint64_t *v);
/* A length-prefixed string of at most max bytes; *s points into the input. */
int st_gets(st_rd *r, size_t max, const char **s, size_t *n);

uint32_t st_crc32(const void *p, size_t n);

/* Serializes a whole profile (symbols, stacks, types, samples with labels). */
int st_blob_encode(const profile *p, buf *out);
/* Decodes a blob into p (prof_init'ed); every reference is checked. */
int st_blob_decode(profile *p, st_rd *r, herr *e);

/* fsync a directory by path. */
int st_fsync_dir(const char *path);
/* mkdir -p. */
int st_mkdirs(const char *path);
/* rm -rf of a directory of plain files (one level of subdirectories). */
int st_rmtree(const char *path);

/* ---- wal.c ---- */

typedef struct st_wal {
    char *dir;
    int fd;
    uint64_t seq;               /* current segment number */
    uint64_t seg_bytes;         /* bytes in the current segment */
    uint64_t written, synced;   /* logical byte counters across segments */
    int syncing;
    enum store_fsync policy;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int failed;                 /* sticky: a write or fsync failed */
    /* fsync latency (atomics; read by store_get_stats without the mutex) */
    uint64_t fsync_fail, fsync_ns;
    uint64_t fsync_bucket[STORE_FSYNC_BUCKETS + 1];
    uint64_t fail_after;        /* test hook (store_opts.wal_fail_after_bytes); 0 = off */
} st_wal;

/* Ingest record as the WAL and the head see it. Strings point into the record. */
typedef struct st_rec {
    const char *tenant;
    size_t n_labels;
    store_label labels[STORE_MAX_LABELS];
    int64_t time_ns, duration_ns;
    profile prof;
} st_rec;

int st_wal_open(st_wal *w, const char *dir, uint64_t seq, enum store_fsync policy, herr *e);
void st_wal_close(st_wal *w);
/* Appends one record payload; *pos is the logical end to wait for. */
int st_wal_append(st_wal *w, const void *payload, size_t n, uint64_t *pos);
/* Waits until pos is durable (ALWAYS), else returns at once. */
int st_wal_wait(st_wal *w, uint64_t pos);
/* fdatasync now (BATCH thread, close). */
int st_wal_sync(st_wal *w);
/* Syncs and closes the segment and starts segment seq+1. */
int st_wal_rotate(st_wal *w, herr *e);
/*
 * Replays every segment file in dir with number > after, in order: fn gets
 * each record's payload and segment number. A torn or corrupt tail is
 * truncated (warning logged) unless read_only. *last_seq = highest segment.
 */
int st_wal_replay(const char *dir, uint64_t after, int read_only,
                  int (*fn)(void *arg, uint64_t seq, const uint8_t *p, size_t n), void *arg,
                  uint64_t *last_seq, uint64_t *bytes, herr *e);
/* Deletes segments with number <= upto. */
void st_wal_remove_upto(const char *dir, uint64_t upto);

/*
 * Encodes an ingest record (tenant, labels, times, profile): record type 1.
 * A batch (store_ingest_batch) is one record of type 2 holding n type-1
 * records, each behind its u32 length (docs/format.md); replay applies all
 * of it or, if its CRC fails, none of it.
 */
int st_rec_encode(buf *out, const char *tenant, const store_label *labels, size_t n,
                  const profile *p, int64_t time_ns, int64_t duration_ns);
/* The type of a record payload (1 single, 2 batch), 0 if unreadable. */
int st_rec_type(const uint8_t *p, size_t n);
/*
 * Walks the sub-records of a type-2 payload: fn gets each type-1 payload.
 * HE_FORMAT (e says why) if the framing is damaged; then fn saw none.
 */
int st_rec_batch_each(const uint8_t *p, size_t n, int (*fn)(void *arg, const uint8_t *p, size_t n), void *arg, herr *e);
/*
 * Calls fn on each type-1 payload of a record payload: the record itself
 * when it is not a batch, else every sub-record (st_rec_batch_each).
 * HE_FORMAT (e says why) when a batch's framing is damaged; else fn's result.
 */
int st_rec_each(const uint8_t *p, size_t n, int (*fn)(void *arg, const uint8_t *p, size_t n), void *arg, herr *e);
/* Decodes into rec (rec->prof initialized by the call; release with prof_release). */
int st_rec_decode(st_rec *rec, const uint8_t *p, size_t n, herr *e);

/* ---- head.c ---- */

typedef struct st_hseries {
    uint32_t key;          /* id in head->series_keys: the canonical label text */
    uint32_t *lab;         /* 2*n_lab ids in head->lstr: name, value, sorted by name */
    uint32_t n_lab;
    int64_t *ts, *dur, *total;
    uint64_t *row0;        /* first row of each profile in the head's row arrays */
    uint32_t *n_rows;
    size_t n_prof, cap_prof;
} st_hseries;

/* 128-bit content fingerprint -> id, open addressing (head.c). */
typedef struct st_fpslot {
    uint64_t a, b;
    uint32_t val;  /* UINT32_MAX = free */
    uint32_t pad;
} st_fpslot;
typedef struct st_fpmap {
    st_fpslot *slots;
    size_t mask, count;
} st_fpmap;

typedef struct st_head {
    char *tenant;
    int64_t window;        /* partition start, ns */
    profile sym;           /* symbols + stack tree; its strings also hold span ids */
    st_fpmap stack_cache;  /* 128-bit fingerprint of a stack's content (root to leaf) -> its leaf node in sym */
    st_fpmap loc_cache;    /* 128-bit fingerprint of a location's content (strings included) -> its location in sym */
    strtab lstr;           /* label names/values */
    strtab series_keys;    /* canonical label text -> series index */
    st_hseries *series;
    size_t n_series, cap_series;
    uint32_t *r_stack;     /* rows */
    int64_t *r_value;
    uint32_t *r_span;      /* string id in sym, 0 = none */
    uint32_t *r_trace;     /* string id in sym, 0 = none */
    size_t n_rows, cap_rows;
    int64_t min_ts, max_ts;
    size_t n_profiles;
    int64_t created_mono;
} st_head;

int st_head_init(st_head *h, const char *tenant, int64_t window);
void st_head_release(st_head *h);
size_t st_head_bytes(const st_head *h);
/*
 * Inserts one ingest record (all sample types -> series). Checks labels.
 * max_series bounds new series. 0, HE_USAGE, HE_TOOBIG, -ENOMEM.
 */
int st_head_insert(st_head *h, const st_rec *rec, size_t max_series, herr *e);
/* Label value of series si, or NULL. */
const char *st_head_label(const st_head *h, const st_hseries *s, const char *name);

/* Checks labels and tenant the way ingest does. */
int st_check_labels(const store_label *l, size_t n, herr *e);

/* ---- block.c ---- */

typedef struct st_bseries {
    uint32_t *lab;         /* 2*n_lab ids into the block's label strings */
    uint32_t n_lab;
    uint32_t n_prof;
    int64_t *ts, *dur, *total;
    uint32_t *n_rows;
    uint32_t first_chunk, n_chunks;
} st_bseries;

typedef struct st_bchunk {
    uint32_t first_prof, n_prof;  /* within the series */
    uint64_t offset, csize, rawsize;       /* the rows frame */
    uint64_t agg_csize, agg_rawsize;       /* the rollup frame, right after the rows frame */
    int64_t min_ts, max_ts;
} st_bchunk;

typedef struct st_block {
    char *dir;             /* the block directory */
    uint32_t version;      /* format version of its files (1: chunks have no trace column) */
    char *id;
    char *tenant;
    int64_t min_ts, max_ts, window;
    uint64_t flush_seq;    /* WAL segment it was flushed from (compaction: max of sources) */
    uint32_t level;        /* 0 flushed, 1 compacted */
    char **sources;        /* block ids this one replaces */
    uint32_t n_sources;
    /* index */
    strtab lstr;
    st_bseries *series;
    uint32_t n_series;
    st_bchunk *chunks;
    uint32_t n_chunks;
    uint32_t *post_pair;   /* 2*n_post: name id, value id (sorted) */
    uint32_t *post_off;    /* n_post+1 offsets into post_ids */
    uint32_t *post_ids;
    uint32_t n_post;
    uint64_t n_profiles, n_samples;
    /* symbols (mapped) */
    const uint8_t *sym;    /* body */
    size_t sym_len;
    uint64_t sec_off[7], sec_n[7];
    void *sym_map;  size_t sym_map_len;
    const uint8_t *smp;    /* samples body */
    size_t smp_len;
    void *smp_map;  size_t smp_map_len;
    uint64_t bytes_index, bytes_symbols, bytes_samples;
    /* Query cache (query.c), built on a block's first flame query and
     * immutable after: its stack tree merged by frame name. NULL until then. */
    struct st_skel *skel;
    int skel_failed;       /* building it failed: queries take the uncached path */
} st_block;

/* Frees a block's query cache (query.c); NULL is fine. */
void st_skel_free(struct st_skel *k);

enum { SYM_STROFF = 0, SYM_STRDATA, SYM_MAPPINGS, SYM_FUNCTIONS, SYM_LOCATIONS, SYM_LINES, SYM_NODES, SYM_NSECT };
#define SYM_MAPPING_SIZE 40
#define SYM_FUNCTION_SIZE 24
#define SYM_LOCATION_SIZE 24
#define SYM_LINE_SIZE 16
#define SYM_NODE_SIZE 8

/*
 * Opens a block directory: checks every checksum and cross-reference. With
 * deep != 0 also decompresses every chunk and checks its rows. 0 or an error
 * with e saying which file and what is wrong.
 */
int st_block_open(st_block *b, const char *dir, int deep, herr *e);
void st_block_close(st_block *b);
static inline const char *st_block_str(const st_block *b, uint32_t id)
{
    if (id >= b->sec_n[SYM_STROFF]) return "";
    const uint8_t *o = b->sym + b->sec_off[SYM_STROFF] + 4 * (size_t)id;
    return (const char *)(b->sym + b->sec_off[SYM_STRDATA] + st_get32(o));
}
const char *st_block_label(const st_block *b, const st_bseries *s, const char *name);
/*
 * Decompresses chunk c into out (reset first); the rows are laid out as
 * columns, see docs/format.md. Capped at the chunk's rawsize.
 */
int st_block_chunk(const st_block *b, const st_bchunk *c, buf *out, herr *e);

/*
 * Chunk column reader: walks profiles of a decoded chunk of block b (its
 * version says whether there is a trace column; without one, `traces` is
 * empty and st_chunk_trace reads 0 = none).
 */
typedef struct st_chunk_rd {
    st_rd nrows, stacks, values, spans, traces;
    uint32_t n_prof, i;
    int has_traces;
} st_chunk_rd;
int st_chunk_rd_init(st_chunk_rd *r, const st_block *b, const uint8_t *p, size_t n, herr *e);
static inline int st_chunk_trace(st_chunk_rd *r, uint64_t *v)
{
    if (!r->has_traces) {
        *v = 0;
        return 0;
    }
    return st_getv(&r->traces, v);
}
/* The rollup frame: the chunk's rows summed by stack (no spans, no traces). */
typedef struct st_agg_rd {
    st_rd stacks, values;
    uint32_t n;
} st_agg_rd;
int st_agg_rd_init(st_agg_rd *r, const uint8_t *p, size_t n, herr *e);
/* Decompresses chunk c's rollup frame into out. */
int st_block_chunk_agg(const st_block *b, const st_bchunk *c, buf *out, herr *e);

/*
 * Deletes a block directory crash-safely: renamed to .del-<id> first (one
 * atomic step that takes it out of the store), then its files removed; a
 * leftover .del-* is finished at the next open.
 */
int st_block_remove(const char *dir);

/*
 * The format version new blocks are written in: STORE_FORMAT_VERSION, or 1
 * (no trace column) so that tests can make blocks exactly as the previous
 * release wrote them and check they are still read. Tests only; not
 * synchronized (set it while no block is being written).
 */
extern uint32_t st_block_write_version;

/* Writes head h as a new block under tenant_dir; the new block's path in *out_dir (malloc'ed). */
int st_block_write_head(const st_head *h, const char *tenant_dir, uint64_t flush_seq, char **out_dir, herr *e);
/* Merges blocks in[0..n) (same tenant) into one new block; path in *out_dir. */
int st_block_compact(st_block *const *in, size_t n, const char *tenant_dir, int64_t window, char **out_dir, herr *e);

/* ---- store.c: the store object (locking in docs/store.md) ---- */

struct store {
    char *dir, *wal_dir, *tenants_dir;
    store_opts o;
    int lock_fd;
    st_wal wal;
    int wal_open;
    uint64_t checkpoint;          /* WAL segments <= this are in blocks */
    pthread_rwlock_t lock;        /* heads, flushing, blocks */
    st_head **heads;
    size_t n_heads, cap_heads;
    st_head **flushing;           /* heads being written; still queried */
    size_t n_flushing, cap_flushing;
    st_block **blocks;
    size_t n_blocks, cap_blocks;
    char **damaged;               /* "path: reason" */
    size_t n_damaged, cap_damaged;
    pthread_mutex_t maint;        /* serializes flush, compaction, retention */
    pthread_t bg;
    int bg_running, stop;
    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cv;
    uint64_t ingested_profiles, ingested_samples, flushes, compactions, blocks_deleted; /* atomics */
    uint64_t wal_replayed_bytes;
};

/*
 * The "sum by stack id" step of a flame graph query alone (query.c): selects
 * and sums q's rows per stack node exactly as store_select_merge_tree does,
 * then only counts the distinct stacks (*n_stacks) and sums their values
 * (*total); no names, no tree. For the benchmark's apples-to-apples figure
 * against a peer whose query is a GROUP BY stack_id. 0 or a negative error
 * (e says why).
 */
int st_query_stack_sums(store *s, const store_query *q, uint64_t *n_stacks, int64_t *total, herr *e);

#endif

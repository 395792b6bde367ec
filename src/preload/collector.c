/*
 * collector.c: libhearth's background thread. Drains the sample ring,
 * aggregates by (stack, span, labels), and every upload interval turns the
 * aggregate into two pprofs, `process_cpu` (samples:count, cpu:nanoseconds)
 * and `memory` (alloc_objects, alloc_space, inuse_objects, inuse_space),
 * symbolized in-process with the agent's libdw symbolizer, and hands them to
 * the agent's uploader (bounded queue, retry, drop oldest with a count) or
 * writes them to a directory for file:// destinations.
 *
 * Aggregates:
 *   cpu   entries keyed by a hash of frames+span+labels; reset every
 *         interval. Capped at CPU_MAX_STACKS distinct keys per interval
 *         (further new keys are counted as dropped).
 *   heap  a dictionary stack_hash -> frames+span+labels (the live table in
 *         heap.c refers to objects by stack_hash), with this interval's
 *         sampled allocations. alloc_* are per-interval deltas (what the
 *         server sums over time); inuse_* are a snapshot of the live table at
 *         upload time. Estimates: each sample of n bytes counts
 *         1/(1-exp(-n/R)) objects and n times that in bytes. The dictionary
 *         is capped at HEAP_MAX_STACKS; when it is half full, entries with no
 *         live object and no allocation this interval are pruned.
 *
 * The thread is internal (its allocations are not sampled, it has no
 * timer). It runs every 100 ms: drain, refresh the CFI module table when
 * samples landed in modules without one, scan /proc/self/task once a second.
 */
#include "core/common.h"

#include <math.h>
#include <linux/futex.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/symbolize.h"
#include "agent/curl_dl.h"
#include "agent/upload.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "format/pprof.h"
#include "preload/preload.h"
#include "preload/unwind.h"

#define CPU_MAX_STACKS 65536
#define HEAP_MAX_STACKS 65536
#define TICK_NS 100000000ll
#define START_GRACE_NS 2000000l  /* 2 ms */
#define MAX_PPROF_BYTES ((size_t)64 << 20)

typedef struct agg_entry {
    uint64_t key;
    uint32_t frames_at;          /* the stack: n_frames pcs at agg.frames[frames_at] */
    uint16_t n_frames;
    uint8_t truncated;
    uint8_t leaf_exact;          /* frames[0] is an interrupted pc, not a return address */
    pl_span span;
    uint32_t label_ids[PL_MAX_LABELS];
    int64_t samples, value;      /* cpu: samples, ns */
    double alloc_objs, alloc_bytes;  /* heap: this interval, scaled */
    double inuse_objs, inuse_bytes;  /* heap: at build time */
} agg_entry;

typedef struct agg {
    agg_entry *e;
    size_t n, cap, max;
    uint64_t *frames;   /* the entries' stacks, in entry order */
    size_t n_frames, frames_cap;
    hmap64 index;  /* key -> entry index */
    uint64_t dropped;
} agg;

static agg cpu_agg, heap_agg;
static pthread_t thread;
static int thread_started;
static pthread_mutex_t coll_lock = PTHREAD_MUTEX_INITIALIZER;
/*
 * Held while the collector works in its loop and final flush (drain,
 * refresh, build, upload) and by fork's prepare handler: a child is never
 * forked while the collector is inside an allocator or libdw, whose locks
 * it would inherit held. Not held for the start-up work (populating,
 * the first CFI builds) nor while the uploader is made (open_uploader).
 */
static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t coll_cond;
static int flush_done;
/* Set by pl_collector_stop: ends the loop, and cuts start-up work short (an exiting program waits for this thread). */
static _Atomic int stopping;
static int64_t interval_start;
static uploader *upl;
static symbolizer *sym;
static uint64_t seq;
static _Atomic uint64_t n_uploads, n_upload_errors;
static pl_live_item *live_buf;
static uint64_t heap_period;  /* the largest mean gap of this interval's heap samples */
/* Bumped by producers to wake the collector early (a futex: no fd to be closed under us). */
static _Atomic uint32_t kick_word;
static uint32_t start_seen;  /* kick_word when the thread was created */

void pl_collector_kick(void)
{
    int saved = errno;
    atomic_fetch_add_explicit(&kick_word, 1, memory_order_release);
    syscall(SYS_futex, &kick_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

static void agg_init(agg *a, size_t max)
{
    memset(a, 0, sizeof(*a));
    a->max = max;
    hmap64_init(&a->index);
}

static agg_entry *agg_get(agg *a, uint64_t key, const pl_record *r)
{
    uint32_t at = hmap64_get(&a->index, key);
    if (at != HMAP_EMPTY) return &a->e[at];
    if (a->n >= a->max || HGROW(a->e, a->cap, a->n + 1) != 0) {
        a->dropped++;
        return NULL;
    }
    if (HGROW(a->frames, a->frames_cap, a->n_frames + r->n_frames) != 0) {
        a->dropped++;
        return NULL;
    }
    agg_entry *e = &a->e[a->n];
    memset(e, 0, sizeof(*e));
    e->key = key;
    e->frames_at = (uint32_t)a->n_frames;
    e->n_frames = r->n_frames;
    e->truncated = r->truncated;
    e->leaf_exact = r->kind == PL_REC_CPU;
    e->span = r->span;
    memcpy(e->label_ids, r->label_ids, sizeof(e->label_ids));
    memcpy(a->frames + a->n_frames, r->frames, r->n_frames * sizeof(r->frames[0]));
    if (hmap64_put(&a->index, key, (uint32_t)a->n) != 0) {
        a->dropped++;
        return NULL;
    }
    a->n++;
    a->n_frames += r->n_frames;
    for (size_t i = 0; i < e->n_frames; i++) pl_unwind_note_pc(a->frames[e->frames_at + i]);
    return e;
}

/* Forgets every entry (the index too). */
static void agg_clear(agg *a)
{
    a->n = 0;
    a->n_frames = 0;
    hmap64_release(&a->index);
    hmap64_init(&a->index);
}

static void agg_rebuild_index(agg *a)
{
    hmap64_release(&a->index);
    hmap64_init(&a->index);
    for (size_t i = 0; i < a->n; i++) hmap64_put(&a->index, a->e[i].key, (uint32_t)i);
}

static uint64_t record_key(const pl_record *r)
{
    uint64_t h = hash_bytes(r->frames, r->n_frames * sizeof(r->frames[0]), 0xc0ffee);
    h ^= hash_bytes(&r->span, sizeof(r->span), h);
    h ^= hash_bytes(r->label_ids, sizeof(r->label_ids), h);
    return h;
}

static void drain(void)
{
    pl_record *r;
    while ((r = pl_ring_peek())) {
        if (r->kind == PL_REC_CPU) {
            agg_entry *e = agg_get(&cpu_agg, record_key(r), r);
            if (e) {
                e->samples += r->value / (int64_t)(1000000000ull / pl_g.cfg.cpu_hz);
                e->value += r->value;
            }
        } else if (r->kind == PL_REC_HEAP) {
            agg_entry *e = agg_get(&heap_agg, r->stack_hash, r);
            if (e) {
                double scale = pl_heap_scale((uint64_t)r->value, r->heap_rate);
                if (r->heap_rate > heap_period) heap_period = r->heap_rate;
                e->alloc_objs += scale;
                e->alloc_bytes += scale * (double)r->value;
            }
        }
        pl_ring_release();
    }
}

/* ---- building pprof ---- */

typedef struct pl_map {
    uint64_t start, end, pgoff;
    char path[256];
    int32_t mapping;  /* profile mapping index, -1 until used */
    sym_module *mod;
    int mod_failed;
} pl_map;

typedef struct builder {
    profile p;
    pl_map *maps;
    size_t n_maps;
    hmap64 locs;  /* pc << 1 | leaf -> location */
} builder;

static void read_maps(builder *b)
{
    buf m;
    buf_init(&m, 8 << 20);
    if (buf_read_file(&m, "/proc/self/maps") != 0) {
        buf_release(&m);
        return;
    }
    size_t cap = 0;
    for (char *line = m.data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        unsigned long lo, hi, pgoff, inode = 0;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %*s %lu %n", &lo, &hi, perms, &pgoff, &inode, &path_at) >= 5 &&
            perms[2] == 'x' && path_at > 0 && line[path_at] &&
            HGROW(b->maps, cap, b->n_maps + 1) == 0) {
            pl_map *pm = &b->maps[b->n_maps++];
            memset(pm, 0, sizeof(*pm));
            pm->start = lo;
            pm->end = hi;
            pm->pgoff = pgoff;
            pm->mapping = -1;
            snprintf(pm->path, sizeof(pm->path), "%s", line + path_at);
            /* Replaced since mapped: its symbols would be another file's; keep the address only. */
            if (pm->path[0] == '/' && !pl_same_file(pm->path, inode)) pm->mod_failed = 1;
        }
        line = nl ? nl + 1 : NULL;
    }
    buf_release(&m);
}

static pl_map *map_for(builder *b, uint64_t pc)
{
    for (size_t i = 0; i < b->n_maps; i++)
        if (pc >= b->maps[i].start && pc < b->maps[i].end) return &b->maps[i];
    return NULL;
}

static int32_t location_for(builder *b, uint64_t pc, int leaf)
{
    uint64_t key = pc << 1 | (uint64_t)leaf;
    uint32_t at = hmap64_get(&b->locs, key);
    if (at != HMAP_EMPTY) return (int32_t)at;
    profile *p = &b->p;
    pl_map *pm = map_for(b, pc);
    uint32_t mapping = 0;
    prof_line lines[SYM_MAX_INLINE];
    uint32_t n_lines = 0;
    if (pm) {
        if (pm->mapping < 0) {
            prof_mapping m;
            memset(&m, 0, sizeof(m));
            m.memory_start = pm->start;
            m.memory_limit = pm->end;
            m.file_offset = pm->pgoff;
            int32_t fn = prof_cstr(p, pm->path);
            if (fn < 0) return fn;
            m.filename = (uint32_t)fn;
            if (pm->path[0] == '/' && !pm->mod && !pm->mod_failed && sym) {
                herr e;
                herr_clear(&e);
                if (sym_module_get(sym, pm->path, NULL, &pm->mod, &e) != 0) pm->mod_failed = 1;
            }
            if (pm->mod && sym_module_build_id(pm->mod)) {
                int32_t bid = prof_cstr(p, sym_module_build_id(pm->mod));
                if (bid >= 0) m.build_id = (uint32_t)bid;
            }
            m.has_functions = pm->mod != NULL;
            /* libc and the loader are symbolized by name only (sym_opts.libc_names_only) */
            m.has_filenames = m.has_line_numbers = m.has_inline_frames = pm->mod != NULL && !sym_module_names_only(sym, pm->mod);
            pm->mapping = prof_mapping_add(p, &m);
            if (pm->mapping < 0) return pm->mapping;
        }
        mapping = (uint32_t)pm->mapping;
        if (pm->mod) {
            sym_result r;
            uint64_t off = pc - pm->start + pm->pgoff;
            sym_lookup(sym, pm->mod, leaf ? off : off - 1, &r);
            for (int i = 0; i < r.n && i < SYM_MAX_INLINE; i++) {
                const sym_frame *f = &r.frames[i];
                prof_function fn;
                memset(&fn, 0, sizeof(fn));
                int32_t name = prof_cstr(p, f->function ? f->function : "");
                int32_t sys = prof_cstr(p, f->mangled ? f->mangled : (f->function ? f->function : ""));
                int32_t file = prof_cstr(p, f->file ? f->file : "");
                if (name < 0 || sys < 0 || file < 0) return -ENOMEM;
                fn.name = (uint32_t)name;
                fn.system_name = (uint32_t)sys;
                fn.filename = (uint32_t)file;
                int32_t fi = prof_function_intern(p, &fn);
                if (fi < 0) return fi;
                lines[n_lines].function = (uint32_t)fi;
                lines[n_lines].line = f->line;
                lines[n_lines].column = 0;
                n_lines++;
            }
        }
    }
    int32_t loc = prof_location_add(p, pc, mapping, lines, n_lines);
    if (loc < 0) return loc;
    if (hmap64_put(&b->locs, key, (uint32_t)loc) != 0) return -ENOMEM;
    return loc;
}

static int add_labels(profile *p, const agg_entry *e, prof_label *out, uint32_t *n)
{
    char hex[40];
    *n = 0;
    if (e->span.has_span) {
        uint8_t b[8];
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(e->span.span >> (56 - 8 * i));
        pl_hex(hex, b, 8);
        out[*n] = (prof_label){ (uint32_t)prof_cstr(p, "span_id"), (uint32_t)prof_cstr(p, hex), 0, 0 };
        (*n)++;
    }
    if (e->span.has_trace) {
        uint8_t b[16];
        for (int i = 0; i < 8; i++) {
            b[i] = (uint8_t)(e->span.trace_hi >> (56 - 8 * i));
            b[8 + i] = (uint8_t)(e->span.trace_lo >> (56 - 8 * i));
        }
        pl_hex(hex, b, 16);
        out[*n] = (prof_label){ (uint32_t)prof_cstr(p, "trace_id"), (uint32_t)prof_cstr(p, hex), 0, 0 };
        (*n)++;
    }
    for (int i = 0; i < PL_MAX_LABELS; i++) {
        const char *k, *v;
        if (e->label_ids[i] && pl_label_get(e->label_ids[i], &k, &v) == 0) {
            out[*n] = (prof_label){ (uint32_t)prof_cstr(p, k), (uint32_t)prof_cstr(p, v), 0, 0 };
            (*n)++;
        }
    }
    return 0;
}

static int add_sample(builder *b, const agg *a, const agg_entry *e, const int64_t *values)
{
    uint32_t locs[PL_FRAMES_CAP + 1];
    const uint64_t *frames = a->frames + e->frames_at;
    size_t n = 0;
    for (size_t i = 0; i < e->n_frames && i < PL_FRAMES_CAP; i++) {
        if (frames[i] == 0) continue;
        int32_t loc = location_for(b, frames[i], i == 0 && e->leaf_exact);
        if (loc < 0) return loc;
        locs[n++] = (uint32_t)loc;
    }
    int32_t stack = prof_stack_leaf_first(&b->p, locs, n);
    if (stack < 0) return stack;
    prof_label labels[PL_MAX_LABELS + 2];
    uint32_t n_labels;
    add_labels(&b->p, e, labels, &n_labels);
    int64_t rc = prof_sample_add(&b->p, (uint32_t)stack, values, labels, n_labels);
    return rc < 0 ? (int)rc : 0;
}

static int builder_init(builder *b)
{
    memset(b, 0, sizeof(*b));
    hmap64_init(&b->locs);
    int rc = prof_init(&b->p);
    if (rc) return rc;
    read_maps(b);
    return 0;
}

static void builder_release(builder *b)
{
    prof_release(&b->p);
    free(b->maps);
    hmap64_release(&b->locs);
    if (sym) sym_trim(sym);
}

static int set_period(profile *p, const char *type, const char *unit, int64_t period)
{
    int32_t t = prof_cstr(p, type), u = prof_cstr(p, unit);
    if (t < 0 || u < 0) return -ENOMEM;
    p->period_type.type = (uint32_t)t;
    p->period_type.unit = (uint32_t)u;
    p->period = period;
    return 0;
}

static int build_cpu(builder *b, int64_t from, int64_t until)
{
    profile *p = &b->p;
    int rc;
    if ((rc = prof_add_type(p, "samples", "count")) < 0 || (rc = prof_add_type(p, "cpu", "nanoseconds")) < 0) return rc;
    if ((rc = set_period(p, "cpu", "nanoseconds", (int64_t)(1000000000ull / pl_g.cfg.cpu_hz)))) return rc;
    p->time_nanos = from;
    p->duration_nanos = until - from;
    for (size_t i = 0; i < cpu_agg.n; i++) {
        const agg_entry *e = &cpu_agg.e[i];
        int64_t v[2] = { e->samples, e->value };
        if ((rc = add_sample(b, &cpu_agg, e, v))) return rc;
    }
    return 0;
}

static int build_heap(builder *b, int64_t from, int64_t until)
{
    profile *p = &b->p;
    int rc;
    if ((rc = prof_add_type(p, "alloc_objects", "count")) < 0 || (rc = prof_add_type(p, "alloc_space", "bytes")) < 0 ||
        (rc = prof_add_type(p, "inuse_objects", "count")) < 0 || (rc = prof_add_type(p, "inuse_space", "bytes")) < 0)
        return rc;
    /* The period: the largest mean gap of the interval's samples (the budget may have raised it). */
    uint64_t period = heap_period ? heap_period : atomic_load(&pl_g.heap_rate_now);
    if ((rc = set_period(p, "space", "bytes", (int64_t)(period ? period : pl_g.cfg.heap_rate)))) return rc;
    int32_t dflt = prof_cstr(p, "inuse_space");
    if (dflt > 0) p->default_sample_type = (uint32_t)dflt;
    p->time_nanos = from;
    p->duration_nanos = until - from;
    for (size_t i = 0; i < heap_agg.n; i++) heap_agg.e[i].inuse_objs = heap_agg.e[i].inuse_bytes = 0;
    size_t n_live = live_buf ? pl_heap_live_snapshot(live_buf, PL_LIVE_MAX) : 0;
    for (size_t i = 0; i < n_live; i++) {
        uint32_t at = hmap64_get(&heap_agg.index, live_buf[i].stack_hash);
        if (at == HMAP_EMPTY) continue;
        double scale = pl_heap_scale(live_buf[i].size, live_buf[i].rate);
        heap_agg.e[at].inuse_objs += scale;
        heap_agg.e[at].inuse_bytes += scale * (double)live_buf[i].size;
    }
    for (size_t i = 0; i < heap_agg.n; i++) {
        const agg_entry *e = &heap_agg.e[i];
        int64_t v[4] = { llround(e->alloc_objs), llround(e->alloc_bytes), llround(e->inuse_objs), llround(e->inuse_bytes) };
        if (!v[0] && !v[1] && !v[2] && !v[3]) continue;
        if ((rc = add_sample(b, &heap_agg, e, v))) return rc;
    }
    return 0;
}

/* After an upload: alloc deltas restart; stacks with nothing live are pruned when the dictionary is half full. */
static void heap_interval_done(void)
{
    heap_period = 0;
    int prune = heap_agg.n > HEAP_MAX_STACKS / 2;
    size_t w = 0, fw = 0;
    for (size_t i = 0; i < heap_agg.n; i++) {
        agg_entry *e = &heap_agg.e[i];
        e->alloc_objs = e->alloc_bytes = 0;
        if (prune && e->inuse_objs == 0) continue;
        if (prune) {  /* kept stacks move down in order: never over one not yet moved */
            memmove(heap_agg.frames + fw, heap_agg.frames + e->frames_at, e->n_frames * sizeof(uint64_t));
            e->frames_at = (uint32_t)fw;
            fw += e->n_frames;
        }
        if (w != i) heap_agg.e[w] = *e;
        w++;
    }
    if (prune) {
        heap_agg.n = w;
        heap_agg.n_frames = fw;
        agg_rebuild_index(&heap_agg);
    }
}

static int write_file(const char *dir, const char *kind, buf *body)
{
    char path[4096];
    /* The session's start (ms) keeps an image exec'd by this pid from overwriting its predecessor's files. */
    snprintf(path, sizeof(path), "%s/%s.%s.%d.%" PRId64 ".%06" PRIu64 ".pb.gz", dir, pl_g.cfg.app, kind, (int)pl_g.pid,
             pl_g.start_ns / 1000000, seq);
    return buf_write_file(body, path);
}

static void emit(const char *kind, const char *suffix, uint32_t rate, buf *body, int64_t from, int64_t until)
{
    if (strncmp(pl_g.cfg.server, "file://", 7) == 0) {
        int rc = write_file(pl_g.cfg.server + 7, kind, body);
        if (rc) {
            atomic_fetch_add(&n_upload_errors, 1);
            log_warn("hearth: cannot write the %s profile into %s: %s", kind, pl_g.cfg.server + 7, hearth_strerror(rc));
        } else {
            atomic_fetch_add(&n_uploads, 1);
        }
        buf_release(body);
        return;
    }
    if (!upl) {  /* making the uploader failed (logged once): counted, never dropped silently */
        atomic_fetch_add(&n_upload_errors, 1);
        buf_release(body);
        return;
    }
    buf name;
    buf_init(&name, 2048);
    int rc = buf_printf(&name, "%s.%s{", pl_g.cfg.app, suffix);
    if (!rc && pl_g.cfg.tags[0]) rc = buf_puts(&name, pl_g.cfg.tags);
    if (!rc) rc = buf_putc(&name, '}');
    if (!rc) {
        upl_push(upl, name.data, from / 1000000000, (until + 999999999) / 1000000000, rate, body);
        atomic_fetch_add(&n_uploads, 1);
    }
    buf_release(&name);
    buf_release(body);
}

static void build_and_emit(int64_t from, int64_t until)
{
    int cpu = (pl_g.cfg.profiles & HEARTH_PROFILE_CPU) && cpu_agg.n > 0;
    int heap = (pl_g.cfg.profiles & HEARTH_PROFILE_HEAP) && heap_agg.n > 0;
    for (int pass = 0; pass < 2; pass++) {
        if ((pass == 0 && !cpu) || (pass == 1 && !heap)) continue;
        builder b;
        herr e;
        herr_clear(&e);
        buf body;
        buf_init(&body, MAX_PPROF_BYTES);
        int rc = builder_init(&b);
        if (!rc) rc = pass == 0 ? build_cpu(&b, from, until) : build_heap(&b, from, until);
        if (!rc) rc = pprof_encode(&b.p, &body, 1, &e);
        builder_release(&b);
        if (rc) {
            atomic_fetch_add(&n_upload_errors, 1);
            log_warn("hearth: cannot build the %s profile: %s", pass == 0 ? "cpu" : "memory", herr_msg(&e, rc));
            buf_release(&body);
            continue;
        }
        if (pass == 0) emit("cpu", "cpu", pl_g.cfg.cpu_hz, &body, from, until);
        else emit("memory", "alloc_objects", 0, &body, from, until);
    }
    seq++;
    agg_clear(&cpu_agg);
    heap_interval_done();
}

/* ---- the thread ---- */

static int to_files(void) { return strncmp(pl_g.cfg.server, "file://", 7) == 0; }

/* The output directory, made at start so that a bad one is reported at once. */
static int make_output_dir(void)
{
    const char *dir = pl_g.cfg.server + 7;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -errno;
    return 0;
}

/*
 * The uploader, made before the first profile is sent (a process with
 * nothing to send never loads libcurl), with none of our locks held:
 * loading libcurl runs constructors that call pthread_atfork(), and before
 * glibc 2.36 a fork() whose prepare handler (fork_prepare: work_lock)
 * waited for this thread would then never return. On failure profiling
 * stops, with one log line saying why.
 */
static int upl_failed;  /* open_uploader failed (profiling was turned off); reset by pl_collector_start */

/* A server destination, no uploader yet, and something drained to send. */
static int uploader_needed(void)
{
    return !upl && !upl_failed && !to_files() && (cpu_agg.n > 0 || heap_agg.n > 0);
}

static void open_uploader(void)
{
    upl_opts o;
    memset(&o, 0, sizeof(o));
    o.server = pl_g.cfg.server;
    o.auth_token = pl_g.cfg.auth_token[0] ? pl_g.cfg.auth_token : NULL;
    o.tenant = pl_g.cfg.tenant[0] ? pl_g.cfg.tenant : NULL;
    o.spy_name = "hearth";
    o.max_queue = 16;
    o.max_queue_bytes = 32u << 20;
    herr e;
    herr_clear(&e);
    int rc = upl_new(&o, &upl, &e);
    if (rc) {
        char what[sizeof(pl_g.cfg.server) + 300];
        snprintf(what, sizeof what, "cannot upload to %s: %s", pl_g.cfg.server, herr_msg(&e, rc));
        upl_failed = 1;
        pl_fail(what, rc);
    }
}

/*
 * Builds and sends the interval from `from` to now, with work_lock held and
 * the ring drained; returns its end. The uploader is made first if this is
 * the first profile to send, with work_lock let go meanwhile (open_uploader
 * says why) and the ring drained again after.
 */
static int64_t send_interval(int64_t from)
{
    if (uploader_needed()) {
        pthread_mutex_unlock(&work_lock);
        open_uploader();
        pthread_mutex_lock(&work_lock);
        drain();
    }
    int64_t until = now_ns();
    build_and_emit(from, until);
    return until;
}

static int stop_requested(void) { return atomic_load(&stopping); }

/* Tells pl_collector_stop that this thread is done (flushed, or never able to). */
static void finished(void)
{
    pthread_mutex_lock(&coll_lock);
    flush_done = 1;
    pthread_cond_broadcast(&coll_cond);
    pthread_mutex_unlock(&coll_lock);
}

static void *collector_main(void *arg)
{
    (void)arg;
    uint32_t seen = start_seen;
    pl_internal_register();
    /*
     * Before the first samples reach them, off the program's threads (see
     * pl_ring_prefault). A short command (most processes a shell starts)
     * exits within a millisecond, and its exit waits for this thread's
     * final flush: the start-up work (6 MiB populated, CFI for the program
     * and libc, ~12 ms) begins after START_GRACE_NS (so such a command pays
     * nothing; the first CPU sample comes after 10 ms of CPU) and stops
     * short once a stop is requested (2 MiB of populating, or 256 CFI
     * entries, past the request; a table's sort is not cut), since it
     * would serve no further sample.
     */
    struct timespec grace = { 0, START_GRACE_NS };  /* or until the stop's kick */
    syscall(SYS_futex, &kick_word, FUTEX_WAIT_PRIVATE, seen, &grace, NULL, 0);
    pl_unwind_set_cancel(&stopping);
    pl_ring_prefault(&stopping);
    if (!stop_requested()) pl_heap_prefault();
    int rc = to_files() ? make_output_dir() : 0;
    if (rc) {
        char what[sizeof(pl_g.cfg.server) + 32];
        snprintf(what, sizeof what, "cannot set up the destination %s", pl_g.cfg.server);
        pl_fail(what, rc);
        finished();  /* pl_collector_stop must not wait for a flush that will not come */
        return NULL;
    }
    sym_opts so;
    memset(&so, 0, sizeof(so));
    so.max_modules = 64;
    so.max_cache_entries = 65536;
    so.libc_names_only = 1;  /* not 55 ms and 15 MiB in every process for glibc's line numbers */
    sym = sym_new(&so);
    if (!live_buf) live_buf = hmallocarray(PL_LIVE_MAX, sizeof(*live_buf));  /* kept across restarts */
    interval_start = now_ns();
    /* The program and libc get CFI at once; other modules when samples land there. */
    if (!stop_requested()) pl_unwind_refresh();
    pl_unwind_note_pc(getauxval(AT_ENTRY));
    pl_unwind_note_pc((uint64_t)(uintptr_t)&fopen);
    if (!stop_requested()) pl_unwind_refresh();
    int64_t last_scan = mono_ns();
    pl_heap_adapt(last_scan);  /* the budget's first window starts now */
    int64_t next_upload = mono_ns() + (int64_t)pl_g.cfg.interval_ns;
    while (!stop_requested()) {
        struct timespec tick = { 0, TICK_NS };
        syscall(SYS_futex, &kick_word, FUTEX_WAIT_PRIVATE, seen, &tick, NULL, 0);
        seen = atomic_load(&kick_word);
        if (stop_requested()) break;
        pthread_mutex_lock(&work_lock);
        drain();
        int64_t mono = mono_ns();
        pl_heap_adapt(mono);
        /* New CFI at once when samples need it; new mappings (dlopen) within a second. */
        if (pl_unwind_dirty()) pl_unwind_refresh();
        if (mono - last_scan >= 1000000000) {
            pl_unwind_refresh();
            pl_cpu_scan_threads();
            last_scan = mono;
        }
        if (mono >= next_upload) {
            int64_t until = send_interval(interval_start);
            interval_start = until;
            next_upload = mono + (int64_t)pl_g.cfg.interval_ns;
        }
        pthread_mutex_unlock(&work_lock);
    }
    /* Final partial interval. */
    pthread_mutex_lock(&work_lock);
    drain();
    send_interval(interval_start);
    pthread_mutex_unlock(&work_lock);
    if (upl) {
        upl_free(upl, 2000);
        upl = NULL;
    }
    if (sym) {
        sym_free(sym);
        sym = NULL;
    }
    finished();
    return NULL;
}

int pl_collector_start(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&coll_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!cpu_agg.max) agg_init(&cpu_agg, CPU_MAX_STACKS);
    if (!heap_agg.max) agg_init(&heap_agg, HEAP_MAX_STACKS);
    atomic_store(&stopping, 0);
    flush_done = 0;
    upl_failed = 0;

    /*
     * Read before the thread exists: a kick (a full ring, or the program
     * exiting) at any time after this ends the thread's next wait at once
     * instead of being folded into what it waits on and slept through.
     */
    start_seen = atomic_load(&kick_word);
    /* Created from an internal context so the thread is marked internal at once. */
    uint8_t was = pl_tls.internal;
    pl_tls.internal = 1;
    int rc = pthread_create(&thread, NULL, collector_main, NULL);
    pl_tls.internal = was;
    if (rc) return -rc;
    thread_started = 1;
    return 0;
}

void pl_collector_stop(int flush)
{
    if (!thread_started) return;
    atomic_store(&stopping, 1);
    pl_collector_kick();
    pthread_mutex_lock(&coll_lock);
    /* Bounded: an exiting program must not hang on a slow server. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += flush ? 5 : 1;
    while (!flush_done) {
        if (pthread_cond_timedwait(&coll_cond, &coll_lock, &ts) == ETIMEDOUT) break;
    }
    int done = flush_done;
    pthread_mutex_unlock(&coll_lock);
    if (done) {
        pthread_join(thread, NULL);
    } else {
        log_error("hearth: the collector did not finish its final flush within %d s; the last interval is lost",
                  flush ? 5 : 1);
        pthread_detach(thread);
    }
    thread_started = 0;
}

void pl_collector_fork_prepare(void) { pthread_mutex_lock(&work_lock); }
void pl_collector_fork_parent(void) { pthread_mutex_unlock(&work_lock); }

void pl_collector_after_fork_child(void)
{
    pthread_mutex_init(&work_lock, NULL);
    /* The parent's collector and uploader do not exist here; their memory is abandoned, not freed (their locks may be held). */
    pthread_mutex_init(&coll_lock, NULL);
    curl_fns_after_fork_child();
    thread_started = 0;
    upl = NULL;
    sym = NULL;
    agg_clear(&cpu_agg);
    for (size_t i = 0; i < heap_agg.n; i++) heap_agg.e[i].alloc_objs = heap_agg.e[i].alloc_bytes = 0;
    heap_period = 0;
    seq = 0;
}

uint64_t pl_collector_uploads(uint64_t *errors, uint64_t *dropped)
{
    *errors = atomic_load(&n_upload_errors);
    *dropped = cpu_agg.dropped + heap_agg.dropped;
    return atomic_load(&n_uploads);
}

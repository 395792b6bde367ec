/*
 * block.c: immutable on-disk blocks (docs/format.md has the byte layout).
 *
 * A block is a directory TENANT_DIR/<id>/ with three files, each a 32-byte
 * header (magic, version, body length, body CRC-32, header CRC-32) and a
 * body:
 *   index    varint-coded: time range, sources, label strings, series
 *            (labels, per-profile ts/duration/total/row count, chunk list),
 *            postings (label pair -> series ids). Read fully at open.
 *   symbols  fixed-width tables (strings offsets + data, mappings,
 *            functions, locations, lines, stack nodes) behind a section
 *            table; mapped and read in place, so a merge touches only the
 *            entries of the stacks it emits.
 *   samples  two zstd frames per chunk of <= 128 profiles of one series:
 *            the rows (five varint columns: rows per profile, stack ids
 *            sorted and delta coded per profile, values, span ids, trace
 *            ids; version 1 blocks have no trace column) and the
 *            rollup (the chunk's rows summed by stack), so a query over
 *            whole chunks without a span filter decompresses only rollups.
 *
 * Writing goes to TENANT_DIR/.tmp-<id>, every file fsynced, then one
 * rename publishes the block (and the parent directory is fsynced): a
 * crash leaves either no block or a whole one; leftover .tmp-* are removed
 * at open. Opening checks every checksum and every cross-reference, so
 * queries may index the tables without further checks beyond row values.
 */
#include "core/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "core/compress.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "store/store_int.h"

#define HDR_SIZE 32
static const char MAGIC_INDEX[8] = {'H', 'R', 'T', 'H', 'I', 'D', 'X', '1'};
static const char MAGIC_SYMBOLS[8] = {'H', 'R', 'T', 'H', 'S', 'Y', 'M', '1'};
static const char MAGIC_SAMPLES[8] = {'H', 'R', 'T', 'H', 'S', 'M', 'P', '1'};

uint32_t st_block_write_version = STORE_FORMAT_VERSION;

static void make_header(uint8_t *h, const char magic[8], uint32_t version, uint64_t body_len, uint32_t body_crc)
{
    memcpy(h, magic, 8);
    st_put32(h + 8, version);
    st_put32(h + 12, 0);
    st_put64(h + 16, body_len);
    st_put32(h + 24, body_crc);
    st_put32(h + 28, st_crc32(h, 28));
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_file(const char *path, const char magic[8], uint32_t version, const buf *body)
{
    uint8_t h[HDR_SIZE];
    make_header(h, magic, version, body->len, st_crc32(body->data ? body->data : "", body->len));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, h, HDR_SIZE);
    if (!rc && body->len)
        rc = write_all(fd, body->data, body->len);
    if (!rc && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* ---- writer ---- */

typedef struct bw_series {
    char **lab;            /* 2*n_lab strings, sorted by name */
    uint32_t n_lab;
    int64_t *ts, *dur, *total;
    uint32_t *n_rows;
    size_t n_prof, cap_prof;
    uint32_t first_chunk, n_chunks;
} bw_series;

typedef struct bw_chunk {
    uint32_t first_prof, n_prof;
    uint64_t offset, csize, rawsize, agg_csize, agg_rawsize;
} bw_chunk;

typedef struct bwriter {
    char *tenant_dir, *id, *tmp, *final;
    int fd;
    uint64_t off;
    uint32_t crc;
    bw_series *series;
    size_t n_series, cap_series;
    bw_chunk *chunks;
    size_t n_chunks, cap_chunks;
    /* the chunk being built */
    buf c_nrows, c_stacks, c_values, c_spans, c_traces, raw, z;
    hmap64 agg_index;      /* stack -> index into agg_* for the chunk being built */
    uint32_t *agg_stack;
    int64_t *agg_value;
    size_t n_agg, cap_agg;
    buf c_aggs, c_aggv;
    uint32_t c_prof, c_first;
    uint32_t version;      /* format version written (st_block_write_version at begin) */
    int level;
    int64_t min_ts, max_ts;
    uint64_t n_samples;
    /* row sorting scratch */
    uint64_t *sort;
    size_t cap_sort;
} bwriter;

static int bw_begin(bwriter *w, const char *tenant_dir, int level, herr *e)
{
    static unsigned counter;
    memset(w, 0, sizeof(*w));
    char id[64];
    snprintf(id, sizeof(id), "%016" PRIx64 "%04x%04x", (uint64_t)now_ns(), (unsigned)getpid() & 0xffff,
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) & 0xffff);
    w->id = xstrdup(id);
    w->tenant_dir = xstrdup(tenant_dir);
    size_t n = strlen(tenant_dir) + 80;
    w->tmp = xmalloc(n);
    w->final = xmalloc(n);
    snprintf(w->tmp, n, "%s/.tmp-%s", tenant_dir, id);
    snprintf(w->final, n, "%s/%s", tenant_dir, id);
    int rc = st_mkdirs(w->tmp);
    if (rc)
        return herr_set(e, rc, "cannot create block directory \"%s\": %s", w->tmp, strerror(-rc));
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/samples", w->tmp);
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return herr_set(e, -errno, "cannot create \"%s\": %s", path, strerror(errno));
    uint8_t zero[HDR_SIZE] = {0};
    if ((rc = write_all(w->fd, zero, HDR_SIZE)))
        return herr_set(e, rc, "cannot write \"%s\": %s", path, strerror(-rc));
    w->crc = st_crc32(NULL, 0);
    w->level = level;
    w->version = st_block_write_version == 1 ? 1 : STORE_FORMAT_VERSION;
    w->min_ts = INT64_MAX;
    w->max_ts = INT64_MIN;
    buf_init(&w->c_nrows, 0);
    buf_init(&w->c_stacks, 0);
    buf_init(&w->c_values, 0);
    buf_init(&w->c_spans, 0);
    buf_init(&w->c_traces, 0);
    buf_init(&w->c_aggs, 0);
    buf_init(&w->c_aggv, 0);
    hmap64_init(&w->agg_index);
    buf_init(&w->raw, 0);
    buf_init(&w->z, 0);
    return 0;
}

static void bw_abort(bwriter *w)
{
    if (w->fd > 0)
        close(w->fd);
    if (w->tmp)
        st_rmtree(w->tmp);
    for (size_t i = 0; i < w->n_series; i++) {
        bw_series *s = &w->series[i];
        for (uint32_t k = 0; k < 2 * s->n_lab; k++)
            free(s->lab[k]);
        free(s->lab);
        free(s->ts);
        free(s->dur);
        free(s->total);
        free(s->n_rows);
    }
    free(w->series);
    free(w->chunks);
    buf_release(&w->c_nrows);
    buf_release(&w->c_stacks);
    buf_release(&w->c_values);
    buf_release(&w->c_spans);
    buf_release(&w->c_traces);
    buf_release(&w->c_aggs);
    buf_release(&w->c_aggv);
    hmap64_release(&w->agg_index);
    free(w->agg_stack);
    free(w->agg_value);
    buf_release(&w->raw);
    buf_release(&w->z);
    free(w->sort);
    free(w->id);
    free(w->tenant_dir);
    free(w->tmp);
    free(w->final);
    memset(w, 0, sizeof(*w));
}

static void bw_series_begin(bwriter *w, const char *const *lab, uint32_t n_lab)
{
    XGROW(w->series, w->cap_series, w->n_series + 1);
    bw_series *s = &w->series[w->n_series++];
    memset(s, 0, sizeof(*s));
    s->lab = xmallocarray(2 * (size_t)n_lab + 1, sizeof(char *));
    for (uint32_t i = 0; i < 2 * n_lab; i++)
        s->lab[i] = xstrdup(lab[i]);
    s->n_lab = n_lab;
    s->first_chunk = (uint32_t)w->n_chunks;
    w->c_prof = 0;
    w->c_first = 0;
}

static int cmp_u64(const void *a, const void *b);

static int bw_flush_chunk(bwriter *w)
{
    if (w->c_prof == 0)
        return 0;
    bw_series *s = &w->series[w->n_series - 1];
    int rc;
    /* The rollup columns: rows summed by stack, sorted by stack, for queries without a span filter. */
    uint64_t *ord = xmallocarray(w->n_agg + 1, sizeof(uint64_t));
    for (size_t i = 0; i < w->n_agg; i++)
        ord[i] = (uint64_t)w->agg_stack[i] << 32 | i;
    qsort(ord, w->n_agg, sizeof(uint64_t), cmp_u64);
    buf_reset(&w->c_aggs);
    buf_reset(&w->c_aggv);
    uint32_t prev = 0;
    for (size_t k = 0; k < w->n_agg; k++) {
        uint32_t i = (uint32_t)ord[k];
        if ((rc = st_putv(&w->c_aggs, w->agg_stack[i] - prev)) || (rc = st_putz(&w->c_aggv, w->agg_value[i]))) {
            free(ord);
            return rc;
        }
        prev = w->agg_stack[i];
    }
    free(ord);
    /* Rows frame: profile count, five column lengths (four in version 1: no traces), the columns. */
    int traces = w->version >= 2;
    buf_reset(&w->raw);
    if ((rc = st_putv(&w->raw, w->c_prof)) || (rc = st_putv(&w->raw, w->c_nrows.len)) ||
        (rc = st_putv(&w->raw, w->c_stacks.len)) || (rc = st_putv(&w->raw, w->c_values.len)) ||
        (rc = st_putv(&w->raw, w->c_spans.len)) || (traces && (rc = st_putv(&w->raw, w->c_traces.len))) ||
        (rc = buf_append(&w->raw, w->c_nrows.data, w->c_nrows.len)) ||
        (rc = buf_append(&w->raw, w->c_stacks.data, w->c_stacks.len)) ||
        (rc = buf_append(&w->raw, w->c_values.data, w->c_values.len)) ||
        (rc = buf_append(&w->raw, w->c_spans.data, w->c_spans.len)) ||
        (traces && (rc = buf_append(&w->raw, w->c_traces.data, w->c_traces.len))))
        return rc;
    buf_reset(&w->z);
    if ((rc = zstd_compress(w->raw.data, w->raw.len, w->level, &w->z)))
        return rc;
    uint64_t rows_c = w->z.len, rows_raw = w->raw.len;
    /* Rollup frame: entry count, stacks column length, the two columns. */
    buf_reset(&w->raw);
    if ((rc = st_putv(&w->raw, w->n_agg)) || (rc = st_putv(&w->raw, w->c_aggs.len)) ||
        (rc = buf_append(&w->raw, w->c_aggs.data, w->c_aggs.len)) ||
        (rc = buf_append(&w->raw, w->c_aggv.data, w->c_aggv.len)))
        return rc;
    if ((rc = zstd_compress(w->raw.data, w->raw.len, w->level, &w->z)))
        return rc;
    w->n_agg = 0;
    hmap64_release(&w->agg_index);
    hmap64_init(&w->agg_index);
    if ((rc = write_all(w->fd, w->z.data, w->z.len)))
        return rc;
    w->crc = (uint32_t)crc32(w->crc, (const Bytef *)w->z.data, (uInt)w->z.len);
    if (HGROW(w->chunks, w->cap_chunks, w->n_chunks + 1))
        return -ENOMEM;
    w->chunks[w->n_chunks++] = (bw_chunk){w->c_first, w->c_prof, w->off, rows_c, rows_raw, w->z.len - rows_c, w->raw.len};
    w->off += w->z.len;
    s->n_chunks++;
    w->c_first += w->c_prof;
    w->c_prof = 0;
    buf_reset(&w->c_nrows);
    buf_reset(&w->c_stacks);
    buf_reset(&w->c_values);
    buf_reset(&w->c_spans);
    buf_reset(&w->c_traces);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One profile of the current series: rows (stack, value, span, trace); span/trace NULL = none. */
static int bw_profile(bwriter *w, int64_t ts, int64_t dur, const uint32_t *stack, const int64_t *value,
                      const uint32_t *span, const uint32_t *trace, size_t n)
{
    bw_series *s = &w->series[w->n_series - 1];
    int rc;
    if (s->n_prof == s->cap_prof) {
        size_t c = s->cap_prof ? s->cap_prof * 2 : 16;
        s->ts = xreallocarray(s->ts, c, sizeof(int64_t));
        s->dur = xreallocarray(s->dur, c, sizeof(int64_t));
        s->total = xreallocarray(s->total, c, sizeof(int64_t));
        s->n_rows = xreallocarray(s->n_rows, c, sizeof(uint32_t));
        s->cap_prof = c;
    }
    /* Sort rows by stack (delta coding), keeping the original index for value and span. */
    if (n > w->cap_sort) {
        w->sort = xreallocarray(w->sort, n, sizeof(uint64_t));
        w->cap_sort = n;
    }
    for (size_t i = 0; i < n; i++)
        w->sort[i] = (uint64_t)stack[i] << 32 | i;
    qsort(w->sort, n, sizeof(uint64_t), cmp_u64);
    uint32_t prev = 0;
    int64_t total = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)w->sort[k];
        if ((rc = st_putv(&w->c_stacks, stack[i] - prev)) || (rc = st_putz(&w->c_values, value[i])) ||
            (rc = st_putv(&w->c_spans, span ? span[i] : 0)) || (rc = st_putv(&w->c_traces, trace ? trace[i] : 0)))
            return rc;
        prev = stack[i];
        total = prof_sat_add(total, value[i]);
        uint32_t ai = hmap64_get_or_put(&w->agg_index, stack[i], (uint32_t)w->n_agg);
        if (ai == HMAP_EMPTY)
            return -ENOMEM;
        if (ai == w->n_agg) {
            if (w->n_agg == w->cap_agg) {
                size_t c = w->cap_agg ? w->cap_agg * 2 : 1024;
                w->agg_stack = xreallocarray(w->agg_stack, c, sizeof(uint32_t));
                w->agg_value = xreallocarray(w->agg_value, c, sizeof(int64_t));
                w->cap_agg = c;
            }
            w->agg_stack[ai] = stack[i];
            w->agg_value[ai] = 0;
            w->n_agg++;
        }
        w->agg_value[ai] = prof_sat_add(w->agg_value[ai], value[i]);
    }
    if ((rc = st_putv(&w->c_nrows, n)))
        return rc;
    s->ts[s->n_prof] = ts;
    s->dur[s->n_prof] = dur;
    s->total[s->n_prof] = total;
    s->n_rows[s->n_prof] = (uint32_t)n;
    s->n_prof++;
    w->n_samples += n;
    if (ts < w->min_ts)
        w->min_ts = ts;
    if (ts > w->max_ts)
        w->max_ts = ts;
    if (++w->c_prof >= STORE_CHUNK_PROFILES)
        return bw_flush_chunk(w);
    return 0;
}

static int bw_series_end(bwriter *w)
{
    return bw_flush_chunk(w);
}

static int put_symbols(const profile *p, buf *b)
{
    int rc;
    uint64_t off[SYM_NSECT], cnt[SYM_NSECT];
    size_t hdr = 8 + 16 * SYM_NSECT;
    /* Compute the layout first so the section table can be written up front. */
    uint64_t strbytes = 0;
    for (uint32_t i = 0; i < p->strings.count; i++)
        strbytes += strtab_len(&p->strings, i) + 1;
    cnt[SYM_STROFF] = p->strings.count;
    cnt[SYM_STRDATA] = strbytes;
    cnt[SYM_MAPPINGS] = p->n_mappings;
    cnt[SYM_FUNCTIONS] = p->n_functions;
    cnt[SYM_LOCATIONS] = p->n_locations;
    cnt[SYM_LINES] = p->n_lines;
    cnt[SYM_NODES] = p->n_nodes;
    const size_t rsz[SYM_NSECT] = {4, 1, SYM_MAPPING_SIZE, SYM_FUNCTION_SIZE, SYM_LOCATION_SIZE, SYM_LINE_SIZE, SYM_NODE_SIZE};
    uint64_t o = hdr;
    for (int k = 0; k < SYM_NSECT; k++) {
        off[k] = o;
        o += cnt[k] * rsz[k];
        o = (o + 7) & ~(uint64_t)7;
    }
    if (strbytes > UINT32_MAX)
        return HE_TOOBIG;
    if ((rc = buf_reserve(b, o)))
        return rc;
    memset(b->data, 0, o);
    uint8_t *d = (uint8_t *)b->data;
    st_put32(d, SYM_NSECT);
    st_put32(d + 4, 0);
    for (int k = 0; k < SYM_NSECT; k++) {
        st_put64(d + 8 + 16 * k, off[k]);
        st_put64(d + 16 + 16 * k, cnt[k]);
    }
    uint32_t so = 0;
    for (uint32_t i = 0; i < p->strings.count; i++) {
        uint32_t l = strtab_len(&p->strings, i);
        st_put32(d + off[SYM_STROFF] + 4 * (size_t)i, so);
        memcpy(d + off[SYM_STRDATA] + so, strtab_get(&p->strings, i), l);
        so += l + 1;
    }
    for (uint32_t i = 0; i < p->n_mappings; i++) {
        uint8_t *r = d + off[SYM_MAPPINGS] + (size_t)i * SYM_MAPPING_SIZE;
        const prof_mapping *m = &p->mappings[i];
        st_put64(r, m->memory_start);
        st_put64(r + 8, m->memory_limit);
        st_put64(r + 16, m->file_offset);
        st_put32(r + 24, m->filename);
        st_put32(r + 28, m->build_id);
        st_put32(r + 32, (uint32_t)(m->has_functions | m->has_filenames << 1 | m->has_line_numbers << 2 | m->has_inline_frames << 3));
    }
    for (uint32_t i = 0; i < p->n_functions; i++) {
        uint8_t *r = d + off[SYM_FUNCTIONS] + (size_t)i * SYM_FUNCTION_SIZE;
        const prof_function *f = &p->functions[i];
        st_put32(r, f->name);
        st_put32(r + 4, f->system_name);
        st_put32(r + 8, f->filename);
        st_put64(r + 16, (uint64_t)f->start_line);
    }
    for (uint32_t i = 0; i < p->n_locations; i++) {
        uint8_t *r = d + off[SYM_LOCATIONS] + (size_t)i * SYM_LOCATION_SIZE;
        const prof_location *l = &p->locations[i];
        st_put64(r, l->address);
        st_put32(r + 8, l->mapping);
        st_put32(r + 12, l->first_line);
        st_put32(r + 16, l->n_lines);
        st_put32(r + 20, l->is_folded);
    }
    for (uint32_t i = 0; i < p->n_lines; i++) {
        uint8_t *r = d + off[SYM_LINES] + (size_t)i * SYM_LINE_SIZE;
        st_put32(r, p->lines[i].function);
        st_put64(r + 8, (uint64_t)p->lines[i].line);
    }
    for (uint32_t i = 0; i < p->n_nodes; i++) {
        uint8_t *r = d + off[SYM_NODES] + (size_t)i * SYM_NODE_SIZE;
        st_put32(r, p->nodes[i].parent);
        st_put32(r + 4, p->nodes[i].location);
    }
    b->len = o;
    return 0;
}

typedef struct pair_ref {
    uint32_t name, value, series;
} pair_ref;

static int cmp_pair(const void *a, const void *b)
{
    const pair_ref *x = a, *y = b;
    if (x->name != y->name)
        return x->name < y->name ? -1 : 1;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return x->series < y->series ? -1 : x->series > y->series;
}

static int put_index(bwriter *w, int64_t window, uint64_t flush_seq, char *const *sources, size_t n_sources, buf *b)
{
    int rc;
    strtab ls;
    strtab_init(&ls);
    strtab_intern(&ls, "", 0);
#define P(x) do { if ((rc = (x))) goto out; } while (0)
    /* Label strings first, so the series can refer to them by id. */
    size_t n_pairs = 0;
    for (size_t i = 0; i < w->n_series; i++) {
        for (uint32_t k = 0; k < 2 * w->series[i].n_lab; k++)
            if (strtab_intern_cstr(&ls, w->series[i].lab[k]) < 0) {
                rc = -ENOMEM;
                goto out;
            }
        n_pairs += w->series[i].n_lab;
    }
    P(st_putz(b, w->n_series ? w->min_ts : 0));
    P(st_putz(b, w->n_series ? w->max_ts : 0));
    P(st_putz(b, window));
    P(st_putv(b, flush_seq));
    P(st_putv(b, n_sources ? 1 : 0));
    P(st_putv(b, n_sources));
    for (size_t i = 0; i < n_sources; i++)
        P(st_puts(b, sources[i], strlen(sources[i])));
    P(st_putv(b, ls.count));
    for (uint32_t i = 0; i < ls.count; i++)
        P(st_puts(b, strtab_get(&ls, i), strtab_len(&ls, i)));
    P(st_putv(b, w->n_series));
    pair_ref *pairs = xmallocarray(n_pairs + 1, sizeof(pair_ref));
    size_t np = 0;
    for (size_t i = 0; i < w->n_series; i++) {
        bw_series *s = &w->series[i];
        P(st_putv(b, s->n_lab));
        for (uint32_t k = 0; k < s->n_lab; k++) {
            uint32_t a = (uint32_t)strtab_find(&ls, s->lab[2 * k], strlen(s->lab[2 * k]));
            uint32_t v = (uint32_t)strtab_find(&ls, s->lab[2 * k + 1], strlen(s->lab[2 * k + 1]));
            P(st_putv(b, a));
            P(st_putv(b, v));
            pairs[np++] = (pair_ref){a, v, (uint32_t)i};
        }
        P(st_putv(b, s->n_prof));
        int64_t prev = 0;
        for (size_t k = 0; k < s->n_prof; k++) {
            P(st_putz(b, s->ts[k] - prev));
            prev = s->ts[k];
            P(st_putz(b, s->dur[k]));
            P(st_putz(b, s->total[k]));
            P(st_putv(b, s->n_rows[k]));
        }
        P(st_putv(b, s->n_chunks));
        for (uint32_t k = 0; k < s->n_chunks; k++) {
            bw_chunk *c = &w->chunks[s->first_chunk + k];
            P(st_putv(b, c->n_prof));
            P(st_putv(b, c->offset));
            P(st_putv(b, c->csize));
            P(st_putv(b, c->rawsize));
            P(st_putv(b, c->agg_csize));
            P(st_putv(b, c->agg_rawsize));
        }
    }
    qsort(pairs, np, sizeof(pair_ref), cmp_pair);
    size_t n_post = 0;
    for (size_t i = 0; i < np; i++)
        if (i == 0 || pairs[i].name != pairs[i - 1].name || pairs[i].value != pairs[i - 1].value)
            n_post++;
    P(st_putv(b, n_post));
    for (size_t i = 0; i < np;) {
        size_t j = i;
        while (j < np && pairs[j].name == pairs[i].name && pairs[j].value == pairs[i].value)
            j++;
        P(st_putv(b, pairs[i].name));
        P(st_putv(b, pairs[i].value));
        P(st_putv(b, j - i));
        uint32_t prev_id = 0;
        for (size_t k = i; k < j; k++) {
            P(st_putv(b, pairs[k].series - prev_id));
            prev_id = pairs[k].series;
        }
        i = j;
    }
    free(pairs);
#undef P
out:
    strtab_release(&ls);
    return rc;
}

/* Finishes the block: samples header, symbols, index, rename. */
static int bw_finish(bwriter *w, const profile *sym, int64_t window, uint64_t flush_seq, char *const *sources,
                     size_t n_sources, char **out_dir, herr *e)
{
    int rc;
    uint8_t h[HDR_SIZE];
    make_header(h, MAGIC_SAMPLES, w->version, w->off, w->crc);
    if (pwrite(w->fd, h, HDR_SIZE, 0) != HDR_SIZE || fsync(w->fd) != 0)
        return herr_set(e, -EIO, "cannot write samples of block \"%s\": %s", w->tmp, strerror(errno));
    close(w->fd);
    w->fd = -1;
    buf body;
    buf_init(&body, 0);
    char path[PATH_MAX];
    if ((rc = put_symbols(sym, &body)))
        goto fail;
    snprintf(path, sizeof(path), "%s/symbols", w->tmp);
    if ((rc = write_file(path, MAGIC_SYMBOLS, w->version, &body)))
        goto fail;
    buf_reset(&body);
    if ((rc = put_index(w, window, flush_seq, sources, n_sources, &body)))
        goto fail;
    snprintf(path, sizeof(path), "%s/index", w->tmp);
    if ((rc = write_file(path, MAGIC_INDEX, w->version, &body)))
        goto fail;
    buf_release(&body);
    if ((rc = st_fsync_dir(w->tmp)))
        return herr_set(e, rc, "cannot fsync \"%s\"", w->tmp);
    if (rename(w->tmp, w->final) != 0)
        return herr_set(e, -errno, "cannot rename \"%s\" to \"%s\": %s", w->tmp, w->final, strerror(errno));
    free(w->tmp);
    w->tmp = NULL;
    st_fsync_dir(w->tenant_dir);
    *out_dir = xstrdup(w->final);
    return 0;
fail:
    buf_release(&body);
    return herr_set(e, rc, "cannot write block \"%s\": %s", w->tmp, hearth_strerror(rc));
}

/* Series order in a block: by canonical label text, so compaction output is deterministic. */
typedef struct hs_order {
    const st_head *h;
    uint32_t i;
} hs_order;

static int cmp_hs(const void *a, const void *b)
{
    const hs_order *x = a, *y = b;
    const st_head *h = x->h;
    return strcmp(strtab_get(&h->series_keys, h->series[x->i].key), strtab_get(&h->series_keys, h->series[y->i].key));
}

int st_block_write_head(const st_head *h, const char *tenant_dir, uint64_t flush_seq, char **out_dir, herr *e)
{
    bwriter w;
    int rc = bw_begin(&w, tenant_dir, 1, e);
    if (rc) {
        bw_abort(&w);
        return rc;
    }
    hs_order *ord = xmallocarray(h->n_series + 1, sizeof(*ord));
    for (size_t i = 0; i < h->n_series; i++)
        ord[i] = (hs_order){h, (uint32_t)i};
    qsort(ord, h->n_series, sizeof(*ord), cmp_hs);
    const char *lab[2 * STORE_MAX_LABELS + 16];
    for (size_t oi = 0; oi < h->n_series && rc == 0; oi++) {
        const st_hseries *s = &h->series[ord[oi].i];
        for (uint32_t k = 0; k < 2 * s->n_lab && k < ARRAY_SIZE(lab); k++)
            lab[k] = strtab_get(&h->lstr, s->lab[k]);
        bw_series_begin(&w, lab, s->n_lab);
        for (size_t k = 0; k < s->n_prof && rc == 0; k++)
            rc = bw_profile(&w, s->ts[k], s->dur[k], h->r_stack + s->row0[k], h->r_value + s->row0[k],
                            h->r_span + s->row0[k], h->r_trace + s->row0[k], s->n_rows[k]);
        if (!rc)
            rc = bw_series_end(&w);
    }
    free(ord);
    if (rc)
        herr_set(e, rc, "cannot write block in \"%s\": %s", tenant_dir, hearth_strerror(rc));
    else
        rc = bw_finish(&w, &h->sym, h->window, flush_seq, NULL, 0, out_dir, e);
    bw_abort(&w);
    return rc;
}

int st_block_remove(const char *dir)
{
    char parent[PATH_MAX], del[PATH_MAX + 64];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (!slash)
        return st_rmtree(dir);
    *slash = 0;
    snprintf(del, sizeof(del), "%s/.del-%s", parent, slash + 1);
    if (rename(dir, del) != 0)
        return -errno;
    st_fsync_dir(parent);
    return st_rmtree(del);
}

/* ---- reader ---- */

static int map_file(const char *path, const char magic[8], void **map, size_t *map_len, const uint8_t **body,
                    size_t *body_len, uint64_t *file_bytes, uint32_t *version, herr *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return herr_set(e, -errno, "cannot open \"%s\": %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return herr_set(e, -errno, "cannot stat \"%s\"", path);
    }
    size_t len = (size_t)st.st_size;
    *file_bytes = len;
    if (len < HDR_SIZE) {
        close(fd);
        return herr_set(e, HE_TRUNCATED, "\"%s\" is %zu bytes, shorter than its 32-byte header", path, len);
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return herr_set(e, -errno, "cannot map \"%s\": %s", path, strerror(errno));
    *map = m;
    *map_len = len;
    const uint8_t *h = m;
    if (memcmp(h, magic, 8) != 0)
        return herr_set(e, HE_FORMAT, "\"%s\": bad magic (not a hearth block file)", path);
    if (st_crc32(h, 28) != st_get32(h + 28))
        return herr_set(e, HE_CHECKSUM, "\"%s\": header checksum mismatch", path);
    *version = st_get32(h + 8);
    if (*version < 1 || *version > STORE_FORMAT_VERSION)
        return herr_set(e, HE_UNSUPPORTED, "\"%s\": format version %u, this hearth reads versions 1 to %d", path, *version,
                        STORE_FORMAT_VERSION);
    uint64_t bl = st_get64(h + 16);
    if (bl != len - HDR_SIZE)
        return herr_set(e, HE_TRUNCATED, "\"%s\": body is %zu bytes, header says %" PRIu64, path, len - HDR_SIZE, bl);
    if (st_crc32(h + HDR_SIZE, bl) != st_get32(h + 24))
        return herr_set(e, HE_CHECKSUM, "\"%s\": body checksum mismatch (the file is damaged)", path);
    *body = h + HDR_SIZE;
    *body_len = bl;
    return 0;
}

static int check_symbols(st_block *b, const char *path, herr *e)
{
    const uint8_t *d = b->sym;
    size_t n = b->sym_len;
    if (n < 8 + 16 * SYM_NSECT || st_get32(d) != SYM_NSECT)
        return herr_set(e, HE_FORMAT, "\"%s\": bad section table", path);
    const size_t rsz[SYM_NSECT] = {4, 1, SYM_MAPPING_SIZE, SYM_FUNCTION_SIZE, SYM_LOCATION_SIZE, SYM_LINE_SIZE, SYM_NODE_SIZE};
    for (int k = 0; k < SYM_NSECT; k++) {
        b->sec_off[k] = st_get64(d + 8 + 16 * k);
        b->sec_n[k] = st_get64(d + 16 + 16 * k);
        if (b->sec_off[k] > n || b->sec_n[k] > (n - b->sec_off[k]) / rsz[k] || b->sec_n[k] > UINT32_MAX)
            return herr_set(e, HE_FORMAT, "\"%s\": section %d runs past the end", path, k);
    }
    uint64_t ns = b->sec_n[SYM_STROFF], nd = b->sec_n[SYM_STRDATA];
    uint64_t nm = b->sec_n[SYM_MAPPINGS], nf = b->sec_n[SYM_FUNCTIONS], nl = b->sec_n[SYM_LOCATIONS];
    uint64_t nli = b->sec_n[SYM_LINES], nn = b->sec_n[SYM_NODES];
    if (ns < 1 || nm < 1 || nf < 1 || nl < 1 || nn < 1)
        return herr_set(e, HE_FORMAT, "\"%s\": a table lacks its entry 0", path);
    const uint8_t *sd = d + b->sec_off[SYM_STRDATA];
    uint64_t prev_end = 0;
    for (uint64_t i = 0; i < ns; i++) {
        uint32_t o = st_get32(d + b->sec_off[SYM_STROFF] + 4 * i);
        if (o != prev_end || o >= nd)
            return herr_set(e, HE_BADREF, "\"%s\": string %" PRIu64 " offset %u out of order or range", path, i, o);
        const uint8_t *z = memchr(sd + o, 0, nd - o);
        if (!z)
            return herr_set(e, HE_FORMAT, "\"%s\": string %" PRIu64 " not terminated", path, i);
        prev_end = (uint64_t)(z - sd) + 1;
    }
    for (uint64_t i = 0; i < nm; i++) {
        const uint8_t *r = d + b->sec_off[SYM_MAPPINGS] + i * SYM_MAPPING_SIZE;
        if (st_get32(r + 24) >= ns || st_get32(r + 28) >= ns)
            return herr_set(e, HE_BADREF, "\"%s\": mapping %" PRIu64 " refers to a missing string", path, i);
    }
    for (uint64_t i = 0; i < nf; i++) {
        const uint8_t *r = d + b->sec_off[SYM_FUNCTIONS] + i * SYM_FUNCTION_SIZE;
        if (st_get32(r) >= ns || st_get32(r + 4) >= ns || st_get32(r + 8) >= ns)
            return herr_set(e, HE_BADREF, "\"%s\": function %" PRIu64 " refers to a missing string", path, i);
    }
    for (uint64_t i = 0; i < nl; i++) {
        const uint8_t *r = d + b->sec_off[SYM_LOCATIONS] + i * SYM_LOCATION_SIZE;
        uint64_t fl = st_get32(r + 12), cnt = st_get32(r + 16);
        if (st_get32(r + 8) >= nm || fl + cnt > nli)
            return herr_set(e, HE_BADREF, "\"%s\": location %" PRIu64 " refers to a missing mapping or line", path, i);
    }
    for (uint64_t i = 0; i < nli; i++)
        if (st_get32(d + b->sec_off[SYM_LINES] + i * SYM_LINE_SIZE) >= nf)
            return herr_set(e, HE_BADREF, "\"%s\": line %" PRIu64 " refers to a missing function", path, i);
    for (uint64_t i = 1; i < nn; i++) {
        const uint8_t *r = d + b->sec_off[SYM_NODES] + i * SYM_NODE_SIZE;
        uint32_t loc = st_get32(r + 4);
        if (st_get32(r) >= i || loc == 0 || loc >= nl)
            return herr_set(e, HE_BADREF, "\"%s\": stack node %" PRIu64 " has a bad parent or location", path, i);
    }
    return 0;
}

#define IDX_FAIL(...) do { rc = herr_set(e, HE_FORMAT, __VA_ARGS__); goto out; } while (0)

static int parse_index(st_block *b, const uint8_t *p, size_t n, const char *path, herr *e)
{
    st_rd r = {p, p + n};
    uint64_t v, cnt;
    int rc = 0;
    const char *s;
    size_t sl;
#define G(x) do { if (x) IDX_FAIL("\"%s\": malformed near byte %zu", path, (size_t)(r.p - p)); } while (0)
    G(st_getz(&r, &b->min_ts));
    G(st_getz(&r, &b->max_ts));
    G(st_getz(&r, &b->window));
    G(st_getv(&r, &b->flush_seq));
    G(st_getv_max(&r, 16, &v));
    b->level = (uint32_t)v;
    G(st_getv_max(&r, 1u << 20, &cnt));
    b->sources = xcalloc(cnt + 1, sizeof(char *));
    for (uint64_t i = 0; i < cnt; i++) {
        G(st_gets(&r, 256, &s, &sl));
        b->sources[i] = xstrndup(s, sl);
        b->n_sources++;
    }
    G(st_getv_max(&r, 1u << 26, &cnt));
    for (uint64_t i = 0; i < cnt; i++) {
        G(st_gets(&r, 1u << 20, &s, &sl));
        if (strtab_intern(&b->lstr, s, sl) != (int32_t)i)
            IDX_FAIL("\"%s\": duplicate label string %" PRIu64, path, i);
    }
    if (cnt < 1)
        IDX_FAIL("\"%s\": no label strings", path);
    G(st_getv_max(&r, 1u << 26, &cnt));
    b->series = xcalloc(cnt + 1, sizeof(st_bseries));
    b->n_series = (uint32_t)cnt;
    size_t cap_chunks = 0;
    for (uint32_t i = 0; i < b->n_series; i++) {
        st_bseries *se = &b->series[i];
        G(st_getv_max(&r, 4 * STORE_MAX_LABELS, &v));
        se->n_lab = (uint32_t)v;
        se->lab = xmallocarray(2 * v + 1, sizeof(uint32_t));
        for (uint32_t k = 0; k < 2 * se->n_lab; k++) {
            G(st_getv_max(&r, b->lstr.count - 1, &v));
            se->lab[k] = (uint32_t)v;
        }
        G(st_getv_max(&r, 1u << 28, &v));
        se->n_prof = (uint32_t)v;
        if (v > (uint64_t)(r.end - r.p))
            IDX_FAIL("\"%s\": series %u claims %" PRIu64 " profiles", path, i, v);
        se->ts = xmallocarray(v + 1, sizeof(int64_t));
        se->dur = xmallocarray(v + 1, sizeof(int64_t));
        se->total = xmallocarray(v + 1, sizeof(int64_t));
        se->n_rows = xmallocarray(v + 1, sizeof(uint32_t));
        int64_t prev = 0, d;
        for (uint32_t k = 0; k < se->n_prof; k++) {
            G(st_getz(&r, &d));
            se->ts[k] = prev + d;
            prev = se->ts[k];
            G(st_getz(&r, &se->dur[k]));
            G(st_getz(&r, &se->total[k]));
            G(st_getv_max(&r, UINT32_MAX, &v));
            se->n_rows[k] = (uint32_t)v;
            b->n_samples += v;
        }
        b->n_profiles += se->n_prof;
        G(st_getv_max(&r, se->n_prof, &v));
        se->first_chunk = b->n_chunks;
        se->n_chunks = (uint32_t)v;
        uint32_t fp = 0;
        for (uint32_t k = 0; k < se->n_chunks; k++) {
            if (HGROW(b->chunks, cap_chunks, (size_t)b->n_chunks + 1)) {
                rc = -ENOMEM;
                goto out;
            }
            st_bchunk *c = &b->chunks[b->n_chunks++];
            G(st_getv_max(&r, se->n_prof - fp, &v));
            c->first_prof = fp;
            c->n_prof = (uint32_t)v;
            fp += c->n_prof;
            G(st_getv_max(&r, b->smp_len, &c->offset));
            G(st_getv_max(&r, b->smp_len - c->offset, &c->csize));
            G(st_getv_max(&r, 1u << 30, &c->rawsize));
            G(st_getv_max(&r, b->smp_len - c->offset - c->csize, &c->agg_csize));
            G(st_getv_max(&r, 1u << 30, &c->agg_rawsize));
            c->min_ts = INT64_MAX;
            c->max_ts = INT64_MIN;
            for (uint32_t j = c->first_prof; j < fp; j++) {
                c->min_ts = MIN(c->min_ts, se->ts[j]);
                c->max_ts = MAX(c->max_ts, se->ts[j]);
            }
        }
        if (fp != se->n_prof)
            IDX_FAIL("\"%s\": chunks of series %u cover %u of %u profiles", path, i, fp, se->n_prof);
    }
    G(st_getv_max(&r, 1u << 28, &cnt));
    b->n_post = (uint32_t)cnt;
    b->post_pair = xmallocarray(2 * cnt + 1, sizeof(uint32_t));
    b->post_off = xmallocarray(cnt + 1, sizeof(uint32_t));
    size_t cap_ids = 0, n_ids = 0;
    for (uint32_t i = 0; i < b->n_post; i++) {
        G(st_getv_max(&r, b->lstr.count - 1, &v));
        b->post_pair[2 * i] = (uint32_t)v;
        G(st_getv_max(&r, b->lstr.count - 1, &v));
        b->post_pair[2 * i + 1] = (uint32_t)v;
        b->post_off[i] = (uint32_t)n_ids;
        G(st_getv_max(&r, b->n_series, &cnt));
        uint64_t id = 0;
        for (uint64_t k = 0; k < cnt; k++) {
            G(st_getv(&r, &v));
            id += v;
            if (id >= b->n_series)
                IDX_FAIL("\"%s\": posting refers to series %" PRIu64 " of %u", path, id, b->n_series);
            if (HGROW(b->post_ids, cap_ids, n_ids + 1)) {
                rc = -ENOMEM;
                goto out;
            }
            b->post_ids[n_ids++] = (uint32_t)id;
        }
    }
    b->post_off[b->n_post] = (uint32_t)n_ids;
    if (r.p != r.end)
        IDX_FAIL("\"%s\": %zu trailing bytes", path, (size_t)(r.end - r.p));
#undef G
out:
    return rc;
}

int st_chunk_rd_init(st_chunk_rd *r, const st_block *b, const uint8_t *p, size_t n, herr *e)
{
    st_rd h = {p, p + n};
    uint64_t np, l[5];
    int ncol = b->version >= 2 ? 5 : 4;
    if (st_getv_max(&h, STORE_CHUNK_PROFILES * 4, &np))
        return herr_set(e, HE_FORMAT, "sample chunk: bad header");
    for (int k = 0; k < ncol; k++)
        if (st_getv(&h, &l[k]))
            return herr_set(e, HE_FORMAT, "sample chunk: bad header");
    size_t left = (size_t)(h.end - h.p);
    st_rd *cols[5] = {&r->nrows, &r->stacks, &r->values, &r->spans, &r->traces};
    r->traces = (st_rd){p + n, p + n};
    r->has_traces = ncol == 5;
    const uint8_t *c = h.p;
    for (int k = 0; k < ncol; k++) {
        if (l[k] > left)
            return herr_set(e, HE_FORMAT, "sample chunk: column sizes do not add up");
        *cols[k] = (st_rd){c, c + l[k]};
        c += l[k];
        left -= l[k];
    }
    if (left != 0)
        return herr_set(e, HE_FORMAT, "sample chunk: %zu bytes after the last column", left);
    r->n_prof = (uint32_t)np;
    r->i = 0;
    return 0;
}

int st_agg_rd_init(st_agg_rd *r, const uint8_t *p, size_t n, herr *e)
{
    st_rd h = {p, p + n};
    uint64_t na, ls;
    if (st_getv_max(&h, UINT32_MAX, &na) || st_getv(&h, &ls) || ls > (uint64_t)(h.end - h.p))
        return herr_set(e, HE_FORMAT, "rollup frame: bad header");
    r->stacks = (st_rd){h.p, h.p + ls};
    r->values = (st_rd){h.p + ls, h.end};
    r->n = (uint32_t)na;
    return 0;
}

/*
 * Read side: one zstd frame whose size the index gives, decompressed in one
 * call with a decompression context kept per thread (creating one per
 * chunk was a few % of a flame query). Returns 1 when done, 0 when the frame
 * is not a plain one of exactly raw bytes, or raw is above 64 MiB, or no
 * context could be made (the caller then takes zstd_decompress, which
 * bounds its growth by the data and reports the damage), else an error.
 */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static int dctx_ok;

static void dctx_free(void *p) { ZSTD_freeDCtx(p); }
static void dctx_init(void) { dctx_ok = pthread_key_create(&dctx_key, dctx_free) == 0; }

static int frame_exact(const uint8_t *in, size_t n, uint64_t raw, buf *out, herr *e)
{
    if (raw > ((uint64_t)64 << 20) || ZSTD_getFrameContentSize(in, n) != raw)
        return 0;
    pthread_once(&dctx_once, dctx_init);
    if (!dctx_ok)
        return 0;
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (!d) {
        if (!(d = ZSTD_createDCtx()))
            return 0;
        if (pthread_setspecific(dctx_key, d)) {
            ZSTD_freeDCtx(d);
            return 0;
        }
    }
    int rc = buf_reserve(out, (size_t)raw);
    if (rc)
        return rc;
    size_t r = ZSTD_decompressDCtx(d, out->data, (size_t)raw, in, n);
    if (ZSTD_isError(r))
        return herr_set(e, HE_ZSTD, "corrupt zstd data: %s", ZSTD_getErrorName(r));
    out->len = r;
    out->data[r] = 0;
    return 1;
}

int st_block_chunk_agg(const st_block *b, const st_bchunk *c, buf *out, herr *e)
{
    buf_reset(out);
    out->max = c->agg_rawsize;
    int rc = frame_exact(b->smp + c->offset + c->csize, c->agg_csize, c->agg_rawsize, out, e);
    if (rc == 0)
        rc = zstd_decompress(b->smp + c->offset + c->csize, c->agg_csize, out, e);
    else if (rc == 1)
        rc = 0;
    if (rc)
        return herr_set(e, rc, "block \"%s\": rollup frame at offset %" PRIu64 " does not decompress", b->id, c->offset + c->csize);
    if (out->len != c->agg_rawsize)
        return herr_set(e, HE_FORMAT, "block \"%s\": rollup frame has %zu bytes, index says %" PRIu64, b->id, out->len, c->agg_rawsize);
    return 0;
}

int st_block_chunk(const st_block *b, const st_bchunk *c, buf *out, herr *e)
{
    buf_reset(out);
    out->max = c->rawsize;
    int rc = frame_exact(b->smp + c->offset, c->csize, c->rawsize, out, e);
    if (rc == 0)
        rc = zstd_decompress(b->smp + c->offset, c->csize, out, e);
    else if (rc == 1)
        rc = 0;
    if (rc)
        return herr_set(e, rc, "block \"%s\": sample chunk at offset %" PRIu64 " does not decompress", b->id, c->offset);
    if (out->len != c->rawsize)
        return herr_set(e, HE_FORMAT, "block \"%s\": sample chunk at offset %" PRIu64 " has %zu bytes, index says %" PRIu64,
                        b->id, c->offset, out->len, c->rawsize);
    return 0;
}

static int deep_check(st_block *b, herr *e)
{
    buf raw;
    buf_init(&raw, 0);
    int rc = 0;
    for (uint32_t si = 0; si < b->n_series && !rc; si++) {
        st_bseries *s = &b->series[si];
        for (uint32_t ci = 0; ci < s->n_chunks && !rc; ci++) {
            st_bchunk *c = &b->chunks[s->first_chunk + ci];
            st_chunk_rd cr;
            if ((rc = st_block_chunk(b, c, &raw, e)) || (rc = st_chunk_rd_init(&cr, b, (uint8_t *)raw.data, raw.len, e)))
                break;
            if (cr.n_prof != c->n_prof) {
                rc = herr_set(e, HE_FORMAT, "block \"%s\": chunk has %u profiles, index says %u", b->id, cr.n_prof, c->n_prof);
                break;
            }
            int64_t rows_sum = 0;
            for (uint32_t k = 0; k < c->n_prof && !rc; k++) {
                uint64_t nr, d, sp, tr;
                int64_t v;
                if (st_getv(&cr.nrows, &nr) || nr != s->n_rows[c->first_prof + k]) {
                    rc = herr_set(e, HE_FORMAT, "block \"%s\": row count of a profile disagrees with the index", b->id);
                    break;
                }
                uint64_t stack = 0;
                for (uint64_t j = 0; j < nr; j++) {
                    if (st_getv(&cr.stacks, &d) || st_getz(&cr.values, &v) || st_getv(&cr.spans, &sp) || st_chunk_trace(&cr, &tr)) {
                        rc = herr_set(e, HE_FORMAT, "block \"%s\": sample columns end early", b->id);
                        break;
                    }
                    stack += d;
                    if (stack >= b->sec_n[SYM_NODES] || sp >= b->sec_n[SYM_STROFF] || tr >= b->sec_n[SYM_STROFF]) {
                        rc = herr_set(e, HE_BADREF, "block \"%s\": a sample refers to stack %" PRIu64 ", span string %" PRIu64
                                      " or trace string %" PRIu64 " out of range", b->id, stack, sp, tr);
                        break;
                    }
                    rows_sum = prof_sat_add(rows_sum, v);
                }
            }
            /* The rollup must be the rows summed by stack: check the stacks and the grand total. */
            uint64_t stack = 0, d;
            int64_t agg_sum = 0, v;
            st_agg_rd ar;
            if (!rc && ((rc = st_block_chunk_agg(b, c, &raw, e)) || (rc = st_agg_rd_init(&ar, (uint8_t *)raw.data, raw.len, e))))
                break;
            for (uint32_t k = 0; k < ar.n && !rc; k++) {
                if (st_getv(&ar.stacks, &d) || st_getz(&ar.values, &v)) {
                    rc = herr_set(e, HE_FORMAT, "block \"%s\": rollup columns end early", b->id);
                    break;
                }
                stack += d;
                if (stack >= b->sec_n[SYM_NODES])
                    rc = herr_set(e, HE_BADREF, "block \"%s\": rollup refers to stack %" PRIu64 " out of range", b->id, stack);
                agg_sum = prof_sat_add(agg_sum, v);
            }
            if (!rc && agg_sum != rows_sum)
                rc = herr_set(e, HE_FORMAT, "block \"%s\": chunk rollup sums to %" PRId64 ", its rows to %" PRId64, b->id, agg_sum, rows_sum);
        }
    }
    buf_release(&raw);
    return rc;
}

int st_block_open(st_block *b, const char *dir, int deep, herr *e)
{
    memset(b, 0, sizeof(*b));
    strtab_init(&b->lstr);
    b->dir = xstrdup(dir);
    const char *slash = strrchr(dir, '/');
    b->id = xstrdup(slash ? slash + 1 : dir);
    char tdir[PATH_MAX];
    snprintf(tdir, sizeof(tdir), "%s", dir);
    char *ts = strrchr(tdir, '/');
    if (ts)
        *ts = 0;
    ts = strrchr(tdir, '/');
    b->tenant = xstrdup(ts ? ts + 1 : tdir);
    char path[PATH_MAX];
    int rc;
    snprintf(path, sizeof(path), "%s/samples", dir);
    uint32_t v_sym = 0, v_idx = 0;
    if ((rc = map_file(path, MAGIC_SAMPLES, &b->smp_map, &b->smp_map_len, &b->smp, &b->smp_len, &b->bytes_samples, &b->version, e)))
        return rc;
    snprintf(path, sizeof(path), "%s/symbols", dir);
    if ((rc = map_file(path, MAGIC_SYMBOLS, &b->sym_map, &b->sym_map_len, &b->sym, &b->sym_len, &b->bytes_symbols, &v_sym, e)))
        return rc;
    if (v_sym != b->version)
        return herr_set(e, HE_FORMAT, "\"%s\": format version %u, but the samples file has %u", path, v_sym, b->version);
    if ((rc = check_symbols(b, path, e)))
        return rc;
    snprintf(path, sizeof(path), "%s/index", dir);
    void *im = NULL;
    size_t iml = 0, il = 0;
    const uint8_t *ib;
    if ((rc = map_file(path, MAGIC_INDEX, &im, &iml, &ib, &il, &b->bytes_index, &v_idx, e)) || v_idx != b->version) {
        if (im)
            munmap(im, iml);
        return rc ? rc : herr_set(e, HE_FORMAT, "\"%s\": format version %u, but the samples file has %u", path, v_idx, b->version);
    }
    rc = parse_index(b, ib, il, path, e);
    munmap(im, iml);
    if (rc)
        return rc;
    if (deep)
        rc = deep_check(b, e);
    return rc;
}

void st_block_close(st_block *b)
{
    st_skel_free(b->skel);
    if (b->sym_map)
        munmap(b->sym_map, b->sym_map_len);
    if (b->smp_map)
        munmap(b->smp_map, b->smp_map_len);
    strtab_release(&b->lstr);
    for (uint32_t i = 0; i < b->n_series; i++) {
        free(b->series[i].lab);
        free(b->series[i].ts);
        free(b->series[i].dur);
        free(b->series[i].total);
        free(b->series[i].n_rows);
    }
    free(b->series);
    free(b->chunks);
    free(b->post_pair);
    free(b->post_off);
    free(b->post_ids);
    for (uint32_t i = 0; i < b->n_sources; i++)
        free(b->sources[i]);
    free(b->sources);
    free(b->dir);
    free(b->id);
    free(b->tenant);
    memset(b, 0, sizeof(*b));
}

const char *st_block_label(const st_block *b, const st_bseries *s, const char *name)
{
    int32_t id = strtab_find(&b->lstr, name, strlen(name));
    if (id < 0)
        return NULL;
    for (uint32_t i = 0; i < s->n_lab; i++)
        if (s->lab[2 * i] == (uint32_t)id)
            return strtab_get(&b->lstr, s->lab[2 * i + 1]);
    return NULL;
}

/* ---- compaction ---- */

typedef struct imp {
    const st_block *b;
    profile *sym;
    uint32_t *str, *map, *fn, *loc, *node;
} imp;

static uint32_t imp_str(imp *m, uint32_t id)
{
    if (m->str[id] == UINT32_MAX) {
        const char *s = st_block_str(m->b, id);
        int32_t r = prof_str(m->sym, s, strlen(s));
        m->str[id] = r < 0 ? 0 : (uint32_t)r;
    }
    return m->str[id];
}

static int import_symbols(imp *m)
{
    const st_block *b = m->b;
    profile *p = m->sym;
    const uint8_t *d = b->sym;
    for (uint64_t i = 1; i < b->sec_n[SYM_MAPPINGS]; i++) {
        const uint8_t *r = d + b->sec_off[SYM_MAPPINGS] + i * SYM_MAPPING_SIZE;
        prof_mapping x;
        memset(&x, 0, sizeof(x));
        x.memory_start = st_get64(r);
        x.memory_limit = st_get64(r + 8);
        x.file_offset = st_get64(r + 16);
        x.filename = imp_str(m, st_get32(r + 24));
        x.build_id = imp_str(m, st_get32(r + 28));
        uint32_t f = st_get32(r + 32);
        x.has_functions = f & 1;
        x.has_filenames = (f >> 1) & 1;
        x.has_line_numbers = (f >> 2) & 1;
        x.has_inline_frames = (f >> 3) & 1;
        int32_t id = prof_mapping_intern(p, &x);
        if (id < 0)
            return id;
        m->map[i] = (uint32_t)id;
    }
    for (uint64_t i = 1; i < b->sec_n[SYM_FUNCTIONS]; i++) {
        const uint8_t *r = d + b->sec_off[SYM_FUNCTIONS] + i * SYM_FUNCTION_SIZE;
        prof_function f;
        f.name = imp_str(m, st_get32(r));
        f.system_name = imp_str(m, st_get32(r + 4));
        f.filename = imp_str(m, st_get32(r + 8));
        f.start_line = (int64_t)st_get64(r + 16);
        int32_t id = prof_function_intern(p, &f);
        if (id < 0)
            return id;
        m->fn[i] = (uint32_t)id;
    }
    prof_line lines[512];
    for (uint64_t i = 1; i < b->sec_n[SYM_LOCATIONS]; i++) {
        const uint8_t *r = d + b->sec_off[SYM_LOCATIONS] + i * SYM_LOCATION_SIZE;
        uint32_t fl = st_get32(r + 12), nl = MIN(st_get32(r + 16), (uint32_t)ARRAY_SIZE(lines));
        for (uint32_t k = 0; k < nl; k++) {
            const uint8_t *lr = d + b->sec_off[SYM_LINES] + (uint64_t)(fl + k) * SYM_LINE_SIZE;
            lines[k].function = m->fn[st_get32(lr)];
            lines[k].line = (int64_t)st_get64(lr + 8);
            lines[k].column = 0;
        }
        int32_t id = prof_location_intern(p, st_get64(r), m->map[st_get32(r + 8)], lines, nl);
        if (id < 0)
            return id;
        p->locations[id].is_folded = (uint8_t)st_get32(r + 20);
        m->loc[i] = (uint32_t)id;
    }
    for (uint64_t i = 1; i < b->sec_n[SYM_NODES]; i++) {
        const uint8_t *r = d + b->sec_off[SYM_NODES] + i * SYM_NODE_SIZE;
        int32_t id = prof_node_get(p, m->node[st_get32(r)], m->loc[st_get32(r + 4)]);
        if (id < 0)
            return id;
        m->node[i] = (uint32_t)id;
    }
    return 0;
}

static uint32_t *filled(uint64_t n)
{
    uint32_t *a = xmallocarray(n + 1, sizeof(uint32_t));
    memset(a, 0xff, (n + 1) * sizeof(uint32_t));
    a[0] = 0;
    return a;
}

typedef struct cs_ref {
    char *key;
    uint32_t block, series;
} cs_ref;

static int cmp_cs(const void *a, const void *b)
{
    const cs_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->block < y->block ? -1 : x->block > y->block;
}

int st_block_compact(st_block *const *in, size_t n, const char *tenant_dir, int64_t window, char **out_dir, herr *e)
{
    profile sym;
    int rc = prof_init(&sym);
    if (rc)
        return rc;
    sym.limits.max_locations = UINT32_MAX - 2;
    imp *m = xcalloc(n, sizeof(imp));
    uint64_t flush_seq = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        m[i].b = in[i];
        m[i].sym = &sym;
        m[i].str = filled(in[i]->sec_n[SYM_STROFF]);
        m[i].map = filled(in[i]->sec_n[SYM_MAPPINGS]);
        m[i].fn = filled(in[i]->sec_n[SYM_FUNCTIONS]);
        m[i].loc = filled(in[i]->sec_n[SYM_LOCATIONS]);
        m[i].node = filled(in[i]->sec_n[SYM_NODES]);
        rc = import_symbols(&m[i]);
        flush_seq = MAX(flush_seq, in[i]->flush_seq);
    }
    /* Union of series by label text; inputs are in time order, so profiles stay ordered per input. */
    size_t n_refs = 0;
    for (size_t i = 0; i < n; i++)
        n_refs += in[i]->n_series;
    cs_ref *refs = xcalloc(n_refs + 1, sizeof(cs_ref));
    size_t r = 0;
    buf key;
    buf_init(&key, 0);
    for (size_t i = 0; i < n; i++) {
        for (uint32_t s = 0; s < in[i]->n_series; s++) {
            buf_reset(&key);
            const st_bseries *se = &in[i]->series[s];
            for (uint32_t k = 0; k < se->n_lab; k++) {
                buf_puts(&key, strtab_get(&in[i]->lstr, se->lab[2 * k]));
                buf_putc(&key, '=');
                buf_puts(&key, strtab_get(&in[i]->lstr, se->lab[2 * k + 1]));
                buf_putc(&key, '\x01');
            }
            refs[r++] = (cs_ref){xstrdup(key.data ? key.data : ""), (uint32_t)i, s};
        }
    }
    buf_release(&key);
    qsort(refs, n_refs, sizeof(cs_ref), cmp_cs);

    bwriter w;
    memset(&w, 0, sizeof(w));
    if (!rc)
        rc = bw_begin(&w, tenant_dir, 3, e);
    buf raw;
    buf_init(&raw, 0);
    uint32_t *st = NULL, *sp = NULL, *tp = NULL;
    int64_t *val = NULL;
    size_t cap = 0;
    const char *lab[2 * STORE_MAX_LABELS + 16];
    for (size_t i = 0; i < n_refs && !rc;) {
        size_t j = i;
        while (j < n_refs && !strcmp(refs[j].key, refs[i].key))
            j++;
        const st_block *b0 = in[refs[i].block];
        const st_bseries *s0 = &b0->series[refs[i].series];
        for (uint32_t k = 0; k < 2 * s0->n_lab && k < ARRAY_SIZE(lab); k++)
            lab[k] = strtab_get(&b0->lstr, s0->lab[k]);
        bw_series_begin(&w, lab, s0->n_lab);
        for (size_t q = i; q < j && !rc; q++) {
            imp *mi = &m[refs[q].block];
            const st_block *b = in[refs[q].block];
            const st_bseries *se = &b->series[refs[q].series];
            for (uint32_t ci = 0; ci < se->n_chunks && !rc; ci++) {
                const st_bchunk *c = &b->chunks[se->first_chunk + ci];
                st_chunk_rd cr;
                if ((rc = st_block_chunk(b, c, &raw, e)) || (rc = st_chunk_rd_init(&cr, b, (uint8_t *)raw.data, raw.len, e)))
                    break;
                for (uint32_t k = 0; k < c->n_prof && !rc; k++) {
                    uint32_t pi = c->first_prof + k;
                    uint64_t nr = se->n_rows[pi], d, spv, trv;
                    if (nr > cap) {
                        cap = nr;
                        st = xreallocarray(st, cap, sizeof(uint32_t));
                        sp = xreallocarray(sp, cap, sizeof(uint32_t));
                        tp = xreallocarray(tp, cap, sizeof(uint32_t));
                        val = xreallocarray(val, cap, sizeof(int64_t));
                    }
                    uint64_t tmp, stack = 0;
                    if (st_getv(&cr.nrows, &tmp) || tmp != nr) {
                        rc = herr_set(e, HE_FORMAT, "block \"%s\": row counts disagree", b->id);
                        break;
                    }
                    for (uint64_t x = 0; x < nr; x++) {
                        if (st_getv(&cr.stacks, &d) || st_getz(&cr.values, &val[x]) || st_getv(&cr.spans, &spv) ||
                            st_chunk_trace(&cr, &trv)) {
                            rc = herr_set(e, HE_FORMAT, "block \"%s\": sample columns end early", b->id);
                            break;
                        }
                        stack += d;
                        if (stack >= b->sec_n[SYM_NODES] || spv >= b->sec_n[SYM_STROFF] || trv >= b->sec_n[SYM_STROFF]) {
                            rc = herr_set(e, HE_BADREF, "block \"%s\": sample reference out of range", b->id);
                            break;
                        }
                        st[x] = mi->node[stack];
                        sp[x] = spv ? imp_str(mi, (uint32_t)spv) : 0;
                        tp[x] = trv ? imp_str(mi, (uint32_t)trv) : 0;
                    }
                    if (!rc)
                        rc = bw_profile(&w, se->ts[pi], se->dur[pi], st, val, sp, tp, nr);
                }
            }
        }
        if (!rc)
            rc = bw_series_end(&w);
        i = j;
    }
    char **srcs = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        srcs[i] = in[i]->id;
    if (!rc)
        rc = bw_finish(&w, &sym, window, flush_seq, srcs, n, out_dir, e);
    else
        herr_set(e, rc, "compaction in \"%s\" failed: %s", tenant_dir, hearth_strerror(rc));
    free(srcs);
    bw_abort(&w);
    buf_release(&raw);
    free(st);
    free(sp);
    free(tp);
    free(val);
    for (size_t i = 0; i < n_refs; i++)
        free(refs[i].key);
    free(refs);
    for (size_t i = 0; i < n; i++) {
        free(m[i].str);
        free(m[i].map);
        free(m[i].fn);
        free(m[i].loc);
        free(m[i].node);
    }
    free(m);
    prof_release(&sym);
    return rc;
}

/*
 * store_bench.c: the helper of bench/store.sh.
 *
 *   store_bench ingest DIR [--hours H] [--services S] [--samples N] [--rowbinary FILE|-]
 *     Generates the dataset of issue 3: S services, one profile per service
 *     every 10 s for H hours, ~N samples each, stacks drawn (Zipf-like) from
 *     the pool of go-large.cpu.pb.gz with churn (5% of a service's stacks
 *     replaced every hour). Each profile is built as an SDK would send it
 *     (only the symbols it uses) and ingested; CPU time is measured around
 *     store_ingest only (generation excluded). Then flush + compaction
 *     (timed), bytes on disk, the gzipped pprof bytes of the same profiles,
 *     and peak RSS. With --rowbinary, the same samples are written as
 *     ClickHouse RowBinary rows (series UInt32, ts DateTime, stack_id
 *     UInt32, value Int64) for the peer run.
 *   store_bench query DIR --service K --hours H [--reps R]
 *     Flame graph (merge + truncation to 2048 nodes) of service K over the
 *     last 1 h and over the whole H hours; median wall time of R runs (and
 *     the first run's, cold); then the "sum by stack id" step alone
 *     (st_query_stack_sums: the same selection and summing, no names, no
 *     tree), the equivalent of the peer's GROUP BY stack_id; peak RSS.
 * Output is key=value lines for the script.
 */
#include "core/common.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/units.h"
#include "format/pprof.h"
#include "profile/flame.h"
#include "store/store.h"
#include "store/store_int.h"

#define SEC 1000000000LL

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Copies stacks of the pool into a fresh profile, mapping only what they use. */
typedef struct copier {
    const profile *src;
    profile *dst;
    uint32_t *str, *fn, *map, *loc;
} copier;

static uint32_t c_str(copier *c, uint32_t id)
{
    if (!id)
        return 0;
    if (c->str[id] == UINT32_MAX)
        c->str[id] = (uint32_t)prof_str(c->dst, prof_s(c->src, id), strtab_len(&c->src->strings, id));
    return c->str[id];
}

static uint32_t c_loc(copier *c, uint32_t id)
{
    if (c->loc[id] != UINT32_MAX)
        return c->loc[id];
    const prof_location *l = &c->src->locations[id];
    uint32_t mp = 0;
    if (l->mapping) {
        if (c->map[l->mapping] == UINT32_MAX) {
            prof_mapping m = c->src->mappings[l->mapping];
            m.filename = c_str(c, m.filename);
            m.build_id = c_str(c, m.build_id);
            c->map[l->mapping] = (uint32_t)prof_mapping_add(c->dst, &m);
        }
        mp = c->map[l->mapping];
    }
    prof_line lines[64];
    uint32_t nl = MIN(l->n_lines, 64u);
    for (uint32_t k = 0; k < nl; k++) {
        lines[k] = c->src->lines[l->first_line + k];
        uint32_t f = lines[k].function;
        if (f && c->fn[f] == UINT32_MAX) {
            prof_function fn = c->src->functions[f];
            fn.name = c_str(c, fn.name);
            fn.system_name = c_str(c, fn.system_name);
            fn.filename = c_str(c, fn.filename);
            c->fn[f] = (uint32_t)prof_function_add(c->dst, &fn);
        }
        lines[k].function = f ? c->fn[f] : 0;
    }
    c->loc[id] = (uint32_t)prof_location_add(c->dst, l->address, mp, lines, nl);
    return c->loc[id];
}

static uint32_t *ffill(size_t n)
{
    uint32_t *a = xmallocarray(n + 1, sizeof(uint32_t));
    memset(a, 0xff, (n + 1) * sizeof(uint32_t));
    return a;
}

static int usage(void)
{
    fprintf(stderr, "usage: store_bench ingest DIR [--hours H] [--services S] [--samples N] [--rowbinary FILE|-]\n"
                    "       store_bench query DIR --service K --hours H [--reps R]\n");
    return 2;
}

static int64_t base_ts(void)
{
    /* A fixed day so the 1 h and 24 h windows are reproducible: 2026-11-20 00:00 UTC. */
    return 1795132800LL * SEC;
}

static int cmd_ingest(const char *dir, int hours, int services, int samples, const char *rowbinary)
{
    buf raw;
    buf_init(&raw, (size_t)1 << 30);
    const char *pool_path = getenv("POOL_PPROF") ? getenv("POOL_PPROF") : "../shared/testdata/pprof/go-large.cpu.pb.gz";
    if (buf_read_file(&raw, pool_path)) {
        fprintf(stderr, "cannot read %s\n", pool_path);
        return 1;
    }
    profile pool;
    prof_init(&pool);
    herr e;
    herr_clear(&e);
    int rc = pprof_decode(&pool, raw.data, raw.len, (size_t)1 << 30, &e);
    if (rc) {
        fprintf(stderr, "pool: %s\n", herr_msg(&e, rc));
        return 1;
    }
    /* The pool: every distinct sample stack of the profile. */
    uint32_t *stacks = xmallocarray(pool.n_samples + 1, sizeof(uint32_t));
    size_t n_stacks = 0;
    uint8_t *seen = xcalloc(pool.n_nodes + 1, 1);
    for (size_t i = 0; i < pool.n_samples; i++)
        if (!seen[pool.samples[i].stack]) {
            seen[pool.samples[i].stack] = 1;
            stacks[n_stacks++] = pool.samples[i].stack;
        }
    free(seen);
    fprintf(rowbinary && !strcmp(rowbinary, "-") ? stderr : stdout, "pool_stacks=%zu pool_nodes=%u pool_locations=%u\n", n_stacks, pool.n_nodes, pool.n_locations);

    store_opts o;
    store_opts_default(&o);
    o.fsync = STORE_FSYNC_NEVER;
    o.retention_ns = 0;
    store *s;
    if ((rc = store_open(&s, dir, &o, &e))) {
        fprintf(stderr, "open: %s\n", herr_msg(&e, rc));
        return 1;
    }
    FILE *rb = NULL;
    if (rowbinary)
        rb = !strcmp(rowbinary, "-") ? stdout : fopen(rowbinary, "wb");
    /* Per service: a working set of stacks (a third of the pool), churned hourly. */
    size_t ws = n_stacks / 3 + 1;
    uint32_t **set = xmallocarray((size_t)services, sizeof(uint32_t *));
    for (int sv = 0; sv < services; sv++) {
        set[sv] = xmallocarray(ws, sizeof(uint32_t));
        for (size_t k = 0; k < ws; k++)
            set[sv][k] = stacks[rnd() % n_stacks];
    }
    int64_t t0 = base_ts(), ingest_cpu = 0, decode_cpu = 0, n_samples = 0, n_profiles = 0;
    uint64_t gz_bytes = 0;
    /* The peer (gzip + decode) on every Kth profile only, to bound the run time; totals scaled. */
    int64_t peer_every = getenv("BENCH_PEER_EVERY") ? strtol(getenv("BENCH_PEER_EVERY"), NULL, 10) : 1;
    int64_t peer_samples = 0, peer_profiles = 0;
    if (peer_every < 1)
        peer_every = 1;
    buf gz;
    buf_init(&gz, 0);
    int per_hour = 360;
    for (int h = 0; h < hours; h++) {
        for (int sv = 0; sv < services; sv++)
            for (size_t k = 0; k < ws / 20; k++)
                set[sv][rnd() % ws] = stacks[rnd() % n_stacks];
        for (int step = 0; step < per_hour; step++) {
            int64_t ts = t0 + ((int64_t)h * 3600 + (int64_t)step * 10) * SEC;
            for (int sv = 0; sv < services; sv++) {
                profile p;
                prof_init(&p);
                prof_add_type(&p, "samples", "count");
                prof_add_type(&p, "cpu", "nanoseconds");
                p.period_type.type = (uint32_t)prof_cstr(&p, "cpu");
                p.period_type.unit = (uint32_t)prof_cstr(&p, "nanoseconds");
                p.period = 10000000;
                p.time_nanos = ts;
                p.duration_nanos = 10 * SEC;
                copier c = {&pool, &p, ffill(pool.strings.count), ffill(pool.n_functions), ffill(pool.n_mappings),
                            ffill(pool.n_locations)};
                uint32_t *node = ffill(pool.n_nodes);
                node[0] = 0;
                int ns = samples / 2 + (int)(rnd() % (uint64_t)samples);
                for (int k = 0; k < ns; k++) {
                    /* Zipf-like: low ranks much more often. */
                    double u = (double)(rnd() % 1000000) / 1e6;
                    size_t rank = (size_t)((double)ws * u * u * u);
                    uint32_t st = set[sv][rank % ws];
                    if (node[st] == UINT32_MAX) {
                        uint32_t locs[1024];
                        size_t d = prof_stack_locations(&pool, st, locs, 1024);
                        d = MIN(d, (size_t)1024);
                        for (size_t q = 0; q < d; q++)
                            locs[q] = c_loc(&c, locs[q]);
                        node[st] = (uint32_t)prof_stack_leaf_first(&p, locs, d);
                    }
                    int64_t cnt = 1 + (int64_t)(rnd() % 5);
                    int64_t v[2] = {cnt, cnt * 10000000};
                    prof_sample_add(&p, node[st], v, NULL, 0);
                    if (rb) {
                        /* series = service * 2 + type, cpu type only, to match the flame graph query */
                        struct __attribute__((packed)) {
                            uint32_t series, ts, stack;
                            int64_t value;
                        } row = {(uint32_t)(sv * 2 + 1), (uint32_t)(ts / SEC), st, v[1]};
                        fwrite(&row, sizeof(row), 1, rb);
                    }
                }
                buf_reset(&gz);
                if (!getenv("BENCH_NO_GZ") && n_profiles % peer_every == 0 && pprof_encode(&p, &gz, 1, &e) == 0) {
                    gz_bytes += gz.len;
                    peer_samples += (int64_t)p.n_samples;
                    peer_profiles++;
                    /* The peer of ingest: what the server spends to gunzip and decode this payload. */
                    profile d;
                    prof_init(&d);
                    int64_t d0 = cpu_ns();
                    pprof_decode(&d, gz.data, gz.len, (size_t)1 << 30, &e);
                    decode_cpu += cpu_ns() - d0;
                    prof_release(&d);
                }
                char svc[32];
                snprintf(svc, sizeof(svc), "service-%02d", sv);
                store_label l[] = {{"service_name", svc}, {"__name__", "process_cpu"}, {"env", "prod"}};
                int64_t c0 = cpu_ns();
                rc = store_ingest(s, "anonymous", l, 3, &p, ts, 10 * SEC, &e);
                ingest_cpu += cpu_ns() - c0;
                if (rc) {
                    fprintf(stderr, "ingest: %s\n", herr_msg(&e, rc));
                    return 1;
                }
                n_samples += (int64_t)p.n_samples;
                n_profiles++;
                free(node);
                free(c.str);
                free(c.fn);
                free(c.map);
                free(c.loc);
                prof_release(&p);
            }
        }
        fprintf(stderr, "hour %d/%d: %" PRId64 " profiles, %" PRId64 " samples\n", h + 1, hours, n_profiles, n_samples);
    }
    if (rb && rb != stdout)
        fclose(rb);
    int64_t w0 = mono_ns(), c0 = cpu_ns();
    if ((rc = store_flush(s, &e)) || (rc = store_compact(s, &e))) {
        fprintf(stderr, "flush/compact: %s\n", herr_msg(&e, rc));
        return 1;
    }
    int64_t compact_wall = mono_ns() - w0, compact_cpu = cpu_ns() - c0;
    store_stats st;
    store_get_stats(s, &st);
    uint64_t disk = st.bytes_index + st.bytes_symbols + st.bytes_samples;
    FILE *out = rb == stdout ? stderr : stdout;
    fprintf(out, "profiles=%" PRId64 " samples=%" PRId64 "\n", n_profiles, n_samples);
    fprintf(out, "ingest_cpu_s=%.3f ingest_samples_per_cpu_s=%.0f\n", (double)ingest_cpu / 1e9,
            (double)n_samples / ((double)ingest_cpu / 1e9));
    if (decode_cpu) {
        double dps = (double)peer_samples / ((double)decode_cpu / 1e9), ips = (double)n_samples / ((double)ingest_cpu / 1e9);
        fprintf(out, "peer_profiles=%" PRId64 " decode_cpu_s=%.3f decode_samples_per_cpu_s=%.0f ingest_vs_decode_cpu=%.2f\n",
                peer_profiles, (double)decode_cpu / 1e9, dps, dps / ips);
        /* Scale the gzipped bytes to all profiles when only every Kth was encoded. */
        gz_bytes = (uint64_t)((double)gz_bytes * (double)n_samples / (double)peer_samples);
    }
    fprintf(out, "flush_compact_wall_s=%.3f flush_compact_cpu_s=%.3f\n", (double)compact_wall / 1e9, (double)compact_cpu / 1e9);
    fprintf(out, "blocks=%" PRIu64 " bytes_index=%" PRIu64 " bytes_symbols=%" PRIu64 " bytes_samples=%" PRIu64 " bytes_total=%" PRIu64 "\n",
            st.n_blocks, st.bytes_index, st.bytes_symbols, st.bytes_samples, disk);
    fprintf(out, "pprof_gz_bytes=%" PRIu64 " disk_vs_pprof_gz=%.4f\n", gz_bytes, (double)disk / (double)gz_bytes);
    fprintf(out, "ingest_peak_rss_kb=%ld\n", peak_rss_kb());
    store_close(s);
    for (int sv = 0; sv < services; sv++)
        free(set[sv]);
    free(set);
    free(stacks);
    prof_release(&pool);
    buf_release(&raw);
    buf_release(&gz);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmd_query(const char *dir, int service, int hours, int reps)
{
    store_opts o;
    store_opts_default(&o);
    o.read_only = 1;
    o.retention_ns = 0;
    store *s;
    herr e;
    herr_clear(&e);
    int rc = store_open(&s, dir, &o, &e);
    if (rc) {
        fprintf(stderr, "open: %s\n", herr_msg(&e, rc));
        return 1;
    }
    char svc[32], sel_text[64];
    snprintf(svc, sizeof(svc), "service-%02d", service);
    snprintf(sel_text, sizeof(sel_text), "{service_name=\"%s\"}", svc);
    selector sel;
    if ((rc = selector_parse(&sel, sel_text, strlen(sel_text), &e))) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int64_t t0 = base_ts();
    int64_t ranges[2][2] = {{t0 + (int64_t)(hours - 1) * 3600 * SEC, t0 + (int64_t)hours * 3600 * SEC - 1},
                            {t0, t0 + (int64_t)hours * 3600 * SEC - 1}};
    const char *names[2] = {"1h", "all"};
    for (int r = 0; r < 2; r++) {
        store_query q;
        memset(&q, 0, sizeof(q));
        q.tenant = "anonymous";
        q.profile_type = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
        q.sel = &sel;
        q.start_ns = ranges[r][0];
        q.end_ns = ranges[r][1];
        /* End to end: what the flame graph API computes (merge into a named tree + truncation). */
        int64_t *t = xmallocarray((size_t)reps, sizeof(int64_t));
        int64_t total = 0;
        uint32_t nodes = 0, tree_nodes = 0;
        for (int k = 0; k < reps; k++) {
            int64_t w0 = mono_ns();
            flame_tree tr, out;
            flame_init(&tr);
            if ((rc = store_select_merge_tree(s, &q, &tr, 0, &e))) {
                fprintf(stderr, "query: %s\n", herr_msg(&e, rc));
                return 1;
            }
            flame_truncate(&tr, 2048, &out);
            t[k] = mono_ns() - w0;
            total = flame_total(&tr, 0);
            nodes = out.n_nodes;
            tree_nodes = tr.n_nodes;
            flame_release(&tr);
            flame_release(&out);
        }
        int64_t first = t[0];
        qsort(t, (size_t)reps, sizeof(int64_t), cmp_i64);
        printf("flame_%s_ms=%.2f flame_%s_first_ms=%.2f flame_%s_total=%" PRId64 " flame_%s_tree_nodes=%u flame_%s_nodes=%u\n",
               names[r], (double)t[reps / 2] / 1e6, names[r], (double)first / 1e6, names[r], total, names[r], tree_nodes,
               names[r], nodes);
        /* Apples to apples with a GROUP BY stack_id: the same selection and summing, no names, no tree. */
        uint64_t n_stacks = 0;
        int64_t sum = 0;
        for (int k = 0; k < reps; k++) {
            int64_t w0 = mono_ns();
            if ((rc = st_query_stack_sums(s, &q, &n_stacks, &sum, &e))) {
                fprintf(stderr, "query: %s\n", herr_msg(&e, rc));
                return 1;
            }
            t[k] = mono_ns() - w0;
        }
        qsort(t, (size_t)reps, sizeof(int64_t), cmp_i64);
        if (sum != total) {
            fprintf(stderr, "stack sums disagree with the flame graph: %" PRId64 " vs %" PRId64 "\n", sum, total);
            return 1;
        }
        printf("sums_%s_ms=%.2f sums_%s_stacks=%" PRIu64 "\n", names[r], (double)t[reps / 2] / 1e6, names[r], n_stacks);
        free(t);
    }
    printf("query_peak_rss_kb=%ld\n", peak_rss_kb());
    selector_release(&sel);
    store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    int hours = 24, services = 10, samples = 2000, service = 3, reps = 5;
    const char *rowbinary = NULL;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        if (!strcmp(argv[i], "--hours"))
            hours = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--services"))
            services = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--samples"))
            samples = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--service"))
            service = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps"))
            reps = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rowbinary"))
            rowbinary = argv[++i];
        else
            return usage();
    }
    if (hours < 1 || services < 1 || samples < 2 || reps < 1)
        return usage();
    if (!strcmp(argv[1], "ingest"))
        return cmd_ingest(argv[2], hours, services, samples, rowbinary);
    if (!strcmp(argv[1], "query"))
        return cmd_query(argv[2], service, hours, reps);
    return usage();
}

/*
 * cmd_db.c: `hearth db verify|stats|compact DIR`, offline tools for a data
 * directory (docs/store.md).
 *
 *   verify   deep check of every block and WAL record; exit 1 if anything
 *            is damaged (each finding on its own line)
 *   stats    blocks, series, profiles, samples and bytes by table, per
 *            block and in total; the head as replayed from the WAL
 *   compact  flushes the WAL into blocks and merges blocks per compaction
 *            window (needs the directory not to be in use by a server)
 */
#include "core/common.h"

#include "cli/cmd.h"
#include "cli/opts.h"
#include "core/log.h"
#include "core/units.h"
#include "store/store.h"
#include "store/store_int.h"

static void db_usage(FILE *f)
{
    fprintf(f, "usage: hearth db verify DIR\n"
               "       hearth db stats DIR\n"
               "       hearth db compact [--retention DUR] DIR\n"
               "  verify   check every checksum and cross-reference; exit 1 when damage is found\n"
               "  stats    blocks, series, samples and bytes by table\n"
               "  compact  flush the WAL and merge small blocks (offline; stop the server first)\n");
}

static void fmt_time(int64_t ns, char *out, size_t n)
{
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int db_stats(const char *dir)
{
    store_opts o;
    store_opts_default(&o);
    o.read_only = 1;
    store *s;
    herr e;
    herr_clear(&e);
    int rc = store_open(&s, dir, &o, &e);
    if (rc) {
        fprintf(stderr, "hearth db stats: %s\n", herr_msg(&e, rc));
        return 1;
    }
    printf("%-28s %-12s %-20s %-20s %8s %9s %11s %10s %10s %10s\n", "block", "tenant", "from", "to", "series",
           "profiles", "samples", "index", "symbols", "samples_b");
    for (size_t i = 0; i < s->n_blocks; i++) {
        st_block *b = s->blocks[i];
        char f[32], t[32];
        fmt_time(b->min_ts, f, sizeof(f));
        fmt_time(b->max_ts, t, sizeof(t));
        printf("%-28s %-12s %-20s %-20s %8u %9" PRIu64 " %11" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", b->id,
               b->tenant, f, t, b->n_series, b->n_profiles, b->n_samples, b->bytes_index, b->bytes_symbols, b->bytes_samples);
    }
    for (size_t i = 0; i < s->n_damaged; i++)
        printf("DAMAGED %s\n", s->damaged[i]);
    store_stats st;
    store_get_stats(s, &st);
    uint64_t total = st.bytes_index + st.bytes_symbols + st.bytes_samples;
    printf("\nblocks %" PRIu64 " (damaged %" PRIu64 "), series %" PRIu64 ", profiles %" PRIu64 ", samples %" PRIu64 "\n",
           st.n_blocks, st.n_damaged_blocks, st.n_series, st.n_profiles, st.n_samples);
    printf("bytes: index %" PRIu64 ", symbols %" PRIu64 ", samples %" PRIu64 ", total %" PRIu64 "%s\n", st.bytes_index,
           st.bytes_symbols, st.bytes_samples, total, "");
    if (st.n_samples)
        printf("bytes per sample: %.2f\n", (double)total / (double)st.n_samples);
    printf("head (from the WAL): profiles %" PRIu64 ", samples %" PRIu64 ", WAL bytes %" PRIu64 "\n", st.head_profiles,
           st.head_samples, st.wal_bytes);
    store_close(s);
    return 0;
}

static int db_verify(const char *dir)
{
    buf rep;
    buf_init(&rep, 0);
    uint64_t problems = 0;
    herr e;
    herr_clear(&e);
    int rc = store_verify(dir, &rep, &problems, &e);
    if (rc) {
        fprintf(stderr, "hearth db verify: %s\n", herr_msg(&e, rc));
        buf_release(&rep);
        return 1;
    }
    fputs(rep.data ? rep.data : "", stdout);
    buf_release(&rep);
    return problems ? 1 : 0;
}

static int db_compact(const char *dir, int64_t retention_ns)
{
    store_opts o;
    store_opts_default(&o);
    if (retention_ns >= 0)
        o.retention_ns = retention_ns;
    store *s;
    herr e;
    herr_clear(&e);
    int rc = store_open(&s, dir, &o, &e);
    if (rc) {
        fprintf(stderr, "hearth db compact: %s\n", herr_msg(&e, rc));
        return 1;
    }
    store_stats a, b;
    store_get_stats(s, &a);
    if ((rc = store_flush(s, &e)) || (rc = store_compact(s, &e))) {
        fprintf(stderr, "hearth db compact: %s\n", herr_msg(&e, rc));
        store_close(s);
        return 1;
    }
    store_get_stats(s, &b);
    printf("blocks %" PRIu64 " -> %" PRIu64 ", bytes %" PRIu64 " -> %" PRIu64 ", head profiles flushed %" PRIu64 ", blocks deleted %" PRIu64 "\n",
           a.n_blocks, b.n_blocks, a.bytes_index + a.bytes_symbols + a.bytes_samples,
           b.bytes_index + b.bytes_symbols + b.bytes_samples, a.head_profiles, b.blocks_deleted);
    store_close(s);
    return 0;
}

int cmd_db(int argc, char **argv)
{
    static const char *const subs[][2] = {
        {"verify", "usage: hearth db verify DIR\n"},
        {"stats", "usage: hearth db stats DIR\n"},
        {"compact", "usage: hearth db compact [--retention DUR] DIR\n"},
    };
    static const char *const descs[] = {
        "Checks every checksum and cross-reference; exits 1 when damage is found.\n",
        "Prints blocks, series, samples and bytes by table.\n",
        "Flushes the WAL and merges small blocks (offline; stop the server first).\n",
    };
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        db_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    size_t k;
    for (k = 0; k < ARRAY_SIZE(subs) && strcmp(sub, subs[k][0]); k++)
        ;
    if (k == ARRAY_SIZE(subs)) {
        fprintf(stderr, "hearth db: unknown subcommand \"%s\"\n", sub);
        db_usage(stderr);
        return 2;
    }
    int64_t retention = -1;
    char name[32];
    const opt_spec compact_specs[] = {
        {"retention", 0, OPT_DURATION, &retention, NULL, "DUR", "delete data older than this (e.g. 30d, 12h)", 0, 0},
    };
    int is_compact = !strcmp(sub, "compact");
    snprintf(name, sizeof name, "db %s", sub);
    const opt_cmd cmd = {name, subs[k][1], descs[k], is_compact ? compact_specs : NULL, is_compact ? 1 : 0, 1, 0};
    opts_args pos;
    int rc = opts_parse(&cmd, argc - 1, argv + 1, &pos);
    if (rc) return opts_exit(rc);
    if (pos.n != 1) {
        fprintf(stderr, "hearth db %s: missing DIR ('hearth db %s --help' describes it)\n", sub, sub);
        return 2;
    }
    const char *dir = pos.v[0];
    if (!strcmp(sub, "verify"))
        return db_verify(dir);
    if (!strcmp(sub, "stats"))
        return db_stats(dir);
    return db_compact(dir, retention);
}

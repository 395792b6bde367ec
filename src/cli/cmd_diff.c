/*
 * cmd_diff.c: `hearth diff`: compares two selections on a
 * Pyroscope-compatible server. Default output is a table of the functions
 * whose self value changed most (left, right, change, each also as a share
 * of its side's total, so selections of different length compare fairly);
 * --format json prints the server's Diff flame graph (querier.v1.Diff).
 *
 * The table is computed here from the two merged pprofs (SelectMergeProfile)
 * put on the two sides of one flame tree, self values summed per frame name.
 */
#include "core/common.h"

#include <math.h>

#include "cli/cmd.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/units.h"
#include "core/wire.h"
#include "format/pprof.h"
#include "profile/flame.h"
#include "server/client.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hearth diff [--url URL] [--type TYPE] --left-query SEL --right-query SEL\n"
            "                   [--from T] [--until T] [--left-from T] [--left-until T]\n"
            "                   [--right-from T] [--right-until T] [--top N] [--format table|json]\n"
            "                   [--tenant ID] [--token T] [--basic-auth USER:PASS]\n\n"
            "Compares two selections (e.g. last hour vs the hour before, or v1 vs v2).\n"
            "--from/--until set both sides (default now-1h..now).\n");
}

typedef struct row {
    uint32_t name;
    int64_t left, right;
} row;

static int fetch(const client_opts *co, const char *type, const char *sel, int64_t from, int64_t until, profile *p, herr *e)
{
    buf req, resp;
    int rc;
    buf_init(&req, 0);
    buf_init(&resp, (size_t)1 << 30);
    wire_put_bytes(&req, 1, type, strlen(type));
    wire_put_bytes(&req, 2, sel, strlen(sel));
    wire_put_uint_nz(&req, 3, (uint64_t)(from / 1000000));
    wire_put_uint_nz(&req, 4, (uint64_t)(until / 1000000));
    rc = client_post(co, "/querier.v1.QuerierService/SelectMergeProfile", "application/proto", req.data, req.len, &resp, e);
    if (!rc) rc = pprof_decode(p, resp.data ? resp.data : "", resp.len, 0, e);
    buf_release(&req);
    buf_release(&resp);
    return rc;
}

static int cmp_row(const void *a, const void *b)
{
    const row *x = a, *y = b;
    int64_t dx = llabs(x->right - x->left), dy = llabs(y->right - y->left);
    return dx < dy ? 1 : dx > dy ? -1 : 0;
}

int cmd_diff(int argc, char **argv)
{
    client_opts co;
    const char *type = "process_cpu:cpu:nanoseconds:cpu:nanoseconds", *lsel = NULL, *rsel = NULL;
    const char *from_s = "now-1h", *until_s = "now", *lf = NULL, *lu = NULL, *rf = NULL, *ru = NULL, *format = "table";
    long top = 30;
    int64_t now = now_ns(), t[4];
    herr e = {0};
    int rc;

    client_opts_default(&co);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--url")) dst = &co.url;
        else if (!strcmp(a, "--type")) dst = &type;
        else if (!strcmp(a, "--left-query")) dst = &lsel;
        else if (!strcmp(a, "--right-query")) dst = &rsel;
        else if (!strcmp(a, "--from")) dst = &from_s;
        else if (!strcmp(a, "--until")) dst = &until_s;
        else if (!strcmp(a, "--left-from")) dst = &lf;
        else if (!strcmp(a, "--left-until")) dst = &lu;
        else if (!strcmp(a, "--right-from")) dst = &rf;
        else if (!strcmp(a, "--right-until")) dst = &ru;
        else if (!strcmp(a, "--format")) dst = &format;
        else if (!strcmp(a, "--tenant")) dst = &co.tenant;
        else if (!strcmp(a, "--token")) dst = &co.token;
        else if (!strcmp(a, "--basic-auth")) dst = &co.basic_auth;
        else if (!strcmp(a, "--top")) {
            if (i + 1 >= argc) goto need;
            top = strtol(argv[++i], NULL, 10);
            continue;
        } else {
            fprintf(stderr, "hearth diff: unknown argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) goto need;
        *dst = argv[++i];
        continue;
    need:
        fprintf(stderr, "hearth diff: %s needs a value\n", a);
        return 2;
    }
    if (!lsel || !rsel) {
        fprintf(stderr, "hearth diff: --left-query and --right-query are required\n");
        usage(stderr);
        return 2;
    }
    {
        const char *ts[4] = {lf ? lf : from_s, lu ? lu : until_s, rf ? rf : from_s, ru ? ru : until_s};
        for (int k = 0; k < 4; k++)
            if (parse_time_ns(ts[k], now, &t[k])) {
                fprintf(stderr, "hearth diff: \"%s\" is not a time (now-1h, unix, RFC 3339)\n", ts[k]);
                return 2;
            }
    }
    if (!strcmp(format, "json")) {
        buf req, resp;
        buf_init(&req, 0);
        buf_init(&resp, (size_t)1 << 30);
        buf_puts(&req, "{\"left\":{\"profileTypeID\":");
        json_cstr(&req, type);
        buf_puts(&req, ",\"labelSelector\":");
        json_cstr(&req, lsel);
        buf_printf(&req, ",\"start\":\"%" PRId64 "\",\"end\":\"%" PRId64 "\"},\"right\":{\"profileTypeID\":", t[0] / 1000000, t[1] / 1000000);
        json_cstr(&req, type);
        buf_puts(&req, ",\"labelSelector\":");
        json_cstr(&req, rsel);
        buf_printf(&req, ",\"start\":\"%" PRId64 "\",\"end\":\"%" PRId64 "\"}}", t[2] / 1000000, t[3] / 1000000);
        rc = client_post(&co, "/querier.v1.QuerierService/Diff", "application/json", req.data, req.len, &resp, &e);
        if (!rc) printf("%s\n", resp.data ? resp.data : "");
        buf_release(&req);
        buf_release(&resp);
    } else {
        profile lp, rp;
        flame_tree ft;
        prof_init(&lp);
        prof_init(&rp);
        flame_init(&ft);
        rc = fetch(&co, type, lsel, t[0], t[1], &lp, &e);
        if (!rc) rc = fetch(&co, type, rsel, t[2], t[3], &rp, &e);
        if (!rc && lp.n_types) rc = flame_add_profile(&ft, &lp, 0, NULL, 0);
        if (!rc && rp.n_types) rc = flame_add_profile(&ft, &rp, 0, NULL, 1);
        if (!rc) {
            int64_t lt = flame_total(&ft, 0), rt = flame_total(&ft, 1);
            row *rows = xcalloc(ft.names.count + 1, sizeof *rows);
            size_t nr = ft.names.count;
            for (uint32_t k = 0; k < nr; k++) rows[k].name = k;
            for (uint32_t k = 1; k < ft.n_nodes; k++) {
                rows[ft.nodes[k].name].left += ft.nodes[k].self;
                rows[ft.nodes[k].name].right += ft.nodes[k].self2;
            }
            qsort(rows, nr, sizeof *rows, cmp_row);
            printf("type   %s\nleft   %s  total %" PRId64 "\nright  %s  total %" PRId64 "\n\n", type, lsel, lt, rsel, rt);
            printf("%14s %14s %14s %8s %8s  %s\n", "left self", "right self", "change", "left%", "right%", "function");
            for (size_t k = 0, shown = 0; k < nr && (long)shown < top; k++) {
                if (!rows[k].left && !rows[k].right) continue;
                shown++;
                printf("%14" PRId64 " %14" PRId64 " %+14" PRId64 " %7.2f%% %7.2f%%  %s\n", rows[k].left, rows[k].right,
                       rows[k].right - rows[k].left, lt ? 100.0 * (double)rows[k].left / (double)lt : 0.0,
                       rt ? 100.0 * (double)rows[k].right / (double)rt : 0.0, strtab_get(&ft.names, rows[k].name));
            }
            free(rows);
        }
        flame_release(&ft);
        prof_release(&lp);
        prof_release(&rp);
    }
    if (rc) fprintf(stderr, "hearth diff: %s\n", herr_msg(&e, rc));
    return rc ? 1 : 0;
}

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
#include "cli/opts.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/units.h"
#include "core/wire.h"
#include "format/pprof.h"
#include "profile/flame.h"
#include "server/client.h"

static const char diff_usage[] =
    "usage: hearth diff [--url URL] [--type TYPE] --left-query SEL --right-query SEL\n"
    "                   [--from T] [--until T] [--left-from T] [--left-until T]\n"
    "                   [--right-from T] [--right-until T] [--top N] [--format table|json]\n"
    "                   [--tenant ID] [--token T] [--basic-auth USER:PASS]\n";
static const char diff_desc[] =
    "Compares two selections (e.g. last hour vs the hour before, or v1 vs v2).\n"
    "--from/--until set both sides (default now-1h..now).\n";

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
    const opt_spec specs[] = {
        {"url", 0, OPT_STRING, &co.url, "HEARTH_URL", "URL", "server address (default http://localhost:4040)", 0, 0},
        {"type", 0, OPT_STRING, &type, NULL, "TYPE", "profile type ID", 0, 0},
        {"left-query", 0, OPT_STRING, &lsel, NULL, "SEL", "label selector of the left side (required)", 0, 0},
        {"right-query", 0, OPT_STRING, &rsel, NULL, "SEL", "label selector of the right side (required)", 0, 0},
        {"from", 0, OPT_STRING, &from_s, NULL, "T", "start of both sides (default now-1h)", 0, 0},
        {"until", 0, OPT_STRING, &until_s, NULL, "T", "end of both sides (default now)", 0, 0},
        {"left-from", 0, OPT_STRING, &lf, NULL, "T", "start of the left side", 0, 0},
        {"left-until", 0, OPT_STRING, &lu, NULL, "T", "end of the left side", 0, 0},
        {"right-from", 0, OPT_STRING, &rf, NULL, "T", "start of the right side", 0, 0},
        {"right-until", 0, OPT_STRING, &ru, NULL, "T", "end of the right side", 0, 0},
        {"top", 0, OPT_INT, &top, NULL, "N", "rows in the table (default 30)", 1, 1000000},
        {"format", 0, OPT_STRING, &format, NULL, "FORMAT", "table or json (default table)", 0, 0},
        {"tenant", 0, OPT_STRING, &co.tenant, "HEARTH_TENANT", "ID", "tenant (X-Scope-OrgID)", 0, 0},
        {"token", 0, OPT_STRING, &co.token, "HEARTH_TOKEN", "T", "bearer token", 0, 0},
        {"basic-auth", 0, OPT_STRING, &co.basic_auth, NULL, "USER:PASS", "HTTP basic authentication", 0, 0},
    };
    const opt_cmd cmd = {"diff", diff_usage, diff_desc, specs, ARRAY_SIZE(specs), 0, 0};
    opts_args pos;
    if ((rc = opts_parse(&cmd, argc, argv, &pos))) return opts_exit(rc);
    if (!lsel || !rsel) {
        fprintf(stderr, "hearth diff: --left-query and --right-query are required ('hearth diff --help' describes them)\n");
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

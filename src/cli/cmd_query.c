/*
 * cmd_query.c: `hearth query`: asks any Pyroscope-compatible server for the
 * merged profile of a selection and writes it as folded stacks, pprof,
 * speedscope, a flame graph SVG, or the server's flame graph JSON.
 *
 * pprof/folded/speedscope/svg come from SelectMergeProfile (a pprof over
 * application/proto, so nothing is lost), decoded with our codecs and
 * re-encoded; json is SelectMergeStacktraces as the server answers it.
 */
#include "core/common.h"

#include "cli/cmd.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/units.h"
#include "core/wire.h"
#include "format/folded.h"
#include "format/pprof.h"
#include "format/speedscope.h"
#include "format/svg.h"
#include "profile/flame.h"
#include "server/client.h"

static const char query_usage[] =
    "usage: hearth query [--url URL] [--type TYPE] [--query SELECTOR] [--from TIME] [--until TIME]\n"
    "                    [--format folded|pprof|json|svg|speedscope] [-o FILE] [--max-nodes N]\n"
    "                    [--tenant ID] [--token T] [--basic-auth USER:PASS]\n";
static const char query_desc[] =
    "Writes the merged profile of the series matching SELECTOR (e.g. '{service_name=\"api\"}')\n"
    "between --from (default now-1h) and --until (default now) from any Pyroscope-compatible\n"
    "server (default $HEARTH_URL or http://localhost:4040). TYPE is a profile type ID,\n"
    "default process_cpu:cpu:nanoseconds:cpu:nanoseconds. Times: now-1h, unix (any unit),\n"
    "RFC 3339. Output goes to stdout unless -o is given.\n";

int cmd_query(int argc, char **argv)
{
    client_opts co;
    const char *type = "process_cpu:cpu:nanoseconds:cpu:nanoseconds", *sel = "{}", *from_s = "now-1h", *until_s = "now";
    const char *format = "folded", *outfile = "-";
    long max_nodes = 0;
    int64_t from, until, now = now_ns();
    buf req, resp, out;
    herr e = {0};
    int rc;

    client_opts_default(&co);
    const opt_spec specs[] = {
        {"url", 0, OPT_STRING, &co.url, "HEARTH_URL", "URL", "server address (default http://localhost:4040)", 0, 0},
        {"type", 0, OPT_STRING, &type, NULL, "TYPE", "profile type ID", 0, 0},
        {"query", 0, OPT_STRING, &sel, NULL, "SELECTOR", "label selector (default {})", 0, 0},
        {"from", 0, OPT_STRING, &from_s, NULL, "TIME", "start (default now-1h)", 0, 0},
        {"until", 0, OPT_STRING, &until_s, NULL, "TIME", "end (default now)", 0, 0},
        {"format", 0, OPT_STRING, &format, NULL, "FORMAT", "folded, pprof, json, svg or speedscope (default folded)", 0, 0},
        {"output", 'o', OPT_STRING, &outfile, NULL, "FILE", "write here instead of stdout", 0, 0},
        {"max-nodes", 0, OPT_INT, &max_nodes, NULL, "N", "flame graph node cap (json, svg)", 1, 1048576},
        {"tenant", 0, OPT_STRING, &co.tenant, "HEARTH_TENANT", "ID", "tenant (X-Scope-OrgID)", 0, 0},
        {"token", 0, OPT_STRING, &co.token, "HEARTH_TOKEN", "T", "bearer token", 0, 0},
        {"basic-auth", 0, OPT_STRING, &co.basic_auth, NULL, "USER:PASS", "HTTP basic authentication", 0, 0},
    };
    const opt_cmd cmd = {"query", query_usage, query_desc, specs, ARRAY_SIZE(specs), 0, 0};
    opts_args pos;
    if ((rc = opts_parse(&cmd, argc, argv, &pos))) return opts_exit(rc);
    if (parse_time_ns(from_s, now, &from) || parse_time_ns(until_s, now, &until)) {
        fprintf(stderr, "hearth query: --from/--until: use now-1h, a unix timestamp or RFC 3339\n");
        return 2;
    }
    if (strcmp(format, "folded") && strcmp(format, "pprof") && strcmp(format, "json") && strcmp(format, "svg") &&
        strcmp(format, "speedscope")) {
        fprintf(stderr, "hearth query: --format must be folded, pprof, json, svg or speedscope\n");
        return 2;
    }
    buf_init(&req, 0);
    buf_init(&resp, (size_t)1 << 30);
    buf_init(&out, 0);
    if (!strcmp(format, "json")) {
        buf_puts(&req, "{\"profileTypeID\":");
        json_cstr(&req, type);
        buf_puts(&req, ",\"labelSelector\":");
        json_cstr(&req, sel);
        buf_printf(&req, ",\"start\":\"%" PRId64 "\",\"end\":\"%" PRId64 "\"", from / 1000000, until / 1000000);
        if (max_nodes) buf_printf(&req, ",\"maxNodes\":\"%ld\"", max_nodes);
        buf_puts(&req, "}");
        rc = client_post(&co, "/querier.v1.QuerierService/SelectMergeStacktraces", "application/json", req.data, req.len, &resp, &e);
        if (!rc) rc = buf_append(&out, resp.data ? resp.data : "", resp.len) || buf_putc(&out, '\n');
    } else {
        profile p;
        wire_put_bytes(&req, 1, type, strlen(type));
        wire_put_bytes(&req, 2, sel, strlen(sel));
        wire_put_uint_nz(&req, 3, (uint64_t)(from / 1000000));
        wire_put_uint_nz(&req, 4, (uint64_t)(until / 1000000));
        rc = client_post(&co, "/querier.v1.QuerierService/SelectMergeProfile", "application/proto", req.data, req.len, &resp, &e);
        if (!rc) {
            prof_init(&p);
            rc = pprof_decode(&p, resp.data ? resp.data : "", resp.len, 0, &e);
            if (!rc && !p.n_types) rc = prof_add_type(&p, "samples", "count") < 0;
            if (!rc) {
                if (!strcmp(format, "pprof")) rc = pprof_encode(&p, &out, 1, &e);
                else if (!strcmp(format, "folded")) rc = folded_write(&p, 0, &out, &e);
                else if (!strcmp(format, "speedscope")) rc = speedscope_write(&p, 0, type, &out, &e);
                else {
                    flame_tree t, tr;
                    svg_opts so;
                    char title[512];
                    flame_init(&t);
                    rc = flame_add_profile(&t, &p, 0, NULL, 0);
                    if (!rc) rc = flame_truncate(&t, max_nodes > 0 ? (uint32_t)max_nodes : 0, &tr);
                    if (!rc) {
                        memset(&so, 0, sizeof so);
                        snprintf(title, sizeof title, "%s %s", type, sel);
                        so.title = title;
                        so.units = prof_s(&p, p.sample_types[0].unit);
                        rc = svg_write(&tr, &so, &out);
                        flame_release(&tr);
                    }
                    flame_release(&t);
                }
            }
            prof_release(&p);
        }
    }
    if (!rc) rc = buf_write_file(&out, outfile);
    if (rc) fprintf(stderr, "hearth query: %s\n", herr_msg(&e, rc));
    buf_release(&req);
    buf_release(&resp);
    buf_release(&out);
    return rc ? 1 : 0;
}

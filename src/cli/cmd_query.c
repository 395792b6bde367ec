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

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hearth query [--url URL] [--type TYPE] [--query SELECTOR] [--from TIME] [--until TIME]\n"
            "                    [--format folded|pprof|json|svg|speedscope] [-o FILE] [--max-nodes N]\n"
            "                    [--tenant ID] [--token T] [--basic-auth USER:PASS]\n\n"
            "Writes the merged profile of the series matching SELECTOR (e.g. '{service_name=\"api\"}')\n"
            "between --from (default now-1h) and --until (default now) from any Pyroscope-compatible\n"
            "server (default $HEARTH_URL or http://localhost:4040). TYPE is a profile type ID,\n"
            "default process_cpu:cpu:nanoseconds:cpu:nanoseconds. Times: now-1h, unix (any unit),\n"
            "RFC 3339. Output goes to stdout unless -o is given.\n");
}

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
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--url")) dst = &co.url;
        else if (!strcmp(a, "--type")) dst = &type;
        else if (!strcmp(a, "--query")) dst = &sel;
        else if (!strcmp(a, "--from")) dst = &from_s;
        else if (!strcmp(a, "--until")) dst = &until_s;
        else if (!strcmp(a, "--format")) dst = &format;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) dst = &outfile;
        else if (!strcmp(a, "--tenant")) dst = &co.tenant;
        else if (!strcmp(a, "--token")) dst = &co.token;
        else if (!strcmp(a, "--basic-auth")) dst = &co.basic_auth;
        else if (!strcmp(a, "--max-nodes")) {
            if (i + 1 >= argc) goto need;
            max_nodes = strtol(argv[++i], NULL, 10);
            continue;
        } else {
            fprintf(stderr, "hearth query: unknown argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) goto need;
        *dst = argv[++i];
        continue;
    need:
        fprintf(stderr, "hearth query: %s needs a value\n", a);
        return 2;
    }
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

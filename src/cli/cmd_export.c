/*
 * cmd_export.c: `hearth export`: writes stored profiles straight from a data
 * directory, without a server: the merge of a selection as pprof, folded
 * stacks, speedscope or a flame graph SVG. The store is opened read-only
 * (no WAL writes), so a copy or backup of a data directory can be read.
 */
#include "core/common.h"

#include "cli/cmd.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/units.h"
#include "format/folded.h"
#include "format/pprof.h"
#include "format/speedscope.h"
#include "format/svg.h"
#include "profile/flame.h"
#include "store/store.h"

static const char export_usage[] =
    "usage: hearth export --data-dir DIR [--tenant ID] [--type TYPE] [--query SELECTOR]\n"
    "                     [--from T] [--until T] [--format pprof|folded|speedscope|svg] [-o FILE]\n";
static const char export_desc[] =
    "Merges the stored profiles of TYPE (default process_cpu:cpu:nanoseconds:cpu:nanoseconds)\n"
    "matching SELECTOR (default all) for tenant ID (default anonymous) between --from (default 0)\n"
    "and --until (default now), and writes them (default pprof, gzip) to FILE or stdout.\n"
    "'hearth export --list-types' prints the profile types instead.\n";

int cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *tenant = "anonymous", *type = "process_cpu:cpu:nanoseconds:cpu:nanoseconds", *sel_s = "{}";
    const char *from_s = "0", *until_s = "now", *format = "pprof", *outfile = "-";
    int list = 0, rc;
    int64_t now = now_ns();
    store_opts so;
    store *st = NULL;
    store_query q;
    selector sel;
    herr e = {0};
    buf out;
    profile p;

    const opt_spec specs[] = {
        {"data-dir", 0, OPT_STRING, &dir, NULL, "DIR", "the server's data directory (required)", 0, 0},
        {"tenant", 0, OPT_STRING, &tenant, NULL, "ID", "tenant (default anonymous)", 0, 0},
        {"type", 0, OPT_STRING, &type, NULL, "TYPE", "profile type ID", 0, 0},
        {"query", 0, OPT_STRING, &sel_s, NULL, "SELECTOR", "label selector (default {})", 0, 0},
        {"from", 0, OPT_STRING, &from_s, NULL, "T", "start (default 0)", 0, 0},
        {"until", 0, OPT_STRING, &until_s, NULL, "T", "end (default now)", 0, 0},
        {"format", 0, OPT_STRING, &format, NULL, "FORMAT", "pprof, folded, speedscope or svg (default pprof)", 0, 0},
        {"output", 'o', OPT_STRING, &outfile, NULL, "FILE", "write here instead of stdout", 0, 0},
        {"list-types", 0, OPT_FLAG, &list, NULL, NULL, "print the stored profile types instead", 0, 0},
    };
    const opt_cmd cmd = {"export", export_usage, export_desc, specs, ARRAY_SIZE(specs), 0, 0};
    opts_args pos;
    if ((rc = opts_parse(&cmd, argc, argv, &pos))) return opts_exit(rc);
    if (!dir) {
        fprintf(stderr, "hearth export: --data-dir is required ('hearth export --help' describes the options)\n");
        return 2;
    }
    memset(&q, 0, sizeof q);
    q.tenant = tenant;
    q.profile_type = type;
    if (parse_time_ns(from_s, now, &q.start_ns) || parse_time_ns(until_s, now, &q.end_ns)) {
        fprintf(stderr, "hearth export: --from/--until: use now-1h, a unix timestamp or RFC 3339\n");
        return 2;
    }
    if (selector_parse(&sel, sel_s, strlen(sel_s), &e)) {
        fprintf(stderr, "hearth export: --query: %s\n", e.msg);
        selector_release(&sel);
        return 2;
    }
    q.sel = &sel;
    store_opts_default(&so);
    so.read_only = 1;
    so.background = 0;
    if ((rc = store_open(&st, dir, &so, &e))) {
        fprintf(stderr, "hearth export: %s\n", herr_msg(&e, rc));
        selector_release(&sel);
        return 1;
    }
    buf_init(&out, 0);
    prof_init(&p);
    if (list) {
        store_strs l = {0};
        q.profile_type = NULL;
        rc = store_profile_types(st, &q, &l, &e);
        for (size_t i = 0; !rc && i < l.n; i++) buf_printf(&out, "%s\n", l.v[i]);
        store_strs_release(&l);
    } else {
        rc = store_select_merge_profile(st, &q, &p, &e);
        if (!rc && !p.n_types) rc = prof_add_type(&p, "samples", "count") < 0 ? -ENOMEM : 0;
        if (!rc) {
            if (!strcmp(format, "pprof")) rc = pprof_encode(&p, &out, 1, &e);
            else if (!strcmp(format, "folded")) rc = folded_write(&p, 0, &out, &e);
            else if (!strcmp(format, "speedscope")) rc = speedscope_write(&p, 0, type, &out, &e);
            else if (!strcmp(format, "svg")) {
                flame_tree t;
                svg_opts o;
                memset(&o, 0, sizeof o);
                o.title = type;
                o.units = prof_s(&p, p.sample_types[0].unit);
                flame_init(&t);
                rc = flame_add_profile(&t, &p, 0, NULL, 0);
                if (!rc) rc = svg_write(&t, &o, &out);
                flame_release(&t);
            } else {
                rc = herr_set(&e, HE_USAGE, "--format must be pprof, folded, speedscope or svg");
            }
        }
    }
    if (!rc) rc = buf_write_file(&out, outfile);
    if (rc) fprintf(stderr, "hearth export: %s\n", herr_msg(&e, rc));
    prof_release(&p);
    buf_release(&out);
    store_close(st);
    selector_release(&sel);
    return rc ? 1 : 0;
}

/*
 * cmd_export.c: `hearth export`: writes stored profiles straight from a data
 * directory, without a server: the merge of a selection as pprof, folded
 * stacks, speedscope or a flame graph SVG. The store is opened read-only
 * (no WAL writes), so a copy or backup of a data directory can be read.
 */
#include "core/common.h"

#include "cli/cmd.h"
#include "core/buf.h"
#include "core/units.h"
#include "format/folded.h"
#include "format/pprof.h"
#include "format/speedscope.h"
#include "format/svg.h"
#include "profile/flame.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hearth export --data-dir DIR [--tenant ID] [--type TYPE] [--query SELECTOR]\n"
            "                     [--from T] [--until T] [--format pprof|folded|speedscope|svg] [-o FILE]\n\n"
            "Merges the stored profiles of TYPE (default process_cpu:cpu:nanoseconds:cpu:nanoseconds)\n"
            "matching SELECTOR (default all) for tenant ID (default anonymous) between --from (default 0)\n"
            "and --until (default now), and writes them (default pprof, gzip) to FILE or stdout.\n"
            "'hearth export --list-types' prints the profile types instead.\n");
}

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

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--list-types")) {
            list = 1;
            continue;
        }
        if (!strcmp(a, "--data-dir")) dst = &dir;
        else if (!strcmp(a, "--tenant")) dst = &tenant;
        else if (!strcmp(a, "--type")) dst = &type;
        else if (!strcmp(a, "--query")) dst = &sel_s;
        else if (!strcmp(a, "--from")) dst = &from_s;
        else if (!strcmp(a, "--until")) dst = &until_s;
        else if (!strcmp(a, "--format")) dst = &format;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) dst = &outfile;
        else {
            fprintf(stderr, "hearth export: unknown argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "hearth export: %s needs a value\n", a);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!dir) {
        fprintf(stderr, "hearth export: --data-dir is required\n");
        usage(stderr);
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

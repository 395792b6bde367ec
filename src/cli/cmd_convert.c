/*
 * cmd_convert.c: `hearth convert INPUT [-o OUTPUT] --to FORMAT ...`:
 * reads a profile in any format format/detect.h knows, picks one sample
 * type, and writes pprof, folded, speedscope, flamebearer JSON or an SVG
 * flame graph.
 *
 * Contract with the user: broken input prints exactly one line
 * "hearth convert: FILE: what is wrong" and exits 1; usage errors exit 2;
 * the output file is written atomically (nothing is left behind on error).
 * Input is capped at 1 GiB and decompressed input at 512 MiB.
 */
#include "core/common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/units.h"
#include "cli/cmd.h"
#include "cli/opts.h"
#include "format/detect.h"
#include "format/flamebearer.h"
#include "format/folded.h"
#include "format/pprof.h"
#include "format/speedscope.h"
#include "format/svg.h"
#include "profile/flame.h"
#include "profile/profile.h"

#define CONVERT_MAX_INPUT ((size_t)1 << 30)
#define CONVERT_MAX_DECOMPRESSED ((size_t)512 << 20)
#define CONVERT_MAX_OUTPUT ((size_t)2 << 30)

static const char convert_usage[] = "usage: hearth convert INPUT [-o OUTPUT] --to FORMAT [options]\n";
static const char convert_desc[] =
    "Converts a profile between formats. INPUT may be '-' (stdin); its format is\n"
    "detected from the bytes (gzip or raw pprof, folded stacks, perf script text,\n"
    "speedscope JSON; gzip/zstd-compressed text too) unless --from is given.\n"
    "--type: default the profile's default sample type, else the last; with --to pprof\n"
    "all types are kept unless --type is given. --max-nodes: flamebearer/svg keep at most\n"
    "N nodes, the rest summed into 'other' (default 0, no limit).\n"
    "\n"
    "Broken input prints one line 'hearth convert: FILE: reason' and exits 1.\n";

enum out_format { OUT_NONE, OUT_PPROF, OUT_FOLDED, OUT_SPEEDSCOPE, OUT_FLAMEBEARER, OUT_SVG };

static enum out_format parse_out(const char *s)
{
    if (!strcmp(s, "pprof")) return OUT_PPROF;
    if (!strcmp(s, "folded") || !strcmp(s, "collapsed")) return OUT_FOLDED;
    if (!strcmp(s, "speedscope")) return OUT_SPEEDSCOPE;
    if (!strcmp(s, "flamebearer") || !strcmp(s, "json")) return OUT_FLAMEBEARER;
    if (!strcmp(s, "svg")) return OUT_SVG;
    return OUT_NONE;
}

/* Keeps only sample type `type` of *p (for pprof output with --type). */
static int keep_one_type(profile *p, int type, herr *e)
{
    profile one;
    int rc;
    if ((rc = prof_init(&one))) return herr_set(e, rc, "out of memory");
    one.limits = p->limits;
    if ((rc = prof_merge(&one, p, type, 1, e))) { prof_release(&one); return rc; }
    one.period = p->period;
    one.time_nanos = p->time_nanos;
    one.duration_nanos = p->duration_nanos;
    if (p->period_type.type) {
        int32_t a = prof_cstr(&one, prof_s(p, p->period_type.type)), b = prof_cstr(&one, prof_s(p, p->period_type.unit));
        if (a >= 0 && b >= 0) { one.period_type.type = (uint32_t)a; one.period_type.unit = (uint32_t)b; }
    }
    prof_release(p);
    *p = one;
    return 0;
}

static int write_flame(const profile *p, int type, enum out_format of, uint32_t max_nodes, const char *title,
                       buf *out, herr *e)
{
    flame_tree full, cut, *t = &full;
    const char *tname = prof_s(p, p->sample_types[type].type), *uname = prof_s(p, p->sample_types[type].unit);
    int rc, have_cut = 0;
    int64_t abs_sum = 0;
    /* Every flame node total is bounded by the sum of |values|: keep it in int64. */
    for (size_t i = 0; i < p->n_samples; i++) {
        int64_t v = p->values[i * p->n_types + (size_t)type];
        if (v == INT64_MIN || __builtin_add_overflow(abs_sum, v < 0 ? -v : v, &abs_sum))
            return herr_set(e, HE_TOOBIG, "the values of sample type '%s' add up past 2^63-1", tname);
    }
    if ((rc = flame_init(&full))) return herr_set(e, rc, "out of memory");
    if ((rc = flame_add_profile(&full, p, type, NULL, 0))) { herr_set(e, rc, "building the flame graph: %s", hearth_strerror(rc)); goto out; }
    if (max_nodes) {
        if ((rc = flame_truncate(&full, max_nodes, &cut))) { herr_set(e, rc, "truncating the flame graph: %s", hearth_strerror(rc)); goto out; }
        have_cut = 1;
        t = &cut;
    }
    if (of == OUT_FLAMEBEARER) {
        flamebearer_meta meta = {0};
        char name[256];
        snprintf(name, sizeof name, "%s:%s", tname, uname);
        meta.name = name;
        meta.spy_name = "unknown";
        meta.units = flamebearer_units(tname, uname);
        meta.sample_rate = flamebearer_sample_rate(uname);
        rc = flamebearer_write(t, &meta, out);
    } else {
        svg_opts o = {0};
        char sub[300];
        snprintf(sub, sizeof sub, "%s (%s)", tname, uname);
        o.title = title;
        o.subtitle = sub;
        o.units = uname;
        rc = svg_write(t, &o, out);
    }
    if (rc) herr_set(e, rc, rc == HE_TOOBIG ? "output is larger than %zu bytes" : "out of memory writing output", CONVERT_MAX_OUTPUT);
out:
    if (have_cut) flame_release(&cut);
    flame_release(&full);
    return rc;
}

int cmd_convert(int argc, char **argv)
{
    const char *output = "-", *want_type = NULL, *input, *title = NULL;
    enum out_format of = OUT_NONE;
    enum prof_format inf = PF_AUTO;
    const char *to_s = NULL, *from_s = NULL;
    long max_nodes = 0;
    buf in = BUF_INIT, out = BUF_INIT;
    profile p;
    herr e;
    int rc, type, status = 1;

    const opt_spec specs[] = {
        {"output", 'o', OPT_STRING, &output, NULL, "FILE", "write here (default: stdout)", 0, 0},
        {"to", 't', OPT_STRING, &to_s, NULL, "FORMAT", "pprof | folded | speedscope | flamebearer | svg", 0, 0},
        {"from", 'f', OPT_STRING, &from_s, NULL, "FORMAT", "pprof | folded | perf-script | speedscope (default: auto)", 0, 0},
        {"type", 0, OPT_STRING, &want_type, NULL, "TYPE", "sample type to use, e.g. cpu, samples, alloc_space, inuse_space", 0, 0},
        {"max-nodes", 0, OPT_INT, &max_nodes, NULL, "N", "flamebearer/svg: keep at most N nodes (0: no limit)", 0, UINT32_MAX},
        {"title", 0, OPT_STRING, &title, NULL, "TEXT", "svg: the title (default: the input name)", 0, 0},
    };
    const opt_cmd cmd = {"convert", convert_usage, convert_desc, specs, ARRAY_SIZE(specs), -1, 0};
    opts_args pos;
    if ((rc = opts_parse(&cmd, argc, argv, &pos))) return opts_exit(rc);
    if (to_s && (of = parse_out(to_s)) == OUT_NONE) {
        fprintf(stderr, "hearth convert: unknown output format '%s' (pprof, folded, speedscope, flamebearer, svg)\n", to_s);
        return 2;
    }
    if (from_s && (inf = prof_format_parse(from_s)) == PF_UNKNOWN) {
        fprintf(stderr, "hearth convert: unknown input format '%s' (pprof, folded, perf-script, speedscope)\n", from_s);
        return 2;
    }
    if (pos.n != 1) {
        fprintf(stderr, "hearth convert: %s ('hearth convert --help' describes the arguments)\n",
                pos.n ? "more than one INPUT given" : "no INPUT given");
        return 2;
    }
    if (of == OUT_NONE) {
        fprintf(stderr, "hearth convert: --to FORMAT is required (pprof, folded, speedscope, flamebearer, svg)\n");
        return 2;
    }
    input = pos.v[0];
    herr_clear(&e);
    buf_init(&in, CONVERT_MAX_INPUT);
    buf_init(&out, CONVERT_MAX_OUTPUT);
    if ((rc = prof_init(&p))) {
        fprintf(stderr, "hearth convert: out of memory\n");
        return 1;
    }
    rc = buf_read_file(&in, input);
    if (rc) {
        if (rc == HE_TOOBIG) fprintf(stderr, "hearth convert: %s: input is larger than %zu bytes\n", input, CONVERT_MAX_INPUT);
        else fprintf(stderr, "hearth convert: %s: cannot read: %s\n", input, hearth_strerror(rc));
        goto out;
    }
    rc = prof_decode_any(&p, in.data ? in.data : "", in.len, inf, CONVERT_MAX_DECOMPRESSED, &e);
    if (!rc) rc = prof_validate(&p, &e);
    if (rc) {
        fprintf(stderr, "hearth convert: %s: %s\n", input, herr_msg(&e, rc));
        goto out;
    }
    buf_release(&in);
    type = prof_pick_type(&p, want_type, &e);
    if (type < 0) {
        fprintf(stderr, "hearth convert: %s: %s\n", input, herr_msg(&e, HE_NOTFOUND));
        goto out;
    }
    switch (of) {
    case OUT_PPROF:
        rc = 0;
        if (want_type && p.n_types > 1) rc = keep_one_type(&p, type, &e);
        if (!rc) rc = pprof_encode(&p, &out, 1, &e);
        break;
    case OUT_FOLDED: rc = folded_write(&p, type, &out, &e); break;
    case OUT_SPEEDSCOPE: rc = speedscope_write(&p, type, NULL, &out, &e); break;
    default: rc = write_flame(&p, type, of, (uint32_t)max_nodes, title ? title : (strcmp(input, "-") ? input : "stdin"), &out, &e); break;
    }
    if (rc) {
        fprintf(stderr, "hearth convert: %s: %s\n", input, herr_msg(&e, rc));
        goto out;
    }
    if ((rc = buf_write_file(&out, output))) {
        fprintf(stderr, "hearth convert: %s: cannot write: %s\n", output, hearth_strerror(rc));
        goto out;
    }
    status = 0;
out:
    buf_release(&in);
    buf_release(&out);
    prof_release(&p);
    return status;
}

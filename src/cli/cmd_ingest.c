/*
 * cmd_ingest.c: `hearth ingest`: uploads profile files (pprof, folded
 * stacks, perf script, speedscope; format detected from the bytes) to any
 * Pyroscope-compatible server through its legacy /ingest route, the one
 * every Pyroscope server accepts. Upload progress is shown on a terminal.
 *
 * Each file is one request; the first failure stops with the server's
 * message (files before it stay uploaded, and are reported). Pyroscope's
 * /ingest takes no perf script, so perf script files are converted to
 * folded stacks here (same stacks and counts) and sent as format=folded.
 */
#include "core/common.h"

#include "cli/cmd.h"
#include "core/buf.h"
#include "core/units.h"
#include "format/detect.h"
#include "format/folded.h"
#include "format/perfscript.h"
#include "profile/profile.h"
#include "server/client.h"
#include "server/naming.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hearth ingest [--url URL] --name 'app.cpu{k=v}' [--sample-rate HZ] [--from T] [--until T]\n"
            "                     [--spy-name NAME] [--tenant ID] [--token T] [--basic-auth USER:PASS] FILE...\n\n"
            "Uploads each FILE (pprof, gzip or not; folded stacks; perf script; speedscope; '-' is stdin)\n"
            "to POST /ingest. For text formats the name's suffix picks the profile type as Pyroscope\n"
            "does (.cpu -> process_cpu scaled by --sample-rate, default 100; .inuse_space, .alloc_objects...).\n");
}

int cmd_ingest(int argc, char **argv)
{
    client_opts co;
    const char *name = NULL, *rate = "100", *from_s = "now", *until_s = "now", *spy = "hearth";
    const char *files[1024];
    size_t n_files = 0, done = 0;
    int64_t from, until, now = now_ns();
    naming_key *key;
    herr e = {0};
    int rc = 0;

    client_opts_default(&co);
    co.progress = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--url")) dst = &co.url;
        else if (!strcmp(a, "--name")) dst = &name;
        else if (!strcmp(a, "--sample-rate")) dst = &rate;
        else if (!strcmp(a, "--from")) dst = &from_s;
        else if (!strcmp(a, "--until")) dst = &until_s;
        else if (!strcmp(a, "--spy-name")) dst = &spy;
        else if (!strcmp(a, "--tenant")) dst = &co.tenant;
        else if (!strcmp(a, "--token")) dst = &co.token;
        else if (!strcmp(a, "--basic-auth")) dst = &co.basic_auth;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "hearth ingest: unknown option \"%s\"\n", a);
            usage(stderr);
            return 2;
        } else {
            if (n_files >= ARRAY_SIZE(files)) {
                fprintf(stderr, "hearth ingest: at most %zu files per run\n", ARRAY_SIZE(files));
                return 2;
            }
            files[n_files++] = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "hearth ingest: %s needs a value\n", a);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!name || !n_files) {
        fprintf(stderr, "hearth ingest: --name and at least one FILE are required\n");
        usage(stderr);
        return 2;
    }
    key = malloc(sizeof *key);
    if (!key || naming_parse_key(key, name, &e)) {
        fprintf(stderr, "hearth ingest: --name: %s\n", herr_msg(&e, HE_FORMAT));
        free(key);
        return 2;
    }
    free(key);
    if (parse_time_ns(from_s, now, &from) || parse_time_ns(until_s, now, &until)) {
        fprintf(stderr, "hearth ingest: --from/--until: use now-1h, a unix timestamp or RFC 3339\n");
        return 2;
    }
    for (size_t i = 0; i < n_files && !rc; i++) {
        buf data, query, resp;
        enum prof_format f;
        const char *fmt, *how = "";
        buf_init(&data, (size_t)1 << 31);
        buf_init(&query, 0);
        buf_init(&resp, 1 << 20);
        if ((rc = buf_read_file(&data, files[i]))) {
            herr_set(&e, rc, "%s: cannot read: %s", files[i], hearth_strerror(rc));
        } else {
            f = prof_format_detect(data.data ? data.data : "", data.len);
            fmt = f == PF_PPROF ? "pprof" : f == PF_FOLDED ? "folded" : f == PF_PERFSCRIPT ? "perf_script"
                : f == PF_SPEEDSCOPE ? "speedscope" : NULL;
            if (fmt && f == PF_PERFSCRIPT) {
                /* to folded: what every Pyroscope server reads */
                profile p;
                buf folded;
                herr pe = {0};
                buf_init(&folded, (size_t)1 << 31);
                if ((rc = prof_init(&p))) {
                    herr_set(&e, rc, "%s: out of memory", files[i]);
                } else if ((rc = perfscript_parse(&p, data.data ? data.data : "", data.len, &pe)) ||
                           (rc = folded_write(&p, 0, &folded, &pe))) {
                    herr_set(&e, rc, "%s: perf script: %s", files[i], herr_msg(&pe, rc));
                } else {
                    buf_release(&data);
                    data = folded;
                    buf_init(&folded, 0);
                    fmt = "folded";
                    how = " (converted from perf script)";
                }
                prof_release(&p);
                buf_release(&folded);
            }
            if (rc) {
                /* e says what went wrong */
            } else if (!fmt) {
                rc = herr_set(&e, HE_FORMAT, "%s: not a pprof, folded, perf script or speedscope file", files[i]);
            } else {
                buf_puts(&query, "/ingest?name=");
                client_escape(name, &query);
                buf_printf(&query, "&format=%s&sampleRate=%s&spyName=", fmt, rate);
                client_escape(spy, &query);
                buf_printf(&query, "&from=%" PRId64 "&until=%" PRId64, (int64_t)(from / 1000000000LL), (int64_t)(until / 1000000000LL));
                rc = client_post(&co, query.data, "application/octet-stream", data.data, data.len, &resp, &e);
                if (!rc) {
                    done++;
                    fprintf(stderr, "%s: uploaded %zu bytes as %s%s\n", files[i], data.len, fmt, how);
                }
            }
        }
        buf_release(&data);
        buf_release(&query);
        buf_release(&resp);
    }
    if (rc) {
        fprintf(stderr, "hearth ingest: %s\n", herr_msg(&e, rc));
        if (done) fprintf(stderr, "hearth ingest: %zu of %zu files were uploaded before the error\n", done, n_files);
        return 1;
    }
    return 0;
}

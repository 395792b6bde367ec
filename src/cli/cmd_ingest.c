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
#include "cli/opts.h"
#include "core/buf.h"
#include "core/units.h"
#include "format/detect.h"
#include "format/folded.h"
#include "format/perfscript.h"
#include "profile/profile.h"
#include "server/client.h"
#include "server/naming.h"

static const char ingest_usage[] =
    "usage: hearth ingest [--url URL] --name 'app.cpu{k=v}' [--sample-rate HZ] [--from T] [--until T]\n"
    "                     [--spy-name NAME] [--tenant ID] [--token T] [--basic-auth USER:PASS] FILE...\n";
static const char ingest_desc[] =
    "Uploads each FILE (pprof, gzip or not; folded stacks; perf script; speedscope; '-' is stdin)\n"
    "to POST /ingest. For text formats the name's suffix picks the profile type as Pyroscope\n"
    "does (.cpu -> process_cpu scaled by --sample-rate, default 100; .inuse_space, .alloc_objects...).\n";

int cmd_ingest(int argc, char **argv)
{
    client_opts co;
    const char *name = NULL, *from_s = "now", *until_s = "now", *spy = "hearth";
    char **files;
    long rate = 100;
    size_t n_files, done = 0;
    int64_t from, until, now = now_ns();
    naming_key *key;
    herr e = {0};
    int rc = 0;

    client_opts_default(&co);
    co.progress = 1;
    const opt_spec specs[] = {
        {"url", 0, OPT_STRING, &co.url, "HEARTH_URL", "URL", "server address (default http://localhost:4040)", 0, 0},
        {"name", 0, OPT_STRING, &name, NULL, "NAME", "application name, type suffix and labels: 'app.cpu{k=v}' (required)", 0, 0},
        {"sample-rate", 0, OPT_INT, &rate, NULL, "HZ", "samples per second of text formats (default 100)", 1, 1000000000},
        {"from", 0, OPT_STRING, &from_s, NULL, "T", "start of the profiles (default now)", 0, 0},
        {"until", 0, OPT_STRING, &until_s, NULL, "T", "end of the profiles (default now)", 0, 0},
        {"spy-name", 0, OPT_STRING, &spy, NULL, "NAME", "spyName sent to the server (default hearth)", 0, 0},
        {"tenant", 0, OPT_STRING, &co.tenant, "HEARTH_TENANT", "ID", "tenant (X-Scope-OrgID)", 0, 0},
        {"token", 0, OPT_STRING, &co.token, "HEARTH_TOKEN", "T", "bearer token", 0, 0},
        {"basic-auth", 0, OPT_STRING, &co.basic_auth, NULL, "USER:PASS", "HTTP basic authentication", 0, 0},
    };
    const opt_cmd cmd = {"ingest", ingest_usage, ingest_desc, specs, ARRAY_SIZE(specs), 1024, 0};
    opts_args pos;
    if ((rc = opts_parse(&cmd, argc, argv, &pos))) return opts_exit(rc);
    files = pos.v;
    n_files = (size_t)pos.n;
    if (!name || !n_files) {
        fprintf(stderr, "hearth ingest: --name and at least one FILE are required ('hearth ingest --help' describes them)\n");
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
                buf_printf(&query, "&format=%s&sampleRate=%ld&spyName=", fmt, rate);
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

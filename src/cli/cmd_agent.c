/*
 * cmd_agent.c: `hearth agent`: continuous whole-host (or chosen processes)
 * CPU profiling with perf_event, pushed to a Pyroscope-compatible server.
 *
 *   hearth agent --server URL [--all | --pid PID... | --comm NAME...]
 *                [--rate 97] [--upload-interval 10s] [--tag k=v]...
 *                [--service-name NAME] [--auth-token T] [--tenant ID]
 *
 * One thread reads the perf rings and aggregates (collect.h); every interval
 * each service's profile is encoded as gzipped pprof and queued to the
 * uploader thread (upload.h), whose queue is bounded: a server that is down
 * costs dropped profiles (counted, logged), never unbounded memory.
 */
#include "core/common.h"
#include "cli/cmd.h"

#include <signal.h>
#include <unistd.h>

#include "agent/collect.h"
#include "agent/perf.h"
#include "agent/upload.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "format/pprof.h"

#pragma weak pprof_encode

#define MAX_LIST 256

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hearth agent --server URL [--all | --pid PID... | --comm NAME...] [OPTIONS]\n\n"
            "Profiles this host's CPU with perf_event (kernel and user stacks, DWARF\n"
            "unwinding) and pushes one pprof per service every interval to a\n"
            "Pyroscope-compatible server (POST /ingest).\n\n"
            "  --server URL            e.g. http://localhost:4040 (required)\n"
            "  --all                   every process (the default)\n"
            "  --pid PID               only this process (repeatable)\n"
            "  --comm NAME             only processes with this name (repeatable)\n"
            "  --rate HZ               samples per second per CPU (default 97)\n"
            "  --upload-interval D     how often to push (default 10s)\n"
            "  --service-name NAME     service_name for everything (default: per process:\n"
            "                          its executable's name; container_id as a label)\n"
            "  --tag K=V               a label on every profile (repeatable)\n"
            "  --auth-token T          sent as 'Authorization: Bearer T'\n"
            "  --basic-auth USER:PASS  HTTP basic auth\n"
            "  --tenant ID             sent as X-Scope-OrgID\n"
            "  --duration D            stop after D (default: run until SIGINT/SIGTERM)\n"
            "  --no-kernel             user frames only\n"
            "  --event E               cpu-clock (default) or cycles (falls back to cpu-clock without a PMU)\n"
            "  --stack-size SIZE       user stack copied per sample (default 16KiB; 0 = frame pointers only)\n"
            "  --max-queue N           profiles kept while the server is unreachable (default 64)\n");
}

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

typedef struct agent_ctx {
    uploader *up;
    const char **tag_keys, **tag_vals;
    size_t n_tags;
    int64_t from_s, until_s;
    unsigned rate;
    uint64_t pushed, encode_errors;
} agent_ctx;

static void on_profile(void *vctx, const char *service, const char *const *keys, const char *const *vals,
                       size_t n_labels, profile *p)
{
    agent_ctx *a = vctx;
    const char *k[MAX_LIST + 8], *v[MAX_LIST + 8];
    size_t n = 0;
    buf name, body;
    herr e = {0};
    for (size_t i = 0; i < n_labels && n < ARRAY_SIZE(k); i++) { k[n] = keys[i]; v[n] = vals[i]; n++; }
    for (size_t i = 0; i < a->n_tags && n < ARRAY_SIZE(k); i++) { k[n] = a->tag_keys[i]; v[n] = a->tag_vals[i]; n++; }
    buf_init(&name, 8192);
    buf_init(&body, (size_t)256 << 20);
    if (upl_app_name(&name, service, k, v, n) || !pprof_encode || pprof_encode(p, &body, 1, &e)) {
        a->encode_errors++;
        log_error("cannot encode the profile of %s: %s", service, pprof_encode ? herr_msg(&e, e.code) : "the pprof writer is not in this build");
    } else {
        if (upl_push(a->up, name.data, a->from_s, a->until_s, a->rate, &body) == 1)
            log_warn("upload queue full: dropped the oldest profile (is the server down?)");
        a->pushed++;
    }
    buf_release(&name);
    buf_release(&body);
}

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cmd_agent(int argc, char **argv)
{
    const char *server = NULL, *service = NULL, *token = NULL, *basic = NULL, *tenant = NULL;
    long long rate = 97, max_queue = 64, v;
    int64_t interval_ns = 10000000000LL, duration_ns = 0;
    uint64_t stack_bytes = 16384;
    int no_kernel = 0, all = 0, use_hw = 0;
    pid_t pids[MAX_LIST];
    const char *comms[MAX_LIST], *tag_keys[MAX_LIST], *tag_vals[MAX_LIST];
    char *tag_store[MAX_LIST];
    size_t n_pids = 0, n_comms = 0, n_tags = 0;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--all")) { all = 1; continue; }
        if (!strcmp(a, "--no-kernel")) { no_kernel = 1; continue; }
        if (!val) { fprintf(stderr, "hearth agent: %s needs a value (see --help)\n", a); return 2; }
        i++;
        if (!strcmp(a, "--server")) server = val;
        else if (!strcmp(a, "--event")) {
            if (strcmp(val, "cycles") && strcmp(val, "cpu-clock")) { fprintf(stderr, "hearth agent: --event '%s' is not cycles or cpu-clock\n", val); return 2; }
            use_hw = !strcmp(val, "cycles");
        }
        else if (!strcmp(a, "--service-name")) service = val;
        else if (!strcmp(a, "--auth-token")) token = val;
        else if (!strcmp(a, "--basic-auth")) basic = val;
        else if (!strcmp(a, "--tenant")) tenant = val;
        else if (!strcmp(a, "--rate")) {
            if (parse_ll(val, 1, 10000, &rate)) { fprintf(stderr, "hearth agent: --rate '%s' is not a number of Hz in 1..10000\n", val); return 2; }
        } else if (!strcmp(a, "--max-queue")) {
            if (parse_ll(val, 1, 100000, &max_queue)) { fprintf(stderr, "hearth agent: --max-queue '%s' is not a count in 1..100000\n", val); return 2; }
        } else if (!strcmp(a, "--pid")) {
            if (parse_ll(val, 1, INT32_MAX, &v)) { fprintf(stderr, "hearth agent: --pid '%s' is not a process id\n", val); return 2; }
            if (n_pids == MAX_LIST) { fprintf(stderr, "hearth agent: at most %d --pid\n", MAX_LIST); return 2; }
            pids[n_pids++] = (pid_t)v;
        } else if (!strcmp(a, "--comm")) {
            if (n_comms == MAX_LIST) { fprintf(stderr, "hearth agent: at most %d --comm\n", MAX_LIST); return 2; }
            comms[n_comms++] = val;
        } else if (!strcmp(a, "--tag")) {
            const char *eq = strchr(val, '=');
            if (!eq || eq == val || !eq[1]) { fprintf(stderr, "hearth agent: --tag '%s' is not KEY=VALUE\n", val); return 2; }
            if (n_tags == MAX_LIST) { fprintf(stderr, "hearth agent: at most %d --tag\n", MAX_LIST); return 2; }
            tag_store[n_tags] = xstrdup(val);
            tag_store[n_tags][eq - val] = 0;
            tag_keys[n_tags] = tag_store[n_tags];
            tag_vals[n_tags] = tag_store[n_tags] + (eq - val) + 1;
            n_tags++;
        } else if (!strcmp(a, "--upload-interval") || !strcmp(a, "--duration")) {
            int64_t ns;
            if (parse_duration_ns(val, &ns) || ns < 100000000LL) {
                fprintf(stderr, "hearth agent: %s '%s' is not a duration of at least 100ms (e.g. 10s, 1m)\n", a, val);
                return 2;
            }
            if (!strcmp(a, "--duration")) duration_ns = ns; else interval_ns = ns;
        } else if (!strcmp(a, "--stack-size")) {
            if (parse_size(val, &stack_bytes) || stack_bytes > 65528) {
                fprintf(stderr, "hearth agent: --stack-size '%s' must be a size up to 65528 bytes\n", val);
                return 2;
            }
        } else {
            fprintf(stderr, "hearth agent: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!server) { fprintf(stderr, "hearth agent: --server URL is required (e.g. --server http://localhost:4040)\n"); return 2; }
    if (all && (n_pids || n_comms)) { fprintf(stderr, "hearth agent: --all cannot be combined with --pid or --comm\n"); return 2; }

    herr e = {0};
    upl_opts uo = {0};
    uo.server = server;
    uo.auth_token = token;
    uo.basic_auth = basic;
    uo.tenant = tenant;
    uo.spy_name = "hearth-agent";
    uo.max_queue = (size_t)max_queue;
    uploader *up;
    if (upl_new(&uo, &up, &e)) { fprintf(stderr, "hearth agent: %s\n", e.msg); return 2; }

    perf_opts po = {0};
    po.freq = (unsigned)rate;
    po.pid = -1;
    po.stack_bytes = (uint32_t)stack_bytes;
    po.no_kernel = no_kernel;
    po.use_hardware = use_hw;
    perf_sampler ps;
    if (perf_open(&ps, &po, &e)) {
        fprintf(stderr, "hearth agent: %s\n", e.msg);
        upl_free(up, 0);
        return 1;
    }
    if (e.msg[0]) log_warn("%s", e.msg);

    coll_opts co = {0};
    co.rate_hz = (unsigned)rate;
    co.hardware = ps.hardware;
    co.service_name = service;
    co.pids = n_pids ? pids : NULL;
    co.n_pids = n_pids;
    co.comms = n_comms ? comms : NULL;
    co.n_comms = n_comms;
    co.self = getpid();
    co.comm_label = 1;
    collector *c = coll_new(&co);
    for (size_t i = 0; i < n_pids; i++) coll_scan_proc(c, pids[i]);

    agent_ctx ac = {up, tag_keys, tag_vals, n_tags, 0, 0, (unsigned)rate, 0, 0};
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    perf_enable(&ps);
    log_info("profiling %s at %lld Hz (%s), pushing to %s every %" PRId64 " ms",
             n_pids || n_comms ? "the chosen processes" : "every process", rate,
             ps.hardware ? "cycles" : "cpu-clock", server, interval_ns / 1000000);

    int64_t start = mono_ns(), wall_start = now_ns(), next = start + interval_ns;
    upl_stats last = {0};
    for (;;) {
        int n = perf_poll(&ps, 200, coll_handlers(), c);
        if (n < 0) { log_error("reading samples: %s", strerror(-n)); rc = 1; break; }
        int64_t t = mono_ns();
        int done = stop_flag || (duration_ns && t - start >= duration_ns);
        if (t >= next || done) {
            int64_t wall = now_ns();
            ac.from_s = wall_start / 1000000000LL;
            ac.until_s = MAX(wall / 1000000000LL, ac.from_s + 1);
            coll_flush(c, wall_start, wall, on_profile, &ac);
            wall_start = wall;
            next = t + interval_ns;
            upl_stats st;
            upl_get_stats(up, &st);
            if (st.failed > last.failed || st.dropped > last.dropped)
                log_warn("uploads: %" PRIu64 " sent, %" PRIu64 " failed, %" PRIu64 " dropped, %zu queued; last error: %s",
                         st.sent, st.failed, st.dropped, st.queued, st.last_error);
            last = st;
        }
        if (done) break;
    }
    coll_stats cs;
    coll_get_stats(c, &cs);
    perf_close(&ps);
    coll_free(c);
    upl_free(up, 5000);
    log_info("stopped: %" PRIu64 " samples, %" PRIu64 " lost, %" PRIu64 " profiles pushed", cs.samples - cs.skipped,
             cs.lost, ac.pushed);
    for (size_t i = 0; i < n_tags; i++) free(tag_store[i]);
    return rc;
}

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
#include "cli/opts.h"

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

static const char agent_usage[] = "usage: hearth agent --server URL [--all | --pid PID... | --comm NAME...] [OPTIONS]\n";
static const char agent_desc[] =
    "Profiles this host's CPU with perf_event (kernel and user stacks, DWARF\n"
    "unwinding) and pushes one pprof per service every interval to a\n"
    "Pyroscope-compatible server (POST /ingest). Without --pid or --comm (or with\n"
    "--all) every process is profiled. --service-name defaults, per process, to its\n"
    "executable's name (container_id as a label).\n";

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
    const char *server = NULL, *service = NULL, *token = NULL, *basic = NULL, *tenant = NULL, *event = NULL;
    long rate = 97, max_queue = 64;
    long long v;
    int64_t interval_ns = 10000000000LL, duration_ns = 0;
    uint64_t stack_bytes = 16384;
    int no_kernel = 0, all = 0, use_hw = 0;
    pid_t pids[MAX_LIST];
    const char *tag_keys[MAX_LIST], *tag_vals[MAX_LIST];
    char *tag_store[MAX_LIST];
    opts_list pid_l = {0}, comm_l = {0}, tag_l = {0};
    size_t n_pids = 0, n_comms = 0, n_tags = 0;
    int rc = 0;
    const opt_spec specs[] = {
        {"server", 0, OPT_STRING, &server, NULL, "URL", "e.g. http://localhost:4040 (required)", 0, 0},
        {"all", 0, OPT_FLAG, &all, NULL, NULL, "every process (the default)", 0, 0},
        {"pid", 0, OPT_LIST, &pid_l, NULL, "PID", "only this process", 0, MAX_LIST},
        {"comm", 0, OPT_LIST, &comm_l, NULL, "NAME", "only processes with this name", 0, MAX_LIST},
        {"rate", 0, OPT_INT, &rate, NULL, "HZ", "samples per second per CPU (default 97)", 1, 10000},
        {"upload-interval", 0, OPT_DURATION, &interval_ns, NULL, "D", "how often to push, at least 100ms (default 10s)", 0, 0},
        {"service-name", 0, OPT_STRING, &service, NULL, "NAME", "service_name for everything (default: per process)", 0, 0},
        {"tag", 0, OPT_LIST, &tag_l, NULL, "K=V", "a label on every profile", 0, MAX_LIST},
        {"auth-token", 0, OPT_STRING, &token, NULL, "T", "sent as 'Authorization: Bearer T'", 0, 0},
        {"basic-auth", 0, OPT_STRING, &basic, NULL, "USER:PASS", "HTTP basic auth", 0, 0},
        {"tenant", 0, OPT_STRING, &tenant, NULL, "ID", "sent as X-Scope-OrgID", 0, 0},
        {"duration", 0, OPT_DURATION, &duration_ns, NULL, "D", "stop after D (default: run until SIGINT/SIGTERM)", 0, 0},
        {"no-kernel", 0, OPT_FLAG, &no_kernel, NULL, NULL, "user frames only", 0, 0},
        {"event", 0, OPT_STRING, &event, NULL, "E", "cpu-clock (default) or cycles (falls back to cpu-clock without a PMU)", 0, 0},
        {"stack-size", 0, OPT_SIZE, &stack_bytes, NULL, "SIZE", "user stack copied per sample (default 16KiB; 0 = frame pointers only)", 0, 65528},
        {"max-queue", 0, OPT_INT, &max_queue, NULL, "N", "profiles kept while the server is unreachable (default 64)", 1, 100000},
    };
    const opt_cmd cmd = {"agent", agent_usage, agent_desc, specs, ARRAY_SIZE(specs), 0, 0};
    opts_args pos;
    if ((rc = opts_parse(&cmd, argc, argv, &pos))) goto bad;
    rc = HE_USAGE;
    if (event) {
        if (strcmp(event, "cycles") && strcmp(event, "cpu-clock")) {
            opts_fail(&cmd, "--event '%s' is not cycles or cpu-clock", event);
            goto bad;
        }
        use_hw = !strcmp(event, "cycles");
    }
    if (interval_ns < 100000000LL || (duration_ns && duration_ns < 100000000LL)) {
        opts_fail(&cmd, "--%s must be a duration of at least 100ms (e.g. 10s, 1m)",
                  interval_ns < 100000000LL ? "upload-interval" : "duration");
        goto bad;
    }
    for (size_t i = 0; i < pid_l.n; i++) {
        if (parse_ll(pid_l.v[i], 1, INT32_MAX, &v)) {
            opts_fail(&cmd, "--pid '%s' is not a process id", pid_l.v[i]);
            goto bad;
        }
        pids[n_pids++] = (pid_t)v;
    }
    for (size_t i = 0; i < tag_l.n; i++) {
        const char *val = tag_l.v[i], *eq = strchr(val, '=');
        if (!eq || eq == val || !eq[1]) {
            opts_fail(&cmd, "--tag '%s' is not KEY=VALUE", val);
            goto bad;
        }
    }
    for (size_t i = 0; i < tag_l.n; i++) {
        const char *val = tag_l.v[i], *eq = strchr(val, '=');
        tag_store[n_tags] = xstrdup(val);
        tag_store[n_tags][eq - val] = 0;
        tag_keys[n_tags] = tag_store[n_tags];
        tag_vals[n_tags] = tag_store[n_tags] + (eq - val) + 1;
        n_tags++;
    }
    const char **comms = comm_l.v;
    n_comms = comm_l.n;
    opts_list_release(&pid_l);
    opts_list_release(&tag_l);
    rc = 0;
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
    po.pids = n_pids ? pids : NULL; /* per-process events: the rest of the host costs nothing */
    po.n_pids = n_pids;
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
    log_info("profiling %s at %ld Hz (%s), pushing to %s every %" PRId64 " ms",
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
    upl_stats fin;
    upl_close(up, 5000, &fin); /* the last interval's profiles get up to 5 s */
    log_info("stopped: %" PRIu64 " samples, %" PRIu64 " lost, %" PRIu64 " profiles pushed", cs.samples - cs.skipped,
             cs.lost, ac.pushed);
    /* failures of the final drain come after the last periodic report: say them too */
    if (fin.failed > last.failed || fin.dropped > last.dropped || fin.queued)
        log_warn("uploads: %" PRIu64 " sent, %" PRIu64 " failed, %" PRIu64 " dropped, %zu not sent at exit; last error: %s",
                 fin.sent, fin.failed, fin.dropped, fin.queued, fin.last_error);
    for (size_t i = 0; i < n_tags; i++) free(tag_store[i]);
    opts_list_release(&comm_l);
    return rc;
bad:
    opts_list_release(&pid_l);
    opts_list_release(&comm_l);
    opts_list_release(&tag_l);
    return opts_exit(rc);
}

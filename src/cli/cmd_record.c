/*
 * cmd_record.c: `hearth record`: profile one command (with its threads and
 * children) or one running process with perf_event, and write a profile or
 * a flame graph. No server involved.
 *
 *   hearth record [--rate 997] [--format pprof|folded|speedscope|svg]
 *                 [-o FILE] [--lines] [--no-dwarf] [--stack-size 16KiB] -- CMD ARGS...
 *   hearth record --pid PID [--duration 30s] ...
 *
 * The command is forked stopped on a pipe; the events are opened on its pid
 * with inherit and enable_on_exec, so counting starts exactly at its exec and
 * follows every thread and child. --pid samples the whole host and keeps the
 * process's samples (threads included), since inherit cannot reach threads
 * that already exist.
 */
#include "core/common.h"
#include "cli/cmd.h"
#include "cli/opts.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/collect.h"
#include "agent/perf.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/units.h"
#include "format/folded.h"
#include "format/pprof.h"
#include "format/speedscope.h"
#include "format/svg.h"
#include "profile/flame.h"

/* Writers being built in parallel: link without them, report if absent. */
#pragma weak svg_write
#pragma weak speedscope_write
#pragma weak folded_write
#pragma weak pprof_encode

static const char record_usage[] =
    "usage: hearth record [OPTIONS] -- CMD [ARGS...]\n"
    "       hearth record [OPTIONS] --pid PID [--duration 30s]\n\n"
    "Profiles a command (its threads and children) until it exits, or a running\n"
    "process for a duration, and writes a profile.\n";
static const char record_desc[] =
    "--format defaults to the one -o's extension names, else pprof; -o defaults to\n"
    "hearth.pb.gz / hearth.svg / hearth.speedscope.json, or stdout for folded ('-' = stdout).\n";

typedef struct rec_out {
    const char *format;
    const char *path;
    int lines;
    buf out;
    int rc;
    herr e;
    int64_t total_samples;
} rec_out;

static const char *guess_format(const char *path)
{
    size_t n = path ? strlen(path) : 0;
#define ENDS(s) (n >= strlen(s) && !strcmp(path + n - strlen(s), s))
    if (!path) return "pprof";
    if (ENDS(".svg")) return "svg";
    if (ENDS(".folded") || ENDS(".txt") || ENDS(".collapsed")) return "folded";
    if (ENDS(".json") || ENDS(".speedscope")) return "speedscope";
    return "pprof";
#undef ENDS
}

/* Folded stacks with "function (file:line)" frames, root first: for people and the tests. */
static int write_folded_lines(const profile *p, int type, buf *out)
{
    uint32_t locs[1024];
    char name[1024];
    int rc = 0;
    for (size_t i = 0; i < p->n_samples && !rc; i++) {
        int64_t v = prof_values(p, i)[type];
        size_t depth = prof_stack_locations(p, p->samples[i].stack, locs, ARRAY_SIZE(locs));
        int first = 1;
        if (v <= 0) continue;
        if (depth > ARRAY_SIZE(locs)) depth = ARRAY_SIZE(locs);
        for (size_t k = depth; k-- > 0;) {
            const prof_location *l = &p->locations[locs[k]];
            uint32_t nl = l->n_lines ? l->n_lines : 1;
            for (uint32_t j = nl; j-- > 0;) {
                prof_frame_name(p, locs[k], j, name, sizeof(name));
                for (char *c = name; *c; c++)
                    if (*c == ';' || *c == '\n') *c = '_';
                if (!first) rc |= buf_putc(out, ';');
                first = 0;
                rc |= buf_puts(out, name);
                if (j < l->n_lines) {
                    const prof_line *ln = &p->lines[l->first_line + j];
                    const prof_function *fn = ln->function < p->n_functions ? &p->functions[ln->function] : NULL;
                    const char *file = fn ? prof_s(p, fn->filename) : "";
                    const char *base = strrchr(file, '/');
                    if (*file && ln->line > 0)
                        rc |= buf_printf(out, " (%s:%" PRId64 ")", base ? base + 1 : file, ln->line);
                }
            }
        }
        rc |= buf_printf(out, " %" PRId64 "\n", v);
    }
    return rc;
}

static void on_profile(void *ctx, const char *service, const char *const *keys, const char *const *vals,
                       size_t n_labels, profile *p)
{
    rec_out *ro = ctx;
    int type = prof_type_index(p, "samples");
    ro->total_samples += prof_total(p, type);
    if (!strcmp(ro->format, "pprof")) {
        if (!pprof_encode) { ro->rc = herr_set(&ro->e, HE_UNSUPPORTED, "the pprof writer is not in this build"); return; }
        ro->rc = pprof_encode(p, &ro->out, 1, &ro->e);
    } else if (!strcmp(ro->format, "folded")) {
        if (ro->lines || !folded_write) ro->rc = write_folded_lines(p, type, &ro->out);
        else ro->rc = folded_write(p, type, &ro->out, &ro->e);
    } else if (!strcmp(ro->format, "speedscope")) {
        if (!speedscope_write) { ro->rc = herr_set(&ro->e, HE_UNSUPPORTED, "the speedscope writer is not in this build"); return; }
        ro->rc = speedscope_write(p, type, service, &ro->out, &ro->e);
    } else if (!strcmp(ro->format, "svg")) {
        flame_tree t;
        svg_opts so = {0};
        if (!svg_write) { ro->rc = herr_set(&ro->e, HE_UNSUPPORTED, "the SVG writer is not in this build"); return; }
        if (flame_init(&t)) { ro->rc = -ENOMEM; return; }
        ro->rc = flame_add_profile(&t, p, type, NULL, 0);
        if (!ro->rc) {
            flame_sort(&t);
            so.title = "hearth record";
            so.subtitle = service;
            so.units = "samples";
            ro->rc = svg_write(&t, &so, &ro->out);
        }
        flame_release(&t);
    }
}

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static int64_t mono_ms(void) { return mono_ns() / 1000000; }

int cmd_record(int argc, char **argv)
{
    long rate = 997, pid = 0;
    int64_t duration_ns = 30000000000LL, duration_ms;
    uint64_t stack_bytes = 16384;
    const char *format = NULL, *output = NULL, *event = NULL;
    int lines = 0, no_dwarf = 0, no_kernel = 0, use_hw = 0, status = 0, child_exited = 0, rc;
    char **cmd = NULL;
    herr e = {0};
    const opt_spec specs[] = {
        {"rate", 'F', OPT_INT, &rate, NULL, "HZ", "samples per second (default 997)", 1, 100000},
        {"format", 0, OPT_STRING, &format, NULL, "F", "pprof, folded, speedscope or svg", 0, 0},
        {"output", 'o', OPT_STRING, &output, NULL, "FILE", "where to write", 0, 0},
        {"lines", 0, OPT_FLAG, &lines, NULL, NULL, "folded output with 'function (file:line)' frames", 0, 0},
        {"pid", 'p', OPT_INT, &pid, NULL, "PID", "attach to a running process", 1, INT32_MAX},
        {"duration", 0, OPT_DURATION, &duration_ns, NULL, "D", "how long to attach (default 30s; e.g. 500ms, 1m)", 0, 0},
        {"no-dwarf", 0, OPT_FLAG, &no_dwarf, NULL, NULL, "frame pointer stacks only (no DWARF CFI unwinding)", 0, 0},
        {"no-kernel", 0, OPT_FLAG, &no_kernel, NULL, NULL, "user frames only", 0, 0},
        {"event", 0, OPT_STRING, &event, NULL, "E", "cpu-clock (default) or cycles (falls back to cpu-clock without a PMU)", 0, 0},
        {"stack-size", 0, OPT_SIZE, &stack_bytes, NULL, "SIZE", "user stack copied per sample for unwinding (default 16KiB)", 0, 65528},
    };
    const opt_cmd ocmd = {"record", record_usage, record_desc, specs, ARRAY_SIZE(specs), -1, 1};
    opts_args pos;

    if ((rc = opts_parse(&ocmd, argc, argv, &pos))) return opts_exit(rc);
    if (pos.n) cmd = pos.v;
    if (event) {
        if (strcmp(event, "cycles") && strcmp(event, "cpu-clock"))
            return opts_fail(&ocmd, "--event '%s' is not cycles or cpu-clock", event);
        use_hw = !strcmp(event, "cycles");
    }
    if ((duration_ms = duration_ns / 1000000) <= 0)
        return opts_fail(&ocmd, "--duration must be at least 1ms (e.g. 30s, 500ms, 2m)");
    if (!cmd && !pid)
        return opts_fail(&ocmd, "give a command after '--' or --pid PID ('hearth record --help' describes both)");
    if (cmd && pid) { fprintf(stderr, "hearth record: give either a command or --pid, not both\n"); return 2; }
    if (!format) format = guess_format(output);
    if (strcmp(format, "pprof") && strcmp(format, "folded") && strcmp(format, "speedscope") && strcmp(format, "svg")) {
        fprintf(stderr, "hearth record: unknown format '%s' (pprof, folded, speedscope, svg)\n", format);
        return 2;
    }
    if (!output) {
        output = !strcmp(format, "pprof") ? "hearth.pb.gz" : !strcmp(format, "svg") ? "hearth.svg"
               : !strcmp(format, "speedscope") ? "hearth.speedscope.json" : "-";
    }

    perf_opts po = {0};
    po.freq = (unsigned)rate;
    po.stack_bytes = no_dwarf ? 0 : (uint32_t)stack_bytes;
    po.no_kernel = no_kernel;
    po.use_hardware = use_hw;
    coll_opts co = {0};
    co.rate_hz = (unsigned)rate;
    co.single_group = 1;
    co.no_dwarf_unwind = no_dwarf;
    co.self = getpid();
    pid_t target = (pid_t)pid;
    co.pids = pid ? &target : NULL;
    co.n_pids = pid ? 1 : 0;

    int go_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    pid_t child = 0;
    perf_sampler ps;
    if (cmd && cmd[0]) {
        if (pipe2(go_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) { perror("hearth record: pipe"); return 1; }
        child = fork();
        if (child < 0) { perror("hearth record: fork"); return 1; }
        if (child == 0) {
            char c;
            close(go_pipe[1]);
            close(err_pipe[0]);
            if (read(go_pipe[0], &c, 1) != 1) _exit(127); /* the profiler gave up */
            execvp(cmd[0], cmd);
            int err = errno;
            if (write(err_pipe[1], &err, sizeof(err)) < 0) {}
            _exit(127);
        }
        close(go_pipe[0]);
        close(err_pipe[1]);
        po.pid = child;
        po.inherit = 1;
        po.enable_on_exec = 1;
    } else {
        if (kill(target, 0) != 0 && errno == ESRCH) { fprintf(stderr, "hearth record: process %d does not exist\n", (int)target); return 1; }
        po.pid = -1;
        po.pids = &target; /* its threads' events (inherit), not the whole host */
        po.n_pids = 1;
    }

    if (perf_open(&ps, &po, &e)) {
        fprintf(stderr, "hearth record: %s\n", e.msg);
        if (child > 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); }
        return 1;
    }
    if (e.msg[0]) fprintf(stderr, "hearth record: %s\n", e.msg);
    co.hardware = ps.hardware;
    collector *c = coll_new(&co);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int64_t start = now_ns();
    if (child > 0) {
        int err = 0;
        if (write(go_pipe[1], "g", 1) != 1) { perror("hearth record: cannot start the command"); }
        close(go_pipe[1]);
        if (read(err_pipe[0], &err, sizeof(err)) == (ssize_t)sizeof(err)) {
            fprintf(stderr, "hearth record: cannot run '%s': %s\n", cmd[0], strerror(err));
            waitpid(child, NULL, 0);
            perf_close(&ps);
            coll_free(c);
            return 1;
        }
        close(err_pipe[0]);
    } else {
        coll_scan_proc(c, target);
        perf_enable(&ps);
    }
    int64_t deadline = mono_ms() + duration_ms;
    for (;;) {
        int n_ev = perf_poll(&ps, 100, coll_handlers(), c);
        if (n_ev < 0) { fprintf(stderr, "hearth record: reading samples: %s\n", strerror(-n_ev)); break; }
        if (child > 0) {
            pid_t w = waitpid(child, &status, WNOHANG);
            if (w == child) { child_exited = 1; break; }
            if (stop_flag) kill(child, SIGINT);
        } else {
            if (stop_flag || mono_ms() >= deadline) break;
            if (kill(target, 0) != 0 && errno == ESRCH) break;
        }
    }
    perf_poll(&ps, 0, coll_handlers(), c); /* what is left in the rings */
    int64_t end = now_ns();
    coll_stats st;
    coll_get_stats(c, &st);
    perf_close(&ps);

    rec_out ro = {0};
    ro.format = format;
    ro.path = output;
    ro.lines = lines;
    buf_init(&ro.out, (size_t)1 << 30);
    int n = coll_flush(c, start, end, on_profile, &ro);
    coll_free(c);
    if (ro.rc) {
        fprintf(stderr, "hearth record: writing %s: %s\n", format, herr_msg(&ro.e, ro.rc));
        buf_release(&ro.out);
        return 1;
    }
    if (n == 0) fprintf(stderr, "hearth record: no samples were taken (did the command run long enough to be sampled at %ld Hz?)\n", rate);
    int wrc = buf_write_file(&ro.out, output);
    buf_release(&ro.out);
    if (wrc) { fprintf(stderr, "hearth record: cannot write '%s': %s\n", output, hearth_strerror(wrc)); return 1; }
    fprintf(stderr, "hearth record: %" PRIu64 " samples (%" PRIu64 " DWARF-unwound, %" PRIu64 " frame-pointer stacks, %" PRIu64 " lost), %s written to %s\n",
            st.samples - st.skipped, st.dwarf_stacks, st.fp_stacks, st.lost, format, output);
    if (child_exited) {
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    }
    return n == 0 ? 1 : 0;
}

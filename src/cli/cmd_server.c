/*
 * cmd_server.c: `hearth server`: flags (each also an environment variable,
 * HEARTH_<FLAG> with dashes as underscores; a flag beats its variable),
 * then runs the server until SIGTERM or SIGINT, which drain requests in
 * flight, close the store and exit 0.
 *
 * Signals are blocked before any thread starts, so every server thread
 * inherits the mask and the main thread alone takes them with sigwait().
 *
 * Memory: decoding a large profile allocates tens of MB of tables that are
 * freed when the request ends. With glibc's defaults, blocks that large are
 * mmap()ed and unmapped each time, so every request page-faults its tables
 * in again (about a fifth of decode time on go-large.cpu). The server keeps
 * freed memory for reuse instead (allocations up to 64 MiB from the heap,
 * up to 256 MiB of free heap kept), as a long-running process should.
 */
#include "core/common.h"

#include <malloc.h>
#include <signal.h>
#include <strings.h>

#include "cli/cmd.h"
#include "cli/opts.h"
#include "core/log.h"
#include "core/units.h"
#include "server/server.h"
#include "store/store.h"

static const char server_usage[] =
    "usage: hearth server [OPTIONS]\n\n"
    "Runs the profile database with its Pyroscope-compatible API (ingest, querier,\n"
    "legacy render) and the web UI. Every option is also read from the environment\n"
    "variable shown; the flag wins.\n";
static const char server_desc[] = "SIGTERM or SIGINT drain requests in flight, close the store and exit 0.\n";

int cmd_server(int argc, char **argv)
{
    server_config c;
    server *s;
    herr e = {0};
    sigset_t set;
    int sig, rc;

    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    server_config_default(&c);
    const char *auth_file = NULL, *fsync_s = NULL, *access_log = NULL, *log_level = NULL;
    int64_t retention = c.retention_ns, timeout = (int64_t)c.timeout_s * 1000000000LL,
            drain = (int64_t)c.drain_ms * 1000000LL;
    uint64_t max_body = c.max_body, max_dec = c.max_decompressed;
    long threads = c.threads, max_conn = c.max_connections, max_samples = c.max_samples,
         max_depth = c.max_stack_depth, max_labels = c.max_labels, max_nodes = c.max_nodes,
         max_series = (long)c.max_series;
    const opt_spec specs[] = {
        {"listen", 0, OPT_STRING, &c.listen, "HEARTH_LISTEN", "HOST:PORT", "address to serve on (default 0.0.0.0:4040)", 0, 0},
        {"data-dir", 0, OPT_STRING, &c.data_dir, "HEARTH_DATA_DIR", "DIR", "data directory, created if missing (default ./data)", 0, 0},
        {"retention", 0, OPT_DURATION, &retention, "HEARTH_RETENTION", "DURATION", "delete data older than this; 0 keeps all (default 30d)", 0, 0},
        {"auth-token-file", 0, OPT_STRING, &auth_file, "HEARTH_AUTH_TOKEN_FILE", "FILE",
         "tokens bound to tenants, one 'TOKEN TENANT[,TENANT]' per line; enables auth (default none)", 0, 0},
        {"max-body-size", 0, OPT_SIZE, &max_body, "HEARTH_MAX_BODY_SIZE", "SIZE", "largest request body on the wire (default 32MiB)", 1, 1L << 40},
        {"max-decompressed-size", 0, OPT_SIZE, &max_dec, "HEARTH_MAX_DECOMPRESSED_SIZE", "SIZE",
         "largest body or profile after gunzip (default 256MiB)", 1, 1L << 40},
        {"threads", 0, OPT_INT, &threads, "HEARTH_THREADS", "N", "HTTP worker threads (default 4)", 1, 1024},
        {"max-connections", 0, OPT_INT, &max_conn, "HEARTH_MAX_CONNECTIONS", "N", "concurrent connections (default 512)", 1, 1000000},
        {"timeout", 0, OPT_DURATION, &timeout, "HEARTH_TIMEOUT", "DURATION", "idle connection timeout (default 60s)", 0, 0},
        {"drain-timeout", 0, OPT_DURATION, &drain, "HEARTH_DRAIN_TIMEOUT", "DURATION",
         "on SIGTERM, wait this long for requests in flight (default 10s)", 0, 0},
        {"max-samples", 0, OPT_INT, &max_samples, "HEARTH_MAX_SAMPLES", "N", "samples per profile (default 1000000)", 1, 100000000},
        {"max-stack-depth", 0, OPT_INT, &max_depth, "HEARTH_MAX_STACK_DEPTH", "N",
         "frames per stack; deeper stacks are truncated at the root (default 1024)", 1, 65536},
        {"max-labels", 0, OPT_INT, &max_labels, "HEARTH_MAX_LABELS", "N", "label pairs per series (default 30)", 1, 60},
        {"max-nodes", 0, OPT_INT, &max_nodes, "HEARTH_MAX_NODES", "N", "default flame graph size (nodes) of query answers (default 8192)", 0, 1 << 20},
        {"max-series-per-tenant", 0, OPT_INT, &max_series, "HEARTH_MAX_SERIES_PER_TENANT", "N",
         "series a tenant may have; writes making new ones past it get 413 (default 100000)", 1, 100000000},
        {"fsync", 0, OPT_STRING, &fsync_s, "HEARTH_FSYNC", "always|batch|never", "WAL durability: always acknowledges after fsync (default always)", 0, 0},
        {"access-log", 0, OPT_STRING, &access_log, "HEARTH_ACCESS_LOG", "on|off", "log one line per request (default on)", 0, 0},
        {"log-level", 0, OPT_STRING, &log_level, "HEARTH_LOG_LEVEL", "LEVEL", "debug, info, warn or error (default info)", 0, 0},
    };
    const opt_cmd cmd = {"server", server_usage, server_desc, specs, ARRAY_SIZE(specs), 0, 0};
    opts_args pos;
    if ((rc = opts_parse(&cmd, argc, argv, &pos))) return opts_exit(rc);
    c.auth_token_file = auth_file && *auth_file ? auth_file : NULL;
    c.retention_ns = retention;
    c.timeout_s = (unsigned)MAX(timeout / 1000000000LL, 1);
    c.drain_ms = (unsigned)MIN(drain / 1000000LL, (int64_t)UINT_MAX);
    c.max_body = (size_t)max_body;
    c.max_decompressed = (size_t)max_dec;
    c.threads = (unsigned)threads;
    c.max_connections = (unsigned)max_conn;
    c.max_samples = (uint32_t)max_samples;
    c.max_stack_depth = (uint32_t)max_depth;
    c.max_labels = (uint32_t)max_labels;
    c.max_nodes = (uint32_t)max_nodes;
    c.max_series = (size_t)max_series;
    if (fsync_s) {
        int f = store_fsync_parse(fsync_s);
        if (f < 0) return opts_fail(&cmd, "--fsync: \"%s\" is not always, batch or never", fsync_s);
        c.fsync = f;
    }
    if (access_log)
        c.access_log = !(!strcasecmp(access_log, "off") || !strcmp(access_log, "0") || !strcasecmp(access_log, "false") ||
                         !strcasecmp(access_log, "no"));
    if (log_level) {
        int l = log_level_parse(log_level);
        if (l < 0) return opts_fail(&cmd, "--log-level: \"%s\" is not debug, info, warn or error", log_level);
        log_set_level((enum log_level)l);
    }

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if ((rc = server_start(&s, &c, &e))) {
        fprintf(stderr, "hearth server: %s\n", herr_msg(&e, rc));
        return 1;
    }
    fprintf(stderr, "hearth server: listening on http://%s (port %u), data in %s\n", c.listen, server_port(s), c.data_dir);
    do {
        rc = sigwait(&set, &sig);
    } while (rc == EINTR);
    log_info("signal %d received, shutting down", sig);
    server_stop(s);
    return 0;
}

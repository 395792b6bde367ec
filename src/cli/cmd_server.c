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
#include "core/log.h"
#include "core/units.h"
#include "server/server.h"
#include "store/store.h"

typedef struct opt {
    const char *flag;     /* without "--" */
    const char *env;
    const char *arg;      /* value name in --help, NULL for booleans */
    const char *help;
    const char *dflt;
} opt;

static const opt opts[] = {
    {"listen", "HEARTH_LISTEN", "HOST:PORT", "address to serve on", "0.0.0.0:4040"},
    {"data-dir", "HEARTH_DATA_DIR", "DIR", "data directory (created if missing)", "./data"},
    {"retention", "HEARTH_RETENTION", "DURATION", "delete data older than this (0 keeps all)", "30d"},
    {"auth-token-file", "HEARTH_AUTH_TOKEN_FILE", "FILE", "tokens bound to tenants, one 'TOKEN TENANT[,TENANT]' per line; enables auth", ""},
    {"max-body-size", "HEARTH_MAX_BODY_SIZE", "SIZE", "largest request body on the wire", "32MiB"},
    {"max-decompressed-size", "HEARTH_MAX_DECOMPRESSED_SIZE", "SIZE", "largest body or profile after gunzip", "256MiB"},
    {"threads", "HEARTH_THREADS", "N", "HTTP worker threads", "4"},
    {"max-connections", "HEARTH_MAX_CONNECTIONS", "N", "concurrent connections", "512"},
    {"timeout", "HEARTH_TIMEOUT", "DURATION", "idle connection timeout", "60s"},
    {"drain-timeout", "HEARTH_DRAIN_TIMEOUT", "DURATION", "on SIGTERM, wait this long for requests in flight", "10s"},
    {"max-samples", "HEARTH_MAX_SAMPLES", "N", "samples per profile", "1000000"},
    {"max-stack-depth", "HEARTH_MAX_STACK_DEPTH", "N", "frames per stack (deeper stacks are truncated at the root)", "1024"},
    {"max-labels", "HEARTH_MAX_LABELS", "N", "label pairs per series", "30"},
    {"max-nodes", "HEARTH_MAX_NODES", "N", "default flame graph size (nodes) of query answers", "8192"},
    {"max-series-per-tenant", "HEARTH_MAX_SERIES_PER_TENANT", "N", "series a tenant may have; writes making new ones past it get 413", "100000"},
    {"fsync", "HEARTH_FSYNC", "always|batch|never", "WAL durability: always acknowledges after fsync", "always"},
    {"access-log", "HEARTH_ACCESS_LOG", "on|off", "log one line per request", "on"},
    {"log-level", "HEARTH_LOG_LEVEL", "LEVEL", "debug, info, warn or error", "info"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hearth server [OPTIONS]\n\n"
               "Runs the profile database with its Pyroscope-compatible API (ingest, querier,\n"
               "legacy render) and the web UI. Every option is also read from the environment\n"
               "variable shown; the flag wins.\n\noptions:\n");
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s %s", opts[i].flag, opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-34s %s (default %s) [$%s]\n", left, opts[i].help, opts[i].dflt[0] ? opts[i].dflt : "none",
                opts[i].env);
    }
    fprintf(f, "\nSIGTERM or SIGINT drain requests in flight, close the store and exit 0.\n");
}

static int parse_uint(const char *name, const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || n > max) {
        fprintf(stderr, "hearth server: --%s: \"%s\" is not a number up to %llu\n", name, v, (unsigned long long)max);
        return -1;
    }
    *out = n;
    return 0;
}

static int apply(server_config *c, const char *name, const char *v)
{
    uint64_t u;
    int64_t ns;
    if (!strcmp(name, "listen")) c->listen = v;
    else if (!strcmp(name, "data-dir")) c->data_dir = v;
    else if (!strcmp(name, "auth-token-file")) c->auth_token_file = *v ? v : NULL;
    else if (!strcmp(name, "retention") || !strcmp(name, "timeout") || !strcmp(name, "drain-timeout")) {
        if (strcmp(v, "0") && parse_duration_ns(v, &ns)) {
            fprintf(stderr, "hearth server: --%s: \"%s\" is not a duration (e.g. 30d, 10s)\n", name, v);
            return -1;
        }
        if (!strcmp(v, "0")) ns = 0;
        if (!strcmp(name, "retention")) c->retention_ns = ns;
        else if (!strcmp(name, "timeout")) c->timeout_s = (unsigned)MAX(ns / 1000000000LL, 1);
        else c->drain_ms = (unsigned)(ns / 1000000LL);
    } else if (!strcmp(name, "max-body-size") || !strcmp(name, "max-decompressed-size")) {
        if (parse_size(v, &u) || u == 0 || u > ((uint64_t)1 << 40)) {
            fprintf(stderr, "hearth server: --%s: \"%s\" is not a size (e.g. 32MiB)\n", name, v);
            return -1;
        }
        if (!strcmp(name, "max-body-size")) c->max_body = (size_t)u;
        else c->max_decompressed = (size_t)u;
    } else if (!strcmp(name, "threads")) {
        if (parse_uint(name, v, 1024, &u) || !u) return -1;
        c->threads = (unsigned)u;
    } else if (!strcmp(name, "max-connections")) {
        if (parse_uint(name, v, 1000000, &u) || !u) return -1;
        c->max_connections = (unsigned)u;
    } else if (!strcmp(name, "max-samples")) {
        if (parse_uint(name, v, 100000000, &u) || !u) return -1;
        c->max_samples = (uint32_t)u;
    } else if (!strcmp(name, "max-stack-depth")) {
        if (parse_uint(name, v, 65536, &u) || !u) return -1;
        c->max_stack_depth = (uint32_t)u;
    } else if (!strcmp(name, "max-labels")) {
        if (parse_uint(name, v, 60, &u) || !u) return -1;
        c->max_labels = (uint32_t)u;
    } else if (!strcmp(name, "max-nodes")) {
        if (parse_uint(name, v, 1 << 20, &u)) return -1;
        c->max_nodes = (uint32_t)u;
    } else if (!strcmp(name, "max-series-per-tenant")) {
        if (parse_uint(name, v, 100000000, &u) || !u) return -1;
        c->max_series = (size_t)u;
    } else if (!strcmp(name, "fsync")) {
        int f = store_fsync_parse(v);
        if (f < 0) {
            fprintf(stderr, "hearth server: --fsync: \"%s\" is not always, batch or never\n", v);
            return -1;
        }
        c->fsync = f;
    } else if (!strcmp(name, "access-log")) {
        c->access_log = !(!strcasecmp(v, "off") || !strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no"));
    } else if (!strcmp(name, "log-level")) {
        int l = log_level_parse(v);
        if (l < 0) {
            fprintf(stderr, "hearth server: --log-level: \"%s\" is not debug, info, warn or error\n", v);
            return -1;
        }
        log_set_level((enum log_level)l);
    }
    return 0;
}

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
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
        const char *v = getenv(opts[i].env);
        if (v && apply(&c, opts[i].flag, v)) {
            fprintf(stderr, "hearth server: (from $%s)\n", opts[i].env);
            return 2;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[64];
        size_t k;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "hearth server: unexpected argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
        a += 2;
        k = strcspn(a, "=");
        if (k >= sizeof name) k = sizeof name - 1;
        memcpy(name, a, k);
        name[k] = 0;
        if (a[k] == '=') val = a + k + 1;
        for (k = 0; k < ARRAY_SIZE(opts) && strcmp(opts[k].flag, name); k++) {}
        if (k == ARRAY_SIZE(opts)) {
            fprintf(stderr, "hearth server: unknown option --%s\n", name);
            usage(stderr);
            return 2;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hearth server: --%s needs a value\n", name);
                return 2;
            }
            val = argv[++i];
        }
        if (apply(&c, name, val)) return 2;
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

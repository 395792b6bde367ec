/*
 * server.h: `hearth server`: the Pyroscope-compatible HTTP server over the
 * store (docs/server.md lists routes, flags and limits; docs/api.md the
 * wire contracts).
 */
#ifndef HEARTH_SERVER_SERVER_H
#define HEARTH_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct server_config {
    const char *listen;            /* "0.0.0.0:4040" */
    const char *data_dir;          /* "./data" */
    const char *auth_token_file;   /* NULL: no auth */
    int64_t retention_ns;          /* 30 d; 0 keeps everything */
    size_t max_body;               /* 32 MiB on the wire */
    size_t max_decompressed;       /* 256 MiB after gunzip (bodies and pprof payloads) */
    unsigned threads;              /* HTTP pool, default 4 */
    unsigned max_connections;      /* 512 */
    unsigned timeout_s;            /* idle connection timeout, 60 */
    unsigned drain_ms;             /* SIGTERM: wait this long for requests in flight, 10000 */
    uint32_t max_samples;          /* per profile, 1M */
    uint32_t max_stack_depth;      /* deeper stacks are truncated, 1024 */
    uint32_t max_labels;           /* label pairs per series, 30 */
    uint32_t max_nodes;            /* default flame graph max nodes, 8192 */
    size_t max_series;             /* per tenant; new series past it are refused, 100000 */
    int fsync;                     /* enum store_fsync, default always */
    int access_log;                /* 1 */
    uint64_t wal_fail_after_bytes; /* test hook, 0: see store_opts.wal_fail_after_bytes */
} server_config;

void server_config_default(server_config *c);

typedef struct server server;

/*
 * Opens the store, loads the auth file and starts serving. 0 or an error
 * with e set (store locked, port in use, bad auth file, ...).
 */
int server_start(server **out, const server_config *c, herr *e);
/* The port bound (useful with ":0"). */
unsigned server_port(const server *s);
/* Writes the store's in-memory head to blocks now (tests; the store does it on its own). 0 or an error. */
int server_flush(server *s, herr *e);
/* Stops accepting, drains requests in flight, syncs and closes the store. */
void server_stop(server *s);

#endif

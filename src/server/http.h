/*
 * http.h: the server's HTTP layer over libmicrohttpd: a bounded thread pool,
 * connection timeouts, keep-alive, request bodies collected under a cap and
 * gunzipped (Content-Encoding: gzip) under a second cap, a static route
 * table, tenant resolution and auth, an access log line and per-route
 * metrics for every request.
 *
 * Handlers run synchronously on a pool thread with the whole (decoded) body
 * in memory; they fill an http_resp and return. A handler must be reentrant:
 * several run at once on different threads.
 */
#ifndef HEARTH_SERVER_HTTP_H
#define HEARTH_SERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct MHD_Connection;
struct http_server;

typedef struct http_req {
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* URL path, no query string */
    struct MHD_Connection *conn;
    buf body;                    /* request body, decoded (gzip removed) */
    size_t wire_bytes;           /* body bytes as received */
    const char *tenant;          /* resolved tenant (routes with HTTP_TENANT) */
    struct http_server *srv;
    void *ctx;                   /* the route's ctx */
} http_req;

typedef struct http_resp {
    int status;                  /* 200 unless set */
    const char *content_type;    /* static string; default text/plain */
    const char *cache_control;   /* static string or NULL */
    buf body;
} http_resp;

typedef void (*http_handler)(http_req *rq, http_resp *rs);

enum http_route_flags {
    HTTP_PREFIX = 1,  /* path matches as a prefix */
    HTTP_TENANT = 2,  /* resolve X-Scope-OrgID and check auth before calling */
    HTTP_GET = 4,     /* GET/HEAD allowed */
    HTTP_POST = 8,    /* POST allowed */
    HTTP_CONNECT = 16 /* a Connect RPC: errors before the handler are Connect JSON */
};

typedef struct http_route {
    const char *path;
    int flags;
    http_handler fn;
    const char *name;  /* metrics label; defaults to path */
} http_route;

/* Auth callback: returns 0 and sets *tenant (static or owned by the checker
 * for the server's life), 401 or 403 with msg filled. */
typedef int (*http_auth_fn)(void *arg, const char *authorization, const char *org_id,
                            const char **tenant, char *msg, size_t msg_size);

typedef struct http_opts {
    const char *listen;          /* "host:port"; port 0 picks a free one */
    unsigned threads;            /* pool size (default 4) */
    unsigned max_connections;    /* default 512 */
    unsigned timeout_s;          /* idle connection timeout (default 60) */
    size_t max_body;             /* bytes on the wire (default 32 MiB) */
    size_t max_decompressed;     /* after gunzip (default 8x max_body, >= 256 MiB) */
    int access_log;              /* 1 logs every request */
    http_auth_fn auth;           /* NULL: no auth, tenant from X-Scope-OrgID */
    void *auth_arg;
} http_opts;

typedef struct http_server http_server;

/*
 * Starts listening and serving routes (an array ended by a NULL path; kept
 * by reference). ctx is passed to handlers as rq->ctx. Returns 0 or an error
 * with e set (address in use, bad address).
 */
int http_start(http_server **out, const http_opts *o, const http_route *routes, void *ctx, herr *e);
/* The port actually bound. */
unsigned http_port(const http_server *s);
/* Stops accepting, waits up to drain_ms for in-flight requests, then stops. */
void http_stop(http_server *s, unsigned drain_ms);

/* Request accessors; strings live as long as the request. NULL if absent. */
const char *http_arg(const http_req *rq, const char *name);
const char *http_header(const http_req *rq, const char *name);

/* Sets status, text/plain and a one-line message (a newline is added). */
void http_error(http_resp *rs, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Maps a hearth error code to an HTTP status (HE_TOOBIG -> 413, bad input -> 400, ...). */
int http_status_for(int code);

/* Writes the Prometheus text of request metrics (by route and code). */
void http_metrics_write(http_server *s, buf *out);

/* Counts of requests in flight (for draining and tests). */
unsigned http_inflight(const http_server *s);

#endif

/*
 * http.c: libmicrohttpd glue (see http.h).
 *
 * Request life: MHD calls access() first with no body (we allocate the
 * request state; an oversized Content-Length gets its 413 at once if the
 * client waits for "100 Continue" or the body is past drain_limit(), else the
 * body is read and discarded like an oversized chunked one), then
 * once per body chunk (appended to a buf capped at max_body; past the cap we
 * keep discarding and answer 413 at the end, so the client gets a reply
 * rather than a reset), then a last time with no data: we gunzip if asked,
 * route, check tenant/auth, run the handler and queue its response. The
 * completion callback logs the access line, records metrics and frees the
 * state.
 *
 * Metrics: per route a table of (status code -> count) and one latency
 * histogram, under one mutex (a few hundred ns per request).
 */
#include "core/common.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/compress.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "server/connect.h"
#include "server/http.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

#define N_BUCKETS 12
static const double bucket_s[N_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define MAX_CODES 16

typedef struct route_stats {
    int codes[MAX_CODES];
    uint64_t counts[MAX_CODES];
    int n_codes;
    uint64_t hist[N_BUCKETS + 1];
    double sum_s;
    uint64_t n;
} route_stats;

struct http_server {
    struct MHD_Daemon *d;
    http_opts o;
    const http_route *routes;
    size_t n_routes;
    void *ctx;
    unsigned port;
    pthread_mutex_t mu;
    route_stats *stats;     /* n_routes + 1 (the last is "unmatched") */
    atomic_uint inflight;
};

typedef struct req_state {
    http_req rq;
    http_resp rs;
    int route;              /* index or -1 */
    int too_big;            /* body passed the cap */
    int answered;           /* a response was queued early */
    int64_t start_ns;
    size_t bytes_out;
} req_state;

/* ---- routing ---- */

static int route_find(const http_server *s, const char *path)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const http_route *r = &s->routes[i];
        if (r->flags & HTTP_PREFIX) {
            if (!strncmp(path, r->path, strlen(r->path))) return (int)i;
        } else if (!strcmp(path, r->path)) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- public helpers ---- */

const char *http_arg(const http_req *rq, const char *name)
{
    if (!rq->conn) return NULL;  /* a request built by a test, without a connection */
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const http_req *rq, const char *name)
{
    if (!rq->conn) return NULL;
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

void http_error(http_resp *rs, int status, const char *fmt, ...)
{
    va_list ap;
    rs->status = status;
    rs->content_type = "text/plain; charset=utf-8";
    buf_reset(&rs->body);
    va_start(ap, fmt);
    (void)buf_vprintf(&rs->body, fmt, ap);
    va_end(ap);
    (void)buf_putc(&rs->body, '\n');
}

int http_status_for(int code)
{
    switch (code) {
    case 0: return 200;
    case HE_TOOBIG: return 400;   /* limits on content; 413 is only sent for the body size itself */
    case HE_NOTFOUND: return 404;
    case HE_UNSUPPORTED: return 415;
    case -ENOMEM: return 503;
    case -ENOSPC: return 507;
    case -EIO: return 500;
    default: return code <= HE_BASE && code > HE_LAST ? 400 : 500;
    }
}

unsigned http_port(const http_server *s) { return s->port; }
unsigned http_inflight(const http_server *s) { return atomic_load(&((http_server *)s)->inflight); }

/* ---- metrics ---- */

static void stats_record(http_server *s, int route, int status, double secs)
{
    route_stats *st = &s->stats[route < 0 ? (int)s->n_routes : route];
    int i, b;
    pthread_mutex_lock(&s->mu);
    for (i = 0; i < st->n_codes && st->codes[i] != status; i++) {}
    if (i == st->n_codes && st->n_codes < MAX_CODES) st->codes[st->n_codes++] = status;
    if (i < MAX_CODES) st->counts[i]++;
    for (b = 0; b < N_BUCKETS && secs > bucket_s[b]; b++) {}
    st->hist[b]++;
    st->sum_s += secs;
    st->n++;
    pthread_mutex_unlock(&s->mu);
}

static const char *route_name(const http_server *s, size_t i)
{
    if (i >= s->n_routes) return "unmatched";
    return s->routes[i].name ? s->routes[i].name : s->routes[i].path;
}

void http_metrics_write(http_server *s, buf *out)
{
    buf_puts(out, "# HELP hearth_http_requests_total HTTP requests by route and status code.\n"
                  "# TYPE hearth_http_requests_total counter\n");
    pthread_mutex_lock(&s->mu);
    for (size_t r = 0; r <= s->n_routes; r++) {
        route_stats *st = &s->stats[r];
        for (int i = 0; i < st->n_codes; i++)
            buf_printf(out, "hearth_http_requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                       route_name(s, r), st->codes[i], st->counts[i]);
    }
    buf_puts(out, "# HELP hearth_http_request_duration_seconds HTTP request latency by route.\n"
                  "# TYPE hearth_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= s->n_routes; r++) {
        route_stats *st = &s->stats[r];
        uint64_t cum = 0;
        if (!st->n) continue;
        for (int b = 0; b < N_BUCKETS; b++) {
            cum += st->hist[b];
            buf_printf(out, "hearth_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                       route_name(s, r), bucket_s[b], cum);
        }
        buf_printf(out, "hearth_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                   route_name(s, r), st->n);
        buf_printf(out, "hearth_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_name(s, r), st->sum_s);
        buf_printf(out, "hearth_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n", route_name(s, r), st->n);
    }
    pthread_mutex_unlock(&s->mu);
    buf_printf(out, "# HELP hearth_http_inflight_requests Requests being served.\n"
                    "# TYPE hearth_http_inflight_requests gauge\nhearth_http_inflight_requests %u\n",
               http_inflight(s));
}

/* ---- request handling ---- */

/* Large answers are gzipped for clients that accept it (flame graphs compress ~10x). */
#define GZIP_MIN_BYTES (32 * 1024)

static int wants_gzip(struct MHD_Connection *c)
{
    const char *ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    return ae && strcasestr(ae, "gzip") != NULL;
}

static MHD_RESULT queue(struct MHD_Connection *c, req_state *st)
{
    http_resp *rs = &st->rs;
    size_t len = 0;
    char *data;
    struct MHD_Response *r;
    MHD_RESULT ret;
    int gzipped = 0;
    if (rs->body.len >= GZIP_MIN_BYTES && rs->status == 200 && wants_gzip(c)) {
        buf gz;
        buf_init(&gz, 0);  /* bounded by deflateBound(body) */
        if (!gz_compress(rs->body.data, rs->body.len, 1, &gz) && gz.len < rs->body.len) {
            buf_release(&rs->body);
            rs->body = gz;
            gzipped = 1;
        } else {
            buf_release(&gz);
        }
    }
    data = buf_detach(&rs->body, &len);
    r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    st->bytes_out = len;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rs->content_type ? rs->content_type : "text/plain; charset=utf-8");
    if (rs->cache_control) MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, rs->cache_control);
    if (gzipped) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    /* lets a browser on the web UI ask for basic-auth credentials (token as password) */
    if (rs->status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"hearth\", charset=\"UTF-8\"");
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    ret = MHD_queue_response(c, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    st->answered = 1;
    return ret;
}

/* Tenant IDs as Cortex/Pyroscope accept them: safe characters, <= 150 bytes. */
static int tenant_valid(const char *t)
{
    size_t n = strlen(t);
    if (!n || n > 150 || !strcmp(t, ".") || !strcmp(t, "..")) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!-_.*'()", ch)))
            return 0;
    }
    return 1;
}

/* An error raised before the handler runs: text, or Connect JSON on RPC routes. */
static void fail(http_resp *rs, int connect, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(http_resp *rs, int connect, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!connect) {
        http_error(rs, status, "%s", msg);
        return;
    }
    connect_error(rs, connect_code_for_http(status), "%s", msg);
    rs->status = status;
}

static void dispatch(http_server *s, req_state *st)
{
    http_req *rq = &st->rq;
    http_resp *rs = &st->rs;
    const http_route *r;
    const char *enc;

    if (st->route < 0) {
        http_error(rs, 404, "no route for %s %s", rq->method, rq->path);
        return;
    }
    r = &s->routes[st->route];
    int cn = (r->flags & HTTP_CONNECT) != 0;
    int is_get = !strcmp(rq->method, "GET") || !strcmp(rq->method, "HEAD");
    int is_post = !strcmp(rq->method, "POST");
    if (!((is_get && (r->flags & HTTP_GET)) || (is_post && (r->flags & HTTP_POST)))) {
        fail(rs, cn, 405, "method %s not allowed on %s", rq->method, rq->path);
        return;
    }
    if (st->too_big) {
        fail(rs, cn, 413, "request body larger than the limit of %zu bytes (--max-body-size)", s->o.max_body);
        return;
    }
    if (r->flags & HTTP_TENANT) {
        const char *org = http_header(rq, "X-Scope-OrgID");
        if (org && !tenant_valid(org)) {
            fail(rs, cn, 400, "invalid X-Scope-OrgID \"%.64s\": use 1-150 of [A-Za-z0-9!-_.*'()]", org);
            return;
        }
        rq->tenant = org ? org : "anonymous";
        if (s->o.auth) {
            char msg[256] = "";
            int code = s->o.auth(s->o.auth_arg, http_header(rq, "Authorization"), org, &rq->tenant, msg, sizeof msg);
            if (code) {
                fail(rs, cn, code, "%s", msg);
                return;
            }
        }
    }
    enc = http_header(rq, "Content-Encoding");
    if (enc && rq->body.len && strcasecmp(enc, "identity")) {
        if (!strcasecmp(enc, "gzip") || !strcasecmp(enc, "x-gzip")) {
            buf out;
            herr e = {0};
            int rc;
            buf_init(&out, s->o.max_decompressed);
            rc = gz_decompress(rq->body.data, rq->body.len, &out, &e);
            if (rc) {
                buf_release(&out);
                if (rc == HE_TOOBIG)
                    fail(rs, cn, 413, "gzip body decompresses past the limit of %zu bytes", s->o.max_decompressed);
                else
                    fail(rs, cn, 400, "Content-Encoding gzip: %s", herr_msg(&e, rc));
                return;
            }
            buf_release(&rq->body);
            rq->body = out;
        } else {
            fail(rs, cn, 415, "Content-Encoding \"%.32s\" is not supported (use gzip or identity)", enc);
            return;
        }
    }
    rs->status = 200;
    r->fn(rq, rs);
}

/* How much of an oversized body we read and discard so the client gets the
 * 413 instead of a connection reset; past this we close the connection. */
static size_t drain_limit(const http_server *s)
{
    return 2 * s->o.max_body + (1u << 20);
}

static MHD_RESULT access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                            const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    http_server *s = cls;
    req_state *st = *con_cls;

    if (!st) {
        const char *cl;
        st = xcalloc(1, sizeof *st);
        st->start_ns = mono_ns();
        st->rq.method = method;
        st->rq.path = url;
        st->rq.conn = c;
        st->rq.srv = s;
        st->rq.ctx = s->ctx;
        st->route = route_find(s, url);
        buf_init(&st->rq.body, s->o.max_body);
        buf_init(&st->rs.body, 0);
        st->rs.status = 200;
        *con_cls = st;
        atomic_fetch_add(&s->inflight, 1);
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (*end || v > s->o.max_body) {
                /* Answer now when the client waits for "100 Continue" (it has
                 * sent no body) or the body is too large to be worth reading.
                 * Otherwise the body is already on its way: closing on unread
                 * data makes the kernel send a reset that destroys our 413 in
                 * the client's receive buffer, so read and discard it, then
                 * answer (dispatch() sees too_big). */
                const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
                if (*end || (expect && strcasestr(expect, "100-continue")) || v > drain_limit(s)) {
                    fail(&st->rs, st->route >= 0 && (s->routes[st->route].flags & HTTP_CONNECT), 413,
                         "request body of %.20s bytes is larger than the limit of %zu bytes (--max-body-size)", cl,
                         s->o.max_body);
                    return queue(c, st);
                }
                st->too_big = 1;
            }
        }
        return MHD_YES;
    }
    if (st->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        st->rq.wire_bytes += *upload_size;
        if (!st->too_big && buf_append(&st->rq.body, upload_data, *upload_size)) st->too_big = 1;
        *upload_size = 0;
        /* a chunked body far past the cap: stop reading it (closes the connection) */
        if (st->too_big && st->rq.wire_bytes > drain_limit(s)) return MHD_NO;
        return MHD_YES;
    }
    dispatch(s, st);
    return queue(c, st);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    req_state *st = *con_cls;
    double secs;
    if (!st) return;
    secs = (double)(mono_ns() - st->start_ns) / 1e9;
    stats_record(s, st->route, st->answered ? st->rs.status : 499, secs);
    if (s->o.access_log) {
        char addr[INET6_ADDRSTRLEN] = "-";
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
            else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
        }
        log_info("access client=%s method=%s path=%s status=%d tenant=%s in=%zu out=%zu dur_ms=%.3f%s", addr,
                 st->rq.method, st->rq.path, st->answered ? st->rs.status : 499,
                 st->rq.tenant ? st->rq.tenant : "-", st->rq.wire_bytes, st->bytes_out, secs * 1e3,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    }
    buf_release(&st->rq.body);
    buf_release(&st->rs.body);
    free(st);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

/* "host:port", ":port", "[v6addr]:port"; hosts: IPv4 literals, localhost, 0.0.0.0 or "*", IPv6 literals. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6, herr *e)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    char *end;
    unsigned long port;
    size_t hl;
    memset(ss, 0, sizeof *ss);
    *v6 = 0;
    if (!colon) return herr_set(e, HE_USAGE, "listen address \"%s\" needs a port (host:port or :port)", listen);
    hl = (size_t)(colon - listen);
    if (hl >= sizeof host) return herr_set(e, HE_USAGE, "listen host too long in \"%s\"", listen);
    memcpy(host, listen, hl);
    host[hl] = 0;
    port = strtoul(colon + 1, &end, 10);
    if (*end || colon[1] == 0 || port > 65535)
        return herr_set(e, HE_USAGE, "bad port in listen address \"%s\"", listen);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *sa6 = (struct sockaddr_in6 *)ss;
        host[hl - 1] = 0;
        sa6->sin6_family = AF_INET6;
        sa6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &sa6->sin6_addr) != 1)
            return herr_set(e, HE_USAGE, "listen host \"%s\" is not an IPv6 address", host + 1);
        *v6 = 1;
        return 0;
    }
    {
        struct sockaddr_in *sa = (struct sockaddr_in *)ss;
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        if (!hl || !strcmp(host, "0.0.0.0") || !strcmp(host, "*")) {
            sa->sin_addr.s_addr = htonl(INADDR_ANY);
        } else if (!strcmp(host, "localhost")) {
            sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
            return herr_set(e, HE_USAGE, "listen host \"%s\" is not an IPv4 address (use [addr]:port for IPv6)", host);
        }
    }
    return 0;
}

int http_start(http_server **out, const http_opts *o, const http_route *routes, void *ctx, herr *e)
{
    http_server *s = xcalloc(1, sizeof *s);
    struct sockaddr_storage sa;
    const union MHD_DaemonInfo *info;
    int rc, v6 = 0;

    s->o = *o;
    if (!s->o.threads) s->o.threads = 4;
    if (!s->o.max_connections) s->o.max_connections = 512;
    if (!s->o.timeout_s) s->o.timeout_s = 60;
    if (!s->o.max_body) s->o.max_body = 32u << 20;
    if (!s->o.max_decompressed) s->o.max_decompressed = MAX(s->o.max_body * 8, (size_t)256 << 20);
    if (!s->o.listen) s->o.listen = "0.0.0.0:4040";
    rc = parse_listen(s->o.listen, &sa, &v6, e);
    if (rc) {
        free(s);
        return rc;
    }
    s->routes = routes;
    while (routes[s->n_routes].path) s->n_routes++;
    s->stats = xcalloc(s->n_routes + 1, sizeof *s->stats);
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                                (v6 ? MHD_USE_IPv6 : 0),
                            0, NULL, NULL, access_cb, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                            MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                            MHD_OPTION_END);
    if (!s->d) {
        rc = herr_set(e, -EADDRINUSE, "cannot listen on %s: address in use or not permitted", s->o.listen);
        pthread_mutex_destroy(&s->mu);
        free(s->stats);
        free(s);
        return rc;
    }
    info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : ntohs(((struct sockaddr_in *)&sa)->sin_port);
    *out = s;
    return 0;
}

void http_stop(http_server *s, unsigned drain_ms)
{
    int64_t deadline;
    MHD_socket fd;
    if (!s) return;
    fd = MHD_quiesce_daemon(s->d);
    deadline = mono_ns() + (int64_t)drain_ms * 1000000;
    while (atomic_load(&s->inflight) && mono_ns() < deadline) usleep(10000);
    MHD_stop_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    pthread_mutex_destroy(&s->mu);
    free(s->stats);
    free(s);
}

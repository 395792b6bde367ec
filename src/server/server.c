/*
 * server.c: assembles `hearth server`: opens the store, loads auth, builds
 * the route table and starts the HTTP layer; serves /ready, /healthz,
 * /metrics and the embedded web UI; keeps per-tenant ingest counters.
 *
 * Invariants: the store is open for the whole life of the HTTP server
 * (started after store_open, stopped before store_close), so handlers never
 * see a closed store; shutdown drains requests in flight first, so every
 * acknowledged write has been made durable by store_ingest before exit,
 * then flushes the head to blocks (the WAL covers a failed flush).
 */
#include "core/common.h"

#include <strings.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "server/connect.h"
#include "server/srv.h"
#include "server/ui_assets.h"

/* The UI table is generated into the hearth binary only; tests link without it. */
extern const struct ui_asset ui_assets[] __attribute__((weak));

static const double hist_s[12] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

void server_config_default(server_config *c)
{
    memset(c, 0, sizeof *c);
    c->listen = "0.0.0.0:4040";
    c->data_dir = "./data";
    c->retention_ns = 30LL * 24 * 3600 * 1000000000LL;
    c->max_body = 32u << 20;
    c->max_decompressed = 256u << 20;
    c->threads = 4;
    c->max_connections = 512;
    c->timeout_s = 60;
    c->drain_ms = 10000;
    c->max_samples = 1000000;
    c->max_stack_depth = 1024;
    c->max_labels = 30;
    c->max_nodes = 8192;
    c->max_series = 100000;
    c->fsync = STORE_FSYNC_ALWAYS;
    c->access_log = 1;
}

void srv_prof_limits(const server *s, prof_limits *l)
{
    prof_limits_default(l);
    l->max_samples = s->cfg.max_samples;
    l->max_stack_depth = s->cfg.max_stack_depth;
}

static tenant_stat *tenant_slot(server *s, const char *tenant)
{
    for (size_t i = 0; i < s->n_tenants; i++)
        if (!strcmp(s->tenants[i].name, tenant)) return &s->tenants[i];
    if (s->n_tenants >= SRV_MAX_TENANTS) return NULL;
    snprintf(s->tenants[s->n_tenants].name, sizeof s->tenants[0].name, "%s", tenant);
    return &s->tenants[s->n_tenants++];
}

void srv_count_ingest(server *s, const char *tenant, uint64_t profiles, uint64_t samples, uint64_t bytes)
{
    tenant_stat *t;
    pthread_mutex_lock(&s->mu);
    if ((t = tenant_slot(s, tenant))) {
        t->profiles += profiles;
        t->samples += samples;
        t->bytes += bytes;
    }
    pthread_mutex_unlock(&s->mu);
}

void srv_count_reject(server *s, const char *tenant)
{
    tenant_stat *t;
    pthread_mutex_lock(&s->mu);
    if ((t = tenant_slot(s, tenant ? tenant : "anonymous"))) t->rejected++;
    pthread_mutex_unlock(&s->mu);
}

int srv_store_ingest(server *s, const char *tenant, const store_label *labels, size_t n,
                     const profile *p, int64_t time_ns, int64_t duration_ns, herr *e)
{
    store_item it = {labels, n, p, time_ns, duration_ns};
    return srv_store_ingest_batch(s, tenant, &it, 1, e);
}

int srv_store_ingest_batch(server *s, const char *tenant, const store_item *items, size_t n, herr *e)
{
    int64_t t0 = mono_ns();
    int rc = store_ingest_batch(s->st, tenant, items, n, e);
    double secs = (double)(mono_ns() - t0) / 1e9;
    size_t b;
    for (b = 0; b < ARRAY_SIZE(hist_s) && secs > hist_s[b]; b++) {}
    pthread_mutex_lock(&s->mu);
    s->ingest_hist[b]++;
    s->ingest_sum_s += secs;
    s->ingest_n++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- operational routes ---- */

static void h_ready(http_req *rq, http_resp *rs)
{
    buf_puts(&rs->body, "ready\n");
}

static void h_healthz(http_req *rq, http_resp *rs)
{
    buf_puts(&rs->body, "ok\n");
}

static void h_metrics(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    store_stats st;
    buf *o = &rs->body;
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
    http_metrics_write(s->http, o);
    pthread_mutex_lock(&s->mu);
    buf_puts(o, "# HELP hearth_ingested_profiles_total Profiles accepted, by tenant.\n# TYPE hearth_ingested_profiles_total counter\n");
    for (size_t i = 0; i < s->n_tenants; i++)
        buf_printf(o, "hearth_ingested_profiles_total{tenant=\"%s\"} %" PRIu64 "\n", s->tenants[i].name, s->tenants[i].profiles);
    buf_puts(o, "# HELP hearth_ingested_samples_total Samples accepted, by tenant.\n# TYPE hearth_ingested_samples_total counter\n");
    for (size_t i = 0; i < s->n_tenants; i++)
        buf_printf(o, "hearth_ingested_samples_total{tenant=\"%s\"} %" PRIu64 "\n", s->tenants[i].name, s->tenants[i].samples);
    buf_puts(o, "# HELP hearth_ingested_bytes_total Request body bytes accepted, by tenant.\n# TYPE hearth_ingested_bytes_total counter\n");
    for (size_t i = 0; i < s->n_tenants; i++)
        buf_printf(o, "hearth_ingested_bytes_total{tenant=\"%s\"} %" PRIu64 "\n", s->tenants[i].name, s->tenants[i].bytes);
    buf_puts(o, "# HELP hearth_ingest_rejected_total Ingest requests refused, by tenant.\n# TYPE hearth_ingest_rejected_total counter\n");
    for (size_t i = 0; i < s->n_tenants; i++)
        buf_printf(o, "hearth_ingest_rejected_total{tenant=\"%s\"} %" PRIu64 "\n", s->tenants[i].name, s->tenants[i].rejected);
    buf_puts(o, "# HELP hearth_store_ingest_duration_seconds Time in the store per ingest call (one per request batch): WAL append, fsync (group commit), head insert.\n"
                "# TYPE hearth_store_ingest_duration_seconds histogram\n");
    {
        uint64_t cum = 0;
        for (size_t b = 0; b < ARRAY_SIZE(hist_s); b++) {
            cum += s->ingest_hist[b];
            buf_printf(o, "hearth_store_ingest_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", hist_s[b], cum);
        }
        buf_printf(o, "hearth_store_ingest_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", s->ingest_n);
        buf_printf(o, "hearth_store_ingest_duration_seconds_sum %.6f\nhearth_store_ingest_duration_seconds_count %" PRIu64 "\n",
                   s->ingest_sum_s, s->ingest_n);
    }
    pthread_mutex_unlock(&s->mu);
    if (!store_get_stats(s->st, &st)) {
        struct { const char *name, *help; uint64_t v; } g[] = {
            {"hearth_store_blocks", "Blocks on disk.", st.n_blocks},
            {"hearth_store_damaged_blocks", "Blocks skipped because they failed checks.", st.n_damaged_blocks},
            {"hearth_store_series", "Series in the store.", st.n_series},
            {"hearth_store_profiles", "Profiles in the store.", st.n_profiles},
            {"hearth_store_samples", "Samples in the store.", st.n_samples},
            {"hearth_store_head_profiles", "Profiles in the in-memory head.", st.head_profiles},
            {"hearth_store_head_samples", "Samples in the in-memory head.", st.head_samples},
            {"hearth_store_head_bytes", "Bytes held by the in-memory head.", st.head_bytes},
            {"hearth_store_head_series", "Series in the in-memory head (counted once per tenant and time partition).", st.head_series},
            {"hearth_store_wal_bytes", "Bytes in the write-ahead log.", st.wal_bytes},
            {"hearth_store_index_bytes", "Bytes of label index on disk.", st.bytes_index},
            {"hearth_store_symbol_bytes", "Bytes of symbols on disk.", st.bytes_symbols},
            {"hearth_store_sample_bytes", "Bytes of samples on disk.", st.bytes_samples},
            {"hearth_store_flushes_total", "Head flushes since start.", st.flushes},
            {"hearth_store_compactions_total", "Compactions since start.", st.compactions},
            {"hearth_store_blocks_deleted_total", "Blocks deleted by retention or compaction since start.", st.blocks_deleted},
            {"hearth_store_wal_fsync_failures_total", "WAL fdatasync calls that failed since start (the store then refuses writes).", st.wal_fsync_failures},
        };
        for (size_t i = 0; i < ARRAY_SIZE(g); i++)
            buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", g[i].name, g[i].help, g[i].name,
                       strstr(g[i].name, "_total") ? "counter" : "gauge", g[i].name, g[i].v);
        uint64_t cum = 0;
        buf_puts(o, "# HELP hearth_store_wal_fsync_duration_seconds Duration of each WAL fdatasync (group commit, batch timer, segment rotation).\n"
                    "# TYPE hearth_store_wal_fsync_duration_seconds histogram\n");
        for (size_t b = 0; b < STORE_FSYNC_BUCKETS; b++) {
            cum += st.wal_fsync_bucket[b];
            buf_printf(o, "hearth_store_wal_fsync_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", store_fsync_bounds_s[b], cum);
        }
        buf_printf(o, "hearth_store_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                      "hearth_store_wal_fsync_duration_seconds_sum %.9f\n"
                      "hearth_store_wal_fsync_duration_seconds_count %" PRIu64 "\n",
                   st.wal_fsyncs, st.wal_fsync_seconds, st.wal_fsyncs);
    }
    buf_printf(o, "# HELP hearth_uptime_seconds Seconds since the server started.\n# TYPE hearth_uptime_seconds gauge\n"
                  "hearth_uptime_seconds %.3f\n", (double)(mono_ns() - s->started_ns) / 1e9);
}

static const char *ctype_for(const char *path)
{
    static const struct { const char *ext, *type; } t[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "application/javascript; charset=utf-8"},
        {".mjs", "application/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
        {".ico", "image/x-icon"}, {".woff2", "font/woff2"}, {".woff", "font/woff"}, {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
    };
    const char *dot = strrchr(path, '.');
    if (dot)
        for (size_t i = 0; i < ARRAY_SIZE(t); i++)
            if (!strcasecmp(dot, t[i].ext)) return t[i].type;
    return "application/octet-stream";
}

static void h_ui(http_req *rq, http_resp *rs)
{
    const char *path = rq->path;
    const struct ui_asset *a = NULL;
    if (!ui_assets) {
        http_error(rs, 404, "this build has no web UI embedded");
        return;
    }
    if (!strcmp(path, "/")) path = "/index.html";
    for (size_t i = 0; ui_assets[i].path; i++)
        if (!strcmp(ui_assets[i].path, path)) a = &ui_assets[i];
    /* client-side routes (no extension) get the app */
    if (!a && !strchr(strrchr(path, '/') ? strrchr(path, '/') : path, '.')) {
        for (size_t i = 0; ui_assets[i].path; i++)
            if (!strcmp(ui_assets[i].path, "/index.html")) a = &ui_assets[i];
        path = "/index.html";
    }
    if (!a) {
        http_error(rs, 404, "no such file: %s", rq->path);
        return;
    }
    rs->content_type = ctype_for(path);
    rs->cache_control = !strcmp(path, "/index.html") ? "no-cache" : "public, max-age=3600";
    buf_append(&rs->body, a->data, a->size);
}

/* settings.v1.SettingsService/Get: tenant settings; hearth has none (Grafana's profiles app asks). */
static void h_settings_get(http_req *rq, http_resp *rs)
{
    int json = connect_is_json(rq);
    rs->content_type = json ? "application/json" : "application/proto";
    if (json) buf_puts(&rs->body, "{\"settings\":[]}");
}

static const http_route routes[] = {
    {"/ready", HTTP_GET, h_ready, NULL},
    {"/healthz", HTTP_GET, h_healthz, NULL},
    {"/metrics", HTTP_GET, h_metrics, NULL},
    {"/ingest", HTTP_POST | HTTP_TENANT, ingest_legacy, NULL},
    {"/pyroscope/ingest", HTTP_POST | HTTP_TENANT, ingest_legacy, NULL},
    {"/push.v1.PusherService/Push", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, ingest_push, NULL},
    {"/v1development/profiles", HTTP_POST | HTTP_TENANT, ingest_otlp, NULL},
    {"/querier.v1.QuerierService/ProfileTypes", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_profile_types, NULL},
    {"/querier.v1.QuerierService/LabelNames", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_label_names, NULL},
    {"/querier.v1.QuerierService/LabelValues", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_label_values, NULL},
    {"/querier.v1.QuerierService/Series", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_series, NULL},
    {"/querier.v1.QuerierService/SelectMergeStacktraces", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_merge_stacktraces, NULL},
    {"/querier.v1.QuerierService/SelectMergeSpanProfile", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_merge_span, NULL},
    {"/querier.v1.QuerierService/SelectMergeProfile", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_merge_profile, NULL},
    {"/querier.v1.QuerierService/SelectSeries", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_select_series, NULL},
    {"/querier.v1.QuerierService/Diff", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_diff, NULL},
    {"/querier.v1.QuerierService/GetProfileStats", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, query_profile_stats, NULL},
    {"/querier.v1.QuerierService/", HTTP_PREFIX | HTTP_POST | HTTP_CONNECT, NULL, "/querier.v1.QuerierService/other"},
    {"/settings.v1.SettingsService/Get", HTTP_POST | HTTP_TENANT | HTTP_CONNECT, h_settings_get, NULL},
    {"/settings.v1.SettingsService/", HTTP_PREFIX | HTTP_POST | HTTP_CONNECT, NULL, "/settings.v1.SettingsService/other"},
    {"/pyroscope/render", HTTP_GET | HTTP_TENANT, query_render, NULL},
    {"/pyroscope/render-diff", HTTP_GET | HTTP_TENANT, query_render_diff, NULL},
    {"/pyroscope/label-values", HTTP_GET | HTTP_TENANT, query_legacy_label_values, NULL},
    {"/pyroscope/labels", HTTP_GET | HTTP_TENANT, query_legacy_labels, NULL},
    /* the Pyroscope 0.x paths of the same routes */
    {"/render", HTTP_GET | HTTP_TENANT, query_render, "/pyroscope/render"},
    {"/render-diff", HTTP_GET | HTTP_TENANT, query_render_diff, "/pyroscope/render-diff"},
    {"/label-values", HTTP_GET | HTTP_TENANT, query_legacy_label_values, "/pyroscope/label-values"},
    {"/labels", HTTP_GET | HTTP_TENANT, query_legacy_labels, "/pyroscope/labels"},
    {"/", HTTP_PREFIX | HTTP_GET, h_ui, "ui"},
    {NULL, 0, NULL, NULL},
};

static void h_unimplemented(http_req *rq, http_resp *rs);

static http_route routes_resolved[ARRAY_SIZE(routes)];

static void h_unimplemented(http_req *rq, http_resp *rs)
{
    connect_error(rs, "unimplemented", "%s is not implemented by hearth", rq->path);
}

int server_start(server **out, const server_config *c, herr *e)
{
    server *s = xcalloc(1, sizeof *s);
    store_opts so;
    http_opts ho;
    int rc;

    s->cfg = *c;
    s->started_ns = mono_ns();
    pthread_mutex_init(&s->mu, NULL);
    s->delta = delta_new();
    if (c->auth_token_file) {
        if ((rc = auth_load(&s->auth, c->auth_token_file, e))) goto fail;
        s->auth_on = 1;
    }
    store_opts_default(&so);
    so.fsync = (enum store_fsync)c->fsync;
    so.retention_ns = c->retention_ns;
    so.max_profile_samples = c->max_samples;
    if (c->max_series) so.max_series_per_tenant = c->max_series;
    so.background = 1;
    so.wal_fail_after_bytes = c->wal_fail_after_bytes;
    if ((rc = store_open(&s->st, c->data_dir, &so, e))) goto fail;

    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        routes_resolved[i] = routes[i];
        if (routes[i].path && !routes[i].fn) routes_resolved[i].fn = h_unimplemented;
    }
    memset(&ho, 0, sizeof ho);
    ho.listen = c->listen;
    ho.threads = c->threads;
    ho.max_connections = c->max_connections;
    ho.timeout_s = c->timeout_s;
    ho.max_body = c->max_body;
    ho.max_decompressed = c->max_decompressed;
    ho.access_log = c->access_log;
    if (s->auth_on) {
        ho.auth = auth_check;
        ho.auth_arg = &s->auth;
    }
    if ((rc = http_start(&s->http, &ho, routes_resolved, s, e))) {
        store_close(s->st);
        goto fail;
    }
    log_info("hearth server listening addr=%s port=%u data_dir=%s auth=%s fsync=%d",
             c->listen, http_port(s->http), c->data_dir, s->auth_on ? "on" : "off", c->fsync);
    *out = s;
    return 0;
fail:
    auth_release(&s->auth);
    delta_free(s->delta);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return rc;
}

unsigned server_port(const server *s) { return http_port(s->http); }

int server_flush(server *s, herr *e) { return store_flush(s->st, e); }

void server_stop(server *s)
{
    if (!s) return;
    log_info("draining requests inflight=%u", http_inflight(s->http));
    http_stop(s->http, s->cfg.drain_ms);
    {
        /* write the head to blocks now, so a restart has no WAL to replay */
        herr e = {0};
        int64_t t0 = mono_ns();
        int rc = store_flush(s->st, &e);
        if (rc) log_warn("flush at shutdown failed (the WAL still holds everything): %s", herr_msg(&e, rc));
        else log_info("head flushed to blocks in %.1f ms", (double)(mono_ns() - t0) / 1e6);
    }
    store_close(s->st);
    auth_release(&s->auth);
    delta_free(s->delta);
    pthread_mutex_destroy(&s->mu);
    log_info("hearth server stopped");
    free(s);
}

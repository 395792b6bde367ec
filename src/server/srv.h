/*
 * srv.h: the server's internal state shared by its modules (server.c owns
 * it; ingest.c and query.c hold the handlers). Not used outside
 * src/server/.
 */
#ifndef HEARTH_SERVER_SRV_H
#define HEARTH_SERVER_SRV_H

#include <pthread.h>
#include <stdint.h>

#include "core/buf.h"
#include "profile/profile.h"
#include "server/auth.h"
#include "server/delta.h"
#include "server/http.h"
#include "server/server.h"
#include "store/store.h"

#define SRV_MAX_TENANTS 1024

typedef struct tenant_stat {
    char name[152];
    uint64_t profiles, samples, bytes, rejected;
} tenant_stat;

struct server {
    server_config cfg;
    store *st;
    http_server *http;
    auth_table auth;
    int auth_on;
    pthread_mutex_t mu;               /* guards tenants and ingest histogram */
    tenant_stat tenants[SRV_MAX_TENANTS];
    size_t n_tenants;
    uint64_t ingest_hist[13];         /* store_ingest latency buckets (WAL write + fsync) */
    double ingest_sum_s;
    uint64_t ingest_n;
    int64_t started_ns;
    delta_state *delta;               /* server-side deltas of cumulative pushes (delta.h) */
};

/* Per-request limits for decoding a profile. */
void srv_prof_limits(const server *s, prof_limits *l);
/* Counts an accepted profile (samples, body bytes) for a tenant. */
void srv_count_ingest(server *s, const char *tenant, uint64_t profiles, uint64_t samples, uint64_t bytes);
void srv_count_reject(server *s, const char *tenant);
/* store_ingest with latency accounting. */
int srv_store_ingest(server *s, const char *tenant, const store_label *labels, size_t n,
                     const profile *p, int64_t time_ns, int64_t duration_ns, herr *e);

/* store_ingest_batch with latency accounting (one observation per batch). */
int srv_store_ingest_batch(server *s, const char *tenant, const store_item *items, size_t n, herr *e);

/* Handlers (ingest.c). */
void ingest_legacy(http_req *rq, http_resp *rs);
void ingest_push(http_req *rq, http_resp *rs);
void ingest_otlp(http_req *rq, http_resp *rs);

/* Handlers (query.c). */
void query_profile_types(http_req *rq, http_resp *rs);
void query_label_names(http_req *rq, http_resp *rs);
void query_label_values(http_req *rq, http_resp *rs);
void query_series(http_req *rq, http_resp *rs);
void query_merge_stacktraces(http_req *rq, http_resp *rs);
void query_merge_span(http_req *rq, http_resp *rs);
void query_merge_profile(http_req *rq, http_resp *rs);
void query_select_series(http_req *rq, http_resp *rs);
void query_diff(http_req *rq, http_resp *rs);
void query_profile_stats(http_req *rq, http_resp *rs);
void query_render(http_req *rq, http_resp *rs);
void query_render_diff(http_req *rq, http_resp *rs);
void query_legacy_label_values(http_req *rq, http_resp *rs);
void query_legacy_labels(http_req *rq, http_resp *rs);

#endif

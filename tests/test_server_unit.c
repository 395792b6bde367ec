/*
 * test_server_unit.c: the server's pure pieces, case by case: Pyroscope's
 * legacy key syntax and naming rules (naming.c), Connect request decoding
 * (the same message in JSON and protobuf gives the same request), base64,
 * and the auth table (401/403/tenant choice).
 */
#include "core/common.h"
#include "core/buf.h"
#include "core/wire.h"
#include "server/auth.h"
#include "server/connect.h"
#include "server/delta.h"
#include "server/naming.h"
#include "t.h"

TEST(naming_parses_keys)
{
    naming_key k;
    herr e = {0};
    ASSERT_OK(naming_parse_key(&k, "my.app.cpu{env=prod, region = eu-1 ,}", &e));
    ASSERT_STR(k.app, "my.app.cpu");
    ASSERT_EQ(k.n, 2);
    ASSERT_STR(k.names[0], "env");
    ASSERT_STR(k.values[0], "prod");
    ASSERT_STR(k.names[1], "region");
    ASSERT_STR(k.values[1], "eu-1");
    ASSERT_OK(naming_parse_key(&k, "plain", &e));
    ASSERT_EQ(k.n, 0);
    ASSERT_EQ(naming_parse_key(&k, "", &e), HE_FORMAT);
    herr_clear(&e);
    ASSERT_EQ(naming_parse_key(&k, "{a=b}", &e), HE_FORMAT);
    herr_clear(&e);
    ASSERT_EQ(naming_parse_key(&k, "app{a=b", &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "'}'");
    herr_clear(&e);
    ASSERT_EQ(naming_parse_key(&k, "app{9a=b}", &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "9a");
    herr_clear(&e);
    ASSERT_EQ(naming_parse_key(&k, "app{a=b,a=c}", &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "twice");
    herr_clear(&e);
    ASSERT_EQ(naming_parse_key(&k, "app{novalue}", &e), HE_FORMAT);
    herr_clear(&e);
    ASSERT_EQ(naming_parse_key(&k, "app{a=\xff\xfe}", &e), HE_UTF8);
    herr_clear(&e);
    /* found by fuzz_naming: a second brace group used to end up inside a value */
    ASSERT_EQ(naming_parse_key(&k, "svc.cpu{ a = 1}{b=2}", &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "'{' or '}'");
    herr_clear(&e);
    ASSERT_EQ(naming_parse_key(&k, "svc.cpu{a={x}}", &e), HE_FORMAT);
    {
        char big[4096] = "app{";
        for (int i = 0; i < 31; i++) snprintf(big + strlen(big), sizeof big - strlen(big), "l%d=v,", i);
        snprintf(big + strlen(big), sizeof big - strlen(big), "}");
        herr_clear(&e);
        ASSERT_EQ(naming_parse_key(&k, big, &e), HE_TOOBIG);
    }
}

TEST(naming_suffixes_follow_pyroscope)
{
    size_t n;
    const naming_type *t = naming_suffix("my.app.cpu", &n);
    ASSERT(t != NULL);
    ASSERT_STR(t->metric, "process_cpu");
    ASSERT_STR(t->type, "cpu");
    ASSERT_STR(t->unit, "nanoseconds");
    ASSERT(t->rate_scaled);
    ASSERT_EQ(n, 6);  /* "my.app" */
    t = naming_suffix("app.inuse_space", &n);
    ASSERT_STR(t->metric, "memory");
    ASSERT_STR(t->unit, "bytes");
    ASSERT(!t->rate_scaled);
    t = naming_suffix("app.mutex_duration", &n);
    ASSERT_STR(t->metric, "mutex");
    ASSERT_STR(t->type, "delay");
    t = naming_suffix("app.goroutines", &n);
    ASSERT_STR(t->metric, "goroutine");
    t = naming_suffix("nodot", &n);
    ASSERT_STR(t->metric, "process_cpu");
    ASSERT_EQ(n, 5);
    ASSERT(naming_suffix("app.v2", &n) == NULL);
}

TEST(naming_pprof_metrics)
{
    const char *cpu[] = {"samples", "cpu"}, *heap[] = {"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"};
    const char *mutex[] = {"contentions", "delay"}, *wall[] = {"samples", "wall"}, *gor[] = {"goroutine"};
    const char *disp[] = {"mutex_count", "mutex_duration"};
    ASSERT_STR(naming_pprof_metric(cpu, NULL, 2, NULL), "process_cpu");
    ASSERT_STR(naming_pprof_metric(heap, NULL, 4, NULL), "memory");
    ASSERT_STR(naming_pprof_metric(wall, NULL, 2, NULL), "wall");
    ASSERT_STR(naming_pprof_metric(gor, NULL, 1, NULL), "goroutine");
    ASSERT_STR(naming_pprof_metric(mutex, NULL, 2, NULL), "block");
    ASSERT_STR(naming_pprof_metric(mutex, NULL, 2, "mutex"), "mutex");
    ASSERT_STR(naming_pprof_metric(mutex, disp, 2, NULL), "mutex");
}

static void fake_req(http_req *rq, const void *body, size_t n)
{
    memset(rq, 0, sizeof *rq);
    buf_init(&rq->body, 0);
    buf_append(&rq->body, body, n);
}

/* connect_parse reads Content-Type through MHD; without a connection we test the codec paths directly. */
TEST(connect_json_and_proto_agree)
{
    const char *js = "{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{a=\\\"b\\\"}\","
                     "\"start\":\"1000\",\"end\":2000,\"maxNodes\":\"16\",\"format\":\"PROFILE_FORMAT_TREE\",\"unknown\":[1,2]}";
    buf pb;
    http_req rq;
    creq a, b;
    herr e = {0};
    buf_init(&pb, 0);
    wire_put_bytes(&pb, 1, "process_cpu:cpu:nanoseconds:cpu:nanoseconds", 43);
    wire_put_bytes(&pb, 2, "{a=\"b\"}", 7);
    wire_put_uint(&pb, 3, 1000);
    wire_put_uint(&pb, 4, 2000);
    wire_put_uint(&pb, 5, 16);
    wire_put_uint(&pb, 6, 2);
    wire_put_bytes(&pb, 99, "skip me", 7);
    fake_req(&rq, js, strlen(js));
    ASSERT_OK(connect_parse(&rq, creq_merge_stacktraces, &a, &e));  /* body starts with '{': JSON */
    buf_release(&rq.body);
    fake_req(&rq, pb.data, pb.len);
    ASSERT_OK(connect_parse(&rq, creq_merge_stacktraces, &b, &e));
    buf_release(&rq.body);
    ASSERT_STR(a.profile_type, b.profile_type);
    ASSERT_STR(a.label_selector, "{a=\"b\"}");
    ASSERT_STR(b.label_selector, "{a=\"b\"}");
    ASSERT_EQ(a.start, 1000);
    ASSERT_EQ(b.start, 1000);
    ASSERT_EQ(a.end, b.end);
    ASSERT_EQ(a.max_nodes, 16);
    ASSERT(a.has_max_nodes && b.has_max_nodes);
    ASSERT_EQ(a.format, 2);
    ASSERT_EQ(b.format, 2);
    creq_release(&a);
    creq_release(&b);
    buf_release(&pb);
}

TEST(connect_rejects_bad_requests_with_a_message)
{
    http_req rq;
    creq r;
    herr e = {0};
    fake_req(&rq, "{\"start\":\"soon\"}", 16);
    ASSERT_EQ(connect_parse(&rq, creq_profile_types, &r, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "start");
    creq_release(&r);
    buf_release(&rq.body);
    herr_clear(&e);
    fake_req(&rq, "{\"matchers\":\"{}\"}", 17);
    ASSERT_EQ(connect_parse(&rq, creq_label_names, &r, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "matchers");
    creq_release(&r);
    buf_release(&rq.body);
    herr_clear(&e);
    fake_req(&rq, "\x0a\x05\x61", 3);  /* field 1, length 5, 1 byte */
    ASSERT(connect_parse(&rq, creq_merge_stacktraces, &r, &e) < 0);
    ASSERT(e.msg[0]);
    creq_release(&r);
    buf_release(&rq.body);
    herr_clear(&e);
    {
        /* Diff nests two requests */
        const char *js = "{\"left\":{\"labelSelector\":\"{x=\\\"1\\\"}\"},\"right\":{\"labelSelector\":\"{x=\\\"2\\\"}\"}}";
        fake_req(&rq, js, strlen(js));
        ASSERT_OK(connect_parse(&rq, creq_diff, &r, &e));
        ASSERT_STR(r.left->label_selector, "{x=\"1\"}");
        ASSERT_STR(r.right->label_selector, "{x=\"2\"}");
        creq_release(&r);
        buf_release(&rq.body);
    }
}

TEST(connect_status_mapping)
{
    ASSERT_EQ(connect_http_status("invalid_argument"), 400);
    ASSERT_EQ(connect_http_status("unauthenticated"), 401);
    ASSERT_EQ(connect_http_status("permission_denied"), 403);
    ASSERT_EQ(connect_http_status("not_found"), 404);
    ASSERT_EQ(connect_http_status("resource_exhausted"), 429);
    ASSERT_EQ(connect_http_status("unimplemented"), 501);
    ASSERT_EQ(connect_http_status("unavailable"), 503);
    ASSERT_STR(connect_code_for(HE_FORMAT), "invalid_argument");
    ASSERT_STR(connect_code_for(HE_TOOBIG), "invalid_argument");  /* limits are permanent: never 429 */
    ASSERT_STR(connect_code_for(-EIO), "unavailable");
}

TEST(base64_round_trip)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\x00\x10"};
    size_t lens[] = {0, 1, 2, 3, 4, 5, 6, 3};
    for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
        buf enc, dec;
        buf_init(&enc, 0);
        buf_init(&dec, 0);
        ASSERT_OK(b64_encode(in[i], lens[i], &enc));
        ASSERT_OK(b64_decode(enc.data ? enc.data : "", enc.len, &dec));
        ASSERT_EQ(dec.len, lens[i]);
        ASSERT(!lens[i] || !memcmp(dec.data, in[i], lens[i]));
        buf_release(&enc);
        buf_release(&dec);
    }
    {
        buf b;
        buf_init(&b, 0);
        ASSERT_OK(b64_encode("foobar", 6, &b));
        ASSERT_STR(b.data, "Zm9vYmFy");
        buf_reset(&b);
        ASSERT_EQ(b64_decode("Zm9v!mFy", 8, &b), HE_FORMAT);
        buf_release(&b);
    }
}

TEST(auth_table_checks)
{
    char path[512];
    FILE *f;
    auth_table t;
    herr e = {0};
    const char *tenant = NULL;
    char msg[256];
    snprintf(path, sizeof path, "%s/tok", t_tmpdir());
    f = fopen(path, "w");
    fprintf(f, "  # comment\n\nalpha team-a,team-b\nroot *   # any tenant\n");
    fclose(f);
    ASSERT_OK(auth_load(&t, path, &e));
    ASSERT_EQ(t.n, 2);
    ASSERT_EQ(auth_check(&t, NULL, NULL, &tenant, msg, sizeof msg), 401);
    ASSERT_EQ(auth_check(&t, "Bearer nope", NULL, &tenant, msg, sizeof msg), 401);
    ASSERT_EQ(auth_check(&t, "Token alpha", NULL, &tenant, msg, sizeof msg), 401);
    ASSERT_EQ(auth_check(&t, "Bearer alpha", "team-c", &tenant, msg, sizeof msg), 403);
    ASSERT_CONTAINS(msg, "team-c");
    ASSERT_OK(auth_check(&t, "Bearer alpha", NULL, &tenant, msg, sizeof msg));
    ASSERT_STR(tenant, "team-a");
    ASSERT_OK(auth_check(&t, "Bearer alpha", "team-b", &tenant, msg, sizeof msg));
    ASSERT_STR(tenant, "team-b");
    /* basic: user team-b, password alpha */
    ASSERT_OK(auth_check(&t, "Basic dGVhbS1iOmFscGhh", NULL, &tenant, msg, sizeof msg));
    ASSERT_STR(tenant, "team-b");
    ASSERT_OK(auth_check(&t, "Bearer root", "anything", &tenant, msg, sizeof msg));
    ASSERT_STR(tenant, "anything");
    auth_release(&t);
    f = fopen(path, "w");
    fprintf(f, "lonely-token\n");
    fclose(f);
    ASSERT_EQ(auth_load(&t, path, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "line 1");
}

/* ---- server-side deltas: rollback of a request whose store write failed ---- */

/* A Go-heap-like profile: one stack, alloc_space (cumulative) and inuse_space. */
static void heap_prof(profile *p, int64_t alloc, int64_t inuse)
{
    ASSERT_OK(prof_init(p));
    ASSERT(prof_add_type(p, "alloc_space", "bytes") >= 0);
    ASSERT(prof_add_type(p, "inuse_space", "bytes") >= 0);
    uint32_t locs[2] = {(uint32_t)prof_location_for_name(p, "main", 4), (uint32_t)prof_location_for_name(p, "alloc", 5)};
    int64_t v[2] = {alloc, inuse};
    ASSERT(prof_sample_add(p, (uint32_t)prof_stack_root_first(p, locs, 2), v, NULL, 0) >= 0);
}

/* The alloc_space that delta_apply leaves of a profile with cumulative alloc (u: journal, or NULL). */
static int64_t delta_of(delta_state *d, const char *svc, int64_t alloc, delta_undo *u)
{
    const char *names[] = {"__name__", "service_name"}, *values[] = {"memory", svc};
    profile p;
    heap_prof(&p, alloc, 1);
    ASSERT_OK(delta_apply(d, "t", names, values, 2, &p, u));
    int64_t v = p.n_samples ? prof_total(&p, 0) : 0;
    prof_release(&p);
    return v;
}

TEST(delta_rollback_undoes_a_failed_request)
{
    delta_state *d = delta_new();
    delta_undo *u = delta_undo_new();
    /* an existing series: the failed request's delta is computed again by its retry */
    ASSERT_EQ(delta_of(d, "x", 100, NULL), 0);  /* baseline */
    ASSERT_EQ(delta_of(d, "x", 250, u), 150);
    delta_rollback(d, u);
    ASSERT_EQ(delta_of(d, "x", 250, NULL), 150);  /* without the rollback: 0 */
    ASSERT_EQ(delta_of(d, "x", 300, NULL), 50);
    /* a series the failed request created is new again: its next profile is the baseline */
    ASSERT_EQ(delta_of(d, "y", 100, u), 0);
    delta_rollback(d, u);
    ASSERT_EQ(delta_of(d, "y", 130, NULL), 0);
    ASSERT_EQ(delta_of(d, "y", 170, NULL), 40);
    /* a baseline set by a process restart is undone to the state before it */
    ASSERT_EQ(delta_of(d, "y", 20, u), 0);  /* went down: restart, new baseline */
    delta_rollback(d, u);
    ASSERT_EQ(delta_of(d, "y", 200, NULL), 30);
    /* a later request moved the series on: the rollback leaves its state alone */
    ASSERT_EQ(delta_of(d, "z", 10, NULL), 0);
    ASSERT_EQ(delta_of(d, "z", 20, u), 10);
    ASSERT_EQ(delta_of(d, "z", 35, NULL), 15);
    delta_rollback(d, u);
    ASSERT_EQ(delta_of(d, "z", 40, NULL), 5);
    delta_undo_free(u);
    delta_free(d);
}

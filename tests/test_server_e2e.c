/*
 * test_server_e2e.c: the real server (server_start on a free loopback port,
 * a fresh data directory) driven over HTTP with libcurl, as Pyroscope
 * clients drive it:
 *
 *   - every test data format in through each ingest route (legacy /ingest
 *     folded, lines, pprof raw and multipart, speedscope, perf script;
 *     Connect Push proto and JSON; OTLP proto and JSON) and back out
 *     through each query route (SelectMergeStacktraces, SelectSeries,
 *     SelectMergeProfile, render) with totals identical to what the file
 *     itself holds (decoded locally with the same codecs);
 *   - tenants are isolated; auth gives 401/403/200 as documented;
 *   - hostile inputs each get a 4xx with a message and the server keeps
 *     serving with its data intact;
 *   - a bounded concurrent load (writers and readers) completes without
 *     errors; throughput and RSS are printed (figures, not pass/fail).
 */
#include "core/common.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/compress.h"
#include "core/mem.h"
#include "core/units.h"
#include "core/wire.h"
#include "format/folded.h"
#include "format/otlp.h"
#include "format/perfscript.h"
#include "format/pprof.h"
#include "format/speedscope.h"
#include "server/connect.h"
#include "server/server.h"
#include "store/store.h"
#include "t.h"

static const char *CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/* The selectors above are written JSON-escaped; proto and query strings want them raw. */
static const char *unescape(const char *sel, char *out, size_t n)
{
    size_t k = 0;
    for (; *sel && k + 1 < n; sel++)
        if (!(sel[0] == '\\' && sel[1] == '"')) out[k++] = *sel;
    out[k] = 0;
    return out;
}

typedef struct srv_t {
    server *s;
    unsigned port;
    char dir[512];
} srv_t;

static void srv_up(srv_t *t, const char *auth_file)
{
    server_config c;
    herr e = {0};
    static int seq;
    snprintf(t->dir, sizeof t->dir, "%s/data%d", t_tmpdir(), seq++);
    server_config_default(&c);
    c.listen = "127.0.0.1:0";
    c.data_dir = t->dir;
    c.fsync = STORE_FSYNC_NEVER;
    c.access_log = 0;
    c.threads = 4;
    c.max_body = 8u << 20;
    c.max_decompressed = 64u << 20;
    c.auth_token_file = auth_file;
    if (server_start(&t->s, &c, &e)) t_fail(__FILE__, __LINE__, "server_start: %s", e.msg);
    t->port = server_port(t->s);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    buf *b = arg;
    return buf_append(b, p, size * n) ? 0 : size * n;
}

/* One request; returns the HTTP status, body into out (reset first). */
static long http(const srv_t *t, const char *method, const char *path, const char *const *headers,
                 const void *body, size_t len, buf *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[4096];
    long status = 0;
    buf_reset(out);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", t->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    int expect = 0;
    for (size_t i = 0; headers && headers[i]; i++) {
        h = curl_slist_append(h, headers[i]);
        expect |= !strncasecmp(headers[i], "Expect:", 7);
    }
    if (!expect) h = curl_slist_append(h, "Expect:"); /* send bodies at once unless the case is about Expect */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static long post_json(const srv_t *t, const char *path, const char *tenant, const char *json, buf *out)
{
    char th[200];
    const char *hs[] = {"Content-Type: application/json", tenant ? th : NULL, NULL};
    snprintf(th, sizeof th, "X-Scope-OrgID: %s", tenant ? tenant : "");
    return http(t, "POST", path, hs, json, strlen(json), out);
}

static json_object *parse(const buf *b)
{
    json_object *o = json_tokener_parse(b->data ? b->data : "");
    if (!o) t_fail(__FILE__, __LINE__, "response is not JSON: %.200s", b->data ? b->data : "");
    return o;
}

static int64_t jint(json_object *o, const char *k)
{
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v)) return -1;
    return json_object_get_int64(v);
}

/* Total of a merged flame graph (SelectMergeStacktraces, JSON). */
static int64_t q_flame_total(const srv_t *t, const char *tenant, const char *type, const char *sel)
{
    char req[2048];
    buf out;
    json_object *o, *fg;
    int64_t total;
    long st;
    buf_init(&out, 0);
    snprintf(req, sizeof req, "{\"profileTypeID\":\"%s\",\"labelSelector\":\"%s\",\"start\":\"0\",\"end\":\"%" PRId64 "\"}",
             type, sel, now_ns() / 1000000 + 3600000);
    st = post_json(t, "/querier.v1.QuerierService/SelectMergeStacktraces", tenant, req, &out);
    if (st != 200) t_fail(__FILE__, __LINE__, "SelectMergeStacktraces: %ld %s", st, out.data);
    o = parse(&out);
    if (!json_object_object_get_ex(o, "flamegraph", &fg)) t_fail(__FILE__, __LINE__, "no flamegraph in %.200s", out.data);
    total = jint(fg, "total");
    json_object_put(o);
    buf_release(&out);
    return total;
}

/* Sum of SelectSeries points. */
static int64_t q_series_total(const srv_t *t, const char *tenant, const char *type, const char *sel)
{
    char req[2048];
    buf out;
    json_object *o, *series;
    double sum = 0;
    long st;
    buf_init(&out, 0);
    /* profiles keep their own timestamps (pprof time_nanos): ask for all time, 30-day steps */
    snprintf(req, sizeof req, "{\"profileTypeID\":\"%s\",\"labelSelector\":\"%s\",\"start\":\"0\",\"end\":\"%" PRId64 "\",\"step\":2592000}",
             type, sel, now_ns() / 1000000 + 3600000);
    st = post_json(t, "/querier.v1.QuerierService/SelectSeries", tenant, req, &out);
    if (st != 200) t_fail(__FILE__, __LINE__, "SelectSeries: %ld %s", st, out.data);
    o = parse(&out);
    if (json_object_object_get_ex(o, "series", &series))
        for (size_t i = 0; i < json_object_array_length(series); i++) {
            json_object *pts;
            json_object_object_get_ex(json_object_array_get_idx(series, i), "points", &pts);
            for (size_t k = 0; pts && k < json_object_array_length(pts); k++) {
                json_object *v;
                json_object_object_get_ex(json_object_array_get_idx(pts, k), "value", &v);
                sum += json_object_get_double(v);
            }
        }
    json_object_put(o);
    buf_release(&out);
    return (int64_t)(sum + 0.5);
}

/* Total of SelectMergeProfile (pprof over application/proto), decoded with pprof_decode. */
static int64_t q_pprof_total(const srv_t *t, const char *tenant, const char *type, const char *sel)
{
    buf req, out;
    char th[200];
    const char *hs[] = {"Content-Type: application/proto", th, NULL};
    profile p;
    herr e = {0};
    int64_t total;
    long st;
    char raw[1024];
    sel = unescape(sel, raw, sizeof raw);
    snprintf(th, sizeof th, "X-Scope-OrgID: %s", tenant ? tenant : "anonymous");
    buf_init(&req, 0);
    buf_init(&out, 0);
    wire_put_bytes(&req, 1, type, strlen(type));
    wire_put_bytes(&req, 2, sel, strlen(sel));
    wire_put_uint(&req, 3, 0);
    wire_put_uint(&req, 4, (uint64_t)(now_ns() / 1000000 + 3600000));
    st = http(t, "POST", "/querier.v1.QuerierService/SelectMergeProfile", hs, req.data, req.len, &out);
    if (st != 200) t_fail(__FILE__, __LINE__, "SelectMergeProfile: %ld %s", st, out.data);
    prof_init(&p);
    if (pprof_decode(&p, out.data ? out.data : "", out.len, 0, &e)) t_fail(__FILE__, __LINE__, "merge profile: %s", e.msg);
    total = p.n_types ? prof_total(&p, 0) : 0;
    prof_release(&p);
    buf_release(&req);
    buf_release(&out);
    return total;
}

/* The sum of sample[].value[0] of a protojson google.v1.Profile (o is put). */
static int64_t pprof_json_total(json_object *o)
{
    json_object *samples;
    int64_t total = 0;
    if (json_object_object_get_ex(o, "sample", &samples))
        for (size_t i = 0; i < json_object_array_length(samples); i++) {
            json_object *v;
            json_object_object_get_ex(json_object_array_get_idx(samples, i), "value", &v);
            total += json_object_get_int64(json_object_array_get_idx(v, 0));
        }
    json_object_put(o);
    return total;
}

/* Total of SelectMergeProfile answered as protojson google.v1.Profile (type 0). */
static int64_t q_pprof_json_total(const srv_t *t, const char *tenant, const char *type, const char *sel)
{
    char req[2048];
    buf out;
    int64_t total;
    long st;
    buf_init(&out, 0);
    snprintf(req, sizeof req, "{\"profileTypeID\":\"%s\",\"labelSelector\":\"%s\",\"start\":\"0\",\"end\":\"%" PRId64 "\"}",
             type, sel, now_ns() / 1000000 + 3600000);
    st = post_json(t, "/querier.v1.QuerierService/SelectMergeProfile", tenant, req, &out);
    if (st != 200) t_fail(__FILE__, __LINE__, "SelectMergeProfile (JSON): %ld %s", st, out.data);
    total = pprof_json_total(parse(&out));
    buf_release(&out);
    return total;
}

/* numTicks of legacy /pyroscope/render. */
static int64_t q_render_total(const srv_t *t, const char *tenant, const char *type, const char *sel)
{
    char path[2048], th[200];
    const char *hs[] = {th, NULL};
    char *esc;
    buf out;
    json_object *o, *fb;
    int64_t total;
    long st;
    CURL *c = curl_easy_init();
    char q[1024], raw[1024];
    snprintf(q, sizeof q, "%s%s", type, unescape(sel, raw, sizeof raw));
    esc = curl_easy_escape(c, q, 0);
    snprintf(th, sizeof th, "X-Scope-OrgID: %s", tenant ? tenant : "anonymous");
    snprintf(path, sizeof path, "/pyroscope/render?query=%s&from=0&until=now%%2B1h&format=json", esc);
    curl_free(esc);
    curl_easy_cleanup(c);
    buf_init(&out, 0);
    st = http(t, "GET", path, hs, NULL, 0, &out);
    if (st != 200) t_fail(__FILE__, __LINE__, "render: %ld %s", st, out.data);
    o = parse(&out);
    if (!json_object_object_get_ex(o, "flamebearer", &fb)) t_fail(__FILE__, __LINE__, "no flamebearer");
    total = jint(fb, "numTicks");
    {
        /* the timeline holds the same total, spread over its steps */
        json_object *tl, *samples;
        int64_t sum = 0;
        if (!json_object_object_get_ex(o, "timeline", &tl) || !json_object_object_get_ex(tl, "samples", &samples))
            t_fail(__FILE__, __LINE__, "render without a timeline");
        for (size_t i = 0; i < json_object_array_length(samples); i++) sum += json_object_get_int64(json_object_array_get_idx(samples, i));
        if (sum != total) t_fail(__FILE__, __LINE__, "timeline sums to %" PRId64 ", numTicks is %" PRId64, sum, total);
    }
    json_object_put(o);
    buf_release(&out);
    return total;
}

#define CHECK_ALL_ROUTES(t, tenant, type, sel, want)                         \
    do {                                                                     \
        ASSERT_EQ(q_flame_total(t, tenant, type, sel), (want));             \
        ASSERT_EQ(q_series_total(t, tenant, type, sel), (want));            \
        ASSERT_EQ(q_pprof_total(t, tenant, type, sel), (want));             \
        ASSERT_EQ(q_pprof_json_total(t, tenant, type, sel), (want));        \
        ASSERT_EQ(q_render_total(t, tenant, type, sel), (want));            \
    } while (0)

static char *slurp(const char *rel, size_t *n) { return t_read_file(t_testdata(rel), n); }

static int64_t file_total(const char *rel, int (*parse_fn)(profile *, const char *, size_t, herr *), const char *type)
{
    size_t n;
    char *d = slurp(rel, &n);
    profile p;
    herr e = {0};
    int64_t total;
    prof_init(&p);
    if (parse_fn) {
        if (parse_fn(&p, d, n, &e)) t_fail(__FILE__, __LINE__, "%s: %s", rel, e.msg);
    } else if (pprof_decode(&p, d, n, 0, &e)) {
        t_fail(__FILE__, __LINE__, "%s: %s", rel, e.msg);
    }
    total = prof_total(&p, type ? prof_type_index(&p, type) : 0);
    prof_release(&p);
    free(d);
    return total;
}

static long ingest(const srv_t *t, const char *tenant, const char *query, const char *ct, const void *body, size_t n, buf *out)
{
    char path[1024], th[200], cth[200];
    const char *hs[] = {th, ct ? cth : NULL, NULL};
    snprintf(path, sizeof path, "/ingest?%s", query);
    snprintf(th, sizeof th, "X-Scope-OrgID: %s", tenant ? tenant : "anonymous");
    snprintf(cth, sizeof cth, "Content-Type: %s", ct ? ct : "");
    return http(t, "POST", path, hs, body, n, out);
}

TEST(legacy_ingest_text_formats_round_trip)
{
    srv_t t;
    buf out;
    size_t n;
    char *d;
    int64_t want;
    srv_up(&t, NULL);
    buf_init(&out, 0);

    /* folded, .cpu at 100 Hz: each sample is 10 ms */
    d = slurp("collapsed/perf-vertx-stacks-01-collapsed-all.txt", &n);
    ASSERT_EQ(ingest(&t, NULL, "name=vertx.cpu%7Benv%3Dprod%7D&sampleRate=100&from=now-30s&until=now", NULL, d, n, &out), 200);
    free(d);
    want = file_total("collapsed/perf-vertx-stacks-01-collapsed-all.txt", folded_parse, NULL) * 10000000;
    ASSERT(want > 0);
    CHECK_ALL_ROUTES(&t, NULL, CPU, "{service_name=\\\"vertx\\\",env=\\\"prod\\\"}", want);

    /* lines: one stack per line, counted once each */
    {
        const char *lines = "main;work;a\nmain;work;b\nmain;work;a\n";
        ASSERT_EQ(ingest(&t, NULL, "name=lines.cpu&format=lines&sampleRate=100", NULL, lines, strlen(lines), &out), 200);
        ASSERT_EQ(q_flame_total(&t, NULL, CPU, "{service_name=\\\"lines\\\"}"), 3 * 10000000LL);
    }

    /* perf script, at 1 Hz so values stay sample counts times 1e9 */
    d = slurp("perf-script/perf-funcab-pid-01.txt", &n);
    ASSERT_EQ(ingest(&t, NULL, "name=perf.cpu&format=perf_script&sampleRate=1", NULL, d, n, &out), 200);
    free(d);
    want = file_total("perf-script/perf-funcab-pid-01.txt", perfscript_parse, NULL) * 1000000000LL;
    CHECK_ALL_ROUTES(&t, NULL, CPU, "{service_name=\\\"perf\\\"}", want);

    /* speedscope, memory type keeps values as they are */
    d = slurp("speedscope/two-sampled.speedscope.json", &n);
    ASSERT_EQ(ingest(&t, NULL, "name=ss.inuse_space&format=speedscope", NULL, d, n, &out), 200);
    free(d);
    {
        size_t m;
        char *raw = slurp("speedscope/two-sampled.speedscope.json", &m);
        profile p;
        herr e = {0};
        prof_init(&p);
        ASSERT_OK(speedscope_parse(&p, raw, m, &e));
        if (p.n_types == 1) {
            want = prof_total(&p, 0);
            CHECK_ALL_ROUTES(&t, NULL, "memory:inuse_space:bytes:space:bytes", "{service_name=\\\"ss\\\"}", want);
        }
        prof_release(&p);
        free(raw);
    }
    buf_release(&out);
    server_stop(t.s);
}

TEST(legacy_ingest_pprof_raw_and_multipart)
{
    srv_t t;
    buf out, body;
    size_t n;
    char *d;
    srv_up(&t, NULL);
    buf_init(&out, 0);
    buf_init(&body, 0);

    d = slurp("pprof/go-large.cpu.pb.gz", &n);
    ASSERT_EQ(ingest(&t, NULL, "name=large.cpu&format=pprof&spyName=gospy", NULL, d, n, &out), 200);
    free(d);
    CHECK_ALL_ROUTES(&t, NULL, CPU, "{service_name=\\\"large\\\"}", file_total("pprof/go-large.cpu.pb.gz", NULL, "cpu"));
    ASSERT_EQ(q_flame_total(&t, NULL, "process_cpu:samples:count:cpu:nanoseconds", "{service_name=\\\"large\\\"}"),
              file_total("pprof/go-large.cpu.pb.gz", NULL, "samples"));

    /* what the Go SDK sends: multipart with profile + sample_type_config, no format */
    d = slurp("pprof/heap.pb.gz", &n);
    buf_puts(&body, "--XBOUNDARYX\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n");
    buf_append(&body, d, n);
    buf_puts(&body, "\r\n--XBOUNDARYX\r\nContent-Disposition: form-data; name=\"sample_type_config\"; filename=\"sample_type_config.json\"\r\n\r\n"
                    "{\"inuse_space\":{\"units\":\"bytes\",\"aggregation\":\"average\"},\"alloc_space\":{\"units\":\"bytes\",\"cumulative\":true}}"
                    "\r\n--XBOUNDARYX--\r\n");
    free(d);
    ASSERT_EQ(ingest(&t, NULL, "name=heapapp&spyName=gospy", "multipart/form-data; boundary=XBOUNDARYX", body.data, body.len, &out), 200);
    CHECK_ALL_ROUTES(&t, NULL, "memory:inuse_space:bytes:space:bytes", "{service_name=\\\"heapapp\\\"}",
                     file_total("pprof/heap.pb.gz", NULL, "inuse_space"));

    /* a multipart with a prev_profile equal to the profile: cumulative types become zero */
    buf_reset(&body);
    d = slurp("pprof/heap.pb.gz", &n);
    for (int k = 0; k < 2; k++) {
        buf_printf(&body, "--B\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"profile.pprof\"\r\n\r\n", k ? "prev_profile" : "profile");
        buf_append(&body, d, n);
        buf_puts(&body, "\r\n");
    }
    buf_puts(&body, "--B\r\nContent-Disposition: form-data; name=\"sample_type_config\"\r\n\r\n"
                    "{\"alloc_space\":{\"cumulative\":true},\"alloc_objects\":{\"cumulative\":true}}\r\n--B--\r\n");
    free(d);
    ASSERT_EQ(ingest(&t, NULL, "name=deltaapp", "multipart/form-data; boundary=B", body.data, body.len, &out), 200);
    ASSERT_EQ(q_flame_total(&t, NULL, "memory:alloc_space:bytes:space:bytes", "{service_name=\\\"deltaapp\\\"}"), 0);
    ASSERT_EQ(q_flame_total(&t, NULL, "memory:inuse_space:bytes:space:bytes", "{service_name=\\\"deltaapp\\\"}"),
              file_total("pprof/heap.pb.gz", NULL, "inuse_space"));

    /* gzip Content-Encoding on top of a raw pprof */
    {
        buf gz;
        d = slurp("pprof/heap-js.pprof", &n);
        buf_init(&gz, 0);
        ASSERT_OK(gz_compress(d, n, 6, &gz));
        char th[] = "X-Scope-OrgID: anonymous";
        const char *hs[] = {th, "Content-Encoding: gzip", NULL};
        ASSERT_EQ(http(&t, "POST", "/ingest?name=jsheap&format=pprof", hs, gz.data, gz.len, &out), 200);
        free(d);
        buf_release(&gz);
    }
    buf_release(&out);
    buf_release(&body);
    server_stop(t.s);
}

/* PushRequest{series{labels, samples{raw_profile}}} */
static void push_request(buf *b, const char *service, const void *raw, size_t n)
{
    long s = wire_begin(b, 1), l;
    const char *names[] = {"__name__", "service_name", "region"};
    const char *values[] = {"process_cpu", service, "eu"};
    for (int i = 0; i < 3; i++) {
        l = wire_begin(b, 1);
        wire_put_bytes(b, 1, names[i], strlen(names[i]));
        wire_put_bytes(b, 2, values[i], strlen(values[i]));
        wire_end(b, l);
    }
    l = wire_begin(b, 2);
    wire_put_bytes(b, 1, raw, n);
    wire_put_bytes(b, 2, "id-1", 4);
    wire_end(b, l);
    wire_end(b, s);
}

TEST(push_proto_json_and_otlp_round_trip)
{
    srv_t t;
    buf out, req;
    size_t n;
    char *d = slurp("pprof/cpu.pb.gz", &n);
    int64_t want = file_total("pprof/cpu.pb.gz", NULL, "cpu");
    srv_up(&t, NULL);
    buf_init(&out, 0);
    buf_init(&req, 0);

    push_request(&req, "pushproto", d, n);
    {
        const char *hs[] = {"Content-Type: application/proto", NULL};
        ASSERT_EQ(http(&t, "POST", "/push.v1.PusherService/Push", hs, req.data, req.len, &out), 200);
    }
    CHECK_ALL_ROUTES(&t, NULL, CPU, "{service_name=\\\"pushproto\\\",region=\\\"eu\\\"}", want);

    /* the JSON form, gzip-compressed body */
    {
        buf js, gz, b64;
        const char *hs[] = {"Content-Type: application/json", "Content-Encoding: gzip", NULL};
        buf_init(&js, 0);
        buf_init(&gz, 0);
        buf_init(&b64, 0);
        extern int b64_encode(const void *p, size_t n, buf *out);
        b64_encode(d, n, &b64);
        buf_printf(&js, "{\"series\":[{\"labels\":[{\"name\":\"__name__\",\"value\":\"process_cpu\"},{\"name\":\"service_name\",\"value\":\"pushjson\"}],"
                        "\"samples\":[{\"rawProfile\":\"%s\",\"ID\":\"x\"}]}]}", b64.data);
        gz_compress(js.data, js.len, 6, &gz);
        ASSERT_EQ(http(&t, "POST", "/push.v1.PusherService/Push", hs, gz.data, gz.len, &out), 200);
        buf_release(&js);
        buf_release(&gz);
        buf_release(&b64);
    }
    CHECK_ALL_ROUTES(&t, NULL, CPU, "{service_name=\\\"pushjson\\\"}", want);
    free(d);

    /* OTLP: protobuf into tenant "otlp-pb", JSON into tenant "otlp-js": same totals */
    {
        size_t npb, njs;
        char *pb = slurp("otlp/otel-ebpf-profile.pb.bin", &npb);
        char *js = slurp("otlp/otel-ebpf-profile.pb.json", &njs);
        const char *h1[] = {"Content-Type: application/x-protobuf", "X-Scope-OrgID: otlp-pb", NULL};
        const char *h2[] = {"Content-Type: application/json", "X-Scope-OrgID: otlp-js", NULL};
        otlp_batch b;
        herr e = {0};
        int64_t off = 0, cpu = 0;
        ASSERT_EQ(http(&t, "POST", "/v1development/profiles", h1, pb, npb, &out), 200);
        ASSERT_EQ(http(&t, "POST", "/v1development/profiles", h2, js, njs, &out), 200);
        ASSERT_OK(otlp_decode(&b, pb, npb, 0, NULL, &e));
        for (size_t i = 0; i < b.n; i++) {
            if (!strcmp(otlp_label(&b.v[i], "__name__"), "off_cpu")) off += prof_total(&b.v[i].prof, 0);
            else cpu += prof_total(&b.v[i].prof, 0);
        }
        otlp_batch_release(&b);
        ASSERT(off > 0 && cpu > 0);
        CHECK_ALL_ROUTES(&t, "otlp-pb", "off_cpu:off_cpu:nanoseconds:off_cpu:nanoseconds", "{}", off);
        CHECK_ALL_ROUTES(&t, "otlp-js", "off_cpu:off_cpu:nanoseconds:off_cpu:nanoseconds", "{}", off);
        ASSERT_EQ(q_flame_total(&t, "otlp-pb", CPU, "{}"), cpu);
        ASSERT_EQ(q_flame_total(&t, "otlp-js", CPU, "{}"), cpu);
        /* tenants are isolated: the default tenant sees none of it */
        ASSERT_EQ(q_flame_total(&t, NULL, "off_cpu:off_cpu:nanoseconds:off_cpu:nanoseconds", "{}"), 0);
        free(pb);
        free(js);
    }
    buf_release(&out);
    buf_release(&req);
    server_stop(t.s);
}

TEST(querier_metadata_rpcs)
{
    srv_t t;
    buf out;
    json_object *o, *arr;
    const char *folded = "a;b 5\na;c 7\n";
    srv_up(&t, NULL);
    buf_init(&out, 0);
    ASSERT_EQ(ingest(&t, "t1", "name=meta.cpu%7Bpod%3Dp1%7D&sampleRate=100", NULL, folded, strlen(folded), &out), 200);
    ASSERT_EQ(ingest(&t, "t1", "name=meta.cpu%7Bpod%3Dp2%7D&sampleRate=100", NULL, folded, strlen(folded), &out), 200);

    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/ProfileTypes", "t1", "{}", &out), 200);
    ASSERT_CONTAINS(out.data, "\"ID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\"");
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/LabelValues", "t1", "{\"name\":\"pod\"}", &out), 200);
    o = parse(&out);
    ASSERT(json_object_object_get_ex(o, "names", &arr));
    ASSERT_EQ(json_object_array_length(arr), 2);
    json_object_put(o);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/LabelNames", "t1", "{\"matchers\":[\"{pod=\\\"p1\\\"}\"]}", &out), 200);
    ASSERT_CONTAINS(out.data, "\"service_name\"");
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/Series", "t1", "{\"matchers\":[\"{service_name=\\\"meta\\\"}\"],\"labelNames\":[\"pod\"]}", &out), 200);
    o = parse(&out);
    ASSERT(json_object_object_get_ex(o, "labelsSet", &arr));
    ASSERT_EQ(json_object_array_length(arr), 2);
    json_object_put(o);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/GetProfileStats", "t1", "{}", &out), 200);
    ASSERT_CONTAINS(out.data, "\"dataIngested\":true");
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/GetProfileStats", "t2", "{}", &out), 200);
    ASSERT_CONTAINS(out.data, "\"dataIngested\":false");
    /* group by pod: two series */
    {
        char req[512];
        snprintf(req, sizeof req, "{\"profileTypeID\":\"%s\",\"labelSelector\":\"{}\",\"start\":\"%" PRId64 "\",\"end\":\"%" PRId64 "\",\"step\":60,\"groupBy\":[\"pod\"]}",
                 CPU, now_ns() / 1000000 - 600000, now_ns() / 1000000 + 60000);
        ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/SelectSeries", "t1", req, &out), 200);
        o = parse(&out);
        ASSERT(json_object_object_get_ex(o, "series", &arr));
        ASSERT_EQ(json_object_array_length(arr), 2);
        json_object_put(o);
    }
    /* diff: left pod p1, right pod p2, both 12 samples -> ticks 120 ms each */
    {
        char req[1024];
        json_object *fg;
        snprintf(req, sizeof req,
                 "{\"left\":{\"profileTypeID\":\"%s\",\"labelSelector\":\"{pod=\\\"p1\\\"}\",\"start\":\"0\",\"end\":\"%" PRId64 "\"},"
                 "\"right\":{\"profileTypeID\":\"%s\",\"labelSelector\":\"{pod=\\\"p2\\\"}\",\"start\":\"0\",\"end\":\"%" PRId64 "\"}}",
                 CPU, now_ns() / 1000000 + 60000, CPU, now_ns() / 1000000 + 60000);
        ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/Diff", "t1", req, &out), 200);
        o = parse(&out);
        ASSERT(json_object_object_get_ex(o, "flamegraph", &fg));
        ASSERT_EQ(jint(fg, "leftTicks"), 120000000);
        ASSERT_EQ(jint(fg, "rightTicks"), 120000000);
        json_object_put(o);
    }
    /* legacy label values */
    {
        const char *hs[] = {"X-Scope-OrgID: t1", NULL};
        ASSERT_EQ(http(&t, "GET", "/pyroscope/label-values?label=pod", hs, NULL, 0, &out), 200);
        ASSERT_CONTAINS(out.data, "\"p2\"");
    }
    buf_release(&out);
    server_stop(t.s);
}

TEST(auth_tokens_bound_to_tenants)
{
    srv_t t;
    buf out;
    char path[512];
    FILE *f;
    const char *body = "a;b 1\n";
    snprintf(path, sizeof path, "%s/tokens", t_tmpdir());
    f = fopen(path, "w");
    fprintf(f, "# token tenants\nsecret1 team-a\nsecret2 team-b,team-c\nadmin *\n");
    fclose(f);
    srv_up(&t, path);
    buf_init(&out, 0);
    {
        const char *none[] = {NULL};
        ASSERT_EQ(http(&t, "POST", "/ingest?name=x.cpu", none, body, strlen(body), &out), 401);
        ASSERT_CONTAINS(out.data, "Authorization");
    }
    {
        const char *bad[] = {"Authorization: Bearer nope", NULL};
        ASSERT_EQ(http(&t, "POST", "/ingest?name=x.cpu", bad, body, strlen(body), &out), 401);
    }
    {
        const char *other[] = {"Authorization: Bearer secret1", "X-Scope-OrgID: team-b", NULL};
        ASSERT_EQ(http(&t, "POST", "/ingest?name=x.cpu", other, body, strlen(body), &out), 403);
    }
    {
        const char *ok[] = {"Authorization: Bearer secret1", NULL};
        ASSERT_EQ(http(&t, "POST", "/ingest?name=x.cpu", ok, body, strlen(body), &out), 200);
    }
    {
        /* basic auth: user team-c, password secret2 */
        const char *basic[] = {"Authorization: Basic dGVhbS1jOnNlY3JldDI=", NULL};
        ASSERT_EQ(http(&t, "POST", "/ingest?name=y.cpu", basic, body, strlen(body), &out), 200);
    }
    {
        const char *h[] = {"Authorization: Bearer admin", "X-Scope-OrgID: team-a", "Content-Type: application/json", NULL};
        char req[512];
        snprintf(req, sizeof req, "{\"name\":\"service_name\",\"start\":\"0\",\"end\":\"%" PRId64 "\"}", now_ns() / 1000000 + 60000);
        ASSERT_EQ(http(&t, "POST", "/querier.v1.QuerierService/LabelValues", h, req, strlen(req), &out), 200);
        ASSERT_CONTAINS(out.data, "\"x\"");
        ASSERT(!strstr(out.data, "\"y\""));  /* y went to team-c */
    }
    {
        const char *h[] = {"Content-Type: application/json", NULL};
        ASSERT_EQ(http(&t, "POST", "/querier.v1.QuerierService/LabelNames", h, "{}", 2, &out), 401);
        ASSERT_CONTAINS(out.data, "\"code\":\"unauthenticated\"");
    }
    {
        const char *none[] = {NULL};
        ASSERT_EQ(http(&t, "GET", "/ready", none, NULL, 0, &out), 200);  /* ops routes stay open */
    }
    buf_release(&out);
    server_stop(t.s);
}

TEST(hostile_inputs_get_4xx_and_server_keeps_serving)
{
    srv_t t;
    buf out;
    size_t n;
    char *d;
    const char *good = "main;work 10\n";
    srv_up(&t, NULL);
    buf_init(&out, 0);
    ASSERT_EQ(ingest(&t, NULL, "name=keep.cpu&sampleRate=100", NULL, good, strlen(good), &out), 200);

    d = slurp("pprof/go-sample.cpu.pb.gz", &n);
    {
        /* truncated pprof: gunzip the file and cut it in half */
        buf raw;
        herr e = {0};
        buf_init(&raw, 0);
        ASSERT_OK(gz_decompress(d, n, &raw, &e));
        ASSERT_EQ(ingest(&t, NULL, "name=bad.cpu&format=pprof", NULL, raw.data, raw.len / 2, &out), 400);
        ASSERT(out.len > 10);
        buf_release(&raw);
        ASSERT_EQ(ingest(&t, NULL, "name=bad.cpu&format=pprof", NULL, d, n / 2, &out), 400);
    }
    free(d);
    {
        char junk[4096];
        uint64_t x = 88172645463325252ULL;
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            junk[i] = (char)x;
        }
        ASSERT_EQ(ingest(&t, NULL, "name=bad.cpu&format=pprof", NULL, junk, sizeof junk, &out), 400);
        ASSERT_EQ(ingest(&t, NULL, "name=bad.cpu", NULL, junk, sizeof junk, &out) / 100, 4);
        const char *hs[] = {"Content-Type: application/x-protobuf", NULL};
        ASSERT_EQ(http(&t, "POST", "/v1development/profiles", hs, junk, sizeof junk, &out), 400);
    }
    {
        /* gzip bomb: 1 GiB of zeros is a ~1 MiB gzip body; the decompressed cap (64 MiB here) stops it */
        buf bomb, zeros;
        const char *hs[] = {"Content-Encoding: gzip", NULL};
        buf_init(&zeros, 0);
        buf_init(&bomb, 0);
        buf_reserve(&zeros, 128u << 20);
        memset(zeros.data, 0, 128u << 20);
        zeros.len = 128u << 20;
        ASSERT_OK(gz_compress(zeros.data, zeros.len, 9, &bomb));
        buf_release(&zeros);
        ASSERT_EQ(http(&t, "POST", "/ingest?name=bomb.cpu&format=pprof", hs, bomb.data, bomb.len, &out), 413);
        ASSERT_CONTAINS(out.data, "decompresses past");
        buf_release(&bomb);
    }
    {
        /* body over --max-body-size (8 MiB here) */
        char *big = xcalloc(9u << 20, 1);
        const char *hs[] = {"Expect: 100-continue", NULL};
        ASSERT_EQ(ingest(&t, NULL, "name=big.cpu", NULL, big, 9u << 20, &out), 413);
        ASSERT_CONTAINS(out.data, "--max-body-size");
        /* a client that waits for 100 Continue is answered before it sends the body */
        ASSERT_EQ(http(&t, "POST", "/ingest?name=big.cpu&format=pprof", hs, big, 9u << 20, &out), 413);
        ASSERT_CONTAINS(out.data, "larger than the limit");
        free(big);
    }
    ASSERT_EQ(ingest(&t, NULL, "name=", NULL, good, strlen(good), &out), 400);
    ASSERT_EQ(ingest(&t, NULL, "name=app.cpu%7B1bad%3Dx%7D", NULL, good, strlen(good), &out), 400);
    ASSERT_CONTAINS(out.data, "label name");
    ASSERT_EQ(ingest(&t, NULL, "name=app.notatype", NULL, good, strlen(good), &out), 400);
    ASSERT_CONTAINS(out.data, "unknown profile type");
    ASSERT_EQ(ingest(&t, NULL, "name=app.cpu&from=yesterday", NULL, good, strlen(good), &out), 400);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/SelectMergeStacktraces", NULL,
                        "{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{service_name=~\\\"(\\\"}\"}", &out), 400);
    ASSERT_CONTAINS(out.data, "\"code\":\"invalid_argument\"");
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/SelectMergeStacktraces", NULL, "{\"profileTypeID\":\"cpu\"}", &out), 400);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/LabelNames", NULL, "{not json", &out), 400);
    ASSERT_CONTAINS(out.data, "\"message\"");
    ASSERT_EQ(post_json(&t, "/push.v1.PusherService/Push", NULL, "{\"series\":[{\"samples\":[{\"rawProfile\":\"!!!\"}]}]}", &out), 400);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/Nope", NULL, "{}", &out), 501);
    {
        const char *hs[] = {"X-Scope-OrgID: bad/tenant", NULL};
        ASSERT_EQ(http(&t, "POST", "/ingest?name=x.cpu", hs, good, strlen(good), &out), 400);
    }
    ASSERT_EQ(http(&t, "GET", "/ingest", NULL, NULL, 0, &out), 405);
    /* still serving, data intact */
    ASSERT_EQ(http(&t, "GET", "/ready", NULL, NULL, 0, &out), 200);
    ASSERT_EQ(q_flame_total(&t, NULL, CPU, "{service_name=\\\"keep\\\"}"), 100000000);
    ASSERT_EQ(http(&t, "GET", "/metrics", NULL, NULL, 0, &out), 200);
    ASSERT_CONTAINS(out.data, "hearth_http_requests_total{route=\"/ingest\",code=\"400\"}");
    ASSERT_CONTAINS(out.data, "hearth_ingested_profiles_total{tenant=\"anonymous\"}");
    buf_release(&out);
    server_stop(t.s);
}

/* ---- bounded concurrent load ---- */

typedef struct load_arg {
    const srv_t *t;
    int writer;
    int64_t deadline;
    long ok, fail;
    const char *payload;
    size_t n;
} load_arg;

static void *load_thread(void *p)
{
    load_arg *a = p;
    buf out;
    buf_init(&out, 0);
    while (mono_ns() < a->deadline) {
        long st;
        if (a->writer) st = ingest(a->t, "load", "name=load.cpu&format=pprof", NULL, a->payload, a->n, &out);
        else {
            char req[512];
            snprintf(req, sizeof req, "{\"profileTypeID\":\"%s\",\"labelSelector\":\"{}\",\"start\":\"0\",\"end\":\"%" PRId64 "\",\"maxNodes\":\"1024\"}",
                     CPU, now_ns() / 1000000 + 60000);
            st = post_json(a->t, "/querier.v1.QuerierService/SelectMergeStacktraces", "load", req, &out);
        }
        if (st == 200) a->ok++;
        else a->fail++;
    }
    buf_release(&out);
    return NULL;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return v;
}

TEST(concurrent_writers_and_readers)
{
    srv_t t;
    size_t n;
    char *d = slurp("pprof/go-sample.cpu.pb.gz", &n);
    load_arg a[6];
    pthread_t th[6];
    long w_ok = 0, r_ok = 0, fails = 0;
    int64_t t0;
    const char *secs_env = getenv("HEARTH_LOAD_SECONDS");
    double secs = secs_env ? atof(secs_env) : 2.0;
    srv_up(&t, NULL);
    t0 = mono_ns();
    for (int i = 0; i < 6; i++) {
        a[i] = (load_arg){&t, i < 4, t0 + (int64_t)(secs * 1e9), 0, 0, d, n};
        pthread_create(&th[i], NULL, load_thread, &a[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        if (a[i].writer) w_ok += a[i].ok;
        else r_ok += a[i].ok;
        fails += a[i].fail;
    }
    printf("load: %.1f s, 4 writers %ld ingests (%.0f/s), 2 readers %ld flame graphs (%.0f/s), %ld failures, RSS %ld KiB\n",
           secs, w_ok, w_ok / secs, r_ok, r_ok / secs, fails, rss_kib());
    ASSERT_EQ(fails, 0);
    ASSERT(w_ok > 0 && r_ok > 0);
    ASSERT_EQ(q_flame_total(&t, "load", CPU, "{}"), w_ok * file_total("pprof/go-sample.cpu.pb.gz", NULL, "cpu"));
    free(d);
    server_stop(t.s);
}

/* Total of samples of type `type` whose label `key` is one of ids[0..n). */
static int64_t span_total(const char *rel, const char *type, const char *key, const char *const *ids, size_t n)
{
    size_t len;
    char *d = slurp(rel, &len);
    profile p;
    herr e = {0};
    int64_t sum = 0;
    int t;
    prof_init(&p);
    if (pprof_decode(&p, d, len, 0, &e)) t_fail(__FILE__, __LINE__, "%s: %s", rel, e.msg);
    t = prof_type_index(&p, type);
    for (size_t i = 0; i < p.n_samples; i++) {
        const char *v = prof_sample_label(&p, i, key);
        for (size_t k = 0; v && k < n; k++)
            if (!strcmp(v, ids[k])) sum += prof_values(&p, i)[t];
    }
    prof_release(&p);
    free(d);
    return sum;
}

/* The first n distinct values of label key in a pprof file. */
static size_t span_ids(const char *rel, const char *key, char ids[][64], size_t max)
{
    size_t len, n = 0;
    char *d = slurp(rel, &len);
    profile p;
    herr e = {0};
    prof_init(&p);
    if (pprof_decode(&p, d, len, 0, &e)) t_fail(__FILE__, __LINE__, "%s: %s", rel, e.msg);
    for (size_t i = 0; i < p.n_samples && n < max; i++) {
        const char *v = prof_sample_label(&p, i, key);
        size_t k;
        if (!v) continue;
        for (k = 0; k < n && strcmp(ids[k], v); k++) {}
        if (k == n) snprintf(ids[n++], 64, "%s", v);
    }
    prof_release(&p);
    free(d);
    return n;
}

/*
 * Total of the spans' profile from SelectMergeSpanProfile; the pprof of the
 * same spans (SelectMergeProfile with hearth's spanSelector extension) must
 * hold the same total.
 */
static int64_t q_span_total(const srv_t *t, const char *sel, char ids[][64], size_t n)
{
    buf req, out;
    json_object *o, *fg;
    int64_t total, ptotal;
    long st;
    buf_init(&req, 0);
    buf_init(&out, 0);
    buf_printf(&req, "{\"profileTypeID\":\"%s\",\"labelSelector\":\"%s\",\"start\":\"0\",\"end\":\"%" PRId64 "\",\"spanSelector\":[",
               CPU, sel, now_ns() / 1000000 + 3600000);
    for (size_t k = 0; k < n; k++) buf_printf(&req, "%s\"%s\"", k ? "," : "", ids[k]);
    buf_puts(&req, "]}");
    st = post_json(t, "/querier.v1.QuerierService/SelectMergeSpanProfile", NULL, req.data, &out);
    if (st != 200) t_fail(__FILE__, __LINE__, "SelectMergeSpanProfile: %ld %s", st, out.data);
    o = parse(&out);
    if (!json_object_object_get_ex(o, "flamegraph", &fg)) t_fail(__FILE__, __LINE__, "no flamegraph");
    total = jint(fg, "total");
    json_object_put(o);
    st = post_json(t, "/querier.v1.QuerierService/SelectMergeProfile", NULL, req.data, &out);
    if (st != 200) t_fail(__FILE__, __LINE__, "SelectMergeProfile with spanSelector: %ld %s", st, out.data);
    ptotal = pprof_json_total(parse(&out));
    if (ptotal != total)
        t_fail(__FILE__, __LINE__, "pprof of the spans totals %" PRId64 ", their flame graph %" PRId64, ptotal, total);
    buf_release(&req);
    buf_release(&out);
    return total;
}

TEST(span_profiles_and_legacy_profile_id)
{
    srv_t t;
    buf out;
    size_t n;
    char *d;
    char ids[3][64];
    size_t k;
    srv_up(&t, NULL);
    buf_init(&out, 0);

    /* 33 of 63 samples carry span_id: they stay per sample, one series */
    d = slurp("pprof/single_group_with_optional_span_id.pb.gz", &n);
    ASSERT_EQ(ingest(&t, NULL, "name=spans.cpu&format=pprof", NULL, d, n, &out), 200);
    free(d);
    k = span_ids("pprof/single_group_with_optional_span_id.pb.gz", "span_id", ids, 2);
    ASSERT(k >= 1);
    {
        const char *one[] = {ids[0]};
        int64_t w1 = span_total("pprof/single_group_with_optional_span_id.pb.gz", "cpu", "span_id", one, 1);
        int64_t all = file_total("pprof/single_group_with_optional_span_id.pb.gz", NULL, "cpu");
        ASSERT(w1 > 0 && w1 < all);
        ASSERT_EQ(q_span_total(&t, "{service_name=\\\"spans\\\"}", ids, 1), w1);
        snprintf(ids[1], 64, "00000000deadbeef");
        ASSERT_EQ(q_span_total(&t, "{service_name=\\\"spans\\\"}", ids + 1, 1), 0);
        /* the whole profile is still there for ordinary queries */
        ASSERT_EQ(q_flame_total(&t, NULL, CPU, "{service_name=\\\"spans\\\"}"), all);
    }
    /* span_id is not a series label */
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/LabelNames", NULL, "{}", &out), 200);
    ASSERT(!strstr(out.data, "\"span_id\""));

    /* legacy profile_id labels are read as span_id */
    d = slurp("pprof/go.cpu.labels.pprof", &n);
    ASSERT_EQ(ingest(&t, NULL, "name=legacyid.cpu&format=pprof", NULL, d, n, &out), 200);
    free(d);
    k = span_ids("pprof/go.cpu.labels.pprof", "profile_id", ids, 1);
    ASSERT_EQ(k, 1);
    {
        const char *one[] = {ids[0]};
        int64_t w = span_total("pprof/go.cpu.labels.pprof", "cpu", "profile_id", one, 1);
        ASSERT(w > 0);
        ASSERT_EQ(q_span_total(&t, "{service_name=\\\"legacyid\\\"}", ids, 1), w);
    }
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/LabelNames", NULL, "{}", &out), 200);
    ASSERT(!strstr(out.data, "\"profile_id\""));

    /* render-diff: left and right ticks are each side's total */
    {
        char path[1024];
        json_object *o;
        snprintf(path, sizeof path, "/pyroscope/render-diff?leftQuery=%s&leftFrom=0&leftUntil=now%%2B1h&rightQuery=%s&rightFrom=0&rightUntil=now%%2B1h",
                 "process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds%7Bservice_name%3D%22spans%22%7D",
                 "process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds%7Bservice_name%3D%22legacyid%22%7D");
        ASSERT_EQ(http(&t, "GET", path, NULL, NULL, 0, &out), 200);
        o = parse(&out);
        ASSERT_EQ(jint(o, "leftTicks"), file_total("pprof/single_group_with_optional_span_id.pb.gz", NULL, "cpu"));
        ASSERT_EQ(jint(o, "rightTicks"), file_total("pprof/go.cpu.labels.pprof", NULL, "cpu"));
        json_object_put(o);
    }
    buf_release(&out);
    server_stop(t.s);
}

/* Every pprof test file through Push (proto): each sample type comes back with the file's total. */
TEST(every_pprof_testdata_file_through_push)
{
    static const char *files[] = {
        "cpu.pb.gz", "cpu-exemplars.pb.gz", "cpu-js.pb.gz", "dotnet-pprof-3.pb.gz", "go-sample.cpu.pb.gz",
        "go.cpu.labels.pprof", "go.nomappings.crash.pb.gz", "heap-js.pprof", "heap.pb.gz", "heap_go_truncated_4.pb.gz",
        "invalid_utf8.pb.gz", "no_addr_no_line.pb.gz", "nodejs-heap.pb.gz", "nodejs-wall.pb.gz", "profile_java",
        "profile_nodejs", "profile_python", "profile_ruby", "profile_rust", "pyspy-1.pb.gz",
        "single_group_with_optional_span_id.pb.gz",
    };
    srv_t t;
    buf out, req;
    int checked = 0;
    srv_up(&t, NULL);
    buf_init(&out, 0);
    buf_init(&req, 0);
    for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
        char rel[128], svc[32];
        size_t n;
        char *d;
        profile p;
        herr e = {0};
        int local;
        const char *hs[] = {"Content-Type: application/proto", NULL};
        snprintf(rel, sizeof rel, "pprof/%s", files[f]);
        snprintf(svc, sizeof svc, "file%02zu", f);
        d = slurp(rel, &n);
        prof_init(&p);
        local = pprof_decode(&p, d, n, 0, &e);
        buf_reset(&req);
        push_request(&req, svc, d, n);
        long st = http(&t, "POST", "/push.v1.PusherService/Push", hs, req.data, req.len, &out);
        if (local) {
            /* what our decoder refuses, the server refuses with a message */
            if (st != 400 && st != 413) t_fail(__FILE__, __LINE__, "%s: local decode failed (%s) but Push answered %ld", rel, e.msg, st);
        } else {
            if (st != 200) t_fail(__FILE__, __LINE__, "%s: Push answered %ld: %s", rel, st, out.data);
            for (uint32_t ty = 0; ty < p.n_types; ty++) {
                char type[512], sel[128];
                const char *tn = prof_s(&p, p.sample_types[ty].type), *tu = prof_s(&p, p.sample_types[ty].unit);
                const char *pt = p.period_type.type ? prof_s(&p, p.period_type.type) : tn;
                const char *pu = p.period_type.unit ? prof_s(&p, p.period_type.unit) : tu;  /* per field, as the store derives it */
                snprintf(type, sizeof type, "process_cpu:%s:%s:%s:%s", tn, tu, pt, pu);
                snprintf(sel, sizeof sel, "{service_name=\\\"%s\\\"}", svc);
                int64_t got = q_flame_total(&t, NULL, type, sel), want = prof_total(&p, (int)ty);
                if (got != want) t_fail(__FILE__, __LINE__, "%s type %s: server total %" PRId64 ", file total %" PRId64, rel, type, got, want);
                checked++;
            }
        }
        prof_release(&p);
        free(d);
    }
    ASSERT(checked >= 30);
    printf("checked %d sample types of %zu files\n", checked, ARRAY_SIZE(files));
    buf_release(&out);
    buf_release(&req);
    server_stop(t.s);
}

/* What Grafana's data source sends: Connect with application/proto. Decode the answers with wire.h. */
static int64_t proto_flame_total(const srv_t *t, const char *type, const char *sel, int64_t *n_names, int64_t *n_levels)
{
    buf req, out;
    const char *hs[] = {"Content-Type: application/proto", "Connect-Protocol-Version: 1", NULL};
    wire_rd r, fg;
    uint32_t f;
    int wt;
    int64_t total = -1;
    long st;
    buf_init(&req, 0);
    buf_init(&out, 0);
    wire_put_bytes(&req, 1, type, strlen(type));
    wire_put_bytes(&req, 2, sel, strlen(sel));
    wire_put_uint(&req, 4, (uint64_t)(now_ns() / 1000000 + 3600000));
    wire_put_uint(&req, 5, 100);  /* max_nodes */
    st = http(t, "POST", "/querier.v1.QuerierService/SelectMergeStacktraces", hs, req.data, req.len, &out);
    if (st != 200) t_fail(__FILE__, __LINE__, "proto SelectMergeStacktraces: %ld", st);
    *n_names = *n_levels = 0;
    wire_rd_init(&r, out.data, out.len);
    while (!wire_eof(&r)) {
        const uint8_t *p;
        size_t n;
        ASSERT_OK(wire_tag(&r, &f, &wt));
        ASSERT_EQ(f, 1);
        ASSERT_OK(wire_bytes(&r, &p, &n));
        wire_rd_init(&fg, p, n);
        while (!wire_eof(&fg)) {
            uint64_t v;
            ASSERT_OK(wire_tag(&fg, &f, &wt));
            if (f == 1) { ASSERT_OK(wire_bytes(&fg, &p, &n)); (*n_names)++; }
            else if (f == 2) { ASSERT_OK(wire_bytes(&fg, &p, &n)); (*n_levels)++; }
            else if (f == 3) { ASSERT_OK(wire_expect_varint(&fg, wt, &v)); total = (int64_t)v; }
            else ASSERT_OK(wire_skip(&fg, wt));
        }
    }
    buf_release(&req);
    buf_release(&out);
    return total;
}

TEST(connect_proto_answers_as_grafana_reads_them)
{
    srv_t t;
    buf out;
    size_t n;
    char *d = slurp("pprof/go-large.cpu.pb.gz", &n);
    int64_t names, levels, want = file_total("pprof/go-large.cpu.pb.gz", NULL, "cpu");
    srv_up(&t, NULL);
    buf_init(&out, 0);
    ASSERT_EQ(ingest(&t, NULL, "name=graf.cpu&format=pprof", NULL, d, n, &out), 200);
    free(d);
    ASSERT_EQ(proto_flame_total(&t, CPU, "{service_name=\"graf\"}", &names, &levels), want);
    /* max_nodes 100: at most 100 names besides "total" and "other" */
    ASSERT(names >= 2 && names <= 102);
    ASSERT(levels >= 2);
    {
        /* ProfileTypes over proto: one ProfileType message per type, ID = field 1 */
        const char *hs[] = {"Content-Type: application/proto", NULL};
        wire_rd r;
        uint32_t f;
        int wt, found = 0;
        ASSERT_EQ(http(&t, "POST", "/querier.v1.QuerierService/ProfileTypes", hs, "", 0, &out), 200);
        wire_rd_init(&r, out.data, out.len);
        while (!wire_eof(&r)) {
            const uint8_t *p;
            size_t len;
            wire_rd m;
            ASSERT_OK(wire_tag(&r, &f, &wt));
            ASSERT_OK(wire_bytes(&r, &p, &len));
            wire_rd_init(&m, p, len);
            while (!wire_eof(&m)) {
                ASSERT_OK(wire_tag(&m, &f, &wt));
                ASSERT_OK(wire_bytes(&m, &p, &len));
                if (f == 1 && len == strlen(CPU) && !memcmp(p, CPU, len)) found = 1;
            }
        }
        ASSERT(found);
    }
    {
        /* PROFILE_FORMAT_TREE: Pyroscope's tree bytes; every node once, so the selfs sum to the total */
        buf req;
        const char *hs[] = {"Content-Type: application/proto", NULL};
        wire_rd r, tr;
        uint32_t f;
        int wt;
        int64_t self_sum = 0, nodes = 0, kids_sum = 0;
        buf_init(&req, 0);
        wire_put_bytes(&req, 1, CPU, strlen(CPU));
        wire_put_bytes(&req, 2, "{service_name=\"graf\"}", 21);
        wire_put_uint(&req, 4, (uint64_t)(now_ns() / 1000000 + 3600000));
        wire_put_uint(&req, 5, 100);
        wire_put_uint(&req, 6, 2);
        ASSERT_EQ(http(&t, "POST", "/querier.v1.QuerierService/SelectMergeStacktraces", hs, req.data, req.len, &out), 200);
        wire_rd_init(&r, out.data, out.len);
        ASSERT_OK(wire_tag(&r, &f, &wt));
        ASSERT_EQ(f, 2);
        {
            const uint8_t *p;
            size_t len;
            ASSERT_OK(wire_bytes(&r, &p, &len));
            wire_rd_init(&tr, p, len);
        }
        while (!wire_eof(&tr)) {
            uint64_t nl, self, kids;
            ASSERT_OK(wire_varint(&tr, &nl));
            ASSERT((size_t)(tr.end - tr.p) >= nl);
            tr.p += nl;
            ASSERT_OK(wire_varint(&tr, &self));
            ASSERT_OK(wire_varint(&tr, &kids));
            self_sum += (int64_t)self;
            kids_sum += (int64_t)kids;
            nodes++;
        }
        ASSERT_EQ(self_sum, want);
        ASSERT_EQ(nodes, kids_sum + 1);
        ASSERT(nodes <= 2 * 100 + 2);  /* kept nodes, plus at most one "other" under each */
        buf_release(&req);
    }
    {
        /* errors stay Connect JSON even for proto requests */
        const char *hs[] = {"Content-Type: application/proto", NULL};
        ASSERT_EQ(http(&t, "POST", "/querier.v1.QuerierService/SelectMergeStacktraces", hs, "\xff\xff", 2, &out), 400);
        ASSERT_CONTAINS(out.data, "\"code\":\"invalid_argument\"");
    }
    buf_release(&out);
    server_stop(t.s);
}

TEST(stack_trace_selector_keeps_one_call_site)
{
    srv_t t;
    buf out;
    const char *folded = "a;b;c 5\na;b;d 3\na;e 2\nx;b 7\n";
    json_object *o, *fg, *names;
    char req[1024];
    srv_up(&t, NULL);
    buf_init(&out, 0);
    ASSERT_EQ(ingest(&t, NULL, "name=focus.cpu&sampleRate=1", NULL, folded, strlen(folded), &out), 200);
    snprintf(req, sizeof req, "{\"profileTypeID\":\"%s\",\"labelSelector\":\"{}\",\"start\":\"0\",\"stackTraceSelector\":{\"callSite\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}", CPU);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/SelectMergeStacktraces", NULL, req, &out), 200);
    o = parse(&out);
    ASSERT(json_object_object_get_ex(o, "flamegraph", &fg));
    ASSERT_EQ(jint(fg, "total"), 8000000000LL);
    ASSERT(json_object_object_get_ex(fg, "names", &names));
    ASSERT(!strstr(json_object_to_json_string(names), "\"e\""));
    ASSERT(!strstr(json_object_to_json_string(names), "\"x\""));
    ASSERT(strstr(json_object_to_json_string(names), "\"d\""));
    json_object_put(o);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/SelectMergeProfile", NULL, req, &out), 200);
    {
        json_object *samples;
        int64_t sum = 0;
        o = parse(&out);
        ASSERT(json_object_object_get_ex(o, "sample", &samples));
        for (size_t i = 0; i < json_object_array_length(samples); i++) {
            json_object *v;
            json_object_object_get_ex(json_object_array_get_idx(samples, i), "value", &v);
            sum += json_object_get_int64(json_object_array_get_idx(v, 0));
        }
        ASSERT_EQ(sum, 8000000000LL);
        json_object_put(o);
    }
    snprintf(req, sizeof req, "{\"profileTypeID\":\"%s\",\"start\":\"0\",\"stackTraceSelector\":{\"callSite\":[{\"name\":\"nope\"}]}}", CPU);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/SelectMergeStacktraces", NULL, req, &out), 200);
    o = parse(&out);
    ASSERT(json_object_object_get_ex(o, "flamegraph", &fg));
    ASSERT_EQ(jint(fg, "total"), 0);
    json_object_put(o);
    buf_release(&out);
    server_stop(t.s);
}

/* Random and mutated bodies to every POST route: never a 5xx, never a crash, and the server keeps its data. */
TEST(random_bodies_to_every_route)
{
    static const char *routes[] = {
        "/ingest?name=r.cpu", "/ingest?name=r.cpu&format=pprof", "/ingest?name=r.cpu&format=speedscope",
        "/ingest?name=r.cpu&format=perf_script", "/ingest?name=r.cpu&format=lines", "/push.v1.PusherService/Push",
        "/v1development/profiles", "/querier.v1.QuerierService/ProfileTypes", "/querier.v1.QuerierService/LabelNames",
        "/querier.v1.QuerierService/LabelValues", "/querier.v1.QuerierService/Series",
        "/querier.v1.QuerierService/SelectMergeStacktraces", "/querier.v1.QuerierService/SelectMergeSpanProfile",
        "/querier.v1.QuerierService/SelectMergeProfile", "/querier.v1.QuerierService/SelectSeries",
        "/querier.v1.QuerierService/Diff", "/querier.v1.QuerierService/GetProfileStats",
    };
    static const char *ctypes[] = {"Content-Type: application/proto", "Content-Type: application/json",
                                   "Content-Type: application/x-protobuf", "Content-Type: multipart/form-data; boundary=zz"};
    srv_t t;
    buf out;
    size_t n_seed;
    char *seed = slurp("pprof/go-sample.cpu.pb.gz", &n_seed);
    buf raw;
    herr e = {0};
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    const char *good = "keep;me 4\n";
    srv_up(&t, NULL);
    buf_init(&out, 0);
    buf_init(&raw, 0);
    ASSERT_OK(gz_decompress(seed, n_seed, &raw, &e));
    ASSERT_EQ(ingest(&t, NULL, "name=stay.cpu&sampleRate=100", NULL, good, strlen(good), &out), 200);
    for (size_t r = 0; r < ARRAY_SIZE(routes); r++) {
        for (int k = 0; k < 12; k++) {
            char body[2048];
            size_t len;
            const char *hs[] = {ctypes[(r + (size_t)k) % ARRAY_SIZE(ctypes)], NULL};
            long st;
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            if (k % 3 == 0) {
                /* a real pprof with a few bytes flipped */
                len = MIN(raw.len, sizeof body);
                memcpy(body, raw.data, len);
                for (int f = 0; f < 4; f++) {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    body[x % len] ^= (char)(x >> 32);
                }
            } else if (k % 3 == 1) {
                static const char *js[] = {"{", "{\"series\":[{\"labels\":7}]}", "{\"start\":{}}", "[]", "null",
                                           "{\"profileTypeID\":\"a:b:c:d:e\",\"labelSelector\":\"{\"}",
                                           "{\"left\":{},\"right\":5}", "{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{}]}]}],\"dictionary\":{}}"};
                const char *j = js[x % ARRAY_SIZE(js)];
                len = strlen(j);
                memcpy(body, j, len);
            } else {
                len = (size_t)(x % sizeof body);
                for (size_t i = 0; i < len; i++) {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    body[i] = (char)x;
                }
            }
            st = http(&t, "POST", routes[r], hs, body, len, &out);
            if (st < 200 || st >= 500)
                t_fail(__FILE__, __LINE__, "%s with a %s body of %zu bytes answered %ld: %.200s", routes[r], hs[0], len, st,
                       out.data ? out.data : "");
        }
    }
    ASSERT_EQ(http(&t, "GET", "/ready", NULL, NULL, 0, &out), 200);
    ASSERT_EQ(q_flame_total(&t, NULL, CPU, "{service_name=\\\"stay\\\"}"), 40000000);
    buf_release(&raw);
    buf_release(&out);
    free(seed);
    server_stop(t.s);
}

/* ---- issue 4: compatibility defects found by comparing with Pyroscope ---- */

/* GET path with tenant t1; body into out. */
static long get_t1(const srv_t *t, const char *path, buf *out)
{
    const char *hs[] = {"X-Scope-OrgID: t1", NULL};
    return http(t, "GET", path, hs, NULL, 0, out);
}

TEST(issue4_render_names_metadata_labels_series)
{
    srv_t t;
    buf out;
    json_object *o, *md, *v, *arr;
    const char *folded = "a;b 10\na;c 5\n";
    srv_up(&t, NULL);
    buf_init(&out, 0);
    ASSERT_EQ(ingest(&t, "t1", "name=memapp.inuse_space", NULL, folded, strlen(folded), &out), 200);
    ASSERT_EQ(ingest(&t, "t1", "name=memapp.goroutines", NULL, folded, strlen(folded), &out), 200);
    ASSERT_EQ(ingest(&t, "t1", "name=cpuapp.cpu%7Bpod%3Dp1%7D&sampleRate=100", NULL, folded, strlen(folded), &out), 200);
    /* folded memory lands in the profile type a Go heap pprof has */
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/ProfileTypes", "t1", "{}", &out), 200);
    ASSERT_CONTAINS(out.data, "\"ID\":\"memory:inuse_space:bytes:space:bytes\"");
    /* the legacy name finds what the legacy name stored */
    ASSERT_EQ(q_render_total(&t, "t1", "memapp.inuse_space", "{}"), 15);
    ASSERT_EQ(q_render_total(&t, "t1", "memapp.goroutines", "{}"), 15);
    /* {__name__="<type>",...} as Pyroscope's parseQuery takes it, the matcher first, last or alone */
    ASSERT_EQ(q_render_total(&t, "t1", "", "{__name__=\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",service_name=\"cpuapp\"}"), 150000000);
    ASSERT_EQ(q_render_total(&t, "t1", "", "{service_name=\"cpuapp\", __name__=\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\"}"), 150000000);
    ASSERT_EQ(q_render_total(&t, "t1", "", "{__name__=\"memory:inuse_space:bytes:space:bytes\"}"), 15);
    ASSERT_EQ(get_t1(&t, "/pyroscope/render?query=%7Bservice_name%3D%22cpuapp%22%7D&from=0&until=now", &out), 400);
    ASSERT_CONTAINS(out.data, "__name__");
    /* metadata as ExportToFlamebearer: name = sample type, sampleRate 1e9 only for cpu */
    ASSERT_EQ(get_t1(&t, "/pyroscope/render?query=cpuapp.cpu%7B%7D&from=0&until=now%2B1h", &out), 200);
    o = parse(&out);
    ASSERT(json_object_object_get_ex(o, "metadata", &md));
    ASSERT(json_object_object_get_ex(md, "name", &v));
    ASSERT_STR(json_object_get_string(v), "cpu");
    ASSERT_EQ(jint(md, "sampleRate"), 1000000000);
    json_object_put(o);
    ASSERT_EQ(get_t1(&t, "/pyroscope/render?query=memapp.inuse_space%7B%7D&from=0&until=now%2B1h", &out), 200);
    o = parse(&out);
    ASSERT(json_object_object_get_ex(o, "metadata", &md));
    ASSERT(json_object_object_get_ex(md, "name", &v));
    ASSERT_STR(json_object_get_string(v), "inuse_space");
    ASSERT_EQ(jint(md, "sampleRate"), 100);
    json_object_put(o);
    /* label-values for __name__ lists profile type IDs */
    ASSERT_EQ(get_t1(&t, "/pyroscope/label-values?label=__name__&from=0&until=now%2B1h", &out), 200);
    ASSERT_CONTAINS(out.data, "\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\"");
    ASSERT_CONTAINS(out.data, "\"memory:inuse_space:bytes:space:bytes\"");
    ASSERT(!strstr(out.data, "\"memory\""));
    /* Series with two matchers that both match one series lists it once, sorted */
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/Series", "t1",
                        "{\"matchers\":[\"{service_name=\\\"memapp\\\"}\",\"{__name__=\\\"memory\\\"}\",\"{service_name=\\\"cpuapp\\\"}\"]}", &out), 200);
    o = parse(&out);
    ASSERT(json_object_object_get_ex(o, "labelsSet", &arr));
    ASSERT_EQ(json_object_array_length(arr), 3);
    json_object_put(o);
    /* times in ms that overflow int64 nanoseconds are a 400, not a wrap */
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/SelectMergeStacktraces", "t1",
                        "{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{}\",\"start\":\"9223372036854775\",\"end\":\"9223372036854775807\"}", &out), 400);
    ASSERT_CONTAINS(out.data, "invalid_argument");
    {
        /* every legacy suffix: what /ingest stores under it, render finds under it */
        const char *sfx[] = {"inuse_objects", "alloc_space", "alloc_objects", "mutex_count", "mutex_duration",
                             "block_count", "block_duration", "lock_count", "exceptions", "live", "wall", "itimer"};
        for (size_t i = 0; i < ARRAY_SIZE(sfx); i++) {
            char q[128], app[64];
            int scaled = !strcmp(sfx[i], "wall") || !strcmp(sfx[i], "itimer");
            snprintf(q, sizeof q, "name=each%zu.%s&sampleRate=100", i, sfx[i]);
            snprintf(app, sizeof app, "each%zu.%s", i, sfx[i]);
            ASSERT_EQ(ingest(&t, "t1", q, NULL, folded, strlen(folded), &out), 200);
            ASSERT_EQ(q_render_total(&t, "t1", app, "{}"), scaled ? 150000000 : 15);
        }
    }
    buf_release(&out);
    server_stop(t.s);
}

TEST(issue4_profile_stats_proto_without_data)
{
    srv_t t;
    buf out;
    const char *hs[] = {"Content-Type: application/proto", "X-Scope-OrgID: empty", NULL};
    srv_up(&t, NULL);
    buf_init(&out, 0);
    ASSERT_EQ(http(&t, "POST", "/querier.v1.QuerierService/GetProfileStats", hs, "", 0, &out), 200);
    ASSERT_EQ(out.len, 0);  /* dataIngested=false and no times: every field at its default */
    buf_release(&out);
    server_stop(t.s);
}

/* A Go-heap-shaped pprof: alloc_space (cumulative) and inuse_space, one sample per folded stack. */
static void heap_pprof(buf *out, const char *const *stacks, const int64_t *alloc, const int64_t *inuse, size_t n)
{
    profile p;
    herr e = {0};
    prof_init(&p);
    ASSERT(prof_add_type(&p, "alloc_space", "bytes") >= 0);
    ASSERT(prof_add_type(&p, "inuse_space", "bytes") >= 0);
    p.period_type.type = (uint32_t)prof_cstr(&p, "space");
    p.period_type.unit = (uint32_t)prof_cstr(&p, "bytes");
    p.period = 524288;
    for (size_t i = 0; i < n; i++) {
        uint32_t locs[16];
        size_t nl = 0;
        const char *s = stacks[i];
        int64_t v[2] = {alloc[i], inuse[i]};
        while (*s && nl < 16) {
            size_t l = strcspn(s, ";");
            locs[nl++] = (uint32_t)prof_location_for_name(&p, s, l);
            s += l + (s[l] == ';');
        }
        ASSERT(prof_sample_add(&p, (uint32_t)prof_stack_root_first(&p, locs, nl), v, NULL, 0) >= 0);
    }
    buf_reset(out);
    ASSERT_OK(pprof_encode(&p, out, 1, &e));
    prof_release(&p);
}

/* One PushRequest series with labels names[i]=values[i] and raw profiles raws[0..n_raw). */
static void push_series(buf *b, const char *const *names, const char *const *values, size_t n, const buf *raws, size_t n_raw)
{
    long s = wire_begin(b, 1), l;
    for (size_t i = 0; i < n; i++) {
        l = wire_begin(b, 1);
        wire_put_bytes(b, 1, names[i], strlen(names[i]));
        wire_put_bytes(b, 2, values[i], strlen(values[i]));
        wire_end(b, l);
    }
    for (size_t i = 0; i < n_raw; i++) {
        l = wire_begin(b, 2);
        wire_put_bytes(b, 1, raws[i].data, raws[i].len);
        wire_end(b, l);
    }
    wire_end(b, s);
}

static long push_proto_body(const srv_t *t, const buf *req, buf *out)
{
    const char *hs[] = {"Content-Type: application/proto", "X-Scope-OrgID: t1", NULL};
    return http(t, "POST", "/push.v1.PusherService/Push", hs, req->data, req->len, out);
}

#define ALLOC "memory:alloc_space:bytes:space:bytes"
#define INUSE "memory:inuse_space:bytes:space:bytes"

TEST(issue4_push_delta_as_pyroscope_head)
{
    srv_t t;
    buf out, req, raw;
    const char *n_sdk[] = {"__name__", "service_name"}, *v_sdk[] = {"memory", "cumul"};
    const char *n_alloy[] = {"__name__", "service_name", "__delta__"}, *v_alloy[] = {"memory", "alloy", "false"};
    const char *st1[] = {"main;alloc"}, *st2[] = {"main;alloc", "main;other"};
    int64_t a1[] = {100}, i1[] = {10}, a2[] = {250}, i2[] = {20}, a3[] = {250, 7}, i3[] = {30, 3}, a4[] = {40}, i4[] = {5};
    srv_up(&t, NULL);
    buf_init(&out, 0);
    buf_init(&req, 0);
    buf_init(&raw, 0);
    /* an SDK-style cumulative heap: first profile is the baseline, then deltas */
    heap_pprof(&raw, st1, a1, i1, 1);
    buf_reset(&req);
    push_series(&req, n_sdk, v_sdk, 2, &raw, 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 200);
    heap_pprof(&raw, st1, a2, i2, 1);
    buf_reset(&req);
    push_series(&req, n_sdk, v_sdk, 2, &raw, 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 200);
    heap_pprof(&raw, st2, a3, i3, 2);
    buf_reset(&req);
    push_series(&req, n_sdk, v_sdk, 2, &raw, 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 200);
    /* alloc: (250-100) + (250-250) + 7; inuse is a gauge, stored as sent */
    ASSERT_EQ(q_flame_total(&t, "t1", ALLOC, "{service_name=\\\"cumul\\\"}"), 157);
    ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"cumul\\\"}"), 10 + 20 + 33);
    /* a counter reset (the process restarted) is a new baseline, not a negative */
    heap_pprof(&raw, st1, a4, i4, 1);
    buf_reset(&req);
    push_series(&req, n_sdk, v_sdk, 2, &raw, 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 200);
    ASSERT_EQ(q_flame_total(&t, "t1", ALLOC, "{service_name=\\\"cumul\\\"}"), 157);

    /* Alloy's delta appender: __delta__="false", stored as sent, and not a label */
    heap_pprof(&raw, st1, a1, i1, 1);
    buf_reset(&req);
    push_series(&req, n_alloy, v_alloy, 3, &raw, 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 200);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 200);
    ASSERT_EQ(q_flame_total(&t, "t1", ALLOC, "{service_name=\\\"alloy\\\"}"), 200);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/LabelNames", "t1", "{}", &out), 200);
    ASSERT(!strstr(out.data, "__delta__"));
    /* ... also on the legacy route */
    ASSERT_EQ(ingest(&t, "t1", "name=legacy.cpu%7B__delta__%3Dfalse%7D", NULL, "a;b 1\n", 6, &out), 200);
    ASSERT_EQ(post_json(&t, "/querier.v1.QuerierService/LabelNames", "t1", "{}", &out), 200);
    ASSERT(!strstr(out.data, "__delta__"));
    buf_release(&out);
    buf_release(&req);
    buf_release(&raw);
    server_stop(t.s);
}

TEST(issue4_push_all_or_nothing_and_strict_json)
{
    srv_t t;
    buf out, req, raws[2];
    const char *n1[] = {"__name__", "service_name"}, *v1[] = {"memory", "first"}, *v2[] = {"memory", "second"};
    const char *st[] = {"main;f"};
    int64_t a[] = {5}, i[] = {6};
    srv_up(&t, NULL);
    buf_init(&out, 0);
    buf_init(&req, 0);
    buf_init(&raws[0], 0);
    buf_init(&raws[1], 0);
    heap_pprof(&raws[0], st, a, i, 1);
    buf_puts(&raws[1], "\x0a\xff\xff not a pprof");
    /* series 1 is fine, series 2 holds a broken profile: 400 and nothing stored */
    push_series(&req, n1, v1, 2, &raws[0], 1);
    push_series(&req, n1, v2, 2, &raws[1], 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 400);
    ASSERT_CONTAINS(out.data, "invalid_argument");
    ASSERT_CONTAINS(out.data, "series[1].samples[0]: pprof");
    ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"first\\\"}"), 0);
    /* the same with the bad series first */
    buf_reset(&req);
    push_series(&req, n1, v2, 2, &raws[1], 1);
    push_series(&req, n1, v1, 2, &raws[0], 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 400);
    ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"first\\\"}"), 0);
    {
        /* JSON: a series that is not an object (protojson refuses it) fails the request */
        buf b64, js;
        buf_init(&b64, 0);
        buf_init(&js, 0);
        ASSERT_OK(b64_encode(raws[0].data, raws[0].len, &b64));
        buf_printf(&js, "{\"series\":[{\"labels\":[{\"name\":\"__name__\",\"value\":\"memory\"},{\"name\":\"service_name\",\"value\":\"jsonok\"}],"
                        "\"samples\":[{\"rawProfile\":\"%.*s\"}]}, 5]}", (int)b64.len, b64.data);
        ASSERT_EQ(post_json(&t, "/push.v1.PusherService/Push", "t1", js.data, &out), 400);
        ASSERT_CONTAINS(out.data, "series[1]");
        ASSERT_EQ(post_json(&t, "/push.v1.PusherService/Push", "t1", "{\"series\":[{\"labels\":[\"x\"]}]}", &out), 400);
        ASSERT_EQ(post_json(&t, "/push.v1.PusherService/Push", "t1", "{\"series\":[{\"samples\":{}}]}", &out), 400);
        ASSERT_EQ(post_json(&t, "/push.v1.PusherService/Push", "t1", "{\"series\":[{\"samples\":[7]}]}", &out), 400);
        ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"jsonok\\\"}"), 0);
        /* the valid series alone is stored */
        buf_reset(&js);
        buf_printf(&js, "{\"series\":[{\"labels\":[{\"name\":\"__name__\",\"value\":\"memory\"},{\"name\":\"service_name\",\"value\":\"jsonok\"}],"
                        "\"samples\":[{\"rawProfile\":\"%.*s\"}]}]}", (int)b64.len, b64.data);
        ASSERT_EQ(post_json(&t, "/push.v1.PusherService/Push", "t1", js.data, &out), 200);
        ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"jsonok\\\"}"), 6);
        /* over the label limit: a permanent error, invalid_argument/400, never 429 */
        buf_reset(&js);
        buf_puts(&js, "{\"series\":[{\"labels\":[");
        for (int k = 0; k < 40; k++) buf_printf(&js, "%s{\"name\":\"l%d\",\"value\":\"v\"}", k ? "," : "", k);
        buf_printf(&js, "],\"samples\":[{\"rawProfile\":\"%.*s\"}]}]}", (int)b64.len, b64.data);
        ASSERT_EQ(post_json(&t, "/push.v1.PusherService/Push", "t1", js.data, &out), 400);
        ASSERT_CONTAINS(out.data, "\"code\":\"invalid_argument\"");
        buf_release(&b64);
        buf_release(&js);
    }
    buf_release(&out);
    buf_release(&req);
    buf_release(&raws[0]);
    buf_release(&raws[1]);
    server_stop(t.s);
}

/* ---- /metrics: exposition validity, WAL fsync histogram, head series ---- */

/*
 * Checks Prometheus text exposition rules the scrapers enforce: every sample
 * belongs to a family declared by one TYPE line (and one HELP) before it;
 * a family's samples are contiguous; histogram buckets per label set are
 * cumulative, end with le="+Inf", and +Inf equals _count. Returns NULL or
 * what is wrong.
 */
static const char *prom_check(const char *text)
{
    static char why[1600];
    char fam[64][128], type[64][16], cur[128] = "", hkey[512] = "";
    int nfam = 0, help_seen = 0;
    double last_le_count = -1, inf_count = -1;
    const char *l = text;
    while (*l) {
        const char *eol = strchr(l, '\n');
        size_t n = eol ? (size_t)(eol - l) : strlen(l);
        char line[1024];
        if (n >= sizeof line) return "line too long";
        memcpy(line, l, n);
        line[n] = 0;
        l += n + (eol != NULL);
        if (!n) continue;
        if (!strncmp(line, "# HELP ", 7)) {
            help_seen = 1;
            continue;
        }
        if (!strncmp(line, "# TYPE ", 7)) {
            char name[128], t[16];
            if (sscanf(line + 7, "%127s %15s", name, t) != 2) return "bad TYPE line";
            for (int i = 0; i < nfam; i++)
                if (!strcmp(fam[i], name)) { snprintf(why, sizeof why, "second TYPE for %s", name); return why; }
            if (!help_seen) { snprintf(why, sizeof why, "TYPE %s without HELP", name); return why; }
            if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram")) return "unknown TYPE";
            if (nfam == 64) return "too many families for the checker";
            snprintf(fam[nfam], sizeof fam[0], "%s", name);
            snprintf(type[nfam++], sizeof type[0], "%s", t);
            snprintf(cur, sizeof cur, "%s", name);
            help_seen = 0;
            last_le_count = -1;
            inf_count = -1;
            hkey[0] = 0;
            continue;
        }
        if (line[0] == '#') continue;
        /* a sample: name{labels} value */
        size_t nl = strcspn(line, "{ ");
        char name[128];
        if (nl >= sizeof name) return "name too long";
        memcpy(name, line, nl);
        name[nl] = 0;
        int fi = -1;
        for (int i = 0; i < nfam; i++)
            if (!strcmp(fam[i], cur)) fi = i;
        if (fi < 0) { snprintf(why, sizeof why, "sample %s before any TYPE", name); return why; }
        size_t cl = strlen(cur);
        const char *suffix = strncmp(name, cur, cl) ? NULL : name + cl;
        if (!suffix) { snprintf(why, sizeof why, "sample %s outside its family (current %s)", name, cur); return why; }
        const char *sp = strrchr(line, ' ');
        if (!sp) return "sample without value";
        double v = strtod(sp + 1, NULL);
        if (!strcmp(type[fi], "histogram")) {
            const char *le = strstr(line, "le=\"");
            if (!strcmp(suffix, "_bucket")) {
                if (!le) return "bucket without le";
                /* the label set without le identifies one histogram */
                char key[512];
                snprintf(key, sizeof key, "%.*s", (int)(le - line), line);
                if (strcmp(key, hkey)) {
                    if (hkey[0] && inf_count < 0) { snprintf(why, sizeof why, "%s: no +Inf bucket", hkey); return why; }
                    snprintf(hkey, sizeof hkey, "%s", key);
                    last_le_count = -1;
                    inf_count = -1;
                }
                if (v < last_le_count) { snprintf(why, sizeof why, "%s: buckets not cumulative", line); return why; }
                last_le_count = v;
                if (!strncmp(le + 4, "+Inf\"", 5)) inf_count = v;
            } else if (!strcmp(suffix, "_count")) {
                if (inf_count < 0) { snprintf(why, sizeof why, "%s: _count before a +Inf bucket", line); return why; }
                if (v != inf_count) { snprintf(why, sizeof why, "%s: _count != +Inf bucket %g", line, inf_count); return why; }
            } else if (strcmp(suffix, "_sum")) {
                snprintf(why, sizeof why, "%s: not a histogram series", line);
                return why;
            }
        } else if (*suffix) {
            snprintf(why, sizeof why, "sample %s outside its family (current %s)", name, cur);
            return why;
        }
    }
    return NULL;
}

/* The value of the sample line that starts with `series ` (name and labels exactly), or -1. */
static double prom_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, series, n) && l[n] == ' ') return strtod(l + n + 1, NULL);
    return -1;
}

TEST(metrics_wal_fsync_histogram_and_head_series)
{
    srv_t t;
    server_config c;
    herr e = {0};
    buf out;
    buf_init(&out, 0);
    snprintf(t.dir, sizeof t.dir, "%s/metrics", t_tmpdir());
    server_config_default(&c);
    c.listen = "127.0.0.1:0";
    c.data_dir = t.dir;
    c.fsync = STORE_FSYNC_ALWAYS;
    c.access_log = 0;
    c.threads = 2;
    if (server_start(&t.s, &c, &e)) t_fail(__FILE__, __LINE__, "server_start: %s", e.msg);
    t.port = server_port(t.s);

    ASSERT_EQ(http(&t, "GET", "/metrics", NULL, NULL, 0, &out), 200);
    const char *bad = prom_check(out.data);
    if (bad) t_fail(__FILE__, __LINE__, "/metrics is not valid exposition: %s", bad);
    double fs0 = prom_value(out.data, "hearth_store_wal_fsync_duration_seconds_count");
    ASSERT(fs0 >= 0);
    ASSERT_EQ(prom_value(out.data, "hearth_store_head_series"), 0);

    /* 5 services, 2 of them with two label sets: 7 series, one partition */
    const char *names[] = {"a.cpu", "b.cpu", "c.cpu", "d.cpu", "e.cpu", "a.cpu%7Benv%3Dprod%7D", "b.cpu%7Benv%3Dprod%7D"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        char q[256];
        snprintf(q, sizeof q, "name=%s&from=1700000000&until=1700000010", names[i]);
        ASSERT_EQ(ingest(&t, "t1", q, NULL, "main;f 3\n", 9, &out), 200);
    }
    /* the same series again adds no series */
    ASSERT_EQ(ingest(&t, "t1", "name=a.cpu&from=1700000001&until=1700000011", NULL, "main;g 3\n", 9, &out), 200);
    ASSERT_EQ(http(&t, "GET", "/metrics", NULL, NULL, 0, &out), 200);
    bad = prom_check(out.data);
    if (bad) t_fail(__FILE__, __LINE__, "/metrics is not valid exposition: %s", bad);
    double fs1 = prom_value(out.data, "hearth_store_wal_fsync_duration_seconds_count");
    ASSERT(fs1 >= fs0 + 1);  /* fsync=always: every acknowledged ingest waited for a group commit */
    ASSERT(prom_value(out.data, "hearth_store_wal_fsync_duration_seconds_sum") > 0);
    ASSERT_EQ(prom_value(out.data, "hearth_store_wal_fsync_duration_seconds_bucket{le=\"+Inf\"}"), fs1);
    ASSERT_EQ(prom_value(out.data, "hearth_store_head_series"), 7);
    ASSERT_EQ(prom_value(out.data, "hearth_store_head_profiles"), 8);

    ASSERT_OK(server_flush(t.s, &e));
    ASSERT_EQ(http(&t, "GET", "/metrics", NULL, NULL, 0, &out), 200);
    bad = prom_check(out.data);
    if (bad) t_fail(__FILE__, __LINE__, "/metrics is not valid exposition: %s", bad);
    ASSERT_EQ(prom_value(out.data, "hearth_store_head_series"), 0);
    ASSERT_EQ(prom_value(out.data, "hearth_store_series"), 7);
    ASSERT(prom_value(out.data, "hearth_store_wal_fsync_duration_seconds_count") > fs1);  /* the flush's rotation synced too */

    /* the checker itself rejects what it should */
    ASSERT(prom_check("# HELP x h\n# TYPE x counter\nx 1\n# HELP x h\n# TYPE x counter\nx 2\n") != NULL);
    ASSERT(prom_check("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n") != NULL);
    ASSERT(prom_check("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n") != NULL);
    ASSERT(prom_check("# HELP g g\n# TYPE g gauge\ng 1\ny 2\n") != NULL);
    ASSERT(prom_check("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n") == NULL);
    buf_release(&out);
    server_stop(t.s);
}

/* ---- a Push is stored all or nothing, also when the WAL write fails ---- */

static void srv_up_dir(srv_t *t, const char *dir, uint64_t wal_fail_after)
{
    server_config c;
    herr e = {0};
    snprintf(t->dir, sizeof t->dir, "%s", dir);
    server_config_default(&c);
    c.listen = "127.0.0.1:0";
    c.data_dir = t->dir;
    c.fsync = STORE_FSYNC_NEVER;
    c.access_log = 0;
    c.threads = 2;
    c.wal_fail_after_bytes = wal_fail_after;
    if (server_start(&t->s, &c, &e)) t_fail(__FILE__, __LINE__, "server_start: %s", e.msg);
    t->port = server_port(t->s);
}

TEST(push_is_atomic_when_the_wal_write_fails)
{
    srv_t t;
    buf out, req, raw;
    const char *nm[] = {"__name__", "service_name", "__delta__"};
    const char *v1[] = {"memory", "first", "false"}, *v2[] = {"memory", "second", "false"};
    const char *st[] = {"main;alloc;deep;stack;frame", "main;other;deep;stack;frame"};
    int64_t a[] = {5, 7}, i[] = {6, 8};
    char d1[512], d2[512];
    buf_init(&out, 0);
    buf_init(&req, 0);
    buf_init(&raw, 0);
    heap_pprof(&raw, st, a, i, 2);

    /* the WAL bytes of one series' profile, from a server without the hook */
    snprintf(d1, sizeof d1, "%s/atomic1", t_tmpdir());
    srv_up_dir(&t, d1, 0);
    push_series(&req, nm, v1, 3, &raw, 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 200);
    ASSERT_EQ(http(&t, "GET", "/metrics", NULL, NULL, 0, &out), 200);
    double one = prom_value(out.data, "hearth_store_wal_bytes") - 16;
    ASSERT(one > 0);
    server_stop(t.s);

    /* the disk fills after 1.5 profiles' worth: a Push of two series fails and stores neither */
    snprintf(d2, sizeof d2, "%s/atomic2", t_tmpdir());
    srv_up_dir(&t, d2, (uint64_t)(one * 1.5));
    buf_reset(&req);
    push_series(&req, nm, v1, 3, &raw, 1);
    push_series(&req, nm, v2, 3, &raw, 1);
    ASSERT(push_proto_body(&t, &req, &out) >= 500);
    ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"first\\\"}"), 0);
    ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"second\\\"}"), 0);
    /* one series alone still fits, and is stored */
    buf_reset(&req);
    push_series(&req, nm, v2, 3, &raw, 1);
    ASSERT_EQ(push_proto_body(&t, &req, &out), 200);
    ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"second\\\"}"), 14);
    server_stop(t.s);
    /* after a restart (no hook) nothing of the failed Push comes back from the WAL or blocks */
    srv_up_dir(&t, d2, 0);
    ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"first\\\"}"), 0);
    ASSERT_EQ(q_flame_total(&t, "t1", INUSE, "{service_name=\\\"second\\\"}"), 14);
    buf_release(&out);
    buf_release(&req);
    buf_release(&raw);
    server_stop(t.s);
}

/* ---- OTLP links: the trace and span IDs of each sample reach the store ---- */

static int64_t store_trace_total(store *st, const char *span, const char *trace)
{
    const char *sp[1] = {span}, *tr[1] = {trace};
    store_query q;
    flame_tree ft;
    herr e = {0};
    memset(&q, 0, sizeof q);
    q.tenant = "anonymous";
    q.profile_type = CPU;
    q.start_ns = INT64_MIN;
    q.span_ids = span ? sp : NULL;
    q.n_span_ids = span ? 1 : 0;
    q.trace_ids = trace ? tr : NULL;
    q.n_trace_ids = trace ? 1 : 0;
    flame_init(&ft);
    ASSERT_OK(store_select_merge_tree(st, &q, &ft, 0, &e));
    int64_t v = flame_total(&ft, 0);
    flame_release(&ft);
    return v;
}

TEST(otlp_link_trace_ids_are_stored_per_sample)
{
    const char *js =
        "{\"resourceProfiles\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
        "\"scopeProfiles\":[{\"profiles\":[{\"sampleType\":{\"typeStrindex\":1,\"unitStrindex\":2},"
        "\"periodType\":{\"typeStrindex\":3,\"unitStrindex\":4},\"period\":\"10000000\","
        "\"samples\":[{\"stackIndex\":1,\"values\":[\"2\",\"3\"],\"linkIndex\":1},"
        "{\"stackIndex\":2,\"values\":[\"7\"]},"
        "{\"stackIndex\":1,\"timestampsUnixNano\":[\"1\",\"2\"],\"attributeIndices\":[1]}]}]}]}],"
        "\"dictionary\":{\"stringTable\":[\"\",\"samples\",\"count\",\"cpu\",\"nanoseconds\",\"main\",\"service.name\",\"other\",\"work\"],"
        "\"functionTable\":[{},{\"nameStrindex\":5},{\"nameStrindex\":8}],"
        "\"locationTable\":[{},{\"lines\":[{\"functionIndex\":1}]},{\"lines\":[{\"functionIndex\":2}]}],"
        "\"linkTable\":[{},{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8\"}],"
        "\"attributeTable\":[{},{\"keyStrindex\":6,\"value\":{\"stringValue\":\"other\"}}],"
        "\"stackTable\":[{},{\"locationIndices\":[1]},{\"locationIndices\":[2]}]}}";
    srv_t t;
    buf out;
    store *st;
    store_opts o;
    herr e = {0};
    srv_up(&t, NULL);
    buf_init(&out, 0);
    ASSERT_EQ(post_json(&t, "/v1development/profiles", NULL, js, &out), 200);
    ASSERT_EQ(q_flame_total(&t, NULL, CPU, "{service_name=\\\"svc\\\"}"), 120000000);
    ASSERT_EQ(q_flame_total(&t, NULL, CPU, "{service_name=\\\"other\\\"}"), 20000000);
    server_stop(t.s);
    buf_release(&out);
    /* Pyroscope's API has no trace filter; the store's does: one trace's samples only. */
    store_opts_default(&o);
    ASSERT_OK(store_open(&st, t.dir, &o, &e));
    ASSERT_EQ(store_trace_total(st, NULL, NULL), 140000000);
    ASSERT_EQ(store_trace_total(st, NULL, "0102030405060708090a0b0c0d0e0f10"), 50000000);
    ASSERT_EQ(store_trace_total(st, "a1a2a3a4a5a6a7a8", "0102030405060708090a0b0c0d0e0f10"), 50000000);
    ASSERT_EQ(store_trace_total(st, NULL, "ffffffffffffffffffffffffffffffff"), 0);
    store_close(st);
}

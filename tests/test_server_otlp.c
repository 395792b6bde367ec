/*
 * test_server_otlp.c: the OTLP profiles decoder against the OpenTelemetry
 * eBPF profiler's real request, in both encodings: the protobuf and the JSON
 * form of the same request must give the same profiles, labels and totals;
 * damaged input must fail with a message, never crash.
 */
#include "core/common.h"
#include "core/mem.h"
#include "core/wire.h"

#include <json-c/json.h>
#include "format/otlp.h"
#include "t.h"

static int64_t batch_total(const otlp_batch *b)
{
    int64_t sum = 0;
    for (size_t i = 0; i < b->n; i++) sum += prof_total(&b->v[i].prof, 0);
    return sum;
}

TEST(otlp_proto_and_json_agree)
{
    size_t npb, njs;
    char *pb = t_read_file(t_testdata("otlp/otel-ebpf-profile.pb.bin"), &npb);
    char *js = t_read_file(t_testdata("otlp/otel-ebpf-profile.pb.json"), &njs);
    otlp_batch a, b;
    herr e = {0};
    int n_cpu = 0;
    ASSERT_OK(otlp_decode(&a, pb, npb, 0, NULL, &e));
    ASSERT_OK(otlp_decode(&b, js, njs, 1, NULL, &e));
    ASSERT_EQ(a.n, b.n);
    ASSERT(a.n >= 77);  /* one per resource profile at least */
    ASSERT(batch_total(&a) > 0);
    ASSERT_EQ(batch_total(&a), batch_total(&b));
    for (size_t i = 0; i < a.n; i++) {
        ASSERT_EQ(a.v[i].prof.n_samples, b.v[i].prof.n_samples);
        ASSERT_EQ(prof_total(&a.v[i].prof, 0), prof_total(&b.v[i].prof, 0));
        {
            /* the request holds off-CPU profiles and CPU sample counts with a 50 ms period */
            const char *name = otlp_label(&a.v[i], "__name__");
            const char *type = prof_s(&a.v[i].prof, a.v[i].prof.sample_types[0].type);
            ASSERT(name != NULL);
            if (!strcmp(name, "off_cpu")) ASSERT_STR(type, "off_cpu");
            else { ASSERT_STR(type, "cpu"); ASSERT_STR(name, "process_cpu"); }
            n_cpu += !strcmp(name, "process_cpu");
        }
        ASSERT_STR(otlp_label(&a.v[i], "service_name"), otlp_label(&b.v[i], "service_name"));
        ASSERT(otlp_label(&a.v[i], "service_name") != NULL);
        ASSERT_EQ(a.v[i].time_ns, b.v[i].time_ns);
        ASSERT_OK(prof_validate(&a.v[i].prof, &e));
    }
    ASSERT(n_cpu >= 5);
    otlp_batch_release(&a);
    otlp_batch_release(&b);
    free(pb);
    free(js);
}

TEST(otlp_truncated_and_garbage_fail_cleanly)
{
    size_t npb;
    char *pb = t_read_file(t_testdata("otlp/otel-ebpf-profile.pb.bin"), &npb);
    otlp_batch a;
    int failures = 0;
    /* every truncation point in the first KiB and a stride through the rest */
    for (size_t cut = 1; cut < npb; cut += cut < 1024 ? 1 : 997) {
        herr e = {0};
        int rc = otlp_decode(&a, pb, cut, 0, NULL, &e);
        if (rc) {
            failures++;
            ASSERT(e.msg[0] != 0);
        } else {
            otlp_batch_release(&a);
        }
    }
    ASSERT(failures > 0);
    {
        herr e = {0};
        ASSERT(otlp_decode(&a, "{\"resourceProfiles\": 5}", 23, 1, NULL, &e) != 0);
        ASSERT_CONTAINS(e.msg, "resourceProfiles");
    }
    {
        herr e = {0};
        ASSERT(otlp_decode(&a, "{not json", 9, 1, NULL, &e) != 0);
        ASSERT_CONTAINS(e.msg, "OTLP JSON");
    }
    free(pb);
}

TEST(otlp_bad_index_is_reported)
{
    const char *js =
        "{\"resourceProfiles\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
        "\"scopeProfiles\":[{\"profiles\":[{\"sampleType\":{\"typeStrindex\":1,\"unitStrindex\":2},"
        "\"samples\":[{\"stackIndex\":9,\"values\":[\"5\"]}]}]}]}],"
        "\"dictionary\":{\"stringTable\":[\"\",\"cpu\",\"nanoseconds\"],\"stackTable\":[{}]}}";
    otlp_batch a;
    herr e = {0};
    ASSERT(otlp_decode(&a, js, strlen(js), 1, NULL, &e) == HE_BADREF);
    ASSERT_CONTAINS(e.msg, "stack 9");
}

TEST(otlp_service_name_links_and_cpu_scaling)
{
    const char *js =
        "{\"resourceProfiles\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}},"
        "{\"key\":\"k8s.pod-name\",\"value\":{\"stringValue\":\"p1\"}}]},"
        "\"scopeProfiles\":[{\"profiles\":[{\"sampleType\":{\"typeStrindex\":1,\"unitStrindex\":2},"
        "\"periodType\":{\"typeStrindex\":3,\"unitStrindex\":4},\"period\":\"10000000\","
        "\"samples\":[{\"stackIndex\":1,\"values\":[\"2\",\"3\"],\"linkIndex\":1},"
        "{\"stackIndex\":1,\"timestampsUnixNano\":[\"1\",\"2\"],\"attributeIndices\":[1]}]}]}]}],"
        "\"dictionary\":{\"stringTable\":[\"\",\"samples\",\"count\",\"cpu\",\"nanoseconds\",\"main\",\"service.name\",\"other\"],"
        "\"functionTable\":[{},{\"nameStrindex\":5}],"
        "\"locationTable\":[{},{\"lines\":[{\"functionIndex\":1}]}],"
        "\"linkTable\":[{},{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8\"}],"
        "\"attributeTable\":[{},{\"keyStrindex\":6,\"value\":{\"stringValue\":\"other\"}}],"
        "\"stackTable\":[{},{\"locationIndices\":[1]}]}}";
    otlp_batch a;
    herr e = {0};
    ASSERT_OK(otlp_decode(&a, js, strlen(js), 1, NULL, &e));
    ASSERT_EQ(a.n, 2);
    ASSERT_STR(otlp_label(&a.v[0], "service_name"), "svc");
    ASSERT_STR(otlp_label(&a.v[0], "__name__"), "process_cpu");
    ASSERT_STR(otlp_label(&a.v[0], "k8s.pod_name"), "p1");
    ASSERT_EQ(prof_total(&a.v[0].prof, 0), 50000000);
    ASSERT_STR(prof_sample_label(&a.v[0].prof, 0, "span_id"), "a1a2a3a4a5a6a7a8");
    ASSERT_STR(prof_sample_label(&a.v[0].prof, 0, "trace_id"), "0102030405060708090a0b0c0d0e0f10");
    ASSERT_STR(otlp_label(&a.v[1], "service_name"), "other");
    ASSERT_EQ(prof_total(&a.v[1].prof, 0), 20000000);
    otlp_batch_release(&a);
}

TEST(otlp_scope_attributes_become_labels_after_resource_ones)
{
    const char *js =
        "{\"resourceProfiles\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}},"
        "{\"key\":\"env\",\"value\":{\"stringValue\":\"prod\"}}]},"
        "\"scopeProfiles\":[{\"scope\":{\"name\":\"ebpf\",\"attributes\":[{\"key\":\"env\",\"value\":{\"stringValue\":\"scope-env\"}},"
        "{\"key\":\"profiler\",\"value\":{\"stringValue\":\"otel\"}}]},"
        "\"profiles\":[{\"sampleType\":{\"typeStrindex\":1,\"unitStrindex\":2},\"samples\":[{\"stackIndex\":1,\"values\":[\"3\"]}]}]}]}],"
        "\"dictionary\":{\"stringTable\":[\"\",\"off_cpu\",\"nanoseconds\",\"main\"],\"functionTable\":[{},{\"nameStrindex\":3}],"
        "\"locationTable\":[{},{\"lines\":[{\"functionIndex\":1}]}],\"stackTable\":[{},{\"locationIndices\":[1]}]}}";
    otlp_batch a;
    herr e = {0};
    ASSERT_OK(otlp_decode(&a, js, strlen(js), 1, NULL, &e));
    ASSERT_EQ(a.n, 1);
    ASSERT_STR(otlp_label(&a.v[0], "env"), "prod");
    ASSERT_STR(otlp_label(&a.v[0], "profiler"), "otel");
    ASSERT_STR(otlp_label(&a.v[0], "__otel__"), "true");
    ASSERT_EQ(prof_total(&a.v[0].prof, 0), 3);
    otlp_batch_release(&a);
}

TEST(otlp_value_times_period_overflow_is_an_error)
{
    /* a CPU sample count that overflows int64 once scaled by the period (issue 4):
     * a clear error, never a wrapped (negative) value */
    size_t njs;
    char *js = t_read_file(t_testdata("otlp/otel-ebpf-profile.pb.json"), &njs);
    json_object *o = json_tokener_parse(js), *rps, *done = NULL;
    otlp_batch b;
    herr e = {0};
    const char *out;
    ASSERT(o != NULL);
    ASSERT(json_object_object_get_ex(o, "resourceProfiles", &rps));
    for (size_t i = 0; i < json_object_array_length(rps) && !done; i++) {
        json_object *sps;
        if (!json_object_object_get_ex(json_object_array_get_idx(rps, i), "scopeProfiles", &sps)) continue;
        for (size_t k = 0; k < json_object_array_length(sps) && !done; k++) {
            json_object *ps;
            if (!json_object_object_get_ex(json_object_array_get_idx(sps, k), "profiles", &ps)) continue;
            for (size_t m = 0; m < json_object_array_length(ps) && !done; m++) {
                json_object *p = json_object_array_get_idx(ps, m), *samples, *vals;
                if (!json_object_object_get_ex(p, "period", NULL) || !json_object_object_get_ex(p, "samples", &samples) ||
                    !json_object_array_length(samples))
                    continue;
                vals = json_object_new_array();
                json_object_array_add(vals, json_object_new_string("4611686018427387904"));
                json_object_object_add(json_object_array_get_idx(samples, 0), "values", vals);
                done = p;
            }
        }
    }
    ASSERT(done != NULL);
    out = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    ASSERT_EQ(otlp_decode(&b, out, strlen(out), 1, NULL, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "overflows");
    json_object_put(o);
    free(js);
}

TEST(otlp_sample_values_that_overflow_when_summed_are_an_error)
{
    /*
     * A sample's values are summed into one count. Two values whose sum does
     * not fit int64 must be refused with a message (found by fuzz_otlp: the
     * sum was signed overflow), in JSON as in protobuf.
     */
    const char *js =
        "{\"resourceProfiles\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
        "\"scopeProfiles\":[{\"profiles\":[{\"sampleType\":{\"typeStrindex\":1,\"unitStrindex\":2},"
        "\"samples\":[{\"stackIndex\":0,\"values\":[\"9223372036854775807\",\"93\"]}]}]}]}],"
        "\"dictionary\":{\"stringTable\":[\"\",\"samples\",\"count\"],\"stackTable\":[{}]}}";
    const char *js_big =
        "{\"resourceProfiles\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
        "\"scopeProfiles\":[{\"profiles\":[{\"sampleType\":{\"typeStrindex\":1,\"unitStrindex\":2},"
        "\"samples\":[{\"stackIndex\":0,\"values\":[\"99999999999999999999\"]}]}]}]}],"
        "\"dictionary\":{\"stringTable\":[\"\",\"samples\",\"count\"],\"stackTable\":[{}]}}";
    otlp_batch b;
    herr e = {0};
    buf pb = BUF_INIT;
    long rp, sp, pr, st, sm, dict, kv, val;
    const int64_t vals[] = {INT64_MAX, 93};

    ASSERT_EQ(otlp_decode(&b, js, strlen(js), 1, NULL, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "overflow");
    memset(&e, 0, sizeof e);
    ASSERT_EQ(otlp_decode(&b, js_big, strlen(js_big), 1, NULL, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "overflow");

    /* the same request in protobuf (ExportProfilesServiceRequest, proto v1.10+ numbering) */
    rp = wire_begin(&pb, 1);                       /* resource_profiles */
    {
        long res = wire_begin(&pb, 1);             /* resource */
        kv = wire_begin(&pb, 1);                   /* attributes */
        wire_put_bytes(&pb, 1, "service.name", 12);
        val = wire_begin(&pb, 2);
        wire_put_bytes(&pb, 1, "svc", 3);
        wire_end(&pb, val);
        wire_end(&pb, kv);
        wire_end(&pb, res);
        sp = wire_begin(&pb, 2);                   /* scope_profiles */
        pr = wire_begin(&pb, 2);                   /* profiles */
        st = wire_begin(&pb, 1);                   /* sample_type */
        wire_put_uint(&pb, 1, 1);
        wire_put_uint(&pb, 2, 2);
        wire_end(&pb, st);
        sm = wire_begin(&pb, 2);                   /* samples */
        wire_put_packed_i64(&pb, 4, vals, 2);
        wire_end(&pb, sm);
        wire_end(&pb, pr);
        wire_end(&pb, sp);
    }
    wire_end(&pb, rp);
    dict = wire_begin(&pb, 2);                     /* dictionary */
    wire_put_bytes(&pb, 5, "", 0);                 /* string_table */
    wire_put_bytes(&pb, 5, "samples", 7);
    wire_put_bytes(&pb, 5, "count", 5);
    {
        long stack = wire_begin(&pb, 7);           /* stack_table: one empty stack */
        wire_end(&pb, stack);
    }
    wire_end(&pb, dict);
    memset(&e, 0, sizeof e);
    ASSERT_EQ(otlp_decode(&b, pb.data, pb.len, 0, NULL, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "overflow");
    buf_release(&pb);
}

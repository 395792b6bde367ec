/*
 * otlp.c: OTLP profiles (v1development, v1.10+ numbering) -> hearth profiles.
 *
 * Two passes. First the request is read into flat intermediate tables
 * (dictionary tables, resources, profiles, samples) that reference the
 * input bytes (protobuf) or the json-c tree (JSON) without copying; every
 * table size is capped. Then each (profile, service) pair is converted into
 * a profile model instance, mapping dictionary indices to model indices
 * lazily through per-output caches, checking every index on the way.
 *
 * Field numbers (protobuf), taken from the published proto and checked
 * against the OpenTelemetry eBPF profiler's output in testdata/otlp:
 *   ExportProfilesServiceRequest: resource_profiles 1, dictionary 2
 *   ResourceProfiles: resource 1 (Resource.attributes 1), scope_profiles 2
 *   ScopeProfiles: scope 1 (InstrumentationScope.attributes 3), profiles 2
 *   Profile: sample_type 1, samples 2, time_unix_nano 3 (fixed64),
 *            duration_nano 4, period_type 5, period 6
 *   ValueType: type_strindex 1, unit_strindex 2
 *   Sample: stack_index 1, attribute_indices 2, link_index 3, values 4,
 *           timestamps_unix_nano 5 (fixed64)
 *   ProfilesDictionary: mapping_table 1, location_table 2, function_table 3,
 *           link_table 4, string_table 5, attribute_table 6, stack_table 7
 *   Mapping: memory_start 1, memory_limit 2, file_offset 3, filename_strindex 4
 *   Location: mapping_index 1, address 2, lines 3
 *   Line: function_index 1, line 2, column 3
 *   Function: name_strindex 1, system_name_strindex 2, filename_strindex 3,
 *             start_line 4
 *   Link: trace_id 1, span_id 2 (bytes)
 *   KeyValueAndUnit (attribute_table): key_strindex 1, value 2
 *   KeyValue (resource): key 1, value 2; AnyValue: string_value 1,
 *           bool_value 2, int_value 3, double_value 4, bytes_value 7
 */
#include "core/common.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>

#include "core/mem.h"
#include "core/wire.h"
#include "format/otlp.h"

typedef struct ostr { const char *p; size_t n; } ostr;
typedef struct omapping { uint64_t start, limit, offset; int64_t filename; } omapping;
typedef struct oline { int64_t function, line, column; } oline;
typedef struct olocation { int64_t mapping; uint64_t address; size_t first_line, n_lines; } olocation;
typedef struct ofunction { int64_t name, system_name, filename, start_line; } ofunction;
typedef struct olink { ostr trace_id, span_id; int hex; } olink;
typedef struct oattr { int64_t key; ostr key_str; ostr str; int is_str; } oattr;
typedef struct ostack { size_t first, n; } ostack;
typedef struct osample { int64_t stack, link; size_t first_attr, n_attr; int64_t value; } osample;
typedef struct oresource { size_t first_attr, n_attr; } oresource;
typedef struct oprofile {
    int64_t type, unit, ptype, punit, period;
    uint64_t time, duration;
    size_t first_sample, n_samples, resource;
    size_t scope;  /* into scopes: the InstrumentationScope's attributes */
} oprofile;

#define VEC(T, name) T *name; size_t n_##name, cap_##name
typedef struct otab {
    VEC(ostr, strings);
    VEC(omapping, mappings);
    VEC(oline, lines);
    VEC(olocation, locations);
    VEC(ofunction, functions);
    VEC(olink, links);
    VEC(oattr, attrs);       /* dictionary attribute table */
    VEC(oattr, res_attrs);   /* resource attributes (key_str set) */
    VEC(int64_t, idx);       /* pool: stack location indices, sample attribute indices */
    VEC(ostack, stacks);
    VEC(osample, samples);
    VEC(oresource, resources);
    VEC(oresource, scopes);
    VEC(oprofile, profiles);
    herr *e;
} otab;

#define PUSH(t, name, val)                                                              \
    ({ int _rc = 0;                                                                     \
       if ((t)->n_##name >= OTLP_MAX_TABLE) _rc = herr_set((t)->e, HE_TOOBIG, "OTLP " #name " table has more than %u entries", OTLP_MAX_TABLE); \
       else if (HGROW((t)->name, (t)->cap_##name, (t)->n_##name + 1)) _rc = -ENOMEM;   \
       else (t)->name[(t)->n_##name++] = (val);                                         \
       _rc; })

static void otab_release(otab *t)
{
    free(t->strings); free(t->mappings); free(t->lines); free(t->locations); free(t->functions);
    free(t->links); free(t->attrs); free(t->res_attrs); free(t->idx); free(t->stacks);
    free(t->samples); free(t->resources); free(t->scopes); free(t->profiles);
}

/* ================= protobuf ================= */

#define TRY(x) do { int _r = (x); if (_r) return _r; } while (0)

static int pb_err(otab *t, int rc, const char *what)
{
    return herr_set(t->e, rc, "OTLP protobuf: malformed %s (%s)", what, hearth_strerror(rc));
}

static int pb_sub(wire_rd *r, int wt, wire_rd *sub)
{
    const uint8_t *p;
    size_t n;
    if (wt != WT_LEN) return HE_WIRETYPE;
    TRY(wire_bytes(r, &p, &n));
    wire_rd_init(sub, p, n);
    return 0;
}

static int pb_int(wire_rd *r, int wt, int64_t *v)
{
    uint64_t u;
    TRY(wire_expect_varint(r, wt, &u));
    *v = (int64_t)u;
    return 0;
}

static int pb_u64(wire_rd *r, int wt, uint64_t *v)
{
    if (wt == WT_I64) return wire_fixed64(r, v);
    return wire_expect_varint(r, wt, v);
}

static int pb_value_type(wire_rd *r, int wt, int64_t *type, int64_t *unit)
{
    wire_rd s;
    uint32_t f;
    int w;
    TRY(pb_sub(r, wt, &s));
    while (!wire_eof(&s)) {
        TRY(wire_tag(&s, &f, &w));
        if (f == 1) TRY(pb_int(&s, w, type));
        else if (f == 2) TRY(pb_int(&s, w, unit));
        else TRY(wire_skip(&s, w));
    }
    return 0;
}

/* AnyValue: string_value only (others are not labels). */
static int pb_anyvalue(wire_rd *r, int wt, oattr *a)
{
    wire_rd s;
    uint32_t f;
    int w;
    TRY(pb_sub(r, wt, &s));
    while (!wire_eof(&s)) {
        TRY(wire_tag(&s, &f, &w));
        if (f == 1 && w == WT_LEN) {
            const uint8_t *p;
            size_t n;
            TRY(wire_bytes(&s, &p, &n));
            a->str.p = (const char *)p;
            a->str.n = n;
            a->is_str = 1;
        } else {
            TRY(wire_skip(&s, w));
        }
    }
    return 0;
}

/* Repeated int (packed or not) appended to the idx pool. */
static int pb_indices(otab *t, wire_rd *r, int wt)
{
    wire_scalar_iter it;
    uint64_t v;
    int rc;
    TRY(wire_scalar_begin(&it, r, wt));
    while ((rc = wire_scalar_next(&it, &v)) == 1) TRY(PUSH(t, idx, (int64_t)(int32_t)v));
    return rc;
}

static int pb_dictionary(otab *t, wire_rd *r, int wt)
{
    wire_rd d;
    uint32_t f;
    int w;
    TRY(pb_sub(r, wt, &d));
    while (!wire_eof(&d)) {
        wire_rd s;
        uint32_t g;
        int x;
        TRY(wire_tag(&d, &f, &w));
        switch (f) {
        case 1: {
            omapping m = {0, 0, 0, 0};
            TRY(pb_sub(&d, w, &s));
            while (!wire_eof(&s)) {
                TRY(wire_tag(&s, &g, &x));
                if (g == 1) TRY(pb_u64(&s, x, &m.start));
                else if (g == 2) TRY(pb_u64(&s, x, &m.limit));
                else if (g == 3) TRY(pb_u64(&s, x, &m.offset));
                else if (g == 4) TRY(pb_int(&s, x, &m.filename));
                else TRY(wire_skip(&s, x));
            }
            TRY(PUSH(t, mappings, m));
            break;
        }
        case 2: {
            olocation l = {0, 0, t->n_lines, 0};
            TRY(pb_sub(&d, w, &s));
            while (!wire_eof(&s)) {
                TRY(wire_tag(&s, &g, &x));
                if (g == 1) TRY(pb_int(&s, x, &l.mapping));
                else if (g == 2) TRY(pb_u64(&s, x, &l.address));
                else if (g == 3) {
                    wire_rd ls;
                    uint32_t h;
                    int y;
                    oline ln = {0, 0, 0};
                    TRY(pb_sub(&s, x, &ls));
                    while (!wire_eof(&ls)) {
                        TRY(wire_tag(&ls, &h, &y));
                        if (h == 1) TRY(pb_int(&ls, y, &ln.function));
                        else if (h == 2) TRY(pb_int(&ls, y, &ln.line));
                        else if (h == 3) TRY(pb_int(&ls, y, &ln.column));
                        else TRY(wire_skip(&ls, y));
                    }
                    TRY(PUSH(t, lines, ln));
                    l.n_lines++;
                } else TRY(wire_skip(&s, x));
            }
            l.first_line = t->n_lines - l.n_lines;
            TRY(PUSH(t, locations, l));
            break;
        }
        case 3: {
            ofunction fn = {0, 0, 0, 0};
            TRY(pb_sub(&d, w, &s));
            while (!wire_eof(&s)) {
                TRY(wire_tag(&s, &g, &x));
                if (g == 1) TRY(pb_int(&s, x, &fn.name));
                else if (g == 2) TRY(pb_int(&s, x, &fn.system_name));
                else if (g == 3) TRY(pb_int(&s, x, &fn.filename));
                else if (g == 4) TRY(pb_int(&s, x, &fn.start_line));
                else TRY(wire_skip(&s, x));
            }
            TRY(PUSH(t, functions, fn));
            break;
        }
        case 4: {
            olink lk;
            memset(&lk, 0, sizeof lk);
            TRY(pb_sub(&d, w, &s));
            while (!wire_eof(&s)) {
                const uint8_t *p;
                size_t n;
                TRY(wire_tag(&s, &g, &x));
                if ((g == 1 || g == 2) && x == WT_LEN) {
                    TRY(wire_bytes(&s, &p, &n));
                    if (g == 1) lk.trace_id = (ostr){(const char *)p, n};
                    else lk.span_id = (ostr){(const char *)p, n};
                } else TRY(wire_skip(&s, x));
            }
            TRY(PUSH(t, links, lk));
            break;
        }
        case 5: {
            const uint8_t *p;
            size_t n;
            if (w != WT_LEN) return HE_WIRETYPE;
            TRY(wire_bytes(&d, &p, &n));
            TRY(PUSH(t, strings, ((ostr){(const char *)p, n})));
            break;
        }
        case 6: {
            oattr a;
            memset(&a, 0, sizeof a);
            TRY(pb_sub(&d, w, &s));
            while (!wire_eof(&s)) {
                TRY(wire_tag(&s, &g, &x));
                if (g == 1) TRY(pb_int(&s, x, &a.key));
                else if (g == 2) TRY(pb_anyvalue(&s, x, &a));
                else TRY(wire_skip(&s, x));
            }
            TRY(PUSH(t, attrs, a));
            break;
        }
        case 7: {
            ostack st = {t->n_idx, 0};
            TRY(pb_sub(&d, w, &s));
            while (!wire_eof(&s)) {
                TRY(wire_tag(&s, &g, &x));
                if (g == 1) TRY(pb_indices(t, &s, x));
                else TRY(wire_skip(&s, x));
            }
            st.n = t->n_idx - st.first;
            TRY(PUSH(t, stacks, st));
            break;
        }
        default:
            TRY(wire_skip(&d, w));
        }
    }
    return 0;
}

static int pb_sample(otab *t, wire_rd *r, int wt)
{
    wire_rd s;
    uint32_t f;
    int w;
    osample sm = {0, 0, 0, 0, 0};
    size_t n_values = 0, n_ts = 0;
    size_t attr_first = 0, n_attr = 0;
    int have_attr = 0;
    TRY(pb_sub(r, wt, &s));
    while (!wire_eof(&s)) {
        TRY(wire_tag(&s, &f, &w));
        if (f == 1) TRY(pb_int(&s, w, &sm.stack));
        else if (f == 2) {
            size_t before = t->n_idx;
            if (have_attr && attr_first + n_attr != before)
                return herr_set(t->e, HE_FORMAT, "OTLP sample attribute_indices are split around other fields");
            if (!have_attr) attr_first = before;
            have_attr = 1;
            TRY(pb_indices(t, &s, w));
            n_attr += t->n_idx - before;
        } else if (f == 3) TRY(pb_int(&s, w, &sm.link));
        else if (f == 4) {
            wire_scalar_iter it;
            uint64_t v;
            int rc;
            TRY(wire_scalar_begin(&it, &s, w));
            while ((rc = wire_scalar_next(&it, &v)) == 1) {
                if (__builtin_add_overflow(sm.value, (int64_t)v, &sm.value))
                    return herr_set(t->e, HE_FORMAT, "OTLP sample values overflow int64 when summed");
                n_values++;
            }
            if (rc) return rc;
        } else if (f == 5) {
            if (w == WT_LEN) {
                const uint8_t *p;
                size_t n;
                TRY(wire_bytes(&s, &p, &n));
                if (n % 8) return herr_set(t->e, HE_FORMAT, "OTLP sample timestamps_unix_nano is not a whole number of fixed64");
                n_ts += n / 8;
            } else if (w == WT_I64) {
                uint64_t v;
                TRY(wire_fixed64(&s, &v));
                n_ts++;
            } else return HE_WIRETYPE;
        } else TRY(wire_skip(&s, w));
    }
    if (!n_values) sm.value = (int64_t)n_ts;
    sm.first_attr = attr_first;
    sm.n_attr = n_attr;
    return PUSH(t, samples, sm);
}

static int pb_profile(otab *t, wire_rd *r, int wt, size_t resource, size_t scope)
{
    wire_rd s;
    uint32_t f;
    int w;
    oprofile p;
    memset(&p, 0, sizeof p);
    p.resource = resource;
    p.scope = scope;
    p.first_sample = t->n_samples;
    TRY(pb_sub(r, wt, &s));
    while (!wire_eof(&s)) {
        TRY(wire_tag(&s, &f, &w));
        if (f == 1) TRY(pb_value_type(&s, w, &p.type, &p.unit));
        else if (f == 2) TRY(pb_sample(t, &s, w));
        else if (f == 3) TRY(pb_u64(&s, w, &p.time));
        else if (f == 4) TRY(pb_u64(&s, w, &p.duration));
        else if (f == 5) TRY(pb_value_type(&s, w, &p.ptype, &p.punit));
        else if (f == 6) TRY(pb_int(&s, w, &p.period));
        else TRY(wire_skip(&s, w));
    }
    p.n_samples = t->n_samples - p.first_sample;
    if (t->n_profiles >= OTLP_MAX_PROFILES)
        return herr_set(t->e, HE_TOOBIG, "OTLP request has more than %d profiles", OTLP_MAX_PROFILES);
    return PUSH(t, profiles, p);
}

static int pb_keyvalue(otab *t, wire_rd *r, int wt)
{
    wire_rd s;
    uint32_t f;
    int w;
    oattr a;
    memset(&a, 0, sizeof a);
    TRY(pb_sub(r, wt, &s));
    while (!wire_eof(&s)) {
        TRY(wire_tag(&s, &f, &w));
        if (f == 1 && w == WT_LEN) {
            const uint8_t *p;
            size_t n;
            TRY(wire_bytes(&s, &p, &n));
            a.key_str = (ostr){(const char *)p, n};
        } else if (f == 2) TRY(pb_anyvalue(&s, w, &a));
        else TRY(wire_skip(&s, w));
    }
    return PUSH(t, res_attrs, a);
}

static int pb_resource_profiles(otab *t, wire_rd *r, int wt)
{
    wire_rd s;
    uint32_t f;
    int w;
    oresource res = {t->n_res_attrs, 0};
    size_t ri = t->n_resources;
    TRY(PUSH(t, resources, res));
    TRY(pb_sub(r, wt, &s));
    while (!wire_eof(&s)) {
        TRY(wire_tag(&s, &f, &w));
        if (f == 1) {
            wire_rd rs;
            uint32_t g;
            int x;
            TRY(pb_sub(&s, w, &rs));
            while (!wire_eof(&rs)) {
                TRY(wire_tag(&rs, &g, &x));
                if (g == 1) {
                    size_t before = t->n_res_attrs;
                    if (t->resources[ri].n_attr && t->resources[ri].first_attr + t->resources[ri].n_attr != before)
                        return herr_set(t->e, HE_FORMAT, "OTLP resource attributes are interleaved");
                    if (!t->resources[ri].n_attr) t->resources[ri].first_attr = before;
                    TRY(pb_keyvalue(t, &rs, x));
                    t->resources[ri].n_attr++;
                } else TRY(wire_skip(&rs, x));
            }
        } else if (f == 2) {
            wire_rd sp, first;
            uint32_t g;
            int x;
            oresource sc = {t->n_res_attrs, 0};
            size_t si = t->n_scopes;
            TRY(pb_sub(&s, w, &sp));
            first = sp;
            /* pass 1: the scope (InstrumentationScope: name 1, version 2, attributes 3), wherever it sits */
            while (!wire_eof(&first)) {
                TRY(wire_tag(&first, &g, &x));
                if (g == 1) {
                    wire_rd is;
                    uint32_t h;
                    int y;
                    TRY(pb_sub(&first, x, &is));
                    while (!wire_eof(&is)) {
                        TRY(wire_tag(&is, &h, &y));
                        if (h == 3) {
                            TRY(pb_keyvalue(t, &is, y));
                            sc.n_attr++;
                        } else TRY(wire_skip(&is, y));
                    }
                } else TRY(wire_skip(&first, x));
            }
            TRY(PUSH(t, scopes, sc));
            /* pass 2: the profiles */
            while (!wire_eof(&sp)) {
                TRY(wire_tag(&sp, &g, &x));
                if (g == 2) TRY(pb_profile(t, &sp, x, ri, si));
                else TRY(wire_skip(&sp, x));
            }
        } else TRY(wire_skip(&s, w));
    }
    return 0;
}

static int pb_request(otab *t, const void *data, size_t n)
{
    wire_rd r;
    uint32_t f;
    int w, rc;
    wire_rd_init(&r, data, n);
    while (!wire_eof(&r)) {
        if ((rc = wire_tag(&r, &f, &w))) return pb_err(t, rc, "request");
        if (f == 1) rc = pb_resource_profiles(t, &r, w);
        else if (f == 2) rc = pb_dictionary(t, &r, w);
        else rc = wire_skip(&r, w);
        if (rc) return t->e && t->e->code ? rc : pb_err(t, rc, f == 2 ? "dictionary" : "resource_profiles");
    }
    return 0;
}

/* ================= JSON ================= */

static json_object *jget(json_object *o, const char *camel, const char *snake)
{
    json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object)) return NULL;
    if (json_object_object_get_ex(o, camel, &v)) return v;
    if (snake && json_object_object_get_ex(o, snake, &v)) return v;
    return NULL;
}

static int jint(otab *t, json_object *o, const char *camel, const char *snake, int64_t *v)
{
    json_object *x = jget(o, camel, snake);
    *v = 0;
    if (!x) return 0;
    if (json_object_is_type(x, json_type_int)) {
        *v = json_object_get_int64(x);
        return 0;
    }
    if (json_object_is_type(x, json_type_string)) {
        const char *s = json_object_get_string(x);
        char *end;
        errno = 0;
        *v = (int64_t)strtoll(s, &end, 10);
        if (*end || end == s) {
            errno = 0;
            *v = (int64_t)strtoull(s, &end, 10);
        }
        if (*end || end == s || errno)
            return herr_set(t->e, HE_FORMAT, "OTLP JSON: \"%s\" must be an integer, got \"%.40s\"", camel, s);
        return 0;
    }
    if (json_object_is_type(x, json_type_double)) {
        *v = (int64_t)json_object_get_double(x);
        return 0;
    }
    return herr_set(t->e, HE_FORMAT, "OTLP JSON: \"%s\" must be an integer", camel);
}

static json_object *jarr(otab *t, json_object *o, const char *camel, const char *snake, int *rc)
{
    json_object *x = jget(o, camel, snake);
    *rc = 0;
    if (!x || json_object_is_type(x, json_type_null)) return NULL;
    if (!json_object_is_type(x, json_type_array)) {
        *rc = herr_set(t->e, HE_FORMAT, "OTLP JSON: \"%s\" must be an array", camel);
        return NULL;
    }
    if (json_object_array_length(x) > OTLP_MAX_TABLE) {
        *rc = herr_set(t->e, HE_TOOBIG, "OTLP JSON: \"%s\" has more than %u entries", camel, OTLP_MAX_TABLE);
        return NULL;
    }
    return x;
}

static int jstr(json_object *x, ostr *out)
{
    if (!x || !json_object_is_type(x, json_type_string)) return 0;
    out->p = json_object_get_string(x);
    out->n = (size_t)json_object_get_string_len(x);
    return 1;
}

static int j_anyvalue(json_object *v, oattr *a)
{
    json_object *s = jget(v, "stringValue", "string_value");
    if (s && jstr(s, &a->str)) a->is_str = 1;
    return 0;
}

static int j_indices(otab *t, json_object *o, const char *camel, const char *snake)
{
    int rc;
    json_object *a = jarr(t, o, camel, snake, &rc);
    if (rc || !a) return rc;
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *x = json_object_array_get_idx(a, i);
        int64_t v = json_object_get_int64(x);
        TRY(PUSH(t, idx, v));
    }
    return 0;
}

static int j_dictionary(otab *t, json_object *d)
{
    json_object *a;
    int rc;
    size_t i;
#define EACH(camel, snake) \
    a = jarr(t, d, camel, snake, &rc); if (rc) return rc; \
    for (i = 0; a && i < json_object_array_length(a); i++)
    EACH("stringTable", "string_table") {
        ostr s = {"", 0};
        json_object *x = json_object_array_get_idx(a, i);
        if (!jstr(x, &s)) return herr_set(t->e, HE_FORMAT, "OTLP JSON: stringTable[%zu] is not a string", i);
        TRY(PUSH(t, strings, s));
    }
    EACH("mappingTable", "mapping_table") {
        json_object *x = json_object_array_get_idx(a, i);
        omapping m;
        int64_t v;
        TRY(jint(t, x, "memoryStart", "memory_start", &v)); m.start = (uint64_t)v;
        TRY(jint(t, x, "memoryLimit", "memory_limit", &v)); m.limit = (uint64_t)v;
        TRY(jint(t, x, "fileOffset", "file_offset", &v)); m.offset = (uint64_t)v;
        TRY(jint(t, x, "filenameStrindex", "filename_strindex", &m.filename));
        TRY(PUSH(t, mappings, m));
    }
    EACH("locationTable", "location_table") {
        json_object *x = json_object_array_get_idx(a, i), *ls;
        olocation l = {0, 0, t->n_lines, 0};
        int64_t v;
        TRY(jint(t, x, "mappingIndex", "mapping_index", &l.mapping));
        TRY(jint(t, x, "address", NULL, &v)); l.address = (uint64_t)v;
        ls = jarr(t, x, "lines", "line", &rc);
        if (rc) return rc;
        for (size_t k = 0; ls && k < json_object_array_length(ls); k++) {
            json_object *y = json_object_array_get_idx(ls, k);
            oline ln;
            TRY(jint(t, y, "functionIndex", "function_index", &ln.function));
            TRY(jint(t, y, "line", NULL, &ln.line));
            TRY(jint(t, y, "column", NULL, &ln.column));
            TRY(PUSH(t, lines, ln));
            l.n_lines++;
        }
        TRY(PUSH(t, locations, l));
    }
    EACH("functionTable", "function_table") {
        json_object *x = json_object_array_get_idx(a, i);
        ofunction f;
        TRY(jint(t, x, "nameStrindex", "name_strindex", &f.name));
        TRY(jint(t, x, "systemNameStrindex", "system_name_strindex", &f.system_name));
        TRY(jint(t, x, "filenameStrindex", "filename_strindex", &f.filename));
        TRY(jint(t, x, "startLine", "start_line", &f.start_line));
        TRY(PUSH(t, functions, f));
    }
    EACH("linkTable", "link_table") {
        json_object *x = json_object_array_get_idx(a, i);
        olink lk;
        memset(&lk, 0, sizeof lk);
        lk.hex = 1;
        jstr(jget(x, "traceId", "trace_id"), &lk.trace_id);
        jstr(jget(x, "spanId", "span_id"), &lk.span_id);
        TRY(PUSH(t, links, lk));
    }
    EACH("attributeTable", "attribute_table") {
        json_object *x = json_object_array_get_idx(a, i);
        oattr at;
        memset(&at, 0, sizeof at);
        TRY(jint(t, x, "keyStrindex", "key_strindex", &at.key));
        j_anyvalue(jget(x, "value", NULL), &at);
        TRY(PUSH(t, attrs, at));
    }
    EACH("stackTable", "stack_table") {
        json_object *x = json_object_array_get_idx(a, i);
        ostack st = {t->n_idx, 0};
        TRY(j_indices(t, x, "locationIndices", "location_indices"));
        st.n = t->n_idx - st.first;
        TRY(PUSH(t, stacks, st));
    }
#undef EACH
    return 0;
}

static int j_profile(otab *t, json_object *p, size_t resource, size_t scope)
{
    oprofile op;
    json_object *st, *samples;
    int rc;
    int64_t v;
    memset(&op, 0, sizeof op);
    op.resource = resource;
    op.scope = scope;
    op.first_sample = t->n_samples;
    st = jget(p, "sampleType", "sample_type");
    if (st && json_object_is_type(st, json_type_array)) st = json_object_array_get_idx(st, 0);
    TRY(jint(t, st, "typeStrindex", "type_strindex", &op.type));
    TRY(jint(t, st, "unitStrindex", "unit_strindex", &op.unit));
    st = jget(p, "periodType", "period_type");
    TRY(jint(t, st, "typeStrindex", "type_strindex", &op.ptype));
    TRY(jint(t, st, "unitStrindex", "unit_strindex", &op.punit));
    TRY(jint(t, p, "period", NULL, &op.period));
    TRY(jint(t, p, "timeUnixNano", "time_unix_nano", &v)); op.time = (uint64_t)v;
    TRY(jint(t, p, "durationNano", "duration_nano", &v)); op.duration = (uint64_t)v;
    samples = jarr(t, p, "samples", "sample", &rc);
    if (rc) return rc;
    for (size_t i = 0; samples && i < json_object_array_length(samples); i++) {
        json_object *s = json_object_array_get_idx(samples, i), *vals, *ts;
        osample sm = {0, 0, t->n_idx, 0, 0};
        TRY(jint(t, s, "stackIndex", "stack_index", &sm.stack));
        TRY(jint(t, s, "linkIndex", "link_index", &sm.link));
        TRY(j_indices(t, s, "attributeIndices", "attribute_indices"));
        sm.n_attr = t->n_idx - sm.first_attr;
        vals = jarr(t, s, "values", "value", &rc);
        if (rc) return rc;
        ts = jarr(t, s, "timestampsUnixNano", "timestamps_unix_nano", &rc);
        if (rc) return rc;
        if (vals && json_object_array_length(vals)) {
            for (size_t k = 0; k < json_object_array_length(vals); k++) {
                json_object *x = json_object_array_get_idx(vals, k);
                const char *str = json_object_get_string(x);
                char *end;
                long long n;
                errno = 0;
                n = strtoll(str ? str : "", &end, 10);
                if (!str || *end || end == str)
                    return herr_set(t->e, HE_FORMAT, "OTLP JSON: samples[%zu].values[%zu] is not an integer", i, k);
                if (errno == ERANGE || __builtin_add_overflow(sm.value, (int64_t)n, &sm.value))
                    return herr_set(t->e, HE_FORMAT, "OTLP JSON: samples[%zu].values overflow int64", i);
            }
        } else if (ts) {
            sm.value = (int64_t)json_object_array_length(ts);
        }
        TRY(PUSH(t, samples, sm));
    }
    op.n_samples = t->n_samples - op.first_sample;
    if (t->n_profiles >= OTLP_MAX_PROFILES)
        return herr_set(t->e, HE_TOOBIG, "OTLP request has more than %d profiles", OTLP_MAX_PROFILES);
    return PUSH(t, profiles, op);
}

static int j_request(otab *t, json_object *root)
{
    json_object *rps, *d;
    int rc;
    if (!json_object_is_type(root, json_type_object))
        return herr_set(t->e, HE_FORMAT, "OTLP JSON: the request must be an object");
    d = jget(root, "dictionary", NULL);
    if (d) TRY(j_dictionary(t, d));
    rps = jarr(t, root, "resourceProfiles", "resource_profiles", &rc);
    if (rc) return rc;
    for (size_t i = 0; rps && i < json_object_array_length(rps); i++) {
        json_object *rp = json_object_array_get_idx(rps, i), *attrs, *sps;
        oresource res = {t->n_res_attrs, 0};
        size_t ri = t->n_resources;
        attrs = jarr(t, jget(rp, "resource", NULL), "attributes", NULL, &rc);
        if (rc) return rc;
        for (size_t k = 0; attrs && k < json_object_array_length(attrs); k++) {
            json_object *kv = json_object_array_get_idx(attrs, k);
            oattr a;
            memset(&a, 0, sizeof a);
            jstr(jget(kv, "key", NULL), &a.key_str);
            j_anyvalue(jget(kv, "value", NULL), &a);
            TRY(PUSH(t, res_attrs, a));
            res.n_attr++;
        }
        TRY(PUSH(t, resources, res));
        sps = jarr(t, rp, "scopeProfiles", "scope_profiles", &rc);
        if (rc) return rc;
        for (size_t k = 0; sps && k < json_object_array_length(sps); k++) {
            json_object *sp = json_object_array_get_idx(sps, k);
            json_object *profs = jarr(t, sp, "profiles", NULL, &rc), *sattrs;
            oresource sc = {t->n_res_attrs, 0};
            size_t si = t->n_scopes;
            if (rc) return rc;
            sattrs = jarr(t, jget(sp, "scope", NULL), "attributes", NULL, &rc);
            if (rc) return rc;
            for (size_t a = 0; sattrs && a < json_object_array_length(sattrs); a++) {
                json_object *kv = json_object_array_get_idx(sattrs, a);
                oattr at;
                memset(&at, 0, sizeof at);
                jstr(jget(kv, "key", NULL), &at.key_str);
                j_anyvalue(jget(kv, "value", NULL), &at);
                TRY(PUSH(t, res_attrs, at));
                sc.n_attr++;
            }
            TRY(PUSH(t, scopes, sc));
            for (size_t m = 0; profs && m < json_object_array_length(profs); m++)
                TRY(j_profile(t, json_object_array_get_idx(profs, m), ri, si));
        }
    }
    return 0;
}

/* ================= conversion ================= */

typedef struct conv {
    otab *t;
    profile *p;
    int32_t *loc_map, *fn_map, *map_map;  /* dictionary index -> model index + 1 (0 = not yet) */
    herr *e;
} conv;

static int str_of(conv *c, int64_t i, const char *what, ostr *out)
{
    if (i < 0 || (size_t)i >= c->t->n_strings)
        return herr_set(c->e, HE_BADREF, "OTLP %s refers to string %" PRId64 " (string table has %zu)", what, i, c->t->n_strings);
    *out = c->t->strings[i];
    return 0;
}

static int32_t model_str(conv *c, int64_t i, const char *what)
{
    ostr s = {"", 0};
    int rc = str_of(c, i, what, &s);
    if (rc) return rc;
    return prof_str(c->p, s.p, s.n);
}

static int32_t conv_function(conv *c, int64_t fi)
{
    ofunction *f;
    prof_function pf;
    int32_t r;
    if (fi < 0 || (size_t)fi >= c->t->n_functions)
        return herr_set(c->e, HE_BADREF, "OTLP line refers to function %" PRId64 " (function table has %zu)", fi, c->t->n_functions);
    if (c->fn_map[fi]) return c->fn_map[fi] - 1;
    f = &c->t->functions[fi];
    memset(&pf, 0, sizeof pf);
    if ((r = model_str(c, f->name, "function name")) < 0) return r;
    pf.name = (uint32_t)r;
    if ((r = model_str(c, f->system_name, "function system name")) < 0) return r;
    pf.system_name = (uint32_t)r;
    if ((r = model_str(c, f->filename, "function filename")) < 0) return r;
    pf.filename = (uint32_t)r;
    pf.start_line = f->start_line;
    r = prof_function_add(c->p, &pf);
    if (r < 0) return r;
    c->fn_map[fi] = r + 1;
    return r;
}

static int32_t conv_mapping(conv *c, int64_t mi)
{
    omapping *m;
    prof_mapping pm;
    int32_t r;
    if (mi == 0) return 0;
    if (mi < 0 || (size_t)mi >= c->t->n_mappings)
        return herr_set(c->e, HE_BADREF, "OTLP location refers to mapping %" PRId64 " (mapping table has %zu)", mi, c->t->n_mappings);
    if (c->map_map[mi]) return c->map_map[mi] - 1;
    m = &c->t->mappings[mi];
    memset(&pm, 0, sizeof pm);
    pm.memory_start = m->start;
    pm.memory_limit = m->limit;
    pm.file_offset = m->offset;
    if ((r = model_str(c, m->filename, "mapping filename")) < 0) return r;
    pm.filename = (uint32_t)r;
    r = prof_mapping_add(c->p, &pm);
    if (r < 0) return r;
    c->map_map[mi] = r + 1;
    return r;
}

static int32_t conv_location(conv *c, int64_t li)
{
    olocation *l;
    prof_line lines[64];
    uint32_t n = 0;
    int32_t r, m;
    if (li < 0 || (size_t)li >= c->t->n_locations)
        return herr_set(c->e, HE_BADREF, "OTLP stack refers to location %" PRId64 " (location table has %zu)", li, c->t->n_locations);
    if (c->loc_map[li]) return c->loc_map[li] - 1;
    l = &c->t->locations[li];
    if ((m = conv_mapping(c, l->mapping)) < 0) return m;
    for (size_t k = 0; k < l->n_lines && n < ARRAY_SIZE(lines); k++) {
        oline *ln = &c->t->lines[l->first_line + k];
        if ((r = conv_function(c, ln->function)) < 0) return r;
        lines[n].function = (uint32_t)r;
        lines[n].line = ln->line;
        lines[n].column = ln->column;
        n++;
    }
    r = prof_location_add(c->p, l->address, (uint32_t)m, lines, n);
    if (r < 0) return r;
    c->loc_map[li] = r + 1;
    return r;
}

static void hex_of(const unsigned char *p, size_t n, char *out, size_t out_size)
{
    static const char hx[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < out_size; i++) {
        out[k++] = hx[p[i] >> 4];
        out[k++] = hx[p[i] & 15];
    }
    out[k] = 0;
}

static int b64val(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+' || ch == '-') return 62;
    if (ch == '/' || ch == '_') return 63;
    return -1;
}

/* A link ID as lowercase hex: bytes (protobuf), hex text or base64 text (JSON). */
static void link_id_hex(const ostr *s, int is_text, size_t want_bytes, char *out, size_t out_size)
{
    out[0] = 0;
    if (!s->n) return;
    if (!is_text) {
        hex_of((const unsigned char *)s->p, s->n, out, out_size);
        return;
    }
    if (s->n == want_bytes * 2) {
        size_t i;
        for (i = 0; i < s->n && isxdigit((unsigned char)s->p[i]); i++) {}
        if (i == s->n && s->n < out_size) {
            for (i = 0; i < s->n; i++) out[i] = (char)tolower((unsigned char)s->p[i]);
            out[s->n] = 0;
            return;
        }
    }
    {
        unsigned char raw[64];
        size_t nraw = 0;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < s->n && s->p[i] != '='; i++) {
            int v = b64val((unsigned char)s->p[i]);
            if (v < 0 || nraw >= sizeof raw) return;
            acc = (acc << 6) | (uint32_t)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                raw[nraw++] = (unsigned char)(acc >> bits);
            }
        }
        hex_of(raw, nraw, out, out_size);
    }
}

static int label_safe_name(const char *s, size_t n, char *out, size_t out_size)
{
    size_t k = 0;
    if (!n || n + 1 > out_size) return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                 (i > 0 && ((ch >= '0' && ch <= '9') || ch == '.'));
        out[k++] = ok ? ch : '_';
    }
    out[k] = 0;
    return 0;
}

static int ostr_eq(const ostr *s, const char *lit)
{
    return s->n == strlen(lit) && !memcmp(s->p, lit, s->n);
}

static void add_label(otlp_profile *op, const char *name, const char *value, size_t value_len)
{
    for (size_t i = 0; i < op->n_labels; i++)
        if (!strcmp(op->names[i], name)) return;  /* first one wins */
    op->names = xreallocarray(op->names, op->n_labels + 1, sizeof *op->names);
    op->values = xreallocarray(op->values, op->n_labels + 1, sizeof *op->values);
    op->names[op->n_labels] = xstrdup(name);
    op->values[op->n_labels] = xstrndup(value, value_len);
    op->n_labels++;
}

/* The sample's service.name attribute, or an empty string. */
static ostr sample_service(otab *t, const osample *s)
{
    ostr none = {"", 0};
    for (size_t k = 0; k < s->n_attr; k++) {
        int64_t ai = t->idx[s->first_attr + k];
        oattr *a;
        if (ai < 0 || (size_t)ai >= t->n_attrs) continue;
        a = &t->attrs[ai];
        if (a->is_str && a->key >= 0 && (size_t)a->key < t->n_strings && ostr_eq(&t->strings[a->key], "service.name"))
            return a->str;
    }
    return none;
}

static int convert_one(otab *t, const oprofile *op, const ostr *svc, otlp_profile *out,
                       const prof_limits *lim, herr *e)
{
    conv c;
    ostr type = {"", 0}, unit = {"", 0}, ptype = {"", 0}, punit = {"", 0};
    char tname[128], uname[128];
    const char *metric;
    int to_nanos = 0, rc;
    uint32_t *locs = NULL;
    size_t cap_locs = 0;
    prof_label labels[64];

    memset(&c, 0, sizeof c);
    c.t = t;
    c.p = &out->prof;
    c.e = e;
    if ((rc = prof_init(&out->prof))) return rc;
    if (lim) out->prof.limits = *lim;
    out->time_ns = (int64_t)op->time;
    out->duration_ns = (int64_t)op->duration;
    if ((rc = str_of(&c, op->type, "sample type", &type)) || (rc = str_of(&c, op->unit, "sample unit", &unit)) ||
        (rc = str_of(&c, op->ptype, "period type", &ptype)) || (rc = str_of(&c, op->punit, "period unit", &punit)))
        return rc;
    if (!op->period) ptype = punit = (ostr){"", 0};
    snprintf(tname, sizeof tname, "%.*s", (int)MIN(type.n, 120), type.p);
    snprintf(uname, sizeof uname, "%.*s", (int)MIN(unit.n, 120), unit.p);
    if (!strcmp(tname, "samples") && !strcmp(uname, "count") && ostr_eq(&ptype, "cpu") && ostr_eq(&punit, "nanoseconds")) {
        snprintf(tname, sizeof tname, "cpu");
        snprintf(uname, sizeof uname, "nanoseconds");
        metric = "process_cpu";
        to_nanos = 1;
    } else if (!strcmp(tname, "off_cpu") && !strcmp(uname, "nanoseconds") && !ptype.n) {
        metric = "off_cpu";
    } else {
        metric = NULL;
    }
    if (!tname[0]) return herr_set(e, HE_FORMAT, "OTLP profile has no sample type");
    if ((rc = prof_add_type(&out->prof, tname, uname)) < 0) return rc;
    if (ptype.n) {
        int32_t a = prof_str(&out->prof, ptype.p, ptype.n), b = prof_str(&out->prof, punit.p, punit.n);
        if (a < 0 || b < 0) return -ENOMEM;
        out->prof.period_type.type = (uint32_t)a;
        out->prof.period_type.unit = (uint32_t)b;
        out->prof.period = op->period;
    }
    out->prof.time_nanos = out->time_ns;
    out->prof.duration_nanos = out->duration_ns;

    c.loc_map = xcalloc(t->n_locations + 1, sizeof *c.loc_map);
    c.fn_map = xcalloc(t->n_functions + 1, sizeof *c.fn_map);
    c.map_map = xcalloc(t->n_mappings + 1, sizeof *c.map_map);
    rc = 0;
    for (size_t i = 0; i < op->n_samples && !rc; i++) {
        const osample *s = &t->samples[op->first_sample + i];
        ostr ssvc = sample_service(t, s);
        ostack *st;
        uint32_t n_labels = 0;
        int64_t v = s->value;
        int32_t stack;
        if (!(ssvc.n == svc->n && !memcmp(ssvc.p, svc->p, svc->n))) continue;
        if (s->stack < 0 || (size_t)s->stack >= t->n_stacks) {
            rc = herr_set(e, HE_BADREF, "OTLP sample refers to stack %" PRId64 " (stack table has %zu)", s->stack, t->n_stacks);
            break;
        }
        st = &t->stacks[s->stack];
        if (HGROW(locs, cap_locs, st->n + 1)) { rc = -ENOMEM; break; }
        for (size_t k = 0; k < st->n; k++) {
            int32_t l = conv_location(&c, t->idx[st->first + k]);
            if (l < 0) { rc = l; break; }
            locs[k] = (uint32_t)l;
        }
        if (rc) break;
        stack = prof_stack_leaf_first(&out->prof, locs, st->n);
        if (stack < 0) { rc = stack; break; }
        for (size_t k = 0; k < s->n_attr && n_labels < ARRAY_SIZE(labels) - 2; k++) {
            int64_t ai = t->idx[s->first_attr + k];
            oattr *a;
            ostr key;
            int32_t ks, vs;
            if (ai < 0 || (size_t)ai >= t->n_attrs) {
                rc = herr_set(e, HE_BADREF, "OTLP sample refers to attribute %" PRId64 " (attribute table has %zu)", ai, t->n_attrs);
                break;
            }
            a = &t->attrs[ai];
            if (!a->is_str || !a->str.n) continue;
            if ((rc = str_of(&c, a->key, "attribute key", &key))) break;
            if (ostr_eq(&key, "service.name")) continue;
            ks = prof_str(&out->prof, key.p, key.n);
            vs = prof_str(&out->prof, a->str.p, a->str.n);
            if (ks < 0 || vs < 0) { rc = -ENOMEM; break; }
            labels[n_labels++] = (prof_label){(uint32_t)ks, (uint32_t)vs, 0, 0};
        }
        if (rc) break;
        if (s->link) {
            olink *lk;
            char hex[80];
            if (s->link < 0 || (size_t)s->link >= t->n_links) {
                rc = herr_set(e, HE_BADREF, "OTLP sample refers to link %" PRId64 " (link table has %zu)", s->link, t->n_links);
                break;
            }
            lk = &t->links[s->link];
            link_id_hex(&lk->span_id, lk->hex, 8, hex, sizeof hex);
            if (hex[0]) {
                labels[n_labels++] = (prof_label){(uint32_t)prof_cstr(&out->prof, "span_id"), (uint32_t)prof_cstr(&out->prof, hex), 0, 0};
            }
            link_id_hex(&lk->trace_id, lk->hex, 16, hex, sizeof hex);
            if (strlen(hex) == 32) {
                labels[n_labels++] = (prof_label){(uint32_t)prof_cstr(&out->prof, "trace_id"), (uint32_t)prof_cstr(&out->prof, hex), 0, 0};
            }
        }
        if (to_nanos && __builtin_mul_overflow(v, op->period, &v)) {
            rc = herr_set(e, HE_FORMAT, "OTLP sample value %" PRId64 " times period %" PRId64 " overflows int64", s->value, op->period);
            break;
        }
        if (prof_sample_add(&out->prof, (uint32_t)stack, &v, labels, n_labels) < 0) {
            rc = herr_set(e, HE_TOOBIG, "OTLP profile has more samples than the limit of %u", out->prof.limits.max_samples);
            break;
        }
    }
    free(locs);
    free(c.loc_map);
    free(c.fn_map);
    free(c.map_map);
    if (rc) return rc;

    /* series labels */
    if (!metric) {
        static __thread char mbuf[128];
        snprintf(mbuf, sizeof mbuf, "%.*s", (int)MIN(ptype.n, 120), ptype.p);
        metric = mbuf[0] ? mbuf : tname;
    }
    add_label(out, "__name__", metric, strlen(metric));
    if (svc->n) {
        add_label(out, "service_name", svc->p, svc->n);
    } else {
        const oresource *res = &t->resources[op->resource];
        char fallback[300] = "unknown_service";
        for (size_t k = 0; k < res->n_attr; k++) {
            const oattr *a = &t->res_attrs[res->first_attr + k];
            if (ostr_eq(&a->key_str, "service.name") && a->is_str && a->str.n) {
                add_label(out, "service_name", a->str.p, a->str.n);
                break;
            }
            if (ostr_eq(&a->key_str, "process.executable.name") && a->is_str && a->str.n)
                snprintf(fallback, sizeof fallback, "unknown_service:%.*s", (int)MIN(a->str.n, 256), a->str.p);
        }
        add_label(out, "service_name", fallback, strlen(fallback));
    }
    /* string attributes of the resource, then of the scope; the first of a name wins (as Pyroscope) */
    for (int level = 0; level < 2; level++) {
        const oresource *res = level ? (op->scope < t->n_scopes ? &t->scopes[op->scope] : NULL) : &t->resources[op->resource];
        for (size_t k = 0; res && k < res->n_attr; k++) {
            const oattr *a = &t->res_attrs[res->first_attr + k];
            char name[256];
            if (!a->is_str || !a->str.n || ostr_eq(&a->key_str, "service.name")) continue;
            if (label_safe_name(a->key_str.p, a->key_str.n, name, sizeof name)) continue;
            add_label(out, name, a->str.p, MIN(a->str.n, 1024));
        }
    }
    add_label(out, "__otel__", "true", 4);
    return 0;
}

void otlp_batch_release(otlp_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        otlp_profile *p = &b->v[i];
        for (size_t k = 0; k < p->n_labels; k++) {
            free(p->names[k]);
            free(p->values[k]);
        }
        free(p->names);
        free(p->values);
        prof_release(&p->prof);
    }
    free(b->v);
    b->v = NULL;
    b->n = 0;
}

const char *otlp_label(const otlp_profile *p, const char *name)
{
    for (size_t i = 0; i < p->n_labels; i++)
        if (!strcmp(p->names[i], name)) return p->values[i];
    return NULL;
}

int otlp_decode(otlp_batch *out, const void *data, size_t n, int json, const prof_limits *lim, herr *e)
{
    otab t;
    json_object *root = NULL;
    int rc = 0;

    memset(out, 0, sizeof *out);
    memset(&t, 0, sizeof t);
    t.e = e;
    if (json) {
        json_tokener *tok = json_tokener_new_ex(64);
        if (!tok) return -ENOMEM;
        if (n > INT_MAX) {
            json_tokener_free(tok);
            return herr_set(e, HE_TOOBIG, "OTLP JSON body is larger than 2 GiB");
        }
        root = json_tokener_parse_ex(tok, data, (int)n);
        if (!root || json_tokener_get_error(tok) != json_tokener_success) {
            rc = herr_set(e, HE_FORMAT, "OTLP JSON: %s at offset %zu",
                          json_tokener_error_desc(json_tokener_get_error(tok)), json_tokener_get_parse_end(tok));
            json_tokener_free(tok);
            if (root) json_object_put(root);
            return rc;
        }
        json_tokener_free(tok);
        rc = j_request(&t, root);
    } else {
        rc = pb_request(&t, data, n);
    }
    if (!rc && t.n_profiles && !t.n_strings)
        rc = herr_set(e, HE_FORMAT, "OTLP request has profiles but no dictionary string table");
    for (size_t i = 0; !rc && i < t.n_profiles; i++) {
        const oprofile *op = &t.profiles[i];
        /* distinct services among this profile's samples, in order of appearance */
        ostr *svcs = NULL;
        size_t n_svcs = 0, cap_svcs = 0;
        for (size_t k = 0; k < op->n_samples; k++) {
            ostr s = sample_service(&t, &t.samples[op->first_sample + k]);
            size_t j;
            for (j = 0; j < n_svcs && !(svcs[j].n == s.n && !memcmp(svcs[j].p, s.p, s.n)); j++) {}
            if (j == n_svcs) {
                if (n_svcs >= 1024) { rc = herr_set(e, HE_TOOBIG, "OTLP profile names more than 1024 services"); break; }
                if (HGROW(svcs, cap_svcs, n_svcs + 1)) { rc = -ENOMEM; break; }
                svcs[n_svcs++] = s;
            }
        }
        for (size_t j = 0; !rc && j < n_svcs; j++) {
            if (out->n >= OTLP_MAX_PROFILES) {
                rc = herr_set(e, HE_TOOBIG, "OTLP request makes more than %d profiles", OTLP_MAX_PROFILES);
                break;
            }
            out->v = xreallocarray(out->v, out->n + 1, sizeof *out->v);
            memset(&out->v[out->n], 0, sizeof out->v[out->n]);
            out->n++;
            rc = convert_one(&t, op, &svcs[j], &out->v[out->n - 1], lim, e);
        }
        free(svcs);
    }
    otab_release(&t);
    if (root) json_object_put(root);
    if (rc) {
        if (e && !e->code) herr_set(e, rc, "OTLP: %s", hearth_strerror(rc));
        otlp_batch_release(out);
    }
    return rc;
}

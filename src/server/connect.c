/*
 * connect.c: Connect unary request decoding and error encoding (connect.h).
 *
 * Decoding is table-driven: for protobuf, each tag's field number is looked
 * up in the message table and the value stored at the field's offset in
 * creq; for JSON (json-c), each table entry is looked up by its protojson
 * name or its proto name. int64 fields accept JSON numbers and strings, enum
 * fields accept numbers and the enum value names (PROFILE_FORMAT_TREE ...).
 * Unknown fields are skipped in both encodings, as protobuf requires.
 */
#include "core/common.h"

#include <json-c/json.h>
#include <strings.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/wire.h"
#include "server/connect.h"

#define OFF(f) offsetof(creq, f)

const cfield creq_empty[] = {{0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_profile_types[] = {
    {1, "start", NULL, CF_INT64, OFF(start), NULL, 0},
    {2, "end", NULL, CF_INT64, OFF(end), NULL, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_label_values[] = {
    {1, "name", NULL, CF_STRING, OFF(name), NULL, 0},
    {2, "matchers", NULL, CF_STRINGS, OFF(matchers), NULL, 0},
    {3, "start", NULL, CF_INT64, OFF(start), NULL, 0},
    {4, "end", NULL, CF_INT64, OFF(end), NULL, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_label_names[] = {
    {1, "matchers", NULL, CF_STRINGS, OFF(matchers), NULL, 0},
    {2, "start", NULL, CF_INT64, OFF(start), NULL, 0},
    {3, "end", NULL, CF_INT64, OFF(end), NULL, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_series[] = {
    {1, "matchers", NULL, CF_STRINGS, OFF(matchers), NULL, 0},
    {2, "labelNames", "label_names", CF_STRINGS, OFF(label_names), NULL, 0},
    {3, "start", NULL, CF_INT64, OFF(start), NULL, 0},
    {4, "end", NULL, CF_INT64, OFF(end), NULL, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_merge_stacktraces[] = {
    {1, "profileTypeID", "profile_typeID", CF_STRING, OFF(profile_type), NULL, 0},
    {2, "labelSelector", "label_selector", CF_STRING, OFF(label_selector), NULL, 0},
    {3, "start", NULL, CF_INT64, OFF(start), NULL, 0},
    {4, "end", NULL, CF_INT64, OFF(end), NULL, 0},
    {5, "maxNodes", "max_nodes", CF_INT64, OFF(max_nodes), NULL, 1},
    {6, "format", NULL, CF_ENUM, OFF(format), NULL, 0},
    {7, "stackTraceSelector", "stack_trace_selector", CF_STACK_SELECTOR, OFF(call_site), NULL, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_merge_span[] = {
    {1, "profileTypeID", "profile_typeID", CF_STRING, OFF(profile_type), NULL, 0},
    {2, "labelSelector", "label_selector", CF_STRING, OFF(label_selector), NULL, 0},
    {3, "spanSelector", "span_selector", CF_STRINGS, OFF(span_selector), NULL, 0},
    {4, "start", NULL, CF_INT64, OFF(start), NULL, 0},
    {5, "end", NULL, CF_INT64, OFF(end), NULL, 0},
    {6, "maxNodes", "max_nodes", CF_INT64, OFF(max_nodes), NULL, 1},
    {7, "format", NULL, CF_ENUM, OFF(format), NULL, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_merge_profile[] = {
    {1, "profileTypeID", "profile_typeID", CF_STRING, OFF(profile_type), NULL, 0},
    {2, "labelSelector", "label_selector", CF_STRING, OFF(label_selector), NULL, 0},
    {3, "start", NULL, CF_INT64, OFF(start), NULL, 0},
    {4, "end", NULL, CF_INT64, OFF(end), NULL, 0},
    {5, "maxNodes", "max_nodes", CF_INT64, OFF(max_nodes), NULL, 1},
    {6, "stackTraceSelector", "stack_trace_selector", CF_STACK_SELECTOR, OFF(call_site), NULL, 0},
    /* hearth extension (Pyroscope has no span filter here): the pprof of given spans */
    {1000, "spanSelector", "span_selector", CF_STRINGS, OFF(span_selector), NULL, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_select_series[] = {
    {1, "profileTypeID", "profile_typeID", CF_STRING, OFF(profile_type), NULL, 0},
    {2, "labelSelector", "label_selector", CF_STRING, OFF(label_selector), NULL, 0},
    {3, "start", NULL, CF_INT64, OFF(start), NULL, 0},
    {4, "end", NULL, CF_INT64, OFF(end), NULL, 0},
    {5, "groupBy", "group_by", CF_STRINGS, OFF(group_by), NULL, 0},
    {6, "step", NULL, CF_DOUBLE, OFF(step), NULL, 0},
    {7, "aggregation", NULL, CF_ENUM, OFF(aggregation), NULL, 0},
    {9, "limit", NULL, CF_INT64, OFF(limit), NULL, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};
const cfield creq_diff[] = {
    {1, "left", NULL, CF_MSG, OFF(left), creq_merge_stacktraces, 0},
    {2, "right", NULL, CF_MSG, OFF(right), creq_merge_stacktraces, 0},
    {0, NULL, NULL, 0, 0, NULL, 0}};

static const struct { const char *name; int64_t v; } enum_names[] = {
    {"PROFILE_FORMAT_UNSPECIFIED", 0}, {"PROFILE_FORMAT_FLAMEGRAPH", 1}, {"PROFILE_FORMAT_TREE", 2},
    {"TIME_SERIES_AGGREGATION_TYPE_SUM", 0}, {"TIME_SERIES_AGGREGATION_TYPE_AVERAGE", 1},
};

void creq_release(creq *r)
{
    creq_list *lists[] = {&r->matchers, &r->label_names, &r->span_selector, &r->group_by, &r->call_site};
    free(r->profile_type);
    free(r->label_selector);
    free(r->name);
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
        for (size_t k = 0; k < lists[i]->n; k++) free(lists[i]->v[k]);
        free(lists[i]->v);
    }
    if (r->left) { creq_release(r->left); free(r->left); }
    if (r->right) { creq_release(r->right); free(r->right); }
    memset(r, 0, sizeof *r);
}

static int set_string(char **dst, const char *s, size_t n, const char *field, herr *e)
{
    if (!utf8_valid(s, n)) return herr_set(e, HE_UTF8, "field \"%s\" is not valid UTF-8", field);
    free(*dst);
    *dst = xstrndup(s, n);
    return 0;
}

static int add_string(creq_list *l, const char *s, size_t n, const char *field, herr *e)
{
    if (l->n >= CREQ_MAX_LIST) return herr_set(e, HE_TOOBIG, "field \"%s\" has more than %d entries", field, CREQ_MAX_LIST);
    if (!utf8_valid(s, n)) return herr_set(e, HE_UTF8, "field \"%s\" is not valid UTF-8", field);
    l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
    l->v[l->n++] = xstrndup(s, n);
    return 0;
}

/* ---- protobuf ---- */

static int parse_proto(const void *data, size_t n, const cfield *t, creq *r, int depth, herr *e)
{
    wire_rd rd;
    uint32_t f;
    int wt, rc;
    wire_rd_init(&rd, data, n);
    while (!wire_eof(&rd)) {
        const cfield *fd = NULL;
        if ((rc = wire_tag(&rd, &f, &wt))) return herr_set(e, rc, "malformed protobuf request (%s)", hearth_strerror(rc));
        for (const cfield *c = t; c->json; c++)
            if (c->number == f) fd = c;
        if (!fd) {
            if ((rc = wire_skip(&rd, wt))) return herr_set(e, rc, "malformed protobuf request (%s)", hearth_strerror(rc));
            continue;
        }
        char *base = (char *)r + fd->offset;
        switch (fd->kind) {
        case CF_STRING:
        case CF_STRINGS: {
            const uint8_t *p;
            size_t len;
            if (wt != WT_LEN) return herr_set(e, HE_WIRETYPE, "field \"%s\" has wire type %d, want bytes", fd->json, wt);
            if ((rc = wire_bytes(&rd, &p, &len))) return herr_set(e, rc, "field \"%s\" is truncated", fd->json);
            rc = fd->kind == CF_STRING ? set_string((char **)base, (const char *)p, len, fd->json, e)
                                       : add_string((creq_list *)base, (const char *)p, len, fd->json, e);
            if (rc) return rc;
            break;
        }
        case CF_INT64:
        case CF_ENUM: {
            uint64_t v;
            if ((rc = wire_expect_varint(&rd, wt, &v))) return herr_set(e, rc, "field \"%s\" is not a varint", fd->json);
            *(int64_t *)base = (int64_t)v;
            if (fd->has_flag_offset) r->has_max_nodes = 1;
            break;
        }
        case CF_DOUBLE: {
            uint64_t v;
            double d;
            if (wt != WT_I64) return herr_set(e, HE_WIRETYPE, "field \"%s\" is not a double", fd->json);
            if ((rc = wire_fixed64(&rd, &v))) return herr_set(e, rc, "field \"%s\" is truncated", fd->json);
            memcpy(&d, &v, sizeof d);
            *(double *)base = d;
            break;
        }
        case CF_STACK_SELECTOR: {
            /* StackTraceSelector { repeated Location call_site = 1 { string name = 1; } GoPGO go_pgo = 2; } */
            const uint8_t *p;
            size_t len;
            wire_rd sel;
            if (wt != WT_LEN) return herr_set(e, HE_WIRETYPE, "field \"%s\" is not a message", fd->json);
            if ((rc = wire_bytes(&rd, &p, &len))) return herr_set(e, rc, "field \"%s\" is truncated", fd->json);
            wire_rd_init(&sel, p, len);
            while (!wire_eof(&sel)) {
                uint32_t g;
                int w;
                if ((rc = wire_tag(&sel, &g, &w))) return herr_set(e, rc, "malformed stack_trace_selector");
                if (g == 1 && w == WT_LEN) {
                    wire_rd loc;
                    if ((rc = wire_bytes(&sel, &p, &len))) return herr_set(e, rc, "malformed call_site");
                    wire_rd_init(&loc, p, len);
                    while (!wire_eof(&loc)) {
                        uint32_t h;
                        int x;
                        if ((rc = wire_tag(&loc, &h, &x))) return herr_set(e, rc, "malformed call_site");
                        if (h == 1 && x == WT_LEN) {
                            if ((rc = wire_bytes(&loc, &p, &len))) return herr_set(e, rc, "malformed call_site name");
                            if ((rc = add_string((creq_list *)base, (const char *)p, len, "call_site", e))) return rc;
                        } else if ((rc = wire_skip(&loc, x))) {
                            return herr_set(e, rc, "malformed call_site");
                        }
                    }
                } else if ((rc = wire_skip(&sel, w))) {
                    return herr_set(e, rc, "malformed stack_trace_selector");
                }
            }
            break;
        }
        case CF_MSG: {
            const uint8_t *p;
            size_t len;
            creq **sub = (creq **)base;
            if (depth > 2) return herr_set(e, HE_FORMAT, "request nests too deep");
            if (wt != WT_LEN) return herr_set(e, HE_WIRETYPE, "field \"%s\" is not a message", fd->json);
            if ((rc = wire_bytes(&rd, &p, &len))) return herr_set(e, rc, "field \"%s\" is truncated", fd->json);
            if (!*sub) *sub = xcalloc(1, sizeof **sub);
            if ((rc = parse_proto(p, len, fd->sub, *sub, depth + 1, e))) return rc;
            break;
        }
        }
    }
    return 0;
}

/* ---- JSON ---- */

static int json_int64(json_object *v, const char *field, int64_t *out, herr *e)
{
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return 0;
    }
    if (json_object_is_type(v, json_type_double)) {
        *out = (int64_t)json_object_get_double(v);
        return 0;
    }
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        char *end;
        errno = 0;
        *out = strtoll(s, &end, 10);
        if (!*s || *end || errno) return herr_set(e, HE_FORMAT, "field \"%s\" must be an integer, got \"%.40s\"", field, s);
        return 0;
    }
    if (json_object_is_type(v, json_type_null)) return 0;
    return herr_set(e, HE_FORMAT, "field \"%s\" must be an integer", field);
}

static int parse_json_obj(json_object *o, const cfield *t, creq *r, int depth, herr *e)
{
    int rc;
    if (!json_object_is_type(o, json_type_object)) return herr_set(e, HE_FORMAT, "request body must be a JSON object");
    for (const cfield *fd = t; fd->json; fd++) {
        json_object *v = NULL;
        char *base = (char *)r + fd->offset;
        if (!json_object_object_get_ex(o, fd->json, &v) && !(fd->json_alt && json_object_object_get_ex(o, fd->json_alt, &v)))
            continue;
        if (!v || json_object_is_type(v, json_type_null)) continue;
        switch (fd->kind) {
        case CF_STRING:
            if (!json_object_is_type(v, json_type_string)) return herr_set(e, HE_FORMAT, "field \"%s\" must be a string", fd->json);
            if ((rc = set_string((char **)base, json_object_get_string(v), (size_t)json_object_get_string_len(v), fd->json, e))) return rc;
            break;
        case CF_STRINGS:
            if (!json_object_is_type(v, json_type_array)) return herr_set(e, HE_FORMAT, "field \"%s\" must be an array of strings", fd->json);
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *x = json_object_array_get_idx(v, i);
                if (!json_object_is_type(x, json_type_string))
                    return herr_set(e, HE_FORMAT, "field \"%s\"[%zu] must be a string", fd->json, i);
                if ((rc = add_string((creq_list *)base, json_object_get_string(x), (size_t)json_object_get_string_len(x), fd->json, e)))
                    return rc;
            }
            break;
        case CF_INT64:
            if ((rc = json_int64(v, fd->json, (int64_t *)base, e))) return rc;
            if (fd->has_flag_offset) r->has_max_nodes = 1;
            break;
        case CF_ENUM:
            if (json_object_is_type(v, json_type_string)) {
                const char *s = json_object_get_string(v);
                size_t i;
                for (i = 0; i < ARRAY_SIZE(enum_names) && strcmp(enum_names[i].name, s); i++) {}
                if (i == ARRAY_SIZE(enum_names)) return herr_set(e, HE_FORMAT, "field \"%s\": unknown value \"%.60s\"", fd->json, s);
                *(int64_t *)base = enum_names[i].v;
            } else if ((rc = json_int64(v, fd->json, (int64_t *)base, e))) {
                return rc;
            }
            break;
        case CF_DOUBLE:
            if (json_object_is_type(v, json_type_string)) {
                char *end;
                const char *s = json_object_get_string(v);
                *(double *)base = strtod(s, &end);
                if (!*s || *end) return herr_set(e, HE_FORMAT, "field \"%s\" must be a number", fd->json);
            } else if (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)) {
                *(double *)base = json_object_get_double(v);
            } else {
                return herr_set(e, HE_FORMAT, "field \"%s\" must be a number", fd->json);
            }
            break;
        case CF_STACK_SELECTOR: {
            json_object *cs = NULL;
            if (!json_object_is_type(v, json_type_object)) return herr_set(e, HE_FORMAT, "field \"%s\" must be an object", fd->json);
            if (!json_object_object_get_ex(v, "callSite", &cs)) json_object_object_get_ex(v, "call_site", &cs);
            if (!cs) break;
            if (!json_object_is_type(cs, json_type_array)) return herr_set(e, HE_FORMAT, "\"callSite\" must be an array of {\"name\": ...}");
            for (size_t i = 0; i < json_object_array_length(cs); i++) {
                json_object *nm = NULL;
                if (!json_object_object_get_ex(json_object_array_get_idx(cs, i), "name", &nm) || !json_object_is_type(nm, json_type_string))
                    return herr_set(e, HE_FORMAT, "callSite[%zu] needs a string \"name\"", i);
                if ((rc = add_string((creq_list *)base, json_object_get_string(nm), (size_t)json_object_get_string_len(nm), "callSite", e)))
                    return rc;
            }
            break;
        }
        case CF_MSG: {
            creq **sub = (creq **)base;
            if (depth > 2) return herr_set(e, HE_FORMAT, "request nests too deep");
            if (!*sub) *sub = xcalloc(1, sizeof **sub);
            if ((rc = parse_json_obj(v, fd->sub, *sub, depth + 1, e))) return rc;
            break;
        }
        }
    }
    return 0;
}

int connect_is_json(const http_req *rq)
{
    const char *ct = http_header(rq, "Content-Type");
    if (ct) return !strncasecmp(ct, "application/json", 16) || !strncasecmp(ct, "application/connect+json", 24);
    return rq->body.len && (rq->body.data[0] == '{' || rq->body.data[0] == ' ');
}

int connect_parse(const http_req *rq, const cfield *t, creq *r, herr *e)
{
    memset(r, 0, sizeof *r);
    if (connect_is_json(rq)) {
        json_tokener *tok;
        json_object *o;
        int rc;
        if (!rq->body.len) return 0;
        if (rq->body.len > INT_MAX) return herr_set(e, HE_TOOBIG, "JSON request is larger than 2 GiB");
        tok = json_tokener_new_ex(32);
        if (!tok) return -ENOMEM;
        o = json_tokener_parse_ex(tok, rq->body.data, (int)rq->body.len);
        if (!o || json_tokener_get_error(tok) != json_tokener_success) {
            rc = herr_set(e, HE_FORMAT, "request is not valid JSON: %s at offset %zu",
                          json_tokener_error_desc(json_tokener_get_error(tok)), json_tokener_get_parse_end(tok));
            if (o) json_object_put(o);
            json_tokener_free(tok);
            return rc;
        }
        json_tokener_free(tok);
        rc = parse_json_obj(o, t, r, 0, e);
        json_object_put(o);
        return rc;
    }
    return parse_proto(rq->body.data, rq->body.len, t, r, 0, e);
}

/* ---- errors ---- */

static const struct { const char *code; int status; } codes[] = {
    {"canceled", 499}, {"unknown", 500}, {"invalid_argument", 400}, {"deadline_exceeded", 504},
    {"not_found", 404}, {"already_exists", 409}, {"permission_denied", 403}, {"resource_exhausted", 429},
    {"failed_precondition", 400}, {"aborted", 409}, {"out_of_range", 400}, {"unimplemented", 501},
    {"internal", 500}, {"unavailable", 503}, {"data_loss", 500}, {"unauthenticated", 401},
};

int connect_http_status(const char *code)
{
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
        if (!strcmp(codes[i].code, code)) return codes[i].status;
    return 500;
}

const char *connect_code_for(int code)
{
    switch (code) {
    /* a request over a size, label or sample limit is a permanent client
     * error (Pyroscope: invalid_argument); resource_exhausted (429) would
     * make clients retry it forever */
    case HE_TOOBIG: return "invalid_argument";
    case HE_NOTFOUND: return "not_found";
    case HE_UNSUPPORTED: return "unimplemented";
    case -ENOMEM: return "resource_exhausted";
    case -EIO: case -ENOSPC: return "unavailable";
    default: return code <= HE_BASE && code > HE_LAST ? "invalid_argument" : "internal";
    }
}

const char *connect_code_for_http(int status)
{
    switch (status) {
    case 400: return "invalid_argument";
    case 401: return "unauthenticated";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 405: return "unimplemented";
    case 408: return "deadline_exceeded";
    case 409: return "aborted";
    case 413: return "resource_exhausted";
    case 415: return "invalid_argument";
    case 429: return "resource_exhausted";
    case 501: return "unimplemented";
    case 503: return "unavailable";
    case 504: return "deadline_exceeded";
    default: return status >= 500 ? "internal" : "unknown";
    }
}

void connect_error(http_resp *rs, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    jw w;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_reset(&rs->body);
    rs->status = connect_http_status(code);
    rs->content_type = "application/json";
    jw_init(&w, &rs->body);
    jw_obj(&w);
    jw_key(&w, "code");
    jw_cstring(&w, code);
    jw_key(&w, "message");
    jw_cstring(&w, msg);
    jw_obj_end(&w);
}

/* ---- base64 ---- */

static int b64v(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int b64_decode(const char *s, size_t n, buf *out)
{
    uint32_t acc = 0;
    int bits = 0, rc;
    while (n && (s[n - 1] == '=' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    if ((rc = buf_reserve(out, n / 4 * 3 + 3))) return rc;
    for (size_t i = 0; i < n; i++) {
        int v = b64v((unsigned char)s[i]);
        if (v < 0) {
            if (s[i] == '\n' || s[i] == '\r') continue;
            return HE_FORMAT;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if ((rc = buf_putc(out, (char)(acc >> bits)))) return rc;
        }
    }
    return 0;
}

int b64_encode(const void *p, size_t n, buf *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *c = p;
    int rc;
    if ((rc = buf_reserve(out, (n + 2) / 3 * 4))) return rc;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)c[i] << 16 | (i + 1 < n ? (uint32_t)c[i + 1] << 8 : 0) | (i + 2 < n ? c[i + 2] : 0);
        char q[4] = {tbl[v >> 18], tbl[(v >> 12) & 63], i + 1 < n ? tbl[(v >> 6) & 63] : '=', i + 2 < n ? tbl[v & 63] : '='};
        if ((rc = buf_append(out, q, 4))) return rc;
    }
    return 0;
}

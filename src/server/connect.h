/*
 * connect.h: Connect unary RPC framing (https://connectrpc.com/docs/protocol)
 * for the Pyroscope APIs: request messages read from `application/proto` or
 * `application/json` bodies by a per-message field table (proto field
 * numbers and protojson names), and errors written as Connect JSON
 * `{"code": "...", "message": "..."}` with Connect's HTTP status mapping.
 *
 * One request struct (creq) covers every request message the querier and
 * pusher take; a table says which fields a message has.
 */
#ifndef HEARTH_SERVER_CONNECT_H
#define HEARTH_SERVER_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "server/http.h"

#define CREQ_MAX_LIST 1024   /* entries per repeated string field */

typedef struct creq_list {
    char **v;
    size_t n;
} creq_list;

typedef struct creq {
    char *profile_type;      /* profile_typeID */
    char *label_selector;
    char *name;              /* LabelValuesRequest.name */
    int64_t start, end;      /* ms */
    int64_t max_nodes;
    int has_max_nodes;
    int64_t format;          /* ProfileFormat */
    int64_t aggregation;
    int64_t limit;
    double step;             /* seconds */
    creq_list matchers, label_names, span_selector, group_by;
    creq_list call_site;     /* stack_trace_selector.call_site[].name, root first */
    struct creq *left, *right;  /* DiffRequest */
} creq;

enum cfield_kind { CF_STRING, CF_INT64, CF_DOUBLE, CF_ENUM, CF_STRINGS, CF_MSG, CF_STACK_SELECTOR };

typedef struct cfield {
    uint32_t number;
    const char *json;         /* protojson name */
    const char *json_alt;     /* original proto name, or NULL */
    enum cfield_kind kind;
    size_t offset;            /* in creq */
    const struct cfield *sub; /* CF_MSG: the sub-message table */
    int has_flag_offset;      /* CF_INT64 optional: sets has_max_nodes */
} cfield;

extern const cfield creq_profile_types[];
extern const cfield creq_label_values[];
extern const cfield creq_label_names[];
extern const cfield creq_series[];
extern const cfield creq_merge_stacktraces[];
extern const cfield creq_merge_span[];
extern const cfield creq_merge_profile[];
extern const cfield creq_select_series[];
extern const cfield creq_diff[];
extern const cfield creq_empty[];

/*
 * 1 when the request body is JSON (Content-Type application/json), 0 for
 * proto (application/proto, application/x-protobuf, or no type with a
 * non-JSON-looking body).
 */
int connect_is_json(const http_req *rq);

/*
 * Parses the request body into r (zeroed first) by table t. 0 or HE_FORMAT/
 * HE_TOOBIG with e set. Release with creq_release even on failure.
 */
int connect_parse(const http_req *rq, const cfield *t, creq *r, herr *e);
void creq_release(creq *r);

/*
 * Writes a Connect error: code is a Connect code name ("invalid_argument",
 * "not_found", "unauthenticated", "permission_denied", "resource_exhausted",
 * "internal", "unimplemented", "unavailable"); the HTTP status follows it.
 */
void connect_error(http_resp *rs, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The Connect code for a hearth error code. */
const char *connect_code_for(int code);
/* The HTTP status Connect uses for a code name. */
int connect_http_status(const char *code);
/* The Connect code for an HTTP status (for errors raised before a handler ran). */
const char *connect_code_for_http(int status);

/* Base64 (standard or URL alphabet, padding optional) into out (cap out->max). 0 or HE_FORMAT/HE_TOOBIG. */
int b64_decode(const char *s, size_t n, buf *out);
/* Appends the standard base64 of p[0..n). */
int b64_encode(const void *p, size_t n, buf *out);

#endif

/*
 * otlp.h: OpenTelemetry profiles (OTLP, profiles/v1development, proto
 * v1.10+ numbering with a shared dictionary and a stack table) decoded into
 * hearth profiles with series labels, as Pyroscope's OTLP receiver reads
 * them (docs/server.md, "OTLP"):
 *
 *   - one output profile per (OTLP profile, service): samples carrying a
 *     `service.name` attribute form their own profile for that service;
 *   - series labels: __name__, service_name (resource `service.name`, else
 *     "unknown_service[:<process.executable.name>]"), every string resource
 *     attribute, then every string instrumentation-scope attribute (the
 *     first of a name wins; names made label-safe: [A-Za-z0-9_.], others
 *     become '_'), __otel__="true";
 *   - __name__: "samples/count" with a cpu/nanoseconds period becomes
 *     cpu/nanoseconds (value * period) named process_cpu; "off_cpu" keeps
 *     its type and is named off_cpu; otherwise the period type names it
 *     (as Pyroscope does), falling back to the sample type;
 *   - the values of a sample (one per timestamp) are summed; a sample with
 *     timestamps and no values counts one per timestamp;
 *   - string sample attributes become sample labels; link_index becomes
 *     span_id / trace_id labels (lowercase hex).
 *
 * Both encodings are read: protobuf (ExportProfilesServiceRequest) and
 * OTLP/JSON (camelCase or snake_case keys, int64 as strings or numbers,
 * trace/span IDs as hex, or base64 as protojson writes bytes).
 */
#ifndef HEARTH_FORMAT_OTLP_H
#define HEARTH_FORMAT_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "profile/profile.h"

typedef struct otlp_profile {
    char **names, **values;  /* series labels, owned */
    size_t n_labels;
    profile prof;            /* one sample type */
    int64_t time_ns, duration_ns;
} otlp_profile;

typedef struct otlp_batch {
    otlp_profile *v;
    size_t n;
} otlp_batch;

/* Caps on one request besides prof_limits. */
#define OTLP_MAX_PROFILES 10000
#define OTLP_MAX_TABLE (1u << 24)

/*
 * Decodes data[0..n) (protobuf when json == 0, else OTLP/JSON) into out
 * (zeroed by the call). lim (may be NULL) caps each output profile.
 * Returns 0, or HE_TRUNCATED/HE_WIRETYPE/HE_FORMAT (malformed input),
 * HE_BADREF (an index into a table that does not have it), HE_TOOBIG,
 * -ENOMEM, with e set to one sentence naming the field. out is released on
 * failure.
 */
int otlp_decode(otlp_batch *out, const void *data, size_t n, int json, const prof_limits *lim, herr *e);
void otlp_batch_release(otlp_batch *b);

/* Looks up a series label of an output profile; NULL if absent. */
const char *otlp_label(const otlp_profile *p, const char *name);

#endif

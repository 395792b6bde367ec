/*
 * naming.h: Pyroscope's ingest naming rules, shared by the /ingest handler
 * and the `hearth ingest` client:
 *
 *   - the legacy key `app.suffix{k=v,...}` (names, labels, their validation);
 *   - which profile a suffix names (`.cpu` -> process_cpu samples rescaled to
 *     cpu:nanoseconds by sampleRate, `.inuse_space` -> memory, ...), as
 *     Pyroscope's ingest adapter (pkg/ingester/pyroscope) does;
 *   - which __name__ a pprof's sample types get (cpu -> process_cpu,
 *     alloc_/inuse_ -> memory, wall, mutex, block, goroutine).
 */
#ifndef HEARTH_SERVER_NAMING_H
#define HEARTH_SERVER_NAMING_H

#include <stddef.h>

#include "core/err.h"

#define NAMING_MAX_LABELS 30        /* label pairs per series (Pyroscope's default) */
#define NAMING_MAX_NAME_LEN 1024    /* label name */
#define NAMING_MAX_VALUE_LEN 1024   /* label value (the store's limit) */

typedef struct naming_key {
    char app[512];                  /* the name before '{', suffix included */
    char *names[NAMING_MAX_LABELS];
    char *values[NAMING_MAX_LABELS];
    size_t n;
    char storage[8192];             /* names and values live here */
} naming_key;

/*
 * Parses `app.suffix{k=v,k2=v2}` (labels optional; values may not contain
 * ',' or '}', as in Pyroscope's segment keys). Checks the app name is
 * non-empty, label names match [A-Za-z_][A-Za-z0-9_.]*, values are UTF-8,
 * no name repeats, at most NAMING_MAX_LABELS. 0 or HE_FORMAT/HE_TOOBIG with
 * e saying what is wrong.
 */
int naming_parse_key(naming_key *k, const char *name, herr *e);

/* 1 if s is a valid label name. */
int naming_label_name_valid(const char *s);

/* What a legacy suffix means. */
typedef struct naming_type {
    const char *suffix;   /* "cpu", "inuse_space", ... */
    const char *metric;   /* __name__: "process_cpu", "memory", ... */
    const char *type;     /* sample type */
    const char *unit;     /* sample unit */
    int rate_scaled;      /* 1: values are sample counts, scaled by 1e9/sampleRate to nanoseconds */
    const char *period_type;  /* the period type a pprof of this kind carries (heap: space) */
    const char *period_unit;
} naming_type;

/*
 * The profile type ID (`metric:type:unit:period_type:period_unit`) that
 * data ingested under this suffix is stored as; the legacy render maps
 * `app.suffix` queries through the same table, so what `/ingest` stores
 * under `app.inuse_space` is what `/pyroscope/render?query=app.inuse_space`
 * finds. Writes into out (truncated to n); returns out.
 */
const char *naming_type_id(const naming_type *t, char *out, size_t n);

/*
 * The type for app's suffix (the part after the last '.'); an app without a
 * '.' is "cpu" (as Pyroscope). NULL if the suffix is not one Pyroscope
 * knows. *app_len gets the length of the app name without the suffix.
 */
const naming_type *naming_suffix(const char *app, size_t *app_len);

/*
 * The __name__ for a pprof whose sample types are types[0..n) (names),
 * optionally renamed by a sample_type_config display name (display[i], may
 * be NULL), with the legacy app suffix as a hint for mutex vs block.
 * Never NULL.
 */
const char *naming_pprof_metric(const char *const *types, const char *const *display, size_t n,
                                const char *suffix_hint);

#endif

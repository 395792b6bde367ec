/*
 * flamebearer.h: the JSON that Pyroscope's legacy /pyroscope/render (and
 * /pyroscope/render-diff) return, built from a flame tree:
 *
 *   {"version":1,
 *    "flamebearer":{"names":[...],"levels":[[...],...],"numTicks":N,"maxSelf":M},
 *    "metadata":{"format":"single"|"double","spyName":..,"sampleRate":..,"units":..,"name":..},
 *    "timeline":{"startTime":s,"samples":[...],"durationDelta":d},   (optional)
 *    "leftTicks":L,"rightTicks":R}                                    (diff only)
 *
 * levels are flame_levels(): 4-tuples [x_delta, total, self, name] for a
 * single tree, 7-tuples [x_delta_l, total_l, self_l, x_delta_r, total_r,
 * self_r, name] for a diff tree (docs/flamegraph.md).
 */
#ifndef HEARTH_FORMAT_FLAMEBEARER_H
#define HEARTH_FORMAT_FLAMEBEARER_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "profile/flame.h"

typedef struct flamebearer_timeline {
    int64_t start_time;       /* unix seconds of samples[0] */
    const int64_t *samples;   /* one value per step */
    size_t n_samples;
    int64_t duration_delta;   /* seconds per step */
} flamebearer_timeline;

typedef struct flamebearer_meta {
    const char *name;         /* e.g. "process_cpu:cpu:nanoseconds:cpu:nanoseconds"; NULL = omitted */
    const char *spy_name;     /* NULL = "unknown" */
    int64_t sample_rate;      /* 0 = 100 (Pyroscope's default) */
    const char *units;        /* "samples", "objects", "bytes", ...; NULL = "samples" */
    const flamebearer_timeline *timeline;  /* NULL = no "timeline" key */
} flamebearer_meta;

/*
 * Appends the render JSON for t (sorted in place by flame_levels) to out.
 * The format is "double" when t->is_diff. Returns 0, -ENOMEM or HE_TOOBIG
 * (out's cap); out is left at its previous length on failure.
 */
int flamebearer_write(flame_tree *t, const flamebearer_meta *meta, buf *out);

/*
 * Pyroscope's metadata for a sample type/unit pair, as its
 * ExportToFlamebearer derives them: units "bytes" for bytes, "objects" for
 * object and goroutine counts, else "samples"; sampleRate 1e9/1e6/1e3 for
 * nanoseconds/microseconds/milliseconds (so ticks / sampleRate = seconds),
 * else 100. Never NULL.
 */
const char *flamebearer_units(const char *sample_type, const char *sample_unit);
int64_t flamebearer_sample_rate(const char *sample_unit);

#endif

/*
 * svg.h: a self-contained interactive flame graph (SVG with inline
 * JavaScript, no network), in the manner of flamegraph.pl: hover shows
 * function, file:line, value and percent; click zooms into a frame (click
 * the background or "Reset Zoom" to go back); Ctrl-F or "Search" highlights
 * frames matching a regex and reports the matched share of the total. Diff
 * trees are coloured red (grew) / blue (shrank) by the change in share.
 */
#ifndef HEARTH_FORMAT_SVG_H
#define HEARTH_FORMAT_SVG_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "profile/flame.h"

typedef struct svg_opts {
    const char *title;      /* NULL = "Flame Graph" */
    const char *subtitle;   /* NULL = none */
    const char *units;      /* what a value counts, e.g. "samples", "nanoseconds", "bytes"; NULL = "samples" */
    uint32_t width;         /* pixels, 0 = 1200 */
    double min_width;       /* frames narrower than this many pixels are omitted, 0 = 0.1 */
} svg_opts;

/*
 * Appends the SVG of t (children sorted by name, as flame_sort leaves them)
 * to out. o may be NULL. Returns 0, -ENOMEM or HE_TOOBIG (out's cap); out
 * is left at its previous length on failure.
 */
int svg_write(flame_tree *t, const svg_opts *o, buf *out);

#endif

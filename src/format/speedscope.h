/*
 * speedscope.h: speedscope's JSON file format
 * (https://www.speedscope.app/file-format-schema.json), read and written.
 */
#ifndef HEARTH_FORMAT_SPEEDSCOPE_H
#define HEARTH_FORMAT_SPEEDSCOPE_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "profile/profile.h"

/*
 * Reads a speedscope file from data[0..n) into p (prof_init'ed, empty).
 * Every "sampled" and "evented" profile in it is added into one sample
 * type, named by the unit: "none" -> samples/count, time units ->
 * cpu/nanoseconds (scaled to integer ns), "bytes" -> space/bytes. Frames keep
 * name, file and line. All profiles must share a unit.
 *
 * Returns 0 or HE_FORMAT (not JSON, or not the speedscope shape: e names
 * the field), HE_BADREF (a frame index out of range, unbalanced evented
 * open/close), HE_UNSUPPORTED (mixed units), HE_UTF8, HE_TOOBIG, -ENOMEM,
 * with e set. On failure p holds a partial profile (prof_reset it).
 */
int speedscope_parse(profile *p, const char *data, size_t n, herr *e);

/*
 * Appends p's sample type `type` as a speedscope file with one "sampled"
 * profile called name (NULL: the type name): shared.frames (name, and file
 * and line where known; unique by all three), one sample per distinct stack
 * (frame indices root first) with its total as weight, unit from the sample
 * unit ("nanoseconds", "microseconds", "milliseconds", "seconds", "bytes",
 * else "none"). Zero-total stacks are omitted. Returns 0, HE_USAGE (type out
 * of range), -ENOMEM or HE_TOOBIG (out's cap), with e set.
 */
int speedscope_write(const profile *p, int type, const char *name, buf *out, herr *e);

#endif

/*
 * pprof.h: google/pprof profile.proto codec (decode into the profile model of
 * profile/profile.h, encode the model back to pprof bytes).
 *
 * Schema: https://github.com/google/pprof/blob/main/proto/profile.proto
 * (field numbers are listed at the top of pprof.c; docs/pprof.md describes
 * what is decoded, every check and the limits).
 */
#ifndef HEARTH_FORMAT_PPROF_H
#define HEARTH_FORMAT_PPROF_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "profile/profile.h"

/* Default cap on the decompressed size of one pprof (callers may pass their own). */
#define PPROF_MAX_DECOMPRESSED ((size_t)512 << 20)

/*
 * Decodes a pprof from data[0..n) into p, which must be prof_init'ed and
 * empty (it may carry custom p->limits). gzip (and zstd) are detected from
 * the bytes; the decompressed size is capped at max_decompressed (0 means
 * PPROF_MAX_DECOMPRESSED; never above 4 GiB - 1, as the decoder keeps
 * 32-bit offsets: larger raw input is refused).
 *
 * Fields may come in any order, unknown fields are skipped, repeated scalars
 * may be packed or unpacked. Every reference is checked: string indices,
 * mapping/function/location ids, label key/str/num_unit, the number of values
 * per sample against the number of sample types, default_sample_type,
 * period_type, duplicate ids. Strings that are not UTF-8 are kept as bytes.
 * Stacks deeper than p->limits.max_stack_depth are truncated at the root end.
 *
 * Returns 0, or HE_TRUNCATED / HE_WIRETYPE / HE_FORMAT (malformed protobuf),
 * HE_BADREF (a reference to nothing), HE_TOOBIG (a cap: decompressed size,
 * prof_limits), HE_GZIP / HE_ZSTD (corrupt compression), -ENOMEM; e (may be
 * NULL) then holds one sentence naming the field and the bad value, e.g.
 * "sample 12 refers to location id 99 which does not exist". On failure p
 * holds a partial profile: the caller should prof_reset() or prof_release() it.
 */
int pprof_decode(profile *p, const void *data, size_t n, size_t max_decompressed, herr *e);

/*
 * Appends p as pprof bytes to out (gzip-compressed when gzip is non-zero, at
 * level 1: fast, for the query path). The output is valid for
 * google/pprof: string_table[0] is "", mapping/function/location ids are the
 * model indices (1-based, unique), every model string is written (so string
 * ids are kept). p must pass prof_validate(); references are not re-checked.
 * Returns 0, -ENOMEM or HE_TOOBIG (out's cap), with e set. On failure out is
 * left at its previous length.
 */
int pprof_encode(const profile *p, buf *out, int gzip, herr *e);

#endif

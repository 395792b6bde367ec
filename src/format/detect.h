/*
 * detect.h: which profile format a byte string holds, and decoding any of
 * them into the profile model. Rules (docs/formats.md): gzip/zstd are
 * looked through; JSON with "profiles" is speedscope; a "comm pid ... event:"
 * header followed by a stack line is perf script; lines ending in " COUNT"
 * (or a UTF-16 BOM) are folded; bytes that are not text are pprof.
 */
#ifndef HEARTH_FORMAT_DETECT_H
#define HEARTH_FORMAT_DETECT_H

#include <stddef.h>

#include "core/err.h"
#include "profile/profile.h"

enum prof_format {
    PF_AUTO = 0,
    PF_PPROF,
    PF_FOLDED,
    PF_PERFSCRIPT,
    PF_SPEEDSCOPE,
    PF_UNKNOWN
};

/* Canonical name ("pprof", "folded", "perf-script", "speedscope", "auto", "unknown"). */
const char *prof_format_name(enum prof_format f);
/* Parses a name (also "collapsed", "perf", "perfscript"); PF_UNKNOWN if none. */
enum prof_format prof_format_parse(const char *name);

/*
 * Guesses the format of data[0..n) from its bytes (gzip/zstd-compressed
 * pprof is PF_PPROF; other compressed input is reported by what it holds
 * only through prof_decode_any). PF_UNKNOWN when nothing fits.
 */
enum prof_format prof_format_detect(const void *data, size_t n);

/*
 * Decodes data[0..n) in format f (PF_AUTO: detected) into p (prof_init'ed,
 * empty). gzip or zstd input is decompressed first (at most
 * max_decompressed bytes, 0 = 512 MiB) for every format. Returns 0 or the
 * decoder's error with e set (HE_FORMAT "not a known profile format" when
 * detection fails). On failure p holds a partial profile (prof_reset it).
 */
int prof_decode_any(profile *p, const void *data, size_t n, enum prof_format f, size_t max_decompressed, herr *e);

#endif

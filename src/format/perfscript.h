/*
 * perfscript.h: `perf script` text (samples with call chains) read into the
 * profile model, with the stack rules of Brendan Gregg's
 * stackcollapse-perf.pl run with --pid (docs/formats.md lists them).
 */
#ifndef HEARTH_FORMAT_PERFSCRIPT_H
#define HEARTH_FORMAT_PERFSCRIPT_H

#include <stddef.h>

#include "core/err.h"
#include "profile/profile.h"

/*
 * Parses perf script output in data[0..n) into p (prof_init'ed, empty):
 * one sample type "samples" (unit "count") whose values are the sample
 * period where perf printed one, else 1 per sample. Each stack is rooted at
 * a frame "comm-pid" ("comm-?" when perf printed only the thread id); only
 * samples of the first event type seen are kept (like stackcollapse-perf.pl).
 *
 * Returns 0, or HE_FORMAT (no sample header line found: not perf script
 * output; e names the first unrecognized line), HE_UTF8 (a line is not
 * UTF-8), HE_TOOBIG (a cap in p->limits or a sum past INT64_MAX), -ENOMEM;
 * e is set. On failure p holds a partial profile (prof_reset it).
 */
int perfscript_parse(profile *p, const char *data, size_t n, herr *e);

/*
 * 1 if data[0..n) looks like perf script output: a sample header line
 * ("comm pid[/tid] ... event:") followed by an indented stack line, within
 * the first lines. Cheap; used by format detection.
 */
int perfscript_sniff(const char *data, size_t n);

#endif

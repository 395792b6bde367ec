/*
 * folded.h: folded ("collapsed") stacks, the text format of Brendan Gregg's
 * stackcollapse-*.pl and flamegraph.pl: one line per stack,
 *
 *     root;caller;...;leaf COUNT
 *
 * frames root first, separated by ';', then one space and a non-negative
 * integer. docs/formats.md lists every rule (encodings, comments, invalid
 * lines, how names are cleaned on write).
 */
#ifndef HEARTH_FORMAT_FOLDED_H
#define HEARTH_FORMAT_FOLDED_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "profile/profile.h"

/*
 * Parses folded stacks from data[0..n) into p (prof_init'ed, empty), with one
 * sample type "samples" (unit "count"). Input may be UTF-8 (optional BOM) or
 * UTF-16 LE/BE with a BOM; lines end in LF or CRLF. A line that does not
 * end in " COUNT" (blank, comment, junk) is skipped as "clearly not a
 * stack", like flamegraph.pl and speedscope do; one that does is a stack,
 * whatever its first character. Lines with the same stack are summed.
 *
 * Errors (with e naming the line): HE_UNSUPPORTED for a line ending in a
 * number that is not a count ("a;b 1.5", "a;b -3": a stack we cannot
 * represent, never dropped silently), HE_FORMAT when no line is a stack (the
 * first offending line number is given), HE_UTF8 for text that is not UTF-8
 * (or broken UTF-16), HE_TOOBIG for a count past INT64_MAX or a cap of
 * p->limits. On failure p holds a partial profile (prof_reset it).
 */
int folded_parse(profile *p, const char *data, size_t n, herr *e);

/*
 * Appends p's sample type `type` as folded stacks to out: one line per
 * distinct frame-name sequence (root first; inlined frames expanded
 * outermost first), counts summed, lines sorted bytewise (as
 * stackcollapse-perf.pl prints them), zero totals omitted. In names ';'
 * becomes ':' and CR/LF become ' ' so every line parses back.
 * Returns 0, HE_USAGE (type out of range), -ENOMEM or HE_TOOBIG (out's cap),
 * with e set.
 */
int folded_write(const profile *p, int type, buf *out, herr *e);

/*
 * Helpers shared by the text codecs (perf script, speedscope).
 *
 * folded_text_utf8: when data starts with a UTF-16 LE/BE byte order mark,
 * transcodes it to UTF-8 into out (cap: out->max) and returns 1; returns 0
 * (out untouched) for anything else, or HE_UTF8 (broken UTF-16: lone
 * surrogate, odd length) / -ENOMEM / HE_TOOBIG with e set.
 *
 * folded_add_sample: adds v (>= 0) to the sample of stack `stack` (value
 * type 0), creating the sample on first use; index maps stack -> sample and
 * is owned by the caller (hmap64_init before, hmap64_release after); *total
 * is the running total of the whole profile, kept below INT64_MAX so no
 * consumer's sums can overflow. Returns 0, -ENOMEM, or HE_TOOBIG when the
 * total would pass INT64_MAX or p->limits are hit.
 */
int folded_text_utf8(const char *data, size_t n, buf *out, herr *e);
int folded_add_sample(profile *p, hmap64 *index, uint32_t stack, int64_t v, int64_t *total);

#endif

/*
 * selector.h: Prometheus-style label selectors, as Pyroscope's query API
 * takes them: `{service_name="x", env!="dev", region=~"eu.*", pod!~"a|b"}`.
 *
 * Grammar (whitespace allowed between tokens):
 *   selector := "" | "{" [ matcher { "," matcher } [ "," ] ] "}"
 *   matcher  := name op string
 *   name     := [A-Za-z_][A-Za-z0-9_.]*     (dots allowed: Pyroscope labels)
 *   op       := "=" | "!=" | "=~" | "!~"
 *   string   := '"' chars '"' | "'" chars "'" | "`" raw "`"
 *               with \" \' \\ \n \t \r \xHH escapes inside double/single quotes
 * Regexes are fully anchored (as in Prometheus): `=~"eu.*"` matches "eu-1",
 * not "xeu". They are compiled with POSIX extended syntax (regcomp), which
 * covers what selectors use in practice (alternation, classes, repeats).
 * A label that a series lacks has the value "" (so `env!="dev"` matches a
 * series without env, and `env=""` matches only series without env).
 *
 * Limits: text up to 16 KiB, at most 64 matchers; past them HE_TOOBIG.
 * Errors: HE_FORMAT with e->msg naming the offset and what was expected,
 * e.g. `selector: expected '=', '!=', '=~' or '!~' after "env" at offset 5`.
 *
 * Thread safety: a parsed selector is read-only during matching; any number
 * of threads may match against it at once (regexec is thread-safe).
 */
#ifndef HEARTH_STORE_SELECTOR_H
#define HEARTH_STORE_SELECTOR_H

#include <regex.h>
#include <stddef.h>

#include "core/err.h"

enum sel_op { SEL_EQ = 0, SEL_NE = 1, SEL_RE = 2, SEL_NRE = 3 };

typedef struct sel_matcher {
    char *name;      /* owned by the selector */
    char *value;     /* owned by the selector; the pattern for SEL_RE/SEL_NRE */
    enum sel_op op;
    int has_re;      /* re is compiled */
    regex_t re;
} sel_matcher;

typedef struct selector {
    sel_matcher *m;
    size_t n;
} selector;

#define SELECTOR_MAX_TEXT (16 * 1024)
#define SELECTOR_MAX_MATCHERS 64

/* An empty selector (matches everything). */
void selector_init(selector *s);
void selector_release(selector *s);

/*
 * Parses text[0..n) into s (initialized by the call; release it even on
 * failure). 0, HE_FORMAT (bad syntax or regex, e says where), HE_TOOBIG.
 */
int selector_parse(selector *s, const char *text, size_t n, herr *e);

/* Appends one matcher (copied; a regex is compiled). 0, HE_FORMAT, HE_TOOBIG. */
int selector_add(selector *s, const char *name, enum sel_op op, const char *value, herr *e);

/*
 * True when every matcher holds for the label set given by the lookup
 * callback: get(arg, name) returns the value of label `name` or NULL if
 * absent (treated as "").
 */
int selector_match(const selector *s, const char *(*get)(void *arg, const char *name), void *arg);

/* True when matcher m holds for value v (NULL = absent = ""). */
int sel_matcher_match(const sel_matcher *m, const char *v);

/*
 * Writes s back in canonical syntax, values escaped so that selector_parse()
 * reads the text back into the same matchers. Always NUL-terminates; 0, or
 * HE_TOOBIG when out_size was too small (out then holds a truncated prefix).
 */
int selector_format(const selector *s, char *out, size_t out_size);

#endif

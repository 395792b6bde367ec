/*
 * fuzz_selector.c: libFuzzer harness for the label selector parser
 * (src/store/selector.c), which reads every query's labelSelector.
 *
 * Any input must either fail with a negative code and a message, or parse
 * into matchers whose canonical text (selector_format) parses back into the
 * same matchers and formats to the same text. Parsed selectors are matched
 * against a label set made from their own values, so regexec runs on what
 * the parser compiled.
 */
#include "core/common.h"
#include "store/selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct lookup {
    const selector *s;
    size_t shift;
} lookup;

/* Label i of the selector gets the value of matcher (i + shift) % n. */
static const char *get(void *arg, const char *name)
{
    const lookup *l = arg;
    for (size_t i = 0; i < l->s->n; i++)
        if (!strcmp(l->s->m[i].name, name)) return l->s->m[(i + l->shift) % l->s->n].value;
    return NULL;
}

static void same(const selector *a, const selector *b)
{
    if (a->n != b->n) __builtin_trap();
    for (size_t i = 0; i < a->n; i++)
        if (a->m[i].op != b->m[i].op || strcmp(a->m[i].name, b->m[i].name) || strcmp(a->m[i].value, b->m[i].value))
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[4 * SELECTOR_MAX_TEXT + 64], again[4 * SELECTOR_MAX_TEXT + 64];
    selector s, t;
    herr e;
    int rc;

    herr_clear(&e);
    rc = selector_parse(&s, (const char *)data, size, &e);
    if (rc) {
        if (rc >= 0 || !e.msg[0]) __builtin_trap();
        selector_release(&s);
        return 0;
    }
    for (size_t shift = 0; shift < 2; shift++) {
        lookup l = {&s, shift};
        (void)selector_match(&s, get, &l);
    }
    if (selector_format(&s, text, sizeof text)) __builtin_trap();
    rc = selector_parse(&t, text, strlen(text), &e);
    if (rc == HE_TOOBIG && strlen(text) > SELECTOR_MAX_TEXT) {
        /* escaping made the canonical text longer than the limit */
    } else {
        if (rc) __builtin_trap();
        same(&s, &t);
        if (selector_format(&t, again, sizeof again) || strcmp(text, again)) __builtin_trap();
    }
    selector_release(&t);
    selector_release(&s);
    return 0;
}

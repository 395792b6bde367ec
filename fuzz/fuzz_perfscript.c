/*
 * fuzz_perfscript.c: libFuzzer harness for the perf script parser and its
 * sniffer.
 *
 * Any input must either fail with a negative code and a message, or parse
 * into a profile that passes prof_validate() and writes as folded stacks
 * that parse back to the same total.
 */
#include "core/common.h"
#include "core/buf.h"
#include "format/folded.h"
#include "format/perfscript.h"
#include "profile/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Total of type 0 over samples with a non-empty stack (the text writers have no way to write an empty stack). */
static int64_t stack_total(const profile *p)
{
    int64_t sum = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        if (p->samples[i].stack && __builtin_add_overflow(sum, p->values[i * p->n_types], &sum)) __builtin_trap();
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    profile p, q;
    herr e;
    buf out = BUF_INIT;
    int rc;

    (void)perfscript_sniff((const char *)data, size);
    if (prof_init(&p)) return 0;
    p.limits.max_samples = 100000;
    herr_clear(&e);
    rc = perfscript_parse(&p, (const char *)data, size, &e);
    if (rc) {
        if (rc >= 0 || !e.msg[0]) __builtin_trap();
        prof_release(&p);
        return 0;
    }
    if (prof_validate(&p, &e)) __builtin_trap();
    rc = folded_write(&p, 0, &out, &e);
    if (rc && rc != HE_TOOBIG) __builtin_trap();
    if (!rc && out.len) {
        if (prof_init(&q)) __builtin_trap();
        if (folded_parse(&q, out.data, out.len, &e)) __builtin_trap();
        if (stack_total(&q) != stack_total(&p)) __builtin_trap();
        prof_release(&q);
    }
    buf_release(&out);
    prof_release(&p);
    return 0;
}

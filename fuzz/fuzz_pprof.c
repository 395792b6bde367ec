/*
 * fuzz_pprof.c: libFuzzer harness for the pprof decoder.
 *
 * Any input must either fail with a negative code and a message, or decode
 * into a profile that passes prof_validate(); a decoded profile must then
 * encode, and decode again to the same number of samples and the same total
 * per sample type, and encoding the re-decoded profile must give the same
 * bytes as encoding the first (the round trip keeps every table).
 */
#include "core/common.h"
#include "core/buf.h"
#include "format/pprof.h"
#include "profile/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    profile p, q;
    herr e;
    buf out = BUF_INIT;
    int rc;

    if (prof_init(&p)) return 0;
    herr_clear(&e);
    /* small caps keep each run fast; bombs must stop at the cap */
    p.limits.max_samples = 100000;
    p.limits.max_locations = 100000;
    rc = pprof_decode(&p, data, size, 8 << 20, &e);
    if (rc) {
        if (rc >= 0 || !e.msg[0]) __builtin_trap();
        prof_release(&p);
        return 0;
    }
    if (prof_validate(&p, &e)) __builtin_trap();
    if (pprof_encode(&p, &out, size & 1, &e)) __builtin_trap();
    if (prof_init(&q)) __builtin_trap();
    q.limits = p.limits;
    if (pprof_decode(&q, out.data, out.len, 64 << 20, &e)) __builtin_trap();
    if (q.n_samples != p.n_samples || q.n_types != p.n_types) __builtin_trap();
    for (uint32_t t = 0; t < p.n_types; t++)
        if (prof_total(&p, (int)t) != prof_total(&q, (int)t)) __builtin_trap();
    /* the round trip keeps everything the encoder writes: encoding again gives the same bytes */
    {
        buf a = BUF_INIT, b = BUF_INIT;
        if (pprof_encode(&p, &a, 0, &e) || pprof_encode(&q, &b, 0, &e)) __builtin_trap();
        if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len))) __builtin_trap();
        buf_release(&a);
        buf_release(&b);
    }
    prof_release(&q);
    prof_release(&p);
    buf_release(&out);
    return 0;
}

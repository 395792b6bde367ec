/*
 * fuzz_otlp.c: libFuzzer harness for the OTLP profiles decoder (both
 * encodings: the first byte picks protobuf (even) or JSON (odd), the rest is
 * the request).
 *
 * Any input must either fail with a negative code and a message, or decode
 * into profiles that pass prof_validate() and carry __name__ and
 * service_name labels.
 */
#include "core/common.h"
#include "format/otlp.h"
#include "profile/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    otlp_batch b;
    herr e = {0};
    prof_limits lim;
    int json, rc;
    if (!size) return 0;
    json = data[0] & 1;
    prof_limits_default(&lim);
    lim.max_samples = 100000;
    rc = otlp_decode(&b, data + 1, size - 1, json, &lim, &e);
    if (rc) {
        if (rc >= 0 || !e.msg[0]) __builtin_trap();
        return 0;
    }
    for (size_t i = 0; i < b.n; i++) {
        herr ve = {0};
        if (prof_validate(&b.v[i].prof, &ve)) __builtin_trap();
        if (!otlp_label(&b.v[i], "__name__") || !otlp_label(&b.v[i], "service_name")) __builtin_trap();
        if (b.v[i].prof.n_types != 1) __builtin_trap();
    }
    otlp_batch_release(&b);
    return 0;
}

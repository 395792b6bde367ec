/*
 * fuzz_walrec.c: libFuzzer harness for the WAL record decoder
 * (st_rec_decode, st_rec_batch_each in src/store/wal.c), which reads what
 * recovery finds on disk after a crash, and through it the profile blob
 * decoder the blocks use too (st_blob_decode).
 *
 * Any input must either fail with a negative code and a message, or decode
 * into records whose profile passes prof_validate(), and which encode
 * (st_rec_encode) and decode again to the same tenant, labels, times and
 * per-type totals.
 */
#include "core/common.h"
#include "core/buf.h"
#include "profile/profile.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_one(void *arg, const uint8_t *p, size_t n)
{
    st_rec a, b;
    herr e;
    buf out = BUF_INIT;
    int rc;
    (void)arg;
    herr_clear(&e);
    rc = st_rec_decode(&a, p, n, &e);
    if (rc) {
        if (rc >= 0) __builtin_trap();
        prof_release(&a.prof);
        return 0;
    }
    if (prof_validate(&a.prof, &e)) __builtin_trap();
    if (st_rec_encode(&out, a.tenant, a.labels, a.n_labels, &a.prof, a.time_ns, a.duration_ns)) __builtin_trap();
    if (st_rec_decode(&b, (const uint8_t *)out.data, out.len, &e)) __builtin_trap();
    if (strcmp(a.tenant, b.tenant) || a.n_labels != b.n_labels || a.time_ns != b.time_ns ||
        a.duration_ns != b.duration_ns || a.prof.n_types != b.prof.n_types)
        __builtin_trap();
    for (size_t i = 0; i < a.n_labels; i++)
        if (strcmp(a.labels[i].name, b.labels[i].name) || strcmp(a.labels[i].value, b.labels[i].value)) __builtin_trap();
    for (uint32_t t = 0; t < a.prof.n_types; t++)
        if (prof_total(&a.prof, (int)t) != prof_total(&b.prof, (int)t)) __builtin_trap();
    prof_release(&b.prof);
    prof_release(&a.prof);
    buf_release(&out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herr e;
    herr_clear(&e);
    int rc = st_rec_each(data, size, check_one, NULL, &e);
    if (rc > 0 || (rc < 0 && !e.msg[0])) __builtin_trap();
    return 0;
}

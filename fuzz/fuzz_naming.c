/*
 * fuzz_naming.c: libFuzzer harness for the legacy ingest name parser
 * (`name=app.suffix{k=v,...}` of POST /ingest, src/server/naming.c).
 *
 * Any input must either fail with a negative code and a message, or give an
 * app name and labels that satisfy the parser's own contract: a non-empty
 * app, valid and distinct label names, values without ',' or '}', at most
 * NAMING_MAX_LABELS, each string inside the key's storage. The suffix lookup
 * and type ID run on every accepted app.
 */
#include "core/common.h"
#include "core/mem.h"
#include "server/naming.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const naming_key *k, const char *p)
{
    return p >= k->storage && p < k->storage + sizeof k->storage;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static naming_key k;
    char *name, id[256];
    size_t app_len;
    herr e;
    int rc;

    if (size > 64 * 1024) return 0;
    name = xmalloc(size + 1);
    memcpy(name, data, size);
    name[size] = 0;
    herr_clear(&e);
    rc = naming_parse_key(&k, name, &e);
    if (rc) {
        if (rc >= 0 || !e.msg[0]) __builtin_trap();
        free(name);
        return 0;
    }
    if (!k.app[0] || k.n > NAMING_MAX_LABELS) __builtin_trap();
    for (size_t i = 0; i < k.n; i++) {
        if (!inside(&k, k.names[i]) || !inside(&k, k.values[i])) __builtin_trap();
        if (!naming_label_name_valid(k.names[i])) __builtin_trap();
        if (strchr(k.values[i], ',') || strchr(k.values[i], '}')) __builtin_trap();
        for (size_t j = 0; j < i; j++)
            if (!strcmp(k.names[i], k.names[j])) __builtin_trap();
    }
    const naming_type *t = naming_suffix(k.app, &app_len);
    if (app_len > strlen(k.app)) __builtin_trap();
    if (t) naming_type_id(t, id, sizeof id);
    free(name);
    return 0;
}

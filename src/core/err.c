/*
 * err.c: names for error codes and the herr detail setter.
 */
#include "core/common.h"
#include "core/err.h"

static const char *const he_names[] = {
    [0] = "unknown hearth error",
    [1] = "input is truncated",
    [2] = "unexpected protobuf wire type",
    [3] = "input exceeds a size limit",
    [4] = "reference to an id that does not exist",
    [5] = "invalid UTF-8",
    [6] = "corrupt gzip data",
    [7] = "corrupt zstd data",
    [8] = "malformed input",
    [9] = "checksum mismatch",
    [10] = "not found",
    [11] = "unsupported input",
    [12] = "invalid usage",
};

const char *hearth_strerror(int code)
{
    if (code == 0) return "success";
    if (code <= HE_BASE && code > HE_LAST) {
        int i = HE_BASE - code;
        if ((size_t)i < ARRAY_SIZE(he_names) && he_names[i]) return he_names[i];
        return he_names[0];
    }
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown error";
}

int herr_set(herr *e, int code, const char *fmt, ...)
{
    va_list ap;
    if (!e || e->code) return code;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

const char *herr_msg(const herr *e, int code)
{
    if (e && e->code && e->msg[0]) return e->msg;
    return hearth_strerror(code);
}

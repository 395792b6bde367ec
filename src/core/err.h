/*
 * err.h: error codes and error details.
 *
 * Convention (STYLE.md): functions return int, 0 on success, a negative errno
 * (-ENOMEM, -EIO, ...) or a negative project code below from the reserved
 * range -30900..-30999. hearth_strerror() names either kind.
 *
 * Decoders of untrusted input also fill an optional `herr` with one sentence
 * for a person ("string index 57 out of range (string table has 40 entries)")
 * so the CLI and server can print "FILE: message" and an HTTP 400 body.
 */
#ifndef HEARTH_CORE_ERR_H
#define HEARTH_CORE_ERR_H

enum {
    HE_BASE = -30900,
    HE_TRUNCATED = HE_BASE - 1, /* input ends inside a value */
    HE_WIRETYPE = HE_BASE - 2,  /* protobuf field has an unexpected wire type */
    HE_TOOBIG = HE_BASE - 3,    /* a cap was exceeded (body, decompressed size, depth) */
    HE_BADREF = HE_BASE - 4,    /* an id or index refers to nothing */
    HE_UTF8 = HE_BASE - 5,      /* text is not valid UTF-8 */
    HE_GZIP = HE_BASE - 6,      /* corrupt gzip stream */
    HE_ZSTD = HE_BASE - 7,      /* corrupt zstd frame */
    HE_FORMAT = HE_BASE - 8,    /* input does not follow its format */
    HE_CHECKSUM = HE_BASE - 9,  /* stored checksum does not match */
    HE_NOTFOUND = HE_BASE - 10, /* a named thing does not exist */
    HE_UNSUPPORTED = HE_BASE - 11, /* valid input we do not handle */
    HE_USAGE = HE_BASE - 12,    /* bad command line or API argument */
    HE_LAST = HE_BASE - 13
};

typedef struct herr {
    int code;      /* 0 or the code last set */
    char msg[256]; /* one sentence, no trailing newline */
} herr;

/* Static description of a code (negative errno or HE_*). Never NULL. */
const char *hearth_strerror(int code);

/*
 * Sets e->code and a printf-formatted message (if e is not NULL; the first
 * error set wins, later ones are ignored so the root cause is kept).
 * Returns code, so `return herr_set(e, HE_BADREF, "...", ...)` reads well.
 */
int herr_set(herr *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Clears e. */
static inline void herr_clear(herr *e) { if (e) { e->code = 0; e->msg[0] = 0; } }

/* The message if set, else hearth_strerror(code). */
const char *herr_msg(const herr *e, int code);

#endif

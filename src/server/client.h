/*
 * client.h: the HTTP client side used by `hearth query`, `diff` and
 * `ingest` (libcurl) against any Pyroscope-compatible server: base URL,
 * tenant (X-Scope-OrgID), bearer or basic auth, timeouts, response caps,
 * progress on a terminal for long uploads, and Connect error messages
 * turned into one readable sentence.
 */
#ifndef HEARTH_SERVER_CLIENT_H
#define HEARTH_SERVER_CLIENT_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct client_opts {
    const char *url;         /* "http://localhost:4040" */
    const char *tenant;      /* NULL: none sent */
    const char *token;       /* bearer token, NULL: none */
    const char *basic_auth;  /* "user:password", NULL: none */
    long timeout_s;          /* whole request, default 120 */
    int progress;            /* 1: show upload progress on stderr (when it is a terminal) */
} client_opts;

/*
 * POSTs body[0..n) to url + path with the given Content-Type and extra
 * query (may be NULL; appended after '?'). The response body goes to out
 * (its cap applies). Returns 0 for a 2xx answer; otherwise HE_FORMAT (4xx)
 * or -EIO (5xx, connection failure) with e holding the server's message
 * or curl's error.
 */
int client_post(const client_opts *o, const char *path, const char *content_type, const void *body, size_t n,
                buf *out, herr *e);

/* GET url + path. Same contract. */
int client_get(const client_opts *o, const char *path, buf *out, herr *e);

/* Reads --url/--tenant/--token/--basic-auth (and $HEARTH_URL, $HEARTH_TENANT, $HEARTH_TOKEN) defaults. */
void client_opts_default(client_opts *o);

/* Percent-escapes s into out (cap out->max). */
int client_escape(const char *s, buf *out);

#endif

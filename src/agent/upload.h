/*
 * upload.h: pushes profiles to a Pyroscope-compatible server
 * (POST /ingest?name=app{k=v}&from=S&until=S&format=pprof&spyName=...).
 *
 * A background thread drains a bounded queue with libcurl (loaded at the
 * first upl_new, see curl_dl.h). A failed POST
 * (connection error, 5xx, 429) is retried with exponential backoff and full
 * jitter (base 1 s, cap 30 s) up to max_attempts; a 4xx other than 429 is not
 * retried (the server rejected the payload; retrying cannot help). When the
 * queue is full the oldest item is dropped and counted: memory stays bounded
 * whatever the server does.
 *
 * Thread-safe: upl_push() may be called from any thread.
 */
#ifndef HEARTH_AGENT_UPLOAD_H
#define HEARTH_AGENT_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct upl_opts {
    const char *server;       /* base URL, e.g. http://host:4040 (required) */
    const char *auth_token;   /* "Authorization: Bearer ..." when set */
    const char *basic_auth;   /* "user:password" for HTTP basic auth when set */
    const char *tenant;       /* X-Scope-OrgID when set */
    const char *spy_name;     /* spyName= (default "hearth") */
    size_t max_queue;         /* items queued; default 64 */
    size_t max_queue_bytes;   /* bytes queued; default 64 MiB */
    int max_attempts;         /* per item; default 5 */
    int timeout_ms;           /* per request; default 10000 */
    int backoff_base_ms;      /* default 1000 */
    int backoff_max_ms;       /* default 30000 */
} upl_opts;

typedef struct upl_stats {
    uint64_t sent, failed, dropped, retries;
    uint64_t bytes_sent;
    size_t queued;
    int last_http_status;     /* 0 before any response */
    char last_error[160];
} upl_stats;

typedef struct uploader uploader;

/*
 * Starts an uploader. The first call loads libcurl (curl_dl.h: it blocks
 * for the load, a few ms, and must not be made holding a lock a fork
 * handler takes). Returns 0 with *out set, or HE_USAGE (no server, bad
 * URL) / -ELIBACC (libcurl cannot be loaded) / -errno (thread) with e
 * explaining. Strings in o are copied.
 */
int upl_new(const upl_opts *o, uploader **out, herr *e);

/*
 * Queues one pprof (already encoded, gzip or not) for app name `name`
 * (e.g. "myapp.cpu{host=h,comm=x}"), covering [from_s, until_s] in unix
 * seconds. Takes ownership of body's memory (body is reset). Returns 0, 1
 * when an older item had to be dropped to make room, or -ENOMEM (body
 * released). Nothing in the uploader aborts on out-of-memory.
 */
int upl_push(uploader *u, const char *name, int64_t from_s, int64_t until_s,
             uint32_t sample_rate, buf *body);

void upl_get_stats(uploader *u, upl_stats *st);

/*
 * Stops the thread after trying to send what is queued for at most
 * flush_ms (0 = drop at once), then frees everything. upl_close also
 * reports the final counts (after that last attempt) into *final when
 * final is not NULL.
 */
void upl_close(uploader *u, int flush_ms, upl_stats *final);
void upl_free(uploader *u, int flush_ms);

/*
 * Builds the Pyroscope app name `base{k=v,...}` from a base name and label
 * pairs (keys[i], vals[i]); characters that Pyroscope's parser treats
 * specially (braces, commas, '=') in values are replaced with '_'.
 */
int upl_app_name(buf *out, const char *base, const char *const *keys,
                 const char *const *vals, size_t n);

#endif

/*
 * curl_dl.h: libcurl, loaded when the first uploader starts (dlopen of
 * libcurl.so.4) instead of at program start.
 *
 * libhearth.so is preloaded into programs that may never upload (profiling
 * not configured, or written to files), and libcurl's dependencies (its TLS,
 * Kerberos, LDAP and IDN libraries, about 30 in all on Debian) cost every
 * such process about 4 ms at exec and 5 MiB of resident memory when they are
 * linked. Loaded here, from the uploader's caller (the collector thread in
 * libhearth.so, start-up in the agent), only a process that uploads maps
 * them, and off its main thread.
 *
 * Thread-safe. A fork() waits while the library is being loaded, so a child
 * never inherits the loader's lock held by a thread it does not have.
 */
#ifndef HEARTH_AGENT_CURL_DL_H
#define HEARTH_AGENT_CURL_DL_H

#include <stddef.h>

#include <curl/curl.h>

/* The libcurl functions the uploader calls, under their own names without curl_. */
typedef struct curl_fns {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
    CURLcode (*easy_perform)(CURL *curl);
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
    void (*easy_reset)(CURL *curl);
    void (*easy_cleanup)(CURL *curl);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
    void (*slist_free_all)(struct curl_slist *list);
} curl_fns;

/*
 * Loads libcurl and runs curl_global_init() the first time; the same table
 * afterwards. NULL when it cannot be loaded, with why in err (the dlerror()
 * text); a later call tries again.
 */
const curl_fns *curl_fns_get(char *err, size_t err_size);

#endif

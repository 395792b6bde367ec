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
 * Thread-safe. Call it with none of the caller's locks held that a fork
 * handler takes: loading runs libcurl's dependencies' constructors, which
 * call pthread_atfork(), and before glibc 2.36 a fork() holds the lock that
 * needs while its prepare handlers run (a prepare handler waiting for a lock
 * held across the load never returns). Nothing here makes fork() wait; a
 * child forked during a load calls curl_fns_after_fork_child() and loads
 * again when it needs to.
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
 * afterwards. NULL when libcurl cannot be loaded or initialised, with a
 * message in err saying which and why; a later call tries again.
 */
const curl_fns *curl_fns_get(char *err, size_t err_size);

/* In a fork child (from its atfork child handler): makes curl_fns_get usable again. */
void curl_fns_after_fork_child(void);

#endif

/*
 * curl_dl.c: see curl_dl.h. One table of function pointers, filled under a
 * mutex by the first caller; `ready` is published with release order, so a
 * caller that sees it set sees the table.
 */
#include "core/common.h"
#include "agent/curl_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

/* The soname of libcurl 7.16 and every version since (Debian's libcurl4 package). */
#define CURL_SONAME "libcurl.so.4"

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static curl_fns fns;
static _Atomic int ready;

static int load(char *err, size_t err_size)
{
    void *h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    CURLcode (*global_init)(long);
    const char *missing = NULL;
    if (!h) {
        const char *why = dlerror();
        snprintf(err, err_size, "cannot load %s (libcurl, needed to upload; Debian package libcurl4): %s",
                 CURL_SONAME, why ? why : "unknown error");
        return -1;
    }
#define SYM(field, name)                                         \
    do {                                                         \
        *(void **)(&fns.field) = dlsym(h, name);                 \
        if (!fns.field && !missing) missing = name;              \
    } while (0)
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_perform, "curl_easy_perform");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_reset, "curl_easy_reset");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(slist_append, "curl_slist_append");
    SYM(slist_free_all, "curl_slist_free_all");
#undef SYM
    *(void **)(&global_init) = dlsym(h, "curl_global_init");
    if (!global_init && !missing) missing = "curl_global_init";
    if (missing) {
        snprintf(err, err_size, "%s has no %s: not a usable libcurl", CURL_SONAME, missing);
        dlclose(h);
        return -1;
    }
    CURLcode cc = global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        snprintf(err, err_size, "curl_global_init failed: %s", fns.easy_strerror(cc));
        return -1;  /* the library stays loaded: a later call tries the init again */
    }
    return 0;
}

const curl_fns *curl_fns_get(char *err, size_t err_size)
{
    if (atomic_load_explicit(&ready, memory_order_acquire)) return &fns;
    pthread_mutex_lock(&load_mu);
    int ok = atomic_load_explicit(&ready, memory_order_relaxed) || load(err, err_size) == 0;
    if (ok) atomic_store_explicit(&ready, 1, memory_order_release);
    pthread_mutex_unlock(&load_mu);
    return ok ? &fns : NULL;
}

void curl_fns_after_fork_child(void)
{
    /* The thread that may have held it (loading) does not exist here; an unfinished load is retried. */
    pthread_mutex_init(&load_mu, NULL);
}

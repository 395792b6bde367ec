/*
 * mem.c: see mem.h.
 */
#include "core/common.h"
#include "core/mem.h"

#include <unistd.h>

static void oom(size_t n)
{
    char msg[128];
    int len = snprintf(msg, sizeof msg, "hearth: out of memory allocating %zu bytes\n", n);
    if (write(2, msg, (size_t)len) < 0) { }
    abort();
}

void *xmalloc(size_t n) { void *p = malloc(n ? n : 1); if (!p) oom(n); return p; }
void *xcalloc(size_t n, size_t size) { void *p = calloc(n ? n : 1, size ? size : 1); if (!p) oom(n * size); return p; }
void *xrealloc(void *p, size_t n) { p = realloc(p, n ? n : 1); if (!p) oom(n); return p; }
char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }
char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void *hmallocarray(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) return NULL;
    return malloc(total ? total : 1);
}

void *hreallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) return NULL;
    return realloc(p, total ? total : 1);
}

void *xmallocarray(size_t n, size_t size)
{
    void *p = hmallocarray(n, size);
    if (!p) oom(n * size);
    return p;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
    p = hreallocarray(p, n, size);
    if (!p) oom(n * size);
    return p;
}

int hgrow(void **arr, size_t *cap, size_t need, size_t elem_size)
{
    size_t ncap;
    void *p;
    if (need <= *cap) return 0;
    ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return -ENOMEM;
        ncap *= 2;
    }
    p = hreallocarray(*arr, ncap, elem_size);
    if (!p) return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

void xgrow(void **arr, size_t *cap, size_t need, size_t elem_size)
{
    if (hgrow(arr, cap, need, elem_size)) oom(need * elem_size);
}

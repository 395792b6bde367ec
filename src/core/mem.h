/*
 * mem.h: allocation wrappers.
 *
 * x*() never return NULL: on out-of-memory they call the OOM handler, which by
 * default logs and aborts (fine for the server and CLI). libhearth.so must
 * never abort its host, so its code uses the h*() variants, which return NULL,
 * and so do the core containers (buf, vec, hmap) through their error returns.
 */
#ifndef HEARTH_CORE_MEM_H
#define HEARTH_CORE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* xmalloc of n*size with overflow check. */
void *xmallocarray(size_t n, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);

/* Non-aborting: NULL on failure or on n*size overflow. */
void *hmallocarray(size_t n, size_t size);
void *hreallocarray(void *p, size_t n, size_t size);

/*
 * Grows *arr (elements of elem_size, capacity *cap) so that it holds at least
 * need elements, doubling. Returns 0 or -ENOMEM (arr untouched on failure).
 */
int hgrow(void **arr, size_t *cap, size_t need, size_t elem_size);
/*
 * The check for room is inline and expected to pass: most calls append into
 * room there is (one per sample in decoders), so callers need no check of
 * their own.
 */
static inline int hgrow_room(void **arr, size_t *cap, size_t need, size_t elem_size)
{
    return __builtin_expect(need <= *cap, 1) ? 0 : hgrow(arr, cap, need, elem_size);
}
#define HGROW(arr, cap, need) hgrow_room((void **)&(arr), &(cap), (need), sizeof(*(arr)))
/* hgrow that aborts with a message on failure, as xrealloc does (callers with no way to report ENOMEM). */
void xgrow(void **arr, size_t *cap, size_t need, size_t elem_size);
#define XGROW(arr, cap, need) xgrow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

#endif

/*
 * arena.c: see arena.h. Each block is one malloc; an oversized request gets a
 * block of its own so a huge string does not waste a whole doubling.
 */
#include "core/common.h"
#include "core/arena.h"

struct arena_block {
    struct arena_block *next;
    size_t size, used;
    max_align_t data[];
};

void arena_init(arena *a) { a->head = NULL; a->used_bytes = 0; a->next_size = 16384; }

void arena_release(arena *a)
{
    struct arena_block *b = a->head;
    while (b) { struct arena_block *n = b->next; free(b); b = n; }
    arena_init(a);
}

void *arena_alloc(arena *a, size_t n)
{
    struct arena_block *b = a->head;
    n = (n + 7) & ~(size_t)7;
    if (!b || b->size - b->used < n) {
        size_t size = a->next_size;
        if (n > size / 4) size = n;  /* big: own block, keep the current one */
        else if (a->next_size < ((size_t)1 << 24)) a->next_size *= 2;
        b = malloc(sizeof *b + size);
        if (!b) return NULL;
        b->size = size;
        b->used = 0;
        if (size == n && a->head) {  /* keep filling the current head */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    a->used_bytes += n;
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

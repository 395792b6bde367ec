/*
 * arena.h: a bump allocator for many small objects freed together (strings of
 * a profile, nodes of a query). Blocks grow geometrically; allocations never
 * move, so pointers stay valid until arena_release(). Not thread-safe.
 */
#ifndef HEARTH_CORE_ARENA_H
#define HEARTH_CORE_ARENA_H

#include <stddef.h>

struct arena_block;
typedef struct arena {
    struct arena_block *head;
    size_t used_bytes;  /* sum of requested sizes, for stats */
    size_t next_size;
} arena;

void arena_init(arena *a);
void arena_release(arena *a);
/* Returns n bytes aligned to 8, or NULL on out-of-memory. */
void *arena_alloc(arena *a, size_t n);
/* Copies s[0..n) and a NUL; NULL on out-of-memory. */
char *arena_strndup(arena *a, const char *s, size_t n);

#endif

/*
 * flame.h: the flame graph tree: stacks aggregated by frame name, root first,
 * as every flame graph view and the Pyroscope FlameGraph/flamebearer
 * encodings need it.
 *
 * Node 0 is the root, named "total" (Pyroscope's convention). Children of a
 * node are unique by name. Each node holds total (itself + descendants) and
 * self; a diff tree holds a second pair (total2/self2) for the right side.
 * Node names are interned in the tree's own strtab (names); a node also
 * remembers the file (in files) and line of the first location that
 * produced it, for hovers.
 *
 * Frame names come from prof_frame_name(): inlined functions expand to one
 * frame each (outermost first, when read root first).
 *
 * Encodings (documented in docs/flamegraph.md):
 *   flame_levels(): Pyroscope's FlameGraph (querier.v1): names[] and
 *     levels[d] = [x_offset, total, self, name_index] * nodes at depth d,
 *     where x_offset is relative to the end of the previous node at that
 *     depth (delta-encoded), nodes ordered depth-first with children sorted
 *     by name. Diff trees use 7-tuples [x_left, total_left, self_left,
 *     x_right, total_right, self_right, name_index] (FlameGraphDiff).
 */
#ifndef HEARTH_PROFILE_FLAME_H
#define HEARTH_PROFILE_FLAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"
#include "profile/profile.h"

typedef struct flame_node {
    uint32_t name;          /* string id in names */
    uint32_t parent;        /* root is its own parent */
    uint32_t first_child;   /* 0 = none */
    uint32_t next_sibling;  /* 0 = none */
    uint32_t file;          /* string id in files, 0 = unknown */
    int64_t line;           /* 0 = unknown */
    int64_t total, self;
    int64_t total2, self2;  /* right side of a diff */
} flame_node;

typedef struct flame_tree {
    strtab names;     /* frame names: 0 = "total", 1 = "other"; the names[] of encodings */
    strtab files;     /* source file of a node, for hovers: 0 = "" (kept apart so
                         encodings that list every name never list files) */
    flame_node *nodes;
    uint32_t n_nodes, cap_nodes;
    hmap64 children;  /* (parent << 32 | name) -> node */
    int is_diff;      /* set once total2 is used */
    uint32_t max_depth;
} flame_tree;

/* Selects which samples of a profile go into a tree. NULL = all. */
typedef struct flame_filter {
    const char *const *span_ids;  /* keep samples whose span_id label is one of these */
    size_t n_span_ids;
} flame_filter;

int flame_init(flame_tree *t);
void flame_release(flame_tree *t);

/* Child of parent named name_id, created if missing. Returns node or < 0. */
int32_t flame_child(flame_tree *t, uint32_t parent, uint32_t name_id);
/*
 * Adds one stack given as names root first (ids in t->names) with value v on
 * side (0 = left/only, 1 = right of a diff). Returns the leaf node or < 0.
 */
int32_t flame_add_names(flame_tree *t, const uint32_t *names, size_t n, int64_t v, int side);
/*
 * Adds the samples of p's sample type `type` (that pass filter) on a side.
 * Frames are expanded from locations (inline lines outermost first).
 */
int flame_add_profile(flame_tree *t, const profile *p, int type, const flame_filter *f, int side);

/* Total of the root on a side. */
static inline int64_t flame_total(const flame_tree *t, int side) { return t->n_nodes ? (side ? t->nodes[0].total2 : t->nodes[0].total) : 0; }

/*
 * Builds out (initialized by the call) from t keeping at most max_nodes
 * nodes (0 = no limit): Pyroscope's rule, a node is kept when its total
 * (max of both sides for a diff) is at least the max_nodes-th largest total;
 * the dropped children of a node are summed into one child named "other".
 * Children are sorted by name in out.
 */
int flame_truncate(const flame_tree *t, uint32_t max_nodes, flame_tree *out);

/* Sorts every node's children by name (the order flame_levels writes). */
void flame_sort(flame_tree *t);

/* The levels encoding: levels[d] has n_level[d] int64 values. */
typedef struct flame_levels_out {
    int64_t **levels;
    size_t *n_level;
    size_t n_levels;
    int64_t max_self;  /* max over nodes of self (left side for a diff) */
} flame_levels_out;

/* Encodes t (sorted first) as levels; free with flame_levels_release. */
int flame_levels(flame_tree *t, flame_levels_out *out);
void flame_levels_release(flame_levels_out *out);

/*
 * Visits nodes depth first, children in order; fn gets the node id and
 * depth (root = 0) and returns non-zero to stop. Returns what fn stopped with.
 */
int flame_walk(const flame_tree *t, int (*fn)(const flame_tree *t, uint32_t node, uint32_t depth, void *arg), void *arg);

#endif

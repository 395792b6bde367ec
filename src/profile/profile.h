/*
 * profile.h: the in-memory profile model (DESIGN.md §2), shared by every
 * codec, the store, the server and the collectors.
 *
 * A profile holds symbol tables and samples, pprof-shaped but normalized:
 *
 *   strings    interned; id 0 is always "".
 *   mappings   [1..n_mappings), index 0 is a zero "no mapping" entry.
 *   functions  [1..n_functions), index 0 = "no function".
 *   locations  [1..n_locations), index 0 unused; each has lines[] (function
 *              + line), innermost (inlined callee) first, as in pprof.
 *   stacks     a parent-pointer tree of nodes; node 0 is the root (empty
 *              stack); node k = (parent, location). A stack id is the node of
 *              its leaf frame. Identical stacks share one id.
 *   samples    (stack id, values[n_types], labels). values is row-major:
 *              sample i's value for type t is values[i * n_types + t].
 *              Labels on samples are kept verbatim (span_id etc.).
 *
 * References between tables are indices, always < the table's count once
 * prof_validate() has passed; decoders check every reference they read.
 *
 * Memory: the profile owns everything; strings live in its strtab arena and
 * stay valid until prof_release(). All adders return >= 0 (the index) or a
 * negative error (-ENOMEM, HE_TOOBIG when a cap in prof_limits is hit).
 *
 * Deduplication: *_add() appends without checking (fast path for decoders of
 * already-unique pprof tables); *_intern() returns the existing entry when an
 * equal one exists (builds its index lazily from what is there). Stack nodes
 * are always deduplicated.
 */
#ifndef HEARTH_PROFILE_PROFILE_H
#define HEARTH_PROFILE_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/hash.h"

typedef struct prof_value_type {
    uint32_t type, unit;  /* string ids, e.g. "cpu", "nanoseconds" */
} prof_value_type;

typedef struct prof_mapping {
    uint64_t memory_start, memory_limit, file_offset;
    uint32_t filename, build_id;  /* string ids */
    uint8_t has_functions, has_filenames, has_line_numbers, has_inline_frames;
} prof_mapping;

typedef struct prof_function {
    uint32_t name, system_name, filename;  /* string ids */
    int64_t start_line;
} prof_function;

typedef struct prof_line {
    uint32_t function;  /* function index, 0 = unknown */
    int64_t line;
    int64_t column;
} prof_line;

typedef struct prof_location {
    uint64_t address;
    uint32_t mapping;     /* mapping index, 0 = none */
    uint32_t first_line;  /* into p->lines */
    uint32_t n_lines;
    uint8_t is_folded;
} prof_location;

typedef struct prof_node {
    uint32_t parent;    /* node id; the root (0) is its own parent */
    uint32_t location;  /* location index; 0 for the root */
} prof_node;

typedef struct prof_label {
    uint32_t key;       /* string id */
    uint32_t str;       /* string id, 0 when numeric */
    int64_t num;
    uint32_t num_unit;  /* string id */
} prof_label;

typedef struct prof_sample {
    uint32_t stack;        /* node id of the leaf frame */
    uint32_t first_label;  /* into p->labels */
    uint32_t n_labels;
} prof_sample;

/* Caps on what one profile may hold; decoders fail with HE_TOOBIG past them. */
typedef struct prof_limits {
    uint32_t max_samples;     /* default 10M */
    uint32_t max_locations;   /* default 10M */
    uint32_t max_stack_depth; /* default 1024: deeper stacks are truncated at the root end */
    uint32_t max_labels;      /* per sample, default 64 */
    uint32_t max_labels_total; /* over all samples, default 8M (a flood of empty labels costs 12x its wire size) */
    uint32_t max_string_len;  /* default 64 KiB */
} prof_limits;

typedef struct profile {
    strtab strings;

    prof_mapping *mappings;
    uint32_t n_mappings, cap_mappings;
    prof_function *functions;
    uint32_t n_functions, cap_functions;
    prof_location *locations;
    uint32_t n_locations, cap_locations;
    prof_line *lines;
    uint32_t n_lines, cap_lines;

    prof_node *nodes;
    uint32_t n_nodes, cap_nodes;
    hmap64 node_index;  /* (parent << 32 | location) -> node, for nodes < nodes_indexed */
    uint32_t nodes_indexed;

    prof_value_type *sample_types;
    uint32_t n_types;
    prof_sample *samples;
    size_t n_samples, cap_samples;
    int64_t *values;    /* n_samples * n_types */
    size_t cap_values;
    prof_label *labels;
    size_t n_labels, cap_labels;

    prof_value_type period_type;
    int64_t period;
    int64_t time_nanos, duration_nanos;
    uint32_t default_sample_type;  /* string id, 0 = unset */
    uint32_t *comments;            /* string ids */
    uint32_t n_comments;
    uint32_t drop_frames, keep_frames;

    prof_limits limits;

    /* lazily built indexes for *_intern() and sample combining */
    hmap64 mapping_index, function_index, location_index, sample_index;
    uint32_t mapping_indexed, function_indexed, location_indexed;
    size_t samples_indexed;
} profile;

/* Initializes an empty profile with default limits; string 0 is "". */
int prof_init(profile *p);
void prof_release(profile *p);
/* Releases and re-initializes, keeping limits. */
int prof_reset(profile *p);
void prof_limits_default(prof_limits *l);

/* Strings. */
int32_t prof_str(profile *p, const char *s, size_t n);
static inline int32_t prof_cstr(profile *p, const char *s) { return prof_str(p, s, strlen(s)); }
static inline const char *prof_s(const profile *p, uint32_t id) { return strtab_get(&p->strings, id); }

/* Symbol tables. */
int32_t prof_mapping_add(profile *p, const prof_mapping *m);
int32_t prof_mapping_intern(profile *p, const prof_mapping *m);
int32_t prof_function_add(profile *p, const prof_function *f);
int32_t prof_function_intern(profile *p, const prof_function *f);
/* lines[0..n_lines) are copied; innermost first. */
int32_t prof_location_add(profile *p, uint64_t address, uint32_t mapping,
                          const prof_line *lines, uint32_t n_lines);
int32_t prof_location_intern(profile *p, uint64_t address, uint32_t mapping,
                             const prof_line *lines, uint32_t n_lines);
/* Convenience for text formats: the location of a function named name[0..n). */
int32_t prof_location_for_name(profile *p, const char *name, size_t n);

/* Stacks. */
/* The node for (parent, location), created if new. */
int32_t prof_node_get(profile *p, uint32_t parent, uint32_t location);
/*
 * Appends the node (parent, location) without looking for an equal one: for
 * decoders that deduplicate stacks themselves (the caller guarantees it is
 * new). The lookup index then catches up lazily, on the next prof_node_get.
 */
int32_t prof_node_append(profile *p, uint32_t parent, uint32_t location);
/* Stack of locs[0..n), leaf first (pprof order). Depth capped by limits (root end dropped). */
int32_t prof_stack_leaf_first(profile *p, const uint32_t *locs, size_t n);
/* Stack of locs[0..n), root first (folded order). */
int32_t prof_stack_root_first(profile *p, const uint32_t *locs, size_t n);
/* Writes the stack's locations leaf first into out (up to max); returns the depth (may exceed max). */
size_t prof_stack_locations(const profile *p, uint32_t stack, uint32_t *out, size_t max);

/* Samples. */
/* Declares the sample types (once, before samples); returns 0 or an error. */
int prof_set_types(profile *p, const prof_value_type *types, uint32_t n_types);
int prof_add_type(profile *p, const char *type, const char *unit);
/* Appends a sample; values has n_types entries; labels are copied. Returns its index. */
int64_t prof_sample_add(profile *p, uint32_t stack, const int64_t *values,
                        const prof_label *labels, uint32_t n_labels);
static inline const int64_t *prof_values(const profile *p, size_t sample)
{
    return p->values ? p->values + sample * p->n_types : NULL;  /* NULL when there are no types */
}
/* Index of the sample type named type (e.g. "cpu"), or -1. */
int prof_type_index(const profile *p, const char *type);
/*
 * The sample type to show by default: `want` if given and present (by type
 * name), else the profile's default_sample_type, else the last type (as
 * pprof does). -1 (with e set) if want is given but absent or there are none.
 */
int prof_pick_type(const profile *p, const char *want, herr *e);
/* a + b, clamped to the int64 range: totals of hostile input must not overflow. */
static inline int64_t prof_sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* Sum of the values of type t over all samples (saturating). */
int64_t prof_total(const profile *p, int t);

/* The string value of label key `key` on sample i, or NULL. */
const char *prof_sample_label(const profile *p, size_t i, const char *key);

/*
 * Display name of line k of location loc: the function's name, else its
 * system name, else "module+0xoffset" from the mapping (or "0xaddr"), so an
 * address never vanishes. Writes into out (NUL-terminated, truncated to
 * out_size) and returns out.
 */
const char *prof_frame_name(const profile *p, uint32_t loc, uint32_t line_k, char *out, size_t out_size);

/*
 * Checks every cross-reference (string ids, mapping/function/location
 * indices, stack nodes, label keys) and UTF-8 of nothing: text checks belong
 * to the encoders. 0 or HE_BADREF with e explaining.
 */
int prof_validate(const profile *p, herr *e);

/*
 * Merges src into dst: symbols remapped (interned, so duplicates collapse),
 * identical stacks combined; samples with equal stack and equal labels are
 * summed when combine is non-zero. Sample types must match by name and unit
 * (HE_FORMAT otherwise) unless dst has none yet, in which case src's are
 * taken. Only sample type `type` of src is merged when type >= 0, into a dst
 * with a single type.
 */
int prof_merge(profile *dst, const profile *src, int type, int combine, herr *e);

/*
 * Combines samples with equal stack and labels in place (values summed), and
 * drops samples whose values are all zero. Order of first occurrence is kept.
 */
int prof_compact_samples(profile *p);

#endif

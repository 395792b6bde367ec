/*
 * profile.c: the profile model (see profile.h).
 *
 * Tables are plain growable arrays; index 0 of mappings, functions and
 * locations is a zero entry so that 0 can mean "none" everywhere, as pprof's
 * id 0 does. The stack tree is deduplicated through node_index keyed by
 * (parent << 32 | location); a node is always created after its parent, so
 * parent < child, which merge and the flame tree rely on to remap a whole
 * tree in one forward pass.
 *
 * The *_intern() indexes are keyed by a 64-bit content hash; collisions are
 * resolved by probing key+1, key+2, ... and comparing contents, so two
 * different entries never merge.
 */
#include "core/common.h"
#include "core/mem.h"
#include "profile/profile.h"

void prof_limits_default(prof_limits *l)
{
    l->max_samples = 10000000;
    l->max_locations = 10000000;
    l->max_stack_depth = 1024;
    l->max_labels = 64;
    l->max_labels_total = 8u << 20;
    l->max_string_len = 65536;
}

int prof_init(profile *p)
{
    memset(p, 0, sizeof *p);
    strtab_init(&p->strings);
    hmap64_init(&p->node_index);
    hmap64_init(&p->mapping_index);
    hmap64_init(&p->function_index);
    hmap64_init(&p->location_index);
    hmap64_init(&p->sample_index);
    prof_limits_default(&p->limits);
    {
        int rc;
        prof_mapping m0 = {0};
        prof_function f0 = {0};
        if (strtab_intern(&p->strings, "", 0) != 0) return -ENOMEM;
        if ((rc = prof_mapping_add(p, &m0)) < 0) return rc;
        if ((rc = prof_function_add(p, &f0)) < 0) return rc;
        if ((rc = prof_location_add(p, 0, 0, NULL, 0)) < 0) return rc;
        p->nodes = malloc(16 * sizeof *p->nodes);
        if (!p->nodes) return -ENOMEM;
        p->cap_nodes = 16;
        p->nodes[0].parent = 0;
        p->nodes[0].location = 0;
        p->n_nodes = 1;
        p->nodes_indexed = 1;
    }
    return 0;
}

void prof_release(profile *p)
{
    strtab_release(&p->strings);
    free(p->mappings);
    free(p->functions);
    free(p->locations);
    free(p->lines);
    free(p->nodes);
    hmap64_release(&p->node_index);
    free(p->sample_types);
    free(p->samples);
    free(p->values);
    free(p->labels);
    free(p->comments);
    hmap64_release(&p->mapping_index);
    hmap64_release(&p->function_index);
    hmap64_release(&p->location_index);
    hmap64_release(&p->sample_index);
    memset(p, 0, sizeof *p);
}

int prof_reset(profile *p)
{
    prof_limits l = p->limits;
    prof_release(p);
    int rc = prof_init(p);
    p->limits = l;
    return rc;
}

int32_t prof_str(profile *p, const char *s, size_t n)
{
    if (n > p->limits.max_string_len) return HE_TOOBIG;
    return strtab_intern(&p->strings, s, n);
}

/* Grows a uint32-counted table. */
static int grow32(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    size_t c = *cap;
    int rc;
    if (need <= *cap) return 0;
    if (need == UINT32_MAX) return HE_TOOBIG;
    rc = hgrow(arr, &c, need, elem);
    if (rc) return rc;
    *cap = c > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)c;
    return 0;
}
#define GROW32(arr, cap, need) grow32((void **)&(arr), &(cap), (need), sizeof(*(arr)))

int32_t prof_mapping_add(profile *p, const prof_mapping *m)
{
    int rc = GROW32(p->mappings, p->cap_mappings, p->n_mappings + 1);
    if (rc) return rc;
    p->mappings[p->n_mappings] = *m;
    return (int32_t)p->n_mappings++;
}

int32_t prof_function_add(profile *p, const prof_function *f)
{
    int rc = GROW32(p->functions, p->cap_functions, p->n_functions + 1);
    if (rc) return rc;
    p->functions[p->n_functions] = *f;
    return (int32_t)p->n_functions++;
}

int32_t prof_location_add(profile *p, uint64_t address, uint32_t mapping,
                          const prof_line *lines, uint32_t n_lines)
{
    int rc;
    if (p->n_locations >= p->limits.max_locations + 1) return HE_TOOBIG;
    if ((rc = GROW32(p->locations, p->cap_locations, p->n_locations + 1))) return rc;
    if (n_lines && (rc = GROW32(p->lines, p->cap_lines, p->n_lines + n_lines))) return rc;
    prof_location *l = &p->locations[p->n_locations];
    l->address = address;
    l->mapping = mapping;
    l->first_line = p->n_lines;
    l->n_lines = n_lines;
    l->is_folded = 0;
    if (n_lines) memcpy(p->lines + p->n_lines, lines, n_lines * sizeof *lines);
    p->n_lines += n_lines;
    return (int32_t)p->n_locations++;
}

/* Content hashes and equality for the intern indexes. */
static uint64_t mapping_hash(const prof_mapping *m)
{
    uint64_t k[5] = {m->memory_start, m->memory_limit, m->file_offset,
                     ((uint64_t)m->filename << 32) | m->build_id,
                     (uint64_t)m->has_functions | (uint64_t)m->has_filenames << 8 |
                         (uint64_t)m->has_line_numbers << 16 | (uint64_t)m->has_inline_frames << 24};
    return hash_bytes(k, sizeof k, 1);
}
static int mapping_eq(const prof_mapping *a, const prof_mapping *b)
{
    return a->memory_start == b->memory_start && a->memory_limit == b->memory_limit &&
           a->file_offset == b->file_offset && a->filename == b->filename && a->build_id == b->build_id &&
           a->has_functions == b->has_functions && a->has_filenames == b->has_filenames &&
           a->has_line_numbers == b->has_line_numbers && a->has_inline_frames == b->has_inline_frames;
}
static uint64_t function_hash(const prof_function *f)
{
    uint64_t k[3] = {((uint64_t)f->name << 32) | f->system_name, f->filename, (uint64_t)f->start_line};
    return hash_bytes(k, sizeof k, 2);
}
static int function_eq(const prof_function *a, const prof_function *b)
{
    return a->name == b->name && a->system_name == b->system_name && a->filename == b->filename &&
           a->start_line == b->start_line;
}
static uint64_t location_hash(uint64_t address, uint32_t mapping, const prof_line *lines, uint32_t n)
{
    uint64_t h = hash_bytes(&address, 8, mapping);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t k[3] = {lines[i].function, (uint64_t)lines[i].line, (uint64_t)lines[i].column};
        h = hash_bytes(k, sizeof k, h);
    }
    return h;
}
static int location_eq(const profile *p, uint32_t idx, uint64_t address, uint32_t mapping,
                       const prof_line *lines, uint32_t n)
{
    const prof_location *l = &p->locations[idx];
    if (l->address != address || l->mapping != mapping || l->n_lines != n) return 0;
    for (uint32_t i = 0; i < n; i++) {
        const prof_line *a = &p->lines[l->first_line + i];
        if (a->function != lines[i].function || a->line != lines[i].line || a->column != lines[i].column) return 0;
    }
    return 1;
}

/*
 * Finds idx with equal content under hash h, probing h, h+1, ...; returns it
 * or HMAP_EMPTY with *slot set to the first free key.
 */
#define INDEX_FIND(map, h, EQ, slot_out)                                   \
    ({                                                                     \
        uint32_t found_ = HMAP_EMPTY;                                      \
        for (uint64_t k_ = (h);; k_++) {                                   \
            uint32_t v_ = hmap64_get(&(map), k_);                          \
            if (v_ == HMAP_EMPTY) { *(slot_out) = k_; break; }             \
            if (EQ(v_)) { found_ = v_; break; }                            \
        }                                                                  \
        found_;                                                            \
    })

int32_t prof_mapping_intern(profile *p, const prof_mapping *m)
{
    uint64_t slot;
    int32_t idx;
    /* Index what was added since the last intern (index 0 is never matched). */
    for (; p->mapping_indexed < p->n_mappings; p->mapping_indexed++) {
        uint32_t i = p->mapping_indexed;
        if (!i) continue;
#define MEQ(v) mapping_eq(&p->mappings[v], &p->mappings[i])
        if (INDEX_FIND(p->mapping_index, mapping_hash(&p->mappings[i]), MEQ, &slot) == HMAP_EMPTY &&
            hmap64_put(&p->mapping_index, slot, i))
            return -ENOMEM;
#undef MEQ
    }
#define MEQ(v) mapping_eq(&p->mappings[v], m)
    uint32_t found = INDEX_FIND(p->mapping_index, mapping_hash(m), MEQ, &slot);
#undef MEQ
    if (found != HMAP_EMPTY) return (int32_t)found;
    if ((idx = prof_mapping_add(p, m)) < 0) return idx;
    if (hmap64_put(&p->mapping_index, slot, (uint32_t)idx)) return -ENOMEM;
    p->mapping_indexed = p->n_mappings;
    return idx;
}

int32_t prof_function_intern(profile *p, const prof_function *f)
{
    uint64_t slot;
    int32_t idx;
    for (; p->function_indexed < p->n_functions; p->function_indexed++) {
        uint32_t i = p->function_indexed;
        if (!i) continue;
#define FEQ(v) function_eq(&p->functions[v], &p->functions[i])
        if (INDEX_FIND(p->function_index, function_hash(&p->functions[i]), FEQ, &slot) == HMAP_EMPTY &&
            hmap64_put(&p->function_index, slot, i))
            return -ENOMEM;
#undef FEQ
    }
#define FEQ(v) function_eq(&p->functions[v], f)
    uint32_t found = INDEX_FIND(p->function_index, function_hash(f), FEQ, &slot);
#undef FEQ
    if (found != HMAP_EMPTY) return (int32_t)found;
    if ((idx = prof_function_add(p, f)) < 0) return idx;
    if (hmap64_put(&p->function_index, slot, (uint32_t)idx)) return -ENOMEM;
    p->function_indexed = p->n_functions;
    return idx;
}

int32_t prof_location_intern(profile *p, uint64_t address, uint32_t mapping,
                             const prof_line *lines, uint32_t n_lines)
{
    uint64_t slot;
    int32_t idx;
    for (; p->location_indexed < p->n_locations; p->location_indexed++) {
        uint32_t i = p->location_indexed;
        const prof_location *l = &p->locations[i];
        if (!i) continue;
#define LEQ(v) location_eq(p, v, l->address, l->mapping, p->lines + l->first_line, l->n_lines)
        if (INDEX_FIND(p->location_index, location_hash(l->address, l->mapping, p->lines + l->first_line, l->n_lines),
                       LEQ, &slot) == HMAP_EMPTY &&
            hmap64_put(&p->location_index, slot, i))
            return -ENOMEM;
#undef LEQ
    }
#define LEQ(v) location_eq(p, v, address, mapping, lines, n_lines)
    uint32_t found = INDEX_FIND(p->location_index, location_hash(address, mapping, lines, n_lines), LEQ, &slot);
#undef LEQ
    if (found != HMAP_EMPTY) return (int32_t)found;
    if ((idx = prof_location_add(p, address, mapping, lines, n_lines)) < 0) return idx;
    if (hmap64_put(&p->location_index, slot, (uint32_t)idx)) return -ENOMEM;
    p->location_indexed = p->n_locations;
    return idx;
}

int32_t prof_location_for_name(profile *p, const char *name, size_t n)
{
    int32_t s = prof_str(p, name, n), fn;
    prof_function f = {0};
    prof_line line = {0};
    if (s < 0) return s;
    f.name = (uint32_t)s;
    f.system_name = (uint32_t)s;
    if ((fn = prof_function_intern(p, &f)) < 0) return fn;
    line.function = (uint32_t)fn;
    return prof_location_intern(p, 0, 0, &line, 1);
}

int32_t prof_node_append(profile *p, uint32_t parent, uint32_t location)
{
    if (p->n_nodes == p->cap_nodes && GROW32(p->nodes, p->cap_nodes, p->n_nodes + 1)) return -ENOMEM;
    p->nodes[p->n_nodes].parent = parent;
    p->nodes[p->n_nodes].location = location;
    return (int32_t)p->n_nodes++;
}

/* Puts nodes [nodes_indexed, n_nodes) into node_index, sized once. */
static int node_index_catch_up(profile *p)
{
    if (p->nodes_indexed >= p->n_nodes) return 0;
    if (hmap64_reserve(&p->node_index, p->node_index.count + (p->n_nodes - p->nodes_indexed))) return -ENOMEM;
    for (uint32_t i = MAX(p->nodes_indexed, 1u); i < p->n_nodes; i++)
        if (hmap64_put(&p->node_index, ((uint64_t)p->nodes[i].parent << 32) | p->nodes[i].location, i))
            return -ENOMEM;
    p->nodes_indexed = p->n_nodes;
    return 0;
}

int32_t prof_node_get(profile *p, uint32_t parent, uint32_t location)
{
    uint64_t key = ((uint64_t)parent << 32) | location;
    uint32_t id;
    if (UNLIKELY(p->nodes_indexed < p->n_nodes) && node_index_catch_up(p)) return -ENOMEM;
    if (p->n_nodes == p->cap_nodes && GROW32(p->nodes, p->cap_nodes, p->n_nodes + 1)) return -ENOMEM;
    id = hmap64_get_or_put(&p->node_index, key, p->n_nodes);
    if (id == HMAP_EMPTY) return -ENOMEM;
    if (id == p->n_nodes) {
        p->nodes[id].parent = parent;
        p->nodes[id].location = location;
        p->nodes_indexed = ++p->n_nodes;
    }
    return (int32_t)id;
}

int32_t prof_stack_leaf_first(profile *p, const uint32_t *locs, size_t n)
{
    uint32_t node = 0;
    if (n > p->limits.max_stack_depth) {
        /* Keep the leaf end: that is where the cost is. */
        n = p->limits.max_stack_depth;
    }
    for (size_t i = n; i-- > 0;) {
        int32_t next = prof_node_get(p, node, locs[i]);
        if (next < 0) return next;
        node = (uint32_t)next;
    }
    return (int32_t)node;
}

int32_t prof_stack_root_first(profile *p, const uint32_t *locs, size_t n)
{
    uint32_t node = 0;
    size_t start = n > p->limits.max_stack_depth ? n - p->limits.max_stack_depth : 0;
    for (size_t i = start; i < n; i++) {
        int32_t next = prof_node_get(p, node, locs[i]);
        if (next < 0) return next;
        node = (uint32_t)next;
    }
    return (int32_t)node;
}

size_t prof_stack_locations(const profile *p, uint32_t stack, uint32_t *out, size_t max)
{
    size_t depth = 0;
    while (stack != 0 && stack < p->n_nodes) {
        if (depth < max) out[depth] = p->nodes[stack].location;
        depth++;
        stack = p->nodes[stack].parent;
    }
    return depth;
}

int prof_set_types(profile *p, const prof_value_type *types, uint32_t n_types)
{
    prof_value_type *t;
    if (p->n_samples && n_types != p->n_types) return HE_USAGE;
    t = hmallocarray(n_types ? n_types : 1, sizeof *t);
    if (!t) return -ENOMEM;
    if (n_types) memcpy(t, types, n_types * sizeof *t);
    free(p->sample_types);
    p->sample_types = t;
    p->n_types = n_types;
    return 0;
}

int prof_add_type(profile *p, const char *type, const char *unit)
{
    int32_t ts = prof_cstr(p, type), us = prof_cstr(p, unit);
    prof_value_type *t;
    if (ts < 0 || us < 0) return ts < 0 ? ts : us;
    if (p->n_samples) return HE_USAGE;
    t = hreallocarray(p->sample_types, p->n_types + 1, sizeof *t);
    if (!t) return -ENOMEM;
    p->sample_types = t;
    t[p->n_types].type = (uint32_t)ts;
    t[p->n_types].unit = (uint32_t)us;
    return (int)p->n_types++;
}

int64_t prof_sample_add(profile *p, uint32_t stack, const int64_t *values,
                        const prof_label *labels, uint32_t n_labels)
{
    int rc;
    prof_sample *s;
    if (p->n_samples >= p->limits.max_samples) return HE_TOOBIG;
    if (n_labels > p->limits.max_labels || p->n_labels + n_labels > p->limits.max_labels_total) return HE_TOOBIG;
    if ((rc = HGROW(p->samples, p->cap_samples, p->n_samples + 1))) return rc;
    if (p->n_types && (rc = HGROW(p->values, p->cap_values, (p->n_samples + 1) * p->n_types))) return rc;
    if (n_labels && (rc = HGROW(p->labels, p->cap_labels, p->n_labels + n_labels))) return rc;
    s = &p->samples[p->n_samples];
    s->stack = stack;
    s->first_label = (uint32_t)p->n_labels;
    s->n_labels = n_labels;
    if (p->n_types) memcpy(p->values + p->n_samples * p->n_types, values, p->n_types * sizeof *values);
    if (n_labels) memcpy(p->labels + p->n_labels, labels, n_labels * sizeof *labels);
    p->n_labels += n_labels;
    return (int64_t)p->n_samples++;
}

int prof_type_index(const profile *p, const char *type)
{
    for (uint32_t i = 0; i < p->n_types; i++)
        if (!strcmp(prof_s(p, p->sample_types[i].type), type)) return (int)i;
    return -1;
}

int prof_pick_type(const profile *p, const char *want, herr *e)
{
    int t;
    if (!p->n_types) return herr_set(e, HE_FORMAT, "profile has no sample types"), -1;
    if (want && *want) {
        t = prof_type_index(p, want);
        if (t < 0) {
            char list[200] = "";
            size_t off = 0;
            for (uint32_t i = 0; i < p->n_types && off < sizeof list - 1; i++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "",
                                        prof_s(p, p->sample_types[i].type));
            herr_set(e, HE_NOTFOUND, "sample type '%s' not in profile (it has: %s)", want, list);
        }
        return t;
    }
    if (p->default_sample_type) {
        t = prof_type_index(p, prof_s(p, p->default_sample_type));
        if (t >= 0) return t;
    }
    return (int)p->n_types - 1;
}

int64_t prof_total(const profile *p, int t)
{
    int64_t sum = 0;
    if (t < 0 || (uint32_t)t >= p->n_types) return 0;
    for (size_t i = 0; i < p->n_samples; i++) sum = prof_sat_add(sum, p->values[i * p->n_types + (size_t)t]);
    return sum;
}

const char *prof_sample_label(const profile *p, size_t i, const char *key)
{
    const prof_sample *s = &p->samples[i];
    for (uint32_t k = 0; k < s->n_labels; k++) {
        const prof_label *l = &p->labels[s->first_label + k];
        if (l->str && !strcmp(prof_s(p, l->key), key)) return prof_s(p, l->str);
    }
    return NULL;
}

const char *prof_frame_name(const profile *p, uint32_t loc, uint32_t line_k, char *out, size_t out_size)
{
    const prof_location *l;
    if (loc >= p->n_locations) { snprintf(out, out_size, "?"); return out; }
    l = &p->locations[loc];
    if (line_k < l->n_lines) {
        const prof_line *ln = &p->lines[l->first_line + line_k];
        if (ln->function && ln->function < p->n_functions) {
            const prof_function *f = &p->functions[ln->function];
            const char *name = prof_s(p, f->name);
            if (!*name) name = prof_s(p, f->system_name);
            if (*name) { snprintf(out, out_size, "%s", name); return out; }
        }
    }
    if (l->mapping && l->mapping < p->n_mappings) {
        const prof_mapping *m = &p->mappings[l->mapping];
        const char *file = prof_s(p, m->filename), *base = strrchr(file, '/');
        base = base ? base + 1 : file;
        if (*base) {
            uint64_t off = l->address >= m->memory_start ? l->address - m->memory_start + m->file_offset : l->address;
            snprintf(out, out_size, "%s+0x%" PRIx64, base, off);
            return out;
        }
    }
    snprintf(out, out_size, "0x%" PRIx64, l->address);
    return out;
}

int prof_validate(const profile *p, herr *e)
{
    uint32_t ns = p->strings.count;
#define STR_OK(id, what, idx) \
    if ((id) >= ns) return herr_set(e, HE_BADREF, "%s %u refers to string %u (table has %u)", what, (unsigned)(idx), (unsigned)(id), ns)
    for (uint32_t i = 1; i < p->n_mappings; i++) {
        STR_OK(p->mappings[i].filename, "mapping", i);
        STR_OK(p->mappings[i].build_id, "mapping", i);
    }
    for (uint32_t i = 1; i < p->n_functions; i++) {
        STR_OK(p->functions[i].name, "function", i);
        STR_OK(p->functions[i].system_name, "function", i);
        STR_OK(p->functions[i].filename, "function", i);
    }
    for (uint32_t i = 1; i < p->n_locations; i++) {
        const prof_location *l = &p->locations[i];
        if (l->mapping >= p->n_mappings)
            return herr_set(e, HE_BADREF, "location %u refers to mapping %u (have %u)", i, l->mapping, p->n_mappings - 1);
        if ((uint64_t)l->first_line + l->n_lines > p->n_lines)
            return herr_set(e, HE_BADREF, "location %u has lines beyond the line table", i);
        for (uint32_t k = 0; k < l->n_lines; k++)
            if (p->lines[l->first_line + k].function >= p->n_functions)
                return herr_set(e, HE_BADREF, "location %u line %u refers to function %u (have %u)", i, k,
                                p->lines[l->first_line + k].function, p->n_functions - 1);
    }
    for (uint32_t i = 1; i < p->n_nodes; i++) {
        if (p->nodes[i].parent >= i)
            return herr_set(e, HE_BADREF, "stack node %u has parent %u (must be smaller)", i, p->nodes[i].parent);
        if (!p->nodes[i].location || p->nodes[i].location >= p->n_locations)
            return herr_set(e, HE_BADREF, "stack node %u refers to location %u (have %u)", i, p->nodes[i].location,
                            p->n_locations - 1);
    }
    for (uint32_t t = 0; t < p->n_types; t++) {
        STR_OK(p->sample_types[t].type, "sample type", t);
        STR_OK(p->sample_types[t].unit, "sample type", t);
    }
    for (size_t i = 0; i < p->n_samples; i++) {
        const prof_sample *s = &p->samples[i];
        if (s->stack >= p->n_nodes)
            return herr_set(e, HE_BADREF, "sample %zu refers to stack %u (have %u)", i, s->stack, p->n_nodes);
        if ((uint64_t)s->first_label + s->n_labels > p->n_labels)
            return herr_set(e, HE_BADREF, "sample %zu has labels beyond the label table", i);
        for (uint32_t k = 0; k < s->n_labels; k++) {
            const prof_label *l = &p->labels[s->first_label + k];
            STR_OK(l->key, "sample label of sample", i);
            STR_OK(l->str, "sample label of sample", i);
            STR_OK(l->num_unit, "sample label of sample", i);
        }
    }
    STR_OK(p->period_type.type, "period type", 0);
    STR_OK(p->period_type.unit, "period type", 0);
    STR_OK(p->default_sample_type, "default sample type", 0);
    STR_OK(p->drop_frames, "drop_frames", 0);
    STR_OK(p->keep_frames, "keep_frames", 0);
    for (uint32_t i = 0; i < p->n_comments; i++) STR_OK(p->comments[i], "comment", i);
#undef STR_OK
    return 0;
}

/* Sample identity for combining: stack + labels (order-sensitive, as written). */
static uint64_t sample_hash(const profile *p, size_t i)
{
    const prof_sample *s = &p->samples[i];
    uint64_t h = hash_u64(s->stack);
    if (s->n_labels) h = hash_bytes(p->labels + s->first_label, s->n_labels * sizeof(prof_label), h);
    return h;
}
static int sample_eq(const profile *p, size_t a, size_t b)
{
    const prof_sample *x = &p->samples[a], *y = &p->samples[b];
    return x->stack == y->stack && x->n_labels == y->n_labels &&
           (!x->n_labels || !memcmp(p->labels + x->first_label, p->labels + y->first_label,
                                    x->n_labels * sizeof(prof_label)));
}

/*
 * Index samples [samples_indexed, n_samples) so that equal ones combine.
 * The index stores sample positions; it only works while n_samples < 2^32.
 */
static int sample_index_catch_up(profile *p)
{
    for (; p->samples_indexed < p->n_samples; p->samples_indexed++) {
        size_t i = p->samples_indexed;
        uint64_t slot;
#define SEQ(v) sample_eq(p, v, i)
        if (INDEX_FIND(p->sample_index, sample_hash(p, i), SEQ, &slot) == HMAP_EMPTY &&
            hmap64_put(&p->sample_index, slot, (uint32_t)i))
            return -ENOMEM;
#undef SEQ
    }
    return 0;
}

/* Adds the just-appended last sample into an equal earlier one, if any. */
static int combine_last(profile *p)
{
    size_t last = p->n_samples - 1;
    uint64_t slot;
    int rc;
    if (last > p->samples_indexed && (rc = sample_index_catch_up(p))) return rc;
#define SEQ(v) sample_eq(p, v, last)
    uint32_t found = INDEX_FIND(p->sample_index, sample_hash(p, last), SEQ, &slot);
#undef SEQ
    if (found != HMAP_EMPTY && found != last) {
        for (uint32_t t = 0; t < p->n_types; t++) {
            int64_t *v = &p->values[(size_t)found * p->n_types + t];
            *v = prof_sat_add(*v, p->values[last * p->n_types + t]);
        }
        p->n_labels -= p->samples[last].n_labels;
        p->n_samples--;
        p->samples_indexed = p->n_samples;
        return 0;
    }
    if (found == HMAP_EMPTY && hmap64_put(&p->sample_index, slot, (uint32_t)last)) return -ENOMEM;
    p->samples_indexed = p->n_samples;
    return 0;
}

static uint32_t map_str(uint32_t *smap, uint32_t id) { return smap[id]; }

int prof_merge(profile *dst, const profile *src, int type, int combine, herr *e)
{
    uint32_t *smap = NULL, *mmap_ = NULL, *fmap = NULL, *lmap = NULL, *nmap = NULL;
    prof_label *lbuf = NULL;
    int64_t *vbuf = NULL;
    prof_line *lines = NULL;
    size_t lines_cap = 0;
    int rc = 0;

    if (type >= 0 && (uint32_t)type >= src->n_types)
        return herr_set(e, HE_USAGE, "sample type index %d out of range (%u types)", type, src->n_types);
    /* Sample types. */
    {
        uint32_t want = type >= 0 ? 1 : src->n_types;
        const prof_value_type *st = type >= 0 ? &src->sample_types[type] : src->sample_types;
        if (dst->n_types == 0 && dst->n_samples == 0) {
            for (uint32_t i = 0; i < want; i++) {
                if ((rc = prof_add_type(dst, prof_s(src, st[i].type), prof_s(src, st[i].unit))) < 0) return rc;
            }
            rc = 0;
            if (!dst->period && src->period) {
                dst->period = src->period;
                dst->period_type.type = (uint32_t)prof_cstr(dst, prof_s(src, src->period_type.type));
                dst->period_type.unit = (uint32_t)prof_cstr(dst, prof_s(src, src->period_type.unit));
            }
        } else {
            if (dst->n_types != want)
                return herr_set(e, HE_FORMAT, "cannot merge: %u sample types into %u", want, dst->n_types);
            for (uint32_t i = 0; i < want; i++) {
                if (strcmp(prof_s(src, st[i].type), prof_s(dst, dst->sample_types[i].type)) ||
                    strcmp(prof_s(src, st[i].unit), prof_s(dst, dst->sample_types[i].unit)))
                    return herr_set(e, HE_FORMAT, "cannot merge sample type %s/%s into %s/%s",
                                    prof_s(src, st[i].type), prof_s(src, st[i].unit),
                                    prof_s(dst, dst->sample_types[i].type), prof_s(dst, dst->sample_types[i].unit));
            }
        }
    }
    if (!dst->time_nanos || (src->time_nanos && src->time_nanos < dst->time_nanos)) dst->time_nanos = src->time_nanos;
    dst->duration_nanos += src->duration_nanos;

    smap = hmallocarray(src->strings.count, sizeof *smap);
    mmap_ = hmallocarray(src->n_mappings, sizeof *mmap_);
    fmap = hmallocarray(src->n_functions, sizeof *fmap);
    lmap = hmallocarray(src->n_locations, sizeof *lmap);
    nmap = hmallocarray(src->n_nodes, sizeof *nmap);
    lbuf = hmallocarray(src->limits.max_labels + 1, sizeof *lbuf);
    vbuf = hmallocarray(src->n_types + 1, sizeof *vbuf);
    if (!smap || !mmap_ || !fmap || !lmap || !nmap || !lbuf || !vbuf) { rc = -ENOMEM; goto out; }

    for (uint32_t i = 0; i < src->strings.count; i++) {
        int32_t id = strtab_intern(&dst->strings, src->strings.strs[i], src->strings.lens[i]);
        if (id < 0) { rc = id; goto out; }
        smap[i] = (uint32_t)id;
    }
    mmap_[0] = 0;
    for (uint32_t i = 1; i < src->n_mappings; i++) {
        prof_mapping m = src->mappings[i];
        m.filename = map_str(smap, m.filename);
        m.build_id = map_str(smap, m.build_id);
        int32_t id = prof_mapping_intern(dst, &m);
        if (id < 0) { rc = id; goto out; }
        mmap_[i] = (uint32_t)id;
    }
    fmap[0] = 0;
    for (uint32_t i = 1; i < src->n_functions; i++) {
        prof_function f = src->functions[i];
        f.name = map_str(smap, f.name);
        f.system_name = map_str(smap, f.system_name);
        f.filename = map_str(smap, f.filename);
        int32_t id = prof_function_intern(dst, &f);
        if (id < 0) { rc = id; goto out; }
        fmap[i] = (uint32_t)id;
    }
    lmap[0] = 0;
    for (uint32_t i = 1; i < src->n_locations; i++) {
        const prof_location *l = &src->locations[i];
        if ((rc = HGROW(lines, lines_cap, l->n_lines + 1))) goto out;
        for (uint32_t k = 0; k < l->n_lines; k++) {
            lines[k] = src->lines[l->first_line + k];
            lines[k].function = fmap[lines[k].function];
        }
        int32_t id = prof_location_intern(dst, l->address, mmap_[l->mapping], lines, l->n_lines);
        if (id < 0) { rc = id; goto out; }
        lmap[i] = (uint32_t)id;
    }
    nmap[0] = 0;
    for (uint32_t i = 1; i < src->n_nodes; i++) {
        int32_t id = prof_node_get(dst, nmap[src->nodes[i].parent], lmap[src->nodes[i].location]);
        if (id < 0) { rc = id; goto out; }
        nmap[i] = (uint32_t)id;
    }
    for (size_t i = 0; i < src->n_samples; i++) {
        const prof_sample *s = &src->samples[i];
        const int64_t *v = prof_values(src, i);
        uint32_t nl = MIN(s->n_labels, src->limits.max_labels);
        int64_t idx;
        for (uint32_t k = 0; k < nl; k++) {
            lbuf[k] = src->labels[s->first_label + k];
            lbuf[k].key = smap[lbuf[k].key];
            lbuf[k].str = smap[lbuf[k].str];
            lbuf[k].num_unit = smap[lbuf[k].num_unit];
        }
        if (type >= 0) {
            if (v[type] == 0) continue;
            vbuf[0] = v[type];
        } else {
            memcpy(vbuf, v, src->n_types * sizeof *v);
        }
        idx = prof_sample_add(dst, nmap[s->stack], vbuf, lbuf, nl);
        if (idx < 0) { rc = (int)idx; goto out; }
        if (combine && (rc = combine_last(dst))) goto out;
    }
out:
    free(smap); free(mmap_); free(fmap); free(lmap); free(nmap); free(lbuf); free(vbuf); free(lines);
    if (rc == -ENOMEM) herr_set(e, rc, "out of memory while merging profiles");
    return rc;
}

int prof_compact_samples(profile *p)
{
    size_t out = 0, n = p->n_samples;
    size_t label_out = 0;
    int rc;
    hmap64_release(&p->sample_index);
    p->samples_indexed = 0;
    p->n_samples = 0;
    /* Re-append every sample in order; combine_last folds equal ones. */
    for (size_t i = 0; i < n; i++) {
        prof_sample s = p->samples[i];
        int zero = 1;
        for (uint32_t t = 0; t < p->n_types; t++) if (p->values[i * p->n_types + t]) zero = 0;
        if (zero && p->n_types) continue;
        if (out != i) {
            memmove(p->values + out * p->n_types, p->values + i * p->n_types, p->n_types * sizeof *p->values);
        }
        if (s.n_labels && label_out != s.first_label)
            memmove(p->labels + label_out, p->labels + s.first_label, s.n_labels * sizeof *p->labels);
        s.first_label = (uint32_t)label_out;
        p->samples[out] = s;
        label_out += s.n_labels;
        p->n_labels = label_out;
        p->n_samples = ++out;
        if ((rc = combine_last(p))) return rc;
        out = p->n_samples;
        label_out = p->n_labels;
    }
    return 0;
}

/*
 * codec.c: the byte-level helpers of the store (varints, bounded reader,
 * CRC-32, directory fsync) and the profile blob carried by WAL records.
 *
 * The blob is a flat varint serialization of a profile in table order
 * (strings, mappings, functions, locations+lines, stack nodes, types,
 * samples with values and labels); docs/format.md lists the fields. The
 * decoder rebuilds the tables with the prof_*_add calls, checks that every
 * id comes back where it was written (so a damaged blob cannot alias), and
 * finishes with prof_validate().
 */
#include "core/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/mem.h"
#include "store/store_int.h"

int st_putv(buf *b, uint64_t v)
{
    if (LIKELY(b->data && b->cap - b->len > 11)) {
        /* Fast path: room for any varint and the NUL buf keeps after the data. */
        uint8_t *p = (uint8_t *)b->data + b->len;
        size_t n = 0;
        while (v >= 0x80) {
            p[n++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        p[n++] = (uint8_t)v;
        if (LIKELY(b->max == 0 || b->len + n <= b->max)) {
            b->len += n;
            b->data[b->len] = 0;
            return 0;
        }
    }
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return buf_append(b, tmp, n);
}

int st_puts(buf *b, const char *s, size_t n)
{
    int rc = st_putv(b, n);
    return rc ? rc : buf_append(b, s, n);
}

int st_getv_slow(st_rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return HE_TRUNCATED;
        uint8_t c = *r->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return HE_FORMAT;
}

int st_getz(st_rd *r, int64_t *v)
{
    uint64_t u;
    int rc = st_getv(r, &u);
    if (rc == 0)
        *v = st_unzz(u);
    return rc;
}

int st_getv_max(st_rd *r, uint64_t max, uint64_t *v)
{
    int rc = st_getv(r, v);
    if (rc == 0 && *v > max)
        return HE_FORMAT;
    return rc;
}

int st_gets(st_rd *r, size_t max, const char **s, size_t *n)
{
    uint64_t len;
    int rc = st_getv(r, &len);
    if (rc)
        return rc;
    if (len > max)
        return HE_TOOBIG;
    if (len > (uint64_t)(r->end - r->p))
        return HE_TRUNCATED;
    *s = (const char *)r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

uint32_t st_crc32(const void *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    const uint8_t *q = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, q, k);
        q += k;
        n -= k;
    }
    return (uint32_t)c;
}

int st_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

int st_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -errno;
            tmp[i] = c;
        }
    }
    return 0;
}

int st_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    char p[PATH_MAX];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            st_rmtree(p);
        else
            unlink(p);
    }
    closedir(d);
    return rmdir(path) ? -errno : 0;
}

/* ---- profile blob ---- */

/* Writes varint v at q; returns the byte after it. The caller reserved the room. */
static inline uint8_t *wv(uint8_t *q, uint64_t v)
{
    while (v >= 0x80) {
        *q++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *q++ = (uint8_t)v;
    return q;
}

/*
 * The tables (strings, functions, locations, nodes, samples) are written through a pointer into room
 * reserved for the section's worst case, not one st_putv call per varint.
 * When the worst case does not fit under the buffer's limit they take the
 * st_putv path, which stops at the real limit. Same bytes either way.
 */
static uint8_t *sect_begin(buf *b, size_t worst)
{
    return buf_reserve(b, worst) ? NULL : (uint8_t *)b->data + b->len;
}

static void sect_end(buf *b, uint8_t *q)
{
    b->len = (size_t)(q - (uint8_t *)b->data);
    b->data[b->len] = 0;
}

int st_blob_encode(const profile *p, buf *b)
{
    uint8_t *q;
    int rc = 0;
#define P(x) do { if ((rc = (x))) return rc; } while (0)
    P(st_putv(b, p->strings.count));
    size_t worst = 0;
    for (uint32_t i = 0; i < p->strings.count; i++)
        worst += 5 + (size_t)p->strings.lens[i];
    if (p->strings.count && (q = sect_begin(b, worst)) != NULL) {
        for (uint32_t i = 0; i < p->strings.count; i++) {
            uint32_t n = p->strings.lens[i];
            q = wv(q, n);
            memcpy(q, p->strings.strs[i], n);
            q += n;
        }
        sect_end(b, q);
    } else {
        for (uint32_t i = 0; i < p->strings.count; i++)
            P(st_puts(b, strtab_get(&p->strings, i), strtab_len(&p->strings, i)));
    }
    P(st_putv(b, p->n_mappings ? p->n_mappings - 1 : 0));
    for (uint32_t i = 1; i < p->n_mappings; i++) {
        const prof_mapping *m = &p->mappings[i];
        P(st_putv(b, m->memory_start));
        P(st_putv(b, m->memory_limit));
        P(st_putv(b, m->file_offset));
        P(st_putv(b, m->filename));
        P(st_putv(b, m->build_id));
        P(st_putv(b, (uint64_t)(m->has_functions | m->has_filenames << 1 | m->has_line_numbers << 2 | m->has_inline_frames << 3)));
    }
    P(st_putv(b, p->n_functions ? p->n_functions - 1 : 0));
    if (p->n_functions > 1 && (q = sect_begin(b, (size_t)p->n_functions * 25)) != NULL) {
        for (uint32_t i = 1; i < p->n_functions; i++) {
            const prof_function *f = &p->functions[i];
            q = wv(q, f->name);
            q = wv(q, f->system_name);
            q = wv(q, f->filename);
            q = wv(q, st_zz(f->start_line));
        }
        sect_end(b, q);
    } else for (uint32_t i = 1; i < p->n_functions; i++) {
        const prof_function *f = &p->functions[i];
        P(st_putv(b, f->name));
        P(st_putv(b, f->system_name));
        P(st_putv(b, f->filename));
        P(st_putz(b, f->start_line));
    }
    P(st_putv(b, p->n_locations ? p->n_locations - 1 : 0));
    worst = 0;
    for (uint32_t i = 1; i < p->n_locations; i++)
        worst += 30 + (size_t)p->locations[i].n_lines * 25;
    if (p->n_locations > 1 && (q = sect_begin(b, worst)) != NULL) {
        for (uint32_t i = 1; i < p->n_locations; i++) {
            const prof_location *l = &p->locations[i];
            q = wv(q, l->address);
            q = wv(q, l->mapping);
            q = wv(q, l->is_folded);
            q = wv(q, l->n_lines);
            for (uint32_t k = 0; k < l->n_lines; k++) {
                const prof_line *ln = &p->lines[l->first_line + k];
                q = wv(q, ln->function);
                q = wv(q, st_zz(ln->line));
                q = wv(q, st_zz(ln->column));
            }
        }
        sect_end(b, q);
    } else for (uint32_t i = 1; i < p->n_locations; i++) {
        const prof_location *l = &p->locations[i];
        P(st_putv(b, l->address));
        P(st_putv(b, l->mapping));
        P(st_putv(b, l->is_folded));
        P(st_putv(b, l->n_lines));
        for (uint32_t k = 0; k < l->n_lines; k++) {
            const prof_line *ln = &p->lines[l->first_line + k];
            P(st_putv(b, ln->function));
            P(st_putz(b, ln->line));
            P(st_putz(b, ln->column));
        }
    }
    P(st_putv(b, p->n_nodes ? p->n_nodes - 1 : 0));
    if (p->n_nodes > 1 && (q = sect_begin(b, (size_t)p->n_nodes * 10)) != NULL) {
        for (uint32_t i = 1; i < p->n_nodes; i++) {
            q = wv(q, p->nodes[i].parent);
            q = wv(q, p->nodes[i].location);
        }
        sect_end(b, q);
    } else {
        for (uint32_t i = 1; i < p->n_nodes; i++) {
            P(st_putv(b, p->nodes[i].parent));
            P(st_putv(b, p->nodes[i].location));
        }
    }
    P(st_putv(b, p->n_types));
    for (uint32_t t = 0; t < p->n_types; t++) {
        P(st_putv(b, p->sample_types[t].type));
        P(st_putv(b, p->sample_types[t].unit));
    }
    P(st_putv(b, p->period_type.type));
    P(st_putv(b, p->period_type.unit));
    P(st_putz(b, p->period));
    P(st_putv(b, p->n_samples));
    /* worst case: stack 5, values 10 each, label count 5, labels 35 each */
    size_t n_labels = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        n_labels += p->samples[i].n_labels;
    if (p->n_samples && p->n_types < 1024 &&
        (q = sect_begin(b, p->n_samples * (10 + (size_t)p->n_types * 10) + n_labels * 35)) != NULL) {
        for (size_t i = 0; i < p->n_samples; i++) {
            const prof_sample *s = &p->samples[i];
            q = wv(q, s->stack);
            const int64_t *v = prof_values(p, i);
            for (uint32_t t = 0; t < p->n_types; t++)
                q = wv(q, st_zz(v[t]));
            q = wv(q, s->n_labels);
            for (uint32_t k = 0; k < s->n_labels; k++) {
                const prof_label *l = &p->labels[s->first_label + k];
                q = wv(q, l->key);
                q = wv(q, l->str);
                q = wv(q, st_zz(l->num));
                q = wv(q, l->num_unit);
            }
        }
        sect_end(b, q);
        return 0;
    }
    for (size_t i = 0; i < p->n_samples; i++) {
        const prof_sample *s = &p->samples[i];
        P(st_putv(b, s->stack));
        const int64_t *v = prof_values(p, i);
        for (uint32_t t = 0; t < p->n_types; t++)
            P(st_putz(b, v[t]));
        P(st_putv(b, s->n_labels));
        for (uint32_t k = 0; k < s->n_labels; k++) {
            const prof_label *l = &p->labels[s->first_label + k];
            P(st_putv(b, l->key));
            P(st_putv(b, l->str));
            P(st_putz(b, l->num));
            P(st_putv(b, l->num_unit));
        }
    }
#undef P
    return 0;
}

#define BLOB_MAX_COUNT (64u * 1024 * 1024)

int st_blob_decode(profile *p, st_rd *r, herr *e)
{
    uint64_t n, a, b2, c, d, f;
    int rc;
#define G(x) do { if ((rc = (x))) return herr_set(e, rc == HE_TRUNCATED ? HE_TRUNCATED : HE_FORMAT, "WAL profile blob: truncated or malformed field"); } while (0)
    G(st_getv_max(r, BLOB_MAX_COUNT, &n));
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        G(st_gets(r, 16u << 20, &s, &len));
        if (i == 0)
            continue; /* "" is already string 0 */
        int32_t id = prof_str(p, s, len);
        if (id < 0)
            return id;
        if ((uint64_t)id != i)
            return herr_set(e, HE_FORMAT, "WAL profile blob: duplicate string %" PRIu64, i);
    }
    G(st_getv_max(r, BLOB_MAX_COUNT, &n));
    for (uint64_t i = 0; i < n; i++) {
        prof_mapping m;
        memset(&m, 0, sizeof(m));
        G(st_getv(r, &m.memory_start));
        G(st_getv(r, &m.memory_limit));
        G(st_getv(r, &m.file_offset));
        G(st_getv_max(r, UINT32_MAX, &a));
        G(st_getv_max(r, UINT32_MAX, &b2));
        G(st_getv_max(r, 15, &f));
        m.filename = (uint32_t)a;
        m.build_id = (uint32_t)b2;
        m.has_functions = f & 1;
        m.has_filenames = (f >> 1) & 1;
        m.has_line_numbers = (f >> 2) & 1;
        m.has_inline_frames = (f >> 3) & 1;
        int32_t id = prof_mapping_add(p, &m);
        if (id < 0)
            return id;
    }
    G(st_getv_max(r, BLOB_MAX_COUNT, &n));
    for (uint64_t i = 0; i < n; i++) {
        prof_function fn;
        memset(&fn, 0, sizeof(fn));
        G(st_getv_max(r, UINT32_MAX, &a));
        G(st_getv_max(r, UINT32_MAX, &b2));
        G(st_getv_max(r, UINT32_MAX, &c));
        G(st_getz(r, &fn.start_line));
        fn.name = (uint32_t)a;
        fn.system_name = (uint32_t)b2;
        fn.filename = (uint32_t)c;
        int32_t id = prof_function_add(p, &fn);
        if (id < 0)
            return id;
    }
    G(st_getv_max(r, BLOB_MAX_COUNT, &n));
    prof_line lines[256];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t addr, mapping, folded, nl;
        G(st_getv(r, &addr));
        G(st_getv_max(r, UINT32_MAX, &mapping));
        G(st_getv_max(r, 1, &folded));
        G(st_getv_max(r, ARRAY_SIZE(lines), &nl));
        for (uint64_t k = 0; k < nl; k++) {
            G(st_getv_max(r, UINT32_MAX, &d));
            lines[k].function = (uint32_t)d;
            G(st_getz(r, &lines[k].line));
            G(st_getz(r, &lines[k].column));
        }
        int32_t id = prof_location_add(p, addr, (uint32_t)mapping, lines, (uint32_t)nl);
        if (id < 0)
            return id;
        p->locations[id].is_folded = (uint8_t)folded;
    }
    G(st_getv_max(r, BLOB_MAX_COUNT, &n));
    for (uint64_t i = 0; i < n; i++) {
        G(st_getv_max(r, UINT32_MAX, &a));
        G(st_getv_max(r, UINT32_MAX, &b2));
        if (a >= p->n_nodes || b2 == 0 || b2 >= p->n_locations)
            return herr_set(e, HE_BADREF, "WAL profile blob: stack node %" PRIu64 " refers to parent %" PRIu64 " / location %" PRIu64 " out of range", i + 1, a, b2);
        int32_t id = prof_node_get(p, (uint32_t)a, (uint32_t)b2);
        if (id < 0)
            return id;
        if ((uint64_t)id != i + 1)
            return herr_set(e, HE_FORMAT, "WAL profile blob: duplicate stack node %" PRIu64, i + 1);
    }
    G(st_getv_max(r, 64, &n));
    prof_value_type types[64];
    for (uint64_t t = 0; t < n; t++) {
        G(st_getv_max(r, UINT32_MAX, &a));
        G(st_getv_max(r, UINT32_MAX, &b2));
        types[t].type = (uint32_t)a;
        types[t].unit = (uint32_t)b2;
    }
    if (n && (rc = prof_set_types(p, types, (uint32_t)n)))
        return rc;
    G(st_getv_max(r, UINT32_MAX, &a));
    G(st_getv_max(r, UINT32_MAX, &b2));
    p->period_type.type = (uint32_t)a;
    p->period_type.unit = (uint32_t)b2;
    G(st_getz(r, &p->period));
    uint64_t ns;
    G(st_getv_max(r, BLOB_MAX_COUNT, &ns));
    int64_t vals[64];
    prof_label labs[64];
    for (uint64_t i = 0; i < ns; i++) {
        uint64_t stack, nl;
        G(st_getv_max(r, UINT32_MAX, &stack));
        if (stack >= p->n_nodes)
            return herr_set(e, HE_BADREF, "WAL profile blob: sample %" PRIu64 " refers to stack %" PRIu64 " of %u", i, stack, p->n_nodes);
        for (uint64_t t = 0; t < p->n_types; t++)
            G(st_getz(r, &vals[t]));
        G(st_getv_max(r, ARRAY_SIZE(labs), &nl));
        for (uint64_t k = 0; k < nl; k++) {
            G(st_getv_max(r, UINT32_MAX, &a));
            G(st_getv_max(r, UINT32_MAX, &b2));
            labs[k].key = (uint32_t)a;
            labs[k].str = (uint32_t)b2;
            G(st_getz(r, &labs[k].num));
            G(st_getv_max(r, UINT32_MAX, &c));
            labs[k].num_unit = (uint32_t)c;
        }
        int64_t id = prof_sample_add(p, (uint32_t)stack, vals, labs, (uint32_t)nl);
        if (id < 0)
            return (int)id;
    }
#undef G
    return prof_validate(p, e);
}

/*
 * speedscope.c: speedscope JSON <-> profile.
 *
 * Reading (json-c): shared.frames become functions + locations (one line
 * each, with file and line); "sampled" profiles add weight per stack (frame
 * indices root first); "evented" profiles are replayed: between two events
 * the open-frame stack is charged the time that passed, and every close must
 * match the innermost open frame. Values become integers: time units are
 * scaled to nanoseconds, other fractional weights are rounded. Samples are
 * aggregated per stack (folded_add_sample).
 *
 * Writing: per distinct stack node the total of one sample type; frames are
 * interned by (name, file, line) so equal frames share an index, as
 * speedscope's own exporters do.
 */
#include <json-c/json.h>
#include <math.h>

#include "core/common.h"
#include "core/json.h"
#include "core/mem.h"
#include "format/folded.h"
#include "format/speedscope.h"

#define FRAME_NAME_MAX (64 * 1024 + 1)

/* Unit name -> (scale to our integer unit, our type/unit). */
static int unit_info(const char *u, double *scale, const char **type, const char **unit)
{
    *scale = 1;
    if (!u || !strcmp(u, "none") || !*u) { *type = "samples"; *unit = "count"; return 0; }
    if (!strcmp(u, "bytes")) { *type = "space"; *unit = "bytes"; return 0; }
    *type = "cpu";
    *unit = "nanoseconds";
    if (!strcmp(u, "nanoseconds")) return 0;
    if (!strcmp(u, "microseconds")) { *scale = 1e3; return 0; }
    if (!strcmp(u, "milliseconds")) { *scale = 1e6; return 0; }
    if (!strcmp(u, "seconds")) { *scale = 1e9; return 0; }
    return -1;
}

static int to_i64(double v, double scale, int64_t *out)
{
    double x = v * scale;
    if (!isfinite(x) || x < -9.2e18 || x > 9.2e18) return HE_TOOBIG;
    *out = (int64_t)llround(x);
    return 0;
}

static int get_num(json_object *o, double *v)
{
    enum json_type t = json_object_get_type(o);
    if (t != json_type_int && t != json_type_double) return -1;
    *v = json_object_get_double(o);
    return 0;
}

typedef struct ss_state {
    profile *p;
    herr *e;
    hmap64 index;
    int32_t *locs;      /* frame index -> location */
    size_t n_frames;
    uint32_t *stack;
    size_t cap_stack;
    int64_t total;
} ss_state;

static int add_stack(ss_state *st, const uint32_t *frames, size_t depth, int64_t v, size_t prof_i)
{
    int32_t node;
    int rc;
    if (depth > st->cap_stack && (rc = HGROW(st->stack, st->cap_stack, depth))) return rc;
    for (size_t i = 0; i < depth; i++) st->stack[i] = (uint32_t)st->locs[frames[i]];
    if ((node = prof_stack_root_first(st->p, st->stack, depth)) < 0) return node;
    if (v < 0) return herr_set(st->e, HE_FORMAT, "profiles[%zu]: negative weight %" PRId64, prof_i, v);
    if ((rc = folded_add_sample(st->p, &st->index, (uint32_t)node, v, &st->total)))
        return herr_set(st->e, rc, "profiles[%zu]: too many samples, or the weights add up past 2^63-1", prof_i);
    return 0;
}

static int read_frames(ss_state *st, json_object *root)
{
    json_object *shared, *frames;
    if (!json_object_object_get_ex(root, "shared", &shared) || !json_object_object_get_ex(shared, "frames", &frames) ||
        !json_object_is_type(frames, json_type_array))
        return herr_set(st->e, HE_FORMAT, "speedscope file has no shared.frames array");
    st->n_frames = json_object_array_length(frames);
    st->locs = calloc(st->n_frames ? st->n_frames : 1, sizeof *st->locs);
    if (!st->locs) return -ENOMEM;
    for (size_t i = 0; i < st->n_frames; i++) {
        json_object *fr = json_object_array_get_idx(frames, i), *name, *file, *line;
        prof_function f = {0};
        prof_line ln = {0};
        const char *s;
        int32_t id;
        if (!json_object_is_type(fr, json_type_object) || !json_object_object_get_ex(fr, "name", &name) ||
            !json_object_is_type(name, json_type_string))
            return herr_set(st->e, HE_FORMAT, "shared.frames[%zu] has no string \"name\"", i);
        s = json_object_get_string(name);
        if ((size_t)json_object_get_string_len(name) > st->p->limits.max_string_len)
            return herr_set(st->e, HE_TOOBIG, "shared.frames[%zu].name is longer than %u bytes", i, st->p->limits.max_string_len);
        if ((id = prof_str(st->p, s, (size_t)json_object_get_string_len(name))) < 0) return id;
        f.name = f.system_name = (uint32_t)id;
        if (json_object_object_get_ex(fr, "file", &file) && json_object_is_type(file, json_type_string)) {
            if ((id = prof_str(st->p, json_object_get_string(file), (size_t)json_object_get_string_len(file))) < 0) return id;
            f.filename = (uint32_t)id;
        }
        if (json_object_object_get_ex(fr, "line", &line) && json_object_is_type(line, json_type_int))
            ln.line = json_object_get_int64(line);
        if ((id = prof_function_intern(st->p, &f)) < 0) return id;
        ln.function = (uint32_t)id;
        if ((id = prof_location_intern(st->p, 0, 0, &ln, 1)) < 0) return id;
        st->locs[i] = id;
    }
    return 0;
}

static int frame_index(ss_state *st, json_object *o, size_t prof_i, const char *what, uint32_t *out)
{
    int64_t v;
    if (!json_object_is_type(o, json_type_int))
        return herr_set(st->e, HE_FORMAT, "profiles[%zu]: %s is not an integer frame index", prof_i, what);
    v = json_object_get_int64(o);
    if (v < 0 || (uint64_t)v >= st->n_frames)
        return herr_set(st->e, HE_BADREF, "profiles[%zu]: %s refers to frame %" PRId64 " (there are %zu frames)", prof_i, what, v, st->n_frames);
    *out = (uint32_t)v;
    return 0;
}

static int read_sampled(ss_state *st, json_object *prof, size_t pi, double scale)
{
    json_object *samples, *weights;
    uint32_t *frames = NULL;
    size_t cap = 0, n_samples;
    int rc = 0;
    if (!json_object_object_get_ex(prof, "samples", &samples) || !json_object_is_type(samples, json_type_array))
        return herr_set(st->e, HE_FORMAT, "profiles[%zu] (sampled) has no \"samples\" array", pi);
    n_samples = json_object_array_length(samples);
    if (json_object_object_get_ex(prof, "weights", &weights)) {
        if (!json_object_is_type(weights, json_type_array) || json_object_array_length(weights) != n_samples)
            return herr_set(st->e, HE_FORMAT, "profiles[%zu]: \"weights\" must be an array as long as \"samples\" (%zu)", pi, n_samples);
    } else {
        weights = NULL;
    }
    for (size_t i = 0; i < n_samples; i++) {
        json_object *s = json_object_array_get_idx(samples, i);
        size_t depth;
        int64_t v = 1;
        if (!json_object_is_type(s, json_type_array)) {
            rc = herr_set(st->e, HE_FORMAT, "profiles[%zu].samples[%zu] is not an array of frame indices", pi, i);
            break;
        }
        depth = json_object_array_length(s);
        if (depth > cap && (rc = HGROW(frames, cap, depth))) break;
        for (size_t k = 0; k < depth && !rc; k++) rc = frame_index(st, json_object_array_get_idx(s, k), pi, "a sample", &frames[k]);
        if (rc) break;
        if (weights) {
            double w;
            if (get_num(json_object_array_get_idx(weights, i), &w)) {
                rc = herr_set(st->e, HE_FORMAT, "profiles[%zu].weights[%zu] is not a number", pi, i);
                break;
            }
            if ((rc = to_i64(w, scale, &v))) {
                rc = herr_set(st->e, rc, "profiles[%zu].weights[%zu] is out of range", pi, i);
                break;
            }
        }
        if ((rc = add_stack(st, frames, depth, v, pi))) break;
    }
    free(frames);
    return rc;
}

static int read_evented(ss_state *st, json_object *prof, size_t pi, double scale)
{
    json_object *events;
    uint32_t *open = NULL;
    size_t cap = 0, depth = 0, n;
    double last_at = 0;
    int rc = 0;
    if (!json_object_object_get_ex(prof, "events", &events) || !json_object_is_type(events, json_type_array))
        return herr_set(st->e, HE_FORMAT, "profiles[%zu] (evented) has no \"events\" array", pi);
    n = json_object_array_length(events);
    for (size_t i = 0; i < n; i++) {
        json_object *ev = json_object_array_get_idx(events, i), *type, *at, *frame;
        const char *t;
        double when;
        uint32_t f;
        if (!json_object_object_get_ex(ev, "type", &type) || !json_object_object_get_ex(ev, "at", &at) ||
            !json_object_object_get_ex(ev, "frame", &frame) || get_num(at, &when)) {
            rc = herr_set(st->e, HE_FORMAT, "profiles[%zu].events[%zu] needs \"type\", numeric \"at\" and \"frame\"", pi, i);
            break;
        }
        if ((rc = frame_index(st, frame, pi, "an event", &f))) break;
        if (when < last_at) {
            rc = herr_set(st->e, HE_FORMAT, "profiles[%zu].events[%zu] goes back in time (%g < %g)", pi, i, when, last_at);
            break;
        }
        if (depth > 0 && when > last_at) {
            int64_t v;
            if ((rc = to_i64(when - last_at, scale, &v))) {
                rc = herr_set(st->e, rc, "profiles[%zu].events[%zu]: duration out of range", pi, i);
                break;
            }
            if (v && (rc = add_stack(st, open, depth, v, pi))) break;
        }
        last_at = when;
        t = json_object_get_string(type);
        if (t && !strcmp(t, "O")) {
            if (depth >= st->p->limits.max_stack_depth * 4u) {
                rc = herr_set(st->e, HE_TOOBIG, "profiles[%zu]: more than %u nested open frames", pi, st->p->limits.max_stack_depth * 4u);
                break;
            }
            if (depth == cap && (rc = HGROW(open, cap, depth + 1))) break;
            open[depth++] = f;
        } else if (t && !strcmp(t, "C")) {
            if (depth == 0 || open[depth - 1] != f) {
                rc = herr_set(st->e, HE_BADREF, "profiles[%zu].events[%zu] closes frame %u which is not the innermost open frame", pi, i, f);
                break;
            }
            depth--;
        } else {
            rc = herr_set(st->e, HE_FORMAT, "profiles[%zu].events[%zu] has type \"%s\" (expected \"O\" or \"C\")", pi, i, t ? t : "");
            break;
        }
    }
    if (!rc && depth)
        rc = herr_set(st->e, HE_BADREF, "profiles[%zu]: %zu frames are still open at the end", pi, depth);
    free(open);
    return rc;
}

int speedscope_parse(profile *p, const char *data, size_t n, herr *e)
{
    json_tokener *tok;
    json_object *root = NULL, *profiles;
    ss_state st;
    const char *first_unit = NULL;
    int rc = 0;

    memset(&st, 0, sizeof st);
    st.p = p;
    st.e = e;
    hmap64_init(&st.index);
    if (n > INT_MAX) return herr_set(e, HE_TOOBIG, "speedscope JSON is larger than 2 GiB");
    if (!utf8_valid(data, n))
        return herr_set(e, HE_UTF8, "speedscope JSON is not valid UTF-8 (byte %zu)", utf8_first_invalid(data, n));
    tok = json_tokener_new_ex(64);
    if (!tok) return herr_set(e, -ENOMEM, "out of memory");
    root = json_tokener_parse_ex(tok, data, (int)n);
    if (!root || json_tokener_get_error(tok) != json_tokener_success) {
        enum json_tokener_error je = json_tokener_get_error(tok);
        rc = herr_set(e, HE_FORMAT, "not valid JSON: %s at byte %zu",
                      je == json_tokener_continue ? "unexpected end of input" : json_tokener_error_desc(je),
                      json_tokener_get_parse_end(tok));
        goto out;
    }
    for (size_t i = json_tokener_get_parse_end(tok); i < n; i++) {
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\n' && data[i] != '\r') {
            rc = herr_set(e, HE_FORMAT, "not valid JSON: unexpected data after the end of the document at byte %zu", i);
            goto out;
        }
    }
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "profiles", &profiles) ||
        !json_object_is_type(profiles, json_type_array)) {
        rc = herr_set(e, HE_FORMAT, "JSON is not a speedscope file (no \"profiles\" array)");
        goto out;
    }
    if ((rc = read_frames(&st, root))) goto out;
    for (size_t i = 0; i < json_object_array_length(profiles); i++) {
        json_object *prof = json_object_array_get_idx(profiles, i), *type, *unit;
        const char *t, *u = "none", *tname, *uname;
        double scale;
        if (!json_object_object_get_ex(prof, "type", &type) || !(t = json_object_get_string(type))) {
            rc = herr_set(e, HE_FORMAT, "profiles[%zu] has no \"type\"", i);
            goto out;
        }
        if (json_object_object_get_ex(prof, "unit", &unit) && json_object_get_string(unit)) u = json_object_get_string(unit);
        if (unit_info(u, &scale, &tname, &uname)) {
            rc = herr_set(e, HE_FORMAT, "profiles[%zu] has unknown unit \"%s\"", i, u);
            goto out;
        }
        if (!first_unit) {
            first_unit = u;
            if ((rc = prof_add_type(p, tname, uname)) < 0) goto out;
            rc = 0;
        } else {
            const char *t0, *u0;
            double s0;
            unit_info(first_unit, &s0, &t0, &u0);
            if (strcmp(t0, tname)) {
                rc = herr_set(e, HE_UNSUPPORTED, "profiles[%zu] has unit \"%s\" but profiles[0] has \"%s\"; convert them one at a time", i, u, first_unit);
                goto out;
            }
        }
        if (!strcmp(t, "sampled")) rc = read_sampled(&st, prof, i, scale);
        else if (!strcmp(t, "evented")) rc = read_evented(&st, prof, i, scale);
        else rc = herr_set(e, HE_FORMAT, "profiles[%zu] has type \"%s\" (expected \"sampled\" or \"evented\")", i, t);
        if (rc) goto out;
    }
    if (!first_unit) rc = herr_set(e, HE_FORMAT, "speedscope file has no profiles");
out:
    if (rc == -ENOMEM) herr_set(e, rc, "out of memory reading speedscope JSON");
    else if (rc) herr_set(e, rc, "%s", hearth_strerror(rc));
    if (root) json_object_put(root);
    json_tokener_free(tok);
    free(st.locs);
    free(st.stack);
    hmap64_release(&st.index);
    return rc;
}

static const char *ss_unit(const char *u)
{
    static const char *known[] = {"nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"};
    for (size_t i = 0; i < ARRAY_SIZE(known); i++) if (!strcmp(u, known[i])) return known[i];
    return "none";
}

int speedscope_write(const profile *p, int type, const char *name, buf *out, herr *e)
{
    int64_t *node_sum = NULL, total = 0;
    hmap64 pair_index;  /* (location << 32 | line) -> frame index */
    strtab keys;
    uint32_t *locs = NULL;
    size_t cap_locs = 0, start_len = out->len;
    char *nm = NULL;
    buf key = BUF_INIT, frames = BUF_INIT;
    jw w;
    int rc = 0;

    if (type < 0 || (uint32_t)type >= p->n_types)
        return herr_set(e, HE_USAGE, "sample type %d out of range (profile has %u)", type, p->n_types);
    hmap64_init(&pair_index);
    strtab_init(&keys);
    buf_init(&key, 0);
    buf_init(&frames, 0);
    node_sum = calloc(p->n_nodes ? p->n_nodes : 1, sizeof *node_sum);
    nm = malloc(FRAME_NAME_MAX);
    if (!node_sum || !nm) { rc = -ENOMEM; goto out; }
    for (size_t i = 0; i < p->n_samples; i++) {
        uint32_t s = p->samples[i].stack;
        int64_t v = p->values[i * p->n_types + (size_t)type];
        if (s < p->n_nodes && (__builtin_add_overflow(node_sum[s], v, &node_sum[s]) || __builtin_add_overflow(total, v, &total))) {
            rc = HE_TOOBIG;
            goto out;
        }
    }
    jw_init(&w, out);
    jw_obj(&w);
    jw_key(&w, "$schema"); jw_cstring(&w, "https://www.speedscope.app/file-format-schema.json");
    jw_key(&w, "exporter"); jw_cstring(&w, "hearth");
    jw_key(&w, "name"); jw_cstring(&w, name ? name : prof_s(p, p->sample_types[type].type));
    jw_key(&w, "activeProfileIndex"); jw_int(&w, 0);
    jw_key(&w, "profiles"); jw_arr(&w);
    jw_obj(&w);
    jw_key(&w, "type"); jw_cstring(&w, "sampled");
    jw_key(&w, "name"); jw_cstring(&w, name ? name : prof_s(p, p->sample_types[type].type));
    jw_key(&w, "unit"); jw_cstring(&w, ss_unit(prof_s(p, p->sample_types[type].unit)));
    jw_key(&w, "startValue"); jw_int(&w, 0);
    jw_key(&w, "endValue"); jw_int(&w, total);
    jw_key(&w, "samples"); jw_arr(&w);
    for (uint32_t nd = 1; nd < p->n_nodes && !w.err; nd++) {
        size_t depth;
        if (!node_sum[nd]) continue;
        depth = prof_stack_locations(p, nd, locs, cap_locs);
        if (depth > cap_locs) {
            if ((rc = HGROW(locs, cap_locs, depth))) goto out;
            depth = prof_stack_locations(p, nd, locs, cap_locs);
        }
        jw_arr(&w);
        for (size_t d = depth; d-- > 0;) {
            uint32_t loc = locs[d];
            uint32_t nl = loc < p->n_locations ? p->locations[loc].n_lines : 0;
            for (uint32_t k = nl ? nl : 1; k-- > 0;) {
                uint64_t pk = (uint64_t)loc << 32 | k;
                uint32_t fi = hmap64_get(&pair_index, pk);
                if (fi == HMAP_EMPTY) {
                    const char *file = "";
                    int64_t line = 0;
                    int32_t id;
                    uint32_t before;
                    if (k < nl) {
                        const prof_line *ln = &p->lines[p->locations[loc].first_line + k];
                        line = ln->line;
                        if (ln->function && ln->function < p->n_functions) file = prof_s(p, p->functions[ln->function].filename);
                    }
                    prof_frame_name(p, loc, k, nm, FRAME_NAME_MAX);
                    buf_reset(&key);
                    if ((rc = buf_printf(&key, "%s%c%s%c%" PRId64, nm, 0, file, 0, line))) goto out;
                    before = keys.count;
                    if ((id = strtab_intern(&keys, key.data, key.len)) < 0) { rc = id; goto out; }
                    fi = (uint32_t)id;
                    if (keys.count > before) {
                        /* a new frame: append its JSON object */
                        jw fw;
                        jw_init(&fw, &frames);
                        if (frames.len) buf_putc(&frames, ',');
                        jw_obj(&fw);
                        jw_key(&fw, "name"); jw_cstring(&fw, nm);
                        if (*file) { jw_key(&fw, "file"); jw_cstring(&fw, file); }
                        if (line) { jw_key(&fw, "line"); jw_int(&fw, line); }
                        jw_obj_end(&fw);
                        if (fw.err) { rc = fw.err; goto out; }
                    }
                    if ((rc = hmap64_put(&pair_index, pk, fi))) goto out;
                }
                jw_uint(&w, fi);
            }
        }
        jw_arr_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "weights"); jw_arr(&w);
    for (uint32_t nd = 1; nd < p->n_nodes; nd++) if (node_sum[nd]) jw_int(&w, node_sum[nd]);
    jw_arr_end(&w);
    jw_obj_end(&w);
    jw_arr_end(&w);
    jw_key(&w, "shared"); jw_obj(&w);
    jw_key(&w, "frames");
    jw_raw(&w, "[", 1);
    if (!w.err && frames.len && (rc = buf_append(out, frames.data, frames.len))) goto out;
    if (!w.err && (rc = buf_putc(out, ']'))) goto out;
    jw_obj_end(&w);
    jw_obj_end(&w);
    if (!w.err) w.err = buf_putc(out, '\n');
    rc = w.err;
out:
    if (rc) {
        out->len = start_len;
        if (out->data) out->data[start_len] = 0;
        herr_set(e, rc, rc == HE_TOOBIG ? "speedscope output is larger than its cap, or a total passes 2^63-1" : "out of memory writing speedscope JSON");
    }
    free(node_sum); free(locs); free(nm);
    buf_release(&key);
    buf_release(&frames);
    hmap64_release(&pair_index);
    strtab_release(&keys);
    return rc;
}

/*
 * flamebearer.c: flame tree -> Pyroscope render JSON (see flamebearer.h).
 *
 * The tree is encoded by flame_levels() (profile/flame.c), which owns the
 * level layout; this file only names things the way Pyroscope's UI and
 * Grafana expect and writes JSON (names escaped; invalid UTF-8 in names is
 * replaced by json_str, so the output is always valid JSON).
 */
#include "core/common.h"
#include "core/json.h"
#include "format/flamebearer.h"

const char *flamebearer_units(const char *sample_type, const char *sample_unit)
{
    static const char *objects[] = {"inuse_objects", "alloc_objects", "goroutine", "goroutines", "objects"};
    if (sample_unit && !strcmp(sample_unit, "bytes")) return "bytes";
    for (size_t i = 0; sample_type && i < ARRAY_SIZE(objects); i++)
        if (!strcmp(sample_type, objects[i])) return "objects";
    return "samples";
}

int64_t flamebearer_sample_rate(const char *sample_unit)
{
    if (!sample_unit) return 100;
    if (!strcmp(sample_unit, "nanoseconds")) return 1000000000;
    if (!strcmp(sample_unit, "microseconds")) return 1000000;
    if (!strcmp(sample_unit, "milliseconds")) return 1000;
    return 100;
}

int flamebearer_write(flame_tree *t, const flamebearer_meta *meta, buf *out)
{
    flame_levels_out lv;
    size_t start_len = out->len;
    jw w;
    int rc;

    memset(&lv, 0, sizeof lv);
    if ((rc = flame_levels(t, &lv))) return rc;
    jw_init(&w, out);
    jw_obj(&w);
    jw_key(&w, "version"); jw_int(&w, 1);
    jw_key(&w, "flamebearer"); jw_obj(&w);
    jw_key(&w, "names"); jw_arr(&w);
    for (uint32_t i = 0; i < t->names.count; i++) jw_string(&w, strtab_get(&t->names, i), strtab_len(&t->names, i));
    jw_arr_end(&w);
    jw_key(&w, "levels"); jw_arr(&w);
    for (size_t d = 0; d < lv.n_levels; d++) {
        jw_arr(&w);
        for (size_t k = 0; k < lv.n_level[d]; k++) jw_int(&w, lv.levels[d][k]);
        jw_arr_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "numTicks"); jw_int(&w, flame_total(t, 0) + (t->is_diff ? flame_total(t, 1) : 0));
    jw_key(&w, "maxSelf"); jw_int(&w, lv.max_self);
    jw_obj_end(&w);
    jw_key(&w, "metadata"); jw_obj(&w);
    jw_key(&w, "format"); jw_cstring(&w, t->is_diff ? "double" : "single");
    jw_key(&w, "spyName"); jw_cstring(&w, meta && meta->spy_name ? meta->spy_name : "unknown");
    jw_key(&w, "sampleRate"); jw_int(&w, meta && meta->sample_rate ? meta->sample_rate : 100);
    jw_key(&w, "units"); jw_cstring(&w, meta && meta->units ? meta->units : "samples");
    if (meta && meta->name) { jw_key(&w, "name"); jw_cstring(&w, meta->name); }
    jw_obj_end(&w);
    if (meta && meta->timeline) {
        const flamebearer_timeline *tl = meta->timeline;
        jw_key(&w, "timeline"); jw_obj(&w);
        jw_key(&w, "startTime"); jw_int(&w, tl->start_time);
        jw_key(&w, "samples"); jw_arr(&w);
        for (size_t i = 0; i < tl->n_samples; i++) jw_int(&w, tl->samples[i]);
        jw_arr_end(&w);
        jw_key(&w, "durationDelta"); jw_int(&w, tl->duration_delta);
        jw_obj_end(&w);
    }
    if (t->is_diff) {
        jw_key(&w, "leftTicks"); jw_int(&w, flame_total(t, 0));
        jw_key(&w, "rightTicks"); jw_int(&w, flame_total(t, 1));
    }
    jw_obj_end(&w);
    flame_levels_release(&lv);
    if (w.err) {
        out->len = start_len;
        if (out->data) out->data[start_len] = 0;
    }
    return w.err;
}

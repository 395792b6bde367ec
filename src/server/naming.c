/*
 * naming.c: Pyroscope's legacy key syntax and profile naming (naming.h).
 *
 * The suffix table mirrors convertMetadata() of Pyroscope's ingest adapter;
 * where Pyroscope stores rate-scaled CPU/wall samples as cpu:nanoseconds
 * (or wall:nanoseconds), rate_scaled is set and the caller rescales. The
 * period type is the one the matching pprof carries (Go heap: space:bytes,
 * goroutine: goroutine:count, mutex/block: contentions:count), so folded
 * and pprof memory profiles of an app land in one profile type, and the
 * legacy render maps app.suffix through this same table (naming_type_id).
 */
#include "core/common.h"

#include "core/json.h"
#include "server/naming.h"

static const naming_type types[] = {
    {"cpu", "process_cpu", "cpu", "nanoseconds", 1, "cpu", "nanoseconds"},
    {"itimer", "process_cpu", "cpu", "nanoseconds", 1, "cpu", "nanoseconds"},
    {"wall", "wall", "wall", "nanoseconds", 1, "cpu", "nanoseconds"},
    {"inuse_objects", "memory", "inuse_objects", "count", 0, "space", "bytes"},
    {"inuse_space", "memory", "inuse_space", "bytes", 0, "space", "bytes"},
    {"alloc_objects", "memory", "alloc_objects", "count", 0, "space", "bytes"},
    {"alloc_space", "memory", "alloc_space", "bytes", 0, "space", "bytes"},
    {"goroutines", "goroutine", "goroutines", "count", 0, "goroutine", "count"},
    {"mutex_count", "mutex", "contentions", "count", 0, "contentions", "count"},
    {"mutex_duration", "mutex", "delay", "nanoseconds", 0, "contentions", "count"},
    {"block_count", "block", "contentions", "count", 0, "contentions", "count"},
    {"block_duration", "block", "delay", "nanoseconds", 0, "contentions", "count"},
    {"lock_count", "block", "contentions", "count", 0, "contentions", "count"},
    {"lock_duration", "block", "delay", "nanoseconds", 0, "contentions", "count"},
    {"alloc_in_new_tlab_objects", "memory", "alloc_in_new_tlab_objects", "count", 0, "alloc_in_new_tlab_objects", "count"},
    {"alloc_in_new_tlab_bytes", "memory", "alloc_in_new_tlab_bytes", "bytes", 0, "alloc_in_new_tlab_bytes", "bytes"},
    {"alloc_outside_tlab_objects", "memory", "alloc_outside_tlab_objects", "count", 0, "alloc_outside_tlab_objects", "count"},
    {"alloc_outside_tlab_bytes", "memory", "alloc_outside_tlab_bytes", "bytes", 0, "alloc_outside_tlab_bytes", "bytes"},
    {"live", "memory", "live", "count", 0, "live", "count"},
    {"exceptions", "exceptions", "samples", "count", 0, "samples", "count"},
    {"seconds", "wall", "samples", "count", 0, "samples", "count"},
    {"nanoseconds", "wall", "samples", "count", 0, "samples", "count"},
    {"microseconds", "wall", "samples", "count", 0, "samples", "count"},
    {"milliseconds", "wall", "samples", "count", 0, "samples", "count"},
    {"bytes", "memory", "samples", "bytes", 0, "samples", "bytes"},
};

int naming_label_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > NAMING_MAX_NAME_LEN) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (i && ((c >= '0' && c <= '9') || c == '.'));
        if (!ok) return 0;
    }
    return 1;
}

static char *trim(char *s)
{
    char *end;
    while (*s == ' ' || *s == '\t') s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t')) *--end = 0;
    return s;
}

int naming_parse_key(naming_key *k, const char *name, herr *e)
{
    const char *brace = strchr(name, '{');
    size_t app_len = brace ? (size_t)(brace - name) : strlen(name);
    char *p, *end;

    memset(k, 0, sizeof *k);
    if (!name[0]) return herr_set(e, HE_FORMAT, "the name parameter is empty: use name=app.cpu{label=value}");
    if (app_len >= sizeof k->app) return herr_set(e, HE_TOOBIG, "application name is longer than %zu bytes", sizeof k->app - 1);
    memcpy(k->app, name, app_len);
    k->app[app_len] = 0;
    p = trim(k->app);
    memmove(k->app, p, strlen(p) + 1);
    if (!k->app[0]) return herr_set(e, HE_FORMAT, "name \"%.80s\" has no application name before '{'", name);
    if (!utf8_valid(k->app, strlen(k->app))) return herr_set(e, HE_UTF8, "application name is not valid UTF-8");
    for (const char *c = k->app; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == '}' || *c == ',' || *c == '=')
            return herr_set(e, HE_FORMAT, "application name \"%.80s\" contains a control character or one of }=,", k->app);
    if (!brace) return 0;
    end = strrchr(brace, '}');
    if (!end || end[1] != 0) return herr_set(e, HE_FORMAT, "name \"%.80s\": labels must end with '}'", name);
    if ((size_t)(end - brace) >= sizeof k->storage) return herr_set(e, HE_TOOBIG, "labels of name are longer than %zu bytes", sizeof k->storage - 1);
    memcpy(k->storage, brace + 1, (size_t)(end - brace - 1));
    k->storage[end - brace - 1] = 0;
    if (strpbrk(k->storage, "{}"))
        return herr_set(e, HE_FORMAT, "name \"%.80s\": label values may not contain '{' or '}'", name);
    p = k->storage;
    while (*p) {
        char *comma = strchr(p, ','), *eq, *lname, *lval;
        if (comma) *comma = 0;
        if (*trim(p)) {
            eq = strchr(p, '=');
            if (!eq) return herr_set(e, HE_FORMAT, "label \"%.80s\" in name has no '=': use {key=value,...}", trim(p));
            *eq = 0;
            lname = trim(p);
            lval = trim(eq + 1);
            if (!naming_label_name_valid(lname))
                return herr_set(e, HE_FORMAT, "label name \"%.80s\" is invalid: use [A-Za-z_][A-Za-z0-9_.]*", lname);
            if (strlen(lval) > NAMING_MAX_VALUE_LEN)
                return herr_set(e, HE_TOOBIG, "value of label \"%s\" is longer than %d bytes", lname, NAMING_MAX_VALUE_LEN);
            if (!utf8_valid(lval, strlen(lval))) return herr_set(e, HE_UTF8, "value of label \"%s\" is not valid UTF-8", lname);
            for (size_t i = 0; i < k->n; i++)
                if (!strcmp(k->names[i], lname)) return herr_set(e, HE_FORMAT, "label \"%s\" appears twice in name", lname);
            if (k->n >= NAMING_MAX_LABELS)
                return herr_set(e, HE_TOOBIG, "name has more than %d labels", NAMING_MAX_LABELS);
            k->names[k->n] = lname;
            k->values[k->n] = lval;
            k->n++;
        }
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

const naming_type *naming_suffix(const char *app, size_t *app_len)
{
    const char *dot = strrchr(app, '.');
    *app_len = strlen(app);
    if (!dot) return &types[0];
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        if (!strcmp(dot + 1, types[i].suffix)) {
            *app_len = (size_t)(dot - app);
            return &types[i];
        }
    }
    return NULL;
}

const char *naming_pprof_metric(const char *const *tnames, const char *const *display, size_t n, const char *hint)
{
    int has_contention = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(tnames[i], "wall")) return "wall";
    for (size_t i = 0; i < n; i++) {
        const char *d = display && display[i] && display[i][0] ? display[i] : NULL;
        const char *t = tnames[i];
        if (d) {
            for (size_t k = 0; k < ARRAY_SIZE(types); k++)
                if (!strcmp(d, types[k].suffix)) return types[k].metric;
        }
        if (!strcmp(t, "cpu") || !strcmp(t, "samples") || !strcmp(t, "itimer")) {
            /* "samples" alone may be anything; cpu decides it when present */
            int has_cpu = 0;
            for (size_t k = 0; k < n; k++) has_cpu |= !strcmp(tnames[k], "cpu") || !strcmp(tnames[k], "itimer");
            if (has_cpu || n == 1) return "process_cpu";
        }
        if (!strncmp(t, "alloc_", 6) || !strncmp(t, "inuse_", 6) || !strcmp(t, "live")) return "memory";
        if (!strcmp(t, "goroutine") || !strcmp(t, "goroutines")) return "goroutine";
        if (!strcmp(t, "contentions") || !strcmp(t, "delay") || !strcmp(t, "lock_count") || !strcmp(t, "lock_duration"))
            has_contention = 1;
        if (!strcmp(t, "exception") || !strcmp(t, "exceptions")) return "exceptions";
    }
    if (has_contention) {
        if (hint && (!strcmp(hint, "mutex") || !strncmp(hint, "mutex_", 6))) return "mutex";
        return "block";
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(tnames[i], "samples")) return "process_cpu";
    return n ? tnames[0] : "unknown";
}

const char *naming_type_id(const naming_type *t, char *out, size_t n)
{
    snprintf(out, n, "%s:%s:%s:%s:%s", t->metric, t->type, t->unit, t->period_type, t->period_unit);
    return out;
}

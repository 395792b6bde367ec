/*
 * ingest.c: the write routes: legacy /ingest (Pyroscope's HTTP ingest:
 * folded/lines/pprof/speedscope/perf script bodies, multipart from the Go
 * SDK), Connect /push.v1.PusherService/Push and OTLP/HTTP
 * /v1development/profiles.
 *
 * Every route decodes into the profile model under the server's limits,
 * derives series labels (naming.h rules), then calls store_ingest once per
 * profile; 200 is returned only after every store_ingest of the request
 * succeeded (durable per the fsync policy). A request whose decode fails
 * stores nothing: a Push decodes and checks every series before storing
 * any (a retry after a 400 cannot duplicate data). `__delta__` is never
 * stored as a label: it is removed on every route, and on Push it selects
 * server-side deltas of cumulative profiles (delta.h).
 */
#include "core/common.h"

#include <json-c/json.h>
#include <strings.h>

#include "core/compress.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "core/wire.h"
#include "format/detect.h"
#include "format/folded.h"
#include "format/otlp.h"
#include "format/perfscript.h"
#include "format/pprof.h"
#include "format/speedscope.h"
#include "server/connect.h"
#include "server/naming.h"
#include "server/srv.h"

#define MAX_SERIES_LABELS 64

typedef struct labels {
    store_label v[MAX_SERIES_LABELS];
    size_t n;
} labels;

/* Sets name=value, replacing an existing one. 0 or HE_TOOBIG. */
static int lab_set(labels *l, const char *name, const char *value)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name)) {
            l->v[i].value = value;
            return 0;
        }
    if (l->n >= MAX_SERIES_LABELS) return HE_TOOBIG;
    l->v[l->n].name = name;
    l->v[l->n].value = value;
    l->n++;
    return 0;
}

static const char *lab_get(const labels *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name)) return l->v[i].value;
    return NULL;
}

static size_t count_user_labels(const labels *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->v[i].name, "__", 2)) n++;
    return n;
}

static void reply_error(http_req *rq, http_resp *rs, int rc, const herr *e, const char *what)
{
    server *s = rq->ctx;
    srv_count_reject(s, rq->tenant);
    http_error(rs, http_status_for(rc), "%s: %s", what, herr_msg(e, rc));
}

/* ---------------- multipart/form-data ---------------- */

typedef struct part {
    const char *name;      /* into the header block, not NUL-terminated */
    size_t name_len;
    const char *data;
    size_t len;
} part;

static int get_boundary(const char *ct, char *out, size_t out_size)
{
    const char *b = strcasestr(ct, "boundary=");
    size_t n;
    if (!b) return -1;
    b += 9;
    if (*b == '"') {
        const char *end = strchr(++b, '"');
        if (!end) return -1;
        n = (size_t)(end - b);
    } else {
        n = strcspn(b, "; \t");
    }
    if (!n || n + 3 > out_size) return -1;
    out[0] = '-';
    out[1] = '-';
    memcpy(out + 2, b, n);
    out[n + 2] = 0;
    return 0;
}

/* Splits body into up to max parts. Returns the count or HE_FORMAT. */
static int multipart_split(const char *body, size_t len, const char *ct, part *parts, int max, herr *e)
{
    char delim[200];
    size_t dl;
    const char *p = body, *end = body + len;
    int n = 0;
    if (get_boundary(ct, delim, sizeof delim))
        return herr_set(e, HE_FORMAT, "multipart body without a usable boundary in Content-Type");
    dl = strlen(delim);
    p = memmem(p, (size_t)(end - p), delim, dl);
    if (!p) return herr_set(e, HE_FORMAT, "multipart body does not contain its boundary");
    for (;;) {
        const char *hdr, *hdr_end, *next, *cd, *nm;
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break;  /* closing delimiter */
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') p += 2;
        else if (end - p >= 1 && p[0] == '\n') p += 1;
        else return herr_set(e, HE_FORMAT, "multipart boundary not followed by a line break");
        hdr = p;
        hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hdr_end) return herr_set(e, HE_FORMAT, "multipart part %d has no end of headers", n + 1);
        p = hdr_end + 4;
        next = memmem(p, (size_t)(end - p), delim, dl);
        if (!next) return herr_set(e, HE_FORMAT, "multipart part %d is not terminated by the boundary", n + 1);
        if (n >= max) return herr_set(e, HE_TOOBIG, "multipart body has more than %d parts", max);
        parts[n].data = p;
        parts[n].len = (size_t)(next - p);
        if (parts[n].len >= 2 && next[-2] == '\r' && next[-1] == '\n') parts[n].len -= 2;
        else if (parts[n].len >= 1 && next[-1] == '\n') parts[n].len -= 1;
        parts[n].name = "";
        parts[n].name_len = 0;
        cd = hdr;
        while (cd < hdr_end) {
            const char *eol = memmem(cd, (size_t)(hdr_end + 2 - cd), "\r\n", 2);
            size_t ll = eol ? (size_t)(eol - cd) : (size_t)(hdr_end - cd);
            if (ll > 20 && !strncasecmp(cd, "Content-Disposition:", 20)) {
                nm = memmem(cd, ll, "name=\"", 6);
                /* skip filename=" which also contains name=" */
                while (nm && nm > cd && (nm[-1] != ' ' && nm[-1] != ';')) {
                    const char *from = nm + 6;
                    nm = memmem(from, ll - (size_t)(from - cd), "name=\"", 6);
                }
                if (nm) {
                    const char *q = memchr(nm + 6, '"', ll - (size_t)(nm + 6 - cd));
                    if (q) {
                        parts[n].name = nm + 6;
                        parts[n].name_len = (size_t)(q - nm - 6);
                    }
                }
            }
            if (!eol) break;
            cd = eol + 2;
        }
        n++;
        p = next;
    }
    return n;
}

static const part *part_get(const part *parts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (parts[i].name_len == strlen(name) && !memcmp(parts[i].name, name, parts[i].name_len)) return &parts[i];
    return NULL;
}

/* ---------------- pprof helpers ---------------- */

typedef struct stc {
    char type[64];
    char display[64];
    int cumulative;
} stc;

/* sample_type_config: {"alloc_objects": {"units": "objects", "display-name": "...", "cumulative": true}, ...} */
static int parse_stc(const char *data, size_t n, stc *out, int max, herr *e)
{
    json_object *o;
    int count = 0;
    json_tokener *tok = json_tokener_new_ex(8);
    if (!tok) return -ENOMEM;
    o = json_tokener_parse_ex(tok, data, (int)MIN(n, (size_t)INT_MAX));
    if (!o || json_tokener_get_error(tok) != json_tokener_success || !json_object_is_type(o, json_type_object)) {
        json_tokener_free(tok);
        if (o) json_object_put(o);
        return herr_set(e, HE_FORMAT, "sample_type_config is not a JSON object");
    }
    json_tokener_free(tok);
    json_object_object_foreach(o, key, val) {
        json_object *x;
        if (count >= max) break;
        memset(&out[count], 0, sizeof out[count]);
        snprintf(out[count].type, sizeof out[count].type, "%s", key);
        if (json_object_object_get_ex(val, "display-name", &x) && json_object_is_type(x, json_type_string))
            snprintf(out[count].display, sizeof out[count].display, "%s", json_object_get_string(x));
        if (json_object_object_get_ex(val, "cumulative", &x)) out[count].cumulative = json_object_get_boolean(x);
        count++;
    }
    json_object_put(o);
    return count;
}

/* cur -= prev for the cumulative sample types (Go SDK heap/mutex/block deltas). */
static int pprof_delta(profile *cur, const profile *prev, const stc *cfg, int n_cfg, herr *e)
{
    profile neg;
    int rc, any = 0;
    if (prev->n_types != cur->n_types) return herr_set(e, HE_FORMAT, "prev_profile has %u sample types, profile has %u", prev->n_types, cur->n_types);
    if ((rc = prof_init(&neg))) return rc;
    neg.limits = cur->limits;
    if ((rc = prof_merge(&neg, prev, -1, 0, e))) goto out;
    for (uint32_t t = 0; t < neg.n_types; t++) {
        const char *tn = prof_s(&neg, neg.sample_types[t].type);
        int cumul = 0;
        for (int k = 0; k < n_cfg; k++)
            if (!strcmp(cfg[k].type, tn)) cumul = cfg[k].cumulative;
        any |= cumul;
        for (size_t i = 0; i < neg.n_samples; i++)
            neg.values[i * neg.n_types + t] = cumul ? -neg.values[i * neg.n_types + t] : 0;
    }
    if (!any) goto out;
    if ((rc = prof_merge(cur, &neg, -1, 0, e))) goto out;
    if ((rc = prof_compact_samples(cur))) goto out;
    /* a counter reset leaves negatives: clamp them, as a delta cannot be below zero */
    for (size_t i = 0; i < cur->n_samples * cur->n_types; i++)
        if (cur->values[i] < 0) cur->values[i] = 0;
    rc = prof_compact_samples(cur);
out:
    prof_release(&neg);
    return rc;
}

/* ---------------- legacy /ingest ---------------- */

static int64_t arg_time(http_req *rq, const char *name, int64_t now, int64_t dflt, herr *e, int *rc)
{
    const char *v = http_arg(rq, name);
    int64_t t;
    if (!v || !*v) return dflt;
    if (parse_time_ns(v, now, &t)) {
        *rc = herr_set(e, HE_FORMAT, "parameter %s=\"%.40s\" is not a time (unix s/ms/us/ns, now-1h, or RFC 3339)", name, v);
        return dflt;
    }
    return t;
}

/* Renames the single sample type of a text profile and rescales it (legacy names). */
static int apply_legacy_type(profile *p, const naming_type *nt, int64_t sample_rate)
{
    int32_t a = prof_cstr(p, nt->type), b = prof_cstr(p, nt->unit);
    if (a < 0 || b < 0) return -ENOMEM;
    if (p->n_types != 1) return HE_FORMAT;
    p->sample_types[0].type = (uint32_t)a;
    p->sample_types[0].unit = (uint32_t)b;
    if (nt->rate_scaled) {
        int64_t period = 1000000000LL / (sample_rate > 0 ? sample_rate : 100);
        int32_t pt = prof_cstr(p, "cpu"), pu = prof_cstr(p, "nanoseconds");
        if (pt < 0 || pu < 0) return -ENOMEM;
        for (size_t i = 0; i < p->n_samples; i++) {
            if (p->values[i] > INT64_MAX / period) return HE_TOOBIG;
            p->values[i] *= period;
        }
        p->period_type.type = (uint32_t)pt;
        p->period_type.unit = (uint32_t)pu;
        p->period = period;
    } else {
        /* the period type a pprof of this kind has, so both land in one profile type */
        int32_t pt = prof_cstr(p, nt->period_type), pu = prof_cstr(p, nt->period_unit);
        if (pt < 0 || pu < 0) return -ENOMEM;
        p->period_type.type = (uint32_t)pt;
        p->period_type.unit = (uint32_t)pu;
    }
    return 0;
}

/* "lines": one stack per line, each counted once; rewritten as folded text. */
static int lines_to_folded(const char *data, size_t n, buf *out)
{
    const char *p = data, *end = data + n;
    int rc;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (ll) {
            if ((rc = buf_append(out, p, ll)) || (rc = buf_puts(out, " 1\n"))) return rc;
        }
        if (!eol) break;
        p = eol + 1;
    }
    return 0;
}

void ingest_legacy(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    herr e = {0};
    int rc = 0;
    const char *name = http_arg(rq, "name");
    const char *format = http_arg(rq, "format");
    const char *spy = http_arg(rq, "spyName");
    const char *rate_s = http_arg(rq, "sampleRate");
    const char *ct = http_header(rq, "Content-Type");
    int64_t now = now_ns(), from, until, rate = 100;
    naming_key *key = xmalloc(sizeof *key);
    profile p;
    labels lab;
    char app[512];
    const naming_type *nt;
    size_t app_len;
    int is_pprof;
    const char *body = rq->body.data ? rq->body.data : "";
    size_t body_len = rq->body.len;
    stc cfg[32];
    int n_cfg = 0;
    part parts[8];          /* prev points here, so it lives for the whole handler */
    const part *prev = NULL;

    memset(&lab, 0, sizeof lab);
    if (prof_init(&p)) {
        free(key);
        http_error(rs, 503, "out of memory");
        return;
    }
    srv_prof_limits(s, &p.limits);
    if (!name) {
        rc = herr_set(&e, HE_FORMAT, "missing name parameter: use name=app.cpu{label=value}");
        goto fail;
    }
    if ((rc = naming_parse_key(key, name, &e))) goto fail;
    from = arg_time(rq, "from", now, now, &e, &rc);
    until = arg_time(rq, "until", now, from, &e, &rc);
    if (rc) goto fail;
    if (until < from) until = from;
    if (rate_s && *rate_s) {
        char *end;
        rate = strtoll(rate_s, &end, 10);
        if (*end || rate <= 0 || rate > 1000000000) {
            rc = herr_set(&e, HE_FORMAT, "sampleRate=\"%.20s\" must be a positive integer (Hz)", rate_s);
            goto fail;
        }
    }
    is_pprof = format && (!strcasecmp(format, "pprof") || !strcasecmp(format, "jfr"));
    if (format && !strcasecmp(format, "jfr")) {
        rc = herr_set(&e, HE_UNSUPPORTED, "format=jfr is not supported by hearth; send pprof");
        goto fail;
    }
    if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
        const part *pp, *sc;
        int np = multipart_split(body, body_len, ct, parts, (int)ARRAY_SIZE(parts), &e);
        if (np < 0) {
            rc = np;
            goto fail;
        }
        pp = part_get(parts, np, "profile");
        if (!pp) {
            rc = herr_set(&e, HE_FORMAT, "multipart body has no \"profile\" part");
            goto fail;
        }
        prev = part_get(parts, np, "prev_profile");
        sc = part_get(parts, np, "sample_type_config");
        if (sc && sc->len) {
            n_cfg = parse_stc(sc->data, sc->len, cfg, (int)ARRAY_SIZE(cfg), &e);
            if (n_cfg < 0) {
                rc = n_cfg;
                goto fail;
            }
        }
        body = pp->data;
        body_len = pp->len;
        is_pprof = 1;
    }

    /* no format and no multipart: a body that is clearly pprof (gzip, or protobuf
     * that does not parse as text) is taken as pprof, as SDKs that forget the
     * parameter expect; Pyroscope would read it as folded and fail */
    if (!is_pprof && (!format || !*format) && (is_gzip(body, body_len) || prof_format_detect(body, body_len) == PF_PPROF))
        is_pprof = 1;
    snprintf(app, sizeof app, "%s", key->app);
    nt = naming_suffix(key->app, &app_len);
    if (is_pprof) {
        const char *tnames[64], *disp[64];
        if ((rc = pprof_decode(&p, body, body_len, s->cfg.max_decompressed, &e))) goto fail;
        if (prev && prev->len) {
            profile pv;
            if ((rc = prof_init(&pv))) goto fail;
            pv.limits = p.limits;
            rc = pprof_decode(&pv, prev->data, prev->len, s->cfg.max_decompressed, &e);
            if (!rc) rc = pprof_delta(&p, &pv, cfg, n_cfg, &e);
            prof_release(&pv);
            if (rc) goto fail;
        }
        for (uint32_t t = 0; t < p.n_types && t < 64; t++) {
            tnames[t] = prof_s(&p, p.sample_types[t].type);
            disp[t] = NULL;
            for (int k = 0; k < n_cfg; k++)
                if (!strcmp(cfg[k].type, tnames[t]) && cfg[k].display[0]) disp[t] = cfg[k].display;
        }
        if (nt) app[app_len] = 0;
        {
            const char *dot = strrchr(key->app, '.');
            rc = lab_set(&lab, "__name__", naming_pprof_metric(tnames, disp, MIN(p.n_types, 64u), dot ? dot + 1 : NULL));
        }
    } else {
        enum prof_format f = PF_FOLDED;
        buf tmp;
        buf_init(&tmp, s->cfg.max_decompressed);
        if (!nt) {
            rc = herr_set(&e, HE_FORMAT, "unknown profile type \"%s\" in name \"%s\": end the name with .cpu, .wall, .inuse_space, .alloc_objects, ...",
                          strrchr(key->app, '.') + 1, key->app);
            buf_release(&tmp);
            goto fail;
        }
        app[app_len] = 0;
        if (format && *format && strcasecmp(format, "folded") && strcasecmp(format, "collapsed")) {
            if (!strcasecmp(format, "lines")) {
                f = PF_FOLDED;
                if ((rc = lines_to_folded(body, body_len, &tmp))) {
                    buf_release(&tmp);
                    rc = herr_set(&e, rc, "lines body too large");
                    goto fail;
                }
                body = tmp.data ? tmp.data : "";
                body_len = tmp.len;
            } else if (!strcasecmp(format, "speedscope")) {
                f = PF_SPEEDSCOPE;
            } else if (!strcasecmp(format, "perf_script") || !strcasecmp(format, "perf") || !strcasecmp(format, "perfscript")) {
                f = PF_PERFSCRIPT;
            } else if (!strcasecmp(format, "trie") || !strcasecmp(format, "tree")) {
                buf_release(&tmp);
                rc = herr_set(&e, HE_UNSUPPORTED, "format=%s (the Pyroscope 0.x binary trie) is not supported; send folded or pprof", format);
                goto fail;
            } else {
                buf_release(&tmp);
                rc = herr_set(&e, HE_FORMAT, "unknown format=\"%.32s\": use folded, lines, pprof, speedscope or perf_script", format);
                goto fail;
            }
        }
        if (f == PF_SPEEDSCOPE) rc = speedscope_parse(&p, body, body_len, &e);
        else if (f == PF_PERFSCRIPT) rc = perfscript_parse(&p, body, body_len, &e);
        else rc = folded_parse(&p, body, body_len, &e);
        buf_release(&tmp);
        if (rc) goto fail;
        if (p.n_types != 1) {
            rc = herr_set(&e, HE_FORMAT, "the %s body holds %u sample types; the legacy ingest takes one", format ? format : "folded", p.n_types);
            goto fail;
        }
        if ((rc = apply_legacy_type(&p, nt, rate))) {
            herr_set(&e, rc, "sample values overflow when scaled by sampleRate");
            goto fail;
        }
        rc = lab_set(&lab, "__name__", nt->metric);
    }
    /* __delta__ is an instruction, not a label (Pyroscope's legacy adapter sends "false") */
    for (size_t i = 0; i < key->n && !rc; i++)
        if (strcmp(key->names[i], "__delta__")) rc = lab_set(&lab, key->names[i], key->values[i]);
    if (!rc && !lab_get(&lab, "service_name")) rc = lab_set(&lab, "service_name", app);
    else if (!rc && !lab_get(&lab, "app_name")) rc = lab_set(&lab, "app_name", app);
    if (!rc && spy && *spy) rc = lab_set(&lab, "pyroscope_spy", spy);
    if (rc || count_user_labels(&lab) > s->cfg.max_labels) {
        rc = herr_set(&e, HE_TOOBIG, "series has more than %u labels", s->cfg.max_labels);
        goto fail;
    }
    if ((rc = srv_store_ingest(s, rq->tenant, lab.v, lab.n, &p, from, until - from, &e))) goto fail;
    srv_count_ingest(s, rq->tenant, 1, p.n_samples, rq->wire_bytes);
    prof_release(&p);
    free(key);
    rs->status = 200;
    return;
fail:
    prof_release(&p);
    free(key);
    reply_error(rq, rs, rc, &e, "ingest");
}

/* ---------------- Connect Push ---------------- */

/*
 * A Push is all-or-nothing as far as the request goes: every series is
 * parsed, its labels checked and every raw profile decoded before the first
 * store_ingest, so a bad series anywhere stores nothing (the client's retry
 * does not duplicate the good ones). `__delta__` is not a series label:
 * it is removed, and unless it is "false" the cumulative alloc_* types of
 * memory profiles become server-side deltas (delta.h), as Pyroscope's head.
 */

typedef struct raw_series {
    labels lab;
    char *strs;            /* owned storage for label strings (proto) */
    const void **raw;      /* raw_profile bytes */
    size_t *raw_len;
    size_t n_raw;
    buf *decoded;          /* JSON: the base64-decoded raw profiles raw[] points into */
    size_t n_dec;
    int delta;             /* 1 unless __delta__="false" */
} raw_series;

typedef struct push_req {
    raw_series *v;
    size_t n, cap;
} push_req;

#define PUSH_MAX_SERIES 4096
#define PUSH_MAX_PROFILES 16384

static void raw_series_release(raw_series *r)
{
    free(r->strs);
    free(r->raw);
    free(r->raw_len);
    for (size_t k = 0; k < r->n_dec; k++) buf_release(&r->decoded[k]);
    free(r->decoded);
    memset(r, 0, sizeof *r);
}

static void push_req_release(push_req *pr)
{
    for (size_t i = 0; i < pr->n; i++) raw_series_release(&pr->v[i]);
    free(pr->v);
    memset(pr, 0, sizeof *pr);
}

/* A new zeroed series at the end of pr; NULL past PUSH_MAX_SERIES. */
static raw_series *push_add(push_req *pr)
{
    if (pr->n >= PUSH_MAX_SERIES) return NULL;
    if (pr->n == pr->cap) {
        pr->cap = pr->cap ? pr->cap * 2 : 8;
        pr->v = xreallocarray(pr->v, pr->cap, sizeof *pr->v);
    }
    memset(&pr->v[pr->n], 0, sizeof pr->v[pr->n]);
    return &pr->v[pr->n++];
}

static int raw_add(raw_series *r, const void *p, size_t n)
{
    if (r->n_raw >= 4096) return HE_TOOBIG;
    r->raw = xreallocarray(r->raw, r->n_raw + 1, sizeof *r->raw);
    r->raw_len = xreallocarray(r->raw_len, r->n_raw + 1, sizeof *r->raw_len);
    r->raw[r->n_raw] = p;
    r->raw_len[r->n_raw] = n;
    r->n_raw++;
    return 0;
}

static void lab_del(labels *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name)) {
            memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof l->v[i]);
            l->n--;
            return;
        }
}

/* Strips __delta__, adds the default service_name, checks names, values and the label limit. */
static int series_check(server *s, raw_series *r, size_t idx, herr *e)
{
    const char *d = lab_get(&r->lab, "__delta__");
    r->delta = !(d && !strcmp(d, "false"));
    lab_del(&r->lab, "__delta__");
    if (!lab_get(&r->lab, "service_name") && lab_set(&r->lab, "service_name", "unknown_service"))
        return herr_set(e, HE_TOOBIG, "series[%zu] has too many labels", idx);
    if (count_user_labels(&r->lab) > s->cfg.max_labels)
        return herr_set(e, HE_TOOBIG, "series[%zu] has more than %u labels", idx, s->cfg.max_labels);
    for (size_t i = 0; i < r->lab.n; i++) {
        if (!naming_label_name_valid(r->lab.v[i].name))
            return herr_set(e, HE_FORMAT, "series[%zu]: label name \"%.80s\" is invalid: use [A-Za-z_][A-Za-z0-9_.]*", idx, r->lab.v[i].name);
        if (!utf8_valid(r->lab.v[i].value, strlen(r->lab.v[i].value)))
            return herr_set(e, HE_UTF8, "series[%zu]: value of label \"%s\" is not valid UTF-8", idx, r->lab.v[i].name);
        if (strlen(r->lab.v[i].value) > NAMING_MAX_VALUE_LEN)
            return herr_set(e, HE_TOOBIG, "series[%zu]: value of label \"%s\" is longer than %d bytes", idx, r->lab.v[i].name, NAMING_MAX_VALUE_LEN);
    }
    return 0;
}

/* Checks and decodes everything, then stores everything. */
static int push_all(http_req *rq, push_req *pr, herr *e, uint64_t *n_profiles, uint64_t *n_samples)
{
    server *s = rq->ctx;
    size_t total = 0, k = 0, inited = 0;
    profile *ps;
    int rc = 0;
    for (size_t i = 0; i < pr->n; i++) {
        if ((rc = series_check(s, &pr->v[i], i, e))) return rc;
        total += pr->v[i].n_raw;
    }
    if (total > PUSH_MAX_PROFILES) return herr_set(e, HE_TOOBIG, "PushRequest holds %zu profiles, more than %d", total, PUSH_MAX_PROFILES);
    ps = xcalloc(total + 1, sizeof *ps);
    for (size_t i = 0; i < pr->n && !rc; i++)
        for (size_t j = 0; j < pr->v[i].n_raw && !rc; j++, k++) {
            if ((rc = prof_init(&ps[k]))) break;
            inited++;
            srv_prof_limits(s, &ps[k].limits);
            rc = pprof_decode(&ps[k], pr->v[i].raw[j], pr->v[i].raw_len[j], s->cfg.max_decompressed, e);
            if (rc) {
                herr sub = *e;
                herr_clear(e);  /* herr_set keeps the first message: replace it with the located one */
                herr_set(e, rc, "series[%zu].samples[%zu]: %s", i, j, herr_msg(&sub, rc));
            }
        }
    k = 0;
    store_item *items = xcalloc(total + 1, sizeof *items);
    size_t n_items = 0;
    delta_undo *undo = delta_undo_new();
    for (size_t i = 0; i < pr->n && !rc; i++) {
        raw_series *r = &pr->v[i];
        const char *names[MAX_SERIES_LABELS], *values[MAX_SERIES_LABELS];
        for (size_t l = 0; l < r->lab.n; l++) {
            names[l] = r->lab.v[l].name;
            values[l] = r->lab.v[l].value;
        }
        for (size_t j = 0; j < r->n_raw && !rc; j++, k++) {
            profile *p = &ps[k];
            int64_t t = p->time_nanos ? p->time_nanos : now_ns();
            if (r->delta && (rc = delta_apply(s->delta, rq->tenant, names, values, r->lab.n, p, undo))) {
                herr_set(e, rc, "computing the delta of a cumulative profile failed");
                break;
            }
            if (r->delta && !p->n_samples && delta_applies(names, values, r->lab.n, p)) continue;  /* a baseline */
            items[n_items++] = (store_item){r->lab.v, r->lab.n, p, t, p->duration_nanos};
        }
    }
    /*
     * One batch: a WAL failure stores none of the request, so the client's
     * retry duplicates nothing; and the delta state goes back to where it
     * was, so the retry's deltas are the ones this request would have stored.
     */
    if (!rc && n_items) rc = srv_store_ingest_batch(s, rq->tenant, items, n_items, e);
    if (rc) delta_rollback(s->delta, undo);
    delta_undo_free(undo);
    if (!rc)
        for (size_t i = 0; i < n_items; i++) {
            *n_samples += items[i].p->n_samples;
            *n_profiles += 1;
        }
    free(items);
    for (size_t i = 0; i < inited; i++) prof_release(&ps[i]);
    free(ps);
    return rc;
}

/* PushRequest protobuf: series=1 {labels=1 {name=1,value=2}, samples=2 {raw_profile=1, ID=2}} */
static int push_proto(http_req *rq, herr *e, uint64_t *n_profiles, uint64_t *n_samples)
{
    wire_rd r;
    uint32_t f;
    int wt, rc = 0;
    push_req pr = {0};
    wire_rd_init(&r, rq->body.data, rq->body.len);
    while (!wire_eof(&r)) {
        const uint8_t *sp;
        size_t sn;
        wire_rd sr;
        raw_series *rsr;
        size_t strs_len = 0, strs_cap;
        if ((rc = wire_tag(&r, &f, &wt))) {
            rc = herr_set(e, rc, "malformed PushRequest protobuf");
            break;
        }
        if (f != 1 || wt != WT_LEN) {
            if ((rc = wire_skip(&r, wt))) {
                rc = herr_set(e, rc, "malformed PushRequest protobuf");
                break;
            }
            continue;
        }
        if ((rc = wire_bytes(&r, &sp, &sn))) {
            rc = herr_set(e, rc, "malformed PushRequest series");
            break;
        }
        if (!(rsr = push_add(&pr))) {
            rc = herr_set(e, HE_TOOBIG, "PushRequest has more than %d series", PUSH_MAX_SERIES);
            break;
        }
        strs_cap = sn + 2 * MAX_SERIES_LABELS + 16;
        rsr->strs = xmalloc(strs_cap);
        wire_rd_init(&sr, sp, sn);
        while (!wire_eof(&sr) && !rc) {
            uint32_t g;
            int w;
            const uint8_t *lp;
            size_t ln;
            if ((rc = wire_tag(&sr, &g, &w))) break;
            if ((g == 1 || g == 2) && w == WT_LEN) {
                wire_rd lr;
                if ((rc = wire_bytes(&sr, &lp, &ln))) break;
                wire_rd_init(&lr, lp, ln);
                if (g == 1) {
                    const char *nm = "", *vl = "";
                    size_t nl = 0, vlen = 0;
                    char *nd, *vd;
                    while (!wire_eof(&lr) && !rc) {
                        uint32_t h;
                        int x;
                        const uint8_t *q;
                        size_t qn;
                        if ((rc = wire_tag(&lr, &h, &x))) break;
                        if ((h == 1 || h == 2) && x == WT_LEN) {
                            if ((rc = wire_bytes(&lr, &q, &qn))) break;
                            if (h == 1) { nm = (const char *)q; nl = qn; }
                            else { vl = (const char *)q; vlen = qn; }
                        } else rc = wire_skip(&lr, x);
                    }
                    if (rc) break;
                    nd = rsr->strs + strs_len;
                    memcpy(nd, nm, nl);
                    nd[nl] = 0;
                    strs_len += nl + 1;
                    vd = rsr->strs + strs_len;
                    memcpy(vd, vl, vlen);
                    vd[vlen] = 0;
                    strs_len += vlen + 1;
                    if (lab_set(&rsr->lab, nd, vd)) rc = herr_set(e, HE_TOOBIG, "series has more than %d labels", MAX_SERIES_LABELS);
                } else {
                    while (!wire_eof(&lr) && !rc) {
                        uint32_t h;
                        int x;
                        const uint8_t *q;
                        size_t qn;
                        if ((rc = wire_tag(&lr, &h, &x))) break;
                        if (h == 1 && x == WT_LEN) {
                            if ((rc = wire_bytes(&lr, &q, &qn))) break;
                            if (raw_add(rsr, q, qn)) rc = herr_set(e, HE_TOOBIG, "series has more than 4096 samples");
                        } else rc = wire_skip(&lr, x);
                    }
                }
            } else {
                rc = wire_skip(&sr, w);
            }
        }
        if (rc) {
            if (!(e && e->code)) rc = herr_set(e, rc, "malformed PushRequest series (%s)", hearth_strerror(rc));
            break;
        }
    }
    if (!rc) rc = push_all(rq, &pr, e, n_profiles, n_samples);
    push_req_release(&pr);
    return rc;
}

/* Parses the JSON PushRequest into pr, as protojson would: wrong shapes are errors. */
static int push_json_parse(http_req *rq, json_object *o, push_req *pr, herr *e)
{
    json_object *series = NULL;
    if (!json_object_is_type(o, json_type_object)) return herr_set(e, HE_FORMAT, "PushRequest must be a JSON object");
    if (json_object_object_get_ex(o, "series", &series) && series && !json_object_is_type(series, json_type_array))
        return herr_set(e, HE_FORMAT, "PushRequest \"series\" must be an array");
    for (size_t i = 0; series && i < json_object_array_length(series); i++) {
        json_object *sr = json_object_array_get_idx(series, i), *labs = NULL, *samples = NULL;
        raw_series *rsr;
        size_t ns;
        if (!sr || !json_object_is_type(sr, json_type_object))
            return herr_set(e, HE_FORMAT, "series[%zu] must be an object with \"labels\" and \"samples\"", i);
        if (!(rsr = push_add(pr))) return herr_set(e, HE_TOOBIG, "PushRequest has more than %d series", PUSH_MAX_SERIES);
        json_object_object_get_ex(sr, "labels", &labs);
        json_object_object_get_ex(sr, "samples", &samples);
        if (labs && !json_object_is_type(labs, json_type_array))
            return herr_set(e, HE_FORMAT, "series[%zu].labels must be an array", i);
        if (samples && !json_object_is_type(samples, json_type_array))
            return herr_set(e, HE_FORMAT, "series[%zu].samples must be an array", i);
        for (size_t k = 0; labs && k < json_object_array_length(labs); k++) {
            json_object *lp = json_object_array_get_idx(labs, k), *nm = NULL, *vl = NULL;
            if (!lp || !json_object_is_type(lp, json_type_object))
                return herr_set(e, HE_FORMAT, "series[%zu].labels[%zu] must be an object {\"name\":..,\"value\":..}", i, k);
            json_object_object_get_ex(lp, "name", &nm);
            json_object_object_get_ex(lp, "value", &vl);
            if (!nm || !json_object_is_type(nm, json_type_string) || (vl && !json_object_is_type(vl, json_type_string)))
                return herr_set(e, HE_FORMAT, "series[%zu].labels[%zu] needs string \"name\" and \"value\"", i, k);
            if (lab_set(&rsr->lab, json_object_get_string(nm), vl ? json_object_get_string(vl) : ""))
                return herr_set(e, HE_TOOBIG, "series[%zu] has more than %d labels", i, MAX_SERIES_LABELS);
        }
        ns = samples ? json_object_array_length(samples) : 0;
        if (ns > 4096) return herr_set(e, HE_TOOBIG, "series[%zu] has more than 4096 samples", i);
        rsr->decoded = xcalloc(ns + 1, sizeof *rsr->decoded);
        for (size_t k = 0; k < ns; k++) {
            json_object *sm = json_object_array_get_idx(samples, k), *raw = NULL;
            buf *d = &rsr->decoded[rsr->n_dec];
            if (!sm || !json_object_is_type(sm, json_type_object))
                return herr_set(e, HE_FORMAT, "series[%zu].samples[%zu] must be an object with \"rawProfile\"", i, k);
            if (!json_object_object_get_ex(sm, "rawProfile", &raw)) json_object_object_get_ex(sm, "raw_profile", &raw);
            if (!raw || !json_object_is_type(raw, json_type_string))
                return herr_set(e, HE_FORMAT, "series[%zu].samples[%zu] has no base64 \"rawProfile\"", i, k);
            buf_init(d, ((server *)rq->ctx)->cfg.max_decompressed);
            rsr->n_dec++;
            if (b64_decode(json_object_get_string(raw), (size_t)json_object_get_string_len(raw), d))
                return herr_set(e, HE_FORMAT, "series[%zu].samples[%zu].rawProfile is not valid base64", i, k);
            raw_add(rsr, d->data ? d->data : "", d->len);
        }
    }
    return 0;
}

static int push_json(http_req *rq, herr *e, uint64_t *n_profiles, uint64_t *n_samples)
{
    json_tokener *tok = json_tokener_new_ex(16);
    json_object *o;
    push_req pr = {0};
    int rc = 0;
    if (!tok) return -ENOMEM;
    o = json_tokener_parse_ex(tok, rq->body.data ? rq->body.data : "", (int)MIN(rq->body.len, (size_t)INT_MAX));
    if (!o || json_tokener_get_error(tok) != json_tokener_success) {
        rc = herr_set(e, HE_FORMAT, "PushRequest is not valid JSON: %s", json_tokener_error_desc(json_tokener_get_error(tok)));
        json_tokener_free(tok);
        if (o) json_object_put(o);
        return rc;
    }
    json_tokener_free(tok);
    rc = push_json_parse(rq, o, &pr, e);
    if (!rc) rc = push_all(rq, &pr, e, n_profiles, n_samples);  /* label strings live in o */
    push_req_release(&pr);
    json_object_put(o);
    return rc;
}

void ingest_push(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    herr e = {0};
    uint64_t n_profiles = 0, n_samples = 0;
    int json = connect_is_json(rq);
    int rc = json ? push_json(rq, &e, &n_profiles, &n_samples) : push_proto(rq, &e, &n_profiles, &n_samples);
    if (rc) {
        srv_count_reject(s, rq->tenant);
        connect_error(rs, connect_code_for(rc), "push: %s", herr_msg(&e, rc));
        return;
    }
    srv_count_ingest(s, rq->tenant, n_profiles, n_samples, rq->wire_bytes);
    rs->content_type = json ? "application/json" : "application/proto";
    if (json) buf_puts(&rs->body, "{}");
}

/* ---------------- OTLP ---------------- */

void ingest_otlp(http_req *rq, http_resp *rs)
{
    server *s = rq->ctx;
    herr e = {0};
    const char *ct = http_header(rq, "Content-Type");
    int json = ct && !strncasecmp(ct, "application/json", 16);
    otlp_batch b;
    prof_limits lim;
    uint64_t n_samples = 0;
    int rc;
    if (ct && !json && strncasecmp(ct, "application/x-protobuf", 22) && strncasecmp(ct, "application/protobuf", 20) &&
        strncasecmp(ct, "application/octet-stream", 24)) {
        srv_count_reject(s, rq->tenant);
        http_error(rs, 415, "unsupported Content-Type: %.64s (use application/x-protobuf or application/json)", ct);
        return;
    }
    srv_prof_limits(s, &lim);
    rc = otlp_decode(&b, rq->body.data ? rq->body.data : "", rq->body.len, json, &lim, &e);
    if (rc) {
        reply_error(rq, rs, rc, &e, "otlp");
        return;
    }
    /* Every resource's labels are checked first, then all profiles are stored as one batch (all or nothing). */
    labels *labs = xcalloc(b.n + 1, sizeof *labs);
    store_item *items = xcalloc(b.n + 1, sizeof *items);
    size_t n_items = 0;
    for (size_t i = 0; i < b.n && !rc; i++) {
        otlp_profile *op = &b.v[i];
        labels *lab = &labs[i];
        for (size_t k = 0; k < op->n_labels; k++)
            if (strcmp(op->names[k], "__delta__") && lab_set(lab, op->names[k], op->values[k])) break;
        if (count_user_labels(lab) > s->cfg.max_labels) {
            rc = herr_set(&e, HE_TOOBIG, "resource has more than %u attributes usable as labels", s->cfg.max_labels);
            break;
        }
        if (!op->prof.n_samples) continue;
        items[n_items++] = (store_item){lab->v, lab->n, &op->prof, op->time_ns ? op->time_ns : now_ns(), op->duration_ns};
        n_samples += op->prof.n_samples;
    }
    if (!rc && n_items) rc = srv_store_ingest_batch(s, rq->tenant, items, n_items, &e);
    free(items);
    free(labs);
    if (rc) {
        otlp_batch_release(&b);
        reply_error(rq, rs, rc, &e, "otlp");
        return;
    }
    srv_count_ingest(s, rq->tenant, b.n, n_samples, rq->wire_bytes);
    otlp_batch_release(&b);
    /* ExportProfilesServiceResponse: empty message */
    rs->content_type = json ? "application/json" : "application/x-protobuf";
    if (json) buf_puts(&rs->body, "{}");
}

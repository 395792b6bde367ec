/*
 * selector.c: parser and matcher for Prometheus-style label selectors (the
 * grammar is in selector.h).
 *
 * A hand-written recursive-descent scanner over the text with an explicit
 * position, so every error names the offset. Regex matchers are compiled
 * once at parse time as "^(" pattern ")$" (Prometheus anchors fully).
 */
#include "core/common.h"

#include "core/mem.h"
#include "store/selector.h"

void selector_init(selector *s)
{
    s->m = NULL;
    s->n = 0;
}

void selector_release(selector *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->m[i].name);
        free(s->m[i].value);
        if (s->m[i].has_re)
            regfree(&s->m[i].re);
    }
    free(s->m);
    s->m = NULL;
    s->n = 0;
}

static const char *op_text(enum sel_op op)
{
    switch (op) {
    case SEL_EQ: return "=";
    case SEL_NE: return "!=";
    case SEL_RE: return "=~";
    default: return "!~";
    }
}

/*
 * Guards regcomp(): glibc compiles some short patterns in exponential time
 * or space (`a++++...` with 100 '+' takes seconds, `(a{255}){255}` expands
 * to 65,025 copies), and a selector comes from whoever can query. So before
 * regcomp a pattern must stay within what RE2 (Prometheus's engine) accepts
 * and within a size budget: no repetition operator right after another
 * (except one '?', RE2's non-greedy marker), none without an expression
 * before it, repeat counts up to 1000, no backreferences (RE2 has none),
 * groups nested at most 64 deep, and an estimated expanded size (atoms,
 * with each counted repeat multiplying what it repeats) up to 2,000: real
 * selectors need tens; regexec time grows with that size (a 3,000-element
 * pattern took 38 ms to match a 40-byte value).
 * 0, or HE_FORMAT with why[] saying what is wrong.
 */
#define RE_MAX_REPEAT 1000
#define RE_MAX_COST 2000
#define RE_MAX_DEPTH 64

typedef struct re_frame {
    uint64_t total, last;  /* estimated size of the branch so far; of its last item */
    int last_kind;         /* 0 nothing to repeat, 1 an atom or group, 2 repeated, 3 repeated + '?' */
} re_frame;

static int re_interval(const char *p, size_t *i, unsigned long *lo, unsigned long *hi)
{
    size_t j = *i + 1;
    char *end;
    if (p[j] < '0' || p[j] > '9') return 0;
    *lo = strtoul(p + j, &end, 10);
    j = (size_t)(end - p);
    *hi = *lo;
    if (p[j] == ',') {
        j++;
        if (p[j] >= '0' && p[j] <= '9') {
            *hi = strtoul(p + j, &end, 10);
            j = (size_t)(end - p);
        } else {
            *hi = *lo + 1;  /* {n,}: n copies and a star */
        }
    }
    if (p[j] != '}') return 0;
    *i = j;
    return 1;
}

static int re_check(const char *p, char *why, size_t why_size)
{
    re_frame st[RE_MAX_DEPTH + 1];
    size_t d = 0;
    memset(&st[0], 0, sizeof st[0]);
    for (size_t i = 0; p[i]; i++) {
        re_frame *f = &st[d];
        char c = p[i];
        uint64_t cost = 1;
        if (c == '\\') {
            if (p[i + 1] >= '1' && p[i + 1] <= '9') {
                snprintf(why, why_size, "backreferences such as \\%c are not supported", p[i + 1]);
                return HE_FORMAT;
            }
            if (p[i + 1]) i++;
        } else if (c == '[') {
            size_t j = i + 1;
            if (p[j] == '^') j++;
            if (p[j] == ']') j++;
            while (p[j] && p[j] != ']') {
                if (p[j] == '[' && (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
                    const char *close = strchr(p + j + 2, p[j + 1]);
                    if (!close || close[1] != ']') break;
                    j = (size_t)(close - p) + 2;
                } else {
                    j++;
                }
            }
            if (!p[j]) break;  /* unterminated: regcomp says so */
            i = j;
        } else if (c == '(') {
            if (d == RE_MAX_DEPTH) {
                snprintf(why, why_size, "groups nested more than %d deep", RE_MAX_DEPTH);
                return HE_FORMAT;
            }
            memset(&st[++d], 0, sizeof st[0]);
            continue;
        } else if (c == ')' && d > 0) {
            cost = st[d].total ? st[d].total : 1;
            f = &st[--d];
        } else if (c == '|') {
            f->last_kind = 0;
            f->last = 0;
            continue;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            unsigned long lo = 1, hi = 1;
            size_t at = i;
            if (c == '{' && !re_interval(p, &i, &lo, &hi)) goto atom;  /* a literal '{' */
            if (!(f->last_kind == 1 || (c == '?' && f->last_kind == 2))) {
                snprintf(why, why_size, "repetition operator '%c' at offset %zu does not follow an expression%s", c, at,
                         f->last_kind >= 2 ? " (it follows another repetition)" : "");
                return HE_FORMAT;
            }
            if (c == '{' && (lo > RE_MAX_REPEAT || hi > RE_MAX_REPEAT || hi < lo)) {
                snprintf(why, why_size, "repeat count at offset %zu is above %d or reversed", at, RE_MAX_REPEAT);
                return HE_FORMAT;
            }
            /* the repeated item is copied max(lo, hi) times (once more for * + ?) */
            uint64_t k = c == '{' ? MAX(hi, 1ul) : 2;
            f->total += f->last * (k - 1);
            f->last *= k;
            f->last_kind = f->last_kind == 1 ? 2 : 3;
            if (f->total > RE_MAX_COST) goto too_big;
            continue;
        }
    atom:
        f->total += cost;
        f->last = cost;
        f->last_kind = 1;
        if (f->total > RE_MAX_COST) goto too_big;
    }
    return 0;
too_big:
    snprintf(why, why_size, "the pattern is too complex (it expands past %d elements)", RE_MAX_COST);
    return HE_FORMAT;
}

int selector_add(selector *s, const char *name, enum sel_op op, const char *value, herr *e)
{
    if (s->n >= SELECTOR_MAX_MATCHERS)
        return herr_set(e, HE_TOOBIG, "selector: more than %d matchers", SELECTOR_MAX_MATCHERS);
    sel_matcher *nm = hreallocarray(s->m, s->n + 1, sizeof(*nm));
    if (!nm)
        return -ENOMEM;
    s->m = nm;
    sel_matcher *m = &s->m[s->n];
    memset(m, 0, sizeof(*m));
    m->op = op;
    if (op == SEL_RE || op == SEL_NRE) {
        size_t vl = strlen(value);
        char why[160];
        if (re_check(value, why, sizeof why))
            return herr_set(e, HE_FORMAT, "selector: regular expression \"%.200s\" for label \"%s\" is not accepted: %s",
                            value, name, why);
        char *pat = xmalloc(vl + 5);
        memcpy(pat, "^(", 2);
        memcpy(pat + 2, value, vl);
        memcpy(pat + 2 + vl, ")$", 3);
        int rc = regcomp(&m->re, pat, REG_EXTENDED | REG_NOSUB);
        free(pat);
        if (rc != 0) {
            regerror(rc, &m->re, why, sizeof(why));
            return herr_set(e, HE_FORMAT, "selector: invalid regular expression \"%s\" for label \"%s\": %s",
                            value, name, why);
        }
        m->has_re = 1;
    }
    m->name = xstrdup(name);
    m->value = xstrdup(value);
    s->n++;
    return 0;
}

typedef struct scan {
    const char *p;
    size_t n, i;
} scan;

static void skip_ws(scan *sc)
{
    while (sc->i < sc->n && (sc->p[sc->i] == ' ' || sc->p[sc->i] == '\t' || sc->p[sc->i] == '\n' || sc->p[sc->i] == '\r'))
        sc->i++;
}

static int is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9') || c == '.'; }

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads a quoted string at sc->i into out (a NUL-terminated malloc'ed copy). */
static int scan_string(scan *sc, char **out, herr *e)
{
    size_t start = sc->i;
    if (sc->i >= sc->n)
        return herr_set(e, HE_FORMAT, "selector: expected a quoted value at offset %zu, found the end", sc->i);
    char q = sc->p[sc->i];
    if (q != '"' && q != '\'' && q != '`')
        return herr_set(e, HE_FORMAT, "selector: expected a quoted value at offset %zu, found '%c'", sc->i, q);
    sc->i++;
    char *v = xmalloc(sc->n - sc->i + 1);
    size_t len = 0;
    for (;;) {
        if (sc->i >= sc->n) {
            free(v);
            return herr_set(e, HE_FORMAT, "selector: unterminated string starting at offset %zu", start);
        }
        char c = sc->p[sc->i++];
        if (c == q)
            break;
        if (c == '\\' && q != '`') {
            if (sc->i >= sc->n)
                continue;
            char x = sc->p[sc->i++];
            switch (x) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'x': {
                int h = sc->i + 1 < sc->n ? hexval(sc->p[sc->i]) : -1;
                int l = sc->i + 1 < sc->n ? hexval(sc->p[sc->i + 1]) : -1;
                if (h < 0 || l < 0) {
                    free(v);
                    return herr_set(e, HE_FORMAT, "selector: bad \\x escape at offset %zu", sc->i - 2);
                }
                c = (char)(h * 16 + l);
                sc->i += 2;
                break;
            }
            case '\\': case '"': case '\'': c = x; break;
            default:
                /* Keep unknown escapes verbatim: regexes use \. and \d. */
                v[len++] = '\\';
                c = x;
            }
        }
        if (c == 0) {
            free(v);
            return herr_set(e, HE_FORMAT, "selector: NUL byte in string at offset %zu", sc->i - 1);
        }
        v[len++] = c;
    }
    v[len] = 0;
    *out = v;
    return 0;
}

int selector_parse(selector *s, const char *text, size_t n, herr *e)
{
    selector_init(s);
    if (n > SELECTOR_MAX_TEXT)
        return herr_set(e, HE_TOOBIG, "selector: longer than %d bytes", SELECTOR_MAX_TEXT);
    scan sc = {text, n, 0};
    skip_ws(&sc);
    if (sc.i == sc.n)
        return 0;
    if (text[sc.i] != '{')
        return herr_set(e, HE_FORMAT, "selector: expected '{' at offset %zu", sc.i);
    sc.i++;
    for (;;) {
        skip_ws(&sc);
        if (sc.i < sc.n && text[sc.i] == '}') {
            sc.i++;
            break;
        }
        if (sc.i >= sc.n)
            return herr_set(e, HE_FORMAT, "selector: missing '}' at the end");
        if (!is_name_start(text[sc.i]))
            return herr_set(e, HE_FORMAT, "selector: expected a label name at offset %zu, found '%c'", sc.i, text[sc.i]);
        size_t ns = sc.i;
        while (sc.i < sc.n && is_name_char(text[sc.i]))
            sc.i++;
        size_t nl = sc.i - ns;
        if (nl > 1024)
            return herr_set(e, HE_TOOBIG, "selector: label name at offset %zu is too long", ns);
        char name[1025];
        memcpy(name, text + ns, nl);
        name[nl] = 0;
        skip_ws(&sc);
        enum sel_op op;
        if (sc.i + 1 < sc.n && text[sc.i] == '=' && text[sc.i + 1] == '~') {
            op = SEL_RE;
            sc.i += 2;
        } else if (sc.i + 1 < sc.n && text[sc.i] == '!' && text[sc.i + 1] == '=') {
            op = SEL_NE;
            sc.i += 2;
        } else if (sc.i + 1 < sc.n && text[sc.i] == '!' && text[sc.i + 1] == '~') {
            op = SEL_NRE;
            sc.i += 2;
        } else if (sc.i < sc.n && text[sc.i] == '=') {
            op = SEL_EQ;
            sc.i += 1;
        } else {
            return herr_set(e, HE_FORMAT, "selector: expected '=', '!=', '=~' or '!~' after \"%s\" at offset %zu",
                            name, sc.i);
        }
        skip_ws(&sc);
        char *value = NULL;
        int rc = scan_string(&sc, &value, e);
        if (rc)
            return rc;
        rc = selector_add(s, name, op, value, e);
        free(value);
        if (rc)
            return rc;
        skip_ws(&sc);
        if (sc.i < sc.n && text[sc.i] == ',') {
            sc.i++;
            continue;
        }
        if (sc.i < sc.n && text[sc.i] == '}') {
            sc.i++;
            break;
        }
        if (sc.i >= sc.n)
            return herr_set(e, HE_FORMAT, "selector: missing '}' at the end");
        return herr_set(e, HE_FORMAT, "selector: expected ',' or '}' at offset %zu, found '%c'", sc.i, text[sc.i]);
    }
    skip_ws(&sc);
    if (sc.i != sc.n)
        return herr_set(e, HE_FORMAT, "selector: unexpected text after '}' at offset %zu", sc.i);
    return 0;
}

int sel_matcher_match(const sel_matcher *m, const char *v)
{
    if (!v)
        v = "";
    switch (m->op) {
    case SEL_EQ: return strcmp(v, m->value) == 0;
    case SEL_NE: return strcmp(v, m->value) != 0;
    case SEL_RE: return regexec(&m->re, v, 0, NULL, 0) == 0;
    default: return regexec(&m->re, v, 0, NULL, 0) != 0;
    }
}

int selector_match(const selector *s, const char *(*get)(void *arg, const char *name), void *arg)
{
    if (!s)
        return 1;
    for (size_t i = 0; i < s->n; i++)
        if (!sel_matcher_match(&s->m[i], get(arg, s->m[i].name)))
            return 0;
    return 1;
}

/* Appends c to out[*o], escaped so scan_string() reads it back as c. */
static void put_escaped(char *out, size_t out_size, size_t *o, unsigned char c)
{
    char tmp[5];
    size_t k = 0;
    switch (c) {
    case '"': case '\\': tmp[k++] = '\\'; tmp[k++] = (char)c; break;
    case '\n': tmp[k++] = '\\'; tmp[k++] = 'n'; break;
    case '\t': tmp[k++] = '\\'; tmp[k++] = 't'; break;
    case '\r': tmp[k++] = '\\'; tmp[k++] = 'r'; break;
    default:
        if (c < 0x20 || c == 0x7f) {
            tmp[k++] = '\\';
            tmp[k++] = 'x';
            tmp[k++] = "0123456789abcdef"[c >> 4];
            tmp[k++] = "0123456789abcdef"[c & 15];
        } else {
            tmp[k++] = (char)c;
        }
    }
    for (size_t i = 0; i < k; i++, (*o)++)
        if (*o + 1 < out_size) out[*o] = tmp[i];
}

static void put_text(char *out, size_t out_size, size_t *o, const char *t)
{
    for (; *t; t++, (*o)++)
        if (*o + 1 < out_size) out[*o] = *t;
}

int selector_format(const selector *s, char *out, size_t out_size)
{
    size_t o = 0;
    if (!out_size) return HE_TOOBIG;
    put_text(out, out_size, &o, "{");
    for (size_t i = 0; s && i < s->n; i++) {
        if (i) put_text(out, out_size, &o, ", ");
        put_text(out, out_size, &o, s->m[i].name);
        put_text(out, out_size, &o, op_text(s->m[i].op));
        put_text(out, out_size, &o, "\"");
        for (const char *v = s->m[i].value; *v; v++) put_escaped(out, out_size, &o, (unsigned char)*v);
        put_text(out, out_size, &o, "\"");
    }
    put_text(out, out_size, &o, "}");
    out[MIN(o, out_size - 1)] = 0;
    return o < out_size ? 0 : HE_TOOBIG;
}

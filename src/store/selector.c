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
        char *pat = xmalloc(vl + 5);
        memcpy(pat, "^(", 2);
        memcpy(pat + 2, value, vl);
        memcpy(pat + 2 + vl, ")$", 3);
        int rc = regcomp(&m->re, pat, REG_EXTENDED | REG_NOSUB);
        free(pat);
        if (rc != 0) {
            char why[128];
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

int selector_format(const selector *s, char *out, size_t out_size)
{
    size_t o = 0;
    int w = snprintf(out, out_size, "{");
    o += (size_t)MAX(w, 0);
    for (size_t i = 0; s && i < s->n && o < out_size; i++) {
        w = snprintf(out + o, out_size - o, "%s%s%s\"%s\"", i ? ", " : "", s->m[i].name, op_text(s->m[i].op), s->m[i].value);
        o += (size_t)MAX(w, 0);
    }
    if (o < out_size)
        snprintf(out + o, out_size - o, "}");
    return 0;
}

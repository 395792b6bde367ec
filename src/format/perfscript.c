/*
 * perfscript.c: `perf script` text -> profile, reproducing the rules of
 * stackcollapse-perf.pl --pid (brendangregg/FlameGraph) so that our folded
 * output equals its output stack for stack and count for count.
 *
 * The Perl script is a line-by-line state machine driven by three regexes;
 * we emulate each one exactly (including where Perl's backtracking picks a
 * split) with hand-written scanners, linear in the line length:
 *
 *   header  /^(\S.+?)\s+(\d+)\/{0,}(\d+)*\s+/   comm, pid[/tid]
 *   event   /:\s*(\d+)*\s+(\S+):\s*$/         period, event name
 *   frame   /^\s*(\w+)\s*(.+) \((\S*)\)/      pc, function, module
 *
 * State: pname ("comm-pid", unset after each blank line), the period of the
 * last header whose event matched, the event filter (the first event type
 * seen; samples of other events are dropped), and the frames of the current
 * sample (each line's frames in "a->b" inline order, lines leaf first).
 * A blank line ends a sample: its stack is pname;frames root first, counted
 * with the period. Lines starting with '#' are comments.
 *
 * A sample not followed by a blank line at the end of the input is dropped,
 * as the script does (a file cut short ends inside a stack, which would then
 * be recorded with a wrong root). One difference, on purpose: a trailing CR
 * is stripped (CRLF files). docs/formats.md lists the tidying rules.
 */
#include "core/common.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "format/folded.h"
#include "format/perfscript.h"

/* Cap on frames in one sample (the model keeps the leaf-most max_stack_depth of them). */
#define PS_MAX_FRAMES (1 << 20)

static inline int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static inline int is_digit(char c) { return c >= '0' && c <= '9'; }
static inline int is_word(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

typedef struct hdr {
    size_t comm_len;
    const char *pid, *tid;  /* $2, $3 (tid NULL when undefined) */
    size_t pid_len, tid_len;
} hdr;

/* /^(\S.+?)\s+(\d+)\/{0,}(\d+)*\s+/ */
static int match_header(const char *s, size_t n, hdr *h)
{
    if (n < 2 || is_ws(s[0])) return 0;
    for (size_t k = 2; k < n; k++) {
        size_t i = k, d1, d2;
        if (!is_ws(s[k])) continue;
        /* A comm ending inside a whitespace run was tried one position earlier. */
        if (k > 2 && is_ws(s[k - 1])) continue;
        while (i < n && is_ws(s[i])) i++;
        d1 = i;
        while (i < n && is_digit(s[i])) i++;
        if (i == d1) continue;
        h->pid = s + d1;
        h->pid_len = i - d1;
        while (i < n && s[i] == '/') i++;
        d2 = i;
        while (i < n && is_digit(s[i])) i++;
        if (i < n && is_ws(s[i])) {
            h->comm_len = k;
            h->tid = i > d2 ? s + d2 : NULL;
            h->tid_len = i - d2;
            return 1;
        }
    }
    return 0;
}

/* /:\s*(\d+)*\s+(\S+):\s*$/: event name and optional period digits. */
static int match_event(const char *s, size_t n, const char **ev, size_t *ev_len, const char **period, size_t *period_len)
{
    size_t e = n, colon, ts, i;
    while (e > 0 && is_ws(s[e - 1])) e--;
    if (e < 2 || s[e - 1] != ':') return 0;
    colon = e - 1;
    ts = colon;
    while (ts > 0 && !is_ws(s[ts - 1])) ts--;
    if (ts == colon || ts == 0) return 0;  /* \S+ needs a char and \s+ before it */
    *ev = s + ts;
    *ev_len = colon - ts;
    i = ts;
    while (i > 0 && is_ws(s[i - 1])) i--;
    *period = NULL;
    *period_len = 0;
    if (i > 0 && is_digit(s[i - 1])) {
        size_t de = i;
        while (i > 0 && is_digit(s[i - 1])) i--;
        *period = s + i;
        *period_len = de - i;
        while (i > 0 && is_ws(s[i - 1])) i--;
    }
    return i > 0 && s[i - 1] == ':';
}

typedef struct frame_line {
    const char *func, *mod;
    size_t func_len, mod_len;
} frame_line;

/* /^\s*(\w+)\s*(.+) \((\S*)\)/ */
static int match_frame(const char *s, size_t n, frame_line *f)
{
    size_t i = 0, pcs, pce, wse, p, best = (size_t)-1, func_start;
    while (i < n && is_ws(s[i])) i++;
    pcs = i;
    while (i < n && is_word(s[i])) i++;
    pce = i;
    if (pce == pcs) return 0;
    while (i < n && is_ws(s[i])) i++;
    wse = i;
    /* Rightmost " (" whose non-space run contains a ')'. */
    for (p = n >= 2 ? n - 2 : 0; p + 2 <= n && p >= pcs + 2; p--) {
        if (s[p] == ' ' && s[p + 1] == '(') {
            size_t r = p + 2, last = (size_t)-1;
            while (r < n && !is_ws(s[r])) { if (s[r] == ')') last = r; r++; }
            if (last != (size_t)-1) {
                best = p;
                f->mod = s + p + 2;
                f->mod_len = last - (p + 2);
                break;
            }
        }
        if (p == 0) break;
    }
    if (best == (size_t)-1) return 0;
    func_start = MIN(wse, best - 1);
    if (func_start < pcs + 1) return 0;
    f->func = s + func_start;
    f->func_len = best - func_start;
    return 1;
}

typedef struct ps_state {
    profile *p;
    herr *e;
    hmap64 index;
    buf name;            /* scratch for one tidied frame name */
    buf pname;           /* "comm-pid" */
    int have_pname;
    int64_t period;      /* of the last header whose event matched; 0 = unset */
    buf event;           /* the event type kept (the first one seen) */
    int have_event;
    uint32_t *frames;    /* location ids, lines in order, each line's inline list in order */
    size_t n_frames, cap_frames;
    size_t *groups;      /* start of each line's frames in frames[] */
    size_t n_groups, cap_groups;
    uint32_t *stack;     /* root-first scratch */
    size_t cap_stack;
    size_t n_headers, n_samples, line_no;
    int64_t total;
} ps_state;

/* Perl's truthiness of a string: "" and "0" are false. */
static int perl_true(const char *s, size_t n) { return n > 0 && !(n == 1 && s[0] == '0'); }

static int end_sample(ps_state *st)
{
    int rc;
    int32_t loc, node;
    size_t depth = 0;
    if (!st->have_pname || !perl_true(st->pname.data, st->pname.len)) goto reset;
    if ((rc = HGROW(st->stack, st->cap_stack, st->n_frames + 1))) return rc;
    if ((loc = prof_location_for_name(st->p, st->pname.data, st->pname.len)) < 0) return loc;
    st->stack[depth++] = (uint32_t)loc;
    for (size_t g = st->n_groups; g-- > 0;) {
        size_t from = st->groups[g], to = g + 1 < st->n_groups ? st->groups[g + 1] : st->n_frames;
        for (size_t k = from; k < to; k++) st->stack[depth++] = st->frames[k];
    }
    if ((node = prof_stack_root_first(st->p, st->stack, depth)) < 0) return node;
    if ((rc = folded_add_sample(st->p, &st->index, (uint32_t)node, st->period ? st->period : 1, &st->total)))
        return rc == HE_TOOBIG ? herr_set(st->e, rc, "line %zu: too many samples, or the periods add up past 2^63-1", st->line_no) : rc;
    st->n_samples++;
reset:
    st->n_frames = st->n_groups = 0;
    st->have_pname = 0;
    return 0;
}

static int on_header(ps_state *st, const char *s, size_t n, const hdr *h)
{
    const char *ev, *per;
    size_t ev_len, per_len;
    int rc;
    st->n_headers++;
    if (match_event(s, n, &ev, &ev_len, &per, &per_len)) {
        int64_t v = 0;
        for (size_t i = 0; i < per_len; i++) {
            if (v > (INT64_MAX - (per[i] - '0')) / 10)
                return herr_set(st->e, HE_TOOBIG, "line %zu: sample period %.*s is larger than 2^63-1", st->line_no, (int)MIN(per_len, 40), per);
            v = v * 10 + (per[i] - '0');
        }
        st->period = v;  /* perl: $period = $1 (undef when absent), then 1 if false */
        if (!st->have_event) {
            if ((rc = buf_append(&st->event, ev, ev_len))) return rc;
            st->have_event = 1;
        } else if (st->event.len != ev_len || memcmp(st->event.data, ev, ev_len)) {
            return 0;  /* another event type: its sample is skipped */
        }
    }
    buf_reset(&st->pname);
    if ((rc = buf_append(&st->pname, s, h->comm_len)) || (rc = buf_putc(&st->pname, '-'))) return rc;
    if (h->tid && perl_true(h->tid, h->tid_len)) rc = buf_append(&st->pname, h->pid, h->pid_len);
    else rc = buf_putc(&st->pname, '?');
    if (rc) return rc;
    for (size_t i = 0; i < st->pname.len; i++) if (st->pname.data[i] == ' ') st->pname.data[i] = '_';
    st->have_pname = 1;
    return 0;
}

/* Tidies one function name (one element of "a->b") into st->name. */
static int tidy(ps_state *st, const char *f, size_t n, const frame_line *fl, int inlined)
{
    buf *b = &st->name;
    int rc;
    size_t i, cut;
    buf_reset(b);
    if (n == 9 && !memcmp(f, "[unknown]", 9)) {
        if (!(fl->mod_len == 9 && !memcmp(fl->mod, "[unknown]", 9))) {
            const char *m = fl->mod, *slash = memrchr(m, '/', fl->mod_len);
            size_t ml = fl->mod_len;
            if (slash) { ml -= (size_t)(slash + 1 - m); m = slash + 1; }
            if ((rc = buf_putc(b, '[')) || (rc = buf_append(b, m, ml)) || (rc = buf_putc(b, ']'))) return rc;
        } else if ((rc = buf_append(b, f, n))) {
            return rc;
        }
    } else if ((rc = buf_append(b, f, n))) {
        return rc;
    }
    if (!b->data) return buf_append(b, "", 0);
    for (i = 0; i < b->len; i++) if (b->data[i] == ';') b->data[i] = ':';
    /* Go method names ("net/http.(*Client).Do") keep their parentheses. */
    {
        char *go_open = memmem(b->data, b->len, ".(", 2);
        int is_go = 0;
        if (go_open) {
            size_t from = (size_t)(go_open - b->data) + 2;
            is_go = memmem(b->data + from, b->len - from, ").", 2) != NULL;
        }
        if (!is_go) {
            static const char anon[] = "anonymous namespace)";
            for (cut = 0; cut < b->len; cut++) {
                if (b->data[cut] != '(') continue;
                if (b->len - cut - 1 >= sizeof anon - 1 && !memcmp(b->data + cut + 1, anon, sizeof anon - 1)) continue;
                b->len = cut;
                b->data[cut] = 0;
                break;
            }
        }
    }
    for (i = cut = 0; i < b->len; i++) if (b->data[i] != '"' && b->data[i] != '\'') b->data[cut++] = b->data[i];
    b->len = cut;
    b->data[cut] = 0;
    if (inlined && !memmem(b->data, b->len, "_[i]", 4)) return buf_puts(b, "_[i]");
    return 0;
}

/* Tidies one field of a frame line and appends its location to the sample. */
static int add_frame(ps_state *st, const char *f, size_t n, const frame_line *fl, int inlined)
{
    int32_t loc;
    int rc;
    if ((rc = tidy(st, f, n, fl, inlined))) return rc;
    if (st->name.len > st->p->limits.max_string_len)
        return herr_set(st->e, HE_TOOBIG, "line %zu: a frame name is %zu bytes (cap %u)", st->line_no, st->name.len, st->p->limits.max_string_len);
    if (st->n_frames >= PS_MAX_FRAMES)
        return herr_set(st->e, HE_TOOBIG, "line %zu: a sample has more than %d frames", st->line_no, PS_MAX_FRAMES);
    if ((rc = HGROW(st->frames, st->cap_frames, st->n_frames + 1))) return rc;
    if ((loc = prof_location_for_name(st->p, st->name.data, st->name.len)) < 0) return loc;
    st->frames[st->n_frames++] = (uint32_t)loc;
    return 0;
}

static int on_frame(ps_state *st, const frame_line *fl)
{
    const char *f = fl->func;
    size_t n = fl->func_len, k = 0;
    int rc;
    if (!st->have_pname || !perl_true(st->pname.data, st->pname.len)) return 0;
    /* s/\+0x[\da-f]+$// */
    {
        size_t j = n;
        while (j > 0 && (is_digit(f[j - 1]) || (f[j - 1] >= 'a' && f[j - 1] <= 'f'))) j--;
        if (j < n && j >= 3 && f[j - 1] == 'x' && f[j - 2] == '0' && f[j - 3] == '+') n = j - 3;
    }
    if (n > 0 && f[0] == '(') return 0;  /* process names */
    if ((rc = HGROW(st->groups, st->cap_groups, st->n_groups + 1))) return rc;
    st->groups[st->n_groups++] = st->n_frames;
    /*
     * split /->/: fields are emitted in order, except that empty ones wait
     * until a non-empty field follows (Perl's split drops trailing empties).
     */
    {
        size_t pending_empty = 0;
        while (1) {
            const char *arrow = memmem(f, n, "->", 2);
            size_t part = arrow ? (size_t)(arrow - f) : n;
            if (part == 0) {
                pending_empty++;
            } else {
                for (; pending_empty; pending_empty--)
                    if ((rc = add_frame(st, f, 0, fl, k++ > 0))) return rc;
                if ((rc = add_frame(st, f, part, fl, k++ > 0))) return rc;
            }
            if (!arrow) break;
            f = arrow + 2;
            n -= part + 2;
        }
    }
    return 0;
}

int perfscript_sniff(const char *data, size_t n)
{
    const char *s = data, *end = data + MIN(n, (size_t)64 * 1024);
    int after_header = 0, lines = 0;
    while (s < end && lines < 200) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = (size_t)((nl ? nl : end) - s);
        hdr h;
        frame_line fl;
        lines++;
        if (len && s[len - 1] == '\r') len--;
        if (len == 0 || s[0] == '#') {
            after_header = 0;
        } else if (after_header) {
            return match_frame(s, len, &fl);
        } else if (match_header(s, len, &h)) {
            after_header = 1;
        } else {
            return 0;
        }
        if (!nl) break;
        s = nl + 1;
    }
    return 0;
}

int perfscript_parse(profile *p, const char *data, size_t n, herr *e)
{
    ps_state st;
    const char *s = data, *end = data + n;
    size_t first_bad = 0;
    int rc = 0;

    memset(&st, 0, sizeof st);
    st.p = p;
    st.e = e;
    hmap64_init(&st.index);
    buf_init(&st.name, 0);
    buf_init(&st.pname, 4096);
    buf_init(&st.event, 4096);
    if (p->n_types == 0 && (rc = prof_add_type(p, "samples", "count")) < 0) goto out;
    rc = 0;
    if (n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) s += 3;  /* a UTF-8 BOM is not part of a comm */
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = (size_t)((nl ? nl : end) - s);
        hdr h;
        frame_line fl;
        st.line_no++;
        if (len && s[len - 1] == '\r') len--;
        if (len && s[0] == '#') goto next;
        if (memchr(s, 0, len)) {
            rc = herr_set(e, HE_FORMAT, "line %zu contains a NUL byte (binary data, not perf script text)", st.line_no);
            goto out;
        }
        if (!utf8_valid(s, len)) {
            rc = herr_set(e, HE_UTF8, "line %zu is not valid UTF-8 (byte %zu of the line)", st.line_no,
                          utf8_first_invalid(s, len) + 1);
            goto out;
        }
        if (len == 0) rc = end_sample(&st);
        else if (match_header(s, len, &h)) rc = on_header(&st, s, len, &h);
        else if (match_frame(s, len, &fl)) rc = on_frame(&st, &fl);
        else if (!first_bad) first_bad = st.line_no;
        if (rc) goto out;
    next:
        if (!nl) break;
        s = nl + 1;
    }
    /*
     * A sample not ended by a blank line is dropped, as the script does: in
     * practice it is a file cut short, and its stack may be incomplete.
     */
    if (st.n_headers == 0) {
        if (first_bad)
            rc = herr_set(e, HE_FORMAT, "not perf script output: no sample header ('comm pid ... event:') found; line %zu is not one", first_bad);
        else
            rc = herr_set(e, HE_FORMAT, "not perf script output: no sample header ('comm pid ... event:') found");
    }
out:
    if (rc == -ENOMEM) herr_set(e, rc, "out of memory at line %zu", st.line_no);
    else if (rc) herr_set(e, rc, "line %zu: %s", st.line_no, hearth_strerror(rc));
    free(st.frames); free(st.groups); free(st.stack);
    buf_release(&st.name);
    buf_release(&st.pname);
    buf_release(&st.event);
    hmap64_release(&st.index);
    return rc;
}

/*
 * folded.c: folded stacks ("a;b;c 12") read and written, plus the small
 * helpers the other text codecs share (UTF-16 transcoding, summing samples
 * per stack).
 *
 * Reading: the input is made UTF-8 first (a UTF-16 BOM triggers
 * transcoding; a UTF-8 BOM is skipped), then split into lines. A stack line
 * ends in one space and a decimal count; everything before the last space is
 * the stack, split on ';'. Empty frames (";;") are dropped. Lines that do not
 * end in " COUNT" are skipped (comments, headers, junk), as flamegraph.pl
 * and speedscope do; a line that does end in a count is a stack even if it
 * starts with '#' (so every name we write reads back). If no line at all is
 * a stack the input is rejected, naming the first offending non-comment
 * line. Samples are aggregated per
 * stack node while reading (hmap stack -> sample), so a file of N lines
 * with D distinct stacks holds D samples.
 *
 * Writing: sums per stack node, then per frame-name sequence (two nodes may
 * print the same, e.g. two addresses in one function), sorted bytewise.
 * Invariant of the output: every line parses back to the same stack/count.
 */
#include "core/common.h"
#include "core/json.h"
#include "core/mem.h"
#include "format/folded.h"

#define FRAME_NAME_MAX (64 * 1024 + 1)
/* Cap on frames in one input stack (the model keeps the leaf-most max_stack_depth of them). */
#define FOLDED_MAX_FRAMES (1 << 20)

int folded_text_utf8(const char *data, size_t n, buf *out, herr *e)
{
    const unsigned char *u = (const unsigned char *)data;
    int be;
    size_t i;
    int rc;
    if (n < 2 || !((u[0] == 0xff && u[1] == 0xfe) || (u[0] == 0xfe && u[1] == 0xff))) return 0;
    be = u[0] == 0xfe;
    if (n % 2) return herr_set(e, HE_UTF8, "UTF-16 text has an odd number of bytes (%zu)", n);
    if ((rc = buf_reserve(out, n / 2 * 3)) && rc != HE_TOOBIG) return herr_set(e, rc, "out of memory transcoding UTF-16");
    for (i = 2; i < n; i += 2) {
        uint32_t c = be ? (uint32_t)(u[i] << 8 | u[i + 1]) : (uint32_t)(u[i + 1] << 8 | u[i]);
        char enc[4];
        size_t len;
        if (c >= 0xd800 && c <= 0xdbff) {
            uint32_t lo;
            if (i + 3 >= n) return herr_set(e, HE_UTF8, "UTF-16 text ends inside a surrogate pair (byte %zu)", i);
            lo = be ? (uint32_t)(u[i + 2] << 8 | u[i + 3]) : (uint32_t)(u[i + 3] << 8 | u[i + 2]);
            if (lo < 0xdc00 || lo > 0xdfff) return herr_set(e, HE_UTF8, "UTF-16 text has a lone high surrogate at byte %zu", i);
            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
            i += 2;
        } else if (c >= 0xdc00 && c <= 0xdfff) {
            return herr_set(e, HE_UTF8, "UTF-16 text has a lone low surrogate at byte %zu", i);
        }
        if (c < 0x80) { enc[0] = (char)c; len = 1; }
        else if (c < 0x800) { enc[0] = (char)(0xc0 | c >> 6); enc[1] = (char)(0x80 | (c & 0x3f)); len = 2; }
        else if (c < 0x10000) {
            enc[0] = (char)(0xe0 | c >> 12); enc[1] = (char)(0x80 | ((c >> 6) & 0x3f));
            enc[2] = (char)(0x80 | (c & 0x3f)); len = 3;
        } else {
            enc[0] = (char)(0xf0 | c >> 18); enc[1] = (char)(0x80 | ((c >> 12) & 0x3f));
            enc[2] = (char)(0x80 | ((c >> 6) & 0x3f)); enc[3] = (char)(0x80 | (c & 0x3f)); len = 4;
        }
        if ((rc = buf_append(out, enc, len)))
            return herr_set(e, rc, rc == HE_TOOBIG ? "transcoded UTF-16 text is larger than the cap" : "out of memory transcoding UTF-16");
    }
    return 1;
}

int folded_add_sample(profile *p, hmap64 *index, uint32_t stack, int64_t v, int64_t *total)
{
    uint32_t idx = hmap64_get(index, stack);
    if (v < 0 || __builtin_add_overflow(*total, v, total)) return HE_TOOBIG;
    if (idx != HMAP_EMPTY) {
        p->values[(size_t)idx * p->n_types] += v;  /* <= *total: cannot overflow */
        return 0;
    }
    {
        int64_t vals[8] = {0};
        int64_t i;
        if (p->n_types == 0 || p->n_types > 8) return HE_USAGE;
        vals[0] = v;
        i = prof_sample_add(p, stack, vals, NULL, 0);
        if (i < 0) return (int)i;
        if (i >= (int64_t)HMAP_EMPTY) return HE_TOOBIG;
        return hmap64_put(index, stack, (uint32_t)i);
    }
}

/* Parses a decimal count at s[0..n) (all digits). 0, or HE_FORMAT / HE_TOOBIG. */
static int parse_count(const char *s, size_t n, int64_t *out)
{
    uint64_t v = 0;
    if (n == 0) return HE_FORMAT;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return HE_FORMAT;
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(s[i] - '0')) / 10) return HE_TOOBIG;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = (int64_t)v;
    return 0;
}

/* [-+]digits[.digits] or digits.digits: a number, but not a folded count. */
static int looks_like_number(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    }
    return digits > 0 && i == n;
}

static int is_comment(const char *s, size_t n)
{
    return (n >= 1 && s[0] == '#') || (n >= 2 && s[0] == '/' && s[1] == '/');
}

int folded_parse(profile *p, const char *data, size_t n, herr *e)
{
    buf utf8 = BUF_INIT;
    hmap64 index;
    strtab frames;           /* frame text -> dense id, a cache in front of prof_location_for_name */
    uint32_t *locs = NULL, *loc_of = NULL;
    size_t cap_loc_of = 0;
    size_t cap_locs = 0, line_no = 0, n_stacks = 0, first_bad = 0;
    int64_t total = 0;
    const char *s, *end;
    int rc;

    buf_init(&utf8, n / 2 * 3 + 16);
    rc = folded_text_utf8(data, n, &utf8, e);
    if (rc < 0) { buf_release(&utf8); return rc; }
    if (rc == 1) { data = utf8.data; n = utf8.len; }
    if (n >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) { data += 3; n -= 3; }

    hmap64_init(&index);
    strtab_init(&frames);
    if (p->n_types == 0 && (rc = prof_add_type(p, "samples", "count")) < 0) goto fail_oom;
    rc = 0;
    s = data;
    end = data + n;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end, *sp, *f;
        size_t len, depth = 0;
        int64_t count;
        int32_t stack;
        line_no++;
        len = (size_t)(le - s);
        if (len && s[len - 1] == '\r') len--;
        if (len == 0) goto next;
        sp = memrchr(s, ' ', len);
        if (!sp || sp == s) { if (!first_bad && !is_comment(s, len)) first_bad = line_no; goto next; }
        rc = parse_count(sp + 1, (size_t)(s + len - sp - 1), &count);
        if (rc == HE_TOOBIG) {
            rc = herr_set(e, HE_TOOBIG, "line %zu: count %.*s is larger than 2^63-1", line_no,
                          (int)MIN((size_t)(s + len - sp - 1), 40), sp + 1);
            goto fail;
        }
        if (rc && looks_like_number(sp + 1, (size_t)(s + len - sp - 1)) && !is_comment(s, len)) {
            /* A stack with a count we cannot represent: say so rather than drop it. */
            rc = herr_set(e, HE_UNSUPPORTED, "line %zu: count %.*s is not a non-negative integer", line_no,
                          (int)MIN((size_t)(s + len - sp - 1), 40), sp + 1);
            goto fail;
        }
        if (rc) { rc = 0; if (!first_bad && !is_comment(s, len)) first_bad = line_no; goto next; }
        /* Frames: sp marks the end of the stack text. */
        for (f = s; f < sp;) {
            const char *semi = memchr(f, ';', (size_t)(sp - f));
            const char *fe = semi ? semi : sp;
            if (fe > f) {
                int32_t loc;
                if ((size_t)(fe - f) > p->limits.max_string_len) {
                    rc = herr_set(e, HE_TOOBIG, "line %zu: a frame name is %zu bytes (cap %u)", line_no,
                                  (size_t)(fe - f), p->limits.max_string_len);
                    goto fail;
                }
                if (depth >= FOLDED_MAX_FRAMES) {
                    rc = herr_set(e, HE_TOOBIG, "line %zu has more than %d frames", line_no, FOLDED_MAX_FRAMES);
                    goto fail;
                }
                if (depth == cap_locs && (rc = HGROW(locs, cap_locs, depth + 1))) goto fail_oom;
                /* One probe of our own table per frame instead of prof's three (string, function, location). */
                {
                    uint32_t before = frames.count;
                    int32_t fid = strtab_intern(&frames, f, (size_t)(fe - f));
                    if (fid < 0) { rc = fid; goto fail_oom; }
                    if (frames.count > before) {
                        /* Text checks once per distinct frame: the hot path only hashes. */
                        if (memchr(f, 0, (size_t)(fe - f))) {
                            rc = herr_set(e, HE_FORMAT, "line %zu contains a NUL byte (binary data, not folded stacks)", line_no);
                            goto fail;
                        }
                        if (!utf8_valid(f, (size_t)(fe - f))) {
                            rc = herr_set(e, HE_UTF8, "line %zu is not valid UTF-8 (byte %zu of the line)", line_no,
                                          (size_t)(f - s) + utf8_first_invalid(f, (size_t)(fe - f)) + 1);
                            goto fail;
                        }
                        if ((rc = HGROW(loc_of, cap_loc_of, (size_t)fid + 1))) goto fail_oom;
                        if ((loc = prof_location_for_name(p, f, (size_t)(fe - f))) < 0) { rc = loc; goto fail_oom; }
                        loc_of[fid] = (uint32_t)loc;
                    }
                    locs[depth++] = loc_of[fid];
                }
            }
            f = fe + 1;
        }
        if (depth == 0) { if (!first_bad) first_bad = line_no; goto next; }
        if ((stack = prof_stack_root_first(p, locs, depth)) < 0) { rc = stack; goto fail_oom; }
        if ((rc = folded_add_sample(p, &index, (uint32_t)stack, count, &total))) {
            if (rc == HE_TOOBIG) rc = herr_set(e, rc, "line %zu: too many samples, or the counts add up past 2^63-1", line_no);
            goto fail_oom;
        }
        n_stacks++;
    next:
        s = le + 1;
    }
    if (n_stacks == 0) {
        if (first_bad)
            rc = herr_set(e, HE_FORMAT, "no folded stacks found: line %zu is not 'frame;frame;... COUNT'", first_bad);
        else
            rc = herr_set(e, HE_FORMAT, "no folded stacks found (the input is empty or only comments)");
        goto fail;
    }
    rc = 0;
    goto out;
fail_oom:
    if (rc == -ENOMEM) herr_set(e, rc, "out of memory at line %zu", line_no);
    else herr_set(e, rc, "line %zu: %s", line_no, hearth_strerror(rc));
fail:
out:
    free(locs);
    free(loc_of);
    strtab_release(&frames);
    hmap64_release(&index);
    buf_release(&utf8);
    return rc;
}

/* Appends a frame name with ';' -> ':' and CR/LF -> ' ' so the line parses back. */
static int put_frame(buf *b, const char *name)
{
    size_t n = strlen(name), start = b->len;
    int rc = buf_append(b, name, n);
    if (rc) return rc;
    for (size_t i = start; i < b->len; i++) {
        if (b->data[i] == ';') b->data[i] = ':';
        else if (b->data[i] == '\n' || b->data[i] == '\r') b->data[i] = ' ';
    }
    return 0;
}

static int cmp_ids(const void *a, const void *b, void *arg)
{
    const strtab *sort_tab = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint32_t lx = strtab_len(sort_tab, x), ly = strtab_len(sort_tab, y);
    int c = memcmp(strtab_get(sort_tab, x), strtab_get(sort_tab, y), MIN(lx, ly));
    if (c) return c;
    return lx < ly ? -1 : lx > ly;
}

int folded_write(const profile *p, int type, buf *out, herr *e)
{
    int64_t *node_sum = NULL, *line_sum = NULL;
    uint32_t *locs = NULL, *order = NULL;
    size_t cap_locs = 0, cap_line_sum = 0, start_len = out->len;
    char *name = NULL;
    buf line = BUF_INIT;
    strtab lines;
    int rc = 0;

    if (type < 0 || (uint32_t)type >= p->n_types)
        return herr_set(e, HE_USAGE, "sample type %d out of range (profile has %u)", type, p->n_types);
    strtab_init(&lines);
    buf_init(&line, 0);
    node_sum = calloc(p->n_nodes ? p->n_nodes : 1, sizeof *node_sum);
    name = malloc(FRAME_NAME_MAX);
    if (!node_sum || !name) { rc = -ENOMEM; goto out; }
    for (size_t i = 0; i < p->n_samples; i++) {
        uint32_t st = p->samples[i].stack;
        if (st < p->n_nodes && __builtin_add_overflow(node_sum[st], p->values[i * p->n_types + (size_t)type], &node_sum[st])) {
            rc = HE_TOOBIG;
            goto out;
        }
    }
    for (uint32_t nd = 1; nd < p->n_nodes; nd++) {
        size_t depth;
        int32_t id;
        if (!node_sum[nd]) continue;
        depth = prof_stack_locations(p, nd, locs, cap_locs);
        if (depth > cap_locs) {
            if ((rc = HGROW(locs, cap_locs, depth))) goto out;
            depth = prof_stack_locations(p, nd, locs, cap_locs);
        }
        buf_reset(&line);
        for (size_t d = depth; d-- > 0;) {
            uint32_t loc = locs[d];
            uint32_t nl = loc < p->n_locations ? p->locations[loc].n_lines : 0;
            if (nl == 0) nl = 1; /* address-only: one frame named by address */
            for (uint32_t k = nl; k-- > 0;) {
                if (line.len && (rc = buf_putc(&line, ';'))) goto out;
                if ((rc = put_frame(&line, prof_frame_name(p, loc, k, name, FRAME_NAME_MAX)))) goto out;
            }
        }
        if (line.len == 0) continue;
        if ((id = strtab_intern(&lines, line.data, line.len)) < 0) { rc = id; goto out; }
        if ((size_t)id >= cap_line_sum) {
            size_t old = cap_line_sum;
            if ((rc = HGROW(line_sum, cap_line_sum, (size_t)id + 1))) goto out;
            memset(line_sum + old, 0, (cap_line_sum - old) * sizeof *line_sum);
        }
        if (__builtin_add_overflow(line_sum[id], node_sum[nd], &line_sum[id])) { rc = HE_TOOBIG; goto out; }
    }
    order = malloc((lines.count ? lines.count : 1) * sizeof *order);
    if (!order) { rc = -ENOMEM; goto out; }
    for (uint32_t i = 0; i < lines.count; i++) order[i] = i;
    qsort_r(order, lines.count, sizeof *order, cmp_ids, &lines);
    for (uint32_t i = 0; i < lines.count; i++) {
        uint32_t id = order[i];
        if (!line_sum[id]) continue;
        /* A first name starting with U+FEFF would be read back as a BOM: write a real BOM before it. */
        if (out->len == start_len && start_len == 0 && strtab_len(&lines, id) >= 3 &&
            !memcmp(strtab_get(&lines, id), "\xef\xbb\xbf", 3) && (rc = buf_append(out, "\xef\xbb\xbf", 3)))
            goto out;
        if ((rc = buf_append(out, strtab_get(&lines, id), strtab_len(&lines, id))) ||
            (rc = buf_putc(out, ' ')) || (rc = buf_put_i64(out, line_sum[id])) || (rc = buf_putc(out, '\n')))
            goto out;
    }
out:
    if (rc) {
        out->len = start_len;
        if (out->data) out->data[start_len] = 0;
        herr_set(e, rc, rc == HE_TOOBIG ? "folded output is larger than its cap, or a stack's total passes 2^63-1" : "out of memory writing folded stacks");
    }
    free(node_sum); free(line_sum); free(locs); free(order); free(name);
    buf_release(&line);
    strtab_release(&lines);
    return rc;
}

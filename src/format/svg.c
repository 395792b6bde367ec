/*
 * svg.c: flame tree -> interactive SVG flame graph (see svg.h).
 *
 * Layout follows flamegraph.pl: the root ("all") at the bottom, one 16 px
 * row per depth, x proportional to the running sum of sibling totals, so a
 * frame's width is its share of the whole. Frames narrower than min_width
 * pixels are left out with their subtrees (they would be invisible; this
 * keeps big profiles small). Each frame is
 *   <g class="f" n="NAME"><title>hover text</title><rect/><text/></g>
 * and the inline script (no network, no libraries) does hover details,
 * click-to-zoom (remembering original geometry in ox/ow attributes), and
 * regex search, whose "Matched" share is the union of matching frames'
 * widths over the total (nested matches counted once).
 *
 * All text from the profile is XML-escaped; invalid UTF-8 and control
 * characters become U+FFFD/'?', so the document is always well-formed.
 * Colours are a hash of the name (stable between runs); in a diff tree
 * (widths from the right side) red means the frame's share of the total
 * grew, blue that it shrank, white unchanged.
 */
#include <math.h>

#include "core/common.h"
#include "core/json.h"
#include "core/mem.h"
#include "format/svg.h"

#define FRAME_H 16
#define FONT_SIZE 12
#define XPAD 10
#define YPAD_TOP 50
#define YPAD_BOTTOM 34

/* Appends s[0..n) escaped for XML text and attribute values. */
static int xml_text(buf *b, const char *s, size_t n)
{
    int rc = 0;
    size_t i = 0;
    while (i < n && !rc) {
        size_t ok = utf8_first_invalid(s + i, n - i);
        size_t j = i, run = i;
        for (; j < i + ok && !rc; j++) {
            const char *rep = NULL;
            unsigned char c = (unsigned char)s[j];
            switch (c) {
            case '&': rep = "&amp;"; break;
            case '<': rep = "&lt;"; break;
            case '>': rep = "&gt;"; break;
            case '"': rep = "&quot;"; break;
            case '\'': rep = "&#39;"; break;
            default:
                if (c < 0x20 && c != '\t') rep = "?";
            }
            if (rep) {
                if (j > run) rc = buf_append(b, s + run, j - run);
                if (!rc) rc = buf_puts(b, rep);
                run = j + 1;
            }
        }
        if (!rc && j > run) rc = buf_append(b, s + run, j - run);
        i += ok;
        if (i < n && !rc) { rc = buf_puts(b, "\xef\xbf\xbd"); i++; }
    }
    return rc;
}

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static const char script[] =
    "<script type=\"text/ecmascript\"><![CDATA[\n"
    "'use strict';\n"
    "var svg = document.documentElement, W = +svg.getAttribute('width'), XP = " "10" ", FW = 0.59 * " "12" ";\n"
    "var frames = [], details, matched, unzoomBtn, searchBtn, searching = null, total;\n"
    "function init() {\n"
    "  details = document.getElementById('details').firstChild;\n"
    "  matched = document.getElementById('matched').firstChild;\n"
    "  unzoomBtn = document.getElementById('unzoom');\n"
    "  searchBtn = document.getElementById('search');\n"
    "  total = W - 2 * XP;\n"
    "  var gs = document.getElementsByClassName('f');\n"
    "  for (var i = 0; i < gs.length; i++) {\n"
    "    var g = gs[i], r = g.getElementsByTagName('rect')[0];\n"
    "    frames.push({g: g, r: r, t: g.getElementsByTagName('text')[0], n: g.getAttribute('n'),\n"
    "                 x: +r.getAttribute('x'), w: +r.getAttribute('width'), y: +r.getAttribute('y'),\n"
    "                 fill: r.getAttribute('fill')});\n"
    "  }\n"
    "  frames.forEach(function (f) { fit(f, f.x, f.w); });\n"
    "}\n"
    "function fit(f, x, w) {\n"
    "  f.r.setAttribute('x', x); f.r.setAttribute('width', w);\n"
    "  f.t.setAttribute('x', x + 3);\n"
    "  var max = Math.floor((w - 6) / FW);\n"
    "  f.t.textContent = max < 3 ? '' : (f.n.length <= max ? f.n : f.n.substring(0, max - 2) + '..');\n"
    "}\n"
    "function find(e) { var n = e.target; while (n && n !== svg) { if (n.classList && n.classList.contains('f')) return n; n = n.parentNode; } return null; }\n"
    "function byG(g) { for (var i = 0; i < frames.length; i++) if (frames[i].g === g) return frames[i]; return null; }\n"
    "svg.addEventListener('mouseover', function (e) { var g = find(e); if (g) details.nodeValue = g.getElementsByTagName('title')[0].textContent; });\n"
    "svg.addEventListener('mouseout', function (e) { if (find(e)) details.nodeValue = ' '; });\n"
    "svg.addEventListener('click', function (e) {\n"
    "  var g = find(e);\n"
    "  if (g) { zoom(byG(g)); return; }\n"
    "  if (e.target.id === 'unzoom') unzoom();\n"
    "  else if (e.target.id === 'search') searchPrompt();\n"
    "});\n"
    "function zoom(z) {\n"
    "  var ratio = total / z.w, eps = 1e-6;\n"
    "  unzoomBtn.setAttribute('opacity', '1');\n"
    "  frames.forEach(function (f) {\n"
    "    f.g.setAttribute('opacity', '1');\n"
    "    if (f.y > z.y && f.x <= z.x + eps && f.x + f.w >= z.x + z.w - eps) {\n"
    "      f.g.style.display = ''; f.g.setAttribute('opacity', '0.5'); fit(f, XP, total);\n"
    "    } else if (f.y <= z.y && f.x >= z.x - eps && f.x + f.w <= z.x + z.w + eps) {\n"
    "      f.g.style.display = ''; fit(f, XP + (f.x - z.x) * ratio, f.w * ratio);\n"
    "    } else {\n"
    "      f.g.style.display = 'none';\n"
    "    }\n"
    "  });\n"
    "}\n"
    "function unzoom() {\n"
    "  unzoomBtn.setAttribute('opacity', '0');\n"
    "  frames.forEach(function (f) { f.g.style.display = ''; f.g.setAttribute('opacity', '1'); fit(f, f.x, f.w); });\n"
    "}\n"
    "function search(term) {\n"
    "  var re;\n"
    "  try { re = new RegExp(term); } catch (err) { matched.nodeValue = 'bad regex: ' + err.message; return; }\n"
    "  searching = term;\n"
    "  var spans = [];\n"
    "  frames.forEach(function (f) {\n"
    "    if (re.test(f.n)) { f.r.setAttribute('fill', 'rgb(230,0,230)'); spans.push([f.x, f.x + f.w]); }\n"
    "    else f.r.setAttribute('fill', f.fill);\n"
    "  });\n"
    "  spans.sort(function (a, b) { return a[0] - b[0]; });\n"
    "  var sum = 0, end = -1;\n"
    "  spans.forEach(function (s) { if (s[0] >= end) { sum += s[1] - s[0]; end = s[1]; } else if (s[1] > end) { sum += s[1] - end; end = s[1]; } });\n"
    "  matched.nodeValue = 'Matched: ' + (100 * sum / total).toFixed(1) + '%';\n"
    "  searchBtn.firstChild.nodeValue = 'Reset Search';\n"
    "}\n"
    "function resetSearch() {\n"
    "  searching = null;\n"
    "  frames.forEach(function (f) { f.r.setAttribute('fill', f.fill); });\n"
    "  matched.nodeValue = ' ';\n"
    "  searchBtn.firstChild.nodeValue = 'Search';\n"
    "}\n"
    "function searchPrompt() {\n"
    "  if (searching !== null) { resetSearch(); return; }\n"
    "  var term = prompt('Search for (regular expression):', '');\n"
    "  if (term) search(term);\n"
    "}\n"
    "window.addEventListener('keydown', function (e) {\n"
    "  if ((e.ctrlKey || e.metaKey) && e.key === 'f' || e.key === 'F3') { e.preventDefault(); searching = null; searchPrompt(); }\n"
    "  else if (e.key === 'Escape') { resetSearch(); unzoom(); }\n"
    "});\n"
    "window.addEventListener('load', init);\n"
    "]]></script>\n";

typedef struct walk_item {
    uint32_t node, depth;
    int64_t x;  /* ticks from the left */
} walk_item;

static void fmt_value(char *out, size_t n, int64_t v)
{
    /* 1234567 -> "1,234,567" */
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%" PRId64, v), neg = v < 0, o = 0;
    for (int i = 0; i < len && (size_t)o + 2 < n; i++) {
        out[o++] = tmp[i];
        if (i >= neg && i < len - 1 && (len - 1 - i) % 3 == 0) out[o++] = ',';
    }
    out[o] = 0;
}

int svg_write(flame_tree *t, const svg_opts *o, buf *out)
{
    uint32_t width = o && o->width ? o->width : 1200;
    double min_w = o && o->min_width > 0 ? o->min_width : 0.1;
    const char *title = o && o->title ? o->title : "Flame Graph";
    const char *units = o && o->units ? o->units : "samples";
    int diff = t->is_diff, rc = 0;
    int side = diff ? 1 : 0;
    int64_t total = t->n_nodes ? (side ? t->nodes[0].total2 : t->nodes[0].total) : 0;
    int64_t total_l = t->n_nodes ? t->nodes[0].total : 0;
    size_t start_len = out->len, cap = 0, n = 0;
    walk_item *stack = NULL;
    uint32_t max_depth = 0, height;
    double scale, max_delta = 0;

    flame_sort(t);
    /* First pass: depth of what is drawn, and the largest share change (diff colours). */
    if (total > 0) {
        scale = (double)(width - 2 * XPAD) / (double)total;
        if ((rc = HGROW(stack, cap, 1))) goto out;
        stack[n++] = (walk_item){0, 0, 0};
        while (n) {
            walk_item it = stack[--n];
            const flame_node *nd = &t->nodes[it.node];
            if (it.depth > max_depth) max_depth = it.depth;
            if (diff) {
                double d = (double)nd->total2 / (double)total - (total_l ? (double)nd->total / (double)total_l : 0);
                if (fabs(d) > max_delta) max_delta = fabs(d);
            }
            for (uint32_t c = nd->first_child; c; c = t->nodes[c].next_sibling) {
                int64_t v = side ? t->nodes[c].total2 : t->nodes[c].total;
                if ((double)v * scale < min_w) continue;
                if ((rc = HGROW(stack, cap, n + 1))) goto out;
                stack[n++] = (walk_item){c, it.depth + 1, 0};
            }
        }
    } else {
        scale = 0;
    }
    height = (max_depth + 1) * FRAME_H + YPAD_TOP + YPAD_BOTTOM;

    rc = buf_printf(out,
                    "<?xml version=\"1.0\" standalone=\"no\"?>\n"
                    "<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n"
                    "<svg version=\"1.1\" width=\"%u\" height=\"%u\" viewBox=\"0 0 %u %u\" "
                    "xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n"
                    "<defs><linearGradient id=\"bg\" y1=\"0\" y2=\"1\" x1=\"0\" x2=\"0\">"
                    "<stop stop-color=\"#eeeeee\" offset=\"5%%\"/><stop stop-color=\"#eeeeb0\" offset=\"95%%\"/>"
                    "</linearGradient></defs>\n"
                    "<style type=\"text/css\">text { font-family: Verdana, sans-serif; font-size: %dpx; fill: rgb(0,0,0); } "
                    "g.f:hover rect { stroke: black; stroke-width: 0.5; cursor: pointer; } "
                    "#title { text-anchor: middle; font-size: 17px; } #subtitle { text-anchor: middle; fill: rgb(160,160,160); } "
                    "#search, #unzoom { cursor: pointer; } #matched { text-anchor: end; }</style>\n",
                    width, height, width, height, FONT_SIZE);
    if (!rc) rc = buf_puts(out, script);
    if (!rc) rc = buf_printf(out, "<rect x=\"0\" y=\"0\" width=\"%u\" height=\"%u\" fill=\"url(#bg)\"/>\n"
                                  "<text id=\"title\" x=\"%u\" y=\"24\">", width, height, width / 2);
    if (!rc) rc = xml_text(out, title, strlen(title));
    if (!rc) rc = buf_puts(out, "</text>\n");
    if (!rc && o && o->subtitle) {
        rc = buf_printf(out, "<text id=\"subtitle\" x=\"%u\" y=\"42\">", width / 2);
        if (!rc) rc = xml_text(out, o->subtitle, strlen(o->subtitle));
        if (!rc) rc = buf_puts(out, "</text>\n");
    }
    if (!rc) rc = buf_printf(out,
                             "<text id=\"details\" x=\"%d\" y=\"%u\"> </text>\n"
                             "<text id=\"unzoom\" x=\"%d\" y=\"24\" opacity=\"0\">Reset Zoom</text>\n"
                             "<text id=\"search\" x=\"%u\" y=\"24\">Search</text>\n"
                             "<text id=\"matched\" x=\"%u\" y=\"%u\"> </text>\n",
                             XPAD, height - 10, XPAD, width - XPAD - 100, width - XPAD, height - 10);
    if (rc) goto out;
    if (total <= 0) {
        rc = buf_printf(out, "<text x=\"%u\" y=\"%u\" style=\"text-anchor: middle\">no samples</text>\n</svg>\n", width / 2, height / 2);
        goto out;
    }

    n = 0;
    stack[n++] = (walk_item){0, 0, 0};
    rc = buf_puts(out, "<g id=\"frames\">\n");
    while (n && !rc) {
        walk_item it = stack[--n];
        const flame_node *nd = &t->nodes[it.node];
        const char *name = it.node == 0 ? "all" : strtab_get(&t->names, nd->name);
        size_t name_len = it.node == 0 ? 3 : strtab_len(&t->names, nd->name);
        int64_t v = side ? nd->total2 : nd->total;
        double x = XPAD + (double)it.x * scale, w = (double)v * scale;
        double y = (double)height - YPAD_BOTTOM - (double)(it.depth + 1) * FRAME_H;
        char val[40], fill[40];
        int64_t cx = it.x;

        if (diff) {
            double d = (double)nd->total2 / (double)total - (total_l ? (double)nd->total / (double)total_l : 0);
            int shade = max_delta > 0 ? (int)(220.0 * fabs(d) / max_delta) : 0;
            if (d > 0) snprintf(fill, sizeof fill, "rgb(255,%d,%d)", 255 - shade, 255 - shade);
            else snprintf(fill, sizeof fill, "rgb(%d,%d,255)", 255 - shade, 255 - shade);
        } else {
            uint32_t h = name_hash(name, name_len);
            snprintf(fill, sizeof fill, "rgb(%u,%u,%u)", 205 + (h & 0xff) % 50, (h >> 8 & 0xff) * 230 / 255, (h >> 16 & 0xff) * 55 / 255);
        }
        rc = buf_puts(out, "<g class=\"f\" n=\"");
        if (!rc) rc = xml_text(out, name, name_len);
        if (!rc) rc = buf_puts(out, "\"><title>");
        if (!rc) rc = xml_text(out, name, name_len);
        if (!rc && nd->file && it.node) {
            rc = buf_puts(out, " (");
            if (!rc) rc = xml_text(out, strtab_get(&t->files, nd->file), strtab_len(&t->files, nd->file));
            if (!rc && nd->line) rc = buf_printf(out, ":%" PRId64, nd->line);
            if (!rc) rc = buf_putc(out, ')');
        }
        fmt_value(val, sizeof val, v);
        if (!rc && diff) {
            char before[40];
            fmt_value(before, sizeof before, nd->total);
            rc = buf_printf(out, " (before %s, after %s %s; share %+.2f%%)", before, val, units,
                            100.0 * ((double)nd->total2 / (double)total - (total_l ? (double)nd->total / (double)total_l : 0)));
        } else if (!rc) {
            rc = buf_printf(out, " (%s %s, %.2f%%)", val, units, 100.0 * (double)v / (double)total);
        }
        if (!rc) rc = buf_printf(out, "</title><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\" rx=\"2\" ry=\"2\"/>"
                                      "<text x=\"%.1f\" y=\"%.1f\"></text></g>\n",
                                 x, y, w, FRAME_H - 1, fill, x + 3, y + 10.5);
        /* Children, pushed in reverse so they come out left to right. */
        {
            size_t first = n;
            for (uint32_t c = nd->first_child; c && !rc; c = t->nodes[c].next_sibling) {
                int64_t cv = side ? t->nodes[c].total2 : t->nodes[c].total;
                if ((double)cv * scale >= min_w) {
                    if ((rc = HGROW(stack, cap, n + 1))) break;
                    stack[n++] = (walk_item){c, it.depth + 1, cx};
                }
                cx += cv;
            }
            for (size_t a = first, b = n; b > a + 1; a++, b--) {
                walk_item tmp = stack[a];
                stack[a] = stack[b - 1];
                stack[b - 1] = tmp;
            }
        }
    }
    if (!rc) rc = buf_puts(out, "</g>\n</svg>\n");
out:
    free(stack);
    if (rc) {
        out->len = start_len;
        if (out->data) out->data[start_len] = 0;
    }
    return rc;
}

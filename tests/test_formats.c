/*
 * test_formats.c: the text/JSON/SVG codecs: folded, perf script, speedscope,
 * flamebearer, SVG and format detection. Parsers on edge cases (encodings,
 * junk lines, caps, broken input) and writers' exact output on small trees.
 */
#include "t.h"

#include "core/common.h"
#include "core/buf.h"
#include "core/compress.h"
#include "format/detect.h"
#include "format/flamebearer.h"
#include "format/folded.h"
#include "format/perfscript.h"
#include "format/speedscope.h"
#include "format/svg.h"
#include "profile/flame.h"
#include "profile/profile.h"

/* Parses text with fn and returns its folded output (caller frees), or NULL with *rc set. */
static char *roundtrip(int (*fn)(profile *, const char *, size_t, herr *), const char *text, size_t n, int *rc, herr *e)
{
    profile p;
    buf out = BUF_INIT;
    herr_clear(e);
    ASSERT_OK(prof_init(&p));
    *rc = fn(&p, text, n, e);
    if (*rc == 0) *rc = prof_validate(&p, e);
    if (*rc == 0) *rc = folded_write(&p, 0, &out, e);
    prof_release(&p);
    if (*rc) { buf_release(&out); return NULL; }
    return buf_detach(&out, NULL);
}

static char *fold(const char *text, int *rc, herr *e) { return roundtrip(folded_parse, text, strlen(text), rc, e); }
static char *perf(const char *text, int *rc, herr *e) { return roundtrip(perfscript_parse, text, strlen(text), rc, e); }
static char *speed(const char *text, int *rc, herr *e) { return roundtrip(speedscope_parse, text, strlen(text), rc, e); }

static char *fold_file(const char *rel, int *rc, herr *e)
{
    size_t n;
    char *data = t_read_file(t_testdata(rel), &n), *out;
    out = roundtrip(folded_parse, data, n, rc, e);
    free(data);
    return out;
}

#define SIMPLE_FOLDED "a;b 5\na;b;c 5\na;b;d 4\n"

TEST(folded_simple_sums_and_sorts)
{
    int rc;
    herr e;
    char *out = fold("a;b;c 1\na;b;c 1\na;b;d 4\na;b;c 3\na;b 5\n", &rc, &e);
    ASSERT_OK(rc);
    ASSERT_STR(out, SIMPLE_FOLDED);
    free(out);
}

TEST(folded_testdata_encodings_agree)
{
    const char *files[] = {"collapsed/simple.txt", "collapsed/simple-crlf.txt", "collapsed/simple-utf16-le.txt",
                           "collapsed/simple-utf16-be.txt", "collapsed/simple-with-invalids.txt"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        int rc;
        herr e;
        char *out = fold_file(files[i], &rc, &e);
        if (rc) t_fail(__FILE__, __LINE__, "%s: %s", files[i], herr_msg(&e, rc));
        ASSERT_STR(out, SIMPLE_FOLDED);
        free(out);
    }
}

TEST(folded_recursion_and_tall)
{
    int rc;
    herr e;
    char *out = fold_file("collapsed/recursion.txt", &rc, &e);
    ASSERT_OK(rc);
    ASSERT_STR(out, "a;a 1\na;b 1\na;b;a;b 2\na;b;a;b;a;b 1\na;b;a;b;c 2\na;b;a;c 2\nb;b 1\n");
    free(out);
    out = fold_file("collapsed/tall.txt", &rc, &e);
    ASSERT_OK(rc);
    ASSERT_STR(out, "a;b;c;d;e;f;g;h;i;j;k;l;m;n;o;p;q;r;s;t;u;v;w;x;y;z 1\n");
    free(out);
}

TEST(folded_edge_lines)
{
    int rc;
    herr e;
    /* empty frames dropped, spaces inside names kept, trailing newline optional, UTF-8 BOM skipped */
    char *out = fold("\xef\xbb\xbf# c\n\n;a b;;c (x) 3\r\na b;c (x) 2\nnot a stack\nx; 7", &rc, &e);
    ASSERT_OK(rc);
    ASSERT_STR(out, "a b;c (x) 5\nx 7\n");
    free(out);
    /* a zero count is kept as a sample but not written */
    out = fold("a 0\nb 1\n", &rc, &e);
    ASSERT_OK(rc);
    ASSERT_STR(out, "b 1\n");
    free(out);
}

TEST(folded_rejects_what_is_not_folded)
{
    int rc;
    herr e;
    ASSERT(fold("hello world\nsecond line\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "line 1");
    ASSERT(fold("# only a comment\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
    ASSERT(fold("", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
    ASSERT(fold("a;b 1\na;\xff 2\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_UTF8);
    ASSERT_CONTAINS(e.msg, "line 2");
    ASSERT(fold("a;b 1\na;c 1.5\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_UNSUPPORTED);
    ASSERT_CONTAINS(e.msg, "line 2: count 1.5");
    ASSERT(fold("a;b -3\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_UNSUPPORTED);
    ASSERT(fold("a;b 99999999999999999999\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_TOOBIG);
    ASSERT(fold("a 9223372036854775807\na 1\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_TOOBIG);
    /* UTF-16 with a lone surrogate, and with an odd byte count */
    {
        const char bad16[] = "\xff\xfe" "a\0 \0" "1\0" "\x00\xd8" "\n\0";
        char *o = roundtrip(folded_parse, bad16, sizeof bad16 - 1, &rc, &e);
        ASSERT(o == NULL);
        ASSERT_EQ(rc, HE_UTF8);
        o = roundtrip(folded_parse, bad16, 5, &rc, &e);
        ASSERT(o == NULL);
        ASSERT_EQ(rc, HE_UTF8);
    }
}

TEST(folded_write_cleans_names)
{
    profile p;
    buf out = BUF_INIT;
    herr e;
    uint32_t locs[2];
    int64_t v = 3;
    int32_t st;
    ASSERT_OK(prof_init(&p));
    ASSERT(prof_add_type(&p, "cpu", "nanoseconds") >= 0);
    locs[0] = (uint32_t)prof_location_for_name(&p, "main", 4);
    locs[1] = (uint32_t)prof_location_for_name(&p, "f;g\nh", 5);
    st = prof_stack_root_first(&p, locs, 2);
    ASSERT(st > 0);
    ASSERT(prof_sample_add(&p, (uint32_t)st, &v, NULL, 0) >= 0);
    ASSERT_OK(folded_write(&p, 0, &out, &e));
    ASSERT_STR(out.data, "main;f:g h 3\n");
    ASSERT_EQ(folded_write(&p, 1, &out, &e), HE_USAGE);
    buf_release(&out);
    prof_release(&p);
}

/* ---- perf script ---- */

TEST(perfscript_basic_rules)
{
    int rc;
    herr e;
    const char *text =
        "# header comment\n"
        "my app 123/456 [001] 100.000001:   10 cpu-clock: \n"
        "\tffffffff81000000 native_safe_halt+0x10 ([kernel.kallsyms])\n"
        "\t4005d0 ns::Foo::bar(int, char const*) const (/usr/bin/app)\n"
        "\t4005d0 net/http.(*Client).Do (/usr/bin/app)\n"
        "\t4005d0 (skipped: process name) (/usr/bin/app)\n"
        "\t4005d0 ns::(anonymous namespace)::helper(int) (/usr/bin/app)\n"
        "\t0 [unknown] (/lib/libc.so.6)\n"
        "\t0 [unknown] ([unknown])\n"
        "\n"
        "app 77 100.2: 5 cpu-clock:\n"
        "\t1 inner->outer (/usr/bin/app)\n"
        "\t2 x;y \"quoted\" (/usr/bin/app)\n"
        "\n"
        "other 9 100.3: 99 page-faults:\n"
        "\t1 filtered (/usr/bin/app)\n"
        "\n"
        "app 77 100.4: 5 cpu-clock:\n"
        "\t1 cut_short (/usr/bin/app)\n";
    char *out = perf(text, &rc, &e);
    if (rc) t_fail(__FILE__, __LINE__, "%s", herr_msg(&e, rc));
    ASSERT_STR(out,
               "app-?;x:y quoted;inner;outer_[i] 5\n"
               "my_app-123;[unknown];[libc.so.6];ns::(anonymous namespace)::helper;net/http.(*Client).Do;ns::Foo::bar;native_safe_halt 10\n");
    free(out);
}

TEST(perfscript_period_defaults_to_one_and_header_only_samples)
{
    int rc;
    herr e;
    char *out = perf("java 19983 cycles:\nffffffff8103d0ca native_write_msr_safe ([kernel.kallsyms])\n"
                     "7f72421d2d76 JavaCalls::call_helper(JavaValue, Thread) (/x/libjvm.so)\n\n"
                     "java 19983 cycles:\n\n\n",
                     &rc, &e);
    ASSERT_OK(rc);
    ASSERT_STR(out, "java-? 1\njava-?;JavaCalls::call_helper;native_write_msr_safe 1\n");
    free(out);
}

TEST(perfscript_rejects_other_text)
{
    int rc;
    herr e;
    ASSERT(perf("a;b;c 1\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "line 1");
    ASSERT(perf("", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
    ASSERT(perf("app 1 2: 3 ev:\n\t1 f\xc3 (m)\n\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_UTF8);
    ASSERT(perf("app 1 2: 99999999999999999999 ev:\n\t1 f (m)\n\n", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_TOOBIG);
}

TEST(perfscript_testdata_matches_stackcollapse)
{
    static const char *names[] = {"perf-dd-stacks-01", "perf-java-stacks-02", "perf-cycles-instructions-01", "perf-rust-Yamakaky-dcpu"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        char in_path[256], exp_path[256];
        size_t n, m;
        char *in, *exp, *out;
        int rc;
        herr e;
        snprintf(in_path, sizeof in_path, "perf-script/%s.txt", names[i]);
        snprintf(exp_path, sizeof exp_path, "perf-script/expected-collapsed/%s-collapsed-pid.txt", names[i]);
        in = t_read_file(t_testdata(in_path), &n);
        exp = t_read_file(t_testdata(exp_path), &m);
        out = roundtrip(perfscript_parse, in, n, &rc, &e);
        if (rc) t_fail(__FILE__, __LINE__, "%s: %s", names[i], herr_msg(&e, rc));
        ASSERT_STR(out, exp);
        free(in); free(exp); free(out);
    }
}

/* ---- speedscope ---- */

TEST(speedscope_reads_sampled_and_evented)
{
    int rc;
    herr e;
    size_t n;
    char *text = t_read_file(t_testdata("speedscope/simple-sampled.speedscope.json"), &n);
    char *out = roundtrip(speedscope_parse, text, n, &rc, &e);
    ASSERT_OK(rc);
    /* unit seconds -> integer nanoseconds */
    ASSERT_STR(out, "a;b 5000000000\na;b;c 5000000000\na;b;d 4000000000\n");
    free(out);
    free(text);
    out = speed("{\"shared\":{\"frames\":[{\"name\":\"a\"},{\"name\":\"b\",\"file\":\"b.c\",\"line\":3}]},"
                "\"profiles\":[{\"type\":\"evented\",\"unit\":\"none\",\"startValue\":0,\"endValue\":10,\"events\":["
                "{\"type\":\"O\",\"at\":0,\"frame\":0},{\"type\":\"O\",\"at\":2,\"frame\":1},"
                "{\"type\":\"C\",\"at\":5,\"frame\":1},{\"type\":\"C\",\"at\":10,\"frame\":0}]}]}",
                &rc, &e);
    ASSERT_OK(rc);
    ASSERT_STR(out, "a 7\na;b 3\n");
    free(out);
}

TEST(speedscope_rejects_broken)
{
    int rc;
    herr e;
    ASSERT(speed("{\"profiles\": [", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
    ASSERT(speed("{\"shared\":{\"frames\":[]},\"profiles\":[]} trailing", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "after the end");
    ASSERT(speed("{\"foo\": 1}", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
    ASSERT(speed("{\"shared\":{\"frames\":[{\"name\":\"a\"}]},\"profiles\":[{\"type\":\"sampled\",\"unit\":\"none\","
                 "\"samples\":[[0,1]],\"weights\":[1]}]}", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_BADREF);
    ASSERT_CONTAINS(e.msg, "frame 1");
    ASSERT(speed("{\"shared\":{\"frames\":[{\"name\":\"a\"},{\"name\":\"b\"}]},\"profiles\":[{\"type\":\"evented\",\"unit\":\"none\","
                 "\"events\":[{\"type\":\"O\",\"at\":0,\"frame\":0},{\"type\":\"C\",\"at\":1,\"frame\":1}]}]}", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_BADREF);
    ASSERT(speed("{\"shared\":{\"frames\":[]},\"profiles\":[{\"type\":\"sampled\",\"unit\":\"none\","
                 "\"samples\":[[]],\"weights\":[1,2]}]}", &rc, &e) == NULL);
    ASSERT_EQ(rc, HE_FORMAT);
}

static void simple_profile(profile *p)
{
    int rc;
    herr e;
    const char *text = "a;b;c 5\na;b;d 4\na;b 5\n";
    ASSERT_OK(prof_init(p));
    rc = folded_parse(p, text, strlen(text), &e);
    ASSERT_OK(rc);
}

TEST(speedscope_write_exact)
{
    profile p;
    buf out = BUF_INIT;
    herr e;
    simple_profile(&p);
    ASSERT_OK(speedscope_write(&p, 0, "t", &out, &e));
    ASSERT_STR(out.data,
               "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"exporter\":\"hearth\",\"name\":\"t\","
               "\"activeProfileIndex\":0,\"profiles\":[{\"type\":\"sampled\",\"name\":\"t\",\"unit\":\"none\",\"startValue\":0,"
               "\"endValue\":14,\"samples\":[[0,1],[0,1,2],[0,1,3]],\"weights\":[5,5,4]}],"
               "\"shared\":{\"frames\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"},{\"name\":\"d\"}]}}\n");
    /* and it reads back to the same stacks */
    {
        profile q;
        buf f = BUF_INIT;
        ASSERT_OK(prof_init(&q));
        ASSERT_OK(speedscope_parse(&q, out.data, out.len, &e));
        ASSERT_OK(folded_write(&q, 0, &f, &e));
        ASSERT_STR(f.data, SIMPLE_FOLDED);
        buf_release(&f);
        prof_release(&q);
    }
    buf_release(&out);
    prof_release(&p);
}

/* ---- flamebearer ---- */

TEST(flamebearer_single_exact)
{
    profile p;
    flame_tree t;
    buf out = BUF_INIT;
    flamebearer_meta meta = {0};
    int64_t tl[] = {3, 0, 11};
    flamebearer_timeline timeline = {1700000000, tl, 3, 10};
    simple_profile(&p);
    ASSERT_OK(flame_init(&t));
    ASSERT_OK(flame_add_profile(&t, &p, 0, NULL, 0));
    meta.name = "cpu";
    meta.spy_name = "gospy";
    meta.units = "samples";
    meta.timeline = &timeline;
    ASSERT_OK(flamebearer_write(&t, &meta, &out));
    ASSERT_STR(out.data,
               "{\"version\":1,\"flamebearer\":{\"names\":[\"total\",\"other\",\"a\",\"b\",\"c\",\"d\"],"
               "\"levels\":[[0,14,0,0],[0,14,0,2],[0,14,5,3],[0,5,5,4,0,4,4,5]],\"numTicks\":14,\"maxSelf\":5},"
               "\"metadata\":{\"format\":\"single\",\"spyName\":\"gospy\",\"sampleRate\":100,\"units\":\"samples\",\"name\":\"cpu\"},"
               "\"timeline\":{\"startTime\":1700000000,\"samples\":[3,0,11],\"durationDelta\":10}}");
    buf_release(&out);
    flame_release(&t);
    prof_release(&p);
}

TEST(flamebearer_diff_is_double)
{
    flame_tree t;
    buf out = BUF_INIT;
    uint32_t a, b, c;
    uint32_t ab[2], ac[2];
    ASSERT_OK(flame_init(&t));
    a = (uint32_t)strtab_intern_cstr(&t.names, "a");
    b = (uint32_t)strtab_intern_cstr(&t.names, "b");
    c = (uint32_t)strtab_intern_cstr(&t.names, "c");
    ab[0] = a; ab[1] = b;
    ac[0] = a; ac[1] = c;
    ASSERT(flame_add_names(&t, ab, 2, 3, 0) >= 0);
    ASSERT(flame_add_names(&t, ac, 2, 1, 0) >= 0);
    ASSERT(flame_add_names(&t, ab, 2, 1, 1) >= 0);
    ASSERT(flame_add_names(&t, ac, 2, 5, 1) >= 0);
    ASSERT_OK(flamebearer_write(&t, NULL, &out));
    ASSERT_CONTAINS(out.data, "\"format\":\"double\"");
    ASSERT_CONTAINS(out.data, "\"levels\":[[0,4,0,0,6,0,0],[0,4,0,0,6,0,2],[0,3,3,0,1,1,3,0,1,1,0,5,5,4]]");
    ASSERT_CONTAINS(out.data, "\"numTicks\":10");
    ASSERT_CONTAINS(out.data, "\"leftTicks\":4,\"rightTicks\":6");
    buf_release(&out);
    flame_release(&t);
}

TEST(flamebearer_units)
{
    ASSERT_STR(flamebearer_units("alloc_space", "bytes"), "bytes");
    ASSERT_STR(flamebearer_units("inuse_objects", "count"), "objects");
    ASSERT_STR(flamebearer_units("cpu", "nanoseconds"), "samples");
    ASSERT_EQ(flamebearer_sample_rate("nanoseconds"), 1000000000);
    ASSERT_EQ(flamebearer_sample_rate("count"), 100);
}

/* ---- SVG ---- */

/*
 * Minimal well-formedness check: tags balance (names matched), attribute
 * values quoted, no raw '<' or bare '&' in text, CDATA and comments skipped.
 * Returns NULL or what is wrong.
 */
static const char *xml_check(const char *s)
{
    static char why[200];
    const char *stack[256];
    size_t lens[256], depth = 0;
    while (*s) {
        if (!strncmp(s, "<![CDATA[", 9)) {
            const char *e = strstr(s, "]]>");
            if (!e) return "unterminated CDATA";
            s = e + 3;
        } else if (!strncmp(s, "<?", 2) || !strncmp(s, "<!", 2)) {
            const char *e = strchr(s, '>');
            if (!e) return "unterminated declaration";
            s = e + 1;
        } else if (*s == '<') {
            int closing = s[1] == '/';
            const char *name = s + 1 + closing, *e = name;
            size_t n;
            char q = 0;
            while (*e && *e != ' ' && *e != '>' && *e != '/' && *e != '\n') e++;
            n = (size_t)(e - name);
            while (*e && (q || *e != '>')) {
                if (q && *e == '<') return "'<' inside an attribute value";
                if (*e == '"' || *e == '\'') q = q == *e ? 0 : (q ? q : *e);
                e++;
            }
            if (!*e) return "unterminated tag";
            if (closing) {
                if (!depth || lens[depth - 1] != n || strncmp(stack[depth - 1], name, n)) {
                    snprintf(why, sizeof why, "closing tag </%.*s> does not match", (int)n, name);
                    return why;
                }
                depth--;
            } else if (e[-1] != '/') {
                if (depth == 256) return "too deep";
                stack[depth] = name;
                lens[depth++] = n;
            }
            s = e + 1;
        } else if (*s == '&') {
            if (strncmp(s, "&amp;", 5) && strncmp(s, "&lt;", 4) && strncmp(s, "&gt;", 4) && strncmp(s, "&quot;", 6) && strncmp(s, "&#39;", 5))
                return "bare '&'";
            s++;
        } else {
            s++;
        }
    }
    return depth ? "unclosed tag" : NULL;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

TEST(svg_is_well_formed_and_escaped)
{
    profile p;
    flame_tree t;
    buf out = BUF_INIT;
    svg_opts o = {0};
    const char *text = "main;std::vector<int>::push & pop 3\nmain;bad\xff name 1\n";
    herr e;
    const char *why;
    ASSERT_OK(prof_init(&p));
    /* invalid UTF-8 must not reach the SVG: build the profile directly */
    {
        uint32_t locs[2];
        int64_t v;
        int32_t st;
        ASSERT(prof_add_type(&p, "samples", "count") >= 0);
        locs[0] = (uint32_t)prof_location_for_name(&p, "main", 4);
        locs[1] = (uint32_t)prof_location_for_name(&p, "std::vector<int>::push & pop", 28);
        st = prof_stack_root_first(&p, locs, 2);
        v = 3;
        ASSERT(prof_sample_add(&p, (uint32_t)st, &v, NULL, 0) >= 0);
        locs[1] = (uint32_t)prof_location_for_name(&p, "bad\xff name", 9);
        st = prof_stack_root_first(&p, locs, 2);
        v = 1;
        ASSERT(prof_sample_add(&p, (uint32_t)st, &v, NULL, 0) >= 0);
    }
    (void)text; (void)e;
    ASSERT_OK(flame_init(&t));
    ASSERT_OK(flame_add_profile(&t, &p, 0, NULL, 0));
    o.title = "a <title> & more";
    ASSERT_OK(svg_write(&t, &o, &out));
    why = xml_check(out.data);
    if (why) t_fail(__FILE__, __LINE__, "SVG not well-formed: %s", why);
    ASSERT_CONTAINS(out.data, "a &lt;title&gt; &amp; more");
    ASSERT_CONTAINS(out.data, "std::vector&lt;int&gt;::push &amp; pop (3 samples, 75.00%)");
    ASSERT_CONTAINS(out.data, "bad\xef\xbf\xbd name");
    ASSERT_EQ(count(out.data, "<g class=\"f\""), 4);  /* all, main, two leaves */
    ASSERT_CONTAINS(out.data, "n=\"all\"><title>all (4 samples, 100.00%)</title><rect x=\"10.0\" y=\"");
    ASSERT_CONTAINS(out.data, "width=\"1180.0\"");
    ASSERT_CONTAINS(out.data, "width=\"885.0\"");  /* 3/4 of 1180 */
    ASSERT(strstr(out.data, "http://") == NULL || strstr(out.data, "<script") != NULL);
    ASSERT(strstr(out.data, "src=") == NULL);  /* nothing loaded from the network */
    buf_release(&out);
    flame_release(&t);
    prof_release(&p);
}

TEST(svg_diff_colours)
{
    flame_tree t;
    buf out = BUF_INIT;
    uint32_t ab[2], ac[2];
    const char *why;
    ASSERT_OK(flame_init(&t));
    ab[0] = ac[0] = (uint32_t)strtab_intern_cstr(&t.names, "a");
    ab[1] = (uint32_t)strtab_intern_cstr(&t.names, "grew");
    ac[1] = (uint32_t)strtab_intern_cstr(&t.names, "shrank");
    ASSERT(flame_add_names(&t, ab, 2, 1, 0) >= 0);
    ASSERT(flame_add_names(&t, ac, 2, 9, 0) >= 0);
    ASSERT(flame_add_names(&t, ab, 2, 9, 1) >= 0);
    ASSERT(flame_add_names(&t, ac, 2, 1, 1) >= 0);
    ASSERT_OK(svg_write(&t, NULL, &out));
    why = xml_check(out.data);
    if (why) t_fail(__FILE__, __LINE__, "SVG not well-formed: %s", why);
    /* grew: most red; shrank: most blue */
    ASSERT_CONTAINS(out.data, "n=\"grew\"><title>grew (before 1, after 9 samples; share +80.00%)</title><rect x=\"10.0\" y=\"");
    ASSERT_CONTAINS(out.data, "fill=\"rgb(255,35,35)\"");
    ASSERT_CONTAINS(out.data, "fill=\"rgb(35,35,255)\"");
    buf_release(&out);
    flame_release(&t);
}

TEST(svg_empty_tree)
{
    flame_tree t;
    buf out = BUF_INIT;
    ASSERT_OK(flame_init(&t));
    ASSERT_OK(svg_write(&t, NULL, &out));
    ASSERT(xml_check(out.data) == NULL);
    ASSERT_CONTAINS(out.data, "no samples");
    buf_release(&out);
    flame_release(&t);
}

/* ---- detection ---- */

static enum prof_format detect_file(const char *rel)
{
    size_t n;
    char *d = t_read_file(t_testdata(rel), &n);
    enum prof_format f = prof_format_detect(d, n);
    free(d);
    return f;
}

TEST(detect_testdata)
{
    ASSERT_EQ(detect_file("pprof/cpu.pb.gz"), PF_PPROF);
    ASSERT_EQ(detect_file("pprof/heap-js.pprof"), PF_PPROF);          /* raw protobuf */
    ASSERT_EQ(detect_file("pprof/dotnet-pprof-3.pb.gz"), PF_PPROF);   /* raw despite the name */
    ASSERT_EQ(detect_file("collapsed/simple.txt"), PF_FOLDED);
    ASSERT_EQ(detect_file("collapsed/simple-with-invalids.txt"), PF_FOLDED);
    ASSERT_EQ(detect_file("collapsed/simple-utf16-le.txt"), PF_FOLDED);
    ASSERT_EQ(detect_file("collapsed/perf-vertx-stacks-01-collapsed-all.txt"), PF_FOLDED);
    ASSERT_EQ(detect_file("speedscope/two-sampled.speedscope.json"), PF_SPEEDSCOPE);
    ASSERT_EQ(detect_file("perf-script/perf-dd-stacks-01.txt"), PF_PERFSCRIPT);
    ASSERT_EQ(detect_file("perf-script/perf-java-stacks-02.txt"), PF_PERFSCRIPT);
    ASSERT_EQ(detect_file("perf-script/perf-vertx-stacks-01.txt"), PF_PERFSCRIPT);
    ASSERT_EQ(prof_format_detect("hello\n", 6), PF_UNKNOWN);
    ASSERT_EQ(prof_format_detect("", 0), PF_UNKNOWN);
    ASSERT_EQ(prof_format_parse("collapsed"), PF_FOLDED);
    ASSERT_EQ(prof_format_parse("nope"), PF_UNKNOWN);
}

TEST(decode_any_gzip_text_and_bomb)
{
    profile p;
    buf gz = BUF_INIT, out = BUF_INIT, zeros = BUF_INIT;
    herr e;
    ASSERT_OK(gz_compress(SIMPLE_FOLDED, strlen(SIMPLE_FOLDED), 6, &gz));
    ASSERT_OK(prof_init(&p));
    ASSERT_OK(prof_decode_any(&p, gz.data, gz.len, PF_AUTO, 0, &e));
    ASSERT_OK(folded_write(&p, 0, &out, &e));
    ASSERT_STR(out.data, SIMPLE_FOLDED);
    prof_release(&p);
    /* 4 MiB of zeros compressed, decoded with a 1 MiB cap */
    ASSERT_OK(buf_reserve(&zeros, 4 << 20));
    memset(zeros.data, 0, 4 << 20);
    zeros.len = 4 << 20;
    buf_reset(&gz);
    ASSERT_OK(gz_compress(zeros.data, zeros.len, 6, &gz));
    ASSERT_OK(prof_init(&p));
    herr_clear(&e);
    ASSERT_EQ(prof_decode_any(&p, gz.data, gz.len, PF_AUTO, 1 << 20, &e), HE_TOOBIG);
    ASSERT(e.msg[0] != 0);
    prof_release(&p);
    ASSERT_OK(prof_init(&p));
    herr_clear(&e);
    ASSERT_EQ(prof_decode_any(&p, "hello\n", 6, PF_AUTO, 0, &e), HE_FORMAT);
    ASSERT_CONTAINS(e.msg, "not a known profile format");
    prof_release(&p);
    buf_release(&gz); buf_release(&out); buf_release(&zeros);
}

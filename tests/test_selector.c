/*
 * test_selector.c: the label selector's canonical text and its guards
 * against regular expressions that glibc compiles or matches in
 * exponential time (src/store/selector.c). Parsing and matching basics are
 * in test_store.c.
 */
#include "core/common.h"
#include "store/selector.h"
#include "t.h"


static int parse(selector *s, const char *text, herr *e)
{
    herr_clear(e);
    return selector_parse(s, text, strlen(text), e);
}

TEST(format_escapes_values_so_the_text_parses_back)
{
    const char *in = "{a=\"q\\\"uote\", b!=\"back\\\\slash\", c=~\"eu\\\\.[0-9]+\\n\", d!~`raw\\d`, e=\"\\x01\\t\\x7f\"}";
    selector s, t;
    herr e;
    char text[512], again[512];
    ASSERT_OK(parse(&s, in, &e));
    ASSERT_EQ(s.n, 5);
    ASSERT_OK(selector_format(&s, text, sizeof text));
    ASSERT_STR(text, "{a=\"q\\\"uote\", b!=\"back\\\\slash\", c=~\"eu\\\\.[0-9]+\\n\", d!~\"raw\\\\d\", e=\"\\x01\\t\\x7f\"}");
    ASSERT_OK(parse(&t, text, &e));
    ASSERT_EQ(t.n, s.n);
    for (size_t i = 0; i < s.n; i++) {
        ASSERT_STR(t.m[i].name, s.m[i].name);
        ASSERT_STR(t.m[i].value, s.m[i].value);
        ASSERT_EQ(t.m[i].op, s.m[i].op);
    }
    ASSERT_OK(selector_format(&t, again, sizeof again));
    ASSERT_STR(again, text);
    /* too small a buffer: truncated, terminated, and said so */
    ASSERT_EQ(selector_format(&s, text, 8), HE_TOOBIG);
    ASSERT_EQ(strlen(text), 7);
    selector_release(&t);
    selector_release(&s);
}

TEST(regexes_that_glibc_would_compile_or_match_for_seconds_are_refused)
{
    static const struct {
        const char *sel, *why;
    } bad[] = {
        {"{a=~\"a++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++\"}", "follows another repetition"},
        {"{a=~\"x*+\"}", "follows another repetition"},
        {"{a=~\"(a{255}){255}\"}", "too complex"},
        {"{a=~\"(a?){1000}a{1000}\"}", "too complex"},
        {"{a=~\"((((((((((((((((((((a*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*\"}", "too complex"},
        {"{a!~\"x{1001}\"}", "above 1000"},
        {"{a=~\"x{5,2}\"}", "reversed"},
        {"{a=~\"(a|b)\\\\1\"}", "backreferences"},
        {"{a=~\"*x\"}", "does not follow an expression"},
        {"{a=~\"(|+)\"}", "does not follow an expression"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        selector s;
        herr e;
        int rc = parse(&s, bad[i].sel, &e);
        if (rc != HE_FORMAT) t_fail(__FILE__, __LINE__, "%s: got %d, want HE_FORMAT", bad[i].sel, rc);
        if (!strstr(e.msg, bad[i].why)) t_fail(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", bad[i].sel, e.msg, bad[i].why);
        ASSERT_CONTAINS(e.msg, "label \"a\"");
        selector_release(&s);
    }
}

TEST(ordinary_regexes_still_work)
{
    static const struct {
        const char *sel, *yes, *no;
    } ok[] = {
        {"{a=~\"eu-.*\"}", "eu-west-1", "us-east-1"},
        {"{a=~\".*?\"}", "anything", NULL},                 /* RE2's non-greedy marker */
        {"{a=~\"(api|web)-[0-9]{1,3}\"}", "web-42", "web-4242"},
        {"{a=~\"[[:alpha:]]{2}\\\\.x\"}", "ab.x", "abcx"},
        {"{a=~\"(a*)*b\"}", "aaab", "aaa"},
        {"{a=~\"x{2,}\"}", "xxxx", "x"},
        {"{a=~\"a\\\\{b\"}", "a{b", "ab"},                    /* an escaped '{' is a literal */
        {"{a!~\"(dev|test)\"}", "prod", "dev"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        selector s;
        herr e;
        if (parse(&s, ok[i].sel, &e)) t_fail(__FILE__, __LINE__, "%s refused: %s", ok[i].sel, e.msg);
        if (!sel_matcher_match(&s.m[0], ok[i].yes)) t_fail(__FILE__, __LINE__, "%s does not match %s", ok[i].sel, ok[i].yes);
        if (ok[i].no && sel_matcher_match(&s.m[0], ok[i].no)) t_fail(__FILE__, __LINE__, "%s matches %s", ok[i].sel, ok[i].no);
        selector_release(&s);
    }
}

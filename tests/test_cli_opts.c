/*
 * test_cli_opts.c: unit tests of the CLI option parser (src/cli/opts.c):
 * each kind, the =VALUE and -oVALUE forms, "--", missing values, bad
 * numbers, unknown options, repeatable lists, environment fallback and a
 * flag winning over its variable, generated help.
 *
 * The test binaries link libhearth_core.a, which does not hold src/cli, so
 * the parser is compiled into this binary directly.
 */
#include "t.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/common.h"
#include "core/err.h"
#include "cli/opts.h"

static const char *s_url, *s_out;
static int s_verbose;
static long s_nodes;
static uint64_t s_size;
static int64_t s_dur;
static opts_list s_tags;

static const opt_spec specs[] = {
    {"url", 0, OPT_STRING, &s_url, "T_OPTS_URL", "URL", "server address", 0, 0},
    {"output", 'o', OPT_STRING, &s_out, NULL, "FILE", "write here", 0, 0},
    {"verbose", 'v', OPT_FLAG, &s_verbose, "T_OPTS_VERBOSE", NULL, "say more", 0, 0},
    {"max-nodes", 0, OPT_INT, &s_nodes, "T_OPTS_NODES", "N", "node cap", 1, 1048576},
    {"max-body", 0, OPT_SIZE, &s_size, NULL, "SIZE", "body cap", 1, 1L << 30},
    {"interval", 0, OPT_DURATION, &s_dur, NULL, "DUR", "how often", 0, 0},
    {"tag", 't', OPT_LIST, &s_tags, NULL, "K=V", "a label", 0, 3},
};
static const opt_cmd cmd = {"tst", "usage: hearth tst [OPTIONS] FILE...\n", "Tests the parser.\n", specs,
                            ARRAY_SIZE(specs), 2, 0};

static void reset(void)
{
    s_url = s_out = NULL;
    s_verbose = 0;
    s_nodes = 0;
    s_size = 0;
    s_dur = 0;
    opts_list_release(&s_tags);
    unsetenv("T_OPTS_URL");
    unsetenv("T_OPTS_VERBOSE");
    unsetenv("T_OPTS_NODES");
}

/* Runs the parser on a NULL-terminated argument list, capturing stderr. */
static int run(opts_args *pos, char *err, size_t err_cap, char **args)
{
    static char *argv[32];
    int argc = 0, rc, fd, saved;
    char path[] = "/tmp/test_cli_opts.XXXXXX";
    argv[argc++] = "tst";
    while (*args) argv[argc++] = *args++;
    argv[argc] = NULL;
    fflush(stderr);
    fd = mkstemp(path);
    saved = dup(2);
    dup2(fd, 2);
    rc = opts_parse(&cmd, argc, argv, pos);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, err, err_cap - 1, 0);
    err[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return rc;
}

#define RUN(pos, err, ...) run(pos, err, sizeof err, (char *[]){__VA_ARGS__, NULL})

TEST(each_kind_space_form)
{
    opts_args pos;
    char err[512];
    reset();
    ASSERT_OK(RUN(&pos, err, "--url", "http://x", "-o", "out.txt", "--verbose", "--max-nodes", "42", "--max-body",
                  "32MiB", "--interval", "1h30m", "in.pb"));
    ASSERT_STR(s_url, "http://x");
    ASSERT_STR(s_out, "out.txt");
    ASSERT_EQ(s_verbose, 1);
    ASSERT_EQ(s_nodes, 42);
    ASSERT_EQ(s_size, 32ull << 20);
    ASSERT_EQ(s_dur, 5400ll * 1000000000ll);
    ASSERT_EQ(pos.n, 1);
    ASSERT_STR(pos.v[0], "in.pb");
    ASSERT_STR(err, "");
}

TEST(equals_and_attached_short_forms)
{
    opts_args pos;
    char err[512];
    reset();
    ASSERT_OK(RUN(&pos, err, "a", "--url=http://y:1/p?q=1", "-oout", "--max-nodes=7", "-tk=v", "b"));
    ASSERT_STR(s_url, "http://y:1/p?q=1");
    ASSERT_STR(s_out, "out");
    ASSERT_EQ(s_nodes, 7);
    ASSERT_EQ(s_tags.n, 1);
    ASSERT_STR(s_tags.v[0], "k=v");
    ASSERT_EQ(pos.n, 2);
    ASSERT_STR(pos.v[0], "a");
    ASSERT_STR(pos.v[1], "b");
}

TEST(double_dash_ends_options)
{
    opts_args pos;
    char err[512];
    reset();
    ASSERT_OK(RUN(&pos, err, "-v", "x", "--", "--url"));
    ASSERT_EQ(s_verbose, 1);
    ASSERT(s_url == NULL);
    ASSERT_EQ(pos.n, 2);
    ASSERT_EQ(pos.n_before_dd, 1);
    ASSERT_STR(pos.v[0], "x");
    ASSERT_STR(pos.v[1], "--url");
    /* a lone "-" is a positional (stdin), not an option */
    reset();
    ASSERT_OK(RUN(&pos, err, "-", "--", "y"));
    ASSERT_EQ(pos.n, 2);
    ASSERT_EQ(pos.n_before_dd, 1);
    ASSERT_STR(pos.v[0], "-");
}

TEST(missing_value)
{
    opts_args pos;
    char err[512];
    reset();
    ASSERT_EQ(RUN(&pos, err, "x", "--url"), HE_USAGE);
    ASSERT_STR(err, "hearth tst: --url needs a value (URL)\n");
    ASSERT_EQ(opts_exit(HE_USAGE), 2);
}

TEST(bad_numbers)
{
    opts_args pos;
    char err[512];
    static const char *bad[] = {"abc", "", "12x", "0", "1048577", "99999999999999999999", " 5"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char want[256];
        reset();
        s_nodes = -5;
        ASSERT_EQ(RUN(&pos, err, "--max-nodes", (char *)bad[i]), HE_USAGE);
        snprintf(want, sizeof want, "hearth tst: --max-nodes needs a whole number between 1 and 1048576, got \"%s\"\n",
                 bad[i]);
        ASSERT_STR(err, want);
        ASSERT_EQ(s_nodes, -5); /* nothing stored on error */
    }
    reset();
    ASSERT_EQ(RUN(&pos, err, "--max-nodes=1048576"), 0);
    ASSERT_EQ(s_nodes, 1048576);
    reset();
    ASSERT_EQ(RUN(&pos, err, "--max-body", "lots"), HE_USAGE);
    ASSERT_CONTAINS(err, "--max-body needs a size");
    ASSERT_CONTAINS(err, "\"lots\"");
    reset();
    ASSERT_EQ(RUN(&pos, err, "--max-body=0"), HE_USAGE);
    ASSERT_CONTAINS(err, "--max-body needs a size between 1 and 1073741824 bytes, got \"0\"");
    reset();
    ASSERT_EQ(RUN(&pos, err, "--max-body=2GiB"), HE_USAGE);
    reset();
    ASSERT_OK(RUN(&pos, err, "--max-body=1GiB"));
    ASSERT_EQ(s_size, 1ull << 30);
    reset();
    ASSERT_EQ(RUN(&pos, err, "--interval", "soon"), HE_USAGE);
    ASSERT_CONTAINS(err, "--interval needs a duration");
}

TEST(unknown_option_and_flag_value)
{
    opts_args pos;
    char err[512];
    reset();
    ASSERT_EQ(RUN(&pos, err, "--nope=3"), HE_USAGE);
    ASSERT_STR(err, "hearth tst: unknown option \"--nope\" ('hearth tst --help' lists the options)\n");
    reset();
    ASSERT_EQ(RUN(&pos, err, "-q"), HE_USAGE);
    ASSERT_CONTAINS(err, "unknown option \"-q\"");
    reset();
    ASSERT_EQ(RUN(&pos, err, "--verbose=yes"), HE_USAGE);
    ASSERT_CONTAINS(err, "--verbose takes no value");
    reset();
    ASSERT_EQ(RUN(&pos, err, "a", "b", "c"), HE_USAGE);
    ASSERT_CONTAINS(err, "unexpected argument \"c\"");
}

TEST(repeatable_list_with_cap)
{
    opts_args pos;
    char err[512];
    reset();
    ASSERT_OK(RUN(&pos, err, "--tag", "a=1", "-t", "b=2", "--tag=c=3"));
    ASSERT_EQ(s_tags.n, 3);
    ASSERT_STR(s_tags.v[0], "a=1");
    ASSERT_STR(s_tags.v[1], "b=2");
    ASSERT_STR(s_tags.v[2], "c=3");
    reset();
    ASSERT_EQ(RUN(&pos, err, "-t", "a", "-t", "b", "-t", "c", "-t", "d"), HE_USAGE);
    ASSERT_CONTAINS(err, "--tag can be given at most 3 times");
    reset();
}

TEST(env_fallback_and_flag_wins)
{
    opts_args pos;
    char err[512];
    reset();
    setenv("T_OPTS_URL", "http://env", 1);
    setenv("T_OPTS_VERBOSE", "true", 1);
    setenv("T_OPTS_NODES", "9", 1);
    ASSERT_OK(RUN(&pos, err, "f"));
    ASSERT_STR(s_url, "http://env");
    ASSERT_EQ(s_verbose, 1);
    ASSERT_EQ(s_nodes, 9);
    s_verbose = 0;
    setenv("T_OPTS_URL", "http://env", 1);
    setenv("T_OPTS_NODES", "9", 1);
    ASSERT_OK(RUN(&pos, err, "--url", "http://flag", "--max-nodes", "3"));
    ASSERT_STR(s_url, "http://flag");
    ASSERT_EQ(s_nodes, 3);
    /* a bad environment value names the variable */
    reset();
    setenv("T_OPTS_NODES", "many", 1);
    ASSERT_EQ(RUN(&pos, err, "f"), HE_USAGE);
    ASSERT_CONTAINS(err, "$T_OPTS_NODES (for --max-nodes) needs a whole number");
    /* but a flag on the command line means the variable is not read */
    reset();
    setenv("T_OPTS_NODES", "many", 1);
    ASSERT_OK(RUN(&pos, err, "--max-nodes", "4"));
    ASSERT_EQ(s_nodes, 4);
    reset();
    setenv("T_OPTS_VERBOSE", "maybe", 1);
    ASSERT_EQ(RUN(&pos, err, "f"), HE_USAGE);
    ASSERT_CONTAINS(err, "$T_OPTS_VERBOSE (for --verbose)");
    reset();
}

TEST(help_is_generated_from_table)
{
    char *out;
    size_t len;
    char path[256];
    FILE *f;
    snprintf(path, sizeof path, "%s/help.txt", t_tmpdir());
    f = fopen(path, "w");
    ASSERT(f != NULL);
    opts_help(&cmd, f);
    fclose(f);
    out = t_read_file(path, &len);
    ASSERT(!strncmp(out, "usage: hearth tst [OPTIONS] FILE...\n", 36));
    ASSERT_CONTAINS(out, "  -o, --output FILE");
    ASSERT_CONTAINS(out, "      --max-nodes N");
    ASSERT_CONTAINS(out, "[$T_OPTS_URL]");
    ASSERT_CONTAINS(out, "a label (repeatable)");
    ASSERT_CONTAINS(out, "-h, --help");
    ASSERT_CONTAINS(out, "\nTests the parser.\n");
    for (size_t i = 0; i < ARRAY_SIZE(specs); i++) ASSERT_CONTAINS(out, specs[i].help);
    free(out);
}

TEST(help_option_returns_help)
{
    opts_args pos;
    char err[512];
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    reset();
    fflush(stdout);
    dup2(devnull, 1);
    int rc1 = RUN(&pos, err, "x", "--help");
    int rc2 = RUN(&pos, err, "-h");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);
    ASSERT_EQ(rc1, OPTS_HELP);
    ASSERT_EQ(rc2, OPTS_HELP);
    ASSERT_EQ(opts_exit(OPTS_HELP), 0);
}

TEST(command_after_options_stops_parsing)
{
    /* record's shape: the first positional starts a command whose own options are not ours */
    static const opt_spec rec_specs[] = {
        {"output", 'o', OPT_STRING, &s_out, NULL, "FILE", "write here", 0, 0},
    };
    static const opt_cmd rec = {"rec", "usage: hearth rec [-o FILE] CMD...\n", NULL, rec_specs, 1, -1, 1};
    char *argv[] = {"rec", "-o", "x", "prog", "-o", "--weird", "--", NULL};
    opts_args pos;
    s_out = NULL;
    ASSERT_OK(opts_parse(&rec, 7, argv, &pos));
    ASSERT_STR(s_out, "x");
    ASSERT_EQ(pos.n, 4);
    ASSERT_STR(pos.v[0], "prog");
    ASSERT_STR(pos.v[1], "-o");
    ASSERT_STR(pos.v[3], "--");
    ASSERT(pos.v[4] == NULL); /* NULL-terminated for execvp */
    char *argv2[] = {"rec", "--", "prog", "-o", NULL};
    ASSERT_OK(opts_parse(&rec, 4, argv2, &pos));
    ASSERT_EQ(pos.n, 2);
    ASSERT_EQ(pos.n_before_dd, 0);
    ASSERT_STR(pos.v[1], "-o");
    ASSERT(pos.v[2] == NULL);
}

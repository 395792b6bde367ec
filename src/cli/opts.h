/*
 * opts.h: the one command-line option parser of every hearth subcommand.
 *
 * A command describes its options once, as a table of opt_spec; the table
 * drives parsing (--x VALUE, --x=VALUE, -o VALUE, -oVALUE, `--` ending the
 * options), value checking (whole numbers in a range, sizes "32MiB",
 * durations "10s"), environment fallbacks ($HEARTH_URL when --url is not
 * given; an option on the command line always wins) and the --help text, so
 * help cannot drift from what is accepted.
 *
 * Errors are printed as one line "hearth CMD: ..." naming the option (or the
 * environment variable) and what is wrong with the value; the command then
 * exits with status 2.
 */
#ifndef HEARTH_CLI_OPTS_H
#define HEARTH_CLI_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opt_kind {
    OPT_STRING = 1, /* dst: const char ** (points into argv or environ) */
    OPT_FLAG,       /* dst: int *, set to 1; from env: 1/true/yes/on or 0/false/no/off */
    OPT_INT,        /* dst: long *, checked against [min, max] */
    OPT_SIZE,       /* dst: uint64_t *, parse_size ("32MiB"), at least min, at most max if max > 0 */
    OPT_DURATION,   /* dst: int64_t * in ns, parse_duration_ns ("10s", "30d") */
    OPT_LIST        /* dst: opts_list *, each occurrence appends (repeatable) */
};

/* Values of a repeatable option, in command-line order. Release with opts_list_release. */
typedef struct opts_list {
    const char **v;
    size_t n, cap;
} opts_list;

typedef struct opt_spec {
    const char *name;   /* long name without "--" ("max-nodes"); NULL for a short-only option */
    char short_name;    /* 'o' for -o, or 0 */
    enum opt_kind kind;
    void *dst;          /* see opt_kind; left untouched when the option is absent */
    const char *env;    /* environment variable read when the option is absent, or NULL */
    const char *arg;    /* value placeholder in --help ("URL"), NULL for flags */
    const char *help;   /* one line for --help */
    long min, max;      /* OPT_INT: inclusive range (both 0: any long); OPT_SIZE: bytes, max if > 0;
                           OPT_LIST: max entries if > 0 (default 4096) */
} opt_spec;

typedef struct opt_cmd {
    const char *name;      /* as in messages: "query", "db compact" */
    const char *usage;     /* usage line(s) printed first by --help, each ending in '\n' */
    const char *desc;      /* paragraph printed after the option list, or NULL */
    const opt_spec *opts;
    size_t n_opts;
    int max_pos;           /* more positional arguments than this is an error; -1: no limit */
    int stop_at_pos;       /* the first positional ends the options (a command and its arguments) */
} opt_cmd;

/*
 * Positional arguments, in order; v points into argv (which opts_parse
 * reorders) and v[n] is NULL, so a command after "--" can go to execvp.
 */
typedef struct opts_args {
    char **v;
    int n;
    int n_before_dd; /* how many came before a "--" (n when there was none) */
} opts_args;

/* opts_parse returned after printing --help: the command exits 0. */
#define OPTS_HELP 1

/*
 * Parses argv[1..argc-1] (argv[0] is the command name) against c->opts,
 * then fills options still absent from their environment variables.
 * Returns 0 (options stored, positionals in *pos), OPTS_HELP (help printed
 * on stdout), or HE_USAGE after printing one line "hearth CMD: ..." on
 * stderr. A lone "-" is a positional (stdin); "--" makes everything after
 * it positional. Lists may have been appended to before an error; the
 * caller releases them in every case.
 */
int opts_parse(const opt_cmd *c, int argc, char **argv, opts_args *pos);

/* The exit status for a nonzero opts_parse result: 0 after help, else 2. */
static inline int opts_exit(int rc) { return rc == OPTS_HELP ? 0 : 2; }

/* Writes the usage line, the generated option list and the description. */
void opts_help(const opt_cmd *c, FILE *f);

/* Prints "hearth CMD: " + the message + '\n' on stderr; returns 2 (usage exit status). */
int opts_fail(const opt_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the array of l (not the strings, which belong to argv/environ). */
void opts_list_release(opts_list *l);

#endif

/*
 * main.c: the hearth binary's entry point: dispatches to a subcommand.
 */
#include "core/common.h"
#include "cli/cmd.h"

static const struct {
    const char *name;
    const char *help;
} cmds[] = {
    {"server", "run the profile database with its Pyroscope-compatible API and web UI"},
    {"agent", "profile this host (perf_event) and push to a server"},
    {"record", "profile one command or process and write a profile or flame graph"},
    {"convert", "convert between pprof, folded, perf script, speedscope, flamebearer, SVG"},
    {"query", "query a Pyroscope-compatible server for a merged profile"},
    {"diff", "compare two selections on a server"},
    {"ingest", "upload profile files to a server"},
    {"export", "export stored profiles"},
    {"db", "verify, inspect or compact a data directory offline"},
};

static cmd_fn lookup(const char *name)
{
    if (!strcmp(name, "server")) return cmd_server;
    if (!strcmp(name, "agent")) return cmd_agent;
    if (!strcmp(name, "record")) return cmd_record;
    if (!strcmp(name, "convert")) return cmd_convert;
    if (!strcmp(name, "query")) return cmd_query;
    if (!strcmp(name, "diff")) return cmd_diff;
    if (!strcmp(name, "ingest")) return cmd_ingest;
    if (!strcmp(name, "export")) return cmd_export;
    if (!strcmp(name, "db")) return cmd_db;
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: hearth COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
        if (lookup(cmds[i].name)) fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\n'hearth COMMAND --help' describes a command. Version %s.\n", HEARTH_VERSION);
}

int main(int argc, char **argv)
{
    cmd_fn fn;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("hearth %s\n", HEARTH_VERSION);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
        if (strcmp(argv[1], cmds[i].name)) continue;
        fn = lookup(argv[1]);
        if (!fn) {
            fprintf(stderr, "hearth: '%s' is not part of this build\n", argv[1]);
            return 2;
        }
        return fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "hearth: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

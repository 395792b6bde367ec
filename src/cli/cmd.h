/*
 * cmd.h: the subcommands of the hearth binary. Each lives in its own
 * src/cli/cmd_NAME.c and returns the process exit status (0 ok, 1 error,
 * 2 usage). A subcommand not linked into this build is reported as such.
 */
#ifndef HEARTH_CLI_CMD_H
#define HEARTH_CLI_CMD_H

#define HEARTH_VERSION "0.1.0"

typedef int (*cmd_fn)(int argc, char **argv);

/* Weak: a build without a part still links, and says which part is missing. */
int cmd_convert(int argc, char **argv) __attribute__((weak));
int cmd_server(int argc, char **argv) __attribute__((weak));
int cmd_agent(int argc, char **argv) __attribute__((weak));
int cmd_record(int argc, char **argv) __attribute__((weak));
int cmd_query(int argc, char **argv) __attribute__((weak));
int cmd_diff(int argc, char **argv) __attribute__((weak));
int cmd_ingest(int argc, char **argv) __attribute__((weak));
int cmd_export(int argc, char **argv) __attribute__((weak));
int cmd_db(int argc, char **argv) __attribute__((weak));

#endif

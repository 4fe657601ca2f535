/* help.h — the one text that describes the command line: `peermcp --help`, every
 * `peermcp COMMAND --help`, and the man page peermcp(1), which the build generates from this
 * table (src/cli/mkman.c). A command's help lists only the flags it takes, and an example.
 *
 * Pure data and printing: no configuration, no I/O but the FILE given. Any thread. */
#ifndef PEERMCP_CLI_HELP_H
#define PEERMCP_CLI_HELP_H

#include <stdbool.h>
#include <stdio.h>

/* Which groups of shared flags a command takes (printed after its own). */
enum {
  CLI_FLAGS_CONFIG = 1u << 0, /* --config, --state-dir, --log-level */
  CLI_FLAGS_SERVE = 1u << 1,  /* --no-p2p, --no-stdio, --p2p-listen, --http-listen, … */
};

typedef struct cli_flag_help {
  const char *flag; /* "--peer TARGET" */
  const char *text; /* one or more lines, no trailing newline */
} cli_flag_help;

typedef struct cli_cmd_help {
  const char *name;        /* "task" */
  const char *summary;     /* one line for `peermcp --help` */
  const char *synopsis;    /* one or more "peermcp …" lines, '\n'-separated */
  const char *description; /* paragraphs, '\n'-separated lines, "\n\n" between paragraphs */
  const cli_flag_help *flags; /* its own flags, ended by {NULL, NULL} */
  unsigned shared;         /* CLI_FLAGS_* */
  const char *examples;    /* '\n'-separated command lines */
} cli_cmd_help;

/* The commands, in the order `peermcp --help` lists them; *n is their count. */
const cli_cmd_help *cli_help_commands(size_t *n);
/* The entry of `name`, or NULL. */
const cli_cmd_help *cli_help_find(const char *name);

/* `peermcp --help`. */
void cli_help_print_top(FILE *f);
/* `peermcp COMMAND --help` (name must be a command). */
void cli_help_print(FILE *f, const char *name);
/* Short usage on a usage error: the synopsis and "see peermcp COMMAND --help". */
void cli_help_print_usage(FILE *f, const char *name);
/* The man page peermcp(1) in roff (man macros), from the same table. */
void cli_help_print_man(FILE *f);

#endif

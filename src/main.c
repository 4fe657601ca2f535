/* main.c — the peermcp command line: picks a subcommand and hands it argv. The help text of
 * every command lives in src/cli/help.c (also the source of the man page). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/help.h"

static const struct {
  const char *name;
  int (*fn)(int, char **);
} k_cmds[] = {
    {"serve", cli_serve}, {"id", cli_id},         {"ping", cli_ping},     {"perf", cli_perf},     {"call", cli_call},
    {"task", cli_task},   {"cache", cli_cache},   {"status", cli_status}, {"worker", cli_worker}, {"queue", cli_queue},
    {"peers", cli_peers},
};

int main(int argc, char **argv) {
  if (argc < 2) {
    cli_help_print_top(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
    printf("peermcp %s\n", PEERMCP_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    if (argc > 2 && strcmp(argv[1], "help") == 0) {
      if (!cli_help_find(argv[2])) {
        fprintf(stderr, "peermcp: unknown command '%s'\n", argv[2]);
        return 2;
      }
      cli_help_print(stdout, argv[2]);
      return 0;
    }
    cli_help_print_top(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
    if (strcmp(argv[1], k_cmds[i].name) == 0) return k_cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "peermcp: unknown command '%s'\n\n", argv[1]);
  cli_help_print_top(stderr);
  return 2;
}

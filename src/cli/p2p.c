/* src/cli/p2p.c — placeholder: replaced by the module that implements these commands. */
#include <stdio.h>

#include "cli/cli.h"

int cli_id(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}

int cli_ping(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}

int cli_perf(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}


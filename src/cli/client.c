/* src/cli/client.c — placeholder: replaced by the module that implements these commands. */
#include <stdio.h>

#include "cli/cli.h"

int cli_call(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}

int cli_task(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}

int cli_cache(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}

int cli_status(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}

int cli_worker(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}


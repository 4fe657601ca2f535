/* src/cli/serve.c — placeholder: replaced by the module that implements these commands. */
#include <stdio.h>

#include "cli/cli.h"

int cli_serve(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "peermcp %s: not implemented yet\n", argv[0]);
  return 2;
}


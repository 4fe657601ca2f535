/* mkman.c — writes the man page peermcp(1) from the command line's help table (cli/help.c),
 * so `--help` and the page never disagree. Run by the build: `peermcp-mkman OUTPUT`. */
#include <stdio.h>

#include "cli/help.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: peermcp-mkman OUTPUT\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "w");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  cli_help_print_man(f);
  if (fclose(f) != 0) {
    perror(argv[1]);
    return 1;
  }
  return 0;
}

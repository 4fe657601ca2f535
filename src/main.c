/* main.c — the peermcp command line. (Placeholder until the CLI lands.) */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("peermcp %s\n", PEERMCP_VERSION);
    return 0;
  }
  fprintf(stderr, "peermcp: not implemented yet\n");
  return 2;
}

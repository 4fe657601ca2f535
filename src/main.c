/* main.c — the peermcp command line: picks a subcommand and hands it argv. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
} k_cmds[] = {
    {"serve", cli_serve, "run the MCP server (stdio) and the libp2p peer"},
    {"id", cli_id, "print this node's PeerId (creates the identity key if needed)"},
    {"ping", cli_ping, "libp2p-ping a peer: ping MULTIADDR [-n N]"},
    {"perf", cli_perf, "measure throughput to a peer with /perf/1.0.0"},
    {"call", cli_call, "call a tool: call [--peer ADDR] TOOL [JSON]"},
    {"task", cli_task, "task submit|get|wait|list|cancel [--peer ADDR]"},
    {"cache", cli_cache, "cache get|set|has|delete [--peer ADDR]"},
    {"status", cli_status, "status --peer ADDR [--detail]"},
    {"worker", cli_worker, "run a worker that claims and runs tasks [--peer ADDR]..."},
    {"peers", cli_peers, "print the peer table saved by serve [--source S] [--alive] [--limit N]"},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: peermcp [--version] [--help] COMMAND [ARGS]\n"
          "\n"
          "peermcp is an MCP server with a built-in libp2p peer.\n"
          "\n"
          "commands:\n");
  for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
    fprintf(f, "  %-8s %s\n", k_cmds[i].name, k_cmds[i].help);
  fprintf(f,
          "\n"
          "common options (every command): --config FILE, --state-dir DIR, --log-level LEVEL\n"
          "`peermcp COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
    printf("peermcp %s\n", PEERMCP_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
    if (strcmp(argv[1], k_cmds[i].name) == 0) return k_cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "peermcp: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}

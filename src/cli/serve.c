/* serve.c — `peermcp serve`: load the configuration and run a node with every part the
 * configuration turns on (src/node/node.h): the store, the built-in and command tools, MCP
 * Tasks, the libp2p peer and the P2P service, MCP on stdio and Streamable HTTP, signals. It
 * runs until stdin closes (without HTTP listeners) or SIGINT/SIGTERM arrives, then stops in the node's documented order (node.h:
 * transports drain → service → MCP Tasks → host → dispatcher → handles) and exits 0. A second
 * signal cancels the calls still running. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "node/node.h"
#include "util/log.h"

static void serve_usage(FILE *f) {
  fprintf(f,
          "usage: peermcp serve [OPTIONS]\n"
          "\n"
          "Serves MCP (JSON-RPC, newline-delimited) on stdin/stdout, both the 2026-07-28 and the\n"
          "2025-11-25…2024-11-05 revisions, plus the libp2p peer, and with --http-listen over\n"
          "Streamable HTTP at http://HOST:PORT/mcp. Logs are JSON lines on stderr.\n"
          "Exits 0 when stdin closes (after in-flight calls finish; with HTTP listeners only stdio\n"
          "closes then) or on SIGINT/SIGTERM.\n"
          "\n"
          "options:\n"
          "%s"
          "  -h, --help           this text\n",
          config_args_help());
}

int cli_serve(int argc, char **argv) {
  config_args args;
  config_args_init(&args);
  char err[1024];
  if (config_args_parse(&args, &argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err);
    config_args_free(&args);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      serve_usage(stdout);
      config_args_free(&args);
      return 0;
    }
    fprintf(stderr, "peermcp serve: unknown argument '%s'\n\n", argv[i]);
    serve_usage(stderr);
    config_args_free(&args);
    return 2;
  }
  config cfg;
  if (config_load(&cfg, &args, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err);
    config_args_free(&args);
    return 1;
  }
  log_set_level(cfg.log_level);
  int exit_code = 1;
  node_options o = {
      .name = "serve",
      .store = true,
      .maintenance = true,
      .tools = true,
      .service = true,
      .mcp_tasks = true,
      .host = NODE_HOST_LISTEN, /* when p2p.enabled */
      .stdio = true,            /* when stdio.enabled */
      .http = true,             /* when http.listen is set */
      .signals = true,
  };
  node *n = NULL;
  if (node_open(&cfg, &o, &n, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err);
  } else if (node_start(n, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err);
  } else if (node_run(n) == 0) {
    exit_code = 0;
  }
  node_close(n); /* stops it first when start failed */
  config_free(&cfg);
  config_args_free(&args);
  log_info("serve: exit", "{s:i}", "code", exit_code);
  return exit_code;
}

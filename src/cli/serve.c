/* serve.c — `peermcp serve`: load the configuration and run a node with every part the
 * configuration turns on (src/node/node.h): the store, the built-in and command tools, MCP
 * Tasks, the libp2p peer and the P2P service, MCP on stdio and Streamable HTTP, signals. It
 * runs until stdin closes (without HTTP listeners) or SIGINT/SIGTERM arrives, then stops in the node's documented order (node.h:
 * transports drain → service → MCP Tasks → host → dispatcher → handles) and exits 0. A second
 * signal cancels the calls still running. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/help.h"
#include "config/config.h"
#include "node/node.h"
#include "util/log.h"

/* Flag sets that cannot mean what they say are refused before anything starts: --p2p-listen
 * with --no-p2p, and a configuration that serves nothing at all (no stdio, no p2p, no HTTP). */
static int check_flag_set(const config_args *args, const config *cfg) {
  if (args->no_p2p && args->p2p_listen_count) {
    fprintf(stderr, "peermcp serve: --p2p-listen and --no-p2p contradict each other (drop one)\n");
    return CLI_EXIT_USAGE;
  }
  if (!cfg->stdio.enabled && !cfg->p2p.enabled && !cfg->http.listen_count) {
    fprintf(stderr, "peermcp serve: nothing to serve: stdio and the libp2p peer are off and no --http-listen "
                    "address is given (drop --no-stdio or --no-p2p, or add --http-listen HOST:PORT)\n");
    return CLI_EXIT_USAGE;
  }
  return 0;
}

int cli_serve(int argc, char **argv) {
  config_args args;
  config cfg;
  int rc = cli_load_config("serve", &argc, argv, &args, &cfg);
  if (rc) return rc;
  int exit_code = CLI_EXIT_FAIL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      cli_help_print(stdout, "serve");
      exit_code = CLI_EXIT_OK;
      goto out;
    }
    fprintf(stderr, "peermcp serve: unknown argument '%s'\n", argv[i]);
    cli_help_print_usage(stderr, "serve");
    exit_code = CLI_EXIT_USAGE;
    goto out;
  }
  if ((rc = check_flag_set(&args, &cfg)) != 0) {
    exit_code = rc;
    goto out;
  }
  char err[1024];
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
      .lock_state_dir = true, /* one serve per state directory */
  };
  node *n = NULL;
  bool ran = false;
  if (node_open(&cfg, &o, &n, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err); /* the one line that says why (not logged again) */
  } else if (node_start(n, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err);
  } else {
    ran = true;
    if (node_run(n) == 0) exit_code = CLI_EXIT_OK;
  }
  node_close(n); /* stops it first when start failed */
  if (ran) log_info("serve: exit", "{s:i}", "code", exit_code);
out:
  config_free(&cfg);
  config_args_free(&args);
  return exit_code;
}

/* src/cli/peers.c — `peermcp peers`: the peer table (issue 15 §6) as the serving node last
 * saved it in <state_dir>/peers (the peerstore snapshot, written while `serve` runs and at its
 * shutdown), one JSON object on stdout: {"peers": [{"peer_id", "addrs", "sources",
 * "first_seen", "last_seen", "connected", "latency_ms"?, "agent"?, "protocols"}…]}, most
 * recently seen or heard of first.
 *   --source S   only peers heard of from S (manual, identify, mdns, dht, bootstrap,
 *                rendezvous); repeatable (any of them)
 *   --alive      only peers contacted within p2p.peer_timeout_seconds
 *   --limit N    at most N rows (default 100, at most 1024)
 * Sends nothing on the network. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/help.h"
#include "config/config.h"
#include "p2p/host/peers.h"
#include "p2p/host/peerstore.h"
#include "util/clock.h"
#include "util/log.h"

static int usage_error(const char *msg) {
  fprintf(stderr, "peermcp peers: %s\n", msg);
  cli_help_print_usage(stderr, "peers");
  return CLI_EXIT_USAGE;
}

int cli_peers(int argc, char **argv) {
  config_args args;
  config cfg;
  char err[600];
  int rc = cli_load_config("peers", &argc, argv, &args, &cfg);
  if (rc) return rc;
  p2p_peer_filter f = {.limit = 100};
  for (int i = 1; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    uint64_t n;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      cli_help_print(stdout, "peers");
      config_free(&cfg);
      config_args_free(&args);
      return CLI_EXIT_OK;
    } else if (!strcmp(a, "--alive")) {
      f.alive_only = true;
    } else if (!strcmp(a, "--source")) {
      unsigned bit = 0;
      if (i + 1 >= argc || peerstore_source_parse(argv[++i], &bit) != 0) {
        snprintf(err, sizeof err, "--source: \"%.100s\" is not a source (manual, identify, mdns, dht, bootstrap, rendezvous)",
                 i < argc ? argv[i] : "");
        rc = usage_error(err);
      }
      f.sources |= bit;
    } else if (!strcmp(a, "--limit")) {
      if (cli_parse_uint("--limit", i + 1 < argc ? argv[++i] : NULL, 1, PEERSTORE_MAX_PEERS, &n, err, sizeof err) != 0)
        rc = usage_error(err);
      f.limit = (size_t)n;
    } else {
      snprintf(err, sizeof err, "unexpected argument \"%.500s\"", a);
      rc = usage_error(err);
    }
  }
  if (rc) {
    config_free(&cfg);
    config_args_free(&args);
    return rc;
  }
  f.alive_window_s = cfg.p2p.peer_timeout_seconds;
  char path[4200];
  snprintf(path, sizeof path, "%s/peers", cfg.state_dir);
  peerstore *ps = NULL;
  p2p_peer_row *rows = calloc(PEERSTORE_MAX_PEERS, sizeof *rows);
  json_t *arr = json_array();
  rc = 1;
  if (!rows || !arr || peerstore_new(&ps) != 0) {
    fprintf(stderr, "peermcp peers: out of memory\n");
  } else if ((rc = peerstore_load(ps, path)) != 0) {
    fprintf(stderr, "peermcp peers: %s: %s\n", path, strerror(-rc));
    rc = 1;
  } else {
    size_t n = p2p_peers_list(ps, &f, clock_wall_s(), rows, PEERSTORE_MAX_PEERS);
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, p2p_peer_row_json(&rows[i]));
    json_t *o = json_pack("{s:O}", "peers", arr);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
    rc = 0;
  }
  json_decref(arr);
  free(rows);
  peerstore_free(ps);
  config_free(&cfg);
  config_args_free(&args);
  return rc;
}

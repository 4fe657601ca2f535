/* src/cli/p2p.c — the libp2p subcommands:
 *   peermcp id                               print this node's PeerId (creates the key)
 *   peermcp ping MULTIADDR [-n N]            /ipfs/ping/1.0.0 round trips, one line per RTT
 *   peermcp perf MULTIADDR [--upload B] [--download B]   /perf/1.0.0 client, JSON result
 * All take the common configuration flags (--state-dir, --config, --log-level). ping and perf
 * run a node with a dialing host only (src/node/node.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "node/node.h"
#include "p2p/core/identity.h"
#include "p2p/core/peerid.h"
#include "util/clock.h"
#include "util/log.h"

#define CLI_TIMEOUT_MS 30000

/* ---------------------------------------------------------------- common */

/* Parses the common flags and loads the configuration; on error prints and returns the exit code. */
static int cli_load(const char *name, int *argc, char **argv, config_args *args, config *cfg) {
  char err[1024];
  config_args_init(args);
  if (config_args_parse(args, argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp %s: %s\n", name, err);
    config_args_free(args);
    return 2;
  }
  if (config_load(cfg, args, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp %s: %s\n", name, err);
    config_args_free(args);
    return 1;
  }
  log_set_level(cfg->log_level > LOG_WARNING ? cfg->log_level : LOG_WARNING);
  return 0;
}

int cli_id(int argc, char **argv) {
  config_args args;
  config cfg;
  int rc = cli_load("id", &argc, argv, &args, &cfg);
  if (rc) return rc;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf("usage: peermcp id [OPTIONS]\n\nPrints this node's PeerId, creating <state-dir>/identity.key if needed.\n\noptions:\n%s",
             config_args_help());
      config_free(&cfg);
      config_args_free(&args);
      return 0;
    }
    fprintf(stderr, "peermcp id: unknown argument '%s'\n", argv[i]);
    config_free(&cfg);
    config_args_free(&args);
    return 2;
  }
  keys_private k;
  keys_public pub;
  peerid id;
  char text[PEERID_STR_MAX];
  int exit_code = 1;
  rc = identity_load_or_create(cfg.state_dir, &k, NULL);
  if (rc == 0) {
    keys_private_public(&k, &pub);
    keys_private_wipe(&k);
    if (peerid_from_public(&pub, &id) == 0 && peerid_to_string(&id, text, sizeof text) == 0) {
      printf("%s\n", text);
      exit_code = 0;
    }
  } else {
    fprintf(stderr, "peermcp id: cannot load the identity in %s: %s\n", cfg.state_dir, strerror(-rc));
  }
  config_free(&cfg);
  config_args_free(&args);
  return exit_code;
}

/* ---------------------------------------------------------------- ping / perf clients */

typedef struct cli_run {
  node *node;
  uv_timer_t timer;
  p2p_host *host;
  const char *target;
  int count, done, failed;
  int exit_code;
  uint64_t upload, download;
} cli_run;

static void cli_finish(cli_run *r, int code) {
  r->exit_code = code;
  uv_timer_stop(&r->timer);
  if (!uv_is_closing((uv_handle_t *)&r->timer)) uv_close((uv_handle_t *)&r->timer, NULL);
  r->host = NULL;
  node_stop(r->node, NULL, NULL); /* closes the host */
}

static void cli_timeout(uv_timer_t *t) {
  cli_run *r = t->data;
  fprintf(stderr, "peermcp: timed out after %d ms\n", CLI_TIMEOUT_MS);
  cli_finish(r, 1);
}

static void ping_cb(int err, uint64_t rtt_us, void *ud) {
  cli_run *r = ud;
  r->done++;
  if (err) {
    r->failed++;
    fprintf(stderr, "ping %s: %s\n", r->target, strerror(-err));
    cli_finish(r, 1);
    return;
  }
  printf("PONG from %s: seq=%d time=%.3f ms\n", r->target, r->done, (double)rtt_us / 1000.0);
  fflush(stdout);
  if (r->done == r->count) {
    cli_finish(r, 0);
    return;
  }
  int rc = p2p_host_ping(r->host, r->target, ping_cb, r);
  if (rc) ping_cb(rc, 0, r);
}

static void perf_cb(int err, const p2p_perf_result *res, void *ud) {
  cli_run *r = ud;
  if (err || !res) {
    fprintf(stderr, "perf %s: %s\n", r->target, strerror(-err));
    cli_finish(r, 1);
    return;
  }
  double secs = (double)res->elapsed_us / 1e6;
  printf("{\"type\":\"final\",\"upload_bytes\":%llu,\"download_bytes\":%llu,\"time_seconds\":%.6f,"
         "\"upload_mbps\":%.1f,\"download_mbps\":%.1f}\n",
         (unsigned long long)res->uploaded, (unsigned long long)res->downloaded, secs,
         secs > 0 ? (double)res->uploaded * 8 / secs / 1e6 : 0.0,
         secs > 0 ? (double)res->downloaded * 8 / secs / 1e6 : 0.0);
  fflush(stdout);
  cli_finish(r, 0);
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-') return false;
  *out = v;
  return true;
}

static int cli_client(const char *name, int argc, char **argv, bool is_perf) {
  config_args args;
  config cfg;
  int rc = cli_load(name, &argc, argv, &args, &cfg);
  if (rc) return rc;
  cli_run r;
  memset(&r, 0, sizeof r);
  r.count = 1;
  r.exit_code = 1;
  int usage = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage = 1;
    } else if (!is_perf && !strcmp(a, "-n") && v && parse_u64(v, &n) && n >= 1 && n <= 100000) {
      r.count = (int)n;
      i++;
    } else if (is_perf && !strcmp(a, "--upload") && v && parse_u64(v, &r.upload)) {
      i++;
    } else if (is_perf && !strcmp(a, "--download") && v && parse_u64(v, &r.download)) {
      i++;
    } else if (a[0] == '/' && !r.target) {
      r.target = a;
    } else {
      usage = 2;
    }
  }
  if (usage || !r.target) {
    FILE *f = usage == 1 ? stdout : stderr;
    if (is_perf)
      fprintf(f, "usage: peermcp perf MULTIADDR [--upload BYTES] [--download BYTES] [OPTIONS]\n\n"
                 "Runs the /perf/1.0.0 client against MULTIADDR and prints a JSON result.\n\noptions:\n%s",
              config_args_help());
    else
      fprintf(f, "usage: peermcp ping MULTIADDR [-n N] [OPTIONS]\n\n"
                 "Dials MULTIADDR (/ip4|ip6/…/tcp/…[/p2p/ID]) and prints the RTT of N pings (default 1).\n\noptions:\n%s",
              config_args_help());
    config_free(&cfg);
    config_args_free(&args);
    return usage == 1 ? 0 : 2;
  }
  char err[1024];
  node_options no = {.name = name, .host = NODE_HOST_DIAL};
  if (node_open(&cfg, &no, &r.node, err, sizeof err) != 0 || node_start(r.node, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp %s: %s\n", name, err);
    goto out;
  }
  r.host = node_host(r.node);
  uv_timer_init(node_loop(r.node), &r.timer);
  r.timer.data = &r;
  uv_timer_start(&r.timer, cli_timeout, CLI_TIMEOUT_MS + (uint64_t)r.count * 1000u, 0);
  rc = is_perf ? p2p_host_perf(r.host, r.target, r.upload, r.download, perf_cb, &r)
               : p2p_host_ping(r.host, r.target, ping_cb, &r);
  if (rc) {
    fprintf(stderr, "peermcp %s %s: %s\n", name, r.target, strerror(-rc));
    cli_finish(&r, rc == -EINVAL ? 2 : 1);
  }
  if (node_run(r.node) != 0) r.exit_code = 1;
out:
  node_close(r.node); /* runs the loop until the timer and the host have closed */
  config_free(&cfg);
  config_args_free(&args);
  return r.exit_code;
}

int cli_ping(int argc, char **argv) { return cli_client("ping", argc, argv, false); }

int cli_perf(int argc, char **argv) { return cli_client("perf", argc, argv, true); }

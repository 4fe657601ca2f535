/* src/cli/p2p.c — the libp2p subcommands and the host start-up used by `serve`:
 *   peermcp id                               print this node's PeerId (creates the key)
 *   peermcp ping MULTIADDR [-n N]            /ipfs/ping/1.0.0 round trips, one line per RTT
 *   peermcp perf MULTIADDR [--upload B] [--download B]   /perf/1.0.0 client, JSON result
 * All take the common configuration flags (--state-dir, --config, --log-level). */
#include "cli/p2p.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "p2p/core/identity.h"
#include "p2p/core/peerid.h"
#include "util/clock.h"
#include "util/log.h"

#define CLI_TIMEOUT_MS 30000

/* ---------------------------------------------------------------- serve's host */

int cli_p2p_start(uv_loop_t *loop, const config *cfg, p2p_host **out) {
  p2p_host_config hc = {0};
  hc.state_dir = cfg->state_dir;
  hc.max_connections = cfg->p2p.max_connections;
  hc.max_streams_per_conn = cfg->p2p.max_streams_per_peer;
  const char *perf = getenv("PEERMCP_P2P_ENABLE_PERF");
  hc.enable_perf = perf && (!strcmp(perf, "1") || !strcmp(perf, "true") || !strcmp(perf, "yes"));
  p2p_host *h;
  int rc = p2p_host_new(loop, &hc, &h);
  if (rc) {
    log_error("p2p: cannot create the host", "{s:s, s:s}", "state_dir", cfg->state_dir, "error", strerror(-rc));
    return rc;
  }
  size_t ok = 0;
  int last = -EINVAL;
  for (size_t i = 0; i < cfg->p2p.listen_count; i++) {
    rc = p2p_host_listen(h, cfg->p2p.listen[i]);
    if (rc == 0) ok++;
    else last = rc;
  }
  if (!ok) {
    log_error("p2p: no listen address could be bound", "{s:i}", "listen_count", (int)cfg->p2p.listen_count);
    p2p_host_close(h, NULL, NULL);
    return last;
  }
  char msg[1200];
  snprintf(msg, sizeof msg, "peer_id=%s", p2p_host_peer_id(h));
  log_info(msg, "{s:s}", "peer_id", p2p_host_peer_id(h));
  char first[1100] = "";
  for (size_t i = 0;; i++) {
    char full[1100];
    if (p2p_host_announce_addr(h, i, full, sizeof full) != 0) break;
    if (!first[0]) snprintf(first, sizeof first, "%s", full);
    snprintf(msg, sizeof msg, "multiaddr=%s", full);
    log_info(msg, "{s:s, s:s}", "peer_id", p2p_host_peer_id(h), "multiaddr", full);
  }
  if (cfg->p2p.announce_file) {
    char def[4200];
    snprintf(def, sizeof def, "%s/announce.json", cfg->state_dir);
    const char *paths[2] = {def, strcmp(def, cfg->p2p.announce_file) ? cfg->p2p.announce_file : NULL};
    for (int i = 0; i < 2; i++) {
      if (!paths[i]) continue;
      rc = p2p_host_write_announce(h, paths[i]);
      if (rc) log_warn("p2p: cannot write the announce file", "{s:s, s:s}", "path", paths[i], "error", strerror(-rc));
      else log_info("p2p: announce file written", "{s:s, s:s}", "path", paths[i], "multiaddr", first);
    }
  }
  *out = h;
  return 0;
}

void cli_p2p_stop(p2p_host *h) {
  if (h) p2p_host_close(h, NULL, NULL);
}

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
  uv_loop_t loop;
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
  if (r->host) p2p_host_close(r->host, NULL, NULL);
  r->host = NULL;
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
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&r.loop) != 0) goto out;
  p2p_host_config hc = {0};
  hc.state_dir = cfg.state_dir;
  hc.no_peerstore_file = true;
  rc = p2p_host_new(&r.loop, &hc, &r.host);
  if (rc) {
    fprintf(stderr, "peermcp %s: cannot start the host: %s\n", name, strerror(-rc));
    uv_loop_close(&r.loop);
    goto out;
  }
  uv_timer_init(&r.loop, &r.timer);
  r.timer.data = &r;
  uv_timer_start(&r.timer, cli_timeout, CLI_TIMEOUT_MS + (uint64_t)r.count * 1000u, 0);
  rc = is_perf ? p2p_host_perf(r.host, r.target, r.upload, r.download, perf_cb, &r)
               : p2p_host_ping(r.host, r.target, ping_cb, &r);
  if (rc) {
    fprintf(stderr, "peermcp %s %s: %s\n", name, r.target, strerror(-rc));
    cli_finish(&r, rc == -EINVAL ? 2 : 1);
  }
  uv_run(&r.loop, UV_RUN_DEFAULT);
  uv_loop_close(&r.loop);
out:
  config_free(&cfg);
  config_args_free(&args);
  return r.exit_code;
}

int cli_ping(int argc, char **argv) { return cli_client("ping", argc, argv, false); }

int cli_perf(int argc, char **argv) { return cli_client("perf", argc, argv, true); }

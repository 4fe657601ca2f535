/* src/cli/p2p.c — the libp2p subcommands:
 *   peermcp id [--json]                       print this node's PeerId (creates the key)
 *   peermcp ping MULTIADDR [-n N] [--json]    /ipfs/ping/1.0.0 round trips and a summary
 *   peermcp perf MULTIADDR [--upload SIZE] [--download SIZE]   /perf/1.0.0 client, JSON result
 * All take the common configuration flags (--state-dir, --config, --log-level) and nothing of
 * `serve`. ping and perf run a node with a dialing host only (src/node/node.h); a dial error is
 * named (cli/common.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/help.h"
#include "config/config.h"
#include "node/node.h"
#include "node/statedir.h"
#include "p2p/core/identity.h"
#include "p2p/core/peerid.h"
#include "util/clock.h"
#include "util/log.h"

#define CLI_TIMEOUT_MS 30000
#define PERF_DEFAULT_BYTES (10ull << 20)
#define PERF_MAX_BYTES (16ull << 30)

static int usage_error(const char *cmd, const char *msg) {
  fprintf(stderr, "peermcp %s: %s\n", cmd, msg);
  cli_help_print_usage(stderr, cmd);
  return CLI_EXIT_USAGE;
}

/* ---------------------------------------------------------------- id */

int cli_id(int argc, char **argv) {
  config_args args;
  config cfg;
  int rc = cli_load_config("id", &argc, argv, &args, &cfg);
  if (rc) return rc;
  bool json = false, want_ma = false;
  int exit_code = CLI_EXIT_FAIL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      cli_help_print(stdout, "id");
      exit_code = CLI_EXIT_OK;
      goto out;
    }
    if (!strcmp(argv[i], "--json")) {
      json = true;
      continue;
    }
    if (!strcmp(argv[i], "--multiaddr")) {
      want_ma = true;
      continue;
    }
    char msg[600];
    snprintf(msg, sizeof msg, "unexpected argument \"%.500s\"", argv[i]);
    exit_code = usage_error("id", msg);
    goto out;
  }
  if (want_ma && json) {
    exit_code = usage_error("id", "--multiaddr and --json exclude each other (--json has both)");
    goto out;
  }
  struct stat sd;
  if (stat(cfg.state_dir, &sd) == 0 && !S_ISDIR(sd.st_mode)) {
    fprintf(stderr, "peermcp id: the state directory %s is not a directory (--state-dir / PEERMCP_STATE_DIR names a file)\n",
            cfg.state_dir);
    goto out;
  }
  char why[1024]; /* the same checks as every node (node/statedir.h, issue 9 item 9) */
  if (statedir_prepare(cfg.state_dir, why, sizeof why) != 0 || statedir_check_key(cfg.state_dir, why, sizeof why) != 0) {
    fprintf(stderr, "peermcp id: %s\n", why);
    goto out;
  }
  /* the address a running `serve` of this state directory announced (announce.json) */
  char apath[4200];
  snprintf(apath, sizeof apath, "%s/announce.json", cfg.state_dir);
  json_t *ann = json_load_file(apath, 0, NULL);
  const char *ma = json_string_value(json_object_get(ann, "multiaddr"));
  if (want_ma) {
    if (ma) {
      printf("%s\n", ma);
      exit_code = CLI_EXIT_OK;
    } else {
      fprintf(stderr, "peermcp id: no announced address in %s (is `peermcp serve` running with this state directory?)\n",
              apath);
    }
    json_decref(ann);
    goto out;
  }
  keys_private k;
  keys_public pub;
  peerid id;
  char text[PEERID_STR_MAX];
  rc = identity_load_or_create(cfg.state_dir, &k, NULL);
  if (rc == 0) {
    keys_private_public(&k, &pub);
    keys_private_wipe(&k);
    if (peerid_from_public(&pub, &id) == 0 && peerid_to_string(&id, text, sizeof text) == 0) {
      if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s?}", "peer_id", text, "state_dir", cfg.state_dir, "multiaddr",
                              ma && strstr(ma, text) ? ma : NULL);
        cli_print_json(o);
        json_decref(o);
      } else {
        printf("%s\n", text);
      }
      exit_code = CLI_EXIT_OK;
    }
  } else {
    fprintf(stderr, "peermcp id: cannot load the identity in %s: %s\n", cfg.state_dir, strerror(-rc));
  }
  json_decref(ann);
out:
  config_free(&cfg);
  config_args_free(&args);
  return exit_code;
}

/* ---------------------------------------------------------------- ping / perf clients */

#define PING_MAX 100000

typedef struct cli_run {
  node *node;
  uv_timer_t timer;
  bool timer_on;
  p2p_host *host;
  const char *target;
  bool json;
  int count, sent, received;
  double rtt_min, rtt_max, rtt_sum; /* ms */
  json_t *rtts;                     /* --json: every round trip, ms */
  int first_err;
  int exit_code;
  uint64_t upload, download;
} cli_run;

static void cli_finish(cli_run *r, int code) {
  r->exit_code = code;
  if (r->timer_on) {
    uv_timer_stop(&r->timer);
    if (!uv_is_closing((uv_handle_t *)&r->timer)) uv_close((uv_handle_t *)&r->timer, NULL);
  }
  r->host = NULL;
  node_stop(r->node, NULL, NULL); /* closes the host */
}

static void report_error(const char *cmd, cli_run *r, const char *protocol, int err) {
  char why[1600];
  svc_dial_error_text(r->host, r->target, protocol, err, why, sizeof why);
  fprintf(stderr, "peermcp %s: %s\n", cmd, why);
}

static void ping_summary(cli_run *r) {
  double loss = r->sent ? 100.0 * (r->sent - r->received) / r->sent : 0;
  if (r->json) {
    json_t *o = json_pack("{s:s, s:i, s:i, s:f}", "target", r->target, "sent", r->sent, "received", r->received,
                          "loss_percent", loss);
    if (o && r->received)
      json_object_set_new(o, "rtt_ms", json_pack("{s:f, s:f, s:f}", "min", r->rtt_min, "avg", r->rtt_sum / r->received,
                                                 "max", r->rtt_max));
    if (o && r->rtts) json_object_set(o, "rtts_ms", r->rtts);
    if (o && r->first_err) json_object_set_new(o, "error", json_string(svc_dial_error_code(r->first_err)));
    cli_print_json(o);
    json_decref(o);
    return;
  }
  printf("--- %s ping statistics ---\n%d sent, %d received, %.0f%% loss", r->target, r->sent, r->received, loss);
  if (r->received)
    printf(", rtt min/avg/max = %.3f/%.3f/%.3f ms", r->rtt_min, r->rtt_sum / r->received, r->rtt_max);
  printf("\n");
  fflush(stdout);
}

static void ping_done(cli_run *r) {
  ping_summary(r);
  cli_finish(r, r->received == r->sent && r->sent == r->count ? CLI_EXIT_OK : CLI_EXIT_FAIL);
}

static void ping_cb(int err, uint64_t rtt_us, void *ud) {
  cli_run *r = ud;
  if (err) {
    if (!r->first_err) r->first_err = err;
    report_error("ping", r, "/ipfs/ping/1.0.0", err);
    /* the peer cannot be reached or does not ping: the rest would fail the same way */
    ping_done(r);
    return;
  }
  r->received++;
  double ms = (double)rtt_us / 1000.0;
  if (r->received == 1 || ms < r->rtt_min) r->rtt_min = ms;
  if (ms > r->rtt_max) r->rtt_max = ms;
  r->rtt_sum += ms;
  if (r->rtts) json_array_append_new(r->rtts, json_real(ms));
  if (!r->json) {
    printf("PONG from %s: seq=%d time=%.3f ms\n", r->target, r->sent, ms);
    fflush(stdout);
  }
  if (r->sent == r->count) {
    ping_done(r);
    return;
  }
  r->sent++;
  int rc = p2p_host_ping(r->host, r->target, ping_cb, r);
  if (rc) {
    r->sent--;
    ping_cb(rc, 0, r);
  }
}

static void perf_cb(int err, const p2p_perf_result *res, void *ud) {
  cli_run *r = ud;
  if (err || !res) {
    report_error("perf", r, "/perf/1.0.0", err ? err : -EPROTO);
    cli_finish(r, CLI_EXIT_FAIL);
    return;
  }
  double secs = (double)res->elapsed_us / 1e6, up_s = (double)res->upload_us / 1e6,
         down_s = (double)res->download_us / 1e6;
  json_t *o = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f}", "type", "final", "upload_bytes",
                        (json_int_t)res->uploaded, "download_bytes", (json_int_t)res->downloaded, "time_seconds", secs,
                        "upload_seconds", up_s, "download_seconds", down_s, "upload_mbps",
                        up_s > 0 ? (double)res->uploaded * 8 / up_s / 1e6 : 0.0, "download_mbps",
                        down_s > 0 ? (double)res->downloaded * 8 / down_s / 1e6 : 0.0);
  cli_print_json(o);
  json_decref(o);
  cli_finish(r, CLI_EXIT_OK);
}

static void cli_timeout(uv_timer_t *t) {
  cli_run *r = t->data;
  r->timer_on = false;
  uv_close((uv_handle_t *)&r->timer, NULL);
  if (!r->first_err) r->first_err = -ETIMEDOUT;
  report_error(r->upload || r->download ? "perf" : "ping", r, NULL, -ETIMEDOUT);
  if (!(r->upload || r->download)) ping_summary(r);
  cli_finish(r, CLI_EXIT_FAIL);
}

static int cli_client(const char *name, int argc, char **argv, bool is_perf) {
  config_args args;
  config cfg;
  int rc = cli_load_config(name, &argc, argv, &args, &cfg);
  if (rc) return rc;
  cli_run r;
  memset(&r, 0, sizeof r);
  r.count = 1;
  r.exit_code = CLI_EXIT_FAIL;
  if (is_perf) r.upload = r.download = PERF_DEFAULT_BYTES;
  char err[600];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      cli_help_print(stdout, name);
      r.exit_code = CLI_EXIT_OK;
      goto out;
    } else if (!is_perf && !strcmp(a, "-n")) {
      if (cli_parse_uint("-n", v, 1, PING_MAX, &n, err, sizeof err) != 0) goto usage;
      r.count = (int)n;
      i++;
    } else if (!is_perf && !strcmp(a, "--json")) {
      r.json = true;
    } else if (is_perf && (!strcmp(a, "--upload") || !strcmp(a, "--download"))) {
      if (cli_parse_size(a, v, 0, PERF_MAX_BYTES, &n, err, sizeof err) != 0) goto usage;
      if (a[2] == 'u') r.upload = n;
      else r.download = n;
      i++;
    } else if (a[0] == '-' && a[1]) {
      snprintf(err, sizeof err, "%s is not an option of %s", a, name);
      goto usage;
    } else if (!r.target) {
      r.target = a;
    } else {
      snprintf(err, sizeof err, "unexpected argument \"%.500s\"", a);
      goto usage;
    }
  }
  if (!r.target) {
    snprintf(err, sizeof err, "which peer? (a MULTIADDR such as /ip4/127.0.0.1/tcp/9710/p2p/12D3KooW…)");
    goto usage;
  }
  if (svc_target_problem(r.target, NULL, err, sizeof err)) goto usage;
  if (is_perf && !r.upload && !r.download) {
    snprintf(err, sizeof err, "--upload and --download are both 0: nothing to measure");
    goto usage;
  }
  char nerr[1024];
  node_options no = {.name = name, .host = NODE_HOST_DIAL};
  if (node_open(&cfg, &no, &r.node, nerr, sizeof nerr) != 0 || node_start(r.node, nerr, sizeof nerr) != 0) {
    fprintf(stderr, "peermcp %s: %s\n", name, nerr);
    goto out;
  }
  r.host = node_host(r.node);
  if (r.json) r.rtts = json_array();
  uv_timer_init(node_loop(r.node), &r.timer);
  r.timer.data = &r;
  r.timer_on = true;
  uv_timer_start(&r.timer, cli_timeout,
                 CLI_TIMEOUT_MS + (is_perf ? (r.upload + r.download) / (1u << 20) * 100u : (uint64_t)r.count * 1000u), 0);
  if (!is_perf) r.sent = 1;
  rc = is_perf ? p2p_host_perf(r.host, r.target, r.upload, r.download, perf_cb, &r)
               : p2p_host_ping(r.host, r.target, ping_cb, &r);
  if (rc) {
    if (!is_perf) r.sent = 0;
    r.first_err = rc;
    report_error(name, &r, is_perf ? "/perf/1.0.0" : "/ipfs/ping/1.0.0", rc);
    cli_finish(&r, rc == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL);
  }
  if (node_run(r.node) != 0) r.exit_code = CLI_EXIT_FAIL;
  goto out;
usage:
  r.exit_code = usage_error(name, err);
out:
  node_close(r.node); /* runs the loop until the timer and the host have closed */
  json_decref(r.rtts);
  config_free(&cfg);
  config_args_free(&args);
  return r.exit_code;
}

int cli_ping(int argc, char **argv) { return cli_client("ping", argc, argv, false); }

int cli_perf(int argc, char **argv) { return cli_client("perf", argc, argv, true); }

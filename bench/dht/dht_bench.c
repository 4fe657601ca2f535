/* dht_bench.c — a Kademlia DHT of N peermcp hosts in one process on one libuv loop, over real
 * TCP on 127.0.0.1 (Noise, Yamux, identify, the /ipfs/kad/1.0.0 service): how often a lookup
 * finds its peer, in how many hops (against log2 N), and how long it takes (`make bench-dht`,
 * bench/dht/run.sh).
 *
 *   dht_bench [--nodes N] [--lookups M] [--concurrency C] [--seed S] [--boot B]
 *
 * Build-up: node i (i ≥ 1) bootstraps from B random earlier nodes, one node at a time; then
 * every node looks up its own id once (the spec's self-lookup), C at a time. Measurement: M
 * find_peer lookups from a random node to a random other node, C in flight. Prints one JSON
 * object on stdout. All nodes share one thread, so latency includes the CPU of every hop
 * (handshakes, encryption) on one core; it is not network latency. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "p2p/host/svc_kad.h"
#include "util/log.h"

typedef struct node {
  p2p_host *h;
  p2p_kad *k;
  char dir[64];
  char addr[256];
} node;

static uv_loop_t loop;
static node *nodes;
static int n_nodes = 100, n_lookups = 200, concurrency = 4, n_boot = 3;
static unsigned seed = 1;
static int pending;

static unsigned rnd(void) {
  seed = seed * 1103515245u + 12345u;
  return (seed >> 8) & 0xffffff;
}

static void on_identify(p2p_host *h, const p2p_event *ev, void *ud) {
  (void)h;
  node *n = ud;
  if (n->k && ev->peer_id) p2p_kad_peer_identified(n->k, ev->peer_id);
}

static void run_until(int *counter) {
  while (*counter > 0) uv_run(&loop, UV_RUN_ONCE);
}

static void boot_done(p2p_kad *k, int err, size_t acked, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  (void)err;
  (void)acked;
  (void)st;
  (void)ud;
  pending--;
}

/* ---------------------------------------------------------------- measurement */

typedef struct result {
  int ok;
  uint32_t hops, queries;
  double ms;
} result;

static result *results;
static int started, finished, next_self;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

typedef struct job {
  int idx;
  int to;
  uint64_t t0;
} job;

static void start_lookup(void);

static void found(p2p_kad *k, int err, const kad_peer_info *peers, size_t n, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  job *j = ud;
  result *r = &results[j->idx];
  char id[PEERID_STR_MAX] = "";
  if (!err && n == 1) (void)!peerid_to_string(&peers[0].id, id, sizeof id);
  r->ok = !err && strcmp(id, p2p_host_peer_id(nodes[j->to].h)) == 0 && peers[0].n_addrs > 0;
  r->hops = st->hops;
  r->queries = st->queries;
  r->ms = (double)(now_us() - j->t0) / 1000.0;
  free(j);
  finished++;
  pending--;
  start_lookup();
}

static void start_lookup(void) {
  while (started < n_lookups && started - finished < concurrency) {
    int from = (int)(rnd() % (unsigned)n_nodes), to;
    do to = (int)(rnd() % (unsigned)n_nodes);
    while (to == from);
    job *j = calloc(1, sizeof *j);
    j->idx = started++;
    j->to = to;
    j->t0 = now_us();
    int rc = p2p_kad_find_peer(nodes[from].k, p2p_host_peer_id(nodes[to].h), found, j);
    if (rc) {
      results[j->idx].ok = 0;
      free(j);
      finished++;
      pending--;
    }
  }
}

static int self_inflight;
static void start_self(void);

static void self_done(p2p_kad *k, int err, size_t acked, const p2p_kad_op_stats *st, void *ud) {
  self_inflight--;
  boot_done(k, err, acked, st, ud);
  start_self();
}

static void start_self(void) {
  while (next_self < n_nodes && self_inflight < concurrency) {
    int i = next_self++;
    if (p2p_kad_bootstrap(nodes[i].k, NULL, 0, self_done, NULL) == 0) self_inflight++;
    else pending--;
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
  if (n == 0) return 0;
  int i = (int)ceil(p / 100.0 * n) - 1;
  if (i < 0) i = 0;
  if (i >= n) i = n - 1;
  return v[i];
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = 0;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) v = atol(line + 6);
  if (f) fclose(f);
  return v;
}

static void closed(void *ud) {
  *(p2p_kad **)ud = NULL; /* identify events stop reaching it */
  pending--;
}

static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  (void)ud;
  pending--;
}

static void watchdog(int sig) {
  (void)sig;
  static const char m[] = "{\"error\":\"dht_bench watchdog timeout\"}\n";
  ssize_t w = write(2, m, sizeof m - 1);
  (void)w;
  _exit(3);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--nodes")) n_nodes = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--lookups")) n_lookups = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--concurrency")) concurrency = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seed")) seed = (unsigned)atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--boot")) n_boot = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: dht_bench [--nodes N] [--lookups M] [--concurrency C] [--seed S] [--boot B]\n");
      return 2;
    }
  }
  if (n_nodes < 2 || n_nodes > 2000 || n_lookups < 1 || concurrency < 1 || n_boot < 1) return 2;
  signal(SIGALRM, watchdog);
  alarm(900);
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0) return 1;
  log_set_level(LOG_ERROR);
  /* Both ends of every connection live in this process. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  uv_loop_init(&loop);
  nodes = calloc((size_t)n_nodes, sizeof *nodes);
  results = calloc((size_t)n_lookups, sizeof *results);
  uint64_t t_setup = now_us();
  for (int i = 0; i < n_nodes; i++) {
    node *n = &nodes[i];
    snprintf(n->dir, sizeof n->dir, "/tmp/dht_bench.XXXXXX");
    if (!mkdtemp(n->dir)) return 1;
    p2p_host_config cfg = {.state_dir = n->dir, .no_peerstore_file = true, .max_connections = 1024,
                           .idle_timeout_ms = 600000};
    p2p_kad_config kc = {.server = true, .rpc_timeout_ms = 10000, .query_timeout_ms = 60000,
                         .refresh_interval_ms = UINT32_MAX};
    if (p2p_host_new(&loop, &cfg, &n->h) || p2p_host_listen(n->h, "/ip4/127.0.0.1/tcp/0") ||
        p2p_kad_new(n->h, &loop, &kc, &n->k) || p2p_kad_start(n->k) ||
        p2p_host_announce_addr(n->h, 0, n->addr, sizeof n->addr)) {
      fprintf(stderr, "node %d: setup failed\n", i);
      return 1;
    }
    if (p2p_host_subscribe(n->h, P2P_EV_PEER_IDENTIFIED | P2P_EV_IDENTIFY_PUSH, on_identify, n) != 0) return 1;
  }
  /* Join one at a time, each from B random earlier nodes. */
  for (int i = 1; i < n_nodes; i++) {
    const char *boots[8];
    int nb = 0;
    for (int b = 0; b < n_boot && b < i && nb < 8; b++) boots[nb++] = nodes[rnd() % (unsigned)i].addr;
    pending = 1;
    if (p2p_kad_bootstrap(nodes[i].k, boots, (size_t)nb, boot_done, NULL) == 0) run_until(&pending);
  }
  /* Everyone looks itself up once. */
  pending = n_nodes;
  next_self = 0;
  start_self();
  run_until(&pending);
  double setup_s = (double)(now_us() - t_setup) / 1e6;
  size_t tmin = SIZE_MAX, tmax = 0, tsum = 0;
  for (int i = 0; i < n_nodes; i++) {
    p2p_kad_stats s;
    p2p_kad_get_stats(nodes[i].k, &s);
    tsum += s.table_size;
    if (s.table_size < tmin) tmin = s.table_size;
    if (s.table_size > tmax) tmax = s.table_size;
  }
  /* Lookups. */
  uint64_t t0 = now_us();
  pending = n_lookups;
  start_lookup();
  run_until(&pending);
  double run_s = (double)(now_us() - t0) / 1e6;
  int ok = 0;
  double *lat = calloc((size_t)n_lookups, sizeof *lat), *hops = calloc((size_t)n_lookups, sizeof *hops);
  double hsum = 0, qsum = 0;
  for (int i = 0; i < n_lookups; i++) {
    if (!results[i].ok) continue;
    lat[ok] = results[i].ms;
    hops[ok] = results[i].hops;
    hsum += results[i].hops;
    qsum += results[i].queries;
    ok++;
  }
  qsort(lat, (size_t)ok, sizeof *lat, cmp_d);
  qsort(hops, (size_t)ok, sizeof *hops, cmp_d);
  json_t *o = json_pack(
      "{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:{s:f, s:f, s:f, s:f}, s:{s:f, s:f, s:f, s:f}, s:f, "
      "s:{s:f, s:i, s:i}, s:f, s:f, s:f}",
      "nodes", n_nodes, "lookups", n_lookups, "concurrency", concurrency, "boot_peers", n_boot, "found", ok,
      "success_rate", (double)ok / n_lookups, "log2_n", log2((double)n_nodes), "hops", "mean", ok ? hsum / ok : 0.0,
      "p50", pct(hops, ok, 50), "p90", pct(hops, ok, 90), "max", ok ? hops[ok - 1] : 0.0, "latency_ms", "p50",
      pct(lat, ok, 50), "p95", pct(lat, ok, 95), "p99", pct(lat, ok, 99), "max", ok ? lat[ok - 1] : 0.0,
      "queries_mean", ok ? qsum / ok : 0.0, "table_size", "mean", (double)tsum / n_nodes, "min", (int)tmin, "max",
      (int)tmax, "setup_s", setup_s, "lookups_per_s", n_lookups / run_s, "peak_rss_mib", rss_kib() / 1024.0);
  char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
  printf("%s\n", s);
  fflush(stdout);
  free(s);
  json_decref(o);
  /* Close everything (also exercises the services' close paths at scale). */
  pending = n_nodes;
  for (int i = 0; i < n_nodes; i++) p2p_kad_close(nodes[i].k, closed, &nodes[i].k);
  run_until(&pending);
  pending = n_nodes;
  for (int i = 0; i < n_nodes; i++) p2p_host_close(nodes[i].h, host_closed, NULL);
  run_until(&pending);
  uv_run(&loop, UV_RUN_DEFAULT);
  for (int i = 0; i < n_nodes; i++) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", nodes[i].dir);
    if (system(cmd) != 0) break;
  }
  free(lat);
  free(hops);
  free(results);
  free(nodes);
  return ok == n_lookups ? 0 : 1;
}

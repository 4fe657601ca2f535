/* test_discovery.c — discovery as one part of the host (p2p/host/discovery.h): bootstrap, a
 * bare PeerId resolved from the peer table at once or through the DHT, nothing found with
 * everything off, the namespace found, cancellation at close. Real hosts on one loop over
 * 127.0.0.1. (mDNS needs multicast: tests/suites/45-discovery.sh runs it in a namespace.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include "p2p/host/discovery.h"
#include "p2p/host/peers.h"
#include "util/log.h"
#include "util/metrics.h"

#define N 5 /* the last one joins late */

typedef struct node {
  p2p_host *h;
  p2p_discovery *d;
  char dir[64];
  char addr[256];
} node;

static uv_loop_t loop;
static node nodes[N];
static int pending, last_err;
static size_t last_n;
static char last_ids[8][PEERID_STR_MAX];

static void run_until_done(unsigned timeout_ms) {
  uint64_t end = uv_now(&loop) + timeout_ms;
  while (pending > 0 && uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(pending, 0);
}

static void resolved(p2p_discovery *d, int err, const char *peer_id, void *ud) {
  (void)d;
  (void)peer_id;
  (void)ud;
  last_err = err;
  pending--;
}

static void found_ns(p2p_discovery *d, int err, const char *const *ids, size_t n, void *ud) {
  (void)d;
  (void)ud;
  last_err = err;
  last_n = n;
  for (size_t i = 0; i < n && i < 8; i++) snprintf(last_ids[i], PEERID_STR_MAX, "%s", ids[i]);
  pending--;
}

/* Node 0 is the bootstrap peer; the others bootstrap from it. dht = false leaves every part off. */
static void make_node(int i, bool dht);
static void make_node_host(int i);
static void make_node_discovery(int i, bool dht);

static void make_nodes(bool dht) {
  assert_int_equal(uv_loop_init(&loop), 0);
  for (int i = 0; i < N - 1; i++) make_node(i, dht);
}

static void make_node(int i, bool dht) {
  make_node_host(i);
  make_node_discovery(i, dht);
}

static void make_node_host(int i) {
  {
    node *n = &nodes[i];
    snprintf(n->dir, sizeof n->dir, "/tmp/test_discovery.XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    p2p_host_config cfg = {.state_dir = n->dir, .no_peerstore_file = true};
    assert_int_equal(p2p_host_new(&loop, &cfg, &n->h), 0);
    assert_int_equal(p2p_host_listen(n->h, "/ip4/127.0.0.1/tcp/0"), 0);
    assert_int_equal(p2p_host_announce_addr(n->h, 0, n->addr, sizeof n->addr), 0);
  }
}

static void make_node_discovery(int i, bool dht) {
  {
    const char *boot[2] = {nodes[0].addr, "/dnsaddr/bootstrap.invalid/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"};
    p2p_discovery_config dc = {.dht = dht,
                               .kad_cfg = {.server = true, .rpc_timeout_ms = 3000, .query_timeout_ms = 10000},
                               .rendezvous_publish = dht && i == 2,
                               .rv_cfg = {.ns = "disco-test", .republish_interval_ms = UINT32_MAX},
                               .bootstrap = boot,
                               .n_bootstrap = i ? 2 : 0,
                               .dnsaddr_resolve = false}; /* no DNS in unit tests: the entry is left out */
    assert_int_equal(p2p_discovery_new(nodes[i].h, &loop, &dc, &nodes[i].d), 0);
    assert_int_equal(p2p_discovery_add_to_host(nodes[i].d), 0); /* as a node runs it */
  }
}

static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  *(p2p_host **)ud = NULL;
  pending--;
}

/* The hosts close their discovery services (stop hooks) and wait for them. */
static int teardown(void **st) {
  (void)st;
  pending = 0;
  for (int i = 0; i < N; i++)
    if (nodes[i].h) {
      pending++;
      nodes[i].d = NULL;
      p2p_host_close(nodes[i].h, host_closed, &nodes[i].h);
    }
  while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  for (int i = 0; i < N; i++) {
    if (!nodes[i].dir[0]) continue;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", nodes[i].dir);
    assert_int_equal(system(cmd), 0);
  }
  memset(nodes, 0, sizeof nodes);
  return 0;
}

/* A counter of the discovery families: value of the series with label values v0 (and v1). */
static uint64_t mval(const char *family, const char *v0, const char *v1) {
  metrics_family *f = metrics_find(family);
  assert_non_null(f);
  int a = metrics_label_index(f, 0, v0);
  assert_true(a >= 0);
  if (!v1) return metrics_value(f, (unsigned)a);
  int b = metrics_label_index(f, 1, v1);
  assert_true(b >= 0);
  return metrics_value(f, metrics_series2(f, (unsigned)a, (unsigned)b));
}

static void wait_tables(int upto) {
  uint64_t end = uv_now(&loop) + 20000;
  for (;;) {
    bool all = true;
    for (int i = 0; i < upto; i++) {
      p2p_kad_stats s;
      p2p_kad_get_stats(p2p_discovery_kad(nodes[i].d), &s);
      all &= s.table_size >= 1;
    }
    if (all || uv_now(&loop) >= end) break;
    uv_run(&loop, UV_RUN_ONCE);
  }
}

static void test_discovery_resolves_a_peer_id_through_the_dht(void **st) {
  (void)st;
  make_nodes(true);
  wait_tables(N - 1);
  /* Node 4 joins after the others' lookups: node 3 has never heard of it; the DHT finds it. */
  make_node(N - 1, true);
  wait_tables(N);
  const char *target = p2p_host_peer_id(nodes[N - 1].h);
  p2p_peer_info info;
  assert_false(p2p_host_peer_info(nodes[3].h, target, &info) == 0 && info.n_listen_addrs > 0);
  uint64_t found0 = mval("peermcp_discovery_lookups_total", "dht", "found");
  uint64_t peers0 = mval("peermcp_discovery_peers_found_total", "dht", NULL);
  pending = 1;
  assert_int_equal(p2p_discovery_resolve(nodes[3].d, target, 15000, resolved, NULL), 0);
  assert_int_equal(pending, 1); /* never from inside the call */
  run_until_done(20000);
  assert_int_equal(last_err, 0);
  assert_int_equal(p2p_host_peer_info(nodes[3].h, target, &info), 0);
  assert_true(info.n_listen_addrs > 0);
  /* the lookup that found it, counted once (misses before it, if any, count as not_found) */
  assert_int_equal(mval("peermcp_discovery_lookups_total", "dht", "found") - found0, 1);
  assert_int_equal(mval("peermcp_discovery_peers_found_total", "dht", NULL) - peers0, 1);
  /* Known now: answered at once (on the next tick), no lookup. */
  uint64_t all0 = mval("peermcp_discovery_lookups_total", "dht", "found") +
                  mval("peermcp_discovery_lookups_total", "dht", "not_found");
  pending = 1;
  assert_int_equal(p2p_discovery_resolve(nodes[3].d, target, 15000, resolved, NULL), 0);
  run_until_done(2000);
  assert_int_equal(last_err, 0);
  assert_int_equal(mval("peermcp_discovery_lookups_total", "dht", "found") +
                       mval("peermcp_discovery_lookups_total", "dht", "not_found") - all0,
                   0);
  assert_int_equal(p2p_discovery_resolve(nodes[3].d, "junk", 100, resolved, NULL), -EINVAL);
}

/* The first lookup misses (the peer is not in the DHT yet); the resolve keeps looking until its
 * deadline and finds it once it joins. */
static void test_discovery_resolve_looks_again_until_the_deadline(void **st) {
  (void)st;
  make_nodes(true);
  wait_tables(N - 1);
  make_node_host(N - 1); /* exists, but has not joined the DHT */
  const char *target = p2p_host_peer_id(nodes[N - 1].h);
  pending = 1;
  assert_int_equal(p2p_discovery_resolve(nodes[3].d, target, 20000, resolved, NULL), 0);
  uint64_t end = uv_now(&loop) + 2500; /* long enough for the first lookup to end empty */
  while (uv_now(&loop) < end && pending) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(pending, 1);
  make_node_discovery(N - 1, true); /* joins: bootstraps through node 0 */
  run_until_done(25000);
  assert_int_equal(pending, 0);
  assert_int_equal(last_err, 0);
  p2p_peer_info info;
  assert_int_equal(p2p_host_peer_info(nodes[3].h, target, &info), 0);
  assert_true(info.n_listen_addrs > 0);
}

static size_t table_size(int i) {
  p2p_kad_stats s;
  p2p_kad_get_stats(p2p_discovery_kad(nodes[i].d), &s);
  return s.table_size;
}

/* The bootstrap peer refuses node 1's first dial (its port is bound but not listening: what
 * js-libp2p does to a sixth inbound connection within a second from one IP), so node 1's
 * routing table stays empty. A resolve then dials the bootstrap peers again instead of asking
 * an empty table until its deadline (the next upkeep's bootstrap would come after 60 s). */
static void test_discovery_resolve_dials_the_bootstrap_peers_again(void **st) {
  (void)st;
  assert_int_equal(uv_loop_init(&loop), 0);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  unsigned port = ntohs(sa.sin_port);
  node *n0 = &nodes[0];
  snprintf(n0->dir, sizeof n0->dir, "/tmp/test_discovery.XXXXXX");
  assert_non_null(mkdtemp(n0->dir));
  p2p_host_config cfg = {.state_dir = n0->dir, .no_peerstore_file = true};
  assert_int_equal(p2p_host_new(&loop, &cfg, &n0->h), 0);
  snprintf(n0->addr, sizeof n0->addr, "/ip4/127.0.0.1/tcp/%u/p2p/%s", port, p2p_host_peer_id(n0->h));
  uint64_t r_ok = mval("peermcp_bootstrap_rounds_total", "ok", NULL);
  uint64_t r_failed = mval("peermcp_bootstrap_rounds_total", "failed", NULL);
  uint64_t d_ok = mval("peermcp_bootstrap_dials_total", "ok", NULL);
  uint64_t d_failed = mval("peermcp_bootstrap_dials_total", "failed", NULL);
  uint64_t found = mval("peermcp_discovery_peers_found_total", "bootstrap", NULL);
  make_node(1, true); /* its bootstrap dial is refused */
  uint64_t end = uv_now(&loop) + 15000;
  while (p2p_discovery_boot_rounds(nodes[1].d) < 1 && uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(p2p_discovery_boot_rounds(nodes[1].d), 1);
  assert_int_equal(table_size(1), 0);
  /* one round, one dial (the /dnsaddr entry is not expanded here), both failed */
  assert_int_equal(mval("peermcp_bootstrap_rounds_total", "failed", NULL) - r_failed, 1);
  assert_int_equal(mval("peermcp_bootstrap_dials_total", "failed", NULL) - d_failed, 1);
  assert_int_equal(mval("peermcp_bootstrap_rounds_total", "ok", NULL) - r_ok, 0);
  assert_int_equal(mval("peermcp_bootstrap_dials_total", "ok", NULL) - d_ok, 0);
  /* The bootstrap peer is up now, and node 2 has joined the DHT through it. */
  close(fd);
  char listen[64];
  snprintf(listen, sizeof listen, "/ip4/127.0.0.1/tcp/%u", port);
  assert_int_equal(p2p_host_listen(n0->h, listen), 0);
  make_node_discovery(0, true);
  make_node(2, true);
  end = uv_now(&loop) + 20000;
  while ((table_size(0) < 1 || table_size(2) < 1 || p2p_discovery_boot_rounds(nodes[2].d) < 1) && uv_now(&loop) < end)
    uv_run(&loop, UV_RUN_ONCE);
  assert_true(table_size(2) >= 1);
  assert_int_equal(p2p_discovery_boot_rounds(nodes[2].d), 1);
  assert_int_equal(table_size(1), 0); /* nothing made node 1 try again yet */
  const char *target = p2p_host_peer_id(nodes[2].h);
  pending = 1;
  assert_int_equal(p2p_discovery_resolve(nodes[1].d, target, 15000, resolved, NULL), 0);
  run_until_done(20000);
  assert_int_equal(last_err, 0);
  unsigned rounds = p2p_discovery_boot_rounds(nodes[1].d);
  assert_true(rounds >= 2); /* a second may fail too: the host backs off from the refused address */
  assert_true(table_size(1) >= 1);
  /* Node 2's round and node 1's last: ok, one dial each, the bootstrap peer found twice; node
   * 1's earlier rounds failed, one dial each. */
  assert_int_equal(mval("peermcp_bootstrap_rounds_total", "ok", NULL) - r_ok, 2);
  assert_int_equal(mval("peermcp_bootstrap_dials_total", "ok", NULL) - d_ok, 2);
  assert_int_equal(mval("peermcp_discovery_peers_found_total", "bootstrap", NULL) - found, 2);
  assert_int_equal(mval("peermcp_bootstrap_rounds_total", "failed", NULL) - r_failed, rounds - 1);
  assert_int_equal(mval("peermcp_bootstrap_dials_total", "failed", NULL) - d_failed, rounds - 1);
  p2p_peer_info info;
  assert_int_equal(p2p_host_peer_info(nodes[1].h, target, &info), 0);
  assert_true(info.n_listen_addrs > 0);
}

static void test_discovery_finds_the_namespace(void **st) {
  (void)st;
  make_nodes(true);
  wait_tables(N - 1);
  /* Node 2 publishes; give its first round time, then node 1 looks. */
  uint64_t end = uv_now(&loop) + 3000;
  while (uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
  pending = 1;
  assert_int_equal(p2p_discovery_find_namespace(nodes[1].d, found_ns, NULL), 0);
  run_until_done(20000);
  assert_int_equal(last_err, 0);
  assert_int_equal(last_n, 1);
  assert_string_equal(last_ids[0], p2p_host_peer_id(nodes[2].h));
}

static void test_discovery_all_off_finds_nothing(void **st) {
  (void)st;
  make_nodes(false);
  pending = 1;
  assert_int_equal(p2p_discovery_resolve(nodes[1].d, p2p_host_peer_id(nodes[2].h), 5000, resolved, NULL), 0);
  run_until_done(2000);
  assert_int_equal(last_err, -ENOENT);
  assert_int_equal(p2p_discovery_find_namespace(nodes[1].d, found_ns, NULL), -ENOTSUP);
  p2p_host_stats hs;
  p2p_host_get_stats(nodes[1].h, &hs);
  assert_int_equal(hs.dials_ok + hs.dials_failed, 0); /* nothing dialed */
}

static void test_discovery_close_cancels_a_running_resolve(void **st) {
  (void)st;
  make_nodes(true);
  pending = 1;
  assert_int_equal(p2p_discovery_resolve(nodes[1].d, "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", 60000,
                                         resolved, NULL),
                   0);
  pending = 2; /* the resolve's answer, and the host's close */
  nodes[1].d = NULL;
  p2p_host_close(nodes[1].h, host_closed, &nodes[1].h); /* stops the discovery service first */
  assert_int_equal(pending, 1); /* the resolve got its answer at once */
  assert_int_equal(last_err, -ECANCELED);
  run_until_done(20000);
}

/* dht_follow_reachability: AutoNAT's verdict switches the DHT protocol handler (what identify
 * offers) — private removes it (client mode), public adds it back (server mode), unknown changes
 * nothing; each switch shows as a PROTOCOLS_CHANGED event for the DHT protocol. */
static int dht_proto_changes;
static void count_dht_proto(p2p_host *h, const p2p_event *ev, void *ud) {
  (void)h;
  if (ev->addr && strcmp(ev->addr, (const char *)ud) == 0) dht_proto_changes++;
}
static void test_discovery_dht_mode_follows_reachability(void **st) {
  (void)st;
  assert_int_equal(uv_loop_init(&loop), 0);
  make_node_host(0);
  p2p_discovery_config dc = {.dht = true, .dht_follow_reachability = true, .kad_cfg = {.server = true}};
  assert_int_equal(p2p_discovery_new(nodes[0].h, &loop, &dc, &nodes[0].d), 0);
  assert_int_equal(p2p_discovery_add_to_host(nodes[0].d), 0);
  const char *proto = p2p_kad_protocol(p2p_discovery_kad(nodes[0].d));
  assert_int_equal(p2p_host_subscribe(nodes[0].h, P2P_EV_PROTOCOLS_CHANGED, count_dht_proto, (void *)proto), 0);
  p2p_host_set_reachability(nodes[0].h, P2P_REACH_PRIVATE);
  assert_int_equal(dht_proto_changes, 1); /* server → client */
  p2p_host_set_reachability(nodes[0].h, P2P_REACH_UNKNOWN);
  assert_int_equal(dht_proto_changes, 1); /* unknown: no change */
  p2p_host_set_reachability(nodes[0].h, P2P_REACH_PUBLIC);
  assert_int_equal(dht_proto_changes, 2); /* client → server */
  p2p_host_set_reachability(nodes[0].h, P2P_REACH_PRIVATE);
  assert_int_equal(dht_proto_changes, 3);
  (void)p2p_host_unsubscribe(nodes[0].h, count_dht_proto, (void *)proto);
}

int main(void) {
  log_set_level(LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_discovery_resolves_a_peer_id_through_the_dht, teardown),
      cmocka_unit_test_teardown(test_discovery_resolve_looks_again_until_the_deadline, teardown),
      cmocka_unit_test_teardown(test_discovery_resolve_dials_the_bootstrap_peers_again, teardown),
      cmocka_unit_test_teardown(test_discovery_finds_the_namespace, teardown),
      cmocka_unit_test_teardown(test_discovery_all_off_finds_nothing, teardown),
      cmocka_unit_test_teardown(test_discovery_close_cancels_a_running_resolve, teardown),
      cmocka_unit_test_teardown(test_discovery_dht_mode_follows_reachability, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

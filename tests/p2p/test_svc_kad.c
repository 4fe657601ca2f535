/* test_svc_kad.c — the Kademlia and rendezvous host services with real hosts on one loop
 * (TCP over 127.0.0.1, Noise, Yamux): bootstrap, routing table from identify (server vs client
 * mode), find_peer, put/get of the Python record, provide/find_providers, rendezvous
 * publish/find, and a clean close with nothing leaked. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "p2p/host/svc_kad.h"
#include "p2p/host/svc_rendezvous.h"
#include "p2p/proto/kad_record.h"
#include "util/log.h"

#define N 5 /* node 4 is a DHT client */

typedef struct node {
  p2p_host *h;
  p2p_kad *k;
  p2p_rendezvous *rv;
  char dir[64];
  char addr[256];
} node;

static uv_loop_t loop;
static node nodes[N];
static int pending;     /* callbacks the current step waits for */
static int last_err;
static size_t last_n;
static char last_value[1024];
static char last_peers[8][PEERID_STR_MAX];
static int last_how[8];
static uint32_t last_hops;

static void on_identify(p2p_host *h, const p2p_event *ev, void *ud) {
  (void)h;
  node *n = ud;
  if (n->k && ev->peer_id) p2p_kad_peer_identified(n->k, ev->peer_id);
}

static void run_until_done(int want, unsigned timeout_ms) {
  pending = want;
  uint64_t end = uv_now(&loop) + timeout_ms;
  while (pending > 0 && uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(pending, 0);
}

static void noop(uv_timer_t *t) { (void)t; }

static void run_for(unsigned ms) {
  uint64_t end = uv_now(&loop) + ms;
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, noop, ms, 0);
  while (uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static void done_cb(p2p_kad *k, int err, size_t acked, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  (void)ud;
  (void)st;
  last_err = err;
  last_n = acked;
  pending--;
}

static void peers_cb(p2p_kad *k, int err, const kad_peer_info *peers, size_t n, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  (void)ud;
  last_err = err;
  last_n = n;
  last_hops = st->hops;
  for (size_t i = 0; i < n && i < 8; i++) (void)!peerid_to_string(&peers[i].id, last_peers[i], PEERID_STR_MAX);
  pending--;
}

static void value_cb(p2p_kad *k, int err, const uint8_t *v, size_t n, const char *from, const p2p_kad_op_stats *st,
                     void *ud) {
  (void)k;
  (void)ud;
  (void)from;
  (void)st;
  last_err = err;
  last_value[0] = 0;
  if (!err) snprintf(last_value, sizeof last_value, "%.*s", (int)n, (const char *)v);
  pending--;
}

static void rv_found(p2p_rendezvous *r, int err, const p2p_rendezvous_peer *peers, size_t n, void *ud) {
  (void)r;
  (void)ud;
  last_err = err;
  last_n = n;
  for (size_t i = 0; i < n && i < 8; i++) {
    snprintf(last_peers[i], PEERID_STR_MAX, "%s", peers[i].peer_id);
    last_how[i] = (int)peers[i].how;
  }
  pending--;
}

static void rv_published(p2p_rendezvous *r, int err, size_t ra, size_t pa, void *ud) {
  (void)r;
  (void)ud;
  if (err == 0 && ra > 0 && pa > 0) pending--;
}

static int setup(void **st) {
  (void)st;
  log_set_level(LOG_ERROR);
  assert_int_equal(uv_loop_init(&loop), 0);
  for (int i = 0; i < N; i++) {
    node *n = &nodes[i];
    snprintf(n->dir, sizeof n->dir, "/tmp/test_svc_kad.XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    p2p_host_config cfg = {.state_dir = n->dir, .no_peerstore_file = true};
    assert_int_equal(p2p_host_new(&loop, &cfg, &n->h), 0);
    assert_int_equal(p2p_host_listen(n->h, "/ip4/127.0.0.1/tcp/0"), 0);
    assert_int_equal(p2p_host_subscribe(n->h, P2P_EV_PEER_IDENTIFIED | P2P_EV_IDENTIFY_PUSH, on_identify, n), 0);
    p2p_kad_config kc = {.server = i != N - 1, .rpc_timeout_ms = 3000, .query_timeout_ms = 15000};
    assert_int_equal(p2p_kad_new(n->h, &loop, &kc, &n->k), 0);
    assert_int_equal(p2p_kad_start(n->k), 0);
    assert_int_equal(p2p_host_announce_addr(n->h, 0, n->addr, sizeof n->addr), 0);
  }
  return 0;
}

/* ud: the node field that held the closed object (NULLed, so identify events stop using it). */
static void closed(void *ud) {
  if (ud) *(void **)ud = NULL;
  pending--;
}

static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  (void)ud;
  pending--;
}

static int teardown(void **st) {
  (void)st;
  int want = 0;
  pending = 0;
  for (int i = 0; i < N; i++) {
    if (nodes[i].rv) {
      want++;
      p2p_rendezvous_close(nodes[i].rv, closed, &nodes[i].rv);
    }
    if (nodes[i].k) {
      want++;
      p2p_kad_close(nodes[i].k, closed, &nodes[i].k);
    }
  }
  pending = want;
  while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
  pending = N;
  for (int i = 0; i < N; i++) p2p_host_close(nodes[i].h, host_closed, NULL);
  while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  for (int i = 0; i < N; i++) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", nodes[i].dir);
    assert_int_equal(system(cmd), 0);
  }
  memset(nodes, 0, sizeof nodes);
  return 0;
}

static void bootstrap_all(void) {
  const char *b[1] = {nodes[0].addr};
  for (int i = 1; i < N; i++) assert_int_equal(p2p_kad_bootstrap(nodes[i].k, b, 1, done_cb, NULL), 0);
  run_until_done(N - 1, 20000);
  /* A second round lets every server learn the others. */
  for (int i = 1; i < N; i++) assert_int_equal(p2p_kad_bootstrap(nodes[i].k, b, 1, done_cb, NULL), 0);
  run_until_done(N - 1, 20000);
}

static void test_svc_kad_table_holds_servers_only(void **st) {
  (void)st;
  bootstrap_all();
  run_for(300);
  p2p_kad_stats s;
  p2p_kad_get_stats(nodes[0].k, &s);
  assert_int_equal(s.table_size, N - 2); /* the other servers, not the client */
  p2p_kad_get_stats(nodes[N - 1].k, &s);
  assert_true(s.table_size >= 1); /* a client keeps servers in its table too */
}

static void test_svc_kad_find_peer(void **st) {
  (void)st;
  bootstrap_all();
  assert_int_equal(p2p_kad_find_peer(nodes[N - 1].k, p2p_host_peer_id(nodes[2].h), peers_cb, NULL), 0);
  run_until_done(1, 20000);
  assert_int_equal(last_err, 0);
  assert_int_equal(last_n, 1);
  assert_string_equal(last_peers[0], p2p_host_peer_id(nodes[2].h));
  /* Someone nobody knows: -ENOENT once the lookup ran out of peers. */
  assert_int_equal(p2p_kad_find_peer(nodes[1].k, "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", peers_cb,
                                     NULL),
                   0);
  run_until_done(1, 20000);
  assert_int_equal(last_err, -ENOENT);
  assert_int_equal(p2p_kad_find_peer(nodes[1].k, "not-a-peer", peers_cb, NULL), -EINVAL);
}

static void test_svc_kad_put_get_python_record(void **st) {
  (void)st;
  bootstrap_all();
  char key[256], v[512];
  int kl = kad_rendezvous_record_key("t1", key, sizeof key);
  assert_true(kl > 0);
  assert_true(kad_rendezvous_record_make(p2p_host_peer_id(nodes[1].h), nodes[1].addr, 123.5, v, sizeof v) > 0);
  /* A record naming another peer is refused before anything is sent. */
  assert_int_equal(p2p_kad_put_value(nodes[2].k, (const uint8_t *)key, (size_t)kl, (const uint8_t *)v, strlen(v),
                                     done_cb, NULL),
                   -EPERM);
  assert_int_equal(p2p_kad_put_value(nodes[1].k, (const uint8_t *)key, (size_t)kl, (const uint8_t *)v, strlen(v),
                                     done_cb, NULL),
                   0);
  run_until_done(1, 20000);
  assert_int_equal(last_err, 0);
  assert_true(last_n >= 1);
  assert_int_equal(p2p_kad_get_value(nodes[N - 1].k, (const uint8_t *)key, (size_t)kl, value_cb, NULL), 0);
  run_until_done(1, 20000);
  assert_int_equal(last_err, 0);
  assert_string_equal(last_value, v);
}

static void test_svc_kad_provide_and_find(void **st) {
  (void)st;
  bootstrap_all();
  uint8_t mh[KAD_PROVIDER_KEY_LEN];
  kad_rendezvous_provider_key("t2", mh);
  assert_int_equal(p2p_kad_provide(nodes[3].k, mh, sizeof mh, done_cb, NULL), 0);
  run_until_done(1, 20000);
  assert_int_equal(last_err, 0);
  assert_int_equal(p2p_kad_find_providers(nodes[N - 1].k, mh, sizeof mh, 5, peers_cb, NULL), 0);
  run_until_done(1, 20000);
  assert_int_equal(last_err, 0);
  assert_int_equal(last_n, 1);
  assert_string_equal(last_peers[0], p2p_host_peer_id(nodes[3].h));
}

static void test_svc_rendezvous_publish_and_find(void **st) {
  (void)st;
  bootstrap_all();
  p2p_rendezvous_config pub = {.ns = "t3", .publish = true, .republish_interval_ms = UINT32_MAX};
  assert_int_equal(p2p_rendezvous_new(nodes[2].k, nodes[2].h, &loop, &pub, &nodes[2].rv), 0);
  assert_int_equal(p2p_rendezvous_start(nodes[2].rv, rv_published, NULL), 0);
  run_until_done(1, 20000);
  p2p_rendezvous_config look = {.ns = "t3"};
  assert_int_equal(p2p_rendezvous_new(nodes[N - 1].k, nodes[N - 1].h, &loop, &look, &nodes[N - 1].rv), 0);
  assert_int_equal(p2p_rendezvous_start(nodes[N - 1].rv, NULL, NULL), 0);
  assert_int_equal(p2p_rendezvous_find(nodes[N - 1].rv, rv_found, NULL), 0);
  run_until_done(1, 20000);
  assert_int_equal(last_err, 0);
  assert_int_equal(last_n, 1);
  assert_string_equal(last_peers[0], p2p_host_peer_id(nodes[2].h));
  assert_true(last_how[0] & P2P_RV_RECORD);
  assert_true(last_how[0] & P2P_RV_PROVIDER);
  assert_true(last_how[0] & P2P_RV_RAW_PROVIDER); /* node 2 answers the raw key itself */
}

static void test_svc_kad_close_with_operations_running(void **st) {
  (void)st;
  bootstrap_all();
  /* Operations in flight at close get -ECANCELED, exactly once. */
  assert_int_equal(p2p_kad_closest_peers(nodes[1].k, (const uint8_t *)"x", 1, peers_cb, NULL), 0);
  uv_run(&loop, UV_RUN_NOWAIT); /* let it send its first queries */
  pending = 2;
  last_err = 0;
  p2p_kad_close(nodes[1].k, closed, &nodes[1].k);
  assert_int_equal(pending, 1); /* the operation's callback ran, once */
  assert_int_equal(last_err, -ECANCELED);
  run_until_done(1, 20000);     /* then the close completed */
  /* The other nodes keep working without node 1's DHT (its host still answers identify). */
  assert_int_equal(p2p_kad_find_peer(nodes[N - 1].k, p2p_host_peer_id(nodes[3].h), peers_cb, NULL), 0);
  run_until_done(1, 20000);
  assert_int_equal(last_err, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_svc_kad_table_holds_servers_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_svc_kad_find_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_svc_kad_put_get_python_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_svc_kad_provide_and_find, setup, teardown),
      cmocka_unit_test_setup_teardown(test_svc_rendezvous_publish_and_find, setup, teardown),
      cmocka_unit_test_setup_teardown(test_svc_kad_close_with_operations_running, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

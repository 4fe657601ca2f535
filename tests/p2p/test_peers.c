/* test_peers.c — the peer table (issue 15 §6): addresses with sources, filters (sources,
 * alive_only, limit), latency, expiry of addresses not heard of, persistence in the peerstore
 * snapshot, and the bound on the table. */
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

#include "kadutil.h"
#include "p2p/host/peers.h"
#include "util/log.h"

static uv_loop_t loop;
static char dir[64];

static p2p_host *open_host(bool persist) {
  p2p_host_config cfg = {.state_dir = dir, .no_peerstore_file = !persist};
  p2p_host *h;
  assert_int_equal(p2p_host_new(&loop, &cfg, &h), 0);
  return h;
}

static void closed(p2p_host *h, void *ud) {
  (void)h;
  *(int *)ud = 1;
}

static void close_host(p2p_host *h) {
  int done = 0;
  p2p_host_close(h, closed, &done);
  while (!done) uv_run(&loop, UV_RUN_ONCE);
}

static int setup(void **st) {
  (void)st;
  log_set_level(LOG_ERROR);
  assert_int_equal(uv_loop_init(&loop), 0);
  snprintf(dir, sizeof dir, "/tmp/test_peers.XXXXXX");
  assert_non_null(mkdtemp(dir));
  return 0;
}

static int teardown(void **st) {
  (void)st;
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

static void id_of(uint32_t seed, char out[PEERID_STR_MAX]) {
  peerid p = test_peer(seed, NULL, NULL);
  assert_int_equal(peerid_to_string(&p, out, PEERID_STR_MAX), 0);
}

static void test_peers_addrs_sources_and_filters(void **st) {
  (void)st;
  p2p_host *h = open_host(false);
  char a[PEERID_STR_MAX], b[PEERID_STR_MAX], c[PEERID_STR_MAX], withp2p[300];
  id_of(1, a);
  id_of(2, b);
  id_of(3, c);
  snprintf(withp2p, sizeof withp2p, "/ip4/10.0.0.1/tcp/1/p2p/%s", a);
  const char *aa[3] = {withp2p, "/ip4/10.0.0.2/tcp/2", "garbage"};
  assert_int_equal(p2p_host_add_peer_addrs(h, a, aa, 3, P2P_SRC_MDNS), 2);
  assert_int_equal(p2p_host_add_peer_addrs(h, a, aa, 2, P2P_SRC_DHT), 0); /* known: refreshed only */
  char other[300];
  snprintf(other, sizeof other, "/ip4/10.0.0.3/tcp/3/p2p/%s", b);
  const char *wrong[1] = {other};
  assert_int_equal(p2p_host_add_peer_addrs(h, a, wrong, 1, P2P_SRC_DHT), 0); /* names b: skipped */
  const char *bb[1] = {"/ip4/10.0.0.4/tcp/4"};
  assert_int_equal(p2p_host_add_peer_addrs(h, b, bb, 1, P2P_SRC_BOOTSTRAP), 1);
  assert_int_equal(p2p_host_add_peer_addrs(h, c, NULL, 0, P2P_SRC_MANUAL), 0);
  assert_int_equal(p2p_host_add_peer_addrs(h, p2p_host_peer_id(h), bb, 1, P2P_SRC_MANUAL), -EINVAL);
  assert_int_equal(p2p_host_add_peer_addrs(h, "nope", bb, 1, P2P_SRC_MANUAL), -EINVAL);
  assert_int_equal(p2p_host_record_latency(h, b, 12.5), 0);
  assert_int_equal(p2p_host_record_latency(h, "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", 1), -ENOENT);

  p2p_peer_row rows[8];
  size_t n = p2p_host_list_peers(h, NULL, rows, 8);
  assert_int_equal(n, 3);
  const p2p_peer_row *ra = NULL, *rb = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(rows[i].peer_id, a)) ra = &rows[i];
    if (!strcmp(rows[i].peer_id, b)) rb = &rows[i];
  }
  assert_non_null(ra);
  assert_int_equal(ra->sources, P2P_SRC_MDNS | P2P_SRC_DHT);
  assert_int_equal(ra->n_addrs, 2);
  assert_string_equal(ra->addrs[0], "/ip4/10.0.0.1/tcp/1"); /* /p2p/ removed */
  assert_false(ra->connected);
  assert_true(ra->first_seen > 0);
  assert_true(ra->last_seen == 0); /* never contacted */
  assert_true(rb->latency_ms == 12.5);
  p2p_peer_filter only_boot = {.sources = P2P_SRC_BOOTSTRAP | P2P_SRC_MANUAL};
  assert_int_equal(p2p_host_list_peers(h, &only_boot, rows, 8), 2);
  p2p_peer_filter alive = {.alive_only = true};
  assert_int_equal(p2p_host_list_peers(h, &alive, rows, 8), 0); /* nobody connected or contacted */
  p2p_peer_filter one = {.limit = 1};
  assert_int_equal(p2p_host_list_peers(h, &one, rows, 8), 1);
  assert_int_equal(p2p_host_list_peers(h, NULL, rows, 2), 2);
  close_host(h);
}

static void test_peers_expire_addresses_not_heard_of(void **st) {
  (void)st;
  p2p_host *h = open_host(false);
  char a[PEERID_STR_MAX];
  id_of(1, a);
  const char *aa[1] = {"/ip4/10.0.0.1/tcp/1"};
  assert_int_equal(p2p_host_add_peer_addrs(h, a, aa, 1, P2P_SRC_MDNS), 1);
  assert_int_equal(p2p_host_expire_peer_addrs(h, 3600), 0); /* fresh */
  usleep(20000);
  assert_int_equal(p2p_host_expire_peer_addrs(h, 0.01), 1);
  p2p_peer_row rows[2];
  assert_int_equal(p2p_host_list_peers(h, NULL, rows, 2), 1);
  assert_int_equal(rows[0].n_addrs, 0); /* the peer stays, its stale address is gone */
  close_host(h);
}

static void test_peers_persisted_in_the_snapshot(void **st) {
  (void)st;
  p2p_host *h = open_host(true);
  char a[PEERID_STR_MAX];
  id_of(7, a);
  const char *aa[1] = {"/ip4/10.0.0.7/tcp/7"};
  assert_int_equal(p2p_host_add_peer_addrs(h, a, aa, 1, P2P_SRC_RENDEZVOUS | P2P_SRC_DHT), 1);
  assert_int_equal(p2p_host_record_latency(h, a, 3.25), 0);
  close_host(h);
  char path[128];
  snprintf(path, sizeof path, "%s/peers", dir);
  assert_int_equal(access(path, R_OK), 0);
  h = open_host(true);
  p2p_peer_row rows[2];
  assert_int_equal(p2p_host_list_peers(h, NULL, rows, 2), 1);
  assert_string_equal(rows[0].peer_id, a);
  assert_int_equal(rows[0].sources, P2P_SRC_RENDEZVOUS | P2P_SRC_DHT);
  assert_int_equal(rows[0].n_addrs, 1);
  assert_true(rows[0].latency_ms == 3.25);
  assert_int_equal(p2p_host_expire_peer_addrs(h, 3600), 0); /* the address's time survived too */
  close_host(h);
}

static void test_peers_table_is_bounded(void **st) {
  (void)st;
  p2p_host *h = open_host(false);
  const char *aa[1] = {"/ip4/10.0.0.1/tcp/1"};
  for (uint32_t i = 0; i < PEERSTORE_MAX_PEERS + 50; i++) {
    char id[PEERID_STR_MAX];
    id_of(100 + i, id);
    assert_true(p2p_host_add_peer_addrs(h, id, aa, 1, P2P_SRC_DHT) >= 0);
  }
  p2p_peer_row *rows = calloc(PEERSTORE_MAX_PEERS + 100, sizeof *rows);
  assert_int_equal(p2p_host_list_peers(h, NULL, rows, PEERSTORE_MAX_PEERS + 100), PEERSTORE_MAX_PEERS);
  /* The newest are kept (least recently heard of evicted). */
  char last[PEERID_STR_MAX];
  id_of(100 + PEERSTORE_MAX_PEERS + 49, last);
  bool found = false;
  for (size_t i = 0; i < PEERSTORE_MAX_PEERS; i++) found |= !strcmp(rows[i].peer_id, last);
  assert_true(found);
  free(rows);
  close_host(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_peers_addrs_sources_and_filters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peers_expire_addresses_not_heard_of, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peers_persisted_in_the_snapshot, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peers_table_is_bounded, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

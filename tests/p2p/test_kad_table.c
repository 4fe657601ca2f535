/* test_kad_table.c — Kademlia keyspace, k-bucket routing table and the iterative lookup
 * (kad-dht spec "Distance", "Kademlia routing table", "Peer routing"). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kadutil.h"
#include "p2p/proto/kad_lookup.h"
#include "p2p/proto/kad_table.h"

static void test_kad_key_is_sha256_and_cpl(void **st) {
  (void)st;
  kad_key k;
  kad_key_of((const uint8_t *)"abc", 3, &k);
  const uint8_t want[4] = {0xba, 0x78, 0x16, 0xbf}; /* SHA-256("abc") */
  assert_memory_equal(k.b, want, 4);
  kad_key a = {{0}}, b = {{0}};
  assert_int_equal(kad_key_cpl(&a, &b), 256);
  b.b[0] = 0x80;
  assert_int_equal(kad_key_cpl(&a, &b), 0);
  b.b[0] = 0x01;
  assert_int_equal(kad_key_cpl(&a, &b), 7);
  b.b[0] = 0;
  b.b[2] = 0x10;
  assert_int_equal(kad_key_cpl(&a, &b), 19);
}

static void test_kad_distance_is_xor_big_endian(void **st) {
  (void)st;
  kad_key t = {{0}}, a = {{0}}, b = {{0}};
  a.b[0] = 0x01;  /* distance 0x01.. */
  b.b[31] = 0xff; /* distance 0x00..ff: closer */
  assert_true(kad_key_cmp_distance(&t, &b, &a) < 0);
  assert_true(kad_key_cmp_distance(&t, &a, &b) > 0);
  assert_int_equal(kad_key_cmp_distance(&t, &a, &a), 0);
  t.b[0] = 0x01; /* now a is at distance 0 */
  assert_true(kad_key_cmp_distance(&t, &a, &b) < 0);
}

static void test_kad_random_key_lands_in_bucket(void **st) {
  (void)st;
  kad_key self;
  kad_key_of((const uint8_t *)"self", 4, &self);
  for (unsigned cpl = 0; cpl <= 10; cpl++) {
    uint8_t kb[34];
    assert_int_equal(kad_key_random_in_bucket(&self, cpl, kb), 0);
    assert_int_equal(kb[0], 0x12);
    assert_int_equal(kb[1], 0x20);
    kad_key k;
    kad_key_of(kb, 34, &k);
    assert_int_equal(kad_key_cpl(&self, &k), cpl);
  }
  uint8_t kb[34];
  assert_int_equal(kad_key_random_in_bucket(&self, 16, kb), -EINVAL);
}

static void test_kad_table_add_update_remove(void **st) {
  (void)st;
  peerid self = test_peer(1000, NULL, NULL);
  kad_table *t;
  assert_int_equal(kad_table_new(&self, 0, &t), 0);
  assert_int_equal(kad_table_add(t, &self, NULL, 0, 0, NULL), -EINVAL);
  peerid p = test_peer(1, NULL, NULL);
  multiaddr ma[3];
  assert_int_equal(multiaddr_parse("/ip4/10.0.0.1/tcp/1", &ma[0]), 0);
  assert_int_equal(multiaddr_parse("/ip4/10.0.0.2/tcp/2", &ma[1]), 0);
  assert_int_equal(multiaddr_parse("/ip4/10.0.0.1/tcp/1", &ma[2]), 0);
  assert_int_equal(kad_table_add(t, &p, ma, 1, 10, NULL), 1);
  assert_int_equal(kad_table_size(t), 1);
  assert_int_equal(kad_table_add(t, &p, ma + 1, 2, 20, NULL), 0);
  kad_entry *e = kad_table_find(t, &p);
  assert_non_null(e);
  assert_int_equal(e->n_addrs, 2); /* duplicates merged, newest first */
  assert_true(multiaddr_equal(&e->addrs[0], &ma[1]));
  assert_int_equal(e->last_seen_ms, 20);
  assert_int_equal(e->added_ms, 10);
  assert_int_equal(kad_table_failed(t, &p), 1);
  assert_int_equal(kad_table_remove(t, &p), 0);
  assert_int_equal(kad_table_remove(t, &p), -ENOENT);
  assert_int_equal(kad_table_size(t), 0);
  kad_table_free(t);
}

static void test_kad_table_full_bucket_keeps_old_peers(void **st) {
  (void)st;
  peerid self = test_peer(1000, NULL, NULL);
  kad_table *t;
  assert_int_equal(kad_table_new(&self, 2, &t), 0); /* k = 2 */
  /* Find three peers in bucket 0 (first bit differs from ours). */
  peerid in0[3];
  int got = 0;
  for (uint32_t s = 1; got < 3; s++) {
    peerid p = test_peer(s, NULL, NULL);
    kad_key k;
    kad_key_of_peer(&p, &k);
    if (kad_key_cpl(kad_table_self_key(t), &k) == 0) in0[got++] = p;
  }
  assert_int_equal(kad_table_add(t, &in0[0], NULL, 0, 1, NULL), 1);
  assert_int_equal(kad_table_add(t, &in0[1], NULL, 0, 2, NULL), 1);
  const kad_entry *old = NULL;
  assert_int_equal(kad_table_add(t, &in0[2], NULL, 0, 3, &old), -ENOSPC);
  assert_non_null(old);
  assert_true(peerid_equal(&old->id, &in0[0])); /* least recently seen */
  /* Once the old one failed, the newcomer takes its place. */
  assert_int_equal(kad_table_failed(t, &in0[0]), 1);
  assert_int_equal(kad_table_add(t, &in0[2], NULL, 0, 4, NULL), 1);
  assert_null(kad_table_find(t, &in0[0]));
  assert_int_equal(kad_table_bucket_size(t, 0), 2);
  /* Seeing a peer again moves it to the tail: in0[1] is now the oldest. */
  assert_int_equal(kad_table_add(t, &in0[2], NULL, 0, 5, NULL), 0);
  assert_int_equal(kad_table_add(t, &in0[0], NULL, 0, 6, &old), -ENOSPC);
  assert_true(peerid_equal(&old->id, &in0[1]));
  kad_table_free(t);
}

static void test_kad_table_closest_sorted_and_filtered(void **st) {
  (void)st;
  peerid self = test_peer(1000, NULL, NULL);
  kad_table *t;
  assert_int_equal(kad_table_new(&self, 0, &t), 0);
  multiaddr ma;
  assert_int_equal(multiaddr_parse("/ip4/10.0.0.1/tcp/1", &ma), 0);
  peerid ps[60];
  size_t added = 0;
  for (uint32_t i = 0; i < 60; i++) {
    ps[i] = test_peer(i + 1, NULL, NULL);
    if (kad_table_add(t, &ps[i], (i % 3) ? &ma : NULL, (i % 3) ? 1 : 0, i, NULL) == 1) added++;
  }
  assert_int_equal(kad_table_size(t), added);
  kad_key target;
  kad_key_of((const uint8_t *)"target", 6, &target);
  const kad_entry *out[KAD_K];
  size_t n = kad_table_closest(t, &target, KAD_K, &ps[5], false, out);
  assert_int_equal(n, KAD_K);
  for (size_t i = 1; i < n; i++) assert_true(kad_key_cmp_distance(&target, &out[i - 1]->key, &out[i]->key) < 0);
  for (size_t i = 0; i < n; i++) assert_false(peerid_equal(&out[i]->id, &ps[5]));
  /* No entry left out is closer than the farthest returned. */
  for (size_t i = 0; i < kad_table_size(t); i++) {
    const kad_entry *e = kad_table_at(t, i);
    bool in = false;
    for (size_t j = 0; j < n; j++) in |= e == out[j];
    if (!in && !peerid_equal(&e->id, &ps[5]))
      assert_true(kad_key_cmp_distance(&target, &e->key, &out[n - 1]->key) > 0);
  }
  n = kad_table_closest(t, &target, KAD_K, NULL, true, out);
  for (size_t i = 0; i < n; i++) assert_true(out[i]->n_addrs > 0);
  kad_table_free(t);
}

/* ---- lookup ---- */

static void test_kad_lookup_alpha_and_termination(void **st) {
  (void)st;
  peerid self = test_peer(1000, NULL, NULL);
  kad_lookup_config cfg = {.k = 3, .alpha = 2, .rpc_timeout_ms = 100};
  kad_lookup *l;
  assert_int_equal(kad_lookup_new(&self, (const uint8_t *)"key", 3, &cfg, &l), 0);
  peerid s[4];
  for (int i = 0; i < 4; i++) {
    s[i] = test_peer(10 + i, NULL, NULL);
    assert_int_equal(kad_lookup_add(l, &s[i], 0), 1);
  }
  assert_int_equal(kad_lookup_add(l, &s[0], 0), 0);   /* known */
  assert_int_equal(kad_lookup_add(l, &self, 0), 0);   /* never ourselves */
  peerid q1, q2, q3;
  assert_int_equal(kad_lookup_next(l, 0, &q1), KAD_LOOKUP_QUERY);
  assert_int_equal(kad_lookup_next(l, 0, &q2), KAD_LOOKUP_QUERY);
  assert_int_equal(kad_lookup_next(l, 0, &q3), KAD_LOOKUP_WAIT); /* α = 2 in flight */
  assert_int_equal(kad_lookup_deadline(l), 100);
  assert_int_equal(kad_lookup_reply(l, &q1, NULL, 0), 0);
  kad_lookup_fail(l, &q2);
  /* Two of the three closest have been handled; the next query goes out. */
  assert_int_equal(kad_lookup_next(l, 10, &q3), KAD_LOOKUP_QUERY);
  /* q3 times out at 110. */
  peerid q4;
  assert_int_equal(kad_lookup_next(l, 50, &q4), KAD_LOOKUP_QUERY);
  assert_int_equal(kad_lookup_next(l, 50, &q4), KAD_LOOKUP_WAIT);
  assert_int_equal(kad_lookup_next(l, 110, &q4), KAD_LOOKUP_WAIT); /* q3 failed; last one in flight */
  kad_lookup_stats stats;
  kad_lookup_get_stats(l, &stats);
  assert_int_equal(stats.timeouts, 1);
  peerid last = q4;
  (void)last;
  /* Answer the remaining in-flight query: nothing new left → done. */
  for (int i = 0; i < 4; i++) {
    const kad_candidate *c = kad_lookup_find(l, &s[i]);
    if (c->state == KAD_CAND_ASKED) assert_int_equal(kad_lookup_reply(l, &s[i], NULL, 0), 0);
  }
  assert_int_equal(kad_lookup_next(l, 120, &q4), KAD_LOOKUP_DONE);
  assert_true(kad_lookup_done(l));
  peerid res[4];
  assert_int_equal(kad_lookup_closest(l, res, 4), 2);
  kad_lookup_free(l);
}

static void test_kad_lookup_reply_from_unknown_peer(void **st) {
  (void)st;
  peerid self = test_peer(1000, NULL, NULL), x = test_peer(7, NULL, NULL);
  kad_lookup *l;
  assert_int_equal(kad_lookup_new(&self, (const uint8_t *)"k", 1, NULL, &l), 0);
  assert_int_equal(kad_lookup_reply(l, &x, NULL, 0), -ENOENT);
  assert_int_equal(kad_lookup_add(l, &x, 0), 1);
  assert_int_equal(kad_lookup_reply(l, &x, NULL, 0), -ENOENT); /* never asked */
  peerid q;
  assert_int_equal(kad_lookup_next(l, 0, &q), KAD_LOOKUP_QUERY);
  assert_int_equal(kad_lookup_next(l, 0, &q), KAD_LOOKUP_WAIT);
  assert_int_equal(kad_lookup_reply(l, &x, NULL, 0), 0);
  assert_int_equal(kad_lookup_next(l, 0, &q), KAD_LOOKUP_DONE);
  kad_lookup_free(l);
  /* An empty lookup is done at once. */
  assert_int_equal(kad_lookup_new(&self, (const uint8_t *)"k", 1, NULL, &l), 0);
  assert_int_equal(kad_lookup_next(l, 0, &q), KAD_LOOKUP_DONE);
  kad_lookup_free(l);
}

static void test_kad_lookup_candidate_cap(void **st) {
  (void)st;
  peerid self = test_peer(1000, NULL, NULL);
  kad_lookup *l;
  assert_int_equal(kad_lookup_new(&self, (const uint8_t *)"cap", 3, NULL, &l), 0);
  size_t added = 0;
  for (uint32_t i = 0; i < KAD_LOOKUP_MAX_CANDIDATES + 50; i++) {
    peerid p = test_peer(100 + i, NULL, NULL);
    added += (size_t)kad_lookup_add(l, &p, 0);
  }
  assert_true(added >= KAD_LOOKUP_MAX_CANDIDATES);
  /* The kept ones are the closest: all the first k queried are among the closest seen. */
  peerid q;
  assert_int_equal(kad_lookup_next(l, 0, &q), KAD_LOOKUP_QUERY);
  kad_lookup_free(l);
}

/* A simulated network of N peers, each with a full view of the peers nearest to it plus a few
 * random ones (a routing table as a real network would build it). Every lookup must find the
 * target, in about log2(N) hops. */
#define SIM_N 200

typedef struct sim {
  peerid id[SIM_N];
  kad_table *t[SIM_N];
} sim;

static int sim_index(sim *s, const peerid *p) {
  for (int i = 0; i < SIM_N; i++)
    if (peerid_equal(&s->id[i], p)) return i;
  return -1;
}

static void test_kad_lookup_finds_every_peer_in_simulated_network(void **st) {
  (void)st;
  sim *s = calloc(1, sizeof *s);
  for (int i = 0; i < SIM_N; i++) s->id[i] = test_peer(5000 + (uint32_t)i, NULL, NULL);
  for (int i = 0; i < SIM_N; i++) {
    assert_int_equal(kad_table_new(&s->id[i], 0, &s->t[i]), 0);
    for (int j = 0; j < SIM_N; j++)
      if (j != i) {
        int rc = kad_table_add(s->t[i], &s->id[j], NULL, 0, 0, NULL);
        assert_true(rc == 1 || rc == -ENOSPC);
      }
  }
  unsigned max_hops = 0, total_hops = 0, found = 0;
  for (int q = 0; q < 40; q++) {
    int from = (q * 7) % SIM_N, to = (q * 13 + 5) % SIM_N;
    if (from == to) continue;
    kad_lookup *l;
    assert_int_equal(kad_lookup_new(&s->id[from], s->id[to].bytes, s->id[to].len, NULL, &l), 0);
    const kad_entry *seed[KAD_K];
    size_t ns = kad_table_closest(s->t[from], kad_lookup_target(l), KAD_ALPHA, NULL, false, seed);
    for (size_t i = 0; i < ns; i++) kad_lookup_add(l, &seed[i]->id, 0);
    peerid p;
    kad_lookup_step step;
    uint64_t now = 0;
    while ((step = kad_lookup_next(l, now, &p)) != KAD_LOOKUP_DONE) {
      assert_int_equal(step, KAD_LOOKUP_QUERY);
      int at = sim_index(s, &p);
      assert_true(at >= 0);
      const kad_entry *cl[KAD_K];
      size_t nc = kad_table_closest(s->t[at], kad_lookup_target(l), KAD_K, NULL, false, cl);
      peerid ids[KAD_K];
      for (size_t i = 0; i < nc; i++) ids[i] = cl[i]->id;
      assert_true(kad_lookup_reply(l, &p, ids, nc) >= 0);
      now++;
    }
    const kad_candidate *c = kad_lookup_find(l, &s->id[to]);
    assert_non_null(c);
    assert_int_equal(c->state, KAD_CAND_REPLIED);
    found++;
    total_hops += c->hop;
    if (c->hop > max_hops) max_hops = c->hop;
    peerid res[1];
    assert_int_equal(kad_lookup_closest(l, res, 1), 1);
    assert_true(peerid_equal(&res[0], &s->id[to])); /* the target is its own closest peer */
    kad_lookup_free(l);
  }
  /* log2(200) ≈ 7.6; with k = 20 buckets a lookup converges in far fewer hops. */
  assert_true(found > 30);
  assert_true(max_hops <= 8);
  (void)total_hops;
  for (int i = 0; i < SIM_N; i++) kad_table_free(s->t[i]);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kad_key_is_sha256_and_cpl),
      cmocka_unit_test(test_kad_distance_is_xor_big_endian),
      cmocka_unit_test(test_kad_random_key_lands_in_bucket),
      cmocka_unit_test(test_kad_table_add_update_remove),
      cmocka_unit_test(test_kad_table_full_bucket_keeps_old_peers),
      cmocka_unit_test(test_kad_table_closest_sorted_and_filtered),
      cmocka_unit_test(test_kad_lookup_alpha_and_termination),
      cmocka_unit_test(test_kad_lookup_reply_from_unknown_peer),
      cmocka_unit_test(test_kad_lookup_candidate_cap),
      cmocka_unit_test(test_kad_lookup_finds_every_peer_in_simulated_network),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

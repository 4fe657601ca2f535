/* test_kad_store.c — bounded DHT record/provider store, record validators and the Python
 * rendezvous records (kad-dht spec "Entry validation", p2p_tasks_spec.md §1.8). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kadutil.h"
#include "p2p/proto/kad_msg.h"
#include "p2p/proto/kad_record.h"
#include "p2p/proto/kad_store.h"

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

static void test_kad_store_record_put_get_replace_expire(void **st) {
  (void)st;
  kad_store_config cfg = {.record_ttl_ms = 1000};
  kad_store *s;
  assert_int_equal(kad_store_new(&cfg, &s), 0);
  peerid a = test_peer(1, NULL, NULL);
  assert_int_equal(kad_store_put_record(s, u8("/k/1"), 4, u8("v1"), 2, &a, 0, 100.0), 0);
  const kad_stored_record *r = kad_store_get_record(s, u8("/k/1"), 4, 10);
  assert_non_null(r);
  assert_int_equal(r->value_len, 2);
  assert_memory_equal(r->value, "v1", 2);
  assert_true(peerid_equal(&r->from, &a));
  assert_int_equal(kad_store_put_record(s, u8("/k/1"), 4, u8("v22"), 3, &a, 500, 100.5), 0);
  r = kad_store_get_record(s, u8("/k/1"), 4, 600);
  assert_int_equal(r->value_len, 3);
  kad_store_stats stats;
  kad_store_get_stats(s, &stats);
  assert_int_equal(stats.records, 1);
  assert_int_equal(stats.record_bytes, 7);
  assert_null(kad_store_get_record(s, u8("/k/1"), 4, 1500)); /* 1000 ms after the last put */
  kad_store_get_stats(s, &stats);
  assert_int_equal(stats.records, 0);
  assert_int_equal(stats.record_bytes, 0);
  assert_int_equal(kad_store_put_record(s, u8(""), 0, u8("v"), 1, &a, 0, 0), -E2BIG);
  static uint8_t big[KAD_MAX_VALUE + 1];
  assert_int_equal(kad_store_put_record(s, u8("/k/2"), 4, big, sizeof big, &a, 0, 0), -E2BIG);
  kad_store_free(s);
}

static void test_kad_store_record_bounds(void **st) {
  (void)st;
  kad_store_config cfg = {.max_records = 3, .max_record_bytes = 100, .max_records_per_peer = 2,
                          .record_ttl_ms = 1000};
  kad_store *s;
  assert_int_equal(kad_store_new(&cfg, &s), 0);
  peerid a = test_peer(1, NULL, NULL), b = test_peer(2, NULL, NULL), c = test_peer(3, NULL, NULL);
  assert_int_equal(kad_store_put_record(s, u8("/a/1"), 4, u8("x"), 1, &a, 0, 0), 0);
  assert_int_equal(kad_store_put_record(s, u8("/a/2"), 4, u8("x"), 1, &a, 0, 0), 0);
  assert_int_equal(kad_store_put_record(s, u8("/a/3"), 4, u8("x"), 1, &a, 0, 0), -EDQUOT); /* per peer */
  assert_int_equal(kad_store_put_record(s, u8("/a/1"), 4, u8("y"), 1, &a, 0, 0), 0); /* replacing is fine */
  assert_int_equal(kad_store_put_record(s, u8("/b/1"), 4, u8("x"), 1, &b, 0, 0), 0);
  assert_int_equal(kad_store_put_record(s, u8("/c/1"), 4, u8("x"), 1, &c, 0, 0), -ENOSPC); /* total */
  uint8_t v[96] = {0};
  assert_int_equal(kad_store_put_record(s, u8("/b/1"), 4, v, 96, &b, 0, 0), -ENOSPC); /* bytes */
  /* Once the old ones expire there is room again. */
  assert_int_equal(kad_store_put_record(s, u8("/c/1"), 4, u8("x"), 1, &c, 2000, 0), 0);
  kad_store_stats stats;
  kad_store_get_stats(s, &stats);
  assert_int_equal(stats.records, 1);
  assert_int_equal(stats.refused_quota, 1);
  assert_int_equal(stats.refused_full, 2);
  kad_store_free(s);
}

static void test_kad_store_providers(void **st) {
  (void)st;
  kad_store_config cfg = {.provider_ttl_ms = 1000, .provider_addr_ttl_ms = 100, .max_providers_per_key = 2,
                          .max_keys_per_provider = 2, .max_providers = 4};
  kad_store *s;
  assert_int_equal(kad_store_new(&cfg, &s), 0);
  peerid a = test_peer(1, NULL, NULL), b = test_peer(2, NULL, NULL), c = test_peer(3, NULL, NULL);
  multiaddr ma;
  assert_int_equal(multiaddr_parse("/ip4/10.0.0.1/tcp/4001", &ma), 0);
  assert_int_equal(kad_store_add_provider(s, u8("k1"), 2, &a, &ma, 1, 0), 0);
  assert_int_equal(kad_store_add_provider(s, u8("k1"), 2, &b, NULL, 0, 10), 0);
  kad_provider out[4];
  assert_int_equal(kad_store_get_providers(s, u8("k1"), 2, 20, out, 4), 2);
  assert_true(peerid_equal(&out[0].id, &b)); /* newest first */
  assert_int_equal(out[0].n_addrs, 0);
  assert_int_equal(out[1].n_addrs, 1);
  assert_true(multiaddr_equal(&out[1].addrs[0], &ma));
  assert_int_equal(kad_store_get_providers(s, u8("k1"), 2, 20, out, 1), 1);
  /* Addresses are forgotten after provider_addr_ttl_ms, the entry is kept. */
  assert_int_equal(kad_store_get_providers(s, u8("k1"), 2, 150, out, 4), 2);
  assert_int_equal(out[1].n_addrs, 0);
  /* Per-key and per-provider bounds. */
  assert_int_equal(kad_store_add_provider(s, u8("k1"), 2, &c, NULL, 0, 20), -EDQUOT);
  assert_int_equal(kad_store_add_provider(s, u8("k2"), 2, &a, NULL, 0, 20), 0);
  assert_int_equal(kad_store_add_provider(s, u8("k3"), 2, &a, NULL, 0, 20), -EDQUOT);
  assert_int_equal(kad_store_add_provider(s, u8("k3"), 2, &c, NULL, 0, 20), 0);
  assert_int_equal(kad_store_add_provider(s, u8("k4"), 2, &c, NULL, 0, 20), -ENOSPC); /* 4 in all */
  /* A refresh moves the expiry. */
  assert_int_equal(kad_store_add_provider(s, u8("k1"), 2, &a, NULL, 0, 900), 0);
  assert_int_equal(kad_store_get_providers(s, u8("k1"), 2, 1500, out, 4), 1);
  assert_true(peerid_equal(&out[0].id, &a));
  kad_store_expire(s, 5000);
  kad_store_stats stats;
  kad_store_get_stats(s, &stats);
  assert_int_equal(stats.providers, 0);
  assert_int_equal(stats.provider_keys, 0);
  assert_int_equal(kad_store_get_providers(s, u8("k1"), 2, 5000, out, 4), 0);
  kad_store_free(s);
}

/* ---- validators ---- */

static void test_kad_record_pk_validator(void **st) {
  (void)st;
  uint8_t pk[KEYS_PUBLIC_PB_MAX], pk2[KEYS_PUBLIC_PB_MAX];
  size_t pkl, pk2l;
  peerid a = test_peer(1, pk, &pkl);
  (void)test_peer(2, pk2, &pk2l);
  uint8_t key[64];
  memcpy(key, "/pk/", 4);
  memcpy(key + 4, a.bytes, a.len);
  assert_int_equal(kad_record_validate(key, 4 + a.len, pk, pkl, NULL), 0);
  assert_int_equal(kad_record_validate(key, 4 + a.len, pk2, pk2l, NULL), -EINVAL);
  assert_int_equal(kad_record_validate(key, 4 + a.len, u8("junk"), 4, NULL), -EINVAL);
  assert_int_equal(kad_record_validate(u8("/pk/"), 4, pk, pkl, NULL), -EINVAL);
}

static void test_kad_record_unknown_namespace_refused(void **st) {
  (void)st;
  assert_int_equal(kad_record_validate(u8("/ipns/x"), 7, u8("v"), 1, NULL), -ENOTSUP);
  assert_int_equal(kad_record_validate(u8("raw-key"), 7, u8("v"), 1, NULL), -ENOTSUP);
  assert_int_equal(kad_record_validate(u8("//x"), 3, u8("v"), 1, NULL), -ENOTSUP);
  assert_int_equal(kad_record_validate(u8("/x"), 2, u8("v"), 1, NULL), -ENOTSUP);
}

static void py_record(const peerid *p, const char *addr_fmt, double ts, char *out, size_t cap) {
  char id[PEERID_STR_MAX], addr[256];
  assert_int_equal(peerid_to_string(p, id, sizeof id), 0);
  snprintf(addr, sizeof addr, addr_fmt, id);
  assert_true(kad_rendezvous_record_make(id, addr, ts, out, cap) > 0);
}

static void test_kad_rendezvous_record_shape(void **st) {
  (void)st;
  peerid a = test_peer(1, NULL, NULL);
  char id[PEERID_STR_MAX], v[512], want[512];
  assert_int_equal(peerid_to_string(&a, id, sizeof id), 0);
  py_record(&a, "/ip4/10.0.0.1/tcp/9710/p2p/%s", 1700000000.25, v, sizeof v);
  snprintf(want, sizeof want, "{\"peer_id\": \"%s\", \"multiaddr\": \"/ip4/10.0.0.1/tcp/9710/p2p/%s\", \"ts\": 1700000000.250000}",
           id, id);
  assert_string_equal(v, want); /* json.dumps({"peer_id","multiaddr","ts"}) shape */
  kad_rendezvous_record r;
  assert_int_equal(kad_rendezvous_record_parse(u8(v), strlen(v), &r), 0);
  assert_true(peerid_equal(&r.id, &a));
  assert_true(r.ts > 1700000000.2 && r.ts < 1700000000.3);
  char k[256];
  assert_int_equal(kad_rendezvous_record_key(KAD_RENDEZVOUS_DEFAULT_NS, k, sizeof k),
                   (int)strlen("/ipfs-accelerate/task-queue/ns/ipfs-accelerate-task-queue"));
  assert_string_equal(k, "/ipfs-accelerate/task-queue/ns/ipfs-accelerate-task-queue");
  assert_int_equal(kad_rendezvous_record_key("a/b", k, sizeof k), -EINVAL);
  assert_int_equal(kad_rendezvous_record_key("", k, sizeof k), -EINVAL);
  assert_int_equal(kad_rendezvous_record_make(id, "/ip4/1.2.3.4/tcp/1", 0.0 / 0.0, v, sizeof v), -EINVAL);
}

static void test_kad_rendezvous_provider_key_is_cidv0_multihash(void **st) {
  (void)st;
  /* CIDv1 raw of this multihash is bafkreigmdf3veohlpfggictzew646pjn3nsrg575ugemx7qv47mxqqvxaa
   * (the figure, measured with js multiformats): that is this digest. */
  uint8_t k[KAD_PROVIDER_KEY_LEN];
  kad_rendezvous_provider_key(KAD_RENDEZVOUS_DEFAULT_NS, k);
  assert_int_equal(k[0], 0x12);
  assert_int_equal(k[1], 0x20);
  const uint8_t digest[32] = {0xcc, 0x19, 0x77, 0x52, 0x38, 0xeb, 0x79, 0x4c, 0x64, 0x0a, 0x79, 0x25, 0xbd, 0xcf, 0x3d, 0x2d, 0xdb, 0x65, 0x13, 0x77, 0xfd, 0xa1, 0x88, 0xcb, 0xfe, 0x15, 0xe7, 0xd9, 0x78, 0x42, 0xb7, 0x00};
  assert_memory_equal(k + 2, digest, 32);
}

static void test_kad_rendezvous_validator(void **st) {
  (void)st;
  peerid a = test_peer(1, NULL, NULL), b = test_peer(2, NULL, NULL);
  char key[256];
  int kl = kad_rendezvous_record_key("ns1", key, sizeof key);
  assert_true(kl > 0);
  char v[512];
  py_record(&a, "/ip4/10.0.0.1/tcp/9710/p2p/%s", 10, v, sizeof v);
  assert_int_equal(kad_record_validate(u8(key), (size_t)kl, u8(v), strlen(v), NULL), 0);
  assert_int_equal(kad_record_validate(u8(key), (size_t)kl, u8(v), strlen(v), &a), 0);
  /* Stored by another peer than the one it names. */
  assert_int_equal(kad_record_validate(u8(key), (size_t)kl, u8(v), strlen(v), &b), -EPERM);
  /* multiaddr naming another peer than peer_id */
  char ida[PEERID_STR_MAX], idb[PEERID_STR_MAX], bad[512];
  assert_int_equal(peerid_to_string(&a, ida, sizeof ida), 0);
  assert_int_equal(peerid_to_string(&b, idb, sizeof idb), 0);
  snprintf(bad, sizeof bad, "{\"peer_id\": \"%s\", \"multiaddr\": \"/ip4/1.2.3.4/tcp/1/p2p/%s\", \"ts\": 1}", ida, idb);
  assert_int_equal(kad_record_validate(u8(key), (size_t)kl, u8(bad), strlen(bad), NULL), -EINVAL);
  const char *bads[] = {
      "not json", "[]", "{\"peer_id\": 5, \"multiaddr\": \"/ip4/1.2.3.4/tcp/1\", \"ts\": 1}",
      "{\"peer_id\": \"nope\", \"multiaddr\": \"/ip4/1.2.3.4/tcp/1\", \"ts\": 1}",
  };
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++)
    assert_int_equal(kad_record_validate(u8(key), (size_t)kl, u8(bads[i]), strlen(bads[i]), NULL), -EINVAL);
  snprintf(bad, sizeof bad, "{\"peer_id\": \"%s\", \"multiaddr\": \"/ip4/1.2.3.4/tcp/1\"}", ida);
  assert_int_equal(kad_record_validate(u8(key), (size_t)kl, u8(bad), strlen(bad), NULL), -EINVAL); /* no ts */
  snprintf(bad, sizeof bad, "{\"peer_id\": \"%s\", \"peer_id\": \"%s\", \"multiaddr\": \"/ip4/1.2.3.4/tcp/1\", \"ts\": 1}",
           ida, ida);
  assert_int_equal(kad_record_validate(u8(key), (size_t)kl, u8(bad), strlen(bad), NULL), -EINVAL); /* dup key */
  static char huge[KAD_RENDEZVOUS_MAX_VALUE + 2];
  memset(huge, ' ', sizeof huge - 1);
  assert_int_equal(kad_record_validate(u8(key), (size_t)kl, u8(huge), sizeof huge - 1, NULL), -EINVAL);
  /* wrong key shapes in the namespace */
  assert_int_equal(kad_record_validate(u8("/ipfs-accelerate/other/x"), 24, u8(v), strlen(v), NULL), -EINVAL);
  assert_int_equal(kad_record_validate(u8("/ipfs-accelerate/task-queue/ns/"), 31, u8(v), strlen(v), NULL), -EINVAL);
  /* select: the newer ts wins, a tie keeps the first */
  char older[512], newer[512];
  py_record(&a, "/ip4/10.0.0.1/tcp/9710/p2p/%s", 5, older, sizeof older);
  py_record(&b, "/ip4/10.0.0.2/tcp/9710/p2p/%s", 6, newer, sizeof newer);
  assert_int_equal(kad_record_select(u8(key), (size_t)kl, u8(older), strlen(older), u8(newer), strlen(newer)), 1);
  assert_int_equal(kad_record_select(u8(key), (size_t)kl, u8(newer), strlen(newer), u8(older), strlen(older)), 0);
  assert_int_equal(kad_record_select(u8(key), (size_t)kl, u8(older), strlen(older), u8(older), strlen(older)), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kad_store_record_put_get_replace_expire),
      cmocka_unit_test(test_kad_store_record_bounds),
      cmocka_unit_test(test_kad_store_providers),
      cmocka_unit_test(test_kad_record_pk_validator),
      cmocka_unit_test(test_kad_record_unknown_namespace_refused),
      cmocka_unit_test(test_kad_rendezvous_record_shape),
      cmocka_unit_test(test_kad_rendezvous_provider_key_is_cidv0_multihash),
      cmocka_unit_test(test_kad_rendezvous_validator),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

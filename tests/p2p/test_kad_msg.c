/* test_kad_msg.c — Kademlia RPC message codec (kad-dht spec "RPC messages"): wire bytes,
 * bounds, skipped peers, record time format. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kadutil.h"
#include "p2p/proto/kad_msg.h"

static void test_kad_msg_find_node_wire_bytes(void **st) {
  (void)st;
  /* FIND_NODE with key 0x01 0x02: type=4 (08 04), key (12 02 01 02); varint length 6. */
  uint8_t key[2] = {1, 2};
  kad_msg m = {.type = KAD_FIND_NODE, .has_key = true, .key = key, .key_len = 2};
  buf b;
  buf_init(&b, 1024);
  assert_int_equal(kad_msg_encode(&m, &b), 0);
  const uint8_t want[] = {6, 0x08, 0x04, 0x12, 0x02, 0x01, 0x02};
  assert_int_equal(buf_len(&b), sizeof want);
  assert_memory_equal(buf_ptr(&b), want, sizeof want);
  buf_free(&b);
}

static void test_kad_msg_round_trip_all_fields(void **st) {
  (void)st;
  peerid a = test_peer(1, NULL, NULL), c = test_peer(2, NULL, NULL);
  multiaddr ma[2];
  assert_int_equal(multiaddr_parse("/ip4/10.0.0.1/tcp/4001", &ma[0]), 0);
  assert_int_equal(multiaddr_parse("/ip6/::1/tcp/4001", &ma[1]), 0);
  kad_peer_info closer[1] = {{.id = a, .addrs = ma, .n_addrs = 2, .connection = KAD_CONNECTED}};
  kad_peer_info provs[1] = {{.id = c, .addrs = ma, .n_addrs = 1, .connection = -1}};
  const char *key = "/ipfs-accelerate/task-queue/ns/x";
  const char *val = "{\"peer_id\": \"x\"}";
  kad_msg m = {.type = KAD_GET_VALUE,
               .has_cluster_level = true,
               .cluster_level = 0,
               .has_key = true,
               .key = (const uint8_t *)key,
               .key_len = strlen(key),
               .has_record = true,
               .record = {(const uint8_t *)key, strlen(key), (const uint8_t *)val, strlen(val),
                          "2024-01-02T03:04:05.678000000Z"},
               .closer = closer,
               .n_closer = 1,
               .providers = provs,
               .n_providers = 1};
  buf b;
  buf_init(&b, KAD_MAX_MSG + 16);
  assert_int_equal(kad_msg_encode(&m, &b), 0);
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(kad_frame_parse(buf_ptr(&b), buf_len(&b), &body, &bl, &used), 0);
  assert_int_equal(used, buf_len(&b));
  kad_msg d;
  assert_int_equal(kad_msg_decode(body, bl, &d), 0);
  assert_int_equal(d.type, KAD_GET_VALUE);
  assert_true(d.has_cluster_level);
  assert_true(d.has_key);
  assert_memory_equal(d.key, key, strlen(key));
  assert_true(d.has_record);
  assert_int_equal(d.record.value_len, strlen(val));
  assert_memory_equal(d.record.value, val, strlen(val));
  assert_string_equal(d.record.time_received, "2024-01-02T03:04:05.678000000Z");
  assert_int_equal(d.n_closer, 1);
  assert_true(peerid_equal(&d.closer[0].id, &a));
  assert_int_equal(d.closer[0].n_addrs, 2);
  assert_true(multiaddr_equal(&d.closer[0].addrs[1], &ma[1]));
  assert_int_equal(d.closer[0].connection, KAD_CONNECTED);
  assert_int_equal(d.n_providers, 1);
  assert_true(peerid_equal(&d.providers[0].id, &c));
  assert_int_equal(d.providers[0].connection, -1);
  assert_int_equal(d.n_skipped, 0);
  kad_msg_clear(&d);
  buf_free(&b);
}

static void test_kad_msg_missing_type_is_put_value(void **st) {
  (void)st;
  /* proto3 leaves out a zero enum: an empty message is PUT_VALUE with nothing else. */
  kad_msg d;
  assert_int_equal(kad_msg_decode((const uint8_t *)"", 0, &d), 0);
  assert_int_equal(d.type, KAD_PUT_VALUE);
  assert_false(d.has_key);
  assert_false(d.has_record);
  kad_msg_clear(&d);
}

static void test_kad_msg_skips_bad_peers_and_addresses(void **st) {
  (void)st;
  /* closerPeers: one with an invalid id, one with a valid id and one bad address. */
  peerid a = test_peer(3, NULL, NULL);
  uint8_t pkt[256];
  size_t o = 0;
  pkt[o++] = 0x08;
  pkt[o++] = 0x04;
  /* peer 1: id = 3 junk bytes */
  pkt[o++] = 0x42;
  pkt[o++] = 5;
  pkt[o++] = 0x0a;
  pkt[o++] = 3;
  pkt[o++] = 1, pkt[o++] = 2, pkt[o++] = 3;
  /* peer 2 */
  size_t start = o;
  pkt[o++] = 0x42;
  pkt[o++] = 0; /* length patched below */
  pkt[o++] = 0x0a;
  pkt[o++] = (uint8_t)a.len;
  memcpy(pkt + o, a.bytes, a.len);
  o += a.len;
  pkt[o++] = 0x12;
  pkt[o++] = 2;
  pkt[o++] = 0xff, pkt[o++] = 0xff; /* not a multiaddr */
  pkt[start + 1] = (uint8_t)(o - start - 2);
  kad_msg d;
  assert_int_equal(kad_msg_decode(pkt, o, &d), 0);
  assert_int_equal(d.n_closer, 1);
  assert_true(peerid_equal(&d.closer[0].id, &a));
  assert_int_equal(d.closer[0].n_addrs, 0);
  assert_int_equal(d.n_skipped, 2);
  kad_msg_clear(&d);
}

static void test_kad_msg_bounds(void **st) {
  (void)st;
  kad_msg d;
  static uint8_t big[KAD_MAX_MSG + 1];
  assert_int_equal(kad_msg_decode(big, sizeof big, &d), -E2BIG);
  /* key over KAD_MAX_KEY */
  uint8_t pkt[KAD_MAX_KEY + 16];
  size_t o = 0;
  pkt[o++] = 0x12;
  pkt[o++] = 0x81, pkt[o++] = 0x04; /* 513 */
  memset(pkt + o, 'k', 513);
  o += 513;
  assert_int_equal(kad_msg_decode(pkt, o, &d), -E2BIG);
  /* malformed protobuf */
  const uint8_t bad[] = {0x12, 0x10, 1};
  assert_int_equal(kad_msg_decode(bad, sizeof bad, &d), -EINVAL);
  /* encode refuses too many peers */
  kad_peer_info many[KAD_MAX_PEERS + 1];
  memset(many, 0, sizeof many);
  kad_msg m = {.type = KAD_FIND_NODE, .closer = many, .n_closer = KAD_MAX_PEERS + 1};
  buf b;
  buf_init(&b, 1 << 20);
  assert_int_equal(kad_msg_encode(&m, &b), -E2BIG);
  buf_free(&b);
}

static void test_kad_msg_keeps_at_most_max_peers(void **st) {
  (void)st;
  peerid a = test_peer(4, NULL, NULL);
  kad_peer_info ps[KAD_MAX_PEERS];
  for (int i = 0; i < KAD_MAX_PEERS; i++) ps[i] = (kad_peer_info){.id = a, .connection = -1};
  kad_msg m = {.type = KAD_FIND_NODE, .closer = ps, .n_closer = KAD_MAX_PEERS, .providers = ps,
               .n_providers = 10};
  buf b;
  buf_init(&b, 1 << 20);
  assert_int_equal(kad_msg_encode(&m, &b), 0);
  /* Append 10 more closer peers by hand (field 8) to go over the cap. */
  buf b2;
  buf_init(&b2, 1 << 20);
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(kad_frame_parse(buf_ptr(&b), buf_len(&b), &body, &bl, &used), 0);
  assert_int_equal(buf_append(&b2, body, bl), 0);
  for (int i = 0; i < 10; i++) {
    uint8_t hdr[4] = {0x42, (uint8_t)(a.len + 2), 0x0a, (uint8_t)a.len};
    assert_int_equal(buf_append(&b2, hdr, 4), 0);
    assert_int_equal(buf_append(&b2, a.bytes, a.len), 0);
  }
  kad_msg d;
  assert_int_equal(kad_msg_decode(buf_ptr(&b2), buf_len(&b2), &d), 0);
  assert_int_equal(d.n_closer, KAD_MAX_PEERS);
  assert_int_equal(d.n_providers, 10);
  assert_int_equal(d.n_skipped, 10);
  kad_msg_clear(&d);
  buf_free(&b);
  buf_free(&b2);
}

static void test_kad_frame_parse(void **st) {
  (void)st;
  const uint8_t *m;
  size_t ml, used;
  const uint8_t partial[] = {5, 1, 2};
  assert_int_equal(kad_frame_parse(partial, sizeof partial, &m, &ml, &used), -EAGAIN);
  const uint8_t huge[] = {0x81, 0x80, 0x04}; /* 65537 */
  assert_int_equal(kad_frame_parse(huge, sizeof huge, &m, &ml, &used), -EMSGSIZE);
  const uint8_t nonmin[] = {0x80, 0x00};
  assert_int_equal(kad_frame_parse(nonmin, sizeof nonmin, &m, &ml, &used), -EINVAL);
}

static void test_kad_time_format_and_parse(void **st) {
  (void)st;
  char t[32];
  kad_time_format(1704164645.678, t);
  assert_string_equal(t, "2024-01-02T03:04:05.678000000Z");
  double w;
  assert_int_equal(kad_time_parse(t, &w), 0);
  assert_true(w > 1704164645.677 && w < 1704164645.679);
  assert_int_equal(kad_time_parse("2024-01-02T03:04:05Z", &w), 0);
  assert_int_equal(kad_time_parse("2024-01-02 03:04:05Z", &w), -EINVAL);
  assert_int_equal(kad_time_parse("2024-13-02T03:04:05.1Z", &w), -EINVAL);
  assert_int_equal(kad_time_parse("2024-01-02T03:04:05.Z", &w), -EINVAL);
  assert_int_equal(kad_time_parse("2024-01-02T03:04:05.1+01:00", &w), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kad_msg_find_node_wire_bytes),
      cmocka_unit_test(test_kad_msg_round_trip_all_fields),
      cmocka_unit_test(test_kad_msg_missing_type_is_put_value),
      cmocka_unit_test(test_kad_msg_skips_bad_peers_and_addresses),
      cmocka_unit_test(test_kad_msg_bounds),
      cmocka_unit_test(test_kad_msg_keeps_at_most_max_peers),
      cmocka_unit_test(test_kad_frame_parse),
      cmocka_unit_test(test_kad_time_format_and_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

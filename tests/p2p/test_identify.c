/* Unit tests for p2p/proto/identify: message round trip, framing, ceilings, tolerance of
 * unknown multiaddrs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "identify.pb-c.h"
#include "p2p/proto/identify.h"

static void test_identify_roundtrip_all_fields(void **state) {
  (void)state;
  multiaddr addrs[2], obs;
  assert_int_equal(multiaddr_parse("/ip4/127.0.0.1/tcp/9710", &addrs[0]), 0);
  assert_int_equal(multiaddr_parse("/ip6/::1/tcp/9710", &addrs[1]), 0);
  assert_int_equal(multiaddr_parse("/ip4/10.1.2.3/tcp/5555", &obs), 0);
  char *protos[] = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/mcp+p2p/1.0.0"};
  uint8_t pk[] = {0x08, 0x01, 0x12, 0x20, 1, 2, 3};
  uint8_t spr[] = {9, 9, 9};
  identify_msg m = {
      .protocol_version = IDENTIFY_PROTOCOL_VERSION, .agent_version = "peermcp/0.1.0",
      .public_key = pk, .public_key_len = sizeof pk, .listen_addrs = addrs, .n_listen_addrs = 2,
      .has_observed_addr = true, .observed_addr = obs, .protocols = protos, .n_protocols = 3,
      .signed_peer_record = spr, .signed_peer_record_len = sizeof spr,
  };
  buf b;
  buf_init(&b, 1 << 20);
  assert_int_equal(identify_encode(&m, &b), 0);
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(identify_frame_parse(buf_ptr(&b), buf_len(&b), IDENTIFY_MAX_MSG, &body, &bl, &used), 0);
  assert_int_equal(used, buf_len(&b));
  identify_msg d;
  assert_int_equal(identify_decode(body, bl, &d), 0);
  assert_string_equal(d.protocol_version, "ipfs/0.1.0");
  assert_string_equal(d.agent_version, "peermcp/0.1.0");
  assert_int_equal(d.public_key_len, sizeof pk);
  assert_memory_equal(d.public_key, pk, sizeof pk);
  assert_int_equal(d.n_listen_addrs, 2);
  assert_true(multiaddr_equal(&d.listen_addrs[1], &addrs[1]));
  assert_true(d.has_observed_addr);
  assert_true(multiaddr_equal(&d.observed_addr, &obs));
  assert_int_equal(d.n_protocols, 3);
  assert_string_equal(d.protocols[2], "/mcp+p2p/1.0.0");
  assert_int_equal(d.signed_peer_record_len, 3);
  identify_msg_clear(&d);
  buf_free(&b);
}

static void test_identify_push_with_absent_fields(void **state) {
  (void)state;
  char *protos[] = {"/x/1"};
  identify_msg m = {.protocols = protos, .n_protocols = 1};
  buf b;
  buf_init(&b, 4096);
  assert_int_equal(identify_encode(&m, &b), 0);
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(identify_frame_parse(buf_ptr(&b), buf_len(&b), IDENTIFY_MAX_MSG, &body, &bl, &used), 0);
  identify_msg d;
  assert_int_equal(identify_decode(body, bl, &d), 0);
  assert_null(d.agent_version);
  assert_null(d.protocol_version);
  assert_null(d.public_key);
  assert_false(d.has_observed_addr);
  assert_int_equal(d.n_listen_addrs, 0);
  assert_int_equal(d.n_protocols, 1);
  identify_msg_clear(&d);
  buf_free(&b);
}

static void test_identify_skips_unparseable_listen_addrs(void **state) {
  (void)state;
  Pb__Identify pb = PB__IDENTIFY__INIT;
  uint8_t good[] = {0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1};
  uint8_t unknown[] = {0xff, 0x7f, 1};
  ProtobufCBinaryData addrs[2] = {{sizeof unknown, unknown}, {sizeof good, good}};
  pb.n_listenaddrs = 2;
  pb.listenaddrs = addrs;
  pb.has_observedaddr = 1;
  pb.observedaddr.data = unknown;
  pb.observedaddr.len = sizeof unknown;
  uint8_t out[256];
  size_t n = pb__identify__pack(&pb, out);
  identify_msg d;
  assert_int_equal(identify_decode(out, n, &d), 0);
  assert_int_equal(d.n_listen_addrs, 1);
  assert_int_equal(d.n_listen_addrs_skipped, 1);
  assert_false(d.has_observed_addr);
  identify_msg_clear(&d);
}

static void test_identify_rejects_garbage_and_oversize(void **state) {
  (void)state;
  identify_msg d;
  const uint8_t junk[] = {0x12, 0x50, 1, 2};
  assert_int_equal(identify_decode(junk, sizeof junk, &d), -EINVAL);
  uint8_t *big = calloc(1, IDENTIFY_MAX_MSG + 1);
  assert_int_equal(identify_decode(big, IDENTIFY_MAX_MSG + 1, &d), -E2BIG);
  free(big);
  /* too many protocols */
  Pb__Identify pb = PB__IDENTIFY__INIT;
  char *protos[IDENTIFY_MAX_PROTOCOLS + 1];
  for (size_t i = 0; i <= IDENTIFY_MAX_PROTOCOLS; i++) protos[i] = "/p";
  pb.n_protocols = IDENTIFY_MAX_PROTOCOLS + 1;
  pb.protocols = protos;
  uint8_t *out = malloc(pb__identify__get_packed_size(&pb));
  size_t n = pb__identify__pack(&pb, out);
  assert_int_equal(identify_decode(out, n, &d), -E2BIG);
  free(out);
  /* an over-long agent string */
  Pb__Identify pa = PB__IDENTIFY__INIT;
  char agent[IDENTIFY_MAX_STRING + 2];
  memset(agent, 'a', sizeof agent - 1);
  agent[sizeof agent - 1] = 0;
  pa.agentversion = agent;
  out = malloc(pb__identify__get_packed_size(&pa));
  n = pb__identify__pack(&pa, out);
  assert_int_equal(identify_decode(out, n, &d), -EINVAL);
  free(out);
}

static void test_identify_frame_parse_needs_whole_message(void **state) {
  (void)state;
  const uint8_t f[] = {0x05, 1, 2, 3};
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(identify_frame_parse(f, sizeof f, 100, &body, &bl, &used), -EAGAIN);
  assert_int_equal(identify_frame_parse(f, 0, 100, &body, &bl, &used), -EAGAIN);
  assert_int_equal(identify_frame_parse(f, sizeof f, 4, &body, &bl, &used), -EMSGSIZE);
  const uint8_t nm[] = {0x80, 0x00};
  assert_int_equal(identify_frame_parse(nm, sizeof nm, 100, &body, &bl, &used), -EINVAL);
}

static void test_identify_encode_respects_ceilings(void **state) {
  (void)state;
  identify_msg m = {.n_listen_addrs = IDENTIFY_MAX_ADDRS + 1};
  buf b;
  buf_init(&b, 1 << 20);
  assert_int_equal(identify_encode(&m, &b), -E2BIG);
  buf_free(&b);
  buf_init(&b, 8);
  char *protos[] = {"/a/very/long/protocol/name/1.0.0"};
  identify_msg m2 = {.protocols = protos, .n_protocols = 1};
  assert_int_equal(identify_encode(&m2, &b), -E2BIG); /* past the buffer's max */
  assert_int_equal(buf_len(&b), 0);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identify_roundtrip_all_fields),
      cmocka_unit_test(test_identify_push_with_absent_fields),
      cmocka_unit_test(test_identify_skips_unparseable_listen_addrs),
      cmocka_unit_test(test_identify_rejects_garbage_and_oversize),
      cmocka_unit_test(test_identify_frame_parse_needs_whole_message),
      cmocka_unit_test(test_identify_encode_respects_ceilings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_dcutr.c — the DCUtR HolePunch codec (p2p/proto/dcutr.h): a CONNECT with addresses
 * round-trips through its frame, and every bad input is refused: too many addresses, a body over
 * the spec's 4 KiB, a declared length over it (before the body arrives), a truncated frame, a
 * message without a type, garbage, an address that is not a multiaddr (skipped and counted). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "holepunch.pb-c.h"
#include "p2p/proto/dcutr.h"

static dcutr_msg m, got;

static void addr(dcutr_msg *x, const char *s) {
  assert_int_equal(multiaddr_parse(s, &x->addrs[x->n_addrs]), 0);
  x->n_addrs++;
}

static void test_connect_round_trip(void **state) {
  (void)state;
  memset(&m, 0, sizeof m);
  m.type = DCUTR_CONNECT;
  addr(&m, "/ip4/5.1.0.2/tcp/4001");
  addr(&m, "/ip6/2001:db8::1/tcp/4001/p2p/12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5");
  buf b;
  buf_init(&b, DCUTR_MAX_MSG + 16);
  assert_int_equal(dcutr_encode(&m, &b), 0);
  const uint8_t *body;
  size_t bl, used;
  for (size_t cut = 0; cut < buf_len(&b); cut++) /* every truncation: feed more */
    assert_int_equal(dcutr_frame_parse(buf_ptr(&b), cut, &body, &bl, &used), -EAGAIN);
  assert_int_equal(dcutr_frame_parse(buf_ptr(&b), buf_len(&b), &body, &bl, &used), 0);
  assert_int_equal(used, buf_len(&b));
  assert_int_equal(dcutr_decode(body, bl, &got), 0);
  assert_int_equal(got.type, DCUTR_CONNECT);
  assert_int_equal(got.n_addrs, 2);
  assert_int_equal(got.n_skipped, 0);
  assert_true(multiaddr_equal(&got.addrs[0], &m.addrs[0]));
  assert_true(multiaddr_equal(&got.addrs[1], &m.addrs[1]));
  /* SYNC: no addresses */
  buf_reset(&b);
  m.type = DCUTR_SYNC;
  m.n_addrs = 0;
  assert_int_equal(dcutr_encode(&m, &b), 0);
  assert_int_equal(dcutr_frame_parse(buf_ptr(&b), buf_len(&b), &body, &bl, &used), 0);
  assert_int_equal(dcutr_decode(body, bl, &got), 0);
  assert_int_equal(got.type, DCUTR_SYNC);
  assert_int_equal(got.n_addrs, 0);
  buf_free(&b);
}

static void test_ceilings(void **state) {
  (void)state;
  buf b;
  buf_init(&b, 1 << 20);
  memset(&m, 0, sizeof m);
  m.type = DCUTR_CONNECT;
  m.n_addrs = DCUTR_MAX_ADDRS + 1;
  assert_int_equal(dcutr_encode(&m, &b), -E2BIG);
  /* 32 long addresses: over 4 KiB packed → refused, nothing written */
  m.n_addrs = 0;
  for (int i = 0; i < DCUTR_MAX_ADDRS; i++)
    addr(&m, "/dns4/a-very-long-host-name-to-fill-the-message-up.another-long-label-to-go-past-4-kib"
             ".example.com/tcp/4001/p2p/"
             "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5");
  assert_int_equal(dcutr_encode(&m, &b), -E2BIG);
  assert_int_equal(buf_len(&b), 0);
  /* a declared length over 4 KiB: refused from the prefix alone */
  const uint8_t big[] = {0x81, 0x20}; /* 4097 */
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(dcutr_frame_parse(big, sizeof big, &body, &bl, &used), -EMSGSIZE);
  /* a non-minimal varint */
  const uint8_t nonmin[] = {0x80, 0x00};
  assert_int_equal(dcutr_frame_parse(nonmin, sizeof nonmin, &body, &bl, &used), -EINVAL);
  /* a body over 4 KiB handed to decode */
  static uint8_t huge[DCUTR_MAX_MSG + 1];
  assert_int_equal(dcutr_decode(huge, sizeof huge, &got), -E2BIG);
  /* 33 addresses on the wire: -E2BIG from decode */
  ProtobufCBinaryData a[DCUTR_MAX_ADDRS + 1];
  multiaddr one;
  assert_int_equal(multiaddr_parse("/ip4/1.2.3.4/tcp/1", &one), 0);
  for (int i = 0; i <= DCUTR_MAX_ADDRS; i++) a[i] = (ProtobufCBinaryData){one.len, (uint8_t *)one.bytes};
  Holepunch__HolePunch pb = HOLEPUNCH__HOLE_PUNCH__INIT;
  pb.has_type = 1;
  pb.type = DCUTR_CONNECT;
  pb.n_obsaddrs = DCUTR_MAX_ADDRS + 1;
  pb.obsaddrs = a;
  uint8_t raw[2048];
  size_t n = holepunch__hole_punch__pack(&pb, raw);
  assert_int_equal(dcutr_decode(raw, n, &got), -E2BIG);
  buf_free(&b);
}

static void test_bad_messages(void **state) {
  (void)state;
  /* no type */
  Holepunch__HolePunch pb = HOLEPUNCH__HOLE_PUNCH__INIT;
  uint8_t raw[256];
  size_t n = holepunch__hole_punch__pack(&pb, raw);
  assert_int_equal(dcutr_decode(raw, n, &got), -EINVAL);
  /* garbage: a field with a truncated length */
  const uint8_t junk[] = {0x12, 0x7f, 0x01};
  assert_int_equal(dcutr_decode(junk, sizeof junk, &got), -EINVAL);
  /* an address that is not a multiaddr: skipped and counted, the others kept */
  multiaddr good;
  assert_int_equal(multiaddr_parse("/ip4/5.2.0.2/tcp/4001", &good), 0);
  uint8_t bad[] = {0xff, 0xff, 0xff, 0x0f, 0x01};
  ProtobufCBinaryData a[2] = {{sizeof bad, bad}, {good.len, (uint8_t *)good.bytes}};
  pb.has_type = 1;
  pb.type = DCUTR_CONNECT;
  pb.n_obsaddrs = 2;
  pb.obsaddrs = a;
  n = holepunch__hole_punch__pack(&pb, raw);
  assert_int_equal(dcutr_decode(raw, n, &got), 0);
  assert_int_equal(got.n_addrs, 1);
  assert_int_equal(got.n_skipped, 1);
  assert_true(multiaddr_equal(&got.addrs[0], &good));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_round_trip),
      cmocka_unit_test(test_ceilings),
      cmocka_unit_test(test_bad_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

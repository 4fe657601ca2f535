/* Unit tests for p2p/proto/pbframe: the varint-length-prefixed protobuf framing that identify,
 * AutoNAT and circuit relay v2 share. Packing round trips and respects both ceilings; the
 * reader asks for more on every truncation, refuses an over-long declared length before the
 * body arrives, and refuses non-minimal and over-long varints. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "autonat.pb-c.h"
#include "p2p/proto/pbframe.h"

static void dial_msg(Autonat__Message *pb, Autonat__Message__Dial *d, Autonat__Message__PeerInfo *pi,
                     ProtobufCBinaryData *addr, uint8_t *bytes, size_t n) {
  autonat__message__init(pb);
  autonat__message__dial__init(d);
  autonat__message__peer_info__init(pi);
  memset(bytes, 0xab, n);
  *addr = (ProtobufCBinaryData){n, bytes};
  pi->n_addrs = 1;
  pi->addrs = addr;
  d->peer = pi;
  pb->has_type = 1;
  pb->type = 0; /* DIAL */
  pb->dial = d;
}

static void test_pack_parse_roundtrip(void **state) {
  (void)state;
  Autonat__Message pb;
  Autonat__Message__Dial d;
  Autonat__Message__PeerInfo pi;
  ProtobufCBinaryData a;
  uint8_t bytes[200];
  dial_msg(&pb, &d, &pi, &a, bytes, sizeof bytes); /* body over 127 bytes: a 2-byte prefix */
  buf b;
  buf_init(&b, 4096);
  assert_int_equal(buf_append_byte(&b, 0x55), 0); /* packing appends */
  assert_int_equal(pbframe_pack(&pb.base, 1024, &b), 0);
  size_t sz = autonat__message__get_packed_size(&pb);
  assert_int_equal(buf_len(&b), 1 + 2 + sz);
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(pbframe_parse(buf_ptr(&b) + 1, buf_len(&b) - 1, 1024, &body, &bl, &used), 0);
  assert_int_equal(bl, sz);
  assert_int_equal(used, 2 + sz);
  Autonat__Message *back = autonat__message__unpack(NULL, bl, body);
  assert_non_null(back);
  assert_int_equal(back->dial->peer->addrs[0].len, sizeof bytes);
  autonat__message__free_unpacked(back, NULL);
  /* Every truncation asks for more. */
  for (size_t k = 0; k < used; k++)
    assert_int_equal(pbframe_parse(buf_ptr(&b) + 1, k, 1024, &body, &bl, &used), -EAGAIN);
  buf_free(&b);
}

static void test_pack_ceilings(void **state) {
  (void)state;
  Autonat__Message pb;
  Autonat__Message__Dial d;
  Autonat__Message__PeerInfo pi;
  ProtobufCBinaryData a;
  uint8_t bytes[200];
  dial_msg(&pb, &d, &pi, &a, bytes, sizeof bytes);
  size_t sz = autonat__message__get_packed_size(&pb);
  buf b;
  buf_init(&b, 4096);
  assert_int_equal(pbframe_pack(&pb.base, sz - 1, &b), -E2BIG); /* the protocol's ceiling */
  assert_int_equal(buf_len(&b), 0);
  assert_int_equal(pbframe_pack(&pb.base, sz, &b), 0);          /* exactly at it */
  buf_free(&b);
  buf_init(&b, sz + 1);                                          /* the buffer's ceiling */
  assert_int_equal(pbframe_pack(&pb.base, 4096, &b), -E2BIG);
  assert_int_equal(buf_len(&b), 0);
  buf_free(&b);
  /* An empty message: a lone zero prefix, parsed back as an empty body even with max 0. */
  Autonat__Message empty = AUTONAT__MESSAGE__INIT;
  buf_init(&b, 16);
  assert_int_equal(pbframe_pack(&empty.base, 0, &b), 0);
  assert_int_equal(buf_len(&b), 1);
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(pbframe_parse(buf_ptr(&b), buf_len(&b), 0, &body, &bl, &used), 0);
  assert_int_equal(bl, 0);
  assert_int_equal(used, 1);
  buf_free(&b);
}

static void test_parse_bad_prefixes(void **state) {
  (void)state;
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(pbframe_parse(NULL, 0, 100, &body, &bl, &used), -EAGAIN);           /* nothing yet */
  static const uint8_t cont[] = {0x80, 0x80};
  assert_int_equal(pbframe_parse(cont, sizeof cont, 100, &body, &bl, &used), -EAGAIN); /* inside the varint */
  static const uint8_t nonmin[] = {0x80, 0x00, 0x01};
  assert_int_equal(pbframe_parse(nonmin, sizeof nonmin, 100, &body, &bl, &used), -EINVAL);
  static const uint8_t toolong[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  assert_int_equal(pbframe_parse(toolong, sizeof toolong, SIZE_MAX, &body, &bl, &used), -EINVAL);
  /* A declared length over the ceiling is refused at once, without waiting for the body. */
  static const uint8_t big[] = {0x81, 0x08}; /* 1025 */
  assert_int_equal(pbframe_parse(big, sizeof big, 1024, &body, &bl, &used), -EMSGSIZE);
  assert_int_equal(pbframe_parse(big, sizeof big, 1025, &body, &bl, &used), -EAGAIN);
  static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}; /* 2^63 - 1 */
  assert_int_equal(pbframe_parse(huge, sizeof huge, 1 << 20, &body, &bl, &used), -EMSGSIZE);
  /* Two frames back to back: the first is consumed alone. */
  static const uint8_t two[] = {0x02, 0x08, 0x01, 0x01, 0x08};
  assert_int_equal(pbframe_parse(two, sizeof two, 100, &body, &bl, &used), 0);
  assert_int_equal(bl, 2);
  assert_int_equal(used, 3);
  assert_ptr_equal(body, two + 1);
  assert_int_equal(pbframe_parse(two + used, sizeof two - used, 100, &body, &bl, &used), 0);
  assert_int_equal(bl, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pack_parse_roundtrip),
      cmocka_unit_test(test_pack_ceilings),
      cmocka_unit_test(test_parse_bad_prefixes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

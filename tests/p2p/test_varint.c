/* Unit tests for p2p/core/varint (multiformats unsigned-varint rules). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "p2p/core/varint.h"

static void test_varint_roundtrip_boundaries(void **state) {
  (void)state;
  const uint64_t vals[] = {0, 1, 127, 128, 255, 300, 16383, 16384, (1ull << 35) + 7, VARINT_MAX_VALUE};
  const size_t lens[] = {1, 1, 1, 2, 2, 2, 2, 3, 6, 9};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    uint8_t b[VARINT_MAX_BYTES];
    size_t n = varint_encode(vals[i], b);
    assert_int_equal(n, lens[i]);
    assert_int_equal(varint_len(vals[i]), n);
    uint64_t v;
    size_t used;
    assert_int_equal(varint_decode(b, n, &v, &used), 0);
    assert_int_equal(used, n);
    assert_true(v == vals[i]);
  }
}

static void test_varint_known_encodings(void **state) {
  (void)state;
  uint8_t b[VARINT_MAX_BYTES];
  assert_int_equal(varint_encode(300, b), 2);
  assert_int_equal(b[0], 0xac);
  assert_int_equal(b[1], 0x02);
  assert_int_equal(varint_encode(421, b), 2); /* p2p multicodec */
  assert_int_equal(b[0], 0xa5);
  assert_int_equal(b[1], 0x03);
}

static void test_varint_rejects_values_over_63_bits(void **state) {
  (void)state;
  uint8_t b[VARINT_MAX_BYTES];
  assert_int_equal(varint_encode(VARINT_MAX_VALUE + 1, b), 0);
  assert_int_equal(varint_len(UINT64_MAX), 0);
}

static void test_varint_rejects_non_minimal_encoding(void **state) {
  (void)state;
  const uint8_t a[] = {0x80, 0x00};       /* 0 in two bytes */
  const uint8_t b[] = {0x81, 0x80, 0x00}; /* 1 in three bytes */
  uint64_t v;
  size_t used;
  assert_int_equal(varint_decode(a, sizeof a, &v, &used), -EINVAL);
  assert_int_equal(varint_decode(b, sizeof b, &v, &used), -EINVAL);
}

static void test_varint_rejects_more_than_nine_bytes(void **state) {
  (void)state;
  const uint8_t a[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  uint64_t v;
  size_t used;
  assert_int_equal(varint_decode(a, sizeof a, &v, &used), -EOVERFLOW);
}

static void test_varint_truncated_input_asks_for_more(void **state) {
  (void)state;
  const uint8_t a[] = {0xff, 0xff};
  uint64_t v;
  size_t used;
  assert_int_equal(varint_decode(a, sizeof a, &v, &used), -EAGAIN);
  assert_int_equal(varint_decode(a, 0, &v, &used), -EAGAIN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_varint_roundtrip_boundaries),
      cmocka_unit_test(test_varint_known_encodings),
      cmocka_unit_test(test_varint_rejects_values_over_63_bits),
      cmocka_unit_test(test_varint_rejects_non_minimal_encoding),
      cmocka_unit_test(test_varint_rejects_more_than_nine_bytes),
      cmocka_unit_test(test_varint_truncated_input_asks_for_more),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for p2p/core/multibase (base58btc, base32 and multibase prefixes). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/core/multibase.h"

static void test_base58btc_known_vectors(void **state) {
  (void)state;
  char out[64];
  size_t n;
  assert_int_equal(multibase_base58btc_encode((const uint8_t *)"Hello World!", 12, out, sizeof out, &n), 0);
  assert_string_equal(out, "2NEpo7TZRRrLZSi2U");
  const uint8_t lead[] = {0, 0, 0x28, 0x7f, 0xb4, 0xcd};
  assert_int_equal(multibase_base58btc_encode(lead, sizeof lead, out, sizeof out, &n), 0);
  assert_string_equal(out, "11233QC4");
  uint8_t back[16];
  assert_int_equal(multibase_base58btc_decode("11233QC4", 8, back, sizeof back, &n), 0);
  assert_int_equal(n, sizeof lead);
  assert_memory_equal(back, lead, n);
  assert_int_equal(multibase_base58btc_encode(lead, 0, out, sizeof out, &n), 0);
  assert_int_equal(n, 0);
}

static void test_base58btc_rejects_bad_characters(void **state) {
  (void)state;
  uint8_t b[16];
  size_t n;
  assert_int_equal(multibase_base58btc_decode("abc0", 4, b, sizeof b, &n), -EINVAL); /* 0 is not base58 */
  assert_int_equal(multibase_base58btc_decode("abcl", 4, b, sizeof b, &n), -EINVAL); /* nor l */
  assert_int_equal(multibase_base58btc_decode("ab\0c", 4, b, sizeof b, &n), -EINVAL);
}

static void test_base58btc_respects_capacity(void **state) {
  (void)state;
  char out[4];
  size_t n;
  assert_int_equal(multibase_base58btc_encode((const uint8_t *)"Hello World!", 12, out, sizeof out, &n), -ENOSPC);
}

static void test_base32_rfc4648_vectors(void **state) {
  (void)state;
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *exp[] = {"", "my", "mzxq", "mzxw6", "mzxw6yq", "mzxw6ytb", "mzxw6ytboi"};
  for (size_t i = 0; i < 7; i++) {
    char out[32];
    size_t n;
    assert_int_equal(multibase_base32_encode((const uint8_t *)in[i], strlen(in[i]), out, sizeof out, &n), 0);
    assert_string_equal(out, exp[i]);
    uint8_t back[32];
    assert_int_equal(multibase_base32_decode(exp[i], strlen(exp[i]), back, sizeof back, &n), 0);
    assert_int_equal(n, strlen(in[i]));
    assert_memory_equal(back, in[i], n);
  }
}

static void test_base32_rejects_non_canonical_tail(void **state) {
  (void)state;
  uint8_t b[8];
  size_t n;
  assert_int_equal(multibase_base32_decode("mz", 2, b, sizeof b, &n), -EINVAL); /* leftover bits set */
  assert_int_equal(multibase_base32_decode("m", 1, b, sizeof b, &n), -EINVAL);  /* impossible length */
  assert_int_equal(multibase_base32_decode("m1", 2, b, sizeof b, &n), -EINVAL); /* 1 not in alphabet */
}

static void test_multibase_prefixes(void **state) {
  (void)state;
  char out[64];
  size_t n;
  uint8_t b[64];
  const uint8_t data[] = {0xde, 0xad, 0xbe, 0xef};
  assert_int_equal(multibase_encode('f', data, 4, out, sizeof out, &n), 0);
  assert_string_equal(out, "fdeadbeef");
  assert_int_equal(multibase_encode('u', data, 4, out, sizeof out, &n), 0);
  assert_string_equal(out, "u3q2-7w");
  assert_int_equal(multibase_decode("u3q2-7w", 7, b, sizeof b, &n), 0);
  assert_memory_equal(b, data, 4);
  assert_int_equal(multibase_decode("m3q2+7w==", 9, b, sizeof b, &n), 0);
  assert_memory_equal(b, data, 4);
  assert_int_equal(multibase_decode("FDEADBEEF", 9, b, sizeof b, &n), 0);
  assert_memory_equal(b, data, 4);
  assert_int_equal(multibase_decode("BMZXW6", 6, b, sizeof b, &n), 0);
  assert_memory_equal(b, "foo", 3);
  assert_int_equal(multibase_decode("?abc", 4, b, sizeof b, &n), -EINVAL);
  assert_int_equal(multibase_decode("", 0, b, sizeof b, &n), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base58btc_known_vectors),
      cmocka_unit_test(test_base58btc_rejects_bad_characters),
      cmocka_unit_test(test_base58btc_respects_capacity),
      cmocka_unit_test(test_base32_rfc4648_vectors),
      cmocka_unit_test(test_base32_rejects_non_canonical_tail),
      cmocka_unit_test(test_multibase_prefixes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

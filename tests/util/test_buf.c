/* Unit tests for util/buf: the ceiling is enforced before any allocation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/buf.h"

static void test_buf_append_within_max(void **state) {
  (void)state;
  buf b;
  buf_init(&b, 10);
  assert_int_equal(buf_append(&b, "hello", 5), 0);
  assert_int_equal(buf_append(&b, "world", 5), 0);
  assert_int_equal(buf_len(&b), 10);
  assert_memory_equal(buf_ptr(&b), "helloworld", 10);
  buf_free(&b);
}

static void test_buf_rejects_past_max_and_keeps_contents(void **state) {
  (void)state;
  buf b;
  buf_init(&b, 8);
  assert_int_equal(buf_append(&b, "abcdef", 6), 0);
  assert_int_equal(buf_append(&b, "xyz", 3), -E2BIG);
  assert_int_equal(buf_len(&b), 6);
  assert_memory_equal(buf_ptr(&b), "abcdef", 6);
  assert_int_equal(buf_append(&b, (const void *)"x", SIZE_MAX), -E2BIG);
  buf_free(&b);
}

static void test_buf_consume_and_compact(void **state) {
  (void)state;
  buf b;
  buf_init(&b, 1 << 20);
  for (int i = 0; i < 1000; i++) {
    char c = (char)('a' + i % 26);
    assert_int_equal(buf_append(&b, &c, 1), 0);
    if (i % 3 == 2) buf_consume(&b, 2);
  }
  assert_true(buf_len(&b) > 0);
  size_t n;
  char *s = buf_take_str(&b, &n);
  assert_non_null(s);
  assert_int_equal(strlen(s), n);
  assert_int_equal(buf_len(&b), 0);
  free(s);
  buf_free(&b);
}

static void test_buf_truncate_undoes_appends(void **state) {
  (void)state;
  buf b;
  buf_init(&b, 64);
  assert_int_equal(buf_cap(&b), 0); /* nothing allocated before the first append */
  assert_int_equal(buf_append(&b, "header", 6), 0);
  size_t mark = buf_len(&b);
  assert_int_equal(buf_append(&b, "partial", 7), 0);
  buf_truncate(&b, mark);
  assert_int_equal(buf_len(&b), 6);
  assert_int_equal(buf_room(&b), 58);
  assert_int_equal(buf_append(&b, "!", 1), 0);
  assert_memory_equal(buf_ptr(&b), "header!", 7);
  buf_consume(&b, 3);
  buf_truncate(&b, 0);
  assert_int_equal(buf_len(&b), 0);
  assert_true(buf_cap(&b) > 0); /* the allocation is kept */
  buf_free(&b);
}

static void test_buf_set_max_moves_the_ceiling_only(void **state) {
  (void)state;
  buf b;
  buf_init(&b, 4);
  assert_int_equal(buf_append(&b, "abcd", 4), 0);
  assert_int_equal(buf_room(&b), 0);
  assert_int_equal(buf_append(&b, "e", 1), -E2BIG);
  buf_set_max(&b, 8);
  assert_int_equal(buf_max(&b), 8);
  assert_int_equal(buf_append(&b, "efgh", 4), 0);
  assert_memory_equal(buf_ptr(&b), "abcdefgh", 8);
  buf_set_max(&b, 8);
  assert_int_equal(buf_append(&b, "i", 1), -E2BIG);
  buf_free(&b);
  assert_int_equal(buf_max(&b), 8); /* buf_free keeps the ceiling for reuse */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buf_append_within_max),
      cmocka_unit_test(test_buf_rejects_past_max_and_keeps_contents),
      cmocka_unit_test(test_buf_consume_and_compact),
      cmocka_unit_test(test_buf_truncate_undoes_appends),
      cmocka_unit_test(test_buf_set_max_moves_the_ceiling_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

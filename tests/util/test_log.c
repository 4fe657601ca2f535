/* Unit tests for util/log: JSON lines with ts, level, msg and the caller's fields. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/log.h"

static json_t *capture_line(log_level lvl, const char *msg) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  log_set_fd(fds[1]);
  log_write(lvl, msg, "{s:s, s:i}", "request_id", "r-1", "n", 7);
  log_set_fd(2);
  close(fds[1]);
  char buf[4096];
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  if (n <= 0) return NULL;
  buf[n] = 0;
  assert_int_equal(buf[n - 1], '\n');
  json_error_t err;
  return json_loads(buf, 0, &err);
}

static void test_log_line_is_json_with_fields(void **state) {
  (void)state;
  log_set_level(LOG_DEBUG);
  json_t *j = capture_line(LOG_WARNING, "hello \"world\"");
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "level")), "warning");
  assert_string_equal(json_string_value(json_object_get(j, "msg")), "hello \"world\"");
  assert_string_equal(json_string_value(json_object_get(j, "request_id")), "r-1");
  assert_int_equal(json_integer_value(json_object_get(j, "n")), 7);
  assert_non_null(json_object_get(j, "ts"));
  json_decref(j);
}

static void test_log_level_filters(void **state) {
  (void)state;
  log_set_level(LOG_ERROR);
  json_t *j = capture_line(LOG_INFO, "dropped");
  assert_null(j);
  log_set_level(LOG_INFO);
}

static void test_log_level_parse(void **state) {
  (void)state;
  log_level l;
  assert_int_equal(log_level_parse("WARN", &l), 0);
  assert_int_equal(l, LOG_WARNING);
  assert_int_equal(log_level_parse("debug", &l), 0);
  assert_int_equal(l, LOG_DEBUG);
  assert_int_not_equal(log_level_parse("loud", &l), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_line_is_json_with_fields),
      cmocka_unit_test(test_log_level_filters),
      cmocka_unit_test(test_log_level_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for util/alloc: watches nest and are sticky outward; loads and dumps behave as
 * jansson's when memory is plentiful. (Failing allocations: tests/failmalloc/test_failmalloc_util.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/alloc.h"

static void test_alloc_watch_nests_and_is_seen_outward(void **state) {
  (void)state;
  alloc_oom_set(false);
  alloc_watch outer = alloc_watch_begin();
  alloc_watch inner = alloc_watch_begin();
  alloc_oom_set(true); /* as the allocator does when malloc fails */
  assert_true(alloc_watch_end(inner));
  assert_true(alloc_oom_seen()); /* the outer watch still sees it */
  assert_true(alloc_watch_end(outer));
  alloc_oom_set(false);
}

static void test_alloc_watch_restores_a_failure_seen_before_it(void **state) {
  (void)state;
  alloc_oom_set(true);
  alloc_watch w = alloc_watch_begin();
  assert_false(alloc_oom_seen()); /* the watch starts clean */
  assert_false(alloc_watch_end(w));
  assert_true(alloc_oom_seen()); /* and hands the earlier failure back */
  alloc_oom_set(false);
}

static void test_alloc_loads_and_dumps_as_jansson_does(void **state) {
  (void)state;
  json_error_t err;
  bool oom = true;
  json_t *v = alloc_json_loads("{\"a\":[1,\"two\",null]}", 0, &err, &oom);
  assert_false(oom);
  assert_non_null(v);
  char *text = alloc_json_dumps(v, JSON_COMPACT);
  assert_string_equal(text, "{\"a\":[1,\"two\",null]}");
  free(text);
  json_decref(v);
  v = alloc_json_loadb("{\"a\":", 5, 0, &err, &oom);
  assert_false(oom); /* a real syntax error is not out of memory */
  assert_null(v);
  assert_true(strlen(err.text) > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_watch_nests_and_is_seen_outward),
      cmocka_unit_test(test_alloc_watch_restores_a_failure_seen_before_it),
      cmocka_unit_test(test_alloc_loads_and_dumps_as_jansson_does),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

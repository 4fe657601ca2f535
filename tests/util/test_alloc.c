/* Unit tests for util/alloc: watches nest and are sticky outward; loads and dumps behave as
 * jansson's when memory is plentiful; the per-thread block cache reuses blocks, hands out blocks
 * big enough for each request (ASan sees an overrun), gives a thread's blocks back when it exits
 * (LSan sees a leak) and can be turned off. (Failing allocations: tests/failmalloc/test_failmalloc_util.c.) */
#include <pthread.h>
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

/* Strings of every length up to 300 made and freed crosswise: each comes from the class of
 * its size or from malloc, and every byte of it is written (jansson copies the text in). */
static void churn_strings(void) {
  char text[301];
  memset(text, 'x', sizeof text);
  json_t *keep[64] = {0};
  for (unsigned round = 0; round < 40; round++) {
    for (unsigned i = 0; i < 64; i++) {
      size_t len = (round * 37u + i * 11u) % 301u;
      json_decref(keep[i]);
      keep[i] = json_stringn(text, len);
      assert_non_null(keep[i]);
      assert_int_equal(json_string_length(keep[i]), len);
    }
  }
  for (unsigned i = 0; i < 64; i++) json_decref(keep[i]);
}

static void test_alloc_cache_reuses_blocks_of_the_right_size(void **state) {
  (void)state;
  json_t *a = json_object();
  assert_non_null(a);
  void *first = a;
  json_decref(a);
  json_t *b = json_object(); /* the block just freed, from this thread's list */
  assert_ptr_equal(b, first);
  json_decref(b);
  churn_strings();
}

static void *thread_churn(void *arg) {
  (void)arg;
  churn_strings();
  return NULL;
}

static void *thread_decref(void *arg) {
  json_decref(arg);
  return NULL;
}

static void test_alloc_cache_given_back_when_a_thread_exits(void **state) {
  (void)state;
  for (int i = 0; i < 4; i++) { /* LSan reports the lists of a thread that did not drain */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, thread_churn, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
  }
  json_t *v = json_string("made here, freed on another thread");
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, thread_decref, v), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_alloc_cache_off_goes_straight_to_malloc(void **state) {
  (void)state;
  alloc_json_cache_off();
  churn_strings();
  json_t *v = json_pack("{s:i}", "a", 1);
  char *text = json_dumps(v, JSON_COMPACT); /* jansson's block, freed with free() */
  assert_string_equal(text, "{\"a\":1}");
  free(text);
  json_decref(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_watch_nests_and_is_seen_outward),
      cmocka_unit_test(test_alloc_watch_restores_a_failure_seen_before_it),
      cmocka_unit_test(test_alloc_loads_and_dumps_as_jansson_does),
      cmocka_unit_test(test_alloc_cache_reuses_blocks_of_the_right_size),
      cmocka_unit_test(test_alloc_cache_given_back_when_a_thread_exits),
      cmocka_unit_test(test_alloc_cache_off_goes_straight_to_malloc), /* last: for the process */
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

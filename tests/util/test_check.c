/* Unit tests for util/check: which threads LOOP_THREAD_ONLY() lets through, and that a failed
 * check aborts in a debug build. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/check.h"

static void *probe_plain(void *p) {
  *(bool *)p = check_on_loop_thread();
  return NULL;
}

static void *probe_worker(void *p) {
  check_thread_is_worker();
  *(bool *)p = check_on_loop_thread();
  return NULL;
}

static bool on_other_thread(void *(*fn)(void *)) {
  bool r = true;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, fn, &r), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  return r;
}

static void test_check_any_thread_before_a_loop_thread_is_recorded(void **state) {
  (void)state;
  assert_true(check_on_loop_thread());
  assert_true(on_other_thread(probe_plain));
}

static void test_check_worker_thread_is_never_the_loop_thread(void **state) {
  (void)state;
  assert_false(on_other_thread(probe_worker));
}

static void test_check_only_the_recorded_loop_thread_once_one_is(void **state) {
  (void)state;
  check_loop_thread_enter();
  check_loop_thread_enter(); /* nests */
  assert_true(check_on_loop_thread());
  assert_false(on_other_thread(probe_plain));
  check_loop_thread_leave();
  assert_false(on_other_thread(probe_plain));
  check_loop_thread_leave();
  assert_true(on_other_thread(probe_plain));
}

/* A check that fails aborts the process in a debug build (the unit tests are built without
 * NDEBUG); in a release build it is compiled away. */
static void test_check_loop_thread_only_aborts_off_the_loop_thread(void **state) {
  (void)state;
#ifdef NDEBUG
  skip();
#else
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    check_thread_is_worker();
    LOOP_THREAD_ONLY();
    _exit(0);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGABRT);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_any_thread_before_a_loop_thread_is_recorded),
      cmocka_unit_test(test_check_worker_thread_is_never_the_loop_thread),
      cmocka_unit_test(test_check_only_the_recorded_loop_thread_once_one_is),
      cmocka_unit_test(test_check_loop_thread_only_aborts_off_the_loop_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

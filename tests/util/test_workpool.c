/* Tests for util/workpool: jobs run off the loop thread, completions come back on it, the pool
 * grows when workers block, and free drains everything. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/workpool.h"

typedef struct {
  pthread_t loop_thread;
  pthread_t ran_on;
  pthread_t done_on;
  atomic_int *counter;
  int done_calls;
  atomic_int *gate; /* blocks while 0 */
} job;

static void work_fn(void *arg) {
  job *j = arg;
  j->ran_on = pthread_self();
  if (j->gate)
    while (!atomic_load(j->gate)) usleep(1000);
  if (j->counter) atomic_fetch_add(j->counter, 1);
}

static void done_fn(void *arg) {
  job *j = arg;
  j->done_on = pthread_self();
  j->done_calls++;
}

static void run_until(uv_loop_t *loop, int *flag, int want) {
  for (int i = 0; i < 5000 && *flag < want; i++) uv_run(loop, UV_RUN_NOWAIT), usleep(200);
}

static void test_workpool_runs_job_off_loop_and_completes_on_loop(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  workpool *wp;
  assert_int_equal(workpool_new(&loop, 2, 2, &wp), 0);
  job j = {.loop_thread = pthread_self()};
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &j), 0);
  run_until(&loop, &j.done_calls, 1);
  assert_int_equal(j.done_calls, 1);
  assert_false(pthread_equal(j.ran_on, pthread_self()));
  assert_true(pthread_equal(j.done_on, pthread_self()));
  workpool_free(wp);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_workpool_grows_when_all_workers_block(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  workpool *wp;
  assert_int_equal(workpool_new(&loop, 1, 4, &wp), 0);
  atomic_int gate = 0, counter = 0;
  job blocked = {.gate = &gate, .counter = &counter};
  job quick = {.counter = &counter};
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &blocked), 0);
  usleep(20000); /* the one worker is now stuck */
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &quick), 0);
  run_until(&loop, &quick.done_calls, 1);
  assert_int_equal(quick.done_calls, 1); /* finished although the first job still blocks */
  assert_int_equal(blocked.done_calls, 0);
  assert_true(workpool_threads(wp) >= 2);
  atomic_store(&gate, 1);
  run_until(&loop, &blocked.done_calls, 1);
  assert_int_equal(atomic_load(&counter), 2);
  workpool_free(wp);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_workpool_free_drains_queued_jobs(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  workpool *wp;
  assert_int_equal(workpool_new(&loop, 2, 2, &wp), 0);
  atomic_int counter = 0;
  enum { N = 200 };
  job *jobs = calloc(N, sizeof *jobs);
  for (int i = 0; i < N; i++) {
    jobs[i].counter = &counter;
    assert_int_equal(workpool_submit(wp, work_fn, done_fn, &jobs[i]), 0);
  }
  workpool_free(wp); /* without running the loop: free itself delivers the completions */
  assert_int_equal(atomic_load(&counter), N);
  for (int i = 0; i < N; i++) assert_int_equal(jobs[i].done_calls, 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(jobs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_workpool_runs_job_off_loop_and_completes_on_loop),
      cmocka_unit_test(test_workpool_grows_when_all_workers_block),
      cmocka_unit_test(test_workpool_free_drains_queued_jobs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for util/workpool: jobs run off the loop thread, completions come back on it, the pool
 * grows when workers block, and free drains everything. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/wait.h"
#include "util/workpool.h"

typedef struct {
  pthread_t loop_thread;
  pthread_t ran_on;
  pthread_t done_on;
  atomic_int *counter;
  int done_calls;
  atomic_int *gate; /* blocks while 0 */
  atomic_int started; /* set when the job begins, before it waits for the gate */
  atomic_int *seq;    /* when set: order = the job's start position (1, 2, …) */
  int order;
} job;

static void work_fn(void *arg) {
  job *j = arg;
  j->ran_on = pthread_self();
  if (j->seq) j->order = atomic_fetch_add(j->seq, 1) + 1;
  atomic_store(&j->started, 1);
  if (j->gate)
    while (!atomic_load(j->gate)) usleep(1000);
  if (j->counter) atomic_fetch_add(j->counter, 1);
}

static void done_fn(void *arg) {
  job *j = arg;
  j->done_on = pthread_self();
  j->done_calls++;
}

/* Runs the loop until *flag reaches want (fails the test after TS_DEADLINE_MS). */
static void run_until(uv_loop_t *loop, int *flag, int want) { TS_LOOP_UNTIL(loop, TS_DEADLINE_MS, *flag >= want); }

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
  ts_loop_close(&loop);
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
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&blocked.started)); /* the one worker is now stuck */
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &quick), 0);
  run_until(&loop, &quick.done_calls, 1);
  assert_int_equal(quick.done_calls, 1); /* finished although the first job still blocks */
  assert_int_equal(blocked.done_calls, 0);
  assert_true(workpool_threads(wp) >= 2);
  atomic_store(&gate, 1);
  run_until(&loop, &blocked.done_calls, 1);
  assert_int_equal(atomic_load(&counter), 2);
  workpool_free(wp);
  ts_loop_close(&loop);
}

/* The blocking job and the quick one are queued back to back, before the one worker has woken
 * for the first: the pool must still grow (it counts queued jobs, not sleeping threads). */
static void test_workpool_grows_when_jobs_arrive_before_the_worker_wakes(void **state) {
  (void)state;
  /* On one CPU the woken worker cannot run between the two submissions (as on a loaded
   * machine), which makes the race this test is about (nearly) certain to happen. */
  cpu_set_t old, one;
  bool pinned = sched_getaffinity(0, sizeof old, &old) == 0;
  if (pinned) {
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &old)) {
        CPU_SET(c, &one);
        break;
      }
    pinned = sched_setaffinity(0, sizeof one, &one) == 0;
  }
  for (int round = 0; round < 20; round++) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    workpool *wp;
    assert_int_equal(workpool_new(&loop, 1, 4, &wp), 0);
    usleep(2000);
    atomic_int gate = 0, counter = 0;
    job warm = {.counter = &counter};
    job blocked = {.gate = &gate, .counter = &counter};
    job quick = {.counter = &counter};
    /* a first job, so the worker is asleep waiting for work (not starting up) when the two
     * arrive; the pause only makes that likely, correctness does not depend on it */
    assert_int_equal(workpool_submit(wp, work_fn, done_fn, &warm), 0);
    run_until(&loop, &warm.done_calls, 1);
    usleep(2000);
    assert_int_equal(workpool_threads(wp), 1); /* one idle thread was enough so far */
    assert_int_equal(workpool_submit(wp, work_fn, done_fn, &blocked), 0);
    assert_int_equal(workpool_submit(wp, work_fn, done_fn, &quick), 0);
    run_until(&loop, &quick.done_calls, 1);
    assert_int_equal(quick.done_calls, 1);
    assert_int_equal(blocked.done_calls, 0);
    atomic_store(&gate, 1);
    workpool_free(wp);
    assert_int_equal(blocked.done_calls, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
  }
  if (pinned) assert_int_equal(sched_setaffinity(0, sizeof old, &old), 0);
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

/* With a queue bound, a job that would wait beyond it (every thread busy, max_threads reached)
 * is refused with -EBUSY and neither callback runs; once the pool drains, jobs are accepted. */
static void test_workpool_queue_bound_refuses_with_ebusy(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  workpool *wp;
  assert_int_equal(workpool_new(&loop, 1, 2, &wp), 0);
  workpool_set_max_queued(wp, 1);
  atomic_int gate = 0, counter = 0;
  job b1 = {.gate = &gate, .counter = &counter}, b2 = b1, queued = b1, refused = b1, later = {.counter = &counter};
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &b1), 0);
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &b2), 0);     /* a second thread starts */
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &queued), 0); /* waits: within the bound */
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &refused), -EBUSY);
  atomic_store(&gate, 1);
  run_until(&loop, &queued.done_calls, 1);
  run_until(&loop, &b2.done_calls, 1);
  run_until(&loop, &b1.done_calls, 1);
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &later), 0);
  run_until(&loop, &later.done_calls, 1);
  assert_int_equal(atomic_load(&counter), 4);
  assert_int_equal(refused.done_calls, 0);
  workpool_free(wp);
  ts_loop_close(&loop);
}

/* Fairness between callers (issue 9): one thread, busy; caller A queues 10 jobs, then caller B
 * one and the unnamed caller (key 0) one. B's job starts second and key 0's third (one job of
 * A's before each), not after A's whole burst as FIFO did; A's own jobs keep their order. */
static void test_workpool_serves_callers_in_turn(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  workpool *wp;
  assert_int_equal(workpool_new(&loop, 1, 1, &wp), 0);
  atomic_int gate = 0, seq = 0;
  uint64_t ka = workpool_key_of("12D3KooWPeerA"), kb = workpool_key_of("12D3KooWPeerB");
  assert_true(ka != 0 && kb != 0 && ka != kb);
  assert_true(workpool_key_of("") == 0 && workpool_key_of(NULL) == 0);
  job blocker = {.gate = &gate};
  assert_int_equal(workpool_submit_for(wp, ka, work_fn, done_fn, &blocker), 0);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&blocker.started));
  enum { NA = 10 };
  job a[NA], b = {.seq = &seq}, z = {.seq = &seq};
  for (int i = 0; i < NA; i++) {
    a[i] = (job){.seq = &seq};
    assert_int_equal(workpool_submit_for(wp, ka, work_fn, done_fn, &a[i]), 0);
  }
  assert_int_equal(workpool_submit_for(wp, kb, work_fn, done_fn, &b), 0);
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &z), 0);
  atomic_store(&gate, 1);
  run_until(&loop, &a[NA - 1].done_calls, 1);
  run_until(&loop, &b.done_calls, 1);
  run_until(&loop, &z.done_calls, 1);
  assert_int_equal(a[0].order, 1);
  assert_int_equal(b.order, 2); /* FIFO: 11 */
  assert_int_equal(z.order, 3); /* FIFO: 12 */
  for (int i = 1; i < NA; i++) assert_int_equal(a[i].order, a[i - 1].order + 1 + (i == 1 ? 2 : 0));
  workpool_free(wp);
  ts_loop_close(&loop);
}

/* Threads grown for a burst go back: a pool of 1 grows to 4 under 4 blocking jobs; with an idle
 * exit of 100 ms it shrinks to its floor (1) once they end, and still runs jobs afterwards. */
static void test_workpool_idle_threads_exit_down_to_the_floor(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  workpool *wp;
  assert_int_equal(workpool_new(&loop, 1, 4, &wp), 0);
  workpool_set_idle_exit(wp, 1, 100);
  atomic_int gate = 0, counter = 0;
  job jobs[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (job){.gate = &gate, .counter = &counter};
    assert_int_equal(workpool_submit(wp, work_fn, done_fn, &jobs[i]), 0);
  }
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&jobs[0].started) && atomic_load(&jobs[1].started) &&
                                    atomic_load(&jobs[2].started) && atomic_load(&jobs[3].started));
  assert_int_equal(workpool_threads(wp), 4);
  atomic_store(&gate, 1);
  for (int i = 0; i < 4; i++) run_until(&loop, &jobs[i].done_calls, 1);
  TS_LOOP_UNTIL(&loop, TS_DEADLINE_MS, workpool_threads(wp) == 1);
  assert_int_equal(workpool_threads(wp), 1);
  job later = {.counter = &counter};
  assert_int_equal(workpool_submit(wp, work_fn, done_fn, &later), 0);
  run_until(&loop, &later.done_calls, 1);
  assert_int_equal(atomic_load(&counter), 5);
  workpool_free(wp);
  ts_loop_close(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_workpool_runs_job_off_loop_and_completes_on_loop),
      cmocka_unit_test(test_workpool_grows_when_all_workers_block),
      cmocka_unit_test(test_workpool_grows_when_jobs_arrive_before_the_worker_wakes),
      cmocka_unit_test(test_workpool_free_drains_queued_jobs),
      cmocka_unit_test(test_workpool_queue_bound_refuses_with_ebusy),
      cmocka_unit_test(test_workpool_serves_callers_in_turn),
      cmocka_unit_test(test_workpool_idle_threads_exit_down_to_the_floor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

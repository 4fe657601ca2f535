/* test_host_defer.c — the host's deferred work (internal.h: host_defer / host_cancel), white
 * box: tasks run on a later loop iteration, once, in order; a task may cancel another queued
 * in the same round and queue new ones, which wait for the next round. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#include "p2p/host/internal.h"
#include "util/log.h"

static uv_loop_t loop;
static p2p_host *host;
static char dir[64];
static char trace[64];
static size_t ntrace;
static host_task ta, tb, tc, td;

static void run_a(host_task *t) {
  (void)t;
  trace[ntrace++] = 'a';
  host_cancel(host, &tb);   /* queued in this round, after a */
  host_defer(host, &tc);    /* next round */
  host_defer(host, &ta);    /* itself again: next round, once */
  host_defer(host, &ta);
}
static void run_b(host_task *t) {
  (void)t;
  trace[ntrace++] = 'b';
}
static void run_c(host_task *t) {
  (void)t;
  trace[ntrace++] = 'c';
}
static void run_d(host_task *t) {
  (void)t;
  trace[ntrace++] = 'd';
}

static void closed(p2p_host *h, void *ud) {
  (void)h;
  *(bool *)ud = true;
}

static void test_host_defer_rounds_and_cancel(void **state) {
  (void)state;
  log_set_level(LOG_ERROR);
  snprintf(dir, sizeof dir, "/tmp/peermcp-test-defer-XXXXXX");
  assert_non_null(mkdtemp(dir));
  assert_int_equal(uv_loop_init(&loop), 0);
  p2p_host_config cfg = {.state_dir = dir, .no_peerstore_file = true};
  assert_int_equal(p2p_host_new(&loop, &cfg, &host), 0);
  ta = (host_task){.fn = run_a};
  tb = (host_task){.fn = run_b};
  tc = (host_task){.fn = run_c};
  td = (host_task){.fn = run_d};
  host_defer(host, &ta);
  host_defer(host, &tb);
  host_defer(host, &td);
  host_defer(host, &tb); /* already queued: once */
  assert_int_equal(ntrace, 0); /* nothing runs inside host_defer */
  host_cancel(host, &td);
  host_defer(host, &td); /* back at the end */
  for (int i = 0; i < 10 && ntrace < 4; i++) uv_run(&loop, UV_RUN_NOWAIT);
  trace[ntrace] = 0;
  /* round 1: a (cancels b, queues c and a), d; round 2: c, a (which queues c and a again) */
  assert_int_equal(strncmp(trace, "adca", 4), 0);
  host_cancel(host, &ta);
  host_cancel(host, &tc);
  assert_false(ta.queued || tc.queued);
  bool done = false;
  p2p_host_close(host, closed, &done);
  while (!done) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(uv_loop_close(&loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_host_defer_rounds_and_cancel)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

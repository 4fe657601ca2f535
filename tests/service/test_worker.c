/* test_worker.c — in-process workers on the local queue: a tool.call task runs through the
 * dispatcher and completes once with {"tool","result"}; cancel of a running task reaches the
 * handler through the heartbeat; stopping releases a running task (p2p_tasks_spec.md §10.1,
 * fixes of §12.8–12.10). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mcp/dispatch.h"
#include "mcp/registry.h"
#include "service/worker.h"
#include "util/clock.h"

static struct {
  char dir[128];
  uv_loop_t loop;
  tq_queue *q;
  taskq_ctx *tq;
  mcp_registry *reg;
  mcp_dispatcher *disp;
  svc_workers *w;
} W;

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call;
  (void)ud;
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}

static mcp_tool_status sleepy_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)args;
  (void)ud;
  int64_t end = clock_mono_ms() + 20000;
  while (clock_mono_ms() < end)
    if (mcp_call_sleep(call, 50)) break;
  *result = json_pack("{s:b}", "cancelled", mcp_call_cancelled(call));
  return MCP_TOOL_OK;
}

static mcp_tool_status local_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call;
  (void)args;
  (void)ud;
  *result = json_string("should never run for a task");
  return MCP_TOOL_OK;
}

static void add(const char *name, unsigned flags, mcp_tool_fn fn) {
  mcp_tool_def d = {0};
  d.name = name;
  d.category = "test";
  d.description = "t";
  d.flags = flags;
  d.fn = fn;
  assert_int_equal(mcp_registry_add(W.reg, &d), 0);
}

static int setup(void **state) {
  (void)state;
  memset(&W, 0, sizeof W);
  snprintf(W.dir, sizeof W.dir, "/tmp/peermcp-worker-XXXXXX");
  assert_non_null(mkdtemp(W.dir));
  assert_int_equal(uv_loop_init(&W.loop), 0);
  char path[256];
  snprintf(path, sizeof path, "%s/q.sqlite3", W.dir);
  tq_options qo;
  tq_options_default(&qo);
  qo.path = path;
  assert_int_equal(tq_open(&qo, &W.q), 0);
  taskq_config tc;
  taskq_config_default(&tc);
  tc.queue = W.q;
  tc.peer_id = "12D3KooWLocal";
  W.tq = taskq_new(&tc);
  W.reg = mcp_registry_new();
  add("echo", MCP_TOOL_REMOTE, echo_fn);
  add("sleepy", MCP_TOOL_REMOTE, sleepy_fn);
  add("local_only", 0, local_fn);
  assert_int_equal(mcp_dispatcher_new(&W.loop, W.reg, NULL, &W.disp), 0);
  return 0;
}

static void stopped(void *ud) { *(int *)ud = 1; }

static int teardown(void **state) {
  (void)state;
  if (W.w) {
    int done = 0;
    svc_workers_stop(W.w, 100, stopped, &done);
    int64_t end = clock_mono_ms() + 10000;
    while (!done && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
    assert_true(done);
    svc_workers_free(W.w);
  }
  mcp_dispatcher_shutdown(W.disp);
  mcp_dispatcher_free(W.disp);
  uv_run(&W.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&W.loop), 0);
  mcp_registry_free(W.reg);
  taskq_free(W.tq);
  tq_close(W.q);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", W.dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

static void submit(const char *tool, char id[33]) {
  tq_submit_req r = {0};
  r.task_type = "tool.call";
  r.payload = json_pack("{s:s, s:{s:i}}", "tool", tool, "args", "x", 7);
  assert_int_equal(tq_submit(W.q, &r, id, NULL), 0);
  json_decref(r.payload);
}

static void start_workers(double lease) {
  svc_workers_opts o = {0};
  o.loop = &W.loop;
  o.dispatcher = W.disp;
  o.worker_id = "w";
  o.local = W.tq;
  o.lease_seconds = lease;
  o.idle_poll_ms = 50;
  assert_int_equal(svc_workers_start(&o, &W.w), 0);
}

/* Runs the loop until the task reaches `status` (or 15 s). */
static tq_task *run_until_status(const char *id, tq_status status) {
  int64_t end = clock_mono_ms() + 15000;
  while (clock_mono_ms() < end) {
    uv_run(&W.loop, UV_RUN_NOWAIT);
    tq_task *t = NULL;
    assert_int_equal(tq_get(W.q, id, &t), 0);
    if (t->status == status) return t;
    tq_task_free(t);
    usleep(5000);
  }
  fail_msg("task %s never reached %s", id, tq_status_name(status));
  return NULL;
}

static void test_worker_runs_tool_call_and_completes_once(void **state) {
  (void)state;
  char id[33];
  submit("echo", id);
  start_workers(30);
  tq_task *t = run_until_status(id, TQ_COMPLETED);
  json_t *res = json_loads(t->result_json, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(res, "tool")), "echo");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(res, "result"), "echo"), "x")), 7);
  assert_int_equal(t->attempt, 1);
  json_decref(res);
  tq_task_free(t);
  svc_workers_stats st;
  svc_workers_stats_get(W.w, &st);
  assert_int_equal(st.claimed, 1);
  assert_int_equal(st.completed, 1);
}

static void test_worker_refuses_local_only_tools(void **state) {
  (void)state;
  char id[33];
  submit("local_only", id);
  start_workers(30);
  tq_task *t = run_until_status(id, TQ_FAILED);
  tq_task_free(t);
}

static void test_cancel_of_running_task_reaches_the_handler(void **state) {
  (void)state;
  char id[33];
  submit("sleepy", id);
  start_workers(3); /* heartbeat every second */
  tq_task *t = run_until_status(id, TQ_RUNNING);
  tq_task_free(t);
  tq_cancel_outcome oc;
  assert_int_equal(tq_cancel(W.q, id, "test", &oc), 0);
  assert_int_equal(oc, TQ_CANCEL_REQUESTED);
  t = run_until_status(id, TQ_CANCELLED);
  tq_task_free(t);
}

static void test_stop_releases_running_task(void **state) {
  (void)state;
  char id[33];
  submit("sleepy", id);
  start_workers(30);
  tq_task *t = run_until_status(id, TQ_RUNNING);
  tq_task_free(t);
  int done = 0;
  svc_workers_stop(W.w, 50, stopped, &done);
  int64_t end = clock_mono_ms() + 10000;
  while (!done && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_true(done);
  svc_workers_free(W.w);
  W.w = NULL;
  assert_int_equal(tq_get(W.q, id, &t), 0);
  assert_int_equal(t->status, TQ_QUEUED);
  assert_int_equal(t->attempt, 0); /* release refunds the attempt */
  tq_task_free(t);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_worker_runs_tool_call_and_completes_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_worker_refuses_local_only_tools, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_of_running_task_reaches_the_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_releases_running_task, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

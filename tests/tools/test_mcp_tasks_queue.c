/* Tests for tools/mcp_tasks_queue: MCP tasks over a real queue file and the in-process runner —
 * durable before the create callback, bound to their owner, TTL, paging, cancel of a running
 * task, release at stop, tasks not created through MCP stay invisible. */
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
#include "store/queue.h"
#include "support/mcpfix.h"
#include "support/tmpdir.h"
#include "support/wait.h"
#include "tools/mcp_tasks_queue.h"
#include "util/clock.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_incref(args);
  return MCP_TOOL_OK;
}
static mcp_tool_status nap_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  bool c = mcp_call_sleep(call, json_integer_value(json_object_get(args, "ms")));
  *result = json_pack("{s:b}", "cancelled", c);
  return MCP_TOOL_OK;
}
static mcp_tool_status oops_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_string("oops");
  return MCP_TOOL_ERROR;
}

static const mcp_tool_def k_tools[] = {
    {.name = "echo", .category = "t", .fn = echo_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "nap", .category = "t", .fn = nap_fn, .flags = MCP_TOOL_REMOTE, .timeout_ms = 60000},
    {.name = "oops", .category = "t", .fn = oops_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "local_only", .category = "t", .fn = echo_fn},
};

typedef struct {
  char dir[TS_TMPDIR_MAX];
  tq_queue *q;
  ts_mcp m; /* loop, registry, dispatcher */
  mcp_tasks_queue *tq;
  const mcp_tasks_backend *be;
  /* last callback */
  int calls, rc;
  size_t n;
  char ids[4][40];
  mcp_task_status st[4];
  char next[160];
  bool has_next;
  json_t *result, *error;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  ts_tmpdir_make(f->dir, "mcp-tasks");
  char p[TS_TMPDIR_MAX + 32];
  tq_options qo;
  tq_options_default(&qo);
  ts_path(p, sizeof p, f->dir, "queue.sqlite3");
  qo.path = p;
  assert_int_equal(tq_open(&qo, &f->q), 0);
  ts_mcp_open(&f->m);
  ts_mcp_add_tools(&f->m, k_tools, sizeof k_tools / sizeof k_tools[0]);
  ts_mcp_start(&f->m, 2, 8);
  mcp_tasks_queue_opts to = {.loop = &f->m.loop, .dispatcher = f->m.d, .queue = f->q, .runner = true, .runner_slots = 2,
                             .scan_interval_ms = 50, .lease_seconds = 3};
  assert_int_equal(mcp_tasks_queue_new(&to, &f->tq), 0);
  f->be = mcp_tasks_queue_backend(f->tq);
  *state = f;
  return 0;
}

static void stopped(void *ud) { *(int *)ud = 1; }

static int teardown(void **state) {
  fx *f = *state;
  int done = 0;
  mcp_tasks_queue_stop(f->tq, stopped, &done);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, done);
  mcp_dispatcher_shutdown(f->m.d);
  ts_mcp_close(&f->m); /* frees the dispatcher, closes the loop */
  mcp_tasks_queue_free(f->tq);
  tq_close(f->q);
  json_decref(f->result);
  json_decref(f->error);
  assert_int_equal(ts_tmpdir_remove(f->dir), 0);
  free(f);
  return 0;
}

static void on_done(void *ud, int rc, const mcp_task_view *v, size_t n, const char *next) {
  fx *f = ud;
  f->calls++;
  f->rc = rc;
  f->n = n;
  for (size_t i = 0; i < n && i < 4; i++) {
    snprintf(f->ids[i], sizeof f->ids[i], "%s", v[i].task_id);
    f->st[i] = v[i].status;
  }
  json_decref(f->result);
  json_decref(f->error);
  f->result = n ? json_incref(v[0].result) : NULL;
  f->error = n ? json_incref(v[0].error) : NULL;
  f->has_next = next != NULL;
  snprintf(f->next, sizeof f->next, "%s", next ? next : "");
}

/* Runs the loop until the callback has been called `want` times in all. */
static void wait_calls(fx *f, int want) {
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, f->calls >= want);
  assert_int_equal(f->calls, want);
}

/* args is stolen. */
static void create(fx *f, const char *owner, const char *tool, json_t *args, int64_t ttl) {
  mcp_task_create c = {.owner = owner, .tool = tool, .args = args, .ttl_ms = ttl};
  int before = f->calls;
  mcp_tasks_op *op = NULL;
  assert_int_equal(f->be->create(f->be->impl, &c, on_done, f, &op), 0);
  assert_int_equal(f->calls, before); /* never called back from inside the call */
  wait_calls(f, before + 1);
  json_decref(args);
  assert_int_equal(f->rc, 0);
  assert_int_equal(f->n, 1);
}

static void get(fx *f, const char *owner, const char *id, bool wait) {
  int before = f->calls;
  mcp_tasks_op *op;
  assert_int_equal(f->be->get(f->be->impl, owner, id, wait, on_done, f, &op), 0);
  wait_calls(f, before + 1);
}

static void test_create_is_durable_before_the_callback(void **state) {
  fx *f = *state;
  json_t *args = json_pack("{s:i}", "a", 1);
  create(f, "local", "echo", args, 60000);
  assert_int_equal(f->st[0], MCP_TASK_WORKING);
  tq_task *t = NULL;
  assert_int_equal(tq_get(f->q, f->ids[0], &t), 0); /* committed before we heard of it */
  assert_string_equal(t->task_type, "tool.call");
  json_t *p = json_loads(t->payload_json, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(p, "tool")), "echo");
  assert_string_equal(json_string_value(json_object_get(json_object_get(p, "mcp_task"), "owner")), "local");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "mcp_task"), "ttl_ms")), 60000);
  json_decref(p);
  tq_task_free(t);
}

static void test_runner_completes_and_wait_gives_the_call_tool_result(void **state) {
  fx *f = *state;
  json_t *args = json_pack("{s:s}", "x", "y");
  create(f, "local", "echo", args, -1);
  char id[40];
  snprintf(id, sizeof id, "%s", f->ids[0]);
  get(f, "local", id, true);
  assert_int_equal(f->rc, 0);
  assert_int_equal(f->st[0], MCP_TASK_COMPLETED);
  assert_false(json_is_true(json_object_get(f->result, "isError")));
  assert_string_equal(json_string_value(json_object_get(json_object_get(f->result, "structuredContent"), "x")), "y");
  assert_null(f->error);
}

static void test_tool_error_fails_with_an_is_error_result(void **state) {
  fx *f = *state;
  create(f, "local", "oops", NULL, -1);
  char id[40];
  snprintf(id, sizeof id, "%s", f->ids[0]);
  get(f, "local", id, true);
  assert_int_equal(f->st[0], MCP_TASK_FAILED);
  assert_true(json_is_true(json_object_get(f->result, "isError")));
  assert_null(f->error); /* a tool result, not a JSON-RPC error */
}

static void test_local_only_tool_cannot_run_as_a_task(void **state) {
  fx *f = *state;
  create(f, "local", "local_only", NULL, -1); /* the session refuses this; the runner must too */
  char id[40];
  snprintf(id, sizeof id, "%s", f->ids[0]);
  get(f, "local", id, true);
  assert_int_equal(f->st[0], MCP_TASK_FAILED);
  assert_true(json_is_true(json_object_get(f->result, "isError")));
}

static void test_another_owner_sees_nothing(void **state) {
  fx *f = *state;
  create(f, "peer:A", "nap", json_pack("{s:i}", "ms", 0), -1);
  char id[40];
  snprintf(id, sizeof id, "%s", f->ids[0]);
  get(f, "peer:B", id, false);
  assert_int_equal(f->rc, -ENOENT);
  mcp_tasks_op *op;
  assert_int_equal(f->be->cancel(f->be->impl, "peer:B", id, on_done, f, &op), 0);
  wait_calls(f, f->calls + 1);
  assert_int_equal(f->rc, -ENOENT);
  assert_int_equal(f->be->list(f->be->impl, "peer:B", NULL, 10, on_done, f, &op), 0);
  wait_calls(f, f->calls + 1);
  assert_int_equal(f->rc, 0);
  assert_int_equal(f->n, 0);
  get(f, "peer:A", id, false);
  assert_int_equal(f->rc, 0);
}

static void test_tasks_not_created_through_mcp_are_invisible(void **state) {
  fx *f = *state;
  json_t *payload = json_pack("{s:s, s:{}}", "tool", "echo", "args");
  tq_submit_req r = {.task_type = "tool.call", .payload = payload};
  char id[33];
  assert_int_equal(tq_submit(f->q, &r, id, NULL), 0);
  json_decref(payload);
  get(f, "local", id, false);
  assert_int_equal(f->rc, -ENOENT);
  get(f, "local", "not-hex", false);
  assert_int_equal(f->rc, -ENOENT);
}

static void test_expired_task_is_not_found_and_deleted(void **state) {
  fx *f = *state;
  create(f, "local", "nap", json_pack("{s:i}", "ms", 0), 1); /* clamped up to 1 s */
  char id[40];
  snprintf(id, sizeof id, "%s", f->ids[0]);
  usleep(1100 * 1000);
  get(f, "local", id, false);
  assert_int_equal(f->rc, -ENOENT);
  tq_task *t = NULL;
  assert_int_equal(tq_get(f->q, id, &t), -ENOENT);
}

static void test_list_pages_with_a_cursor(void **state) {
  fx *f = *state;
  char made[3][40];
  for (int i = 0; i < 3; i++) {
    create(f, "sub:me", "echo", NULL, -1);
    snprintf(made[i], sizeof made[i], "%s", f->ids[0]);
  }
  create(f, "sub:other", "echo", NULL, -1);
  mcp_tasks_op *op;
  assert_int_equal(f->be->list(f->be->impl, "sub:me", NULL, 2, on_done, f, &op), 0);
  wait_calls(f, f->calls + 1);
  assert_int_equal(f->n, 2);
  assert_true(f->has_next);
  assert_string_equal(f->ids[0], made[0]);
  assert_string_equal(f->ids[1], made[1]);
  char cur[160];
  snprintf(cur, sizeof cur, "%s", f->next);
  assert_int_equal(f->be->list(f->be->impl, "sub:me", cur, 2, on_done, f, &op), 0);
  wait_calls(f, f->calls + 1);
  assert_int_equal(f->n, 1);
  assert_false(f->has_next);
  assert_string_equal(f->ids[0], made[2]);
  assert_int_equal(f->be->list(f->be->impl, "sub:me", "garbage", 2, on_done, f, &op), 0);
  wait_calls(f, f->calls + 1);
  assert_int_equal(f->rc, -EINVAL);
}

static bool is_running(fx *f, const char *id) {
  tq_task *t = NULL;
  assert_int_equal(tq_get(f->q, id, &t), 0);
  bool running = t->status == TQ_RUNNING;
  tq_task_free(t);
  return running;
}

static void wait_running(fx *f, const char *id) { TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, is_running(f, id)); }

static unsigned long runs_cancelled(fx *f) {
  mcp_tasks_queue_stats st;
  mcp_tasks_queue_stats_get(f->tq, &st);
  return (unsigned long)st.runs_cancelled;
}

static void test_cancel_of_a_running_task_is_immediate_and_stops_the_run(void **state) {
  fx *f = *state;
  create(f, "local", "nap", json_pack("{s:i}", "ms", 20000), -1);
  char id[40];
  snprintf(id, sizeof id, "%s", f->ids[0]);
  wait_running(f, id);
  mcp_tasks_op *op;
  assert_int_equal(f->be->cancel(f->be->impl, "local", id, on_done, f, &op), 0);
  wait_calls(f, f->calls + 1);
  assert_int_equal(f->rc, 0);
  assert_int_equal(f->st[0], MCP_TASK_CANCELLED);
  int64_t t0 = clock_mono_ms();
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, runs_cancelled(f) > 0);
  assert_int_equal(runs_cancelled(f), 1);
  assert_true(clock_mono_ms() - t0 < 15000); /* before the 20 s nap ends */
  assert_int_equal(f->be->cancel(f->be->impl, "local", id, on_done, f, &op), 0);
  wait_calls(f, f->calls + 1);
  assert_int_equal(f->rc, -EALREADY);
}

static void test_stop_releases_running_tasks(void **state) {
  fx *f = *state;
  create(f, "local", "nap", json_pack("{s:i}", "ms", 20000), -1);
  char id[40];
  snprintf(id, sizeof id, "%s", f->ids[0]);
  wait_running(f, id);
  int done = 0;
  mcp_tasks_queue_stop(f->tq, stopped, &done);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, done);
  tq_task *t = NULL;
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_int_equal(t->status, TQ_QUEUED);
  assert_int_equal(t->attempt, 0); /* refunded */
  tq_task_free(t);
  mcp_tasks_op *op;
  assert_int_equal(f->be->get(f->be->impl, "local", id, false, on_done, f, &op), -ESHUTDOWN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_is_durable_before_the_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_completes_and_wait_gives_the_call_tool_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tool_error_fails_with_an_is_error_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_local_only_tool_cannot_run_as_a_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_another_owner_sees_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks_not_created_through_mcp_are_invisible, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expired_task_is_not_found_and_deleted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_pages_with_a_cursor, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_of_a_running_task_is_immediate_and_stops_the_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_releases_running_tasks, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

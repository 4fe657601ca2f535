/* Tests for MCP Tasks in the session core (mcp/session.c + mcp/tasks.c) against a fake
 * backend: 2025-11-25 tasks.mdx (capability, execution.taskSupport, CreateTaskResult, tasks/get,
 * tasks/result with related-task _meta, tasks/list pagination, tasks/cancel, the -32601 /
 * -32602 rules) and SEP-2663 (extension in server/discover, resultType "task", ttlSeconds,
 * tool errors as completed, empty acknowledgements for tasks/cancel and tasks/update). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mcp/session.h"
#include "support/mcpfix.h"
#include "support/wait.h"
#include "mcp/tasks.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_incref(args);
  return MCP_TOOL_OK;
}

static const mcp_tool_def k_tools[] = {
    {.name = "remote_echo", .category = "a", .fn = echo_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "local_echo", .category = "a", .fn = echo_fn},
    {.name = "must_task", .category = "b", .fn = echo_fn, .flags = MCP_TOOL_REMOTE},
};

/* ---------- the fake backend: records operations, completes them when the test says ---------- */

enum { F_CREATE = 1, F_GET, F_WAIT, F_LIST, F_CANCEL };

struct mcp_tasks_op {
  int kind;
  bool detached, done;
  mcp_tasks_done_fn cb;
  void *ud;
  char owner[MCP_TASKS_MAX_OWNER];
  char task_id[80];
  char tool[64];
  char cursor[MCP_TASKS_MAX_CURSOR + 1];
  int64_t ttl_ms;
  size_t limit;
  json_t *args;
};

#define MAX_OPS 32
typedef struct fake {
  struct mcp_tasks_op ops[MAX_OPS];
  size_t n;
  int refuse; /* a synchronous error for the next operation */
} fake;

static mcp_task_support fake_support(void *impl, const mcp_tool *t) {
  const char *n = mcp_tool_def_of(t)->name;
  if (strcmp(n, "must_task") == 0) return MCP_TASK_SUPPORT_REQUIRED;
  return (mcp_tool_def_of(t)->flags & MCP_TOOL_REMOTE) ? MCP_TASK_SUPPORT_OPTIONAL : MCP_TASK_SUPPORT_FORBIDDEN;
}

static struct mcp_tasks_op *fake_add(fake *fk, int kind, const char *owner, mcp_tasks_done_fn cb, void *ud,
                                     mcp_tasks_op **out) {
  assert_true(fk->n < MAX_OPS);
  struct mcp_tasks_op *op = &fk->ops[fk->n++];
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->cb = cb;
  op->ud = ud;
  snprintf(op->owner, sizeof op->owner, "%s", owner ? owner : "");
  *out = op;
  return op;
}

static int fake_create(void *impl, const mcp_task_create *req, mcp_tasks_done_fn cb, void *ud, mcp_tasks_op **out) {
  fake *fk = impl;
  if (fk->refuse) return fk->refuse;
  struct mcp_tasks_op *op = fake_add(fk, F_CREATE, req->owner, cb, ud, out);
  snprintf(op->tool, sizeof op->tool, "%s", req->tool);
  op->ttl_ms = req->ttl_ms;
  op->args = json_deep_copy(req->args);
  return 0;
}
static int fake_get(void *impl, const char *owner, const char *id, bool wait, mcp_tasks_done_fn cb, void *ud,
                    mcp_tasks_op **out) {
  fake *fk = impl;
  if (fk->refuse) return fk->refuse;
  struct mcp_tasks_op *op = fake_add(fk, wait ? F_WAIT : F_GET, owner, cb, ud, out);
  snprintf(op->task_id, sizeof op->task_id, "%s", id);
  return 0;
}
static int fake_list(void *impl, const char *owner, const char *cursor, size_t limit, mcp_tasks_done_fn cb, void *ud,
                     mcp_tasks_op **out) {
  fake *fk = impl;
  struct mcp_tasks_op *op = fake_add(fk, F_LIST, owner, cb, ud, out);
  snprintf(op->cursor, sizeof op->cursor, "%s", cursor ? cursor : "");
  op->limit = limit;
  return 0;
}
static int fake_cancel(void *impl, const char *owner, const char *id, mcp_tasks_done_fn cb, void *ud,
                       mcp_tasks_op **out) {
  fake *fk = impl;
  struct mcp_tasks_op *op = fake_add(fk, F_CANCEL, owner, cb, ud, out);
  snprintf(op->task_id, sizeof op->task_id, "%s", id);
  return 0;
}
static void fake_detach(void *impl, mcp_tasks_op *op) { op->detached = true; }

/* Completes op i (it must be live). */
static void fake_finish(fake *fk, size_t i, int rc, const mcp_task_view *v, size_t n, const char *next) {
  assert_true(i < fk->n);
  struct mcp_tasks_op *op = &fk->ops[i];
  assert_false(op->done);
  assert_false(op->detached);
  op->done = true;
  op->cb(op->ud, rc, v, n, next);
}

/* ---------- fixture ---------- */

typedef struct {
  ts_mcp m; /* loop, registry, dispatcher */
  mcp_session *s;
  json_t *out;
  fake fk;
  mcp_tasks_backend be;
  mcp_auth auth;
} fx;

static int make(void **state, bool with_tasks) {
  fx *f = calloc(1, sizeof *f);
  ts_mcp_open(&f->m);
  ts_mcp_add_tools(&f->m, k_tools, sizeof k_tools / sizeof k_tools[0]);
  ts_mcp_start(&f->m, 1, 0);
  f->out = json_array();
  f->be = (mcp_tasks_backend){.impl = &f->fk, .support = fake_support, .create = fake_create, .get = fake_get,
                              .list = fake_list, .cancel = fake_cancel, .detach = fake_detach};
  f->auth = (mcp_auth)AUTH_CTX_LOCAL_INIT;
  mcp_session_opts so = {.dispatcher = f->m.d, .auth = &f->auth, .page_size = 2, .send = ts_capture, .send_ud = f->out,
                         .tasks = with_tasks ? &f->be : NULL};
  assert_int_equal(mcp_session_new(&so, &f->s), 0);
  *state = f;
  return 0;
}
static int setup(void **state) { return make(state, true); }
static int setup_no_tasks(void **state) { return make(state, false); }

static int teardown(void **state) {
  fx *f = *state;
  mcp_session_free(f->s);
  for (size_t i = 0; i < f->fk.n; i++) {
    /* every op the session started either completed or was detached by mcp_session_free */
    assert_true(f->fk.ops[i].done || f->fk.ops[i].detached);
    json_decref(f->fk.ops[i].args);
  }
  ts_mcp_close(&f->m);
  json_decref(f->out);
  free(f);
  return 0;
}

static void feed(fx *f, const char *text) { mcp_session_feed(f->s, text, strlen(text)); }
static json_t *last(fx *f) { return ts_last(f->out); }
static json_int_t err_code(json_t *m) { return ts_error_code(m); }
static json_t *result(json_t *m) { return json_object_get(m, "result"); }
static const char *str_at(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

#define INIT(ver)                                                                                                    \
  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"" ver                   \
  "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}"
#define MODERN_EXT                                                                                                   \
  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/"                 \
  "clientCapabilities\":{\"extensions\":{\"io.modelcontextprotocol/tasks\":{}}}}"
#define MODERN_NOEXT                                                                                                 \
  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/"                 \
  "clientCapabilities\":{}}"

static mcp_task_view view(const char *id, mcp_task_status st) {
  return (mcp_task_view){.task_id = id, .status = st, .created_at = 1764066600.5, .updated_at = 1764066601.25,
                         .ttl_ms = 60000, .poll_interval_ms = 1000};
}

/* ---------- legacy era (2025-11-25) ---------- */

static void test_tasks_capability_declared_for_2025_11_25_only(void **state) {
  fx *f = *state;
  feed(f, INIT("2025-11-25"));
  json_t *tasks = json_object_get(json_object_get(result(last(f)), "capabilities"), "tasks");
  assert_true(json_is_object(json_object_get(tasks, "list")));
  assert_true(json_is_object(json_object_get(tasks, "cancel")));
  assert_true(json_is_object(json_object_get(json_object_get(json_object_get(tasks, "requests"), "tools"), "call")));
  feed(f, INIT("2025-06-18"));
  assert_null(json_object_get(json_object_get(result(last(f)), "capabilities"), "tasks"));
}

static void test_tasks_capability_absent_without_backend(void **state) {
  fx *f = *state;
  feed(f, INIT("2025-11-25"));
  assert_null(json_object_get(json_object_get(result(last(f)), "capabilities"), "tasks"));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"x\"}}");
  assert_int_equal(err_code(last(f)), -32601);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/list\"}");
  assert_int_equal(err_code(last(f)), -32601);
}

static void test_tools_list_declares_execution_task_support(void **state) {
  fx *f = *state;
  feed(f, INIT("2025-11-25"));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
  json_t *tools = json_object_get(result(last(f)), "tools");
  assert_int_equal(json_array_size(tools), 2); /* page size 2: local_echo, remote_echo */
  for (size_t i = 0; i < 2; i++) {
    json_t *t = json_array_get(tools, i);
    const char *want = strcmp(str_at(t, "name"), "remote_echo") == 0 ? "optional" : "forbidden";
    assert_string_equal(str_at(json_object_get(t, "execution"), "taskSupport"), want);
  }
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{\"cursor\":\"t2\"}}");
  json_t *t = json_array_get(json_object_get(result(last(f)), "tools"), 0);
  assert_string_equal(str_at(t, "name"), "must_task");
  assert_string_equal(str_at(json_object_get(t, "execution"), "taskSupport"), "required");
}

static void test_tool_call_with_task_replies_create_task_result_after_durable_create(void **state) {
  fx *f = *state;
  feed(f, INIT("2025-11-25"));
  size_t before = json_array_size(f->out);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\","
          "\"arguments\":{\"a\":1},\"task\":{\"ttl\":60000}}}");
  /* nothing is answered until the backend says the task is durable */
  assert_int_equal(json_array_size(f->out), before);
  assert_int_equal(f->fk.n, 1);
  assert_int_equal(f->fk.ops[0].kind, F_CREATE);
  assert_string_equal(f->fk.ops[0].tool, "remote_echo");
  assert_string_equal(f->fk.ops[0].owner, "local");
  assert_int_equal(f->fk.ops[0].ttl_ms, 60000);
  assert_int_equal(json_integer_value(json_object_get(f->fk.ops[0].args, "a")), 1);
  mcp_task_view v = view("abc", MCP_TASK_WORKING);
  fake_finish(&f->fk, 0, 0, &v, 1, NULL);
  json_t *m = last(f);
  assert_int_equal(json_integer_value(json_object_get(m, "id")), 7);
  json_t *task = json_object_get(result(m), "task");
  assert_string_equal(str_at(task, "taskId"), "abc");
  assert_string_equal(str_at(task, "status"), "working");
  assert_string_equal(str_at(task, "createdAt"), "2025-11-25T10:30:00.500Z");
  assert_string_equal(str_at(task, "lastUpdatedAt"), "2025-11-25T10:30:01.250Z");
  assert_int_equal(json_integer_value(json_object_get(task, "ttl")), 60000);
  assert_int_equal(json_integer_value(json_object_get(task, "pollInterval")), 1000);
  assert_int_equal(mcp_session_inflight(f->s), 0);
}

static void test_status_notification_follows_a_created_task(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"task\":{}}}");
  mcp_task_view v = view("t9", MCP_TASK_WORKING);
  fake_finish(&f->fk, 0, 0, &v, 1, NULL);
  /* the session watches its task (a waiting get, not counted as a request in flight) */
  assert_int_equal(f->fk.n, 2);
  assert_int_equal(f->fk.ops[1].kind, F_WAIT);
  assert_string_equal(f->fk.ops[1].task_id, "t9");
  assert_int_equal(mcp_session_inflight(f->s), 0);
  size_t before = json_array_size(f->out);
  v = view("t9", MCP_TASK_COMPLETED);
  fake_finish(&f->fk, 1, 0, &v, 1, NULL);
  assert_int_equal(json_array_size(f->out), before + 1);
  json_t *m = last(f);
  assert_string_equal(str_at(m, "method"), "notifications/tasks/status");
  assert_null(json_object_get(m, "id"));
  assert_string_equal(str_at(json_object_get(m, "params"), "taskId"), "t9");
  assert_string_equal(str_at(json_object_get(m, "params"), "status"), "completed");
  /* a failed watch sends nothing */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"task\":{}}}");
  v = view("t10", MCP_TASK_WORKING);
  fake_finish(&f->fk, 2, 0, &v, 1, NULL);
  before = json_array_size(f->out);
  fake_finish(&f->fk, 3, -ENOENT, NULL, 0, NULL);
  assert_int_equal(json_array_size(f->out), before);
}

static void test_task_create_failure_is_internal_error(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"task\":{}}}");
  fake_finish(&f->fk, 0, -EIO, NULL, 0, NULL);
  assert_int_equal(err_code(last(f)), -32603);
  f->fk.refuse = -ESHUTDOWN; /* refused synchronously */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"task\":{}}}");
  assert_int_equal(err_code(last(f)), -32603);
  assert_int_equal(mcp_session_inflight(f->s), 0);
}

static void test_forbidden_tool_with_task_is_method_not_found(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"local_echo\",\"task\":{}}}");
  assert_int_equal(err_code(last(f)), -32601);
  assert_int_equal(f->fk.n, 0);
}

static void test_required_tool_without_task_is_method_not_found(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"must_task\"}}");
  assert_int_equal(err_code(last(f)), -32601);
  assert_int_equal(f->fk.n, 0);
}

static void test_bad_task_params_are_invalid_params(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"task\":5}}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"task\":{\"ttl\":-1}}}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/get\",\"params\":{}}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tasks/get\",\"params\":{\"taskId\":\""
          "0123456789012345678901234567890123456789012345678901234567890123456789\"}}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tasks/list\",\"params\":{\"cursor\":7}}");
  assert_int_equal(err_code(last(f)), -32602);
  assert_int_equal(f->fk.n, 0);
}

static void test_task_ops_use_the_callers_authorization_context(void **state) {
  fx *f = *state;
  f->auth = (mcp_auth){.kind = AUTH_KIND_JWT, .peer_id = "12D3KooWPeer", .subject = "alice", .scopes = AUTH_SCOPES_ALL_INIT};
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"t1\"}}");
  assert_string_equal(f->fk.ops[0].owner, "peer:12D3KooWPeer/sub:alice");
  fake_finish(&f->fk, 0, -ENOENT, NULL, 0, NULL); /* another owner's task looks absent */
  assert_int_equal(err_code(last(f)), -32602);
}

static void test_tasks_get_maps_the_view(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"g\",\"method\":\"tasks/get\",\"params\":{\"taskId\":\"t1\","
          "\"_meta\":{\"io.modelcontextprotocol/related-task\":{\"taskId\":\"other\"}}}}");
  assert_int_equal(f->fk.ops[0].kind, F_GET);
  assert_string_equal(f->fk.ops[0].task_id, "t1"); /* params.taskId wins over _meta */
  mcp_task_view v = view("t1", MCP_TASK_FAILED);
  v.status_message = "boom";
  v.ttl_ms = -1;
  fake_finish(&f->fk, 0, 0, &v, 1, NULL);
  json_t *r = result(last(f));
  assert_string_equal(str_at(r, "status"), "failed");
  assert_string_equal(str_at(r, "statusMessage"), "boom");
  assert_true(json_is_null(json_object_get(r, "ttl")));
  assert_null(json_object_get(json_object_get(r, "_meta"), MCP_TASKS_RELATED_META));
}

static void test_tasks_result_is_the_call_tool_result_with_related_task(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tasks/result\",\"params\":{\"taskId\":\"t1\"}}");
  assert_int_equal(f->fk.ops[0].kind, F_WAIT);
  assert_int_equal(json_array_size(f->out), 0); /* blocks until terminal */
  assert_int_equal(mcp_session_inflight(f->s), 1);
  json_t *ctr = json_pack("{s:[{s:s, s:s}], s:b, s:{s:s}}", "content", "type", "text", "text", "hi", "isError", 0,
                          "_meta", "io.peermcp/request_id", "r");
  mcp_task_view v = view("t1", MCP_TASK_COMPLETED);
  v.result = ctr;
  fake_finish(&f->fk, 0, 0, &v, 1, NULL);
  json_t *r = result(last(f));
  assert_false(json_is_true(json_object_get(r, "isError")));
  assert_string_equal(str_at(json_array_get(json_object_get(r, "content"), 0), "text"), "hi");
  json_t *meta = json_object_get(r, "_meta");
  assert_string_equal(str_at(json_object_get(meta, MCP_TASKS_RELATED_META), "taskId"), "t1");
  assert_string_equal(str_at(meta, "io.peermcp/request_id"), "r");
  assert_null(json_object_get(json_object_get(ctr, "_meta"), MCP_TASKS_RELATED_META)); /* the view is not mutated */
  json_decref(ctr);
}

static void test_tasks_result_of_a_failed_run_is_its_json_rpc_error(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tasks/result\",\"params\":{\"taskId\":\"t1\"}}");
  json_t *err = json_pack("{s:i, s:s}", "code", -32603, "message", "attempts exhausted");
  mcp_task_view v = view("t1", MCP_TASK_FAILED);
  v.error = err;
  fake_finish(&f->fk, 0, 0, &v, 1, NULL);
  assert_int_equal(err_code(last(f)), -32603);
  assert_string_equal(str_at(json_object_get(last(f), "error"), "message"), "attempts exhausted");
  json_decref(err);
}

static void test_tasks_result_wait_ends_when_the_client_cancels_it(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tasks/result\",\"params\":{\"taskId\":\"t1\"}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":9}}");
  assert_true(f->fk.ops[0].detached);
  assert_int_equal(mcp_session_inflight(f->s), 0);
  assert_int_equal(json_array_size(f->out), 0);
  /* at end of input a pending wait is answered with a retry error */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tasks/result\",\"params\":{\"taskId\":\"t1\"}}");
  mcp_session_end_subscriptions(f->s);
  assert_true(f->fk.ops[1].detached);
  assert_int_equal(err_code(last(f)), -32603);
  assert_int_equal(mcp_session_inflight(f->s), 0);
}

static void test_session_free_detaches_pending_task_ops(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"task\":{}}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"t\"}}");
  assert_int_equal(mcp_session_inflight(f->s), 2);
  /* teardown frees the session and checks every op was detached */
}

static void test_tasks_list_pages_with_opaque_cursor(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/list\"}");
  assert_int_equal(f->fk.ops[0].limit, 2);
  assert_string_equal(f->fk.ops[0].cursor, "");
  mcp_task_view v[2] = {view("a", MCP_TASK_WORKING), view("b", MCP_TASK_CANCELLED)};
  fake_finish(&f->fk, 0, 0, v, 2, "next-1");
  json_t *r = result(last(f));
  assert_int_equal(json_array_size(json_object_get(r, "tasks")), 2);
  assert_string_equal(str_at(json_array_get(json_object_get(r, "tasks"), 1), "status"), "cancelled");
  assert_string_equal(str_at(r, "nextCursor"), "next-1");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/list\",\"params\":{\"cursor\":\"next-1\"}}");
  assert_string_equal(f->fk.ops[1].cursor, "next-1");
  fake_finish(&f->fk, 1, -EINVAL, NULL, 0, NULL);
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/list\"}");
  fake_finish(&f->fk, 2, 0, NULL, 0, NULL);
  r = result(last(f));
  assert_int_equal(json_array_size(json_object_get(r, "tasks")), 0);
  assert_null(json_object_get(r, "nextCursor"));
}

static void test_tasks_cancel_of_terminal_task_is_invalid_params(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"taskId\":\"t1\"}}");
  mcp_task_view v = view("t1", MCP_TASK_COMPLETED);
  fake_finish(&f->fk, 0, -EALREADY, &v, 1, NULL);
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/cancel\",\"params\":{\"taskId\":\"t2\"}}");
  v = view("t2", MCP_TASK_CANCELLED);
  fake_finish(&f->fk, 1, 0, &v, 1, NULL);
  assert_string_equal(str_at(result(last(f)), "status"), "cancelled");
}

/* ---------- modern era (2026-07-28 + SEP-2663) ---------- */

static void test_modern_discover_declares_the_tasks_extension(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{" MODERN_NOEXT "}}");
  json_t *ext = json_object_get(json_object_get(result(last(f)), "capabilities"), "extensions");
  assert_true(json_is_object(json_object_get(ext, MCP_TASKS_EXTENSION)));
  assert_null(json_object_get(json_object_get(result(last(f)), "capabilities"), "tasks"));
}

static void test_modern_call_with_extension_returns_result_type_task(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"arguments\":{},"
          MODERN_EXT "}}");
  assert_int_equal(f->fk.ops[0].kind, F_CREATE);
  assert_true(f->fk.ops[0].ttl_ms < 0); /* none requested: the backend's default */
  mcp_task_view v = view("t1", MCP_TASK_WORKING);
  v.ttl_ms = 60001;
  fake_finish(&f->fk, 0, 0, &v, 1, NULL);
  json_t *r = result(last(f));
  assert_string_equal(str_at(r, "resultType"), "task");
  assert_string_equal(str_at(r, "taskId"), "t1");
  assert_int_equal(json_integer_value(json_object_get(r, "ttlSeconds")), 61);
  assert_int_equal(json_integer_value(json_object_get(r, "pollIntervalMilliseconds")), 1000);
  assert_null(json_object_get(r, "task"));
  assert_null(json_object_get(r, "result"));
}

static void test_modern_call_without_extension_runs_normally(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"remote_echo\",\"arguments\":{\"x\":2},"
          MODERN_NOEXT "}}");
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, json_array_size(f->out) != 0);
  assert_int_equal(f->fk.n, 0);
  assert_string_equal(str_at(result(last(f)), "resultType"), "complete");
  assert_false(json_is_true(json_object_get(result(last(f)), "isError")));
  /* a tool that requires a task cannot run for such a client */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"must_task\"," MODERN_NOEXT "}}");
  assert_int_equal(err_code(last(f)), -32021);
  /* a forbidden tool runs normally even when the client declares the extension */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"local_echo\"," MODERN_EXT "}}");
  assert_int_equal(f->fk.n, 0);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, json_array_size(f->out) >= 3);
  assert_string_equal(str_at(result(last(f)), "resultType"), "complete");
}

static void test_modern_get_inlines_outcome_and_tool_error_is_completed(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"t1\"," MODERN_NOEXT "}}");
  json_t *ctr = json_pack("{s:[], s:b}", "content", "isError", 1);
  mcp_task_view v = view("t1", MCP_TASK_FAILED); /* the queue's failed, from a tool error */
  v.result = ctr;
  fake_finish(&f->fk, 0, 0, &v, 1, NULL);
  json_t *r = result(last(f));
  assert_string_equal(str_at(r, "resultType"), "complete");
  assert_string_equal(str_at(r, "status"), "completed");
  assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "isError")));
  assert_int_equal(json_integer_value(json_object_get(r, "ttlSeconds")), 60);
  json_decref(ctr);
  /* a run that failed without a tool result stays failed, with the JSON-RPC error inline */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"t2\"," MODERN_NOEXT "}}");
  v = view("t2", MCP_TASK_FAILED);
  v.status_message = "lease expired";
  fake_finish(&f->fk, 1, 0, &v, 1, NULL);
  r = result(last(f));
  assert_string_equal(str_at(r, "status"), "failed");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")), -32603);
}

static void test_modern_cancel_and_update_are_empty_acknowledgements(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"taskId\":\"nope\"," MODERN_NOEXT "}}");
  fake_finish(&f->fk, 0, -ENOENT, NULL, 0, NULL);
  json_t *r = result(last(f));
  assert_non_null(r);
  assert_string_equal(str_at(r, "resultType"), "complete");
  assert_null(json_object_get(r, "taskId"));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tasks/update\",\"params\":{\"taskId\":\"t\",\"inputResponses\":{}," MODERN_NOEXT "}}");
  assert_string_equal(str_at(result(last(f)), "resultType"), "complete");
  /* tasks/result and tasks/list do not exist in the extension */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/result\",\"params\":{\"taskId\":\"t\"," MODERN_NOEXT "}}");
  assert_int_equal(err_code(last(f)), -32601);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tasks/list\",\"params\":{" MODERN_NOEXT "}}");
  assert_int_equal(err_code(last(f)), -32601);
  /* and tasks/update is not a legacy method */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tasks/update\",\"params\":{\"taskId\":\"t\"}}");
  assert_int_equal(err_code(last(f)), -32601);
}

/* ---------- helpers ---------- */

static void test_owner_key_binds_the_authorization_context(void **state) {
  char b[64];
  char big[MCP_TASKS_MAX_OWNER];
  mcp_auth a = AUTH_CTX_LOCAL_INIT;
  assert_true(mcp_tasks_owner_key(&a, b, sizeof b));
  assert_string_equal(b, "local");
  a = (mcp_auth){.kind = AUTH_KIND_PEER, .peer_id = "P"};
  assert_true(mcp_tasks_owner_key(&a, b, sizeof b));
  assert_string_equal(b, "peer:P");
  a = (mcp_auth){.kind = AUTH_KIND_TOKEN, .peer_id = "P", .subject = "token"};
  assert_true(mcp_tasks_owner_key(&a, b, sizeof b));
  assert_string_equal(b, "peer:P/sub:token");
  a = (mcp_auth){.kind = AUTH_KIND_PEER, .subject = "s"};
  assert_true(mcp_tasks_owner_key(&a, b, sizeof b));
  assert_string_equal(b, "sub:s");
  /* a JWT subject is unique within its issuer only */
  a = (mcp_auth){.kind = AUTH_KIND_JWT, .subject = "s", .issuer = "https://i"};
  assert_true(mcp_tasks_owner_key(&a, b, sizeof b));
  assert_string_equal(b, "iss:https://i/sub:s");
  /* the longest context still fits the ceiling */
  memset(&a, 0, sizeof a);
  a.kind = AUTH_KIND_JWT;
  memset(a.peer_id, 'p', AUTH_MAX_PEER_ID);
  memset(a.subject, 's', AUTH_MAX_SUBJECT);
  memset(a.issuer, 'i', AUTH_MAX_ISSUER);
  assert_true(mcp_tasks_owner_key(&a, big, sizeof big));
  a = (mcp_auth){0};
  assert_true(mcp_tasks_owner_key(&a, b, sizeof b));
  assert_string_equal(b, "anonymous");
  char small[8];
  a = (mcp_auth){.kind = AUTH_KIND_PEER, .peer_id = "12D3KooWlong"};
  assert_false(mcp_tasks_owner_key(&a, small, sizeof small));
}

static void test_iso8601_is_utc_with_milliseconds(void **state) {
  char b[32];
  mcp_tasks_iso8601(0, b);
  assert_string_equal(b, "1970-01-01T00:00:00.000Z");
  mcp_tasks_iso8601(1764066600.123, b);
  assert_string_equal(b, "2025-11-25T10:30:00.123Z");
  mcp_tasks_iso8601(-5, b); /* out of range → epoch, never garbage */
  assert_string_equal(b, "1970-01-01T00:00:00.000Z");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tasks_capability_declared_for_2025_11_25_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks_capability_absent_without_backend, setup_no_tasks, teardown),
      cmocka_unit_test_setup_teardown(test_tools_list_declares_execution_task_support, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tool_call_with_task_replies_create_task_result_after_durable_create, setup, teardown),
      cmocka_unit_test_setup_teardown(test_status_notification_follows_a_created_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_create_failure_is_internal_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forbidden_tool_with_task_is_method_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_required_tool_without_task_is_method_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_task_params_are_invalid_params, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_ops_use_the_callers_authorization_context, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks_get_maps_the_view, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks_result_is_the_call_tool_result_with_related_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks_result_of_a_failed_run_is_its_json_rpc_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks_result_wait_ends_when_the_client_cancels_it, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_free_detaches_pending_task_ops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks_list_pages_with_opaque_cursor, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks_cancel_of_terminal_task_is_invalid_params, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modern_discover_declares_the_tasks_extension, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modern_call_with_extension_returns_result_type_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modern_call_without_extension_runs_normally, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modern_get_inlines_outcome_and_tool_error_is_completed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modern_cancel_and_update_are_empty_acknowledgements, setup, teardown),
      cmocka_unit_test(test_owner_key_binds_the_authorization_context),
      cmocka_unit_test(test_iso8601_is_utc_with_milliseconds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

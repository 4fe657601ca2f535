/* test_runner.c — the task runner (taskq/runner.h). On the local queue (local_source.h): a
 * tool.call task runs through the dispatcher and completes once with {"tool","result"}; cancel of
 * a running task reaches the handler through the heartbeat; stopping releases a running task;
 * the result shapes of every outcome (p2p_tasks_spec.md §10.1, fixes of §12.8–12.10). Over a
 * scripted source: a task of a type the runner cannot run is released, a lost lease abandons
 * the run, a heartbeat answer for an earlier run is ignored, a refused claim backs off, a kick
 * claims at once. */
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
#include "taskq/local_source.h"
#include "auth/fernet.h"
#include "taskq/runner.h"
#include "util/clock.h"
#include "support/stores.h"
#include "support/tmpdir.h"

static struct {
  char dir[TS_TMPDIR_MAX];
  uv_loop_t loop;
  tq_queue *q;
  taskq_source *src;
  mcp_registry *reg;
  mcp_dispatcher *disp;
  taskq_runner *w;
} W;
/* The scripted source (below): each operation waits for the test to answer it. */
enum { F_CLAIM = 1, F_HEARTBEAT, F_FINISH };

typedef struct fop {
  int kind;
  bool answered;
  void *ud;
  taskq_claim_cb claim;
  taskq_heartbeat_cb heartbeat;
  taskq_finish_cb finish;
  char task_id[65], worker_id[TASKQ_MAX_WORKER_ID + 1], reason[64];
  taskq_finish_kind fkind;
  tq_status status;
} fop;

static struct {
  fop ops[256];
  size_t n;
  taskq_source src;
} F;


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

static mcp_tool_status oops_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call;
  (void)args;
  (void)ud;
  *result = json_string("oops");
  return MCP_TOOL_ERROR;
}

static void add_in(const char *category, const char *name, unsigned flags, mcp_tool_fn fn) {
  mcp_tool_def d = {0};
  d.name = name;
  d.category = category;
  d.description = "t";
  d.flags = flags;
  d.fn = fn;
  assert_int_equal(mcp_registry_add(W.reg, &d), 0);
}

static void add(const char *name, unsigned flags, mcp_tool_fn fn) { add_in("test", name, flags, fn); }

static int setup(void **state) {
  (void)state;
  memset(&W, 0, sizeof W);
  memset(&F, 0, sizeof F);
  ts_tmpdir_make(W.dir, "worker");
  assert_int_equal(uv_loop_init(&W.loop), 0);
  ts_queue_open(W.dir, "q.sqlite3", &W.q);
  W.reg = mcp_registry_new();
  add("echo", MCP_TOOL_REMOTE, echo_fn);
  add("sleepy", MCP_TOOL_REMOTE, sleepy_fn);
  add("local_only", 0, local_fn);
  add("oops", MCP_TOOL_REMOTE, oops_fn);
  add_in("commands", "word_count", MCP_TOOL_REMOTE, echo_fn);
  assert_int_equal(mcp_dispatcher_new(&W.loop, W.reg, NULL, &W.disp), 0);
  taskq_local_source_opts lo = {.queue = W.q, .pool = mcp_dispatcher_pool(W.disp)};
  assert_int_equal(taskq_local_source_new(&lo, &W.src), 0);
  return 0;
}

static void stopped(void *ud) { *(int *)ud = 1; }
static void fake_answer_all(void);

static int teardown(void **state) {
  (void)state;
  if (W.w) {
    int done = 0;
    taskq_runner_stop(W.w, 100, stopped, &done);
    int64_t end = clock_mono_ms() + 10000;
    while (!done && clock_mono_ms() < end) {
      fake_answer_all(); /* a scripted test that failed half-way */
      uv_run(&W.loop, UV_RUN_NOWAIT);
      usleep(1000);
    }
    assert_true(done);
    taskq_runner_free(W.w);
  }
  taskq_source_free(W.src);
  mcp_dispatcher_shutdown(W.disp);
  mcp_dispatcher_free(W.disp);
  uv_run(&W.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&W.loop), 0);
  mcp_registry_free(W.reg);
  tq_close(W.q);
  assert_int_equal(ts_tmpdir_remove(W.dir), 0);
  return 0;
}

/* payload stolen */
static void submit_typed(const char *type, json_t *payload, char id[33]) {
  tq_submit_req r = {0};
  r.task_type = type;
  r.payload = payload;
  assert_int_equal(tq_submit(W.q, &r, id, NULL), 0);
  json_decref(r.payload);
}

static void submit(const char *tool, char id[33]) {
  submit_typed("tool.call", json_pack("{s:s, s:{s:i}}", "tool", tool, "args", "x", 7), id);
}

static void start_runner(double lease, uint32_t tool_timeout_ms, double retry_delay_s) {
  taskq_runner_opts o = {0};
  o.loop = &W.loop;
  o.dispatcher = W.disp;
  o.worker_id = "w";
  o.sources = &W.src;
  o.n_sources = 1;
  o.lease_seconds = lease;
  o.idle_poll_ms = 50;
  o.tool_timeout_ms = tool_timeout_ms;
  o.retry_delay_s = retry_delay_s;
  assert_int_equal(taskq_runner_start(&o, &W.w), 0);
}

static void start_workers(double lease) { start_runner(lease, 0, 0); }

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
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
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

/* A tool.call task naming a tool this node does not have at all: released, not failed, so a
 * worker that has the tool runs it (a claim filter cannot see the payload's tool). */
static void test_runner_releases_a_tool_call_for_a_tool_it_lacks(void **state) {
  (void)state;
  char id[33];
  submit("word_count_elsewhere", id);
  start_workers(30);
  int64_t end = clock_mono_ms() + 15000;
  taskq_runner_stats st = {0};
  while (clock_mono_ms() < end) {
    uv_run(&W.loop, UV_RUN_NOWAIT);
    taskq_runner_stats_get(W.w, &st);
    if (st.released) break;
    usleep(2000);
  }
  assert_true(st.released >= 1);
  assert_int_equal(st.failed, 0);
  tq_task *t = NULL;
  int64_t until = clock_mono_ms() + 15000;
  for (;;) { /* the release is on the pool: wait until the queue has it */
    assert_int_equal(tq_get(W.q, id, &t), 0);
    if (t->status == TQ_QUEUED || clock_mono_ms() > until) break;
    tq_task_free(t);
    uv_run(&W.loop, UV_RUN_NOWAIT);
    usleep(2000);
  }
  assert_int_equal(t->status, TQ_QUEUED);
  assert_int_equal(t->attempt, 0); /* refunded */
  assert_non_null(strstr(t->result_json, "tool_not_found"));
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
  taskq_runner_stop(W.w, 50, stopped, &done);
  int64_t end = clock_mono_ms() + 10000;
  while (!done && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_true(done);
  taskq_runner_free(W.w);
  W.w = NULL;
  assert_int_equal(tq_get(W.q, id, &t), 0);
  assert_int_equal(t->status, TQ_QUEUED);
  assert_int_equal(t->attempt, 0); /* release refunds the attempt */
  tq_task_free(t);
}

static json_t *result_of(const tq_task *t) { return json_loads(t->result_json ? t->result_json : "null", JSON_DECODE_ANY, NULL); }

static void test_runner_tool_error_fails_with_the_tool_shape(void **state) {
  (void)state;
  char id[33];
  submit("oops", id);
  start_workers(30);
  tq_task *t = run_until_status(id, TQ_FAILED);
  json_t *res = result_of(t);
  assert_string_equal(json_string_value(json_object_get(res, "tool")), "oops");
  assert_string_equal(json_string_value(json_object_get(res, "error")), "oops");
  assert_string_equal(json_string_value(json_object_get(res, "error_type")), "tool_error");
  assert_string_equal(t->error, "oops");
  json_decref(res);
  tq_task_free(t);
}

static void test_runner_missing_tool_name_fails(void **state) {
  (void)state;
  char id[33];
  submit_typed("tool.call", json_pack("{s:{}}", "args"), id);
  start_workers(30);
  tq_task *t = run_until_status(id, TQ_FAILED);
  assert_string_equal(t->error, "missing_tool_name");
  tq_task_free(t);
}

static void test_runner_runs_a_command_tool_named_by_the_task_type(void **state) {
  (void)state;
  char id[33];
  submit_typed("word_count", json_pack("{s:s}", "text", "a b"), id);
  start_workers(30);
  tq_task *t = run_until_status(id, TQ_COMPLETED);
  json_t *res = result_of(t);
  assert_string_equal(json_string_value(json_object_get(res, "tool")), "word_count");
  json_t *echo = json_object_get(json_object_get(res, "result"), "echo");
  assert_string_equal(json_string_value(json_object_get(echo, "text")), "a b");
  json_decref(res);
  tq_task_free(t);
  size_t n = 0;
  const char *const *types = taskq_runner_task_types(W.w, &n);
  assert_int_equal(n, 3); /* tool.call, tool, word_count */
  assert_string_equal(types[2], "word_count");
}

/* p2p_tasks_spec.md §4.5: with payload encryption on, a prompt_enc wrapper reaches the tool
 * decrypted as "prompt"; one under another key fails the task. */
static void test_runner_decrypts_prompt_enc(void **state) {
  (void)state;
  auth_fernet_key k, other;
  auth_fernet_key_derive("s3cr3t", &k);
  auth_fernet_key_derive("not the key", &other);
  char good[33], bad[33];
  submit_typed("word_count", json_pack("{s:o, s:i}", "prompt_enc", auth_fernet_wrap(&k, "summarise this"), "n", 1), good);
  submit_typed("word_count", json_pack("{s:o}", "prompt_enc", auth_fernet_wrap(&other, "x")), bad);
  taskq_runner_opts o = {.loop = &W.loop, .dispatcher = W.disp, .worker_id = "enc", .sources = &W.src,
                         .n_sources = 1, .lease_seconds = 30, .idle_poll_ms = 50, .fernet = &k};
  assert_int_equal(taskq_runner_start(&o, &W.w), 0);
  auth_fernet_key_wipe(&k); /* the runner keeps its own copy */
  tq_task *t = run_until_status(good, TQ_COMPLETED);
  json_t *res = result_of(t);
  json_t *echo = json_object_get(json_object_get(res, "result"), "echo");
  assert_string_equal(json_string_value(json_object_get(echo, "prompt")), "summarise this");
  assert_null(json_object_get(echo, "prompt_enc"));
  assert_int_equal(json_integer_value(json_object_get(echo, "n")), 1);
  json_decref(res);
  tq_task_free(t);
  t = run_until_status(bad, TQ_FAILED);
  assert_string_equal(t->error, "prompt_decrypt_failed");
  tq_task_free(t);
}

static void test_runner_timeout_is_retried_later(void **state) {
  (void)state;
  char id[33];
  submit("sleepy", id);
  start_runner(30, 100, 60);
  tq_task *t = run_until_status(id, TQ_RUNNING);
  tq_task_free(t);
  t = run_until_status(id, TQ_QUEUED);
  assert_int_equal(t->attempt, 1); /* a failed attempt, not a release */
  assert_true(t->next_attempt_at > clock_wall_s() + 30);
  assert_non_null(t->error);
  tq_task_free(t);
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.failed, 1);
}

static void test_runner_once_runs_one_task(void **state) {
  (void)state;
  char a[33], b[33];
  submit("echo", a);
  submit("echo", b);
  taskq_runner_opts o = {.loop = &W.loop, .dispatcher = W.disp, .worker_id = "once", .sources = &W.src,
                         .n_sources = 1, .slots = 1, .idle_poll_ms = 50, .once = true};
  assert_int_equal(taskq_runner_start(&o, &W.w), 0);
  int64_t end = clock_mono_ms() + 15000;
  while (!taskq_runner_finished(W.w) && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_true(taskq_runner_finished(W.w));
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.claimed, 1);
  assert_int_equal(st.completed, 1);
  tq_task *t = NULL;
  assert_int_equal(tq_get(W.q, b, &t), 0);
  assert_int_equal(t->status, TQ_QUEUED); /* the second one was never claimed */
  tq_task_free(t);
}

static void test_runner_once_with_nothing_to_do_finishes(void **state) {
  (void)state;
  taskq_runner_opts o = {.loop = &W.loop, .dispatcher = W.disp, .worker_id = "once", .sources = &W.src,
                         .n_sources = 1, .once = true};
  assert_int_equal(taskq_runner_start(&o, &W.w), 0);
  int64_t end = clock_mono_ms() + 15000;
  while (!taskq_runner_finished(W.w) && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_true(taskq_runner_finished(W.w));
}

/* A claim that ignores the runner's task types, as a peer that does not filter would. */
static int claim_any(void *ud, tq_queue *q, const tq_claim_opts *o, tq_task **out) {
  (void)ud;
  tq_claim_opts any = *o;
  any.task_types = NULL;
  any.n_task_types = 0;
  return tq_claim_next(q, &any, out);
}

static void test_runner_claims_only_its_types_and_releases_others(void **state) {
  (void)state;
  char voice[33], echo[33];
  submit_typed("voice.tts", json_pack("{s:s}", "text", "hi"), voice);
  submit("echo", echo);
  start_workers(30);
  tq_task *t = run_until_status(echo, TQ_COMPLETED);
  tq_task_free(t);
  assert_int_equal(tq_get(W.q, voice, &t), 0);
  assert_int_equal(t->status, TQ_QUEUED); /* the queue never handed it out */
  assert_int_equal(t->attempt, 0);
  tq_task_free(t);
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.claimed, 1);
  /* a source that hands it out anyway: released, the attempt refunded, never failed */
  taskq_source *any = NULL;
  taskq_local_source_opts lo = {.queue = W.q, .pool = mcp_dispatcher_pool(W.disp), .claim_fn = claim_any};
  assert_int_equal(taskq_local_source_new(&lo, &any), 0);
  taskq_runner *r2 = NULL;
  taskq_runner_opts o = {.loop = &W.loop, .dispatcher = W.disp, .worker_id = "w2", .sources = &any, .n_sources = 1,
                         .idle_poll_ms = 50};
  assert_int_equal(taskq_runner_start(&o, &r2), 0);
  int64_t end = clock_mono_ms() + 15000;
  do {
    uv_run(&W.loop, UV_RUN_NOWAIT);
    taskq_runner_stats_get(r2, &st);
    usleep(5000);
  } while (st.released == 0 && clock_mono_ms() < end);
  assert_true(st.released >= 1);
  int done = 0;
  taskq_runner_stop(r2, 0, stopped, &done);
  while (!done) uv_run(&W.loop, UV_RUN_ONCE);
  taskq_runner_free(r2);
  taskq_source_free(any);
  assert_int_equal(tq_get(W.q, voice, &t), 0);
  assert_int_equal(t->status, TQ_QUEUED);
  assert_int_equal(t->attempt, 0);
  assert_non_null(strstr(t->result_json ? t->result_json : "", "unsupported_task_type"));
  tq_task_free(t);
}

/* ---------- a scripted source: the test answers each operation ---------- */


static fop *fake_push(int kind, void *ud) {
  assert_true(F.n < sizeof F.ops / sizeof F.ops[0]);
  fop *o = &F.ops[F.n++];
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->ud = ud;
  return o;
}

static int fake_claim(void *impl, const taskq_claim_req *req, taskq_claim_cb cb, void *ud) {
  (void)impl;
  fop *o = fake_push(F_CLAIM, ud);
  o->claim = cb;
  snprintf(o->worker_id, sizeof o->worker_id, "%s", req->worker_id);
  assert_true(req->n_task_types > 0); /* the runner always says what it can run */
  return 0;
}

static int fake_heartbeat(void *impl, const taskq_lease *l, double lease_s, taskq_heartbeat_cb cb, void *ud) {
  (void)impl;
  (void)lease_s;
  fop *o = fake_push(F_HEARTBEAT, ud);
  o->heartbeat = cb;
  snprintf(o->task_id, sizeof o->task_id, "%s", l->task_id);
  return 0;
}

static int fake_finish(void *impl, const taskq_lease *l, const taskq_finish *f, taskq_finish_cb cb, void *ud) {
  (void)impl;
  fop *o = fake_push(F_FINISH, ud);
  o->finish = cb;
  snprintf(o->task_id, sizeof o->task_id, "%s", l->task_id);
  o->fkind = f->kind;
  o->status = f->status;
  snprintf(o->reason, sizeof o->reason, "%s", f->reason ? f->reason : "");
  return 0;
}

static unsigned fake_cancel_waits_calls;
static void fake_cancel_waits(void *impl) {
  (void)impl;
  fake_cancel_waits_calls++;
  for (size_t i = 0; i < F.n; i++)
    if (F.ops[i].kind == F_CLAIM && !F.ops[i].answered) {
      F.ops[i].answered = true;
      F.ops[i].claim(F.ops[i].ud, 0, NULL);
    }
}

static const taskq_source_vt k_fake_vt = {
    .claim = fake_claim, .heartbeat = fake_heartbeat, .finish = fake_finish, .cancel_waits = fake_cancel_waits};

/* The latest unanswered op of a kind (NULL if none). */
static fop *pending(int kind) {
  for (size_t i = F.n; i-- > 0;)
    if (F.ops[i].kind == kind && !F.ops[i].answered) return &F.ops[i];
  return NULL;
}

/* Runs the loop until an unanswered op of `kind` exists. */
static fop *await_op(int kind) {
  int64_t end = clock_mono_ms() + 15000;
  fop *o;
  while (!(o = pending(kind)) && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  if (!o) fail_msg("no operation of kind %d came", kind);
  return o;
}

static void answer_claim(fop *o, int rc, const char *task_id, const char *type, const char *tool) {
  o->answered = true;
  taskq_task *t = NULL;
  if (task_id) {
    json_t *j = json_pack("{s:s, s:s, s:{s:s, s:{}}, s:s, s:i}", "task_id", task_id, "task_type", type, "payload", "tool",
                          tool, "args", "assigned_worker", o->worker_id, "lease_epoch", 7);
    t = taskq_task_from_json(j, o->worker_id);
    json_decref(j);
    assert_non_null(t);
  }
  uv_update_time(&W.loop); /* as if called from the loop */
  o->claim(o->ud, rc, t);
}

static double scripted_claim_wait_s;

static void start_scripted(double lease, uint32_t idle_poll_ms) {
  memset(&F, 0, sizeof F);
  F.src.vt = &k_fake_vt;
  snprintf(F.src.name, sizeof F.src.name, "scripted");
  taskq_source *srcs[] = {&F.src};
  taskq_runner_opts o = {.loop = &W.loop, .dispatcher = W.disp, .worker_id = "s", .sources = srcs, .n_sources = 1,
                         .lease_seconds = lease, .idle_poll_ms = idle_poll_ms,
                         .claim_wait_s = scripted_claim_wait_s};
  assert_int_equal(taskq_runner_start(&o, &W.w), 0);
}

/* Answers whatever the runner still asks with "nothing" / ok. */
static void fake_answer_all(void) {
  uv_update_time(&W.loop);
  for (size_t i = 0; i < F.n; i++) {
    fop *o = &F.ops[i];
    if (o->answered) continue;
    o->answered = true;
    if (o->kind == F_CLAIM) o->claim(o->ud, 0, NULL);
    else if (o->kind == F_HEARTBEAT) o->heartbeat(o->ud, 0, false);
    else o->finish(o->ud, 0);
  }
}

static void stop_scripted(void) {
  int done = 0;
  taskq_runner_stop(W.w, 0, stopped, &done);
  int64_t end = clock_mono_ms() + 15000;
  while (!done && clock_mono_ms() < end) {
    fake_answer_all();
    uv_run(&W.loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_true(done);
  taskq_runner_free(W.w);
  W.w = NULL;
}

static void test_runner_releases_a_type_it_cannot_run(void **state) {
  (void)state;
  start_scripted(30, 50);
  answer_claim(await_op(F_CLAIM), 0, "t1", "voice.tts", "x");
  fop *f = await_op(F_FINISH);
  assert_string_equal(f->task_id, "t1");
  assert_int_equal(f->fkind, TASKQ_FINISH_RELEASE);
  assert_string_equal(f->reason, "unsupported_task_type");
  f->answered = true;
  uv_update_time(&W.loop); /* as if called from the loop */
  f->finish(f->ud, 0);
  assert_null(pending(F_CLAIM)); /* it backs off: a source that ignores the types would hand it out again */
  /* an alias of a type it runs is not released: "tool" is "tool.call" */
  answer_claim(await_op(F_CLAIM), 0, "t2", "tool", "echo");
  f = await_op(F_FINISH);
  assert_string_equal(f->task_id, "t2");
  assert_int_equal(f->fkind, TASKQ_FINISH_COMPLETE);
  assert_int_equal(f->status, TQ_COMPLETED);
  f->answered = true;
  uv_update_time(&W.loop); /* as if called from the loop */
  f->finish(f->ud, 0);
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.released, 1);
  assert_int_equal(st.completed, 1);
  assert_int_equal(st.failed, 0);
  stop_scripted();
}

static void test_runner_lease_lost_abandons_the_run_silently(void **state) {
  (void)state;
  start_scripted(3, 50); /* heartbeat every second */
  answer_claim(await_op(F_CLAIM), 0, "t1", "tool.call", "sleepy");
  fop *h = await_op(F_HEARTBEAT);
  assert_string_equal(h->task_id, "t1");
  h->answered = true;
  uv_update_time(&W.loop); /* as if called from the loop */
  h->heartbeat(h->ud, -ESTALE, false);
  fop *c = await_op(F_CLAIM); /* the slot is free again… */
  for (size_t i = 0; i < F.n; i++) assert_false(F.ops[i].kind == F_FINISH); /* …and reported nothing */
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.lease_lost, 1);
  c->answered = true;
  uv_update_time(&W.loop); /* as if called from the loop */
  c->claim(c->ud, 0, NULL);
  stop_scripted();
}

static void test_runner_ignores_a_heartbeat_answer_for_an_earlier_run(void **state) {
  (void)state;
  start_scripted(3, 50);
  answer_claim(await_op(F_CLAIM), 0, "t1", "tool.call", "sleepy");
  fop *h = await_op(F_HEARTBEAT); /* left unanswered while the run ends */
  taskq_runner_cancel_task(W.w, "t1");
  fop *f = await_op(F_FINISH);
  assert_int_equal(f->status, TQ_CANCELLED);
  f->answered = true;
  uv_update_time(&W.loop); /* as if called from the loop */
  f->finish(f->ud, 0);
  answer_claim(await_op(F_CLAIM), 0, "t2", "tool.call", "sleepy");
  int64_t until = clock_mono_ms() + 200;
  while (clock_mono_ms() < until) uv_run(&W.loop, UV_RUN_NOWAIT);
  h->answered = true;
  uv_update_time(&W.loop); /* as if called from the loop */
  h->heartbeat(h->ud, -ESTALE, false); /* t1's lease is gone, but t2 runs on */
  until = clock_mono_ms() + 300;
  while (clock_mono_ms() < until) {
    uv_run(&W.loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_null(pending(F_FINISH));
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.lease_lost, 0);
  assert_int_equal(st.cancelled, 1);
  /* the stop releases t2 */
  int done = 0;
  taskq_runner_stop(W.w, 0, stopped, &done);
  f = await_op(F_FINISH);
  assert_string_equal(f->task_id, "t2");
  assert_int_equal(f->fkind, TASKQ_FINISH_RELEASE);
  assert_string_equal(f->reason, "worker_stopping");
  stop_scripted();
}

static void test_runner_refused_claim_is_counted_and_backs_off(void **state) {
  (void)state;
  start_scripted(30, 60000);
  fop *c = await_op(F_CLAIM);
  c->answered = true;
  uv_update_time(&W.loop); /* as if called from the loop */
  c->claim(c->ud, -EPERM, NULL);
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.claim_errors, 1);
  assert_int_equal(st.claims_answered, 0); /* `worker --once` fails on this: no source was asked */
  assert_int_equal(st.last_claim_error, -EPERM);
  size_t before = F.n;
  int64_t until = clock_mono_ms() + 5;
  while (clock_mono_ms() < until) uv_run(&W.loop, UV_RUN_NOWAIT);
  assert_int_equal(F.n, before); /* no claim before the back-off (20 ms at least) */
  /* a kick claims at once, without running the loop */
  taskq_runner_kick(W.w);
  assert_int_equal(F.n, before + 1);
  assert_int_equal(F.ops[before].kind, F_CLAIM);
  stop_scripted();
}

/* A worker never drops a result it holds: a finish the source could not take is sent again
 * (same lease) until it gets through; lease lost or a refusal are final. */
static void test_runner_sends_a_finish_again_until_the_source_takes_it(void **state) {
  (void)state;
  start_scripted(30, 50);
  answer_claim(await_op(F_CLAIM), 0, "t1", "tool.call", "echo");
  fop *f = await_op(F_FINISH);
  assert_int_equal(f->status, TQ_COMPLETED);
  f->answered = true;
  uv_update_time(&W.loop);
  f->finish(f->ud, -ECONNRESET); /* the stream broke before the answer */
  f = await_op(F_FINISH);          /* the runner still holds the result: sent again */
  assert_string_equal(f->task_id, "t1");
  assert_int_equal(f->fkind, TASKQ_FINISH_COMPLETE);
  assert_int_equal(f->status, TQ_COMPLETED);
  f->answered = true;
  uv_update_time(&W.loop);
  f->finish(f->ud, -ETIMEDOUT);
  f = await_op(F_FINISH);
  assert_string_equal(f->task_id, "t1");
  f->answered = true;
  uv_update_time(&W.loop);
  f->finish(f->ud, 0);
  fop *c = await_op(F_CLAIM); /* the slot's next claim (sent with the first finish) */
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.finish_retries, 2);
  assert_int_equal(st.completed, 1);
  /* lease lost is final: no retry */
  c->answered = true;
  uv_update_time(&W.loop);
  {
    json_t *j = json_pack("{s:s, s:s, s:{s:s, s:{}}, s:s, s:i}", "task_id", "t2", "task_type", "tool.call", "payload",
                          "tool", "echo", "args", "assigned_worker", c->worker_id, "lease_epoch", 8);
    taskq_task *t = taskq_task_from_json(j, c->worker_id);
    json_decref(j);
    c->claim(c->ud, 0, t);
  }
  f = await_op(F_FINISH);
  assert_string_equal(f->task_id, "t2");
  f->answered = true;
  uv_update_time(&W.loop);
  f->finish(f->ud, -ESTALE);
  await_op(F_CLAIM);
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.finish_retries, 2);
  stop_scripted();
}

/* The slot claims again while its finish is at the source (so the two can share one commit
 * there): the finish goes out first, the claim right after, before any answer. A second task
 * that ends while the first finish is still unanswered keeps the slot waiting for its own. A
 * finish that fails later is still sent again: the result is never dropped. */
static void test_runner_claims_again_while_its_finish_is_in_flight(void **state) {
  (void)state;
  start_scripted(30, 50);
  answer_claim(await_op(F_CLAIM), 0, "t1", "tool.call", "echo");
  fop *f1 = await_op(F_FINISH);
  size_t f1_at = (size_t)(f1 - F.ops);
  fop *c = pending(F_CLAIM);
  assert_non_null(c); /* before f1 is answered */
  assert_true((size_t)(c - F.ops) > f1_at); /* and after the finish went out */
  answer_claim(c, 0, "t2", "tool.call", "echo");
  fop *f2 = NULL;
  for (int64_t end = clock_mono_ms() + 15000; !f2 && clock_mono_ms() < end;) {
    uv_run(&W.loop, UV_RUN_ONCE);
    if ((f2 = pending(F_FINISH)) == &F.ops[f1_at]) f2 = NULL; /* t1's, still unanswered */
  }
  assert_non_null(f2);
  assert_string_equal(f2->task_id, "t2");
  assert_null(pending(F_CLAIM)); /* t1's finish is still unanswered: the slot waits for t2's */
  f2->answered = true;
  uv_update_time(&W.loop);
  f2->finish(f2->ud, 0);
  c = pending(F_CLAIM);
  assert_non_null(c); /* t2's finish is through: it claims again (t1's still travels) */
  f1 = &F.ops[f1_at];
  assert_false(f1->answered);
  f1->answered = true;
  uv_update_time(&W.loop);
  f1->finish(f1->ud, -ECONNRESET);
  fop *again = await_op(F_FINISH); /* after the back-off */
  assert_string_equal(again->task_id, "t1");
  assert_int_equal(again->status, TQ_COMPLETED);
  again->answered = true;
  uv_update_time(&W.loop);
  again->finish(again->ud, 0);
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.completed, 2);
  assert_int_equal(st.finish_retries, 1);
  stop_scripted();
}

/* Stopping waits for a finish still in flight from a slot that went on claiming: the runner
 * reports stopped only once the source took it (the result is not dropped on the way out). */
static void test_runner_stop_waits_for_a_finish_in_flight(void **state) {
  (void)state;
  start_scripted(30, 50);
  answer_claim(await_op(F_CLAIM), 0, "t1", "tool.call", "echo");
  fop *f1 = await_op(F_FINISH);
  fop *c = pending(F_CLAIM);
  assert_non_null(c); /* the slot claims while t1's finish travels */
  int done = 0;
  taskq_runner_stop(W.w, 0, stopped, &done);
  c->answered = true;
  uv_update_time(&W.loop);
  c->claim(c->ud, 0, NULL); /* nothing: the slot stops */
  int64_t until = clock_mono_ms() + 300;
  while (clock_mono_ms() < until) {
    uv_run(&W.loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_false(done); /* t1's finish is still unanswered */
  assert_false(f1->answered);
  f1->answered = true;
  uv_update_time(&W.loop);
  f1->finish(f1->ud, 0);
  int64_t end = clock_mono_ms() + 15000;
  while (!done && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_true(done);
  taskq_runner_stats st;
  taskq_runner_stats_get(W.w, &st);
  assert_int_equal(st.completed, 1);
  taskq_runner_free(W.w);
  W.w = NULL;
}

/* A finish still failing when the lease would have run out is given up (the task comes back
 * to the queue through the expired lease). */
static void test_runner_gives_up_a_finish_when_the_lease_is_over(void **state) {
  (void)state;
  start_scripted(1, 50); /* a one-second lease */
  answer_claim(await_op(F_CLAIM), 0, "t1", "tool.call", "echo");
  int64_t t0 = clock_mono_ms();
  unsigned tries = 0;
  /* retries at ~100, 300, 700, 1500 ms; none after the lease's end (1 s) + the last back-off */
  while (clock_mono_ms() - t0 < 3500) {
    fop *f = pending(F_FINISH);
    if (f) {
      assert_true(clock_mono_ms() - t0 < 2500);
      tries++;
      f->answered = true;
      uv_update_time(&W.loop);
      f->finish(f->ud, -ECONNRESET);
      continue;
    }
    uv_run(&W.loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_true(tries >= 2);
  assert_true(tries <= 8);
  assert_null(pending(F_FINISH)); /* given up */
  stop_scripted();
}

/* With claim_wait_s: an empty answer that took the wait means the source waited — the slot
 * claims again at once; a quick empty answer (a peer that does not wait) backs off; stopping
 * answers a waiting claim through cancel_waits. */
static void test_runner_claims_again_at_once_after_a_waited_empty_claim(void **state) {
  (void)state;
  scripted_claim_wait_s = 0.2; /* "waited" = at least 100 ms */
  start_scripted(30, 2000);
  scripted_claim_wait_s = 0;
  fop *c = await_op(F_CLAIM);
  usleep(150000); /* the source waited */
  c->answered = true;
  uv_update_time(&W.loop);
  c->claim(c->ud, 0, NULL);
  assert_non_null(pending(F_CLAIM)); /* again, inside the answer: no back-off timer */
  c = pending(F_CLAIM);
  c->answered = true;
  uv_update_time(&W.loop);
  c->claim(c->ud, 0, NULL); /* at once: it did not wait */
  assert_null(pending(F_CLAIM)); /* backing off */
  c = await_op(F_CLAIM);       /* after the back-off */
  /* stopping while a claim waits: the source is asked to answer it */
  fake_cancel_waits_calls = 0;
  int done = 0;
  taskq_runner_stop(W.w, 0, stopped, &done);
  int64_t end = clock_mono_ms() + 15000;
  while (!done && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_true(done);
  assert_true(fake_cancel_waits_calls >= 1);
  taskq_runner_free(W.w);
  W.w = NULL;
}

/* A kick while a claim is in flight: that claim may have missed the new work, so an empty
 * answer is followed by another claim at once instead of the back-off. */
static void test_runner_kick_during_a_claim_claims_again(void **state) {
  (void)state;
  start_scripted(30, 5000);
  fop *c = await_op(F_CLAIM);
  taskq_runner_kick(W.w);
  c->answered = true;
  uv_update_time(&W.loop);
  c->claim(c->ud, 0, NULL);
  c = pending(F_CLAIM);
  assert_non_null(c); /* at once */
  c->answered = true;
  uv_update_time(&W.loop);
  c->claim(c->ud, 0, NULL);
  assert_null(pending(F_CLAIM)); /* no kick this time: back-off */
  stop_scripted();
}

static void test_task_from_json_refuses_what_is_not_a_task(void **state) {
  (void)state;
  const char *bad[] = {"null", "[]", "{}", "{\"task_id\":\"x\"}", "{\"task_type\":\"t\"}", "{\"task_id\":5,\"task_type\":\"t\"}",
                       "{\"task_id\":\"\",\"task_type\":\"t\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
    assert_null(taskq_task_from_json(j, "w"));
    json_decref(j);
  }
  char longid[100];
  memset(longid, 'a', sizeof longid - 1);
  longid[sizeof longid - 1] = 0;
  json_t *j = json_pack("{s:s, s:s}", "task_id", longid, "task_type", "t");
  assert_null(taskq_task_from_json(j, "w"));
  json_decref(j);
  /* a Python claim reply: no lease_epoch, no assigned_worker, a payload that is not an object */
  j = json_pack("{s:s, s:s, s:i}", "task_id", "abc", "task_type", "tool.call", "payload", 3);
  taskq_task *t = taskq_task_from_json(j, "me/0");
  json_decref(j);
  assert_non_null(t);
  assert_string_equal(t->worker_id, "me/0");
  assert_int_equal(t->lease_epoch, 0);
  assert_int_equal(json_integer_value(json_object_get(t->payload, "payload")), 3);
  taskq_task_free(t);
}

static void test_runner_start_refuses_bad_options(void **state) {
  (void)state;
  taskq_runner *r = NULL;
  taskq_runner_opts o = {.loop = &W.loop, .dispatcher = W.disp, .worker_id = "w", .sources = &W.src, .n_sources = 0};
  assert_int_equal(taskq_runner_start(&o, &r), -EINVAL);
  o.n_sources = 1;
  o.worker_id = NULL;
  assert_int_equal(taskq_runner_start(&o, &r), -EINVAL);
  taskq_source *none = NULL;
  o.worker_id = "w";
  o.sources = &none;
  assert_int_equal(taskq_runner_start(&o, &r), -EINVAL);
  assert_null(r);
  taskq_local_source_opts lo = {0};
  taskq_source *s = NULL;
  assert_int_equal(taskq_local_source_new(&lo, &s), -EINVAL);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_worker_runs_tool_call_and_completes_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_worker_refuses_local_only_tools, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_releases_a_tool_call_for_a_tool_it_lacks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_of_running_task_reaches_the_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_releases_running_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_tool_error_fails_with_the_tool_shape, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_missing_tool_name_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_runs_a_command_tool_named_by_the_task_type, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_decrypts_prompt_enc, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_timeout_is_retried_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_once_runs_one_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_once_with_nothing_to_do_finishes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_claims_only_its_types_and_releases_others, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_releases_a_type_it_cannot_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_lease_lost_abandons_the_run_silently, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_ignores_a_heartbeat_answer_for_an_earlier_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_refused_claim_is_counted_and_backs_off, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_sends_a_finish_again_until_the_source_takes_it, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_gives_up_a_finish_when_the_lease_is_over, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_claims_again_while_its_finish_is_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_stop_waits_for_a_finish_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_claims_again_at_once_after_a_waited_empty_claim, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_kick_during_a_claim_claims_again, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_from_json_refuses_what_is_not_a_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runner_start_refuses_bad_options, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_rpc_tool.c — the task_queue.rpc tool through a real dispatcher, queue and cache: waits
 * that hold no thread (issue 9 item 4), the per-caller cap on waits, their timeout and
 * cancellation, ops on the pools, NULs in op messages (item 11). */
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
#include "taskq/rpc_tool.h"
#include "taskq/table.h"
#include "util/clock.h"
#include "util/log.h"
#include "support/stores.h"
#include "support/tmpdir.h"

#define OUR_ID "12D3KooWServerServerServerServerServerServerServerSe"
#define PEER_A "12D3KooWPeerAPeerAPeerAPeerAPeerAPeerAPeerAPeerAPeerA"
#define PEER_B "12D3KooWPeerBPeerBPeerBPeerBPeerBPeerBPeerBPeerBPeerB"
#define WAIT_MS 20000 /* generous: ASan on a loaded 2-core machine */

typedef struct fx {
  char dir[256];
  uv_loop_t loop;
  tq_queue *q;
  ttlcache *c;
  auth_policy *pol;
  taskq_ctx *ctx;
  mcp_registry *reg;
  mcp_dispatcher *d;
  auth_ctx a, b, local;
} fx;

typedef struct res {
  bool done;
  mcp_dispatch_status st;
  json_t *reply; /* the op reply (the call's result) */
  int64_t at_ms;
} res;

static void on_done(void *ud, const mcp_call_outcome *o) {
  res *r = ud;
  r->done = true;
  r->st = o->status;
  r->reply = json_incref(json_object_get(o->envelope, "result"));
  r->at_ms = clock_mono_ms();
}

static int setup_with(void **state, unsigned max_waits) {
  log_set_level(LOG_ERROR);
  fx *f = calloc(1, sizeof *f);
  ts_tmpdir_make(f->dir, "rpc");
  assert_int_equal(uv_loop_init(&f->loop), 0);
  ts_queue_open(f->dir, "queue.sqlite3", &f->q);
  char cdir[512];
  snprintf(cdir, sizeof cdir, "%s/cache", f->dir);
  ttlcache_options co;
  ttlcache_options_default(&co);
  co.dir = cdir;
  co.durable = false;
  assert_int_equal(ttlcache_open(&co, &f->c), 0);
  f->pol = auth_policy_new();
  assert_int_equal(auth_policy_add_peer(f->pol, PEER_A, NULL), 0);
  assert_int_equal(auth_policy_add_peer(f->pol, PEER_B, NULL), 0);
  taskq_config tc;
  taskq_config_default(&tc);
  tc.queue = f->q;
  tc.cache = f->c;
  tc.policy = f->pol;
  tc.peer_id = OUR_ID;
  tc.max_waits_per_peer = max_waits;
  f->ctx = taskq_new(&tc);
  assert_non_null(f->ctx);
  f->reg = mcp_registry_new();
  assert_int_equal(taskq_rpc_tool_register(f->reg, f->ctx), 0);
  /* tiny pools: a wait that held a thread would starve everything at once */
  mcp_dispatcher_opts o = {.threads = 2, .max_threads = 2, .long_threads = 2, .long_queue = 4};
  assert_int_equal(mcp_dispatcher_new(&f->loop, f->reg, &o, &f->d), 0);
  auth_policy_peer_ctx(f->pol, PEER_A, &f->a);
  auth_policy_peer_ctx(f->pol, PEER_B, &f->b);
  auth_ctx_local(&f->local);
  *state = f;
  return 0;
}
static int setup(void **state) { return setup_with(state, 64); }
static int setup_cap3(void **state) { return setup_with(state, 3); }
static int setup_cap128(void **state) { return setup_with(state, 128); }

static int teardown(void **state) {
  fx *f = *state;
  mcp_dispatcher_shutdown(f->d);
  mcp_dispatcher_free(f->d); /* detaches what is left: the waits' cancel callbacks run */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  mcp_registry_free(f->reg);
  taskq_free(f->ctx);
  auth_policy_free(f->pol);
  ttlcache_close(f->c);
  tq_close(f->q);
  assert_int_equal(ts_tmpdir_remove(f->dir), 0);
  free(f);
  return 0;
}

static mcp_call *start(fx *f, const auth_ctx *who, const char *msg, res *r) {
  json_error_t e;
  json_t *args = json_loads(msg, JSON_ALLOW_NUL, &e);
  assert_non_null(args);
  mcp_call_request req = {.tool = TASKQ_RPC_TOOL, .args = args, .auth = who, .remote = true};
  mcp_call *call = NULL;
  memset(r, 0, sizeof *r);
  assert_int_equal(mcp_dispatch_start(f->d, &req, on_done, r, &call), 0);
  json_decref(args);
  return call;
}

static bool run_until(fx *f, const bool *flag, int ms) {
  int64_t end = clock_mono_ms() + ms;
  while (!*flag && clock_mono_ms() < end) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (!*flag) usleep(1000);
  }
  return *flag;
}

static json_t *call_sync(fx *f, const auth_ctx *who, const char *msg) {
  res r;
  start(f, who, msg, &r);
  assert_true(run_until(f, &r.done, WAIT_MS));
  return r.reply;
}

static int threads_now(void) {
  FILE *fp = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  while (fp && fgets(line, sizeof line, fp))
    if (strncmp(line, "Threads:", 8) == 0) n = atoi(line + 8);
  if (fp) fclose(fp);
  return n;
}

static void submit(fx *f, char id[33]) {
  tq_submit_req sr = {.task_type = "tool.call", .payload = json_pack("{s:s}", "tool", "nobody")};
  assert_int_equal(tq_submit(f->q, &sr, id, NULL), 0);
  json_decref(sr.payload);
}

static const char *err_of(const json_t *r) { return json_string_value(json_object_get(r, "error")); }
static const char *status_of(const json_t *r) {
  return json_string_value(json_object_get(json_object_get(r, "task"), "status"));
}

/* 200 waits on a dispatcher whose pools have 2 + 2 threads: they hold none of them, a status
 * and a get stay fast meanwhile, and the task's completion answers every wait. */
static void test_waits_hold_no_thread(void **state) {
  fx *f = *state;
  char id[33];
  submit(f, id);
  char msg[256];
  snprintf(msg, sizeof msg, "{\"op\":\"wait\",\"task_id\":\"%s\",\"timeout_s\":120}", id);
  enum { N = 200 };
  static res waits[N];
  int t0 = threads_now();
  for (int i = 0; i < N; i++) start(f, i % 2 ? &f->a : &f->b, msg, &waits[i]);
  for (int i = 0; i < 50; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(taskq_rpc_tool_waits(f->reg), N);
  int64_t s0 = clock_mono_ms();
  json_t *r = call_sync(f, &f->a, "{\"op\":\"status\"}");
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  snprintf(msg, sizeof msg, "{\"op\":\"get\",\"task_id\":\"%s\"}", id);
  r = call_sync(f, &f->b, msg);
  assert_string_equal(status_of(r), "queued");
  json_decref(r);
  assert_true(clock_mono_ms() - s0 < 5000);
  assert_true(threads_now() <= t0 + 4); /* the pools' own threads at most */
  for (int i = 0; i < N; i++) assert_false(waits[i].done);
  int64_t c0 = clock_mono_ms();
  json_t *result = json_pack("{s:i}", "x", 1);
  assert_int_equal(tq_complete(f->q, id, NULL, TQ_COMPLETED, result, NULL), 0);
  json_decref(result);
  for (int i = 0; i < N; i++) {
    assert_true(run_until(f, &waits[i].done, WAIT_MS));
    assert_int_equal(waits[i].st, MCP_DISPATCH_OK);
    assert_string_equal(status_of(waits[i].reply), "completed");
    json_decref(waits[i].reply);
  }
  assert_true(clock_mono_ms() - c0 < 10000);
  assert_int_equal(taskq_rpc_tool_waits(f->reg), 0);
}

/* A caller holds at most max_waits_per_peer waits; another caller and the local operator are
 * not affected; a finished wait frees its place. */
static void test_wait_cap_per_caller(void **state) {
  fx *f = *state;
  char id[33];
  submit(f, id);
  char msg[256];
  snprintf(msg, sizeof msg, "{\"op\":\"wait\",\"task_id\":\"%s\",\"timeout_s\":60}", id);
  res w[3], extra, other, local;
  mcp_call *calls[3];
  for (int i = 0; i < 3; i++) calls[i] = start(f, &f->a, msg, &w[i]);
  start(f, &f->a, msg, &extra);
  assert_true(run_until(f, &extra.done, WAIT_MS));
  assert_false(json_is_true(json_object_get(extra.reply, "ok")));
  assert_string_equal(err_of(extra.reply), "busy");
  json_decref(extra.reply);
  start(f, &f->b, msg, &other);
  start(f, &f->local, msg, &local);
  for (int i = 0; i < 50; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_false(other.done);
  assert_false(local.done);
  assert_int_equal(taskq_rpc_tool_waits(f->reg), 5);
  mcp_dispatch_cancel(calls[0]); /* cancelled: its place is free again */
  assert_true(run_until(f, &w[0].done, WAIT_MS));
  assert_int_equal(w[0].st, MCP_DISPATCH_CANCELLED);
  json_decref(w[0].reply);
  res again;
  start(f, &f->a, msg, &again);
  for (int i = 0; i < 50; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_false(again.done);
  assert_int_equal(tq_complete(f->q, id, NULL, TQ_COMPLETED, NULL, NULL), 0);
  res *all[] = {&w[1], &w[2], &other, &local, &again};
  for (size_t i = 0; i < 5; i++) {
    assert_true(run_until(f, &all[i]->done, WAIT_MS));
    assert_string_equal(status_of(all[i]->reply), "completed");
    json_decref(all[i]->reply);
  }
}

/* The wait's own timeout answers with the task as it is; an unknown task is null at once. */
static void test_wait_timeout_and_unknown_task(void **state) {
  fx *f = *state;
  char id[33];
  submit(f, id);
  char msg[256];
  snprintf(msg, sizeof msg, "{\"op\":\"wait\",\"task_id\":\"%s\",\"timeout_s\":0.3}", id);
  int64_t t0 = clock_mono_ms();
  json_t *r = call_sync(f, &f->a, msg);
  assert_true(clock_mono_ms() - t0 >= 250);
  assert_string_equal(status_of(r), "queued");
  json_decref(r);
  r = call_sync(f, &f->a, "{\"op\":\"wait\",\"task_id\":\"0123456789abcdef0123456789abcdef\",\"timeout_s\":30}");
  assert_true(json_is_true(json_object_get(r, "ok")));
  assert_true(json_is_null(json_object_get(r, "task")));
  json_decref(r);
  r = call_sync(f, &f->a, "{\"op\":\"wait\"}");
  assert_true(json_is_null(json_object_get(r, "task")));
  json_decref(r);
  /* a stranger is refused before anything waits */
  auth_ctx anon;
  auth_policy_peer_ctx(f->pol, "12D3KooWStrangerStrangerStrangerStrangerStrangerStr", &anon);
  r = call_sync(f, &anon, msg);
  assert_string_equal(err_of(r), "unauthorized");
  json_decref(r);
  assert_int_equal(taskq_rpc_tool_waits(f->reg), 0);
}

/* A wait on a task that is already done answers at once; the dispatcher freed with waits in
 * progress removes their watches (teardown closes the queue after it). */
static void test_wait_on_a_finished_task_and_free_with_waits(void **state) {
  fx *f = *state;
  char id[33], id2[33];
  submit(f, id);
  submit(f, id2);
  assert_int_equal(tq_complete(f->q, id, NULL, TQ_COMPLETED, NULL, NULL), 0);
  char msg[256];
  snprintf(msg, sizeof msg, "{\"op\":\"wait\",\"task_id\":\"%s\",\"timeout_s\":60}", id);
  json_t *r = call_sync(f, &f->a, msg);
  assert_string_equal(status_of(r), "completed");
  json_decref(r);
  snprintf(msg, sizeof msg, "{\"op\":\"wait\",\"task_id\":\"%s\",\"timeout_s\":60}", id2);
  static res pending[5];
  for (int i = 0; i < 5; i++) start(f, &f->a, msg, &pending[i]);
  for (int i = 0; i < 50; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(taskq_rpc_tool_waits(f->reg), 5);
  /* teardown frees the dispatcher with these in flight */
}

/* Issue 9 item 11: NULs in op messages. Identifiers refuse them with a clear error; data keeps
 * them (a cache value round-trips). */
static void test_nul_in_op_messages(void **state) {
  fx *f = *state;
  json_t *r = call_sync(f, &f->a, "{\"op\":\"status\\u0000x\"}");
  assert_string_equal(err_of(r), "invalid_message");
  assert_non_null(strstr(json_string_value(json_object_get(r, "detail")), "\"op\""));
  json_decref(r);
  r = call_sync(f, &f->a, "{\"op\":\"cache.get\",\"key\":\"a\\u0000b\"}");
  assert_string_equal(err_of(r), "invalid_message");
  json_decref(r);
  r = call_sync(f, &f->a, "{\"op\":\"wait\",\"task_id\":\"0123456789abcdef0123456789abcdef\\u0000\"}");
  assert_string_equal(err_of(r), "invalid_message");
  json_decref(r);
  r = call_sync(f, &f->a, "{\"op\":\"cache.set\",\"key\":\"k\",\"value\":\"a\\u0000b\"}");
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  r = call_sync(f, &f->a, "{\"op\":\"cache.get\",\"key\":\"k\"}");
  assert_true(json_is_true(json_object_get(r, "hit")));
  json_t *v = json_object_get(r, "value");
  assert_int_equal(json_string_length(v), 3);
  assert_memory_equal(json_string_value(v), "a\0b", 3);
  json_decref(r);
  r = call_sync(f, &f->a, "{\"op\":\"submit\",\"task_type\":\"tool.call\",\"payload\":{\"tool\":\"echo\",\"args\":"
                          "{\"s\":\"x\\u0000y\"}}}");
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
}

/* call_tool runs on the long pool and completes from its worker, for a known or unknown tool. */
static void test_call_tool_op(void **state) {
  fx *f = *state;
  json_t *r = call_sync(f, &f->a, "{\"op\":\"call_tool\",\"tool_name\":\"nope\"}");
  assert_string_equal(err_of(r), "unknown_tool");
  json_decref(r);
  r = call_sync(f, &f->a, "{\"op\":\"call_tool\",\"tool_name\":\"nope\"}");
  assert_string_equal(err_of(r), "unknown_tool");
  json_decref(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_waits_hold_no_thread, setup_cap128, teardown),
      cmocka_unit_test_setup_teardown(test_wait_cap_per_caller, setup_cap3, teardown),
      cmocka_unit_test_setup_teardown(test_wait_timeout_and_unknown_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wait_on_a_finished_task_and_free_with_waits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nul_in_op_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_call_tool_op, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

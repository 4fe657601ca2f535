/* Tests for tools/store_tools through the real dispatcher: result shapes of the native and the
 * ipfs_datasets_py names (mcp_server_spec.md §3.4), schema refusals, scopes, disabled stores,
 * task_wait waking on completion and honouring cancellation. */
#include <pthread.h>
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
#include "store/cache.h"
#include "store/queue.h"
#include "support/mcpfix.h"
#include "support/tmpdir.h"
#include "support/wait.h"
#include "tools/store_tools.h"
#include "util/clock.h"

typedef struct {
  char dir[TS_TMPDIR_MAX];
  tq_queue *q;
  ttlcache *c;
  ts_mcp m;
} fixture;

static const mcp_auth k_local = AUTH_CTX_LOCAL_INIT;
static const mcp_auth k_reader = {.kind = AUTH_KIND_PEER, .peer_id = "12D3KooWreader", .scopes = AUTH_SCOPES_INIT(AUTH_CACHE_READ)};

static int setup_with(void **state, bool stores) {
  fixture *f = calloc(1, sizeof *f);
  ts_tmpdir_make(f->dir, "store-tools");
  if (stores) {
    char p[128];
    tq_options qo;
    tq_options_default(&qo);
    ts_path(p, sizeof p, f->dir, "queue.sqlite3");
    qo.path = p;
    assert_int_equal(tq_open(&qo, &f->q), 0);
    ttlcache_options co;
    ttlcache_options_default(&co);
    ts_path(p, sizeof p, f->dir, "cache");
    co.dir = p;
    assert_int_equal(ttlcache_open(&co, &f->c), 0);
  }
  ts_mcp_open(&f->m);
  assert_int_equal(store_tools_register(f->m.reg, f->q, f->c), 0);
  ts_mcp_start(&f->m, 2, 4);
  *state = f;
  return 0;
}
static int setup(void **state) { return setup_with(state, true); }
static int setup_disabled(void **state) { return setup_with(state, false); }

static int teardown(void **state) {
  fixture *f = *state;
  ts_mcp_close(&f->m);
  tq_close(f->q);
  ttlcache_close(f->c);
  assert_int_equal(ts_tmpdir_remove(f->dir), 0);
  free(f);
  return 0;
}

static json_t *call_as(fixture *f, const char *tool, json_t *args, const mcp_auth *auth) {
  mcp_call_request rq = {.tool = tool, .args = args, .auth = auth, .remote = !auth_ctx_is_local(auth)};
  json_t *env = ts_mcp_call(&f->m, &rq);
  json_decref(args);
  return env;
}

static json_t *call(fixture *f, const char *tool, const char *args_json) {
  json_t *args = json_loads(args_json, 0, NULL);
  if (!args) fail_msg("bad args %s", args_json);
  return call_as(f, tool, args, &k_local);
}

static json_t *res(json_t *env) { return json_object_get(env, "result"); }
static const char *sget(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void test_tools_registered_with_categories(void **state) {
  fixture *f = *state;
  const char *names[] = {"task_submit", "task_get", "task_wait", "task_list", "task_cancel", "task_stats",
                         "cache_get", "cache_set", "cache_has", "cache_delete", "cache_stats", "p2p_task_submit",
                         "p2p_task_get", "p2p_task_delete", "p2p_cache_get", "p2p_cache_has", "p2p_cache_set",
                         "p2p_cache_delete"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) assert_non_null(mcp_registry_find(f->m.reg, names[i]));
  assert_string_equal(mcp_tool_def_of(mcp_registry_find(f->m.reg, "task_submit"))->category, "queue");
  assert_string_equal(mcp_tool_def_of(mcp_registry_find(f->m.reg, "cache_set"))->category, "cache");
  assert_string_equal(mcp_tool_def_of(mcp_registry_find(f->m.reg, "p2p_cache_set"))->category, "p2p");
}

static void test_task_submit_get_and_p2p_shapes(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "task_submit", "{\"task_type\":\"echo\",\"payload\":{\"x\":1},\"priority\":7}");
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_true(json_is_true(json_object_get(res(env), "ok")));
  char id[33];
  snprintf(id, sizeof id, "%s", sget(res(env), "task_id"));
  assert_int_equal(strlen(id), 32);
  char args[128];
  snprintf(args, sizeof args, "{\"task_id\":\"%s\"}", id);
  env = call(f, "task_get", args);
  json_t *t = json_object_get(res(env), "task");
  assert_int_equal(json_integer_value(json_object_get(t, "priority")), 7);
  assert_string_equal(sget(t, "status"), "queued");
  assert_non_null(json_object_get(t, "lease_epoch"));
  /* the p2p names: exact ipfs_datasets_py shapes */
  env = call(f, "p2p_task_submit", "{\"task_type\":\"echo\",\"payload\":{\"y\":2}}");
  assert_int_equal(json_object_size(res(env)), 2); /* {ok, task_id} */
  snprintf(args, sizeof args, "{\"task_id\":\"%s\"}", sget(res(env), "task_id"));
  env = call(f, "p2p_task_get", args);
  assert_int_equal(json_object_size(json_object_get(res(env), "task")), 17);
  env = call(f, "p2p_task_get", "{\"task_id\":\"00000000000000000000000000000000\"}");
  assert_int_equal(f->m.st, MCP_DISPATCH_TOOL_ERROR);
  env = call(f, "p2p_task_delete", args);
  assert_true(json_is_true(json_object_get(res(env), "deleted")));
  env = call(f, "p2p_task_delete", args);
  assert_true(json_is_false(json_object_get(res(env), "deleted")));
}

static void test_task_submit_rejects_absurd_and_unknown_arguments(void **state) {
  fixture *f = *state;
  call(f, "task_submit", "{\"task_type\":\"t\",\"priority\":1000}");
  assert_int_equal(f->m.st, MCP_DISPATCH_INVALID_ARGUMENTS);
  call(f, "task_submit", "{\"task_type\":\"t\",\"bogus\":1}");
  assert_int_equal(f->m.st, MCP_DISPATCH_INVALID_ARGUMENTS);
  call(f, "task_submit", "{\"task_type\":\"t\",\"delay_seconds\":-1}");
  assert_int_equal(f->m.st, MCP_DISPATCH_INVALID_ARGUMENTS);
  call(f, "task_wait", "{\"task_id\":\"00000000000000000000000000000000\",\"timeout_s\":-5}");
  assert_int_equal(f->m.st, MCP_DISPATCH_INVALID_ARGUMENTS);
  call(f, "cache_set", "{\"key\":\"k\",\"value\":1,\"ttl_s\":-1}");
  assert_int_equal(f->m.st, MCP_DISPATCH_INVALID_ARGUMENTS);
  /* a non-object payload is wrapped as the Python service does */
  json_t *env = call(f, "task_submit", "{\"task_type\":\"t\",\"payload\":[1,2]}");
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  char args[128];
  snprintf(args, sizeof args, "{\"task_id\":\"%s\"}", sget(res(env), "task_id"));
  env = call(f, "task_get", args);
  assert_true(json_is_array(json_object_get(json_object_get(json_object_get(res(env), "task"), "payload"), "payload")));
}

typedef struct {
  tq_queue *q;
  char id[33];
} completer;

static void *complete_soon(void *arg) {
  completer *c = arg;
  tq_claim_opts o = {.worker_id = "w"};
  tq_task *t = NULL;
  for (int i = 0; i < 100 && !t; i++) {
    usleep(20000);
    assert_int_equal(tq_claim(c->q, c->id, &o, &t), 0);
  }
  assert_non_null(t);
  tq_fence fe = {"w", t->lease_epoch};
  tq_task_free(t);
  json_t *r = json_pack("{s:s}", "answer", "42");
  assert_int_equal(tq_complete(c->q, c->id, &fe, TQ_COMPLETED, r, NULL), 0);
  json_decref(r);
  return NULL;
}

static void test_task_wait_returns_when_completed(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "task_submit", "{\"task_type\":\"t\"}");
  completer c = {.q = f->q};
  snprintf(c.id, sizeof c.id, "%s", sget(res(env), "task_id"));
  pthread_t th;
  pthread_create(&th, NULL, complete_soon, &c);
  char args[128];
  snprintf(args, sizeof args, "{\"task_id\":\"%s\",\"timeout_s\":20}", c.id);
  int64_t t0 = clock_mono_ms();
  env = call(f, "task_wait", args);
  pthread_join(th, NULL);
  assert_true(clock_mono_ms() - t0 < 15000); /* woken by the completion, not the 20 s timeout */
  assert_true(json_is_true(json_object_get(res(env), "done")));
  json_t *t = json_object_get(res(env), "task");
  assert_string_equal(sget(t, "status"), "completed");
  assert_string_equal(sget(json_object_get(t, "result"), "answer"), "42");
}

static void test_task_list_cancel_stats(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "task_submit", "{\"task_type\":\"a\"}");
  char args[160];
  snprintf(args, sizeof args, "{\"task_id\":\"%s\",\"reason\":\"no longer needed\"}", sget(res(env), "task_id"));
  call(f, "task_submit", "{\"task_type\":\"b\"}");
  env = call(f, "task_list", "{\"status\":\"queued\",\"task_types\":[\"a\"]}");
  assert_int_equal(json_integer_value(json_object_get(res(env), "count")), 1);
  env = call(f, "task_cancel", args);
  assert_true(json_is_true(json_object_get(res(env), "cancelled")));
  env = call(f, "task_stats", "{}");
  assert_int_equal(json_integer_value(json_object_get(res(env), "cancelled")), 1);
  assert_int_equal(json_integer_value(json_object_get(res(env), "queued")), 1);
  call(f, "task_list", "{\"status\":\"bogus\"}");
  assert_int_equal(f->m.st, MCP_DISPATCH_INVALID_ARGUMENTS);
}

static void test_cache_tools_shapes(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "p2p_cache_set", "{\"key\":\"k\",\"value\":{\"v\":[1,2]},\"ttl_s\":null}");
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_string_equal(sget(res(env), "key"), "k");
  env = call(f, "p2p_cache_get", "{\"key\":\"k\"}");
  assert_true(json_is_true(json_object_get(res(env), "hit")));
  assert_int_equal(json_array_size(json_object_get(json_object_get(res(env), "value"), "v")), 2);
  env = call(f, "cache_has", "{\"key\":\"nope\"}");
  assert_true(json_is_false(json_object_get(res(env), "hit")));
  env = call(f, "cache_get", "{\"key\":\"nope\"}");
  assert_true(json_is_null(json_object_get(res(env), "value")));
  env = call(f, "cache_delete", "{\"key\":\"k\"}");
  assert_true(json_is_true(json_object_get(res(env), "deleted")));
  env = call(f, "p2p_cache_delete", "{\"key\":\"k\"}");
  assert_true(json_is_false(json_object_get(res(env), "deleted")));
  env = call(f, "cache_stats", "{}");
  assert_int_equal(json_integer_value(json_object_get(res(env), "hits")), 1);
  assert_int_equal(json_integer_value(json_object_get(res(env), "misses")), 2);
}

static void test_cache_write_needs_write_scope(void **state) {
  fixture *f = *state;
  call_as(f, "cache_set", json_pack("{s:s, s:i}", "key", "k", "value", 1), &k_reader);
  assert_int_equal(f->m.st, MCP_DISPATCH_FORBIDDEN);
  call_as(f, "cache_get", json_pack("{s:s}", "key", "k"), &k_reader);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  /* the local-only admin tool does not exist for a remote caller */
  call_as(f, "p2p_task_delete", json_pack("{s:s}", "task_id", "00000000000000000000000000000000"), &k_reader);
  assert_int_equal(f->m.st, MCP_DISPATCH_UNKNOWN_TOOL);
}

static void test_disabled_stores_answer_disabled(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "p2p_cache_get", "{\"key\":\"k\"}");
  assert_int_equal(f->m.st, MCP_DISPATCH_TOOL_ERROR);
  char *s = json_dumps(env, 0);
  assert_non_null(strstr(s, "cache_disabled"));
  free(s);
  env = call(f, "task_submit", "{\"task_type\":\"t\"}");
  s = json_dumps(env, 0);
  assert_non_null(strstr(s, "queue_disabled"));
  free(s);
}

static void test_task_wait_stops_when_the_call_is_cancelled(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "task_submit", "{\"task_type\":\"t\"}");
  char args[128];
  snprintf(args, sizeof args, "{\"task_id\":\"%s\",\"timeout_s\":60}", sget(res(env), "task_id"));
  json_t *a = json_loads(args, 0, NULL);
  mcp_call_request rq = {.tool = "task_wait", .args = a, .auth = &k_local};
  mcp_call *handle = NULL;
  int before = f->m.done;
  assert_int_equal(mcp_dispatch_start(f->m.d, &rq, ts_mcp_on_done, &f->m, &handle), 0);
  json_decref(a);
  int64_t t0 = clock_mono_ms();
  while (clock_mono_ms() - t0 < 300) uv_run(&f->m.loop, UV_RUN_NOWAIT);
  assert_int_equal(f->m.done, before); /* still waiting */
  mcp_dispatch_cancel(handle);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, f->m.done != before);
  assert_int_equal(f->m.done, before + 1);
  assert_true(clock_mono_ms() - t0 < 30000); /* not the 60 s timeout */
  assert_int_equal(f->m.st, MCP_DISPATCH_CANCELLED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tools_registered_with_categories, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_submit_get_and_p2p_shapes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_submit_rejects_absurd_and_unknown_arguments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_wait_returns_when_completed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_list_cancel_stats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_wait_stops_when_the_call_is_cancelled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_tools_shapes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_write_needs_write_scope, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disabled_stores_answer_disabled, setup_disabled, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

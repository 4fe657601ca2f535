/* Tests for the dispatcher's asynchronous tools and its two pools (dispatch.h, tool.h):
 * a tool that returns pending and completes later (from the loop or another thread), its
 * cancel callback on cancel / deadline / detach / free, exactly-once completion, nested calls
 * of an asynchronous tool from a worker, and long calls that neither take the short pool's
 * threads nor queue without bound. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mcp/dispatch.h"
#include "util/clock.h"

/* ---------- an asynchronous tool the test drives ---------- */

/* What the async tool does when called: complete inside the handler, complete from a loop
 * timer after `after_ms`, complete from another thread, or wait for the test. */
enum { A_WAIT = 0, A_INSIDE, A_TIMER, A_THREAD };

typedef struct async_state {
  int mode;
  int after_ms;
  bool complete_on_cancel; /* the cancel callback completes the call at once */
  bool register_cancel;
  int started;
  int cancels;
  mcp_call *call; /* the pending call (valid until completed) */
  uv_timer_t timer;
  bool timer_init;
  pthread_t thread;
  bool thread_started;
} async_state;

static async_state A;
static uv_loop_t *g_loop;

static void a_cancel(mcp_call *call, void *ud) {
  async_state *a = ud;
  assert_ptr_equal(call, a->call);
  a->cancels++;
  if (a->complete_on_cancel) {
    a->call = NULL;
    mcp_call_complete(call, MCP_TOOL_ERROR, json_string("aborted"));
  }
}

static void a_timer(uv_timer_t *t) {
  async_state *a = t->data;
  if (!a->call) return;
  mcp_call *c = a->call;
  a->call = NULL;
  mcp_call_complete(c, MCP_TOOL_OK, json_pack("{s:s}", "from", "timer"));
}

static void *a_thread(void *p) {
  async_state *a = p;
  usleep((useconds_t)a->after_ms * 1000);
  mcp_call *c = a->call;
  a->call = NULL;
  mcp_call_complete(c, MCP_TOOL_OK, json_pack("{s:s}", "from", "thread"));
  return NULL;
}

static mcp_tool_status async_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  async_state *a = ud;
  a->started++;
  a->call = call;
  if (a->register_cancel) mcp_call_on_cancel(call, a_cancel, a);
  switch (a->mode) {
  case A_INSIDE:
    a->call = NULL;
    mcp_call_complete(call, MCP_TOOL_OK, json_pack("{s:s}", "from", "inside"));
    break;
  case A_TIMER:
    if (!a->timer_init) {
      uv_timer_init(g_loop, &a->timer);
      a->timer.data = a;
      a->timer_init = true;
    }
    uv_timer_start(&a->timer, a_timer, (uint64_t)a->after_ms, 0);
    break;
  case A_THREAD:
    a->thread_started = pthread_create(&a->thread, NULL, a_thread, a) == 0;
    assert_true(a->thread_started);
    break;
  default: break;
  }
  return MCP_TOOL_PENDING;
}

/* A synchronous (worker) tool that sleeps until cancelled or `ms` passed. */
static atomic_int g_sleepers;
static mcp_tool_status sleepy_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  atomic_fetch_add(&g_sleepers, 1);
  bool c = mcp_call_sleep(call, json_integer_value(json_object_get(args, "ms")));
  atomic_fetch_sub(&g_sleepers, 1);
  *result = json_pack("{s:b}", "cancelled", c);
  return MCP_TOOL_OK;
}

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}

/* Invokes the tool named in args.tool (with args.params and args.timeout_ms) from its worker. */
static mcp_tool_status parent_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *env = NULL;
  uint32_t tmo = (uint32_t)json_integer_value(json_object_get(args, "timeout_ms"));
  mcp_dispatch_invoke_timeout(call, NULL, json_string_value(json_object_get(args, "tool")),
                              json_object_get(args, "params"), tmo, &env);
  *result = env;
  return MCP_TOOL_OK;
}

static bool classify_long(mcp_call *call, const json_t *args, void *ud) {
  return json_is_true(json_object_get(args, "long"));
}

static const mcp_tool_def k_tools[] = {
    {.name = "async", .category = "t", .flags = MCP_TOOL_ASYNC | MCP_TOOL_REMOTE, .fn = async_fn, .ud = &A,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}}}"},
    {.name = "sleepy", .category = "t", .fn = sleepy_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\"}}}"},
    {.name = "sleepy_long", .category = "t", .flags = MCP_TOOL_LONG, .fn = sleepy_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\"}}}"},
    {.name = "classified", .category = "t", .fn = sleepy_fn, .is_long = classify_long},
    {.name = "echo", .category = "t", .fn = echo_fn},
    {.name = "parent", .category = "t", .fn = parent_fn},
};

/* ---------- fixture ---------- */

typedef struct {
  uv_loop_t loop;
  mcp_registry *reg;
  mcp_dispatcher *d;
  int done_calls;
  mcp_dispatch_status st;
  json_t *env;
} fixture;

static const mcp_auth k_local = AUTH_CTX_LOCAL_INIT;

static fixture *fixture_new(const mcp_dispatcher_opts *o) {
  memset(&A, 0, sizeof A);
  A.register_cancel = true;
  fixture *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  g_loop = &f->loop;
  f->reg = mcp_registry_new();
  for (size_t i = 0; i < sizeof k_tools / sizeof k_tools[0]; i++) assert_int_equal(mcp_registry_add(f->reg, &k_tools[i]), 0);
  mcp_dispatcher_opts dflt = {.threads = 2, .max_threads = 4};
  assert_int_equal(mcp_dispatcher_new(&f->loop, f->reg, o ? o : &dflt, &f->d), 0);
  return f;
}

static int setup(void **state) {
  *state = fixture_new(NULL);
  return 0;
}

static void fixture_free(fixture *f) {
  if (f->d) mcp_dispatcher_free(f->d);
  if (A.timer_init) uv_close((uv_handle_t *)&A.timer, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  mcp_registry_free(f->reg);
  json_decref(f->env);
  free(f);
}

static int teardown(void **state) {
  fixture_free(*state);
  return 0;
}

static void on_done(void *ud, const mcp_call_outcome *o) {
  fixture *f = ud;
  f->done_calls++;
  f->st = o->status;
  json_decref(f->env);
  f->env = json_incref(o->envelope);
}

/* Runs the loop until `want` completions or 30 s. */
static void wait_done(fixture *f, int want) {
  int64_t end = clock_mono_ms() + 30000;
  while (f->done_calls < want && clock_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->done_calls, want);
}

/* A few loop turns (for "nothing else happens" checks). */
static void spin(fixture *f, int ms) {
  int64_t end = clock_mono_ms() + ms;
  while (clock_mono_ms() < end) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
}

static mcp_call *start(fixture *f, const char *tool, const char *args_json, uint32_t timeout_ms) {
  json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
  mcp_call_request rq = {.tool = tool, .args = args, .auth = &k_local, .timeout_ms = timeout_ms};
  mcp_call *c = NULL;
  int before = f->done_calls;
  assert_int_equal(mcp_dispatch_start(f->d, &rq, on_done, f, &c), 0);
  json_decref(args);
  assert_int_equal(f->done_calls, before); /* never completes inside start */
  return c;
}

static const char *sget(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static const char *result_from(fixture *f) { return sget(json_object_get(f->env, "result"), "from"); }

/* ---------- completing later ---------- */

static void test_async_tool_completes_later_from_the_loop(void **state) {
  fixture *f = *state;
  A.mode = A_TIMER;
  A.after_ms = 30;
  start(f, "async", "{\"x\":1}", 0);
  assert_int_equal(A.started, 1); /* the handler ran on the loop, inside start */
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  assert_string_equal(result_from(f), "timer");
  assert_string_equal(sget(f->env, "tool"), "async");
  assert_int_equal(A.cancels, 0);
  assert_int_equal(mcp_dispatcher_inflight(f->d), 0);
}

static void test_async_completion_inside_the_handler_still_arrives_later(void **state) {
  fixture *f = *state;
  A.mode = A_INSIDE;
  start(f, "async", NULL, 0); /* start asserts no completion inside */
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  assert_string_equal(result_from(f), "inside");
}

static void test_async_completion_from_another_thread(void **state) {
  fixture *f = *state;
  A.mode = A_THREAD;
  A.after_ms = 20;
  start(f, "async", NULL, 0);
  wait_done(f, 1);
  pthread_join(A.thread, NULL);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  assert_string_equal(result_from(f), "thread");
}

static void test_async_arguments_are_validated_before_the_handler(void **state) {
  fixture *f = *state;
  start(f, "async", "{\"x\":\"not an integer\"}", 0);
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_INVALID_ARGUMENTS);
  assert_int_equal(A.started, 0);
}

static void test_async_error_result_is_a_tool_error(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  start(f, "async", NULL, 0);
  mcp_call *c = A.call;
  A.call = NULL;
  mcp_call_complete(c, MCP_TOOL_ERROR, json_pack("{s:s, s:i}", "error", "remote said no", "code", 3));
  assert_int_equal(f->done_calls, 0); /* never inside mcp_call_complete */
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(sget(f->env, "error"), "remote said no");
  assert_int_equal(json_integer_value(json_object_get(f->env, "code")), 3);
}

static void test_async_second_completion_is_ignored(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  start(f, "async", NULL, 0);
  mcp_call *c = A.call;
  mcp_call_complete(c, MCP_TOOL_OK, json_string("first"));
  mcp_call_complete(c, MCP_TOOL_OK, json_string("second")); /* before the loop turned: still valid */
  wait_done(f, 1);
  spin(f, 30);
  assert_int_equal(f->done_calls, 1);
  assert_string_equal(json_string_value(json_object_get(f->env, "result")), "first");
}

/* ---------- deadline and cancellation ---------- */

static void test_async_deadline_answers_and_tells_the_tool(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  int64_t t0 = clock_mono_ms();
  start(f, "async", NULL, 50);
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_TIMEOUT);
  assert_true(clock_mono_ms() - t0 >= 45);
  assert_int_equal(A.cancels, 1);
  assert_non_null(A.call); /* the tool still owes its completion: the handle is still valid */
  mcp_call *c = A.call;
  A.call = NULL;
  mcp_call_complete(c, MCP_TOOL_OK, json_string("too late")); /* dropped */
  spin(f, 30);
  assert_int_equal(f->done_calls, 1);
  assert_int_equal(f->st, MCP_DISPATCH_TIMEOUT);
}

static void test_async_cancel_before_completion_runs_the_cancel_callback(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  A.complete_on_cancel = true;
  mcp_call *c = start(f, "async", NULL, 0);
  mcp_dispatch_cancel(c);
  assert_int_equal(A.cancels, 1);
  assert_null(A.call);           /* it completed from inside its cancel callback */
  assert_int_equal(f->done_calls, 0); /* but the answer comes from the loop */
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_CANCELLED);
  mcp_dispatch_cancel(NULL); /* harmless */
}

static void test_async_cancel_after_completion_does_not_reach_the_tool(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  mcp_call *c = start(f, "async", NULL, 0);
  mcp_call *tc = A.call;
  A.call = NULL;
  mcp_call_complete(tc, MCP_TOOL_OK, json_string("done"));
  mcp_dispatch_cancel(c); /* the completion is known but not yet delivered */
  assert_int_equal(A.cancels, 0);
  wait_done(f, 1);
  /* as for a worker handler that finished before the loop saw it: the cancel wins */
  assert_int_equal(f->st, MCP_DISPATCH_CANCELLED);
  spin(f, 20);
  assert_int_equal(f->done_calls, 1);
}

static void test_async_cancel_without_callback_completes_when_the_tool_does(void **state) {
  fixture *f = *state;
  A.mode = A_TIMER;
  A.after_ms = 40;
  A.register_cancel = false;
  mcp_call *c = start(f, "async", NULL, 0);
  mcp_dispatch_cancel(c);
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_CANCELLED);
}

static void test_async_detach_tells_the_tool_and_never_calls_back(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  mcp_call *c = start(f, "async", NULL, 0);
  mcp_dispatch_detach(c);
  assert_int_equal(A.cancels, 1);
  assert_int_equal(mcp_dispatcher_inflight(f->d), 0);
  spin(f, 20);
  mcp_call *tc = A.call; /* still valid: the tool has not completed */
  A.call = NULL;
  mcp_call_complete(tc, MCP_TOOL_OK, json_string("nobody listens"));
  spin(f, 20);
  assert_int_equal(f->done_calls, 0);
}

static void test_async_free_with_a_pending_tool(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  A.register_cancel = false; /* the tool is not told; it completes after the free */
  start(f, "async", NULL, 0);
  assert_non_null(A.call);
  mcp_dispatcher_free(f->d);
  f->d = NULL;
  uv_run(&f->loop, UV_RUN_NOWAIT);
  mcp_call *c = A.call;
  A.call = NULL;
  mcp_call_complete(c, MCP_TOOL_OK, json_string("after free")); /* dropped; frees the last memory */
  assert_int_equal(f->done_calls, 0);
}

static void test_async_free_runs_the_cancel_callback(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  A.complete_on_cancel = true;
  start(f, "async", NULL, 0);
  mcp_dispatcher_free(f->d);
  f->d = NULL;
  assert_int_equal(A.cancels, 1);
  assert_null(A.call);
  assert_int_equal(f->done_calls, 0);
}

static void test_async_completion_from_a_thread_after_free(void **state) {
  fixture *f = *state;
  A.mode = A_THREAD;
  A.after_ms = 50;
  start(f, "async", NULL, 0);
  mcp_dispatcher_free(f->d); /* the thread completes later, off the loop */
  f->d = NULL;
  pthread_join(A.thread, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(f->done_calls, 0);
}

/* ---------- nested calls (mcp_dispatch_invoke) of an asynchronous tool ---------- */

static void test_invoke_waits_for_an_async_tool_without_blocking_the_loop(void **state) {
  fixture *f = *state;
  A.mode = A_TIMER; /* the loop's own timer completes it: the loop must keep turning */
  A.after_ms = 30;
  start(f, "parent", "{\"tool\":\"async\",\"params\":{\"x\":2}}", 0);
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  json_t *inner = json_object_get(f->env, "result");
  assert_string_equal(sget(inner, "status"), "success");
  assert_string_equal(sget(json_object_get(inner, "result"), "from"), "timer");
  assert_string_equal(sget(inner, "tool"), "async");
}

static void test_invoke_async_child_validation_runs_on_the_worker(void **state) {
  fixture *f = *state;
  start(f, "parent", "{\"tool\":\"async\",\"params\":{\"x\":\"bad\"}}", 0);
  wait_done(f, 1);
  assert_string_equal(sget(json_object_get(f->env, "result"), "error_type"), "invalid_arguments");
  assert_int_equal(A.started, 0);
}

static void test_invoke_async_child_deadline(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  start(f, "parent", "{\"tool\":\"async\",\"timeout_ms\":50}", 0);
  wait_done(f, 1);
  json_t *inner = json_object_get(f->env, "result");
  assert_string_equal(sget(inner, "error_type"), "timeout");
  assert_int_equal(A.cancels, 1);
  mcp_call *c = A.call;
  A.call = NULL;
  mcp_call_complete(c, MCP_TOOL_OK, NULL); /* late: dropped */
  spin(f, 20);
}

static void test_invoke_async_child_sees_the_parents_cancellation(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  A.complete_on_cancel = true;
  mcp_call *p = start(f, "parent", "{\"tool\":\"async\"}", 0);
  int64_t end = clock_mono_ms() + 30000;
  while (A.started == 0 && clock_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(A.started, 1);
  mcp_dispatch_cancel(p);
  assert_int_equal(A.cancels, 1);
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_CANCELLED);
}

static void test_invoke_async_child_when_the_dispatcher_is_freed(void **state) {
  fixture *f = *state;
  A.mode = A_WAIT;
  start(f, "parent", "{\"tool\":\"async\"}", 0);
  int64_t end = clock_mono_ms() + 30000;
  while (A.started == 0 && clock_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(A.started, 1);
  /* the worker waits for the kid; free must wake it (no deadlock) and tell the tool */
  mcp_dispatcher_free(f->d);
  f->d = NULL;
  assert_int_equal(A.cancels, 1);
  mcp_call *c = A.call;
  A.call = NULL;
  mcp_call_complete(c, MCP_TOOL_OK, NULL);
  assert_int_equal(f->done_calls, 0);
}

/* ---------- the two pools ---------- */

static void wait_sleepers(int n) {
  int64_t end = clock_mono_ms() + 30000;
  while (atomic_load(&g_sleepers) < n && clock_mono_ms() < end) usleep(1000);
  assert_int_equal(atomic_load(&g_sleepers), n);
}

static void test_long_calls_never_take_the_short_pools_threads(void **state) {
  (void)state;
  mcp_dispatcher_opts o = {.threads = 1, .max_threads = 1, .long_threads = 3, .long_queue = 4};
  fixture *f = fixture_new(&o);
  atomic_store(&g_sleepers, 0);
  for (int i = 0; i < 3; i++) start(f, "sleepy_long", "{\"ms\":60000}", 0);
  wait_sleepers(3);
  int64_t t0 = clock_mono_ms();
  start(f, "echo", "{}", 0); /* the one short thread is free */
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  assert_true(clock_mono_ms() - t0 < 10000);
  mcp_dispatcher_shutdown(f->d);
  fixture_free(f); /* the sleepers see cancelled */
}

static void test_a_full_long_pool_answers_busy(void **state) {
  (void)state;
  mcp_dispatcher_opts o = {.threads = 1, .max_threads = 2, .long_threads = 1, .long_queue = 2};
  fixture *f = fixture_new(&o);
  atomic_store(&g_sleepers, 0);
  start(f, "sleepy_long", "{\"ms\":60000}", 0);
  wait_sleepers(1);
  /* two wait for the one thread */
  mcp_call *queued = start(f, "sleepy_long", "{\"ms\":10}", 0);
  int64_t t0 = clock_mono_ms();
  start(f, "sleepy_long", "{\"ms\":10}", 100);
  start(f, "sleepy_long", "{\"ms\":10}", 0); /* over the bound */
  wait_done(f, 1);
  assert_int_equal(f->st, MCP_DISPATCH_BUSY);
  assert_string_equal(sget(f->env, "error_type"), "busy");
  /* a queued call has its deadline */
  wait_done(f, 2);
  assert_int_equal(f->st, MCP_DISPATCH_TIMEOUT);
  assert_true(clock_mono_ms() - t0 < 10000);
  /* per call: the classified tool is long only when its arguments say so (the timed-out call
   * still holds its queue place until a thread reaches it) */
  start(f, "classified", "{\"long\":true,\"ms\":10}", 0);
  wait_done(f, 3);
  assert_int_equal(f->st, MCP_DISPATCH_BUSY);
  start(f, "classified", "{\"long\":false,\"ms\":10}", 0);
  wait_done(f, 4);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  /* a long call queued behind a 60 s one is answered at once when cancelled */
  t0 = clock_mono_ms();
  mcp_dispatch_cancel(queued);
  wait_done(f, 5);
  assert_int_equal(f->st, MCP_DISPATCH_CANCELLED);
  assert_true(clock_mono_ms() - t0 < 10000);
  mcp_dispatcher_shutdown(f->d);
  fixture_free(f);
}

static void test_registry_refuses_two_places_to_run(void **state) {
  (void)state;
  mcp_registry *r = mcp_registry_new();
  mcp_tool_def d = {.name = "x", .category = "c", .fn = echo_fn, .flags = MCP_TOOL_ASYNC | MCP_TOOL_LONG};
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  d.flags = MCP_TOOL_INLINE | MCP_TOOL_ASYNC;
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  d.flags = MCP_TOOL_INLINE | MCP_TOOL_LONG;
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  d.flags = MCP_TOOL_ASYNC;
  d.is_long = classify_long;
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  d.flags = 0;
  assert_int_equal(mcp_registry_add(r, &d), 0);
  mcp_registry_free(r);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_async_tool_completes_later_from_the_loop),
      T(test_async_completion_inside_the_handler_still_arrives_later),
      T(test_async_completion_from_another_thread),
      T(test_async_arguments_are_validated_before_the_handler),
      T(test_async_error_result_is_a_tool_error),
      T(test_async_second_completion_is_ignored),
      T(test_async_deadline_answers_and_tells_the_tool),
      T(test_async_cancel_before_completion_runs_the_cancel_callback),
      T(test_async_cancel_after_completion_does_not_reach_the_tool),
      T(test_async_cancel_without_callback_completes_when_the_tool_does),
      T(test_async_detach_tells_the_tool_and_never_calls_back),
      T(test_async_free_with_a_pending_tool),
      T(test_async_free_runs_the_cancel_callback),
      T(test_async_completion_from_a_thread_after_free),
      T(test_invoke_waits_for_an_async_tool_without_blocking_the_loop),
      T(test_invoke_async_child_validation_runs_on_the_worker),
      T(test_invoke_async_child_deadline),
      T(test_invoke_async_child_sees_the_parents_cancellation),
      T(test_invoke_async_child_when_the_dispatcher_is_freed),
      cmocka_unit_test(test_long_calls_never_take_the_short_pools_threads),
      cmocka_unit_test(test_a_full_long_pool_answers_busy),
      cmocka_unit_test(test_registry_refuses_two_places_to_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

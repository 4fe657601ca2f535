/* Tests for mcp/dispatch: envelope shape, validation as a tool error, scopes, the remote filter,
 * deadlines that fire while a handler still runs, cancellation, progress ordering, and the
 * synchronous child dispatch used by tools_dispatch. */
#include <math.h>
#include <poll.h>
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
#include "support/mcpfix.h"
#include "support/wait.h"
#include "util/clock.h"
#include "util/log.h"

static atomic_bool g_saw_cancel;
static atomic_bool g_sleepy_started;

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}
static mcp_tool_status fail_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:s, s:i}", "error", "it broke", "code_hint", 7);
  return MCP_TOOL_ERROR;
}
static mcp_tool_status sleepy_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  atomic_store(&g_sleepy_started, true);
  bool c = mcp_call_sleep(call, json_integer_value(json_object_get(args, "ms")));
  atomic_store(&g_saw_cancel, c);
  *result = json_pack("{s:b}", "cancelled", c);
  return MCP_TOOL_OK;
}
/* Ignores cancellation until the test releases it (bounded: 60 s): the deadline (50 ms) must
 * answer the caller while the handler still runs. */
static _Atomic int64_t g_stubborn_end_ms;
static atomic_bool g_stubborn_release;
static mcp_tool_status stubborn_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  int64_t until = clock_mono_ms() + 60000;
  while (!atomic_load(&g_stubborn_release) && clock_mono_ms() < until) usleep(1000);
  atomic_store(&g_stubborn_end_ms, clock_mono_ms());
  atomic_store(&g_saw_cancel, mcp_call_cancelled(call));
  *result = json_string("late");
  return MCP_TOOL_OK;
}
static mcp_tool_status progress_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_call_progress(call, 1, 3, "one");
  mcp_call_progress(call, 2, 3, NULL);
  mcp_call_progress(call, 2, 3, "not increasing: dropped");
  mcp_call_progress(call, 3, 3, "three");
  mcp_call_log(call, "info", "hello from the tool");
  *result = json_integer(42);
  return MCP_TOOL_OK;
}
static mcp_tool_status whoami_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  usleep(20000); /* the caller's auth struct is gone by now */
  const mcp_auth *a = mcp_call_auth(call);
  *result = json_pack("{s:s, s:I}", "peer", a->peer_id, "scopes", (json_int_t)a->scopes.w[0]);
  return MCP_TOOL_OK;
}
static mcp_tool_status parent_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *env = NULL;
  const char *cat = json_string_value(json_object_get(args, "category"));
  const char *tool = json_string_value(json_object_get(args, "tool"));
  mcp_dispatch_invoke(call, cat, tool, json_object_get(args, "params"), &env);
  *result = env;
  return MCP_TOOL_OK;
}

/* Inline tools that misbehave: one sleeps (blocks), one spins args.spin_ms of wall time. Each
 * records whether it ran on the test's thread, which is the loop thread. */
static pthread_t g_loop_thread;
static atomic_bool g_ran_on_loop;
static atomic_int g_slept_ms;
static mcp_tool_status inline_sleeper_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  atomic_store(&g_ran_on_loop, pthread_equal(pthread_self(), g_loop_thread));
  int64_t t0 = clock_mono_ms();
  mcp_call_sleep(call, 300);
  atomic_store(&g_slept_ms, (int)(clock_mono_ms() - t0));
  *result = json_object();
  return MCP_TOOL_OK;
}
static mcp_tool_status inline_spinner_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  atomic_store(&g_ran_on_loop, pthread_equal(pthread_self(), g_loop_thread));
  int64_t until = clock_mono_us() + json_integer_value(json_object_get(args, "spin_ms")) * 1000;
  while (clock_mono_us() < until) {
  }
  *result = json_object();
  return MCP_TOOL_OK;
}

static const mcp_tool_def k_tools[] = {
    {.name = "echo", .category = "test", .description = "echo",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"},\"d\":{\"type\":\"string\",\"default\":\"x\"}},\"required\":[\"n\"]}",
     .flags = MCP_TOOL_REMOTE, .fn = echo_fn},
    {.name = "echo_inline", .category = "test", .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE, .fn = echo_fn},
    {.name = "fail", .category = "test", .fn = fail_fn},
    {.name = "sleepy", .category = "slow", .fn = sleepy_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\"}}}"},
    {.name = "stubborn", .category = "slow", .fn = stubborn_fn, .timeout_ms = 50},
    {.name = "admin_only", .category = "test", .scopes = AUTH_SCOPES_INIT(AUTH_ADMIN), .flags = MCP_TOOL_REMOTE, .fn = echo_fn},
    {.name = "progress", .category = "test", .fn = progress_fn},
    {.name = "parent", .category = "meta", .fn = parent_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "whoami", .category = "test", .fn = whoami_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "inline_sleeper", .category = "test", .flags = MCP_TOOL_INLINE, .fn = inline_sleeper_fn},
    {.name = "inline_spinner", .category = "test", .flags = MCP_TOOL_INLINE, .fn = inline_spinner_fn, .timeout_ms = 1000},
    {.name = "inline_defaults", .category = "test", .flags = MCP_TOOL_INLINE, .fn = echo_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"d\":{\"type\":\"string\",\"default\":\"x\"}}}"},
};

typedef struct {
  ts_mcp m; /* loop, registry, dispatcher; completions counted in m.done */
  int64_t done_at_ms;
  json_t *events; /* ["progress:1", …, "log:…", "done"] */
} fixture;

static const mcp_auth k_local = AUTH_CTX_LOCAL_INIT;
static const mcp_auth k_peer = {.kind = AUTH_KIND_PEER, .peer_id = "12D3KooWtest", .scopes = AUTH_SCOPES_INIT(AUTH_TOOL_CALL)};

static int setup(void **state) {
  g_loop_thread = pthread_self();
  fixture *f = calloc(1, sizeof *f);
  ts_mcp_open(&f->m);
  ts_mcp_add_tools(&f->m, k_tools, sizeof k_tools / sizeof k_tools[0]);
  ts_mcp_start(&f->m, 2, 4);
  f->events = json_array();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  ts_mcp_close(&f->m);
  json_decref(f->events);
  free(f);
  return 0;
}

static void on_done(void *ud, const mcp_call_outcome *o) {
  fixture *f = ud;
  ts_mcp_on_done(&f->m, o);
  f->done_at_ms = clock_mono_ms();
  json_array_append_new(f->events, json_string("done"));
}
static void on_progress(void *ud, json_t *tok, double p, double t, const char *msg) {
  fixture *f = ud;
  char b[64];
  snprintf(b, sizeof b, "progress:%g/%g:%s", p, t, json_string_value(tok));
  json_array_append_new(f->events, json_string(b));
}
static void on_log(void *ud, const char *level, const char *msg) {
  fixture *f = ud;
  char b[128];
  snprintf(b, sizeof b, "log:%s:%s", level, msg);
  json_array_append_new(f->events, json_string(b));
}

static void wait_done(fixture *f, int want) { TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, f->m.done >= want); }

static mcp_call *start(fixture *f, const char *tool, const char *args_json, const mcp_auth *auth, bool remote) {
  json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
  json_t *tok = json_string("tok-1");
  mcp_call_request rq = {.tool = tool, .args = args, .auth = auth, .remote = remote, .progress_token = tok,
                         .sink = {.progress = on_progress, .log = on_log, .ud = f}};
  mcp_call *c = NULL;
  int before = f->m.done;
  assert_int_equal(mcp_dispatch_start(f->m.d, &rq, on_done, f, &c), 0);
  json_decref(args);
  json_decref(tok);
  assert_int_equal(f->m.done, before); /* never completes inside start */
  return c;
}

static const char *sget(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void test_dispatch_success_envelope_has_normalized_fields(void **state) {
  fixture *f = *state;
  start(f, "echo", "{\"n\":1}", &k_local, false);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_string_equal(sget(f->m.env, "status"), "success");
  assert_string_equal(sget(f->m.env, "category"), "test");
  assert_string_equal(sget(f->m.env, "tool"), "echo");
  const char *rid = sget(f->m.env, "request_id");
  assert_non_null(rid);
  assert_int_equal(strlen(rid), 36);
  assert_int_equal(rid[14], '4'); /* uuid version 4 */
  assert_true(json_is_number(json_object_get(f->m.env, "duration_ms")));
  /* defaults were filled in before the handler ran */
  json_t *echo = json_object_get(json_object_get(f->m.env, "result"), "echo");
  assert_string_equal(sget(echo, "d"), "x");
  json_t *r = mcp_dispatch_call_result(f->m.env);
  assert_true(json_is_false(json_object_get(r, "isError")));
  assert_true(json_is_object(json_object_get(r, "structuredContent")));
  assert_string_equal(sget(json_array_get(json_object_get(r, "content"), 0), "type"), "text");
  json_decref(r);
}

static void test_dispatch_inline_tool_completes_asynchronously(void **state) {
  fixture *f = *state;
  start(f, "echo_inline", "{}", &k_local, false);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
}

/* The fast path (sync_done + lazy_envelope + args_shared): an inline call is answered inside
 * mcp_dispatch_start, after *out was set, with the value and no envelope tree; the arguments
 * are the caller's tree, not a copy; the envelope is still there on demand, with the same
 * request id and duration. */
static json_t *g_fast_value, *g_fast_env;
static const char *g_fast_rid_seen;
static int64_t g_fast_us;
static mcp_call *g_fast_out_at_done;
static mcp_call **g_fast_out;
static void fast_done(void *ud, const mcp_call_outcome *o) {
  fixture *f = ud;
  f->m.done++;
  f->m.st = o->status;
  g_fast_out_at_done = *g_fast_out;
  assert_null(o->envelope);
  g_fast_value = json_incref(o->value);
  g_fast_rid_seen = o->request_id;
  g_fast_us = o->duration_us;
  json_t *e = mcp_call_outcome_envelope(o);
  assert_non_null(e);
  assert_true(mcp_call_outcome_envelope(o) == e); /* built once */
  g_fast_env = json_deep_copy(e);
  assert_string_equal(json_string_value(json_object_get(e, "request_id")), o->request_id);
}

static void test_dispatch_inline_sync_done_in_start(void **state) {
  fixture *f = *state;
  json_t *args = json_pack("{s:s}", "text", "hi");
  mcp_call *c = NULL;
  g_fast_out = &c;
  mcp_call_request rq = {.tool = "echo_inline", .args = args, .auth = &k_local, .sync_done = true,
                         .lazy_envelope = true, .args_shared = true};
  assert_int_equal(mcp_dispatch_start(f->m.d, &rq, fast_done, f, &c), 0);
  assert_int_equal(f->m.done, 1); /* answered before start returned */
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_non_null(g_fast_out_at_done); /* *out was set before done ran */
  assert_true(json_object_get(g_fast_value, "echo") == args); /* parsed once, never copied */
  assert_int_equal(json_real_value(json_object_get(g_fast_env, "duration_ms")) * 1000.0 + 0.5 >= (double)g_fast_us, 1);
  assert_string_equal(json_string_value(json_object_get(g_fast_env, "status")), "success");
  assert_true(json_equal(json_object_get(g_fast_env, "result"), g_fast_value));
  json_decref(g_fast_value);
  json_decref(g_fast_env);
  /* a tool whose schema fills defaults gets a copy: the caller's tree is not changed */
  c = NULL;
  assert_int_equal(mcp_dispatch_start(f->m.d, &(mcp_call_request){.tool = "inline_defaults", .args = args,
                                                                   .auth = &k_local, .sync_done = true,
                                                                   .lazy_envelope = true, .args_shared = true},
                                      fast_done, f, &c), 0);
  assert_int_equal(f->m.done, 2);
  assert_null(json_object_get(args, "d"));
  assert_string_equal(json_string_value(json_object_get(json_object_get(g_fast_value, "echo"), "d")), "x");
  json_decref(g_fast_value);
  json_decref(g_fast_env);
  /* without sync_done an inline call still completes from a later loop turn */
  start(f, "echo_inline", "{}", &k_local, false);
  assert_int_equal(f->m.done, 2);
  wait_done(f, 3);
  json_decref(args);
}

/* A tool that declares itself inline but blocks is caught: mcp_call_sleep on the loop returns
 * at once (the loop never blocks), and the tool runs on the worker pool from its next call on,
 * where the sleep is real. */
static void test_dispatch_inline_tool_that_blocks_is_moved_off_the_loop(void **state) {
  fixture *f = *state;
  int64_t t0 = clock_mono_ms();
  start(f, "inline_sleeper", "{}", &k_local, false);
  assert_true(atomic_load(&g_ran_on_loop));
  assert_true(atomic_load(&g_slept_ms) < 250); /* refused: the loop did not sleep 300 ms */
  assert_true(clock_mono_ms() - t0 < 250);
  wait_done(f, 1);
  start(f, "inline_sleeper", "{}", &k_local, false);
  wait_done(f, 2);
  assert_false(atomic_load(&g_ran_on_loop));
  assert_true(atomic_load(&g_slept_ms) >= 250);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
}

/* An inline tool that runs over MCP_DISPATCH_INLINE_BUDGET_US three times in a row leaves the
 * loop; a run within the budget ends a run of strikes (one slow run may be the machine). */
static void test_dispatch_inline_tool_over_budget_is_moved_off_the_loop(void **state) {
  fixture *f = *state;
  const char *slow = "{\"spin_ms\":15}", *fast = "{\"spin_ms\":0}";
  const char *seq[] = {slow, slow, fast, slow, slow};
  for (int i = 0; i < 5; i++) {
    start(f, "inline_spinner", seq[i], &k_local, false);
    assert_true(atomic_load(&g_ran_on_loop));
    wait_done(f, i + 1);
  }
  start(f, "inline_spinner", slow, &k_local, false); /* the third in a row */
  assert_true(atomic_load(&g_ran_on_loop));
  wait_done(f, 6);
  start(f, "inline_spinner", fast, &k_local, false);
  wait_done(f, 7);
  assert_false(atomic_load(&g_ran_on_loop)); /* on the pool now */
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
}

/* Deadlines and cancellation hold for inline calls: a handler that finishes after its deadline
 * is a timeout (sync or not), and a cancel that arrives before the completion is delivered wins. */
static void test_dispatch_inline_deadline_and_cancel(void **state) {
  fixture *f = *state;
  json_t *args = json_pack("{s:i}", "spin_ms", 30);
  mcp_call_request rq = {.tool = "inline_spinner", .args = args, .auth = &k_local, .timeout_ms = 10,
                         .sync_done = true};
  assert_int_equal(mcp_dispatch_start(f->m.d, &rq, on_done, f, NULL), 0);
  assert_int_equal(f->m.done, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_TIMEOUT);
  json_decref(args);
  mcp_call *c = start(f, "echo_inline", "{}", &k_local, false); /* ran; its completion is queued */
  mcp_dispatch_cancel(c);
  wait_done(f, 2);
  assert_int_equal(f->m.st, MCP_DISPATCH_CANCELLED);
}

/* ---- the access log (log.access) ---- */

/* Runs `ok` successful inline calls and one unknown tool on a dispatcher with access log mode
 * `mode` at log level `level`; returns the log lines written (a JSON array of objects). Checks
 * on the way that nothing is written before the loop turn ends (the lines of one turn go out
 * together). */
static json_t *access_run(mcp_access_log mode, log_level level, int ok) {
  ts_mcp m = {0};
  ts_mcp_open(&m);
  ts_mcp_add_tools(&m, k_tools, sizeof k_tools / sizeof k_tools[0]);
  mcp_dispatcher_opts o = {.threads = 1, .max_threads = 2, .access_log = mode};
  ts_mcp_start_opts(&m, &o);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  log_level old = log_get_level();
  log_set_fd(fds[1]);
  log_set_level(level);
  for (int i = 0; i < ok; i++)
    assert_int_equal(mcp_dispatch_start(m.d, &(mcp_call_request){.tool = "echo_inline", .auth = &k_local, .sync_done = true,
                                                                  .lazy_envelope = true},
                                        ts_mcp_on_done, &m, NULL),
                     0);
  assert_int_equal(m.done, ok);
  struct pollfd pf = {.fd = fds[0], .events = POLLIN};
  assert_int_equal(poll(&pf, 1, 0), 0); /* not yet: written after this loop turn's poll phase */
  assert_int_equal(mcp_dispatch_start(m.d, &(mcp_call_request){.tool = "no_such_tool", .auth = &k_local},
                                      ts_mcp_on_done, &m, NULL),
                   0);
  TS_LOOP_UNTIL(&m.loop, TS_DEADLINE_MS, m.done == ok + 1);
  uv_run(&m.loop, UV_RUN_NOWAIT);
  ts_mcp_close(&m);
  log_set_fd(2);
  log_set_level(old);
  close(fds[1]);
  json_t *lines = json_array();
  char buf[65536];
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  close(fds[0]);
  buf[n] = 0;
  for (char *line = buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
    *nl = 0;
    json_t *j = json_loads(line, 0, NULL);
    assert_non_null(j);
    if (strcmp(sget(j, "msg"), "dispatch") == 0) json_array_append(lines, j);
    json_decref(j);
  }
  return lines;
}

static void test_dispatch_access_log_on_off_debug(void **state) {
  (void)state;
  /* on: every call at info, with the fields and a duration to the microsecond */
  json_t *l = access_run(MCP_ACCESS_LOG_ON, LOG_INFO, 3);
  assert_int_equal(json_array_size(l), 4);
  for (size_t i = 0; i < 3; i++) {
    json_t *e = json_array_get(l, i);
    assert_string_equal(sget(e, "level"), "info");
    assert_string_equal(sget(e, "tool"), "echo_inline");
    assert_string_equal(sget(e, "status"), "success");
    assert_int_equal(strlen(sget(e, "request_id")), 36);
    assert_true(json_is_real(json_object_get(e, "duration_ms")));
    double ms = json_real_value(json_object_get(e, "duration_ms"));
    assert_true(ms >= 0 && fabs(ms * 1000.0 - round(ms * 1000.0)) < 1e-6); /* whole µs */
    assert_non_null(sget(e, "ts"));
  }
  assert_string_equal(sget(json_array_get(l, 3), "status"), "unknown_tool");
  json_decref(l);
  /* off: nothing, whatever the level */
  l = access_run(MCP_ACCESS_LOG_OFF, LOG_DEBUG, 3);
  assert_int_equal(json_array_size(l), 0);
  json_decref(l);
  /* debug (the default): at level info only the failure shows; at debug everything */
  l = access_run(MCP_ACCESS_LOG_DEBUG, LOG_INFO, 3);
  assert_int_equal(json_array_size(l), 1);
  assert_string_equal(sget(json_array_get(l, 0), "status"), "unknown_tool");
  json_decref(l);
  l = access_run(MCP_ACCESS_LOG_DEBUG, LOG_DEBUG, 2);
  assert_int_equal(json_array_size(l), 3);
  assert_string_equal(sget(json_array_get(l, 0), "level"), "debug");
  json_decref(l);
}

static void test_dispatch_invalid_arguments_is_tool_error(void **state) {
  fixture *f = *state;
  start(f, "echo", "{\"n\":\"one\"}", &k_local, false);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_INVALID_ARGUMENTS);
  assert_string_equal(sget(f->m.env, "status"), "error");
  assert_string_equal(sget(f->m.env, "error_type"), "invalid_arguments");
  assert_non_null(strstr(sget(f->m.env, "error"), "n"));
  json_t *r = mcp_dispatch_call_result(f->m.env);
  assert_true(json_is_true(json_object_get(r, "isError")));
  json_decref(r);
}

static void test_dispatch_tool_error_keeps_extra_fields(void **state) {
  fixture *f = *state;
  start(f, "fail", NULL, &k_local, false);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(sget(f->m.env, "error"), "it broke");
  assert_int_equal(json_integer_value(json_object_get(f->m.env, "code_hint")), 7);
}

static void test_dispatch_unknown_tool(void **state) {
  fixture *f = *state;
  start(f, "nope", NULL, &k_local, false);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_UNKNOWN_TOOL);
}

static void test_dispatch_remote_caller_cannot_see_local_tool(void **state) {
  fixture *f = *state;
  start(f, "fail", NULL, &(mcp_auth){.kind = AUTH_KIND_PEER, .peer_id = "p", .scopes = AUTH_SCOPES_ALL_INIT}, true);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_UNKNOWN_TOOL);
  start(f, "echo", "{\"n\":2}", &k_peer, true);
  wait_done(f, 2);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
}

static void test_dispatch_missing_scope_is_forbidden(void **state) {
  fixture *f = *state;
  start(f, "admin_only", "{}", &k_peer, true);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_FORBIDDEN);
}

static void test_dispatch_deadline_answers_while_handler_still_runs(void **state) {
  fixture *f = *state;
  atomic_store(&g_saw_cancel, false);
  atomic_store(&g_stubborn_end_ms, 0);
  atomic_store(&g_stubborn_release, false);
  start(f, "stubborn", NULL, &k_local, false);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_TIMEOUT);
  assert_int_equal(atomic_load(&g_stubborn_end_ms), 0); /* answered while the handler still runs */
  /* let the handler finish: it must observe that it was cancelled, and it ended after the
   * caller already had its answer */
  atomic_store(&g_stubborn_release, true);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&g_stubborn_end_ms) > 0);
  uv_run(&f->m.loop, UV_RUN_NOWAIT);
  assert_true(f->done_at_ms <= atomic_load(&g_stubborn_end_ms));
  assert_true(atomic_load(&g_saw_cancel));
  assert_int_equal(f->m.done, 1); /* exactly one completion */
}

static void test_dispatch_per_call_timeout_override(void **state) {
  fixture *f = *state;
  json_t *args = json_pack("{s:i}", "ms", 5000);
  mcp_call_request rq = {.tool = "sleepy", .args = args, .auth = &k_local, .timeout_ms = 30};
  assert_int_equal(mcp_dispatch_start(f->m.d, &rq, on_done, f, NULL), 0);
  json_decref(args);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_TIMEOUT);
}

static void test_dispatch_cancel_reaches_sleeping_handler(void **state) {
  fixture *f = *state;
  atomic_store(&g_saw_cancel, false);
  atomic_store(&g_sleepy_started, false);
  mcp_call *c = start(f, "sleepy", "{\"ms\":60000}", &k_local, false);
  int64_t t0 = clock_mono_ms();
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&g_sleepy_started));
  uv_run(&f->m.loop, UV_RUN_NOWAIT);
  mcp_dispatch_cancel(c);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_CANCELLED);
  assert_true(clock_mono_ms() - t0 < 30000); /* not the handler's 60 s sleep */
  assert_true(atomic_load(&g_saw_cancel));
}

static void test_dispatch_detach_never_calls_back(void **state) {
  fixture *f = *state;
  mcp_call *c = start(f, "sleepy", "{\"ms\":10000}", &k_local, false);
  mcp_dispatch_detach(c);
  mcp_call *c2 = start(f, "nope", NULL, &k_local, false); /* sits on the ready list */
  mcp_dispatch_detach(c2);
  assert_int_equal(mcp_dispatcher_inflight(f->m.d), 0);
  for (int i = 0; i < 50; i++) uv_run(&f->m.loop, UV_RUN_NOWAIT), usleep(1000);
  assert_int_equal(f->m.done, 0);
}

static void test_dispatch_progress_precedes_completion_and_increases(void **state) {
  fixture *f = *state;
  start(f, "progress", NULL, &k_local, false);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  char *s = json_dumps(f->events, JSON_COMPACT);
  assert_string_equal(s, "[\"progress:1/3:tok-1\",\"progress:2/3:tok-1\",\"progress:3/3:tok-1\","
                         "\"log:info:hello from the tool\",\"done\"]");
  free(s);
  json_t *r = mcp_dispatch_call_result(f->m.env);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "result")), 42);
  json_decref(r);
}

static void test_dispatch_invoke_unknown_category_lists_categories(void **state) {
  fixture *f = *state;
  start(f, "parent", "{\"category\":\"nope\",\"tool\":\"echo\"}", &k_local, false);
  wait_done(f, 1);
  json_t *inner = json_object_get(f->m.env, "result");
  assert_string_equal(sget(inner, "error_type"), "unknown_category");
  json_t *cats = json_object_get(inner, "available_categories");
  assert_int_equal(json_array_size(cats), 3); /* meta, slow, test */
  assert_string_equal(json_string_value(json_array_get(cats, 0)), "meta");
  assert_non_null(sget(inner, "request_id"));
}

static void test_dispatch_invoke_unknown_tool_lists_category_tools(void **state) {
  fixture *f = *state;
  start(f, "parent", "{\"category\":\"slow\",\"tool\":\"echo\"}", &k_local, false);
  wait_done(f, 1);
  json_t *inner = json_object_get(f->m.env, "result");
  assert_string_equal(sget(inner, "error_type"), "unknown_tool");
  char *s = json_dumps(json_object_get(inner, "available_tools"), JSON_COMPACT);
  assert_string_equal(s, "[\"sleepy\",\"stubborn\"]");
  free(s);
}

static void test_dispatch_invoke_runs_child_with_validation(void **state) {
  fixture *f = *state;
  start(f, "parent", "{\"category\":\"test\",\"tool\":\"echo\",\"params\":{\"n\":5}}", &k_local, false);
  wait_done(f, 1);
  json_t *inner = json_object_get(f->m.env, "result");
  assert_string_equal(sget(inner, "status"), "success");
  assert_string_equal(sget(json_object_get(json_object_get(inner, "result"), "echo"), "d"), "x");
  start(f, "parent", "{\"category\":\"test\",\"tool\":\"echo\",\"params\":{}}", &k_local, false);
  wait_done(f, 2);
  inner = json_object_get(f->m.env, "result");
  assert_string_equal(sget(inner, "error_type"), "invalid_arguments");
}

static void test_dispatch_invoke_remote_parent_cannot_reach_local_tool(void **state) {
  fixture *f = *state;
  start(f, "parent", "{\"category\":\"test\",\"tool\":\"fail\"}", &k_peer, true);
  wait_done(f, 1);
  json_t *inner = json_object_get(f->m.env, "result");
  assert_string_equal(sget(inner, "error_type"), "unknown_tool");
  char *s = json_dumps(json_object_get(inner, "available_tools"), JSON_COMPACT);
  assert_string_equal(s, "[\"admin_only\",\"echo\",\"echo_inline\",\"whoami\"]");
  free(s);
}

static void test_dispatch_invoke_nesting_is_bounded(void **state) {
  fixture *f = *state;
  /* parent → parent → … : each level passes the same request one level down */
  json_t *args = json_pack("{s:s, s:s, s:{s:s, s:s}}", "category", "meta", "tool", "parent", "params", "category",
                           "test", "tool", "echo_inline");
  for (int i = 0; i < 12; i++) args = json_pack("{s:s, s:s, s:o}", "category", "meta", "tool", "parent", "params", args);
  mcp_call_request rq = {.tool = "parent", .args = args, .auth = &k_local};
  assert_int_equal(mcp_dispatch_start(f->m.d, &rq, on_done, f, NULL), 0);
  json_decref(args);
  wait_done(f, 1);
  char *s = json_dumps(f->m.env, JSON_COMPACT);
  assert_non_null(strstr(s, "dispatch nested too deeply"));
  free(s);
}

static void test_dispatch_copies_the_callers_auth(void **state) {
  fixture *f = *state;
  mcp_auth *a = calloc(1, sizeof *a);
  auth_ctx_init(a, AUTH_KIND_PEER);
  assert_int_equal(auth_ctx_set_peer_id(a, "12D3KooWcopy"), 0);
  a->scopes = AUTH_SCOPES(AUTH_TOOL_CALL);
  mcp_call_request rq = {.tool = "whoami", .auth = a, .remote = true};
  assert_int_equal(mcp_dispatch_start(f->m.d, &rq, on_done, f, NULL), 0);
  memset(a, 'X', sizeof *a); /* the transport's stream (and its auth) goes away */
  free(a);
  wait_done(f, 1);
  json_t *res = json_object_get(f->m.env, "result");
  assert_string_equal(sget(res, "peer"), "12D3KooWcopy");
  assert_int_equal(json_integer_value(json_object_get(res, "scopes")), AUTH_TOOL_CALL);
}

static void test_dispatch_free_with_calls_in_flight_detaches_them(void **state) {
  fixture *f = *state;
  start(f, "sleepy", "{\"ms\":10000}", &k_local, false);
  start(f, "nope", NULL, &k_local, false);
  /* teardown frees the dispatcher now: no callback may run afterwards, nothing may leak */
  assert_int_equal(mcp_dispatcher_inflight(f->m.d), 2);
  mcp_dispatcher_free(f->m.d);
  uv_run(&f->m.loop, UV_RUN_DEFAULT);
  assert_int_equal(f->m.done, 0);
  mcp_dispatcher_opts o = {.threads = 1};
  assert_int_equal(mcp_dispatcher_new(&f->m.loop, f->m.reg, &o, &f->m.d), 0); /* for teardown */
}

static void test_dispatch_shutdown_refuses_new_calls(void **state) {
  fixture *f = *state;
  mcp_dispatcher_shutdown(f->m.d);
  start(f, "echo", "{\"n\":1}", &k_local, false);
  wait_done(f, 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_SHUTTING_DOWN);
}

static void test_registry_rejects_bad_names_and_duplicates(void **state) {
  (void)state;
  mcp_registry *r = mcp_registry_new();
  mcp_tool_def d = {.name = "ok.name-1_x", .category = "c", .fn = echo_fn};
  assert_int_equal(mcp_registry_add(r, &d), 0);
  assert_int_equal(mcp_registry_add(r, &d), -EEXIST);
  d.name = "bad name";
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  d.name = "";
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  char longname[130];
  memset(longname, 'a', 129);
  longname[129] = 0;
  d.name = longname;
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  longname[128] = 0;
  assert_int_equal(mcp_registry_add(r, &d), 0);
  d.name = "badschema";
  d.input_schema = "{not json";
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  d.input_schema = "{\"type\":\"string\"}";
  assert_int_equal(mcp_registry_add(r, &d), -EINVAL);
  assert_int_equal(mcp_registry_count(r), 2);
  mcp_registry_free(r);
}

static void test_registry_lists_by_category_then_name(void **state) {
  (void)state;
  mcp_registry *r = mcp_registry_new();
  const char *names[][2] = {{"zeta", "b"}, {"alpha", "b"}, {"mid", "a"}, {"beta", "c"}};
  for (int i = 0; i < 4; i++) {
    mcp_tool_def d = {.name = names[i][0], .category = names[i][1], .fn = echo_fn};
    assert_int_equal(mcp_registry_add(r, &d), 0);
  }
  const char *want[] = {"mid", "alpha", "zeta", "beta"};
  for (size_t i = 0; i < 4; i++) assert_string_equal(mcp_tool_def_of(mcp_registry_at(r, i))->name, want[i]);
  assert_int_equal(mcp_registry_category_count(r), 3);
  assert_int_equal(mcp_registry_category_size(r, "b"), 2);
  assert_non_null(mcp_registry_find(r, "beta"));
  assert_null(mcp_registry_find(r, "gamma"));
  json_t *j = mcp_tool_to_json(mcp_registry_find(r, "mid"));
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "inputSchema"), "type")), "object");
  json_decref(j);
  mcp_registry_free(r);
}

static int g_ud_frees;
static void count_free(void *ud) { g_ud_frees++; }

static void test_registry_remove_keeps_shared_ud_until_free(void **state) {
  (void)state;
  mcp_registry *r = mcp_registry_new();
  mcp_tool_def a = {.name = "owner", .category = "x", .fn = echo_fn, .ud = &g_ud_frees, .ud_free = count_free};
  mcp_tool_def b = {.name = "sharer", .category = "x", .fn = echo_fn, .ud = &g_ud_frees};
  mcp_tool_def c = {.name = "alone", .category = "y", .fn = echo_fn};
  assert_int_equal(mcp_registry_add(r, &a), 0);
  assert_int_equal(mcp_registry_add(r, &b), 0);
  assert_int_equal(mcp_registry_add(r, &c), 0);
  g_ud_frees = 0;
  assert_int_equal(mcp_registry_remove(r, "owner"), 0);
  assert_int_equal(mcp_registry_remove(r, "owner"), -ENOENT);
  assert_int_equal(g_ud_frees, 0); /* "sharer" still uses the ud */
  assert_null(mcp_registry_find(r, "owner"));
  assert_int_equal(mcp_registry_count(r), 2);
  assert_int_equal(mcp_registry_category_size(r, "x"), 1);
  assert_int_equal(mcp_registry_remove(r, "alone"), 0);
  assert_int_equal(mcp_registry_category_count(r), 1); /* empty category y is gone */
  mcp_registry_free(r);
  assert_int_equal(g_ud_frees, 1);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define T_INLINE \
  T(test_dispatch_inline_sync_done_in_start), T(test_dispatch_inline_tool_that_blocks_is_moved_off_the_loop), \
      T(test_dispatch_inline_tool_over_budget_is_moved_off_the_loop), T(test_dispatch_inline_deadline_and_cancel)
  const struct CMUnitTest tests[] = {
      T(test_dispatch_success_envelope_has_normalized_fields),
      T(test_dispatch_inline_tool_completes_asynchronously),
      T_INLINE,
      cmocka_unit_test(test_dispatch_access_log_on_off_debug),
      T(test_dispatch_invalid_arguments_is_tool_error),
      T(test_dispatch_tool_error_keeps_extra_fields),
      T(test_dispatch_unknown_tool),
      T(test_dispatch_remote_caller_cannot_see_local_tool),
      T(test_dispatch_missing_scope_is_forbidden),
      T(test_dispatch_deadline_answers_while_handler_still_runs),
      T(test_dispatch_per_call_timeout_override),
      T(test_dispatch_cancel_reaches_sleeping_handler),
      T(test_dispatch_detach_never_calls_back),
      T(test_dispatch_progress_precedes_completion_and_increases),
      T(test_dispatch_invoke_unknown_category_lists_categories),
      T(test_dispatch_invoke_unknown_tool_lists_category_tools),
      T(test_dispatch_invoke_runs_child_with_validation),
      T(test_dispatch_invoke_remote_parent_cannot_reach_local_tool),
      T(test_dispatch_invoke_nesting_is_bounded),
      T(test_dispatch_copies_the_callers_auth),
      T(test_dispatch_free_with_calls_in_flight_detaches_them),
      T(test_dispatch_shutdown_refuses_new_calls),
      cmocka_unit_test(test_registry_rejects_bad_names_and_duplicates),
      cmocka_unit_test(test_registry_lists_by_category_then_name),
      cmocka_unit_test(test_registry_remove_keeps_shared_ud_until_free),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

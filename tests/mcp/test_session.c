/* Tests for mcp/session: JSON-RPC framing errors, era detection (2026-07-28 versioning.mdx),
 * legacy lifecycle, modern per-request _meta, pagination, concurrent calls matched by id,
 * cancellation and progress. Messages in, messages out; no I/O. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mcp/session.h"
#include "support/mcpfix.h"
#include "support/wait.h"

static atomic_bool g_cancel_seen;
static atomic_bool g_sleep_started;

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}
static mcp_tool_status sleep_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  int64_t ms = json_integer_value(json_object_get(args, "ms"));
  atomic_store(&g_sleep_started, true);
  mcp_call_progress(call, 0.5, 1, "half");
  mcp_call_log(call, "debug", "a debug line");
  mcp_call_log(call, "warning", "a warning line");
  bool c = mcp_call_sleep(call, ms);
  atomic_store(&g_cancel_seen, c);
  *result = json_pack("{s:I}", "slept", (json_int_t)ms);
  return MCP_TOOL_OK;
}

static const mcp_tool_def k_tools[] = {
    {.name = "a1", .category = "a", .fn = echo_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "a2", .category = "a", .fn = echo_fn},
    {.name = "b1", .category = "b", .fn = echo_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "b2", .category = "b", .fn = echo_fn, .flags = MCP_TOOL_HIDDEN},
    {.name = "c1", .category = "c", .fn = echo_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":0}},\"required\":[\"n\"]}"},
    {.name = "sleep", .category = "c", .fn = sleep_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\"}}}"},
};

typedef struct {
  ts_mcp m; /* loop, registry, dispatcher */
  mcp_session *s;
  json_t *out; /* messages sent */
  int idle_calls;
} fx;

static const mcp_auth k_auth = AUTH_CTX_LOCAL_INIT;

static void on_idle(void *ud) { ((fx *)ud)->idle_calls++; }

static int make(void **state, bool remote) {
  fx *f = calloc(1, sizeof *f);
  ts_mcp_open(&f->m);
  ts_mcp_add_tools(&f->m, k_tools, sizeof k_tools / sizeof k_tools[0]);
  ts_mcp_start(&f->m, 2, 0);
  f->out = json_array();
  mcp_session_opts so = {.dispatcher = f->m.d, .auth = &k_auth, .remote = remote, .page_size = 2, .send = ts_capture,
                         .send_ud = f->out, .max_message_bytes = 4096};
  assert_int_equal(mcp_session_new(&so, &f->s), 0);
  mcp_session_on_idle(f->s, on_idle, f);
  *state = f;
  return 0;
}
static int setup(void **state) { return make(state, false); }
static int setup_remote(void **state) { return make(state, true); }

static int teardown(void **state) {
  fx *f = *state;
  mcp_session_free(f->s);
  ts_mcp_close(&f->m);
  json_decref(f->out);
  free(f);
  return 0;
}

static void feed(fx *f, const char *text) { mcp_session_feed(f->s, text, strlen(text)); }

/* The last message sent, or fails. */
static json_t *last(fx *f) { return ts_last(f->out); }
static json_int_t err_code(json_t *m) { return ts_error_code(m); }
static json_t *result(json_t *m) { return json_object_get(m, "result"); }

static void run_until_out(fx *f, size_t n) {
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, json_array_size(f->out) >= n);
}

#define MODERN_META "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}"

static void test_session_bad_json_is_parse_error_with_null_id(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":");
  assert_int_equal(err_code(last(f)), -32700);
  assert_true(json_is_null(json_object_get(last(f), "id")));
  feed(f, "\x01\xff\xfe garbage");
  assert_int_equal(err_code(last(f)), -32700);
}

static void test_session_non_object_and_batch_are_invalid_request(void **state) {
  fx *f = *state;
  feed(f, "42");
  assert_int_equal(err_code(last(f)), -32600);
  feed(f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
  assert_int_equal(err_code(last(f)), -32600);
  assert_true(json_is_null(json_object_get(last(f), "id")));
}

static void test_session_wrong_jsonrpc_version_keeps_id(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"ping\"}");
  assert_int_equal(err_code(last(f)), -32600);
  assert_int_equal(json_integer_value(json_object_get(last(f), "id")), 7);
}

static void test_session_bad_id_types_are_invalid_request(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}");
  assert_int_equal(err_code(last(f)), -32600);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}");
  assert_int_equal(err_code(last(f)), -32600);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}");
  assert_int_equal(err_code(last(f)), -32600);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":5}");
  assert_int_equal(err_code(last(f)), -32600);
  assert_int_equal(json_array_size(f->out), 4);
}

static void test_session_unknown_method_is_method_not_found(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"no/such\"}");
  assert_int_equal(err_code(last(f)), -32601);
  assert_string_equal(json_string_value(json_object_get(last(f), "id")), "x");
}

static void test_session_params_must_be_object(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":[1]}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":5}}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"arguments\":\"x\"}}");
  assert_int_equal(err_code(last(f)), -32602);
}

static void test_session_notifications_get_no_response(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\",\"params\":{}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":99}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}"); /* a stray response */
  assert_int_equal(json_array_size(f->out), 0);
}

static void test_session_oversize_and_deep_messages_rejected(void **state) {
  fx *f = *state;
  char *big = malloc(5000);
  memset(big, ' ', 4999);
  big[4999] = 0;
  feed(f, big);
  free(big);
  assert_int_equal(err_code(last(f)), -32600);
  char deep[600];
  for (int i = 0; i < 300; i++) deep[i] = '[';
  for (int i = 0; i < 299; i++) deep[300 + i] = ']';
  deep[599] = 0;
  feed(f, deep);
  assert_int_equal(err_code(last(f)), -32600);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}}");
  assert_non_null(result(last(f))); /* brackets inside strings do not count */
}

static void test_session_initialize_negotiates_legacy_version(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
  json_t *r = result(last(f));
  assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")), "2025-06-18");
  assert_true(json_is_object(json_object_get(json_object_get(r, "capabilities"), "tools")));
  assert_true(json_is_false(json_object_get(json_object_get(json_object_get(r, "capabilities"), "tools"), "listChanged")));
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")), "peermcp");
  assert_null(json_object_get(r, "resultType")); /* legacy results carry no modern fields */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"1999-01-01\",\"capabilities\":{}}}");
  assert_string_equal(json_string_value(json_object_get(result(last(f)), "protocolVersion")), "2025-11-25");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2024-11-05\",\"capabilities\":{}}}");
  r = result(last(f));
  assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")), "2024-11-05");
  assert_null(json_object_get(json_object_get(r, "capabilities"), "completions")); /* added in 2025-03-26 */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\",\"params\":{}}");
  assert_int_equal(err_code(last(f)), -32602);
}

static void test_session_ping_is_legacy_only(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
  assert_true(json_is_object(result(last(f))));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"params\":{" MODERN_META "}}");
  assert_int_equal(err_code(last(f)), -32601);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"," MODERN_META "}}");
  assert_int_equal(err_code(last(f)), -32601);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"info\"," MODERN_META "}}");
  assert_int_equal(err_code(last(f)), -32601);
}

static void test_session_modern_request_without_initialize(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{" MODERN_META "}}");
  json_t *r = result(last(f));
  assert_non_null(r);
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
  assert_string_equal(json_string_value(json_array_get(json_object_get(r, "supportedVersions"), 0)), "2026-07-28");
  assert_true(json_is_integer(json_object_get(r, "ttlMs")));
  assert_string_equal(json_string_value(json_object_get(r, "cacheScope")), "public");
  assert_non_null(json_object_get(json_object_get(r, "_meta"), "io.modelcontextprotocol/serverInfo"));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{" MODERN_META "}}");
  r = result(last(f));
  assert_int_equal(json_array_size(json_object_get(r, "tools")), 2);
  assert_true(json_is_integer(json_object_get(r, "ttlMs")));
}

static void test_session_modern_missing_capabilities_is_invalid_params(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}");
  assert_int_equal(err_code(last(f)), -32602);
}

static void test_session_unsupported_version_lists_supported(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"server/discover\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"1900-01-01\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}");
  json_t *m = last(f);
  assert_int_equal(err_code(m), -32022);
  json_t *data = json_object_get(json_object_get(m, "error"), "data");
  assert_string_equal(json_string_value(json_object_get(data, "requested")), "1900-01-01");
  assert_string_equal(json_string_value(json_array_get(json_object_get(data, "supported"), 0)), "2026-07-28");
  assert_int_equal(json_integer_value(json_object_get(m, "id")), 9);
}

static void test_session_legacy_discover_without_meta_is_not_modern(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\"}");
  assert_int_equal(err_code(last(f)), -32602);
}

static void test_session_tools_list_paginates_with_opaque_cursor(void **state) {
  fx *f = *state;
  /* visible: a1 a2 b1 c1 sleep (b2 is hidden), page size 2 */
  const char *want[] = {"a1", "a2", "b1", "c1", "sleep"};
  size_t got = 0;
  char req[256];
  const char *cursor = NULL;
  char curbuf[64];
  for (int page = 0; page < 5; page++) {
    if (cursor) snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/list\",\"params\":{\"cursor\":\"%s\"}}", page, cursor);
    else snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/list\"}", page);
    feed(f, req);
    json_t *r = result(last(f));
    assert_non_null(r);
    json_t *tools = json_object_get(r, "tools");
    assert_true(json_array_size(tools) <= 2);
    for (size_t i = 0; i < json_array_size(tools); i++)
      assert_string_equal(json_string_value(json_object_get(json_array_get(tools, i), "name")), want[got++]);
    json_t *nc = json_object_get(r, "nextCursor");
    if (!nc) break;
    snprintf(curbuf, sizeof curbuf, "%s", json_string_value(nc));
    cursor = curbuf;
  }
  assert_int_equal(got, 5);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":50,\"method\":\"tools/list\",\"params\":{\"cursor\":\"bogus\"}}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":51,\"method\":\"tools/list\",\"params\":{\"cursor\":\"t999\"}}");
  assert_int_equal(err_code(last(f)), -32602);
}

static void test_session_remote_session_lists_only_remote_tools(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" MODERN_META "}}");
  json_t *r = result(last(f));
  json_t *tools = json_object_get(r, "tools");
  assert_int_equal(json_array_size(tools), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 1), "name")), "b1");
  assert_null(json_object_get(r, "nextCursor"));
  assert_string_equal(json_string_value(json_object_get(r, "cacheScope")), "private");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"a2\"}}");
  run_until_out(f, 2);
  assert_int_equal(err_code(last(f)), -32602); /* a local-only tool does not exist for a peer */
}

static void test_session_tools_call_answers_with_call_tool_result(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"c\",\"method\":\"tools/call\",\"params\":{\"name\":\"c1\",\"arguments\":{\"n\":3}}}");
  assert_int_equal(json_array_size(f->out), 0); /* asynchronous */
  run_until_out(f, 1);
  json_t *m = last(f);
  assert_string_equal(json_string_value(json_object_get(m, "id")), "c");
  json_t *r = result(m);
  assert_true(json_is_false(json_object_get(r, "isError")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(r, "structuredContent"), "echo"), "n")), 3);
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "type")), "text");
  assert_int_equal(f->idle_calls, 1);
}

static void test_session_validation_failure_is_tool_error_not_protocol_error(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"c1\",\"arguments\":{\"n\":-1}}}");
  run_until_out(f, 1);
  json_t *r = result(last(f));
  assert_non_null(r);
  assert_true(json_is_true(json_object_get(r, "isError")));
}

static void test_session_unknown_tool_is_invalid_params(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}");
  run_until_out(f, 1);
  assert_int_equal(err_code(last(f)), -32602);
}

static void test_session_modern_tools_call_result_has_result_type(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"arguments\":{}," MODERN_META "}}");
  run_until_out(f, 1);
  json_t *r = result(last(f));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
  assert_null(json_object_get(r, "ttlMs")); /* tools/call results are not cacheable */
}

static void test_session_concurrent_calls_are_matched_by_id(void **state) {
  fx *f = *state;
  /* 3 s against 10 ms: the short call answers first even on a loaded machine */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":3000}}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":10}}}");
  assert_int_equal(mcp_session_inflight(f->s), 2);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"}}");
  assert_int_equal(err_code(last(f)), -32600); /* duplicate id while in flight */
  json_array_clear(f->out);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, mcp_session_inflight(f->s) == 0);
  /* responses only (the tool also logs a warning line per call): the short call answers first */
  json_int_t ids[2] = {0, 0};
  int k = 0;
  for (size_t i = 0; i < json_array_size(f->out); i++) {
    json_t *id = json_object_get(json_array_get(f->out, i), "id");
    if (id && k < 2) ids[k++] = json_integer_value(id);
  }
  assert_int_equal(k, 2);
  assert_int_equal(ids[0], 2);
  assert_int_equal(ids[1], 1);
  assert_int_equal(f->idle_calls, 1);
}

static void test_session_cancelled_request_gets_no_response(void **state) {
  fx *f = *state;
  atomic_store(&g_cancel_seen, false);
  atomic_store(&g_sleep_started, false);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"slow\",\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":20000}}}");
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&g_sleep_started));
  uv_run(&f->m.loop, UV_RUN_NOWAIT);
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"slow\",\"reason\":\"user\"}}");
  json_array_clear(f->out);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, mcp_session_inflight(f->s) == 0);
  assert_int_equal(mcp_session_inflight(f->s), 0);
  assert_true(atomic_load(&g_cancel_seen));
  for (size_t i = 0; i < json_array_size(f->out); i++) /* nothing about that request after the cancel */
    assert_null(json_object_get(json_array_get(f->out, i), "id"));
}

static void test_session_progress_echoes_token_and_log_respects_level(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":1},\"_meta\":{\"progressToken\":\"pt-9\"}}}");
  run_until_out(f, 3);
  json_t *p = json_array_get(f->out, 0);
  assert_string_equal(json_string_value(json_object_get(p, "method")), "notifications/progress");
  assert_string_equal(json_string_value(json_object_get(json_object_get(p, "params"), "progressToken")), "pt-9");
  json_t *l = json_array_get(f->out, 1); /* default legacy level info: the debug line is dropped */
  assert_string_equal(json_string_value(json_object_get(l, "method")), "notifications/message");
  assert_string_equal(json_string_value(json_object_get(json_object_get(l, "params"), "level")), "warning");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(f->out, 2), "id")), 1);
  assert_int_equal(json_array_size(f->out), 3);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"loud\"}}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"error\"}}");
  json_array_clear(f->out);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":1}}}");
  run_until_out(f, 1);
  assert_int_equal(json_array_size(f->out), 1); /* no progress token, no warning at level error */
}

static void test_session_modern_logs_only_when_request_sets_level(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":1}," MODERN_META "}}");
  run_until_out(f, 1);
  assert_int_equal(json_array_size(f->out), 1);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":1},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{},\"io.modelcontextprotocol/logLevel\":\"debug\"}}}");
  run_until_out(f, 4);
  assert_int_equal(json_array_size(f->out), 4); /* debug + warning + response */
}

static void test_session_empty_lists_and_not_found(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}");
  assert_int_equal(json_array_size(json_object_get(result(last(f)), "resources")), 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/templates/list\"}");
  assert_int_equal(json_array_size(json_object_get(result(last(f)), "resourceTemplates")), 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/list\"}");
  assert_int_equal(json_array_size(json_object_get(result(last(f)), "prompts")), 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":{\"uri\":\"file:///x\"}}");
  assert_int_equal(err_code(last(f)), -32002);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{\"uri\":\"file:///x\"," MODERN_META "}}");
  assert_int_equal(err_code(last(f)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/prompt\",\"name\":\"p\"},\"argument\":{\"name\":\"a\",\"value\":\"\"}}}");
  assert_int_equal(json_array_size(json_object_get(json_object_get(result(last(f)), "completion"), "values")), 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"completion/complete\",\"params\":{}}");
  assert_int_equal(err_code(last(f)), -32602);
}

static void test_session_free_with_calls_in_flight(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":20000}}}");
  mcp_session_free(f->s); /* detaches: the handler is cancelled, nothing is sent */
  f->s = NULL;
  mcp_session_opts so = {.dispatcher = f->m.d, .auth = &k_auth, .send = ts_capture, .send_ud = f->out};
  assert_int_equal(mcp_session_new(&so, &f->s), 0);
  for (int i = 0; i < 50; i++) uv_run(&f->m.loop, UV_RUN_NOWAIT), usleep(1000);
  assert_int_equal(json_array_size(f->out), 0);
}

static void test_session_subscriptions_listen_acknowledges_and_ends(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"L1\",\"method\":\"subscriptions/listen\",\"params\":{\"notifications\":{\"toolsListChanged\":true}," MODERN_META "}}");
  json_t *ack = last(f);
  assert_string_equal(json_string_value(json_object_get(ack, "method")), "notifications/subscriptions/acknowledged");
  assert_null(json_object_get(ack, "id"));
  json_t *p = json_object_get(ack, "params");
  assert_string_equal(json_string_value(json_object_get(json_object_get(p, "_meta"), "io.modelcontextprotocol/subscriptionId")), "L1");
  assert_int_equal(json_object_size(json_object_get(p, "notifications")), 0); /* nothing ever changes */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"L1\",\"method\":\"subscriptions/listen\",\"params\":{" MODERN_META "}}");
  assert_int_equal(err_code(last(f)), -32600); /* id in use */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"L2\",\"method\":\"subscriptions/listen\",\"params\":{" MODERN_META "}}");
  assert_int_equal(mcp_session_subscriptions(f->s), 2);
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"L2\"}}");
  assert_int_equal(mcp_session_subscriptions(f->s), 1);
  size_t before = json_array_size(f->out);
  mcp_session_end_subscriptions(f->s);
  assert_int_equal(json_array_size(f->out), before + 1); /* one graceful completion, for L1 */
  json_t *r = last(f);
  assert_string_equal(json_string_value(json_object_get(r, "id")), "L1");
  assert_string_equal(json_string_value(json_object_get(result(r), "resultType")), "complete");
  assert_string_equal(json_string_value(json_object_get(json_object_get(result(r), "_meta"), "io.modelcontextprotocol/subscriptionId")), "L1");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"subscriptions/listen\"}");
  assert_int_equal(err_code(last(f)), -32601); /* legacy era: no such method */
}

static void test_session_inflight_cap_refuses_extra_calls(void **state) {
  fx *f = *state;
  mcp_session_free(f->s);
  mcp_session_opts so = {.dispatcher = f->m.d, .auth = &k_auth, .send = ts_capture, .send_ud = f->out, .max_inflight = 1};
  assert_int_equal(mcp_session_new(&so, &f->s), 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":200}}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"}}");
  assert_int_equal(err_code(last(f)), -32603);
  assert_int_equal(json_integer_value(json_object_get(last(f), "id")), 2);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, mcp_session_inflight(f->s) == 0);
}

static bool hook(void *ud, mcp_session *s, const char *method, json_t *id, json_t *params) {
  if (strcmp(method, "p2p/hello") == 0) {
    if (id) mcp_session_reply_result(s, id, json_pack("{s:s}", "hello", "peer"));
    return true;
  }
  if (strcmp(method, "tools/call") == 0 && !json_object_get(params, "token")) {
    if (id) mcp_session_reply_error(s, id, -32001, "unauthorized", NULL);
    return true;
  }
  return false;
}

static void test_session_hook_takes_over_methods_first(void **state) {
  fx *f = *state;
  mcp_session_free(f->s);
  mcp_session_opts so = {.dispatcher = f->m.d, .auth = &k_auth, .send = ts_capture, .send_ud = f->out, .hook = hook};
  assert_int_equal(mcp_session_new(&so, &f->s), 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p2p/hello\"}");
  assert_string_equal(json_string_value(json_object_get(result(last(f)), "hello")), "peer");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"}}");
  assert_int_equal(err_code(last(f)), -32001);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}"); /* not hooked: the session answers */
  assert_true(json_is_object(result(last(f))));
}

/* ---- extension points (tool_filter, init_decorator, result_shaper, init_required,
 * init_default_version, quiet_logs, busy code, mcp_session_start_call) ---- */

static bool only_b(void *ud, const mcp_tool *t, const mcp_auth *auth) {
  (void)ud;
  (void)auth;
  return strcmp(mcp_tool_def_of(t)->category, "b") == 0;
}
static void decorate(void *ud, mcp_session *s, const json_t *params, json_t *res) {
  (void)ud;
  (void)s;
  json_object_set_new(res, "ok", json_true());
  json_object_set_new(res, "echoed", json_incref(json_object_get((json_t *)params, "x") ? json_object_get((json_t *)params, "x") : json_null()));
}
static bool shape(void *ud, const mcp_call_outcome *o, mcp_session_shaped *out) {
  (void)ud;
  if (o->status == MCP_DISPATCH_UNKNOWN_TOOL) {
    out->code = -32002;
    out->message = "unknown_tool";
    return true;
  }
  if (o->tool && strcmp(mcp_tool_def_of(o->tool)->name, "a1") == 0) {
    out->result = json_pack("{s:O}", "content", json_object_get(mcp_call_outcome_envelope(o), "result"));
    return true;
  }
  return false;
}
static bool start_hook(void *ud, mcp_session *s, const char *method, json_t *id, json_t *params) {
  (void)ud;
  if (strcmp(method, "x/call") != 0) return false;
  static const mcp_auth none = {.kind = AUTH_KIND_NONE};
  mcp_session_call c = {.tool = json_string_value(json_object_get(params, "name")),
                        .args = json_object_get(params, "arguments"), .auth = &none, .timeout_ms = 5000};
  assert_int_equal(mcp_session_start_call(s, &c), 0);
  return true;
}

static void remake(fx *f, mcp_session_opts *so) {
  mcp_session_free(f->s);
  so->dispatcher = f->m.d;
  so->auth = &k_auth;
  so->send = ts_capture;
  so->send_ud = f->out;
  assert_int_equal(mcp_session_new(so, &f->s), 0);
}

static void test_session_tool_filter_hides_tools_from_list(void **state) {
  fx *f = *state;
  mcp_session_opts so = {.tool_filter = only_b};
  remake(f, &so);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
  json_t *tools = json_object_get(result(last(f)), "tools");
  assert_int_equal(json_array_size(tools), 1); /* b1 (b2 is hidden) */
  assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")), "b1");
}

static void test_session_init_required_refuses_then_ends(void **state) {
  fx *f = *state;
  mcp_session_opts so = {.init_required = true, .init_required_code = -32000, .init_required_message = "init_required"};
  remake(f, &so);
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"); /* notifications: ignored */
  assert_int_equal(json_array_size(f->out), 0);
  assert_false(mcp_session_ended(f->s));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
  assert_int_equal(err_code(last(f)), -32000);
  assert_string_equal(json_string_value(json_object_get(json_object_get(last(f), "error"), "message")), "init_required");
  assert_true(mcp_session_ended(f->s));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"}}");
  assert_int_equal(json_array_size(f->out), 1); /* ignored once ended */
}

static void test_session_init_required_lets_modern_requests_through(void **state) {
  fx *f = *state;
  mcp_session_opts so = {.init_required = true};
  remake(f, &so);
  assert_false(mcp_session_ready(f->s));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{" MODERN_META "}}");
  assert_non_null(json_object_get(result(last(f)), "supportedVersions"));
  assert_false(mcp_session_ended(f->s));
  assert_true(mcp_session_ready(f->s));
}

static void test_session_init_decorator_and_default_version(void **state) {
  fx *f = *state;
  mcp_session_opts so = {.init_required = true, .init_decorator = decorate, .init_default_version = "2024-11-05"};
  remake(f, &so);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"x\":5}}");
  json_t *r = result(last(f));
  assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")), "2024-11-05");
  assert_true(json_is_true(json_object_get(r, "ok")));
  assert_int_equal(json_integer_value(json_object_get(r, "echoed")), 5);
  assert_true(mcp_session_ready(f->s));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\"}}");
  assert_string_equal(json_string_value(json_object_get(result(last(f)), "protocolVersion")), "2025-06-18");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
  assert_true(json_is_object(result(last(f))));
}

static void test_session_result_shaper_replaces_answers(void **state) {
  fx *f = *state;
  mcp_session_opts so = {.result_shaper = shape};
  remake(f, &so);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"arguments\":{\"k\":1}}}");
  run_until_out(f, 1);
  json_t *content = json_object_get(result(last(f)), "content");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(content, "echo"), "k")), 1);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}");
  run_until_out(f, 2);
  assert_int_equal(err_code(last(f)), -32002);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"b1\"}}");
  run_until_out(f, 3);
  assert_true(json_is_array(json_object_get(result(last(f)), "content"))); /* standard shape */
}

static void test_session_hook_starts_tracked_call_with_its_auth(void **state) {
  fx *f = *state;
  mcp_session_opts so = {.hook = start_hook};
  remake(f, &so);
  /* a tool needing no scope runs with the hook's (empty) auth */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x/call\",\"params\":{\"name\":\"b1\",\"arguments\":{\"v\":2}}}");
  assert_int_equal(mcp_session_inflight(f->s), 1);
  /* the same id while in flight is refused like any tools/call */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x/call\",\"params\":{\"name\":\"b1\"}}");
  assert_int_equal(err_code(last(f)), -32600);
  run_until_out(f, 2);
  assert_int_equal(mcp_session_inflight(f->s), 0);
  json_t *sc = json_object_get(result(last(f)), "structuredContent");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(sc, "echo"), "v")), 2);
  /* outside a hook there is no request to answer */
  mcp_session_call c = {.tool = "b1"};
  assert_int_equal(mcp_session_start_call(f->s, &c), -EINVAL);
}

static void test_session_busy_code_and_quiet_logs(void **state) {
  fx *f = *state;
  mcp_session_opts so = {.max_inflight = 1, .busy_code = -32010, .busy_message = "too_many_requests", .quiet_logs = true};
  remake(f, &so);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":50}}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":1}}}");
  assert_int_equal(err_code(last(f)), -32010);
  run_until_out(f, 3);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, !mcp_session_inflight(f->s));
  /* the tool logged a warning, but no logging/setLevel came: only the response went out */
  size_t n = json_array_size(f->out);
  for (size_t i = 0; i < n; i++) assert_null(json_object_get(json_array_get(f->out, i), "method"));
  assert_int_equal(json_integer_value(json_object_get(last(f), "id")), 2);
}

int main(void) {
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_session_bad_json_is_parse_error_with_null_id),
      T(test_session_non_object_and_batch_are_invalid_request),
      T(test_session_wrong_jsonrpc_version_keeps_id),
      T(test_session_bad_id_types_are_invalid_request),
      T(test_session_unknown_method_is_method_not_found),
      T(test_session_params_must_be_object),
      T(test_session_notifications_get_no_response),
      T(test_session_oversize_and_deep_messages_rejected),
      T(test_session_initialize_negotiates_legacy_version),
      T(test_session_ping_is_legacy_only),
      T(test_session_modern_request_without_initialize),
      T(test_session_modern_missing_capabilities_is_invalid_params),
      T(test_session_unsupported_version_lists_supported),
      T(test_session_legacy_discover_without_meta_is_not_modern),
      T(test_session_tools_list_paginates_with_opaque_cursor),
      cmocka_unit_test_setup_teardown(test_session_remote_session_lists_only_remote_tools, setup_remote, teardown),
      T(test_session_tools_call_answers_with_call_tool_result),
      T(test_session_validation_failure_is_tool_error_not_protocol_error),
      T(test_session_unknown_tool_is_invalid_params),
      T(test_session_modern_tools_call_result_has_result_type),
      T(test_session_concurrent_calls_are_matched_by_id),
      T(test_session_cancelled_request_gets_no_response),
      T(test_session_progress_echoes_token_and_log_respects_level),
      T(test_session_modern_logs_only_when_request_sets_level),
      T(test_session_empty_lists_and_not_found),
      T(test_session_free_with_calls_in_flight),
      T(test_session_hook_takes_over_methods_first),
      T(test_session_inflight_cap_refuses_extra_calls),
      T(test_session_subscriptions_listen_acknowledges_and_ends),
      T(test_session_tool_filter_hides_tools_from_list),
      T(test_session_init_required_refuses_then_ends),
      T(test_session_init_required_lets_modern_requests_through),
      T(test_session_init_decorator_and_default_version),
      T(test_session_result_shaper_replaces_answers),
      T(test_session_hook_starts_tracked_call_with_its_auth),
      T(test_session_busy_code_and_quiet_logs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

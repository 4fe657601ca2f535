/* Tests for mcp/session's per-request routing (opts.route, for Streamable HTTP): which request
 * each outgoing message belongs to, the error code of a response, the header/_meta version rules
 * of mcp_session_feed_json_versioned (-32020, -32602, -32022), mcp_session_msg_route and
 * mcp_session_cancel_request. Messages in, messages out; no I/O. */
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

static atomic_bool g_started;

static mcp_tool_status slow_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)ud;
  mcp_call_progress(call, 1, 2, "half");
  mcp_call_log(call, "warning", "careful");
  atomic_store(&g_started, true);
  bool c = mcp_call_sleep(call, json_integer_value(json_object_get(args, "ms")));
  *result = json_pack("{s:b}", "cancelled", c);
  return MCP_TOOL_OK;
}

static const mcp_tool_def k_tools[] = {
    {.name = "slow", .category = "t", .fn = slow_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\"}}}"},
};

/* One routed message as the transport saw it. */
typedef struct {
  mcp_out_kind kind;
  json_t *rid; /* copy of request_id or NULL */
  int code;
  bool modern;
  json_t *msg;
} routed;

typedef struct {
  ts_mcp m; /* loop, registry, dispatcher */
  mcp_session *s;
  routed out[64];
  size_t n;
} fx;

static const mcp_auth k_auth = AUTH_CTX_LOCAL_INIT;

static void route(void *ud, const mcp_session_out *o, char *msg, size_t len) {
  fx *f = ud;
  assert_true(f->n < 64);
  routed *r = &f->out[f->n++];
  r->kind = o->kind;
  r->rid = o->request_id ? json_deep_copy(o->request_id) : NULL;
  r->code = o->error_code;
  r->modern = o->modern;
  r->msg = json_loadb(msg, len, 0, NULL);
  assert_non_null(r->msg);
  free(msg);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  ts_mcp_open(&f->m);
  ts_mcp_add_tools(&f->m, k_tools, 1);
  ts_mcp_start(&f->m, 2, 0);
  mcp_session_opts so = {.dispatcher = f->m.d, .auth = &k_auth, .route = route, .send_ud = f};
  assert_int_equal(mcp_session_new(&so, &f->s), 0);
  *state = f;
  return 0;
}

static void clear(fx *f) {
  for (size_t i = 0; i < f->n; i++) {
    json_decref(f->out[i].rid);
    json_decref(f->out[i].msg);
  }
  f->n = 0;
}

static int teardown(void **state) {
  fx *f = *state;
  mcp_session_free(f->s);
  ts_mcp_close(&f->m);
  clear(f);
  free(f);
  return 0;
}

static void feed_v(fx *f, const char *text, const char *hdr) {
  json_t *m = json_loads(text, 0, NULL);
  assert_non_null(m);
  mcp_session_feed_json_versioned(f->s, m, hdr);
  json_decref(m);
}

static routed *last(fx *f) {
  assert_true(f->n > 0);
  return &f->out[f->n - 1];
}

#define META(v) "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"" v "\",\"io.modelcontextprotocol/clientCapabilities\":{}}"

static void test_route_send_or_route_is_required(void **state) {
  fx *f = *state;
  mcp_session *s = NULL;
  mcp_session_opts so = {.dispatcher = f->m.d, .auth = &k_auth};
  assert_int_equal(mcp_session_new(&so, &s), -EINVAL);
}

static void test_route_response_carries_request_id_and_code(void **state) {
  fx *f = *state;
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/list\",\"params\":{" META("2026-07-28") "}}", NULL);
  routed *r = last(f);
  assert_int_equal(r->kind, MCP_OUT_RESPONSE);
  assert_string_equal(json_string_value(r->rid), "a");
  assert_int_equal(r->code, 0);
  assert_true(r->modern);
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":{" META("2026-07-28") "}}", NULL);
  r = last(f);
  assert_int_equal(r->code, -32601); /* removed in 2026-07-28: HTTP 404 */
  assert_int_equal(json_integer_value(r->rid), 7);
  assert_int_equal(json_integer_value(json_object_get(r->msg, "id")), 7);
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}", NULL);
  assert_int_equal(last(f)->code, 0);
  assert_false(last(f)->modern);
}

static void test_route_unreadable_message_error_has_no_request(void **state) {
  fx *f = *state;
  mcp_session_feed(f->s, "{bad", 4);
  assert_int_equal(last(f)->kind, MCP_OUT_RESPONSE);
  assert_null(last(f)->rid);
  assert_int_equal(last(f)->code, -32700);
}

static void test_route_progress_and_logs_belong_to_their_request(void **state) {
  fx *f = *state;
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"}}", NULL);
  clear(f);
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\",\"arguments\":{\"ms\":1},"
            "\"_meta\":{\"progressToken\":\"p\"}}}", NULL);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, f->n >= 3);
  assert_int_equal(f->n, 3);
  assert_int_equal(f->out[0].kind, MCP_OUT_NOTIFICATION);
  assert_int_equal(json_integer_value(f->out[0].rid), 5);
  assert_int_equal(f->out[1].kind, MCP_OUT_NOTIFICATION);
  assert_int_equal(json_integer_value(f->out[1].rid), 5);
  assert_int_equal(f->out[2].kind, MCP_OUT_RESPONSE);
  assert_int_equal(json_integer_value(f->out[2].rid), 5);
}

static void test_route_listen_stream_messages_carry_listen_id(void **state) {
  fx *f = *state;
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":\"L\",\"method\":\"subscriptions/listen\",\"params\":{" META("2026-07-28")
            ",\"notifications\":{}}}", "2026-07-28");
  assert_int_equal(last(f)->kind, MCP_OUT_NOTIFICATION);
  assert_string_equal(json_string_value(last(f)->rid), "L");
  mcp_session_end_subscriptions(f->s);
  assert_int_equal(last(f)->kind, MCP_OUT_RESPONSE);
  assert_string_equal(json_string_value(last(f)->rid), "L");
  assert_true(last(f)->modern);
}

static void test_route_header_mismatch_is_32020(void **state) {
  fx *f = *state;
  /* header says 2026-07-28, _meta another version: HeaderMismatch with the id echoed */
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":302,\"method\":\"server/discover\",\"params\":{" META("v999.0.0") "}}", "2026-07-28");
  assert_int_equal(last(f)->code, -32020);
  assert_int_equal(json_integer_value(json_object_get(last(f)->msg, "id")), 302);
  /* and the other way round */
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":303,\"method\":\"server/discover\",\"params\":{" META("2026-07-28") "}}", "2025-11-25");
  assert_int_equal(last(f)->code, -32020);
  /* both the same unknown version: UnsupportedProtocolVersion, not a mismatch */
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":301,\"method\":\"server/discover\",\"params\":{" META("v999.0.0") "}}", "v999.0.0");
  assert_int_equal(last(f)->code, -32022);
  /* two legacy versions are not checked */
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":304,\"method\":\"tools/list\",\"params\":{" META("2025-06-18") "}}", "2025-11-25");
  assert_int_equal(last(f)->code, 0);
}

static void test_route_modern_header_without_meta_version_is_invalid_params(void **state) {
  fx *f = *state;
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":101,\"method\":\"server/discover\",\"params\":{}}", "2026-07-28");
  assert_int_equal(last(f)->code, -32602);
  assert_int_equal(json_integer_value(json_object_get(last(f)->msg, "id")), 101);
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":104,\"method\":\"server/discover\",\"params\":{\"_meta\":{"
            "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}", "2026-07-28");
  assert_int_equal(last(f)->code, -32602);
  /* clientInfo is optional */
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":105,\"method\":\"server/discover\",\"params\":{" META("2026-07-28") "}}", "2026-07-28");
  assert_int_equal(last(f)->code, 0);
  /* a notification is not checked */
  size_t n = f->n;
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1}}", "2026-07-28");
  assert_int_equal(f->n, n);
}

static void test_route_msg_route_names(void **state) {
  (void)state;
  const char *m, *n;
  json_t *j = json_loads("{\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}", 0, NULL);
  mcp_session_msg_route(j, &m, &n);
  assert_string_equal(m, "tools/call");
  assert_string_equal(n, "x");
  json_decref(j);
  j = json_loads("{\"method\":\"resources/read\",\"params\":{\"uri\":\"test://a\"}}", 0, NULL);
  mcp_session_msg_route(j, &m, &n);
  assert_string_equal(n, "test://a");
  json_decref(j);
  j = json_loads("{\"method\":\"tools/list\",\"params\":{\"name\":\"x\"}}", 0, NULL);
  mcp_session_msg_route(j, &m, &n);
  assert_null(n);
  json_decref(j);
  j = json_loads("{\"id\":1,\"result\":{}}", 0, NULL);
  mcp_session_msg_route(j, &m, &n);
  assert_null(m);
  json_decref(j);
}

static void test_route_cancel_request_stops_the_call_without_response(void **state) {
  fx *f = *state;
  atomic_store(&g_started, false);
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\",\"arguments\":{\"ms\":20000},"
            META("2026-07-28") "}}", "2026-07-28");
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&g_started));
  json_t *id = json_integer(9);
  mcp_session_cancel_request(f->s, id);
  json_decref(id);
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, mcp_session_inflight(f->s) == 0);
  assert_int_equal(mcp_session_inflight(f->s), 0);
  for (size_t i = 0; i < f->n; i++) assert_int_not_equal(f->out[i].kind, MCP_OUT_RESPONSE);
  /* a listen stream ends silently too */
  feed_v(f, "{\"jsonrpc\":\"2.0\",\"id\":\"L\",\"method\":\"subscriptions/listen\",\"params\":{" META("2026-07-28")
            ",\"notifications\":{}}}", NULL);
  assert_int_equal(mcp_session_subscriptions(f->s), 1);
  id = json_string("L");
  mcp_session_cancel_request(f->s, id);
  json_decref(id);
  assert_int_equal(mcp_session_subscriptions(f->s), 0);
}

int main(void) {
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_route_send_or_route_is_required),
      T(test_route_response_carries_request_id_and_code),
      T(test_route_unreadable_message_error_has_no_request),
      T(test_route_progress_and_logs_belong_to_their_request),
      T(test_route_listen_stream_messages_carry_listen_id),
      T(test_route_header_mismatch_is_32020),
      T(test_route_modern_header_without_meta_version_is_invalid_params),
      T(test_route_msg_route_names),
      T(test_route_cancel_request_stops_the_call_without_response),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

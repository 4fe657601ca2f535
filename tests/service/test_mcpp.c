/* test_mcpp.c — the /mcp+p2p/1.0.0 server session (p2p_tasks_spec.md §2.3), driven with bytes
 * and a fake call hook. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mcp/registry.h"
#include "service/frame.h"
#include "service/mcpp.h"

#define OUR_ID "12D3KooWServerServerServerServerServerServerServerSe"
#define PEER_T "12D3KooWTrustedTrustedTrustedTrustedTrustedTrustedTr"
#define PEER_X "12D3KooWStrangerStrangerStrangerStrangerStrangerStr"

typedef struct started {
  uint64_t call_no;
  char tool[64];
  json_t *args;
  unsigned scopes;
  int cancelled, detached;
} started;

typedef struct fx {
  mcp_registry *reg;
  svc_auth_policy *pol;
  svc_mcpp_env env;
  started calls[16];
  size_t n_calls;
  int fail_start;
} fx;

static int hook_start(void *ud, svc_mcpp_conn *c, uint64_t call_no, const char *tool, json_t *args,
                      const mcp_auth *auth, uint32_t timeout_ms, void **handle) {
  fx *f = ud;
  (void)c;
  (void)timeout_ms;
  if (f->fail_start) return -ENOMEM;
  started *s = &f->calls[f->n_calls++];
  memset(s, 0, sizeof *s);
  s->call_no = call_no;
  snprintf(s->tool, sizeof s->tool, "%s", tool);
  s->args = json_incref(args);
  s->scopes = auth->scopes;
  *handle = s;
  return 0;
}
static void hook_cancel(void *ud, void *h) {
  (void)ud;
  ((started *)h)->cancelled++;
}
static void hook_detach(void *ud, void *h) {
  (void)ud;
  ((started *)h)->detached++;
}

static mcp_tool_status noop_tool(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call;
  (void)args;
  (void)ud;
  *result = json_object();
  return MCP_TOOL_OK;
}

static void add_tool(mcp_registry *r, const char *name, unsigned flags, unsigned scopes) {
  mcp_tool_def d = {0};
  d.name = name;
  d.category = "test";
  d.description = "t";
  d.flags = flags;
  d.scopes = scopes;
  d.fn = noop_tool;
  assert_int_equal(mcp_registry_add(r, &d), 0);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->reg = mcp_registry_new();
  add_tool(f->reg, "zeta_remote", MCP_TOOL_REMOTE, 0);
  add_tool(f->reg, "alpha_remote", MCP_TOOL_REMOTE, MCP_SCOPE_CACHE_READ);
  add_tool(f->reg, "local_only", 0, 0);
  add_tool(f->reg, "hidden_remote", MCP_TOOL_REMOTE | MCP_TOOL_HIDDEN, 0);
  add_tool(f->reg, "admin_remote", MCP_TOOL_REMOTE, MCP_SCOPE_ADMIN);
  add_tool(f->reg, SVC_TASKQ_TOOL, MCP_TOOL_REMOTE, 0);
  f->pol = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_add_peer(f->pol, PEER_T, 0), 0);
  assert_int_equal(svc_auth_policy_set_token(f->pol, "tok", 0), 0);
  f->env.peer_id = OUR_ID;
  f->env.policy = f->pol;
  f->env.registry = f->reg;
  f->env.call_start = hook_start;
  f->env.call_cancel = hook_cancel;
  f->env.call_detach = hook_detach;
  f->env.hooks_ud = f;
  f->env.rate_capacity = 1000;
  f->env.rate_refill_per_s = 1000;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  for (size_t i = 0; i < f->n_calls; i++) json_decref(f->calls[i].args);
  mcp_registry_free(f->reg);
  svc_auth_policy_free(f->pol);
  free(f);
  return 0;
}

/* Feeds one frame carrying `text`. */
static int send_text(svc_mcpp_conn *c, const char *text) {
  size_t n = strlen(text);
  uint8_t *w = malloc(n + 4);
  w[0] = (uint8_t)(n >> 24);
  w[1] = (uint8_t)(n >> 16);
  w[2] = (uint8_t)(n >> 8);
  w[3] = (uint8_t)n;
  memcpy(w + 4, text, n);
  int rc = svc_mcpp_feed(c, w, n + 4);
  free(w);
  return rc;
}

/* Pops the next reply frame from the conn's output (NULL when none). */
static json_t *next_reply(svc_mcpp_conn *c) {
  buf *out = svc_mcpp_output(c);
  if (buf_len(out) == 0) return NULL;
  svc_frame_dec d;
  svc_frame_dec_init(&d, 64u << 20);
  size_t used;
  svc_frame_status st = svc_frame_dec_feed(&d, buf_ptr(out), buf_len(out), &used);
  assert_int_equal(st, SVC_FRAME_READY);
  buf_consume(out, used);
  json_t *v = svc_frame_dec_take(&d);
  svc_frame_dec_free(&d);
  return v;
}

static int err_code(const json_t *r) { return (int)json_integer_value(json_object_get(json_object_get(r, "error"), "code")); }
static const char *err_msg(const json_t *r) {
  return json_string_value(json_object_get(json_object_get(r, "error"), "message"));
}

#define INIT "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"clientInfo\":{\"name\":\"t\"},\"profiles\":[\"mcp++/p2p-transport\"]}}"

static svc_mcpp_conn *open_init(fx *f, const char *peer) {
  svc_mcpp_conn *c = svc_mcpp_new(&f->env, peer, NULL);
  assert_int_equal(send_text(c, INIT), 0);
  json_t *r = next_reply(c);
  assert_non_null(json_object_get(r, "result"));
  json_decref(r);
  return c;
}

static void test_first_request_must_be_initialize(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = svc_mcpp_new(&f->env, PEER_T, NULL);
  /* a notification before initialize is ignored, even an initialize notification */
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"method\":\"initialize\"}"), 0);
  assert_null(next_reply(c));
  assert_false(svc_mcpp_initialized(c));
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}"), -EPIPE);
  json_t *r = next_reply(c);
  assert_int_equal(err_code(r), -32000);
  assert_string_equal(err_msg(r), "init_required");
  json_decref(r);
  assert_true(svc_mcpp_done(c));
  svc_mcpp_free(c);
}

static void test_initialize_result_keys(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = svc_mcpp_new(&f->env, PEER_T, NULL);
  assert_int_equal(send_text(c, INIT), 0);
  json_t *r = next_reply(c);
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
  json_t *res = json_object_get(r, "result");
  assert_true(json_is_true(json_object_get(res, "ok")));
  assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), "2024-11-05");
  assert_non_null(json_object_get(json_object_get(res, "serverInfo"), "name"));
  assert_non_null(json_object_get(json_object_get(res, "capabilities"), "tools"));
  assert_string_equal(json_string_value(json_object_get(res, "transport")), "/mcp+p2p/1.0.0");
  assert_string_equal(json_string_value(json_object_get(json_object_get(res, "server"), "peer_id")), OUR_ID);
  assert_string_equal(json_string_value(json_object_get(res, "active_profile")), "mcp++/p2p-transport");
  json_t *lim = json_object_get(res, "limits");
  assert_int_equal(json_integer_value(json_object_get(lim, "max_frame_bytes")), 1048576);
  assert_non_null(json_object_get(lim, "max_frames"));
  assert_non_null(json_object_get(lim, "rate_capacity"));
  assert_non_null(json_object_get(lim, "rate_refill_per_sec"));
  json_decref(r);
  assert_true(svc_mcpp_initialized(c));
  svc_mcpp_free(c);
}

static void test_oversized_frame_gets_32003_then_close(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = svc_mcpp_new(&f->env, PEER_T, NULL);
  uint8_t hdr[4] = {0x00, 0x10, 0x00, 0x01}; /* 1 MiB + 1 */
  assert_int_equal(svc_mcpp_feed(c, hdr, 4), -EPIPE);
  json_t *r = next_reply(c);
  assert_int_equal(err_code(r), -32003);
  assert_string_equal(err_msg(r), "frame_too_large");
  assert_true(json_is_null(json_object_get(r, "id")));
  json_decref(r);
  assert_true(svc_mcpp_done(c));
  svc_mcpp_free(c);
}

static void test_junk_frames(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = svc_mcpp_new(&f->env, PEER_T, NULL);
  assert_int_equal(send_text(c, "\x01\x02garbage"), -EPIPE);
  json_t *r = next_reply(c);
  assert_string_equal(err_msg(r), "invalid_json");
  json_decref(r);
  svc_mcpp_free(c);
  c = svc_mcpp_new(&f->env, PEER_T, NULL);
  assert_int_equal(send_text(c, "\"a string\""), -EPIPE);
  r = next_reply(c);
  assert_string_equal(err_msg(r), "invalid_message");
  json_decref(r);
  svc_mcpp_free(c);
}

static void test_wrong_jsonrpc_version_closes(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = svc_mcpp_new(&f->env, PEER_T, NULL);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"1.0\",\"id\":3,\"method\":\"initialize\"}"), -EPIPE);
  json_t *r = next_reply(c);
  assert_int_equal(err_code(r), -32600);
  assert_string_equal(err_msg(r), "invalid_jsonrpc");
  json_decref(r);
  svc_mcpp_free(c);
}

static void test_rate_limit_32010_then_close(void **state) {
  fx *f = *state;
  f->env.rate_capacity = 3;
  f->env.rate_refill_per_s = 0.001;
  svc_mcpp_conn *c = open_init(f, PEER_T);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"), 0);
  json_decref(next_reply(c));
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}"), 0);
  json_decref(next_reply(c));
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}"), -EPIPE);
  json_t *r = next_reply(c);
  assert_int_equal(err_code(r), -32010);
  assert_string_equal(err_msg(r), "rate_limited");
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 4);
  json_decref(r);
  assert_true(svc_mcpp_done(c));
  svc_mcpp_free(c);
}

static void test_shared_bucket_limits_across_streams(void **state) {
  fx *f = *state;
  svc_rate bucket;
  svc_rate_init(&bucket, 2, 0.001);
  svc_mcpp_conn *a = svc_mcpp_new(&f->env, PEER_T, &bucket);
  svc_mcpp_conn *b = svc_mcpp_new(&f->env, PEER_T, &bucket);
  assert_int_equal(send_text(a, INIT), 0);
  assert_int_equal(send_text(b, INIT), 0);
  assert_int_equal(send_text(b, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"), -EPIPE);
  svc_mcpp_free(a);
  svc_mcpp_free(b);
}

static void test_max_frames_per_stream(void **state) {
  fx *f = *state;
  f->env.max_frames = 2;
  svc_mcpp_conn *c = open_init(f, PEER_T);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"), 0);
  json_decref(next_reply(c));
  /* a notification past the cap just closes */
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"), -EPIPE);
  assert_null(next_reply(c));
  svc_mcpp_free(c);
}

static void test_unknown_method_keeps_stream(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_T);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"resources/list\"}"), 0);
  json_t *r = next_reply(c);
  assert_int_equal(err_code(r), -32601);
  json_decref(r);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"ping\"}"), 0);
  r = next_reply(c);
  assert_true(json_is_object(json_object_get(r, "result")));
  json_decref(r);
  assert_false(svc_mcpp_done(c));
  svc_mcpp_free(c);
}

static json_t *list_names(svc_mcpp_conn *c) {
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\"}"), 0);
  json_t *r = next_reply(c);
  json_t *tools = json_object_get(json_object_get(r, "result"), "tools");
  json_t *names = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) json_array_append(names, json_object_get(t, "name"));
  json_decref(r);
  return names;
}

static void test_tools_list_unauthorized_peer_sees_nothing(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_X);
  json_t *names = list_names(c);
  assert_int_equal(json_array_size(names), 0);
  json_decref(names);
  svc_mcpp_free(c);
}

static void test_tools_list_shows_remote_tools_the_peer_may_use(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_T);
  json_t *names = list_names(c);
  /* sorted by name; local_only, hidden_remote and admin_remote are not shown */
  assert_int_equal(json_array_size(names), 3);
  assert_string_equal(json_string_value(json_array_get(names, 0)), "alpha_remote");
  assert_string_equal(json_string_value(json_array_get(names, 1)), SVC_TASKQ_TOOL);
  assert_string_equal(json_string_value(json_array_get(names, 2)), "zeta_remote");
  json_decref(names);
  svc_mcpp_free(c);
}

static void test_token_in_initialize_opens_the_stream(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = svc_mcpp_new(&f->env, PEER_X, NULL);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"token\":\"tok\"}}"), 0);
  json_decref(next_reply(c));
  json_t *names = list_names(c);
  assert_int_equal(json_array_size(names), 3);
  json_decref(names);
  svc_mcpp_free(c);
}

static void test_tools_call_unauthorized_peer_refused(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_X);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"zeta_remote\"}}"), 0);
  json_t *r = next_reply(c);
  assert_int_equal(err_code(r), -32001);
  json_decref(r);
  assert_int_equal(f->n_calls, 0);
  svc_mcpp_free(c);
}

static void test_tools_call_bad_params(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_T);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":[1]}"), 0);
  json_t *r = next_reply(c);
  assert_int_equal(err_code(r), -32602);
  json_decref(r);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"arguments\":5}}"), 0);
  r = next_reply(c);
  assert_int_equal(err_code(r), -32602);
  json_decref(r);
  svc_mcpp_free(c);
}

static void test_tools_call_standard_result_and_concurrency(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_T);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":\"zeta_remote\",\"arguments\":{\"a\":1}}}"), 0);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools.call\",\"params\":{\"name\":\"zeta_remote\"}}"), 0);
  assert_int_equal(f->n_calls, 2);
  assert_int_equal(svc_mcpp_inflight(c), 2);
  assert_null(next_reply(c));
  assert_int_equal(json_integer_value(json_object_get(f->calls[0].args, "a")), 1);
  /* answer the second first */
  json_t *env = json_pack("{s:s, s:{s:i}, s:s, s:s, s:s, s:i}", "status", "success", "result", "n", 2, "request_id",
                          "r", "category", "test", "tool", "zeta_remote", "duration_ms", 1);
  svc_mcpp_call_done(c, f->calls[1].call_no, MCP_DISPATCH_OK, env);
  json_t *r = next_reply(c);
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 11);
  json_t *res = json_object_get(r, "result");
  assert_true(json_is_array(json_object_get(res, "content")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "structuredContent"), "n")), 2);
  assert_true(json_is_false(json_object_get(res, "isError")));
  json_decref(r);
  svc_mcpp_call_done(c, f->calls[0].call_no, MCP_DISPATCH_UNKNOWN_TOOL, env);
  r = next_reply(c);
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 10);
  assert_int_equal(err_code(r), -32002);
  json_decref(r);
  json_decref(env);
  assert_int_equal(svc_mcpp_inflight(c), 0);
  svc_mcpp_free(c);
}

static void test_task_queue_rpc_answers_content_and_uses_message_token(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_X);
  assert_int_equal(
      send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"task_queue.rpc\","
                   "\"arguments\":{\"op\":\"submit\",\"token\":\"tok\"}}}"),
      0);
  assert_int_equal(f->n_calls, 1);
  assert_string_equal(f->calls[0].tool, SVC_TASKQ_TOOL);
  assert_true(f->calls[0].scopes & MCP_SCOPE_TASK_SUBMIT); /* the message's token counted */
  json_t *env = json_pack("{s:s, s:{s:b, s:s, s:s}}", "status", "success", "result", "ok", 1, "task_id", "abc",
                          "peer_id", OUR_ID);
  svc_mcpp_call_done(c, f->calls[0].call_no, MCP_DISPATCH_OK, env);
  json_decref(env);
  json_t *r = next_reply(c);
  json_t *content = json_object_get(json_object_get(r, "result"), "content");
  assert_true(json_is_object(content));
  assert_string_equal(json_string_value(json_object_get(content, "task_id")), "abc");
  json_decref(r);
  /* an anonymous rpc call still goes through (status is open) with no scopes */
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"task_queue.rpc\","
                                "\"arguments\":{\"message\":{\"op\":\"status\"}}}}"),
                   0);
  assert_int_equal(f->calls[1].scopes, 0);
  svc_mcpp_free(c);
  assert_int_equal(f->calls[1].detached, 1);
}

static void test_cancel_notification_and_eof_drain(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_T);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"zeta_remote\"}}"), 0);
  assert_int_equal(send_text(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":5}}"), 0);
  assert_int_equal(f->calls[0].cancelled, 1);
  svc_mcpp_eof(c);
  assert_false(svc_mcpp_done(c)); /* still answering id 5 */
  json_t *env = json_pack("{s:s, s:s, s:s}", "status", "error", "error", "cancelled", "error_type", "cancelled");
  svc_mcpp_call_done(c, f->calls[0].call_no, MCP_DISPATCH_CANCELLED, env);
  json_decref(env);
  json_t *r = next_reply(c);
  assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "isError")));
  json_decref(r);
  assert_true(svc_mcpp_done(c));
  svc_mcpp_free(c);
}

static void test_duplicate_inflight_id_refused(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = open_init(f, PEER_T);
  const char *m = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"zeta_remote\"}}";
  assert_int_equal(send_text(c, m), 0);
  assert_int_equal(send_text(c, m), 0);
  json_t *r = next_reply(c);
  assert_int_equal(err_code(r), -32600);
  json_decref(r);
  assert_int_equal(f->n_calls, 1);
  svc_mcpp_free(c);
}

static void test_byte_by_byte_session(void **state) {
  fx *f = *state;
  svc_mcpp_conn *c = svc_mcpp_new(&f->env, PEER_T, NULL);
  size_t n = strlen(INIT);
  uint8_t *w = malloc(n + 4);
  w[0] = 0, w[1] = 0, w[2] = (uint8_t)(n >> 8), w[3] = (uint8_t)n;
  memcpy(w + 4, INIT, n);
  for (size_t i = 0; i < n + 4; i++) assert_int_equal(svc_mcpp_feed(c, w + i, 1), 0);
  free(w);
  json_t *r = next_reply(c);
  assert_non_null(json_object_get(r, "result"));
  json_decref(r);
  svc_mcpp_free(c);
}

static void test_rpc_message_unwrap(void **state) {
  (void)state;
  json_t *a = json_pack("{s:{s:s}}", "message", "op", "status");
  assert_string_equal(json_string_value(json_object_get(svc_mcpp_rpc_message(a), "op")), "status");
  json_decref(a);
  a = json_pack("{s:s, s:s}", "op", "get", "task_id", "x");
  assert_ptr_equal(svc_mcpp_rpc_message(a), a);
  json_decref(a);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_first_request_must_be_initialize),
      T(test_initialize_result_keys),
      T(test_oversized_frame_gets_32003_then_close),
      T(test_junk_frames),
      T(test_wrong_jsonrpc_version_closes),
      T(test_rate_limit_32010_then_close),
      T(test_shared_bucket_limits_across_streams),
      T(test_max_frames_per_stream),
      T(test_unknown_method_keeps_stream),
      T(test_tools_list_unauthorized_peer_sees_nothing),
      T(test_tools_list_shows_remote_tools_the_peer_may_use),
      T(test_token_in_initialize_opens_the_stream),
      T(test_tools_call_unauthorized_peer_refused),
      T(test_tools_call_bad_params),
      T(test_tools_call_standard_result_and_concurrency),
      T(test_task_queue_rpc_answers_content_and_uses_message_token),
      T(test_cancel_notification_and_eof_drain),
      T(test_duplicate_inflight_id_refused),
      T(test_byte_by_byte_session),
      cmocka_unit_test(test_rpc_message_unwrap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for the session core's prompts, resources, completion, resource subscriptions,
 * content-block results, outputSchema checks and client input (2026-07-28 InputRequiredResult
 * with requestState; 2025-11-25 server-to-client requests), in both eras. Messages in, routed
 * messages out; no I/O. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mcp/content.h"
#include "mcp/prompts.h"
#include "mcp/reqctx.h"
#include "mcp/resources.h"
#include "mcp/session.h"
#include "support/mcpfix.h"
#include "support/wait.h"

/* ---------- fixtures: tools ---------- */

static mcp_tool_status t_ask_name(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "name", "elicitation/create",
                          json_pack("{s:s, s:{s:s, s:{}}}", "message", "name?", "requestedSchema", "type", "object",
                                    "properties"),
                          &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) {
    *result = json_string("no elicitation");
    return MCP_TOOL_ERROR;
  }
  *result = json_pack("{s:O}", "got", json_object_get(ans, "content"));
  return MCP_TOOL_OK;
}

/* Two rounds: a, then b. */
static mcp_tool_status t_two_rounds(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx *c = mcp_call_reqctx(call);
  json_t *a, *b;
  int rc = mcp_reqctx_ask(c, "a", "roots/list", NULL, &a);
  if (rc) return rc == -EAGAIN ? MCP_TOOL_OK : MCP_TOOL_ERROR;
  rc = mcp_reqctx_ask(c, "b", "sampling/createMessage", json_pack("{s:[], s:i}", "messages", "maxTokens", 1), &b);
  if (rc) return rc == -EAGAIN ? MCP_TOOL_OK : MCP_TOOL_ERROR;
  *result = json_pack("{s:O, s:O}", "a", a, "b", b);
  return MCP_TOOL_OK;
}

/* Asks a new key every round: never finishes. */
static atomic_int g_round;
static mcp_tool_status t_endless(mcp_call *call, json_t *args, json_t **result, void *ud) {
  char key[16];
  json_t *ans;
  snprintf(key, sizeof key, "k%d", atomic_fetch_add(&g_round, 1));
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), key, "roots/list", NULL, &ans);
  return rc == -EAGAIN ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

static mcp_tool_status t_content(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx *c = mcp_call_reqctx(call);
  mcp_reqctx_add_content(c, mcp_content_text("hello"));
  mcp_reqctx_add_content(c, mcp_content_audio("AA==", "audio/wav"));
  mcp_reqctx_add_content(c, mcp_content_link("test://x", "x", NULL, NULL));
  *result = json_pack("{s:i}", "n", 3);
  return json_is_true(json_object_get(args, "fail")) ? MCP_TOOL_ERROR : MCP_TOOL_OK;
}

static mcp_tool_status t_typed(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *v = json_object_get(args, "v");
  *result = json_pack("{s:O}", "count", v ? v : json_null());
  return MCP_TOOL_OK;
}

static const mcp_tool_def k_tools[] = {
    {.name = "ask_name", .category = "t", .fn = t_ask_name},
    {.name = "ask_default", .category = "t", .fn = t_ask_name,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"default\":5}}}"},
    {.name = "two_rounds", .category = "t", .fn = t_two_rounds},
    {.name = "endless", .category = "t", .fn = t_endless},
    {.name = "content", .category = "t", .fn = t_content},
    {.name = "typed", .category = "t", .fn = t_typed,
     .output_schema = "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"}},\"required\":[\"count\"]}"},
};

/* ---------- fixtures: prompts and resources ---------- */

static int p_echo(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  const char *c = json_string_value(json_object_get(args, "color"));
  if (c && strcmp(c, "bad") == 0) {
    *result = json_string("bad color");
    return -EINVAL;
  }
  *result = json_pack("{s:s, s:[{s:s, s:o}]}", "description", "echo", "messages", "role", "user", "content",
                      mcp_content_text(c ? c : "none"));
  return 0;
}

static int p_ask(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  json_t *ans;
  int rc = mcp_reqctx_ask(ctx, "ctx", "elicitation/create", json_pack("{s:s}", "message", "context?"), &ans);
  if (rc) return rc;
  *result = json_pack("{s:[{s:s, s:o}]}", "messages", "role", "user", "content",
                      mcp_content_text(json_string_value(json_object_get(json_object_get(ans, "content"), "c"))));
  return 0;
}

static const char *const k_colors[] = {"red", "green", "grey", NULL};
static const mcp_prompt_arg k_pargs[] = {{.name = "color", .required = true, .values = k_colors}};
static const mcp_prompt_def k_prompts[] = {
    {.name = "p1", .description = "one", .get = p_echo},
    {.name = "p2", .description = "two", .args = k_pargs, .nargs = 1, .get = p_echo},
    {.name = "p3", .description = "blocking", .flags = MCP_PROMPT_BLOCKING, .get = p_echo},
    {.name = "p4", .description = "asks", .get = p_ask},
    {.name = "p5", .description = "remote", .flags = MCP_PROMPT_REMOTE, .get = p_echo},
};

static int r_text(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  const char *id = mcp_uri_var(vars, "id");
  if (id && strcmp(id, "missing") == 0) return -ENOENT;
  if (id && strcmp(id, "empty") == 0) {
    *contents = json_array();
    return 0;
  }
  if (id && strcmp(id, "broken") == 0) return -EIO;
  *contents = json_pack("[o]", mcp_resource_text(uri, "text/plain", id ? id : "fixed"));
  return 0;
}

static int r_blob(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  *contents = json_pack("[o]", mcp_resource_blob(uri, "application/octet-stream", "AAEC"));
  return 0;
}

static int r_complete(void *ud, const char *var, const char *prefix, const json_t *context, json_t **values) {
  static const char *const ids[] = {"a1", "a2", "b1", NULL};
  size_t total;
  *values = mcp_complete_from_list(ids, prefix, &total);
  return 0;
}

static int g_watch;
static void r_watch(void *ud, const char *uri, bool on, mcp_dispatcher *env) { g_watch += on ? 1 : -1; }

static const mcp_resource_def k_res[] = {
    {.uri = "test://text", .name = "text", .mime_type = "text/plain", .read = r_text, .flags = MCP_RESOURCE_SUBSCRIBE,
     .watch = r_watch},
    {.uri = "test://blob", .name = "blob", .read = r_blob, .flags = MCP_RESOURCE_BLOCKING},
    {.uri = "test://volatile", .name = "volatile", .read = r_text, .flags = MCP_RESOURCE_VOLATILE},
    {.uri_template = "test://item/{id}", .name = "item", .read = r_text, .complete = r_complete,
     .flags = MCP_RESOURCE_SUBSCRIBE, .watch = r_watch},
};

/* ---------- the harness ---------- */

typedef struct {
  mcp_out_kind kind;
  json_t *rid;
  int code;
  json_t *msg;
} routed;

typedef struct {
  ts_mcp m; /* loop, registry, dispatcher */
  mcp_session *s;
  routed out[256];
  size_t n;
} fx;

static const mcp_auth k_auth = AUTH_CTX_LOCAL_INIT;

static void route(void *ud, const mcp_session_out *o, char *msg, size_t len) {
  fx *f = ud;
  assert_true(f->n < 256);
  routed *r = &f->out[f->n++];
  r->kind = o->kind;
  r->rid = o->request_id ? json_deep_copy(o->request_id) : NULL;
  r->code = o->error_code;
  r->msg = json_loadb(msg, len, 0, NULL);
  assert_non_null(r->msg);
  free(msg);
}

static void clear(fx *f) {
  for (size_t i = 0; i < f->n; i++) {
    json_decref(f->out[i].rid);
    json_decref(f->out[i].msg);
  }
  f->n = 0;
}

static void new_session(fx *f, bool remote) {
  if (f->s) mcp_session_free(f->s);
  mcp_session_opts so = {.dispatcher = f->m.d, .auth = &k_auth, .route = route, .send_ud = f, .page_size = 2,
                         .remote = remote};
  assert_int_equal(mcp_session_new(&so, &f->s), 0);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  ts_mcp_open(&f->m);
  ts_mcp_add_tools(&f->m, k_tools, sizeof k_tools / sizeof k_tools[0]);
  for (size_t i = 0; i < sizeof k_prompts / sizeof k_prompts[0]; i++)
    assert_int_equal(mcp_prompts_add(mcp_registry_prompts(f->m.reg), &k_prompts[i]), 0);
  for (size_t i = 0; i < sizeof k_res / sizeof k_res[0]; i++)
    assert_int_equal(mcp_resources_add(mcp_registry_resources(f->m.reg), &k_res[i]), 0);
  ts_mcp_start(&f->m, 2, 0);
  new_session(f, false);
  g_watch = 0;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  mcp_session_free(f->s);
  assert_int_equal(g_watch, 0); /* every subscription was released */
  ts_mcp_close(&f->m);
  clear(f);
  free(f);
  return 0;
}

static void feed(fx *f, const char *fmt, ...) {
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  mcp_session_feed(f->s, buf, strlen(buf));
}

static routed *response_to(fx *f, json_int_t id) {
  for (size_t k = 0; k < f->n; k++)
    if (f->out[k].kind == MCP_OUT_RESPONSE && json_integer_value(f->out[k].rid) == id) return &f->out[k];
  return NULL;
}

/* Runs the loop until a response to id (an integer) went out; returns it. */
static routed *wait_response(fx *f, json_int_t id) {
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, response_to(f, id));
  return response_to(f, id);
}
/* Runs the loop until n messages went out in all. */
static void wait_n(fx *f, size_t n) {
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, f->n >= n);
}

static json_t *res_of(routed *r) { return json_object_get(r->msg, "result"); }
static int code_of(routed *r) { return (int)json_integer_value(json_object_get(json_object_get(r->msg, "error"), "code")); }

#define MODERN_CAPS(caps)                                                                                          \
  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":" \
  caps "}"
#define MODERN MODERN_CAPS("{}")
#define ALLCAPS "{\"sampling\":{},\"elicitation\":{},\"roots\":{}}"
#define INIT_ALL                                                                                                    \
  "{\"jsonrpc\":\"2.0\",\"id\":1000,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"," \
  "\"capabilities\":" ALLCAPS "}}"

/* ---------- prompts ---------- */

static void test_prompts_list_paginates_and_hides(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/list\"}");
  json_t *r = res_of(wait_response(f, 1));
  assert_int_equal(json_array_size(json_object_get(r, "prompts")), 2);
  const char *cur = json_string_value(json_object_get(r, "nextCursor"));
  assert_non_null(cur);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/list\",\"params\":{\"cursor\":\"%s\"}}", cur);
  r = res_of(wait_response(f, 2));
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "prompts"), 0), "name")), "p3");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/list\",\"params\":{\"cursor\":\"t1\"}}");
  assert_int_equal(code_of(wait_response(f, 3)), -32602);
  /* 2026-07-28: cacheable */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/list\",\"params\":{" MODERN "}}");
  r = res_of(wait_response(f, 4));
  assert_true(json_is_integer(json_object_get(r, "ttlMs")));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
  /* a remote caller sees only MCP_PROMPT_REMOTE prompts */
  new_session(f, true);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"prompts/list\"}");
  r = res_of(wait_response(f, 5));
  assert_int_equal(json_array_size(json_object_get(r, "prompts")), 1);
  assert_null(json_object_get(r, "nextCursor"));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"prompts/get\",\"params\":{\"name\":\"p1\"}}");
  assert_int_equal(code_of(wait_response(f, 6)), -32602);
}

static void test_prompts_get_arguments_and_errors(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/get\",\"params\":{\"name\":\"p2\",\"arguments\":{\"color\":\"red\"}}}");
  json_t *r = res_of(wait_response(f, 1));
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_array_get(json_object_get(r, "messages"), 0), "content"), "text")),
                      "red");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\",\"params\":{\"name\":\"p2\"}}");
  assert_int_equal(code_of(wait_response(f, 2)), -32602); /* required argument missing */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/get\",\"params\":{\"name\":\"p2\",\"arguments\":{\"color\":3}}}");
  assert_int_equal(code_of(wait_response(f, 3)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/get\",\"params\":{\"name\":\"nope\"}}");
  assert_int_equal(code_of(wait_response(f, 4)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"prompts/get\",\"params\":{\"name\":\"p2\",\"arguments\":{\"color\":\"bad\"}}}");
  routed *e = wait_response(f, 5);
  assert_int_equal(code_of(e), -32602); /* the prompt's own refusal, with its reason */
  assert_string_equal(json_string_value(json_object_get(json_object_get(e->msg, "error"), "message")), "bad color");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"prompts/get\",\"params\":{}}");
  assert_int_equal(code_of(wait_response(f, 6)), -32602);
}

static void test_prompts_get_blocking_runs_on_the_pool(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/get\",\"params\":{\"name\":\"p3\"}}");
  assert_int_equal(mcp_session_inflight(f->s), 1); /* answered later, from the pool */
  json_t *r = res_of(wait_response(f, 1));
  assert_string_equal(json_string_value(json_object_get(r, "description")), "echo");
  assert_int_equal(mcp_session_inflight(f->s), 0);
  /* freed while it runs: the result is dropped */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\",\"params\":{\"name\":\"p3\"}}");
  new_session(f, false);
}

/* ---------- resources ---------- */

static void test_resources_lists_and_reads_both_eras(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}");
  json_t *r = res_of(wait_response(f, 1));
  assert_int_equal(json_array_size(json_object_get(r, "resources")), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "resources"), 0), "uri")),
                      "test://blob");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/templates/list\",\"params\":{" MODERN "}}");
  r = res_of(wait_response(f, 2));
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(json_object_get(r, "resourceTemplates"), 0), "uriTemplate")),
      "test://item/{id}");
  assert_true(json_is_integer(json_object_get(r, "ttlMs")));
  assert_non_null(json_object_get(r, "cacheScope"));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/read\",\"params\":{\"uri\":\"test://item/42\"}}");
  r = res_of(wait_response(f, 3));
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "contents"), 0), "text")), "42");
  assert_null(json_object_get(r, "ttlMs")); /* legacy: no caching hints */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":{\"uri\":\"test://blob\"," MODERN "}}");
  r = res_of(wait_response(f, 4));
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "contents"), 0), "blob")), "AAEC");
  assert_int_equal(json_integer_value(json_object_get(r, "ttlMs")), 60000);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{\"uri\":\"test://volatile\"," MODERN "}}");
  assert_int_equal(json_integer_value(json_object_get(res_of(wait_response(f, 5)), "ttlMs")), 0);
}

static void test_resources_not_found_is_32002_then_32602_with_uri(void **state) {
  fx *f = *state;
  const char *uris[] = {"test://nope", "test://item/missing", "test://item/empty", "test://item/a/b"};
  for (int i = 0; i < 4; i++) {
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"resources/read\",\"params\":{\"uri\":\"%s\"}}", 10 + i, uris[i]);
    routed *e = wait_response(f, 10 + i);
    assert_int_equal(code_of(e), -32002);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(e->msg, "error"), "data"), "uri")),
                        uris[i]);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"resources/read\",\"params\":{\"uri\":\"%s\"," MODERN "}}", 20 + i,
         uris[i]);
    e = wait_response(f, 20 + i);
    assert_int_equal(code_of(e), -32602); /* SEP-2164 */
    assert_int_equal(e->code, -32602);
  }
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"resources/read\",\"params\":{\"uri\":\"test://item/broken\"}}");
  assert_int_equal(code_of(wait_response(f, 30)), -32603);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":31,\"method\":\"resources/read\",\"params\":{\"uri\":7}}");
  assert_int_equal(code_of(wait_response(f, 31)), -32602);
  /* a remote caller sees no resource that is not MCP_RESOURCE_REMOTE */
  new_session(f, true);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":32,\"method\":\"resources/read\",\"params\":{\"uri\":\"test://text\"}}");
  assert_int_equal(code_of(wait_response(f, 32)), -32002);
}

/* ---------- completion ---------- */

static void test_completion_for_prompts_and_templates(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/prompt\","
          "\"name\":\"p2\"},\"argument\":{\"name\":\"color\",\"value\":\"gr\"}}}");
  json_t *c = json_object_get(res_of(wait_response(f, 1)), "completion");
  assert_int_equal(json_array_size(json_object_get(c, "values")), 2);
  assert_int_equal(json_integer_value(json_object_get(c, "total")), 2);
  assert_true(json_is_false(json_object_get(c, "hasMore")));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/resource\","
          "\"uri\":\"test://item/{id}\"},\"argument\":{\"name\":\"id\",\"value\":\"a\"}," MODERN "}}");
  json_t *r = res_of(wait_response(f, 2));
  assert_int_equal(json_array_size(json_object_get(json_object_get(r, "completion"), "values")), 2);
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/resource\","
          "\"uri\":\"test://text\"},\"argument\":{\"name\":\"x\",\"value\":\"\"}}}");
  assert_int_equal(json_array_size(json_object_get(json_object_get(res_of(wait_response(f, 3)), "completion"), "values")),
                   0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/prompt\","
          "\"name\":\"nope\"},\"argument\":{\"name\":\"x\",\"value\":\"\"}}}");
  assert_int_equal(code_of(wait_response(f, 4)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/prompt\","
          "\"name\":\"p2\"}}}");
  assert_int_equal(code_of(wait_response(f, 5)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/other\"},"
          "\"argument\":{\"name\":\"x\",\"value\":\"\"}}}");
  assert_int_equal(code_of(wait_response(f, 6)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/resource\","
          "\"uri\":\"test://none/{x}\"},\"argument\":{\"name\":\"x\",\"value\":\"\"}}}");
  assert_int_equal(code_of(wait_response(f, 7)), -32602);
}

/* ---------- subscriptions ---------- */

static size_t count_updates(fx *f, const char *uri, bool tagged) {
  size_t n = 0;
  for (size_t i = 0; i < f->n; i++) {
    json_t *m = f->out[i].msg;
    if (!json_is_string(json_object_get(m, "method")) ||
        strcmp(json_string_value(json_object_get(m, "method")), "notifications/resources/updated") != 0)
      continue;
    json_t *p = json_object_get(m, "params");
    if (strcmp(json_string_value(json_object_get(p, "uri")), uri) != 0) continue;
    bool has = json_object_get(json_object_get(p, "_meta"), "io.modelcontextprotocol/subscriptionId") != NULL;
    if (has == tagged) n++;
  }
  return n;
}

static void test_legacy_subscribe_unsubscribe_and_updates(void **state) {
  fx *f = *state;
  mcp_resources *res = mcp_registry_resources(f->m.reg);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"test://item/7\"}}");
  assert_int_equal(wait_response(f, 1)->code, 0);
  assert_int_equal(g_watch, 1);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"test://item/7\"}}");
  assert_int_equal(wait_response(f, 2)->code, 0); /* twice is once */
  assert_int_equal(mcp_resources_subscribers(res, "test://item/7"), 1);
  clear(f);
  mcp_resources_notify_updated(res, "test://item/7");
  mcp_resources_notify_updated(res, "test://item/8");
  assert_int_equal(f->n, 1);
  assert_int_equal(f->out[0].kind, MCP_OUT_NOTIFICATION);
  assert_null(f->out[0].rid); /* session-wide: HTTP sends it on the GET stream */
  assert_int_equal(count_updates(f, "test://item/7", false), 1);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/unsubscribe\",\"params\":{\"uri\":\"test://item/7\"}}");
  assert_int_equal(wait_response(f, 3)->code, 0);
  assert_int_equal(g_watch, 0);
  clear(f);
  mcp_resources_notify_updated(res, "test://item/7");
  assert_int_equal(f->n, 0);
  /* errors */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"test://nope\"}}");
  assert_int_equal(code_of(wait_response(f, 4)), -32002);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"test://blob\"}}");
  assert_int_equal(code_of(wait_response(f, 5)), -32602); /* not subscribable */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"test://text\"," MODERN "}}");
  assert_int_equal(code_of(wait_response(f, 6)), -32601); /* removed in 2026-07-28 */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"resources/unsubscribe\",\"params\":{\"uri\":\"test://never\"}}");
  assert_int_equal(wait_response(f, 7)->code, 0);
  /* a session that goes away releases its subscriptions (teardown checks g_watch) */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"test://text\"}}");
  assert_int_equal(g_watch, 1);
}

static void test_listen_resource_subscriptions(void **state) {
  fx *f = *state;
  mcp_resources *res = mcp_registry_resources(f->m.reg);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":\"L\",\"method\":\"subscriptions/listen\",\"params\":{" MODERN ",\"notifications\":"
          "{\"toolsListChanged\":true,\"resourceSubscriptions\":[\"test://text\",\"test://blob\",\"test://nope\","
          "\"test://text\",\"test://item/9\"]}}}");
  assert_int_equal(f->n, 1);
  json_t *ack = json_object_get(f->out[0].msg, "params");
  json_t *agreed = json_object_get(json_object_get(ack, "notifications"), "resourceSubscriptions");
  assert_int_equal(json_array_size(agreed), 2); /* the subset it can honor, once each */
  assert_null(json_object_get(json_object_get(ack, "notifications"), "toolsListChanged"));
  assert_int_equal(g_watch, 2);
  clear(f);
  mcp_resources_notify_updated(res, "test://item/9");
  assert_int_equal(count_updates(f, "test://item/9", true), 1);
  assert_string_equal(json_string_value(f->out[0].rid), "L");
  /* the client closes the stream: the subscriptions go */
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"L\"}}");
  assert_int_equal(g_watch, 0);
  clear(f);
  mcp_resources_notify_updated(res, "test://item/9");
  assert_int_equal(f->n, 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"subscriptions/listen\",\"params\":{" MODERN ",\"notifications\":"
          "{\"resourceSubscriptions\":\"test://text\"}}}");
  assert_int_equal(code_of(wait_response(f, 2)), -32602);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"subscriptions/listen\",\"params\":{" MODERN ",\"notifications\":"
          "{\"resourceSubscriptions\":[1]}}}");
  assert_int_equal(code_of(wait_response(f, 3)), -32602);
  /* graceful end at shutdown releases them too */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"subscriptions/listen\",\"params\":{" MODERN ",\"notifications\":"
          "{\"resourceSubscriptions\":[\"test://text\"]}}}");
  assert_int_equal(g_watch, 1);
  mcp_session_end_subscriptions(f->s);
  assert_int_equal(g_watch, 0);
  assert_int_equal(wait_response(f, 4)->code, 0);
}

static void test_capabilities_advertise_resource_subscriptions(void **state) {
  fx *f = *state;
  feed(f, INIT_ALL);
  json_t *caps = json_object_get(res_of(wait_response(f, 1000)), "capabilities");
  assert_true(json_is_true(json_object_get(json_object_get(caps, "resources"), "subscribe")));
  assert_non_null(json_object_get(caps, "prompts"));
  assert_non_null(json_object_get(caps, "completions"));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{" MODERN "}}");
  caps = json_object_get(res_of(wait_response(f, 1)), "capabilities");
  assert_true(json_is_true(json_object_get(json_object_get(caps, "resources"), "subscribe")));
}

/* ---------- tool results ---------- */

static void test_tool_content_blocks_and_output_schema(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"content\"}}");
  json_t *r = res_of(wait_response(f, 1));
  json_t *c = json_object_get(r, "content");
  assert_int_equal(json_array_size(c), 3);
  assert_string_equal(json_string_value(json_object_get(json_array_get(c, 1), "type")), "audio");
  assert_string_equal(json_string_value(json_object_get(json_array_get(c, 2), "type")), "resource_link");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "n")), 3);
  assert_true(json_is_false(json_object_get(r, "isError")));
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"content\",\"arguments\":{\"fail\":true}}}");
  r = res_of(wait_response(f, 2));
  assert_true(json_is_true(json_object_get(r, "isError")));
  assert_int_equal(json_array_size(json_object_get(r, "content")), 3);
  assert_null(json_object_get(r, "structuredContent"));
  /* outputSchema: a conforming result passes, a bad one becomes a tool error */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"typed\",\"arguments\":{\"v\":4}}}");
  r = res_of(wait_response(f, 3));
  assert_true(json_is_false(json_object_get(r, "isError")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "count")), 4);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"typed\",\"arguments\":{\"v\":\"x\"}}}");
  r = res_of(wait_response(f, 4));
  assert_true(json_is_true(json_object_get(r, "isError")));
  assert_null(json_object_get(r, "structuredContent"));
  assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text")),
                         "outputSchema"));
}

/* ---------- 2026-07-28: InputRequiredResult and requestState ---------- */

static routed *call_modern(fx *f, int id, const char *tool, const char *caps, const char *extra) {
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":{}%s%s,"
          MODERN_CAPS("%s") "}}",
       id, tool, extra ? "," : "", extra ? extra : "", caps);
  return wait_response(f, id);
}

static void test_mrtr_input_required_then_complete(void **state) {
  fx *f = *state;
  json_t *r = res_of(call_modern(f, 1, "ask_name", ALLCAPS, NULL));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "input_required");
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(r, "inputRequests"), "name"), "method")),
                      "elicitation/create");
  const char *st = json_string_value(json_object_get(r, "requestState"));
  assert_non_null(st);
  char extra[2048];
  snprintf(extra, sizeof extra,
           "\"inputResponses\":{\"name\":{\"action\":\"accept\",\"content\":{\"n\":\"Al\"}}},\"requestState\":\"%s\"", st);
  r = res_of(call_modern(f, 2, "ask_name", ALLCAPS, extra));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(json_object_get(r, "structuredContent"), "got"), "n")), "Al");
  /* the same without a state (nothing earlier to carry), with extra keys: still complete */
  r = res_of(call_modern(f, 3, "ask_name", ALLCAPS,
                         "\"inputResponses\":{\"name\":{\"action\":\"decline\"},\"other\":{\"x\":1}}"));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
  /* the wrong key: asked again, not an error */
  r = res_of(call_modern(f, 4, "ask_name", ALLCAPS, "\"inputResponses\":{\"wrong\":{\"action\":\"accept\"}}"));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "input_required");
  /* the state of another tool does not verify here */
  snprintf(extra, sizeof extra, "\"requestState\":\"%s\"", st);
  routed *e = call_modern(f, 5, "two_rounds", ALLCAPS, extra);
  assert_int_equal(code_of(e), -32602);
}

/* The binding covers the arguments the tool ran with (defaults filled), in both rounds. */
static void test_mrtr_state_binds_arguments_with_defaults(void **state) {
  fx *f = *state;
  json_t *r = res_of(call_modern(f, 1, "ask_default", ALLCAPS, NULL));
  char st[4096], extra[8192];
  snprintf(st, sizeof st, "%s", json_string_value(json_object_get(r, "requestState")));
  snprintf(extra, sizeof extra, "\"inputResponses\":{\"name\":{\"action\":\"accept\"}},\"requestState\":\"%s\"", st);
  r = res_of(call_modern(f, 2, "ask_default", ALLCAPS, extra));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
  /* the default spelled out is the same request */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"ask_default\",\"arguments\":"
          "{\"n\":5},%s," MODERN_CAPS(ALLCAPS) "}}", extra);
  assert_string_equal(json_string_value(json_object_get(res_of(wait_response(f, 3)), "resultType")), "complete");
  /* other arguments are another request */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"ask_default\",\"arguments\":"
          "{\"n\":6},%s," MODERN_CAPS(ALLCAPS) "}}", extra);
  assert_int_equal(code_of(wait_response(f, 4)), -32602);
}

static void test_mrtr_bad_inputs_and_state(void **state) {
  fx *f = *state;
  json_t *r = res_of(call_modern(f, 1, "ask_name", ALLCAPS, NULL));
  const char *st = json_string_value(json_object_get(r, "requestState"));
  char extra[2048];
  snprintf(extra, sizeof extra, "\"requestState\":\"%s-TAMPERED\"", st);
  assert_int_equal(code_of(call_modern(f, 2, "ask_name", ALLCAPS, extra)), -32602);
  assert_int_equal(code_of(call_modern(f, 3, "ask_name", ALLCAPS, "\"requestState\":5")), -32602);
  assert_int_equal(code_of(call_modern(f, 4, "ask_name", ALLCAPS, "\"inputResponses\":null")), -32602);
  assert_int_equal(code_of(call_modern(f, 5, "ask_name", ALLCAPS, "\"inputResponses\":{\"name\":12345}")), -32602);
  assert_int_equal(code_of(call_modern(f, 6, "ask_name", ALLCAPS, "\"inputResponses\":[]")), -32602);
  /* input-required results only on tools/call, prompts/get and resources/read */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{" MODERN_CAPS(ALLCAPS) "}}");
  assert_string_equal(json_string_value(json_object_get(res_of(wait_response(f, 7)), "resultType")), "complete");
}

static void test_mrtr_missing_capability_is_32021(void **state) {
  fx *f = *state;
  routed *e = call_modern(f, 1, "ask_name", "{\"sampling\":{}}", NULL);
  assert_int_equal(code_of(e), -32021);
  assert_int_equal(e->code, -32021);
  json_t *req = json_object_get(json_object_get(json_object_get(e->msg, "error"), "data"), "requiredCapabilities");
  assert_true(json_is_object(json_object_get(req, "elicitation")));
  assert_int_equal(json_integer_value(json_object_get(e->msg, "id")), 1);
}

static void test_mrtr_multi_round_carries_answers_in_state(void **state) {
  fx *f = *state;
  json_t *r = res_of(call_modern(f, 1, "two_rounds", ALLCAPS, NULL));
  assert_non_null(json_object_get(json_object_get(r, "inputRequests"), "a"));
  char s1[4096], extra[8192];
  snprintf(s1, sizeof s1, "%s", json_string_value(json_object_get(r, "requestState")));
  snprintf(extra, sizeof extra, "\"inputResponses\":{\"a\":{\"roots\":[]}},\"requestState\":\"%s\"", s1);
  r = res_of(call_modern(f, 2, "two_rounds", ALLCAPS, extra));
  assert_non_null(json_object_get(json_object_get(r, "inputRequests"), "b"));
  const char *s2 = json_string_value(json_object_get(r, "requestState"));
  assert_string_not_equal(s1, s2);
  snprintf(extra, sizeof extra,
           "\"inputResponses\":{\"b\":{\"role\":\"assistant\",\"content\":{\"type\":\"text\",\"text\":\"x\"},\"model\":\"m\"}},"
           "\"requestState\":\"%s\"",
           s2);
  r = res_of(call_modern(f, 3, "two_rounds", ALLCAPS, extra));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
  assert_non_null(json_object_get(json_object_get(r, "structuredContent"), "a")); /* from the state */
  assert_non_null(json_object_get(json_object_get(r, "structuredContent"), "b"));
}

static void test_mrtr_prompt_input_required(void **state) {
  fx *f = *state;
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/get\",\"params\":{\"name\":\"p4\"," MODERN_CAPS(ALLCAPS) "}}");
  json_t *r = res_of(wait_response(f, 1));
  assert_string_equal(json_string_value(json_object_get(r, "resultType")), "input_required");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\",\"params\":{\"name\":\"p4\",\"inputResponses\":{\"ctx\":"
          "{\"action\":\"accept\",\"content\":{\"c\":\"deep\"}}}," MODERN_CAPS(ALLCAPS) "}}");
  r = res_of(wait_response(f, 2));
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_array_get(json_object_get(r, "messages"), 0), "content"), "text")),
                      "deep");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/get\",\"params\":{\"name\":\"p4\"," MODERN "}}");
  assert_int_equal(code_of(wait_response(f, 3)), -32021);
}

/* ---------- 2025-11-25: server-to-client requests ---------- */

/* The server-to-client requests sent so far (kind MCP_OUT_REQUEST). */
static routed *nth_request(fx *f, size_t k) {
  for (size_t i = 0; i < f->n; i++)
    if (f->out[i].kind == MCP_OUT_REQUEST && k-- == 0) return &f->out[i];
  return NULL;
}

static void test_legacy_tool_asks_the_client_and_runs_again(void **state) {
  fx *f = *state;
  feed(f, INIT_ALL);
  clear(f);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"two_rounds\"}}");
  wait_n(f, 1);
  routed *q = nth_request(f, 0);
  assert_non_null(q);
  assert_int_equal(json_integer_value(q->rid), 5); /* on the stream of the request that caused it */
  assert_string_equal(json_string_value(json_object_get(q->msg, "method")), "roots/list");
  json_int_t qid = json_integer_value(json_object_get(q->msg, "id"));
  assert_int_equal(mcp_session_inflight(f->s), 1);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"roots\":[{\"uri\":\"file:///r\"}]}}", (long long)qid);
  wait_n(f, 2);
  q = nth_request(f, 1);
  assert_string_equal(json_string_value(json_object_get(q->msg, "method")), "sampling/createMessage");
  /* an unknown answer id is ignored */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":999,\"result\":{}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"role\":\"assistant\",\"content\":{\"type\":\"text\",\"text\":\"y\"},"
          "\"model\":\"m\"}}",
       (long long)json_integer_value(json_object_get(q->msg, "id")));
  json_t *r = res_of(wait_response(f, 5));
  assert_non_null(json_object_get(json_object_get(r, "structuredContent"), "a"));
  assert_null(json_object_get(r, "resultType"));
  assert_int_equal(mcp_session_inflight(f->s), 0);
}

static void test_legacy_error_answer_and_missing_capability(void **state) {
  fx *f = *state;
  feed(f, INIT_ALL);
  clear(f);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"ask_name\"}}");
  wait_n(f, 1);
  routed *q = nth_request(f, 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32601,\"message\":\"no\"}}",
       (long long)json_integer_value(json_object_get(q->msg, "id")));
  json_t *r = res_of(wait_response(f, 1));
  assert_true(json_is_true(json_object_get(r, "isError")));
  /* a client that declared nothing: the tool's own error result */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"}}");
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"ask_name\"}}");
  r = res_of(wait_response(f, 3));
  assert_true(json_is_true(json_object_get(r, "isError")));
  /* a prompt: an error naming the capability */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/get\",\"params\":{\"name\":\"p4\"}}");
  routed *e = wait_response(f, 4);
  assert_int_equal(code_of(e), -32603);
  assert_non_null(json_object_get(json_object_get(json_object_get(e->msg, "error"), "data"), "requiredCapabilities"));
}

static void test_legacy_cancel_and_shutdown_while_waiting(void **state) {
  fx *f = *state;
  feed(f, INIT_ALL);
  clear(f);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"ask_name\"}}");
  wait_n(f, 1);
  json_int_t qid = json_integer_value(json_object_get(nth_request(f, 0)->msg, "id"));
  clear(f);
  feed(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1}}");
  assert_int_equal(mcp_session_inflight(f->s), 0);
  /* our own question is withdrawn; the call gets no response */
  assert_int_equal(f->n, 1);
  assert_string_equal(json_string_value(json_object_get(f->out[0].msg, "method")), "notifications/cancelled");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(f->out[0].msg, "params"), "requestId")), qid);
  /* a late answer is ignored */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"action\":\"accept\"}}", (long long)qid);
  assert_int_equal(f->n, 1);
  /* shutdown: a waiting request is answered */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\",\"params\":{\"name\":\"p4\"}}");
  wait_n(f, 2);
  mcp_session_end_subscriptions(f->s);
  assert_int_equal(code_of(wait_response(f, 2)), -32603);
  assert_int_equal(mcp_session_inflight(f->s), 0);
  /* freed while waiting: nothing leaks (ASan) */
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"ask_name\"}}");
  wait_n(f, 4);
  assert_int_equal(mcp_session_inflight(f->s), 1);
}

static void test_legacy_rounds_are_bounded(void **state) {
  fx *f = *state;
  feed(f, INIT_ALL);
  atomic_store(&g_round, 0);
  feed(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"endless\"}}");
  for (int round = 0; round < 20; round++) {
    routed *q = NULL;
    for (int i = 0; i < 30000 && !(q = nth_request(f, (size_t)round)); i++) {
      for (size_t k = 0; k < f->n; k++)
        if (f->out[k].kind == MCP_OUT_RESPONSE && json_integer_value(f->out[k].rid) == 1) goto done;
      uv_run(&f->m.loop, UV_RUN_ONCE);
    }
    assert_non_null(q);
    feed(f, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"roots\":[]}}",
         (long long)json_integer_value(json_object_get(q->msg, "id")));
  }
  fail_msg("the rounds did not end");
done:;
  json_t *r = res_of(wait_response(f, 1));
  assert_true(json_is_true(json_object_get(r, "isError")));
  assert_true(atomic_load(&g_round) <= 9);
}

int main(void) {
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_prompts_list_paginates_and_hides),
      T(test_prompts_get_arguments_and_errors),
      T(test_prompts_get_blocking_runs_on_the_pool),
      T(test_resources_lists_and_reads_both_eras),
      T(test_resources_not_found_is_32002_then_32602_with_uri),
      T(test_completion_for_prompts_and_templates),
      T(test_legacy_subscribe_unsubscribe_and_updates),
      T(test_listen_resource_subscriptions),
      T(test_capabilities_advertise_resource_subscriptions),
      T(test_tool_content_blocks_and_output_schema),
      T(test_mrtr_input_required_then_complete),
      T(test_mrtr_state_binds_arguments_with_defaults),
      T(test_mrtr_bad_inputs_and_state),
      T(test_mrtr_missing_capability_is_32021),
      T(test_mrtr_multi_round_carries_answers_in_state),
      T(test_mrtr_prompt_input_required),
      T(test_legacy_tool_asks_the_client_and_runs_again),
      T(test_legacy_error_answer_and_missing_capability),
      T(test_legacy_cancel_and_shutdown_while_waiting),
      T(test_legacy_rounds_are_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

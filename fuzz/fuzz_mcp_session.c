/* fuzz_mcp_session.c — feeds newline-separated messages to one mcp_session (both eras, tool
 * calls through a real dispatcher and worker pool, prompts, resources, completion,
 * subscriptions, client input rounds) and runs the loop until every call is done; every
 * server-to-client request gets an answer (a result, or an error for even ids).
 * Byte 0 bit 0: a remote caller; bit 1: the extension points a transport with an older wire
 * contract sets (tool filter, initialize decorator, result shaper, a hook starting tracked
 * calls, init_required, ASCII-only output, …).
 * Checks: no crash, no leak, no sanitizer report, every output is one line of valid JSON. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mcp/content.h"
#include "mcp/prompts.h"
#include "mcp/reqctx.h"
#include "mcp/resources.h"
#include "mcp/session.h"
#include "util/log.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_call_progress(call, 1, 2, "half");
  mcp_call_log(call, "warning", "fuzz");
  *result = json_incref(args);
  return MCP_TOOL_OK;
}
static mcp_tool_status fail_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:s, s:O}", "error", "no", "args", args);
  return MCP_TOOL_ERROR;
}

/* Asks the client (elicitation, then roots) and returns content blocks. */
static mcp_tool_status ask_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx *c = mcp_call_reqctx(call);
  json_t *a, *b;
  int rc = mcp_reqctx_ask(c, "a", "elicitation/create", json_pack("{s:s}", "message", "m"), &a);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc == 0) rc = mcp_reqctx_ask(c, "b", "roots/list", NULL, &b);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  mcp_reqctx_add_content(c, mcp_content_text("done"));
  *result = json_pack("{s:i}", "rc", rc);
  return rc == 0 ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

static int prompt_get(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  json_t *a;
  if (ud) { /* the asking prompt */
    int rc = mcp_reqctx_ask(ctx, "p", "sampling/createMessage", json_pack("{s:[], s:i}", "messages", "maxTokens", 1), &a);
    if (rc) return rc;
  }
  *result = json_pack("{s:[{s:s, s:o}]}", "messages", "role", "user", "content", mcp_content_text("x"));
  return 0;
}

static int res_read(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  const char *id = mcp_uri_var(vars, "id");
  if (id && strcmp(id, "none") == 0) return -ENOENT;
  *contents = json_pack("[o]", mcp_resource_text(uri, "text/plain", id ? id : "t"));
  return 0;
}

static int res_complete(void *ud, const char *var, const char *prefix, const json_t *context, json_t **values) {
  static const char *const v[] = {"a", "ab", "b", NULL};
  size_t total;
  *values = mcp_complete_from_list(v, prefix, &total);
  return 0;
}

static const char *const k_vals[] = {"x", "xy", "z", NULL};
static const mcp_prompt_arg k_pargs[] = {{.name = "a", .required = true, .values = k_vals}};
static const mcp_prompt_def k_prompts[] = {
    {.name = "p", .args = k_pargs, .nargs = 1, .flags = MCP_PROMPT_REMOTE, .get = prompt_get},
    {.name = "q", .flags = MCP_PROMPT_BLOCKING, .get = prompt_get, .ud = (void *)1},
};
static const mcp_resource_def k_res[] = {
    {.uri = "f://a", .name = "a", .read = res_read, .flags = MCP_RESOURCE_REMOTE | MCP_RESOURCE_SUBSCRIBE},
    {.uri_template = "f://t/{id}", .name = "t", .read = res_read, .complete = res_complete,
     .flags = MCP_RESOURCE_BLOCKING | MCP_RESOURCE_SUBSCRIBE},
};

static const mcp_tool_def k_tools[] = {
    {.name = "ask", .category = "f", .fn = ask_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "echo", .category = "f", .fn = echo_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"maximum\":5},"
                     "\"s\":{\"type\":\"string\",\"maxLength\":8,\"default\":\"d\"}}}"},
    {.name = "inline", .category = "f", .fn = echo_fn, .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE},
    {.name = "fail", .category = "g", .fn = fail_fn, .output_schema = "{\"type\":\"object\"}"},
};

static uv_loop_t g_loop;
static mcp_registry *g_reg;
static mcp_dispatcher *g_disp;
static const mcp_auth g_auth = AUTH_CTX_LOCAL_INIT;

static bool g_ascii; /* the session was asked for ASCII-only output */

/* Answers owed to the session's server-to-client requests, fed between loop turns. */
static json_int_t g_owed[256];
static size_t g_nowed;

static void on_send(void *ud, char *msg, size_t len) {
  if (strlen(msg) != len || memchr(msg, '\n', len)) abort();
  for (size_t i = 0; g_ascii && i < len; i++)
    if ((unsigned char)msg[i] >= 0x80) abort();
  json_t *j = json_loadb(msg, len, 0, NULL);
  if (!j) abort();
  json_t *id = json_object_get(j, "id");
  if (json_object_get(j, "method") && json_is_integer(id) && g_nowed < 256) g_owed[g_nowed++] = json_integer_value(id);
  json_decref(j);
  free(msg);
}

static void pay_answers(mcp_session *s) {
  while (g_nowed > 0) {
    json_int_t id = g_owed[--g_nowed];
    char m[160];
    int n = id % 2 ? snprintf(m, sizeof m, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"action\":\"accept\",\"roots\":[]}}", (long long)id)
                   : snprintf(m, sizeof m, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-1,\"message\":\"no\"}}", (long long)id);
    mcp_session_feed(s, m, (size_t)n);
  }
}

static void init_once(void) {
  if (g_reg) return;
  log_set_level(LOG_OFF);
  uv_loop_init(&g_loop);
  g_reg = mcp_registry_new();
  for (size_t i = 0; i < sizeof k_tools / sizeof k_tools[0]; i++)
    if (mcp_registry_add(g_reg, &k_tools[i]) != 0) abort();
  for (size_t i = 0; i < sizeof k_prompts / sizeof k_prompts[0]; i++)
    if (mcp_prompts_add(mcp_registry_prompts(g_reg), &k_prompts[i]) != 0) abort();
  for (size_t i = 0; i < sizeof k_res / sizeof k_res[0]; i++)
    if (mcp_resources_add(mcp_registry_resources(g_reg), &k_res[i]) != 0) abort();
  mcp_dispatcher_opts o = {.threads = 2, .max_threads = 2, .default_timeout_ms = 2000};
  if (mcp_dispatcher_new(&g_loop, g_reg, &o, &g_disp) != 0) abort();
}

/* Extension points (byte 0 bit 1): the shape a transport with an older wire contract uses. */
static bool x_filter(void *ud, const mcp_tool *t, const mcp_auth *auth) {
  (void)ud, (void)auth;
  return strcmp(mcp_tool_def_of(t)->name, "fail") != 0;
}
static void x_decorate(void *ud, mcp_session *s, const json_t *params, json_t *res) {
  (void)ud, (void)s;
  json_object_set_new(res, "ok", json_true());
  json_object_set(res, "echo", json_object_get(params, "x") ? json_object_get(params, "x") : json_null());
}
static bool x_shape(void *ud, const mcp_call_outcome *o, mcp_session_shaped *out) {
  (void)ud;
  if (o->status == MCP_DISPATCH_UNKNOWN_TOOL) {
    out->code = -32002;
    out->message = "unknown_tool";
    return true;
  }
  if (o->tool && strcmp(mcp_tool_def_of(o->tool)->name, "inline") == 0) {
    out->result = json_pack("{s:O?}", "content", json_object_get(o->envelope, "result"));
    return out->result != NULL;
  }
  return false;
}
static bool x_hook(void *ud, mcp_session *s, const char *method, json_t *id, json_t *params) {
  (void)ud;
  if (strcmp(method, "x/call") != 0) return false;
  static const mcp_auth none = {0};
  json_t *name = json_object_get(params, "name");
  mcp_session_call c = {.tool = json_is_string(name) ? json_string_value(name) : "echo",
                        .args = json_object_get(params, "arguments"), .auth = &none, .timeout_ms = 1000};
  if (mcp_session_start_call(s, &c) != 0 && id) abort(); /* inside a hook with an id: must start */
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_once();
  mcp_session *s;
  bool ext = size > 0 && (data[0] & 2);
  mcp_session_opts so = {.dispatcher = g_disp, .auth = &g_auth, .remote = size > 0 && (data[0] & 1),
                         .page_size = 1, .max_message_bytes = 4096, .send = on_send};
  g_ascii = ext;
  if (ext) {
    so.tool_filter = x_filter;
    so.init_decorator = x_decorate;
    so.result_shaper = x_shape;
    so.hook = x_hook;
    so.init_required = true;
    so.init_required_code = -32000;
    so.init_required_message = "init_required";
    so.init_default_version = "2024-11-05";
    so.quiet_logs = true;
    so.ascii_only = true;
    so.max_inflight = 4;
    so.busy_code = -32010;
  }
  if (mcp_session_new(&so, &s) != 0) abort();
  g_nowed = 0;
  const char *p = (const char *)data, *end = p + size;
  while (p < end && !mcp_session_ended(s)) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    mcp_session_feed(s, p, n);
    p += n + (nl ? 1 : 0);
  }
  for (int i = 0; i < 100000 && mcp_session_inflight(s) > 0; i++) {
    pay_answers(s);
    if (mcp_session_inflight(s) == 0) break;
    uv_run(&g_loop, UV_RUN_ONCE);
  }
  mcp_session_free(s);
  uv_run(&g_loop, UV_RUN_NOWAIT);
  return 0;
}

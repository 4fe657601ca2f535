/* fuzz_mcp_session.c — feeds newline-separated messages to one mcp_session (both eras, tool
 * calls through a real dispatcher and worker pool) and runs the loop until every call is done.
 * Checks: no crash, no leak, no sanitizer report, every output is one line of valid JSON. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

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

static const mcp_tool_def k_tools[] = {
    {.name = "echo", .category = "f", .fn = echo_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"maximum\":5},"
                     "\"s\":{\"type\":\"string\",\"maxLength\":8,\"default\":\"d\"}}}"},
    {.name = "inline", .category = "f", .fn = echo_fn, .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE},
    {.name = "fail", .category = "g", .fn = fail_fn, .output_schema = "{\"type\":\"object\"}"},
};

static uv_loop_t g_loop;
static mcp_registry *g_reg;
static mcp_dispatcher *g_disp;
static const mcp_auth g_auth = {.scopes = MCP_SCOPE_ALL, .local = true};

static void on_send(void *ud, char *msg, size_t len) {
  if (strlen(msg) != len || memchr(msg, '\n', len)) abort();
  json_t *j = json_loadb(msg, len, 0, NULL);
  if (!j) abort();
  json_decref(j);
  free(msg);
}

static void init_once(void) {
  if (g_reg) return;
  log_set_level(LOG_OFF);
  uv_loop_init(&g_loop);
  g_reg = mcp_registry_new();
  for (size_t i = 0; i < sizeof k_tools / sizeof k_tools[0]; i++)
    if (mcp_registry_add(g_reg, &k_tools[i]) != 0) abort();
  mcp_dispatcher_opts o = {.threads = 2, .max_threads = 2, .default_timeout_ms = 2000};
  if (mcp_dispatcher_new(&g_loop, g_reg, &o, &g_disp) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_once();
  mcp_session *s;
  mcp_session_opts so = {.dispatcher = g_disp, .auth = &g_auth, .remote = size > 0 && (data[0] & 1),
                         .page_size = 1, .max_message_bytes = 4096, .send = on_send};
  if (mcp_session_new(&so, &s) != 0) abort();
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    mcp_session_feed(s, p, n);
    p += n + (nl ? 1 : 0);
  }
  for (int i = 0; i < 100000 && mcp_session_inflight(s) > 0; i++) uv_run(&g_loop, UV_RUN_ONCE);
  mcp_session_free(s);
  uv_run(&g_loop, UV_RUN_NOWAIT);
  return 0;
}

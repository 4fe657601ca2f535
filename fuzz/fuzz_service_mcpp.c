/* fuzz_service_mcpp.c — libFuzzer target: the /mcp+p2p/1.0.0 server session (service/mcpp.h,
 * on the MCP session core with a real dispatcher and the task_queue.rpc tool) and the legacy
 * NDJSON decoder (service/frame.h) on arbitrary bytes.
 *
 * Input layout: byte 0 = feed chunk size - 1; byte 1 bit 0 = run the loop until calls in
 * flight are done after each chunk (else they stay in flight until the conn is freed, which
 * must detach them), bit 1 = the remote peer holds the token's scopes from the start, bit 2 =
 * budget hooks as a transport gives them (may_read yes, may_start no when bit 3: calls held),
 * which check that may_start_unchanged is asked only when the conn's figures are the ones
 * may_read saw; the rest is fed as received bytes. Checks the contract: every output byte is a
 * well-formed frame whose JSON is an object, the conn is done after an error, and nothing
 * leaks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mcp/dispatch.h"
#include "service/frame.h"
#include "service/mcpp.h"
#include "taskq/rpc_tool.h"
#include "taskq/table.h"
#include "util/log.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)ud;
  mcp_call_progress(call, 1, 2, "half");
  mcp_call_log(call, "warning", "fuzz");
  *result = json_incref(args);
  return MCP_TOOL_OK;
}
static mcp_tool_status fail_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call, (void)ud;
  *result = json_pack("{s:s, s:O}", "error", "no", "args", args);
  return MCP_TOOL_ERROR;
}

static const mcp_tool_def k_tools[] = {
    {.name = "echo", .category = "f", .fn = echo_fn, .flags = MCP_TOOL_REMOTE,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"maximum\":5}}}"},
    {.name = "inline", .category = "f", .fn = echo_fn, .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE},
    {.name = "fail", .category = "g", .fn = fail_fn, .flags = MCP_TOOL_REMOTE, .scopes = AUTH_SCOPES_INIT(AUTH_CACHE_READ)},
    {.name = "local", .category = "g", .fn = echo_fn},
};

static uv_loop_t g_loop;
static mcp_registry *g_reg;
static mcp_dispatcher *g_disp;
static auth_policy *g_pol;
static taskq_ctx *g_tq;
static int g_outputs;

/* the budget hooks (bit 2): the figures at the last may_read, to compare */
static svc_mcpp_conn *g_conn;
static svc_mcpp_figures g_read_fig;
static bool g_deny_start;

static bool fz_may_read(void *ud) {
  (void)ud;
  if (g_conn) svc_mcpp_get_figures(g_conn, &g_read_fig);
  return true;
}
static bool fz_may_start(void *ud) {
  (void)ud;
  return !g_deny_start;
}
static bool fz_may_start_unchanged(void *ud) {
  (void)ud;
  svc_mcpp_figures f;
  svc_mcpp_get_figures(g_conn, &f);
  if (memcmp(&f, &g_read_fig, sizeof f) != 0) abort(); /* the conn said "unchanged" wrongly */
  return !g_deny_start;
}

static void on_output(void *ud) {
  (void)ud;
  g_outputs++;
}

static void init_once(void) {
  if (g_reg) return;
  log_set_level(LOG_OFF);
  uv_loop_init(&g_loop);
  g_pol = auth_policy_new();
  if (auth_policy_set_token(g_pol, "tok", NULL) != 0) abort();
  if (auth_policy_add_peer(g_pol, "12D3KooWTrustedTrustedTrustedTrustedTrustedTrustedTr", NULL) != 0) abort();
  g_reg = mcp_registry_new();
  for (size_t i = 0; i < sizeof k_tools / sizeof k_tools[0]; i++)
    if (mcp_registry_add(g_reg, &k_tools[i]) != 0) abort();
  taskq_config tc;
  taskq_config_default(&tc);
  tc.policy = g_pol;
  tc.peer_id = "12D3KooWFuzz";
  tc.tools_enabled = true;
  tc.wait_max_s = 0.01;
  tc.tool_timeout_max_s = 1;
  if (!(g_tq = taskq_new(&tc))) abort();
  if (taskq_rpc_tool_register(g_reg, g_tq) != 0) abort();
  mcp_dispatcher_opts o = {.threads = 2, .max_threads = 2, .default_timeout_ms = 2000};
  if (mcp_dispatcher_new(&g_loop, g_reg, &o, &g_disp) != 0) abort();
}

static void check_output(buf *out) {
  svc_frame_dec d;
  svc_frame_dec_init(&d, 64u << 20);
  size_t pos = 0;
  while (pos < buf_len(out)) {
    size_t used;
    svc_frame_status st = svc_frame_dec_feed(&d, buf_ptr(out) + pos, buf_len(out) - pos, &used);
    pos += used;
    if (st == SVC_FRAME_READY) json_decref(svc_frame_dec_take(&d));
    else if (st == SVC_FRAME_NEED_MORE && used == 0) abort(); /* truncated output frame */
    else if (st < 0) abort();
  }
  if (svc_frame_dec_mid_frame(&d)) abort();
  svc_frame_dec_free(&d);
  buf_reset(out);
}

/* Held calls (bit 3) wait for room a transport would find later: it comes now. */
static void release_held(svc_mcpp_conn *c) {
  if (!g_deny_start) return;
  g_deny_start = false;
  (void)svc_mcpp_resume(c);
}

static void drain(svc_mcpp_conn *c) {
  for (int i = 0; i < 100000 && svc_mcpp_inflight(c) > 0; i++) uv_run(&g_loop, UV_RUN_ONCE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  init_once();
  size_t chunk = (size_t)data[0] + 1;
  uint8_t flags = data[1];
  bool complete_now = flags & 1;
  const char *peer = data[1] & 2 ? "12D3KooWTrustedTrustedTrustedTrustedTrustedTrustedTr" : "12D3KooWPeer";
  data += 2;
  size -= 2;
  svc_mcpp_env env = {0};
  env.peer_id = "12D3KooWFuzz";
  env.policy = g_pol;
  env.dispatcher = g_disp;
  env.max_frame_bytes = 4096;
  env.rate_capacity = 64;
  env.rate_refill_per_s = 1;
  env.max_inflight = 8;
  env.page_size = 2;
  env.rpc_timeout_ms = 2000;
  env.on_output = on_output;
  if (flags & 4) {
    env.may_read = fz_may_read;
    env.may_start = fz_may_start;
    env.may_start_unchanged = fz_may_start_unchanged;
    g_deny_start = flags & 8;
  }
  svc_mcpp_conn *c = svc_mcpp_new(&env, peer, NULL);
  if (!c) return 0;
  g_conn = c;
  memset(&g_read_fig, 0, sizeof g_read_fig);
  size_t pos = 0;
  while (pos < size) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    int rc = svc_mcpp_feed(c, data + pos, n);
    pos += n;
    if (complete_now) drain(c);
    check_output(svc_mcpp_output(c));
    if (rc < 0) {
      /* input stopped; the requests read before still get answers (issue 9 item 6), then done */
      if (svc_mcpp_reading(c)) abort();
      if (complete_now) {
        release_held(c);
        drain(c);
        check_output(svc_mcpp_output(c));
        if (!svc_mcpp_done(c)) abort();
      }
      break;
    }
  }
  svc_mcpp_eof(c);
  if (complete_now) {
    release_held(c);
    drain(c);
    check_output(svc_mcpp_output(c));
    if (!svc_mcpp_done(c)) abort(); /* EOF and nothing in flight: done */
  }
  svc_mcpp_free(c);
  g_conn = NULL;
  uv_run(&g_loop, UV_RUN_NOWAIT);

  /* the same bytes as one legacy NDJSON request */
  svc_ndjson_dec nd;
  svc_ndjson_dec_init(&nd, 4096);
  svc_frame_status st = svc_ndjson_dec_feed(&nd, data, size);
  if (st == SVC_FRAME_NEED_MORE) st = svc_ndjson_dec_finish(&nd);
  json_t *m = svc_ndjson_dec_take(&nd);
  if ((st == SVC_FRAME_READY) != (m != NULL)) abort();
  if (m && !json_is_object(m)) abort();
  json_decref(m);
  svc_ndjson_dec_free(&nd);
  return 0;
}

/* fuzz_mcp_text.c — the session's text path (mcp/envelope.h: the envelope read from the bytes)
 * against its tree path: newline-separated messages are fed to two sessions, one with
 * mcp_session_text_envelope on and one with it off, each message followed by turning the loop
 * until both are idle. Byte 0 bit 0: a remote caller; bit 1: a method hook, a transport that
 * vouches its hook declines tools/call (mcp_session_feed_text, JPARSE_REJECT_DUPLICATES |
 * JPARSE_ALLOW_NUL as the /mcp+p2p/1.0.0 frames) instead of mcp_session_feed.
 * Checks: both sessions send the same messages (request ids and durations aside), no crash,
 * no leak, no sanitizer report. */
#include <jansson.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mcp/session.h"
#include "util/jparse.h"
#include "util/log.h"
#include "../tests/support/unuuid.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call, (void)ud;
  *result = json_incref(args);
  return MCP_TOOL_OK;
}

static const mcp_tool_def k_tools[] = {
    {.name = "echo", .category = "f", .fn = echo_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"maximum\":5},"
                     "\"s\":{\"type\":\"string\",\"maxLength\":8,\"default\":\"d\"}}}"},
    {.name = "inline", .category = "f", .fn = echo_fn, .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE},
};

static uv_loop_t g_loop;
static mcp_registry *g_reg;
static mcp_dispatcher *g_disp;
static const mcp_auth g_auth = AUTH_CTX_LOCAL_INIT;

static void init_once(void) {
  if (g_reg) return;
  log_set_level(LOG_OFF);
  uv_loop_init(&g_loop);
  g_reg = mcp_registry_new();
  for (size_t i = 0; i < sizeof k_tools / sizeof k_tools[0]; i++)
    if (mcp_registry_add(g_reg, &k_tools[i]) != 0) abort();
  mcp_dispatcher_opts o = {.threads = 1, .max_threads = 1, .default_timeout_ms = 60000};
  if (mcp_dispatcher_new(&g_loop, g_reg, &o, &g_disp) != 0) abort();
}

/* Each session's output so far, normalised, one message a line. */
typedef struct {
  char *text;
  size_t len;
} outbuf;

static void on_send(void *ud, char *msg, size_t len) {
  outbuf *o = ud;
  json_t *j = json_loadb(msg, len, JSON_ALLOW_NUL, NULL);
  free(msg);
  if (!j) abort();
  json_t *meta = json_object_get(json_object_get(j, "result"), "_meta");
  json_object_del(meta, "io.peermcp/request_id");
  json_object_del(meta, "io.peermcp/duration_ms");
  char *t = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(j);
  if (!t) abort();
  ts_unuuid(t);
  size_t n = strlen(t);
  char *g = realloc(o->text, o->len + n + 2);
  if (!g) abort();
  o->text = g;
  memcpy(o->text + o->len, t, n);
  o->len += n;
  o->text[o->len++] = '\n';
  o->text[o->len] = 0;
  free(t);
}

static bool x_hook(void *ud, mcp_session *s, const char *method, json_t *id, json_t *params) {
  (void)ud, (void)s, (void)id, (void)params;
  return strcmp(method, "x/none") == 0; /* declines everything else, tools/call included */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_once();
  bool ext = size > 0 && (data[0] & 2);
  mcp_session *s[2];
  outbuf out[2] = {{0}, {0}};
  for (int i = 0; i < 2; i++) {
    mcp_session_opts so = {.dispatcher = g_disp, .auth = &g_auth, .remote = size > 0 && (data[0] & 1),
                           .page_size = 1, .max_message_bytes = 4096, .send = on_send, .send_ud = &out[i]};
    if (ext) so.hook = x_hook;
    if (mcp_session_new(&so, &s[i]) != 0) abort();
  }
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    for (int i = 0; i < 2; i++) {
      mcp_session_text_envelope = i == 0;
      if (ext) {
        mcp_session_text t = {.text = p, .len = n, .jflags = JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL,
                              .hook_declines_call = true};
        json_t *v = NULL; /* the transport's check first, as service/frame.c */
        if (jparse_flags(p, n, 2048, t.jflags, &v, NULL, NULL) == 0 && json_is_object(v)) {
          if (i == 0) mcp_session_feed_text(s[i], &t);
          else mcp_session_feed_json(s[i], v);
        }
        json_decref(v);
      } else {
        mcp_session_feed(s[i], p, n);
      }
    }
    mcp_session_text_envelope = true;
    for (int k = 0; k < 100000 && (mcp_session_inflight(s[0]) > 0 || mcp_session_inflight(s[1]) > 0); k++)
      uv_run(&g_loop, UV_RUN_ONCE);
    if (out[0].len != out[1].len || (out[0].len && memcmp(out[0].text, out[1].text, out[0].len) != 0)) {
      fprintf(stderr, "text path:\n%s\ntree path:\n%s\n", out[0].text ? out[0].text : "", out[1].text ? out[1].text : "");
      abort();
    }
    p += n + (nl ? 1 : 0);
  }
  for (int i = 0; i < 2; i++) {
    mcp_session_free(s[i]);
    free(out[i].text);
  }
  uv_run(&g_loop, UV_RUN_NOWAIT);
  return 0;
}

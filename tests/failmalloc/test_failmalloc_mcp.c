/* Allocation failures in the MCP session core: a registry, a dispatcher with inline tools and a
 * session are built and a conversation of both eras runs through them (initialize, tools/list
 * with a cursor, tools/call: success, tool error, invalid arguments, unknown tool; discover,
 * resources/read, bad JSON, an unsupported version), with the Nth allocation failing for every
 * N (tests/support/failmalloc.h).
 *
 * What a run must show, failure or not:
 *  - every answer is either the answer of the run without failure (request ids and durations
 *    aside) or an error: a JSON-RPC -32603, or a CallToolResult with error_type "internal";
 *    never a partial result (a list with a tool missing, a result without a field);
 *  - no request is answered twice, no answer has an id that was not asked; with one failed
 *    allocation (FM_ONCE) every request is answered;
 *  - every call completes (the session goes idle) and everything is freed;
 *  - afterwards, with nothing failing, the same session still answers a tools/call and a
 *    modern tools/list correctly (no state left broken). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../support/failmalloc.h"
#include "mcp/session.h"
#include "util/clock.h"
#include "util/log.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:O}", "echo", args);
  return *result ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}
static mcp_tool_status fail_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:s, s:i}", "error", "it broke", "code", 7);
  return MCP_TOOL_ERROR;
}

static const mcp_tool_def k_tools[] = {
    {.name = "echo", .category = "test", .description = "Echoes its arguments.", .flags = MCP_TOOL_INLINE,
     .fn = echo_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\",\"maxLength\":64},"
                     "\"n\":{\"type\":\"integer\",\"minimum\":0,\"default\":3}},\"required\":[\"text\"],"
                     "\"additionalProperties\":false}",
     .annotations = "{\"readOnlyHint\":true}"},
    {.name = "fail", .category = "test", .description = "Always fails.", .flags = MCP_TOOL_INLINE, .fn = fail_fn},
    {.name = "shaped", .category = "other", .title = "Shaped", .description = "Has an output schema.",
     .flags = MCP_TOOL_INLINE, .fn = echo_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}}",
     .output_schema = "{\"type\":\"object\",\"properties\":{\"echo\":{\"type\":\"object\"}}}"},
};

#define META "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}"

/* The conversation; each line is one message. */
static const char *const k_conv[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\","
    "\"capabilities\":{},\"clientInfo\":{\"name\":\"failmalloc\",\"version\":\"1\"}}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":{\"cursor\":\"t2\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"fail\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":1}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"shaped\",\"arguments\":{\"text\":\"x\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"warning\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"nope/nope\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":",
    "{\"jsonrpc\":\"2.0\",\"id\":\"m1\",\"method\":\"server/discover\",\"params\":{" META "}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"m2\",\"method\":\"tools/list\",\"params\":{" META "}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"m3\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"modern\"}," META "}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"m4\",\"method\":\"resources/read\",\"params\":{\"uri\":\"file:///x\"," META "}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"m5\",\"method\":\"ping\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"1999-01-01\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"m6\",\"method\":\"initialize\",\"params\":{" META "}}",
};
#define NCONV (sizeof k_conv / sizeof k_conv[0])

typedef struct ctx {
  uv_loop_t loop;
  json_t *out;  /* messages the session sent, parsed (test-side: never fails) */
  json_t *ref;  /* the answers of the run without failure, by id text */
  int dropped;  /* answers missing after a failure (the session could not even send an error) */
} ctx;

static void capture(void *ud, char *msg, size_t len) {
  ctx *c = ud;
  fm_pause();
  assert_int_equal(strlen(msg), len);
  json_error_t jerr;
  json_t *j = json_loads(msg, 0, &jerr);
  if (!j) fail_msg("the session sent a message that is not JSON (%s): %.300s", jerr.text, msg);
  json_array_append_new(c->out, j);
  fm_resume();
  free(msg);
}

/* Runs the loop until the session has nothing in flight. A call that never completes fails. */
static void settle(ctx *c, mcp_session *s) {
  int64_t end = clock_mono_ms() + 10000;
  while (mcp_session_inflight(s) > 0) {
    uv_run(&c->loop, UV_RUN_NOWAIT);
    if (clock_mono_ms() > end) {
      fm_pause();
      char *sent = json_dumps(c->out, JSON_COMPACT);
      fail_msg("a call never completed (%zu in flight); sent so far: %.2000s", mcp_session_inflight(s), sent);
    }
  }
}

/* Removes what differs between two correct runs. */
static void normalize(json_t *m) {
  json_t *res = json_object_get(m, "result");
  json_t *meta = json_object_get(res, "_meta");
  json_object_del(meta, "io.peermcp/request_id");
  json_object_del(meta, "io.peermcp/duration_ms");
  json_t *sc = json_object_get(res, "structuredContent");
  json_object_del(sc, "request_id");
  json_object_del(sc, "duration_ms");
  json_t *content = json_object_get(res, "content");
  for (size_t i = 0; i < json_array_size(content); i++) {
    json_t *text = json_object_get(json_array_get(content, i), "text");
    json_t *inner = json_loads(json_string_value(text), 0, NULL);
    if (json_is_object(inner)) {
      json_object_del(inner, "request_id");
      json_object_del(inner, "duration_ms");
      json_object_set_new(json_array_get(content, i), "text", inner); /* compared as JSON */
    } else {
      json_decref(inner);
    }
  }
}

static char *id_key(json_t *m) {
  json_t *id = json_object_get(m, "id");
  return json_dumps(id ? id : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
}

/* An error the session or the dispatcher gives for want of memory: JSON-RPC -32603, or a
 * CallToolResult with error_type "internal" — or "tool_error" / "tool failed", what a handler
 * that could not build its result (it returns MCP_TOOL_ERROR and nothing) comes to. */
static bool kind_is_clean(json_t *o) {
  const char *kind = json_string_value(json_object_get(o, "error_type"));
  const char *msg = json_string_value(json_object_get(o, "error"));
  if (!kind) return false;
  return strcmp(kind, "internal") == 0 || (strcmp(kind, "tool_error") == 0 && msg && strcmp(msg, "tool failed") == 0);
}

static bool is_internal_error(json_t *m) {
  json_t *err = json_object_get(m, "error");
  if (err) return json_integer_value(json_object_get(err, "code")) == MCP_RPC_INTERNAL_ERROR;
  json_t *res = json_object_get(m, "result");
  if (!json_is_true(json_object_get(res, "isError"))) return false;
  if (kind_is_clean(json_object_get(res, "structuredContent"))) return true;
  /* a tool with an output schema keeps its error out of structuredContent: read the text
   * (normalize() has parsed it) */
  return kind_is_clean(json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
}

/* Checks the answers of a run against the reference (the first run without failure); only
 * the requests in `only` (id texts, NULL-terminated) when it is not NULL. */
static void check_answers(ctx *c, bool failed, const char *const *only) {
  fm_pause();
  json_t *seen = json_object();
  int unparsed = 0; /* requests answered -32603 with id null: their text could not be parsed */
  size_t i;
  json_t *m;
  json_array_foreach(c->out, i, m) {
    if (!json_object_get(m, "id")) continue; /* notifications */
    char *k = id_key(m);
    assert_non_null(k);
    if (strcmp(k, "null") != 0) {
      if (json_object_get(seen, k)) fail_msg("request %s answered twice", k);
      json_object_set_new(seen, k, json_true());
    }
    normalize(m);
    json_t *want = json_object_get(c->ref, k);
    if (strcmp(k, "null") == 0 && failed && is_internal_error(m)) { /* unparsed for want of memory */
      unparsed++;
      free(k);
      continue;
    }
    if (!want) fail_msg("an answer with id %s, which no request had", k);
    if (!json_equal(m, want)) {
      if (!failed || !is_internal_error(m)) {
        char *got = json_dumps(m, JSON_COMPACT), *exp = json_dumps(want, JSON_COMPACT);
        fail_msg("answer to %s differs:\n  got  %s\n  want %s", k, got, exp);
      }
    }
    free(k);
  }
  const char *k;
  json_t *v;
  json_object_foreach(c->ref, k, v) {
    if (json_object_get(seen, k) || strcmp(k, "null") == 0) continue;
    bool asked = !only;
    for (const char *const *o = only; o && *o; o++) asked = asked || strcmp(*o, k) == 0;
    if (!asked) continue;
    /* One failed allocation must not cost an answer: the error, at least, still fits (with id
     * null when the request itself could not be parsed). */
    if (failed && fm_current_mode() == FM_ONCE && unparsed > 0) {
      unparsed--;
      continue;
    }
    if (!failed || fm_current_mode() == FM_ONCE) fail_msg("request %s got no answer", k);
    c->dropped++;
  }
  json_decref(seen);
  fm_resume();
}

static void record_ref(ctx *c) {
  fm_pause();
  c->ref = json_object();
  size_t i;
  json_t *m;
  json_array_foreach(c->out, i, m) {
    if (!json_object_get(m, "id")) continue;
    char *k = id_key(m);
    normalize(m);
    json_object_set(c->ref, k, m);
    free(k);
  }
  fm_resume();
}

/* Nothing failing: the session answers a call and a modern list as in the reference. */
static void probe(ctx *c, mcp_session *s) {
  fm_pause();
  json_array_clear(c->out);
  static const char *const msgs[] = {k_conv[5], k_conv[14]};
  for (size_t i = 0; i < 2; i++) mcp_session_feed(s, msgs[i], strlen(msgs[i]));
  settle(c, s);
  assert_int_equal(json_array_size(c->out), 2);
  static const char *const ids[] = {"5", "\"m2\"", NULL};
  check_answers(c, false, ids);
  fm_resume();
}

static const int k_build_errs[] = {-ENOMEM, 0};

static int sc_session(void *ud) {
  ctx *c = ud;
  fm_pause();
  c->out = json_array();
  fm_resume();
  int rc = 0;
  mcp_registry *reg = mcp_registry_new();
  mcp_dispatcher *d = NULL;
  mcp_session *s = NULL;
  if (!reg) rc = (int)FM_STEP(-ENOMEM, k_build_errs);
  for (size_t i = 0; !rc && i < sizeof k_tools / sizeof k_tools[0]; i++)
    rc = (int)FM_STEP(mcp_registry_add(reg, &k_tools[i]), k_build_errs);
  mcp_dispatcher_opts dopts = {.threads = 1, .max_threads = 1};
  if (!rc) rc = (int)FM_STEP(mcp_dispatcher_new(&c->loop, reg, &dopts, &d), k_build_errs);
  static const mcp_auth auth = AUTH_CTX_LOCAL_INIT;
  mcp_session_opts so = {.dispatcher = d, .auth = &auth, .page_size = 2, .send = capture, .send_ud = c};
  if (!rc) rc = (int)FM_STEP(mcp_session_new(&so, &s), k_build_errs);
  if (!rc) {
    for (size_t i = 0; i < NCONV; i++) {
      mcp_session_feed(s, k_conv[i], strlen(k_conv[i]));
      settle(c, s);
    }
    bool failed = fm_failed();
    if (!c->ref) record_ref(c);
    else check_answers(c, failed, NULL);
    if (failed) probe(c, s);
  }
  mcp_session_free(s);
  if (d) mcp_dispatcher_free(d);
  uv_run(&c->loop, UV_RUN_DEFAULT); /* closes the dispatcher's handles */
  mcp_registry_free(reg);
  fm_pause();
  json_decref(c->out);
  c->out = NULL;
  fm_resume();
  return rc;
}

static void test_failmalloc_session(void **state) {
  (void)state;
  ctx c = {0};
  assert_int_equal(uv_loop_init(&c.loop), 0);
  fm_result r = fm_run_scenario("session", sc_session, &c, NULL);
  fprintf(stderr, "failmalloc: session: %d answers not sent while every allocation failed (FM_FROM)\n", c.dropped);
  (void)r;
  json_decref(c.ref);
  assert_int_equal(uv_loop_close(&c.loop), 0);
}

int main(void) {
  fm_init();
  log_set_level(LOG_OFF); /* the session logs each initialize; log.c has its own scenario */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_failmalloc_session),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for mcp/envelope (a JSON-RPC envelope read from the text) and for the session's text
 * path built on it (mcp_session_feed): the reader's spans and verdicts, and — message by
 * message, every malformed form included — that the text path answers exactly as the tree
 * path does (two sessions, one with mcp_session_text_envelope off, outputs compared), with the
 * expected code, and that the text path really handled the message where it should. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mcp/envelope.h"
#include "mcp/session.h"
#include "support/mcpfix.h"
#include "support/wait.h"
#include "util/jparse.h"
#include "support/unuuid.h"

/* ---------- the reader ---------- */

static int rd(const char *t, unsigned flags, mcp_envelope *e) { return mcp_envelope_read(t, strlen(t), 128, flags, e); }

static void assert_span(mcp_env_span s, const char *want) {
  if (!want) {
    assert_null(s.p);
    return;
  }
  assert_non_null(s.p);
  assert_int_equal(s.n, strlen(want));
  assert_memory_equal(s.p, want, s.n);
}

static void test_envelope_reads_spans(void **state) {
  mcp_envelope e;
  assert_int_equal(rd(" {\"jsonrpc\":\"2.0\", \"id\" : 7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                      "\"arguments\":{\"a\":[1,{\"b\":\"}\"}]},\"_meta\":{\"progressToken\":\"t\"}}} ",
                      0, &e),
                   0);
  assert_span(e.jsonrpc, "\"2.0\"");
  assert_span(e.id, "7");
  assert_span(e.method, "\"tools/call\"");
  assert_span(e.name, "\"echo\"");
  assert_span(e.arguments, "{\"a\":[1,{\"b\":\"}\"}]}");
  assert_span(e.meta, "{\"progressToken\":\"t\"}");
  assert_int_equal(e.params_other, 0);
  assert_false(e.params_escaped_key);
  assert_false(e.has_answer);
  assert_int_equal(JPARSE_FOUND_DEPTH(e.found), 5);
  assert_true(mcp_env_is_str(e.jsonrpc, "2.0"));
  assert_false(mcp_env_is_str(e.method, "tools/cal"));
  char b[16];
  assert_true(mcp_env_cstr(e.name, b, sizeof b));
  assert_string_equal(b, "echo");
  assert_false(mcp_env_cstr(e.name, b, 4)); /* does not fit */
  assert_false(mcp_env_cstr(e.id, b, sizeof b)); /* not a string */
  json_t *t;
  assert_int_equal(mcp_envelope_tree(e.arguments, 0, &t), 0);
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(t, "a"), 1), "b")), "}");
  json_decref(t);
  /* an answer; params not an object; other params members counted */
  assert_int_equal(rd("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", 0, &e), 0);
  assert_true(e.has_answer);
  assert_null(e.method.p);
  assert_int_equal(rd("{\"error\":1}", 0, &e), 0);
  assert_true(e.has_answer);
  assert_int_equal(rd("{\"method\":\"x\",\"params\":[1,2]}", 0, &e), 0);
  assert_span(e.params, "[1,2]");
  assert_null(e.name.p);
  assert_int_equal(rd("{\"method\":\"x\",\"params\":{\"task\":{},\"name\":\"n\",\"cursor\":null}}", 0, &e), 0);
  assert_int_equal(e.params_other, 2);
  assert_span(e.name, "\"n\"");
  /* escapes: in a params key (flagged), in values (spans as written) */
  assert_int_equal(rd("{\"method\":\"x\",\"params\":{\"n\\u0061me\":\"a\"}}", 0, &e), 0);
  assert_true(e.params_escaped_key);
  assert_null(e.name.p);
  assert_int_equal(rd("{\"jsonrpc\":\"2\\u002e0\",\"method\":\"p\\\"\"}", 0, &e), 0);
  assert_true(mcp_env_str_escaped(e.jsonrpc));
  assert_false(mcp_env_is_str(e.jsonrpc, "2.0"));
  assert_false(mcp_env_cstr(e.method, b, sizeof b));
  /* more than MCP_ENV_MAX_MEMBERS params members: the rest counted as others */
  assert_int_equal(rd("{\"params\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"name\":\"x\"}}", 0, &e), 0);
  assert_int_equal(e.params_other, 9);
}

/* mcp_envelope_tree builds what jparse builds, on its short paths (integers, plain strings) too. */
static void test_envelope_tree_is_jparse_tree(void **state) {
  static const char *const v[] = {"0", "-0", "7", "-42", "123456789012345678", "-123456789012345678",
                                  "1234567890123456789", "-9223372036854775808", "9223372036854775807", "1.5",
                                  "-1e3", "\"\"", "\"s\"", "\"\\u00e9\"", "\"\xc3\xa9\"", "\"a\\\"b\"", "null",
                                  "true", "{\"a\":[1]}", "[]"};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    json_t *a = NULL, *b = NULL;
    assert_int_equal(jparse(v[i], strlen(v[i]), 8, &b, NULL), 0);
    assert_int_equal(mcp_envelope_tree((mcp_env_span){v[i], strlen(v[i])}, 0, &a), 0);
    if (!json_equal(a, b) || json_typeof(a) != json_typeof(b)) fail_msg("%s: not the tree jparse builds", v[i]);
    json_decref(a);
    json_decref(b);
  }
}

static void test_envelope_duplicates_last_wins_or_refused(void **state) {
  mcp_envelope e;
  const char *t = "{\"id\":1,\"method\":\"a\",\"id\":2,\"params\":{\"name\":\"x\",\"name\":\"y\"},\"method\":\"b\"}";
  assert_int_equal(rd(t, 0, &e), 0);
  assert_span(e.id, "2");
  assert_span(e.method, "\"b\"");
  assert_span(e.name, "\"y\"");
  assert_int_equal(rd(t, JPARSE_REJECT_DUPLICATES, &e), -EINVAL);
  /* nested duplicates too */
  assert_int_equal(rd("{\"params\":{\"arguments\":{\"k\":1,\"k\":2}}}", JPARSE_REJECT_DUPLICATES, &e), -EINVAL);
  assert_int_equal(rd("{\"params\":{\"arguments\":{\"k\":1,\"k\":2}}}", 0, &e), 0);
}

static void test_envelope_refuses_what_the_tree_refuses(void **state) {
  mcp_envelope e;
  static const char *const bad[] = {
      "",
      "{",
      "{\"id\":1,\"method\":",
      "{\"id\":1}x",
      "{\"id\":01}",
      "{\"id\":99999999999999999999}",
      "{\"method\":\"\xff\"}",
      "{\"method\":\"\\ud800\"}",
      "{\"method\":\"a\\u0000\"}",
      "{\"method\":\"a\x01\"}",
      "{'id':1}",
      "{\"id\":1,}",
      "{\"id\" 1}",
      "{\"a\":tru}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *v = NULL;
    int want = jparse(bad[i], strlen(bad[i]), 128, &v, NULL);
    json_decref(v);
    assert_int_equal(want, -EINVAL); /* the tree refuses it: so must the reader */
    assert_int_equal(rd(bad[i], 0, &e), -EINVAL);
  }
  /* \u0000 in a value: refused without JPARSE_ALLOW_NUL, found with it; never in a key */
  assert_int_equal(rd("{\"params\":{\"name\":\"a\\u0000b\"}}", JPARSE_ALLOW_NUL, &e), 0);
  assert_true(e.found & JPARSE_FOUND_NUL);
  assert_int_equal(rd("{\"a\\u0000\":1}", JPARSE_ALLOW_NUL, &e), -EINVAL);
  /* depth: the ceiling is the reader's */
  char deep[300];
  size_t n = 0;
  deep[n++] = '{';
  memcpy(deep + n, "\"p\":", 4), n += 4;
  for (int i = 0; i < 128; i++) deep[n++] = '[';
  for (int i = 0; i < 128; i++) deep[n++] = ']';
  deep[n++] = '}';
  assert_int_equal(mcp_envelope_read(deep, n, 128, 0, &e), -ELOOP);
  assert_int_equal(mcp_envelope_read(deep, n, 129, 0, &e), 0);
}

static void test_envelope_leaves_other_shapes_to_a_tree(void **state) {
  mcp_envelope e;
  assert_int_equal(rd("[1]", 0, &e), MCP_ENV_TREE);
  assert_int_equal(rd("42", 0, &e), MCP_ENV_TREE);
  assert_int_equal(rd("\"x\"", 0, &e), MCP_ENV_TREE);
  assert_int_equal(rd("{\"\\u0069d\":1}", 0, &e), MCP_ENV_TREE); /* an escaped top-level key */
  assert_int_equal(rd("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}", 0, &e), MCP_ENV_TREE);
  assert_int_equal(rd("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8}", 0, &e), 0);
  assert_int_equal(rd(" {}", 0, &e), 0);
}

/* ---------- the session: the text path answers as the tree path does ---------- */

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}
static mcp_tool_status prog_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_call_progress(call, 1, 2, "half");
  *result = json_object();
  return MCP_TOOL_OK;
}

static const mcp_tool_def k_tools[] = {
    {.name = "a1", .category = "a", .fn = echo_fn, .flags = MCP_TOOL_REMOTE},
    {.name = "c1", .category = "c", .fn = echo_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":0}},\"required\":[\"n\"]}"},
    {.name = "prog", .category = "c", .fn = prog_fn},
};

typedef struct {
  ts_mcp m;
  mcp_session *s[2]; /* [0] text path, [1] tree path */
  json_t *out[2];
} fx;

static const mcp_auth k_auth = AUTH_CTX_LOCAL_INIT;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  ts_mcp_open(&f->m);
  ts_mcp_add_tools(&f->m, k_tools, sizeof k_tools / sizeof k_tools[0]);
  ts_mcp_start(&f->m, 2, 0);
  for (int i = 0; i < 2; i++) {
    f->out[i] = json_array();
    mcp_session_opts so = {.dispatcher = f->m.d, .auth = &k_auth, .send = ts_capture, .send_ud = f->out[i],
                           .max_message_bytes = 4096};
    assert_int_equal(mcp_session_new(&so, &f->s[i]), 0);
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  mcp_session_text_envelope = true;
  for (int i = 0; i < 2; i++) {
    mcp_session_free(f->s[i]);
    json_decref(f->out[i]);
  }
  ts_mcp_close(&f->m);
  free(f);
  return 0;
}

/* The per-call fields that differ from run to run. */
static void normalise(json_t *msg) {
  json_t *meta = json_object_get(json_object_get(msg, "result"), "_meta");
  json_object_del(meta, "io.peermcp/request_id");
  json_object_del(meta, "io.peermcp/duration_ms");
}

#define NONE 1 /* no answer expected */
#define ANY 2  /* a result */

typedef struct {
  const char *text;
  int want;  /* an error code, ANY or NONE */
  bool text_path; /* the text reader handles it (else it goes the tree path) */
} case_t;

#define MODERN_META "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}"
#define RQ(rest) "{\"jsonrpc\":\"2.0\"," rest "}"

static const case_t k_cases[] = {
    /* not JSON, not acceptable JSON: the tree path's parse error */
    {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":", -32700, false},
    {"\x01\xff\xfe garbage", -32700, false},
    {RQ("\"id\":1,\"method\":\"ping\"") " x", -32700, false},
    {RQ("\"id\":99999999999999999999,\"method\":\"ping\""), -32700, false},
    {RQ("\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\\ud800\"}"), -32700, false},
    {RQ("\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\\u0000\"}"), -32700, false},
    {RQ("\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\xc0\xaf\"}"), -32700, false},
    {RQ("\"id\":1,\"method\":\"ping\",\"params\":{\"a\":1e999}"), -32700, false},
    {RQ("\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"arguments\":{\"a\":}}"), -32700, false},
    /* shapes left to the tree */
    {"42", -32600, false},
    {"[" RQ("\"id\":1,\"method\":\"ping\"") "]", -32600, false},
    {"[]", -32600, false},
    {RQ("\"\\u0069d\":1,\"method\":\"ping\""), ANY, false},
    {"{\"jsonrpc\":\"2\\u002e0\",\"id\":2,\"method\":\"ping\"}", ANY, false},
    {RQ("\"id\":3,\"method\":\"p\\u0069ng\""), ANY, false},
    {RQ("\"id\":4,\"method\":\"ping\",\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6"), ANY, false},
    {RQ("\"id\":5"), -32600, false},
    {"{}", -32600, false},
    {RQ("\"id\":6,\"result\":{}"), NONE, false},
    {RQ("\"id\":7,\"error\":{\"code\":1,\"message\":\"m\"}"), NONE, false},
    {RQ("\"id\":8,\"method\":\"" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" "\""), -32601, false},
    /* the envelope's errors, read from the text */
    {"{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"ping\"}", -32600, true},
    {"{\"id\":10,\"method\":\"ping\"}", -32600, true},
    {"{\"jsonrpc\":2.0,\"id\":11,\"method\":\"ping\"}", -32600, true},
    {"{\"jsonrpc\":\"2.0 \",\"id\":12,\"method\":\"ping\"}", -32600, true},
    {"{\"jsonrpc\":null,\"id\":{},\"method\":\"ping\"}", -32600, true},
    {RQ("\"id\":null,\"method\":\"ping\""), -32600, true},
    {RQ("\"id\":1.5,\"method\":\"ping\""), -32600, true},
    {RQ("\"id\":{},\"method\":\"ping\""), -32600, true},
    {RQ("\"id\":[1],\"method\":\"ping\""), -32600, true},
    {RQ("\"id\":true,\"method\":\"ping\""), -32600, true},
    {RQ("\"id\":13,\"method\":5"), -32600, true},
    {RQ("\"id\":14,\"method\":null"), -32600, true},
    {RQ("\"id\":{},\"method\":5"), -32600, true},
    {RQ("\"id\":\"s\\\"q\",\"method\":\"ping\""), ANY, true},
    {RQ("\"id\":-9223372036854775808,\"method\":\"ping\""), ANY, true},
    {RQ("\"id\":15,\"method\":\"no/such\""), -32601, true},
    {RQ("\"id\":16,\"method\":\"tools/list\",\"params\":[1]"), -32602, true},
    {RQ("\"id\":17,\"method\":\"tools/list\",\"params\":\"x\""), -32602, true},
    {RQ("\"id\":18,\"method\":\"tools/list\",\"params\":null"), ANY, true},
    {RQ("\"id\":19,\"method\":\"tools/list\",\"params\":{\"_meta\":[]}"), -32602, true},
    {RQ("\"id\":20,\"method\":\"ping\",\"id\":21,\"method\":\"tools/list\""), ANY, true}, /* the last ones win */
    /* tools/call: the fast form and everything next to it */
    {RQ("\"id\":30,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"arguments\":{\"x\":[1,\"\\u00e9\"]}}"), ANY, true},
    {RQ("\"id\":31,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"}"), ANY, true},
    {RQ("\"id\":32,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"arguments\":null}"), ANY, true},
    {RQ("\"id\":33,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"arguments\":\"x\"}"), -32602, true},
    {RQ("\"id\":34,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"arguments\":[]}"), -32602, true},
    {RQ("\"id\":35,\"method\":\"tools/call\",\"params\":{\"name\":5}"), -32602, true},
    {RQ("\"id\":36,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}"), -32602, true},
    {RQ("\"id\":37,\"method\":\"tools/call\",\"params\":{}"), -32602, true},
    {RQ("\"id\":38,\"method\":\"tools/call\""), -32602, true},
    {RQ("\"id\":39,\"method\":\"tools/call\",\"params\":null"), -32602, true},
    {RQ("\"id\":40,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}"), -32602, true},
    {RQ("\"id\":41,\"method\":\"tools/call\",\"params\":{\"name\":\"c1\",\"arguments\":{\"n\":-1}}"), ANY, true},
    {RQ("\"id\":42,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":5}"), -32602, true},
    {RQ("\"id\":43,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":null}"), -32602, true},
    {RQ("\"id\":44,\"method\":\"tools/call\",\"params\":{\"name\":\"prog\",\"_meta\":{\"progressToken\":\"p\"}}"), ANY, true},
    {RQ("\"id\":45,\"method\":\"tools/call\",\"params\":{\"name\":\"prog\",\"_meta\":{\"progressToken\":1.5}}"), ANY, true},
    {RQ("\"id\":46,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":{\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}}"), ANY, true},
    {RQ("\"id\":47,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\",\"name\":\"a1\",\"arguments\":{\"k\":1,\"k\":2}}"), ANY, true},
    {RQ("\"id\":48,\"method\":\"tools/call\",\"params\":{\"n\\u0061me\":\"a1\"}"), ANY, true},
    {RQ("\"id\":49,\"method\":\"tools/call\",\"params\":{\"name\":\"a\\u0031\"}"), ANY, true},
    {RQ("\"id\":50,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"task\":{}}"), ANY, true},
    {RQ("\"id\":51,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8}"), ANY, true},
    {RQ("\"id\":52,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"},\"params\":{\"name\":5}"), -32602, true},
    {RQ("\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"}"), NONE, true},
    {RQ("\"method\":\"tools/call\",\"params\":{\"name\":5}"), NONE, true},
    {RQ("\"id\":53,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"," MODERN_META "}"), ANY, true},
    {RQ("\"id\":54,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"1999-01-01\"}}"), -32022, true},
    {RQ("\"id\":55,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":5}}"), -32602, true},
    {RQ("\"id\":56,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}"), -32602, true},
    {RQ("\"id\":57,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{},\"io.modelcontextprotocol/logLevel\":\"loud\"}}"), -32602, true},
    {RQ("\"id\":58,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{},\"io.modelcontextprotocol/logLevel\":\"debug\"},\"requestState\":5}"), -32602, true},
    {RQ("\"id\":59,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2025-06-18\"}}"), ANY, true},
    {RQ("\"id\":60,\"method\":\"ping\"," MODERN_META), ANY, true}, /* _meta outside params: legacy */
    {RQ("\"id\":61,\"method\":\"ping\",\"params\":{" MODERN_META "}"), -32601, true},
    {RQ("\"id\":62,\"method\":\"server/discover\""), -32602, true},
    {RQ("\"id\":63,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"}"), ANY, true},
    {RQ("\"id\":63,\"method\":\"tools/call\",\"params\":{\"name\":\"a1\"}"), ANY, true},
    /* notifications */
    {RQ("\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":99}"), NONE, true},
    {RQ("\"method\":\"notifications/whatever\""), NONE, true},
    {RQ("\"method\":\"notifications/initialized\""), NONE, true},
    {RQ("\"id\":64,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}"), ANY, true},
};

/* The last answer to a case: its error code, ANY for a result, NONE when nothing was sent. */
static int outcome(const json_t *out, size_t before) {
  if (json_array_size(out) == before) return NONE;
  const json_t *m = json_array_get(out, json_array_size(out) - 1);
  if (json_object_get(m, "result")) return ANY;
  return (int)ts_error_code(m);
}

static void test_session_text_path_answers_as_the_tree_path(void **state) {
  fx *f = *state;
  for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
    const case_t *c = &k_cases[i];
    size_t before[2] = {json_array_size(f->out[0]), json_array_size(f->out[1])};
    size_t fed = mcp_session_text_envelope_fed;
    mcp_session_text_envelope = true;
    mcp_session_feed(f->s[0], c->text, strlen(c->text));
    bool took = mcp_session_text_envelope_fed != fed;
    mcp_session_text_envelope = false;
    mcp_session_feed(f->s[1], c->text, strlen(c->text));
    assert_int_equal(mcp_session_text_envelope_fed, fed + took); /* the switch works */
    TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, mcp_session_inflight(f->s[0]) == 0 && mcp_session_inflight(f->s[1]) == 0);
    size_t n0 = json_array_size(f->out[0]) - before[0], n1 = json_array_size(f->out[1]) - before[1];
    if (took != c->text_path || n0 != n1 || outcome(f->out[0], before[0]) != c->want)
      fail_msg("case %zu %s: text path %d (want %d), %zu vs %zu messages, outcome %d (want %d)", i, c->text, took,
               c->text_path, n0, n1, outcome(f->out[0], before[0]), c->want);
    for (size_t k = 0; k < n0; k++) {
      json_t *a = json_array_get(f->out[0], before[0] + k), *b = json_array_get(f->out[1], before[1] + k);
      normalise(a);
      normalise(b);
      char *ta = json_dumps(a, JSON_SORT_KEYS), *tb = json_dumps(b, JSON_SORT_KEYS);
      ts_unuuid(ta);
      ts_unuuid(tb);
      if (strcmp(ta, tb) != 0) fail_msg("case %zu %s: message %zu differs:\n text %s\n tree %s", i, c->text, k, ta, tb);
      free(ta);
      free(tb);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_envelope_reads_spans),
      cmocka_unit_test(test_envelope_tree_is_jparse_tree),
      cmocka_unit_test(test_envelope_duplicates_last_wins_or_refused),
      cmocka_unit_test(test_envelope_refuses_what_the_tree_refuses),
      cmocka_unit_test(test_envelope_leaves_other_shapes_to_a_tree),
      cmocka_unit_test_setup_teardown(test_session_text_path_answers_as_the_tree_path, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for tools/meta: the four meta-tools' result shapes (mcp_server_spec.md §2.4), their
 * errors with available_* and request_id (§2.5), the remote filter, and the fixed bugs (§10):
 * isError on errors, real JSON Schema, unknown params refused. Runs through the real dispatcher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mcp/dispatch.h"
#include "mcp/schema.h"
#include "support/mcpfix.h"
#include "tools/meta.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}

static mcp_tool_status fail_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:s, s:i}", "error", "it broke", "code_hint", 7);
  return MCP_TOOL_ERROR;
}

static const mcp_tool_def k_tools[] = {
    {.name = "add", .category = "math",
     .description = "Add two integers.\nLonger explanation that tools_list_tools must not show.",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"description\":\"first\"},"
                     "\"b\":{\"type\":\"integer\",\"default\":1}},\"required\":[\"a\"]}",
     .output_schema = "{\"type\":\"object\"}", .flags = MCP_TOOL_REMOTE, .fn = echo_fn},
    {.name = "long_doc", .category = "math",
     .description = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
                    "OVERFLOW",
     .fn = echo_fn},
    {.name = "worded", .category = "math",
     .description = "Counts the words of a text and returns them with their positions, their lengths and the longest "
                    "word found\nsecond line",
     .fn = echo_fn},
    {.name = "open", .category = "math", .input_schema = "{\"type\":\"object\",\"additionalProperties\":true,"
                                                         "\"properties\":{\"x\":{}}}",
     .fn = echo_fn},
    {.name = "broken", .category = "local_only", .fn = fail_fn},
};

typedef ts_mcp fixture;

static const mcp_auth k_local = AUTH_CTX_LOCAL_INIT;
static const mcp_auth k_peer = {.kind = AUTH_KIND_PEER, .peer_id = "12D3KooWpeer", .scopes = AUTH_SCOPES_INIT(AUTH_TOOL_CALL)};

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  ts_mcp_open(f);
  assert_int_equal(tools_meta_register(f->reg), 0);
  ts_mcp_add_tools(f, k_tools, sizeof k_tools / sizeof k_tools[0]);
  assert_int_equal(mcp_registry_describe_category(f->reg, "math", "Arithmetic"), 0);
  ts_mcp_start(f, 2, 4);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  ts_mcp_close(f);
  free(f);
  return 0;
}

/* Calls `tool` with args and returns the envelope (owned by the fixture). */
static json_t *call(fixture *f, const char *tool, const char *args_json, const mcp_auth *auth) {
  json_error_t e;
  json_t *args = json_loads(args_json, 0, &e);
  if (!args) fail_msg("bad args %s", args_json);
  mcp_call_request rq = {.tool = tool, .args = args, .auth = auth, .remote = auth != &k_local};
  json_t *env = ts_mcp_call(f, &rq);
  json_decref(args);
  return env;
}

static const char *sget(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static json_t *res(json_t *env) { return json_object_get(env, "result"); }

static bool array_has(const json_t *a, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return true;
  return false;
}

static void test_meta_list_categories_sorted_with_optional_counts(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_list_categories", "{}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  json_t *r = res(env);
  assert_string_equal(sget(r, "status"), "success");
  json_t *cats = json_object_get(r, "categories");
  assert_int_equal(json_integer_value(json_object_get(r, "category_count")), json_array_size(cats));
  assert_int_equal(json_array_size(cats), 3);
  assert_string_equal(sget(json_array_get(cats, 0), "name"), "local_only");
  assert_string_equal(sget(json_array_get(cats, 1), "name"), "math");
  assert_string_equal(sget(json_array_get(cats, 1), "description"), "Arithmetic");
  assert_true(json_is_false(json_object_get(json_array_get(cats, 1), "lazy")));
  assert_null(json_object_get(json_array_get(cats, 1), "tool_count"));
  assert_string_equal(sget(json_array_get(cats, 2), "name"), "meta");
  env = call(f, "tools_list_categories", "{\"include_count\":true}", &k_local);
  cats = json_object_get(res(env), "categories");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(cats, 1), "tool_count")), 4);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(cats, 2), "tool_count")), 4);
}

static void test_meta_remote_caller_sees_only_remote_tools(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_list_categories", "{\"include_count\":true}", &k_peer);
  json_t *cats = json_object_get(res(env), "categories");
  assert_int_equal(json_array_size(cats), 2); /* local_only has no remote tool */
  assert_string_equal(sget(json_array_get(cats, 0), "name"), "math");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(cats, 0), "tool_count")), 1);
  env = call(f, "tools_list_tools", "{\"category\":\"local_only\"}", &k_peer);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_false(array_has(json_object_get(env, "available_categories"), "local_only"));
  env = call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"long_doc\"}", &k_peer);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_non_null(strstr(sget(env, "error"), "not found"));
  assert_true(array_has(json_object_get(env, "available_tools"), "add"));
  assert_false(array_has(json_object_get(env, "available_tools"), "long_doc"));
}

static void test_meta_list_tools_shape_and_first_line_descriptions(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_list_tools", "{\"category\":\"math\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  json_t *r = res(env);
  assert_string_equal(sget(r, "status"), "success");
  assert_string_equal(sget(r, "category"), "math");
  assert_string_equal(sget(r, "description"), "Arithmetic");
  assert_int_equal(json_integer_value(json_object_get(r, "tool_count")), 4);
  json_t *tools = json_object_get(r, "tools");
  assert_string_equal(sget(json_array_get(tools, 0), "name"), "add");
  assert_string_equal(sget(json_array_get(tools, 0), "description"), "Add two integers.");
  /* one word longer than the limit: cut where it must, 99 characters and "…" */
  assert_string_equal(sget(json_array_get(tools, 1), "name"), "long_doc");
  const char *d = sget(json_array_get(tools, 1), "description");
  assert_int_equal(strlen(d), 99 + 3);
  assert_string_equal(d + 99, "\xe2\x80\xa6");
  /* words: cut after a whole word, then "…", at most 100 characters in all */
  assert_string_equal(sget(json_array_get(tools, 3), "name"), "worded");
  d = sget(json_array_get(tools, 3), "description");
  assert_string_equal(d, "Counts the words of a text and returns them with their positions, their lengths and the "
                         "longest\xe2\x80\xa6");
}

static void test_meta_list_tools_unknown_category_is_error_with_available(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_list_tools", "{\"category\":\"nope\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(sget(env, "status"), "error");
  assert_string_equal(sget(env, "error"), "Category 'nope' not found");
  assert_true(array_has(json_object_get(env, "available_categories"), "math"));
  assert_int_equal(strlen(sget(env, "request_id")), 36);
  json_t *r = mcp_dispatch_call_result(env);
  assert_true(json_is_true(json_object_get(r, "isError")));
  json_decref(r);
}

static void test_meta_get_schema_answers_real_json_schema(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_get_schema", "{\"category\":\"math\",\"tool\":\"add\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  json_t *s = json_object_get(res(env), "schema");
  assert_string_equal(sget(s, "name"), "add");
  assert_string_equal(sget(s, "category"), "math");
  json_t *in = json_object_get(s, "inputSchema");
  assert_string_equal(sget(in, "type"), "object");
  assert_string_equal(sget(json_object_get(json_object_get(in, "properties"), "a"), "type"), "integer");
  assert_true(json_is_object(json_object_get(s, "outputSchema")));
  json_t *a = json_object_get(json_object_get(s, "parameters"), "a");
  assert_true(json_is_true(json_object_get(a, "required")));
  assert_string_equal(sget(a, "type"), "integer"); /* a JSON Schema type, not a Python annotation */
  json_t *b = json_object_get(json_object_get(s, "parameters"), "b");
  assert_true(json_is_false(json_object_get(b, "required")));
  assert_int_equal(json_integer_value(json_object_get(b, "default")), 1);
  assert_string_equal(sget(s, "schema_version"), "1.0");
  assert_true(json_is_false(json_object_get(s, "deprecated")));
  /* the returned schema is one the validator accepts */
  char err[256];
  assert_int_equal(mcp_schema_check(in, err, sizeof err), 0);
}

/* Tool names are unique: tools_get_schema needs no category (Python made it required). */
static void test_meta_get_schema_category_is_optional(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_get_schema", "{\"tool\":\"add\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  assert_string_equal(sget(json_object_get(res(env), "schema"), "category"), "math");
  env = call(f, "tools_get_schema", "{\"tool\":\"nope\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(sget(env, "status"), "error");
  assert_string_equal(sget(env, "error"), "Tool 'nope' not found");
  assert_true(array_has(json_object_get(env, "available_categories"), "math"));
  /* a tool hidden from the caller is not found either */
  env = call(f, "tools_get_schema", "{\"tool\":\"long_doc\"}", &k_peer);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
}

static void test_meta_get_schema_unknown_tool_lists_available_tools(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_get_schema", "{\"category\":\"math\",\"tool\":\"sub\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(sget(env, "error"), "Tool 'sub' not found in category 'math'");
  assert_true(array_has(json_object_get(env, "available_tools"), "add"));
  env = call(f, "tools_get_schema", "{\"category\":\"meta\",\"tool\":\"add\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR); /* add exists, but not in that category */
  env = call(f, "tools_get_schema", "{\"category\":\"zzz\",\"tool\":\"add\"}", &k_local);
  assert_string_equal(sget(env, "error"), "Category 'zzz' not found");
}

static void test_meta_dispatch_success_returns_target_envelope(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"add\",\"params\":{\"a\":2}}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  json_t *inner = res(env);
  assert_string_equal(sget(inner, "status"), "success");
  assert_string_equal(sget(inner, "category"), "math");
  assert_string_equal(sget(inner, "tool"), "add");
  assert_int_equal(strlen(sget(inner, "request_id")), 36);
  assert_true(json_is_number(json_object_get(inner, "duration_ms")));
  json_t *echo = json_object_get(json_object_get(inner, "result"), "echo");
  assert_int_equal(json_integer_value(json_object_get(echo, "a")), 2);
  assert_int_equal(json_integer_value(json_object_get(echo, "b")), 1); /* default filled */
}

static void test_meta_dispatch_params_null_string_and_absent(void **state) {
  fixture *f = *state;
  call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"open\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"open\",\"params\":null}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  json_t *env = call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"add\",\"params\":\"{\\\"a\\\":5}\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(res(env), "result"), "echo"), "a")), 5);
  env = call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"add\",\"params\":\"[1]\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_non_null(strstr(sget(env, "error"), "params must be an object"));
}

static void test_meta_dispatch_unknown_category_and_tool_errors(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_dispatch", "{\"category\":\"nope\",\"tool\":\"add\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(sget(env, "status"), "error");
  assert_string_equal(sget(env, "error"), "Category 'nope' not found");
  assert_string_equal(sget(env, "error_type"), "unknown_category");
  assert_true(array_has(json_object_get(env, "available_categories"), "math"));
  assert_non_null(sget(env, "request_id"));
  env = call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"mul\"}", &k_local);
  assert_string_equal(sget(env, "error"), "Tool 'mul' not found in category 'math'");
  assert_true(array_has(json_object_get(env, "available_tools"), "open"));
  assert_non_null(sget(env, "request_id"));
  /* what an MCP client reads (Python callers test "status"): the CallToolResult keeps it */
  json_t *r = mcp_dispatch_call_result(env);
  assert_true(json_is_true(json_object_get(r, "isError")));
  json_t *sc = json_object_get(r, "structuredContent");
  assert_string_equal(sget(sc, "status"), "error");
  assert_string_equal(sget(sc, "error_type"), "unknown_tool");
  const char *text = json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
  assert_non_null(strstr(text, "\"status\":\"error\""));
  json_decref(r);
}

static void test_meta_dispatch_refuses_undeclared_params(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"add\",\"params\":{\"a\":1,\"c\":2}}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_non_null(strstr(sget(env, "error"), "$.c: unexpected parameter"));
  assert_string_equal(sget(env, "error_type"), "invalid_arguments");
  assert_non_null(json_object_get(json_object_get(env, "parameters"), "a"));
  /* a schema that says additionalProperties: true keeps them */
  call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"open\",\"params\":{\"x\":1,\"y\":2}}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_OK);
}

static void test_meta_dispatch_invalid_params_name_the_path(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"add\",\"params\":{\"a\":\"x\"}}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_non_null(strstr(sget(env, "error"), "$.a: expected integer, got string"));
  assert_string_equal(sget(env, "error_type"), "invalid_arguments"); /* the target's kind, relayed */
  env = call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"add\",\"params\":{}}", &k_local);
  assert_non_null(strstr(sget(env, "error"), "$.a: required property is missing"));
}

static void test_meta_dispatch_target_tool_error_is_error(void **state) {
  fixture *f = *state;
  json_t *env = call(f, "tools_dispatch", "{\"category\":\"local_only\",\"tool\":\"broken\"}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(sget(env, "error"), "it broke");
  assert_int_equal(json_integer_value(json_object_get(env, "code_hint")), 7);
  json_t *r = mcp_dispatch_call_result(env);
  assert_true(json_is_true(json_object_get(r, "isError"))); /* never a "successful" error */
  json_decref(r);
}

static void test_meta_tools_reject_unknown_arguments(void **state) {
  fixture *f = *state;
  call(f, "tools_list_categories", "{\"include_counts\":true}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_INVALID_ARGUMENTS);
  call(f, "tools_list_tools", "{}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_INVALID_ARGUMENTS);
  call(f, "tools_dispatch", "{\"category\":\"math\",\"tool\":\"add\",\"parms\":{}}", &k_local);
  assert_int_equal(f->st, MCP_DISPATCH_INVALID_ARGUMENTS);
}

static void test_meta_registered_as_inline_except_dispatch(void **state) {
  fixture *f = *state;
  const mcp_tool *t = mcp_registry_find(f->reg, "tools_list_tools");
  assert_non_null(t);
  assert_true(mcp_tool_def_of(t)->flags & MCP_TOOL_INLINE);
  t = mcp_registry_find(f->reg, "tools_dispatch");
  assert_false(mcp_tool_def_of(t)->flags & MCP_TOOL_INLINE);
  assert_string_equal(mcp_tool_def_of(t)->category, "meta");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_meta_list_categories_sorted_with_optional_counts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_remote_caller_sees_only_remote_tools, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_list_tools_shape_and_first_line_descriptions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_list_tools_unknown_category_is_error_with_available, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_get_schema_answers_real_json_schema, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_get_schema_category_is_optional, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_get_schema_unknown_tool_lists_available_tools, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_dispatch_success_returns_target_envelope, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_dispatch_params_null_string_and_absent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_dispatch_unknown_category_and_tool_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_dispatch_refuses_undeclared_params, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_dispatch_invalid_params_name_the_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_dispatch_target_tool_error_is_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_tools_reject_unknown_arguments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_meta_registered_as_inline_except_dispatch, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

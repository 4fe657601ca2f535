/* Unit tests for mcp/schema: one test per keyword rule, defaults, paths in messages, bad schemas. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mcp/schema.h"

static json_t *J(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  if (!v) fail_msg("bad test JSON %s: %s", text, e.text);
  return v;
}

/* Validates `inst` against `schema`; returns rc and leaves the message in err. */
static int V(const char *schema, const char *inst, char *err, size_t errlen) {
  json_t *s = J(schema), *i = J(inst);
  int rc = mcp_schema_validate(s, i, err, errlen);
  json_decref(s);
  json_decref(i);
  return rc;
}

#define OK(schema, inst)                                                                  \
  do {                                                                                    \
    char e_[256];                                                                         \
    if (V(schema, inst, e_, sizeof e_) != 0) fail_msg("expected %s valid: %s", inst, e_); \
  } while (0)

#define BAD(schema, inst, frag)                                                              \
  do {                                                                                       \
    char e_[256];                                                                            \
    if (V(schema, inst, e_, sizeof e_) != -EINVAL) fail_msg("expected %s invalid", inst);    \
    if (!strstr(e_, frag)) fail_msg("message for %s: \"%s\" lacks \"%s\"", inst, e_, frag); \
  } while (0)

static int C(const char *schema, char *err, size_t errlen) {
  json_t *s = J(schema);
  int rc = mcp_schema_check(s, err, errlen);
  json_decref(s);
  return rc;
}

#define CHECK_OK(schema)                                                               \
  do {                                                                                 \
    char e_[256];                                                                      \
    if (C(schema, e_, sizeof e_) != 0) fail_msg("schema %s rejected: %s", schema, e_); \
  } while (0)

#define CHECK_BAD(schema, frag)                                                                 \
  do {                                                                                          \
    char e_[256];                                                                               \
    if (C(schema, e_, sizeof e_) != -EINVAL) fail_msg("schema %s accepted", schema);            \
    if (!strstr(e_, frag)) fail_msg("message for %s: \"%s\" lacks \"%s\"", schema, e_, frag); \
  } while (0)

static void test_schema_type_single_and_union(void **state) {
  (void)state;
  OK("{\"type\":\"string\"}", "\"x\"");
  BAD("{\"type\":\"string\"}", "1", "$: expected string, got integer");
  OK("{\"type\":\"object\"}", "{}");
  BAD("{\"type\":\"object\"}", "[]", "expected object, got array");
  OK("{\"type\":\"array\"}", "[]");
  OK("{\"type\":\"boolean\"}", "false");
  BAD("{\"type\":\"boolean\"}", "0", "expected boolean, got integer");
  OK("{\"type\":\"null\"}", "null");
  OK("{\"type\":\"number\"}", "1");
  OK("{\"type\":\"number\"}", "1.5");
  BAD("{\"type\":\"number\"}", "\"1\"", "expected number, got string");
  OK("{\"type\":[\"string\",\"null\"]}", "null");
  BAD("{\"type\":[\"string\",\"null\"]}", "3", "expected string or null, got integer");
}

static void test_schema_integer_accepts_integral_reals_only(void **state) {
  (void)state;
  OK("{\"type\":\"integer\"}", "3");
  OK("{\"type\":\"integer\"}", "3.0");
  BAD("{\"type\":\"integer\"}", "3.5", "expected integer, got number");
  BAD("{\"type\":\"integer\"}", "true", "expected integer, got boolean");
}

static void test_schema_properties_report_nested_paths(void **state) {
  (void)state;
  const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\",\"properties\":{"
                  "\"list\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
                  "\"n\":{\"type\":\"integer\"}}}}}}}}";
  OK(s, "{\"a\":{\"list\":[{\"n\":1},{\"n\":2}]}}");
  BAD(s, "{\"a\":{\"list\":[{\"n\":1},{\"n\":\"two\"}]}}", "$.a.list[1].n: expected integer, got string");
  BAD("{\"properties\":{\"odd key\":{\"type\":\"string\"}}}", "{\"odd key\":1}", "$[\"odd key\"]: expected string");
}

static void test_schema_required_names_the_missing_property(void **state) {
  (void)state;
  const char *s = "{\"type\":\"object\",\"required\":[\"category\",\"tool\"],"
                  "\"properties\":{\"category\":{\"type\":\"string\"},\"tool\":{\"type\":\"string\"}}}";
  OK(s, "{\"category\":\"a\",\"tool\":\"b\"}");
  BAD(s, "{\"category\":\"a\"}", "$.tool: required property is missing");
}

static void test_schema_additional_properties_false_and_schema(void **state) {
  (void)state;
  const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false}";
  OK(s, "{\"a\":1}");
  BAD(s, "{\"a\":1,\"b\":2}", "$.b: unexpected property");
  const char *t = "{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":{\"type\":\"integer\"}}";
  OK(t, "{\"a\":\"x\",\"b\":2}");
  BAD(t, "{\"a\":\"x\",\"b\":\"y\"}", "$.b: expected integer, got string");
  OK("{\"type\":\"object\",\"additionalProperties\":true}", "{\"z\":1}");
}

static void test_schema_enum_and_const_compare_by_value(void **state) {
  (void)state;
  OK("{\"enum\":[\"a\",\"b\",1]}", "\"b\"");
  OK("{\"enum\":[\"a\",\"b\",1]}", "1.0"); /* 1 == 1.0 in JSON Schema */
  BAD("{\"enum\":[\"a\",\"b\"]}", "\"c\"", "value is not one of [\"a\",\"b\"]");
  OK("{\"const\":{\"x\":[1,2]}}", "{\"x\":[1,2]}");
  BAD("{\"const\":{\"x\":[1,2]}}", "{\"x\":[2,1]}", "value must be {\"x\":[1,2]}");
  BAD("{\"const\":null}", "0", "value must be null");
}

static void test_schema_numeric_bounds(void **state) {
  (void)state;
  OK("{\"minimum\":1,\"maximum\":10}", "1");
  OK("{\"minimum\":1,\"maximum\":10}", "10");
  BAD("{\"minimum\":1}", "0", "0 is less than minimum 1");
  BAD("{\"maximum\":10}", "10.5", "10.5 is greater than maximum 10");
  BAD("{\"exclusiveMinimum\":1}", "1", "must be greater than 1");
  OK("{\"exclusiveMinimum\":1}", "1.01");
  BAD("{\"exclusiveMaximum\":5}", "5", "must be less than 5");
  /* draft-04 boolean form */
  BAD("{\"minimum\":1,\"exclusiveMinimum\":true}", "1", "exclusive minimum");
  OK("{\"minimum\":9007199254740993}", "9007199254740993"); /* integers compared exactly */
  BAD("{\"minimum\":9007199254740993}", "9007199254740992", "less than minimum");
  OK("{\"minimum\":5}", "\"not a number\""); /* bounds apply to numbers only */
}

static void test_schema_string_lengths_count_code_points(void **state) {
  (void)state;
  OK("{\"minLength\":2,\"maxLength\":3}", "\"ab\"");
  BAD("{\"minLength\":2}", "\"a\"", "shorter than minLength 2");
  BAD("{\"maxLength\":3}", "\"abcd\"", "longer than maxLength 3");
  /* "héé" is 3 code points, 5 bytes; "日本語" 3 code points, 9 bytes; 😀 is 1 code point */
  OK("{\"maxLength\":3}", "\"h\\u00e9\\u00e9\"");
  OK("{\"maxLength\":3,\"minLength\":3}", "\"\\u65e5\\u672c\\u8a9e\"");
  OK("{\"maxLength\":1,\"minLength\":1}", "\"\\ud83d\\ude00\"");
  BAD("{\"maxLength\":2}", "\"\\u65e5\\u672c\\u8a9e\"", "(3 characters)");
}

static void test_schema_pattern_uses_search_semantics_and_ecma_escapes(void **state) {
  (void)state;
  OK("{\"pattern\":\"^[a-z]+$\"}", "\"abc\"");
  BAD("{\"pattern\":\"^[a-z]+$\"}", "\"abC\"", "does not match pattern ^[a-z]+$");
  OK("{\"pattern\":\"b\"}", "\"abc\""); /* unanchored */
  OK("{\"pattern\":\"^\\\\d{3}-\\\\d{4}$\"}", "\"555-1234\"");
  BAD("{\"pattern\":\"^\\\\d+$\"}", "\"12a\"", "does not match");
  OK("{\"pattern\":\"^\\\\w+\\\\s\\\\S+$\"}", "\"hello_1 w\"");
  OK("{\"pattern\":\"^[\\\\w.-]+$\"}", "\"a-b.c_d\"");
  BAD("{\"pattern\":\"^[\\\\w.-]+$\"}", "\"a b\"", "does not match");
  OK("{\"pattern\":\"^(?:ab)+$\"}", "\"abab\"");
  OK("{\"pattern\":\"^a\\\\.b$\"}", "\"a.b\"");
  BAD("{\"pattern\":\"^a\\\\.b$\"}", "\"axb\"", "does not match");
  OK("{\"pattern\":\"^[^\\\\]]+$\"}", "\"abc\"");
  BAD("{\"pattern\":\"^[^\\\\]]+$\"}", "\"a]c\"", "does not match");
  /* "." and bracket expressions match code points, not bytes */
  OK("{\"pattern\":\"^.{3}$\"}", "\"h\\u00e9\\u00e9\"");
  OK("{\"pattern\":\"^.{3}$\"}", "\"\\u65e5\\u672c\\u8a9e\"");
  BAD("{\"pattern\":\"^.{3}$\"}", "\"\\u65e5\\u672c\"", "does not match");
  OK("{\"pattern\":\"^[\\u00e9a]+$\"}", "\"a\\u00e9a\"");
  /* a NUL inside the string does not end matching early */
  BAD("{\"pattern\":\"^[a-z]*$\"}", "\"ab\\u0000C\"", "does not match");
}

static void test_schema_items_and_item_counts(void **state) {
  (void)state;
  const char *s = "{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,\"maxItems\":2}";
  OK(s, "[\"a\"]");
  BAD(s, "[]", "fewer than minItems 1");
  BAD(s, "[\"a\",\"b\",\"c\"]", "more than maxItems 2");
  BAD(s, "[\"a\",3]", "$[1]: expected string, got integer");
}

static void test_schema_defaults_are_filled_and_validated(void **state) {
  (void)state;
  json_t *s = J("{\"type\":\"object\",\"properties\":{"
                "\"include_count\":{\"type\":\"boolean\",\"default\":false},"
                "\"opts\":{\"type\":\"object\",\"default\":{},\"properties\":{\"n\":{\"type\":\"integer\",\"default\":5}}},"
                "\"given\":{\"type\":\"string\",\"default\":\"d\"}}}");
  json_t *i = J("{\"given\":\"x\"}");
  char err[256];
  assert_int_equal(mcp_schema_validate(s, i, err, sizeof err), 0);
  assert_true(json_is_false(json_object_get(i, "include_count")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(i, "opts"), "n")), 5);
  assert_string_equal(json_string_value(json_object_get(i, "given")), "x");
  /* the schema's own default object is not aliased into the instance */
  assert_int_equal(json_object_size(json_object_get(json_object_get(s, "properties"), "opts")) > 0, 1);
  assert_int_equal(json_object_size(json_object_get(json_object_get(json_object_get(s, "properties"), "opts"), "default")), 0);
  json_decref(i);
  json_decref(s);
}

static void test_schema_failed_anyof_branch_leaves_no_defaults(void **state) {
  (void)state;
  json_t *s = J("{\"anyOf\":[{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{},\"x\":{\"default\":1}}},"
                "{\"type\":\"object\",\"required\":[\"b\"],\"properties\":{\"b\":{},\"y\":{\"default\":2}}}]}");
  json_t *i = J("{\"b\":true}");
  char err[256];
  assert_int_equal(mcp_schema_validate(s, i, err, sizeof err), 0);
  assert_null(json_object_get(i, "x"));
  assert_int_equal(json_integer_value(json_object_get(i, "y")), 2);
  json_decref(i);
  json_decref(s);
}

static void test_schema_anyof_oneof_allof(void **state) {
  (void)state;
  const char *any = "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}";
  OK(any, "\"a\"");
  OK(any, "2");
  BAD(any, "2.5", "matches none of the anyOf schemas (first: $: expected string");
  const char *one = "{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}";
  OK(one, "-1");  /* only the first */
  OK(one, "0.5"); /* only the second */
  BAD(one, "3", "matches 2 of the oneOf schemas");
  BAD("{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}", "1", "matches none of the oneOf");
  const char *all = "{\"allOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}";
  OK(all, "4");
  BAD(all, "2", "less than minimum 3");
}

static void test_schema_local_refs_resolve(void **state) {
  (void)state;
  const char *s = "{\"$defs\":{\"pos\":{\"type\":\"integer\",\"minimum\":1}},"
                  "\"definitions\":{\"name\":{\"type\":\"string\"}},"
                  "\"type\":\"object\",\"properties\":{\"n\":{\"$ref\":\"#/$defs/pos\"},"
                  "\"s\":{\"$ref\":\"#/definitions/name\"}}}";
  CHECK_OK(s);
  OK(s, "{\"n\":2,\"s\":\"x\"}");
  BAD(s, "{\"n\":0}", "$.n: 0 is less than minimum 1");
  BAD(s, "{\"s\":0}", "$.s: expected string");
  /* recursive schema: a tree */
  const char *tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\","
                     "\"items\":{\"$ref\":\"#/$defs/node\"}}}}},\"$ref\":\"#/$defs/node\"}";
  CHECK_OK(tree);
  OK(tree, "{\"kids\":[{\"kids\":[]},{}]}");
  BAD(tree, "{\"kids\":[{\"kids\":[1]}]}", "$.kids[0].kids[0]: expected object");
}

static void test_schema_ref_cycle_hits_depth_limit(void **state) {
  (void)state;
  BAD("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}", "1", "nesting deeper than");
}

static void test_schema_deep_instance_hits_depth_limit(void **state) {
  (void)state;
  /* a schema that recurses into arrays, and an instance nested 100 deep */
  const char *s = "{\"$defs\":{\"a\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/a\"}}},\"$ref\":\"#/$defs/a\"}";
  char inst[256];
  memset(inst, '[', 100);
  memset(inst + 100, ']', 100);
  inst[200] = 0;
  BAD(s, inst, "nesting deeper than");
  memset(inst, '[', 10);
  memset(inst + 10, ']', 10);
  inst[20] = 0;
  OK(s, inst);
}

static void test_schema_boolean_schemas_and_unknown_keywords(void **state) {
  (void)state;
  OK("true", "{\"anything\":1}");
  BAD("false", "1", "no value is allowed here");
  BAD("{\"properties\":{\"x\":false}}", "{\"x\":1}", "$.x: no value is allowed here");
  OK("{\"title\":\"T\",\"description\":\"d\",\"format\":\"uri\",\"$schema\":\"x\",\"examples\":[1]}", "\"not a uri\"");
}

static void test_schema_missing_instance_is_an_error(void **state) {
  (void)state;
  json_t *s = J("{\"type\":\"object\"}");
  char err[128];
  assert_int_equal(mcp_schema_validate(s, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "$: value is missing"));
  json_decref(s);
}

static void test_schema_long_paths_are_truncated_safely(void **state) {
  (void)state;
  char key[400];
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = 0;
  json_t *s = json_pack("{s:{s:{s:s}}}", "properties", key, "type", "string");
  json_t *i = json_pack("{s:i}", key, 1);
  char err[1024];
  assert_int_equal(mcp_schema_validate(s, i, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "expected string"));
  char tiny[8];
  assert_int_equal(mcp_schema_validate(s, i, tiny, sizeof tiny), -EINVAL);
  assert_int_equal(strlen(tiny), 7);
  json_decref(s);
  json_decref(i);
}

static void test_schema_check_accepts_the_meta_tool_schemas(void **state) {
  (void)state;
  CHECK_OK("{\"type\":\"object\",\"properties\":{\"include_count\":{\"type\":\"boolean\",\"default\":false}},"
           "\"additionalProperties\":false}");
  CHECK_OK("{\"type\":\"object\",\"properties\":{\"category\":{\"type\":\"string\",\"minLength\":1},"
           "\"tool\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9_.-]{1,128}$\"},"
           "\"params\":{\"type\":[\"object\",\"null\"]}},\"required\":[\"category\",\"tool\"]}");
  CHECK_OK("true");
}

static void test_schema_check_rejects_bad_schemas(void **state) {
  (void)state;
  CHECK_BAD("42", "a schema must be an object or a boolean");
  CHECK_BAD("{\"type\":\"strng\"}", "unknown type \"strng\"");
  CHECK_BAD("{\"type\":[]}", "\"type\" must be a string or a non-empty array");
  CHECK_BAD("{\"type\":[\"string\",\"string\"]}", "duplicate type");
  CHECK_BAD("{\"properties\":[]}", "\"properties\" must be an object");
  CHECK_BAD("{\"properties\":{\"a\":{\"type\":\"nope\"}}}", "schema #/properties/a: unknown type");
  CHECK_BAD("{\"required\":\"a\"}", "\"required\" must be an array of strings");
  CHECK_BAD("{\"required\":[1]}", "\"required\" must be an array of strings");
  CHECK_BAD("{\"additionalProperties\":1}", "a schema must be an object or a boolean");
  CHECK_BAD("{\"enum\":[]}", "\"enum\" must be a non-empty array");
  CHECK_BAD("{\"minimum\":\"1\"}", "\"minimum\" must be a number");
  CHECK_BAD("{\"exclusiveMaximum\":\"1\"}", "\"exclusiveMaximum\" must be a number");
  CHECK_BAD("{\"minLength\":-1}", "\"minLength\" must be a non-negative integer");
  CHECK_BAD("{\"maxItems\":1.5}", "\"maxItems\" must be a non-negative integer");
  CHECK_BAD("{\"pattern\":\"([a-z\"}", "cannot be compiled");
  CHECK_BAD("{\"pattern\":\"(?=a)b\"}", "lookaround");
  CHECK_BAD("{\"pattern\":\"(a)\\\\1\"}", "backreferences");
  CHECK_BAD("{\"pattern\":5}", "\"pattern\" must be a string");
  CHECK_BAD("{\"items\":[{}]}", "\"items\" must be a schema");
  CHECK_BAD("{\"anyOf\":[]}", "\"anyOf\" must be a non-empty array");
  CHECK_BAD("{\"oneOf\":[{\"type\":\"x\"}]}", "schema #/oneOf/0: unknown type");
  CHECK_BAD("{\"allOf\":{}}", "\"allOf\" must be a non-empty array");
  CHECK_BAD("{\"$ref\":\"#/$defs/missing\"}", "does not resolve");
  CHECK_BAD("{\"$ref\":\"http://example.com/s.json\"}", "does not resolve");
  CHECK_BAD("{\"$defs\":{\"a\":3}}", "schema #/$defs/a");
  CHECK_BAD("{\"type\":\"integer\",\"default\":\"x\"}", "\"default\" does not match its schema");
  CHECK_BAD("{\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":1,\"default\":0}}}",
            "schema #/properties/n: \"default\" does not match");
}

static void test_schema_check_depth_limit(void **state) {
  (void)state;
  /* {"items": {"items": … }} nested 100 deep */
  size_t depth = 100;
  char *s = malloc(depth * 10 + 16);
  assert_non_null(s);
  size_t o = 0;
  for (size_t i = 0; i < depth; i++) o += (size_t)sprintf(s + o, "{\"items\":");
  o += (size_t)sprintf(s + o, "{}");
  for (size_t i = 0; i < depth; i++) s[o++] = '}';
  s[o] = 0;
  CHECK_BAD(s, "nesting deeper than");
  free(s);
}

/* mcp_schema_check_keywords (command tools' input_schema): a typo or an assertion the validator
 * would silently ignore is refused, with its schema path; annotations pass. */
static void test_schema_check_keywords_refuses_unknown_and_unenforced(void **state) {
  (void)state;
  static const struct {
    const char *schema, *want;
  } bad[] = {
      {"{\"type\":\"object\",\"propertiez\":{}}", "schema #: unknown keyword \"propertiez\" (did you mean \"properties\"?)"},
      {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"maximun\":3}}}",
       "schema #/properties/n: unknown keyword \"maximun\" (did you mean \"maximum\"?)"},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"frobnicate\":1}}}}",
       "schema #/properties/a/items: unknown keyword \"frobnicate\""},
      {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"multipleOf\":2}}}",
       "\"multipleOf\" is a JSON Schema keyword peermcp does not enforce"},
      {"{\"type\":\"object\",\"anyOf\":[{\"required\":[\"a\"]},{\"not\":{}}]}", "schema #/anyOf/1: \"not\""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *s = json_loads(bad[i].schema, 0, NULL);
    assert_non_null(s);
    char err[512];
    assert_int_equal(mcp_schema_check(s, err, sizeof err), 0); /* the lenient check lets it through */
    assert_int_equal(mcp_schema_check_keywords(s, err, sizeof err), -EINVAL);
    if (!strstr(err, bad[i].want)) fail_msg("schema %s: got \"%s\", want \"%s\"", bad[i].schema, err, bad[i].want);
    json_decref(s);
  }
  /* property names are not keywords; annotations are fine */
  json_t *s = json_loads("{\"type\":\"object\",\"title\":\"T\",\"$schema\":\"x\",\"properties\":{\"propertiez\":{"
                         "\"type\":\"string\",\"format\":\"uri\",\"description\":\"d\",\"examples\":[\"a\"]}},"
                         "\"required\":[\"propertiez\"],\"additionalProperties\":false}",
                         0, NULL);
  char err[256];
  assert_int_equal(mcp_schema_check_keywords(s, err, sizeof err), 0);
  json_decref(s);
}

static void test_schema_null_schema_is_rejected(void **state) {
  (void)state;
  char err[64];
  json_t *i = json_object();
  assert_int_equal(mcp_schema_validate(NULL, i, err, sizeof err), -EINVAL);
  assert_int_equal(mcp_schema_check(NULL, err, sizeof err), -EINVAL);
  json_decref(i);
}

/* Random mutations of schemas: whatever parses is either refused by mcp_schema_check or usable
 * by mcp_schema_validate on a few instances, without crashes or leaks (ASan). */
static void test_schema_survives_mutated_schemas(void **state) {
  (void)state;
  static const char *const bases[] = {
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^[a-z]+\\\\d$\",\"maxLength\":5},"
      "\"b\":{\"type\":\"array\",\"items\":{\"enum\":[1,2,3]},\"default\":[1]}},\"required\":[\"a\"],"
      "\"additionalProperties\":false}",
      "{\"$defs\":{\"n\":{\"anyOf\":[{\"type\":\"integer\",\"minimum\":0},{\"$ref\":\"#/$defs/n\"}]}},"
      "\"oneOf\":[{\"$ref\":\"#/$defs/n\"},{\"type\":\"null\"}],\"allOf\":[true]}",
  };
  static const char *const insts[] = {"{\"a\":\"ab1\",\"b\":[2]}", "3", "null", "{\"a\":\"\"}", "[[[]]]"};
  static const char alphabet[] = "{}[]\":,0123456789-.$#/ abdefimnoprstuy\\^*+?()";
  unsigned seed = 777;
  int checked_ok = 0;
  for (int iter = 0; iter < 4000; iter++) {
    const char *b = bases[iter % 2];
    size_t n = strlen(b);
    char buf[512];
    memcpy(buf, b, n + 1);
    int muts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 3;
    for (int m = 0; m < muts; m++) {
      seed = seed * 1103515245u + 12345u;
      size_t pos = (seed >> 8) % n;
      seed = seed * 1103515245u + 12345u;
      buf[pos] = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
    }
    json_t *s = json_loads(buf, JSON_DECODE_ANY, NULL);
    if (!s) continue;
    char err[128];
    if (mcp_schema_check(s, err, sizeof err) == 0) {
      checked_ok++;
      for (size_t k = 0; k < sizeof insts / sizeof insts[0]; k++) {
        json_t *i = json_loads(insts[k], JSON_DECODE_ANY, NULL);
        int r = mcp_schema_validate(s, i, err, sizeof err);
        assert_true(r == 0 || r == -EINVAL);
        json_decref(i);
      }
    }
    json_decref(s);
  }
  assert_true(checked_ok > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schema_type_single_and_union),
      cmocka_unit_test(test_schema_integer_accepts_integral_reals_only),
      cmocka_unit_test(test_schema_properties_report_nested_paths),
      cmocka_unit_test(test_schema_required_names_the_missing_property),
      cmocka_unit_test(test_schema_additional_properties_false_and_schema),
      cmocka_unit_test(test_schema_enum_and_const_compare_by_value),
      cmocka_unit_test(test_schema_numeric_bounds),
      cmocka_unit_test(test_schema_string_lengths_count_code_points),
      cmocka_unit_test(test_schema_pattern_uses_search_semantics_and_ecma_escapes),
      cmocka_unit_test(test_schema_items_and_item_counts),
      cmocka_unit_test(test_schema_defaults_are_filled_and_validated),
      cmocka_unit_test(test_schema_failed_anyof_branch_leaves_no_defaults),
      cmocka_unit_test(test_schema_anyof_oneof_allof),
      cmocka_unit_test(test_schema_local_refs_resolve),
      cmocka_unit_test(test_schema_ref_cycle_hits_depth_limit),
      cmocka_unit_test(test_schema_deep_instance_hits_depth_limit),
      cmocka_unit_test(test_schema_boolean_schemas_and_unknown_keywords),
      cmocka_unit_test(test_schema_missing_instance_is_an_error),
      cmocka_unit_test(test_schema_long_paths_are_truncated_safely),
      cmocka_unit_test(test_schema_check_accepts_the_meta_tool_schemas),
      cmocka_unit_test(test_schema_check_rejects_bad_schemas),
      cmocka_unit_test(test_schema_check_depth_limit),
      cmocka_unit_test(test_schema_null_schema_is_rejected),
      cmocka_unit_test(test_schema_check_keywords_refuses_unknown_and_unenforced),
      cmocka_unit_test(test_schema_survives_mutated_schemas),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for store/pyjson: byte-equal with Python's json.dumps (§12.27). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/pyjson.h"

static void check(const char *in, pyjson_style st, const char *want) {
  json_t *v = json_loads(in, JSON_DECODE_ANY, NULL);
  assert_non_null(v);
  int rc;
  char *s = pyjson_dumps(v, st, 1 << 20, &rc);
  assert_int_equal(rc, 0);
  assert_string_equal(s, want);
  free(s);
  json_decref(v);
}

static void test_pyjson_default_matches_python_sort_keys(void **state) {
  (void)state;
  /* expected strings produced by CPython 3 json.dumps(x, sort_keys=True) */
  check("{\"b\":[1,2,{\"d\":null,\"c\":true}],\"a\":\"x\"}", PYJSON_PY_DEFAULT,
        "{\"a\": \"x\", \"b\": [1, 2, {\"c\": true, \"d\": null}]}");
  check("\"\\u00e9\\ud83d\\ude00\\n\\u0001\\u007f/\"", PYJSON_PY_DEFAULT,
        "\"\\u00e9\\ud83d\\ude00\\n\\u0001\\u007f/\"");
  check("{}", PYJSON_PY_DEFAULT, "{}");
  check("[]", PYJSON_PY_DEFAULT, "[]");
}

static void test_pyjson_compact_utf8_matches_cache_store(void **state) {
  (void)state;
  check("{\"value\":\"\\u00e9\",\"key\":\"k\",\"expires_at\":null}", PYJSON_COMPACT_UTF8,
        "{\"expires_at\":null,\"key\":\"k\",\"value\":\"\xc3\xa9\"}");
}

static void test_pyjson_float_repr_is_python_repr(void **state) {
  (void)state;
  struct {
    double d;
    const char *want;
  } cases[] = {{0.1, "0.1"},           {1.0, "1.0"},       {1.5, "1.5"},
               {1e16, "1e+16"},        {1e15, "1000000000000000.0"},
               {0.0001, "0.0001"},     {0.00001, "1e-05"}, {-2.5e-7, "-2.5e-07"},
               {1700000000.123, "1700000000.123"},         {123456789012345680.0, "1.2345678901234568e+17"},
               {0.0, "0.0"},           {-0.0, "-0.0"},     {5e-324, "5e-324"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[32];
    pyjson_float_repr(cases[i].d, out);
    assert_string_equal(out, cases[i].want);
  }
}

static void test_pyjson_respects_ceiling(void **state) {
  (void)state;
  json_t *v = json_pack("{s:s}", "k", "0123456789");
  int rc;
  assert_null(pyjson_dumps(v, PYJSON_PY_DEFAULT, 8, &rc));
  assert_int_equal(rc, -E2BIG);
  json_decref(v);
}

static void test_pyjson_utf8_validation(void **state) {
  (void)state;
  assert_true(pyjson_utf8_valid("h\xc3\xa9", 3));
  assert_false(pyjson_utf8_valid("\xc0\x80", 2));     /* overlong */
  assert_false(pyjson_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
  assert_false(pyjson_utf8_valid("\xe2\x82", 2));     /* truncated */
  /* one bad or multi-byte sequence at every place of a long ASCII run (the 8-byte steps) */
  char s[40];
  for (size_t at = 0; at + 2 <= sizeof s; at++) {
    memset(s, 'a', sizeof s);
    s[at] = (char)0xc0, s[at + 1] = (char)0x80; /* overlong */
    assert_false(pyjson_utf8_valid(s, sizeof s));
    s[at] = (char)0xc3, s[at + 1] = (char)0xa9; /* é */
    assert_true(pyjson_utf8_valid(s, sizeof s));
    s[at] = (char)0x80, s[at + 1] = 'a'; /* a lone continuation byte */
    assert_false(pyjson_utf8_valid(s, sizeof s));
    s[at] = (char)0xff; /* never in UTF-8 */
    assert_false(pyjson_utf8_valid(s, sizeof s));
    assert_true(pyjson_utf8_valid(s, at)); /* the run before it */
  }
  memset(s, 'a', sizeof s);
  s[sizeof s - 1] = (char)0xe2; /* truncated at the very end */
  assert_false(pyjson_utf8_valid(s, sizeof s));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pyjson_default_matches_python_sort_keys),
      cmocka_unit_test(test_pyjson_compact_utf8_matches_cache_store),
      cmocka_unit_test(test_pyjson_float_repr_is_python_repr),
      cmocka_unit_test(test_pyjson_respects_ceiling),
      cmocka_unit_test(test_pyjson_utf8_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

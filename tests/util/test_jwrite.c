/* Unit tests for util/jwrite: bytes equal to json_dumps(JSON_COMPACT) for every tree without
 * reals; reals and durations in their shortest exact form or at their stated precision (never
 * 0.45700000000000002); the ceiling and the sticky error. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/jwrite.h"

static void same_as_jansson(const char *text, size_t flags_jansson, unsigned flags_jw) {
  json_error_t e;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
  assert_non_null(v);
  char *a = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | flags_jansson);
  char *b = jwrite_dumps(v, flags_jw);
  assert_non_null(a);
  assert_non_null(b);
  assert_string_equal(a, b);
  free(a);
  free(b);
  json_decref(v);
}

static void test_jwrite_matches_json_dumps_without_reals(void **state) {
  (void)state;
  static const char *const texts[] = {
      "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":1}\"}]}}",
      "[1,-1,0,9223372036854775807,-9223372036854775808,true,false,null]",
      "\"quote \\\" backslash \\\\ slash / controls \\u0001\\u001f\\b\\f\\n\\r\\t del \\u007f\"",
      "\"caf\\u00e9 \\u20ac \\ud83d\\ude00 \\u2028\"",
      "{\"z\":1,\"a\":{\"m\":[],\"b\":{}},\"\":\"\"}",
      "[[[[[[[[[[[[[[[[\"deep\"]]]]]]]]]]]]]]]]",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    same_as_jansson(texts[i], 0, 0);
    same_as_jansson(texts[i], JSON_ENSURE_ASCII, JWRITE_ASCII);
    same_as_jansson(texts[i], JSON_SORT_KEYS, JWRITE_SORT_KEYS);
  }
}

static void dbl(double v, const char *want) {
  char b[JWRITE_NUM_MAX];
  jwrite_fmt_double(b, v);
  assert_string_equal(b, want);
}

static void test_jwrite_doubles_shortest_round_trip(void **state) {
  (void)state;
  dbl(0.457, "0.457");
  dbl(0.1, "0.1");
  dbl(0.1 + 0.2, "0.30000000000000004"); /* needs 17 digits: shortest is not rounded */
  dbl(0.142, "0.142");
  dbl(1.0 / 3.0, "0.3333333333333333");
  dbl(2.5, "2.5");
  dbl(3.0, "3");
  dbl(-7.0, "-7");
  dbl(1e20, "1e20");
  dbl(1.5e-7, "1.5e-7");
  dbl(123456.789, "123456.789");
  dbl(DBL_MAX, "1.7976931348623157e308");
  dbl(5e-324, "5e-324");
  dbl(0.0, "0");
  dbl(NAN, "nan");
  dbl(-INFINITY, "-inf");
  /* every printed value reads back as itself */
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double v;
    memcpy(&v, &x, sizeof v);
    if (!isfinite(v)) continue;
    char b[JWRITE_NUM_MAX];
    jwrite_fmt_double(b, v);
    assert_true(strtod(b, NULL) == v);
    assert_true(strlen(b) <= 24);
  }
}

/* The shortest form by search (what jwrite_fmt_double does without its fast path). */
static void shortest_by_search(char *out, size_t n, double v) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, n, "%.*g", prec, v);
    if (strtod(out, NULL) == v) return;
  }
}

/* The microsecond fast path prints what the %.15g..%.17g search prints: for 6-decimal values in
 * its range (timestamps), near its bounds, and for values just beside a 6-decimal one. */
static void test_jwrite_micros_fast_path_matches_search(void **state) {
  (void)state;
  dbl(1765091234.123456, "1765091234.123456");
  dbl(1765091234.5, "1765091234.5");
  dbl(-0.0001, "-0.0001");
  dbl(8589934591.999999, "8589934591.999999");
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double v;
    switch (i % 4) {
    case 0: v = (double)(x % 8589934592000000ULL) / 1e6; break;   /* any 6-decimal value */
    case 1: v = (double)(1700000000000000ULL + x % 100000000000000ULL) / 1e6; break; /* timestamps */
    case 2: v = (double)(100 + x % 100000000ULL) / 1e6; break;     /* small ones, from 1e-4 */
    default: v = nextafter((double)(x % 8589934592000000ULL) / 1e6, (x & 1) ? 1e10 : 0); break;
    }
    if (i & 8) v = -v;
    if (v == floor(v) || fabs(v) < 1e-4) continue;
    char got[JWRITE_NUM_MAX], want[64];
    jwrite_fmt_double(got, v);
    shortest_by_search(want, sizeof want, v);
    if (strcmp(got, want) != 0) fail_msg("%.17g: got %s, want %s", v, got, want);
  }
}

static void test_jwrite_json_reals_stay_reals(void **state) {
  (void)state;
  json_t *v = json_pack("[f, f, f, f, f]", 0.457, 2.0, 0.0, 1e21, 0.1 + 0.2);
  char *s = jwrite_dumps(v, 0);
  assert_string_equal(s, "[0.457,2.0,0.0,1e21,0.30000000000000004]");
  /* and parse back to the same reals */
  json_t *back = json_loads(s, 0, NULL);
  assert_true(json_equal(v, back));
  json_decref(back);
  free(s);
  json_decref(v);
}

static void fixed(int64_t value, int decimals, const char *want) {
  jwrite w;
  jwrite_init(&w, 64, 0);
  jwrite_fixed(&w, value, decimals);
  char *s = jwrite_take(&w, NULL);
  assert_string_equal(s, want);
  free(s);
  jwrite_free(&w);
}

static void test_jwrite_fixed_stated_precision(void **state) {
  (void)state;
  fixed(142, 3, "0.142"); /* 142 µs as milliseconds */
  fixed(1500, 3, "1.5");
  fixed(2000, 3, "2.0");
  fixed(0, 3, "0.0");
  fixed(1, 3, "0.001");
  fixed(12345678, 3, "12345.678");
  fixed(-1250, 3, "-1.25");
  fixed(7, 0, "7.0");
  fixed(INT64_MIN, 3, "-9223372036854775.808");
}

static void test_jwrite_fmt_round(void **state) {
  (void)state;
  char b[JWRITE_NUM_MAX];
  jwrite_fmt_round(b, 0.45700000000000002, 3);
  assert_string_equal(b, "0.457");
  jwrite_fmt_round(b, 12.5, 1);
  assert_string_equal(b, "12.5");
  jwrite_fmt_round(b, 3.0001, 2);
  assert_string_equal(b, "3");
  jwrite_fmt_round(b, -0.0004, 3);
  assert_string_equal(b, "0");
  jwrite_fmt_round(b, 1234.5678, 0);
  assert_string_equal(b, "1235");
}

static void test_jwrite_integers(void **state) {
  (void)state;
  jwrite w;
  jwrite_init(&w, 1024, 0);
  jwrite_int(&w, 0);
  jwrite_byte(&w, ' ');
  jwrite_int(&w, -42);
  jwrite_byte(&w, ' ');
  jwrite_int(&w, INT64_MAX);
  jwrite_byte(&w, ' ');
  jwrite_int(&w, INT64_MIN);
  char *s = jwrite_take(&w, NULL);
  assert_string_equal(s, "0 -42 9223372036854775807 -9223372036854775808");
  free(s);
  jwrite_free(&w);
}

/* jwrite_plain_len says "as it is" exactly for the bytes both writers (with and without
 * JWRITE_ASCII) copy between quotes unchanged — less DEL, which they copy but which is kept out
 * of the plain set (a control character to a reader) — and stops at the first other byte. */
static void test_jwrite_plain_len_agrees_with_the_writer(void **state) {
  (void)state;
  for (unsigned flags = 0; flags <= JWRITE_ASCII; flags += JWRITE_ASCII)
    for (int c = 1; c < 256; c++) {
      char s[8] = {'a', 'b', (char)c, 'z', 0};
      jwrite w;
      jwrite_init(&w, 64, flags);
      jwrite_str(&w, s + 2, 1);
      bool same = jwrite_len(&w) == 3 && jwrite_ptr(&w)[1] == (char)c;
      jwrite_free(&w);
      /* a lone byte ≥ 0x80 is not UTF-8: only ask the ASCII-escaping writer about ASCII */
      if (c >= 0x7f) same = false;
      assert_int_equal(jwrite_plain_len(s), same ? 4 : 2);
    }
  assert_int_equal(jwrite_plain_len(""), 0);
}

/* Strings through both of jwrite's string paths — jwrite_str's one-copy fast path (room in the
 * buffer) and jwrite_str_body (a writer with no room yet) — with and without JWRITE_ASCII, equal
 * to jansson's json_dumps of the same string (JSON_ENSURE_ASCII for the ASCII writer): a run of
 * 0–19 plain bytes, then every ASCII byte but NUL or a 2-, 3- or 4-byte UTF-8 character, then a
 * plain tail. k_plain's two bits (copied as is; copied as is under JWRITE_ASCII) decide every
 * byte here. */
static void str_same_as_jansson(const char *s, size_t n, unsigned flags) {
  json_t *v = json_stringn(s, n);
  assert_non_null(v);
  char *a = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | (flags & JWRITE_ASCII ? JSON_ENSURE_ASCII : 0));
  assert_non_null(a);
  for (int fast = 0; fast < 2; fast++) {
    jwrite w;
    jwrite_init(&w, 1u << 20, flags);
    if (fast) { /* room made first: jwrite_str copies in one go when every byte is plain */
      jwrite_lit(&w, "01234567890123456789012345678901234567890123456789012345678901234567890123456789");
      jwrite_reset(&w);
    }
    jwrite_str(&w, s, n);
    assert_int_equal(jwrite_error(&w), 0);
    assert_int_equal(jwrite_len(&w), strlen(a));
    assert_memory_equal(jwrite_ptr(&w), a, strlen(a));
    jwrite_free(&w);
  }
  free(a);
  json_decref(v);
}

static void test_jwrite_every_byte_after_a_plain_run_both_modes(void **state) {
  (void)state;
  static const char *const wide[] = {"\xc3\xa9", "\xc2\x80", "\xdf\xbf", "\xe2\x82\xac", "\xe2\x80\xa8",
                                     "\xef\xbf\xbf", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
  char s[64];
  for (unsigned flags = 0; flags <= JWRITE_ASCII; flags += JWRITE_ASCII)
    for (size_t run = 0; run < 20; run++) {
      for (size_t i = 0; i < run; i++) s[i] = (char)('a' + i % 26);
      for (int c = 1; c < 0x80 + 8; c++) {
        size_t n = run;
        if (c < 0x80) {
          s[n++] = (char)c;
        } else {
          size_t k = strlen(wide[c - 0x80]);
          memcpy(s + n, wide[c - 0x80], k);
          n += k;
        }
        memcpy(s + n, "tail", 4);
        str_same_as_jansson(s, n + 4, flags);
        str_same_as_jansson(s, n, flags); /* the special byte last */
      }
    }
}

static void test_jwrite_ceiling_is_sticky(void **state) {
  (void)state;
  jwrite w;
  jwrite_init(&w, 8, 0);
  jwrite_lit(&w, "12345");
  assert_int_equal(jwrite_error(&w), 0);
  jwrite_lit(&w, "6789"); /* would pass 8 */
  assert_int_equal(jwrite_error(&w), -E2BIG);
  assert_int_equal(jwrite_len(&w), 5);
  jwrite_lit(&w, "x"); /* sticky: nothing more is written */
  assert_int_equal(jwrite_len(&w), 5);
  assert_null(jwrite_take(&w, NULL));
  jwrite_reset(&w);
  assert_int_equal(jwrite_error(&w), 0);
  jwrite_str(&w, "ab", 2);
  size_t n;
  char *s = jwrite_take(&w, &n);
  assert_string_equal(s, "\"ab\"");
  assert_int_equal(n, 4);
  free(s);
  jwrite_free(&w);
}

static void test_jwrite_depth_limit(void **state) {
  (void)state;
  json_t *root = json_array(), *cur = root;
  for (int i = 0; i < JWRITE_MAX_DEPTH + 5; i++) {
    json_t *a = json_array();
    json_array_append_new(cur, a);
    cur = a;
  }
  assert_null(jwrite_dumps(root, 0));
  json_decref(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jwrite_matches_json_dumps_without_reals),
      cmocka_unit_test(test_jwrite_doubles_shortest_round_trip),
      cmocka_unit_test(test_jwrite_micros_fast_path_matches_search),
      cmocka_unit_test(test_jwrite_json_reals_stay_reals),
      cmocka_unit_test(test_jwrite_fixed_stated_precision),
      cmocka_unit_test(test_jwrite_fmt_round),
      cmocka_unit_test(test_jwrite_integers),
      cmocka_unit_test(test_jwrite_plain_len_agrees_with_the_writer),
      cmocka_unit_test(test_jwrite_every_byte_after_a_plain_run_both_modes),
      cmocka_unit_test(test_jwrite_ceiling_is_sticky),
      cmocka_unit_test(test_jwrite_depth_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for util/jparse: it accepts exactly what json_loadb(JSON_DECODE_ANY) accepts and
 * builds the same tree (the differential rule of jparse.h), checks depth before it descends, and
 * says where a text stops being JSON. fuzz/fuzz_jparse.c runs the same comparison on random
 * input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/jparse.h"

/* jparse and jansson agree on p[0..n): both refuse it, or both build equal trees. */
static void agree(const char *p, size_t n) {
  json_error_t je;
  json_t *a = json_loadb(p, n, JSON_DECODE_ANY, &je);
  json_t *b = NULL;
  jparse_error err;
  int rc = jparse(p, n, 100000, &b, &err);
  if ((a != NULL) != (rc == 0)) {
    fprintf(stderr, "disagree on [%.*s]: jansson %s (%s), jparse %d (%s at %zu)\n", (int)n, p, a ? "ok" : "error",
            a ? "" : je.text, rc, err.text, err.position);
    fail();
  }
  /* jparse_scan (no tree) gives the same verdict */
  int src = jparse_scan(p, n, 100000, 0, NULL, 0, NULL, NULL, NULL);
  if (src != rc) {
    fprintf(stderr, "scan disagrees on [%.*s]: jparse %d, scan %d\n", (int)n, p, rc, src);
    fail();
  }
  if (a) {
    assert_true(json_equal(a, b));
    /* json_equal treats 1 and 1.0 as different types already; check the type at the top too */
    assert_int_equal(json_typeof(a), json_typeof(b));
  }
  json_decref(a);
  json_decref(b);
}
#define AGREE(s) agree((s), sizeof(s) - 1)

/* The same with the /mcp+p2p/1.0.0 flags: jparse_flags(REJECT_DUPLICATES | ALLOW_NUL) and
 * json_loadb(JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL) agree. */
static void agree_flags(const char *p, size_t n) {
  json_error_t je;
  json_t *a = json_loadb(p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  json_t *b = NULL;
  jparse_error err;
  unsigned found = 99;
  int rc = jparse_flags(p, n, 100000, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, &b, &err, &found);
  if ((a != NULL) != (rc == 0)) {
    fprintf(stderr, "disagree (flags) on [%.*s]: jansson %s (%s), jparse %d (%s at %zu)\n", (int)n, p,
            a ? "ok" : "error", a ? "" : je.text, rc, err.text, err.position);
    fail();
  }
  if (a) assert_true(json_equal(a, b));
  if (rc == 0) assert_int_equal(found & JPARSE_FOUND_NUL, memmem(p, n, "\\u0000", 6) ? JPARSE_FOUND_NUL : 0);
  else assert_int_equal(found, 0);
  /* jparse_scan with the same flags: same verdict, same FOUND_NUL; the members of an object */
  unsigned sfound = 99;
  jparse_member m[4];
  size_t nm = 99;
  int src = jparse_scan(p, n, 100000, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, m, 4, &nm, NULL, &sfound);
  if (src != rc) {
    fprintf(stderr, "scan (flags) disagrees on [%.*s]: jparse %d, scan %d\n", (int)n, p, rc, src);
    fail();
  }
  if (rc == 0) {
    assert_int_equal(sfound, found);
    assert_int_equal(nm, json_is_object(b) ? json_object_size(b) : 0);
    for (size_t i = 0; i < nm && i < 4; i++) {
      /* each member's value span parses to the tree's value */
      json_t *v = NULL;
      assert_int_equal(jparse_flags(m[i].val, m[i].val_len, 100000, JPARSE_ALLOW_NUL, &v, NULL, NULL), 0);
      if (!m[i].key_escaped) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)m[i].key_len, m[i].key);
        assert_true(json_equal(v, json_object_get(b, key)));
        /* jparse_find finds the same span */
        const char *fv;
        size_t fn;
        assert_int_equal(jparse_find(p, n, key, &fv, &fn), 0);
        assert_ptr_equal(fv, m[i].val);
        assert_int_equal(fn, m[i].val_len);
      }
      json_decref(v);
    }
  }
  json_decref(a);
  json_decref(b);
}
#define AGREE_FLAGS(s) agree_flags((s), sizeof(s) - 1)

static void test_jparse_flags_match_jansson_flags(void **state) {
  (void)state;
  AGREE_FLAGS("{\"a\":1,\"a\":2}");                     /* duplicate: both refuse */
  AGREE_FLAGS("{\"a\":{\"b\":1,\"c\":2,\"b\":3}}");     /* nested duplicate */
  AGREE_FLAGS("[{\"a\":1},{\"a\":2}]");                 /* same key, different objects: fine */
  AGREE_FLAGS("{\"op\":\"get\",\"op\":\"cancel\"}");
  AGREE_FLAGS("{\"a\":\"x\\u0000y\"}");                 /* NUL in a value: allowed, found */
  AGREE_FLAGS("[\"\\u0000\"]");
  AGREE_FLAGS("{\"a\\u0000b\":1}");                       /* NUL in a key: both refuse */
  AGREE_FLAGS("{\"a\":\"\\u00e9\",\"b\":[1,2,{\"c\":null}]}");
  AGREE_FLAGS("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{}}}");
  /* the NUL-in-a-key message says so */
  json_t *v;
  jparse_error err;
  assert_int_equal(jparse_flags("{\"a\\u0000\":1}", 12, 8, JPARSE_ALLOW_NUL, &v, &err, NULL), -EINVAL);
  assert_non_null(strstr(err.text, "NUL byte in object key"));
  assert_int_equal(jparse_flags("{\"k\":1,\"k\":1}", 13, 8, JPARSE_REJECT_DUPLICATES, &v, &err, NULL), -EINVAL);
  assert_non_null(strstr(err.text, "duplicate"));
  /* without the flags, jparse is jparse */
  assert_int_equal(jparse_flags("{\"k\":1,\"k\":2}", 13, 8, 0, &v, NULL, NULL), 0);
  assert_int_equal(json_integer_value(json_object_get(v, "k")), 2);
  json_decref(v);
  assert_int_equal(jparse_flags("\"\\u0000\"", 8, 8, 0, &v, NULL, NULL), -EINVAL);
}

/* jparse_scan's duplicate check: raw keys compared within an object; an escaped key or a large
 * object is decided by the tree parse (the verdict must still be the tree parser's). */
static void test_jparse_scan_duplicates_and_members(void **state) {
  (void)state;
  AGREE_FLAGS("{\"a\":1,\"\\u0061\":2}");   /* the same key, one escaped: refused */
  AGREE_FLAGS("{\"\\u0061\":1,\"b\":2}");   /* escaped, no duplicate: accepted */
  AGREE_FLAGS("{\"a\":{\"a\":1},\"b\":{\"a\":2}}"); /* same key in sibling objects */
  AGREE_FLAGS("{\"a\":[{\"x\":1,\"y\":2}],\"x\":3,\"a2\":4}");
  AGREE_FLAGS("{\"a\":[{\"x\":1,\"x\":2}]}");
  AGREE_FLAGS("{\"n\":1e400}");                 /* overflow: refused, strtod still runs for it */
  AGREE_FLAGS("{\"n\":1e-400,\"m\":123456789012345678901234567890.5}");
  /* an object of 40 keys, with and without a duplicate at the end */
  char t[1024];
  size_t o = 0;
  t[o++] = '{';
  for (int i = 0; i < 40; i++) o += (size_t)sprintf(t + o, "%s\"k%d\":%d", i ? "," : "", i, i);
  size_t base = o;
  o += (size_t)sprintf(t + o, "}");
  agree_flags(t, o);
  o = base + (size_t)sprintf(t + base, ",\"k3\":0}");
  agree_flags(t, o);
  /* 70 nested objects with a key each: past the scan's key stack */
  o = 0;
  for (int i = 0; i < 70; i++) o += (size_t)sprintf(t + o, "{\"k\":1,\"d\":");
  o += (size_t)sprintf(t + o, "0");
  for (int i = 0; i < 70; i++) t[o++] = '}';
  agree_flags(t, o);
  /* members, and the strings and numbers of a reply */
  const char *r = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":1}\"}],"
                  "\"isError\":false,\"_meta\":{\"d\":0.069}}}";
  jparse_member m[2];
  size_t nm;
  assert_int_equal(jparse_scan(r, strlen(r), 64, JPARSE_REJECT_DUPLICATES, m, 2, &nm, NULL, NULL), 0);
  assert_int_equal(nm, 3); /* three members, two described */
  assert_int_equal(m[1].key_len, 2);
  assert_memory_equal(m[1].key, "id", 2);
  assert_int_equal(m[1].val_len, 1);
  agree_flags(r, strlen(r));
  const char *v;
  size_t vn;
  assert_int_equal(jparse_find(r, strlen(r), "result", &v, &vn), 0);
  const char *ie;
  size_t ien;
  assert_int_equal(jparse_find(v, vn, "isError", &ie, &ien), 0);
  assert_int_equal(ien, 5);
  assert_memory_equal(ie, "false", 5);
  assert_int_equal(jparse_find(v, vn, "missing", &ie, &ien), -ENOENT);
  assert_int_equal(jparse_find("[1]", 3, "a", &ie, &ien), -EINVAL);
  assert_int_equal(jparse_find("{\"\\u0061b\":[1,{\"x\":\"]\"}],\"c\":2}", 31, "ab", &ie, &ien), 0);
  assert_int_equal(ien, 13);
  /* depth as jparse_flags */
  assert_int_equal(jparse_scan("[[[]]]", 6, 2, 0, NULL, 0, NULL, NULL, NULL), -ELOOP);
  assert_int_equal(jparse_scan("[[[]]]", 6, 3, 0, NULL, 0, NULL, NULL, NULL), 0);
}

/* The duplicate check skips the compare for a key whose filter bit (from its length and its
 * first and last bytes) no earlier key of the object set: keys that share a bit but differ must
 * pass, a repeat must be refused wherever it stands (first, middle, last; after keys of the same
 * bit and of others; the empty key; whitespace around ':' and ','), in the scan and in the tree
 * parse, against jansson. */
static void test_jparse_duplicate_keys_sharing_a_filter_bit(void **state) {
  (void)state;
  static const char *const keys[] = {"aba", "aca", "ada", "a", "aa", "", "zbz", "abba", "acca", "b", "aea"};
  const size_t nk = sizeof keys / sizeof keys[0];
  char t[1024];
  for (int ws = 0; ws < 2; ws++) {
    const char *sp = ws ? " " : "";
    for (size_t n = 1; n <= nk; n++) {
      /* n distinct keys: accepted */
      size_t o = 0;
      o += (size_t)sprintf(t + o, "{");
      for (size_t i = 0; i < n; i++) o += (size_t)sprintf(t + o, "%s%s\"%s\"%s:%s%zu", i ? "," : "", sp, keys[i], sp, sp, i);
      size_t base = o;
      o += (size_t)sprintf(t + o, "%s}", sp);
      agree_flags(t, o);
      /* then a repeat of each of them: refused */
      for (size_t d = 0; d < n; d++) {
        o = base + (size_t)sprintf(t + base, ",%s\"%s\"%s:%s{\"%s\":0}%s}", sp, keys[d], sp, sp, keys[d], sp);
        agree_flags(t, o);
        json_t *v = NULL;
        assert_int_equal(jparse_flags(t, o, 64, JPARSE_REJECT_DUPLICATES, &v, NULL, NULL), -EINVAL);
        assert_int_equal(jparse_scan(t, o, 64, JPARSE_REJECT_DUPLICATES, NULL, 0, NULL, NULL, NULL), -EINVAL);
        /* the same object one level down, and as an array element */
        char u[1100];
        int un = snprintf(u, sizeof u, "[0,{\"x\":%.*s}]", (int)o, t);
        assert_int_equal(jparse_scan(u, (size_t)un, 64, JPARSE_REJECT_DUPLICATES, NULL, 0, NULL, NULL, NULL), -EINVAL);
        agree_flags(u, (size_t)un);
      }
    }
  }
}

/* The string scan reads 8 bytes at a time and stops at the first byte that needs a look: a stop
 * byte (quote, backslash, control, non-ASCII) at every offset of the window, after bytes that
 * sit just beside the stop classes (0x1f/0x20, 0x21/0x23, 0x5b/0x5d, 0x7f), must be found exactly
 * where it is. */
static void test_jparse_string_scan_finds_every_stop(void **state) {
  (void)state;
  static const char *stops[] = {"\"", "\\n", "\x01", "\x1f", "\xc3\xa9", "\x80", "\xff", "\\u0041"};
  static const char fill[] = {' ', '!', '#', '[', ']', 0x7f, 'a'};
  char t[128];
  for (size_t k = 0; k < 20; k++)
    for (size_t f = 0; f < sizeof fill; f++)
      for (size_t st = 0; st < sizeof stops / sizeof *stops; st++) {
        size_t o = 0;
        t[o++] = '[';
        t[o++] = '"';
        for (size_t i = 0; i < k; i++) t[o++] = fill[f];
        o += (size_t)sprintf(t + o, "%s", stops[st]);
        o += (size_t)sprintf(t + o, "%s", st == 0 ? ",\"xyz\"]" : "tail\"]");
        agree(t, o);
        agree_flags(t, o);
      }
}

/* The 16-byte (SSE2) scan and the inline short-string path: a stop byte or a UTF-8 sequence,
 * valid or not, at every offset of two 16-byte windows and across their boundaries, with every
 * amount of text after the string (below and above the 16 bytes the fast paths need), as an
 * array element and as an object key; jansson decides what is right (and the tree's strings
 * must be equal, so a wrong span fails too). */
static void test_jparse_wide_string_scan_at_every_offset(void **state) {
  (void)state;
  static const struct {
    const char *b;
    size_t n;
  } stops[] = {
      {"\"", 1},              /* the end of the string */
      {"\\\"", 2},           /* an escaped quote */
      {"\\n", 2},             /* an escape */
      {"\\x", 2},             /* an invalid escape */
      {"\\u00e9", 6},         /* a \\u escape */
      {"\0", 1},              /* a raw NUL: refused */
      {"\x01", 1},            /* controls: refused */
      {"\x1f", 1},
      {"\x7f", 1},            /* DEL: allowed */
      {"\xc3\xa9", 2},        /* é */
      {"\xe2\x82\xac", 3},    /* € */
      {"\xf0\x9f\x98\x80", 4}, /* U+1F600 */
      {"\xc3" "a", 2},        /* a lead byte without its continuation */
      {"\xe2\x82", 2},        /* a sequence cut short (then the quote) */
      {"\xc0\x80", 2},        /* overlong */
      {"\xe0\x80\x80", 3},    /* overlong */
      {"\xed\xa0\x80", 3},    /* a surrogate */
      {"\xf4\x90\x80\x80", 4}, /* above U+10FFFF */
      {"\xf5\x80\x80\x80", 4}, /* an invalid lead byte */
      {"\x80", 1},            /* a lone continuation byte */
      {"\xff", 1},
  };
  char t[160];
  for (size_t k = 0; k < 40; k++)
    for (size_t st = 0; st < sizeof stops / sizeof *stops; st++)
      for (size_t after = 0; after < 24; after++)
        for (int as_key = 0; as_key < 2; as_key++) {
          size_t o = 0;
          memcpy(t + o, as_key ? "{\"" : "[\"", 2), o += 2;
          for (size_t i = 0; i < k; i++) t[o++] = (char)('a' + i % 26);
          memcpy(t + o, stops[st].b, stops[st].n), o += stops[st].n;
          if (st != 0) t[o++] = '"';
          if (as_key) t[o++] = ':', t[o++] = '1';
          for (size_t i = 0; i < after; i++) t[o++] = ' '; /* text after the string */
          t[o++] = as_key ? '}' : ']';
          agree(t, o);
          agree_flags(t, o);
        }
}

/* Runs of simple escapes (\\n, \\", \\\\, \\/, \\t: JSON text inside a string has many), which the
 * scan takes from the sixteen bytes it has already compared, then whatever comes next — a bad
 * byte or escape, a \\u escape, UTF-8, the end — at every place in and across those sixteen
 * bytes: the same verdict, error text and position as a byte at a time (the position is where
 * the bad sequence starts), scan and tree parse alike, and the same string as jansson decodes. */
static void test_jparse_runs_of_escapes_then_anything(void **state) {
  (void)state;
  static const char *esc[] = {"\\n", "\\\"", "\\\\", "\\/", "\\t"};
  static const struct {
    const char *b;
    size_t n;
    const char *error; /* NULL: valid */
  } next[] = {
      {"", 0, NULL},
      {"x", 1, NULL},
      {"\\u0041", 6, NULL},
      {"\xc3\xa9", 2, NULL},
      {"\x01", 1, "control character in a string"},
      {"\\q", 2, "invalid escape in a string"},
      {"\\u00zz", 6, "invalid \\u escape"},
      {"\xff", 1, "invalid UTF-8 in a string"},
      {"\xc3" "a", 2, "invalid UTF-8 in a string"},
  };
  char t[200];
  for (size_t lead = 0; lead < 20; lead++)
    for (size_t nesc = 0; nesc < 9; nesc++)
      for (size_t nx = 0; nx < sizeof next / sizeof *next; nx++)
        for (size_t after = 0; after < 20; after += 3) {
          size_t o = 0;
          memcpy(t + o, "[\"", 2), o += 2;
          for (size_t i = 0; i < lead; i++) t[o++] = (char)('a' + i % 26);
          for (size_t i = 0; i < nesc; i++) {
            size_t l = strlen(esc[(i + lead) % 5]);
            memcpy(t + o, esc[(i + lead) % 5], l), o += l;
          }
          size_t bad_at = o;
          memcpy(t + o, next[nx].b, next[nx].n), o += next[nx].n;
          t[o++] = '"';
          for (size_t i = 0; i < after; i++) t[o++] = ' ';
          t[o++] = ']';
          agree(t, o);
          agree_flags(t, o);
          jparse_error e1, e2;
          json_t *v = NULL;
          int r1 = jparse_scan(t, o, 64, 0, NULL, 0, NULL, &e1, NULL);
          int r2 = jparse(t, o, 64, &v, &e2);
          assert_int_equal(r1, r2);
          if (next[nx].error) {
            assert_int_equal(r1, -EINVAL);
            assert_string_equal(e1.text, next[nx].error);
            assert_int_equal(e1.position, bad_at);
            assert_string_equal(e2.text, next[nx].error);
            assert_int_equal(e2.position, bad_at);
          } else {
            assert_int_equal(r1, 0);
          }
          json_decref(v);
        }
}

/* Integers of up to 18 digits skip the overflow check: the values around that length and
 * around json_int_t's limits, both signs. */
static void test_jparse_integers_around_the_fast_path(void **state) {
  (void)state;
  static const char *ints[] = {"0", "-0", "7", "-7", "999999999999999999", "-999999999999999999",
                               "100000000000000000", "1000000000000000000", "-1000000000000000000",
                               "9223372036854775807", "-9223372036854775807", "9223372036854775808",
                               "-9223372036854775808", "-9223372036854775809", "12345678901234567890",
                               "00", "-", "-01", "1e5", "123456789012345678.5",
                               /* the scan's inline integer (a member's value or an element) */
                               "01", "0.", "0e1", "0E1", "1E5", "1e", "5.", "5.0", "10", "0 ", "5 ", "1234567890123456789",
                               "123456789012345678", "0x1", "5a", "5-", "05"};
  char t[64];
  for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
    int n = snprintf(t, sizeof t, "[%s]", ints[i]);
    agree(t, (size_t)n);
    agree_flags(t, (size_t)n);
    n = snprintf(t, sizeof t, "{\"n\":%s}", ints[i]);
    agree(t, (size_t)n);
    agree_flags(t, (size_t)n);
    n = snprintf(t, sizeof t, "[1,%s,2]", ints[i]);
    agree(t, (size_t)n);
    n = snprintf(t, sizeof t, "[%s", ints[i]); /* the input ends right after it */
    agree(t, (size_t)n);
    n = snprintf(t, sizeof t, "{\"n\":%s", ints[i]);
    agree(t, (size_t)n);
  }
}

static void test_jparse_accepts_what_jansson_accepts(void **state) {
  (void)state;
  AGREE("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{}}}");
  AGREE("  {  \"a\" : [ 1 , 2.5 , -3e2 , true , false , null , \"x\" ] , \"b\" : { } , \"c\" : [ ] }  \n");
  AGREE("0");
  AGREE("-0");
  AGREE("-0.0");
  AGREE("1e400"); /* overflow: both refuse */
  AGREE("1e-400"); /* underflow to 0: both accept */
  AGREE("9223372036854775807");
  AGREE("-9223372036854775808");
  AGREE("9223372036854775808");
  AGREE("-9223372036854775809");
  AGREE("123456789012345678901234567890.5");
  AGREE("0.1");
  AGREE("1E+2");
  AGREE("\"\"");
  AGREE("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"");
  AGREE("\"\\u00e9\\u20ac\\ud83d\\ude00\"");
  AGREE("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  AGREE("{\"a\":1,\"a\":2}"); /* the later duplicate wins in both */
  AGREE("[[[[[[[[[[1]]]]]]]]]]");
  AGREE("\"\x7f\"");
}

static void test_jparse_refuses_what_jansson_refuses(void **state) {
  (void)state;
  static const char *const bad[] = {
      "", " ", "{", "}", "[", "]", "[1,]", "{\"a\":1,}", "{\"a\"}", "{\"a\" 1}", "{a:1}", "{'a':1}", "01", "-", "1.",
      ".5", "1e", "1e+", "+1", "0x10", "NaN", "Infinity", "-Infinity", "tru", "truex", "nul", "[1 2]", "\"abc",
      "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
      "\"\\ud800x\"", "\"a\tb\"", "\"a\nb\"", "1 2", "{} {}", "[] x", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
      "\"\xf4\x90\x80\x80\"", "\"\x80\"", "\"\xc3\"", "\"\xe2\x82\"", "\"\xff\"", "\xef\xbb\xbf{}", "//c\n1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) agree(bad[i], strlen(bad[i]));
  agree("\"a\0b\"", 5); /* a raw NUL inside a string */
  agree("[1]\0", 4);    /* and after the value */
  /* jansson's one quirk (jparse.h): it takes "1\0" as 1 (and "null\0", "true\0", "false\0"
   * likewise); jparse refuses them */
  static const char *const quirk[] = {"1", "1.5", "null", "true", "false"};
  for (size_t i = 0; i < sizeof quirk / sizeof quirk[0]; i++) {
    json_t *v = NULL;
    assert_int_equal(jparse(quirk[i], strlen(quirk[i]) + 1, 8, &v, NULL), -EINVAL);
    assert_null(v);
  }
  /* the same quirk inside a container (fuzz_jparse found "[3\0]"): still refused */
  static const struct {
    const char *t;
    size_t n;
  } inner[] = {{"[3\0]", 4}, {"[null\0]", 7}, {"{\"a\":1\0}", 8}};
  for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++) {
    json_t *v = NULL;
    assert_int_equal(jparse(inner[i].t, inner[i].n, 8, &v, NULL), -EINVAL);
    assert_null(v);
  }
}

static void test_jparse_long_escaped_strings_and_keys(void **state) {
  (void)state;
  /* past the 256-byte stack scratch: keys and values decoded into the heap scratch */
  char *text = malloc(20000);
  size_t o = 0;
  o += (size_t)sprintf(text + o, "{\"");
  for (int i = 0; i < 400; i++) o += (size_t)sprintf(text + o, "k\\u00e9\\n");
  o += (size_t)sprintf(text + o, "\":\"");
  for (int i = 0; i < 600; i++) o += (size_t)sprintf(text + o, "v\\\"\\ud83d\\ude00");
  o += (size_t)sprintf(text + o, "\",\"");
  for (int i = 0; i < 300; i++) o += (size_t)sprintf(text + o, "\\t");
  o += (size_t)sprintf(text + o, "\":[\"");
  for (int i = 0; i < 300; i++) o += (size_t)sprintf(text + o, "\\u0041");
  o += (size_t)sprintf(text + o, "\"]}");
  agree(text, o);
  free(text);
}

static void test_jparse_depth_is_checked_as_brackets_open(void **state) {
  (void)state;
  char deep[300];
  memset(deep, '[', 200);
  memset(deep + 200, ']', 100); /* not even valid: depth is refused first */
  json_t *v = NULL;
  jparse_error err;
  assert_int_equal(jparse(deep, 300, 128, &v, &err), -ELOOP);
  assert_null(v);
  assert_int_equal(err.position, 128);
  char ok[20];
  memset(ok, '[', 10);
  memset(ok + 10, ']', 10);
  assert_int_equal(jparse(ok, 20, 10, &v, NULL), 0);
  json_decref(v);
  assert_int_equal(jparse(ok, 20, 9, &v, NULL), -ELOOP);
  /* objects count too */
  assert_int_equal(jparse("{\"a\":{\"b\":{}}}", 14, 2, &v, NULL), -ELOOP);
  assert_int_equal(jparse("{\"a\":{\"b\":{}}}", 14, 3, &v, NULL), 0);
  json_decref(v);
}

static void test_jparse_says_where(void **state) {
  (void)state;
  json_t *v = NULL;
  jparse_error err;
  assert_int_equal(jparse("{\"a\":1,\"b\":tru}", 15, 128, &v, &err), -EINVAL);
  assert_int_equal(err.position, 11);
  assert_non_null(strstr(err.text, "invalid token"));
  assert_int_equal(jparse("[1,2", 4, 128, &v, &err), -EINVAL);
  assert_int_equal(err.position, 4);
  assert_non_null(strstr(err.text, "end of input"));
  assert_int_equal(jparse("\"\\u0000\"", 8, 128, &v, &err), -EINVAL);
  assert_int_equal(err.position, 1);
  assert_int_equal(jparse("99999999999999999999", 20, 128, &v, &err), -EINVAL);
  assert_non_null(strstr(err.text, "too big integer"));
  assert_null(v);
}

static void test_jparse_types_match_jansson(void **state) {
  (void)state;
  json_t *v = NULL;
  assert_int_equal(jparse("[1, 1.0, 1e0, -0, \"s\"]", 22, 8, &v, NULL), 0);
  assert_true(json_is_integer(json_array_get(v, 0)));
  assert_true(json_is_real(json_array_get(v, 1)));
  assert_true(json_is_real(json_array_get(v, 2)));
  assert_true(json_is_integer(json_array_get(v, 3)));
  assert_int_equal(json_integer_value(json_array_get(v, 3)), 0);
  assert_true(json_is_string(json_array_get(v, 4)));
  json_decref(v);
}

/* A pseudo-random walk over short texts built from JSON's own alphabet: the two parsers must
 * agree on every one (a cheap, deterministic cousin of fuzz/fuzz_jparse.c). */
static void test_jparse_agrees_on_random_texts(void **state) {
  (void)state;
  static const char alphabet[] = "{}[],:\" \\u0aA1-+.eE9tfnrl\xc3\xa9\x80\xed\xf0";
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  char t[24];
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t n = 1 + (size_t)(x % (sizeof t - 1));
    uint64_t y = x;
    for (size_t j = 0; j < n; j++) {
      y = y * 6364136223846793005ULL + 1442695040888963407ULL;
      t[j] = alphabet[(y >> 33) % (sizeof alphabet - 1)];
    }
    if (memchr(t, 0, n)) continue; /* never generated; jansson's NUL quirk aside */
    agree(t, n);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jparse_accepts_what_jansson_accepts),
      cmocka_unit_test(test_jparse_refuses_what_jansson_refuses),
      cmocka_unit_test(test_jparse_long_escaped_strings_and_keys),
      cmocka_unit_test(test_jparse_depth_is_checked_as_brackets_open),
      cmocka_unit_test(test_jparse_says_where),
      cmocka_unit_test(test_jparse_types_match_jansson),
      cmocka_unit_test(test_jparse_agrees_on_random_texts),
      cmocka_unit_test(test_jparse_flags_match_jansson_flags),
      cmocka_unit_test(test_jparse_scan_duplicates_and_members),
      cmocka_unit_test(test_jparse_duplicate_keys_sharing_a_filter_bit),
      cmocka_unit_test(test_jparse_string_scan_finds_every_stop),
      cmocka_unit_test(test_jparse_wide_string_scan_at_every_offset),
      cmocka_unit_test(test_jparse_runs_of_escapes_then_anything),
      cmocka_unit_test(test_jparse_integers_around_the_fast_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

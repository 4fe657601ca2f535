/* Allocation failures in util: buf, the JSON-line logger, and util/alloc's guards around
 * jansson (a parse that runs short of memory is refused whole, never corrupts memory; a dump
 * is whole or NULL), with the Nth allocation failing for every N (tests/support/failmalloc.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/failmalloc.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

static int sc_buf(void *ud) {
  (void)ud;
  buf b;
  buf_init(&b, 1 << 20);
  int rc = 0;
  for (int i = 0; i < 200 && !rc; i++) {
    size_t before = buf_len(&b);
    rc = (int)FM_STEP(buf_append(&b, "0123456789abcdef", 16), NULL);
    if (rc) assert_int_equal(buf_len(&b), before); /* a failed append leaves the buffer unchanged */
    if (!rc && i % 7 == 0) buf_consume(&b, 5);
  }
  if (!rc) {
    size_t n = buf_len(&b), got;
    char *s = buf_take_str(&b, &got);
    if (!s) {
      assert_true(fm_failed());
      assert_int_equal(buf_len(&b), n); /* nothing taken */
      rc = -ENOMEM;
    } else {
      assert_int_equal(got, n);
      assert_int_equal(strlen(s), n);
      free(s);
    }
  }
  buf_free(&b);
  return rc;
}

/* A line is written whole or not at all, and a failure inside the logger is not the caller's:
 * the caller's out-of-memory flag is as it was. */
static int sc_log(void *ud) {
  int fd = *(int *)ud;
  log_set_fd(fd);
  alloc_oom_set(false);
  log_write(LOG_INFO, "failmalloc", "{s:s, s:i, s:{s:[i,i]}}", "what", "a field", "n", 7, "nested", "list", 1, 2);
  assert_false(alloc_oom_seen());
  alloc_oom_set(true);
  log_write(LOG_WARNING, "failmalloc again", NULL);
  assert_true(alloc_oom_seen());
  alloc_oom_set(false);
  log_set_fd(2);
  return 0;
}

/* jansson 2.14 corrupts memory when an allocation fails while it lexes a string longer than its
 * 16-byte buffer (akheron/jansson#362): the text below is such a string. */
static const char k_texts[][160] = {
    "\"resources/read\"",
    "{\"jsonrpc\":\"2.0\",\"id\":\"m4\",\"method\":\"resources/read\",\"params\":{\"uri\":\"file:///x\",\"n\":123456789012345678}}",
    "[1234567890123456, 1.25e+300, \"a longer string value\", {\"k\": [true, false, null]}]",
};

static int sc_json(void *ud) {
  (void)ud;
  int rc = 0;
  for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {
    json_error_t err;
    bool oom;
    json_t *v = alloc_json_loads(k_texts[i], JSON_DECODE_ANY, &err, &oom);
    if (oom) {
      assert_null(v);
      assert_true(fm_failed());
      rc = -ENOMEM;
      continue;
    }
    assert_non_null(v); /* never "invalid JSON" for want of memory */
    char *text = alloc_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
      assert_true(fm_failed());
      rc = -ENOMEM;
    } else {
      fm_pause();
      json_t *back = json_loads(text, JSON_DECODE_ANY, NULL); /* a dump is JSON, whole */
      assert_non_null(back);
      assert_true(json_equal(back, v));
      json_decref(back);
      fm_resume();
      free(text);
    }
    json_decref(v);
  }
  return rc;
}

static void test_failmalloc_buf(void **state) { (void)fm_run_scenario("buf", sc_buf, NULL, NULL); }
static void test_failmalloc_log(void **state) {
  int fd = open("/dev/null", O_WRONLY);
  assert_true(fd >= 0);
  (void)fm_run_scenario("log", sc_log, &fd, NULL);
  close(fd);
}
static void test_failmalloc_json(void **state) { (void)fm_run_scenario("json", sc_json, NULL, NULL); }

int main(void) {
  fm_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_failmalloc_buf),
      cmocka_unit_test(test_failmalloc_log),
      cmocka_unit_test(test_failmalloc_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

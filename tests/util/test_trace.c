/* Unit tests for util/trace: W3C traceparent parsing (every rule of §3.2 that makes a value
 * invalid), formatting, new spans on the same trace, and the per-thread request scope that
 * util/log adds to every line. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/log.h"
#include "util/trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void test_trace_continue_keeps_trace_new_span(void **state) {
  (void)state;
  trace_ctx t;
  assert_int_equal(trace_continue(TP, &t), 0);
  char hex[33], tp[56];
  trace_id_hex(&t, hex);
  assert_string_equal(hex, "4bf92f3577b34da6a3ce929d0e0e4736");
  trace_format(&t, tp);
  assert_int_equal(strlen(tp), 55);
  assert_memory_equal(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
  assert_string_not_equal(tp + 36, "00f067aa0ba902b7-01"); /* our span, not the parent's */
  assert_string_equal(tp + 52, "-01");
  trace_ctx again;
  assert_int_equal(trace_continue(tp, &again), 0); /* what we send parses back */
  assert_memory_equal(again.trace_id, t.trace_id, 16);
}

static void test_trace_rejects_invalid_traceparent(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",                 /* short */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",          /* version 00 + more */
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",                /* version ff */
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",                /* upper case */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",                /* zero trace id */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",                /* zero parent */
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",                /* separator */
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",                /* not hex */
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",               /* later version: "-" after */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    trace_ctx t = {0};
    assert_int_equal(trace_continue(bad[i], &t), -EINVAL);
    assert_false(trace_valid(&t));
  }
  trace_ctx t;
  assert_int_equal(trace_continue(NULL, &t), -EINVAL);
  json_t *n = json_integer(5);
  assert_int_equal(trace_continue_json(n, &t), -EINVAL);
  json_decref(n);
  /* a later version with more fields is read for its first four */
  assert_int_equal(trace_continue("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever", &t), 0);
}

static void test_trace_new_ids_differ(void **state) {
  (void)state;
  trace_ctx a, b, c;
  trace_new(&a);
  trace_new(&b);
  assert_true(trace_valid(&a));
  assert_memory_not_equal(a.trace_id, b.trace_id, 16);
  assert_int_equal(a.flags, 1);
  trace_child(&a, &c);
  assert_memory_equal(a.trace_id, c.trace_id, 16);
  assert_memory_not_equal(a.span_id, c.span_id, 8);
}

static json_t *capture(void) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  log_set_fd(fds[1]);
  log_write(LOG_INFO, "inside", "{s:s}", "peer_id", "caller-field-wins");
  log_set_fd(2);
  close(fds[1]);
  char buf[4096];
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  assert_true(n > 0);
  buf[n] = 0;
  return json_loads(buf, 0, NULL);
}

static void test_trace_scope_fields_in_log_lines(void **state) {
  (void)state;
  log_set_level(LOG_INFO);
  json_t *rid = json_integer(7);
  trace_scope s = {.request_id = "req-1", .rpc_id = rid, .transport = "stdio", .peer_id = "12D3KooW"};
  assert_int_equal(trace_continue(TP, &s.trace), 0);
  const trace_scope *prev = trace_scope_enter(&s);
  assert_null(prev);
  assert_ptr_equal(trace_current(), &s.trace);
  json_t *j = capture();
  trace_scope_leave(prev);
  assert_null(trace_current());
  assert_string_equal(json_string_value(json_object_get(j, "trace_id")), "4bf92f3577b34da6a3ce929d0e0e4736");
  assert_string_equal(json_string_value(json_object_get(j, "request_id")), "req-1");
  assert_int_equal(json_integer_value(json_object_get(j, "rpc_id")), 7);
  assert_string_equal(json_string_value(json_object_get(j, "transport")), "stdio");
  assert_string_equal(json_string_value(json_object_get(j, "peer_id")), "caller-field-wins");
  json_decref(j);
  j = capture(); /* outside the scope: none of them */
  assert_null(json_object_get(j, "trace_id"));
  assert_null(json_object_get(j, "request_id"));
  json_decref(j);
  json_decref(rid);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trace_continue_keeps_trace_new_span),
      cmocka_unit_test(test_trace_rejects_invalid_traceparent),
      cmocka_unit_test(test_trace_new_ids_differ),
      cmocka_unit_test(test_trace_scope_fields_in_log_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

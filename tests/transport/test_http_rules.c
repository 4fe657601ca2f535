/* Unit tests for transport/http_rules: Accept and Content-Type, Host and Origin (DNS rebinding),
 * the Base64 header sentinel and JSON-RPC error → HTTP status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "transport/http_rules.h"

static void test_accept_needs_the_type_or_a_wildcard_with_q_above_zero(void **state) {
  (void)state;
  assert_true(http_accepts("application/json, text/event-stream", "application/json"));
  assert_true(http_accepts("application/json, text/event-stream", "text/event-stream"));
  assert_true(http_accepts("text/event-stream,application/json", "application/json"));
  assert_true(http_accepts("*/*", "text/event-stream"));
  assert_true(http_accepts("application/*", "application/json"));
  assert_true(http_accepts("APPLICATION/JSON;q=0.5", "application/json"));
  assert_true(http_accepts("text/html, application/json; charset=utf-8", "application/json"));
  assert_false(http_accepts(NULL, "application/json"));
  assert_false(http_accepts("", "application/json"));
  assert_false(http_accepts("text/event-stream", "application/json"));
  assert_false(http_accepts("application/json;q=0", "application/json"));
  assert_false(http_accepts("application/jsonx", "application/json"));
  assert_false(http_accepts("text/*", "application/json"));
}

static void test_content_type_must_be_application_json(void **state) {
  (void)state;
  assert_true(http_content_type_is_json("application/json"));
  assert_true(http_content_type_is_json("Application/JSON; charset=utf-8"));
  assert_true(http_content_type_is_json(" application/json ;x=y"));
  assert_false(http_content_type_is_json(NULL));
  assert_false(http_content_type_is_json("text/plain"));
  assert_false(http_content_type_is_json("application/json-seq"));
  assert_false(http_content_type_is_json("application/jsonp"));
}

static void test_host_loopback_names_and_configured_hosts_only(void **state) {
  (void)state;
  static const char *const hosts[] = {"mcp.example", "api.example:8443"};
  http_origin_policy p = {.hosts = hosts, .n_hosts = 2};
  assert_true(http_host_allowed(&p, "localhost"));
  assert_true(http_host_allowed(&p, "LOCALHOST:9999"));
  assert_true(http_host_allowed(&p, "127.0.0.1:8080"));
  assert_true(http_host_allowed(&p, "[::1]:8080"));
  assert_true(http_host_allowed(&p, "mcp.example"));
  assert_true(http_host_allowed(&p, "mcp.example:1234"));   /* a name alone allows any port */
  assert_true(http_host_allowed(&p, "api.example:8443"));
  assert_false(http_host_allowed(&p, "api.example:8444")); /* name:port is exact */
  assert_false(http_host_allowed(&p, NULL));
  assert_false(http_host_allowed(&p, ""));
  assert_false(http_host_allowed(&p, "evil.example.com"));
  assert_false(http_host_allowed(&p, "localhost.evil.com"));
  assert_false(http_host_allowed(&p, "127.0.0.1.nip.io"));
  assert_false(http_host_allowed(&p, "127.0.0.2"));
  assert_false(http_host_allowed(&p, "localhost:80x"));
  assert_false(http_host_allowed(&p, "[::1"));
  http_origin_policy any = {.any_host = true};
  assert_true(http_host_allowed(&any, "whatever.example"));
}

static void test_origin_absent_loopback_or_exact_configured(void **state) {
  (void)state;
  static const char *const origins[] = {"https://app.example"};
  http_origin_policy p = {.origins = origins, .n_origins = 1};
  assert_true(http_origin_allowed(&p, NULL));
  assert_true(http_origin_allowed(&p, "http://localhost:3000"));
  assert_true(http_origin_allowed(&p, "https://127.0.0.1"));
  assert_true(http_origin_allowed(&p, "http://[::1]:5173"));
  assert_true(http_origin_allowed(&p, "https://app.example"));
  assert_false(http_origin_allowed(&p, "https://app.example:444"));
  assert_false(http_origin_allowed(&p, "http://app.example"));
  assert_false(http_origin_allowed(&p, "null"));
  assert_false(http_origin_allowed(&p, "file://"));
  assert_false(http_origin_allowed(&p, "http://evil.example"));
  assert_false(http_origin_allowed(&p, "http://localhost.evil.example"));
  assert_false(http_origin_allowed(&p, "http://"));
}

static void test_loopback_addresses(void **state) {
  (void)state;
  assert_true(http_addr_is_loopback("127.0.0.1"));
  assert_true(http_addr_is_loopback("127.5.6.7"));
  assert_true(http_addr_is_loopback("::1"));
  assert_false(http_addr_is_loopback("0.0.0.0"));
  assert_false(http_addr_is_loopback("::"));
  assert_false(http_addr_is_loopback("192.0.2.1"));
  assert_false(http_addr_is_loopback("localhost")); /* numeric only */
}

static void test_header_value_plain_trimmed_and_base64_sentinel(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(http_header_value_decode("get_weather", out, sizeof out), 11);
  assert_string_equal(out, "get_weather");
  assert_int_equal(http_header_value_decode("  padded\t", out, sizeof out), 6); /* RFC 9110 OWS */
  assert_string_equal(out, "padded");
  assert_int_equal(http_header_value_decode("=?base64?SGVsbG8sIOS4lueVjA==?=", out, sizeof out), 13);
  assert_string_equal(out, "Hello, \xe4\xb8\x96\xe7\x95\x8c");
  assert_int_equal(http_header_value_decode("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=", out, sizeof out), 18);
  assert_string_equal(out, "=?base64?literal?=");
  /* literal when the sentinel is incomplete */
  assert_int_equal(http_header_value_decode("=?base64?SGVsbG8=", out, sizeof out), 17);
  assert_string_equal(out, "=?base64?SGVsbG8=");
  /* malformed */
  assert_int_equal(http_header_value_decode("=?base64?SGVsbG8?=", out, sizeof out), -1);     /* no padding */
  assert_int_equal(http_header_value_decode("=?base64?SGVs!!!bG8=?=", out, sizeof out), -1); /* alphabet */
  assert_int_equal(http_header_value_decode("=?base64?AA==?=", out, sizeof out), -1);        /* a NUL byte */
  assert_int_equal(http_header_value_decode("caf\xc3\xa9", out, sizeof out), -1);          /* raw non-ASCII */
  assert_int_equal(http_header_value_decode("a\x01z", out, sizeof out), -1);
  assert_int_equal(http_header_value_decode("0123456789", out, 5), -1); /* does not fit */
  assert_int_equal(http_header_value_decode(NULL, out, sizeof out), -1);
}

static void test_rpc_error_status_by_era(void **state) {
  (void)state;
  assert_int_equal(http_status_for_rpc_error(-32601, true), 404);
  assert_int_equal(http_status_for_rpc_error(-32602, true), 400);
  assert_int_equal(http_status_for_rpc_error(-32020, true), 400);
  assert_int_equal(http_status_for_rpc_error(-32021, true), 400);
  assert_int_equal(http_status_for_rpc_error(-32022, true), 400);
  assert_int_equal(http_status_for_rpc_error(-32700, true), 400);
  assert_int_equal(http_status_for_rpc_error(-32603, true), 200);
  assert_int_equal(http_status_for_rpc_error(-32601, false), 200);
  assert_int_equal(http_status_for_rpc_error(-32602, false), 200);
  assert_int_equal(http_status_for_rpc_error(-32600, false), 400);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accept_needs_the_type_or_a_wildcard_with_q_above_zero),
      cmocka_unit_test(test_content_type_must_be_application_json),
      cmocka_unit_test(test_host_loopback_names_and_configured_hosts_only),
      cmocka_unit_test(test_origin_absent_loopback_or_exact_configured),
      cmocka_unit_test(test_loopback_addresses),
      cmocka_unit_test(test_header_value_plain_trimmed_and_base64_sentinel),
      cmocka_unit_test(test_rpc_error_status_by_era),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_perf.c — libp2p perf: request header, upload then download, both ends. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/proto/perf.h"

/* Runs a client against a server in `chunk`-byte pieces. */
static void run(uint64_t up, uint64_t down, size_t chunk) {
  perf_client c;
  perf_server s;
  perf_client_init(&c, up, down);
  perf_server_init(&s);
  uint8_t b[4096];
  if (chunk > sizeof b) chunk = sizeof b;
  while (c.state == PERF_CLI_SEND) {
    size_t n = perf_client_fill(&c, b, chunk);
    assert_true(n > 0);
    assert_int_equal(perf_server_feed(&s, b, n), 0);
    perf_client_sent(&c, n);
    assert_int_equal(s.state == PERF_SRV_SEND, 0); /* never sends while reading */
  }
  assert_int_equal(c.state, PERF_CLI_RECEIVE);
  assert_int_equal(perf_server_eof(&s), 0); /* client closed its write side */
  assert_int_equal(s.to_send, down);
  assert_int_equal(s.received, up);
  while (s.state == PERF_SRV_SEND) {
    size_t n = perf_server_fill(&s, b, chunk);
    assert_true(n > 0);
    assert_int_equal(perf_client_feed(&c, b, n), 0);
    perf_server_sent(&s, n);
  }
  assert_int_equal(s.state, PERF_SRV_DONE);
  assert_int_equal(perf_client_eof(&c), 0);
  assert_int_equal(c.state, PERF_CLI_DONE);
  assert_int_equal(c.received, down);
}

static void test_perf_upload_then_download(void **st) {
  (void)st;
  run(100000, 250000, 4096);
  run(0, 0, 4096);     /* zero is valid both ways */
  run(5, 3, 1);        /* byte by byte, header split */
  run(0, 70000, 1000);
}

static void test_perf_request_is_big_endian_u64(void **st) {
  (void)st;
  perf_client c;
  perf_client_init(&c, 2, 0x0102030405060708ull);
  uint8_t b[16];
  assert_int_equal(perf_client_fill(&c, b, sizeof b), 10);
  const uint8_t exp[] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0};
  assert_memory_equal(b, exp, sizeof exp);
  perf_client_sent(&c, 3); /* partial send: the rest of the header comes next */
  assert_int_equal(perf_client_fill(&c, b, sizeof b), 7);
  assert_memory_equal(b, exp + 3, 7);
}

static void test_perf_server_rejects_eof_before_header(void **st) {
  (void)st;
  perf_server s;
  perf_server_init(&s);
  assert_int_equal(perf_server_feed(&s, (const uint8_t *)"\0\0\0", 3), 0);
  assert_int_equal(perf_server_eof(&s), -EPROTO);
  assert_int_equal(s.state, PERF_SRV_FAILED);
}

static void test_perf_client_rejects_too_many_or_too_few_bytes(void **st) {
  (void)st;
  perf_client c;
  perf_client_init(&c, 0, 4);
  uint8_t b[16];
  perf_client_sent(&c, perf_client_fill(&c, b, sizeof b));
  assert_int_equal(c.state, PERF_CLI_RECEIVE);
  assert_int_equal(perf_client_feed(&c, b, 5), -EPROTO);
  perf_client_init(&c, 0, 4);
  perf_client_sent(&c, perf_client_fill(&c, b, sizeof b));
  assert_int_equal(perf_client_feed(&c, b, 3), 0);
  assert_int_equal(perf_client_eof(&c), -EPROTO);
}

static void test_perf_timer_based_upload_can_end_early(void **st) {
  (void)st;
  perf_client c;
  perf_client_init(&c, UINT64_MAX, 0);
  uint8_t b[4];
  perf_client_sent(&c, perf_client_fill(&c, b, sizeof b));
  assert_int_equal(perf_client_end_upload(&c), -EPROTO); /* header not yet out */
  perf_client_sent(&c, perf_client_fill(&c, b, sizeof b));
  assert_int_equal(perf_client_end_upload(&c), 0);
  assert_int_equal(perf_client_eof(&c), 0);
}

static void test_perf_bits_per_second(void **st) {
  (void)st;
  assert_true(perf_bits_per_second(125000000, 0, 1000000) == 1e9);
  assert_true(perf_bits_per_second(1, 5, 5) == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_perf_upload_then_download),
      cmocka_unit_test(test_perf_request_is_big_endian_u64),
      cmocka_unit_test(test_perf_server_rejects_eof_before_header),
      cmocka_unit_test(test_perf_client_rejects_too_many_or_too_few_bytes),
      cmocka_unit_test(test_perf_timer_based_upload_can_end_early),
      cmocka_unit_test(test_perf_bits_per_second),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

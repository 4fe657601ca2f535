/* test_ping.c — libp2p ping: 32-byte payload echoed, RTT from caller-supplied times. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/proto/ping.h"

static void test_ping_round_trip_measures_rtt(void **st) {
  (void)st;
  ping_client c;
  ping_server s;
  ping_client_init(&c);
  ping_server_init(&s);
  buf wire;
  buf_init(&wire, 1024);
  uint8_t payload[PING_PAYLOAD_LEN];
  assert_int_equal(ping_client_start(&c, 1000, payload), 0);
  assert_int_equal(ping_server_feed(&s, payload, sizeof payload, &wire), 0);
  assert_int_equal(buf_len(&wire), PING_PAYLOAD_LEN);
  assert_memory_equal(buf_ptr(&wire), payload, PING_PAYLOAD_LEN);
  size_t used;
  uint64_t rtt = 0;
  assert_int_equal(ping_client_feed(&c, buf_ptr(&wire), buf_len(&wire), 1750, &used, &rtt), 1);
  assert_int_equal(used, PING_PAYLOAD_LEN);
  assert_int_equal(rtt, 750);
  assert_int_equal(s.echoed, 1);
  assert_int_equal(ping_server_finish(&s), 0);
  buf_free(&wire);
}

static void test_ping_payloads_are_random(void **st) {
  (void)st;
  ping_client c;
  ping_client_init(&c);
  uint8_t a[PING_PAYLOAD_LEN], b[PING_PAYLOAD_LEN];
  assert_int_equal(ping_client_start(&c, 0, a), 0);
  assert_int_equal(ping_client_start(&c, 0, b), -EBUSY); /* one in flight */
  size_t used;
  uint64_t rtt;
  assert_int_equal(ping_client_feed(&c, a, sizeof a, 5, &used, &rtt), 1);
  assert_int_equal(ping_client_start(&c, 10, b), 0);
  assert_memory_not_equal(a, b, sizeof a);
}

static void test_ping_echo_split_byte_by_byte_and_repeated(void **st) {
  (void)st;
  ping_client c;
  ping_server s;
  ping_client_init(&c);
  ping_server_init(&s);
  buf wire;
  buf_init(&wire, 1024);
  for (int round = 0; round < 3; round++) {
    uint8_t payload[PING_PAYLOAD_LEN];
    assert_int_equal(ping_client_start(&c, 100, payload), 0);
    for (size_t i = 0; i < sizeof payload; i++)
      assert_int_equal(ping_server_feed(&s, payload + i, 1, &wire), 0);
    int rc = 0;
    for (size_t i = 0; i < buf_len(&wire); i++) {
      size_t used;
      uint64_t rtt;
      rc = ping_client_feed(&c, buf_ptr(&wire) + i, 1, 200, &used, &rtt);
      assert_int_equal(used, 1);
      if (i + 1 < PING_PAYLOAD_LEN) assert_int_equal(rc, 0);
    }
    assert_int_equal(rc, 1);
    buf_reset(&wire);
  }
  assert_int_equal(s.echoed, 3);
  buf_free(&wire);
}

static void test_ping_rejects_wrong_echo_and_unsolicited_bytes(void **st) {
  (void)st;
  ping_client c;
  ping_client_init(&c);
  size_t used;
  uint64_t rtt;
  uint8_t junk[PING_PAYLOAD_LEN] = {0};
  assert_int_equal(ping_client_feed(&c, junk, 1, 0, &used, &rtt), -EPROTO);
  uint8_t p[PING_PAYLOAD_LEN];
  assert_int_equal(ping_client_start(&c, 0, p), 0);
  memcpy(junk, p, sizeof junk);
  junk[31] ^= 1;
  assert_int_equal(ping_client_feed(&c, junk, sizeof junk, 1, &used, &rtt), -EPROTO);
}

static void test_ping_server_partial_payload_at_close_is_an_error(void **st) {
  (void)st;
  ping_server s;
  ping_server_init(&s);
  buf wire;
  buf_init(&wire, 1024);
  uint8_t x[40] = {1};
  assert_int_equal(ping_server_feed(&s, x, sizeof x, &wire), 0);
  assert_int_equal(buf_len(&wire), PING_PAYLOAD_LEN); /* only the complete payload */
  assert_int_equal(ping_server_finish(&s), -EPROTO);
  buf_free(&wire);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ping_round_trip_measures_rtt),
      cmocka_unit_test(test_ping_payloads_are_random),
      cmocka_unit_test(test_ping_echo_split_byte_by_byte_and_repeated),
      cmocka_unit_test(test_ping_rejects_wrong_echo_and_unsolicited_bytes),
      cmocka_unit_test(test_ping_server_partial_payload_at_close_is_an_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

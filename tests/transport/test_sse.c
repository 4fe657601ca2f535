/* Unit tests for transport/sse: event framing, bounded unread bytes, the replay window and
 * Last-Event-ID rewinds, event id parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "transport/sse.h"

static char *read_all(sse_stream *s) {
  size_t n = sse_stream_unread(s);
  char *b = malloc(n + 1);
  assert_non_null(b);
  size_t got = 0;
  while (got < n) got += sse_stream_read(s, b + got, 7); /* small reads on purpose */
  b[n] = 0;
  return b;
}

static void test_sse_frames_events_with_ids(void **state) {
  (void)state;
  sse_stream *s = sse_stream_new(3, true, 1 << 20, 1 << 20);
  assert_non_null(s);
  assert_int_equal(sse_stream_prime(s), 0);
  assert_int_equal(sse_stream_event(s, "{\"a\":1}", 7), 0);
  assert_int_equal(sse_stream_event(s, "{}", 2), 0);
  char *b = read_all(s);
  assert_string_equal(b, "id: 3-1\ndata: \n\nid: 3-2\nevent: message\ndata: {\"a\":1}\n\nid: 3-3\nevent: message\ndata: {}\n\n");
  free(b);
  assert_int_equal(sse_stream_last_seq(s), 3);
  assert_int_equal(sse_stream_no(s), 3);
  assert_int_equal(sse_stream_comment(s), 0);
  b = read_all(s);
  assert_string_equal(b, ":\n\n");
  free(b);
  sse_stream_free(s);
}

static void test_sse_without_ids_keeps_nothing(void **state) {
  (void)state;
  sse_stream *s = sse_stream_new(1, false, 1 << 20, 1 << 20);
  assert_int_equal(sse_stream_prime(s), -EINVAL);
  assert_int_equal(sse_stream_event(s, "{}", 2), 0);
  char *b = read_all(s);
  assert_string_equal(b, "event: message\ndata: {}\n\n");
  free(b);
  assert_int_equal(sse_stream_rewind(s, 1), -EINVAL);
  sse_stream_free(s);
}

static void test_sse_unread_bytes_are_capped_but_one_large_event_fits(void **state) {
  (void)state;
  sse_stream *s = sse_stream_new(1, false, 100, 0);
  char big[500];
  memset(big, 'x', sizeof big);
  assert_int_equal(sse_stream_event(s, big, sizeof big), 0); /* empty stream: one event of any size */
  assert_int_equal(sse_stream_event(s, "{}", 2), -ENOBUFS);   /* but not a second one */
  char tmp[1024];
  while (sse_stream_read(s, tmp, sizeof tmp) > 0) {
  }
  assert_int_equal(sse_stream_unread(s), 0);
  assert_int_equal(sse_stream_event(s, "{}", 2), 0); /* drained: room again */
  assert_int_equal(sse_stream_comment(s), 0);        /* nothing appended while bytes wait */
  assert_int_equal(sse_stream_unread(s), strlen("event: message\ndata: {}\n\n"));
  sse_stream_free(s);
}

static void test_sse_rewind_replays_after_the_last_event_id(void **state) {
  (void)state;
  sse_stream *s = sse_stream_new(2, true, 1 << 20, 1 << 20);
  for (int i = 1; i <= 5; i++) {
    char d[16];
    snprintf(d, sizeof d, "{\"n\":%d}", i);
    assert_int_equal(sse_stream_event(s, d, strlen(d)), 0);
  }
  free(read_all(s));
  assert_int_equal(sse_stream_rewind(s, 3), 0);
  char *b = read_all(s);
  assert_string_equal(b, "id: 2-4\nevent: message\ndata: {\"n\":4}\n\nid: 2-5\nevent: message\ndata: {\"n\":5}\n\n");
  free(b);
  assert_int_equal(sse_stream_rewind(s, 5), 0); /* saw everything */
  assert_int_equal(sse_stream_unread(s), 0);
  assert_int_equal(sse_stream_rewind(s, 99), -ENOENT);
  sse_stream_free(s);
}

static void test_sse_replay_window_drops_the_oldest_events(void **state) {
  (void)state;
  /* the window keeps at least `retain` bytes of read events; older ones go when room is needed */
  sse_stream *s = sse_stream_new(1, true, 1 << 20, 200);
  char tmp[256];
  for (int i = 1; i <= 200; i++) {
    char d[16];
    snprintf(d, sizeof d, "{\"n\":%03d}", i);
    assert_int_equal(sse_stream_event(s, d, strlen(d)), 0);
    while (sse_stream_read(s, tmp, sizeof tmp) > 0) {
    }
  }
  assert_int_equal(sse_stream_rewind(s, 198), 0); /* recent ones are kept */
  char *b = read_all(s);
  assert_string_equal(b, "id: 1-199\nevent: message\ndata: {\"n\":199}\n\nid: 1-200\nevent: message\ndata: {\"n\":200}\n\n");
  free(b);
  assert_int_equal(sse_stream_rewind(s, 2), -ENOENT); /* old ones are gone */
  sse_stream_free(s);
}

static void test_sse_event_id_parse(void **state) {
  (void)state;
  uint32_t no;
  uint64_t seq;
  assert_true(sse_event_id_parse("3-17", &no, &seq));
  assert_int_equal(no, 3);
  assert_int_equal(seq, 17);
  assert_true(sse_event_id_parse("4294967295-18446744073709551615", &no, &seq) || true);
  static const char *const bad[] = {"", "3", "-1", "3-", "a-1", "3-1x", " 3-1", "3--1", "99999999999-1", NULL};
  for (size_t i = 0; bad[i]; i++)
    if (sse_event_id_parse(bad[i], &no, &seq)) fail_msg("accepted \"%s\"", bad[i]);
  assert_false(sse_event_id_parse(NULL, &no, &seq));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sse_frames_events_with_ids),
      cmocka_unit_test(test_sse_without_ids_keeps_nothing),
      cmocka_unit_test(test_sse_unread_bytes_are_capped_but_one_large_event_fits),
      cmocka_unit_test(test_sse_rewind_replays_after_the_last_event_id),
      cmocka_unit_test(test_sse_replay_window_drops_the_oldest_events),
      cmocka_unit_test(test_sse_event_id_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

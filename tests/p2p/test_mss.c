/* test_mss.c — multistream-select 1.0: one test per rule of the spec. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/proto/mss.h"

#define BIG (1u << 20)

/* Appends one framed message to b (test helper using the module's own encoder). */
static void put(buf *b, const char *s) { assert_int_equal(mss_write_msg(b, s, strlen(s)), 0); }

/* Feeds all of `in` (in chunks of `chunk` bytes) and returns the total consumed. */
static ssize_t feed_chunks(mss *m, const uint8_t *in, size_t len, size_t chunk, buf *out) {
  size_t pos = 0;
  while (pos < len) {
    size_t n = len - pos < chunk ? len - pos : chunk;
    ssize_t used = mss_feed(m, in + pos, n, out);
    if (used < 0) return used;
    pos += (size_t)used;
    if ((size_t)used < n) break; /* negotiation done: rest is application data */
  }
  return (ssize_t)pos;
}

static void test_mss_na_encoding_matches_spec_example(void **st) {
  (void)st;
  buf b;
  buf_init(&b, BIG);
  put(&b, "na");
  assert_int_equal(buf_len(&b), 4);
  assert_memory_equal(buf_ptr(&b), "\x03na\n", 4);
  buf_free(&b);
}

static void test_mss_dialer_start_sends_header_and_first_proposal(void **st) {
  (void)st;
  const char *ids[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_dialer_new(&m, ids, 1), 0);
  buf out, exp;
  buf_init(&out, BIG);
  buf_init(&exp, BIG);
  assert_int_equal(mss_start(m, &out), 0);
  put(&exp, "/multistream/1.0.0");
  put(&exp, "/noise");
  assert_int_equal(buf_len(&out), buf_len(&exp));
  assert_memory_equal(buf_ptr(&out), buf_ptr(&exp), buf_len(&exp));
  assert_true(mss_can_send_early(m));
  mss_free(m);
  buf_free(&out);
  buf_free(&exp);
}

/* Runs a dialer and a listener against each other, exchanging bytes in `chunk`-sized
 * pieces, and checks they agree on `want` (or fail with want_err on the dialer). */
static void run_pair(const char *const *d, size_t nd, const char *const *l, size_t nl,
                     size_t chunk, const char *want, int want_err) {
  mss *dm, *lm;
  assert_int_equal(mss_dialer_new(&dm, d, nd), 0);
  assert_int_equal(mss_listener_new(&lm, l, nl), 0);
  buf d2l, l2d;
  buf_init(&d2l, BIG);
  buf_init(&l2d, BIG);
  assert_int_equal(mss_start(dm, &d2l), 0);
  assert_int_equal(mss_start(lm, &l2d), 0);
  int dialer_err = 0;
  for (int round = 0; round < 100; round++) {
    if (buf_len(&d2l)) {
      buf tmp = d2l;
      buf_init(&d2l, BIG);
      ssize_t n = feed_chunks(lm, buf_ptr(&tmp), buf_len(&tmp), chunk, &l2d);
      assert_true(n >= 0);
      assert_int_equal((size_t)n, buf_len(&tmp));
      buf_free(&tmp);
    }
    if (buf_len(&l2d)) {
      buf tmp = l2d;
      buf_init(&l2d, BIG);
      ssize_t n = feed_chunks(dm, buf_ptr(&tmp), buf_len(&tmp), chunk, &d2l);
      buf_free(&tmp);
      if (n < 0) {
        dialer_err = (int)n;
        break;
      }
    }
    if (!buf_len(&d2l) && !buf_len(&l2d)) break;
  }
  if (want) {
    assert_int_equal(mss_state_get(dm), MSS_DONE);
    assert_int_equal(mss_state_get(lm), MSS_DONE);
    assert_string_equal(mss_selected(dm), want);
    assert_string_equal(mss_selected(lm), want);
  } else {
    assert_int_equal(dialer_err, want_err);
    assert_int_equal(mss_state_get(dm), MSS_FAILED);
    assert_null(mss_selected(dm));
  }
  mss_free(dm);
  mss_free(lm);
  buf_free(&d2l);
  buf_free(&l2d);
}

static void test_mss_agrees_on_supported_protocol(void **st) {
  (void)st;
  const char *d[] = {"/yamux/1.0.0"};
  const char *l[] = {"/mplex/6.7.0", "/yamux/1.0.0"};
  run_pair(d, 1, l, 2, 1 << 20, "/yamux/1.0.0", 0);
}

static void test_mss_dialer_tries_next_proposal_after_na(void **st) {
  (void)st;
  const char *d[] = {"/tls/1.0.0", "/noise"};
  const char *l[] = {"/noise"};
  run_pair(d, 2, l, 1, 1 << 20, "/noise", 0);
}

static void test_mss_dialer_fails_when_every_proposal_gets_na(void **st) {
  (void)st;
  const char *d[] = {"/a", "/b"};
  const char *l[] = {"/c"};
  run_pair(d, 2, l, 1, 1 << 20, NULL, -ENOPROTOOPT);
}

static void test_mss_byte_by_byte_input_negotiates(void **st) {
  (void)st;
  const char *d[] = {"/x/1", "/ipfs/ping/1.0.0"};
  const char *l[] = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"};
  run_pair(d, 2, l, 2, 1, "/ipfs/ping/1.0.0", 0);
  run_pair(d, 2, l, 2, 3, "/ipfs/ping/1.0.0", 0);
}

static void test_mss_listener_answers_na_to_unknown(void **st) {
  (void)st;
  const char *l[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  buf in, out, exp;
  buf_init(&in, BIG);
  buf_init(&out, BIG);
  buf_init(&exp, BIG);
  put(&in, "/multistream/1.0.0");
  put(&in, "/tls/1.0.0");
  /* Without mss_start() the feed sends our header first, then the answer. */
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), (ssize_t)buf_len(&in));
  put(&exp, "/multistream/1.0.0");
  put(&exp, "na");
  assert_int_equal(buf_len(&out), buf_len(&exp));
  assert_memory_equal(buf_ptr(&out), buf_ptr(&exp), buf_len(&exp));
  assert_int_equal(mss_state_get(m), MSS_NEGOTIATING);
  mss_free(m);
  buf_free(&in);
  buf_free(&out);
  buf_free(&exp);
}

static void test_mss_listener_ls_lists_protocols(void **st) {
  (void)st;
  const char *l[] = {"/a/1", "/bb/2"};
  mss *m;
  assert_int_equal(mss_listener_new(&m, l, 2), 0);
  buf in, out;
  buf_init(&in, BIG);
  buf_init(&out, BIG);
  put(&in, "/multistream/1.0.0");
  put(&in, "ls");
  assert_int_equal(mss_start(m, &out), 0);
  buf_reset(&out);
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), (ssize_t)buf_len(&in));
  /* outer length, then "\x05/a/1\n" "\x06/bb/2\n" "\n" */
  const uint8_t exp[] = "\x0e\x05/a/1\n\x06/bb/2\n\n";
  assert_int_equal(buf_len(&out), sizeof exp - 1);
  assert_memory_equal(buf_ptr(&out), exp, sizeof exp - 1);
  assert_int_equal(mss_state_get(m), MSS_NEGOTIATING);
  mss_free(m);
  buf_free(&in);
  buf_free(&out);
}

static void test_mss_leftover_after_final_message_is_not_consumed(void **st) {
  (void)st;
  /* Listener: the proposal arrives coalesced with application data (lazy dialer). */
  const char *l[] = {"/ipfs/ping/1.0.0"};
  mss *m;
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  buf in, out;
  buf_init(&in, BIG);
  buf_init(&out, BIG);
  put(&in, "/multistream/1.0.0");
  put(&in, "/ipfs/ping/1.0.0");
  size_t proto_end = buf_len(&in);
  assert_int_equal(buf_append(&in, "PAYLOAD", 7), 0);
  /* Split so that the proposal straddles two feeds. */
  ssize_t a = mss_feed(m, buf_ptr(&in), proto_end - 3, &out);
  assert_int_equal(a, (ssize_t)(proto_end - 3));
  ssize_t b = mss_feed(m, buf_ptr(&in) + a, buf_len(&in) - (size_t)a, &out);
  assert_int_equal(b, 3);
  assert_int_equal(mss_state_get(m), MSS_DONE);
  assert_string_equal(mss_selected(m), "/ipfs/ping/1.0.0");
  assert_memory_equal(buf_ptr(&in) + a + b, "PAYLOAD", 7);
  assert_int_equal(mss_feed(m, (const uint8_t *)"x", 1, &out), 0); /* done: consumes nothing */
  mss_free(m);

  /* Dialer: the echo arrives together with the listener's first protocol bytes. */
  const char *d[] = {"/ipfs/id/1.0.0"};
  assert_int_equal(mss_dialer_new(&m, d, 1), 0);
  buf_reset(&in);
  buf_reset(&out);
  assert_int_equal(mss_start(m, &out), 0);
  put(&in, "/multistream/1.0.0");
  put(&in, "/ipfs/id/1.0.0");
  size_t end = buf_len(&in);
  assert_int_equal(buf_append(&in, "\x01\x02", 2), 0);
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), (ssize_t)end);
  assert_int_equal(mss_state_get(m), MSS_DONE);
  mss_free(m);
  buf_free(&in);
  buf_free(&out);
}

static void test_mss_rejects_wrong_header(void **st) {
  (void)st;
  const char *l[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  buf in, out;
  buf_init(&in, BIG);
  buf_init(&out, BIG);
  put(&in, "/multistream/2.0.0");
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), -EPROTO);
  assert_int_equal(mss_state_get(m), MSS_FAILED);
  assert_int_equal(mss_error(m), -EPROTO);
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), -EPROTO); /* sticky */
  mss_free(m);
  buf_free(&in);
  buf_free(&out);
}

static void test_mss_rejects_message_without_newline(void **st) {
  (void)st;
  const char *l[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  buf out;
  buf_init(&out, BIG);
  const uint8_t junk[] = "\x13/multistream/1.0.0X";
  assert_int_equal(mss_feed(m, junk, sizeof junk - 1, &out), -EPROTO);
  mss_free(m);
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  const uint8_t zero[] = {0x00};
  assert_int_equal(mss_feed(m, zero, 1, &out), -EPROTO); /* empty message */
  mss_free(m);
  buf_free(&out);
}

static void test_mss_rejects_oversize_message_before_buffering(void **st) {
  (void)st;
  const char *l[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  buf out;
  buf_init(&out, BIG);
  /* Length 1025 = 0x81 0x08: refused from the varint alone. */
  const uint8_t big[] = {0x81, 0x08};
  assert_int_equal(mss_feed(m, big, 1, &out), 1);
  assert_int_equal(mss_feed(m, big + 1, 1, &out), -EMSGSIZE);
  mss_free(m);
  /* A 3-byte varint is always over the limit. */
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  const uint8_t huge[] = {0xff, 0xff, 0xff, 0x0f};
  assert_int_equal(mss_feed(m, huge, sizeof huge, &out), -EMSGSIZE);
  mss_free(m);
  /* Exactly 1024 is fine (an unknown protocol: answered na). */
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  buf in;
  buf_init(&in, BIG);
  put(&in, "/multistream/1.0.0");
  char id[1024];
  memset(id, 'a', sizeof id - 1);
  id[1023] = 0;
  put(&in, id);
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), (ssize_t)buf_len(&in));
  mss_free(m);
  buf_free(&in);
  buf_free(&out);
}

static void test_mss_rejects_non_minimal_varint(void **st) {
  (void)st;
  const char *l[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  buf out;
  buf_init(&out, BIG);
  const uint8_t nm[] = {0x83, 0x00, 'n', 'a', '\n'};
  assert_int_equal(mss_feed(m, nm, sizeof nm, &out), -EPROTO);
  mss_free(m);
  buf_free(&out);
}

static void test_mss_dialer_rejects_unexpected_reply(void **st) {
  (void)st;
  const char *d[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_dialer_new(&m, d, 1), 0);
  buf in, out;
  buf_init(&in, BIG);
  buf_init(&out, BIG);
  assert_int_equal(mss_start(m, &out), 0);
  put(&in, "/multistream/1.0.0");
  put(&in, "/tls/1.0.0");
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), -EPROTO);
  mss_free(m);
  buf_free(&in);
  buf_free(&out);
}

static void test_mss_listener_gives_up_after_max_attempts(void **st) {
  (void)st;
  const char *l[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_listener_new(&m, l, 1), 0);
  buf in, out;
  buf_init(&in, BIG);
  buf_init(&out, BIG);
  put(&in, "/multistream/1.0.0");
  for (int i = 0; i <= MSS_MAX_ATTEMPTS; i++) put(&in, "/nope");
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), -ENOPROTOOPT);
  mss_free(m);
  buf_free(&in);
  buf_free(&out);
}

static bool match_prefix(void *ud, const char *proto, size_t len) {
  (void)len;
  return strncmp(proto, (const char *)ud, strlen((const char *)ud)) == 0;
}

static void test_mss_listener_match_function_selects(void **st) {
  (void)st;
  mss *m;
  assert_int_equal(mss_listener_new(&m, NULL, 0), 0);
  mss_listener_set_match(m, match_prefix, "/mcp+p2p/");
  buf in, out;
  buf_init(&in, BIG);
  buf_init(&out, BIG);
  put(&in, "/multistream/1.0.0");
  put(&in, "/other");
  put(&in, "/mcp+p2p/1.0.0");
  assert_int_equal(mss_feed(m, buf_ptr(&in), buf_len(&in), &out), (ssize_t)buf_len(&in));
  assert_string_equal(mss_selected(m), "/mcp+p2p/1.0.0");
  mss_free(m);
  buf_free(&in);
  buf_free(&out);
}

static void test_mss_new_rejects_bad_ids(void **st) {
  (void)st;
  mss *m;
  const char *nl[] = {"/a\nb"};
  assert_int_equal(mss_dialer_new(&m, nl, 1), -EINVAL);
  const char *empty[] = {""};
  assert_int_equal(mss_listener_new(&m, empty, 1), -EINVAL);
  assert_int_equal(mss_dialer_new(&m, NULL, 0), -EINVAL);
}

static void test_mss_full_out_buffer_is_an_error(void **st) {
  (void)st;
  const char *d[] = {"/noise"};
  mss *m;
  assert_int_equal(mss_dialer_new(&m, d, 1), 0);
  buf small;
  buf_init(&small, 8);
  assert_int_equal(mss_start(m, &small), -E2BIG);
  assert_int_equal(buf_len(&small), 0);
  mss_free(m);
  buf_free(&small);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mss_na_encoding_matches_spec_example),
      cmocka_unit_test(test_mss_dialer_start_sends_header_and_first_proposal),
      cmocka_unit_test(test_mss_agrees_on_supported_protocol),
      cmocka_unit_test(test_mss_dialer_tries_next_proposal_after_na),
      cmocka_unit_test(test_mss_dialer_fails_when_every_proposal_gets_na),
      cmocka_unit_test(test_mss_byte_by_byte_input_negotiates),
      cmocka_unit_test(test_mss_listener_answers_na_to_unknown),
      cmocka_unit_test(test_mss_listener_ls_lists_protocols),
      cmocka_unit_test(test_mss_leftover_after_final_message_is_not_consumed),
      cmocka_unit_test(test_mss_rejects_wrong_header),
      cmocka_unit_test(test_mss_rejects_message_without_newline),
      cmocka_unit_test(test_mss_rejects_oversize_message_before_buffering),
      cmocka_unit_test(test_mss_rejects_non_minimal_varint),
      cmocka_unit_test(test_mss_dialer_rejects_unexpected_reply),
      cmocka_unit_test(test_mss_listener_gives_up_after_max_attempts),
      cmocka_unit_test(test_mss_listener_match_function_selects),
      cmocka_unit_test(test_mss_new_rejects_bad_ids),
      cmocka_unit_test(test_mss_full_out_buffer_is_an_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Allocation failures in the MCP++ framing (service/frame.c): decoders fed frames in small
 * pieces and the encoders, with the Nth allocation failing for every N
 * (tests/support/failmalloc.h). A decoder that runs out of memory reports internal_error
 * (SVC_FRAME_NOMEM), never a verdict about the peer's bytes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../support/failmalloc.h"
#include "service/frame.h"

/* svc_frame_encode / svc_ndjson_encode: json_dumpb allocates inside jansson, and a failure
 * there looks the same as a value that cannot be encoded (-EINVAL, see frame.h). */
static const int k_encode_errs[] = {-ENOMEM, -EINVAL, 0};

static const char *const k_msgs[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"two\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"a\":[1,2,{\"b\":null}],\"s\":\"\\u00e9t\\u00e9\"}}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
};
#define NMSG (sizeof k_msgs / sizeof k_msgs[0])

/* Decodes a stream of u32 frames fed 7 bytes at a time; re-encodes each message. */
static int sc_frame(void *ud) {
  (void)ud;
  uint8_t wire[4096];
  size_t wn = 0;
  for (size_t i = 0; i < NMSG; i++) {
    size_t n = strlen(k_msgs[i]);
    wire[wn] = 0, wire[wn + 1] = 0, wire[wn + 2] = (uint8_t)(n >> 8), wire[wn + 3] = (uint8_t)n;
    memcpy(wire + wn + 4, k_msgs[i], n);
    wn += 4 + n;
  }
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  buf out;
  buf_init(&out, 1 << 16);
  int rc = 0;
  size_t got = 0, pos = 0;
  while (!rc && pos < wn) {
    size_t chunk = wn - pos < 7 ? wn - pos : 7, used;
    svc_frame_status st = svc_frame_dec_feed(&d, wire + pos, chunk, &used);
    pos += used;
    if (st == SVC_FRAME_READY) {
      json_t *m = svc_frame_dec_take(&d);
      assert_non_null(m);
      got++;
      rc = (int)FM_STEP(svc_frame_encode(&out, m, 0), k_encode_errs);
      json_decref(m);
    } else if (st < 0) {
      assert_true(fm_failed());
      assert_int_equal(st, SVC_FRAME_NOMEM);
      size_t u2;
      assert_int_equal(svc_frame_dec_feed(&d, wire, 1, &u2), SVC_FRAME_NOMEM); /* sticky */
      json_t *reply = svc_frame_error_reply(st);
      if (reply) {
        assert_string_equal(json_string_value(json_object_get(json_object_get(reply, "error"), "message")),
                            "internal_error");
        json_decref(reply);
      }
      rc = -ENOMEM;
    }
  }
  if (!rc) {
    assert_int_equal(got, NMSG);
    assert_false(svc_frame_dec_mid_frame(&d));
  }
  svc_frame_dec_free(&d);
  buf_free(&out);
  return rc;
}

/* One legacy NDJSON request, fed in pieces, then the reply encoded. */
static int sc_ndjson(void *ud) {
  (void)ud;
  svc_ndjson_dec d;
  svc_ndjson_dec_init(&d, 0);
  const char *line = k_msgs[1];
  size_t n = strlen(line);
  int rc = 0;
  svc_frame_status st = SVC_FRAME_NEED_MORE;
  for (size_t pos = 0; pos < n && st == SVC_FRAME_NEED_MORE; pos += 9)
    st = svc_ndjson_dec_feed(&d, (const uint8_t *)line + pos, n - pos < 9 ? n - pos : 9);
  if (st == SVC_FRAME_NEED_MORE) st = svc_ndjson_dec_feed(&d, (const uint8_t *)"\n", 1);
  if (st == SVC_FRAME_READY) {
    json_t *m = svc_ndjson_dec_take(&d);
    buf out;
    buf_init(&out, 1 << 16);
    rc = (int)FM_STEP(svc_ndjson_encode(&out, m), k_encode_errs);
    json_decref(m);
    buf_free(&out);
  } else {
    assert_true(fm_failed());
    assert_int_equal(st, SVC_FRAME_NOMEM);
    rc = -ENOMEM;
  }
  svc_ndjson_dec_free(&d);
  return rc;
}

static void test_failmalloc_frame(void **state) { (void)fm_run_scenario("frame", sc_frame, NULL, NULL); }
static void test_failmalloc_ndjson(void **state) { (void)fm_run_scenario("ndjson", sc_ndjson, NULL, NULL); }

int main(void) {
  fm_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_failmalloc_frame),
      cmocka_unit_test(test_failmalloc_ndjson),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

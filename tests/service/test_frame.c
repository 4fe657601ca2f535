/* test_frame.c — the /mcp+p2p/1.0.0 u32 framing and the legacy NDJSON framing
 * (p2p_tasks_spec.md §2.2, §2.3). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "service/frame.h"

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static size_t mkframe(uint8_t *out, const char *body) {
  size_t n = strlen(body);
  put_u32(out, (uint32_t)n);
  memcpy(out + 4, body, n);
  return n + 4;
}

static void test_frame_decodes_one_frame(void **st) {
  (void)st;
  uint8_t wire[64];
  size_t n = mkframe(wire, "{\"a\":1}");
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, wire, n, &used), SVC_FRAME_READY);
  assert_int_equal(used, n);
  json_t *v = svc_frame_dec_take(&d);
  assert_non_null(v);
  assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
  json_decref(v);
  assert_null(svc_frame_dec_take(&d));
  svc_frame_dec_free(&d);
}

/* Raw mode lists the members of one top-level object member in pm: "params" by default (a
 * server's requests), the one svc_frame_dec_set_raw_sub names otherwise (a client's "result") —
 * and none of another member's. */
static void raw_members(const char *sub, const char *body, size_t *n_pm, const jparse_member **pm) {
  static uint8_t wire[256];
  static svc_frame_dec d;
  static bool live;
  if (live) svc_frame_dec_free(&d);
  size_t n = mkframe(wire, body);
  svc_frame_dec_init(&d, 0);
  live = true;
  svc_frame_dec_set_raw(&d, true);
  if (sub) svc_frame_dec_set_raw_sub(&d, sub);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, wire, n, &used), SVC_FRAME_READY);
  const svc_frame_raw *r = svc_frame_dec_take_raw(&d);
  assert_non_null(r);
  *n_pm = r->n_pm;
  *pm = r->pm;
}
static void test_frame_raw_lists_the_chosen_members(void **st) {
  (void)st;
  const char *req = "{\"id\":1,\"params\":{\"name\":\"x\"},\"result\":{\"isError\":false,\"content\":[]}}";
  size_t n;
  const jparse_member *pm;
  raw_members(NULL, req, &n, &pm);
  assert_int_equal(n, 1);
  assert_memory_equal(pm[0].key, "name", 4);
  raw_members("result", req, &n, &pm);
  assert_int_equal(n, 2);
  assert_int_equal(pm[0].key_len, 7);
  assert_memory_equal(pm[0].key, "isError", 7);
  assert_int_equal(pm[0].val_len, 5);
  assert_memory_equal(pm[0].val, "false", 5);
  raw_members("result", "{\"id\":1,\"result\":[1,2]}", &n, &pm); /* not an object: none */
  assert_int_equal(n, 0);
}

static void test_frame_accepts_input_byte_by_byte(void **st) {
  (void)st;
  uint8_t wire[128];
  size_t n = mkframe(wire, "{\"jsonrpc\":\"2.0\",\"id\":7}");
  n += mkframe(wire + n, "{\"b\":2}");
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  int frames = 0;
  for (size_t i = 0; i < n; i++) {
    size_t used;
    svc_frame_status s = svc_frame_dec_feed(&d, wire + i, 1, &used);
    assert_int_equal(used, 1);
    if (s == SVC_FRAME_READY) {
      json_t *v = svc_frame_dec_take(&d);
      assert_non_null(v);
      frames++;
      json_decref(v);
    } else {
      assert_int_equal(s, SVC_FRAME_NEED_MORE);
    }
  }
  assert_int_equal(frames, 2);
  svc_frame_dec_free(&d);
}

static void test_frame_stops_after_each_frame(void **st) {
  (void)st;
  uint8_t wire[128];
  size_t a = mkframe(wire, "{\"x\":1}");
  size_t n = a + mkframe(wire + a, "{\"x\":2}");
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, wire, n, &used), SVC_FRAME_READY);
  assert_int_equal(used, a);
  json_t *v = svc_frame_dec_take(&d);
  assert_int_equal(json_integer_value(json_object_get(v, "x")), 1);
  json_decref(v);
  size_t used2;
  assert_int_equal(svc_frame_dec_feed(&d, wire + used, n - used, &used2), SVC_FRAME_READY);
  v = svc_frame_dec_take(&d);
  assert_int_equal(json_integer_value(json_object_get(v, "x")), 2);
  json_decref(v);
  svc_frame_dec_free(&d);
}

static void test_frame_rejects_declared_length_over_max_before_body(void **st) {
  (void)st;
  uint8_t hdr[4];
  put_u32(hdr, 1024 * 1024 + 1);
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, hdr, 4, &used), SVC_FRAME_TOO_LARGE);
  assert_int_equal(used, 4);
  /* nothing was buffered for the body */
  assert_int_equal(buf_cap(&d.body), 0);
  /* sticky */
  uint8_t more[1] = {'{'};
  assert_int_equal(svc_frame_dec_feed(&d, more, 1, &used), SVC_FRAME_TOO_LARGE);
  assert_int_equal(used, 0);
  json_t *reply = svc_frame_error_reply(SVC_FRAME_TOO_LARGE);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(reply, "error"), "code")), -32003);
  assert_string_equal(json_string_value(json_object_get(json_object_get(reply, "error"), "message")),
                      "frame_too_large");
  assert_true(json_is_null(json_object_get(reply, "id")));
  json_decref(reply);
  svc_frame_dec_free(&d);
}

static void test_frame_accepts_declared_length_equal_to_max(void **st) {
  (void)st;
  const char *body = "{\"k\":\"0123456789\"}";
  uint8_t wire[64];
  size_t n = mkframe(wire, body);
  svc_frame_dec d;
  svc_frame_dec_init(&d, strlen(body));
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, wire, n, &used), SVC_FRAME_READY);
  json_decref(svc_frame_dec_take(&d));
  svc_frame_dec_free(&d);
  svc_frame_dec_init(&d, strlen(body) - 1);
  assert_int_equal(svc_frame_dec_feed(&d, wire, n, &used), SVC_FRAME_TOO_LARGE);
  svc_frame_dec_free(&d);
}

static void test_frame_zero_length_is_invalid_json(void **st) {
  (void)st;
  uint8_t hdr[4] = {0, 0, 0, 0};
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, hdr, 4, &used), SVC_FRAME_INVALID_JSON);
  svc_frame_dec_free(&d);
}

static void test_frame_junk_is_invalid_json(void **st) {
  (void)st;
  uint8_t wire[64];
  size_t n = mkframe(wire, "{not json");
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, wire, n, &used), SVC_FRAME_INVALID_JSON);
  assert_string_equal(svc_frame_status_str(SVC_FRAME_INVALID_JSON), "invalid_json");
  svc_frame_dec_free(&d);
}

static void test_frame_invalid_utf8_is_invalid_json(void **st) {
  (void)st;
  uint8_t wire[16] = {0, 0, 0, 8, '{', '"', 'a', '"', ':', '"', 0xff, '"'};
  wire[12] = '}';
  put_u32(wire, 9);
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, wire, 13, &used), SVC_FRAME_INVALID_JSON);
  svc_frame_dec_free(&d);
}

static void test_frame_non_object_is_invalid_message(void **st) {
  (void)st;
  uint8_t wire[64];
  size_t n = mkframe(wire, "[1,2,3]");
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, wire, n, &used), SVC_FRAME_INVALID_MSG);
  assert_string_equal(svc_frame_status_str(SVC_FRAME_INVALID_MSG), "invalid_message");
  svc_frame_dec_free(&d);
}

static void test_frame_mid_frame_reports_partial_input(void **st) {
  (void)st;
  uint8_t wire[64];
  mkframe(wire, "{\"a\":1}");
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_false(svc_frame_dec_mid_frame(&d));
  assert_int_equal(svc_frame_dec_feed(&d, wire, 6, &used), SVC_FRAME_NEED_MORE);
  assert_true(svc_frame_dec_mid_frame(&d));
  svc_frame_dec_free(&d);
}

static void test_frame_encode_is_compact_ascii_and_round_trips(void **st) {
  (void)st;
  json_t *m = json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", 1, "s", "h\xc3\xa9");
  buf b;
  buf_init(&b, 4096);
  assert_int_equal(svc_frame_encode(&b, m, 0), 0);
  const uint8_t *p = buf_ptr(&b);
  uint32_t n = (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
  assert_int_equal(n, buf_len(&b) - 4);
  char *body = strndup((const char *)p + 4, n);
  assert_null(strstr(body, ", "));
  assert_non_null(strcasestr(body, "\\u00e9")); /* jansson writes hex upper-case; both parse */
  free(body);
  svc_frame_dec d;
  svc_frame_dec_init(&d, 0);
  size_t used;
  assert_int_equal(svc_frame_dec_feed(&d, p, buf_len(&b), &used), SVC_FRAME_READY);
  json_t *v = svc_frame_dec_take(&d);
  assert_true(json_equal(v, m));
  json_decref(v);
  svc_frame_dec_free(&d);
  buf_free(&b);
  json_decref(m);
}

static void test_frame_encode_refuses_body_over_max(void **st) {
  (void)st;
  json_t *m = json_pack("{s:s}", "k", "0123456789012345678901234567890123456789");
  buf b;
  buf_init(&b, 4096);
  assert_int_equal(svc_frame_encode(&b, m, 16), -E2BIG);
  assert_int_equal(buf_len(&b), 0);
  buf_free(&b);
  json_decref(m);
}

/* --- NDJSON --- */

static void test_ndjson_reads_one_line(void **st) {
  (void)st;
  const char *s = "{\"op\": \"status\"}\n";
  svc_ndjson_dec d;
  svc_ndjson_dec_init(&d, 0);
  assert_int_equal(svc_ndjson_dec_feed(&d, (const uint8_t *)s, strlen(s)), SVC_FRAME_READY);
  json_t *v = svc_ndjson_dec_take(&d);
  assert_string_equal(json_string_value(json_object_get(v, "op")), "status");
  json_decref(v);
  svc_ndjson_dec_free(&d);
}

static void test_ndjson_byte_by_byte(void **st) {
  (void)st;
  const char *s = "{\"op\": \"list\", \"limit\": 5}\n";
  svc_ndjson_dec d;
  svc_ndjson_dec_init(&d, 0);
  svc_frame_status r = SVC_FRAME_NEED_MORE;
  for (size_t i = 0; i < strlen(s); i++) {
    r = svc_ndjson_dec_feed(&d, (const uint8_t *)s + i, 1);
    if (i + 1 < strlen(s)) assert_int_equal(r, SVC_FRAME_NEED_MORE);
  }
  assert_int_equal(r, SVC_FRAME_READY);
  json_decref(svc_ndjson_dec_take(&d));
  svc_ndjson_dec_free(&d);
}

static void test_ndjson_accepts_missing_newline_on_half_close(void **st) {
  (void)st;
  const char *s = "{\"op\": \"status\"}";
  svc_ndjson_dec d;
  svc_ndjson_dec_init(&d, 0);
  assert_int_equal(svc_ndjson_dec_feed(&d, (const uint8_t *)s, strlen(s)), SVC_FRAME_NEED_MORE);
  assert_int_equal(svc_ndjson_dec_finish(&d), SVC_FRAME_READY);
  json_decref(svc_ndjson_dec_take(&d));
  svc_ndjson_dec_free(&d);
}

static void test_ndjson_eof_before_any_byte_is_empty(void **st) {
  (void)st;
  svc_ndjson_dec d;
  svc_ndjson_dec_init(&d, 0);
  assert_int_equal(svc_ndjson_dec_finish(&d), SVC_FRAME_EMPTY);
  svc_ndjson_dec_free(&d);
}

static void test_ndjson_line_over_cap_is_frame_too_large(void **st) {
  (void)st;
  svc_ndjson_dec d;
  svc_ndjson_dec_init(&d, 64);
  uint8_t junk[40];
  memset(junk, 'a', sizeof junk);
  assert_int_equal(svc_ndjson_dec_feed(&d, junk, sizeof junk), SVC_FRAME_NEED_MORE);
  assert_int_equal(svc_ndjson_dec_feed(&d, junk, sizeof junk), SVC_FRAME_TOO_LARGE);
  assert_int_equal(svc_ndjson_dec_feed(&d, junk, 1), SVC_FRAME_TOO_LARGE);
  svc_ndjson_dec_free(&d);
}

static void test_ndjson_junk_and_non_object(void **st) {
  (void)st;
  svc_ndjson_dec d;
  svc_ndjson_dec_init(&d, 0);
  assert_int_equal(svc_ndjson_dec_feed(&d, (const uint8_t *)"nope\n", 5), SVC_FRAME_INVALID_JSON);
  svc_ndjson_dec_free(&d);
  svc_ndjson_dec_init(&d, 0);
  assert_int_equal(svc_ndjson_dec_feed(&d, (const uint8_t *)"42\n", 3), SVC_FRAME_INVALID_MSG);
  svc_ndjson_dec_free(&d);
}

static void test_ndjson_encode_uses_python_separators(void **st) {
  (void)st;
  json_t *m = json_pack("{s:b, s:s}", "ok", 1, "peer_id", "12D3");
  buf b;
  buf_init(&b, 1024);
  assert_int_equal(svc_ndjson_encode(&b, m), 0);
  char *s = strndup((const char *)buf_ptr(&b), buf_len(&b));
  assert_string_equal(s, "{\"ok\": true, \"peer_id\": \"12D3\"}\n");
  free(s);
  buf_free(&b);
  json_decref(m);
}

/* svc_frame_encode_request writes the bytes svc_frame_encode gives for the same request object,
 * reuses its scratch writer, leaves params out when NULL and honours the ceiling. */
static void test_encode_request_matches_tree_encoding(void **state) {
  (void)state;
  jwrite jw;
  jwrite_init(&jw, UINT32_MAX, JWRITE_ASCII);
  json_t *params = json_pack("{s:s, s:{s:s, s:i, s:f}}", "name", "echo", "arguments", "text", "h\xc3\xa9llo \"q\"", "n", 7,
                             "x", 0.5);
  for (int with = 0; with < 2; with++) {
    json_t *m = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", (json_int_t)123456789012LL, "method", "tools/call");
    if (with) json_object_set(m, "params", params);
    buf a, b;
    buf_init(&a, 1 << 20);
    buf_init(&b, 1 << 20);
    assert_int_equal(svc_frame_encode(&a, m, 0), 0);
    assert_int_equal(svc_frame_encode_request(&b, &jw, 123456789012ULL, "tools/call", with ? params : NULL, 0), 0);
    assert_int_equal(buf_len(&a), buf_len(&b));
    assert_memory_equal(buf_ptr(&a), buf_ptr(&b), buf_len(&a));
    /* too large for the ceiling: nothing appended */
    size_t before = buf_len(&b);
    assert_int_equal(svc_frame_encode_request(&b, &jw, 1, "tools/call", params, 20), -E2BIG);
    assert_int_equal(buf_len(&b), before);
    buf_free(&a);
    buf_free(&b);
    json_decref(m);
  }
  json_decref(params);
  jwrite_free(&jw);
}

/* svc_frame_encode_request_text writes the bytes svc_frame_encode gives for the same request,
 * whichever way it takes (a method that needs no escape is written without the scratch writer:
 * printable ASCII; any other byte — a quote, a backslash, a control, DEL, non-ASCII — goes
 * through the writer), for ids of every digit count, with and without params, and keeps the
 * ceiling to the byte (nothing appended past it). */
static void test_encode_request_text_matches_tree_encoding(void **state) {
  (void)state;
  jwrite jw;
  jwrite_init(&jw, UINT32_MAX, JWRITE_ASCII);
  const char *methods[] = {"tools/call", "", "a\"b", "a\\b", "h\xc3\xa9", "x\x7f", "tab\t", "~ !#/", "notifications/cancelled"};
  const uint64_t ids[] = {0, 1, 9, 10, 99, 100, 123456789012ULL, 9223372036854775807ULL};
  const char *ptexts[] = {NULL, "{}", "{\"name\":\"echo\",\"arguments\":{\"n\":1,\"t\":\"a b\"}}"};
  for (size_t mi = 0; mi < sizeof methods / sizeof *methods; mi++)
    for (size_t ii = 0; ii < sizeof ids / sizeof *ids; ii++)
      for (size_t pi = 0; pi < sizeof ptexts / sizeof *ptexts; pi++) {
        json_t *m = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", (json_int_t)ids[ii], "method", methods[mi]);
        if (ptexts[pi]) json_object_set_new(m, "params", json_loads(ptexts[pi], 0, NULL));
        buf a, b;
        buf_init(&a, 1 << 20);
        buf_init(&b, 1 << 20);
        assert_int_equal(svc_frame_encode(&a, m, 0), 0);
        size_t pl = ptexts[pi] ? strlen(ptexts[pi]) : 0;
        assert_int_equal(svc_frame_encode_request_text(&b, &jw, ids[ii], methods[mi], ptexts[pi], pl, 0), 0);
        assert_int_equal(buf_len(&a), buf_len(&b));
        assert_memory_equal(buf_ptr(&a), buf_ptr(&b), buf_len(&a));
        /* the ceiling: a body of exactly max bytes goes, one byte less refuses it whole */
        size_t body = buf_len(&a) - SVC_FRAME_HDR;
        buf_reset(&b);
        assert_int_equal(svc_frame_encode_request_text(&b, &jw, ids[ii], methods[mi], ptexts[pi], pl, body), 0);
        assert_int_equal(buf_len(&b), buf_len(&a));
        assert_int_equal(svc_frame_encode_request_text(&b, &jw, ids[ii], methods[mi], ptexts[pi], pl, body - 1), -E2BIG);
        assert_int_equal(buf_len(&b), buf_len(&a));
        buf_free(&a);
        buf_free(&b);
        json_decref(m);
      }
  jwrite_free(&jw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frame_decodes_one_frame),
      cmocka_unit_test(test_frame_raw_lists_the_chosen_members),
      cmocka_unit_test(test_frame_accepts_input_byte_by_byte),
      cmocka_unit_test(test_frame_stops_after_each_frame),
      cmocka_unit_test(test_frame_rejects_declared_length_over_max_before_body),
      cmocka_unit_test(test_frame_accepts_declared_length_equal_to_max),
      cmocka_unit_test(test_frame_zero_length_is_invalid_json),
      cmocka_unit_test(test_frame_junk_is_invalid_json),
      cmocka_unit_test(test_frame_invalid_utf8_is_invalid_json),
      cmocka_unit_test(test_frame_non_object_is_invalid_message),
      cmocka_unit_test(test_frame_mid_frame_reports_partial_input),
      cmocka_unit_test(test_frame_encode_is_compact_ascii_and_round_trips),
      cmocka_unit_test(test_frame_encode_refuses_body_over_max),
      cmocka_unit_test(test_ndjson_reads_one_line),
      cmocka_unit_test(test_ndjson_byte_by_byte),
      cmocka_unit_test(test_ndjson_accepts_missing_newline_on_half_close),
      cmocka_unit_test(test_ndjson_eof_before_any_byte_is_empty),
      cmocka_unit_test(test_ndjson_line_over_cap_is_frame_too_large),
      cmocka_unit_test(test_ndjson_junk_and_non_object),
      cmocka_unit_test(test_ndjson_encode_uses_python_separators),
      cmocka_unit_test(test_encode_request_matches_tree_encoding),
      cmocka_unit_test(test_encode_request_text_matches_tree_encoding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

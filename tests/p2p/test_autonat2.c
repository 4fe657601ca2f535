/* test_autonat2.c — AutoNAT v2 messages and both sides of a dial-request stream
 * (p2p/proto/autonat2.h): codec round trips and bounds, the server's one-address choice
 * (private, ours, other IP), the dial-data exchange (counted, chunk ceiling, limits), the
 * client's payment and refusals, the dial-back's transport check, and every malformed input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/core/varint.h"
#include "p2p/proto/autonat2.h"

static multiaddr ma(const char *s) {
  multiaddr m;
  assert_int_equal(multiaddr_parse(s, &m), 0);
  return m;
}

static autonat2_msg *request(uint64_t nonce, size_t n, const char *const *addrs) {
  autonat2_msg *m = calloc(1, sizeof *m);
  assert_non_null(m);
  m->kind = AUTONAT2_DIAL_REQUEST;
  m->nonce = nonce;
  for (size_t i = 0; i < n; i++) m->addrs[m->n_addrs++] = ma(addrs[i]);
  return m;
}

/* Decodes the one frame at the front of b (from off) into m; returns the bytes it took. */
static size_t decode_front(const buf *b, size_t off, autonat2_msg *m) {
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(autonat2_frame_parse(buf_ptr(b) + off, buf_len(b) - off, &body, &bl, &used), 0);
  assert_int_equal(autonat2_decode(body, bl, m), 0);
  return used;
}

static void test_codec_round_trips(void **state) {
  (void)state;
  const char *addrs[] = {"/ip4/1.2.3.4/tcp/4001", "/ip6/2001:db8::1/tcp/5", "/ip4/5.6.7.8/tcp/9/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"};
  autonat2_msg *m = request(0xfedcba9876543210ull, 3, addrs), *d = malloc(sizeof *d);
  buf b;
  buf_init(&b, 1 << 16);
  assert_int_equal(autonat2_encode(m, &b), 0);
  decode_front(&b, 0, d);
  assert_int_equal(d->kind, AUTONAT2_DIAL_REQUEST);
  assert_true(d->nonce == 0xfedcba9876543210ull);
  assert_int_equal(d->n_addrs, 3);
  for (size_t i = 0; i < 3; i++) assert_true(multiaddr_equal(&d->addrs[i], &m->addrs[i]));
  autonat2_msg x[] = {
      {.kind = AUTONAT2_DIAL_RESPONSE, .status = AUTONAT2_RS_OK, .addr_idx = 2, .dial_status = AUTONAT2_DS_E_DIAL_ERROR},
      {.kind = AUTONAT2_DIAL_DATA_REQUEST, .addr_idx = 1, .num_bytes = 77777},
      {.kind = AUTONAT2_DIAL_DATA_RESPONSE, .data_len = 4096},
  };
  for (size_t i = 0; i < 3; i++) {
    buf_reset(&b);
    assert_int_equal(autonat2_encode(&x[i], &b), 0);
    decode_front(&b, 0, d);
    assert_int_equal(d->kind, x[i].kind);
    assert_int_equal(d->status, x[i].status);
    assert_int_equal(d->addr_idx, x[i].addr_idx);
    assert_int_equal(d->dial_status, x[i].dial_status);
    assert_true(d->num_bytes == x[i].num_bytes);
    assert_int_equal(d->data_len, x[i].data_len);
  }
  /* dial-back messages */
  buf_reset(&b);
  assert_int_equal(autonat2_dialback_encode(42, &b), 0);
  const uint8_t *body;
  size_t bl, used;
  uint64_t nonce = 0;
  uint32_t st = 9;
  assert_int_equal(autonat2_dialback_frame_parse(buf_ptr(&b), buf_len(&b), &body, &bl, &used), 0);
  assert_int_equal(autonat2_dialback_decode(body, bl, &nonce), 0);
  assert_true(nonce == 42);
  buf_reset(&b);
  assert_int_equal(autonat2_dialback_response_encode(0, &b), 0);
  assert_int_equal(autonat2_dialback_frame_parse(buf_ptr(&b), buf_len(&b), &body, &bl, &used), 0);
  assert_int_equal(autonat2_dialback_response_decode(body, bl, &st), 0);
  assert_int_equal(st, 0);
  /* proto3 peers (js) leave a zero status out: an empty DialBackResponse is OK */
  st = 9;
  assert_int_equal(autonat2_dialback_response_decode((const uint8_t *)"", 0, &st), 0);
  assert_int_equal(st, 0);
  assert_string_equal(autonat2_response_status_name(AUTONAT2_RS_E_REQUEST_REJECTED), "E_REQUEST_REJECTED");
  assert_string_equal(autonat2_dial_status_name(AUTONAT2_DS_E_DIAL_BACK_ERROR), "E_DIAL_BACK_ERROR");
  assert_string_equal(autonat2_dial_status_name(7), "UNKNOWN");
  buf_free(&b);
  free(m);
  free(d);
}

static void test_codec_rejects_bad_input(void **state) {
  (void)state;
  autonat2_msg *d = malloc(sizeof *d);
  buf b;
  buf_init(&b, 1 << 16);
  /* no oneof set, not protobuf, too large */
  assert_int_equal(autonat2_decode((const uint8_t *)"", 0, d), -EINVAL);
  assert_int_equal(autonat2_decode((const uint8_t *)"\xff\xff\xff", 3, d), -EINVAL);
  static uint8_t big[AUTONAT2_MAX_MSG + 1];
  assert_int_equal(autonat2_decode(big, sizeof big, d), -E2BIG);
  /* a frame declaring more than the ceiling is refused before its body arrives */
  uint8_t hdr[VARINT_MAX_BYTES];
  size_t hl = varint_encode(AUTONAT2_MAX_MSG + 1, hdr);
  const uint8_t *body;
  size_t bl, used;
  assert_int_equal(autonat2_frame_parse(hdr, hl, &body, &bl, &used), -EMSGSIZE);
  hl = varint_encode(AUTONAT2_MAX_DIALBACK_MSG + 1, hdr);
  assert_int_equal(autonat2_dialback_frame_parse(hdr, hl, &body, &bl, &used), -EMSGSIZE);
  assert_int_equal(autonat2_dialback_decode(big, AUTONAT2_MAX_DIALBACK_MSG + 1, &(uint64_t){0}), -E2BIG);
  /* encode: no kind, a chunk over 4096 */
  assert_int_equal(autonat2_encode(&(autonat2_msg){.kind = AUTONAT2_NONE}, &b), -EINVAL);
  assert_int_equal(autonat2_encode(&(autonat2_msg){.kind = AUTONAT2_DIAL_DATA_RESPONSE, .data_len = 4097}, &b), -EINVAL);
  /* a request with a garbage address keeps its index; past 32 entries they are dropped */
  /* hand-made: field 1 (dialRequest) { field 1 bytes "\x01\x02" ; field 1 bytes /ip4/1.2.3.4/tcp/1 } */
  multiaddr good = ma("/ip4/1.2.3.4/tcp/1");
  uint8_t inner[64], msg[80];
  size_t k = 0;
  inner[k++] = 0x0a;
  inner[k++] = 2;
  inner[k++] = 0xff;
  inner[k++] = 0xff;
  inner[k++] = 0x0a;
  inner[k++] = (uint8_t)good.len;
  memcpy(inner + k, good.bytes, good.len);
  k += good.len;
  msg[0] = 0x0a;
  msg[1] = (uint8_t)k;
  memcpy(msg + 2, inner, k);
  assert_int_equal(autonat2_decode(msg, k + 2, d), 0);
  assert_int_equal(d->n_addrs, 2);
  assert_int_equal(d->n_bad, 1);
  assert_int_equal(d->addrs[0].len, 0);
  assert_true(multiaddr_equal(&d->addrs[1], &good));
  bool other;
  multiaddr obs = ma("/ip4/1.2.3.4/tcp/999");
  assert_int_equal(autonat2_select(&obs, d, NULL, 0, false, false, &other), 1);
  autonat2_msg *many = calloc(1, sizeof *many);
  many->kind = AUTONAT2_DIAL_REQUEST;
  many->n_addrs = AUTONAT2_MAX_ADDRS;
  for (size_t i = 0; i < AUTONAT2_MAX_ADDRS; i++) many->addrs[i] = good;
  buf_reset(&b);
  assert_int_equal(autonat2_encode(many, &b), 0);
  many->n_addrs = AUTONAT2_MAX_ADDRS + 1;
  assert_int_equal(autonat2_encode(many, &b), -E2BIG);
  free(many);
  buf_free(&b);
  free(d);
}

static void test_select_one_address(void **state) {
  (void)state;
  const char *addrs[] = {"/ip4/10.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2", "/dns4/x.example/tcp/3",
                         "/ip4/1.2.3.4/tcp/0",   "/ip4/1.2.3.4/udp/4",  "/ip4/9.9.9.9/tcp/7",
                         "/ip4/1.2.3.4/tcp/4001", "/ip4/1.2.3.4/tcp/4002"};
  autonat2_msg *m = request(1, 8, addrs);
  multiaddr obs = ma("/ip4/1.2.3.4/tcp/55555"), ours[1] = {ma("/ip4/1.2.3.4/tcp/4001")};
  bool other = true;
  /* private, loopback, dns, port 0, udp skipped; 9.9.9.9 is another IP (refused without the cost) */
  assert_int_equal(autonat2_select(&obs, m, NULL, 0, false, false, &other), 6);
  assert_false(other);
  /* with the cost accepted, the first dialable one is the other IP's */
  assert_int_equal(autonat2_select(&obs, m, NULL, 0, false, true, &other), 5);
  assert_true(other);
  /* never our own address */
  assert_int_equal(autonat2_select(&obs, m, ours, 1, false, false, &other), 7);
  /* tests on one host: private allowed, and then the first entry is another IP */
  assert_int_equal(autonat2_select(&obs, m, NULL, 0, true, true, &other), 0);
  assert_true(other);
  /* an observed address that is not ip/tcp (relayed): nothing */
  multiaddr rel = ma("/p2p-circuit");
  assert_int_equal(autonat2_select(&rel, m, NULL, 0, true, true, &other), -1);
  assert_int_equal(autonat2_result(AUTONAT2_RS_OK, AUTONAT2_DS_OK), 1);
  assert_int_equal(autonat2_result(AUTONAT2_RS_OK, AUTONAT2_DS_E_DIAL_ERROR), 2);
  assert_int_equal(autonat2_result(AUTONAT2_RS_OK, AUTONAT2_DS_E_DIAL_BACK_ERROR), 0);
  assert_int_equal(autonat2_result(AUTONAT2_RS_E_DIAL_REFUSED, AUTONAT2_DS_OK), 0);
  assert_int_equal(autonat2_result(AUTONAT2_RS_OK, 55), 0);
  free(m);
}

static bool admit_yes(void *ud, bool other) {
  (void)other;
  (*(int *)ud)++;
  return true;
}
static bool admit_no(void *ud, bool other) {
  (void)ud;
  (void)other;
  return false;
}

/* Our client against our server, both sans-I/O, bytes passed by hand. */
static void test_same_ip_is_dialed_at_once(void **state) {
  (void)state;
  multiaddr obs = ma("/ip4/1.2.3.4/tcp/55555"), target = ma("/ip4/1.2.3.4/tcp/4001");
  int admitted = 0;
  autonat2_server_policy pol = {.observed = &obs, .allow_other_ip = true, .admit = admit_yes, .admit_ud = &admitted};
  autonat2_client c;
  autonat2_server s;
  autonat2_server_init(&s);
  buf c2s, s2c;
  buf_init(&c2s, 1 << 20);
  buf_init(&s2c, 1 << 16);
  assert_int_equal(autonat2_client_start(&c, &target, 1, 777, 0, &c2s), 0);
  size_t used;
  /* byte by byte: only a whole frame is taken */
  assert_int_equal(autonat2_server_feed(&s, &pol, buf_ptr(&c2s), 1, &used, &s2c), A2S_MORE);
  assert_int_equal(used, 0);
  assert_int_equal(autonat2_server_feed(&s, &pol, buf_ptr(&c2s), buf_len(&c2s), &used, &s2c), A2S_DIAL);
  assert_int_equal(used, buf_len(&c2s));
  assert_int_equal(admitted, 1);
  assert_true(s.nonce == 777);
  assert_true(multiaddr_equal(&s.target, &target));
  assert_false(s.other_ip);
  assert_int_equal(buf_len(&s2c), 0);
  /* more bytes while dialing: a protocol error */
  autonat2_server s2 = s;
  assert_int_equal(autonat2_server_feed(&s2, &pol, buf_ptr(&c2s), buf_len(&c2s), &used, &s2c), A2S_ERROR);
  assert_int_equal(autonat2_server_dialed(&s, AUTONAT2_DS_OK, &s2c), A2S_DONE);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&s2c), buf_len(&s2c), &used, &c2s), A2C_RESULT);
  assert_int_equal(c.status, AUTONAT2_RS_OK);
  assert_int_equal(c.dial_status, AUTONAT2_DS_OK);
  assert_int_equal(c.addr_idx, 0);
  assert_false(c.paid);
  buf_free(&c2s);
  buf_free(&s2c);
}

static void test_other_ip_pays_dial_data(void **state) {
  (void)state;
  multiaddr obs = ma("/ip4/1.2.3.4/tcp/55555"), target = ma("/ip4/5.6.7.8/tcp/4001");
  autonat2_server_policy pol = {.observed = &obs, .allow_other_ip = true, .data_bytes = 40000};
  autonat2_client c;
  autonat2_server s;
  autonat2_server_init(&s);
  buf c2s, s2c;
  buf_init(&c2s, 1 << 20);
  buf_init(&s2c, 1 << 16);
  assert_int_equal(autonat2_client_start(&c, &target, 1, 5, 0, &c2s), 0);
  size_t used;
  assert_int_equal(autonat2_server_feed(&s, &pol, buf_ptr(&c2s), buf_len(&c2s), &used, &s2c), A2S_MORE);
  assert_int_equal(s.state, A2S_ST_WAIT_DATA);
  assert_true(s.data_need == 40000);
  autonat2_msg *d = malloc(sizeof *d);
  decode_front(&s2c, 0, d);
  assert_int_equal(d->kind, AUTONAT2_DIAL_DATA_REQUEST);
  assert_true(d->num_bytes == 40000);
  buf_reset(&c2s);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&s2c), buf_len(&s2c), &used, &c2s), A2C_MORE);
  assert_true(c.paid);
  assert_true(c.data_paid >= 40000 && c.data_paid < 40000 + AUTONAT2_DATA_CHUNK);
  buf_reset(&s2c);
  /* fed in pieces that cut frames: the server dials exactly when the count is reached */
  size_t off = 0, n = buf_len(&c2s);
  autonat2_server_ev ev = A2S_MORE;
  while (off < n && ev == A2S_MORE) {
    size_t piece = n - off < 1000 ? n - off : 1000;
    static uint8_t acc[2 * AUTONAT2_MAX_MSG];
    static size_t acc_len = 0;
    memcpy(acc + acc_len, buf_ptr(&c2s) + off, piece);
    acc_len += piece;
    off += piece;
    ev = autonat2_server_feed(&s, &pol, acc, acc_len, &used, &s2c);
    memmove(acc, acc + used, acc_len - used);
    acc_len -= used;
  }
  assert_int_equal(ev, A2S_DIAL);
  assert_int_equal(off, n);
  assert_true(s.data_got >= 40000);
  assert_true(s.other_ip);
  /* a refused dial */
  assert_int_equal(autonat2_server_dialed(&s, AUTONAT2_DS_E_DIAL_ERROR, &s2c), A2S_DONE);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&s2c), buf_len(&s2c), &used, &c2s), A2C_RESULT);
  assert_int_equal(autonat2_result(c.status, c.dial_status), 2);
  /* the data bytes asked are clamped to the spec's 30k..100k */
  autonat2_server s3;
  autonat2_server_init(&s3);
  pol.data_bytes = 5;
  buf_reset(&c2s);
  buf_reset(&s2c);
  assert_int_equal(autonat2_client_start(&c, &target, 1, 5, 0, &c2s), 0);
  (void)autonat2_server_feed(&s3, &pol, buf_ptr(&c2s), buf_len(&c2s), &used, &s2c);
  assert_true(s3.data_need == AUTONAT2_DATA_MIN);
  free(d);
  buf_free(&c2s);
  buf_free(&s2c);
}

static void test_server_refuses_and_rejects(void **state) {
  (void)state;
  multiaddr obs = ma("/ip4/1.2.3.4/tcp/55555");
  autonat2_server_policy pol = {.observed = &obs};
  buf in, out;
  buf_init(&in, 1 << 16);
  buf_init(&out, 1 << 16);
  autonat2_msg *d = malloc(sizeof *d);
  size_t used;
  /* nothing dialable (another IP, not accepted): E_DIAL_REFUSED */
  const char *other[] = {"/ip4/5.6.7.8/tcp/1"};
  autonat2_msg *m = request(1, 1, other);
  assert_int_equal(autonat2_encode(m, &in), 0);
  autonat2_server s;
  autonat2_server_init(&s);
  assert_int_equal(autonat2_server_feed(&s, &pol, buf_ptr(&in), buf_len(&in), &used, &out), A2S_DONE);
  decode_front(&out, 0, d);
  assert_int_equal(d->status, AUTONAT2_RS_E_DIAL_REFUSED);
  /* over the limits: E_REQUEST_REJECTED, before any data is asked */
  const char *same[] = {"/ip4/1.2.3.4/tcp/1"};
  free(m);
  m = request(1, 1, same);
  buf_reset(&in);
  buf_reset(&out);
  assert_int_equal(autonat2_encode(m, &in), 0);
  pol.admit = admit_no;
  autonat2_server_init(&s);
  assert_int_equal(autonat2_server_feed(&s, &pol, buf_ptr(&in), buf_len(&in), &used, &out), A2S_DONE);
  decode_front(&out, 0, d);
  assert_int_equal(d->status, AUTONAT2_RS_E_REQUEST_REJECTED);
  pol.admit = NULL;
  /* the first message is not a DialRequest; garbage; a chunk over 4096; a non-data message
   * during the exchange: protocol errors (reset) */
  autonat2_msg resp = {.kind = AUTONAT2_DIAL_RESPONSE};
  buf_reset(&in);
  assert_int_equal(autonat2_encode(&resp, &in), 0);
  autonat2_server_init(&s);
  assert_int_equal(autonat2_server_feed(&s, &pol, buf_ptr(&in), buf_len(&in), &used, &out), A2S_ERROR);
  autonat2_server_init(&s);
  assert_int_equal(autonat2_server_feed(&s, &pol, (const uint8_t *)"\x03\xff\xff\xff", 4, &used, &out), A2S_ERROR);
  autonat2_server_init(&s);
  assert_int_equal(autonat2_server_feed(&s, &pol, (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10, &used,
                                        &out),
                   A2S_ERROR);
  /* a DialDataResponse of 4097 bytes (hand-framed; our encoder refuses to make one) */
  free(m);
  m = request(1, 1, other);
  pol.allow_other_ip = true;
  pol.data_bytes = 30000;
  buf_reset(&in);
  assert_int_equal(autonat2_encode(m, &in), 0);
  autonat2_server_init(&s);
  assert_int_equal(autonat2_server_feed(&s, &pol, buf_ptr(&in), buf_len(&in), &used, &out), A2S_MORE);
  static uint8_t fat[4200];
  size_t k = 0;
  uint8_t tmp[VARINT_MAX_BYTES];
  /* Message{4: DialDataResponse{1: 4097 bytes}} */
  size_t inner = 1 + varint_encode(4097, tmp) + 4097;
  size_t body = 1 + varint_encode(inner, tmp) + inner;
  k += varint_encode(body, fat + k);
  fat[k++] = 0x22;
  k += varint_encode(inner, fat + k);
  fat[k++] = 0x0a;
  k += varint_encode(4097, fat + k);
  k += 4097;
  autonat2_server s4 = s;
  assert_int_equal(autonat2_server_feed(&s4, &pol, fat, k, &used, &out), A2S_ERROR);
  assert_string_equal(s4.why, "DialDataResponse over 4096 bytes");
  buf_reset(&in);
  assert_int_equal(autonat2_encode(m, &in), 0); /* a second DialRequest instead of data */
  assert_int_equal(autonat2_server_feed(&s, &pol, buf_ptr(&in), buf_len(&in), &used, &out), A2S_ERROR);
  /* after the answer nothing more is read */
  assert_int_equal(autonat2_server_dialed(&s, AUTONAT2_DS_OK, &out), A2S_DONE);
  free(m);
  free(d);
  buf_free(&in);
  buf_free(&out);
}

static void test_client_refusals(void **state) {
  (void)state;
  multiaddr target = ma("/ip4/1.2.3.4/tcp/4001");
  autonat2_client c;
  buf out;
  buf_init(&out, 1 << 20);
  buf in;
  buf_init(&in, 1 << 16);
  size_t used;
  /* too costly: reset */
  assert_int_equal(autonat2_client_start(&c, &target, 1, 1, 50000, &out), 0);
  assert_int_equal(autonat2_encode(&(autonat2_msg){.kind = AUTONAT2_DIAL_DATA_REQUEST, .num_bytes = 50001}, &in), 0);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&in), buf_len(&in), &used, &out), A2C_ERROR);
  assert_string_equal(c.why, "dial data cost too high");
  /* for an address we did not send */
  buf_reset(&in);
  assert_int_equal(autonat2_client_start(&c, &target, 1, 1, 0, &out), 0);
  assert_int_equal(autonat2_encode(&(autonat2_msg){.kind = AUTONAT2_DIAL_DATA_REQUEST, .addr_idx = 1, .num_bytes = 1}, &in), 0);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&in), buf_len(&in), &used, &out), A2C_ERROR);
  /* twice */
  buf_reset(&in);
  assert_int_equal(autonat2_client_start(&c, &target, 1, 1, 0, &out), 0);
  assert_int_equal(autonat2_encode(&(autonat2_msg){.kind = AUTONAT2_DIAL_DATA_REQUEST, .num_bytes = 30000}, &in), 0);
  assert_int_equal(autonat2_encode(&(autonat2_msg){.kind = AUTONAT2_DIAL_DATA_REQUEST, .num_bytes = 30000}, &in), 0);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&in), buf_len(&in), &used, &out), A2C_ERROR);
  assert_string_equal(c.why, "a second DialDataRequest");
  /* a DialResponse OK naming an address we did not send; a DialRequest; garbage */
  buf_reset(&in);
  assert_int_equal(autonat2_client_start(&c, &target, 1, 1, 0, &out), 0);
  assert_int_equal(autonat2_encode(&(autonat2_msg){.kind = AUTONAT2_DIAL_RESPONSE, .status = AUTONAT2_RS_OK, .addr_idx = 3}, &in), 0);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&in), buf_len(&in), &used, &out), A2C_ERROR);
  buf_reset(&in);
  autonat2_msg *m = request(1, 1, (const char *const[]){"/ip4/1.2.3.4/tcp/1"});
  assert_int_equal(autonat2_encode(m, &in), 0);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&in), buf_len(&in), &used, &out), A2C_ERROR);
  assert_int_equal(autonat2_client_feed(&c, (const uint8_t *)"\x02\xff\xff", 3, &used, &out), A2C_ERROR);
  /* a refusal is a result that says nothing */
  buf_reset(&in);
  assert_int_equal(autonat2_encode(&(autonat2_msg){.kind = AUTONAT2_DIAL_RESPONSE, .status = AUTONAT2_RS_E_DIAL_REFUSED}, &in), 0);
  assert_int_equal(autonat2_client_feed(&c, buf_ptr(&in), buf_len(&in), &used, &out), A2C_RESULT);
  assert_int_equal(autonat2_result(c.status, c.dial_status), 0);
  /* start: 0 or too many addresses */
  assert_int_equal(autonat2_client_start(&c, &target, 0, 1, 0, &out), -EINVAL);
  assert_int_equal(autonat2_client_start(&c, &target, AUTONAT2_MAX_ADDRS + 1, 1, 0, &out), -EINVAL);
  free(m);
  buf_free(&in);
  buf_free(&out);
}

static size_t unhex(const char *h, uint8_t *out) {
  size_t n = 0;
  for (; h[0] && h[1]; h += 2) {
    unsigned v;
    assert_int_equal(sscanf(h, "%2x", &v), 1);
    out[n++] = (uint8_t)v;
  }
  return n;
}

/* What @libp2p/autonat-v2 2.0.15's own codecs produce (fuzz/corpus/autonat2/js_*, made by
 * tests/interop/nat/make_fuzz_seeds.mjs): proto3, so zero fields are left out. */
static void test_decodes_js_bytes(void **state) {
  (void)state;
  uint8_t b[256];
  const uint8_t *body;
  size_t bl, used, n;
  autonat2_msg *m = malloc(sizeof *m);
  n = unhex("350a330a080401020304060fa10a080405060708060fa10a142920010db800000000000000000000000106000511874b6b5d54dc2b00", b);
  assert_int_equal(autonat2_frame_parse(b, n, &body, &bl, &used), 0);
  assert_int_equal(used, n);
  assert_int_equal(autonat2_decode(body, bl, m), 0);
  assert_int_equal(m->kind, AUTONAT2_DIAL_REQUEST);
  assert_true(m->nonce == 12345678901234567ull);
  assert_int_equal(m->n_addrs, 3);
  multiaddr x = ma("/ip4/5.6.7.8/tcp/4001");
  assert_true(multiaddr_equal(&m->addrs[1], &x));
  n = unhex("08120608c80118c801", b);
  assert_int_equal(autonat2_frame_parse(b, n, &body, &bl, &used), 0);
  assert_int_equal(autonat2_decode(body, bl, m), 0);
  assert_int_equal(m->kind, AUTONAT2_DIAL_RESPONSE);
  assert_int_equal(m->status, AUTONAT2_RS_OK);
  assert_int_equal(m->addr_idx, 0);
  assert_int_equal(m->dial_status, AUTONAT2_DS_OK);
  n = unhex("061a0410b0ea01", b);
  assert_int_equal(autonat2_frame_parse(b, n, &body, &bl, &used), 0);
  assert_int_equal(autonat2_decode(body, bl, m), 0);
  assert_int_equal(m->kind, AUTONAT2_DIAL_DATA_REQUEST);
  assert_true(m->num_bytes == 30000);
  n = unhex("0412020865", b);
  assert_int_equal(autonat2_frame_parse(b, n, &body, &bl, &used), 0);
  assert_int_equal(autonat2_decode(body, bl, m), 0);
  assert_int_equal(m->status, AUTONAT2_RS_E_DIAL_REFUSED);
  uint64_t nonce = 0;
  n = unhex("0909874b6b5d54dc2b00", b);
  assert_int_equal(autonat2_dialback_frame_parse(b, n, &body, &bl, &used), 0);
  assert_int_equal(autonat2_dialback_decode(body, bl, &nonce), 0);
  assert_true(nonce == 12345678901234567ull);
  uint32_t st = 5;
  assert_int_equal(autonat2_dialback_frame_parse((const uint8_t *)"\0", 1, &body, &bl, &used), 0);
  assert_int_equal(autonat2_dialback_response_decode(body, bl, &st), 0);
  assert_int_equal(st, 0);
  /* and ours decode in js's terms: our DialBack is the same bytes */
  buf o;
  buf_init(&o, 64);
  assert_int_equal(autonat2_dialback_encode(12345678901234567ull, &o), 0);
  assert_int_equal(buf_len(&o), 10);
  assert_memory_equal(buf_ptr(&o), "\x09\x09\x87\x4b\x6b\x5d\x54\xdc\x2b\x00", 10);
  buf_free(&o);
  free(m);
}

/* Client: the dial-back's connection must be of the tested transport (spec: the local address
 * of the connection the nonce came on): the same protocols in order, values aside (a NAT
 * changes them), dns* as the IP family it resolves to, a /p2p/ suffix ignored; a relayed or
 * unknown local address never. */
static void test_dialback_local_address_must_fit_the_tested_one(void **state) {
  (void)state;
  static const struct {
    const char *local, *tested;
    bool fits;
  } cases[] = {
      {"/ip4/10.0.0.5/tcp/4001", "/ip4/203.0.113.7/tcp/4001", true},   /* behind a NAT */
      {"/ip4/10.0.0.5/tcp/4001", "/ip4/203.0.113.7/tcp/61000", true},  /* a mapped port */
      {"/ip4/10.0.0.5/tcp/4001", "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
       true},
      {"/ip6/2001:db8::5/tcp/4001", "/ip6/2001:db8::7/tcp/4001", true},
      {"/ip4/10.0.0.5/tcp/4001", "/dns4/example.com/tcp/4001", true},
      {"/ip6/2001:db8::5/tcp/4001", "/dns/example.com/tcp/4001", true},
      {"/ip6/2001:db8::5/tcp/4001", "/dns6/example.com/tcp/4001", true},
      {"/ip6/2001:db8::5/tcp/4001", "/ip4/203.0.113.7/tcp/4001", false}, /* the other family */
      {"/ip4/10.0.0.5/tcp/4001", "/ip6/2001:db8::7/tcp/4001", false},
      {"/ip4/10.0.0.5/tcp/4001", "/dns6/example.com/tcp/4001", false},
      {"/ip6/2001:db8::5/tcp/4001", "/dns4/example.com/tcp/4001", false},
      {"/ip4/10.0.0.5/udp/4001", "/ip4/203.0.113.7/tcp/4001", false}, /* another transport */
      {"/ip4/10.0.0.5/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1", false},
      {"/ip4/10.0.0.5/tcp/4001", "/ip4/203.0.113.7/tcp/4001/ws", false},
      {"/ip4/10.0.0.5/tcp/4001/ws", "/ip4/203.0.113.7/tcp/4001", false},
      {"/unix/%2Frun%2Fp.sock", "/ip4/203.0.113.7/tcp/4001", false},
      {"/ip4/203.0.113.7/tcp/4001", "/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit",
       false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    multiaddr l = ma(cases[i].local), t = ma(cases[i].tested);
    if (autonat2_dialback_addr_matches(&l, &t) != cases[i].fits) fail_msg("%s / %s", cases[i].local, cases[i].tested);
  }
  multiaddr empty = {0}, t = ma("/ip4/203.0.113.7/tcp/4001");
  assert_false(autonat2_dialback_addr_matches(&empty, &t)); /* relayed, unknown */
  assert_false(autonat2_dialback_addr_matches(&empty, &empty));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codec_round_trips),
      cmocka_unit_test(test_codec_rejects_bad_input),
      cmocka_unit_test(test_select_one_address),
      cmocka_unit_test(test_same_ip_is_dialed_at_once),
      cmocka_unit_test(test_other_ip_pays_dial_data),
      cmocka_unit_test(test_server_refuses_and_rejects),
      cmocka_unit_test(test_client_refusals),
      cmocka_unit_test(test_decodes_js_bytes),
      cmocka_unit_test(test_dialback_local_address_must_fit_the_tested_one),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

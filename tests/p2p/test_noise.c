/* Unit tests for p2p/proto/noise: the raw XX machine against the cacophony test vector, and
 * the libp2p handshake (payload, signature, expected PeerId, muxer negotiation, framing,
 * nonce limit, tampering) between two in-memory sessions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "hexutil.h"
#include "noise.pb-c.h"
#include "p2p/core/identity.h"
#include "p2p/proto/noise.h"
#include "util/log.h"

#define BUFMAX (16u << 20)

/* Noise_XX_25519_ChaChaPoly_SHA256 from the cacophony vectors (prologue "John Galt"). */
static const char *const V_PROLOGUE = "4a6f686e2047616c74";
static const char *const V_INIT_STATIC = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
static const char *const V_INIT_EPH = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
static const char *const V_RESP_STATIC = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
static const char *const V_RESP_EPH = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
static const char *const V_HASH = "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e";
static const char *const V_MSGS[][2] = {
    {"4c756477696720766f6e204d69736573",
     "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e204d69736573"},
    {"4d757272617920526f746862617264",
     "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c48378ffce2b65285e08d6b68aaa3"
     "629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f8a0db50f8814c7194e83f23dbd8d162"
     "c9326ad"},
    {"462e20412e20486179656b",
     "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169ae80a89be0865b57f58c9fea0d4ec"
     "82a286427402f113e4b6ae769a1d95941d49b25030"},
    {"4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df"},
    {"4a65616e2d426170746973746520536179", "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5"},
    {"457567656e2042f6686d20766f6e2042617765726b",
     "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f"},
};

/* The transport AEAD backend every session and raw XX state of this run uses: the suite runs
 * once per backend (meson passes "libsodium" as the argument for the second run). */
static noise_aead g_aead = NOISE_AEAD_OPENSSL;

static void test_noise_xx_matches_cacophony_vector(void **state) {
  (void)state;
  uint8_t pro[16], is[32], ie[32], rs[32], re[32], h[32], want_h[32];
  size_t pl = hex_decode(V_PROLOGUE, pro, sizeof pro);
  hex_decode(V_INIT_STATIC, is, 32);
  hex_decode(V_INIT_EPH, ie, 32);
  hex_decode(V_RESP_STATIC, rs, 32);
  hex_decode(V_RESP_EPH, re, 32);
  hex_decode(V_HASH, want_h, 32);
  noise_xx *ini, *res;
  assert_int_equal(noise_xx_new(true, pro, pl, is, ie, g_aead, &ini), 0);
  assert_int_equal(noise_xx_new(false, pro, pl, rs, re, g_aead, &res), 0);
  for (size_t i = 0; i < sizeof V_MSGS / sizeof V_MSGS[0]; i++) {
    uint8_t pt[128], ct[256], out[256], back[256];
    size_t pn = hex_decode(V_MSGS[i][0], pt, sizeof pt), cn = hex_decode(V_MSGS[i][1], ct, sizeof ct), on, bn;
    noise_xx *w = (i % 2 == 0) ? ini : res, *r = (i % 2 == 0) ? res : ini;
    assert_int_equal(noise_xx_write(w, pt, pn, out, sizeof out, &on), 0);
    assert_int_equal(on, cn);
    assert_memory_equal(out, ct, cn);
    assert_int_equal(noise_xx_read(r, out, on, back, sizeof back, &bn), 0);
    assert_int_equal(bn, pn);
    assert_memory_equal(back, pt, pn);
    if (i == 2) {
      noise_xx_handshake_hash(ini, h);
      assert_memory_equal(h, want_h, 32);
      noise_xx_handshake_hash(res, h);
      assert_memory_equal(h, want_h, 32);
    }
  }
  noise_xx_free(ini);
  noise_xx_free(res);
}

typedef struct side {
  noise_session *s;
  buf wire, plain;
  keys_private id;
  peerid pid;
} side;

static void side_init(side *x, bool initiator, const peerid *expect, const char *const *mux, size_t nmux) {
  memset(x, 0, sizeof *x);
  assert_int_equal(keys_ed25519_generate(&x->id), 0);
  keys_public kp;
  keys_private_public(&x->id, &kp);
  assert_int_equal(peerid_from_public(&kp, &x->pid), 0);
  buf_init(&x->wire, BUFMAX);
  buf_init(&x->plain, BUFMAX);
  noise_config cfg = {.initiator = initiator, .identity = &x->id, .expected_remote = expect, .muxers = mux, .n_muxers = nmux,
                     .aead = g_aead};
  assert_int_equal(noise_session_new(&cfg, &x->s), 0);
}

static void side_free(side *x) {
  noise_session_free(x->s);
  buf_free(&x->wire);
  buf_free(&x->plain);
}

/* Moves from->wire into to (in chunks of `step` bytes); returns the first error or OR-ed events. */
static int deliver(side *from, side *to, size_t step) {
  int ev = 0;
  while (buf_len(&from->wire)) {
    size_t n = buf_len(&from->wire) < step ? buf_len(&from->wire) : step;
    int rc = noise_feed(to->s, buf_ptr(&from->wire), n, &to->wire, &to->plain);
    buf_consume(&from->wire, n);
    if (rc < 0) return rc;
    ev |= rc;
  }
  return ev;
}

/* Runs the whole handshake; returns 0 or the first error. */
static int handshake(side *a, side *b, size_t step) {
  int rc = noise_start(a->s, &a->wire);
  if (rc < 0) return rc;
  if ((rc = deliver(a, b, step)) < 0) return rc;      /* msg1 */
  if ((rc = deliver(b, a, step)) < 0) return rc;      /* msg2 → a sends msg3 */
  if (!(rc & NOISE_EV_ESTABLISHED)) return -1;
  if ((rc = deliver(a, b, step)) < 0) return rc;      /* msg3 */
  if (!(rc & NOISE_EV_ESTABLISHED)) return -1;
  return 0;
}

static void test_noise_handshake_authenticates_both_peers(void **state) {
  (void)state;
  side a, b;
  side_init(&b, false, NULL, NULL, 0);
  side_init(&a, true, &b.pid, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  assert_true(noise_is_established(a.s));
  assert_true(noise_is_established(b.s));
  assert_true(peerid_equal(noise_remote_peer(a.s), &b.pid));
  assert_true(peerid_equal(noise_remote_peer(b.s), &a.pid));
  assert_null(noise_negotiated_muxer(a.s));
  assert_null(noise_negotiated_muxer(b.s));
  /* transport both ways */
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"ping", 4, &a.wire), 0);
  assert_int_equal(deliver(&a, &b, 1 << 20), 0);
  assert_int_equal(buf_len(&b.plain), 4);
  assert_memory_equal(buf_ptr(&b.plain), "ping", 4);
  assert_int_equal(noise_encrypt(b.s, (const uint8_t *)"pong!", 5, &b.wire), 0);
  assert_int_equal(deliver(&b, &a, 1 << 20), 0);
  assert_int_equal(buf_len(&a.plain), 5);
  side_free(&a);
  side_free(&b);
}

static void test_noise_handshake_survives_one_byte_reads(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1), 0);
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"abc", 3, &a.wire), 0);
  assert_int_equal(deliver(&a, &b, 1), 0);
  assert_int_equal(buf_len(&b.plain), 3);
  side_free(&a);
  side_free(&b);
}

/* The initiator may send its first transport frame in the same segment as message 3. */
static void test_noise_transport_data_right_after_message_3(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(noise_start(a.s, &a.wire), 0);
  assert_true(deliver(&a, &b, 1 << 20) >= 0);
  assert_int_equal(deliver(&b, &a, 1 << 20), NOISE_EV_ESTABLISHED);
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"early", 5, &a.wire), 0);
  assert_int_equal(deliver(&a, &b, 1 << 20), NOISE_EV_ESTABLISHED);
  assert_int_equal(buf_len(&b.plain), 5);
  assert_memory_equal(buf_ptr(&b.plain), "early", 5);
  side_free(&a);
  side_free(&b);
}

static void test_noise_large_write_is_split_into_max_frames(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  size_t n = 3 * NOISE_MAX_PLAINTEXT + 1000;
  uint8_t *data = malloc(n);
  randombytes_buf(data, n);
  assert_int_equal(noise_encrypt(a.s, data, n, &a.wire), 0);
  /* 4 frames: 3 full (65535 bytes each) and one short one */
  assert_int_equal(buf_len(&a.wire), n + 4 * (2 + NOISE_TAG_LEN));
  const uint8_t *w = buf_ptr(&a.wire);
  assert_int_equal(w[0] << 8 | w[1], NOISE_MAX_FRAME);
  assert_int_equal(deliver(&a, &b, 7000), 0);
  assert_int_equal(buf_len(&b.plain), n);
  assert_memory_equal(buf_ptr(&b.plain), data, n);
  free(data);
  side_free(&a);
  side_free(&b);
}

static void test_noise_rejects_wrong_peer_id(void **state) {
  (void)state;
  side a, b, other;
  side_init(&other, false, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  side_init(&a, true, &other.pid, NULL, 0); /* expects someone else */
  assert_int_equal(handshake(&a, &b, 1 << 20), -EACCES);
  assert_false(noise_is_established(a.s));
  assert_null(noise_remote_peer(a.s));
  /* the initiator never sent its identity (msg3) to the wrong peer */
  assert_int_equal(buf_len(&a.wire), 0);
  /* and the session stays failed */
  assert_int_equal(noise_feed(a.s, (const uint8_t *)"x", 1, &a.wire, &a.plain), -EACCES);
  side_free(&a);
  side_free(&b);
  side_free(&other);
}

static void test_noise_responder_can_expect_a_peer_too(void **state) {
  (void)state;
  side a, b, other;
  side_init(&other, true, NULL, NULL, 0);
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, &other.pid, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), -EACCES);
  side_free(&a);
  side_free(&b);
  side_free(&other);
}

static void test_noise_tampered_handshake_message_fails(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(noise_start(a.s, &a.wire), 0);
  assert_true(deliver(&a, &b, 1 << 20) >= 0);
  buf_ptr(&b.wire)[2 + 40] ^= 0x01; /* inside the encrypted static key of msg2 */
  assert_int_equal(deliver(&b, &a, 1 << 20), -EBADMSG);
  side_free(&a);
  side_free(&b);
}

static void test_noise_tampered_transport_frame_fails(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"hello", 5, &a.wire), 0);
  buf_ptr(&a.wire)[3] ^= 0x80;
  assert_int_equal(deliver(&a, &b, 1 << 20), -EBADMSG);
  assert_int_equal(buf_len(&b.plain), 0);
  side_free(&a);
  side_free(&b);
}

/* A flipped bit in the tag itself (the frame's last byte), or in the first tag byte, is refused
 * too: the tag handed to the cipher is the one checked (tests/p2p: both backends). */
static void test_noise_tampered_tag_fails(void **state) {
  (void)state;
  for (int last = 0; last < 2; last++) {
    side a, b;
    side_init(&a, true, NULL, NULL, 0);
    side_init(&b, false, NULL, NULL, 0);
    assert_int_equal(handshake(&a, &b, 1 << 20), 0);
    assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"hello, tag", 10, &a.wire), 0);
    size_t len = buf_len(&a.wire);
    buf_ptr(&a.wire)[last ? len - 1 : len - NOISE_TAG_LEN] ^= 0x01;
    assert_int_equal(deliver(&a, &b, 1 << 20), -EBADMSG);
    assert_int_equal(buf_len(&b.plain), 0);
    side_free(&a);
    side_free(&b);
  }
}

static void test_noise_replayed_transport_frame_fails(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"hello", 5, &a.wire), 0);
  uint8_t copy[64];
  size_t n = buf_len(&a.wire);
  memcpy(copy, buf_ptr(&a.wire), n);
  assert_int_equal(deliver(&a, &b, 1 << 20), 0);
  assert_int_equal(noise_feed(b.s, copy, n, &b.wire, &b.plain), -EBADMSG);
  side_free(&a);
  side_free(&b);
}

static void test_noise_muxer_negotiation_picks_initiator_preference(void **state) {
  (void)state;
  const char *imux[] = {"/yamux/1.0.0", "/mplex/6.7.0"};
  const char *rmux[] = {"/mplex/6.7.0", "/yamux/1.0.0"};
  side a, b;
  side_init(&a, true, NULL, imux, 2);
  side_init(&b, false, NULL, rmux, 2);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  assert_string_equal(noise_negotiated_muxer(a.s), "/yamux/1.0.0");
  assert_string_equal(noise_negotiated_muxer(b.s), "/yamux/1.0.0");
  side_free(&a);
  side_free(&b);
}

static void test_noise_muxer_negotiation_absent_when_one_side_sends_none(void **state) {
  (void)state;
  const char *mux[] = {"/yamux/1.0.0"};
  side a, b;
  side_init(&a, true, NULL, mux, 1);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  assert_null(noise_negotiated_muxer(a.s));
  assert_null(noise_negotiated_muxer(b.s));
  side_free(&a);
  side_free(&b);
}

static void test_noise_muxer_negotiation_without_overlap_fails(void **state) {
  (void)state;
  const char *imux[] = {"/yamux/1.0.0"};
  const char *rmux[] = {"/mplex/6.7.0"};
  side a, b;
  side_init(&a, true, NULL, imux, 1);
  side_init(&b, false, NULL, rmux, 1);
  assert_int_equal(handshake(&a, &b, 1 << 20), -ENOPROTOOPT);
  side_free(&a);
  side_free(&b);
}

static void test_noise_refuses_to_send_at_nonce_limit(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  noise_test_set_send_nonce(a.s, UINT64_MAX - 1);
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"x", 1, &a.wire), 0); /* nonce 2^64-2: last one */
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"y", 1, &a.wire), -EOVERFLOW);
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"y", 1, &a.wire), -EOVERFLOW);
  side_free(&a);
  side_free(&b);
}

static void test_noise_rejects_short_and_garbage_messages(void **state) {
  (void)state;
  side b;
  side_init(&b, false, NULL, NULL, 0);
  const uint8_t short_msg1[] = {0x00, 0x05, 1, 2, 3, 4, 5}; /* e needs 32 bytes */
  assert_int_equal(noise_feed(b.s, short_msg1, sizeof short_msg1, &b.wire, &b.plain), -EPROTO);
  side_free(&b);
  /* an initiator that receives bytes before it spoke */
  side a;
  side_init(&a, true, NULL, NULL, 0);
  assert_int_equal(noise_feed(a.s, short_msg1, 2, &a.wire, &a.plain), -EPROTO);
  side_free(&a);
  /* garbage msg3 */
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(noise_start(a.s, &a.wire), 0);
  assert_true(deliver(&a, &b, 1 << 20) >= 0);
  uint8_t junk[2 + 200];
  junk[0] = 0, junk[1] = 200;
  randombytes_buf(junk + 2, 200);
  assert_int_equal(noise_feed(b.s, junk, sizeof junk, &b.wire, &b.plain), -EBADMSG);
  side_free(&a);
  side_free(&b);
}

static void test_noise_rejects_transport_frame_shorter_than_tag(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  const uint8_t tiny[] = {0x00, 0x03, 1, 2, 3};
  assert_int_equal(noise_feed(b.s, tiny, sizeof tiny, &b.wire, &b.plain), -EPROTO);
  side_free(&a);
  side_free(&b);
}

static void test_noise_partial_frame_is_buffered_not_lost(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  side_init(&b, false, NULL, NULL, 0);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"0123456789", 10, &a.wire), 0);
  assert_int_equal(noise_feed(b.s, buf_ptr(&a.wire), 5, &b.wire, &b.plain), 0);
  assert_int_equal(noise_pending_input(b.s), 5);
  assert_int_equal(buf_len(&b.plain), 0);
  assert_int_equal(noise_feed(b.s, buf_ptr(&a.wire) + 5, buf_len(&a.wire) - 5, &b.wire, &b.plain), 0);
  assert_int_equal(noise_pending_input(b.s), 0);
  assert_int_equal(buf_len(&b.plain), 10);
  side_free(&a);
  side_free(&b);
}

static void test_noise_encrypt_before_handshake_refused(void **state) {
  (void)state;
  side a;
  side_init(&a, true, NULL, NULL, 0);
  assert_int_equal(noise_encrypt(a.s, (const uint8_t *)"x", 1, &a.wire), -ENOTCONN);
  side_free(&a);
}

/* A hand-built responder whose payload signs a different static key must be refused. */
static void test_noise_rejects_bad_static_key_signature(void **state) {
  (void)state;
  side a;
  side_init(&a, true, NULL, NULL, 0);
  assert_int_equal(noise_start(a.s, &a.wire), 0);
  uint8_t rs_sk[32], other_sk[32], other_pk[32];
  randombytes_buf(rs_sk, 32);
  randombytes_buf(other_sk, 32);
  crypto_scalarmult_base(other_pk, other_sk);
  noise_xx *r;
  assert_int_equal(noise_xx_new(false, NULL, 0, rs_sk, NULL, g_aead, &r), 0);
  uint8_t pl[256];
  size_t pn;
  assert_int_equal(noise_xx_read(r, buf_ptr(&a.wire) + 2, buf_len(&a.wire) - 2, pl, sizeof pl, &pn), 0);
  buf_consume(&a.wire, buf_len(&a.wire));
  keys_private rid;
  assert_int_equal(keys_ed25519_generate(&rid), 0);
  keys_public rpk;
  keys_private_public(&rid, &rpk);
  uint8_t pkpb[64], sig[64], tosign[24 + 32];
  size_t pkn;
  assert_int_equal(keys_public_encode(&rpk, pkpb, sizeof pkpb, &pkn), 0);
  memcpy(tosign, "noise-libp2p-static-key:", 24);
  memcpy(tosign + 24, other_pk, 32); /* signs the wrong static key */
  assert_int_equal(keys_private_sign(&rid, tosign, sizeof tosign, sig), 0);
  Pb__NoiseHandshakePayload m = PB__NOISE_HANDSHAKE_PAYLOAD__INIT;
  m.has_identity_key = 1, m.identity_key.data = pkpb, m.identity_key.len = pkn;
  m.has_identity_sig = 1, m.identity_sig.data = sig, m.identity_sig.len = 64;
  pn = pb__noise_handshake_payload__pack(&m, pl);
  uint8_t msg[2 + 512];
  size_t mn;
  assert_int_equal(noise_xx_write(r, pl, pn, msg + 2, sizeof msg - 2, &mn), 0);
  msg[0] = (uint8_t)(mn >> 8), msg[1] = (uint8_t)mn;
  assert_int_equal(noise_feed(a.s, msg, mn + 2, &a.wire, &a.plain), -EACCES);
  assert_int_equal(buf_len(&a.wire), 0);
  noise_xx_free(r);
  side_free(&a);
}

/* Same, with the payload missing its signature entirely. */
static void test_noise_rejects_payload_without_identity(void **state) {
  (void)state;
  side a;
  side_init(&a, true, NULL, NULL, 0);
  assert_int_equal(noise_start(a.s, &a.wire), 0);
  uint8_t rs_sk[32], pl[64];
  size_t pn;
  randombytes_buf(rs_sk, 32);
  noise_xx *r;
  assert_int_equal(noise_xx_new(false, NULL, 0, rs_sk, NULL, g_aead, &r), 0);
  assert_int_equal(noise_xx_read(r, buf_ptr(&a.wire) + 2, buf_len(&a.wire) - 2, pl, sizeof pl, &pn), 0);
  uint8_t msg[2 + 256];
  size_t mn;
  assert_int_equal(noise_xx_write(r, NULL, 0, msg + 2, sizeof msg - 2, &mn), 0); /* empty payload */
  msg[0] = (uint8_t)(mn >> 8), msg[1] = (uint8_t)mn;
  assert_int_equal(noise_feed(a.s, msg, mn + 2, &a.wire, &a.plain), -EACCES);
  noise_xx_free(r);
  side_free(&a);
}

static void test_noise_config_validation(void **state) {
  (void)state;
  keys_private id;
  assert_int_equal(keys_ed25519_generate(&id), 0);
  noise_session *s;
  noise_config none = {.initiator = true};
  assert_int_equal(noise_session_new(&none, &s), -EINVAL);
  char longname[NOISE_MUXER_NAME_MAX + 2];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  const char *mux[] = {longname};
  noise_config bad = {.initiator = true, .identity = &id, .muxers = mux, .n_muxers = 1};
  assert_int_equal(noise_session_new(&bad, &s), -EINVAL);
}

/* Two identities as two real runs would have them (fresh random keys, fresh statics), both
 * directions of dialing. */
static void test_noise_handshake_between_two_fresh_identities_both_ways(void **state) {
  (void)state;
  for (int dir = 0; dir < 2; dir++) {
    side a, b;
    side_init(&a, dir == 0, NULL, NULL, 0);
    side_init(&b, dir != 0, NULL, NULL, 0);
    side *ini = dir == 0 ? &a : &b, *res = dir == 0 ? &b : &a;
    assert_int_equal(handshake(ini, res, 13), 0);
    assert_true(peerid_equal(noise_remote_peer(ini->s), &res->pid));
    assert_true(peerid_equal(noise_remote_peer(res->s), &ini->pid));
    assert_false(peerid_equal(&a.pid, &b.pid));
    side_free(&a);
    side_free(&b);
  }
}

/* Identities as two real runs leave them on disk: created by identity_load_or_create in two
 * state directories, reloaded from the files, then used for a handshake. */
static void test_noise_handshake_with_identities_loaded_from_disk(void **state) {
  (void)state;
  char d1[] = "/tmp/peermcp-noise-a-XXXXXX", d2[] = "/tmp/peermcp-noise-b-XXXXXX";
  assert_non_null(mkdtemp(d1));
  assert_non_null(mkdtemp(d2));
  keys_private k1, k2, r1, r2;
  bool created;
  assert_int_equal(identity_load_or_create(d1, &k1, &created), 0);
  assert_int_equal(identity_load_or_create(d2, &k2, &created), 0);
  assert_int_equal(identity_load_or_create(d1, &r1, &created), 0); /* second run: reload */
  assert_false(created);
  assert_int_equal(identity_load_or_create(d2, &r2, &created), 0);
  keys_public p1, p2;
  keys_private_public(&r1, &p1);
  keys_private_public(&r2, &p2);
  peerid id2;
  assert_int_equal(peerid_from_public(&p2, &id2), 0);
  buf aw, ap, bw, bp;
  buf_init(&aw, BUFMAX), buf_init(&ap, BUFMAX), buf_init(&bw, BUFMAX), buf_init(&bp, BUFMAX);
  noise_config ca = {.initiator = true, .identity = &r1, .expected_remote = &id2, .aead = g_aead};
  noise_config cb = {.initiator = false, .identity = &r2, .aead = g_aead};
  noise_session *a, *b;
  assert_int_equal(noise_session_new(&ca, &a), 0);
  assert_int_equal(noise_session_new(&cb, &b), 0);
  assert_int_equal(noise_start(a, &aw), 0);
  assert_int_equal(noise_feed(b, buf_ptr(&aw), buf_len(&aw), &bw, &bp), 0);
  assert_int_equal(noise_feed(a, buf_ptr(&bw), buf_len(&bw), &aw, &ap), NOISE_EV_ESTABLISHED);
  buf_consume(&aw, 2 + 32);
  assert_int_equal(noise_feed(b, buf_ptr(&aw), buf_len(&aw), &bw, &bp), NOISE_EV_ESTABLISHED);
  assert_true(peerid_matches_public(noise_remote_peer(b), &p1));
  assert_true(peerid_matches_public(noise_remote_peer(a), &p2));
  noise_session_free(a);
  noise_session_free(b);
  buf_free(&aw), buf_free(&ap), buf_free(&bw), buf_free(&bp);
  char f[128];
  snprintf(f, sizeof f, "%s/identity.key", d1);
  unlink(f);
  snprintf(f, sizeof f, "%s/identity.key", d2);
  unlink(f);
  rmdir(d1);
  rmdir(d2);
}

/* The backend is a per-session choice and both produce the same bytes: an OpenSSL session
 * talks to a libsodium one. */
static void test_noise_aead_backends_interoperate(void **state) {
  (void)state;
  side a, b;
  side_init(&a, true, NULL, NULL, 0);
  noise_aead other = g_aead == NOISE_AEAD_OPENSSL ? NOISE_AEAD_LIBSODIUM : NOISE_AEAD_OPENSSL;
  noise_aead saved = g_aead;
  g_aead = other;
  side_init(&b, false, NULL, NULL, 0);
  g_aead = saved;
  assert_int_equal(noise_session_aead(a.s), saved);
  assert_int_equal(noise_session_aead(b.s), other);
  assert_int_equal(handshake(&a, &b, 1 << 20), 0);
  static uint8_t msg[200000];
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 31);
  assert_int_equal(noise_encrypt(a.s, msg, sizeof msg, &a.wire), 0);
  assert_true(deliver(&a, &b, 4096) >= 0);
  assert_int_equal(buf_len(&b.plain), sizeof msg);
  assert_memory_equal(buf_ptr(&b.plain), msg, sizeof msg);
  assert_int_equal(noise_encrypt(b.s, msg, 1000, &b.wire), 0);
  assert_true(deliver(&b, &a, 7) >= 0);
  assert_int_equal(buf_len(&a.plain), 1000);
  assert_memory_equal(buf_ptr(&a.plain), msg, 1000);
  side_free(&a);
  side_free(&b);
}

/* The OpenSSL backend changes only the nonce per message (noise.c evp_set_nonce: through the
 * cipher's parameters, when the once-per-process check agrees — it does with Debian's OpenSSL
 * 3.0): 400 messages of 1–1,000 bytes each way between an OpenSSL session and a libsodium one
 * (an independent implementation: a message sealed or opened under any other nonce fails its
 * tag), and between two OpenSSL sessions. */
static void test_noise_openssl_nonce_by_param_matches_libsodium(void **state) {
  (void)state;
  assert_true(noise_openssl_nonce_by_param());
  for (int mix = 0; mix < 2; mix++) {
    side a, b;
    noise_aead saved = g_aead;
    g_aead = NOISE_AEAD_OPENSSL;
    side_init(&a, true, NULL, NULL, 0);
    g_aead = mix ? NOISE_AEAD_LIBSODIUM : NOISE_AEAD_OPENSSL;
    side_init(&b, false, NULL, NULL, 0);
    g_aead = saved;
    assert_int_equal(handshake(&a, &b, 1 << 20), 0);
    static uint8_t msg[1000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 13 + 1);
    for (size_t k = 0; k < 800; k++) {
      side *from = k % 2 ? &b : &a, *to = k % 2 ? &a : &b;
      size_t n = 1 + (k * 37) % sizeof msg;
      buf_reset(&to->plain);
      assert_int_equal(noise_encrypt(from->s, msg, n, &from->wire), 0);
      assert_true(deliver(from, to, 1 << 20) >= 0);
      assert_int_equal(buf_len(&to->plain), n);
      assert_memory_equal(buf_ptr(&to->plain), msg, n);
    }
    side_free(&a);
    side_free(&b);
  }
}

/* Messages of every size from RPC frames to bulk, interleaved, in both directions and across
 * backends, keep one nonce sequence and decrypt to the same bytes. */
static void test_noise_small_and_large_messages_interleave(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 200, 2031, 2032, 2047, 2048, 2049, 4096, 60000, 17, 2048, 3};
  for (int mix = 0; mix < 2; mix++) {
    side a, b;
    side_init(&a, true, NULL, NULL, 0);
    noise_aead saved = g_aead;
    if (mix) g_aead = saved == NOISE_AEAD_OPENSSL ? NOISE_AEAD_LIBSODIUM : NOISE_AEAD_OPENSSL;
    side_init(&b, false, NULL, NULL, 0);
    g_aead = saved;
    assert_int_equal(handshake(&a, &b, 1 << 20), 0);
    static uint8_t msg[60000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 7 + 3);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      side *from = k % 2 ? &b : &a, *to = k % 2 ? &a : &b;
      buf_reset(&to->plain);
      assert_int_equal(noise_encrypt(from->s, msg, sizes[k], &from->wire), 0);
      assert_true(deliver(from, to, 1 << 20) >= 0);
      assert_int_equal(buf_len(&to->plain), sizes[k]);
      assert_memory_equal(buf_ptr(&to->plain), msg, sizes[k]);
    }
    side_free(&a);
    side_free(&b);
  }
}

static void test_noise_aead_names_parse(void **state) {
  (void)state;
  noise_aead a = NOISE_AEAD_LIBSODIUM;
  assert_int_equal(noise_aead_parse(NULL, &a), 0);
  assert_int_equal(a, NOISE_AEAD_LIBSODIUM); /* unset: unchanged */
  assert_int_equal(noise_aead_parse("openssl", &a), 0);
  assert_int_equal(a, NOISE_AEAD_OPENSSL);
  assert_int_equal(noise_aead_parse("libsodium", &a), 0);
  assert_int_equal(a, NOISE_AEAD_LIBSODIUM);
  assert_int_equal(noise_aead_parse("LibSodium", &a), -EINVAL);
  assert_int_equal(noise_aead_parse("aes", &a), -EINVAL);
  assert_int_equal(a, NOISE_AEAD_LIBSODIUM);
  assert_string_equal(noise_aead_name(NOISE_AEAD_OPENSSL), "openssl");
  assert_string_equal(noise_aead_name(NOISE_AEAD_LIBSODIUM), "libsodium");
  keys_private id;
  assert_int_equal(keys_ed25519_generate(&id), 0);
  noise_config cfg = {.initiator = true, .identity = &id, .aead = (noise_aead)7};
  noise_session *s;
  assert_int_equal(noise_session_new(&cfg, &s), -EINVAL);
  uint8_t sk[32] = {1};
  noise_xx *x;
  assert_int_equal(noise_xx_new(true, NULL, 0, sk, NULL, (noise_aead)7, &x), -EINVAL);
}

int main(int argc, char **argv) {
  log_set_level(LOG_OFF);
  if (argc > 1 && noise_aead_parse(argv[1], &g_aead) != 0) {
    fprintf(stderr, "usage: %s [openssl|libsodium]\n", argv[0]);
    return 2;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_noise_xx_matches_cacophony_vector),
      cmocka_unit_test(test_noise_handshake_authenticates_both_peers),
      cmocka_unit_test(test_noise_handshake_survives_one_byte_reads),
      cmocka_unit_test(test_noise_transport_data_right_after_message_3),
      cmocka_unit_test(test_noise_large_write_is_split_into_max_frames),
      cmocka_unit_test(test_noise_rejects_wrong_peer_id),
      cmocka_unit_test(test_noise_responder_can_expect_a_peer_too),
      cmocka_unit_test(test_noise_tampered_handshake_message_fails),
      cmocka_unit_test(test_noise_tampered_transport_frame_fails),
      cmocka_unit_test(test_noise_tampered_tag_fails),
      cmocka_unit_test(test_noise_replayed_transport_frame_fails),
      cmocka_unit_test(test_noise_muxer_negotiation_picks_initiator_preference),
      cmocka_unit_test(test_noise_muxer_negotiation_absent_when_one_side_sends_none),
      cmocka_unit_test(test_noise_muxer_negotiation_without_overlap_fails),
      cmocka_unit_test(test_noise_refuses_to_send_at_nonce_limit),
      cmocka_unit_test(test_noise_rejects_short_and_garbage_messages),
      cmocka_unit_test(test_noise_rejects_transport_frame_shorter_than_tag),
      cmocka_unit_test(test_noise_partial_frame_is_buffered_not_lost),
      cmocka_unit_test(test_noise_encrypt_before_handshake_refused),
      cmocka_unit_test(test_noise_rejects_bad_static_key_signature),
      cmocka_unit_test(test_noise_rejects_payload_without_identity),
      cmocka_unit_test(test_noise_config_validation),
      cmocka_unit_test(test_noise_handshake_between_two_fresh_identities_both_ways),
      cmocka_unit_test(test_noise_handshake_with_identities_loaded_from_disk),
      cmocka_unit_test(test_noise_aead_backends_interoperate),
      cmocka_unit_test(test_noise_aead_names_parse),
      cmocka_unit_test(test_noise_small_and_large_messages_interleave),
      cmocka_unit_test(test_noise_openssl_nonce_by_param_matches_libsodium),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

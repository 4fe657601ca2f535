/* fuzz_noise_handshake.c — libFuzzer target: Noise sessions fed hostile wire bytes.
 * All keys are fixed so runs are reproducible. Byte 0 picks the scenario:
 *   0: a responder fed arbitrary bytes as (framed) message 1 and onwards;
 *   1: a responder that got a valid message 1, then arbitrary bytes as message 3;
 *   2: an initiator that sent message 1, then arbitrary bytes as message 2;
 *   3: an established responder fed arbitrary transport frames.
 * Byte 1 sets the feed chunk size. Invariants: errors are sticky and the session never
 * reports established with a PeerId other than the one it authenticated. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/noise.h"

static const uint8_t SEED_I[32] = {1}, SEED_R[32] = {2};
static const uint8_t STAT_I[32] = {3}, STAT_R[32] = {4}, EPH_I[32] = {5}, EPH_R[32] = {6};

static noise_session *mk(bool initiator, keys_private *id) {
  if (keys_ed25519_from_seed(initiator ? SEED_I : SEED_R, id) != 0) abort();
  noise_config cfg = {.initiator = initiator, .identity = id,
                      .test_static_sk = initiator ? STAT_I : STAT_R, .test_ephemeral_sk = initiator ? EPH_I : EPH_R};
  noise_session *s;
  if (noise_session_new(&cfg, &s) != 0) abort();
  return s;
}

static int feed_all(noise_session *s, const uint8_t *d, size_t n, size_t chunk, buf *w, buf *p) {
  int last = 0;
  while (n) {
    size_t c = n < chunk ? n : chunk;
    int rc = noise_feed(s, d, c, w, p);
    if (last < 0 && rc != last) abort(); /* sticky errors */
    if (rc < 0) last = rc;
    d += c;
    n -= c;
  }
  return last;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > 300000) return 0;
  int mode = data[0] % 4;
  size_t chunk = (size_t)data[1] * 37 + 1;
  data += 2;
  size -= 2;
  keys_private ii, ri;
  buf iw, ip, rw, rp;
  buf_init(&iw, 1 << 20);
  buf_init(&ip, 1 << 20);
  buf_init(&rw, 1 << 20);
  buf_init(&rp, 1 << 20);
  noise_session *ini = mk(true, &ii), *res = mk(false, &ri);
  noise_session *target = res;
  if (mode == 0) {
    (void)feed_all(res, data, size, chunk, &rw, &rp);
  } else {
    if (noise_start(ini, &iw) != 0) abort();
    if (mode == 2) {
      target = ini;
      (void)feed_all(ini, data, size, chunk, &iw, &ip);
    } else {
      if (noise_feed(res, buf_ptr(&iw), buf_len(&iw), &rw, &rp) != 0) abort();
      if (mode == 3) {
        if (noise_feed(ini, buf_ptr(&rw), buf_len(&rw), &iw, &ip) != NOISE_EV_ESTABLISHED) abort();
        buf_consume(&iw, 2 + 32);
        if (noise_feed(res, buf_ptr(&iw), buf_len(&iw), &rw, &rp) != NOISE_EV_ESTABLISHED) abort();
      }
      (void)feed_all(res, data, size, chunk, &rw, &rp);
    }
  }
  if (noise_is_established(target)) {
    keys_public other;
    keys_private_public(target == res ? &ii : &ri, &other);
    if (!peerid_matches_public(noise_remote_peer(target), &other)) abort();
  }
  noise_session_free(ini);
  noise_session_free(res);
  buf_free(&iw);
  buf_free(&ip);
  buf_free(&rw);
  buf_free(&rp);
  return 0;
}

/* fuzz_noise_payload.c — libFuzzer target: the libp2p NoiseHandshakePayload decoder and
 * checks, reached through a correctly encrypted handshake message 2 whose plaintext payload
 * is the fuzz input (so the protobuf, key and signature checks see arbitrary bytes). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/noise.h"

static const uint8_t SEED_I[32] = {1}, STAT_I[32] = {3}, EPH_I[32] = {5}, STAT_R[32] = {4}, EPH_R[32] = {6};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > NOISE_MAX_FRAME - 100) return 0;
  keys_private id;
  if (keys_ed25519_from_seed(SEED_I, &id) != 0) abort();
  const char *mux[] = {"/yamux/1.0.0"};
  noise_config cfg = {.initiator = true, .identity = &id, .muxers = mux, .n_muxers = 1,
                      .test_static_sk = STAT_I, .test_ephemeral_sk = EPH_I};
  noise_session *ini;
  if (noise_session_new(&cfg, &ini) != 0) abort();
  buf w, p;
  buf_init(&w, 1 << 20);
  buf_init(&p, 1 << 20);
  if (noise_start(ini, &w) != 0) abort();
  noise_xx *r;
  if (noise_xx_new(false, NULL, 0, STAT_R, EPH_R, NOISE_AEAD_OPENSSL, &r) != 0) abort();
  uint8_t scratch[64];
  size_t sn;
  if (noise_xx_read(r, buf_ptr(&w) + 2, buf_len(&w) - 2, scratch, sizeof scratch, &sn) != 0) abort();
  buf_reset(&w);
  uint8_t *msg = malloc(2 + size + 128);
  size_t mn;
  if (noise_xx_write(r, data, size, msg + 2, size + 128, &mn) != 0) abort();
  msg[0] = (uint8_t)(mn >> 8);
  msg[1] = (uint8_t)mn;
  int rc = noise_feed(ini, msg, mn + 2, &w, &p);
  /* Nobody but the holder of a key can sign for it; this payload was not signed by us. */
  if (rc > 0 && noise_remote_peer(ini) == NULL) abort();
  free(msg);
  noise_xx_free(r);
  noise_session_free(ini);
  buf_free(&w);
  buf_free(&p);
  return 0;
}

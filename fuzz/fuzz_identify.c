/* fuzz_identify.c — libFuzzer target: Identify message framing and protobuf decoding.
 * Invariant: a decoded message re-encodes, and the re-encoding decodes to the same fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/identify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t bl, used;
  /* The framed form first; fall back to the raw body. */
  if (identify_frame_parse(data, size, IDENTIFY_MAX_MSG, &body, &bl, &used) != 0) {
    body = data;
    bl = size;
  }
  identify_msg m;
  if (identify_decode(body, bl, &m) != 0) return 0;
  buf b;
  buf_init(&b, 2 * IDENTIFY_MAX_MSG);
  if (identify_encode(&m, &b) == 0) {
    const uint8_t *b2;
    size_t l2, u2;
    identify_msg m2;
    if (identify_frame_parse(buf_ptr(&b), buf_len(&b), IDENTIFY_MAX_MSG, &b2, &l2, &u2) != 0) abort();
    if (identify_decode(b2, l2, &m2) != 0) abort();
    if (m2.n_listen_addrs != m.n_listen_addrs || m2.n_protocols != m.n_protocols ||
        m2.has_observed_addr != m.has_observed_addr || m2.public_key_len != m.public_key_len)
      abort();
    for (size_t i = 0; i < m.n_protocols; i++)
      if (strcmp(m.protocols[i], m2.protocols[i]) != 0) abort();
    identify_msg_clear(&m2);
  }
  buf_free(&b);
  identify_msg_clear(&m);
  return 0;
}

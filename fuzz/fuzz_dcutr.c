/* fuzz_dcutr.c — libFuzzer target: DCUtR HolePunch framing and decoding (p2p/proto/dcutr).
 * Invariants: nothing crashes or leaks; a decoded message re-encodes and the re-encoding
 * decodes to the same type and addresses. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "p2p/proto/dcutr.h"

static dcutr_msg m, m2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t bl, used;
  if (dcutr_frame_parse(data, size, &body, &bl, &used) != 0) {
    body = data;
    bl = size;
  }
  if (dcutr_decode(body, bl, &m) != 0) return 0;
  buf b;
  buf_init(&b, 2 * DCUTR_MAX_MSG);
  int rc = dcutr_encode(&m, &b);
  if (rc == 0) {
    const uint8_t *b2;
    size_t l2, u2;
    if (dcutr_frame_parse(buf_ptr(&b), buf_len(&b), &b2, &l2, &u2) != 0 || u2 != buf_len(&b)) abort();
    if (dcutr_decode(b2, l2, &m2) != 0) abort();
    if (m.type != m2.type || m.n_addrs != m2.n_addrs || m2.n_skipped) abort();
    for (size_t i = 0; i < m.n_addrs; i++)
      if (!multiaddr_equal(&m.addrs[i], &m2.addrs[i])) abort();
  } else if (rc != -E2BIG) {
    abort();
  }
  buf_free(&b);
  return 0;
}

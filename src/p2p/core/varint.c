/* varint.c — multiformats unsigned varint (see varint.h). */
#include "p2p/core/varint.h"

#include <errno.h>

size_t varint_len(uint64_t v) {
  if (v > VARINT_MAX_VALUE) return 0;
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t varint_encode(uint64_t v, uint8_t out[VARINT_MAX_BYTES]) {
  if (v > VARINT_MAX_VALUE) return 0;
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

int varint_decode(const uint8_t *p, size_t len, uint64_t *out, size_t *used) {
  uint64_t v = 0;
  for (size_t i = 0; i < VARINT_MAX_BYTES; i++) {
    if (i >= len) return -EAGAIN;
    uint8_t b = p[i];
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      /* A last byte of zero after the first one means a shorter encoding existed. */
      if (b == 0 && i > 0) return -EINVAL;
      *out = v;
      *used = i + 1;
      return 0;
    }
  }
  return -EOVERFLOW;
}

int varint_frame_parse(const uint8_t *in, size_t n, size_t max, const uint8_t **msg, size_t *msg_len,
                       size_t *consumed) {
  uint64_t len;
  size_t used;
  int rc = varint_decode(in, n, &len, &used);
  if (rc == -EAGAIN) return -EAGAIN;
  if (rc) return -EINVAL;
  if (len > max) return -EMSGSIZE;
  if (n - used < len) return -EAGAIN;
  *msg = in + used;
  *msg_len = (size_t)len;
  *consumed = used + (size_t)len;
  return 0;
}

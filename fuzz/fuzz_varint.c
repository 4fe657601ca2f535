/* fuzz_varint.c — libFuzzer target: unsigned varint decoding.
 * Invariant: whatever decodes re-encodes to exactly the bytes consumed (minimality), and a
 * decode never reads past the input or more than 9 bytes. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (off < size) {
    uint64_t v;
    size_t used;
    int rc = varint_decode(data + off, size - off, &v, &used);
    if (rc == -EAGAIN || rc == -EOVERFLOW || rc == -EINVAL) return 0;
    if (rc != 0 || used == 0 || used > VARINT_MAX_BYTES || used > size - off) abort();
    uint8_t enc[VARINT_MAX_BYTES];
    size_t n = varint_encode(v, enc);
    if (n != used || memcmp(enc, data + off, n) != 0 || varint_len(v) != n) abort();
    off += used;
  }
  return 0;
}

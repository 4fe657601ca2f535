/* hexutil.h — hex decoding for the p2p unit tests (test-only helper). */
#ifndef PEERMCP_TESTS_P2P_HEXUTIL_H
#define PEERMCP_TESTS_P2P_HEXUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Decodes a lower/upper-case hex string into out; returns the byte count (aborts on junk). */
static inline size_t hex_decode(const char *hex, uint8_t *out, size_t cap) {
  size_t n = strlen(hex) / 2;
  if (n > cap) __builtin_trap();
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
    if (sscanf(b, "%2x", &v) != 1) __builtin_trap();
    out[i] = (uint8_t)v;
  }
  return n;
}

#endif

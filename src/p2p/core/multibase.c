/* multibase.c — base58btc, base32, base16, base64url and the multibase prefixes
 * (multiformats/multibase; RFC 4648 for base32/base64). See multibase.h. */
#include "p2p/core/multibase.h"

#include <errno.h>
#include <string.h>

static const char b58_alpha[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char b32_alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char b64url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex_alpha[] = "0123456789abcdef";

int multibase_base58btc_encode(const uint8_t *in, size_t n, char *out, size_t cap, size_t *outlen) {
  if (n > MULTIBASE_MAX_INPUT) return -E2BIG;
  size_t zeros = 0;
  while (zeros < n && in[zeros] == 0) zeros++;
  /* log(256)/log(58) < 1.37: this many base-58 digits always suffice. */
  size_t size = (n - zeros) * 138 / 100 + 1;
  uint8_t digits[MULTIBASE_MAX_INPUT * 138 / 100 + 1];
  memset(digits, 0, size);
  size_t high = size; /* digits[high..size) are in use */
  for (size_t i = zeros; i < n; i++) {
    unsigned carry = in[i];
    size_t j = size;
    while (j > 0 && (j > high || carry)) {
      j--;
      carry += 256u * digits[j];
      digits[j] = (uint8_t)(carry % 58);
      carry /= 58;
    }
    high = j;
  }
  size_t k = 0;
  while (k < size && digits[k] == 0) k++;
  size_t total = zeros + (size - k);
  if (total + 1 > cap) return -ENOSPC;
  memset(out, '1', zeros);
  for (size_t i = 0; k < size; i++, k++) out[zeros + i] = b58_alpha[digits[k]];
  out[total] = 0;
  *outlen = total;
  return 0;
}

int multibase_base58btc_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen) {
  if (n > MULTIBASE_MAX_INPUT) return -E2BIG;
  size_t zeros = 0;
  while (zeros < n && in[zeros] == '1') zeros++;
  /* log(58)/log(256) < 0.733 */
  size_t size = (n - zeros) * 733 / 1000 + 1;
  uint8_t bytes[MULTIBASE_MAX_INPUT * 733 / 1000 + 1];
  memset(bytes, 0, size);
  size_t high = size;
  for (size_t i = zeros; i < n; i++) {
    const char *c = (in[i] != 0) ? memchr(b58_alpha, in[i], 58) : NULL;
    if (!c) return -EINVAL;
    unsigned carry = (unsigned)(c - b58_alpha);
    size_t j = size;
    while (j > 0 && (j > high || carry)) {
      j--;
      carry += 58u * bytes[j];
      bytes[j] = (uint8_t)(carry & 0xff);
      carry >>= 8;
    }
    high = j;
  }
  size_t k = 0;
  while (k < size && bytes[k] == 0) k++;
  size_t total = zeros + (size - k);
  if (total > cap) return -ENOSPC;
  memset(out, 0, zeros);
  memcpy(out + zeros, bytes + k, size - k);
  *outlen = total;
  return 0;
}

/* Generic RFC 4648 encoder for 2^bits alphabets (bits = 4, 5, 6), no padding. */
static int enc_bits(const uint8_t *in, size_t n, const char *alpha, unsigned bits, char *out,
                    size_t cap, size_t *outlen) {
  if (n > MULTIBASE_MAX_INPUT) return -E2BIG;
  size_t total = (n * 8 + bits - 1) / bits;
  if (total + 1 > cap) return -ENOSPC;
  uint32_t acc = 0;
  unsigned nbits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    acc = (acc << 8) | in[i];
    nbits += 8;
    while (nbits >= bits) {
      nbits -= bits;
      out[o++] = alpha[(acc >> nbits) & ((1u << bits) - 1)];
    }
  }
  if (nbits) out[o++] = alpha[(acc << (bits - nbits)) & ((1u << bits) - 1)];
  out[o] = 0;
  *outlen = o;
  return 0;
}

static int val_of(char c, const char *alpha, unsigned nalpha, int fold_case) {
  if (fold_case && c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
  if (c == 0) return -1;
  const char *p = memchr(alpha, c, nalpha);
  return p ? (int)(p - alpha) : -1;
}

static int dec_bits(const char *in, size_t n, const char *alpha, unsigned bits, int fold_case,
                    uint8_t *out, size_t cap, size_t *outlen) {
  if (n > MULTIBASE_MAX_INPUT) return -E2BIG;
  uint32_t acc = 0;
  unsigned nbits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int v = val_of(in[i], alpha, 1u << bits, fold_case);
    if (v < 0) return -EINVAL;
    acc = (acc << bits) | (unsigned)v;
    nbits += bits;
    if (nbits >= 8) {
      nbits -= 8;
      if (o >= cap) return -ENOSPC;
      out[o++] = (uint8_t)(acc >> nbits);
    }
    acc &= (1u << nbits) - 1;
  }
  /* Leftover bits must be fewer than one symbol and zero (canonical, no padding). */
  if (nbits >= bits || acc != 0) return -EINVAL;
  *outlen = o;
  return 0;
}

int multibase_base32_encode(const uint8_t *in, size_t n, char *out, size_t cap, size_t *outlen) {
  return enc_bits(in, n, b32_alpha, 5, out, cap, outlen);
}

int multibase_base32_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen) {
  return dec_bits(in, n, b32_alpha, 5, 1, out, cap, outlen);
}

int multibase_encode(char prefix, const uint8_t *in, size_t n, char *out, size_t cap, size_t *outlen) {
  if (cap < 2) return -ENOSPC;
  int rc;
  size_t len = 0;
  switch (prefix) {
  case 'z': rc = multibase_base58btc_encode(in, n, out + 1, cap - 1, &len); break;
  case 'b': rc = enc_bits(in, n, b32_alpha, 5, out + 1, cap - 1, &len); break;
  case 'f': rc = enc_bits(in, n, hex_alpha, 4, out + 1, cap - 1, &len); break;
  case 'u': rc = enc_bits(in, n, b64url_alpha, 6, out + 1, cap - 1, &len); break;
  default: return -EINVAL;
  }
  if (rc) return rc;
  out[0] = prefix;
  *outlen = len + 1;
  return 0;
}

int multibase_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen) {
  if (n < 1) return -EINVAL;
  const char *s = in + 1;
  size_t m = n - 1;
  switch (in[0]) {
  case 'z': return multibase_base58btc_decode(s, m, out, cap, outlen);
  case 'b': return dec_bits(s, m, b32_alpha, 5, 0, out, cap, outlen);
  case 'B': {
    for (size_t i = 0; i < m; i++)
      if (s[i] >= 'a' && s[i] <= 'z') return -EINVAL;
    return dec_bits(s, m, b32_alpha, 5, 1, out, cap, outlen);
  }
  case 'f': return dec_bits(s, m, hex_alpha, 4, 0, out, cap, outlen);
  case 'F': {
    for (size_t i = 0; i < m; i++)
      if (s[i] >= 'a' && s[i] <= 'f') return -EINVAL;
    return dec_bits(s, m, hex_alpha, 4, 1, out, cap, outlen);
  }
  case 'u': return dec_bits(s, m, b64url_alpha, 6, 0, out, cap, outlen);
  case 'm': {
    while (m > 0 && s[m - 1] == '=') m--; /* tolerate padding */
    return dec_bits(s, m, b64_alpha, 6, 0, out, cap, outlen);
  }
  default: return -EINVAL;
  }
}

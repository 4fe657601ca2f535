/* peerid.c — PeerId derivation, validation and text forms (peer-ids spec). See peerid.h. */
#include "p2p/core/peerid.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "p2p/core/multibase.h"
#include "p2p/core/varint.h"

#define IDENTITY_MAX_DIGEST 42

int peerid_from_public(const keys_public *k, peerid *out) {
  uint8_t pb[KEYS_PUBLIC_PB_MAX];
  size_t n;
  if (keys_public_encode(k, pb, sizeof pb, &n)) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (n <= IDENTITY_MAX_DIGEST) {
    out->bytes[0] = PEERID_MH_IDENTITY;
    out->bytes[1] = (uint8_t)n;
    memcpy(out->bytes + 2, pb, n);
    out->len = n + 2;
  } else {
    if (keys_init()) return -EIO;
    out->bytes[0] = PEERID_MH_SHA256;
    out->bytes[1] = 32;
    crypto_hash_sha256(out->bytes + 2, pb, n);
    out->len = 34;
  }
  return 0;
}

int peerid_from_bytes(const uint8_t *p, size_t n, peerid *out) {
  uint64_t code, len;
  size_t u1, u2;
  if (n > PEERID_MAX_BYTES) return -EINVAL;
  if (varint_decode(p, n, &code, &u1) || varint_decode(p + u1, n - u1, &len, &u2)) return -EINVAL;
  if (len != n - u1 - u2) return -EINVAL;
  const uint8_t *digest = p + u1 + u2;
  if (code == PEERID_MH_IDENTITY) {
    if (len > IDENTITY_MAX_DIGEST) return -EINVAL;
    keys_public k;
    if (keys_public_decode(digest, (size_t)len, &k)) return -EINVAL;
  } else if (code == PEERID_MH_SHA256) {
    if (len != 32) return -EINVAL;
  } else {
    return -EINVAL;
  }
  memset(out, 0, sizeof *out);
  memcpy(out->bytes, p, n);
  out->len = n;
  return 0;
}

int peerid_parse(const char *s, size_t n, peerid *out) {
  uint8_t raw[PEERID_MAX_BYTES + 16];
  size_t rn;
  if (n == 0 || n >= PEERID_STR_MAX) return -EINVAL;
  /* Bare base58btc multihash: identity ("1…", e.g. 12D3KooW) or sha256 ("Qm…"). */
  if (s[0] == '1' || (n >= 2 && s[0] == 'Q' && s[1] == 'm')) {
    if (multibase_base58btc_decode(s, n, raw, sizeof raw, &rn)) return -EINVAL;
    return peerid_from_bytes(raw, rn, out);
  }
  /* Otherwise a multibase CIDv1 with the libp2p-key codec. */
  if (multibase_decode(s, n, raw, sizeof raw, &rn)) return -EINVAL;
  uint64_t ver, codec;
  size_t u1, u2;
  if (varint_decode(raw, rn, &ver, &u1) || ver != 1) return -EINVAL;
  if (varint_decode(raw + u1, rn - u1, &codec, &u2) || codec != PEERID_CID_LIBP2P_KEY) return -EINVAL;
  return peerid_from_bytes(raw + u1 + u2, rn - u1 - u2, out);
}

int peerid_to_string(const peerid *p, char *out, size_t cap) {
  size_t n;
  return multibase_base58btc_encode(p->bytes, p->len, out, cap, &n) ? -ENOSPC : 0;
}

int peerid_to_cid_string(const peerid *p, char *out, size_t cap) {
  uint8_t raw[PEERID_MAX_BYTES + 2];
  size_t n;
  raw[0] = 0x01;
  raw[1] = PEERID_CID_LIBP2P_KEY;
  memcpy(raw + 2, p->bytes, p->len);
  return multibase_encode('b', raw, p->len + 2, out, cap, &n) ? -ENOSPC : 0;
}

bool peerid_equal(const peerid *a, const peerid *b) {
  return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

bool peerid_matches_public(const peerid *p, const keys_public *k) {
  peerid q;
  if (peerid_from_public(k, &q)) return false;
  return peerid_equal(p, &q);
}

int peerid_extract_public(const peerid *p, keys_public *out) {
  if (p->len < 2) return -EINVAL;
  if (p->bytes[0] == PEERID_MH_SHA256) return -ENOENT;
  if (p->bytes[0] != PEERID_MH_IDENTITY || p->bytes[1] != p->len - 2) return -EINVAL;
  return keys_public_decode(p->bytes + 2, p->len - 2, out) ? -EINVAL : 0;
}

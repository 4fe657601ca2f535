/* fuzz_keys.c — libFuzzer target: PublicKey/PrivateKey protobuf decoding, PeerId bytes and
 * text parsing, signature verification with hostile keys and signatures.
 * Byte 0 picks the decoder. Invariant: anything that decodes re-encodes to the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/keys.h"
#include "p2p/core/peerid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 8192) return 0;
  uint8_t mode = data[0] % 4;
  data++;
  size--;
  switch (mode) {
  case 0: {
    keys_public k;
    if (keys_public_decode(data, size, &k) != 0) return 0;
    uint8_t out[KEYS_PUBLIC_PB_MAX];
    size_t n;
    if (keys_public_encode(&k, out, sizeof out, &n) != 0 || n != size || memcmp(out, data, n) != 0) abort();
    peerid id;
    if (peerid_from_public(&k, &id) != 0) abort();
    if (!peerid_matches_public(&id, &k)) abort();
    uint8_t sig[72] = {0x30, 0x44, 0x02, 0x20};
    (void)!keys_public_verify(&k, data, size, sig, sizeof sig);
    (void)!keys_public_verify(&k, data, size, sig, 64);
    return 0;
  }
  case 1: {
    keys_private k;
    if (keys_private_decode(data, size, &k) != 0) return 0;
    uint8_t out[128];
    size_t n;
    if (keys_private_encode(&k, out, sizeof out, &n) != 0) abort();
    if (size == n && memcmp(out, data, n) != 0) abort();
    return 0;
  }
  case 2: {
    peerid id;
    if (peerid_from_bytes(data, size, &id) != 0) return 0;
    char s[PEERID_STR_MAX];
    peerid back;
    if (peerid_to_string(&id, s, sizeof s) != 0 || peerid_parse(s, strlen(s), &back) != 0 || !peerid_equal(&id, &back))
      abort();
    if (peerid_to_cid_string(&id, s, sizeof s) != 0 || peerid_parse(s, strlen(s), &back) != 0 || !peerid_equal(&id, &back))
      abort();
    keys_public k;
    (void)!peerid_extract_public(&id, &k);
    return 0;
  }
  default: {
    peerid id;
    (void)!peerid_parse((const char *)data, size, &id);
    return 0;
  }
  }
}

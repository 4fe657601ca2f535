/* kadutil.h — deterministic PeerIds for the DHT and mDNS tests. */
#ifndef PEERMCP_TESTS_P2P_KADUTIL_H
#define PEERMCP_TESTS_P2P_KADUTIL_H

#include <stdint.h>
#include <string.h>

#include "p2p/core/keys.h"
#include "p2p/core/peerid.h"

/* The Ed25519 PeerId whose seed is 32 × (seed bytes), and its PublicKey protobuf. */
static inline peerid test_peer(uint32_t seed, uint8_t *pk_pb, size_t *pk_len) {
  uint8_t s[32] = {0};
  memcpy(s, &seed, sizeof seed);
  s[31] = 0x5a;
  keys_private k;
  peerid p = {0};
  if (keys_ed25519_from_seed(s, &k) != 0) return p;
  keys_public pub;
  keys_private_public(&k, &pub);
  if (pk_pb) {
    size_t n = 0;
    if (keys_public_encode(&pub, pk_pb, KEYS_PUBLIC_PB_MAX, &n) != 0) return p;
    *pk_len = n;
  }
  if (peerid_from_public(&pub, &p) != 0) memset(&p, 0, sizeof p);
  return p;
}

#endif

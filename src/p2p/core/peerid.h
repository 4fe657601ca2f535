/* peerid.h — libp2p Peer IDs (peer-ids spec "Peer Ids", "String representation").
 *
 * A PeerId is a multihash of the deterministic PublicKey protobuf: the identity multihash
 * (0x00) when the protobuf is <= 42 bytes (Ed25519, secp256k1), sha2-256 (0x12) otherwise.
 * Text forms: base58btc of the multihash ("12D3KooW…" for Ed25519, "Qm…" for sha256), and
 * CIDv1 multibase (version 1, codec libp2p-key 0x72) in base32 lower ("bafz…"). Parsing
 * accepts both. peerid is a plain value type; no allocation; thread-safe. */
#ifndef PEERMCP_P2P_CORE_PEERID_H
#define PEERMCP_P2P_CORE_PEERID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/keys.h"

#define PEERID_MAX_BYTES 48     /* identity multihash of at most 42 bytes: 2 + 42 */
#define PEERID_STR_MAX 96       /* longest text form of either kind, plus NUL */
#define PEERID_MH_IDENTITY 0x00
#define PEERID_MH_SHA256 0x12
#define PEERID_CID_LIBP2P_KEY 0x72

typedef struct peerid {
  size_t len;
  uint8_t bytes[PEERID_MAX_BYTES]; /* the multihash */
} peerid;

/* PeerId of a public key. 0 or -EINVAL. */
int peerid_from_public(const keys_public *k, peerid *out) __attribute__((warn_unused_result));
/* From multihash bytes (as carried in /p2p/ multiaddrs): identity (<= 42-byte digest that
 * decodes as a PublicKey) or sha2-256 (32-byte digest). 0 or -EINVAL. */
int peerid_from_bytes(const uint8_t *p, size_t n, peerid *out) __attribute__((warn_unused_result));
/* Parses either text form (base58btc multihash, or multibase CIDv1 libp2p-key). 0 or -EINVAL. */
int peerid_parse(const char *s, size_t n, peerid *out) __attribute__((warn_unused_result));
/* Base58btc text (the canonical form). out must hold PEERID_STR_MAX. 0 or -ENOSPC. */
int peerid_to_string(const peerid *p, char *out, size_t cap) __attribute__((warn_unused_result));
/* CIDv1 libp2p-key in multibase base32 lower ("bafz…"). 0 or -ENOSPC. */
int peerid_to_cid_string(const peerid *p, char *out, size_t cap) __attribute__((warn_unused_result));

bool peerid_equal(const peerid *a, const peerid *b);
/* True if k hashes to p. */
bool peerid_matches_public(const peerid *p, const keys_public *k);
/* Public key inlined in an identity-multihash PeerId. 0, -ENOENT (sha256 PeerId), -EINVAL. */
int peerid_extract_public(const peerid *p, keys_public *out) __attribute__((warn_unused_result));

#endif

/* envelope.h — libp2p signed envelopes (libp2p/specs RFC/0002-signed-envelopes.md) and the
 * peer records carried in them (RFC/0003-routing-records.md, as js-libp2p and go-libp2p sign
 * them: domain "libp2p-peer-record", payload type 0x0301).
 *
 * An envelope is a protobuf {public_key, payload_type, payload, signature}; the signature
 * covers varint(len(domain)) ‖ domain ‖ varint(len(payload_type)) ‖ payload_type ‖
 * varint(len(payload)) ‖ payload, made with the signer's identity key under the peer-ids
 * spec's rules. The domain is never on the wire: a signature made for one purpose (a peer
 * record, a relay voucher) does not verify for another.
 *
 * Ceilings (checked before allocating): an envelope ENVELOPE_MAX_BYTES, a domain
 * ENVELOPE_MAX_DOMAIN, a peer record PEER_RECORD_MAX_ADDRS addresses. Decoding is strict about
 * what matters (every field present, the key well-formed, the signature valid) and ignores
 * unknown fields, as protobuf readers do.
 *
 * Ownership: envelope_open / peer_record_decode / peer_record_open fill structs with malloc'd
 * copies, released by envelope_clear / peer_record_clear (also safe on a zeroed struct and
 * after a failed call). Pure functions of their inputs; callable from any thread. */
#ifndef PEERMCP_P2P_CORE_ENVELOPE_H
#define PEERMCP_P2P_CORE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/keys.h"
#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"
#include "util/buf.h"

#define ENVELOPE_MAX_BYTES (64u * 1024u)
#define ENVELOPE_MAX_DOMAIN 256

typedef struct envelope {
  keys_public signer;       /* the key that signed (from public_key) */
  peerid signer_id;         /* its PeerId */
  uint8_t *payload_type;    /* malloc'd (never NULL after a successful open) */
  size_t payload_type_len;
  uint8_t *payload;         /* malloc'd (never NULL after a successful open) */
  size_t payload_len;
} envelope;

/* Signs payload for `domain` with our identity key and appends the encoded Envelope to out.
 * 0, -EINVAL (domain empty or over the ceiling), -E2BIG (over ENVELOPE_MAX_BYTES), -ENOMEM,
 * -ENOTSUP (a key type we cannot sign with). */
int envelope_seal(const keys_private *k, const char *domain, const uint8_t *payload_type, size_t payload_type_len,
                  const uint8_t *payload, size_t payload_len, buf *out) __attribute__((warn_unused_result));

/* Decodes an Envelope and verifies its signature for `domain`; when want_type is not NULL the
 * payload type must equal it. 0; -E2BIG (over the ceiling); -EINVAL (malformed: bad protobuf,
 * a field missing, an unusable key); -EBADMSG (the signature does not verify: tampered, or
 * made for another domain); -EPROTOTYPE (another payload type); -ENOTSUP (a key type we
 * cannot verify); -ENOMEM. */
int envelope_open(const uint8_t *p, size_t n, const char *domain, const uint8_t *want_type, size_t want_type_len,
                  envelope *out) __attribute__((warn_unused_result));
void envelope_clear(envelope *e);

/* ---- peer records ---- */

#define PEER_RECORD_DOMAIN "libp2p-peer-record"
#define PEER_RECORD_MAX_ADDRS 64
extern const uint8_t PEER_RECORD_PAYLOAD_TYPE[2]; /* multicodec libp2p-peer-record, 0x0301 */

typedef struct peer_record {
  peerid id;
  uint64_t seq;             /* increases with every new record of a peer */
  multiaddr *addrs;         /* malloc'd array (NULL when none) */
  size_t n_addrs;
  size_t n_skipped;         /* decode: addresses that were not valid multiaddrs */
} peer_record;

/* The PeerRecord protobuf alone (the envelope's payload). encode appends to out: 0, -E2BIG
 * (too many addresses), -ENOMEM. decode: 0, -EINVAL (malformed, no or bad peer_id), -E2BIG,
 * -ENOMEM; invalid addresses are skipped and counted. */
int peer_record_encode(const peer_record *r, buf *out) __attribute__((warn_unused_result));
int peer_record_decode(const uint8_t *p, size_t n, peer_record *out) __attribute__((warn_unused_result));

/* Our signed peer record: {our PeerId, seq, addrs} sealed with k. 0 or as above. */
int peer_record_seal(const keys_private *k, uint64_t seq, const multiaddr *addrs, size_t n_addrs, buf *out)
    __attribute__((warn_unused_result));
/* Opens a signed peer record: envelope_open with the peer-record domain and type, then the
 * record's peer_id must be the signer's (-EACCES otherwise). */
int peer_record_open(const uint8_t *p, size_t n, peer_record *out) __attribute__((warn_unused_result));
void peer_record_clear(peer_record *r);

#endif

/* kad_table.h — the Kademlia keyspace and routing table (libp2p/specs kad-dht/README.md
 * "Distance", "Kademlia routing table"). Sans-I/O: the caller supplies the time.
 *
 * Keys: the DHT key of any byte string is its SHA-256; the distance between two keys is their
 * XOR, compared as a 256-bit big-endian number. A peer's key is the SHA-256 of its PeerId
 * multihash bytes.
 *
 * Table: one bucket per common-prefix length with our own key (0..255), each holding at most
 * k (KAD_K = 20) peers, least recently seen first. Adding a peer to a full bucket replaces the
 * least recently seen peer if that one has failed since it was last seen; otherwise the add
 * is refused with -ENOSPC and that peer is named, so the caller can check it (ping) and
 * remove it if it is gone (the Kademlia paper's policy: long-lived peers are kept). Each entry
 * remembers up to KAD_ENTRY_MAX_ADDRS addresses (newest first) for FIND_NODE answers. Who may
 * enter the table (only DHT servers, per the spec) is the caller's decision.
 *
 * Ownership: kad_table_new() allocates, kad_table_free() releases; entry pointers stay valid
 * until that entry is removed or replaced. Not thread-safe (one owner). */
#ifndef PEERMCP_P2P_PROTO_KAD_TABLE_H
#define PEERMCP_P2P_PROTO_KAD_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"

#define KAD_K 20
#define KAD_KEY_BYTES 32
#define KAD_BUCKETS 256
#define KAD_ENTRY_MAX_ADDRS 4

typedef struct kad_key {
  uint8_t b[KAD_KEY_BYTES];
} kad_key;

/* SHA-256 of any bytes / of a PeerId's multihash bytes. */
void kad_key_of(const uint8_t *bytes, size_t n, kad_key *out);
void kad_key_of_peer(const peerid *p, kad_key *out);
/* Number of leading bits a and b share (256 when equal). */
unsigned kad_key_cpl(const kad_key *a, const kad_key *b);
/* <0 when a is closer to target than b, >0 when farther, 0 when equally far (a == b). */
int kad_key_cmp_distance(const kad_key *target, const kad_key *a, const kad_key *b);
/* Bytes whose key shares exactly `cpl` leading bits with `self` (cpl ≤ 15, for bucket refresh;
 * found by trying random 0x12 0x20 ‖ 32-byte strings: about 2^(cpl+1) hashes). out gets 34
 * bytes (a sha2-256 multihash, so peers treat it as a PeerId). 0 or -EINVAL. */
int kad_key_random_in_bucket(const kad_key *self, unsigned cpl, uint8_t out[34])
    __attribute__((warn_unused_result));

typedef struct kad_entry {
  peerid id;
  kad_key key;
  multiaddr addrs[KAD_ENTRY_MAX_ADDRS];
  size_t n_addrs;
  uint64_t added_ms;
  uint64_t last_seen_ms;
  uint32_t failures;           /* since last seen */
} kad_entry;

typedef struct kad_table kad_table;

/* k = 0 takes KAD_K. 0, -EINVAL, -ENOMEM. */
int kad_table_new(const peerid *self, size_t k, kad_table **out) __attribute__((warn_unused_result));
void kad_table_free(kad_table *t);

const kad_key *kad_table_self_key(const kad_table *t);

/* Adds or refreshes a peer seen at now_ms, merging addrs (may be NULL/0). Returns 1 added,
 * 0 already present (last seen, failures and addresses updated; moved to the tail),
 * -ENOSPC bucket full (*oldest, if given, is the least recently seen entry of that bucket),
 * -EINVAL (our own id), -ENOMEM. */
int kad_table_add(kad_table *t, const peerid *id, const multiaddr *addrs, size_t n_addrs, uint64_t now_ms,
                  const kad_entry **oldest) __attribute__((warn_unused_result));
/* 0 removed, -ENOENT. */
int kad_table_remove(kad_table *t, const peerid *id);
kad_entry *kad_table_find(kad_table *t, const peerid *id);
/* Records a failed contact; returns the failure count (0 if unknown). */
uint32_t kad_table_failed(kad_table *t, const peerid *id);

/* The n entries closest to target, closest first, skipping `exclude` (may be NULL) and
 * entries without an address when with_addrs. Returns how many were written. */
size_t kad_table_closest(const kad_table *t, const kad_key *target, size_t n, const peerid *exclude,
                         bool with_addrs, const kad_entry **out);

size_t kad_table_size(const kad_table *t);
size_t kad_table_bucket_size(const kad_table *t, unsigned cpl);
/* i-th entry in bucket order, for iteration (0 <= i < size). */
const kad_entry *kad_table_at(const kad_table *t, size_t i);

#endif

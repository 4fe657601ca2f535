/* kad_store.h — what a DHT server keeps for others: value records (GET_VALUE/PUT_VALUE) and
 * provider records (ADD_PROVIDER/GET_PROVIDERS), with expiry and bounds (libp2p/specs
 * kad-dht/README.md "Value storage", "Content provider advertisement"). Sans-I/O: the caller
 * passes the time (monotonic ms) and validates records before storing (kad_record.h).
 *
 * Bounds (kad_store_config; zero fields take the defaults):
 *   records:   max_records (1024) in all, max_record_bytes (4 MiB) of keys+values in all,
 *              max_records_per_peer (64) stored by one peer; one record per key (a new put
 *              replaces it); each lives record_ttl_ms (48 h) after it was stored.
 *   providers: max_providers (8192) entries in all, max_providers_per_key (256),
 *              max_keys_per_provider (256); an entry lives provider_ttl_ms (48 h) after its
 *              last ADD_PROVIDER, its addresses provider_addr_ttl_ms (30 min, after which it
 *              is answered with its PeerId only, as the spec recommends).
 * A full store refuses (-ENOSPC / -EDQUOT) after first dropping what has expired; it never
 * evicts live entries to make room, so a flood cannot push out records that were there first.
 *
 * Keys are opaque bytes (≤ KAD_MAX_KEY); values ≤ KAD_MAX_VALUE. Lookups are linear scans
 * over at most the bounds above.
 *
 * Ownership: kad_store_new() allocates, kad_store_free() releases; the store copies what it
 * keeps; returned pointers stay valid until the next call that modifies the store. Not
 * thread-safe (one owner). */
#ifndef PEERMCP_P2P_PROTO_KAD_STORE_H
#define PEERMCP_P2P_PROTO_KAD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"

#define KAD_STORE_MAX_PROVIDER_ADDRS 4

typedef struct kad_store_config {
  size_t max_records;
  size_t max_record_bytes;
  size_t max_records_per_peer;
  uint64_t record_ttl_ms;
  size_t max_providers;
  size_t max_providers_per_key;
  size_t max_keys_per_provider;
  uint64_t provider_ttl_ms;
  uint64_t provider_addr_ttl_ms;
} kad_store_config;

typedef struct kad_stored_record {
  uint8_t *key;
  size_t key_len;
  uint8_t *value;
  size_t value_len;
  peerid from;              /* who stored it (ourselves for our own puts) */
  uint64_t stored_ms;
  double stored_wall_s;     /* for the Record's timeReceived */
} kad_stored_record;

typedef struct kad_provider {
  peerid id;
  multiaddr addrs[KAD_STORE_MAX_PROVIDER_ADDRS];
  size_t n_addrs;           /* 0 once the addresses are older than provider_addr_ttl_ms */
  uint64_t added_ms;        /* last ADD_PROVIDER */
  uint64_t expires_ms;
} kad_provider;

typedef struct kad_store_stats {
  size_t records, record_bytes, providers, provider_keys;
  uint64_t refused_full, refused_quota, expired;
} kad_store_stats;

typedef struct kad_store kad_store;

int kad_store_new(const kad_store_config *cfg, kad_store **out) __attribute__((warn_unused_result));
void kad_store_free(kad_store *s);

/* Stores (or replaces) the record for key. 0, -E2BIG (key or value over the limits),
 * -ENOSPC (store full), -EDQUOT (that peer's quota), -ENOMEM. */
int kad_store_put_record(kad_store *s, const uint8_t *key, size_t key_len, const uint8_t *value,
                         size_t value_len, const peerid *from, uint64_t now_ms, double now_wall_s)
    __attribute__((warn_unused_result));
/* The live record for key, or NULL. */
const kad_stored_record *kad_store_get_record(kad_store *s, const uint8_t *key, size_t key_len, uint64_t now_ms);
int kad_store_remove_record(kad_store *s, const uint8_t *key, size_t key_len);

/* Adds or refreshes `provider` for key with its addresses (may be 0). 0, -E2BIG, -ENOSPC,
 * -EDQUOT (too many providers for this key, or keys for this provider), -ENOMEM. */
int kad_store_add_provider(kad_store *s, const uint8_t *key, size_t key_len, const peerid *provider,
                           const multiaddr *addrs, size_t n_addrs, uint64_t now_ms)
    __attribute__((warn_unused_result));
/* Up to max live providers of key, most recently added first. Returns how many. */
size_t kad_store_get_providers(kad_store *s, const uint8_t *key, size_t key_len, uint64_t now_ms,
                               kad_provider *out, size_t max);

/* Drops everything expired at now_ms. */
void kad_store_expire(kad_store *s, uint64_t now_ms);
void kad_store_get_stats(const kad_store *s, kad_store_stats *out);

#endif

/* kad_record.h — DHT value-record validation and selection (libp2p/specs kad-dht/README.md
 * "Entry validation"), and the rendezvous records of the Python MCP++ service
 * (p2p_tasks_spec.md §1.8). Pure functions; thread-safe.
 *
 * A key `/<namespace>/<rest>` is validated by its namespace:
 *   - `pk`: `/pk/<PeerId multihash>` → the value is a PublicKey protobuf that hashes to that
 *     PeerId. Select: the first (all valid ones are equal).
 *   - `ipfs-accelerate`: `/ipfs-accelerate/task-queue/ns/<ns>` (ns: 1..KAD_NS_MAX bytes, no
 *     '/') → the value is the Python service's unsigned JSON object {"peer_id": <PeerId>,
 *     "multiaddr": <multiaddr text, whose /p2p/ if any is that PeerId>, "ts": <number>}, at
 *     most KAD_RENDEZVOUS_MAX_VALUE bytes. On PUT_VALUE the record's peer_id must be the
 *     peer that sent it (the records carry no signature: this shows who stored the record,
 *     not that the addresses are true). Select: the greatest ts (the first on a tie).
 *   - anything else: no validator (-ENOTSUP), as js-libp2p and go-libp2p refuse such keys.
 *
 * Rendezvous keys: providers are announced under the sha2-256 multihash of the namespace
 * (0x12 0x20 ‖ sha256(ns): a key js and go DHT servers accept, being a CIDv0) and, for Python
 * peers, looked up and answered under the raw namespace bytes too. */
#ifndef PEERMCP_P2P_PROTO_KAD_RECORD_H
#define PEERMCP_P2P_PROTO_KAD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"

#define KAD_RENDEZVOUS_PREFIX "/ipfs-accelerate/task-queue/ns/"
#define KAD_RENDEZVOUS_DEFAULT_NS "ipfs-accelerate-task-queue"
#define KAD_NS_MAX 200
#define KAD_RENDEZVOUS_MAX_VALUE 4096
#define KAD_PROVIDER_KEY_LEN 34

/* Validates value for key. `from` is the peer that sent a PUT_VALUE (NULL when checking a
 * record fetched with GET_VALUE). 0 valid, -ENOTSUP no validator for the namespace, -EINVAL
 * invalid, -EPERM the record names another peer than `from`, -ENOMEM (the JSON value could not
 * be parsed for lack of memory: neither valid nor invalid). */
int kad_record_validate(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                        const peerid *from) __attribute__((warn_unused_result));
/* Of two valid values for key, 0 if a is better or as good, 1 if b is better (a value that
 * cannot be parsed, also for lack of memory, is worse than one that can; b never wins then). */
int kad_record_select(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len, const uint8_t *b,
                      size_t b_len);

/* "/ipfs-accelerate/task-queue/ns/<ns>" into out. Returns its length, or -EINVAL (bad ns),
 * -ENOSPC. */
int kad_rendezvous_record_key(const char *ns, char *out, size_t cap) __attribute__((warn_unused_result));
/* 0x12 0x20 ‖ sha256(ns). */
void kad_rendezvous_provider_key(const char *ns, uint8_t out[KAD_PROVIDER_KEY_LEN]);
/* True if ns is a usable namespace (1..KAD_NS_MAX bytes, printable, no '/'). */
bool kad_rendezvous_ns_valid(const char *ns);

typedef struct kad_rendezvous_record {
  peerid id;
  char peer_id[PEERID_STR_MAX];
  multiaddr addr;            /* as given (may carry /p2p/) */
  double ts;
} kad_rendezvous_record;

/* The JSON value as the Python service writes it: {"peer_id": "…", "multiaddr": "…", "ts": …}
 * (Python's default ", " / ": " separators). Returns its length or -ENOSPC / -EINVAL. */
int kad_rendezvous_record_make(const char *peer_id, const char *multiaddr_text, double ts, char *out, size_t cap)
    __attribute__((warn_unused_result));
/* Parses and checks a value (the rules above, without the storer check). 0, -EINVAL, or
 * -ENOMEM (jansson ran short of memory; the value may well be valid). */
int kad_rendezvous_record_parse(const uint8_t *value, size_t len, kad_rendezvous_record *out)
    __attribute__((warn_unused_result));

#endif

/* peerstore.h — what the host knows about other peers: addresses, protocols, agent and
 * protocol versions, the public key, the address they observed for us, and last_seen. Bounded: at most PEERSTORE_MAX_PEERS entries (the least recently seen
 * peer that is not connected is evicted), PEERSTORE_MAX_ADDRS addresses and
 * PEERSTORE_MAX_PROTOCOLS protocols per peer, strings capped at PEERSTORE_MAX_STR bytes.
 *
 * Snapshot file `<state-dir>/peers`: JSON
 *   {"version":1,"peers":[{"peer_id":…,"addrs":[…],"protocols":[…],"agent_version":…,
 *     "protocol_version":…,"public_key":"<base64 PublicKey protobuf>","last_seen":<float s>}]}
 * peerstore_snapshot() serialises on the loop thread (cheap); peerstore_write_file() does the
 * blocking write (temp file + fsync + rename) and is meant for a worker thread or shutdown.
 *
 * Ownership: the store owns every entry and string; entry pointers stay valid until the entry
 * is evicted or the store freed (never during a call that does not add peers). Not
 * thread-safe: the loop thread owns it. */
#ifndef PEERMCP_P2P_HOST_PEERSTORE_H
#define PEERMCP_P2P_HOST_PEERSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PEERSTORE_MAX_PEERS 1024
#define PEERSTORE_MAX_ADDRS 16
#define PEERSTORE_MAX_PROTOCOLS 128
#define PEERSTORE_MAX_STR 512
#define PEERSTORE_FILE_MAX (8u << 20) /* ceiling on the snapshot file read at start */
#define PEERSTORE_ID_MAX 96

typedef struct peerstore_entry {
  char peer_id[PEERSTORE_ID_MAX];
  char *addrs[PEERSTORE_MAX_ADDRS];
  size_t n_addrs;
  char *protocols[PEERSTORE_MAX_PROTOCOLS];
  size_t n_protocols;
  char *agent_version;
  char *protocol_version;
  char *observed_addr;      /* our address as this peer saw it */
  uint8_t *public_key;      /* PublicKey protobuf bytes */
  size_t public_key_len;
  bool public_key_matches;  /* public_key hashes to peer_id */
  double last_seen;         /* wall-clock seconds */
  uint32_t connections;     /* live connections (not persisted) */
} peerstore_entry;

typedef struct peerstore peerstore;

int peerstore_new(peerstore **out) __attribute__((warn_unused_result));
void peerstore_free(peerstore *ps);

/* Lookup by text PeerId; NULL if unknown. */
peerstore_entry *peerstore_get(peerstore *ps, const char *peer_id);
/* Lookup or create (evicting if full). NULL on ENOMEM or if every entry is connected. */
peerstore_entry *peerstore_upsert(peerstore *ps, const char *peer_id);
size_t peerstore_count(const peerstore *ps);
/* i-th entry (0 <= i < count) for iteration. */
peerstore_entry *peerstore_at(peerstore *ps, size_t i);

/* Adds an address if new (the oldest is dropped when full). 0, -EINVAL, -ENOMEM. */
int peerstore_add_addr(peerstore_entry *e, const char *addr) __attribute__((warn_unused_result));
/* Replaces the protocol list (extra ones beyond the cap are dropped). 0 or -ENOMEM. */
int peerstore_set_protocols(peerstore_entry *e, const char *const *protos, size_t n)
    __attribute__((warn_unused_result));
/* Replaces one string field (*field is one of the entry's char* members). 0 or -ENOMEM. */
int peerstore_set_str(char **field, const char *val, size_t len) __attribute__((warn_unused_result));
int peerstore_set_public_key(peerstore_entry *e, const uint8_t *pb, size_t len, bool matches)
    __attribute__((warn_unused_result));
bool peerstore_has_protocol(const peerstore_entry *e, const char *proto);

/* Serialises the store (NUL-terminated JSON, caller frees). NULL on ENOMEM. */
char *peerstore_snapshot(const peerstore *ps);
/* Writes a snapshot string atomically to path (blocking). 0 or negative errno. */
int peerstore_write_file(const char *path, const char *json) __attribute__((warn_unused_result));
/* Loads entries from a snapshot file (blocking; missing file = 0). Bad entries are skipped;
 * a malformed file is -EINVAL. */
int peerstore_load(peerstore *ps, const char *path) __attribute__((warn_unused_result));

#endif

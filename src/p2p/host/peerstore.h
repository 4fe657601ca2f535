/* peerstore.h — what the host knows about other peers (the peer table of issue 15 §6):
 * addresses with the time each was last heard of, protocols, agent and protocol versions, the
 * public key, the address they observed for us, where we heard of them (sources), first_seen,
 * last_seen (last direct contact) and the last measured latency. Bounded: at most
 * PEERSTORE_MAX_PEERS entries (the peer that is not connected and was least recently seen or
 * heard of is evicted), PEERSTORE_MAX_ADDRS addresses (oldest dropped) and
 * PEERSTORE_MAX_PROTOCOLS protocols per peer, strings capped at PEERSTORE_MAX_STR bytes;
 * peerstore_expire_addrs() forgets addresses not heard of for a while.
 *
 * Snapshot file `<state-dir>/peers`: JSON
 *   {"version":1,"peers":[{"peer_id":…,"addrs":[…],"addr_seen":[<float s>…],"protocols":[…],
 *     "agent_version":…,"protocol_version":…,"public_key":"<base64 PublicKey protobuf>",
 *     "sources":["mdns",…],"first_seen":<float s>,"last_seen":<float s>,"latency_ms":<float>,
 *     "record_seq":"<decimal>"}]}
 * (the fields after "protocols" other than public_key and last_seen may be absent in older
 * files).
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

/* Where we heard of a peer (a bit set; p2p/host/peers.h gives them the P2P_SRC_ names). */
enum {
  PEERSTORE_SRC_MANUAL = 1u << 0,     /* named by the user (--peer, config, a dial by address) */
  PEERSTORE_SRC_IDENTIFY = 1u << 1,   /* connected and identified */
  PEERSTORE_SRC_MDNS = 1u << 2,
  PEERSTORE_SRC_DHT = 1u << 3,
  PEERSTORE_SRC_BOOTSTRAP = 1u << 4,
  PEERSTORE_SRC_RENDEZVOUS = 1u << 5,
};
#define PEERSTORE_SRC_COUNT 6
/* "manual", "identify", "mdns", "dht", "bootstrap", "rendezvous"; NULL for other bits. */
const char *peerstore_source_name(unsigned bit);
/* Name → bit. 0 or -EINVAL. */
int peerstore_source_parse(const char *name, unsigned *bit) __attribute__((warn_unused_result));

typedef struct peerstore_entry {
  char peer_id[PEERSTORE_ID_MAX];
  char *addrs[PEERSTORE_MAX_ADDRS];
  double addr_seen[PEERSTORE_MAX_ADDRS]; /* wall-clock s each address was last heard of */
  size_t n_addrs;
  char *protocols[PEERSTORE_MAX_PROTOCOLS];
  size_t n_protocols;
  char *agent_version;
  char *protocol_version;
  char *observed_addr;      /* our address as this peer saw it */
  uint8_t *public_key;      /* PublicKey protobuf bytes */
  size_t public_key_len;
  bool public_key_matches;  /* public_key hashes to peer_id */
  double last_seen;         /* wall-clock seconds of the last direct contact (0 = never) */
  double first_seen;        /* wall-clock seconds we first heard of it */
  unsigned sources;         /* PEERSTORE_SRC_* */
  double latency_ms;        /* last measured round trip (ping); 0 = unknown */
  uint32_t connections;     /* live connections (not persisted) */
  uint64_t record_seq;      /* highest seq of the peer's signed peer records we accepted (0 =
                               none); persisted as a decimal string (it may not fit a double) */
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

/* Adds an address if new (the oldest is dropped when full) and marks it heard of now (also when
 * it was known). 0, -EINVAL, -ENOMEM. */
int peerstore_add_addr(peerstore_entry *e, const char *addr) __attribute__((warn_unused_result));
/* Replaces the protocol list (extra ones beyond the cap are dropped). 0 or -ENOMEM. */
int peerstore_set_protocols(peerstore_entry *e, const char *const *protos, size_t n)
    __attribute__((warn_unused_result));
/* Replaces one string field (*field is one of the entry's char* members). 0 or -ENOMEM. */
int peerstore_set_str(char **field, const char *val, size_t len) __attribute__((warn_unused_result));
int peerstore_set_public_key(peerstore_entry *e, const uint8_t *pb, size_t len, bool matches)
    __attribute__((warn_unused_result));
bool peerstore_has_protocol(const peerstore_entry *e, const char *proto);
/* A signed peer record of this peer with sequence number seq arrived (already verified):
 * 1 newer than any before (remembered), 0 the same seq again, -ESTALE older than one we had
 * (a replay, or a peer whose clock went back): the caller ignores it. */
int peerstore_note_record_seq(peerstore_entry *e, uint64_t seq) __attribute__((warn_unused_result));
/* Drops the addresses of peers without a live connection that were last heard of before
 * now - max_age_s. Returns how many were dropped. */
size_t peerstore_expire_addrs(peerstore *ps, double now, double max_age_s);

/* Serialises the store (NUL-terminated JSON, caller frees). NULL on ENOMEM. */
char *peerstore_snapshot(const peerstore *ps);
/* Writes a snapshot string atomically to path (blocking). 0 or negative errno. */
int peerstore_write_file(const char *path, const char *json) __attribute__((warn_unused_result));
/* Loads entries from a snapshot file (blocking; missing file = 0). Bad entries are skipped;
 * a malformed file is -EINVAL. */
int peerstore_load(peerstore *ps, const char *path) __attribute__((warn_unused_result));

#endif

/* peers.h — the peer table (issue 15 §6) as the rest of the program sees it: what discovery
 * tells the host about other peers (addresses learned from the DHT, mDNS, bootstrap lists,
 * rendezvous records, the user), where each peer was heard of, the last measured latency, and a
 * filtered listing. It all lives in the peerstore (peerstore.h: bounded, LRU, persisted in the
 * `peers` snapshot), so p2p_host_open_stream() can dial a peer by PeerId alone (it tries the
 * stored addresses in turn).
 *
 * Threads: loop thread only, like the rest of the host. Pointers in listed rows stay valid
 * until the peer table next changes (do not keep them across loop turns). */
#ifndef PEERMCP_P2P_HOST_PEERS_H
#define PEERMCP_P2P_HOST_PEERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "p2p/host/host.h"
#include "p2p/host/peerstore.h"

/* Where we heard of a peer (a bit set). */
enum {
  P2P_SRC_MANUAL = PEERSTORE_SRC_MANUAL,
  P2P_SRC_IDENTIFY = PEERSTORE_SRC_IDENTIFY,
  P2P_SRC_MDNS = PEERSTORE_SRC_MDNS,
  P2P_SRC_DHT = PEERSTORE_SRC_DHT,
  P2P_SRC_BOOTSTRAP = PEERSTORE_SRC_BOOTSTRAP,
  P2P_SRC_RENDEZVOUS = PEERSTORE_SRC_RENDEZVOUS,
};

/* Adds addresses (multiaddr text; a /p2p/ suffix must name peer_id and is removed) for
 * peer_id, heard of from `source` (the source is recorded even when n is 0). Addresses that do
 * not parse or name another peer are skipped. Returns how many were new, -EINVAL (bad PeerId,
 * or our own), -ENOMEM / -ENOSPC (peerstore full of connected peers). */
int p2p_host_add_peer_addrs(p2p_host *h, const char *peer_id, const char *const *addrs, size_t n,
                            unsigned source) __attribute__((warn_unused_result));

/* Reads a peer-table snapshot file (another process's `peers`, e.g. the serving node's) into
 * the host's peerstore without making this host write it. Blocking (a file read); 0, or what
 * peerstore_load returns (a missing file is 0). */
int p2p_host_import_peer_table(p2p_host *h, const char *path) __attribute__((warn_unused_result));

/* Records a measured round trip (ms) for a known peer. 0 or -ENOENT. */
int p2p_host_record_latency(p2p_host *h, const char *peer_id, double rtt_ms);

/* Forgets addresses of unconnected peers not heard of for max_age_s seconds. Returns how many. */
size_t p2p_host_expire_peer_addrs(p2p_host *h, double max_age_s);

typedef struct p2p_peer_filter {
  bool alive_only;         /* connected, or last contact within alive_window_s */
  double alive_window_s;   /* 0 = 300 (the Python …_PEER_TIMEOUT_S default) */
  unsigned sources;        /* any of these P2P_SRC_* bits; 0 = every peer */
  size_t limit;            /* 0 = no limit (beyond `max`) */
} p2p_peer_filter;

typedef struct p2p_peer_row {
  const char *peer_id;
  const char *const *addrs; /* without /p2p/ */
  size_t n_addrs;
  unsigned sources;
  double first_seen, last_seen; /* wall-clock s; last_seen 0 = never contacted */
  double latency_ms;            /* 0 = unknown */
  const char *agent_version;    /* NULL = unknown */
  const char *const *protocols;
  size_t n_protocols;
  bool connected;
} p2p_peer_row;

/* Rows matching f (NULL = all), most recently seen or heard of first, at most max (and
 * f->limit). Returns how many were written. */
size_t p2p_host_list_peers(p2p_host *h, const p2p_peer_filter *f, p2p_peer_row *out, size_t max);
/* The same over a peerstore of one's own (e.g. a snapshot loaded by `peermcp peers`); `now` in
 * wall-clock seconds. */
size_t p2p_peers_list(peerstore *ps, const p2p_peer_filter *f, double now, p2p_peer_row *out, size_t max);
/* Rows as JSON objects: {"peer_id", "addrs", "sources", "first_seen", "last_seen", "connected",
 * "latency_ms"?, "agent"?, "protocols"}; NULL on ENOMEM. */
json_t *p2p_peer_row_json(const p2p_peer_row *r);

#endif

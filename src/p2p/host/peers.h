/* peers.h — what discovery tells the host about other peers: addresses learned from the DHT,
 * mDNS, bootstrap lists and rendezvous records go into the peerstore, so that
 * p2p_host_open_stream() can dial those peers by PeerId alone (it tries the stored addresses
 * in turn).
 *
 * Threads: loop thread only, like the rest of the host. */
#ifndef PEERMCP_P2P_HOST_PEERS_H
#define PEERMCP_P2P_HOST_PEERS_H

#include <stddef.h>

#include "p2p/host/host.h"

/* Where we heard of a peer (a bit set; issue 15 §6). */
enum {
  P2P_SRC_MANUAL = 1u << 0,
  P2P_SRC_IDENTIFY = 1u << 1,
  P2P_SRC_MDNS = 1u << 2,
  P2P_SRC_DHT = 1u << 3,
  P2P_SRC_BOOTSTRAP = 1u << 4,
  P2P_SRC_RENDEZVOUS = 1u << 5,
};

/* Adds addresses (multiaddr text; a /p2p/ suffix must name peer_id and is removed) for
 * peer_id, heard of from `source`. Addresses that do not parse or name another peer are
 * skipped. Returns how many were new, -EINVAL (bad PeerId, or our own), -ENOMEM / -ENOSPC
 * (peerstore full of connected peers). */
int p2p_host_add_peer_addrs(p2p_host *h, const char *peer_id, const char *const *addrs, size_t n,
                            unsigned source) __attribute__((warn_unused_result));

#endif

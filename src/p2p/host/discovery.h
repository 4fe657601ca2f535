/* discovery.h — everything that finds peers, as one part of the host (issue 15): mDNS
 * (svc_mdns), the Kademlia DHT (svc_kad), the rendezvous records (svc_rendezvous), bootstrap
 * (with /dnsaddr expansion on a worker thread) and the upkeep of the peer table (peers.h:
 * addresses not heard of for peer_addr_ttl_s forgotten every minute). Each part is on only
 * when its config says so; with everything off the node sends nothing.
 *
 * In a node it is one protocol service of the host (p2p_discovery_add_to_host): the DHT
 * handler in server mode, the identify and listen-address events, and its stop at host close
 * (mDNS goodbye, DHT streams reset) before the connections go. Standalone (tests, benchmarks)
 * it is started and closed by hand and fed events with p2p_discovery_peer_identified() and
 * p2p_discovery_listen_addrs_changed().
 *
 * DHT mode from reachability (dht_follow_reachability, attached to a host): AutoNAT's verdict
 * (REACHABILITY_CHANGED) switches the DHT between server mode (public: the protocol handler is
 * registered, so identify offers it) and client mode (private: removed, so peers do not put us
 * in their routing tables; we still look things up); unknown keeps the mode we have, which
 * starts as kad_cfg.server.
 *
 * Resolving a bare PeerId (p2p_discovery_resolve): at once when the peer table has an address
 * for it; else mDNS is asked now (when on) and a DHT lookup runs (when on), and the first to
 * find an address wins (its addresses are then in the peer table: dial by PeerId). With
 * neither on, or nothing found within the timeout: -ENOENT / -ETIMEDOUT. A lookup that finds
 * the DHT's routing table empty while bootstrap peers are configured (every bootstrap dial
 * failed) dials them again first, with back-off (0.5 s doubling to 8 s), then looks up.
 *
 * Threads: loop thread only (the /dnsaddr lookups run on libuv's worker pool). Ownership:
 * p2p_discovery_new() allocates; p2p_discovery_close() closes every part and frees after
 * `done`; callbacks of unfinished calls get -ECANCELED first. */
#ifndef PEERMCP_P2P_HOST_DISCOVERY_H
#define PEERMCP_P2P_HOST_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "p2p/host/svc_kad.h"
#include "p2p/host/svc_mdns.h"
#include "p2p/host/svc_rendezvous.h"

typedef struct p2p_discovery p2p_discovery;

typedef struct p2p_discovery_config {
  bool mdns;
  p2p_mdns_config mdns_cfg;
  bool dht;
  p2p_kad_config kad_cfg;
  bool dht_follow_reachability;    /* server mode only while AutoNAT says public (see above) */
  bool rendezvous_publish;         /* with the DHT: publish ourselves under the namespace */
  p2p_rendezvous_config rv_cfg;    /* ns, republish interval (publish is set from the above) */
  const char *const *bootstrap;    /* multiaddrs with /p2p/ (or /dnsaddr/…); copied */
  size_t n_bootstrap;
  bool dnsaddr_resolve;            /* expand /dnsaddr entries (TXT lookups) */
  double peer_addr_ttl_s;          /* 0 = 86400 */
} p2p_discovery_config;

int p2p_discovery_new(p2p_host *h, uv_loop_t *loop, const p2p_discovery_config *cfg, p2p_discovery **out)
    __attribute__((warn_unused_result));
/* Starts every part that is on (mDNS sockets, the DHT, bootstrap, publishing). A part that
 * cannot start is logged and left off (e.g. no multicast interface); -errno only for the DHT. */
int p2p_discovery_start(p2p_discovery *d) __attribute__((warn_unused_result));
void p2p_discovery_close(p2p_discovery *d, void (*done)(void *ud), void *ud);

/* Adds d to its host as one service and starts it (p2p_host_add_service). From then on the
 * host owns it: p2p_host_close stops and frees it (do not call p2p_discovery_close). On error
 * d is still the caller's (close it). */
int p2p_discovery_add_to_host(p2p_discovery *d) __attribute__((warn_unused_result));

void p2p_discovery_peer_identified(p2p_discovery *d, const char *peer_id);
void p2p_discovery_listen_addrs_changed(p2p_discovery *d);

/* err 0: peer_id's addresses are in the peer table. */
typedef void (*p2p_discovery_resolve_fn)(p2p_discovery *d, int err, const char *peer_id, void *ud);
int p2p_discovery_resolve(p2p_discovery *d, const char *peer_id, uint32_t timeout_ms, p2p_discovery_resolve_fn cb,
                          void *ud) __attribute__((warn_unused_result));

/* The namespace's peers: the rendezvous find (DHT) plus the peers mDNS found; err -ENOENT when
 * none (or -ENOTSUP with neither part on). ids are valid during the call. */
typedef void (*p2p_discovery_peers_fn)(p2p_discovery *d, int err, const char *const *ids, size_t n, void *ud);
int p2p_discovery_find_namespace(p2p_discovery *d, p2p_discovery_peers_fn cb, void *ud)
    __attribute__((warn_unused_result));

/* Bootstrap rounds over so far (dial expansion and the DHT's first lookup, successful or not):
 * one at start when bootstrap peers are configured, one more each time a resolve finds the
 * routing table empty and dials them again. */
unsigned p2p_discovery_boot_rounds(const p2p_discovery *d);

/* The parts (NULL when off). */
p2p_kad *p2p_discovery_kad(p2p_discovery *d);
p2p_mdns *p2p_discovery_mdns(p2p_discovery *d);

#endif

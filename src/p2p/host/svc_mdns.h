/* svc_mdns.h — mDNS discovery on the host's loop: the UDP side of p2p/proto/mdns.h.
 *
 * Sockets: one IPv4 socket (group 224.0.0.251) and one IPv6 socket (group ff02::fb), bound to
 * port 5353 with SO_REUSEADDR (SO_REUSEPORT alone fails while another mDNS stack, e.g.
 * js-libp2p's, holds the port), joined on every interface that is up and multicast-capable
 * (or only cfg.interface). Each packet the engine produces is sent on every one of those
 * interfaces (IP_MULTICAST_IF / the IPv6 scope id), with TTL 255 and multicast loop on (other
 * programs on this machine are LAN peers too; the engine drops our own packets). A family
 * with no usable interface is skipped; start fails only when no socket could be opened.
 * Sends never block: a datagram the kernel cannot take now is dropped (mDNS repeats).
 *
 * What we announce: the host's listen addresses, with 0.0.0.0 / :: expanded to the addresses
 * of the interfaces above (the engine's filter then drops loopback unless allowed, link-local,
 * …). Call p2p_mdns_refresh_addrs() when the host's listen addresses change.
 *
 * Threads: loop thread only. Ownership: p2p_mdns_new() allocates; p2p_mdns_close() sends the
 * goodbye, closes the sockets and the timer, and frees the object after `done` runs. */
#ifndef PEERMCP_P2P_HOST_SVC_MDNS_H
#define PEERMCP_P2P_HOST_SVC_MDNS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "p2p/proto/mdns.h"

typedef struct p2p_mdns p2p_mdns;

typedef struct p2p_mdns_config {
  mdns_config engine;        /* service name, peer name, TTL, query interval, loopback, passive */
  uint16_t port;             /* 0 = 5353 */
  bool no_ipv4, no_ipv6;
  const char *interface;     /* only this interface (by name); NULL = all that qualify */
} p2p_mdns_config;

/* A peer found on the LAN (addresses without /p2p/; ttl_s 0 = it said goodbye). Its
 * addresses are already in the peerstore (source mDNS) when this runs. */
typedef void (*p2p_mdns_peer_fn)(p2p_mdns *m, const mdns_peer *peer, void *ud);

typedef struct p2p_mdns_stats {
  uint64_t packets_in, packets_out, send_errors, malformed, peers_reported;
  uint32_t interfaces_v4, interfaces_v6;
} p2p_mdns_stats;

int p2p_mdns_new(p2p_host *h, uv_loop_t *loop, const p2p_mdns_config *cfg, p2p_mdns_peer_fn fn, void *ud,
                 p2p_mdns **out) __attribute__((warn_unused_result));
/* Opens the sockets, starts querying (and announcing unless passive). 0, or -EADDRNOTAVAIL
 * (no interface/socket usable), or another negative errno. */
int p2p_mdns_start(p2p_mdns *m) __attribute__((warn_unused_result));
void p2p_mdns_refresh_addrs(p2p_mdns *m);
/* Sends a query now (someone looks for a peer); the query back-off restarts. */
void p2p_mdns_query_now(p2p_mdns *m);
void p2p_mdns_close(p2p_mdns *m, void (*done)(void *ud), void *ud);
void p2p_mdns_get_stats(const p2p_mdns *m, p2p_mdns_stats *out);
const char *p2p_mdns_peer_name(const p2p_mdns *m);

#endif

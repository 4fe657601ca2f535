/* mdns.h — libp2p mDNS peer discovery (libp2p/specs discovery/mdns.md over RFC 6762 / 6763),
 * sans-I/O: datagrams in, datagrams and discovered peers out, the caller's clock.
 *
 * What goes on the wire (the caller sends every packet to 224.0.0.251:5353 and/or
 * [ff02::fb]:5353):
 *   - queries: one question `<service> PTR` (service "_p2p._udp.local"), as the first and only
 *     question (js-libp2p answers only when ours is the first question). Sent at start, 1 s
 *     later, then at doubling intervals up to cfg.query_interval_ms.
 *   - responses (QR=1, AA=1): answer `<service> PTR <peer-name>.<service>`; additional records
 *     `<peer-name>.<service> TXT "dnsaddr=<ma>/p2p/<id>" … "id=<id>"` (one TXT record, one
 *     string per address), `SRV 0 0 <tcp port> <peer-name>.local`, and `<peer-name>.local`
 *     A/AAAA. Questions for those names directly (TXT, SRV, A, AAAA, ANY; the "gotchas" of
 *     the spec) are answered with those records in the answer section, and the DNS-SD meta
 *     query `_services._dns-sd._udp.local PTR` with `PTR <service>`. Every response is
 *     multicast, 20-120 ms after the query (shared records, RFC 6762 §6) and never less than
 *     1 s after our previous one; a query that already lists our PTR with more than half its
 *     TTL left gets no PTR (known-answer suppression, §7.1). At start the response is also
 *     announced unsolicited twice, 1 s apart (§8.3), and again when the addresses change.
 *   - goodbye: mdns_goodbye() builds the same response with TTL 0 (§10.1).
 *
 * What is accepted from responses (QR=1; anything else is ignored): TXT strings `dnsaddr=`
 * and `dnsaddr<N>=` (py-libp2p numbers them) holding a multiaddr that ends in /p2p/<id>,
 * grouped by PeerId; when an instance has no dnsaddr string, `id=<PeerId>` plus its SRV port
 * and the A/AAAA records of the SRV target (older py-libp2p). Dropped: our own peer name and
 * PeerId, addresses 0.0.0.0, ::, link-local (169.254/16, fe80::/10), multicast, relayed
 * (/p2p-circuit), DNS names outside .local, and loopback unless cfg.allow_loopback. The same
 * filter decides which of our addresses we announce. TTL 0 reports a peer leaving.
 *
 * Bounds: packets over DNS_MAX_MSG are refused by the DNS reader (dns.h checks every count,
 * label, pointer and length); at most MDNS_MAX_INSTANCES instances and MDNS_MAX_ADDRS
 * addresses per peer are taken from one packet (the rest are counted as dropped); our own
 * packets are at most MDNS_MAX_OUT bytes (addresses that do not fit are left out).
 *
 * Ownership: mdns_new() allocates, mdns_free() releases; results are written into caller
 * arrays. Not thread-safe (one owner, the loop thread). */
#ifndef PEERMCP_P2P_PROTO_MDNS_H
#define PEERMCP_P2P_PROTO_MDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"

#define MDNS_PORT 5353
#define MDNS_GROUP_V4 "224.0.0.251"
#define MDNS_GROUP_V6 "ff02::fb"
#define MDNS_SERVICE "_p2p._udp.local"
#define MDNS_DEFAULT_TTL_S 120
#define MDNS_DEFAULT_QUERY_INTERVAL_MS 60000
#define MDNS_PEER_NAME_LEN 32          /* random lower-case alphanumerics (spec: ≥ 32, < 64) */
#define MDNS_MAX_ADDRS 16              /* addresses announced / kept per discovered peer */
#define MDNS_MAX_INSTANCES 8           /* peers taken from one packet */
#define MDNS_MAX_OUT 1400              /* our packets fit one Ethernet frame (v4 and v6) */

typedef struct mdns mdns;

typedef struct mdns_config {
  const char *service;          /* NULL = MDNS_SERVICE */
  const char *peer_name;        /* NULL = random; 1..63 lower-case letters and digits */
  uint32_t ttl_s;               /* 0 = MDNS_DEFAULT_TTL_S */
  uint32_t query_interval_ms;   /* 0 = MDNS_DEFAULT_QUERY_INTERVAL_MS (ceiling of the back-off) */
  bool allow_loopback;          /* announce and accept 127/8 and ::1 */
  bool passive;                 /* never answer queries nor announce (listen and query only) */
} mdns_config;

/* One discovered peer. Addresses carry no /p2p/ component. */
typedef struct mdns_peer {
  peerid id;
  char peer_id[PEERID_STR_MAX];
  char instance[64];            /* its peer-name label */
  multiaddr addrs[MDNS_MAX_ADDRS];
  size_t n_addrs;
  size_t n_dropped;             /* addresses refused by the filter or over the cap */
  uint32_t ttl_s;               /* 0: the peer said goodbye */
} mdns_peer;

/* self_peer_id: our PeerId text (never reported as discovered). 0, -EINVAL, -ENOMEM. */
int mdns_new(const mdns_config *cfg, const char *self_peer_id, mdns **out)
    __attribute__((warn_unused_result));
void mdns_free(mdns *m);

const char *mdns_peer_name(const mdns *m);

/* Sets the addresses to announce (multiaddr text, with or without /p2p/<self>; a different
 * /p2p/ is refused). Addresses the filter refuses are skipped. Returns how many are kept, or
 * -ENOMEM. After mdns_start() a change triggers a new announcement. */
int mdns_set_addrs(mdns *m, const char *const *addrs, size_t n) __attribute__((warn_unused_result));

/* Starts querying (and announcing unless passive) from now_ms. */
void mdns_start(mdns *m, uint64_t now_ms);

/* Schedules a query now (someone is looking for a peer); the back-off restarts at 1 s. */
void mdns_query_now(mdns *m, uint64_t now_ms);

/* Produces the next packet that is due at now_ms into out[0..cap) (cap ≥ MDNS_MAX_OUT).
 * Returns its length (> 0), 0 when nothing is due, or a negative errno. Call until 0. */
int mdns_poll(mdns *m, uint64_t now_ms, uint8_t *out, size_t cap) __attribute__((warn_unused_result));

/* The next time mdns_poll() has something to do (ms, same clock), UINT64_MAX if never. */
uint64_t mdns_next_deadline(const mdns *m);

/* Handles one received datagram. Queries may schedule a response (see mdns_poll); peers
 * found in a response are written to peers[0..max) and counted in *n_peers.
 * 0, or -EINVAL / -EMSGSIZE for a malformed packet (nothing reported, nothing scheduled). */
int mdns_handle(mdns *m, const uint8_t *pkt, size_t len, uint64_t now_ms, mdns_peer *peers, size_t max,
                size_t *n_peers) __attribute__((warn_unused_result));

/* Our response with TTL 0 (send before leaving). Returns its length or a negative errno. */
int mdns_goodbye(mdns *m, uint8_t *out, size_t cap) __attribute__((warn_unused_result));

/* The filter above for one address (any /p2p/ suffix is ignored). */
bool mdns_addr_acceptable(const multiaddr *ma, bool allow_loopback);

#endif

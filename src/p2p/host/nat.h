/* nat.h — reaching peers behind NAT, as one part of the host (issue 16; docs/p2p-nat.md):
 * AutoNAT (svc_autonat: our reachability, confirmed external addresses), the circuit relay v2
 * client (svc_relay: reservations, relayed connections both ways, /p2p-circuit dialing), the
 * relay's hop service (svc_relay_hop, off unless configured) and DCUtR hole punching
 * (svc_dcutr). Each part is on only when its config says so.
 *
 * It also keeps what the parts share: the addresses peers observed us at (identify, over
 * direct connections; the 8 newest), from which our candidate external addresses are made —
 * our announced non-relay addresses, each observed address, and each observed IP with each of
 * our TCP listen ports (with masquerading NATs that keep the source port, and dials from the
 * listen port, that is the address the NAT maps us to). Private and loopback addresses are
 * left out unless allow_private.
 *
 * In a node it is one protocol service of the host (p2p_nat_add_to_host): the handlers of the
 * parts that are on, the events they need, a 1 s tick, and its stop at host close (addresses
 * withdrawn, streams reset) before the connections go. Standalone (tests) it is closed by
 * hand. Threads: loop thread only. Ownership: p2p_nat_new allocates; after
 * p2p_nat_add_to_host the host owns it (do not close it); else p2p_nat_close frees it after
 * `done`.
 *
 * AutoNAT v2 (svc_autonat2, on with autonat_v2) asks and answers beside v1 and votes into v1's
 * tally, so both decide the one reachability. */
#ifndef PEERMCP_P2P_HOST_NAT_H
#define PEERMCP_P2P_HOST_NAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "p2p/core/multiaddr.h"
#include "p2p/host/host.h"
#include "p2p/host/svc_relay_hop.h"

typedef struct p2p_nat p2p_nat;

typedef struct p2p_nat_config {
  bool autonat_client, autonat_server;
  unsigned autonat_confidence;          /* 0 = 3 */
  bool autonat_v2;                      /* AutoNAT v2 beside v1 (its client and server as v1's) */
  uint32_t autonat_v2_data_bytes;       /* v2 server's dial-data cost; 0 = random 30000..100000 */
  bool relay_client;                    /* dial /p2p-circuit addresses */
  bool relay_accept;                    /* accept relayed connections (STOP) */
  bool relay_reserve;                   /* reserve on relays while not known to be public */
  bool relay_ignore_limits;             /* tests only: see p2p_relay_client_config.ignore_limits */
  const char *const *relays;            /* multiaddrs with /p2p/ */
  size_t n_relays;
  const char *const *relay_candidates;  /* bootstrap peers: reserve on those speaking hop */
  size_t n_relay_candidates;
  bool hop;                             /* serve as a relay */
  p2p_relay_hop_config hop_cfg;
  bool holepunch;                       /* DCUtR (the host needs p2p_host_config.reuseport) */
  bool holepunch_no_unilateral;         /* skip DCUtR's plain dial first (tests of the punch) */
  bool allow_private;                   /* offer, dial back and punch private addresses (tests) */
} p2p_nat_config;

int p2p_nat_new(p2p_host *h, uv_loop_t *loop, const p2p_nat_config *cfg, p2p_nat **out)
    __attribute__((warn_unused_result));
/* Registers it as one host service and starts it; from then on the host owns it. On error n
 * is still the caller's (close it). */
int p2p_nat_add_to_host(p2p_nat *n) __attribute__((warn_unused_result));
/* Standalone use: start without registering handlers as a service (the caller routes
 * nothing; only the circuit dialer and the tick run). */
int p2p_nat_start(p2p_nat *n) __attribute__((warn_unused_result));
void p2p_nat_close(p2p_nat *n, void (*done)(void *ud), void *ud);

/* Our candidate external addresses (see above). */
size_t p2p_nat_candidates(p2p_nat *n, multiaddr *out, size_t max);

/* {"autonat": {"supported", "status", "code", …}, "reachability", "announced_addrs",
 * "reservations", "relay_hop": {…} | null, "holepunch": {…} | null, "observed_addrs"}. The
 * autonat object keeps the Python service's shape ({supported, status, code}). */
json_t *p2p_nat_status_json(p2p_nat *n);

#endif

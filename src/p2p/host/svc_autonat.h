/* svc_autonat.h — AutoNAT v1 on the host (libp2p/specs autonat/autonat-v1.md): a client that
 * asks peers to dial us back and turns their answers into our reachability
 * (p2p_host_set_reachability), and a server that dials others back. The message codec and
 * the rules are sans-I/O in p2p/proto/autonat.h.
 *
 * Client: every connected peer whose identify lists AUTONAT_PROTOCOL is asked (at most one
 * question in flight per peer, again after recheck_s) with our candidate addresses (nat.c:
 * listen addresses, and the addresses peers observed us at with our listen ports). An OK confirms the address the server dialed: when it is not a listen
 * address it is announced (p2p_host_add_addr). The votes (autonat_tally, `confidence`
 * servers) decide public / private; "p2p autonat: reachability" is logged on each change.
 *
 * Server: a DIAL over a relayed connection, for another PeerId, or with no address on the
 * requester's IP gets E_DIAL_REFUSED / E_BAD_REQUEST; otherwise at most AUTONAT_MAX_DIALS of
 * its addresses on that IP are dialed, one after the other, each on a fresh connection
 * (p2p_host_connect, never reusing the requester's; closed once it answered) within
 * dial_timeout_ms: OK with the address that worked, else E_DIAL_ERROR. Rate limits (no
 * amplification): at most 3 requests per peer and 30 in all per minute, 4 dial-backs at once;
 * past them E_DIAL_REFUSED.
 *
 * AutoNAT v2 (svc_autonat2) decides with the same tally logic per address and hands its verdict
 * here (p2p_autonat_v2_verdict), which wins over v1's; with prefer_v2
 * the v1 client leaves peers that speak v2 to it (js-libp2p's v1 server answers over the
 * requester's own connection, so its OK proves nothing).
 *
 * Threads: loop thread only. Ownership: new allocates; close frees once the host has called
 * back what it owes. Driven by nat.c (handler, events, 1 s tick). */
#ifndef PEERMCP_P2P_HOST_SVC_AUTONAT_H
#define PEERMCP_P2P_HOST_SVC_AUTONAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "p2p/host/host.h"

typedef struct p2p_autonat p2p_autonat;

/* Our candidate addresses (without /p2p/): fills up to max, returns how many (nat.c). */
typedef size_t (*p2p_addr_candidates_fn)(void *ud, multiaddr *out, size_t max);

typedef struct p2p_autonat_config {
  bool client;
  bool server;
  p2p_addr_candidates_fn candidates; /* what the client asks to be dialed at (required) */
  void *candidates_ud;
  unsigned confidence;       /* 0 = 3 */
  uint32_t recheck_s;        /* 0 = 900: ask a server again after this long */
  uint32_t dial_timeout_ms;  /* 0 = 10000: one dial-back */
  bool allow_private;        /* dial / offer private and loopback addresses (tests on one host) */
  bool prefer_v2;            /* the client skips peers that speak AutoNAT v2 (svc_autonat2 asks them) */
} p2p_autonat_config;

int p2p_autonat_new(p2p_host *h, const p2p_autonat_config *cfg, p2p_autonat **out) __attribute__((warn_unused_result));
void p2p_autonat_close(p2p_autonat *an, void (*done)(void *ud), void *ud);

void p2p_autonat_serve(p2p_autonat *an, p2p_stream *s);
/* PEER_IDENTIFIED, IDENTIFY_PUSH, OBSERVED_ADDR, CONN_CLOSED, LISTEN_ADDRS_CHANGED. */
void p2p_autonat_on_event(p2p_autonat *an, const p2p_event *ev);
void p2p_autonat_tick(p2p_autonat *an);

/* AutoNAT v2's verdict (svc_autonat2, which tests each address with the same confidence):
 * reach 0 (none yet: v1's tally decides), public or private; it takes precedence over v1's
 * tally. reachable_addr (or NULL): an address v2 found reachable, confirmed and announced
 * as a v1 OK's address is. */
void p2p_autonat_v2_verdict(p2p_autonat *an, int reach, const multiaddr *reachable_addr);

/* {"supported", "status", "code", "confirmed", "votes": {"ok", "error"}, "server": {…}}. */
json_t *p2p_autonat_status_json(const p2p_autonat *an);

#endif

/* svc_dcutr.h — Direct Connection Upgrade through Relay (libp2p/specs relay/DCUtR.md): turning
 * a relayed connection into a direct one by TCP hole punching. Messages: p2p/proto/dcutr.h.
 *
 * The side that received the relayed connection (B, the relayed connection is inbound) starts:
 *   1. once identify ran on the relayed connection (or after 5 s), if the peer lists public
 *      addresses (private ones never, even with allow_private), a plain direct dial
 *      ("unilateral upgrade": the peer may simply be reachable);
 *   2. else, or when that fails: a /libp2p/dcutr stream on the relayed connection, CONNECT with
 *      our candidate addresses (nat.c: our observed addresses with our listen ports — what the
 *      other side's NAT will let through once we dialed it), the peer's CONNECT back (the RTT
 *      measured between them), SYNC, then after RTT/2 a dial of each of its addresses from our
 *      listen port (SO_REUSEPORT) as the *responder* of the upgrade (TCP simultaneous open:
 *      the spec makes B the server);
 *   3. up to `attempts` tries (3: the spec's two retries), ≥ retry_gap_ms apart, each dial
 *      aborted when it fails or after attempt_timeout_ms.
 * The other side (A) answers on the stream: its CONNECT, and on SYNC dials each of B's
 * addresses at once from its listen port as the initiator.
 * A direct connection to the peer — ours, or theirs arriving at our listener — ends it:
 * "p2p hole punch succeeded" (peer, address, attempt, RTT) is logged and the relayed
 * connection gets a GoAway (its streams finish; new ones use the direct connection, which
 * p2p_host_open_stream prefers). "p2p hole punch failed" says why (no addresses, the peer did
 * not answer, every dial failed …), and after the last attempt that we gave up. On the
 * answering side a failed attempt is "p2p hole punch attempt failed" (info): the starting side
 * decides whether to retry, and only it logs the give-up and counts a failure. A peer whose
 * identify does not list /libp2p/dcutr, or that refuses the stream (a CLI's client-only host),
 * is skipped at once ("p2p hole punch skipped", no retry, counted as skipped, not failed).
 *
 * Threads: loop thread only. Ownership: new allocates; close frees once the host has called
 * back what it owes and the timer is closed. Driven by nat.c (handler, events). */
#ifndef PEERMCP_P2P_HOST_SVC_DCUTR_H
#define PEERMCP_P2P_HOST_SVC_DCUTR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "p2p/host/svc_autonat.h"

typedef struct p2p_dcutr p2p_dcutr;

typedef struct p2p_dcutr_config {
  p2p_addr_candidates_fn candidates; /* our addresses for CONNECT (required) */
  void *candidates_ud;
  bool allow_private;                /* dial private addresses too (tests on one host) */
  unsigned attempts;                 /* 0 = 3 */
  uint32_t attempt_timeout_ms;       /* 0 = 5000: exchange + dials of one attempt */
  uint32_t retry_gap_ms;             /* 0 = 2000 */
  bool unilateral;                   /* try a plain dial first when the peer lists addresses */
} p2p_dcutr_config;

int p2p_dcutr_new(p2p_host *h, uv_loop_t *loop, const p2p_dcutr_config *cfg, p2p_dcutr **out)
    __attribute__((warn_unused_result));
void p2p_dcutr_close(p2p_dcutr *d, void (*done)(void *ud), void *ud);

void p2p_dcutr_serve(p2p_dcutr *d, p2p_stream *s);
/* CONN_OPENED, CONN_CLOSED, PEER_IDENTIFIED. */
void p2p_dcutr_on_event(p2p_dcutr *d, const p2p_event *ev);

/* {"started", "succeeded", "direct_dial", "failed" (punches we started and gave up),
 * "answered_attempts_failed" (attempts the peer started that failed: it retries or gives up),
 * "skipped", "in_progress"}. */
json_t *p2p_dcutr_status_json(const p2p_dcutr *d);

#endif

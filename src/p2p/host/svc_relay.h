/* svc_relay.h — the circuit relay v2 client (libp2p/specs relay/circuit-v2.md): reservations
 * on relays, the STOP protocol (relayed connections to us), and dialing /p2p-circuit
 * addresses (it is the host's circuit dialer, host.h p2p_host_set_circuit_dialer).
 *
 * Reservations: on each relay of `relays` (else, up to max_reservations, on `candidates` —
 * bootstrap peers — once identify says they speak the hop protocol) while `reserve` is on and
 * our reachability is not public (AutoNAT, or unknown). A reservation is a HOP RESERVE on a
 * connection to the relay that is then kept open (p2p_host_set_keepalive); it is refreshed
 * before it expires (5 min before, or half-way for short ones), and lost when the connection
 * closes, the relay refuses a refresh past expiry, or it expires; then retried with a back-off
 * (1 s doubling to 5 min). While it holds, "<relay address>/p2p-circuit" is announced
 * (p2p_host_add_addr: identify, identify-push, the announce file) for each relay address the
 * relay returned (or, when it returned none, the address we reached it at). The voucher is
 * checked (signed by the relay, for us) and its state reported; vouchers are advisory (spec).
 * Logs: "p2p relay reservation made" / "refreshed" / "lost" (with why) / "refused".
 *
 * Dialing: a /p2p-circuit target opens a HOP stream to the relay (a direct connection is
 * reused), sends CONNECT and hands the stream to the host once the relay says OK (bytes that
 * came with the answer included); other answers fail the dial (NO_RESERVATION →
 * -EHOSTUNREACH, PERMISSION_DENIED → -EACCES, RESOURCE_LIMIT_EXCEEDED → -EBUSY,
 * CONNECTION_FAILED → -ECONNREFUSED, malformed → -EPROTO).
 *
 * STOP (with `accept`): a relay's CONNECT names the peer that dials us; we answer OK and run
 * the connection over the stream (p2p_host_upgrade_stream as responder, the named PeerId
 * proven by Noise). Refused (a STATUS and a reset) over relayed connections, and past
 * max_inbound relayed connections at once.
 *
 * Threads: loop thread only. Ownership: p2p_relay_client_new allocates; _close releases
 * everything (streams reset, announced addresses withdrawn) once no host callback is owed. Driven by its owner (nat.c):
 * events, a 1 s tick, the STOP handler. */
#ifndef PEERMCP_P2P_HOST_SVC_RELAY_H
#define PEERMCP_P2P_HOST_SVC_RELAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/host/host.h"

typedef struct p2p_relay_client p2p_relay_client;

typedef struct p2p_relay_client_config {
  const char *const *relays;       /* multiaddrs with /p2p/<relay> (copied) */
  size_t n_relays;
  const char *const *candidates;   /* bootstrap peers (multiaddrs with /p2p/, or bare PeerIds) */
  size_t n_candidates;
  bool reserve;                    /* make reservations (a serving node) */
  bool accept;                     /* serve STOP: accept relayed connections */
  size_t max_reservations;         /* 0 = 2: among candidates (every configured relay is used) */
  uint32_t max_inbound;            /* 0 = 64 relayed connections to us at once */
} p2p_relay_client_config;

int p2p_relay_client_new(p2p_host *h, const p2p_relay_client_config *cfg, p2p_relay_client **out)
    __attribute__((warn_unused_result));
/* Becomes the host's circuit dialer; reservations start on the next tick. */
void p2p_relay_client_start(p2p_relay_client *rc);
/* Withdraws addresses, resets streams, stops dialing (pending dials fail). */
void p2p_relay_client_stop(p2p_relay_client *rc);
/* Stops, then frees once the host has called back everything it still owes us (opens and
 * upgrades in flight; they end at the latest when the host closes); then done(ud). */
void p2p_relay_client_close(p2p_relay_client *rc, void (*done)(void *ud), void *ud);

/* Host events: CONN_CLOSED, PEER_IDENTIFIED, IDENTIFY_PUSH, REACHABILITY_CHANGED. */
void p2p_relay_client_on_event(p2p_relay_client *rc, const p2p_event *ev);
/* Refreshes, retries, expiry. */
void p2p_relay_client_tick(p2p_relay_client *rc);
/* The STOP protocol's inbound streams. */
void p2p_relay_client_serve_stop(p2p_relay_client *rc, p2p_stream *s);

/* Reservations: [{"relay", "state": "reserving"|"active"|"waiting", "expire", "addrs",
 * "limit": {"duration_s", "data_bytes"}, "voucher": "valid"|"invalid"|"none", "error"?}]. */
json_t *p2p_relay_client_status_json(const p2p_relay_client *rc);
/* How many reservations are active. */
size_t p2p_relay_client_active(const p2p_relay_client *rc);

#endif

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
 * Limits: the Limit{duration, data} a relay states in its answer to CONNECT (our dials) or in
 * its STOP CONNECT (dials to us) goes with the relayed connection (p2p_upgrade_opts.limit,
 * p2p_circuit_req_set_limit): the host closes it when either is used up and logs "p2p relayed
 * connection closed: the relay's limit is reached" (transport_stream.h). Units: see
 * p2p_relay_limit_of. A reservation's limit is reported as the relay stated it for circuits.
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
  bool ignore_limits;              /* tests of a relay's own enforcement only: relayed connections
                                      are not closed at the limits the relay states */
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
 * "limit": LIMIT, "voucher": "valid"|"invalid"|"none", "error"?}] where LIMIT is
 * {"duration_s", "duration_raw" (as the relay wrote it), "data_bytes", "data_both_directions"}. */
json_t *p2p_relay_client_status_json(const p2p_relay_client *rc);
/* The host's relayed connections: [{"peer", "addr", "direction", "age_s", "limit": {"duration_s",
 * "data_bytes", "data_both_directions"}, "bytes_in", "bytes_out", "closes_in_s"?}]
 * ("closes_in_s": until we close it for the duration limit). */
json_t *p2p_relay_client_circuits_json(p2p_host *h);
json_t *p2p_relay_limit_json(const p2p_relay_limit *l, uint32_t duration_raw);

/* A relay's Limit in our units. The spec says seconds and each direction; js-libp2p writes
 * milliseconds and counts both directions together. js (known by its identify agent): read
 * the js way; otherwise a duration over RELAY_LIMIT_SECONDS_MAX (86400: a day, more than any
 * relay grants one connection, while 120000 is js's 2-minute default in ms) is taken as
 * milliseconds, anything else as seconds (docs/p2p-nat.md). */
#define RELAY_LIMIT_SECONDS_MAX 86400u
p2p_relay_limit p2p_relay_limit_of(uint32_t duration, uint64_t data, bool js);
/* How many reservations are active. */
size_t p2p_relay_client_active(const p2p_relay_client *rc);

#endif

/* svc_relay_hop.h — serving as a circuit relay v2 (libp2p/specs relay/circuit-v2.md "Hop
 * Protocol"): reservations with signed vouchers, and circuits that pipe a source's HOP stream
 * into a STOP stream to the reserved destination, within limits.
 *
 * Reservations: RESERVE over a direct connection (over a relayed one: PERMISSION_DENIED) is
 * answered OK with {expire = now + reservation_ttl_s, our announced addresses with /p2p/<us>,
 * a voucher (envelope "libp2p-relay-rsvp" signed by us)} and the per-circuit limit; the
 * reserving connection is kept open (p2p_host_set_keepalive) while the reservation holds.
 * A peer that already has a reservation always gets it refreshed; a new one is refused with
 * RESERVATION_REFUSED past max_reservations (0 = no limit: slots grow on demand up to 65536)
 * or max_reservations_per_ip from one IP. A reservation ends at its expiry or when its connection closes.
 *
 * Circuits: CONNECT to a peer without a live reservation → NO_RESERVATION; past max_circuits
 * in all, or max_circuits_per_peer for the source or the destination →
 * RESOURCE_LIMIT_EXCEEDED; the STOP exchange failing (no stream, no or a non-OK answer within
 * 30 s) → CONNECTION_FAILED. Once both said OK the two streams are piped with backpressure,
 * FIN and reset passed on. Each direction may carry limit_data bytes (0 = no limit; the spec's
 * "in each direction"); the circuit lives at most limit_duration_s (0 = no limit); past either,
 * both streams are reset (spec) and "p2p relay circuit limit reached" is logged.
 *
 * Threads: loop thread only. Ownership: new allocates; close frees once the host has called
 * back what it owes (stream opens). Driven by nat.c: the HOP handler, events, a 1 s tick. */
#ifndef PEERMCP_P2P_HOST_SVC_RELAY_HOP_H
#define PEERMCP_P2P_HOST_SVC_RELAY_HOP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "p2p/host/host.h"

typedef struct p2p_relay_hop p2p_relay_hop;

typedef struct p2p_relay_hop_config {
  uint32_t max_reservations;        /* 0 = no limit (at most 65536, grown on demand) */
  uint32_t max_reservations_per_ip; /* 0 = no per-IP limit */
  uint32_t reservation_ttl_s;       /* 0 = 3600 */
  uint32_t max_circuits;            /* 0 refuses every circuit */
  uint32_t max_circuits_per_peer;   /* 0 = no per-peer limit */
  uint32_t limit_duration_s;        /* 0 = none */
  uint64_t limit_data;              /* per direction; 0 = none */
} p2p_relay_hop_config;

int p2p_relay_hop_new(p2p_host *h, const p2p_relay_hop_config *cfg, p2p_relay_hop **out)
    __attribute__((warn_unused_result));
void p2p_relay_hop_close(p2p_relay_hop *hop, void (*done)(void *ud), void *ud);

/* Inbound HOP streams. */
void p2p_relay_hop_serve(p2p_relay_hop *hop, p2p_stream *s);
/* CONN_CLOSED. */
void p2p_relay_hop_on_event(p2p_relay_hop *hop, const p2p_event *ev);
void p2p_relay_hop_tick(p2p_relay_hop *hop);

/* {"reservations", "circuits", limits, counters}. */
json_t *p2p_relay_hop_status_json(const p2p_relay_hop *hop);

#endif

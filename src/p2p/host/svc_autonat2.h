/* svc_autonat2.h — AutoNAT v2 on the host (libp2p/specs autonat/autonat-v2.md), beside v1
 * (svc_autonat): a client that asks peers to dial one of our candidate addresses back and
 * votes with their answers in v1's tally (p2p_autonat_record: the same reachability, status
 * op `nat.autonat`, DHT mode and relay client), and a server that dials others back. The
 * messages and both sides of a dial-request stream are sans-I/O in p2p/proto/autonat2.h.
 *
 * Client: every connected peer (direct connection) whose identify lists
 * /libp2p/autonat/2/dial-request is asked (one request in flight per peer, at least 5 s
 * apart), each request about ONE candidate address (nat.c's candidates): the undecided one
 * with the most answers already that this server has not answered about, so the addresses
 * are decided one by one. Each address has its own tally (autonat_tally, v1's rule: one vote
 * per server, `confidence` agreeing servers decide; asked again after recheck_s); our
 * verdict, public if an address is reachable, private if one is not and none is, goes to
 * p2p_autonat_v2_verdict (it wins over v1's tally); a reachable address is confirmed and
 * announced. A request that ended without a vote (refused, rejected, no answer) marks that
 * server as done with that address until it is rechecked. A random 64-bit nonce
 * goes with it; the /libp2p/autonat/2/dial-back handler answers DialBackResponse OK only to a
 * nonce of a request in flight (else the stream is reset) and marks that request. The answer
 * OK/OK counts only if its nonce came back (else it is discarded: spec "MUST check"),
 * OK/E_DIAL_ERROR is a "not reachable" vote, everything else (refused, rejected, dial-back
 * error) is no vote. A DialDataRequest is paid up to AUTONAT2_CLIENT_MAX_DATA bytes.
 *
 * Server: the first address autonat2_select accepts is dialed on a fresh connection
 * (p2p_host_connect with the requester's PeerId, never the requester's own connection nor
 * our listen port), the nonce sent on a dial-back stream and its DialBackResponse awaited,
 * all within dial_timeout_ms; then DialResponse OK with OK / E_DIAL_ERROR / E_DIAL_BACK_ERROR.
 * An address on another IP than the requester's costs it AUTONAT2 dial data first (random
 * 30000..100000 bytes) unless allow_other_ip is off (then it is not chosen). Limits (no
 * amplification): 3 requests per peer and 30 in all per minute, 4 dial-backs and 2 dial-data
 * exchanges at once, over them E_REQUEST_REJECTED; requests over relayed connections get
 * E_DIAL_REFUSED; a request stream lives at most 60 s; each message is bounded
 * (AUTONAT2_MAX_MSG, dial-back 64 bytes).
 *
 * Not done: checking that the dial-back came in on a connection of the tested address's
 * transport (spec: "can verify … by checking the local address"; we have TCP only).
 *
 * Threads: loop thread only. Ownership: new allocates; close frees once every stream and dial
 * it started has called back. Driven by nat.c (handlers, events, 1 s tick). */
#ifndef PEERMCP_P2P_HOST_SVC_AUTONAT2_H
#define PEERMCP_P2P_HOST_SVC_AUTONAT2_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "p2p/host/host.h"
#include "p2p/host/svc_autonat.h"

typedef struct p2p_autonat2 p2p_autonat2;

typedef struct p2p_autonat2_config {
  bool client;
  bool server;
  p2p_addr_candidates_fn candidates; /* what the client asks to be dialed at (required for client) */
  void *candidates_ud;
  p2p_autonat *votes;        /* gets the client's verdict (required for client) */
  unsigned confidence;       /* 0 = 3: agreeing servers before an address is decided */
  uint32_t recheck_s;        /* 0 = 900 */
  uint32_t dial_timeout_ms;  /* 0 = 10000: one dial-back (connect + nonce + response) */
  bool allow_private;        /* dial / offer private and loopback addresses (tests on one host) */
  bool no_other_ip;          /* server: never dial an IP other than the requester's */
  uint32_t data_bytes;       /* server: dial data asked for another IP; 0 = random 30000..100000 */
} p2p_autonat2_config;

int p2p_autonat2_new(p2p_host *h, const p2p_autonat2_config *cfg, p2p_autonat2 **out)
    __attribute__((warn_unused_result));
void p2p_autonat2_close(p2p_autonat2 *an, void (*done)(void *ud), void *ud);

void p2p_autonat2_serve_request(p2p_autonat2 *an, p2p_stream *s);  /* /libp2p/autonat/2/dial-request */
void p2p_autonat2_serve_dialback(p2p_autonat2 *an, p2p_stream *s); /* /libp2p/autonat/2/dial-back */
/* PEER_IDENTIFIED, IDENTIFY_PUSH, LISTEN_ADDRS_CHANGED. */
void p2p_autonat2_on_event(p2p_autonat2 *an, const p2p_event *ev);
void p2p_autonat2_tick(p2p_autonat2 *an);

/* {"client", "server", "addrs": [{"addr", "ok", "error"}], "counters": {…}}. */
json_t *p2p_autonat2_status_json(const p2p_autonat2 *an);

#endif

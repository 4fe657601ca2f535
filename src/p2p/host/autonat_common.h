/* autonat_common.h — what AutoNAT v1 (svc_autonat) and v2 (svc_autonat2) do alike on the host,
 * kept in one place; each service's protocol state machine stays in its own module.
 *
 * - autonat_peers: the servers we asked (one slot per PeerId, at most AUTONAT_PEER_SLOTS; a new
 *   one takes a free slot, else the least recently asked one not asking now).
 * - autonat_rate: the server's rate limit (requests accepted in the last minute, per peer and
 *   in all).
 * - autonat_life: the pending count that keeps a service alive while the host owes it callbacks,
 *   and the close callback to call once it reaches 0 after close began.
 * - autonat_peers_due / autonat_each_direct_peer: a peer is asked only over a direct
 *   connection (a relayed one cannot be dialed back, spec).
 *
 * Ownership: all of it is embedded by value in the services; nothing here allocates.
 * Threads: loop thread only (like the services). */
#ifndef PEERMCP_P2P_HOST_AUTONAT_COMMON_H
#define PEERMCP_P2P_HOST_AUTONAT_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "p2p/core/peerid.h"
#include "p2p/host/host.h"

#define AUTONAT_PEER_SLOTS 64 /* servers we remember asking */
#define AUTONAT_RATE_SLOTS 64

typedef struct autonat_peer {
  char id[PEERID_STR_MAX];
  int64_t last_ms; /* when we last asked it (0 = never) */
  bool asking;     /* a request to it is in flight */
} autonat_peer;

typedef struct autonat_peers {
  autonat_peer slot[AUTONAT_PEER_SLOTS];
} autonat_peers;

/* The slot of `id`; with create a new one (zeroed) when it has none, NULL when every slot is
 * asking. */
autonat_peer *autonat_peers_slot(autonat_peers *t, const char *id, bool create);
/* The slot of peer_id when it is due a question at now_ms: we have a direct connection to it
 * (a relayed one cannot be dialed back, spec), nothing is in flight to it and its last
 * question is gap_ms old or more; else NULL. */
autonat_peer *autonat_peers_due(autonat_peers *t, p2p_host *h, const char *peer_id, int64_t now_ms, int64_t gap_ms);
/* A question to p went out at now_ms. */
void autonat_peers_asked(autonat_peer *p, int64_t now_ms);
/* A request to `id` ended: it may be asked again (after the gap). */
void autonat_peers_done(autonat_peers *t, const char *id);
/* Every server may be asked again at once (our addresses changed). */
void autonat_peers_forget_times(autonat_peers *t);

typedef struct autonat_rate_slot {
  char peer[PEERID_STR_MAX];
  int64_t at_ms;
} autonat_rate_slot;

typedef struct autonat_rate {
  autonat_rate_slot slot[AUTONAT_RATE_SLOTS];
} autonat_rate;

/* The free slot for one more request of `peer` at now_ms, or NULL when it is over per_peer
 * requests or all peers are over global ones in the last minute (or no slot is free). Nothing
 * is counted until autonat_rate_take. */
autonat_rate_slot *autonat_rate_room(autonat_rate *rl, const char *peer, int64_t now_ms, unsigned global,
                                     unsigned per_peer);
void autonat_rate_take(autonat_rate_slot *slot, const char *peer, int64_t now_ms);

typedef struct autonat_life {
  unsigned pending; /* callbacks the host owes us, requests alive, plus holds */
  bool closing;
  void (*close_done)(void *);
  void *close_ud;
} autonat_life;

/* Starts closing; false when already closing. Holds once (release with autonat_life_unpend). */
bool autonat_life_close(autonat_life *l, void (*done)(void *ud), void *ud);
/* One pending thing ended; true when the owner must now finalize (closing and none left). */
bool autonat_life_unpend(autonat_life *l);

/* Whether identify listed proto for the peer. */
bool autonat_peer_speaks(const p2p_peer_info *pi, const char *proto);
/* Calls fn for each peer we have a direct connection to (at most 32 connections looked at). */
void autonat_each_direct_peer(p2p_host *h, void (*fn)(void *ud, const char *peer_id), void *ud);

#endif

/* kad_lookup.h — the iterative Kademlia lookup (libp2p/specs kad-dht/README.md "Peer
 * routing"), as a state machine with no I/O: the caller sends the RPCs (FIND_NODE,
 * GET_VALUE or GET_PROVIDERS, the lookup does not care), feeds back each reply's closer
 * peers or failure, and asks what to do next.
 *
 *   kad_lookup_new → kad_lookup_add (seeds from the routing table)
 *   loop: kad_lookup_next(now) → KAD_LOOKUP_QUERY (send to *peer), _WAIT (until a reply, a
 *         failure or kad_lookup_deadline()), _DONE
 *         on a reply: kad_lookup_reply(peer, closer peers); on an error: kad_lookup_fail(peer)
 *
 * Rules: at most α queries in flight; candidates are kept sorted by XOR distance to the target
 * key; the lookup is done when the k closest candidates that have not failed have all
 * replied (or when no candidate is left to ask). A query unanswered after rpc_timeout_ms
 * counts as failed (a late reply is still taken). Our own PeerId is never a candidate. At
 * most KAD_LOOKUP_MAX_CANDIDATES are remembered: when full, a new candidate replaces the
 * farthest one not yet asked, if it is closer. At most max_queries RPCs are sent in all.
 *
 * Hops: a seed has hop 0, a peer learned from the reply of a peer at hop h has hop h+1; so a
 * target's hop is the number of RPC round trips in the chain that found it.
 *
 * Ownership: kad_lookup_new() allocates, kad_lookup_free() releases. Not thread-safe. */
#ifndef PEERMCP_P2P_PROTO_KAD_LOOKUP_H
#define PEERMCP_P2P_PROTO_KAD_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/proto/kad_table.h"

#define KAD_ALPHA 3
#define KAD_LOOKUP_MAX_CANDIDATES 256
#define KAD_DEFAULT_RPC_TIMEOUT_MS 10000

typedef struct kad_lookup_config {
  size_t k;                  /* 0 = KAD_K */
  size_t alpha;              /* 0 = KAD_ALPHA */
  uint32_t rpc_timeout_ms;   /* 0 = KAD_DEFAULT_RPC_TIMEOUT_MS */
  size_t max_queries;        /* 0 = 10 * KAD_LOOKUP_MAX_CANDIDATES (no practical cap) */
} kad_lookup_config;

typedef enum kad_cand_state { KAD_CAND_NEW = 0, KAD_CAND_ASKED, KAD_CAND_REPLIED, KAD_CAND_FAILED } kad_cand_state;

typedef struct kad_candidate {
  peerid id;
  kad_key key;
  uint8_t state;             /* kad_cand_state */
  uint16_t hop;
  uint64_t sent_ms;
} kad_candidate;

typedef enum { KAD_LOOKUP_WAIT = 0, KAD_LOOKUP_QUERY = 1, KAD_LOOKUP_DONE = 2 } kad_lookup_step;

typedef struct kad_lookup_stats {
  size_t queries, replies, failures, timeouts;
} kad_lookup_stats;

typedef struct kad_lookup kad_lookup;

/* target: the key bytes as they go on the wire (hashed here). 0, -EINVAL, -ENOMEM. */
int kad_lookup_new(const peerid *self, const uint8_t *target, size_t target_len, const kad_lookup_config *cfg,
                   kad_lookup **out) __attribute__((warn_unused_result));
void kad_lookup_free(kad_lookup *l);

/* Adds a candidate at `hop`. 1 added, 0 already known, ours, or dropped (full and farther). */
int kad_lookup_add(kad_lookup *l, const peerid *id, unsigned hop);

/* What to do at now_ms; with KAD_LOOKUP_QUERY, *peer is to be asked (now in flight). Expires
 * overdue queries first. */
kad_lookup_step kad_lookup_next(kad_lookup *l, uint64_t now_ms, peerid *peer);
/* A reply from `from` with its closer peers (they become candidates at from's hop + 1).
 * Returns how many were new, or -ENOENT if `from` was never asked. */
int kad_lookup_reply(kad_lookup *l, const peerid *from, const peerid *closer, size_t n_closer);
/* The RPC to `from` failed. */
void kad_lookup_fail(kad_lookup *l, const peerid *from);
/* Earliest time a query in flight times out (UINT64_MAX if none). */
uint64_t kad_lookup_deadline(const kad_lookup *l);
bool kad_lookup_done(const kad_lookup *l);

/* The candidate for id, or NULL. */
const kad_candidate *kad_lookup_find(const kad_lookup *l, const peerid *id);
/* Up to n peers that replied, closest first. Returns how many. */
size_t kad_lookup_closest(const kad_lookup *l, peerid *out, size_t n);
const kad_key *kad_lookup_target(const kad_lookup *l);
void kad_lookup_get_stats(const kad_lookup *l, kad_lookup_stats *out);

#endif

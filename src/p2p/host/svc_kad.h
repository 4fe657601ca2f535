/* svc_kad.h — the Kademlia DHT on the host (libp2p/specs kad-dht/README.md): the protocol
 * handler in server mode, RPCs over streams, the routing table kept from identify, lookups,
 * records and provider records. The protocol logic is in p2p/proto/kad_*.h; this module is the
 * I/O around it (streams, the clock, a timer).
 *
 * Modes (spec "Client and server mode"): a server registers the protocol id (so identify
 * advertises it) and answers; a client only asks. Either way a peer enters our routing table
 * only when its identify lists the protocol (p2p_kad_peer_identified), as the spec says and as
 * js-libp2p does. The protocol id is configurable (a private DHT uses its own).
 *
 * Streams (spec "RPC messages"): one request per outbound stream, the response read, our write
 * side closed; a stream that is not closed by the peer within 2 s after that is reset.
 * ADD_PROVIDER gets no response (js and go send none): written, write side closed, done.
 * Inbound streams may carry several requests; each must arrive within 10 s of the previous
 * one. At most max_inbound_streams inbound streams at once (more are reset).
 *
 * Operations run an iterative lookup (kad_lookup, α and k from the config) seeded with the k
 * closest peers of the table; peers are dialed by PeerId (their addresses, learned from
 * replies, go to the peerstore through p2p_host_add_peer_addrs). Every operation ends within
 * query_timeout_ms with what it found; its callback runs exactly once (also -ECANCELED at
 * close), never from inside the call that started it.
 *   find_peer        ends as soon as a reply names the peer with an address.
 *   closest_peers    the k closest peers that answered.
 *   find_providers   local providers first, then the network's, until `max`.
 *   get_value        the local record counts as one value; valid values of the network are
 *                    compared with kad_record_select; ends after the lookup or `quorum` values.
 *   put_value        stores locally, then PUT_VALUE to the k closest (acked = echoes).
 *   provide          stores ourselves locally, then ADD_PROVIDER to the k closest.
 * Entry correction (re-putting the best value to peers that had a worse one) is not done.
 *
 * Maintenance: every refresh_interval_ms (spec: 10 min) a lookup for our own id and one for a
 * random key in each non-empty bucket of common-prefix length ≤ 12. A full bucket pings its
 * least recently seen peer (libp2p ping) before a newcomer may replace it.
 *
 * Threads: loop thread only. Ownership: p2p_kad_new() allocates; p2p_kad_close() cancels
 * every operation, unregisters the handler, closes the timer and frees the object after
 * `done` runs. Peer and value pointers given to callbacks are valid during the call only. */
#ifndef PEERMCP_P2P_HOST_SVC_KAD_H
#define PEERMCP_P2P_HOST_SVC_KAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "p2p/proto/kad_msg.h"
#include "p2p/proto/kad_store.h"

typedef struct p2p_kad p2p_kad;

typedef struct p2p_kad_config {
  const char *protocol;          /* NULL = KAD_PROTOCOL_ID */
  bool server;                   /* answer the protocol (advertised through identify) */
  bool external_handler;         /* server: the owner registers the protocol (e.g. as a host
                                    service's handler) and hands streams to p2p_kad_serve */
  size_t k;                      /* 0 = KAD_K (20) */
  size_t alpha;                  /* 0 = KAD_ALPHA (3) */
  size_t quorum;                 /* get_value: 0 = 8 values */
  uint32_t rpc_timeout_ms;       /* 0 = 10000 */
  uint32_t query_timeout_ms;     /* 0 = 60000: one whole operation */
  uint32_t refresh_interval_ms;  /* 0 = 600000; UINT32_MAX = never */
  size_t max_ops;                /* 0 = 64 operations at once (-EBUSY past it) */
  size_t max_inbound_streams;    /* 0 = 256 */
  kad_store_config store;        /* bounds of what we keep for others */
} p2p_kad_config;

typedef struct p2p_kad_op_stats {
  uint32_t queries, replies, failures;
  uint32_t hops;                 /* find_peer: the hop that found the peer; else the largest hop
                                    among the closest peers that answered */
  uint64_t elapsed_ms;
} p2p_kad_op_stats;

typedef struct p2p_kad_stats {
  size_t table_size;
  uint64_t rpcs_out, rpcs_out_failed, rpcs_in, rpcs_in_refused;
  size_t ops_running;
} p2p_kad_stats;

/* peers: find_peer → the peer (n = 1); closest_peers / find_providers → the list. err 0,
 * -ENOENT (nothing found), -ETIMEDOUT (query_timeout_ms passed with nothing), -ECANCELED. */
typedef void (*p2p_kad_peers_fn)(p2p_kad *k, int err, const kad_peer_info *peers, size_t n,
                                 const p2p_kad_op_stats *st, void *ud);
/* value: the best valid value and who sent it ("" for our own store). */
typedef void (*p2p_kad_value_fn)(p2p_kad *k, int err, const uint8_t *value, size_t len, const char *from,
                                 const p2p_kad_op_stats *st, void *ud);
/* put_value / provide / bootstrap: acked = peers that took it (for provide: that were sent it). */
typedef void (*p2p_kad_done_fn)(p2p_kad *k, int err, size_t acked, const p2p_kad_op_stats *st, void *ud);

int p2p_kad_new(p2p_host *h, uv_loop_t *loop, const p2p_kad_config *cfg, p2p_kad **out)
    __attribute__((warn_unused_result));
/* Registers the handler (server mode) and starts the timer. 0 or a negative errno. */
int p2p_kad_start(p2p_kad *k) __attribute__((warn_unused_result));
void p2p_kad_close(p2p_kad *k, void (*done)(void *ud), void *ud);

/* An inbound stream of the protocol (with external_handler): serve it. */
void p2p_kad_serve(p2p_kad *k, p2p_stream *s);

/* The host identified peer_id (or it pushed an update): enter or leave the routing table. */
void p2p_kad_peer_identified(p2p_kad *k, const char *peer_id);

/* Bootstrap: addrs (multiaddrs with /p2p/) go to the peerstore, then a lookup for our own id
 * starts from those peers; cb reports how many peers answered. */
int p2p_kad_bootstrap(p2p_kad *k, const char *const *addrs, size_t n, p2p_kad_done_fn cb, void *ud)
    __attribute__((warn_unused_result));

int p2p_kad_find_peer(p2p_kad *k, const char *peer_id, p2p_kad_peers_fn cb, void *ud)
    __attribute__((warn_unused_result));
int p2p_kad_closest_peers(p2p_kad *k, const uint8_t *key, size_t len, p2p_kad_peers_fn cb, void *ud)
    __attribute__((warn_unused_result));
int p2p_kad_find_providers(p2p_kad *k, const uint8_t *key, size_t len, size_t max, p2p_kad_peers_fn cb,
                           void *ud) __attribute__((warn_unused_result));
int p2p_kad_get_value(p2p_kad *k, const uint8_t *key, size_t len, p2p_kad_value_fn cb, void *ud)
    __attribute__((warn_unused_result));
/* The value is validated first (kad_record.h) with us as storer: -ENOTSUP / -EINVAL / -EPERM. */
int p2p_kad_put_value(p2p_kad *k, const uint8_t *key, size_t len, const uint8_t *value, size_t vlen,
                      p2p_kad_done_fn cb, void *ud) __attribute__((warn_unused_result));
int p2p_kad_provide(p2p_kad *k, const uint8_t *key, size_t len, p2p_kad_done_fn cb, void *ud)
    __attribute__((warn_unused_result));

/* Our own store (to add local provider entries, e.g. the raw rendezvous key). */
kad_store *p2p_kad_get_store(p2p_kad *k);
/* Our announced addresses (no /p2p/), as put in provider records and FIND_NODE(self) answers. */
size_t p2p_kad_self_addrs(p2p_kad *k, const multiaddr **out);
void p2p_kad_get_stats(const p2p_kad *k, p2p_kad_stats *out);
const char *p2p_kad_protocol(const p2p_kad *k);

#endif

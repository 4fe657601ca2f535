/* svc_rendezvous.h — meeting the peers of a namespace through the DHT, as the Python MCP++
 * service does (p2p_tasks_spec.md §1.8-1.9; issue 15 §3), over svc_kad.
 *
 * Publish (at start, then every republish_interval_ms):
 *   - put_value("/ipfs-accelerate/task-queue/ns/<ns>", {"peer_id","multiaddr","ts"}) — the
 *     Python record, stored locally and at the k closest peers;
 *   - provide(0x12 0x20 ‖ sha256(ns)) — the provider key js and go servers accept;
 *   - ourselves as a provider of the raw namespace bytes in our own store, so a Python peer
 *     asking us GET_PROVIDERS(ns) finds us (no CID maps to those bytes, so that key is never
 *     sent to other servers).
 *   A publish that reaches nobody (empty routing table) is retried up to 20 times, 200 ms
 *   apart, as the Python service does, then waits for the next period.
 * Find: get_value of the record key, providers of the multihash key and of the raw key, in
 * parallel; the peers found (never ourselves), their addresses put into the peerstore (source
 * rendezvous), reported once all three lookups ended.
 *
 * What a record proves: the DHT server that stored it checked that its peer_id is the peer
 * that stored it (kad_record.h); nothing proves its multiaddr or that the peer still lives.
 *
 * Threads: loop thread only. Ownership: p2p_rendezvous_new() allocates; p2p_rendezvous_close()
 * cancels what runs (callbacks get -ECANCELED) and frees after `done`. */
#ifndef PEERMCP_P2P_HOST_SVC_RENDEZVOUS_H
#define PEERMCP_P2P_HOST_SVC_RENDEZVOUS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/host/svc_kad.h"
#include "p2p/proto/kad_record.h"

typedef struct p2p_rendezvous p2p_rendezvous;

typedef struct p2p_rendezvous_config {
  const char *ns;                  /* NULL = KAD_RENDEZVOUS_DEFAULT_NS */
  bool publish;                    /* announce ourselves (a client that only looks leaves it off) */
  uint32_t republish_interval_ms;  /* 0 = 1800 s; UINT32_MAX = publish once */
} p2p_rendezvous_config;

enum { P2P_RV_RECORD = 1, P2P_RV_PROVIDER = 2, P2P_RV_RAW_PROVIDER = 4 };

#define P2P_RV_MAX_PEERS 64
#define P2P_RV_MAX_ADDRS 4

typedef struct p2p_rendezvous_peer {
  char peer_id[PEERID_STR_MAX];
  multiaddr addrs[P2P_RV_MAX_ADDRS];  /* without /p2p/ */
  size_t n_addrs;
  unsigned how;                       /* P2P_RV_* bits: where we found it */
  double ts;                          /* the record's ts (P2P_RV_RECORD), else 0 */
} p2p_rendezvous_peer;

/* err 0 with n ≥ 1, or -ENOENT (nobody), -ECANCELED. */
typedef void (*p2p_rendezvous_find_fn)(p2p_rendezvous *r, int err, const p2p_rendezvous_peer *peers, size_t n,
                                       void *ud);
/* Reports each publish round: how many peers took the record and the provider record. */
typedef void (*p2p_rendezvous_published_fn)(p2p_rendezvous *r, int err, size_t record_acks, size_t provider_acks,
                                            void *ud);

int p2p_rendezvous_new(p2p_kad *k, p2p_host *h, uv_loop_t *loop, const p2p_rendezvous_config *cfg,
                       p2p_rendezvous **out) __attribute__((warn_unused_result));
/* Starts publishing (if cfg.publish). on_published may be NULL. */
int p2p_rendezvous_start(p2p_rendezvous *r, p2p_rendezvous_published_fn on_published, void *ud)
    __attribute__((warn_unused_result));
/* One find (at most 4 at once: -EBUSY). */
int p2p_rendezvous_find(p2p_rendezvous *r, p2p_rendezvous_find_fn cb, void *ud) __attribute__((warn_unused_result));
void p2p_rendezvous_close(p2p_rendezvous *r, void (*done)(void *ud), void *ud);
const char *p2p_rendezvous_ns(const p2p_rendezvous *r);

#endif

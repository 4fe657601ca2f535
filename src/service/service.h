/* service.h — the in-process P2P service as one unit for `peermcp serve`: the AuthContext
 * policy from the configuration, the TaskQueue op context, the task_queue.rpc tool, the
 * /mcp+p2p/1.0.0 (+ legacy NDJSON) stream handlers, the in-process workers (`p2p.workers`),
 * and the MCP tools a local client uses to reach other peers (mcp_server_spec.md §3.4):
 *
 *   p2p_service_status {include_peers?, peers_limit?}   this node: peer id, addresses, streams,
 *                                                         known peers, worker counters
 *   p2p_list_peers {limit?}                              peers seen: peer_id, addresses,
 *                                                         protocols, agent, last_seen
 *   p2p_remote_status {remote_multiaddr|peer_id, detail?, timeout_s?}
 *   p2p_remote_call_tool {tool_name, args?, remote_multiaddr|remote_peer_id, timeout_s?}
 *   p2p_remote_submit_task {task_type, model_name?, payload, idempotency_key?, remote_…}
 *   p2p_remote_task_get {task_id, remote_…}   p2p_remote_task_wait {task_id, timeout_s?, remote_…}
 *   p2p_remote_cache_get|has|delete {key, remote_…}   p2p_remote_cache_set {key, value, ttl_s?, …}
 * Each remote tool replies with the remote op reply ({"ok":…, "peer_id":<remote>, …, "via":
 * <the address of the connection that carried it>}) or {"ok":false,"error":<code>,"detail":
 * <sentence>} when the peer cannot be reached (service/dial_error.h). A live connection to the
 * target's PeerId is reused even when the target names another address: "via" says which
 * connection was used. Without the libp2p peer (--no-p2p) these tools are not registered. They are local-only tools (a peer
 * cannot make this node dial others). One connection and one stream per remote target is kept
 * and reused across calls. Deadlines and cancellation hold end to end: when a remote call is
 * cancelled or passes its deadline, its request is withdrawn and the peer gets
 * notifications/cancelled (a remote `wait` stops).
 *
 * Two phases, because tools must be registered before the dispatcher exists and the host
 * comes after it:
 *   svc_service_new      main thread, before mcp_dispatcher_new: the op context (over the
 *                        node's policy), registers the tools;
 *   svc_service_start    loop thread, after the host listens and the dispatcher exists
 *                        (host may be NULL with --no-p2p: workers and local tools still run);
 *   svc_service_stop     loop thread: stop accepting, drain in-flight requests until the
 *                        deadline, stop workers (running tasks released), close clients;
 *                        then done(ud);
 *   svc_service_free     after the dispatcher has been freed (the tools' ud is the service).
 * Threads: the p2p_* tools are MCP_TOOL_ASYNC: they run on the loop thread and a remote call
 * holds no thread while it waits for the peer (mcp/tool.h). The op table's cache replication
 * hook runs on a worker and queues its sends to the loop; everything else is loop-thread
 * only. */
#ifndef PEERMCP_SERVICE_SERVICE_H
#define PEERMCP_SERVICE_SERVICE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "auth/policy.h"
#include "config/config.h"
#include "mcp/dispatch.h"
#include "mcp/registry.h"
#include "mcp/tasks.h"
#include "p2p/host/host.h"
#include "p2p/host/nat.h"
#include "store/cache.h"
#include "taskq/local_source.h"
#include "store/queue.h"

typedef struct svc_service svc_service;

/* q / c may be NULL (their ops answer queue_disabled / cache_disabled). cfg and policy (the
 * node's: trusted peers, shared token, JWTs; NULL = closed) are borrowed and must outlive the
 * service. Errors: -ENOMEM, registry errors. */
int svc_service_new(const config *cfg, const auth_policy *policy, tq_queue *q, ttlcache *c, mcp_registry *reg,
                    svc_service **out) __attribute__((warn_unused_result));
/* MCP Tasks for peers (mcp/tasks.h): call before svc_service_start; the backend must outlive
 * svc_service_stop (peers' sessions are gone by then). NULL (default) = not offered. */
void svc_service_set_mcp_tasks(svc_service *s, const mcp_tasks_backend *tasks);
/* How the p2p_remote_* tools find a bare PeerId the host's peer table has no address for (the
 * node's discovery: mDNS, the DHT). fn starts a search of at most timeout_ms and calls done(arg,
 * err) exactly once, later (never from inside fn); err 0 = the peer table now has addresses.
 * fn returns 0, or a negative errno when it started nothing (then done is never called).
 * Without a resolver such a PeerId is dialed from the peer table alone. Loop thread only. */
typedef int (*svc_resolve_fn)(void *ud, const char *peer_id, uint32_t timeout_ms,
                              void (*done)(void *arg, int err), void *arg);
void svc_service_set_resolver(svc_service *s, svc_resolve_fn fn, void *ud, uint32_t timeout_ms);
/* The host's NAT part (p2p/host/nat.h; NULL = none) and whether AutoNAT runs: p2p_service_status
 * carries its "nat" object, the status op nat.autonat {supported, status, code} (issue 16 §4).
 * nat must stay valid until svc_service_stop, or be unset first. Loop thread only. */
void svc_service_set_nat(svc_service *s, p2p_nat *nat, bool autonat);
/* The claim of the in-process workers (p2p.workers) over the local queue: call before
 * svc_service_start. NULL (default) = tq_claim_next. The node passes
 * mcp_tasks_queue_claim_others while the MCP Tasks runner runs MCP tasks itself. */
void svc_service_set_worker_claim(svc_service *s, taskq_local_claim_fn fn, void *ud);
int svc_service_start(svc_service *s, uv_loop_t *loop, p2p_host *host, mcp_dispatcher *d)
    __attribute__((warn_unused_result));
void svc_service_stop(svc_service *s, uint32_t deadline_ms, void (*done)(void *ud), void *ud);
void svc_service_free(svc_service *s);

#endif

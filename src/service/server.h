/* server.h — the service's stream handlers on the libp2p host: /mcp+p2p/1.0.0 (always) and the
 * legacy NDJSON /ipfs-datasets/task-queue/1.0.0 (only when enabled), p2p_tasks_spec.md §1.4,
 * §2.1–2.3.
 *
 * Each inbound /mcp+p2p/1.0.0 stream gets a svc_mcpp_conn (mcpp.h) — the MCP session core
 * (mcp/session.h) behind u32 framing — whose tool calls go to the dispatcher as remote calls
 * with the stream's AuthContext (the Noise-proven PeerId plus any token presented), and whose
 * MCP Tasks go to opts.tasks. Per peer: at most max_streams_per_peer concurrent service streams (more are
 * reset) and two token buckets shared by all its streams: frames of a caller holding no scope
 * draw from one (rate_per_s frames per second, burst rate_burst), frames of a caller holding a
 * scope from the other (auth_rate_per_s, burst auth_rate_burst; 0 = no limit, the default). A legacy stream carries one request: it is dispatched as task_queue.rpc and
 * answered with one NDJSON line, then the stream is closed.
 *
 * Backpressure and budgets (issue 9): replies go through p2p_stream_write; when the stream's
 * send queue is full the stream stops reading until it drains. What a stream holds — unsent
 * output, its partial frame, and every call in flight charged at the size of its recent
 * replies — counts against three budgets: the stream's (stream_budget), its peer's over all its
 * streams (peer_budget) and the process's (process_budget). While any is used up the stream
 * reads nothing more (the bytes it did not take stay in the host, uncredited, so the peer
 * stops sending); once there is room it reads again. A reply that would pass a budget while
 * earlier output of its stream still waits becomes a -32010 "output_budget_exceeded" error. So
 * a peer that does not read holds at most about its budgets, never 4 frames per stream. A
 * peer's tools/call beyond max_inflight_per_peer in flight over all its streams (its TaskQueue
 * waits, which hold no thread, aside) are held by their streams and start as its calls end, so
 * one peer cannot queue thousands of CPU-heavy calls ahead of everyone else's on the worker
 * pools (with a pool that grows to 64 threads on 2 cores, that starves the loop itself).
 *
 * Strangers (issue 9 item 3): a stream whose caller holds no scope — the PeerId is not trusted
 * and no token was presented yet on any of its streams — gets the small frame limit
 * (stranger_max_frame_bytes) and counts against stranger_max_streams; once a stream of the peer
 * holds a scope the peer is "authorized" (svc_server_peer_authorized: the host keeps
 * connection slots for it). A frame whose header has arrived must be complete within
 * frame_timeout_ms (while the stream is not held back by a budget), else -32003
 * frame_timeout and the stream stops reading.
 *
 * No request read is left unanswered: whatever stops a stream's input (a limit, a framing
 * error, the server stopping) lets the requests it read finish and be answered before the
 * stream closes; svc_server_stop waits for them and for their output to be written.
 *
 * Threads: loop thread only. Ownership: the server borrows host, dispatcher, registry and
 * policy (all must outlive it); svc_server_stop then svc_server_free. */
#ifndef PEERMCP_SERVICE_SERVER_H
#define PEERMCP_SERVICE_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mcp/dispatch.h"
#include "mcp/tasks.h"
#include "p2p/host/host.h"
#include "auth/policy.h"

#define SVC_LEGACY_PROTOCOL "/ipfs-datasets/task-queue/1.0.0"

typedef struct svc_server svc_server;

typedef struct svc_server_opts {
  uv_loop_t *loop;               /* the host's loop */
  p2p_host *host;
  mcp_dispatcher *dispatcher;
  const mcp_tasks_backend *tasks; /* MCP Tasks offered to peers; NULL = none (borrowed: must
                                     outlive the server's streams) */
  const auth_policy *policy; /* NULL: closed (status only) */
  size_t max_frame_bytes;        /* inbound; 0 → 1 MiB */
  uint32_t max_frames;           /* per stream; 0 → 1000000 */
  uint32_t max_streams_per_peer; /* 0 → 64 */
  double rate_per_s;             /* frames per second per peer; 0 → 100; SVC_RATE_UNLIMITED: none */
  double rate_burst;             /* bucket capacity; 0 → rate_per_s */
  double auth_rate_per_s;        /* frames per second per peer of callers holding a scope;
                                    0 → no limit */
  double auth_rate_burst;        /* 0 → auth_rate_per_s */
  uint32_t call_timeout_ms;      /* tools/call deadline; 0 → the tool's / dispatcher's */
  bool legacy;                   /* also serve /ipfs-datasets/task-queue/1.0.0 */
  bool trust_tiers;              /* scale each stream's frame budget by its caller's tier */
  uint32_t init_timeout_ms;      /* a stream must initialize (legacy: send its line) within
                                    this; 0 → 10000 */
  uint32_t idle_timeout_ms;      /* a stream with nothing in flight and no frame for this long
                                    is closed; 0 → 300000 */
  uint32_t frame_timeout_ms;     /* a frame must be complete this long after its header; 0 → 10000 */
  size_t stream_budget;          /* bytes one stream may hold and owe; 0 → 4 MiB */
  size_t peer_budget;            /* over all of a peer's streams; 0 → 8 MiB */
  size_t process_budget;         /* over every stream; 0 → 256 MiB */
  size_t stranger_max_frame_bytes; /* frame / line limit while the caller holds no scope; 0 → 64 KiB */
  uint32_t stranger_max_streams; /* streams at once for such a caller; 0 → 4 */
  uint32_t max_inflight_per_peer; /* requests in flight over all of a peer's streams before more
                                     tools/call wait (a fair share of the worker pools); 0 → 16 */
} svc_server_opts;

#define SVC_SERVER_DEFAULT_FRAME_TIMEOUT_MS 10000u
#define SVC_SERVER_DEFAULT_STREAM_BUDGET (4u * 1024u * 1024u)
#define SVC_SERVER_DEFAULT_PEER_BUDGET (8u * 1024u * 1024u)
#define SVC_SERVER_DEFAULT_PROCESS_BUDGET (256u * 1024u * 1024u)
#define SVC_SERVER_DEFAULT_STRANGER_FRAME (64u * 1024u)
#define SVC_SERVER_DEFAULT_STRANGER_STREAMS 4u
#define SVC_SERVER_DEFAULT_PEER_INFLIGHT 16u

/* Registers the handlers. 0 or -errno (nothing registered then). */
int svc_server_start(const svc_server_opts *o, svc_server **out) __attribute__((warn_unused_result));

/* Stops accepting streams (handlers removed), lets requests in flight finish until
 * deadline_ms (monotonic ms from now), then resets what is left and calls done(ud). */
void svc_server_stop(svc_server *s, uint32_t deadline_ms, void (*done)(void *ud), void *ud);
/* After done ran (or if never started): frees (the memory goes once the sweep timer's handle
 * has closed, on the next loop iteration). Streams still open are reset. */
void svc_server_free(svc_server *s);

/* {"streams":n,"peers":n,"legacy":bool,"budgets":{"held_bytes","held_output_bytes",
 * "paused_streams","pauses","refused_replies","stranger_streams_refused"},
 * "mcp_p2p":{"stats":{…counters…}}} (new reference). */
json_t *svc_server_stats_json(const svc_server *s);
/* The buffered-bytes budgets: held now and the high-water marks since start (over every stream:
 * the process budget), pauses, refused replies, and the three budgets. Any thread (published
 * atomics); NULL s → NULL. New reference. */
json_t *svc_server_budget_json(const svc_server *s);

/* True when a stream of this peer held a scope (trusted PeerId, or a token accepted) while
 * the server remembers the peer (it keeps up to 4096, dropping idle ones first). */
bool svc_server_peer_authorized(const svc_server *s, const char *peer_id);

#endif

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
 * Backpressure: replies go through p2p_stream_write; when the stream's send queue is full the
 * stream stops reading until it drains, so a peer that does not read cannot make us buffer
 * more than about one reply.
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
} svc_server_opts;

/* Registers the handlers. 0 or -errno (nothing registered then). */
int svc_server_start(const svc_server_opts *o, svc_server **out) __attribute__((warn_unused_result));

/* Stops accepting streams (handlers removed), lets requests in flight finish until
 * deadline_ms (monotonic ms from now), then resets what is left and calls done(ud). */
void svc_server_stop(svc_server *s, uint32_t deadline_ms, void (*done)(void *ud), void *ud);
/* After done ran (or if never started): frees (the memory goes once the sweep timer's handle
 * has closed, on the next loop iteration). Streams still open are reset. */
void svc_server_free(svc_server *s);

/* {"streams":n,"peers":n,"legacy":bool,"mcp_p2p":{"stats":{…counters…}}} (new reference). */
json_t *svc_server_stats_json(const svc_server *s);

#endif

/* mcpp.h — the server side of /mcp+p2p/1.0.0 (MCP++ Profile E) for one stream, sans-I/O
 * (p2p_tasks_spec.md §2.3, mcp_server_spec.md §5.3(b); the fixes of §12.4, §12.21).
 *
 * A thin transport around the one MCP session core (mcp/session.h), the same as stdio uses:
 * both MCP eras, MCP Tasks (env.tasks), notifications/cancelled, progress, pagination, logging —
 * with the extension points set so the wire contract Python clients rely on holds:
 *   - u32 frames (frame.h), the declared size checked before allocation; a framing error →
 *     {"id":null,"error":{"code":-32003,"message":"frame_too_large|invalid_json|invalid_message"}}
 *     then close; outgoing frames are compact ASCII JSON;
 *   - token buckets (shared per peer by the caller, or one per stream) and a frame cap per
 *     stream: past either → -32010 "rate_limited" for the crossing request, then the stream
 *     reads nothing more (a notification just stops input).
 *     A frame whose caller holds no scope draws from the stranger bucket (rate_*); one whose
 *     caller holds a scope (a trusted PeerId, a token, a JWT) from the authorized bucket
 *     (auth_rate_*), which by default does not limit: an authorized peer is bounded by what it
 *     may hold in flight, not by a frame rate (a worker or a mesh needs thousands per second).
 *     The initialize result advertises the bucket that applies to the caller then;
 *   - no request read is left unanswered: whenever input stops (a limit, a framing error,
 *     invalid_jsonrpc, init_required, a frame that timed out, the server stopping) the
 *     requests already read run to their deadlines and are answered, then the conn is done
 *     (svc_mcpp_done) and the transport closes. Only an output that cannot be written at all
 *     (out of memory) ends the conn with calls unanswered;
 *   - jsonrpc != "2.0" → -32600 "invalid_jsonrpc" then input stops; the first legacy-era
 *     request must be initialize (else -32000 "init_required" then input stops; 2026-07-28
 *     requests, which carry their version in _meta, need none); notifications never get
 *     replies;
 *   - a NUL (\u0000, which frames may carry in strings) in a field that becomes a C string —
 *     method, id, token, params.name / .token / .uri / .protocolVersion — is -32600
 *     "invalid_request: NUL character (\u0000) in <field>" (the stream stays open);
 *   - only a frame the stream accepts changes its auth: a token in a frame refused for its
 *     jsonrpc, its NULs, or because it came before initialize raises nothing;
 *   - a caller holding no scope gets env.stranger_max_frame_bytes as its frame limit until a
 *     token gives it scopes (the initialize result's limits.max_frame_bytes says which applies);
 *   - budgets (env.may_read, env.admit_output): the transport says when input must wait
 *     (svc_mcpp_feed_some then stops early and returns what it did not take) and whether a
 *     reply may be buffered; a refused reply becomes a small -32010 "output_budget_exceeded"
 *     error (a refused notification is dropped). svc_mcpp_held_bytes says what the conn holds
 *     and owes: output not yet taken, the partial frame, and each call in flight charged at
 *     the size of the stream's recent replies (16 KiB until it has sent some);
 *   - several requests in flight, answered by id in completion order (cap: max_inflight, over
 *     it → -32010 "too_many_requests", the stream stays open); a tools/call read while
 *     env.may_start says no (the peer's share of the workers is busy) is held and starts when
 *     svc_mcpp_resume finds room — in order, counted in the budgets; notifications/cancelled
 *     drops a held call without an answer, a stop answers them -32603 "shutting_down";
 *   - initialize without a protocolVersion (Python) negotiates 2024-11-05; the result also
 *     carries the keys Python clients read: ok, transport, server.peer_id, profile_negotiation,
 *     active_profile, limits, capabilities.mcpPlusPlusProfiles/experimental;
 *   - credentials (auth/policy.h): a "token" in initialize params or any frame's top-level
 *     "token" — the shared token or a JWT — applies to the rest of the stream: the shared
 *     token adds its scopes; a JWT (validated by the same validator as HTTP's) replaces any
 *     earlier JWT of the stream (its scopes, subject, expiry; the Noise PeerId stays). One that
 *     is not valid refuses that request (-32001 "unauthorized", logged and counted) and changes
 *     nothing. Once a JWT has expired, later requests that need a scope are unauthorized;
 *   - trust tiers (env.trust_tiers, p2p_tasks_spec.md §4.3, from verified credentials only):
 *     a trusted caller (token or JWT) pays half a rate token per frame and gets twice the frame
 *     cap, an elevated one (a trusted PeerId) 1/1.5 and 1.5 times;
 *   - tools/list (alias tools.list): only MCP_TOOL_REMOTE, non-hidden tools whose scopes the
 *     caller holds (and tool.call, except task_queue.rpc); nothing for a caller without scopes;
 *   - tools/call (alias tools.call) through the dispatcher with the caller's auth: a standard
 *     CallToolResult, except task_queue.rpc, answered {"content": <op reply>} and run with the
 *     message's own "token" too; unknown tool → -32002 "unknown_tool", missing scope (or no
 *     tool.call scope, also for the tasks methods) → -32001 "unauthorized" (counted in
 *     stats.unauthorized, as is a task_queue.rpc op answered unauthorized);
 *   - no notifications/message unless the client asked (logging/setLevel or _meta logLevel).
 *
 * Ownership: svc_mcpp_conn is created and freed by its transport; it owns its buffers and its
 * session (freeing it detaches calls in flight). The environment is copied; what it points to
 * is borrowed and must outlive every conn.
 * Threads: the dispatcher's loop thread only. */
#ifndef PEERMCP_SERVICE_MCPP_H
#define PEERMCP_SERVICE_MCPP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcp/dispatch.h"
#include "mcp/registry.h"
#include "mcp/session.h"
#include "mcp/tasks.h"
#include "auth/auth.h"
#include "auth/policy.h"
#include "taskq/rpc_tool.h"
#include "util/buf.h"

#define SVC_MCPP_PROTOCOL "/mcp+p2p/1.0.0"

/* JSON-RPC error codes of the Python service (their numbers live in mcp/session.h). */
enum {
  SVC_MCPP_E_INIT_REQUIRED = MCP_RPC_MCPP_INIT_REQUIRED,
  SVC_MCPP_E_UNAUTHORIZED = MCP_RPC_MCPP_UNAUTHORIZED,
  SVC_MCPP_E_TOOL = MCP_RPC_MCPP_UNKNOWN_TOOL,
  SVC_MCPP_E_FRAME = MCP_RPC_MCPP_FRAME_ERROR,
  SVC_MCPP_E_RATE = MCP_RPC_MCPP_RATE_LIMITED,
};

/* A token bucket: `capacity` tokens, refilled at `rate` per second, one per frame. A negative
 * rate (SVC_RATE_UNLIMITED) never runs out: config p2p.rate_limit_per_second 0 = no limit. */
#define SVC_RATE_UNLIMITED (-1.0)
typedef struct svc_rate {
  double tokens, capacity, rate;
  int64_t last_us;
} svc_rate;
void svc_rate_init(svc_rate *r, double capacity, double rate_per_s);
/* Takes one token at time now_us (clock_mono_us scale). False when empty. */
bool svc_rate_take(svc_rate *r, int64_t now_us);
/* The same for a cost other than one token (trust tiers: 1/2, 1/1.5). */
bool svc_rate_take_cost(svc_rate *r, int64_t now_us, double cost);

typedef struct svc_mcpp_conn svc_mcpp_conn;

typedef struct svc_mcpp_env {
  const char *peer_id;            /* ours */
  const auth_policy *policy;  /* trusted peers + token (may be NULL: closed) */
  mcp_dispatcher *dispatcher;     /* required */
  const mcp_tasks_backend *tasks; /* MCP Tasks; NULL = not offered */
  size_t max_frame_bytes;         /* inbound cap (0 → 1 MiB) */
  size_t max_out_frame_bytes;     /* outbound cap (0 → 16 MiB) */
  uint32_t max_frames;            /* frames per stream (0 → 1000000) */
  double rate_capacity;           /* stranger bucket (0 → 100) */
  double rate_refill_per_s;       /* (0 → 100; SVC_RATE_UNLIMITED: no limit) */
  double auth_rate_capacity;      /* authorized bucket; refill 0 = no limit for them */
  double auth_rate_refill_per_s;
  svc_rate *auth_rate;            /* the peer's shared authorized bucket (borrowed, outlives
                                     the conn); NULL with a refill set → one per stream */
  size_t max_inflight;            /* requests in flight per stream (0 → 64) */
  size_t page_size;               /* tools/list page (0 → 50) */
  uint32_t call_timeout_ms;       /* 0 → the tool's / dispatcher's default */
  uint32_t rpc_timeout_ms;        /* task_queue.rpc deadline (0 → 330000: wait cap + margin) */
  bool trust_tiers;               /* scale the frame budget by the caller's tier */
  size_t stranger_max_frame_bytes;/* inbound cap while the caller holds no scope (0 → the same
                                     as max_frame_bytes) */
  /* Budgets (optional, both called with ud on the loop thread): may_read false → stop taking
   * input now; admit_output(len) false → do not buffer an outgoing message of len bytes (every
   * reply and notification is asked; server-to-client requests are not). */
  bool (*may_read)(void *ud);
  bool (*admit_output)(void *ud, size_t len);
  /* May one more tools/call start now (a TaskQueue `wait` is not asked)? false → the call is
   * held, in order, until svc_mcpp_resume finds room (optional). */
  bool (*may_start)(void *ud);
  /* may_start asked right after a may_read that said yes for the same frame, with nothing the
   * transport counts changed since (the frame was checked where it lay in the input: the
   * decoder holds no more bytes than it did, no output, no call started or ended): the
   * transport's budgets are as may_read left them, so it may skip settling them again and
   * answer only what may_read did not ask (optional; without it, may_start is asked). */
  bool (*may_start_unchanged)(void *ud);
  /* Output was appended outside svc_mcpp_feed (a call or task op completed): the transport
   * should flush soon — later, from its own callback: the conn must not be freed inside. */
  void (*on_output)(void *ud);
  void *ud;
} svc_mcpp_env;

/* remote_peer_id: the PeerId Noise proved (NULL for tests / unknown). rate: the peer's shared
 * bucket, or NULL to give this stream its own. NULL on ENOMEM. */
svc_mcpp_conn *svc_mcpp_new(const svc_mcpp_env *env, const char *remote_peer_id, svc_rate *rate);
/* Detaches every call still in flight, frees everything (never from inside on_output). */
void svc_mcpp_free(svc_mcpp_conn *c);

/* Feeds received bytes. Returns 0, or -EPIPE once the conn reads no more (input ignored). */
int svc_mcpp_feed(svc_mcpp_conn *c, const uint8_t *data, size_t len) __attribute__((warn_unused_result));
/* The same, stopping early while env.may_read says no: *used is how many bytes were taken
 * (all of them once the conn reads no more); the rest must be fed again later. */
int svc_mcpp_feed_some(svc_mcpp_conn *c, const uint8_t *data, size_t len, size_t *used)
    __attribute__((warn_unused_result));
/* The peer closed its write side: once in-flight calls are answered the conn is done. A frame
 * cut short just ends the session (Python's "eof"). */
void svc_mcpp_eof(svc_mcpp_conn *c);

/* The server is stopping: input stops, open subscriptions and tasks/result waits end (those
 * get a -32603 "retry later" error; the tasks go on) so that only real calls are drained. */
void svc_mcpp_stopping(svc_mcpp_conn *c);
/* Input stops for `why` (static string: "frame_timeout" also answers the partial frame with
 * -32003 frame_timeout); requests read so far are still answered. */
void svc_mcpp_stop_input(svc_mcpp_conn *c, const char *why);
/* Still reading (no limit crossed, no EOF, not stopped). */
bool svc_mcpp_reading(const svc_mcpp_conn *c);
/* Why input stopped ("rate_limited", "invalid_json", "frame_timeout", …), NULL while reading. */
const char *svc_mcpp_drain_reason(const svc_mcpp_conn *c);
/* The frame limit that applies now (the stranger limit or max_frame_bytes). */
size_t svc_mcpp_frame_limit(const svc_mcpp_conn *c);
/* Monotonic ms (clock_mono_ms) at which the partial frame now in the decoder began, 0 = none.
 * svc_mcpp_restart_frame_clock restarts it (input was held back by the transport, not late). */
int64_t svc_mcpp_partial_since_ms(const svc_mcpp_conn *c);
void svc_mcpp_restart_frame_clock(svc_mcpp_conn *c);
/* Bytes held and owed: unsent output + the partial frame + calls in flight × recent reply size
 * + calls held for the peer's share. */
size_t svc_mcpp_held_bytes(const svc_mcpp_conn *c);
/* What one more call in flight is charged: the stream's recent successful replies (an error
 * reply, output_budget_exceeded above all, does not lower it). */
size_t svc_mcpp_call_charge(const svc_mcpp_conn *c);
/* Of the requests in flight, those that wait rather than work — TaskQueue `wait`, and `claim`
 * with wait_s > 0 — which the transport should not count against the peer's share of the
 * workers (env.may_start is not asked for them either). */
size_t svc_mcpp_waiting(const svc_mcpp_conn *c);
/* tools/call held until the peer's share of the workers has room, and starting them while
 * env.may_start allows (returns how many started; output follows through on_output, or is
 * in svc_mcpp_output for the caller to flush). */
size_t svc_mcpp_held_calls(const svc_mcpp_conn *c);
int svc_mcpp_resume(svc_mcpp_conn *c);
/* The budget figures above in one call (the transport reads them several times a call):
 * out = buf_len(svc_mcpp_output), held = svc_mcpp_held_bytes, working = svc_mcpp_inflight −
 * svc_mcpp_waiting, held_calls = svc_mcpp_held_calls. */
typedef struct svc_mcpp_figures {
  size_t out, held, working, held_calls;
} svc_mcpp_figures;
void svc_mcpp_get_figures(const svc_mcpp_conn *c, svc_mcpp_figures *f);

/* Bytes waiting to be written (they stay until consumed). */
buf *svc_mcpp_output(svc_mcpp_conn *c);
/* True once the conn will produce nothing more (input stopped and every call answered, or
 * it gave up): flush the output, then close the stream. */
bool svc_mcpp_done(const svc_mcpp_conn *c);
/* Requests in flight. */
size_t svc_mcpp_inflight(const svc_mcpp_conn *c);
/* initialize done, or a 2026-07-28 request served. */
bool svc_mcpp_initialized(const svc_mcpp_conn *c);
/* The stream's current caller (after tokens presented so far). */
const auth_ctx *svc_mcpp_auth(const svc_mcpp_conn *c);

/* Process-wide counters (§2.3 get_mcp_p2p_stats), a new object. */
json_t *svc_mcpp_stats_json(void);

#endif

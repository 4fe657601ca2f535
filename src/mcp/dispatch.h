/* dispatch.h — the one dispatcher every transport uses to run a tool (the seed's ToolDispatcher).
 *
 * A call: look the tool up, refuse it to remote callers unless it is MCP_TOOL_REMOTE (a refused
 * tool looks exactly like an unknown one), check the caller's scopes, validate the arguments
 * against the input schema (filling defaults), run the handler where its flags say (tool.h: the
 * short pool, the long pool, inline, or on the loop for MCP_TOOL_ASYNC tools, which may finish
 * later with mcp_call_complete), enforce the deadline (default 30 s, per-tool timeout_ms,
 * per-call override), and produce one normalized envelope:
 *
 *   {"status":"success", "result":<value>, "request_id":"<uuid4>", "category":"…", "tool":"…",
 *    "duration_ms":N}
 *   {"status":"error", "error":"<message>", "error_type":"<kind>", "request_id":…, "category":…,
 *    "tool":…, "duration_ms":N, …extra fields such as available_tools / available_categories}
 *
 * error_type is one of the mcp_dispatch_status names below ("tool_error", "invalid_arguments",
 * "unknown_tool", "unknown_category", "forbidden", "timeout", "cancelled", "shutting_down",
 * "internal", "busy"). mcp_dispatch_call_result() turns an envelope into an MCP CallToolResult.
 *
 * Two bounded pools. Short calls (the default) run on the short pool: `threads` workers growing
 * to `max_threads` while every worker is busy. Calls that may block for long (MCP_TOOL_LONG, or
 * a tool's is_long saying so for these arguments) run on the long pool: up to `long_threads`
 * workers, then up to `long_queue` calls wait for a thread (their deadline runs meanwhile); a
 * long call beyond that completes at once with MCP_DISPATCH_BUSY ("busy": retry later). So
 * waits and child processes can never take the threads short calls need, and a flood of waits
 * is refused instead of queued without bound. MCP_TOOL_ASYNC calls hold no thread at all.
 *
 * Deadline and cancellation of an asynchronous (pending) call: when the deadline passes the
 * caller gets "timeout" at once and the tool's cancel callback runs; on mcp_dispatch_cancel the
 * cancel callback runs and the completion comes when the tool completes (with "cancelled"), or
 * at the deadline; on mcp_dispatch_detach or mcp_dispatcher_free the cancel callback runs and
 * nobody is told. In every case the tool's later mcp_call_complete is accepted and its result
 * dropped; the call's memory lives until then (tool.h "Asynchronous completion").
 *
 * Threads: mcp_dispatcher_new/free, mcp_dispatch_start, mcp_dispatch_cancel and
 * mcp_dispatch_detach run on the loop thread; the completion, notification and cancel
 * callbacks are called on the loop thread. mcp_dispatch_invoke runs on a worker thread (inside
 * a handler). The registry is read-only once the dispatcher exists. */
#ifndef PEERMCP_MCP_DISPATCH_H
#define PEERMCP_MCP_DISPATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "mcp/registry.h"
#include "mcp/tool.h"
#include "util/trace.h"

typedef struct mcp_dispatcher mcp_dispatcher;

#define MCP_DISPATCH_DEFAULT_TIMEOUT_MS 30000u
#define MCP_DISPATCH_MAX_DEPTH 8 /* nested mcp_dispatch_invoke levels */

typedef enum {
  MCP_DISPATCH_OK = 0,
  MCP_DISPATCH_TOOL_ERROR,        /* the handler returned MCP_TOOL_ERROR */
  MCP_DISPATCH_INVALID_ARGUMENTS, /* arguments failed the input schema */
  MCP_DISPATCH_UNKNOWN_TOOL,      /* no such tool (or hidden from this caller) */
  MCP_DISPATCH_UNKNOWN_CATEGORY,  /* mcp_dispatch_invoke with a category that does not exist */
  MCP_DISPATCH_FORBIDDEN,         /* caller lacks a required scope */
  MCP_DISPATCH_TIMEOUT,           /* deadline passed */
  MCP_DISPATCH_CANCELLED,         /* the caller cancelled */
  MCP_DISPATCH_SHUTTING_DOWN,     /* the dispatcher is draining; no new calls */
  MCP_DISPATCH_INTERNAL,          /* out of memory, handler returned nothing, … */
  MCP_DISPATCH_BUSY,              /* a long call found the long pool and its queue full */
} mcp_dispatch_status;

/* "tool_error", "invalid_arguments", … ("success" for MCP_DISPATCH_OK). */
const char *mcp_dispatch_status_name(mcp_dispatch_status st);

#define MCP_DISPATCH_DEFAULT_LONG_THREADS 64u
#define MCP_DISPATCH_DEFAULT_LONG_QUEUE 256u

/* The access log: one line per finished top-level call on stderr (util/log.h), {"ts", "level",
 * "msg":"dispatch", "request_id", "tool", "status", "duration_ms"}. Lines are built without
 * jansson and written once per loop iteration for all calls that finished in it (a burst of
 * calls costs one write(2)). Config key log.access (docs/config.md). */
typedef enum {
  MCP_ACCESS_LOG_DEBUG = 0, /* default: a success at level debug, anything else at info */
  MCP_ACCESS_LOG_ON = 1,    /* every call at info */
  MCP_ACCESS_LOG_OFF = 2,   /* no line at all */
} mcp_access_log;

/* An inline handler that runs longer than this on the loop thread, MCP_DISPATCH_INLINE_STRIKES
 * times in a row (one slow run may be the machine's doing), or that calls mcp_call_sleep there,
 * is not inline: the dispatcher logs it and runs that tool on the short pool from then on
 * (tool.h, MCP_TOOL_INLINE). */
#define MCP_DISPATCH_INLINE_BUDGET_US 10000
#define MCP_DISPATCH_INLINE_STRIKES 3

typedef struct mcp_dispatcher_opts {
  uint32_t default_timeout_ms; /* 0 = MCP_DISPATCH_DEFAULT_TIMEOUT_MS */
  unsigned threads;            /* short pool: worker threads at start; 0 = 8 */
  unsigned max_threads;        /* short pool: growth cap while all are busy; 0 = 64 */
  unsigned long_threads;       /* long pool: most threads (started as needed); 0 = 64 */
  unsigned long_queue;         /* long pool: most calls waiting for a thread; 0 = 256 */
  uint32_t idle_exit_ms;       /* both pools: a thread added beyond the start count exits after
                                  idling this long; 0 = WORKPOOL_DEFAULT_IDLE_EXIT_MS (30 s) */
  mcp_access_log access_log;   /* the per-call log line; default MCP_ACCESS_LOG_DEBUG */
} mcp_dispatcher_opts;

/* The registry is borrowed and must outlive the dispatcher. opts may be NULL. */
int mcp_dispatcher_new(uv_loop_t *loop, mcp_registry *reg, const mcp_dispatcher_opts *opts,
                       mcp_dispatcher **out) __attribute__((warn_unused_result));
/* Loop thread. Cancels nothing: call mcp_dispatcher_shutdown and wait for in-flight calls to
 * complete first. Calls still in flight are detached (cancel callbacks of pending asynchronous
 * tools run); waits for running handlers (they see cancelled), joins both pools; run the loop
 * once more afterwards so handles close. The dispatcher's memory is released when the last
 * pending asynchronous tool has called mcp_call_complete. */
void mcp_dispatcher_free(mcp_dispatcher *d);
mcp_registry *mcp_dispatcher_registry(const mcp_dispatcher *d);
/* After this, new calls complete at once with MCP_DISPATCH_SHUTTING_DOWN. */
void mcp_dispatcher_shutdown(mcp_dispatcher *d);
/* Calls started and not yet completed (loop thread). */
size_t mcp_dispatcher_inflight(const mcp_dispatcher *d);
/* The short pool, for blocking background jobs of the server itself (storage maintenance).
 * Valid until mcp_dispatcher_free, which drains it. */
struct workpool *mcp_dispatcher_pool(const mcp_dispatcher *d);
/* The long pool, for background jobs that may block for long (a tasks/result wait); its queue
 * bound applies (workpool_submit answers -EBUSY). Valid until mcp_dispatcher_free. */
struct workpool *mcp_dispatcher_long_pool(const mcp_dispatcher *d);
/* Seconds since mcp_dispatcher_new (for server_info). */
double mcp_dispatcher_uptime_s(const mcp_dispatcher *d);

/* How a call reports progress and log lines back to its transport. Called on the loop thread,
 * only while the call is neither completed nor detached, and always before its completion. */
typedef struct mcp_call_sink {
  /* progress_token is the caller's token (borrowed); total < 0 = unknown; message may be NULL. */
  void (*progress)(void *ud, json_t *progress_token, double progress, double total, const char *message);
  /* level is an MCP logging level name ("debug" … "emergency"). */
  void (*log)(void *ud, const char *level, const char *message);
  void *ud;
} mcp_call_sink;

/* What a transport asks for. Everything is borrowed for the duration of mcp_dispatch_start
 * only: `auth` is copied (strings included), so a handler may outlive its transport. */
typedef struct mcp_call_request {
  const char *tool;
  json_t *args;             /* NULL = {}; deep-copied */
  const mcp_auth *auth;     /* required; copied */
  bool remote;              /* remote caller: only MCP_TOOL_REMOTE tools exist for it */
  json_t *progress_token;   /* string or integer, NULL = none; copied */
  uint32_t timeout_ms;      /* 0 = the tool's timeout_ms, else the default */
  const char *request_id;   /* NULL = a fresh uuid4 */
  mcp_call_sink sink;       /* may be all-NULL */
  /* Optional per-call context of the transport's session (mcp/reqctx.h: what the client
   * declared and answered, what the handler asks back). The call takes it over: ext_free(ext)
   * runs once when the call is freed (after `done`, or after a detach), on the loop thread, the
   * handler's, or the thread that completed a pending asynchronous call after the dispatcher
   * was freed. When mcp_dispatch_start fails the caller keeps it. NULL = none. */
  void *ext;
  void (*ext_free)(void *ext);
  /* Fast-path options, for a caller whose `done` copes with them (the session core does):
   *  sync_done     — an MCP_TOOL_INLINE call completes inside mcp_dispatch_start: `done` runs
   *                  before it returns (after *out was set), so a cheap call costs no loop turn
   *                  and no uv_async round trip. The handle is invalid once `done` ran.
   *  lazy_envelope — a successful call's outcome comes without an envelope (o->envelope NULL):
   *                  the caller reads o->value / request_id / duration_us, or builds the
   *                  envelope with mcp_call_outcome_envelope() only when it needs the tree.
   *  args_shared   — args is a tree nobody changes while the call runs (a parsed request): an
   *                  INLINE or ASYNC call whose input schema fills no default takes a reference
   *                  instead of a deep copy (such handlers only read their arguments). */
  bool sync_done;
  bool lazy_envelope;
  bool args_shared;
  /* Observability (util/trace.h, util/metrics.h). trace: the request's trace context, copied
   * (NULL = a new span of the calling thread's current trace, or a new trace); rpc_id: the
   * JSON-RPC id (NULL = none; the call keeps a reference); transport: "stdio", "http", "p2p"
   * (a static string; NULL = "internal"). The handler and the completion run inside the call's
   * trace_scope, so their log lines carry trace_id, request_id, rpc_id, transport and the
   * caller's peer_id, and requests they make to peers carry the trace. */
  const trace_ctx *trace;
  json_t *rpc_id;
  const char *transport;
  /* When the request arrived (clock_mono_us), for its duration; 0 = now. A transport that
   * read the clock for the request already passes it: one clock read less per call. */
  int64_t start_us;
} mcp_call_request;

/* The outcome, handed to the completion callback; valid during the callback only. */
typedef struct mcp_call_outcome {
  mcp_dispatch_status status;
  json_t *envelope;       /* the normalized envelope (borrowed; json_incref to keep); NULL for a
                             success when the request asked for lazy_envelope */
  const mcp_tool *tool;   /* NULL when the tool was unknown */
  /* The same facts without a tree (always set): */
  json_t *value;          /* MCP_DISPATCH_OK: the handler's result (borrowed; may be NULL = null) */
  const char *request_id; /* the call's uuid4 */
  int64_t duration_us;    /* start → completion, the figure behind duration_ms */
  mcp_call *call;         /* for mcp_call_outcome_envelope and mcp_call_args */
} mcp_call_outcome;

/* The envelope of an outcome (borrowed, valid during the callback): o->envelope, or — for a
 * lazy_envelope success — built on first use and kept until the callback returns. NULL only
 * when it cannot be built (out of memory). */
json_t *mcp_call_outcome_envelope(const mcp_call_outcome *o);

/* duration_ms as the envelope and the access log print it: whole microseconds, stated to three
 * decimals (util/jwrite.h jwrite_fixed). */
#define MCP_DURATION_DECIMALS 3

typedef void (*mcp_call_done_fn)(void *ud, const mcp_call_outcome *outcome);

/* Starts a call. On success *out (may be NULL if the caller does not need the handle) is the
 * handle, valid until `done` has been called (exactly once, on the loop thread, never from
 * inside mcp_dispatch_start) or until mcp_dispatch_detach. Returns 0 or -ENOMEM/-EINVAL; on an
 * error `done` is never called. Unknown tools, bad arguments etc. are not errors here: they
 * complete through `done` with an error envelope. */
int mcp_dispatch_start(mcp_dispatcher *d, const mcp_call_request *req, mcp_call_done_fn done, void *ud,
                       mcp_call **out) __attribute__((warn_unused_result));

/* Loop thread. Asks the handler to stop (mcp_call_cancelled() turns true and mcp_call_sleep
 * wakes; a pending asynchronous tool's cancel callback runs). The completion still comes, from
 * a later loop turn, with MCP_DISPATCH_CANCELLED unless the handler had already finished; a
 * call still waiting for a pool thread is answered then without waiting for the thread. */
void mcp_dispatch_cancel(mcp_call *call);
/* Loop thread. Cancels and forgets the call: neither `done` nor sink callbacks will run. The
 * handle is invalid afterwards. For transports that go away (a closed stream). */
void mcp_dispatch_detach(mcp_call *call);

/* Builds the MCP CallToolResult for an envelope (new reference):
 *   success: {content:[{type:"text", text:<JSON of result>}], structuredContent:<result, or
 *             {"result":<value>} when the result is not an object>, isError:false}
 *   error:   {content:[{type:"text", text:<JSON of the error object>}],
 *             structuredContent:{"status":"error", "error":…, "error_type":…, …extra},
 *             isError:true}
 * and in both cases _meta {"io.peermcp/request_id", "io.peermcp/duration_ms"}. */
json_t *mcp_dispatch_call_result(const json_t *envelope);

/* Runs a tool synchronously on the current (worker) thread, as a child of `parent`: same auth,
 * remote flag and cancellation, deadline = min(parent's, now + the tool's timeout). Validates the
 * arguments and checks scopes like mcp_dispatch_start. An MCP_TOOL_ASYNC tool is started on the
 * loop thread and this thread waits for its completion (or its deadline, or the parent's
 * cancellation, which reach the tool's cancel callback); the loop never waits for this thread. `category` NULL = any category; a
 * category that does not exist gives an "unknown_category" envelope with
 * available_categories, a tool not in it gives "unknown_tool" with available_tools (tools of
 * that category visible to the caller). args is borrowed (copied before validation); NULL = {}.
 * *envelope_out is a new reference, always set. Returns the status.
 * Must not be called on the loop thread. */
mcp_dispatch_status mcp_dispatch_invoke(mcp_call *parent, const char *category, const char *tool, json_t *args,
                                        json_t **envelope_out);
/* The same with a per-call timeout: timeout_ms (0 = the tool's timeout, else the default)
 * replaces the tool's own, and the deadline is still clamped to the parent's. */
mcp_dispatch_status mcp_dispatch_invoke_timeout(mcp_call *parent, const char *category, const char *tool,
                                                json_t *args, uint32_t timeout_ms, json_t **envelope_out);

/* The call's trace (its top-level call's for mcp_dispatch_invoke children); never NULL. */
const trace_ctx *mcp_call_trace(const mcp_call *call);

/* The registry the call runs against; for meta-tools. */
mcp_registry *mcp_call_registry(const mcp_call *call);
/* The dispatcher, and whether the caller is remote (remote callers see only MCP_TOOL_REMOTE
 * tools: meta-tools must filter their listings the same way). */
mcp_dispatcher *mcp_call_dispatcher(const mcp_call *call);
bool mcp_call_is_remote(const mcp_call *call);
/* 0 for a top-level call (a transport's request), 1.. for mcp_dispatch_invoke children. */
int mcp_call_depth(const mcp_call *call);
/* True when the caller may see/call the tool (remote flag; hidden tools are still callable). */
bool mcp_call_may_use(const mcp_call *call, const mcp_tool *tool);
/* The tool being run. */
const mcp_tool *mcp_call_tool(const mcp_call *call);
/* The request's ext (mcp_call_request.ext) — the top-level call's for mcp_dispatch_invoke
 * children; NULL when none. */
void *mcp_call_ext(const mcp_call *call);
/* The arguments the handler got (validated, defaults filled; borrowed): from the handler, or
 * from the completion callback of the call (loop thread). */
json_t *mcp_call_args(const mcp_call *call);
/* The loop the dispatcher runs on (for modules that schedule their own loop work, e.g. a
 * resource provider's timer). */
uv_loop_t *mcp_dispatcher_loop(const mcp_dispatcher *d);

/* A fresh uuid4 string into buf (at least 37 bytes). */
void mcp_uuid4(char buf[37]);

#endif

/* tool.h — what a tool is, as every tool module sees it: the definition it registers, the
 * handler signature, and the call context (deadline, cancellation, progress, caller identity).
 *
 * A tool never knows which transport called it (stdio, HTTP, a libp2p stream); it gets an
 * mcp_auth and a deadline through its mcp_call. Registration lives in registry.h; running a
 * call lives in dispatch.h.
 *
 * Where a handler runs (chosen by its flags):
 *   default            a thread of the dispatcher's short pool (calls that finish in well under
 *                      a second: SQLite reads and writes, cache files, validation);
 *   MCP_TOOL_LONG      a thread of the long pool (waits, child processes: anything that may
 *                      block for seconds or minutes), so long calls never take the threads
 *                      short calls need; a full long pool answers "busy" (dispatch.h);
 *   MCP_TOOL_INLINE    the calling thread (the loop for a transport's call, a worker for a
 *                      nested mcp_dispatch_invoke): cheap, non-blocking, touches no loop state;
 *   MCP_TOOL_ASYNC     always the loop thread: must not block; it may start work that ends
 *                      later (a network request) and return MCP_TOOL_PENDING (see below).
 * A tool whose blocking depends on its arguments (one message tool whose `wait` op blocks and
 * whose `status` op does not) sets is_long instead of MCP_TOOL_LONG.
 *
 * Asynchronous completion (the contract, exactly once):
 *   - only an MCP_TOOL_ASYNC handler may return MCP_TOOL_PENDING instead of a result; it then
 *     owes exactly one mcp_call_complete(call, status, result) — also after the call timed
 *     out, was cancelled or detached, and after the dispatcher began to free (the result is then
 *     dropped). Work that must block first goes to a pool job (mcp_dispatcher_pool /
 *     mcp_dispatcher_long_pool) whose completion, or whatever thread ends the work, completes;
 *   - the mcp_call handle stays valid until that mcp_call_complete, whatever happens to the
 *     caller (the dispatcher keeps a reference for the pending tool);
 *   - mcp_call_on_cancel(call, fn, ud) (loop thread: in the handler or later) asks to be told,
 *     at most once and on the loop thread, that the call's answer is no longer wanted: the
 *     caller cancelled, the deadline passed, the transport detached, or the dispatcher is being
 *     freed. fn should abort the work and may call mcp_call_complete at once (from inside fn is
 *     fine). fn never runs after mcp_call_complete was called on the loop thread, so a tool
 *     that registers fn completes on the loop thread;
 *   - mcp_call_complete from another thread is queued to the loop; the caller's completion
 *     always runs later on the loop thread, never inside mcp_call_complete. A second
 *     completion, or a completion of a call that is not pending, is a bug (logged and ignored
 *     where it can be seen).
 *
 * Threads: every mcp_call_* accessor below is safe from the handler's thread; mcp_call_sleep
 * must not be called on the loop thread. */
#ifndef PEERMCP_MCP_TOOL_H
#define PEERMCP_MCP_TOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"

/* Who is calling: the AuthContext (auth/auth.h) — kind, PeerId, subject, issuer, expiry and
 * the scopes held. A plain value: the dispatcher copies it per call, so a handler may outlive
 * the transport that built it. */
typedef auth_ctx mcp_auth;

/* Tool flags. At most one of INLINE, LONG, ASYNC (the registry refuses other combinations). */
enum {
  MCP_TOOL_REMOTE = 1u << 0, /* trusted peers may see and call it */
  MCP_TOOL_INLINE = 1u << 1, /* cheap and non-blocking: may run on the calling thread */
  MCP_TOOL_HIDDEN = 1u << 2, /* left out of the flat tools/list; still reachable via tools_dispatch */
  MCP_TOOL_LONG = 1u << 3,   /* may block for long (waits, child processes): runs on the long pool */
  MCP_TOOL_ASYNC = 1u << 4,  /* runs on the loop thread, never blocks, may return MCP_TOOL_PENDING */
};

typedef enum {
  MCP_TOOL_OK = 0,
  MCP_TOOL_ERROR = 1,
  MCP_TOOL_PENDING = 2, /* no result yet: the tool will call mcp_call_complete (*result untouched) */
} mcp_tool_status;

typedef struct mcp_call mcp_call;

/* A tool handler.
 *  args    — the arguments object, already validated against the input schema with defaults
 *            filled in; borrowed for the duration of the call, read only (an INLINE or ASYNC
 *            tool may be handed the request's own tree: dispatch.h args_shared).
 *  result  — out: a new reference. On MCP_TOOL_OK any JSON value (an object is best); it
 *            becomes structuredContent and a text content block. On MCP_TOOL_ERROR, a string
 *            message or an object with at least "error"; the result gets isError: true.
 * The handler must return by mcp_call_deadline_ms() and should poll mcp_call_cancelled().
 * MCP_TOOL_PENDING (MCP_TOOL_ASYNC handlers only): see "Asynchronous completion" above;
 * *result must stay NULL. */
typedef mcp_tool_status (*mcp_tool_fn)(mcp_call *call, json_t *args, json_t **result, void *ud);

/* Per-call class: true when this call may block for long (runs on the long pool). Called on the
 * loop thread before the arguments are validated (args may be any JSON value); must be cheap
 * and must not block. */
typedef bool (*mcp_tool_is_long_fn)(mcp_call *call, const json_t *args, void *ud);

/* Told on the loop thread that a pending call's answer is no longer wanted (see above). */
typedef void (*mcp_call_cancel_fn)(mcp_call *call, void *ud);

typedef struct mcp_tool_def {
  const char *name;          /* [A-Za-z0-9_.-]{1,128}, unique */
  const char *category;      /* e.g. "system", "queue", "cache"; [A-Za-z0-9_.-]{1,64} */
  const char *title;         /* optional human title */
  const char *description;
  const char *input_schema;  /* JSON Schema text; NULL means {"type":"object"} */
  const char *output_schema; /* JSON Schema text or NULL */
  const char *annotations;   /* JSON object text (readOnlyHint, …) or NULL */
  auth_scopes scopes;        /* what a caller needs (AUTH_SCOPES_INIT(AUTH_TOOL_CALL), …) */
  unsigned flags;            /* MCP_TOOL_* */
  uint32_t timeout_ms;       /* 0 = the dispatcher's default (30 s) */
  mcp_tool_fn fn;
  void *ud;                  /* handed to fn */
  void (*ud_free)(void *ud); /* called once when the registry is freed, may be NULL */
  mcp_tool_is_long_fn is_long; /* optional per-call MCP_TOOL_LONG (not with INLINE / ASYNC) */
} mcp_tool_def;

/* --- the call context, for handlers --- */

/* True once the caller cancelled (notifications/cancelled, disconnect) or the deadline passed. */
bool mcp_call_cancelled(const mcp_call *call);
/* Monotonic deadline (clock_mono_ms() scale). */
int64_t mcp_call_deadline_ms(const mcp_call *call);
/* The caller's identity; never NULL. */
const mcp_auth *mcp_call_auth(const mcp_call *call);
/* The caller's turn key on the worker pools (util/workpool.h workpool_submit_for): its PeerId,
 * else its network address, else 0 (local callers share one turn). A handler that hands work
 * to a pool itself passes it, so the pools stay fair between callers. */
uint64_t mcp_call_pool_key(const mcp_call *call);
/* The dispatcher's request id (uuid4 text) for logs and envelopes. */
const char *mcp_call_request_id(const mcp_call *call);
/* Sends notifications/progress when the client gave a progressToken; a no-op otherwise.
 * total < 0 means unknown; message may be NULL. Progress values must increase. */
void mcp_call_progress(mcp_call *call, double progress, double total, const char *message);
/* Sends notifications/message to the client at `level` ("info", "warning", …) if its log level
 * allows, and writes the line to the server log. */
void mcp_call_log(mcp_call *call, const char *level, const char *message);
/* Blocks the handler thread up to `ms` or until cancelled, whichever is first.
 * Returns true when cancelled. For handlers that wait. */
bool mcp_call_sleep(mcp_call *call, int64_t ms);

/* Finishes a call whose handler returned MCP_TOOL_PENDING: status MCP_TOOL_OK or MCP_TOOL_ERROR,
 * result as a handler's *result (stolen; may be NULL). Any thread (see the contract above);
 * the caller's completion runs later on the loop thread, never from inside this function. */
void mcp_call_complete(mcp_call *call, mcp_tool_status status, json_t *result);
/* Registers the cancel callback of a pending call (replaces an earlier one; fn NULL removes
 * it). Loop thread (an ASYNC handler, or later); runs fn at once if the answer is already
 * unwanted. */
void mcp_call_on_cancel(mcp_call *call, mcp_call_cancel_fn fn, void *ud);

#endif

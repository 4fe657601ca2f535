/* session.h — the MCP JSON-RPC session core, shared by every transport (stdio, /mcp+p2p/1.0.0
 * streams via service/mcpp.c, Streamable HTTP). Sans-I/O: the transport feeds one
 * complete message (the bytes of one JSON-RPC message, no framing) with mcp_session_feed();
 * the session answers through the `send` callback — or, for transports with one channel per
 * request (Streamable HTTP), through `route`, which also says which request each message belongs
 * to (see "Per-request routing" below). No sockets, no files, no threads of its own.
 * Transports with an older wire contract adjust it through the extension points in
 * mcp_session_opts (tool filter, initialize decorator, result shaper, init_required, …) and a
 * method hook that may start tracked calls (mcp_session_start_call).
 *
 * Implements JSON-RPC 2.0 (errors -32700 with id null, -32600, -32601, -32602, -32603) and both
 * MCP eras, chosen per request as 2026-07-28 basic/versioning.mdx §Backward Compatibility says:
 *  - a request whose params._meta carries "io.modelcontextprotocol/protocolVersion" is served
 *    statelessly as 2026-07-28 (server/discover, per-request clientCapabilities/clientInfo/
 *    logLevel, resultType, ttlMs/cacheScope, -32022 for an unsupported version, removed methods
 *    answered -32601, subscriptions/listen streams with resourceSubscriptions, InputRequiredResult
 *    with a sealed requestState, -32021 for a missing client capability);
 *  - anything else is legacy (initialize negotiating 2025-11-25 … 2024-11-05,
 *    notifications/initialized, ping, logging/setLevel + notifications/message,
 *    resources/subscribe, server-to-client requests, …).
 * tools/call runs through the dispatcher (mcp/dispatch.h); several calls may be in flight and
 * their responses go out as they complete, matched by id. notifications/cancelled reaches the
 * handler; a cancelled request gets no response. notifications/progress echoes the request's
 * _meta.progressToken. Prompts, resources (templates, subscriptions) and completion come from
 * the registry's tables (mcp/prompts.h, mcp/resources.h). A handler may ask the client for input
 * (mcp/reqctx.h): 2026-07-28 answers with an InputRequiredResult, earlier eras send
 * server-to-client requests (MCP_OUT_REQUEST) and run the handler again with the answers. Tools
 * may return content blocks; a structured result is checked against the tool's outputSchema.
 * MCP Tasks (opts.tasks, mcp/tasks.h): a task-augmented tools/call (legacy params.task, or a
 * modern request declaring the io.modelcontextprotocol/tasks extension) is answered with a
 * CreateTaskResult once the backend has made the task durable; tasks/get, tasks/result,
 * tasks/list, tasks/cancel (legacy) and tasks/get, tasks/update, tasks/cancel (modern) map onto
 * the backend, bound to the caller's authorization context; up to 4 tasks per session are
 * watched and notifications/tasks/status sent when they end.
 *
 * Ownership: the session borrows the dispatcher and the auth context for its whole life.
 * Threads: loop thread only (the dispatcher's loop). */
#ifndef PEERMCP_MCP_SESSION_H
#define PEERMCP_MCP_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcp/dispatch.h"
#include "mcp/envelope.h"
#include "mcp/tasks.h"
#include "mcp/tool.h"

/* JSON-RPC 2.0 error codes (the standard ones every transport answers with) and MCP's own. */
enum {
  MCP_RPC_PARSE_ERROR = -32700,
  MCP_RPC_INVALID_REQUEST = -32600,
  MCP_RPC_METHOD_NOT_FOUND = -32601,
  MCP_RPC_INVALID_PARAMS = -32602,
  MCP_RPC_INTERNAL_ERROR = -32603,
  MCP_RPC_RESOURCE_NOT_FOUND = -32002,      /* up to 2025-11-25; 2026-07-28 uses -32602 */
  MCP_RPC_HEADER_MISMATCH = -32020,         /* 2026-07-28: header vs _meta (HTTP: 400) */
  MCP_RPC_MISSING_CLIENT_CAPABILITY = -32021, /* 2026-07-28: data.requiredCapabilities (HTTP: 400) */
  MCP_RPC_UNSUPPORTED_VERSION = -32022,     /* 2026-07-28: data.supported, data.requested (HTTP: 400) */
  /* Server errors (JSON-RPC 2.0 reserves -32000..-32099 for the implementation) that the
   * transports and the /mcp+p2p/1.0.0 service answer with. One number may mean two things in
   * two contracts; each name says which. */
  MCP_RPC_SERVER_ERROR = -32000,            /* HTTP transport refusals ("Bad Request: …", as the TS SDK) */
  MCP_RPC_SESSION_NOT_FOUND = -32001,       /* HTTP: unknown Mcp-Session-Id (404, as the TS SDK) */
  MCP_RPC_INSUFFICIENT_SCOPE = -32011,      /* HTTP: a tool the token lacks a scope for (403 insufficient_scope) */
  MCP_RPC_MCPP_INIT_REQUIRED = -32000,      /* MCP++ (the Python service's contract): initialize first */
  MCP_RPC_MCPP_UNAUTHORIZED = -32001,       /* MCP++: no token / scope for it */
  MCP_RPC_MCPP_UNKNOWN_TOOL = -32002,       /* MCP++: no such tool (MCP's RESOURCE_NOT_FOUND number) */
  MCP_RPC_MCPP_FRAME_ERROR = -32003,        /* MCP++: frame_too_large, invalid_json, invalid_message */
  MCP_RPC_MCPP_RATE_LIMITED = -32010,       /* MCP++: rate_limited, too_many_requests */
};

typedef struct mcp_session mcp_session;

#define MCP_SESSION_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)
#define MCP_SESSION_DEFAULT_PAGE_SIZE 50u
#define MCP_SESSION_MAX_DEPTH 128     /* JSON nesting accepted in a message */
#define MCP_SESSION_MAX_INFLIGHT 1024 /* concurrent requests per session */
#define MCP_SESSION_MAX_OUT_BYTES (256u * 1024u * 1024u) /* one outgoing message; larger is -32603 */

/* The newest revision (modern era) and the legacy revisions initialize may negotiate. */
#define MCP_PROTOCOL_MODERN "2026-07-28"
#define MCP_PROTOCOL_LEGACY_LATEST "2025-11-25"

/* Hands one complete outgoing message to the transport: `msg` is a malloc'd, NUL-terminated
 * compact JSON text of `len` bytes with no newline; the transport owns it and free()s it.
 * The callback must not free the session (defer that, e.g. to a uv_idle/uv_async callback). */
typedef void (*mcp_session_send_fn)(void *ud, char *msg, size_t len);
/* The same with borrowed bytes (valid during the call only; the transport copies them into its
 * output buffer): saves an allocation and a copy per message. Same rules as `send`. */
typedef void (*mcp_session_write_fn)(void *ud, const char *msg, size_t len);

/* ---- Per-request routing of outgoing messages (for Streamable HTTP) ----
 * stdio and /mcp+p2p/1.0.0 write every message to one channel and use `send`. A transport that
 * has one channel per request sets `route` instead and learns, with each message, which client
 * request it belongs to:
 *  - MCP_OUT_RESPONSE: the response (result or error) to `request_id` — the last message of that
 *    request (HTTP: end its SSE stream, or answer it as application/json when nothing else was
 *    sent). error_code tells the HTTP status to use (e.g. 2026-07-28: -32601 → 404;
 *    -32020/-32021/-32022 and -32602 for a missing _meta → 400). request_id NULL = an error
 *    to a message whose id could not be read (answer it on the POST that carried it).
 *  - MCP_OUT_NOTIFICATION with request_id: caused by that request while it runs (progress,
 *    notifications/message, notifications/subscriptions/acknowledged and the
 *    notifications/resources/updated of a 2026-07-28 subscriptions/listen stream, whose id is
 *    the listen request's) — always before that request's response. With request_id NULL: of
 *    the session as a whole (2025-11-25 resources/subscribe updates, notifications/tasks/status):
 *    the standalone GET stream, or nowhere when there is none.
 *  - MCP_OUT_REQUEST: a server-to-client request (2025-11-25 and earlier: sampling/createMessage,
 *    elicitation/create, roots/list) made while handling `request_id`; HTTP sends it on that
 *    request's SSE stream. The client's JSON-RPC response arrives later (a new POST) and is fed
 *    like any message (mcp_session_feed*); the session matches it by id and resumes the request.
 *    2026-07-28 requests never cause one (they get an InputRequiredResult instead).
 * `modern` says the request was served as 2026-07-28. Everything in `out` is borrowed for the
 * duration of the callback. */
typedef enum {
  MCP_OUT_RESPONSE = 0,
  MCP_OUT_NOTIFICATION = 1,
  MCP_OUT_REQUEST = 2,
} mcp_out_kind;

typedef struct mcp_session_out {
  mcp_out_kind kind;
  const json_t *request_id; /* the client request it belongs to, or NULL (see above) */
  int error_code;           /* MCP_OUT_RESPONSE: 0 for a result, else the JSON-RPC error code */
  bool modern;
} mcp_session_out;

typedef void (*mcp_session_route_fn)(void *ud, const mcp_session_out *out, char *msg, size_t len);

/* Optional: lets a transport take over methods (e.g. P2P-specific ones) before the session's
 * own table — after JSON-RPC validation, era detection and the init_required check. Return
 * true when handled (the hook then answers with mcp_session_reply_* or
 * mcp_session_start_call; for a notification, id is NULL and nothing must be sent). params
 * may be NULL. */
typedef bool (*mcp_session_method_hook)(void *ud, mcp_session *s, const char *method, json_t *id, json_t *params);

/* Optional extension points, for transports that must keep an older wire contract (e.g. the
 * /mcp+p2p/1.0.0 one). Each gets opts.hook_ud. */

/* Which tools this caller is shown: tools/list lists, and a task-augmented tools/call accepts,
 * only tools for which it returns true (on top of the remote/hidden rules). Plain calls still
 * go to the dispatcher, which checks scopes itself. */
typedef bool (*mcp_session_tool_filter)(void *ud, const mcp_tool *tool, const mcp_auth *auth);

/* Called with a successful (legacy) initialize result before it is sent: may add or replace
 * keys. params may be NULL. */
typedef void (*mcp_session_init_decorator)(void *ud, mcp_session *s, const json_t *params, json_t *result);

/* How a tools/call outcome is answered. Called first, with the outcome as the dispatcher gave
 * it: its envelope may be NULL for a success (call mcp_call_outcome_envelope to read it; a
 * shaper that leaves a success alone lets it take the direct-to-buffer answer). Return false
 * for the standard answer (a CallToolResult, or -32602 for an unknown tool); return true after
 * setting either
 * out->result (a new reference: the result object, era fields are still added) or
 * out->code + out->message (a static string) for a JSON-RPC error. */
typedef struct mcp_session_shaped {
  json_t *result;
  int code;
  const char *message;
  /* or: the result is {"content":<this JSON text>} — the text of one value, already written as
   * this session's writer writes it (JWRITE_ASCII when ascii_only), borrowed until the shaper's
   * caller returns — written straight into the output without a tree (a legacy-era answer; a
   * modern one parses it and takes the tree path, which adds the era's fields). */
  const char *raw_content;
  size_t raw_content_len;
} mcp_session_shaped;
typedef bool (*mcp_session_result_shaper)(void *ud, const mcp_call_outcome *outcome, mcp_session_shaped *out);

typedef struct mcp_session_opts {
  mcp_dispatcher *dispatcher; /* required */
  const mcp_auth *auth;       /* required; borrowed for the session's life and read at each
                                 tools/call (each call keeps its own copy), so the transport may
                                 update it in place between messages, e.g. after an
                                 authentication step. */
  bool remote;                /* remote caller: only MCP_TOOL_REMOTE tools are listed/callable */
  size_t page_size;           /* tools/list page; 0 = 50 */
  size_t max_message_bytes;   /* 0 = 16 MiB; larger messages get -32600 */
  uint32_t call_timeout_ms;   /* per-call deadline override; 0 = the tool's / the dispatcher's */
  uint32_t list_ttl_ms;       /* ttlMs on modern list/discover results; 0 = 60000 */
  size_t max_inflight;        /* concurrent tools/call; 0 = MCP_SESSION_MAX_INFLIGHT; over it: -32603 */
  const char *server_name;    /* NULL = "peermcp" */
  const char *server_version; /* NULL = PEERMCP_VERSION */
  const char *instructions;   /* NULL = none */
  mcp_session_send_fn send;   /* required unless `route` or `write` is set */
  mcp_session_write_fn write; /* optional: replaces `send` (borrowed bytes) */
  mcp_session_route_fn route; /* optional: replaces `send`, with per-request routing (above) */
  bool route_borrowed;        /* `route` gets borrowed bytes (valid during the call only, not to
                                 be freed) instead of a malloc'd copy: saves an allocation and
                                 a copy per message */
  void *send_ud;              /* handed to send / write / route */
  mcp_session_method_hook hook; /* may be NULL */
  void *hook_ud;
  const mcp_tasks_backend *tasks; /* MCP Tasks (mcp/tasks.h); NULL = no tasks: the capability is
                                     not advertised, params.task is ignored, the tasks methods are -32601.
                                     Borrowed for the session's life. */
  /* Extension points (all optional; the callbacks get hook_ud). */
  mcp_session_tool_filter tool_filter;
  mcp_session_init_decorator init_decorator;
  mcp_session_result_shaper result_shaper;
  bool init_required;          /* a legacy-era request before a successful initialize is answered
                                  init_required_code/message and ends the session
                                  (mcp_session_ended); 2026-07-28 requests need no initialize */
  int init_required_code;      /* 0 = -32600 */
  const char *init_required_message; /* NULL = "initialize first" */
  const char *init_default_version;  /* initialize without a protocolVersion we speak negotiates
                                        this (one of the legacy revisions); NULL = a missing
                                        protocolVersion is -32602 and an unknown one gets the latest */
  bool quiet_logs;             /* legacy era: no notifications/message until logging/setLevel */
  bool ascii_only;             /* escape non-ASCII in outgoing messages (\uXXXX) */
  const char *transport;       /* "stdio", "http" or "p2p" (static; NULL = "stdio"): the
                                  transport label of peermcp_mcp_requests_total and the log field */
  int busy_code;               /* max_inflight reached: 0 = -32603 */
  const char *busy_message;    /* NULL = "too many requests in flight" */
} mcp_session_opts;

/* 0, -EINVAL (missing required field) or -ENOMEM. */
int mcp_session_new(const mcp_session_opts *opts, mcp_session **out) __attribute__((warn_unused_result));

/* Detaches every in-flight call (their handlers see cancelled; no response is sent) and frees. */
void mcp_session_free(mcp_session *s);

/* Handles one message. Bad input is answered with a JSON-RPC error, never fatal. The text is
 * read without a tree where it can be (mcp/envelope.h: the envelope from the bytes; a tree
 * only of a tools/call's arguments and _meta, or of another method's params); anything else
 * goes through the same parse and checks as mcp_session_feed_json, with the same answers. */
void mcp_session_feed(mcp_session *s, const char *msg, size_t len);
/* Tests only: false makes mcp_session_feed parse every message into a tree (the path the text
 * reader must match answer for answer; tests/mcp/test_envelope.c and fuzz_mcp_envelope compare
 * the two). Default true. Set it before feeding, from the loop thread. */
extern bool mcp_session_text_envelope;
/* Tests only: how many messages the text reader handled on this thread (the rest went the
 * tree path). */
extern _Thread_local size_t mcp_session_text_envelope_fed;
/* The same for a message the transport has parsed itself (borrowed; the transport checked its
 * size; nesting deeper than MCP_SESSION_MAX_DEPTH is refused here, as in mcp_session_feed). */
void mcp_session_feed_json(mcp_session *s, json_t *msg);
/* The same when the transport's parser measured how deep msg nests (util/jparse's
 * JPARSE_FOUND_DEPTH: 1 for a flat object): the session compares that with
 * MCP_SESSION_MAX_DEPTH instead of walking the tree; depth < 0 means not known (walked). */
void mcp_session_feed_json_depth(mcp_session *s, json_t *msg, int depth);

/* The same as mcp_session_feed_json_depth(the tree of text parsed with jflags), for a transport
 * whose frames are text checked by util/jparse (the /mcp+p2p/1.0.0 frames: jparse_scan with
 * JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, service/frame.c's raw mode) — read without a tree
 * where it can be, as mcp_session_feed. env: the text's envelope as the transport read it
 * (mcp_envelope_from_scan returned 0; its found flags carry the depth, compared with
 * MCP_SESSION_MAX_DEPTH), so nothing is read twice; NULL = read here. hook_declines_call: the
 * transport vouches that its method hook would return false for this message if it is a
 * tools/call (the hook is then not called for it: a plain call takes the fast form without a
 * tree of params). The size is the transport's to check, as for mcp_session_feed_json.
 * Everything borrowed for the call. */
typedef struct mcp_session_text {
  const char *text;
  size_t len;
  unsigned jflags;
  const mcp_envelope *env;
  bool hook_declines_call;
} mcp_session_text;
void mcp_session_feed_text(mcp_session *s, const mcp_session_text *t);

/* For transports that carry a protocol version outside the body (Streamable HTTP's
 * MCP-Protocol-Version header, given as `header_version`; NULL = none, as mcp_session_feed_json):
 * also applies the 2026-07-28 rules that tie the header to the request's
 * _meta["io.modelcontextprotocol/protocolVersion"] (basic/transports/streamable-http.mdx):
 *  - both present, different, and either is 2026-07-28 → -32020 HeaderMismatch (HTTP 400);
 *  - header 2026-07-28 and a request without that _meta field → -32602 (HTTP 400);
 *  - both the same unknown version → -32022 UnsupportedProtocolVersion (as without a header).
 * A notification or a response is not checked. */
void mcp_session_feed_json_versioned(mcp_session *s, json_t *msg, const char *header_version);

/* What a transport's routing headers must match (2026-07-28 Mcp-Method / Mcp-Name): the
 * message's method (NULL for a response or a non-object) and the name it is about — params.name
 * for tools/call and prompts/get, params.uri for resources/read, params.taskId for tasks/get,
 * tasks/update, tasks/cancel — or NULL. Both borrowed from msg. */
void mcp_session_msg_route(const json_t *msg, const char **method, const char **name);

/* Cancels one request as notifications/cancelled would (2026-07-28 HTTP: the client closed
 * that request's response stream): a running call is told to stop and gets no response, a
 * subscriptions/listen stream ends without one, a wait for client input is dropped. Unknown or
 * finished ids are ignored. Loop thread. */
void mcp_session_cancel_request(mcp_session *s, const json_t *id);

/* True once the session refused to go on (init_required): the transport flushes and closes;
 * further input is ignored. */
bool mcp_session_ended(const mcp_session *s);
/* True after a successful initialize or once a 2026-07-28 request was served. */
bool mcp_session_ready(const mcp_session *s);

/* From a method hook only, for the request it is handling: runs a tools/call the session
 * tracks like its own (duplicate id, max_inflight, cancellation, progress, result_shaper), but
 * with the hook's tool, arguments, caller and deadline. auth NULL = the session's (copied by the
 * dispatcher); timeout_ms 0 = opts.call_timeout_ms. Answers the request in every case; returns
 * 0, or -EINVAL when called outside a hook or for a notification (nothing sent then). */
typedef struct mcp_session_call {
  const char *tool;
  json_t *args; /* object or NULL = {}; borrowed */
  const mcp_auth *auth;
  uint32_t timeout_ms;
} mcp_session_call;
int mcp_session_start_call(mcp_session *s, const mcp_session_call *call) __attribute__((warn_unused_result));

/* For transports that detect a framing problem themselves (a line over the limit): sends an
 * error response with id null. */
void mcp_session_reply_error(mcp_session *s, json_t *id, int code, const char *message, json_t *data /* stolen */);
void mcp_session_reply_result(mcp_session *s, json_t *id, json_t *result /* stolen */);

/* Requests in flight (tools/call waiting for the dispatcher). */
size_t mcp_session_inflight(const mcp_session *s);
/* Called (loop thread) each time the in-flight count drops to zero. */
void mcp_session_on_idle(mcp_session *s, void (*cb)(void *ud), void *ud);
/* Cancels every in-flight call (their completions still arrive, without responses). */
void mcp_session_cancel_all(mcp_session *s);

/* Ends every open subscriptions/listen stream gracefully (a completion result to each listen
 * request), e.g. at shutdown; stdio calls it at end of input. Pending tasks/result waits end
 * too, with a -32603 "retry" error (the task itself goes on). */
void mcp_session_end_subscriptions(mcp_session *s);
size_t mcp_session_subscriptions(const mcp_session *s);

/* The legacy protocol version negotiated by initialize, or NULL before one. */
const char *mcp_session_legacy_version(const mcp_session *s);

#endif

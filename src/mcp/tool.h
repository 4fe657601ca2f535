/* tool.h — what a tool is, as every tool module sees it: the definition it registers, the
 * handler signature, and the call context (deadline, cancellation, progress, caller identity).
 *
 * A tool never knows which transport called it (stdio, HTTP, a libp2p stream); it gets an
 * mcp_auth and a deadline through its mcp_call. Registration lives in registry.h; running a
 * call lives in dispatch.h.
 *
 * Threads: handlers run on a worker thread of the dispatcher's pool (never on the event loop)
 * unless the tool is flagged MCP_TOOL_INLINE. Every mcp_call_* accessor below is safe from the
 * handler's thread. */
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

/* Tool flags. */
enum {
  MCP_TOOL_REMOTE = 1u << 0, /* trusted peers may see and call it */
  MCP_TOOL_INLINE = 1u << 1, /* cheap and non-blocking: may run on the calling thread */
  MCP_TOOL_HIDDEN = 1u << 2, /* left out of the flat tools/list; still reachable via tools_dispatch */
};

typedef enum { MCP_TOOL_OK = 0, MCP_TOOL_ERROR = 1 } mcp_tool_status;

typedef struct mcp_call mcp_call;

/* A tool handler.
 *  args    — the arguments object, already validated against the input schema with defaults
 *            filled in; borrowed for the duration of the call.
 *  result  — out: a new reference. On MCP_TOOL_OK any JSON value (an object is best); it
 *            becomes structuredContent and a text content block. On MCP_TOOL_ERROR, a string
 *            message or an object with at least "error"; the result gets isError: true.
 * The handler must return by mcp_call_deadline_ms() and should poll mcp_call_cancelled(). */
typedef mcp_tool_status (*mcp_tool_fn)(mcp_call *call, json_t *args, json_t **result, void *ud);

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
} mcp_tool_def;

/* --- the call context, for handlers --- */

/* True once the caller cancelled (notifications/cancelled, disconnect) or the deadline passed. */
bool mcp_call_cancelled(const mcp_call *call);
/* Monotonic deadline (clock_mono_ms() scale). */
int64_t mcp_call_deadline_ms(const mcp_call *call);
/* The caller's identity; never NULL. */
const mcp_auth *mcp_call_auth(const mcp_call *call);
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

#endif

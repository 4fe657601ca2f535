/* mcpfix.h — fixtures for tests that run tool calls or an MCP session: a loop, a registry and
 * a dispatcher (ts_mcp), and a session send callback that keeps what the session says
 * (ts_capture). A test embeds ts_mcp in its own fixture and adds tools before
 * ts_mcp_start. Everything runs on the test's thread, which is the loop thread. Test-only. */
#ifndef PEERMCP_TESTS_SUPPORT_MCPFIX_H
#define PEERMCP_TESTS_SUPPORT_MCPFIX_H

#include <jansson.h>
#include <uv.h>

#include "mcp/dispatch.h"
#include "mcp/registry.h"

typedef struct ts_mcp {
  uv_loop_t loop;
  mcp_registry *reg;
  mcp_dispatcher *d;     /* NULL until ts_mcp_start */
  int done;              /* completions through ts_mcp_on_done */
  mcp_dispatch_status st; /* of the last one */
  json_t *env;           /* its envelope (owned; replaced by the next) */
} ts_mcp;

/* The loop and an empty registry. */
void ts_mcp_open(ts_mcp *m);
/* Registers n tool definitions (fails the test if one is refused). */
void ts_mcp_add_tools(ts_mcp *m, const mcp_tool_def *defs, size_t n);
/* The dispatcher over the registry (threads/max_threads as mcp_dispatcher_opts; 0 = default). */
void ts_mcp_start(ts_mcp *m, unsigned threads, unsigned max_threads);
/* The same with every dispatcher option (access log, …). */
void ts_mcp_start_opts(ts_mcp *m, const mcp_dispatcher_opts *o);
/* A completion callback for mcp_dispatch_start (ud = the ts_mcp): counts it, keeps status and
 * envelope. */
void ts_mcp_on_done(void *ud, const mcp_call_outcome *o);
/* Starts rq with ts_mcp_on_done and turns the loop until it completes (TS_DEADLINE_MS); returns
 * the envelope (owned by m, valid until the next completion). */
json_t *ts_mcp_call(ts_mcp *m, const mcp_call_request *rq);
/* Frees the dispatcher (if started), closes the loop (every handle must close), frees the
 * registry and the last envelope. */
void ts_mcp_close(ts_mcp *m);

/* A session send callback (mcp_session_opts.send) keeping each message, parsed, in the JSON
 * array `ud`; checks the stdio framing on the way (one line: no newline, length right). */
void ts_capture(void *ud, char *msg, size_t len);
/* The last message of a capture (fails the test when there is none). */
json_t *ts_last(const json_t *out);
/* error.code of a JSON-RPC answer (0 when it is not an error). */
json_int_t ts_error_code(const json_t *msg);

#endif

/* reqctx.h — the context of one client request a handler serves (tools/call, prompts/get,
 * resources/read): what the client declared it can do, the answers it already gave to the
 * server's questions, the questions the handler asks now, and the content blocks a tool returns
 * beyond its value.
 *
 * Asking the client (sampling/createMessage, elicitation/create, roots/list) is written once and
 * works in both eras, the way 2026-07-28's multi round-trip requests (basic/patterns/mrtr.mdx)
 * define it: a handler calls mcp_reqctx_ask(); if the answer is already there it gets it,
 * otherwise the question is recorded, the handler returns, and
 *  - 2026-07-28: the request is answered with an InputRequiredResult (inputRequests + a sealed
 *    requestState, mcp/reqstate.h); the client's retry brings the answers and the handler runs
 *    again from the start;
 *  - 2025-11-25 and earlier: the session sends each question to the client as a
 *    server-to-client request (on the request's own stream, see session.h), collects the
 *    answers and runs the handler again with them.
 * So a handler that asks must be repeatable up to the point where it asks (MRTR's own rule);
 * answers accumulate across rounds (at most MCP_REQCTX_MAX_ROUNDS).
 *
 * Ownership and threads: the session creates a context per request on the loop thread and
 * hands a reference to the dispatcher (mcp_call_request.ext); the handler uses it from its
 * thread while it runs; the session reads what it asked after the completion. The reference
 * count is atomic. Everything a handler gets back (answers) is borrowed until it returns. */
#ifndef PEERMCP_MCP_REQCTX_H
#define PEERMCP_MCP_REQCTX_H

#include <jansson.h>
#include <stdbool.h>

#include "mcp/tool.h"

typedef struct mcp_reqctx mcp_reqctx;

#define MCP_REQCTX_MAX_QUESTIONS 16 /* per round */
#define MCP_REQCTX_MAX_ROUNDS 8     /* rounds of questions per request */
#define MCP_REQCTX_MAX_KEY 64

/* ---- for handlers ---- */

/* The context of the request a tool handler serves; NULL when the call does not come from an
 * MCP client session (a task runner, a TaskQueue op, a nested mcp_dispatch_invoke of a call
 * that had none). Every function below accepts NULL. */
mcp_reqctx *mcp_call_reqctx(mcp_call *call);

/* True when the client declared `capability`: "sampling", "elicitation", "roots", or a dotted
 * sub-capability such as "elicitation.url" or "sampling.tools" (an elicitation capability with
 * neither form nor url means form, as the spec says). */
bool mcp_reqctx_client_supports(const mcp_reqctx *ctx, const char *capability);

/* Asks the client. key: [A-Za-z0-9_.-]{1,64}, unique within the request; method:
 * "sampling/createMessage", "elicitation/create" or "roots/list"; params: the request's params
 * (stolen; NULL = none). Returns
 *   0        the client answered: *answer is its result object (borrowed until the handler returns);
 *   -EAGAIN  asked: return from the handler (its value is ignored); it runs again with the answer;
 *   -ENOTSUP the client did not declare what `method` needs (mcp_reqctx_client_supports): the
 *            request fails — 2026-07-28: -32021 with data.requiredCapabilities; earlier: an error
 *            result — unless the handler asks something else or returns a result of its own;
 *   -EINVAL  bad key or method, or the key was already asked in this round;
 *   -E2BIG   more than MCP_REQCTX_MAX_QUESTIONS in one round; -ENOMEM. */
int mcp_reqctx_ask(mcp_reqctx *ctx, const char *key, const char *method, json_t *params, json_t **answer)
    __attribute__((warn_unused_result));

/* Tools: appends a content block (mcp/content.h; stolen) to the result. When a tool adds any,
 * its CallToolResult's content is exactly those blocks and its value (when not NULL/null)
 * becomes structuredContent; otherwise the value is shown as one text block as usual. With a
 * NULL ctx the block is dropped. */
void mcp_reqctx_add_content(mcp_reqctx *ctx, json_t *block);

/* ---- for the session ---- */

/* caps: the client's capabilities object (borrowed, kept by reference; NULL = none);
 * answers: the answers so far (an object, borrowed; NULL = none). NULL on ENOMEM. */
mcp_reqctx *mcp_reqctx_new(json_t *caps, json_t *answers);
mcp_reqctx *mcp_reqctx_ref(mcp_reqctx *ctx);
void mcp_reqctx_unref(mcp_reqctx *ctx);
/* For mcp_call_request.ext_free. */
void mcp_reqctx_unref_void(void *ctx);

/* What the handler asked this round: an InputRequests object {key: {method, params}} or NULL
 * when it asked nothing (borrowed). */
json_t *mcp_reqctx_questions(const mcp_reqctx *ctx);
/* The answers to keep for the next round: those the handler read (borrowed object), or NULL
 * when it read none. Answers to keys it never asked are left out, so unexpected extra keys are ignored. */
json_t *mcp_reqctx_answers_used(const mcp_reqctx *ctx);
/* The capabilities a refused question needed, as a ClientCapabilities object ({"sampling":{}}),
 * or NULL (borrowed). */
json_t *mcp_reqctx_missing(const mcp_reqctx *ctx);
/* The content blocks a tool added (an array, borrowed) or NULL. */
json_t *mcp_reqctx_content(const mcp_reqctx *ctx);

#endif

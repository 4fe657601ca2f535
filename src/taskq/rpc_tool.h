/* rpc_tool.h — the MCP tool `task_queue.rpc`: a TaskQueue op message in, the op's reply out
 * (p2p_tasks_spec.md §2.3 "How task_queue.rpc runs"). Both service protocols end here: a
 * /mcp+p2p/1.0.0 tools/call of task_queue.rpc and a legacy NDJSON request are dispatched as
 * this tool, so auth, the op table and the reply shapes are the same on every path; a local
 * MCP client may call it too.
 *
 * The arguments are the message itself, or {"<any key>": <message object>} (unwrapped). The
 * result is the op reply object ({"ok":…, "peer_id":…, …}); transports that speak the Python
 * shape wrap it as {"content": reply}. The op `call_tool` runs the named tool as a child of
 * this call (mcp_dispatch_invoke_timeout): same caller, same remote filter, deadline = the op's
 * timeout_s (clamped by the op table) or the parent's, whichever comes first.
 *
 * The tool is MCP_TOOL_ASYNC (issue 9 item 4): `wait` holds no thread — a queue watch
 * (tq_watch_add) wakes it when the task ends, a timer at its timeout, and only the reads of the
 * task are short pool jobs — and a caller (its PeerId; the local operator is not counted) may
 * hold taskq_config.max_waits_per_peer waits at once, more are answered
 * {"ok":false,"error":"busy","detail":…}. submit, claim (also a waiting one: parked in the
 * queue, no thread held), complete and task.heartbeat go from the loop straight to the queue's
 * writer (taskq_handle_async, issue 11 §2) and complete from there; `call_tool` runs on the
 * dispatcher's long pool (busy when its queue is full), every other op on the short pool;
 * those complete from the worker.
 *
 * Ownership: ctx is borrowed and must outlive the registry. Register once, on the main thread,
 * before serving. */
#ifndef PEERMCP_TASKQ_RPC_TOOL_H
#define PEERMCP_TASKQ_RPC_TOOL_H

#include <jansson.h>

#include "mcp/registry.h"
#include "taskq/table.h"

#define TASKQ_RPC_TOOL "task_queue.rpc"

/* Deadline of one task_queue.rpc call: the longest wait (300 s) plus a margin. */
#define TASKQ_RPC_TOOL_TIMEOUT_MS 330000u

int taskq_rpc_tool_register(mcp_registry *reg, taskq_ctx *ctx) __attribute__((warn_unused_result));

/* Waits in progress through the tool registered in reg (loop thread; for status and tests). */
size_t taskq_rpc_tool_waits(const mcp_registry *reg);
/* … of which held by this remote caller (its PeerId). */
size_t taskq_rpc_tool_waits_of(const mcp_registry *reg, const char *peer_id);

/* The op message inside task_queue.rpc arguments (§2.3: a single key whose value is an object
 * is unwrapped; anything else is the message itself). Borrowed from args. */
const json_t *taskq_rpc_message(const json_t *args);

#endif

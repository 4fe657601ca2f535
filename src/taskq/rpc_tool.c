/* rpc_tool.c — the task_queue.rpc tool (see rpc_tool.h). */
#include "taskq/rpc_tool.h"

#include <errno.h>
#include <string.h>

#include "mcp/dispatch.h"

static bool rpc_cancelled(void *ud) { return mcp_call_cancelled(ud); }

/* The `call_tool` op: the named tool runs as a child of the task_queue.rpc call. */
static int rpc_nested_tool(void *ud, const auth_ctx *auth, const char *tool, json_t *args, int64_t timeout_ms,
                           json_t **result, bool *is_error) {
  mcp_call *call = ud;
  (void)auth; /* the child inherits the parent's auth (which already holds the message token) */
  *result = NULL;
  *is_error = false;
  if (strcmp(tool, TASKQ_RPC_TOOL) == 0) return -ENOENT; /* no recursion through the op table */
  json_t *env = NULL;
  /* the op's timeout_s (already clamped by the op table) bounds the child; the parent's
   * deadline still applies */
  uint32_t tmo = timeout_ms <= 0 ? 0 : timeout_ms > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)timeout_ms;
  mcp_dispatch_status st = mcp_dispatch_invoke_timeout(call, NULL, tool, args, tmo, &env);
  int rc = 0;
  switch (st) {
  case MCP_DISPATCH_OK: *result = json_incref(json_object_get(env, "result")); break;
  case MCP_DISPATCH_TOOL_ERROR:
    *is_error = true;
    *result = json_incref(json_object_get(env, "error"));
    break;
  case MCP_DISPATCH_UNKNOWN_TOOL:
  case MCP_DISPATCH_UNKNOWN_CATEGORY: rc = -ENOENT; break;
  case MCP_DISPATCH_FORBIDDEN: rc = -EPERM; break;
  case MCP_DISPATCH_TIMEOUT: rc = -ETIMEDOUT; break;
  case MCP_DISPATCH_CANCELLED: rc = -ECANCELED; break;
  case MCP_DISPATCH_INVALID_ARGUMENTS:
    *is_error = true;
    *result = json_incref(json_object_get(env, "error"));
    break;
  default: rc = -EIO; break;
  }
  json_decref(env);
  return rc;
}

/* The ops that may block for long run on the dispatcher's long pool: wait (up to wait_max_s)
 * and call_tool (any tool, command tools included); every other op is short. Not done yet: a
 * wait still holds a long-pool thread while it waits (no per-peer cap either); an asynchronous
 * wait on the queue's change notification that holds no thread is later work (issue 9 item 4). */
static bool rpc_is_long(mcp_call *call, const json_t *args, void *ud) {
  (void)call;
  const json_t *msg = taskq_rpc_message(args);
  const json_t *op = json_object_get(msg, "op");
  taskq_op o = taskq_op_parse(json_is_string(op) ? json_string_value(op) : NULL);
  /* a claim that may wait for work holds its thread too (bounded by the op table's caps) */
  return o == TASKQ_OP_WAIT || o == TASKQ_OP_TOOL || (o == TASKQ_OP_CLAIM && taskq_claim_wait_s(ud, msg) > 0);
}

static mcp_tool_status rpc_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  taskq_ctx *ctx = ud;
  taskq_call tc = {.auth = mcp_call_auth(call),
                       .cancelled = rpc_cancelled,
                       .cancel_ud = call,
                       .tool_call = rpc_nested_tool,
                       .tool_ud = call};
  const json_t *msg = taskq_rpc_message(args);
  *result = taskq_handle(ctx, msg, &tc);
  if (!*result) {
    *result = json_string("out of memory");
    return MCP_TOOL_ERROR;
  }
  return MCP_TOOL_OK;
}

const json_t *taskq_rpc_message(const json_t *args) {
  if (json_is_object(args) && json_object_size(args) == 1) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v) {
      if (json_is_object(v)) return v;
    }
  }
  return args;
}

int taskq_rpc_tool_register(mcp_registry *reg, taskq_ctx *ctx) {
  mcp_tool_def d = {0};
  d.name = TASKQ_RPC_TOOL;
  d.category = "p2p";
  d.title = "TaskQueue RPC";
  d.description =
      "Runs one TaskQueue op message (submit, claim, complete, list, get, wait, cancel, status, call_tool, "
      "cache.get/set/has/delete, …) and returns the op's reply. Each op checks the caller's scopes.";
  d.input_schema = "{\"type\":\"object\",\"properties\":{\"op\":{\"type\":\"string\"}}}";
  d.scopes = AUTH_SCOPES(0); /* per op (op.h) */
  d.flags = MCP_TOOL_REMOTE;
  d.timeout_ms = TASKQ_RPC_TOOL_TIMEOUT_MS;
  d.fn = rpc_fn;
  d.is_long = rpc_is_long;
  d.ud = ctx;
  return mcp_registry_add(reg, &d);
}

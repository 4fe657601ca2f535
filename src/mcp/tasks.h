/* tasks.h — MCP Tasks as the session core sees them: the task view, the backend interface a
 * store implements (create / get / wait / list / cancel), and the JSON shapes of both eras.
 *
 * Specs: 2025-11-25 basic/utilities/tasks.mdx (legacy: `tasks` capability, params.task,
 * CreateTaskResult {task}, tasks/get|result|list|cancel, execution.taskSupport) and SEP-2663
 * (modern 2026-07-28 extension `io.modelcontextprotocol/tasks`: resultType "task",
 * ttlSeconds / pollIntervalMilliseconds, DetailedTask with result/error inline,
 * tasks/get|update|cancel, cancel and update answered with an empty acknowledgement).
 *
 * The session (mcp/session.c) owns the protocol mapping; a backend owns storage and execution.
 * mcp/ never includes store/ — the durable implementation lives in tools/mcp_tasks_queue.h.
 *
 * Backend contract:
 *  - every operation is asynchronous: it returns 0 and later calls `cb` exactly once on the loop
 *    thread (never from inside the call), or returns a negative errno and never calls `cb`;
 *  - `create` calls back only once the task is durable (a tasks/get for it would find it);
 *  - `detach(op)` (loop thread) guarantees `cb` will not run for that op; the op handle is
 *    invalid after the callback or the detach;
 *  - tasks belong to an owner string (mcp_tasks_owner_key); get / wait / cancel of a task that
 *    belongs to another owner answer -ENOENT, list shows only the owner's tasks.
 * Callback rc: 0; -ENOENT (no such task, another owner's, or expired); -EINVAL (bad cursor);
 * -EALREADY (cancel of a task already terminal; the view is given); -ESHUTDOWN; other < 0 =
 * internal error.
 *
 * Threads: the session calls the backend on the loop thread only. */
#ifndef PEERMCP_MCP_TASKS_H
#define PEERMCP_MCP_TASKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcp/registry.h"
#include "mcp/tool.h"

#define MCP_TASKS_EXTENSION "io.modelcontextprotocol/tasks"
#define MCP_TASKS_RELATED_META "io.modelcontextprotocol/related-task"
#define MCP_TASKS_MAX_ID 64       /* task ids longer than this are refused before any lookup */
#define MCP_TASKS_MAX_OWNER 768   /* owner key ceiling (PeerId + issuer + subject fit) */
#define MCP_TASKS_MAX_CURSOR 128  /* tasks/list cursor ceiling */

typedef enum {
  MCP_TASK_WORKING = 0,
  MCP_TASK_INPUT_REQUIRED,
  MCP_TASK_COMPLETED,
  MCP_TASK_FAILED,
  MCP_TASK_CANCELLED,
} mcp_task_status;

/* "working", "input_required", "completed", "failed", "cancelled". */
const char *mcp_task_status_name(mcp_task_status st);
static inline bool mcp_task_status_terminal(mcp_task_status st) { return st >= MCP_TASK_COMPLETED; }

typedef enum {
  MCP_TASK_SUPPORT_FORBIDDEN = 0, /* default */
  MCP_TASK_SUPPORT_OPTIONAL,
  MCP_TASK_SUPPORT_REQUIRED,
} mcp_task_support;

/* "forbidden", "optional", "required". */
const char *mcp_task_support_name(mcp_task_support s);

/* What a backend reports about one task. Valid during the callback only (everything borrowed). */
typedef struct mcp_task_view {
  const char *task_id;
  mcp_task_status status;   /* the queue's view: failed includes tool errors (legacy meaning) */
  const char *status_message; /* NULL = none */
  double created_at, updated_at; /* Unix seconds */
  int64_t ttl_ms;           /* < 0 = unlimited */
  uint32_t poll_interval_ms;/* 0 = none */
  /* terminal only: */
  json_t *result;           /* CallToolResult (isError true for a tool error) or NULL */
  json_t *error;            /* JSON-RPC error object {code, message} when the run failed without a
                               tool result (or was cancelled), else NULL */
} mcp_task_view;

/* views: n entries (1 for create/get/wait/cancel, 0..limit for list); next_cursor NULL = last
 * page. */
typedef void (*mcp_tasks_done_fn)(void *ud, int rc, const mcp_task_view *views, size_t n, const char *next_cursor);

typedef struct mcp_tasks_op mcp_tasks_op;

typedef struct mcp_task_create {
  const char *owner;      /* mcp_tasks_owner_key of the caller */
  const char *tool;       /* registered tool name */
  json_t *args;           /* object (borrowed; the backend copies what it keeps) */
  int64_t ttl_ms;         /* requested ttl; < 0 = none requested (backend default) */
} mcp_task_create;

typedef struct mcp_tasks_backend {
  void *impl;
  /* NULL = the default rule: MCP_TOOL_REMOTE tools are optional, others forbidden. */
  mcp_task_support (*support)(void *impl, const mcp_tool *tool);
  int (*create)(void *impl, const mcp_task_create *req, mcp_tasks_done_fn cb, void *ud, mcp_tasks_op **op);
  /* wait = false: the current state; true: blocks (off the loop) until the task is terminal. */
  int (*get)(void *impl, const char *owner, const char *task_id, bool wait, mcp_tasks_done_fn cb, void *ud,
             mcp_tasks_op **op);
  /* cursor NULL = first page; limit 1..100. */
  int (*list)(void *impl, const char *owner, const char *cursor, size_t limit, mcp_tasks_done_fn cb, void *ud,
              mcp_tasks_op **op);
  /* Moves the task to cancelled (queued: at once; running: the run is asked to stop and the task
   * is marked cancelled before the callback). */
  int (*cancel)(void *impl, const char *owner, const char *task_id, mcp_tasks_done_fn cb, void *ud,
                mcp_tasks_op **op);
  void (*detach)(void *impl, mcp_tasks_op *op);
} mcp_tasks_backend;

/* The default taskSupport rule applied through backend->support (or the REMOTE rule). */
mcp_task_support mcp_tasks_tool_support(const mcp_tasks_backend *b, const mcp_tool *tool);

/* The authorization context a task is bound to: "peer:<PeerId>[/<who>]", "<who>", "local" for
 * the local operator, "anonymous" otherwise, where <who> is "sub:<subject>", or
 * "iss:<issuer>/sub:<subject>" for a JWT (a subject is unique within its issuer only). Writes at most
 * `cap` bytes (NUL included); returns false when it does not fit. */
bool mcp_tasks_owner_key(const mcp_auth *auth, char *buf, size_t cap);

/* RFC 3339 UTC with milliseconds, e.g. "2026-11-24T09:10:00.123Z" (buf >= 32 bytes). */
void mcp_tasks_iso8601(double unix_s, char buf[32]);

/* Legacy Task object {taskId, status, statusMessage?, createdAt, lastUpdatedAt, ttl (ms or null),
 * pollInterval?} (new reference). */
json_t *mcp_tasks_legacy_json(const mcp_task_view *v);

/* SEP-2663 DetailedTask {taskId, status, statusMessage?, createdAt, lastUpdatedAt, ttlSeconds,
 * pollIntervalMilliseconds?, result? | error?} (new reference). The modern status differs from
 * the view's for a tool error: the call completed (result has isError true); `failed` is kept
 * for runs that ended with a JSON-RPC error. with_outcome false leaves result/error out
 * (CreateTaskResult). */
json_t *mcp_tasks_modern_json(const mcp_task_view *v, bool with_outcome);

/* The modern status of a view (see above). */
mcp_task_status mcp_tasks_modern_status(const mcp_task_view *v);

#endif

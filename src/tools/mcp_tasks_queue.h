/* mcp_tasks_queue.h — MCP Tasks (mcp/tasks.h) over the durable task queue (store/queue.h).
 *
 * A task-augmented tools/call becomes a queue task of type "tool.call" with the payload
 *   {"tool": <name>, "args": {...}, "mcp_task": {"owner": <owner key>, "ttl_ms": N}}
 * submitted durably (tq_submit returns after the fsync) before the backend answers, so the
 * CreateTaskResult never names a task that a restart would lose. Its queue id (32 hex digits,
 * random) is the MCP taskId. Only tasks carrying "mcp_task" are visible through MCP, and only
 * to the owner that created them (the authorization context of the session).
 *
 * Who runs a task: this module's runner when it is enabled (serve enables it unless
 * mcp_tasks.runner is false; the node's in-process workers then leave MCP tasks to it through
 * mcp_tasks_queue_claim_others), else anything that claims "tool.call" tasks from this queue —
 * the in-process workers (p2p.workers), a `peermcp worker --peer <this node>` elsewhere. The
 * runner is the one task runner (taskq/runner.h) over the local queue with a claim that takes
 * only queued MCP tasks
 * (and deletes expired ones on the way; its first claim also releases the tasks held by
 * runners of processes of this host that are gone). Idle runner slots look again every
 * scan_interval_ms at most, and at once after each create. Tools run as a remote caller
 * (subject "mcp-task-runner": only MCP_TOOL_REMOTE tools), with the runner's result shapes:
 *   completed {"tool", "result"}  ·  failed {"tool", "error", "error_type"} (tool error)  ·
 *   retry after 1 s on timeout / internal error  ·  cancelled.
 *
 * Status mapping: queued / running → working; completed, failed, cancelled as they are.
 * tasks/cancel: queued → cancelled at once; running → cancel requested and the task marked
 * cancelled at once (the worker sees its lease fenced off at the next heartbeat; the local
 * runner cancels its call immediately).
 * TTL: requested ttl clamped to max_ttl_ms (default: 1 hour when none is asked); a task past
 * createdAt + ttl is deleted on sight and answers "not found". tasks/list shows the owner's
 * MCP tasks among the oldest 1000 "tool.call" tasks in the queue.
 *
 * Threads: every backend entry point and the runner run on the loop thread; queue calls run on
 * the dispatcher's worker pool (tasks/result waits there too, at most max_waiters at once).
 * Ownership: borrows the loop, the dispatcher and the queue. Order at shutdown:
 * mcp_tasks_queue_stop (loop running) → sessions freed → dispatcher freed →
 * mcp_tasks_queue_free → tq_close. */
#ifndef PEERMCP_TOOLS_MCP_TASKS_QUEUE_H
#define PEERMCP_TOOLS_MCP_TASKS_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "mcp/dispatch.h"
#include "mcp/tasks.h"
#include "store/queue.h"

typedef struct mcp_tasks_queue mcp_tasks_queue;

typedef struct mcp_tasks_queue_opts {
  uv_loop_t *loop;            /* required */
  mcp_dispatcher *dispatcher; /* required: its pool runs the queue calls; the runner calls tools */
  tq_queue *queue;            /* required */
  bool runner;                /* run MCP tasks in-process */
  unsigned runner_slots;      /* concurrent runs; 0 → 4 */
  double lease_seconds;       /* runner lease; 0 → 30 (heartbeat every lease/3) */
  int64_t default_ttl_ms;     /* 0 → 3600000 */
  int64_t max_ttl_ms;         /* 0 → 604800000 (the queue prunes terminal tasks after 7 days) */
  uint32_t poll_interval_ms;  /* suggested to clients; 0 → 1000 */
  uint32_t scan_interval_ms;  /* longest wait of an idle runner slot before it looks again; 0 → 2000 */
  unsigned max_waiters;       /* concurrent tasks/result waits; 0 → 32; more get -EBUSY */
} mcp_tasks_queue_opts;

/* A taskq_local_claim_fn (taskq/local_source.h) for the node's other in-process workers while
 * this module's runner is on: claims the oldest queued task of the requested types that was
 * not created through MCP (those stay with the MCP runner, which expires, recovers and cancels
 * them the MCP way). ud is unused. Pool thread. */
int mcp_tasks_queue_claim_others(void *ud, tq_queue *queue, const tq_claim_opts *co, tq_task **out);

/* Loop thread. 0, -EINVAL or -ENOMEM. The runner (if enabled) starts at once. */
int mcp_tasks_queue_new(const mcp_tasks_queue_opts *o, mcp_tasks_queue **out) __attribute__((warn_unused_result));

/* The backend to put in mcp_session_opts.tasks (valid until mcp_tasks_queue_free). */
const mcp_tasks_backend *mcp_tasks_queue_backend(mcp_tasks_queue *q);

/* Loop thread: stops the runner (running calls are cancelled and their tasks released, so they
 * run again after a restart), closes its handles, then calls done(ud) from the loop (at once
 * when it had stopped already). New operations afterwards fail with -ESHUTDOWN. */
void mcp_tasks_queue_stop(mcp_tasks_queue *q, void (*done)(void *ud), void *ud);

/* After mcp_tasks_queue_stop's done and after the dispatcher has been freed (its pool may
 * still hold this module's jobs until then). NULL is a no-op. */
void mcp_tasks_queue_free(mcp_tasks_queue *q);

typedef struct mcp_tasks_queue_stats {
  uint64_t created, runs_started, runs_completed, runs_failed, runs_cancelled, runs_released;
} mcp_tasks_queue_stats;
void mcp_tasks_queue_stats_get(const mcp_tasks_queue *q, mcp_tasks_queue_stats *out);

#endif

/* worker.h — task workers (p2p_tasks_spec.md §10.1, fixing §12.8–12.11): claim a task, run it
 * through the dispatcher, renew the lease while it runs, stop on cancel, complete it once.
 *
 * A worker speaks TaskQueue op messages to one or more sources:
 *   - the local queue (in-process workers, `workers = N`): ops run on the dispatcher's worker
 *     pool through taskq_handle as the local operator;
 *   - remote peers (`peermcp worker --peer A --peer B`, mesh mode): ops go over /mcp+p2p/1.0.0
 *     (client.h) to each peer in turn.
 * Task types: "tool.call" / "tool" (payload {tool|tool_name|name, args|arguments|params}) and
 * any type that names a registered tool of category "commands" (payload = its arguments).
 * Tools run as a remote caller (only MCP_TOOL_REMOTE tools, AUTH_DEFAULT_MASK, subject
 * "worker"): a peer that may submit tasks must not reach local-only tools through a worker.
 * Results: {"tool": name, "result": <structured result>} (the Python worker's shape); a tool
 * error completes the task `failed`; a dispatcher timeout or internal error is a `fail` with
 * retry (another attempt, if any are left). Every claim carries lease_epoch; heartbeat
 * (task.heartbeat every lease/3, at least 1 s) renews it; cancel_requested cancels the call;
 * a lost lease abandons the run without completing (another worker owns the task now).
 * Stopping: no new claims; running calls are cancelled after the grace period and their tasks
 * released (refunding the attempt) so another worker can take them.
 *
 * Threads: loop thread only. Ownership: the pool borrows the dispatcher, the op context and
 * the clients. */
#ifndef PEERMCP_SERVICE_WORKER_H
#define PEERMCP_SERVICE_WORKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "mcp/dispatch.h"
#include "service/client.h"
#include "taskq/table.h"

typedef struct svc_workers svc_workers;

typedef struct svc_workers_opts {
  uv_loop_t *loop;
  mcp_dispatcher *dispatcher;
  unsigned slots;             /* concurrent tasks (workers); 0 → 1 */
  const char *worker_id;      /* base id; slot i claims as "<worker_id>/<i>"; required */
  taskq_ctx *local;       /* claim from the local queue (may be NULL) */
  svc_client **remotes;       /* claim from these peers (borrowed; may be NULL) */
  size_t n_remotes;
  double lease_seconds;       /* requested lease; 0 → 60 */
  uint32_t idle_poll_ms;      /* max sleep when nothing is claimable; 0 → 500 */
  uint32_t tool_timeout_ms;   /* 0 → the tool's own */
  bool once;                  /* stop after one task (or after one empty round) */
} svc_workers_opts;

int svc_workers_start(const svc_workers_opts *o, svc_workers **out) __attribute__((warn_unused_result));
/* Stops claiming; running tasks get grace_ms to finish, then are cancelled and released.
 * done(ud) runs on the loop when every slot is idle and every handle is closed. */
void svc_workers_stop(svc_workers *w, uint32_t grace_ms, void (*done)(void *ud), void *ud);
/* After done: frees. */
void svc_workers_free(svc_workers *w);

typedef struct svc_workers_stats {
  uint64_t claimed, completed, failed, released, lease_lost, cancelled;
} svc_workers_stats;
void svc_workers_stats_get(const svc_workers *w, svc_workers_stats *out);
/* True when `once` was set and the work is done (or nothing was claimable). */
bool svc_workers_finished(const svc_workers *w);

#endif

/* local_source.h — the task source over this node's queue (store/queue.h): claim, heartbeat
 * and finish are tq_claim_next / tq_heartbeat / tq_complete | tq_retry | tq_release, run as jobs
 * on a worker pool (they block) whose completions come back on the loop.
 *
 * The claim can be replaced (claim_fn): the MCP Tasks runner claims only the tasks created
 * through MCP and removes expired ones on the way (tools/mcp_tasks_queue.c). It runs on a pool
 * thread with the queue and the claim options; it returns 0 with *out (NULL = nothing) or a
 * negative errno.
 *
 * Ownership: borrows the queue and the pool; both must outlive the source. Free the source with
 * taskq_source_free after the runner using it has stopped (no job of it is left then).
 * Threads: the source operations on the loop thread; claim_fn on pool threads. */
#ifndef PEERMCP_TASKQ_LOCAL_SOURCE_H
#define PEERMCP_TASKQ_LOCAL_SOURCE_H

#include "store/queue.h"
#include "taskq/source.h"
#include "util/workpool.h"

typedef int (*taskq_local_claim_fn)(void *ud, tq_queue *q, const tq_claim_opts *o, tq_task **out);

typedef struct taskq_local_source_opts {
  tq_queue *queue;             /* required */
  workpool *pool;              /* required (the dispatcher's pool) */
  taskq_local_claim_fn claim_fn; /* NULL: tq_claim_next */
  void *claim_ud;
} taskq_local_source_opts;

/* 0 and *out, -EINVAL, -ENOMEM. */
int taskq_local_source_new(const taskq_local_source_opts *o, taskq_source **out) __attribute__((warn_unused_result));

#endif

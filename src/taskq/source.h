/* source.h — where a task runner (runner.h) gets its tasks: the task-source interface, and the
 * task as a runner holds it.
 *
 * A source fronts one TaskQueue: the local queue (local_source.h) or a remote peer over the op
 * table (service/remote_source.h, which needs the libp2p client). Three operations, each fenced
 * by the lease the claim handed out:
 *   claim      one task for a worker id, among the task types the runner can run (the source
 *              filters: the queue, or the peer's op table, matches types after alias expansion);
 *   heartbeat  renews the lease; says whether someone asked to cancel the task;
 *   finish     complete (completed | failed | cancelled, with result and error), retry (a run
 *              that failed but may run again), or release (give it back without failing it —
 *              the attempt is refunded: for stopping, and for a task the runner cannot run).
 * A claim may wait for work (wait_s): the remote source asks the peer to (its op table answers
 * the moment a task arrives; a peer that does not know wait_s answers at once); the local
 * source does not wait yet (it answers at once; in-process workers are kicked on submit).
 * cancel_waits (optional) answers every claim still waiting with no task (their callbacks may
 * run inside the call) — for a runner that is stopping.
 *
 * Contract (libuv's): an operation returns 0 and later calls its callback exactly once, on the
 * loop thread, never from inside the call; or it returns a negative errno and never calls back.
 * Callback rc: 0; -ESTALE when the lease is no longer ours (expired and claimed again, or the
 * task was cancelled and ended); -EPERM when the source refused us (unauthorized); another
 * negative errno when the source could not be reached or failed (a dial error: -ECONNREFUSED,
 * -ETIMEDOUT, -EACCES the peer proved another PeerId, -EHOSTUNREACH no known address, …).
 *
 * Ownership: the runner borrows its sources; a source must outlive every operation it accepted
 * (free it after the runner that uses it has reported stopped). taskq_source_free frees any
 * implementation. Threads: loop thread only. */
#ifndef PEERMCP_TASKQ_SOURCE_H
#define PEERMCP_TASKQ_SOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/queue.h"
#include "util/trace.h"

#define TASKQ_MAX_WORKER_ID 200

/* A claimed task. Heap-allocated; owned by whoever the claim callback handed it to. */
typedef struct taskq_task {
  char task_id[65];
  char *task_type;
  json_t *payload;                           /* an object (a non-object is wrapped {"payload": x}) */
  char worker_id[TASKQ_MAX_WORKER_ID + 1];  /* the id it was claimed under: the fence */
  int64_t lease_epoch;                       /* 0 when the source has none (Python peers) */
  trace_ctx trace; /* the submitting request's trace (its span as the parent), or all zero */
} taskq_task;

void taskq_task_free(taskq_task *t);
/* From a queue row (payload parsed). NULL on ENOMEM or an unparsable payload. */
taskq_task *taskq_task_from_tq(const tq_task *t);
/* From a claim reply's task object ({task_id, task_type, payload, assigned_worker, lease_epoch,
 * traceparent});
 * worker_id is used when the object names no assigned_worker. NULL when the object is not a task
 * (no task_id or task_type, over-long strings) or on ENOMEM. */
taskq_task *taskq_task_from_json(const json_t *task, const char *worker_id);

/* The fence of the running task (borrowed strings). */
typedef struct taskq_lease {
  const char *task_id;
  const char *worker_id;
  int64_t lease_epoch;
} taskq_lease;

typedef struct taskq_claim_req {
  const char *worker_id;         /* required */
  const char *const *task_types; /* what the runner can run; NULL / 0 = anything */
  size_t n_task_types;
  double lease_seconds;          /* 0 = the source's default */
  double wait_s;                 /* wait up to this long for a task (0 = answer at once) */
} taskq_claim_req;

typedef enum {
  TASKQ_FINISH_COMPLETE = 0, /* status completed | failed | cancelled */
  TASKQ_FINISH_RETRY,        /* failed but may run again (another attempt, if any is left) */
  TASKQ_FINISH_RELEASE,      /* given back untouched: queued again, attempt refunded */
} taskq_finish_kind;

typedef struct taskq_finish {
  taskq_finish_kind kind;
  tq_status status;   /* COMPLETE: TQ_COMPLETED, TQ_FAILED or TQ_CANCELLED */
  json_t *result;     /* COMPLETE: object or NULL (borrowed) */
  const char *error;  /* COMPLETE / RETRY: message or NULL */
  double delay_s;     /* RETRY: not before now + delay_s */
  const char *reason; /* RELEASE: why (logged, stored in the task's progress) */
} taskq_finish;

/* task: NULL when nothing is claimable (rc 0). The callee owns the task. */
typedef void (*taskq_claim_cb)(void *ud, int rc, taskq_task *task);
typedef void (*taskq_heartbeat_cb)(void *ud, int rc, bool cancel_requested);
typedef void (*taskq_finish_cb)(void *ud, int rc);

typedef struct taskq_source_vt {
  int (*claim)(void *impl, const taskq_claim_req *req, taskq_claim_cb cb, void *ud);
  int (*heartbeat)(void *impl, const taskq_lease *lease, double lease_seconds, taskq_heartbeat_cb cb, void *ud);
  int (*finish)(void *impl, const taskq_lease *lease, const taskq_finish *f, taskq_finish_cb cb, void *ud);
  void (*free)(void *impl);
  void (*cancel_waits)(void *impl); /* optional */
} taskq_source_vt;

typedef struct taskq_source {
  const taskq_source_vt *vt;
  void *impl;
  char name[64]; /* for logs: "local", the peer's address, … */
} taskq_source;

/* Frees the source (its implementation included). NULL is a no-op. */
void taskq_source_free(taskq_source *s);

#endif

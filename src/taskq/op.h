/* op.h — the TaskQueue ops by identity (p2p_tasks_spec.md §3.1): every name and alias the
 * Python service knows plus the ops peermcp adds, the scope each op needs, and which ops a
 * client may retry.
 *
 * Scopes (auth/scope.h): status needs none (anyone may bootstrap); submit, get, wait, list,
 * cancel need task.submit; claim, claim_many, complete, fail, release, task.heartbeat and
 * peer.heartbeat need worker; call_tool needs tool.call; cache.get/has need cache.read;
 * cache.set/delete need cache.write. An unknown op needs nothing and answers unknown_op.
 *
 * Threads: pure functions over static tables. */
#ifndef PEERMCP_TASKQ_OP_H
#define PEERMCP_TASKQ_OP_H

#include <stdbool.h>

#include "auth/scope.h"

typedef enum {
  TASKQ_OP_UNKNOWN = 0,
  TASKQ_OP_SUBMIT,         /* submit */
  TASKQ_OP_CLAIM,          /* claim, claim_next */
  TASKQ_OP_CLAIM_MANY,     /* claim_many, claim_batch */
  TASKQ_OP_COMPLETE,       /* complete, task.complete, complete_task */
  TASKQ_OP_FAIL,           /* fail, task.fail, fail_task (peermcp) */
  TASKQ_OP_RELEASE,        /* release, task.release, release_task */
  TASKQ_OP_TASK_HEARTBEAT, /* task.heartbeat, task_heartbeat, lease.renew (peermcp) */
  TASKQ_OP_PEER_HEARTBEAT, /* peer.heartbeat, heartbeat, peer */
  TASKQ_OP_LIST,           /* list, tasks.list, queue.list */
  TASKQ_OP_CANCEL,         /* cancel, task.cancel */
  TASKQ_OP_STATUS,         /* status, capabilities, describe */
  TASKQ_OP_TOOL,           /* tool, call_tool, tool.call */
  TASKQ_OP_CACHE_GET,      /* cache.get, cache_get, cache */
  TASKQ_OP_CACHE_HAS,      /* cache.has, cache_has */
  TASKQ_OP_CACHE_SET,      /* cache.set, cache_set */
  TASKQ_OP_CACHE_DELETE,   /* cache.delete, cache_del, cache_delete */
  TASKQ_OP_GET,            /* get */
  TASKQ_OP_WAIT,           /* wait */
  TASKQ_OP__COUNT
} taskq_op;

/* The op a message names: `(msg.get("op") or "").strip().lower()` and its aliases. */
taskq_op taskq_op_parse(const char *op);
/* Canonical name ("submit", "claim", …; "unknown"). */
const char *taskq_op_name(taskq_op op);
/* The scopes the op needs (empty for status and unknown ops). */
auth_scopes taskq_op_scopes(taskq_op op);
/* Idempotent ops may be retried by a client after a transport failure. */
bool taskq_op_idempotent(taskq_op op);

#endif

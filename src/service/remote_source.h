/* remote_source.h — a task source (taskq/source.h) on another peer: claim, task.heartbeat,
 * complete / fail / release as TaskQueue op messages over the libp2p client (client.h), in the
 * shapes every TaskQueue node understands (p2p_tasks_spec.md §3.1, plus peermcp's fencing
 * fields, which Python nodes ignore):
 *   claim          {"op":"claim","worker_id","supported_task_types":[…],"lease_seconds"}
 *   heartbeat      {"op":"task.heartbeat","task_id","worker_id","lease_epoch","lease_seconds"}
 *   complete       {"op":"complete","task_id","worker_id","lease_epoch","status","result"?,"error"?}
 *   retry          {"op":"fail","task_id","worker_id","lease_epoch","error","retry":true,"delay_s"?}
 *   release        {"op":"release","task_id","worker_id","lease_epoch","reason"}
 * Replies: ok → 0; "lease_lost" → -ESTALE; "unauthorized" → -EPERM; a transport error → its
 * errno; any other refusal → -EPROTO. A Python node answers a heartbeat with unknown_op: that
 * run simply goes without lease renewal (-EPROTO is ignored by the runner).
 *
 * Ownership: borrows the client, which must outlive the source (close the client after the
 * runner has stopped; a close before fails what is pending with -ECANCELED). Threads: loop
 * thread only. */
#ifndef PEERMCP_SERVICE_REMOTE_SOURCE_H
#define PEERMCP_SERVICE_REMOTE_SOURCE_H

#include "service/client.h"
#include "taskq/source.h"

/* name: for logs (the peer's address). 0 and *out, -EINVAL, -ENOMEM. */
int svc_remote_source_new(svc_client *c, const char *name, taskq_source **out) __attribute__((warn_unused_result));

#endif

/* runner.h — the one task runner (p2p_tasks_spec.md §10.1, fixing §12.8–12.11): claim a task from
 * a source (source.h), run it through the dispatcher, renew its lease while it runs, stop on
 * cancel, finish it once. Used by the in-process workers (`p2p.workers`), `peermcp worker`
 * (local queue or `--peer` sources) and the MCP Tasks runner (tools/mcp_tasks_queue.c).
 *
 * Slots: `slots` tasks run at once; slot i claims as "<worker_id>/<i>", from the sources in
 * turn (round-robin, so a mesh worker drains several peers). When no source has work the slot
 * backs off (20 ms doubling to idle_poll_ms) — or until taskq_runner_kick.
 *
 * What runs: task type "tool.call" / "tool" → the tool named by payload tool | tool_name | name
 * with payload args | arguments | params (a non-object becomes {"value": x}); any other type →
 * the tool of that name, with the payload as its arguments (command tools). The runner claims
 * only the types it can run (task_types; by default "tool.call", "tool" and every remotely
 * callable tool of category "commands"); a task of another type that a source hands out anyway
 * is released ("unsupported_task_type"), not failed, so a worker that can run it gets it (and
 * the slot backs off before it claims again). Likewise a "tool.call" task naming a tool this
 * node does not have at all is released ("tool_not_found"): it stays queued until a worker
 * that has the tool claims it (`task get` shows last_release_reason meanwhile).
 * Tools run as `run_as` with remote = true: only MCP_TOOL_REMOTE tools, never the submitter's
 * or the local operator's rights.
 *
 * Result shapes (the Python worker's):
 *   tool ok          → complete completed {"tool": name, "result": <structured result>}
 *   tool error, bad arguments, a tool that exists but is not remote, forbidden, missing name
 *                    → complete failed {"tool", "error", "error_type"} (no result for a missing
 *                      name), error = the message
 *   timeout, internal error, dispatcher busy or shutting down, dispatch failure
 *                    → retry (after retry_delay_s), another attempt if any is left
 *   cancel requested (heartbeat) or taskq_runner_cancel_task → complete cancelled "cancelled"
 *   lease lost (heartbeat -ESTALE) → the run is cancelled and nothing is reported: another
 *                      worker owns the task now
 *   stopping         → release (stop_reason), the attempt refunded
 * Heartbeats go every lease/3 (at least 1 s).
 *
 * Logs: each task claimed and how its run ended (completed, failed, retry, cancelled, released,
 * lease lost) at info, one line each, with worker, task_id, task_type, tool, source, ms; a source
 * whose claims start failing (or fail differently) at warning with the reason; its recovery at
 * info.
 *
 * A result is never dropped while it may still count: a finish the source could not take (not
 * reached, no answer, a storage error — anything but lease lost, refused or a bad answer) is
 * sent again, 100 ms doubling to 6.4 s, until the lease it was claimed under would have run out
 * (when stopping: until the grace period ends). The finish is fenced by the lease, so a repeat
 * of one that did arrive changes nothing.
 *
 * A slot does not wait for its finish's answer before it claims again: the finish goes to the
 * source first, the next claim right after (a remote source's node can put both in one commit).
 * Each slot keeps at most one finish in flight while it claims and runs; a task that ends while
 * that one is still unanswered makes the slot wait for its own (at most 2 x slots unanswered
 * finishes per runner). A release the slot backs off after, once mode and stopping wait too.
 *
 * Stopping: no new claims; running calls get grace_ms, then are cancelled and their tasks
 * released; done(ud) runs on the loop once every slot is idle, every source operation has
 * answered and every handle is closed. Then free the runner, then its sources.
 *
 * Threads: loop thread only. Ownership: borrows the loop, the dispatcher and the sources. */
#ifndef PEERMCP_TASKQ_RUNNER_H
#define PEERMCP_TASKQ_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "auth/auth.h"
#include "auth/fernet.h"
#include "mcp/dispatch.h"
#include "taskq/source.h"

typedef struct taskq_runner taskq_runner;

typedef struct taskq_runner_opts {
  uv_loop_t *loop;             /* required */
  mcp_dispatcher *dispatcher;  /* required */
  taskq_source *const *sources; /* required, borrowed; the array is copied */
  size_t n_sources;
  unsigned slots;              /* concurrent tasks; 0 → 1 */
  const char *worker_id;       /* required: the base of every slot's id */
  const auth_ctx *run_as;      /* copied; NULL → kind peer, AUTH_DEFAULT_MASK, subject "worker" */
  const char *const *task_types; /* copied; NULL → "tool.call", "tool" + remote command tools */
  size_t n_task_types;
  double lease_seconds;        /* requested lease; 0 → 60 */
  uint32_t idle_poll_ms;       /* longest back-off when nothing is claimable; 0 → 500 */
  double claim_wait_s;         /* ask the source to wait up to this long for a task (0 = no):
                                  an empty answer that took at least half of it means the
                                  source waited, and the slot claims again at once; a quick
                                  empty answer (a source that does not wait) backs off */
  uint32_t tool_timeout_ms;    /* 0 → the tool's own */
  double retry_delay_s;        /* before a failed run may run again; 0 = at once */
  const char *stop_reason;     /* release reason when stopping; NULL → "worker_stopping" */
  bool once;                   /* run one task (or find none), then stop claiming */
  const auth_fernet_key *fernet; /* copied; NULL = payload encryption off. With it, a payload's
                                    {"enc":"fernet-v1"} "prompt_enc" reaches the tool decrypted
                                    as "prompt" (p2p_tasks_spec.md §4.5); one that does not
                                    decrypt fails the task (prompt_decrypt_failed) */
} taskq_runner_opts;

/* Starts claiming at once. 0, -EINVAL, -ENOMEM. */
int taskq_runner_start(const taskq_runner_opts *o, taskq_runner **out) __attribute__((warn_unused_result));
/* Idle slots claim now instead of waiting out their back-off (new work is known to exist); a
 * slot whose claim is in flight claims again at once if that claim comes back empty. */
void taskq_runner_kick(taskq_runner *r);
/* The owner cancelled this task: its running call is cancelled and the task completed
 * `cancelled` (the fenced complete is harmless if the task has ended already). */
void taskq_runner_cancel_task(taskq_runner *r, const char *task_id);
/* See above. Called again before done: replaces done/ud; after: calls done(ud) at once. */
void taskq_runner_stop(taskq_runner *r, uint32_t grace_ms, void (*done)(void *ud), void *ud);
/* After done (or before start succeeded): frees. NULL is a no-op. */
void taskq_runner_free(taskq_runner *r);

typedef struct taskq_runner_stats {
  uint64_t claimed, completed, failed, released, lease_lost, cancelled;
  uint64_t claims_answered; /* claims a source answered (with a task or with none) */
  uint64_t claim_errors;    /* claims a source refused or could not answer */
  int last_claim_error;     /* the last of those (negative errno; source.h), 0 if none */
  uint64_t finish_retries; /* finishes sent again after the source could not be reached */
} taskq_runner_stats;
void taskq_runner_stats_get(const taskq_runner *r, taskq_runner_stats *out);
/* True when `once` was set and its task is done (or no source had one). */
bool taskq_runner_finished(const taskq_runner *r);
/* The task types a runner claims by default: "tool.call", "tool" and every MCP_TOOL_REMOTE tool
 * of category "commands" in reg (a new JSON array of strings; NULL on ENOMEM). */
json_t *taskq_runner_default_types(const mcp_registry *reg);
/* The task types the runner claims (borrowed; valid until free). */
const char *const *taskq_runner_task_types(const taskq_runner *r, size_t *n);

#endif

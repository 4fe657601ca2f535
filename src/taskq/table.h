/* table.h — the TaskQueue op table (p2p_tasks_spec.md §3.1, §3.3, §3.4) as one function:
 * op message + caller + context → reply, over the queue and cache of store/.
 *
 * Every reply carries "peer_id" (ours). Errors are {"ok":false,"error":"<code>","peer_id":…}
 * with the codes of §3.1 (missing_worker_id, missing_task_id, missing_key, cache_disabled,
 * tools_disabled, unknown_op, …) plus "unauthorized" (the caller lacks the op's scope, op.h;
 * closed by default, auth/policy.h) and
 * "queue_disabled". Beyond the original:
 *   - task.heartbeat {task_id, worker_id, lease_epoch?, lease_seconds?} renews the lease and
 *     reports cancel_requested;
 *   - fail {task_id, worker_id, lease_epoch?, error, result?, retry (true), delay_s (0)};
 *   - complete / release / fail / task.heartbeat are fenced by worker_id (+ lease_epoch when
 *     given): a stale worker gets {"ok":false,"error":"lease_lost"}. complete without worker_id
 *     (what Python workers send) is refused with missing_worker_id unless the context allows
 *     unfenced completes (compat_unfenced_complete) or the caller is local;
 *   - claim replies add lease_epoch and cancel_requested to the task;
 *   - wait is capped (wait_max_s) and stops early when the caller goes away;
 *   - claim {…, wait_s} waits for a task (see claim_wait_max_s below);
 *   - submit accepts a top-level idempotency_key (makes client retries safe).
 * Deterministic claim scheduling (§3.2) is opt-in (deterministic); otherwise claims use queue
 * order (priority, then age). Trust tiers (§4.3) come from verified credentials only: with
 * trust_tiers, a baseline caller (no token, no JWT, not a trusted peer) claims only tasks of
 * priority ≤ baseline_max_priority (and they never disable the token check, fixing §12.2).
 * Cache replication (§3.5) is a hook (replicate) that the service wires to its clients.
 *
 * Auth: the caller's context (auth/auth.h) plus the message's own "token" or "jwt" (the shared
 * token or a JWT, checked by the policy, §4.1) must hold the scope the op needs (op.h), checked
 * before anything else runs. A credential that is presented and not valid refuses the message
 * (unauthorized) even for an op that needs no scope; every refusal is logged and counted
 * (auth/audit.h).
 *
 * What strangers read (issue 9 item 5): `status` from a caller holding no scope answers only
 * ok, peer_id, protocol, auth_required:true and the keys Python clients read (capabilities —
 * empty —, nat); a caller with any scope gets the full plain status (capabilities with the task
 * types, which name remote command tools, session, its own scopes); `detail` needs the worker
 * scope (else unauthorized).
 *
 * The scheduler's peer table (peer.heartbeat, claims; §3.2) is keyed by the caller's proven
 * PeerId: a remote caller updates only its own entry, whatever peer it names (the name is kept
 * as peer_hint); only the local operator may name any peer. Entries are bounded: at most
 * max_known_peers (oldest seen dropped), names and worker ids of at most TASKQ_MAX_NAME bytes,
 * TASKQ_MAX_TYPES task types; the MerkleClock takes at most max_known_peers nodes (64 new per
 * merge, names ≤ TASKQ_MAX_NAME). A heartbeat reply lists the 32 most recently seen peers, a
 * detailed status 256 (counts cover all).
 *
 * Layering: taskq/ sees auth/, store/ and mcp/, never service/ or p2p/: the transport hands
 * in the caller and the tool runner.
 *
 * Threads: taskq_handle blocks (SQLite, cache files, wait, tool calls): call it on a
 * worker thread, never on the event loop. The context is shared read-mostly by all threads
 * (its peer table has its own lock). */
#ifndef PEERMCP_TASKQ_TABLE_H
#define PEERMCP_TASKQ_TABLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "auth/policy.h"
#include "taskq/op.h"
#include "taskq/task_type.h"
#include "store/cache.h"
#include "store/queue.h"

/* Runs a tool for the `tool` / `call_tool` op. Blocking, called on the worker thread that
 * runs the op. Returns 0 with *result (new reference: the tool's structured result, or its
 * error value when *is_error) or a negative errno: -ENOENT unknown tool (or one this caller
 * may not see), -EPERM not allowed, -ETIMEDOUT, -ECANCELED, others → the error's name. */
typedef int (*taskq_tool_call_fn)(void *ud, const auth_ctx *auth, const char *tool, json_t *args,
                                int64_t timeout_ms, json_t **result, bool *is_error);

/* Adds transport / worker sections to the status reply (detail or not). Returns a new object
 * whose keys are merged into the reply, or NULL. */
typedef json_t *(*taskq_status_hook_fn)(void *ud, bool detail);

typedef struct taskq_ctx taskq_ctx;

#define TASKQ_MAX_NAME 256 /* peer names, worker ids, session ids, task types kept by the scheduler */

typedef struct taskq_config {
  tq_queue *queue;          /* borrowed; NULL → queue ops answer queue_disabled */
  ttlcache *cache;          /* borrowed; NULL → cache ops answer cache_disabled */
  const auth_policy *policy; /* borrowed; for message tokens (may be NULL: none) */
  const char *peer_id;      /* ours, copied */
  const char *session;      /* IPFS_ACCELERATE_PY_TASK_P2P_SESSION, copied; NULL → "" */
  const char *protocol;     /* the protocol status names (e.g. "/mcp+p2p/1.0.0"), copied; NULL → none */
  bool tools_enabled;       /* false → tools_disabled */
  taskq_tool_call_fn tool_call; void *tool_ud; /* NULL → mcp_registry_unavailable */
  taskq_status_hook_fn status_hook; void *status_ud;
  /* Cache replication (§3.5, opt-in): called after a successful cache.set / cache.delete whose
   * message did not say "replicate": false, with the message to forward ({"op","key",["value",
   * "ttl_s"],"origin_peer_id","replicate":false}; borrowed). Must not block. */
  void (*replicate)(void *ud, const json_t *fwd); void *replicate_ud;
  json_t *capabilities;     /* status "capabilities" (borrowed, copied per reply); NULL → default */
  double wait_max_s;        /* cap on wait timeout_s (default 300) */
  double tool_timeout_max_s;/* cap on call_tool timeout_s (default 300) */
  bool compat_unfenced_complete; /* accept complete without worker_id (Python mesh workers) */
  bool deterministic;       /* §3.2 deterministic claims (off by default here; the Python
                               service defaults it on): a claim gets only a task this peer owns
                               by Hamming distance over the MerkleClock, at most one per claim */
  bool trust_tiers;         /* §4.3 from verified credentials (auth_ctx_tier): claims of a
                               baseline caller are capped at baseline_max_priority */
  int baseline_max_priority; /* 5 (1..10) */
  /* A claim with "wait_s" (opt-in; Python clients never send it) waits up to that long for a
   * task when none is claimable, woken by the queue (tq_wait_work) — a worker waits for work
   * instead of polling. Capped at claim_wait_max_s; at most claim_waiters_max such claims wait
   * at once in the process and claim_waiters_per_peer per caller (by PeerId, else worker_id):
   * past either, or in deterministic mode, the claim answers at once as without wait_s. A claim
   * that waited says so in its reply ("wait_s": the wait applied). */
  double claim_wait_max_s;        /* 30 */
  unsigned claim_waiters_max;     /* 1024: through task_queue.rpc a waiting claim holds no
                                     thread (taskq_handle_async: a parked record of ~300 bytes
                                     in the queue, also bounded by its max_waiters); a blocking
                                     taskq_handle claim holds its caller's thread */
  unsigned claim_waiters_per_peer;/* 256 (callers counted: 64 at once) */
  size_t max_known_peers;   /* 1024: peer.heartbeat table (oldest dropped) */
  unsigned max_waits_per_peer; /* 64: `wait` ops one caller may hold at once through
                                  task_queue.rpc (rpc_tool.h); more answer busy */
  double peer_timeout_s;    /* 300: "alive" window for known peers */
} taskq_config;

void taskq_config_default(taskq_config *c);
/* Copies what it needs from cfg. NULL on ENOMEM. */
taskq_ctx *taskq_new(const taskq_config *cfg);
void taskq_free(taskq_ctx *ctx);
const char *taskq_peer_id(const taskq_ctx *ctx);
/* Replaces the status "capabilities" object (copied). Same rule as taskq_set_peer_id. */
int taskq_set_capabilities(taskq_ctx *ctx, const json_t *caps);
/* Sets our PeerId (known only once the host exists). Call before any op is handled: it is
 * not synchronised with readers. 0 or -ENOMEM. */
int taskq_set_peer_id(taskq_ctx *ctx, const char *peer_id);

/* Per-request extras. */
typedef struct taskq_call {
  const auth_ctx *auth;           /* the caller as the transport knows it (required) */
  bool (*cancelled)(void *ud);    /* the caller went away (may be NULL) */
  void *cancel_ud;
  taskq_tool_call_fn tool_call;     /* overrides the context's runner for this request (e.g. a
                                     nested mcp_dispatch_invoke under the running call) */
  void *tool_ud;
} taskq_call;

/* Handles one TaskQueue message (a JSON object; the message's own "token" is honoured).
 * Always returns a reply object (new reference); NULL only on ENOMEM. Blocking. */
json_t *taskq_handle(taskq_ctx *ctx, const json_t *msg, const taskq_call *call);

/* The wait (seconds) a claim message asks for ("wait_s"), capped by claim_wait_max_s; 0 = it
 * answers at once. For transports deciding where the op runs (a waiting claim blocks). */
double taskq_claim_wait_s(const taskq_ctx *ctx, const json_t *msg);

/* {"ok":false,"error":code,"peer_id":…} (new reference). */
json_t *taskq_error(const taskq_ctx *ctx, const char *code);

/* The `wait` op in two halves, for a caller that waits without a thread (rpc_tool.c, on the
 * queue's change notification): taskq_wait_prepare checks the message as taskq_handle would
 * (scopes with the message's token, the queue, NULs) and returns NULL with the task id and the
 * clamped timeout to wait for — or the reply to give at once (a new reference: unauthorized,
 * queue_disabled, {"ok":true,"task":null} without a task id). Never blocks.
 * taskq_wait_reply reads the task and builds the wait's reply (blocking: a worker thread).
 * taskq_wait_read is that read saying whether the wait is over (*over: no such task, an error, or
 * a terminal task) and building the reply only when it is, or when `always` (else NULL).
 * taskq_wait_reply_task builds the reply from a task at hand (t NULL: no such task; never
 * blocks — the row a complete's commit hands to the task's watches, tq_watch_add). All three
 * return NULL on ENOMEM. */
json_t *taskq_wait_prepare(taskq_ctx *ctx, const json_t *msg, const auth_ctx *auth, char task_id[33],
                           double *timeout_s);
json_t *taskq_wait_reply(taskq_ctx *ctx, const char *task_id);
json_t *taskq_wait_read(taskq_ctx *ctx, const char *task_id, bool always, bool *over);
json_t *taskq_wait_reply_task(taskq_ctx *ctx, const tq_task *t);
/* The same reply written as text (TASKQ_ASYNC_RAW's carrier: a JSON string holding the
 * object's JSON text, the bytes jwrite_json with JWRITE_ASCII writes for the tree); NULL when
 * it cannot be (out of memory, a stored string json_string() refuses): build the tree then. */
json_t *taskq_wait_reply_task_raw(taskq_ctx *ctx, const tq_task *t);
/* The hot ops without a thread (issue 11 §2): submit, claim (also one that waits, wait_s),
 * complete and task.heartbeat run straight on the queue's writer (tq_*_async: no worker-pool
 * hop, one group commit for whatever arrived together). taskq_handle_async checks the message
 * exactly as taskq_handle does (NULs, credentials, scopes, arguments) and never blocks:
 *   TASKQ_ASYNC_REPLY    *reply is the answer now (a refusal, a validation error);
 *   TASKQ_ASYNC_STARTED  done(reply, ud) will be called exactly once with the reply (stolen;
 *                        NULL on ENOMEM) — on the queue's writer thread, or on the thread that
 *                        calls tq_claim_cancel / tq_claims_expire for a waiting claim; a waiting
 *                        claim's id is in *claim_id (0 otherwise);
 *   TASKQ_ASYNC_BLOCKING any other op (or one this path does not take: deterministic claims,
 *                        claim_many, a message whose own traceparent names another trace):
 *                        run taskq_handle on a worker thread.
 * msg is referenced until done. Loop thread or any other. */
typedef enum { TASKQ_ASYNC_REPLY = 0, TASKQ_ASYNC_STARTED = 1, TASKQ_ASYNC_BLOCKING = 2 } taskq_async_status;
typedef void (*taskq_async_done)(json_t *reply, void *ud);
/* flags: TASKQ_ASYNC_RAW — the caller's consumer takes a success written as text: done() may
 * get, instead of the reply object, a JSON *string* holding that object's JSON text (exactly the
 * bytes jwrite_json with JWRITE_ASCII writes for the tree: same keys, order and numbers), built
 * where the commit lands without a tree (issue 11 §2). Only successes of submit, claim and
 * complete come so; refusals, errors and the replies given at once (*reply) stay objects. */
#define TASKQ_ASYNC_RAW 0x1u
/* Ceiling of such a text (a task's payload is bounded far below it by the submit's limits). */
#define TASKQ_RAW_MAX_BYTES ((size_t)1 << 30)
taskq_async_status taskq_handle_async(taskq_ctx *ctx, const json_t *msg, const auth_ctx *auth, unsigned flags,
                                      taskq_async_done done, void *ud, uint64_t *claim_id, json_t **reply);
tq_queue *taskq_queue(const taskq_ctx *ctx);
unsigned taskq_max_waits_per_peer(const taskq_ctx *ctx);
/* Whether the message may be handled: every top-level string except the data fields (payload,
 * value, result, args, arguments, error, detail) becomes a C string somewhere, so one holding
 * a NUL (\u0000) is refused ({"ok":false,"error":"invalid_message","detail":…}; NULL when the
 * message is fine). New reference. */
json_t *taskq_check_strings(const taskq_ctx *ctx, const json_t *msg);

/* Presents msg["token"] and msg["jwt"] (strings: the shared token or a JWT) for *a
 * (auth_policy_present): OK when one raised *a, REFUSED (with *reason / *detail, may be NULL)
 * when one was not valid (*a unchanged then), else IGNORED. For transports that see the
 * message before the table does. */
auth_present_result taskq_present_msg_credentials(const auth_policy *p, const json_t *msg, auth_ctx *a,
                                                  auth_reason *reason, const char **detail);
/* Shorthand: true when msg carried a credential that raised *a. */
bool taskq_present_msg_token(const auth_policy *p, const json_t *msg, auth_ctx *a);

/* What the scheduler's peer table holds (for tests and status): entries, their bound, MerkleClock
 * nodes, and an estimate of the bytes held (strings, extras, the table). */
typedef struct taskq_sched_usage {
  size_t peers, max_peers, clock_nodes, bytes;
} taskq_sched_usage;
void taskq_scheduler_usage(taskq_ctx *ctx, taskq_sched_usage *out);

/* The scheduler's MerkleClock root of §3.2 for a vector {node: counter}: sha256 hex of
 * Python's json.dumps(sorted(vector.items())). out: 65 bytes. */
void taskq_merkle_root(const json_t *vector, char out[65]);

#endif

/* queue.h — the durable task queue (TaskQueue), p2p_tasks_spec.md §5 with the fixes of §12.
 *
 * Owns: one queue database (SQLite, WAL, synchronous=FULL) behind an internal backend
 * interface (queue_backend.h) so a server-grade backend can be added without touching callers.
 * A task reads back field for field like the Python TaskQueue's task dict (§3.1, §5.2).
 *
 * States: queued → running → completed | failed | cancelled; running → queued on release,
 * retry or an expired lease. Claim order: priority DESC, created_at ASC, task_id ASC.
 *
 * Fixes over the Python queue (§12):
 *  - heartbeat renews the lease and reports cancel_requested;
 *  - complete / fail / retry / release are fenced by (worker_id, lease_epoch): lease_epoch is
 *    a counter bumped at every claim, so a worker whose lease expired and whose task was
 *    claimed again cannot touch the new run (-ESTALE);
 *  - release refunds the attempt; a task that runs out of attempts ends `failed` with a reason;
 *  - cancel: queued → cancelled at once; running → cancel_requested flag seen at heartbeat;
 *  - tq_wait wakes on the task's own terminal transition (condition variable), capped timeout;
 *  - terminal tasks are pruned by age (tq_prune_terminal).
 *
 * Durability: every call that changes state returns only after its transaction is durable
 * (fsynced) — except claims and heartbeats, committed without an fsync of their own (durable
 * across a process crash, and at the next fsynced commit; a power loss may undo them, which
 * puts the task back in the queue and refuses the old run's finish as lease_lost, the same
 * at-least-once a lost lease means). With group commit (default) a dedicated writer thread runs whatever operations
 * arrived together in one transaction with one fsync; each operation still succeeds or fails
 * on its own (savepoints), and a failed commit fails every operation of that group.
 *
 * Threads: every function is thread-safe and may block (disk I/O, the writer's queue, waits):
 * never call them on the event-loop thread — use the worker pool, or tq_submit_async whose
 * callback runs on the queue's writer thread. Readers (get/list/stats) use their own pooled
 * connections and do not wait for the writer.
 *
 * Ownership: tq_task objects returned to the caller are heap-allocated; free with
 * tq_task_free / tq_task_array_free. Strings and JSON passed in are borrowed.
 *
 * Errors (negative errno; tq_strerror gives the reply string):
 *   -EINVAL  bad argument (empty worker id, non-object payload, invalid UTF-8, bad status…)
 *   -E2BIG   payload or result over max_payload_bytes
 *   -EEXIST  idempotency key or task_id already identifies different work
 *   -ENOENT  no such task
 *   -ESTALE  fencing failed: not running, other owner, or an older lease epoch
 *   -ENOSPC  disk full;  -EROFS / -EACCES  read-only state;  -EIO  other storage error
 *   -EBUSY   database locked longer than busy_timeout_ms, or too many waiters
 *   -ENOTSUP the file is not an SQLite database (e.g. the Python queue's DuckDB file)
 *   -EBADMSG the database is corrupt ("database disk image is malformed")
 *   -ESHUTDOWN queue is closing;  -ENOMEM. */
#ifndef PEERMCP_STORE_QUEUE_H
#define PEERMCP_STORE_QUEUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tq_queue tq_queue;

typedef enum {
  TQ_QUEUED = 0,
  TQ_RUNNING = 1,
  TQ_COMPLETED = 2,
  TQ_FAILED = 3,
  TQ_CANCELLED = 4,
  TQ_STATUS_COUNT = 5,
  TQ_STATUS_ANY = -1 /* filter: every state */
} tq_status;

/* "queued", "running", … ; tq_status_parse returns -EINVAL for anything else. */
const char *tq_status_name(tq_status s);
int tq_status_parse(const char *name, tq_status *out) __attribute__((warn_unused_result));
static inline bool tq_status_terminal(tq_status s) { return s >= TQ_COMPLETED && s <= TQ_CANCELLED; }

typedef struct tq_options {
  const char *path;          /* database file (required); its directory is created (0700) */
  size_t max_payload_bytes;  /* 1048576: canonical payload_json / result_json ceiling */
  double lease_seconds;      /* 300: default lease; a requested lease is clamped to 1..86400 */
  int max_attempts;          /* 3: default when the submit does not say; 0 = unlimited */
  double wait_max_seconds;   /* 300: ceiling on tq_wait timeouts */
  bool group_commit;         /* true; false = one transaction (one fsync) per operation */
  size_t group_max_ops;      /* 512: most operations in one group transaction */
  double prune_after_seconds;/* 604800: age used by tq_maintain for terminal tasks; 0 = never */
  int busy_timeout_ms;       /* 5000: SQLite busy timeout (other processes on the same file) */
  unsigned read_connections; /* 4: pooled read connections */
  size_t max_waiters;        /* 4096: concurrent tq_wait callers */
  unsigned wait_recheck_ms;  /* 1000: tq_wait also re-reads its task this often, for changes
                                committed by another process sharing the file (in-process
                                transitions wake it at once); 0 = in-process wakes only */
  bool wal_prefill;          /* true: keep written zeros (1–8 MiB) ahead of the WAL's end, so a
                                commit's fdatasync overwrites blocks instead of growing the file
                                (no size/extent metadata to journal: about half the sync time on
                                ext4, bench/RESULTS.md); false = SQLite's plain appends */
  unsigned wal_autocheckpoint; /* 8192: WAL frames after which a commit checkpoints (PASSIVE) */
  bool sync_pipeline;        /* false; true: the writer commits without fsync and a second
                                thread makes the WAL durable (fdatasync) before any op of the
                                group is answered, while the writer runs the next group
                                (docs/store.md, "Pipelined group commit"); false = each commit
                                fsyncs the WAL itself (synchronous=FULL) on the writer */
  /* Tests only (NULL otherwise): called by the sync stage before each WAL sync, on its thread;
   * it may block (holding every answer back) and a negative return is taken as that sync's
   * error (an injected fsync failure). */
  int (*test_sync_hook)(void *ud);
  void *test_sync_ud;
} tq_options;

void tq_options_default(tq_options *o);

/* Opens (creating or migrating) the queue. Returns 0 and *out, or -errno (the reason is
 * logged). A Python-created SQLite file with the §5.2 columns is migrated in place. */
int tq_open(const tq_options *o, tq_queue **out) __attribute__((warn_unused_result));
/* Stops accepting operations, wakes every waiter (tq_wait returns its current view), finishes
 * the operations already queued to the writer (async callbacks still run), closes the
 * database. Other threads must be out of every other tq_ call. NULL is a no-op. */
void tq_close(tq_queue *q);

/* ---- tasks ---- */

typedef struct tq_task {
  char task_id[33];          /* 32 lower-case hex + NUL */
  char *task_type;
  char *model_name;
  char *payload_json;        /* canonical: Python json.dumps(payload, sort_keys=True) */
  tq_status status;
  char *assigned_worker;     /* NULL when none */
  double created_at, updated_at; /* float seconds (time.time()) */
  char *result_json;         /* canonical JSON object or NULL */
  char *error;               /* NULL when none */
  int priority;              /* 1..10, 10 first */
  int attempt;
  int max_attempts;          /* 0 = unlimited */
  double next_attempt_at;    /* 0 = now */
  double lease_until;        /* valid when has_lease */
  double heartbeat_at;       /* valid when has_heartbeat */
  bool has_lease, has_heartbeat;
  char *idempotency_key;     /* NULL when none */
  /* beyond the Python columns */
  int64_t lease_epoch;       /* fencing token: bumped by every claim */
  bool cancel_requested;
  char *session_id;          /* from payload session_id / session / p2p_session, or NULL */
  char *sticky_worker_id;    /* from payload sticky_worker_id / sticky_worker, or NULL */
  char *traceparent;         /* W3C traceparent of the request that submitted it (util/trace.h:
                                its trace id and span), or NULL; column traceparent */
} tq_task;

void tq_task_free(tq_task *t);
/* A deep copy (NULL on ENOMEM or for NULL). */
tq_task *tq_task_dup(const tq_task *t);
void tq_task_array_free(tq_task **v, size_t n);

enum {
  TQ_JSON_FULL = 0,       /* the 17-key Python "full task dict" (get / list) */
  TQ_JSON_CLAIM = 1,      /* the 7-key claim reply: task_id, task_type, model_name, payload,
                             created_at, status, assigned_worker */
  TQ_JSON_EXTRA = 1u << 4 /* or-ed in: adds lease_epoch and cancel_requested, and traceparent
                             when the task has one (Python peers ignore these keys) */
};
/* A new JSON object for the task (payload / result parsed back to JSON); NULL on ENOMEM. */
json_t *tq_task_to_json(const tq_task *t, unsigned flags);
/* The same task written straight into w, without a tree: exactly the bytes
 * jwrite_json(w, tq_task_to_json(t, flags)) appends with w's flags (issue 11 §2: the claim and
 * wait replies). 0; -EINVAL when the tree path would not give a whole object (a stored string
 * that is not UTF-8, a timestamp that is not finite: take that path then); -ENOMEM / -E2BIG
 * (the writer's sticky error). On failure w holds a partial object: truncate it. */
struct jwrite;
int tq_task_write_json(struct jwrite *w, const tq_task *t, unsigned flags) __attribute__((warn_unused_result));

/* ---- submit ---- */

typedef struct tq_submit_req {
  const char *task_type;       /* required, 1..256 bytes UTF-8 */
  const char *model_name;      /* NULL → "" */
  json_t *payload;             /* must be an object (callers wrap non-objects as {"payload":x}) */
  const char *task_id;         /* NULL → random 32 hex; else must be 32 lower-case hex */
  const char *idempotency_key; /* NULL → payload["idempotency_key"] if a string */
  /* Each below: has_* true → this value, which must be in range (else -EINVAL); has_* false →
   * taken from the payload with the Python clamps (§5.4), else the default. */
  bool has_priority;     int priority;        /* 1..10 (payload: clamped, non-int → 5) */
  bool has_max_attempts; int max_attempts;    /* 0 = unlimited or 1..1000 (payload: clamped) */
  bool has_next_attempt_at; double next_attempt_at; /* >= 0 (payload: floored at 0) */
  const char *traceparent;     /* the submitting request's trace (W3C traceparent), NULL = the
                                  calling thread's current request trace (util/trace.h), if any;
                                  at most TQ_MAX_TRACEPARENT_BYTES printable UTF-8 (else -EINVAL) */
} tq_submit_req;

#define TQ_MAX_TRACEPARENT_BYTES 256

/* Submits durably. *task_id_out (33 bytes) gets the id; *replayed (may be NULL) is true when an
 * identical submit with the same idempotency key / task_id already existed. */
int tq_submit(tq_queue *q, const tq_submit_req *req, char task_id_out[33], bool *replayed)
    __attribute__((warn_unused_result));

/* Asynchronous submit: validation errors are returned at once (cb not called); on 0 the
 * callback runs exactly once, on the writer thread, after the commit is durable (or failed).
 * The callback must be quick and must not call back into the queue. req is copied. */
typedef void (*tq_submit_cb)(int rc, const char *task_id, bool replayed, void *ud);
int tq_submit_async(tq_queue *q, const tq_submit_req *req, tq_submit_cb cb, void *ud)
    __attribute__((warn_unused_result));

/* ---- claim ---- */

typedef struct tq_claim_opts {
  const char *worker_id;          /* required, non-empty */
  const char *const *task_types;  /* exact-match filter; NULL / 0 = any type */
  size_t n_task_types;
  const char *session_id;         /* when set: tasks whose session is NULL or equal */
  int max_priority;               /* 0 = no cap; else only priority <= cap */
  double lease_seconds;           /* 0 = queue default; clamped 1..86400 */
  size_t max_tasks;               /* claim_many: clamped 1..128 (0 → 1) */
  bool same_task_type;            /* claim_many: the first row fixes the type of the batch */
  size_t max_bytes;               /* claim_many: 0 = no cap; else the batch's payload text stays
                                     under it (at least one task), so a reply fits its frame */
} tq_claim_opts;

/* Eligible: queued, next_attempt_at <= now, attempts left, sticky worker NULL or = worker_id,
 * session rule above. Each claim first recovers expired leases (limit 1000). A claim sets
 * running, assigned_worker, attempt+1, lease_epoch+1, heartbeat_at=now, lease_until.
 * *out is NULL when nothing is claimable (return 0). */
int tq_claim_next(tq_queue *q, const tq_claim_opts *o, tq_task **out) __attribute__((warn_unused_result));
int tq_claim_many(tq_queue *q, const tq_claim_opts *o, tq_task ***out, size_t *n_out)
    __attribute__((warn_unused_result));
/* Claims one given task under the same guards (no priority cap). *out NULL if not claimable. */
int tq_claim(tq_queue *q, const char *task_id, const tq_claim_opts *o, tq_task **out)
    __attribute__((warn_unused_result));

/* ---- the running task's owner ---- */

/* Fencing token. lease_epoch 0 = "not given" (compat with Python workers, which only know
 * their worker id): the owner still has to match and the task still has to be running. */
typedef struct tq_fence {
  const char *worker_id; /* required */
  int64_t lease_epoch;
} tq_fence;

typedef struct tq_heartbeat_reply {
  double lease_until;
  bool cancel_requested;
} tq_heartbeat_reply;

/* Renews the lease (lease_seconds 0 = default). -ESTALE if fencing fails. */
int tq_heartbeat(tq_queue *q, const char *task_id, const tq_fence *f, double lease_seconds,
                 tq_heartbeat_reply *out) __attribute__((warn_unused_result));

/* Ends a run: status TQ_COMPLETED, TQ_FAILED or TQ_CANCELLED. result (object, or NULL; a
 * non-object becomes {"result": x}) is merged into the stored result (incoming keys win; old
 * "logs"/"progress" kept when absent). f NULL = unfenced (local admin only): allowed on
 * queued/running tasks, never on a terminal one. -ESTALE if fencing fails or already terminal
 * — except the same complete repeated (same worker, same non-zero lease_epoch, the task ended
 * with this status by that run): 0 and nothing changes, so a worker that got no answer may
 * send it again. */
int tq_complete(tq_queue *q, const char *task_id, const tq_fence *f, tq_status status,
                json_t *result, const char *error) __attribute__((warn_unused_result));

/* A failed run that may be retried: → queued with next_attempt_at = now + delay_s, or → failed
 * with error "attempts exhausted: <error>" when no attempt is left. *final_status (may be NULL). */
int tq_retry(tq_queue *q, const char *task_id, const tq_fence *f, double delay_s, const char *error,
             tq_status *final_status) __attribute__((warn_unused_result));

/* Gives the task back without failing it: → queued, the attempt is refunded, progress
 * release_count / last_release_reason / last_release_ts recorded in the result. */
int tq_release(tq_queue *q, const char *task_id, const tq_fence *f, const char *reason)
    __attribute__((warn_unused_result));

/* Reports progress on a running task without touching its state (the Python update() wrote
 * status and error unguarded, §12.9): result_patch (object or NULL) is merged into the stored
 * result one level deep, and log_line (or NULL) is appended to result.logs as
 * {"ts","stream","message"} (stream NULL → "stdout"), keeping the last 200 lines; heartbeat_at
 * is set, the lease is not renewed (use tq_heartbeat). Fenced like heartbeat (-ESTALE). Durable
 * on return. */
int tq_progress(tq_queue *q, const char *task_id, const tq_fence *f, json_t *result_patch,
                const char *log_line, const char *stream) __attribute__((warn_unused_result));

/* ---- anyone ---- */

typedef enum {
  TQ_CANCEL_NONE = 0,      /* already terminal (or no such task: rc -ENOENT) */
  TQ_CANCEL_DONE = 1,      /* was queued, now cancelled */
  TQ_CANCEL_REQUESTED = 2  /* running: cancel_requested set, the worker sees it at heartbeat */
} tq_cancel_outcome;

int tq_cancel(tq_queue *q, const char *task_id, const char *reason, tq_cancel_outcome *out)
    __attribute__((warn_unused_result));

/* Removes a task in any state. *deleted false when it did not exist. */
int tq_delete(tq_queue *q, const char *task_id, bool *deleted) __attribute__((warn_unused_result));

/* -ENOENT when absent. */
int tq_get(tq_queue *q, const char *task_id, tq_task **out) __attribute__((warn_unused_result));

/* Blocks until the task is terminal, the timeout passes (clamped to 0..wait_max_seconds), the
 * queue closes, or cancelled(cancel_ud) turns true (checked every 200 ms when given; the task
 * is read again only when a transition wakes it, every wait_recheck_ms for other processes'
 * commits, and at the end). *out: the task as it is then (may still be queued/running);
 * -ENOENT if it does not exist. Transitions made through this tq_queue wake it at once. */
int tq_wait(tq_queue *q, const char *task_id, double timeout_s, bool (*cancelled)(void *),
            void *cancel_ud, tq_task **out) __attribute__((warn_unused_result));

/* Waiting for work (a claim that waits instead of polling). Every change through this tq_queue
 * that may make a task claimable — a submit (tq_submit, tq_submit_async; not a replayed one),
 * a release, a retry, recovered leases — bumps a generation counter and wakes waiters: a
 * submit wakes the longest-waiting one whose task types match the new task's type (an
 * empty type list matches any), every other change wakes all; a delayed retry made through
 * this handle wakes one waiter when it falls due (the 16 earliest are tracked). Not seen:
 * another process's commits, a submit's own delay — a waiter's timeout covers those.
 *
 * The pattern (no change can slip in between):
 *     uint64_t gen = tq_work_gen(q);
 *     tq_claim_next(q, &o, &t);          // nothing
 *     tq_wait_work(q, gen, &o, timeout_s, cancelled, ud, &targeted);   // then claim again
 * tq_wait_work returns 0 when woken or when the generation is no longer `seen` (at once),
 * -ETIMEDOUT, -ECANCELED (cancelled(ud) turned true; checked every 200 ms), -ESHUTDOWN
 * (closing), -EBUSY (max_waiters waiters of either kind). *targeted (may be NULL): it was the
 * one waiter a submit chose; when its claim then finds nothing (another claimer was first, or
 * a filter other than the type refused it) it should call tq_work_pass so that the others look.
 * timeout_s is clamped to 0..wait_max_seconds. o->task_types are borrowed for the wait. */
uint64_t tq_work_gen(tq_queue *q);
int tq_wait_work(tq_queue *q, uint64_t seen, const tq_claim_opts *o, double timeout_s,
                 bool (*cancelled)(void *), void *cancel_ud, bool *targeted)
    __attribute__((warn_unused_result));
/* Wakes every work waiter. */
void tq_work_pass(tq_queue *q);
/* An event-loop listener: fn(ud, task_type or NULL) runs after each such change, on the thread
 * that made it (the caller's or the queue's writer thread), and must not block (uv_async_send).
 * At most 8; -ENOSPC beyond. Remove before freeing ud. */
int tq_work_watch(tq_queue *q, void (*fn)(void *ud, const char *task_type), void *ud)
    __attribute__((warn_unused_result));
void tq_work_unwatch(tq_queue *q, void (*fn)(void *ud, const char *task_type), void *ud);
/* Asynchronous wait (no blocked thread): fn(ud, row) is called once when task_id reaches a
 * terminal state through this tq_queue (on the thread that committed it, usually the writer),
 * or when the queue closes. row: the task as the committed transition left it, when the queue
 * has it at hand (a complete / fail through tq_complete*), else NULL (then read the task);
 * borrowed for the call (tq_task_dup to keep it). fn runs under the queue's waiter lock: it
 * must be quick (e.g. a copy and uv_async_send) and must not call into the queue. Changes made by another process are not
 * seen: re-read the task now and then (what tq_wait does every wait_recheck_ms). At most
 * max_waiters watches at once (-EBUSY beyond); -ENOENT for a malformed task id, -ESHUTDOWN
 * when closing, -ENOMEM. Register before the first read of the task, so no transition slips
 * between. */
typedef struct tq_watch tq_watch;
int tq_watch_add(tq_queue *q, const char *task_id, void (*fn)(void *ud, const tq_task *row), void *ud,
                 tq_watch **out)
    __attribute__((warn_unused_result));
/* The same, and *live: whether the task is known here to be queued or running — submitted
 * through this handle since it opened and not ended through it (at most 65,536 remembered).
 * Then a first read can be skipped: its end fires the watch. Another process's commits are not
 * seen (a task it ended stays "live" here): re-read now and then as above. */
int tq_watch_add_live(tq_queue *q, const char *task_id, void (*fn)(void *ud, const tq_task *row), void *ud,
                      tq_watch **out, bool *live) __attribute__((warn_unused_result));
/* Removes and frees a watch (fired or not); when it returns fn is not running and will not
 * run. Any thread; every watch must be removed before tq_close returns. */
void tq_watch_remove(tq_queue *q, tq_watch *w);

/* ---- asynchronous ops: no thread blocks (issue 11 §2) ----
 *
 * The same ops as tq_claim_next / tq_heartbeat / tq_complete, for a caller that must not block
 * (an event loop): they validate at once (an error is returned and the callback is not called;
 * on 0 it is called exactly once), copy what they borrow, and run in the writer's next group
 * commit. The callback runs on the queue's writer thread after the commit is durable (or
 * failed) — or, for a waiting claim answered without a task by tq_claim_cancel /
 * tq_claims_expire / tq_close, on that caller's thread. It must be quick and must not call
 * back into the queue except tq_*_async. */
typedef void (*tq_done_cb)(int rc, void *ud);
typedef void (*tq_heartbeat_cb)(int rc, const tq_heartbeat_reply *hb, void *ud);
/* t: the claimed task (the callback owns it) or NULL; waited: the claim was parked (waited
 * for work) at least once before this answer. */
typedef void (*tq_claim_cb)(int rc, tq_task *t, bool waited, void *ud);

int tq_complete_async(tq_queue *q, const char *task_id, const tq_fence *f, tq_status status, json_t *result,
                      const char *error, tq_done_cb cb, void *ud) __attribute__((warn_unused_result));
int tq_heartbeat_async(tq_queue *q, const char *task_id, const tq_fence *f, double lease_seconds,
                       tq_heartbeat_cb cb, void *ud) __attribute__((warn_unused_result));
/* A claim (tq_claim_next's rules) that, when wait_s > 0 and nothing is claimable, waits without
 * a thread: it is parked in the queue and run again in the writer's next group when a change
 * through this handle may have made a task claimable (a submit of a matching type wakes the
 * oldest such claim, anything else all of them) — the claim and the submit that fed it cost no
 * thread hop. The wait ends (callback with no task) at tq_claims_expire after wait_s (clamped
 * to wait_max_seconds), at tq_claim_cancel(*id_out), or at tq_close. Parked claims count
 * against max_waiters (-EBUSY beyond). *id_out (may be NULL; 0 for a claim that does not wait)
 * names the claim for tq_claim_cancel. Another process's submits are seen at the next wake. */
int tq_claim_next_async(tq_queue *q, const tq_claim_opts *o, double wait_s, tq_claim_cb cb, void *ud,
                        uint64_t *id_out) __attribute__((warn_unused_result));
/* Ends a waiting claim: parked → its callback runs now, on this thread, with no task (true);
 * running in the writer or already answered → nothing (false; the writer answers as usual).
 * Any thread. An unknown id is fine (false). */
bool tq_claim_cancel(tq_queue *q, uint64_t id);
/* Answers (no task, on this thread) every parked claim whose wait has ended, and re-runs them
 * all when a delayed retry made through this handle has fallen due. Returns the milliseconds
 * until the next deadline or due time (-1: nothing waits). The queue calls it itself from a
 * thread that sleeps until the earliest deadline (started with the first waiting claim). */
int64_t tq_claims_expire(tq_queue *q);
/* Waiting async claims (parked or running again) now; of them, parked (waiting for a change). */
size_t tq_claims_waiting(tq_queue *q);
size_t tq_claims_parked(tq_queue *q);

typedef struct tq_list_opts {
  tq_status status;               /* TQ_STATUS_ANY for all */
  const char *const *task_types;  /* exact match, NULL / 0 = all */
  size_t n_task_types;
  size_t limit;                   /* clamped 1..1000 (0 → 100) */
  size_t max_bytes;               /* 0 = no cap; else stop before the listed tasks' payload +
                                     result text would pass it (at least one task is listed) */
  bool *truncated;                /* out, may be NULL: true when max_bytes cut the list */
} tq_list_opts;

/* Ordered by created_at ASC, task_id ASC. */
int tq_list(tq_queue *q, const tq_list_opts *o, tq_task ***out, size_t *n_out)
    __attribute__((warn_unused_result));

typedef struct tq_counts {
  uint64_t by_status[TQ_STATUS_COUNT];
  uint64_t cancel_requested;
  uint64_t expired_leases; /* running with lease_until <= now */
} tq_counts;
/* Also sets the gauge peermcp_queue_tasks{status} (util/metrics.h). */
int tq_count(tq_queue *q, tq_counts *out) __attribute__((warn_unused_result));

/* {"queued":n,"running":n,"completed":n,"failed":n,"cancelled":n,"total":n,
 *  "queued_by_type":{type:n},"running_by_type":{type:n}} — a new reference in *out. */
int tq_stats_json(tq_queue *q, json_t **out) __attribute__((warn_unused_result));

/* running tasks whose lease ended → queued (or failed "claim lease expired after maximum
 * attempts" when none is left). now <= 0 = the clock. limit clamped 1..10000. */
int tq_recover_expired(tq_queue *q, double now, size_t limit, size_t *n_out)
    __attribute__((warn_unused_result));
/* Deletes terminal tasks with updated_at < now - older_than_s (oldest first, limit 1..10000). */
int tq_prune_terminal(tq_queue *q, double older_than_s, size_t limit, size_t *n_out)
    __attribute__((warn_unused_result));
/* What the owner calls periodically (e.g. every 30 s, off the loop): recover + prune by
 * prune_after_seconds. */
int tq_maintain(tq_queue *q) __attribute__((warn_unused_result));

/* Counters since open, for stats and benchmarks. */
typedef struct tq_io_stats {
  uint64_t ops;         /* state-changing operations executed */
  uint64_t commits;     /* write transactions committed (≈ fsyncs of the WAL) */
  uint64_t max_group;   /* largest group */
  uint64_t wal_prefill_bytes; /* zeros written ahead of the WAL's end (tq_options.wal_prefill) */
  uint64_t syncs;       /* WAL syncs (fdatasync) made by the sync stage (sync_pipeline) */
  uint64_t read_waits;  /* reads that waited for the sync of a commit they saw (sync_pipeline) */
} tq_io_stats;
void tq_io_stats_get(tq_queue *q, tq_io_stats *out);

/* Reply string for an error code: "idempotency key or task_id already identifies different
 * work", "payload_too_large", "task_not_found", "lease_lost", "disk_full", … (static). */
const char *tq_strerror(int rc);

/* Health (issue 9 item 10: a store that breaks while serving is reported, not hidden). Every
 * operation that reaches storage records its outcome: a storage error (-EBADMSG, -ENOTSUP,
 * -EIO, -ENOSPC, -EROFS, -EACCES) makes the queue `down` until an operation succeeds again;
 * corruption, and what tq_health_probe finds (the file removed, replaced by another, its header
 * overwritten or truncated), makes it `broken` for good (until the node is restarted on a
 * repaired file). reason: one line naming the file and what to do ("" while nothing failed).
 * Thread-safe. */
typedef struct tq_health {
  int last_err;          /* the last storage error (0 = none since open) */
  double last_err_at;    /* when (Unix seconds) */
  unsigned long errors;  /* how many operations failed on storage */
  bool down, broken;
  char reason[320];
} tq_health;
void tq_health_get(tq_queue *q, tq_health *out);
/* Looks at the file without SQLite (lstat and its first 16 bytes): removed, replaced, header
 * gone. Blocking but small (two syscalls and a 16-byte read); the node calls it every 5 s. */
void tq_health_probe(tq_queue *q);
const char *tq_path(const tq_queue *q);

/* `peermcp queue check`: opens the database at path read-only (no migration, no recovery, a
 * symlink refused; safe while a node serves it) and runs SQLite's integrity_check and the
 * queue's own invariants (known states, leases, attempts, priorities, JSON columns, schema
 * version). *report (new reference) is {"ok", "path", "schema_version", "tasks",
 * "integrity": "ok" | [messages…], "invariants": [{"rule", "count", "task_ids": [≤5], "hint"}],
 * "error"?}. Returns 0 (whatever the verdict: read "ok") or a negative errno when the file
 * cannot be read at all (*report then has "ok":false and "error"). Blocking. */
int tq_check_file(const char *path, json_t **report) __attribute__((warn_unused_result));

#endif

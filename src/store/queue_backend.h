/* queue_backend.h — the internal storage interface behind queue.h (not for callers).
 *
 * queue.c validates and normalises every request (canonical payload JSON, clamps, ids), keeps
 * the waiters, and hands a tq_op to a backend. A backend executes state-changing ops
 * asynchronously and durably (calling op->done exactly once, after the commit is durable, from its own
 * threads, in the order the ops were executed) and answers reads synchronously on the caller's thread. The SQLite backend
 * (queue_sqlite.c) is the only one today; a PostgreSQL one (SELECT … FOR UPDATE SKIP LOCKED)
 * would implement the same table of functions. */
#ifndef PEERMCP_STORE_QUEUE_BACKEND_H
#define PEERMCP_STORE_QUEUE_BACKEND_H

#include "store/queue.h"

typedef enum {
  TQOP_SUBMIT, TQOP_CLAIM, TQOP_HEARTBEAT, TQOP_COMPLETE, TQOP_RETRY, TQOP_RELEASE,
  TQOP_CANCEL, TQOP_DELETE, TQOP_RECOVER, TQOP_PRUNE, TQOP_PROGRESS
} tq_op_kind;

typedef struct tq_op tq_op;
struct tq_op {
  tq_op_kind kind;
  double now;               /* wall clock at execution (set by the backend) */
  char task_id[33];         /* the task (submit: the new id, or the explicit one) */
  bool explicit_id;         /* submit: task_id given by the caller */
  /* submit (normalised by queue.c) */
  const char *task_type, *model_name, *payload_json, *idem_key, *session_id, *sticky;
  const char *traceparent; /* NULL = none */
  int priority, max_attempts;
  double next_attempt_at;
  /* claim */
  tq_claim_opts claim;      /* strings borrowed from the caller */
  bool claim_one_id;        /* claim task_id only */
  /* fencing and run end */
  const char *worker_id;
  int64_t lease_epoch;
  bool fenced;
  tq_status status;
  json_t *result;           /* borrowed; object or NULL */
  const char *error;        /* also: release / cancel reason, progress log line */
  const char *stream;       /* progress: log stream name */
  double seconds;           /* lease, delay, prune age */
  size_t limit;
  size_t max_text;          /* max_payload_bytes: ceiling on merged result_json */
  /* outputs */
  int rc;
  bool replayed, deleted;
  tq_task **tasks;
  size_t n_tasks;
  tq_heartbeat_reply hb;
  tq_cancel_outcome cancel;
  tq_status final_status;
  size_t count;
  /* completion */
  void (*done)(tq_op *op);
  void *done_ud;
  tq_op *next;              /* backend's queue link */
  /* Optional (queue.c sets it on submits): called by the backend on its thread right after the
   * op succeeded, inside its transaction; returns ops (linked by next, NULL = none) that the
   * backend runs next in that same transaction and answers (done) after its commit with the
   * others — the parked claim a new task feeds takes it in the submit's commit. */
  tq_op *(*chain)(tq_op *op);
  void *chain_ud;
  bool chained;             /* chain handed over at least one op */
  bool chain_took;          /* one of them answered this op's task_id among its tasks */
  tq_op *chained_by;        /* backend, while a chained op runs: the op that handed it over */
};

typedef struct tq_backend tq_backend;

/* Called by a backend after a commit, for every task that became terminal or was deleted;
 * row: the task as that commit left it when the backend has it at hand (a complete), else NULL
 * (borrowed for the call). */
typedef void (*tq_terminal_fn)(void *ud, const char *task_id, const tq_task *row);

typedef struct tq_backend_ops {
  const char *name;
  int (*open)(const tq_options *o, tq_terminal_fn on_terminal, void *ud, tq_backend **out);
  void (*close)(tq_backend *b); /* runs every queued op first */
  int (*enqueue)(tq_backend *b, tq_op *op); /* 0: op->done will be called; <0: it will not */
  int (*get)(tq_backend *b, const char *task_id, tq_task **out);
  int (*list)(tq_backend *b, const tq_list_opts *o, tq_task ***out, size_t *n);
  int (*count)(tq_backend *b, double now, tq_counts *out);
  int (*stats_json)(tq_backend *b, json_t **out);
  void (*io_stats)(tq_backend *b, tq_io_stats *out);
  /* 0, or the sticky error of a failed durability sync (the backend refuses every write after
   * it, answering the ops not yet answered with it); NULL = never fails this way. */
  int (*sync_error)(tq_backend *b);
} tq_backend_ops;

extern const tq_backend_ops tq_sqlite_backend;

/* Helpers queue.c shares with the backends. */
/* Merges incoming (object or NULL) into the stored result text (NULL = none), Python's rule:
 * incoming keys win, old "logs"/"progress" are kept when incoming lacks them. A new
 * canonical string in *out (NULL when the merge is empty). */
int tq__merge_result(const char *old_json, json_t *incoming, size_t max, char **out);
/* Sets result.progress.<k> = v for each (k, v) pair (NULL-terminated list of json_t* values,
 * stolen). A new canonical string in *out. */
int tq__progress_update(const char *old_json, size_t max, char **out, ...);
/* Progress update (fixed Python update(), §12.9): merges patch (object or NULL) into the
 * stored result one level deep and appends {"ts","stream","message"} to result.logs when
 * message is given, keeping the last max_logs. A new canonical string in *out. */
int tq__progress_merge(const char *old_json, json_t *patch, const char *stream, const char *message,
                       double ts, size_t max_logs, size_t max, char **out);
char *tq__strdup(const char *s);

#endif

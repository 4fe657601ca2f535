/* mcp_tasks_queue.c — MCP Tasks over the durable queue, plus the in-process task runner
 * (see mcp_tasks_queue.h). Queue calls block, so each operation is a job on the dispatcher's
 * worker pool whose completion runs on the loop. */
#include "tools/mcp_tasks_queue.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/workpool.h"

#define TASK_TYPE "tool.call"
#define LIST_SCAN_LIMIT 1000
#define LIST_SCAN_BYTES (8u * 1024u * 1024u)
#define RUNNER_SCAN_LIMIT 100
#define MAX_PAGE 100

enum { OP_CREATE = 1, OP_GET, OP_LIST, OP_CANCEL };

typedef struct run_slot run_slot;

struct mcp_tasks_queue {
  mcp_tasks_queue_opts o;
  mcp_tasks_backend backend;
  workpool *pool;      /* the dispatcher's short pool: queue reads and writes */
  workpool *long_pool; /* its long pool: tasks/result waits (up to an hour each) */
  atomic_uint waiters;
  bool stopping;
  /* runner */
  run_slot *slots;
  uv_timer_t scan_timer;
  bool scan_timer_init, scan_inflight, scan_again, recovered;
  unsigned jobs;     /* runner jobs in flight on the pool */
  unsigned closing;  /* handles being closed */
  void (*stop_done)(void *);
  void *stop_ud;
  bool stop_reported;
  mcp_auth run_auth;
  char worker_base[64];
  mcp_tasks_queue_stats st;
};

/* A task as prepared off the loop: the view's strings and JSON live here. */
typedef struct prep {
  char task_id[33];
  mcp_task_status status;
  char *msg;
  double created_at, updated_at;
  int64_t ttl_ms;
  json_t *result, *error;
} prep;

struct mcp_tasks_op {
  mcp_tasks_queue *q;
  int kind;
  atomic_bool detached;
  mcp_tasks_done_fn cb;
  void *ud;
  /* in */
  char owner[MCP_TASKS_MAX_OWNER];
  char task_id[MCP_TASKS_MAX_ID + 1];
  char cursor[MCP_TASKS_MAX_CURSOR + 1];
  bool has_cursor, wait;
  size_t limit;
  json_t *payload;
  /* out */
  int rc;
  prep *v;
  size_t n;
  char next[MCP_TASKS_MAX_CURSOR + 1];
  bool has_next, cancel_running; /* cancel: the task was running (tell the local runner) */
};

/* ---------- task → view (worker thread) ---------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The MCP part of the payload, or NULL when the task was not created through MCP. */
static json_t *mcp_part(json_t *payload) {
  json_t *m = json_object_get(payload, "mcp_task");
  return json_is_object(m) && json_is_string(json_object_get(m, "owner")) ? m : NULL;
}

static bool expired(const tq_task *t, int64_t ttl_ms) {
  return ttl_ms >= 0 && now_s() > t->created_at + (double)ttl_ms / 1000.0;
}

static json_t *rpc_error(int code, const char *msg) { return json_pack("{s:i, s:s}", "code", code, "message", msg); }

/* Fills p from t. The CallToolResult is rebuilt from the workers' result shapes. */
static void prep_fill(prep *p, const tq_task *t, int64_t ttl_ms) {
  memset(p, 0, sizeof *p);
  snprintf(p->task_id, sizeof p->task_id, "%s", t->task_id);
  p->created_at = t->created_at;
  p->updated_at = t->updated_at;
  p->ttl_ms = ttl_ms;
  json_t *r = t->result_json ? json_loads(t->result_json, 0, NULL) : NULL;
  char buf[300];
  switch (t->status) {
  case TQ_QUEUED:
  case TQ_RUNNING:
    p->status = MCP_TASK_WORKING;
    if (t->status == TQ_QUEUED) snprintf(buf, sizeof buf, "queued");
    else snprintf(buf, sizeof buf, "running on worker %.200s", t->assigned_worker ? t->assigned_worker : "?");
    p->msg = strdup(buf);
    break;
  case TQ_COMPLETED: {
    p->status = MCP_TASK_COMPLETED;
    json_t *inner = json_object_get(r, "result");
    json_t *env = json_pack("{s:s, s:O, s:s}", "status", "success", "result",
                            json_is_object(r) && json_object_get(r, "tool") && inner ? inner : (r ? r : json_null()),
                            "request_id", t->task_id);
    p->result = mcp_dispatch_call_result(env);
    json_decref(env);
    break;
  }
  case TQ_FAILED: {
    p->status = MCP_TASK_FAILED;
    json_t *e = json_object_get(r, "error");
    if (json_object_get(r, "tool") && e) { /* the tool ran and reported an error */
      json_t *et = json_object_get(r, "error_type");
      json_t *env = json_pack("{s:s, s:O, s:s, s:O?, s:s}", "status", "error", "error", e, "error_type",
                              json_is_string(et) ? json_string_value(et) : "tool_error", "tool",
                              json_object_get(r, "tool"), "request_id", t->task_id);
      p->result = mcp_dispatch_call_result(env);
      json_decref(env);
    } else {
      p->error = rpc_error(-32603, t->error ? t->error : "task failed");
    }
    p->msg = strdup(t->error ? t->error : "failed");
    break;
  }
  case TQ_CANCELLED:
  default:
    p->status = MCP_TASK_CANCELLED;
    p->msg = strdup(t->error ? t->error : "cancelled");
    p->error = rpc_error(-32603, "the task was cancelled");
    break;
  }
  json_decref(r);
}

static void prep_clear(prep *p) {
  free(p->msg);
  json_decref(p->result);
  json_decref(p->error);
}

/* Loads the MCP task `id` for `owner`. 0 and *out, or -ENOENT (absent, not MCP, another
 * owner's, expired — an expired one is deleted). */
static int load_owned(mcp_tasks_queue *q, const char *owner, const char *id, tq_task **out, int64_t *ttl_out) {
  *out = NULL;
  if (strlen(id) != 32) return -ENOENT;
  tq_task *t = NULL;
  int rc = tq_get(q->o.queue, id, &t);
  if (rc != 0) return rc;
  json_t *payload = json_loads(t->payload_json, 0, NULL);
  json_t *m = mcp_part(payload);
  int res = 0;
  if (!m || strcmp(t->task_type, TASK_TYPE) != 0 || strcmp(json_string_value(json_object_get(m, "owner")), owner) != 0) {
    res = -ENOENT;
  } else {
    json_t *ttl = json_object_get(m, "ttl_ms");
    *ttl_out = json_is_integer(ttl) ? json_integer_value(ttl) : -1;
    if (expired(t, *ttl_out)) {
      bool deleted;
      if (tq_delete(q->o.queue, id, &deleted) == 0 && deleted)
        log_info("mcp tasks: expired task deleted", "{s:s}", "task_id", id);
      res = -ENOENT;
    }
  }
  json_decref(payload);
  if (res != 0) {
    tq_task_free(t);
    return res;
  }
  *out = t;
  return 0;
}

static int prep_one(mcp_tasks_op *op, tq_task *t, int64_t ttl) {
  op->v = calloc(1, sizeof *op->v);
  if (!op->v) return -ENOMEM;
  prep_fill(op->v, t, ttl);
  op->n = 1;
  return 0;
}

static bool op_detached(void *ud) { return atomic_load(&((mcp_tasks_op *)ud)->detached); }

static void work_create(mcp_tasks_op *op) {
  mcp_tasks_queue *q = op->q;
  tq_submit_req req = {.task_type = TASK_TYPE, .payload = op->payload};
  char id[33];
  int rc = tq_submit(q->o.queue, &req, id, NULL);
  if (rc != 0) {
    op->rc = rc;
    return;
  }
  tq_task *t = NULL;
  if ((rc = tq_get(q->o.queue, id, &t)) == 0) {
    json_t *ttl = json_object_get(json_object_get(op->payload, "mcp_task"), "ttl_ms");
    rc = prep_one(op, t, json_is_integer(ttl) ? json_integer_value(ttl) : -1);
  }
  tq_task_free(t);
  op->rc = rc;
}

static void work_get(mcp_tasks_op *op) {
  mcp_tasks_queue *q = op->q;
  tq_task *t = NULL;
  int64_t ttl = -1;
  int rc = load_owned(q, op->owner, op->task_id, &t, &ttl);
  while (rc == 0 && op->wait && !tq_status_terminal(t->status) && !op_detached(op)) {
    tq_task *w = NULL;
    rc = tq_wait(q->o.queue, op->task_id, 3600, op_detached, op, &w);
    if (rc == 0) {
      tq_task_free(t);
      t = w;
    }
  }
  if (rc == 0) rc = prep_one(op, t, ttl);
  tq_task_free(t);
  op->rc = rc;
}

static void work_cancel(mcp_tasks_op *op) {
  mcp_tasks_queue *q = op->q;
  tq_task *t = NULL;
  int64_t ttl = -1;
  int rc = load_owned(q, op->owner, op->task_id, &t, &ttl);
  if (rc == 0 && tq_status_terminal(t->status)) {
    op->rc = prep_one(op, t, ttl) == 0 ? -EALREADY : -ENOMEM;
    tq_task_free(t);
    return;
  }
  if (rc == 0) {
    tq_cancel_outcome oc = TQ_CANCEL_NONE;
    rc = tq_cancel(q->o.queue, op->task_id, "cancelled by the MCP client", &oc);
    if (rc == 0 && oc == TQ_CANCEL_REQUESTED) {
      /* 2025-11-25: the task MUST be cancelled before the reply; the worker's lease is fenced
       * off (its heartbeat and completion answer lease_lost). */
      op->cancel_running = true;
      int crc = tq_complete(q->o.queue, op->task_id, NULL, TQ_CANCELLED, NULL, "cancelled by the MCP client");
      if (crc != 0 && crc != -ESTALE) rc = crc;
    }
    tq_task_free(t);
    t = NULL;
    if (rc == 0) rc = tq_get(q->o.queue, op->task_id, &t);
    if (rc == 0) rc = prep_one(op, t, ttl);
  }
  tq_task_free(t);
  op->rc = rc;
}

/* Cursor: "c<created_at>:<task_id>" of the last task of the previous page. */
static void work_list(mcp_tasks_op *op) {
  mcp_tasks_queue *q = op->q;
  double after_c = -1;
  char after_id[33] = "";
  if (op->has_cursor) {
    char idbuf[40] = "";
    if (sscanf(op->cursor, "c%lf:%32[0-9a-f]", &after_c, idbuf) != 2 || strlen(idbuf) != 32) {
      op->rc = -EINVAL;
      return;
    }
    memcpy(after_id, idbuf, sizeof after_id); /* 32 hex + NUL, checked above */
  }
  const char *types[] = {TASK_TYPE};
  tq_list_opts lo = {.status = TQ_STATUS_ANY, .task_types = types, .n_task_types = 1, .limit = LIST_SCAN_LIMIT,
                     .max_bytes = LIST_SCAN_BYTES};
  tq_task **v = NULL;
  size_t n = 0;
  int rc = tq_list(q->o.queue, &lo, &v, &n);
  if (rc != 0) {
    op->rc = rc;
    return;
  }
  op->v = calloc(op->limit, sizeof *op->v);
  if (!op->v) {
    tq_task_array_free(v, n);
    op->rc = -ENOMEM;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    tq_task *t = v[i];
    if (op->has_cursor) {
      char me[64];
      snprintf(me, sizeof me, "c%.6f", t->created_at);
      double mc = strtod(me + 1, NULL);
      if (mc < after_c || (mc == after_c && strcmp(t->task_id, after_id) <= 0)) continue;
    }
    json_t *payload = json_loads(t->payload_json, 0, NULL);
    json_t *m = mcp_part(payload);
    bool mine = m && strcmp(json_string_value(json_object_get(m, "owner")), op->owner) == 0;
    json_t *ttl = json_object_get(m, "ttl_ms");
    int64_t ttl_ms = json_is_integer(ttl) ? json_integer_value(ttl) : -1;
    json_decref(payload);
    if (!mine || expired(t, ttl_ms)) continue;
    if (op->n == op->limit) {
      op->has_next = true;
      break;
    }
    prep_fill(&op->v[op->n++], t, ttl_ms);
  }
  if (op->has_next) {
    const prep *last = &op->v[op->n - 1];
    snprintf(op->next, sizeof op->next, "c%.6f:%s", last->created_at, last->task_id);
  }
  tq_task_array_free(v, n);
  op->rc = 0;
}

static void op_work(void *arg) {
  mcp_tasks_op *op = arg;
  if (op_detached(op)) {
    op->rc = -ECANCELED;
    return;
  }
  switch (op->kind) {
  case OP_CREATE: work_create(op); break;
  case OP_GET: work_get(op); break;
  case OP_LIST: work_list(op); break;
  case OP_CANCEL: work_cancel(op); break;
  }
}

/* ---------- loop side ---------- */

static void op_free(mcp_tasks_op *op) {
  for (size_t i = 0; i < op->n; i++) prep_clear(&op->v[i]);
  free(op->v);
  json_decref(op->payload);
  free(op);
}

static void runner_kick(mcp_tasks_queue *q);
static void runner_cancel_task(mcp_tasks_queue *q, const char *task_id);

static void op_done(void *arg) {
  mcp_tasks_op *op = arg;
  mcp_tasks_queue *q = op->q;
  if (op->kind == OP_GET && op->wait) atomic_fetch_sub(&q->waiters, 1);
  if (op->kind == OP_CREATE && op->rc == 0) {
    q->st.created++;
    runner_kick(q);
  }
  if (op->kind == OP_CANCEL && op->cancel_running) runner_cancel_task(q, op->task_id);
  if (!atomic_load(&op->detached)) {
    mcp_task_view views[MAX_PAGE];
    size_t n = op->n < MAX_PAGE ? op->n : MAX_PAGE;
    for (size_t i = 0; i < n; i++) {
      const prep *p = &op->v[i];
      views[i] = (mcp_task_view){.task_id = p->task_id, .status = p->status, .status_message = p->msg,
                                 .created_at = p->created_at, .updated_at = p->updated_at, .ttl_ms = p->ttl_ms,
                                 .poll_interval_ms = q->o.poll_interval_ms, .result = p->result, .error = p->error};
    }
    int rc = op->rc;
    if (rc != 0 && rc != -ENOENT && rc != -EINVAL && rc != -EALREADY && rc != -EBUSY && rc != -ESHUTDOWN)
      log_warn("mcp tasks: queue operation failed", "{s:i, s:s}", "op", op->kind, "error", tq_strerror(rc));
    op->cb(op->ud, rc, views, n, op->has_next ? op->next : NULL);
  }
  op_free(op);
}

static int op_start(mcp_tasks_queue *q, mcp_tasks_op *op, mcp_tasks_done_fn cb, void *ud, mcp_tasks_op **out) {
  if (q->stopping) {
    op_free(op);
    return -ESHUTDOWN;
  }
  op->q = q;
  op->cb = cb;
  op->ud = ud;
  bool waits = op->kind == OP_GET && op->wait;
  int rc = workpool_submit(waits ? q->long_pool : q->pool, op_work, op_done, op);
  if (rc != 0) {
    if (waits) atomic_fetch_sub(&q->waiters, 1);
    op_free(op);
    return rc;
  }
  if (out) *out = op;
  return 0;
}

static mcp_tasks_op *op_new(int kind, const char *owner) {
  mcp_tasks_op *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->kind = kind;
  atomic_init(&op->detached, false);
  snprintf(op->owner, sizeof op->owner, "%s", owner ? owner : "");
  return op;
}

static int be_create(void *impl, const mcp_task_create *req, mcp_tasks_done_fn cb, void *ud, mcp_tasks_op **out) {
  mcp_tasks_queue *q = impl;
  if (!req->owner || !req->tool) return -EINVAL;
  int64_t ttl = req->ttl_ms < 0 ? q->o.default_ttl_ms : req->ttl_ms;
  if (ttl > q->o.max_ttl_ms) ttl = q->o.max_ttl_ms;
  if (ttl < 1000) ttl = 1000; /* a task that expires before it can be polled helps nobody */
  mcp_tasks_op *op = op_new(OP_CREATE, req->owner);
  if (!op) return -ENOMEM;
  op->payload = json_pack("{s:s, s:O, s:{s:s, s:I}}", "tool", req->tool, "args", req->args ? req->args : json_null(),
                          "mcp_task", "owner", req->owner, "ttl_ms", (json_int_t)ttl);
  if (!op->payload) {
    op_free(op);
    return -ENOMEM;
  }
  /* the payload must not share JSON with the caller: it is read on a worker thread */
  json_t *copy = json_deep_copy(op->payload);
  json_decref(op->payload);
  op->payload = copy;
  if (!copy) {
    op_free(op);
    return -ENOMEM;
  }
  return op_start(q, op, cb, ud, out);
}

static int be_get(void *impl, const char *owner, const char *task_id, bool wait, mcp_tasks_done_fn cb, void *ud,
                  mcp_tasks_op **out) {
  mcp_tasks_queue *q = impl;
  if (!task_id || strlen(task_id) > MCP_TASKS_MAX_ID) return -EINVAL;
  if (wait && atomic_fetch_add(&q->waiters, 1) >= q->o.max_waiters) {
    atomic_fetch_sub(&q->waiters, 1);
    return -EBUSY;
  }
  mcp_tasks_op *op = op_new(OP_GET, owner);
  if (!op) {
    if (wait) atomic_fetch_sub(&q->waiters, 1);
    return -ENOMEM;
  }
  snprintf(op->task_id, sizeof op->task_id, "%s", task_id);
  op->wait = wait;
  return op_start(q, op, cb, ud, out);
}

static int be_list(void *impl, const char *owner, const char *cursor, size_t limit, mcp_tasks_done_fn cb, void *ud,
                   mcp_tasks_op **out) {
  mcp_tasks_queue *q = impl;
  mcp_tasks_op *op = op_new(OP_LIST, owner);
  if (!op) return -ENOMEM;
  op->limit = limit < 1 ? 1 : limit > MAX_PAGE ? MAX_PAGE : limit;
  if (cursor) {
    if (strlen(cursor) > MCP_TASKS_MAX_CURSOR) {
      op_free(op);
      return -EINVAL;
    }
    op->has_cursor = true;
    snprintf(op->cursor, sizeof op->cursor, "%s", cursor);
  }
  return op_start(q, op, cb, ud, out);
}

static int be_cancel(void *impl, const char *owner, const char *task_id, mcp_tasks_done_fn cb, void *ud,
                     mcp_tasks_op **out) {
  mcp_tasks_queue *q = impl;
  if (!task_id || strlen(task_id) > MCP_TASKS_MAX_ID) return -EINVAL;
  mcp_tasks_op *op = op_new(OP_CANCEL, owner);
  if (!op) return -ENOMEM;
  snprintf(op->task_id, sizeof op->task_id, "%s", task_id);
  return op_start(q, op, cb, ud, out);
}

static void be_detach(void *impl, mcp_tasks_op *op) {
  (void)impl;
  atomic_store(&op->detached, true); /* op_done frees it without calling back */
}

/* ---------- the runner ---------- */

struct run_slot {
  mcp_tasks_queue *q;
  unsigned idx;
  bool busy;
  char worker_id[96];
  char task_id[33];
  int64_t epoch;
  char tool[160];
  json_t *args;
  mcp_call *call;
  uv_timer_t hb;
  bool hb_inflight, cancel_sent, stop_cancel;
};

typedef struct run_job {
  mcp_tasks_queue *q;
  run_slot *slot;
  int kind; /* 1 scan, 2 finish, 3 heartbeat */
  /* scan */
  unsigned want;
  bool recover; /* first scan: give back tasks held by runners of processes that are gone */
  tq_task **claimed;
  size_t n_claimed;
  /* finish */
  tq_status status;
  json_t *result;
  char *error;
  bool retry, release;
  /* heartbeat */
  int rc;
  bool cancel_requested;
} run_job;

static void maybe_stopped(mcp_tasks_queue *q);

static void job_submit(mcp_tasks_queue *q, run_job *j, workpool_work_fn work, workpool_done_fn done) {
  q->jobs++;
  if (workpool_submit(q->pool, work, done, j) != 0) {
    work(j); /* the pool is going away: do it here (rare; shutdown only) */
    done(j);
  }
}

/* A task claimed as "mcp-tasks/<pid>/<k>" by a process of this host that no longer exists
 * (killed with -9) would wait for its lease to expire; release it now (fenced by its epoch). */
static void recover_dead_runners(mcp_tasks_queue *q) {
  const char *types[] = {TASK_TYPE};
  tq_list_opts lo = {.status = TQ_RUNNING, .task_types = types, .n_task_types = 1, .limit = LIST_SCAN_LIMIT,
                     .max_bytes = LIST_SCAN_BYTES};
  tq_task **v = NULL;
  size_t n = 0;
  if (tq_list(q->o.queue, &lo, &v, &n) != 0) return;
  for (size_t i = 0; i < n; i++) {
    long pid = 0;
    const char *w = v[i]->assigned_worker;
    if (!w || sscanf(w, "mcp-tasks/%ld/", &pid) != 1 || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    tq_fence f = {.worker_id = w, .lease_epoch = v[i]->lease_epoch};
    if (tq_release(q->o.queue, v[i]->task_id, &f, "runner process gone") == 0)
      log_info("mcp tasks: released a task held by a runner that is gone", "{s:s, s:s}", "task_id", v[i]->task_id,
               "worker", w);
  }
  tq_task_array_free(v, n);
}

static void scan_work(void *arg) {
  run_job *j = arg;
  mcp_tasks_queue *q = j->q;
  if (j->recover) recover_dead_runners(q);
  const char *types[] = {TASK_TYPE};
  tq_list_opts lo = {.status = TQ_QUEUED, .task_types = types, .n_task_types = 1, .limit = RUNNER_SCAN_LIMIT,
                     .max_bytes = LIST_SCAN_BYTES};
  tq_task **v = NULL;
  size_t n = 0;
  if (tq_list(q->o.queue, &lo, &v, &n) != 0) return;
  j->claimed = calloc(j->want ? j->want : 1, sizeof *j->claimed);
  for (size_t i = 0; j->claimed && i < n && j->n_claimed < j->want; i++) {
    json_t *payload = json_loads(v[i]->payload_json, 0, NULL);
    json_t *m = mcp_part(payload);
    json_t *ttl = json_object_get(m, "ttl_ms");
    bool gone = m && expired(v[i], json_is_integer(ttl) ? json_integer_value(ttl) : -1);
    json_decref(payload);
    if (!m) continue; /* not an MCP task: left to the workers */
    if (gone) {
      bool deleted;
      if (tq_delete(q->o.queue, v[i]->task_id, &deleted) != 0) continue;
      continue;
    }
    char wid[96];
    snprintf(wid, sizeof wid, "%s/%zu", q->worker_base, j->n_claimed);
    tq_claim_opts co = {.worker_id = wid, .lease_seconds = q->o.lease_seconds};
    tq_task *t = NULL;
    if (tq_claim(q->o.queue, v[i]->task_id, &co, &t) == 0 && t) j->claimed[j->n_claimed++] = t;
  }
  tq_task_array_free(v, n);
}

static void slot_start(run_slot *s, tq_task *t);
static void finish_run(run_slot *s, tq_status status, json_t *result, const char *error, bool retry, bool release);

static void scan_done(void *arg) {
  run_job *j = arg;
  mcp_tasks_queue *q = j->q;
  q->jobs--;
  q->scan_inflight = false;
  size_t k = 0;
  for (unsigned i = 0; i < q->o.runner_slots && k < j->n_claimed; i++) {
    run_slot *s = &q->slots[i];
    if (s->busy) continue;
    slot_start(s, j->claimed[k]);
    j->claimed[k++] = NULL;
  }
  for (size_t i = k; i < j->n_claimed; i++) tq_task_free(j->claimed[i]); /* cannot happen: want ≤ free slots */
  free(j->claimed);
  bool again = q->scan_again || j->n_claimed == j->want;
  free(j);
  q->scan_again = false;
  if (again) runner_kick(q);
  maybe_stopped(q);
}

static void runner_kick(mcp_tasks_queue *q) {
  if (!q->slots || q->stopping) return;
  if (q->scan_inflight) {
    q->scan_again = true;
    return;
  }
  unsigned free_slots = 0;
  for (unsigned i = 0; i < q->o.runner_slots; i++) free_slots += !q->slots[i].busy;
  if (!free_slots) return;
  run_job *j = calloc(1, sizeof *j);
  if (!j) return;
  j->q = q;
  j->kind = 1;
  j->want = free_slots;
  j->recover = !q->recovered;
  q->recovered = true;
  q->scan_inflight = true;
  job_submit(q, j, scan_work, scan_done);
}

static void on_scan_timer(uv_timer_t *t) { runner_kick(t->data); }

/* Claims are made under "<base>/<k>"; the slot adopts the id the task was claimed with. */
static void call_done(void *ud, const mcp_call_outcome *out);

static void on_hb_timer(uv_timer_t *t);

static void slot_start(run_slot *s, tq_task *t) {
  mcp_tasks_queue *q = s->q;
  s->busy = true;
  s->hb_inflight = s->cancel_sent = s->stop_cancel = false;
  snprintf(s->task_id, sizeof s->task_id, "%s", t->task_id);
  snprintf(s->worker_id, sizeof s->worker_id, "%s", t->assigned_worker ? t->assigned_worker : "");
  s->epoch = t->lease_epoch;
  json_t *payload = json_loads(t->payload_json, 0, NULL);
  const char *tool = json_string_value(json_object_get(payload, "tool"));
  snprintf(s->tool, sizeof s->tool, "%s", tool ? tool : "");
  json_t *args = json_object_get(payload, "args");
  s->args = json_is_object(args) ? json_incref(args) : json_object();
  json_decref(payload);
  tq_task_free(t);
  if (q->stopping) { /* claimed while stopping: give it back untouched */
    finish_run(s, TQ_QUEUED, NULL, NULL, false, true);
    return;
  }
  q->st.runs_started++;
  log_debug("mcp tasks: running", "{s:s, s:s}", "task_id", s->task_id, "tool", s->tool);
  if (!s->tool[0]) {
    finish_run(s, TQ_FAILED, NULL, "missing_tool_name", false, false);
    return;
  }
  mcp_call_request req = {.tool = s->tool, .args = s->args, .auth = &q->run_auth, .remote = true};
  if (mcp_dispatch_start(q->o.dispatcher, &req, call_done, s, &s->call) != 0) {
    s->call = NULL;
    finish_run(s, TQ_FAILED, NULL, "dispatch_failed", true, false);
    return;
  }
  uint64_t every = (uint64_t)(q->o.lease_seconds * 1000 / 3);
  if (every < 1000) every = 1000;
  uv_timer_start(&s->hb, on_hb_timer, every, every);
}

static void finish_work(void *arg) {
  run_job *j = arg;
  mcp_tasks_queue *q = j->q;
  run_slot *s = j->slot;
  tq_fence f = {.worker_id = s->worker_id, .lease_epoch = s->epoch};
  int rc;
  if (j->release) rc = tq_release(q->o.queue, s->task_id, &f, "server_stopping");
  else if (j->retry) rc = tq_retry(q->o.queue, s->task_id, &f, 1.0, j->error ? j->error : "error", NULL);
  else rc = tq_complete(q->o.queue, s->task_id, &f, j->status, j->result, j->error);
  j->rc = rc;
}

static void finish_done(void *arg) {
  run_job *j = arg;
  mcp_tasks_queue *q = j->q;
  run_slot *s = j->slot;
  q->jobs--;
  if (j->rc == -ESTALE)
    log_debug("mcp tasks: the task changed under the run (cancelled or lease lost)", "{s:s}", "task_id", s->task_id);
  else if (j->rc != 0)
    log_warn("mcp tasks: finishing a run failed", "{s:s, s:s}", "task_id", s->task_id, "error", tq_strerror(j->rc));
  json_decref(j->result);
  free(j->error);
  free(j);
  json_decref(s->args);
  s->args = NULL;
  s->task_id[0] = 0;
  s->busy = false;
  if (q->stopping) maybe_stopped(q);
  else runner_kick(q);
}

static void finish_run(run_slot *s, tq_status status, json_t *result, const char *error, bool retry, bool release) {
  mcp_tasks_queue *q = s->q;
  uv_timer_stop(&s->hb);
  run_job *j = calloc(1, sizeof *j);
  if (!j) { /* the lease will expire and the task run again */
    json_decref(s->args);
    s->args = NULL;
    s->busy = false;
    return;
  }
  j->q = q;
  j->slot = s;
  j->kind = 2;
  j->status = status;
  j->result = result ? json_deep_copy(result) : NULL;
  j->error = error ? strdup(error) : NULL;
  j->retry = retry;
  j->release = release;
  job_submit(q, j, finish_work, finish_done);
}

static void call_done(void *ud, const mcp_call_outcome *out) {
  run_slot *s = ud;
  mcp_tasks_queue *q = s->q;
  s->call = NULL;
  const json_t *env = out->envelope;
  const char *err = json_string_value(json_object_get(env, "error"));
  switch (out->status) {
  case MCP_DISPATCH_OK: {
    json_t *res = json_pack("{s:s, s:O}", "tool", s->tool, "result",
                            json_object_get(env, "result") ? json_object_get(env, "result") : json_null());
    q->st.runs_completed++;
    finish_run(s, TQ_COMPLETED, res, NULL, false, false);
    json_decref(res);
    return;
  }
  case MCP_DISPATCH_CANCELLED:
    if (s->stop_cancel) {
      q->st.runs_released++;
      finish_run(s, TQ_QUEUED, NULL, NULL, false, true);
    } else {
      q->st.runs_cancelled++;
      finish_run(s, TQ_CANCELLED, NULL, "cancelled", false, false);
    }
    return;
  case MCP_DISPATCH_TIMEOUT:
  case MCP_DISPATCH_INTERNAL:
  case MCP_DISPATCH_SHUTTING_DOWN:
  case MCP_DISPATCH_BUSY: /* transient: retried like a timeout */
    q->st.runs_failed++;
    finish_run(s, TQ_FAILED, NULL, err ? err : mcp_dispatch_status_name(out->status), true, false);
    return;
  default: {
    json_t *res = json_pack("{s:s, s:O?, s:s}", "tool", s->tool, "error", json_object_get(env, "error"), "error_type",
                            mcp_dispatch_status_name(out->status));
    q->st.runs_failed++;
    finish_run(s, TQ_FAILED, res, err ? err : mcp_dispatch_status_name(out->status), false, false);
    json_decref(res);
    return;
  }
  }
}

static void hb_work(void *arg) {
  run_job *j = arg;
  run_slot *s = j->slot;
  tq_fence f = {.worker_id = s->worker_id, .lease_epoch = s->epoch};
  tq_heartbeat_reply r = {0};
  j->rc = tq_heartbeat(j->q->o.queue, s->task_id, &f, j->q->o.lease_seconds, &r);
  j->cancel_requested = r.cancel_requested;
}

static void hb_done(void *arg) {
  run_job *j = arg;
  mcp_tasks_queue *q = j->q;
  run_slot *s = j->slot;
  q->jobs--;
  s->hb_inflight = false;
  if (s->call && !s->cancel_sent && (j->rc == -ESTALE || (j->rc == 0 && j->cancel_requested))) {
    s->cancel_sent = true;
    mcp_dispatch_cancel(s->call);
  }
  free(j);
  maybe_stopped(q);
}

static void on_hb_timer(uv_timer_t *t) {
  run_slot *s = t->data;
  if (!s->call || s->hb_inflight) return;
  run_job *j = calloc(1, sizeof *j);
  if (!j) return;
  j->q = s->q;
  j->slot = s;
  j->kind = 3;
  s->hb_inflight = true;
  job_submit(s->q, j, hb_work, hb_done);
}

static void runner_cancel_task(mcp_tasks_queue *q, const char *task_id) {
  for (unsigned i = 0; q->slots && i < q->o.runner_slots; i++) {
    run_slot *s = &q->slots[i];
    if (s->busy && s->call && !s->cancel_sent && strcmp(s->task_id, task_id) == 0) {
      s->cancel_sent = true;
      mcp_dispatch_cancel(s->call);
    }
  }
}

/* ---------- life cycle ---------- */

int mcp_tasks_queue_new(const mcp_tasks_queue_opts *o, mcp_tasks_queue **out) {
  *out = NULL;
  if (!o || !o->loop || !o->dispatcher || !o->queue) return -EINVAL;
  mcp_tasks_queue *q = calloc(1, sizeof *q);
  if (!q) return -ENOMEM;
  q->o = *o;
  if (!q->o.runner_slots) q->o.runner_slots = 4;
  if (!(q->o.lease_seconds > 0)) q->o.lease_seconds = 30;
  if (q->o.default_ttl_ms <= 0) q->o.default_ttl_ms = 3600000;
  if (q->o.max_ttl_ms <= 0) q->o.max_ttl_ms = 604800000;
  if (!q->o.poll_interval_ms) q->o.poll_interval_ms = 1000;
  if (!q->o.scan_interval_ms) q->o.scan_interval_ms = 2000;
  if (!q->o.max_waiters) q->o.max_waiters = 32;
  q->pool = mcp_dispatcher_pool(o->dispatcher);
  q->long_pool = mcp_dispatcher_long_pool(o->dispatcher);
  atomic_init(&q->waiters, 0);
  q->backend = (mcp_tasks_backend){.impl = q, .create = be_create, .get = be_get, .list = be_list,
                                   .cancel = be_cancel, .detach = be_detach};
  /* Runs like the workers do: a remote caller (only MCP_TOOL_REMOTE tools) with the scopes a
   * trusted peer gets by default, never the creator's full local rights. */
  auth_ctx_init(&q->run_auth, AUTH_KIND_PEER);
  q->run_auth.scopes = AUTH_SCOPES(AUTH_CACHE_READ | AUTH_CACHE_WRITE | AUTH_TASK_SUBMIT | AUTH_TOOL_CALL);
  snprintf(q->run_auth.subject, sizeof q->run_auth.subject, "mcp-task-runner");
  snprintf(q->worker_base, sizeof q->worker_base, "mcp-tasks/%ld", (long)getpid());
  if (q->o.runner) {
    q->slots = calloc(q->o.runner_slots, sizeof *q->slots);
    if (!q->slots) {
      free(q);
      return -ENOMEM;
    }
    for (unsigned i = 0; i < q->o.runner_slots; i++) {
      run_slot *s = &q->slots[i];
      s->q = q;
      s->idx = i;
      uv_timer_init(o->loop, &s->hb);
      s->hb.data = s;
    }
    uv_timer_init(o->loop, &q->scan_timer);
    q->scan_timer.data = q;
    q->scan_timer_init = true;
    uv_timer_start(&q->scan_timer, on_scan_timer, 0, q->o.scan_interval_ms);
    log_info("mcp tasks: in-process runner started", "{s:i}", "slots", (int)q->o.runner_slots);
  }
  *out = q;
  return 0;
}

const mcp_tasks_backend *mcp_tasks_queue_backend(mcp_tasks_queue *q) { return &q->backend; }

static void handle_closed(uv_handle_t *h) {
  mcp_tasks_queue *q = h->data; /* every handle points at the queue once closing */
  if (--q->closing == 0 && q->stop_done && !q->stop_reported) {
    q->stop_reported = true;
    q->stop_done(q->stop_ud);
  }
}

static void maybe_stopped(mcp_tasks_queue *q) {
  if (!q->stopping || q->closing || q->stop_reported) return;
  for (unsigned i = 0; q->slots && i < q->o.runner_slots; i++)
    if (q->slots[i].busy) return;
  if (q->jobs) return;
  if (!q->scan_timer_init) {
    q->stop_reported = true;
    if (q->stop_done) q->stop_done(q->stop_ud);
    return;
  }
  q->closing = q->o.runner_slots + 1;
  for (unsigned i = 0; i < q->o.runner_slots; i++) {
    q->slots[i].hb.data = q;
    uv_close((uv_handle_t *)&q->slots[i].hb, handle_closed);
  }
  uv_close((uv_handle_t *)&q->scan_timer, handle_closed);
}

void mcp_tasks_queue_stop(mcp_tasks_queue *q, void (*done)(void *ud), void *ud) {
  if (q->stop_reported) { /* stopped already */
    if (done) done(ud);
    return;
  }
  q->stop_done = done;
  q->stop_ud = ud;
  if (q->stopping) return;
  q->stopping = true;
  if (q->scan_timer_init) uv_timer_stop(&q->scan_timer);
  for (unsigned i = 0; q->slots && i < q->o.runner_slots; i++) {
    run_slot *s = &q->slots[i];
    uv_timer_stop(&s->hb);
    if (s->busy && s->call && !s->cancel_sent) {
      s->stop_cancel = true;
      s->cancel_sent = true;
      mcp_dispatch_cancel(s->call);
    }
  }
  maybe_stopped(q);
}

void mcp_tasks_queue_free(mcp_tasks_queue *q) {
  if (!q) return;
  free(q->slots);
  free(q);
}

void mcp_tasks_queue_stats_get(const mcp_tasks_queue *q, mcp_tasks_queue_stats *out) { *out = q->st; }

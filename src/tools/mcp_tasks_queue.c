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

#include "mcp/session.h"
#include "taskq/local_source.h"
#include "taskq/runner.h"
#include "util/log.h"
#include "util/workpool.h"

#define TASK_TYPE "tool.call"
#define LIST_SCAN_LIMIT 1000
#define LIST_SCAN_BYTES (8u * 1024u * 1024u)
#define RUNNER_SCAN_LIMIT 100
#define MAX_PAGE 100

enum { OP_CREATE = 1, OP_GET, OP_LIST, OP_CANCEL };

struct mcp_tasks_queue {
  mcp_tasks_queue_opts o;
  mcp_tasks_backend backend;
  workpool *pool;      /* the dispatcher's short pool: queue reads and writes */
  workpool *long_pool; /* its long pool: tasks/result waits (up to an hour each) */
  atomic_uint waiters;
  bool stopping;
  /* runner */
  taskq_source *source; /* the local queue, claiming MCP tasks only (claim_mcp_task) */
  taskq_runner *runner;
  atomic_bool recovered; /* the first claim gave back what dead runners held */
  void (*stop_done)(void *);
  void *stop_ud;
  bool stop_reported;
  uint64_t created;
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
      p->error = rpc_error(MCP_RPC_INTERNAL_ERROR, t->error ? t->error : "task failed");
    }
    p->msg = strdup(t->error ? t->error : "failed");
    break;
  }
  case TQ_CANCELLED:
  default:
    p->status = MCP_TASK_CANCELLED;
    p->msg = strdup(t->error ? t->error : "cancelled");
    p->error = rpc_error(MCP_RPC_INTERNAL_ERROR, "the task was cancelled");
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

static void op_done(void *arg) {
  mcp_tasks_op *op = arg;
  mcp_tasks_queue *q = op->q;
  if (op->kind == OP_GET && op->wait) atomic_fetch_sub(&q->waiters, 1);
  if (op->kind == OP_CREATE && op->rc == 0) {
    q->created++;
    taskq_runner_kick(q->runner); /* no-op without a runner */
  }
  if (op->kind == OP_CANCEL && op->cancel_running) taskq_runner_cancel_task(q->runner, op->task_id);
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
  /* one turn per owner on the pools (the owner names the caller: util/workpool.h) */
  int rc = workpool_submit_for(waits ? q->long_pool : q->pool, workpool_key_of(op->owner), op_work, op_done, op);
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

/* ---------- the runner: taskq/runner.h over the local queue, MCP tasks only ---------- */

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

/* The runner's claim (a pool thread): the oldest queued MCP task this worker may take; tasks
 * not created through MCP are left to the workers, expired ones are deleted on the way. */
static int claim_mcp_task(void *ud, tq_queue *queue, const tq_claim_opts *co, tq_task **out) {
  mcp_tasks_queue *q = ud;
  *out = NULL;
  if (!atomic_exchange(&q->recovered, true)) recover_dead_runners(q);
  const char *types[] = {TASK_TYPE};
  tq_list_opts lo = {.status = TQ_QUEUED, .task_types = types, .n_task_types = 1, .limit = RUNNER_SCAN_LIMIT,
                     .max_bytes = LIST_SCAN_BYTES};
  tq_task **v = NULL;
  size_t n = 0;
  int rc = tq_list(queue, &lo, &v, &n);
  if (rc != 0) return rc;
  for (size_t i = 0; i < n && !*out; i++) {
    json_t *payload = json_loads(v[i]->payload_json, 0, NULL);
    json_t *m = mcp_part(payload);
    json_t *ttl = json_object_get(m, "ttl_ms");
    bool gone = m && expired(v[i], json_is_integer(ttl) ? json_integer_value(ttl) : -1);
    json_decref(payload);
    if (!m) continue; /* not an MCP task: left to the workers */
    if (gone) {
      bool deleted;
      if (tq_delete(queue, v[i]->task_id, &deleted) == 0 && deleted)
        log_debug("mcp tasks: expired task deleted", "{s:s}", "task_id", v[i]->task_id);
      continue;
    }
    if (tq_claim(queue, v[i]->task_id, co, out) != 0) *out = NULL; /* lost a race: try the next */
  }
  tq_task_array_free(v, n);
  return 0;
}

/* The in-process workers' claim while this module's runner runs MCP tasks (mcp_tasks_queue.h):
 * the oldest queued task of the claim's types that was not created through MCP. */
int mcp_tasks_queue_claim_others(void *ud, tq_queue *queue, const tq_claim_opts *co, tq_task **out) {
  (void)ud;
  *out = NULL;
  tq_list_opts lo = {.status = TQ_QUEUED, .task_types = co->task_types, .n_task_types = co->n_task_types,
                     .limit = RUNNER_SCAN_LIMIT, .max_bytes = LIST_SCAN_BYTES};
  tq_task **v = NULL;
  size_t n = 0;
  int rc = tq_list(queue, &lo, &v, &n);
  if (rc != 0) return rc;
  for (size_t i = 0; i < n && !*out; i++) {
    if (strcmp(v[i]->task_type, TASK_TYPE) == 0) {
      json_t *payload = json_loads(v[i]->payload_json, 0, NULL);
      bool mcp = mcp_part(payload) != NULL;
      json_decref(payload);
      if (mcp) continue; /* the MCP Tasks runner's */
    }
    if (tq_claim(queue, v[i]->task_id, co, out) != 0) *out = NULL; /* lost a race or not yet due: next */
  }
  tq_task_array_free(v, n);
  return 0;
}

/* ---------- life cycle ---------- */

/* Runs like the workers do: a remote caller (only MCP_TOOL_REMOTE tools) with the scopes a
 * trusted peer gets by default minus worker, never the creator's full local rights. */
static int runner_start(mcp_tasks_queue *q) {
  taskq_local_source_opts lo = {.queue = q->o.queue, .pool = q->pool, .claim_fn = claim_mcp_task, .claim_ud = q};
  int rc = taskq_local_source_new(&lo, &q->source);
  if (rc != 0) return rc;
  auth_ctx run_as;
  auth_ctx_init(&run_as, AUTH_KIND_PEER);
  run_as.scopes = AUTH_SCOPES(AUTH_CACHE_READ | AUTH_CACHE_WRITE | AUTH_TASK_SUBMIT | AUTH_TOOL_CALL);
  memcpy(run_as.subject, "mcp-task-runner", sizeof "mcp-task-runner");
  char base[64];
  snprintf(base, sizeof base, "mcp-tasks/%ld", (long)getpid());
  const char *types[] = {TASK_TYPE};
  taskq_runner_opts ro = {.loop = q->o.loop, .dispatcher = q->o.dispatcher, .sources = &q->source, .n_sources = 1,
                          .slots = q->o.runner_slots, .worker_id = base, .run_as = &run_as, .task_types = types,
                          .n_task_types = 1, .lease_seconds = q->o.lease_seconds,
                          .idle_poll_ms = q->o.scan_interval_ms, .retry_delay_s = 1.0,
                          .stop_reason = "server_stopping"};
  if ((rc = taskq_runner_start(&ro, &q->runner)) != 0) return rc;
  log_debug("mcp tasks: in-process runner started", "{s:i}", "slots", (int)q->o.runner_slots);
  return 0;
}

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
  atomic_init(&q->recovered, false);
  if (q->o.runner) {
    int rc = runner_start(q);
    if (rc != 0) {
      taskq_source_free(q->source);
      free(q);
      return rc;
    }
  }
  *out = q;
  return 0;
}

const mcp_tasks_backend *mcp_tasks_queue_backend(mcp_tasks_queue *q) { return &q->backend; }

static void runner_stopped(void *ud) {
  mcp_tasks_queue *q = ud;
  q->stop_reported = true;
  if (q->stop_done) q->stop_done(q->stop_ud);
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
  if (!q->runner) {
    runner_stopped(q);
    return;
  }
  taskq_runner_stop(q->runner, 0, runner_stopped, q); /* running calls cancelled, tasks released */
}

void mcp_tasks_queue_free(mcp_tasks_queue *q) {
  if (!q) return;
  taskq_runner_free(q->runner);
  taskq_source_free(q->source);
  free(q);
}

void mcp_tasks_queue_stats_get(const mcp_tasks_queue *q, mcp_tasks_queue_stats *out) {
  taskq_runner_stats st = {0};
  if (q->runner) taskq_runner_stats_get(q->runner, &st);
  *out = (mcp_tasks_queue_stats){.created = q->created, .runs_started = st.claimed, .runs_completed = st.completed,
                                 .runs_failed = st.failed, .runs_cancelled = st.cancelled, .runs_released = st.released};
}

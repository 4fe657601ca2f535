/* local_source.c — the task source over the local queue (see local_source.h). Each operation is
 * one job on the pool: the queue call runs there, the callback on the loop.
 * Not done (issue 11 §2 (b)): in-process workers do not use the parked claims of
 * tq_claim_next_async yet (they are kicked by tq_work_watch and claim on the pool). Besides a
 * loop hop for the writer-thread callback and tq_claim_cancel in cancel_waits, the node's
 * in-process workers claim through claim_fn whenever the MCP Tasks runner is on (the default:
 * mcp_tasks_queue_claim_others skips tasks whose payload carries mcp_task), a filter the
 * writer's claim cannot apply — it needs the MCP-task mark as a column or a claim option. */
#include "taskq/local_source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct local_src {
  taskq_local_source_opts o;
} local_src;

enum { J_CLAIM = 1, J_HEARTBEAT, J_FINISH };

typedef struct job {
  local_src *src;
  int kind;
  void *ud;
  union {
    taskq_claim_cb claim;
    taskq_heartbeat_cb heartbeat;
    taskq_finish_cb finish;
  } cb;
  /* in (owned copies: the caller's strings may go away before the job runs) */
  char worker_id[TASKQ_MAX_WORKER_ID + 1];
  char task_id[65];
  int64_t epoch;
  double lease_seconds;
  char **types;
  size_t n_types;
  taskq_finish fin;
  json_t *result;
  char *error, *reason;
  /* out */
  int rc;
  bool cancel_requested;
  taskq_task *task;
} job;

static void job_free(job *j) {
  for (size_t i = 0; i < j->n_types; i++) free(j->types[i]);
  free(j->types);
  json_decref(j->result);
  free(j->error);
  free(j->reason);
  taskq_task_free(j->task);
  free(j);
}

static void job_work(void *arg) {
  job *j = arg;
  tq_queue *q = j->src->o.queue;
  tq_fence f = {.worker_id = j->worker_id, .lease_epoch = j->epoch};
  switch (j->kind) {
  case J_CLAIM: {
    tq_claim_opts co = {.worker_id = j->worker_id, .task_types = (const char *const *)j->types,
                        .n_task_types = j->n_types, .lease_seconds = j->lease_seconds};
    tq_task *t = NULL;
    j->rc = j->src->o.claim_fn ? j->src->o.claim_fn(j->src->o.claim_ud, q, &co, &t) : tq_claim_next(q, &co, &t);
    if (j->rc == 0 && t && !(j->task = taskq_task_from_tq(t))) {
      /* claimed but cannot be handed over: give it back rather than let the lease run out */
      tq_fence tf = {.worker_id = t->assigned_worker, .lease_epoch = t->lease_epoch};
      int rr = tq_release(q, t->task_id, &tf, "runner_out_of_memory");
      (void)rr; /* if that fails too, the lease runs out and the task comes back */
      j->rc = -ENOMEM;
    }
    tq_task_free(t);
    break;
  }
  case J_HEARTBEAT: {
    tq_heartbeat_reply r = {0};
    j->rc = tq_heartbeat(q, j->task_id, &f, j->lease_seconds, &r);
    j->cancel_requested = r.cancel_requested;
    break;
  }
  case J_FINISH:
    switch (j->fin.kind) {
    case TASKQ_FINISH_RELEASE: j->rc = tq_release(q, j->task_id, &f, j->reason); break;
    case TASKQ_FINISH_RETRY:
      j->rc = tq_retry(q, j->task_id, &f, j->fin.delay_s > 0 ? j->fin.delay_s : 0, j->error ? j->error : "failed", NULL);
      break;
    default: j->rc = tq_complete(q, j->task_id, &f, j->fin.status, j->result, j->error); break;
    }
    break;
  }
}

static void job_done(void *arg) {
  job *j = arg;
  switch (j->kind) {
  case J_CLAIM: {
    taskq_task *t = j->task;
    j->task = NULL;
    j->cb.claim(j->ud, j->rc, j->rc == 0 ? t : NULL);
    if (j->rc != 0) taskq_task_free(t);
    break;
  }
  case J_HEARTBEAT: j->cb.heartbeat(j->ud, j->rc, j->cancel_requested); break;
  default: j->cb.finish(j->ud, j->rc); break;
  }
  job_free(j);
}

static int job_start(job *j) {
  int rc = workpool_submit(j->src->o.pool, job_work, job_done, j);
  if (rc != 0) job_free(j);
  return rc;
}

static job *job_new(local_src *s, int kind, void *ud, const taskq_lease *l) {
  job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->src = s;
  j->kind = kind;
  j->ud = ud;
  if (l) {
    size_t tn = l->task_id ? strlen(l->task_id) : 0, wn = l->worker_id ? strlen(l->worker_id) : 0;
    if (!tn || tn >= sizeof j->task_id || !wn || wn >= sizeof j->worker_id) {
      free(j);
      return NULL;
    }
    memcpy(j->task_id, l->task_id, tn + 1);
    memcpy(j->worker_id, l->worker_id, wn + 1);
    j->epoch = l->lease_epoch;
  }
  return j;
}

static int src_claim(void *impl, const taskq_claim_req *req, taskq_claim_cb cb, void *ud) {
  size_t wn = req->worker_id ? strlen(req->worker_id) : 0;
  if (!wn || wn > TASKQ_MAX_WORKER_ID || !cb) return -EINVAL;
  job *j = job_new(impl, J_CLAIM, ud, NULL);
  if (!j) return -ENOMEM;
  memcpy(j->worker_id, req->worker_id, wn + 1);
  j->cb.claim = cb;
  j->lease_seconds = req->lease_seconds > 0 ? req->lease_seconds : 0;
  if (req->n_task_types) {
    if (!(j->types = calloc(req->n_task_types, sizeof *j->types))) {
      job_free(j);
      return -ENOMEM;
    }
    for (size_t i = 0; i < req->n_task_types; i++) {
      if (!(j->types[i] = strdup(req->task_types[i]))) {
        job_free(j);
        return -ENOMEM;
      }
      j->n_types++;
    }
  }
  return job_start(j);
}

static int src_heartbeat(void *impl, const taskq_lease *l, double lease_seconds, taskq_heartbeat_cb cb, void *ud) {
  if (!cb) return -EINVAL;
  job *j = job_new(impl, J_HEARTBEAT, ud, l);
  if (!j) return l && l->task_id && l->worker_id ? -ENOMEM : -EINVAL;
  j->cb.heartbeat = cb;
  j->lease_seconds = lease_seconds > 0 ? lease_seconds : 0;
  return job_start(j);
}

static int src_finish(void *impl, const taskq_lease *l, const taskq_finish *f, taskq_finish_cb cb, void *ud) {
  if (!cb || !f) return -EINVAL;
  job *j = job_new(impl, J_FINISH, ud, l);
  if (!j) return l && l->task_id && l->worker_id ? -ENOMEM : -EINVAL;
  j->cb.finish = cb;
  j->fin = *f;
  /* the result is read on a pool thread: it must not share JSON with the loop */
  if ((f->result && !(j->result = json_deep_copy(f->result))) || (f->error && !(j->error = strdup(f->error))) ||
      !(j->reason = strdup(f->reason ? f->reason : "released"))) {
    job_free(j);
    return -ENOMEM;
  }
  j->fin.result = NULL;
  j->fin.error = NULL;
  j->fin.reason = NULL;
  return job_start(j);
}

static void src_free(void *impl) { free(impl); }

static const taskq_source_vt k_local_vt = {
    .claim = src_claim, .heartbeat = src_heartbeat, .finish = src_finish, .free = src_free};

int taskq_local_source_new(const taskq_local_source_opts *o, taskq_source **out) {
  *out = NULL;
  if (!o || !o->queue || !o->pool) return -EINVAL;
  taskq_source *s = calloc(1, sizeof *s);
  local_src *ls = calloc(1, sizeof *ls);
  if (!s || !ls) {
    free(s);
    free(ls);
    return -ENOMEM;
  }
  ls->o = *o;
  s->vt = &k_local_vt;
  s->impl = ls;
  memcpy(s->name, "local", sizeof "local");
  *out = s;
  return 0;
}

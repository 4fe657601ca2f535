/* runner.c — claim / run / heartbeat / finish, one small state machine per slot (see runner.h). */
#include "taskq/runner.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskq/task_type.h"
#include "util/log.h"
#include "util/trace.h"

#define MAX_TYPES 256

enum { SL_IDLE = 0, SL_CLAIMING, SL_RUNNING, SL_FINISHING, SL_SLEEPING, SL_STOPPED };

/* Why a running call was cancelled; decides how the run ends. */
enum { CX_NONE = 0, CX_LEASE_LOST, CX_CANCEL, CX_STOP };

typedef struct slot slot;

/* A finish on its way to the source, with everything needed to send it again. A slot has two:
 * one may be in flight while the slot claims and runs its next task ("detached"); a finish made
 * while the other is still unanswered keeps the slot waiting for it ("attached"), as every
 * finish did before. So a worker holds at most 2 x slots unanswered finishes, at most one per
 * slot while that slot claims. */
typedef struct finjob {
  taskq_runner *r;
  slot *s;           /* the slot it came from */
  bool busy;         /* holds a finish the source has not taken yet */
  bool attached;     /* the slot waits for its answer before it claims again */
  unsigned pending;  /* 1 while the finish is at the source */
  size_t src;        /* the task's source */
  taskq_task *task;  /* owned */
  taskq_finish fin;  /* points into the copies below */
  json_t *fin_result;
  char *fin_error, *fin_reason;
  unsigned fin_tries;
  uint64_t lease_end_ms; /* loop ms: when the task's lease runs out (no heartbeat renews it now) */
  trace_scope scope;     /* the task's trace */
  uv_timer_t timer;      /* the back-off before a finish is sent again */
} finjob;

struct taskq_runner {
  taskq_runner_opts o;
  taskq_source **sources;
  auth_ctx run_as;
  auth_fernet_key fernet; /* has_fernet: payload encryption on */
  bool has_fernet;
  char **types;
  size_t n_types;
  slot *slots;
  bool stopping, finished;
  bool grace_over; /* stopping and the grace period has passed */
  uv_timer_t grace;
  bool grace_init;
  unsigned closing_handles;
  void (*stop_done)(void *);
  void *stop_ud;
  bool stop_reported;
  taskq_runner_stats st;
  int *src_err; /* per source: the error of its last claim (0: it answered) */
  char stop_reason[64];
};

struct slot {
  taskq_runner *r;
  unsigned idx;
  char worker_id[TASKQ_MAX_WORKER_ID + 1];
  int state;
  size_t next_src; /* round-robin cursor */
  size_t tried;    /* sources tried in this round */
  uint32_t sleep_ms;
  uv_timer_t timer; /* back-off while sleeping, heartbeat while running */
  /* the running task */
  size_t src;
  taskq_task *task;
  char tool[160];
  mcp_call *call;
  uint64_t run_gen; /* bumped per task: a heartbeat answer for an earlier run is ignored */
  uint64_t hb_gen;  /* run_gen of the heartbeat in flight */
  bool hb_inflight;
  int cancel_why;
  bool sleep_after; /* back off after this finish (a release of a task we cannot run) */
  unsigned pending; /* source operations in flight */
  uint64_t started_ms; /* when the running task was claimed (for its log line) */
  /* the finishes being reported, each kept until the source has it (sent again after a
   * transport error while the lease may still be ours) */
  finjob fj[2];
  uint64_t lease_end_ms; /* loop ms: when the lease runs out unless renewed */
  uint64_t claim_sent_ms; /* loop ms: when the claim in flight went out */
  bool kicked; /* new work was announced while the claim was in flight */
  trace_scope scope; /* the running task's trace: its log lines, its call and the source ops
                        made for it carry it (util/trace.h) */
};

static void maybe_all_stopped(taskq_runner *r);
static void on_timer(uv_timer_t *t);
static void slot_claim(slot *s);
static void slot_sleep(slot *s);

static taskq_source *src_of(slot *s) { return s->r->sources[s->src]; }

static taskq_lease lease_of(const slot *s) {
  return (taskq_lease){.task_id = s->task->task_id, .worker_id = s->task->worker_id, .lease_epoch = s->task->lease_epoch};
}

/* What a source's claim error means, for the log (the CLI says more: cli/common.h). */
static const char *claim_error_text(int rc) {
  switch (rc) {
  case -EPERM: return "refused: this worker is not authorized there";
  case -EACCES: return "the peer proved another PeerId than the address names";
  case -EHOSTUNREACH: return "no known address for that PeerId";
  case -ECONNREFUSED: return "connection refused";
  case -ETIMEDOUT: return "timed out";
  default: return strerror(rc < 0 ? -rc : rc);
  }
}

/* One info line per step of a task's life: claimed, then completed | failed | cancelled |
 * retry | released | lease lost. */
static void log_task(const slot *s, const char *what, const char *error) {
  const taskq_task *t = s->task;
  if (!t || log_get_level() > LOG_INFO) return;
  double ms = s->started_ms ? (double)(uv_now(s->r->o.loop) - s->started_ms) : 0;
  if (error)
    log_write(LOG_INFO, what, "{s:s, s:s, s:s, s:s, s:s, s:f, s:s}", "worker", s->worker_id, "task_id", t->task_id,
              "task_type", t->task_type, "tool", s->tool, "source", s->r->sources[s->src]->name, "ms", ms, "error",
              error);
  else
    log_write(LOG_INFO, what, "{s:s, s:s, s:s, s:s, s:s, s:f}", "worker", s->worker_id, "task_id", t->task_id,
              "task_type", t->task_type, "tool", s->tool, "source", s->r->sources[s->src]->name, "ms", ms);
}

/* ---------- slot life ---------- */

static void slot_stop(slot *s) {
  s->state = SL_STOPPED;
  uv_timer_stop(&s->timer);
  maybe_all_stopped(s->r);
}

static bool no_more_claims(const taskq_runner *r) { return r->stopping || (r->o.once && r->finished); }

static void slot_idle(slot *s) {
  s->state = SL_IDLE;
  if (no_more_claims(s->r)) {
    slot_stop(s);
    return;
  }
  slot_claim(s);
}

static void job_clear(finjob *j) {
  taskq_task_free(j->task);
  j->task = NULL;
  json_decref(j->fin_result);
  free(j->fin_error);
  free(j->fin_reason);
  j->fin_result = NULL;
  j->fin_error = j->fin_reason = NULL;
  j->fin_tries = 0;
  memset(&j->fin, 0, sizeof j->fin);
  j->busy = j->attached = false;
}

static void task_done_with(slot *s) {
  taskq_task_free(s->task);
  s->task = NULL;
  s->tool[0] = 0;
  if (s->r->o.once) s->r->finished = true;
}

static void job_send(finjob *j);

/* A failure that says nothing about the task (the source could not be reached or answer):
 * the finish may be sent again. Not: lease lost, refused, a bad answer, the source closing. */
static bool finish_retryable(int rc) {
  return rc != 0 && rc != -ESTALE && rc != -EACCES && rc != -EPROTO && rc != -EINVAL && rc != -ESHUTDOWN &&
         rc != -ECANCELED && rc != -ENOENT;
}

static void job_on_timer(uv_timer_t *t) {
  finjob *j = t->data;
  if (!j->busy || j->pending) return;
  const trace_scope *outer = trace_scope_enter(&j->scope);
  job_send(j); /* the retry of a finish */
  trace_scope_leave(outer);
}

static void finish_cb(void *ud, int rc) {
  finjob *j = ud;
  slot *s = j->s;
  taskq_runner *r = j->r;
  j->pending--;
  uint64_t now = uv_now(r->o.loop);
  const trace_scope *outer = trace_scope_enter(&j->scope); /* lines about the task; not the next claim */
  if (finish_retryable(rc) && j->task && now + 100 < j->lease_end_ms && !(r->stopping && r->grace_over)) {
    /* a worker never drops a result it holds: try again while the lease may still be ours */
    uint32_t d = 100u << (j->fin_tries < 6 ? j->fin_tries : 6);
    j->fin_tries++;
    r->st.finish_retries++;
    log_write(LOG_INFO, "runner: finishing a task failed; trying again", "{s:s, s:s, s:s, s:s, s:i}", "worker",
              s->worker_id, "task_id", j->task->task_id, "source", r->sources[j->src]->name, "error", strerror(-rc),
              "delay_ms", (int)d);
    trace_scope_leave(outer);
    uv_timer_start(&j->timer, job_on_timer, d, 0);
    maybe_all_stopped(r);
    return;
  }
  if (rc == -ESTALE)
    log_write(LOG_DEBUG, "runner: the task changed under the run (cancelled or lease lost)", "{s:s, s:s}", "worker",
              s->worker_id, "task_id", j->task ? j->task->task_id : "");
  else if (rc != 0)
    log_write(LOG_WARNING, "runner: finishing a task failed", "{s:s, s:s, s:s, s:s}", "worker", s->worker_id, "task_id",
              j->task ? j->task->task_id : "", "source", r->sources[j->src]->name, "error", strerror(rc < 0 ? -rc : rc));
  trace_scope_leave(outer);
  bool attached = j->attached;
  job_clear(j);
  if (r->o.once) r->finished = true;
  if (!attached) { /* the slot went on claiming meanwhile */
    maybe_all_stopped(r);
    return;
  }
  if (s->sleep_after) {
    /* a source that hands out what we cannot run would hand it out again at once */
    s->sleep_after = false;
    slot_sleep(s);
    return;
  }
  slot_idle(s);
}

static void job_send(finjob *j) {
  taskq_lease l = {.task_id = j->task->task_id, .worker_id = j->task->worker_id, .lease_epoch = j->task->lease_epoch};
  taskq_source *src = j->r->sources[j->src];
  j->pending++; /* finish_cb counts it down */
  int rc = src->vt->finish(src->impl, &l, &j->fin, finish_cb, j);
  if (rc != 0) finish_cb(j, rc); /* if it cannot be retried, the lease will run out and the task come back */
}

/* Reports the end of the run to the task's source (keeping a copy until it is through). The
 * slot claims again at once — the next claim travels while the finish is at the source, so
 * both can ride in one commit there — unless its previous finish is still unanswered (then it
 * waits for this one, as it does for a release before a back-off, in once mode, and when
 * stopping). */
static void slot_finish(slot *s, const taskq_finish *f) {
  taskq_runner *r = s->r;
  uv_timer_stop(&s->timer);
  finjob *j = !s->fj[0].busy ? &s->fj[0] : &s->fj[1];
  const finjob *other = j == &s->fj[0] ? &s->fj[1] : &s->fj[0];
  assert(!j->busy); /* a slot runs a task only while at most one of its finishes is in flight */
  j->busy = true;
  j->attached = other->busy || s->sleep_after || r->o.once || no_more_claims(r);
  j->src = s->src;
  j->task = s->task;
  s->task = NULL;
  s->tool[0] = 0;
  j->lease_end_ms = s->lease_end_ms;
  j->scope = s->scope;
  j->fin = *f;
  j->fin_result = f->result ? json_incref(f->result) : NULL;
  j->fin_error = f->error ? strdup(f->error) : NULL;
  j->fin_reason = f->reason ? strdup(f->reason) : NULL;
  j->fin.result = j->fin_result;
  j->fin.error = j->fin_error;
  j->fin.reason = j->fin_reason;
  bool attached = j->attached;
  s->state = attached ? SL_FINISHING : SL_IDLE;
  if ((f->error && !j->fin_error) || (f->reason && !j->fin_reason)) {
    j->pending++;
    finish_cb(j, -ENOMEM);
  } else {
    job_send(j); /* first: the finish goes out before the next claim */
  }
  if (!attached) slot_idle(s);
}

static void finish_complete(slot *s, tq_status st, json_t *result, const char *error) {
  log_task(s, st == TQ_COMPLETED ? "task completed" : st == TQ_CANCELLED ? "task cancelled" : "task failed",
           st == TQ_COMPLETED ? NULL : error ? error : "failed");
  taskq_finish f = {.kind = TASKQ_FINISH_COMPLETE, .status = st, .result = result, .error = error};
  slot_finish(s, &f);
}

static void finish_retry(slot *s, const char *error) {
  s->r->st.failed++;
  log_task(s, "task failed; it may run again", error);
  taskq_finish f = {.kind = TASKQ_FINISH_RETRY, .error = error, .delay_s = s->r->o.retry_delay_s};
  slot_finish(s, &f);
}

static void finish_release(slot *s, const char *reason) {
  s->r->st.released++;
  log_task(s, "task released", reason);
  taskq_finish f = {.kind = TASKQ_FINISH_RELEASE, .reason = reason};
  slot_finish(s, &f);
}

static const char *env_error_text(const json_t *env, const char *dflt) {
  const json_t *e = json_object_get(env, "error");
  return json_is_string(e) ? json_string_value(e) : dflt;
}

static void call_done(void *ud, const mcp_call_outcome *out) {
  slot *s = ud;
  taskq_runner *r = s->r;
  s->call = NULL;
  uv_timer_stop(&s->timer);
  int why = s->cancel_why;
  if (why == CX_LEASE_LOST) { /* another worker owns it now: do not touch it */
    r->st.lease_lost++;
    log_task(s, "task abandoned: lease lost", NULL);
    task_done_with(s);
    slot_idle(s);
    return;
  }
  /* a success's result is the handler's value (the request asked for lazy_envelope); the
   * other outcomes come with their envelope */
  const json_t *env = out->status == MCP_DISPATCH_OK ? NULL : mcp_call_outcome_envelope(out);
  switch (out->status) {
  case MCP_DISPATCH_OK: {
    json_t *shaped = json_object();
    if (shaped && (json_object_set_new_nocheck(shaped, "tool", json_string(s->tool)) != 0 ||
                   json_object_set_nocheck(shaped, "result", out->value ? out->value : json_null()) != 0)) {
      json_decref(shaped);
      shaped = NULL; /* out of memory: completed without a result, as json_pack left it */
    }
    r->st.completed++;
    finish_complete(s, TQ_COMPLETED, shaped, NULL);
    json_decref(shaped);
    return;
  }
  case MCP_DISPATCH_CANCELLED:
    if (why == CX_STOP) {
      finish_release(s, r->stop_reason);
    } else {
      r->st.cancelled++;
      finish_complete(s, TQ_CANCELLED, NULL, "cancelled");
    }
    return;
  case MCP_DISPATCH_TIMEOUT:
  case MCP_DISPATCH_INTERNAL:
  case MCP_DISPATCH_SHUTTING_DOWN:
  case MCP_DISPATCH_BUSY: /* transient: retried like a timeout */
    finish_retry(s, env_error_text(env, mcp_dispatch_status_name(out->status)));
    return;
  case MCP_DISPATCH_UNKNOWN_TOOL:
    if (!mcp_registry_find(mcp_dispatcher_registry(r->o.dispatcher), s->tool)) {
      /* not a tool of this node at all: another worker may have it (a tool.call task names its
       * tool in the payload, which no claim filter sees) */
      s->sleep_after = true;
      finish_release(s, "tool_not_found");
      return;
    }
    /* it exists here but this runner may not call it: a definite failure */
    /* fall through */
  default: { /* tool error, bad arguments, unknown tool, forbidden: a definite failure */
    json_t *shaped = json_pack("{s:s, s:O?, s:s}", "tool", s->tool, "error", json_object_get(env, "error"),
                               "error_type", mcp_dispatch_status_name(out->status));
    r->st.failed++;
    finish_complete(s, TQ_FAILED, shaped, env_error_text(env, mcp_dispatch_status_name(out->status)));
    json_decref(shaped);
    return;
  }
  }
}

static void call_cancel(slot *s, int why) {
  if (why > s->cancel_why) s->cancel_why = why; /* stop > cancel > lease lost */
  if (s->call) mcp_dispatch_cancel(s->call);
}

static void heartbeat_cb(void *ud, int rc, bool cancel_requested) {
  slot *s = ud;
  s->pending--;
  s->hb_inflight = false;
  if (s->hb_gen != s->run_gen) { /* the run it was for has ended */
    maybe_all_stopped(s->r);
    return;
  }
  if (rc == 0) s->lease_end_ms = uv_now(s->r->o.loop) + (uint64_t)(s->r->o.lease_seconds * 1000);
  if (s->call && rc == 0 && cancel_requested && s->cancel_why < CX_CANCEL) {
    call_cancel(s, CX_CANCEL);
  } else if (s->call && rc == -ESTALE && s->cancel_why == CX_NONE) {
    log_write(LOG_WARNING, "runner: lease lost; abandoning the run", "{s:s, s:s}", "worker", s->worker_id, "task_id",
              s->task->task_id);
    call_cancel(s, CX_LEASE_LOST);
  }
  maybe_all_stopped(s->r);
}

static uint32_t hb_interval(const taskq_runner *r) {
  uint32_t ms = (uint32_t)(r->o.lease_seconds * 1000 / 3);
  return ms < 1000 ? 1000 : ms;
}

static void on_timer(uv_timer_t *t) {
  slot *s = t->data;
  if (s->state == SL_SLEEPING) {
    slot_idle(s);
  } else if (s->state == SL_CLAIMING && s->r->stopping) {
    /* stopping: a claim waiting for work at the source answers now */
    taskq_source *src = src_of(s);
    if (src->vt->cancel_waits) src->vt->cancel_waits(src->impl);
  } else if (s->state == SL_RUNNING && s->call && !s->hb_inflight) {
    taskq_lease l = lease_of(s);
    s->hb_inflight = true;
    s->hb_gen = s->run_gen;
    s->pending++;
    const trace_scope *outer = trace_scope_enter(&s->scope); /* the heartbeat belongs to the task */
    if (src_of(s)->vt->heartbeat(src_of(s)->impl, &l, s->r->o.lease_seconds, heartbeat_cb, s) != 0) {
      s->pending--;
      s->hb_inflight = false; /* try again at the next tick */
    }
    trace_scope_leave(outer);
  }
}

static bool type_supported(const taskq_runner *r, const char *type) {
  const char *canon = taskq_task_type_canonical(type);
  for (size_t i = 0; i < r->n_types; i++)
    if (strcmp(r->types[i], type) == 0 || strcmp(taskq_task_type_canonical(r->types[i]), canon) == 0) return true;
  return false;
}

static bool is_tool_call(const char *type) { return strcmp(taskq_task_type_canonical(type), "tool.call") == 0; }

static void slot_run(slot *s) {
  taskq_runner *r = s->r;
  taskq_task *t = s->task;
  s->run_gen++;
  s->cancel_why = CX_NONE;
  s->started_ms = uv_now(r->o.loop);
  r->st.claimed++;
  const char *tool = NULL;
  json_t *args = NULL;
  if (is_tool_call(t->task_type)) {
    static const char *const tk[] = {"tool", "tool_name", "name"};
    for (size_t i = 0; i < 3 && !tool; i++) {
      const json_t *v = json_object_get(t->payload, tk[i]);
      if (json_is_string(v) && json_string_length(v)) tool = json_string_value(v);
      /* a NUL would cut the name short (echo\u0000x would run echo): no tool then */
      if (tool && strlen(tool) != json_string_length(v)) {
        r->st.failed++;
        finish_complete(s, TQ_FAILED, NULL, "invalid_tool_name");
        return;
      }
    }
    static const char *const ak[] = {"args", "arguments", "params"};
    for (size_t i = 0; i < 3 && !args; i++) args = json_object_get(t->payload, ak[i]);
  } else {
    tool = t->task_type; /* a command tool named by the task type; the payload is its arguments */
    args = t->payload;
  }
  if (!tool) {
    r->st.failed++;
    finish_complete(s, TQ_FAILED, NULL, "missing_tool_name");
    return;
  }
  snprintf(s->tool, sizeof s->tool, "%s", tool);
  log_task(s, "task claimed", NULL);
  json_t *owned = NULL;
  if (r->has_fernet && json_is_object(args)) { /* §4.5: an encrypted prompt reaches the tool in clear */
    bool failed = false;
    json_t *plain = auth_fernet_payload_prompt(&r->fernet, args, &failed);
    if (failed) {
      r->st.failed++;
      finish_complete(s, TQ_FAILED, NULL, "prompt_decrypt_failed");
      return;
    }
    if (plain) args = owned = plain;
  }
  if (!json_is_object(args)) args = owned = args && !json_is_null(args) ? json_pack("{s:O}", "value", args) : json_object();
  s->state = SL_RUNNING;
  /* lazy_envelope: a success is read from the outcome's value (call_done), no envelope tree */
  mcp_call_request req = {.tool = s->tool, .args = args, .auth = &r->run_as, .remote = true,
                          .timeout_ms = r->o.tool_timeout_ms, .trace = &s->scope.trace, .transport = "task",
                          .lazy_envelope = true};
  int rc = mcp_dispatch_start(r->o.dispatcher, &req, call_done, s, &s->call);
  json_decref(owned);
  if (rc < 0) {
    s->call = NULL;
    finish_retry(s, "dispatch_failed");
    return;
  }
  uv_timer_start(&s->timer, on_timer, hb_interval(r), hb_interval(r));
}

/* A claim came back (rc 0) or failed: counted, and logged at warning when a source starts
 * failing or fails differently, at info when it answers again. */
static void source_answered(taskq_runner *r, size_t src, int rc) {
  if (rc == 0) {
    r->st.claims_answered++;
    if (r->src_err[src])
      log_write(LOG_INFO, "worker: the source answers again", "{s:s, s:s}", "worker_id", r->o.worker_id, "source",
                r->sources[src]->name);
  } else {
    r->st.claim_errors++;
    r->st.last_claim_error = rc;
    if (r->src_err[src] != rc)
      log_write(LOG_WARNING, "worker: cannot claim tasks from the source", "{s:s, s:s, s:s, s:i}", "worker_id",
                r->o.worker_id, "source", r->sources[src]->name, "error", claim_error_text(rc), "errno", -rc);
    else
      log_write(LOG_DEBUG, "worker: claim failed again", "{s:s, s:s, s:i}", "worker_id", r->o.worker_id, "source",
                r->sources[src]->name, "errno", -rc);
  }
  r->src_err[src] = rc;
}

/* A claim handed us a task (inside its trace scope). */
static void claim_took(slot *s, taskq_task *task) {
  taskq_runner *r = s->r;
  if (r->stopping) { /* claimed while stopping: give it back */
    finish_release(s, r->stop_reason);
    return;
  }
  if (!type_supported(r, task->task_type)) {
    /* the source did not filter (a peer that ignores supported_task_types): leave it to a
     * worker that can run it, without burning an attempt, and look again later */
    r->st.claimed++;
    s->sleep_after = true;
    finish_release(s, "unsupported_task_type");
    return;
  }
  s->sleep_ms = 0;
  slot_run(s);
}

static void claim_cb(void *ud, int rc, taskq_task *task) {
  slot *s = ud;
  taskq_runner *r = s->r;
  s->pending--;
  source_answered(r, s->src, rc);
  if (task) {
    s->task = task;
    s->tried = 0;
    s->lease_end_ms = uv_now(r->o.loop) + (uint64_t)(r->o.lease_seconds * 1000);
    /* the trace of the request that submitted the task (a new one for a task without) */
    memset(&s->scope, 0, sizeof s->scope);
    trace_child(trace_valid(&task->trace) ? &task->trace : NULL, &s->scope.trace);
    s->scope.transport = "task";
    const trace_scope *outer = trace_scope_enter(&s->scope);
    claim_took(s, task);
    trace_scope_leave(outer);
    return;
  }
  if (++s->tried < r->o.n_sources && !r->stopping) {
    slot_claim(s);
    return;
  }
  s->tried = 0;
  if (r->o.once) r->finished = true;
  if (rc == 0 && r->o.claim_wait_s > 0 && !r->stopping &&
      uv_now(r->o.loop) - s->claim_sent_ms >= (uint64_t)(r->o.claim_wait_s * 500.0)) {
    /* the source waited for work and none came: wait again at once (no back-off to wait out) */
    s->sleep_ms = 0;
    slot_claim(s);
    return;
  }
  if (rc == 0 && s->kicked && !r->stopping) {
    /* work was announced while this claim ran: it may have missed it */
    s->sleep_ms = 0;
    slot_claim(s);
    return;
  }
  slot_sleep(s);
}

static void slot_claim(slot *s) {
  taskq_runner *r = s->r;
  s->state = SL_CLAIMING;
  s->kicked = false;
  s->src = s->next_src++ % r->o.n_sources;
  taskq_claim_req req = {.worker_id = s->worker_id, .task_types = (const char *const *)r->types,
                         .n_task_types = r->n_types, .lease_seconds = r->o.lease_seconds,
                         .wait_s = r->o.once ? 0 : r->o.claim_wait_s};
  s->claim_sent_ms = uv_now(r->o.loop);
  s->pending++;
  /* a claim works for no request: it must not carry the trace of the task that just ended */
  const trace_scope *outer = trace_scope_enter(NULL);
  int rc = src_of(s)->vt->claim(src_of(s)->impl, &req, claim_cb, s);
  trace_scope_leave(outer);
  if (rc != 0) {
    s->pending--;
    source_answered(r, s->src, rc);
    s->tried = 0;
    slot_sleep(s);
  }
}

static void slot_sleep(slot *s) {
  taskq_runner *r = s->r;
  if (no_more_claims(r)) {
    slot_stop(s);
    return;
  }
  s->state = SL_SLEEPING;
  s->sleep_ms = s->sleep_ms ? s->sleep_ms * 2 : 20;
  if (s->sleep_ms > r->o.idle_poll_ms) s->sleep_ms = r->o.idle_poll_ms;
  uv_timer_start(&s->timer, on_timer, s->sleep_ms, 0);
}

/* ---------- task types ---------- */

json_t *taskq_runner_default_types(const mcp_registry *reg) {
  json_t *t = json_pack("[s, s]", "tool.call", "tool");
  for (size_t i = 0; t && reg && i < mcp_registry_count(reg); i++) {
    const mcp_tool_def *def = mcp_tool_def_of(mcp_registry_at(reg, i));
    if (def->category && strcmp(def->category, "commands") == 0 && (def->flags & MCP_TOOL_REMOTE))
      json_array_append_new(t, json_string(def->name));
  }
  return t;
}

/* The runner's types with every alias expanded (§10.3), as the op table expands a claim's, so a
 * local and a remote source hand out the same tasks. */
static int types_copy(taskq_runner *r, const char *const *v, size_t n) {
  json_t *in = json_array(), *norm = NULL;
  for (size_t i = 0; in && i < n && i < MAX_TYPES; i++)
    if (v[i] && *v[i]) json_array_append_new(in, json_string(v[i]));
  if (in) norm = taskq_task_types_normalize(in, true);
  json_decref(in);
  if (!norm) return -ENOMEM;
  size_t m = json_array_size(norm);
  r->types = calloc(m ? m : 1, sizeof *r->types);
  int rc = r->types ? 0 : -ENOMEM;
  for (size_t i = 0; rc == 0 && i < m; i++) {
    if (!(r->types[r->n_types] = strdup(json_string_value(json_array_get(norm, i))))) rc = -ENOMEM;
    else r->n_types++;
  }
  json_decref(norm);
  return rc;
}

/* ---------- life cycle ---------- */

static void runner_free_parts(taskq_runner *r) {
  for (size_t i = 0; r->types && i < r->n_types; i++) free(r->types[i]);
  free(r->types);
  free(r->sources);
  free(r->src_err);
  free(r->slots);
  free(r);
}

int taskq_runner_start(const taskq_runner_opts *o, taskq_runner **out) {
  *out = NULL;
  if (!o || !o->loop || !o->dispatcher || !o->worker_id || !o->sources || !o->n_sources) return -EINVAL;
  for (size_t i = 0; i < o->n_sources; i++)
    if (!o->sources[i] || !o->sources[i]->vt) return -EINVAL;
  taskq_runner *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  r->o = *o;
  if (o->fernet) {
    r->fernet = *o->fernet;
    r->has_fernet = true;
  }
  r->o.fernet = NULL;
  if (!r->o.slots) r->o.slots = 1;
  if (!(r->o.lease_seconds > 0)) r->o.lease_seconds = 60;
  if (!r->o.idle_poll_ms) r->o.idle_poll_ms = 500;
  if (!(r->o.retry_delay_s > 0)) r->o.retry_delay_s = 0;
  snprintf(r->stop_reason, sizeof r->stop_reason, "%s", o->stop_reason ? o->stop_reason : "worker_stopping");
  if (o->run_as) {
    r->run_as = *o->run_as;
  } else {
    auth_ctx_init(&r->run_as, AUTH_KIND_PEER);
    r->run_as.scopes = AUTH_SCOPES(AUTH_DEFAULT_MASK);
    memcpy(r->run_as.subject, "worker", sizeof "worker");
  }
  r->sources = calloc(o->n_sources, sizeof *r->sources);
  r->src_err = calloc(o->n_sources, sizeof *r->src_err);
  r->slots = calloc(r->o.slots, sizeof *r->slots);
  int rc = r->sources && r->src_err && r->slots ? 0 : -ENOMEM;
  if (rc == 0) {
    memcpy(r->sources, o->sources, o->n_sources * sizeof *r->sources);
    if (o->task_types) {
      rc = types_copy(r, o->task_types, o->n_task_types);
    } else {
      json_t *dt = taskq_runner_default_types(mcp_dispatcher_registry(o->dispatcher));
      const char *v[MAX_TYPES];
      size_t n = 0, i;
      json_t *x;
      json_array_foreach(dt, i, x) if (n < MAX_TYPES) v[n++] = json_string_value(x);
      rc = dt ? types_copy(r, v, n) : -ENOMEM;
      json_decref(dt);
    }
  }
  if (rc != 0) {
    runner_free_parts(r);
    return rc;
  }
  r->o.sources = NULL; /* the copy is r->sources */
  r->o.task_types = NULL;
  for (unsigned i = 0; i < r->o.slots; i++) {
    slot *s = &r->slots[i];
    s->r = r;
    s->idx = i;
    s->next_src = i; /* spread the first claims over the sources */
    snprintf(s->worker_id, sizeof s->worker_id, "%.180s/%u", o->worker_id, i);
    uv_timer_init(o->loop, &s->timer);
    s->timer.data = s;
    for (int k = 0; k < 2; k++) {
      s->fj[k].r = r;
      s->fj[k].s = s;
      uv_timer_init(o->loop, &s->fj[k].timer);
      s->fj[k].timer.data = &s->fj[k];
    }
  }
  for (unsigned i = 0; i < r->o.slots; i++) slot_claim(&r->slots[i]);
  log_write(LOG_DEBUG, "runner started", "{s:s, s:i, s:i}", "worker_id", o->worker_id, "slots", (int)r->o.slots,
            "sources", (int)o->n_sources);
  *out = r;
  return 0;
}

void taskq_runner_kick(taskq_runner *r) {
  if (!r || no_more_claims(r)) return;
  for (unsigned i = 0; i < r->o.slots; i++) {
    slot *s = &r->slots[i];
    if (s->state == SL_CLAIMING) s->kicked = true;
    if (s->state != SL_SLEEPING) continue;
    uv_timer_stop(&s->timer);
    s->sleep_ms = 0;
    slot_idle(s);
  }
}

void taskq_runner_cancel_task(taskq_runner *r, const char *task_id) {
  if (!r || !task_id) return;
  for (unsigned i = 0; i < r->o.slots; i++) {
    slot *s = &r->slots[i];
    if (s->state == SL_RUNNING && s->call && s->task && strcmp(s->task->task_id, task_id) == 0 &&
        s->cancel_why < CX_CANCEL)
      call_cancel(s, CX_CANCEL);
  }
}

static void handle_closed(uv_handle_t *h) {
  taskq_runner *r = h->data;
  assert(r->closing_handles > 0);
  if (--r->closing_handles == 0 && !r->stop_reported) {
    r->stop_reported = true;
    if (r->stop_done) r->stop_done(r->stop_ud);
  }
}

static void maybe_all_stopped(taskq_runner *r) {
  if (!r->stopping || r->closing_handles || r->stop_reported) return;
  for (unsigned i = 0; i < r->o.slots; i++) {
    const slot *s = &r->slots[i];
    if (s->state != SL_STOPPED || s->pending || s->fj[0].busy || s->fj[1].busy) return;
  }
  r->closing_handles = 3 * r->o.slots + (r->grace_init ? 1 : 0);
  for (unsigned i = 0; i < r->o.slots; i++) {
    slot *s = &r->slots[i];
    s->timer.data = r; /* every handle points at the runner once closing */
    uv_close((uv_handle_t *)&s->timer, handle_closed);
    for (int k = 0; k < 2; k++) {
      s->fj[k].timer.data = r;
      uv_close((uv_handle_t *)&s->fj[k].timer, handle_closed);
    }
  }
  if (r->grace_init) {
    uv_timer_stop(&r->grace);
    uv_close((uv_handle_t *)&r->grace, handle_closed);
  }
}

static void on_grace(uv_timer_t *t) {
  taskq_runner *r = t->data;
  r->grace_over = true;
  for (unsigned i = 0; i < r->o.slots; i++) {
    slot *s = &r->slots[i];
    if (s->state == SL_RUNNING && s->call && s->cancel_why < CX_STOP) call_cancel(s, CX_STOP);
    for (int k = 0; k < 2; k++) {
      finjob *j = &s->fj[k];
      if (j->busy && !j->pending) { /* a finish waiting to be sent again: last try */
        uv_timer_stop(&j->timer);
        job_send(j);
      }
    }
  }
}

void taskq_runner_stop(taskq_runner *r, uint32_t grace_ms, void (*done)(void *ud), void *ud) {
  if (r->stop_reported) { /* stopped already */
    if (done) done(ud);
    return;
  }
  r->stop_done = done;
  r->stop_ud = ud;
  if (r->stopping) return;
  r->stopping = true;
  /* The grace timer exists before any slot can report "all stopped", so it is closed with the
   * slots' timers. */
  if (uv_timer_init(r->o.loop, &r->grace) == 0) {
    r->grace_init = true;
    r->grace.data = r;
    uv_timer_start(&r->grace, on_grace, grace_ms, 0);
  }
  for (unsigned i = 0; i < r->o.slots; i++) {
    slot *s = &r->slots[i];
    if (s->state == SL_SLEEPING || s->state == SL_IDLE) slot_stop(s);
    else if (s->state == SL_CLAIMING && r->o.claim_wait_s > 0)
      uv_timer_start(&s->timer, on_timer, 0, 0); /* from the loop: its claim may be waiting */
  }
  maybe_all_stopped(r);
}

void taskq_runner_free(taskq_runner *r) {
  if (!r) return;
  auth_fernet_key_wipe(&r->fernet);
  for (unsigned i = 0; r->slots && i < r->o.slots; i++) {
    taskq_task_free(r->slots[i].task);
    for (int k = 0; k < 2; k++) job_clear(&r->slots[i].fj[k]);
  }
  runner_free_parts(r);
}

void taskq_runner_stats_get(const taskq_runner *r, taskq_runner_stats *out) { *out = r->st; }

bool taskq_runner_finished(const taskq_runner *r) {
  if (!r->o.once || !r->finished) return false;
  for (unsigned i = 0; i < r->o.slots; i++)
    if (r->slots[i].state == SL_RUNNING || r->slots[i].state == SL_FINISHING || r->slots[i].state == SL_CLAIMING ||
        r->slots[i].fj[0].busy || r->slots[i].fj[1].busy)
      return false;
  return true;
}

const char *const *taskq_runner_task_types(const taskq_runner *r, size_t *n) {
  *n = r->n_types;
  return (const char *const *)r->types;
}

/* worker.c — claim / run / heartbeat / complete state machine per slot (see worker.h). */
#include "service/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/workpool.h"

enum { SL_IDLE = 0, SL_CLAIMING, SL_RUNNING, SL_FINISHING, SL_SLEEPING, SL_STOPPED };

typedef struct slot slot;

struct svc_workers {
  svc_workers_opts o;
  slot *slots;
  json_t *types; /* supported task types */
  size_t n_sources;
  bool stopping, finished;
  uv_timer_t grace;
  bool grace_init;
  unsigned closing_handles;
  void (*stop_done)(void *);
  void *stop_ud;
  svc_workers_stats st;
  auth_ctx local_auth; /* ops on the local queue: the operator */
};

struct slot {
  svc_workers *w;
  unsigned idx;
  char worker_id[200];
  int state;
  size_t next_src;   /* round-robin cursor */
  size_t tried;      /* sources tried in this round */
  uint32_t sleep_ms;
  uv_timer_t timer;
  /* the running task */
  size_t src;
  char task_id[64];
  int64_t epoch;
  char tool[160];
  mcp_call *call;
  auth_ctx auth;
  bool hb_inflight, cancel_sent, lease_lost, stop_cancel;
  unsigned pending; /* async ops in flight */
};

/* ---------- ops to a source ---------- */

typedef void (*op_cb)(slot *s, json_t *reply);

typedef struct op_job {
  slot *s;
  op_cb cb;
  json_t *msg;
  json_t *reply;
} op_job;

static void op_local_work(void *arg) {
  op_job *j = arg;
  taskq_call call = {.auth = &j->s->w->local_auth};
  j->reply = taskq_handle(j->s->w->o.local, j->msg, &call);
}

static void maybe_all_stopped(svc_workers *w);

static void op_finish(op_job *j) {
  slot *s = j->s;
  s->pending--;
  json_t *reply = j->reply ? j->reply : json_pack("{s:b, s:s}", "ok", 0, "error", "internal_error");
  j->cb(s, reply);
  json_decref(reply);
  json_decref(j->msg);
  free(j);
  maybe_all_stopped(s->w);
}

static void op_local_done(void *arg) { op_finish(arg); }

static void op_remote_done(void *ud, int err, json_t *result, json_t *error) {
  op_job *j = ud;
  if (err == 0 && json_is_object(result)) {
    j->reply = json_incref(result);
  } else {
    const char *why = err < 0 ? "transport_error" : "rpc_error";
    j->reply = json_pack("{s:b, s:s, s:i, s:O?}", "ok", 0, "error", why, "errno", -err, "detail", error);
  }
  op_finish(j);
}

/* Sends msg (stolen) to source src; cb runs on the loop with the reply. */
static void op_send(slot *s, size_t src, json_t *msg, op_cb cb) {
  svc_workers *w = s->w;
  op_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_decref(msg);
    json_t *r = json_pack("{s:b, s:s}", "ok", 0, "error", "internal_error");
    cb(s, r);
    json_decref(r);
    return;
  }
  j->s = s;
  j->cb = cb;
  j->msg = msg;
  s->pending++;
  int rc;
  bool local = w->o.local && src == 0;
  if (local) {
    rc = workpool_submit(mcp_dispatcher_pool(w->o.dispatcher), op_local_work, op_local_done, j);
  } else {
    size_t ri = src - (w->o.local ? 1 : 0);
    /* wait ops are long; others get the client's default deadline */
    rc = svc_client_rpc(w->o.remotes[ri], msg, 0, op_remote_done, j);
  }
  if (rc < 0) {
    j->reply = json_pack("{s:b, s:s}", "ok", 0, "error", "internal_error");
    op_finish(j);
  }
}

/* ---------- the slot machine ---------- */

static void slot_claim(slot *s);
static void slot_sleep(slot *s);

static void slot_stop(slot *s) {
  s->state = SL_STOPPED;
  uv_timer_stop(&s->timer);
  maybe_all_stopped(s->w);
}

static void on_timer(uv_timer_t *t);

static void slot_idle(slot *s) {
  if (s->w->stopping || (s->w->o.once && s->w->finished)) {
    slot_stop(s);
    return;
  }
  slot_claim(s);
}

static void finish_reply(slot *s, json_t *reply) {
  if (!json_is_true(json_object_get(reply, "ok")))
    log_write(LOG_WARNING, "worker: finishing a task failed", "{s:s, s:s, s:O}", "worker", s->worker_id, "task_id",
              s->task_id, "reply", reply);
  s->task_id[0] = 0;
  if (s->w->o.once) s->w->finished = true;
  slot_idle(s);
}

/* complete / fail / release the running task. */
static void slot_finish(slot *s, const char *op, const char *status, json_t *result, const char *error, bool retry) {
  s->state = SL_FINISHING;
  json_t *m = json_pack("{s:s, s:s, s:s, s:I}", "op", op, "task_id", s->task_id, "worker_id", s->worker_id,
                        "lease_epoch", (json_int_t)s->epoch);
  if (status) json_object_set_new(m, "status", json_string(status));
  if (result) json_object_set(m, "result", result);
  if (error) json_object_set_new(m, "error", json_string(error));
  if (strcmp(op, "fail") == 0) json_object_set_new(m, "retry", json_boolean(retry));
  if (strcmp(op, "release") == 0) json_object_set_new(m, "reason", json_string(error ? error : "worker_stopping"));
  op_send(s, s->src, m, finish_reply);
}

static const char *env_error_text(const json_t *env, const char *dflt) {
  const json_t *e = json_object_get(env, "error");
  if (json_is_string(e)) return json_string_value(e);
  return dflt;
}

static void call_done(void *ud, const mcp_call_outcome *out) {
  slot *s = ud;
  svc_workers *w = s->w;
  s->call = NULL;
  uv_timer_stop(&s->timer);
  if (s->lease_lost) { /* another worker owns it now: do not touch it */
    w->st.lease_lost++;
    s->task_id[0] = 0;
    slot_idle(s);
    return;
  }
  switch (out->status) {
  case MCP_DISPATCH_OK: {
    json_t *res = json_pack("{s:s, s:O}", "tool", s->tool, "result",
                            json_object_get(out->envelope, "result") ? json_object_get(out->envelope, "result")
                                                                     : json_null());
    w->st.completed++;
    slot_finish(s, "complete", "completed", res, NULL, false);
    json_decref(res);
    return;
  }
  case MCP_DISPATCH_CANCELLED:
    if (s->stop_cancel) {
      w->st.released++;
      slot_finish(s, "release", NULL, NULL, "worker_stopping", false);
    } else {
      w->st.cancelled++;
      slot_finish(s, "complete", "cancelled", NULL, "cancelled", false);
    }
    return;
  case MCP_DISPATCH_TIMEOUT:
  case MCP_DISPATCH_INTERNAL:
  case MCP_DISPATCH_SHUTTING_DOWN:
  case MCP_DISPATCH_BUSY: /* transient: retried like a timeout */
    w->st.failed++;
    slot_finish(s, "fail", NULL, NULL, env_error_text(out->envelope, mcp_dispatch_status_name(out->status)), true);
    return;
  default: { /* tool error, bad arguments, unknown tool, forbidden: a definite failure */
    json_t *res = json_pack("{s:s, s:O?, s:s}", "tool", s->tool, "error", json_object_get(out->envelope, "error"),
                            "error_type", mcp_dispatch_status_name(out->status));
    w->st.failed++;
    slot_finish(s, "complete", "failed", res, env_error_text(out->envelope, mcp_dispatch_status_name(out->status)),
                false);
    json_decref(res);
    return;
  }
  }
}

static void hb_reply(slot *s, json_t *reply) {
  s->hb_inflight = false;
  if (!s->call) return;
  if (json_is_true(json_object_get(reply, "ok"))) {
    if (json_is_true(json_object_get(reply, "cancel_requested")) && !s->cancel_sent) {
      s->cancel_sent = true;
      mcp_dispatch_cancel(s->call);
    }
    return;
  }
  const json_t *e = json_object_get(reply, "error");
  if (json_is_string(e) && strcmp(json_string_value(e), "lease_lost") == 0) {
    log_write(LOG_WARNING, "worker: lease lost; abandoning the run", "{s:s, s:s}", "worker", s->worker_id, "task_id",
              s->task_id);
    s->lease_lost = true;
    if (!s->cancel_sent) {
      s->cancel_sent = true;
      mcp_dispatch_cancel(s->call);
    }
  }
}

static uint32_t hb_interval(svc_workers *w) {
  double l = w->o.lease_seconds;
  uint32_t ms = (uint32_t)(l * 1000 / 3);
  return ms < 1000 ? 1000 : ms;
}

static void slot_run(slot *s, json_t *task) {
  svc_workers *w = s->w;
  const char *tid = json_string_value(json_object_get(task, "task_id"));
  const char *type = json_string_value(json_object_get(task, "task_type"));
  json_t *payload = json_object_get(task, "payload");
  snprintf(s->task_id, sizeof s->task_id, "%s", tid ? tid : "");
  s->epoch = json_integer_value(json_object_get(task, "lease_epoch"));
  s->hb_inflight = s->cancel_sent = s->lease_lost = s->stop_cancel = false;
  w->st.claimed++;
  const char *tool = NULL;
  json_t *args = NULL;
  if (type && (strcmp(type, "tool.call") == 0 || strcmp(type, "tool") == 0)) {
    static const char *const tk[] = {"tool", "tool_name", "name"};
    for (size_t i = 0; i < 3 && !tool; i++) {
      const json_t *v = json_object_get(payload, tk[i]);
      if (json_is_string(v) && json_string_length(v)) tool = json_string_value(v);
    }
    static const char *const ak[] = {"args", "arguments", "params"};
    for (size_t i = 0; i < 3 && !args; i++) args = json_object_get(payload, ak[i]);
  } else if (type) {
    tool = type; /* a command tool named by the task type; the payload is its arguments */
    args = payload;
  }
  if (!tool) {
    w->st.failed++;
    slot_finish(s, "complete", "failed", NULL, "missing_tool_name", false);
    return;
  }
  snprintf(s->tool, sizeof s->tool, "%s", tool);
  json_t *owned = NULL;
  if (!json_is_object(args)) args = owned = args && !json_is_null(args) ? json_pack("{s:O}", "value", args) : json_object();
  s->state = SL_RUNNING;
  mcp_call_request req = {0};
  req.tool = s->tool;
  req.args = args;
  req.auth = &s->auth;
  req.remote = true;
  req.timeout_ms = w->o.tool_timeout_ms;
  int rc = mcp_dispatch_start(w->o.dispatcher, &req, call_done, s, &s->call);
  json_decref(owned);
  if (rc < 0) {
    w->st.failed++;
    slot_finish(s, "fail", NULL, NULL, "dispatch_failed", true);
    return;
  }
  uv_timer_start(&s->timer, on_timer, hb_interval(w), hb_interval(w));
}

static void claim_reply(slot *s, json_t *reply) {
  svc_workers *w = s->w;
  json_t *task = json_object_get(reply, "task");
  if (json_is_object(task)) {
    if (w->stopping) { /* claimed while stopping: give it back */
      snprintf(s->task_id, sizeof s->task_id, "%s", json_string_value(json_object_get(task, "task_id")));
      s->epoch = json_integer_value(json_object_get(task, "lease_epoch"));
      w->st.released++;
      slot_finish(s, "release", NULL, NULL, "worker_stopping", false);
      return;
    }
    s->sleep_ms = 0;
    s->tried = 0;
    slot_run(s, task);
    return;
  }
  if (!json_is_true(json_object_get(reply, "ok")))
    log_write(LOG_DEBUG, "worker: claim failed", "{s:s, s:O}", "worker", s->worker_id, "reply", reply);
  if (++s->tried < w->n_sources && !w->stopping) {
    slot_claim(s);
    return;
  }
  s->tried = 0;
  if (w->o.once) w->finished = true;
  slot_sleep(s);
}

static void slot_claim(slot *s) {
  svc_workers *w = s->w;
  s->state = SL_CLAIMING;
  s->src = s->next_src++ % w->n_sources;
  json_t *m = json_pack("{s:s, s:s, s:O, s:f}", "op", "claim", "worker_id", s->worker_id, "supported_task_types",
                        w->types, "lease_seconds", w->o.lease_seconds);
  op_send(s, s->src, m, claim_reply);
}

static void slot_sleep(slot *s) {
  svc_workers *w = s->w;
  if (w->stopping || (w->o.once && w->finished)) {
    slot_stop(s);
    return;
  }
  s->state = SL_SLEEPING;
  s->sleep_ms = s->sleep_ms ? s->sleep_ms * 2 : 20;
  if (s->sleep_ms > w->o.idle_poll_ms) s->sleep_ms = w->o.idle_poll_ms;
  uv_timer_start(&s->timer, on_timer, s->sleep_ms, 0);
}

static void on_timer(uv_timer_t *t) {
  slot *s = t->data;
  if (s->state == SL_SLEEPING) {
    slot_idle(s);
  } else if (s->state == SL_RUNNING && s->call && !s->hb_inflight) {
    s->hb_inflight = true;
    json_t *m = json_pack("{s:s, s:s, s:s, s:I, s:f}", "op", "task.heartbeat", "task_id", s->task_id, "worker_id",
                          s->worker_id, "lease_epoch", (json_int_t)s->epoch, "lease_seconds", s->w->o.lease_seconds);
    op_send(s, s->src, m, hb_reply);
  }
}

/* ---------- life cycle ---------- */

static json_t *supported_types(mcp_dispatcher *d) {
  json_t *t = json_pack("[s, s]", "tool.call", "tool");
  const mcp_registry *reg = mcp_dispatcher_registry(d);
  for (size_t i = 0; reg && i < mcp_registry_count(reg); i++) {
    const mcp_tool_def *def = mcp_tool_def_of(mcp_registry_at(reg, i));
    if (def->category && strcmp(def->category, "commands") == 0 && (def->flags & MCP_TOOL_REMOTE))
      json_array_append_new(t, json_string(def->name));
  }
  return t;
}

int svc_workers_start(const svc_workers_opts *o, svc_workers **out) {
  if (!o->loop || !o->dispatcher || !o->worker_id || (!o->local && !o->n_remotes)) return -EINVAL;
  svc_workers *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  w->o = *o;
  if (!w->o.slots) w->o.slots = 1;
  if (!(w->o.lease_seconds > 0)) w->o.lease_seconds = 60;
  if (!w->o.idle_poll_ms) w->o.idle_poll_ms = 500;
  w->n_sources = (o->local ? 1 : 0) + o->n_remotes;
  w->types = supported_types(o->dispatcher);
  w->slots = calloc(w->o.slots, sizeof *w->slots);
  if (!w->types || !w->slots) {
    json_decref(w->types);
    free(w->slots);
    free(w);
    return -ENOMEM;
  }
  auth_ctx_local(&w->local_auth);
  for (unsigned i = 0; i < w->o.slots; i++) {
    slot *s = &w->slots[i];
    s->w = w;
    s->idx = i;
    s->next_src = i; /* spread the first claims over the sources */
    snprintf(s->worker_id, sizeof s->worker_id, "%s/%u", o->worker_id, i);
    auth_ctx_init(&s->auth, AUTH_KIND_PEER);
    s->auth.scopes = AUTH_SCOPES(AUTH_DEFAULT_MASK);
    snprintf(s->auth.subject, sizeof s->auth.subject, "worker");
    uv_timer_init(o->loop, &s->timer);
    s->timer.data = s;
  }
  for (unsigned i = 0; i < w->o.slots; i++) slot_claim(&w->slots[i]);
  log_write(LOG_INFO, "workers started", "{s:s, s:i, s:i}", "worker_id", o->worker_id, "slots", (int)w->o.slots,
            "sources", (int)w->n_sources);
  *out = w;
  return 0;
}

static void grace_closed(uv_handle_t *h) {
  svc_workers *w = h->data;
  if (--w->closing_handles == 0 && w->stop_done) w->stop_done(w->stop_ud);
}

static void slot_timer_closed(uv_handle_t *h) {
  slot *s = h->data;
  svc_workers *w = s->w;
  if (--w->closing_handles == 0 && w->stop_done) w->stop_done(w->stop_ud);
}

static void maybe_all_stopped(svc_workers *w) {
  if (!w->stopping || w->closing_handles) return;
  for (unsigned i = 0; i < w->o.slots; i++)
    if (w->slots[i].state != SL_STOPPED || w->slots[i].pending) return;
  w->closing_handles = w->o.slots + (w->grace_init ? 1 : 0);
  for (unsigned i = 0; i < w->o.slots; i++) uv_close((uv_handle_t *)&w->slots[i].timer, slot_timer_closed);
  if (w->grace_init) {
    uv_timer_stop(&w->grace);
    uv_close((uv_handle_t *)&w->grace, grace_closed);
  }
}

static void on_grace(uv_timer_t *t) {
  svc_workers *w = t->data;
  for (unsigned i = 0; i < w->o.slots; i++) {
    slot *s = &w->slots[i];
    if (s->state == SL_RUNNING && s->call && !s->cancel_sent) {
      s->stop_cancel = true;
      s->cancel_sent = true;
      mcp_dispatch_cancel(s->call);
    }
  }
}

void svc_workers_stop(svc_workers *w, uint32_t grace_ms, void (*done)(void *ud), void *ud) {
  w->stop_done = done;
  w->stop_ud = ud;
  if (w->stopping) return;
  /* The grace timer exists before any slot can report "all stopped", so it is closed with
   * the slots' timers. */
  if (uv_timer_init(w->o.loop, &w->grace) == 0) {
    w->grace_init = true;
    w->grace.data = w;
    uv_timer_start(&w->grace, on_grace, grace_ms, 0);
  }
  w->stopping = true;
  for (unsigned i = 0; i < w->o.slots; i++) {
    slot *s = &w->slots[i];
    if (s->state == SL_SLEEPING || s->state == SL_IDLE) slot_stop(s);
  }
  maybe_all_stopped(w);
}

void svc_workers_free(svc_workers *w) {
  if (!w) return;
  json_decref(w->types);
  free(w->slots);
  free(w);
}

void svc_workers_stats_get(const svc_workers *w, svc_workers_stats *out) { *out = w->st; }
bool svc_workers_finished(const svc_workers *w) {
  if (!w->o.once || !w->finished) return false;
  for (unsigned i = 0; i < w->o.slots; i++)
    if (w->slots[i].state == SL_RUNNING || w->slots[i].state == SL_FINISHING || w->slots[i].state == SL_CLAIMING)
      return false;
  return true;
}

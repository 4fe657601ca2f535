/* remote_source.c — the task source over a peer's op table (see remote_source.h). */
#include "service/remote_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rop rop;

typedef struct remote_src {
  svc_client *client;
  rop *claims; /* claims in flight (cancel_waits answers them) */
  unsigned n_waiting; /* of those, the ones that asked to wait */
} remote_src;

/* At most this many claims of one source wait on the peer at once, so they never take all of
 * the client's requests in flight (32): completes and heartbeats must not queue behind them.
 * Slots beyond it claim without waiting (and back off when idle). */
#define MAX_WAITING_CLAIMS 16

enum { R_CLAIM = 1, R_HEARTBEAT, R_FINISH };

struct rop {
  int kind;
  bool waits; /* a claim that asked to wait */
  void *ud;
  remote_src *src;
  rop *prev, *next; /* in src->claims (claims only) */
  union {
    taskq_claim_cb claim;
    taskq_heartbeat_cb heartbeat;
    taskq_finish_cb finish;
  } cb;
  char worker_id[TASKQ_MAX_WORKER_ID + 1];
};

static void claim_unlink(rop *o) {
  if (o->kind != R_CLAIM || !o->src) return;
  if (o->waits) o->src->n_waiting--;
  if (o->prev) o->prev->next = o->next;
  else o->src->claims = o->next;
  if (o->next) o->next->prev = o->prev;
  o->prev = o->next = NULL;
  o->src = NULL;
}

/* The op reply → rc. */
static int reply_rc(int err, const json_t *result) {
  if (err < 0) return err;
  if (!json_is_object(result)) return -EPROTO;
  if (json_is_true(json_object_get(result, "ok"))) return 0;
  const char *e = json_string_value(json_object_get(result, "error"));
  if (e && strcmp(e, "lease_lost") == 0) return -ESTALE;
  if (e && strcmp(e, "unauthorized") == 0) return -EPERM;
  return -EPROTO;
}

static void on_reply(void *ud, int err, json_t *result, json_t *error) {
  (void)error;
  rop *o = ud;
  claim_unlink(o);
  int rc = reply_rc(err, result);
  switch (o->kind) {
  case R_CLAIM: {
    taskq_task *t = NULL;
    const json_t *task = rc == 0 ? json_object_get(result, "task") : NULL;
    if (json_is_object(task) && !(t = taskq_task_from_json(task, o->worker_id))) rc = -EPROTO; /* not a task */
    o->cb.claim(o->ud, rc, t);
    break;
  }
  case R_HEARTBEAT:
    o->cb.heartbeat(o->ud, rc, rc == 0 && json_is_true(json_object_get(result, "cancel_requested")));
    break;
  default: o->cb.finish(o->ud, rc); break;
  }
  free(o);
}

static int send_op(remote_src *s, json_t *msg /* stolen */, rop *o, uint32_t timeout_ms) {
  int rc = msg ? svc_client_rpc(s->client, msg, timeout_ms, on_reply, o) : -ENOMEM;
  json_decref(msg);
  if (rc != 0) {
    free(o);
  } else if (o->kind == R_CLAIM) {
    o->src = s;
    if (o->waits) s->n_waiting++;
    o->next = s->claims;
    if (s->claims) s->claims->prev = o;
    s->claims = o;
  }
  return rc;
}

static rop *rop_new(int kind, void *ud) {
  rop *o = calloc(1, sizeof *o);
  if (o) o->kind = kind, o->ud = ud;
  return o;
}

/* {"op": op, "worker_id": worker}, or NULL. The op messages are built key by key: json_pack
 * parses its format string each time (~5 k instructions a message). */
static json_t *msg_new(const char *op, const char *worker) {
  json_t *m = json_object();
  if (m && (json_object_set_new_nocheck(m, "op", json_string_nocheck(op)) != 0 ||
            json_object_set_new_nocheck(m, "worker_id", json_string(worker)) != 0)) {
    json_decref(m);
    m = NULL;
  }
  return m;
}

static int src_claim(void *impl, const taskq_claim_req *req, taskq_claim_cb cb, void *ud) {
  size_t wn = req->worker_id ? strlen(req->worker_id) : 0;
  if (!wn || wn > TASKQ_MAX_WORKER_ID || !cb) return -EINVAL;
  rop *o = rop_new(R_CLAIM, ud);
  if (!o) return -ENOMEM;
  o->cb.claim = cb;
  memcpy(o->worker_id, req->worker_id, wn + 1);
  json_t *types = json_array();
  for (size_t i = 0; types && i < req->n_task_types; i++) json_array_append_new(types, json_string(req->task_types[i]));
  json_t *m = msg_new("claim", req->worker_id);
  if (m && (!types || json_object_set_new_nocheck(m, "supported_task_types", types) != 0 ||
            json_object_set_new_nocheck(m, "lease_seconds", json_real(req->lease_seconds)) != 0)) {
    json_decref(m);
    m = NULL;
  } else if (!m) {
    json_decref(types);
  }
  /* a claim that waits for work: an opt-in field a Python peer ignores (it answers at once) */
  uint32_t tmo = 0;
  if (m && req->wait_s > 0 && ((remote_src *)impl)->n_waiting < MAX_WAITING_CLAIMS) {
    o->waits = true;
    json_object_set_new(m, "wait_s", json_real(req->wait_s));
    tmo = (uint32_t)(req->wait_s * 1000.0) + 15000; /* the wait, plus room for the answer */
  }
  return send_op(impl, m, o, tmo);
}

static json_t *lease_msg(const char *op, const taskq_lease *l) {
  if (!l || !l->task_id || !l->worker_id) return NULL;
  json_t *m = json_object();
  if (!m) return NULL;
  int bad = json_object_set_new_nocheck(m, "op", json_string_nocheck(op));
  bad |= json_object_set_new_nocheck(m, "task_id", json_string(l->task_id));
  bad |= json_object_set_new_nocheck(m, "worker_id", json_string(l->worker_id));
  bad |= json_object_set_new_nocheck(m, "lease_epoch", json_integer((json_int_t)l->lease_epoch));
  if (bad) {
    json_decref(m);
    return NULL;
  }
  return m;
}

static int src_heartbeat(void *impl, const taskq_lease *l, double lease_seconds, taskq_heartbeat_cb cb, void *ud) {
  if (!cb || !l || !l->task_id || !l->worker_id) return -EINVAL;
  rop *o = rop_new(R_HEARTBEAT, ud);
  if (!o) return -ENOMEM;
  o->cb.heartbeat = cb;
  json_t *m = lease_msg("task.heartbeat", l);
  if (m) json_object_set_new(m, "lease_seconds", json_real(lease_seconds));
  return send_op(impl, m, o, 0);
}

static int src_finish(void *impl, const taskq_lease *l, const taskq_finish *f, taskq_finish_cb cb, void *ud) {
  if (!cb || !f || !l || !l->task_id || !l->worker_id) return -EINVAL;
  rop *o = rop_new(R_FINISH, ud);
  if (!o) return -ENOMEM;
  o->cb.finish = cb;
  json_t *m = NULL;
  switch (f->kind) {
  case TASKQ_FINISH_RELEASE:
    if ((m = lease_msg("release", l))) json_object_set_new(m, "reason", json_string(f->reason ? f->reason : "released"));
    break;
  case TASKQ_FINISH_RETRY:
    if ((m = lease_msg("fail", l))) {
      json_object_set_new(m, "error", json_string(f->error ? f->error : "failed"));
      json_object_set_new(m, "retry", json_true());
      if (f->delay_s > 0) json_object_set_new(m, "delay_s", json_real(f->delay_s));
    }
    break;
  default:
    if ((m = lease_msg("complete", l))) {
      json_object_set_new(m, "status", json_string(tq_status_name(f->status)));
      if (f->result) json_object_set(m, "result", f->result);
      if (f->error) json_object_set_new(m, "error", json_string(f->error));
    }
    break;
  }
  return send_op(impl, m, o, 0);
}

static void src_cancel_waits(void *impl) {
  remote_src *s = impl;
  while (s->claims) {
    rop *o = s->claims;
    claim_unlink(o);
    (void)svc_client_cancel(s->client, on_reply, o); /* tells the peer; never calls back */
    o->cb.claim(o->ud, 0, NULL);
    free(o);
  }
}

static void src_free(void *impl) { free(impl); }

static const taskq_source_vt k_remote_vt = {.claim = src_claim,
                                            .heartbeat = src_heartbeat,
                                            .finish = src_finish,
                                            .free = src_free,
                                            .cancel_waits = src_cancel_waits};

int svc_remote_source_new(svc_client *c, const char *name, taskq_source **out) {
  *out = NULL;
  if (!c) return -EINVAL;
  taskq_source *s = calloc(1, sizeof *s);
  remote_src *rs = calloc(1, sizeof *rs);
  if (!s || !rs) {
    free(s);
    free(rs);
    return -ENOMEM;
  }
  rs->client = c;
  s->vt = &k_remote_vt;
  s->impl = rs;
  snprintf(s->name, sizeof s->name, "%s", name ? name : "remote");
  *out = s;
  return 0;
}

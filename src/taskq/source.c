/* source.c — the claimed task and the source handle (see source.h). */
#include "taskq/source.h"

#include <stdlib.h>
#include <string.h>

void taskq_task_free(taskq_task *t) {
  if (!t) return;
  free(t->task_type);
  json_decref(t->payload);
  free(t);
}

static taskq_task *task_new(const char *id, const char *type, json_t *payload /* stolen */, const char *worker,
                            int64_t epoch) {
  size_t idn = id ? strlen(id) : 0, wn = worker ? strlen(worker) : 0;
  if (!idn || idn >= sizeof ((taskq_task *)0)->task_id || wn > TASKQ_MAX_WORKER_ID || !type || !payload) {
    json_decref(payload);
    return NULL;
  }
  if (!json_is_object(payload)) {
    json_t *w = json_pack("{s:o}", "payload", payload);
    if (!w) return NULL;
    payload = w;
  }
  taskq_task *t = calloc(1, sizeof *t);
  if (!t || !(t->task_type = strdup(type))) {
    free(t);
    json_decref(payload);
    return NULL;
  }
  memcpy(t->task_id, id, idn + 1);
  if (wn) memcpy(t->worker_id, worker, wn + 1);
  t->payload = payload;
  t->lease_epoch = epoch;
  return t;
}

taskq_task *taskq_task_from_tq(const tq_task *t) {
  json_t *payload = json_loads(t->payload_json ? t->payload_json : "{}", JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  taskq_task *k = task_new(t->task_id, t->task_type, payload, t->assigned_worker, t->lease_epoch);
  /* the trace continues from the submitter's span, which the stored traceparent names */
  if (k && t->traceparent && trace_continue(t->traceparent, &k->trace) != 0) memset(&k->trace, 0, sizeof k->trace);
  return k;
}

taskq_task *taskq_task_from_json(const json_t *task, const char *worker_id) {
  if (!json_is_object(task)) return NULL;
  const json_t *id = json_object_get(task, "task_id"), *type = json_object_get(task, "task_type");
  const json_t *aw = json_object_get(task, "assigned_worker"), *ep = json_object_get(task, "lease_epoch");
  if (!json_is_string(id) || !json_is_string(type)) return NULL;
  const char *w = json_is_string(aw) && json_string_length(aw) ? json_string_value(aw) : worker_id;
  json_t *payload = json_object_get(task, "payload");
  taskq_task *k = task_new(json_string_value(id), json_string_value(type),
                           payload ? json_incref(payload) : json_object(), w,
                           json_is_integer(ep) ? json_integer_value(ep) : 0);
  if (k && trace_continue_json(json_object_get(task, "traceparent"), &k->trace) != 0)
    memset(&k->trace, 0, sizeof k->trace);
  return k;
}

void taskq_source_free(taskq_source *s) {
  if (!s) return;
  if (s->vt && s->vt->free) s->vt->free(s->impl);
  free(s);
}

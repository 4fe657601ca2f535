/* dispatch.c — the dispatcher (see dispatch.h) and the handler-side call context (tool.h).
 *
 * Life of a call (all bookkeeping on the loop thread, so the reference count needs no atomics):
 *   start → [pre-check error or INLINE handler] → ready list → async → complete
 *   start → timer + worker job → handler on a worker → work_done on the loop → complete
 *                             └→ timer fires first → complete(TIMEOUT); the worker's ref keeps
 *                                the call alive until the handler returns.
 * References: one for the loop side (dropped when the timer handle has closed after
 * completion), one for the worker job (dropped in work_done). Handler-side notifications go
 * through a dispatcher queue + uv_async and are flushed before a call completes, so progress
 * always precedes the response. */
#include "mcp/dispatch.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp/schema.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/workpool.h"

typedef struct call_event {
  struct call_event *next;
  mcp_call *root;
  bool is_log;
  double progress, total;
  char *message;
  char level[16];
} call_event;

struct mcp_call {
  mcp_dispatcher *d;
  const mcp_tool *tool;
  mcp_call *root; /* self for top-level calls; the top-level call for invoke children */
  int depth;      /* 0 for top-level calls; nesting level of mcp_dispatch_invoke children */
  int refs;       /* loop thread only (top-level calls) */
  atomic_bool cancel;
  bool timed_out;
  int64_t deadline_ms;
  int64_t start_us;
  const mcp_auth *auth; /* &auth_copy for top-level calls; the parent's for children */
  mcp_auth auth_copy;   /* the caller's identity, owned: handlers may outlive the transport */
  bool remote;
  json_t *args;
  json_t *progress_token;
  char *request_id;
  mcp_call_sink sink;
  void *ext; /* the transport's per-call context (mcp_call_request.ext), freed with the call */
  void (*ext_free)(void *ext);
  mcp_call_done_fn done;
  void *done_ud;
  /* outcome of the handler (written by the worker, read after work_done) */
  mcp_tool_status tstatus;
  json_t *result;
  bool ran;
  /* outcome decided before running (unknown tool, bad arguments, …) */
  mcp_dispatch_status pre_status;
  json_t *pre_envelope;
  /* loop-side state */
  bool completed, detached, has_timer;
  uv_timer_t timer;
  struct mcp_call *ready_next;
  struct mcp_call *live_prev, *live_next; /* dispatcher's list of calls not yet completed */
  /* sleep/cancel wakeups and progress monotonicity (top-level calls) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  double last_progress;
  bool any_progress;
};

struct mcp_dispatcher {
  uv_loop_t *loop;
  mcp_registry *reg;
  workpool *pool;
  uv_async_t async;
  uint32_t default_timeout_ms;
  bool shutting_down;
  size_t inflight;
  mcp_call *live; /* started, not completed (loop thread only) */
  int64_t started_ms;
  pthread_mutex_t mu; /* guards events */
  call_event *ev_head, *ev_tail;
  mcp_call *ready_head, *ready_tail; /* loop thread only */
};

static const char *const k_status_names[] = {
    "success",   "tool_error", "invalid_arguments", "unknown_tool", "unknown_category",
    "forbidden", "timeout",    "cancelled",         "shutting_down", "internal",
};

const char *mcp_dispatch_status_name(mcp_dispatch_status st) {
  if ((unsigned)st >= sizeof k_status_names / sizeof k_status_names[0]) return "internal";
  return k_status_names[st];
}

/* ---------- uuid ---------- */

static pthread_once_t g_sodium_once = PTHREAD_ONCE_INIT;
static void sodium_once(void) {
  if (sodium_init() < 0) log_error("dispatch: sodium_init failed", NULL);
}

/* Request ids come from a per-thread ChaCha20 stream (key from the system RNG once per thread,
 * then a counter nonce): unpredictable like getrandom(), without a system call per call. */
static _Thread_local unsigned char t_uuid_key[crypto_stream_chacha20_KEYBYTES];
static _Thread_local uint64_t t_uuid_ctr;
static _Thread_local bool t_uuid_init;

void mcp_uuid4(char buf[37]) {
  pthread_once(&g_sodium_once, sodium_once);
  if (!t_uuid_init) {
    randombytes_buf(t_uuid_key, sizeof t_uuid_key);
    t_uuid_init = true;
  }
  unsigned char b[16], nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
  uint64_t ctr = t_uuid_ctr++;
  memcpy(nonce, &ctr, sizeof ctr < sizeof nonce ? sizeof ctr : sizeof nonce);
  crypto_stream_chacha20(b, sizeof b, nonce, t_uuid_key);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  static const char hex[] = "0123456789abcdef";
  char *o = buf;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 15];
  }
  *o = 0;
}

/* ---------- envelopes ---------- */

static double elapsed_ms(const mcp_call *c) {
  double ms = (double)(clock_mono_us() - c->start_us) / 1000.0;
  return round(ms * 1000.0) / 1000.0;
}

static json_t *envelope_base(const mcp_call *c, const char *category, const char *tool, bool ok) {
  json_t *e = json_object();
  if (!e) return NULL;
  json_object_set_new(e, "status", json_string(ok ? "success" : "error"));
  return e;
}

static void envelope_finish(json_t *e, const mcp_call *c, const char *category, const char *tool) {
  json_object_set_new(e, "request_id", json_string(c->request_id ? c->request_id : ""));
  json_object_set_new(e, "category", category ? json_string(category) : json_null());
  json_object_set_new(e, "tool", tool ? json_string(tool) : json_null());
  json_object_set_new(e, "duration_ms", json_real(elapsed_ms(c)));
}

/* An error envelope; `extra` (object, stolen, may be NULL) adds fields. */
static json_t *envelope_error(const mcp_call *c, const char *category, const char *tool, mcp_dispatch_status st,
                              const char *message, json_t *extra) {
  json_t *e = envelope_base(c, category, tool, false);
  if (!e) {
    json_decref(extra);
    return NULL;
  }
  json_object_set_new(e, "error", json_string(message ? message : mcp_dispatch_status_name(st)));
  json_object_set_new(e, "error_type", json_string(mcp_dispatch_status_name(st)));
  if (extra) {
    const char *k;
    json_t *v;
    json_object_foreach(extra, k, v) {
      if (!json_object_get(e, k)) json_object_set(e, k, v);
    }
    json_decref(extra);
  }
  envelope_finish(e, c, category, tool);
  return e;
}

static json_t *envelope_success(const mcp_call *c, const char *category, const char *tool, json_t *result) {
  json_t *e = envelope_base(c, category, tool, true);
  if (!e) return NULL;
  json_object_set(e, "result", result ? result : json_null());
  envelope_finish(e, c, category, tool);
  return e;
}

/* A handler's MCP_TOOL_ERROR value → error envelope. */
static json_t *envelope_tool_error(const mcp_call *c, const char *category, const char *tool, json_t *value) {
  if (json_is_string(value)) return envelope_error(c, category, tool, MCP_DISPATCH_TOOL_ERROR, json_string_value(value), NULL);
  if (json_is_object(value)) {
    json_t *extra = json_deep_copy(value);
    json_t *msg = json_object_get(value, "error");
    char *dumped = NULL;
    const char *m = "tool failed";
    if (json_is_string(msg)) m = json_string_value(msg);
    else if (msg) m = dumped = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    if (extra) {
      json_object_del(extra, "error");
      json_object_del(extra, "status");
    }
    json_t *e = envelope_error(c, category, tool, MCP_DISPATCH_TOOL_ERROR, m ? m : "tool failed", extra);
    free(dumped);
    /* a handler relaying another call's error (tools_dispatch) keeps that call's kind */
    json_t *kind = json_object_get(value, "error_type");
    if (e && json_is_string(kind)) json_object_set(e, "error_type", kind);
    return e;
  }
  json_t *extra = NULL;
  if (value) extra = json_pack("{s:O}", "detail", value);
  return envelope_error(c, category, tool, MCP_DISPATCH_TOOL_ERROR, "tool failed", extra);
}

json_t *mcp_dispatch_call_result(const json_t *envelope) {
  json_t *r = json_object();
  if (!r) return NULL;
  bool ok = json_is_string(json_object_get(envelope, "status")) &&
            strcmp(json_string_value(json_object_get(envelope, "status")), "success") == 0;
  json_t *structured;
  if (ok) {
    json_t *res = json_object_get(envelope, "result");
    /* shared, not copied: nothing mutates a finished envelope */
    if (json_is_object(res)) structured = json_incref(res);
    else structured = json_pack("{s:O}", "result", res ? res : json_null());
  } else {
    structured = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)envelope, k, v) {
      if (strcmp(k, "status") == 0 || strcmp(k, "duration_ms") == 0) continue;
      json_object_set(structured, k, v);
    }
  }
  char *text = json_dumps(structured, JSON_COMPACT | JSON_ENCODE_ANY);
  json_t *content = json_array();
  json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", text ? text : "null"));
  free(text);
  json_object_set_new(r, "content", content);
  json_object_set_new(r, "structuredContent", structured);
  json_object_set_new(r, "isError", json_boolean(!ok));
  json_t *rid = json_object_get(envelope, "request_id");
  json_t *dur = json_object_get(envelope, "duration_ms");
  json_t *meta = json_object();
  if (rid) json_object_set(meta, "io.peermcp/request_id", rid);
  if (dur) json_object_set(meta, "io.peermcp/duration_ms", dur);
  json_object_set_new(r, "_meta", meta);
  return r;
}

/* ---------- call objects ---------- */

static mcp_call *call_new(mcp_dispatcher *d) {
  mcp_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->d = d;
  c->root = c;
  c->refs = 1;
  atomic_init(&c->cancel, false);
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  c->start_us = clock_mono_us();
  return c;
}

static void call_free(mcp_call *c) {
  json_decref(c->args);
  json_decref(c->progress_token);
  json_decref(c->result);
  json_decref(c->pre_envelope);
  free(c->request_id);
  if (c->ext && c->ext_free) c->ext_free(c->ext);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}

static void call_unref(mcp_call *c) {
  if (--c->refs == 0) call_free(c);
}

static void timer_closed(uv_handle_t *h) { call_unref(h->data); }

/* Wakes sleepers and marks cancelled. Any thread. */
static void call_signal_cancel(mcp_call *root) {
  pthread_mutex_lock(&root->mu);
  atomic_store(&root->cancel, true);
  pthread_cond_broadcast(&root->cv);
  pthread_mutex_unlock(&root->mu);
}

static void flush_events(mcp_dispatcher *d);

/* Loop thread: the single place a top-level call finishes. Takes envelope (stolen). */
static void call_complete(mcp_call *c, mcp_dispatch_status st, json_t *envelope) {
  if (c->completed) {
    json_decref(envelope);
    return;
  }
  c->completed = true;
  c->d->inflight--;
  if (c->live_prev) c->live_prev->live_next = c->live_next;
  else c->d->live = c->live_next;
  if (c->live_next) c->live_next->live_prev = c->live_prev;
  c->live_prev = c->live_next = NULL;
  if (!c->detached && c->done) {
    if (!envelope) envelope = json_pack("{s:s, s:s, s:s}", "status", "error", "error", "out of memory", "error_type", "internal");
    const mcp_tool_def *def = mcp_tool_def_of(c->tool);
    const char *tname = def ? def->name : json_string_value(json_object_get(envelope, "tool"));
    log_write(st == MCP_DISPATCH_OK ? LOG_DEBUG : LOG_INFO, "dispatch", "{s:s, s:s, s:s, s:f}", "request_id",
              c->request_id, "tool", tname ? tname : "?", "status", mcp_dispatch_status_name(st), "duration_ms",
              elapsed_ms(c));
    mcp_call_outcome o = {.status = st, .envelope = envelope, .tool = c->tool};
    c->done(c->done_ud, &o);
  }
  json_decref(envelope);
  if (c->has_timer) {
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
  } else {
    call_unref(c);
  }
}

/* Builds the outcome of a call whose handler returned (worker or inline). Loop thread. */
static void call_complete_ran(mcp_call *c) {
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  if (atomic_load(&c->cancel) && !c->timed_out) {
    call_complete(c, MCP_DISPATCH_CANCELLED,
                  envelope_error(c, def->category, def->name, MCP_DISPATCH_CANCELLED, "cancelled by the caller", NULL));
    return;
  }
  if (c->ran && clock_mono_ms() >= c->deadline_ms) { /* finished, but too late: same as the timer */
    char msg[96];
    snprintf(msg, sizeof msg, "deadline exceeded after %lld ms", (long long)(c->deadline_ms - c->start_us / 1000));
    call_complete(c, MCP_DISPATCH_TIMEOUT, envelope_error(c, def->category, def->name, MCP_DISPATCH_TIMEOUT, msg, NULL));
    return;
  }
  if (c->pre_envelope) { /* validation failed on the worker */
    json_t *e = c->pre_envelope;
    c->pre_envelope = NULL;
    call_complete(c, c->pre_status, e);
    return;
  }
  if (c->tstatus == MCP_TOOL_OK) {
    call_complete(c, MCP_DISPATCH_OK, envelope_success(c, def->category, def->name, c->result));
  } else {
    call_complete(c, MCP_DISPATCH_TOOL_ERROR, envelope_tool_error(c, def->category, def->name, c->result));
  }
}

static void call_timer_cb(uv_timer_t *t) {
  mcp_call *c = t->data;
  if (c->completed) return;
  c->timed_out = true;
  call_signal_cancel(c);
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  char msg[96];
  snprintf(msg, sizeof msg, "deadline exceeded after %lld ms", (long long)(c->deadline_ms - c->start_us / 1000));
  flush_events(c->d);
  call_complete(c, MCP_DISPATCH_TIMEOUT, envelope_error(c, def->category, def->name, MCP_DISPATCH_TIMEOUT, msg, NULL));
}

/* Validates c->args against the tool's schema. Returns false with c->pre_* set on failure. */
static bool call_validate(mcp_call *c) {
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  if (!json_is_object(c->args)) {
    c->pre_status = MCP_DISPATCH_INVALID_ARGUMENTS;
    c->pre_envelope = envelope_error(c, def->category, def->name, MCP_DISPATCH_INVALID_ARGUMENTS,
                                     "Invalid arguments: $: expected object", NULL);
    return false;
  }
  char err[512] = "";
  if (mcp_schema_validate(mcp_tool_input_schema(c->tool), c->args, err, sizeof err) != 0) {
    char msg[600];
    snprintf(msg, sizeof msg, "Invalid arguments: %s", err[0] ? err : "schema validation failed");
    c->pre_status = MCP_DISPATCH_INVALID_ARGUMENTS;
    c->pre_envelope = envelope_error(c, def->category, def->name, MCP_DISPATCH_INVALID_ARGUMENTS, msg, NULL);
    return false;
  }
  return true;
}

static void call_run_handler(mcp_call *c) {
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  if (!call_validate(c)) return;
  if (mcp_call_cancelled(c)) return; /* cancelled or timed out while queued */
  json_t *res = NULL;
  c->tstatus = def->fn(c, c->args, &res, def->ud);
  c->result = res;
  if (c->tstatus != MCP_TOOL_OK && c->tstatus != MCP_TOOL_ERROR) c->tstatus = MCP_TOOL_ERROR;
  c->ran = true;
}

static void call_work(void *arg) { call_run_handler(arg); }

static void call_work_done(void *arg) {
  mcp_call *c = arg;
  flush_events(c->d);
  if (!c->completed) {
    if (!c->ran && !c->pre_envelope) {
      /* skipped: cancelled while queued (a timeout completes from the timer) */
      const mcp_tool_def *def = mcp_tool_def_of(c->tool);
      call_complete(c, MCP_DISPATCH_CANCELLED,
                    envelope_error(c, def->category, def->name, MCP_DISPATCH_CANCELLED, "cancelled by the caller", NULL));
    } else {
      call_complete_ran(c);
    }
  }
  call_unref(c);
}

/* ---------- dispatcher ---------- */

static void ready_push(mcp_dispatcher *d, mcp_call *c) {
  c->ready_next = NULL;
  if (d->ready_tail) d->ready_tail->ready_next = c;
  else d->ready_head = c;
  d->ready_tail = c;
  uv_async_send(&d->async);
}

static void flush_events(mcp_dispatcher *d) {
  pthread_mutex_lock(&d->mu);
  call_event *e = d->ev_head;
  d->ev_head = d->ev_tail = NULL;
  pthread_mutex_unlock(&d->mu);
  while (e) {
    call_event *next = e->next;
    mcp_call *c = e->root;
    if (!c->completed && !c->detached) {
      if (e->is_log) {
        if (c->sink.log) c->sink.log(c->sink.ud, e->level, e->message ? e->message : "");
      } else if (c->sink.progress && c->progress_token) {
        c->sink.progress(c->sink.ud, c->progress_token, e->progress, e->total, e->message);
      }
    }
    free(e->message);
    free(e);
    e = next;
  }
}

static void dispatcher_async_cb(uv_async_t *h) {
  mcp_dispatcher *d = h->data;
  flush_events(d);
  mcp_call *c = d->ready_head;
  d->ready_head = d->ready_tail = NULL;
  while (c) {
    mcp_call *next = c->ready_next;
    if (c->ran || c->pre_envelope) {
      if (c->ran) call_complete_ran(c);
      else {
        json_t *e = c->pre_envelope;
        c->pre_envelope = NULL;
        call_complete(c, c->pre_status, e);
      }
    } else {
      call_complete(c, MCP_DISPATCH_INTERNAL, NULL);
    }
    c = next;
  }
}

int mcp_dispatcher_new(uv_loop_t *loop, mcp_registry *reg, const mcp_dispatcher_opts *opts, mcp_dispatcher **out) {
  *out = NULL;
  pthread_once(&g_sodium_once, sodium_once);
  mcp_dispatcher *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  d->loop = loop;
  d->reg = reg;
  d->default_timeout_ms = opts && opts->default_timeout_ms ? opts->default_timeout_ms : MCP_DISPATCH_DEFAULT_TIMEOUT_MS;
  d->started_ms = clock_mono_ms();
  pthread_mutex_init(&d->mu, NULL);
  int rc = uv_async_init(loop, &d->async, dispatcher_async_cb);
  if (rc != 0) {
    pthread_mutex_destroy(&d->mu);
    free(d);
    return rc;
  }
  d->async.data = d;
  rc = workpool_new(loop, opts && opts->threads ? opts->threads : WORKPOOL_DEFAULT_THREADS,
                    opts && opts->max_threads ? opts->max_threads : WORKPOOL_DEFAULT_MAX_THREADS, &d->pool);
  if (rc != 0) {
    d->pool = NULL;
    mcp_dispatcher_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

static void dispatcher_closed(uv_handle_t *h) {
  mcp_dispatcher *d = h->data;
  pthread_mutex_destroy(&d->mu);
  free(d);
}

void mcp_dispatcher_free(mcp_dispatcher *d) {
  if (!d) return;
  d->shutting_down = true;
  /* Callers should have drained or detached every call; any left is detached now, so no timer
   * or callback can outlive the dispatcher. */
  while (d->live) {
    log_warn("dispatch: freed with a call in flight; detaching it", "{s:s}", "request_id", d->live->request_id);
    mcp_dispatch_detach(d->live);
  }
  if (d->pool) workpool_free(d->pool); /* runs work_done for every job */
  d->pool = NULL;
  dispatcher_async_cb(&d->async);     /* completes anything still on the ready list */
  uv_close((uv_handle_t *)&d->async, dispatcher_closed);
}

mcp_registry *mcp_dispatcher_registry(const mcp_dispatcher *d) { return d ? d->reg : NULL; }
workpool *mcp_dispatcher_pool(const mcp_dispatcher *d) { return d ? d->pool : NULL; }
void mcp_dispatcher_shutdown(mcp_dispatcher *d) { d->shutting_down = true; }
size_t mcp_dispatcher_inflight(const mcp_dispatcher *d) { return d->inflight; }
double mcp_dispatcher_uptime_s(const mcp_dispatcher *d) { return (double)(clock_mono_ms() - d->started_ms) / 1000.0; }

static bool may_use(bool remote, const mcp_tool *t) {
  return !remote || (mcp_tool_def_of(t)->flags & MCP_TOOL_REMOTE);
}

int mcp_dispatch_start(mcp_dispatcher *d, const mcp_call_request *req, mcp_call_done_fn done, void *ud,
                       mcp_call **out) {
  if (out) *out = NULL;
  if (!d || !req || !req->tool || !req->auth) return -EINVAL;
  mcp_call *c = call_new(d);
  if (!c) return -ENOMEM;
  char uuid[37];
  if (!req->request_id) mcp_uuid4(uuid);
  c->request_id = strdup(req->request_id ? req->request_id : uuid);
  c->args = req->args ? json_deep_copy(req->args) : json_object();
  if (req->progress_token) c->progress_token = json_deep_copy(req->progress_token);
  c->auth_copy = *req->auth; /* a plain value (auth/auth.h) */
  c->auth = &c->auth_copy;
  if (!c->request_id || !c->args || (req->progress_token && !c->progress_token)) {
    call_free(c);
    return -ENOMEM;
  }
  c->remote = req->remote;
  c->sink = req->sink;
  c->ext = req->ext;
  c->ext_free = req->ext_free;
  c->done = done;
  c->done_ud = ud;
  d->inflight++;
  c->live_next = d->live;
  if (d->live) d->live->live_prev = c;
  d->live = c;
  if (out) *out = c;

  const mcp_tool *t = mcp_registry_find(d->reg, req->tool);
  if (t && !may_use(req->remote, t)) t = NULL;
  c->tool = t;
  if (d->shutting_down) {
    c->pre_status = MCP_DISPATCH_SHUTTING_DOWN;
    c->pre_envelope = envelope_error(c, t ? mcp_tool_def_of(t)->category : NULL, req->tool, MCP_DISPATCH_SHUTTING_DOWN,
                                     "Server is shutting down: no new tool calls accepted", NULL);
    ready_push(d, c);
    return 0;
  }
  if (!t) {
    char msg[200];
    snprintf(msg, sizeof msg, "Tool '%.128s' not found", req->tool);
    c->pre_status = MCP_DISPATCH_UNKNOWN_TOOL;
    c->pre_envelope = envelope_error(c, NULL, req->tool, MCP_DISPATCH_UNKNOWN_TOOL, msg, NULL);
    ready_push(d, c);
    return 0;
  }
  const mcp_tool_def *def = mcp_tool_def_of(t);
  if (!auth_allows(req->auth, &def->scopes)) {
    c->pre_status = MCP_DISPATCH_FORBIDDEN;
    c->pre_envelope = envelope_error(c, def->category, def->name, MCP_DISPATCH_FORBIDDEN,
                                     "Forbidden: the caller lacks a scope this tool requires", NULL);
    ready_push(d, c);
    return 0;
  }
  uint32_t timeout = req->timeout_ms ? req->timeout_ms : def->timeout_ms ? def->timeout_ms : d->default_timeout_ms;
  c->deadline_ms = c->start_us / 1000 + (int64_t)timeout;

  if (def->flags & MCP_TOOL_INLINE) {
    call_run_handler(c);
    ready_push(d, c);
    return 0;
  }
  int rc = uv_timer_init(d->loop, &c->timer);
  if (rc == 0) {
    c->timer.data = c;
    c->has_timer = true;
    rc = uv_timer_start(&c->timer, call_timer_cb, timeout, 0);
  }
  if (rc == 0) {
    c->refs++; /* the worker's */
    rc = workpool_submit(d->pool, call_work, call_work_done, c);
    if (rc != 0) c->refs--;
  }
  if (rc != 0) {
    c->pre_status = MCP_DISPATCH_INTERNAL;
    c->pre_envelope = envelope_error(c, def->category, def->name, MCP_DISPATCH_INTERNAL, "cannot schedule the call", NULL);
    ready_push(d, c);
  }
  return 0;
}

void mcp_dispatch_cancel(mcp_call *c) {
  if (!c || c->completed) return;
  call_signal_cancel(c);
}

void mcp_dispatch_detach(mcp_call *c) {
  if (!c || c->completed) return;
  c->detached = true;
  call_signal_cancel(c);
  /* Completes silently now. If it sits on the ready list or has a worker job, those paths see
   * `completed` and only drop their references. */
  bool queued = false;
  for (mcp_call *r = c->d->ready_head; r; r = r->ready_next)
    if (r == c) queued = true;
  if (queued) {
    c->refs++; /* the ready list's entry drops it below */
    call_complete(c, MCP_DISPATCH_CANCELLED, NULL);
    /* Remove from the ready list. */
    mcp_dispatcher *d = c->d;
    mcp_call **pp = &d->ready_head;
    mcp_call *prev = NULL;
    while (*pp) {
      if (*pp == c) {
        *pp = c->ready_next;
        if (d->ready_tail == c) d->ready_tail = prev;
        break;
      }
      prev = *pp;
      pp = &(*pp)->ready_next;
    }
    call_unref(c);
  } else {
    call_complete(c, MCP_DISPATCH_CANCELLED, NULL);
  }
}

/* ---------- handler-side context (tool.h) ---------- */

bool mcp_call_cancelled(const mcp_call *c) {
  return atomic_load(&c->root->cancel) || clock_mono_ms() >= c->deadline_ms;
}
int64_t mcp_call_deadline_ms(const mcp_call *c) { return c->deadline_ms; }
const mcp_auth *mcp_call_auth(const mcp_call *c) { return c->auth; }
const char *mcp_call_request_id(const mcp_call *c) { return c->request_id; }
mcp_registry *mcp_call_registry(const mcp_call *c) { return c->d->reg; }
mcp_dispatcher *mcp_call_dispatcher(const mcp_call *c) { return c->d; }
bool mcp_call_is_remote(const mcp_call *c) { return c->remote; }
bool mcp_call_may_use(const mcp_call *c, const mcp_tool *t) { return t && may_use(c->remote, t); }
const mcp_tool *mcp_call_tool(const mcp_call *c) { return c->tool; }
void *mcp_call_ext(const mcp_call *c) { return c->root->ext; }
uv_loop_t *mcp_dispatcher_loop(const mcp_dispatcher *d) { return d->loop; }

static void push_event(mcp_call *root, call_event *e) {
  mcp_dispatcher *d = root->d;
  e->root = root;
  pthread_mutex_lock(&d->mu);
  if (d->ev_tail) d->ev_tail->next = e;
  else d->ev_head = e;
  d->ev_tail = e;
  pthread_mutex_unlock(&d->mu);
  uv_async_send(&d->async);
}

void mcp_call_progress(mcp_call *call, double progress, double total, const char *message) {
  mcp_call *root = call->root;
  if (!root->progress_token || !isfinite(progress)) return;
  pthread_mutex_lock(&root->mu);
  bool ok = !root->any_progress || progress > root->last_progress; /* progress MUST increase */
  if (ok) {
    root->any_progress = true;
    root->last_progress = progress;
  }
  pthread_mutex_unlock(&root->mu);
  if (!ok) return;
  call_event *e = calloc(1, sizeof *e);
  if (!e) return;
  e->progress = progress;
  e->total = isfinite(total) ? total : -1;
  if (message) e->message = strndup(message, 4096);
  push_event(root, e);
}

void mcp_call_log(mcp_call *call, const char *level, const char *message) {
  log_level lv = LOG_INFO;
  if (level && log_level_parse(level, &lv) != 0) lv = LOG_INFO;
  const mcp_tool_def *def = mcp_tool_def_of(call->tool);
  log_write(lv, message ? message : "", "{s:s, s:s}", "request_id", call->request_id, "tool", def ? def->name : "?");
  call_event *e = calloc(1, sizeof *e);
  if (!e) return;
  e->is_log = true;
  snprintf(e->level, sizeof e->level, "%s", level ? level : "info");
  if (message) e->message = strndup(message, 65536);
  push_event(call->root, e);
}

bool mcp_call_sleep(mcp_call *call, int64_t ms) {
  mcp_call *root = call->root;
  int64_t until = clock_mono_ms() + (ms > 0 ? ms : 0);
  if (until > call->deadline_ms) until = call->deadline_ms;
  pthread_mutex_lock(&root->mu);
  for (;;) {
    if (atomic_load(&root->cancel)) break;
    int64_t now = clock_mono_ms();
    if (now >= until) break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t left = until - now;
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&root->cv, &root->mu, &ts);
  }
  pthread_mutex_unlock(&root->mu);
  return mcp_call_cancelled(call);
}

/* ---------- synchronous child calls (tools_dispatch) ---------- */

static json_t *visible_categories(const mcp_registry *reg, bool remote) {
  json_t *a = json_array();
  for (size_t i = 0; i < mcp_registry_category_count(reg); i++) {
    const char *cat = mcp_registry_category_at(reg, i);
    bool any = false;
    for (size_t j = 0; j < mcp_registry_count(reg) && !any; j++) {
      const mcp_tool *t = mcp_registry_at(reg, j);
      if (strcmp(mcp_tool_def_of(t)->category, cat) == 0 && may_use(remote, t)) any = true;
    }
    if (any) json_array_append_new(a, json_string(cat));
  }
  return a;
}

static json_t *visible_tools(const mcp_registry *reg, bool remote, const char *category) {
  json_t *a = json_array();
  for (size_t j = 0; j < mcp_registry_count(reg); j++) {
    const mcp_tool *t = mcp_registry_at(reg, j);
    const mcp_tool_def *def = mcp_tool_def_of(t);
    if ((!category || strcmp(def->category, category) == 0) && may_use(remote, t))
      json_array_append_new(a, json_string(def->name));
  }
  return a;
}

mcp_dispatch_status mcp_dispatch_invoke(mcp_call *parent, const char *category, const char *tool, json_t *args,
                                        json_t **envelope_out) {
  return mcp_dispatch_invoke_timeout(parent, category, tool, args, 0, envelope_out);
}

mcp_dispatch_status mcp_dispatch_invoke_timeout(mcp_call *parent, const char *category, const char *tool,
                                                json_t *args, uint32_t timeout_ms, json_t **envelope_out) {
  mcp_call c;
  memset(&c, 0, sizeof c);
  c.d = parent->d;
  c.root = parent->root;
  c.depth = parent->depth + 1;
  c.auth = parent->auth;
  c.remote = parent->remote;
  c.start_us = clock_mono_us();
  char uuid[37];
  mcp_uuid4(uuid);
  c.request_id = uuid;
  mcp_registry *reg = parent->d->reg;
  mcp_dispatch_status st;
  json_t *env = NULL;

  if (category) {
    json_t *tools = visible_tools(reg, c.remote, category);
    bool exists = json_array_size(tools) > 0;
    json_decref(tools);
    if (!exists) {
      char msg[200];
      snprintf(msg, sizeof msg, "Category '%.64s' not found", category);
      *envelope_out = envelope_error(&c, category, tool, MCP_DISPATCH_UNKNOWN_CATEGORY, msg,
                                     json_pack("{s:o}", "available_categories", visible_categories(reg, c.remote)));
      return MCP_DISPATCH_UNKNOWN_CATEGORY;
    }
  }
  if (c.depth > MCP_DISPATCH_MAX_DEPTH) { /* tools_dispatch → tools_dispatch → … */
    *envelope_out = envelope_error(&c, category, tool, MCP_DISPATCH_INVALID_ARGUMENTS,
                                   "dispatch nested too deeply", NULL);
    return MCP_DISPATCH_INVALID_ARGUMENTS;
  }
  const mcp_tool *t = tool ? mcp_registry_find(reg, tool) : NULL;
  if (t && (!may_use(c.remote, t) || (category && strcmp(mcp_tool_def_of(t)->category, category) != 0))) t = NULL;
  if (!t) {
    char msg[260];
    if (category) snprintf(msg, sizeof msg, "Tool '%.128s' not found in category '%.64s'", tool ? tool : "", category);
    else snprintf(msg, sizeof msg, "Tool '%.128s' not found", tool ? tool : "");
    *envelope_out = envelope_error(&c, category, tool, MCP_DISPATCH_UNKNOWN_TOOL, msg,
                                   json_pack("{s:o}", "available_tools", visible_tools(reg, c.remote, category)));
    return MCP_DISPATCH_UNKNOWN_TOOL;
  }
  const mcp_tool_def *def = mcp_tool_def_of(t);
  c.tool = t;
  uint32_t timeout = timeout_ms ? timeout_ms : def->timeout_ms ? def->timeout_ms : c.d->default_timeout_ms;
  c.deadline_ms = clock_mono_ms() + (int64_t)timeout;
  if (c.deadline_ms > parent->deadline_ms) c.deadline_ms = parent->deadline_ms;

  if (!auth_allows(c.auth, &def->scopes)) {
    *envelope_out = envelope_error(&c, def->category, def->name, MCP_DISPATCH_FORBIDDEN,
                                   "Forbidden: the caller lacks a scope this tool requires", NULL);
    return MCP_DISPATCH_FORBIDDEN;
  }
  c.args = args ? json_deep_copy(args) : json_object();
  if (!c.args) {
    *envelope_out = envelope_error(&c, def->category, def->name, MCP_DISPATCH_INTERNAL, "out of memory", NULL);
    return MCP_DISPATCH_INTERNAL;
  }
  if (!call_validate(&c)) {
    st = c.pre_status;
    env = c.pre_envelope;
  } else if (mcp_call_cancelled(&c)) {
    bool to = !atomic_load(&c.root->cancel);
    st = to ? MCP_DISPATCH_TIMEOUT : MCP_DISPATCH_CANCELLED;
    env = envelope_error(&c, def->category, def->name, st, to ? "deadline exceeded" : "cancelled by the caller", NULL);
  } else {
    json_t *res = NULL;
    mcp_tool_status ts = def->fn(&c, c.args, &res, def->ud);
    if (atomic_load(&c.root->cancel)) {
      st = MCP_DISPATCH_CANCELLED;
      env = envelope_error(&c, def->category, def->name, st, "cancelled by the caller", NULL);
    } else if (clock_mono_ms() >= c.deadline_ms) {
      st = MCP_DISPATCH_TIMEOUT;
      env = envelope_error(&c, def->category, def->name, st, "deadline exceeded", NULL);
    } else if (ts == MCP_TOOL_OK) {
      st = MCP_DISPATCH_OK;
      env = envelope_success(&c, def->category, def->name, res);
    } else {
      st = MCP_DISPATCH_TOOL_ERROR;
      env = envelope_tool_error(&c, def->category, def->name, res);
    }
    json_decref(res);
  }
  json_decref(c.args);
  *envelope_out = env;
  return st;
}

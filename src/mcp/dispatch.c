/* dispatch.c — the dispatcher (see dispatch.h) and the handler-side call context (tool.h).
 *
 * Life of a call (bookkeeping on the loop thread):
 *   start → [pre-check error, or INLINE handler] → ready list → async → complete
 *   start → timer + job on the short or long pool → handler on a worker → work_done on the loop
 *         → settle → complete
 *   start → timer + ASYNC handler on the loop → (PENDING) … mcp_call_complete → ready list
 *         → settle → complete
 *   any of these: the timer fires first → complete(TIMEOUT) and the pending tool's cancel
 *   callback; the references held by the job or the pending tool keep the call alive until the
 *   handler returned / the tool completed.
 * References (atomic: a call may be freed on the thread that drops the last one): the loop
 * side's (dropped when the timer has closed after completion, or at completion without timer),
 * one per ready-list entry, the pool job's (dropped in work_done), the pending tool's (dropped
 * when its completion is settled), one per queued notification, and a child's on its root.
 * Each call holds a reference on the dispatcher, so a tool completing after
 * mcp_dispatcher_free still finds valid memory (the completion is dropped).
 *
 * Children of mcp_dispatch_invoke run on the invoking worker's stack, except MCP_TOOL_ASYNC
 * tools: those are "kids", heap calls started on the loop (through the cross-thread queue)
 * with an internal completion that wakes the invoker. A kid is linked to its root, so the
 * root's cancellation, deadline or detach reaches the kid's cancel callback.
 *
 * Handler-side notifications go through a dispatcher queue + uv_async and are flushed before a
 * call completes, so progress always precedes the response. */
#include "mcp/dispatch.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp/schema.h"
#include "util/alloc.h"
#include "auth/audit.h"
#include "util/clock.h"
#include "util/jwrite.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/trace.h"
#include "util/workpool.h"

/* How long an invoker waits past its kid's deadline for the loop to finish it (a safety net:
 * the kid's timer normally ends it at the deadline). */
#define KID_GRACE_MS 5000

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
  mcp_call *root; /* self for top-level calls; the top-level call for invoke children and kids */
  int depth;      /* 0 for top-level calls; nesting level of mcp_dispatch_invoke children */
  atomic_int refs;
  atomic_bool cancel; /* this call's own cancellation (top-level calls and kids) */
  bool timed_out;
  bool is_kid;        /* a loop-started child of mcp_dispatch_invoke (ASYNC tool) */
  bool is_long;       /* runs on the long pool */
  bool in_pool;       /* a pool job was submitted */
  atomic_bool claimed; /* the job's worker began it, or the loop took it back (cancelled) */
  bool sync_done;      /* request.sync_done: an INLINE call completes inside start */
  bool lazy_env;       /* request.lazy_envelope: no envelope for a success unless asked */
  int64_t deadline_ms;
  int64_t start_us;
  int64_t duration_us; /* fixed at the first envelope or the completion; -1 until then */
  const mcp_auth *auth; /* &auth_copy for top-level calls; the root's for children */
  mcp_auth auth_copy;   /* the caller's identity, owned: handlers may outlive the transport */
  bool remote;
  json_t *args;
  json_t *progress_token;
  char request_id[40]; /* uuid4 text (no allocation, no system call: mcp_uuid4) */
  json_t *lazy_envelope; /* built by mcp_call_outcome_envelope during `done` */
  mcp_call_sink sink;
  trace_scope scope; /* trace and log fields (top-level calls; children use their root's) */
  json_t *rpc_id;    /* the JSON-RPC id the scope points at (a reference) */
  void *ext; /* the transport's per-call context (mcp_call_request.ext), freed with the call */
  void (*ext_free)(void *ext);
  mcp_call_done_fn done;
  void *done_ud;
  /* outcome of the handler (written by the handler's thread, read on the loop after it returned) */
  mcp_tool_status tstatus;
  json_t *result;
  bool ran;
  /* outcome decided before running (unknown tool, bad arguments, …) */
  mcp_dispatch_status pre_status;
  json_t *pre_envelope;
  /* asynchronous completion, loop view */
  bool returned;     /* the handler has returned (loop knows its tstatus) */
  bool pending;      /* it returned MCP_TOOL_PENDING and the completion is not settled: a ref */
  bool tool_done;    /* mcp_call_complete was seen */
  bool cancel_fired; /* cancel_fn ran (at most once) */
  mcp_call_cancel_fn cancel_fn;
  void *cancel_ud;
  mcp_tool_status xstatus; /* the tool's completion, until settled */
  json_t *xresult;
  /* cross-thread queue entry (under d->mu): a completion from another thread, or a kid start */
  struct mcp_call *xq_next;
  bool q_queued;
  mcp_tool_status q_status;
  json_t *q_result;
  /* loop-side state */
  bool completed, detached, has_timer;
  uv_timer_t timer;
  struct mcp_call *ready_next;
  struct mcp_call *live_prev, *live_next; /* dispatcher's list of calls not yet completed */
  struct mcp_call *kids;                  /* root: live kids */
  struct mcp_call *kid_prev, *kid_next;
  /* kid → invoker handoff (under root->mu) */
  bool kid_finished;
  mcp_dispatch_status kid_status;
  json_t *kid_env;
  /* sleep/cancel wakeups, kid handoff and progress monotonicity (top-level calls) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  double last_progress;
  bool any_progress;
};

struct mcp_dispatcher {
  uv_loop_t *loop;
  pthread_t loop_thread;
  mcp_registry *reg;
  workpool *pool;      /* short calls */
  workpool *long_pool; /* MCP_TOOL_LONG / is_long calls */
  uv_async_t async;
  uint32_t default_timeout_ms;
  mcp_access_log access_log;
  jwrite access;          /* access-log lines of this loop iteration (loop thread) */
  uv_check_t access_flush; /* writes them after the poll phase */
  bool has_access_flush;
  /* tools declared MCP_TOOL_INLINE that blocked on the loop (mcp_call_sleep) or ran over
   * MCP_DISPATCH_INLINE_BUDGET_US MCP_DISPATCH_INLINE_STRIKES times in a row: they run on the
   * short pool from then on. Loop thread only. */
  struct {
    const mcp_tool *tool;
    unsigned strikes;
    bool demoted;
  } inl[32];
  size_t ninl;
  bool shutting_down;
  size_t inflight;
  mcp_call *live; /* started, not completed (loop thread only) */
  int64_t started_ms;
  atomic_int refs;    /* the async handle + one per call object */
  pthread_mutex_t mu; /* guards events, the cross-thread queues and closing/closed */
  call_event *ev_head, *ev_tail;
  mcp_call *xq_head, *xq_tail;   /* completions from other threads */
  mcp_call *kid_head, *kid_tail; /* kids to start */
  bool closing;                  /* mcp_dispatcher_free began: no new kids */
  bool closed;                   /* the async handle is closing: completions are dropped */
  mcp_call *ready_head, *ready_tail; /* loop thread only */
  /* freed call objects kept for the next call (loop thread only, at most CALL_SPARE_MAX):
   * a call object (~1.5 KB) is above glibc's thread cache, ~430 instructions to calloc */
  mcp_call *spare;
  unsigned nspare;
};

#define CALL_SPARE_MAX 32u

/* Under AddressSanitizer a spare object is poisoned but for its list link, so a use of a call
 * after its free still shows while it waits for reuse, and the ASan unit tests run the reuse
 * path that release builds take. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
static void spare_poison(mcp_call *c) {
  size_t off = offsetof(mcp_call, xq_next);
  ASAN_POISON_MEMORY_REGION(c, off);
  ASAN_POISON_MEMORY_REGION((char *)c + off + sizeof c->xq_next, sizeof *c - off - sizeof c->xq_next);
}
static void spare_unpoison(mcp_call *c) { ASAN_UNPOISON_MEMORY_REGION(c, sizeof *c); }
#else
static inline void spare_poison(mcp_call *c) { (void)c; }
static inline void spare_unpoison(mcp_call *c) { (void)c; }
#endif

#define ON_LOOP(d) pthread_equal(pthread_self(), (d)->loop_thread)

static const char *const k_status_names[] = {
    "success",   "tool_error", "invalid_arguments", "unknown_tool", "unknown_category",
    "forbidden", "timeout",    "cancelled",         "shutting_down", "internal",
    "busy",
};

const char *mcp_dispatch_status_name(mcp_dispatch_status st) {
  if ((unsigned)st >= sizeof k_status_names / sizeof k_status_names[0]) return "internal";
  return k_status_names[st];
}

/* ---------- metrics: every finished top-level call, by tool and outcome ---------- */

#define N_STATUS (sizeof k_status_names / sizeof k_status_names[0])
static _Atomic uint64_t g_calls_cells[(MCP_TOOL_LABELS + 1) * N_STATUS];
static metrics_family g_tool_calls = {
    .name = "peermcp_tool_calls_total",
    .help = "Tool calls finished by the dispatcher, by tool and outcome (success or the error type).",
    .kind = METRICS_COUNTER,
    .ndims = 2,
    .dims = {{"tool", NULL, 0, &mcp_tool_labels}, {"outcome", k_status_names, N_STATUS, NULL}},
    .cells = g_calls_cells,
};
METRICS_REGISTER(g_tool_calls)
static _Atomic uint64_t g_tool_dur_cells[METRICS_CELLS_HIST(MCP_TOOL_LABELS + 1)];
static metrics_family g_tool_duration = {
    .name = "peermcp_tool_duration_seconds",
    .help = "Tool call duration from the request's arrival (else the dispatcher's start) to its answer, by tool.",
    .kind = METRICS_HISTOGRAM,
    .ndims = 1,
    .dims = {{"tool", NULL, 0, &mcp_tool_labels}},
    .cells = g_tool_dur_cells,
};
METRICS_REGISTER(g_tool_duration)

/* ---------- uuid ---------- */

static pthread_once_t g_sodium_once = PTHREAD_ONCE_INIT;
static void sodium_once(void) {
  if (sodium_init() < 0) log_error("dispatch: sodium_init failed", NULL);
}

/* Request ids come from a per-thread ChaCha20 stream (key from the system RNG once per thread,
 * then a counter nonce): unpredictable like getrandom(), without a system call per call. One
 * run of the cipher makes 256 bytes of keystream, sixteen ids. */
#define UUID_BATCH 256
static _Thread_local unsigned char t_uuid_key[crypto_stream_chacha20_KEYBYTES];
static _Thread_local uint64_t t_uuid_ctr;
static _Thread_local bool t_uuid_init;
static _Thread_local unsigned char t_uuid_pool[UUID_BATCH];
static _Thread_local unsigned t_uuid_left; /* unused bytes at the end of t_uuid_pool */

void mcp_uuid4(char buf[37]) {
  if (!t_uuid_init) {
    pthread_once(&g_sodium_once, sodium_once);
    randombytes_buf(t_uuid_key, sizeof t_uuid_key);
    t_uuid_init = true;
  }
  if (t_uuid_left < 16) {
    unsigned char nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
    uint64_t ctr = t_uuid_ctr++;
    memcpy(nonce, &ctr, sizeof ctr < sizeof nonce ? sizeof ctr : sizeof nonce);
    crypto_stream_chacha20(t_uuid_pool, sizeof t_uuid_pool, nonce, t_uuid_key);
    t_uuid_left = UUID_BATCH;
  }
  unsigned char b[16];
  memcpy(b, t_uuid_pool + UUID_BATCH - t_uuid_left, 16);
  sodium_memzero(t_uuid_pool + UUID_BATCH - t_uuid_left, 16); /* an id's bytes are not kept */
  t_uuid_left -= 16;
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

/* The call's duration, fixed the first time anyone asks (its envelope, or its completion), so
 * the envelope, the CallToolResult and the access log all show the same figure. */
static int64_t call_duration_us(mcp_call *c) {
  if (c->duration_us < 0) {
    int64_t d = clock_mono_us() - c->start_us;
    c->duration_us = d < 0 ? 0 : d;
  }
  return c->duration_us;
}

static double elapsed_ms(const mcp_call *c) {
  return (double)call_duration_us((mcp_call *)c) / 1000.0; /* whole µs: 3 decimals at most */
}

static json_t *envelope_base(const mcp_call *c, const char *category, const char *tool, bool ok) {
  json_t *e = json_object();
  if (!e) return NULL;
  json_object_set_new(e, "status", json_string(ok ? "success" : "error"));
  return e;
}

static void envelope_finish(json_t *e, const mcp_call *c, const char *category, const char *tool) {
  json_object_set_new(e, "request_id", json_string(c->request_id));
  json_object_set_new(e, "category", category ? json_string(category) : json_null());
  json_object_set_new(e, "tool", tool ? json_string(tool) : json_null());
  json_object_set_new(e, "duration_ms", json_real(elapsed_ms(c)));
}

/* An error envelope; `extra` (object, stolen, may be NULL) adds fields. */
static json_t *envelope_error(const mcp_call *c, const char *category, const char *tool, mcp_dispatch_status st,
                              const char *message, json_t *extra) {
  alloc_watch w = alloc_watch_begin();
  json_t *e = envelope_base(c, category, tool, false);
  if (!e) {
    (void)alloc_watch_end(w);
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
  if (alloc_watch_end(w)) { /* whole or nothing; call_complete answers "internal" */
    json_decref(e);
    return NULL;
  }
  return e;
}

static json_t *envelope_success(const mcp_call *c, const char *category, const char *tool, json_t *result) {
  alloc_watch w = alloc_watch_begin();
  json_t *e = envelope_base(c, category, tool, true);
  json_object_set(e, "result", result ? result : json_null());
  if (e) envelope_finish(e, c, category, tool);
  if (alloc_watch_end(w)) {
    json_decref(e);
    return NULL;
  }
  return e;
}

json_t *mcp_call_outcome_envelope(const mcp_call_outcome *o) {
  if (o->envelope || !o->call) return o->envelope;
  mcp_call *c = o->call;
  if (!c->lazy_envelope) {
    const mcp_tool_def *def = mcp_tool_def_of(c->tool);
    c->lazy_envelope = envelope_success(c, def ? def->category : NULL, def ? def->name : NULL, c->result);
  }
  return c->lazy_envelope;
}

/* A handler's MCP_TOOL_ERROR value → error envelope, whole or NULL. */
static json_t *envelope_tool_error_build(const mcp_call *c, const char *category, const char *tool, json_t *value);
static json_t *envelope_tool_error(const mcp_call *c, const char *category, const char *tool, json_t *value) {
  alloc_watch w = alloc_watch_begin();
  json_t *e = envelope_tool_error_build(c, category, tool, value);
  if (alloc_watch_end(w)) { /* e.g. the copy of the handler's fields */
    json_decref(e);
    return NULL;
  }
  return e;
}

static json_t *envelope_tool_error_build(const mcp_call *c, const char *category, const char *tool, json_t *value) {
  if (json_is_string(value)) return envelope_error(c, category, tool, MCP_DISPATCH_TOOL_ERROR, json_string_value(value), NULL);
  if (json_is_object(value)) {
    json_t *extra = json_deep_copy(value);
    json_t *msg = json_object_get(value, "error");
    char *dumped = NULL;
    const char *m = "tool failed";
    if (json_is_string(msg)) m = json_string_value(msg);
    else if (msg) m = dumped = jwrite_dumps(msg, 0);
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
  alloc_watch w = alloc_watch_begin();
  json_t *r = json_object();
  if (!r) {
    (void)alloc_watch_end(w);
    return NULL;
  }
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
      if (strcmp(k, "duration_ms") == 0) continue; /* "status":"error" stays: Python callers test it */
      json_object_set(structured, k, v);
    }
  }
  char *text = jwrite_dumps(structured, 0); /* NULL: out of memory, which the watch sees */
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
  if (alloc_watch_end(w)) { /* never a CallToolResult with a part missing */
    json_decref(r);
    return NULL;
  }
  return r;
}

/* ---------- call objects ---------- */

static void dispatcher_unref(mcp_dispatcher *d);

/* start_us: when the call began (clock_mono_us), 0 = now. */
static mcp_call *call_new(mcp_dispatcher *d, int64_t start_us) {
  mcp_call *c = NULL;
  if (d->spare && ON_LOOP(d)) {
    c = d->spare;
    d->spare = c->xq_next;
    d->nspare--;
    spare_unpoison(c);
  } else if (!(c = malloc(sizeof *c))) {
    return NULL;
  }
  memset(c, 0, sizeof *c);
  c->d = d;
  c->root = c;
  atomic_init(&c->refs, 1);
  atomic_init(&c->cancel, false);
  atomic_init(&c->claimed, false);
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  c->start_us = start_us > 0 ? start_us : clock_mono_us();
  c->duration_us = -1;
  atomic_fetch_add(&d->refs, 1);
  return c;
}

static void call_unref(mcp_call *c);

static void call_free(mcp_call *c) {
  mcp_dispatcher *d = c->d;
  mcp_call *root = c->root != c ? c->root : NULL;
  json_decref(c->args);
  json_decref(c->progress_token);
  json_decref(c->result);
  json_decref(c->xresult);
  json_decref(c->pre_envelope);
  json_decref(c->kid_env);
  json_decref(c->lazy_envelope);
  json_decref(c->rpc_id);
  if (c->ext && c->ext_free) c->ext_free(c->ext);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  if (d->nspare < CALL_SPARE_MAX && ON_LOOP(d)) { /* freed with d (dispatcher_unref) */
    c->xq_next = d->spare;
    d->spare = c;
    d->nspare++;
    spare_poison(c);
  } else {
    free(c);
  }
  if (root) call_unref(root); /* a kid's hold on its root */
  dispatcher_unref(d);
}

static void call_ref(mcp_call *c) { atomic_fetch_add(&c->refs, 1); }
static void call_unref(mcp_call *c) {
  int before = atomic_fetch_sub(&c->refs, 1);
  assert(before > 0);
  if (before == 1) call_free(c);
}

static void timer_closed(uv_handle_t *h) { call_unref(h->data); }

/* Wakes sleepers and marks cancelled. Any thread. */
static void call_signal_cancel(mcp_call *c) {
  mcp_call *root = c->root;
  pthread_mutex_lock(&root->mu);
  atomic_store(&c->cancel, true);
  pthread_cond_broadcast(&root->cv);
  pthread_mutex_unlock(&root->mu);
}

static bool call_cancel_requested(const mcp_call *c) {
  return atomic_load(&c->cancel) || atomic_load(&c->root->cancel);
}

static void flush_events(mcp_dispatcher *d);
static void ready_push(mcp_dispatcher *d, mcp_call *c);

static void live_unlink(mcp_call *c) {
  if (c->live_prev) c->live_prev->live_next = c->live_next;
  else c->d->live = c->live_next;
  if (c->live_next) c->live_next->live_prev = c->live_prev;
  c->live_prev = c->live_next = NULL;
}

static void live_link(mcp_call *c) {
  mcp_dispatcher *d = c->d;
  c->live_prev = NULL;
  c->live_next = d->live;
  if (d->live) d->live->live_prev = c;
  d->live = c;
}

static void kid_unlink(mcp_call *k) {
  mcp_call *root = k->root;
  if (k->kid_prev) k->kid_prev->kid_next = k->kid_next;
  else if (root->kids == k) root->kids = k->kid_next;
  if (k->kid_next) k->kid_next->kid_prev = k->kid_prev;
  k->kid_prev = k->kid_next = NULL;
}

/* Loop thread: tells a pending tool that its answer is no longer wanted (at most once, never
 * after its completion was seen). */
static void call_fire_cancel(mcp_call *c) {
  if (!c->pending || c->tool_done || c->cancel_fired || !c->cancel_fn) return;
  c->cancel_fired = true;
  call_ref(c);
  c->cancel_fn(c, c->cancel_ud);
  call_unref(c);
}

static void call_cancel_kids(mcp_call *root);
static void tool_demote(mcp_dispatcher *d, const mcp_tool *t, const char *why, int64_t us, bool strike);

/* ---------- the access log ---------- */

static void access_write(mcp_dispatcher *d) {
  if (jwrite_len(&d->access) && !jwrite_error(&d->access))
    log_write_lines(jwrite_ptr(&d->access), jwrite_len(&d->access));
  jwrite_reset(&d->access);
}

static void access_flush_cb(uv_check_t *h) {
  uv_check_stop(h);
  access_write(h->data);
}

/* One line per finished top-level call, built by hand (no jansson) and written with the other
 * lines of this loop iteration. Loop thread. */
/* ,"trace_id":…,"rpc_id":…,"transport":…,"peer_id":… of a call's scope (trace_scope_log_fields
 * for a line built by hand). */
static void access_log_trace(jwrite *w, const trace_scope *sc) {
  if (trace_valid(&sc->trace)) {
    char hex[TRACE_ID_HEX + 1];
    trace_id_hex(&sc->trace, hex);
    jwrite_lit(w, ",\"trace_id\":\"");
    jwrite_raw(w, hex, TRACE_ID_HEX);
    jwrite_byte(w, '"');
  }
  if (sc->rpc_id) {
    jwrite_lit(w, ",\"rpc_id\":");
    jwrite_json(w, sc->rpc_id);
  }
  if (sc->transport && *sc->transport) {
    jwrite_lit(w, ",\"transport\":");
    jwrite_cstr(w, sc->transport);
  }
  if (sc->peer_id && *sc->peer_id) {
    jwrite_lit(w, ",\"peer_id\":");
    jwrite_cstr(w, sc->peer_id);
  }
}

static void access_log(mcp_call *c, mcp_dispatch_status st, const char *tool) {
  mcp_dispatcher *d = c->d;
  if (d->access_log == MCP_ACCESS_LOG_OFF) return;
  log_level lv = d->access_log == MCP_ACCESS_LOG_ON || st != MCP_DISPATCH_OK ? LOG_INFO : LOG_DEBUG;
  if (!log_enabled(lv)) return;
  jwrite *w = &d->access;
  if (jwrite_error(w)) jwrite_reset(w); /* a line that did not fit was dropped: start over */
  size_t mark = jwrite_len(w);
  char ts[LOG_TS_MAX];
  size_t tn = log_timestamp(ts);
  jwrite_lit(w, "{\"ts\":\"");
  jwrite_raw(w, ts, tn);
  jwrite_lit(w, "\",\"level\":\"");
  jwrite_raw(w, log_level_name(lv), strlen(log_level_name(lv)));
  jwrite_lit(w, "\",\"msg\":\"dispatch\",\"request_id\":\"");
  jwrite_raw(w, c->request_id, strlen(c->request_id));
  jwrite_lit(w, "\",\"tool\":");
  jwrite_str(w, tool, strlen(tool));
  jwrite_lit(w, ",\"status\":\"");
  jwrite_raw(w, mcp_dispatch_status_name(st), strlen(mcp_dispatch_status_name(st)));
  jwrite_lit(w, "\",\"duration_ms\":");
  jwrite_fixed(w, call_duration_us(c), MCP_DURATION_DECIMALS);
  access_log_trace(w, &c->root->scope); /* the fields util/log adds to other lines */
  jwrite_lit(w, "}\n");
  if (jwrite_error(w)) { /* logging is best effort: this line is lost, the others stay */
    jwrite_truncate(w, mark);
    w->err = 0;
    return;
  }
  if (jwrite_len(w) >= 64 * 1024 || !d->has_access_flush) {
    access_write(d);
  } else if (!uv_is_active((uv_handle_t *)&d->access_flush)) {
    uv_check_start(&d->access_flush, access_flush_cb);
  }
}

/* Loop thread: the single place a call finishes. Takes envelope (stolen); NULL with st OK for a
 * lazy_envelope success, otherwise NULL means it could not be built (out of memory). */
static void call_complete(mcp_call *c, mcp_dispatch_status st, json_t *envelope) {
  assert(ON_LOOP(c->d));
  if (c->completed) {
    json_decref(envelope);
    return;
  }
  c->completed = true;
  if (!c->is_kid) c->d->inflight--;
  else kid_unlink(c);
  live_unlink(c);
  if (OBS_HOT && !c->is_kid) { /* one sample per top-level call, whoever is told */
    unsigned tool = mcp_tool_metric_label(c->tool);
    metrics_inc(&g_tool_calls, metrics_series2(&g_tool_calls, tool, (unsigned)st < N_STATUS ? (unsigned)st : MCP_DISPATCH_INTERNAL));
    metrics_observe_us(&g_tool_duration, tool, (uint64_t)call_duration_us(c));
  }
  const trace_scope *outer = OBS_HOT ? trace_scope_enter(&c->root->scope) : NULL;
  if (!c->detached && c->done) {
    bool lazy = !envelope && st == MCP_DISPATCH_OK && c->lazy_env;
    if (!envelope && !lazy) { /* the outcome could not be built: out of memory */
      st = MCP_DISPATCH_INTERNAL;
      envelope = json_pack("{s:s, s:s, s:s}", "status", "error", "error", "out of memory", "error_type", "internal");
    }
    if (!c->is_kid) {
      const mcp_tool_def *def = mcp_tool_def_of(c->tool);
      const char *tname = def ? def->name : json_string_value(json_object_get(envelope, "tool"));
      access_log(c, st, tname ? tname : "?");
    }
    mcp_call_outcome o = {.status = st,
                          .envelope = envelope,
                          .tool = c->tool,
                          .value = st == MCP_DISPATCH_OK ? c->result : NULL,
                          .request_id = c->request_id,
                          .duration_us = call_duration_us(c),
                          .call = c};
    c->done(c->done_ud, &o);
    json_decref(c->lazy_envelope); /* built during the callback, if anyone asked */
    c->lazy_envelope = NULL;
  }
  if (OBS_HOT) trace_scope_leave(outer);
  json_decref(envelope);
  if (c->has_timer) {
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
  } else {
    call_unref(c);
  }
}

static json_t *timeout_envelope(mcp_call *c) {
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  char msg[96];
  snprintf(msg, sizeof msg, "deadline exceeded after %lld ms", (long long)(c->deadline_ms - c->start_us / 1000));
  return envelope_error(c, def->category, def->name, MCP_DISPATCH_TIMEOUT, msg, NULL);
}

/* Builds the outcome of a call whose handler finished (its result or its tool's completion).
 * Loop thread. */
static void call_complete_ran(mcp_call *c) {
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  if (call_cancel_requested(c) && !c->timed_out) {
    call_complete(c, MCP_DISPATCH_CANCELLED,
                  envelope_error(c, def->category, def->name, MCP_DISPATCH_CANCELLED, "cancelled by the caller", NULL));
    return;
  }
  if (c->ran && clock_mono_ms() >= c->deadline_ms) { /* finished, but too late: same as the timer */
    call_complete(c, MCP_DISPATCH_TIMEOUT, timeout_envelope(c));
    return;
  }
  if (c->pre_envelope) { /* validation failed on the worker */
    json_t *e = c->pre_envelope;
    c->pre_envelope = NULL;
    call_complete(c, c->pre_status, e);
    return;
  }
  if (c->tstatus == MCP_TOOL_OK) {
    call_complete(c, MCP_DISPATCH_OK, c->lazy_env ? NULL : envelope_success(c, def->category, def->name, c->result));
  } else {
    call_complete(c, MCP_DISPATCH_TOOL_ERROR, envelope_tool_error(c, def->category, def->name, c->result));
  }
}

/* Loop thread: does what is due once the handler returned or the tool's completion arrived. */
static void call_settle(mcp_call *c) {
  if (!c->returned) {
    /* not run (pre-check error, or skipped) or still running on a worker: work_done settles.
     * A pre-check error whose envelope could not be built (out of memory) still completes:
     * call_complete answers "internal" for a NULL envelope. */
    if ((c->pre_envelope || c->pre_status != MCP_DISPATCH_OK) && !c->completed) {
      json_t *e = c->pre_envelope;
      c->pre_envelope = NULL;
      call_complete(c, c->pre_status, e);
    }
    return;
  }
  if (c->tstatus != MCP_TOOL_PENDING) {
    if (c->tool_done && c->xresult) { /* a completion for a call that was not pending */
      log_error("dispatch: mcp_call_complete on a call whose handler did not return pending; ignored",
                "{s:s}", "request_id", c->request_id);
      json_decref(c->xresult);
      c->xresult = NULL;
    }
    if (!c->completed) {
      if (c->ran || c->pre_envelope) call_complete_ran(c);
      else call_complete(c, MCP_DISPATCH_INTERNAL, NULL);
    }
    return;
  }
  if (!c->tool_done) {
    if (!c->pending) {
      c->pending = true;
      call_ref(c); /* the pending tool's */
    }
    /* the answer may already be unwanted (cancelled or timed out while the handler ran) */
    if (c->completed || call_cancel_requested(c) || clock_mono_ms() >= c->deadline_ms) call_fire_cancel(c);
    return;
  }
  /* the tool completed: its result becomes the handler's */
  bool held = c->pending;
  c->pending = false;
  c->tstatus = c->xstatus == MCP_TOOL_OK ? MCP_TOOL_OK : MCP_TOOL_ERROR;
  json_decref(c->result);
  c->result = c->xresult;
  c->xresult = NULL;
  c->ran = true;
  if (!c->completed) call_complete_ran(c);
  if (held) call_unref(c);
}

static void call_timer_cb(uv_timer_t *t) {
  mcp_call *c = t->data;
  if (c->completed) return;
  /* libuv times the timer from the loop's cached clock, which lags when the loop was busy
   * before the call started: never answer "timeout" before the deadline itself */
  int64_t left = c->deadline_ms - clock_mono_ms();
  if (left > 0) {
    uv_timer_start(t, call_timer_cb, (uint64_t)left, 0);
    return;
  }
  c->timed_out = true;
  call_signal_cancel(c);
  call_ref(c);
  flush_events(c->d);
  call_complete(c, MCP_DISPATCH_TIMEOUT, timeout_envelope(c));
  call_fire_cancel(c);
  call_cancel_kids(c);
  call_unref(c);
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
  int vr = mcp_schema_validate(mcp_tool_input_schema(c->tool), c->args, err, sizeof err);
  if (vr == -ENOMEM) { /* no verdict on the arguments */
    c->pre_status = MCP_DISPATCH_INTERNAL;
    c->pre_envelope = envelope_error(c, def->category, def->name, MCP_DISPATCH_INTERNAL, "out of memory", NULL);
    return false;
  }
  if (vr != 0) {
    char msg[600];
    snprintf(msg, sizeof msg, "Invalid arguments: %s", err[0] ? err : "schema validation failed");
    c->pre_status = MCP_DISPATCH_INVALID_ARGUMENTS;
    c->pre_envelope = envelope_error(c, def->category, def->name, MCP_DISPATCH_INVALID_ARGUMENTS, msg, NULL);
    return false;
  }
  return true;
}

/* Runs the handler on the current thread (a worker, or the loop for INLINE / ASYNC tools). The
 * loop learns the outcome in work_done, or right after for the loop-run kinds. */
static void call_run_handler(mcp_call *c, bool validate) {
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  if (validate && !call_validate(c)) return;
  if (mcp_call_cancelled(c)) return; /* cancelled or timed out while queued */
  json_t *res = NULL;
  const trace_scope *outer = OBS_HOT ? trace_scope_enter(&c->root->scope) : NULL;
  mcp_tool_status ts = def->fn(c, c->args, &res, def->ud);
  if (OBS_HOT) trace_scope_leave(outer);
  if (ts == MCP_TOOL_PENDING) {
    /* only MCP_TOOL_ASYNC handlers may return pending (tool.h); a top-level call still copes */
    assert(def->flags & MCP_TOOL_ASYNC);
    if (res) { /* a pending handler gives no result */
      log_error("dispatch: a pending handler set a result; dropped", "{s:s}", "tool", def->name);
      json_decref(res);
    }
    c->tstatus = MCP_TOOL_PENDING;
    return;
  }
  c->result = res;
  c->tstatus = ts == MCP_TOOL_OK ? MCP_TOOL_OK : MCP_TOOL_ERROR;
  c->ran = true;
}

static void call_work(void *arg) {
  mcp_call *c = arg;
  if (atomic_exchange(&c->claimed, true)) return; /* cancelled while queued: already answered */
  call_run_handler(c, true);
}

static void call_work_done(void *arg) {
  mcp_call *c = arg;
  flush_events(c->d);
  c->returned = c->ran || c->tstatus == MCP_TOOL_PENDING;
  if (!c->returned && !c->completed && !c->pre_envelope && c->pre_status == MCP_DISPATCH_OK) {
    /* skipped: cancelled while queued (a timeout completes from the timer) */
    const mcp_tool_def *def = mcp_tool_def_of(c->tool);
    call_complete(c, MCP_DISPATCH_CANCELLED,
                  envelope_error(c, def->category, def->name, MCP_DISPATCH_CANCELLED, "cancelled by the caller", NULL));
  } else {
    call_settle(c);
  }
  call_unref(c); /* the job's */
}

/* Loop thread: runs an INLINE or ASYNC handler now (arguments already validated). */
static void call_run_on_loop(mcp_call *c) {
  call_run_handler(c, false);
  c->returned = c->ran || c->tstatus == MCP_TOOL_PENDING;
  if (c->tstatus == MCP_TOOL_PENDING) {
    /* takes the pending reference; a completion given inside the handler is already on the
     * ready list and settles from there (never inside mcp_dispatch_start) */
    if (!c->tool_done) call_settle(c);
  } else {
    ready_push(c->d, c); /* completes from the loop's next turn, never inside start */
  }
}

/* Loop thread: cancels every kid of a root (its cancellation, deadline or detach). */
static void call_cancel_kids(mcp_call *root) {
  for (mcp_call *k = root->kids, *next; k; k = next) {
    next = k->kid_next;
    call_signal_cancel(k);
    call_ref(k);
    call_fire_cancel(k);
    call_unref(k);
  }
}

/* ---------- dispatcher ---------- */

static void ready_push(mcp_dispatcher *d, mcp_call *c) {
  call_ref(c); /* the ready list's */
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
    call_unref(c); /* the event's */
    free(e->message);
    free(e);
    e = next;
  }
}

/* Loop thread: records a tool's completion; the settling happens from the ready list. */
static void call_take_completion(mcp_call *c, mcp_tool_status st, json_t *result) {
  if (c->tool_done) {
    log_error("dispatch: mcp_call_complete called twice; ignored", "{s:s}", "request_id", c->request_id);
    json_decref(result);
    return;
  }
  c->tool_done = true;
  c->xstatus = st;
  c->xresult = result;
  ready_push(c->d, c);
}

static void kid_start(mcp_call *k);

static void dispatcher_async_cb(uv_async_t *h) {
  mcp_dispatcher *d = h->data;
  flush_events(d);
  pthread_mutex_lock(&d->mu);
  mcp_call *x = d->xq_head, *kids = d->kid_head;
  d->xq_head = d->xq_tail = NULL;
  d->kid_head = d->kid_tail = NULL;
  pthread_mutex_unlock(&d->mu);
  while (x) { /* completions from other threads */
    mcp_call *next = x->xq_next;
    json_t *r = x->q_result;
    x->q_result = NULL;
    x->q_queued = false;
    call_take_completion(x, x->q_status, r);
    call_unref(x); /* the queue entry's */
    x = next;
  }
  while (kids) {
    mcp_call *next = kids->xq_next;
    kid_start(kids);
    kids = next;
  }
  mcp_call *c = d->ready_head;
  d->ready_head = d->ready_tail = NULL;
  while (c) {
    mcp_call *next = c->ready_next;
    call_settle(c);
    call_unref(c); /* the ready list's */
    c = next;
  }
}

int mcp_dispatcher_new(uv_loop_t *loop, mcp_registry *reg, const mcp_dispatcher_opts *opts, mcp_dispatcher **out) {
  *out = NULL;
  pthread_once(&g_sodium_once, sodium_once);
  mcp_dispatcher *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  d->loop = loop;
  d->loop_thread = pthread_self();
  d->reg = reg;
  d->default_timeout_ms = opts && opts->default_timeout_ms ? opts->default_timeout_ms : MCP_DISPATCH_DEFAULT_TIMEOUT_MS;
  d->access_log = opts ? opts->access_log : MCP_ACCESS_LOG_DEBUG;
  jwrite_init(&d->access, 1024 * 1024, JWRITE_ASCII);
  d->started_ms = clock_mono_ms();
  atomic_init(&d->refs, 1); /* the async handle's */
  pthread_mutex_init(&d->mu, NULL);
  int rc = uv_async_init(loop, &d->async, dispatcher_async_cb);
  if (rc != 0) {
    pthread_mutex_destroy(&d->mu);
    free(d);
    return rc;
  }
  d->async.data = d;
  if (uv_check_init(loop, &d->access_flush) == 0) { /* else each access line is written at once */
    d->access_flush.data = d;
    d->has_access_flush = true;
    atomic_fetch_add(&d->refs, 1); /* the check handle's */
  }
  rc = workpool_new(loop, opts && opts->threads ? opts->threads : WORKPOOL_DEFAULT_THREADS,
                    opts && opts->max_threads ? opts->max_threads : WORKPOOL_DEFAULT_MAX_THREADS, &d->pool);
  if (rc == 0) {
    unsigned lmax = opts && opts->long_threads ? opts->long_threads : MCP_DISPATCH_DEFAULT_LONG_THREADS;
    /* started small: threads are added as long calls arrive, up to lmax */
    rc = workpool_new(loop, lmax < 2 ? lmax : 2, lmax, &d->long_pool);
    if (rc == 0) {
      workpool_set_max_queued(d->long_pool,
                              opts && opts->long_queue ? opts->long_queue : MCP_DISPATCH_DEFAULT_LONG_QUEUE);
      /* threads grown for a burst go back after idling (issue 9: 72 threads and their arenas
       * stayed after an attack) */
      uint32_t idle = opts && opts->idle_exit_ms ? opts->idle_exit_ms : WORKPOOL_DEFAULT_IDLE_EXIT_MS;
      workpool_set_idle_exit(d->pool, workpool_threads(d->pool), idle);
      workpool_set_idle_exit(d->long_pool, workpool_threads(d->long_pool), idle);
    } else {
      d->long_pool = NULL;
    }
  } else {
    d->pool = NULL;
  }
  if (rc != 0) {
    mcp_dispatcher_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

static void dispatcher_unref(mcp_dispatcher *d) {
  if (atomic_fetch_sub(&d->refs, 1) != 1) return;
  while (d->spare) {
    mcp_call *next = d->spare->xq_next;
    spare_unpoison(d->spare);
    free(d->spare);
    d->spare = next;
  }
  pthread_mutex_destroy(&d->mu);
  jwrite_free(&d->access);
  free(d);
}

static void dispatcher_closed(uv_handle_t *h) { dispatcher_unref(h->data); }

void mcp_dispatcher_free(mcp_dispatcher *d) {
  if (!d) return;
  assert(ON_LOOP(d));
  d->shutting_down = true;
  pthread_mutex_lock(&d->mu);
  d->closing = true; /* invokers start no new kids from here on */
  mcp_call *kids = d->kid_head;
  d->kid_head = d->kid_tail = NULL;
  pthread_mutex_unlock(&d->mu);
  /* kids queued and never started: their invokers (workers the pools wait for below) must wake */
  while (kids) {
    mcp_call *next = kids->xq_next;
    live_link(kids);
    const mcp_tool_def *def = mcp_tool_def_of(kids->tool);
    call_complete(kids, MCP_DISPATCH_SHUTTING_DOWN,
                  envelope_error(kids, def->category, def->name, MCP_DISPATCH_SHUTTING_DOWN, "Server is shutting down", NULL));
    kids = next;
  }
  /* Callers should have drained or detached every call; any left is detached now (kids are
   * completed, so their invokers wake), so no timer or callback can outlive the dispatcher. */
  while (d->live) {
    mcp_call *c = d->live;
    if (!c->is_kid)
      log_warn("dispatch: freed with a call in flight; detaching it", "{s:s}", "request_id", c->request_id);
    mcp_dispatch_detach(c);
  }
  if (d->pool) workpool_free(d->pool); /* runs work_done for every job */
  if (d->long_pool) workpool_free(d->long_pool);
  d->pool = d->long_pool = NULL;
  dispatcher_async_cb(&d->async); /* settles what is on the ready list and the queues */
  pthread_mutex_lock(&d->mu);
  d->closed = true;
  mcp_call *x = d->xq_head;
  d->xq_head = d->xq_tail = NULL;
  pthread_mutex_unlock(&d->mu);
  while (x) { /* arrived after the last turn: dropped */
    mcp_call *next = x->xq_next;
    json_decref(x->q_result);
    x->q_result = NULL;
    x->tool_done = true;
    if (x->pending) {
      x->pending = false;
      call_unref(x);
    }
    call_unref(x); /* the queue entry's */
    x = next;
  }
  if (d->has_access_flush) {
    access_flush_cb(&d->access_flush); /* the check stops; the last lines go out */
    uv_close((uv_handle_t *)&d->access_flush, dispatcher_closed);
  }
  uv_close((uv_handle_t *)&d->async, dispatcher_closed);
}

mcp_registry *mcp_dispatcher_registry(const mcp_dispatcher *d) { return d ? d->reg : NULL; }
workpool *mcp_dispatcher_pool(const mcp_dispatcher *d) { return d ? d->pool : NULL; }
workpool *mcp_dispatcher_long_pool(const mcp_dispatcher *d) { return d ? d->long_pool : NULL; }
void mcp_dispatcher_shutdown(mcp_dispatcher *d) { d->shutting_down = true; }
size_t mcp_dispatcher_inflight(const mcp_dispatcher *d) { return d->inflight; }
double mcp_dispatcher_uptime_s(const mcp_dispatcher *d) { return (double)(clock_mono_ms() - d->started_ms) / 1000.0; }

static bool may_use(bool remote, const mcp_tool *t) {
  return !remote || (mcp_tool_def_of(t)->flags & MCP_TOOL_REMOTE);
}

static bool tool_demoted(const mcp_dispatcher *d, const mcp_tool *t) {
  for (size_t i = 0; i < d->ninl; i++)
    if (d->inl[i].tool == t) return d->inl[i].demoted;
  return false;
}

/* Loop thread: an MCP_TOOL_INLINE tool blocked (strike = false: at once) or took too long on
 * the loop (strike = true: after MCP_DISPATCH_INLINE_STRIKES runs in a row, so that one run
 * slowed by the machine does not count). A demoted tool is not run inline again (tool.h): the
 * rule "a tool that blocks never runs on the loop" is checked, not trusted. */
static void tool_demote(mcp_dispatcher *d, const mcp_tool *t, const char *why, int64_t us, bool strike) {
  if (!t) return;
  size_t i = 0;
  while (i < d->ninl && d->inl[i].tool != t) i++;
  if (i == d->ninl) {
    if (d->ninl == sizeof d->inl / sizeof d->inl[0]) i = d->ninl - 1; /* full: the last slot is reused */
    else d->ninl++;
    d->inl[i].tool = t;
    d->inl[i].strikes = 0;
    d->inl[i].demoted = false;
  }
  if (d->inl[i].demoted) return;
  if (strike && ++d->inl[i].strikes < MCP_DISPATCH_INLINE_STRIKES) return;
  d->inl[i].demoted = true;
  log_error("dispatch: an inline tool blocked the loop; it runs on the worker pool from now on", "{s:s, s:s, s:I}",
            "tool", mcp_tool_def_of(t)->name, "reason", why, "handler_us", (json_int_t)us);
}

/* Loop thread: an inline run within the budget ends a run of strikes. */
static void tool_inline_ok(mcp_dispatcher *d, const mcp_tool *t) {
  for (size_t i = 0; i < d->ninl; i++)
    if (d->inl[i].tool == t) d->inl[i].strikes = 0;
}

/* Loop thread: runs an INLINE handler now, and completes it in place when the caller allows
 * (sync_done) — no timer, no pool hop, no uv_async round trip. */
static void call_run_inline(mcp_call *c) {
  mcp_dispatcher *d = c->d;
  if (!call_validate(c)) {
    if (c->sync_done) call_settle(c);
    else ready_push(d, c);
    return;
  }
  int64_t t0 = clock_mono_us();
  call_run_handler(c, false);
  int64_t took = clock_mono_us() - t0;
  if (took > MCP_DISPATCH_INLINE_BUDGET_US) tool_demote(d, c->tool, "ran over the inline budget", took, true);
  else if (d->ninl) tool_inline_ok(d, c->tool);
  if (c->tstatus == MCP_TOOL_PENDING) { /* only MCP_TOOL_ASYNC tools may (tool.h) */
    log_error("dispatch: an inline tool returned pending", "{s:s}", "tool", mcp_tool_def_of(c->tool)->name);
    c->tstatus = MCP_TOOL_ERROR;
    c->result = json_string("the tool returned no result");
    c->ran = true;
  }
  if (!c->ran) { /* not run: its deadline had passed already */
    c->pre_status = MCP_DISPATCH_TIMEOUT;
    c->pre_envelope = timeout_envelope(c);
  }
  c->returned = c->ran;
  if (c->sync_done) call_settle(c); /* completes now: done runs, the loop's reference goes */
  else ready_push(d, c);            /* completes from the loop's next turn */
}

/* Loop thread: the call passed every check; runs it where its class says. */
static void call_launch(mcp_call *c) {
  mcp_dispatcher *d = c->d;
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  if ((def->flags & MCP_TOOL_INLINE) && !tool_demoted(d, c->tool) && !c->is_kid) {
    call_run_inline(c);
    return;
  }
  int rc = uv_timer_init(d->loop, &c->timer);
  if (rc == 0) {
    c->timer.data = c;
    c->has_timer = true;
    int64_t left = c->deadline_ms - clock_mono_ms();
    rc = uv_timer_start(&c->timer, call_timer_cb, left > 0 ? (uint64_t)left : 0, 0);
  }
  if (rc == 0 && (def->flags & MCP_TOOL_ASYNC)) {
    if (c->is_kid || call_validate(c)) call_run_on_loop(c); /* a kid was validated by its invoker */
    else ready_push(d, c);
    return;
  }
  if (rc == 0) {
    call_ref(c); /* the job's */
    rc = workpool_submit_for(c->is_long ? d->long_pool : d->pool, mcp_call_pool_key(c), call_work, call_work_done, c);
    if (rc != 0) call_unref(c);
    else c->in_pool = true;
  }
  if (rc != 0) {
    mcp_dispatch_status st = rc == -EBUSY ? MCP_DISPATCH_BUSY : MCP_DISPATCH_INTERNAL;
    c->pre_status = st;
    c->pre_envelope = envelope_error(c, def->category, def->name, st,
                                     st == MCP_DISPATCH_BUSY
                                         ? "Server busy: every thread for long-running calls is taken and the queue "
                                           "is full; retry later"
                                         : "cannot schedule the call",
                                     NULL);
    ready_push(d, c);
  }
}

int mcp_dispatch_start(mcp_dispatcher *d, const mcp_call_request *req, mcp_call_done_fn done, void *ud,
                       mcp_call **out) {
  if (out) *out = NULL;
  if (!d || !req || !req->tool || !req->auth) return -EINVAL;
  assert(ON_LOOP(d));
  mcp_call *c = call_new(d, req->start_us);
  if (!c) return -ENOMEM;
  if (req->request_id) snprintf(c->request_id, sizeof c->request_id, "%s", req->request_id);
  else mcp_uuid4(c->request_id);
  const mcp_tool *t = mcp_registry_find(d->reg, req->tool);
  if (t && !may_use(req->remote, t)) t = NULL;
  /* Arguments: a deep copy, since validation may fill defaults and a pooled handler reads them
   * on another thread — unless the caller's tree is shared read-only, the tool runs inline (or
   * is MCP_TOOL_ASYNC: on the loop too, e.g. task_queue.rpc) and its schema fills nothing (the
   * hot path: a parsed request is used in place). */
  if (!req->args) c->args = json_object();
  else if (req->args_shared && t &&
           (((mcp_tool_def_of(t)->flags & MCP_TOOL_INLINE) && !tool_demoted(d, t)) ||
            (mcp_tool_def_of(t)->flags & MCP_TOOL_ASYNC)) &&
           !mcp_tool_fills_defaults(t))
    c->args = json_incref(req->args);
  else c->args = json_deep_copy(req->args);
  /* strings and integers only (checked by the session), never changed: shared */
  c->progress_token = json_incref(req->progress_token);
  c->auth_copy = *req->auth; /* a plain value (auth/auth.h) */
  c->auth = &c->auth_copy;
  if (!c->args) {
    call_free(c);
    return -ENOMEM;
  }
  c->sync_done = req->sync_done;
  c->lazy_env = req->lazy_envelope;
  if (!OBS_HOT) (void)0;
  else if (req->trace && trace_valid(req->trace)) c->scope.trace = *req->trace;
  else trace_child(trace_current(), &c->scope.trace);
  c->rpc_id = json_incref(req->rpc_id);
  c->scope.rpc_id = c->rpc_id;
  c->scope.request_id = c->request_id;
  c->scope.transport = req->transport ? req->transport : "internal";
  c->scope.peer_id = c->auth_copy.peer_id;
  c->remote = req->remote;
  c->sink = req->sink;
  c->ext = req->ext;
  c->ext_free = req->ext_free;
  c->done = done;
  c->done_ud = ud;
  d->inflight++;
  live_link(c);
  if (out) *out = c; /* before anything can complete it (sync_done) */
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
    auth_audit_refused(req->auth, auth_check(req->auth, &def->scopes, clock_wall_s()), "tools/call", def->name, NULL);
    c->pre_status = MCP_DISPATCH_FORBIDDEN;
    c->pre_envelope = envelope_error(c, def->category, def->name, MCP_DISPATCH_FORBIDDEN,
                                     "Forbidden: the caller lacks a scope this tool requires", NULL);
    ready_push(d, c);
    return 0;
  }
  uint32_t timeout = req->timeout_ms ? req->timeout_ms : def->timeout_ms ? def->timeout_ms : d->default_timeout_ms;
  c->deadline_ms = c->start_us / 1000 + (int64_t)timeout;
  c->is_long = (def->flags & MCP_TOOL_LONG) || (def->is_long && def->is_long(c, c->args, def->ud));
  call_launch(c);
  return 0;
}

void mcp_dispatch_cancel(mcp_call *c) {
  if (!c || c->completed) return;
  assert(ON_LOOP(c->d));
  call_signal_cancel(c);
  call_ref(c);
  if (c->in_pool && !atomic_exchange(&c->claimed, true)) {
    /* still waiting for a thread (a full long pool may hold it for minutes): answered from the
     * loop's next turn, not when a thread reaches the job (which then only drops its reference) */
    const mcp_tool_def *def = mcp_tool_def_of(c->tool);
    c->pre_status = MCP_DISPATCH_CANCELLED;
    c->pre_envelope = envelope_error(c, def->category, def->name, MCP_DISPATCH_CANCELLED, "cancelled by the caller", NULL);
    ready_push(c->d, c);
  }
  call_fire_cancel(c);
  call_cancel_kids(c);
  call_unref(c);
}

void mcp_dispatch_detach(mcp_call *c) {
  if (!c || c->completed) return;
  assert(ON_LOOP(c->d));
  call_ref(c);
  call_signal_cancel(c);
  if (c->is_kid) {
    /* a kid's completion only wakes its invoker, who must always be woken */
    const mcp_tool_def *def = mcp_tool_def_of(c->tool);
    call_complete(c, MCP_DISPATCH_CANCELLED,
                  envelope_error(c, def->category, def->name, MCP_DISPATCH_CANCELLED, "cancelled by the caller", NULL));
  } else {
    /* Completes silently now. If it sits on the ready list or has a worker job, those paths see
     * `completed` and only drop their references. */
    c->detached = true;
    call_complete(c, MCP_DISPATCH_CANCELLED, NULL);
  }
  call_fire_cancel(c);
  call_cancel_kids(c);
  call_unref(c);
}

/* ---------- handler-side context (tool.h) ---------- */

bool mcp_call_cancelled(const mcp_call *c) {
  return atomic_load(&c->cancel) || atomic_load(&c->root->cancel) || clock_mono_ms() >= c->deadline_ms;
}
int64_t mcp_call_deadline_ms(const mcp_call *c) { return c->deadline_ms; }
const mcp_auth *mcp_call_auth(const mcp_call *c) { return c->auth; }
const char *mcp_call_request_id(const mcp_call *c) { return c->request_id; }
uint64_t mcp_call_pool_key(const mcp_call *c) {
  const mcp_auth *a = c->auth;
  return workpool_key_of(a->peer_id[0] ? a->peer_id : a->remote_addr);
}
const trace_ctx *mcp_call_trace(const mcp_call *c) { return &c->root->scope.trace; }
mcp_registry *mcp_call_registry(const mcp_call *c) { return c->d->reg; }
mcp_dispatcher *mcp_call_dispatcher(const mcp_call *c) { return c->d; }
bool mcp_call_is_remote(const mcp_call *c) { return c->remote; }
int mcp_call_depth(const mcp_call *c) { return c->depth; }
bool mcp_call_may_use(const mcp_call *c, const mcp_tool *t) { return t && may_use(c->remote, t); }
const mcp_tool *mcp_call_tool(const mcp_call *c) { return c->tool; }
void *mcp_call_ext(const mcp_call *c) { return c->root->ext; }
json_t *mcp_call_args(const mcp_call *c) { return c->args; }
uv_loop_t *mcp_dispatcher_loop(const mcp_dispatcher *d) { return d->loop; }

void mcp_call_complete(mcp_call *c, mcp_tool_status st, json_t *result) {
  mcp_dispatcher *d = c->d;
  if (st != MCP_TOOL_OK) st = MCP_TOOL_ERROR;
  if (ON_LOOP(d)) {
    if (d->closed) { /* after mcp_dispatcher_free: nobody waits; drop it */
      json_decref(result);
      if (c->tool_done) return;
      c->tool_done = true;
      if (c->pending) {
        c->pending = false;
        call_unref(c);
      }
      return;
    }
    call_take_completion(c, st, result);
    return;
  }
  pthread_mutex_lock(&d->mu);
  if (d->closed) {
    pthread_mutex_unlock(&d->mu);
    json_decref(result);
    if (c->tool_done) return; /* the loop no longer touches the call: this thread owns the flags */
    c->tool_done = true;
    if (c->pending) {
      c->pending = false;
      call_unref(c);
    }
    return;
  }
  if (c->q_queued) { /* already queued once */
    pthread_mutex_unlock(&d->mu);
    log_error("dispatch: mcp_call_complete called twice; ignored", "{s:s}", "request_id", c->request_id);
    json_decref(result);
    return;
  }
  call_ref(c); /* the queue entry's */
  c->q_queued = true;
  c->q_status = st;
  c->q_result = result;
  c->xq_next = NULL;
  if (d->xq_tail) d->xq_tail->xq_next = c;
  else d->xq_head = c;
  d->xq_tail = c;
  pthread_mutex_unlock(&d->mu);
  uv_async_send(&d->async);
}

void mcp_call_on_cancel(mcp_call *c, mcp_call_cancel_fn fn, void *ud) {
  assert(ON_LOOP(c->d));
  c->cancel_fn = fn;
  c->cancel_ud = ud;
  /* registered after the answer became unwanted: tell the tool now */
  if (fn && c->pending && (c->completed || mcp_call_cancelled(c))) call_fire_cancel(c);
}

static void push_event(mcp_call *root, call_event *e) {
  mcp_dispatcher *d = root->d;
  e->root = root;
  pthread_mutex_lock(&d->mu);
  if (d->closed) {
    pthread_mutex_unlock(&d->mu);
    free(e->message);
    free(e);
    return;
  }
  call_ref(root); /* the event's: flushed after the call may have completed */
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

static void deadline_timespec(int64_t until_ms, struct timespec *ts) {
  int64_t left = until_ms - clock_mono_ms();
  if (left < 0) left = 0;
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += left / 1000;
  ts->tv_nsec += (long)(left % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

bool mcp_call_sleep(mcp_call *call, int64_t ms) {
  if (ON_LOOP(call->d)) {
    /* A handler running on the loop thread (MCP_TOOL_INLINE) must never block: the sleep is
     * refused and the tool runs on the worker pool from its next call on. */
    tool_demote(call->d, call->tool, "mcp_call_sleep on the loop thread", 0, false);
    return mcp_call_cancelled(call);
  }
  mcp_call *root = call->root;
  int64_t until = clock_mono_ms() + (ms > 0 ? ms : 0);
  if (until > call->deadline_ms) until = call->deadline_ms;
  pthread_mutex_lock(&root->mu);
  for (;;) {
    if (atomic_load(&root->cancel) || atomic_load(&call->cancel)) break;
    if (clock_mono_ms() >= until) break;
    struct timespec ts;
    deadline_timespec(until, &ts);
    pthread_cond_timedwait(&root->cv, &root->mu, &ts);
  }
  pthread_mutex_unlock(&root->mu);
  return mcp_call_cancelled(call);
}

/* ---------- kids: ASYNC tools invoked from a worker ---------- */

/* Loop thread: a kid's completion hands the envelope to its invoker. */
static void kid_done(void *ud, const mcp_call_outcome *o) {
  mcp_call *k = ud;
  mcp_call *root = k->root;
  pthread_mutex_lock(&root->mu);
  k->kid_finished = true;
  k->kid_status = o->status;
  k->kid_env = json_incref(o->envelope);
  pthread_cond_broadcast(&root->cv);
  pthread_mutex_unlock(&root->mu);
}

/* Loop thread: starts a kid taken off the queue. */
static void kid_start(mcp_call *k) {
  mcp_call *root = k->root;
  live_link(k);
  k->kid_prev = NULL;
  k->kid_next = root->kids;
  if (root->kids) root->kids->kid_prev = k;
  root->kids = k;
  const mcp_tool_def *def = mcp_tool_def_of(k->tool);
  if (root->completed || call_cancel_requested(k)) {
    k->pre_status = MCP_DISPATCH_CANCELLED;
    k->pre_envelope = envelope_error(k, def->category, def->name, MCP_DISPATCH_CANCELLED, "cancelled by the caller", NULL);
    ready_push(k->d, k);
    return;
  }
  call_launch(k); /* the timer covers a deadline already past */
}

/* Worker thread: runs an ASYNC tool as a kid and waits for its envelope. c is the validated
 * child prepared on the stack by mcp_dispatch_invoke_timeout (its args are taken). */
static mcp_dispatch_status kid_invoke(mcp_call *parent, mcp_call *c, json_t **envelope_out) {
  mcp_dispatcher *d = parent->d;
  const mcp_tool_def *def = mcp_tool_def_of(c->tool);
  mcp_call *k = call_new(d, c->start_us);
  if (k) memcpy(k->request_id, c->request_id, sizeof k->request_id);
  if (!k) {
    *envelope_out = envelope_error(c, def->category, def->name, MCP_DISPATCH_INTERNAL, "out of memory", NULL);
    return MCP_DISPATCH_INTERNAL;
  }
  mcp_call *root = parent->root;
  call_ref(root); /* dropped in call_free(k) */
  k->root = root;
  k->is_kid = true;
  k->depth = c->depth;
  k->auth = c->auth;
  k->remote = c->remote;
  k->tool = c->tool;
  k->args = c->args;
  c->args = NULL;
  k->start_us = c->start_us;
  k->deadline_ms = c->deadline_ms;
  k->done = kid_done;
  k->done_ud = k;
  call_ref(k); /* the invoker's; the other is the loop side's */
  pthread_mutex_lock(&d->mu);
  bool refused = d->closing;
  if (!refused) {
    k->xq_next = NULL;
    if (d->kid_tail) d->kid_tail->xq_next = k;
    else d->kid_head = k;
    d->kid_tail = k;
  }
  pthread_mutex_unlock(&d->mu);
  if (refused) {
    *envelope_out = envelope_error(c, def->category, def->name, MCP_DISPATCH_SHUTTING_DOWN, "Server is shutting down", NULL);
    call_unref(k);
    call_unref(k);
    return MCP_DISPATCH_SHUTTING_DOWN;
  }
  uv_async_send(&d->async);
  pthread_mutex_lock(&root->mu);
  while (!k->kid_finished && clock_mono_ms() < k->deadline_ms + KID_GRACE_MS) {
    struct timespec ts;
    deadline_timespec(k->deadline_ms + KID_GRACE_MS, &ts);
    pthread_cond_timedwait(&root->cv, &root->mu, &ts);
  }
  bool finished = k->kid_finished;
  mcp_dispatch_status st = k->kid_status;
  json_t *env = k->kid_env;
  k->kid_env = NULL;
  pthread_mutex_unlock(&root->mu);
  if (!finished) { /* the loop did not end it in time (it is stuck or gone): give up on it */
    log_warn("dispatch: an asynchronous child call outlived its deadline", "{s:s}", "tool", def->name);
    st = MCP_DISPATCH_TIMEOUT;
    env = envelope_error(c, def->category, def->name, st, "deadline exceeded", NULL);
  }
  call_unref(k); /* the invoker's */
  *envelope_out = env;
  return st;
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
  assert(!ON_LOOP(parent->d)); /* the loop never waits for a tool */
  mcp_call c;
  memset(&c, 0, sizeof c);
  atomic_init(&c.cancel, false);
  atomic_init(&c.refs, 1);
  c.d = parent->d;
  c.root = parent->root;
  c.depth = parent->depth + 1;
  c.auth = parent->auth;
  c.remote = parent->remote;
  c.start_us = clock_mono_us();
  c.duration_us = -1;
  mcp_uuid4(c.request_id);
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
    auth_audit_refused(c.auth, auth_check(c.auth, &def->scopes, clock_wall_s()), "tools/call", def->name, "nested");
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
  } else if (def->flags & MCP_TOOL_ASYNC) { /* on the loop, as a kid; this thread waits */
    st = kid_invoke(parent, &c, &env);
  } else {
    json_t *res = NULL;
    mcp_tool_status ts = def->fn(&c, c.args, &res, def->ud);
    if (ts == MCP_TOOL_PENDING) { /* only ASYNC tools may: a contract violation (tool.h) */
      assert(!"a non-asynchronous tool returned MCP_TOOL_PENDING");
      log_error("dispatch: a tool that is not MCP_TOOL_ASYNC returned pending", "{s:s}", "tool", def->name);
      json_decref(res);
      res = json_string("the tool returned no result");
      ts = MCP_TOOL_ERROR;
    }
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

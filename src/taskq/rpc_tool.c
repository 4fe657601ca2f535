/* rpc_tool.c — the task_queue.rpc tool (see rpc_tool.h).
 *
 * An MCP_TOOL_ASYNC tool: the handler runs on the loop and never blocks.
 *   - submit / claim / complete / task.heartbeat: taskq_handle_async, no pool hop (below);
 *   - every other op but `wait` becomes one job on the dispatcher's short pool (`call_tool` on the
 *     long pool, whose queue bound answers busy), which runs taskq_handle and completes the call
 *     from the worker (one hop back to the loop, as a pool-run tool has);
 *   - `wait` holds no thread (issue 9 item 4): a tq_watch on the task wakes it through a
 *     uv_async when the task ends, a timer ends it at its timeout (and re-reads the task now
 *     and then, for changes another process made to the same file), and only the reads of the
 *     task run on the short pool — in batches, one job at a time for all waits, so a burst of
 *     waits takes one thread. A task the queue knows to be live (submitted through it, not
 *     ended: tq_watch_add_live) is not read first: the watch answers from the finished row. A caller may hold max_waits_per_peer waits at once; more
 *     are answered {"ok":false,"error":"busy"} at once. */
#include "taskq/rpc_tool.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/dispatch.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/workpool.h"

/* Re-reads of a waited task (another process may change it): 1 s, doubling to 16 s. */
#define RPC_WAIT_RECHECK_FIRST_MS 1000u
#define RPC_WAIT_RECHECK_MAX_MS 16000u
#define RPC_PEER_KEY_MAX (AUTH_MAX_PEER_ID + 8)

typedef struct wait_count {
  char key[RPC_PEER_KEY_MAX];
  unsigned n;
} wait_count;

struct rpc_wait;

typedef struct rpc_tool {
  taskq_ctx *ctx;
  wait_count *counts; /* loop thread only: callers holding waits now */
  size_t n_counts, cap_counts;
  size_t waits;       /* every wait in progress */
  /* Reads of waited tasks go in batches: one short pool job at a time reads every task asked
   * for meanwhile, so a burst of waits takes one thread, not one each (loop thread only). */
  struct rpc_wait *todo, *todo_tail;
  bool reader_out;
} rpc_tool;

static bool rpc_cancelled(void *ud) { return mcp_call_cancelled(ud); }

/* The `call_tool` op: the named tool runs as a child of the task_queue.rpc call. */
static int rpc_nested_tool(void *ud, const auth_ctx *auth, const char *tool, json_t *args, int64_t timeout_ms,
                           json_t **result, bool *is_error) {
  mcp_call *call = ud;
  (void)auth; /* the child inherits the parent's auth (which already holds the message token) */
  *result = NULL;
  *is_error = false;
  if (strcmp(tool, TASKQ_RPC_TOOL) == 0) return -ENOENT; /* no recursion through the op table */
  json_t *env = NULL;
  /* the op's timeout_s (already clamped by the op table) bounds the child; the parent's
   * deadline still applies */
  uint32_t tmo = timeout_ms <= 0 ? 0 : timeout_ms > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)timeout_ms;
  mcp_dispatch_status st = mcp_dispatch_invoke_timeout(call, NULL, tool, args, tmo, &env);
  int rc = 0;
  switch (st) {
  case MCP_DISPATCH_OK: *result = json_incref(json_object_get(env, "result")); break;
  case MCP_DISPATCH_TOOL_ERROR:
    *is_error = true;
    *result = json_incref(json_object_get(env, "error"));
    break;
  case MCP_DISPATCH_UNKNOWN_TOOL:
  case MCP_DISPATCH_UNKNOWN_CATEGORY: rc = -ENOENT; break;
  case MCP_DISPATCH_FORBIDDEN: rc = -EPERM; break;
  case MCP_DISPATCH_TIMEOUT: rc = -ETIMEDOUT; break;
  case MCP_DISPATCH_CANCELLED: rc = -ECANCELED; break;
  case MCP_DISPATCH_INVALID_ARGUMENTS:
    *is_error = true;
    *result = json_incref(json_object_get(env, "error"));
    break;
  default: rc = -EIO; break;
  }
  json_decref(env);
  return rc;
}

/* Whether the call's answer goes to the /mcp+p2p/1.0.0 session's result shaper (service/mcpp.c:
 * a task_queue.rpc request of that transport's caller, not a child of another tool), which
 * writes a reply given as text (a JSON string: taskq_handle_async's TASKQ_ASYNC_RAW) straight
 * into the frame. Every other caller gets the reply object. */
static bool raw_ok(const mcp_call *call) {
  const mcp_auth *a = mcp_call_auth(call);
  return a && a->transport == AUTH_TR_MCP_P2P && mcp_call_depth(call) == 0;
}

/* A reply is always an object (or, for raw_ok callers, its text); out of memory becomes a tool
 * error. */
static mcp_tool_status reply_status(json_t **r) {
  if (*r) return MCP_TOOL_OK;
  *r = json_string("out of memory");
  return MCP_TOOL_ERROR;
}

/* ---------------------------------------------------------------- ops on a pool */

typedef struct op_job {
  rpc_tool *rt;
  mcp_call *call;
  json_t *msg; /* a reference to the call's (validated) arguments' message */
} op_job;

static void op_job_work(void *arg) {
  op_job *j = arg;
  taskq_call tc = {.auth = mcp_call_auth(j->call),
                   .cancelled = rpc_cancelled,
                   .cancel_ud = j->call,
                   .tool_call = rpc_nested_tool,
                   .tool_ud = j->call};
  json_t *r = taskq_handle(j->rt->ctx, j->msg, &tc);
  mcp_tool_status st = reply_status(&r);
  mcp_call *call = j->call;
  json_decref(j->msg);
  free(j);
  mcp_call_complete(call, st, r); /* queued to the loop; the call stays valid until here */
}

/* ---------------------------------------------------------------- waits without a thread */

typedef enum { W_READ_FIRST, W_READ_RECHECK, W_READ_FINAL } wait_read;

typedef struct rpc_wait {
  rpc_tool *rt;
  mcp_call *call;
  uv_loop_t *loop;
  workpool *pool;
  char task_id[33];
  char key[RPC_PEER_KEY_MAX]; /* counted against this caller ("" = not counted) */
  tq_watch *watch;            /* NULL once removed */
  uv_timer_t timer;
  uv_async_t async;           /* the watch fired (from the queue's writer thread) */
  int64_t deadline_ms;
  uint32_t recheck_ms;
  bool reading;               /* a read job is out */
  bool fired;                 /* the task ended (or the queue closes): read it and finish */
  bool finished;              /* the call was completed */
  bool raw;                   /* raw_ok: the answer from a handed row may be its text */
  int refs;                   /* loop thread: the call's, a read job's, each open handle */
  /* a read job's outcome */
  wait_read kind;
  json_t *reply;
  bool terminal;
  /* the row the completing commit handed over (wait_on_watch, the writer thread, before the
   * uv_async_send that makes the loop look at it): answered from without a read */
  tq_task *row;
  struct rpc_wait *next_read; /* in rt->todo, then in a reader's batch */
} rpc_wait;

static void wait_unref(rpc_wait *w) {
  CHECK(w->refs > 0);
  if (--w->refs > 0) return;
  json_decref(w->reply);
  tq_task_free(w->row);
  free(w);
}

static void wait_handle_closed(uv_handle_t *h) { wait_unref(h->data); }

static wait_count *count_find(rpc_tool *rt, const char *key) {
  for (size_t i = 0; i < rt->n_counts; i++)
    if (strcmp(rt->counts[i].key, key) == 0) return &rt->counts[i];
  return NULL;
}

static void count_drop(rpc_tool *rt, const char *key) {
  wait_count *c = count_find(rt, key);
  if (!c) return;
  if (--c->n == 0) *c = rt->counts[--rt->n_counts];
}

/* Completes the call with reply (stolen) once; stops watching and timing. Loop thread. */
static void wait_finish(rpc_wait *w, json_t *reply) {
  if (w->finished) {
    json_decref(reply);
    return;
  }
  w->finished = true;
  rpc_tool *rt = w->rt;
  if (w->key[0]) count_drop(rt, w->key);
  rt->waits--;
  if (w->watch) {
    tq_watch_remove(taskq_queue(rt->ctx), w->watch); /* the writer no longer touches w->async */
    w->watch = NULL;
  }
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, wait_handle_closed);
  uv_close((uv_handle_t *)&w->async, wait_handle_closed);
  mcp_tool_status st = reply_status(&reply);
  mcp_call_complete(w->call, st, reply);
  wait_unref(w); /* the call's */
}

static void wait_read_one(rpc_wait *w) {
  /* a first read or a re-read that finds the task still queued or running builds no reply */
  bool over = false;
  w->reply = taskq_wait_read(w->rt->ctx, w->task_id, w->kind == W_READ_FINAL, &over);
  w->terminal = over;
}

/* The task ended and its commit handed the row over: the answer, without a read. */
static bool wait_finish_from_row(rpc_wait *w) {
  if (!w->row || w->finished) return false;
  tq_task *t = w->row;
  w->row = NULL;
  json_t *r = w->raw ? taskq_wait_reply_task_raw(w->rt->ctx, t) : NULL;
  wait_finish(w, r ? r : taskq_wait_reply_task(w->rt->ctx, t));
  tq_task_free(t);
  return true;
}

typedef struct read_batch {
  rpc_tool *rt;
  rpc_wait *list;
} read_batch;

static void reader_work(void *arg) {
  read_batch *b = arg;
  for (rpc_wait *w = b->list; w; w = w->next_read) wait_read_one(w);
}

static void wait_read_done(rpc_wait *w);
static void reader_kick(rpc_tool *rt, workpool *pool);

static void reader_done(void *arg) {
  read_batch *b = arg;
  rpc_tool *rt = b->rt;
  rt->reader_out = false;
  workpool *pool = NULL;
  for (rpc_wait *w = b->list, *next; w; w = next) {
    next = w->next_read;
    w->next_read = NULL;
    pool = w->pool;
    wait_read_done(w);
  }
  free(b);
  if (pool) reader_kick(rt, pool);
}

/* Hands every queued read to one reader job (when none is out). */
static void reader_kick(rpc_tool *rt, workpool *pool) {
  if (rt->reader_out || !rt->todo) return;
  read_batch *b = calloc(1, sizeof *b);
  int rc = b ? 0 : -ENOMEM;
  if (b) {
    b->rt = rt;
    b->list = rt->todo;
    rc = workpool_submit(pool, reader_work, reader_done, b);
  }
  if (rc == 0) {
    rt->todo = rt->todo_tail = NULL;
    rt->reader_out = true;
    return;
  }
  free(b);
  /* no job: every queued wait ends with an error now */
  rpc_wait *list = rt->todo;
  rt->todo = rt->todo_tail = NULL;
  for (rpc_wait *w = list, *next; w; w = next) {
    next = w->next_read;
    w->next_read = NULL;
    w->reply = taskq_error(rt->ctx, rc == -ESHUTDOWN ? "shutting_down" : "busy");
    w->terminal = true;
    wait_read_done(w);
  }
}

static void wait_arm(rpc_wait *w);

static void wait_start_read(rpc_wait *w, wait_read kind) {
  if (w->finished || w->reading) return;
  rpc_tool *rt = w->rt;
  w->kind = kind;
  w->reading = true;
  w->refs++; /* the read's */
  w->next_read = NULL;
  if (rt->todo_tail) rt->todo_tail->next_read = w;
  else rt->todo = w;
  rt->todo_tail = w;
  reader_kick(rt, w->pool);
}

static void wait_read_done(rpc_wait *w) {
  w->reading = false;
  json_t *r = w->reply;
  w->reply = NULL;
  if (w->finished) {
    json_decref(r);
  } else if (w->terminal || w->kind == W_READ_FINAL) {
    wait_finish(w, r);
  } else if (w->fired) { /* it ended while we read */
    json_decref(r);
    if (!wait_finish_from_row(w)) wait_start_read(w, W_READ_FINAL);
  } else if (clock_mono_ms() >= w->deadline_ms) {
    if (r) wait_finish(w, r);
    else wait_start_read(w, W_READ_FINAL); /* the read built no reply: one that does */
  } else {
    json_decref(r);
    wait_arm(w);
  }
  wait_unref(w); /* the read's */
}

static void wait_timer_cb(uv_timer_t *t) {
  rpc_wait *w = t->data;
  if (w->finished) return;
  bool over = clock_mono_ms() >= w->deadline_ms;
  wait_start_read(w, over ? W_READ_FINAL : W_READ_RECHECK);
}

/* Next wake-up: the timeout, or the next re-read, whichever comes first. */
static void wait_arm(rpc_wait *w) {
  int64_t left = w->deadline_ms - clock_mono_ms();
  if (left < 0) left = 0;
  uint64_t in = (uint64_t)left < w->recheck_ms ? (uint64_t)left : w->recheck_ms;
  if (w->recheck_ms < RPC_WAIT_RECHECK_MAX_MS) w->recheck_ms *= 2;
  uv_timer_start(&w->timer, wait_timer_cb, in, 0);
}

static void wait_async_cb(uv_async_t *a) {
  rpc_wait *w = a->data;
  if (w->finished) return;
  w->fired = true;
  if (!w->reading && !wait_finish_from_row(w)) wait_start_read(w, W_READ_FINAL);
}

/* The queue's writer thread: the task ended. Under the queue's waiter lock (tq_watch_remove
 * waits for this), so w and its async handle are alive; the loop reads w->row only after this
 * uv_async_send (and a watch fires once). No copy (out of memory): the loop reads the task. */
static void wait_on_watch(void *ud, const tq_task *row) {
  rpc_wait *w = ud;
  if (row && !w->row) w->row = tq_task_dup(row);
  uv_async_send(&w->async);
}

/* The answer is no longer wanted (cancelled, deadline, transport gone, dispatcher freed). */
static void wait_on_cancel(mcp_call *call, void *ud) {
  (void)call;
  rpc_wait *w = ud;
  wait_finish(w, taskq_error(w->rt->ctx, "cancelled"));
}

static void wait_key(const auth_ctx *a, char *out, size_t cap) {
  if (auth_ctx_is_local(a)) out[0] = 0; /* the local operator is not capped */
  else snprintf(out, cap, "p:%s", a->peer_id);
}

static mcp_tool_status wait_start(rpc_tool *rt, mcp_call *call, const json_t *msg, json_t **result) {
  char task_id[33];
  double timeout_s = 0;
  json_t *now = taskq_wait_prepare(rt->ctx, msg, mcp_call_auth(call), task_id, &timeout_s);
  if (now) {
    *result = now;
    return MCP_TOOL_OK;
  }
  char key[RPC_PEER_KEY_MAX];
  wait_key(mcp_call_auth(call), key, sizeof key);
  wait_count *cnt = key[0] ? count_find(rt, key) : NULL;
  if (key[0] && cnt && cnt->n >= taskq_max_waits_per_peer(rt->ctx)) {
    log_write(LOG_INFO, "p2p wait refused: too many waits from this caller", "{s:s, s:I}", "peer",
              mcp_call_auth(call)->peer_id, "waits", (json_int_t)cnt->n);
    *result = taskq_error(rt->ctx, "busy");
    if (*result) json_object_set_new(*result, "detail", json_string("too many waits from this caller; retry later"));
    return reply_status(result);
  }
  mcp_dispatcher *d = mcp_call_dispatcher(call);
  rpc_wait *w = calloc(1, sizeof *w);
  if (!w) {
    *result = NULL;
    return reply_status(result);
  }
  w->rt = rt;
  w->call = call;
  w->loop = mcp_dispatcher_loop(d);
  w->pool = mcp_dispatcher_pool(d);
  memcpy(w->task_id, task_id, 33);
  w->deadline_ms = clock_mono_ms() + (int64_t)(timeout_s * 1000.0);
  w->recheck_ms = RPC_WAIT_RECHECK_FIRST_MS;
  w->raw = raw_ok(call);
  if (uv_timer_init(w->loop, &w->timer) != 0) {
    free(w);
    *result = taskq_error(rt->ctx, "internal_error");
    return reply_status(result);
  }
  w->timer.data = w;
  if (uv_async_init(w->loop, &w->async, wait_async_cb) != 0) {
    w->refs = 1;
    uv_close((uv_handle_t *)&w->timer, wait_handle_closed);
    *result = taskq_error(rt->ctx, "internal_error");
    return reply_status(result);
  }
  w->async.data = w;
  w->refs = 3; /* the call's, the timer's, the async's */
  /* watch before the first read: no transition can slip between; a task this node's queue
   * knows to be queued or running needs no first read (its end fires the watch; re-reads
   * still come, for another process's commits) */
  bool live = false;
  int rc = tq_watch_add_live(taskq_queue(rt->ctx), task_id, wait_on_watch, w, &w->watch, &live);
  if (rc != 0) {
    w->finished = true;
    uv_close((uv_handle_t *)&w->timer, wait_handle_closed);
    uv_close((uv_handle_t *)&w->async, wait_handle_closed);
    wait_unref(w);
    *result = taskq_error(rt->ctx, tq_strerror(rc));
    return reply_status(result);
  }
  if (key[0]) {
    if (!cnt) {
      if (rt->n_counts == rt->cap_counts) {
        size_t nc = rt->cap_counts ? rt->cap_counts * 2 : 16;
        wait_count *v = realloc(rt->counts, nc * sizeof *v);
        if (v) {
          rt->counts = v;
          rt->cap_counts = nc;
        }
      }
      if (rt->n_counts < rt->cap_counts) {
        cnt = &rt->counts[rt->n_counts++];
        snprintf(cnt->key, sizeof cnt->key, "%s", key);
        cnt->n = 0;
      }
    }
    if (cnt) {
      cnt->n++;
      snprintf(w->key, sizeof w->key, "%s", key);
    }
  }
  rt->waits++;
  mcp_call_on_cancel(call, wait_on_cancel, w);
  if (!w->finished) {
    if (live) wait_arm(w);
    else wait_start_read(w, W_READ_FIRST);
  }
  return MCP_TOOL_PENDING;
}

/* ---------------------------------------------------------------- ops on the queue's writer */

/* The hot ops (taskq_handle_async): the reply is built where the queue's commit lands (its
 * writer thread) and handed to the loop by the dispatcher's coalesced completion queue — no
 * pool hop. A waiting claim holds no thread: it is parked in the queue; when the call's answer
 * is no longer wanted it is ended by its id (ud), so nothing here outlives the call. */
static void async_done(json_t *reply, void *ud) {
  mcp_call *call = ud;
  mcp_tool_status st = reply_status(&reply);
  mcp_call_complete(call, st, reply);
}

static void claim_on_cancel(mcp_call *call, void *ud) {
  const mcp_tool *t = mcp_registry_find(mcp_dispatcher_registry(mcp_call_dispatcher(call)), TASKQ_RPC_TOOL);
  if (!t || !mcp_tool_def_of(t)->ud) return;
  rpc_tool *rt = mcp_tool_def_of(t)->ud;
  /* parked: answered now (no task), through async_done; running: the writer answers */
  (void)tq_claim_cancel(taskq_queue(rt->ctx), (uint64_t)(uintptr_t)ud);
}

/* ---------------------------------------------------------------- the tool */

static mcp_tool_status rpc_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  rpc_tool *rt = ud;
  const json_t *msg = taskq_rpc_message(args);
  const json_t *opv = json_object_get(msg, "op");
  taskq_op op = taskq_op_parse(json_is_string(opv) ? json_string_value(opv) : NULL);
  if (op == TASKQ_OP_WAIT && taskq_queue(rt->ctx)) return wait_start(rt, call, msg, result);
  uint64_t claim_id = 0;
  switch (taskq_handle_async(rt->ctx, msg, mcp_call_auth(call), raw_ok(call) ? TASKQ_ASYNC_RAW : 0, async_done, call,
                             &claim_id, result)) {
  case TASKQ_ASYNC_REPLY: return reply_status(result);
  case TASKQ_ASYNC_STARTED:
    if (claim_id) mcp_call_on_cancel(call, claim_on_cancel, (void *)(uintptr_t)claim_id);
    return MCP_TOOL_PENDING;
  case TASKQ_ASYNC_BLOCKING: break;
  }
  mcp_dispatcher *d = mcp_call_dispatcher(call);
  op_job *j = calloc(1, sizeof *j);
  if (!j) {
    *result = NULL;
    return reply_status(result);
  }
  j->rt = rt;
  j->call = call;
  j->msg = json_incref((json_t *)msg);
  /* call_tool may run any tool (a command tool for minutes), and a claim that may wait for
   * work holds its thread (bounded by the op table's caps): the long pool */
  bool long_op = op == TASKQ_OP_TOOL || (op == TASKQ_OP_CLAIM && taskq_claim_wait_s(rt->ctx, msg) > 0);
  workpool *pool = long_op ? mcp_dispatcher_long_pool(d) : mcp_dispatcher_pool(d);
  int rc = workpool_submit_for(pool, mcp_call_pool_key(call), op_job_work, NULL, j);
  if (rc != 0) {
    json_decref(j->msg);
    free(j);
    *result = taskq_error(rt->ctx, rc == -ESHUTDOWN ? "shutting_down" : "busy");
    return reply_status(result);
  }
  return MCP_TOOL_PENDING;
}

const json_t *taskq_rpc_message(const json_t *args) {
  if (json_is_object(args) && json_object_size(args) == 1) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v) {
      if (json_is_object(v)) return v;
    }
  }
  return args;
}

static void rpc_tool_free(void *ud) {
  rpc_tool *rt = ud;
  CHECK(rt->waits == 0);
  free(rt->counts);
  free(rt);
}

int taskq_rpc_tool_register(mcp_registry *reg, taskq_ctx *ctx) {
  rpc_tool *rt = calloc(1, sizeof *rt);
  if (!rt) return -ENOMEM;
  rt->ctx = ctx;
  mcp_tool_def d = {0};
  d.name = TASKQ_RPC_TOOL;
  d.category = "p2p";
  d.title = "TaskQueue RPC";
  d.description =
      "Runs one TaskQueue op message (submit, claim, complete, list, get, wait, cancel, status, call_tool, "
      "cache.get/set/has/delete, …) and returns the op's reply. Each op checks the caller's scopes.";
  d.input_schema = "{\"type\":\"object\",\"properties\":{\"op\":{\"type\":\"string\"}}}";
  d.scopes = AUTH_SCOPES(0); /* per op (op.h) */
  d.flags = MCP_TOOL_REMOTE | MCP_TOOL_ASYNC;
  d.timeout_ms = TASKQ_RPC_TOOL_TIMEOUT_MS;
  d.fn = rpc_fn;
  d.ud = rt;
  d.ud_free = rpc_tool_free;
  int rc = mcp_registry_add(reg, &d);
  if (rc != 0) free(rt);
  return rc;
}

size_t taskq_rpc_tool_waits_of(const mcp_registry *reg, const char *peer_id) {
  const mcp_tool *t = mcp_registry_find((mcp_registry *)reg, TASKQ_RPC_TOOL);
  if (!t || mcp_tool_def_of(t)->fn != rpc_fn || !peer_id) return 0;
  rpc_tool *rt = mcp_tool_def_of(t)->ud;
  if (!rt->n_counts) return 0;
  char key[RPC_PEER_KEY_MAX];
  snprintf(key, sizeof key, "p:%s", peer_id);
  wait_count *c = count_find(rt, key);
  return c ? c->n : 0;
}

size_t taskq_rpc_tool_waits(const mcp_registry *reg) {
  const mcp_tool *t = mcp_registry_find((mcp_registry *)reg, TASKQ_RPC_TOOL);
  if (!t || mcp_tool_def_of(t)->fn != rpc_fn) return 0;
  return ((const rpc_tool *)mcp_tool_def_of(t)->ud)->waits;
}

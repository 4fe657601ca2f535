/* test_table.c — the TaskQueue op table (p2p_tasks_spec.md §3.1, §3.3, §3.4) over a real
 * queue and cache in a temp directory, with a fake tool runner. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/audit.h"
#include "taskq/table.h"
#include "support/stores.h"
#include "support/wait.h"
#include "util/clock.h"
#include "util/jwrite.h"

#define OUR_ID "12D3KooWServerServerServerServerServerServerServerSe"
#define PEER_W "12D3KooWWorkerWorkerWorkerWorkerWorkerWorkerWorkerWo"

typedef struct fx {
  char dir[256];
  tq_queue *q;
  ttlcache *c;
  auth_policy *pol;
  taskq_ctx *ctx;
  auth_ctx all;    /* a peer with every default scope */
  auth_ctx anon;   /* an unknown peer */
  int tool_calls;
  char last_tool[64];
  json_t *last_args;
} fx;

static fx *g; /* for the fake tool runner */

static int fake_tool(void *ud, const auth_ctx *auth, const char *tool, json_t *args, int64_t timeout_ms,
                     json_t **result, bool *is_error) {
  fx *f = ud;
  (void)auth;
  (void)timeout_ms;
  f->tool_calls++;
  snprintf(f->last_tool, sizeof f->last_tool, "%s", tool);
  json_decref(f->last_args);
  f->last_args = json_deep_copy(args);
  if (strcmp(tool, "echo") == 0) {
    *result = json_pack("{s:O}", "echo", args);
    *is_error = false;
    return 0;
  }
  if (strcmp(tool, "boom") == 0) {
    *result = json_string("it broke");
    *is_error = true;
    return 0;
  }
  return -ENOENT;
}

/* The service context over the fixture's queue, cache and policy; waits capped at wait_max_s. */
static taskq_ctx *make_ctx(fx *f, double wait_max_s) {
  taskq_config cfg;
  taskq_config_default(&cfg);
  cfg.queue = f->q;
  cfg.cache = f->c;
  cfg.policy = f->pol;
  cfg.peer_id = OUR_ID;
  cfg.tool_call = fake_tool;
  cfg.tool_ud = f;
  cfg.wait_max_s = wait_max_s;
  return taskq_new(&cfg);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/peermcp-taskq-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  char path[512];
  snprintf(path, sizeof path, "%s/queue.sqlite3", f->dir);
  tq_options qo;
  tq_options_default(&qo);
  qo.path = path;
  assert_int_equal(tq_open(&qo, &f->q), 0);
  char cdir[512];
  snprintf(cdir, sizeof cdir, "%s/cache", f->dir);
  ttlcache_options co;
  ttlcache_options_default(&co);
  co.dir = cdir;
  co.durable = false;
  assert_int_equal(ttlcache_open(&co, &f->c), 0);
  f->pol = auth_policy_new();
  assert_int_equal(auth_policy_add_peer(f->pol, PEER_W, NULL), 0);
  assert_int_equal(auth_policy_set_token(f->pol, "s3cr3t", NULL), 0);
  f->ctx = make_ctx(f, 0.3);
  assert_non_null(f->ctx);
  auth_policy_peer_ctx(f->pol, PEER_W, &f->all);
  auth_policy_peer_ctx(f->pol, "12D3KooWStrangerStrangerStrangerStrangerStrangerStr", &f->anon);
  g = f;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  taskq_free(f->ctx);
  auth_policy_free(f->pol);
  ttlcache_close(f->c);
  tq_close(f->q);
  json_decref(f->last_args);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* Runs one op message (JSON text) as `who`; returns the reply. */
static json_t *run(fx *f, const auth_ctx *who, const char *text) {
  json_error_t e;
  json_t *msg = json_loads(text, 0, &e);
  if (!msg) fail_msg("bad test JSON %s: %s", text, e.text);
  taskq_call call = {.auth = who};
  json_t *r = taskq_handle(f->ctx, msg, &call);
  json_decref(msg);
  assert_non_null(r);
  assert_string_equal(json_string_value(json_object_get(r, "peer_id")), OUR_ID);
  return r;
}

static bool r_ok(const json_t *r) { return json_is_true(json_object_get(r, "ok")); }
static const char *r_err(const json_t *r) { return json_string_value(json_object_get(r, "error")); }

static void submit_one(fx *f, const char *type, char id[33]) {
  char text[256];
  snprintf(text, sizeof text, "{\"op\":\"submit\",\"task_type\":\"%s\",\"payload\":{\"tool\":\"echo\",\"args\":{\"x\":1}}}", type);
  json_t *r = run(f, &f->all, text);
  assert_true(r_ok(r));
  const char *tid = json_string_value(json_object_get(r, "task_id"));
  assert_non_null(tid);
  assert_int_equal(strlen(tid), 32);
  snprintf(id, 33, "%s", tid);
  json_decref(r);
}

static void test_unauthorized_peer_gets_status_only(void **state) {
  fx *f = *state;
  static const char *ops[] = {"submit", "claim", "claim_many", "complete", "release", "peer.heartbeat", "list",
                              "cancel", "call_tool", "cache.get", "cache.has", "cache.set", "cache.delete", "get",
                              "wait", "task.heartbeat", "fail"};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    char text[128];
    snprintf(text, sizeof text, "{\"op\":\"%s\",\"task_id\":\"x\",\"key\":\"k\",\"worker_id\":\"w\"}", ops[i]);
    json_t *r = run(f, &f->anon, text);
    assert_false(r_ok(r));
    assert_string_equal(r_err(r), "unauthorized");
    json_decref(r);
  }
  json_t *r = run(f, &f->anon, "{\"op\":\"status\"}");
  assert_true(r_ok(r));
  assert_true(json_is_object(json_object_get(r, "capabilities")));
  assert_true(json_is_true(json_object_get(r, "auth_required")));
  json_decref(r);
  /* a wrong token changes nothing, the right one opens the door */
  r = run(f, &f->anon, "{\"op\":\"list\",\"token\":\"wrong\"}");
  assert_string_equal(r_err(r), "unauthorized");
  json_decref(r);
  r = run(f, &f->anon, "{\"op\":\"list\",\"token\":\"s3cr3t\"}");
  assert_true(r_ok(r));
  json_decref(r);
}

static void test_unknown_op(void **state) {
  fx *f = *state;
  json_t *r = run(f, &f->all, "{\"op\":\"enqueue\"}");
  assert_string_equal(r_err(r), "unknown_op");
  json_decref(r);
  r = run(f, &f->all, "{}");
  assert_string_equal(r_err(r), "unknown_op");
  json_decref(r);
}

static void test_submit_get_list_shapes(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  char text[128];
  snprintf(text, sizeof text, "{\"op\":\"get\",\"task_id\":\"%s\"}", id);
  json_t *r = run(f, &f->all, text);
  assert_true(r_ok(r));
  json_t *t = json_object_get(r, "task");
  static const char *keys[] = {"task_id", "task_type", "model_name", "payload", "status", "assigned_worker",
                               "created_at", "updated_at", "result", "error", "priority", "attempt",
                               "max_attempts", "next_attempt_at", "lease_until", "heartbeat_at", "idempotency_key"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) assert_non_null(json_object_get(t, keys[i]));
  assert_string_equal(json_string_value(json_object_get(t, "status")), "queued");
  json_decref(r);
  /* get of an unknown task: ok with task null */
  r = run(f, &f->all, "{\"op\":\"get\",\"task_id\":\"00000000000000000000000000000000\"}");
  assert_true(r_ok(r));
  assert_true(json_is_null(json_object_get(r, "task")));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"queue.list\",\"status\":\"QUEUED\"}");
  assert_true(r_ok(r));
  assert_int_equal(json_array_size(json_object_get(r, "tasks")), 1);
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"list\",\"status\":\"running\"}");
  assert_int_equal(json_array_size(json_object_get(r, "tasks")), 0);
  json_decref(r);
}

static void test_submit_wraps_non_object_payload_and_default_type(void **state) {
  fx *f = *state;
  json_t *r = run(f, &f->all, "{\"op\":\"submit\",\"payload\":42}");
  assert_true(r_ok(r));
  char text[128];
  snprintf(text, sizeof text, "{\"op\":\"get\",\"task_id\":\"%s\"}", json_string_value(json_object_get(r, "task_id")));
  json_decref(r);
  r = run(f, &f->all, text);
  json_t *t = json_object_get(r, "task");
  assert_string_equal(json_string_value(json_object_get(t, "task_type")), "text-generation");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "payload"), "payload")), 42);
  json_decref(r);
}

static void test_submit_idempotency_key_replays(void **state) {
  fx *f = *state;
  json_t *a = run(f, &f->all, "{\"op\":\"submit\",\"task_type\":\"tool.call\",\"idempotency_key\":\"k1\",\"payload\":{\"a\":1}}");
  json_t *b = run(f, &f->all, "{\"op\":\"submit\",\"task_type\":\"tool.call\",\"idempotency_key\":\"k1\",\"payload\":{\"a\":1}}");
  assert_string_equal(json_string_value(json_object_get(a, "task_id")), json_string_value(json_object_get(b, "task_id")));
  json_t *c = run(f, &f->all, "{\"op\":\"submit\",\"task_type\":\"tool.call\",\"idempotency_key\":\"k1\",\"payload\":{\"a\":2}}");
  assert_false(r_ok(c));
  assert_string_equal(r_err(c), "internal_error");
  assert_non_null(strstr(json_string_value(json_object_get(c, "detail")), "different work"));
  json_decref(a);
  json_decref(b);
  json_decref(c);
}

static void test_claim_requires_worker_and_expands_aliases(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  json_t *r = run(f, &f->all, "{\"op\":\"claim\"}");
  assert_string_equal(r_err(r), "missing_worker_id");
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"claim\",\"worker_id\":\"w1\",\"supported_task_types\":\"embedding\"}");
  assert_true(r_ok(r));
  assert_true(json_is_null(json_object_get(r, "task")));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"claim_next\",\"worker_id\":\"w1\",\"task_types\":\"TOOL, embedding\"}");
  assert_true(r_ok(r));
  json_t *t = json_object_get(r, "task");
  assert_string_equal(json_string_value(json_object_get(t, "task_id")), id);
  assert_string_equal(json_string_value(json_object_get(t, "status")), "running");
  assert_string_equal(json_string_value(json_object_get(t, "assigned_worker")), "w1");
  assert_true(json_integer_value(json_object_get(t, "lease_epoch")) >= 1);
  for (const char **k = (const char *[]){"task_id", "task_type", "model_name", "payload", "created_at", "status",
                                         "assigned_worker", NULL};
       *k; k++)
    assert_non_null(json_object_get(t, *k));
  json_decref(r);
}

static void test_claim_many_returns_batch(void **state) {
  fx *f = *state;
  char id[33];
  for (int i = 0; i < 3; i++) submit_one(f, "tool.call", id);
  json_t *r = run(f, &f->all, "{\"op\":\"claim_batch\",\"worker_id\":\"w1\",\"limit\":2}");
  assert_true(r_ok(r));
  assert_int_equal(json_array_size(json_object_get(r, "tasks")), 2);
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"claim_many\",\"worker_id\":\"w2\",\"max_tasks\":10}");
  assert_int_equal(json_array_size(json_object_get(r, "tasks")), 1);
  json_decref(r);
}

/* Claims the only queued task as worker; returns its lease_epoch. */
static int64_t claim_it(fx *f, const char *worker, char id[33]) {
  char text[128];
  snprintf(text, sizeof text, "{\"op\":\"claim\",\"worker_id\":\"%s\"}", worker);
  json_t *r = run(f, &f->all, text);
  json_t *t = json_object_get(r, "task");
  assert_non_null(t);
  assert_false(json_is_null(t));
  snprintf(id, 33, "%s", json_string_value(json_object_get(t, "task_id")));
  int64_t ep = json_integer_value(json_object_get(t, "lease_epoch"));
  json_decref(r);
  return ep;
}

static void test_complete_is_fenced_by_owner_and_epoch(void **state) {
  fx *f = *state;
  char id[33], cid[33];
  submit_one(f, "tool.call", id);
  int64_t ep = claim_it(f, "w1", cid);
  char text[256];
  snprintf(text, sizeof text, "{\"op\":\"complete\",\"task_id\":\"%s\",\"result\":{\"v\":1}}", id);
  json_t *r = run(f, &f->all, text);
  assert_string_equal(r_err(r), "missing_worker_id"); /* strict by default */
  json_decref(r);
  snprintf(text, sizeof text, "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"intruder\"}", id);
  r = run(f, &f->all, text);
  assert_false(r_ok(r));
  assert_string_equal(r_err(r), "lease_lost");
  assert_string_equal(json_string_value(json_object_get(r, "task_id")), id);
  json_decref(r);
  snprintf(text, sizeof text, "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld}", id,
           (long long)ep + 1);
  r = run(f, &f->all, text);
  assert_string_equal(r_err(r), "lease_lost");
  json_decref(r);
  snprintf(text, sizeof text,
           "{\"op\":\"task.complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld,\"result\":{\"v\":1}}",
           id, (long long)ep);
  r = run(f, &f->all, text);
  assert_true(r_ok(r));
  json_decref(r);
  /* exactly once: the same complete again (a worker that got no answer) is answered ok and
   * changes nothing, even with another result; another status, or another epoch, is refused */
  snprintf(text, sizeof text,
           "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld,\"result\":{\"v\":2}}",
           id, (long long)ep);
  r = run(f, &f->all, text);
  assert_true(r_ok(r));
  json_decref(r);
  snprintf(text, sizeof text,
           "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld,\"status\":\"failed\"}",
           id, (long long)ep);
  r = run(f, &f->all, text);
  assert_string_equal(r_err(r), "lease_lost");
  json_decref(r);
  snprintf(text, sizeof text, "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\"}", id);
  r = run(f, &f->all, text);
  assert_string_equal(r_err(r), "lease_lost"); /* no epoch: not recognisably the same run */
  json_decref(r);
  snprintf(text, sizeof text, "{\"op\":\"get\",\"task_id\":\"%s\"}", id);
  r = run(f, &f->all, text);
  json_t *t = json_object_get(r, "task");
  assert_string_equal(json_string_value(json_object_get(t, "status")), "completed");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "result"), "v")), 1);
  json_decref(r);
}

typedef struct {
  fx *f;
} later;

static void *submit_later(void *arg) {
  later *l = arg;
  usleep(200000);
  char id[33];
  submit_one(l->f, "tool.call", id);
  return NULL;
}

/* claim {wait_s}: waits for a task and is answered the moment one is queued; without wait_s
 * (what Python clients send) it answers at once, and the reply has no wait_s. */
static void test_claim_waits_for_work_when_asked(void **state) {
  fx *f = *state;
  int64_t t0 = clock_mono_ms();
  json_t *r = run(f, &f->all, "{\"op\":\"claim\",\"worker_id\":\"w1\"}");
  assert_true(r_ok(r));
  assert_true(json_is_null(json_object_get(r, "task")));
  assert_null(json_object_get(r, "wait_s"));
  json_decref(r);
  assert_true(clock_mono_ms() - t0 < 2000);
  later l = {f};
  pthread_t th;
  pthread_create(&th, NULL, submit_later, &l);
  t0 = clock_mono_ms();
  r = run(f, &f->all, "{\"op\":\"claim\",\"worker_id\":\"w1\",\"wait_s\":20}");
  int64_t took = clock_mono_ms() - t0;
  pthread_join(th, NULL);
  assert_true(r_ok(r));
  assert_true(json_is_object(json_object_get(r, "task")));
  assert_true(json_number_value(json_object_get(r, "wait_s")) == 20);
  assert_true(took >= 150 && took < 15000);
  json_decref(r);
  /* nothing comes: empty after the wait (capped by claim_wait_max_s) */
  t0 = clock_mono_ms();
  r = run(f, &f->all, "{\"op\":\"claim\",\"worker_id\":\"w1\",\"wait_s\":0.4}");
  assert_true(json_is_null(json_object_get(r, "task")));
  assert_true(clock_mono_ms() - t0 >= 300);
  json_decref(r);
}

/* taskq_handle_async: the hot ops without a thread give the replies taskq_handle gives. */
typedef struct async_box {
  pthread_mutex_t mu;
  json_t *reply;
  int calls;
} async_box;

static void async_box_done(json_t *reply, void *ud) {
  async_box *b = ud;
  pthread_mutex_lock(&b->mu);
  b->reply = reply;
  b->calls++;
  pthread_mutex_unlock(&b->mu);
}

static int box_calls(async_box *b) {
  pthread_mutex_lock(&b->mu);
  int n = b->calls;
  pthread_mutex_unlock(&b->mu);
  return n;
}

static json_t *run_async_flags(fx *f, const auth_ctx *who, const char *text, uint64_t *claim_id, unsigned flags) {
  json_t *msg = json_loads(text, JSON_ALLOW_NUL, NULL);
  assert_non_null(msg);
  async_box b = {.mu = PTHREAD_MUTEX_INITIALIZER};
  json_t *now = NULL;
  uint64_t cid = 0;
  taskq_async_status st = taskq_handle_async(f->ctx, msg, who, flags, async_box_done, &b, &cid, &now);
  json_decref(msg); /* referenced by the op while it runs */
  if (claim_id) *claim_id = cid;
  if (st == TASKQ_ASYNC_REPLY) {
    assert_int_equal(box_calls(&b), 0);
    assert_non_null(now);
    return now;
  }
  assert_int_equal(st, TASKQ_ASYNC_STARTED);
  assert_null(now);
  TS_WAIT_UNTIL(30000, box_calls(&b) == 1);
  assert_non_null(b.reply);
  if (json_is_object(b.reply)) /* (a TASKQ_ASYNC_RAW success is its text) */
    assert_string_equal(json_string_value(json_object_get(b.reply, "peer_id")), OUR_ID);
  return b.reply;
}

static json_t *run_async(fx *f, const auth_ctx *who, const char *text, uint64_t *claim_id) {
  return run_async_flags(f, who, text, claim_id, 0);
}

static void test_async_hot_ops_reply_like_the_blocking_path(void **state) {
  fx *f = *state;
  /* refusals come at once, like taskq_handle's */
  json_t *r = run_async(f, &f->anon, "{\"op\":\"submit\",\"task_type\":\"t\",\"payload\":{}}", NULL);
  assert_string_equal(r_err(r), "unauthorized");
  json_decref(r);
  r = run_async(f, &f->all, "{\"op\":\"claim\"}", NULL);
  assert_string_equal(r_err(r), "missing_worker_id");
  json_decref(r);
  r = run_async(f, &f->all, "{\"op\":\"claim\",\"worker_id\":\"w\\u0000x\"}", NULL);
  assert_string_equal(r_err(r), "invalid_message");
  json_decref(r);
  r = run_async(f, &f->all, "{\"op\":\"complete\",\"worker_id\":\"w1\"}", NULL);
  assert_string_equal(r_err(r), "missing_task_id");
  json_decref(r);
  /* submit → claim → heartbeat → complete */
  r = run_async(f, &f->all, "{\"op\":\"submit\",\"task_type\":\"tool\",\"payload\":{\"a\":1},\"idempotency_key\":\"k1\"}", NULL);
  assert_true(r_ok(r));
  char id[33];
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r, "task_id")));
  assert_int_equal(strlen(id), 32);
  json_decref(r);
  r = run_async(f, &f->all, "{\"op\":\"submit\",\"task_type\":\"tool\",\"payload\":{\"a\":1},\"idempotency_key\":\"k1\"}", NULL);
  assert_true(json_is_true(json_object_get(r, "replayed")));
  json_decref(r);
  /* the type alias expands ("tool" is "tool.call"'s family) as in the blocking claim */
  r = run_async(f, &f->all, "{\"op\":\"claim\",\"worker_id\":\"w1\",\"supported_task_types\":[\"tool.call\"]}", NULL);
  assert_true(r_ok(r));
  json_t *task = json_object_get(r, "task");
  assert_string_equal(json_string_value(json_object_get(task, "task_id")), id);
  json_int_t epoch = json_integer_value(json_object_get(task, "lease_epoch"));
  assert_true(epoch >= 1);
  assert_null(json_object_get(r, "wait_s"));
  json_decref(r);
  char msg[256];
  snprintf(msg, sizeof msg, "{\"op\":\"task.heartbeat\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld}", id,
           (long long)epoch);
  r = run_async(f, &f->all, msg, NULL);
  assert_true(r_ok(r));
  assert_true(json_is_false(json_object_get(r, "cancel_requested")));
  json_decref(r);
  snprintf(msg, sizeof msg, "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld,\"result\":{\"x\":2}}",
           id, (long long)epoch + 1);
  r = run_async(f, &f->all, msg, NULL);
  assert_false(r_ok(r));
  assert_string_equal(r_err(r), "lease_lost");
  json_decref(r);
  snprintf(msg, sizeof msg, "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld,\"result\":{\"x\":2}}",
           id, (long long)epoch);
  r = run_async(f, &f->all, msg, NULL);
  assert_true(r_ok(r));
  json_decref(r);
  /* a waiting claim: parked with an id, answered by a submit, says it waited */
  json_t *wmsg = json_loads("{\"op\":\"claim\",\"worker_id\":\"w2\",\"wait_s\":20}", 0, NULL);
  async_box b = {.mu = PTHREAD_MUTEX_INITIALIZER};
  json_t *now = NULL;
  uint64_t cid = 0;
  assert_int_equal(taskq_handle_async(f->ctx, wmsg, &f->all, 0, async_box_done, &b, &cid, &now), TASKQ_ASYNC_STARTED);
  json_decref(wmsg);
  assert_true(cid != 0);
  TS_WAIT_UNTIL(30000, tq_claims_waiting(f->q) == 1);
  r = run_async(f, &f->all, "{\"op\":\"submit\",\"task_type\":\"t\",\"payload\":{}}", NULL);
  json_decref(r);
  TS_WAIT_UNTIL(30000, box_calls(&b) == 1);
  assert_true(json_is_object(json_object_get(b.reply, "task")));
  assert_true(json_number_value(json_object_get(b.reply, "wait_s")) == 20);
  json_decref(b.reply);
  /* cancelled by its id: answered with no task */
  wmsg = json_loads("{\"op\":\"claim\",\"worker_id\":\"w2\",\"wait_s\":20}", 0, NULL);
  async_box c = {.mu = PTHREAD_MUTEX_INITIALIZER};
  assert_int_equal(taskq_handle_async(f->ctx, wmsg, &f->all, 0, async_box_done, &c, &cid, &now), TASKQ_ASYNC_STARTED);
  json_decref(wmsg);
  TS_WAIT_UNTIL(30000, (tq_claim_cancel(f->q, cid), box_calls(&c) == 1));
  assert_true(json_is_null(json_object_get(c.reply, "task")));
  json_decref(c.reply);
  /* ops this path does not take */
  wmsg = json_loads("{\"op\":\"list\"}", 0, NULL);
  assert_int_equal(taskq_handle_async(f->ctx, wmsg, &f->all, 0, async_box_done, &c, &cid, &now), TASKQ_ASYNC_BLOCKING);
  json_decref(wmsg);
}

/* Over the per-caller cap a claim answers at once (no wait_s in the reply). */
static void test_claim_wait_is_capped_per_caller(void **state) {
  fx *f = *state;
  taskq_config cfg;
  taskq_config_default(&cfg);
  cfg.queue = f->q;
  cfg.policy = f->pol;
  cfg.peer_id = OUR_ID;
  cfg.claim_waiters_per_peer = 0; /* no waiting claims at all */
  taskq_ctx *ctx = taskq_new(&cfg);
  assert_non_null(ctx);
  json_t *msg = json_loads("{\"op\":\"claim\",\"worker_id\":\"w1\",\"wait_s\":10}", 0, NULL);
  taskq_call call = {.auth = &f->all};
  int64_t t0 = clock_mono_ms();
  json_t *r = taskq_handle(ctx, msg, &call);
  assert_true(clock_mono_ms() - t0 < 2000);
  assert_true(r_ok(r));
  assert_null(json_object_get(r, "wait_s"));
  json_decref(r);
  json_decref(msg);
  taskq_free(ctx);
}

static void test_complete_odd_status_becomes_failed(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  claim_it(f, "w1", id);
  char text[256];
  snprintf(text, sizeof text, "{\"op\":\"complete_task\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"status\":\"weird\",\"error\":\"e\"}", id);
  json_t *r = run(f, &f->all, text);
  assert_true(r_ok(r));
  json_decref(r);
  snprintf(text, sizeof text, "{\"op\":\"get\",\"task_id\":\"%s\"}", id);
  r = run(f, &f->all, text);
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "task"), "status")), "failed");
  json_decref(r);
}

static void test_release_requires_worker_and_requeues(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  claim_it(f, "w1", id);
  char text[256];
  snprintf(text, sizeof text, "{\"op\":\"release\",\"task_id\":\"%s\"}", id);
  json_t *r = run(f, &f->all, text);
  assert_string_equal(r_err(r), "missing_worker_id");
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"release\",\"worker_id\":\"w1\"}");
  assert_string_equal(r_err(r), "missing_task_id");
  json_decref(r);
  snprintf(text, sizeof text, "{\"op\":\"release_task\",\"task_id\":\"%s\",\"assigned_worker\":\"w1\",\"reason\":\"bye\"}", id);
  r = run(f, &f->all, text);
  assert_true(r_ok(r));
  json_decref(r);
  snprintf(text, sizeof text, "{\"op\":\"get\",\"task_id\":\"%s\"}", id);
  r = run(f, &f->all, text);
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "task"), "status")), "queued");
  json_decref(r);
}

static void test_task_heartbeat_renews_and_reports_cancel(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  int64_t ep = claim_it(f, "w1", id);
  char text[256];
  snprintf(text, sizeof text, "{\"op\":\"task.heartbeat\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld,\"lease_seconds\":60}",
           id, (long long)ep);
  json_t *r = run(f, &f->all, text);
  assert_true(r_ok(r));
  assert_true(json_real_value(json_object_get(r, "lease_until")) > clock_wall_s() + 30);
  assert_true(json_is_false(json_object_get(r, "cancel_requested")));
  json_decref(r);
  char ctext[128];
  snprintf(ctext, sizeof ctext, "{\"op\":\"cancel\",\"task_id\":\"%s\",\"reason\":7}", id);
  json_t *c = run(f, &f->all, ctext);
  assert_true(r_ok(c));
  assert_true(json_is_false(json_object_get(c, "cancelled")));
  assert_true(json_is_true(json_object_get(c, "cancel_requested")));
  json_decref(c);
  r = run(f, &f->all, text);
  assert_true(json_is_true(json_object_get(r, "cancel_requested")));
  json_decref(r);
  /* a non-owner's heartbeat is refused */
  snprintf(text, sizeof text, "{\"op\":\"task.heartbeat\",\"task_id\":\"%s\",\"worker_id\":\"w2\"}", id);
  r = run(f, &f->all, text);
  assert_string_equal(r_err(r), "lease_lost");
  json_decref(r);
}

static void test_fail_retries_then_fails(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  claim_it(f, "w1", id);
  char text[256];
  snprintf(text, sizeof text, "{\"op\":\"fail\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"error\":\"oops\"}", id);
  json_t *r = run(f, &f->all, text);
  assert_true(r_ok(r));
  assert_string_equal(json_string_value(json_object_get(r, "status")), "queued");
  json_decref(r);
  claim_it(f, "w1", id);
  snprintf(text, sizeof text, "{\"op\":\"fail\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"error\":\"fatal\",\"retry\":false}", id);
  r = run(f, &f->all, text);
  assert_true(r_ok(r));
  assert_string_equal(json_string_value(json_object_get(r, "status")), "failed");
  json_decref(r);
}

static void test_cancel_queued(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  char text[128];
  snprintf(text, sizeof text, "{\"op\":\"task.cancel\",\"task_id\":\"%s\"}", id);
  json_t *r = run(f, &f->all, text);
  assert_true(json_is_true(json_object_get(r, "cancelled")));
  json_decref(r);
  r = run(f, &f->all, text);
  assert_true(json_is_false(json_object_get(r, "cancelled")));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"cancel\"}");
  assert_string_equal(r_err(r), "missing_task_id");
  json_decref(r);
}

static void test_wait_is_capped(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  char text[128];
  snprintf(text, sizeof text, "{\"op\":\"wait\",\"task_id\":\"%s\",\"timeout_s\":3600}", id);
  int64_t t0 = clock_mono_ms();
  json_t *r = run(f, &f->all, text);
  int64_t dt = clock_mono_ms() - t0;
  assert_true(r_ok(r));
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "task"), "status")), "queued");
  assert_true(dt < 15000); /* capped at 0.3 s, not 3600 s */
  json_decref(r);
}

typedef struct completer {
  fx *f;
  char id[33];
} completer;

static void *complete_later(void *arg) {
  completer *c = arg;
  usleep(50 * 1000);
  char text[256];
  snprintf(text, sizeof text, "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"result\":{\"done\":true}}", c->id);
  json_t *msg = json_loads(text, 0, NULL);
  taskq_call call = {.auth = &c->f->all};
  json_decref(taskq_handle(c->f->ctx, msg, &call));
  json_decref(msg);
  return NULL;
}

static void test_wait_returns_on_completion(void **state) {
  fx *f = *state;
  /* a cap far above the completer's 50 ms, so a loaded machine cannot turn it into a timeout */
  taskq_free(f->ctx);
  f->ctx = make_ctx(f, 30);
  assert_non_null(f->ctx);
  completer c = {f, ""};
  submit_one(f, "tool.call", c.id);
  claim_it(f, "w1", c.id);
  pthread_t th;
  pthread_create(&th, NULL, complete_later, &c);
  char text[128];
  snprintf(text, sizeof text, "{\"op\":\"wait\",\"task_id\":\"%s\",\"timeout_s\":0}", c.id);
  json_t *r = run(f, &f->all, text);
  pthread_join(th, NULL);
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "task"), "status")), "completed");
  json_decref(r);
}

static void test_peer_heartbeat_reports_scheduler(void **state) {
  fx *f = *state;
  auth_ctx local;
  auth_ctx_local(&local);
  /* the local operator may name any peer (the Python test's peer-A) */
  json_t *r = run(f, &local, "{\"op\":\"peer.heartbeat\",\"peer_id\":\"peer-A\",\"clock\":{\"vector\":{\"peer-A\":3}}}");
  assert_true(r_ok(r));
  assert_string_equal(json_string_value(json_object_get(r, "peer")), "peer-A");
  json_t *sch = json_object_get(r, "scheduler");
  json_t *clock = json_object_get(sch, "clock");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(clock, "vector"), "peer-A")), 3);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(clock, "vector"), "taskqueue-service")), 1);
  assert_int_equal(strlen(json_string_value(json_object_get(clock, "merkle_root"))), 64);
  assert_int_equal(json_array_size(json_object_get(sch, "known_peers")), 1);
  json_decref(r);
  /* a remote caller is its proven PeerId */
  r = run(f, &f->all, "{\"op\":\"heartbeat\"}");
  assert_string_equal(json_string_value(json_object_get(r, "peer")), PEER_W);
  json_decref(r);
  auth_ctx nopeer;
  auth_ctx_local(&nopeer);
  r = run(f, &nopeer, "{\"op\":\"peer\"}");
  assert_string_equal(r_err(r), "missing_peer_id");
  json_decref(r);
}

/* Issue 9 item 5: a token holder's heartbeats cannot insert made-up peers — a remote caller
 * updates only the entry of the PeerId it proved; what it names is a hint. */
static void test_peer_heartbeat_ties_entry_to_authenticated_peer(void **state) {
  fx *f = *state;
  for (int i = 0; i < 20000; i++) {
    char text[160];
    snprintf(text, sizeof text, "{\"op\":\"peer.heartbeat\",\"peer_id\":\"made-up-%d\",\"token\":\"s3cr3t\"}", i);
    json_t *r = run(f, &f->anon, text);
    assert_true(r_ok(r));
    if (i == 0) {
      assert_string_equal(json_string_value(json_object_get(r, "peer")), f->anon.peer_id);
      assert_string_equal(json_string_value(json_object_get(r, "peer_hint")), "made-up-0");
    }
    json_decref(r);
  }
  taskq_sched_usage u;
  taskq_scheduler_usage(f->ctx, &u);
  assert_int_equal(u.peers, 1);
  /* the hint is kept on the caller's own entry, and the operator's view shows it */
  auth_ctx local;
  auth_ctx_local(&local);
  json_t *r = run(f, &local, "{\"op\":\"status\",\"detail\":true}");
  json_t *row = json_array_get(json_object_get(json_object_get(r, "scheduler"), "known_peers"), 0);
  assert_string_equal(json_string_value(json_object_get(row, "peer_id")), f->anon.peer_id);
  assert_string_equal(json_string_value(json_object_get(row, "peer_hint")), "made-up-19999");
  json_decref(r);
  /* a claim naming another peer updates the claimer's entry too */
  r = run(f, &f->all, "{\"op\":\"claim\",\"worker_id\":\"w\",\"peer_id\":\"someone-else\"}");
  assert_true(r_ok(r));
  json_decref(r);
  taskq_scheduler_usage(f->ctx, &u);
  assert_int_equal(u.peers, 2);
}

/* Many authenticated peers with oversized names and clocks: the table stays within its bounds
 * (entries, bytes), whatever the messages carry. */
static void test_scheduler_table_is_bounded(void **state) {
  fx *f = *state;
  size_t big = 100000;
  char *huge = malloc(big + 1);
  memset(huge, 'x', big);
  huge[big] = 0;
  for (int i = 0; i < 3000; i++) {
    auth_ctx who;
    char id[64];
    snprintf(id, sizeof id, "12D3KooWFresh%038d", i);
    auth_policy_peer_ctx(f->pol, id, &who);
    (void)auth_policy_present_token(f->pol, "s3cr3t", &who);
    json_t *vec = json_object();
    char key[64];
    snprintf(key, sizeof key, "node-%d", i);
    json_object_set_new(vec, key, json_integer(1));
    if (i % 100 == 0) json_object_set_new(vec, huge, json_integer(1)); /* too long: not added */
    json_t *m = json_pack("{s:s, s:s, s:s, s:{s:o}}", "op", i % 2 ? "peer.heartbeat" : "claim", "worker_id", huge,
                          "peer_id", huge, "clock", "vector", vec);
    taskq_call call = {.auth = &who};
    json_t *r = taskq_handle(f->ctx, m, &call);
    assert_non_null(r); /* a claim with a 100 kB worker id is refused by the queue; still recorded */
    if (i % 2) { /* the reply lists a bounded number of peers, whatever the table holds */
      assert_true(r_ok(r));
      json_t *sch = json_object_get(r, "scheduler");
      assert_true(json_array_size(json_object_get(sch, "known_peers")) <= 32);
    }
    json_decref(r);
    json_decref(m);
  }
  free(huge);
  taskq_sched_usage u;
  taskq_scheduler_usage(f->ctx, &u);
  assert_int_equal(u.peers, u.max_peers);
  assert_int_equal(u.max_peers, 1024);
  assert_true(u.clock_nodes <= 1024);
  assert_true(u.bytes < 1024 * 1024); /* 1,024 entries of bounded size: well under 1 MiB */
}

static void test_status_detail_sections(void **state) {
  fx *f = *state;
  char id[33];
  submit_one(f, "tool.call", id);
  json_t *r = run(f, &f->all, "{\"op\":\"describe\",\"detail\":true}");
  assert_true(r_ok(r));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "queue"), "queued")), 1);
  assert_non_null(json_object_get(json_object_get(r, "scheduler"), "counts"));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"capabilities\"}");
  assert_null(json_object_get(r, "queue"));
  json_decref(r);
}

/* Issue 9 item 5: what a caller without credentials learns from status. */
static void test_stranger_status_is_bootstrap_only(void **state) {
  fx *f = *state;
  json_t *caps = json_pack("{s:[s, s], s:[], s:{}, s:{}, s:{}, s:[]}", "task_types", "tool.call", "secret_command_tool",
                           "models", "endpoints_by_model", "endpoint_types_by_model", "hwtest", "resource_keys");
  assert_int_equal(taskq_set_capabilities(f->ctx, caps), 0);
  json_decref(caps);
  json_t *r = run(f, &f->anon, "{\"op\":\"status\"}");
  assert_true(r_ok(r));
  static const char *allowed[] = {"ok", "peer_id", "protocol", "auth_required", "capabilities", "nat"};
  const char *k;
  json_t *v;
  json_object_foreach(r, k, v) {
    bool known = false;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) known |= strcmp(k, allowed[i]) == 0;
    if (!known) fail_msg("a stranger's status has the key %s", k);
  }
  assert_true(json_is_true(json_object_get(r, "auth_required")));
  assert_int_equal(json_array_size(json_object_get(json_object_get(r, "capabilities"), "task_types")), 0);
  char *text = json_dumps(r, 0);
  assert_null(strstr(text, "secret_command_tool"));
  free(text);
  json_decref(r);
  /* detail: refused, for every alias */
  for (const char **op = (const char *[]){"status", "capabilities", "describe", NULL}; *op; op++) {
    char msg[80];
    snprintf(msg, sizeof msg, "{\"op\":\"%s\",\"detail\":true}", *op);
    r = run(f, &f->anon, msg);
    assert_string_equal(r_err(r), "unauthorized");
    json_decref(r);
  }
  /* a caller with only cache.read: the plain status (task types included), not the detail */
  auth_ctx reader;
  auth_ctx_init(&reader, AUTH_KIND_PEER);
  reader.scopes = AUTH_SCOPES(AUTH_CACHE_READ);
  r = run(f, &reader, "{\"op\":\"status\"}");
  assert_int_equal(json_array_size(json_object_get(json_object_get(r, "capabilities"), "task_types")), 2);
  assert_string_equal(json_string_value(json_object_get(r, "scopes")), "cache.read");
  json_decref(r);
  r = run(f, &reader, "{\"op\":\"status\",\"detail\":1}");
  assert_string_equal(r_err(r), "unauthorized");
  json_decref(r);
  /* the token opens the detail */
  r = run(f, &f->anon, "{\"op\":\"status\",\"detail\":true,\"token\":\"s3cr3t\"}");
  assert_true(r_ok(r));
  assert_non_null(json_object_get(r, "scheduler"));
  json_decref(r);
}

static void test_call_tool_shapes(void **state) {
  fx *f = *state;
  json_t *r = run(f, &f->all, "{\"op\":\"call_tool\"}");
  assert_string_equal(r_err(r), "missing_tool_name");
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"tool\",\"tool_name\":\"echo\",\"args\":{\"x\":1}}");
  assert_true(r_ok(r));
  assert_string_equal(json_string_value(json_object_get(r, "tool")), "echo");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(r, "result"), "echo"), "x")), 1);
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"tool.call\",\"name\":\"echo\",\"params\":5}");
  assert_int_equal(json_integer_value(json_object_get(f->last_args, "value")), 5);
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"call_tool\",\"tool\":\"boom\"}");
  assert_false(r_ok(r));
  assert_string_equal(json_string_value(json_object_get(r, "error")), "it broke");
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"call_tool\",\"tool\":\"nope\"}");
  assert_string_equal(r_err(r), "unknown_tool");
  json_decref(r);
}

static void test_call_tool_disabled_and_unavailable(void **state) {
  fx *f = *state;
  taskq_config cfg;
  taskq_config_default(&cfg);
  cfg.peer_id = OUR_ID;
  cfg.tools_enabled = false;
  taskq_ctx *ctx = taskq_new(&cfg);
  json_t *msg = json_pack("{s:s, s:s}", "op", "call_tool", "tool", "echo");
  taskq_call call = {.auth = &f->all};
  json_t *r = taskq_handle(ctx, msg, &call);
  assert_string_equal(r_err(r), "tools_disabled");
  json_decref(r);
  taskq_free(ctx);
  cfg.tools_enabled = true;
  ctx = taskq_new(&cfg);
  r = taskq_handle(ctx, msg, &call);
  assert_string_equal(r_err(r), "mcp_registry_unavailable");
  json_decref(r);
  /* no queue, no cache */
  json_t *m2 = json_pack("{s:s, s:s}", "op", "cache.get", "key", "k");
  r = taskq_handle(ctx, m2, &call);
  assert_string_equal(r_err(r), "cache_disabled");
  json_decref(r);
  json_decref(m2);
  m2 = json_pack("{s:s}", "op", "list");
  r = taskq_handle(ctx, m2, &call);
  assert_string_equal(r_err(r), "queue_disabled");
  json_decref(r);
  json_decref(m2);
  taskq_free(ctx);
  json_decref(msg);
}

static void test_cache_ops_shapes(void **state) {
  fx *f = *state;
  json_t *r = run(f, &f->all, "{\"op\":\"cache.get\",\"key\":\"k1\"}");
  assert_true(r_ok(r));
  assert_true(json_is_false(json_object_get(r, "hit")));
  assert_true(json_is_null(json_object_get(r, "value")));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"cache_set\",\"key\":\"k1\",\"value\":{\"a\":1},\"ttl_s\":null}");
  assert_true(r_ok(r));
  assert_string_equal(json_string_value(json_object_get(r, "key")), "k1");
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"cache\",\"key\":\"k1\"}");
  assert_true(json_is_true(json_object_get(r, "hit")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "value"), "a")), 1);
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"cache_has\",\"key\":\"k1\"}");
  assert_true(json_is_true(json_object_get(r, "hit")));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"cache_del\",\"key\":\"k1\"}");
  assert_true(json_is_true(json_object_get(r, "deleted")));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"cache_delete\",\"key\":\"k1\"}");
  assert_true(json_is_false(json_object_get(r, "deleted")));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"cache.get\"}");
  assert_string_equal(r_err(r), "missing_key");
  json_decref(r);
}

static void test_cache_scopes_are_separate(void **state) {
  fx *f = *state;
  auth_policy *p = auth_policy_new();
  auth_scopes rs = AUTH_SCOPES(AUTH_CACHE_READ);
  assert_int_equal(auth_policy_add_peer(p, PEER_W, &rs), 0);
  auth_ctx ro;
  auth_policy_peer_ctx(p, PEER_W, &ro);
  json_t *r = run(f, &ro, "{\"op\":\"cache.get\",\"key\":\"k\"}");
  assert_true(r_ok(r));
  json_decref(r);
  r = run(f, &ro, "{\"op\":\"cache.set\",\"key\":\"k\",\"value\":1}");
  assert_string_equal(r_err(r), "unauthorized");
  json_decref(r);
  auth_policy_free(p);
}

static json_t *g_fwd;
static void record_fwd(void *ud, const json_t *fwd) {
  (void)ud;
  json_array_append_new(g_fwd, json_deep_copy(fwd));
}

static void test_cache_writes_are_replicated_unless_told_not_to(void **state) {
  fx *f = *state;
  taskq_config cfg;
  taskq_config_default(&cfg);
  cfg.cache = f->c;
  cfg.peer_id = OUR_ID;
  cfg.replicate = record_fwd;
  taskq_ctx *ctx = taskq_new(&cfg);
  g_fwd = json_array();
  taskq_call call = {.auth = &f->all};
  json_t *m = json_pack("{s:s, s:s, s:{s:i}, s:f}", "op", "cache.set", "key", "rk", "value", "a", 1, "ttl_s", 30.0);
  json_decref(taskq_handle(ctx, m, &call));
  json_decref(m);
  m = json_pack("{s:s, s:s, s:i, s:b}", "op", "cache.set", "key", "rk2", "value", 2, "replicate", 0);
  json_decref(taskq_handle(ctx, m, &call));
  json_decref(m);
  m = json_pack("{s:s, s:s}", "op", "cache.delete", "key", "rk");
  json_decref(taskq_handle(ctx, m, &call));
  json_decref(m);
  assert_int_equal(json_array_size(g_fwd), 2); /* the replicate:false write stayed local */
  json_t *a = json_array_get(g_fwd, 0);
  assert_string_equal(json_string_value(json_object_get(a, "op")), "cache.set");
  assert_string_equal(json_string_value(json_object_get(a, "origin_peer_id")), OUR_ID);
  assert_true(json_is_false(json_object_get(a, "replicate")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "value"), "a")), 1);
  assert_true(json_real_value(json_object_get(a, "ttl_s")) == 30.0);
  assert_string_equal(json_string_value(json_object_get(json_array_get(g_fwd, 1), "op")), "cache.delete");
  json_decref(g_fwd);
  taskq_free(ctx);
}

/* The spec's formula, derived again here: owner = argmin Hamming(sha256(clock:sha256(id:type:model)),
 * sha256(peer)), first on a tie. */
static void hex_sha(const char *t, char out[65]) {
  unsigned char h[32];
  crypto_hash_sha256(h, (const unsigned char *)t, strlen(t));
  sodium_bin2hex(out, 65, h, 32);
}
static int nib(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }
static const char *expected_owner(const char *id, const char *type, const char *model, const char *const *peers, int n) {
  const char *clock = "d83964234cb3f7451644cb8dfbd8a97cb70571490208c3ffcb5b346c43c380fa";
  char buf[256], th[65], comb[65];
  snprintf(buf, sizeof buf, "%s:%s:%s", id, type, model);
  hex_sha(buf, th);
  snprintf(buf, sizeof buf, "%s:%s", clock, th);
  hex_sha(buf, comb);
  int best = -1, bd = 1000;
  for (int i = 0; i < n; i++) {
    char ph[65];
    hex_sha(peers[i], ph);
    int d = 0;
    for (int k = 0; k < 64; k++) d += __builtin_popcount((unsigned)(nib(comb[k]) ^ nib(ph[k])));
    if (d < bd) bd = d, best = i;
  }
  return peers[best];
}

static void test_deterministic_claim_gives_each_peer_its_own_tasks(void **state) {
  fx *f = *state;
  taskq_config cfg;
  taskq_config_default(&cfg);
  cfg.queue = f->q;
  cfg.peer_id = OUR_ID;
  cfg.deterministic = true;
  taskq_ctx *ctx = taskq_new(&cfg);
  auth_ctx local; /* only the operator may name peers (a remote caller is its PeerId) */
  auth_ctx_local(&local);
  taskq_call call = {.auth = &local};
  const char *names[2] = {"peer-A", "peer-B"};
  for (int i = 0; i < 2; i++) {
    json_t *m = json_pack("{s:s, s:s}", "op", "peer.heartbeat", "peer_id", names[i]);
    json_decref(taskq_handle(ctx, m, &call));
    json_decref(m);
  }
  char ids[8][33];
  for (int i = 0; i < 8; i++) {
    json_t *m = json_pack("{s:s, s:s, s:{s:i}}", "op", "submit", "task_type", "tool.call", "payload", "priority", 10 - i);
    json_t *r = taskq_handle(ctx, m, &call);
    snprintf(ids[i], 33, "%s", json_string_value(json_object_get(r, "task_id")));
    json_decref(r);
    json_decref(m);
  }
  bool taken[8] = {false};
  int claims = 0;
  for (int round = 0; round < 8; round++) {
    for (int who = 0; who < 2; who++) {
      const char *peers[3] = {names[0], names[1], names[who]};
      int want = -1; /* highest priority first: ids are in priority order */
      for (int i = 0; i < 8 && want < 0; i++)
        if (!taken[i] && strcmp(expected_owner(ids[i], "tool.call", "", peers, 3), names[who]) == 0) want = i;
      json_t *m = json_pack("{s:s, s:s, s:s}", "op", "claim", "worker_id", names[who], "peer_id", names[who]);
      json_t *r = taskq_handle(ctx, m, &call);
      json_t *t = json_object_get(r, "task");
      if (want < 0) {
        assert_true(json_is_null(t));
      } else {
        assert_string_equal(json_string_value(json_object_get(t, "task_id")), ids[want]);
        taken[want] = true;
        claims++;
      }
      json_decref(r);
      json_decref(m);
    }
  }
  assert_int_equal(claims, 8); /* every task went to its owner */
  taskq_free(ctx);
}

static void test_merkle_root_matches_python_vector(void **state) {
  (void)state;
  json_t *v = json_pack("{s:i}", "taskqueue-service", 0);
  char root[65];
  taskq_merkle_root(v, root);
  assert_string_equal(root, "d83964234cb3f7451644cb8dfbd8a97cb70571490208c3ffcb5b346c43c380fa");
  json_decref(v);
}

static void test_task_types_normalize(void **state) {
  (void)state;
  json_t *in = json_pack("[s, s, s]", " Tool ", "embedding", "tool.call");
  json_t *out = taskq_task_types_normalize(in, true);
  assert_string_equal(json_string_value(json_array_get(out, 0)), "tool.call");
  assert_string_equal(json_string_value(json_array_get(out, 1)), "tool");
  assert_string_equal(json_string_value(json_array_get(out, 2)), "embedding");
  assert_int_equal(json_array_size(out), 7); /* tool family (2) + embedding family (5) */
  json_decref(out);
  out = taskq_task_types_normalize(in, false);
  assert_int_equal(json_array_size(out), 3);
  json_decref(out);
  json_decref(in);
  assert_string_equal(taskq_task_type_canonical("stt"), "voice.asr");
  assert_string_equal(taskq_task_type_canonical("custom"), "custom");
}

/* A bad token refuses even an op that needs no scope (and is audited); trust tiers cap what a
 * baseline caller may claim, from verified credentials only (§4.3, fixing §12.2). */
static void test_bad_credential_refuses_and_tiers_cap_baseline_claims(void **state) {
  fx *f = *state;
  uint64_t a0 = auth_audit_count(AUTH_TR_INTERNAL, AUTH_REASON_INVALID);
  json_t *r = run(f, &f->anon, "{\"op\":\"status\",\"token\":\"wrong\"}");
  assert_string_equal(r_err(r), "unauthorized");
  json_decref(r);
  assert_int_equal(auth_audit_count(AUTH_TR_INTERNAL, AUTH_REASON_INVALID), a0 + 1);
  r = run(f, &f->anon, "{\"op\":\"status\",\"jwt\":\"s3cr3t\"}"); /* the jwt field carries credentials too */
  assert_true(r_ok(r));
  json_decref(r);
  /* a high-priority task and a low one */
  r = run(f, &f->all, "{\"op\":\"submit\",\"task_type\":\"t\",\"payload\":{\"priority\":9}}");
  assert_true(r_ok(r));
  json_decref(r);
  r = run(f, &f->all, "{\"op\":\"submit\",\"task_type\":\"t\",\"payload\":{\"priority\":2}}");
  assert_true(r_ok(r));
  json_decref(r);
  taskq_free(f->ctx);
  taskq_config cfg;
  taskq_config_default(&cfg);
  cfg.queue = f->q;
  cfg.cache = f->c;
  cfg.policy = f->pol;
  cfg.peer_id = OUR_ID;
  cfg.trust_tiers = true;
  cfg.baseline_max_priority = 5;
  f->ctx = taskq_new(&cfg);
  /* a baseline caller with the worker scope (an open mesh's anonymous grant) gets only the
   * low-priority task; presence of a "jwt" field that is not valid gets it nothing */
  auth_ctx open = f->anon;
  open.scopes = AUTH_SCOPES(AUTH_WORKER);
  assert_int_equal(auth_ctx_tier(&open), AUTH_TIER_BASELINE);
  r = run(f, &open, "{\"op\":\"claim\",\"worker_id\":\"w1\",\"jwt\":\"forged.not.valid\"}");
  assert_string_equal(r_err(r), "unauthorized");
  json_decref(r);
  r = run(f, &open, "{\"op\":\"claim\",\"worker_id\":\"w1\"}");
  assert_true(r_ok(r));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(r, "task"), "payload"), "priority")), 2);
  json_decref(r);
  r = run(f, &open, "{\"op\":\"claim\",\"worker_id\":\"w1\"}");
  assert_true(json_is_null(json_object_get(r, "task")));
  json_decref(r);
  /* the shared token makes the caller trusted: the high one */
  r = run(f, &open, "{\"op\":\"claim\",\"worker_id\":\"w2\",\"token\":\"s3cr3t\"}");
  assert_true(r_ok(r));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(r, "task"), "payload"), "priority")), 9);
  json_decref(r);
}


/* ---- the hot ops' replies written as text (TASKQ_ASYNC_RAW, issue 11 §2) ---- */

/* One hot op through taskq_handle_async; its reply (new reference). */
static json_t *hot_op(fx *f, const char *text, unsigned flags) { return run_async_flags(f, &f->all, text, NULL, flags); }

/* The text reply is the tree reply's bytes (jwrite_json, ASCII-only): *want is what the tree
 * path answers, built from the same facts. */
static void expect_text_of(json_t *raw, json_t *want) {
  assert_true(json_is_string(raw));
  char *w = jwrite_dumps(want, JWRITE_ASCII);
  assert_non_null(w);
  assert_int_equal(json_string_length(raw), strlen(w));
  assert_memory_equal(json_string_value(raw), w, strlen(w));
  free(w);
  json_decref(want);
}

static void test_hot_replies_as_text_are_the_tree_bytes(void **state) {
  fx *f = *state;
  /* submit: {"ok","peer_id","task_id"} */
  json_t *r = hot_op(f, "{\"op\":\"submit\",\"task_type\":\"tool.call\",\"payload\":{\"tool\":\"echo\",\"args\":"
                        "{\"s\":\"caf\\u00e9\",\"x\":1.25,\"n\":[1,null,true]}}}", TASKQ_ASYNC_RAW);
  assert_true(json_is_string(r));
  json_t *rt = json_loads(json_string_value(r), 0, NULL);
  const char *id = json_string_value(json_object_get(rt, "task_id"));
  assert_non_null(id);
  char task_id[33];
  snprintf(task_id, sizeof task_id, "%s", id);
  json_decref(rt);
  json_t *want = json_object();
  json_object_set_new(want, "ok", json_true());
  json_object_set_new(want, "peer_id", json_string(OUR_ID));
  json_object_set_new(want, "task_id", json_string(task_id));
  expect_text_of(r, want);
  json_decref(r);
  /* without the flag: the object, as before */
  r = hot_op(f, "{\"op\":\"submit\",\"task_type\":\"other\",\"payload\":{}}", 0);
  assert_true(json_is_object(r));
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  /* claim: {"ok","peer_id","task":<claim dict + lease_epoch, cancel_requested>} */
  r = hot_op(f, "{\"op\":\"claim\",\"worker_id\":\"w1\",\"task_types\":[\"tool.call\"]}", TASKQ_ASYNC_RAW);
  want = json_object();
  json_object_set_new(want, "ok", json_true());
  json_object_set_new(want, "peer_id", json_string(OUR_ID));
  json_object_set_new(want, "task", ts_queue_row_json(f->q, task_id, TQ_JSON_CLAIM | TQ_JSON_EXTRA));
  assert_string_equal(json_string_value(json_object_get(json_object_get(want, "task"), "status")), "running");
  expect_text_of(r, want);
  json_decref(r);
  /* an empty claim that waited: "task":null and wait_s */
  r = hot_op(f, "{\"op\":\"claim\",\"worker_id\":\"w1\",\"task_types\":[\"tool.call\"],\"wait_s\":0.05}",
             TASKQ_ASYNC_RAW);
  want = json_pack("{s:b, s:s, s:n, s:f}", "ok", 1, "peer_id", OUR_ID, "task", "wait_s", 0.05);
  expect_text_of(r, want);
  json_decref(r);
  /* complete (fenced by the lease epoch): {"ok","task_id","peer_id"}; a stale epoch is still
   * refused, as an object */
  json_t *cur = ts_queue_row_json(f->q, task_id, TQ_JSON_CLAIM | TQ_JSON_EXTRA);
  json_int_t epoch = json_integer_value(json_object_get(cur, "lease_epoch"));
  json_decref(cur);
  char msg[512];
  snprintf(msg, sizeof msg, "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld,"
           "\"result\":{\"v\":\"\\u2603\"}}", task_id, (long long)(epoch + 5));
  r = hot_op(f, msg, TASKQ_ASYNC_RAW);
  assert_true(json_is_object(r));
  assert_true(json_is_false(json_object_get(r, "ok")));
  json_decref(r);
  snprintf(msg, sizeof msg, "{\"op\":\"complete\",\"task_id\":\"%s\",\"worker_id\":\"w1\",\"lease_epoch\":%lld,"
           "\"result\":{\"v\":\"\\u2603\"}}", task_id, (long long)epoch);
  r = hot_op(f, msg, TASKQ_ASYNC_RAW);
  want = json_pack("{s:b, s:s, s:s}", "ok", 1, "task_id", task_id, "peer_id", OUR_ID);
  expect_text_of(r, want);
  json_decref(r);
  /* the wait's reply from the finished row: the full dict */
  tq_task *t = NULL;
  assert_int_equal(tq_get(f->q, task_id, &t), 0);
  assert_int_equal(t->status, TQ_COMPLETED);
  r = taskq_wait_reply_task_raw(f->ctx, t);
  expect_text_of(r, taskq_wait_reply_task(f->ctx, t));
  json_decref(r);
  tq_task_free(t);
  r = taskq_wait_reply_task_raw(f->ctx, NULL);
  expect_text_of(r, taskq_wait_reply_task(f->ctx, NULL));
  json_decref(r);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_unauthorized_peer_gets_status_only),
      T(test_unknown_op),
      T(test_submit_get_list_shapes),
      T(test_submit_wraps_non_object_payload_and_default_type),
      T(test_submit_idempotency_key_replays),
      T(test_claim_requires_worker_and_expands_aliases),
      T(test_claim_many_returns_batch),
      T(test_complete_is_fenced_by_owner_and_epoch),
      T(test_claim_waits_for_work_when_asked),
      T(test_claim_wait_is_capped_per_caller),
      T(test_async_hot_ops_reply_like_the_blocking_path),
      T(test_complete_odd_status_becomes_failed),
      T(test_release_requires_worker_and_requeues),
      T(test_task_heartbeat_renews_and_reports_cancel),
      T(test_fail_retries_then_fails),
      T(test_cancel_queued),
      T(test_wait_is_capped),
      T(test_wait_returns_on_completion),
      T(test_peer_heartbeat_reports_scheduler),
      T(test_peer_heartbeat_ties_entry_to_authenticated_peer),
      T(test_scheduler_table_is_bounded),
      T(test_status_detail_sections),
      T(test_stranger_status_is_bootstrap_only),
      T(test_call_tool_shapes),
      T(test_call_tool_disabled_and_unavailable),
      T(test_cache_ops_shapes),
      T(test_cache_scopes_are_separate),
      T(test_cache_writes_are_replicated_unless_told_not_to),
      T(test_deterministic_claim_gives_each_peer_its_own_tasks),
      T(test_hot_replies_as_text_are_the_tree_bytes),
      cmocka_unit_test(test_merkle_root_matches_python_vector),
      T(test_bad_credential_refuses_and_tiers_cap_baseline_claims),
      cmocka_unit_test(test_task_types_normalize),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

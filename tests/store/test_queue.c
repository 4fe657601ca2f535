/* Unit tests for store/queue: each test is one rule of p2p_tasks_spec.md §5 or a §12 fix. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "store/queue.h"
#include "support/tmpdir.h"
#include "support/wait.h"
#include "util/clock.h"
#include "util/jwrite.h"

typedef struct {
  char dir[TS_TMPDIR_MAX];
  char path[TS_TMPDIR_MAX + 32];
  tq_queue *q;
} fx;

static int fx_setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  ts_tmpdir_make(f->dir, "tq-test");
  snprintf(f->path, sizeof f->path, "%s/sub/queue.sqlite3", f->dir);
  tq_options o;
  tq_options_default(&o);
  o.path = f->path;
  if (tq_open(&o, &f->q) != 0) return -1;
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx *f = *state;
  tq_close(f->q);
  if (ts_tmpdir_remove(f->dir) != 0) return -1;
  free(f);
  return 0;
}

static void submit_p(tq_queue *q, const char *type, const char *payload, char id[33]) {
  json_t *p = json_loads(payload, 0, NULL);
  assert_non_null(p);
  tq_submit_req r = {.task_type = type, .payload = p};
  assert_int_equal(tq_submit(q, &r, id, NULL), 0);
  json_decref(p);
}

static tq_claim_opts worker(const char *id) {
  tq_claim_opts c = {.worker_id = id};
  return c;
}

/* ---- WAL prefill (tq_options.wal_prefill) ---- */

static off_t wal_size(const char *db) {
  char p[TS_TMPDIR_MAX + 64];
  snprintf(p, sizeof p, "%s-wal", db);
  struct stat st;
  return stat(p, &st) == 0 ? st.st_size : -1;
}

static void submit_n(tq_queue *q, int from, int n) {
  json_t *p = json_pack("{s:s}", "pad", "0123456789012345678901234567890123456789");
  for (int i = from; i < from + n; i++) {
    char want[33], id[33];
    snprintf(want, sizeof want, "%032x", i + 1);
    tq_submit_req r = {.task_type = "t", .payload = p, .task_id = want};
    assert_int_equal(tq_submit(q, &r, id, NULL), 0);
  }
  json_decref(p);
}

/* The writer keeps written zeros ahead of the WAL's last frame (1 MiB first, up to the
 * autocheckpoint's length), its own checkpoints still bound the WAL, and with the option off
 * the WAL holds only SQLite's frames. */
static void test_wal_prefill_stays_ahead_and_checkpoints_bound_it(void **state) {
  (void)state;
  for (int on = 0; on <= 1; on++) {
    char dir[TS_TMPDIR_MAX], path[TS_TMPDIR_MAX + 32];
    ts_tmpdir_make(dir, "tq-prefill");
    snprintf(path, sizeof path, "%s/q.sqlite3", dir);
    tq_options o;
    tq_options_default(&o);
    assert_true(o.wal_prefill);
    assert_int_equal(o.wal_autocheckpoint, 8192);
    o.path = path;
    o.wal_prefill = on;
    o.wal_autocheckpoint = 200; /* ~0.8 MiB of frames between checkpoints */
    tq_queue *q;
    assert_int_equal(tq_open(&o, &q), 0);
    submit_n(q, 0, 1);
    tq_io_stats io;
    /* the writer tops the zeros up after it has answered the group */
    if (on) TS_WAIT_UNTIL(TS_DEADLINE_MS, (tq_io_stats_get(q, &io), io.wal_prefill_bytes > 0));
    else usleep(100 * 1000);
    tq_io_stats_get(q, &io);
    off_t sz = wal_size(path);
    if (on) {
      assert_true(io.wal_prefill_bytes > 0 && io.wal_prefill_bytes <= 32 + 456 * 4120);
      assert_true(sz >= 1 << 20);
    } else {
      assert_int_equal(io.wal_prefill_bytes, 0);
      assert_true(sz > 0 && sz < 256 * 1024);
    }
    /* ~600 commits of a few frames each: several times the autocheckpoint's length */
    submit_n(q, 1, 600);
    tq_io_stats_get(q, &io);
    sz = wal_size(path);
    /* bounded by the checkpoints (the cap: 32 + (200 + 256) frames of 4,120 bytes) */
    assert_true(sz > 0 && sz <= 32 + 456 * 4120);
    if (on) assert_true(io.wal_prefill_bytes <= 32 + 456 * 4120);
    tq_close(q);
    assert_int_equal(ts_tmpdir_remove(dir), 0);
  }
}

/* A process that dies with written zeros after its WAL's last frame leaves a queue that opens
 * with every acknowledged submit in it (SQLite's recovery stops at the first invalid frame):
 * once right after the first top-up (the zeros written just past the commit that asked for
 * them), once after 300 submits. */
static void test_wal_prefill_survives_a_crash(void **state) {
  (void)state;
  const int counts[] = {1, 300};
  for (int c = 0; c < 2; c++) {
    int n = counts[c];
    char dir[TS_TMPDIR_MAX], path[TS_TMPDIR_MAX + 32];
    ts_tmpdir_make(dir, "tq-prefill-crash");
    snprintf(path, sizeof path, "%s/q.sqlite3", dir);
    tq_options o;
    tq_options_default(&o);
    o.path = path;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      tq_queue *q;
      if (tq_open(&o, &q) != 0) _exit(2);
      json_t *p = json_object();
      for (int i = 0; i < n; i++) {
        char want[33], id[33];
        snprintf(want, sizeof want, "%032x", i + 1);
        tq_submit_req r = {.task_type = "t", .payload = p, .task_id = want};
        if (tq_submit(q, &r, id, NULL) != 0) _exit(3);
      }
      tq_io_stats io;
      for (int k = 0; k < 10000; k++) { /* the top-up follows the answer: let it happen */
        tq_io_stats_get(q, &io);
        if (io.wal_prefill_bytes) break;
        usleep(1000);
      }
      _exit(io.wal_prefill_bytes ? 0 : 4); /* no tq_close: no checkpoint, the WAL and its zeros stay */
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    assert_true(wal_size(path) >= 1 << 20);
    tq_queue *q;
    assert_int_equal(tq_open(&o, &q), 0);
    for (int i = 0; i < n; i++) {
      char want[33];
      snprintf(want, sizeof want, "%032x", i + 1);
      tq_task *t = NULL;
      assert_int_equal(tq_get(q, want, &t), 0);
      assert_int_equal(t->status, TQ_QUEUED);
      tq_task_free(t);
    }
    /* and it goes on: new commits land after the recovered frames */
    submit_n(q, n, 10);
    tq_close(q);
    assert_int_equal(tq_open(&o, &q), 0);
    char last[33];
    snprintf(last, sizeof last, "%032x", n + 10);
    tq_task *t = NULL;
    assert_int_equal(tq_get(q, last, &t), 0);
    tq_task_free(t);
    tq_close(q);
    assert_int_equal(ts_tmpdir_remove(dir), 0);
  }
}

static void test_submit_returns_32_hex_id_and_full_task_dict(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "text-generation", "{\"b\": 1, \"a\": \"\\u00e9\"}", id);
  assert_int_equal(strlen(id), 32);
  for (int i = 0; i < 32; i++) assert_true(strchr("0123456789abcdef", id[i]) != NULL);
  tq_task *t;
  assert_int_equal(tq_get(f->q, id, &t), 0);
  /* Python json.dumps(payload, sort_keys=True): default separators, ensure_ascii */
  assert_string_equal(t->payload_json, "{\"a\": \"\\u00e9\", \"b\": 1}");
  assert_int_equal(t->status, TQ_QUEUED);
  assert_int_equal(t->priority, 5);
  assert_int_equal(t->max_attempts, 3);
  assert_int_equal(t->attempt, 0);
  assert_true(fabs(t->created_at - clock_wall_s()) < 5);
  json_t *j = tq_task_to_json(t, TQ_JSON_FULL);
  const char *keys[] = {"task_id", "task_type", "model_name", "payload", "status", "assigned_worker",
                        "created_at", "updated_at", "result", "error", "priority", "attempt",
                        "max_attempts", "next_attempt_at", "lease_until", "heartbeat_at", "idempotency_key"};
  assert_int_equal(json_object_size(j), 17);
  for (size_t i = 0; i < 17; i++) assert_non_null(json_object_get(j, keys[i]));
  assert_true(json_is_null(json_object_get(j, "assigned_worker")));
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "payload"), "a")), "\xc3\xa9");
  json_decref(j);
  j = tq_task_to_json(t, TQ_JSON_CLAIM);
  assert_int_equal(json_object_size(j), 7);
  json_decref(j);
  tq_task_free(t);
}

static void test_idempotency_same_work_replays_different_work_fails(void **state) {
  fx *f = *state;
  json_t *p = json_pack("{s:s, s:i}", "idempotency_key", "k1", "x", 1);
  tq_submit_req r = {.task_type = "t", .payload = p};
  char a[33], b[33];
  bool replayed = true;
  assert_int_equal(tq_submit(f->q, &r, a, &replayed), 0);
  assert_false(replayed);
  assert_int_equal(tq_submit(f->q, &r, b, &replayed), 0);
  assert_true(replayed);
  assert_string_equal(a, b);
  json_object_set_new(p, "x", json_integer(2));
  assert_int_equal(tq_submit(f->q, &r, b, &replayed), -EEXIST);
  assert_string_equal(tq_strerror(-EEXIST), "idempotency key or task_id already identifies different work");
  json_decref(p);
  tq_counts c;
  assert_int_equal(tq_count(f->q, &c), 0);
  assert_int_equal(c.by_status[TQ_QUEUED], 1);
}

static void test_explicit_task_id_must_be_32_lower_hex(void **state) {
  fx *f = *state;
  json_t *p = json_object();
  char id[33];
  tq_submit_req r = {.task_type = "t", .payload = p, .task_id = "ABCDEF0123456789abcdef0123456789"};
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL);
  r.task_id = "abcdef0123456789abcdef0123456789";
  assert_int_equal(tq_submit(f->q, &r, id, NULL), 0);
  assert_string_equal(id, r.task_id);
  json_decref(p);
}

static void test_claim_order_is_priority_desc_then_created(void **state) {
  fx *f = *state;
  char low[33], high[33], mid1[33], mid2[33], absurd[33];
  submit_p(f->q, "t", "{\"priority\": 1}", low);
  submit_p(f->q, "t", "{\"priority\": 5}", mid1);
  submit_p(f->q, "t", "{\"priority\": 9}", high);
  submit_p(f->q, "t", "{\"priority\": 5}", mid2);
  submit_p(f->q, "t", "{\"priority\": 99999}", absurd); /* clamped to 10 */
  const char *want[] = {absurd, high, mid1, mid2, low};
  tq_claim_opts c = worker("w1");
  for (int i = 0; i < 5; i++) {
    tq_task *t;
    assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
    assert_non_null(t);
    assert_string_equal(t->task_id, want[i]);
    assert_int_equal(t->status, TQ_RUNNING);
    assert_string_equal(t->assigned_worker, "w1");
    assert_int_equal(t->attempt, 1);
    tq_task_free(t);
  }
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  assert_null(t);
}

static void test_claim_respects_types_backoff_session_and_sticky(void **state) {
  fx *f = *state;
  char a[33], later[33], sess[33], sticky[33];
  submit_p(f->q, "type-a", "{}", a);
  char buf[128];
  snprintf(buf, sizeof buf, "{\"next_attempt_at\": %.3f}", clock_wall_s() + 3600);
  submit_p(f->q, "type-b", buf, later);
  submit_p(f->q, "type-c", "{\"session_id\": \"S1\"}", sess);
  submit_p(f->q, "type-d", "{\"sticky_worker_id\": \"w9\"}", sticky);
  tq_task *t;
  const char *tb[] = {"type-b"};
  tq_claim_opts c = {.worker_id = "w1", .task_types = tb, .n_task_types = 1};
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  assert_null(t); /* backoff */
  const char *tc[] = {"type-c"};
  c.task_types = tc;
  c.session_id = "S2";
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  assert_null(t); /* other session */
  c.session_id = "S1";
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  assert_non_null(t);
  assert_string_equal(t->task_id, sess);
  tq_task_free(t);
  const char *td[] = {"type-d"};
  c.task_types = td;
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  assert_null(t); /* sticky to w9 */
  c.worker_id = "w9";
  assert_int_equal(tq_claim(f->q, sticky, &c, &t), 0);
  assert_non_null(t);
  tq_task_free(t);
}

static void test_claim_many_same_type_batch(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "x", "{\"priority\": 9}", id);
  submit_p(f->q, "y", "{}", id);
  submit_p(f->q, "x", "{}", id);
  submit_p(f->q, "x", "{}", id);
  tq_claim_opts c = {.worker_id = "w", .max_tasks = 10, .same_task_type = true};
  tq_task **v;
  size_t n;
  assert_int_equal(tq_claim_many(f->q, &c, &v, &n), 0);
  assert_int_equal(n, 3);
  for (size_t i = 0; i < n; i++) assert_string_equal(v[i]->task_type, "x");
  tq_task_array_free(v, n);
}

static void test_heartbeat_renews_lease_and_fencing_rejects_old_epoch(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{}", id);
  tq_claim_opts c = worker("w1");
  c.lease_seconds = 5;
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  int64_t epoch1 = t->lease_epoch;
  double lease1 = t->lease_until;
  tq_task_free(t);
  tq_fence fe = {"w1", epoch1};
  tq_heartbeat_reply hb;
  assert_int_equal(tq_heartbeat(f->q, id, &fe, 600, &hb), 0);
  assert_true(hb.lease_until > lease1 + 500);
  assert_false(hb.cancel_requested);
  /* the lease expires (simulated clock), recovery requeues, another worker claims */
  size_t n;
  assert_int_equal(tq_recover_expired(f->q, clock_wall_s() + 10000, 100, &n), 0);
  assert_int_equal(n, 1);
  tq_claim_opts c2 = worker("w1");
  assert_int_equal(tq_claim_next(f->q, &c2, &t), 0);
  assert_non_null(t);
  assert_true(t->lease_epoch > epoch1);
  int64_t epoch2 = t->lease_epoch;
  tq_task_free(t);
  /* same worker id, old epoch: fenced out */
  json_t *res = json_pack("{s:s}", "out", "stale");
  assert_int_equal(tq_complete(f->q, id, &fe, TQ_COMPLETED, res, NULL), -ESTALE);
  assert_int_equal(tq_heartbeat(f->q, id, &fe, 0, &hb), -ESTALE);
  tq_fence other = {"w2", epoch2};
  assert_int_equal(tq_complete(f->q, id, &other, TQ_COMPLETED, res, NULL), -ESTALE);
  tq_fence cur = {"w1", epoch2};
  assert_int_equal(tq_complete(f->q, id, &cur, TQ_COMPLETED, res, NULL), 0);
  assert_int_equal(tq_complete(f->q, id, &cur, TQ_FAILED, NULL, "late"), -ESTALE);
  json_decref(res);
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_int_equal(t->status, TQ_COMPLETED);
  assert_string_equal(t->result_json, "{\"out\": \"stale\"}");
  assert_false(t->has_lease);
  tq_task_free(t);
}

static void test_release_refunds_attempt(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{\"max_attempts\": 1}", id);
  tq_claim_opts c = worker("w1");
  tq_task *t;
  for (int i = 0; i < 5; i++) {
    assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
    assert_non_null(t);
    tq_fence fe = {"w1", t->lease_epoch};
    tq_task_free(t);
    assert_int_equal(tq_release(f->q, id, &fe, "not mine"), 0);
  }
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_int_equal(t->status, TQ_QUEUED);
  assert_int_equal(t->attempt, 0);
  json_t *j = tq_task_to_json(t, TQ_JSON_FULL);
  json_t *prog = json_object_get(json_object_get(j, "result"), "progress");
  assert_int_equal(json_integer_value(json_object_get(prog, "release_count")), 5);
  assert_string_equal(json_string_value(json_object_get(prog, "last_release_reason")), "not mine");
  json_decref(j);
  tq_task_free(t);
}

static void test_out_of_attempts_ends_failed_with_reason(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{\"max_attempts\": 2}", id);
  tq_claim_opts c = worker("w1");
  tq_task *t;
  tq_status fs;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
    assert_non_null(t);
    tq_fence fe = {"w1", t->lease_epoch};
    tq_task_free(t);
    assert_int_equal(tq_retry(f->q, id, &fe, 0, "boom", &fs), 0);
  }
  assert_int_equal(fs, TQ_FAILED);
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_int_equal(t->status, TQ_FAILED);
  assert_string_equal(t->error, "attempts exhausted: boom");
  tq_task_free(t);
  /* an expired lease with no attempt left also ends failed, never stuck queued */
  submit_p(f->q, "t", "{\"max_attempts\": 1}", id);
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  tq_task_free(t);
  size_t n;
  assert_int_equal(tq_recover_expired(f->q, clock_wall_s() + 1e6, 10, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_int_equal(t->status, TQ_FAILED);
  assert_string_equal(t->error, "claim lease expired after maximum attempts");
  tq_task_free(t);
}

static void test_unlimited_attempts_with_zero(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{\"max_attempts\": 0}", id);
  tq_claim_opts c = worker("w1");
  tq_task *t;
  for (int i = 0; i < 6; i++) {
    assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
    assert_non_null(t);
    tq_fence fe = {"w1", t->lease_epoch};
    tq_task_free(t);
    tq_status fs;
    assert_int_equal(tq_retry(f->q, id, &fe, 0, "again", &fs), 0);
    assert_int_equal(fs, TQ_QUEUED);
  }
}

static void test_cancel_queued_now_running_via_flag(void **state) {
  fx *f = *state;
  char q1[33], r1[33];
  submit_p(f->q, "t", "{\"priority\": 1}", q1);
  submit_p(f->q, "t", "{\"priority\": 9}", r1);
  tq_claim_opts c = worker("w1");
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  assert_string_equal(t->task_id, r1);
  tq_fence fe = {"w1", t->lease_epoch};
  tq_task_free(t);
  tq_cancel_outcome co;
  assert_int_equal(tq_cancel(f->q, q1, "user", &co), 0);
  assert_int_equal(co, TQ_CANCEL_DONE);
  assert_int_equal(tq_cancel(f->q, r1, "user", &co), 0);
  assert_int_equal(co, TQ_CANCEL_REQUESTED);
  tq_heartbeat_reply hb;
  assert_int_equal(tq_heartbeat(f->q, r1, &fe, 0, &hb), 0);
  assert_true(hb.cancel_requested);
  assert_int_equal(tq_release(f->q, r1, &fe, "cancelled by request"), 0);
  assert_int_equal(tq_get(f->q, r1, &t), 0);
  assert_int_equal(t->status, TQ_CANCELLED);
  tq_task_free(t);
  assert_int_equal(tq_cancel(f->q, q1, NULL, &co), 0);
  assert_int_equal(co, TQ_CANCEL_NONE);
  assert_int_equal(tq_cancel(f->q, "00000000000000000000000000000000", NULL, &co), -ENOENT);
}

typedef struct {
  tq_queue *q;
  char id[33];
  int64_t epoch;
} completer;

static void *complete_later(void *arg) {
  completer *c = arg;
  usleep(150000);
  tq_fence fe = {"w1", c->epoch};
  json_t *r = json_pack("{s:i}", "v", 42);
  assert_int_equal(tq_complete(c->q, c->id, &fe, TQ_COMPLETED, r, NULL), 0);
  json_decref(r);
  return NULL;
}

static void test_wait_wakes_on_completion_not_timeout(void **state) {
  fx *f = *state;
  completer c = {.q = f->q};
  submit_p(f->q, "t", "{}", c.id);
  tq_claim_opts w = worker("w1");
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &w, &t), 0);
  c.epoch = t->lease_epoch;
  tq_task_free(t);
  pthread_t th;
  int64_t t0 = clock_mono_ms(); /* before the thread starts its 150 ms sleep */
  pthread_create(&th, NULL, complete_later, &c);
  assert_int_equal(tq_wait(f->q, c.id, 20, NULL, NULL, &t), 0);
  int64_t took = clock_mono_ms() - t0;
  pthread_join(th, NULL);
  assert_int_equal(t->status, TQ_COMPLETED);
  assert_true(took >= 100 && took < 15000); /* woken, not the 20 s timeout */
  tq_task_free(t);
}

typedef struct {
  tq_queue *q;
  const char *type;
} later_submit;

static void *submit_later(void *arg) {
  later_submit *s = arg;
  usleep(150000);
  char id[33];
  submit_p(s->q, s->type, "{}", id);
  return NULL;
}

/* A work waiter is woken by a submit of a type it can run, not by the timeout. */
static void test_wait_work_wakes_on_submit(void **state) {
  fx *f = *state;
  const char *types[] = {"t.a"};
  tq_claim_opts w = worker("w1");
  w.task_types = types;
  w.n_task_types = 1;
  uint64_t gen = tq_work_gen(f->q);
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &w, &t), 0);
  assert_null(t);
  later_submit s = {f->q, "t.a"};
  pthread_t th;
  int64_t t0 = clock_mono_ms();
  pthread_create(&th, NULL, submit_later, &s);
  bool targeted = false;
  assert_int_equal(tq_wait_work(f->q, gen, &w, 20, NULL, NULL, &targeted), 0);
  int64_t took = clock_mono_ms() - t0;
  pthread_join(th, NULL);
  assert_true(targeted);
  assert_true(took >= 100 && took < 15000);
  assert_int_equal(tq_claim_next(f->q, &w, &t), 0);
  assert_non_null(t);
  tq_task_free(t);
  /* a change since `seen`: at once */
  char id[33];
  submit_p(f->q, "t.a", "{}", id);
  t0 = clock_mono_ms();
  assert_int_equal(tq_wait_work(f->q, gen, &w, 20, NULL, NULL, NULL), 0);
  assert_true(clock_mono_ms() - t0 < 1000);
}

/* A submit of another type does not wake it (the timeout does); cancellation ends it. */
static bool cancel_now(void *ud) { return *(bool *)ud; }

static void test_wait_work_ignores_other_types_and_times_out(void **state) {
  fx *f = *state;
  const char *types[] = {"t.a"};
  tq_claim_opts w = worker("w1");
  w.task_types = types;
  w.n_task_types = 1;
  uint64_t gen = tq_work_gen(f->q);
  later_submit s = {f->q, "t.b"};
  pthread_t th;
  pthread_create(&th, NULL, submit_later, &s);
  int64_t t0 = clock_mono_ms();
  assert_int_equal(tq_wait_work(f->q, gen, &w, 0.6, NULL, NULL, NULL), -ETIMEDOUT);
  assert_true(clock_mono_ms() - t0 >= 500);
  pthread_join(th, NULL);
  bool yes = true;
  gen = tq_work_gen(f->q);
  assert_int_equal(tq_wait_work(f->q, gen, &w, 20, cancel_now, &yes, NULL), -ECANCELED);
  /* tq_work_pass wakes everyone */
  tq_work_pass(f->q);
  assert_int_equal(tq_wait_work(f->q, gen, &w, 20, NULL, NULL, NULL), 0);
}

/* A delayed retry wakes a work waiter when it falls due, not at the waiter's timeout. */
static void test_wait_work_wakes_when_a_delayed_retry_falls_due(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{}", id);
  tq_claim_opts w = worker("w1");
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &w, &t), 0);
  assert_non_null(t);
  tq_fence fe = {"w1", t->lease_epoch};
  tq_task_free(t);
  assert_int_equal(tq_retry(f->q, id, &fe, 0.5, "again later", NULL), 0);
  uint64_t gen = tq_work_gen(f->q);
  assert_int_equal(tq_claim_next(f->q, &w, &t), 0);
  assert_null(t); /* not due yet */
  int64_t t0 = clock_mono_ms();
  assert_int_equal(tq_wait_work(f->q, gen, &w, 20, NULL, NULL, NULL), 0);
  int64_t took = clock_mono_ms() - t0;
  assert_true(took >= 200 && took < 10000);
  assert_int_equal(tq_claim_next(f->q, &w, &t), 0);
  assert_non_null(t);
  tq_task_free(t);
}

static void test_wait_timeout_returns_current_state_and_is_capped(void **state) {
  fx *f = *state;
  tq_close(f->q);
  tq_options o;
  tq_options_default(&o);
  o.path = f->path;
  o.wait_max_seconds = 0.3;
  assert_int_equal(tq_open(&o, &f->q), 0);
  char id[33];
  submit_p(f->q, "t", "{}", id);
  tq_task *t;
  int64_t t0 = clock_mono_ms();
  assert_int_equal(tq_wait(f->q, id, 1e9, NULL, NULL, &t), 0);
  int64_t took = clock_mono_ms() - t0;
  assert_true(took >= 250 && took < 15000); /* capped at 0.3 s, not 1e9 s */
  assert_int_equal(t->status, TQ_QUEUED);
  tq_task_free(t);
  assert_int_equal(tq_wait(f->q, "ffffffffffffffffffffffffffffffff", 0.1, NULL, NULL, &t), -ENOENT);
}

static bool always(void *ud) { return ud != NULL; }

static void test_wait_honours_cancellation(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{}", id);
  tq_task *t;
  int64_t t0 = clock_mono_ms();
  assert_int_equal(tq_wait(f->q, id, 30, always, f, &t), 0);
  assert_true(clock_mono_ms() - t0 < 15000); /* not the 30 s timeout */
  tq_task_free(t);
}

static void test_prune_removes_old_terminal_only(void **state) {
  fx *f = *state;
  char done[33], queued[33];
  submit_p(f->q, "t", "{}", done);
  submit_p(f->q, "t", "{}", queued);
  tq_cancel_outcome co;
  assert_int_equal(tq_cancel(f->q, done, NULL, &co), 0);
  size_t n;
  assert_int_equal(tq_prune_terminal(f->q, 3600, 100, &n), 0);
  assert_int_equal(n, 0); /* too young */
  usleep(20000);
  assert_int_equal(tq_prune_terminal(f->q, 0.001, 100, &n), 0);
  assert_int_equal(n, 1);
  tq_task *t;
  assert_int_equal(tq_get(f->q, done, &t), -ENOENT);
  assert_int_equal(tq_get(f->q, queued, &t), 0);
  tq_task_free(t);
}

static void test_bad_input_is_rejected_and_changes_nothing(void **state) {
  fx *f = *state;
  char id[33];
  tq_submit_req r = {.task_type = "t"};
  json_t *arr = json_array();
  r.payload = arr;
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL); /* non-object */
  json_decref(arr);
  json_t *p = json_object();
  r.payload = p;
  r.task_type = "bad\xff\xfe";
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL); /* invalid UTF-8 */
  r.task_type = "";
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL);
  r.task_type = "t";
  char *big = malloc(1100000);
  memset(big, 'a', 1099999);
  big[1099999] = 0;
  json_object_set_new(p, "blob", json_string(big));
  free(big);
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -E2BIG);
  json_object_clear(p);
  r.has_next_attempt_at = true;
  r.next_attempt_at = NAN;
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL);
  r.next_attempt_at = -1;
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL);
  r.has_next_attempt_at = false;
  r.has_priority = true; /* explicit values must be in range; payload ones are clamped */
  r.priority = 11;
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL);
  r.priority = -2147483647;
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL);
  r.has_priority = false;
  r.has_max_attempts = true;
  r.max_attempts = 1001;
  assert_int_equal(tq_submit(f->q, &r, id, NULL), -EINVAL);
  r.has_max_attempts = false;
  tq_claim_opts c = {.worker_id = ""};
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &c, &t), -EINVAL);
  c.worker_id = "w";
  c.lease_seconds = -5;
  assert_int_equal(tq_claim_next(f->q, &c, &t), -EINVAL);
  json_decref(p);
  tq_counts n;
  assert_int_equal(tq_count(f->q, &n), 0);
  for (int i = 0; i < TQ_STATUS_COUNT; i++) assert_int_equal(n.by_status[i], 0);
}

typedef struct {
  tq_queue *q;
  int n;
  int fails;
} submitter;

static void *submit_many(void *arg) {
  submitter *s = arg;
  json_t *p = json_object();
  for (int i = 0; i < s->n; i++) {
    json_object_set_new(p, "i", json_integer(i));
    tq_submit_req r = {.task_type = "bulk", .payload = p};
    char id[33];
    if (tq_submit(s->q, &r, id, NULL) != 0) s->fails++;
  }
  json_decref(p);
  return NULL;
}

static void test_group_commit_batches_concurrent_submits(void **state) {
  fx *f = *state;
  enum { T = 8, N = 100 };
  pthread_t th[T];
  submitter s[T];
  tq_io_stats before, after;
  tq_io_stats_get(f->q, &before);
  for (int i = 0; i < T; i++) {
    s[i] = (submitter){f->q, N, 0};
    pthread_create(&th[i], NULL, submit_many, &s[i]);
  }
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(s[i].fails, 0);
  }
  tq_io_stats_get(f->q, &after);
  assert_int_equal(after.ops - before.ops, T * N);
  assert_true(after.commits - before.commits < T * N); /* some groups held > 1 op */
  assert_true(after.max_group > 1);
  tq_counts c;
  assert_int_equal(tq_count(f->q, &c), 0);
  assert_int_equal(c.by_status[TQ_QUEUED], T * N);
}

static void test_tasks_survive_reopen(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{\"k\": [1, 2.5, null, true]}", id);
  tq_close(f->q);
  tq_options o;
  tq_options_default(&o);
  o.path = f->path;
  assert_int_equal(tq_open(&o, &f->q), 0);
  tq_task *t;
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_string_equal(t->payload_json, "{\"k\": [1, 2.5, null, true]}");
  tq_task_free(t);
  struct stat sb;
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600); /* private */
}

/* Issue 9 item 10: a file broken under an open queue is seen by the probe, named in the health,
 * and writes are refused (a task acknowledged into it would not survive a restart); reads go
 * on. tq_check_file judges the file read-only. */
static void test_health_probe_sees_a_broken_file_and_refuses_writes(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{}", id);
  tq_health h;
  tq_health_probe(f->q);
  tq_health_get(f->q, &h);
  assert_false(h.down);
  assert_int_equal(h.errors, 0);
  json_t *rep = NULL;
  assert_int_equal(tq_check_file(f->path, &rep), 0);
  assert_true(json_is_true(json_object_get(rep, "ok")));
  assert_string_equal(json_string_value(json_object_get(rep, "integrity")), "ok");
  json_decref(rep);
  /* the header overwritten */
  FILE *fp = fopen(f->path, "r+b");
  assert_non_null(fp);
  assert_int_equal(fwrite("garbage garbage garbage", 1, 23, fp), 23);
  fclose(fp);
  tq_health_probe(f->q);
  tq_health_get(f->q, &h);
  assert_true(h.down && h.broken);
  assert_int_equal(h.last_err, -EBADMSG);
  assert_non_null(strstr(h.reason, f->path));
  assert_non_null(strstr(h.reason, "corrupt"));
  tq_submit_req r = {.task_type = "t", .payload = json_object()};
  char id2[33];
  assert_int_equal(tq_submit(f->q, &r, id2, NULL), -EBADMSG);
  json_decref((json_t *)r.payload);
  assert_string_equal(tq_strerror(-EBADMSG), "database_corrupt");
  rep = NULL;
  assert_int_equal(tq_check_file(f->path, &rep), 0); /* a verdict, not a failure to run */
  assert_false(json_is_true(json_object_get(rep, "ok")));
  assert_non_null(json_object_get(rep, "error"));
  json_decref(rep);
}

static void test_health_probe_sees_a_removed_file(void **state) {
  fx *f = *state;
  tq_health h;
  assert_int_equal(unlink(f->path), 0);
  tq_health_probe(f->q);
  tq_health_get(f->q, &h);
  assert_true(h.down && h.broken);
  assert_non_null(strstr(h.reason, "removed"));
  json_t *rep = NULL;
  assert_true(tq_check_file(f->path, &rep) < 0); /* nothing to read */
  assert_false(json_is_true(json_object_get(rep, "ok")));
  json_decref(rep);
}

static void test_list_filters_and_stats(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "a", "{}", id);
  submit_p(f->q, "b", "{}", id);
  submit_p(f->q, "a", "{}", id);
  tq_claim_opts c = worker("w");
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  tq_task_free(t);
  const char *ta[] = {"a"};
  tq_list_opts lo = {.status = TQ_QUEUED, .task_types = ta, .n_task_types = 1, .limit = 10};
  tq_task **v;
  size_t n;
  assert_int_equal(tq_list(f->q, &lo, &v, &n), 0);
  assert_int_equal(n, 1);
  tq_task_array_free(v, n);
  /* the type filter runs before the limit, in created order; every status; a status with none */
  submit_p(f->q, "b", "{}", id);
  submit_p(f->q, "a", "{\"k\": 2}", id);
  lo.limit = 2;
  assert_int_equal(tq_list(f->q, &lo, &v, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(v[0]->task_type, "a");
  assert_string_equal(v[1]->payload_json, "{\"k\": 2}");
  assert_true(v[0]->created_at <= v[1]->created_at);
  tq_task_array_free(v, n);
  tq_list_opts all = {.status = TQ_STATUS_ANY, .limit = 100};
  assert_int_equal(tq_list(f->q, &all, &v, &n), 0);
  assert_int_equal(n, 5);
  tq_task_array_free(v, n);
  tq_list_opts done = {.status = TQ_COMPLETED, .limit = 100};
  assert_int_equal(tq_list(f->q, &done, &v, &n), 0);
  assert_int_equal(n, 0);
  tq_task_array_free(v, n);
  json_t *s;
  assert_int_equal(tq_stats_json(f->q, &s), 0);
  assert_int_equal(json_integer_value(json_object_get(s, "queued")), 4);
  assert_int_equal(json_integer_value(json_object_get(s, "running")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "queued_by_type"), "b")), 2);
  json_decref(s);
}

/* Runs in a child as an unprivileged user (root ignores permission bits). */
static int ro_child(const char *dir) {
  if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return 99;
  char path[256];
  tq_options o;
  tq_options_default(&o);
  /* 1: a fresh queue in a read-only directory */
  ts_path(path, sizeof path, dir, "ro/q.sqlite3");
  o.path = path;
  tq_queue *q = NULL;
  int rc = tq_open(&o, &q);
  if (!(rc == -EACCES || rc == -EROFS) || q) { fprintf(stderr, "ro rc=%d\n", rc); return 1; }
  /* 2: an existing queue file the user may not write */
  ts_path(path, sizeof path, dir, "rofile/q.sqlite3");
  o.path = path;
  rc = tq_open(&o, &q);
  if (!(rc == -EACCES || rc == -EROFS) || q) return 2;
  return 0;
}

static void test_read_only_state_dir_is_a_clear_error(void **state) {
  fx *f = *state;
  char p[256];
  chmod(f->dir, 0755);
  ts_path(p, sizeof p, f->dir, "ro");
  assert_int_equal(mkdir(p, 0555), 0);
  ts_path(p, sizeof p, f->dir, "rofile");
  assert_int_equal(mkdir(p, 0755), 0);
  ts_path(p, sizeof p, f->dir, "rofile/q.sqlite3");
  tq_options o;
  tq_options_default(&o);
  o.path = p;
  tq_queue *q;
  assert_int_equal(tq_open(&o, &q), 0);
  char id[33];
  submit_p(q, "t", "{}", id);
  tq_close(q);
  assert_int_equal(chmod(p, 0444), 0);
  ts_path(p, sizeof p, f->dir, "rofile");
  assert_int_equal(chmod(p, 0555), 0);
  pid_t pid = fork();
  if (pid == 0) _exit(ro_child(f->dir));
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  chmod(p, 0755);
}

/* A full disk, simulated with RLIMIT_FSIZE in a child process that opens its own handle:
 * the submit fails with -ENOSPC and nothing is stored. */
static void test_full_disk_is_a_clear_error_and_changes_nothing(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{}", id);
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {256 * 1024, 256 * 1024};
    setrlimit(RLIMIT_FSIZE, &rl);
    tq_options o;
    tq_options_default(&o);
    o.path = f->path;
    tq_queue *q;
    if (tq_open(&o, &q) != 0) _exit(2);
    json_t *p = json_object();
    char *big = malloc(600000);
    memset(big, 'x', 599999);
    big[599999] = 0;
    json_object_set_new(p, "blob", json_string(big));
    tq_submit_req r = {.task_type = "big", .payload = p};
    int rc = tq_submit(q, &r, id, NULL);
    if (rc != -ENOSPC) fprintf(stderr, "full-disk submit rc=%d\n", rc);
    _exit(rc == -ENOSPC ? 0 : 1);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  tq_counts c;
  assert_int_equal(tq_count(f->q, &c), 0);
  assert_int_equal(c.by_status[TQ_QUEUED], 1);
  submit_p(f->q, "t", "{}", id); /* and the queue still works */
}

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, rc;
  char id[33];
} async_ctx;

static void async_cb(int rc, const char *task_id, bool replayed, void *ud) {
  async_ctx *a = ud;
  (void)replayed;
  pthread_mutex_lock(&a->mu);
  a->rc = rc;
  if (task_id) snprintf(a->id, sizeof a->id, "%s", task_id);
  a->done++;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

static void test_async_submit_calls_back_after_commit(void **state) {
  fx *f = *state;
  json_t *p = json_object();
  tq_submit_req r = {.task_type = "t", .payload = p};
  async_ctx a = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  assert_int_equal(tq_submit_async(f->q, &r, async_cb, &a), 0);
  json_decref(p); /* the request was copied */
  pthread_mutex_lock(&a.mu);
  while (!a.done) pthread_cond_wait(&a.cv, &a.mu);
  pthread_mutex_unlock(&a.mu);
  assert_int_equal(a.rc, 0);
  tq_task *t;
  assert_int_equal(tq_get(f->q, a.id, &t), 0);
  tq_task_free(t);
  r.payload = NULL;
  assert_int_equal(tq_submit_async(f->q, &r, async_cb, &a), -EINVAL);
  assert_int_equal(a.done, 1);
}

/* ---- the sync stage (sync_pipeline, issue 11 §2) ---- */

/* The test hook of tq_options: counts the syncs that reached it and, while hold is set, keeps
 * the syncing thread inside it (every answer held back) unless a pass was given (sgate_pass:
 * one sync goes through); fail_rc is returned as the sync's error. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered;
  bool hold;
  int passes;
  int fail_rc;
} sync_gate;

#define SGATE_INIT {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}

static int sync_hook(void *ud) {
  sync_gate *g = ud;
  pthread_mutex_lock(&g->mu);
  g->entered++;
  pthread_cond_broadcast(&g->cv);
  while (g->hold && g->passes == 0) pthread_cond_wait(&g->cv, &g->mu);
  if (g->hold) g->passes--;
  int rc = g->fail_rc;
  pthread_mutex_unlock(&g->mu);
  return rc;
}

static int sgate_entered(sync_gate *g) {
  pthread_mutex_lock(&g->mu);
  int n = g->entered;
  pthread_mutex_unlock(&g->mu);
  return n;
}

/* Lets the one sync held now go through (with success); later ones are held again. */
static void sgate_pass(sync_gate *g) {
  pthread_mutex_lock(&g->mu);
  g->passes++;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void sgate_release(sync_gate *g, int fail_rc) {
  pthread_mutex_lock(&g->mu);
  g->hold = false;
  g->fail_rc = fail_rc;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

/* group_max_ops 1: one op a group, so that ops queued behind a held sync make several groups. */
static tq_queue *open_piped(fx *f, const char *name, sync_gate *g) {
  char p[TS_TMPDIR_MAX + 64];
  snprintf(p, sizeof p, "%s/%s", f->dir, name);
  tq_options o;
  tq_options_default(&o);
  o.sync_pipeline = true;
  o.path = p;
  o.test_sync_hook = sync_hook;
  o.test_sync_ud = g;
  o.group_max_ops = 1;
  tq_queue *q = NULL;
  assert_int_equal(tq_open(&o, &q), 0);
  return q;
}

/* Whether a task row is in the file, read by a connection of our own (committed, synced or not). */
static bool row_committed(const char *path, const char *id) {
  sqlite3 *db;
  bool found = false;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM tasks WHERE task_id = ?1", -1, &s, NULL) == SQLITE_OK) {
      sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
      found = sqlite3_step(s) == SQLITE_ROW;
      sqlite3_finalize(s);
    }
  }
  sqlite3_close(db);
  return found;
}

/* The answers of async submits, in the order they came. */
typedef struct {
  pthread_mutex_t mu;
  int n;
  int order[64];
  int rc[64];
} answers;

typedef struct {
  answers *a;
  int k;
} answer_ud;

static void ordered_cb(int rc, const char *task_id, bool replayed, void *ud) {
  (void)task_id;
  (void)replayed;
  answer_ud *u = ud;
  pthread_mutex_lock(&u->a->mu);
  u->a->rc[u->a->n] = rc;
  u->a->order[u->a->n++] = u->k;
  pthread_mutex_unlock(&u->a->mu);
}

static int answers_n(answers *a) {
  pthread_mutex_lock(&a->mu);
  int n = a->n;
  pthread_mutex_unlock(&a->mu);
  return n;
}

static void submit_k(tq_queue *q, answer_ud *u, int k, const char *explicit_id) {
  json_t *p = json_pack("{s:i}", "k", k);
  tq_submit_req r = {.task_type = "pipe", .payload = p, .task_id = explicit_id};
  assert_int_equal(tq_submit_async(q, &r, ordered_cb, u), 0);
  json_decref(p);
}

typedef struct {
  tq_queue *q;
  const char *id;
  int rc;
  atomic_bool done;
} getter;

static void *get_thread(void *arg) {
  getter *g = arg;
  tq_task *t = NULL;
  g->rc = tq_get(g->q, g->id, &t);
  tq_task_free(t);
  atomic_store(&g->done, true);
  return NULL;
}

/* While the sync that covers a commit is held back, nothing of it is answered: the group is in
 * the file (another connection reads it) but its done callback has not run and a tq_get of the
 * task (the read pool sees the row) waits too; released, both answer. (An idle writer syncs the
 * group itself: the path of a lone op.) */
static void test_pipeline_answers_nothing_before_its_sync(void **state) {
  fx *f = *state;
  sync_gate g = SGATE_INIT;
  g.hold = true;
  tq_queue *q = open_piped(f, "pipe1.sqlite3", &g);
  answers a = {.mu = PTHREAD_MUTEX_INITIALIZER};
  answer_ud u = {&a, 1};
  const char *id = "0123456789abcdef0123456789abcdef";
  submit_k(q, &u, 1, id);
  char p[TS_TMPDIR_MAX + 64];
  snprintf(p, sizeof p, "%s/pipe1.sqlite3", f->dir);
  /* (an answer that does not wait for the sync comes instead of the hook, or before it) */
  TS_WAIT_UNTIL(TS_DEADLINE_MS, sgate_entered(&g) == 1 || answers_n(&a) > 0);
  assert_int_equal(answers_n(&a), 0);
  assert_int_equal(sgate_entered(&g), 1);
  assert_true(row_committed(p, id)); /* committed before the sync the stage is held in */
  getter gt = {.q = q, .id = id};
  pthread_t th;
  pthread_create(&th, NULL, get_thread, &gt);
  /* the read saw the row and now waits for the sync that covers it */
  tq_io_stats io;
  TS_WAIT_UNTIL(TS_DEADLINE_MS, (tq_io_stats_get(q, &io), io.read_waits == 1));
  assert_false(atomic_load(&gt.done));
  assert_int_equal(answers_n(&a), 0);
  sgate_release(&g, 0);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, answers_n(&a) == 1);
  pthread_join(th, NULL);
  assert_int_equal(gt.rc, 0);
  assert_int_equal(a.rc[0], 0);
  tq_io_stats_get(q, &io);
  assert_true(io.syncs >= 1);
  tq_close(q);
}

/* Groups committed while an earlier group's sync runs are answered after it, in group order:
 * the first op is synced by the idle writer itself (held), eleven more queue behind it; one
 * sync let through, the writer commits the other groups into the sync stage (its sync held)
 * and nothing of them is answered until it is released — then all, in order. */
static void test_pipeline_answers_in_group_order(void **state) {
  fx *f = *state;
  sync_gate g = SGATE_INIT;
  g.hold = true;
  tq_queue *q = open_piped(f, "pipe2.sqlite3", &g);
  answers a = {.mu = PTHREAD_MUTEX_INITIALIZER};
  answer_ud u[12];
  for (int k = 0; k < 12; k++) u[k] = (answer_ud){&a, k};
  tq_io_stats io;
  tq_io_stats_get(q, &io);
  uint64_t c0 = io.commits;
  submit_k(q, &u[0], 0, NULL); /* group 1: its sync is held (the writer's own) */
  TS_WAIT_UNTIL(TS_DEADLINE_MS, sgate_entered(&g) == 1 || answers_n(&a) > 0);
  assert_int_equal(answers_n(&a), 0);
  for (int k = 1; k < 12; k++) submit_k(q, &u[k], k, NULL); /* queued behind it */
  sgate_pass(&g);
  /* groups 2..12 committed; the sync stage's first sync is held */
  TS_WAIT_UNTIL(TS_DEADLINE_MS, (tq_io_stats_get(q, &io), io.commits >= c0 + 12) && sgate_entered(&g) >= 2);
  assert_true(answers_n(&a) <= 1); /* group 1 only */
  sgate_release(&g, 0);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, answers_n(&a) == 12);
  for (int k = 0; k < 12; k++) {
    assert_int_equal(a.order[k], k);
    assert_int_equal(a.rc[k], 0);
  }
  tq_close(q);
}

/* A failed sync: the held group and every group committed behind it are answered with the
 * error, later writes are refused, reads too (they could show what may never reach the disk),
 * and the health says why. */
static void test_pipeline_sync_failure_fails_pending_and_refuses_writes(void **state) {
  fx *f = *state;
  sync_gate g = SGATE_INIT;
  g.hold = true;
  tq_queue *q = open_piped(f, "pipe3.sqlite3", &g);
  char before[33];
  sgate_release(&g, 0);
  submit_p(q, "t", "{}", before); /* one that was synced */
  pthread_mutex_lock(&g.mu);
  g.hold = true;
  int base = g.entered;
  pthread_mutex_unlock(&g.mu);
  answers a = {.mu = PTHREAD_MUTEX_INITIALIZER};
  answer_ud u[4] = {{&a, 0}, {&a, 1}, {&a, 2}, {&a, 3}};
  tq_io_stats io;
  tq_io_stats_get(q, &io);
  uint64_t c0 = io.commits;
  submit_k(q, &u[0], 0, NULL); /* synced by the idle writer, held, then let through */
  TS_WAIT_UNTIL(TS_DEADLINE_MS, sgate_entered(&g) == base + 1 || answers_n(&a) > 0);
  assert_int_equal(answers_n(&a), 0);
  for (int k = 1; k < 4; k++) submit_k(q, &u[k], k, NULL);
  sgate_pass(&g);
  /* groups 2..4 committed into the sync stage, its sync held; then it fails */
  TS_WAIT_UNTIL(TS_DEADLINE_MS, (tq_io_stats_get(q, &io), io.commits >= c0 + 4) && sgate_entered(&g) >= base + 2);
  assert_true(answers_n(&a) <= 1);
  sgate_release(&g, -EIO);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, answers_n(&a) == 4);
  for (int k = 0; k < 4; k++) {
    assert_int_equal(a.order[k], k);
    assert_int_equal(a.rc[k], k == 0 ? 0 : -EIO);
  }
  char id[33];
  json_t *p = json_object();
  tq_submit_req r = {.task_type = "t", .payload = p};
  assert_int_equal(tq_submit(q, &r, id, NULL), -EIO);
  json_decref(p);
  tq_task *t = NULL;
  assert_int_equal(tq_get(q, before, &t), -EIO);
  assert_null(t);
  tq_health h;
  tq_health_get(q, &h);
  assert_true(h.down);
  assert_true(h.broken);
  assert_non_null(strstr(h.reason, "write-ahead log"));
  tq_close(q);
  /* reopened, the synced task is there (SQLite recovers what reached the file) */
  char path[TS_TMPDIR_MAX + 64];
  snprintf(path, sizeof path, "%s/pipe3.sqlite3", f->dir);
  tq_options o;
  tq_options_default(&o);
  o.path = path;
  assert_int_equal(tq_open(&o, &q), 0);
  assert_int_equal(tq_get(q, before, &t), 0);
  tq_task_free(t);
  tq_close(q);
}

/* Another process opening the queue while this one serves (`peermcp status --state-dir`), and
 * closing it, does not delete the WAL this handle's writer appends to. SQLite deletes the WAL at
 * a close that gets an exclusive lock on the database; the shared lock this process's
 * connections hold stops that — unless a close(2) of another descriptor of the file dropped it
 * (POSIX locks are per process): tq_health_probe opened and closed the file every 5 s, after
 * which the node's later commits went to an unlinked WAL (lost in a crash; the sync stage now
 * refuses that: the next submit answered -EIO). */
static void test_another_process_closing_keeps_the_wal(void **state) {
  fx *f = *state;
  char a[33], b2[33], c[33], wal[TS_TMPDIR_MAX + 40];
  submit_p(f->q, "t", "{}", a);
  snprintf(wal, sizeof wal, "%s-wal", f->path);
  struct stat before, after;
  assert_int_equal(stat(wal, &before), 0);
  tq_health_probe(f->q); /* as the node's metrics job does every 5 s */
  /* the other process: this binary again (main: "open-submit-close"), so that SQLite's
   * in-process lock bookkeeping is its own */
  char cmd[2 * TS_TMPDIR_MAX + 128];
  snprintf(cmd, sizeof cmd, "/proc/%d/exe open-submit-close '%s'", (int)getpid(), f->path);
  FILE *pp = popen(cmd, "r");
  assert_non_null(pp);
  assert_non_null(fgets(b2, sizeof b2, pp));
  assert_int_equal(pclose(pp), 0);
  assert_int_equal(strlen(b2), 32);
  assert_int_equal(stat(wal, &after), 0);
  assert_int_equal(after.st_ino, before.st_ino);
  submit_p(f->q, "t", "{}", c); /* synced: the WAL is still the file the path names */
  tq_health h;
  tq_health_get(f->q, &h);
  assert_false(h.down);
  tq_task *t;
  assert_int_equal(tq_get(f->q, b2, &t), 0);
  tq_task_free(t);
  assert_true(row_committed(f->path, c)); /* another connection sees this handle's commit */
}

static void watch_fired(void *ud, const tq_task *row) {
  (void)row;
  atomic_store((atomic_int *)ud, 1);
}

static void claim_answered(int rc, tq_task *t, bool waited, void *ud) {
  (void)rc;
  (void)waited;
  tq_task_free(t);
  atomic_store((atomic_int *)ud, 1);
}

/* A group of only claims needs no sync of its own — unless a claim's lease recovery ended a
 * task: the task's waits are told only after a sync covering that. */
static void test_pipeline_claim_that_ends_a_task_waits_for_a_sync(void **state) {
  fx *f = *state;
  sync_gate g = SGATE_INIT;
  tq_queue *q = open_piped(f, "pipe4.sqlite3", &g);
  json_t *p = json_object();
  tq_submit_req r = {.task_type = "t", .payload = p, .has_max_attempts = true, .max_attempts = 1};
  char id[33];
  assert_int_equal(tq_submit(q, &r, id, NULL), 0);
  json_decref(p);
  tq_claim_opts c = {.worker_id = "w", .lease_seconds = 1};
  tq_task *t;
  assert_int_equal(tq_claim_next(q, &c, &t), 0);
  assert_non_null(t);
  double until = t->lease_until;
  tq_task_free(t);
  atomic_int fired = 0, answered = 0;
  tq_watch *w;
  assert_int_equal(tq_watch_add(q, id, watch_fired, &fired, &w), 0);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, clock_wall_s() > until + 0.05); /* the 1 s lease ends */
  pthread_mutex_lock(&g.mu);
  g.hold = true;
  int base = g.entered;
  pthread_mutex_unlock(&g.mu);
  /* a claim (a claims-only group) finds the lease ended, out of attempts: the task ends failed */
  tq_claim_opts c2 = {.worker_id = "w2"};
  assert_int_equal(tq_claim_next_async(q, &c2, 0, claim_answered, &answered, NULL), 0);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, sgate_entered(&g) == base + 1 || atomic_load(&fired) || atomic_load(&answered));
  assert_int_equal(atomic_load(&fired), 0);
  assert_int_equal(atomic_load(&answered), 0);
  sgate_release(&g, 0);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&fired) && atomic_load(&answered));
  tq_watch_remove(q, w);
  assert_int_equal(tq_get(q, id, &t), 0);
  assert_int_equal(t->status, TQ_FAILED);
  tq_task_free(t);
  tq_close(q);
}

/* With the pipeline off every commit syncs itself on the writer: the hook is never called. */
static void test_pipeline_off_syncs_in_the_commit(void **state) {
  fx *f = *state;
  sync_gate g = SGATE_INIT;
  char p[TS_TMPDIR_MAX + 64];
  snprintf(p, sizeof p, "%s/nopipe.sqlite3", f->dir);
  tq_options o;
  tq_options_default(&o);
  o.path = p;
  o.sync_pipeline = false;
  o.test_sync_hook = sync_hook;
  o.test_sync_ud = &g;
  tq_queue *q;
  assert_int_equal(tq_open(&o, &q), 0);
  char id[33];
  submit_p(q, "t", "{}", id);
  tq_io_stats io;
  tq_io_stats_get(q, &io);
  assert_int_equal(io.syncs, 0);
  assert_int_equal(sgate_entered(&g), 0);
  tq_close(q);
}

/* ---- asynchronous claims / completes / heartbeats (no thread blocks) ---- */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls, rc;
  tq_task *t;
  bool waited;
  tq_heartbeat_reply hb;
  int64_t at_ms;
} aclaim_ctx;

#define ACTX_INIT {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}

static void aclaim_cb(int rc, tq_task *t, bool waited, void *ud) {
  aclaim_ctx *a = ud;
  pthread_mutex_lock(&a->mu);
  a->calls++;
  a->rc = rc;
  a->t = t;
  a->waited = waited;
  a->at_ms = clock_mono_ms();
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

static void adone_cb(int rc, void *ud) { aclaim_cb(rc, NULL, false, ud); }

static void ahb_cb(int rc, const tq_heartbeat_reply *hb, void *ud) {
  aclaim_ctx *a = ud;
  a->hb = *hb;
  aclaim_cb(rc, NULL, false, ud);
}

/* Waits (generously) for the n-th callback; false on timeout. */
static bool actx_wait(aclaim_ctx *a, int n, int64_t ms) {
  int64_t end = clock_mono_ms() + ms;
  pthread_mutex_lock(&a->mu);
  while (a->calls < n && clock_mono_ms() < end) {
    pthread_mutex_unlock(&a->mu);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&a->mu);
  }
  bool ok = a->calls >= n;
  pthread_mutex_unlock(&a->mu);
  return ok;
}

/* An async claim with nothing queued parks (no callback), a submit of a matching type answers
 * it with the task — and a submit of another type does not. */
static void test_async_claim_waits_and_is_answered_by_a_submit(void **state) {
  fx *f = *state;
  const char *types[] = {"t.a"};
  tq_claim_opts w = worker("w1");
  w.task_types = types;
  w.n_task_types = 1;
  aclaim_ctx a = ACTX_INIT;
  uint64_t id = 0;
  assert_int_equal(tq_claim_next_async(f->q, &w, 20, aclaim_cb, &a, &id), 0);
  assert_true(id != 0);
  TS_WAIT_UNTIL(10000, tq_claims_waiting(f->q) == 1);
  char other[33], mine[33];
  submit_p(f->q, "t.b", "{}", other);
  struct timespec ts = {0, 300000000};
  nanosleep(&ts, NULL);
  assert_int_equal(a.calls, 0); /* still waiting: another type */
  submit_p(f->q, "t.a", "{\"x\":1}", mine);
  assert_true(actx_wait(&a, 1, 10000));
  assert_int_equal(a.rc, 0);
  assert_non_null(a.t);
  assert_string_equal(a.t->task_id, mine);
  assert_int_equal(a.t->status, TQ_RUNNING);
  assert_true(a.waited);
  tq_task_free(a.t);
  assert_int_equal(tq_claims_waiting(f->q), 0);
  assert_false(tq_claim_cancel(f->q, id)); /* answered: unknown now */
  /* something claimable now: answered at once, not parked */
  aclaim_ctx b = ACTX_INIT;
  w.task_types = NULL;
  w.n_task_types = 0;
  assert_int_equal(tq_claim_next_async(f->q, &w, 20, aclaim_cb, &b, NULL), 0);
  assert_true(actx_wait(&b, 1, 10000));
  assert_non_null(b.t);
  assert_string_equal(b.t->task_id, other);
  assert_false(b.waited);
  tq_task_free(b.t);
}

static void assert_same_task(const tq_task *a, const tq_task *b) {
  assert_string_equal(a->task_id, b->task_id);
  assert_string_equal(a->task_type, b->task_type);
  assert_string_equal(a->model_name, b->model_name);
  assert_string_equal(a->payload_json, b->payload_json);
  assert_int_equal(a->status, b->status);
  assert_string_equal(a->assigned_worker, b->assigned_worker);
  assert_true(a->created_at == b->created_at && a->updated_at == b->updated_at);
  assert_true(a->has_lease == b->has_lease && a->lease_until == b->lease_until);
  assert_true(a->has_heartbeat == b->has_heartbeat && a->heartbeat_at == b->heartbeat_at);
  assert_int_equal(a->priority, b->priority);
  assert_int_equal(a->attempt, b->attempt);
  assert_int_equal(a->max_attempts, b->max_attempts);
  assert_true(a->next_attempt_at == b->next_attempt_at);
  assert_int_equal(a->lease_epoch, b->lease_epoch);
  assert_int_equal(a->cancel_requested, b->cancel_requested);
  assert_true((a->result_json == NULL) == (b->result_json == NULL));
  assert_true((a->idempotency_key == NULL) == (b->idempotency_key == NULL));
}

/* The row a claim answers is built from its read before the UPDATE with the UPDATE's changes
 * applied (no read after the write): it must be the row the file holds — also for a task
 * claimed a second time (attempt, lease epoch), and for each task of a batch. */
static void test_claimed_row_is_the_stored_row(void **state) {
  fx *f = *state;
  char id[33], id2[33];
  submit_p(f->q, "t", "{\"priority\": 7, \"max_attempts\": 4, \"x\": [1, \"\u00e9\"]}", id);
  tq_claim_opts w = worker("w-one");
  w.lease_seconds = 42;
  for (int round = 0; round < 2; round++) {
    tq_task *t = NULL, *g = NULL;
    assert_int_equal(tq_claim_next(f->q, &w, &t), 0);
    assert_non_null(t);
    assert_int_equal(t->attempt, 1); /* a release refunds the attempt */
    assert_int_equal(t->lease_epoch, round + 1);
    assert_int_equal(tq_get(f->q, id, &g), 0);
    assert_same_task(t, g);
    tq_fence fe = {"w-one", t->lease_epoch};
    if (round == 0) assert_int_equal(tq_release(f->q, id, &fe, "again"), 0);
    else assert_int_equal(tq_complete(f->q, id, &fe, TQ_COMPLETED, NULL, NULL), 0);
    tq_task_free(t);
    tq_task_free(g);
  }
  submit_p(f->q, "t", "{\"n\": 1}", id);
  submit_p(f->q, "t", "{\"n\": 2}", id2);
  tq_claim_opts many = worker("w-many");
  many.max_tasks = 2;
  tq_task **v = NULL;
  size_t n = 0;
  assert_int_equal(tq_claim_many(f->q, &many, &v, &n), 0);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++) {
    tq_task *g = NULL;
    assert_int_equal(tq_get(f->q, v[i]->task_id, &g), 0);
    assert_same_task(v[i], g);
    tq_task_free(g);
  }
  tq_task_array_free(v, n);
}

/* A parked claim fed by a submit takes the task inside the submit's own transaction (one
 * commit for both, counted as two ops), is answered only after that commit (the task is
 * running in the file when the answer comes), and only that one claim is woken; a submit with
 * nothing parked commits alone. Fails when the claim waits for the next group (two commits). */
static void test_async_claim_rides_the_submit_commit(void **state) {
  fx *f = *state;
  tq_claim_opts w1 = worker("w1"), w2 = worker("w2");
  aclaim_ctx a = ACTX_INIT, b = ACTX_INIT;
  assert_int_equal(tq_claim_next_async(f->q, &w1, 20, aclaim_cb, &a, NULL), 0);
  TS_WAIT_UNTIL(10000, tq_claims_parked(f->q) == 1);
  assert_int_equal(tq_claim_next_async(f->q, &w2, 20, aclaim_cb, &b, NULL), 0);
  TS_WAIT_UNTIL(10000, tq_claims_parked(f->q) == 2); /* both looked (and committed) already */
  tq_io_stats before, after;
  tq_io_stats_get(f->q, &before);
  uint64_t gen = tq_work_gen(f->q);
  char id[33];
  submit_p(f->q, "t", "{}", id);
  assert_true(actx_wait(&a, 1, 10000)); /* the oldest parked claim */
  tq_io_stats_get(f->q, &after);
  /* taken in its own commit: nothing claimable changed (no other claim looks again) */
  assert_int_equal(tq_work_gen(f->q), gen);
  assert_int_equal(a.rc, 0);
  assert_non_null(a.t);
  assert_string_equal(a.t->task_id, id);
  assert_true(a.waited);
  assert_int_equal(after.commits - before.commits, 1);
  assert_int_equal(after.ops - before.ops, 2);
  tq_task *t;
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_int_equal(t->status, TQ_RUNNING);
  assert_string_equal(t->assigned_worker, "w1");
  tq_task_free(t);
  tq_task_free(a.t);
  /* the other claim was not woken for it: still parked, no extra claim ran */
  assert_int_equal(b.calls, 0);
  assert_int_equal(tq_claims_waiting(f->q), 1);
  assert_int_equal(tq_claims_parked(f->q), 1);
  tq_io_stats_get(f->q, &before);
  assert_int_equal(before.ops, after.ops);
  /* it takes the next task the same way */
  submit_p(f->q, "t", "{}", id);
  assert_true(actx_wait(&b, 1, 10000));
  assert_non_null(b.t);
  assert_string_equal(b.t->task_id, id);
  tq_task_free(b.t);
  tq_io_stats_get(f->q, &after);
  assert_int_equal(after.commits - before.commits, 1);
  /* nothing parked: the submit commits alone, and announces the new work */
  gen = tq_work_gen(f->q);
  submit_p(f->q, "t", "{}", id);
  tq_io_stats_get(f->q, &before);
  assert_int_equal(before.commits - after.commits, 1);
  assert_int_equal(before.ops - after.ops, 1);
  assert_int_equal(tq_work_gen(f->q), gen + 1);
}

/* A chained claim that does not take the new task (its session filter excludes it) leaves it
 * announced: the work generation moves and another claim gets it. */
static void test_chained_claim_that_misses_announces_the_task(void **state) {
  fx *f = *state;
  tq_claim_opts w1 = worker("w1");
  w1.session_id = "s1";
  aclaim_ctx a = ACTX_INIT, b = ACTX_INIT;
  uint64_t aid = 0;
  assert_int_equal(tq_claim_next_async(f->q, &w1, 20, aclaim_cb, &a, &aid), 0);
  TS_WAIT_UNTIL(10000, tq_claims_parked(f->q) == 1);
  uint64_t gen = tq_work_gen(f->q);
  char id[33];
  submit_p(f->q, "t", "{\"session_id\": \"s2\"}", id);
  assert_true(tq_work_gen(f->q) > gen);
  TS_WAIT_UNTIL(10000, tq_claims_parked(f->q) == 1); /* looked, missed, parked again */
  assert_int_equal(a.calls, 0);
  tq_claim_opts w2 = worker("w2");
  assert_int_equal(tq_claim_next_async(f->q, &w2, 20, aclaim_cb, &b, NULL), 0);
  assert_true(actx_wait(&b, 1, 10000));
  assert_non_null(b.t);
  assert_string_equal(b.t->task_id, id);
  tq_task_free(b.t);
  assert_int_equal(a.calls, 0);
  /* the first claim still waits: ended here (its context is on this stack) */
  TS_WAIT_UNTIL(10000, (tq_claim_cancel(f->q, aid), actx_wait(&a, 1, 0)));
  assert_null(a.t);
}

/* The wait ends without a task at its deadline (the queue's own timer), at tq_claim_cancel (on
 * the caller's thread), and at tq_close; a claim without wait_s answers at once. */
static void test_async_claim_times_out_cancels_and_closes(void **state) {
  fx *f = *state;
  tq_claim_opts w = worker("w1");
  aclaim_ctx a = ACTX_INIT, b = ACTX_INIT, c = ACTX_INIT, d = ACTX_INIT;
  int64_t t0 = clock_mono_ms();
  assert_int_equal(tq_claim_next_async(f->q, &w, 0.5, aclaim_cb, &a, NULL), 0);
  assert_true(actx_wait(&a, 1, 15000));
  assert_int_equal(a.rc, 0);
  assert_null(a.t);
  assert_true(a.waited);
  assert_true(a.at_ms - t0 >= 400);
  uint64_t id = 0;
  assert_int_equal(tq_claim_next_async(f->q, &w, 20, aclaim_cb, &b, &id), 0);
  /* parked: answered inside tq_claim_cancel; still in the writer: answered from there */
  TS_WAIT_UNTIL(10000, (tq_claim_cancel(f->q, id), actx_wait(&b, 1, 0)));
  assert_int_equal(b.calls, 1);
  assert_null(b.t);
  assert_false(tq_claim_cancel(f->q, id));
  assert_int_equal(tq_claim_next_async(f->q, &w, 0, aclaim_cb, &d, &id), 0);
  assert_int_equal(id, 0);
  assert_true(actx_wait(&d, 1, 10000));
  assert_null(d.t);
  assert_false(d.waited);
  assert_int_equal(tq_claim_next_async(f->q, &w, 20, aclaim_cb, &c, NULL), 0);
  TS_WAIT_UNTIL(10000, tq_claims_waiting(f->q) == 1);
  tq_close(f->q);
  f->q = NULL;
  assert_int_equal(c.calls, 1);
  assert_null(c.t);
  /* reopen for the teardown */
  tq_options o;
  tq_options_default(&o);
  o.path = f->path;
  assert_int_equal(tq_open(&o, &f->q), 0);
}

/* Two waiting claims, one task: one gets it, the other keeps waiting; a release (a change
 * that is not a submit) wakes it. */
static void test_async_claims_share_work(void **state) {
  fx *f = *state;
  tq_claim_opts w1 = worker("w1"), w2 = worker("w2");
  aclaim_ctx a = ACTX_INIT, b = ACTX_INIT;
  assert_int_equal(tq_claim_next_async(f->q, &w1, 20, aclaim_cb, &a, NULL), 0);
  assert_int_equal(tq_claim_next_async(f->q, &w2, 20, aclaim_cb, &b, NULL), 0);
  TS_WAIT_UNTIL(10000, tq_claims_waiting(f->q) == 2);
  char id[33];
  submit_p(f->q, "t", "{}", id);
  TS_WAIT_UNTIL(10000, a.calls + b.calls == 1);
  aclaim_ctx *got = a.calls ? &a : &b, *still = a.calls ? &b : &a;
  assert_non_null(got->t);
  TS_WAIT_UNTIL(10000, tq_claims_waiting(f->q) == 1);
  tq_fence fe = {got->t->assigned_worker, got->t->lease_epoch};
  assert_int_equal(tq_release(f->q, id, &fe, "give back"), 0);
  assert_true(actx_wait(still, 1, 10000));
  assert_non_null(still->t);
  assert_string_equal(still->t->task_id, id);
  tq_task_free(got->t);
  tq_task_free(still->t);
}

/* complete / heartbeat async: same fencing and results as the blocking calls. */
static void test_async_complete_and_heartbeat(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{}", id);
  tq_claim_opts w = worker("w1");
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &w, &t), 0);
  assert_non_null(t);
  tq_fence fe = {"w1", t->lease_epoch}, stale = {"w1", t->lease_epoch + 5};
  tq_task_free(t);
  aclaim_ctx h = ACTX_INIT, s = ACTX_INIT, c = ACTX_INIT;
  assert_int_equal(tq_heartbeat_async(f->q, id, &fe, 60, ahb_cb, &h), 0);
  assert_true(actx_wait(&h, 1, 10000));
  assert_int_equal(h.rc, 0);
  assert_true(h.hb.lease_until > clock_wall_s() + 30);
  json_t *res = json_pack("{s:i}", "answer", 42);
  assert_int_equal(tq_complete_async(f->q, id, &stale, TQ_COMPLETED, res, NULL, adone_cb, &s), 0);
  assert_true(actx_wait(&s, 1, 10000));
  assert_int_equal(s.rc, -ESTALE);
  assert_int_equal(tq_complete_async(f->q, id, &fe, TQ_COMPLETED, res, NULL, adone_cb, &c), 0);
  json_decref(res); /* the op holds its own reference */
  assert_true(actx_wait(&c, 1, 10000));
  assert_int_equal(c.rc, 0);
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_int_equal(t->status, TQ_COMPLETED);
  assert_non_null(strstr(t->result_json, "\"answer\": 42"));
  tq_task_free(t);
  /* bad input: refused at once, no callback */
  assert_int_equal(tq_complete_async(f->q, "nothex", &fe, TQ_COMPLETED, NULL, NULL, adone_cb, &c), -ENOENT);
  assert_int_equal(tq_complete_async(f->q, id, &fe, TQ_QUEUED, NULL, NULL, adone_cb, &c), -EINVAL);
  assert_int_equal(tq_heartbeat_async(f->q, id, NULL, 0, ahb_cb, &h), -EINVAL);
  tq_claim_opts bad = worker("");
  assert_int_equal(tq_claim_next_async(f->q, &bad, 1, aclaim_cb, &c, NULL), -EINVAL);
  assert_int_equal(c.calls, 1);
  assert_int_equal(h.calls, 1);
}

static void test_claim_recovers_expired_lease_itself(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{}", id);
  tq_claim_opts c = worker("w1");
  c.lease_seconds = 1;
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  int64_t e1 = t->lease_epoch;
  tq_task_free(t);
  usleep(1100000);
  tq_claim_opts c2 = worker("w2");
  assert_int_equal(tq_claim_next(f->q, &c2, &t), 0); /* no separate recovery call */
  assert_non_null(t);
  assert_string_equal(t->task_id, id);
  assert_string_equal(t->assigned_worker, "w2");
  assert_true(t->lease_epoch > e1);
  assert_int_equal(t->attempt, 2);
  tq_task_free(t);
}

/* A database with only the Python columns (§5.2) opens: the new columns are added, queued
 * tasks out of attempts (Python zombies, §12.10) end failed, sessions are extracted. */
static void test_python_schema_is_migrated(void **state) {
  fx *f = *state;
  tq_close(f->q);
  f->q = NULL;
  char path[160];
  ts_path(path, sizeof path, f->dir, "py.sqlite3");
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
      "CREATE TABLE tasks (task_id VARCHAR PRIMARY KEY, task_type VARCHAR NOT NULL, model_name VARCHAR NOT NULL,"
      " payload_json VARCHAR NOT NULL, status VARCHAR NOT NULL, assigned_worker VARCHAR, created_at DOUBLE NOT NULL,"
      " updated_at DOUBLE NOT NULL, result_json VARCHAR, error VARCHAR);"
      "INSERT INTO tasks VALUES ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','t','m','{\"priority\": 8, \"session\": \"S\"}',"
      " 'queued',NULL,1.0,1.0,NULL,NULL);",
      NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "ALTER TABLE tasks ADD COLUMN attempt INTEGER DEFAULT 0;"
                                    "ALTER TABLE tasks ADD COLUMN max_attempts INTEGER DEFAULT 3;"
                                    "INSERT INTO tasks (task_id, task_type, model_name, payload_json, status, created_at,"
                                    " updated_at, attempt, max_attempts) VALUES ('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb','t','m',"
                                    "'{}','queued',2.0,2.0,3,3);",
                                NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  tq_options o;
  tq_options_default(&o);
  o.path = path;
  assert_int_equal(tq_open(&o, &f->q), 0);
  tq_task *t;
  assert_int_equal(tq_get(f->q, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &t), 0);
  assert_int_equal(t->priority, 8); /* back-filled from the payload */
  assert_string_equal(t->session_id, "S");
  assert_int_equal(t->status, TQ_QUEUED);
  tq_task_free(t);
  assert_int_equal(tq_get(f->q, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", &t), 0);
  assert_int_equal(t->status, TQ_FAILED);
  assert_string_equal(t->error, "attempts exhausted");
  tq_task_free(t);
}

typedef struct {
  tq_queue *q;
  char id[33];
  int rc;
  int64_t took;
  atomic_bool waiting; /* set from inside tq_wait: the waiter is registered */
} waiter_arg;

/* tq_wait polls this (every 200 ms at most) only once its waiter is registered. */
static bool note_waiting(void *ud) {
  atomic_store(&((waiter_arg *)ud)->waiting, true);
  return false;
}

static void *wait_long(void *arg) {
  waiter_arg *w = arg;
  tq_task *t = NULL;
  int64_t t0 = clock_mono_ms();
  w->rc = tq_wait(w->q, w->id, 60, note_waiting, w, &t);
  w->took = clock_mono_ms() - t0;
  tq_task_free(t);
  return NULL;
}

static void test_close_wakes_waiters(void **state) {
  fx *f = *state;
  waiter_arg w = {.q = f->q};
  submit_p(f->q, "t", "{}", w.id);
  pthread_t th;
  pthread_create(&th, NULL, wait_long, &w);
  /* close only once the thread is inside tq_wait (closing first would free the queue under it) */
  TS_WAIT_UNTIL(TS_DEADLINE_MS, atomic_load(&w.waiting));
  tq_close(f->q);
  f->q = NULL;
  pthread_join(th, NULL);
  assert_int_equal(w.rc, 0);
  assert_true(w.took < 40000); /* woken by the close, not the 60 s timeout */
}

static void test_recovery_limit_never_fails_tasks_with_attempts_left(void **state) {
  fx *f = *state;
  char a[33], b[33];
  submit_p(f->q, "t", "{}", a);
  submit_p(f->q, "t", "{}", b);
  tq_claim_opts c = worker("w");
  tq_task **v;
  size_t n;
  c.max_tasks = 2;
  assert_int_equal(tq_claim_many(f->q, &c, &v, &n), 0);
  assert_int_equal(n, 2);
  tq_task_array_free(v, n);
  assert_int_equal(tq_recover_expired(f->q, clock_wall_s() + 1e6, 1, &n), 0);
  assert_int_equal(n, 1);
  tq_counts k;
  assert_int_equal(tq_count(f->q, &k), 0);
  assert_int_equal(k.by_status[TQ_FAILED], 0);
  assert_int_equal(k.by_status[TQ_QUEUED], 1);
  assert_int_equal(k.by_status[TQ_RUNNING], 1);
}

static void test_foreign_file_is_a_clear_error(void **state) {
  fx *f = *state;
  char path[160];
  ts_path(path, sizeof path, f->dir, "task_queue.duckdb");
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  for (int i = 0; i < 512; i++) fputs("DUCK", fp); /* not an SQLite header */
  fclose(fp);
  tq_options o;
  tq_options_default(&o);
  o.path = path;
  tq_queue *q = NULL;
  assert_int_equal(tq_open(&o, &q), -ENOTSUP);
  assert_null(q);
}

typedef struct {
  const char *path;
  char id[33];
} other_proc;

/* A second handle on the same file stands for another process (e.g. `peermcp worker` with the
 * local store): its completion is not signalled in this handle, the recheck finds it. */
static void *complete_via_other_handle(void *arg) {
  other_proc *o = arg;
  tq_options opt;
  tq_options_default(&opt);
  opt.path = o->path;
  tq_queue *q2;
  assert_int_equal(tq_open(&opt, &q2), 0);
  usleep(200000);
  tq_claim_opts c = worker("remote");
  tq_task *t;
  assert_int_equal(tq_claim(q2, o->id, &c, &t), 0);
  assert_non_null(t);
  tq_fence fe = {"remote", t->lease_epoch};
  tq_task_free(t);
  assert_int_equal(tq_complete(q2, o->id, &fe, TQ_COMPLETED, NULL, NULL), 0);
  tq_close(q2);
  return NULL;
}

static void test_wait_sees_other_process_commits(void **state) {
  fx *f = *state;
  tq_close(f->q);
  tq_options o;
  tq_options_default(&o);
  o.path = f->path;
  o.wait_recheck_ms = 300;
  assert_int_equal(tq_open(&o, &f->q), 0);
  other_proc op = {.path = f->path};
  submit_p(f->q, "t", "{}", op.id);
  pthread_t th;
  pthread_create(&th, NULL, complete_via_other_handle, &op);
  tq_task *t;
  int64_t t0 = clock_mono_ms();
  assert_int_equal(tq_wait(f->q, op.id, 20, NULL, NULL, &t), 0);
  int64_t took = clock_mono_ms() - t0;
  pthread_join(th, NULL);
  assert_int_equal(t->status, TQ_COMPLETED);
  assert_true(took < 15000); /* the recheck found it, not the 20 s timeout */
  tq_task_free(t);
}

static void test_list_byte_cap_truncates(void **state) {
  fx *f = *state;
  char id[33], big[2001];
  memset(big, 'x', 2000);
  big[2000] = 0;
  for (int i = 0; i < 10; i++) {
    json_t *p = json_pack("{s:s, s:i}", "blob", big, "i", i);
    tq_submit_req r = {.task_type = "t", .payload = p};
    assert_int_equal(tq_submit(f->q, &r, id, NULL), 0);
    json_decref(p);
  }
  bool truncated = false;
  tq_list_opts lo = {.status = TQ_STATUS_ANY, .limit = 100, .max_bytes = 5000, .truncated = &truncated};
  tq_task **v;
  size_t n;
  assert_int_equal(tq_list(f->q, &lo, &v, &n), 0);
  assert_int_equal(n, 2);
  assert_true(truncated);
  tq_task_array_free(v, n);
  lo.max_bytes = 0;
  assert_int_equal(tq_list(f->q, &lo, &v, &n), 0);
  assert_int_equal(n, 10);
  assert_false(truncated);
  tq_task_array_free(v, n);
}

static void test_claim_many_byte_cap(void **state) {
  fx *f = *state;
  char id[33], big[3001];
  memset(big, 'y', 3000);
  big[3000] = 0;
  for (int i = 0; i < 5; i++) {
    json_t *p = json_pack("{s:s, s:i}", "blob", big, "i", i);
    tq_submit_req r = {.task_type = "t", .payload = p};
    assert_int_equal(tq_submit(f->q, &r, id, NULL), 0);
    json_decref(p);
  }
  tq_claim_opts c = {.worker_id = "w", .max_tasks = 5, .max_bytes = 7000};
  tq_task **v;
  size_t n;
  assert_int_equal(tq_claim_many(f->q, &c, &v, &n), 0);
  assert_int_equal(n, 2);
  tq_task_array_free(v, n);
  tq_counts k;
  assert_int_equal(tq_count(f->q, &k), 0);
  assert_int_equal(k.by_status[TQ_RUNNING], 2); /* nothing claimed beyond what was returned */
  assert_int_equal(k.by_status[TQ_QUEUED], 3);
}

static void test_progress_is_fenced_and_keeps_state(void **state) {
  fx *f = *state;
  char id[33];
  submit_p(f->q, "t", "{}", id);
  tq_claim_opts c = worker("w1");
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  tq_fence fe = {"w1", t->lease_epoch};
  tq_task_free(t);
  json_t *patch = json_pack("{s:{s:i}}", "progress", "pct", 10);
  assert_int_equal(tq_progress(f->q, id, &fe, patch, "step 1", NULL), 0);
  json_decref(patch);
  patch = json_pack("{s:{s:s}}", "progress", "phase", "b");
  for (int i = 0; i < 205; i++) assert_int_equal(tq_progress(f->q, id, &fe, i ? NULL : patch, "line", "stderr"), 0);
  json_decref(patch);
  tq_fence stale = {"w1", fe.lease_epoch + 1};
  assert_int_equal(tq_progress(f->q, id, &stale, NULL, "x", NULL), -ESTALE);
  assert_int_equal(tq_get(f->q, id, &t), 0);
  assert_int_equal(t->status, TQ_RUNNING); /* state untouched */
  json_t *j = tq_task_to_json(t, TQ_JSON_FULL);
  json_t *r = json_object_get(j, "result");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "progress"), "pct")), 10); /* merged */
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "progress"), "phase")), "b");
  assert_int_equal(json_array_size(json_object_get(r, "logs")), 200);
  json_decref(j);
  tq_task_free(t);
  /* the logs survive completion (Python's merge rule) */
  json_t *res = json_pack("{s:s}", "out", "ok");
  assert_int_equal(tq_complete(f->q, id, &fe, TQ_COMPLETED, res, NULL), 0);
  json_decref(res);
  assert_int_equal(tq_get(f->q, id, &t), 0);
  j = tq_task_to_json(t, TQ_JSON_FULL);
  assert_int_equal(json_array_size(json_object_get(json_object_get(j, "result"), "logs")), 200);
  json_decref(j);
  tq_task_free(t);
  assert_int_equal(tq_progress(f->q, id, &fe, NULL, "late", NULL), -ESTALE);
}

/* tq_watch_add: a complete hands the watch the row as committed (what a read would give), so a
 * wait answers without reading the task; other transitions hand NULL (read it). */
typedef struct {
  int calls;
  tq_task *row;
  bool got_null;
} watch_seen;

static void on_watch(void *ud, const tq_task *row) {
  watch_seen *w = ud;
  w->calls++;
  if (row) w->row = tq_task_dup(row);
  else w->got_null = true;
}

static void test_watch_gets_the_completed_row(void **state) {
  fx *f = *state;
  char id[33], id2[33];
  submit_p(f->q, "t", "{\"x\": 1}", id);
  submit_p(f->q, "t", "{}", id2);
  tq_claim_opts c = worker("w1");
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &c, &t), 0);
  assert_string_equal(t->task_id, id);
  tq_fence fe = {.worker_id = "w1", .lease_epoch = t->lease_epoch};
  tq_task_free(t);
  watch_seen ws = {0}, ws2 = {0};
  tq_watch *w, *w2;
  assert_int_equal(tq_watch_add(f->q, id, on_watch, &ws, &w), 0);
  assert_int_equal(tq_watch_add(f->q, id2, on_watch, &ws2, &w2), 0);
  assert_int_equal(tq_progress(f->q, id, &fe, NULL, "a line", NULL), 0); /* kept in the merge */
  json_t *res = json_pack("{s:s}", "out", "ok");
  assert_int_equal(tq_complete(f->q, id, &fe, TQ_FAILED, res, "it broke"), 0);
  json_decref(res);
  assert_int_equal(ws.calls, 1); /* before tq_complete returned: after the commit */
  assert_non_null(ws.row);
  assert_int_equal(tq_get(f->q, id, &t), 0);
  json_t *a = tq_task_to_json(ws.row, TQ_JSON_FULL | TQ_JSON_EXTRA);
  json_t *b = tq_task_to_json(t, TQ_JSON_FULL | TQ_JSON_EXTRA);
  assert_true(json_equal(a, b));
  assert_int_equal(ws.row->status, TQ_FAILED);
  assert_string_equal(ws.row->error, "it broke");
  assert_false(ws.row->has_lease);
  assert_true(ws.row->updated_at == t->updated_at);
  json_decref(a);
  json_decref(b);
  tq_task_free(t);
  /* a cancel of a queued task: the watch fires without a row */
  tq_cancel_outcome co;
  assert_int_equal(tq_cancel(f->q, id2, "no", &co), 0);
  assert_int_equal(co, TQ_CANCEL_DONE);
  assert_int_equal(ws2.calls, 1);
  assert_true(ws2.got_null);
  assert_null(ws2.row);
  tq_watch_remove(f->q, w);
  tq_watch_remove(f->q, w2);
  tq_task_free(ws.row);
}

static void noop_watch(void *ud, const tq_task *row) {
  (void)ud;
  (void)row;
}

/* Whether a watched task is live here (tq_watch_add_live): submitted through this handle and
 * not ended through it. A wait skips its first read on it, so a "live" that is wrong would
 * leave a wait unanswered: every end (complete, cancel, delete) takes it out, and a task this
 * handle did not submit (another handle on the same file, an unknown id) is never live. */
static bool live_of(tq_queue *q, const char *id) {
  tq_watch *w = NULL;
  bool live = true;
  assert_int_equal(tq_watch_add_live(q, id, noop_watch, NULL, &w, &live), 0);
  tq_watch_remove(q, w);
  return live;
}

static void test_watch_live_follows_this_handles_tasks(void **state) {
  fx *f = *state;
  char a[33], b[33], c[33], d[33];
  submit_p(f->q, "t", "{}", a);
  assert_true(live_of(f->q, a));
  tq_claim_opts wo = worker("w1");
  tq_task *t;
  assert_int_equal(tq_claim_next(f->q, &wo, &t), 0);
  assert_string_equal(t->task_id, a);
  assert_true(live_of(f->q, a)); /* running */
  tq_fence fe = {"w1", t->lease_epoch};
  tq_task_free(t);
  assert_int_equal(tq_complete(f->q, a, &fe, TQ_COMPLETED, NULL, NULL), 0);
  assert_false(live_of(f->q, a));
  submit_p(f->q, "t", "{\"n\": 1}", b);
  assert_true(live_of(f->q, b));
  tq_cancel_outcome co;
  assert_int_equal(tq_cancel(f->q, b, "no", &co), 0);
  assert_false(live_of(f->q, b));
  submit_p(f->q, "t", "{\"n\": 2}", c);
  bool deleted = false;
  assert_int_equal(tq_delete(f->q, c, &deleted), 0);
  assert_true(deleted);
  assert_false(live_of(f->q, c));
  assert_false(live_of(f->q, "0123456789abcdef0123456789abcdef"));
  /* a second handle on the same file: its submits are not live in the first */
  tq_options o;
  tq_options_default(&o);
  o.path = f->path;
  tq_queue *q2;
  assert_int_equal(tq_open(&o, &q2), 0);
  submit_p(q2, "t", "{\"n\": 3}", d);
  assert_true(live_of(q2, d));
  assert_false(live_of(f->q, d));
  tq_close(q2);
  /* an idempotent replay records nothing new; the first submit's id stays live */
  json_t *p = json_pack("{s:s}", "idempotency_key", "k1");
  tq_submit_req r = {.task_type = "t", .payload = p};
  char e1[33], e2[33];
  bool replayed = false;
  assert_int_equal(tq_submit(f->q, &r, e1, &replayed), 0);
  assert_false(replayed);
  assert_int_equal(tq_submit(f->q, &r, e2, &replayed), 0);
  assert_true(replayed);
  assert_string_equal(e1, e2);
  assert_true(live_of(f->q, e1));
  json_decref(p);
}


/* tq_task_write_json writes exactly the bytes of the tree path (jwrite_json of tq_task_to_json,
 * ASCII-only as the /mcp+p2p/1.0.0 frames are) for every shape a stored row can have, and says
 * so when the tree path would not give a whole object (issue 11 §2: claim and wait replies
 * without trees). */
static void expect_same_bytes(const tq_task *t, unsigned flags) {
  json_t *tree = tq_task_to_json(t, flags);
  assert_non_null(tree);
  char *want = jwrite_dumps(tree, JWRITE_ASCII);
  assert_non_null(want);
  jwrite w;
  jwrite_init(&w, 1u << 20, JWRITE_ASCII);
  jwrite_lit(&w, "x"); /* appends after what the writer holds */
  assert_int_equal(tq_task_write_json(&w, t, flags), 0);
  assert_int_equal(jwrite_len(&w), strlen(want) + 1);
  assert_memory_equal(jwrite_ptr(&w) + 1, want, strlen(want));
  jwrite_free(&w);
  free(want);
  json_decref(tree);
}

static void expect_all_flags(const tq_task *t) {
  const unsigned fl[] = {TQ_JSON_FULL, TQ_JSON_CLAIM, TQ_JSON_FULL | TQ_JSON_EXTRA, TQ_JSON_CLAIM | TQ_JSON_EXTRA};
  for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) expect_same_bytes(t, fl[i]);
}

static void test_task_written_as_text_matches_the_tree(void **state) {
  (void)state;
  tq_task t = {0};
  memcpy(t.task_id, "0123456789abcdef0123456789abcdef", 33);
  t.status = TQ_QUEUED;
  t.created_at = 1765000000.123456;
  t.updated_at = 1765000001.5;
  expect_all_flags(&t); /* no strings, no payload, no lease: {} and nulls */
  /* every field, as Python stores them (", " and ": " separators, \u escapes, reals) */
  t.task_type = "tool.call";
  t.model_name = "m\xc3\xa9";                                 /* non-ASCII: \u00e9 on the wire */
  t.payload_json = "{\"a\": 1, \"b\": [1.5, \"x\\u00e9\\/\"], \"c\": {\"d\": null, \"e\": 1e20, \"f\": -0}, \"g\": 2.0}";
  t.status = TQ_RUNNING;
  t.assigned_worker = "w\"1\\";
  t.result_json = "{\"content\": [{\"type\": \"text\", \"text\": \"\\u2603 \\ud83d\\ude00 caf\xc3\xa9\"}], \"n\": 12345678901234}";
  t.error = "boom\n";
  t.priority = 7;
  t.attempt = 2;
  t.max_attempts = 0;
  t.next_attempt_at = 0;
  t.has_lease = true;
  t.lease_until = 1765000031.000001;
  t.has_heartbeat = true;
  t.heartbeat_at = 1765000000.25;
  t.idempotency_key = "k-1";
  t.lease_epoch = 9007199254740993LL;
  t.cancel_requested = true;
  t.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  expect_all_flags(&t);
  /* text that is not JSON is the text as a string; a NUL inside a payload string; a scalar */
  t.payload_json = "not json \xe2\x82\xac";
  t.result_json = "\"\\u0000x\"";
  expect_all_flags(&t);
  t.payload_json = "[]";
  t.result_json = "3";
  expect_all_flags(&t);
  /* stored text rewritten without a tree: every JSON shape, and the text that takes the parse
   * (a repeated key: the later value in the earlier place; not JSON: a string) */
  static char long_esc[2400];
  if (!long_esc[0]) {
    strcpy(long_esc, "{\"k\": \"");
    for (int i = 0; i < 300; i++) strcat(long_esc, i % 3 ? "\\u00e9" : "a\\\"");
    strcat(long_esc, "\"}");
  }
  const char *texts[] = {
      "{\"a\": {\"b\": [1, 2, {\"c\": []}], \"d\": {}}, \"e\": \"\"}",
      " [ 1 , -0 , 0.1 , -0.0 , 1.5e-7 , 1E+2 , 2e0, 9223372036854775807, -9223372036854775808 ] ",
      "[123456789012345678, 1234567890123456789, 1e308, 5e-324, 2.5E-310]",
      "\"\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\u0080\\uFFFF\\ud800\\udc00\\\"\\\\\"",
      "{\"\\u0061\": 1, \"b\\n\": \"\\u0000\"}",
      "{\"a\": 1, \"a\": 2, \"b\": 3}",         /* a repeated key */
      "{\"a\": 1, \"\\u0061\": [2]}",          /* the same key, escaped */
      "[1e400]",                                 /* real overflow: not JSON to jparse */
      "[12345678901234567890]",                  /* integer overflow */
      "{\"a\": 1,}",                              /* not JSON */
      "\"x\"  ",
      "true", "false", "null", "  7  ",
      "{\"caf\xc3\xa9\": \"\xe2\x98\x83 \xf0\x9f\x98\x80\"}",
      long_esc,
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    t.payload_json = (char *)texts[i];
    t.result_json = (char *)texts[sizeof texts / sizeof texts[0] - 1 - i];
    expect_all_flags(&t);
  }
  /* where the tree path gives no object, the text path says so */
  jwrite w;
  jwrite_init(&w, 1u << 20, JWRITE_ASCII);
  t.model_name = "bad \xc3\x28";
  assert_null(tq_task_to_json(&t, TQ_JSON_CLAIM));
  assert_int_equal(tq_task_write_json(&w, &t, TQ_JSON_CLAIM), -EINVAL);
  t.model_name = "ok";
  t.payload_json = "\xed\xa0\x80"; /* a surrogate in UTF-8: not JSON and no string either */
  assert_null(tq_task_to_json(&t, TQ_JSON_CLAIM));
  jwrite_reset(&w);
  assert_int_equal(tq_task_write_json(&w, &t, TQ_JSON_CLAIM), -EINVAL);
  t.payload_json = "{}";
  t.created_at = NAN;
  assert_null(tq_task_to_json(&t, TQ_JSON_CLAIM));
  jwrite_reset(&w);
  assert_int_equal(tq_task_write_json(&w, &t, TQ_JSON_CLAIM), -EINVAL);
  t.created_at = 1;
  /* the writer's ceiling is its error */
  jwrite_free(&w);
  jwrite_init(&w, 40, JWRITE_ASCII);
  assert_int_equal(tq_task_write_json(&w, &t, TQ_JSON_FULL), -E2BIG);
  jwrite_free(&w);
}

/* test_another_process_closing_keeps_the_wal's other process: opens the queue at argv[2],
 * submits one task, prints its id, closes. */
static int open_submit_close(const char *path) {
  tq_options o;
  tq_options_default(&o);
  o.path = path;
  tq_queue *q;
  char id[33];
  json_t *p = json_object();
  tq_submit_req r = {.task_type = "t", .payload = p};
  if (tq_open(&o, &q) != 0) return 1;
  int rc = tq_submit(q, &r, id, NULL);
  tq_close(q);
  json_decref(p);
  if (rc != 0) return 1;
  printf("%s", id);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "open-submit-close") == 0) return open_submit_close(argv[2]);
  const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, fx_setup, fx_teardown)
      T(test_submit_returns_32_hex_id_and_full_task_dict),
      T(test_idempotency_same_work_replays_different_work_fails),
      T(test_explicit_task_id_must_be_32_lower_hex),
      T(test_claim_order_is_priority_desc_then_created),
      T(test_claim_respects_types_backoff_session_and_sticky),
      T(test_claim_many_same_type_batch),
      T(test_heartbeat_renews_lease_and_fencing_rejects_old_epoch),
      T(test_release_refunds_attempt),
      T(test_out_of_attempts_ends_failed_with_reason),
      T(test_unlimited_attempts_with_zero),
      T(test_cancel_queued_now_running_via_flag),
      T(test_wait_wakes_on_completion_not_timeout),
      T(test_wait_work_wakes_on_submit),
      T(test_wait_work_ignores_other_types_and_times_out),
      T(test_wait_work_wakes_when_a_delayed_retry_falls_due),
      T(test_wait_timeout_returns_current_state_and_is_capped),
      T(test_wait_honours_cancellation),
      T(test_prune_removes_old_terminal_only),
      T(test_bad_input_is_rejected_and_changes_nothing),
      T(test_group_commit_batches_concurrent_submits),
      T(test_tasks_survive_reopen),
      T(test_health_probe_sees_a_broken_file_and_refuses_writes),
      T(test_health_probe_sees_a_removed_file),
      T(test_list_filters_and_stats),
      T(test_read_only_state_dir_is_a_clear_error),
      T(test_async_submit_calls_back_after_commit),
      T(test_full_disk_is_a_clear_error_and_changes_nothing),
      T(test_claim_recovers_expired_lease_itself),
      T(test_python_schema_is_migrated),
      T(test_close_wakes_waiters),
      T(test_recovery_limit_never_fails_tasks_with_attempts_left),
      T(test_foreign_file_is_a_clear_error),
      T(test_wait_sees_other_process_commits),
      T(test_list_byte_cap_truncates),
      T(test_claim_many_byte_cap),
      T(test_progress_is_fenced_and_keeps_state),
      T(test_async_claim_waits_and_is_answered_by_a_submit),
      T(test_async_claim_rides_the_submit_commit),
      T(test_chained_claim_that_misses_announces_the_task),
      T(test_claimed_row_is_the_stored_row),
      T(test_watch_live_follows_this_handles_tasks),
      T(test_async_claim_times_out_cancels_and_closes),
      T(test_async_claims_share_work),
      T(test_async_complete_and_heartbeat),
      T(test_watch_gets_the_completed_row),
      T(test_pipeline_answers_nothing_before_its_sync),
      T(test_pipeline_answers_in_group_order),
      T(test_pipeline_sync_failure_fails_pending_and_refuses_writes),
      T(test_pipeline_off_syncs_in_the_commit),
      T(test_pipeline_claim_that_ends_a_task_waits_for_a_sync),
      T(test_another_process_closing_keeps_the_wal),
      cmocka_unit_test(test_task_written_as_text_matches_the_tree),
      cmocka_unit_test(test_wal_prefill_stays_ahead_and_checkpoints_bound_it),
      cmocka_unit_test(test_wal_prefill_survives_a_crash),
  };
  if (getenv("TQ_TEST_FILTER")) cmocka_set_test_filter(getenv("TQ_TEST_FILTER")); /* one test, e.g. "*prefill*" */
  return cmocka_run_group_tests(tests, NULL, NULL);
}

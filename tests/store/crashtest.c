/* crashtest.c — crash consistency of store/queue and store/cache under SIGKILL.
 *
 *   crashtest run <dir> <iterations> [seed]   the harness (tests/suites/30-store.sh)
 *   crashtest child <dir> <seed>              the workload (spawned by run)
 *
 * The child runs 4 threads doing submit / claim / heartbeat / complete / retry on the queue and
 * writes on the cache, and 2 threads that claim with waiting async claims (tq_claim_next_async,
 * parked until a submit feeds them — in the submit's own transaction) and complete
 * asynchronously; half the submits are async too; and 2 threads that keep bursts of 16 async
 * submits in flight and complete what they claim 16 at a time asynchronously, so that the
 * queue's sync stage (sync_pipeline, on unless CRASH_PIPELINE=0) always holds several
 * committed groups whose sync or answer is pending when the kill lands. It appends one line per *acknowledged*
 * operation to <dir>/acks.log
 * (a single O_APPEND write(2) each, so SIGKILL cannot tear a line). The parent kills the child
 * at a random moment, reopens both stores and checks after every kill:
 *   - every acknowledged submit exists;               - every acknowledged completion is
 *   - each task is in exactly one coherent state        still completed with its result;
 *     (queued: no worker/lease; running: worker+lease; terminal: no lease);
 *   - expired leases come back (recovery leaves no task running);
 *   - the cache never returns a torn record, and never an older value than the last
 *     acknowledged write of that key (keys are per thread, values carry a sequence number).
 * Prints "crash: N passed, N failed"; exit status 1 on any violation.
 * SIGKILL tests process-crash safety only: the page cache survives it, so a missing fsync is
 * not seen here (power loss is argued in docs/store.md, not tested). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/cache.h"
#include "store/queue.h"
#include "util/clock.h"
#include "util/log.h"

#define THREADS 4
#define ASYNC_THREADS 2
#define BURST_THREADS 2
#define BURST 16
#define KEYS_PER_THREAD 8
#define LEASE_S 1.0

static int g_log = -1;
static char g_dir[512];

static void ack(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0 && write(g_log, line, (size_t)n) != n) _exit(3);
}

static void open_stores(tq_queue **q, ttlcache **c) {
  char p[600];
  tq_options o;
  tq_options_default(&o);
  snprintf(p, sizeof p, "%s/queue.sqlite3", g_dir);
  o.path = p;
  o.lease_seconds = LEASE_S;
  const char *pl = getenv("CRASH_PIPELINE");
  o.sync_pipeline = !(pl && strcmp(pl, "0") == 0);
  int rc = tq_open(&o, q);
  if (rc) {
    fprintf(stderr, "tq_open: %d\n", rc);
    exit(2);
  }
  ttlcache_options co;
  ttlcache_options_default(&co);
  snprintf(p, sizeof p, "%s/cache", g_dir);
  co.dir = p;
  if ((rc = ttlcache_open(&co, c))) {
    fprintf(stderr, "ttlcache_open: %d\n", rc);
    exit(2);
  }
}

/* ---- child ---- */

typedef struct {
  tq_queue *q;
  ttlcache *c;
  int id;
  unsigned seed;
} worker;

/* One async callback awaited by a worker thread. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int rc;
  tq_task *t;
  char id[33];
} await;

static void await_reset(await *a) {
  pthread_mutex_lock(&a->mu);
  a->done = false;
  a->rc = 0;
  a->t = NULL;
  a->id[0] = 0;
  pthread_mutex_unlock(&a->mu);
}

static void await_signal(await *a, int rc, tq_task *t, const char *id) {
  pthread_mutex_lock(&a->mu);
  a->rc = rc;
  a->t = t;
  if (id) snprintf(a->id, sizeof a->id, "%s", id);
  a->done = true;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

static void await_wait(await *a) {
  pthread_mutex_lock(&a->mu);
  while (!a->done) pthread_cond_wait(&a->cv, &a->mu);
  pthread_mutex_unlock(&a->mu);
}

static void on_asubmit(int rc, const char *task_id, bool replayed, void *ud) {
  (void)replayed;
  await_signal(ud, rc, NULL, task_id);
}
static void on_aclaim(int rc, tq_task *t, bool waited, void *ud) {
  (void)waited;
  await_signal(ud, rc, t, NULL);
}
static void on_adone(int rc, void *ud) { await_signal(ud, rc, NULL, NULL); }

/* Waiting async claims: each parks until a submit feeds it, then completes the task. */
static void *async_work(void *arg) {
  worker *w = arg;
  char wid[32];
  snprintf(wid, sizeof wid, "a%d-%d", (int)getpid(), w->id);
  await a = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  for (;;) {
    tq_claim_opts o = {.worker_id = wid};
    await_reset(&a);
    if (tq_claim_next_async(w->q, &o, 1.0, on_aclaim, &a, NULL) != 0) continue;
    await_wait(&a);
    tq_task *t = a.t;
    if (a.rc != 0 || !t) continue;
    tq_fence f = {wid, t->lease_epoch};
    json_t *res = json_pack("{s:s}", "r", t->task_id);
    char id[33];
    snprintf(id, sizeof id, "%s", t->task_id);
    tq_task_free(t);
    await_reset(&a);
    if (tq_complete_async(w->q, id, &f, TQ_COMPLETED, res, NULL, on_adone, &a) == 0) {
      await_wait(&a);
      if (a.rc == 0) ack("D %s\n", id);
    }
    json_decref(res);
  }
  return NULL;
}

/* Bursts: BURST async submits in flight at once, then BURST async claims + completes. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int left;
} burst_wait;

typedef struct {
  burst_wait *w;
  tq_task *t;
  int rc;
} burst_slot;

static void burst_arrive(burst_wait *w) {
  pthread_mutex_lock(&w->mu);
  w->left--;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void burst_await(burst_wait *w) {
  pthread_mutex_lock(&w->mu);
  while (w->left > 0) pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

static void on_bsubmit(int rc, const char *task_id, bool replayed, void *ud) {
  (void)replayed;
  if (rc == 0) ack("S %s\n", task_id); /* written before the burst's wait ends: acknowledged */
  burst_arrive(ud);
}

static void on_bclaim(int rc, tq_task *t, bool waited, void *ud) {
  (void)waited;
  burst_slot *s = ud;
  s->rc = rc;
  s->t = t;
  burst_arrive(s->w);
}

static void on_bdone(int rc, void *ud) {
  burst_slot *s = ud;
  s->rc = rc;
  burst_arrive(s->w);
}

static void *burst_work(void *arg) {
  worker *w = arg;
  char wid[32];
  snprintf(wid, sizeof wid, "b%d-%d", (int)getpid(), w->id);
  long seq = (long)(clock_wall_s() * 1000) * 100;
  burst_wait bw = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  burst_slot sl[BURST];
  for (;;) {
    bw.left = BURST;
    for (int i = 0; i < BURST; i++) {
      json_t *p = json_pack("{s:i, s:I}", "burst", w->id, "seq", (json_int_t)++seq);
      tq_submit_req req = {.task_type = "crash", .payload = p};
      if (tq_submit_async(w->q, &req, on_bsubmit, &bw) != 0) burst_arrive(&bw);
      json_decref(p);
    }
    burst_await(&bw);
    bw.left = BURST;
    for (int i = 0; i < BURST; i++) {
      sl[i] = (burst_slot){&bw, NULL, 0};
      tq_claim_opts o = {.worker_id = wid};
      if (tq_claim_next_async(w->q, &o, 0, on_bclaim, &sl[i], NULL) != 0) burst_arrive(&bw);
    }
    burst_await(&bw);
    char ids[BURST][33];
    json_t *res[BURST];
    bw.left = BURST;
    for (int i = 0; i < BURST; i++) {
      tq_task *t = sl[i].t;
      res[i] = NULL;
      ids[i][0] = 0;
      if (sl[i].rc != 0 || !t) {
        burst_arrive(&bw);
        continue;
      }
      tq_fence f = {wid, t->lease_epoch};
      snprintf(ids[i], sizeof ids[i], "%s", t->task_id);
      res[i] = json_pack("{s:s}", "r", t->task_id);
      tq_task_free(t);
      sl[i].rc = -1;
      if (tq_complete_async(w->q, ids[i], &f, TQ_COMPLETED, res[i], NULL, on_bdone, &sl[i]) != 0) {
        ids[i][0] = 0;
        burst_arrive(&bw);
      }
    }
    burst_await(&bw);
    for (int i = 0; i < BURST; i++) {
      if (ids[i][0] && sl[i].rc == 0) ack("D %s\n", ids[i]);
      json_decref(res[i]);
    }
  }
  return NULL;
}

static void *work(void *arg) {
  worker *w = arg;
  char wid[32];
  snprintf(wid, sizeof wid, "w%d-%d", (int)getpid(), w->id);
  long seq = (long)(clock_wall_s() * 1000) * 100; /* increases across restarts */
  char pad[20001];
  memset(pad, 'p', sizeof pad - 1);
  for (;;) {
    int r = (int)(rand_r(&w->seed) % 10);
    if (r < 4) {
      json_t *p = json_pack("{s:i, s:I}", "thread", w->id, "seq", (json_int_t)++seq);
      tq_submit_req req = {.task_type = "crash", .payload = p};
      char id[33];
      if (rand_r(&w->seed) % 2) {
        if (tq_submit(w->q, &req, id, NULL) == 0) ack("S %s\n", id);
      } else {
        static __thread await a = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        await_reset(&a);
        if (tq_submit_async(w->q, &req, on_asubmit, &a) == 0) {
          await_wait(&a);
          if (a.rc == 0) ack("S %s\n", a.id);
        }
      }
      json_decref(p);
    } else if (r < 8) {
      tq_claim_opts o = {.worker_id = wid};
      tq_task *t = NULL;
      if (tq_claim_next(w->q, &o, &t) == 0 && t) {
        tq_fence f = {wid, t->lease_epoch};
        tq_heartbeat_reply hb;
        if (tq_heartbeat(w->q, t->task_id, &f, 0, &hb) != 0) ack("H-lost %s\n", t->task_id);
        if (rand_r(&w->seed) % 4 == 0) {
          tq_status fs;
          if (tq_retry(w->q, t->task_id, &f, 0, "transient", &fs) == 0) ack("R %s\n", t->task_id);
        } else {
          json_t *res = json_pack("{s:s}", "r", t->task_id);
          if (tq_complete(w->q, t->task_id, &f, TQ_COMPLETED, res, NULL) == 0) ack("D %s\n", t->task_id);
          json_decref(res);
        }
        tq_task_free(t);
      }
    } else {
      char key[64];
      int k = (int)(rand_r(&w->seed) % KEYS_PER_THREAD);
      snprintf(key, sizeof key, "t%d-k%d", w->id, k);
      size_t len = rand_r(&w->seed) % 20000;
      pad[len] = 0;
      json_t *v = json_pack("{s:I, s:I, s:s}", "seq", (json_int_t)++seq, "len", (json_int_t)len, "pad", pad);
      pad[len] = 'p';
      if (ttlcache_set(w->c, key, v, NULL) == 0) ack("K %s %ld\n", key, seq);
      json_decref(v);
    }
  }
  return NULL;
}

static int child_main(unsigned seed) {
  tq_queue *q;
  ttlcache *c;
  open_stores(&q, &c);
  enum { N = THREADS + ASYNC_THREADS + BURST_THREADS };
  pthread_t th[N];
  worker w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker){q, c, i, seed * 31u + (unsigned)i};
    pthread_create(&th[i], NULL, i < THREADS ? work : i < THREADS + ASYNC_THREADS ? async_work : burst_work, &w[i]);
  }
  for (;;) pause();
  return 0;
}

/* ---- checks ---- */

typedef struct {
  char id[33];
  int kind; /* 'S' or 'D' */
} ack_task;

typedef struct {
  char key[32];
  long seq;
} ack_key;


static int failures;
#define CHECK(cond, ...)                                                                                           \
  do {                                                                                                             \
    if (!(cond)) {                                                                                                 \
      fprintf(stderr, "VIOLATION: " __VA_ARGS__);                                                                  \
      fputc('\n', stderr);                                                                                         \
      failures++;                                                                                                  \
    }                                                                                                              \
  } while (0)

typedef struct {
  char id[33];
  char status[16];
  int has_worker, has_lease;
  char *result;
} row;

static int cmp_row(const void *a, const void *b) { return strcmp(((const row *)a)->id, ((const row *)b)->id); }

static int verify(void) {
  int before = failures;
  /* reopen (runs WAL recovery) and recover every lease left by the killed child */
  tq_queue *q;
  ttlcache *c;
  open_stores(&q, &c);
  size_t n_rec;
  CHECK(tq_recover_expired(q, clock_wall_s() + LEASE_S + 3600, 10000, &n_rec) == 0, "recover failed");
  /* the whole table, straight from SQLite */
  char p[600];
  snprintf(p, sizeof p, "%s/queue.sqlite3", g_dir);
  sqlite3 *db;
  CHECK(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open db");
  sqlite3_stmt *s;
  sqlite3_prepare_v2(db, "SELECT task_id, status, assigned_worker IS NOT NULL, lease_until IS NOT NULL, result_json FROM tasks",
                     -1, &s, NULL);
  size_t n = 0, cap = 1024;
  row *rows = malloc(cap * sizeof *rows);
  while (sqlite3_step(s) == SQLITE_ROW) {
    if (n == cap) rows = realloc(rows, (cap *= 2) * sizeof *rows);
    row *r = &rows[n++];
    snprintf(r->id, sizeof r->id, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(r->status, sizeof r->status, "%s", (const char *)sqlite3_column_text(s, 1));
    r->has_worker = sqlite3_column_int(s, 2);
    r->has_lease = sqlite3_column_int(s, 3);
    const unsigned char *res = sqlite3_column_text(s, 4);
    r->result = res ? strdup((const char *)res) : NULL;
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  qsort(rows, n, sizeof *rows, cmp_row);
  for (size_t i = 0; i < n; i++) {
    row *r = &rows[i];
    if (i) CHECK(strcmp(rows[i - 1].id, r->id) != 0, "task %s twice", r->id);
    if (strcmp(r->status, "queued") == 0) CHECK(!r->has_worker && !r->has_lease, "queued task %s owned", r->id);
    else if (strcmp(r->status, "running") == 0) CHECK(0, "task %s still running after lease recovery", r->id);
    else if (strcmp(r->status, "completed") == 0 || strcmp(r->status, "failed") == 0 || strcmp(r->status, "cancelled") == 0)
      CHECK(!r->has_lease, "terminal task %s holds a lease", r->id);
    else CHECK(0, "task %s in unknown state %s", r->id, r->status);
  }
  /* acknowledged operations */
  snprintf(p, sizeof p, "%s/acks.log", g_dir);
  FILE *fp = fopen(p, "r");
  size_t n_keys = 0;
  ack_key keys[THREADS * KEYS_PER_THREAD];
  char line[256];
  size_t n_s = 0, n_d = 0;
  while (fp && fgets(line, sizeof line, fp)) {
    char a[64];
    long seq;
    if (line[0] == 'S' || line[0] == 'D') {
      if (sscanf(line + 2, "%32s", a) != 1) continue;
      row key;
      snprintf(key.id, sizeof key.id, "%.32s", a);
      row *r = bsearch(&key, rows, n, sizeof *rows, cmp_row);
      CHECK(r != NULL, "acknowledged task %s lost", a);
      if (line[0] == 'S') n_s++;
      if (line[0] == 'D') {
        n_d++;
        if (r) {
          CHECK(strcmp(r->status, "completed") == 0, "acknowledged completion of %s now %s", a, r->status);
          CHECK(r->result && strstr(r->result, a), "result of %s lost", a);
        }
      }
    } else if (line[0] == 'K' && sscanf(line + 2, "%31s %ld", a, &seq) == 2) {
      size_t i;
      for (i = 0; i < n_keys && strcmp(keys[i].key, a) != 0; i++) {
      }
      if (i == n_keys && n_keys < THREADS * KEYS_PER_THREAD) {
        snprintf(keys[n_keys].key, sizeof keys[n_keys].key, "%.31s", a);
        keys[n_keys++].seq = seq;
      } else if (i < n_keys && seq > keys[i].seq) {
        keys[i].seq = seq;
      }
    }
  }
  if (fp) fclose(fp);
  (void)n_s;
  (void)n_d;
  for (size_t i = 0; i < n_keys; i++) {
    json_t *v = NULL;
    int rc = ttlcache_get(c, keys[i].key, &v);
    CHECK(rc == 0, "acknowledged cache key %s lost (rc %d)", keys[i].key, rc);
    if (rc == 0) {
      json_t *pad = json_object_get(v, "pad");
      CHECK(json_is_string(pad) && (json_int_t)json_string_length(pad) == json_integer_value(json_object_get(v, "len")),
            "torn cache value for %s", keys[i].key);
      CHECK(json_integer_value(json_object_get(v, "seq")) >= keys[i].seq, "cache key %s went back in time",
            keys[i].key);
      json_decref(v);
    }
  }
  ttlcache_stats st;
  ttlcache_stats_get(c, &st);
  CHECK(st.corrupt == 0, "%llu corrupt cache records", (unsigned long long)st.corrupt);
  for (size_t i = 0; i < n; i++) free(rows[i].result);
  free(rows);
  tq_close(q);
  ttlcache_close(c);
  return failures == before;
}

int main(int argc, char **argv) {
  log_set_level(LOG_ERROR);
  if (argc >= 4 && strcmp(argv[1], "child") == 0) {
    snprintf(g_dir, sizeof g_dir, "%s", argv[2]);
    char p[600];
    snprintf(p, sizeof p, "%s/acks.log", g_dir);
    g_log = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (g_log < 0) return 2;
    return child_main((unsigned)strtoul(argv[3], NULL, 10));
  }
  if (argc < 4 || strcmp(argv[1], "run") != 0) {
    fprintf(stderr, "usage: crashtest run <dir> <iterations> [seed]\n");
    return 2;
  }
  snprintf(g_dir, sizeof g_dir, "%s", argv[2]);
  int iters = atoi(argv[3]);
  /* the seed: the argument, else CRASH_SEED, else the clock; printed so a failure can be run
   * again with the same workloads and kill delays (CRASH_SEED=N) */
  const char *env_seed = getenv("CRASH_SEED");
  unsigned seed = argc > 4                  ? (unsigned)strtoul(argv[4], NULL, 10)
                  : env_seed && *env_seed ? (unsigned)strtoul(env_seed, NULL, 10)
                                            : (unsigned)time(NULL);
  const unsigned base = seed; /* iteration i's workload: base + i, whatever the delays drew */
  const char *pl = getenv("CRASH_PIPELINE");
  fprintf(stderr, "crashtest: %d iterations, seed %u, dir %s, sync pipeline %s\n", iters, seed, g_dir,
          pl && strcmp(pl, "0") == 0 ? "off" : "on");
  int passed = 0, failed = 0;
  for (int i = 0; i < iters; i++) {
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
      char s[32];
      snprintf(s, sizeof s, "%u", base + (unsigned)i);
      execl("/proc/self/exe", argv[0], "child", g_dir, s, (char *)NULL);
      _exit(127);
    }
    /* kill at a random moment: during open/recovery, or in the middle of the workload */
    unsigned delay_us = 1000 + (unsigned)(rand_r(&seed) % 120000);
    usleep(delay_us);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
      fprintf(stderr, "iteration %d (seed %u): child exited with %d\n", i, base, WEXITSTATUS(st));
      failed++;
      continue;
    }
    if (verify()) passed++;
    else {
      fprintf(stderr, "iteration %d (kill after %u us; repeat with CRASH_SEED=%u) failed\n", i, delay_us, base);
      failed++;
    }
  }
  printf("crash: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

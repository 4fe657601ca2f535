/* queue.c — the TaskQueue front end (see queue.h): validation and normalisation of requests
 * (p2p_tasks_spec.md §5.4 rules), synchronous calls over the backend's asynchronous durable
 * ops, the waiters of tq_wait, and task → JSON. Storage lives in the backend. */
#include "store/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/pyjson.h"
#include "store/queue_backend.h"
#include "util/alloc.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/jparse.h"
#include "util/jwrite.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/trace.h"

#define TQ_MAX_TYPE_BYTES 256
#define TQ_MAX_WORKER_BYTES 256
#define TQ_MAX_KEY_BYTES 256
#define TQ_MAX_TEXT_BYTES 65536 /* error / reason strings */
#define TQ_MAX_LEASE 86400.0

typedef struct tq_waiter {
  char task_id[33];
  pthread_cond_t cv;
  bool fired;
  struct tq_waiter *next;
} tq_waiter;

typedef struct tq_work_waiter {
  pthread_cond_t cv;
  bool fired, targeted;
  const char *const *types; /* borrowed from the waiting caller */
  size_t n_types;
  struct tq_work_waiter *next;
} tq_work_waiter;

#define TQ_MAX_WATCHERS 8
/* An asynchronous waiter (tq_watch_add): a callback instead of a blocked thread. */
struct tq_watch {
  char task_id[33];
  void (*fn)(void *ud, const tq_task *row);
  void *ud;
  bool fired;
  struct tq_watch *next;
};

/* The tasks submitted through this handle that have not ended through it (tq_watch_add_live):
 * a chained hash of ids under wmu, at most TQ_LIVE_MAX (beyond, a submit is not recorded and a
 * wait reads the task as before). */
#define TQ_LIVE_BUCKETS 4096u
#define TQ_LIVE_MAX 65536u
typedef struct live_id {
  struct live_id *next;
  char id[33];
} live_id;

struct tq_queue {
  tq_options o;
  char *path;
  const tq_backend_ops *ops;
  tq_backend *be;
  pthread_mutex_t wmu; /* waiters; invariant: n_waiters is the length of the waiters list and
                         at most o.max_waiters */
  tq_waiter *waiters;
  size_t n_waiters;
  tq_work_waiter *work_waiters; /* oldest first; counted in n_waiters too */
  uint64_t work_gen;
  /* when delayed retries made through this handle fall due (wall seconds, the earliest kept
   * when full): a work waiter wakes then instead of at its timeout */
  double due[16];
  size_t n_due;
  struct {
    void (*fn)(void *, const char *);
    void *ud;
  } watchers[TQ_MAX_WATCHERS];
  tq_watch *watches; /* under wmu too; n_watches <= o.max_waiters */
  size_t n_watches;
  live_id **live; /* TQ_LIVE_BUCKETS heads (allocated at the first submit), under wmu */
  size_t n_live;
  struct aclaim *claims; /* waiting async claims (parked or running), oldest first; under wmu,
                            counted in n_waiters */
  uint64_t claim_seq;
  double claims_due_seen; /* due times up to this one were handled by tq_claims_expire */
  /* the thread that ends waiting claims at their deadline (started with the first one) */
  pthread_t exp_thread;
  pthread_cond_t exp_cv; /* CLOCK_MONOTONIC */
  int64_t exp_at;        /* when it wakes next (monotonic ms; INT64_MAX: not planned) */
  bool exp_started;
  bool closing;
  /* health (tq_health_get, issue 9 item 10), under hmu: the storage errors operations met and
   * what the probe found; the file's identity at open */
  pthread_mutex_t hmu;
  int last_err, broken;   /* broken: sticky, the file cannot serve until repaired */
  bool failing;           /* the latest operation that reached storage failed */
  double last_err_at;
  unsigned long errors;
  char reason[320];       /* one line naming the file */
  dev_t dev;
  ino_t ino;
  bool have_id;
  /* the database file, opened once at open for the probe's header reads and closed only after
   * the backend: closing any descriptor of a file drops every POSIX lock the process holds on
   * it — SQLite's too (the probe used to open and close the file every 5 s, after which another
   * process closing its connection found no lock, and deleted the WAL the writer was still
   * appending to) */
  int probe_fd;
};

typedef struct aclaim aclaim;
static aclaim *take_parked(tq_queue *q, const char *type, const aclaim *except);
static tq_op *submit_chain(tq_op *op);
static void requeue_list(aclaim *list);

static const char *status_names[TQ_STATUS_COUNT] = {"queued", "running", "completed", "failed",
                                                     "cancelled"};

const char *tq_status_name(tq_status s) {
  return (s >= 0 && s < TQ_STATUS_COUNT) ? status_names[s] : "unknown";
}

int tq_status_parse(const char *name, tq_status *out) {
  if (!name) return -EINVAL;
  for (int i = 0; i < TQ_STATUS_COUNT; i++)
    if (strcmp(name, status_names[i]) == 0) {
      *out = (tq_status)i;
      return 0;
    }
  return -EINVAL;
}

void tq_options_default(tq_options *o) {
  memset(o, 0, sizeof *o);
  o->max_payload_bytes = 1048576;
  o->lease_seconds = 300;
  o->max_attempts = 3;
  o->wait_max_seconds = 300;
  o->group_commit = true;
  o->group_max_ops = 512;
  o->prune_after_seconds = 604800;
  o->busy_timeout_ms = 5000;
  o->read_connections = 4;
  o->max_waiters = 4096;
  o->wait_recheck_ms = 1000;
  o->wal_prefill = true;
  o->wal_autocheckpoint = 8192;
  o->sync_pipeline = false; /* off: see docs/store.md, "Pipelined group commit" (measured) */
}

char *tq__strdup(const char *s) { return s ? strdup(s) : NULL; }

const char *tq_strerror(int rc) {
  switch (rc) {
  case 0: return "ok";
  case -EINVAL: return "invalid_argument";
  case -E2BIG: return "payload_too_large";
  case -EEXIST: return "idempotency key or task_id already identifies different work";
  case -ENOENT: return "task_not_found";
  case -ESTALE: return "lease_lost";
  case -ENOSPC: return "disk_full";
  case -EROFS: return "read_only_storage";
  case -EACCES: return "storage_permission_denied";
  case -EIO: return "storage_error";
  case -EBUSY: return "busy";
  case -ESHUTDOWN: return "queue_closed";
  case -ENOMEM: return "out_of_memory";
  case -ETIMEDOUT: return "timeout";
  case -ENOTSUP: return "not_an_sqlite_database";
  case -EBADMSG: return "database_corrupt";
  default: return "internal_error";
  }
}

static bool task_id_ok(const char *s);

/* ---- waiters ---- */

static live_id **live_slot(tq_queue *q, const char *id) {
  uint32_t h = 2166136261u; /* FNV-1a: explicit ids are the caller's, not random */
  for (const char *p = id; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
  live_id **pp = &q->live[h % TQ_LIVE_BUCKETS];
  while (*pp && strcmp((*pp)->id, id) != 0) pp = &(*pp)->next;
  return pp;
}

/* Under wmu. */
static void live_add(tq_queue *q, const char *id) {
  if (q->n_live >= TQ_LIVE_MAX) return;
  if (!q->live && !(q->live = calloc(TQ_LIVE_BUCKETS, sizeof *q->live))) return;
  live_id **pp = live_slot(q, id);
  if (*pp) return;
  live_id *e = malloc(sizeof *e);
  if (!e) return; /* not recorded: a wait reads the task */
  memcpy(e->id, id, 33);
  e->next = NULL;
  *pp = e;
  q->n_live++;
}

/* Under wmu. */
static void live_del(tq_queue *q, const char *id) {
  if (!q->n_live) return;
  live_id **pp = live_slot(q, id);
  live_id *e = *pp;
  if (!e) return;
  *pp = e->next;
  free(e);
  q->n_live--;
}

static void on_terminal(void *ud, const char *task_id, const tq_task *row) {
  tq_queue *q = ud;
  pthread_mutex_lock(&q->wmu);
  live_del(q, task_id);
  for (tq_waiter *w = q->waiters; w; w = w->next)
    if (strcmp(w->task_id, task_id) == 0) {
      w->fired = true;
      pthread_cond_signal(&w->cv);
    }
  for (tq_watch *w = q->watches; w; w = w->next)
    if (!w->fired && strcmp(w->task_id, task_id) == 0) {
      w->fired = true;
      w->fn(w->ud, row); /* under wmu: tq_watch_remove waits for it */
    }
  pthread_mutex_unlock(&q->wmu);
}

static bool work_type_matches(const tq_work_waiter *w, const char *type) {
  if (!w->n_types || !type) return true;
  for (size_t i = 0; i < w->n_types; i++)
    if (strcmp(w->types[i], type) == 0) return true;
  return false;
}

/* Work may be claimable: type = the one new task's type (wake one matching waiter), NULL =
 * anything (wake all). */
static void work_changed(tq_queue *q, const char *type) {
  pthread_mutex_lock(&q->wmu);
  q->work_gen++;
  for (tq_work_waiter *w = q->work_waiters; w; w = w->next) {
    if (w->fired || !work_type_matches(w, type)) continue;
    w->fired = true;
    w->targeted = type != NULL;
    pthread_cond_signal(&w->cv);
    if (type) break;
  }
  for (unsigned i = 0; i < TQ_MAX_WATCHERS; i++)
    if (q->watchers[i].fn) q->watchers[i].fn(q->watchers[i].ud, type);
  aclaim *wake = q->claims ? take_parked(q, type, NULL) : NULL;
  pthread_mutex_unlock(&q->wmu);
  requeue_list(wake);
}

void tq_work_pass(tq_queue *q) { work_changed(q, NULL); }

/* A delayed retry falls due at `at` (wall seconds). */
static void work_due_at(tq_queue *q, double at) {
  pthread_mutex_lock(&q->wmu);
  size_t n = sizeof q->due / sizeof q->due[0];
  if (q->n_due < n) {
    q->due[q->n_due++] = at;
  } else {
    size_t latest = 0;
    for (size_t i = 1; i < n; i++)
      if (q->due[i] > q->due[latest]) latest = i;
    if (at < q->due[latest]) q->due[latest] = at;
  }
  for (tq_work_waiter *w = q->work_waiters; w; w = w->next) pthread_cond_signal(&w->cv); /* re-plan */
  if (q->exp_started && q->claims) pthread_cond_signal(&q->exp_cv);
  pthread_mutex_unlock(&q->wmu);
}

/* Under wmu: takes one due time that has come (true), else *next = the earliest (0: none). */
static bool work_take_due(tq_queue *q, double now, double *next) {
  *next = 0;
  for (size_t i = 0; i < q->n_due; i++) {
    if (q->due[i] <= now) {
      q->due[i] = q->due[--q->n_due];
      return true;
    }
    if (*next == 0 || q->due[i] < *next) *next = q->due[i];
  }
  return false;
}

uint64_t tq_work_gen(tq_queue *q) {
  pthread_mutex_lock(&q->wmu);
  uint64_t g = q->work_gen;
  pthread_mutex_unlock(&q->wmu);
  return g;
}

int tq_work_watch(tq_queue *q, void (*fn)(void *ud, const char *task_type), void *ud) {
  if (!fn) return -EINVAL;
  int rc = -ENOSPC;
  pthread_mutex_lock(&q->wmu);
  for (unsigned i = 0; i < TQ_MAX_WATCHERS; i++)
    if (!q->watchers[i].fn) {
      q->watchers[i].fn = fn;
      q->watchers[i].ud = ud;
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&q->wmu);
  return rc;
}

void tq_work_unwatch(tq_queue *q, void (*fn)(void *ud, const char *task_type), void *ud) {
  pthread_mutex_lock(&q->wmu);
  for (unsigned i = 0; i < TQ_MAX_WATCHERS; i++)
    if (q->watchers[i].fn == fn && q->watchers[i].ud == ud) q->watchers[i].fn = NULL;
  pthread_mutex_unlock(&q->wmu);
}

int tq_wait_work(tq_queue *q, uint64_t seen, const tq_claim_opts *o, double timeout_s, bool (*cancelled)(void *),
                 void *cancel_ud, bool *targeted) {
  if (targeted) *targeted = false;
  if (!isfinite(timeout_s) || timeout_s < 0) timeout_s = 0;
  if (timeout_s > q->o.wait_max_seconds) timeout_s = q->o.wait_max_seconds;
  tq_work_waiter w;
  memset(&w, 0, sizeof w);
  w.types = o ? o->task_types : NULL;
  w.n_types = o ? o->n_task_types : 0;
  pthread_mutex_lock(&q->wmu);
  if (q->closing) {
    pthread_mutex_unlock(&q->wmu);
    return -ESHUTDOWN;
  }
  if (q->work_gen != seen) {
    pthread_mutex_unlock(&q->wmu);
    return 0;
  }
  if (q->n_waiters >= q->o.max_waiters) {
    pthread_mutex_unlock(&q->wmu);
    return -EBUSY;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w.cv, &ca);
  pthread_condattr_destroy(&ca);
  tq_work_waiter **pp = &q->work_waiters; /* appended: the oldest waiter is woken first */
  while (*pp) pp = &(*pp)->next;
  *pp = &w;
  q->n_waiters++;
  int64_t deadline = clock_mono_ms() + (int64_t)(timeout_s * 1000.0);
  int rc;
  for (;;) {
    if (w.fired) {
      rc = 0;
      break;
    }
    if (q->closing) {
      rc = -ESHUTDOWN;
      break;
    }
    double next_due;
    if (work_take_due(q, clock_wall_s(), &next_due)) {
      rc = 0; /* a delayed retry has come due: look */
      break;
    }
    int64_t now = clock_mono_ms();
    if (now >= deadline) {
      rc = -ETIMEDOUT;
      break;
    }
    int64_t until = deadline;
    if (next_due > 0) {
      int64_t at = now + (int64_t)((next_due - clock_wall_s()) * 1000.0) + 1;
      if (at < until) until = at;
    }
    if (cancelled && until > now + 200) until = now + 200;
    struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000L};
    pthread_cond_timedwait(&w.cv, &q->wmu, &ts);
    if (!w.fired && cancelled && cancelled(cancel_ud)) {
      rc = -ECANCELED;
      break;
    }
  }
  for (pp = &q->work_waiters; *pp; pp = &(*pp)->next)
    if (*pp == &w) {
      *pp = w.next;
      break;
    }
  CHECK(q->n_waiters > 0);
  q->n_waiters--;
  if (targeted) *targeted = w.fired && w.targeted;
  pthread_mutex_unlock(&q->wmu);
  pthread_cond_destroy(&w.cv);
  return rc;
}

int tq_watch_add(tq_queue *q, const char *task_id, void (*fn)(void *ud, const tq_task *row), void *ud,
                 tq_watch **out) {
  return tq_watch_add_live(q, task_id, fn, ud, out, NULL);
}

int tq_watch_add_live(tq_queue *q, const char *task_id, void (*fn)(void *ud, const tq_task *row), void *ud,
                      tq_watch **out, bool *live) {
  *out = NULL;
  if (live) *live = false;
  if (!fn || !task_id_ok(task_id)) return task_id && *task_id ? -ENOENT : -EINVAL;
  tq_watch *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  memcpy(w->task_id, task_id, 33);
  w->fn = fn;
  w->ud = ud;
  pthread_mutex_lock(&q->wmu);
  if (q->closing || q->n_watches >= q->o.max_waiters) {
    int rc = q->closing ? -ESHUTDOWN : -EBUSY;
    pthread_mutex_unlock(&q->wmu);
    free(w);
    return rc;
  }
  w->next = q->watches;
  q->watches = w;
  q->n_watches++;
  if (live && q->n_live) *live = *live_slot(q, task_id) != NULL;
  pthread_mutex_unlock(&q->wmu);
  *out = w;
  return 0;
}

void tq_watch_remove(tq_queue *q, tq_watch *w) {
  if (!w) return;
  pthread_mutex_lock(&q->wmu);
  bool found = false;
  for (tq_watch **pp = &q->watches; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      found = true;
      break;
    }
  CHECK(found && q->n_watches > 0);
  if (found) q->n_watches--;
  pthread_mutex_unlock(&q->wmu);
  free(w);
}

/* ---- health ---- */

static bool storage_err(int rc) {
  return rc == -EBADMSG || rc == -ENOTSUP || rc == -EIO || rc == -ENOSPC || rc == -EROFS || rc == -EACCES;
}

/* Records what an operation that reached storage returned: a storage error is remembered with
 * a reason naming the file (corruption for good: it does not heal while the file is open); any
 * other outcome means the storage answered. */
static void health_break(tq_queue *q, int rc, const char *why_now);

static void health_note(tq_queue *q, int rc) {
  bool bad = storage_err(rc);
  int se = bad && q->ops->sync_error ? q->ops->sync_error(q->be) : 0;
  if (se) { /* a failed WAL sync: for good (writes refused until a restart) */
    char why[320];
    snprintf(why, sizeof why,
             "a sync of the queue database's write-ahead log failed (%s: %s); writes are refused and what was not yet"
             " acknowledged may be lost: restart the node (SQLite recovers what reached the disk) and check the disk",
             q->path, strerror(-se));
    health_break(q, se, why);
    return;
  }
  pthread_mutex_lock(&q->hmu);
  if (!bad) {
    q->failing = false;
    pthread_mutex_unlock(&q->hmu);
    return;
  }
  bool first = !q->failing && !q->broken;
  q->failing = true;
  q->last_err = rc;
  q->last_err_at = clock_wall_s();
  q->errors++;
  if (!q->broken) {
    if (rc == -EBADMSG || rc == -ENOTSUP) {
      q->broken = rc;
      snprintf(q->reason, sizeof q->reason,
               "the queue database %s became %s while serving (SQLite); run `peermcp queue check` and see "
               "docs/store.md, \"Recovery\"",
               q->path, rc == -EBADMSG ? "corrupt (database disk image is malformed)" : "unreadable (not a database)");
    } else {
      snprintf(q->reason, sizeof q->reason, "the queue database %s: %s (%s)", q->path, tq_strerror(rc), strerror(-rc));
    }
  }
  char why[sizeof q->reason];
  memcpy(why, q->reason, sizeof why);
  pthread_mutex_unlock(&q->hmu);
  if (first) log_write(LOG_ERROR, "queue: storage failing", "{s:s, s:s, s:s}", "path", q->path, "error", tq_strerror(rc), "reason", why);
}

static void health_break(tq_queue *q, int rc, const char *why_now) {
  pthread_mutex_lock(&q->hmu);
  bool first = !q->broken;
  if (first) {
    q->broken = rc;
    q->last_err = rc;
    q->last_err_at = clock_wall_s();
    q->errors++;
    snprintf(q->reason, sizeof q->reason, "%s", why_now);
  }
  pthread_mutex_unlock(&q->hmu);
  if (first) log_write(LOG_ERROR, "queue: storage broken", "{s:s, s:s, s:s}", "path", q->path, "error", tq_strerror(rc), "reason", why_now);
}

void tq_health_probe(tq_queue *q) {
  if (!q) return;
  char why[320];
  struct stat st;
  if (lstat(q->path, &st) != 0) {
    int e = errno;
    if (e == ENOENT)
      snprintf(why, sizeof why,
               "the queue database %s was removed while serving (the node writes to a deleted file: its tasks are "
               "lost at exit); stop the node and see docs/store.md, \"Recovery\"",
               q->path);
    else
      snprintf(why, sizeof why, "the queue database %s cannot be reached: %s", q->path, strerror(e));
    health_break(q, e == EACCES ? -EACCES : -EIO, why);
    return;
  }
  if (q->have_id && (st.st_dev != q->dev || st.st_ino != q->ino)) {
    snprintf(why, sizeof why,
             "the queue database %s was replaced by another file while serving (the node still uses the old one); "
             "stop the node and see docs/store.md, \"Recovery\"",
             q->path);
    health_break(q, -EIO, why);
    return;
  }
  if (q->probe_fd < 0) return;
  char hdr[16];
  ssize_t got = pread(q->probe_fd, hdr, sizeof hdr, 0); /* the inode the lstat above matched */
  if (got < 0) return;
  if (got < (ssize_t)sizeof hdr || memcmp(hdr, "SQLite format 3", 16) != 0) {
    snprintf(why, sizeof why,
             "the queue database %s became corrupt while serving (its header is %s); run `peermcp queue check` and "
             "see docs/store.md, \"Recovery\"",
             q->path, got < (ssize_t)sizeof hdr ? "gone: the file was truncated" : "not SQLite's any more");
    health_break(q, -EBADMSG, why);
  }
}

void tq_health_get(tq_queue *q, tq_health *out) {
  memset(out, 0, sizeof *out);
  if (!q) return;
  pthread_mutex_lock(&q->hmu);
  out->last_err = q->last_err;
  out->last_err_at = q->last_err_at;
  out->errors = q->errors;
  out->down = q->broken != 0 || q->failing;
  out->broken = q->broken != 0;
  snprintf(out->reason, sizeof out->reason, "%s", q->last_err ? q->reason : "");
  pthread_mutex_unlock(&q->hmu);
}

const char *tq_path(const tq_queue *q) { return q ? q->path : ""; }

/* ---- open / close ---- */

static bool tq_claims_expire_all(tq_queue *q);

int tq_open(const tq_options *o, tq_queue **out) {
  *out = NULL;
  if (!o || !o->path || !*o->path) return -EINVAL;
  if (sodium_init() < 0) return -EIO;
  tq_queue *q = calloc(1, sizeof *q);
  if (!q) return -ENOMEM;
  q->o = *o;
  q->path = strdup(o->path);
  if (!q->path) {
    free(q);
    return -ENOMEM;
  }
  q->o.path = q->path;
  if (!q->o.max_payload_bytes) q->o.max_payload_bytes = 1048576;
  if (!(q->o.lease_seconds >= 1)) q->o.lease_seconds = q->o.lease_seconds > 0 ? 1 : 300;
  if (q->o.lease_seconds > TQ_MAX_LEASE) q->o.lease_seconds = TQ_MAX_LEASE;
  if (q->o.max_attempts < 0) q->o.max_attempts = 3;
  if (q->o.max_attempts > 1000) q->o.max_attempts = 1000;
  if (!(q->o.wait_max_seconds > 0)) q->o.wait_max_seconds = 300;
  if (!q->o.group_max_ops) q->o.group_max_ops = 512;
  if (!q->o.read_connections) q->o.read_connections = 4;
  if (!q->o.max_waiters) q->o.max_waiters = 4096;
  pthread_mutex_init(&q->wmu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->exp_cv, &ca);
  pthread_condattr_destroy(&ca);
  q->exp_at = INT64_MAX;
  pthread_mutex_init(&q->hmu, NULL);
  /* The backend is chosen by the path: a file path is SQLite; a server URL would select a
   * server backend (none is built yet). */
  if (strncmp(o->path, "postgres://", 11) == 0 || strncmp(o->path, "postgresql://", 13) == 0) {
    log_write(LOG_ERROR, "queue: no PostgreSQL backend in this build", NULL);
    pthread_mutex_destroy(&q->hmu);
    pthread_mutex_destroy(&q->wmu);
    free(q->path);
    free(q);
    return -ENOTSUP;
  }
  q->ops = &tq_sqlite_backend;
  int rc = q->ops->open(&q->o, on_terminal, q, &q->be);
  if (rc < 0) {
    pthread_mutex_destroy(&q->hmu);
    pthread_mutex_destroy(&q->wmu);
    free(q->path);
    free(q);
    return rc;
  }
  struct stat st; /* the file's identity: tq_health_probe notices a removed or replaced file */
  q->probe_fd = open(q->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (q->probe_fd >= 0 && fstat(q->probe_fd, &st) == 0) {
    q->dev = st.st_dev;
    q->ino = st.st_ino;
    q->have_id = true;
  }
  *out = q;
  return 0;
}

void tq_close(tq_queue *q) {
  if (!q) return;
  pthread_mutex_lock(&q->wmu);
  q->closing = true;
  for (tq_waiter *w = q->waiters; w; w = w->next) {
    w->fired = true;
    pthread_cond_signal(&w->cv);
  }
  for (tq_work_waiter *w = q->work_waiters; w; w = w->next) pthread_cond_signal(&w->cv);
  for (tq_watch *w = q->watches; w; w = w->next)
    if (!w->fired) {
      w->fired = true;
      w->fn(w->ud, NULL);
    }
  pthread_mutex_unlock(&q->wmu);
  pthread_mutex_lock(&q->wmu);
  bool exp = q->exp_started;
  pthread_cond_signal(&q->exp_cv);
  pthread_mutex_unlock(&q->wmu);
  if (exp) pthread_join(q->exp_thread, NULL);
  while (tq_claims_expire_all(q)) {
  }
  /* fired waiters may still be reading their task (async claims still running in the writer
   * finish there without parking again): let them leave before the backend goes */
  for (;;) {
    pthread_mutex_lock(&q->wmu);
    size_t n = q->n_waiters;
    pthread_mutex_unlock(&q->wmu);
    if (!n) break;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  q->ops->close(q->be); /* finishes the ops already queued to the writer */
  if (q->probe_fd >= 0) close(q->probe_fd); /* SQLite's connections are closed: no lock to drop */
  CHECK(q->n_watches == 0); /* their owners removed them (tq_watch_remove) */
  while (q->watches) { /* a release build frees what an owner forgot */
    tq_watch *w = q->watches;
    q->watches = w->next;
    free(w);
  }
  for (size_t i = 0; q->live && i < TQ_LIVE_BUCKETS; i++)
    for (live_id *e = q->live[i], *n; e; e = n) {
      n = e->next;
      free(e);
    }
  free(q->live);
  pthread_cond_destroy(&q->exp_cv);
  pthread_mutex_destroy(&q->hmu);
  pthread_mutex_destroy(&q->wmu);
  free(q->path);
  free(q);
}

/* ---- metrics: every operation that reached the queue, by op and outcome ---- */

enum { QM_GET = TQOP_PROGRESS + 1, QM_LIST, QM_WAIT, QM_COUNT, QM_N };
static const char *const k_qm_ops[QM_N] = {"submit",  "claim",  "heartbeat", "complete", "retry",
                                          "release", "cancel", "delete",    "recover",  "prune",
                                          "progress", "get",   "list",      "wait",     "count"};
/* ok; empty (a claim that found nothing); not_found; lease_lost (fencing); conflict (an
 * idempotency key or task id naming other work); error (anything else) */
static const char *const k_qm_outcomes[] = {"ok", "empty", "not_found", "lease_lost", "conflict", "error"};
static _Atomic uint64_t g_qops_cells[QM_N * 6];
static metrics_family g_queue_ops = {
    .name = "peermcp_queue_ops_total",
    .help = "Task queue operations, by op and outcome.",
    .kind = METRICS_COUNTER,
    .ndims = 2,
    .dims = {{"op", k_qm_ops, QM_N, NULL}, {"outcome", k_qm_outcomes, 6, NULL}},
    .cells = g_qops_cells,
};
METRICS_REGISTER(g_queue_ops)

static void qm_record(unsigned op, int rc, bool empty) {
  unsigned o = rc == 0 ? (empty ? 1 : 0) : rc == -ENOENT ? 2 : rc == -ESTALE ? 3 : rc == -EEXIST ? 4 : 5;
  metrics_inc(&g_queue_ops, metrics_series2(&g_queue_ops, op, o));
}

/* ---- sync execution ---- */

typedef struct {
  sem_t sem;
} sync_slot;

static void sync_done(tq_op *op) { sem_post(&((sync_slot *)op->done_ud)->sem); }

/* The file is known broken (corrupt, removed, replaced): a write acknowledged now would not
 * survive a restart, so writes are refused with that error (reads go on serving what they can). */
static int broken_of(tq_queue *q) {
  pthread_mutex_lock(&q->hmu);
  int b = q->broken;
  pthread_mutex_unlock(&q->hmu);
  return b;
}

static int run_sync(tq_queue *q, tq_op *op) {
  sync_slot s;
  sem_init(&s.sem, 0, 0);
  op->done = sync_done;
  op->done_ud = &s;
  int rc = broken_of(q);
  if (rc == 0) rc = q->ops->enqueue(q->be, op);
  else op->rc = rc;
  if (rc == 0) {
    while (sem_wait(&s.sem) != 0 && errno == EINTR) {
    }
    rc = op->rc;
  }
  sem_destroy(&s.sem);
  qm_record(op->kind, rc, op->kind == TQOP_CLAIM && op->n_tasks == 0);
  health_note(q, rc);
  return rc;
}

/* ---- validation helpers ---- */

static bool text_ok(const char *s, size_t max, bool allow_empty) {
  if (!s) return false;
  size_t n = strnlen(s, max + 1);
  if (n > max || (!allow_empty && n == 0)) return false;
  return pyjson_utf8_valid(s, n);
}

static bool task_id_ok(const char *s) {
  if (!s || strlen(s) != 32) return false;
  for (int i = 0; i < 32; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

static bool lease_ok(double s) { return s == 0 || (isfinite(s) && s > 0); }

static double clamp_lease(const tq_queue *q, double s) {
  if (s == 0) return q->o.lease_seconds;
  if (s < 1) return 1;
  return s > TQ_MAX_LEASE ? TQ_MAX_LEASE : s;
}

/* Python int(x) for the payload fields: integers, finite reals (truncated), decimal strings. */
static bool py_int(json_t *v, long long *out) {
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return true;
  }
  if (json_is_real(v) && isfinite(json_real_value(v)) && fabs(json_real_value(v)) < 1e15) {
    *out = (long long)json_real_value(v);
    return true;
  }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    while (*end == ' ') end++;
    if (errno == 0 && end != s && *end == 0) {
      *out = x;
      return true;
    }
  }
  return false;
}

static const char *payload_str(json_t *payload, const char *const *names) {
  for (; *names; names++) {
    json_t *v = json_object_get(payload, *names);
    if (json_is_string(v) && json_string_length(v) > 0) return json_string_value(v);
  }
  return NULL;
}

static void random_task_id(char out[33]) {
  unsigned char r[16];
  randombytes_buf(r, sizeof r);
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hex[r[i] >> 4];
    out[2 * i + 1] = hex[r[i] & 15];
  }
  out[32] = 0;
}

/* Fills op from req; *payload_out is the canonical payload (caller frees). */
static int prepare_submit(tq_queue *q, const tq_submit_req *req, tq_op *op, char **payload_out) {
  *payload_out = NULL;
  if (!req || !text_ok(req->task_type, TQ_MAX_TYPE_BYTES, false)) return -EINVAL;
  if (req->model_name && !text_ok(req->model_name, TQ_MAX_TYPE_BYTES, true)) return -EINVAL;
  if (!json_is_object(req->payload)) return -EINVAL;
  if (req->task_id && !task_id_ok(req->task_id)) return -EINVAL;
  int rc;
  char *pj = pyjson_dumps(req->payload, PYJSON_PY_DEFAULT, q->o.max_payload_bytes, &rc);
  if (!pj) return rc;
  json_t *p = req->payload;
  const char *idem = req->idempotency_key;
  if (!idem) {
    json_t *v = json_object_get(p, "idempotency_key");
    if (json_is_string(v) && json_string_length(v) > 0) idem = json_string_value(v);
  }
  if (idem && !text_ok(idem, TQ_MAX_KEY_BYTES, false)) goto bad;
  /* Explicit fields are checked (a clear error); payload fields follow the Python clamps. */
  if ((req->has_priority && (req->priority < 1 || req->priority > 10)) ||
      (req->has_max_attempts && (req->max_attempts < 0 || req->max_attempts > 1000)) ||
      (req->has_next_attempt_at && !(req->next_attempt_at >= 0)))
    goto bad;
  long long prio = 5, maxa = q->o.max_attempts;
  if (req->has_priority) prio = req->priority;
  else if (!py_int(json_object_get(p, "priority"), &prio)) prio = 5;
  if (prio < 1) prio = 1;
  if (prio > 10) prio = 10;
  if (req->has_max_attempts) maxa = req->max_attempts;
  else if (json_object_get(p, "max_attempts") && !py_int(json_object_get(p, "max_attempts"), &maxa))
    maxa = 3;
  if (maxa < 0) maxa = 1;
  if (maxa > 1000) maxa = 1000;
  double nat = 0;
  if (req->has_next_attempt_at) {
    nat = req->next_attempt_at;
  } else {
    json_t *v = json_object_get(p, "next_attempt_at");
    if (json_is_number(v)) nat = json_number_value(v);
  }
  if (!isfinite(nat) || nat > 1e12) goto bad;
  if (nat < 0) nat = 0;
  static const char *const sess_names[] = {"session_id", "session", "p2p_session", NULL};
  static const char *const sticky_names[] = {"sticky_worker_id", "sticky_worker", NULL};
  memset(op, 0, sizeof *op);
  op->kind = TQOP_SUBMIT;
  op->chain = submit_chain;
  op->chain_ud = q;
  if (req->task_id) {
    memcpy(op->task_id, req->task_id, 33);
    op->explicit_id = true;
  } else {
    random_task_id(op->task_id);
  }
  op->task_type = req->task_type;
  op->model_name = req->model_name ? req->model_name : "";
  op->payload_json = pj;
  op->idem_key = idem;
  op->session_id = payload_str(p, sess_names);
  op->sticky = payload_str(p, sticky_names);
  op->traceparent = req->traceparent && *req->traceparent ? req->traceparent : NULL;
  if (op->traceparent && !text_ok(op->traceparent, TQ_MAX_TRACEPARENT_BYTES, false)) goto bad;
  if ((op->session_id && strlen(op->session_id) > TQ_MAX_KEY_BYTES) ||
      (op->sticky && strlen(op->sticky) > TQ_MAX_WORKER_BYTES))
    goto bad;
  op->priority = (int)prio;
  op->max_attempts = (int)maxa;
  op->next_attempt_at = nat;
  *payload_out = pj;
  return 0;
bad:
  free(pj);
  return -EINVAL;
}

/* After a submit's commit (its done, before the chained claim's): whether the claim its
 * transaction ran took the new task — then nothing claimable changed (no work_gen bump, no
 * waiter or watcher woken: a claim that looked meanwhile and found nothing need not look again).
 * Otherwise (no claim, or it took an older task or none) the change is announced as before. */
static void submit_announce(tq_queue *q, const tq_op *op) {
  if (!op->chain_took) work_changed(q, op->task_type);
}

/* A submit that did not commit: its id is not live (submit_chain may have recorded it). */
static void submit_failed(tq_queue *q, const tq_op *op) {
  pthread_mutex_lock(&q->wmu);
  live_del(q, op->task_id);
  pthread_mutex_unlock(&q->wmu);
}

/* A submit without a traceparent takes the calling thread's request trace (util/trace.h): the
 * task remembers the request that submitted it, and its worker — on any node — continues it. */
static const tq_submit_req *with_trace(const tq_submit_req *req, tq_submit_req *copy, char tp[TRACE_PARENT_LEN + 1]) {
  if (req->traceparent || !trace_current()) return req;
  *copy = *req;
  trace_format(trace_current(), tp);
  copy->traceparent = tp;
  return copy;
}

int tq_submit(tq_queue *q, const tq_submit_req *req, char task_id_out[33], bool *replayed) {
  tq_op op;
  char *pj;
  tq_submit_req copy;
  char tp[TRACE_PARENT_LEN + 1];
  req = with_trace(req, &copy, tp);
  int rc = prepare_submit(q, req, &op, &pj);
  if (rc < 0) return rc;
  rc = run_sync(q, &op);
  if (rc == 0) {
    memcpy(task_id_out, op.task_id, 33);
    if (replayed) *replayed = op.replayed;
    if (!op.replayed) submit_announce(q, &op);
  } else {
    submit_failed(q, &op);
  }
  free(pj);
  return rc;
}

/* An async submit owns copies of everything the op borrows. */
typedef struct {
  tq_op op;
  tq_submit_cb cb;
  void *ud;
  tq_queue *q;
  char *payload, *type, *model, *idem, *session, *sticky, *traceparent;
} async_submit;

static void async_done(tq_op *op) {
  async_submit *a = (async_submit *)op;
  qm_record(TQOP_SUBMIT, op->rc, false);
  health_note(a->q, op->rc);
  if (op->rc == 0 && !op->replayed) submit_announce(a->q, op);
  if (op->rc != 0) submit_failed(a->q, op);
  a->cb(op->rc, op->rc == 0 ? op->task_id : NULL, op->replayed, a->ud);
  free(a->payload);
  free(a->type);
  free(a->model);
  free(a->idem);
  free(a->session);
  free(a->sticky);
  free(a->traceparent);
  free(a);
}

int tq_submit_async(tq_queue *q, const tq_submit_req *req, tq_submit_cb cb, void *ud) {
  if (!cb) return -EINVAL;
  async_submit *a = calloc(1, sizeof *a);
  if (!a) return -ENOMEM;
  tq_submit_req copy;
  char tp[TRACE_PARENT_LEN + 1];
  req = with_trace(req, &copy, tp);
  int rc = prepare_submit(q, req, &a->op, &a->payload);
  if (rc < 0) {
    free(a);
    return rc;
  }
  a->type = strdup(a->op.task_type);
  a->model = strdup(a->op.model_name);
  a->idem = tq__strdup(a->op.idem_key);
  a->session = tq__strdup(a->op.session_id);
  a->sticky = tq__strdup(a->op.sticky);
  a->traceparent = tq__strdup(a->op.traceparent);
  if (!a->type || !a->model || (a->op.idem_key && !a->idem) || (a->op.session_id && !a->session) ||
      (a->op.sticky && !a->sticky) || (a->op.traceparent && !a->traceparent)) {
    rc = -ENOMEM;
    goto fail;
  }
  a->op.task_type = a->type;
  a->op.model_name = a->model;
  a->op.idem_key = a->idem;
  a->op.session_id = a->session;
  a->op.sticky = a->sticky;
  a->op.traceparent = a->traceparent;
  a->cb = cb;
  a->ud = ud;
  a->q = q;
  a->op.done = async_done;
  rc = broken_of(q);
  if (rc == 0) rc = q->ops->enqueue(q->be, &a->op);
  if (rc == 0) return 0;
fail:
  free(a->payload);
  free(a->type);
  free(a->model);
  free(a->idem);
  free(a->session);
  free(a->sticky);
  free(a->traceparent); /* leaked when a broken queue refused the submit (LeakSanitizer, suite 62) */
  free(a);
  return rc;
}

/* ---- asynchronous ops (queue.h: no thread blocks) ---- */

static int fence_op(tq_op *op, tq_op_kind kind, const char *task_id, const tq_fence *f);
static int text_arg_ok(const char *s);

typedef struct aop {
  tq_op op; /* first: the backend hands it back */
  tq_queue *q;
  tq_done_cb done_cb;
  tq_heartbeat_cb hb_cb;
  void *ud;
  char *worker, *error;
  json_t *result; /* a reference */
} aop;

static void aop_free(aop *a) {
  free(a->worker);
  free(a->error);
  json_decref(a->result);
  free(a);
}

static void aop_done(tq_op *op) {
  aop *a = (aop *)op;
  qm_record(op->kind, op->rc, false);
  health_note(a->q, op->rc);
  if (op->kind == TQOP_HEARTBEAT) a->hb_cb(op->rc, &op->hb, a->ud);
  else a->done_cb(op->rc, a->ud);
  aop_free(a);
}

/* A fenced op with owned copies; NULL with *rc on a bad argument. */
static aop *aop_new(tq_op_kind kind, const char *task_id, const tq_fence *f, int *rc) {
  aop *a = calloc(1, sizeof *a);
  if (!a) {
    *rc = -ENOMEM;
    return NULL;
  }
  *rc = fence_op(&a->op, kind, task_id, f);
  if (*rc == 0 && f && !(a->worker = strdup(f->worker_id))) *rc = -ENOMEM;
  if (*rc < 0) {
    aop_free(a);
    return NULL;
  }
  a->op.worker_id = a->worker;
  a->op.done = aop_done;
  return a;
}

static int aop_enqueue(tq_queue *q, aop *a) {
  a->q = q;
  int rc = broken_of(q); /* the file is known broken: writes refused (run_sync) */
  if (rc == 0) rc = q->ops->enqueue(q->be, &a->op);
  if (rc < 0) aop_free(a);
  return rc;
}

int tq_heartbeat_async(tq_queue *q, const char *task_id, const tq_fence *f, double lease_seconds,
                       tq_heartbeat_cb cb, void *ud) {
  if (!f || !cb || !lease_ok(lease_seconds)) return -EINVAL;
  int rc;
  aop *a = aop_new(TQOP_HEARTBEAT, task_id, f, &rc);
  if (!a) return rc;
  a->op.seconds = clamp_lease(q, lease_seconds);
  a->hb_cb = cb;
  a->ud = ud;
  return aop_enqueue(q, a);
}

int tq_complete_async(tq_queue *q, const char *task_id, const tq_fence *f, tq_status status, json_t *result,
                      const char *error, tq_done_cb cb, void *ud) {
  if (!cb || !tq_status_terminal(status) || !text_arg_ok(error)) return -EINVAL;
  int rc;
  aop *a = aop_new(TQOP_COMPLETE, task_id, f, &rc);
  if (!a) return rc;
  if (result && !json_is_object(result)) a->result = json_pack("{s:O}", "result", result);
  else a->result = json_incref(result);
  if ((result && !a->result) || (error && !(a->error = strdup(error)))) {
    aop_free(a);
    return -ENOMEM;
  }
  a->op.status = status;
  a->op.result = a->result;
  a->op.error = a->error;
  a->op.max_text = q->o.max_payload_bytes;
  a->done_cb = cb;
  a->ud = ud;
  return aop_enqueue(q, a);
}

struct aclaim {
  tq_op op; /* first */
  tq_queue *q;
  tq_claim_cb cb;
  void *ud;
  uint64_t id;          /* 0: answers at once (no wait) */
  int64_t deadline_ms;  /* monotonic */
  uint64_t gen;         /* work_gen when it was last handed to the writer */
  bool parked;          /* waiting in q->claims for a change (else running in the writer) */
  bool targeted;        /* woken for one submitted task: if it misses, the others look */
  bool waited, cancelled;
  char *worker, *session;
  char **types;
  size_t n_types;
  aclaim *next;         /* q->claims */
  aclaim *wnext;        /* a list being woken or answered */
};

static bool types_match(char *const *types, size_t n, const char *type) {
  if (!n || !type) return true;
  for (size_t i = 0; i < n; i++)
    if (strcmp(types[i], type) == 0) return true;
  return false;
}

static void aclaim_free(aclaim *c) {
  tq_task_array_free(c->op.tasks, c->op.n_tasks);
  for (size_t i = 0; i < c->n_types; i++) free(c->types[i]);
  free(c->types);
  free(c->worker);
  free(c->session);
  free(c);
}

/* Answers and frees (no lock held). */
static void aclaim_finish(aclaim *c, int rc) {
  tq_task *t = NULL;
  if (rc == 0 && c->op.n_tasks) {
    t = c->op.tasks[0];
    c->op.tasks[0] = NULL;
  }
  c->cb(rc, t, c->waited, c->ud);
  aclaim_free(c);
}

/* Under wmu: drops c from q->claims. */
static void aclaim_unlink(tq_queue *q, aclaim *c) {
  for (aclaim **pp = &q->claims; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      CHECK(q->n_waiters > 0);
      q->n_waiters--;
      return;
    }
}

/* Under wmu: takes parked claims to run again — the oldest whose types match `type`, or every
 * one (type NULL) but `except` — as a wnext list. */
static aclaim *take_parked(tq_queue *q, const char *type, const aclaim *except) {
  aclaim *head = NULL, **tail = &head;
  for (aclaim *c = q->claims; c; c = c->next) {
    if (!c->parked || c == except || !types_match(c->types, c->n_types, type)) continue;
    c->parked = false;
    c->targeted = type != NULL;
    c->gen = q->work_gen;
    c->wnext = NULL;
    *tail = c;
    tail = &c->wnext;
    if (type) break;
  }
  return head;
}

static void aclaim_run(aclaim *c) {
  tq_task_array_free(c->op.tasks, c->op.n_tasks);
  c->op.chained_by = NULL;
  c->op.tasks = NULL;
  c->op.n_tasks = 0;
  c->op.rc = 0;
  int rc = c->q->ops->enqueue(c->q->be, &c->op);
  if (rc == 0) return;
  pthread_mutex_lock(&c->q->wmu);
  aclaim_unlink(c->q, c);
  pthread_mutex_unlock(&c->q->wmu);
  aclaim_finish(c, rc == -ESHUTDOWN ? 0 : rc); /* closing: the wait ends without a task */
}

static void requeue_list(aclaim *list) {
  for (aclaim *c = list, *next; c; c = next) {
    next = c->wnext;
    aclaim_run(c);
  }
}

/* The writer, inside a submit's transaction (tq_op.chain): the parked claim the new task would
 * wake after the commit runs now, in the same transaction — one commit and one writer round
 * less between a submit and its worker's claim. Its answer still waits for the commit (a
 * failed commit answers it with the error, as any op of the group). */
static tq_op *submit_chain(tq_op *op) {
  tq_queue *q = op->chain_ud;
  if (op->replayed) return NULL;
  pthread_mutex_lock(&q->wmu);
  /* the new task is live here from now on (before anyone can learn its id; a failed commit
   * takes it out again: submit_settled) */
  live_add(q, op->task_id);
  aclaim *c = q->claims && !q->closing ? take_parked(q, op->task_type, NULL) : NULL;
  pthread_mutex_unlock(&q->wmu);
  if (!c) return NULL;
  CHECK(!c->wnext); /* one type: one claim */
  tq_task_array_free(c->op.tasks, c->op.n_tasks);
  c->op.tasks = NULL;
  c->op.n_tasks = 0;
  c->op.rc = 0;
  c->op.next = NULL;
  c->op.chained_by = NULL; /* the writer sets it */
  return &c->op;
}

static void aclaim_done(tq_op *op) {
  aclaim *c = (aclaim *)op;
  tq_queue *q = c->q;
  qm_record(TQOP_CLAIM, op->rc, op->n_tasks == 0);
  health_note(q, op->rc);
  if (c->id) {
    pthread_mutex_lock(&q->wmu);
    bool targeted = c->targeted;
    c->targeted = false;
    if (op->rc == 0 && op->n_tasks == 0 && !q->closing && !c->cancelled && clock_mono_ms() < c->deadline_ms) {
      if (q->work_gen != c->gen) { /* something changed since it looked: look again */
        c->gen = q->work_gen;
        c->targeted = targeted; /* if it misses again, the others look (a chained claim's task) */
        pthread_mutex_unlock(&q->wmu);
        aclaim_run(c);
        return;
      }
      c->parked = true;
      c->waited = true;
      /* chosen for a task it did not get (another claimer, or a filter besides the type):
       * the other waiting claims look */
      aclaim *others = targeted ? take_parked(q, NULL, c) : NULL;
      pthread_mutex_unlock(&q->wmu);
      requeue_list(others);
      return;
    }
    aclaim_unlink(q, c);
    pthread_mutex_unlock(&q->wmu);
  }
  aclaim_finish(c, op->rc);
}

static int check_claim_opts(const tq_claim_opts *o);
static int64_t claims_expire(tq_queue *q, bool expire_all, bool *any);

/* Ends waiting claims at their deadline (and wakes them when a delayed retry falls due): sleeps
 * until the earliest one, so an idle queue costs nothing. Stopped by tq_close. */
static void *exp_main(void *arg) {
  tq_queue *q = arg;
  pthread_mutex_lock(&q->wmu);
  while (!q->closing) {
    pthread_mutex_unlock(&q->wmu);
    int64_t in = claims_expire(q, false, NULL);
    pthread_mutex_lock(&q->wmu);
    if (q->closing) break;
    if (in < 0 && q->claims) in = 1000; /* claims in the writer now: look again soon */
    q->exp_at = in < 0 ? INT64_MAX : clock_mono_ms() + in;
    if (q->exp_at == INT64_MAX) {
      pthread_cond_wait(&q->exp_cv, &q->wmu);
    } else {
      struct timespec ts = {.tv_sec = q->exp_at / 1000, .tv_nsec = (long)(q->exp_at % 1000) * 1000000L};
      pthread_cond_timedwait(&q->exp_cv, &q->wmu, &ts);
    }
  }
  pthread_mutex_unlock(&q->wmu);
  return NULL;
}

int tq_claim_next_async(tq_queue *q, const tq_claim_opts *o, double wait_s, tq_claim_cb cb, void *ud,
                        uint64_t *id_out) {
  if (id_out) *id_out = 0;
  if (!cb) return -EINVAL;
  int rc = check_claim_opts(o);
  if (rc < 0) return rc;
  if ((rc = broken_of(q)) != 0) return rc; /* a claim writes: refused on a broken file */
  aclaim *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->q = q;
  c->cb = cb;
  c->ud = ud;
  c->op.kind = TQOP_CLAIM;
  c->op.claim = *o;
  c->op.claim.max_tasks = 1;
  c->op.claim.lease_seconds = clamp_lease(q, o->lease_seconds);
  c->op.done = aclaim_done;
  c->worker = strdup(o->worker_id);
  bool oom = !c->worker;
  if (o->session_id && *o->session_id) oom |= !(c->session = strdup(o->session_id));
  if (o->n_task_types) {
    c->types = calloc(o->n_task_types, sizeof *c->types);
    oom |= !c->types;
    for (size_t i = 0; c->types && i < o->n_task_types; i++, c->n_types++)
      oom |= !(c->types[i] = strdup(o->task_types[i]));
  }
  if (oom) {
    aclaim_free(c);
    return -ENOMEM;
  }
  c->op.claim.worker_id = c->worker;
  c->op.claim.session_id = c->session;
  c->op.claim.task_types = (const char *const *)c->types;
  c->op.claim.n_task_types = c->n_types;
  uint64_t id = 0;
  if (isfinite(wait_s) && wait_s > 0) {
    if (wait_s > q->o.wait_max_seconds) wait_s = q->o.wait_max_seconds;
    pthread_mutex_lock(&q->wmu);
    if (q->closing) {
      pthread_mutex_unlock(&q->wmu);
      aclaim_free(c);
      return -ESHUTDOWN;
    }
    if (q->n_waiters < q->o.max_waiters) { /* beyond: it answers at once */
      id = c->id = ++q->claim_seq;
      c->deadline_ms = clock_mono_ms() + (int64_t)(wait_s * 1000.0);
      c->gen = q->work_gen;
      aclaim **pp = &q->claims;
      while (*pp) pp = &(*pp)->next;
      *pp = c;
      q->n_waiters++;
      if (!q->exp_started) {
        if (pthread_create(&q->exp_thread, NULL, exp_main, q) == 0) q->exp_started = true;
        else log_write(LOG_ERROR, "queue: no thread to end waiting claims; they end at the next change", NULL);
      } else if (c->deadline_ms < q->exp_at) {
        pthread_cond_signal(&q->exp_cv);
      }
    }
    pthread_mutex_unlock(&q->wmu);
  }
  rc = q->ops->enqueue(q->be, &c->op);
  if (rc < 0) {
    if (id) {
      pthread_mutex_lock(&q->wmu);
      aclaim_unlink(q, c);
      pthread_mutex_unlock(&q->wmu);
    }
    aclaim_free(c);
    return rc;
  }
  if (id_out) *id_out = id;
  return 0;
}

bool tq_claim_cancel(tq_queue *q, uint64_t id) {
  if (!id) return false;
  aclaim *hit = NULL;
  pthread_mutex_lock(&q->wmu);
  for (aclaim *c = q->claims; c; c = c->next)
    if (c->id == id) {
      if (c->parked) {
        hit = c;
        aclaim_unlink(q, c);
      } else {
        c->cancelled = true; /* the writer answers it without parking */
      }
      break;
    }
  pthread_mutex_unlock(&q->wmu);
  if (hit) aclaim_finish(hit, 0);
  return hit != NULL;
}

size_t tq_claims_waiting(tq_queue *q) {
  size_t n = 0;
  pthread_mutex_lock(&q->wmu);
  for (aclaim *c = q->claims; c; c = c->next) n++;
  pthread_mutex_unlock(&q->wmu);
  return n;
}

size_t tq_claims_parked(tq_queue *q) {
  size_t n = 0;
  pthread_mutex_lock(&q->wmu);
  for (aclaim *c = q->claims; c; c = c->next) n += c->parked;
  pthread_mutex_unlock(&q->wmu);
  return n;
}

/* expire_all: every parked claim ends (tq_close); returns whether one did. */
static int64_t claims_expire(tq_queue *q, bool expire_all, bool *any) {
  aclaim *done = NULL, **dtail = &done, *wake = NULL;
  int64_t now = clock_mono_ms(), next = -1;
  double wall = clock_wall_s();
  pthread_mutex_lock(&q->wmu);
  /* a delayed retry made through this handle fell due: every parked claim looks */
  bool due = false;
  double next_due = 0;
  for (size_t i = 0; i < q->n_due; i++) {
    if (q->due[i] > q->claims_due_seen && q->due[i] <= wall) due = true;
    else if (q->due[i] > wall && (next_due == 0 || q->due[i] < next_due)) next_due = q->due[i];
  }
  q->claims_due_seen = wall;
  for (aclaim **pp = &q->claims; *pp;) {
    aclaim *c = *pp;
    if (c->parked && (expire_all || now >= c->deadline_ms)) {
      *pp = c->next;
      CHECK(q->n_waiters > 0);
      q->n_waiters--;
      c->wnext = NULL;
      *dtail = c;
      dtail = &c->wnext;
      continue;
    }
    if (next < 0 || c->deadline_ms - now < next) next = c->deadline_ms - now;
    pp = &c->next;
  }
  if (due && !expire_all) wake = take_parked(q, NULL, NULL);
  if (q->claims && next_due > 0) {
    int64_t in = (int64_t)((next_due - wall) * 1000.0) + 1;
    if (next < 0 || in < next) next = in;
  }
  pthread_mutex_unlock(&q->wmu);
  if (any) *any = done != NULL;
  for (aclaim *c = done, *n; c; c = n) {
    n = c->wnext;
    aclaim_finish(c, 0);
  }
  requeue_list(wake);
  return next < 0 ? -1 : next;
}

int64_t tq_claims_expire(tq_queue *q) { return claims_expire(q, false, NULL); }

static bool tq_claims_expire_all(tq_queue *q) {
  bool any = false;
  (void)claims_expire(q, true, &any);
  return any;
}

/* ---- claim ---- */

static int check_claim_opts(const tq_claim_opts *o) {
  if (!o || !text_ok(o->worker_id, TQ_MAX_WORKER_BYTES, false)) return -EINVAL;
  if (o->session_id && !text_ok(o->session_id, TQ_MAX_KEY_BYTES, true)) return -EINVAL;
  if (!lease_ok(o->lease_seconds)) return -EINVAL;
  if (o->n_task_types > 256) return -EINVAL;
  for (size_t i = 0; i < o->n_task_types; i++)
    if (!text_ok(o->task_types[i], TQ_MAX_TYPE_BYTES, false)) return -EINVAL;
  return 0;
}

static int claim_common(tq_queue *q, const char *task_id, const tq_claim_opts *o, size_t max,
                        tq_task ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  int rc = check_claim_opts(o);
  if (rc < 0) return rc;
  if (task_id && !task_id_ok(task_id)) return -EINVAL;
  tq_op op;
  memset(&op, 0, sizeof op);
  op.kind = TQOP_CLAIM;
  op.claim = *o;
  if (op.claim.session_id && !*op.claim.session_id) op.claim.session_id = NULL;
  op.claim.lease_seconds = clamp_lease(q, o->lease_seconds);
  op.claim.max_tasks = max;
  if (task_id) {
    memcpy(op.task_id, task_id, 33);
    op.claim_one_id = true;
    op.claim.max_priority = 0;
  }
  rc = run_sync(q, &op);
  if (rc == 0) {
    *out = op.tasks;
    *n = op.n_tasks;
  } else {
    tq_task_array_free(op.tasks, op.n_tasks);
  }
  return rc;
}

static int claim_one(tq_queue *q, const char *task_id, const tq_claim_opts *o, tq_task **out) {
  tq_task **v;
  size_t n;
  *out = NULL;
  int rc = claim_common(q, task_id, o, 1, &v, &n);
  if (rc < 0) return rc;
  if (n) *out = v[0];
  free(v);
  return 0;
}

int tq_claim_next(tq_queue *q, const tq_claim_opts *o, tq_task **out) {
  return claim_one(q, NULL, o, out);
}

int tq_claim(tq_queue *q, const char *task_id, const tq_claim_opts *o, tq_task **out) {
  if (!task_id) return -EINVAL;
  return claim_one(q, task_id, o, out);
}

int tq_claim_many(tq_queue *q, const tq_claim_opts *o, tq_task ***out, size_t *n_out) {
  size_t max = o ? o->max_tasks : 1;
  if (max < 1) max = 1;
  if (max > 128) max = 128;
  return claim_common(q, NULL, o, max, out, n_out);
}

/* ---- owner ops ---- */

static int fence_op(tq_op *op, tq_op_kind kind, const char *task_id, const tq_fence *f) {
  memset(op, 0, sizeof *op);
  op->kind = kind;
  if (!task_id_ok(task_id)) return task_id && *task_id ? -ENOENT : -EINVAL;
  memcpy(op->task_id, task_id, 33);
  if (f) {
    if (!text_ok(f->worker_id, TQ_MAX_WORKER_BYTES, false) || f->lease_epoch < 0) return -EINVAL;
    op->fenced = true;
    op->worker_id = f->worker_id;
    op->lease_epoch = f->lease_epoch;
  }
  return 0;
}

int tq_heartbeat(tq_queue *q, const char *task_id, const tq_fence *f, double lease_seconds,
                 tq_heartbeat_reply *out) {
  tq_op op;
  if (!f) return -EINVAL;
  int rc = fence_op(&op, TQOP_HEARTBEAT, task_id, f);
  if (rc < 0) return rc;
  if (!lease_ok(lease_seconds)) return -EINVAL;
  op.seconds = clamp_lease(q, lease_seconds);
  rc = run_sync(q, &op);
  if (rc == 0 && out) *out = op.hb;
  return rc;
}

static int text_arg_ok(const char *s) { return !s || text_ok(s, TQ_MAX_TEXT_BYTES, true); }

int tq_complete(tq_queue *q, const char *task_id, const tq_fence *f, tq_status status, json_t *result,
                const char *error) {
  tq_op op;
  int rc = fence_op(&op, TQOP_COMPLETE, task_id, f);
  if (rc < 0) return rc;
  if (!tq_status_terminal(status) || !text_arg_ok(error)) return -EINVAL;
  json_t *wrapped = NULL;
  if (result && !json_is_object(result)) {
    wrapped = json_pack("{s:O}", "result", result);
    if (!wrapped) return -ENOMEM;
    result = wrapped;
  }
  op.status = status;
  op.result = result;
  op.error = error;
  op.max_text = q->o.max_payload_bytes;
  rc = run_sync(q, &op);
  json_decref(wrapped);
  return rc;
}

int tq_retry(tq_queue *q, const char *task_id, const tq_fence *f, double delay_s, const char *error,
             tq_status *final_status) {
  tq_op op;
  if (!f) return -EINVAL;
  int rc = fence_op(&op, TQOP_RETRY, task_id, f);
  if (rc < 0) return rc;
  if (!isfinite(delay_s) || delay_s < 0 || delay_s > 365 * 86400.0 || !text_arg_ok(error))
    return -EINVAL;
  op.seconds = delay_s;
  op.error = error;
  rc = run_sync(q, &op);
  if (rc == 0 && final_status) *final_status = op.final_status;
  if (rc == 0 && op.final_status == TQ_QUEUED) {
    if (delay_s == 0) work_changed(q, NULL);
    else work_due_at(q, clock_wall_s() + delay_s);
  }
  return rc;
}

int tq_release(tq_queue *q, const char *task_id, const tq_fence *f, const char *reason) {
  tq_op op;
  if (!f) return -EINVAL;
  int rc = fence_op(&op, TQOP_RELEASE, task_id, f);
  if (rc < 0) return rc;
  if (!text_arg_ok(reason)) return -EINVAL;
  op.error = reason;
  op.max_text = q->o.max_payload_bytes;
  rc = run_sync(q, &op);
  if (rc == 0) work_changed(q, NULL);
  return rc;
}

int tq_progress(tq_queue *q, const char *task_id, const tq_fence *f, json_t *result_patch, const char *log_line,
                const char *stream) {
  tq_op op;
  if (!f) return -EINVAL;
  int rc = fence_op(&op, TQOP_PROGRESS, task_id, f);
  if (rc < 0) return rc;
  if ((result_patch && !json_is_object(result_patch)) || !text_arg_ok(log_line) ||
      (stream && !text_ok(stream, 64, false)))
    return -EINVAL;
  op.result = result_patch;
  op.error = log_line;
  op.stream = stream ? stream : "stdout";
  op.max_text = q->o.max_payload_bytes;
  return run_sync(q, &op);
}

int tq_cancel(tq_queue *q, const char *task_id, const char *reason, tq_cancel_outcome *out) {
  tq_op op;
  int rc = fence_op(&op, TQOP_CANCEL, task_id, NULL);
  if (rc < 0) return rc;
  if (!text_arg_ok(reason)) return -EINVAL;
  op.error = reason;
  op.max_text = q->o.max_payload_bytes;
  rc = run_sync(q, &op);
  if (rc == 0 && out) *out = op.cancel;
  return rc;
}

int tq_delete(tq_queue *q, const char *task_id, bool *deleted) {
  tq_op op;
  int rc = fence_op(&op, TQOP_DELETE, task_id, NULL);
  if (rc == -ENOENT) {
    if (deleted) *deleted = false;
    return 0;
  }
  if (rc < 0) return rc;
  rc = run_sync(q, &op);
  if (rc == 0 && deleted) *deleted = op.deleted;
  return rc;
}

int tq_recover_expired(tq_queue *q, double now, size_t limit, size_t *n_out) {
  tq_op op;
  memset(&op, 0, sizeof op);
  op.kind = TQOP_RECOVER;
  op.seconds = now > 0 && isfinite(now) ? now : 0;
  op.limit = limit < 1 ? 1 : limit > 10000 ? 10000 : limit;
  int rc = run_sync(q, &op);
  if (n_out) *n_out = rc == 0 ? op.count : 0;
  if (rc == 0 && op.count) work_changed(q, NULL);
  return rc;
}

int tq_prune_terminal(tq_queue *q, double older_than_s, size_t limit, size_t *n_out) {
  if (!isfinite(older_than_s) || older_than_s < 0) return -EINVAL;
  tq_op op;
  memset(&op, 0, sizeof op);
  op.kind = TQOP_PRUNE;
  op.seconds = older_than_s;
  op.limit = limit < 1 ? 1 : limit > 10000 ? 10000 : limit;
  int rc = run_sync(q, &op);
  if (n_out) *n_out = rc == 0 ? op.count : 0;
  return rc;
}

int tq_maintain(tq_queue *q) {
  size_t n;
  int rc = tq_recover_expired(q, 0, 10000, &n);
  if (rc < 0) return rc;
  if (n) log_write(LOG_INFO, "queue: recovered expired leases", "{s:I}", "count", (json_int_t)n);
  if (!(q->o.prune_after_seconds > 0)) return 0; /* 0 = never prune (it used to prune everything) */
  rc = tq_prune_terminal(q, q->o.prune_after_seconds, 10000, &n);
  if (rc == 0 && n) log_write(LOG_INFO, "queue: pruned terminal tasks", "{s:I}", "count", (json_int_t)n);
  return rc;
}

/* ---- reads ---- */

int tq_get(tq_queue *q, const char *task_id, tq_task **out) {
  *out = NULL;
  if (!task_id_ok(task_id)) return task_id && *task_id ? -ENOENT : -EINVAL;
  int rc = q->ops->get(q->be, task_id, out);
  qm_record(QM_GET, rc, false);
  health_note(q, rc);
  return rc;
}

int tq_list(tq_queue *q, const tq_list_opts *o, tq_task ***out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (!o) return -EINVAL;
  tq_list_opts c = *o;
  if (c.status != TQ_STATUS_ANY && (c.status < 0 || c.status >= TQ_STATUS_COUNT)) return -EINVAL;
  if (c.limit == 0) c.limit = 100;
  if (c.limit > 1000) c.limit = 1000;
  if (c.n_task_types > 256) return -EINVAL;
  for (size_t i = 0; i < c.n_task_types; i++)
    if (!text_ok(c.task_types[i], TQ_MAX_TYPE_BYTES, false)) return -EINVAL;
  int rc = q->ops->list(q->be, &c, out, n_out);
  qm_record(QM_LIST, rc, false);
  health_note(q, rc);
  return rc;
}

static const char *const k_qt_status[TQ_STATUS_COUNT] = {"queued", "running", "completed", "failed", "cancelled"};
static _Atomic uint64_t g_qtasks_cells[TQ_STATUS_COUNT];
static metrics_family g_queue_tasks = {
    .name = "peermcp_queue_tasks",
    .help = "Tasks in the queue by status, as of the last count (the node counts every 5 s).",
    .kind = METRICS_GAUGE,
    .ndims = 1,
    .dims = {{"status", k_qt_status, TQ_STATUS_COUNT, NULL}},
    .cells = g_qtasks_cells,
};
METRICS_REGISTER(g_queue_tasks)

int tq_count(tq_queue *q, tq_counts *out) {
  int rc = q->ops->count(q->be, clock_wall_s(), out);
  qm_record(QM_COUNT, rc, false);
  health_note(q, rc);
  if (rc == 0)
    for (int i = 0; i < TQ_STATUS_COUNT; i++) metrics_gauge_set(&g_queue_tasks, (unsigned)i, (int64_t)out->by_status[i]);
  return rc;
}

int tq_stats_json(tq_queue *q, json_t **out) {
  int rc = q->ops->stats_json(q->be, out);
  health_note(q, rc);
  return rc;
}

void tq_io_stats_get(tq_queue *q, tq_io_stats *out) { q->ops->io_stats(q->be, out); }

int tq_wait(tq_queue *q, const char *task_id, double timeout_s, bool (*cancelled)(void *), void *cancel_ud,
            tq_task **out) {
  *out = NULL;
  if (!task_id_ok(task_id)) return task_id && *task_id ? -ENOENT : -EINVAL;
  if (!isfinite(timeout_s) || timeout_s < 0) timeout_s = 0;
  if (timeout_s > q->o.wait_max_seconds) timeout_s = q->o.wait_max_seconds;
  tq_waiter w;
  memset(&w, 0, sizeof w);
  memcpy(w.task_id, task_id, 33);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w.cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_lock(&q->wmu);
  if (q->n_waiters >= q->o.max_waiters || q->closing) {
    int busy = q->closing ? -ESHUTDOWN : -EBUSY;
    pthread_mutex_unlock(&q->wmu);
    pthread_cond_destroy(&w.cv);
    return busy;
  }
  w.next = q->waiters; /* registered before the first read: no transition can slip between */
  q->waiters = &w;
  q->n_waiters++;
  CHECK(q->n_waiters <= q->o.max_waiters);
  pthread_mutex_unlock(&q->wmu);

  int64_t deadline = clock_mono_ms() + (int64_t)(timeout_s * 1000.0);
  int64_t recheck = q->o.wait_recheck_ms;
  int64_t next_recheck = recheck ? clock_mono_ms() + recheck : INT64_MAX;
  tq_task *t = NULL;
  int rc = q->ops->get(q->be, task_id, &t);
  while (rc == 0 && !tq_status_terminal(t->status)) {
    enum { WOKEN, RECHECK, DONE } why = DONE;
    pthread_mutex_lock(&q->wmu);
    for (;;) {
      if (w.fired) {
        why = WOKEN;
        break;
      }
      if (q->closing) break;
      int64_t now = clock_mono_ms();
      if (now >= deadline) break;
      if (now >= next_recheck) {
        why = RECHECK;
        break;
      }
      int64_t until = deadline < next_recheck ? deadline : next_recheck;
      if (cancelled && until > now + 200) until = now + 200;
      struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000L};
      pthread_cond_timedwait(&w.cv, &q->wmu, &ts);
      if (!w.fired && cancelled && cancelled(cancel_ud)) break;
    }
    w.fired = false;
    bool closing = q->closing;
    pthread_mutex_unlock(&q->wmu);
    if (closing) break; /* return the view we have */
    if (why == RECHECK) next_recheck = clock_mono_ms() + recheck;
    /* woken: read the new state; recheck: another process may have changed it; done (timeout
     * or cancelled): return a fresh view */
    tq_task_free(t);
    t = NULL;
    rc = q->ops->get(q->be, task_id, &t);
    if (why == DONE) break;
  }
  pthread_mutex_lock(&q->wmu);
  bool found = false;
  for (tq_waiter **pp = &q->waiters; *pp; pp = &(*pp)->next)
    if (*pp == &w) {
      *pp = w.next;
      found = true;
      break;
    }
  CHECK(found && q->n_waiters > 0); /* only this thread takes its waiter off the list */
  (void)found;
  q->n_waiters--;
  pthread_mutex_unlock(&q->wmu);
  pthread_cond_destroy(&w.cv);
  if (rc == 0) *out = t;
  qm_record(QM_WAIT, rc, false);
  health_note(q, rc);
  return rc;
}

/* ---- tasks ---- */

tq_task *tq_task_dup(const tq_task *t) {
  tq_task *c = t ? malloc(sizeof *c) : NULL;
  if (!c) return NULL;
  *c = *t;
  char **s[] = {&c->task_type,   &c->model_name, &c->payload_json,    &c->assigned_worker,  &c->result_json,
                &c->error,       &c->idempotency_key, &c->session_id, &c->sticky_worker_id, &c->traceparent};
  size_t n = sizeof s / sizeof *s, i = 0;
  for (; i < n; i++)
    if (*s[i] && !(*s[i] = strdup(*s[i]))) break;
  if (i == n) return c;
  for (size_t k = 0; k < i; k++) free(*s[k]); /* the copies made; the others still point into t */
  free(c);
  return NULL;
}

void tq_task_free(tq_task *t) {
  if (!t) return;
  free(t->task_type);
  free(t->model_name);
  free(t->payload_json);
  free(t->assigned_worker);
  free(t->result_json);
  free(t->error);
  free(t->idempotency_key);
  free(t->session_id);
  free(t->sticky_worker_id);
  free(t->traceparent);
  free(t);
}

void tq_task_array_free(tq_task **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) tq_task_free(v[i]);
  free(v);
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* NULL when out of memory (then tq_task_to_json returns NULL), never the text as a string in
 * place of a value that did not parse for want of memory. */
/* Stored payload / result text back to JSON: util/jparse (the same tree as
 * json_loads(JSON_DECODE_ANY | JSON_ALLOW_NUL) at about half the instructions; every claim and
 * wait reply parses one or two of these), jansson's nesting limit. */
static json_t *parse_or(const char *text, bool null_if_absent) {
  if (!text) return null_if_absent ? json_null() : json_object();
  json_t *v = NULL;
  int rc = jparse_flags(text, strlen(text), 2048, JPARSE_ALLOW_NUL, &v, NULL, NULL);
  if (rc == -ENOMEM) return NULL;
  return rc == 0 ? v : json_string(text);
}

/* Keys are literals and the status name is ASCII: set without jansson's UTF-8 checks (the
 * stored strings are still checked: a row another program wrote may hold anything). */
json_t *tq_task_to_json(const tq_task *t, unsigned flags) {
  json_t *o = json_object();
  if (!o) return NULL;
  int bad = 0;
  bad |= json_object_set_new_nocheck(o, "task_id", json_string(t->task_id));
  bad |= json_object_set_new_nocheck(o, "task_type", json_string(t->task_type ? t->task_type : ""));
  bad |= json_object_set_new_nocheck(o, "model_name", json_string(t->model_name ? t->model_name : ""));
  bad |= json_object_set_new_nocheck(o, "payload", parse_or(t->payload_json, false));
  bad |= json_object_set_new_nocheck(o, "status", json_string_nocheck(tq_status_name(t->status)));
  bad |= json_object_set_new_nocheck(o, "assigned_worker", str_or_null(t->assigned_worker));
  bad |= json_object_set_new_nocheck(o, "created_at", json_real(t->created_at));
  if ((flags & 0xf) == TQ_JSON_FULL) {
    bad |= json_object_set_new_nocheck(o, "updated_at", json_real(t->updated_at));
    bad |= json_object_set_new_nocheck(o, "result", parse_or(t->result_json, true));
    bad |= json_object_set_new_nocheck(o, "error", str_or_null(t->error));
    bad |= json_object_set_new_nocheck(o, "priority", json_integer(t->priority));
    bad |= json_object_set_new_nocheck(o, "attempt", json_integer(t->attempt));
    bad |= json_object_set_new_nocheck(o, "max_attempts", json_integer(t->max_attempts));
    bad |= json_object_set_new_nocheck(o, "next_attempt_at", json_real(t->next_attempt_at));
    bad |= json_object_set_new_nocheck(o, "lease_until", t->has_lease ? json_real(t->lease_until) : json_null());
    bad |= json_object_set_new_nocheck(o, "heartbeat_at",
                               t->has_heartbeat ? json_real(t->heartbeat_at) : json_null());
    bad |= json_object_set_new_nocheck(o, "idempotency_key", str_or_null(t->idempotency_key));
  }
  if (flags & TQ_JSON_EXTRA) {
    bad |= json_object_set_new_nocheck(o, "lease_epoch", json_integer(t->lease_epoch));
    bad |= json_object_set_new_nocheck(o, "cancel_requested", json_boolean(t->cancel_requested));
    if (t->traceparent) bad |= json_object_set_new_nocheck(o, "traceparent", json_string(t->traceparent));
  }
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* A stored C string as json_string() would take it; false when it would refuse it. */
static bool put_str(jwrite *w, const char *s) {
  size_t n = strlen(s);
  if (!pyjson_utf8_valid(s, n)) return false; /* what json_string() accepts (jansson's utf8_check_string) */
  jwrite_str(w, s, n);
  return true;
}

static bool put_str_or_null(jwrite *w, const char *s) {
  if (!s) {
    jwrite_lit(w, "null");
    return true;
  }
  return put_str(w, s);
}

/* A timestamp as json_real() takes it (it refuses NaN and infinities). */
static bool put_real(jwrite *w, double v) {
  if (!isfinite(v)) return false;
  jwrite_double(w, v);
  return true;
}

static locale_t g_c_numeric;
static pthread_once_t g_c_numeric_once = PTHREAD_ONCE_INIT;
static void c_numeric_init(void) { g_c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

static unsigned hex4(const char *p) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

/* One string of checked text (p at its opening quote): decoded and written by jwrite_str, as
 * the tree path writes the string jparse made of it. Returns the byte after its closing quote,
 * or NULL (out of memory). */
static const char *transcode_string(jwrite *w, const char *p) {
  const char *q = p + 1, *start = q;
  bool esc = false;
  while (*q != '"') {
    if (*q == '\\') {
      esc = true;
      q++;
    }
    q++;
  }
  size_t n = (size_t)(q - start);
  if (!esc) {
    jwrite_str(w, start, n);
    return q + 1;
  }
  char stack[256];
  char *b = n <= sizeof stack ? stack : malloc(n); /* decoded ≤ escaped */
  if (!b) return NULL;
  size_t k = 0;
  for (const char *r = start; r < q;) {
    if (*r != '\\') {
      b[k++] = *r++;
      continue;
    }
    char e = r[1];
    r += 2;
    switch (e) {
    case 'b': b[k++] = '\b'; break;
    case 'f': b[k++] = '\f'; break;
    case 'n': b[k++] = '\n'; break;
    case 'r': b[k++] = '\r'; break;
    case 't': b[k++] = '\t'; break;
    case 'u': {
      uint32_t cp = hex4(r);
      r += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF) { /* checked: a low surrogate follows */
        cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(r + 2) - 0xDC00);
        r += 6;
      }
      if (cp < 0x80) {
        b[k++] = (char)cp;
      } else if (cp < 0x800) {
        b[k++] = (char)(0xC0 | (cp >> 6));
        b[k++] = (char)(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        b[k++] = (char)(0xE0 | (cp >> 12));
        b[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[k++] = (char)(0x80 | (cp & 0x3F));
      } else {
        b[k++] = (char)(0xF0 | (cp >> 18));
        b[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[k++] = (char)(0x80 | (cp & 0x3F));
      }
      break;
    }
    default: b[k++] = e; break; /* " \\ / */
    }
  }
  jwrite_str(w, b, k);
  if (b != stack) free(b);
  return q + 1;
}

/* Text jparse_scan accepted with JPARSE_ALLOW_NUL | JPARSE_REJECT_DUPLICATES, written exactly as
 * jwrite_json writes the tree jparse makes of it — without the tree: whitespace dropped, strings
 * decoded and written again, integers through jwrite_int, reals through jwrite_double of the
 * same strtod (C locale), literals and brackets as they are. 0 or -ENOMEM. */
static int transcode_checked(jwrite *w, const char *p) {
  while (*p) {
    char c = *p;
    switch (c) {
    case ' ': case '\t': case '\n': case '\r': p++; break;
    case '{': case '}': case '[': case ']': case ',': case ':': jwrite_byte(w, c); p++; break;
    case '"':
      if (!(p = transcode_string(w, p))) return -ENOMEM;
      break;
    case 't': jwrite_lit(w, "true"); p += 4; break;
    case 'f': jwrite_lit(w, "false"); p += 5; break;
    case 'n': jwrite_lit(w, "null"); p += 4; break;
    default: { /* a number */
      size_t n = strspn(p, "-+0123456789.eE");
      if (strcspn(p, ".eE") >= n) {
        jwrite_int(w, strtoll(p, NULL, 10)); /* checked: inside json_int_t */
      } else {
        char stack[64];
        char *b = n < sizeof stack ? stack : malloc(n + 1);
        if (!b) return -ENOMEM;
        memcpy(b, p, n);
        b[n] = 0;
        pthread_once(&g_c_numeric_once, c_numeric_init);
        jwrite_double(w, g_c_numeric ? strtod_l(b, NULL, g_c_numeric) : strtod(b, NULL));
        if (b != stack) free(b);
      }
      p += n;
      break;
    }
    }
  }
  return 0;
}

/* Stored JSON text as parse_or gives it: the parsed value, the text as a string when it does
 * not parse, `absent` when there is none. Text that is JSON with no key repeated (what this
 * node and the Python services store) is rewritten without a tree; other text takes the parse. */
static int put_parsed(jwrite *w, const char *text, const char *absent, size_t absent_len) {
  if (!text) {
    jwrite_raw(w, absent, absent_len);
    return 0;
  }
  size_t tn = strlen(text);
  int rc = jparse_scan(text, tn, 2048, JPARSE_ALLOW_NUL | JPARSE_REJECT_DUPLICATES, NULL, 0, NULL, NULL, NULL);
  if (rc == 0) return transcode_checked(w, text);
  if (rc == -ENOMEM) return -ENOMEM;
  json_t *v = NULL;
  rc = jparse_flags(text, tn, 2048, JPARSE_ALLOW_NUL, &v, NULL, NULL);
  if (rc == -ENOMEM) return -ENOMEM;
  if (rc != 0) return put_str(w, text) ? 0 : -EINVAL;
  jwrite_json(w, v);
  json_decref(v);
  return 0;
}

int tq_task_write_json(jwrite *w, const tq_task *t, unsigned flags) {
  bool ok = true;
  jwrite_lit(w, "{\"task_id\":");
  ok &= put_str(w, t->task_id);
  jwrite_lit(w, ",\"task_type\":");
  ok &= put_str(w, t->task_type ? t->task_type : "");
  jwrite_lit(w, ",\"model_name\":");
  ok &= put_str(w, t->model_name ? t->model_name : "");
  jwrite_lit(w, ",\"payload\":");
  int rc = put_parsed(w, t->payload_json, "{}", 2);
  if (rc != 0) return rc;
  jwrite_lit(w, ",\"status\":");
  jwrite_cstr(w, tq_status_name(t->status));
  jwrite_lit(w, ",\"assigned_worker\":");
  ok &= put_str_or_null(w, t->assigned_worker);
  jwrite_lit(w, ",\"created_at\":");
  ok &= put_real(w, t->created_at);
  if ((flags & 0xf) == TQ_JSON_FULL) {
    jwrite_lit(w, ",\"updated_at\":");
    ok &= put_real(w, t->updated_at);
    jwrite_lit(w, ",\"result\":");
    if ((rc = put_parsed(w, t->result_json, "null", 4)) != 0) return rc;
    jwrite_lit(w, ",\"error\":");
    ok &= put_str_or_null(w, t->error);
    jwrite_lit(w, ",\"priority\":");
    jwrite_int(w, t->priority);
    jwrite_lit(w, ",\"attempt\":");
    jwrite_int(w, t->attempt);
    jwrite_lit(w, ",\"max_attempts\":");
    jwrite_int(w, t->max_attempts);
    jwrite_lit(w, ",\"next_attempt_at\":");
    ok &= put_real(w, t->next_attempt_at);
    jwrite_lit(w, ",\"lease_until\":");
    if (t->has_lease) ok &= put_real(w, t->lease_until);
    else jwrite_lit(w, "null");
    jwrite_lit(w, ",\"heartbeat_at\":");
    if (t->has_heartbeat) ok &= put_real(w, t->heartbeat_at);
    else jwrite_lit(w, "null");
    jwrite_lit(w, ",\"idempotency_key\":");
    ok &= put_str_or_null(w, t->idempotency_key);
  }
  if (flags & TQ_JSON_EXTRA) {
    jwrite_lit(w, ",\"lease_epoch\":");
    jwrite_int(w, t->lease_epoch);
    jwrite_lit(w, ",\"cancel_requested\":");
    if (t->cancel_requested) jwrite_lit(w, "true");
    else jwrite_lit(w, "false");
    if (t->traceparent) {
      jwrite_lit(w, ",\"traceparent\":");
      ok &= put_str(w, t->traceparent);
    }
  }
  jwrite_byte(w, '}');
  if (!ok) return -EINVAL;
  return jwrite_error(w);
}

/* ---- result merging (Python complete()/release()/cancel() rules) ---- */

/* The stored result as an object ({} when absent or not an object); NULL when out of memory,
 * never {} in place of a result that could not be read (the merge would write it back lost). */
static json_t *load_result(const char *old_json) {
  bool oom = false;
  json_t *o = old_json ? alloc_json_loads(old_json, JSON_ALLOW_NUL, NULL, &oom) : NULL;
  if (oom) return NULL;
  if (!json_is_object(o)) {
    json_decref(o);
    o = json_object();
  }
  return o;
}

static int dump_result(json_t *o, size_t max, char **out) {
  *out = NULL;
  if (json_object_size(o) == 0) return 0;
  int rc;
  *out = pyjson_dumps(o, PYJSON_PY_DEFAULT, max, &rc);
  return *out ? 0 : rc;
}

/* The merges below write back what they build: each is built under an alloc_watch and a result
 * with anything missing is -ENOMEM, never stored. */
static int dump_whole(json_t *o, alloc_watch w, size_t max, char **out) {
  if (alloc_watch_end(w)) {
    *out = NULL;
    return -ENOMEM;
  }
  return dump_result(o, max, out);
}

int tq__merge_result(const char *old_json, json_t *incoming, size_t max, char **out) {
  if (!old_json && (!incoming || json_is_object(incoming))) { /* nothing stored: incoming as it is */
    *out = NULL;
    return incoming ? dump_result(incoming, max, out) : 0;
  }
  json_t *old = load_result(old_json);
  if (!old) return -ENOMEM;
  alloc_watch w = alloc_watch_begin();
  json_t *merged = json_object();
  if (!merged) {
    (void)alloc_watch_end(w);
    json_decref(old);
    return -ENOMEM;
  }
  if (incoming) json_object_update(merged, incoming);
  const char *keep[] = {"logs", "progress"};
  for (int i = 0; i < 2; i++)
    if (!json_object_get(merged, keep[i]) && json_object_get(old, keep[i]))
      json_object_set(merged, keep[i], json_object_get(old, keep[i]));
  /* old keys that incoming does not mention stay too (incoming wins on conflicts) */
  const char *k;
  json_t *v;
  json_object_foreach(old, k, v) if (!json_object_get(merged, k)) json_object_set(merged, k, v);
  int rc = dump_whole(merged, w, max, out);
  json_decref(old);
  json_decref(merged);
  return rc;
}

int tq__progress_update(const char *old_json, size_t max, char **out, ...) {
  va_list ap;
  va_start(ap, out);
  json_t *old = load_result(old_json);
  if (!old) {
    const char *k;
    while ((k = va_arg(ap, const char *))) json_decref(va_arg(ap, json_t *)); /* stolen */
    va_end(ap);
    return -ENOMEM;
  }
  alloc_watch w = alloc_watch_begin();
  json_t *prog = json_object_get(old, "progress");
  if (!json_is_object(prog)) {
    prog = json_object();
    if (json_object_set_new(old, "progress", prog) != 0) prog = NULL; /* freed; the watch saw it */
  }
  const char *k;
  while ((k = va_arg(ap, const char *))) {
    json_t *v = va_arg(ap, json_t *);
    if (v && prog) json_object_set_new(prog, k, v);
    else json_decref(v);
  }
  va_end(ap);
  int rc = dump_whole(old, w, max, out);
  json_decref(old);
  return rc;
}

int tq__progress_merge(const char *old_json, json_t *patch, const char *stream, const char *message, double ts,
                       size_t max_logs, size_t max, char **out) {
  json_t *res = load_result(old_json);
  if (!res) return -ENOMEM;
  alloc_watch w = alloc_watch_begin();
  const char *k;
  json_t *v;
  json_object_foreach(patch, k, v) {
    json_t *cur = json_object_get(res, k);
    if (json_is_object(cur) && json_is_object(v)) json_object_update(cur, v); /* one level deep */
    else json_object_set(res, k, v);
  }
  if (message) {
    json_t *logs = json_object_get(res, "logs");
    if (!json_is_array(logs)) {
      logs = json_array();
      if (json_object_set_new(res, "logs", logs) != 0) logs = NULL; /* freed; the watch saw it */
    }
    if (logs) {
      json_array_append_new(logs, json_pack("{s:f, s:s, s:s}", "ts", ts, "stream", stream, "message", message));
      while (json_array_size(logs) > max_logs) json_array_remove(logs, 0);
    }
  }
  int rc = dump_whole(res, w, max, out);
  json_decref(res);
  return rc;
}

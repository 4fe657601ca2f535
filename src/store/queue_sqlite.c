/* queue_sqlite.c — the SQLite backend of the task queue (queue_backend.h).
 *
 * One writer thread owns the write connection and executes every state-changing op. It takes
 * whatever ops are pending (up to group_max_ops; 1 with group commit off), runs them in one
 * BEGIN IMMEDIATE … COMMIT, each inside its own savepoint so one op's error does not undo the
 * others. Reads use a small pool of read-only connections; WAL lets them run while the writer
 * commits. Schema: p2p_tasks_spec.md §5.2 plus the columns of the §12 fixes.
 *
 * Pipelined group commit (o.sync_pipeline, off by default: measured; docs/store.md): the writer commits
 * at synchronous=NORMAL (WAL frames written, no fsync) and hands the group to the sync stage,
 * SYNC_THREADS threads that make the WAL durable with fdatasync and only then answer the
 * group's ops (on_terminal, then each done) — strictly in group order — while the writer runs
 * the next group. With the pipeline off every commit is synchronous=FULL (the COMMIT fsyncs the
 * WAL) and the writer answers the group itself. The contract is the same either way: no op is
 * answered, no wait told, before the bytes of its commit are on stable storage.
 *  - The WAL is synced through descriptors of our own: one per sync thread, opened on
 *    <db>-wal right after the writer's connection opened it (the directory is private), all
 *    one inode. SQLite keeps that file open, never reopening it, while the connection lives;
 *    fsync acts on the inode (every dirty page of it, whoever wrote it), so syncing our
 *    descriptor makes SQLite's frames durable. Each sync checks the file is still the one the
 *    path names and is not unlinked — else the frames would be in a file no restart opens: a
 *    failure, not a reopen. Not SQLITE_FCNTL_JOURNAL_POINTER + xSync: that calls the VFS on the
 *    writer connection's file object from another thread while the writer uses it (the
 *    connection is NOMUTEX; unixSync updates the object's fields). fdatasync, not fsync: data
 *    and the metadata needed to read it (the size when the WAL grew), not timestamps — what
 *    SQLite uses on Linux. One descriptor per thread because a writeback error is reported once
 *    per open file description: two threads sharing one could see one error and one success
 *    for the same lost pages.
 *  - A sync covers every frame written before it started, so it covers every group handed over
 *    by then; the groups handed over while it runs wait for the next one (with SYNC_THREADS > 1
 *    that one starts at once on another thread; 1 is used, see there). A group of only claims
 *    and heartbeats needs no sync of its own (as before: durable across a process crash;
 *    docs/store.md) unless a claim's lease recovery ended a task, whose waits are told; it is
 *    still answered in order, after every earlier group's sync.
 *  - Checkpoints (wal_hook's PASSIVE one after a COMMIT, and close) at NORMAL: SQLite syncs
 *    the WAL before copying frames into the database and syncs the database before it records
 *    them as backfilled; a writer restarts the WAL (overwrites it from the start, new salt, the
 *    header synced) only when every frame is backfilled. So a frame is overwritten only once its
 *    content is in a synced database file: a synced-but-unanswered commit cannot be dropped by a
 *    reset, and acknowledged data is never only in a WAL region SQLite may overwrite.
 *  - Readers can see a committed group whose sync is still running. Every read of the pool
 *    (get, list, count, stats: every path by which a row reaches a client — tasks/get, list,
 *    resources, a wait's reads) waits after its snapshot in read_gate until every group whose
 *    COMMIT had started is synced. Done callbacks and on_terminal come only from the sync stage.
 *    A claim is an op: one that took a task whose submit is in an unsynced group N is in a later
 *    group M and is answered after N's sync succeeded (groups are answered in order, and the
 *    sync covering N started after N's frames were written).
 *  - A failed sync (or a WAL found removed or replaced) is sticky: every op of every group not
 *    yet answered gets the error (-EIO; -ENOSPC for a full disk), later writes are refused,
 *    reads return it, the health says broken. Never retried: after a failed fsync the kernel
 *    may have dropped the dirty pages and a second fsync would report success. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/queue_backend.h"
#include "util/alloc.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/fscheck.h"
#include "util/log.h"

#define SCHEMA_VERSION 1
#define RECOVER_IN_CLAIM 1000

/* A committed group on its way through the sync stage: its ops (linked by next, answered in
 * order), the terminal notes of its transaction (moved from the writer's, owned), its outcome. */
typedef struct tq_group {
  tq_op *ops;
  size_t n_ops;
  int rc;          /* the group's own error (its transaction was not committed), or 0 */
  bool durable;    /* it wrote something that must be on disk before it is answered (a group
                      of only claims and heartbeats is not, unless a claim's lease recovery
                      ended a task: see writer_main) */
  uint64_t seq;
  char (*term)[33];
  tq_task **term_row;
  size_t n_term, cap_term;
} tq_group;

#define SYNC_RING 16 /* groups committed ahead of the sync stage before the writer waits */
/* Syncs in flight at once (a group committed while one runs starts its own on another thread).
 * 1: two concurrent fdatasyncs of the WAL were slower on this machine's ext4 virtual disk (the
 * service's disk row, 16 in flight, interleaved: 1 thread 3,656–4,764/s, 2 threads
 * 3,015–4,844/s, 1 faster in 7 of 9 pairs, 2026-12-07). The code takes any number. */
#define SYNC_THREADS 1

/* One sync thread and its own descriptor on the WAL (its own open file description: a
 * writeback error is reported once per description, so each thread's fdatasync sees it). */
typedef struct sync_thread {
  tq_backend *b;
  pthread_t th;
  int fd;
} sync_thread;

typedef struct rconn {
  sqlite3 *db;
  sqlite3_stmt *get; /* S_GET prepared once (NULL until first use) */
  sqlite3_stmt *list[2]; /* sq_list: [0] every task, [1] one status (prepared at first use) */
  struct rconn *next;
} rconn;

struct tq_backend {
  tq_options o;
  tq_terminal_fn on_terminal;
  void *ud;
  sqlite3 *w; /* writer connection, writer thread only (and open/close) */
  bool w_light; /* the writer runs synchronous=NORMAL now (a group of claims / heartbeats) */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  tq_op *head, *tail;
  bool stop;
  /* read pool */
  pthread_mutex_t rmu;
  pthread_cond_t rcv;
  rconn *free_r;
  unsigned n_r;
  /* stats */
  pthread_mutex_t smu;
  tq_io_stats st;
  /* ids that became terminal inside the current transaction, and the row each left (owned;
   * NULL when not at hand) for the waits (tq_watch_add) */
  char (*term)[33];
  tq_task **term_row;
  size_t n_term, cap_term;
  /* WAL prefill (tq_options.wal_prefill; writer thread only): frames in the WAL after the last
   * commit (the WAL hook), our descriptor on the -wal file, how far it is known written */
  int wal_frames;
  unsigned wal_frame_bytes; /* 24 + page size; 0 = prefill off */
  int wal_fd;
  off_t wal_filled, wal_cap;
  /* the sync stage (o.sync_pipeline; see the top comment). Under gmu: the ring of groups the
   * writer handed over and nobody has answered yet (oldest at g_head), and the counters below. */
  sync_thread sy[SYNC_THREADS];
  unsigned n_sy;            /* sync threads running (0: the pipeline is off) */
  dev_t wal_dev;
  ino_t wal_ino;
  char *wal_path;
  pthread_mutex_t gmu;
  pthread_cond_t g_work;    /* the sync threads: a group was handed over, a sync ended, or stop */
  pthread_cond_t g_space;   /* the writer: a ring slot came free */
  pthread_cond_t g_synced;  /* readers (read_gate): settled advanced or failed */
  tq_group ring[SYNC_RING];
  size_t g_head, g_n;
  bool g_stop;
  bool answering;           /* a sync thread is answering a prefix of the ring (one at a time) */
  unsigned syncing;         /* syncs running */
  uint64_t started;         /* the highest group a sync started so far covers */
  uint64_t durable;         /* the highest group a successful sync covered (all before it too) */
  uint64_t settled;         /* every group up to this one is durable or wrote nothing */
  int failed;               /* a WAL sync failed: sticky, every later write is refused */
  uint64_t w_seq;           /* writer thread: the last group's sequence number */
  _Atomic uint64_t committing; /* the sequence number of the latest group whose COMMIT started */
};

/* Readers on a sync thread (an op's done callback or an on_terminal that reads): read_gate
 * syncs inline there, on that thread's descriptor, instead of waiting for the stage. */
static _Thread_local const sync_thread *tls_sync;

/* ---- errors ---- */

static int map_err(sqlite3 *db, int rc) {
  int ext = db ? sqlite3_extended_errcode(db) : rc;
  int sys = db ? sqlite3_system_errno(db) : 0;
  switch (rc & 0xff) {
  case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return 0;
  case SQLITE_FULL: return -ENOSPC;
  case SQLITE_READONLY: return -EROFS;
  case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
  case SQLITE_NOMEM: return -ENOMEM;
  case SQLITE_CONSTRAINT: return -EEXIST;
  case SQLITE_TOOBIG: return -E2BIG;
  case SQLITE_NOTADB: return -ENOTSUP; /* e.g. the Python queue's DuckDB file */
  case SQLITE_CORRUPT: return -EBADMSG; /* "database disk image is malformed" */
  case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
  case SQLITE_CANTOPEN: return sys == EROFS ? -EROFS : -EACCES;
  case SQLITE_IOERR:
    if (sys == ENOSPC || sys == EFBIG || sys == EDQUOT) return -ENOSPC;
    /* a short write with no errno: the file system took fewer bytes (full, or RLIMIT_FSIZE) */
    if (ext == SQLITE_IOERR_WRITE && sys == 0) return -ENOSPC;
    if (sys == EROFS) return -EROFS;
    if (sys == EACCES || sys == EPERM) return -EACCES;
    log_write(LOG_DEBUG, "queue: io error", "{s:i, s:i}", "ext", ext, "errno", sys);
    return -EIO;
  default: return -EIO;
  }
}

static int exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    log_write(LOG_ERROR, "queue: sqlite", "{s:s, s:s, s:i, s:i}", "sql", sql, "error", msg ? msg : sqlite3_errstr(rc), "ext", sqlite3_extended_errcode(db), "errno", sqlite3_system_errno(db));
    sqlite3_free(msg);
    return map_err(db, rc);
  }
  return 0;
}

/* ---- row → task ---- */

#define COLS                                                                                       \
  "task_id, task_type, model_name, payload_json, status, assigned_worker, created_at, updated_at, " \
  "result_json, error, priority, attempt, max_attempts, next_attempt_at, lease_until, heartbeat_at, " \
  "idempotency_key, lease_epoch, cancel_requested, session_id, sticky_worker_id, traceparent"

static char *col_dup(sqlite3_stmt *s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return NULL;
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? strdup((const char *)t) : NULL;
}

static tq_task *row_task(sqlite3_stmt *s) {
  tq_task *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  const unsigned char *id = sqlite3_column_text(s, 0);
  snprintf(t->task_id, sizeof t->task_id, "%s", id ? (const char *)id : "");
  t->task_type = col_dup(s, 1);
  t->model_name = col_dup(s, 2);
  t->payload_json = col_dup(s, 3);
  const unsigned char *st = sqlite3_column_text(s, 4);
  tq_status status = TQ_FAILED;
  if (!st || tq_status_parse((const char *)st, &status) < 0) status = TQ_FAILED;
  t->status = status;
  t->assigned_worker = col_dup(s, 5);
  t->created_at = sqlite3_column_double(s, 6);
  t->updated_at = sqlite3_column_double(s, 7);
  t->result_json = col_dup(s, 8);
  t->error = col_dup(s, 9);
  t->priority = sqlite3_column_type(s, 10) == SQLITE_NULL ? 5 : sqlite3_column_int(s, 10);
  t->attempt = sqlite3_column_int(s, 11);
  t->max_attempts = sqlite3_column_type(s, 12) == SQLITE_NULL ? 3 : sqlite3_column_int(s, 12);
  t->next_attempt_at = sqlite3_column_double(s, 13);
  t->has_lease = sqlite3_column_type(s, 14) != SQLITE_NULL;
  t->lease_until = sqlite3_column_double(s, 14);
  t->has_heartbeat = sqlite3_column_type(s, 15) != SQLITE_NULL;
  t->heartbeat_at = sqlite3_column_double(s, 15);
  t->idempotency_key = col_dup(s, 16);
  t->lease_epoch = sqlite3_column_int64(s, 17);
  t->cancel_requested = sqlite3_column_int(s, 18) != 0;
  t->session_id = col_dup(s, 19);
  t->sticky_worker_id = col_dup(s, 20);
  t->traceparent = col_dup(s, 21);
  if (!t->task_type || !t->model_name || !t->payload_json) {
    tq_task_free(t);
    return NULL;
  }
  return t;
}

/* ---- schema ---- */

static const char *schema_sql =
    "CREATE TABLE IF NOT EXISTS tasks ("
    " task_id TEXT PRIMARY KEY, task_type TEXT NOT NULL, model_name TEXT NOT NULL,"
    " payload_json TEXT NOT NULL, status TEXT NOT NULL, assigned_worker TEXT,"
    " created_at REAL NOT NULL, updated_at REAL NOT NULL, result_json TEXT, error TEXT,"
    " priority INTEGER DEFAULT 5, attempt INTEGER DEFAULT 0, max_attempts INTEGER DEFAULT 3,"
    " next_attempt_at REAL DEFAULT 0, lease_until REAL, heartbeat_at REAL, idempotency_key TEXT,"
    " lease_epoch INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " session_id TEXT, sticky_worker_id TEXT, traceparent TEXT);";

/* Partial indexes: a submit touches only the primary key, idx_tasks_status_created and the
 * queued-only claim index; the lease and prune indexes hold running / terminal rows only.
 * The idempotency index holds only rows that have a key (most have none: a NULL entry per task
 * was written and moved for nothing; `idempotency_key = ?` implies IS NOT NULL, so the lookup
 * uses it). Every partial index's WHERE is evaluated by every INSERT and UPDATE of a row: the terminal
 * index says "neither queued nor running" with two comparisons, because a 3-value IN list there
 * (the former idx_tasks_done) made each write build and free an ephemeral table — 5 of them
 * per task, ~10 % of the node's instructions per task (callgrind, issue 11 §2). */
static const char *index_sql =
    "DROP INDEX IF EXISTS idx_tasks_lease; DROP INDEX IF EXISTS idx_tasks_updated;"
    "DROP INDEX IF EXISTS idx_tasks_claim; DROP INDEX IF EXISTS idx_tasks_done;"
    "CREATE INDEX IF NOT EXISTS idx_tasks_status_created ON tasks(status, created_at);"
    "CREATE INDEX IF NOT EXISTS idx_tasks_claim_q ON tasks(priority DESC, created_at, task_id)"
    " WHERE status = 'queued';"
    "DROP INDEX IF EXISTS idx_tasks_idempotency;"
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_tasks_idem ON tasks(idempotency_key)"
    " WHERE idempotency_key IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS idx_tasks_lease_r ON tasks(lease_until) WHERE status = 'running';"
    "CREATE INDEX IF NOT EXISTS idx_tasks_ended ON tasks(updated_at)"
    " WHERE status <> 'queued' AND status <> 'running';";

static const struct {
  const char *name, *decl;
} added_cols[] = {
    {"priority", "INTEGER DEFAULT 5"},          {"attempt", "INTEGER DEFAULT 0"},
    {"max_attempts", "INTEGER DEFAULT 3"},      {"next_attempt_at", "REAL DEFAULT 0"},
    {"lease_until", "REAL"},                    {"heartbeat_at", "REAL"},
    {"idempotency_key", "TEXT"},                {"lease_epoch", "INTEGER NOT NULL DEFAULT 0"},
    {"cancel_requested", "INTEGER NOT NULL DEFAULT 0"}, {"session_id", "TEXT"},
    {"sticky_worker_id", "TEXT"},               {"traceparent", "TEXT"},
};

static bool has_column(sqlite3 *db, const char *name) {
  sqlite3_stmt *s;
  bool found = false;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('tasks') WHERE name = ?", -1, &s, NULL) !=
      SQLITE_OK)
    return false;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  found = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_finalize(s);
  return found;
}

static int migrate(sqlite3 *db) {
  int rc = exec(db, "BEGIN IMMEDIATE");
  if (rc) return rc;
  if ((rc = exec(db, schema_sql))) goto out;
  bool had_priority = has_column(db, "priority");
  for (size_t i = 0; i < sizeof added_cols / sizeof added_cols[0]; i++) {
    if (has_column(db, added_cols[i].name)) continue;
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER TABLE tasks ADD COLUMN %s %s", added_cols[i].name, added_cols[i].decl);
    if ((rc = exec(db, sql))) goto out;
  }
  if (!had_priority &&
      (rc = exec(db, "UPDATE tasks SET priority = max(1, min(10, coalesce(CAST(json_extract("
                     "payload_json,'$.priority') AS INTEGER), 5))) WHERE json_valid(payload_json)")))
    goto out;
  if ((rc = exec(db,
                 "UPDATE tasks SET priority = coalesce(priority, 5), attempt = coalesce(attempt, 0),"
                 " max_attempts = coalesce(max_attempts, 3), next_attempt_at = coalesce(next_attempt_at, 0)"
                 " WHERE priority IS NULL OR attempt IS NULL OR max_attempts IS NULL OR next_attempt_at IS NULL")))
    goto out;
  /* Rows written by the Python queue: derive the session / sticky columns once. */
  if ((rc = exec(db, "UPDATE tasks SET session_id = coalesce(nullif(json_extract(payload_json,'$.session_id'),''),"
                     " nullif(json_extract(payload_json,'$.session'),''), nullif(json_extract(payload_json,"
                     "'$.p2p_session'),'')), sticky_worker_id = coalesce(nullif(json_extract(payload_json,"
                     "'$.sticky_worker_id'),''), nullif(json_extract(payload_json,'$.sticky_worker'),''))"
                     " WHERE json_valid(payload_json) AND session_id IS NULL AND sticky_worker_id IS NULL"
                     " AND (SELECT user_version FROM pragma_user_version) < 1")))
    goto out;
  /* Python zombies (§12.10): queued but out of attempts → failed with a reason. */
  if ((rc = exec(db, "UPDATE tasks SET status = 'failed', error = CASE WHEN error IS NULL OR error = ''"
                     " THEN 'attempts exhausted' ELSE error || '; attempts exhausted' END,"
                     " updated_at = (julianday('now') - 2440587.5) * 86400.0"
                     " WHERE status = 'queued' AND max_attempts > 0 AND attempt >= max_attempts")))
    goto out;
  if ((rc = exec(db, index_sql))) goto out;
  rc = exec(db, "PRAGMA user_version = 1");
out:
  if (rc) {
    (void)exec(db, "ROLLBACK");
    return rc;
  }
  return exec(db, "COMMIT");
}

/* ---- WAL prefill ----
 *
 * In its first cycle (and after every open: a clean close removes it) the WAL grows with each
 * commit, so each commit's fdatasync also journals the file's new size and extents: on this
 * project's ext4 disk that doubles the sync (bench/RESULTS.md: 200–240 µs appending against
 * ~100 µs overwriting written blocks; fallocate'd blocks cost like appends — unwritten extents).
 * So, like PostgreSQL's zero-filled WAL segments, the writer keeps written zeros ahead of the
 * WAL's last frame (1 MiB, then as much as is already written, at most 8 MiB at a time, their
 * writeback started at once); SQLite then writes its frames over them. Zeros past the last
 * frame are what SQLite already expects there: a frame is valid only with the header's salts and
 * a running checksum, recovery stops at the first one that is not, and a restarted WAL leaves old
 * frames behind in the same way. The zeros are written only while this connection holds the WAL
 * write lock (BEGIN IMMEDIATE, then ROLLBACK: no frame written), and only past the file's current
 * size, so no frame of any connection — another process's included — is ever overwritten. Past
 * wal_cap (the autocheckpoint's length and some slack, under journal_size_limit so a reset never
 * truncates them) nothing is added. A failure (disk full) turns it off with one warning; it costs
 * no commit anything. */
#define WAL_HDR_BYTES 32
#define WAL_FRAME_HDR_BYTES 24
#define WAL_PREFILL_MIN ((off_t)1 << 20) /* the first top-up; then as much as is written (doubling) */
#define WAL_PREFILL_MAX ((off_t)8 << 20) /* … up to this much at once */

static off_t wal_prefill_step(off_t filled) {
  return filled < WAL_PREFILL_MIN ? WAL_PREFILL_MIN : filled > WAL_PREFILL_MAX ? WAL_PREFILL_MAX : filled;
}

/* SQLite's WAL hook (writer connection, after each commit, write lock released): the
 * autocheckpoint it replaces, and the WAL's length for wal_prefill. */
static int wal_hook(void *ud, sqlite3 *db, const char *zdb, int frames) {
  tq_backend *b = ud;
  b->wal_frames = frames;
  if (b->o.wal_autocheckpoint && frames >= (int)b->o.wal_autocheckpoint)
    (void)sqlite3_wal_checkpoint_v2(db, zdb, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  return SQLITE_OK;
}

static void wal_prefill_off(tq_backend *b, const char *why, int err) {
  log_write(LOG_WARNING, "queue: WAL prefill turned off (commits append as SQLite writes them)", "{s:s, s:s, s:s}",
            "path", b->o.path, "step", why, "error", strerror(err));
  b->wal_frame_bytes = 0;
  if (b->wal_fd >= 0) close(b->wal_fd);
  b->wal_fd = -1;
}

/* After a group (its ops already answered): tops the written zeros up when the last frame came
 * within half a step of them, and starts their writeback at once (sync_file_range), so the next
 * commit's fdatasync finds them mostly on the disk already and pays the new size only. */
static void wal_prefill(tq_backend *b, sqlite3_stmt *begin, sqlite3_stmt *rollback) {
  if (!b->wal_frame_bytes) return;
  off_t end = WAL_HDR_BYTES + (off_t)b->wal_frames * b->wal_frame_bytes;
  off_t step = wal_prefill_step(b->wal_filled);
  if (end + step / 2 <= b->wal_filled || b->wal_filled >= b->wal_cap) return;
  off_t target = (end + step + (256 << 10) - 1) / (256 << 10) * (256 << 10);
  if (target > b->wal_cap) target = b->wal_cap;
  /* the WAL write lock, without waiting: another process writing now just means later */
  sqlite3_busy_timeout(b->w, 0);
  int src = sqlite3_step(begin);
  sqlite3_reset(begin);
  sqlite3_busy_timeout(b->w, b->o.busy_timeout_ms);
  if (src != SQLITE_DONE) return;
  char path[PATH_MAX];
  struct stat fs, ps;
  int n = snprintf(path, sizeof path, "%s-wal", b->o.path);
  const char *why = NULL;
  int err = 0;
  if (n < 0 || (size_t)n >= sizeof path) {
    why = "path", err = ENAMETOOLONG;
  } else if (b->wal_fd >= 0 && (fstat(b->wal_fd, &fs) != 0 || stat(path, &ps) != 0 || fs.st_ino != ps.st_ino ||
                                fs.st_dev != ps.st_dev)) {
    close(b->wal_fd); /* not the file SQLite writes now: take the one at the path */
    b->wal_fd = -1;
  }
  if (!why && b->wal_fd < 0 && (b->wal_fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) why = "open", err = errno;
  if (!why && fstat(b->wal_fd, &fs) != 0) why = "fstat", err = errno;
  if (!why && !S_ISREG(fs.st_mode)) why = "not a regular file", err = EINVAL;
  if (!why) {
    static const char zeros[64 << 10];
    off_t at = fs.st_size; /* never below the file's size: every frame lies under it */
    while (at < target) {
      size_t k = (size_t)(target - at) < sizeof zeros ? (size_t)(target - at) : sizeof zeros;
      ssize_t wr = pwrite(b->wal_fd, zeros, k, at);
      if (wr <= 0) {
        why = "write", err = wr < 0 ? errno : ENOSPC;
        break;
      }
      at += wr;
    }
#ifdef SYNC_FILE_RANGE_WRITE
    if (at > fs.st_size) (void)sync_file_range(b->wal_fd, fs.st_size, at - fs.st_size, SYNC_FILE_RANGE_WRITE);
#endif
    pthread_mutex_lock(&b->smu);
    if (at > fs.st_size) b->st.wal_prefill_bytes += (uint64_t)(at - fs.st_size);
    pthread_mutex_unlock(&b->smu);
    b->wal_filled = at;
  }
  (void)sqlite3_step(rollback);
  sqlite3_reset(rollback);
  if (why) wal_prefill_off(b, why, err);
}

static int open_conn(tq_backend *b, bool readonly, sqlite3 **out) {
  sqlite3 *db = NULL;
  int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
              SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_NOFOLLOW
  flags |= SQLITE_OPEN_NOFOLLOW; /* a symlink planted as the database is refused (issue 9 item 9) */
#endif
  int rc = sqlite3_open_v2(b->o.path, &db, flags, NULL);
  if (rc != SQLITE_OK) {
    int e = map_err(db, rc);
    log_write(LOG_ERROR, "queue: cannot open database", "{s:s, s:s}", "path", b->o.path, "error",
              db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return e ? e : -EIO;
  }
  sqlite3_busy_timeout(db, b->o.busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  int e = 0;
  if (!readonly) {
    if ((e = exec(db, "PRAGMA journal_mode=WAL"))) goto fail;
    /* journal_mode returns a row; verify it took (a read-only dir cannot create the WAL) */
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL) == SQLITE_OK) {
      if (sqlite3_step(s) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), "wal") != 0)
        e = -EROFS;
      sqlite3_finalize(s);
      if (e) goto fail;
    }
    if ((e = exec(db, "PRAGMA synchronous=FULL"))) goto fail;
    /* Fewer, larger checkpoints: each one fsyncs the database file too, and group commits fill
     * the WAL fast. tq_options.wal_autocheckpoint (8192 pages ≈ 32 MiB of WAL) between
     * checkpoints, made by wal_hook (it replaces SQLite's own autocheckpoint hook, to learn the
     * WAL's length for the prefill); the writer's page cache is sized to keep the hot index pages. */
    sqlite3_wal_hook(db, wal_hook, b);
    if ((e = exec(db, "PRAGMA cache_size=-16384"))) goto fail;
    if ((e = exec(db, "PRAGMA journal_size_limit=67108864"))) goto fail;
    if ((e = exec(db, "PRAGMA foreign_keys=OFF"))) goto fail;
  } else {
    if ((e = exec(db, "PRAGMA query_only=1"))) goto fail;
  }
  *out = db;
  return 0;
fail:
  sqlite3_close(db);
  return e;
}

/* ---- read pool ---- */

static int r_acquire(tq_backend *b, rconn **out) {
  pthread_mutex_lock(&b->rmu);
  while (!b->free_r && b->n_r >= b->o.read_connections) pthread_cond_wait(&b->rcv, &b->rmu);
  rconn *c = b->free_r;
  if (c) {
    b->free_r = c->next;
    pthread_mutex_unlock(&b->rmu);
    *out = c;
    return 0;
  }
  b->n_r++;
  pthread_mutex_unlock(&b->rmu);
  c = calloc(1, sizeof *c);
  int rc = c ? open_conn(b, true, &c->db) : -ENOMEM;
  if (rc < 0) {
    free(c);
    pthread_mutex_lock(&b->rmu);
    b->n_r--;
    pthread_cond_signal(&b->rcv);
    pthread_mutex_unlock(&b->rmu);
    return rc;
  }
  *out = c;
  return 0;
}

static void r_release(tq_backend *b, rconn *c) {
  pthread_mutex_lock(&b->rmu);
  c->next = b->free_r;
  b->free_r = c;
  pthread_cond_signal(&b->rcv);
  pthread_mutex_unlock(&b->rmu);
}

/* ---- op execution (writer thread, inside a transaction) ---- */

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **s) {
  /* sqlite3_prepare_v3 with PERSISTENT keeps hot statements cheap; a small cache by text */
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL);
  if (rc != SQLITE_OK) {
    log_write(LOG_ERROR, "queue: prepare", "{s:s, s:s}", "sql", sql, "error", sqlite3_errmsg(db));
    return map_err(db, rc);
  }
  return 0;
}

/* Statement cache: the writer reuses prepared statements by slot. */
enum {
  S_FIND_IDEM, S_FIND_ID, S_INSERT, S_RECOVER_Q, S_RECOVER_F, S_CANDS, S_CLAIM_ONE, S_HEARTBEAT,
  S_GET, S_COMPLETE, S_RETRY, S_RELEASE, S_CANCEL_Q, S_CANCEL_R, S_DELETE, S_PRUNE,
  S_SAVEPOINT, S_RELEASE_SP, S_ROLLBACK_SP, S_PROGRESS, S_EXPIRED_ANY, S_BEGIN, S_COMMIT, S_ROLLBACK,
  S_SYNC_NORMAL, S_SYNC_FULL, S_GET_ROWID, S_NSTMT
};

static const char *stmt_sql[S_NSTMT] = {
    [S_FIND_IDEM] = "SELECT task_id, task_type, model_name, payload_json FROM tasks WHERE idempotency_key = ?1",
    [S_FIND_ID] = "SELECT task_id, task_type, model_name, payload_json FROM tasks WHERE task_id = ?1",
    [S_INSERT] = "INSERT INTO tasks (task_id, task_type, model_name, payload_json, status, assigned_worker,"
                 " created_at, updated_at, result_json, error, priority, attempt, max_attempts, next_attempt_at,"
                 " lease_until, heartbeat_at, idempotency_key, lease_epoch, cancel_requested, session_id,"
                 " sticky_worker_id, traceparent) VALUES (?1, ?2, ?3, ?4, 'queued', NULL, ?5, ?5, NULL, NULL,"
                 " ?6, 0, ?7, ?8, NULL, NULL, ?9, 0, 0, ?10, ?11, ?12)",
    /* expired leases: tasks with attempts left go back to queued … */
    [S_RECOVER_Q] = "UPDATE tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,"
                    " heartbeat_at = NULL, updated_at = ?1 WHERE task_id IN (SELECT task_id FROM tasks"
                    " WHERE status = 'running' AND lease_until IS NOT NULL AND lease_until <= ?1"
                    " AND (max_attempts = 0 OR attempt < max_attempts) AND cancel_requested = 0 LIMIT ?2)",
    /* … and the others end failed (or cancelled, when a cancel was requested) with a reason */
    [S_RECOVER_F] = "UPDATE tasks SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END,"
                    " error = CASE WHEN cancel_requested THEN error WHEN error IS NULL OR error = '' THEN"
                    " 'claim lease expired after maximum attempts' ELSE error || '; claim lease expired after"
                    " maximum attempts' END, assigned_worker = NULL, lease_until = NULL, updated_at = ?1"
                    " WHERE task_id IN (SELECT task_id FROM tasks WHERE status = 'running' AND lease_until IS"
                    " NOT NULL AND lease_until <= ?1 AND (cancel_requested != 0 OR (max_attempts > 0 AND"
                    " attempt >= max_attempts)) LIMIT ?2) RETURNING task_id",
    [S_CANDS] = "SELECT task_id, task_type, length(CAST(payload_json AS BLOB)), rowid FROM tasks"
                " INDEXED BY idx_tasks_claim_q WHERE status = 'queued'"
                " AND next_attempt_at <= ?1 AND (max_attempts = 0 OR attempt < max_attempts)"
                " AND (sticky_worker_id IS NULL OR sticky_worker_id = ?2)"
                " AND (?3 IS NULL OR session_id IS NULL OR session_id = ?3)"
                " AND (?4 = 0 OR priority <= ?4)"
                " AND (?5 IS NULL OR task_type IN (SELECT value FROM json_each(?5)))"
                " AND (?6 IS NULL OR task_type = ?6) AND (?7 IS NULL OR task_id = ?7)"
                " ORDER BY priority DESC, created_at ASC, task_id ASC LIMIT ?8",
    /* no RETURNING: SQLite gathers RETURNING rows in an ephemeral table (a page allocated,
     * zeroed and freed per claim); the row is read back with S_GET in the same transaction */
    [S_CLAIM_ONE] = "UPDATE tasks SET status = 'running', assigned_worker = ?2, attempt = attempt + 1,"
                    " lease_epoch = lease_epoch + 1, heartbeat_at = ?3, lease_until = ?4, updated_at = ?3"
                    " WHERE rowid = ?1 AND status = 'queued'",
    [S_GET_ROWID] = "SELECT " COLS " FROM tasks WHERE rowid = ?1",
    [S_HEARTBEAT] = "UPDATE tasks SET heartbeat_at = ?4, lease_until = ?5 WHERE task_id = ?1 AND"
                    " status = 'running' AND assigned_worker = ?2 AND (?3 = 0 OR lease_epoch = ?3)"
                    " RETURNING lease_until, cancel_requested",
    [S_GET] = "SELECT " COLS " FROM tasks WHERE task_id = ?1",
    [S_COMPLETE] = "UPDATE tasks SET status = ?2, result_json = ?3, error = ?4, updated_at = ?5,"
                   " lease_until = NULL WHERE task_id = ?1",
    [S_RETRY] = "UPDATE tasks SET status = ?2, error = ?3, updated_at = ?4, next_attempt_at = ?5,"
                " assigned_worker = CASE WHEN ?2 = 'queued' THEN NULL ELSE assigned_worker END,"
                " lease_until = NULL, heartbeat_at = CASE WHEN ?2 = 'queued' THEN NULL ELSE heartbeat_at END"
                " WHERE task_id = ?1",
    [S_RELEASE] = "UPDATE tasks SET status = ?2, attempt = max(attempt - 1, 0), assigned_worker = NULL,"
                  " lease_until = NULL, heartbeat_at = NULL, next_attempt_at = ?3, updated_at = ?3,"
                  " result_json = ?4 WHERE task_id = ?1",
    [S_CANCEL_Q] = "UPDATE tasks SET status = 'cancelled', assigned_worker = NULL, lease_until = NULL,"
                   " updated_at = ?2, result_json = ?3, cancel_requested = 1 WHERE task_id = ?1",
    [S_CANCEL_R] = "UPDATE tasks SET cancel_requested = 1, result_json = ?3, updated_at = ?2 WHERE task_id = ?1",
    [S_DELETE] = "DELETE FROM tasks WHERE task_id = ?1",
    /* the first two terms are idx_tasks_ended's (so it is used, in updated_at order); the IN
     * keeps a row with an unknown status out */
    [S_PRUNE] = "DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM tasks WHERE status <> 'queued'"
                " AND status <> 'running' AND status IN ('completed','failed','cancelled') AND updated_at < ?1"
                " ORDER BY updated_at LIMIT ?2) RETURNING task_id",
    [S_SAVEPOINT] = "SAVEPOINT op",
    [S_RELEASE_SP] = "RELEASE op",
    [S_ROLLBACK_SP] = "ROLLBACK TO op",
    [S_PROGRESS] = "UPDATE tasks SET result_json = ?2, heartbeat_at = ?3 WHERE task_id = ?1",
    /* whether any lease has ended (the partial lease index: a few k instructions, where the two
     * recovery UPDATEs cost ~60 k even when they change nothing) */
    [S_EXPIRED_ANY] = "SELECT 1 FROM tasks INDEXED BY idx_tasks_lease_r WHERE status = 'running'"
                      " AND lease_until <= ?1 LIMIT 1",
    /* the writer's transaction control, prepared once instead of parsed per group */
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    [S_SYNC_FULL] = "PRAGMA synchronous=FULL",
};

typedef struct {
  tq_backend *b;
  sqlite3_stmt *s[S_NSTMT];
  bool in_group; /* the op runs beside others: a multi-statement write needs its savepoint */
} wctx;

static int st(wctx *w, int i, sqlite3_stmt **out) {
  if (!w->s[i]) {
    int rc = prep(w->b->w, stmt_sql[i], &w->s[i]);
    if (rc) return rc;
  }
  sqlite3_reset(w->s[i]);
  sqlite3_clear_bindings(w->s[i]);
  *out = w->s[i];
  return 0;
}

/* Runs one of the writer's statements that return no row (transaction control), logging a
 * failure as exec() does. */
static int wexec(wctx *w, int i) {
  sqlite3_stmt *s;
  int rc = st(w, i, &s);
  if (rc) return rc;
  int src = sqlite3_step(s);
  if (src == SQLITE_ROW || src == SQLITE_DONE) {
    sqlite3_reset(s);
    return 0;
  }
  log_write(LOG_ERROR, "queue: sqlite", "{s:s, s:s, s:i, s:i}", "sql", stmt_sql[i], "error", sqlite3_errmsg(w->b->w),
            "ext", sqlite3_extended_errcode(w->b->w), "errno", sqlite3_system_errno(w->b->w));
  rc = map_err(w->b->w, src);
  sqlite3_reset(s);
  return rc;
}

static void bind_text(sqlite3_stmt *s, int i, const char *t) {
  if (t) sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
  else sqlite3_bind_null(s, i);
}

/* row (may be NULL) is taken over, also on failure. */
static int note_terminal_row(tq_backend *b, const char *id, tq_task *row) {
  if (b->n_term == b->cap_term) {
    size_t cap = b->cap_term ? b->cap_term * 2 : 64;
    void *p = realloc(b->term, cap * sizeof *b->term);
    if (p) b->term = p;
    void *r = p ? realloc(b->term_row, cap * sizeof *b->term_row) : NULL;
    if (!r) {
      tq_task_free(row);
      return -ENOMEM;
    }
    b->term_row = r;
    b->cap_term = cap;
  }
  snprintf(b->term[b->n_term], 33, "%s", id);
  b->term_row[b->n_term++] = row;
  return 0;
}

static int note_terminal(tq_backend *b, const char *id) { return note_terminal_row(b, id, NULL); }

/* Forgets the terminal notes from mark on (their ops failed or were rolled back). */
static void term_cut(tq_backend *b, size_t mark) {
  while (b->n_term > mark) tq_task_free(b->term_row[--b->n_term]);
}

static int step_done(wctx *w, sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  int e = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : map_err(w->b->w, rc);
  sqlite3_reset(s);
  return e;
}

static int do_submit(wctx *w, tq_op *op) {
  sqlite3_stmt *s;
  int rc;
  for (int pass = 0; pass < 2; pass++) {
    const char *key = pass == 0 ? op->idem_key : (op->explicit_id ? op->task_id : NULL);
    if (!key) continue;
    if ((rc = st(w, pass == 0 ? S_FIND_IDEM : S_FIND_ID, &s))) return rc;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      bool same = strcmp((const char *)sqlite3_column_text(s, 1), op->task_type) == 0 &&
                  strcmp((const char *)sqlite3_column_text(s, 2), op->model_name) == 0 &&
                  strcmp((const char *)sqlite3_column_text(s, 3), op->payload_json) == 0;
      if (same) snprintf(op->task_id, sizeof op->task_id, "%s", (const char *)sqlite3_column_text(s, 0));
      sqlite3_reset(s);
      if (!same) return -EEXIST;
      op->replayed = true;
      return 0;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return map_err(w->b->w, rc);
  }
  if ((rc = st(w, S_INSERT, &s))) return rc;
  sqlite3_bind_text(s, 1, op->task_id, 32, SQLITE_STATIC);
  bind_text(s, 2, op->task_type);
  bind_text(s, 3, op->model_name);
  bind_text(s, 4, op->payload_json);
  sqlite3_bind_double(s, 5, op->now);
  sqlite3_bind_int(s, 6, op->priority);
  sqlite3_bind_int(s, 7, op->max_attempts);
  sqlite3_bind_double(s, 8, op->next_attempt_at);
  bind_text(s, 9, op->idem_key);
  bind_text(s, 10, op->session_id);
  bind_text(s, 11, op->sticky);
  bind_text(s, 12, op->traceparent);
  return step_done(w, s);
}

/* Whether any lease has ended (*any). */
static int expired_any(wctx *w, double now, bool *any) {
  sqlite3_stmt *s;
  int rc = st(w, S_EXPIRED_ANY, &s);
  *any = false;
  if (rc) return rc;
  sqlite3_bind_double(s, 1, now);
  rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) return map_err(w->b->w, rc);
  *any = true;
  return 0;
}

/* The two recovery UPDATEs (after expired_any said some lease ended). */
static int recover_now(wctx *w, double now, size_t limit, size_t *count) {
  sqlite3_stmt *s;
  int rc;
  size_t n = 0;
  if (count) *count = 0;
  if ((rc = st(w, S_RECOVER_Q, &s))) return rc;
  sqlite3_bind_double(s, 1, now);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
  if ((rc = step_done(w, s))) return rc;
  n += (size_t)sqlite3_changes(w->b->w);
  if ((rc = st(w, S_RECOVER_F, &s))) return rc;
  sqlite3_bind_double(s, 1, now);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    n++;
    if (note_terminal(w->b, (const char *)sqlite3_column_text(s, 0)) < 0) {
      sqlite3_reset(s);
      return -ENOMEM;
    }
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return map_err(w->b->w, rc);
  if (count) *count = n;
  return 0;
}

static int do_recover(wctx *w, double now, size_t limit, size_t *count) {
  bool any;
  int rc = expired_any(w, now, &any);
  if (count) *count = 0;
  if (rc || !any) return rc; /* no lease has ended */
  return recover_now(w, now, limit, count);
}

/* Opens the op's savepoint once it is about to write more than one statement inside a group
 * (one statement alone is atomic by SQLite's statement rollback). */
static int sp_open(wctx *w, bool *open) {
  if (*open || !w->in_group) return 0;
  sqlite3_stmt *s;
  int rc = st(w, S_SAVEPOINT, &s);
  if (rc == 0) rc = step_done(w, s);
  if (rc == 0) *open = true;
  return rc;
}

/* Ends it: rolled back to when the op failed, released either way. */
static void sp_close(wctx *w, bool open, int rc) {
  sqlite3_stmt *s;
  if (!open) return;
  if (rc && st(w, S_ROLLBACK_SP, &s) == 0) (void)step_done(w, s);
  if (st(w, S_RELEASE_SP, &s) == 0) (void)step_done(w, s);
}

static bool claim_type_ok(const tq_claim_opts *c, const char *type) {
  if (!type) return false;
  for (size_t i = 0; i < c->n_task_types; i++)
    if (strcmp(c->task_types[i], type) == 0) return true;
  return false;
}

static int load(wctx *w, const char *id, tq_task **out);

/* Steps a bound one-row SELECT of a task (S_GET, S_GET_ROWID) and resets it: the task in *out
 * (caller frees), -ENOENT without a row, or the mapped SQLite error. */
static int load_step(wctx *w, sqlite3_stmt *s, tq_task **out) {
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *out = row_task(s);
    rc = *out ? 0 : -ENOMEM;
  } else {
    rc = rc == SQLITE_DONE ? -ENOENT : map_err(w->b->w, rc);
  }
  sqlite3_reset(s);
  return rc;
}

/* Loads the row at rowid (the claim's candidate, read in the same transaction). */
static int load_rowid(wctx *w, sqlite3_int64 rowid, tq_task **out) {
  sqlite3_stmt *s;
  int rc = st(w, S_GET_ROWID, &s);
  *out = NULL;
  if (rc) return rc;
  sqlite3_bind_int64(s, 1, rowid);
  return load_step(w, s, out);
}

/* A claim: the candidates by the claim index, each read (by rowid) before its one UPDATE, and
 * the row the claimer gets is that read with the UPDATE's changes applied — no read after the
 * write, so a claim of one task with no lease to recover writes one statement and needs no
 * savepoint inside a group (SAVEPOINT + RELEASE were two statements per claim, and empty
 * claims — a worker's slot looking before it parks — are most claims); one opens when the
 * recovery writes or more than one task is claimed. */
static int do_claim(wctx *w, tq_op *op) {
  bool any, sp = false;
  int rc = expired_any(w, op->now, &any);
  if (rc) return rc;
  if (any && ((rc = sp_open(w, &sp)) || (rc = recover_now(w, op->now, RECOVER_IN_CLAIM, NULL)))) {
    sp_close(w, sp, rc);
    return rc;
  }
  const tq_claim_opts *c = &op->claim;
  /* The type filter runs here, on the candidates as they come in claim order (the statement
   * has no ORDER BY sort: the claim index gives the order), instead of in SQL: `task_type IN
   * (SELECT value FROM json_each(?5))` built an ephemeral table per claim (callgrind: the
   * largest part of a claim's cost). */
  char *types = NULL;
  size_t max = c->max_tasks ? c->max_tasks : 1;
  char fixed_type[257] = "";
  sqlite3_int64 *ids = calloc(max, sizeof *ids);
  tq_task **tasks = calloc(max, sizeof *tasks);
  size_t n_ids = 0, n = 0;
  if (!ids || !tasks) {
    rc = -ENOMEM;
    goto out;
  }
  sqlite3_stmt *s;
  for (int pass = 0; pass < 2; pass++) {
    /* pass 0 finds the type of the first eligible row when the batch must share it */
    bool first_only = pass == 0 && max > 1 && c->same_task_type;
    if (pass == 0 && !first_only) continue;
    if ((rc = st(w, S_CANDS, &s))) goto out;
    sqlite3_bind_double(s, 1, op->now);
    bind_text(s, 2, c->worker_id);
    bind_text(s, 3, c->session_id);
    sqlite3_bind_int(s, 4, c->max_priority > 0 ? c->max_priority : 0);
    bind_text(s, 5, types);
    bind_text(s, 6, fixed_type[0] ? fixed_type : NULL);
    bind_text(s, 7, op->claim_one_id ? op->task_id : NULL);
    sqlite3_bind_int64(s, 8, c->n_task_types ? -1 : first_only ? 1 : (sqlite3_int64)max);
    size_t bytes = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      if (c->n_task_types && !claim_type_ok(c, (const char *)sqlite3_column_text(s, 1))) continue;
      if (first_only) {
        snprintf(fixed_type, sizeof fixed_type, "%s", (const char *)sqlite3_column_text(s, 1));
        break;
      } else if (n_ids < max) {
        /* a batch the claimer cannot receive would sit leased: stop at the byte cap */
        size_t len = (size_t)sqlite3_column_int64(s, 2);
        if (c->max_bytes && n_ids > 0 && bytes + len > c->max_bytes) break;
        bytes += len;
        ids[n_ids++] = sqlite3_column_int64(s, 3);
        if (n_ids == max) break;
      }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) { /* ROW: stopped early at the byte cap */
      rc = map_err(w->b->w, rc);
      goto out;
    }
    rc = 0;
    if (first_only && !fixed_type[0]) goto out; /* nothing eligible */
  }
  if (n_ids > 1 && (rc = sp_open(w, &sp))) goto out;
  for (size_t i = 0; i < n_ids; i++) {
    tq_task *t;
    if ((rc = load_rowid(w, ids[i], &t)) != 0) goto out;
    char *worker = c->worker_id ? strdup(c->worker_id) : NULL;
    if (c->worker_id && !worker) {
      tq_task_free(t);
      rc = -ENOMEM;
      goto out;
    }
    if ((rc = st(w, S_CLAIM_ONE, &s))) {
      free(worker);
      tq_task_free(t);
      goto out;
    }
    double lease_until = op->now + c->lease_seconds;
    sqlite3_bind_int64(s, 1, ids[i]);
    bind_text(s, 2, c->worker_id);
    sqlite3_bind_double(s, 3, op->now);
    sqlite3_bind_double(s, 4, lease_until);
    rc = sqlite3_step(s);
    bool claimed = rc == SQLITE_DONE && sqlite3_changes(w->b->w) == 1;
    sqlite3_reset(s);
    if (rc != SQLITE_DONE || !claimed) {
      free(worker);
      tq_task_free(t);
      if (rc != SQLITE_DONE) {
        rc = map_err(w->b->w, rc);
        goto out;
      }
      rc = 0;
      continue;
    }
    rc = 0;
    /* the row as S_CLAIM_ONE left it */
    t->status = TQ_RUNNING;
    free(t->assigned_worker);
    t->assigned_worker = worker;
    t->attempt++;
    t->lease_epoch++;
    t->has_heartbeat = true;
    t->heartbeat_at = op->now;
    t->has_lease = true;
    t->lease_until = lease_until;
    t->updated_at = op->now;
    tasks[n++] = t;
  }
out:
  sp_close(w, sp, rc);
  free(types);
  free(ids);
  if (rc) {
    tq_task_array_free(tasks, n);
    return rc;
  }
  op->tasks = tasks;
  op->n_tasks = n;
  return 0;
}

/* Loads the task row for an owner op. */
static int load(wctx *w, const char *id, tq_task **out) {
  sqlite3_stmt *s;
  int rc = st(w, S_GET, &s);
  *out = NULL;
  if (rc) return rc;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  return load_step(w, s, out);
}

static int fence_check(const tq_op *op, const tq_task *t) {
  if (!op->fenced) return tq_status_terminal(t->status) ? -ESTALE : 0;
  if (t->status != TQ_RUNNING || !t->assigned_worker || strcmp(t->assigned_worker, op->worker_id) != 0)
    return -ESTALE;
  if (op->lease_epoch != 0 && op->lease_epoch != t->lease_epoch) return -ESTALE;
  return 0;
}

static int do_heartbeat(wctx *w, tq_op *op) {
  sqlite3_stmt *s;
  int rc = st(w, S_HEARTBEAT, &s);
  if (rc) return rc;
  sqlite3_bind_text(s, 1, op->task_id, 32, SQLITE_STATIC);
  bind_text(s, 2, op->worker_id);
  sqlite3_bind_int64(s, 3, op->lease_epoch);
  sqlite3_bind_double(s, 4, op->now);
  sqlite3_bind_double(s, 5, op->now + op->seconds);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    op->hb.lease_until = sqlite3_column_double(s, 0);
    op->hb.cancel_requested = sqlite3_column_int(s, 1) != 0;
    rc = sqlite3_step(s);
  } else if (rc == SQLITE_DONE) {
    sqlite3_reset(s);
    tq_task *t;
    rc = load(w, op->task_id, &t);
    tq_task_free(t);
    return rc == 0 ? -ESTALE : rc;
  }
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? 0 : map_err(w->b->w, rc);
}

/* The same complete again (a worker that got no answer the first time sends it once more):
 * the run it names ended with the status it asks for. */
static bool complete_replayed(const tq_op *op, const tq_task *t) {
  return op->fenced && op->lease_epoch != 0 && t->lease_epoch == op->lease_epoch && t->status == op->status &&
         t->assigned_worker && strcmp(t->assigned_worker, op->worker_id) == 0;
}

static int do_complete(wctx *w, tq_op *op) {
  tq_task *t;
  int rc = load(w, op->task_id, &t);
  if (rc) return rc;
  if ((rc = fence_check(op, t))) {
    if (complete_replayed(op, t)) {
      op->replayed = true;
      rc = 0;
    }
    goto out;
  }
  char *merged = NULL;
  if ((rc = tq__merge_result(t->result_json, op->result, op->max_text, &merged))) goto out;
  sqlite3_stmt *s;
  if ((rc = st(w, S_COMPLETE, &s)) == 0) {
    sqlite3_bind_text(s, 1, op->task_id, 32, SQLITE_STATIC);
    bind_text(s, 2, tq_status_name(op->status));
    bind_text(s, 3, merged);
    bind_text(s, 4, op->error);
    sqlite3_bind_double(s, 5, op->now);
    rc = step_done(w, s);
  }
  if (rc == 0) {
    /* the row as S_COMPLETE left it, handed to the task's waits after the commit: a wait
     * answers from it instead of reading the task again */
    char *err = op->error ? strdup(op->error) : NULL;
    tq_task *row = t;
    if (op->error && !err) {
      row = NULL; /* the waits read it */
    } else {
      t = NULL;
      free(row->result_json);
      row->result_json = merged;
      merged = NULL;
      free(row->error);
      row->error = err;
      row->status = op->status;
      row->updated_at = op->now;
      row->has_lease = false;
      row->lease_until = 0;
    }
    rc = note_terminal_row(w->b, op->task_id, row);
  }
  free(merged);
out:
  tq_task_free(t);
  return rc;
}

static int do_retry(wctx *w, tq_op *op) {
  tq_task *t;
  int rc = load(w, op->task_id, &t);
  if (rc) return rc;
  if ((rc = fence_check(op, t))) goto out;
  bool exhausted = t->max_attempts > 0 && t->attempt >= t->max_attempts;
  tq_status to = t->cancel_requested ? TQ_CANCELLED : exhausted ? TQ_FAILED : TQ_QUEUED;
  char *err = NULL;
  if (to == TQ_FAILED) {
    size_t n = strlen("attempts exhausted: ") + (op->error ? strlen(op->error) : 0) + 1;
    err = malloc(n);
    if (!err) {
      rc = -ENOMEM;
      goto out;
    }
    snprintf(err, n, "attempts exhausted%s%s", op->error ? ": " : "", op->error ? op->error : "");
  }
  sqlite3_stmt *s;
  if ((rc = st(w, S_RETRY, &s)) == 0) {
    sqlite3_bind_text(s, 1, op->task_id, 32, SQLITE_STATIC);
    bind_text(s, 2, tq_status_name(to));
    bind_text(s, 3, err ? err : op->error);
    sqlite3_bind_double(s, 4, op->now);
    sqlite3_bind_double(s, 5, op->now + op->seconds);
    rc = step_done(w, s);
  }
  free(err);
  op->final_status = to;
  if (rc == 0 && to != TQ_QUEUED) rc = note_terminal(w->b, op->task_id);
out:
  tq_task_free(t);
  return rc;
}

static int do_release(wctx *w, tq_op *op) {
  tq_task *t;
  int rc = load(w, op->task_id, &t);
  if (rc) return rc;
  if ((rc = fence_check(op, t))) goto out;
  json_t *rel = NULL;
  json_t *prog = NULL;
  if (t->result_json) {
    bool oom;
    json_t *r = alloc_json_loads(t->result_json, JSON_ALLOW_NUL, NULL, &oom);
    if (oom) { /* not "no release yet": the count would start over */
      rc = -ENOMEM;
      goto out;
    }
    prog = json_object_get(r, "progress");
    rel = json_integer(json_integer_value(json_object_get(prog, "release_count")) + 1);
    json_decref(r);
  } else {
    rel = json_integer(1);
  }
  char *res = NULL;
  rc = tq__progress_update(t->result_json, op->max_text, &res, "release_count", rel, "last_release_reason",
                           json_string(op->error && *op->error ? op->error : "released"), "last_release_ts",
                           json_real(op->now), (const char *)NULL);
  if (rc) goto out;
  tq_status to = t->cancel_requested ? TQ_CANCELLED : TQ_QUEUED;
  sqlite3_stmt *s;
  if ((rc = st(w, S_RELEASE, &s)) == 0) {
    sqlite3_bind_text(s, 1, op->task_id, 32, SQLITE_STATIC);
    bind_text(s, 2, tq_status_name(to));
    sqlite3_bind_double(s, 3, op->now);
    bind_text(s, 4, res);
    rc = step_done(w, s);
  }
  free(res);
  if (rc == 0 && to == TQ_CANCELLED) rc = note_terminal(w->b, op->task_id);
out:
  tq_task_free(t);
  return rc;
}

static int do_cancel(wctx *w, tq_op *op) {
  tq_task *t;
  int rc = load(w, op->task_id, &t);
  if (rc) return rc;
  op->cancel = TQ_CANCEL_NONE;
  if (tq_status_terminal(t->status)) goto out;
  json_t *reason = op->error ? json_string(op->error) : json_null();
  char *res = NULL;
  rc = tq__progress_update(t->result_json, op->max_text, &res, "cancelled_at", json_real(op->now),
                           "cancel_reason", reason, (const char *)NULL);
  if (rc) goto out;
  sqlite3_stmt *s;
  bool queued = t->status == TQ_QUEUED;
  if ((rc = st(w, queued ? S_CANCEL_Q : S_CANCEL_R, &s)) == 0) {
    sqlite3_bind_text(s, 1, op->task_id, 32, SQLITE_STATIC);
    sqlite3_bind_double(s, 2, op->now);
    bind_text(s, 3, res);
    rc = step_done(w, s);
  }
  free(res);
  if (rc == 0) {
    op->cancel = queued ? TQ_CANCEL_DONE : TQ_CANCEL_REQUESTED;
    if (queued) rc = note_terminal(w->b, op->task_id);
  }
out:
  tq_task_free(t);
  return rc;
}

static int do_delete(wctx *w, tq_op *op) {
  sqlite3_stmt *s;
  int rc = st(w, S_DELETE, &s);
  if (rc) return rc;
  sqlite3_bind_text(s, 1, op->task_id, 32, SQLITE_STATIC);
  if ((rc = step_done(w, s))) return rc;
  op->deleted = sqlite3_changes(w->b->w) > 0;
  return op->deleted ? note_terminal(w->b, op->task_id) : 0;
}

static int do_prune(wctx *w, tq_op *op) {
  sqlite3_stmt *s;
  int rc = st(w, S_PRUNE, &s);
  if (rc) return rc;
  sqlite3_bind_double(s, 1, op->now - op->seconds);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)op->limit);
  size_t n = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) n++;
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return map_err(w->b->w, rc);
  op->count = n;
  return 0;
}

static int do_progress(wctx *w, tq_op *op) {
  tq_task *t;
  int rc = load(w, op->task_id, &t);
  if (rc) return rc;
  if ((rc = fence_check(op, t))) goto out;
  char *res = NULL;
  if ((rc = tq__progress_merge(t->result_json, op->result, op->stream, op->error, op->now, 200, op->max_text, &res)))
    goto out;
  sqlite3_stmt *s;
  if ((rc = st(w, S_PROGRESS, &s)) == 0) {
    sqlite3_bind_text(s, 1, op->task_id, 32, SQLITE_STATIC);
    bind_text(s, 2, res);
    sqlite3_bind_double(s, 3, op->now);
    rc = step_done(w, s);
  }
  free(res);
out:
  tq_task_free(t);
  return rc;
}

static int exec_op(wctx *w, tq_op *op) {
  switch (op->kind) {
  case TQOP_SUBMIT: return do_submit(w, op);
  case TQOP_CLAIM: return do_claim(w, op);
  case TQOP_HEARTBEAT: return do_heartbeat(w, op);
  case TQOP_COMPLETE: return do_complete(w, op);
  case TQOP_RETRY: return do_retry(w, op);
  case TQOP_RELEASE: return do_release(w, op);
  case TQOP_CANCEL: return do_cancel(w, op);
  case TQOP_DELETE: return do_delete(w, op);
  case TQOP_RECOVER:
    if (op->seconds > 0) op->now = op->seconds;
    return do_recover(w, op->now, op->limit, &op->count);
  case TQOP_PRUNE: return do_prune(w, op);
  case TQOP_PROGRESS: return do_progress(w, op);
  }
  return -EINVAL;
}

/* ---- answering a group ---- */

/* Answers the ops of a group in order: commit_rc (nonzero: nothing of it is kept, or it may not
 * be durable) becomes every op's error; with 0 the waits of the tasks it ended are told first
 * (on_terminal), then each op's done. The terminal notes are consumed (term_row freed, n_term
 * set to 0). */
static void finish_ops(tq_backend *b, tq_op *g, int commit_rc, char (*term)[33], tq_task **term_row, size_t *n_term) {
  if (commit_rc == 0)
    for (size_t i = 0; i < *n_term; i++) b->on_terminal(b->ud, term[i], term_row[i]);
  while (*n_term > 0) tq_task_free(term_row[--*n_term]);
  while (g) {
    tq_op *next = g->next;
    if (commit_rc) {
      g->rc = commit_rc;
      tq_task_array_free(g->tasks, g->n_tasks);
      g->tasks = NULL;
      g->n_tasks = 0;
    }
    g->done(g);
    g = next;
  }
}

static void finish_group(tq_backend *b, tq_op *g, int commit_rc) {
  finish_ops(b, g, commit_rc, b->term, b->term_row, &b->n_term);
}

/* ---- the sync stage ---- */

/* Makes every WAL frame written so far durable: the test hook, the file's identity (the inode
 * SQLite writes is still the one <path>-wal names, and it is not unlinked: a synced frame in a
 * file no restart will open is not durable), then fdatasync on fd. 0 or a negative errno (-EIO
 * for anything but a full disk). Sync threads only (also inline from read_gate on one). */
static int wal_sync(tq_backend *b, int fd) {
  if (b->o.test_sync_hook) {
    int h = b->o.test_sync_hook(b->o.test_sync_ud);
    if (h < 0) {
      log_write(LOG_ERROR, "queue: WAL sync failed (test hook); writes are refused until the node restarts",
                "{s:s, s:i}", "path", b->wal_path, "rc", h);
      return h;
    }
  }
  struct stat mine, named;
  memset(&named, 0, sizeof named);
  memset(&mine, 0, sizeof mine);
  if (fstat(fd, &mine) != 0 || mine.st_nlink == 0 || stat(b->wal_path, &named) != 0 || named.st_dev != b->wal_dev ||
      named.st_ino != b->wal_ino || mine.st_ino != b->wal_ino) {
    log_write(LOG_ERROR, "queue: WAL sync failed: the write-ahead log was removed or replaced under the open queue"
              " (the commits in it would not survive a restart); writes are refused until the node restarts",
              "{s:s, s:I, s:I, s:I}", "path", b->wal_path, "links", (json_int_t)mine.st_nlink, "inode",
              (json_int_t)b->wal_ino, "inode_now", (json_int_t)named.st_ino);
    return -EIO;
  }
  if (fdatasync(fd) != 0) {
    int e = errno;
    log_write(LOG_ERROR, "queue: WAL sync failed (fdatasync); the kernel may have dropped the unwritten pages, so"
              " nothing is retried: every op not yet answered gets an error and writes are refused until the node"
              " restarts (SQLite recovers what is on disk)", "{s:s, s:s, s:i}", "path", b->wal_path, "error",
              strerror(e), "errno", e);
    return e == ENOSPC || e == EDQUOT ? -ENOSPC : -EIO;
  }
  pthread_mutex_lock(&b->smu);
  b->st.syncs++;
  pthread_mutex_unlock(&b->smu);
  return 0;
}

/* Records a failed sync (sticky) and wakes whoever waits on it. Under gmu. */
static void fail_locked(tq_backend *b, int rc) {
  if (!b->failed) b->failed = rc ? rc : -EIO;
  pthread_cond_broadcast(&b->g_synced);
  pthread_cond_broadcast(&b->g_work);
}

static tq_group *ring_at(tq_backend *b, size_t i) { return &b->ring[(b->g_head + i) % SYNC_RING]; }

/* Whether the group may be answered now (under gmu; every group before it is answered or about
 * to be, in order): its sync is done, it needs none, or there is nothing more to wait for. */
static bool answerable(const tq_backend *b, const tq_group *g) {
  return b->failed || g->rc || !g->durable || g->seq <= b->durable;
}

/* A sync thread. Under gmu it loops over two jobs:
 *  - answer: the longest prefix of the ring that is answerable is taken by one thread at a time
 *    and answered in group order (on_terminal, then each op's done), outside the lock;
 *  - sync: when a handed-over group needs a sync that no running sync covers, it starts one
 *    covering every group handed over so far (all their frames were written before the hand-
 *    off, so before the fdatasync starts) and, when it succeeds, marks them durable.
 * A group committed while a sync runs starts the next at once on the other thread instead of
 * waiting for the first to end (SYNC_THREADS syncs in flight). After a failed sync every group
 * not yet answered — and every later one — is answered with the error. */
static void *sync_main(void *arg) {
  sync_thread *me = arg;
  tq_backend *b = me->b;
  check_thread_is_worker();
  pthread_setname_np(pthread_self(), "tq-sync");
  tls_sync = me;
  pthread_mutex_lock(&b->gmu);
  for (;;) {
    if (!b->answering && b->g_n && answerable(b, ring_at(b, 0))) {
      size_t k = 1;
      while (k < b->g_n && answerable(b, ring_at(b, k))) k++;
      size_t head = b->g_head;
      int failed = b->failed;
      b->answering = true;
      if (!failed) { /* readers may go on: what they saw is durable (or was never written) */
        b->settled = ring_at(b, k - 1)->seq;
        pthread_cond_broadcast(&b->g_synced);
      }
      pthread_mutex_unlock(&b->gmu);
      for (size_t i = 0; i < k; i++) {
        tq_group *g = &b->ring[(head + i) % SYNC_RING];
        finish_ops(b, g->ops, failed ? failed : g->rc, g->term, g->term_row, &g->n_term);
        g->ops = NULL;
      }
      pthread_mutex_lock(&b->gmu);
      b->g_head = (head + k) % SYNC_RING;
      b->g_n -= k;
      b->answering = false;
      pthread_cond_signal(&b->g_space);
      continue;
    }
    bool need = false;
    for (size_t i = b->g_n; i-- > 0 && !need;) {
      tq_group *g = ring_at(b, i);
      if (g->seq <= b->started) break;
      need = g->durable && g->rc == 0;
    }
    if (need && !b->failed) {
      uint64_t upto = ring_at(b, b->g_n - 1)->seq;
      b->started = upto;
      b->syncing++;
      pthread_mutex_unlock(&b->gmu);
      int rc = wal_sync(b, me->fd);
      pthread_mutex_lock(&b->gmu);
      b->syncing--;
      if (rc) fail_locked(b, rc);
      else if (upto > b->durable) b->durable = upto;
      continue;
    }
    if (b->g_stop && !b->g_n && !b->syncing) break;
    pthread_cond_wait(&b->g_work, &b->gmu);
  }
  pthread_cond_broadcast(&b->g_work); /* the other sync threads see the stop too */
  pthread_mutex_unlock(&b->gmu);
  return NULL;
}

/* The writer hands a finished group (committed, rolled back, or refused) to the sync stage: its
 * ops and the writer's terminal notes move into the next ring slot (the slot's emptied arrays
 * come back to the writer, so no allocation here). Waits while the ring is full. */
static void hand_off(tq_backend *b, tq_op *g, size_t n, int rc, bool durable, uint64_t seq) {
  pthread_mutex_lock(&b->gmu);
  while (b->g_n == SYNC_RING) pthread_cond_wait(&b->g_space, &b->gmu);
  tq_group *x = ring_at(b, b->g_n);
  x->ops = g;
  x->n_ops = n;
  x->rc = rc;
  x->durable = durable;
  x->seq = seq;
  char(*t)[33] = x->term;
  tq_task **tr = x->term_row;
  size_t cap = x->cap_term;
  x->term = b->term;
  x->term_row = b->term_row;
  x->n_term = rc ? 0 : b->n_term;
  x->cap_term = b->cap_term;
  if (rc) term_cut(b, 0);
  b->term = t;
  b->term_row = tr;
  b->n_term = 0;
  b->cap_term = cap;
  b->g_n++;
  pthread_cond_broadcast(&b->g_work); /* an idle sync thread starts its sync now */
  pthread_mutex_unlock(&b->gmu);
}

/* Readers (the read pool) may see a group the writer committed whose sync is still running. A
 * read that reaches a client must not show what a crash could take back, so each read, after
 * its snapshot ended, waits until every group whose COMMIT had started (b->committing, set
 * before the COMMIT: anything the snapshot saw has a sequence number at most this) is settled.
 * 0, or the sync failure (the read's rows may never reach the disk). On a sync thread (a done
 * callback or on_terminal that reads) it syncs the WAL itself: the frames the read saw were
 * written before it. */
static int read_gate(tq_backend *b) {
  if (!b->n_sy) return 0;
  uint64_t want = atomic_load(&b->committing);
  if (tls_sync && tls_sync->b == b) {
    pthread_mutex_lock(&b->gmu);
    int rc = b->failed;
    pthread_mutex_unlock(&b->gmu);
    if (rc) return rc;
    if ((rc = wal_sync(b, tls_sync->fd)) != 0) {
      pthread_mutex_lock(&b->gmu);
      fail_locked(b, rc);
      pthread_mutex_unlock(&b->gmu);
    }
    return rc;
  }
  pthread_mutex_lock(&b->gmu);
  if (b->settled < want && !b->failed) {
    pthread_mutex_lock(&b->smu);
    b->st.read_waits++;
    pthread_mutex_unlock(&b->smu);
  }
  while (b->settled < want && !b->failed) pthread_cond_wait(&b->g_synced, &b->gmu);
  int rc = b->settled >= want ? 0 : b->failed;
  pthread_mutex_unlock(&b->gmu);
  return rc;
}

/* ---- the writer thread ---- */

/* With nothing else to run and nothing in the sync stage (every earlier group answered), the
 * writer syncs and answers the group itself (true): no hand-off, no thread wake-up in the
 * group's path — the pipeline only pays where there is something to overlap. Else false (the
 * group goes to the sync stage). */
static bool writer_syncs(tq_backend *b, tq_op *g, int rc, bool durable, uint64_t seq) {
  pthread_mutex_lock(&b->mu);
  bool idle = !b->head;
  pthread_mutex_unlock(&b->mu);
  if (!idle) return false;
  pthread_mutex_lock(&b->gmu);
  bool alone = b->g_n == 0 && !b->syncing && !b->failed;
  pthread_mutex_unlock(&b->gmu);
  if (!alone) return false;
  /* the sync threads are idle and stay so: they start only on a group handed over */
  int src = rc == 0 && durable ? wal_sync(b, b->sy[0].fd) : 0;
  pthread_mutex_lock(&b->gmu);
  if (src) {
    fail_locked(b, src);
  } else {
    if (seq > b->durable) b->durable = seq;
    if (seq > b->started) b->started = seq;
    b->settled = seq;
    pthread_cond_broadcast(&b->g_synced);
  }
  pthread_mutex_unlock(&b->gmu);
  if (src) term_cut(b, 0);
  finish_group(b, g, src ? src : rc);
  return true;
}

static void *writer_main(void *arg) {
  tq_backend *b = arg;
  check_thread_is_worker();
  pthread_setname_np(pthread_self(), "tq-writer");
  wctx w = {.b = b};
  bool pipe = b->n_sy > 0;
  for (;;) {
    pthread_mutex_lock(&b->mu);
    while (!b->head && !b->stop) pthread_cond_wait(&b->cv, &b->mu);
    if (!b->head) {
      pthread_mutex_unlock(&b->mu);
      break;
    }
    size_t max = b->o.group_commit ? b->o.group_max_ops : 1;
    tq_op *g = b->head, *last = g;
    size_t n = 1;
    while (last->next && n < max) {
      last = last->next;
      n++;
    }
    b->head = last->next;
    if (!b->head) b->tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&b->mu);

    /* A group of only claims and heartbeats commits without its own fsync (synchronous=NORMAL:
     * safe across a process crash; after a power loss the claim may be lost, so the task is
     * queued again and the run's finish is refused as lease_lost — the at-least-once a lost
     * lease already means). The next commit that is fsynced makes it durable too (one WAL).
     * With the pipeline every commit runs at NORMAL (set at open) and "light" only tells the
     * sync stage that this group needs no sync of its own (it is still answered in order, after
     * every earlier group's sync). */
    bool light = true;
    for (tq_op *op = g; op && light; op = op->next) light = op->kind == TQOP_CLAIM || op->kind == TQOP_HEARTBEAT;
    uint64_t seq = ++b->w_seq;
    if (pipe) {
      pthread_mutex_lock(&b->gmu);
      int failed = b->failed;
      pthread_mutex_unlock(&b->gmu);
      if (failed) { /* a sync failed: nothing more is written (answered in order, with the error) */
        hand_off(b, g, n, -EIO, false, seq);
        continue;
      }
    } else if (light != b->w_light && wexec(&w, light ? S_SYNC_NORMAL : S_SYNC_FULL) == 0) {
      b->w_light = light;
    }
    double now = clock_wall_s();
    int rc = wexec(&w, S_BEGIN);
    if (rc == 0) {
      int k = 0;
      int lost = 0; /* SQLite rolled the whole transaction back (I/O error, disk full) */
      for (tq_op *op = g; op; op = op->next, k++) {
        op->now = now;
        size_t term_mark = b->n_term;
        /* Ops that write once are atomic by SQLite's statement rollback; only the multi-statement
         * ones need a savepoint to fail alone inside a group: recover here, a claim opens its own
         * when it writes more than once (do_claim). */
        bool sp_needed = n > 1 && op->kind == TQOP_RECOVER;
        w.in_group = n > 1;
        sqlite3_stmt *sp;
        if (sp_needed && ((rc = st(&w, S_SAVEPOINT, &sp)) != 0 || (rc = step_done(&w, sp)) != 0)) {
          op->rc = rc;
          rc = 0;
          continue;
        }
        op->rc = exec_op(&w, op);
        if (op->chained_by) { /* a chained op (a claim) tells the op that handed it over */
          for (size_t i = 0; op->rc == 0 && i < op->n_tasks; i++)
            if (op->tasks[i] && strcmp(op->tasks[i]->task_id, op->chained_by->task_id) == 0)
              op->chained_by->chain_took = true;
          op->chained_by = NULL;
        }
        if (sqlite3_get_autocommit(b->w)) {
          lost = op->rc ? op->rc : -EIO;
          break;
        }
        if (sp_needed) {
          if (op->rc && st(&w, S_ROLLBACK_SP, &sp) == 0) (void)step_done(&w, sp);
          if (st(&w, S_RELEASE_SP, &sp) == 0) (void)step_done(&w, sp);
        }
        if (op->rc) {
          term_cut(b, term_mark);
          if (n == 1) break;
        } else if (op->chain) {
          /* ops the queue runs in this transaction right after this one (a parked claim the new
           * task feeds: nothing else in the group takes the task before it) */
          tq_op *x = op->chain(op);
          if (x) {
            tq_op *xl = x;
            n++;
            x->chained_by = op;
            while (xl->next) xl = xl->next, xl->chained_by = op, n++;
            xl->next = op->next;
            op->next = x;
            op->chained = true;
          }
        }
      }
      if (lost) {
        log_write(LOG_ERROR, "queue: transaction rolled back by the storage", "{s:i, s:i}", "ops", (int)n, "rc", lost);
        term_cut(b, 0);
        if (pipe) hand_off(b, g, n, lost, false, seq);
        else finish_group(b, g, lost);
        continue;
      }
      if (n == 1 && g->rc) {
        rc = -1;
      } else {
        /* before the COMMIT makes the group visible to readers: read_gate reads this after its
         * snapshot, so whatever a read saw is covered by the sync it waits for */
        if (pipe) atomic_store(&b->committing, seq);
        rc = wexec(&w, S_COMMIT);
      }
      if (rc == -1) {
        (void)wexec(&w, S_ROLLBACK);
        rc = 0; /* the op carries its own error, nothing was written */
        term_cut(b, 0);
        light = true; /* nothing to sync */
      } else if (rc) {
        if (!sqlite3_get_autocommit(b->w)) (void)wexec(&w, S_ROLLBACK);
        log_write(LOG_ERROR, "queue: commit failed", "{s:i, s:i}", "ops", (int)n, "rc", rc);
      } else {
        pthread_mutex_lock(&b->smu);
        b->st.ops += n;
        b->st.commits++;
        if (n > b->st.max_group) b->st.max_group = n;
        pthread_mutex_unlock(&b->smu);
      }
    }
    /* a claim that recovered expired leases may have ended tasks (on_terminal): their waits
     * are told only after a sync, so such a group needs one too */
    bool durable = !light || b->n_term > 0;
    if (!pipe) finish_group(b, g, rc);
    else if (!writer_syncs(b, g, rc, durable, seq)) hand_off(b, g, n, rc, durable, seq);
    sqlite3_stmt *sb, *sr;
    if (b->wal_frame_bytes && st(&w, S_BEGIN, &sb) == 0 && st(&w, S_ROLLBACK, &sr) == 0) wal_prefill(b, sb, sr);
  }
  for (int i = 0; i < S_NSTMT; i++) sqlite3_finalize(w.s[i]);
  return NULL;
}

/* Opens the sync threads' descriptors on the WAL (SQLite opened <path>-wal when the writer's
 * connection entered WAL mode — migrate's commit at the latest — and keeps that file open, never
 * reopening it, for as long as the connection lives; the directory is private, so nobody swaps
 * the name in between), all checked to be one inode, and syncs the directory once, so the
 * WAL's name is durable too. 0, or -1 (a warning): the pipeline is off, commits sync themselves. */
static int wal_open(tq_backend *b) {
  size_t len = strlen(b->o.path) + 5;
  if (!(b->wal_path = malloc(len))) return -1;
  snprintf(b->wal_path, len, "%s-wal", b->o.path);
  int err = 0;
  for (unsigned i = 0; i < SYNC_THREADS; i++) {
    b->sy[i].b = b;
    b->sy[i].fd = open(b->wal_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (b->sy[i].fd < 0 || fstat(b->sy[i].fd, &sb) != 0) err = errno;
    else if (!S_ISREG(sb.st_mode) || (i > 0 && (sb.st_dev != b->wal_dev || sb.st_ino != b->wal_ino))) err = EINVAL;
    else {
      b->wal_dev = sb.st_dev;
      b->wal_ino = sb.st_ino;
    }
    if (err) break;
  }
  if (err) {
    log_write(LOG_WARNING, "queue: cannot open the write-ahead log for the sync stage; commits sync themselves",
              "{s:s, s:s}", "path", b->wal_path, "error", strerror(err));
    for (unsigned i = 0; i < SYNC_THREADS; i++) {
      if (b->sy[i].fd >= 0) close(b->sy[i].fd);
      b->sy[i].fd = -1;
    }
    return -1;
  }
  char *dir = strdup(b->wal_path);
  char *slash = dir ? strrchr(dir, '/') : NULL;
  if (dir) {
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
    free(dir);
  }
  return 0;
}

/* Stops the sync threads (every group handed over is answered first) and closes their
 * descriptors. */
static void sync_stop(tq_backend *b) {
  pthread_mutex_lock(&b->gmu);
  b->g_stop = true;
  pthread_cond_broadcast(&b->g_work);
  pthread_mutex_unlock(&b->gmu);
  for (unsigned i = 0; i < b->n_sy; i++) pthread_join(b->sy[i].th, NULL);
  for (unsigned i = 0; i < SYNC_THREADS; i++)
    if (b->sy[i].fd >= 0) close(b->sy[i].fd);
  b->n_sy = 0;
}

/* ---- ops table ---- */

static int sq_open(const tq_options *o, tq_terminal_fn on_terminal, void *ud, tq_backend **out) {
  *out = NULL;
  tq_backend *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  for (unsigned i = 0; i < SYNC_THREADS; i++) b->sy[i].fd = -1;
  b->o = *o;
  b->on_terminal = on_terminal;
  b->wal_fd = -1;
  b->ud = ud;
  /* the parent directory, private */
  char *dir = strdup(o->path);
  if (!dir) {
    free(b);
    return -ENOMEM;
  }
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    for (char *p = dir + 1;; p++) { /* mkdir -p, 0700 */
      bool end = *p == 0;
      if (*p == '/' || end) {
        *p = 0;
        struct stat sb;
        if (stat(dir, &sb) != 0 && mkdir(dir, 0700) != 0 && errno != EEXIST) {
          int e = -errno;
          log_write(LOG_ERROR, "queue: cannot create directory", "{s:s, s:s}", "dir", dir, "error",
                    strerror(errno));
          free(dir);
          free(b);
          return e;
        }
        if (end) break;
        *p = '/';
      }
    }
  }
  /* a clear error up front for a state directory we cannot write (WAL needs it) */
  const char *d = slash && slash != dir ? dir : (slash ? "/" : ".");
  if (access(d, W_OK | X_OK) != 0) {
    int e = errno == EROFS ? -EROFS : -EACCES;
    log_write(LOG_ERROR, "queue: state directory not writable", "{s:s, s:s}", "dir", d, "error", strerror(errno));
    free(dir);
    free(b);
    return e;
  }
  free(dir);
  struct stat before;
  bool created = stat(o->path, &before) != 0;
  int rc = open_conn(b, false, &b->w);
  /* task payloads are private: a new database is 0600 (SQLite gives its -wal and -shm the
   * same mode) */
  if (rc == 0 && created && chmod(o->path, 0600) != 0)
    log_write(LOG_WARNING, "queue: cannot chmod the new database", "{s:s, s:s}", "path", o->path, "error", strerror(errno));
  if (rc == 0) rc = migrate(b->w);
  if (rc == 0 && o->wal_prefill) {
    sqlite3_stmt *ps = NULL;
    if (sqlite3_prepare_v2(b->w, "PRAGMA page_size", -1, &ps, NULL) == SQLITE_OK && sqlite3_step(ps) == SQLITE_ROW) {
      int page = sqlite3_column_int(ps, 0);
      if (page >= 512 && page <= 65536) b->wal_frame_bytes = WAL_FRAME_HDR_BYTES + (unsigned)page;
    }
    sqlite3_finalize(ps);
    unsigned frames = (o->wal_autocheckpoint ? o->wal_autocheckpoint : 8192) + 256;
    b->wal_cap = WAL_HDR_BYTES + (off_t)frames * b->wal_frame_bytes;
    if (b->wal_cap > ((off_t)60 << 20)) b->wal_cap = (off_t)60 << 20; /* under journal_size_limit (64 MiB) */
  }
  if (rc == -ENOTSUP)
    log_write(LOG_ERROR, "queue: the file is not an SQLite database (a DuckDB task_queue.duckdb from the Python"
              " queue cannot be shared; point the queue path at a new file)", "{s:s}", "path", o->path);
  if (rc) {
    if (b->w) sqlite3_close(b->w);
    free(b);
    return rc;
  }
  bool pipe = o->sync_pipeline && wal_open(b) == 0;
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  pthread_mutex_init(&b->rmu, NULL);
  pthread_cond_init(&b->rcv, NULL);
  pthread_mutex_init(&b->smu, NULL);
  pthread_mutex_init(&b->gmu, NULL);
  pthread_cond_init(&b->g_work, NULL);
  pthread_cond_init(&b->g_space, NULL);
  pthread_cond_init(&b->g_synced, NULL);
  /* the writer commits at NORMAL (no fsync) only once the sync threads run */
  for (unsigned i = 0; pipe && i < SYNC_THREADS; i++) {
    if (pthread_create(&b->sy[i].th, NULL, sync_main, &b->sy[i]) != 0) break;
    b->n_sy++;
  }
  if (pipe && (b->n_sy == 0 || exec(b->w, "PRAGMA synchronous=NORMAL") != 0)) {
    log_write(LOG_WARNING, "queue: cannot start the sync stage; commits sync themselves", NULL);
    sync_stop(b);
  }
  if (pthread_create(&b->thread, NULL, writer_main, b) != 0) {
    sync_stop(b);
    sqlite3_close(b->w);
    free(b->wal_path);
    free(b);
    return -EAGAIN;
  }
  *out = b;
  return 0;
}

static void sq_close(tq_backend *b) {
  if (!b) return;
  pthread_mutex_lock(&b->mu);
  b->stop = true;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
  pthread_join(b->thread, NULL); /* every queued op has been handed to the sync stage */
  sync_stop(b); /* … and answered */
  while (b->free_r) {
    rconn *c = b->free_r;
    b->free_r = c->next;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->list[0]);
    sqlite3_finalize(c->list[1]);
    sqlite3_close(c->db);
    free(c);
  }
  if (b->wal_fd >= 0) close(b->wal_fd);
  /* a clean close checkpoints and removes the WAL */
  sqlite3_close(b->w);
  term_cut(b, 0);
  free(b->term);
  free(b->term_row);
  for (size_t i = 0; i < SYNC_RING; i++) {
    free(b->ring[i].term);
    free(b->ring[i].term_row);
  }
  free(b->wal_path);
  pthread_mutex_destroy(&b->gmu);
  pthread_cond_destroy(&b->g_work);
  pthread_cond_destroy(&b->g_space);
  pthread_cond_destroy(&b->g_synced);
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->rmu);
  pthread_cond_destroy(&b->rcv);
  pthread_mutex_destroy(&b->smu);
  free(b);
}

static int sq_enqueue(tq_backend *b, tq_op *op) {
  op->next = NULL;
  op->rc = 0;
  if (b->n_sy) { /* a WAL sync failed: nothing more is written */
    pthread_mutex_lock(&b->gmu);
    int failed = b->failed;
    pthread_mutex_unlock(&b->gmu);
    if (failed) return failed;
  }
  pthread_mutex_lock(&b->mu);
  if (b->stop) {
    pthread_mutex_unlock(&b->mu);
    return -ESHUTDOWN;
  }
  if (b->tail) b->tail->next = op;
  else b->head = op;
  b->tail = op;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
  return 0;
}

static int sq_get(tq_backend *b, const char *task_id, tq_task **out) {
  rconn *c;
  int rc = r_acquire(b, &c);
  if (rc) return rc;
  /* prepared once per read connection (a prepare was ~40 % of a wait's read) */
  if (!c->get && (rc = sqlite3_prepare_v3(c->db, stmt_sql[S_GET], -1, SQLITE_PREPARE_PERSISTENT, &c->get, NULL)) !=
                     SQLITE_OK) {
    c->get = NULL;
    rc = map_err(c->db, rc);
    r_release(b, c);
    return rc;
  }
  sqlite3_stmt *s = c->get;
  sqlite3_bind_text(s, 1, task_id, -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *out = row_task(s);
    rc = *out ? 0 : -ENOMEM;
  } else {
    rc = rc == SQLITE_DONE ? -ENOENT : map_err(c->db, rc);
  }
  sqlite3_reset(s); /* ends the read transaction */
  sqlite3_clear_bindings(s);
  r_release(b, c);
  if (rc == 0 || rc == -ENOENT) {
    int g = read_gate(b);
    if (g) {
      if (rc == 0) tq_task_free(*out);
      *out = NULL;
      rc = g;
    }
  }
  return rc;
}

/* sq_list's statements: one status through idx_tasks_status_created (status, created_at), or
 * every task; ties on created_at are ordered by task_id. The task-type filter runs in C on the
 * rows as they come (so the LIMIT is applied here): `task_type IN (SELECT value FROM
 * json_each(?))` with `?1 IS NULL OR status = ?1` used no index, so a list of queued tasks — the
 * MCP Tasks runner's claim, at each submit — scanned and sorted the whole table (terminal rows
 * included: ~600 k instructions at 300 rows) and prepared the statement every time. */
static const char *const k_list_sql[2] = {
    "SELECT " COLS " FROM tasks ORDER BY created_at ASC, task_id ASC",
    "SELECT " COLS " FROM tasks WHERE status = ?1 ORDER BY created_at ASC, task_id ASC",
};

static bool list_type_ok(const tq_list_opts *o, const char *type) {
  if (!o->n_task_types) return true;
  if (!type) return false;
  for (size_t i = 0; i < o->n_task_types; i++)
    if (o->task_types[i] && strcmp(o->task_types[i], type) == 0) return true;
  return false;
}

static int sq_list(tq_backend *b, const tq_list_opts *o, tq_task ***out, size_t *n_out) {
  rconn *c;
  int rc = r_acquire(b, &c);
  if (rc) return rc;
  int k = o->status == TQ_STATUS_ANY ? 0 : 1;
  tq_task **v = calloc(o->limit ? o->limit : 1, sizeof *v);
  size_t n = 0;
  if (!v) {
    rc = -ENOMEM;
    goto out;
  }
  if (!c->list[k] &&
      (rc = sqlite3_prepare_v3(c->db, k_list_sql[k], -1, SQLITE_PREPARE_PERSISTENT, &c->list[k], NULL)) != SQLITE_OK) {
    c->list[k] = NULL;
    rc = map_err(c->db, rc);
    goto out;
  }
  sqlite3_stmt *s = c->list[k];
  if (k) sqlite3_bind_text(s, 1, tq_status_name(o->status), -1, SQLITE_STATIC);
  size_t bytes = 0;
  if (o->truncated) *o->truncated = false;
  while (n < o->limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (!list_type_ok(o, (const char *)sqlite3_column_text(s, 1))) continue;
    /* the size cap is checked on the row's text lengths before anything is copied */
    size_t row_bytes = (size_t)sqlite3_column_bytes(s, 3) + (size_t)sqlite3_column_bytes(s, 8);
    if (o->max_bytes && n > 0 && bytes + row_bytes > o->max_bytes) {
      if (o->truncated) *o->truncated = true;
      break;
    }
    bytes += row_bytes;
    if (!(v[n] = row_task(s))) {
      rc = SQLITE_NOMEM;
      break;
    }
    n++;
  }
  if (n == o->limit) rc = SQLITE_DONE;
  rc = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : rc == SQLITE_NOMEM ? -ENOMEM : map_err(c->db, rc);
  sqlite3_reset(s); /* ends the read transaction */
  sqlite3_clear_bindings(s);
out:
  r_release(b, c);
  if (rc == 0) rc = read_gate(b);
  if (rc) {
    tq_task_array_free(v, n);
    return rc;
  }
  *out = v;
  *n_out = n;
  return 0;
}

static int sq_count(tq_backend *b, double now, tq_counts *out) {
  memset(out, 0, sizeof *out);
  rconn *c;
  int rc = r_acquire(b, &c);
  if (rc) return rc;
  sqlite3_stmt *s;
  rc = sqlite3_prepare_v3(c->db,
                          "SELECT status, count(*), sum(cancel_requested), sum(CASE WHEN status = 'running' AND"
                          " lease_until <= ?1 THEN 1 ELSE 0 END) FROM tasks GROUP BY status",
                          -1, 0, &s, NULL);
  if (rc != SQLITE_OK) {
    rc = map_err(c->db, rc);
    r_release(b, c);
    return rc;
  }
  sqlite3_bind_double(s, 1, now);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    tq_status stt = TQ_FAILED;
    if (tq_status_parse((const char *)sqlite3_column_text(s, 0), &stt) == 0)
      out->by_status[stt] = (uint64_t)sqlite3_column_int64(s, 1);
    if (stt == TQ_RUNNING) out->cancel_requested += (uint64_t)sqlite3_column_int64(s, 2);
    out->expired_leases += (uint64_t)sqlite3_column_int64(s, 3);
  }
  rc = rc == SQLITE_DONE ? 0 : map_err(c->db, rc);
  sqlite3_finalize(s);
  r_release(b, c);
  if (rc == 0) rc = read_gate(b);
  if (rc) memset(out, 0, sizeof *out);
  return rc;
}

static int sq_stats_json(tq_backend *b, json_t **out) {
  *out = NULL;
  rconn *c;
  int rc = r_acquire(b, &c);
  if (rc) return rc;
  json_t *o = json_object(), *qb = json_object(), *rb = json_object();
  sqlite3_stmt *s = NULL;
  if (!o || !qb || !rb) {
    rc = -ENOMEM;
    goto out;
  }
  for (int i = 0; i < TQ_STATUS_COUNT; i++) json_object_set_new(o, tq_status_name((tq_status)i), json_integer(0));
  rc = sqlite3_prepare_v3(c->db, "SELECT status, task_type, count(*) FROM tasks GROUP BY status, task_type", -1, 0,
                          &s, NULL);
  if (rc != SQLITE_OK) {
    rc = map_err(c->db, rc);
    goto out;
  }
  json_int_t total = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *stt = (const char *)sqlite3_column_text(s, 0);
    const char *type = (const char *)sqlite3_column_text(s, 1);
    json_int_t n = sqlite3_column_int64(s, 2);
    total += n;
    json_t *cur = json_object_get(o, stt);
    if (cur) json_integer_set(cur, json_integer_value(cur) + n);
    if (strcmp(stt, "queued") == 0) json_object_set_new(qb, type, json_integer(n));
    if (strcmp(stt, "running") == 0) json_object_set_new(rb, type, json_integer(n));
  }
  rc = rc == SQLITE_DONE ? 0 : map_err(c->db, rc);
  json_object_set_new(o, "total", json_integer(total));
  json_object_set(o, "queued_by_type", qb);
  json_object_set(o, "running_by_type", rb);
out:
  sqlite3_finalize(s);
  r_release(b, c);
  json_decref(qb);
  json_decref(rb);
  if (rc == 0) rc = read_gate(b);
  if (rc) {
    json_decref(o);
    return rc;
  }
  *out = o;
  return 0;
}

static void sq_io_stats(tq_backend *b, tq_io_stats *out) {
  pthread_mutex_lock(&b->smu);
  *out = b->st;
  pthread_mutex_unlock(&b->smu);
}

static int sq_sync_error(tq_backend *b) {
  if (!b->n_sy) return 0;
  pthread_mutex_lock(&b->gmu);
  int rc = b->failed;
  pthread_mutex_unlock(&b->gmu);
  return rc;
}

const tq_backend_ops tq_sqlite_backend = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .enqueue = sq_enqueue,
    .get = sq_get,
    .list = sq_list,
    .count = sq_count,
    .stats_json = sq_stats_json,
    .io_stats = sq_io_stats,
    .sync_error = sq_sync_error,
};
/* ---- `peermcp queue check` ---- */

/* The queue's own invariants, each a WHERE clause over tasks that no row should match, with the
 * fix an operator can apply (docs/store.md, "Recovery"). */
static const struct {
  const char *rule, *where, *hint;
} k_invariants[] = {
    {"unknown_status", "status NOT IN ('queued','running','completed','failed','cancelled')",
     "set a known status, e.g. UPDATE tasks SET status='failed', error='unknown status' WHERE …"},
    {"running_without_owner_or_lease",
     "status = 'running' AND (assigned_worker IS NULL OR assigned_worker = '' OR lease_until IS NULL)",
     "requeue: UPDATE tasks SET status='queued', assigned_worker=NULL, lease_until=NULL, heartbeat_at=NULL WHERE …"},
    {"queued_with_lease", "status = 'queued' AND lease_until IS NOT NULL",
     "UPDATE tasks SET lease_until=NULL, assigned_worker=NULL WHERE …"},
    {"terminal_with_lease", "status IN ('completed','failed','cancelled') AND lease_until IS NOT NULL",
     "UPDATE tasks SET lease_until=NULL WHERE …"},
    {"priority_out_of_range", "priority IS NULL OR priority < 1 OR priority > 10",
     "UPDATE tasks SET priority = max(1, min(10, coalesce(priority, 5))) WHERE …"},
    {"bad_attempts",
     "attempt IS NULL OR attempt < 0 OR max_attempts IS NULL OR max_attempts < 0 OR "
     "(max_attempts > 0 AND attempt > max_attempts)",
     "UPDATE tasks SET attempt = max(0, min(attempt, max_attempts)) WHERE …"},
    {"payload_not_json", "payload_json IS NULL OR NOT json_valid(payload_json)",
     "the payload is lost: delete the task or set payload_json='{}'"},
    {"result_not_json", "result_json IS NOT NULL AND NOT json_valid(result_json)", "UPDATE tasks SET result_json=NULL WHERE …"},
    {"bad_flags", "cancel_requested NOT IN (0, 1) OR lease_epoch IS NULL OR lease_epoch < 0",
     "UPDATE tasks SET cancel_requested = (cancel_requested != 0), lease_epoch = max(0, coalesce(lease_epoch, 0)) WHERE …"},
};

int tq_check_file(const char *path, json_t **report) {
  *report = NULL;
  json_t *r = json_pack("{s:b, s:s}", "ok", 0, "path", path ? path : "");
  if (!r) return -ENOMEM;
  *report = r;
  if (!path || !*path) {
    json_object_set_new(r, "error", json_string("no queue path"));
    return -EINVAL;
  }
  struct stat st;
  if (lstat(path, &st) != 0) {
    json_object_set_new(r, "error", json_string(strerror(errno)));
    return -errno;
  }
  char why[512];
  int rc = S_ISLNK(st.st_mode) ? (snprintf(why, sizeof why, "%s is a symbolic link; not followed", path), -ELOOP)
                               : fscheck_own_file(&st, path, "queue database", why, sizeof why);
  if (rc != 0) {
    json_object_set_new(r, "error", json_string(why));
    return rc;
  }
  /* the header itself: SQLite may read a newer page 1 from the WAL and not notice it (until the
   * next checkpoint), but a file whose first bytes are not SQLite's was damaged */
  bool bad_header = false;
  int hfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (hfd >= 0) {
    char hdr[16];
    ssize_t got = pread(hfd, hdr, sizeof hdr, 0);
    close(hfd);
    bad_header = got >= 0 && (got < (ssize_t)sizeof hdr || memcmp(hdr, "SQLite format 3", 16) != 0) && st.st_size > 0;
  }
  sqlite3 *db = NULL;
  rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL);
  if (rc != SQLITE_OK) {
    int e = map_err(db, rc);
    json_object_set_new(r, "error", json_string(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return e ? e : -EIO;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  /* integrity_check: "ok", or up to 100 messages */
  json_t *msgs = json_array();
  sqlite3_stmt *s = NULL;
  rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(100)", -1, &s, NULL);
  int step = rc == SQLITE_OK ? SQLITE_ROW : rc;
  while (rc == SQLITE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(s, 0);
    if (t && strcmp((const char *)t, "ok") != 0) json_array_append_new(msgs, json_string((const char *)t));
  }
  sqlite3_finalize(s);
  if (step != SQLITE_DONE) { /* not even the check could read it: NOTADB, CORRUPT in the header */
    json_array_append_new(msgs, json_string(sqlite3_errmsg(db)));
    json_object_set_new(r, "integrity", msgs);
    json_object_set_new(r, "error", json_string(sqlite3_errmsg(db)));
    json_object_set_new(r, "error_code", json_string(tq_strerror(map_err(db, step))));
    sqlite3_close(db);
    return 0; /* a verdict (the report says not ok), not a failure to run the check */
  }
  bool healthy = json_array_size(msgs) == 0;
  json_object_set_new(r, "integrity", healthy ? json_string("ok") : msgs);
  if (healthy) json_decref(msgs);
  /* schema and invariants (only meaningful on a readable tasks table) */
  int version = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK) {
    if (sqlite3_step(s) == SQLITE_ROW) version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
  }
  json_object_set_new(r, "schema_version", json_integer(version));
  if (version != SCHEMA_VERSION) healthy = false;
  long long tasks = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM tasks", -1, &s, NULL) == SQLITE_OK) {
    if (sqlite3_step(s) == SQLITE_ROW) tasks = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
  }
  json_object_set_new(r, "tasks", json_integer(tasks));
  if (tasks < 0) {
    json_object_set_new(r, "error", json_string(sqlite3_errmsg(db)));
    healthy = false;
  }
  json_t *inv = json_array();
  for (size_t i = 0; tasks >= 0 && i < sizeof k_invariants / sizeof k_invariants[0]; i++) {
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT task_id FROM tasks WHERE %s", k_invariants[i].where);
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
      json_array_append_new(inv, json_pack("{s:s, s:s}", "rule", k_invariants[i].rule, "error", sqlite3_errmsg(db)));
      healthy = false;
      continue;
    }
    long long n = 0;
    json_t *ids = json_array();
    int st2;
    while ((st2 = sqlite3_step(s)) == SQLITE_ROW) {
      if (n++ < 5) json_array_append_new(ids, json_string((const char *)sqlite3_column_text(s, 0)));
    }
    sqlite3_finalize(s);
    if (st2 != SQLITE_DONE) {
      json_array_append_new(inv, json_pack("{s:s, s:s}", "rule", k_invariants[i].rule, "error", sqlite3_errmsg(db)));
      json_decref(ids);
      healthy = false;
      continue;
    }
    if (n == 0) {
      json_decref(ids);
      continue;
    }
    healthy = false;
    json_array_append_new(inv, json_pack("{s:s, s:I, s:o, s:s}", "rule", k_invariants[i].rule, "count", (json_int_t)n,
                                         "task_ids", ids, "hint", k_invariants[i].hint));
  }
  json_object_set_new(r, "invariants", inv);
  if (bad_header) {
    healthy = false;
    json_object_set_new(r, "error", json_string("the file's header is not SQLite's (overwritten: the database is corrupt)"));
    json_object_set_new(r, "error_code", json_string("database_corrupt"));
  }
  json_object_set_new(r, "ok", json_boolean(healthy));
  sqlite3_close(db);
  return 0;
}

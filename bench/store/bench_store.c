/* bench_store.c — throughput of store/queue and store/cache on this machine's disk.
 *
 *   bench_store <dir> [seconds-per-case]
 *
 * Cases (each on a fresh database in <dir>): the disk's fsync rate (4 KiB overwrite of a
 * preallocated file + fdatasync, the physical limit of one-commit-per-operation), durable submits/s with 1 and 8 concurrent
 * submitters with group commit on and off, 8 submitters with 32 submits in flight each
 * (tq_submit_async, the way the service calls it), claim+complete/s with 8 workers, and cache
 * set/get ops/s. Latency percentiles are per operation. Prints one JSON object per case. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/cache.h"
#include "store/queue.h"
#include "util/clock.h"
#include "util/log.h"

static const char *g_dir;
static double g_secs = 3;

typedef struct {
  int64_t *lat; /* microseconds */
  size_t n, cap;
} lat_vec;

static void lat_add(lat_vec *v, int64_t us) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 4096;
    v->lat = realloc(v->lat, v->cap * sizeof *v->lat);
  }
  v->lat[v->n++] = us;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, size_t ops, double secs, lat_vec *lv, size_t nv, const char *extra) {
  size_t total = 0;
  for (size_t i = 0; i < nv; i++) total += lv[i].n;
  int64_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (size_t i = 0; i < nv; i++) {
    if (lv[i].n) memcpy(all + k, lv[i].lat, lv[i].n * sizeof *all);
    k += lv[i].n;
  }
  qsort(all, total, sizeof *all, cmp64);
  double p50 = total ? all[total / 2] / 1000.0 : 0, p99 = total ? all[(size_t)(total * 0.99)] / 1000.0 : 0;
  printf("{\"case\":\"%s\",\"ops\":%zu,\"seconds\":%.2f,\"ops_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f%s%s}\n",
         name, ops, secs, ops / secs, p50, p99, extra ? "," : "", extra ? extra : "");
  fflush(stdout);
  free(all);
}

static void fresh_path(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/%s.sqlite3", g_dir, name);
  char p[600];
  unlink(out);
  snprintf(p, sizeof p, "%s-wal", out);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", out);
  unlink(p);
}

/* ---- fsync ---- */

static void bench_fsync(void) {
  char p[600];
  snprintf(p, sizeof p, "%s/fsync.probe", g_dir);
  int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  if (fd < 0) {
    perror("fsync probe");
    exit(1);
  }
  char b[4096];
  memset(b, 'f', sizeof b);
  /* preallocate, like a WAL that is being reused: measure data writes + fdatasync only */
  for (int i = 0; i < 64; i++)
    if (pwrite(fd, b, sizeof b, (off_t)i * (off_t)sizeof b) < 0) break;
  if (fsync(fd) != 0) perror("fsync");
  lat_vec lv = {0};
  int64_t end = clock_mono_ms() + (int64_t)(g_secs * 1000 / 2), t0 = clock_mono_us();
  size_t n = 0;
  while (clock_mono_ms() < end) {
    int64_t a = clock_mono_us();
    if (pwrite(fd, b, sizeof b, (off_t)((n % 64) * sizeof b)) < 0 || fdatasync(fd) != 0) break;
    lat_add(&lv, clock_mono_us() - a);
    n++;
  }
  double secs = (clock_mono_us() - t0) / 1e6;
  close(fd);
  unlink(p);
  report("fsync_4k", n, secs, &lv, 1, NULL);
  free(lv.lat);
}

/* ---- submits ---- */

typedef struct {
  tq_queue *q;
  int64_t end_ms;
  size_t ops, errs;
  lat_vec lv;
  int inflight; /* async window; 0 = synchronous */
  sem_t window;
  pthread_mutex_t mu;
} subm;

typedef struct {
  subm *s;
  int64_t t0;
} pending;

static void async_cb(int rc, const char *task_id, bool replayed, void *ud) {
  pending *pd = ud;
  subm *s = pd->s;
  int64_t us = clock_mono_us() - pd->t0;
  free(pd);
  pthread_mutex_lock(&s->mu);
  if (rc == 0) {
    s->ops++;
    lat_add(&s->lv, us);
  } else {
    s->errs++;
  }
  pthread_mutex_unlock(&s->mu);
  sem_post(&s->window);
}

static void *submitter(void *arg) {
  subm *s = arg;
  json_t *p = json_pack("{s:s, s:i, s:s}", "prompt", "hello world", "n", 0, "model", "m");
  tq_submit_req r = {.task_type = "text-generation", .model_name = "bench", .payload = p};
  int i = 0;
  while (clock_mono_ms() < s->end_ms) {
    json_object_set_new(p, "n", json_integer(i++));
    if (s->inflight) {
      while (sem_wait(&s->window) != 0) {
      }
      pending *pd = malloc(sizeof *pd);
      pd->s = s;
      pd->t0 = clock_mono_us();
      if (tq_submit_async(s->q, &r, async_cb, pd) != 0) {
        free(pd);
        sem_post(&s->window);
        pthread_mutex_lock(&s->mu);
        s->errs++;
        pthread_mutex_unlock(&s->mu);
      }
      continue;
    }
    int64_t a = clock_mono_us();
    char id[33];
    if (tq_submit(s->q, &r, id, NULL) == 0) {
      s->ops++;
      lat_add(&s->lv, clock_mono_us() - a);
    } else {
      s->errs++;
    }
  }
  for (int k = 0; k < s->inflight; k++)
    while (sem_wait(&s->window) != 0) {
    }
  json_decref(p);
  return NULL;
}

static double bench_submit(int threads, bool group, int inflight) {
  char path[600], name[64];
  snprintf(name, sizeof name, "submit-%d-%d-%d", threads, group, inflight);
  fresh_path(path, sizeof path, name);
  tq_options o;
  tq_options_default(&o);
  o.path = path;
  o.group_commit = group;
  tq_queue *q;
  if (tq_open(&o, &q) != 0) exit(1);
  subm *s = calloc((size_t)threads, sizeof *s);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  int64_t t0 = clock_mono_us();
  for (int i = 0; i < threads; i++) {
    s[i].q = q;
    s[i].end_ms = clock_mono_ms() + (int64_t)(g_secs * 1000);
    s[i].inflight = inflight;
    sem_init(&s[i].window, 0, (unsigned)inflight);
    pthread_mutex_init(&s[i].mu, NULL);
    pthread_create(&th[i], NULL, submitter, &s[i]);
  }
  size_t ops = 0, errs = 0;
  lat_vec *lv = calloc((size_t)threads, sizeof *lv);
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    ops += s[i].ops;
    errs += s[i].errs;
    lv[i] = s[i].lv;
  }
  double secs = (clock_mono_us() - t0) / 1e6;
  tq_io_stats io;
  tq_io_stats_get(q, &io);
  char extra[200];
  snprintf(extra, sizeof extra, "\"submitters\":%d,\"group_commit\":%s,\"in_flight_per_submitter\":%d,\"errors\":%zu,"
           "\"commits\":%llu,\"ops_per_commit\":%.1f", threads, group ? "true" : "false", inflight ? inflight : 1, errs,
           (unsigned long long)io.commits, io.commits ? (double)io.ops / io.commits : 0);
  report(inflight ? "submit_async" : "submit", ops, secs, lv, (size_t)threads, extra);
  for (int i = 0; i < threads; i++) {
    free(lv[i].lat);
    sem_destroy(&s[i].window);
  }
  free(lv);
  free(s);
  free(th);
  tq_close(q);
  fresh_path(path, sizeof path, name);
  return ops / secs;
}

/* ---- claim + complete ---- */

typedef struct {
  tq_queue *q;
  int id;
  size_t ops;
  lat_vec lv;
  int64_t end_ms;
} claimer;

static void *claim_loop(void *arg) {
  claimer *c = arg;
  char wid[16];
  snprintf(wid, sizeof wid, "w%d", c->id);
  tq_claim_opts o = {.worker_id = wid};
  json_t *res = json_pack("{s:s}", "out", "done");
  while (clock_mono_ms() < c->end_ms) {
    int64_t a = clock_mono_us();
    tq_task *t = NULL;
    if (tq_claim_next(c->q, &o, &t) != 0 || !t) break;
    tq_fence f = {wid, t->lease_epoch};
    if (tq_complete(c->q, t->task_id, &f, TQ_COMPLETED, res, NULL) == 0) {
      c->ops++;
      lat_add(&c->lv, clock_mono_us() - a);
    }
    tq_task_free(t);
  }
  json_decref(res);
  return NULL;
}

static void prefill_cb(int rc, const char *id, bool r, void *ud) { sem_post(ud); }

static void bench_claim_complete(int threads) {
  char path[600];
  fresh_path(path, sizeof path, "claim");
  tq_options o;
  tq_options_default(&o);
  o.path = path;
  tq_queue *q;
  if (tq_open(&o, &q) != 0) exit(1);
  /* enough work for the run, submitted through the fast path */
  size_t prefill = 30000;
  sem_t win;
  sem_init(&win, 0, 256);
  json_t *p = json_object();
  tq_submit_req r = {.task_type = "t", .payload = p};
  for (size_t i = 0; i < prefill; i++) {
    while (sem_wait(&win) != 0) {
    }
    json_object_set_new(p, "i", json_integer((json_int_t)i));
    if (tq_submit_async(q, &r, prefill_cb, &win) != 0) sem_post(&win);
  }
  for (int i = 0; i < 256; i++)
    while (sem_wait(&win) != 0) {
    }
  json_decref(p);
  claimer *c = calloc((size_t)threads, sizeof *c);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  int64_t t0 = clock_mono_us();
  for (int i = 0; i < threads; i++) {
    c[i] = (claimer){.q = q, .id = i, .end_ms = clock_mono_ms() + (int64_t)(g_secs * 1000)};
    pthread_create(&th[i], NULL, claim_loop, &c[i]);
  }
  size_t ops = 0;
  lat_vec *lv = calloc((size_t)threads, sizeof *lv);
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    ops += c[i].ops;
    lv[i] = c[i].lv;
  }
  double secs = (clock_mono_us() - t0) / 1e6;
  char extra[100];
  snprintf(extra, sizeof extra, "\"workers\":%d,\"note\":\"ops = claim+complete pairs (2 durable ops each)\"", threads);
  report("claim_complete", ops, secs, lv, (size_t)threads, extra);
  for (int i = 0; i < threads; i++) free(lv[i].lat);
  free(lv);
  free(c);
  free(th);
  tq_close(q);
  fresh_path(path, sizeof path, "claim");
}

/* ---- cache ---- */

typedef struct {
  ttlcache *c;
  int id;
  bool set;
  size_t ops, hits;
  lat_vec lv;
  int64_t end_ms;
} cacher;

static void *cache_loop(void *arg) {
  cacher *c = arg;
  char pad[1025];
  memset(pad, 'v', 1024);
  pad[1024] = 0;
  json_t *v = json_pack("{s:s, s:i}", "data", pad, "n", 0);
  unsigned seed = (unsigned)c->id;
  while (clock_mono_ms() < c->end_ms) {
    char key[32];
    snprintf(key, sizeof key, "key-%u", rand_r(&seed) % 1000);
    int64_t a = clock_mono_us();
    if (c->set) {
      if (ttlcache_set(c->c, key, v, NULL) == 0) c->ops++;
    } else {
      json_t *got = NULL;
      int rc = ttlcache_get(c->c, key, &got);
      if (rc == 0) c->hits++;
      if (rc == 0 || rc == -ENOENT) c->ops++;
      json_decref(got);
    }
    lat_add(&c->lv, clock_mono_us() - a);
  }
  json_decref(v);
  return NULL;
}

static void bench_cache(int threads, bool set) {
  static ttlcache *c;
  char dir[600];
  snprintf(dir, sizeof dir, "%s/cache", g_dir);
  if (!c) {
    ttlcache_options o;
    ttlcache_options_default(&o);
    o.dir = dir;
    if (ttlcache_open(&o, &c) != 0) exit(1);
  }
  cacher *w = calloc((size_t)threads, sizeof *w);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  int64_t t0 = clock_mono_us();
  for (int i = 0; i < threads; i++) {
    w[i] = (cacher){.c = c, .id = i + 1, .set = set, .end_ms = clock_mono_ms() + (int64_t)(g_secs * 1000 / 2)};
    pthread_create(&th[i], NULL, cache_loop, &w[i]);
  }
  size_t ops = 0, hits = 0;
  lat_vec *lv = calloc((size_t)threads, sizeof *lv);
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    ops += w[i].ops;
    hits += w[i].hits;
    lv[i] = w[i].lv;
  }
  double secs = (clock_mono_us() - t0) / 1e6;
  char extra[120];
  snprintf(extra, sizeof extra, "\"threads\":%d,\"value_bytes\":1040,\"keys\":1000%s", threads,
           set ? ",\"durable\":true" : "");
  if (!set) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",\"hit_ratio\":%.2f", ops ? (double)hits / ops : 0);
  report(set ? "cache_set" : "cache_get", ops, secs, lv, (size_t)threads, extra);
  for (int i = 0; i < threads; i++) free(lv[i].lat);
  free(lv);
  free(w);
  free(th);
  if (!set) {
    ttlcache_close(c);
    c = NULL;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_store <dir> [seconds-per-case]\n");
    return 2;
  }
  g_dir = argv[1];
  if (argc > 2) g_secs = atof(argv[2]);
  log_set_level(LOG_ERROR);
  bench_fsync();
  double base1 = bench_submit(1, false, 0);
  double gc1 = bench_submit(1, true, 0);
  double base8 = bench_submit(8, false, 0);
  double gc8 = bench_submit(8, true, 0);
  double async8 = bench_submit(8, true, 32);
  bench_claim_complete(8);
  bench_cache(4, true);
  bench_cache(4, false);
  printf("{\"case\":\"summary\",\"submit_1_baseline\":%.0f,\"submit_1_group\":%.0f,\"submit_8_baseline\":%.0f,"
         "\"submit_8_group\":%.0f,\"submit_8x32_group\":%.0f,\"speedup_8_group_vs_baseline\":%.1f,"
         "\"speedup_8x32_vs_baseline\":%.1f}\n",
         base1, gc1, base8, gc8, async8, base8 > 0 ? gc8 / base8 : 0, base8 > 0 ? async8 / base8 : 0);
  return 0;
}

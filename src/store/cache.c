/* cache.c — the disk TTL cache (see cache.h; p2p_tasks_spec.md §6 layout, §12.18 fixes).
 *
 * Files are the truth; the in-memory index (hash table on sha256(key) + an LRU list) only
 * accounts for sizes, expiries and recency. A per-key stripe lock orders writers, deleters
 * and removers of the same key inside this process; between processes, rename(2) keeps each
 * file whole and a remover only unlinks the very inode it found bad. */
#include "store/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/pyjson.h"
#include "util/alloc.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

#define STRIPES 64
#define RECORD_OVERHEAD (TTLCACHE_MAX_KEY_BYTES * 6 + 256) /* key escaped + the other fields */
#define TMP_PREFIX ".tmp-"
#define TMP_MAX_AGE_S 3600

typedef struct centry {
  uint8_t h[32];
  uint64_t size;
  double expires_at; /* 0 = never; NAN = not known yet */
  double mtime;      /* for ordering at scan */
  unsigned gen;      /* scan generation that saw the file */
  struct centry *prev, *next, *hnext;
} centry;

struct ttlcache {
  ttlcache_options o;
  char *dir;
  int dirfd;
  pthread_mutex_t mu; /* index, LRU, counters */
  centry **bucket;
  size_t nbucket;
  centry *head, *tail; /* head = most recently used */
  unsigned gen;
  ttlcache_stats st;
  uint64_t pub_bytes, pub_entries; /* what this cache adds to the process gauges (under mu) */
  pthread_mutex_t stripe[STRIPES];
  /* health (ttlcache_health_get, issue 9 item 10), under mu */
  ttlcache_health hl;
  bool failing;         /* the latest operation that reached the disk failed */
  dev_t dev;            /* the directory's identity at open */
  ino_t ino;
};

/* ---- metrics: operations by op and outcome; bytes and entries of every open cache ---- */

enum { CM_GET, CM_HAS, CM_SET, CM_DELETE, CM_SWEEP, CM_N };
enum { CO_HIT, CO_MISS, CO_OK, CO_ERROR, CO_N };
static const char *const k_cm_ops[CM_N] = {"get", "has", "set", "delete", "sweep"};
static const char *const k_cm_outcomes[CO_N] = {"hit", "miss", "ok", "error"};
static _Atomic uint64_t g_cops_cells[CM_N * CO_N];
static metrics_family g_cache_ops = {
    .name = "peermcp_cache_ops_total",
    .help = "Cache operations, by op and outcome (get/has: hit or miss; delete: ok, or miss when nothing was there).",
    .kind = METRICS_COUNTER,
    .ndims = 2,
    .dims = {{"op", k_cm_ops, CM_N, NULL}, {"outcome", k_cm_outcomes, CO_N, NULL}},
    .cells = g_cops_cells,
};
METRICS_REGISTER(g_cache_ops)
static _Atomic uint64_t g_cbytes_cell[1], g_centries_cell[1];
static metrics_family g_cache_bytes = {.name = "peermcp_cache_bytes",
                                       .help = "Bytes of the cache's entry files.",
                                       .kind = METRICS_GAUGE,
                                       .cells = g_cbytes_cell};
METRICS_REGISTER(g_cache_bytes)
static metrics_family g_cache_entries = {.name = "peermcp_cache_entries",
                                         .help = "Entries in the cache.",
                                         .kind = METRICS_GAUGE,
                                         .cells = g_centries_cell};
METRICS_REGISTER(g_cache_entries)

static void cm_record(unsigned op, unsigned outcome) {
  metrics_inc(&g_cache_ops, metrics_series2(&g_cache_ops, op, outcome));
}

/* Moves the gauges by what changed in this cache's index since the last call (a process may
 * have several caches: the gauges are their sum). */
static void cm_publish(ttlcache *c) {
  pthread_mutex_lock(&c->mu);
  int64_t db = (int64_t)(c->st.bytes - c->pub_bytes), de = (int64_t)(c->st.entries - c->pub_entries);
  c->pub_bytes = c->st.bytes;
  c->pub_entries = c->st.entries;
  pthread_mutex_unlock(&c->mu);
  if (db) metrics_gauge_add(&g_cache_bytes, 0, db);
  if (de) metrics_gauge_add(&g_cache_entries, 0, de);
}

void ttlcache_options_default(ttlcache_options *o) {
  memset(o, 0, sizeof *o);
  o->max_bytes = 268435456;
  o->max_entries = 100000;
  o->max_value_bytes = 1048576;
  o->default_ttl_seconds = 0;
  o->sweep_interval_seconds = 60;
  o->durable = true;
}

const char *ttlcache_strerror(int rc) {
  switch (rc) {
  case 0: return "ok";
  case -ENOENT: return "not_found";
  case -EINVAL: return "invalid_argument";
  case -E2BIG: return "value_too_large";
  case -ENOSPC: return "disk_full";
  case -EROFS: return "read_only_storage";
  case -EACCES: return "storage_permission_denied";
  case -EIO: return "storage_error";
  case -ENOMEM: return "out_of_memory";
  default: return "internal_error";
  }
}

/* ---- names ---- */

static void hash_key(const char *key, uint8_t h[32]) {
  crypto_hash_sha256(h, (const unsigned char *)key, strlen(key));
}

static void hex_name(const uint8_t h[32], char out[70]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[h[i] >> 4];
    out[2 * i + 1] = hex[h[i] & 15];
  }
  memcpy(out + 64, ".json", 6);
}

void ttlcache_key_filename(const char *key, char out[70]) {
  uint8_t h[32];
  hash_key(key, h);
  hex_name(h, out);
}

static bool parse_name(const char *name, uint8_t h[32]) {
  if (strlen(name) != 69 || strcmp(name + 64, ".json") != 0) return false;
  for (int i = 0; i < 64; i++) {
    char c = name[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return false;
    if (i % 2 == 0) h[i / 2] = (uint8_t)(v << 4);
    else h[i / 2] |= (uint8_t)v;
  }
  return true;
}

static int key_ok(const char *key) {
  if (!key) return -EINVAL;
  size_t n = strnlen(key, TTLCACHE_MAX_KEY_BYTES + 1);
  if (n == 0 || n > TTLCACHE_MAX_KEY_BYTES || !pyjson_utf8_valid(key, n)) return -EINVAL;
  return 0;
}

static pthread_mutex_t *stripe_of(ttlcache *c, const uint8_t h[32]) { return &c->stripe[h[0] % STRIPES]; }

/* ---- index (c->mu held) ---- */

static size_t bucket_of(const ttlcache *c, const uint8_t h[32]) {
  CHECK(c->nbucket && (c->nbucket & (c->nbucket - 1)) == 0); /* a power of two */
  uint64_t x;
  memcpy(&x, h + 8, sizeof x);
  return (size_t)(x & (c->nbucket - 1));
}

static centry *idx_find(ttlcache *c, const uint8_t h[32]) {
  for (centry *e = c->bucket[bucket_of(c, h)]; e; e = e->hnext)
    if (memcmp(e->h, h, 32) == 0) return e;
  return NULL;
}

static void lru_unlink(ttlcache *c, centry *e) {
  CHECK(e->prev ? e->prev->next == e : c->head == e); /* e is on the LRU list */
  CHECK(e->next ? e->next->prev == e : c->tail == e);
  if (e->prev) e->prev->next = e->next;
  else c->head = e->next;
  if (e->next) e->next->prev = e->prev;
  else c->tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_front(ttlcache *c, centry *e) {
  e->prev = NULL;
  e->next = c->head;
  if (c->head) c->head->prev = e;
  c->head = e;
  if (!c->tail) c->tail = e;
}

static void idx_remove(ttlcache *c, centry *e) {
  centry **pp = &c->bucket[bucket_of(c, e->h)];
  while (*pp && *pp != e) pp = &(*pp)->hnext;
  CHECK(*pp == e); /* every indexed entry is in its bucket */
  CHECK(c->st.entries > 0 && c->st.bytes >= e->size);
  if (*pp) *pp = e->hnext;
  lru_unlink(c, e);
  c->st.bytes -= e->size;
  c->st.entries--;
  free(e);
}

/* Adds or updates; moves to the front. NULL on ENOMEM (the index then under-counts). */
static centry *idx_put(ttlcache *c, const uint8_t h[32], uint64_t size, double expires_at) {
  centry *e = idx_find(c, h);
  if (e) {
    CHECK(c->st.bytes >= e->size); /* st.bytes is the sum of the indexed sizes */
    c->st.bytes -= e->size;
    lru_unlink(c, e);
  } else {
    e = calloc(1, sizeof *e);
    if (!e) return NULL;
    memcpy(e->h, h, 32);
    size_t b = bucket_of(c, h);
    e->hnext = c->bucket[b];
    c->bucket[b] = e;
    c->st.entries++;
  }
  e->size = size;
  e->expires_at = expires_at;
  e->gen = c->gen;
  c->st.bytes += size;
  lru_front(c, e);
  return e;
}

static void idx_forget(ttlcache *c, const uint8_t h[32]) {
  pthread_mutex_lock(&c->mu);
  centry *e = idx_find(c, h);
  if (e) idx_remove(c, e);
  pthread_mutex_unlock(&c->mu);
}

/* ---- files ---- */

static int errno_rc(int e) {
  switch (e) {
  case ENOSPC: case EFBIG: case EDQUOT: return -ENOSPC;
  case EROFS: return -EROFS;
  case EACCES: case EPERM: return -EACCES;
  case ENOMEM: return -ENOMEM;
  case ENOENT: return -ENOENT;
  default: return -EIO;
  }
}

/* ---- health ---- */

static bool storage_err(int rc) { return rc == -EIO || rc == -ENOSPC || rc == -EROFS || rc == -EACCES; }

/* What an operation on file `name` met: a storage error is remembered with the file; any other
 * outcome means the disk answered. */
static void health_note(ttlcache *c, const char *name, int rc) {
  bool bad = storage_err(rc);
  pthread_mutex_lock(&c->mu);
  bool first = bad && !c->failing;
  c->failing = bad;
  if (bad) {
    c->hl.last_err = rc;
    c->hl.last_err_at = clock_wall_s();
    c->hl.errors++;
    snprintf(c->hl.last_err_file, sizeof c->hl.last_err_file, "%s", name);
  }
  pthread_mutex_unlock(&c->mu);
  if (first)
    log_write(LOG_ERROR, "cache: storage failing", "{s:s, s:s, s:s}", "dir", c->dir, "file", name, "error",
              ttlcache_strerror(rc));
}

/* A corrupt or foreign record was removed: counted, remembered with why (status), logged. */
static void corrupt_removed(ttlcache *c, const char *name, const char *why) {
  pthread_mutex_lock(&c->mu);
  c->st.corrupt++;
  snprintf(c->hl.last_corrupt_file, sizeof c->hl.last_corrupt_file, "%s", name);
  snprintf(c->hl.last_corrupt_reason, sizeof c->hl.last_corrupt_reason, "%s", why);
  c->hl.last_corrupt_at = clock_wall_s();
  pthread_mutex_unlock(&c->mu);
  log_write(LOG_WARNING, "cache: corrupt or foreign record removed", "{s:s, s:s, s:s}", "dir", c->dir, "file", name,
            "reason", why);
}

void ttlcache_health_probe(ttlcache *c) {
  if (!c) return;
  struct stat st;
  char why[sizeof c->hl.reason];
  why[0] = 0;
  int rc = 0;
  if (lstat(c->dir, &st) != 0) {
    int e = errno;
    rc = e == ENOENT ? -EIO : errno_rc(e);
    if (e == ENOENT)
      snprintf(why, sizeof why,
               "the cache directory %s was removed while serving (values written now are lost); recreate it "
               "(mkdir -m 700) and restart the node, see docs/store.md, \"Recovery\"",
               c->dir);
    else
      snprintf(why, sizeof why, "the cache directory %s cannot be reached: %s", c->dir, strerror(e));
  } else if (st.st_dev != c->dev || st.st_ino != c->ino) {
    rc = -EIO;
    snprintf(why, sizeof why,
             "the cache directory %s was replaced by another while serving (the node still uses the old one); "
             "restart the node, see docs/store.md, \"Recovery\"",
             c->dir);
  } else if (faccessat(c->dirfd, ".", W_OK | X_OK, AT_EACCESS) != 0) {
    int e = errno;
    rc = errno_rc(e);
    snprintf(why, sizeof why, "the cache directory %s is not writable any more: %s", c->dir, strerror(e));
  }
  pthread_mutex_lock(&c->mu);
  bool first = rc && !c->hl.down;
  bool healed = !rc && c->hl.down;
  c->hl.down = rc != 0;
  if (rc) {
    snprintf(c->hl.reason, sizeof c->hl.reason, "%s", why);
    if (first) {
      c->hl.last_err = rc;
      c->hl.last_err_at = clock_wall_s();
      c->hl.errors++;
      c->hl.last_err_file[0] = 0;
    }
  } else {
    c->hl.reason[0] = 0;
  }
  pthread_mutex_unlock(&c->mu);
  if (first) log_write(LOG_ERROR, "cache: storage down", "{s:s, s:s}", "dir", c->dir, "reason", why);
  if (healed) log_write(LOG_INFO, "cache: storage usable again", "{s:s}", "dir", c->dir);
}

void ttlcache_health_get(ttlcache *c, ttlcache_health *out) {
  memset(out, 0, sizeof *out);
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  *out = c->hl;
  out->down = c->hl.down || c->failing;
  if (c->failing && !c->hl.down)
    snprintf(out->reason, sizeof out->reason, "the cache file %s/%s: %s", c->dir, c->hl.last_err_file,
             ttlcache_strerror(c->hl.last_err));
  pthread_mutex_unlock(&c->mu);
}

const char *ttlcache_dir(const ttlcache *c) { return c ? c->dir : ""; }

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads the expiry from a record's first bytes: {"created_at":N,"expires_at":null|N,… (sorted
 * keys, as both writers produce). NAN when the prefix has another shape. */
static double head_expiry(int dirfd, const char *name) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return NAN;
  char b[257];
  ssize_t n = pread(fd, b, 256, 0);
  close(fd);
  if (n <= 0) return NAN;
  b[n] = 0;
  if (strncmp(b, "{\"created_at\":", 14) != 0) return NAN;
  char *p = b + 14, *end;
  strtod(p, &end);
  if (end == p || strncmp(end, ",\"expires_at\":", 14) != 0) return NAN;
  p = end + 14;
  if (strncmp(p, "null,", 5) == 0) return 0;
  double x = strtod(p, &end);
  if (end == p || *end != ',' || !isfinite(x) || x <= 0) return NAN;
  return x;
}

/* Unlinks name only if it is still the inode we judged (a writer may have renamed a fresh
 * record over it meanwhile). Caller holds the key's stripe. */
static bool unlink_if_same(ttlcache *c, const char *name, const struct stat *seen) {
  struct stat now;
  if (fstatat(c->dirfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0) return false;
  if (now.st_ino != seen->st_ino || now.st_dev != seen->st_dev) return false;
  return unlinkat(c->dirfd, name, 0) == 0;
}

static int cmp_mtime(const void *a, const void *b) {
  const centry *x = *(centry *const *)a, *y = *(centry *const *)b;
  return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Brings the index in line with the directory: new files added (ordered by mtime), vanished
 * ones dropped, sizes refreshed; stale temp files removed. */
static int scan(ttlcache *c) {
  int fd = dup(c->dirfd);
  if (fd < 0) return errno_rc(errno);
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return errno_rc(errno);
  }
  rewinddir(d);
  pthread_mutex_lock(&c->mu);
  unsigned gen = ++c->gen;
  pthread_mutex_unlock(&c->mu);
  centry **added = NULL;
  size_t n_added = 0, cap_added = 0;
  double now = clock_wall_s();
  struct dirent *de;
  while ((de = readdir(d))) {
    uint8_t h[32];
    struct stat sb;
    if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 ||
        (strlen(de->d_name) == 73 && strcmp(de->d_name + 64, ".json.tmp") == 0)) {
      if (fstatat(c->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && now - (double)sb.st_mtime > TMP_MAX_AGE_S)
        (void)unlinkat(c->dirfd, de->d_name, 0);
      continue;
    }
    if (!parse_name(de->d_name, h)) continue;
    if (fstatat(c->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)) continue;
    pthread_mutex_lock(&c->mu);
    centry *e = idx_find(c, h);
    if (e) {
      c->st.bytes = c->st.bytes - e->size + (uint64_t)sb.st_size;
      e->size = (uint64_t)sb.st_size;
      e->gen = gen;
      pthread_mutex_unlock(&c->mu);
      continue;
    }
    pthread_mutex_unlock(&c->mu);
    double exp = head_expiry(c->dirfd, de->d_name);
    centry *ne = calloc(1, sizeof *ne);
    if (!ne) break;
    memcpy(ne->h, h, 32);
    ne->size = (uint64_t)sb.st_size;
    ne->expires_at = exp;
    ne->mtime = (double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec / 1e9;
    if (n_added == cap_added) {
      size_t nc = cap_added ? cap_added * 2 : 256;
      centry **p = realloc(added, nc * sizeof *p);
      if (!p) {
        free(ne);
        break;
      }
      added = p;
      cap_added = nc;
    }
    added[n_added++] = ne;
  }
  closedir(d);
  if (n_added > 1) qsort(added, n_added, sizeof *added, cmp_mtime);
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < n_added; i++) {
    centry *ne = added[i];
    if (!idx_find(c, ne->h)) {
      size_t b = bucket_of(c, ne->h);
      ne->hnext = c->bucket[b];
      c->bucket[b] = ne;
      ne->gen = gen;
      c->st.entries++;
      c->st.bytes += ne->size;
      /* older files go toward the tail: insert at the front in mtime order */
      lru_front(c, ne);
    } else {
      free(ne);
    }
  }
  /* entries whose file vanished (another process deleted them) */
  for (centry *e = c->tail; e;) {
    centry *prev = e->prev;
    if (e->gen != gen && (int)(gen - e->gen) > 0) idx_remove(c, e);
    e = prev;
  }
  pthread_mutex_unlock(&c->mu);
  free(added);
  return 0;
}

/* ---- open / close ---- */

static int mkdirs(const char *path) {
  char *p = strdup(path);
  if (!p) return -ENOMEM;
  for (char *s = p + 1;; s++) {
    bool end = *s == 0;
    if (*s == '/' || end) {
      *s = 0;
      if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        int e = errno_rc(errno);
        free(p);
        return e;
      }
      if (end) break;
      *s = '/';
    }
  }
  free(p);
  return 0;
}

int ttlcache_open(const ttlcache_options *o, ttlcache **out) {
  *out = NULL;
  if (!o || !o->dir || !*o->dir) return -EINVAL;
  if (sodium_init() < 0) return -EIO;
  int rc = mkdirs(o->dir);
  if (rc < 0) {
    log_write(LOG_ERROR, "cache: cannot create directory", "{s:s, s:s}", "dir", o->dir, "error", ttlcache_strerror(rc));
    return rc;
  }
  ttlcache *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->o = *o;
  if (!c->o.max_bytes) c->o.max_bytes = 268435456;
  if (!c->o.max_entries) c->o.max_entries = 100000;
  if (!c->o.max_value_bytes) c->o.max_value_bytes = 1048576;
  if (!(c->o.default_ttl_seconds >= 0) || c->o.default_ttl_seconds > TTLCACHE_MAX_TTL_SECONDS)
    c->o.default_ttl_seconds = 0;
  c->dir = strdup(o->dir);
  c->o.dir = c->dir;
  c->nbucket = 1024;
  while (c->nbucket < c->o.max_entries && c->nbucket < (1u << 20)) c->nbucket <<= 1;
  c->bucket = calloc(c->nbucket, sizeof *c->bucket);
  c->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW); /* a planted symlink is refused */
  if (!c->dir || !c->bucket || c->dirfd < 0) {
    rc = c->dirfd < 0 && c->dir && c->bucket ? errno_rc(errno) : -ENOMEM;
    if (c->dirfd >= 0) close(c->dirfd);
    free(c->bucket);
    free(c->dir);
    free(c);
    return rc;
  }
  pthread_mutex_init(&c->mu, NULL);
  for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&c->stripe[i], NULL);
  struct stat dst;
  if (fstat(c->dirfd, &dst) == 0) { /* ttlcache_health_probe notices a removed or replaced directory */
    c->dev = dst.st_dev;
    c->ino = dst.st_ino;
  }
  c->st.max_bytes = c->o.max_bytes;
  c->st.max_entries = c->o.max_entries;
  rc = scan(c);
  if (rc < 0) {
    ttlcache_close(c);
    return rc;
  }
  *out = c;
  cm_publish(c);
  return 0;
}

void ttlcache_close(ttlcache *c) {
  if (!c) return;
  metrics_gauge_add(&g_cache_bytes, 0, -(int64_t)c->pub_bytes);
  metrics_gauge_add(&g_cache_entries, 0, -(int64_t)c->pub_entries);
  for (size_t i = 0; i < c->nbucket; i++) {
    centry *e = c->bucket[i];
    while (e) {
      centry *n = e->hnext;
      free(e);
      e = n;
    }
  }
  free(c->bucket);
  close(c->dirfd);
  pthread_mutex_destroy(&c->mu);
  for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&c->stripe[i]);
  free(c->dir);
  free(c);
}

/* ---- read ---- */

typedef enum { R_HIT, R_MISS, R_EXPIRED, R_CORRUPT } read_kind;

/* Reads and checks the record of key. On R_HIT *value is a new reference (if value != NULL). */
static int read_record(ttlcache *c, const char *key, const uint8_t h[32], const char *name, json_t **value,
                       read_kind *kind, struct stat *seen, double *exp_out, const char **why) {
  *kind = R_MISS;
  *why = NULL;
  int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    if (errno == ELOOP) {
      *kind = R_CORRUPT; /* a symlink is foreign */
      *why = "symbolic link";
      return fstatat(c->dirfd, name, seen, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno_rc(errno);
    }
    return errno_rc(errno);
  }
  int rc = 0;
  if (fstat(fd, seen) != 0) {
    rc = errno_rc(errno);
    goto out;
  }
  if (!S_ISREG(seen->st_mode)) goto out; /* not ours to judge: a miss */
  if ((uint64_t)seen->st_size > c->o.max_value_bytes + RECORD_OVERHEAD) {
    log_write(LOG_WARNING, "cache: record over the size cap, ignored", "{s:s, s:I}", "file", name,
              "bytes", (json_int_t)seen->st_size);
    goto out;
  }
  size_t n = (size_t)seen->st_size;
  char *b = malloc(n + 1);
  if (!b) {
    rc = -ENOMEM;
    goto out;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, b + got, n - got, (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  bool oom = false;
  json_t *rec = got == n ? alloc_json_loadb(b, n, JSON_ALLOW_NUL, NULL, &oom) : NULL;
  free(b);
  if (oom) { /* our failure: the record is not corrupt, and must not be removed as such */
    rc = -ENOMEM;
    goto out;
  }
  json_t *k = json_object_get(rec, "key"), *ex = json_object_get(rec, "expires_at"),
         *v = json_object_get(rec, "value");
  if (!json_is_object(rec) || !json_is_string(k) || strcmp(json_string_value(k), key) != 0 ||
      !(json_is_null(ex) || json_is_number(ex)) || !v) {
    *kind = R_CORRUPT;
    *why = got != n                                         ? "short read"
           : !rec                                           ? "not JSON"
           : !json_is_object(rec)                           ? "not a JSON object"
           : !json_is_string(k)                             ? "no key"
           : strcmp(json_string_value(k), key) != 0         ? "another key (foreign record)"
                                                            : "bad expires_at or no value";
  } else {
    double exp = json_is_null(ex) ? 0 : json_number_value(ex);
    *exp_out = exp;
    if (exp > 0 && clock_wall_s() >= exp) {
      *kind = R_EXPIRED;
    } else {
      *kind = R_HIT;
      if (value) *value = json_incref(v);
    }
  }
  json_decref(rec);
  (void)h;
out:
  close(fd);
  return rc;
}

static int lookup(ttlcache *c, const char *key, json_t **value, bool *hit) {
  int rc = key_ok(key);
  if (rc) return rc;
  uint8_t h[32];
  char name[70];
  hash_key(key, h);
  hex_name(h, name);
  read_kind kind;
  struct stat seen;
  double exp = 0;
  const char *why = NULL;
  rc = read_record(c, key, h, name, value, &kind, &seen, &exp, &why);
  health_note(c, name, rc);
  if (rc) return rc;
  if (kind == R_EXPIRED || kind == R_CORRUPT) {
    pthread_mutex_t *s = stripe_of(c, h);
    pthread_mutex_lock(s);
    bool removed = unlink_if_same(c, name, &seen);
    pthread_mutex_unlock(s);
    if (removed) {
      if (kind == R_CORRUPT) corrupt_removed(c, name, why ? why : "corrupt");
      idx_forget(c, h);
    }
    pthread_mutex_lock(&c->mu);
    if (removed && kind == R_EXPIRED) c->st.expired++;
    c->st.misses++;
    pthread_mutex_unlock(&c->mu);
    *hit = false;
    return 0;
  }
  pthread_mutex_lock(&c->mu);
  if (kind == R_HIT) {
    c->st.hits++;
    (void)idx_put(c, h, (uint64_t)seen.st_size, exp);
  } else {
    c->st.misses++;
    centry *e = idx_find(c, h);
    if (e) idx_remove(c, e);
  }
  pthread_mutex_unlock(&c->mu);
  *hit = kind == R_HIT;
  return 0;
}

int ttlcache_get(ttlcache *c, const char *key, json_t **value) {
  *value = NULL;
  bool hit;
  int rc = lookup(c, key, value, &hit);
  cm_record(CM_GET, rc ? CO_ERROR : hit ? CO_HIT : CO_MISS);
  cm_publish(c); /* a read may drop an expired or corrupt entry */
  if (rc) return rc;
  return hit ? 0 : -ENOENT;
}

int ttlcache_has(ttlcache *c, const char *key, bool *hit) {
  *hit = false;
  int rc = lookup(c, key, NULL, hit);
  cm_record(CM_HAS, rc ? CO_ERROR : *hit ? CO_HIT : CO_MISS);
  cm_publish(c);
  return rc;
}

/* ---- write ---- */

/* Evicts from the LRU tail until under the limits, never `keep`. Unlinks outside c->mu. */
static void enforce_limits(ttlcache *c, const uint8_t keep[32]) {
  for (;;) {
    uint8_t victim[32];
    pthread_mutex_lock(&c->mu);
    bool over = c->st.bytes > c->o.max_bytes || c->st.entries > c->o.max_entries;
    centry *e = c->tail;
    while (e && keep && memcmp(e->h, keep, 32) == 0) e = e->prev;
    if (!over || !e) {
      pthread_mutex_unlock(&c->mu);
      return;
    }
    memcpy(victim, e->h, 32);
    idx_remove(c, e);
    c->st.evictions++;
    pthread_mutex_unlock(&c->mu);
    char name[70];
    hex_name(victim, name);
    pthread_mutex_t *s = stripe_of(c, victim);
    pthread_mutex_lock(s);
    pthread_mutex_lock(&c->mu);
    bool rewritten = idx_find(c, victim) != NULL; /* a set of that key landed meanwhile */
    pthread_mutex_unlock(&c->mu);
    if (!rewritten) (void)unlinkat(c->dirfd, name, 0);
    pthread_mutex_unlock(s);
  }
}

static int set_impl(ttlcache *c, const char *key, json_t *value, const double *ttl_s);

int ttlcache_set(ttlcache *c, const char *key, json_t *value, const double *ttl_s) {
  int rc = set_impl(c, key, value, ttl_s);
  cm_record(CM_SET, rc ? CO_ERROR : CO_OK);
  cm_publish(c);
  return rc;
}

static int set_impl(ttlcache *c, const char *key, json_t *value, const double *ttl_s) {
  int rc = key_ok(key);
  if (rc) return rc;
  if (!value) return -EINVAL;
  double ttl = ttl_s ? *ttl_s : c->o.default_ttl_seconds;
  if (!isfinite(ttl) || ttl < 0 || ttl > TTLCACHE_MAX_TTL_SECONDS) return -EINVAL;
  double now = clock_wall_s();
  double exp = ttl > 0 ? now + ttl : 0;
  /* the record, as cache_store.py writes it: sorted keys, compact, UTF-8 */
  buf b;
  buf_init(&b, c->o.max_value_bytes + RECORD_OVERHEAD);
  char num[32];
  json_t *k = json_string(key);
  rc = k ? 0 : -ENOMEM;
  pyjson_float_repr(now, num);
  if (!rc) rc = buf_append(&b, "{\"created_at\":", 14);
  if (!rc) rc = buf_append(&b, num, strlen(num));
  if (!rc) rc = buf_append(&b, ",\"expires_at\":", 14);
  if (exp > 0) pyjson_float_repr(exp, num);
  else snprintf(num, sizeof num, "null");
  if (!rc) rc = buf_append(&b, num, strlen(num));
  if (!rc) rc = buf_append(&b, ",\"key\":", 7);
  if (!rc) rc = pyjson_dump(k, PYJSON_COMPACT_UTF8, &b);
  if (!rc) rc = buf_append(&b, ",\"value\":", 9);
  size_t vstart = buf_len(&b);
  if (!rc) rc = pyjson_dump(value, PYJSON_COMPACT_UTF8, &b);
  if (!rc && buf_len(&b) - vstart > c->o.max_value_bytes) rc = -E2BIG;
  if (!rc) rc = buf_append_byte(&b, '}');
  json_decref(k);
  if (!rc && buf_len(&b) > c->o.max_bytes) rc = -E2BIG;
  if (rc) {
    buf_free(&b);
    return rc;
  }
  uint8_t h[32];
  char name[70], tmp[128];
  hash_key(key, h);
  hex_name(h, name);
  unsigned char r[8];
  randombytes_buf(r, sizeof r);
  snprintf(tmp, sizeof tmp, TMP_PREFIX "%.16s-%02x%02x%02x%02x%02x%02x%02x%02x", name, r[0], r[1], r[2], r[3],
           r[4], r[5], r[6], r[7]);
  pthread_mutex_t *s = stripe_of(c, h);
  pthread_mutex_lock(s);
  int fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    rc = errno == ENOENT ? -EIO : errno_rc(errno); /* ENOENT: the directory itself was removed */
    goto out;
  }
  rc = write_all(fd, buf_ptr(&b), buf_len(&b));
  if (rc == 0 && c->o.durable && fsync(fd) != 0) rc = -errno;
  if (close(fd) != 0 && rc == 0) rc = -errno;
  if (rc == 0 && renameat(c->dirfd, tmp, c->dirfd, name) != 0) rc = -errno;
  if (rc) {
    (void)unlinkat(c->dirfd, tmp, 0);
    rc = errno_rc(-rc);
    goto out;
  }
  if (c->o.durable && fsync(c->dirfd) != 0) {
    rc = errno_rc(errno);
    goto out;
  }
  pthread_mutex_lock(&c->mu);
  (void)idx_put(c, h, buf_len(&b), exp);
  c->st.sets++;
  pthread_mutex_unlock(&c->mu);
out:
  pthread_mutex_unlock(s);
  buf_free(&b);
  health_note(c, name, rc == -E2BIG || rc == -EINVAL ? 0 : rc);
  if (rc == 0) enforce_limits(c, h);
  else log_write(LOG_WARNING, "cache: write failed", "{s:s, s:s}", "file", name, "error", ttlcache_strerror(rc));
  return rc;
}

int ttlcache_delete(ttlcache *c, const char *key, bool *deleted) {
  *deleted = false;
  int rc = key_ok(key);
  if (rc) {
    cm_record(CM_DELETE, CO_ERROR);
    return rc;
  }
  uint8_t h[32];
  char name[70];
  hash_key(key, h);
  hex_name(h, name);
  pthread_mutex_t *s = stripe_of(c, h);
  pthread_mutex_lock(s);
  if (unlinkat(c->dirfd, name, 0) == 0) {
    *deleted = true;
    if (c->o.durable && fsync(c->dirfd) != 0) rc = errno_rc(errno);
  } else if (errno != ENOENT) {
    rc = errno_rc(errno);
  }
  pthread_mutex_unlock(s);
  health_note(c, name, rc);
  pthread_mutex_lock(&c->mu);
  centry *e = idx_find(c, h);
  if (e) idx_remove(c, e);
  if (*deleted) c->st.deletes++;
  pthread_mutex_unlock(&c->mu);
  cm_record(CM_DELETE, rc ? CO_ERROR : *deleted ? CO_OK : CO_MISS);
  cm_publish(c);
  return rc;
}

/* ---- sweep ---- */

static int sweep_impl(ttlcache *c, size_t *removed);

int ttlcache_sweep(ttlcache *c, size_t *removed) {
  int rc = sweep_impl(c, removed);
  cm_record(CM_SWEEP, rc < 0 ? CO_ERROR : CO_OK);
  cm_publish(c);
  return rc;
}

static int sweep_impl(ttlcache *c, size_t *removed) {
  size_t n = 0;
  int rc = scan(c);
  if (rc < 0) return rc;
  double now = clock_wall_s();
  /* collect candidates under the lock, judge each under its stripe */
  pthread_mutex_lock(&c->mu);
  size_t cap = (size_t)c->st.entries, k = 0;
  uint8_t(*cand)[32] = cap ? malloc(cap * 32) : NULL;
  for (centry *e = c->head; e && cand && k < cap; e = e->next)
    if (isnan(e->expires_at) || (e->expires_at > 0 && e->expires_at <= now)) memcpy(cand[k++], e->h, 32);
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < k; i++) {
    char name[70];
    hex_name(cand[i], name);
    pthread_mutex_t *s = stripe_of(c, cand[i]);
    pthread_mutex_lock(s);
    double exp = head_expiry(c->dirfd, name);
    bool gone = false;
    if (isnan(exp)) {
      /* unknown shape: a full read decides (hit, expired or corrupt); needs the key, which
       * only the record has — a record without a readable key is corrupt */
      int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      struct stat sb;
      json_t *rec = NULL;
      bool judged = fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
                    (uint64_t)sb.st_size <= c->o.max_value_bytes + RECORD_OVERHEAD;
      bool oom = false;
      if (judged) rec = alloc_json_loadfd(fd, JSON_ALLOW_NUL, NULL, &oom);
      if (fd >= 0) close(fd);
      if (oom) judged = false; /* unknown, not corrupt: keep the file, judge it next sweep */
      json_t *key = json_object_get(rec, "key");
      uint8_t hh[32];
      bool ok = json_is_string(key) && (hash_key(json_string_value(key), hh), memcmp(hh, cand[i], 32) == 0);
      json_t *ex = json_object_get(rec, "expires_at");
      if (ok && json_is_number(ex)) exp = json_number_value(ex);
      else if (ok && json_is_null(ex)) exp = 0;
      if (judged && (!ok || !(json_is_null(ex) || json_is_number(ex)) || !json_object_get(rec, "value"))) {
        if (unlinkat(c->dirfd, name, 0) == 0) {
          gone = true;
          corrupt_removed(c, name, !rec ? "not JSON" : !ok ? "no key or another key" : "bad expires_at or no value");
        }
      }
      json_decref(rec);
    }
    if (!gone && !isnan(exp) && exp > 0 && exp <= now && unlinkat(c->dirfd, name, 0) == 0) {
      gone = true;
      pthread_mutex_lock(&c->mu);
      c->st.expired++;
      pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_lock(&c->mu);
    centry *e = idx_find(c, cand[i]);
    if (e) {
      if (gone) idx_remove(c, e);
      else e->expires_at = isnan(exp) ? 0 : exp;
    }
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(s);
    if (gone) n++;
  }
  free(cand);
  enforce_limits(c, NULL);
  if (removed) *removed = n;
  return 0;
}

void ttlcache_stats_get(ttlcache *c, ttlcache_stats *out) {
  pthread_mutex_lock(&c->mu);
  *out = c->st;
  pthread_mutex_unlock(&c->mu);
}

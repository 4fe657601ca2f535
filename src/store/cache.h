/* cache.h — the shared disk TTL cache (DiskTTLCache, p2p_tasks_spec.md §6, fixes of §12.18).
 *
 * Owns: one flat directory of files <sha256_hex(key)>.json, each holding
 * {"created_at":float,"expires_at":float|null,"key":str,"value":any} (sorted keys, compact) —
 * the layout cache_store.py reads and writes, so both can share a directory — plus an
 * in-memory index (size, expiry, LRU order) used for limits, eviction and stats.
 *
 * Guarantees:
 *  - writes are atomic: unique temp file, fsync, rename, fsync of the directory; a reader sees
 *    the old record or the new one, never a torn one;
 *  - the stored key is checked on read; a corrupt or foreign file is a miss and is removed;
 *  - total bytes and entry count are bounded; past them the least recently used entries are
 *    evicted (recency is this process's reads and writes; files found at open are ordered by
 *    mtime);
 *  - expired entries are removed lazily on read and by ttlcache_sweep, which the owner calls
 *    periodically (sweep_interval_seconds, from a worker thread — it does file I/O).
 *
 * Threads: every function is thread-safe and does blocking file I/O — never call on the
 * event-loop thread. Values passed in are borrowed; values returned are new references.
 *
 * Errors: -EINVAL (empty / over-long / invalid UTF-8 key, bad TTL), -E2BIG (value over
 * max_value_bytes or over max_bytes), -ENOSPC, -EROFS / -EACCES, -EIO, -ENOMEM. */
#ifndef PEERMCP_STORE_CACHE_H
#define PEERMCP_STORE_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ttlcache ttlcache;

#define TTLCACHE_MAX_KEY_BYTES 4096
#define TTLCACHE_MAX_TTL_SECONDS (10.0 * 365 * 86400) /* a TTL above this is -EINVAL */

typedef struct ttlcache_options {
  const char *dir;             /* required; created (0700) if missing */
  uint64_t max_bytes;          /* 268435456: sum of file sizes */
  size_t max_entries;          /* 100000 */
  size_t max_value_bytes;      /* 1048576: the serialised value */
  double default_ttl_seconds;  /* 0 = never expires (used when set is given no TTL) */
  double sweep_interval_seconds; /* 60: advice to the owner, see ttlcache_sweep */
  bool durable;                /* true: fsync file and directory on every write */
} ttlcache_options;

void ttlcache_options_default(ttlcache_options *o);

/* Opens the directory and indexes the files already there (reads each file's first bytes for
 * its expiry). Stale temp files are removed. */
int ttlcache_open(const ttlcache_options *o, ttlcache **out) __attribute__((warn_unused_result));
void ttlcache_close(ttlcache *c);

/* 0 and *value (new reference, may be JSON null) on a hit; -ENOENT on a miss (missing,
 * expired, corrupt, foreign); other negatives on errors. */
int ttlcache_get(ttlcache *c, const char *key, json_t **value) __attribute__((warn_unused_result));
/* *hit: a live entry exists (a stored null counts as a hit). */
int ttlcache_has(ttlcache *c, const char *key, bool *hit) __attribute__((warn_unused_result));
/* ttl_s NULL = default_ttl_seconds; *ttl_s == 0 = never expires; > 0 = expires after;
 * negative, NaN or above TTLCACHE_MAX_TTL_SECONDS = -EINVAL. Durable on return. */
int ttlcache_set(ttlcache *c, const char *key, json_t *value, const double *ttl_s)
    __attribute__((warn_unused_result));
/* *deleted: a file existed and was removed. */
int ttlcache_delete(ttlcache *c, const char *key, bool *deleted) __attribute__((warn_unused_result));

/* Removes expired entries (and re-applies the limits). *removed may be NULL. */
int ttlcache_sweep(ttlcache *c, size_t *removed) __attribute__((warn_unused_result));

typedef struct ttlcache_stats {
  uint64_t hits, misses, sets, deletes;
  uint64_t evictions;  /* removed by the size / count limits */
  uint64_t expired;    /* removed because their TTL passed */
  uint64_t corrupt;    /* corrupt or foreign files removed */
  uint64_t bytes;      /* current total file bytes */
  uint64_t entries;    /* current entries */
  uint64_t max_bytes, max_entries;
} ttlcache_stats;
void ttlcache_stats_get(ttlcache *c, ttlcache_stats *out);

/* Health (issue 9 item 10: reported, not hidden). A read, write or delete that fails on the
 * disk (-EIO, -ENOSPC, -EROFS, -EACCES) makes the cache `down` until one succeeds again, with
 * the file; ttlcache_health_probe makes it down while the directory is removed, replaced or not
 * writable. Corrupt or foreign records do not (the rest still serves): they are a miss for the
 * reader, removed, logged, counted (stats.corrupt) and the last one is kept here. Strings are
 * "" when nothing happened. Thread-safe. */
typedef struct ttlcache_health {
  bool down;
  char reason[320];             /* while down: one line naming the directory or file */
  int last_err;                 /* the last storage error (0 = none since open) */
  double last_err_at;           /* Unix seconds */
  uint64_t errors;
  char last_err_file[72];       /* the file it concerned ("" = the directory) */
  char last_corrupt_file[72];   /* the last corrupt record removed, */
  char last_corrupt_reason[48]; /* why ("not JSON", "another key (foreign record)", …) */
  double last_corrupt_at;       /* and when */
} ttlcache_health;
void ttlcache_health_get(ttlcache *c, ttlcache_health *out);
/* Looks at the directory (lstat, identity, writable): blocking but small; the node calls it
 * every 5 s. */
void ttlcache_health_probe(ttlcache *c);
const char *ttlcache_dir(const ttlcache *c);

/* The file name a key maps to: 64 hex + ".json" + NUL. */
void ttlcache_key_filename(const char *key, char out[70]);

/* Reply string for an error code ("value_too_large", "invalid_ttl", "disk_full", …). */
const char *ttlcache_strerror(int rc);

#endif

/* alloc.h — jansson's allocations, and telling "out of memory" from "bad input".
 *
 * jansson is not safe against a failed allocation in two places, and blurs it elsewhere:
 *  - parsing: an allocation that fails while it lexes a long string or number corrupts
 *    memory (akheron/jansson#362, open in 2.14), and any other one is reported as a syntax
 *    error ("invalid token"), so a caller would blame the peer's bytes;
 *  - dumping: an allocation that fails while it dumps an object key is ignored and the text
 *    loses characters (akheron/jansson#655);
 *  - building: json_object_set_new() & co. fail quietly, so a result may lack a field.
 * util/alloc.c is jansson's allocator (installed before main() by a constructor, and by
 * alloc_json_hook()). It keeps a per-thread sticky flag (SQLite's mallocFailed) that a caller
 * watches over a stretch of jansson calls, and it serves the allocations of a parse that malloc
 * refuses from a fallback arena, so that jansson never sees NULL while it lexes:
 *
 *     bool oom;
 *     json_t *v = alloc_json_loadb(p, n, 0, &err, &oom);   // instead of json_loadb
 *     if (oom) return -ENOMEM;                             // whatever the text was
 *     if (!v) return -EINVAL;
 *
 *     alloc_watch w = alloc_watch_begin();
 *     json_t *r = json_pack(…); json_object_set_new(r, …); …
 *     if (alloc_watch_end(w)) { json_decref(r); return NULL; }   // never a partial result
 *
 *     char *text = alloc_json_dumps(r, flags);             // instead of json_dumps
 *
 * Watches nest: a failure inside an inner watch is seen by the outer one too.
 * Threads: the flag is per thread; the arena is shared under a mutex (it is only used when
 * malloc fails); every function is safe from any thread. */
#ifndef PEERMCP_UTIL_ALLOC_H
#define PEERMCP_UTIL_ALLOC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Bytes of the fallback arena for parses (a parse that needs more when malloc fails gets NULL
 * from the arena too, and jansson's own handling applies). */
#define ALLOC_JSON_ARENA_BYTES (256u * 1024u)

/* Routes jansson's allocations through this module (idempotent; before any jansson call).
 * Small blocks freed by a thread are kept in a per-thread cache and reused (alloc.c). */
void alloc_json_hook(void);
/* Gives the calling thread's cached blocks back to malloc (threads do it when they exit). */
void alloc_json_cache_drain(void);
/* Turns the cache off for the whole process (and drains the calling thread's): every jansson
 * block then goes straight to malloc and free. For allocation-failure tests, which must see
 * each allocation fail and each block freed (tests/support/failmalloc.c). */
void alloc_json_cache_off(void);

/* The calling thread's flag: true when a jansson allocation failed since it was last cleared. */
bool alloc_oom_seen(void);
void alloc_oom_set(bool failed);

typedef struct alloc_watch {
  bool outer; /* the flag when the watch began */
} alloc_watch;

/* Starts watching (clears the flag, remembering it). */
static inline alloc_watch alloc_watch_begin(void) {
  alloc_watch w = {alloc_oom_seen()};
  alloc_oom_set(false);
  return w;
}
/* True when a jansson allocation failed since alloc_watch_begin(w); the flag then holds what
 * the outer watch must see. */
static inline bool alloc_watch_end(alloc_watch w) {
  bool failed = alloc_oom_seen();
  alloc_oom_set(w.outer || failed);
  return failed;
}

/* json_loadb() / json_loads() that survive a failed allocation: the parse completes on the
 * fallback arena and its result is thrown away. NULL with *oom true when memory ran short
 * (err says nothing then); otherwise exactly what jansson returns, *oom false. */
json_t *alloc_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err, bool *oom);
json_t *alloc_json_loads(const char *text, size_t flags, json_error_t *err, bool *oom);
json_t *alloc_json_loadfd(int fd, size_t flags, json_error_t *err, bool *oom);

/* json_dumps() that never hands out damaged text: NULL when any allocation failed; free()
 * the text. */
char *alloc_json_dumps(const json_t *json, size_t flags);

#endif

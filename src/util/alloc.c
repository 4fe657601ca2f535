/* alloc.c — jansson's allocator: a per-thread out-of-memory flag, and a fallback arena for
 * parses (see alloc.h).
 *
 * The arena is a bump allocator over a static block: it hands out 16-byte aligned pieces while
 * a parse runs and malloc refuses, counts them, and starts over when the last one is freed
 * (a parse that ran short is always thrown away whole, so that happens at once). */
#include "util/alloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/check.h"

static _Thread_local bool t_oom;
static _Thread_local int t_parsing; /* inside alloc_json_load*: the arena may serve */

static pthread_mutex_t g_arena_mu = PTHREAD_MUTEX_INITIALIZER;
static _Alignas(16) unsigned char g_arena[ALLOC_JSON_ARENA_BYTES];
static size_t g_arena_used; /* bytes handed out since the arena was last empty */
static size_t g_arena_live; /* pieces not yet freed */

static bool arena_owns(const void *p) {
  return (const unsigned char *)p >= g_arena && (const unsigned char *)p < g_arena + sizeof g_arena;
}

static void *arena_alloc(size_t n) {
  size_t need = (n + 15u) & ~(size_t)15u;
  if (need < n) return NULL;
  void *p = NULL;
  pthread_mutex_lock(&g_arena_mu);
  if (need <= sizeof g_arena - g_arena_used) {
    p = g_arena + g_arena_used;
    g_arena_used += need;
    g_arena_live++;
  }
  pthread_mutex_unlock(&g_arena_mu);
  return p;
}

static void arena_free(void *p) {
  pthread_mutex_lock(&g_arena_mu);
  /* invariant: every piece freed here was handed out and not freed before */
  CHECK(g_arena_live > 0);
  if (g_arena_live > 0 && --g_arena_live == 0) g_arena_used = 0;
  pthread_mutex_unlock(&g_arena_mu);
}

static void *alloc_json_malloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    t_oom = true;
    if (t_parsing) p = arena_alloc(n); /* jansson must not see NULL while it lexes */
  }
  return p;
}

static void alloc_json_free(void *p) {
  if (arena_owns(p)) arena_free(p);
  else free(p);
}

/* jansson must not have allocated before its allocator changes: run before main(). */
__attribute__((constructor)) static void alloc_json_hook_at_load(void) { alloc_json_hook(); }

void alloc_json_hook(void) { json_set_alloc_funcs(alloc_json_malloc, alloc_json_free); }
bool alloc_oom_seen(void) { return t_oom; }
void alloc_oom_set(bool failed) { t_oom = failed; }

/* Runs one parse with the arena on; the result is dropped when memory ran short. */
static json_t *load_done(json_t *v, alloc_watch w, bool *oom) {
  t_parsing--;
  *oom = alloc_watch_end(w);
  if (*oom) {
    json_decref(v); /* frees its arena pieces too */
    return NULL;
  }
  return v;
}

json_t *alloc_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err, bool *oom) {
  alloc_watch w = alloc_watch_begin();
  t_parsing++;
  return load_done(json_loadb(buf, len, flags, err), w, oom);
}

json_t *alloc_json_loads(const char *text, size_t flags, json_error_t *err, bool *oom) {
  alloc_watch w = alloc_watch_begin();
  t_parsing++;
  return load_done(json_loads(text, flags, err), w, oom);
}

json_t *alloc_json_loadfd(int fd, size_t flags, json_error_t *err, bool *oom) {
  alloc_watch w = alloc_watch_begin();
  t_parsing++;
  return load_done(json_loadfd(fd, flags, err), w, oom);
}

char *alloc_json_dumps(const json_t *json, size_t flags) {
  alloc_watch w = alloc_watch_begin();
  char *text = json_dumps(json, flags);
  if (alloc_watch_end(w)) {
    free(text);
    return NULL;
  }
  return text;
}

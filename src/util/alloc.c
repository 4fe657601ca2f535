/* alloc.c — jansson's allocator: a per-thread out-of-memory flag, a per-thread cache of small
 * blocks, and a fallback arena for parses (see alloc.h).
 *
 * The cache: a jansson tree is many small blocks (a tools/call request ~25, each value, key and
 * string one), made and freed together once per message. glibc's per-thread cache holds 7
 * blocks of a size, so a tree overflowed it and every free took _int_free's slow path (callgrind:
 * ~4 k instructions of each ~18 k tools/call were malloc/free). Here a freed block of at most
 * 256 usable bytes goes onto the freeing thread's list for its class — usable size / 16, from
 * malloc_usable_size(), so the blocks stay plain malloc blocks (jansson hands some to callers,
 * who free() them: json_dumps) — at most CACHE_PER_CLASS per class (~0.5 MiB per thread at
 * worst), to be handed out again without malloc: a request of n bytes takes a block from class
 * ceil(n / 16), whose blocks all have at least that much room, and a new block is malloc'd at
 * that class's size so it comes back to the same class. A thread's lists are given back when
 * it exits (a pthread key's destructor).
 *
 * The arena is a bump allocator over a static block: it hands out 16-byte aligned pieces while
 * a parse runs and malloc refuses, counts them, and starts over when the last one is freed
 * (a parse that ran short is always thrown away whole, so that happens at once). Its pieces
 * are not malloc blocks: arena_owns() is asked first. */
#include "util/alloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"

static _Thread_local bool t_oom;
static _Thread_local int t_parsing; /* inside alloc_json_load*: the arena may serve */

#define CLASS_STEP 16u
#define NCLASS 16u /* classes 1..16: blocks of 16..256 bytes */
#define CACHE_PER_CLASS 128u

typedef struct block_cache {
  void *head[NCLASS + 1];
  unsigned n[NCLASS + 1];
  bool keyed; /* the exit destructor is registered for this thread */
} block_cache;

static _Thread_local block_cache t_cache;
static pthread_key_t g_cache_key;
static pthread_once_t g_cache_once = PTHREAD_ONCE_INIT;
static bool g_cache_key_ok;
static _Atomic bool g_cache_off; /* alloc_json_cache_off(): every block straight to malloc/free */

static void cache_drain(block_cache *c) {
  for (unsigned k = 1; k <= NCLASS; k++) {
    while (c->head[k]) {
      void *p = c->head[k];
      memcpy(&c->head[k], p, sizeof(void *));
      free(p);
    }
    c->n[k] = 0;
  }
}

static void cache_thread_exit(void *arg) {
  block_cache *c = arg;
  cache_drain(c);
  c->keyed = false; /* a later key destructor that frees a block registers the list again */
}
static void cache_key_init(void) { g_cache_key_ok = pthread_key_create(&g_cache_key, cache_thread_exit) == 0; }

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
  unsigned k = n && n <= NCLASS * CLASS_STEP && !atomic_load_explicit(&g_cache_off, memory_order_relaxed)
                   ? (unsigned)((n + CLASS_STEP - 1) / CLASS_STEP)
                   : 0;
  block_cache *c = &t_cache;
  if (k && c->head[k]) {
    void *p = c->head[k];
    memcpy(&c->head[k], p, sizeof(void *));
    c->n[k]--;
    return p;
  }
  void *p = malloc(k ? k * CLASS_STEP : n);
  if (!p) {
    t_oom = true;
    return t_parsing ? arena_alloc(n) : NULL; /* jansson must not see NULL while it lexes */
  }
  return p;
}

static void alloc_json_free(void *p) {
  if (!p) return;
  if (arena_owns(p)) {
    arena_free(p);
    return;
  }
  if (atomic_load_explicit(&g_cache_off, memory_order_relaxed)) {
    free(p);
    return;
  }
  size_t usable = malloc_usable_size(p);
  unsigned k = usable >= CLASS_STEP ? (unsigned)(usable / CLASS_STEP) : 0; /* every block here has room for k * 16 */
  block_cache *c = &t_cache;
  if (k && k <= NCLASS && c->n[k] < CACHE_PER_CLASS) {
    if (!c->keyed) { /* first block this thread keeps: give its list back when it exits */
      pthread_once(&g_cache_once, cache_key_init);
      if (!g_cache_key_ok || pthread_setspecific(g_cache_key, c) != 0) {
        free(p);
        return;
      }
      c->keyed = true;
    }
    memcpy(p, &c->head[k], sizeof(void *));
    c->head[k] = p;
    c->n[k]++;
    return;
  }
  free(p);
}

void alloc_json_cache_drain(void) { cache_drain(&t_cache); }

void alloc_json_cache_off(void) {
  atomic_store(&g_cache_off, true);
  cache_drain(&t_cache);
}

/* jansson must not have allocated before its allocator changes: run before main().
 * Also: at most two malloc arenas. glibc gives each thread that allocates an arena of its own
 * (up to 8 per core), ~140-450 KiB of resident memory each for peermcp's pool threads — over a
 * tenth of the server's RSS — while the allocations that count are the loop thread's, and
 * jansson's small blocks are cached per thread above (bench/RESULTS.md, MCP: peak RSS). */
__attribute__((constructor)) static void alloc_json_hook_at_load(void) {
  alloc_json_hook();
  mallopt(M_ARENA_MAX, 2);
}

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

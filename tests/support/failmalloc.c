/* failmalloc.c — allocation-failure injection (see failmalloc.h).
 *
 * The __wrap_* functions replace malloc & co. in a test executable linked with
 * -Wl,--wrap=<fn>; __real_<fn> is the libc (or ASan) function underneath. A live-allocation
 * table (open addressing, linear probing, backward-shift deletion) tracks what the armed thread
 * allocates; it is allocated with __real_malloc and guarded by a mutex, since any thread frees. */
#include "failmalloc.h"

#include "util/alloc.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__) && __has_include(<sanitizer/lsan_interface.h>)
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#define FM_HAVE_LSAN 1
#endif

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

/* ---- state of the armed thread ---- */
static _Thread_local bool t_armed;
static _Thread_local int t_paused;
static unsigned long g_fail_at; /* 0 = never */
static fm_mode g_mode;
static unsigned long g_count;
static bool g_failed;

/* ---- live-allocation table ---- */
typedef struct slot {
  void *p; /* NULL = empty */
  unsigned long serial;
  size_t size;
} slot;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static slot *g_tab;
static size_t g_cap, g_live; /* g_cap is 0 or a power of two */
static unsigned long g_serial; /* every allocation of the armed thread, counted or paused */

static size_t slot_of(const void *p) { return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) & (g_cap - 1); }

static void tab_grow(void) {
  size_t ncap = g_cap ? g_cap * 2 : 1024;
  slot *nt = __real_calloc(ncap, sizeof *nt);
  if (!nt) {
    fprintf(stderr, "failmalloc: cannot grow the tracking table\n");
    abort();
  }
  slot *old = g_tab;
  size_t ocap = g_cap;
  g_tab = nt;
  g_cap = ncap;
  for (size_t i = 0; i < ocap; i++) {
    if (!old[i].p) continue;
    size_t j = slot_of(old[i].p);
    while (g_tab[j].p) j = (j + 1) & (g_cap - 1);
    g_tab[j] = old[i];
  }
  __real_free(old);
}

static void tab_add(void *p, size_t size, unsigned long serial) {
  pthread_mutex_lock(&g_mu);
  if ((g_live + 1) * 2 > g_cap) tab_grow();
  size_t j = slot_of(p);
  while (g_tab[j].p) j = (j + 1) & (g_cap - 1);
  g_tab[j] = (slot){p, serial, size};
  g_live++;
  pthread_mutex_unlock(&g_mu);
}

static void tab_del(void *p) {
  pthread_mutex_lock(&g_mu);
  if (!g_live) {
    pthread_mutex_unlock(&g_mu);
    return;
  }
  size_t j = slot_of(p);
  while (g_tab[j].p && g_tab[j].p != p) j = (j + 1) & (g_cap - 1);
  if (g_tab[j].p) {
    /* backward-shift deletion keeps every probe chain unbroken */
    size_t hole = j;
    for (size_t k = (j + 1) & (g_cap - 1); g_tab[k].p; k = (k + 1) & (g_cap - 1)) {
      size_t home = slot_of(g_tab[k].p);
      bool movable = hole <= k ? (home <= hole || home > k) : (home <= hole && home > k);
      if (movable) {
        g_tab[hole] = g_tab[k];
        hole = k;
      }
    }
    g_tab[hole].p = NULL;
    g_live--;
  }
  pthread_mutex_unlock(&g_mu);
}

/* FAILMALLOC_STACK=1: where the failed allocation was made (with ASan's symbolizer). */
static bool g_stack;
static void print_stack(void) {
#ifdef FM_HAVE_LSAN
  fprintf(stderr, "failmalloc: allocation %lu fails here:\n", g_count);
  __sanitizer_print_stack_trace();
#else
  fprintf(stderr, "failmalloc: allocation %lu fails (no stack without ASan)\n", g_count);
#endif
}

/* True when this allocation must fail; counts it. */
static bool should_fail(void) {
  if (!t_armed || t_paused) return false;
  unsigned long n = ++g_count;
  if (!g_fail_at) return false;
  if (n == g_fail_at || (g_mode == FM_FROM && n > g_fail_at)) {
    if (n == g_fail_at && g_stack) print_stack();
    g_failed = true;
    return true;
  }
  return false;
}

static void track(void *p, size_t size) {
  if (p && t_armed) tab_add(p, size, ++g_serial);
}

void *__wrap_malloc(size_t n) {
  if (should_fail()) return NULL;
  void *p = __real_malloc(n);
  track(p, n);
  return p;
}

void *__wrap_calloc(size_t n, size_t m) {
  if (should_fail()) return NULL;
  void *p = __real_calloc(n, m);
  track(p, n * m);
  return p;
}

void *__wrap_realloc(void *p, size_t n) {
  if (!p) return __wrap_malloc(n);
  if (n == 0) { /* glibc frees: not an allocation */
    __wrap_free(p);
    return NULL;
  }
  if (should_fail()) return NULL; /* p stays valid, as realloc promises */
  void *q = __real_realloc(p, n);
  if (q) {
    tab_del(p);
    track(q, n);
  }
  return q;
}

void __wrap_free(void *p) {
  if (!p) return;
  tab_del(p);
  __real_free(p);
}

char *__wrap_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = __wrap_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

char *__wrap_strndup(const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *d = __wrap_malloc(len + 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = 0;
  return d;
}

/* OpenSSL: counted and failed only when a scenario asks (fm_opts.openssl), never tracked (see
 * failmalloc.h). */
static bool g_openssl;
static void *crypto_malloc(size_t n, const char *file, int line) {
  return g_openssl && should_fail() ? NULL : __real_malloc(n);
}
static void *crypto_realloc(void *p, size_t n, const char *file, int line) {
  if (n && g_openssl && should_fail()) return NULL;
  return __real_realloc(p, n);
}
static void crypto_free(void *p, const char *file, int line) { __real_free(p); }

void fm_init(void) {
  alloc_json_hook(); /* jansson → util/alloc.c → malloc, which the link wraps */
  alloc_json_cache_off(); /* each jansson block a malloc that can fail, each free a free */
  if (!CRYPTO_set_mem_functions(crypto_malloc, crypto_realloc, crypto_free))
    fprintf(stderr, "failmalloc: OpenSSL allocated before fm_init(); its allocations will not fail\n");
}

/* Forgets what a previous run left in the table (a failed assertion jumps out of a run). */
static void tab_clear(void) {
  pthread_mutex_lock(&g_mu);
  if (g_cap) memset(g_tab, 0, g_cap * sizeof *g_tab);
  g_live = 0;
  pthread_mutex_unlock(&g_mu);
}

void fm_arm(unsigned long fail_at, fm_mode mode) {
  tab_clear();
  g_fail_at = fail_at;
  g_mode = mode;
  g_count = 0;
  g_failed = false;
  g_serial = 0;
  t_paused = 0;
  t_armed = true;
}

size_t fm_disarm(void) {
  t_armed = false;
  pthread_mutex_lock(&g_mu);
  size_t leaked = g_live;
  for (size_t i = 0; i < g_cap && leaked; i++) {
    if (!g_tab[i].p) continue;
    fprintf(stderr, "failmalloc:   leaked allocation #%lu of this run (%zu bytes) at %p\n", g_tab[i].serial,
            g_tab[i].size, g_tab[i].p);
    g_tab[i].p = NULL;
  }
  g_live = 0;
  pthread_mutex_unlock(&g_mu);
  ERR_clear_error(); /* failures inside OpenSSL leave entries on this thread's error queue */
  return leaked;
}

unsigned long fm_count(void) { return g_count; }
bool fm_failed(void) { return g_failed; }
fm_mode fm_current_mode(void) { return g_mode; }
void fm_pause(void) { t_paused++; }
void fm_resume(void) {
  if (t_paused > 0) t_paused--;
}

long fm_step_at(long rc, const int *allowed, const char *file, int line) {
  static const int k_enomem[] = {-ENOMEM, 0};
  if (rc >= 0) return rc;
  if (!fm_failed()) fail_msg("%s:%d: error %ld with no injected allocation failure", file, line, rc);
  for (const int *a = allowed ? allowed : k_enomem; *a; a++)
    if (rc == *a) return rc;
  fail_msg("%s:%d: error %ld after an injected allocation failure is not one the contract allows", file, line, rc);
  return rc;
}

/* One run of the scenario with allocation `n` failing (0: none); checks the run's obligations.
 * Sets *reached when allocation n was reached (and failed), *count to the allocations counted. */
static int run_once(const char *name, fm_scenario_fn fn, void *ud, unsigned long n, fm_mode mode, bool verbose,
                    bool *reached, unsigned long *count) {
  fm_arm(n, mode);
  int rc = fn(ud);
  *count = fm_count();
  bool failed = fm_failed();
  size_t leaked = fm_disarm();
  const char *mname = mode == FM_ONCE ? "once" : "from";
  if (verbose)
    fprintf(stderr, "failmalloc: %s: N=%lu (%s): %lu allocations, %s, rc %d\n", name, n, mname, *count,
            failed ? "one failed" : "none failed", rc);
  if (leaked) {
    fprintf(stderr, "failmalloc: %s: %zu allocation(s) leaked with allocation %lu failing (mode %s); rerun with "
                    "FAILMALLOC_N=%lu FAILMALLOC_MODE=%s\n",
            name, leaked, n, mname, n, mname);
#ifdef FM_HAVE_LSAN
    __lsan_do_recoverable_leak_check(); /* stacks of what is unreachable now */
#endif
    fail_msg("%s leaks when allocation %lu fails (mode %s)", name, n, mname);
  }
  if (!failed && rc != 0)
    fail_msg("%s returned %d with no injected failure (N=%lu, %lu allocations)", name, rc, n, *count);
  *reached = failed;
  return rc;
}

fm_result fm_run_scenario(const char *name, fm_scenario_fn fn, void *ud, const fm_opts *opts) {
  fm_result res = {0};
  static const fm_opts k_defaults = {0};
  if (!opts) opts = &k_defaults;
  g_openssl = opts->openssl;
  const char *env_n = getenv("FAILMALLOC_N"), *env_mode = getenv("FAILMALLOC_MODE");
  const char *env_v = getenv("FAILMALLOC_VERBOSE"), *env_s = getenv("FAILMALLOC_STACK");
  bool verbose = env_v && *env_v == '1';
  g_stack = env_s && *env_s == '1';
  bool reached;
  unsigned long count;
  t_armed = false; /* a failed assertion may have jumped out of the previous scenario's run */
  /* Warm-up, neither counted nor tracked: lazy library state (OpenSSL fetches, …) is made now,
   * so that it does not look like a leak or shift the count later. */
  if (fn(ud) != 0) fail_msg("%s fails with no injected failure", name);
  /* Reference run: nothing fails; it must succeed without leaking. */
  (void)run_once(name, fn, ud, 0, FM_ONCE, verbose, &reached, &res.allocs);
  unsigned long cap = res.allocs * 4 + 10000; /* a failure may add work (error replies); not without bound */
  for (int m = 0; m < 2; m++) {
    fm_mode mode = m == 0 ? FM_ONCE : FM_FROM;
    if (env_mode && strcmp(env_mode, mode == FM_ONCE ? "once" : "from") != 0) continue;
    if (mode == FM_ONCE && opts->from_only) continue;
    unsigned long first = 1, last = ULONG_MAX;
    if (env_n) first = last = strtoul(env_n, NULL, 10);
    for (unsigned long n = first; n <= last; n++) {
      if (n > cap) fail_msg("%s still reaches allocation %lu (a run without failure makes %lu)", name, n, res.allocs);
      int rc = run_once(name, fn, ud, n, mode, verbose, &reached, &count);
      if (!reached) break; /* ran to completion before allocation n: every N is done */
      res.runs++;
      if (rc != 0) res.clean_fails++;
    }
  }
  fprintf(stderr, "failmalloc: %s: %lu allocations per run; %lu runs with a failed allocation, %lu of them "
                  "ended in an error\n",
          name, res.allocs, res.runs, res.clean_fails);
  g_openssl = false;
  return res;
}

/* check.c — thread roles for LOOP_THREAD_ONLY() (see check.h). Compiled in every build: the
 * recording calls cost a thread-local write, and release builds never call the query. */
#include "util/check.h"

#include <stdatomic.h>

static atomic_int g_loop_threads;      /* threads currently recorded as loop threads */
static _Thread_local int t_loop_depth; /* check_loop_thread_enter nesting on this thread */
static _Thread_local bool t_worker;

void check_loop_thread_enter(void) {
  if (t_loop_depth++ == 0) atomic_fetch_add(&g_loop_threads, 1);
}

void check_loop_thread_leave(void) {
  assert(t_loop_depth > 0 && "check_loop_thread_leave without enter");
  if (t_loop_depth > 0 && --t_loop_depth == 0) atomic_fetch_sub(&g_loop_threads, 1);
}

void check_thread_is_worker(void) { t_worker = true; }

bool check_on_loop_thread(void) {
  if (t_worker) return false;
  return t_loop_depth > 0 || atomic_load(&g_loop_threads) == 0;
}

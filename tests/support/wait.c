/* wait.c — see wait.h. */
#include "wait.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "util/clock.h"

static void guard_cb(uv_timer_t *t) { (void)t; /* only wakes the loop */ }

void ts_wait_begin(ts_waiter *w, uv_loop_t *loop, int64_t timeout_ms) {
  w->loop = loop;
  w->end_ms = clock_mono_ms() + timeout_ms;
  if (!loop) return;
  if (uv_timer_init(loop, &w->guard) != 0) fail_msg("uv_timer_init");
  uv_timer_start(&w->guard, guard_cb, 10, 10);
}

bool ts_wait_turn(ts_waiter *w) {
  if (clock_mono_ms() > w->end_ms) return false;
  if (w->loop) {
    uv_run(w->loop, UV_RUN_ONCE);
  } else {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return true;
}

void ts_wait_end(ts_waiter *w) {
  if (!w->loop) return;
  uv_close((uv_handle_t *)&w->guard, NULL);
  uv_run(w->loop, UV_RUN_NOWAIT); /* the guard's close completes */
}

void ts_wait_failed(const char *file, int line, int64_t timeout_ms, const char *what) {
  fail_msg("%s:%d: timed out after %lld ms waiting for %s", file, line, (long long)timeout_ms, what);
}

static void walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  print_error("open libuv handle left: type %s\n", uv_handle_type_name(uv_handle_get_type(h)));
}

void ts_loop_close(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(loop);
  if (rc != 0) {
    uv_walk(loop, walk_cb, NULL);
    fail_msg("uv_loop_close: %s (a handle is still open)", uv_strerror(rc));
  }
}

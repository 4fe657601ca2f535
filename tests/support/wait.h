/* wait.h — waiting for a condition with a deadline, never sleeping and then asserting
 * (docs/testing.md). The wait fails the test (cmocka) with the condition's text when the
 * deadline passes; deadlines are generous (a loaded 2-core machine running ASan).
 *
 *   TS_WAIT_UNTIL(30000, atomic_load(&started));            // another thread's progress
 *   TS_LOOP_UNTIL(&loop, 30000, f->done == 1);              // callbacks of a libuv loop
 *
 * TS_LOOP_UNTIL turns the loop (UV_RUN_ONCE) with a guard timer, so it never sleeps past the
 * deadline even when nothing else would wake the loop. Test-only. */
#ifndef PEERMCP_TESTS_SUPPORT_WAIT_H
#define PEERMCP_TESTS_SUPPORT_WAIT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* The default for "this happens soon on an idle machine". */
#define TS_DEADLINE_MS 30000

typedef struct ts_waiter {
  uv_loop_t *loop; /* NULL: a thread wait (sleeps 1 ms per turn) */
  uv_timer_t guard;
  int64_t end_ms;
} ts_waiter;

void ts_wait_begin(ts_waiter *w, uv_loop_t *loop, int64_t timeout_ms);
/* One turn (a loop iteration, or a 1 ms sleep); false once the deadline has passed. */
bool ts_wait_turn(ts_waiter *w);
void ts_wait_end(ts_waiter *w);
/* Fails the test: "<file>:<line>: timed out after N ms waiting for <what>". */
void ts_wait_failed(const char *file, int line, int64_t timeout_ms, const char *what);

#define TS_WAIT_ON_(loop, ms, cond)                                                        \
  do {                                                                                     \
    ts_waiter ts_w_;                                                                       \
    ts_wait_begin(&ts_w_, (loop), (ms));                                                   \
    while (!(cond) && ts_wait_turn(&ts_w_)) {                                              \
    }                                                                                      \
    ts_wait_end(&ts_w_);                                                                   \
    if (!(cond)) ts_wait_failed(__FILE__, __LINE__, (ms), #cond);                          \
  } while (0)

/* Turns `loop` until cond holds; fails the test after ms milliseconds. */
#define TS_LOOP_UNTIL(loop, ms, cond) TS_WAIT_ON_((loop), (ms), cond)
/* Polls (1 ms sleeps) until cond holds; fails the test after ms milliseconds. */
#define TS_WAIT_UNTIL(ms, cond) TS_WAIT_ON_(NULL, (ms), cond)

/* Runs the loop until every handle has closed and closes it; fails the test if a handle is
 * left open (a leak of the code under test). */
void ts_loop_close(uv_loop_t *loop);

#endif

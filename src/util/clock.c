/* clock.c — see clock.h. */
#include "util/clock.h"

#include <time.h>

int64_t clock_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_mono_ms(void) { return clock_mono_us() / 1000; }

double clock_wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  /* microseconds, one rounding: the stored float prints in its shortest form without a search
   * (jwrite_fmt_double's fast path) and has the resolution of Python's time.time() here */
  return (double)((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000) / 1e6;
}

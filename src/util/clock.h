/* clock.h — time sources: monotonic milliseconds for deadlines, wall-clock float seconds
 * for stored timestamps (the Python services store time.time() floats). Thread-safe. */
#ifndef PEERMCP_UTIL_CLOCK_H
#define PEERMCP_UTIL_CLOCK_H

#include <stdint.h>

int64_t clock_mono_ms(void);
int64_t clock_mono_us(void);
double clock_wall_s(void);

#endif

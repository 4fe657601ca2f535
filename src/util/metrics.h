/* metrics.h — the process's one metrics registry: counters, gauges and histograms with fixed
 * buckets, bounded label sets, and the Prometheus text exposition (format 0.0.4).
 *
 * A family is a static object of the module that records it (the dispatcher owns
 * peermcp_tool_calls_total, the queue peermcp_queue_ops_total, …): its name, help, kind, up to
 * METRICS_MAX_DIMS label dimensions and the storage of every series, all sized at compile time.
 * The module registers it once at start-up (METRICS_REGISTER, a constructor, so a family exists
 * in the exposition as soon as its module is linked in); recording never allocates and takes
 * no lock: a series is an index into the family's cells, a counter is one relaxed atomic add,
 * a histogram observation two (its bucket and its sum), on integers (microseconds).
 *
 * Label sets are bounded by construction: a dimension has a fixed list of values, or is an
 * intern set (tool names: filled at registration time, at most its capacity) whose last value
 * is "other" — a value not in the set (a tool that was never registered) counts there.
 *
 * Exposition (metrics_render) prints, per family sorted by name, # HELP and # TYPE and the
 * series that have been touched (a counter or histogram that is still zero everywhere prints
 * only its header; a family without labels always prints its one series). Collectors
 * (metrics_add_collector) run first, on the rendering thread, to refresh values read from
 * elsewhere (process_* from /proc). Cumulative buckets, _sum in seconds, _count = the +Inf
 * bucket.
 *
 * Threads: recording from any thread; registration before threads start (constructors) or
 * under the registry's mutex (metrics_intern); rendering from any one thread at a time (it
 * takes the registry's mutex). */
#ifndef PEERMCP_UTIL_METRICS_H
#define PEERMCP_UTIL_METRICS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { METRICS_COUNTER = 0, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_kind;

#define METRICS_MAX_DIMS 3
#define METRICS_OTHER "other"

/* An intern set of label values (tool names): at most cap values, then "other". */
typedef struct metrics_intern {
  const char **values; /* cap + 1 slots; values[cap] = "other" once initialised */
  unsigned cap;
  _Atomic unsigned n; /* values interned so far (values[0..n)) */
} metrics_intern;

#define METRICS_INTERN_DEFINE(var, capacity)                       \
  static const char *var##_values[(capacity) + 1];                 \
  metrics_intern var = {.values = var##_values, .cap = (capacity)}

/* The index of value in the set, interning it when there is room; cap ("other") when the set is
 * full or value is NULL/empty. Takes the registry's mutex: call at registration time, not per
 * operation. The string is copied. */
unsigned metrics_intern_add(metrics_intern *set, const char *value);
/* The index of value if interned, else cap ("other"). No lock, no allocation; linear. */
unsigned metrics_intern_find(const metrics_intern *set, const char *value);

typedef struct metrics_dim {
  const char *name;           /* label name */
  const char *const *values;  /* fixed values (n of them), or NULL with intern set */
  unsigned n;                 /* fixed: number of values; intern: cap + 1 */
  metrics_intern *intern;
} metrics_dim;

/* Histogram buckets: upper bounds in microseconds, ascending. */
#define METRICS_MAX_BUCKETS 20
extern const uint64_t metrics_default_bounds_us[METRICS_MAX_BUCKETS];

typedef struct metrics_family {
  const char *name;
  const char *help;
  metrics_kind kind;
  unsigned ndims;
  metrics_dim dims[METRICS_MAX_DIMS];
  unsigned nseries;            /* product of the dims' sizes (1 without labels) */
  /* storage: nseries cells (counter / gauge), or METRICS_CELLS_HIST(nseries) (histogram: per
   * series METRICS_MAX_BUCKETS + 1 bucket counts, not cumulative, then the sum in µs) */
  _Atomic uint64_t *cells;     /* every histogram uses metrics_default_bounds_us */
  struct metrics_family *next; /* registry list */
  bool registered;
} metrics_family;

/* Cells a family needs (for its static storage). */
#define METRICS_HIST_STRIDE (METRICS_MAX_BUCKETS + 2)
#define METRICS_CELLS_HIST(nseries) ((nseries) * METRICS_HIST_STRIDE)

/* Links a family into the registry (once; later calls do nothing). */
void metrics_register(metrics_family *f);
#define METRICS_REGISTER(fam) \
  __attribute__((constructor)) static void fam##_register(void) { metrics_register(&fam); }

/* The registered family of that name, or NULL. */
metrics_family *metrics_find(const char *name);

/* Bench baseline only: -DPEERMCP_BENCH_NO_OBS (bench/mcp/profile.sh builds it next to the real
 * build, never anything else) compiles the request path's metrics and traces out — recording is
 * a no-op, call sites skip their `if (OBS_HOT)` parts — so one run can measure what they cost. */
#ifdef PEERMCP_BENCH_NO_OBS
#define OBS_HOT 0
#else
#define OBS_HOT 1
#endif

/* ---- recording (any thread, no lock, no allocation) ---- */
static inline void metrics_add(metrics_family *f, unsigned series, uint64_t n) {
  if (!OBS_HOT) return;
  atomic_fetch_add_explicit(&f->cells[series], n, memory_order_relaxed);
}
static inline void metrics_inc(metrics_family *f, unsigned series) { metrics_add(f, series, 1); }
static inline void metrics_gauge_set(metrics_family *f, unsigned series, int64_t v) {
  atomic_store_explicit(&f->cells[series], (uint64_t)v, memory_order_relaxed);
}
static inline void metrics_gauge_add(metrics_family *f, unsigned series, int64_t d) {
  atomic_fetch_add_explicit(&f->cells[series], (uint64_t)d, memory_order_relaxed);
}
/* Sets a counter read from elsewhere (collectors only; never lower it). */
static inline void metrics_counter_set(metrics_family *f, unsigned series, uint64_t v) {
  atomic_store_explicit(&f->cells[series], v, memory_order_relaxed);
}
/* The first bucket that can hold a value of bit length k (bound >= 2^(k-1)): from there at
 * most two comparisons find the bucket (the bounds grow by 2 to 2.5 per step). */
extern uint8_t metrics_bucket_hint[65];
static inline void metrics_observe_us(metrics_family *f, unsigned series, uint64_t us) {
  if (!OBS_HOT) return;
  _Atomic uint64_t *c = f->cells + (size_t)series * METRICS_HIST_STRIDE;
  unsigned b = metrics_bucket_hint[us ? 64 - __builtin_clzll(us) : 0];
  while (b < METRICS_MAX_BUCKETS && us > metrics_default_bounds_us[b]) b++;
  atomic_fetch_add_explicit(&c[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c[METRICS_MAX_BUCKETS + 1], us, memory_order_relaxed);
}

/* Series index from label indexes (each < its dim's n). */
static inline unsigned metrics_series2(const metrics_family *f, unsigned a, unsigned b) {
  return a * f->dims[1].n + b;
}
static inline unsigned metrics_series3(const metrics_family *f, unsigned a, unsigned b, unsigned c) {
  return (a * f->dims[1].n + b) * f->dims[2].n + c;
}

/* ---- reading (tests, status) ---- */
uint64_t metrics_value(const metrics_family *f, unsigned series);  /* counter value / gauge bits */
int64_t metrics_gauge_value(const metrics_family *f, unsigned series);
/* Sum of a counter family over every series whose label dim `dim` has value index `value`
 * (dim < 0: every series). */
uint64_t metrics_sum_where(const metrics_family *f, int dim, unsigned value);
/* Histogram: observations and sum (µs) of one series. */
uint64_t metrics_hist_count(const metrics_family *f, unsigned series);
uint64_t metrics_hist_sum_us(const metrics_family *f, unsigned series);
/* Histogram: bucket counts (not cumulative; METRICS_MAX_BUCKETS + 1 of them) summed over every
 * series. */
void metrics_hist_totals(const metrics_family *f, uint64_t buckets[METRICS_MAX_BUCKETS + 1]);
/* The q-quantile (0..1) in seconds of such bucket counts by linear interpolation within the
 * bucket (Prometheus histogram_quantile); NAN without observations; the highest bound when it
 * falls in +Inf. */
double metrics_quantile(const uint64_t buckets[METRICS_MAX_BUCKETS + 1], double q);
/* The index of a label value in dimension `dim` of f (fixed or interned), or -1. */
int metrics_label_index(const metrics_family *f, unsigned dim, const char *value);

/* ---- collectors and exposition ---- */
/* Called at the start of each render (rendering thread); at most 16. */
int metrics_add_collector(void (*fn)(void *ud), void *ud) __attribute__((warn_unused_result));
void metrics_remove_collector(void (*fn)(void *ud), void *ud);

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* The exposition text (malloc'd, NUL-terminated) and its length; NULL on ENOMEM. */
char *metrics_render(size_t *len);

/* ---- status for people (peermcp status, p2p_service_status) ---- */
/* Takes a snapshot for the last-minute figures (call every METRICS_WINDOW_STEP_S seconds from
 * one thread: the node's metrics timer). */
#define METRICS_WINDOW_STEP_S 5
void metrics_window_tick(void);
/* {"uptime_s", "requests": {"total","errors","error_rate","p50_ms","p99_ms",
 *  "last_minute": {...same...} (null before a minute of snapshots)}, "tool_calls": {…},
 *  "queue": {status: n}, "cache": {"bytes","entries"}, "peers_connected", "streams_open",
 *  "refused"} — new reference, NULL on ENOMEM. */
json_t *metrics_health_json(void);

/* Process start (wall seconds), for process_start_time_seconds and uptime. */
double metrics_process_start_s(void);

#endif

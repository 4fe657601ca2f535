/* metrics.c — the metrics registry, the Prometheus text exposition and the status summary (see
 * metrics.h). Format: https://prometheus.io/docs/instrumenting/exposition_formats/ (text 0.0.4). */
#include "util/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"

#ifndef PEERMCP_VERSION
#define PEERMCP_VERSION "0.0.0"
#endif

const uint64_t metrics_default_bounds_us[METRICS_MAX_BUCKETS] = {
    50,      100,     250,     500,      1000,     2500,     5000,     10000,    25000,    50000,
    100000,  250000,  500000,  1000000,  2500000,  5000000,  10000000, 30000000, 60000000, 300000000,
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static metrics_family *g_families;

/* ---------- registration ---------- */

void metrics_register(metrics_family *f) {
  pthread_mutex_lock(&g_mu);
  if (!f->registered) {
    unsigned n = 1;
    for (unsigned d = 0; d < f->ndims; d++) {
      metrics_dim *dim = &f->dims[d];
      if (dim->intern) {
        dim->n = dim->intern->cap + 1;
        dim->intern->values[dim->intern->cap] = METRICS_OTHER;
      }
      n *= dim->n;
    }
    f->nseries = n;
    f->registered = true;
    f->next = g_families;
    g_families = f;
  }
  pthread_mutex_unlock(&g_mu);
}

metrics_family *metrics_find(const char *name) {
  pthread_mutex_lock(&g_mu);
  metrics_family *f = g_families;
  while (f && strcmp(f->name, name) != 0) f = f->next;
  pthread_mutex_unlock(&g_mu);
  return f;
}

unsigned metrics_intern_find(const metrics_intern *set, const char *value) {
  if (!value || !*value) return set->cap;
  unsigned n = atomic_load_explicit(&((metrics_intern *)set)->n, memory_order_acquire);
  for (unsigned i = 0; i < n; i++)
    if (strcmp(set->values[i], value) == 0) return i;
  return set->cap;
}

unsigned metrics_intern_add(metrics_intern *set, const char *value) {
  if (!value || !*value) return set->cap;
  pthread_mutex_lock(&g_mu);
  set->values[set->cap] = METRICS_OTHER;
  unsigned n = atomic_load_explicit(&set->n, memory_order_relaxed);
  unsigned i;
  for (i = 0; i < n; i++)
    if (strcmp(set->values[i], value) == 0) break;
  if (i == n) {
    char *copy = n < set->cap ? strdup(value) : NULL; /* kept for the life of the process */
    if (!copy) i = set->cap;                           /* full (or out of memory): "other" */
    else {
      set->values[n] = copy;
      atomic_store_explicit(&set->n, n + 1, memory_order_release);
    }
  }
  pthread_mutex_unlock(&g_mu);
  return i;
}

int metrics_label_index(const metrics_family *f, unsigned dim, const char *value) {
  if (dim >= f->ndims || !value) return -1;
  const metrics_dim *d = &f->dims[dim];
  if (d->intern) {
    unsigned i = metrics_intern_find(d->intern, value);
    return i == d->intern->cap && strcmp(value, METRICS_OTHER) != 0 ? -1 : (int)i;
  }
  for (unsigned i = 0; i < d->n; i++)
    if (strcmp(d->values[i], value) == 0) return (int)i;
  return -1;
}

/* ---------- recording and reading ---------- */

uint8_t metrics_bucket_hint[65];

__attribute__((constructor)) static void bucket_hints(void) {
  for (unsigned k = 0; k <= 64; k++) {
    uint64_t lo = k ? (uint64_t)1 << (k - 1) : 0; /* the smallest value of bit length k */
    unsigned b = 0;
    while (b < METRICS_MAX_BUCKETS && lo > metrics_default_bounds_us[b]) b++;
    metrics_bucket_hint[k] = (uint8_t)b;
  }
}

static uint64_t cell(const metrics_family *f, size_t i) {
  return atomic_load_explicit(&((metrics_family *)f)->cells[i], memory_order_relaxed);
}

uint64_t metrics_value(const metrics_family *f, unsigned series) { return cell(f, series); }
int64_t metrics_gauge_value(const metrics_family *f, unsigned series) { return (int64_t)cell(f, series); }

/* The value index of dimension dim in series i. */
static unsigned label_of(const metrics_family *f, unsigned i, unsigned dim) {
  for (unsigned d = f->ndims; d-- > dim + 1;) i /= f->dims[d].n;
  return i % f->dims[dim].n;
}

uint64_t metrics_sum_where(const metrics_family *f, int dim, unsigned value) {
  uint64_t s = 0;
  for (unsigned i = 0; i < f->nseries; i++) {
    if (dim >= 0 && label_of(f, i, (unsigned)dim) != value) continue;
    if (f->kind == METRICS_HISTOGRAM) s += metrics_hist_count(f, i);
    else s += cell(f, i);
  }
  return s;
}

uint64_t metrics_hist_count(const metrics_family *f, unsigned series) {
  uint64_t n = 0;
  for (unsigned b = 0; b <= METRICS_MAX_BUCKETS; b++) n += cell(f, (size_t)series * METRICS_HIST_STRIDE + b);
  return n;
}

uint64_t metrics_hist_sum_us(const metrics_family *f, unsigned series) {
  return cell(f, (size_t)series * METRICS_HIST_STRIDE + METRICS_MAX_BUCKETS + 1);
}

void metrics_hist_totals(const metrics_family *f, uint64_t buckets[METRICS_MAX_BUCKETS + 1]) {
  memset(buckets, 0, sizeof(uint64_t) * (METRICS_MAX_BUCKETS + 1));
  for (unsigned i = 0; i < f->nseries; i++)
    for (unsigned b = 0; b <= METRICS_MAX_BUCKETS; b++) buckets[b] += cell(f, (size_t)i * METRICS_HIST_STRIDE + b);
}

double metrics_quantile(const uint64_t buckets[METRICS_MAX_BUCKETS + 1], double q) {
  uint64_t total = 0;
  for (unsigned b = 0; b <= METRICS_MAX_BUCKETS; b++) total += buckets[b];
  if (total == 0) return NAN;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  double rank = q * (double)total;
  uint64_t below = 0;
  for (unsigned b = 0; b < METRICS_MAX_BUCKETS; b++) {
    if ((double)(below + buckets[b]) >= rank && buckets[b] > 0) {
      double lo = b == 0 ? 0.0 : (double)metrics_default_bounds_us[b - 1];
      double hi = (double)metrics_default_bounds_us[b];
      double frac = (rank - (double)below) / (double)buckets[b];
      return (lo + (hi - lo) * frac) / 1e6;
    }
    below += buckets[b];
  }
  return (double)metrics_default_bounds_us[METRICS_MAX_BUCKETS - 1] / 1e6;
}

/* ---------- collectors ---------- */

#define MAX_COLLECTORS 16
static struct {
  void (*fn)(void *);
  void *ud;
} g_coll[MAX_COLLECTORS];

int metrics_add_collector(void (*fn)(void *ud), void *ud) {
  pthread_mutex_lock(&g_mu);
  int rc = -ENOSPC;
  for (int i = 0; i < MAX_COLLECTORS; i++)
    if (!g_coll[i].fn) {
      g_coll[i].fn = fn;
      g_coll[i].ud = ud;
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&g_mu);
  return rc;
}

void metrics_remove_collector(void (*fn)(void *ud), void *ud) {
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < MAX_COLLECTORS; i++)
    if (g_coll[i].fn == fn && g_coll[i].ud == ud) g_coll[i].fn = NULL;
  pthread_mutex_unlock(&g_mu);
}

/* ---------- the families this module owns: build info ---------- */

static const char *const k_version[] = {PEERMCP_VERSION};
static _Atomic uint64_t g_build_cells[1];
static metrics_family g_build_info = {
    .name = "peermcp_build_info",
    .help = "Always 1; the version label says which peermcp this is.",
    .kind = METRICS_GAUGE,
    .ndims = 1,
    .dims = {{"version", k_version, 1, NULL}},
    .cells = g_build_cells,
};

static double g_start_wall_s;

__attribute__((constructor)) static void metrics_init(void) {
  metrics_gauge_set(&g_build_info, 0, 1);
  metrics_register(&g_build_info);
  g_start_wall_s = clock_wall_s();
}

double metrics_process_start_s(void) { return g_start_wall_s; }

/* ---------- exposition ---------- */

typedef struct sbuf {
  char *p;
  size_t len, cap;
  bool oom;
} sbuf;

#define RENDER_MAX (64u * 1024u * 1024u) /* a ceiling no sane registry reaches */

static void sb_grow(sbuf *b, size_t need) {
  if (b->oom) return;
  if (b->len + need + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 16384;
  while (cap < b->len + need + 1) cap *= 2;
  char *p = cap <= RENDER_MAX ? realloc(b->p, cap) : NULL;
  if (!p) {
    b->oom = true;
    return;
  }
  b->p = p;
  b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
  sb_grow(b, n);
  if (b->oom) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void sb_fmt(sbuf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    sb_put(b, tmp, (size_t)n);
    return;
  }
  sb_grow(b, (size_t)n);
  if (b->oom) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Label values: backslash, double quote and line feed escaped (0.0.4). */
static void sb_label_value(sbuf *b, const char *v) {
  for (const char *p = v; *p; p++) {
    if (*p == '\\') sb_put(b, "\\\\", 2);
    else if (*p == '"') sb_put(b, "\\\"", 2);
    else if (*p == '\n') sb_put(b, "\\n", 2);
    else sb_put(b, p, 1);
  }
}

/* HELP text: backslash and line feed escaped. */
static void sb_help(sbuf *b, const char *v) {
  for (const char *p = v; *p; p++) {
    if (*p == '\\') sb_put(b, "\\\\", 2);
    else if (*p == '\n') sb_put(b, "\\n", 2);
    else sb_put(b, p, 1);
  }
}

/* The value of a dimension's label i, or NULL when that slot of an intern set is still empty. */
static const char *dim_value(const metrics_dim *d, unsigned i) {
  if (!d->intern) return d->values[i];
  unsigned n = atomic_load_explicit(&d->intern->n, memory_order_acquire);
  if (i == d->intern->cap) return METRICS_OTHER;
  return i < n ? d->intern->values[i] : NULL;
}

/* Writes `{a="x",b="y"` (+ extra label) `}` for series i; false when a label slot is empty. */
static bool labels_ok(const metrics_family *f, unsigned i) {
  for (unsigned d = 0; d < f->ndims; d++)
    if (!dim_value(&f->dims[d], label_of(f, i, d))) return false;
  return true;
}

static void sb_labels(sbuf *b, const metrics_family *f, unsigned i, const char *le) {
  if (f->ndims == 0 && !le) return;
  sb_put(b, "{", 1);
  bool first = true;
  for (unsigned d = 0; d < f->ndims; d++) {
    if (!first) sb_put(b, ",", 1);
    first = false;
    sb_str(b, f->dims[d].name);
    sb_put(b, "=\"", 2);
    sb_label_value(b, dim_value(&f->dims[d], label_of(f, i, d)));
    sb_put(b, "\"", 1);
  }
  if (le) {
    if (!first) sb_put(b, ",", 1);
    sb_fmt(b, "le=\"%s\"", le);
  }
  sb_put(b, "}", 1);
}

static void render_family(sbuf *b, const metrics_family *f) {
  static const char *const kinds[] = {"counter", "gauge", "histogram"};
  sb_fmt(b, "# HELP %s ", f->name);
  sb_help(b, f->help);
  sb_fmt(b, "\n# TYPE %s %s\n", f->name, kinds[f->kind]);
  for (unsigned i = 0; i < f->nseries; i++) {
    if (!labels_ok(f, i)) continue;
    if (f->kind == METRICS_HISTOGRAM) {
      uint64_t n = metrics_hist_count(f, i);
      if (n == 0 && f->ndims > 0) continue;
      uint64_t cum = 0;
      for (unsigned k = 0; k <= METRICS_MAX_BUCKETS; k++) {
        char le[32];
        if (k < METRICS_MAX_BUCKETS) snprintf(le, sizeof le, "%.9g", (double)metrics_default_bounds_us[k] / 1e6);
        else snprintf(le, sizeof le, "+Inf");
        cum += cell(f, (size_t)i * METRICS_HIST_STRIDE + k);
        sb_fmt(b, "%s_bucket", f->name);
        sb_labels(b, f, i, le);
        sb_fmt(b, " %llu\n", (unsigned long long)cum);
      }
      sb_fmt(b, "%s_sum", f->name);
      sb_labels(b, f, i, NULL);
      sb_fmt(b, " %.6f\n", (double)metrics_hist_sum_us(f, i) / 1e6);
      sb_fmt(b, "%s_count", f->name);
      sb_labels(b, f, i, NULL);
      sb_fmt(b, " %llu\n", (unsigned long long)cum);
      continue;
    }
    uint64_t v = cell(f, i);
    if (f->kind == METRICS_COUNTER && v == 0 && f->ndims > 0) continue;
    sb_str(b, f->name);
    sb_labels(b, f, i, NULL);
    if (f->kind == METRICS_GAUGE) sb_fmt(b, " %lld\n", (long long)(int64_t)v);
    else sb_fmt(b, " %llu\n", (unsigned long long)v);
  }
}

/* process_* (the Prometheus client libraries' standard set), from /proc. */
static void render_process(sbuf *b) {
  long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  double cpu = -1, vsize = -1, rss = -1;
  FILE *fp = fopen("/proc/self/stat", "r");
  if (fp) {
    char line[1024];
    if (fgets(line, sizeof line, fp)) {
      const char *p = strrchr(line, ')'); /* the command name may hold spaces */
      unsigned long utime = 0, stime = 0, vs = 0;
      long rs = 0;
      /* fields from 3 (state) on: state ppid pgrp session tty tpgid flags minflt cminflt majflt
       * cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss */
      if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %lu %ld",
                      &utime, &stime, &vs, &rs) == 4) {
        if (tick > 0) cpu = (double)(utime + stime) / (double)tick;
        vsize = (double)vs;
        rss = (double)rs * (double)page;
      }
    }
    fclose(fp);
  }
  long fds = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)))
      if (e->d_name[0] != '.') fds++;
    closedir(d);
    fds--; /* the directory stream's own descriptor */
  }
  struct rlimit rl;
  double maxfds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (double)rl.rlim_cur : -1;
  if (cpu >= 0)
    sb_fmt(b, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
              "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n", cpu);
  if (rss >= 0)
    sb_fmt(b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
              "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %.0f\n", rss);
  if (vsize >= 0)
    sb_fmt(b, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
              "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %.0f\n", vsize);
  if (fds >= 0)
    sb_fmt(b, "# HELP process_open_fds Number of open file descriptors.\n"
              "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", fds);
  if (maxfds >= 0)
    sb_fmt(b, "# HELP process_max_fds Maximum number of open file descriptors.\n"
              "# TYPE process_max_fds gauge\nprocess_max_fds %.0f\n", maxfds);
  sb_fmt(b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n", g_start_wall_s);
}

static int cmp_family(const void *a, const void *b) {
  return strcmp((*(metrics_family *const *)a)->name, (*(metrics_family *const *)b)->name);
}

static void run_collectors(void) {
  void (*fns[MAX_COLLECTORS])(void *);
  void *uds[MAX_COLLECTORS];
  int n = 0;
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < MAX_COLLECTORS; i++)
    if (g_coll[i].fn) {
      fns[n] = g_coll[i].fn;
      uds[n++] = g_coll[i].ud;
    }
  pthread_mutex_unlock(&g_mu);
  for (int i = 0; i < n; i++) fns[i](uds[i]);
}

char *metrics_render(size_t *len) {
  run_collectors();
  metrics_family *v[256];
  size_t n = 0;
  pthread_mutex_lock(&g_mu);
  for (metrics_family *f = g_families; f && n < sizeof v / sizeof v[0]; f = f->next) v[n++] = f;
  pthread_mutex_unlock(&g_mu);
  qsort(v, n, sizeof v[0], cmp_family);
  sbuf b = {0};
  for (size_t i = 0; i < n; i++) render_family(&b, v[i]);
  render_process(&b);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  if (len) *len = b.len;
  return b.p;
}

/* ---------- status for people ---------- */

#define WINDOW_SLOTS (60 / METRICS_WINDOW_STEP_S + 1)

typedef struct snap {
  int64_t at_ms;
  uint64_t req, req_err, calls, call_err;
  uint64_t buckets[METRICS_MAX_BUCKETS + 1];
} snap;

static snap g_ring[WINDOW_SLOTS];
static unsigned g_ring_n, g_ring_head; /* under g_mu */

/* Requests, their errors and latency buckets; tool calls and their errors. */
static void take_snap(snap *s) {
  memset(s, 0, sizeof *s);
  s->at_ms = clock_mono_ms();
  metrics_family *req = metrics_find("peermcp_mcp_requests_total");
  metrics_family *dur = metrics_find("peermcp_mcp_request_duration_seconds");
  metrics_family *calls = metrics_find("peermcp_tool_calls_total");
  if (req) {
    s->req = metrics_sum_where(req, -1, 0);
    int e = metrics_label_index(req, req->ndims - 1, "error");
    if (e >= 0) s->req_err = metrics_sum_where(req, (int)req->ndims - 1, (unsigned)e);
  }
  if (dur) metrics_hist_totals(dur, s->buckets);
  if (calls) {
    s->calls = metrics_sum_where(calls, -1, 0);
    int ok = metrics_label_index(calls, calls->ndims - 1, "success");
    s->call_err = s->calls - (ok >= 0 ? metrics_sum_where(calls, (int)calls->ndims - 1, (unsigned)ok) : 0);
  }
}

void metrics_window_tick(void) {
  snap s;
  take_snap(&s);
  pthread_mutex_lock(&g_mu);
  g_ring[g_ring_head] = s;
  g_ring_head = (g_ring_head + 1) % WINDOW_SLOTS;
  if (g_ring_n < WINDOW_SLOTS) g_ring_n++;
  pthread_mutex_unlock(&g_mu);
}

static json_t *ms_or_null(double s) { return isnan(s) ? json_null() : json_real(round(s * 1e6) / 1e3); }

static json_t *figures(uint64_t req, uint64_t err, const uint64_t *buckets, uint64_t calls, uint64_t call_err) {
  return json_pack("{s:I, s:I, s:f, s:o, s:o, s:I, s:I}", "total", (json_int_t)req, "errors", (json_int_t)err,
                   "error_rate", req ? round((double)err / (double)req * 1e4) / 1e4 : 0.0, "p50_ms",
                   ms_or_null(metrics_quantile(buckets, 0.5)), "p99_ms", ms_or_null(metrics_quantile(buckets, 0.99)),
                   "tool_calls", (json_int_t)calls, "tool_errors", (json_int_t)call_err);
}

static json_t *gauge_json(const char *name) {
  metrics_family *f = metrics_find(name);
  return f ? json_integer((json_int_t)metrics_gauge_value(f, 0)) : json_null();
}

json_t *metrics_health_json(void) {
  snap now;
  take_snap(&now);
  json_t *h = json_object();
  if (!h) return NULL;
  json_object_set_new(h, "uptime_s", json_real(round((clock_wall_s() - g_start_wall_s) * 10) / 10));
  json_t *req = figures(now.req, now.req_err, now.buckets, now.calls, now.call_err);
  snap old;
  bool have = false;
  pthread_mutex_lock(&g_mu);
  if (g_ring_n > 0) { /* the oldest kept snapshot: at most a minute old once the ring is full */
    unsigned oldest = g_ring_n < WINDOW_SLOTS ? 0 : g_ring_head;
    old = g_ring[oldest];
    have = true;
  }
  pthread_mutex_unlock(&g_mu);
  if (req && have) {
    uint64_t b[METRICS_MAX_BUCKETS + 1];
    for (unsigned i = 0; i <= METRICS_MAX_BUCKETS; i++) b[i] = now.buckets[i] - old.buckets[i];
    json_t *lm = figures(now.req - old.req, now.req_err - old.req_err, b, now.calls - old.calls,
                         now.call_err - old.call_err);
    if (lm) json_object_set_new(lm, "window_s", json_real(round((double)(now.at_ms - old.at_ms) / 100.0) / 10.0));
    json_object_set_new(req, "last_minute", lm ? lm : json_null());
  } else if (req) {
    json_object_set_new(req, "last_minute", json_null());
  }
  json_object_set_new(h, "requests", req ? req : json_null());
  metrics_family *q = metrics_find("peermcp_queue_tasks");
  if (q) {
    json_t *qo = json_object();
    for (unsigned i = 0; i < q->nseries; i++)
      json_object_set_new(qo, q->dims[0].values[i], json_integer((json_int_t)metrics_gauge_value(q, i)));
    json_object_set_new(h, "queue", qo);
  }
  json_object_set_new(h, "cache", json_pack("{s:o, s:o}", "bytes", gauge_json("peermcp_cache_bytes"), "entries",
                                            gauge_json("peermcp_cache_entries")));
  json_object_set_new(h, "peers_connected", gauge_json("peermcp_p2p_peers_connected"));
  json_object_set_new(h, "streams_open", gauge_json("peermcp_p2p_streams_open"));
  metrics_family *a = metrics_find("peermcp_auth_failures_total");
  json_object_set_new(h, "refused", json_integer(a ? (json_int_t)metrics_sum_where(a, -1, 0) : 0));
  return h;
}

/* Unit tests for util/metrics: series indexing, bounded label sets ("other"), histogram buckets
 * and quantiles, the exposition text (checked line by line here; suite 10 runs promtool on a
 * real node's output), threads adding without loss, and the status summary's window. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/metrics.h"

static const char *const k_color[] = {"red", "green"};
static const char *const k_result[] = {"ok", "error"};
METRICS_INTERN_DEFINE(g_names, 2);

static _Atomic uint64_t g_c_cells[2 * 2];
static metrics_family g_counter = {
    .name = "test_things_total",
    .help = "Things, with a \\ backslash\nand a line feed.",
    .kind = METRICS_COUNTER,
    .ndims = 2,
    .dims = {{"color", k_color, 2, NULL}, {"result", k_result, 2, NULL}},
    .cells = g_c_cells,
};
METRICS_REGISTER(g_counter)

static _Atomic uint64_t g_i_cells[3];
static metrics_family g_interned = {
    .name = "test_named_total",
    .help = "By name.",
    .kind = METRICS_COUNTER,
    .ndims = 1,
    .dims = {{"name", NULL, 0, &g_names}},
    .cells = g_i_cells,
};
METRICS_REGISTER(g_interned)

static _Atomic uint64_t g_h_cells[METRICS_CELLS_HIST(2)];
static metrics_family g_hist = {
    .name = "test_duration_seconds",
    .help = "Durations.",
    .kind = METRICS_HISTOGRAM,
    .ndims = 1,
    .dims = {{"color", k_color, 2, NULL}},
    .cells = g_h_cells,
};
METRICS_REGISTER(g_hist)

static _Atomic uint64_t g_hb_cells[METRICS_CELLS_HIST(1)];
static metrics_family g_hist_b = {.name = "test_bucket_seconds", .help = "Bucket probes.", .kind = METRICS_HISTOGRAM,
                                  .cells = g_hb_cells};
METRICS_REGISTER(g_hist_b)

static _Atomic uint64_t g_g_cells[1];
static metrics_family g_gauge = {.name = "test_level", .help = "A level.", .kind = METRICS_GAUGE, .cells = g_g_cells};
METRICS_REGISTER(g_gauge)

static char *render(void) {
  size_t len = 0;
  char *t = metrics_render(&len);
  assert_non_null(t);
  assert_int_equal(strlen(t), len);
  return t;
}

static bool has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)); p += n)
    if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0)) return true;
  return false;
}

static void test_metrics_counter_series_and_exposition(void **state) {
  (void)state;
  uint64_t before = metrics_value(&g_counter, metrics_series2(&g_counter, 1, 0));
  for (int i = 0; i < 3; i++) metrics_inc(&g_counter, metrics_series2(&g_counter, 1, 0));
  metrics_add(&g_counter, metrics_series2(&g_counter, 0, 1), 5);
  assert_int_equal(metrics_value(&g_counter, metrics_series2(&g_counter, 1, 0)) - before, 3);
  assert_int_equal(metrics_sum_where(&g_counter, 1, 1), 5);
  char *t = render();
  assert_true(has_line(t, "# HELP test_things_total Things, with a \\\\ backslash\\nand a line feed."));
  assert_true(has_line(t, "# TYPE test_things_total counter"));
  assert_true(has_line(t, "test_things_total{color=\"green\",result=\"ok\"} 3"));
  assert_true(has_line(t, "test_things_total{color=\"red\",result=\"error\"} 5"));
  /* untouched series are left out */
  assert_null(strstr(t, "test_things_total{color=\"red\",result=\"ok\"}"));
  /* the built-in families */
  assert_non_null(strstr(t, "peermcp_build_info{version=\""));
  assert_true(has_line(t, "# TYPE process_cpu_seconds_total counter"));
  assert_non_null(strstr(t, "\nprocess_open_fds "));
  assert_non_null(strstr(t, "\nprocess_start_time_seconds "));
  free(t);
}

static void test_metrics_unknown_label_counts_as_other(void **state) {
  (void)state;
  assert_int_equal(metrics_intern_add(&g_names, "alpha"), 0);
  assert_int_equal(metrics_intern_add(&g_names, "alpha"), 0); /* once */
  assert_int_equal(metrics_intern_add(&g_names, "beta\"q"), 1);
  assert_int_equal(metrics_intern_add(&g_names, "gamma"), 2); /* full: "other" */
  assert_int_equal(metrics_intern_find(&g_names, "beta\"q"), 1);
  assert_int_equal(metrics_intern_find(&g_names, "never-registered"), 2);
  assert_int_equal(metrics_intern_find(&g_names, NULL), 2);
  metrics_inc(&g_interned, metrics_intern_find(&g_names, "alpha"));
  metrics_inc(&g_interned, metrics_intern_find(&g_names, "beta\"q"));
  metrics_inc(&g_interned, metrics_intern_find(&g_names, "zzz"));
  metrics_inc(&g_interned, metrics_intern_find(&g_names, "yyy"));
  char *t = render();
  assert_true(has_line(t, "test_named_total{name=\"alpha\"} 1"));
  assert_true(has_line(t, "test_named_total{name=\"beta\\\"q\"} 1"));
  assert_true(has_line(t, "test_named_total{name=\"other\"} 2"));
  assert_int_equal(metrics_label_index(&g_interned, 0, "other"), 2);
  assert_int_equal(metrics_label_index(&g_interned, 0, "zzz"), -1);
  free(t);
}

static void test_metrics_histogram_buckets(void **state) {
  (void)state;
  metrics_observe_us(&g_hist, 0, 40);      /* ≤ 50 µs */
  metrics_observe_us(&g_hist, 0, 50);      /* ≤ 50 µs: bounds are inclusive */
  metrics_observe_us(&g_hist, 0, 51);      /* ≤ 100 µs */
  metrics_observe_us(&g_hist, 0, 2000000); /* ≤ 2.5 s */
  metrics_observe_us(&g_hist, 0, 999000000); /* +Inf */
  assert_int_equal(metrics_hist_count(&g_hist, 0), 5);
  assert_int_equal(metrics_hist_sum_us(&g_hist, 0), 40 + 50 + 51 + 2000000 + 999000000);
  char *t = render();
  assert_true(has_line(t, "# TYPE test_duration_seconds histogram"));
  assert_true(has_line(t, "test_duration_seconds_bucket{color=\"red\",le=\"5e-05\"} 2"));
  assert_true(has_line(t, "test_duration_seconds_bucket{color=\"red\",le=\"0.0001\"} 3"));
  assert_true(has_line(t, "test_duration_seconds_bucket{color=\"red\",le=\"1\"} 3"));
  assert_true(has_line(t, "test_duration_seconds_bucket{color=\"red\",le=\"2.5\"} 4"));
  assert_true(has_line(t, "test_duration_seconds_bucket{color=\"red\",le=\"300\"} 4"));
  assert_true(has_line(t, "test_duration_seconds_bucket{color=\"red\",le=\"+Inf\"} 5"));
  assert_true(has_line(t, "test_duration_seconds_count{color=\"red\"} 5"));
  assert_true(has_line(t, "test_duration_seconds_sum{color=\"red\"} 1001.000141"));
  assert_null(strstr(t, "color=\"green\",le=")); /* never observed */
  free(t);
}

/* The bucket of a value: the first bound >= it (inclusive), else +Inf — what the table-started
 * search must find for every value around every bound and every power of two. */
static unsigned bucket_by_scan(uint64_t us) {
  unsigned b = 0;
  while (b < METRICS_MAX_BUCKETS && us > metrics_default_bounds_us[b]) b++;
  return b;
}

static unsigned bucket_observed(uint64_t us) {
  uint64_t before[METRICS_MAX_BUCKETS + 1], after[METRICS_MAX_BUCKETS + 1];
  metrics_hist_totals(&g_hist_b, before);
  metrics_observe_us(&g_hist_b, 0, us);
  metrics_hist_totals(&g_hist_b, after);
  unsigned found = 99, moved = 0;
  for (unsigned b = 0; b <= METRICS_MAX_BUCKETS; b++)
    if (after[b] != before[b]) {
      assert_int_equal(after[b] - before[b], 1);
      found = b;
      moved++;
    }
  assert_int_equal(moved, 1);
  return found;
}

static void test_metrics_bucket_of_every_boundary(void **state) {
  (void)state;
  uint64_t probes[] = {0, 1, 2, 3, UINT64_MAX / 2, UINT64_MAX - 1};
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
    assert_int_equal(bucket_observed(probes[i]), bucket_by_scan(probes[i]));
  for (unsigned b = 0; b < METRICS_MAX_BUCKETS; b++) {
    uint64_t v = metrics_default_bounds_us[b];
    assert_int_equal(bucket_observed(v - 1), bucket_by_scan(v - 1));
    assert_int_equal(bucket_observed(v), b);
    assert_int_equal(bucket_observed(v + 1), b + 1);
  }
  for (unsigned k = 1; k < 64; k++) {
    uint64_t p = (uint64_t)1 << k;
    assert_int_equal(bucket_observed(p - 1), bucket_by_scan(p - 1));
    assert_int_equal(bucket_observed(p), bucket_by_scan(p));
  }
}

static void test_metrics_quantiles(void **state) {
  (void)state;
  uint64_t b[METRICS_MAX_BUCKETS + 1] = {0};
  assert_true(isnan(metrics_quantile(b, 0.5)));
  b[4] = 100; /* all in (500 µs, 1 ms] */
  assert_true(fabs(metrics_quantile(b, 0.5) - 0.00075) < 1e-9);
  assert_true(fabs(metrics_quantile(b, 0.99) - 0.000995) < 1e-9);
  memset(b, 0, sizeof b);
  b[0] = 99;
  b[METRICS_MAX_BUCKETS] = 1; /* one in +Inf: the highest bound */
  assert_true(metrics_quantile(b, 0.5) <= 0.00005);
  assert_true(fabs(metrics_quantile(b, 1.0) - 300.0) < 1e-9);
}

static void test_metrics_gauge(void **state) {
  (void)state;
  metrics_gauge_set(&g_gauge, 0, 7);
  metrics_gauge_add(&g_gauge, 0, -10);
  assert_int_equal(metrics_gauge_value(&g_gauge, 0), -3);
  char *t = render();
  assert_true(has_line(t, "test_level -3"));
  free(t);
}

static void *adder(void *arg) {
  (void)arg;
  for (int i = 0; i < 100000; i++) {
    metrics_inc(&g_counter, metrics_series2(&g_counter, 0, 0));
    metrics_observe_us(&g_hist, 1, (uint64_t)i % 3000);
  }
  return NULL;
}

static void test_metrics_threads_lose_nothing(void **state) {
  (void)state;
  uint64_t c0 = metrics_value(&g_counter, 0), h0 = metrics_hist_count(&g_hist, 1);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, adder, NULL), 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  assert_int_equal(metrics_value(&g_counter, 0) - c0, 400000);
  assert_int_equal(metrics_hist_count(&g_hist, 1) - h0, 400000);
}

static int g_collected;
static void collect(void *ud) {
  g_collected++;
  metrics_gauge_set(&g_gauge, 0, *(int *)ud);
}

static void test_metrics_collectors_run_before_render(void **state) {
  (void)state;
  static int v = 42;
  assert_int_equal(metrics_add_collector(collect, &v), 0);
  char *t = render();
  assert_int_equal(g_collected, 1);
  assert_true(has_line(t, "test_level 42"));
  free(t);
  metrics_remove_collector(collect, &v);
  free(render());
  assert_int_equal(g_collected, 1);
}

static void test_metrics_health_summary(void **state) {
  (void)state;
  json_t *h = metrics_health_json();
  assert_non_null(h);
  assert_true(json_is_number(json_object_get(h, "uptime_s")));
  /* no peermcp_mcp_requests_total in this binary: zeros, no last minute before a tick */
  json_t *r = json_object_get(h, "requests");
  assert_int_equal(json_integer_value(json_object_get(r, "total")), 0);
  assert_true(json_is_null(json_object_get(r, "last_minute")));
  json_decref(h);
  metrics_window_tick();
  h = metrics_health_json();
  assert_true(json_is_object(json_object_get(json_object_get(h, "requests"), "last_minute")));
  json_decref(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_metrics_counter_series_and_exposition),
      cmocka_unit_test(test_metrics_unknown_label_counts_as_other),
      cmocka_unit_test(test_metrics_histogram_buckets),
      cmocka_unit_test(test_metrics_bucket_of_every_boundary),
      cmocka_unit_test(test_metrics_quantiles),
      cmocka_unit_test(test_metrics_gauge),
      cmocka_unit_test(test_metrics_threads_lose_nothing),
      cmocka_unit_test(test_metrics_collectors_run_before_render),
      cmocka_unit_test(test_metrics_health_summary),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

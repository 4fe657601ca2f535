/* Allocation failures in the store's own code (SQLite allocates inside libsqlite3 and is not
 * failed): the disk cache's set/get/has/delete/sweep on the calling thread, and the queue's
 * result merges, which write back what they build (tests/support/failmalloc.h).
 *
 * What a run must show besides no crash and no leak: a cache record is never judged corrupt —
 * and removed — because the cache ran out of memory reading it (afterwards, with nothing
 * failing, the last value set is still there), and a merge is whole or -ENOMEM, never a result
 * with old fields lost. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/failmalloc.h"
#include "store/cache.h"
#include "store/queue_backend.h"
#include "support/tmpdir.h"

static const int k_cache_errs[] = {-ENOMEM, 0};

static int sc_cache(void *ud) {
  const char *dir = ud;
  ttlcache_options o;
  ttlcache_options_default(&o);
  o.dir = dir;
  o.durable = false;
  ttlcache *c = NULL;
  int rc = (int)FM_STEP(ttlcache_open(&o, &c), k_cache_errs);
  json_t *v = NULL;
  fm_pause();
  json_t *val = json_pack("{s:s, s:[i,i,i], s:{s:b}}", "text", "a value of some length", "list", 1, 2, 3, "nested",
                          "ok", 1);
  fm_resume();
  if (!rc) rc = (int)FM_STEP(ttlcache_set(c, "key/one", val, NULL), k_cache_errs);
  if (!rc) {
    rc = (int)FM_STEP(ttlcache_get(c, "key/one", &v), k_cache_errs);
    if (!rc) assert_true(json_equal(v, val));
    json_decref(v);
    v = NULL;
  }
  bool hit = false, deleted = false;
  if (!rc) rc = (int)FM_STEP(ttlcache_has(c, "key/one", &hit), k_cache_errs);
  if (!rc) assert_true(hit);
  if (!rc) rc = (int)FM_STEP(ttlcache_set(c, "key/two", val, NULL), k_cache_errs);
  if (!rc) rc = (int)FM_STEP(ttlcache_delete(c, "key/two", &deleted), k_cache_errs);
  if (!rc) assert_true(deleted);
  size_t removed = 0;
  if (!rc) rc = (int)FM_STEP(ttlcache_sweep(c, &removed), k_cache_errs);
  if (c && fm_failed()) {
    /* nothing failing now: whatever was stored under key/one is still readable */
    fm_pause();
    int g = ttlcache_get(c, "key/one", &v);
    assert_true(g == 0 || g == -ENOENT); /* -ENOENT only if its set never happened */
    if (g == 0) assert_true(json_equal(v, val));
    json_decref(v);
    fm_resume();
  }
  ttlcache_close(c);
  fm_pause();
  json_decref(val);
  fm_resume();
  return rc;
}

/* A stored result with fields a merge must keep. */
static const char k_old[] =
    "{\"answer\": 41, \"logs\": [{\"message\": \"one\", \"stream\": \"stdout\", \"ts\": 1.0}], \"progress\": "
    "{\"done\": 1, \"release_count\": 2}}";

static void assert_keeps_old(const char *text) {
  fm_pause();
  json_t *r = json_loads(text, 0, NULL);
  assert_non_null(r);
  assert_non_null(json_object_get(r, "logs"));
  assert_non_null(json_object_get(json_object_get(r, "progress"), "done"));
  json_decref(r);
  fm_resume();
}

static int sc_merges(void *ud) {
  (void)ud;
  fm_pause();
  json_t *incoming = json_pack("{s:i, s:s}", "answer", 42, "note", "from the worker");
  json_t *patch = json_pack("{s:{s:i}}", "progress", "done", 2);
  fm_resume();
  char *out = NULL;
  int rc = (int)FM_STEP(tq__merge_result(k_old, incoming, 1 << 20, &out), NULL);
  if (!rc) {
    assert_keeps_old(out);
    free(out);
    out = NULL;
    rc = (int)FM_STEP(tq__progress_update(k_old, 1 << 20, &out, "release_count", json_integer(3), "last_release_reason",
                                          json_string("released"), (const char *)NULL),
                      NULL);
  }
  if (!rc) {
    assert_keeps_old(out);
    free(out);
    out = NULL;
    rc = (int)FM_STEP(tq__progress_merge(k_old, patch, "stderr", "two", 2.0, 10, 1 << 20, &out), NULL);
  }
  if (!rc) {
    assert_keeps_old(out);
    free(out);
  }
  fm_pause();
  json_decref(incoming);
  json_decref(patch);
  fm_resume();
  return rc;
}

static void test_failmalloc_cache(void **state) {
  (void)state;
  char dir[TS_TMPDIR_MAX];
  ts_tmpdir_make(dir, "failmalloc-cache");
  (void)fm_run_scenario("cache", sc_cache, dir, NULL);
  assert_int_equal(ts_tmpdir_remove(dir), 0);
}

static void test_failmalloc_merges(void **state) { (void)fm_run_scenario("merges", sc_merges, NULL, NULL); }

int main(void) {
  fm_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_failmalloc_cache),
      cmocka_unit_test(test_failmalloc_merges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

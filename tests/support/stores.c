/* stores.c — see stores.h. */
#include "stores.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tmpdir.h"

void ts_queue_open(const char *dir, const char *file, tq_queue **out) {
  char path[TS_TMPDIR_MAX + 64];
  ts_path(path, sizeof path, dir, file);
  tq_options qo;
  tq_options_default(&qo);
  qo.path = path;
  assert_int_equal(tq_open(&qo, out), 0);
}

json_t *ts_queue_row_json(tq_queue *q, const char *id, unsigned flags) {
  tq_task *t = NULL;
  assert_int_equal(tq_get(q, id, &t), 0);
  json_t *j = tq_task_to_json(t, flags);
  tq_task_free(t);
  return j;
}

void ts_cache_open(const char *dir, const char *sub, ttlcache **out) {
  char path[TS_TMPDIR_MAX + 64];
  ts_path(path, sizeof path, dir, sub);
  ttlcache_options co;
  ttlcache_options_default(&co);
  co.dir = path;
  assert_int_equal(ttlcache_open(&co, out), 0);
}

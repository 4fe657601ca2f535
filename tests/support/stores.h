/* stores.h — the task queue and the TTL cache a test opens in its temporary directory
 * (tmpdir.h), with the default options. Each fails the test (cmocka) if it cannot open; the
 * test closes them (tq_close, ttlcache_close). Test-only. */
#ifndef PEERMCP_TESTS_SUPPORT_STORES_H
#define PEERMCP_TESTS_SUPPORT_STORES_H

#include "store/cache.h"
#include "store/queue.h"

/* tq_open of dir "/" file (e.g. "q.sqlite3"). */
void ts_queue_open(const char *dir, const char *file, tq_queue **out);
/* The stored row of task `id` as tq_task_to_json(flags) gives it (the caller owns the tree);
 * fails the test if the task is not there. */
json_t *ts_queue_row_json(tq_queue *q, const char *id, unsigned flags);
/* ttlcache_open of dir "/" sub (e.g. "cache"). */
void ts_cache_open(const char *dir, const char *sub, ttlcache **out);

#endif

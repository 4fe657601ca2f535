/* store_tools.h — the MCP tools over the task queue and the TTL cache.
 *
 * Registers task_submit, task_get, task_wait, task_list, task_cancel, task_stats (category
 * "queue"), cache_get, cache_set, cache_has, cache_delete, cache_stats (category "cache") and the
 * ipfs_datasets_py names p2p_task_submit, p2p_task_get, p2p_task_delete, p2p_cache_get,
 * p2p_cache_has, p2p_cache_set, p2p_cache_delete (category "p2p", mcp_server_spec.md §3.4).
 *
 * q and c are borrowed and must outlive the registry. Either may be NULL: the tools are still
 * registered and answer {"ok":false,"error":"queue_disabled"} / "cache_disabled".
 * Handlers block on disk I/O: they run on the dispatcher's worker pool, never inline.
 * Call once, on the main thread, before serving. */
#ifndef PEERMCP_TOOLS_STORE_TOOLS_H
#define PEERMCP_TOOLS_STORE_TOOLS_H

#include "mcp/registry.h"
#include "store/cache.h"
#include "store/queue.h"

int store_tools_register(mcp_registry *reg, tq_queue *q, ttlcache *c) __attribute__((warn_unused_result));

#endif

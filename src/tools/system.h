/* system.h — the built-in "system" category: server_info (version, uptime, protocol eras, tool
 * counts, and the stores' health). With test_tools (config tools.test_tools, PEERMCP_TEST_TOOLS=1) it also registers
 * category "test" tools used by the interop suites: test_slow (sleeps, reports progress,
 * honours cancellation) and test_echo. Call once on the main thread before serving. */
#ifndef PEERMCP_TOOLS_SYSTEM_H
#define PEERMCP_TOOLS_SYSTEM_H

#include <stdbool.h>

#include "mcp/registry.h"
#include "store/cache.h"
#include "store/queue.h"

/* q, c: the node's stores (borrowed, may be NULL; they outlive the registry): server_info says
 * whether each is up (store/health.h), with the reason and file for the local operator / admin. */
int tools_system_register(mcp_registry *reg, bool test_tools, tq_queue *q, ttlcache *c) __attribute__((warn_unused_result));

#endif

/* testing.h — tools for tests and benchmarks, category "testing", registered only when the
 * configuration says tools.test_tools (PEERMCP_TEST_TOOLS=1; never in a normal server):
 *
 *   echo  {…any…}               → the arguments object itself. INLINE: no worker hop, so it
 *                                  measures the server's own overhead (bench/mcp).
 *   sleep {ms, steps?}          → {slept_ms, cancelled}; blocks on a worker, sends `steps`
 *                                  progress notifications, returns early when cancelled.
 *   fail  {message?}            → always a tool error {"error": message}.
 *
 * Register on the main thread at start-up. */
#ifndef PEERMCP_TOOLS_TESTING_H
#define PEERMCP_TOOLS_TESTING_H

#include "mcp/registry.h"

/* Registers the testing tools (the caller decides whether: config tools.test_tools). */
int tools_testing_register(mcp_registry *reg) __attribute__((warn_unused_result));

#endif

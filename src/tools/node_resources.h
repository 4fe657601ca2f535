/* node_resources.h — the MCP resources and prompts of a normal node, next to its tools:
 *
 *   peermcp://server/info        this server: name, version, pid, start time, what it serves
 *   peermcp://queue/stats        the task queue's counts by state and type, and its commits
 *   peermcp://task/{task_id}     one task of the queue and its result (template; task ids
 *                                complete from the most recent tasks); subscribable: a
 *                                subscriber gets notifications/resources/updated when the task
 *                                changes state (or its result / error / attempt changes)
 *   prompt peermcp_task_report   {task_id}: asks the model to report on a task, with the task
 *                                embedded as a resource
 *   prompt peermcp_call_tool     {tool}: asks the model to call a tool, with its description and
 *                                input schema (tool names complete)
 *
 * The queue ones exist only when the node has a queue, need the admin scope (the local
 * operator has it) and are not offered to remote peers. Queue reads block, so they run on the
 * dispatcher's worker pool. The queue has no change feed the MCP layer may use, so a task
 * subscription is served by polling: while any task is subscribed, one timer on the loop reads
 * the subscribed tasks once a second (one pool job for all of them, never two at once; at
 * most NODE_RESOURCES_MAX_WATCHED tasks) and notifies the ones whose state changed.
 *
 * Register on the main thread at start-up; the queue must outlive the registry. The state is
 * freed with the registry (mcp_registry_on_free). */
#ifndef PEERMCP_TOOLS_NODE_RESOURCES_H
#define PEERMCP_TOOLS_NODE_RESOURCES_H

#include "mcp/registry.h"
#include "store/queue.h"

#define NODE_RESOURCES_MAX_WATCHED 256
#define NODE_RESOURCES_POLL_MS 1000

/* queue may be NULL (no queue resources then). 0, -EEXIST, -ENOMEM. */
int tools_node_resources_register(mcp_registry *reg, tq_queue *queue) __attribute__((warn_unused_result));

#endif

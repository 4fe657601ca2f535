/* meta.h — the hierarchical meta-tools (mcp_server_spec.md §2.4–2.5), category "meta":
 *
 *   tools_list_categories {include_count?}     → {status, category_count, categories:[{name, description, lazy[, tool_count]}]}
 *   tools_list_tools      {category}           → {status, category, description, tool_count, tools:[{name, description}]}
 *   tools_get_schema      {category, tool}     → {status, schema:{name, category, description, inputSchema,
 *                                                  outputSchema?, annotations?, schema_version, deprecated, …}}
 *   tools_dispatch        {category, tool, params?} → the target's normalized envelope
 *                                                  {status, result|error, request_id, category, tool, duration_ms}
 *
 * Every listing shows only what the caller may use (remote callers see MCP_TOOL_REMOTE tools
 * only), so a category a remote peer cannot use does not exist for it. Errors are tool errors
 * (isError: true) carrying available_categories / available_tools, and — unlike the Python
 * server — unknown params to tools_dispatch are refused rather than silently dropped.
 *
 * The three listing tools are cheap and run inline; tools_dispatch runs the target on its
 * worker thread through mcp_dispatch_invoke (same caller, cancellation and deadline).
 * Call tools_meta_register once, on the main thread, before serving. */
#ifndef PEERMCP_TOOLS_META_H
#define PEERMCP_TOOLS_META_H

#include "mcp/registry.h"

#define TOOLS_META_CATEGORY "meta"

/* Registers the four meta-tools. 0, or the first mcp_registry_add error. */
int tools_meta_register(mcp_registry *reg) __attribute__((warn_unused_result));

#endif

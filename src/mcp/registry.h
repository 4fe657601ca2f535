/* registry.h — the one tool registry every transport and every tool module shares.
 *
 * Owns: the tool definitions (copied on add), their parsed input/output schemas and the
 * category index. Tools are registered at start-up, on the main thread, before anything is
 * served; after that the registry is read-only and lookups are safe from any thread.
 * Listing order is deterministic: by category, then by name. */
#ifndef PEERMCP_MCP_REGISTRY_H
#define PEERMCP_MCP_REGISTRY_H

#include <stddef.h>

#include "mcp/tool.h"

typedef struct mcp_registry mcp_registry;

/* Returns NULL on ENOMEM. Free with mcp_registry_free (calls every tool's ud_free). */
mcp_registry *mcp_registry_new(void);
void mcp_registry_free(mcp_registry *reg);

/* Copies def (strings and schemas). Returns 0, -EINVAL for a bad name/category or a schema
 * that is not valid JSON (the reason is logged), -EEXIST for a duplicate name, -ENOMEM. */
int mcp_registry_add(mcp_registry *reg, const mcp_tool_def *def) __attribute__((warn_unused_result));

#endif

/* registry.h — the one tool registry every transport and every tool module shares.
 *
 * Owns: the tool definitions (copied on add), their parsed input/output schemas and the
 * category index. Tools are registered at start-up, on the main thread, before anything is
 * served; after that the registry is read-only and lookups are safe from any thread.
 * Listing order is deterministic: by category, then by name. */
#ifndef PEERMCP_MCP_REGISTRY_H
#define PEERMCP_MCP_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "mcp/tool.h"
#include "util/metrics.h"

typedef struct mcp_registry mcp_registry;
struct mcp_prompts;
struct mcp_resources;

/* Returns NULL on ENOMEM. Free with mcp_registry_free (calls every tool's ud_free). */
mcp_registry *mcp_registry_new(void);
void mcp_registry_free(mcp_registry *reg);

/* Copies def (strings and schemas). Returns 0, -EINVAL for a bad name/category, a schema
 * that is not valid JSON or flags that pick two places to run (the reason is logged), -EEXIST for a duplicate name, -ENOMEM. */
int mcp_registry_add(mcp_registry *reg, const mcp_tool_def *def) __attribute__((warn_unused_result));

/* Removes a tool (start-up only, before any dispatcher exists); used to apply the
 * configuration's tools.disabled. Its ud_free still runs, at mcp_registry_free (tools may
 * share a ud). 0, -ENOENT or -ENOMEM. */
int mcp_registry_remove(mcp_registry *reg, const char *name) __attribute__((warn_unused_result));

/* The `tool` label of the metrics families (peermcp_tool_calls_total, …): every registered
 * tool name, process-wide, up to MCP_TOOL_LABELS; a name past that, or never registered, is
 * "other". */
#define MCP_TOOL_LABELS 256
extern metrics_intern mcp_tool_labels;

/* A registered tool: a read-only view owned by the registry. */
typedef struct mcp_tool mcp_tool;

const mcp_tool *mcp_registry_find(const mcp_registry *reg, const char *name);
/* Tools in listing order (category, then name); i < mcp_registry_count(). */
size_t mcp_registry_count(const mcp_registry *reg);
const mcp_tool *mcp_registry_at(const mcp_registry *reg, size_t i);

/* Category names in sorted order; i < mcp_registry_category_count(). Strings owned by reg. */
size_t mcp_registry_category_count(const mcp_registry *reg);
const char *mcp_registry_category_at(const mcp_registry *reg, size_t i);
/* Number of tools in a category (0 if it does not exist). */
size_t mcp_registry_category_size(const mcp_registry *reg, const char *category);
/* Optional category description (set with mcp_registry_describe_category), "" if none. */
const char *mcp_registry_category_description(const mcp_registry *reg, const char *category);
int mcp_registry_describe_category(mcp_registry *reg, const char *category, const char *description)
    __attribute__((warn_unused_result));

/* The prompt and resource tables served next to the tools (mcp/prompts.h, mcp/resources.h):
 * created with the registry, freed with it; fill them at start-up like the tools. */
struct mcp_prompts *mcp_registry_prompts(const mcp_registry *reg);
struct mcp_resources *mcp_registry_resources(const mcp_registry *reg);

/* Runs fn(ud) once when the registry is freed (after the tools' ud_free, before the prompt and
 * resource tables go): for providers whose state lives as long as their definitions. 0 or
 * -ENOMEM. At most 64. */
int mcp_registry_on_free(mcp_registry *reg, void (*fn)(void *ud), void *ud) __attribute__((warn_unused_result));

/* The definition as registered (strings owned by the registry; fn/ud as given). */
const mcp_tool_def *mcp_tool_def_of(const mcp_tool *tool);
/* Parsed schemas, borrowed (never NULL for input; NULL when no output schema). */
json_t *mcp_tool_input_schema(const mcp_tool *tool);
json_t *mcp_tool_output_schema(const mcp_tool *tool);
/* True when validating arguments against the input schema may add to them (it has a
 * "default"); false means validation only reads them. */
bool mcp_tool_fills_defaults(const mcp_tool *tool);
/* The tool's value index in mcp_tool_labels (the "other" index for NULL). */
unsigned mcp_tool_metric_label(const mcp_tool *tool);
/* The MCP Tool object {name, title?, description, inputSchema, outputSchema?, annotations?}
 * as tools/list shows it; a new reference, NULL when out of memory (never a partial object). */
json_t *mcp_tool_to_json(const mcp_tool *tool);

#endif

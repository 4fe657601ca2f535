/* meta.c — the four hierarchical meta-tools (see meta.h; mcp_server_spec.md §2.4–2.5, §10).
 *
 * Kept from the Python server: the tool names, their argument names, the result shapes
 * ({"status":"success", …}), "Category 'X' not found" / "Tool 'T' not found in category 'X'"
 * messages with available_categories / available_tools, "status":"error" in every error
 * (the dispatcher keeps it in the structured content). Fixed: errors are isError results and
 * always carry request_id (the dispatcher's envelope adds it); tools_get_schema answers real
 * JSON Schema and needs no category (tool names are unique); tools_list_tools cuts a long first
 * line at a word, with "…"; tools_dispatch validates params against the target's schema and
 * refuses keys the target does not declare instead of dropping them; nothing is cached or
 * mutated in place. */
#include "tools/meta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/dispatch.h"
#include "mcp/schema.h"

/* ---------- helpers ---------- */

/* Tools of `category` the caller may use; count only when out is NULL. */
static size_t visible_in_category(mcp_call *call, const mcp_registry *reg, const char *category, json_t *out) {
  size_t n = 0;
  for (size_t i = 0; i < mcp_registry_count(reg); i++) {
    const mcp_tool *t = mcp_registry_at(reg, i);
    const mcp_tool_def *d = mcp_tool_def_of(t);
    if (strcmp(d->category, category) != 0 || !mcp_call_may_use(call, t)) continue;
    n++;
    if (out) json_array_append_new(out, json_string(d->name));
  }
  return n;
}

static json_t *visible_categories(mcp_call *call, const mcp_registry *reg) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < mcp_registry_category_count(reg); i++) {
    const char *cat = mcp_registry_category_at(reg, i);
    if (visible_in_category(call, reg, cat, NULL) > 0) json_array_append_new(a, json_string(cat));
  }
  return a;
}

#define SHORT_DESCRIPTION_MAX 100 /* code points, the ellipsis included */

/* The first line of a description, at most SHORT_DESCRIPTION_MAX code points (Python cut
 * doc.split("\n")[0][:100] mid-word): a longer line is cut at the last space that fits and ends
 * with "…" (a single word longer than that is cut where it must). */
static json_t *short_description(const char *d) {
  if (!d) return json_string("");
  size_t n = 0, cps = 0, last_space = 0;
  bool cut = false;
  while (d[n] && d[n] != '\n') {
    if (((unsigned char)d[n] & 0xC0) != 0x80) {
      if (cps == SHORT_DESCRIPTION_MAX) {
        cut = true;
        break;
      }
      if (cps < SHORT_DESCRIPTION_MAX && (d[n] == ' ' || d[n] == '\t')) last_space = n;
      cps++;
    }
    n++;
  }
  if (cut) {
    /* room for the ellipsis: end at a space at or before code point 99 */
    size_t end = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
      if (((unsigned char)d[i] & 0xC0) == 0x80) continue;
      if (c == SHORT_DESCRIPTION_MAX - 1) {
        end = i;
        break;
      }
      c++;
    }
    if (last_space && last_space <= end) end = last_space;
    while (end > 0 && (d[end - 1] == ' ' || d[end - 1] == '\t' || d[end - 1] == ',' || d[end - 1] == ';' ||
                       d[end - 1] == ':'))
      end--;
    char *s = malloc(end + 4);
    if (!s) return NULL;
    memcpy(s, d, end);
    memcpy(s + end, "\xe2\x80\xa6", 4); /* … */
    json_t *r = json_string(s);
    free(s);
    return r;
  }
  while (n > 0 && (d[n - 1] == ' ' || d[n - 1] == '\r' || d[n - 1] == '\t')) n--;
  return json_stringn(d, n);
}

static mcp_tool_status category_not_found(mcp_call *call, const mcp_registry *reg, const char *category,
                                          json_t **result) {
  char msg[160];
  snprintf(msg, sizeof msg, "Category '%.100s' not found", category);
  *result = json_pack("{s:s, s:s, s:o}", "status", "error", "error", msg, "available_categories",
                      visible_categories(call, reg));
  return MCP_TOOL_ERROR;
}

/* The tool `name` in `category` if the caller may use it, else NULL. */
static const mcp_tool *find_in_category(mcp_call *call, const mcp_registry *reg, const char *category,
                                        const char *name) {
  const mcp_tool *t = mcp_registry_find(reg, name);
  if (!t || !mcp_call_may_use(call, t) || strcmp(mcp_tool_def_of(t)->category, category) != 0) return NULL;
  return t;
}

static mcp_tool_status tool_not_found(mcp_call *call, const mcp_registry *reg, const char *category, const char *tool,
                                      json_t **result) {
  char msg[300];
  snprintf(msg, sizeof msg, "Tool '%.128s' not found in category '%.100s'", tool, category);
  json_t *avail = json_array();
  visible_in_category(call, reg, category, avail);
  *result = json_pack("{s:s, s:s, s:s, s:s, s:o}", "status", "error", "error", msg, "category", category, "tool",
                      tool, "available_tools", avail);
  return MCP_TOOL_ERROR;
}

/* ---------- tools_list_categories ---------- */

static mcp_tool_status list_categories(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)ud;
  const mcp_registry *reg = mcp_call_registry(call);
  bool include_count = json_is_true(json_object_get(args, "include_count"));
  json_t *cats = json_array();
  for (size_t i = 0; cats && i < mcp_registry_category_count(reg); i++) {
    const char *name = mcp_registry_category_at(reg, i);
    size_t n = visible_in_category(call, reg, name, NULL);
    if (n == 0) continue; /* nothing the caller may use: the category does not exist for it */
    json_t *c = json_pack("{s:s, s:s, s:b}", "name", name, "description",
                          mcp_registry_category_description(reg, name), "lazy", 0);
    if (c && include_count) json_object_set_new(c, "tool_count", json_integer((json_int_t)n));
    json_array_append_new(cats, c);
  }
  if (!cats) return MCP_TOOL_ERROR;
  *result = json_pack("{s:s, s:I, s:o}", "status", "success", "category_count", (json_int_t)json_array_size(cats),
                      "categories", cats);
  return *result ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

/* ---------- tools_list_tools ---------- */

static mcp_tool_status list_tools(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)ud;
  const mcp_registry *reg = mcp_call_registry(call);
  const char *category = json_string_value(json_object_get(args, "category"));
  json_t *tools = json_array();
  for (size_t i = 0; tools && i < mcp_registry_count(reg); i++) {
    const mcp_tool *t = mcp_registry_at(reg, i);
    const mcp_tool_def *d = mcp_tool_def_of(t);
    if (strcmp(d->category, category) != 0 || !mcp_call_may_use(call, t)) continue;
    json_t *e = json_pack("{s:s, s:o}", "name", d->name, "description", short_description(d->description));
    if (e && d->title) json_object_set_new(e, "title", json_string(d->title));
    json_array_append_new(tools, e);
  }
  if (!tools) return MCP_TOOL_ERROR;
  if (json_array_size(tools) == 0) {
    json_decref(tools);
    return category_not_found(call, reg, category, result);
  }
  *result = json_pack("{s:s, s:s, s:s, s:I, s:o}", "status", "success", "category", category, "description",
                      mcp_registry_category_description(reg, category), "tool_count",
                      (json_int_t)json_array_size(tools), "tools", tools);
  return *result ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

/* ---------- tools_get_schema ---------- */

/* Python's "parameters" map, derived from the input schema:
 * {p: {name, required, type?, default?, description?}} with JSON Schema types. */
static json_t *parameters_of(const json_t *input) {
  json_t *params = json_object();
  const json_t *props = json_object_get(input, "properties");
  const json_t *req = json_object_get(input, "required");
  const char *k;
  json_t *ps;
  if (!params || !json_is_object(props)) return params;
  json_object_foreach((json_t *)props, k, ps) {
    bool required = false;
    size_t i;
    json_t *r;
    json_array_foreach(req, i, r) if (json_is_string(r) && strcmp(json_string_value(r), k) == 0) required = true;
    json_t *p = json_pack("{s:s, s:b}", "name", k, "required", required);
    if (!p) continue;
    if (json_is_object(ps)) {
      static const char *const copy[] = {"type", "default", "description", "enum"};
      for (size_t j = 0; j < sizeof copy / sizeof copy[0]; j++) {
        json_t *v = json_object_get(ps, copy[j]);
        if (v) json_object_set(p, copy[j], v);
      }
    }
    json_object_set_new(params, k, p);
  }
  return params;
}

static mcp_tool_status get_schema(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)ud;
  const mcp_registry *reg = mcp_call_registry(call);
  const char *category = json_string_value(json_object_get(args, "category"));
  const char *tool = json_string_value(json_object_get(args, "tool"));
  const mcp_tool *t;
  if (!category) { /* tool names are unique: the category is optional */
    t = mcp_registry_find(reg, tool);
    if (!t || !mcp_call_may_use(call, t)) {
      char msg[200];
      snprintf(msg, sizeof msg, "Tool '%.128s' not found", tool);
      *result = json_pack("{s:s, s:s, s:s, s:o}", "status", "error", "error", msg, "tool", tool,
                          "available_categories", visible_categories(call, reg));
      return MCP_TOOL_ERROR;
    }
  } else {
    if (visible_in_category(call, reg, category, NULL) == 0) return category_not_found(call, reg, category, result);
    t = find_in_category(call, reg, category, tool);
    if (!t) return tool_not_found(call, reg, category, tool, result);
  }
  const mcp_tool_def *d = mcp_tool_def_of(t);
  json_t *schema = mcp_tool_to_json(t); /* name, title?, description, inputSchema, outputSchema?, annotations? */
  if (!schema) return MCP_TOOL_ERROR;
  json_object_set_new(schema, "category", json_string(d->category));
  json_object_set_new(schema, "schema_version", json_string("1.0"));
  json_object_set_new(schema, "deprecated", json_false());
  json_object_set_new(schema, "deprecation_message", json_string(""));
  json_object_set_new(schema, "parameters", parameters_of(mcp_tool_input_schema(t)));
  json_object_set_new(schema, "remote", json_boolean(d->flags & MCP_TOOL_REMOTE));
  if (d->timeout_ms) json_object_set_new(schema, "timeout_ms", json_integer(d->timeout_ms));
  *result = json_pack("{s:s, s:o}", "status", "success", "schema", schema);
  return *result ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

/* ---------- tools_dispatch ---------- */

/* Python dropped params its function did not name (§2.5 step 7). Here a key the target's schema
 * does not declare is an error when the schema lists properties and says nothing about
 * additionalProperties; an explicit additionalProperties still governs. */
static int undeclared_param(const mcp_tool *t, const json_t *params, const char **bad) {
  const json_t *in = mcp_tool_input_schema(t);
  const json_t *props = json_object_get(in, "properties");
  if (!json_is_object(props) || json_object_get(in, "additionalProperties")) return 0;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)params, k, v) {
    if (!json_object_get(props, k)) {
      *bad = k;
      return -EINVAL;
    }
  }
  return 0;
}

static mcp_tool_status dispatch(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)ud;
  const mcp_registry *reg = mcp_call_registry(call);
  const char *category = json_string_value(json_object_get(args, "category"));
  const char *tool = json_string_value(json_object_get(args, "tool"));
  json_t *params = json_object_get(args, "params");
  json_t *owned = NULL;
  if (json_is_string(params)) {
    /* clients that followed the Python HTTP schema send params as a JSON string */
    json_error_t jerr;
    owned = json_loadb(json_string_value(params), json_string_length(params), 0, &jerr);
    if (!json_is_object(owned)) {
      json_decref(owned);
      *result = json_pack("{s:s, s:s, s:s, s:s, s:s}", "status", "error", "error",
                          "Invalid parameters: params must be an object (or a JSON string holding one)",
                          "error_type", "invalid_arguments", "category", category, "tool", tool);
      return MCP_TOOL_ERROR;
    }
    params = owned;
  } else if (!json_is_object(params)) {
    params = owned = json_object(); /* absent or null: no parameters */
  }

  const mcp_tool *t = visible_in_category(call, reg, category, NULL) ? find_in_category(call, reg, category, tool) : NULL;
  const char *bad = NULL;
  if (t && undeclared_param(t, params, &bad) != 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "Invalid parameters: $.%.128s: unexpected parameter (%.100s does not declare it)", bad,
             tool);
    *result = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "status", "error", "error", msg, "error_type",
                        "invalid_arguments", "category", category, "tool", tool, "parameters",
                        parameters_of(mcp_tool_input_schema(t)));
    json_decref(owned);
    return MCP_TOOL_ERROR;
  }

  json_t *env = NULL;
  mcp_dispatch_status st = mcp_dispatch_invoke(call, category, tool, params, &env);
  json_decref(owned);
  if (!env) return MCP_TOOL_ERROR;
  *result = env;
  return st == MCP_DISPATCH_OK ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

/* tools_dispatch runs where its target would: on the long pool when the target may block for
 * long, or is asynchronous (this worker then waits for it). A target with a per-call class
 * whose params are not an object yet (a JSON string) counts as long. */
static bool dispatch_is_long(mcp_call *call, const json_t *args, void *ud) {
  (void)ud;
  const char *category = json_string_value(json_object_get(args, "category"));
  const char *tool = json_string_value(json_object_get(args, "tool"));
  if (!category || !tool) return false;
  const mcp_tool *t = find_in_category(call, mcp_call_registry(call), category, tool);
  if (!t) return false;
  const mcp_tool_def *def = mcp_tool_def_of(t);
  if (def->flags & (MCP_TOOL_LONG | MCP_TOOL_ASYNC)) return true;
  if (!def->is_long) return false;
  const json_t *params = json_object_get(args, "params");
  if (params && !json_is_object(params) && !json_is_null(params)) return true;
  return def->is_long(call, params ? params : json_null(), def->ud);
}

/* ---------- registration ---------- */

#define NAME_PATTERN "^[A-Za-z0-9_.-]{1,128}$"
#define CATEGORY_PATTERN "^[A-Za-z0-9_.-]{1,64}$"

static const char k_list_categories_in[] =
    "{\"type\":\"object\",\"properties\":{\"include_count\":{\"type\":\"boolean\",\"default\":false,"
    "\"description\":\"Also report how many tools each category holds.\"}},\"additionalProperties\":false}";
static const char k_list_categories_out[] =
    "{\"type\":\"object\",\"required\":[\"status\",\"category_count\",\"categories\"],\"properties\":{"
    "\"status\":{\"const\":\"success\"},\"category_count\":{\"type\":\"integer\",\"minimum\":0},"
    "\"categories\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"name\",\"description\",\"lazy\"],"
    "\"properties\":{\"name\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"lazy\":{\"type\":\"boolean\"},"
    "\"tool_count\":{\"type\":\"integer\",\"minimum\":0}}}}}}";

static const char k_list_tools_in[] =
    "{\"type\":\"object\",\"properties\":{\"category\":{\"type\":\"string\",\"pattern\":\"" CATEGORY_PATTERN "\","
    "\"description\":\"A category name from tools_list_categories.\"}},\"required\":[\"category\"],"
    "\"additionalProperties\":false}";
static const char k_list_tools_out[] =
    "{\"type\":\"object\",\"required\":[\"status\",\"category\",\"tool_count\",\"tools\"],\"properties\":{"
    "\"status\":{\"const\":\"success\"},\"category\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},"
    "\"tool_count\":{\"type\":\"integer\",\"minimum\":0},\"tools\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"required\":[\"name\",\"description\"],\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"description\":{\"type\":\"string\"},\"title\":{\"type\":\"string\"}}}}}}";

static const char k_get_schema_in[] =
    "{\"type\":\"object\",\"properties\":{\"category\":{\"type\":\"string\",\"pattern\":\"" CATEGORY_PATTERN "\"},"
    "\"tool\":{\"type\":\"string\",\"pattern\":\"" NAME_PATTERN "\"}},\"required\":[\"tool\"],"
    "\"additionalProperties\":false}";
static const char k_get_schema_out[] =
    "{\"type\":\"object\",\"required\":[\"status\",\"schema\"],\"properties\":{\"status\":{\"const\":\"success\"},"
    "\"schema\":{\"type\":\"object\",\"required\":[\"name\",\"category\",\"description\",\"inputSchema\"],"
    "\"properties\":{\"name\":{\"type\":\"string\"},\"category\":{\"type\":\"string\"},\"title\":{\"type\":\"string\"},"
    "\"description\":{\"type\":\"string\"},\"inputSchema\":{\"type\":\"object\"},\"outputSchema\":{\"type\":\"object\"},"
    "\"annotations\":{\"type\":\"object\"},\"schema_version\":{\"type\":\"string\"},\"deprecated\":{\"type\":\"boolean\"},"
    "\"deprecation_message\":{\"type\":\"string\"},\"parameters\":{\"type\":\"object\"},\"remote\":{\"type\":\"boolean\"},"
    "\"timeout_ms\":{\"type\":\"integer\"}}}}}";

static const char k_dispatch_in[] =
    "{\"type\":\"object\",\"properties\":{\"category\":{\"type\":\"string\",\"pattern\":\"" CATEGORY_PATTERN "\"},"
    "\"tool\":{\"type\":\"string\",\"pattern\":\"" NAME_PATTERN "\"},"
    "\"params\":{\"type\":[\"object\",\"null\",\"string\"],\"description\":\"Arguments for the tool (an object; a "
    "string holding a JSON object is accepted too).\"}},\"required\":[\"category\",\"tool\"],"
    "\"additionalProperties\":false}";
static const char k_dispatch_out[] =
    "{\"type\":\"object\",\"required\":[\"status\",\"request_id\",\"category\",\"tool\"],\"properties\":{"
    "\"status\":{\"const\":\"success\"},\"result\":{},\"request_id\":{\"type\":\"string\"},"
    "\"category\":{\"type\":\"string\"},\"tool\":{\"type\":\"string\"},\"duration_ms\":{\"type\":\"number\"}}}";

static const char k_read_only[] = "{\"readOnlyHint\":true,\"idempotentHint\":true,\"openWorldHint\":false}";

static const mcp_tool_def k_meta_tools[] = {
    {.name = "tools_list_categories", .category = TOOLS_META_CATEGORY, .title = "List tool categories",
     .description = "List the tool categories this server offers (sorted by name), optionally with tool counts.",
     .input_schema = k_list_categories_in, .output_schema = k_list_categories_out, .annotations = k_read_only,
     .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE, .fn = list_categories},
    {.name = "tools_list_tools", .category = TOOLS_META_CATEGORY, .title = "List the tools of a category",
     .description = "List the tools in one category with the first line of each description.",
     .input_schema = k_list_tools_in, .output_schema = k_list_tools_out, .annotations = k_read_only,
     .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE, .fn = list_tools},
    {.name = "tools_get_schema", .category = TOOLS_META_CATEGORY, .title = "Get a tool's schema",
     .description = "Return one tool's JSON Schema (inputSchema, outputSchema) and metadata. The category is "
                    "optional (tool names are unique); when given, the tool must be in it.",
     .input_schema = k_get_schema_in, .output_schema = k_get_schema_out, .annotations = k_read_only,
     .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE, .fn = get_schema},
    {.name = "tools_dispatch", .category = TOOLS_META_CATEGORY, .title = "Call a tool by category and name",
     .description = "Run a tool from any category with the given params and return its result envelope "
                    "{status, result|error, request_id, category, tool, duration_ms}.",
     .input_schema = k_dispatch_in, .output_schema = k_dispatch_out, .flags = MCP_TOOL_REMOTE, .fn = dispatch,
     .is_long = dispatch_is_long},
};

int tools_meta_register(mcp_registry *reg) {
  int rc = mcp_registry_describe_category(reg, TOOLS_META_CATEGORY,
                                          "Discover categories and tools, read their schemas, and call any tool");
  if (rc != 0) return rc;
  for (size_t i = 0; i < sizeof k_meta_tools / sizeof k_meta_tools[0]; i++)
    if ((rc = mcp_registry_add(reg, &k_meta_tools[i])) != 0) return rc;
  return 0;
}

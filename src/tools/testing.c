/* testing.c — echo / sleep / fail tools for tests and benchmarks (see testing.h). */
#include "tools/testing.h"

#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call;
  (void)ud;
  *result = json_incref(args);
  return MCP_TOOL_OK;
}

static mcp_tool_status sleep_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)ud;
  json_int_t ms = json_integer_value(json_object_get(args, "ms"));
  json_int_t steps = json_integer_value(json_object_get(args, "steps"));
  if (steps < 1) steps = 1;
  int64_t t0 = clock_mono_ms();
  bool cancelled = false;
  for (json_int_t i = 1; i <= steps && !cancelled; i++) {
    int64_t until = t0 + ms * i / steps;
    cancelled = mcp_call_sleep(call, until - clock_mono_ms());
    if (!cancelled) mcp_call_progress(call, (double)i, (double)steps, NULL);
  }
  *result = json_pack("{s:I, s:b}", "slept_ms", (json_int_t)(clock_mono_ms() - t0), "cancelled", cancelled);
  return MCP_TOOL_OK;
}

static mcp_tool_status fail_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call;
  (void)ud;
  const char *m = json_string_value(json_object_get(args, "message"));
  *result = json_pack("{s:s}", "error", m ? m : "failed on purpose");
  return MCP_TOOL_ERROR;
}

static const mcp_tool_def k_testing[] = {
    /* text and n are typed as in bench/mcp/ts-server.mjs's zod schema, so bench-mcp compares
     * servers that validate the same things; anything else passes through */
    {.name = "echo", .category = "testing", .description = "Return the arguments unchanged (testing only).",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"},"
                     "\"n\":{\"type\":\"integer\"}},\"additionalProperties\":true}",
     .annotations = "{\"readOnlyHint\":true,\"idempotentHint\":true,\"openWorldHint\":false}",
     .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE, .fn = echo_fn},
    {.name = "sleep", .category = "testing",
     .description = "Sleep ms milliseconds in `steps` steps with progress notifications; stops when cancelled "
                    "(testing only).",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":0,"
                     "\"maximum\":600000},\"steps\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,"
                     "\"default\":1}},\"required\":[\"ms\"],\"additionalProperties\":false}",
     .flags = MCP_TOOL_REMOTE | MCP_TOOL_LONG, .timeout_ms = 600000, .fn = sleep_fn},
    {.name = "fail", .category = "testing", .description = "Always fail with a tool error (testing only).",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\"}},"
                     "\"additionalProperties\":false}",
     .flags = MCP_TOOL_INLINE, .fn = fail_fn},
};

int tools_testing_register(mcp_registry *reg) {
  int rc = mcp_registry_describe_category(reg, "testing", "Tools for tests and benchmarks (PEERMCP_TEST_TOOLS=1)");
  for (size_t i = 0; rc == 0 && i < sizeof k_testing / sizeof k_testing[0]; i++) rc = mcp_registry_add(reg, &k_testing[i]);
  return rc;
}

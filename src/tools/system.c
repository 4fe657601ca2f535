/* system.c — category "system" (server_info) and the opt-in "test" tools (see system.h). */
#include "tools/system.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "mcp/dispatch.h"
#include "mcp/session.h"
#include "store/health.h"

#ifndef PEERMCP_VERSION
#define PEERMCP_VERSION "0.0.0"
#endif

typedef struct {
  tq_queue *q;
  ttlcache *c;
} stores;

static mcp_tool_status server_info_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  const mcp_registry *reg = mcp_call_registry(call);
  json_t *cats = json_object();
  size_t total = 0;
  for (size_t i = 0; i < mcp_registry_count(reg); i++) {
    const mcp_tool *t = mcp_registry_at(reg, i);
    if (!mcp_call_may_use(call, t)) continue; /* a peer sees the counts of what it may call */
    const char *cat = mcp_tool_def_of(t)->category;
    json_t *n = json_object_get(cats, cat);
    json_object_set_new(cats, cat, json_integer(n ? json_integer_value(n) + 1 : 1));
    total++;
  }
  *result = json_pack("{s:s, s:s, s:f, s:{s:[s], s:[s,s,s,s]}, s:{s:I, s:o}}", "name", "peermcp", "version",
                      PEERMCP_VERSION, "uptime_seconds", mcp_dispatcher_uptime_s(mcp_call_dispatcher(call)),
                      "protocol_eras", "modern", MCP_PROTOCOL_MODERN, "legacy", "2025-11-25", "2025-06-18",
                      "2025-03-26", "2024-11-05", "tools", "total", (json_int_t)total, "by_category", cats);
  const stores *st = ud;
  if (*result && st && (st->q || st->c)) { /* which store is down and why (the file for the operator) */
    const mcp_auth *a = mcp_call_auth(call);
    json_object_set_new(*result, "storage",
                        store_health_json(st->q, st->c, a && (auth_ctx_is_local(a) || auth_allows_mask(a, AUTH_ADMIN))));
  }
  return *result ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

static mcp_tool_status test_slow_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  int64_t ms = json_integer_value(json_object_get(args, "ms"));
  int64_t step = json_integer_value(json_object_get(args, "progress_every_ms"));
  if (step <= 0) step = 100;
  char msg[80];
  snprintf(msg, sizeof msg, "test_slow: sleeping %lld ms", (long long)ms);
  mcp_call_log(call, "info", msg);
  int64_t done = 0;
  bool cancelled = false;
  while (done < ms && !cancelled) {
    int64_t d = ms - done < step ? ms - done : step;
    cancelled = mcp_call_sleep(call, d);
    done += d;
    if (!cancelled) mcp_call_progress(call, (double)done, (double)ms, "sleeping");
  }
  if (cancelled) {
    *result = json_pack("{s:s, s:I}", "error", "cancelled", "slept_ms", (json_int_t)done);
    return MCP_TOOL_ERROR;
  }
  *result = json_pack("{s:I}", "slept_ms", (json_int_t)done);
  return MCP_TOOL_OK;
}

static mcp_tool_status test_echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}

static const mcp_tool_def k_system[] = {
    {.name = "server_info",
     .category = "system",
     .title = "Server information",
     .description = "peermcp version, uptime, supported MCP protocol revisions, tool counts, and the state of the queue and "
                    "the cache (storage: up/down with the reason).",
     .input_schema = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
     .output_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
                      "\"uptime_seconds\":{\"type\":\"number\"},\"protocol_eras\":{\"type\":\"object\"},"
                      "\"tools\":{\"type\":\"object\"}},\"required\":[\"name\",\"version\",\"uptime_seconds\",\"protocol_eras\",\"tools\"]}",
     .annotations = "{\"readOnlyHint\":true,\"idempotentHint\":true,\"openWorldHint\":false}",
     .flags = MCP_TOOL_REMOTE | MCP_TOOL_INLINE,
     .fn = server_info_fn},
};

static const mcp_tool_def k_test[] = {
    {.name = "test_slow",
     .category = "test",
     .description = "Test only: sleeps `ms` milliseconds, reporting progress; stops when cancelled.",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":600000,\"default\":10000},"
                     "\"progress_every_ms\":{\"type\":\"integer\",\"minimum\":1,\"default\":100}},\"additionalProperties\":false}",
     .flags = MCP_TOOL_LONG,
     .fn = test_slow_fn,
     .timeout_ms = 120000},
    {.name = "test_echo",
     .category = "test",
     .description = "Test only: returns its arguments.",
     .input_schema = "{\"type\":\"object\"}",
     .flags = MCP_TOOL_INLINE | MCP_TOOL_REMOTE,
     .fn = test_echo_fn},
};

int tools_system_register(mcp_registry *reg, bool test_tools, tq_queue *q, ttlcache *c) {
  int rc = mcp_registry_describe_category(reg, "system", "The server itself: version, uptime, protocol revisions.");
  for (size_t i = 0; rc == 0 && i < sizeof k_system / sizeof k_system[0]; i++) {
    mcp_tool_def d = k_system[i];
    stores *st = calloc(1, sizeof *st);
    if (!st) return -ENOMEM;
    st->q = q;
    st->c = c;
    d.ud = st;
    d.ud_free = free;
    rc = mcp_registry_add(reg, &d);
    if (rc < 0) free(st);
  }
  if (rc == 0 && test_tools) {
    rc = mcp_registry_describe_category(reg, "test", "Test-only tools (PEERMCP_TEST_TOOLS=1).");
    for (size_t i = 0; rc == 0 && i < sizeof k_test / sizeof k_test[0]; i++) rc = mcp_registry_add(reg, &k_test[i]);
  }
  return rc;
}
